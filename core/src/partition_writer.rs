//! Scratch Parquet: the job's intermediate results written by every partition of a plan
//! at once.
//!
//! DataFusion's file sinks take a single input partition, so writing an aggregation's
//! output put a stage boundary after it on Ballista: every summary row was shuffled to
//! one task that wrote the files alone. [`ScratchSink`] is a write-only table instead:
//! inserting into it plans a [`ParquetWriterExec`] over the input's partitions, each of
//! which writes its own file in the same task that computed its rows (and so later reads
//! find files of similar size, not one per writer).
//!
//! A partition's file is named by the sink's write id, its partition and a random number:
//! Ballista may run partitions of a stage in separate tasks, each seeing its partition as
//! number 0, so the partition alone does not name a file uniquely. A partition with no
//! rows writes no file. Object stores make a file visible only once complete, so readers
//! never see one half written.
//!
//! A write of summary rows can also be digested ([`ScratchSink::with_digest`], [`digest`]):
//! each partition then tallies its rows' categories and keeps its training-sample
//! candidates as it writes, for the driver to read instead of running another job.

use std::{fmt, sync::Arc};

use arrow::{
    array::{RecordBatch, UInt64Array},
    datatypes::{DataType, Field, Schema, SchemaRef},
};
use async_trait::async_trait;
use datafusion::{
    catalog::{Session, TableProvider},
    common::{DataFusionError, Result, SchemaExt, not_impl_err, tree_node::TreeNodeRecursion},
    datasource::TableType,
    execution::{SendableRecordBatchStream, TaskContext},
    logical_expr::{Expr, dml::InsertOp},
    physical_expr::{EquivalenceProperties, PhysicalExpr},
    physical_plan::{
        DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
        PlanProperties,
        execution_plan::{Boundedness, EmissionType},
        stream::RecordBatchStreamAdapter,
    },
};
use futures::StreamExt;
use parquet::{arrow::AsyncArrowWriter, basic::Compression, file::properties::WriterProperties};

use crate::scan::store_and_path;

pub mod digest;

use digest::{Digest, DigestSpec};

/// Rows per row group of scratch files.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// How scratch files are written: lz4 (cheap to write and read; DataFusion's default
/// zstd cost a third of the report's write), row groups of [`ROW_GROUP_ROWS`], and no
/// min/max statistics: every partition's file spans every interval, so no read of them
/// could skip anything by statistics, and computing them per value was a good part of
/// the writer's CPU. Dictionaries stay: without them the report's command lines grow, and
/// reading them back slows the score phase (BENCHMARKS.md).
pub fn writer_properties() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::LZ4_RAW)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build()
}

/// The output of a write: one row per partition with the rows it wrote (DataFusion's
/// convention for inserts).
fn count_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new(
        "count",
        DataType::UInt64,
        false,
    )]))
}

/// A folder of scratch Parquet files that plans write into, every partition its own file;
/// see the [module documentation](self). Write-only: read the folder as Parquet.
#[derive(Debug, Clone)]
pub struct ScratchSink {
    /// The folder: a URL (`file:///…/`, `abfss://…/`) ending with `/`.
    dir: String,
    /// Names this write's files.
    write_id: String,
    schema: SchemaRef,
    digest: Option<DigestSpec>,
    digest_only: bool,
}

/// What the plan carries of a sink and of its writer.
#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    dir: String,
    write_id: String,
    #[serde(default)]
    digest: Option<DigestSpec>,
    /// Only the digests are written, not the rows (which are already stored elsewhere).
    #[serde(default)]
    digest_only: bool,
}

impl ScratchSink {
    /// A sink writing rows of `schema` into folder `dir` (a URL ending with `/`).
    pub fn try_new(dir: &str, schema: SchemaRef) -> Result<Self> {
        if !dir.ends_with('/') {
            return Err(DataFusionError::Plan(format!(
                "scratch folder {dir} does not end with /"
            )));
        }
        store_and_path(dir)?;
        Ok(Self {
            dir: dir.to_string(),
            write_id: format!("{:016x}", rand::random::<u64>()),
            schema,
            digest: None,
            digest_only: false,
        })
    }

    /// The same sink writing the digests alone (with [`Self::with_digest`]): for rows
    /// stored elsewhere already, whose digests are wanted.
    pub fn digest_only(self) -> Self {
        Self {
            digest_only: true,
            ..self
        }
    }

    /// The same sink, each partition also writing its [`digest`] as `spec` says.
    pub fn with_digest(self, spec: DigestSpec) -> Result<Self> {
        if !spec.dir.ends_with('/') {
            return Err(DataFusionError::Plan(format!(
                "digest folder {} does not end with /",
                spec.dir
            )));
        }
        store_and_path(&spec.dir)?;
        Ok(Self {
            digest: Some(spec),
            ..self
        })
    }

    /// Serialises the sink (the schema travels beside it in the plan).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&Encoded {
            dir: self.dir.clone(),
            write_id: self.write_id.clone(),
            digest: self.digest.clone(),
            digest_only: self.digest_only,
        })
        .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the sink from [`Self::encode`]'s bytes and its schema.
    pub fn decode(bytes: &[u8], schema: SchemaRef) -> Result<Self> {
        let Encoded {
            dir,
            write_id,
            digest,
            digest_only,
        } = serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        Ok(Self {
            dir,
            write_id,
            schema,
            digest,
            digest_only,
        })
    }
}

