//! Anomalies as JSON lines, one object per anomaly in report order.

use std::io::Write;

use procforest_pipeline::{
    ScoredRow,
    report::{GroupLines, format_interval},
};

use procforest_pipeline::error::Context;

use crate::error::Result;

/// The JSON object of one anomaly (fields in this order).
#[derive(Debug, serde::Serialize)]
pub struct Record<'a> {
    /// Interval start, RFC 3339.
    pub interval: String,
    /// `Computer`.
    pub computer: Option<&'a str>,
    /// `Account`.
    pub account: Option<&'a str>,
    /// `AccountType`.
    pub account_type: Option<&'a str>,
    /// `Process`.
    pub process: Option<&'a str>,
    /// Distinct command lines, sorted.
    pub command_lines: &'a GroupLines,
    /// Events in the group.
    pub count: i64,
    /// scikit-learn's `score_samples` value (lower is more anomalous).
    pub score: f64,
    /// The model's inputs by name.
    pub features: std::collections::BTreeMap<&'a str, f64>,
    /// Each feature's share of the splits that isolated the group, averaged over trees.
    pub explanation: std::collections::BTreeMap<&'a str, f64>,
    /// What the evidence features found (novel templates, rare parent, first seen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<&'a procforest_pipeline::stages::evidence::Evidence>,
}

/// The record of one anomaly; `names` are the feature names.
pub fn record<'a>(row: &'a ScoredRow, names: &[&'a str]) -> Record<'a> {
    Record {
        interval: format_interval(row.interval_us),
        computer: row.computer.as_deref(),
        account: row.account.as_deref(),
        account_type: row.account_type.as_deref(),
        process: row.process.as_deref(),
        command_lines: &row.command_lines,
        count: row.count,
        score: row.score,
        features: names
            .iter()
            .copied()
            .zip(row.features.iter().copied())
            .collect(),
        explanation: names
            .iter()
            .copied()
            .zip(row.explanation.iter().copied())
            .collect(),
        evidence: row.evidence.as_ref(),
    }
}

/// Writes the anomalies as JSON lines to `out`.
pub fn write(rows: &[ScoredRow], names: &[&str], out: &mut impl Write) -> Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, &record(row, names)).runtime("writing JSON")?;
        out.write_all(b"\n").runtime("writing JSON")?;
    }
    Ok(out.flush().runtime("writing JSON")?)
}

/// The anomalies as JSON lines in a file, or on stdout for `-`.
pub struct JsonLines(pub String);

#[async_trait::async_trait]
impl crate::sink::Sink for JsonLines {
    async fn deliver(&mut self, report: &procforest_pipeline::Report) -> Result<()> {
        let names = &report.feature_names;
        if self.0 == "-" {
            return write(&report.anomalies, names, &mut std::io::stdout().lock());
        }
        let mut bytes = Vec::new();
        write(&report.anomalies, names, &mut bytes)?;
        Ok(procforest_pipeline::files::write_file(
            self.0.as_ref(),
            &bytes,
        )?)
    }
}
