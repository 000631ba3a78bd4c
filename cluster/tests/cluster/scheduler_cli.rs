//! `procforest-scheduler`: flags, environment variables and health endpoints.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn help_lists_ballista_flags_and_their_environment_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_procforest-scheduler"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("--bind-port"), "{help}");
    assert!(help.contains("PROCFOREST_SCHEDULER_BIND_PORT"), "{help}");
}

#[test]
fn serves_health_endpoints_and_reads_settings_from_the_environment() {
    // Started again on another port if the one chosen was taken meanwhile.
    // Below Linux's ephemeral range (outgoing connections never take them) and the ranges
    // the other tests use.
    let (mut child, port, health) = (0..5u32)
        .find_map(|attempt| {
            let port = 5_000 + ((std::process::id() + attempt * 997) % 5_000) as u16;
            TcpListener::bind(("127.0.0.1", port)).ok()?;
            let mut child = Command::new(env!("CARGO_BIN_EXE_procforest-scheduler"))
                .env("PROCFOREST_SCHEDULER_BIND_HOST", "127.0.0.1")
                .env("PROCFOREST_SCHEDULER_BIND_PORT", port.to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
                if let Some(health) = get(port, "/healthz") {
                    return Some((child, port, health));
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = child.kill();
            let _ = child.wait();
            None
        })
        .expect("the scheduler answered on the port from the environment");
    let ready = get(port, "/readyz");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    // Not ready without executors.
    assert!(ready.unwrap_or_default().starts_with("HTTP/1.1 503"));
}
