//! The Delta source: opens the table with delta-rs, refuses what a plain Parquet read would
//! get wrong, checks the event columns, and resolves the snapshot into the files to read
//! for a time window (pruned by partition and by `TimeGenerated` statistics).

use std::collections::HashMap;

use arrow::{
    array::{Array, AsArray},
    datatypes::{DataType, Date32Type, Int64Type, SchemaRef, TimeUnit},
};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use procforest_core::{
    scan::{ResolvedFile, ResolvedTable},
    schema::{EVENT_DATE, TIME_GENERATED, check_schema},
};

use crate::{
    error::{BoxError, Context, PipelineError, Result},
    setting::Setting,
};

/// Which snapshot to read.
#[derive(Debug, Clone, Default)]
pub enum SnapshotChoice {
    /// The newest version.
    #[default]
    Newest,
    /// A given version.
    Version(u64),
    /// The version current at a time.
    Timestamp(DateTime<Utc>),
}

/// Reader features a plain Parquet read handles (the rest are refused).
const SAFE_READER_FEATURES: &[&str] = &["timestampNtz", "v2Checkpoint", "vacuumProtocolCheck"];

/// An opened and checked table.
pub struct EventTable {
    /// The delta-rs table.
    pub table: DeltaTable,
    /// Its location as given.
    pub location: String,
    /// Its URL.
    pub url: url::Url,
    /// The snapshot version.
    pub version: i64,
    /// The table's Arrow schema (Delta order).
    pub schema: SchemaRef,
    /// Partition columns.
    pub partition_columns: Vec<String>,
}

/// A storage failure: refused credentials (the object store's own `Unauthenticated` or
/// `PermissionDenied`, anywhere in the error's chain, the Delta kernel's included) are a configuration problem (exit
/// 1), anything else a runtime failure.
pub fn storage_error(what: String, error: DeltaTableError) -> PipelineError {
    let source: BoxError = Box::new(error);
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    let mut refused = false;
    while let Some(e) = cause {
        let store_error = match e.downcast_ref::<delta_kernel::Error>() {
            // The kernel keeps the object store's error without exposing it as a source.
            Some(delta_kernel::Error::ObjectStore(inner)) => Some(inner),
            _ => e.downcast_ref::<object_store::Error>(),
        };
        refused |= matches!(
            store_error,
            Some(object_store::Error::Unauthenticated { .. })
                | Some(object_store::Error::PermissionDenied { .. })
        );
        cause = e.source();
    }
    if refused {
        return PipelineError::BadInput {
            setting: None,
            what: format!(
                "{what}: the storage service refused the credentials (check the AZURE_* \
                 settings or the storage options)"
            ),
            source: Some(source),
        };
    }
    PipelineError::Runtime {
        what,
        source: Some(source),
    }
}

