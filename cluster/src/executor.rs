//! procforest's Ballista executor configuration, shared by the `procforest-executor`
//! binary and the driver's in-process standalone mode.

use std::{collections::HashMap, sync::Arc, time::Duration};

use ballista_core::{error::BallistaError, extension::SessionConfigExt};
use ballista_executor::executor_process::ExecutorProcessConfig;
use datafusion::{execution::SessionStateBuilder, prelude::SessionConfig};
use procforest_core::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    session::{ballista_config, runtime_env},
};

use crate::process::wait_for_listener;

/// Sets procforest's codecs, session configuration, functions and object stores on
/// `config`, with spill files under `work_dir`.
pub fn configure(config: &mut ExecutorProcessConfig, work_dir: &str) {
    config.override_logical_codec = Some(Arc::new(ProcforestLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ProcforestPhysicalCodec::default()));
    // Every function DataFusion's defaults have (Ballista's default registry lacks the
    // nested ones, e.g. `array_sort`, which the job's plans use).
    config.override_function_registry = Some(Arc::new(
        (&SessionStateBuilder::new().with_default_features().build()).into(),
    ));
    config.override_config_producer = Some(Arc::new(|| {
        ballista_config(SessionConfig::new_with_ballista())
    }));
    let work_dir = work_dir.to_string();
    config.override_runtime_producer = Some(Arc::new(move |_: &SessionConfig| {
        runtime_env(HashMap::new(), Some(&work_dir))
    }));
}

/// Waits until the scheduler accepts connections, for at most `timeout_seconds` (0: one
/// attempt). Ballista 55's own wait never times out (its deadline is computed from
/// `Instant::now().elapsed()`, always zero), so an absent scheduler would hang forever.
pub async fn wait_for_scheduler(
    host: &str,
    port: u16,
    timeout_seconds: u16,
) -> Result<(), BallistaError> {
    tracing::info!("waiting up to {timeout_seconds} s for the scheduler at {host}:{port}");
    wait_for_listener(
        host,
        port,
        Duration::from_secs(timeout_seconds.into()),
        Duration::from_millis(500),
    )
    .await
    .map_err(|e| {
        BallistaError::General(format!(
            "the scheduler at {host}:{port} is not reachable ({e}) after {timeout_seconds} s \
             (--scheduler-connect-timeout-seconds)"
        ))
    })
}
