//! The Azure Monitor sink against the loopback Logs Ingestion API and Entra ID stand-ins:
//! every RecordId arrives exactly once or is reported and dead-lettered, whatever the faults.

use std::{collections::HashSet, path::Path, time::Duration};

use procforest_tests::{
    monitor::{CLIENT_ID, CLIENT_SECRET, DCR, FEDERATED_TOKEN, FakeMonitor, Fault, STREAM, TENANT},
    procforest,
};

use crate::common::{AS_OF, generate};

/// Generates the table the tests report on (about a thousand anomalies).
fn table(dir: &Path) -> String {
    let t = dir.join("events");
    generate(t.to_str().unwrap(), 100_000, 3, 80, 12, &[]);
    t.display().to_string()
}

fn env(fake: &FakeMonitor, dir: &Path, federated: bool) -> Vec<(String, String)> {
    let mut env = vec![
        ("AZURE_AUTHORITY_HOST".into(), format!("{}/", fake.url())),
        ("AZURE_TENANT_ID".into(), TENANT.into()),
        ("AZURE_CLIENT_ID".into(), CLIENT_ID.into()),
        ("PROCFOREST_LOG".into(), "debug".into()),
    ];
    if federated {
        let file = dir.join("federated-token");
        std::fs::write(&file, FEDERATED_TOKEN).unwrap();
        env.push((
            "AZURE_FEDERATED_TOKEN_FILE".into(),
            file.display().to_string(),
        ));
    } else {
        env.push(("AZURE_CLIENT_SECRET".into(), CLIENT_SECRET.into()));
    }
    env
}

struct Outcome {
    code: Option<i32>,
    stderr: String,
    reported: Vec<String>,
}

fn run(
    fake: &FakeMonitor,
    dir: &Path,
    table: &str,
    env: &[(String, String)],
    extra: &[&str],
) -> Outcome {
    let json = dir.join("anomalies.jsonl");
    let dead = dir.join("dead.jsonl");
    let url = fake.url();
    let mut args = vec![
        "run",
        "--table",
        table,
        "--as-of",
        AS_OF,
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--sink",
        "azure-monitor",
        "--monitor-endpoint",
        &url,
        "--monitor-dcr",
        DCR,
        "--monitor-stream",
        STREAM,
        "--monitor-allow-http",
        "--monitor-dead-letter",
        dead.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = procforest(&args, env);
    let reported = std::fs::read_to_string(&json)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        reported,
    }
}

fn assert_no_secret(stderr: &str, fake: &FakeMonitor) {
    for secret in [CLIENT_SECRET, FEDERATED_TOKEN, "tok-"] {
        assert!(
            !stderr.contains(secret),
            "a secret or token was logged: {secret}"
        );
    }
    assert!(!fake.token_requests().is_empty());
}

fn assert_exactly_once(fake: &FakeMonitor, expected: usize) {
    let ids = fake.accepted_ids();
    assert_eq!(ids.len(), expected, "every anomaly arrived");
    assert!(ids.values().all(|&n| n == 1), "no anomaly arrived twice");
}

#[test]
fn every_anomaly_arrives_once_with_workload_identity() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    let env = env(&fake, dir.path(), true);
    let o = run(&fake, dir.path(), &table, &env, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(o.reported.len() > 200, "{} anomalies", o.reported.len());
    assert_exactly_once(&fake, o.reported.len());
    let uploads = fake.uploads();
    assert!(
        uploads.len() >= 2,
        "more than 1 MB of records needs several requests"
    );
    assert!(
        uploads
            .iter()
            .all(|u| u.status == 204 && u.body_bytes <= 1_000_000)
    );
    assert_eq!(
        fake.token_requests(),
        vec!["federated".to_string()],
        "one token, reused"
    );
    assert_no_secret(&o.stderr, &fake);
    let record = &fake.accepted()[0];
    for field in [
        "TimeStamp",
        "User",
        "Resource",
        "AnomalyScore",
        "RunId",
        "RecordId",
        "ModelHash",
    ] {
        assert!(record.get(field).is_some(), "{field} in {record}");
    }
}

#[test]
fn transient_faults_are_retried_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    fake.inject([
        Fault::Status(429, h("Retry-After", "1"), String::new()),
        Fault::Status(429, h("retry-after-ms", "200"), String::new()),
        Fault::Status(429, h("x-ms-retry-after-ms", "300"), String::new()),
        Fault::Status(503, vec![], String::new()),
        Fault::Status(503, vec![], String::new()),
        Fault::Status(503, vec![], String::new()),
        Fault::Reset,
        Fault::Slow(Duration::from_secs(4)),
        Fault::ExpireTokens,
        Fault::Status(500, vec![], String::new()),
        Fault::Status(408, vec![], String::new()),
    ]);
    let env = env(&fake, dir.path(), false);
    let o = run(
        &fake,
        dir.path(),
        &table,
        &env,
        &["--monitor-timeout", "2s"],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_exactly_once(&fake, o.reported.len());
    // Retries reuse the request id of their chunk.
    let uploads = fake.uploads();
    let first = &uploads[0].request_id;
    assert!(!first.is_empty());
    assert!(
        uploads.iter().filter(|u| &u.request_id == first).count() > 3,
        "retries keep the request id"
    );
    let ids: HashSet<&str> = uploads.iter().map(|u| u.request_id.as_str()).collect();
    assert!(ids.len() >= 2, "each chunk has its own id");
    assert!(
        fake.token_requests().len() >= 2,
        "the expired token was refreshed"
    );
    assert_no_secret(&o.stderr, &fake);
}

