//! The explicit-file Delta scan.
//!
//! The driver resolves a Delta snapshot (with delta-rs) into the list of active Parquet
//! files it must read; [`DeltaFilesTable`] holds that list and plans a plain
//! `DataSourceExec` over `ParquetSource`. The list travels in the logical plan through
//! [`crate::codec`], so the scheduler plans the same scan and every executor receives only
//! its own files. No process but the driver needs delta-rs.
//!
//! When the log's statistics show that every file holds events of a single summary
//! interval (a table written day by day, or partitioned by date), the scan can say so:
//! [`DeltaFilesTable::with_file_intervals`] adds a column holding each file's interval
//! start, and the scan groups whole intervals into partitions and declares itself
//! hash-partitioned on that column. A `GROUP BY` that starts with it then runs in one stage
//! per partition, with no shuffle and no per-row interval arithmetic.

use std::{collections::BTreeSet, sync::Arc};

use arrow::datatypes::{FieldRef, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::{
    catalog::{Session, TableProvider},
    common::{DFSchema, DataFusionError, Result, ScalarValue, Statistics},
    datasource::{
        TableType,
        listing::PartitionedFile,
        physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource},
        source::DataSourceExec,
        table_schema::TableSchema,
    },
    execution::object_store::ObjectStoreUrl,
    logical_expr::{Expr, TableProviderFilterPushDown, utils::conjunction},
    physical_plan::{ExecutionPlan, Partitioning},
};
use object_store::path::Path;
use url::Url;

use crate::deleted_rows::DeletedRows;

mod skip_deleted;

pub use skip_deleted::SkipDeletedExec;

/// One active data file of the snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedFile {
    /// Absolute URL of the Parquet file.
    pub url: String,
    /// Size in bytes.
    pub size: u64,
    /// Partition values as the Delta log holds them (text; `None` is null), in the order
    /// of [`ResolvedTable::partition_columns`].
    pub partition_values: Vec<Option<String>>,
    /// Rows in the file, when the log has statistics.
    pub num_records: Option<u64>,
    /// Inclusive bounds, in microseconds, of the file's non-null `TimeGenerated` values,
    /// when the log has statistics.
    #[serde(default)]
    pub time_bounds: Option<(i64, i64)>,
    /// Rows whose `TimeGenerated` is null, when the log has statistics.
    #[serde(default)]
    pub time_nulls: Option<u64>,
    /// The rows its deletion vector removes, if it has one.
    #[serde(default)]
    pub deleted_rows: Option<DeletedRows>,
}

impl ResolvedFile {
    /// Rows left after its deletion vector, when known.
    pub fn live_rows(&self) -> Option<u64> {
        match &self.deleted_rows {
            Some(deleted) => Some(deleted.live_rows()),
            None => self.num_records,
        }
    }

    /// The start of the interval of `length_us` microseconds that holds all of the file's
    /// events, if its statistics say there is one.
    pub fn interval(&self, length_us: i64) -> Option<i64> {
        let (low, high) = self.time_bounds?;
        let start = interval_start(low, length_us);
        (length_us > 0 && interval_start(high, length_us) == start).then_some(start)
    }
}

/// A resolved snapshot: what to read and how it was chosen.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResolvedTable {
    /// The table's URL.
    pub table_url: String,
    /// The snapshot version read.
    pub version: i64,
    /// Partition columns, in the order the files' values follow.
    pub partition_columns: Vec<String>,
    /// The files to read, sorted by URL.
    pub files: Vec<ResolvedFile>,
    /// Under column mapping, the files' name of each column whose name there differs
    /// from the table's (logical → physical); empty without.
    #[serde(default)]
    pub physical_names: std::collections::BTreeMap<String, String>,
}

impl ResolvedTable {
    /// The name the data files give the column the table calls `logical`.
    pub fn physical_name<'a>(&'a self, logical: &'a str) -> &'a str {
        physical_name(&self.physical_names, logical)
    }
}

/// The name `physical_names` (logical → physical, for the columns renamed in the files)
/// gives column `logical` in the data files.
pub fn physical_name<'a>(
    physical_names: &'a std::collections::BTreeMap<String, String>,
    logical: &'a str,
) -> &'a str {
    physical_names
        .get(logical)
        .map(String::as_str)
        .unwrap_or(logical)
}

