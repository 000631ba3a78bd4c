//! The generator and the bundled real sample.

use std::collections::HashMap;

use arrow::{
    array::{Array, AsArray},
    datatypes::{Date32Type, Int64Type, TimestampMicrosecondType},
};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

use crate::support::{bin_output, data_files, generate, read_parquet, read_table_events, scratch};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

#[test]
fn the_generator_is_deterministic_per_seed() {
    let dir = scratch();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let sa = generate(&a, 20_000, 3, 12, 7, 0.1);
    let sb = generate(&b, 20_000, 3, 12, 7, 0.1);
    generate(&c, 20_000, 3, 12, 8, 0.1);
    assert_eq!(sa, sb);
    let (ea, eb, ec) = (
        read_table_events(&a),
        read_table_events(&b),
        read_table_events(&c),
    );
    assert_eq!(ea.len(), 20_000);
    assert!(ea == eb, "same seed, same events in the same order");
    assert!(ea != ec, "another seed, other events");
    let la = read_parquet(&a.join("_procforest/labels.parquet"));
    let lb = read_parquet(&b.join("_procforest/labels.parquet"));
    assert_eq!(la, lb);
}

#[test]
fn the_table_opens_with_deltalake_and_plain_parquet_with_partitions_and_statistics() {
    let dir = scratch();
    let table = dir.path().join("t");
    generate(&table, 30_000, 4, 10, 1, 0.05);
    runtime().block_on(async {
        let url = url::Url::from_directory_path(&table).unwrap();
        let t = deltalake::open_table(url).await.unwrap();
        let state = t.snapshot().unwrap();
        assert_eq!(
            state.metadata().partition_columns(),
            &["EventDate".to_string()]
        );
        let actions = state.add_actions_table(true).unwrap();
        assert_eq!(actions.num_rows(), 4, "one file per day");
        let dates = actions
            .column_by_name("partition.EventDate")
            .unwrap()
            .as_primitive::<Date32Type>();
        let min = actions
            .column_by_name("min.TimeGenerated")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let max = actions
            .column_by_name("max.TimeGenerated")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        let rows = actions
            .column_by_name("num_records")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(rows.values().iter().sum::<i64>(), 30_000);
        for i in 0..4 {
            let day_start = dates.value(i) as i64 * 86_400_000_000;
            assert!(
                min.is_valid(i) && max.is_valid(i),
                "statistics cover TimeGenerated"
            );
            assert!(min.value(i) >= day_start && max.value(i) < day_start + 86_400_000_000);
        }

        // A plain Parquet read of the data files sees every event, in time order per file.
        let ctx = SessionContext::new();
        let data = table.to_str().unwrap().to_string() + "/";
        ctx.register_parquet(
            "events",
            &data,
            ParquetReadOptions::default().table_partition_cols(vec![(
                "EventDate".into(),
                arrow::datatypes::DataType::Date32,
            )]),
        )
        .await
        .unwrap();
        let counts = ctx
            .sql("SELECT count(*) AS n, count(DISTINCT \"EventDate\") AS d FROM events")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        assert_eq!(
            counts[0].column(0).as_primitive::<Int64Type>().value(0),
            30_000
        );
        assert_eq!(counts[0].column(1).as_primitive::<Int64Type>().value(0), 4);
    });
    for file in data_files(&table) {
        let mut last = i64::MIN;
        for b in read_parquet(&file) {
            let t = b
                .column_by_name("TimeGenerated")
                .unwrap()
                .as_primitive::<TimestampMicrosecondType>();
            for v in t.values().iter() {
                assert!(*v >= last, "{} is sorted by TimeGenerated", file.display());
                last = *v;
            }
        }
    }
}

/// Like a table written daily by Spark, a generated table has a checkpoint every ten
/// commits, and its snapshot read through one keeps every file and its statistics.
#[test]
fn the_log_has_checkpoints_that_keep_files_and_statistics() {
    let dir = scratch();
    let table = dir.path().join("t");
    let summary = generate(&table, 24_000, 12, 10, 1, 0.0);
    assert_eq!(summary["version"], 12);
    let log = table.join("_delta_log");
    assert!(
        log.join("00000000000000000009.checkpoint.parquet")
            .is_file()
    );
    assert!(log.join("_last_checkpoint").is_file());
    runtime().block_on(async {
        let url = url::Url::from_directory_path(&table).unwrap();
        let state = deltalake::open_table(url)
            .await
            .unwrap()
            .snapshot()
            .unwrap()
            .clone();
        let actions = state.add_actions_table(true).unwrap();
        assert_eq!(actions.num_rows(), 12, "one file per day");
        let rows = actions
            .column_by_name("num_records")
            .unwrap()
            .as_primitive::<Int64Type>();
        assert_eq!(rows.values().iter().sum::<i64>(), 24_000);
        for stat in ["min.TimeGenerated", "max.TimeGenerated"] {
            let column = actions.column_by_name(stat).unwrap();
            assert_eq!(column.null_count(), 0, "{stat} of every file");
        }
    });
}

