//! The job's stages on Ballista, in data-flow order:
//! [`summaries`] (events → one row per interval × Computer × Account × AccountType ×
//! Process) → [`categories`] (frequency indices of the four categories) → [`features`]
//! (the model's inputs per summary row) → [`training`] (a deterministic sample, fitted on the
//! driver) → [`scoring`] (every row scored on the executors by the model in the plan).
//!
//! Summaries and categories are written as Parquet to a scratch location, so each later
//! stage reads them instead of scanning the events again.

pub mod categories;
pub mod evidence;
pub mod features;
pub mod scoring;
pub mod summaries;
pub mod training;

use datafusion::common::ScalarValue;
use procforest_core::schema::time_type;

/// A `TimeGenerated`-typed literal (microseconds, UTC).
pub fn time_literal(micros: i64) -> datafusion::prelude::Expr {
    let value = ScalarValue::TimestampMicrosecond(Some(micros), Some("UTC".into()));
    debug_assert_eq!(value.data_type(), time_type());
    datafusion::prelude::lit(value)
}

/// A column by its exact name (no parsing, no case folding).
pub fn column(name: &str) -> datafusion::prelude::Expr {
    datafusion::prelude::Expr::Column(datafusion::common::Column::new_unqualified(name))
}

/// A plain DataFusion session on the driver, sharing `ctx`'s object stores, for the small
/// reads the driver does itself (not through the cluster); a file over 1 MiB is split
/// over the cores by row groups.
pub fn driver_session(
    ctx: &datafusion::prelude::SessionContext,
) -> datafusion::prelude::SessionContext {
    let mut config = datafusion::prelude::SessionConfig::new();
    config.options_mut().optimizer.repartition_file_min_size = 1 << 20;
    datafusion::prelude::SessionContext::new_with_config_rt(config, ctx.runtime_env())
}

/// Quotes an identifier for SQL.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// SQL matching two string expressions as `IS NOT DISTINCT FROM` does (nulls equal each
/// other, and only each other), written as equalities that DataFusion turns into hash-join
/// keys: its own multi-column `IS NOT DISTINCT FROM` joins ran several times slower.
pub fn same_key_sql(left: &str, right: &str) -> String {
    format!(
        "(coalesce({left}, '') = coalesce({right}, '') AND ({left} IS NULL) = ({right} IS NULL))"
    )
}

/// `df` planned with hash joins instead of Ballista's default sort-merge joins (chosen
/// there because they spill). For a plan whose joins have a small side — a subset of the
/// rows (the report's interval, the training sample, their groups) joined with totals
/// over the whole history — the small side is the build side and the totals are streamed
/// through, where a sort-merge join sorts both by their string keys (BENCHMARKS.md: a
/// third of the groups' evidence job). Plans whose both sides are the whole history (every
/// row's features for `--scores-out`) keep sort-merge joins.
pub fn with_hash_joins(df: datafusion::prelude::DataFrame) -> datafusion::prelude::DataFrame {
    let (mut state, plan) = df.into_parts();
    state.config_mut().options_mut().optimizer.prefer_hash_join = true;
    datafusion::prelude::DataFrame::new(state, plan)
}
