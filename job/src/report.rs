//! Report helpers: interval formatting and the check against ground-truth labels.

use std::collections::HashSet;

use chrono::{DateTime, NaiveDate};

use crate::{
    generate::{GroupKey, Label},
    pipeline::scoring::ScoredRow,
};

/// An interval start as RFC 3339 (UTC).
pub fn format_interval(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| micros.to_string())
}

/// How the report compares with the labels of the report window's days.
#[derive(Debug, Clone, serde::Serialize, PartialEq)]
pub struct LabelCheck {
    /// Labelled groups whose day is in the report window.
    pub labelled_in_window: usize,
    /// Of those, how many the report holds (an hourly group counts for its day).
    pub labelled_reported: usize,
    /// `labelled_reported / labelled_in_window` (0 when none is labelled).
    pub recall: f64,
    /// Reported rows whose (day) group is labelled.
    pub reported_labelled: usize,
    /// `reported_labelled / reported` (0 when nothing is reported).
    pub precision: f64,
}

fn day_key(row: &ScoredRow) -> Option<GroupKey> {
    let day: NaiveDate = DateTime::from_timestamp_micros(row.interval_us)?.date_naive();
    Some(GroupKey {
        day,
        computer: row.computer.clone().unwrap_or_default(),
        account: row.account.clone().unwrap_or_default(),
        account_type: row.account_type.clone().unwrap_or_default(),
        process: row.process.clone().unwrap_or_default(),
    })
}

/// Compares the report with the labels whose day lies in `[first_day, last_day]`.
pub fn check_labels(
    report: &[ScoredRow],
    labels: &[Label],
    first_day: NaiveDate,
    last_day: NaiveDate,
) -> LabelCheck {
    let in_window: HashSet<&GroupKey> = labels
        .iter()
        .map(|l| &l.key)
        .filter(|k| k.day >= first_day && k.day <= last_day)
        .collect();
    let reported: Vec<GroupKey> = report.iter().filter_map(day_key).collect();
    let reported_set: HashSet<&GroupKey> = reported.iter().collect();
    let labelled_reported = in_window
        .iter()
        .filter(|k| reported_set.contains(*k))
        .count();
    let reported_labelled = reported.iter().filter(|k| in_window.contains(k)).count();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    LabelCheck {
        labelled_in_window: in_window.len(),
        labelled_reported,
        recall: ratio(labelled_reported, in_window.len()),
        reported_labelled,
        precision: ratio(reported_labelled, reported.len()),
    }
}
