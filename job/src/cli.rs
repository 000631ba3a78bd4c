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
    #[arg(long, global = true, value_enum, default_value = "text", env = "PROCFOREST_LOG_FORMAT")]
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
        JobError::bad_input(format!("{setting} {text:?} is not a date (YYYY-MM-DD): {e}"))
    })
}