impl ResolvedTable {
    /// Splits the files at `start_us`: those whose events all fall in intervals before it,
    /// and those whose events all fall in intervals from it on. `None` unless every file's
    /// statistics put it inside one interval of `length_us`.
    pub fn split_at_interval(&self, length_us: i64, start_us: i64) -> Option<(Self, Self)> {
        let mut before = Self {
            files: Vec::new(),
            ..self.clone()
        };
        let mut after = before.clone();
        for file in &self.files {
            if file.interval(length_us)? < start_us {
                before.files.push(file.clone());
            } else {
                after.files.push(file.clone());
            }
        }
        Some((before, after))
    }
}

/// A table provider over a resolved snapshot's files; see the module documentation.
#[derive(Debug, Clone)]
pub struct DeltaFilesTable {
    resolved: ResolvedTable,
    /// File columns, then partition columns.
    schema: SchemaRef,
    /// The file columns as the files name them (column mapping), which the scan reads.
    read_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    store: ObjectStoreUrl,
    /// Per file, its object path and typed partition values.
    files: Vec<(Path, Vec<ScalarValue>)>,
    /// Set by [`Self::with_file_intervals`]: the interval length and each file's interval.
    file_intervals: Option<(i64, Vec<i64>)>,
}

/// The name of the column [`DeltaFilesTable::with_file_intervals`] adds for intervals of
/// `length_us` microseconds.
pub fn file_interval_column(length_us: i64) -> String {
    format!("__procforest_file_interval_{length_us}us")
}

/// The start of the interval of `length_us` holding `micros` (floored).
fn interval_start(micros: i64, length_us: i64) -> i64 {
    micros.div_euclid(length_us) * length_us
}

/// The most bytes of files one interval may hold for the scan to read it in a single task
/// when there are fewer intervals than partitions: beyond it one core would hold up the
/// stage.
pub const ONE_TASK_INTERVAL_BYTES: u64 = 128 << 20;

#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    resolved: ResolvedTable,
    file_interval_us: Option<i64>,
}

/// The file at object path `path`. (`PartitionedFile::new` would percent-encode the path's
/// text again: a file named with a `%` would not be found.)
pub fn file_at(path: &Path, size: u64) -> PartitionedFile {
    let mut file = PartitionedFile::new(String::new(), size);
    file.object_meta.location = path.clone();
    file
}

/// Splits a file URL into its object store (`scheme://authority`) and its path there.
pub fn store_and_path(file_url: &str) -> Result<(ObjectStoreUrl, Path)> {
    let url = Url::parse(file_url)
        .map_err(|e| DataFusionError::Plan(format!("bad file URL {file_url}: {e}")))?;
    let store = ObjectStoreUrl::parse(format!("{}://{}", url.scheme(), url.authority()))?;
    let path = Path::from_url_path(url.path())
        .map_err(|e| DataFusionError::Plan(format!("bad file path in {file_url}: {e}")))?;
    Ok((store, path))
}

/// Places `units` (a size and the members that must stay together) into at most `n`
/// groups of similar total size: largest first onto the lightest group, ties by position,
/// so the split is the same for the same units. Returns the non-empty groups' members.
pub(crate) fn balance(units: Vec<(u64, Vec<usize>)>, n: usize) -> Vec<Vec<usize>> {
    let n = n.clamp(1, units.len().max(1));
    let mut order: Vec<usize> = (0..units.len()).collect();
    order.sort_by(|&a, &b| units[b].0.cmp(&units[a].0).then(a.cmp(&b)));
    let mut groups: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
    for u in order {
        let lightest = (0..n)
            .min_by_key(|&g| (groups[g].0, g))
            .expect("at least one group");
        groups[lightest].0 += units[u].0;
        groups[lightest].1.extend_from_slice(&units[u].1);
    }
    groups
        .into_iter()
        .map(|(_, members)| members)
        .filter(|members| !members.is_empty())
        .collect()
}

