//! The anomalies table: anomalies appended to a Delta table partitioned by as-of date.
//!
//! Idempotent: a run replaces the rows of its own as-of (partition `as_of_date` and exact
//! `as_of`) in one commit, so re-running the same as-of never duplicates rows, and a commit
//! that conflicts with another run's (or a table two runs create at once) is simply tried
//! again.

use std::sync::Arc;

use arrow::{
    array::{
        ArrayRef, Date32Array, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray,
        StringBuilder, TimestampMicrosecondArray,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
};
use chrono::{DateTime, NaiveDate, Utc};
use deltalake::{
    DeltaTableBuilder, DeltaTableError,
    datafusion::{
        prelude::{col, lit},
        scalar::ScalarValue,
    },
    kernel::{StructType, engine::arrow_conversion::TryIntoKernel},
    protocol::SaveMode,
};
use procforest_core::schema::{
    ACCOUNT, ACCOUNT_TYPE, COMMAND_LINES, COMPUTER, COUNT, INTERVAL, PROCESS, SCORE,
};

use procforest_pipeline::{ScoredRow, source::table_url_for_write};

use procforest_pipeline::error::Context;

use crate::error::{Result, Setting, SinkError};

/// The partition column.
pub const AS_OF_DATE: &str = "as_of_date";

/// The anomalies table's schema.
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("as_of", ts.clone(), false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("model_hash", DataType::Utf8, false),
        Field::new(INTERVAL, ts, false),
        Field::new(COMPUTER, DataType::Utf8, true),
        Field::new(ACCOUNT, DataType::Utf8, true),
        Field::new(ACCOUNT_TYPE, DataType::Utf8, true),
        Field::new(PROCESS, DataType::Utf8, true),
        Field::new(
            COMMAND_LINES,
            DataType::List(Arc::new(Field::new("element", DataType::Utf8, true))),
            true,
        ),
        Field::new(COUNT, DataType::Int64, false),
        Field::new(SCORE, DataType::Float64, false),
    ];
    // Features and explanation as JSON objects keep the schema the same for every feature set.
    fields.push(Field::new("features", DataType::Utf8, false));
    fields.push(Field::new("explanation", DataType::Utf8, false));
    // The evidence features' findings as a JSON object (null for other feature sets). Added
    // after the first release: older tables gain the column on their next write.
    fields.push(Field::new("evidence", DataType::Utf8, true));
    fields.push(Field::new(AS_OF_DATE, DataType::Date32, false));
    Arc::new(Schema::new(fields))
}

/// What identifies a run in the table, and names its features.
pub struct RunKey<'a> {
    /// Feature names.
    pub feature_names: &'a [&'a str],
    /// The run's as-of time.
    pub as_of: DateTime<Utc>,
    /// The run id.
    pub run_id: &'a str,
    /// The model's hash.
    pub model_hash: &'a str,
}

fn batch(rows: &[ScoredRow], key: &RunKey) -> Result<RecordBatch> {
    let n = rows.len();
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let date = (key.as_of.date_naive() - epoch).num_days() as i32;
    let strings = |f: fn(&ScoredRow) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(rows.iter().map(f)))
    };
    let mut lists = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Utf8,
        true,
    )));
    for r in rows {
        for c in r.command_lines.iter() {
            lists.values().append_value(c);
        }
        lists.append(true);
    }
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from(vec![key.as_of.timestamp_micros(); n])
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from(vec![key.run_id; n])),
        Arc::new(StringArray::from(vec![key.model_hash; n])),
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.interval_us))
                .with_timezone("UTC"),
        ),
        strings(|r| r.computer.as_deref()),
        strings(|r| r.account.as_deref()),
        strings(|r| r.account_type.as_deref()),
        strings(|r| r.process.as_deref()),
        Arc::new(lists.finish()),
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.count))),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.score))),
    ];
    let object = |values: &[f64]| {
        let map: serde_json::Map<String, serde_json::Value> = key
            .feature_names
            .iter()
            .zip(values)
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect();
        serde_json::Value::Object(map).to_string()
    };
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| object(&r.features)),
    )));
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|r| object(&r.explanation)),
    )));
    columns.push(Arc::new(StringArray::from_iter(rows.iter().map(|r| {
        r.evidence
            .as_ref()
            .and_then(|e| serde_json::to_string(e).ok())
    }))));
    columns.push(Arc::new(Date32Array::from(vec![date; n])));
    Ok(RecordBatch::try_new(schema(), columns).runtime("building the anomalies batch")?)
}

