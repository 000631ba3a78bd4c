//! The job on a real cluster: one scheduler, two executors, separate processes.

use std::time::{Duration, Instant};

use procforest_tests::{Cluster, free_port, procforest};

use crate::common::{AS_OF, generate, generate_with, run};

/// A run of the driver on the cluster at `url` (four partitions), writing every score and
/// the anomalies; its stderr piped.
fn spawn_driver(
    table: &str,
    url: &str,
    scores: &std::path::Path,
    json: &std::path::Path,
) -> std::process::Child {
    std::process::Command::new(procforest_tests::binary("procforest"))
        .args(["run", "--table", table, "--as-of", AS_OF, "--quiet"])
        .args(["--scheduler", url, "--partitions", "4"])
        .arg("--scores-out")
        .arg(scores)
        .arg("--json")
        .arg(json)
        .env("PROCFOREST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until `executor` logs a task it starts (at Ballista's default level, `info`).
fn wait_for_a_task(executor: &procforest_tests::Executor) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !executor.process.log_text().contains("Execute task") {
        assert!(
            Instant::now() < deadline,
            "no task reached the executor: {}",
            executor.process.log_text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn executor_ran_tasks(work_dir: &std::path::Path) -> bool {
    // Each task that writes shuffle output leaves a folder named after its job.
    std::fs::read_dir(work_dir)
        .map(|entries| entries.filter_map(|e| e.ok()).any(|e| e.path().is_dir()))
        .unwrap_or(false)
}

#[test]
fn a_cluster_gives_the_standalone_answer_and_uses_every_executor() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    let table = table.to_str().unwrap();
    generate(table, 120_000, 7, 30, 21, &[]);
    let standalone = run(table, dir.path(), "standalone", &[], &[]);
    assert!(!standalone.anomalies.is_empty());

    let cluster = Cluster::start(dir.path(), 2, &[]);
    let url = cluster.url();
    let distributed = run(
        table,
        dir.path(),
        "cluster",
        &["--scheduler", &url, "--partitions", "4"],
        &[],
    );
    assert_eq!(distributed.scores.len(), standalone.scores.len());
    assert!(
        distributed == standalone,
        "the cluster's scores or anomalies differ"
    );
    // With a set contamination the anomalies' command lines are gathered after scoring,
    // by a function carrying their groups through the codecs to the executors.
    let contamination = ["--contamination", "0.02"];
    let standalone = run(table, dir.path(), "standalone-c", &contamination, &[]);
    assert!(standalone.anomalies.contains("command_lines"));
    let mut args = vec!["--scheduler", url.as_str(), "--partitions", "4"];
    args.extend(contamination);
    let distributed = run(table, dir.path(), "cluster-c", &args, &[]);
    assert!(
        distributed == standalone,
        "with a contamination, the cluster's scores or anomalies differ"
    );
    // The soc preset's evidence: command lines templated by a function the executors
    // rebuild from the plan.
    let soc = ["--preset", "soc"];
    let standalone = run(table, dir.path(), "standalone-soc", &soc, &[]);
    let mut args = vec!["--scheduler", url.as_str(), "--partitions", "4"];
    args.extend(soc);
    let distributed = run(table, dir.path(), "cluster-soc", &args, &[]);
    assert!(
        distributed == standalone,
        "with the soc preset, the cluster's scores or anomalies differ"
    );
    for (i, e) in cluster.executors.iter().enumerate() {
        assert!(executor_ran_tasks(&e.work_dir), "executor {i} ran no task");
    }
    assert!(
        cluster.jobs().len() >= 5,
        "the run submitted its jobs to the scheduler"
    );
}

/// Deleted rows are skipped by the executors: the selections travel in the plan, through
/// the codecs. A table whose duplicates are deleted by vectors gives, on the cluster, the
/// standalone answer of the same table generated without them.
#[test]
fn deletion_vectors_are_applied_on_the_executors() {
    let dir = tempfile::tempdir().unwrap();
    let with = dir.path().join("with_vectors");
    let with = with.to_str().unwrap();
    generate_with(with, 60_000, 5, 20, 13, &["--duplicates", "0.05"], &[]);
    let without = dir.path().join("without");
    let without = without.to_str().unwrap();
    generate(without, 60_000, 5, 20, 13, &[]);

    let cluster = Cluster::start(dir.path(), 2, &[]);
    let url = cluster.url();
    // Key counts; the GROUP BY over the scan (hourly intervals); the soc preset's scans.
    let hourly = ["--interval", "hour", "--window", "1d"];
    for (name, flags) in [
        ("days", &[][..]),
        ("hours", &hourly[..]),
        ("soc", &["--preset", "soc"][..]),
    ] {
        let expected = run(
            without,
            dir.path(),
            &format!("{name}-standalone"),
            flags,
            &[],
        );
        assert!(!expected.anomalies.is_empty(), "{name}: some anomalies");
        let mut args = vec!["--scheduler", url.as_str(), "--partitions", "4"];
        args.extend_from_slice(flags);
        let got = run(with, dir.path(), &format!("{name}-cluster"), &args, &[]);
        assert!(got == expected, "{name}: the cluster's answer differs");
    }
    for (i, e) in cluster.executors.iter().enumerate() {
        assert!(executor_ran_tasks(&e.work_dir), "executor {i} ran no task");
    }
}

#[test]
fn losing_an_executor_mid_job_does_not_change_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    let table_s = table.to_str().unwrap().to_string();
    generate(&table_s, 400_000, 10, 40, 4, &[]);
    let expected = run(&table_s, dir.path(), "standalone", &[], &[]);

    // The executors log each task they start (at Ballista's default level).
    let mut cluster = Cluster::start(dir.path(), 2, &[("RUST_LOG".into(), "info".into())]);
    let url = cluster.url();
    let scores = dir.path().join("cluster.parquet");
    let json = dir.path().join("cluster.jsonl");
    let mut driver = spawn_driver(&table_s, &url, &scores, &json);
    // Kill executor 1 as soon as it runs a task of the first jobs: mid-job. (A fixed
    // delay after the first job reached the scheduler once landed after a summaries job
    // had finished, while the driver fetched its results from that executor: a loss
    // Ballista 55's client does not recover from, see README's known upstream issues.)
    wait_for_a_task(&cluster.executors[1]);
    assert!(
        driver.try_wait().unwrap().is_none(),
        "the run must still be going"
    );
    cluster.executors[1].process.kill();
    let output = driver.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "the run failed after losing an executor: {}\nscheduler:\n{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.scheduler.log_text()
    );
    let got = crate::common::RunResult {
        scores: crate::common::read_scores(&scores),
        anomalies: std::fs::read_to_string(&json).unwrap(),
    };
    assert!(got == expected, "results differ after an executor was lost");
    assert!(!cluster.executors[1].process.running());
}

#[test]
fn an_unreachable_scheduler_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    generate(table.to_str().unwrap(), 2_000, 2, 3, 1, &[]);
    let url = format!("df://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let o = procforest(
        &[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--scheduler",
            &url,
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&url) || stderr.contains("scheduler"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_largest_forest_fits_in_the_plan_on_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    let table = table.to_str().unwrap();
    generate(table, 60_000, 7, 30, 8, &[]);
    let cluster = Cluster::start(dir.path(), 2, &[]);
    let url = cluster.url();
    let manifest = dir.path().join("m.json");
    let o = procforest(
        &[
            "run",
            "--table",
            table,
            "--as-of",
            AS_OF,
            "--quiet",
            "--scheduler",
            &url,
            "--trees",
            "1000",
            "--max-samples",
            "500",
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    let payload = m["model"]["payload_bytes"].as_u64().unwrap();
    assert!(payload > 1_000_000, "a large forest: {payload} bytes");
    assert!(
        payload < 16 * 1024 * 1024,
        "{payload} bytes must stay under gRPC's 16 MiB"
    );
}

/// A run's anomalies as JSON lines without the run id, and its manifest.
fn anomalies_and_manifest(
    table: &str,
    dir: &std::path::Path,
    name: &str,
    as_of: &str,
    extra: &[&str],
) -> (Vec<serde_json::Value>, serde_json::Value) {
    let json = dir.join(format!("{name}.jsonl"));
    let manifest = dir.join(format!("{name}.manifest.json"));
    let mut args = vec![
        "run",
        "--table",
        table,
        "--as-of",
        as_of,
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = procforest(&args, &[]);
    assert!(
        o.status.success(),
        "procforest {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let anomalies = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("run_id");
            v
        })
        .collect();
    let manifest = serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
    (anomalies, manifest)
}

/// A nightly run on a cluster, reading the history's rows from the summaries table (the
/// executors read its files, and the evidence of the report's and the sample's groups
/// only), gives the standalone full run's anomalies.
#[test]
fn a_night_on_a_cluster_with_a_summaries_table_gives_the_standalone_answer() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    let table = table.to_str().unwrap();
    generate(table, 60_000, 7, 20, 17, &[]);
    let cluster = Cluster::start(dir.path(), 2, &[]);
    let url = cluster.url();
    for (preset, contamination) in [("notebook", "auto"), ("soc", "0.05")] {
        let flags = ["--preset", preset, "--contamination", contamination];
        let (expected, _) =
            anomalies_and_manifest(table, dir.path(), &format!("{preset}-full"), AS_OF, &flags);
        assert!(!expected.is_empty(), "{preset}: some anomalies");
        let store = dir.path().join(format!("summaries-{preset}"));
        let mut args = vec!["--scheduler", url.as_str(), "--partitions", "4"];
        args.extend(["--summaries", store.to_str().unwrap()]);
        args.extend(flags);
        let night_before = format!("{preset}-night-before");
        anomalies_and_manifest(table, dir.path(), &night_before, "2026-11-26", &args);
        let (got, manifest) =
            anomalies_and_manifest(table, dir.path(), &format!("{preset}-night"), AS_OF, &args);
        assert_eq!(got, expected, "{preset}: the night's anomalies differ");
        let record = &manifest["summaries_table"];
        assert_eq!(record["intervals_read"], 6, "{record}");
        assert_eq!(record["intervals_counted"], 1, "{record}");
        if preset == "soc" {
            assert_eq!(record["line_intervals_read"], 6, "{record}");
        }
    }
}

/// A port taken between the check and the process's bind (another test run got there
/// first): the process exits, and is started again on another port.
#[test]
fn a_process_whose_port_was_taken_is_started_again_elsewhere() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::sync::Mutex::new(Vec::new());
    let (mut scheduler, port) = procforest_tests::start_on_free_ports(
        |port, _| {
            let mut taken = taken.lock().unwrap();
            if taken.is_empty() {
                taken.push(std::net::TcpListener::bind(("127.0.0.1", port)).unwrap());
            }
            let args = ["--bind-host", "127.0.0.1", "--bind-port", &port.to_string()];
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            let log = dir.path().join(format!("scheduler-{port}.log"));
            procforest_tests::Process::start(
                &procforest_tests::binary("procforest-scheduler"),
                &args,
                &[],
                log,
            )
        },
        |port| matches!(procforest_tests::http_get(port, "/healthz"), Ok((200, _))),
    );
    let first = taken.lock().unwrap()[0].local_addr().unwrap().port();
    assert_ne!(port, first, "started again on another port");
    assert!(scheduler.running());
}

/// The scheduler killed mid-job: the driver stops within a bounded time, naming the
/// scheduler, exit 2, and writes nothing (issue 27).
#[test]
fn losing_the_scheduler_mid_job_fails_the_run_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    let table_s = table.to_str().unwrap().to_string();
    generate(&table_s, 400_000, 10, 40, 4, &[]);
    let mut cluster = Cluster::start(dir.path(), 2, &[("RUST_LOG".into(), "info".into())]);
    let url = cluster.url();
    let json = dir.path().join("anomalies.jsonl");
    let scratch = dir.path().join("scratch");
    let driver = std::process::Command::new(procforest_tests::binary("procforest"))
        .args(["run", "--table", &table_s, "--as-of", AS_OF, "--quiet"])
        .args(["--preset", "soc", "--scheduler", &url, "--partitions", "4"])
        .arg("--json")
        .arg(&json)
        .arg("--scratch")
        .arg(&scratch)
        .env("PROCFOREST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_a_task(&cluster.executors[0]);
    cluster.scheduler.kill();
    let killed = Instant::now();
    let output = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        killed.elapsed() < Duration::from_secs(90),
        "the driver took {:?} to notice",
        killed.elapsed()
    );
    assert!(
        stderr.contains(&format!("scheduler at {url} stopped answering")),
        "{stderr}"
    );
    assert!(!json.exists(), "no output from a failed run");
    let left: Vec<_> = std::fs::read_dir(&scratch).unwrap().collect();
    assert!(
        left.is_empty(),
        "the failed run removes its scratch: {left:?}"
    );
}

/// An executor lost after a job finished and before the driver fetched its results (the
/// driver paused with SIGSTOP while the job runs, the executor killed once the scheduler
/// reports the job done): the run still gives the standalone answer (issue 27).
#[test]
fn losing_an_executor_before_the_fetch_does_not_change_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    let table_s = table.to_str().unwrap().to_string();
    generate(&table_s, 400_000, 10, 40, 4, &[]);
    let expected = run(&table_s, dir.path(), "standalone", &[], &[]);

    let mut cluster = Cluster::start(dir.path(), 2, &[]);
    let url = cluster.url();
    let scores = dir.path().join("cluster.parquet");
    let json = dir.path().join("cluster.jsonl");
    let driver = spawn_driver(&table_s, &url, &scores, &json);
    let signal = |name: &str| {
        let sent = std::process::Command::new("kill")
            .args([name, &driver.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    };
    let status = |job: &serde_json::Value| job["job_status"].as_str().unwrap_or("").to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !cluster.jobs().iter().any(|j| status(j) == "Running") {
        assert!(
            Instant::now() < deadline,
            "no job ran: {:?}",
            cluster.jobs()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    signal("-STOP");
    while cluster.jobs().iter().any(|j| status(j) == "Running") {
        assert!(Instant::now() < deadline, "the job did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    cluster.executors[1].process.kill();
    signal("-CONT");
    let output = driver.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the run failed: {stderr}");
    assert!(
        stderr.contains("running the job again, once"),
        "the fetch from the lost executor failed and was retried: {stderr}"
    );
    let got = crate::common::RunResult {
        scores: crate::common::read_scores(&scores),
        anomalies: std::fs::read_to_string(&json).unwrap(),
    };
    assert!(got == expected, "the answer changed");
}
