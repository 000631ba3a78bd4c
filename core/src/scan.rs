//! The explicit-file Delta scan.
//!
//! The driver resolves a Delta snapshot (with delta-rs) into the list of active Parquet
//! files it must read; [`DeltaFilesTable`] holds that list and plans a plain
//! `DataSourceExec` over `ParquetSource`. The list travels in the logical plan through
//! [`crate::codec`], so the scheduler plans the same scan and every executor receives only
//! its own files. No process but the driver needs delta-rs.

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
    physical_plan::ExecutionPlan,
};
use object_store::path::Path;
use url::Url;

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
}

/// A table provider over a resolved snapshot's files; see the module documentation.
#[derive(Debug, Clone)]
pub struct DeltaFilesTable {
    resolved: ResolvedTable,
    /// File columns, then partition columns.
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    store: ObjectStoreUrl,
    /// Per file, its object path and typed partition values.
    files: Vec<(Path, Vec<ScalarValue>)>,
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
            file_schema,
            partition_fields,
            store,
            files,
        })
    }

    /// The resolved snapshot.
    pub fn resolved(&self) -> &ResolvedTable {
        &self.resolved
    }

    /// The object store the files are in.
    pub fn object_store_url(&self) -> &ObjectStoreUrl {
        &self.store
    }

    /// Serialises the file list (the schema travels separately in the plan).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.resolved).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the provider from [`Self::encode`]'s bytes and the plan's schema.
    pub fn decode(bytes: &[u8], schema: SchemaRef) -> Result<Self> {
        let resolved: ResolvedTable =
            serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Self::try_new(resolved, schema)
    }

    /// Splits the files into at most `n` groups of similar total size, the same way for
    /// the same files whatever else varies.
    fn file_groups(&self, n: usize) -> Vec<FileGroup> {
        let n = n.clamp(1, self.files.len().max(1));
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        let sizes: Vec<u64> = self.resolved.files.iter().map(|f| f.size).collect();
        order.sort_by(|&a, &b| sizes[b].cmp(&sizes[a]).then(a.cmp(&b)));
        let mut groups: Vec<(u64, Vec<usize>)> = vec![(0, Vec::new()); n];
        for i in order {
            let smallest = (0..n)
                .min_by_key(|&g| (groups[g].0, g))
                .expect("at least one group");
            groups[smallest].0 += sizes[i];
            groups[smallest].1.push(i);
        }
        groups
            .into_iter()
            .filter(|(_, members)| !members.is_empty())
            .map(|(_, mut members)| {
                members.sort_unstable();
                FileGroup::new(
                    members
                        .into_iter()
                        .map(|i| {
                            let (path, values) = &self.files[i];
                            let mut file =
                                PartitionedFile::new(path.to_string(), self.resolved.files[i].size)
                                    .with_partition_values(values.clone());
                            if let Some(rows) = self.resolved.files[i].num_records {
                                let mut stats = Statistics::new_unknown(&self.schema);
                                stats.num_rows =
                                    datafusion::common::stats::Precision::Exact(rows as usize);
                                file = file.with_statistics(Arc::new(stats));
                            }
                            file
                        })
                        .collect(),
                )
            })
            .collect()
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
        // Used to skip row groups by their statistics; the filter itself stays in the plan.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table_schema = TableSchema::builder(self.file_schema.clone())
            .with_table_partition_cols(self.partition_fields.clone())
            .build();
        let mut source = ParquetSource::new(table_schema);
        // Row-group pruning only looks at file columns.
        let partition_names: BTreeSet<&str> = self
            .resolved
            .partition_columns
            .iter()
            .map(String::as_str)
            .collect();
        let file_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| !partition_names.contains(c.name.as_str()))
            })
            .cloned()
            .collect();
        if let Some(predicate) = conjunction(file_filters) {
            let df_schema = DFSchema::try_from(self.schema.clone())?;
            let predicate = state.create_physical_expr(predicate, &df_schema)?;
            source = source.with_predicate(predicate);
        }
        let groups = self.file_groups(state.config().target_partitions());
        let config = FileScanConfigBuilder::new(self.store.clone(), Arc::new(source))
            .with_file_groups(groups)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        Ok(DataSourceExec::from_data_source(config))
    }
}