/// Refuses a table at `location` that is not an anomalies table (one of its columns
/// missing); a location with no table yet is fine (the first write creates it).
pub async fn check_table(location: &str) -> Result<()> {
    // A local folder not there yet: nothing to check, and nothing to create before the run.
    let local = location.strip_prefix("file://").unwrap_or(location);
    if !local.contains("://") && !std::path::Path::new(local).exists() {
        return Ok(());
    }
    let builder = DeltaTableBuilder::from_url(table_url_for_write(location)?)
        .map_err(|e| SinkError::setting(Setting::OutputDelta, location, e))?;
    let table = match builder.load().await {
        Ok(table) => table,
        Err(DeltaTableError::NotATable(_)) => return Ok(()),
        Err(e) => return Err(SinkError::setting(Setting::OutputDelta, location, e)),
    };
    let existing = table
        .snapshot()
        .map_err(|e| SinkError::setting(Setting::OutputDelta, location, e))?
        .schema();
    // `evidence` came later: older tables gain it on their next write.
    let missing: Vec<String> = schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|name| name != "evidence" && existing.field(name).is_none())
        .collect();
    match missing.is_empty() {
        true => Ok(()),
        false => Err(SinkError::bad_setting(
            Setting::OutputDelta,
            format!(
                "{location}: not an anomalies table (no column {})",
                missing.join(", ")
            ),
        )),
    }
}

/// Commits a run tries before giving up: another run writing the same table (another
/// night, or the same night rerun) makes a commit conflict, and the write is tried again
/// on the table as that run left it.
const ATTEMPTS: usize = 5;

/// Replaces this run's as-of rows in the table at `location` with `rows` (creating the
/// table if needed); returns the table version written.
pub async fn write(location: &str, rows: &[ScoredRow], key: &RunKey<'_>) -> Result<i64> {
    let mut attempt = 1;
    loop {
        match write_once(location, rows, key).await {
            Err(Attempt::Conflict(e)) if attempt < ATTEMPTS => {
                tracing::info!(
                    "the anomalies table {location} changed meanwhile ({e}); writing again"
                );
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
                attempt += 1;
            }
            Err(Attempt::Conflict(e)) => {
                return Err(e).runtime(format!(
                    "writing the anomalies table {location}: still conflicting after \
                     {ATTEMPTS} attempts"
                ))?;
            }
            Err(Attempt::Failed(e)) => return Err(e),
            Ok(version) => return Ok(version),
        }
    }
}

/// Why a write did not land.
enum Attempt {
    /// Another writer committed first.
    Conflict(DeltaTableError),
    /// Anything else.
    Failed(SinkError),
}

impl From<SinkError> for Attempt {
    fn from(e: SinkError) -> Self {
        Attempt::Failed(e)
    }
}

impl From<procforest_pipeline::PipelineError> for Attempt {
    fn from(e: procforest_pipeline::PipelineError) -> Self {
        Attempt::Failed(e.into())
    }
}

/// A conflict when the commit lost the race to another writer's; otherwise a failure
/// while doing `what`, keeping the error as its source.
fn attempt(error: DeltaTableError, what: String) -> Attempt {
    match procforest_pipeline::source::is_commit_conflict(&error) {
        true => Attempt::Conflict(error),
        false => Attempt::Failed(
            procforest_pipeline::PipelineError::Runtime {
                what,
                source: Some(Box::new(error)),
            }
            .into(),
        ),
    }
}

/// One try of [`write`].
async fn write_once(
    location: &str,
    rows: &[ScoredRow],
    key: &RunKey<'_>,
) -> std::result::Result<i64, Attempt> {
    let url = table_url_for_write(location)?;
    let builder = DeltaTableBuilder::from_url(url)
        .map_err(|e| SinkError::setting(Setting::OutputDelta, location, e))?;
    let table = match builder.load().await {
        Ok(t) => t,
        Err(DeltaTableError::NotATable(_)) => {
            let schema: StructType = schema()
                .as_ref()
                .try_into_kernel()
                .runtime("converting the anomalies schema")?;
            // Ignore: when another run created it meanwhile, that table is used.
            DeltaTableBuilder::from_url(table_url_for_write(location)?)
                .map_err(|e| SinkError::setting(Setting::OutputDelta, location, e))?
                .build()
                .map_err(|e| SinkError::setting(Setting::OutputDelta, location, e))?
                .create()
                .with_columns(schema.fields().cloned())
                .with_partition_columns([AS_OF_DATE])
                .with_save_mode(SaveMode::Ignore)
                .await
                .map_err(|e| attempt(e, format!("creating the anomalies table {location}")))?
        }
        Err(e) => Err(e).runtime(format!("opening the anomalies table {location}"))?,
    };
    let as_of = lit(ScalarValue::TimestampMicrosecond(
        Some(key.as_of.timestamp_micros()),
        Some("UTC".into()),
    ));
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let date = lit(ScalarValue::Date32(Some(
        (key.as_of.date_naive() - epoch).num_days() as i32,
    )));
    let this_run = col(AS_OF_DATE).eq(date).and(col("as_of").eq(as_of));
    let written = if rows.is_empty() {
        table
            .delete()
            .with_predicate(this_run)
            .await
            .map(|(table, _)| table)
    } else {
        table
            .write(vec![batch(rows, key)?])
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(this_run)
            .with_schema_mode(deltalake::operations::write::SchemaMode::Merge)
            .await
    };
    let table =
        written.map_err(|e| attempt(e, format!("writing the anomalies table {location}")))?;
    Ok(table.version().map(|v| v as i64).unwrap_or(-1))
}

