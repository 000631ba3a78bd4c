//! Ground truth of a generated table: which summary groups hold injected activity.
//!
//! Written as Parquet at [`LABELS_PATH`] inside the table folder (Delta readers ignore
//! paths starting with `_`), with the generator's settings beside it.

use std::{collections::HashSet, sync::Arc};

use arrow::{
    array::{Array, AsArray, Date32Array, Int64Array, RecordBatch, StringArray},
    datatypes::{DataType, Date32Type, Field, Int64Type, Schema},
};
use chrono::{DateTime, NaiveDate};
use procforest_core::schema::{ACCOUNT, ACCOUNT_TYPE, COMPUTER, PROCESS};
use procforest_pipeline::ScoredRow;

/// Where the labels are, relative to the table's root.
pub const LABELS_PATH: &str = "_procforest/labels.parquet";

/// A labelled summary group: day × Computer × Account × AccountType × Process (an hourly
/// run's groups are labelled by their day).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct LabelKey {
    /// The UTC day.
    pub day: NaiveDate,
    /// `Computer`.
    pub computer: String,
    /// `Account`.
    pub account: String,
    /// `AccountType`.
    pub account_type: String,
    /// `Process`.
    pub process: String,
}

/// A labelled group.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Label {
    /// The group.
    pub key: LabelKey,
    /// The kind of injected activity.
    pub attack: String,
    /// How many of the group's events were injected.
    pub attack_events: i64,
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
}

fn schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("day", DataType::Date32, false),
        Field::new(COMPUTER, DataType::Utf8, false),
        Field::new(ACCOUNT, DataType::Utf8, false),
        Field::new(ACCOUNT_TYPE, DataType::Utf8, false),
        Field::new(PROCESS, DataType::Utf8, false),
        Field::new("attack", DataType::Utf8, false),
        Field::new("attack_events", DataType::Int64, false),
    ]))
}

/// The labels as one record batch.
pub fn to_batch(labels: &[Label]) -> Result<RecordBatch, arrow::error::ArrowError> {
    let strings = |f: fn(&Label) -> &str| -> Arc<dyn Array> {
        Arc::new(StringArray::from_iter_values(labels.iter().map(f)))
    };
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(
                labels
                    .iter()
                    .map(|l| (l.key.day - epoch()).num_days() as i32),
            )),
            strings(|l| &l.key.computer),
            strings(|l| &l.key.account),
            strings(|l| &l.key.account_type),
            strings(|l| &l.key.process),
            strings(|l| &l.attack),
            Arc::new(Int64Array::from_iter_values(
                labels.iter().map(|l| l.attack_events),
            )),
        ],
    )
}

/// Reads labels back from batches written by [`to_batch`].
pub fn read_labels(batches: &[RecordBatch]) -> Result<Vec<Label>, String> {
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| format!("labels have no column {name}"))
        };
        let day = col("day")?
            .as_primitive_opt::<Date32Type>()
            .ok_or("day is not a date")?;
        let s = |name| -> Result<&StringArray, String> {
            col(name)?
                .as_string_opt::<i32>()
                .ok_or_else(|| format!("{name} is not a string"))
        };
        let (computer, account, account_type, process, attack) = (
            s(COMPUTER)?,
            s(ACCOUNT)?,
            s(ACCOUNT_TYPE)?,
            s(PROCESS)?,
            s("attack")?,
        );
        let events = col("attack_events")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("attack_events is not an integer")?;
        for i in 0..b.num_rows() {
            out.push(Label {
                key: LabelKey {
                    day: epoch() + chrono::Duration::days(day.value(i) as i64),
                    computer: computer.value(i).to_string(),
                    account: account.value(i).to_string(),
                    account_type: account_type.value(i).to_string(),
                    process: process.value(i).to_string(),
                },
                attack: attack.value(i).to_string(),
                attack_events: events.value(i),
            });
        }
    }
    Ok(out)
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

fn day_key(row: &ScoredRow) -> Option<LabelKey> {
    let day: NaiveDate = DateTime::from_timestamp_micros(row.interval_us)?.date_naive();
    Some(LabelKey {
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
    let in_window: HashSet<&LabelKey> = labels
        .iter()
        .map(|l| &l.key)
        .filter(|k| k.day >= first_day && k.day <= last_day)
        .collect();
    let reported: Vec<LabelKey> = report.iter().filter_map(day_key).collect();
    let reported_set: HashSet<&LabelKey> = reported.iter().collect();
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

impl LabelCheck {
    /// The check in a line (for the run's summary on stderr).
    pub fn summary(&self) -> String {
        format!(
            "{} labelled groups in the report window, {} reported (recall {:.3}), precision {:.3}",
            self.labelled_in_window, self.labelled_reported, self.recall, self.precision
        )
    }
}

/// Reads the labels file at `location` (a local path or URL, e.g. a generated table's
/// `_procforest/labels.parquet`).
pub async fn read_labels_file(location: &str) -> procforest_pipeline::Result<Vec<Label>> {
    use procforest_pipeline::error::{Context, PipelineError};
    let path = location.strip_prefix("file://").unwrap_or(location);
    let file = std::fs::File::open(path).bad_input(format!("labels {location}"))?;
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .bad_input(format!("labels {location}"))?
        .build()
        .bad_input(format!("labels {location}"))?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .bad_input(format!("labels {location}"))?;
    read_labels(&batches).map_err(|e| PipelineError::bad_input(format!("labels {location}: {e}")))
}
