//! The Azure Monitor sink against the loopback Logs Ingestion API and Entra ID stand-ins:
//! every RecordId arrives exactly once or is reported and dead-lettered, whatever the faults.

use std::{collections::HashSet, path::Path, time::Duration};

use procforest_tests::{
    monitor::{
        CLIENT_ID, CLIENT_SECRET, DCR, FEDERATED_TOKEN, FakeMonitor, Fault, IDENTITY_HEADER,
        STREAM, TENANT,
    },
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
        "--monitor-dead-letter",
        dead.to_str().unwrap(),
    ];
    if url.starts_with("http://") {
        args.push("--monitor-allow-http");
    }
    if extra.contains(&"--monitor-stream") {
        let at = args.iter().position(|a| *a == "--monitor-stream").unwrap();
        args.drain(at..at + 2);
    }
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
    assert_polite(fake);
}

/// Every request compressed, within the limit, and no retry before its `Retry-After`.
fn assert_polite(fake: &FakeMonitor) {
    for upload in fake.uploads() {
        assert!(upload.gzip, "an uncompressed body: {upload:?}");
        assert!(upload.body_bytes <= 1_000_000, "{upload:?}");
        assert!(!upload.early, "a retry before its Retry-After: {upload:?}");
    }
}

/// A run the service refuses: exit 2, the refusal named, nothing ingested, every anomaly in
/// the dead-letter file.
fn assert_refused(o: &Outcome, fake: &FakeMonitor, dir: &Path, named: &[&str]) {
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    for name in named {
        assert!(o.stderr.contains(name), "{name} not named: {}", o.stderr);
    }
    assert!(fake.accepted().is_empty());
    let dead = std::fs::read_to_string(dir.join("dead.jsonl")).unwrap();
    assert_eq!(
        dead.lines().count(),
        o.reported.len(),
        "every record is kept"
    );
    assert!(!o.reported.is_empty());
    assert_no_secret(&o.stderr, fake);
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
    // The official client packs 1 MiB of records without counting the `, ` between them,
    // so its bodies can pass the service's 1 MiB: give it less than that.
    let dead = dir.path().join("subset.jsonl");
    let mut subset = String::new();
    for line in std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap()
        .lines()
    {
        if subset.len() + line.len() > 900_000 {
            break;
        }
        subset.push_str(line);
        subset.push('\n');
    }
    std::fs::write(&dead, &subset).unwrap();
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
    let ids = fake.accepted_ids();
    assert_eq!(ids.len(), subset.lines().count(), "every record arrived");
    assert!(ids.values().all(|&n| n == 1), "no record arrived twice");
    // The official client's requests: gzip, at most 1 MB, accepted.
    assert!(
        fake.uploads()
            .iter()
            .skip(1)
            .all(|u| u.status == 204 && u.gzip)
    );
}

#[test]
fn a_lost_response_makes_a_duplicate_that_the_documented_query_removes() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    let fake = FakeMonitor::start(Duration::from_secs(3600));
    fake.inject([Fault::LoseResponse]);
    let env = env(&fake, dir.path(), false);
    let o = run(&fake, dir.path(), &table, &env, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_polite(&fake);
    let uploads = fake.uploads();
    assert_eq!(
        uploads[0].request_id, uploads[1].request_id,
        "the unanswered request is retried as itself"
    );
    let first_chunk = uploads[0].record_ids.len();
    let ids = fake.accepted_ids();
    assert_eq!(ids.len(), o.reported.len());
    assert_eq!(
        ids.values().filter(|&&n| n == 2).count(),
        first_chunk,
        "the service does not deduplicate: the first chunk arrived twice"
    );
    // The README's de-duplication query, run over the rows the service holds.
    let rows = kusto::run(&documented_query(), &fake.accepted());
    let mut kept: Vec<&str> = rows
        .iter()
        .map(|r| r["RecordId"].as_str().unwrap())
        .collect();
    kept.sort();
    let mut expected: Vec<&str> = ids.keys().map(String::as_str).collect();
    expected.sort();
    assert_eq!(kept, expected, "one row per anomaly after the query");
}

/// The Kusto block of `deploy/azure/README.md`'s delivery guarantees.
fn documented_query() -> String {
    let readme = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/azure/README.md"),
    )
    .unwrap();
    let block = readme.split("```kusto\n").nth(1).expect("a kusto block");
    block.split("```").next().unwrap().to_string()
}

