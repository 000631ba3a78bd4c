//! Training: a sample chosen on the cluster independently of partitioning (the rows with the
//! smallest seeded hash of their group key), gathered to the driver and fitted there.

use arrow::{
    array::{Array, AsArray, RecordBatch},
    compute::cast,
    datatypes::{DataType, Float64Type},
};
use datafusion::prelude::{DataFrame, SessionContext, lit};
use iforest::{Contamination, IsolationForest, IsolationForestParams, MaxSamples};
use procforest_core::{events::GROUP_KEYS, udf::SampleKeyUdf};

use super::{
    column,
    features::SUMMARIES,
    summaries::{self, INTERVAL},
};
use crate::error::{Context, JobError, Result};

/// Name of the sample-key column.
pub const SAMPLE_KEY: &str = "sample_key";

/// The training rows, one column per feature.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingSample {
    /// Feature columns, in the feature set's order.
    pub columns: Vec<Vec<f64>>,
}

impl TrainingSample {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }
}

/// The registered table of the summary rows that may be sampled (see [`write_candidates`]).
pub const CANDIDATES: &str = "sample_candidates";

/// Writes under `dir` the summary rows (of the registered `summaries`, `groups` rows) that
/// hold the training sample of `rows` rows: those whose `sample_key(seed, interval, keys…)`
/// is at most twice the expected quantile plus a margin. The keys are uniform hashes, so
/// the sample (the rows with the smallest keys) is almost always among them, and features
/// are then computed for those rows only; it needs no category index, so it runs beside
/// the indexing. Returns the number of rows written, or `None` when every row would pass.
/// With fewer than `rows` rows written, sample from all `summaries` instead: the sample
/// is the same either way.
pub async fn write_candidates(
    ctx: &SessionContext,
    seed: u64,
    rows: usize,
    groups: u64,
    dir: &str,
) -> Result<Option<u64>> {
    let fraction = (2.0 * rows as f64 + 64.0) / groups.max(1) as f64;
    if fraction >= 1.0 {
        return Ok(None);
    }
    let bound = (fraction * u64::MAX as f64) as u64;
    let key = SampleKeyUdf::new(seed).into_udf().call(key_parts());
    let candidates = ctx
        .table(SUMMARIES)
        .await
        .and_then(|summaries| summaries.filter(key.lt_eq(lit(bound))))
        .runtime("planning the training sample")?;
    let written = summaries::write(candidates, dir, "the training sample's candidates").await?;
    Ok(Some(written))
}

/// Gathers `rows` training rows from `features` (the features of a table of summary rows
/// holding the sample: [`CANDIDATES`] or all summaries): those with the smallest
/// `sample_key(seed, interval, keys…)`, in that order.
pub async fn gather(
    features: DataFrame,
    names: &[&str],
    seed: u64,
    rows: usize,
) -> Result<TrainingSample> {
    let batches = smallest_keys(features, names, seed, rows).await?;
    to_sample(&batches, names, rows)
}

/// The interval and the four keys.
fn key_parts() -> Vec<datafusion::prelude::Expr> {
    std::iter::once(column(INTERVAL))
        .chain(GROUP_KEYS.iter().map(|k| column(k)))
        .collect()
}

/// The `rows` rows of `features` with the smallest sample keys (ties by key parts).
async fn smallest_keys(
    features: DataFrame,
    names: &[&str],
    seed: u64,
    rows: usize,
) -> Result<Vec<RecordBatch>> {
    let key = SampleKeyUdf::new(seed).into_udf().call(key_parts());
    let mut select: Vec<_> = names.iter().map(|f| column(f)).collect();
    select.push(key.alias(SAMPLE_KEY));
    select.extend(key_parts());
    let mut order = vec![column(SAMPLE_KEY).sort(true, false)];
    order.extend(key_parts().into_iter().map(|k| k.sort(true, false)));
    features
        .select(select)
        .and_then(|df| df.sort(order))
        .and_then(|df| df.limit(0, Some(rows)))
        .runtime("planning the training sample")?
        .collect()
        .await
        .runtime("gathering the training sample")
}

/// The feature columns of the gathered rows.
fn to_sample(batches: &[RecordBatch], names: &[&str], rows: usize) -> Result<TrainingSample> {
    let mut columns = vec![Vec::with_capacity(rows); names.len()];
    for batch in batches {
        for (slot, name) in columns.iter_mut().zip(names) {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| JobError::runtime(format!("sample has no column {name}")))?;
            let array = cast(array, &DataType::Float64).runtime("reading the sample")?;
            let values = array.as_primitive::<Float64Type>();
            if values.null_count() > 0 {
                return Err(JobError::runtime(format!("feature {name} has nulls")));
            }
            if let Some(bad) = values.values().iter().find(|v| !v.is_finite()) {
                return Err(JobError::runtime(format!(
                    "feature {name} has the value {bad}"
                )));
            }
            slot.extend(values.values().iter());
        }
    }
    Ok(TrainingSample { columns })
}

/// Model settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSettings {
    /// Trees.
    pub trees: usize,
    /// Rows per tree.
    pub max_samples: usize,
    /// Seed.
    pub seed: u64,
    /// Contamination (`None` = auto).
    pub contamination: Option<f64>,
}

/// Fits the forest on the sample.
pub fn fit(sample: &TrainingSample, settings: &ModelSettings) -> Result<IsolationForest> {
    let params = IsolationForestParams::default()
        .n_estimators(settings.trees)
        .max_samples(MaxSamples::Count(settings.max_samples))
        .seed(settings.seed)
        .contamination(match settings.contamination {
            None => Contamination::Auto,
            Some(c) => Contamination::Fraction(c),
        })
        .threads(std::thread::available_parallelism().map_or(1, |n| n.get()));
    params.fit(&sample.columns).map_err(|e| match e {
        iforest::Error::InvalidParameter { .. } => JobError::bad_input(e.to_string()),
        iforest::Error::NoRows | iforest::Error::AllFeaturesConstant { .. } => {
            JobError::bad_input(format!("cannot train on the summaries: {e}"))
        }
        other => JobError::runtime(format!("training: {other}")),
    })
}