/// Parses a table location (path or URL) for reading; a missing local path is an error.
pub fn table_url(location: &str) -> Result<url::Url> {
    let mut url = deltalake::table::builder::parse_table_uri(location).map_err(|e| match e {
        DeltaTableError::InvalidTableLocation(_) => {
            PipelineError::bad_setting(Setting::Table, format!("{location}: no such path"))
        }
        other => PipelineError::bad_setting(Setting::Table, format!("{location}: {other}")),
    })?;
    // Data file paths in the log are relative to the table's root folder.
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

/// Opens the table at the chosen snapshot and checks it can be read as plain Parquet with
/// the event columns.
pub async fn open(
    location: &str,
    choice: &SnapshotChoice,
    storage_options: HashMap<String, String>,
) -> Result<EventTable> {
    let url = table_url(location)?;
    let mut builder = DeltaTableBuilder::from_url(url.clone())
        .bad_setting(Setting::Table, location)?
        .with_storage_options(storage_options);
    builder = match choice {
        SnapshotChoice::Newest => builder,
        SnapshotChoice::Version(v) => builder.with_version(*v),
        SnapshotChoice::Timestamp(t) => builder.with_timestamp(*t),
    };
    let table = builder.load().await.map_err(|e| match e {
        DeltaTableError::NotATable(_) => PipelineError::bad_setting(
            Setting::Table,
            format!("{location}: not a Delta table (no transaction log in _delta_log/)"),
        ),
        DeltaTableError::InvalidTableLocation(m) => {
            PipelineError::bad_setting(Setting::Table, format!("{location}: {m}"))
        }
        DeltaTableError::KernelError(k) if matches!(choice, SnapshotChoice::Version(_)) => {
            PipelineError::bad_setting(Setting::Version, k.to_string())
        }
        other => storage_error(format!("opening table {location}"), other),
    })?;
    let state = table
        .snapshot()
        .runtime(format!("reading the snapshot of {location}"))?;
    let version = state.version() as i64;
    let protocol = state.protocol();
    let reader_features: Vec<String> = protocol
        .reader_features()
        .map(|fs| fs.iter().map(|f| f.to_string()).collect())
        .unwrap_or_default();
    let config = state.metadata().configuration();
    let column_mapping = config
        .get("delta.columnMapping.mode")
        .map(String::as_str)
        .unwrap_or("none");
    let refuse = |what: String| {
        Err(PipelineError::bad_setting(
            Setting::Table,
            format!(
                "{location} (version {version}): {what}; procforest reads data files as \
             plain Parquet and would get such a table wrong"
            ),
        ))
    };
    if !column_mapping.eq_ignore_ascii_case("none") {
        return refuse(format!("column mapping mode `{column_mapping}` is in use"));
    }
    for feature in &reader_features {
        match feature.as_str() {
            "deletionVectors" => {} // refused below only if a file has one
            "columnMapping" => {}   // mode checked above
            "typeWidening" | "typeWidening-preview" => {
                return refuse("it uses type widening".into());
            }
            f if SAFE_READER_FEATURES.contains(&f) => {}
            other => return refuse(format!("it uses the reader feature `{other}`")),
        }
    }
    let enabled = |key: &str| {
        config
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    if enabled("delta.enableRowTracking") {
        return refuse("row tracking is enabled".into());
    }
    if enabled("delta.enableTypeWidening") {
        return refuse("type widening is enabled".into());
    }
    let schema = state.snapshot().arrow_schema();
    check_schema(&schema)
        .map_err(|e| PipelineError::bad_setting(Setting::Table, format!("{location}: {e}")))?;
    let partition_columns = state.metadata().partition_columns().to_vec();
    Ok(EventTable {
        location: location.to_string(),
        url,
        version,
        schema,
        partition_columns,
        table,
    })
}

/// The time range to read: `TimeGenerated` in `(start, end]`; `start` `None` = no bound.
#[derive(Debug, Clone, Copy)]
pub struct TimeRange {
    /// Exclusive lower bound.
    pub start: Option<DateTime<Utc>>,
    /// Inclusive upper bound.
    pub end: DateTime<Utc>,
}

/// How the file list was chosen.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Pruning {
    /// Active files in the snapshot.
    pub files_total: usize,
    /// Files skipped by their `EventDate` partition.
    pub pruned_by_partition: usize,
    /// Files skipped by their `TimeGenerated` statistics.
    pub pruned_by_statistics: usize,
    /// Files to read.
    pub files_scanned: usize,
    /// Bytes to read.
    pub bytes_scanned: u64,
    /// Rows in the files to read (from the log's statistics, where present).
    pub rows_in_scanned_files: u64,
}

/// Resolves the snapshot into the files that may hold events in `range`.
pub fn resolve(table: &EventTable, range: TimeRange) -> Result<(ResolvedTable, Pruning)> {
    let state = table.table.snapshot().runtime("reading the snapshot")?;
    let actions = state
        .add_actions_table(true)
        .runtime("listing the snapshot's files")?;
    let n = actions.num_rows();
    let mut pruning = Pruning {
        files_total: n,
        ..Default::default()
    };
    if n == 0 {
        return Err(PipelineError::bad_setting(
            Setting::Table,
            format!(
                "{}: the table is empty (version {} has no data files)",
                table.location, table.version
            ),
        ));
    }
    let col = |name: &str| actions.column_by_name(name);
    let path = col("path")
        .and_then(|c| c.as_string_opt::<i32>())
        .ok_or_else(|| PipelineError::runtime("snapshot files have no path"))?;
    let size = col("size_bytes")
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| PipelineError::runtime("snapshot files have no size"))?;
    let records = col("num_records").and_then(|c| c.as_primitive_opt::<Int64Type>());
    let time_nulls = col(&format!("null_count.{TIME_GENERATED}"))
        .and_then(|c| c.as_primitive_opt::<Int64Type>());
    let dv = col("deletion_vector.cardinality");
    let time_min = col(&format!("min.{TIME_GENERATED}"));
    let time_max = col(&format!("max.{TIME_GENERATED}"));
    let event_date = col(&format!("partition.{EVENT_DATE}"))
        .filter(|c| c.data_type() == &DataType::Date32)
        .and_then(|c| c.as_primitive_opt::<Date32Type>());
    let partitions: Vec<_> = table
        .partition_columns
        .iter()
        .map(|p| col(&format!("partition.{p}")).cloned())
        .collect();
    let micros = |c: Option<&std::sync::Arc<dyn Array>>, i: usize| -> Option<i64> {
        let c = c?;
        if c.is_null(i) {
            return None;
        }
        match c.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => Some(
                c.as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(i),
            ),
            DataType::Timestamp(TimeUnit::Millisecond, _) => Some(
                c.as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .value(i)
                    * 1000,
            ),
            _ => None,
        }
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let start_us = range.start.map(|s| s.timestamp_micros());
    let end_us = range.end.timestamp_micros();
    let mut files = Vec::new();
    for i in 0..n {
        let file_path = path.value(i);
        if dv.is_some_and(|c| c.is_valid(i)) {
            return Err(PipelineError::bad_setting(
                Setting::Table,
                format!(
                    "{} (version {}): file {file_path} has a deletion vector; procforest \
                 reads data files as plain Parquet and would count deleted rows",
                    table.location, table.version
                ),
            ));
        }
        // The partition is the UTC date of TimeGenerated; a day of slack either side keeps
        // tables partitioned in another time zone correct.
        if let Some(dates) = event_date
            && dates.is_valid(i)
        {
            let day = epoch + chrono::Duration::days(dates.value(i) as i64);
            let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let too_late = day_start - chrono::Duration::days(1) > range.end;
            let too_early = range
                .start
                .is_some_and(|s| day_start + chrono::Duration::days(2) <= s);
            if too_late || too_early {
                pruning.pruned_by_partition += 1;
                continue;
            }
        }
        // Statistics are truncated to milliseconds: the true maximum is below max + 1 ms.
        let min = micros(time_min, i);
        let max = micros(time_max, i).map(|m| m + 1000);
        let after_end = min.is_some_and(|m| m > end_us);
        let before_start = matches!((start_us, max), (Some(s), Some(m)) if m <= s);
        if after_end || before_start {
            pruning.pruned_by_statistics += 1;
            continue;
        }
        let url = table
            .url
            .join(file_path)
            .runtime(format!("resolving file {file_path}"))?;
        let partition_values = partitions
            .iter()
            .map(|p| {
                p.as_ref().and_then(|c| {
                    if c.is_null(i) {
                        None
                    } else {
                        arrow::util::display::array_value_to_string(c, i).ok()
                    }
                })
            })
            .collect();
        let rows = records.filter(|r| r.is_valid(i)).map(|r| r.value(i) as u64);
        pruning.bytes_scanned += size.value(i) as u64;
        pruning.rows_in_scanned_files += rows.unwrap_or(0);
        files.push(ResolvedFile {
            url: url.to_string(),
            size: size.value(i) as u64,
            partition_values,
            num_records: rows,
            // The true maximum is below the (millisecond) statistic + 1 ms.
            time_bounds: min.zip(max.map(|m| m - 1)),
            time_nulls: time_nulls
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i) as u64),
        });
    }
    files.sort_by(|a, b| a.url.cmp(&b.url));
    pruning.files_scanned = files.len();
    Ok((
        ResolvedTable {
            table_url: table.url.to_string(),
            version: table.version,
            partition_columns: table.partition_columns.clone(),
            files,
        },
        pruning,
    ))
}