/// Just enough Kusto to run the documented de-duplication over rows: a table name, then
/// `summarize arg_max(COLUMN, *) by KEY`. Any other operator fails the test, so a changed
/// query is evaluated, never skipped.
mod kusto {
    use serde_json::Value;

    pub fn run(query: &str, rows: &[Value]) -> Vec<Value> {
        let mut lines = query.lines().map(str::trim).filter(|l| !l.is_empty());
        let table = lines.next().expect("a table");
        assert_eq!(
            table,
            procforest_tests::monitor::STREAM.trim_start_matches("Custom-")
        );
        let mut rows = rows.to_vec();
        for line in lines {
            let operator = line.strip_prefix("| ").expect("a pipe");
            rows = summarize_arg_max(operator, rows)
                .unwrap_or_else(|| panic!("unsupported Kusto operator: {operator}"));
        }
        rows
    }

    fn summarize_arg_max(operator: &str, rows: Vec<Value>) -> Option<Vec<Value>> {
        let rest = operator.strip_prefix("summarize arg_max(")?;
        let (column, rest) = rest.split_once(", *) by ")?;
        let key = rest.trim();
        let mut best: std::collections::BTreeMap<String, Value> = Default::default();
        for row in rows {
            let k = row[key].to_string();
            let better = best
                .get(&k)
                .is_none_or(|b| b[column].as_str() < row[column].as_str());
            if better {
                best.insert(k, row);
            }
        }
        Some(best.into_values().collect())
    }
}

