//! procforest's Ballista scheduler configuration, shared by the `procforest-scheduler`
//! binary and the driver's in-process standalone mode.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, OnceLock},
};

use ballista_core::{
    error::BallistaError,
    extension::{
        SessionConfigExt, ballista_aggregate_functions, ballista_scalar_functions,
        ballista_window_functions,
    },
    optimizer::ballista_default_optimizer_rules,
};
use ballista_scheduler::{
    cluster::BallistaCluster,
    config::SchedulerConfig,
    scheduler_process::{create_scheduler, start_grpc_service_with_listener},
};
use datafusion::{
    common::Result,
    execution::{SessionState, SessionStateBuilder, runtime_env::RuntimeEnv},
    prelude::SessionConfig,
};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use procforest_core::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    session::{ballista_config, runtime_env},
};

/// `config` with procforest's codecs, session configuration and object stores.
pub fn configure(mut config: SchedulerConfig) -> SchedulerConfig {
    config.override_logical_codec = Some(Arc::new(ProcforestLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ProcforestPhysicalCodec::default()));
    let runtime = Arc::new(OnceLock::new());
    config
        .with_override_config_producer(Arc::new(|| {
            ballista_config(SessionConfig::new_with_ballista())
        }))
        .with_override_session_builder(Arc::new(move |session_config: SessionConfig| {
            job_session(session_config, shared_runtime(&runtime)?)
        }))
}

/// The session the scheduler plans a job in: Ballista's default one (its optimizer rules
/// and functions, as `ballista_core::utils::default_session_builder` makes it), on the
/// runtime every job shares.
fn job_session(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> Result<SessionState> {
    Ok(SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(ballista_default_optimizer_rules())
        .with_scalar_functions(ballista_scalar_functions())
        .with_aggregate_functions(ballista_aggregate_functions())
        .with_window_functions(ballista_window_functions())
        .build())
}

/// The runtime (object stores, caches) the scheduler's job sessions share, made on first
/// use: building one per job cost about a millisecond of every job's planning.
fn shared_runtime(cell: &OnceLock<Arc<RuntimeEnv>>) -> Result<Arc<RuntimeEnv>> {
    if let Some(runtime) = cell.get() {
        return Ok(Arc::clone(runtime));
    }
    let runtime = runtime_env(HashMap::new(), None)?;
    Ok(Arc::clone(cell.get_or_init(|| runtime)))
}

/// Serves the scheduler on `listener` (see [`bind`]) until it fails, as Ballista's
/// `start_server` does on an address.
pub async fn serve(
    listener: tokio::net::TcpListener,
    cluster: BallistaCluster,
    config: Arc<SchedulerConfig>,
) -> Result<(), BallistaError> {
    config.validate()?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config).await?;
    start_grpc_service_with_listener(listener, scheduler).await
}

/// A listener on `address` whose accepted connections have Nagle's algorithm off (they
/// inherit the option from the listener). Ballista's scheduler serves through axum, whose
/// connections keep it on: a job's final status, streamed to the client right after an
/// earlier one, then waited for the client's delayed acknowledgement, which delayed every
/// short job. Bound before the server starts, so that clients can connect at once.
pub fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_sessions_are_ballistas_on_one_shared_runtime() {
        let config = configure(SchedulerConfig::default());
        let build = config.override_session_builder.clone().unwrap();
        let first = build(SessionConfig::new_with_ballista().with_target_partitions(3)).unwrap();
        let second = build(SessionConfig::new_with_ballista()).unwrap();
        assert!(Arc::ptr_eq(first.runtime_env(), second.runtime_env()));
        assert_eq!(first.config().target_partitions(), 3);
        assert_ne!(second.config().target_partitions(), 3);
        assert_eq!(
            first.optimizer().rules.len(),
            ballista_default_optimizer_rules().len()
        );
        assert!(first.scalar_functions().contains_key("array_sort"));
        // Each job's tables stay its own.
        assert!(!Arc::ptr_eq(first.catalog_list(), second.catalog_list()));
    }

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
