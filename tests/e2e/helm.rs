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
