//! The record sent to Log Analytics for each anomaly.
//!
//! It keeps the notebook's fields (`TimeStamp`, `User`, `Resource`, `AnomalyScore`) and adds
//! the rest of the report. String fields are cut to 64 KB with a marker.

use sha2::{Digest, Sha256};

use procforest_pipeline::{ScoredRow, report::format_interval};

/// Longest string field, in bytes.
pub const MAX_FIELD_BYTES: usize = 64 * 1024;
/// Appended to a cut field.
pub const CUT_MARKER: &str = "…[cut]";

/// One anomaly as the stream's columns (see `deploy/azure/` for the table).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MonitorRecord {
    /// When the run produced the record (RFC 3339).
    #[serde(rename = "TimeGenerated")]
    pub time_generated: String,
    /// The notebook's name for the interval start.
    #[serde(rename = "TimeStamp")]
    pub time_stamp: String,
    /// The notebook's name for the account.
    #[serde(rename = "User")]
    pub user: String,
    /// The notebook's name for the computer.
    #[serde(rename = "Resource")]
    pub resource: String,
    /// The original paper's anomaly score, `−Score`, in (0, 1]; higher is more anomalous.
    #[serde(rename = "AnomalyScore")]
    pub anomaly_score: f64,
    /// Interval start (RFC 3339).
    #[serde(rename = "Interval")]
    pub interval: String,
    /// `Computer`.
    #[serde(rename = "Computer")]
    pub computer: String,
    /// `Account`.
    #[serde(rename = "Account")]
    pub account: String,
    /// `AccountType`.
    #[serde(rename = "AccountType")]
    pub account_type: String,
    /// `Process`.
    #[serde(rename = "Process")]
    pub process: String,
    /// The group's distinct command lines, one per line.
    #[serde(rename = "CommandLines")]
    pub command_lines: String,
    /// Events in the group.
    #[serde(rename = "EventCount")]
    pub event_count: i64,
    /// scikit-learn's `score_samples` value; lower is more anomalous.
    #[serde(rename = "Score")]
    pub score: f64,
    /// The run.
    #[serde(rename = "RunId")]
    pub run_id: String,
    /// A stable hash of run and group: the same anomaly of the same run, the same id.
    #[serde(rename = "RecordId")]
    pub record_id: String,
    /// The model's content hash.
    #[serde(rename = "ModelHash")]
    pub model_hash: String,
    /// The features that isolated the group, largest share first: `name=share; …`.
    #[serde(rename = "Explanation")]
    pub explanation: String,
    /// What the evidence features found, for people (empty for other feature sets).
    #[serde(rename = "Evidence")]
    pub evidence: String,
}

/// Cuts `text` to at most [`MAX_FIELD_BYTES`] bytes (on a character boundary), marking the cut.
pub fn cut(text: &str) -> String {
    if text.len() <= MAX_FIELD_BYTES {
        return text.to_string();
    }
    let mut end = MAX_FIELD_BYTES - CUT_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end])
}

/// A stable id of (run, group).
pub fn record_id(run_id: &str, row: &ScoredRow) -> String {
    let mut h = Sha256::new();
    for part in [
        Some(run_id),
        Some(&row.interval_us.to_string()),
        row.computer.as_deref(),
        row.account.as_deref(),
        row.account_type.as_deref(),
        row.process.as_deref(),
    ] {
        match part {
            Some(p) => {
                h.update((p.len() as u64).to_le_bytes());
                h.update(p.as_bytes());
            }
            None => h.update([0xff]),
        }
    }
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl MonitorRecord {
    /// The record of one anomaly of a run.
    pub fn from_row(
        row: &ScoredRow,
        names: &[&str],
        run_id: &str,
        model_hash: &str,
        now: &str,
    ) -> Self {
        let mut shares: Vec<(&str, f64)> = names
            .iter()
            .copied()
            .zip(row.explanation.iter().copied())
            .collect();
        shares.sort_by(|a, b| b.1.total_cmp(&a.1));
        let explanation = shares
            .iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(n, s)| format!("{n}={s:.3}"))
            .collect::<Vec<_>>()
            .join("; ");
        let interval = format_interval(row.interval_us);
        let text = |v: &Option<String>| cut(v.as_deref().unwrap_or(""));
        Self {
            time_generated: now.to_string(),
            time_stamp: interval.clone(),
            user: text(&row.account),
            resource: text(&row.computer),
            anomaly_score: -row.score,
            interval,
            computer: text(&row.computer),
            account: text(&row.account),
            account_type: text(&row.account_type),
            process: text(&row.process),
            command_lines: cut(&row.command_lines.join("\n")),
            event_count: row.count,
            score: row.score,
            run_id: run_id.to_string(),
            record_id: record_id(run_id, row),
            model_hash: model_hash.to_string(),
            explanation,
            evidence: cut(&row
                .evidence
                .as_ref()
                .map(|e| e.summary(row.process.as_deref()))
                .unwrap_or_default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_fields_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_FIELD_BYTES);
        let c = cut(&long);
        assert!(c.len() <= MAX_FIELD_BYTES);
        assert!(c.ends_with(CUT_MARKER));
        assert_eq!(cut("short"), "short");
    }
}
