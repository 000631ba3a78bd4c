//! The report: the anomalies in report order, each with its features, explanation and
//! command lines, the model that scored them and the run's manifest. What sinks deliver.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use iforest::Model;

use crate::manifest::Manifest;
pub use crate::stages::scoring::{GroupLines, ScoredRow, sort_report};

/// An interval start as RFC 3339 (UTC).
pub fn format_interval(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// What a run produced, for the sinks.
pub struct Report {
    /// The anomalies, in report order ([`sort_report`]).
    pub anomalies: Vec<ScoredRow>,
    /// The model's feature names, in its column order.
    pub feature_names: Vec<&'static str>,
    /// The model.
    pub model: Arc<Model>,
    /// The manifest so far: sinks add the outputs' phase and delivery results.
    pub manifest: Manifest,
    /// The as-of time.
    pub as_of: DateTime<Utc>,
    /// Start of the first reported interval, microseconds.
    pub first_interval_us: i64,
    /// The report window `(as-of − window, as-of]`, microseconds.
    pub window_us: (i64, i64),
}

impl Report {
    /// The run's unique id.
    pub fn run_id(&self) -> &str {
        &self.manifest.run_id
    }
}
