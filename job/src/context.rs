//! The Ballista session: standalone in this process, or a remote scheduler. Either way,
//! plans travel through the same codecs, so the model and file list ride in the plan.

use std::collections::HashMap;

use ballista::prelude::SessionContextExt;
use datafusion::{execution::SessionStateBuilder, prelude::SessionContext};
use procforest_core::session::{runtime_env, session_config};

use crate::error::{Context, JobError, Result};

/// Connects to `scheduler` (`df://host:port`), or starts Ballista standalone when `None`.
pub async fn connect(
    scheduler: Option<&str>,
    partitions: usize,
    azure_options: HashMap<String, String>,
) -> Result<SessionContext> {
    let state = SessionStateBuilder::new()
        .with_config(session_config(partitions))
        .with_runtime_env(runtime_env(azure_options, None).runtime("setting up object stores")?)
        .with_default_features()
        .build();
    match scheduler {
        None => SessionContext::standalone_with_state(state)
            .await
            .runtime("starting Ballista standalone"),
        Some(url) => {
            if !url.starts_with("df://") {
                return Err(JobError::bad_input(format!(
                    "--scheduler {url}: expected df://HOST:PORT"
                )));
            }
            probe_scheduler(url).await?;
            SessionContext::remote_with_state(url, state)
                .await
                .runtime(format!("connecting to the scheduler at {url}"))
        }
    }
}

/// Checks that the scheduler accepts connections, within 10 seconds: Ballista connects
/// lazily and would report an unreachable scheduler only deep inside the first job.
async fn probe_scheduler(url: &str) -> Result<()> {
    let parsed =
        url::Url::parse(url).map_err(|e| JobError::bad_input(format!("--scheduler {url}: {e}")))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| JobError::bad_input(format!("--scheduler {url}: no host")))?
        .to_string();
    let port = parsed.port().unwrap_or(50050);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(std::time::Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(JobError::runtime(format!(
            "cannot reach the Ballista scheduler at {url}: {e}"
        ))),
        Err(_) => Err(JobError::runtime(format!(
            "cannot reach the Ballista scheduler at {url}: no answer within 10 s"
        ))),
    }
}
