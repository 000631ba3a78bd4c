//! The summaries table (`--summaries`): the summary rows (interval, keys, `count`) of
//! earlier runs, kept in a Delta table, so that a nightly run counts from the events only
//! the intervals whose source files changed and reads the others' rows.
//!
//! Which stored intervals are still right is decided per interval by a fingerprint: a
//! SHA-256 of the source files that may hold its events (URL, size, deleted rows) and of
//! the part of the interval the run's window covers ([`fingerprints`]). A new day, late
//! events for an old day (a new file there), a compaction (its files rewritten), a delete
//! (a deletion vector, or a file removed) or a dropped day change the fingerprints of
//! exactly the intervals those files' `TimeGenerated` statistics span; those intervals are
//! counted again, and the report's intervals always are. Reading the source's log since a
//! version would find the same files; comparing fingerprints also catches a table rewritten
//! or restored behind the store's back.
//!
//! The rows and their fingerprints are trusted together: one commit replaces the counted
//! intervals' partitions ([`INTERVAL_ID`]) and records every interval's fingerprint in its
//! `commitInfo` ([`STATE_KEY`]). A run whose commit loses a race with another run's
//! leaves the table as that run wrote it (its own results do not depend on the table).
//! Another writer may compact the table; any other change to its rows is not noticed.

use std::{collections::BTreeMap, collections::HashMap, sync::Arc};

use arrow::{
    array::{AsArray, RecordBatch, StringArray},
    datatypes::{DataType, Field, Schema, SchemaRef, TimestampMicrosecondType},
};
use deltalake::{
    DeltaTable, DeltaTableBuilder, DeltaTableError,
    datafusion::prelude::{col, lit},
    kernel::{StructType, engine::arrow_conversion::TryIntoKernel, transaction::CommitProperties},
    protocol::SaveMode,
};
use futures::TryStreamExt;
use procforest_core::{
    scan::ResolvedTable,
    schema::{ACCOUNT, ACCOUNT_TYPE, COMPUTER, COUNT, INTERVAL, PROCESS, time_type},
};
use sha2::{Digest, Sha256};

use crate::{
    error::{Context, PipelineError, Result},
    setting::Setting,
    stages::summaries::Interval,
};

/// The partition column: the interval's start as text (`2026-11-27`, or `2026-11-27T13`
/// for hours).
pub const INTERVAL_ID: &str = "interval_id";

/// The `commitInfo` entry holding the table's [`StoredState`].
pub const STATE_KEY: &str = "procforest.summaries";

/// The stored rows' layout; a table of another one is rebuilt.
const FORMAT: u32 = 1;

/// Commits searched, newest first, for the newest [`StoredState`] (another writer may
/// have compacted the table since).
const STATE_SEARCH_DEPTH: usize = 100;

/// What the table's newest procforest commit says its rows are.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredState {
    /// [`FORMAT`] when written.
    pub format: u32,
    /// The source table's URL.
    pub source: String,
    /// The source's version the newest rows were counted from.
    pub source_version: i64,
    /// The summary interval.
    pub interval: Interval,
    /// Per interval (its start, microseconds), the fingerprint of the sources its rows
    /// were counted from.
    pub fingerprints: BTreeMap<i64, String>,
}

/// Each interval's fingerprint, by its start in microseconds.
pub type Fingerprints = BTreeMap<i64, String>;

/// The fingerprint of every interval of `(after_us, until_us]` that a file of `resolved`
/// may hold events of; `None` when a file's `TimeGenerated` statistics are missing (it
/// may hold events of any interval).
pub fn fingerprints(
    resolved: &ResolvedTable,
    interval: Interval,
    after_us: Option<i64>,
    until_us: i64,
) -> Option<Fingerprints> {
    let length = interval.micros();
    let mut sources: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for file in &resolved.files {
        let Some((low, high)) = file.time_bounds else {
            // Only a file whose every time is null holds no interval's events.
            match (file.time_nulls, file.num_records) {
                (Some(nulls), Some(rows)) if nulls == rows => continue,
                _ => return None,
            }
        };
        let low = after_us.map_or(low, |after| low.max(after + 1));
        let high = high.min(until_us);
        if low > high {
            continue;
        }
        let deleted = file
            .deleted_rows
            .as_ref()
            .and_then(|d| serde_json::to_string(d).ok())
            .unwrap_or_default();
        let described = format!("{}\t{}\t{deleted}", file.url, file.size);
        let mut start = interval.truncate(low);
        while start <= high {
            sources.entry(start).or_default().push(described.clone());
            start += length;
        }
    }
    Some(
        sources
            .into_iter()
            .map(|(start, mut files)| {
                files.sort();
                // The part of the interval the window covers: an interval cut by the
                // window's start or end holds fewer events than a whole one.
                let covered_after = after_us.map_or(start - 1, |a| a.max(start - 1));
                let covered_until = until_us.min(start + length - 1);
                let mut hash = Sha256::new();
                hash.update(format!("{covered_after}\t{covered_until}\n"));
                for file in &files {
                    hash.update(file.as_bytes());
                    hash.update(b"\n");
                }
                let digest: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
                (start, digest)
            })
            .collect(),
    )
}

