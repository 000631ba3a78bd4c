//! Codecs: procforest's own plan parts in, everything else to Ballista's codecs.
//!
//! Ballista's codec hooks replace its codecs, so these wrap them: a value of ours is
//! written as [`MAGIC`], a kind byte and a payload; anything else is handed to the inner
//! Ballista codec unchanged, and bytes without the magic are decoded by it.

use std::sync::Arc;

use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::{
    arrow::datatypes::SchemaRef,
    catalog::TableProvider,
    common::{DataFusionError, Result, TableReference},
    datasource::file_format::FileFormatFactory,
    execution::TaskContext,
    logical_expr::{AggregateUDF, Extension, LogicalPlan, ScalarUDF, WindowUDF},
    physical_plan::ExecutionPlan,
};
use datafusion_proto::{
    logical_plan::LogicalExtensionCodec,
    physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension},
};

use crate::{
    key_counts::{KeyCountsExec, KeyCountsTable},
    partition_writer::{ParquetWriterExec, ScratchSink},
    scan::{DeltaFilesTable, SkipDeletedExec},
    udf::{
        CategoryIndexUdf, GroupSetUdf, LineEntropyUdf, SampleKeyUdf, ScoreUdf, SortedDistinctUdf,
        TemplateUdf,
    },
};

/// Marks bytes written by these codecs.
pub const MAGIC: &[u8; 4] = b"PFC1";

/// What follows the magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    ScoreUdf = 1,
    SampleKeyUdf = 2,
    DeltaFilesTable = 3,
    SortedDistinctUdf = 4,
    CategoryIndexUdf = 5,
    KeyCountsTable = 6,
    KeyCountsExec = 7,
    ScratchSink = 8,
    ParquetWriterExec = 9,
    GroupSetUdf = 10,
    TemplateUdf = 11,
    LineEntropyUdf = 12,
    SkipDeletedExec = 13,
}

fn write(kind: Kind, payload: &[u8], buf: &mut Vec<u8>) {
    buf.extend_from_slice(MAGIC);
    buf.push(kind as u8);
    buf.extend_from_slice(payload);
}

/// Splits our bytes into kind and payload; `None` for bytes that are not ours.
fn read(buf: &[u8]) -> Result<Option<(Kind, &[u8])>> {
    let Some(rest) = buf.strip_prefix(MAGIC) else {
        return Ok(None);
    };
    let (&kind, payload) = rest
        .split_first()
        .ok_or_else(|| DataFusionError::Internal("procforest codec: no kind byte".into()))?;
    let kind = match kind {
        1 => Kind::ScoreUdf,
        2 => Kind::SampleKeyUdf,
        3 => Kind::DeltaFilesTable,
        4 => Kind::SortedDistinctUdf,
        5 => Kind::CategoryIndexUdf,
        6 => Kind::KeyCountsTable,
        7 => Kind::KeyCountsExec,
        8 => Kind::ScratchSink,
        9 => Kind::ParquetWriterExec,
        10 => Kind::GroupSetUdf,
        11 => Kind::TemplateUdf,
        12 => Kind::LineEntropyUdf,
        13 => Kind::SkipDeletedExec,
        other => {
            return Err(DataFusionError::Internal(format!(
                "procforest codec: unknown kind {other} (is every process the same version?)"
            )));
        }
    };
    Ok(Some((kind, payload)))
}

/// Writes our UDFs; leaves `buf` empty for any other.
fn encode_udf(node: &ScalarUDF, buf: &mut Vec<u8>) -> bool {
    if let Some(score) = ScoreUdf::from_udf(node) {
        write(Kind::ScoreUdf, score.payload(), buf);
        true
    } else if let Some(key) = SampleKeyUdf::from_udf(node) {
        write(Kind::SampleKeyUdf, &key.seed().to_le_bytes(), buf);
        true
    } else if let Some(index) = CategoryIndexUdf::from_udf(node) {
        write(Kind::CategoryIndexUdf, index.payload(), buf);
        true
    } else if let Some(groups) = GroupSetUdf::from_udf(node) {
        write(Kind::GroupSetUdf, groups.payload(), buf);
        true
    } else if SortedDistinctUdf::is(node) {
        write(Kind::SortedDistinctUdf, &[], buf);
        true
    } else if TemplateUdf::is(node) {
        write(Kind::TemplateUdf, &[], buf);
        true
    } else if LineEntropyUdf::is(node) {
        write(Kind::LineEntropyUdf, &[], buf);
        true
    } else {
        false
    }
}

/// Rebuilds our UDFs; `None` for bytes that are not ours.
fn decode_udf(buf: &[u8]) -> Result<Option<Arc<ScalarUDF>>> {
    Ok(match read(buf)? {
        Some((Kind::ScoreUdf, payload)) => Some(Arc::new(ScoreUdf::decode(payload)?.into_udf())),
        Some((Kind::SampleKeyUdf, payload)) => {
            let seed: [u8; 8] = payload
                .try_into()
                .map_err(|_| DataFusionError::Internal("sample key: bad seed".into()))?;
            Some(Arc::new(
                SampleKeyUdf::new(u64::from_le_bytes(seed)).into_udf(),
            ))
        }
        Some((Kind::CategoryIndexUdf, payload)) => {
            Some(Arc::new(CategoryIndexUdf::decode(payload)?.into_udf()))
        }
        Some((Kind::GroupSetUdf, payload)) => {
            Some(Arc::new(GroupSetUdf::decode(payload)?.into_udf()))
        }
        Some((Kind::SortedDistinctUdf, _)) => {
            Some(Arc::new(SortedDistinctUdf::default().into_udf()))
        }
        Some((Kind::TemplateUdf, _)) => Some(Arc::new(TemplateUdf::default().into_udf())),
        Some((Kind::LineEntropyUdf, _)) => Some(Arc::new(LineEntropyUdf::default().into_udf())),
        Some((kind, _)) => {
            return Err(DataFusionError::Internal(format!(
                "procforest codec: {kind:?} is not a function"
            )));
        }
        None => None,
    })
}

