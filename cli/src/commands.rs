//! The commands: each turns its flags into configuration and calls the crate that does
//! the work.

use procforest_datasets::{
    delta_writer::Layout,
    evaluate,
    generate::{GenerateConfig, generate},
    inject,
    labels::{check_labels, read_labels_file},
    sample_import,
};
use procforest_pipeline::Report;

use crate::{
    bundled,
    error::{CliError, Result},
    flags::{
        Command, EvaluateArgs, FeaturesArg, GenerateArgs, ProbeArgs, ResendArgs, RunArgs,
        SummariesArgs,
    },
    flags::{LogFormat, ProgressMode, parse_date, parse_duration},
    progress::Display,
    run_config::{outputs, run_config, run_config_from},
};

/// Runs the command the command line names.
pub async fn dispatch(cli: crate::flags::Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => generate_table(args).await,
        Command::ImportSample(args) => {
            let summary = sample_import::import(&args.events_dir, &args.out).await?;
            print_json(&summary)
        }
        Command::Run(args) => run(*args, cli.log_format).await,
        Command::Summaries(args) => {
            let SummariesArgs { rebuild, mut run } = *args;
            if run.summaries.is_none() {
                return Err(CliError::Usage(
                    "procforest summaries needs --summaries (the table to bring up to date)".into(),
                ));
            }
            run.rebuild_summaries |= rebuild;
            run.quiet = true; // no console table: the report goes to the outputs given
            self::run(run, cli.log_format).await
        }
        Command::Evaluate(args) => evaluate_sets(*args).await,
        Command::Resend(args) => resend(args).await,
        Command::Probe(args) => probe(args),
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let json = serde_json::to_string(value).map_err(|e| CliError::Failed(e.to_string()))?;
    println!("{json}");
    Ok(())
}

async fn generate_table(args: GenerateArgs) -> Result<()> {
    let end_date = match &args.end_date {
        Some(d) => parse_date("--end-date", d)?,
        None => chrono::Utc::now().date_naive() - chrono::Duration::days(1),
    };
    let config = GenerateConfig {
        out: args.out,
        events: args.events,
        days: args.days,
        hosts: args.hosts,
        seed: args.seed,
        end_date,
        attack_rate: args.attack_rate,
        duplicates: args.duplicates,
        layout: Layout {
            files_per_day: args.files_per_day,
            partitioned: !args.unpartitioned,
            naive_time: args.naive_time,
        },
    };
    let summary = generate(&config).await?;
    print_json(&summary)
}

/// `procforest run`: the run, then its outputs; a heartbeat file is touched and progress
/// shown meanwhile.
async fn run(args: RunArgs, log_format: LogFormat) -> Result<()> {
    let (table, _bundled) = table_or_bundled(&args)?;
    let config = run_config(&args, table)?;
    let outputs = outputs(&args)?;
    outputs.check().await?;
    let heartbeat = args.heartbeat_file.clone().map(|path| {
        tokio::spawn(async move {
            loop {
                if let Err(e) = std::fs::write(&path, chrono::Utc::now().to_rfc3339()) {
                    tracing::warn!("heartbeat {}: {e}", path.display());
                }
                tokio::time::sleep(std::time::Duration::from_secs(15)).await;
            }
        })
    });
    let report = match progress_display(&args, log_format)? {
        Some(display) => {
            let (observer, progress) = crate::progress::start(display);
            let report = procforest_pipeline::run_observed(&config, observer).await;
            drop(progress);
            report
        }
        None => procforest_pipeline::run(&config).await,
    };
    if let Some(h) = heartbeat {
        h.abort();
    }
    let mut report = report?;
    if let Some(labels) = &args.labels {
        attach_label_check(&mut report, labels).await?;
    }
    report.manifest.settings["outputs"] =
        serde_json::to_value(&outputs).map_err(|e| CliError::Failed(e.to_string()))?;
    procforest_sinks::deliver(&mut report, &outputs).await?;
    eprintln!("{}", report.manifest.summary());
    // Every output is written and the run's folders are removed: the process ends next, so
    // freeing each anomaly's strings (tens of milliseconds for a large report) is skipped.
    std::mem::forget(report);
    Ok(())
}

/// Whether the command is a run that draws a status line on the terminal.
pub fn shows_status_line(cli: &crate::flags::Cli) -> bool {
    match &cli.command {
        Command::Run(args) => matches!(
            progress_display(args, cli.log_format),
            Ok(Some(Display::Terminal))
        ),
        _ => false,
    }
}

/// How `--progress` shows the run (`None`: off); `auto` draws a status line only on a
/// terminal with text logs.
fn progress_display(args: &RunArgs, log_format: LogFormat) -> Result<Option<Display>> {
    use std::io::IsTerminal;
    let every = std::time::Duration::try_from_secs_f64(args.progress_interval)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--progress-interval {}: expected a positive number of seconds",
                args.progress_interval
            ))
        })?;
    let terminal = std::io::stderr().is_terminal() && matches!(log_format, LogFormat::Text);
    Ok(match args.progress {
        ProgressMode::Off => None,
        ProgressMode::Terminal => Some(Display::Terminal),
        ProgressMode::Log => Some(Display::Log(every)),
        ProgressMode::Auto if terminal => Some(Display::Terminal),
        ProgressMode::Auto => Some(Display::Log(every)),
    })
}

