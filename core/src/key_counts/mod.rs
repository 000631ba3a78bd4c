//! Key counts: the event files of a snapshot → one row per interval × Computer × Account ×
//! AccountType × Process with its event count, read straight from Parquet.
//!
//! This is the summaries' `GROUP BY` done the way the data allows: every file holds one
//! interval's events (the log's statistics say so, see [`crate::scan`]), and each
//! interval's files are read by one partition, so no group spans partitions and nothing is
//! shuffled or merged. The four keys are read as Parquet dictionary indices — no string is
//! decoded per row —, each partition numbers the values it meets ([`value_ids`]), and the
//! groups are counted in a hash table keyed by the four numbers (`count`). Strings are
//! looked up again only for the output rows: much less CPU than DataFusion's `GROUP BY` on
//! strings over the same files (BENCHMARKS.md has the measurements).
//!
//! For the report's rows, [`KeyCountsTable::with_command_lines`] also gathers each group's
//! distinct command lines: the `CommandLine` column read as string views into the pages,
//! each line numbered by its hash ([`line_ids`]), each (group, line number) pair kept once
//! in a hash set, and each group's lines sorted at the end — what `array_agg` followed by
//! a distinct sort gives, without copying every row's string into an aggregate.
//!
//! For the evidence of the soc preset, [`Gathered::Evidence`] counts the events per group,
//! parent and command-line template instead ([`evidence`]): each interval's distinct lines
//! templated once, the rows written per interval without a shuffle.
//!
//! [`KeyCountsTable`] is the table provider the driver registers (its file list travels in
//! the logical plan through [`crate::codec`]); it plans a [`KeyCountsExec`] over a
//! [`work_list`] of the files, one partition per task, which travel to the executors in
//! the physical plan.

mod count;
pub mod evidence;
mod exec;
pub mod line_ids;
mod read_ahead;
pub mod value_ids;

use std::{collections::BTreeMap, sync::Arc};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::{
    catalog::{Session, TableProvider},
    common::{DataFusionError, Result},
    datasource::TableType,
    execution::object_store::ObjectStoreUrl,
    logical_expr::Expr,
    physical_plan::ExecutionPlan,
};

pub use exec::{KeyCountsExec, work_list};

use crate::{
    scan::{ResolvedFile, ResolvedTable, balance, store_and_path},
    schema::{
        COMMAND_LINE, COMMAND_LINES, COUNT, GROUP_KEYS, INTERVAL, PARENT_PROCESS_NAME, PROCESS,
        TIME_GENERATED, time_type,
    },
};

/// [`INTERVAL`] and the four keys (plain strings, null where the event has none), then
/// `own`: the schema of every kind of output.
fn keyed_schema(own: impl IntoIterator<Item = Field>) -> SchemaRef {
    let mut fields = vec![Field::new(INTERVAL, time_type(), false)];
    fields.extend(
        GROUP_KEYS
            .iter()
            .map(|key| Field::new(*key, DataType::Utf8, true)),
    );
    fields.extend(own);
    Arc::new(Schema::new(fields))
}

/// The schema of key counts: [`INTERVAL`], the four keys (plain strings, null where the
/// event has none), [`COUNT`].
pub fn schema() -> SchemaRef {
    keyed_schema([Field::new(COUNT, DataType::Int64, false)])
}

/// [`schema`] and [`COMMAND_LINES`]: each group's distinct non-null command lines sorted
/// bytewise, null when it has none (DataFusion's `array_agg` of the non-null lines, then
/// made distinct and sorted).
pub fn schema_with_command_lines() -> SchemaRef {
    let lines = DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)));
    let mut fields: Vec<Field> = schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new(COMMAND_LINES, lines, true));
    Arc::new(Schema::new(fields))
}

/// What key counts gather besides each group's count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Gathered {
    /// The counts alone ([`schema`]).
    #[default]
    Counts,
    /// Each group's distinct command lines too ([`schema_with_command_lines`]).
    CommandLines,
    /// The evidence's rows instead: counts per group, parent and command-line template
    /// ([`evidence::schema`]).
    Evidence,
}