/// The files of `resolved` that may hold events of one of `intervals` within
/// `(after_us, until_us]` (every file whose statistics are missing).
pub fn files_of_intervals(
    resolved: &ResolvedTable,
    intervals: &[i64],
    interval: Interval,
    after_us: Option<i64>,
    until_us: i64,
) -> ResolvedTable {
    let wanted: std::collections::BTreeSet<i64> = intervals.iter().copied().collect();
    let holds_one = |file: &procforest_core::scan::ResolvedFile| {
        let Some((low, high)) = file.time_bounds else {
            return true;
        };
        let low = after_us.map_or(low, |after| low.max(after + 1));
        let high = high.min(until_us);
        low <= high
            && wanted
                .range(interval.truncate(low)..=interval.truncate(high))
                .next()
                .is_some()
    };
    ResolvedTable {
        files: resolved
            .files
            .iter()
            .filter(|f| holds_one(f))
            .cloned()
            .collect(),
        ..resolved.clone()
    }
}

/// A run's use of the summaries table: what it found there and what it reads.
pub struct Incremental {
    /// The table.
    pub store: SummaryStore,
    /// The run's intervals' fingerprints.
    pub fingerprints: Fingerprints,
    /// Which intervals are read and which counted.
    pub reuse: Reuse,
    /// The data files of the intervals read.
    pub stored_files: Vec<String>,
}

impl Incremental {
    /// What `store` gives a run over `resolved` (the training window's files), whose
    /// window is `(after_us, until_us]` and whose report starts at `report_start_us`;
    /// `None` (with a warning) when the files' statistics cannot say which intervals
    /// they hold.
    pub fn plan(
        store: SummaryStore,
        resolved: &ResolvedTable,
        interval: Interval,
        (after_us, until_us): (Option<i64>, i64),
        report_start_us: i64,
    ) -> Result<Option<Self>> {
        let Some(fingerprints) = fingerprints(resolved, interval, after_us, until_us) else {
            tracing::warn!(
                "{}: some files have no TimeGenerated statistics, so any interval may hold \
                 their events; the summaries table {} is not used",
                resolved.table_url,
                store.location
            );
            return Ok(None);
        };
        let reuse = store.reuse(
            &fingerprints,
            &resolved.table_url,
            interval,
            report_start_us,
        );
        let stored_files = store.files_of(&reuse.stored, interval)?;
        Ok(Some(Self {
            store,
            fingerprints,
            reuse,
            stored_files,
        }))
    }

    /// The state to record once the counted intervals are written.
    pub fn state(&self, source: &str, source_version: i64, interval: Interval) -> StoredState {
        StoredState {
            format: FORMAT,
            source: source.to_string(),
            source_version,
            interval,
            fingerprints: self.fingerprints.clone(),
        }
    }
}

/// The text of [`INTERVAL_ID`] for the interval starting at `start_us`.
pub fn interval_id(interval: Interval, start_us: i64) -> String {
    let time = chrono::DateTime::from_timestamp_micros(start_us).unwrap_or_default();
    match interval {
        Interval::Day => time.format("%Y-%m-%d").to_string(),
        Interval::Hour => time.format("%Y-%m-%dT%H").to_string(),
    }
}

