//! What every procforest process sets up the same way: its async runtime, waiting for a
//! peer to listen, and flags that can be set from the environment.

use std::time::Duration;

/// A multi-threaded tokio runtime with 32 MiB thread stacks: deep plans (many joins)
/// recurse deeply when planned, (de)serialised and executed; Ballista's own scheduler uses
/// 32 MiB stacks for the same reason.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 * 1024 * 1024)
        .build()
}

/// Waits until something accepts TCP connections at `host:port`, trying every `retry`
/// until `timeout` has passed (one attempt when it is zero); then returns the last error.
pub async fn wait_for_listener(
    host: &str,
    port: u16,
    timeout: Duration,
    retry: Duration,
) -> std::io::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::net::TcpStream::connect((host, port)).await {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
            Err(e) => {
                tracing::debug!("waiting for {host}:{port}: {e}");
                tokio::time::sleep(retry).await;
            }
        }
    }
}

/// Adds environment variables (`{prefix}_{ARG_ID}`) to every long flag of a clap command
/// that has none, so each flag can be set from the environment (Kubernetes).
pub fn env_for_args(command: clap::Command, prefix: &str) -> clap::Command {
    command.mut_args(|arg| {
        if arg.get_long().is_none() || arg.get_env().is_some() {
            return arg;
        }
        let name = format!(
            "{prefix}_{}",
            arg.get_id().as_str().to_uppercase().replace('-', "_")
        );
        // clap keeps the name for the program's lifetime; this runs once at start-up.
        arg.env(&*Box::leak(name.into_boxed_str()))
    })
}