/// The output schema of what is `gathered`.
fn output_schema(gathered: Gathered) -> SchemaRef {
    match gathered {
        Gathered::Counts => schema(),
        Gathered::CommandLines => schema_with_command_lines(),
        Gathered::Evidence => evidence::schema(),
    }
}

/// Which events count: after `after_us` (exclusive, when set) up to `until_us` (inclusive),
/// by `TimeGenerated` in microseconds; an event without a time never counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TimeWindow {
    /// Exclusive start.
    pub after_us: Option<i64>,
    /// Inclusive end.
    pub until_us: i64,
}

impl TimeWindow {
    /// Whether an event at `micros` counts.
    pub fn contains(&self, micros: i64) -> bool {
        micros <= self.until_us && self.after_us.is_none_or(|after| micros > after)
    }

    /// Whether the log's statistics show every row of `file` inside the window (then its
    /// times need not be read).
    fn holds_all_of(&self, file: &ResolvedFile) -> bool {
        file.time_nulls == Some(0)
            && file
                .time_bounds
                .is_some_and(|(low, high)| self.contains(low) && self.contains(high))
    }
}

/// The names the data files give the columns key counts read: the table's, unless column
/// mapping renamed them.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FileColumns {
    /// The four keys, in [`GROUP_KEYS`] order.
    pub keys: [String; 4],
    /// `TimeGenerated`.
    pub time: String,
    /// `CommandLine`.
    pub command_line: String,
    /// `ParentProcessName`.
    #[serde(default = "default_parent")]
    pub parent: String,
}

fn default_parent() -> String {
    PARENT_PROCESS_NAME.to_string()
}

impl FileColumns {
    /// The files' names of `resolved`'s columns.
    pub fn of(resolved: &ResolvedTable) -> Self {
        Self {
            keys: GROUP_KEYS.map(|k| resolved.physical_name(k).to_string()),
            time: resolved.physical_name(TIME_GENERATED).to_string(),
            command_line: resolved.physical_name(COMMAND_LINE).to_string(),
            parent: resolved.physical_name(PARENT_PROCESS_NAME).to_string(),
        }
    }

    /// The files' name of the `Process` key (what [`ProcessShare`]s divide).
    pub fn process(&self) -> &str {
        let at = GROUP_KEYS.iter().position(|k| *k == PROCESS);
        &self.keys[at.expect("Process is a group key")]
    }
}

impl Default for FileColumns {
    fn default() -> Self {
        Self::of(&ResolvedTable {
            physical_names: Default::default(),
            table_url: String::new(),
            version: 0,
            partition_columns: Vec::new(),
            files: Vec::new(),
        })
    }
}

/// One file to count, as a partition of [`KeyCountsExec`] reads it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CountedFile {
    /// Path in the object store.
    pub path: String,
    /// Size in bytes (saves a request per file).
    pub size: u64,
    /// Start of the interval holding all of its events, microseconds.
    pub interval_us: i64,
    /// Whether its rows' times must be checked against the window.
    pub check_time: bool,
    /// The rows its deletion vector removes, if it has one.
    pub deleted_rows: Option<crate::deleted_rows::DeletedRows>,
    /// When set, only the events of this share of the processes count (an interval
    /// shared out across partitions, [`KeyCountsTable::split_lone_intervals`]).
    #[serde(default)]
    pub processes: Option<ProcessShare>,
}

/// Share `index` of `of` of the processes: those whose name's FNV-1a hash modulo `of` is
/// `index` (a null process as the empty one). Every group, and every (process, template), is in
/// exactly one share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessShare {
    pub index: u32,
    pub of: u32,
}