/// The end (last microsecond) of the UTC day holding the table's newest event, from the
/// files' `TimeGenerated` statistics.
pub fn end_of_newest_day(table: &EventTable) -> Result<DateTime<Utc>> {
    let state = table.table.snapshot().runtime("reading the snapshot")?;
    let actions = state
        .add_actions_table(true)
        .runtime("listing the snapshot's files")?;
    let newest = actions
        .column_by_name(&format!("max.{TIME_GENERATED}"))
        .and_then(|c| arrow::compute::cast(c, &procforest_core::schema::time_type()).ok())
        .and_then(|c| {
            arrow::compute::max(c.as_primitive::<arrow::datatypes::TimestampMicrosecondType>())
        })
        .ok_or_else(|| {
            PipelineError::bad_setting(
                Setting::AsOf,
                format!(
                    "is needed: table {} has no TimeGenerated statistics to find its newest day",
                    table.location
                ),
            )
        })?;
    let day = DateTime::from_timestamp_micros(newest)
        .ok_or_else(|| PipelineError::runtime("newest event time out of range"))?
        .date_naive();
    Ok((day + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        - chrono::Duration::microseconds(1))
}

/// Resolves a table location to write, given as a path or URL; local folders are created.
pub fn table_url_for_write(location: &str) -> Result<url::Url> {
    deltalake::ensure_table_uri(location).bad_input(format!("table location {location}"))
}
