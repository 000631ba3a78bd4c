//! The command line: every flag of every command, and the parsing of their values. The
//! only place flags are named (besides the error messages in `error.rs`).

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};

use procforest_datasets::inject::RunsAs;
use procforest_pipeline::{
    config::{FeatureSet, Preset, Scoring},
    scores_out::ScoresFormat,
};

use crate::error::{CliError, Result};

/// procforest: anomalous process executions in Windows 4688 events, found with an isolation
/// forest on Ballista.
#[derive(Debug, Parser)]
#[command(name = "procforest", version, about)]
pub struct Cli {
    /// A settings file of `PROCFOREST_*=value` lines (environment variables win over it,
    /// flags over both).
    #[arg(long, global = true, env = "PROCFOREST_CONFIG")]
    pub config: Option<std::path::PathBuf>,
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

/// The model's inputs, as `--features` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FeaturesArg {
    /// The notebook's six features.
    Seed,
    /// The notebook's features plus pair and host-level rarity.
    Rarity,
    /// The event count and the rarity features only: no label codes, no interval.
    RarityOnly,
    /// The event count, the rarity features and the evidence of command lines, parents
    /// and first-seen processes (needs `ParentProcessName`).
    Evidence,
}

/// `--scoring` (see [`Scoring`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoringArg {
    /// One isolation forest over every feature (the notebook's).
    Forest,
    /// A forest per family of features (categories, rarity, command-line novelty,
    /// lineage, first seen), so that one family's strong evidence counts.
    Families,
}

impl From<ScoringArg> for Scoring {
    fn from(arg: ScoringArg) -> Self {
        match arg {
            ScoringArg::Forest => Scoring::Forest,
            ScoringArg::Families => Scoring::Families,
        }
    }
}

/// `--scores-format` (see [`ScoresFormat`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ScoresFormatArg {
    /// A folder of Parquet files.
    Parquet,
    /// A Delta table.
    Delta,
}

impl From<ScoresFormatArg> for ScoresFormat {
    fn from(arg: ScoresFormatArg) -> Self {
        match arg {
            ScoresFormatArg::Parquet => ScoresFormat::Parquet,
            ScoresFormatArg::Delta => ScoresFormat::Delta,
        }
    }
}

/// Presets (see [`Preset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PresetArg {
    /// The notebook's settings.
    Notebook,
    /// A nightly SOC report.
    Soc,
}

impl From<PresetArg> for Preset {
    fn from(arg: PresetArg) -> Self {
        match arg {
            PresetArg::Notebook => Preset::Notebook,
            PresetArg::Soc => Preset::Soc,
        }
    }
}

/// Whose events replayed attacks become (see [`RunsAs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InjectAsArg {
    /// Tenant accounts the seed picks.
    Mapped,
    /// Each host's machine account.
    Machine,
}

impl From<InjectAsArg> for RunsAs {
    fn from(arg: InjectAsArg) -> Self {
        match arg {
            InjectAsArg::Mapped => RunsAs::Mapped,
            InjectAsArg::Machine => RunsAs::Machine,
        }
    }
}

impl From<FeaturesArg> for FeatureSet {
    fn from(arg: FeaturesArg) -> Self {
        match arg {
            FeaturesArg::Seed => FeatureSet::Seed,
            FeaturesArg::Rarity => FeatureSet::Rarity,
            FeaturesArg::RarityOnly => FeatureSet::RarityOnly,
            FeaturesArg::Evidence => FeatureSet::Evidence,
        }
    }
}

/// Log formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line (for pods and log collectors).
    Json,
}

/// How a run shows where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// `terminal` when stderr is a terminal and logs are text, else `log`.
    Auto,
    /// A status line: the phase, its time, the scheduler's stages and tasks.
    Terminal,
    /// A progress log line every `--progress-interval` seconds (for pods).
    Log,
    /// Nothing beyond the phases' log lines.
    Off,
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
    /// Bring the summaries table (`--summaries`) up to date with the events, or with
    /// `--rebuild` compute it again from every event: a run whose report goes only to the
    /// outputs given (none by default).
    Summaries(Box<SummariesArgs>),
    /// Liveness check for a running driver: succeeds if its heartbeat file is fresh.
    Probe(ProbeArgs),
    /// Deliver a dead-letter file of Azure Monitor records left by a failed run.
    Resend(ResendArgs),
    /// Measure detection quality against a table's ground-truth labels, per feature set.
    Evaluate(Box<EvaluateArgs>),
}

/// `procforest summaries`: the run's settings, and whether to rebuild.
#[derive(Debug, Args)]
pub struct SummariesArgs {
    /// Compute every interval from the events and replace the whole table.
    #[arg(long)]
    pub rebuild: bool,
    /// The run's settings (`--summaries` required).
    #[command(flatten)]
    pub run: RunArgs,
}

