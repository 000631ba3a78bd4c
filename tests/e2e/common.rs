//! Shared steps: generating tables and comparing runs.

use std::{collections::BTreeMap, path::Path};

use arrow::{
    array::AsArray,
    datatypes::{Float64Type, Int64Type, TimestampMicrosecondType},
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use procforest_tests::procforest;

/// The as-of every test uses (generated tables end on this day).
pub const AS_OF: &str = "2026-11-27";

/// Generates a table at `out` (a path or an `az://` URL) ending on [`AS_OF`].
pub fn generate(
    out: &str,
    events: u64,
    days: u32,
    hosts: usize,
    seed: u64,
    env: &[(String, String)],
) {
    generate_with(out, events, days, hosts, seed, &[], env)
}

/// [`generate`] with more of the generator's flags.
pub fn generate_with(
    out: &str,
    events: u64,
    days: u32,
    hosts: usize,
    seed: u64,
    flags: &[&str],
    env: &[(String, String)],
) {
    let numbers = [
        events.to_string(),
        days.to_string(),
        hosts.to_string(),
        seed.to_string(),
    ];
    let mut args = vec![
        "generate",
        "--out",
        out,
        "--events",
        &numbers[0],
        "--days",
        &numbers[1],
        "--hosts",
        &numbers[2],
        "--seed",
        &numbers[3],
        "--end-date",
        AS_OF,
        "--attack-rate",
        "0.05",
    ];
    args.extend_from_slice(flags);
    let o = procforest(&args, env);
    assert!(
        o.status.success(),
        "generate: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A run's results: every scored group's (count, score bits), and the JSON lines.
#[derive(Debug, PartialEq)]
pub struct RunResult {
    /// Group key → (count, score bits).
    pub scores: BTreeMap<String, (i64, u64)>,
    /// The anomalies as JSON lines.
    pub anomalies: String,
}

/// Runs the driver with `extra` arguments and returns its results, asserting success.
pub fn run(
    table: &str,
    dir: &Path,
    name: &str,
    extra: &[&str],
    env: &[(String, String)],
) -> RunResult {
    let scores = dir.join(format!("{name}.parquet"));
    let json = dir.join(format!("{name}.jsonl"));
    let mut args = vec![
        "run",
        "--table",
        table,
        "--as-of",
        AS_OF,
        "--quiet",
        "--scores-out",
        scores.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = procforest(&args, env);
    assert!(
        o.status.success(),
        "procforest {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    RunResult {
        scores: read_scores(&scores),
        anomalies: std::fs::read_to_string(&json).unwrap(),
    }
}

/// Every row's (interval, score) in a `--scores-out` folder.
pub fn read_interval_scores(path: &Path) -> Vec<(i64, f64)> {
    let mut out = Vec::new();
    for (key, (_, bits)) in read_scores(path) {
        let interval = key.split('|').next().unwrap().parse().unwrap();
        out.push((interval, f64::from_bits(bits)));
    }
    out
}

/// Every row of a `--scores-out` folder: group key → (count, score bits).
pub fn read_scores(path: &Path) -> BTreeMap<String, (i64, u64)> {
    let mut files: Vec<_> = std::fs::read_dir(path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    assert!(
        path.join("_SUCCESS").is_file(),
        "{} is not committed",
        path.display()
    );
    let reader = files.into_iter().flat_map(|file| {
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
            .unwrap()
            .build()
            .unwrap()
    });
    let mut out = BTreeMap::new();
    for b in reader {
        let b = b.unwrap();
        let t = b
            .column_by_name("interval")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (c, a, at, p) = (s("Computer"), s("Account"), s("AccountType"), s("Process"));
        let count = b
            .column_by_name("count")
            .unwrap()
            .as_primitive::<Int64Type>();
        let score = b
            .column_by_name("score")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            let key = format!(
                "{}|{}|{}|{}|{}",
                t.value(i),
                c.value(i),
                a.value(i),
                at.value(i),
                p.value(i)
            );
            out.insert(key, (count.value(i), score.value(i).to_bits()));
        }
    }
    out
}
