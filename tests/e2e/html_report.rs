//! The HTML report in headless Chromium: the page loads offline with no console error,
//! its table holds the run's anomalies and sorts, its histogram counts every report group
//! beside the threshold, and its nights come from the anomalies table. The screenshot is
//! kept as a test artefact (`<target>/test-artefacts/html-report.png`).

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use procforest_tests::procforest;
use serde_json::Value;

use crate::common::generate;

#[test]
fn the_html_report_loads_in_chromium_and_shows_the_runs_anomalies() {
    let (chromium, playwright) = browser_tools();
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    generate(table.to_str().unwrap(), 60_000, 10, 20, 41, &[]);
    let anomalies_table = dir.path().join("anomalies");
    let night_before = run_into(&table, &anomalies_table, "2026-11-26", dir.path(), &[]);
    let page = dir.path().join("report.html");
    let tonight = run_into(
        &table,
        &anomalies_table,
        "2026-11-27",
        dir.path(),
        &["--preset", "soc", "--report-html", page.to_str().unwrap()],
    );

    let screenshot = artefacts().join("html-report.png");
    let seen = open_in_chromium(&chromium, &playwright, &page, &screenshot);
    assert_eq!(seen["errors"], Value::Array(vec![]), "console errors");
    assert_eq!(
        seen["requests"],
        Value::Array(vec![]),
        "the page fetched something"
    );

    // The table: the run's anomalies in report order, then sorted by the clicked headers.
    let expected: Vec<Vec<String>> = tonight.anomalies.iter().map(cells).collect();
    assert!(!expected.is_empty(), "the soc run flags some groups");
    let rows = table_rows(&seen["rows"]);
    assert_eq!(rows, expected);
    let mut by_score = expected.clone();
    by_score.sort_by(|a, b| score(b).total_cmp(&score(a)));
    assert_eq!(table_rows(&seen["byScoreDescending"]), by_score);
    let computers: Vec<String> = table_rows(&seen["byComputer"])
        .into_iter()
        .map(|r| r[1].clone())
        .collect();
    assert!(
        computers
            .windows(2)
            .all(|w| w[0].to_lowercase() <= w[1].to_lowercase())
    );
    assert_eq!(seen["linesShown"], true, "command lines expand");

    // The histogram: every report group, the model's threshold.
    assert_eq!(seen["histogramShown"], true);
    let drawn: u64 = seen["histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(drawn, tonight.manifest["report_groups"].as_u64().unwrap());
    assert_eq!(seen["threshold"], tonight.manifest["model"]["offset"]);

    // The nights: the two runs' anomalies on their nights, nothing on the 28 before.
    let nights = seen["nights"].as_array().unwrap();
    assert_eq!(nights.len(), 30);
    let count = |night: &str| {
        nights
            .iter()
            .find(|n| n[0] == night)
            .map(|n| n[1].as_u64().unwrap())
    };
    assert_eq!(count("2026-11-27"), Some(tonight.anomalies.len() as u64));
    assert_eq!(
        count("2026-11-26"),
        Some(night_before.anomalies.len() as u64)
    );
    assert_eq!(count("2026-10-29"), Some(0));
    let size = std::fs::metadata(&screenshot).unwrap().len();
    assert!(size > 20_000, "screenshot of {size} bytes");
    eprintln!("screenshot: {}", screenshot.display());
}

#[test]
fn the_score_histogram_counts_every_report_group_by_its_score() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("events");
    generate(table.to_str().unwrap(), 40_000, 6, 12, 43, &[]);
    let page = dir.path().join("report.html");
    let scores = dir.path().join("scores");
    let args = [
        "--report-html",
        page.to_str().unwrap(),
        "--scores-out",
        scores.to_str().unwrap(),
    ];
    let ran = run_into(
        &table,
        &dir.path().join("a"),
        "2026-11-27",
        dir.path(),
        &args,
    );
    // The reference: every score the executors wrote, binned here.
    let report_day = chrono_free_micros(2026, 11, 27);
    let mut expected = std::collections::BTreeMap::<i64, u64>::new();
    for (interval, score) in crate::common::read_interval_scores(&scores) {
        if interval >= report_day {
            *expected.entry((score / 0.01).floor() as i64).or_default() += 1;
        }
    }
    let drawn: std::collections::BTreeMap<i64, u64> = ran.manifest["score_histogram"]["bins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let from = b["from"].as_f64().unwrap();
            ((from / 0.01).round() as i64, b["groups"].as_u64().unwrap())
        })
        .collect();
    assert!(expected.len() > 3, "{expected:?}");
    assert_eq!(drawn, expected);
    // Without a page, nothing is counted.
    let plain = run_into(&table, &dir.path().join("c"), "2026-11-27", dir.path(), &[]);
    assert!(plain.manifest.get("score_histogram").is_none());
}

/// Microseconds since the epoch of a UTC midnight.
fn chrono_free_micros(year: i64, month: i64, day: i64) -> i64 {
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000_000
}

/// What a run wrote: its anomalies (JSON lines) and manifest.
struct Ran {
    anomalies: Vec<Value>,
    manifest: Value,
}

fn run_into(table: &Path, anomalies: &Path, as_of: &str, dir: &Path, extra: &[&str]) -> Ran {
    let name = format!("{as_of}-{}", extra.len());
    let json = dir.join(format!("{name}.jsonl"));
    let manifest = dir.join(format!("{name}.manifest.json"));
    let mut args = vec![
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        as_of,
        "--output-delta",
        anomalies.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let o = procforest(&args, &[]);
    assert!(
        o.status.success(),
        "run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    Ran {
        anomalies: std::fs::read_to_string(&json)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        manifest: serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap(),
    }
}

/// An anomaly's first seven cells as the page's `data-v` holds them.
fn cells(anomaly: &Value) -> Vec<String> {
    let text = |k: &str| anomaly[k].as_str().unwrap_or("(null)").to_string();
    vec![
        text("interval"),
        text("computer"),
        text("account"),
        text("account_type"),
        text("process"),
        anomaly["count"].to_string(),
        anomaly["score"].to_string(),
    ]
}

fn score(cells: &[String]) -> f64 {
    cells[6].parse().unwrap()
}

fn table_rows(rows: &Value) -> Vec<Vec<String>> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

fn open_in_chromium(chromium: &Path, playwright: &Path, page: &Path, shot: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/html_report.cjs");
    let o = Command::new("node")
        .arg(script)
        .args([playwright, chromium, page, shot])
        .output()
        .expect("running node (Node.js is on the machine: .ci/run uses its npm)");
    assert!(
        o.status.success(),
        "Chromium: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

/// Chromium (`CHROMIUM`, or Debian's) and playwright-core (`PLAYWRIGHT_CORE`, or the npm
/// cache `.ci/run` fills); a missing one fails with the command that installs it.
fn browser_tools() -> (PathBuf, PathBuf) {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.is_file(),
        "Chromium is missing at {}: install it with `apt-get install chromium` (as .ci/run does) \
         or set CHROMIUM",
        chromium.display()
    );
    let playwright = std::env::var_os("PLAYWRIGHT_CORE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/procforest/npm/node_modules/playwright-core")
        });
    assert!(
        playwright.join("package.json").is_file(),
        "playwright-core is missing at {}: install it with `npm install --prefix \
         ~/.cache/procforest/npm playwright-core@1` (as .ci/run does) or set PLAYWRIGHT_CORE",
        playwright.display()
    );
    (chromium, playwright)
}

/// `<target>/test-artefacts`, beside the test binary's `debug` folder.
fn artefacts() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let dir = target.join("test-artefacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
