//! What a front end learns while a run goes, to show progress: the phases as they start,
//! and the scheduler the run's jobs go to (whose REST API says how far they are:
//! `procforest_cluster::progress`).

/// Told of a run's progress; every method has a default that ignores it.
pub trait RunObserver: Send + Sync {
    /// Phase `phase` starts (the manifest's phase names).
    fn phase_started(&self, _phase: &'static str) {}

    /// The session is ready: the run's jobs go to the scheduler at `scheduler_url`
    /// (`df://HOST:PORT`, standalone's loopback one too), each named `job_name`.
    fn connected(&self, _scheduler_url: &str, _job_name: &str) {}
}

/// Observes nothing.
pub struct Unobserved;

impl RunObserver for Unobserved {}
