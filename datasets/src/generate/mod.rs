//! `procforest generate`: a realistic, deterministic table of 4688 events with injected
//! attacks and their ground truth.
//!
//! Events are produced a day at a time: the day's event skeletons (time, host, account,
//! process) are drawn and sorted by time, then turned into Arrow batches of bounded size
//! and streamed into the Delta table, one commit per day (and a checkpoint every ten, see
//! [`crate::delta_writer::CHECKPOINT_INTERVAL`]). Memory stays bounded by one day's skeletons
//! (24 bytes an event) plus one batch.

mod attacks;
mod catalog;
mod tenant;

use std::{collections::HashMap, io::IsTerminal, sync::Arc, time::Instant};

use arrow::{
    array::{ArrayRef, Date32Builder, Int32Builder, StringBuilder, TimestampMicrosecondBuilder},
    record_batch::RecordBatch,
};
use chrono::{Datelike, NaiveDate};
use procforest_core::schema::event_schema;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use attacks::AttackKind;
pub use catalog::file_name;

use procforest_pipeline::error::{PipelineError, Result};

use crate::{
    delta_writer::EventTableWriter,
    labels::{self, Label},
};
use catalog::{Template, Timing, Vars, render};
use tenant::Tenant;

/// Rows per Arrow batch written.
const BATCH_ROWS: usize = 32 * 1024;
const DAY_US: i64 = 86_400_000_000;

/// Settings of a generated table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateConfig {
    /// Where to write the table (path or URL).
    pub out: String,
    /// Total events.
    pub events: u64,
    /// Days of data, ending with `end_date`.
    pub days: u32,
    /// Hosts in the tenant.
    pub hosts: usize,
    /// Seed: the same settings and seed give the same table.
    pub seed: u64,
    /// The last day.
    pub end_date: NaiveDate,
    /// Probability that a host gets an attack episode on a given day.
    pub attack_rate: f64,
    /// Share of events ingested twice, then deleted by [`crate::deletion_vectors::dedupe`]:
    /// the rows left are those of the table generated without duplicates.
    #[serde(default)]
    pub duplicates: f64,
    /// How the events are laid out in files.
    #[serde(default)]
    pub layout: crate::delta_writer::Layout,
}

/// What was generated.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GenerateSummary {
    /// Events written.
    pub events: u64,
    /// Of which injected.
    pub attack_events: u64,
    /// Summary groups labelled as attacks.
    pub labelled_groups: usize,
    /// Delta version after the last commit.
    pub version: i64,
    /// Duplicates deleted with deletion vectors.
    pub deleted: crate::deletion_vectors::Deleted,
}

impl GenerateConfig {
    /// Checks the settings, naming the bad one.
    pub fn validate(&self) -> Result<()> {
        if self.events == 0 {
            return Err(PipelineError::bad_input("events must be at least 1"));
        }
        if self.days == 0 || self.days > 3660 {
            return Err(PipelineError::bad_input("days must be between 1 and 3660"));
        }
        if self.hosts == 0 || self.hosts > 1_000_000 {
            return Err(PipelineError::bad_input(
                "hosts must be between 1 and 1000000",
            ));
        }
        if !(0.0..1.0).contains(&self.duplicates) {
            return Err(PipelineError::bad_input(format!(
                "duplicates {} is not a share in [0, 1)",
                self.duplicates
            )));
        }
        if !(0.0..=1.0).contains(&self.attack_rate) {
            return Err(PipelineError::bad_input(format!(
                "attack rate {} is not a probability in [0, 1]",
                self.attack_rate
            )));
        }
        Ok(())
    }
}

/// The skeleton of one benign event.
#[derive(Clone, Copy)]
struct Skeleton {
    offset_us: i64,
    host: u32,
    app: u32,
}

/// Office-hours profile of interactive starts (weights per hour, UTC as local time).
const OFFICE_HOURS: [f64; 24] = [
    0.1, 0.05, 0.05, 0.05, 0.05, 0.1, 0.3, 0.8, 2.0, 3.0, 3.0, 2.8, 1.8, 2.5, 3.0, 2.8, 2.5, 1.6,
    0.8, 0.5, 0.4, 0.3, 0.2, 0.15,
];

