//! The execution plan of key counts: files in, summary rows out.
//!
//! Its input is the *work list*: a small in-memory table of the files to read (path, size,
//! interval, whether to check times), one partition per task, each interval's files in one
//! partition. Output partition `p` holds the counts of the files of input partition `p`.
//! The files travel as an input rather than as a field of the node because Ballista runs
//! several partitions of a stage in one task by restricting the stage's *leaves* to those
//! partitions, and it can restrict only leaf types it knows: an in-memory scan it does; a
//! leaf of ours it would leave whole, and every task would count every file.

use std::{collections::VecDeque, fmt, sync::Arc};

use arrow::{
    array::{
        Array, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array,
        UInt64Array,
    },
    datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt32Type, UInt64Type},
};
use datafusion::{
    common::{DataFusionError, Result, tree_node::TreeNodeRecursion},
    datasource::memory::MemorySourceConfig,
    execution::{SendableRecordBatchStream, TaskContext, object_store::ObjectStoreUrl},
    physical_expr::{EquivalenceProperties, PhysicalExpr},
    physical_plan::{
        DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
        PlanProperties,
        execution_plan::{Boundedness, EmissionType},
        metrics::{ExecutionPlanMetricsSet, MetricsSet},
        stream::RecordBatchStreamAdapter,
    },
};
use futures::{Stream, StreamExt, TryStreamExt};

use super::{
    CountedFile, FileColumns, Gathered, ProcessShare, TimeWindow, count::IntervalCounter,
    output_schema,
};

/// The work list's schema: one row per file.
fn work_list_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("path", DataType::Utf8, false),
        Field::new("size", DataType::UInt64, false),
        Field::new("interval_us", DataType::Int64, false),
        Field::new("check_time", DataType::Boolean, false),
        // A file's deleted rows as JSON, null when it has none.
        Field::new("deleted_rows", DataType::Utf8, true),
        // The share of processes counted (index, of), null when all are.
        Field::new("process_share", DataType::UInt32, true),
        Field::new("process_shares", DataType::UInt32, true),
    ]))
}

/// The work list of `partitions` (each interval's files in one partition): an in-memory
/// scan with one partition per entry.
pub fn work_list(partitions: &[Vec<CountedFile>]) -> Result<Arc<dyn ExecutionPlan>> {
    let schema = work_list_schema();
    let batches = partitions
        .iter()
        .map(|files| {
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(StringArray::from_iter_values(
                        files.iter().map(|f| f.path.as_str()),
                    )),
                    Arc::new(UInt64Array::from_iter_values(files.iter().map(|f| f.size))),
                    Arc::new(Int64Array::from_iter_values(
                        files.iter().map(|f| f.interval_us),
                    )),
                    Arc::new(BooleanArray::from_iter(
                        files.iter().map(|f| Some(f.check_time)),
                    )),
                    Arc::new(StringArray::from(
                        files
                            .iter()
                            .map(|f| {
                                f.deleted_rows
                                    .as_ref()
                                    .map(serde_json::to_string)
                                    .transpose()
                            })
                            .collect::<serde_json::Result<Vec<_>>>()
                            .map_err(|e| DataFusionError::External(Box::new(e)))?,
                    )),
                    Arc::new(UInt32Array::from_iter(
                        files.iter().map(|f| f.processes.map(|s| s.index)),
                    )),
                    Arc::new(UInt32Array::from_iter(
                        files.iter().map(|f| f.processes.map(|s| s.of)),
                    )),
                ],
            )?;
            Ok(vec![batch])
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(MemorySourceConfig::try_new_exec(&batches, schema, None)?)
}

/// The files listed in work-list batches.
fn files_of(batches: &[RecordBatch]) -> Result<Vec<CountedFile>> {
    let mut files = Vec::new();
    // The input's schema was checked by `KeyCountsExec::try_new`.
    for batch in batches {
        let path = batch.column(0).as_string::<i32>();
        let size = batch.column(1).as_primitive::<UInt64Type>();
        let interval = batch.column(2).as_primitive::<Int64Type>();
        let check_time = batch.column(3).as_boolean();
        let deleted = batch.column(4).as_string::<i32>();
        let share_index = batch.column(5).as_primitive::<UInt32Type>();
        let share_of = batch.column(6).as_primitive::<UInt32Type>();
        for i in 0..batch.num_rows() {
            let deleted_rows = match deleted.is_valid(i) {
                true => Some(
                    serde_json::from_str(deleted.value(i))
                        .map_err(|e| DataFusionError::External(Box::new(e)))?,
                ),
                false => None,
            };
            files.push(CountedFile {
                path: path.value(i).to_string(),
                size: size.value(i),
                interval_us: interval.value(i),
                check_time: check_time.value(i),
                deleted_rows,
                processes: (share_of.is_valid(i) && share_index.is_valid(i)).then(|| {
                    ProcessShare {
                        index: share_index.value(i),
                        of: share_of.value(i).max(1),
                    }
                }),
            });
        }
    }
    Ok(files)
}

/// Counts the groups of the files its input lists; see the module documentation.
#[derive(Debug)]
pub struct KeyCountsExec {
    /// The work list.
    input: Arc<dyn ExecutionPlan>,
    store: ObjectStoreUrl,
    window: TimeWindow,
    /// Output columns, as indices into the full output schema (`None` = all).
    projection: Option<Vec<usize>>,
    gathered: Gathered,
    /// The files' names of the columns read.
    columns: FileColumns,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    store: String,
    window: TimeWindow,
    projection: Option<Vec<usize>>,
    gathered: Gathered,
    #[serde(default)]
    columns: FileColumns,
}

