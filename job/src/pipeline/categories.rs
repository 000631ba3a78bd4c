//! Category indices: for each of Computer, Account, AccountType and Process, its values
//! numbered by descending frequency over the summary rows, ties by value ascending (Spark
//! `StringIndexer` with `frequencyDesc`); a null is a value of its own, after the others
//! on ties. Computed on the cluster and written beside the summaries.

use datafusion::{dataframe::DataFrameWriteOptions, prelude::SessionContext};
use procforest_core::events::GROUP_KEYS;

use super::{quote, summaries::rows_written};
use crate::error::{Context, Result};

/// Columns of the categories table.
pub const COLUMN: &str = "column";
/// The category value.
pub const VALUE: &str = "value";
/// Summary rows holding it.
pub const GROUPS: &str = "groups";
/// Its index (0 = most frequent).
pub const INDEX: &str = "idx";

/// SQL computing every column's index from the registered `summaries`.
pub fn categories_sql() -> String {
    let per_column: Vec<String> = GROUP_KEYS
        .iter()
        .map(|c| {
            format!(
                "SELECT '{c}' AS {col}, {q} AS {value}, count(*) AS {groups} FROM summaries GROUP BY {q}",
                q = quote(c),
                col = quote(COLUMN),
                value = quote(VALUE),
                groups = quote(GROUPS),
            )
        })
        .collect();
    format!(
        "SELECT {col}, {value}, {groups}, \
         CAST(row_number() OVER (PARTITION BY {col} ORDER BY {groups} DESC, {value} ASC NULLS LAST) - 1 AS BIGINT) AS {idx} \
         FROM ({union})",
        col = quote(COLUMN),
        value = quote(VALUE),
        groups = quote(GROUPS),
        idx = quote(INDEX),
        union = per_column.join(" UNION ALL ")
    )
}

/// Computes the indices and writes them under `dir`; returns the number of categories.
pub async fn write_categories(ctx: &SessionContext, dir: &str) -> Result<u64> {
    let df = ctx
        .sql(&categories_sql())
        .await
        .runtime("planning category indices")?;
    let written = df
        .write_parquet(dir, DataFrameWriteOptions::new(), None)
        .await
        .runtime("computing category indices")?;
    Ok(rows_written(&written))
}
