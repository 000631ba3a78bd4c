//! Ground truth of a generated table: which summary groups hold injected activity.
//!
//! Written as Parquet at [`LABELS_PATH`] inside the table folder (Delta readers ignore
//! paths starting with `_`), with the generator's settings beside it.

use std::sync::Arc;

use arrow::{
    array::{Array, AsArray, Date32Array, Int64Array, RecordBatch, StringArray},
    datatypes::{DataType, Date32Type, Field, Int64Type, Schema},
};
use chrono::NaiveDate;

/// Where the labels are, relative to the table's root.
pub const LABELS_PATH: &str = "_procforest/labels.parquet";

/// A summary group: day × Computer × Account × AccountType × Process.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct GroupKey {
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
    pub key: GroupKey,
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
        Field::new("Computer", DataType::Utf8, false),
        Field::new("Account", DataType::Utf8, false),
        Field::new("AccountType", DataType::Utf8, false),
        Field::new("Process", DataType::Utf8, false),
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
            s("Computer")?,
            s("Account")?,
            s("AccountType")?,
            s("Process")?,
            s("attack")?,
        );
        let events = col("attack_events")?
            .as_primitive_opt::<Int64Type>()
            .ok_or("attack_events is not an integer")?;
        for i in 0..b.num_rows() {
            out.push(Label {
                key: GroupKey {
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
