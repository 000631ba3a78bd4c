//! Counting one interval's files: the keys read as dictionary indices, numbered, and the
//! groups counted in a hash table keyed by the four numbers.

use std::{collections::HashMap, sync::Arc};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringBuilder, TimestampMicrosecondArray,
    },
    compute::cast,
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType},
};
use datafusion::{
    common::{DataFusionError, Result},
    datasource::{
        listing::PartitionedFile,
        physical_plan::parquet::{DefaultParquetFileReaderFactory, ParquetFileReaderFactory},
    },
    physical_plan::metrics::ExecutionPlanMetricsSet,
};
use futures::TryStreamExt;
use object_store::ObjectStore;
use parquet::arrow::{
    ParquetRecordBatchStreamBuilder, ProjectionMask,
    arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions},
    async_reader::AsyncFileReader,
};

use super::{CountedFile, TimeWindow, value_ids::ValueIds};
use crate::events::{GROUP_KEYS, TIME_GENERATED};

/// Group counts of one interval, keyed by the four value numbers (`Computer` highest).
type Counts = HashMap<u128, u64, foldhash::fast::FixedState>;

/// Counts the groups of a partition's intervals, one interval at a time. The value
/// numbers live as long as the partition, so a value is numbered once however many
/// files and intervals hold it.
pub(super) struct IntervalCounter {
    /// DataFusion's reader of Parquet files in an object store (it records bytes read).
    readers: DefaultParquetFileReaderFactory,
    partition: usize,
    metrics: ExecutionPlanMetricsSet,
    /// The store's URL, to name files in errors.
    store_url: String,
    window: TimeWindow,
    batch_size: usize,
    schema: SchemaRef,
    ids: [ValueIds; 4],
}

impl IntervalCounter {
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        partition: usize,
        metrics: ExecutionPlanMetricsSet,
        store_url: String,
        window: TimeWindow,
        batch_size: usize,
        schema: SchemaRef,
    ) -> Self {
        Self {
            readers: DefaultParquetFileReaderFactory::new(store),
            partition,
            metrics,
            store_url,
            window,
            batch_size: batch_size.max(1),
            schema,
            ids: Default::default(),
        }
    }

    /// The summary rows of interval `interval_us` from its `files`.
    pub(super) async fn count(
        &mut self,
        interval_us: i64,
        files: &[CountedFile],
    ) -> Result<Vec<RecordBatch>> {
        let mut counts = Counts::default();
        for file in files {
            self.count_file(file, &mut counts).await.map_err(|e| {
                DataFusionError::Execution(format!(
                    "reading Parquet file {}{}: {e}",
                    self.store_url, file.path
                ))
            })?;
        }
        self.batches(interval_us, counts)
    }

    async fn count_file(&mut self, file: &CountedFile, counts: &mut Counts) -> Result<()> {
        let mut reader: Box<dyn AsyncFileReader> = self.readers.create_reader(
            self.partition,
            PartitionedFile::new(file.path.clone(), file.size),
            None,
            &self.metrics,
        )?;
        let metadata =
            ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await?;
        let file_schema = metadata.schema().clone();
        let keys: Vec<Option<usize>> = GROUP_KEYS
            .iter()
            .map(|key| file_schema.index_of(key).ok())
            .collect();
        let time = match file.check_time {
            true => file_schema.index_of(TIME_GENERATED).ok(),
            false => None,
        };
        // A file without the time column has no event in the window.
        if file.check_time && time.is_none() {
            return Ok(());
        }
        let hinted: Vec<Arc<Field>> = file_schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                if !keys.contains(&Some(i)) {
                    return Ok(field.clone());
                }
                if !is_string(field.data_type()) {
                    return Err(DataFusionError::Execution(format!(
                        "column {} is {}, not a string",
                        field.name(),
                        field.data_type()
                    )));
                }
                let dictionary =
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                Ok(Arc::new(field.as_ref().clone().with_data_type(dictionary)))
            })
            .collect::<Result<_>>()?;
        let hinted = Arc::new(Schema::new_with_metadata(
            hinted,
            file_schema.metadata().clone(),
        ));
        let metadata = ArrowReaderMetadata::try_new(
            metadata.metadata().clone(),
            ArrowReaderOptions::new().with_schema(hinted),
        )?;
        let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
        let roots = keys.iter().flatten().copied().chain(time);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let mut batches = builder
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build()?;
        let mut row_keys: Vec<u128> = Vec::with_capacity(self.batch_size);
        while let Some(batch) = batches.try_next().await? {
            row_keys.clear();
            row_keys.resize(batch.num_rows(), 0);
            for (ids, key) in self.ids.iter_mut().zip(GROUP_KEYS) {
                match batch.column_by_name(key) {
                    Some(column) => ids.fold_into(column, &mut row_keys)?,
                    // A key the file lacks is null in every row.
                    None => row_keys.iter_mut().for_each(|k| *k <<= 32),
                }
            }
            match batch.column_by_name(TIME_GENERATED) {
                Some(time) => {
                    let micros = micros(time)?;
                    for (i, key) in row_keys.iter().enumerate() {
                        if micros.is_valid(i) && self.window.contains(micros.value(i)) {
                            *counts.entry(*key).or_default() += 1;
                        }
                    }
                }
                None => {
                    for key in &row_keys {
                        *counts.entry(*key).or_default() += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The counted groups as summary rows, in batches of at most `batch_size` rows.
    fn batches(&self, interval_us: i64, counts: Counts) -> Result<Vec<RecordBatch>> {
        let groups: Vec<(u128, u64)> = counts.into_iter().collect();
        groups
            .chunks(self.batch_size)
            .map(|chunk| {
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(6);
                let interval = TimestampMicrosecondArray::from(vec![interval_us; chunk.len()])
                    .with_timezone("UTC");
                columns.push(Arc::new(interval));
                for (k, ids) in self.ids.iter().enumerate() {
                    let shift = 32 * (GROUP_KEYS.len() - 1 - k);
                    let mut values = StringBuilder::with_capacity(chunk.len(), chunk.len() * 16);
                    for (key, _) in chunk {
                        values.append_option(ids.value((key >> shift) as u32));
                    }
                    columns.push(Arc::new(values.finish()));
                }
                let count: Int64Array = chunk.iter().map(|(_, n)| *n as i64).collect();
                columns.push(Arc::new(count));
                Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
            })
            .collect()
    }
}

/// Whether the Parquet reader can read a column of this type as a dictionary of strings.
fn is_string(data_type: &DataType) -> bool {
    match data_type {
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView => true,
        DataType::Dictionary(_, value) => is_string(value),
        _ => false,
    }
}

/// A timestamp column as microseconds since the epoch (UTC), whatever its unit and zone.
fn micros(time: &ArrayRef) -> Result<TimestampMicrosecondArray> {
    let zone = match time.data_type() {
        DataType::Timestamp(_, zone) => zone.clone(),
        other => {
            return Err(DataFusionError::Execution(format!(
                "column {TIME_GENERATED} is {other}, not a timestamp"
            )));
        }
    };
    // The same zone: only the unit changes, the instants stay.
    let micros = cast(time, &DataType::Timestamp(TimeUnit::Microsecond, zone))?;
    Ok(micros.as_primitive::<TimestampMicrosecondType>().clone())
}