#[test]
fn a_request_too_large_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    fake.inject([Fault::Status(413, vec![], String::new())]);
    let env = env(&fake, dir.path(), false);
    let o = run(&fake, dir.path(), &table, &env, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_exactly_once(&fake, o.reported.len());
    let uploads = fake.uploads();
    assert_eq!(uploads[0].status, 413);
    let first_ok = uploads.iter().find(|u| u.status == 204).unwrap();
    assert_ne!(
        first_ok.request_id, uploads[0].request_id,
        "each half is a new request"
    );
}

#[test]
fn a_refusal_stops_dead_letters_and_resend_delivers_later() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    let body = r#"{"error":{"code":"OperationFailed","message":"The authentication token provided does not have access to ingest data for the data collection rule"}}"#;
    fake.inject([Fault::Status(403, vec![], body.into())]);
    let env = env(&fake, dir.path(), false);
    let o = run(&fake, dir.path(), &table, &env, &[]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(
        o.stderr.contains("403") && o.stderr.contains("OperationFailed"),
        "{}",
        o.stderr
    );
    assert!(fake.accepted().is_empty());
    assert_eq!(
        fake.uploads().len(),
        1,
        "nothing more is sent after a refusal"
    );
    let dead = dir.path().join("dead.jsonl");
    let dead_lines = std::fs::read_to_string(&dead).unwrap().lines().count();
    assert_eq!(
        dead_lines,
        o.reported.len(),
        "every undelivered record is kept"
    );
    let first_id: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&dead)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert!(
        o.stderr.contains(first_id["RecordId"].as_str().unwrap()),
        "RecordIds are listed"
    );
    // Later, with access granted: resend delivers them exactly once.
    let url = fake.url();
    let out = procforest(
        &[
            "resend",
            dead.to_str().unwrap(),
            "--monitor-endpoint",
            &url,
            "--monitor-dcr",
            DCR,
            "--monitor-stream",
            STREAM,
            "--monitor-allow-http",
        ],
        &env,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&fake, o.reported.len());
    assert!(!dead.exists(), "a delivered dead-letter file is removed");
}

#[test]
fn delivery_gives_up_within_its_time_bound() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    fake.inject((0..50).map(|_| Fault::Status(503, vec![], String::new())));
    let env = env(&fake, dir.path(), false);
    let started = std::time::Instant::now();
    let o = run(
        &fake,
        dir.path(),
        &table,
        &env,
        &["--monitor-max-time", "3s"],
    );
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("gave up"), "{}", o.stderr);
    assert!(started.elapsed() < Duration::from_secs(60));
    let ids = fake.accepted_ids();
    let dead = std::fs::read_to_string(dir.path().join("dead.jsonl")).unwrap();
    assert_eq!(
        ids.len() + dead.lines().count(),
        o.reported.len(),
        "delivered or dead-lettered, each once"
    );
}

#[test]
fn plain_http_needs_the_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = procforest(
        &[
            "run",
            "--quiet",
            "--sink",
            "azure-monitor",
            "--monitor-endpoint",
            "http://127.0.0.1:9",
            "--monitor-dcr",
            DCR,
            "--monitor-stream",
            STREAM,
        ],
        &[(
            "PROCFOREST_MONITOR_DEAD_LETTER".into(),
            dir.path().join("d").display().to_string(),
        )],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--monitor-allow-http"));
}

#[test]
fn the_official_python_client_uploads_our_records_to_the_stand_in() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    // Get real records: a refused run leaves them in its dead-letter file.
    fake.inject([Fault::Status(403, vec![], String::new())]);
    let env = env(&fake, dir.path(), false);
    let o = run(&fake, dir.path(), &table, &env, &[]);
    assert_eq!(o.code, Some(2));
    let dead = dir.path().join("dead.jsonl");
    let script = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../deploy/azure/crosscheck_python_client.py");
    let url = fake.url();
    let python = procforest_tests::python(&["azure.monitor.ingestion"]);
    let out = std::process::Command::new(python)
        .arg(script)
        .args([
            &url,
            &url,
            TENANT,
            CLIENT_ID,
            CLIENT_SECRET,
            DCR,
            STREAM,
            dead.to_str().unwrap(),
        ])
        .output()
        .expect("running the official client");
    assert!(
        out.status.success(),
        "the official client failed against the stand-in: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_exactly_once(&fake, o.reported.len());
    // The official client's requests: gzip, at most 1 MB, accepted.
    assert!(
        fake.uploads()
            .iter()
            .skip(1)
            .all(|u| u.status == 204 && u.body_bytes <= procforest_tests::monitor::MAX_BODY_BYTES)
    );
}