#[async_trait]
impl TableProvider for ScratchSink {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        not_impl_err!(
            "the scratch sink for {} is write-only: read the folder as Parquet",
            self.dir
        )
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        input: Arc<dyn ExecutionPlan>,
        insert_op: InsertOp,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if insert_op != InsertOp::Append {
            return not_impl_err!("the scratch sink only appends, not {insert_op}");
        }
        self.schema
            .logically_equivalent_names_and_types(&input.schema())?;
        Ok(Arc::new(
            ParquetWriterExec::try_new(input, self.dir.clone(), self.write_id.clone())?
                .with_digest(self.digest.clone())
                .with_digest_only(self.digest_only),
        ))
    }
}

/// Writes each input partition to its own Parquet file in a folder; outputs one row per
/// partition with the rows written. See the [module documentation](self).
#[derive(Debug)]
pub struct ParquetWriterExec {
    input: Arc<dyn ExecutionPlan>,
    dir: String,
    write_id: String,
    digest: Option<DigestSpec>,
    /// Only the digests are written.
    digest_only: bool,
    properties: Arc<PlanProperties>,
}

impl ParquetWriterExec {
    /// Writes `input`'s partitions into folder `dir` (a URL ending with `/`), the files
    /// named after `write_id`.
    pub fn try_new(input: Arc<dyn ExecutionPlan>, dir: String, write_id: String) -> Result<Self> {
        store_and_path(&dir)?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(count_schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(Self {
            input,
            dir,
            write_id,
            digest: None,
            digest_only: false,
            properties: Arc::new(properties),
        })
    }

    /// The same node, writing only the digests when `digest_only`.
    pub fn with_digest_only(self, digest_only: bool) -> Self {
        Self {
            digest_only,
            ..self
        }
    }

    /// The same node, each partition also writing its [`digest`] as `spec` says (none
    /// for `None`).
    pub fn with_digest(self, spec: Option<DigestSpec>) -> Self {
        Self {
            digest: spec,
            ..self
        }
    }

    /// Serialises the node (its input travels as its child).
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&Encoded {
            dir: self.dir.clone(),
            write_id: self.write_id.clone(),
            digest: self.digest.clone(),
            digest_only: self.digest_only,
        })
        .map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the node from [`Self::encode`]'s bytes and its decoded input.
    pub fn decode(bytes: &[u8], inputs: &[Arc<dyn ExecutionPlan>]) -> Result<Self> {
        let Encoded {
            dir,
            write_id,
            digest,
            digest_only,
        } = serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let input = crate::single_input("ParquetWriterExec", inputs)?;
        Ok(Self::try_new(input.clone(), dir, write_id)?
            .with_digest(digest)
            .with_digest_only(digest_only))
    }
}

impl DisplayAs for ParquetWriterExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "ParquetWriterExec: dir={}", self.dir)?;
        match &self.digest {
            Some(spec) => write!(f, ", digest={}", spec.dir),
            None => Ok(()),
        }
    }
}

impl ExecutionPlan for ParquetWriterExec {
    fn name(&self) -> &str {
        "ParquetWriterExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// Each partition writes where it is: repartitioning the input would only move rows.
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
        let input = crate::single_input("ParquetWriterExec", &children)?;
        Ok(Arc::new(
            Self::try_new(input.clone(), self.dir.clone(), self.write_id.clone())?
                .with_digest(self.digest.clone())
                .with_digest_only(self.digest_only),
        ))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context.clone())?;
        let (store_url, _) = store_and_path(&self.dir)?;
        let store = context.runtime_env().object_store(&store_url)?;
        let name = format!(
            "{}-{partition}-{:016x}",
            self.write_id,
            rand::random::<u64>()
        );
        let (_, path) = store_and_path(&format!("{}{name}.parquet", self.dir))?;
        let digest = match &self.digest {
            Some(spec) => {
                let (digest_store, _) = store_and_path(&spec.dir)?;
                let digest_store = context.runtime_env().object_store(&digest_store)?;
                Some((Digest::new(spec.clone()), digest_store))
            }
            None => None,
        };
        let write_rows = !self.digest_only;
        let written = futures::stream::once(async move {
            let (digest, digest_store) = digest.unzip();
            let target = write_rows.then_some((store, path));
            let (rows, digest) = write_partition(input, target, digest).await?;
            if let (Some(digest), Some(digest_store)) = (digest, digest_store) {
                digest.write(digest_store.as_ref(), &name).await?;
            }
            let batch = RecordBatch::try_new(
                count_schema(),
                vec![Arc::new(UInt64Array::from(vec![rows]))],
            )?;
            Ok::<_, DataFusionError>(batch)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            count_schema(),
            written,
        )))
    }
}

/// Writes `input` to a Parquet file at `target`'s path of its store (when given), opened
/// on the first non-empty batch (an empty partition writes nothing), taking each batch
/// into `digest` too; returns the rows taken and the digest.
async fn write_partition(
    mut input: SendableRecordBatchStream,
    target: Option<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)>,
    mut digest: Option<Digest>,
) -> Result<(u64, Option<Digest>)> {
    let schema = input.schema();
    let mut writer = None;
    let mut rows = 0;
    while let Some(batch) = input.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        if let (None, Some((store, path))) = (&writer, &target) {
            let file = object_store::buffered::BufWriter::new(store.clone(), path.clone());
            writer = Some(AsyncArrowWriter::try_new(
                file,
                schema.clone(),
                Some(writer_properties()),
            )?);
        }
        if let Some(writer) = writer.as_mut() {
            writer.write(&batch).await?;
        }
        if let Some(digest) = digest.as_mut() {
            digest.add(&batch)?;
        }
        rows += batch.num_rows() as u64;
    }
    if let Some(writer) = writer {
        writer.close().await?;
    }
    Ok((rows, digest))
}

#[cfg(test)]
mod tests;
