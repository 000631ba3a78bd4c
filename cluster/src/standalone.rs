//! The Ballista session: a remote scheduler, or Ballista standalone in this process. Either
//! way, plans travel through the same codecs, so the model and file list ride in the plan.
//!
//! Standalone is a Ballista scheduler and executor started inside this process on loopback
//! ports, configured like `procforest-scheduler` and `procforest-executor` (push-staged
//! scheduling, procforest's codecs and object stores). Ballista's own `standalone` helper
//! uses pull-staged scheduling, whose polls delay each of a run's small jobs
//! (BENCHMARKS.md).

use std::{collections::HashMap, sync::Arc, time::Duration};

use ballista::prelude::SessionContextExt;
use ballista_core::config::{BALLISTA_JOB_NAME, TaskSchedulingPolicy};
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::{
    cluster::{BallistaCluster, ClusterState},
    config::SchedulerConfig,
};
use datafusion::{execution::SessionStateBuilder, prelude::SessionContext};
use procforest_core::session::{runtime_env, session_config};

use crate::{
    error::{ClusterError, SetupContext},
    executor, scheduler,
};

type Result<T, E = ClusterError> = std::result::Result<T, E>;

/// A session, and Ballista standalone's work folder (shuffle files, spills) if this
/// process runs it: removed when dropped, so keep it until the run ends.
pub struct Session {
    /// The session.
    pub ctx: SessionContext,
    /// The scheduler's address, `df://HOST:PORT` (standalone's loopback one too).
    pub scheduler_url: String,
    /// The name every job of this session carries.
    pub job_name: String,
    /// Standalone's work folder.
    work_dir: Option<tempfile::TempDir>,
    /// Why standalone's scheduler or executor stopped, once one has.
    standalone_stopped: Option<Stopped>,
}

/// Set, with the reason, when Ballista standalone's scheduler or executor stops.
type Stopped = tokio::sync::watch::Receiver<Option<String>>;

impl Session {
    /// Resolves, with the reason, if Ballista standalone's scheduler or executor stops
    /// while the session is in use (a job would otherwise wait for them forever); never
    /// for a cluster's.
    pub async fn standalone_stopped(&self) -> String {
        let Some(stopped) = &self.standalone_stopped else {
            return std::future::pending().await;
        };
        let mut stopped = stopped.clone();
        match stopped.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "Ballista standalone stopped".to_string(),
        }
    }

    /// Removes standalone's work folder (its shuffle files) on a blocking thread, so that
    /// the caller can remove other files meanwhile; the session must run no more jobs.
    pub fn remove_work_dir(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let dir = self.work_dir.take()?;
        Some(tokio::task::spawn_blocking(move || drop(dir)))
    }
}

