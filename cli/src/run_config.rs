//! Flags → configuration: a run's [`RunConfig`] and its sinks' [`Outputs`] from
//! `procforest run`'s flags.

use std::collections::HashMap;

use procforest_pipeline::{
    AsOf, RunConfig,
    config::{Interval, ModelSettings, Preset, SnapshotChoice},
};
use procforest_sinks::{MonitorOutput, Outputs};

use crate::{
    error::{CliError, Result},
    flags::{RunArgs, parse_as_of, parse_duration},
};

/// The run's configuration from its flags. `table` is where the table is (the bundled
/// sample's folder when `--table` is absent).
pub fn run_config(args: &RunArgs, table: String) -> Result<RunConfig> {
    run_config_from(args, table, args.preset.into())
}

/// [`run_config`] starting from `preset` instead of `--preset`'s: the flags given
/// override it.
pub fn run_config_from(args: &RunArgs, table: String, preset: Preset) -> Result<RunConfig> {
    let defaults = preset.model(args.seed);
    Ok(RunConfig {
        table_label: args.table.is_none().then(|| "(bundled sample)".to_string()),
        table,
        snapshot: snapshot(args)?,
        storage_options: storage_options(&args.storage_options)?,
        as_of: match (&args.as_of, &args.table) {
            (Some(t), _) => AsOf::At(parse_as_of(t)?),
            (None, Some(_)) => AsOf::At(chrono::Utc::now()),
            (None, None) => AsOf::EndOfNewestDay,
        },
        window_us: parse_duration("--window", &args.window)?,
        train_days: args.train_days,
        interval: interval(&args.interval)?,
        preset,
        features: args.features.map_or(preset.features(), Into::into),
        model: ModelSettings {
            scoring: args.scoring.map_or(defaults.scoring, Into::into),
            trees: args.trees.unwrap_or(defaults.trees),
            max_samples: args.max_samples.unwrap_or(defaults.max_samples),
            seed: args.seed,
            contamination: match &args.contamination {
                Some(text) => contamination(text)?,
                None => defaults.contamination,
            },
        },
        partitions: args
            .partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        scheduler: args.scheduler.clone(),
        scratch: args.scratch.clone(),
        scratch_stale_after: std::time::Duration::from_micros(parse_duration(
            "--scratch-stale-after",
            &args.scratch_stale_after,
        )? as u64),
        scores_out: args.scores_out.clone(),
        scores_format: args.scores_format.into(),
        summaries: args.summaries.clone(),
        rebuild_summaries: args.rebuild_summaries,
        score_histogram: args.report_html.is_some(),
    })
}

fn interval(text: &str) -> Result<Interval> {
    match text {
        "day" => Ok(Interval::Day),
        "hour" => Ok(Interval::Hour),
        other => Err(CliError::Usage(format!(
            "--interval {other:?}: expected day or hour"
        ))),
    }
}

fn contamination(text: &str) -> Result<Option<f64>> {
    match text {
        "auto" => Ok(None),
        text => text.parse::<f64>().map(Some).map_err(|_| {
            CliError::Usage(format!(
                "--contamination {text:?}: expected auto or a number"
            ))
        }),
    }
}

fn snapshot(args: &RunArgs) -> Result<SnapshotChoice> {
    Ok(match (args.version, &args.timestamp) {
        (Some(v), _) => SnapshotChoice::Version(v),
        (None, Some(t)) => SnapshotChoice::Timestamp(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| CliError::Usage(format!("--timestamp {t:?}: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
        (None, None) => SnapshotChoice::Newest,
    })
}

fn storage_options(options: &[String]) -> Result<HashMap<String, String>> {
    options
        .iter()
        .map(|option| {
            option
                .split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| CliError::Usage("--storage-option expects KEY=VALUE".to_string()))
        })
        .collect()
}

/// The sinks' outputs from the flags; Azure Monitor's settings and credentials are
/// checked now, not after the run.
pub fn outputs(args: &RunArgs) -> Result<Outputs> {
    let monitor = match args.sink.as_deref() {
        Some("azure-monitor") => {
            let settings = args.monitor.settings()?;
            settings.upload_url()?;
            procforest_sinks::azure_monitor::tokens::from_env(
                settings.allow_http,
                settings.max_time,
            )?;
            Some(MonitorOutput {
                settings,
                dead_letter: args.monitor_dead_letter.clone(),
            })
        }
        _ => None,
    };
    Ok(Outputs {
        console: !args.quiet && args.json.as_deref() != Some("-"),
        json: args.json.clone(),
        output_delta: args.output_delta.clone(),
        model_out: args.model_out.clone(),
        report_html: args.report_html.clone(),
        manifest: args.manifest.clone(),
        monitor,
    })
}
