//! Writing event tables with delta-rs: create, stream batches, commit, and put side files
//! (ground truth) beside the data.

use arrow::record_batch::RecordBatch;
use deltalake::{
    DeltaTable, DeltaTableBuilder, TableProperty,
    kernel::{StructType, engine::arrow_conversion::TryIntoKernel},
    parquet::{arrow::ArrowWriter, file::properties::WriterProperties},
    protocol::SaveMode,
    writer::{DeltaWriter, RecordBatchWriter},
};
use object_store::{ObjectStoreExt, PutPayload, path::Path};
use procforest_core::schema::{EVENT_DATE, event_schema};

use procforest_pipeline::error::{Context, PipelineError, Result};
use procforest_pipeline::source::table_url_for_write;

/// Commits between checkpoints of a generated table: Spark's default for Delta tables, so
/// that the log looks like that of a table written daily by Databricks (a checkpoint and
/// at most nine commits to replay), not 30 commits without one (delta-rs's default is
/// 100). delta-rs writes the checkpoints after the commits.
pub const CHECKPOINT_INTERVAL: &str = "10";

/// Streams event batches into a new Delta table partitioned by `EventDate`.
pub struct EventTableWriter {
    table: DeltaTable,
    writer: RecordBatchWriter,
}

impl EventTableWriter {
    /// Creates the table at `location`, with deletion vectors enabled if asked; an
    /// existing table is refused.
    pub async fn create(location: &str, deletion_vectors: bool) -> Result<Self> {
        let url = table_url_for_write(location)?;
        let schema: StructType = event_schema()
            .as_ref()
            .try_into_kernel()
            .runtime("converting the event schema")?;
        let table = DeltaTableBuilder::from_url(url.clone())
            .bad_input(format!("table location {location}"))?
            .build()
            .bad_input(format!("table location {location}"))?
            .create()
            .with_columns(schema.fields().cloned())
            .with_partition_columns([EVENT_DATE])
            .with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL),
            )
            .with_configuration_property(
                TableProperty::EnableDeletionVectors,
                deletion_vectors.then_some("true"),
            )
            .with_save_mode(SaveMode::ErrorIfExists)
            .await
            .map_err(|e| {
                if e.to_string().contains("already exists") {
                    PipelineError::bad_input(format!("{location}: a table already exists there"))
                } else {
                    PipelineError::runtime(format!("creating the table at {location}: {e}"))
                }
            })?;
        Self::with_writer(table)
    }

    /// Opens the existing table at `location` to append events.
    pub async fn append(location: &str) -> Result<Self> {
        let url = table_url_for_write(location)?;
        let table = deltalake::open_table(url)
            .await
            .bad_input(format!("opening the table at {location}"))?;
        Self::with_writer(table)
    }

    fn with_writer(table: DeltaTable) -> Result<Self> {
        let writer = RecordBatchWriter::for_table(&table)
            .runtime("opening a writer")?
            .with_writer_properties(
                WriterProperties::builder()
                    .set_compression(deltalake::parquet::basic::Compression::ZSTD(
                        Default::default(),
                    ))
                    .set_max_row_group_row_count(Some(256 * 1024))
                    .build(),
            );
        Ok(Self { table, writer })
    }

    /// Writes a batch (buffered until [`Self::commit`]).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        self.writer.write(batch).await.runtime("writing events")
    }

    /// Flushes buffered files and commits them as one table version.
    pub async fn commit(&mut self) -> Result<()> {
        self.writer
            .flush_and_commit(&mut self.table)
            .await
            .runtime("committing events")?;
        Ok(())
    }

    /// The table's current version.
    pub fn version(&self) -> i64 {
        self.table.version().map(|v| v as i64).unwrap_or(-1)
    }

    /// The table.
    pub fn table(&self) -> &DeltaTable {
        &self.table
    }

    /// The table, to commit to it directly.
    pub fn table_mut(&mut self) -> &mut DeltaTable {
        &mut self.table
    }

    /// Writes ground-truth labels and the generator's settings under `_procforest/`.
    pub async fn put_labels(
        &self,
        labels: &[crate::labels::Label],
        settings: &impl serde::Serialize,
    ) -> Result<()> {
        let batch = crate::labels::to_batch(labels).runtime("building labels")?;
        put_parquet(&self.table, crate::labels::LABELS_PATH, &batch).await?;
        let json = serde_json::to_vec_pretty(settings).runtime("serialising settings")?;
        put_bytes(&self.table, "_procforest/generated.json", json).await
    }
}

/// Writes one batch as a Parquet file at `path` relative to the table root.
pub async fn put_parquet(table: &DeltaTable, path: &str, batch: &RecordBatch) -> Result<()> {
    let mut bytes = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut bytes, batch.schema(), None).runtime("writing parquet")?;
    writer.write(batch).runtime("writing parquet")?;
    writer.close().runtime("writing parquet")?;
    put_bytes(table, path, bytes).await
}

/// Writes bytes at `path` relative to the table root.
pub async fn put_bytes(table: &DeltaTable, path: &str, bytes: Vec<u8>) -> Result<()> {
    let store = table.log_store().object_store(None);
    store
        .put(&Path::from(path), PutPayload::from(bytes))
        .await
        .runtime(format!("writing {path}"))?;
    Ok(())
}

/// Reads a Parquet side file at `path` relative to the table root; `None` if absent.
pub async fn get_parquet(table: &DeltaTable, path: &str) -> Result<Option<Vec<RecordBatch>>> {
    let store = table.log_store().object_store(None);
    let bytes = match store.get(&Path::from(path)).await {
        Ok(r) => r.bytes().await.runtime(format!("reading {path}"))?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(PipelineError::runtime(format!("reading {path}: {e}"))),
    };
    let reader =
        deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .runtime(format!("reading {path}"))?
            .build()
            .runtime(format!("reading {path}"))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .runtime(format!("reading {path}"))?;
    Ok(Some(batches))
}
