//! Training: a sample chosen independently of partitioning (the rows with the smallest
//! seeded hash of their group key, among those the summaries' writers kept), its features
//! gathered to the driver and fitted there.

use arrow::{
    array::{Array, AsArray, Float64Array, RecordBatch},
    compute::{SortColumn, SortOptions, cast, lexsort_to_indices, take_record_batch},
    datatypes::{DataType, Float64Type, SchemaRef},
};
use datafusion::prelude::DataFrame;
use iforest::{Contamination, FamilyForest, IsolationForestParams, MaxSamples, Model};
use procforest_core::{
    partition_writer::digest::Digests,
    schema::{GROUP_KEYS, INTERVAL},
    udf::SampleKeyUdf,
};

use super::column;
use crate::error::{Context, PipelineError, Result};

/// Name of the sample-key column.
pub use procforest_core::partition_writer::digest::SAMPLE_KEY;

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

/// The training sample's summary rows: the `rows` rows of all summaries with the smallest
/// `sample_key(seed, interval, keys…)` (ties by the key parts), in that order, as `schema`
/// (the summaries' counts). The summaries' writers kept each partition's smallest
/// ([`Digests::candidates`]), among which the driver picks them: the choice depends on no
/// partitioning and needs no category index. Sorting on the cluster (a top-k heap) cost
/// more than the scan.
pub fn sample_rows(digests: &Digests, rows: usize, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let candidates = digests
        .candidates(rows)
        .runtime("gathering the training sample")?;
    let smallest = smallest_by_key(&candidates, rows)?;
    smallest
        .into_iter()
        .map(|batch| as_summaries(&batch, schema))
        .collect()
}

