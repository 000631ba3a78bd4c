//! Helpers for the job's tests: the binary, generated tables, readers and bad tables.

#![allow(dead_code)]

use std::{
    collections::HashMap,
    fs::File,
    path::{Path, PathBuf},
    process::{Command, Output},
    sync::Arc,
};

use arrow::{
    array::{ArrayRef, AsArray, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray},
    datatypes::{DataType, Field, Schema, TimestampMicrosecondType},
};
use deltalake::{
    DeltaTableBuilder, TableProperty,
    kernel::{
        Action, Add, DeletionVectorDescriptor, StorageType, StructType,
        engine::arrow_conversion::TryIntoKernel,
    },
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// A fresh temporary folder.
pub fn scratch() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Runs the `procforest` binary.
pub fn bin_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_procforest"))
        .args(args)
        .env("PROCFOREST_LOG", "warn")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Generates a table ending 2026-11-27; returns the generator's summary (its stdout).
pub fn generate(
    path: &Path,
    events: u64,
    days: u32,
    hosts: usize,
    seed: u64,
    attack_rate: f64,
) -> serde_json::Value {
    generate_with(path, events, days, hosts, seed, attack_rate, &[])
}

/// [`generate`] with more of the generator's flags.
pub fn generate_with(
    path: &Path,
    events: u64,
    days: u32,
    hosts: usize,
    seed: u64,
    attack_rate: f64,
    flags: &[&str],
) -> serde_json::Value {
    let numbers = [
        events.to_string(),
        days.to_string(),
        hosts.to_string(),
        seed.to_string(),
        attack_rate.to_string(),
    ];
    let mut args = vec![
        "generate",
        "--out",
        path.to_str().unwrap(),
        "--events",
        &numbers[0],
        "--days",
        &numbers[1],
        "--hosts",
        &numbers[2],
        "--seed",
        &numbers[3],
        "--end-date",
        "2026-11-27",
        "--attack-rate",
        &numbers[4],
    ];
    args.extend_from_slice(flags);
    let out = bin_output(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Every batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    parquet_files(path)
        .into_iter()
        .flat_map(|file| {
            ParquetRecordBatchReaderBuilder::try_new(File::open(file).unwrap())
                .unwrap()
                .build()
                .unwrap()
        })
        .map(|b| b.unwrap())
        .collect()
}

/// `path` itself, or the Parquet files of a folder (as `--scores-out` writes), by name.
pub fn parquet_files(path: &Path) -> Vec<PathBuf> {
    if !path.is_dir() {
        return vec![path.to_path_buf()];
    }
    files_ending(path, "parquet")
}

/// The JSON commits of a table's log, oldest first.
pub fn commits(table: &Path) -> Vec<PathBuf> {
    files_ending(&table.join("_delta_log"), "json")
}

/// The files of `dir` with extension `extension`, by name.
fn files_ending(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}

/// The data files of a table folder (not the log or side files).
pub fn data_files(table: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for partition in std::fs::read_dir(table).unwrap() {
        let partition = partition.unwrap().path();
        let name = partition.file_name().unwrap().to_string_lossy().to_string();
        if !partition.is_dir() || name.starts_with('_') {
            continue;
        }
        for f in std::fs::read_dir(&partition).unwrap() {
            files.push(f.unwrap().path());
        }
    }
    files.sort();
    files
}

/// One event's grouping fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Ev {
    pub time_us: i64,
    pub computer: String,
    pub account: String,
    pub account_type: String,
    pub process: String,
    pub command_line: String,
}

/// Every event of a generated table, read straight from its Parquet files.
pub fn read_table_events(table: &Path) -> Vec<Ev> {
    let mut out = Vec::new();
    for file in data_files(table) {
        for b in read_parquet(&file) {
            let t = b
                .column_by_name("TimeGenerated")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
            let (c, a, at, p, cl) = (
                s("Computer"),
                s("Account"),
                s("AccountType"),
                s("Process"),
                s("CommandLine"),
            );
            for i in 0..b.num_rows() {
                out.push(Ev {
                    time_us: t.value(i),
                    computer: c.value(i).into(),
                    account: a.value(i).into(),
                    account_type: at.value(i).into(),
                    process: p.value(i).into(),
                    command_line: cl.value(i).into(),
                });
            }
        }
    }
    out
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// Rows in the active files of a Delta table.
pub fn count_delta_rows(path: &Path) -> usize {
    read_delta(path).iter().map(|b| b.num_rows()).sum()
}

/// Every batch of the active files of a Delta table (without deletion vectors).
pub fn read_delta(path: &Path) -> Vec<RecordBatch> {
    runtime().block_on(async {
        let table = deltalake::open_table(url::Url::from_directory_path(path).unwrap())
            .await
            .unwrap();
        let files: Vec<String> = table.get_file_uris().unwrap().collect();
        files
            .iter()
            .flat_map(|f| read_parquet(Path::new(f.strip_prefix("file://").unwrap_or(f))))
            .collect()
    })
}

/// Rows of a Delta table as delta-rs's own DataFusion provider reads it: an independent
/// reader of deletion vectors.
pub fn count_live_rows(path: &Path) -> usize {
    runtime().block_on(async {
        let table = deltalake::open_table(url::Url::from_directory_path(path).unwrap())
            .await
            .unwrap();
        let ctx = datafusion::prelude::SessionContext::new();
        table.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("t", table.table_provider().await.unwrap())
            .unwrap();
        // The rows themselves, not a count statistics could answer.
        let batches = ctx
            .sql("SELECT \"TimeGenerated\" FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        batches.iter().map(|b| b.num_rows()).sum()
    })
}

/// Writes one batch as a new Delta table.
/// Copies the events of the table at `from` into a new, unpartitioned table at `to`, all
/// in one data file (whose statistics then span every day).
pub fn copy_into_one_file(from: &Path, to: &Path) {
    let batches: Vec<RecordBatch> = data_files(from)
        .iter()
        .flat_map(|f| read_parquet(f))
        .collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    write_table(to, batch);
    let files = std::fs::read_dir(to)
        .unwrap()
        .filter(|f| f.as_ref().unwrap().path().extension() == Some("parquet".as_ref()))
        .count();
    assert_eq!(files, 1, "one data file");
}

fn write_table(path: &Path, batch: RecordBatch) {
    runtime().block_on(async {
        let url = deltalake::ensure_table_uri(path.to_str().unwrap()).unwrap();
        let table = DeltaTableBuilder::from_url(url).unwrap().build().unwrap();
        table.write(vec![batch]).await.unwrap();
    });
}

fn event_columns(skip: &str, time_as_string: bool) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    if time_as_string {
        fields.push(Field::new("TimeGenerated", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(vec!["2026-11-27T10:00:00Z"; 3])));
    } else {
        fields.push(Field::new(
            "TimeGenerated",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ));
        columns.push(Arc::new(
            TimestampMicrosecondArray::from(vec![1_795_780_800_000_000i64; 3]).with_timezone("UTC"),
        ));
    }
    fields.push(Field::new("EventID", DataType::Int32, true));
    columns.push(Arc::new(Int32Array::from(vec![4688; 3])));
    for name in [
        "Computer",
        "Account",
        "AccountType",
        "Process",
        "CommandLine",
    ] {
        if name == skip {
            continue;
        }
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(vec!["x", "y", "z"])));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// A table lacking one required column.
pub fn write_table_without(path: &Path, column: &str) {
    write_table(path, event_columns(column, false));
}

/// A table whose `Computer` holds numbers.
pub fn write_table_with_numeric_computer(path: &Path) {
    let batch = event_columns("", false);
    let schema = batch.schema();
    let (index, _) = schema.column_with_name("Computer").unwrap();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[index] = Field::new("Computer", DataType::Int64, true);
    let mut columns = batch.columns().to_vec();
    columns[index] = Arc::new(arrow::array::Int64Array::from(vec![1, 2, 3]));
    write_table(
        path,
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap(),
    );
}

/// A table whose `TimeGenerated` is a string.
pub fn write_table_with_string_time(path: &Path) {
    write_table(path, event_columns("", true));
}

fn kernel_schema() -> StructType {
    procforest_core::schema::event_schema()
        .as_ref()
        .try_into_kernel()
        .unwrap()
}

/// A table with the event schema and no data file.
pub fn write_empty_table(path: &Path) {
    runtime().block_on(async {
        let url = deltalake::ensure_table_uri(path.to_str().unwrap()).unwrap();
        DeltaTableBuilder::from_url(url)
            .unwrap()
            .build()
            .unwrap()
            .create()
            .with_columns(kernel_schema().fields().cloned())
            .with_partition_columns(["EventDate"])
            .await
            .unwrap();
    });
}

/// A table whose only file carries a deletion vector.
pub fn write_table_with_deletion_vector(path: &Path) {
    runtime().block_on(async {
        let url = deltalake::ensure_table_uri(path.to_str().unwrap()).unwrap();
        let add = Add {
            path: "EventDate=2026-11-27/part-0.parquet".into(),
            partition_values: HashMap::from([("EventDate".into(), Some("2026-11-27".into()))]),
            size: 1234,
            modification_time: 0,
            data_change: true,
            stats: Some(r#"{"numRecords":10}"#.into()),
            deletion_vector: Some(DeletionVectorDescriptor {
                storage_type: StorageType::Inline,
                path_or_inline_dv: "AAAA".into(),
                offset: None,
                size_in_bytes: 0,
                cardinality: 3,
            }),
            ..Default::default()
        };
        DeltaTableBuilder::from_url(url)
            .unwrap()
            .build()
            .unwrap()
            .create()
            .with_columns(kernel_schema().fields().cloned())
            .with_partition_columns(["EventDate"])
            .with_configuration_property(TableProperty::EnableDeletionVectors, Some("true"))
            .with_actions([Action::Add(add)])
            .await
            .unwrap();
    });
}

/// A small unpartitioned table whose keys include nulls and empty strings: 40 events on
/// 2026-11-27, hosts `a`/`b`/null/"" and accounts with a null.
pub fn write_table_with_gaps(path: &Path) {
    let n = 40usize;
    let day = 1_795_737_600_000_000i64; // 2026-11-27T00:00:00Z
    let pick = |i: usize, options: &[Option<&'static str>]| options[i % options.len()];
    let computers: Vec<Option<&str>> = (0..n)
        .map(|i| pick(i, &[Some("a"), Some("b"), None, Some("")]))
        .collect();
    let accounts: Vec<Option<&str>> = (0..n)
        .map(|i| pick(i / 4, &[Some("D\\u1"), None, Some("D\\u2")]))
        .collect();
    let types: Vec<Option<&str>> = (0..n).map(|_| Some("User")).collect();
    let processes: Vec<Option<&str>> = (0..n)
        .map(|i| pick(i / 3, &[Some("cmd.exe"), Some(""), Some("x.exe")]))
        .collect();
    // Every fifth event without a command line, the others each its own.
    let commands: Vec<Option<String>> = (0..n)
        .map(|i| (i % 5 != 4).then(|| format!("cmd /c dir {i}")))
        .collect();
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "TimeGenerated",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("Computer", DataType::Utf8, true),
        Field::new("Account", DataType::Utf8, true),
        Field::new("AccountType", DataType::Utf8, true),
        Field::new("Process", DataType::Utf8, true),
        Field::new("CommandLine", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (0..n).map(|i| day + i as i64 * 60_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(StringArray::from(computers)),
            Arc::new(StringArray::from(accounts)),
            Arc::new(StringArray::from(types)),
            Arc::new(StringArray::from(processes)),
            Arc::new(StringArray::from(commands)),
        ],
    )
    .unwrap();
    write_table(path, batch);
}

/// Commits to the table at `path` a new version whose protocol and metadata are the
/// table's first ones as changed by `change` (generated tables declare both in version 0).
pub fn commit_protocol_and_metadata(
    path: &Path,
    change: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value),
) {
    let log = path.join("_delta_log");
    let first = std::fs::read_to_string(log.join("00000000000000000000.json")).unwrap();
    let action = |key: &str| -> serde_json::Value {
        first
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find_map(|a| a.get(key).cloned())
            .unwrap()
    };
    let (mut protocol, mut metadata) = (action("protocol"), action("metaData"));
    change(&mut protocol, &mut metadata);
    let versions = std::fs::read_dir(&log)
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            let name = name.to_string_lossy();
            name.ends_with(".json") && !name.contains("checkpoint")
        })
        .count();
    let commit = [
        serde_json::json!({"protocol": protocol}),
        serde_json::json!({"metaData": metadata}),
    ]
    .iter()
    .map(|a| format!("{a}\n"))
    .collect::<String>();
    std::fs::write(log.join(format!("{versions:020}.json")), commit).unwrap();
}

/// Sets field `name`'s type and metadata in a `metaData` action's schema.
pub fn set_field(
    metadata: &mut serde_json::Value,
    name: &str,
    delta_type: &str,
    meta: serde_json::Value,
) {
    let mut schema: serde_json::Value =
        serde_json::from_str(metadata["schemaString"].as_str().unwrap()).unwrap();
    let field = schema["fields"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|f| f["name"] == name)
        .unwrap();
    field["type"] = delta_type.into();
    field["metadata"] = meta;
    metadata["schemaString"] = schema.to_string().into();
}

/// Copies a folder tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The Parquet files under a table's folder, outside the log and side folders.
pub fn count_files(table: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                if name.starts_with('_') {
                    0
                } else if p.is_dir() {
                    walk(&p)
                } else {
                    usize::from(name.ends_with(".parquet"))
                }
            })
            .sum()
    }
    walk(table)
}

