//! A Parquet scan that skips the rows deletion vectors removed.
//!
//! DataFusion's Parquet reader skips rows given a per-file row selection (a
//! `ParquetRowSelection` extension on the `PartitionedFile`), but the plan's serialization
//! drops file extensions: a selection made on the scheduler would never reach an executor.
//! [`SkipDeletedExec`] sits on top of the scan and carries each file's [`DeletedRows`]
//! itself. Whenever it is built — planned, decoded on an executor, or given a rewritten
//! scan by an optimizer or by Ballista narrowing a task's partitions — it attaches the
//! selections to its child's files again. Executing it is executing the child.

use std::{any::Any, collections::BTreeMap, fmt, sync::Arc};

use datafusion::{
    common::{
        DataFusionError, Result,
        tree_node::{Transformed, TreeNode, TreeNodeRecursion},
    },
    datasource::{
        physical_plan::{FileGroup, FileScanConfig, parquet::ParquetRowSelection},
        source::DataSourceExec,
    },
    execution::{SendableRecordBatchStream, TaskContext},
    physical_expr::PhysicalExpr,
    physical_plan::{
        DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, metrics::MetricsSet,
    },
};

use crate::deleted_rows::DeletedRows;

/// A Parquet file scan whose files' deleted rows are skipped; see the module documentation.
#[derive(Debug)]
pub struct SkipDeletedExec {
    /// The scan, its files carrying their row selections.
    input: Arc<dyn ExecutionPlan>,
    /// Deleted rows by object path, for the files that have some.
    deleted: Arc<BTreeMap<String, DeletedRows>>,
}

impl SkipDeletedExec {
    /// Wraps `scan` (a `DataSourceExec` over Parquet files), attaching to each of its files
    /// listed in `deleted` (by object path) the selection of its rows left.
    pub fn try_new(
        scan: Arc<dyn ExecutionPlan>,
        deleted: BTreeMap<String, DeletedRows>,
    ) -> Result<Self> {
        let deleted = Arc::new(deleted);
        Ok(Self {
            input: attach(&scan, &deleted)?,
            deleted,
        })
    }

    /// Serialises the deleted rows (the scan travels as the child).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self.deleted.as_ref())
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the node from [`Self::encode`]'s bytes and its decoded scan.
    pub fn decode(bytes: &[u8], inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Self> {
        let deleted: BTreeMap<String, DeletedRows> =
            serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let scan = crate::single_input("SkipDeletedExec", inputs)?;
        Self::try_new(scan.clone(), deleted)
    }
}

/// `scan` with the row selection of every file in `deleted` set, in whichever file scans
/// it holds (an optimizer may have put nodes above the scan).
fn attach(
    scan: &Arc<dyn ExecutionPlan>,
    deleted: &BTreeMap<String, DeletedRows>,
) -> Result<Arc<dyn ExecutionPlan>> {
    let mut found = false;
    let attached = scan.clone().transform_up(|node| {
        let Some(config) = file_scan(&node) else {
            return Ok(Transformed::no(node));
        };
        found = true;
        let mut config = config.clone();
        config.file_groups = config
            .file_groups
            .into_iter()
            .map(|group| {
                FileGroup::new(
                    group
                        .into_inner()
                        .into_iter()
                        .map(
                            |file| match deleted.get(file.object_meta.location.as_ref()) {
                                Some(rows) => file
                                    .with_extension(ParquetRowSelection::new(rows.row_selection())),
                                None => file,
                            },
                        )
                        .collect(),
                )
            })
            .collect();
        let exec: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        Ok(Transformed::yes(exec))
    })?;
    if !found {
        return Err(DataFusionError::Internal(format!(
            "SkipDeletedExec needs a file scan below it, not {}",
            scan.name()
        )));
    }
    Ok(attached.data)
}

/// The file scan configuration of a `DataSourceExec` over files.
fn file_scan(node: &Arc<dyn ExecutionPlan>) -> Option<&FileScanConfig> {
    let exec = node.downcast_ref::<DataSourceExec>()?;
    let source: &dyn Any = exec.data_source().as_ref();
    source.downcast_ref::<FileScanConfig>()
}

impl DisplayAs for SkipDeletedExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let rows: u64 = self.deleted.values().map(DeletedRows::count).sum();
        write!(
            f,
            "SkipDeletedExec: {} files with deletion vectors, {rows} rows deleted",
            self.deleted.len()
        )
    }
}

impl ExecutionPlan for SkipDeletedExec {
    fn name(&self) -> &str {
        "SkipDeletedExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// A repartition below would come between the scan and its selections' holder.
    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
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
        let scan = crate::single_input("SkipDeletedExec", &children)?;
        Ok(Arc::new(Self {
            input: attach(scan, &self.deleted)?,
            deleted: self.deleted.clone(),
        }))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        None
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}
