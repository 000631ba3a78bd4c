//! The bundled real sample: public 4688 events (msticpy's `processes_on_host.csv` and the
//! OTRF Security-Datasets events derived to `otrf_security_4688.jsonl`) converted to the
//! event schema and written as a Delta table, with heuristic labels.
//!
//! The CLI's `procforest import-sample` rebuilds the committed table with it. Labels: msticpy's `MSTICAlertsWin1\MSTICAdmin` events are
//! its scripted attack simulation; in OTRF archives the attacker's activity is typically
//! the user-account events (not `NT AUTHORITY\…`), labelled with the archive's dataset id.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use arrow::{
    array::{
        ArrayRef, Date32Array, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    },
    datatypes::DataType,
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use procforest_core::schema::event_schema;

use procforest_pipeline::error::{Context, PipelineError, Result};

use crate::{
    delta_writer::EventTableWriter,
    generate::file_name,
    labels::{Label, LabelKey},
};

/// Where msticpy's events are, under the events folder.
pub const MSTICPY_CSV: &str = "msticpy/processes_on_host.csv";
/// Where OTRF's derived events are, under the events folder.
pub const OTRF_JSONL: &str = "otrf-security-datasets/derived/otrf_security_4688.jsonl";

/// One event in the schema's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// `TimeGenerated`, UTC.
    pub time: DateTime<Utc>,
    /// `Computer`.
    pub computer: Option<String>,
    /// `Account`.
    pub account: Option<String>,
    /// `AccountType`.
    pub account_type: Option<String>,
    /// `NewProcessName`.
    pub new_process_name: Option<String>,
    /// `ParentProcessName`.
    pub parent: Option<String>,
    /// `CommandLine`.
    pub command_line: Option<String>,
    /// `SubjectLogonId`.
    pub logon_id: Option<String>,
    /// `TokenElevationType`.
    pub elevation: Option<String>,
    /// Which file it came from.
    pub source: &'static str,
    /// A label, when the source says this event is attack activity.
    pub label: Option<String>,
}

/// What the import wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportSummary {
    /// Events per source file.
    pub events: BTreeMap<&'static str, usize>,
    /// Labelled groups.
    pub labelled_groups: usize,
}

fn account_type(user: &str) -> String {
    if user.ends_with('$') {
        "Machine"
    } else {
        "User"
    }
    .to_string()
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.filter(|v| !v.is_empty()).map(str::to_string)
}

/// Reads msticpy's Log Analytics export.
pub fn read_msticpy(path: &Path) -> Result<Vec<Event>> {
    let mut reader = csv::Reader::from_path(path).bad_input(format!("{}", path.display()))?;
    let headers = reader
        .headers()
        .bad_input(format!("{}", path.display()))?
        .clone();
    let col = |name: &str| {
        headers.iter().position(|h| h == name).ok_or_else(|| {
            PipelineError::bad_input(format!("{}: no column {name}", path.display()))
        })
    };
    let (time, computer, account, user, logon, image, elevation, command, parent) = (
        col("TimeGenerated")?,
        col("Computer")?,
        col("Account")?,
        col("SubjectUserName")?,
        col("SubjectLogonId")?,
        col("NewProcessName")?,
        col("TokenElevationType")?,
        col("CommandLine")?,
        col("ParentProcessName")?,
    );
    let mut events = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.bad_input(format!("{}, row {}", path.display(), row + 2))?;
        let get = |i: usize| record.get(i);
        let text = get(time).unwrap_or_default();
        let time = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
            .bad_input(format!(
                "{}, row {}: TimeGenerated {text:?}",
                path.display(),
                row + 2
            ))?
            .and_utc();
        let account = non_empty(get(account));
        let label = (account.as_deref() == Some(r"MSTICAlertsWin1\MSTICAdmin"))
            .then(|| "msticpy_alert_simulation".to_string());
        events.push(Event {
            time,
            computer: non_empty(get(computer)),
            account,
            account_type: get(user).map(account_type),
            new_process_name: non_empty(get(image)),
            parent: non_empty(get(parent)),
            command_line: non_empty(get(command)),
            logon_id: non_empty(get(logon)),
            elevation: non_empty(get(elevation)),
            source: MSTICPY_CSV,
            label,
        });
    }
    Ok(events)
}

