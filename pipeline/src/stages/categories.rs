//! Category indices: for each of Computer, Account, AccountType and Process, its values
//! numbered by descending frequency over the summary rows, ties by value ascending (Spark
//! `StringIndexer` with `frequencyDesc`); a null is a value of its own, after the others
//! on ties.
//!
//! The frequencies are tallied by the summaries' writers as they write
//! ([`procforest_core::partition_writer::digest`]: each partition its own categories' summary
//! rows), and the driver adds them up and numbers them ([`Census::from_digests`]). When
//! they are small, the driver registers a lookup function per column that carries its
//! index in the plan, so that features need no join; larger indices are written to
//! scratch and joined as tables ([`register`]).

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use datafusion::{datasource::file_format::options::ParquetReadOptions, prelude::SessionContext};
use procforest_core::{
    partition_writer::digest::Digests,
    schema::{
        GROUP_KEYS,
        category_index::{GROUPS, INDEX, VALUE},
        table::category_index,
    },
};
use std::sync::Arc;

use super::summaries;
use crate::error::{Context, Result};

/// One key column's categories, in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryIndex {
    /// The key column.
    pub key: &'static str,
    /// Each value (null included) and the summary rows holding it; its position is its
    /// index.
    pub values: Vec<(Option<String>, u64)>,
}

impl CategoryIndex {
    /// Numbers `counts` (value, summary rows) by descending rows, ties by value ascending,
    /// null last.
    fn new(key: &'static str, mut values: Vec<(Option<String>, u64)>) -> Self {
        values.sort_unstable_by(|(a, a_rows), (b, b_rows)| {
            b_rows.cmp(a_rows).then_with(|| match (a, b) {
                (Some(a), Some(b)) => a.as_bytes().cmp(b.as_bytes()),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            })
        });
        Self { key, values }
    }

    /// Summary rows whose value is `value`.
    pub fn rows_of(&self, value: Option<&str>) -> u64 {
        self.values
            .iter()
            .find(|(v, _)| v.as_deref() == value)
            .map_or(0, |(_, rows)| *rows)
    }

    /// The index as a table: [`VALUE`], [`GROUPS`], [`INDEX`].
    fn to_batch(&self) -> Result<RecordBatch> {
        let values: StringArray = self.values.iter().map(|(v, _)| v.as_deref()).collect();
        let groups: Int64Array = self.values.iter().map(|(_, n)| *n as i64).collect();
        let index: Int64Array = (0..self.values.len() as i64).collect();
        RecordBatch::try_from_iter([
            (VALUE, Arc::new(values) as ArrayRef),
            (GROUPS, Arc::new(groups) as ArrayRef),
            (INDEX, Arc::new(index) as ArrayRef),
        ])
        .runtime(format!("the {} index", self.key))
    }
}

/// The summaries counted by category, and in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Each key column's index, in [`GROUP_KEYS`] order.
    pub indices: Vec<CategoryIndex>,
    /// Events (the sum of the summaries' counts).
    pub events: u64,
    /// Summary rows whose interval is in the report window.
    pub report_groups: u64,
}

impl Census {
    /// The census of the summaries whose digests are `digests`: each key column's
    /// categories numbered, and the totals.
    pub fn from_digests(digests: &Digests) -> Result<Self> {
        let tallies = digests
            .tallies()
            .runtime("reading the summaries' category counts")?;
        let indices = GROUP_KEYS
            .iter()
            .zip(tallies.categories)
            .map(|(key, values)| {
                let rows = values.into_iter().map(|(v, t)| (v, t.groups)).collect();
                CategoryIndex::new(key, rows)
            })
            .collect();
        Ok(Self {
            indices,
            events: tallies.total.events,
            report_groups: tallies.total.report_groups,
        })
    }
}

/// Most bytes of category values the plan may carry as lookups (see [`register`]);
/// larger indices are joined as tables.
pub const MAX_LOOKUP_BYTES: usize = 4 << 20;