impl ProcessShare {
    /// Whether `process` is in this share.
    pub fn holds(self, process: Option<&str>) -> bool {
        // A null process shares the empty one's share: the evidence's per-(process,
        // template) totals count them as one process.
        let name = process.unwrap_or("");
        fnv1a(name.as_bytes()) % u64::from(self.of) == u64::from(self.index)
    }
}

/// FNV-1a, 64 bits: a hash every process computes the same.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The table provider of key counts over a resolved snapshot's files; see the module
/// documentation.
#[derive(Debug, Clone)]
pub struct KeyCountsTable {
    resolved: ResolvedTable,
    interval_us: i64,
    window: TimeWindow,
    store: ObjectStoreUrl,
    files: Vec<CountedFile>,
    gathered: Gathered,
    /// Into how many shares of its processes each interval is counted (1: whole); see
    /// [`KeyCountsTable::split_lone_intervals`].
    shares: usize,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    resolved: ResolvedTable,
    interval_us: i64,
    window: TimeWindow,
    gathered: Gathered,
    #[serde(default = "one")]
    shares: usize,
}

fn one() -> usize {
    1
}

/// The most bytes of files an interval may hold to be shared out by processes when only
/// counted or its command lines gathered: each share reads all of them, for little work
/// per event. The evidence's templating is worth those reads at any size.
pub const SHARED_INTERVAL_BYTES: u64 = crate::scan::ONE_TASK_INTERVAL_BYTES;

impl KeyCountsTable {
    /// Whether key counts can read `resolved`: every file inside one interval of
    /// `interval_us` by the log's statistics, and neither the keys nor the time stored as
    /// partition values (they must be in the files).
    pub fn can_read(resolved: &ResolvedTable, interval_us: i64) -> bool {
        let in_files = |name: &str| !resolved.partition_columns.iter().any(|c| c == name);
        interval_us > 0
            && GROUP_KEYS.iter().all(|k| in_files(k))
            && in_files(TIME_GENERATED)
            && resolved
                .files
                .iter()
                .all(|f| f.interval(interval_us).is_some())
    }

    /// The key counts of `resolved`'s events in `window`, by intervals of `interval_us`;
    /// an error unless [`Self::can_read`].
    pub fn try_new(resolved: ResolvedTable, interval_us: i64, window: TimeWindow) -> Result<Self> {
        if !Self::can_read(&resolved, interval_us) {
            return Err(DataFusionError::Plan(format!(
                "key counts need every file inside one interval of {interval_us} µs and the \
                 keys and time in the files (table {})",
                resolved.table_url
            )));
        }
        let mut store = None;
        let mut files = Vec::with_capacity(resolved.files.len());
        for file in &resolved.files {
            let (file_store, path) = store_and_path(&file.url)?;
            if store.as_ref().is_some_and(|s| *s != file_store) {
                return Err(DataFusionError::Plan(format!(
                    "file {} is not in the table's store",
                    file.url
                )));
            }
            store = Some(file_store);
            files.push(CountedFile {
                path: path.to_string(),
                size: file.size,
                interval_us: file.interval(interval_us).expect("checked by can_read"),
                check_time: !window.holds_all_of(file),
                deleted_rows: file.deleted_rows.clone(),
                processes: None,
            });
        }
        let store = match store {
            Some(s) => s,
            None => store_and_path(&resolved.table_url)?.0,
        };
        Ok(Self {
            resolved,
            interval_us,
            window,
            store,
            files,
            gathered: Gathered::Counts,
            shares: 1,
        })
    }