/// The table's location: `--table`, or the bundled sample unpacked into a temporary
/// folder (returned too: the folder is removed when it is dropped).
fn table_or_bundled(args: &RunArgs) -> Result<(String, Option<tempfile::TempDir>)> {
    match &args.table {
        Some(table) => Ok((table.clone(), None)),
        None => {
            let dir = bundled::materialize()?;
            Ok((dir.path().display().to_string(), Some(dir)))
        }
    }
}

/// Checks the report against the labels at `location` and records it in the manifest.
async fn attach_label_check(report: &mut Report, location: &str) -> Result<()> {
    let labels = read_labels_file(location).await?;
    let first_day = chrono::DateTime::from_timestamp_micros(report.first_interval_us)
        .map(|t| t.date_naive())
        .unwrap_or_default();
    let check = check_labels(
        &report.anomalies,
        &labels,
        first_day,
        report.as_of.date_naive(),
    );
    report.manifest.label_summary = Some(check.summary());
    report.manifest.labels =
        Some(serde_json::to_value(&check).map_err(|e| CliError::Failed(e.to_string()))?);
    Ok(())
}

async fn evaluate_sets(args: EvaluateArgs) -> Result<()> {
    let (table, _bundled) = table_or_bundled(&args.run)?;
    let mut variants = evaluation_variants(&args, &table)?;
    let injected = match &args.inject {
        Some(file) => {
            let replay = inject::Replay {
                file: file.clone(),
                seed: args.inject_seed,
                scenarios: args.inject_scenarios,
                keep: args.inject_keep.clone(),
                runs_as: args.inject_as.into(),
            };
            Some(inject::inject(&variants[0].1, &replay).await?)
        }
        None => None,
    };
    if let Some(injected) = &injected {
        eprintln!(
            "replayed {} attack events of {} scenarios into {} groups ({} mixed with the tenant's own events)",
            injected.events, injected.scenarios, injected.groups, injected.mixed,
        );
        for (_, config) in &mut variants {
            config.table_label = Some(config.table.clone());
            config.table = injected.location.clone();
        }
    }
    let results = evaluate::evaluate(&variants).await?;
    print!("{}", evaluate::table(&results));
    if let Some(path) = &args.run.json {
        let json =
            serde_json::to_string_pretty(&results).map_err(|e| CliError::Failed(e.to_string()))?;
        if path == "-" {
            println!("{json}");
        } else {
            procforest_pipeline::files::write_file(path.as_ref(), json.as_bytes())?;
        }
    }
    Ok(())
}

/// The runs `evaluate` compares, each named: every `--presets` entry with its settings,
/// then every `--feature-sets` entry with the run's (`seed,rarity` when neither is given).
fn evaluation_variants(
    args: &EvaluateArgs,
    table: &str,
) -> Result<Vec<(String, procforest_pipeline::RunConfig)>> {
    let mut variants = Vec::new();
    for &preset in &args.presets {
        let preset: procforest_pipeline::config::Preset = preset.into();
        let config = run_config_from(&args.run, table.to_string(), preset)?;
        variants.push((format!("preset {}", preset.name()), config));
    }
    let sets = match (args.presets.is_empty(), args.feature_sets.is_empty()) {
        (true, true) => vec![FeaturesArg::Seed, FeaturesArg::Rarity],
        _ => args.feature_sets.clone(),
    };
    for set in sets {
        let mut config = run_config(&args.run, table.to_string())?;
        config.features = set.into();
        variants.push((config.features.name().to_string(), config));
    }
    Ok(variants)
}

async fn resend(args: ResendArgs) -> Result<()> {
    use procforest_sinks::azure_monitor::{deliver_or_dead_letter, read_dead_letter};
    let settings = args.monitor.settings()?;
    let records = read_dead_letter(&args.path)?;
    let total = records.len();
    let delivered = deliver_or_dead_letter(&settings, records, &args.path).await?;
    std::fs::remove_file(&args.path)
        .map_err(|e| CliError::Failed(format!("{}: {e}", args.path.display())))?;
    eprintln!(
        "resend: {delivered} of {total} records delivered; {} removed",
        args.path.display()
    );
    Ok(())
}

fn probe(args: ProbeArgs) -> Result<()> {
    let max_age = parse_duration("--max-age", &args.max_age)?;
    let modified = std::fs::metadata(&args.heartbeat_file)
        .and_then(|m| m.modified())
        .map_err(|e| CliError::Failed(format!("{}: {e}", args.heartbeat_file.display())))?;
    let age = modified.elapsed().unwrap_or_default();
    if age.as_micros() as i64 > max_age {
        return Err(CliError::Failed(format!(
            "no heartbeat for {} s ({})",
            age.as_secs(),
            args.heartbeat_file.display()
        )));
    }
    Ok(())
}
