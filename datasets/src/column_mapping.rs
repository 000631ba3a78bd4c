//! A column-mapped copy of an event table, as Spark and Databricks write one after
//! `ALTER TABLE ... SET TBLPROPERTIES ('delta.columnMapping.mode' = ...)` and a few
//! `RENAME COLUMN`s.
//!
//! Written from the Delta protocol ("Column Mapping"): every column gets an id and a
//! physical name in its schema metadata; the data files name their columns by physical
//! name (and, in `id` mode, carry the ids as Parquet field ids); partition values and
//! statistics are keyed by physical name. Renamed columns keep their old name as the
//! physical one — here `Computer` was `Hostname` and `CommandLine` was
//! `ProcessCommandLine` — the others get Spark's `col-<uuid>` names. The copy is one
//! commit with the legacy protocol Spark 3.5 writes for it (reader 2, writer 5).

use std::collections::BTreeMap;

use arrow::{
    datatypes::{DataType, Field, Schema, TimeUnit},
    record_batch::RecordBatch,
};
use deltalake::parquet::{arrow::ArrowWriter, file::properties::WriterProperties};
use object_store::{ObjectStoreExt, PutPayload, path::Path};
use procforest_pipeline::error::{Context, PipelineError, Result};
use serde_json::{Value, json};

/// How the copy maps its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// By physical name.
    Name,
    /// By field id (the files carry both).
    Id,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Name => "name",
            Mode::Id => "id",
        }
    }
}

/// Columns renamed after mapping was turned on: (their name now, their name in the files).
pub const RENAMED: [(&str, &str); 2] = [
    ("Computer", "Hostname"),
    ("CommandLine", "ProcessCommandLine"),
];

/// The physical name of column number `id` (from 1) called `name`.
fn physical_name(id: usize, name: &str) -> String {
    match RENAMED.iter().find(|(now, _)| *now == name) {
        Some((_, before)) => before.to_string(),
        None => format!("col-{:08x}-0000-4000-8000-{:012x}", 0x5eed_0000 + id, id),
    }
}

/// Copies the newest snapshot of the event table at `from` into a new column-mapped
/// table at `to` (local folders); returns the physical names by column.
pub async fn copy_with_mapping(
    from: &str,
    to: &str,
    mode: Mode,
) -> Result<BTreeMap<String, String>> {
    let source = deltalake::open_table(procforest_pipeline::source::table_url_for_write(from)?)
        .await
        .bad_input(format!("opening {from}"))?;
    let target_url = procforest_pipeline::source::table_url_for_write(to)?;
    let target = deltalake::DeltaTableBuilder::from_url(target_url)
        .runtime("the copy's location")?
        .build_storage()
        .runtime("the copy's storage")?
        .object_store(None);
    let snapshot = source.snapshot().runtime("reading the snapshot")?;
    let schema = snapshot.snapshot().arrow_schema();
    let partition_columns = snapshot.metadata().partition_columns().to_vec();
    let names: BTreeMap<String, String> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().clone(), physical_name(i + 1, f.name())))
        .collect();
    let ids: BTreeMap<String, usize> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| (f.name().clone(), i + 1))
        .collect();
    let mut log = vec![
        json!({"commitInfo": {"timestamp": 0, "operation": "CONVERT", "engineInfo": "procforest-datasets"}}),
        json!({"protocol": {"minReaderVersion": 2, "minWriterVersion": 5}}),
        json!({"metaData": {
            "id": "00000000-0000-4000-8000-00000000c0de",
            "format": {"provider": "parquet", "options": {}},
            "schemaString": delta_schema(&schema, &names)?.to_string(),
            "partitionColumns": partition_columns,
            "configuration": {
                "delta.columnMapping.mode": mode.as_str(),
                "delta.columnMapping.maxColumnId": schema.fields().len().to_string(),
            },
            "createdTime": 0,
        }}),
    ];
    let store = source.log_store().object_store(None);
    let files: Vec<_> = snapshot
        .snapshot()
        .try_log_data()
        .runtime("listing the files")?
        .iter()
        .collect();
    for file in files {
        let path = file.path().into_owned();
        let bytes = store
            .get(&Path::parse(&path).runtime("a data file path")?)
            .await
            .runtime(format!("reading {path}"))?
            .bytes()
            .await
            .runtime(format!("reading {path}"))?;
        let rewritten =
            rename_columns(bytes, &names, &ids, mode).runtime(format!("rewriting {path}"))?;
        let size = rewritten.len();
        target
            .put(
                &Path::parse(&path).runtime("a data file path")?,
                PutPayload::from(rewritten),
            )
            .await
            .runtime(format!("writing {path}"))?;
        let partition_values: BTreeMap<String, Option<String>> = file
            .partition_values_map()
            .into_iter()
            .map(|(k, v)| (names.get(&k).cloned().unwrap_or(k), v))
            .collect();
        let stats = file.stats().map(|s| rename_stats(&s, &names)).transpose()?;
        log.push(json!({"add": {
            "path": path,
            "partitionValues": partition_values,
            "size": size,
            "modificationTime": file.modification_time(),
            "dataChange": true,
            "stats": stats,
        }}));
    }
    let commit: String = log.iter().map(|action| format!("{action}\n")).collect();
    target
        .put(
            &Path::from("_delta_log/00000000000000000000.json"),
            PutPayload::from(commit.into_bytes()),
        )
        .await
        .runtime("writing the copy's log")?;
    Ok(names)
}