impl DeltaFilesTable {
    /// Builds the provider. `schema` holds the file columns followed by the partition
    /// columns named in `resolved`.
    pub fn try_new(resolved: ResolvedTable, schema: SchemaRef) -> Result<Self> {
        let partition_names: BTreeSet<&str> = resolved
            .partition_columns
            .iter()
            .map(String::as_str)
            .collect();
        let partition_fields = resolved
            .partition_columns
            .iter()
            .map(|name| Ok(Arc::new(schema.field_with_name(name)?.clone())))
            .collect::<Result<Vec<FieldRef>>>()?;
        let file_fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .filter(|f| !partition_names.contains(f.name().as_str()))
            .cloned()
            .collect();
        let file_schema = Arc::new(Schema::new(file_fields));
        let read_schema = Arc::new(Schema::new(
            file_schema
                .fields()
                .iter()
                .map(|f| {
                    let physical = resolved.physical_name(f.name());
                    Arc::new(f.as_ref().clone().with_name(physical))
                })
                .collect::<Vec<FieldRef>>(),
        ));
        // The provider's schema is file columns then partition columns, as scans emit them.
        let mut ordered: Vec<FieldRef> = file_schema.fields().iter().cloned().collect();
        ordered.extend(partition_fields.iter().cloned());
        let schema = Arc::new(Schema::new(ordered));

        let mut store = None;
        let mut files = Vec::with_capacity(resolved.files.len());
        for file in &resolved.files {
            let (file_store, path) = store_and_path(&file.url)?;
            match &store {
                None => store = Some(file_store),
                Some(s) if *s != file_store => {
                    return Err(DataFusionError::Plan(format!(
                        "file {} is not in the table's store {}",
                        file.url,
                        s.as_str()
                    )));
                }
                Some(_) => {}
            }
            if file.partition_values.len() != partition_fields.len() {
                return Err(DataFusionError::Plan(format!(
                    "file {} has {} partition values for {} partition columns",
                    file.url,
                    file.partition_values.len(),
                    partition_fields.len()
                )));
            }
            let values = file
                .partition_values
                .iter()
                .zip(&partition_fields)
                .map(|(v, field)| match v {
                    None => ScalarValue::try_from(field.data_type()),
                    Some(text) => ScalarValue::try_from_string(text.clone(), field.data_type())
                        .map_err(|e| {
                            DataFusionError::Plan(format!(
                                "file {}: partition value {text:?} of {} is not a {}: {e}",
                                file.url,
                                field.name(),
                                field.data_type()
                            ))
                        }),
                })
                .collect::<Result<Vec<_>>>()?;
            files.push((path, values));
        }
        let store = match store {
            Some(s) => s,
            None => {
                let url = Url::parse(&resolved.table_url).map_err(|e| {
                    DataFusionError::Plan(format!("bad table URL {}: {e}", resolved.table_url))
                })?;
                ObjectStoreUrl::parse(format!("{}://{}", url.scheme(), url.authority()))?
            }
        };
        Ok(Self {
            resolved,
            schema,
            read_schema,
            partition_fields,
            store,
            files,
            file_intervals: None,
        })
    }

    /// Adds the column [`file_interval_column`]`(length_us)` (a UTC microsecond timestamp:
    /// the start of the interval holding the file's events) when the log's statistics put
    /// every file inside one interval; otherwise returns the table unchanged. Rows whose
    /// `TimeGenerated` is null get their file's interval too: filter on the time first.
    pub fn with_file_intervals(mut self, length_us: i64) -> Self {
        if length_us <= 0 || self.files.is_empty() {
            return self;
        }
        let intervals: Option<Vec<i64>> = self
            .resolved
            .files
            .iter()
            .map(|f| f.interval(length_us))
            .collect();
        let Some(intervals) = intervals else {
            return self;
        };
        let column = Arc::new(arrow::datatypes::Field::new(
            file_interval_column(length_us),
            arrow::datatypes::DataType::Timestamp(
                arrow::datatypes::TimeUnit::Microsecond,
                Some("UTC".into()),
            ),
            false,
        ));
        let mut fields: Vec<FieldRef> = self.schema.fields().iter().cloned().collect();
        fields.push(column.clone());
        self.schema = Arc::new(Schema::new(fields));
        self.partition_fields.push(column);
        for ((_, values), start) in self.files.iter_mut().zip(&intervals) {
            values.push(ScalarValue::TimestampMicrosecond(
                Some(*start),
                Some("UTC".into()),
            ));
        }
        self.file_intervals = Some((length_us, intervals));
        self
    }