#[test]
fn refusals_stop_the_delivery_and_keep_every_record() {
    let events = tempfile::tempdir().unwrap();
    let table = table(events.path());
    let refused = |faults: Vec<Fault>, stream: &str, secret: &str| {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeMonitor::start(Duration::from_secs(3600));
        fake.inject(faults);
        let mut env = env(&fake, dir.path(), false);
        env.retain(|(k, _)| k != "AZURE_CLIENT_SECRET");
        env.push(("AZURE_CLIENT_SECRET".into(), secret.into()));
        let o = run(
            &fake,
            dir.path(),
            &table,
            &env,
            &["--monitor-stream", stream],
        );
        (dir, fake, o)
    };
    let error = |code: &str| format!(r#"{{"error":{{"code":"{code}","message":"refused"}}}}"#);

    // An unknown stream: the service's 404.
    let (dir, fake, o) = refused(vec![], "Custom-Unknown_CL", CLIENT_SECRET);
    assert_refused(&o, &fake, dir.path(), &["404", "NotFound"]);
    assert_eq!(fake.uploads().len(), 1, "nothing more is sent after a 404");

    // Data the service rejects: 400 with its code.
    let fault = Fault::Status(400, vec![], error("InvalidStreamData"));
    let (dir, fake, o) = refused(vec![fault], STREAM, CLIENT_SECRET);
    assert_refused(&o, &fake, dir.path(), &["400", "InvalidStreamData"]);

    // A token the service keeps refusing: refreshed once, then the run stops.
    let unauthorized = || Fault::Status(401, vec![], error("InvalidToken"));
    let (dir, fake, o) = refused(vec![unauthorized(), unauthorized()], STREAM, CLIENT_SECRET);
    assert_refused(&o, &fake, dir.path(), &["401", "InvalidToken"]);
    assert_eq!(fake.token_requests().len(), 2, "one refresh");

    // A wrong client secret: Entra ID's invalid_client, before any upload.
    let (dir, fake, o) = refused(vec![], STREAM, "not-the-secret-9Xy");
    assert_refused(&o, &fake, dir.path(), &["invalid_client"]);
    assert!(!o.stderr.contains("not-the-secret-9Xy"), "{}", o.stderr);
    assert!(fake.uploads().is_empty());
}

#[test]
fn a_one_megabyte_command_line_is_reported_and_cut_for_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let table = table(dir.path());
    // An attack whose command line is 1 MB (an encoded payload), replayed into the report
    // day on the tenant's hosts.
    let payload: String = "SQBFAFgAKABOAGUAdwAtAE8AYgBqAGUAYwB0ACé"
        .chars()
        .cycle()
        .take(1 << 20)
        .collect();
    let event = |second: u32| {
        serde_json::json!({
            "TimeGenerated": format!("2019-01-15T05:15:{second:02}.000000Z"),
            "Computer": "VICTIM1",
            "Account": "VICTIM1\\alice",
            "AccountType": "User",
            "NewProcessName": "C:\\Users\\Public\\stage2.exe",
            "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
            "CommandLine": format!("stage2.exe -enc {payload}{second}"),
            "attack": "long-command-line",
        })
        .to_string()
    };
    let attacks = dir.path().join("attack.jsonl");
    std::fs::write(&attacks, format!("{}\n{}\n", event(16), event(17))).unwrap();
    let kept = dir.path().join("with-attack");
    let out = procforest(
        &[
            "evaluate",
            "--table",
            &table,
            "--as-of",
            AS_OF,
            "--presets",
            "soc",
            "--inject",
            attacks.to_str().unwrap(),
            "--inject-keep",
            kept.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let fake = FakeMonitor::start(Duration::from_secs(3600));
    let env = env(&fake, dir.path(), false);
    let delta = dir.path().join("anomalies-delta");
    let o = run(
        &fake,
        dir.path(),
        kept.to_str().unwrap(),
        &env,
        &["--preset", "soc", "--output-delta", delta.to_str().unwrap()],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert_exactly_once(&fake, o.reported.len());
    // The attack is reported with its whole command lines in the JSON report...
    let attack = o
        .reported
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|r| r.to_string().contains("stage2.exe"))
        .expect("the long command line's group is reported");
    let reported_lines = attack.to_string();
    assert!(reported_lines.contains(&format!("{payload}16")));
    assert!(reported_lines.contains(&format!("{payload}17")));
    // ... and cut on a character boundary, with the marker, for the service.
    let record = fake
        .accepted()
        .into_iter()
        .find(|r| r["Process"].as_str().unwrap_or("").contains("stage2.exe"))
        .unwrap();
    let lines = record["CommandLines"].as_str().unwrap();
    assert!(lines.len() <= 64 * 1024, "{}", lines.len());
    assert!(lines.ends_with("…[cut]"));
    assert!(lines.starts_with("stage2.exe -enc SQBF"));
}

/// The production path: the Azure SDK's credentials (`azure_identity`) against an https
/// Entra ID stand-in whose certificate comes from a test authority (`SSL_CERT_FILE`), and
/// an https ingestion endpoint without `--monitor-allow-http`: workload identity, a
/// client secret, and a user-assigned managed identity (App Service's identity endpoint).
#[test]
fn the_azure_sdk_credentials_get_tokens_over_https() {
    let events = tempfile::tempdir().unwrap();
    let table = table(events.path());
    for kind in ["federated", "secret", "managed-identity"] {
        let dir = tempfile::tempdir().unwrap();
        let fake = FakeMonitor::start_https(Duration::from_secs(3600));
        let ca = dir.path().join("test-ca.pem");
        std::fs::write(&ca, fake.ca_pem().unwrap()).unwrap();
        // Entra ID's credentials as the other tests give them, with the https authority.
        let mut vars = match kind {
            "managed-identity" => vec![
                ("AZURE_CLIENT_ID".to_string(), CLIENT_ID.to_string()),
                (
                    "IDENTITY_ENDPOINT".into(),
                    format!("{}/msi/token", fake.url()),
                ),
                ("IDENTITY_HEADER".into(), IDENTITY_HEADER.into()),
            ],
            _ => env(&fake, dir.path(), kind == "federated"),
        };
        if kind == "secret" {
            // Without the test authority the certificate is refused: TLS is checked, the
            // SDK's retries end within the delivery's bound, and the error says why.
            let o = run(
                &fake,
                dir.path(),
                &table,
                &vars,
                &["--monitor-max-time", "3s"],
            );
            assert_eq!(o.code, Some(2), "{}", o.stderr);
            let last = o.stderr.lines().last().unwrap_or_default();
            assert!(last.contains("UnknownIssuer"), "{last}");
            assert!(fake.token_requests().is_empty() && fake.uploads().is_empty());
            std::fs::remove_file(dir.path().join("dead.jsonl")).unwrap();
        }
        vars.push(("SSL_CERT_FILE".into(), ca.display().to_string()));
        let o = run(&fake, dir.path(), &table, &vars, &[]);
        assert_eq!(o.code, Some(0), "{kind}: {}", o.stderr);
        assert!(!o.reported.is_empty());
        assert_exactly_once(&fake, o.reported.len());
        assert_eq!(fake.token_requests(), [kind], "{kind}: one token, reused");
        assert_no_secret(&o.stderr, &fake);
        assert!(!o.stderr.contains(IDENTITY_HEADER), "{kind}: {}", o.stderr);
    }
}
