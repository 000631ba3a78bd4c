//! procforest's Ballista cluster: how the scheduler and executor processes are configured
//! (procforest's codecs, functions and object stores), how the driver reaches a cluster or
//! starts Ballista standalone inside its own process, and the runtime and logging every
//! procforest process sets up the same way.
//!
//! - [`scheduler`] and [`executor`]: the configuration the `procforest-scheduler` and
//!   `procforest-executor` binaries and standalone mode share.
//! - [`standalone`]: the driver's session — a remote scheduler, or a scheduler and an
//!   executor started in-process on loopback ports.
//! - [`process`]: the async runtime, waiting for a peer, settings from the environment.
//! - [`logging`]: one tracing setup for the three binaries.
//! - [`progress`]: a run's jobs as the scheduler's REST API reports them.

pub mod error;
pub mod executor;
pub mod logging;
pub mod process;
pub mod progress;
pub mod scheduler;
pub mod standalone;

pub use error::ClusterError;
pub use standalone::{Session, connect, name_a_lost_scheduler};