/// Connects to `scheduler` (`df://host:port`), or starts Ballista standalone when `None`;
/// the session's jobs are named `job_name` (so that a run finds its own on a shared
/// scheduler).
pub async fn connect(
    scheduler: Option<&str>,
    partitions: usize,
    azure_options: HashMap<String, String>,
    job_name: &str,
) -> Result<Session> {
    let mut config = session_config(partitions).set_str(BALLISTA_JOB_NAME, job_name);
    if scheduler.is_none() {
        // Standalone's shuffle files never leave this machine: compressing them (lz4, for
        // the network) only costs CPU.
        config = config.set_str("ballista.shuffle.compression.codec", "none");
        // Nor does it gain from adaptive planning (partition counts and joins chosen from
        // measured statistics, for clusters and large shuffles); planning every stage again
        // only delays each job (BENCHMARKS.md).
        config = config.set_bool("ballista.planner.adaptive.enabled", false);
    }
    // No logical optimizer here: the scheduler optimizes every plan it receives; doing it
    // first on the driver too only delays each submission.
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime_env(azure_options, None).setup("setting up object stores")?)
        .with_default_features()
        .with_optimizer_rules(Vec::new())
        .build();
    let mut work_dir = None;
    let mut standalone_stopped = None;
    let url = match scheduler {
        None => {
            let dir = tempfile::Builder::new()
                .prefix("procforest-standalone-")
                .tempdir()
                .setup("creating Ballista standalone's work folder")?;
            // The executor's ports are found free and bound later by Ballista, so another
            // socket can take one meanwhile: the executor then stops, and standalone starts
            // again on other ports (twice at most).
            let folder = dir.path().display().to_string();
            let mut attempt = 1;
            let (url, stopped) = loop {
                match start_standalone(partitions, &folder, None).await {
                    Ok(started) => break started,
                    Err(e) if attempt < 3 => {
                        tracing::warn!("{e}; starting Ballista standalone again");
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            };
            work_dir = Some(dir);
            standalone_stopped = Some(stopped);
            url
        }
        Some(url) => {
            if !url.starts_with("df://") {
                return Err(ClusterError::SchedulerUrl {
                    url: url.to_string(),
                    problem: "expected df://HOST:PORT".into(),
                });
            }
            probe_scheduler(url).await?;
            url.to_string()
        }
    };
    let ctx = SessionContext::remote_with_state(&url, state)
        .await
        .setup(format!("connecting to the scheduler at {url}"))?;
    Ok(Session {
        ctx,
        scheduler_url: url,
        job_name: job_name.to_string(),
        work_dir,
        standalone_stopped,
    })
}

/// Two free TCP ports on 127.0.0.1 for the executor, which binds them a moment later:
/// taken below Linux's default ephemeral range (32768–60999), from which `bind(0)` and
/// every outgoing connection draw their ports — the executor's own connection to the
/// scheduler could otherwise take one first — and each checked free by binding it, both
/// at once (so that they differ).
fn free_ports() -> Result<(u16, u16)> {
    // (The end-to-end tests' own processes take theirs from 20000–31999.)
    const FIRST: u16 = 10_000;
    const COUNT: u16 = 10_000;
    let start = rand::random::<u16>() % COUNT;
    let mut held = Vec::with_capacity(2);
    for offset in 0..COUNT {
        let port = FIRST + (start + offset) % COUNT;
        if let Ok(listener) = std::net::TcpListener::bind(("127.0.0.1", port)) {
            held.push((port, listener));
            if let [(flight, _), (grpc, _)] = held.as_slice() {
                return Ok((*flight, *grpc));
            }
        }
    }
    Err(ClusterError::Standalone(format!(
        "no two free loopback ports in {FIRST}–{} for Ballista standalone's executor",
        FIRST + COUNT - 1
    )))
}

/// Starts a scheduler and an executor (with two task slots per partition: the job runs
/// small independent jobs side by side) in this process, the executor on `ports` (its
/// Flight and gRPC ports) if given, otherwise on two ports [`free_ports`] finds (a port
/// someone else took would fail the executor's bind, or worse, answer the check that its
/// Flight port is served); returns the scheduler's URL and what reports either stopping
/// (they otherwise stop with the process).
async fn start_standalone(
    partitions: usize,
    work_dir: &str,
    ports: Option<(u16, u16)>,
) -> Result<(String, Stopped)> {
    let (stop, stopped) = tokio::sync::watch::channel(None);
    // Bound here, so that the executor can connect as soon as it starts.
    let listener = scheduler::bind(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .and_then(|l| Ok((l.local_addr()?.port(), l)))
        .setup("binding Ballista standalone's scheduler to a loopback port");
    let (scheduler_port, listener) = listener?;
    let ports = match ports {
        Some(ports) => ports,
        None => free_ports()?,
    };
    let scheduler = scheduler::configure(SchedulerConfig {
        bind_host: "127.0.0.1".into(),
        external_host: "127.0.0.1".into(),
        bind_port: scheduler_port,
        scheduling_policy: TaskSchedulingPolicy::PushStaged,
        ..Default::default()
    });
    let cluster = BallistaCluster::new_from_config(&scheduler)
        .await
        .setup("starting Ballista standalone's scheduler")?;
    let cluster_state = cluster.cluster_state();
    let stop_scheduler = stop.clone();
    let scheduler_task = tokio::spawn(async move {
        let served = scheduler::serve(listener, cluster, Arc::new(scheduler)).await;
        report_stop(&stop_scheduler, "scheduler", served.err());
    });

    let mut executor = ExecutorProcessConfig {
        bind_host: "127.0.0.1".into(),
        external_host: Some("127.0.0.1".into()),
        port: ports.0,
        grpc_port: ports.1,
        scheduler_host: "127.0.0.1".into(),
        scheduler_port,
        scheduler_connect_timeout_seconds: 10,
        vcores: 2 * partitions.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PushStaged,
        work_dir: Some(work_dir.to_string()),
        ..Default::default()
    };
    executor::configure(&mut executor, work_dir);
    // Sized here as Ballista would size it: its own detection scans every process of the
    // host (sysinfo's `System::new_all`) at each start.
    let limits = MemoryLimits {
        meminfo: std::fs::read_to_string("/proc/meminfo").ok(),
        cgroup_max: std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok(),
    };
    if let Some(bytes) = limits.pool_bytes(executor.memory_pool_fraction) {
        executor.memory_pool_size = Some(bytes);
    }
    tokio::spawn(async move {
        let ran = start_executor_process(Arc::new(executor)).await;
        report_stop(&stop, "executor", ran.err());
    });
    if let Err(e) = executor_ready(&cluster_state, ports.0, &stopped).await {
        scheduler_task.abort();
        return Err(e);
    }
    Ok((format!("df://127.0.0.1:{scheduler_port}"), stopped))
}

/// Waits, 10 s at most, until standalone's executor has registered with the scheduler
/// (jobs submitted before would wait for it, with warnings) and serves Flight on
/// `flight_port` (it binds that port only after registering), or has stopped.
async fn executor_ready(
    cluster: &Arc<dyn ClusterState>,
    flight_port: u16,
    stopped: &Stopped,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut registered = false;
    loop {
        if let Some(reason) = stopped.borrow().clone() {
            return Err(ClusterError::Standalone(reason));
        }
        if !registered {
            registered = !cluster.registered_executor_metadata().await.is_empty();
        }
        if registered
            && tokio::net::TcpStream::connect(("127.0.0.1", flight_port))
                .await
                .is_ok()
        {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClusterError::Standalone(
                "Ballista standalone's executor did not start within 10 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Logs that standalone's `part` stopped (with `error`, if any) and tells the session.
fn report_stop(
    stop: &tokio::sync::watch::Sender<Option<String>>,
    part: &str,
    error: Option<impl std::fmt::Display>,
) {
    let reason = match error {
        Some(e) => format!("Ballista standalone's {part} stopped: {e}"),
        None => format!("Ballista standalone's {part} stopped"),
    };
    tracing::error!("{reason}");
    stop.send_replace(Some(reason));
}

/// `error`, or [`ClusterError::SchedulerLost`] around it when the run was on the scheduler
/// at `url` and that no longer accepts connections: a failed job's own error says only
/// that a stream broke.
pub async fn name_a_lost_scheduler<E>(error: E, url: Option<&str>) -> Result<E, ClusterError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    match url {
        Some(url) if probe_scheduler(url).await.is_err() => Err(ClusterError::SchedulerLost {
            url: url.to_string(),
            source: Box::new(error),
        }),
        _ => Ok(error),
    }
}

/// Checks that the scheduler accepts connections, within 10 seconds: Ballista connects
/// lazily and would report an unreachable scheduler only deep inside the first job.
async fn probe_scheduler(url: &str) -> Result<()> {
    let bad = |problem: String| ClusterError::SchedulerUrl {
        url: url.to_string(),
        problem,
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| bad("no host".into()))?
        .to_string();
    let port = parsed.port().unwrap_or(50050);
    let connect = tokio::net::TcpStream::connect((host.as_str(), port));
    match tokio::time::timeout(Duration::from_secs(10), connect).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(ClusterError::Unreachable {
            url: url.to_string(),
            problem: e.to_string(),
        }),
        Err(_) => Err(ClusterError::Unreachable {
            url: url.to_string(),
            problem: "no answer within 10 s".into(),
        }),
    }
}

/// What bounds standalone's memory: the host's `/proc/meminfo` and the cgroup's
/// `memory.max` (v2), as read.
struct MemoryLimits {
    meminfo: Option<String>,
    cgroup_max: Option<String>,
}

impl MemoryLimits {
    /// The executor's memory pool, like Ballista's automatic size: `fraction` of the
    /// host's memory or of the cgroup's limit if lower. `None` when the host's memory is
    /// unknown (Ballista then detects it itself).
    fn pool_bytes(&self, fraction: f64) -> Option<u64> {
        let kib: u64 = self
            .meminfo
            .as_deref()?
            .lines()
            .find_map(|line| line.strip_prefix("MemTotal:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        let host = kib.checked_mul(1024)?;
        let cgroup = self
            .cgroup_max
            .as_deref()
            .and_then(|max| max.trim().parse::<u64>().ok());
        let base = cgroup.map_or(host, |limit| limit.min(host));
        Some((base as f64 * fraction) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::{MemoryLimits, free_ports, start_standalone};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flight_port_lost_to_a_connection_fails_the_start() {
        // The race the start guards against: a connection's own port (not a listener)
        // is the port picked for the executor's Flight server.
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(server.local_addr().unwrap()).unwrap();
        let ports = (client.local_addr().unwrap().port(), free_ports().unwrap().1);
        let dir = tempfile::tempdir().unwrap();
        let started = start_standalone(1, &dir.path().display().to_string(), Some(ports)).await;
        let Err(e) = started else {
            panic!("the executor cannot serve Flight, yet standalone started");
        };
        assert!(
            e.to_string().contains("standalone's executor stopped"),
            "{e}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_executor_that_stops_is_reported_not_waited_for() {
        // The executor's Flight port is taken: it registers, then fails to serve.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ports = (taken.local_addr().unwrap().port(), free_ports().unwrap().1);
        let dir = tempfile::tempdir().unwrap();
        let started = start_standalone(1, &dir.path().display().to_string(), Some(ports)).await;
        let reason = match started {
            Err(e) => e.to_string(),
            Ok((_, mut stopped)) => {
                let waited = tokio::time::timeout(
                    std::time::Duration::from_secs(30),
                    stopped.wait_for(Option::is_some),
                )
                .await
                .expect("the executor's stop is reported");
                waited.unwrap().clone().unwrap()
            }
        };
        assert!(reason.contains("standalone's executor stopped"), "{reason}");
    }

    /// The executor's two ports differ, lie below the ephemeral range (where no outgoing
    /// connection takes them) and are free.
    #[test]
    fn the_executors_ports_are_two_free_ports_below_the_ephemeral_range() {
        for _ in 0..200 {
            let (flight, grpc) = free_ports().unwrap();
            assert_ne!(flight, grpc);
            for port in [flight, grpc] {
                assert!((10_000..20_000).contains(&port), "{port}");
                std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
            }
        }
    }

    /// Started with ports of its own choosing, standalone serves: the executor's ports
    /// are not the scheduler's (whose listener is bound first).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn standalone_chooses_ports_that_work() {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..3 {
            let started = start_standalone(1, &dir.path().display().to_string(), None).await;
            let (url, stopped) = started.expect("standalone starts on ports it chose");
            assert!(url.starts_with("df://127.0.0.1:"), "{url}");
            assert!(stopped.borrow().is_none(), "{:?}", stopped.borrow());
        }
    }

    const MEMINFO: &str = "MemTotal:       24576000 kB\nMemFree:         1000 kB\n";

    fn limits(meminfo: Option<&str>, cgroup_max: Option<&str>) -> MemoryLimits {
        MemoryLimits {
            meminfo: meminfo.map(String::from),
            cgroup_max: cgroup_max.map(String::from),
        }
    }

    #[test]
    fn pool_is_a_fraction_of_host_or_cgroup_memory() {
        let host = 24_576_000 * 1024;
        assert_eq!(limits(Some(MEMINFO), None).pool_bytes(0.5), Some(host / 2));
        assert_eq!(
            limits(Some(MEMINFO), Some("max\n")).pool_bytes(0.5),
            Some(host / 2),
            "no cgroup limit"
        );
        assert_eq!(
            limits(Some(MEMINFO), Some("2000000000\n")).pool_bytes(0.5),
            Some(1_000_000_000),
            "a lower cgroup limit"
        );
        assert_eq!(
            limits(Some(MEMINFO), Some("999999999999999\n")).pool_bytes(0.5),
            Some(host / 2),
            "a cgroup limit above the host's memory"
        );
        assert_eq!(limits(None, Some("2000000000")).pool_bytes(0.5), None);
        assert_eq!(limits(Some("MemFree: 1 kB\n"), None).pool_bytes(0.5), None);
    }
}
