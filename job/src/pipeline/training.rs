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

/// The registered table of the training sample's summary rows (see [`sample_rows`]).
pub const TRAINING_ROWS: &str = "training_rows";

/// The training sample's summary rows, collected to the driver: the `rows` rows of the
/// registered `summaries` (`groups` rows) with the smallest `sample_key(seed, interval,
/// keys…)` (ties by the key parts). The choice depends on no partitioning (each partition
/// keeps its smallest, then they are merged) and needs no category index, so it runs
/// beside the census; the features are then computed for these rows alone.
///
/// The keys are uniform hashes, so the sample is almost always among the rows whose key is
/// at most twice the expected quantile plus a margin: only those are sorted (sorting every
/// summary row by its key parts cost far more); in the rare case they are too few, every
/// row is.
pub async fn sample_rows(
    ctx: &SessionContext,
    seed: u64,
    rows: usize,
    groups: u64,
) -> Result<Vec<RecordBatch>> {
    let fraction = (2.0 * rows as f64 + 64.0) / groups.max(1) as f64;
    if fraction < 1.0 {
        let bound = (fraction * u64::MAX as f64) as u64;
        let batches = smallest_summaries(ctx, seed, rows, Some(bound)).await?;
        let found: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if found == rows {
            return Ok(batches);
        }
        tracing::info!("the sample's prefilter kept too few rows; sampling all summaries");
    }
    smallest_summaries(ctx, seed, rows, None).await
}

/// The `rows` summary rows with the smallest sample keys, among those whose key is at most
/// `bound`.
async fn smallest_summaries(
    ctx: &SessionContext,
    seed: u64,
    rows: usize,
    bound: Option<u64>,
) -> Result<Vec<RecordBatch>> {
    // Sorted by the key as a column, not as a call: Ballista's adaptive planner ships an
    // exchange's sort order without procforest's codec, so a cluster executor cannot
    // decode a sort on our function.
    let key = SampleKeyUdf::new(seed).into_udf().call(key_parts());
    let mut order = vec![column(SAMPLE_KEY).sort(true, false)];
    order.extend(key_parts().into_iter().map(|k| k.sort(true, false)));
    let summary_columns: Vec<_> = key_parts()
        .into_iter()
        .chain([column(summaries::COUNT)])
        .collect();
    let with_key: Vec<_> = summary_columns
        .iter()
        .cloned()
        .chain([key.clone().alias(SAMPLE_KEY)])
        .collect();
    let mut summaries = ctx
        .table(SUMMARIES)
        .await
        .runtime("planning the training sample")?;
    if let Some(bound) = bound {
        summaries = summaries
            .filter(key.lt_eq(lit(bound)))
            .runtime("planning the training sample")?;
    }
    summaries
        .select(with_key)
        .and_then(|df| df.sort(order))
        .and_then(|df| df.limit(0, Some(rows)))
        .and_then(|df| df.select(summary_columns))
        .runtime("planning the training sample")?
        .collect()
        .await
        .runtime("choosing the training sample")
}

/// Gathers `rows` training rows from `features` (the features of a table of summary rows
/// holding the sample: [`TRAINING_ROWS`] or all summaries): those with the smallest
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    /// `n` distinct summary rows registered as `summaries`, in two partitions.
    fn summaries_of(n: usize) -> SessionContext {
        let day = 86_400_000_000;
        let strings = |f: &dyn Fn(usize) -> String| {
            Arc::new(StringArray::from_iter_values((0..n).map(f))) as ArrayRef
        };
        let batch = RecordBatch::try_from_iter([
            (
                INTERVAL,
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..n).map(|i| (i % 3) as i64 * day),
                    )
                    .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (GROUP_KEYS[0], strings(&|i| format!("host{}", i / 3))),
            (GROUP_KEYS[1], strings(&|i| format!("account{}", i % 7))),
            (GROUP_KEYS[2], strings(&|_| "User".to_string())),
            (GROUP_KEYS[3], strings(&|i| format!("process{}", i % 11))),
            (
                summaries::COUNT,
                Arc::new(Int64Array::from_iter_values(
                    (0..n as i64).map(|i| 1 + i % 5),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        let ctx = SessionContext::new();
        let half = n / 2;
        let table = datafusion::datasource::MemTable::try_new(
            batch.schema(),
            vec![
                vec![batch.slice(0, half)],
                vec![batch.slice(half, n - half)],
            ],
        )
        .unwrap();
        ctx.register_table(SUMMARIES, Arc::new(table)).unwrap();
        ctx
    }

    fn rows_of(batches: &[RecordBatch]) -> Vec<String> {
        let shown = arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string();
        shown.lines().map(String::from).collect()
    }

    /// The prefiltered choice equals sorting every row, and holds `rows` rows; with fewer
    /// summary rows than asked for, every row is taken.
    #[tokio::test]
    async fn sample_rows_are_the_smallest_keys_of_all_rows() {
        let ctx = summaries_of(3000);
        let chosen = sample_rows(&ctx, 42, 100, 3000).await.unwrap();
        let all_sorted = smallest_summaries(&ctx, 42, 100, None).await.unwrap();
        assert_eq!(chosen.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);
        assert_eq!(rows_of(&chosen), rows_of(&all_sorted));
        let other_seed = sample_rows(&ctx, 43, 100, 3000).await.unwrap();
        assert_ne!(
            rows_of(&chosen),
            rows_of(&other_seed),
            "the seed picks the rows"
        );
        // A bound too small to hold the sample: the fallback sorts every row.
        let too_few = smallest_summaries(&ctx, 42, 100, Some(u64::MAX / 1000))
            .await
            .unwrap();
        assert!(too_few.iter().map(RecordBatch::num_rows).sum::<usize>() < 100);
        let small = summaries_of(50);
        let every = sample_rows(&small, 42, 100, 50).await.unwrap();
        assert_eq!(every.iter().map(RecordBatch::num_rows).sum::<usize>(), 50);
    }
}
