//! `--summaries`: a run that reads the unchanged intervals' summaries from the table an
//! earlier run wrote gives exactly a full run's anomalies and model, after a new day, late
//! events for an old day, a compaction, a deleted day and a changed interval.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

use deltalake::{
    DeltaTableBuilder,
    datafusion::prelude::{SessionContext, ident, lit},
    protocol::SaveMode,
};

use crate::{
    run::{AS_OF, run_ok},
    support::{generate, generate_with, runtime, scratch},
};

/// A run's anomalies (JSON lines without the run id) and its manifest.
struct Outcome {
    anomalies: Vec<serde_json::Value>,
    manifest: serde_json::Value,
}

/// A fresh folder with a generated table of `events` over `days` (12 hosts; the
/// generator's `flags` beside), and the path of its summaries table.
fn tenant(events: u64, days: u32, seed: u64, flags: &[&str]) -> (TempDir, PathBuf, PathBuf) {
    let dir = scratch();
    let (table, store) = (dir.path().join("events"), dir.path().join("summaries"));
    generate_with(&table, events, days, 12, seed, 0.02, flags);
    (dir, table, store)
}

/// Runs `procforest run` on `table` as of `as_of`, with `extra` flags.
fn run(dir: &Path, table: &Path, as_of: &str, extra: &[&str]) -> Outcome {
    let json = dir.join("anomalies.json");
    let manifest = dir.join("manifest.json");
    let mut args = vec![
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        as_of,
        "--train-days",
        "6",
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    args.extend(extra);
    run_ok(&args);
    let anomalies = std::fs::read_to_string(&json)
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("run_id");
            v
        })
        .collect();
    let manifest = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    Outcome {
        anomalies,
        manifest,
    }
}

/// Checks that a run with the summaries table at `store` gives a full run's anomalies and
/// model; returns what it did with the table.
fn same_as_full(
    dir: &Path,
    table: &Path,
    store: &Path,
    as_of: &str,
    extra: &[&str],
) -> serde_json::Value {
    let full = run(dir, table, as_of, extra);
    let mut with_store = extra.to_vec();
    with_store.extend(["--summaries", store.to_str().unwrap()]);
    let kept = run(dir, table, as_of, &with_store);
    assert!(!full.anomalies.is_empty());
    assert_eq!(kept.anomalies, full.anomalies, "anomalies");
    assert_eq!(
        kept.manifest["model"]["hash"],
        full.manifest["model"]["hash"]
    );
    assert_eq!(kept.manifest["groups"], full.manifest["groups"]);
    assert_eq!(kept.manifest["events"], full.manifest["events"]);
    assert!(full.manifest["summaries_table"].is_null());
    kept.manifest["summaries_table"].clone()
}

/// `(read, counted, dropped, rebuilt)` intervals of a run's summaries table record.
fn intervals(record: &serde_json::Value) -> (u64, u64, u64, bool) {
    (
        record["intervals_read"].as_u64().unwrap(),
        record["intervals_counted"].as_u64().unwrap(),
        record["intervals_dropped"].as_u64().unwrap(),
        record["rebuilt"].as_bool().unwrap(),
    )
}

/// The Delta table at `path`, opened.
async fn open(path: &Path) -> deltalake::DeltaTable {
    let url = deltalake::ensure_table_uri(path.to_str().unwrap()).unwrap();
    DeltaTableBuilder::from_url(url)
        .unwrap()
        .load()
        .await
        .unwrap()
}

/// The rows of the table at `path` on `date` (its `EventDate` partition), as `select`
/// shapes them.
async fn rows_of_day(
    path: &Path,
    date: &str,
    select: &str,
    limit: usize,
) -> Vec<deltalake::arrow::record_batch::RecordBatch> {
    let table = open(path).await;
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state()).unwrap();
    ctx.register_table("events", table.table_provider().await.unwrap())
        .unwrap();
    ctx.sql(&format!(
        "SELECT {select} FROM events WHERE \"EventDate\" = DATE '{date}' LIMIT {limit}"
    ))
    .await
    .unwrap()
    .collect()
    .await
    .unwrap()
}

