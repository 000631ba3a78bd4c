//! Anomalies to Azure Monitor through the Logs Ingestion API.
//!
//! Records ([`record`]) are packed into JSON arrays of at most 1,000,000 bytes
//! ([`chunks`]), gzip-compressed and posted to
//! `{endpoint}/dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01` with an
//! Entra ID bearer token ([`tokens`]) for `https://monitor.azure.com/.default`. The client
//! ([`client`]) retries what the service says is transient, splits what is too large and
//! stops on what it refuses. Whatever is not delivered is written to a dead-letter file
//! that `procforest resend` delivers later; the run then fails.
//!
//! The service does not deduplicate: a request whose response was lost after ingestion
//! can arrive twice. Every record carries a `RecordId` (a hash of run and group) so such
//! duplicates can be removed in queries (`summarize arg_max(TimeGenerated, *) by RecordId`).

pub mod chunks;
pub mod client;
pub mod record;
pub mod tokens;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use client::{Delivery, MonitorClient, RetryPolicy};
pub use record::MonitorRecord;

use procforest_pipeline::error::Context;

use crate::error::{Result, Setting, SinkError};

/// The Azure Monitor sink of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonitorOutput {
    /// Where and how.
    pub settings: MonitorSettings,
    /// Dead-letter file (default in the current folder, named after the run).
    pub dead_letter: Option<PathBuf>,
}

/// Where and how to send.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonitorSettings {
    /// Data collection endpoint (or DCR endpoint), `https://…`.
    pub endpoint: String,
    /// The data collection rule's immutable id (`dcr-…`).
    pub dcr: String,
    /// The stream, `Custom-…`.
    pub stream: String,
    /// Allow `http://` endpoints and authority (loopback tests only).
    pub allow_http: bool,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Bound on the total time spent delivering.
    pub max_time: Duration,
}

impl MonitorSettings {
    /// The upload URL, after checking the settings.
    pub fn upload_url(&self) -> Result<url::Url> {
        let endpoint = url::Url::parse(&self.endpoint)
            .map_err(|e| SinkError::setting(Setting::MonitorEndpoint, &self.endpoint, e))?;
        match endpoint.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            "http" => {
                return Err(SinkError::PlainHttp {
                    endpoint: self.endpoint.clone(),
                });
            }
            other => {
                return Err(SinkError::bad_setting(
                    Setting::MonitorEndpoint,
                    format!("{}: scheme {other} is not https", self.endpoint),
                ));
            }
        }
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        };
        if !valid(&self.dcr) {
            return Err(SinkError::bad_setting(
                Setting::MonitorDcr,
                format!("{:?}: expected the rule's immutable id (dcr-…)", self.dcr),
            ));
        }
        if !self.stream.starts_with("Custom-") || !valid(&self.stream) {
            return Err(SinkError::bad_setting(
                Setting::MonitorStream,
                format!("{:?}: expected Custom-NAME", self.stream),
            ));
        }
        let base = self.endpoint.trim_end_matches('/');
        url::Url::parse(&format!(
            "{base}/dataCollectionRules/{}/streams/{}?api-version=2023-01-01",
            self.dcr, self.stream
        ))
        .map_err(|e| SinkError::setting(Setting::MonitorEndpoint, &self.endpoint, e))
    }
}

/// Writes undelivered records as JSON lines (what `procforest resend` reads).
pub fn write_dead_letter(path: &Path, records: &[MonitorRecord]) -> Result<()> {
    let mut bytes = Vec::new();
    for r in records {
        serde_json::to_writer(&mut bytes, r).runtime("writing dead letters")?;
        bytes.push(b'\n');
    }
    Ok(procforest_pipeline::files::write_file(path, &bytes)?)
}

/// Reads a dead-letter file.
pub fn read_dead_letter(path: &Path) -> Result<Vec<MonitorRecord>> {
    let text = std::fs::read_to_string(path).bad_input(format!("{}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                SinkError::bad_input(format!("{}, line {}: {e}", path.display(), i + 1))
            })
        })
        .collect()
}

/// Delivers `records`; on any failure, writes the undelivered ones to `dead_letter` and
/// returns an error listing their RecordIds. Returns how many were delivered.
pub async fn deliver_or_dead_letter(
    settings: &MonitorSettings,
    records: Vec<MonitorRecord>,
    dead_letter: &Path,
) -> Result<usize> {
    let client = MonitorClient::new(settings).await?;
    let delivery = client.deliver(records).await;
    if delivery.undelivered.is_empty() {
        return Ok(delivery.delivered.len());
    }
    let failed: Vec<MonitorRecord> = delivery
        .undelivered
        .iter()
        .map(|(r, _)| r.clone())
        .collect();
    write_dead_letter(dead_letter, &failed)?;
    let mut reasons: Vec<&str> = delivery
        .undelivered
        .iter()
        .map(|(_, why)| why.as_str())
        .collect();
    reasons.sort_unstable();
    reasons.dedup();
    Err(SinkError::runtime(format!(
        "Azure Monitor: {} of {} records not delivered ({}); written to {} for `procforest \
         resend`; RecordIds: {}",
        failed.len(),
        failed.len() + delivery.delivered.len(),
        reasons.join("; "),
        dead_letter.display(),
        first_ids(&failed)
    )))
}

/// The first RecordIds, enough to find them in the dead-letter file and the table.
fn first_ids(records: &[MonitorRecord]) -> String {
    const SHOWN: usize = 10;
    let ids: Vec<&str> = records
        .iter()
        .take(SHOWN)
        .map(|r| r.record_id.as_str())
        .collect();
    match records.len().checked_sub(SHOWN) {
        Some(more) if more > 0 => format!("{} and {more} more", ids.join(", ")),
        _ => ids.join(", "),
    }
}

/// Sends the report's anomalies; returns the manifest's record of the delivery and, if it
/// failed, the error (the undelivered records are then in the dead-letter file).
pub async fn deliver_report(
    report: &procforest_pipeline::Report,
    monitor: &MonitorOutput,
) -> (serde_json::Value, Option<SinkError>) {
    let run_id = report.run_id();
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let records: Vec<_> = report
        .anomalies
        .iter()
        .map(|r| {
            MonitorRecord::from_row(
                r,
                &report.feature_names,
                run_id,
                &report.manifest.model.hash,
                &now,
            )
        })
        .collect();
    let total = records.len();
    let dead_letter = monitor
        .dead_letter
        .clone()
        .unwrap_or_else(|| format!("procforest-dead-letter-{run_id}.jsonl").into());
    match deliver_or_dead_letter(&monitor.settings, records, &dead_letter).await {
        Ok(delivered) => (
            serde_json::json!({"records": total, "delivered": delivered}),
            None,
        ),
        Err(e) => (
            serde_json::json!({
                "records": total,
                "dead_letter": dead_letter.display().to_string(),
                "error": e.to_string(),
            }),
            Some(e),
        ),
    }
}