impl KeyCountsExec {
    /// Counts the files that `input` (a [`work_list`]) lists, read from `store`, with what
    /// is `gathered`; the output is that kind's schema, `projection` applied.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        store: ObjectStoreUrl,
        window: TimeWindow,
        projection: Option<Vec<usize>>,
        gathered: Gathered,
    ) -> Result<Self> {
        if input.schema().fields() != work_list_schema().fields() {
            return Err(DataFusionError::Internal(format!(
                "KeyCountsExec: the input is not a work list but {}",
                input.schema()
            )));
        }
        let full = output_schema(gathered);
        let schema = match &projection {
            Some(indices) => Arc::new(full.project(indices)?),
            None => full,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            store,
            window,
            projection,
            gathered,
            columns: FileColumns::default(),
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The node reading columns by the files' names `columns` (column mapping).
    pub fn with_file_columns(mut self, columns: FileColumns) -> Self {
        self.columns = columns;
        self
    }

    /// Serialises the node (its input, the work list, travels as its child).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let encoded = Encoded {
            store: self.store.as_str().to_string(),
            window: self.window,
            projection: self.projection.clone(),
            gathered: self.gathered,
            columns: self.columns.clone(),
        };
        serde_json::to_vec(&encoded).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the node from [`Self::encode`]'s bytes and its decoded input.
    pub fn decode(bytes: &[u8], inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Self> {
        let encoded: Encoded =
            serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let input = crate::single_input("KeyCountsExec", inputs)?;
        Self::try_new(
            input.clone(),
            ObjectStoreUrl::parse(&encoded.store)?,
            encoded.window,
            encoded.projection,
            encoded.gathered,
        )
        .map(|exec| exec.with_file_columns(encoded.columns))
    }
}

impl DisplayAs for KeyCountsExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "KeyCountsExec: store={}, window={:?}{}",
            self.store.as_str(),
            self.window,
            match self.gathered {
                Gathered::Counts => "",
                Gathered::CommandLines => ", with command lines",
                Gathered::Evidence => ", evidence",
            }
        )
    }
}

impl ExecutionPlan for KeyCountsExec {
    fn name(&self) -> &str {
        "KeyCountsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// Never repartition the work list: the table placed each interval's files (or each
    /// share of its processes) in one partition.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let input = crate::single_input("KeyCountsExec", &children)?;
        Ok(Arc::new(
            Self::try_new(
                input.clone(),
                self.store.clone(),
                self.window,
                self.projection.clone(),
                self.gathered,
            )?
            .with_file_columns(self.columns.clone()),
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let work = self.input.execute(partition, context.clone())?;
        let store = context.runtime_env().object_store(&self.store)?;
        let counter = IntervalCounter::new(
            store,
            partition,
            self.metrics.clone(),
            self.store.as_str().to_string(),
            self.window,
            context.session_config().batch_size(),
            self.gathered,
        )
        .with_columns(self.columns.clone());
        let projection = self.projection.clone();
        let project = move |batch: RecordBatch| match &projection {
            Some(indices) => Ok(batch.project(indices)?),
            None => Ok(batch),
        };
        let batches = futures::stream::once(async move {
            let work: Vec<RecordBatch> = work.try_collect().await?;
            Ok::<_, DataFusionError>(count_intervals(counter, files_of(&work)?))
        })
        .try_flatten()
        .map(move |batch| batch.and_then(&project));
        let schema: SchemaRef = self.properties.eq_properties.schema().clone();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, batches)))
    }
}

/// The summary rows of `files` (in interval order), one interval after another.
fn count_intervals(
    counter: IntervalCounter,
    files: Vec<CountedFile>,
) -> impl Stream<Item = Result<RecordBatch>> + Send {
    // Runs of files of one interval.
    let mut intervals: VecDeque<(i64, Vec<CountedFile>)> = VecDeque::new();
    for file in files {
        match intervals.back_mut() {
            Some((start, run)) if *start == file.interval_us => run.push(file),
            _ => intervals.push_back((file.interval_us, vec![file])),
        }
    }
    futures::stream::try_unfold(
        (counter, intervals),
        |(mut counter, mut intervals)| async move {
            let Some((start, files)) = intervals.pop_front() else {
                return Ok::<_, DataFusionError>(None);
            };
            let batches = counter.count(start, &files).await?;
            Ok(Some((batches, (counter, intervals))))
        },
    )
    .map_ok(|batches| futures::stream::iter(batches.into_iter().map(Ok)))
    .try_flatten()
}

#[cfg(test)]
pub(super) fn files_of_partitions(exec: &KeyCountsExec) -> Vec<Vec<CountedFile>> {
    let source = exec
        .input
        .downcast_ref::<datafusion::datasource::source::DataSourceExec>()
        .and_then(|e| {
            let source: &dyn std::any::Any = e.data_source().as_ref();
            source.downcast_ref::<MemorySourceConfig>().cloned()
        })
        .expect("a work list");
    source
        .partitions()
        .iter()
        .map(|batches| files_of(batches).expect("a valid work list"))
        .collect()
}
