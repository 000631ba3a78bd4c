//! `procforest evaluate --inject FILE`: labelled attack events replayed into a copy of a
//! table's report day, on the tenant's own hosts and accounts, for measuring detection.
//!
//! The attack file is msticpy's Log Analytics CSV export, or JSON lines of `SecurityEvent`
//! columns or of raw Windows fields (OTRF's layout): see
//! [`crate::sample_import::read_msticpy`] and [`crate::sample_import::read_otrf`], which
//! also say how an event is labelled. Only labelled events are replayed.
//!
//! The mapping is seeded and deterministic:
//! - each attack host (sorted by name) gets a tenant host that ran user-account processes
//!   on the report day, distinct while there are enough, in a seeded shuffle;
//! - each attack user account gets one of the accounts that ran processes on its first
//!   host's tenant host that day, picked by the seed; a machine account becomes its
//!   host's machine account; `NT AUTHORITY\…` accounts stay;
//! - the attack's user and host short names in the command line and the image and parent
//!   paths become the tenant's (case-insensitively, names of three or more characters);
//! - each event keeps its time of day, moved to the report day (and no later than the
//!   run's as-of time);
//! - with [`RunsAs::Machine`], every event becomes its host's machine account's.
//!
//! The table is copied (a local table only) and the events appended as one commit; its
//! labels are the table's own plus the injected groups'. An injected group is *mixed* when
//! the tenant's own events fall in the same group (day, host, account, account type,
//! process), *new* otherwise.

use std::{
    collections::{BTreeMap, BTreeSet, HashSet},
    path::{Path, PathBuf},
};

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use datafusion::{logical_expr::cast, prelude::SessionContext};
use rand::{
    SeedableRng,
    seq::{IndexedRandom, SliceRandom},
};
use rand_chacha::ChaCha8Rng;

use procforest_core::{
    scan::DeltaFilesTable,
    schema::{ACCOUNT, ACCOUNT_TYPE, COMPUTER, PROCESS, TIME_GENERATED, time_type},
    template::{short_host, short_user},
};
use procforest_pipeline::{
    RunConfig,
    config::AsOf,
    error::{Context, PipelineError, Result},
    source::{self, EventTable, TimeRange},
    stages::{column, time_literal},
};

use crate::{
    delta_writer::{EventTableWriter, get_parquet, put_parquet},
    labels::{LABELS_PATH, Label, LabelKey, read_labels, to_batch},
    sample_import::{
        Event, labels as labels_of, read_msticpy, read_otrf, to_batch as events_batch,
    },
};

const DAY_US: i64 = 86_400_000_000;

/// What to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The attack file.
    pub file: PathBuf,
    /// Chooses the scenarios, hosts and accounts.
    pub seed: u64,
    /// How many of the file's scenarios (distinct labels) to replay; `None`: all.
    pub scenarios: Option<usize>,
    /// Whose events they become.
    pub runs_as: RunsAs,
    /// Where to keep the copy (a new folder), for inspecting it afterwards; `None`: a
    /// temporary folder, removed when the [`InjectedTable`] is dropped.
    pub keep: Option<PathBuf>,
}

/// Whose events replayed attacks become.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunsAs {
    /// The tenant's accounts the mapping picks (a machine account stays its host's).
    #[default]
    Mapped,
    /// Every event the host's machine account's, as an attacker running as SYSTEM (a
    /// service or a scheduled task): its processes then share the machine account's
    /// usual groups (`conhost.exe`, `cmd.exe`, `powershell.exe`), which only the command
    /// line and the parent tell apart.
    Machine,
}

/// A table with attacks replayed into it (kept while this lives).
pub struct InjectedTable {
    /// Holds the copy, unless it is kept.
    _dir: Option<tempfile::TempDir>,
    /// The copy's location.
    pub location: String,
    /// Replayed events.
    pub events: usize,
    /// Replayed scenarios (distinct labels).
    pub scenarios: usize,
    /// Groups holding replayed events.
    pub groups: usize,
    /// Of which the tenant's own events share (see [`crate::evaluate::GroupKind::Mixed`]).
    pub mixed: usize,
}

