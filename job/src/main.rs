//! The `procforest` binary: parses arguments, sets up logging, runs a command and maps its
//! outcome to an exit code (0 success, 1 bad input, 2 runtime failure).

use clap::Parser;
use procforest::{
    cli::{Cli, Command, LogFormat, parse_date},
    error::{JobError, Result},
    generate::{GenerateConfig, generate},
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

async fn run(cli: Cli) -> Result<()> {
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
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