/// Generates the table; see the module documentation.
pub async fn generate(config: &GenerateConfig) -> Result<GenerateSummary> {
    config.validate()?;
    let started = Instant::now();
    let mut tenant = Tenant::new(config.hosts, config.seed);
    let first_day = config.end_date - chrono::Duration::days(config.days as i64 - 1);
    let days: Vec<NaiveDate> = (0..config.days)
        .map(|d| first_day + chrono::Duration::days(d as i64))
        .collect();

    // Attacks are planned first, so benign volume can make room for them.
    let mut attack_rng = ChaCha8Rng::seed_from_u64(config.seed);
    attack_rng.set_stream(2);
    let attacks: Vec<Vec<attacks::AttackEvent>> = days
        .iter()
        .map(|_| attacks::plan_day(&mut tenant, config.attack_rate, &mut attack_rng))
        .collect();
    let attack_events: u64 = attacks.iter().map(|a| a.len() as u64).sum();
    let benign_total = config.events.saturating_sub(attack_events);
    let day_counts = apportion(
        benign_total,
        &days.iter().map(|d| day_weight(*d)).collect::<Vec<_>>(),
    );

    let mut writer =
        EventTableWriter::create(&config.out, config.duplicates > 0.0, config.layout).await?;
    let mut labels: HashMap<labels::LabelKey, Label> = HashMap::new();
    let mut written = 0u64;
    let progress = std::io::stderr().is_terminal();
    for (d, day) in days.iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
        rng.set_stream(1000 + d as u64);
        let skeletons = day_skeletons(&tenant, *day, day_counts[d], &mut rng);
        let day_start_us = day
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc()
            .timestamp_micros();
        let mut batch = BatchBuilder::new(*day);
        if config.duplicates > 0.0 {
            // Drawn apart from the events, which stay those of the table without them.
            let mut duplicate_rng = ChaCha8Rng::seed_from_u64(config.seed);
            duplicate_rng.set_stream(5000 + d as u64);
            batch.duplicates = Some((config.duplicates, duplicate_rng));
        }
        let mut attack_iter = {
            let mut a = attacks[d].clone();
            a.sort_by_key(|e| (e.offset_us, e.host));
            a.into_iter().peekable()
        };
        // Each day in files of consecutive events, as a streaming ingestion writes them.
        let per_file = skeletons
            .len()
            .div_ceil(config.layout.files_per_day.max(1))
            .max(1);
        for (i, s) in skeletons.into_iter().enumerate() {
            if i > 0 && i % per_file == 0 {
                written += batch.len() as u64;
                if batch.len() > 0 {
                    writer.write(batch.finish()?).await?;
                }
                writer.end_file().await?;
            }
            while let Some(a) = attack_iter.next_if(|a| a.offset_us <= s.offset_us) {
                batch.push_attack(&tenant, &a, day_start_us, *day, &mut labels);
                if batch.len() >= BATCH_ROWS {
                    written += batch.len() as u64;
                    writer.write(batch.finish()?).await?;
                }
            }
            batch.push_benign(&mut tenant, s, day_start_us, &mut rng);
            if batch.len() >= BATCH_ROWS {
                written += batch.len() as u64;
                writer.write(batch.finish()?).await?;
            }
        }
        for a in attack_iter {
            batch.push_attack(&tenant, &a, day_start_us, *day, &mut labels);
        }
        written += batch.len() as u64;
        if batch.len() > 0 {
            writer.write(batch.finish()?).await?;
        }
        writer.commit().await?;
        if progress {
            eprint!(
                "\rgenerate: day {}/{} ({day}), {written}/{} events, {:.0} s   ",
                d + 1,
                days.len(),
                config.events,
                started.elapsed().as_secs_f64()
            );
        }
    }
    if progress {
        eprintln!();
    }
    let deleted = match config.duplicates > 0.0 {
        true => crate::deletion_vectors::dedupe(writer.table_mut()).await?,
        false => Default::default(),
    };
    let mut labels: Vec<Label> = labels.into_values().collect();
    labels.sort_by(|a, b| a.key.cmp(&b.key));
    let labelled_groups = labels.len();
    writer.put_labels(&labels, config).await?;
    Ok(GenerateSummary {
        events: written - deleted.rows,
        attack_events,
        labelled_groups,
        version: writer.version(),
        deleted,
    })
}