/// The labelled events of an attack file (see the module documentation).
pub fn read_attacks(path: &Path) -> Result<Vec<Event>> {
    let is_csv = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    let events = match is_csv {
        true => read_msticpy(path)?,
        false => read_otrf(path)?,
    };
    let labelled: Vec<Event> = events.into_iter().filter(|e| e.label.is_some()).collect();
    if labelled.is_empty() {
        return Err(PipelineError::bad_input(format!(
            "{}: no labelled attack events to replay",
            path.display()
        )));
    }
    Ok(labelled)
}

/// Replays the attacks `replay` names into a copy of `config`'s table (see the module
/// documentation).
pub async fn inject(config: &RunConfig, replay: &Replay) -> Result<InjectedTable> {
    let attacks = choose_scenarios(read_attacks(&replay.file)?, replay.scenarios, replay.seed);
    let scenarios = attacks
        .iter()
        .filter_map(|e| e.label.as_deref())
        .collect::<BTreeSet<_>>()
        .len();
    let seed = replay.seed;
    let source_dir = local_dir(&config.table)?;
    let table = source::open(
        &config.table,
        &config.snapshot,
        config.storage_options.clone(),
    )
    .await?;
    let as_of = match config.as_of {
        AsOf::At(t) => t,
        AsOf::EndOfNewestDay => source::end_of_newest_day(&table)?,
    };
    let day_start_us = (as_of.timestamp_micros() - 1).div_euclid(DAY_US) * DAY_US;
    let tenant = Tenant::of_day(&table, day_start_us, as_of).await?;
    let replayed = map_onto(&attacks, &tenant, day_start_us, as_of, seed)?;
    let replayed = match replay.runs_as {
        RunsAs::Mapped => replayed,
        RunsAs::Machine => as_machine(replayed, &tenant),
    };

    let (dir, copy) = match &replay.keep {
        Some(keep) if keep.exists() => {
            return Err(PipelineError::bad_input(format!(
                "{}: already exists; the injected table is kept in a new folder",
                keep.display()
            )));
        }
        Some(keep) => (None, keep.clone()),
        None => {
            let dir = tempfile::tempdir().runtime("creating a folder for the injected table")?;
            let copy = dir.path().join("table");
            (Some(dir), copy)
        }
    };
    copy_dir(&source_dir, &copy)?;
    let location = copy.display().to_string();
    let mut writer = EventTableWriter::append(&location).await?;
    writer.write(events_batch(&replayed)?).await?;
    writer.commit().await?;

    let injected = labels_of(&replayed);
    let mixed = injected
        .iter()
        .filter(|label| tenant.groups.contains(&label.key))
        .count();
    let groups = injected.len();
    let own = match get_parquet(writer.table(), LABELS_PATH).await? {
        Some(batches) => read_labels(&batches)
            .map_err(|e| PipelineError::bad_input(format!("{LABELS_PATH}: {e}")))?,
        None => Vec::new(),
    };
    let all = merge_labels(own, injected);
    let batch = to_batch(&all).runtime("building labels")?;
    put_parquet(writer.table(), LABELS_PATH, &batch).await?;
    Ok(InjectedTable {
        _dir: dir,
        location,
        events: replayed.len(),
        scenarios,
        groups,
        mixed,
    })
}

/// The events of `count` of the attacks' scenarios (labels), chosen by `seed`; all when
/// `count` is `None` or at least their number.
pub fn choose_scenarios(attacks: Vec<Event>, count: Option<usize>, seed: u64) -> Vec<Event> {
    let labels: BTreeSet<&str> = attacks.iter().filter_map(|e| e.label.as_deref()).collect();
    let Some(count) = count.filter(|&c| c < labels.len()) else {
        return attacks;
    };
    // A stream of its own, so that the scenarios chosen do not shift the hosts chosen.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    let mut labels: Vec<&str> = labels.into_iter().collect();
    labels.shuffle(&mut rng);
    let chosen: BTreeSet<String> = labels[..count].iter().map(|l| l.to_string()).collect();
    attacks
        .into_iter()
        .filter(|e| e.label.as_ref().is_some_and(|l| chosen.contains(l)))
        .collect()
}

/// Labels of both lists, a group in both counted once with both lists' events.
fn merge_labels(own: Vec<Label>, injected: Vec<Label>) -> Vec<Label> {
    let mut merged: BTreeMap<LabelKey, Label> = BTreeMap::new();
    for label in own.into_iter().chain(injected) {
        match merged.get_mut(&label.key) {
            Some(existing) => existing.attack_events += label.attack_events,
            None => {
                merged.insert(label.key.clone(), label);
            }
        }
    }
    merged.into_values().collect()
}

