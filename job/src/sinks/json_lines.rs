//! Anomalies as JSON lines, one object per anomaly in report order.

use std::io::Write;

use procforest_core::events::SEED_FEATURES;

use crate::{
    error::{Context, Result},
    pipeline::scoring::ScoredRow,
    report::format_interval,
};

/// The JSON object of one anomaly.
pub fn record(row: &ScoredRow) -> serde_json::Value {
    let features: serde_json::Map<String, serde_json::Value> = SEED_FEATURES
        .iter()
        .zip(&row.features)
        .map(|(name, v)| (name.to_string(), serde_json::json!(v)))
        .collect();
    serde_json::json!({
        "interval": format_interval(row.interval_us),
        "computer": row.computer,
        "account": row.account,
        "account_type": row.account_type,
        "process": row.process,
        "command_lines": row.command_lines,
        "count": row.count,
        "score": row.score,
        "features": features,
    })
}

/// Writes the anomalies as JSON lines to `out`.
pub fn write(rows: &[ScoredRow], out: &mut impl Write) -> Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, &record(row)).runtime("writing JSON")?;
        out.write_all(b"\n").runtime("writing JSON")?;
    }
    out.flush().runtime("writing JSON")
}
