//! `procforest-scheduler`: a Ballista 55 scheduler with procforest's codecs, session
//! configuration and object stores.
//!
//! Flags are Ballista's own (`procforest-scheduler --help`); each can also be set by an
//! environment variable `PROCFOREST_SCHEDULER_<FLAG>` (e.g. `PROCFOREST_SCHEDULER_BIND_PORT`).
//! `/healthz` and `/readyz` are served on the scheduler port.

use std::{collections::HashMap, sync::Arc};

use ballista_core::{
    error::BallistaError, extension::SessionConfigExt, utils::default_session_builder,
};
use ballista_scheduler::{
    cluster::BallistaCluster,
    config::{Config, SchedulerConfig},
    scheduler_process::start_server,
};
use clap::{CommandFactory, FromArgMatches};
use datafusion::{execution::SessionStateBuilder, prelude::SessionConfig};
use procforest_core::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    session::{ballista_config, env_for_args, runtime_env},
};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
        .expect("a tokio runtime");
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
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(opt.log_level_setting.clone()));
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    let addr = format!("{}:{}", opt.bind_host, opt.bind_port)
        .parse()
        .map_err(|e: std::net::AddrParseError| BallistaError::Configuration(e.to_string()))?;
    let mut config: SchedulerConfig = opt.try_into()?;
    config.override_logical_codec = Some(Arc::new(ProcforestLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ProcforestPhysicalCodec::default()));
    let config = config
        .with_override_config_producer(Arc::new(|| {
            ballista_config(SessionConfig::new_with_ballista())
        }))
        .with_override_session_builder(Arc::new(|session_config: SessionConfig| {
            let state = default_session_builder(session_config)?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime_env(HashMap::new(), None)?)
                .build())
        }));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    tracing::info!("procforest-scheduler listening on {addr}");
    start_server(cluster, addr, Arc::new(config)).await
}
