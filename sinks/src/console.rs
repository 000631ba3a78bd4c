//! The console table of anomalies.

use std::fmt::Write;

use procforest_pipeline::{ScoredRow, report::format_interval};

/// The feature with the largest share of the isolating splits, as `name share`.
pub fn top_feature(row: &ScoredRow, names: &[&str]) -> String {
    row.explanation
        .iter()
        .zip(names)
        .max_by(|a, b| a.0.total_cmp(b.0))
        .map(|(share, name)| format!("{name} {share:.2}"))
        .unwrap_or_default()
}

/// Renders the anomalies as a table no wider than `width` (command lines are cut).
pub fn render(rows: &[ScoredRow], names: &[&str], width: usize) -> String {
    let headers = [
        "interval",
        "computer",
        "account",
        "type",
        "process",
        "count",
        "score",
        "isolated by",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                format_interval(r.interval_us),
                r.computer.clone().unwrap_or_else(|| "(null)".into()),
                r.account.clone().unwrap_or_else(|| "(null)".into()),
                r.account_type.clone().unwrap_or_else(|| "(null)".into()),
                r.process.clone().unwrap_or_else(|| "(null)".into()),
                r.count.to_string(),
                format!("{:.4}", r.score),
                top_feature(r, names),
            ]
        })
        .collect();
    let mut widths = headers.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count()).min(48);
        }
    }
    let fixed: usize = widths.iter().sum::<usize>() + 2 * widths.len();
    let command_width = width.saturating_sub(fixed).max(20);
    let mut out = String::new();
    let mut line = |cols: &[String], last: &str| {
        let mut s = String::new();
        for (c, w) in cols.iter().zip(widths) {
            let c: String = c.chars().take(w).collect();
            let _ = write!(s, "{c:<w$}  ");
        }
        let last: String = last.chars().take(command_width).collect();
        s.push_str(&last);
        out.push_str(s.trim_end());
        out.push('\n');
    };
    line(&headers.map(String::from), "evidence: command lines");
    for (row, r) in cells.iter().zip(rows) {
        let evidence = r
            .evidence
            .as_ref()
            .map(|e| e.summary(r.process.as_deref()))
            .filter(|s| !s.is_empty());
        let commands = match evidence {
            Some(evidence) => format!("[{evidence}] {}", r.command_lines.join(" | ")),
            None => r.command_lines.join(" | "),
        };
        let commands = if commands.chars().count() > command_width {
            let cut: String = commands
                .chars()
                .take(command_width.saturating_sub(1))
                .collect();
            format!("{cut}…")
        } else {
            commands
        };
        line(row, &commands);
    }
    out
}

/// The terminal width from `COLUMNS`, or 160.
pub fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .filter(|&w: &usize| w >= 40)
        .unwrap_or(160)
}

/// The console table on stdout (or a line saying there are no anomalies).
pub struct Console;

#[async_trait::async_trait]
impl crate::sink::Sink for Console {
    async fn deliver(&mut self, report: &procforest_pipeline::Report) -> crate::error::Result<()> {
        if report.anomalies.is_empty() {
            println!("{}", no_anomalies_line(report));
        } else {
            print!(
                "{}",
                render(&report.anomalies, &report.feature_names, terminal_width())
            );
        }
        Ok(())
    }
}

/// "no anomalies in (start, end]" for an empty report.
pub fn no_anomalies_line(report: &procforest_pipeline::Report) -> String {
    let (start, end) = report.window_us;
    format!(
        "no anomalies in ({}, {}]",
        format_interval(start),
        format_interval(end)
    )
}
