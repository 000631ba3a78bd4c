//! Writing event tables with delta-rs: create, stream batches, commit, and put side files
//! (ground truth) beside the data.

use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::{
    DeltaTable, DeltaTableBuilder, TableProperty,
    kernel::{
        Action, StructType,
        engine::arrow_conversion::TryIntoKernel,
        transaction::{CommitBuilder, CommitProperties},
    },
    parquet::{arrow::ArrowWriter, file::properties::WriterProperties},
    protocol::DeltaOperation,
    protocol::SaveMode,
    writer::{DeltaWriter, RecordBatchWriter},
};
use object_store::{ObjectStoreExt, PutPayload, path::Path};
use procforest_core::schema::{EVENT_DATE, TIME_GENERATED, event_schema};

use procforest_pipeline::error::{Context, PipelineError, Result};
use procforest_pipeline::source::table_url_for_write;

/// Commits between checkpoints of a generated table: Spark's default for Delta tables, so
/// that the log looks like that of a table written daily by Databricks (a checkpoint and
/// at most nine commits to replay), not 30 commits without one (delta-rs's default is
/// 100). delta-rs writes the checkpoints after the commits.
pub const CHECKPOINT_INTERVAL: &str = "10";

/// How a written table lays its events out.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// Files per day (each a run of consecutive events).
    pub files_per_day: usize,
    /// Partitioned by `EventDate`; otherwise no partition column (as with liquid
    /// clustering), the files found by their statistics alone.
    pub partitioned: bool,
    /// `TimeGenerated` as `timestamp_ntz` (UTC wall-clock time without a zone).
    pub naive_time: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Self {
            files_per_day: 1,
            partitioned: true,
            naive_time: false,
        }
    }
}

/// Streams event batches into a new Delta table (partitioned by `EventDate`, unless its
/// layout says otherwise).
pub struct EventTableWriter {
    table: DeltaTable,
    writer: RecordBatchWriter,
    /// Files written and not yet committed.
    pending: Vec<deltalake::kernel::Add>,
    naive_time: bool,
}

impl EventTableWriter {
    /// Creates the table at `location` laid out as `layout`, with deletion vectors
    /// enabled if asked; an existing table is refused.
    pub async fn create(location: &str, deletion_vectors: bool, layout: Layout) -> Result<Self> {
        let url = table_url_for_write(location)?;
        let schema: StructType = table_schema(layout.naive_time)
            .as_ref()
            .try_into_kernel()
            .runtime("converting the event schema")?;
        let partition_columns: &[&str] = match layout.partitioned {
            true => &[EVENT_DATE],
            false => &[],
        };
        let table = DeltaTableBuilder::from_url(url.clone())
            .bad_input(format!("table location {location}"))?
            .build()
            .bad_input(format!("table location {location}"))?
            .create()
            .with_columns(schema.fields().cloned())
            .with_partition_columns(partition_columns.iter().copied())
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
        Self::with_writer(table, layout.naive_time)
    }

    /// Opens the existing table at `location` to append events.
    pub async fn append(location: &str) -> Result<Self> {
        let url = table_url_for_write(location)?;
        let table = deltalake::open_table(url)
            .await
            .bad_input(format!("opening the table at {location}"))?;
        let naive_time = table
            .snapshot()
            .runtime("reading the snapshot")?
            .snapshot()
            .arrow_schema()
            .field_with_name(TIME_GENERATED)
            .is_ok_and(|f| matches!(f.data_type(), DataType::Timestamp(_, None)));
        Self::with_writer(table, naive_time)
    }

    fn with_writer(table: DeltaTable, naive_time: bool) -> Result<Self> {
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
        Ok(Self {
            table,
            writer,
            pending: Vec::new(),
            naive_time,
        })
    }

    /// Writes a batch of [`event_schema`] (buffered until [`Self::end_file`] or
    /// [`Self::commit`]).
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let batch = match self.naive_time {
            true => with_naive_time(batch).runtime("dropping the time zone")?,
            false => batch,
        };
        self.writer.write(batch).await.runtime("writing events")
    }

    /// Ends the current file (per partition): what follows goes to new ones.
    pub async fn end_file(&mut self) -> Result<()> {
        let adds = self.writer.flush().await.runtime("writing events")?;
        self.pending.extend(adds);
        Ok(())
    }

    /// Writes the buffered events and commits every file written as one table version.
    pub async fn commit(&mut self) -> Result<()> {
        self.end_file().await?;
        let actions: Vec<Action> = self.pending.drain(..).map(Action::Add).collect();
        if actions.is_empty() {
            return Ok(());
        }
        let snapshot = self.table.snapshot().runtime("reading the snapshot")?;
        let partition_by =
            Some(snapshot.metadata().partition_columns().to_vec()).filter(|p| !p.is_empty());
        // With the default properties' post-commit hook: a checkpoint every
        // CHECKPOINT_INTERVAL versions, as flush_and_commit writes.
        CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .build(
                Some(snapshot),
                self.table.log_store(),
                DeltaOperation::Write {
                    mode: SaveMode::Append,
                    partition_by,
                    predicate: None,
                },
            )
            .await
            .runtime("committing events")?;
        self.table
            .update_state()
            .await
            .runtime("reloading the table")?;
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

/// The active files of `table`'s snapshot, from the log replay.
pub fn active_files(table: &DeltaTable) -> Result<Vec<deltalake::kernel::LogicalFileView>> {
    Ok(table
        .snapshot()
        .runtime("reading the snapshot")?
        .snapshot()
        .try_log_data()
        .runtime("listing the files")?
        .iter()
        .collect())
}

/// The bytes of the file at `path` (as the log names it) relative to the table root.
pub async fn get_bytes(table: &DeltaTable, path: &str) -> Result<bytes::Bytes> {
    let store = table.log_store().object_store(None);
    store
        .get(&Path::parse(path).runtime(format!("a file path: {path}"))?)
        .await
        .runtime(format!("reading {path}"))?
        .bytes()
        .await
        .runtime(format!("reading {path}"))
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

/// The event schema, with `TimeGenerated` as `timestamp_ntz` when `naive_time`.
fn table_schema(naive_time: bool) -> SchemaRef {
    let schema = event_schema();
    if !naive_time {
        return schema;
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.name() == TIME_GENERATED {
            true => f.as_ref().clone().with_data_type(naive_time_type()),
            false => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn naive_time_type() -> DataType {
    DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None)
}

/// `batch` with `TimeGenerated` as a zone-less timestamp of the same UTC wall-clock time.
fn with_naive_time(
    batch: RecordBatch,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    let index = batch.schema().index_of(TIME_GENERATED)?;
    let mut columns = batch.columns().to_vec();
    // The same microseconds: a UTC instant and its UTC wall-clock time share them.
    let naive = columns[index]
        .to_data()
        .into_builder()
        .data_type(naive_time_type())
        .build()?;
    columns[index] = arrow::array::make_array(naive);
    let mut fields: Vec<Field> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[index] = fields[index].clone().with_data_type(naive_time_type());
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