/// The logical codec: our table provider and UDFs, then Ballista's.
#[derive(Debug, Default)]
pub struct ProcforestLogicalCodec {
    inner: BallistaLogicalExtensionCodec,
}

impl LogicalExtensionCodec for ProcforestLogicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[LogicalPlan],
        ctx: &TaskContext,
    ) -> Result<Extension> {
        self.inner.try_decode(buf, inputs, ctx)
    }

    fn try_encode(&self, node: &Extension, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode(node, buf)
    }

    fn try_decode_table_provider(
        &self,
        buf: &[u8],
        table_ref: &TableReference,
        schema: SchemaRef,
        ctx: &TaskContext,
    ) -> Result<Arc<dyn TableProvider>> {
        match read(buf)? {
            Some((Kind::DeltaFilesTable, payload)) => {
                Ok(Arc::new(DeltaFilesTable::decode(payload, schema)?))
            }
            Some((Kind::KeyCountsTable, payload)) => Ok(Arc::new(KeyCountsTable::decode(payload)?)),
            Some((Kind::ScratchSink, payload)) => {
                Ok(Arc::new(ScratchSink::decode(payload, schema)?))
            }
            Some((kind, _)) => Err(DataFusionError::Internal(format!(
                "procforest codec: {kind:?} is not a table"
            ))),
            None => self
                .inner
                .try_decode_table_provider(buf, table_ref, schema, ctx),
        }
    }

    fn try_encode_table_provider(
        &self,
        table_ref: &TableReference,
        node: Arc<dyn TableProvider>,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if let Some(table) = node.downcast_ref::<DeltaFilesTable>() {
            write(Kind::DeltaFilesTable, &table.encode()?, buf);
            Ok(())
        } else if let Some(table) = node.downcast_ref::<KeyCountsTable>() {
            write(Kind::KeyCountsTable, &table.encode()?, buf);
            Ok(())
        } else if let Some(sink) = node.downcast_ref::<ScratchSink>() {
            write(Kind::ScratchSink, &sink.encode()?, buf);
            Ok(())
        } else {
            self.inner.try_encode_table_provider(table_ref, node, buf)
        }
    }

    fn try_decode_file_format(
        &self,
        buf: &[u8],
        ctx: &TaskContext,
    ) -> Result<Arc<dyn FileFormatFactory>> {
        self.inner.try_decode_file_format(buf, ctx)
    }

    fn try_encode_file_format(
        &self,
        buf: &mut Vec<u8>,
        node: Arc<dyn FileFormatFactory>,
    ) -> Result<()> {
        self.inner.try_encode_file_format(buf, node)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match decode_udf(buf)? {
            Some(udf) => Ok(udf),
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf) {
            Ok(())
        } else {
            self.inner.try_encode_udf(node, buf)
        }
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}

/// The physical codec: our plan node and UDFs, then Ballista's (shuffle readers and
/// writers, …).
#[derive(Debug, Default)]
pub struct ProcforestPhysicalCodec {
    inner: BallistaPhysicalExtensionCodec,
}

impl PhysicalExtensionCodec for ProcforestPhysicalCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match read(buf)? {
            Some((Kind::KeyCountsExec, payload)) => {
                Ok(Arc::new(KeyCountsExec::decode(payload, inputs)?))
            }
            Some((Kind::ParquetWriterExec, payload)) => {
                Ok(Arc::new(ParquetWriterExec::decode(payload, inputs)?))
            }
            Some((Kind::SkipDeletedExec, payload)) => {
                Ok(Arc::new(SkipDeletedExec::decode(payload, inputs)?))
            }
            Some((kind, _)) => Err(DataFusionError::Internal(format!(
                "procforest codec: {kind:?} is not a plan node"
            ))),
            None => self.inner.try_decode(buf, inputs, ctx, proto_converter),
        }
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        if let Some(exec) = node.downcast_ref::<KeyCountsExec>() {
            write(Kind::KeyCountsExec, &exec.encode()?, buf);
            Ok(())
        } else if let Some(exec) = node.downcast_ref::<ParquetWriterExec>() {
            write(Kind::ParquetWriterExec, &exec.encode()?, buf);
            Ok(())
        } else if let Some(exec) = node.downcast_ref::<SkipDeletedExec>() {
            write(Kind::SkipDeletedExec, &exec.encode()?, buf);
            Ok(())
        } else {
            self.inner.try_encode(node, buf, proto_converter)
        }
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        match decode_udf(buf)? {
            Some(udf) => Ok(udf),
            None => self.inner.try_decode_udf(name, buf),
        }
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        if encode_udf(node, buf) {
            Ok(())
        } else {
            self.inner.try_encode_udf(node, buf)
        }
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }
}
