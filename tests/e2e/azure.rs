//! Tables in Azure Blob storage (Azurite on loopback), read by the executors through
//! `az://` URLs with credentials from the environment.

use std::time::{Duration, Instant};

use procforest_tests::{Azurite, Cluster, procforest};

use crate::common::{AS_OF, generate, run};

#[test]
fn executors_read_a_delta_table_from_azurite() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start(dir.path());
    azurite.create_container("events");
    let env = azurite.env();
    let remote = "az://events/securityevent";
    generate(remote, 60_000, 5, 20, 31, &env);
    let local = dir.path().join("local");
    generate(local.to_str().unwrap(), 60_000, 5, 20, 31, &[]);
    let expected = run(local.to_str().unwrap(), dir.path(), "local", &[], &[]);

    let cluster = Cluster::start(dir.path(), 2, &env);
    let url = cluster.url();
    let got = run(remote, dir.path(), "azure", &["--scheduler", &url], &env);
    assert!(
        got == expected,
        "the table read from Azurite gives other results"
    );

    // Scratch in Blob storage, as a cluster on AKS keeps it: the executors write the
    // summaries there, the driver reads them back, and the run removes its folder.
    azurite.create_container("scratch");
    let scratch = ["--scheduler", &url, "--scratch", "az://scratch/procforest"];
    let got = run(remote, dir.path(), "azure-scratch", &scratch, &env);
    assert!(got == expected, "a scratch in Azurite gives other results");
    let table_blobs = azurite.list_blobs("events");
    assert!(
        table_blobs.contains(&"securityevent/_delta_log/00000000000000000000.json".to_string()),
        "the listing sees blobs: {table_blobs:?}"
    );
    assert_eq!(
        azurite.list_blobs("scratch"),
        Vec::<String>::new(),
        "the run's scratch is removed"
    );
    // Every score as a Delta table in Blob storage: the executors' files, committed by
    // the driver with paths relative to the table.
    azurite.create_container("scores");
    let delta = ["--scheduler", &url, "--scores-format", "delta"];
    let o = procforest(
        &[
            &["run", "--table", remote, "--as-of", AS_OF, "--quiet"][..],
            &["--scores-out", "az://scores/every-score"],
            &delta,
        ]
        .concat(),
        &env,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let blobs = azurite.list_blobs("scores");
    let commit = azurite.get_blob("scores", "every-score/_delta_log/00000000000000000001.json");
    let added: Vec<String> = commit
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|a| a["add"]["path"].as_str().map(String::from))
        .collect();
    assert!(!added.is_empty(), "{commit}");
    for path in &added {
        assert!(path.starts_with("run-"), "{path}");
        let blob = format!("every-score/{path}");
        assert!(blobs.contains(&blob), "{blob} not in {blobs:?}");
    }

    // A scratch that cannot be written fails the run: the scratch above was used.
    let o = procforest(
        &[
            "run",
            "--table",
            remote,
            "--as-of",
            AS_OF,
            "--quiet",
            "--scheduler",
            &url,
            "--scratch",
            "az://no-such-container/procforest",
        ],
        &env,
    );
    assert!(
        !o.status.success(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_wrong_storage_credential_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let azurite = Azurite::start(dir.path());
    azurite.create_container("events");
    let mut env = azurite.env();
    generate("az://events/t", 2_000, 2, 3, 1, &env);
    env.push((
        "AZURE_STORAGE_ACCOUNT_NAME".into(),
        "devstoreaccount1".into(),
    ));
    env.push((
        "AZURE_STORAGE_ACCOUNT_KEY".into(),
        "d3JvbmcgYnV0IHdlbGwtZm9ybWVkIGJhc2U2NCBrZXkgZm9yIGEgdGVzdA==".into(),
    ));
    let started = Instant::now();
    let o = procforest(&["run", "--table", "az://events/t", "--as-of", AS_OF], &env);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("credential") || stderr.contains("403"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("d3JvbmcgYnV0"),
        "the key must not be printed: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

/// No credential in the environment: the store asks the managed identity endpoint, which on
/// a machine without an identity answers 400 "Identity not found" (a loopback stand-in
/// here). The run says so and what to set, exit 1, nothing written.
#[test]
fn abfss_without_credentials_says_what_to_set() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            use std::io::{Read, Write};
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let body = r#"{"error":"invalid_request","error_description":"Identity not found"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("anomalies.jsonl");
    let env = [(
        "AZURE_MSI_ENDPOINT".to_string(),
        format!("http://127.0.0.1:{port}/metadata/identity/oauth2/token"),
    )];
    let started = Instant::now();
    let mut command = std::process::Command::new(procforest_tests::binary("procforest"));
    command.args([
        "run",
        "--table",
        "abfss://events@tenantlogs.dfs.core.windows.net/securityevent",
        "--json",
        json.to_str().unwrap(),
    ]);
    for (name, _) in std::env::vars().filter(|(k, _)| k.starts_with("AZURE_")) {
        command.env_remove(name);
    }
    let o = command.envs(env).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    for named in [
        "abfss://events@tenantlogs.dfs.core.windows.net/securityevent",
        "no credential is set",
        "AZURE_STORAGE_ACCOUNT_KEY",
        "managed identity",
        "Identity not found",
    ] {
        assert!(stderr.contains(named), "{named}: {stderr}");
    }
    assert!(!json.exists());
    assert!(started.elapsed() < Duration::from_secs(60));
}
