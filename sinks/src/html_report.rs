//! The run as one self-contained HTML page for an analyst: the run's facts, the score
//! distribution with the threshold, anomalies per host and process, the last 30 nights
//! (from the anomalies table, when the run writes one), and the anomalies themselves,
//! sortable, each with its explanation drawn as bars and its command lines expandable.
//! No external script, style or font: the page opens offline in a SOC.

mod charts;

use std::{collections::HashMap, fmt::Write, path::PathBuf};

use chrono::Days;
use procforest_pipeline::{Report, ScoredRow, files::write_file, report::format_interval};

use crate::{anomaly_delta, error::Result};

/// Anomalies shown in the table; the JSON, Delta and Azure Monitor outputs hold them all.
pub const MAX_ROWS: usize = 5_000;
/// Command lines shown per anomaly.
pub const MAX_LINES: usize = 50;
/// Characters shown of one command line.
pub const MAX_LINE_CHARS: usize = 4_000;
/// Nights drawn from the anomalies table.
pub const NIGHTS: u64 = 30;
/// Hosts and processes drawn in the per-host and per-process charts.
const TOP: usize = 15;

const STYLE: &str = include_str!("html_report/page.css");
const SCRIPT: &str = include_str!("html_report/page.js");

/// The page, written after the anomalies table so that tonight is among its nights.
pub struct HtmlReport {
    /// Where the page goes.
    pub path: PathBuf,
    /// The anomalies table this run writes, read back for the nights chart.
    pub anomalies_table: Option<String>,
}

#[async_trait::async_trait]
impl crate::sink::Sink for HtmlReport {
    async fn deliver(&mut self, report: &Report) -> Result<()> {
        let nights = match &self.anomalies_table {
            Some(location) => {
                let last = report.as_of.date_naive();
                let first = last - Days::new(NIGHTS - 1);
                Some(anomaly_delta::anomalies_per_night(location, first, last).await?)
            }
            None => None,
        };
        Ok(write_file(
            &self.path,
            render(report, nights.as_deref()).as_bytes(),
        )?)
    }
}

/// The page for `report`, with anomalies per night `(YYYY-MM-DD, anomalies)` when known.
pub fn render(report: &Report, nights: Option<&[(String, u64)]>) -> String {
    let m = &report.manifest;
    let mut page = String::with_capacity(64 * 1024);
    let _ = write!(
        page,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>procforest: {} anomalies, {} as of {}</title><style>{STYLE}</style></head><body>\
         <h1>procforest: {} anomalies</h1><p class=\"subtitle\">{} · version {} · as of {} · run {}</p>",
        report.anomalies.len(),
        escape(&m.table),
        escape(&m.report_window.end),
        report.anomalies.len(),
        escape(&m.table),
        m.table_version,
        escape(&m.report_window.end),
        escape(&m.run_id),
    );
    facts(&mut page, report);
    page.push_str("<div class=\"charts\"><section><h2>Scores of the report's groups</h2>");
    match &m.score_histogram {
        Some(histogram) => page.push_str(&charts::score_histogram(histogram, m.model.offset)),
        None => page.push_str("<p class=\"note\">Not counted in this run.</p>"),
    }
    page.push_str("</section>");
    if let Some(nights) = nights {
        page.push_str("<section><h2>Anomalies per night (the anomalies table)</h2>");
        page.push_str(&charts::nights(nights));
        page.push_str("</section>");
    }
    for (id, title, key) in [
        ("per-host", "Anomalies per host", 0),
        ("per-process", "Anomalies per process", 1),
    ] {
        let items = top_counts(&report.anomalies, key);
        if !items.is_empty() {
            let _ = write!(page, "<section><h2>{title}</h2>");
            page.push_str(&charts::bars(id, title, &items));
            page.push_str("</section>");
        }
    }
    page.push_str("</div>");
    anomalies_table(&mut page, report);
    run_details(&mut page, report);
    let _ = writeln!(page, "<script>{SCRIPT}</script></body></html>");
    page
}

/// The run's numbers at a glance.
fn facts(page: &mut String, report: &Report) {
    let m = &report.manifest;
    let share = if m.report_groups > 0 {
        format!(
            " ({:.1} % of {})",
            100.0 * m.anomalies as f64 / m.report_groups as f64,
            m.report_groups
        )
    } else {
        String::new()
    };
    let facts = [
        ("anomalies", format!("{}{share}", m.anomalies)),
        (
            "report window",
            format!("({}, {}]", m.report_window.start, m.report_window.end),
        ),
        ("events", m.events.to_string()),
        (
            "groups",
            format!("{} ({} reported)", m.groups, m.report_groups),
        ),
        (
            "files read",
            format!("{} of {}", m.files.files_scanned, m.files.files_total),
        ),
        (
            "model",
            format!(
                "{} trees × {} rows, offset {:.4}",
                m.model.trees, m.model.max_samples, m.model.offset
            ),
        ),
        ("features", report.feature_names.join(", ")),
        ("model hash", m.model.hash.chars().take(16).collect()),
        ("procforest", m.procforest_version.to_string()),
        ("started", m.started_at.clone()),
    ];
    page.push_str("<dl class=\"facts\">");
    for (name, value) in facts {
        let _ = write!(
            page,
            "<div><dt>{name}</dt><dd>{}</dd></div>",
            escape(&value)
        );
    }
    page.push_str("</dl>");
}

