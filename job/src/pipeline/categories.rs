//! Category indices: for each of Computer, Account, AccountType and Process, its values
//! numbered by descending frequency over the summary rows, ties by value ascending (Spark
//! `StringIndexer` with `frequencyDesc`); a null is a value of its own, after the others
//! on ties.
//!
//! The frequencies are counted on the cluster in one job, beside the summaries' totals
//! ([`count`]: a `GROUPING SETS` aggregation with a set per key column and the grand
//! total; a `UNION ALL` of four aggregations would hit apache/datafusion-ballista#2067 and
//! #2184), and collected to the driver, which numbers them (one row per category). When
//! they are small, the driver registers a lookup function per column that carries its
//! index in the plan, so that features need no join; larger indices are written to
//! scratch and joined as tables ([`register`]).

use arrow::{
    array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray},
    compute::cast,
    datatypes::{DataType, Int32Type, Int64Type},
};
use datafusion::{datasource::file_format::options::ParquetReadOptions, prelude::SessionContext};
use procforest_core::events::GROUP_KEYS;
use std::sync::Arc;

use super::{
    features::SUMMARIES,
    quote,
    summaries::{self, COUNT, INTERVAL},
    timestamp_sql,
};
use crate::error::{Context, JobError, Result};

/// The category value.
pub const VALUE: &str = "value";
/// Summary rows holding it.
pub const GROUPS: &str = "groups";
/// Its index (0 = most frequent).
pub const INDEX: &str = "idx";

/// The registered name of a key column's index table, e.g. `index_computer`.
pub fn table_name(key: &str) -> String {
    format!("index_{}", key.to_lowercase())
}

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

/// The grouping-set bitmask of the grand total (every key aggregated away).
const TOTAL: i32 = (1 << GROUP_KEYS.len()) - 1;

/// SQL of the census of the registered `summaries`: a row per category of each key
/// column and one for the grand total, told apart by `grouping(keys…)` (of four keys, bit
/// `3 - i` clear when the row is a category of key `i`).
fn census_sql(report_start_us: i64, report_end_us: i64) -> String {
    let keys: Vec<String> = GROUP_KEYS.iter().map(|k| quote(k)).collect();
    let sets: Vec<String> = keys.iter().map(|k| format!("({k})")).collect();
    format!(
        "SELECT CAST(grouping({keys}) AS INT) AS grouping_set, {keys}, \
         count(*) AS {groups}, CAST(sum({count}) AS BIGINT) AS events, \
         CAST(sum(CASE WHEN {interval} >= {start} AND {interval} <= {end} THEN 1 ELSE 0 END) \
         AS BIGINT) AS report_groups \
         FROM {SUMMARIES} GROUP BY GROUPING SETS ({sets}, ())",
        keys = keys.join(", "),
        sets = sets.join(", "),
        groups = quote(GROUPS),
        count = quote(COUNT),
        interval = quote(INTERVAL),
        start = timestamp_sql(report_start_us),
        end = timestamp_sql(report_end_us),
    )
}

/// Counts the registered `summaries` by category of each key column (one job on the
/// cluster) and numbers the categories; the report window is `[report_start_us,
/// report_end_us]`.
pub async fn count(
    ctx: &SessionContext,
    report_start_us: i64,
    report_end_us: i64,
) -> Result<Census> {
    let batches = ctx
        .sql(&census_sql(report_start_us, report_end_us))
        .await
        .runtime("planning the category indices")?
        .collect()
        .await
        .runtime("computing the category indices")?;
    let mut counts: Vec<Vec<(Option<String>, u64)>> = vec![Vec::new(); GROUP_KEYS.len()];
    let (mut events, mut report_groups) = (0, 0);
    for batch in &batches {
        let column_as = |name: &str, data_type: &DataType| -> Result<ArrayRef> {
            let column = batch
                .column_by_name(name)
                .ok_or_else(|| JobError::runtime(format!("category counts without {name}")))?;
            cast(column, data_type).runtime("reading the category counts")
        };
        let sets = column_as("grouping_set", &DataType::Int32)?;
        let sets = sets.as_primitive::<Int32Type>();
        let groups = column_as(GROUPS, &DataType::Int64)?;
        let groups = groups.as_primitive::<Int64Type>();
        let keys = GROUP_KEYS
            .iter()
            .map(|k| column_as(k, &DataType::Utf8))
            .collect::<Result<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            let set = sets.value(row);
            if set == TOTAL {
                let total = |name| -> Result<u64> {
                    let column = column_as(name, &DataType::Int64)?;
                    let column = column.as_primitive::<Int64Type>();
                    Ok(if column.is_valid(row) {
                        column.value(row) as u64
                    } else {
                        0
                    })
                };
                events = total("events")?;
                report_groups = total("report_groups")?;
                continue;
            }
            let Some(i) =
                (0..GROUP_KEYS.len()).find(|i| set == TOTAL & !(1 << (GROUP_KEYS.len() - 1 - i)))
            else {
                return Err(JobError::runtime(format!(
                    "category counts: unexpected grouping set {set}"
                )));
            };
            let values = keys[i].as_string::<i32>();
            let value = values.is_valid(row).then(|| values.value(row).to_string());
            counts[i].push((value, groups.value(row) as u64));
        }
    }
    let indices = GROUP_KEYS
        .iter()
        .zip(counts)
        .map(|(key, values)| CategoryIndex::new(key, values))
        .collect();
    Ok(Census {
        indices,
        events,
        report_groups,
    })
}

/// Most bytes of category values the plan may carry as lookups (see [`register`]);
/// larger indices are joined as tables.
pub const MAX_LOOKUP_BYTES: usize = 4 << 20;

/// How the features find each category's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indices {
    /// Joined with the index tables ([`table_name`]).
    Tables,
    /// Looked up by functions registered in the session, which carry the indices in the
    /// plan ([`procforest_core::udf::CategoryIndexUdf`]).
    Lookups,
}

/// Makes the census's indices available to the features: a lookup function per key
/// column registered in `ctx` when their values take at most `max_lookup_bytes`
/// ([`MAX_LOOKUP_BYTES`] in a run), otherwise index tables written by the driver under
/// scratch folder `dir` and registered as [`table_name`]. Returns which.
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
        ctx.register_parquet(table_name(index.key), &path, ParquetReadOptions::default())
            .await
            .runtime(format!("reading the {} index", index.key))?;
    }
    Ok(Indices::Tables)
}

/// Registers in `to` the lookup functions [`register`] registered in `from` (for a
/// driver-side session computing features).
pub fn copy_lookups(from: &SessionContext, to: &SessionContext) -> Result<()> {
    use datafusion::execution::FunctionRegistry;
    for key in GROUP_KEYS {
        let name = procforest_core::udf::category_index_name(key);
        let udf = from.udf(&name).runtime(format!("the {key} index lookup"))?;
        to.register_udf(udf.as_ref().clone());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use arrow::array::TimestampMicrosecondArray;

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
        ctx.register_batch(SUMMARIES, batch).unwrap();
        ctx
    }

    /// The indices equal Spark's `frequencyDesc` numbering computed by DataFusion's window
    /// function over each column apart (ties by value, null last), and the totals equal
    /// plain sums.
    #[tokio::test]
    async fn census_numbers_categories_as_a_window_over_each_column() {
        let ctx = summaries_with_gaps();
        let census = count(&ctx, DAY, 2 * DAY - 1).await.unwrap();
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
        let census = count(&ctx, 0, DAY - 1).await.unwrap();
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
            t = table_name(GROUP_KEYS[3]),
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
