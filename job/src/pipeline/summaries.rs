//! Summaries: events → one row per interval × Computer × Account × AccountType × Process
//! with the event count and, for intervals in the report window, the sorted distinct
//! command lines (the notebook's `collect_set`, which drops nulls).

use datafusion::{
    dataframe::DataFrameWriteOptions,
    functions::expr_fn::date_trunc,
    functions_aggregate::expr_fn::{array_agg, count},
    logical_expr::{ExprFunctionExt, cast},
    prelude::{DataFrame, SessionContext, lit},
};
use procforest_core::events::{
    ACCOUNT, ACCOUNT_TYPE, COMMAND_LINE, COMPUTER, PROCESS, TIME_GENERATED, time_type,
};

use super::{column, time_literal};
use crate::error::{Context, Result};

/// The summary interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// UTC days.
    Day,
    /// UTC hours.
    Hour,
}

impl Interval {
    /// `date_trunc` unit.
    pub fn unit(self) -> &'static str {
        match self {
            Interval::Day => "day",
            Interval::Hour => "hour",
        }
    }
    /// Length in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            Interval::Day => 86_400_000_000,
            Interval::Hour => 3_600_000_000,
        }
    }
    /// The start of the interval holding `micros` (UTC).
    pub fn truncate(self, micros: i64) -> i64 {
        micros.div_euclid(self.micros()) * self.micros()
    }
}

/// Names of the summary columns.
pub const INTERVAL: &str = "interval";
/// Events in the group.
pub const COUNT: &str = "count";
/// Distinct command lines (report intervals only).
pub const COMMAND_LINES: &str = "command_lines";

/// What to summarise.
#[derive(Debug, Clone, Copy)]
pub struct SummaryWindow {
    /// Events after this (exclusive), if bounded.
    pub start_us: Option<i64>,
    /// Events up to this (inclusive).
    pub end_us: i64,
    /// First interval of the report; command lines are kept from here on.
    pub report_start_us: i64,
    /// Interval length.
    pub interval: Interval,
}

/// The summaries of the registered `events` table.
pub async fn summaries(ctx: &SessionContext, window: SummaryWindow) -> Result<DataFrame> {
    let events = ctx.table("events").await.runtime("reading events")?;
    let time_is_standard = events
        .schema()
        .field_with_unqualified_name(TIME_GENERATED)
        .is_ok_and(|f| f.data_type() == &time_type());
    let time = if time_is_standard {
        column(TIME_GENERATED)
    } else {
        cast(column(TIME_GENERATED), time_type())
    };
    let mut filter = time.clone().lt_eq(time_literal(window.end_us));
    if let Some(start) = window.start_us {
        filter = filter.and(time.clone().gt(time_literal(start)));
    }
    let command_lines = array_agg(column(COMMAND_LINE))
        .distinct()
        .order_by(vec![column(COMMAND_LINE).sort(true, false)])
        .filter(
            time.clone()
                .gt_eq(time_literal(window.report_start_us))
                .and(column(COMMAND_LINE).is_not_null()),
        )
        .build()
        .runtime("planning command lines")?
        .alias(COMMAND_LINES);
    events
        .filter(filter)
        .and_then(|df| {
            df.aggregate(
                vec![
                    date_trunc(lit(window.interval.unit()), time).alias(INTERVAL),
                    column(COMPUTER),
                    column(ACCOUNT),
                    column(ACCOUNT_TYPE),
                    column(PROCESS),
                ],
                vec![count(lit(1)).alias(COUNT), command_lines],
            )
        })
        .runtime("planning summaries")
}

/// Computes the summaries on the cluster and writes them as Parquet under `dir`; returns
/// the number of summary rows.
pub async fn write_summaries(df: DataFrame, dir: &str) -> Result<u64> {
    let written = df
        .write_parquet(dir, DataFrameWriteOptions::new(), None)
        .await
        .runtime("computing summaries")?;
    Ok(rows_written(&written))
}

/// The row count a DataFusion write reports.
pub fn rows_written(batches: &[arrow::record_batch::RecordBatch]) -> u64 {
    use arrow::array::AsArray;
    batches
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<arrow::datatypes::UInt64Type>()
                .map(|c| c.values().iter().sum::<u64>())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_utc_and_handles_negative_times() {
        let day = Interval::Day;
        assert_eq!(day.truncate(86_400_000_000 + 5), 86_400_000_000);
        assert_eq!(day.truncate(-1), -86_400_000_000);
        assert_eq!(Interval::Hour.truncate(3_600_000_001), 3_600_000_000);
    }
}
