//! Every name the stages share, in one place: the event schema (Microsoft Sentinel's
//! `SecurityEvent` columns for EventID 4688), the summary and feature columns, and the
//! tables a run registers in its session ([`TableName`]). Driver, scheduler and executors
//! agree on these; a plan that names a column or table names it through this module.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// `TimeGenerated`: when the event was recorded, UTC.
pub const TIME_GENERATED: &str = "TimeGenerated";
/// `EventID`: 4688 for process creation.
pub const EVENT_ID: &str = "EventID";
/// `Computer`: the host name.
pub const COMPUTER: &str = "Computer";
/// `Account`: `DOMAIN\user` of the subject.
pub const ACCOUNT: &str = "Account";
/// `AccountType`: `User` or `Machine`.
pub const ACCOUNT_TYPE: &str = "AccountType";
/// `Process`: the new process's file name, e.g. `cmd.exe`.
pub const PROCESS: &str = "Process";
/// `NewProcessName`: the new process's full path.
pub const NEW_PROCESS_NAME: &str = "NewProcessName";
/// `ParentProcessName`: the parent's full path.
pub const PARENT_PROCESS_NAME: &str = "ParentProcessName";
/// `CommandLine`: the new process's command line.
pub const COMMAND_LINE: &str = "CommandLine";
/// `SubjectLogonId`: the logon session, e.g. `0x3e7`.
pub const SUBJECT_LOGON_ID: &str = "SubjectLogonId";
/// `TokenElevationType`: `%%1936` (full), `%%1937` (elevated), `%%1938` (limited).
pub const TOKEN_ELEVATION_TYPE: &str = "TokenElevationType";
/// `EventDate`: the UTC date of `TimeGenerated`; the partition column.
pub const EVENT_DATE: &str = "EventDate";

/// The Arrow type of `TimeGenerated`: microseconds, UTC (Delta's `timestamp`).
pub fn time_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The full event schema, partition column last.
pub fn event_schema() -> SchemaRef {
    let s = |name| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new(TIME_GENERATED, time_type(), false),
        Field::new(EVENT_ID, DataType::Int32, false),
        s(COMPUTER),
        s(ACCOUNT),
        s(ACCOUNT_TYPE),
        s(PROCESS),
        s(NEW_PROCESS_NAME),
        s(PARENT_PROCESS_NAME),
        s(COMMAND_LINE),
        s(SUBJECT_LOGON_ID),
        s(TOKEN_ELEVATION_TYPE),
        Field::new(EVENT_DATE, DataType::Date32, false),
    ]))
}

/// `schema` with its group-key columns ([`GROUP_KEYS`]) read as string views
/// (`Utf8View`) when they are stored as strings. The Parquet reader then points into a
/// column chunk's dictionary instead of copying every value, and the group-by compares
/// lengths and inline prefixes before bytes (BENCHMARKS.md measures the gain).
pub fn keys_as_views(schema: &Schema) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|field| {
            let key = GROUP_KEYS.contains(&field.name().as_str());
            if key && matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8) {
                Arc::new(field.as_ref().clone().with_data_type(DataType::Utf8View))
            } else {
                field.clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// What the job needs of a column, to check a table before reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A timestamp (any unit); UTC is assumed when it has no time zone.
    Timestamp,
    /// A string (`Utf8`, `LargeUtf8` or `Utf8View`).
    String,
}

impl ColumnKind {
    /// Whether `data_type` is acceptable.
    pub fn accepts(self, data_type: &DataType) -> bool {
        match self {
            ColumnKind::Timestamp => matches!(data_type, DataType::Timestamp(_, _)),
            ColumnKind::String => matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ),
        }
    }
    /// A readable name for messages.
    pub fn describe(self) -> &'static str {
        match self {
            ColumnKind::Timestamp => "a timestamp",
            ColumnKind::String => "a string",
        }
    }
}

/// The columns the job reads, and what each must be.
pub const REQUIRED_COLUMNS: &[(&str, ColumnKind)] = &[
    (TIME_GENERATED, ColumnKind::Timestamp),
    (COMPUTER, ColumnKind::String),
    (ACCOUNT, ColumnKind::String),
    (ACCOUNT_TYPE, ColumnKind::String),
    (PROCESS, ColumnKind::String),
    (COMMAND_LINE, ColumnKind::String),
];

/// The columns the evidence features read besides [`REQUIRED_COLUMNS`].
pub const EVIDENCE_COLUMNS: &[(&str, ColumnKind)] = &[(PARENT_PROCESS_NAME, ColumnKind::String)];

/// The grouping keys of a summary row, after the interval.
pub const GROUP_KEYS: [&str; 4] = [COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS];