/// `procforest evaluate`: the run's settings (its `--json` receives the metrics) and the
/// feature sets to compare.
#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Presets to evaluate, comma-separated, each with its own settings (flags given
    /// beside them override them all).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub presets: Vec<PresetArg>,
    /// Feature sets to evaluate, comma-separated, each with the run's other settings;
    /// default `seed,rarity` when no preset is given.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub feature_sets: Vec<FeaturesArg>,
    /// Replay only this many of the attack file's scenarios (its distinct labels), chosen by
    /// `--inject-seed`; default: all.
    #[arg(long, requires = "inject")]
    pub inject_scenarios: Option<usize>,
    /// Whose events the replayed attacks become: `mapped` (tenant accounts chosen by the
    /// seed) or `machine` (each host's machine account, as an attacker running as SYSTEM).
    #[arg(long, value_enum, default_value = "mapped", requires = "inject")]
    pub inject_as: InjectAsArg,
    /// Keep the table with the attacks replayed in this new folder (to run on it or read
    /// it afterwards); default: a temporary folder, removed at the end.
    #[arg(long, value_name = "DIR", requires = "inject")]
    pub inject_keep: Option<std::path::PathBuf>,
    /// Replay the labelled attack events of this file (JSON lines of SecurityEvent columns,
    /// OTRF's raw JSON lines, or msticpy's CSV) into a copy of the table's report day, on
    /// the tenant's hosts and accounts, and measure against them.
    #[arg(long, value_name = "FILE")]
    pub inject: Option<std::path::PathBuf>,
    /// The seed of the replay's choice of hosts and accounts.
    #[arg(long, default_value_t = 1)]
    pub inject_seed: u64,
    /// The run's settings.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Azure Monitor (Logs Ingestion API) settings.
#[derive(Debug, Clone, Args)]
pub struct MonitorArgs {
    /// Data collection endpoint (or the DCR's logs ingestion endpoint), https://…
    #[arg(long, env = "PROCFOREST_MONITOR_ENDPOINT")]
    pub monitor_endpoint: Option<String>,
    /// The data collection rule's immutable id (dcr-…).
    #[arg(long, env = "PROCFOREST_MONITOR_DCR")]
    pub monitor_dcr: Option<String>,
    /// The DCR's input stream (Custom-NAME).
    #[arg(long, env = "PROCFOREST_MONITOR_STREAM")]
    pub monitor_stream: Option<String>,
    /// Allow http:// endpoint and authority (loopback tests only).
    #[arg(long, env = "PROCFOREST_MONITOR_ALLOW_HTTP")]
    pub monitor_allow_http: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "60s", env = "PROCFOREST_MONITOR_TIMEOUT")]
    pub monitor_timeout: String,
    /// Bound on the whole delivery, retries included.
    #[arg(long, default_value = "10m", env = "PROCFOREST_MONITOR_MAX_TIME")]
    pub monitor_max_time: String,
}

/// `procforest resend`.
#[derive(Debug, Args)]
pub struct ResendArgs {
    /// The dead-letter file (JSON lines of records) a failed run wrote.
    pub path: std::path::PathBuf,
    /// Where to send.
    #[command(flatten)]
    pub monitor: MonitorArgs,
}

