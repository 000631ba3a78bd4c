//! The `procforest` binary: parses arguments, sets up logging, runs a command and maps its
//! outcome to an exit code (0 success, 1 bad input, 2 runtime failure).

use clap::Parser;
use procforest::{
    cli::{Cli, Command, LogFormat, RunArgs, parse_as_of, parse_date, parse_duration},
    error::{JobError, Result},
    generate::{GenerateConfig, generate},
    pipeline::{summaries::Interval, training::ModelSettings},
    run::{AsOf, Outputs, RunConfig, run},
    source::SnapshotChoice,
};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PROCFOREST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,procforest=info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Generate(args) => {
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
            };
            let summary = generate(&config).await?;
            println!(
                "{}",
                serde_json::to_string(&summary).map_err(|e| JobError::runtime(e.to_string()))?
            );
            Ok(())
        }
        Command::Run(args) => run_command(*args).await,
        Command::Evaluate(args) => {
            let config = run_config(&args.run)?;
            let results = procforest::evaluate::evaluate(&config, &args.feature_sets).await?;
            print!("{}", procforest::evaluate::table(&results));
            if let Some(path) = &args.run.json {
                let json = serde_json::to_string_pretty(&results)
                    .map_err(|e| JobError::runtime(e.to_string()))?;
                if path == "-" {
                    println!("{json}");
                } else {
                    procforest::sinks::write_file(path.as_ref(), json.as_bytes())?;
                }
            }
            Ok(())
        }
        Command::Resend(args) => {
            let settings = args.monitor.settings()?;
            let records = procforest::sinks::azure_monitor::read_dead_letter(&args.path)?;
            let total = records.len();
            let delivered = procforest::sinks::azure_monitor::deliver_or_dead_letter(
                &settings, records, &args.path,
            )
            .await?;
            std::fs::remove_file(&args.path)
                .map_err(|e| JobError::runtime(format!("{}: {e}", args.path.display())))?;
            eprintln!(
                "resend: {delivered} of {total} records delivered; {} removed",
                args.path.display()
            );
            Ok(())
        }
        Command::Probe(args) => {
            let max_age = parse_duration("--max-age", &args.max_age)?;
            let modified = std::fs::metadata(&args.heartbeat_file)
                .and_then(|m| m.modified())
                .map_err(|e| {
                    JobError::runtime(format!("{}: {e}", args.heartbeat_file.display()))
                })?;
            let age = modified.elapsed().unwrap_or_default();
            if age.as_micros() as i64 > max_age {
                return Err(JobError::runtime(format!(
                    "no heartbeat for {} s ({})",
                    age.as_secs(),
                    args.heartbeat_file.display()
                )));
            }
            Ok(())
        }
        Command::ImportSample(args) => {
            let summary = procforest::sample::import(&args.events_dir, &args.out).await?;
            println!(
                "{}",
                serde_json::to_string(&summary).map_err(|e| JobError::runtime(e.to_string()))?
            );
            Ok(())
        }
    }
}

/// The run's configuration from its flags.
fn run_config(args: &RunArgs) -> Result<RunConfig> {
    let interval = match args.interval.as_str() {
        "day" => Interval::Day,
        "hour" => Interval::Hour,
        other => {
            return Err(JobError::bad_input(format!(
                "--interval {other:?}: expected day or hour"
            )));
        }
    };
    let contamination = match args.contamination.as_str() {
        "auto" => None,
        text => Some(text.parse::<f64>().map_err(|_| {
            JobError::bad_input(format!(
                "--contamination {text:?}: expected auto or a number"
            ))
        })?),
    };
    let snapshot = match (args.version, &args.timestamp) {
        (Some(v), _) => SnapshotChoice::Version(v),
        (None, Some(t)) => SnapshotChoice::Timestamp(
            chrono::DateTime::parse_from_rfc3339(t)
                .map_err(|e| JobError::bad_input(format!("--timestamp {t:?}: {e}")))?
                .with_timezone(&chrono::Utc),
        ),
        (None, None) => SnapshotChoice::Newest,
    };
    let mut storage_options = std::collections::HashMap::new();
    for option in &args.storage_options {
        let (k, v) = option
            .split_once('=')
            .ok_or_else(|| JobError::bad_input("--storage-option expects KEY=VALUE".to_string()))?;
        storage_options.insert(k.to_string(), v.to_string());
    }
    let config = RunConfig {
        table: args.table.clone(),
        snapshot,
        storage_options,
        as_of: match (&args.as_of, &args.table) {
            (Some(t), _) => AsOf::At(parse_as_of(t)?),
            (None, Some(_)) => AsOf::At(chrono::Utc::now()),
            (None, None) => AsOf::EndOfNewestDay,
        },
        window_us: parse_duration("--window", &args.window)?,
        train_days: args.train_days,
        interval,
        features: args.features,
        model: ModelSettings {
            trees: args.trees,
            max_samples: args.max_samples,
            seed: args.seed,
            contamination,
        },
        partitions: args
            .partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        scheduler: args.scheduler.clone(),
        scratch: args.scratch.clone(),
        outputs: Outputs {
            console: !args.quiet && args.json.as_deref() != Some("-"),
            json: args.json.clone(),
            scores_out: args.scores_out.clone(),
            output_delta: args.output_delta.clone(),
            model_out: args.model_out.clone(),
            manifest: args.manifest.clone(),
            monitor: match args.sink.as_deref() {
                Some("azure-monitor") => {
                    // Check settings and credentials now, not after the run.
                    let settings = args.monitor.settings()?;
                    settings.upload_url()?;
                    procforest::sinks::azure_monitor::tokens::from_env(settings.allow_http)?;
                    Some(procforest::run::MonitorOutput {
                        settings,
                        dead_letter: args.monitor_dead_letter.clone(),
                    })
                }
                _ => None,
            },
        },
    };
    Ok(config)
}

