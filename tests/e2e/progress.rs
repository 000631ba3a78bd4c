//! Progress while a run goes: progress log lines (JSON, as in pods) with the scheduler's
//! stages and tasks of the run's jobs on a two-executor cluster, and the terminal's status
//! line ending each phase with a line of its own.

use procforest_tests::{Cluster, procforest};
use serde_json::Value;

use crate::common::{AS_OF, generate};

#[test]
fn a_cluster_run_logs_its_jobs_progress_at_a_steady_interval() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    generate(table.to_str().unwrap(), 120_000, 10, 30, 47, &[]);
    let cluster = Cluster::start(dir.path(), 2, &[]);
    let url = cluster.url();
    let env = [(
        "PROCFOREST_LOG".to_string(),
        "warn,procforest=info".to_string(),
    )];
    let o = procforest(
        &[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--preset",
            "soc",
            "--scheduler",
            &url,
            "--quiet",
            "--log-format",
            "json",
            "--progress",
            "log",
            "--progress-interval",
            "0.1",
        ],
        &env,
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run: {stderr}");
    let progress: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "procforest::progress")
        .map(|l| l["fields"].clone())
        .collect();
    assert!(progress.len() >= 3, "progress lines: {progress:?}");
    let with_jobs: Vec<&Value> = progress
        .iter()
        .filter(|p| p["jobs"].as_u64() > Some(0))
        .collect();
    assert!(
        with_jobs.iter().any(|p| p["stages"].as_u64() > Some(0)),
        "no line saw a job's stages: {progress:?}"
    );
    for p in &with_jobs {
        let n = |k: &str| p[k].as_u64().unwrap();
        assert!(n("stages_done") <= n("stages"), "{p}");
        assert!(n("tasks_done") <= n("tasks_started"), "{p}");
    }
    let phases: Vec<&str> = progress
        .iter()
        .filter_map(|p| p["phase"].as_str())
        .collect();
    assert!(phases.contains(&"summaries"), "{phases:?}");
    // One line per interval: the phase's clock only goes forward within a phase.
    for pair in progress.windows(2) {
        if pair[0]["phase"] == pair[1]["phase"] {
            assert!(pair[0]["phase_seconds"].as_f64() <= pair[1]["phase_seconds"].as_f64());
        }
    }
}

#[test]
fn the_terminal_status_line_ends_every_phase_with_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    generate(table.to_str().unwrap(), 30_000, 5, 10, 53, &[]);
    let o = procforest(
        &[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--progress",
            "terminal",
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "run: {stderr}");
    let finished: Vec<&str> = stderr
        .split('\n')
        .filter_map(|line| line.rsplit("\r\x1b[2K").next())
        .filter_map(|line| line.strip_prefix("procforest: "))
        .filter_map(|line| line.strip_suffix(" s"))
        .filter_map(|line| line.rsplit_once(' ').map(|(phase, _)| phase))
        .collect();
    assert_eq!(
        finished,
        [
            "snapshot",
            "summaries",
            "indexing",
            "sample",
            "fit",
            "score"
        ],
        "{stderr:?}"
    );
    // Nothing is left drawn: the run's summary starts on a clean line.
    let summary = stderr.find("run ").unwrap();
    assert!(stderr[..summary].ends_with("\r\x1b[2K") || stderr[..summary].ends_with('\n'));
}
