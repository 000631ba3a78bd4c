//! Where a run's [`Report`] goes: the model file, JSON lines, a Delta table of anomalies,
//! the HTML page, the console, Azure Monitor, and last the manifest. Each output is a [`Sink`]; [`deliver`]
//! runs the ones an [`Outputs`] asks for, in that order. Files appear only when complete
//! (`procforest_pipeline::files`), so a failed run leaves no partial output.

pub mod anomaly_delta;
pub mod azure_monitor;
pub mod console;
pub mod error;
pub mod html_report;
pub mod json_lines;
pub mod sink;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use procforest_pipeline::{Report, files::write_file};

pub use azure_monitor::MonitorOutput;
pub use error::{Result, Setting, SinkError};
pub use sink::Sink;

/// Which outputs a run writes, besides the scores the pipeline writes itself.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Outputs {
    /// Print the console table.
    pub console: bool,
    /// JSON lines path, or `-` for stdout.
    pub json: Option<String>,
    /// Delta table of anomalies.
    pub output_delta: Option<String>,
    /// Model JSON.
    pub model_out: Option<PathBuf>,
    /// The run as an HTML page.
    pub report_html: Option<PathBuf>,
    /// Run manifest JSON.
    pub manifest: Option<PathBuf>,
    /// Azure Monitor delivery.
    pub monitor: Option<MonitorOutput>,
}

impl Outputs {
    /// Refuses, before the run, outputs that could not be written after it: a file whose
    /// folder does not exist or that is a folder, an anomalies table of another schema.
    pub async fn check(&self) -> Result<()> {
        let files = [
            (
                self.json.as_deref().filter(|j| *j != "-").map(Path::new),
                Setting::Json,
            ),
            (self.model_out.as_deref(), Setting::ModelOut),
            (self.manifest.as_deref(), Setting::Manifest),
            (self.report_html.as_deref(), Setting::ReportHtml),
        ];
        for (path, setting) in files {
            if let Some(path) = path {
                check_file(path, setting)?;
            }
        }
        if let Some(location) = &self.output_delta {
            anomaly_delta::check_table(location).await?;
        }
        Ok(())
    }

    /// The sinks before Azure Monitor and the manifest, in delivery order.
    fn sinks(&self) -> Vec<Box<dyn Sink>> {
        let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
        if let Some(path) = &self.model_out {
            sinks.push(Box::new(ModelFile(path.clone())));
        }
        if let Some(target) = &self.json {
            sinks.push(Box::new(json_lines::JsonLines(target.clone())));
        }
        if let Some(location) = &self.output_delta {
            sinks.push(Box::new(anomaly_delta::AnomalyDelta(location.clone())));
        }
        if let Some(path) = &self.report_html {
            sinks.push(Box::new(html_report::HtmlReport {
                path: path.clone(),
                anomalies_table: self.output_delta.clone(),
            }));
        }
        if self.console {
            sinks.push(Box::new(console::Console));
        }
        sinks
    }
}

/// Delivers `report` to every output, timing them as the manifest's `outputs` phase. An
/// Azure Monitor failure (its records kept in a dead-letter file) still lets the manifest
/// be written, then fails the delivery.
pub async fn deliver(report: &mut Report, outputs: &Outputs) -> Result<()> {
    let started = Instant::now();
    for mut sink in outputs.sinks() {
        sink.deliver(report).await?;
    }
    let monitor_failure = match &outputs.monitor {
        Some(monitor) => {
            let (entry, failure) = azure_monitor::deliver_report(report, monitor).await;
            report.manifest.azure_monitor = Some(entry);
            failure
        }
        None => None,
    };
    report
        .manifest
        .phases
        .insert("outputs", started.elapsed().as_secs_f64());
    report.manifest.finished_at = chrono::Utc::now().to_rfc3339();
    if let Some(path) = &outputs.manifest {
        ManifestFile(path.clone()).deliver(report).await?;
    }
    match monitor_failure {
        Some(e) => {
            eprintln!("{}", report.manifest.summary());
            Err(e)
        }
        None => Ok(()),
    }
}

/// A file output can be written at `path`: its folder exists and it is no folder itself.
fn check_file(path: &Path, setting: Setting) -> Result<()> {
    if let Some(problem) = procforest_pipeline::files::missing_folder(path) {
        return Err(SinkError::bad_setting(
            setting,
            format!("{}: {problem}", path.display()),
        ));
    }
    if path.is_dir() {
        return Err(SinkError::bad_setting(
            setting,
            format!("{} is a folder", path.display()),
        ));
    }
    Ok(())
}

/// The model as JSON.
struct ModelFile(PathBuf);

#[async_trait::async_trait]
impl Sink for ModelFile {
    async fn deliver(&mut self, report: &Report) -> Result<()> {
        Ok(write_file(&self.0, report.model.to_json().as_bytes())?)
    }
}

/// The manifest as JSON.
struct ManifestFile(PathBuf);

#[async_trait::async_trait]
impl Sink for ManifestFile {
    async fn deliver(&mut self, report: &Report) -> Result<()> {
        let json = serde_json::to_vec_pretty(&report.manifest)
            .map_err(|e| SinkError::runtime(format!("writing the manifest: {e}")))?;
        Ok(write_file(&self.0, &json)?)
    }
}