/// The hosts (`key` 0) or processes (1) with the most anomalies, most first.
fn top_counts(rows: &[ScoredRow], key: usize) -> Vec<(String, u64)> {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for row in rows {
        let value = if key == 0 {
            &row.computer
        } else {
            &row.process
        };
        *counts
            .entry(value.as_deref().unwrap_or("(null)"))
            .or_default() += 1;
    }
    let mut items: Vec<(String, u64)> = counts.into_iter().map(|(k, v)| (k.into(), v)).collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(TOP);
    items
}

/// The anomalies, in report order; the headers sort them.
fn anomalies_table(page: &mut String, report: &Report) {
    let shown = report.anomalies.len().min(MAX_ROWS);
    let _ = write!(page, "<section><h2>Anomalies</h2>");
    if shown < report.anomalies.len() {
        let _ = write!(
            page,
            "<p class=\"note\">The {shown} lowest scores of {} anomalies; the JSON, Delta and \
             Azure Monitor outputs hold them all.</p>",
            report.anomalies.len()
        );
    }
    if report.anomalies.is_empty() {
        page.push_str("<p>No anomalies in the report window.</p></section>");
        return;
    }
    page.push_str(
        "<table id=\"anomalies\"><thead><tr>\
         <th data-type=\"text\">interval</th><th data-type=\"text\">computer</th>\
         <th data-type=\"text\">account</th><th data-type=\"text\">type</th>\
         <th data-type=\"text\">process</th><th data-type=\"number\">events</th>\
         <th data-type=\"number\" aria-sort=\"ascending\">score</th>\
         <th>isolated by</th><th>evidence and command lines</th></tr></thead><tbody>",
    );
    for row in &report.anomalies[..shown] {
        anomaly_row(page, row, &report.feature_names);
    }
    page.push_str("</tbody></table></section>");
}

fn anomaly_row(page: &mut String, row: &ScoredRow, names: &[&str]) {
    let interval = format_interval(row.interval_us);
    page.push_str("<tr class=\"anomaly\">");
    let _ = write!(page, "<td data-v=\"{0}\">{0}</td>", escape(&interval));
    for key in [&row.computer, &row.account, &row.account_type, &row.process] {
        let text = escape(key.as_deref().unwrap_or("(null)"));
        let _ = write!(page, "<td data-v=\"{text}\">{text}</td>");
    }
    let _ = write!(
        page,
        "<td class=\"num\" data-v=\"{0}\">{0}</td><td class=\"num\" data-v=\"{1}\">{1:.4}</td>",
        row.count, row.score
    );
    explanation(page, row, names);
    page.push_str("<td>");
    if let Some(evidence) = &row.evidence {
        let summary = evidence.summary(row.process.as_deref());
        if !summary.is_empty() {
            let _ = write!(page, "<div class=\"evidence\">{}</div>", escape(&summary));
        }
    }
    command_lines(page, row);
    page.push_str("</td></tr>");
}

/// Each feature's share of the isolating splits as a bar (the largest full width and
/// highlighted: shares of a dozen features are all small).
fn explanation(page: &mut String, row: &ScoredRow, names: &[&str]) {
    let top = row
        .explanation
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1));
    let largest = top.map_or(1.0, |(_, share)| *share).max(f64::MIN_POSITIVE);
    let top = top.map(|(i, _)| i);
    page.push_str("<td><div class=\"shares\">");
    for (i, (name, share)) in names.iter().zip(&row.explanation).enumerate() {
        let class = if Some(i) == top { "share top" } else { "share" };
        let _ = write!(
            page,
            "<span>{}</span><div class=\"{class}\" style=\"width:{:.0}%\"></div><span>{share:.2}</span>",
            escape(name),
            (share / largest * 100.0).clamp(0.0, 100.0)
        );
    }
    page.push_str("</div></td>");
}

fn command_lines(page: &mut String, row: &ScoredRow) {
    let lines: Vec<&str> = row.command_lines.iter().collect();
    if lines.is_empty() {
        return;
    }
    let noun = if lines.len() == 1 { "line" } else { "lines" };
    let _ = write!(
        page,
        "<details><summary>{} command {noun}</summary>",
        lines.len()
    );
    for line in lines.iter().take(MAX_LINES) {
        let shown: String = line.chars().take(MAX_LINE_CHARS).collect();
        let cut = if shown.len() < line.len() { "…" } else { "" };
        let _ = write!(page, "<code>{}{cut}</code>", escape(&shown));
    }
    if lines.len() > MAX_LINES {
        let _ = write!(
            page,
            "<p class=\"note\">+{} more in the JSON output</p>",
            lines.len() - MAX_LINES
        );
    }
    page.push_str("</details>");
}

/// Timings per phase and every setting.
fn run_details(page: &mut String, report: &Report) {
    let m = &report.manifest;
    let phases: Vec<(String, u64)> = m
        .phases
        .iter()
        .map(|(name, seconds)| {
            (
                format!("{name} ({seconds:.2} s)"),
                (seconds * 1000.0) as u64,
            )
        })
        .collect();
    page.push_str("<section><h2>The run</h2><p class=\"note\">Phases in milliseconds.</p>");
    page.push_str(&charts::bars("phases", "Time per phase", &phases));
    let settings = serde_json::to_string_pretty(&m.settings).unwrap_or_default();
    let _ = write!(
        page,
        "<details><summary>Settings</summary><pre>{}</pre></details></section>",
        escape(&settings)
    );
}

/// `text` safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
