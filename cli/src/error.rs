//! The CLI's errors and exit codes: 0 success, 1 bad input or configuration (usage errors
//! included), 2 runtime failure, 130 / 143 interrupted. The code comes from the error's
//! kind; messages name settings by their flags.

use procforest_pipeline::{ErrorKind, PipelineError, Setting};
use procforest_sinks::SinkError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or settings file could not be parsed.
    #[error("{0}")]
    Usage(String),
    /// The run failed.
    #[error("{}", .0.render(&flag))]
    Pipeline(#[from] PipelineError),
    /// An output failed.
    #[error("{}", .0.render(&sink_flag))]
    Sink(#[from] SinkError),
    /// The process could not start its runtime.
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// A heartbeat too old, or another failure of a command's own.
    #[error("{0}")]
    Failed(String),
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        let kind = match self {
            CliError::Usage(_) => ErrorKind::BadInput,
            CliError::Pipeline(e) => e.kind(),
            CliError::Sink(e) => e.kind(),
            CliError::Runtime(_) | CliError::Failed(_) => ErrorKind::Runtime,
        };
        match kind {
            ErrorKind::BadInput => 1,
            ErrorKind::Runtime => 2,
        }
    }
}

/// Result with a [`CliError`].
pub type Result<T, E = CliError> = std::result::Result<T, E>;

/// The flag that sets a run's `setting`.
pub fn flag(setting: Setting) -> &'static str {
    match setting {
        Setting::Table => "--table",
        Setting::Version => "--version",
        Setting::Timestamp => "--timestamp",
        Setting::StorageOptions => "--storage-option",
        Setting::AsOf => "--as-of",
        Setting::Window => "--window",
        Setting::TrainDays => "--train-days",
        Setting::Interval => "--interval",
        Setting::Features => "--features",
        Setting::Trees => "--trees",
        Setting::MaxSamples => "--max-samples",
        Setting::Contamination => "--contamination",
        Setting::Scoring => "--scoring",
        Setting::Partitions => "--partitions",
        Setting::Scheduler => "--scheduler",
        Setting::Scratch => "--scratch",
        Setting::ScoresOut => "--scores-out",
        Setting::Summaries => "--summaries",
    }
}

/// The flag that sets a sink's `setting`.
pub fn sink_flag(setting: procforest_sinks::Setting) -> &'static str {
    use procforest_sinks::Setting as S;
    match setting {
        S::OutputDelta => "--output-delta",
        S::MonitorEndpoint => "--monitor-endpoint",
        S::MonitorDcr => "--monitor-dcr",
        S::MonitorStream => "--monitor-stream",
        S::MonitorAllowHttp => "--monitor-allow-http",
        S::Json => "--json",
        S::ModelOut => "--model-out",
        S::Manifest => "--manifest",
        S::ReportHtml => "--report-html",
    }
}
