//! Why a sink failed. As in the pipeline, the kind decides the exit code (the output's
//! setting at fault: 1; the delivery: 2) and messages name settings through [`Setting`].

use std::fmt;

use procforest_pipeline::{ErrorKind, PipelineError, error::BoxError};

/// A setting of the sinks, as their errors name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// The Delta table of anomalies.
    OutputDelta,
    /// Azure Monitor's data collection endpoint.
    MonitorEndpoint,
    /// Azure Monitor's data collection rule.
    MonitorDcr,
    /// Azure Monitor's stream.
    MonitorStream,
    /// Whether plain `http://` endpoints are allowed (loopback tests).
    MonitorAllowHttp,
}

impl Setting {
    /// The setting's own name.
    pub fn name(self) -> &'static str {
        match self {
            Setting::OutputDelta => "output_delta",
            Setting::MonitorEndpoint => "monitor_endpoint",
            Setting::MonitorDcr => "monitor_dcr",
            Setting::MonitorStream => "monitor_stream",
            Setting::MonitorAllowHttp => "monitor_allow_http",
        }
    }
}

/// A sink's failure.
#[derive(Debug)]
pub enum SinkError {
    /// Writing a file failed (see [`procforest_pipeline::files`]).
    File(PipelineError),
    /// An output's setting or input is not usable.
    BadInput {
        /// The setting at fault, if one is.
        setting: Option<Setting>,
        /// What is wrong.
        what: String,
        /// The error that revealed it.
        source: Option<BoxError>,
    },
    /// A plain `http://` endpoint without the setting that allows it.
    PlainHttp {
        /// The endpoint.
        endpoint: String,
    },
    /// Delivering failed.
    Runtime {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: Option<BoxError>,
    },
}

/// Result with a [`SinkError`].
pub type Result<T, E = SinkError> = std::result::Result<T, E>;

impl SinkError {
    /// Bad input, described by `what`.
    pub fn bad_input(what: impl Into<String>) -> Self {
        SinkError::BadInput {
            setting: None,
            what: what.into(),
            source: None,
        }
    }

    /// The value of `setting` is bad: `what` follows the setting's name.
    pub fn bad_setting(setting: Setting, what: impl Into<String>) -> Self {
        SinkError::BadInput {
            setting: Some(setting),
            what: what.into(),
            source: None,
        }
    }

    /// A delivery failure, described by `what`.
    pub fn runtime(what: impl Into<String>) -> Self {
        SinkError::Runtime {
            what: what.into(),
            source: None,
        }
    }

    /// Whether the input or the delivery is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkError::File(e) => e.kind(),
            SinkError::BadInput { .. } | SinkError::PlainHttp { .. } => ErrorKind::BadInput,
            SinkError::Runtime { .. } => ErrorKind::Runtime,
        }
    }

    /// The message, each setting named by `name`.
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        let (setting, what, source) = match self {
            SinkError::File(e) => return e.to_string(),
            SinkError::PlainHttp { endpoint } => {
                return format!(
                    "{} {endpoint}: plain http is refused (tokens would travel in clear); {} \
                     is for loopback tests only",
                    name(Setting::MonitorEndpoint),
                    name(Setting::MonitorAllowHttp)
                );
            }
            SinkError::BadInput {
                setting,
                what,
                source,
            } => (*setting, what, source),
            SinkError::Runtime { what, source } => (None, what, source),
        };
        let mut text = match setting {
            Some(setting) => format!("{} {what}", name(setting)),
            None => what.clone(),
        };
        if let Some(source) = source {
            text.push_str(&format!(": {source}"));
        }
        text
    }
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(&Setting::name))
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::File(e) => Some(e),
            SinkError::PlainHttp { .. } => None,
            SinkError::BadInput { source, .. } | SinkError::Runtime { source, .. } => {
                source.as_deref().map(|e| e as _)
            }
        }
    }
}

impl From<PipelineError> for SinkError {
    fn from(e: PipelineError) -> Self {
        SinkError::File(e)
    }
}

/// Turns other errors into a [`SinkError`] that keeps them as its source.
pub trait Context<T> {
    /// A delivery failure while doing `what`.
    fn runtime(self, what: impl fmt::Display) -> Result<T>;
    /// Bad input, described by `what`.
    fn bad_input(self, what: impl fmt::Display) -> Result<T>;
    /// The value of `setting` is bad: `what` follows the setting's name.
    fn bad_setting(self, setting: Setting, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<BoxError>> Context<T> for std::result::Result<T, E> {
    fn runtime(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| SinkError::Runtime {
            what: what.to_string(),
            source: Some(e.into()),
        })
    }
    fn bad_input(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| SinkError::BadInput {
            setting: None,
            what: what.to_string(),
            source: Some(e.into()),
        })
    }
    fn bad_setting(self, setting: Setting, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| SinkError::BadInput {
            setting: Some(setting),
            what: what.to_string(),
            source: Some(e.into()),
        })
    }
}
