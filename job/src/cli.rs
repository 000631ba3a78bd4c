//! Command-line interface.

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use crate::error::{JobError, Result};

/// procforest: anomalous process executions in Windows 4688 events, found with an isolation
/// forest on Ballista.
#[derive(Debug, Parser)]
#[command(name = "procforest", version, about)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "PROCFOREST_LOG_FORMAT"
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for pods and log collectors).
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a realistic synthetic table of 4688 events with injected attacks and labels.
    Generate(GenerateArgs),
    /// Convert the public sample events (msticpy, OTRF) into a Delta table.
    ImportSample(ImportSampleArgs),
    /// Find anomalous process executions: summaries → isolation forest → report.
    Run(Box<RunArgs>),
}

/// `procforest run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The Delta table of 4688 events (path or URL); default: the bundled real sample.
    #[arg(long, env = "PROCFOREST_TABLE")]
    pub table: Option<String>,
    /// Read this table version instead of the newest.
    #[arg(long, conflicts_with = "timestamp")]
    pub version: Option<u64>,
    /// Read the table as of this time (RFC 3339).
    #[arg(long)]
    pub timestamp: Option<String>,
    /// Ignore events after this time; the report window ends here (RFC 3339, or a date
    /// meaning the end of that day, UTC). Default: now; for the bundled sample, the end of
    /// its newest day.
    #[arg(long, env = "PROCFOREST_AS_OF")]
    pub as_of: Option<String>,
    /// Report window: groups whose interval overlaps (as-of − window, as-of] (e.g. 24h, 7d).
    #[arg(long, default_value = "24h", env = "PROCFOREST_WINDOW")]
    pub window: String,
    /// Days of history to train on (default: all).
    #[arg(long, env = "PROCFOREST_TRAIN_DAYS")]
    pub train_days: Option<u32>,
    /// Summary interval: day or hour.
    #[arg(long, default_value = "day", env = "PROCFOREST_INTERVAL")]
    pub interval: String,
    /// Trees in the forest.
    #[arg(long, default_value_t = 100, env = "PROCFOREST_TREES")]
    pub trees: usize,
    /// Rows per tree.
    #[arg(long, default_value_t = 100, env = "PROCFOREST_MAX_SAMPLES")]
    pub max_samples: usize,
    /// Seed of the sample and the model.
    #[arg(long, default_value_t = 42, env = "PROCFOREST_SEED")]
    pub seed: u64,
    /// Expected share of anomalies in (0, 0.5], or `auto` (offset −0.5).
    #[arg(long, default_value = "auto", env = "PROCFOREST_CONTAMINATION")]
    pub contamination: String,
    /// Partitions (parallel tasks per stage); default: this machine's cores.
    #[arg(long, env = "PROCFOREST_PARTITIONS")]
    pub partitions: Option<usize>,
    /// Ballista scheduler `df://HOST:PORT`; absent: Ballista standalone in this process.
    #[arg(long, env = "PROCFOREST_SCHEDULER")]
    pub scheduler: Option<String>,
    /// Folder for intermediate results (must be shared with executors on a cluster);
    /// default: a temporary folder.
    #[arg(long, env = "PROCFOREST_SCRATCH")]
    pub scratch: Option<String>,
    /// Write anomalies as JSON lines to this file, or `-` for stdout.
    #[arg(long)]
    pub json: Option<String>,
    /// Write every scored summary row to this Parquet file.
    #[arg(long)]
    pub scores_out: Option<std::path::PathBuf>,
    /// Append anomalies to this Delta table (re-runs of an as-of replace their rows).
    #[arg(long, env = "PROCFOREST_OUTPUT_DELTA")]
    pub output_delta: Option<String>,
    /// Write the model as JSON.
    #[arg(long)]
    pub model_out: Option<std::path::PathBuf>,
    /// Write the run manifest as JSON.
    #[arg(long, env = "PROCFOREST_MANIFEST")]
    pub manifest: Option<std::path::PathBuf>,
    /// A storage option for the table, KEY=VALUE (repeatable).
    #[arg(long = "storage-option", value_name = "KEY=VALUE")]
    pub storage_options: Vec<String>,
    /// Do not print the console table.
    #[arg(long)]
    pub quiet: bool,
}

/// Parses a duration such as `24h`, `90m`, `7d`, `3600s` or `2w` into microseconds.
pub fn parse_duration(setting: &str, text: &str) -> Result<i64> {
    let bad = || {
        JobError::bad_input(format!(
            "{setting} {text:?} is not a duration (e.g. 24h, 90m, 7d)"
        ))
    };
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds * 1_000_000)
        .filter(|&v| v > 0)
        .ok_or_else(bad)
}

/// Parses `--as-of`: RFC 3339, or a date meaning the last microsecond of that UTC day.
pub fn parse_as_of(text: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let date = parse_date("--as-of", text).map_err(|_| {
        JobError::bad_input(format!(
            "--as-of {text:?} is neither RFC 3339 (2026-11-27T06:00:00Z) nor a date (2026-11-27)"
        ))
    })?;
    Ok((date + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        - chrono::Duration::microseconds(1))
}

/// `procforest import-sample`.
#[derive(Debug, Args)]
pub struct ImportSampleArgs {
    /// The folder holding `msticpy/` and `otrf-security-datasets/`.
    #[arg(long, default_value = "../shared/data/events")]
    pub events_dir: std::path::PathBuf,
    /// Where to write the Delta table; it must not exist yet.
    #[arg(long, default_value = "examples/sample-4688")]
    pub out: String,
}

/// `procforest generate`.
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write the Delta table (path or URL); it must not exist yet.
    #[arg(long)]
    pub out: String,
    /// Total number of events.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: u64,
    /// Days of data.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Hosts in the tenant.
    #[arg(long, default_value_t = 200)]
    pub hosts: usize,
    /// Seed; the same settings and seed give the same table.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Last day of data (YYYY-MM-DD); default yesterday, UTC.
    #[arg(long)]
    pub end_date: Option<String>,
    /// Probability that a host gets an attack episode on a given day.
    #[arg(long, default_value_t = 0.01)]
    pub attack_rate: f64,
}

/// Parses a `YYYY-MM-DD` date, naming the setting on error.
pub fn parse_date(setting: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        JobError::bad_input(format!(
            "{setting} {text:?} is not a date (YYYY-MM-DD): {e}"
        ))
    })
}