/// Reads the OTRF events (raw Windows fields, one JSON object per line), or any JSON lines
/// of `SecurityEvent` columns (`TimeGenerated`, `Computer`, `Account`, `AccountType`,
/// `NewProcessName`, `ParentProcessName`, `CommandLine`). An event's `attack` field, when
/// present, is its label (see [`explicit_label`]); otherwise a user account's event (not
/// `NT AUTHORITY\…`) is labelled with its archive's dataset id.
pub fn read_otrf(path: &Path) -> Result<Vec<Event>> {
    let text = std::fs::read_to_string(path).bad_input(format!("{}", path.display()))?;
    let mut events = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let where_ = || format!("{}, line {}", path.display(), line_no + 1);
        let v: serde_json::Value = serde_json::from_str(line).bad_input(where_())?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).filter(|x| !x.is_empty());
        let stamp = s("@timestamp")
            .or(s("TimeCreated"))
            .or(s("TimeGenerated"))
            .ok_or_else(|| PipelineError::bad_input(format!("{}: no timestamp", where_())))?;
        let time = DateTime::parse_from_rfc3339(stamp)
            .map(|t| t.with_timezone(&Utc))
            .or_else(|_| {
                NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f").map(|t| t.and_utc())
            })
            .bad_input(format!("{}: timestamp {stamp:?}", where_()))?;
        let (account, user) = match (s("SubjectDomainName"), s("SubjectUserName")) {
            (Some(d), Some(u)) => (Some(format!("{d}\\{u}")), Some(u.to_string())),
            _ => (
                s("Account").map(str::to_string),
                s("Account").map(|a| a.rsplit('\\').next().unwrap_or(a).to_string()),
            ),
        };
        let account_type = s("AccountType")
            .map(str::to_string)
            .or(user.as_deref().map(account_type));
        let is_user_activity = account_type.as_deref() == Some("User")
            && account
                .as_deref()
                .is_some_and(|a| !a.starts_with("NT AUTHORITY\\") && a != "-\\-");
        let label = match explicit_label(&v) {
            Some(explicit) => explicit,
            None => is_user_activity.then(|| {
                s("dataset_id").map_or_else(|| "user-activity".into(), |id| format!("otrf:{id}"))
            }),
        };
        events.push(Event {
            time,
            computer: non_empty(s("Hostname").or(s("Computer"))),
            account,
            account_type,
            new_process_name: non_empty(s("NewProcessName")),
            parent: non_empty(s("ParentProcessName")),
            command_line: non_empty(s("CommandLine")),
            logon_id: non_empty(s("SubjectLogonId")),
            elevation: non_empty(s("TokenElevationType")),
            source: OTRF_JSONL,
            label,
        });
    }
    Ok(events)
}

/// An event's own `attack` field, when it has one: a name labels it, `true` labels it
/// `attack`, `false` or an empty name marks it benign (`Some(None)`).
fn explicit_label(event: &serde_json::Value) -> Option<Option<String>> {
    match event.get("attack")? {
        serde_json::Value::Bool(true) => Some(Some("attack".into())),
        serde_json::Value::String(name) if !name.is_empty() => Some(Some(name.clone())),
        serde_json::Value::Bool(false) | serde_json::Value::String(_) => Some(None),
        _ => None,
    }
}

/// Events as one batch of the event schema.
pub fn to_batch(events: &[Event]) -> Result<RecordBatch> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let strings = |f: &dyn Fn(&Event) -> Option<&str>| -> ArrayRef {
        Arc::new(StringArray::from_iter(events.iter().map(f)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                events.iter().map(|e| e.time.timestamp_micros()),
            )
            .with_timezone("UTC"),
        ),
        Arc::new(Int32Array::from_iter_values(events.iter().map(|_| 4688))),
        strings(&|e| e.computer.as_deref()),
        strings(&|e| e.account.as_deref()),
        strings(&|e| e.account_type.as_deref()),
        strings(&|e| e.new_process_name.as_deref().map(file_name)),
        strings(&|e| e.new_process_name.as_deref()),
        strings(&|e| e.parent.as_deref()),
        strings(&|e| e.command_line.as_deref()),
        strings(&|e| e.logon_id.as_deref()),
        strings(&|e| e.elevation.as_deref()),
        Arc::new(Date32Array::from_iter_values(
            events
                .iter()
                .map(|e| (e.time.date_naive() - epoch).num_days() as i32),
        )),
    ];
    debug_assert_eq!(
        columns[0].data_type(),
        &procforest_core::schema::time_type()
    );
    debug_assert_eq!(columns[11].data_type(), &DataType::Date32);
    RecordBatch::try_new(event_schema(), columns).runtime("building the sample batch")
}

/// Labels of the groups that hold labelled events.
pub fn labels(events: &[Event]) -> Vec<Label> {
    let mut groups: BTreeMap<LabelKey, Label> = BTreeMap::new();
    for e in events {
        let Some(label) = &e.label else { continue };
        let key = LabelKey {
            day: e.time.date_naive(),
            computer: e.computer.clone().unwrap_or_default(),
            account: e.account.clone().unwrap_or_default(),
            account_type: e.account_type.clone().unwrap_or_default(),
            process: e
                .new_process_name
                .as_deref()
                .map(file_name)
                .unwrap_or_default()
                .to_string(),
        };
        groups
            .entry(key.clone())
            .or_insert_with(|| Label {
                key,
                attack: label.clone(),
                attack_events: 0,
            })
            .attack_events += 1;
    }
    groups.into_values().collect()
}

/// Converts both sources under `events_dir` into a new Delta table at `out`.
pub async fn import(events_dir: &Path, out: &str) -> Result<ImportSummary> {
    let mut events = read_msticpy(&events_dir.join(MSTICPY_CSV))?;
    events.extend(read_otrf(&events_dir.join(OTRF_JSONL))?);
    let mut per_source = BTreeMap::new();
    for e in &events {
        *per_source.entry(e.source).or_insert(0) += 1;
    }
    // Time order within each file, as the generator writes it.
    events.sort_by(|a, b| a.time.cmp(&b.time).then(a.source.cmp(b.source)));
    let labels = labels(&events);
    let mut writer = EventTableWriter::create(out, false, Default::default()).await?;
    writer.write(to_batch(&events)?).await?;
    writer.commit().await?;
    let summary = ImportSummary {
        events: per_source,
        labelled_groups: labels.len(),
    };
    writer.put_labels(&labels, &summary).await?;
    Ok(summary)
}
