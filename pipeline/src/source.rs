//! The Delta source: opens the table with delta-rs, refuses what a plain Parquet read would
//! get wrong, checks the event columns, and resolves the snapshot into the files to read
//! for a time window (pruned by partition and by `TimeGenerated` statistics).

use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::{DataType, SchemaRef};
use chrono::{DateTime, NaiveDate, Utc};
use delta_kernel::expressions::Scalar;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, kernel::DeletionVectorDescriptor};
use procforest_core::{
    scan::{ResolvedFile, ResolvedTable, physical_name},
    schema::{EVENT_DATE, EVIDENCE_COLUMNS, REQUIRED_COLUMNS, TIME_GENERATED, check_schema},
};

use crate::{
    error::{BoxError, Context, PipelineError, Result},
    setting::Setting,
};

mod deletion_vectors;
#[cfg(test)]
mod tests;

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
    /// Under column mapping, the data files' name of each column the files name
    /// differently (logical → physical).
    pub physical_names: BTreeMap<String, String>,
}

impl EventTable {
    /// The name the data files and the log's file entries give column `logical`.
    fn physical_name<'a>(&'a self, logical: &'a str) -> &'a str {
        physical_name(&self.physical_names, logical)
    }
}

/// The field metadata key of a column's physical name.
const PHYSICAL_NAME: &str = "delta.columnMapping.physicalName";
/// The field metadata key of a column's type widenings.
const TYPE_CHANGES: &str = "delta.typeChanges";

/// Whether the Azure store failed to get a token (Entra ID or the managed identity endpoint
/// refused or could not be reached). `object_store` keeps its credential errors private:
/// they are recognised by their message.
fn is_azure_token_failure(error: &object_store::Error) -> bool {
    let object_store::Error::Generic { store, source } = error else {
        return false;
    };
    let message = source.to_string();
    *store == "MicrosoftAzure"
        && [
            "Error performing token request",
            "Error getting token response body",
            "Error reading federated token file",
        ]
        .iter()
        .any(|m| message.starts_with(m))
}

/// Which credentials the environment sets (never their values), for a failed token.
fn azure_credentials_hint() -> String {
    const CREDENTIALS: &[&str] = &[
        "AZURE_STORAGE_ACCOUNT_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
        "AZURE_CLIENT_SECRET",
        "AZURE_FEDERATED_TOKEN_FILE",
        "AZURE_STORAGE_USE_EMULATOR",
    ];
    let set: Vec<&str> = CREDENTIALS
        .iter()
        .copied()
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    if set.is_empty() {
        format!(
            "no credential is set ({}), so the managed identity endpoint was asked, and it \
             failed; set one of them, or give the machine or pod an identity",
            CREDENTIALS.join(", ")
        )
    } else {
        format!(
            "check {} and AZURE_CLIENT_ID / AZURE_TENANT_ID",
            set.join(", ")
        )
    }
}