/// Weekday volume is higher than weekend volume.
fn day_weight(day: NaiveDate) -> f64 {
    match day.weekday() {
        chrono::Weekday::Sat | chrono::Weekday::Sun => 0.55,
        _ => 1.0,
    }
}

/// Splits `total` into integer parts proportional to `weights`, exactly summing to `total`
/// (cumulative rounding).
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let mut out = Vec::with_capacity(weights.len());
    let mut cumulative = 0.0;
    let mut assigned = 0u64;
    for w in weights {
        cumulative += w;
        let target = ((cumulative / sum) * total as f64).round() as u64;
        let target = target.min(total);
        out.push(target - assigned);
        assigned = target;
    }
    if let Some(last) = out.last_mut() {
        *last += total - assigned;
    }
    out
}

/// Draws one day's benign events, sorted by time.
fn day_skeletons(
    tenant: &Tenant,
    day: NaiveDate,
    count: u64,
    rng: &mut ChaCha8Rng,
) -> Vec<Skeleton> {
    let weekend = matches!(day.weekday(), chrono::Weekday::Sat | chrono::Weekday::Sun);
    let host_weights: Vec<f64> = tenant
        .hosts
        .iter()
        .map(|h| {
            let quiet = weekend && h.role == catalog::Role::Workstation;
            h.activity * if quiet { 0.3 } else { 1.0 }
        })
        .collect();
    let per_host = apportion(count, &host_weights);
    let office_total: f64 = OFFICE_HOURS.iter().sum();
    let mut skeletons = Vec::with_capacity(count as usize);
    for (h, &n) in per_host.iter().enumerate() {
        let host = &tenant.hosts[h];
        let total = host.apps.last().map(|(_, c)| *c).unwrap_or(0.0);
        for _ in 0..n {
            let x = rng.random::<f64>() * total;
            let app = host
                .apps
                .partition_point(|(_, c)| *c <= x)
                .min(host.apps.len() - 1);
            let template = &host.apps[app].0;
            let hour_us = match template.timing {
                Timing::Background => rng.random_range(0..DAY_US),
                Timing::Interactive => {
                    let mut y = rng.random::<f64>() * office_total;
                    let mut hour = 0;
                    while hour < 23 && y >= OFFICE_HOURS[hour] {
                        y -= OFFICE_HOURS[hour];
                        hour += 1;
                    }
                    hour as i64 * 3_600_000_000 + rng.random_range(0..3_600_000_000)
                }
            };
            skeletons.push(Skeleton {
                offset_us: hour_us,
                host: h as u32,
                app: app as u32,
            });
        }
    }
    skeletons.sort_by_key(|s| (s.offset_us, s.host, s.app));
    skeletons
}

/// Builds Arrow batches of events.
struct BatchBuilder {
    date: i32,
    time: TimestampMicrosecondBuilder,
    event_id: Int32Builder,
    computer: StringBuilder,
    account: StringBuilder,
    account_type: StringBuilder,
    process: StringBuilder,
    new_process_name: StringBuilder,
    parent: StringBuilder,
    command_line: StringBuilder,
    logon_id: StringBuilder,
    elevation: StringBuilder,
    event_date: Date32Builder,
    scratch: String,
    rows: usize,
    /// The share of rows written twice, and the draws deciding which.
    duplicates: Option<(f64, ChaCha8Rng)>,
}