/// The model's features, in order: the notebook's
/// `[unixInterval, computerIndex, accountIndex, accountTypeIndex, processIndex, count]`
/// (`event_count` is the group's `count` as a feature).
pub const SEED_FEATURES: [&str; 6] = [
    "unix_interval",
    "computer_index",
    "account_index",
    "account_type_index",
    "process_index",
    "event_count",
];

/// The start of a summary row's interval (`date_trunc` of `TimeGenerated`, UTC).
pub const INTERVAL: &str = "interval";
/// A summary row's number of events.
pub const COUNT: &str = "count";
/// A summary row's sorted distinct non-null command lines.
pub const COMMAND_LINES: &str = "command_lines";
/// A scored row's `score_samples` value.
pub const SCORE: &str = "score";
/// A scored row's prediction: -1 anomaly, 1 normal.
pub const PREDICTION: &str = "prediction";

/// A category index table's columns ([`table::category_index`]).
pub mod category_index {
    /// The category value.
    pub const VALUE: &str = "value";
    /// Summary rows holding it.
    pub const GROUPS: &str = "groups";
    /// Its index (0 = most frequent).
    pub const INDEX: &str = "idx";
}

/// The rarity features (the `rarity` feature sets' additions), computed from the training window's
/// summaries: see the pipeline's `features` stage for their formulas.
pub const RARITY_FEATURES: [&str; 4] = [
    "pair_log_groups",
    "log_p_process_given_account",
    "log_p_process_given_computer",
    "log_process_host_share",
];

/// The command-line novelty features, per summary group (formulas in the pipeline's
/// `evidence` stage).
pub const NOVELTY_FEATURES: [&str; 5] = [
    "novel_template_share",
    "log_rarest_template_events",
    "log_rarest_template_hosts",
    "longest_line_log2",
    "line_entropy",
];

/// The lineage features, per summary group (the `evidence` stage).
pub const LINEAGE_FEATURES: [&str; 2] = ["log_rarest_lineage_events", "lineage_new_on_host"];

/// The first-seen features, per summary group (the `evidence` stage).
pub const FIRST_SEEN_FEATURES: [&str; 2] = ["process_new_on_host", "process_new_for_account"];

/// The columns of the evidence tables besides the interval, the keys and [`COUNT`].
pub mod evidence {
    /// The parent's full path (`ParentProcessName`; empty when null).
    pub const PARENT: &str = "parent";
    /// The command line's template (`core::template`; empty when null).
    pub const TEMPLATE: &str = "template";
    /// The characters of the longest command line.
    pub const LONGEST: &str = "longest";
    /// The highest entropy of a command line, bits per byte.
    pub const ENTROPY: &str = "entropy";
    /// A group's templates never seen for its process in another interval (sorted).
    pub const NOVEL_TEMPLATES: &str = "novel_templates";
    /// A group's parent whose pair with the process is rarest in other intervals.
    pub const RAREST_PARENT: &str = "rarest_parent";
    /// Per-interval totals kept with the evidence's rows (the part of a window total
    /// that is the row's own interval): the events of the row's (process, template) in
    /// its interval, on any host.
    pub const INTERVAL_TEMPLATE_EVENTS: &str = "interval_template_events";
    /// The events of the row's (process, parent) pair in its interval, on any host.
    pub const INTERVAL_LINEAGE_EVENTS: &str = "interval_lineage_events";
    /// The events of the row's (host, process, parent) in its interval.
    pub const INTERVAL_HOST_LINEAGE_EVENTS: &str = "interval_host_lineage_events";
    /// The events of the row's (host, process) in its interval.
    pub const INTERVAL_HOST_EVENTS: &str = "interval_host_events";
    /// The events of the row's (account, process) in its interval.
    pub const INTERVAL_ACCOUNT_EVENTS: &str = "interval_account_events";
}

/// The name of a table a run registers in its session. A type of its own, so that a
/// table name cannot be passed where a column name is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TableName(&'static str);

impl TableName {
    /// The name as SQL and the session see it.
    pub const fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl From<TableName> for datafusion::common::TableReference {
    fn from(name: TableName) -> Self {
        datafusion::common::TableReference::bare(name.0)
    }
}

impl AsRef<str> for TableName {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// The tables of a run, in the order the stages register them.
pub mod table {
    use super::TableName;