#[test]
fn labels_match_the_injected_groups() {
    let dir = scratch();
    let table = dir.path().join("t");
    let summary = generate(&table, 40_000, 7, 30, 3, 0.2);
    let attack_events = summary["attack_events"].as_u64().unwrap();
    assert!(attack_events > 0);
    let labels = read_parquet(&table.join("_procforest/labels.parquet"));
    let mut labelled: HashMap<(i32, String, String, String, String), i64> = HashMap::new();
    for b in &labels {
        let day = b
            .column_by_name("day")
            .unwrap()
            .as_primitive::<Date32Type>();
        let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
        let (c, a, at, p) = (s("Computer"), s("Account"), s("AccountType"), s("Process"));
        let n = b
            .column_by_name("attack_events")
            .unwrap()
            .as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            labelled.insert(
                (
                    day.value(i),
                    c.value(i).into(),
                    a.value(i).into(),
                    at.value(i).into(),
                    p.value(i).into(),
                ),
                n.value(i),
            );
        }
    }
    assert_eq!(labelled.values().sum::<i64>() as u64, attack_events);
    assert_eq!(
        labelled.len() as u64,
        summary["labelled_groups"].as_u64().unwrap()
    );
    let mut groups: HashMap<(i32, String, String, String, String), i64> = HashMap::new();
    let signatures = [
        "-urlcache",
        " -enc ",
        "PSEXESVC",
        "ntdsutil",
        "vssadmin",
        "rundll32.exe C:\\Users",
    ];
    for e in read_table_events(&table) {
        let key = (
            e.time_us.div_euclid(86_400_000_000) as i32,
            e.computer.clone(),
            e.account.clone(),
            e.account_type.clone(),
            e.process.clone(),
        );
        if signatures.iter().any(|s| e.command_line.contains(s)) {
            assert!(labelled.contains_key(&key), "unlabelled attack event {e:?}");
        }
        *groups.entry(key).or_default() += 1;
    }
    for (key, n) in &labelled {
        let total = groups.get(key).copied().unwrap_or(0);
        assert!(
            total >= *n,
            "{key:?}: {n} injected events but {total} in the table"
        );
    }
}

#[test]
fn generated_activity_is_realistic() {
    let dir = scratch();
    let table = dir.path().join("t");
    generate(&table, 100_000, 7, 12, 5, 0.0);
    let events = read_table_events(&table);
    let mut per_host_day: HashMap<(String, i64), usize> = HashMap::new();
    let mut per_process: HashMap<&str, usize> = HashMap::new();
    let mut types: HashMap<&str, usize> = HashMap::new();
    for e in &events {
        *per_host_day
            .entry((e.computer.clone(), e.time_us / 86_400_000_000))
            .or_default() += 1;
        *per_process.entry(&e.process).or_default() += 1;
        *types.entry(&e.account_type).or_default() += 1;
    }
    let hosts: std::collections::HashSet<_> = per_host_day.keys().map(|k| k.0.clone()).collect();
    assert_eq!(hosts.len(), 12);
    assert!(
        hosts.iter().any(|h| h.starts_with("dc")) && hosts.iter().any(|h| h.starts_with("srv"))
    );
    let mean = events.len() / per_host_day.len();
    assert!(mean > 1000, "thousands of events per host per day ({mean})");
    assert!(types["Machine"] > 0 && types["User"] > 0);
    assert!(
        events
            .iter()
            .any(|e| e.account.starts_with("CONTOSO\\svc_"))
    );
    assert!(
        events
            .iter()
            .any(|e| e.account == "NT AUTHORITY\\LOCAL SERVICE")
    );
    // Zipf-like popularity: a few processes dominate, a long tail is rare.
    let mut counts: Vec<usize> = per_process.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    assert!(counts[0] > 10 * counts[counts.len() / 2], "{counts:?}");
    assert!(counts.len() > 40);
    // Per-instance variation in command lines.
    let distinct: std::collections::HashSet<_> = events.iter().map(|e| &e.command_line).collect();
    assert!(distinct.len() > events.len() / 10);
}

#[test]
fn bad_generator_settings_are_refused() {
    let dir = scratch();
    let t = dir.path().join("t");
    let out = bin_output(&[
        "generate",
        "--out",
        t.to_str().unwrap(),
        "--attack-rate",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("attack rate"));
    generate(&t, 100, 1, 1, 1, 0.0);
    let out = bin_output(&["generate", "--out", t.to_str().unwrap(), "--events", "100"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
}

#[test]
fn the_bundled_real_sample_has_the_expected_events() {
    let sample = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../examples/sample-4688");
    let events = read_table_events(&sample);
    assert_eq!(events.len(), 1936);
    let msticpy = events
        .iter()
        .filter(|e| e.computer == "MSTICAlertsWin1")
        .count();
    assert_eq!(msticpy, 363, "msticpy processes_on_host.csv");
    assert_eq!(events.len() - msticpy, 1573, "OTRF derived events");
    let admin = events
        .iter()
        .filter(|e| e.account == "MSTICAlertsWin1\\MSTICAdmin")
        .count();
    assert_eq!(admin, 160);
    let labels = read_parquet(&sample.join("_procforest/labels.parquet"));
    assert!(labels.iter().map(|b| b.num_rows()).sum::<usize>() > 47);
    // The committed table is what the import command writes, when the sources are here.
    let shared = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("../../shared/data/events");
    if shared.is_dir() {
        let dir = scratch();
        let again = dir.path().join("sample");
        let out = bin_output(&[
            "import-sample",
            "--events-dir",
            shared.to_str().unwrap(),
            "--out",
            again.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(read_table_events(&again) == events);
    }
}
