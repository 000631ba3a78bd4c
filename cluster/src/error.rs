//! Why the driver could not reach or start a cluster.

/// A failure to reach a scheduler or to start Ballista standalone.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The scheduler address is not `df://HOST:PORT` (bad configuration).
    #[error("scheduler {url}: {problem}")]
    SchedulerUrl {
        /// The address as given.
        url: String,
        /// What is wrong with it.
        problem: String,
    },
    /// Nothing answers at the scheduler's address.
    #[error("cannot reach the Ballista scheduler at {url}: {problem}")]
    Unreachable {
        /// The address.
        url: String,
        /// The connection's error, or the time waited.
        problem: String,
    },
    /// The scheduler stopped answering during the run (it was stopped or restarted).
    #[error(
        "the Ballista scheduler at {url} stopped answering during the run (stopped or \
         restarted?); rerun the job once it is back: {source}"
    )]
    SchedulerLost {
        /// The address.
        url: String,
        /// How the run failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Ballista standalone's scheduler or executor could not start, or stopped.
    #[error("{0}")]
    Standalone(String),
    /// Setting up the session or standalone's processes failed.
    #[error("{what}: {source}")]
    Setup {
        /// What was being set up.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl ClusterError {
    /// Whether the configuration is at fault (exit 1) rather than the run (exit 2).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ClusterError::SchedulerUrl { .. })
    }
}

/// Turns a lower-level failure into [`ClusterError::Setup`], keeping it as the source.
pub(crate) trait SetupContext<T> {
    fn setup(self, what: impl Into<String>) -> Result<T, ClusterError>;
}

impl<T, E: Into<Box<dyn std::error::Error + Send + Sync>>> SetupContext<T> for Result<T, E> {
    fn setup(self, what: impl Into<String>) -> Result<T, ClusterError> {
        self.map_err(|e| ClusterError::Setup {
            what: what.into(),
            source: e.into(),
        })
    }
}
