//! `procforest-executor`: flags, Kubernetes defaults, and a bounded wait for the scheduler.

use std::{
    net::TcpListener,
    process::Command,
    time::{Duration, Instant},
};

#[test]
fn help_shows_kubernetes_defaults_and_environment_variables() {
    let out = Command::new(env!("CARGO_BIN_EXE_procforest-executor"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(help.contains("PROCFOREST_EXECUTOR_WORK_DIR"), "{help}");
    assert!(
        help.contains("[default: 300]"),
        "job data clean-up is on: {help}"
    );
    assert!(
        help.contains("[default: 120]"),
        "a scheduler connect timeout: {help}"
    );
}

#[test]
fn an_absent_scheduler_is_a_clear_error_within_the_timeout() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let work = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_procforest-executor"))
        .args([
            "--scheduler-host",
            "127.0.0.1",
            "--scheduler-port",
            &port.to_string(),
            "--scheduler-connect-timeout-seconds",
            "2",
            "--bind-host",
            "127.0.0.1",
            "--bind-port",
            "0",
            "--bind-grpc-port",
            "0",
            "--bind-health-port",
            "0",
            "--work-dir",
            work.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(text.to_lowercase().contains("scheduler"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}