/// A storage failure: refused credentials (the object store's own `Unauthenticated` or
/// `PermissionDenied`, anywhere in the error's chain, the Delta kernel's included) and a
/// token that could not be had are a configuration problem (exit 1), anything else a
/// runtime failure.
pub fn storage_error(what: String, error: DeltaTableError) -> PipelineError {
    let source: BoxError = Box::new(error);
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    let mut refused = false;
    let mut no_token = false;
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
        no_token |= store_error.is_some_and(is_azure_token_failure);
        cause = e.source();
    }
    if no_token {
        return PipelineError::BadInput {
            setting: None,
            what: format!(
                "{what}: no Azure storage token could be had ({})",
                azure_credentials_hint()
            ),
            source: Some(source),
        };
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

/// Whether a Delta commit failed because another writer committed first (the table
/// changed since this writer read it), as opposed to any other failure.
pub fn is_commit_conflict(error: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError as T;
    matches!(
        error,
        DeltaTableError::Transaction {
            source: T::CommitConflict(_) | T::VersionAlreadyExists(_) | T::MaxCommitAttempts(_),
        } | DeltaTableError::VersionAlreadyExists(_)
    )
}

/// Parses a table location (path or URL) for reading; a missing local path is an error.
pub fn table_url(location: &str) -> Result<url::Url> {
    if let Some((scheme, _)) = location.split_once("://")
        && !["file", "http", "https"].contains(&scheme)
        && !procforest_core::object_stores::AZURE_SCHEMES.contains(&scheme)
    {
        return Err(PipelineError::bad_setting(
            Setting::Table,
            format!(
                "{location}: procforest reads local paths, file:// and Azure storage ({}), \
                 not {scheme}://",
                procforest_core::object_stores::AZURE_SCHEMES
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
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
    let table = open_any(location, choice, storage_options).await?;
    check_schema(&table.schema)
        .map_err(|e| PipelineError::bad_setting(Setting::Table, format!("{location}: {e}")))?;
    Ok(table)
}

/// The kernel's error without its backtrace wrapper (present when backtraces are on).
fn kernel_root(error: &delta_kernel::Error) -> &delta_kernel::Error {
    match error {
        delta_kernel::Error::Backtraced { source, .. } => kernel_root(source),
        other => other,
    }
}

/// Whether the kernel failed to parse a log file: its JSON or a checkpoint's Parquet.
fn is_damaged_log(error: &delta_kernel::Error) -> bool {
    matches!(
        kernel_root(error),
        delta_kernel::Error::Arrow(arrow::error::ArrowError::JsonError(_))
            | delta_kernel::Error::MalformedJson(_)
            | delta_kernel::Error::Parquet(_)
    )
}

/// The newest version of the table at `url`, if it can be read.
async fn newest_version(url: &url::Url, storage_options: HashMap<String, String>) -> Option<u64> {
    let table = DeltaTableBuilder::from_url(url.clone())
        .ok()?
        .with_storage_options(storage_options)
        .load()
        .await
        .ok()?;
    table.version()
}

/// Opens the table at the chosen snapshot and checks it can be read as plain Parquet,
/// whatever its columns.
async fn open_any(
    location: &str,
    choice: &SnapshotChoice,
    storage_options: HashMap<String, String>,
) -> Result<EventTable> {
    let url = table_url(location)?;
    let mut builder = DeltaTableBuilder::from_url(url.clone())
        .bad_setting(Setting::Table, location)?
        .with_storage_options(storage_options.clone());
    builder = match choice {
        SnapshotChoice::Newest => builder,
        SnapshotChoice::Version(v) => builder.with_version(*v),
        SnapshotChoice::Timestamp(t) => builder.with_timestamp(*t),
    };
    let loaded = builder.load().await;
    if let (Err(DeltaTableError::KernelError(_)), SnapshotChoice::Version(v)) = (&loaded, choice)
        && let Some(newest) = newest_version(&url, storage_options).await
        && *v > newest
    {
        return Err(PipelineError::bad_setting(
            Setting::Version,
            format!("{v}: the newest version of {location} is {newest}"),
        ));
    }
    let table = loaded.map_err(|e| match e {
        DeltaTableError::NotATable(_) => PipelineError::bad_setting(
            Setting::Table,
            format!("{location}: not a Delta table (no transaction log in _delta_log/)"),
        ),
        DeltaTableError::InvalidTableLocation(m) => {
            PipelineError::bad_setting(Setting::Table, format!("{location}: {m}"))
        }
        DeltaTableError::KernelError(delta_kernel::Error::Unsupported(what)) => {
            PipelineError::bad_setting(
                Setting::Table,
                format!("{location}: the Delta kernel cannot read it: {what}"),
            )
        }
        DeltaTableError::KernelError(k) if is_damaged_log(&k) => PipelineError::bad_setting(
            Setting::Table,
            format!(
                "{location}: a commit or checkpoint in its _delta_log/ cannot be read (damaged?): {}",
                kernel_root(&k)
            ),
        ),
        DeltaTableError::KernelError(k) if matches!(choice, SnapshotChoice::Version(_)) => {
            PipelineError::bad_setting(Setting::Version, k.to_string())
        }
        other => storage_error(format!("opening table {location}"), other),
    })?;
    let state = table
        .snapshot()
        .runtime(format!("reading the snapshot of {location}"))?;
    let version = state.version() as i64;
    if let SnapshotChoice::Timestamp(t) = choice
        && let Some(committed) = state.version_timestamp(state.version())
        && t.timestamp_millis() < committed
    {
        let committed = chrono::DateTime::from_timestamp_millis(committed)
            .map_or(committed.to_string(), |c| c.to_rfc3339());
        return Err(PipelineError::bad_setting(
            Setting::Timestamp,
            format!(
                "{}: before the first version of {location} (version {version}, committed at \
                 {committed})",
                t.to_rfc3339()
            ),
        ));
    }
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
    if !["none", "name", "id"]
        .iter()
        .any(|m| column_mapping.eq_ignore_ascii_case(m))
    {
        return refuse(format!(
            "its column mapping mode `{column_mapping}` is unknown"
        ));
    }
    for feature in &reader_features {
        match feature.as_str() {
            "deletionVectors" => {} // deleted rows are resolved and skipped
            "columnMapping" => {}   // mode checked above
            "typeWidening" | "typeWidening-preview" => {} // widened columns checked below
            f if SAFE_READER_FEATURES.contains(&f) => {}
            other => return refuse(format!("it uses the reader feature `{other}`")),
        }
    }
    // Row tracking (`delta.enableRowTracking`, which Databricks can turn on for every new
    // table) is a writer feature: row ids live in the log and in extra columns no read
    // here asks for, so a table with it reads as any other.
    let schema = state.snapshot().arrow_schema();
    // Older files keep a widened column's narrower type: harmless where procforest never
    // reads the column, refused where it does.
    let read = REQUIRED_COLUMNS
        .iter()
        .chain(EVIDENCE_COLUMNS)
        .map(|(name, _)| *name)
        .chain([EVENT_DATE]);
    for name in read {
        if let Ok(field) = schema.field_with_name(name)
            && let Some(changes) = field.metadata().get(TYPE_CHANGES)
        {
            return refuse(format!(
                "the type of column {name}, which procforest reads, was widened ({changes})"
            ));
        }
    }
    // Under column mapping (`name` or `id`: Spark names the files' columns by their
    // physical names in both), the files are read by physical name.
    let physical_names = match column_mapping.eq_ignore_ascii_case("none") {
        true => BTreeMap::new(),
        false => schema
            .fields()
            .iter()
            .filter_map(|f| {
                let physical = f.metadata().get(PHYSICAL_NAME)?;
                (physical != f.name()).then(|| (f.name().clone(), physical.clone()))
            })
            .collect(),
    };
    let partition_columns = state.metadata().partition_columns().to_vec();
    Ok(EventTable {
        location: location.to_string(),
        url,
        version,
        schema,
        partition_columns,
        physical_names,
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
    /// Files skipped by their `EventDate` partition (files without `TimeGenerated`
    /// statistics: where a file has them, they decide).
    pub pruned_by_partition: usize,
    /// Files skipped by their `TimeGenerated` statistics.
    pub pruned_by_statistics: usize,
    /// Files to read.
    pub files_scanned: usize,
    /// Bytes to read.
    pub bytes_scanned: u64,
    /// Rows in the files to read (from the log's statistics, where present), less the
    /// rows deletion vectors remove.
    pub rows_in_scanned_files: u64,
    /// Rows of the files to read that deletion vectors remove.
    pub rows_deleted: u64,
}

/// What the log says of one active file.
struct FileFacts {
    /// Relative to the table root (or absolute), URL-decoded.
    path: String,
    size: u64,
    /// Raw partition values by column.
    partition_values: HashMap<String, Option<String>>,
    /// Rows in the file before any deletion vector.
    num_records: Option<u64>,
    /// Inclusive bounds of its non-null `TimeGenerated` values, microseconds.
    time_bounds: (Option<i64>, Option<i64>),
    time_nulls: Option<u64>,
    deletion_vector: Option<DeletionVectorDescriptor>,
}

/// The active files of the snapshot, from the log replay (the add-actions table of
/// delta-rs 1.1 fails on files with deletion vectors).
fn file_facts(table: &EventTable) -> Result<Vec<FileFacts>> {
    let time = table.physical_name(TIME_GENERATED);
    let state = table.table.snapshot().runtime("reading the snapshot")?;
    let files = state
        .snapshot()
        .try_log_data()
        .runtime("listing the snapshot's files")?;
    Ok(files
        .iter()
        .map(|file| {
            let (min, max, nulls) = (file.min_values(), file.max_values(), file.null_counts());
            FileFacts {
                path: file.path().into_owned(),
                size: file.size().max(0) as u64,
                partition_values: file.partition_values_map(),
                num_records: file.num_records().map(|n| n as u64),
                time_bounds: (
                    stat_micros(min.as_ref(), time),
                    stat_micros(max.as_ref(), time).map(inclusive_max),
                ),
                time_nulls: match time_stat(nulls.as_ref(), time) {
                    Some(Scalar::Long(n)) => u64::try_from(*n).ok(),
                    _ => None,
                },
                deletion_vector: file.deletion_vector_descriptor(),
            }
        })
        .collect())
}

/// `TimeGenerated`'s entry in a statistics struct, by the files' name `time` (or, should
/// the statistics use the table's name, by that).
fn time_stat<'a>(stats: Option<&'a Scalar>, time: &str) -> Option<&'a Scalar> {
    let Some(Scalar::Struct(data)) = stats else {
        return None;
    };
    let field = |name: &str| {
        data.fields()
            .iter()
            .zip(data.values())
            .find(|(field, _)| field.name() == name)
            .map(|(_, value)| value)
    };
    field(time).or_else(|| field(TIME_GENERATED))
}

/// `TimeGenerated` of a min or max statistics struct, in microseconds (UTC, or read as
/// UTC when the column has no time zone).
fn stat_micros(stats: Option<&Scalar>, time: &str) -> Option<i64> {
    match time_stat(stats, time)? {
        Scalar::Timestamp(v) | Scalar::TimestampNtz(v) => Some(*v),
        _ => None,
    }
}

/// The inclusive upper bound of a file's times from delta-rs's maximum statistic.
/// Writers truncate statistics to milliseconds; delta-rs rounds a maximum that falls on a
/// whole millisecond up to the next one (it may have been truncated), and keeps any other
/// as exact. So a whole-millisecond value bounds the times from above exclusively.
fn inclusive_max(ceiled: i64) -> i64 {
    if ceiled % 1000 == 0 {
        ceiled - 1
    } else {
        ceiled
    }
}

/// Resolves the snapshot into the files that may hold events in `range`, with the rows
/// their deletion vectors remove.
pub async fn resolve(table: &EventTable, range: TimeRange) -> Result<(ResolvedTable, Pruning)> {
    let facts = file_facts(table)?;
    let mut pruning = Pruning {
        files_total: facts.len(),
        ..Default::default()
    };
    if facts.is_empty() {
        return Err(PipelineError::bad_setting(
            Setting::Table,
            format!(
                "{}: the table is empty (version {} has no data files)",
                table.location, table.version
            ),
        ));
    }
    let dated_partition = table.partition_columns.iter().any(|p| p == EVENT_DATE)
        && table
            .schema
            .field_with_name(EVENT_DATE)
            .is_ok_and(|f| f.data_type() == &DataType::Date32);
    let start_us = range.start.map(|s| s.timestamp_micros());
    let end_us = range.end.timestamp_micros();
    let mut files = Vec::new();
    let mut deletion_vectors = Vec::new();
    let mut disagreeing = Vec::new();
    for fact in facts {
        // The partition is the UTC date of TimeGenerated; a day of slack either side keeps
        // tables partitioned in another time zone correct. Statistics, where a file has
        // them, decide instead: a partition value that disagrees with the rows would
        // otherwise drop a file the window needs, without a word.
        let day = dated_partition
            .then(|| {
                let name = table.physical_name(EVENT_DATE);
                fact.partition_values.get(name).cloned().flatten()
            })
            .flatten()
            .and_then(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").ok());
        let (min, max) = fact.time_bounds;
        if let Some(day) = day {
            let day_start = day.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
            let (slack_start, slack_end) = (
                (day_start - chrono::Duration::days(1)).timestamp_micros(),
                (day_start + chrono::Duration::days(2)).timestamp_micros(),
            );
            if min.is_some_and(|m| m < slack_start) || max.is_some_and(|m| m >= slack_end) {
                disagreeing.push(fact.path.clone());
            }
            let too_late = slack_start > end_us;
            let too_early = start_us.is_some_and(|s| slack_end <= s);
            if (too_late || too_early) && min.is_none() && max.is_none() {
                pruning.pruned_by_partition += 1;
                continue;
            }
        }
        let after_end = min.is_some_and(|m| m > end_us);
        let before_start = matches!((start_us, max), (Some(s), Some(m)) if m <= s);
        if after_end || before_start {
            pruning.pruned_by_statistics += 1;
            continue;
        }
        let url = file_url(&table.url, &fact.path)?;
        let partition_values = table
            .partition_columns
            .iter()
            .map(|p| {
                let name = table.physical_name(p);
                fact.partition_values.get(name).cloned().flatten()
            })
            .collect();
        if let Some(dv) = fact.deletion_vector {
            deletion_vectors.push(deletion_vectors::Wanted {
                file: files.len(),
                path: fact.path.clone(),
                size: fact.size,
                num_records: fact.num_records,
                descriptor: dv,
            });
        }
        pruning.bytes_scanned += fact.size;
        files.push(ResolvedFile {
            url: url.to_string(),
            size: fact.size,
            partition_values,
            num_records: fact.num_records,
            time_bounds: min.zip(max),
            time_nulls: fact.time_nulls,
            deleted_rows: None,
        });
    }
    if let Some(first) = disagreeing.first() {
        tracing::warn!(
            "{}: {} files hold TimeGenerated values outside their {EVENT_DATE} partition's \
             day (first: {first}); their statistics decide which are read",
            table.location,
            disagreeing.len()
        );
    }
    for (file, deleted) in deletion_vectors::read(table, deletion_vectors).await? {
        files[file].deleted_rows = Some(deleted);
    }
    pruning.rows_in_scanned_files = files.iter().filter_map(ResolvedFile::live_rows).sum();
    pruning.rows_deleted = files
        .iter()
        .filter_map(|f| f.deleted_rows.as_ref().map(|d| d.count()))
        .sum();
    files.sort_by(|a, b| a.url.cmp(&b.url));
    pruning.files_scanned = files.len();
    Ok((
        ResolvedTable {
            table_url: table.url.to_string(),
            version: table.version,
            partition_columns: table.partition_columns.clone(),
            files,
            physical_names: table.physical_names.clone(),
        },
        pruning,
    ))
}

/// The URL of a data file the log names by `path` (URL-decoded): absolute as it is, else
/// under the table's root, each segment percent-encoded again (a file name may hold `%`,
/// spaces or `#`).
pub(crate) fn file_url(table: &url::Url, path: &str) -> Result<url::Url> {
    // A one-letter scheme is a Windows drive, not a URL.
    if let Ok(absolute) = url::Url::parse(path)
        && absolute.scheme().len() > 1
    {
        return Ok(absolute);
    }
    let mut url = table.clone();
    url.path_segments_mut()
        .map_err(|_| PipelineError::runtime(format!("table URL {table} has no path")))?
        .pop_if_empty()
        .extend(path.split('/'));
    Ok(url)
}

/// The end (last microsecond) of the UTC day holding the table's newest event, from the
/// files' `TimeGenerated` statistics.
pub fn end_of_newest_day(table: &EventTable) -> Result<DateTime<Utc>> {
    let newest = file_facts(table)?
        .iter()
        .filter_map(|f| f.time_bounds.1)
        .max()
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