/// The Delta schema of `schema` with each column's id and physical name.
fn delta_schema(schema: &Schema, names: &BTreeMap<String, String>) -> Result<Value> {
    let fields = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let delta_type = match f.data_type() {
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => "string",
                DataType::Int32 => "integer",
                DataType::Int64 => "long",
                DataType::Date32 => "date",
                DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, None) => "timestamp_ntz",
                other => {
                    return Err(PipelineError::bad_input(format!(
                        "column {} is {other}, which the copy does not map",
                        f.name()
                    )));
                }
            };
            Ok(json!({
                "name": f.name(),
                "type": delta_type,
                "nullable": f.is_nullable(),
                "metadata": {
                    "delta.columnMapping.id": i + 1,
                    "delta.columnMapping.physicalName": names[f.name()],
                },
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(json!({"type": "struct", "fields": fields}))
}

/// A data file with its columns named by physical name (and numbered, in `id` mode).
fn rename_columns(
    bytes: bytes::Bytes,
    names: &BTreeMap<String, String>,
    ids: &BTreeMap<String, usize>,
    mode: Mode,
) -> std::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let fields: Vec<Field> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone().with_name(names[f.name()].clone());
            match mode {
                Mode::Id => field.with_metadata(
                    [("PARQUET:field_id".to_string(), ids[f.name()].to_string())].into(),
                ),
                Mode::Name => field,
            }
        })
        .collect();
    let schema = std::sync::Arc::new(Schema::new(fields));
    let mut writer = ArrowWriter::try_new(
        Vec::new(),
        schema.clone(),
        Some(WriterProperties::builder().build()),
    )?;
    for batch in builder.build()? {
        writer.write(&RecordBatch::try_new(
            schema.clone(),
            batch?.columns().to_vec(),
        )?)?;
    }
    Ok(writer.into_inner()?)
}

/// A file's statistics JSON with its column keys renamed to physical names.
fn rename_stats(stats: &str, names: &BTreeMap<String, String>) -> Result<String> {
    let mut value: Value = serde_json::from_str(stats).runtime("reading a file's statistics")?;
    for key in ["minValues", "maxValues", "nullCount"] {
        if let Some(Value::Object(columns)) = value.get_mut(key) {
            *columns = std::mem::take(columns)
                .into_iter()
                .map(|(k, v)| (names.get(&k).cloned().unwrap_or(k), v))
                .collect();
        }
    }
    Ok(value.to_string())
}
