//! The summaries table (`--summaries`): what earlier runs computed per interval from the
//! events, kept in a Delta table, so that a nightly run computes from the events only the
//! intervals whose source files changed and reads the others'. Four kinds of rows
//! ([`Kind`]): the summary rows (interval, keys, `count`), and, once a run with the
//! evidence features wrote them, the evidence's per-interval counts
//! ([`EVIDENCE_KINDS`]: per command-line template, per parent, per group; see
//! [`crate::stages::evidence`]).
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
//! The rows and their fingerprints are trusted together: one commit replaces the computed
//! intervals' partitions ([`KIND`], [`INTERVAL_ID`]) and records every interval's
//! fingerprint per kind in its `commitInfo` ([`STATE_KEY`]). A run whose commit loses a
//! race with another run's leaves the table as that run wrote it (its own results do not
//! depend on the table).
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
    scan::{ResolvedFile, ResolvedTable},
    schema::{
        ACCOUNT, ACCOUNT_TYPE, COMPUTER, COUNT, INTERVAL, PROCESS,
        evidence::{
            ENTROPY, INTERVAL_ACCOUNT_EVENTS, INTERVAL_HOST_EVENTS, INTERVAL_HOST_LINEAGE_EVENTS,
            INTERVAL_LINEAGE_EVENTS, INTERVAL_TEMPLATE_EVENTS, LONGEST, PARENT, TEMPLATE,
        },
        time_type,
    },
};
use sha2::{Digest, Sha256};

use crate::{
    error::{Context, PipelineError, Result},
    setting::Setting,
    stages::summaries::Interval,
};

/// The first partition column: the rows' [`Kind`].
pub const KIND: &str = "kind";

/// The second partition column: the interval's start as text (`2026-11-27`, or
/// `2026-11-27T13` for hours).
pub const INTERVAL_ID: &str = "interval_id";

/// The kinds of rows the table keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Summary rows: interval, keys, `count`.
    Counts,
    /// The evidence's command-line rows: interval, keys, parent, template, `count`,
    /// longest, entropy, and the interval's events of the (process, template).
    Lines,
    /// The evidence's events per interval, group and parent (with the history keys
    /// `kc`, `ka`, `kp`), and the interval's totals per (process, parent) and (host,
    /// process, parent).
    Parents,
    /// The evidence's events per interval and group (with the history keys), and the
    /// interval's totals per (host, process) and (account, process).
    Groups,
}

/// The kinds of rows the evidence features compute, recorded under one set of
/// fingerprints (one run computes all three from the same events).
pub const EVIDENCE_KINDS: [Kind; 3] = [Kind::Lines, Kind::Parents, Kind::Groups];

/// The history keys of the evidence's counts: a null key as the empty one.
const HISTORY_KEYS: [&str; 3] = ["kc", "ka", "kp"];

impl Kind {
    /// Its [`KIND`] value.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counts => "counts",
            Kind::Lines => "lines",
            Kind::Parents => "parents",
            Kind::Groups => "groups",
        }
    }

    /// Its rows' columns as the files hold them, in [`table_schema`]'s types.
    pub fn schema(self) -> SchemaRef {
        let keys = [INTERVAL, COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS];
        let [kc, ka, kp] = HISTORY_KEYS;
        let own: &[&str] = match self {
            Kind::Counts => &[COUNT],
            Kind::Lines => &[
                PARENT,
                TEMPLATE,
                COUNT,
                LONGEST,
                ENTROPY,
                INTERVAL_TEMPLATE_EVENTS,
            ],
            Kind::Parents => &[
                kc,
                ka,
                kp,
                PARENT,
                COUNT,
                INTERVAL_LINEAGE_EVENTS,
                INTERVAL_HOST_LINEAGE_EVENTS,
            ],
            Kind::Groups => &[
                kc,
                ka,
                kp,
                COUNT,
                INTERVAL_HOST_EVENTS,
                INTERVAL_ACCOUNT_EVENTS,
            ],
        };
        let columns: Vec<&str> = keys.iter().chain(own).copied().collect();
        let table = table_schema();
        let fields: Vec<Field> = columns
            .iter()
            .map(|name| {
                let field = table.field_with_name(name).expect("a stored column");
                // Each kind's own columns are never null in its rows; the keys may be.
                let never_null = !keys[1..].contains(name);
                field.clone().with_nullable(!never_null)
            })
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// The `commitInfo` entry holding the table's [`StoredState`].
pub const STATE_KEY: &str = "procforest.summaries";

/// The stored rows' layout; a table of another one is rebuilt (3: the evidence's rows
/// keep their intervals' totals).
const FORMAT: u32 = 3;

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
    /// Per interval (its start, microseconds), the fingerprint of the sources its summary
    /// rows were counted from.
    pub fingerprints: BTreeMap<i64, String>,
    /// The same for its command-line rows (none until a run with the evidence features).
    #[serde(default)]
    pub line_fingerprints: BTreeMap<i64, String>,
}