/// The stored rows' columns (the summaries' counts), then [`INTERVAL_ID`].
pub fn table_schema() -> SchemaRef {
    let mut fields = vec![Field::new(INTERVAL, time_type(), false)];
    fields.extend(
        [COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS].map(|k| Field::new(k, DataType::Utf8, true)),
    );
    fields.push(Field::new(COUNT, DataType::Int64, false));
    fields.push(Field::new(INTERVAL_ID, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The stored rows' columns as their files hold them (without the partition column).
pub fn rows_schema() -> SchemaRef {
    let schema = table_schema();
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != INTERVAL_ID)
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// Which intervals a run reads from the table and which it counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reuse {
    /// Intervals whose stored rows are still right.
    pub stored: Vec<i64>,
    /// Intervals counted from the events (changed, new, or in the report).
    pub counted: Vec<i64>,
    /// Stored intervals that no longer have events (their rows are dropped).
    pub vanished: Vec<i64>,
    /// Whether the table is rebuilt from scratch (none of it matches the run's source
    /// and interval).
    pub rebuild: bool,
}

/// A summaries table as a run found it.
pub struct SummaryStore {
    location: String,
    url: url::Url,
    storage_options: HashMap<String, String>,
    table: Option<DeltaTable>,
    state: Option<StoredState>,
}

/// A commit that lost to another writer's.
fn is_conflict(error: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError as T;
    matches!(
        error,
        DeltaTableError::Transaction {
            source: T::CommitConflict(_) | T::VersionAlreadyExists(_) | T::MaxCommitAttempts(_),
        } | DeltaTableError::VersionAlreadyExists(_)
    )
}

/// What [`SummaryStore::save`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Saved {
    /// The table version written; `None` when another run's commit won.
    pub version: Option<i64>,
    /// Rows written.
    pub rows: usize,
}

impl SummaryStore {
    /// Opens the table at `location` (a path or URL, like `--table`'s); none there yet is
    /// an empty store.
    pub async fn open(location: &str, storage_options: HashMap<String, String>) -> Result<Self> {
        let url = crate::source::table_url_for_write(location).map_err(|e| {
            PipelineError::bad_setting(Setting::Summaries, format!("{location}: {e}"))
        })?;
        let loaded = DeltaTableBuilder::from_url(url.clone())
            .bad_setting(Setting::Summaries, location)?
            .with_storage_options(storage_options.clone())
            .load()
            .await;
        let table = match loaded {
            Ok(table) => table,
            Err(DeltaTableError::NotATable(_)) => {
                return Ok(Self {
                    location: location.to_string(),
                    url,
                    storage_options,
                    table: None,
                    state: None,
                });
            }
            Err(e) => return Err(e).bad_setting(Setting::Summaries, location),
        };
        Self::check_schema(location, &table)?;
        let state = Self::read_state(location, &table).await?;
        Ok(Self {
            location: location.to_string(),
            url,
            storage_options,
            table: Some(table),
            state,
        })
    }

    /// Refuses a table that is not a summaries table.
    fn check_schema(location: &str, table: &DeltaTable) -> Result<()> {
        let existing = table
            .snapshot()
            .bad_setting(Setting::Summaries, location)?
            .schema();
        let missing: Vec<String> = table_schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .filter(|name| existing.field(name).is_none())
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(PipelineError::bad_setting(
                Setting::Summaries,
                format!(
                    "{location}: not a summaries table (no column {})",
                    missing.join(", ")
                ),
            )),
        }
    }

    /// The newest [`StoredState`] in the table's recent commits.
    async fn read_state(location: &str, table: &DeltaTable) -> Result<Option<StoredState>> {
        let commits: Vec<_> = table
            .history(Some(STATE_SEARCH_DEPTH))
            .try_collect()
            .await
            .runtime(format!(
                "reading the history of the summaries table {location}"
            ))?;
        for commit in commits {
            if let Some(state) = commit.info.get(STATE_KEY) {
                let state: StoredState = serde_json::from_value(state.clone()).bad_setting(
                    Setting::Summaries,
                    format!("{location}: its commit's {STATE_KEY} cannot be read"),
                )?;
                return Ok(Some(state));
            }
        }
        Ok(None)
    }

    /// The table's location as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Which intervals of `current` to read and which to count, for a run over `source`
    /// whose report starts at `report_start_us`.
    pub fn reuse(
        &self,
        current: &Fingerprints,
        source: &str,
        interval: Interval,
        report_start_us: i64,
    ) -> Reuse {
        let state = self
            .state
            .as_ref()
            .filter(|s| s.format == FORMAT && s.source == source && s.interval == interval);
        let mut reuse = Reuse {
            rebuild: state.is_none(),
            ..Reuse::default()
        };
        let stored = state.map(|s| &s.fingerprints);
        for (&start, fingerprint) in current {
            let same = stored.and_then(|s| s.get(&start)) == Some(fingerprint);
            match same && start < report_start_us {
                true => reuse.stored.push(start),
                false => reuse.counted.push(start),
            }
        }
        if let Some(stored) = stored {
            reuse.vanished = stored
                .keys()
                .filter(|start| !current.contains_key(start))
                .copied()
                .collect();
        }
        reuse
    }

    /// The URLs of the data files holding the rows of `intervals`.
    pub fn files_of(&self, intervals: &[i64], interval: Interval) -> Result<Vec<String>> {
        let Some(table) = &self.table else {
            return Ok(Vec::new());
        };
        let wanted: std::collections::HashSet<String> = intervals
            .iter()
            .map(|&start| interval_id(interval, start))
            .collect();
        let what = || format!("listing the files of the summaries table {}", self.location);
        let files = table
            .snapshot()
            .runtime(what())?
            .snapshot()
            .try_log_data()
            .runtime(what())?;
        let mut urls = Vec::new();
        for file in files.iter() {
            let id = file
                .partition_values_map()
                .get(INTERVAL_ID)
                .cloned()
                .flatten();
            if id.is_some_and(|id| wanted.contains(&id)) {
                urls.push(crate::source::file_url(&self.url, &file.path())?.to_string());
            }
        }
        urls.sort();
        Ok(urls)
    }

    /// Replaces the rows of `reuse`'s counted and vanished intervals (every row, when it
    /// rebuilds) with `rows` (the counted intervals' summary rows, [`rows_schema`]), and
    /// records `state`, in one commit.
    pub async fn save(
        &self,
        rows: Vec<RecordBatch>,
        reuse: &Reuse,
        state: &StoredState,
    ) -> Result<Saved> {
        let what = format!("writing the summaries table {}", self.location);
        let batches = rows
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| with_interval_id(b, state.interval))
            .collect::<Result<Vec<_>>>()?;
        let written: usize = batches.iter().map(RecordBatch::num_rows).sum();
        let table = match &self.table {
            Some(table) => table.clone(),
            None => self.create().await?,
        };
        // No retry over another run's commit: the state recorded must describe every
        // row, so the commit lands right after the version this run read, or not at all.
        let properties = CommitProperties::default()
            .with_max_retries(0)
            .with_metadata([(
                STATE_KEY.to_string(),
                serde_json::to_value(state).runtime(&what)?,
            )]);
        let replaced: Vec<_> = reuse
            .counted
            .iter()
            .chain(&reuse.vanished)
            .map(|&start| lit(interval_id(state.interval, start)))
            .collect();
        let these = col(INTERVAL_ID).in_list(replaced, false);
        let outcome = match (batches.is_empty(), reuse.rebuild) {
            (true, _) => {
                let delete = table.delete().with_commit_properties(properties);
                match reuse.rebuild {
                    true => delete.await,
                    false => delete.with_predicate(these).await,
                }
                .map(|(table, _)| table)
            }
            (false, rebuild) => {
                let write = table
                    .write(batches)
                    .with_save_mode(SaveMode::Overwrite)
                    .with_commit_properties(properties);
                match rebuild {
                    true => write.await,
                    false => write.with_replace_where(these).await,
                }
            }
        };
        match outcome {
            Ok(table) => Ok(Saved {
                version: table.version().map(|v| v as i64),
                rows: written,
            }),
            Err(e) if is_conflict(&e) => {
                tracing::warn!(
                    "the summaries table {} was written by another run meanwhile ({e}); \
                     left as that run wrote it",
                    self.location
                );
                Ok(Saved {
                    version: None,
                    rows: 0,
                })
            }
            Err(e) => Err(e).runtime(what),
        }
    }

    /// Creates the table (when another run created it meanwhile, that one is used).
    async fn create(&self) -> Result<DeltaTable> {
        let what = format!("creating the summaries table {}", self.location);
        let schema: StructType = table_schema().as_ref().try_into_kernel().runtime(&what)?;
        DeltaTableBuilder::from_url(self.url.clone())
            .runtime(&what)?
            .with_storage_options(self.storage_options.clone())
            .build()
            .runtime(&what)?
            .create()
            .with_columns(schema.fields().cloned())
            .with_partition_columns([INTERVAL_ID])
            .with_save_mode(SaveMode::Ignore)
            .await
            .runtime(what)
    }
}

/// `batch` (the summaries' counts) with its [`INTERVAL_ID`] column, in [`table_schema`].
fn with_interval_id(batch: &RecordBatch, interval: Interval) -> Result<RecordBatch> {
    let what = "preparing the summary rows to store";
    let rows = rows_schema();
    let mut columns = Vec::new();
    for field in rows.fields() {
        let column = batch
            .column_by_name(field.name())
            .ok_or_else(|| PipelineError::runtime(format!("{what}: no column {}", field.name())))?;
        columns.push(arrow::compute::cast(column, field.data_type()).runtime(what)?);
    }
    let starts = columns[0].as_primitive::<TimestampMicrosecondType>();
    let ids: StringArray = (0..starts.len())
        .map(|i| Some(interval_id(interval, starts.value(i))))
        .collect();
    columns.push(Arc::new(ids));
    RecordBatch::try_new(table_schema(), columns).runtime(what)
}

#[cfg(test)]
mod tests;