/// `procforest probe`.
#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The heartbeat file a `run` keeps touching (`--heartbeat-file`).
    #[arg(long, env = "PROCFOREST_HEARTBEAT_FILE")]
    pub heartbeat_file: std::path::PathBuf,
    /// Oldest acceptable heartbeat (e.g. 10m).
    #[arg(long, default_value = "10m")]
    pub max_age: String,
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
    /// A named choice of features, samples per tree and threshold: `notebook` (the
    /// notebook's settings) or `soc` (a nightly SOC report: see README). Flags given beside
    /// it override it.
    #[arg(
        long,
        value_enum,
        default_value = "notebook",
        env = "PROCFOREST_PRESET"
    )]
    pub preset: PresetArg,
    /// The model's inputs: `seed` (the notebook's six), `rarity` (plus pair and host-level
    /// rarity), `rarity-only`, or `evidence` (count, rarity, command-line novelty, lineage
    /// and first seen). Default: the preset's.
    #[arg(long, value_enum, env = "PROCFOREST_FEATURES")]
    pub features: Option<FeaturesArg>,
    /// How rows are scored: `forest` (one isolation forest over every feature) or
    /// `families` (a forest per family of features; a row's score is its strongest
    /// family's p-value with a quarter of the others': see EVALUATION.md). Default: the
    /// preset's (notebook forest, soc families).
    #[arg(long, value_enum, env = "PROCFOREST_SCORING")]
    pub scoring: Option<ScoringArg>,
    /// Trees in the forest (in each, scoring by families). Default: the preset's (100).
    #[arg(long, env = "PROCFOREST_TREES")]
    pub trees: Option<usize>,
    /// Rows per tree. Default: the preset's (notebook 100, soc 256).
    #[arg(long, env = "PROCFOREST_MAX_SAMPLES")]
    pub max_samples: Option<usize>,
    /// Seed of the sample and the model.
    #[arg(long, default_value_t = 42, env = "PROCFOREST_SEED")]
    pub seed: u64,
    /// Expected share of anomalies in (0, 0.5], or `auto` (offset −0.5). Default: the
    /// preset's (notebook auto, soc 0.01).
    #[arg(long, env = "PROCFOREST_CONTAMINATION")]
    pub contamination: Option<String>,
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
    /// Remove other runs' folders in the scratch that showed no sign of life for this
    /// long (a run that was killed leaves its folder; a live run marks its own every
    /// minute).
    #[arg(long, default_value = "15m", env = "PROCFOREST_SCRATCH_STALE_AFTER")]
    pub scratch_stale_after: String,
    /// Keep the summaries in this Delta table (a path or URL, like --table's): a run
    /// counts only the intervals whose source files changed since it was written, and
    /// reads the others' rows from it.
    #[arg(long, env = "PROCFOREST_SUMMARIES")]
    pub summaries: Option<String>,
    /// Compute every interval from the events and replace the whole summaries table
    /// (after a fault in the table, or to start it again).
    #[arg(long, requires = "summaries")]
    pub rebuild_summaries: bool,
    /// Write anomalies as JSON lines to this file, or `-` for stdout.
    #[arg(long)]
    pub json: Option<String>,
    /// Write every scored summary row into this folder as Parquet files (a path, or a URL
    /// the executors can write to); written by the executors, committed at the end.
    #[arg(long)]
    pub scores_out: Option<String>,
    /// What `--scores-out` is: `parquet` (a folder of Parquet files) or `delta` (a Delta
    /// table, replaced by each run in one commit).
    #[arg(
        long,
        value_enum,
        default_value = "parquet",
        requires = "scores_out",
        env = "PROCFOREST_SCORES_FORMAT"
    )]
    pub scores_format: ScoresFormatArg,
    /// Append anomalies to this Delta table (re-runs of an as-of replace their rows).
    #[arg(long, env = "PROCFOREST_OUTPUT_DELTA")]
    pub output_delta: Option<String>,
    /// Write the run as one self-contained HTML page (scores, anomalies, their evidence).
    #[arg(long, env = "PROCFOREST_REPORT_HTML")]
    pub report_html: Option<std::path::PathBuf>,
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
    /// Also send the anomalies to `azure-monitor` (Logs Ingestion API).
    #[arg(long, value_parser = ["azure-monitor"], env = "PROCFOREST_SINK")]
    pub sink: Option<String>,
    /// Azure Monitor settings.
    #[command(flatten)]
    pub monitor: MonitorArgs,
    /// Where records Azure Monitor did not accept are kept (JSON lines for `procforest
    /// resend`); default `procforest-dead-letter-<run id>.jsonl` in the current folder.
    #[arg(long, env = "PROCFOREST_MONITOR_DEAD_LETTER")]
    pub monitor_dead_letter: Option<std::path::PathBuf>,
    /// Touch this file every 15 s while running (for `procforest probe` liveness checks).
    #[arg(long, env = "PROCFOREST_HEARTBEAT_FILE")]
    pub heartbeat_file: Option<std::path::PathBuf>,
    /// How the run shows where it is: a terminal status line, progress log lines, or off.
    #[arg(long, value_enum, default_value = "auto", env = "PROCFOREST_PROGRESS")]
    pub progress: ProgressMode,
    /// Seconds between progress log lines.
    #[arg(long, default_value = "10", env = "PROCFOREST_PROGRESS_INTERVAL")]
    pub progress_interval: f64,
    /// Ground-truth labels to check the report against, recorded in the manifest (a
    /// generated table's `TABLE/_procforest/labels.parquet`).
    #[arg(long)]
    pub labels: Option<String>,
}