/// Each interval's fingerprint, by its start in microseconds.
pub type Fingerprints = BTreeMap<i64, String>;

/// What a file's statistics say of the intervals it may hold events of, within
/// `(after_us, until_us]`.
enum Span {
    /// The intervals starting from the first to the last start (inclusive).
    Intervals(i64, i64),
    /// No event in the window.
    Outside,
    /// Any: its `TimeGenerated` statistics are missing.
    Unknown,
}

fn span(file: &ResolvedFile, interval: Interval, after_us: Option<i64>, until_us: i64) -> Span {
    let Some((low, high)) = file.time_bounds else {
        // Only a file whose every time is null holds no interval's events.
        return match (file.time_nulls, file.num_records) {
            (Some(nulls), Some(rows)) if nulls == rows => Span::Outside,
            _ => Span::Unknown,
        };
    };
    let low = after_us.map_or(low, |after| low.max(after + 1));
    let high = high.min(until_us);
    match low <= high {
        true => Span::Intervals(interval.truncate(low), interval.truncate(high)),
        false => Span::Outside,
    }
}

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
        let (first, last) = match span(file, interval, after_us, until_us) {
            Span::Intervals(first, last) => (first, last),
            Span::Outside => continue,
            Span::Unknown => return None,
        };
        let deleted = file
            .deleted_rows
            .as_ref()
            .and_then(|d| serde_json::to_string(d).ok())
            .unwrap_or_default();
        let described = format!("{}\t{}\t{deleted}", file.url, file.size);
        let mut start = first;
        while start <= last {
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
    (after_us, until_us): (Option<i64>, i64),
) -> ResolvedTable {
    let wanted: std::collections::BTreeSet<i64> = intervals.iter().copied().collect();
    let holds_one = |file: &ResolvedFile| match span(file, interval, after_us, until_us) {
        Span::Intervals(first, last) => wanted.range(first..=last).next().is_some(),
        Span::Outside => false,
        Span::Unknown => true,
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
    /// The data files of the summary rows read.
    pub stored_files: Vec<String>,
    /// The data files of the evidence's rows read, per kind of [`EVIDENCE_KINDS`] (none
    /// without the evidence features).
    pub stored_evidence: Vec<Vec<String>>,
}

impl Incremental {
    /// What `store` gives a run over `resolved` (the training window's files), whose
    /// window is `(after_us, until_us]` and whose report starts at `report_start_us`
    /// (and which computes command-line rows, when `lines`);
    /// `None` (with a warning) when the files' statistics cannot say which intervals
    /// they hold.
    pub fn plan(
        store: SummaryStore,
        resolved: &ResolvedTable,
        interval: Interval,
        (after_us, until_us): (Option<i64>, i64),
        report_start_us: i64,
        lines: bool,
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
            lines,
        );
        let stored_files = store.files_of(Kind::Counts, &reuse.counts.stored, interval)?;
        let stored_evidence = match &reuse.evidence {
            Some(lines) => EVIDENCE_KINDS
                .iter()
                .map(|&kind| store.files_of(kind, &lines.stored, interval))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(Some(Self {
            store,
            fingerprints,
            reuse,
            stored_files,
            stored_evidence,
        }))
    }

    /// The state to record once the counted intervals are written.
    pub fn state(&self, source: &str, source_version: i64, interval: Interval) -> StoredState {
        let before = self.store.state.as_ref().filter(|_| !self.reuse.rebuild);
        StoredState {
            format: FORMAT,
            source: source.to_string(),
            source_version,
            interval,
            fingerprints: self.fingerprints.clone(),
            // Command-line rows this run did not compute stay as they were.
            line_fingerprints: match &self.reuse.evidence {
                Some(_) => self.fingerprints.clone(),
                None => before
                    .map(|b| b.line_fingerprints.clone())
                    .unwrap_or_default(),
            },
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

/// The table's columns: every kind's (a column of one kind is null in the others' rows),
/// then [`KIND`] and [`INTERVAL_ID`].
pub fn table_schema() -> SchemaRef {
    let mut fields = vec![Field::new(INTERVAL, time_type(), false)];
    fields.extend(
        [COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS].map(|k| Field::new(k, DataType::Utf8, true)),
    );
    fields.push(Field::new(COUNT, DataType::Int64, false));
    fields.push(Field::new(PARENT, DataType::Utf8, true));
    fields.push(Field::new(TEMPLATE, DataType::Utf8, true));
    fields.push(Field::new(LONGEST, DataType::Int64, true));
    fields.push(Field::new(ENTROPY, DataType::Float64, true));
    fields.extend(HISTORY_KEYS.map(|k| Field::new(k, DataType::Utf8, true)));
    fields.extend(
        [
            INTERVAL_TEMPLATE_EVENTS,
            INTERVAL_LINEAGE_EVENTS,
            INTERVAL_HOST_LINEAGE_EVENTS,
            INTERVAL_HOST_EVENTS,
            INTERVAL_ACCOUNT_EVENTS,
        ]
        .map(|name| Field::new(name, DataType::Int64, true)),
    );
    fields.push(Field::new(KIND, DataType::Utf8, false));
    fields.push(Field::new(INTERVAL_ID, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

/// The summary rows' columns as the files hold them.
pub fn rows_schema() -> SchemaRef {
    Kind::Counts.schema()
}

/// The intervals of one kind of rows a run reads from the table and those it computes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KindReuse {
    /// Intervals whose stored rows are still right.
    pub stored: Vec<i64>,
    /// Intervals computed from the events (changed, new, or in the report).
    pub counted: Vec<i64>,
    /// Stored intervals that no longer have events (their rows are dropped).
    pub vanished: Vec<i64>,
}

impl KindReuse {
    /// Of the intervals of `current`, those whose `stored` fingerprint matches (before
    /// `report_start_us`) are read; the rest are computed.
    fn new(current: &Fingerprints, stored: Option<&Fingerprints>, report_start_us: i64) -> Self {
        let mut reuse = KindReuse::default();
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
}

/// Which intervals a run reads from the table and which it computes, per kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reuse {
    /// The summary rows.
    pub counts: KindReuse,
    /// The evidence's rows ([`EVIDENCE_KINDS`]), when the run computes them (the evidence
    /// features).
    pub evidence: Option<KindReuse>,
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

    /// Forgets what the table says it holds: the run then computes every interval and
    /// replaces all of it.
    pub fn forget(&mut self) {
        self.state = None;
    }

    /// The table's location as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Which intervals of `current` to read and which to compute, for a run over
    /// `source` whose report starts at `report_start_us`; the command-line rows too when
    /// `lines`.
    pub fn reuse(
        &self,
        current: &Fingerprints,
        source: &str,
        interval: Interval,
        report_start_us: i64,
        lines: bool,
    ) -> Reuse {
        let state = self.usable_state(source, interval);
        Reuse {
            counts: KindReuse::new(current, state.map(|s| &s.fingerprints), report_start_us),
            evidence: lines.then(|| {
                KindReuse::new(
                    current,
                    state.map(|s| &s.line_fingerprints),
                    report_start_us,
                )
            }),
            rebuild: state.is_none(),
        }
    }

    /// The table's state, if it was written for `source` and `interval` in this format.
    fn usable_state(&self, source: &str, interval: Interval) -> Option<&StoredState> {
        self.state
            .as_ref()
            .filter(|s| s.format == FORMAT && s.source == source && s.interval == interval)
    }

    /// The URLs of the data files holding the `kind` rows of `intervals`.
    pub fn files_of(
        &self,
        kind: Kind,
        intervals: &[i64],
        interval: Interval,
    ) -> Result<Vec<String>> {
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
            let values = file.partition_values_map();
            let id = values.get(INTERVAL_ID).cloned().flatten();
            let of_kind = values.get(KIND).cloned().flatten().as_deref() == Some(kind.name());
            if of_kind && id.is_some_and(|id| wanted.contains(&id)) {
                urls.push(crate::source::file_url(&self.url, &file.path())?.to_string());
            }
        }
        urls.sort();
        Ok(urls)
    }

    /// Replaces the rows of `reuse`'s computed and vanished intervals, of each kind it
    /// computed (every row, when it rebuilds), with `computed`'s, and records `state`, in
    /// one commit.
    pub async fn save(
        &self,
        computed: Computed,
        reuse: &Reuse,
        state: &StoredState,
    ) -> Result<Saved> {
        let what = format!("writing the summaries table {}", self.location);
        let mut batches = Vec::new();
        for (kind, rows) in &computed.0 {
            for batch in rows.iter().filter(|b| b.num_rows() > 0) {
                batches.push(in_table_schema(batch, *kind, state.interval)?);
            }
        }
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
        let these = replaced(reuse, state.interval);
        let outcome = match (batches.is_empty(), reuse.rebuild) {
            (true, true) => table
                .delete()
                .with_commit_properties(properties)
                .await
                .map(|(t, _)| t),
            (true, false) => table
                .delete()
                .with_predicate(these)
                .with_commit_properties(properties)
                .await
                .map(|(t, _)| t),
            (false, true) => {
                table
                    .write(batches)
                    .with_save_mode(SaveMode::Overwrite)
                    .with_commit_properties(properties)
                    .await
            }
            (false, false) => {
                table
                    .write(batches)
                    .with_save_mode(SaveMode::Overwrite)
                    .with_replace_where(these)
                    .with_commit_properties(properties)
                    .await
            }
        };
        match outcome {
            Ok(table) => Ok(Saved {
                version: table.version().map(|v| v as i64),
                rows: written,
            }),
            Err(e) if crate::source::is_commit_conflict(&e) => {
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
            .with_partition_columns([KIND, INTERVAL_ID])
            .with_save_mode(SaveMode::Ignore)
            .await
            .runtime(what)
    }
}

/// What a run computed from the events, for the table: each kind's rows (its columns).
#[derive(Debug, Default)]
pub struct Computed(pub Vec<(Kind, Vec<RecordBatch>)>);

/// The partitions a save replaces: of each kind computed, the computed and vanished
/// intervals (a predicate that is never true when there are none).
fn replaced(reuse: &Reuse, interval: Interval) -> deltalake::datafusion::prelude::Expr {
    let evidence = EVIDENCE_KINDS.map(|kind| (kind, reuse.evidence.as_ref()));
    let kinds = std::iter::once((Kind::Counts, Some(&reuse.counts))).chain(evidence);
    let mut predicate = lit(false);
    for (kind, intervals) in kinds {
        let Some(intervals) = intervals else { continue };
        let ids: Vec<_> = intervals
            .counted
            .iter()
            .chain(&intervals.vanished)
            .map(|&start| lit(interval_id(interval, start)))
            .collect();
        if !ids.is_empty() {
            let these = col(KIND)
                .eq(lit(kind.name()))
                .and(col(INTERVAL_ID).in_list(ids, false));
            predicate = predicate.or(these);
        }
    }
    predicate
}

/// `batch` (`kind`'s columns) in [`table_schema`]: the other kinds' columns null, with
/// its [`KIND`] and [`INTERVAL_ID`].
fn in_table_schema(batch: &RecordBatch, kind: Kind, interval: Interval) -> Result<RecordBatch> {
    let what = "preparing the rows to store";
    let table = table_schema();
    let starts = batch
        .column_by_name(INTERVAL)
        .ok_or_else(|| PipelineError::runtime(format!("{what}: no column {INTERVAL}")))?;
    let starts = arrow::compute::cast(starts, &time_type()).runtime(what)?;
    let starts = starts.as_primitive::<TimestampMicrosecondType>();
    let mut columns = Vec::new();
    for field in table.fields() {
        let column: arrow::array::ArrayRef = match field.name().as_str() {
            KIND => Arc::new(StringArray::from(vec![kind.name(); batch.num_rows()])),
            INTERVAL_ID => Arc::new(
                (0..starts.len())
                    .map(|i| Some(interval_id(interval, starts.value(i))))
                    .collect::<StringArray>(),
            ),
            name => match batch.column_by_name(name) {
                Some(column) => arrow::compute::cast(column, field.data_type()).runtime(what)?,
                None => arrow::array::new_null_array(field.data_type(), batch.num_rows()),
            },
        };
        columns.push(column);
    }
    RecordBatch::try_new(table, columns).runtime(what)
}

#[cfg(test)]
mod tests;