/// How the features find each category's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indices {
    /// Joined with the index tables ([`procforest_core::schema::table::category_index`]).
    Tables,
    /// Looked up by functions registered in the session, which carry the indices in the
    /// plan ([`procforest_core::udf::CategoryIndexUdf`]).
    Lookups,
}

/// Makes the census's indices available to the features: a lookup function per key
/// column registered in `ctx` when their values take at most `max_lookup_bytes`
/// ([`MAX_LOOKUP_BYTES`] in a run), otherwise index tables written by the driver under
/// scratch folder `dir` and registered as [`procforest_core::schema::table::category_index`]. Returns which.
pub async fn register(
    ctx: &SessionContext,
    census: &Census,
    dir: &str,
    max_lookup_bytes: usize,
) -> Result<Indices> {
    let bytes: usize = census
        .indices
        .iter()
        .flat_map(|index| &index.values)
        .map(|(v, _)| v.as_ref().map_or(4, |v| v.len() + 4))
        .sum();
    if bytes <= max_lookup_bytes {
        for index in &census.indices {
            let values = index.values.iter().map(|(v, _)| v.clone()).collect();
            let lookup = procforest_core::udf::CategoryIndexUdf::new(index.key, values)
                .runtime(format!("the {} index", index.key))?;
            ctx.register_udf(lookup.into_udf());
        }
        return Ok(Indices::Lookups);
    }
    let local = super::driver_session(ctx);
    for index in &census.indices {
        let path = format!("{dir}{}/", index.key.to_lowercase());
        let rows = local
            .read_batch(index.to_batch()?)
            .runtime(format!("the {} index", index.key))?;
        summaries::write(rows, &path, &format!("the {} index", index.key)).await?;
        ctx.register_parquet(
            category_index(index.key),
            &path,
            ParquetReadOptions::default(),
        )
        .await
        .runtime(format!("reading the {} index", index.key))?;
    }
    Ok(Indices::Tables)
}