    /// Every event of the training window (the general summaries plan).
    pub const EVENTS: TableName = TableName("events");
    /// The history's events: the training window before the report's first interval.
    pub const HISTORY_EVENTS: TableName = TableName("history_events");
    /// The history's summary rows counted straight from the files (key counts).
    pub const HISTORY_COUNTS: TableName = TableName("history_counts");
    /// The report window's events.
    pub const REPORT_EVENTS: TableName = TableName("report_events");
    /// The report window's summary rows counted straight from the files (key counts).
    pub const REPORT_COUNTS: TableName = TableName("report_counts");
    /// Summary rows of earlier runs, read from the summaries table's files.
    pub const STORED_SUMMARIES: TableName = TableName("stored_summaries");
    /// Every summary row, as written to scratch.
    pub const SUMMARIES: TableName = TableName("summaries");
    /// The report's summary rows alone, when they have a folder of their own.
    pub const REPORT_ROWS: TableName = TableName("report_rows");
    /// The training sample's summary rows, for features computed on the cluster.
    pub const TRAINING_ROWS: TableName = TableName("training_rows");
    /// Every event of the training window, for the evidence features.
    pub const EVIDENCE_EVENTS: TableName = TableName("evidence_events");
    /// The evidence's command-line rows counted straight from the training window's files
    /// (key counts gathering the evidence), when they can be.
    pub const EVIDENCE_COUNTS: TableName = TableName("evidence_counts");
    /// The [`EVIDENCE_LINES`] rows this run computed (all of them without a summaries
    /// table).
    pub const COMPUTED_LINES: TableName = TableName("computed_lines");
    /// The events counted per interval, group, parent and command-line template.
    pub const EVIDENCE_LINES: TableName = TableName("evidence_lines");
    /// [`EVIDENCE_LINES`] counted per interval, group and parent.
    pub const EVIDENCE_PARENTS: TableName = TableName("evidence_parents");
    /// [`EVIDENCE_LINES`] counted per interval and group.
    pub const EVIDENCE_GROUPS: TableName = TableName("evidence_groups");
    /// The evidence features of every summary group.
    pub const GROUP_EVIDENCE: TableName = TableName("group_evidence");
    /// The rarity features' totals over every summary row: per (Account, Process) its
    /// summary rows and events.
    pub const RARITY_PAIRS: TableName = TableName("rarity_pairs");
    /// The rarity features' totals: per Account its events.
    pub const RARITY_ACCOUNTS: TableName = TableName("rarity_accounts");
    /// The rarity features' totals: per (Computer, Process) its events.
    pub const RARITY_HOST_PROCESSES: TableName = TableName("rarity_host_processes");
    /// The rarity features' totals: per Computer its events.
    pub const RARITY_HOSTS: TableName = TableName("rarity_hosts");
    /// The rarity features' totals: per Process its distinct computers.
    pub const RARITY_PROCESS_HOSTS: TableName = TableName("rarity_process_hosts");
    /// The rarity features' totals: the distinct computers, one row.
    pub const RARITY_ALL_HOSTS: TableName = TableName("rarity_all_hosts");
    /// A category index: `index_<key column, lower case>` (value, groups, index).
    pub fn category_index(key: &str) -> String {
        format!("index_{}", key.to_lowercase())
    }
}

/// Checks that `schema` has every required column with an acceptable type; the error
/// names each missing or mistyped column.
pub fn check_schema(schema: &Schema) -> Result<(), String> {
    check_columns(schema, REQUIRED_COLUMNS)
}

/// Checks that `schema` has each of `columns` with an acceptable type; the error names
/// each missing or mistyped column.
pub fn check_columns(schema: &Schema, columns: &[(&str, ColumnKind)]) -> Result<(), String> {
    let mut problems = Vec::new();
    for (name, kind) in columns {
        match schema.field_with_name(name) {
            Err(_) => problems.push(format!("column `{name}` is missing")),
            Ok(field) if !kind.accepts(field.data_type()) => problems.push(format!(
                "column `{name}` is {} but must be {}",
                field.data_type(),
                kind.describe()
            )),
            Ok(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_string_keys_become_views() {
        let plain = event_schema();
        let schema = keys_as_views(&plain);
        for field in schema.fields() {
            let expected = if GROUP_KEYS.contains(&field.name().as_str()) {
                &DataType::Utf8View
            } else {
                plain.field_with_name(field.name()).unwrap().data_type()
            };
            assert_eq!(field.data_type(), expected, "{}", field.name());
        }
        // A key stored as another type is left alone (the checks reject it later).
        let odd = Schema::new(vec![Field::new(COMPUTER, DataType::Int32, true)]);
        assert_eq!(keys_as_views(&odd).field(0).data_type(), &DataType::Int32);
    }

    #[test]
    fn the_event_schema_passes_its_own_check() {
        check_schema(&event_schema()).unwrap();
    }

    #[test]
    fn missing_and_mistyped_columns_are_named() {
        let schema = Schema::new(vec![
            Field::new(TIME_GENERATED, DataType::Utf8, true),
            Field::new(COMPUTER, DataType::Utf8, true),
        ]);
        let err = check_schema(&schema).unwrap_err();
        assert!(
            err.contains("`TimeGenerated` is Utf8 but must be a timestamp"),
            "{err}"
        );
        assert!(err.contains("`Account` is missing"), "{err}");
        assert!(err.contains("`CommandLine` is missing"), "{err}");
        assert!(!err.contains("`Computer`"), "{err}");
    }
}