/// Parses a duration such as `24h`, `90m`, `7d`, `3600s` or `2w` into microseconds.
pub fn parse_duration(setting: &str, text: &str) -> Result<i64> {
    let bad = || {
        CliError::Usage(format!(
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
        CliError::Usage(format!(
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
    /// Share of events ingested twice and then deleted by a MERGE-style dedupe that
    /// writes deletion vectors (alternately inline and in a shared file), as the usual
    /// ingestion leaves a Databricks table; the rows left are the table generated
    /// without duplicates.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Files per day, each a run of consecutive events, as streaming ingestion writes
    /// them.
    #[arg(long, default_value_t = 1)]
    pub files_per_day: usize,
    /// No partition column (as a liquid-clustered table): files are found by their
    /// statistics alone.
    #[arg(long)]
    pub unpartitioned: bool,
    /// `TimeGenerated` as `timestamp_ntz`, the UTC wall-clock time without a zone.
    #[arg(long)]
    pub naive_time: bool,
}

/// Parses a `YYYY-MM-DD` date, naming the setting on error.
pub fn parse_date(setting: &str, text: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        CliError::Usage(format!(
            "{setting} {text:?} is not a date (YYYY-MM-DD): {e}"
        ))
    })
}

impl MonitorArgs {
    /// The settings, naming whichever is missing.
    pub fn settings(&self) -> Result<procforest_sinks::azure_monitor::MonitorSettings> {
        let need = |v: &Option<String>, flag: &str| {
            v.clone()
                .ok_or_else(|| CliError::Usage(format!("the azure-monitor sink needs {flag}")))
        };
        let micros = |setting: &str, text: &str| -> Result<std::time::Duration> {
            Ok(std::time::Duration::from_micros(
                parse_duration(setting, text)? as u64,
            ))
        };
        Ok(procforest_sinks::azure_monitor::MonitorSettings {
            endpoint: need(&self.monitor_endpoint, "--monitor-endpoint")?,
            dcr: need(&self.monitor_dcr, "--monitor-dcr")?,
            stream: need(&self.monitor_stream, "--monitor-stream")?,
            allow_http: self.monitor_allow_http,
            request_timeout: micros("--monitor-timeout", &self.monitor_timeout)?,
            max_time: micros("--monitor-max-time", &self.monitor_max_time)?,
        })
    }
}

/// The environment variables the flags of every command read, and the two read directly.
fn environment_settings() -> std::collections::BTreeSet<String> {
    fn walk(command: &clap::Command, out: &mut std::collections::BTreeSet<String>) {
        out.extend(
            command
                .get_arguments()
                .filter_map(|arg| arg.get_env())
                .map(|env| env.to_string_lossy().into_owned()),
        );
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = ["PROCFOREST_LOG", "PROCFOREST_CONFIG"]
        .map(String::from)
        .into();
    walk(&<Cli as clap::CommandFactory>::command(), &mut out);
    out
}

/// Reads a settings file of `KEY=value` lines (`#` comments) into the environment for the
/// keys not already set, so flags > environment > file. Values may be quoted.
/// `PROCFOREST_` keys must be settings procforest reads.
pub fn load_config_file(path: &std::path::Path) -> Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("--config {}: {e}", path.display())))?;
    let known = environment_settings();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line.split_once('=').ok_or_else(|| {
            CliError::Usage(format!(
                "--config {}, line {}: expected KEY=value",
                path.display(),
                i + 1
            ))
        })?;
        let key = key.trim();
        if !key.starts_with("PROCFOREST_") && !key.starts_with("AZURE_") {
            return Err(CliError::Usage(format!(
                "--config {}, line {}: {key} is not a PROCFOREST_ or AZURE_ setting",
                path.display(),
                i + 1
            )));
        }
        // A misspelt setting would otherwise be ignored without a word.
        if key.starts_with("PROCFOREST_") && !known.contains(key) {
            return Err(CliError::Usage(format!(
                "--config {}, line {}: {key} is no procforest setting (each flag's \
                 environment variable, as `procforest run --help` shows it)",
                path.display(),
                i + 1
            )));
        }
        let value = value.trim().trim_matches('"').to_string();
        out.push((key.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<Vec<(String, String)>> {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), text).unwrap();
        load_config_file(file.path())
    }

    #[test]
    fn config_files_set_known_settings_and_refuse_misspelt_ones() {
        let read = config(
            "# nightly\nPROCFOREST_TREES = 200\nPROCFOREST_TABLE=\"az://e/t\"\nAZURE_CLIENT_ID=x\n",
        )
        .unwrap();
        assert_eq!(
            read,
            [
                ("PROCFOREST_TREES".to_string(), "200".to_string()),
                ("PROCFOREST_TABLE".to_string(), "az://e/t".to_string()),
                ("AZURE_CLIENT_ID".to_string(), "x".to_string()),
            ]
        );
        let error = config("PROCFOREST_TREES=10\nPROCFOREST_TREEES=10\n").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("line 2: PROCFOREST_TREEES is no procforest setting"),
            "{error}"
        );
        let error = config("HOME=/tmp\n").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("line 1: HOME is not a PROCFOREST_"),
            "{error}"
        );
        let error = config("PROCFOREST_TREES\n").unwrap_err();
        assert!(
            error.to_string().contains("line 1: expected KEY=value"),
            "{error}"
        );
    }
}
