//! Why a sink failed. As in the pipeline, the kind decides the exit code (the output's
//! setting or input at fault: 1; the delivery: 2) and messages name settings through
//! [`Setting`]. Failures of no setting are the pipeline's own [`PipelineError`], made with
//! its `Context` trait.

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
    /// The JSON lines file.
    Json,
    /// The model file.
    ModelOut,
    /// The manifest file.
    Manifest,
    /// The HTML page.
    ReportHtml,
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
            Setting::Json => "json",
            Setting::ModelOut => "model_out",
            Setting::Manifest => "manifest",
            Setting::ReportHtml => "report_html",
        }
    }
}

/// A sink's failure.
#[derive(Debug)]
pub enum SinkError {
    /// Writing or delivering failed, or its input was bad, described as the pipeline
    /// describes its own failures.
    Failed(PipelineError),
    /// A sink's setting is not usable.
    Setting {
        /// The setting at fault.
        setting: Setting,
        /// What is wrong, after the setting's name.
        what: String,
        /// The error that revealed it.
        source: Option<BoxError>,
    },
    /// A plain `http://` endpoint without the setting that allows it.
    PlainHttp {
        /// The endpoint.
        endpoint: String,
    },
}

/// Result with a [`SinkError`].
pub type Result<T, E = SinkError> = std::result::Result<T, E>;

impl SinkError {
    /// Bad input, described by `what`.
    pub fn bad_input(what: impl Into<String>) -> Self {
        SinkError::Failed(PipelineError::bad_input(what))
    }

    /// A delivery failure, described by `what`.
    pub fn runtime(what: impl Into<String>) -> Self {
        SinkError::Failed(PipelineError::runtime(what))
    }

    /// The value of `setting` is bad: `what` follows the setting's name.
    pub fn bad_setting(setting: Setting, what: impl Into<String>) -> Self {
        SinkError::Setting {
            setting,
            what: what.into(),
            source: None,
        }
    }

    /// The value of `setting` is bad, as `source` revealed.
    pub fn setting(setting: Setting, what: impl fmt::Display, source: impl Into<BoxError>) -> Self {
        SinkError::Setting {
            setting,
            what: what.to_string(),
            source: Some(source.into()),
        }
    }

    /// Whether the input or the delivery is at fault.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SinkError::Failed(e) => e.kind(),
            SinkError::Setting { .. } | SinkError::PlainHttp { .. } => ErrorKind::BadInput,
        }
    }

    /// The message, each setting named by `name`.
    pub fn render(&self, name: &dyn Fn(Setting) -> &'static str) -> String {
        match self {
            SinkError::Failed(e) => e.to_string(),
            SinkError::PlainHttp { endpoint } => format!(
                "{} {endpoint}: plain http is refused (tokens would travel in clear); {} is for \
                 loopback tests only",
                name(Setting::MonitorEndpoint),
                name(Setting::MonitorAllowHttp)
            ),
            SinkError::Setting {
                setting,
                what,
                source,
            } => {
                let mut text = format!("{} {what}", name(*setting));
                if let Some(source) = source {
                    text.push_str(&format!(": {source}"));
                }
                text
            }
        }
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
            SinkError::Failed(e) => Some(e),
            SinkError::Setting { source, .. } => source.as_deref().map(|e| e as _),
            SinkError::PlainHttp { .. } => None,
        }
    }
}

impl From<PipelineError> for SinkError {
    fn from(e: PipelineError) -> Self {
        SinkError::Failed(e)
    }
}
