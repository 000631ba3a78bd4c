//! Why a run failed. The kind of an error decides whether the input is at fault (the
//! table, a file, a setting: exit 1) or the run (exit 2); it is never read from message
//! text. Errors keep the error that caused them as their source.
//!
//! Messages name settings through [`Setting`], so that each front end names them its own
//! way: [`PipelineError::render`] takes the names (the CLI passes its flags); `Display`
//! uses the settings' own names.

use std::fmt;

use procforest_cluster::ClusterError;

use crate::setting::{MAX_SAMPLES, MAX_TREE_ROWS, MAX_TREES, Setting};

/// A lower-level error kept as a source.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether an error is the input's fault or the run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input or configuration: the message names the culprit.
    BadInput,
    /// Anything else that went wrong while running.
    Runtime,
}

/// A run's failure.
#[derive(Debug)]
pub enum PipelineError {
    /// A setting is invalid before anything is read.
    Config(ConfigError),
    /// The cluster could not be reached or started, or stopped during the run.
    Cluster(ClusterError),
    /// The input (the table, a data file, the value of a setting) is not what a run needs.
    BadInput {
        /// The setting whose value is at fault, when one is.
        setting: Option<Setting>,
        /// What is wrong, naming the file, column or row.
        what: String,
        /// The error that revealed it.
        source: Option<BoxError>,
    },
    /// No events in the training window at or before the as-of time.
    NoEvents {
        /// The table.
        location: String,
        /// The window searched, as the as-of time and training days.
        window: NoEventsWindow,
    },
    /// Something failed while running.
    Runtime {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: Option<BoxError>,
    },
}

/// The training window a [`PipelineError::NoEvents`] searched.
#[derive(Debug, Clone)]
pub struct NoEventsWindow {
    /// The as-of time, RFC 3339.
    pub as_of: String,
    /// The training days, if bounded.
    pub train_days: Option<u32>,
}

/// Result with a [`PipelineError`].
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;

impl PipelineError {
    /// Bad input, described by `what`.
    pub fn bad_input(what: impl Into<String>) -> Self {
        PipelineError::BadInput {
            setting: None,
            what: what.into(),
            source: None,
        }
    }

    /// The value of `setting` is bad: `what` follows the setting's name.
    pub fn bad_setting(setting: Setting, what: impl Into<String>) -> Self {
        PipelineError::BadInput {
            setting: Some(setting),
            what: what.into(),
            source: None,
        }
    }

    /// A runtime failure, described by `what`.
    pub fn runtime(what: impl Into<String>) -> Self {
        PipelineError::Runtime {
            what: what.into(),
            source: None,
        }
    }

    /// Whether the input or the run is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PipelineError::Config(_) | PipelineError::BadInput { .. } => ErrorKind::BadInput,
            PipelineError::NoEvents { .. } => ErrorKind::BadInput,
            PipelineError::Cluster(e) if e.is_bad_input() => ErrorKind::BadInput,
            PipelineError::Cluster(_) | PipelineError::Runtime { .. } => ErrorKind::Runtime,
        }
    }

    /// The message, each setting named by `name` (the CLI passes its flags).
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        match self {
            PipelineError::Config(e) => e.render(name),
            PipelineError::Cluster(ClusterError::SchedulerUrl { url, problem }) => {
                format!("{} {url}: {problem}", name(Setting::Scheduler))
            }
            PipelineError::BadInput {
                setting,
                what,
                source,
            } => render_input(*setting, what, source.as_ref(), name),
            PipelineError::NoEvents { location, window } => {
                render_no_events(location, window, name)
            }
            PipelineError::Cluster(e) => e.to_string(),
            PipelineError::Runtime { what, source } => {
                render_input(None, what, source.as_ref(), name)
            }
        }
    }
}

impl fmt::Display for PipelineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Setting::name))
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Config(e) => Some(e),
            PipelineError::Cluster(e) => Some(e),
            PipelineError::BadInput { source, .. } | PipelineError::Runtime { source, .. } => {
                source.as_deref().map(|e| e as _)
            }
            PipelineError::NoEvents { .. } => None,
        }
    }
}

impl From<ConfigError> for PipelineError {
    fn from(e: ConfigError) -> Self {
        PipelineError::Config(e)
    }
}

impl From<ClusterError> for PipelineError {
    fn from(e: ClusterError) -> Self {
        PipelineError::Cluster(e)
    }
}

fn render_input(
    setting: Option<Setting>,
    what: &str,
    source: Option<&BoxError>,
    name: &dyn Fn(Setting) -> &'static str,
) -> String {
    let mut text = match setting {
        Some(setting) if what.is_empty() => name(setting).to_string(),
        Some(setting) => format!("{} {what}", name(setting)),
        None => what.to_string(),
    };
    if let Some(source) = source {
        text.push_str(&format!(": {source}"));
    }
    text
}

fn render_no_events(
    location: &str,
    window: &NoEventsWindow,
    name: &dyn Fn(Setting) -> &'static str,
) -> String {
    let as_of = name(Setting::AsOf);
    let searched = match window.train_days {
        Some(d) => format!("in the {d} days up to {as_of} {}", window.as_of),
        None => format!("at or before {as_of} {}", window.as_of),
    };
    format!(
        "{} {location}: no events {searched} (is {as_of} before all data?)",
        name(Setting::Table)
    )
}

