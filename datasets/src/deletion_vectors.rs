//! Deleting rows with deletion vectors, as Spark's `DELETE` and `MERGE` do on a table
//! with `delta.enableDeletionVectors`: the data files stay, and one commit replaces each
//! touched file's `add` with one that carries a vector of its deleted rows.
//!
//! Written from the Delta protocol ("Deletion Vectors"); the encoding is
//! [`procforest_core::deleted_rows`], which the source's tests check byte for byte against
//! a vector Spark wrote. Vectors alternate between the two storages Spark and the protocol
//! allow: inline in the log, and framed one after another in a shared `.bin` file.
//!
//! [`dedupe`] is what the usual ingestion pipeline for SecurityEvent does nightly (a
//! `MERGE` that keeps one of each duplicated event): within each file, every row equal to
//! an earlier one is deleted.

use std::collections::{BTreeMap, HashSet};

use arrow::row::{RowConverter, SortField};
use deltalake::{
    DeltaTable,
    kernel::{
        Action, Add, DeletionVectorDescriptor, Remove, StorageType,
        transaction::{CommitBuilder, CommitProperties},
    },
    protocol::DeltaOperation,
};
use procforest_core::deleted_rows::{self, FILE_FORMAT_VERSION};
use procforest_pipeline::error::{Context, PipelineError, Result};
use roaring::RoaringTreemap;

use crate::delta_writer::{active_files, get_bytes, put_bytes};

/// What [`dedupe`] deleted.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Deleted {
    /// Files that got a vector.
    pub files: usize,
    /// Of which inline.
    pub inline: usize,
    /// Rows deleted.
    pub rows: u64,
}

/// Deletes, in every file of `table`, each row equal to an earlier row of the file; one
/// commit. Files holding no duplicate are left alone.
pub async fn dedupe(table: &mut DeltaTable) -> Result<Deleted> {
    let mut deletions = BTreeMap::new();
    for file in active_files(table)? {
        if file.deletion_vector_descriptor().is_some() {
            return Err(PipelineError::bad_input(format!(
                "{} already has a deletion vector",
                file.path()
            )));
        }
        let bytes = get_bytes(table, file.path().as_ref()).await?;
        let rows = repeated_rows(bytes).runtime(format!("reading {}", file.path()))?;
        if !rows.is_empty() {
            deletions.insert(file.path().into_owned(), rows);
        }
    }
    delete_rows(table, deletions).await
}

/// The indexes of the rows of a Parquet file equal to an earlier row.
fn repeated_rows(
    bytes: bytes::Bytes,
) -> std::result::Result<RoaringTreemap, Box<dyn std::error::Error + Send + Sync>> {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut seen = HashSet::new();
    let mut repeated = RoaringTreemap::new();
    let mut index = 0u64;
    let mut converter = None;
    for batch in reader {
        let batch = batch?;
        let converter = match &mut converter {
            Some(c) => c,
            None => converter.insert(RowConverter::new(
                batch
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| SortField::new(f.data_type().clone()))
                    .collect(),
            )?),
        };
        let rows = converter.convert_columns(batch.columns())?;
        for row in rows.iter() {
            if !seen.insert(row.as_ref().to_vec()) {
                repeated.insert(index);
            }
            index += 1;
        }
    }
    Ok(repeated)
}

/// Deletes the given rows of the given files (by path as the log has it), in one commit.
pub async fn delete_rows(
    table: &mut DeltaTable,
    deletions: BTreeMap<String, RoaringTreemap>,
) -> Result<Deleted> {
    let mut deleted = Deleted::default();
    if deletions.is_empty() {
        return Ok(deleted);
    }
    let files: BTreeMap<String, _> = active_files(table)?
        .into_iter()
        .map(|f| (f.path().into_owned(), f))
        .collect();
    // The stored vectors share one file, named from its content (the generator is
    // deterministic): its version byte, then each vector framed.
    let mut stored = vec![FILE_FORMAT_VERSION];
    let mut descriptors = Vec::new();
    for (i, (path, rows)) in deletions.iter().enumerate() {
        let file = files
            .get(path)
            .ok_or_else(|| PipelineError::bad_input(format!("{path} is not in the table")))?;
        deleted.files += 1;
        deleted.rows += rows.len();
        let (storage_type, path_or_inline_dv, offset, size_in_bytes) = if i % 2 == 0 {
            deleted.inline += 1;
            let (text, size) = deleted_rows::encode_inline(rows);
            (StorageType::Inline, text, None, size)
        } else {
            let offset = stored.len() as i32;
            let framed = deleted_rows::encode_stored(rows);
            let size = framed.len() as u32 - 8;
            stored.extend_from_slice(&framed);
            (
                StorageType::UuidRelativePath,
                String::new(),
                Some(offset),
                size,
            )
        };
        descriptors.push((
            file,
            DeletionVectorDescriptor {
                storage_type,
                path_or_inline_dv,
                offset,
                size_in_bytes: size_in_bytes as i32,
                cardinality: rows.len() as i64,
            },
        ));
    }
    let uuid = content_uuid(&stored);
    let vector_file = deleted_rows::encode_file_name("", uuid);
    if stored.len() > 1 {
        let name = deleted_rows::relative_file_name(&vector_file).runtime("naming the vectors")?;
        put_bytes(table, &name, stored).await?;
    }
    let now = chrono::Utc::now().timestamp_millis();
    let mut actions = Vec::new();
    for (file, mut descriptor) in descriptors {
        if descriptor.storage_type == StorageType::UuidRelativePath {
            descriptor.path_or_inline_dv = vector_file.clone();
        }
        let path = file.path().into_owned();
        let partition_values = file.partition_values_map();
        actions.push(Action::Remove(Remove {
            path: path.clone(),
            data_change: true,
            deletion_timestamp: Some(now),
            extended_file_metadata: Some(true),
            partition_values: Some(partition_values.clone()),
            size: Some(file.size()),
            ..Default::default()
        }));
        actions.push(Action::Add(Add {
            path,
            partition_values,
            size: file.size(),
            modification_time: file.modification_time(),
            data_change: true,
            stats: file.stats(),
            deletion_vector: Some(descriptor),
            ..Default::default()
        }));
    }
    CommitBuilder::from(CommitProperties::default())
        .with_actions(actions)
        .build(
            Some(table.snapshot().runtime("reading the snapshot")?),
            table.log_store(),
            DeltaOperation::Delete { predicate: None },
        )
        .await
        .runtime("committing the deletion vectors")?;
    table.update_state().await.runtime("reloading the table")?;
    Ok(deleted)
}

/// A version-4-shaped UUID from a hash of `bytes`.
fn content_uuid(bytes: &[u8]) -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut uuid = [0u8; 16];
    for (seed, half) in uuid.chunks_mut(8).enumerate() {
        let mut h = foldhash::fast::FixedState::with_seed(seed as u64).build_hasher();
        h.write(bytes);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}
