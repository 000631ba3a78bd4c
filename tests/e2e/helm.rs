//! The Helm chart, rendered and validated offline (see `helm/tests/test_chart.py`).

#[test]
fn the_chart_renders_lints_validates_and_keeps_its_invariants() {
    let script = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../helm/tests/test_chart.py");
    let python = procforest_tests::python(&["helm_python", "yaml", "kubernetes_validate"]);
    let out = std::process::Command::new(python)
        .arg(&script)
        .output()
        .expect("running the chart tests");
    assert!(
        out.status.success(),
        "chart tests failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The chart and the binaries agree: for each values file, the rendered scheduler,
/// executor and driver containers start as local processes with exactly their rendered
/// command, args and environment, their probes answer on the rendered ports and paths, and
/// the driver completes a run against them (issue 27).
///
/// What a cluster would provide is stood in for, and nothing else changes: the pods'
/// addresses (`0.0.0.0`, `$(POD_IP)`) and the chart's Service names are loopback; volume
/// mounts are temporary folders; storage is Azurite — the local values name it
/// (`http://azurite:10000`), and for the AKS values, whose workload identity the AKS
/// webhook would inject, the storage account is an Azurite account of the same name.
#[test]
fn the_rendered_containers_run_as_local_processes() {
    for values in ["values-local.yaml", "values-aks.yaml"] {
        chart_as_processes(values);
    }
}

fn chart_as_processes(values: &str) {
    use procforest_tests::{Azurite, Process, binary, http_get};
    use serde_json::Value;
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let rendered = rendered_containers(values);
    let containers = rendered["containers"].as_array().unwrap();
    let container = |suffix: &str| {
        containers
            .iter()
            .find(|c| c["name"].as_str().unwrap().ends_with(suffix))
            .unwrap_or_else(|| panic!("{values}: no *{suffix} container"))
    };
    let (scheduler, executor, driver) = (
        container("-scheduler"),
        container("-executor"),
        container("-driver"),
    );
    for c in [scheduler, executor] {
        for port in c["ports"].as_object().unwrap().values() {
            let port = port.as_u64().unwrap() as u16;
            assert!(
                std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
                "{values}: port {port} of {} is taken on this machine",
                c["name"]
            );
        }
    }
    let azurite = Azurite::start_with_accounts(dir.path(), &["contosologs"]);
    let storage = azurite.env();
    let azurite_url = &storage[1].1;
    // Loopback for the cluster's names; longest first (one name prefixes another).
    let mut names: Vec<String> = rendered["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    let local = |text: &str, mounts: &[(String, std::path::PathBuf)]| -> String {
        let mut text = text
            .replace("0.0.0.0", "127.0.0.1")
            .replace("http://azurite:10000", azurite_url);
        for name in &names {
            text = text.replace(name.as_str(), "127.0.0.1");
        }
        for (mount, folder) in mounts {
            let folder = folder.display().to_string();
            if text == *mount || text.starts_with(&format!("{mount}/")) {
                text = text.replacen(mount.as_str(), &folder, 1);
            } else if let Some((flag, path)) = text.split_once('=')
                && (path == mount || path.starts_with(&format!("{mount}/")))
            {
                text = format!("{flag}={}", path.replacen(mount.as_str(), &folder, 1));
            }
        }
        text
    };
    let start = |c: &Value, extra_env: &[(String, String)]| -> (Process, std::path::PathBuf) {
        let name = c["name"].as_str().unwrap();
        let root = dir.path().join(name);
        let mounts: Vec<(String, std::path::PathBuf)> = c["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let mount = m.as_str().unwrap().to_string();
                let folder = root.join(mount.trim_start_matches('/'));
                std::fs::create_dir_all(&folder).unwrap();
                (mount, folder)
            })
            .collect();
        let mut env: Vec<(String, String)> = c["env"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                let v = v.as_str().unwrap();
                let v = match v {
                    "fieldRef:status.podIP" => "127.0.0.1".to_string(),
                    other => local(other, &mounts),
                };
                (k.clone(), v)
            })
            .collect();
        env.extend_from_slice(extra_env);
        // Kubernetes expands $(VAR) in args from the container's environment.
        let args: Vec<String> = c["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                let mut a = a.as_str().unwrap().to_string();
                for (k, v) in &env {
                    a = a.replace(&format!("$({k})"), v);
                }
                local(&a, &mounts)
            })
            .collect();
        let command = c["command"].as_array().unwrap();
        assert_eq!(command.len(), 1, "{name}: {command:?}");
        let program = binary(command[0].as_str().unwrap());
        let log = dir.path().join(format!("{name}.log"));
        let folder = mounts.first().map(|(_, f)| f.clone()).unwrap_or_default();
        (Process::start(&program, &args, &env, log), folder)
    };
    let answers = |probe: &Value, status: u16| {
        let port = probe["port"].as_u64().unwrap() as u16;
        matches!(http_get(port, probe["path"].as_str().unwrap()), Ok((s, _)) if s == status)
    };
    let wait_for = |what: &str, process: &Process, ok: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok() {
            assert!(
                Instant::now() < deadline,
                "{values}: {what}: {}",
                process.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // Storage: the containers the driver's locations name, and a table of today's events.
    let driver_env = driver["env"].as_object().unwrap();
    let location = |key: &str| driver_env.get(key).and_then(Value::as_str);
    let mut made = std::collections::HashSet::new();
    for key in [
        "PROCFOREST_TABLE",
        "PROCFOREST_SCRATCH",
        "PROCFOREST_OUTPUT_DELTA",
        "PROCFOREST_SUMMARIES",
    ] {
        if let Some((account, container, _)) = location(key).and_then(blob_location)
            && made.insert((account.clone(), container.clone()))
        {
            azurite.create_container_in(&account, &container);
        }
    }
    let table = location("PROCFOREST_TABLE").unwrap();
    let today = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .unwrap();
    let today = String::from_utf8(today.stdout).unwrap();
    let generated = procforest_tests::procforest(
        &[
            "generate",
            "--out",
            table,
            "--events",
            "20000",
            "--days",
            "5",
            "--hosts",
            "8",
            "--seed",
            "3",
            "--end-date",
            today.trim(),
        ],
        &storage,
    );
    assert!(
        generated.status.success(),
        "{values}: {}",
        String::from_utf8_lossy(&generated.stderr)
    );
    // The AKS values' workload identity is injected by AKS; here, Azurite's key.
    let injected: Vec<(String, String)> = match values {
        "values-aks.yaml" => storage.clone(),
        _ => Vec::new(),
    };

    let (scheduler_process, _) = start(scheduler, &injected);
    wait_for(
        "the scheduler's liveness probe",
        &scheduler_process,
        &|| answers(&scheduler["liveness"], 200),
    );
    assert!(
        answers(&scheduler["readiness"], 503),
        "{values}: the scheduler is not ready without executors"
    );
    let (executor_process, _) = start(executor, &injected);
    wait_for("the executor's readiness probe", &executor_process, &|| {
        answers(&executor["readiness"], 200)
    });
    assert!(answers(&executor["liveness"], 200));
    wait_for(
        "the scheduler's readiness probe",
        &scheduler_process,
        &|| answers(&scheduler["readiness"], 200),
    );

    let (mut driver_process, driver_tmp) = start(driver, &injected);
    let deadline = Instant::now() + Duration::from_secs(300);
    while driver_process.running() {
        assert!(
            Instant::now() < deadline,
            "{values}: the driver did not finish"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = driver_process.log_text();
    let manifest = std::fs::read_to_string(driver_tmp.join("manifest.json")).unwrap_or_else(|e| {
        let executor_log = executor_process.log_text();
        panic!("{values}: no manifest ({e}): {log}\nexecutor:\n{executor_log}")
    });
    let manifest: Value = serde_json::from_str(&manifest).unwrap();
    assert!(
        manifest["report_groups"].as_u64().unwrap() > 0,
        "{values}: {manifest}"
    );
    assert_eq!(manifest["table"].as_str(), Some(table), "{values}");
    // The driver's liveness probe, as rendered, against its heartbeat.
    let probe: Vec<String> = driver["liveness"]["exec"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            a.as_str()
                .unwrap()
                .replace("/tmp", &driver_tmp.display().to_string())
        })
        .collect();
    let probed = std::process::Command::new(binary(&probe[0]))
        .args(&probe[1..])
        .output()
        .unwrap();
    assert!(probed.status.success(), "{values}: {probed:?}");
    // The AKS values write the anomalies and the summaries tables.
    for key in ["PROCFOREST_OUTPUT_DELTA", "PROCFOREST_SUMMARIES"] {
        if let Some((account, container, path)) = location(key).and_then(blob_location) {
            let blobs = azurite.list_blobs_in(&account, &container);
            let first_commit = format!("{path}/_delta_log/00000000000000000000.json");
            assert!(blobs.contains(&first_commit), "{values}: {key}: {blobs:?}");
        }
    }
}

/// The account, container and path of an `az://container/path` (Azurite's own account) or
/// `abfss://container@account.dfs.core.windows.net/path` URL.
fn blob_location(url: &str) -> Option<(String, String, String)> {
    if let Some(rest) = url.strip_prefix("az://") {
        let (container, path) = rest.split_once('/')?;
        return Some((
            procforest_tests::AZURITE_ACCOUNT.to_string(),
            container.to_string(),
            path.to_string(),
        ));
    }
    let rest = url.strip_prefix("abfss://")?;
    let (container, rest) = rest.split_once('@')?;
    let (host, path) = rest.split_once('/')?;
    let account = host.split('.').next()?;
    Some((account.to_string(), container.to_string(), path.to_string()))
}

/// `helm/tests/containers.py`'s account of what a values file starts.
fn rendered_containers(values: &str) -> serde_json::Value {
    let script =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../helm/tests/containers.py");
    let python = procforest_tests::python(&["helm_python", "yaml"]);
    let out = std::process::Command::new(python)
        .arg(&script)
        .arg(values)
        .output()
        .expect("rendering the chart");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