/// A setting out of range.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// A count that must be at least 1.
    AtLeastOne(Setting),
    /// A duration that must be positive.
    NotPositive(Setting),
    /// The model would not fit in a plan.
    ModelTooLarge {
        /// Trees asked for.
        trees: usize,
        /// Rows per tree asked for.
        max_samples: usize,
    },
    /// A contamination outside (0, 0.5].
    Contamination(f64),
    /// Scoring by families with contamination `auto` (scikit-learn's offset has no
    /// meaning for the combined score).
    FamiliesNeedContamination,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.render(&Setting::name))
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// The message, each setting named by `name`.
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        match self {
            ConfigError::AtLeastOne(s) => format!("{} must be at least 1", name(*s)),
            ConfigError::NotPositive(s) => format!("{} must be positive", name(*s)),
            ConfigError::ModelTooLarge { trees, max_samples } => format!(
                "{} {trees} × {} {max_samples} is too large: at most {MAX_TREES} trees, \
                 {MAX_SAMPLES} samples per tree and {MAX_TREE_ROWS} in all",
                name(Setting::Trees),
                name(Setting::MaxSamples)
            ),
            ConfigError::Contamination(c) => {
                format!("{} {c} is not in (0, 0.5]", name(Setting::Contamination))
            }
            ConfigError::FamiliesNeedContamination => format!(
                "{} families needs {} as a fraction (the share of training rows to flag), \
                 not auto",
                name(Setting::Scoring),
                name(Setting::Contamination)
            ),
        }
    }
}

/// Turns other errors into a [`PipelineError`] that keeps them as its source.
pub trait Context<T> {
    /// A runtime failure while doing `what`.
    fn runtime(self, what: impl fmt::Display) -> Result<T>;
    /// Bad input, described by `what`.
    fn bad_input(self, what: impl fmt::Display) -> Result<T>;
    /// The value of `setting` is bad: `what` follows the setting's name.
    fn bad_setting(self, setting: Setting, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<BoxError>> Context<T> for std::result::Result<T, E> {
    fn runtime(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| PipelineError::Runtime {
            what: what.to_string(),
            source: Some(e.into()),
        })
    }
    fn bad_input(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| PipelineError::BadInput {
            setting: None,
            what: what.to_string(),
            source: Some(e.into()),
        })
    }
    fn bad_setting(self, setting: Setting, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| PipelineError::BadInput {
            setting: Some(setting),
            what: what.to_string(),
            source: Some(e.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(setting: Setting) -> &'static str {
        match setting {
            Setting::Table => "--table",
            Setting::AsOf => "--as-of",
            Setting::Trees => "--trees",
            Setting::MaxSamples => "--max-samples",
            _ => "--other",
        }
    }

    /// The kind comes from the variant: a message that reads like a file error is still a
    /// runtime failure, and one without a file is still bad input.
    #[test]
    fn the_kind_is_the_variants_not_the_messages() {
        let failed = PipelineError::runtime("parquet file not found: unexpected EOF");
        assert_eq!(failed.kind(), ErrorKind::Runtime);
        let bad = PipelineError::bad_setting(Setting::Table, "x: the table is empty");
        assert_eq!(bad.kind(), ErrorKind::BadInput);
        let config = PipelineError::from(ConfigError::AtLeastOne(Setting::Trees));
        assert_eq!(config.kind(), ErrorKind::BadInput);
        let url = PipelineError::from(ClusterError::SchedulerUrl {
            url: "http://x".into(),
            problem: "expected df://HOST:PORT".into(),
        });
        assert_eq!(url.kind(), ErrorKind::BadInput);
        let gone = PipelineError::from(ClusterError::Standalone("stopped".into()));
        assert_eq!(gone.kind(), ErrorKind::Runtime);
    }

    /// Settings are named by the front end's names where it renders, by their own in
    /// `Display`; the source stays reachable and is part of the message.
    #[test]
    fn settings_are_named_by_whoever_renders() {
        let too_large = PipelineError::from(ConfigError::ModelTooLarge {
            trees: 2000,
            max_samples: 100,
        });
        assert!(
            too_large
                .render(&flag)
                .starts_with("--trees 2000 × --max-samples 100")
        );
        assert!(
            too_large
                .to_string()
                .starts_with("trees 2000 × max_samples 100")
        );
        let none = PipelineError::NoEvents {
            location: "t".into(),
            window: NoEventsWindow {
                as_of: "2020-01-01T23:59:59Z".into(),
                train_days: None,
            },
        };
        assert_eq!(
            none.render(&flag),
            "--table t: no events at or before --as-of 2020-01-01T23:59:59Z \
             (is --as-of before all data?)"
        );
        let io = std::io::Error::other("disk on fire");
        let wrapped = Err::<(), _>(io)
            .bad_setting(Setting::Table, "t")
            .unwrap_err();
        assert_eq!(wrapped.render(&flag), "--table t: disk on fire");
        let source = std::error::Error::source(&wrapped).expect("the cause is kept");
        assert_eq!(source.to_string(), "disk on fire");
    }
}
