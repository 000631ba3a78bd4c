//! Counting one interval's files: the keys read as dictionary indices, numbered, and the
//! groups counted in a hash table keyed by the four numbers; with command lines, each
//! group's distinct command lines kept as (group, line number) pairs in a hash set.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, Int64Array, ListBuilder, RecordBatch, StringBuilder,
        TimestampMicrosecondArray,
    },
    compute::cast,
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType},
};
use datafusion::{
    common::{DataFusionError, Result},
    datasource::physical_plan::parquet::{
        DefaultParquetFileReaderFactory, ParquetFileReaderFactory,
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

use super::{
    CountedFile, FileColumns, Gathered, TimeWindow,
    evidence::{EvidenceBatch, EvidenceTally, Names},
    line_ids::LineIds,
    output_schema,
    read_ahead::{FileRead, ReadAhead, WholeFile},
    value_ids::{NULL_ID, ValueIds},
};
use crate::schema::{GROUP_KEYS, TIME_GENERATED};

/// Group counts of one interval, keyed by the four value numbers (`Computer` highest).
type Counts = HashMap<u128, Group, foldhash::fast::FixedState>;

/// One group's events, and its number in the interval (in the order groups were met).
struct Group {
    events: u64,
    index: u32,
}

/// The group keyed `key` in `counts`, numbered next if it is new.
fn group(counts: &mut Counts, key: u128) -> &mut Group {
    let index = counts.len() as u32;
    counts.entry(key).or_insert(Group { events: 0, index })
}

/// The distinct command lines of one interval's groups: the group's number in the high
/// half, the line's in the low. Eight bytes an entry rather than a 32-byte (key, line)
/// pair: a day's set is the largest table the counting probes for every row.
type LinePairs = HashSet<u64, foldhash::fast::FixedState>;

/// One interval's tallies.
#[derive(Default)]
struct Tally {
    counts: Counts,
    /// Empty unless command lines are collected.
    lines: LinePairs,
    /// Empty unless the evidence is gathered (then the counts are).
    evidence: EvidenceTally,
}

/// Counts the groups of a partition's intervals, one interval at a time. The value
/// numbers live as long as the partition, so a value is numbered once however many
/// files and intervals hold it.
pub(super) struct IntervalCounter {
    /// DataFusion's reader of Parquet files in an object store (it records bytes read).
    readers: DefaultParquetFileReaderFactory,
    /// The store, to read small files whole.
    store: Arc<dyn ObjectStore>,
    partition: usize,
    metrics: ExecutionPlanMetricsSet,
    /// The store's URL, to name files in errors.
    store_url: String,
    window: TimeWindow,
    batch_size: usize,
    schema: SchemaRef,
    gathered: Gathered,
    ids: [ValueIds; 4],
    /// The command lines' numbers, when they are collected.
    lines: Option<LineIds>,
    /// The parents' numbers and the users' and hosts' names, for the evidence.
    parents: ValueIds,
    names: Names,
    /// The files' names of the columns read.
    columns: FileColumns,
}

impl IntervalCounter {
    pub(super) fn new(
        store: Arc<dyn ObjectStore>,
        partition: usize,
        metrics: ExecutionPlanMetricsSet,
        store_url: String,
        window: TimeWindow,
        batch_size: usize,
        gathered: Gathered,
    ) -> Self {
        Self {
            readers: DefaultParquetFileReaderFactory::new(store.clone()),
            store,
            partition,
            metrics,
            store_url,
            window,
            batch_size: batch_size.max(1),
            schema: output_schema(gathered),
            gathered,
            ids: Default::default(),
            lines: (gathered == Gathered::CommandLines).then(LineIds::default),
            parents: ValueIds::default(),
            names: Names::default(),
            columns: FileColumns::default(),
        }
    }

    /// The counter reading columns by the files' names `columns` (column mapping).
    pub(super) fn with_columns(mut self, columns: FileColumns) -> Self {
        self.columns = columns;
        self
    }

    /// The summary rows of interval `interval_us` from its `files`.
    pub(super) async fn count(
        &mut self,
        interval_us: i64,
        files: &[CountedFile],
    ) -> Result<Vec<RecordBatch>> {
        let mut tally = Tally::default();
        let mut reads = ReadAhead::new(self.store.clone(), files);
        while let Some((file, read)) = reads.next_file() {
            self.count_file(file, read, &mut tally).await.map_err(|e| {
                DataFusionError::Execution(format!(
                    "reading Parquet file {}{}: {e}",
                    self.store_url, file.path
                ))
            })?;
        }
        self.batches(interval_us, tally)
    }

    /// A reader of `file`: a small one is read whole in one request (a footer, then its
    /// column chunks, would be three or more, each a round trip to an object store and a
    /// blocking-pool hop on a local disk), ahead of time ([`ReadAhead`]); a large one
    /// range by range.
    async fn reader(&self, file: &CountedFile, read: FileRead) -> Result<Box<dyn AsyncFileReader>> {
        if let Some(bytes) = read.whole().await? {
            return Ok(Box::new(WholeFile(bytes)));
        }
        let path = object_store::path::Path::parse(&file.path)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let reader = self.readers.create_reader(
            self.partition,
            crate::scan::file_at(&path, file.size),
            None,
            &self.metrics,
        )?;
        Ok(reader)
    }

    async fn count_file(
        &mut self,
        file: &CountedFile,
        read: FileRead,
        tally: &mut Tally,
    ) -> Result<()> {
        let mut reader = self.reader(file, read).await?;
        let metadata =
            ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()).await?;
        let file_schema = metadata.schema().clone();
        let keys: Vec<Option<usize>> = self
            .columns
            .keys
            .iter()
            .map(|key| file_schema.index_of(key).ok())
            .collect();
        let time = match file.check_time {
            true => file_schema.index_of(&self.columns.time).ok(),
            false => None,
        };
        // A file without command lines has none to collect (nor parents).
        let line = match self.gathered {
            Gathered::Counts => None,
            _ => file_schema.index_of(&self.columns.command_line).ok(),
        };
        let parent = match self.gathered {
            Gathered::Evidence => file_schema.index_of(&self.columns.parent).ok(),
            _ => None,
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
                if !keys.contains(&Some(i)) && line != Some(i) && parent != Some(i) {
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
        let roots = keys
            .iter()
            .flatten()
            .copied()
            .chain(time)
            .chain(line)
            .chain(parent);
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let builder = match &file.deleted_rows {
            Some(deleted) => builder.with_row_selection(deleted.row_selection()),
            None => builder,
        };
        let mut batches = builder
            .with_projection(mask)
            .with_batch_size(self.batch_size)
            .build()?;
        let mut row_keys: Vec<u128> = Vec::with_capacity(self.batch_size);
        let mut row_lines: Vec<u32> = Vec::with_capacity(self.batch_size);
        let mut row_parents: Vec<u128> = Vec::with_capacity(self.batch_size);
        let mut parent_ids: Vec<u32> = Vec::with_capacity(self.batch_size);
        while let Some(batch) = batches.try_next().await? {
            row_keys.clear();
            row_keys.resize(batch.num_rows(), 0);
            for (ids, key) in self.ids.iter_mut().zip(&self.columns.keys) {
                match batch.column_by_name(key) {
                    Some(column) => ids.fold_into(column, &mut row_keys)?,
                    // A key the file lacks is null in every row.
                    None => row_keys.iter_mut().for_each(|k| *k <<= 32),
                }
            }
            let lines = match (
                &mut self.lines,
                batch.column_by_name(&self.columns.command_line),
            ) {
                (Some(ids), Some(column)) => {
                    ids.ids_into(column, &mut row_lines)?;
                    Some(row_lines.as_slice())
                }
                _ => None,
            };
            let times = batch
                .column_by_name(&self.columns.time)
                .map(micros)
                .transpose()?;
            let window = self.window;
            let in_share = match file.processes {
                Some(share) => Some(rows_in_share(
                    share,
                    batch.column_by_name(self.columns.process()),
                    batch.num_rows(),
                )?),
                None => None,
            };
            let counted = |i: usize| {
                in_share.as_ref().is_none_or(|rows| rows[i])
                    && times
                        .as_ref()
                        .is_none_or(|t| t.is_valid(i) && window.contains(t.value(i)))
            };
            if self.gathered == Gathered::Evidence {
                row_parents.clear();
                row_parents.resize(batch.num_rows(), 0);
                // A file without parents has a null one in every row.
                if let Some(column) = batch.column_by_name(&self.columns.parent) {
                    self.parents.fold_into(column, &mut row_parents)?;
                }
                parent_ids.clear();
                parent_ids.extend(row_parents.iter().map(|&id| id as u32));
                let lines = batch.column_by_name(&self.columns.command_line);
                let rows = EvidenceBatch {
                    keys: &row_keys,
                    parents: &parent_ids,
                    lines,
                    counted: &counted,
                };
                tally
                    .evidence
                    .add(rows, &self.ids, &mut self.parents, &mut self.names)?;
                continue;
            }
            let counts = &mut tally.counts;
            if in_share.is_some() && lines.is_none() {
                for (i, key) in row_keys.iter().enumerate() {
                    if counted(i) {
                        group(counts, *key).events += 1;
                    }
                }
                continue;
            }
            match (&times, lines) {
                (Some(times), None) => {
                    for (i, key) in row_keys.iter().enumerate() {
                        if times.is_valid(i) && window.contains(times.value(i)) {
                            group(counts, *key).events += 1;
                        }
                    }
                }
                (None, None) => {
                    for key in &row_keys {
                        group(counts, *key).events += 1;
                    }
                }
                (_, Some(lines)) => {
                    for (i, (key, &line)) in row_keys.iter().zip(lines).enumerate() {
                        if counted(i) {
                            let group = group(counts, *key);
                            group.events += 1;
                            if line != NULL_ID {
                                tally
                                    .lines
                                    .insert(u64::from(group.index) << 32 | u64::from(line));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The counted groups as summary rows, in batches of at most `batch_size` rows; with
    /// command lines, in group key order, each group's distinct lines sorted bytewise
    /// (null when it has none).
    fn batches(&self, interval_us: i64, tally: Tally) -> Result<Vec<RecordBatch>> {
        if self.gathered == Gathered::Evidence {
            let batches =
                tally
                    .evidence
                    .batches(interval_us, &self.ids, &self.parents, self.batch_size);
            return batches;
        }
        let mut groups: Vec<(u128, Group)> = tally.counts.into_iter().collect();
        // Each group's lines, in the groups' order: a run of the sorted pairs.
        let mut pairs: Vec<(u128, u32)> = Vec::new();
        if let Some(lines) = &self.lines {
            groups.sort_unstable_by_key(|(key, _)| *key);
            let mut keys = vec![0u128; groups.len()];
            for (key, group) in &groups {
                keys[group.index as usize] = *key;
            }
            pairs = (tally.lines.into_iter())
                .map(|pair| (keys[(pair >> 32) as usize], pair as u32))
                .collect();
            // By group, then each group's lines by string: sorting all pairs by (group,
            // string) at once would compare strings across many more pairs (command lines
            // share long prefixes).
            pairs.sort_unstable_by_key(|(key, _)| *key);
            for run in pairs.chunk_by_mut(|a, b| a.0 == b.0) {
                run.sort_unstable_by(|a, b| lines.bytes(a.1).cmp(lines.bytes(b.1)));
            }
        }
        let mut pairs = pairs.as_slice();
        groups
            .chunks(self.batch_size)
            .map(|chunk| {
                let keys = chunk.iter().map(|(key, _)| *key);
                let mut columns = key_columns(interval_us, &self.ids, keys);
                let count: Int64Array = chunk.iter().map(|(_, g)| g.events as i64).collect();
                columns.push(Arc::new(count));
                if let Some(lines) = &self.lines {
                    let mut list = ListBuilder::new(StringBuilder::new());
                    for (key, _) in chunk {
                        let run = pairs.partition_point(|(k, _)| k == key);
                        for (_, line) in &pairs[..run] {
                            list.values().append_option(lines.value(*line));
                        }
                        list.append(run > 0);
                        pairs = &pairs[run..];
                    }
                    columns.push(Arc::new(list.finish()));
                }
                Ok(RecordBatch::try_new(self.schema.clone(), columns)?)
            })
            .collect()
    }
}

/// The interval's column and the four keys' strings of the rows keyed `keys` (every kind
/// of output starts with them).
pub(super) fn key_columns(
    interval_us: i64,
    ids: &[ValueIds; 4],
    keys: impl ExactSizeIterator<Item = u128> + Clone,
) -> Vec<ArrayRef> {
    let rows = keys.len();
    let interval = TimestampMicrosecondArray::from(vec![interval_us; rows]).with_timezone("UTC");
    let mut columns: Vec<ArrayRef> = vec![Arc::new(interval)];
    for (k, ids) in ids.iter().enumerate() {
        let shift = 32 * (GROUP_KEYS.len() - 1 - k);
        let mut values = StringBuilder::with_capacity(rows, rows * 16);
        for key in keys.clone() {
            values.append_option(ids.value((key >> shift) as u32));
        }
        columns.push(Arc::new(values.finish()));
    }
    columns
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

/// Whether each of a batch's `rows` has its process (`column`: strings or a dictionary of
/// them; absent = null in every row) in `share`. A dictionary's values are hashed once.
fn rows_in_share(
    share: super::ProcessShare,
    column: Option<&ArrayRef>,
    rows: usize,
) -> Result<Vec<bool>> {
    let Some(column) = column else {
        return Ok(vec![share.holds(None); rows]);
    };
    if let Some(dictionary) = column.as_dictionary_opt::<arrow::datatypes::Int32Type>() {
        let values = cast(dictionary.values(), &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        let held: Vec<bool> = (0..values.len())
            .map(|v| share.holds(values.is_valid(v).then(|| values.value(v))))
            .collect();
        let keys = dictionary.keys();
        return Ok((0..rows)
            .map(|i| match keys.is_valid(i) {
                true => held[keys.value(i) as usize],
                false => share.holds(None),
            })
            .collect());
    }
    let strings = cast(column, &DataType::Utf8)?;
    let strings = strings.as_string::<i32>();
    Ok((0..rows)
        .map(|i| share.holds(strings.is_valid(i).then(|| strings.value(i))))
        .collect())
}