/// The four key columns' index lookups [`register`] registered in `ctx`, in
/// [`GROUP_KEYS`] order (for features computed on the driver).
pub fn lookups(ctx: &SessionContext) -> Result<Vec<Arc<datafusion::logical_expr::ScalarUDF>>> {
    use datafusion::execution::FunctionRegistry;
    GROUP_KEYS
        .iter()
        .map(|key| {
            let name = procforest_core::udf::category_index_name(key);
            ctx.udf(&name).runtime(format!("the {key} index lookup"))
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::{
        array::{Array, AsArray, TimestampMicrosecondArray},
        compute::cast,
        datatypes::{DataType, Int64Type},
    };
    use procforest_core::partition_writer::digest::DigestSpec;

    use procforest_core::schema::{COUNT, INTERVAL, table::SUMMARIES};

    use crate::stages::quote;

    use super::*;

    const DAY: i64 = 86_400_000_000;

    /// Summary rows with null and empty keys and ties, registered as `summaries`.
    pub(crate) fn summaries_with_gaps() -> SessionContext {
        let ctx = SessionContext::new();
        let strings = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let batch = RecordBatch::try_from_iter([
            (
                INTERVAL,
                Arc::new(
                    TimestampMicrosecondArray::from(vec![0, 0, DAY, DAY, 0, DAY, DAY])
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (
                GROUP_KEYS[0],
                strings(vec![
                    Some("h1"),
                    Some("h2"),
                    Some("h1"),
                    None,
                    Some(""),
                    Some("h2"),
                    None,
                ]),
            ),
            (
                GROUP_KEYS[1],
                strings(vec![
                    Some("a"),
                    Some("a"),
                    Some("b"),
                    Some("a"),
                    None,
                    Some("b"),
                    Some("c"),
                ]),
            ),
            (GROUP_KEYS[2], strings(vec![Some("User"); 7])),
            (
                GROUP_KEYS[3],
                strings(vec![
                    Some("p1"),
                    Some("p2"),
                    Some("p1"),
                    Some("p3"),
                    Some("p1"),
                    Some("p1"),
                    Some(""),
                ]),
            ),
            (
                COUNT,
                Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6, 7])) as ArrayRef,
            ),
        ])
        .unwrap();
        // Two partitions, as the summaries' writers digest them apart.
        let parts = vec![vec![batch.slice(0, 3)], vec![batch.slice(3, 4)]];
        let table = datafusion::datasource::MemTable::try_new(batch.schema(), parts).unwrap();
        ctx.register_table(SUMMARIES, Arc::new(table)).unwrap();
        ctx
    }

    /// The census of the registered `summaries` with the report window `[start, end]`, as
    /// a run takes it: from the digests their writers leave.
    pub(crate) async fn census_of(ctx: &SessionContext, start: i64, end: i64) -> Census {
        let spec = DigestSpec {
            dir: String::new(),
            seed: 42,
            sample_rows: 3,
            report_start_us: start,
            report_end_us: end,
        };
        let digests = summaries::digests_of_registered(ctx, spec).await;
        Census::from_digests(&digests).unwrap()
    }

    /// The indices numbered from the digests equal Spark's `frequencyDesc` numbering
    /// computed by DataFusion over each column apart (ties by value, null last), and the
    /// totals equal plain sums.
    #[tokio::test]
    async fn census_numbers_categories_as_a_window_over_each_column() {
        let ctx = summaries_with_gaps();
        let census = census_of(&ctx, DAY, 2 * DAY - 1).await;
        assert_eq!(census.events, 28);
        assert_eq!(census.report_groups, 4);
        for (index, key) in census.indices.iter().zip(GROUP_KEYS) {
            assert_eq!(index.key, key);
            let sql = format!(
                "SELECT v, n FROM (SELECT {k} AS v, count(*) AS n FROM summaries GROUP BY {k}) \
                 ORDER BY n DESC, v ASC NULLS LAST",
                k = quote(key)
            );
            let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            let mut expected = Vec::new();
            for batch in &batches {
                let v = batch.column(0).as_string::<i32>();
                let n = batch.column(1).as_primitive::<Int64Type>();
                for i in 0..batch.num_rows() {
                    expected.push((
                        v.is_valid(i).then(|| v.value(i).to_string()),
                        n.value(i) as u64,
                    ));
                }
            }
            assert_eq!(index.values, expected, "{key}");
        }
        let computer = &census.indices[0];
        assert_eq!(computer.rows_of(None), 2);
        assert_eq!(computer.rows_of(Some("")), 1);
        assert_eq!(computer.values[0].0.as_deref(), Some("h1"), "ties by value");
        assert_eq!(computer.values[2].0, None, "null after h2 on a tie");
    }

    /// An index written as a table reads back as the rows it holds.
    #[tokio::test]
    async fn large_indices_are_written_as_tables() {
        let ctx = summaries_with_gaps();
        let census = census_of(&ctx, 0, DAY - 1).await;
        let dir = tempfile::tempdir().unwrap();
        let dir = url::Url::from_directory_path(dir.path())
            .unwrap()
            .to_string();
        assert_eq!(
            register(&ctx, &census, &dir, 0).await.unwrap(),
            Indices::Tables
        );
        let sql = format!(
            "SELECT {v}, {g}, {i} FROM {t} ORDER BY {i}",
            v = quote(VALUE),
            g = quote(GROUPS),
            i = quote(INDEX),
            t = category_index(GROUP_KEYS[3]),
        );
        let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
        let rows: Vec<(Option<String>, u64)> = batches
            .iter()
            .flat_map(|b| {
                let v = cast(b.column(0), &DataType::Utf8).unwrap();
                let v = v.as_string::<i32>().clone();
                let g = b.column(1).as_primitive::<Int64Type>().clone();
                (0..b.num_rows()).map(move |i| {
                    (
                        v.is_valid(i).then(|| v.value(i).to_string()),
                        g.value(i) as u64,
                    )
                })
            })
            .collect();
        assert_eq!(rows, census.indices[3].values);
        assert_eq!(rows[0], (Some("p1".to_string()), 4));
    }
}