/// A local table's folder; other storage is refused (the harness copies the table).
fn local_dir(location: &str) -> Result<PathBuf> {
    let path = match url::Url::parse(location) {
        Ok(url) if url.scheme() == "file" => url
            .to_file_path()
            .map_err(|_| PipelineError::bad_input(format!("{location}: not a local path")))?,
        Ok(url) if url.scheme().len() > 1 => {
            return Err(PipelineError::bad_input(format!(
                "{location}: --inject copies the table, so it must be a local folder"
            )));
        }
        _ => PathBuf::from(location),
    };
    match path.is_dir() {
        true => Ok(path),
        false => Err(PipelineError::bad_input(format!(
            "{}: no such table folder",
            path.display()
        ))),
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).runtime(format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).runtime(format!("reading {}", from.display()))? {
        let entry = entry.runtime(format!("reading {}", from.display()))?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type().runtime("reading a file type")?;
        if kind.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .runtime(format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Who ran what on the report day.
#[derive(Debug, Default)]
pub struct Tenant {
    /// Accounts (with their type) per host.
    pub accounts: BTreeMap<String, BTreeSet<(String, String)>>,
    /// The day's summary groups.
    pub groups: HashSet<LabelKey>,
}

impl Tenant {
    /// The hosts, accounts and groups of the table's events in the day starting at
    /// `day_start_us`, up to `as_of`.
    async fn of_day(table: &EventTable, day_start_us: i64, as_of: DateTime<Utc>) -> Result<Self> {
        let range = TimeRange {
            start: DateTime::from_timestamp_micros(day_start_us - 1),
            end: as_of,
        };
        let (resolved, _) = source::resolve(table, range).await?;
        let ctx = SessionContext::new();
        let scan = DeltaFilesTable::try_new(resolved, table.schema.clone())
            .runtime("reading the report day")?;
        let time = cast(column(TIME_GENERATED), time_type());
        let in_day = time
            .clone()
            .gt_eq(time_literal(day_start_us))
            .and(time.lt_eq(time_literal(as_of.timestamp_micros())));
        let keys = [COMPUTER, ACCOUNT, ACCOUNT_TYPE, PROCESS]
            .map(|k| cast(column(k), DataType::Utf8).alias(k))
            .to_vec();
        let batches = ctx
            .read_table(std::sync::Arc::new(scan))
            .and_then(|df| df.filter(in_day))
            .and_then(|df| df.select(keys))
            .and_then(|df| df.distinct())
            .runtime("reading the report day's hosts and accounts")?
            .collect()
            .await
            .runtime("reading the report day's hosts and accounts")?;
        let day = DateTime::from_timestamp_micros(day_start_us)
            .unwrap_or_default()
            .date_naive();
        let mut tenant = Tenant::default();
        for batch in batches {
            let text = |c: usize, i: usize| {
                let column = batch.column(c).as_string::<i32>();
                match column.is_valid(i) {
                    true => column.value(i).to_string(),
                    false => String::new(),
                }
            };
            for i in 0..batch.num_rows() {
                let key = LabelKey {
                    day,
                    computer: text(0, i),
                    account: text(1, i),
                    account_type: text(2, i),
                    process: text(3, i),
                };
                tenant
                    .accounts
                    .entry(key.computer.clone())
                    .or_default()
                    .insert((key.account.clone(), key.account_type.clone()));
                tenant.groups.insert(key);
            }
        }
        Ok(tenant)
    }

    /// Hosts where a user account ran processes.
    fn user_hosts(&self) -> Vec<&str> {
        self.accounts
            .iter()
            .filter(|(_, accounts)| accounts.iter().any(|(_, t)| t == "User"))
            .map(|(host, _)| host.as_str())
            .collect()
    }

    fn accounts_of(&self, host: &str, account_type: &str) -> Vec<&str> {
        self.accounts
            .get(host)
            .into_iter()
            .flatten()
            .filter(|(_, t)| t == account_type)
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

/// The attack events moved onto the tenant (see the module documentation).
pub fn map_onto(
    attacks: &[Event],
    tenant: &Tenant,
    day_start_us: i64,
    as_of: DateTime<Utc>,
    seed: u64,
) -> Result<Vec<Event>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut hosts = tenant.user_hosts();
    if hosts.is_empty() {
        let day = DateTime::from_timestamp_micros(day_start_us).unwrap_or_default();
        return Err(PipelineError::bad_input(format!(
            "the report day {} has no user-account events to replay attacks onto",
            day.date_naive()
        )));
    }
    hosts.shuffle(&mut rng);
    let attack_hosts: BTreeSet<&str> = attacks
        .iter()
        .map(|e| e.computer.as_deref().unwrap_or(""))
        .collect();
    let host_map: BTreeMap<&str, &str> = attack_hosts
        .iter()
        .enumerate()
        .map(|(i, &host)| (host, hosts[i % hosts.len()]))
        .collect();
    let mut by_time: Vec<&Event> = attacks.iter().collect();
    by_time.sort_by_key(|e| e.time);
    let mut account_map: BTreeMap<&str, String> = BTreeMap::new();
    for event in &by_time {
        let (Some(account), Some("User")) =
            (event.account.as_deref(), event.account_type.as_deref())
        else {
            continue;
        };
        if account.starts_with("NT AUTHORITY\\") || account_map.contains_key(account) {
            continue;
        }
        let host = host_map[event.computer.as_deref().unwrap_or("")];
        let mut candidates = tenant.accounts_of(host, "User");
        candidates.sort_unstable();
        let pick = candidates
            .choose(&mut rng)
            .expect("a user host has a user account");
        account_map.insert(account, pick.to_string());
    }
    let mut out = Vec::with_capacity(attacks.len());
    for event in attacks {
        let attack_host = event.computer.as_deref().unwrap_or("");
        let host = host_map[attack_host];
        let account = match (event.account.as_deref(), event.account_type.as_deref()) {
            (Some(a), _) if account_map.contains_key(a) => Some(account_map[a].clone()),
            (Some(_), Some("Machine")) => Some(machine_account(tenant, host)),
            (other, _) => other.map(str::to_string),
        };
        let mut names = vec![(
            short_host(attack_host).to_string(),
            short_host(host).to_string(),
        )];
        if let (Some(from), Some(to)) = (event.account.as_deref(), account.as_deref()) {
            names.push((short_user(from).to_string(), short_user(to).to_string()));
        }
        let rename = |text: &Option<String>| {
            text.as_deref().map(|t| {
                names
                    .iter()
                    .filter(|(from, _)| from.len() >= 3)
                    .fold(t.to_string(), |t, (from, to)| {
                        replace_ignoring_case(&t, from, to)
                    })
            })
        };
        let time_of_day = event.time.timestamp_micros().rem_euclid(DAY_US);
        let time = DateTime::from_timestamp_micros(day_start_us + time_of_day)
            .unwrap_or(as_of)
            .min(as_of);
        out.push(Event {
            time,
            computer: Some(host.to_string()),
            account,
            account_type: event.account_type.clone(),
            new_process_name: rename(&event.new_process_name),
            parent: rename(&event.parent),
            command_line: rename(&event.command_line),
            logon_id: event.logon_id.clone(),
            elevation: event.elevation.clone(),
            source: event.source,
            label: event.label.clone(),
        });
    }
    debug_assert!(out.iter().all(|e| e.time <= as_of));
    Ok(out)
}

/// The events, each its host's machine account's.
fn as_machine(events: Vec<Event>, tenant: &Tenant) -> Vec<Event> {
    events
        .into_iter()
        .map(|event| {
            let host = event.computer.clone().unwrap_or_default();
            Event {
                account: Some(machine_account(tenant, &host)),
                account_type: Some("Machine".into()),
                ..event
            }
        })
        .collect()
}

/// `host`'s machine account on the report day, or `HOST$` when it ran none.
fn machine_account(tenant: &Tenant, host: &str) -> String {
    tenant
        .accounts_of(host, "Machine")
        .first()
        .map(|a| a.to_string())
        .unwrap_or_else(|| format!("{}$", short_host(host).to_uppercase()))
}

/// `text` with every ASCII-case-insensitive occurrence of `from` replaced by `to`.
fn replace_ignoring_case(text: &str, from: &str, to: &str) -> String {
    let (lower, needle) = (text.to_ascii_lowercase(), from.to_ascii_lowercase());
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in lower.match_indices(&needle) {
        out.push_str(&text[copied..at]);
        out.push_str(to);
        copied = at + needle.len();
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests;
