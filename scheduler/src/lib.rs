//! procforest's Ballista scheduler configuration, shared by the `procforest-scheduler`
//! binary and the driver's in-process standalone mode.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use ballista_core::{
    error::BallistaError, extension::SessionConfigExt, utils::default_session_builder,
};
use ballista_scheduler::{
    cluster::BallistaCluster,
    config::SchedulerConfig,
    scheduler_process::{create_scheduler, start_grpc_service_with_listener},
};
use datafusion::{execution::SessionStateBuilder, prelude::SessionConfig};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use procforest_core::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    session::{ballista_config, runtime_env},
};

/// `config` with procforest's codecs, session configuration and object stores.
pub fn configure(mut config: SchedulerConfig) -> SchedulerConfig {
    config.override_logical_codec = Some(Arc::new(ProcforestLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ProcforestPhysicalCodec::default()));
    config
        .with_override_config_producer(Arc::new(|| {
            ballista_config(SessionConfig::new_with_ballista())
        }))
        .with_override_session_builder(Arc::new(|session_config: SessionConfig| {
            let state = default_session_builder(session_config)?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime_env(HashMap::new(), None)?)
                .build())
        }))
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
/// earlier one, then waited for the client's delayed acknowledgement (about 20 ms on
/// loopback for every short job, measured on the driver's sample and score jobs). Bound
/// before the server starts, so that clients can connect at once.
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

    #[tokio::test]
    async fn accepted_connections_send_without_delay() {
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let address = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(address).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
