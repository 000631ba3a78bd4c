//! The run manifest: what was read, how, what came out and how long each phase took.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::source::Pruning;

/// Null and empty values of a key column among the summary rows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KeyGaps {
    /// Rows whose value is null.
    pub null: u64,
    /// Rows whose value is the empty string.
    pub empty: u64,
}

/// The model as trained.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// SHA-256 of the model's binary form.
    pub hash: String,
    /// Trees.
    pub trees: usize,
    /// Rows per tree, as used.
    pub max_samples: usize,
    /// Decision offset.
    pub offset: f64,
    /// Rows gathered for training.
    pub training_rows: usize,
    /// Warnings scikit-learn would have given.
    pub warnings: Vec<String>,
    /// Size of the model as carried in the plan, bytes.
    pub payload_bytes: usize,
}

/// Everything about a run.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Unique id of the run.
    pub run_id: String,
    /// procforest version.
    pub procforest_version: &'static str,
    /// When the run started and finished (RFC 3339).
    pub started_at: String,
    /// When it finished.
    pub finished_at: String,
    /// The table read.
    pub table: String,
    /// Its snapshot version.
    pub table_version: i64,
    /// Files and pruning.
    pub files: Pruning,
    /// How the summaries were computed: `by_interval` (every file inside one interval:
    /// history and report apart, no shuffle) or `whole`.
    pub summary_sources: crate::stages::summaries::Sources,
    /// How the history's counts were computed, for `by_interval`: `key_counts` (read
    /// straight from the files' dictionaries) or `group_by` (DataFusion's, when a key or
    /// the time is a partition column).
    pub history_counts: Option<crate::stages::summaries::HistoryCounts>,
    /// Whose command lines the report gathered: every report group's with the summaries,
    /// or only the anomalies' after scoring (with a set contamination).
    pub command_lines: crate::stages::summaries::LineGathering,
    /// Events summarised.
    pub events: u64,
    /// Summary rows (groups).
    pub groups: u64,
    /// Summary rows in the report window.
    pub report_groups: u64,
    /// Categories per key column.
    pub categories: BTreeMap<String, u64>,
    /// Null and empty keys per column.
    pub null_or_empty_keys: BTreeMap<String, KeyGaps>,
    /// The model.
    pub model: ModelInfo,
    /// Anomalies reported.
    pub anomalies: usize,
    /// The report groups' scores, when counted ([`crate::RunConfig::score_histogram`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_histogram: Option<crate::stages::scoring::ScoreHistogram>,
    /// The report window `(start, end]` (RFC 3339) and its first interval.
    pub report_window: ReportWindow,
    /// Recall and precision against ground-truth labels, when a front end attached them
    /// (procforest-datasets's label check).
    pub labels: Option<serde_json::Value>,
    /// The label check in a line, for [`Manifest::summary`].
    #[serde(skip)]
    pub label_summary: Option<String>,
    /// Seconds per phase.
    pub phases: BTreeMap<&'static str, f64>,
    /// Every setting.
    pub settings: serde_json::Value,
    /// Azure Monitor delivery: records, delivered, dead letter and error.
    pub azure_monitor: Option<serde_json::Value>,
    /// What the run did with the summaries table, when given one.
    pub summaries_table: Option<SummariesTable>,
}

/// What a run did with the summaries table (`--summaries`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct SummariesTable {
    /// The table's location.
    pub location: String,
    /// Whether nothing in it could be used (new, or of another source or interval).
    pub rebuilt: bool,
    /// Intervals whose rows were read from it.
    pub intervals_read: usize,
    /// Intervals counted from the events (changed, new, or in the report).
    pub intervals_counted: usize,
    /// Intervals whose rows were dropped (no events left in the run's window).
    pub intervals_dropped: usize,
    /// Intervals whose command-line rows were read from it (evidence features only).
    pub line_intervals_read: Option<usize>,
    /// Intervals whose command-line rows were computed from the events.
    pub line_intervals_computed: Option<usize>,
    /// Rows the run wrote to it.
    pub rows_written: usize,
    /// The version it wrote; `None` when another run's commit won.
    pub version_written: Option<i64>,
}

/// The report window.
#[derive(Debug, Clone, Serialize)]
pub struct ReportWindow {
    /// Exclusive start.
    pub start: String,
    /// Inclusive end (the as-of time).
    pub end: String,
    /// Start of the first reported interval.
    pub first_interval: String,
}

impl Manifest {
    /// A few lines for stderr.
    pub fn summary(&self) -> String {
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}s"))
            .collect();
        let mut s = format!(
            "run {}: table {} v{}, {} of {} files ({} pruned by partition, {} by statistics), \
             {} events, {} groups ({} in report window), model {} (offset {}), {} anomalies\n\
             phases: {}",
            self.run_id,
            self.table,
            self.table_version,
            self.files.files_scanned,
            self.files.files_total,
            self.files.pruned_by_partition,
            self.files.pruned_by_statistics,
            self.events,
            self.groups,
            self.report_groups,
            &self.model.hash[..12.min(self.model.hash.len())],
            self.model.offset,
            self.anomalies,
            phases.join(", ")
        );
        let gaps: Vec<String> = self
            .null_or_empty_keys
            .iter()
            .filter(|(_, g)| g.null + g.empty > 0)
            .map(|(k, g)| format!("{k}: {} null, {} empty", g.null, g.empty))
            .collect();
        if !gaps.is_empty() {
            s.push_str(&format!(
                "\nkeys kept as their own category: {}",
                gaps.join("; ")
            ));
        }
        if let Some(line) = &self.label_summary {
            s.push_str(&format!("\nlabels: {line}"));
        }
        s
    }
}
