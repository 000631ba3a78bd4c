//! `procforest-executor`: a Ballista 55 executor with procforest's codecs and object
//! stores (local files, Azure Blob / ADLS from the environment, Azurite).
//!
//! Flags are Ballista's own (`procforest-executor --help`), each also settable as
//! `PROCFOREST_EXECUTOR_<FLAG>`; defaults differ where Kubernetes needs it: shuffle data is
//! cleaned up (every 300 s, kept 3600 s) and the scheduler is awaited for 120 s. Spill and
//! shuffle files go under `--work-dir`. `/healthz` and `/readyz` are served on
//! `--bind-health-port`.

use std::{net::SocketAddr, sync::Arc};

use ballista_core::error::BallistaError;
use ballista_executor::{
    config::Config,
    executor_process::{ExecutorProcessConfig, start_executor_process},
    health::spawn_health_server,
};
use clap::{CommandFactory, FromArgMatches};
use procforest_cluster::{
    executor::{configure, wait_for_scheduler},
    logging::{LogFormat, init},
    process::{env_for_args, runtime},
};

/// Defaults fit for Kubernetes, replacing Ballista's.
const DEFAULTS: &[(&str, &str)] = &[
    ("job_data_clean_up_interval_seconds", "300"),
    ("job_data_ttl_seconds", "3600"),
    ("scheduler_connect_timeout_seconds", "120"),
];

fn main() {
    let runtime = runtime().expect("a tokio runtime");
    if let Err(e) = runtime.block_on(run()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), BallistaError> {
    let mut command = Config::command().name("procforest-executor");
    for (id, value) in DEFAULTS {
        command = command.mut_arg(*id, |a| a.default_value(*value));
    }
    let matches = env_for_args(command, "PROCFOREST_EXECUTOR").get_matches();
    let mut opt = Config::from_arg_matches(&matches)
        .map_err(|e| BallistaError::Configuration(e.to_string()))?;
    init(LogFormat::Text, "RUST_LOG", &opt.log_level_setting);
    // One work folder for shuffle files and spills.
    let work_dir = match &opt.work_dir {
        Some(dir) => dir.clone(),
        None => {
            let dir =
                std::env::temp_dir().join(format!("procforest-executor-{}", std::process::id()));
            dir.to_string_lossy().into_owned()
        }
    };
    std::fs::create_dir_all(&work_dir)
        .map_err(|e| BallistaError::Configuration(format!("--work-dir {work_dir}: {e}")))?;
    opt.work_dir = Some(work_dir.clone());
    wait_for_scheduler(
        &opt.scheduler_host,
        opt.scheduler_port,
        opt.scheduler_connect_timeout_seconds,
    )
    .await?;
    let health_addr: SocketAddr = format!("{}:{}", opt.bind_host, opt.bind_health_port)
        .parse()
        .map_err(|e| BallistaError::Configuration(format!("--bind-health-port: {e}")))?;

    let mut config: ExecutorProcessConfig = opt.try_into()?;
    configure(&mut config, &work_dir);

    let (stop_health, health_stopped) = tokio::sync::oneshot::channel();
    let health = spawn_health_server(health_addr, config.health.clone(), health_stopped);
    let result = start_executor_process(Arc::new(config)).await;
    let _ = stop_health.send(());
    let _ = health.await;
    result
}