async fn run_command(args: RunArgs) -> Result<()> {
    let config = run_config(&args)?;
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
    let outcome = run(&config).await;
    if let Some(h) = heartbeat {
        h.abort();
    }
    let outcome = outcome?;
    eprintln!("{}", outcome.manifest.summary());
    // Every output is written and the run's folders are removed: the process ends next, so
    // freeing each anomaly's strings (tens of milliseconds for a large report) is skipped.
    std::mem::forget(outcome);
    Ok(())
}

/// Finds `--config FILE` (or `PROCFOREST_CONFIG`) before parsing, so the file's settings
/// reach clap as environment variables.
fn apply_config_file() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--config=").map(String::from))
        })
        .or_else(|| std::env::var("PROCFOREST_CONFIG").ok());
    let Some(path) = path else { return Ok(()) };
    for (key, value) in procforest::cli::load_config_file(path.as_ref())? {
        if std::env::var_os(&key).is_none() {
            // SAFETY: called first thing in `main`, before any other thread exists.
            unsafe { std::env::set_var(key, value) };
        }
    }
    Ok(())
}

/// Caps glibc's malloc arenas at one per core (it makes up to eight per core, one per
/// thread that allocates while the others' are busy). The runtime's, Ballista's and the
/// executors' threads then reuse each other's freed memory instead of faulting in fresh
/// pages for new arenas: a fifth fewer page faults at 1 M events, no slower at 60 M
/// (BENCHMARKS.md). Must run before any thread starts.
fn cap_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: mallopt only sets an allocator parameter; no other thread exists yet.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, cores.min(i32::MAX as usize) as i32);
        }
    }
}

fn main() {
    cap_malloc_arenas();
    if let Err(e) = apply_config_file() {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match procforest_core::process::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    // An interrupt ends the run (dropping it removes its temporary folders): Ballista
    // standalone's in-process executor listens for Ctrl-C too, and would otherwise stop
    // alone and leave the job waiting for executors.
    let outcome = runtime.block_on(async {
        // Listening before any work starts: a signal that came before the handlers were
        // registered would kill the process outright, its temporary folders left behind.
        let interrupted = interrupted();
        tokio::select! {
            result = dispatch(cli) => result.map_err(|e| (e.to_string(), e.exit_code())),
            (signal, code) = interrupted => Err((format!("interrupted by {signal}"), code)),
        }
    });
    // Exit without shutting the runtime down: the command's work is complete (its
    // outputs written, its temporary folders removed), and what is left are Ballista
    // standalone's idle server tasks, whose orderly shutdown only delays the exit.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    match outcome {
        Ok(()) => std::process::exit(0),
        Err((message, code)) => {
            eprintln!("error: {message}");
            std::process::exit(code);
        }
    }
}

/// Listens for SIGINT and SIGTERM from the call on (within the runtime); the future
/// resolves on either with the signal's name and the shell's exit code for it.
fn interrupted() -> impl std::future::Future<Output = (&'static str, i32)> {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    async move {
        tokio::select! {
            () = received(interrupt) => ("SIGINT", 130),
            () = received(terminate) => ("SIGTERM", 143),
        }
    }
}
