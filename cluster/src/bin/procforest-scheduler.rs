//! `procforest-scheduler`: a Ballista 55 scheduler with procforest's codecs, session
//! configuration and object stores.
//!
//! Flags are Ballista's own (`procforest-scheduler --help`); each can also be set by an
//! environment variable `PROCFOREST_SCHEDULER_<FLAG>` (e.g. `PROCFOREST_SCHEDULER_BIND_PORT`).
//! `/healthz` and `/readyz` are served on the scheduler port.

use std::sync::Arc;

use ballista_core::error::BallistaError;
use ballista_scheduler::{cluster::BallistaCluster, config::Config};
use clap::{CommandFactory, FromArgMatches};
use procforest_cluster::{
    logging::{LogFormat, init},
    process::{env_for_args, runtime},
    scheduler::{bind, configure, serve},
};

fn main() {
    let runtime = runtime().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BallistaError> {
    let command = env_for_args(
        Config::command().name("procforest-scheduler"),
        "PROCFOREST_SCHEDULER",
    );
    let matches = command.get_matches();
    let opt = Config::from_arg_matches(&matches)
        .map_err(|e| BallistaError::Configuration(e.to_string()))?;
    init(LogFormat::Text, "RUST_LOG", &opt.log_level_setting);
    let addr = format!("{}:{}", opt.bind_host, opt.bind_port)
        .parse()
        .map_err(|e: std::net::AddrParseError| BallistaError::Configuration(e.to_string()))?;
    let config = configure(opt.try_into()?);
    let cluster = BallistaCluster::new_from_config(&config).await?;
    let listener = bind(addr)?;
    tracing::info!("procforest-scheduler listening on {addr}");
    serve(listener, cluster, Arc::new(config)).await
}