impl BatchBuilder {
    fn new(day: NaiveDate) -> Self {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        Self {
            date: (day - epoch).num_days() as i32,
            time: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            event_id: Int32Builder::new(),
            computer: StringBuilder::new(),
            account: StringBuilder::new(),
            account_type: StringBuilder::new(),
            process: StringBuilder::new(),
            new_process_name: StringBuilder::new(),
            parent: StringBuilder::new(),
            command_line: StringBuilder::new(),
            logon_id: StringBuilder::new(),
            elevation: StringBuilder::new(),
            event_date: Date32Builder::new(),
            scratch: String::new(),
            rows: 0,
            duplicates: None,
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    #[allow(clippy::too_many_arguments)]
    fn push_row(
        &mut self,
        time_us: i64,
        computer: &str,
        account: &tenant::Account,
        image: &str,
        parent: &str,
        command: &str,
        logon_id: u64,
    ) {
        let twice = self
            .duplicates
            .as_mut()
            .is_some_and(|(share, rng)| rng.random::<f64>() < *share);
        for _ in 0..if twice { 2 } else { 1 } {
            self.append_row(time_us, computer, account, image, parent, command, logon_id);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn append_row(
        &mut self,
        time_us: i64,
        computer: &str,
        account: &tenant::Account,
        image: &str,
        parent: &str,
        command: &str,
        logon_id: u64,
    ) {
        self.time.append_value(time_us);
        self.event_id.append_value(4688);
        self.computer.append_value(computer);
        self.account.append_value(&account.name);
        self.account_type.append_value(account.account_type);
        self.process.append_value(file_name(image));
        self.new_process_name.append_value(image);
        self.parent.append_value(parent);
        self.command_line.append_value(command);
        self.logon_id.append_value(format!("0x{logon_id:x}"));
        self.elevation.append_value(account.elevation);
        self.event_date.append_value(self.date);
        self.rows += 1;
    }

    fn push_benign(
        &mut self,
        tenant: &mut Tenant,
        s: Skeleton,
        day_start_us: i64,
        rng: &mut ChaCha8Rng,
    ) {
        let host = s.host as usize;
        let template: Template = tenant.hosts[host].apps[s.app as usize].0;
        let account = tenant.account_for(template.who, host, rng);
        let account = &tenant.accounts[account];
        let host = &tenant.hosts[host];
        let vars = Vars {
            user: &account.user,
            host: &host.name,
            domain: &tenant.domain,
        };
        let mut image = String::new();
        render(template.image, &vars, rng, &mut image);
        let mut command = std::mem::take(&mut self.scratch);
        command.clear();
        render(template.command, &vars, rng, &mut command);
        self.push_row(
            day_start_us + s.offset_us,
            &host.computer,
            account,
            &image,
            template.parent,
            &command,
            account.logon_id,
        );
        self.scratch = command;
    }

    fn push_attack(
        &mut self,
        tenant: &Tenant,
        a: &attacks::AttackEvent,
        day_start_us: i64,
        day: NaiveDate,
        labels: &mut HashMap<labels::LabelKey, Label>,
    ) {
        let host = &tenant.hosts[a.host];
        let account = &tenant.accounts[a.account];
        self.push_row(
            day_start_us + a.offset_us,
            &host.computer,
            account,
            &a.image,
            &a.parent,
            &a.command,
            account.logon_id + 0x51,
        );
        let key = labels::LabelKey {
            day,
            computer: host.computer.clone(),
            account: account.name.clone(),
            account_type: account.account_type.to_string(),
            process: file_name(&a.image).to_string(),
        };
        labels
            .entry(key.clone())
            .or_insert_with(|| Label {
                key,
                attack: a.kind.label().to_string(),
                attack_events: 0,
            })
            .attack_events += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.event_id.finish()),
            Arc::new(self.computer.finish()),
            Arc::new(self.account.finish()),
            Arc::new(self.account_type.finish()),
            Arc::new(self.process.finish()),
            Arc::new(self.new_process_name.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.command_line.finish()),
            Arc::new(self.logon_id.finish()),
            Arc::new(self.elevation.finish()),
            Arc::new(self.event_date.finish()),
        ];
        self.rows = 0;
        RecordBatch::try_new(event_schema(), columns)
            .map_err(|e| PipelineError::runtime(format!("building an event batch: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact_and_proportional() {
        let parts = apportion(1000, &[1.0, 1.0, 2.0]);
        assert_eq!(parts.iter().sum::<u64>(), 1000);
        assert_eq!(parts, vec![250, 250, 500]);
        assert_eq!(apportion(7, &[1.0; 3]).iter().sum::<u64>(), 7);
        assert_eq!(apportion(0, &[1.0; 3]), vec![0, 0, 0]);
    }

    #[test]
    fn skeletons_are_sorted_and_counted() {
        let tenant = Tenant::new(20, 3);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let day = NaiveDate::from_ymd_opt(2026, 11, 2).unwrap();
        let s = day_skeletons(&tenant, day, 5000, &mut rng);
        assert_eq!(s.len(), 5000);
        assert!(s.windows(2).all(|w| w[0].offset_us <= w[1].offset_us));
        assert!(s.iter().all(|x| (0..DAY_US).contains(&x.offset_us)));
    }
}