    /// The table counting each interval in `partitions / intervals` shares of its
    /// processes, each share a partition, when it has fewer intervals than `partitions` (a
    /// night's new day, the report's day) and it gathers the evidence or none holds more
    /// than [`SHARED_INTERVAL_BYTES`]: one interval is then counted by several cores. No group
    /// and no (process, template) spans shares, so nothing needs merging; the price is
    /// that every share reads the interval's files. Shares divide the work of templating,
    /// which is per distinct command line, where row groups do not (a day's repeated
    /// lines are in every row group). Decided on the driver and carried in the plan.
    pub fn split_lone_intervals(mut self, partitions: usize) -> Self {
        let mut bytes: BTreeMap<i64, u64> = BTreeMap::new();
        for file in &self.files {
            *bytes.entry(file.interval_us).or_default() += file.size;
        }
        let worth_rereading = self.gathered == Gathered::Evidence
            || bytes.values().all(|&b| b <= SHARED_INTERVAL_BYTES);
        self.shares = match bytes.len() {
            n if n > 0 && worth_rereading => (partitions / n).max(1),
            _ => 1,
        };
        self
    }

    /// The same counts, each group with its distinct command lines
    /// ([`schema_with_command_lines`]).
    pub fn with_command_lines(self) -> Self {
        self.gathering(Gathered::CommandLines)
    }

    /// The table gathering `gathered`.
    pub fn gathering(mut self, gathered: Gathered) -> Self {
        self.gathered = gathered;
        self
    }

    /// Serialises the file list, the interval and the window.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let encoded = Encoded {
            resolved: self.resolved.clone(),
            interval_us: self.interval_us,
            window: self.window,
            gathered: self.gathered,
            shares: self.shares,
        };
        serde_json::to_vec(&encoded).map_err(|e| DataFusionError::External(Box::new(e)))
    }

    /// Rebuilds the provider from [`Self::encode`]'s bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let encoded: Encoded =
            serde_json::from_slice(bytes).map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut table = Self::try_new(encoded.resolved, encoded.interval_us, encoded.window)?;
        table.shares = encoded.shares.max(1);
        Ok(table.gathering(encoded.gathered))
    }

    /// The files split into at most `n` partitions of similar size, each interval's files
    /// in one partition (or each share of its processes: [`Self::split_lone_intervals`]),
    /// in interval order; the same for the same files. At least one.
    fn partitions(&self, n: usize) -> Vec<Vec<CountedFile>> {
        let mut by_interval: BTreeMap<i64, Vec<&CountedFile>> = BTreeMap::new();
        for file in &self.files {
            by_interval.entry(file.interval_us).or_default().push(file);
        }
        let mut pieces: Vec<(u64, Vec<CountedFile>)> = Vec::new();
        for files in by_interval.into_values() {
            let bytes: u64 = files.iter().map(|f| f.size).sum();
            if self.shares <= 1 {
                pieces.push((bytes, files.into_iter().cloned().collect()));
                continue;
            }
            for index in 0..self.shares {
                let share = ProcessShare {
                    index: index as u32,
                    of: self.shares as u32,
                };
                let shared = files
                    .iter()
                    .map(|f| CountedFile {
                        processes: Some(share),
                        ..(*f).clone()
                    })
                    .collect();
                pieces.push((bytes / self.shares as u64, shared));
            }
        }
        let units = pieces
            .iter()
            .enumerate()
            .map(|(i, (bytes, _))| (*bytes, vec![i]))
            .collect();
        let partitions: Vec<Vec<CountedFile>> = balance(units, n)
            .into_iter()
            .map(|mut members| {
                members.sort_unstable();
                members
                    .into_iter()
                    .flat_map(|i| pieces[i].1.iter().cloned())
                    .collect()
            })
            .collect();
        // No files (an empty history) is still one partition, with nothing to count.
        if partitions.is_empty() {
            vec![Vec::new()]
        } else {
            partitions
        }
    }
}

#[async_trait]
impl TableProvider for KeyCountsTable {
    fn schema(&self) -> SchemaRef {
        output_schema(self.gathered)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitions = self.partitions(state.config().target_partitions());
        Ok(Arc::new(
            KeyCountsExec::try_new(
                work_list(&partitions)?,
                self.store.clone(),
                self.window,
                projection.cloned(),
                self.gathered,
            )?
            .with_file_columns(FileColumns::of(&self.resolved)),
        ))
    }
}

#[cfg(test)]
mod tests;