/// The anomalies appended to a Delta table (a re-run of an as-of replaces its rows).
pub struct AnomalyDelta(pub String);

#[async_trait::async_trait]
impl crate::sink::Sink for AnomalyDelta {
    async fn deliver(&mut self, report: &procforest_pipeline::Report) -> Result<()> {
        let key = RunKey {
            feature_names: &report.feature_names,
            as_of: report.as_of,
            run_id: report.run_id(),
            model_hash: &report.manifest.model.hash,
        };
        write(&self.0, &report.anomalies, &key).await?;
        Ok(())
    }
}

/// Anomalies per `as_of_date` from `first` to `last` (inclusive), every night listed
/// (0 where the table has no rows: no anomalies, or no run). A table not yet created
/// counts as empty.
pub async fn anomalies_per_night(
    location: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<Vec<(String, u64)>> {
    let counted = count_per_night(location, first, last).await?;
    Ok(first
        .iter_days()
        .take_while(|night| *night <= last)
        .map(|night| (night.to_string(), counted.get(&night).copied().unwrap_or(0)))
        .collect())
}

async fn count_per_night(
    location: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Result<std::collections::HashMap<NaiveDate, u64>> {
    let builder = DeltaTableBuilder::from_url(table_url_for_write(location)?)
        .map_err(|e| SinkError::setting(Setting::OutputDelta, location, e))?;
    let table = match builder.load().await {
        Ok(table) => table,
        Err(DeltaTableError::NotATable(_)) => return Ok(Default::default()),
        Err(e) => Err(e).runtime(format!("opening the anomalies table {location}"))?,
    };
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    table
        .update_datafusion_session(&ctx.state())
        .runtime(format!("reading the anomalies table {location}"))?;
    let provider = table
        .table_provider()
        .await
        .runtime(format!("reading the anomalies table {location}"))?;
    let date = |d: NaiveDate| {
        lit(ScalarValue::Date32(Some(
            (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")).num_days() as i32,
        )))
    };
    let batches = ctx
        .read_table(provider)
        .and_then(|df| {
            df.filter(
                col(AS_OF_DATE)
                    .gt_eq(date(first))
                    .and(col(AS_OF_DATE).lt_eq(date(last))),
            )
        })
        .and_then(|df| {
            df.aggregate(
                vec![col(AS_OF_DATE)],
                vec![deltalake::datafusion::functions_aggregate::expr_fn::count(lit(1)).alias("n")],
            )
        })
        .runtime(format!("counting the anomalies table {location}"))?
        .collect()
        .await
        .runtime(format!("counting the anomalies table {location}"))?;
    let mut counted = std::collections::HashMap::new();
    for batch in &batches {
        use arrow::array::AsArray;
        let nights = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Date32Type>();
        let counts = batch
            .column(1)
            .as_primitive::<arrow::datatypes::Int64Type>();
        for (night, n) in nights.iter().zip(counts.iter()) {
            if let (Some(night), Some(n)) = (night, n) {
                let night = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch")
                    + chrono::Days::new(night as u64);
                counted.insert(night, n as u64);
            }
        }
    }
    Ok(counted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use procforest_pipeline::report::GroupLines;

    fn row(computer: &str) -> ScoredRow {
        ScoredRow {
            interval_us: 1_764_201_600_000_000,
            computer: Some(computer.into()),
            account: Some("CONTOSO\\alice".into()),
            account_type: Some("User".into()),
            process: Some("cmd.exe".into()),
            count: 1,
            command_lines: ["cmd /c whoami"].iter().collect::<GroupLines>(),
            features: vec![1.0],
            explanation: vec![1.0],
            score: -0.7,
            evidence: None,
        }
    }

    /// Two nights' runs writing a new anomalies table at once: both land, whichever
    /// creates the table.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_runs_writing_a_new_table_at_once_both_land() {
        let dir = tempfile::tempdir().unwrap();
        let location = dir.path().join("anomalies").display().to_string();
        let names = ["f"];
        let nights = ["2026-11-26T23:59:59Z", "2026-11-27T23:59:59Z"].map(|t| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .with_timezone(&Utc)
        });
        let write_night = |i: usize| {
            let location = location.clone();
            let rows = vec![row(&format!("host-{i}"))];
            async move {
                let key = RunKey {
                    feature_names: &names,
                    as_of: nights[i],
                    run_id: "r",
                    model_hash: "h",
                };
                write(&location, &rows, &key).await
            }
        };
        let (first, second) = tokio::join!(write_night(0), write_night(1));
        first.unwrap();
        second.unwrap();
        let counted = count_per_night(&location, nights[0].date_naive(), nights[1].date_naive())
            .await
            .unwrap();
        assert_eq!(counted.len(), 2, "{counted:?}");
        assert!(counted.values().all(|&n| n == 1), "{counted:?}");
    }
}