#[test]
fn a_nightly_run_reads_the_history_and_gives_a_full_runs_anomalies() {
    let (dir, table, store) = tenant(40_000, 10, 5, &[]);

    // The night before: the table is new to the store, every interval counted.
    let first = same_as_full(dir.path(), &table, &store, "2026-11-26", &[]);
    assert_eq!(intervals(&first), (0, 6, 0, true));
    // Tonight: one day left the window, one came in (the report), five are read.
    let tonight = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert_eq!(intervals(&tonight), (5, 1, 1, false));
    // A re-run reads the same five and counts the report again.
    let again = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert_eq!(intervals(&again), (5, 1, 0, false));
    // The soc preset reads the same counts, and computes every interval's command-line
    // rows the first time, then only the report's.
    let soc = ["--preset", "soc", "--contamination", "0.05"];
    let first_soc = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(intervals(&first_soc), (5, 1, 0, false));
    assert_eq!(line_intervals(&first_soc), (0, 6));
    let soc_again = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(line_intervals(&soc_again), (5, 1));
    // The evidence of the report's and the sample's groups alone (what these runs
    // compute) is that of every group (what a run writing every score computes).
    let scores = dir.path().join("scores");
    let mut every_group = soc.to_vec();
    every_group.extend(["--scores-out", scores.to_str().unwrap()]);
    let every_group = run(dir.path(), &table, AS_OF, &every_group);
    assert_eq!(
        every_group.anomalies,
        run(dir.path(), &table, AS_OF, &soc).anomalies
    );
    // A notebook run leaves the command-line rows to the next soc run.
    let notebook = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert!(notebook["line_intervals_read"].is_null());
    let soc_after = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(line_intervals(&soc_after), (5, 1));
}

/// `(read, computed)` intervals of command-line rows of a run's summaries table record.
fn line_intervals(record: &serde_json::Value) -> (u64, u64) {
    (
        record["line_intervals_read"].as_u64().unwrap(),
        record["line_intervals_computed"].as_u64().unwrap(),
    )
}

