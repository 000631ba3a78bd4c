//! Category indices: for each of Computer, Account, AccountType and Process, its values
//! numbered by descending frequency over the summary rows, ties by value ascending (Spark
//! `StringIndexer` with `frequencyDesc`); a null is a value of its own, after the others
//! on ties. Computed on the cluster, one small job per column, the four at once (a `UNION
//! ALL` of the four would hit apache/datafusion-ballista#2067 and #2184), written beside
//! the summaries. The driver then reads them back and, when they are small, registers a
//! lookup function per column that carries its index in the plan, so that features need
//! no join ([`read_lookups`]); larger indices are joined as tables.

use datafusion::{
    dataframe::DataFrameWriteOptions, datasource::file_format::options::ParquetReadOptions,
    prelude::SessionContext,
};
use procforest_core::events::GROUP_KEYS;

use super::{
    quote,
    summaries::{rows_written, scratch_parquet},
};
use crate::error::{Context, Result};

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

/// SQL computing the index of one key column from the registered `summaries`.
pub fn index_sql(key: &str) -> String {
    format!(
        "SELECT {value}, {groups}, \
         CAST(row_number() OVER (ORDER BY {groups} DESC, {value} ASC NULLS LAST) - 1 AS BIGINT) AS {idx} \
         FROM (SELECT {k} AS {value}, count(*) AS {groups} FROM summaries GROUP BY {k})",
        k = quote(key),
        value = quote(VALUE),
        groups = quote(GROUPS),
        idx = quote(INDEX),
    )
}

/// Computes every key column's index (the four small jobs run at once), writes it under
/// `dir/<column>/` and registers it as [`table_name`]; returns the number of categories
/// per column.
pub async fn write_indices(ctx: &SessionContext, dir: &str) -> Result<Vec<(&'static str, u64)>> {
    futures::future::try_join_all(GROUP_KEYS.map(|key| write_index(ctx, dir, key))).await
}

async fn write_index(
    ctx: &SessionContext,
    dir: &str,
    key: &'static str,
) -> Result<(&'static str, u64)> {
    let path = format!("{dir}{}/", key.to_lowercase());
    let df = ctx
        .sql(&index_sql(key))
        .await
        .runtime(format!("planning the {key} index"))?;
    let written = df
        .write_parquet(&path, DataFrameWriteOptions::new(), Some(scratch_parquet()))
        .await
        .runtime(format!("computing the {key} index"))?;
    ctx.register_parquet(table_name(key), &path, ParquetReadOptions::default())
        .await
        .runtime(format!("reading the {key} index"))?;
    Ok((key, rows_written(&written)))
}

/// Most bytes of category values the plan may carry as lookups (see [`read_lookups`]);
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

/// Reads the written indices back on the driver (they are small: one row per category)
/// and registers a lookup function per key column; returns how the features should find
/// the indices: [`Indices::Tables`] when the values exceed [`MAX_LOOKUP_BYTES`].
pub async fn read_lookups(ctx: &SessionContext, dir: &str) -> Result<Indices> {
    use arrow::{
        array::{Array, AsArray},
        compute::cast,
        datatypes::DataType,
    };
    let local = super::driver_session(ctx);
    let mut lookups = Vec::with_capacity(GROUP_KEYS.len());
    let mut bytes = 0;
    for key in GROUP_KEYS {
        let path = format!("{dir}{}/", key.to_lowercase());
        let batches = local
            .read_parquet(&path, ParquetReadOptions::default())
            .await
            .and_then(|df| df.sort(vec![datafusion::prelude::col(INDEX).sort(true, false)]))
            .runtime(format!("reading the {key} index"))?
            .collect()
            .await
            .runtime(format!("reading the {key} index"))?;
        let mut values = Vec::new();
        for batch in &batches {
            let column = batch
                .column_by_name(VALUE)
                .ok_or_else(|| crate::error::JobError::runtime("index without values"))?;
            let column = cast(column, &DataType::Utf8).runtime("reading an index")?;
            let column = column.as_string::<i32>();
            for i in 0..column.len() {
                let value = column.is_valid(i).then(|| column.value(i).to_string());
                bytes += value.as_ref().map_or(4, |v| v.len() + 4);
                values.push(value);
            }
        }
        if bytes > MAX_LOOKUP_BYTES {
            return Ok(Indices::Tables);
        }
        lookups.push(
            procforest_core::udf::CategoryIndexUdf::new(key, values)
                .runtime(format!("the {key} index"))?,
        );
    }
    for lookup in lookups {
        ctx.register_udf(lookup.into_udf());
    }
    Ok(Indices::Lookups)
}