/// The batch's columns of `schema`, as `schema`.
fn as_summaries(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            batch.column_by_name(field.name()).cloned().ok_or_else(|| {
                PipelineError::runtime(format!("the sample has no column {}", field.name()))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    RecordBatch::try_new(schema.clone(), columns).runtime("gathering the training sample")
}

/// The `rows` rows of `batches` (one schema, with columns [`SAMPLE_KEY`] and the key parts)
/// with the smallest sample keys, ties by the key parts, all ascending with nulls last (as
/// DataFusion's `ORDER BY` sorts them); sorted on the driver.
fn smallest_by_key(batches: &[RecordBatch], rows: usize) -> Result<Option<RecordBatch>> {
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = arrow::compute::concat_batches(&first.schema(), batches)
        .runtime("gathering the training sample")?;
    let order = std::iter::once(SAMPLE_KEY)
        .chain(std::iter::once(INTERVAL))
        .chain(GROUP_KEYS.iter().copied())
        .map(|name| {
            let values = all.column_by_name(name).ok_or_else(|| {
                PipelineError::runtime(format!("the sample has no column {name}"))
            })?;
            Ok(SortColumn {
                values: values.clone(),
                options: Some(SortOptions {
                    descending: false,
                    nulls_first: false,
                }),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let indices = lexsort_to_indices(&order, Some(rows)).runtime("sorting the training sample")?;
    take_record_batch(&all, &indices)
        .map(Some)
        .runtime("sorting the training sample")
}

/// Gathers `rows` training rows from `features` (the features of a table of summary rows
/// holding the sample, [`procforest_core::schema::table::TRAINING_ROWS`]): those with the smallest `sample_key(seed,
/// interval, keys…)`, in that order.
pub async fn gather(
    features: DataFrame,
    names: &[&str],
    seed: u64,
    rows: usize,
) -> Result<TrainingSample> {
    let key = SampleKeyUdf::new(seed).into_udf().call(key_parts());
    let mut select: Vec<_> = names.iter().map(|f| column(f)).collect();
    select.push(key.alias(SAMPLE_KEY));
    select.extend(key_parts());
    let batches = features
        .select(select)
        .runtime("planning the training sample")?
        .collect()
        .await
        .runtime("gathering the training sample")?;
    let smallest = smallest_by_key(&batches, rows)?;
    to_sample(smallest.as_slice(), names, rows)
}

/// The interval and the four keys.
fn key_parts() -> Vec<datafusion::prelude::Expr> {
    std::iter::once(column(INTERVAL))
        .chain(GROUP_KEYS.iter().map(|k| column(k)))
        .collect()
}

/// The feature columns of the gathered rows.
fn to_sample(batches: &[RecordBatch], names: &[&str], rows: usize) -> Result<TrainingSample> {
    let mut columns = vec![Vec::with_capacity(rows); names.len()];
    for batch in batches {
        for (slot, name) in columns.iter_mut().zip(names) {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| PipelineError::runtime(format!("sample has no column {name}")))?;
            let array = cast(array, &DataType::Float64).runtime("reading the sample")?;
            push_feature(slot, name, array.as_primitive::<Float64Type>())?;
        }
    }
    Ok(TrainingSample { columns })
}

/// Appends a feature's values to its column of the training sample; a null or non-finite
/// value is an error naming the feature.
pub fn push_feature(column: &mut Vec<f64>, name: &str, values: &Float64Array) -> Result<()> {
    if values.null_count() > 0 {
        return Err(PipelineError::runtime(format!("feature {name} has nulls")));
    }
    if let Some(bad) = values.values().iter().find(|v| !v.is_finite()) {
        return Err(PipelineError::runtime(format!(
            "feature {name} has the value {bad}"
        )));
    }
    column.extend(values.values().iter());
    Ok(())
}

/// How rows are scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scoring {
    /// One isolation forest over every feature (the notebook's).
    Forest,
    /// A forest per family of features ([`super::features::FeatureSet::families`]), so
    /// that one family's strong evidence counts ([`iforest::FamilyForest`]).
    Families,
}

/// Model settings.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSettings {
    /// How rows are scored.
    pub scoring: Scoring,
    /// Trees.
    pub trees: usize,
    /// Rows per tree.
    pub max_samples: usize,
    /// Seed.
    pub seed: u64,
    /// Contamination (`None` = auto).
    pub contamination: Option<f64>,
}

/// Fits the model on the sample: one forest, or one per family of `families` (column
/// indices) when the settings score by families.
pub fn fit(
    sample: &TrainingSample,
    settings: &ModelSettings,
    families: &[Vec<usize>],
) -> Result<Model> {
    let params = IsolationForestParams::default()
        .n_estimators(settings.trees)
        .max_samples(MaxSamples::Count(settings.max_samples))
        .seed(settings.seed)
        .contamination(match settings.contamination {
            None => Contamination::Auto,
            Some(c) => Contamination::Fraction(c),
        })
        .threads(std::thread::available_parallelism().map_or(1, |n| n.get()));
    let fitted = match settings.scoring {
        Scoring::Forest => params.fit(&sample.columns).map(Model::Forest),
        Scoring::Families => {
            FamilyForest::fit(&params, &sample.columns, families).map(Model::Families)
        }
    };
    fitted.map_err(|e| match e {
        iforest::Error::InvalidParameter { .. } => PipelineError::bad_input(e.to_string()),
        iforest::Error::NoRows | iforest::Error::AllFeaturesConstant { .. } => {
            PipelineError::bad_input(format!("cannot train on the summaries: {e}"))
        }
        other => PipelineError::runtime(format!("training: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::prelude::SessionContext;
    use procforest_core::partition_writer::digest::DigestSpec;

    use super::*;
    use crate::stages::summaries;
    use procforest_core::schema::{COUNT, table::SUMMARIES};

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
                COUNT,
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

    /// The training sample as a run picks it: the registered `summaries` written with
    /// digests for `rows` rows, read back, the smallest chosen.
    async fn sample_of(ctx: &SessionContext, seed: u64, rows: usize) -> Vec<RecordBatch> {
        let spec = DigestSpec {
            dir: String::new(),
            seed,
            sample_rows: rows,
            report_start_us: 0,
            report_end_us: 0,
        };
        let table = ctx.table(SUMMARIES).await.unwrap();
        let schema = Arc::new(table.schema().as_arrow().clone());
        let digests = summaries::digests_of_registered(ctx, spec).await;
        sample_rows(&digests, rows, &schema).unwrap()
    }

    /// The `rows` summary rows with the smallest keys, sorted by DataFusion over all rows.
    async fn smallest_summaries(ctx: &SessionContext, seed: u64, rows: usize) -> Vec<RecordBatch> {
        let key = SampleKeyUdf::new(seed).into_udf().call(key_parts());
        let mut order = vec![key.sort(true, false)];
        order.extend(key_parts().into_iter().map(|k| k.sort(true, false)));
        ctx.table(SUMMARIES)
            .await
            .unwrap()
            .sort(order)
            .unwrap()
            .limit(0, Some(rows))
            .unwrap()
            .collect()
            .await
            .unwrap()
    }

    /// The sample picked from the writers' digests equals sorting every row, and holds
    /// `rows` rows; with fewer summary rows than asked for, every row is taken.
    #[tokio::test]
    async fn sample_rows_are_the_smallest_keys_of_all_rows() {
        let ctx = summaries_of(3000);
        let chosen = sample_of(&ctx, 42, 100).await;
        let all_sorted = smallest_summaries(&ctx, 42, 100).await;
        assert_eq!(chosen.iter().map(RecordBatch::num_rows).sum::<usize>(), 100);
        assert_eq!(rows_of(&chosen), rows_of(&all_sorted));
        let other_seed = sample_of(&ctx, 43, 100).await;
        assert_ne!(
            rows_of(&chosen),
            rows_of(&other_seed),
            "the seed picks the rows"
        );
        let small = summaries_of(50);
        let every = sample_of(&small, 42, 100).await;
        assert_eq!(every.iter().map(RecordBatch::num_rows).sum::<usize>(), 50);
        let small_sorted = smallest_summaries(&small, 42, 100).await;
        assert_eq!(rows_of(&every), rows_of(&small_sorted));
    }

    /// The driver's sort orders like DataFusion's `ORDER BY sample_key, interval, keys…`
    /// (ascending, nulls last), ties and null keys included.
    #[tokio::test]
    async fn driver_sort_matches_datafusion_on_ties_and_nulls() {
        let n = 40;
        let day = 86_400_000_000;
        let maybe = |f: &dyn Fn(usize) -> Option<String>| {
            Arc::new(StringArray::from((0..n).map(f).collect::<Vec<_>>())) as ArrayRef
        };
        let batch = RecordBatch::try_from_iter([
            (
                SAMPLE_KEY,
                Arc::new(arrow::array::UInt64Array::from_iter_values(
                    (0..n as u64).map(|i| i % 4),
                )) as ArrayRef,
            ),
            (
                INTERVAL,
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(
                        (0..n).map(|i| (i % 2) as i64 * day),
                    )
                    .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (
                GROUP_KEYS[0],
                maybe(&|i| (i % 3 != 0).then(|| format!("h{}", i % 5))),
            ),
            (GROUP_KEYS[1], maybe(&|i| Some(format!("a{}", i % 7)))),
            (GROUP_KEYS[2], maybe(&|i| (i % 5 != 0).then(String::new))),
            (GROUP_KEYS[3], maybe(&|i| Some(format!("p{i}")))),
        ])
        .unwrap();
        let ours = smallest_by_key(&[batch.slice(0, 15), batch.slice(15, n - 15)], 25)
            .unwrap()
            .unwrap();
        let ctx = SessionContext::new();
        let mut order = vec![column(SAMPLE_KEY).sort(true, false)];
        order.extend(key_parts().into_iter().map(|k| k.sort(true, false)));
        let theirs = ctx
            .read_batch(batch)
            .unwrap()
            .sort(order)
            .unwrap()
            .limit(0, Some(25))
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(ours.num_rows(), 25);
        assert_eq!(rows_of(&[ours]), rows_of(&theirs));
    }
}
