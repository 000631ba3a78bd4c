//! Resolving the files' deletion vectors into the rows they delete.
//!
//! Inline vectors are decoded from the log; stored ones are read from the table's storage,
//! each file's framed bytes at its offset, checksum verified
//! ([`procforest_core::deleted_rows`] has the format). A vector whose cardinality disagrees
//! with its rows, a row beyond its file, or a missing or corrupt vector file is an error
//! naming the data file and the vector: the run reads nothing it cannot trust.

use std::sync::Arc;

use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use parquet::file::metadata::ParquetMetaDataReader;
use procforest_core::deleted_rows::{self, DeletedRows, FormatError};
use roaring::RoaringTreemap;

use super::EventTable;
use crate::{
    error::{PipelineError, Result},
    setting::Setting,
};

/// Vector files read at once.
const CONCURRENT_READS: usize = 16;

/// A file whose deletion vector is wanted.
pub(super) struct Wanted {
    /// The caller's index of the file.
    pub file: usize,
    /// The data file's path as the log has it.
    pub path: String,
    /// The data file's size.
    pub size: u64,
    /// Its row count from the log's statistics.
    pub num_records: Option<u64>,
    pub descriptor: DeletionVectorDescriptor,
}

/// Each wanted file's index and deleted rows.
pub(super) async fn read(
    table: &EventTable,
    wanted: Vec<Wanted>,
) -> Result<Vec<(usize, DeletedRows)>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let store = table.table.log_store().object_store(None);
    futures::stream::iter(wanted)
        .map(|w| {
            let store = store.clone();
            async move {
                let deleted = resolve(table, &store, &w).await?;
                Ok::<_, PipelineError>((w.file, deleted))
            }
        })
        .buffer_unordered(CONCURRENT_READS)
        .try_collect()
        .await
}

async fn resolve(
    table: &EventTable,
    store: &Arc<dyn ObjectStore>,
    w: &Wanted,
) -> Result<DeletedRows> {
    let d = &w.descriptor;
    let bad = |what: String| {
        PipelineError::bad_setting(
            Setting::Table,
            format!(
                "{} (version {}): the deletion vector of file {}: {what}",
                table.location, table.version, w.path
            ),
        )
    };
    let size = u32::try_from(d.size_in_bytes)
        .map_err(|_| bad(format!("sizeInBytes {} is negative", d.size_in_bytes)))?;
    let rows: RoaringTreemap = match d.storage_type {
        StorageType::Inline => deleted_rows::decode_inline(&d.path_or_inline_dv, size)
            .map_err(|e| bad(format!("inline: {e}")))?,
        StorageType::UuidRelativePath | StorageType::AbsolutePath => {
            let path = vector_path(table, d).map_err(|e| bad(e.to_string()))?;
            let offset = d.offset.unwrap_or(1);
            let offset =
                u64::try_from(offset).map_err(|_| bad(format!("offset {offset} is negative")))?;
            let framed = store
                .get_range(&path, offset..offset + size as u64 + 8)
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => {
                        bad(format!("{path} is named in the log but missing"))
                    }
                    other => PipelineError::Runtime {
                        what: format!("reading deletion vector file {path}"),
                        source: Some(Box::new(other)),
                    },
                })?;
            deleted_rows::decode_stored(&framed, size).map_err(|e| bad(format!("{path}: {e}")))?
        }
    };
    if rows.len() != d.cardinality as u64 {
        return Err(bad(format!(
            "it deletes {} rows, its cardinality says {}",
            rows.len(),
            d.cardinality
        )));
    }
    let file_rows = match w.num_records {
        Some(n) => n,
        None => parquet_rows(store, &w.path, w.size)
            .await
            .map_err(|e| bad(format!("counting the file's rows: {e}")))?,
    };
    DeletedRows::new(file_rows, rows).map_err(|e| bad(e.to_string()))
}

/// Where a stored vector is, relative to the table's root.
fn vector_path(
    table: &EventTable,
    d: &DeletionVectorDescriptor,
) -> std::result::Result<Path, FormatError> {
    let relative = match d.storage_type {
        StorageType::AbsolutePath => {
            let absolute = d.path_or_inline_dv.as_str();
            absolute
                .strip_prefix(table.url.as_str())
                .map(str::to_string)
                .ok_or_else(|| {
                    FormatError::Encoding(format!(
                        "{absolute} is outside the table's location {}",
                        table.url
                    ))
                })?
        }
        _ => deleted_rows::relative_file_name(&d.path_or_inline_dv)?,
    };
    Path::parse(&relative).map_err(|e| FormatError::Encoding(format!("{relative}: {e}")))
}

/// A data file's row count from its footer, for a log without statistics.
async fn parquet_rows(
    store: &Arc<dyn ObjectStore>,
    path: &str,
    size: u64,
) -> std::result::Result<u64, Box<dyn std::error::Error + Send + Sync>> {
    let path = Path::parse(path)?;
    let tail_start = size.checked_sub(8).ok_or("shorter than a Parquet footer")?;
    let tail = store.get_range(&path, tail_start..size).await?;
    if &tail[4..] != b"PAR1" {
        return Err("not a Parquet file (no PAR1 at its end)".into());
    }
    let length = u32::from_le_bytes(tail[..4].try_into().expect("four bytes")) as u64;
    let start = tail_start
        .checked_sub(length)
        .ok_or("its footer is longer than the file")?;
    let footer = store.get_range(&path, start..tail_start).await?;
    let metadata = ParquetMetaDataReader::decode_metadata(&footer)?;
    Ok(metadata.file_metadata().num_rows().max(0) as u64)
}
