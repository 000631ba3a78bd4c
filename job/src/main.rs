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

async fn run_command(args: RunArgs) -> Result<()> {
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
        model: ModelSettings {
            trees: args.trees,
            max_samples: args.max_samples,
            seed: args.seed,
            contamination,
        },
        partitions: args
            .partitions
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        scheduler: args.scheduler,
        scratch: args.scratch,
        outputs: Outputs {
            console: !args.quiet && args.json.as_deref() != Some("-"),
            json: args.json,
            scores_out: args.scores_out,
            output_delta: args.output_delta,
            model_out: args.model_out,
            manifest: args.manifest,
        },
    };
    let outcome = run(&config).await?;
    eprintln!("{}", outcome.manifest.summary());
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = runtime.block_on(dispatch(cli)) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
