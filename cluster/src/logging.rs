//! One tracing setup for the three binaries: human-readable lines on a terminal, one JSON
//! object per line in pods and log collectors, always on stderr. On a terminal a run may
//! keep a status line at the bottom ([`set_status_line`]): each log line clears it, is
//! written, and draws it again, so the two never mix.

use std::{
    io::Write,
    sync::{Mutex, MutexGuard},
};

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
        .with_writer(|| EventWriter(Vec::new()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// The status line now drawn at the bottom of the terminal (empty: none).
static STATUS_LINE: Mutex<String> = Mutex::new(String::new());

/// Erases the terminal's current line.
const CLEAR_LINE: &str = "\r\x1b[2K";

fn status_line() -> MutexGuard<'static, String> {
    STATUS_LINE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Draws `line` as the status line (replacing the one drawn before). For terminals only.
pub fn set_status_line(line: &str) {
    let mut status = status_line();
    line.clone_into(&mut status);
    let _ = write!(std::io::stderr().lock(), "{CLEAR_LINE}{line}");
}

/// Replaces the status line by `line`, kept as an ordinary line; no status line remains.
pub fn finish_status_line(line: &str) {
    let mut status = status_line();
    status.clear();
    let _ = writeln!(std::io::stderr().lock(), "{CLEAR_LINE}{line}");
}

/// Removes the status line, if one is drawn.
pub fn clear_status_line() {
    let mut status = status_line();
    if !status.is_empty() {
        status.clear();
        let _ = write!(std::io::stderr().lock(), "{CLEAR_LINE}");
    }
}

/// One log event, written to stderr in one piece when dropped, around the status line.
struct EventWriter(Vec<u8>);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        let status = status_line();
        let mut stderr = std::io::stderr().lock();
        if status.is_empty() {
            let _ = stderr.write_all(&self.0);
        } else {
            let _ = write!(stderr, "{CLEAR_LINE}");
            let _ = stderr.write_all(&self.0);
            let _ = write!(stderr, "{status}");
        }
    }
}