    /// Whether the log's statistics prove that every row of every file meets `filter`, a
    /// comparison of `TimeGenerated` with a microsecond timestamp (no file may hold a null
    /// time: a null never meets a comparison).
    fn every_row_meets(&self, filter: &Expr) -> bool {
        use datafusion::logical_expr::{BinaryExpr, Operator};
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return false;
        };
        let as_time = |e: &Expr| match e {
            Expr::Literal(ScalarValue::TimestampMicrosecond(Some(v), _), _) => Some(*v),
            _ => None,
        };
        let is_time_column =
            |e: &Expr| matches!(e, Expr::Column(c) if c.name == crate::schema::TIME_GENERATED);
        // As `TimeGenerated <op> value`.
        let (op, value) = if is_time_column(left) {
            match as_time(right) {
                Some(v) => (*op, v),
                None => return false,
            }
        } else if is_time_column(right) {
            match (as_time(left), op.swap()) {
                (Some(v), Some(op)) => (op, v),
                _ => return false,
            }
        } else {
            return false;
        };
        !self.resolved.files.is_empty()
            && self.resolved.files.iter().all(|f| {
                let (Some((low, high)), Some(0)) = (f.time_bounds, f.time_nulls) else {
                    return false;
                };
                match op {
                    Operator::LtEq => high <= value,
                    Operator::Lt => high < value,
                    Operator::GtEq => low >= value,
                    Operator::Gt => low > value,
                    _ => false,
                }
            })
    }

    /// `expr` naming columns as the files do.
    fn with_physical_names(&self, expr: Expr) -> Result<Expr> {
        use datafusion::common::tree_node::{Transformed, TreeNode};
        if self.resolved.physical_names.is_empty() {
            return Ok(expr);
        }
        let renamed = expr.transform(|e| match e {
            Expr::Column(c) if self.resolved.physical_names.contains_key(&c.name) => {
                let physical = self.resolved.physical_name(&c.name).to_string();
                Ok(Transformed::yes(Expr::Column(
                    datafusion::common::Column::new(c.relation, physical),
                )))
            }
            other => Ok(Transformed::no(other)),
        })?;
        Ok(renamed.data)
    }

    /// `scan`'s columns renamed from the files' names to the table's (a projection on
    /// top, when column mapping renamed any it reads).
    fn with_logical_names(&self, scan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
        use datafusion::physical_plan::projection::ProjectionExec;
        let output = scan.schema();
        let logical: std::collections::BTreeMap<&str, &str> = self
            .resolved
            .physical_names
            .iter()
            .map(|(l, p)| (p.as_str(), l.as_str()))
            .collect();
        if !output
            .fields()
            .iter()
            .any(|f| logical.contains_key(f.name().as_str()))
        {
            return Ok(scan);
        }
        let exprs: Vec<(Arc<dyn datafusion::physical_plan::PhysicalExpr>, String)> = output
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let name = logical.get(f.name().as_str()).copied().unwrap_or(f.name());
                let column = datafusion::physical_expr::expressions::Column::new(f.name(), i);
                (Arc::new(column) as _, name.to_string())
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }

    /// The deleted rows of the files that have some, by object path.
    fn deleted_rows(&self) -> std::collections::BTreeMap<String, DeletedRows> {
        self.files
            .iter()
            .zip(&self.resolved.files)
            .filter_map(|((path, _), file)| {
                let deleted = file.deleted_rows.as_ref()?;
                Some((path.to_string(), deleted.clone()))
            })
            .collect()
    }

    /// Whether [`Self::with_file_intervals`] added its column.
    pub fn has_file_intervals(&self) -> bool {
        self.file_intervals.is_some()
    }

    /// The resolved snapshot.
    pub fn resolved(&self) -> &ResolvedTable {
        &self.resolved
    }

    /// The object store the files are in.
    pub fn object_store_url(&self) -> &ObjectStoreUrl {
        &self.store
    }

    /// Serialises the file list and the file-interval setting (the schema travels
    /// separately in the plan).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let encoded = Encoded {
            resolved: self.resolved.clone(),
            file_interval_us: self.file_intervals.as_ref().map(|(length, _)| *length),
        };
        serde_json::to_vec(&encoded).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the provider from [`Self::encode`]'s bytes and the plan's schema.
    pub fn decode(bytes: &[u8], schema: SchemaRef) -> Result<Self> {
        let encoded: Encoded =
            serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let Some(length) = encoded.file_interval_us else {
            return Self::try_new(encoded.resolved, schema);
        };
        let column = file_interval_column(length);
        let without: Vec<FieldRef> = schema
            .fields()
            .iter()
            .filter(|f| f.name() != &column)
            .cloned()
            .collect();
        let table = Self::try_new(encoded.resolved, Arc::new(Schema::new(without)))?
            .with_file_intervals(length);
        if !table.has_file_intervals() {
            return Err(DataFusionError::Plan(format!(
                "the plan's scan has {column}, but its files' statistics no longer allow it"
            )));
        }
        Ok(table)
    }

    /// Splits the files into at most `n` groups of similar total size, the same way for
    /// the same files whatever else varies. With file intervals, and either at least `n`
    /// distinct intervals or none over [`ONE_TASK_INTERVAL_BYTES`], each interval's files
    /// stay in one group; returns whether they did.
    fn file_groups(&self, n: usize) -> (Vec<FileGroup>, bool) {
        let sizes: Vec<u64> = self.resolved.files.iter().map(|f| f.size).collect();
        // Units placed whole: an interval's files, or single files.
        let mut units: Vec<(u64, Vec<usize>)> = match &self.file_intervals {
            Some((_, intervals)) => {
                let mut by_interval: std::collections::BTreeMap<i64, Vec<usize>> =
                    Default::default();
                for (i, start) in intervals.iter().enumerate() {
                    by_interval.entry(*start).or_default().push(i);
                }
                by_interval
                    .into_values()
                    .map(|files| (files.iter().map(|&i| sizes[i]).sum(), files))
                    .collect()
            }
            None => Vec::new(),
        };
        // Whole intervals per partition when that still fills every partition, or when no
        // interval is large enough for a lone task to matter.
        let by_interval = !units.is_empty()
            && (units.len() >= n.max(1)
                || units
                    .iter()
                    .all(|(bytes, _)| *bytes <= ONE_TASK_INTERVAL_BYTES));
        if !by_interval {
            units = (0..self.files.len()).map(|i| (sizes[i], vec![i])).collect();
        }
        let groups = balance(units, n)
            .into_iter()
            .map(|mut members| {
                // In interval order, then by URL.
                match &self.file_intervals {
                    Some((_, intervals)) => members.sort_unstable_by_key(|&i| (intervals[i], i)),
                    None => members.sort_unstable(),
                }
                FileGroup::new(members.into_iter().map(|i| self.file(i)).collect())
            })
            .collect();
        (groups, by_interval)
    }

    /// File `i` to scan, with its partition values and what the log knows of it.
    fn file(&self, i: usize) -> PartitionedFile {
        use datafusion::common::stats::Precision;
        let (path, values) = &self.files[i];
        let file = file_at(path, self.resolved.files[i].size).with_partition_values(values.clone());
        let Some(rows) = self.resolved.files[i].live_rows() else {
            return file;
        };
        let mut stats = Statistics::new_unknown(&self.schema);
        stats.num_rows = Precision::Exact(rows as usize);
        file.with_statistics(Arc::new(stats))
    }
}