/// Copies the one-commit table at `from` to `to` with `TimeGenerated` rewritten as the
/// Delta type's own microseconds (from Spark's INT96, read as nanoseconds), every other
/// column and the log as they are (the adds' sizes updated).
pub fn copy_with_microsecond_time(from: &Path, to: &Path) {
    let commit = "_delta_log/00000000000000000000.json";
    let mut lines = Vec::new();
    for line in std::fs::read_to_string(from.join(commit)).unwrap().lines() {
        let mut action: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(path) = action["add"]["path"].as_str().map(String::from) {
            let written = to.join(&path);
            std::fs::create_dir_all(written.parent().unwrap()).unwrap();
            let file = File::create(&written).unwrap();
            let batches = read_parquet(&from.join(&path));
            let schema = with_microsecond_time(batches[0].schema().as_ref());
            let mut writer =
                parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
            for batch in batches {
                let columns: Vec<ArrayRef> = schema
                    .fields()
                    .iter()
                    .zip(batch.columns())
                    .map(|(f, c)| arrow::compute::cast(c, f.data_type()).unwrap())
                    .collect();
                writer
                    .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
                    .unwrap();
            }
            writer.close().unwrap();
            action["add"]["size"] = std::fs::metadata(&written).unwrap().len().into();
        }
        lines.push(action.to_string());
    }
    std::fs::create_dir_all(to.join("_delta_log")).unwrap();
    std::fs::write(to.join(commit), lines.join("\n") + "\n").unwrap();
}

fn with_microsecond_time(schema: &Schema) -> Arc<Schema> {
    let micros = DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()));
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "TimeGenerated" => Field::new(f.name(), micros.clone(), f.is_nullable()),
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(Schema::new(fields))
}
