//! One tracing setup for the three binaries: human-readable lines on a terminal, one JSON
//! object per line in pods and log collectors, always on stderr.

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber: the filter comes from environment variable
/// `filter_env` when set (e.g. `PROCFOREST_LOG=debug`), else `default_filter`.
pub fn init(format: LogFormat, filter_env: &str, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env(filter_env)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