#[test]
fn late_events_a_compaction_and_a_deleted_day_are_counted_again() {
    let (dir, table, store) = tenant(40_000, 10, 7, &[]);
    same_as_full(dir.path(), &table, &store, AS_OF, &[]);

    let rt = runtime();
    // Late events for an old day: some of its events again, from a host not seen before.
    rt.block_on(async {
        let late = rows_of_day(
            &table,
            "2026-11-24",
            "* REPLACE ('late-host' AS \"Computer\")",
            40,
        )
        .await;
        open(&table)
            .await
            .write(late)
            .with_save_mode(SaveMode::Append)
            .await
            .unwrap();
    });
    let late = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert_eq!(intervals(&late), (4, 2, 0, false));
    let soc = ["--preset", "soc", "--contamination", "0.05"];
    let late_soc = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(line_intervals(&late_soc), (0, 6));

    // A compaction: a day's rows rewritten into a new file.
    rt.block_on(async {
        let day = rows_of_day(&table, "2026-11-23", "*", 1 << 40).await;
        open(&table)
            .await
            .write(day)
            .with_save_mode(SaveMode::Overwrite)
            .with_replace_where(
                ident("EventDate").eq(lit(deltalake::datafusion::scalar::ScalarValue::Date32(
                    Some(
                        (chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap()
                            - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
                        .num_days() as i32,
                    ),
                ))),
            )
            .await
            .unwrap();
    });
    let compacted = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert_eq!(intervals(&compacted), (4, 2, 0, false));

    // A deleted day: its rows leave the store.
    rt.block_on(async {
        open(&table)
            .await
            .delete()
            .with_predicate("\"EventDate\" = '2026-11-25'")
            .await
            .unwrap();
    });
    let deleted = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(intervals(&deleted), (4, 1, 1, false));
    // The compacted day's command-line rows were computed by no run since (the
    // notebook run after the compaction counted only its summary rows again).
    assert_eq!(line_intervals(&deleted), (3, 2));
}

#[test]
fn another_interval_rebuilds_the_table() {
    let (dir, table, store) = tenant(20_000, 8, 9, &[]);
    same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    let hours = same_as_full(dir.path(), &table, &store, AS_OF, &["--interval", "hour"]);
    assert!(intervals(&hours).3, "rebuilt");
    // The days come back as they were: rebuilt again.
    let days = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert_eq!(intervals(&days), (0, 6, 0, true));
    // Asked to, a run rebuilds a table it could have read.
    let store = store.to_str().unwrap();
    let rebuilt = run(
        dir.path(),
        &table,
        AS_OF,
        &["--summaries", store, "--rebuild-summaries"],
    );
    assert_eq!(
        intervals(&rebuilt.manifest["summaries_table"]),
        (0, 6, 0, true)
    );
    assert_eq!(
        rebuilt.anomalies,
        run(dir.path(), &table, AS_OF, &[]).anomalies
    );
    let after = run(dir.path(), &table, AS_OF, &["--summaries", store]);
    assert_eq!(
        intervals(&after.manifest["summaries_table"]),
        (5, 1, 0, false)
    );
}

#[test]
fn a_rebuild_without_a_table_is_refused() {
    for args in [
        &["run", "--rebuild-summaries"][..],
        &["summaries", "--rebuild"],
    ] {
        let out = crate::support::bin_output(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("--summaries"));
    }
}

/// `procforest summaries --rebuild` computes the table from every event, as a run with
/// `--rebuild-summaries` does; `procforest summaries` brings it up to date; neither prints
/// a report.
#[test]
fn the_summaries_command_rebuilds_and_updates_the_table() {
    let (dir, table, store) = tenant(20_000, 8, 9, &[]);
    let store_s = store.to_str().unwrap();
    let summaries = |extra: &[&str]| {
        let manifest = dir.path().join("summaries-manifest.json");
        let mut args = vec![
            "summaries",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--summaries",
            store_s,
            "--manifest",
            manifest.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = crate::support::bin_output(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "no report printed");
        let manifest: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(manifest).unwrap()).unwrap();
        intervals(&manifest["summaries_table"])
    };
    assert_eq!(summaries(&[]), (0, 8, 0, true), "made");
    assert_eq!(summaries(&[]), (7, 1, 0, false), "brought up to date");
    assert_eq!(summaries(&["--rebuild"]), (0, 8, 0, true), "rebuilt");
    // The table it made gives a run the full run's answer.
    same_as_full(dir.path(), &table, &store, AS_OF, &[]);
}

#[test]
fn a_table_of_another_kind_is_refused() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 3, 5, 1, 0.0);
    let out = crate::support::bin_output(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--summaries",
        table.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--summaries"), "{stderr}");
    assert!(stderr.contains("not a summaries table"), "{stderr}");
}

#[test]
fn a_file_spanning_days_has_its_days_counted_from_it() {
    let (dir, table, store) = tenant(30_000, 10, 11, &["--unpartitioned"]);
    let first = same_as_full(dir.path(), &table, &store, AS_OF, &[]);
    assert_eq!(intervals(&first), (0, 6, 0, true));
    // Late events of two days in one file: the summaries then count every interval's
    // events in one aggregation, kept to the intervals counted.
    runtime().block_on(async {
        let table_now = open(&table).await;
        let ctx = SessionContext::new();
        table_now.update_datafusion_session(&ctx.state()).unwrap();
        ctx.register_table("events", table_now.table_provider().await.unwrap())
            .unwrap();
        let mut late = Vec::new();
        for day in ["2026-11-24", "2026-11-25"] {
            let sql = format!(
                "SELECT * REPLACE ('late-host' AS \"Computer\") FROM events \
                 WHERE CAST(\"TimeGenerated\" AS DATE) = DATE '{day}' LIMIT 30"
            );
            late.extend(ctx.sql(&sql).await.unwrap().collect().await.unwrap());
        }
        let late =
            vec![deltalake::arrow::compute::concat_batches(&late[0].schema(), &late).unwrap()];
        open(&table)
            .await
            .write(late)
            .with_save_mode(SaveMode::Append)
            .await
            .unwrap();
    });
    let soc = ["--preset", "soc", "--contamination", "0.05"];
    let late = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(intervals(&late), (3, 3, 0, false));
    assert_eq!(line_intervals(&late), (0, 6));
    let again = same_as_full(dir.path(), &table, &store, AS_OF, &soc);
    assert_eq!(line_intervals(&again), (5, 1));
}