#[async_trait]
impl TableProvider for DeltaFilesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Used to skip row groups by their statistics, the filter itself staying in the
        // plan; except a bound on the time that every row of every file meets: then no row
        // needs its time read.
        Ok(filters
            .iter()
            .map(|f| {
                if self.every_row_meets(f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table_schema = TableSchema::builder(self.read_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let mut source = ParquetSource::new(table_schema);
        // Row-group pruning only looks at file columns.
        let partition_names: BTreeSet<&str> = self
            .partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        let file_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| !partition_names.contains(c.name.as_str()))
            })
            .map(|f| self.with_physical_names(f.clone()))
            .collect::<Result<_>>()?;
        if let Some(predicate) = conjunction(file_filters) {
            let mut fields: Vec<FieldRef> = self.read_schema.fields().iter().cloned().collect();
            fields.extend(self.partition_fields.iter().cloned());
            let df_schema = DFSchema::try_from(Schema::new(fields))?;
            let predicate = state.create_physical_expr(predicate, &df_schema)?;
            source = source.with_predicate(predicate);
        }
        let (groups, by_interval) = self.file_groups(state.config().target_partitions());
        // Each interval's files in one partition: hash-partitioned on the interval column.
        // (Declaring the files' order by interval too would make DataFusion aggregate in
        // streaming mode, which measured slower here.)
        let partitioning = match &self.file_intervals {
            Some((length, _)) if by_interval => {
                let name = file_interval_column(*length);
                let index = self.schema.index_of(&name)?;
                let column: Arc<dyn datafusion::physical_plan::PhysicalExpr> = Arc::new(
                    datafusion::physical_expr::expressions::Column::new(&name, index),
                );
                Some(Partitioning::Hash(vec![column], groups.len()))
            }
            _ => None,
        };
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_output_partitioning(partitioning)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        let mut scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let deleted = self.deleted_rows();
        if !deleted.is_empty() {
            scan = Arc::new(SkipDeletedExec::try_new(scan, deleted)?);
        }
        self.with_logical_names(scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, TimeUnit};
    use datafusion::prelude::lit;

    const DAY: i64 = 86_400_000_000;

    fn file(name: &str, bounds: Option<(i64, i64)>, nulls: Option<u64>) -> ResolvedFile {
        ResolvedFile {
            url: format!("file:///t/{name}.parquet"),
            size: 100,
            partition_values: Vec::new(),
            num_records: Some(10),
            time_bounds: bounds,
            time_nulls: nulls,
            deleted_rows: None,
        }
    }

    fn table(files: Vec<ResolvedFile>) -> DeltaFilesTable {
        let resolved = ResolvedTable {
            physical_names: Default::default(),
            table_url: "file:///t/".into(),
            version: 0,
            partition_columns: Vec::new(),
            files,
        };
        let schema = Arc::new(Schema::new(vec![Field::new(
            crate::schema::TIME_GENERATED,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        )]));
        DeltaFilesTable::try_new(resolved, schema).unwrap()
    }

    fn day_files() -> Vec<ResolvedFile> {
        (0..4)
            .map(|d| {
                file(
                    &format!("d{d}"),
                    Some((d * DAY, d * DAY + DAY - 1)),
                    Some(0),
                )
            })
            .collect()
    }

    #[test]
    fn files_inside_one_interval_get_the_interval_column() {
        let t = table(day_files()).with_file_intervals(DAY);
        assert!(t.has_file_intervals());
        assert!(
            t.schema()
                .field_with_name(&file_interval_column(DAY))
                .is_ok()
        );
        // One file over two days, or without statistics: no column.
        let mut files = day_files();
        files[2].time_bounds = Some((2 * DAY, 3 * DAY));
        assert!(!table(files).with_file_intervals(DAY).has_file_intervals());
        let mut files = day_files();
        files[1].time_bounds = None;
        assert!(!table(files).with_file_intervals(DAY).has_file_intervals());
    }

    #[test]
    fn split_at_interval_keeps_intervals_apart() {
        let resolved = table(day_files()).resolved().clone();
        let (before, after) = resolved.split_at_interval(DAY, 3 * DAY).unwrap();
        assert_eq!(before.files.len(), 3);
        assert_eq!(after.files.len(), 1);
        assert_eq!(after.files[0].url, "file:///t/d3.parquet");
        let mut spanning = resolved.clone();
        spanning.files[0].time_bounds = Some((0, 2 * DAY));
        assert!(spanning.split_at_interval(DAY, 3 * DAY).is_none());
    }

    #[test]
    fn an_interval_stays_in_one_partition() {
        // Eight files, two per day: each day's files land in one group.
        let mut files = day_files();
        files.extend((0..4).map(|d| file(&format!("e{d}"), Some((d * DAY, d * DAY + 5)), Some(0))));
        let t = table(files).with_file_intervals(DAY);
        let (groups, by_interval) = t.file_groups(3);
        assert!(by_interval);
        assert_eq!(groups.len(), 3);
        let mut seen = std::collections::BTreeMap::new();
        for (g, group) in groups.iter().enumerate() {
            for f in group.iter() {
                let day = f.partition_values.last().unwrap().clone();
                assert_eq!(*seen.entry(format!("{day:?}")).or_insert(g), g, "{day:?}");
            }
        }
        assert_eq!(seen.len(), 4);
        // Without the column, files are spread one by one.
        let (groups, by_interval) = table(day_files()).file_groups(3);
        assert!(!by_interval);
        assert_eq!(groups.len(), 3);
    }

    #[test]
    fn a_time_bound_every_row_meets_is_exact() {
        let t = table(day_files());
        let time = || {
            Expr::Column(datafusion::common::Column::new_unqualified(
                crate::schema::TIME_GENERATED,
            ))
        };
        let at = |v: i64| {
            lit(ScalarValue::TimestampMicrosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let exact = |t: &DeltaFilesTable, e: Expr| t.every_row_meets(&e);
        assert!(exact(&t, time().lt_eq(at(4 * DAY - 1))));
        assert!(!exact(&t, time().lt_eq(at(4 * DAY - 2))));
        assert!(exact(&t, time().gt(at(-1))));
        assert!(!exact(&t, time().gt(at(0))));
        assert!(exact(&t, at(4 * DAY).gt(time())), "literal on the left");
        assert!(!exact(&t, time().not_eq(at(0))));
        // A null time never meets a bound; unknown null counts prove nothing.
        let mut files = day_files();
        files[0].time_nulls = Some(1);
        assert!(!exact(&table(files), time().lt_eq(at(4 * DAY))));
        let mut files = day_files();
        files[0].time_nulls = None;
        assert!(!exact(&table(files), time().lt_eq(at(4 * DAY))));
    }
}
