//! The job end to end on Ballista standalone: generated and real tables, every output,
//! determinism, idempotence, and each kind of bad input.

use std::{collections::HashMap, fs, path::Path};

use crate::support::{self, bin_output, generate, read_parquet, read_table_events, scratch};
use arrow::{
    array::AsArray,
    datatypes::{Float64Type, Int8Type, Int64Type, TimestampMicrosecondType},
};

pub(crate) const AS_OF: &str = "2026-11-27";

pub(crate) fn run_ok(args: &[&str]) -> String {
    let out = bin_output(args);
    assert!(
        out.status.success(),
        "procforest {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A summary group: interval start and the four keys.
type Group = (i64, String, String, String, String);
/// A scored row: count, features, score, prediction.
type Scored = (i64, Vec<f64>, f64, i8);

/// Reads `--scores-out` rows keyed by group.
fn scores(path: &Path) -> HashMap<Group, Scored> {
    scores_of(read_parquet(path))
}

/// Scored rows keyed by group.
fn scores_of(batches: Vec<arrow::record_batch::RecordBatch>) -> HashMap<Group, Scored> {
    let mut out = HashMap::new();
    for b in batches {
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
        let pred = b
            .column_by_name("prediction")
            .unwrap()
            .as_primitive::<Int8Type>();
        let features: Vec<_> = procforest_core::schema::SEED_FEATURES
            .iter()
            .map(|f| {
                b.column_by_name(f)
                    .unwrap()
                    .as_primitive::<Float64Type>()
                    .clone()
            })
            .collect();
        for i in 0..b.num_rows() {
            let key = (
                t.value(i),
                c.value(i).to_string(),
                a.value(i).to_string(),
                at.value(i).to_string(),
                p.value(i).to_string(),
            );
            let f = features.iter().map(|f| f.value(i)).collect();
            assert!(
                out.insert(key, (count.value(i), f, score.value(i), pred.value(i)))
                    .is_none(),
                "a group appears twice"
            );
        }
    }
    out
}

#[test]
fn summaries_features_and_scores_match_a_plain_computation() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 60_000, 5, 20, 11, 0.05);
    let scores_path = dir.path().join("scores.parquet");
    let model_path = dir.path().join("model.json");
    run_ok(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
        "--scores-out",
        scores_path.to_str().unwrap(),
        "--model-out",
        model_path.to_str().unwrap(),
    ]);
    let scored = scores(&scores_path);

    // Summaries: the same groups and counts as counting the raw events.
    let mut expected: HashMap<Group, i64> = HashMap::new();
    for e in read_table_events(&table) {
        let day = e.time_us.div_euclid(86_400_000_000) * 86_400_000_000;
        *expected
            .entry((day, e.computer, e.account, e.account_type, e.process))
            .or_default() += 1;
    }
    assert_eq!(scored.len(), expected.len(), "number of groups");
    for (key, count) in &expected {
        assert_eq!(scored.get(key).map(|s| s.0), Some(*count), "{key:?}");
    }

    // Indices: by descending number of groups, ties by value.
    for (feature, key_of) in [
        (
            1usize,
            (|k: &(i64, String, String, String, String)| k.1.clone()) as fn(&_) -> String,
        ),
        (2, |k| k.2.clone()),
        (3, |k| k.3.clone()),
        (4, |k| k.4.clone()),
    ] {
        let mut groups: HashMap<String, usize> = HashMap::new();
        for key in scored.keys() {
            *groups.entry(key_of(key)).or_default() += 1;
        }
        let mut order: Vec<(String, usize)> = groups.into_iter().collect();
        order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let index: HashMap<String, f64> = order
            .iter()
            .enumerate()
            .map(|(i, (v, _))| (v.clone(), i as f64))
            .collect();
        for (key, (count, f, _, _)) in &scored {
            assert_eq!(
                f[feature],
                index[&key_of(key)],
                "feature {feature} of {key:?}"
            );
            assert_eq!(f[5], *count as f64);
            assert_eq!(f[0], (key.0 / 1_000_000) as f64);
        }
    }

    // Scores: exactly the model's own evaluation of each row's features.
    let model =
        iforest::IsolationForest::from_json(&fs::read_to_string(&model_path).unwrap()).unwrap();
    let rows: Vec<_> = scored.values().collect();
    let columns: Vec<Vec<f64>> = (0..6)
        .map(|j| rows.iter().map(|r| r.1[j]).collect())
        .collect();
    let direct = model.score_samples_reference(&columns).unwrap();
    for (r, d) in rows.iter().zip(&direct) {
        assert_eq!(r.2.to_bits(), d.to_bits());
        assert_eq!(r.3, model.predict_score(*d));
    }
}

/// The soc preset scores by families: every score written is the combination of the
/// families' p-values, each forest walked tree by tree (the reference scorer), and the
/// prediction is the saved model's threshold.
#[test]
fn soc_scores_are_the_families_combined() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 40_000, 5, 15, 3, 0.05);
    let scores_path = dir.path().join("scores.parquet");
    let model_path = dir.path().join("model.json");
    let t = table.to_str().unwrap();
    run_ok(&[
        "run",
        "--table",
        t,
        "--as-of",
        AS_OF,
        "--window",
        "5d",
        "--preset",
        "soc",
        "--quiet",
        "--scores-out",
        scores_path.to_str().unwrap(),
        "--model-out",
        model_path.to_str().unwrap(),
    ]);
    let model = iforest::Model::from_json(&fs::read_to_string(&model_path).unwrap()).unwrap();
    let iforest::Model::Families(families) = &model else {
        panic!("the soc preset's model is one forest");
    };
    // Rarity (with the count), novelty, lineage, first seen: the evidence features' order.
    let features: Vec<Vec<usize>> = families
        .families()
        .iter()
        .map(|f| f.features().to_vec())
        .collect();
    assert_eq!(
        features,
        [
            vec![0, 1, 2, 3, 4],
            vec![5, 6, 7, 8, 9],
            vec![10, 11],
            vec![12, 13]
        ]
    );
    let batches = read_parquet(&scores_path);
    let mut rows = 0;
    let mut flagged = 0;
    for b in &batches {
        let column = |name: &str| b.column_by_name(name).unwrap().clone();
        let names: Vec<&str> = std::iter::once("event_count")
            .chain(procforest_core::schema::RARITY_FEATURES)
            .chain(procforest_core::schema::NOVELTY_FEATURES)
            .chain(procforest_core::schema::LINEAGE_FEATURES)
            .chain(procforest_core::schema::FIRST_SEEN_FEATURES)
            .collect();
        let columns: Vec<Vec<f64>> = names
            .iter()
            .map(|n| column(n).as_primitive::<Float64Type>().values().to_vec())
            .collect();
        let p: Vec<Vec<f64>> = families
            .families()
            .iter()
            .map(|family| {
                let cols: Vec<&[f64]> =
                    family.features().iter().map(|&f| &columns[f][..]).collect();
                let scores = family.forest().score_samples_reference(&cols).unwrap();
                scores.iter().map(|&s| family.p_value(s)).collect()
            })
            .collect();
        let score = column("score");
        let score = score.as_primitive::<Float64Type>();
        let prediction = column("prediction");
        let prediction = prediction.as_primitive::<Int8Type>();
        for r in 0..b.num_rows() {
            let expected = iforest::combine(p.iter().map(|family| family[r]));
            assert_eq!(score.value(r).to_bits(), expected.to_bits(), "row {r}");
            assert_eq!(prediction.value(r), model.predict_score(expected));
            flagged += (prediction.value(r) == -1) as usize;
        }
        rows += b.num_rows();
    }
    assert!(rows > 100, "{rows} rows scored");
    assert!(
        flagged > 0 && flagged * 10 < rows,
        "{flagged} of {rows} flagged"
    );
}

#[test]
fn same_anomalies_and_scores_whatever_the_partitions_and_run() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 40_000, 4, 15, 5, 0.05);
    let mut outputs = Vec::new();
    for (i, partitions) in ["1", "2", "8", "8"].iter().enumerate() {
        let json = dir.path().join(format!("a{i}.jsonl"));
        let scores_path = dir.path().join(format!("s{i}.parquet"));
        run_ok(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--partitions",
            partitions,
            "--json",
            json.to_str().unwrap(),
            "--scores-out",
            scores_path.to_str().unwrap(),
        ]);
        let mut s: Vec<_> = scores(&scores_path).into_iter().collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        outputs.push((fs::read_to_string(&json).unwrap(), s));
    }
    assert!(!outputs[0].0.is_empty(), "some anomalies are reported");
    for o in &outputs[1..] {
        assert_eq!(o.0, outputs[0].0, "JSON lines differ");
        assert!(o.1 == outputs[0].1, "scores differ");
    }
}

/// The same events a day per file (summarised history and report apart, without a
/// shuffle) and all in one file (the general plan) give the same report and scores.
#[test]
fn day_files_and_one_file_give_the_same_answer() {
    let dir = scratch();
    let by_day = dir.path().join("by_day");
    generate(&by_day, 30_000, 4, 12, 3, 0.05);
    let one_file = dir.path().join("one_file");
    support::copy_into_one_file(&by_day, &one_file);
    let mut outputs = Vec::new();
    for (name, table) in [("d", &by_day), ("o", &one_file)] {
        let json = dir.path().join(format!("{name}.jsonl"));
        let scores_path = dir.path().join(format!("{name}.parquet"));
        let manifest = dir.path().join(format!("{name}.json"));
        run_ok(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--json",
            json.to_str().unwrap(),
            "--scores-out",
            scores_path.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ]);
        let m: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
        let mut s: Vec<_> = scores(&scores_path).into_iter().collect();
        s.sort_by(|a, b| a.0.cmp(&b.0));
        outputs.push((
            (m["summary_sources"].clone(), m["history_counts"].clone()),
            fs::read_to_string(&json).unwrap(),
            s,
        ));
    }
    // Day files: the history counted from the files' dictionaries (key counts); one file
    // spanning days: DataFusion's GROUP BY with a shuffle.
    assert_eq!(outputs[0].0.0, "by_interval");
    assert_eq!(outputs[0].0.1, "key_counts");
    assert_eq!(outputs[1].0.0, "whole");
    assert!(outputs[1].0.1.is_null());
    assert!(
        outputs[0].1.contains("command_lines"),
        "anomalies are reported"
    );
    assert_eq!(outputs[0].1, outputs[1].1, "JSON lines differ");
    assert!(outputs[0].2 == outputs[1].2, "scores differ");
}

#[test]
fn rerunning_an_as_of_into_delta_leaves_no_duplicates() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 30_000, 3, 10, 7, 0.05);
    let out = dir.path().join("anomalies");
    let json = dir.path().join("a.jsonl");
    for _ in 0..2 {
        run_ok(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--output-delta",
            out.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ]);
    }
    let reported = fs::read_to_string(&json).unwrap().lines().count();
    assert!(reported > 0);
    let rows = support::count_delta_rows(&out);
    assert_eq!(
        rows, reported,
        "the second run replaced the first run's rows"
    );
    // Another as-of adds its own rows.
    run_ok(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        "2026-11-26",
        "--quiet",
        "--output-delta",
        out.to_str().unwrap(),
    ]);
    assert!(support::count_delta_rows(&out) > reported);
}

#[test]
fn a_generated_attack_table_reports_and_measures_recall() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 50_000, 7, 20, 3, 0.2);
    let manifest = dir.path().join("manifest.json");
    let stdout = run_ok(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--manifest",
        manifest.to_str().unwrap(),
        "--labels",
        table.join("_procforest/labels.parquet").to_str().unwrap(),
    ]);
    assert!(stdout.starts_with("interval"), "{stdout}");
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    let labels = &m["labels"];
    assert!(labels["labelled_in_window"].as_u64().unwrap() > 0, "{m}");
    let recall = labels["recall"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&recall));
    assert_eq!(m["events"].as_u64(), Some(50_000));
    assert!(m["phases"]["fit"].as_f64().is_some());
    assert_eq!(m["files"]["files_scanned"].as_u64(), Some(7));
}

#[test]
fn training_days_and_as_of_prune_files() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 20_000, 10, 8, 9, 0.0);
    let manifest = dir.path().join("m.json");
    run_ok(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        "2026-11-25",
        "--train-days",
        "3",
        "--quiet",
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    // Days 2026-11-23..25 hold the events; the partition slack keeps a day on each side.
    let scanned = m["files"]["files_scanned"].as_u64().unwrap();
    assert!((3..=5).contains(&scanned), "{}", m["files"]);
    let pruned = m["files"]["pruned_by_partition"].as_u64().unwrap()
        + m["files"]["pruned_by_statistics"].as_u64().unwrap();
    assert_eq!(scanned + pruned, 10);
}

#[test]
fn no_arguments_reports_the_bundled_real_sample() {
    // Without --as-of, the report is the sample's newest day (OTRF's LSASS campaign 04).
    let out = bin_output(&["run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("interval"), "{stdout}");
    assert!(
        stdout.contains("2023-08-27T00:00:00Z  IT01.pandalab.com"),
        "{stdout}"
    );
    // An earlier day of the sample: msticpy's host and its attack simulation.
    let out = bin_output(&["run", "--as-of", "2019-01-15"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("MSTICAlertsWin1\\MSTICAdmin"), "{stdout}");
    // Now: the sample's days are long past, nothing to report.
    let out = bin_output(&["run", "--as-of", "2026-11-27"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("no anomalies in")
    );
}

/// Runs with outputs and asserts exit code 1, a message containing `needle`, and no output.
pub(crate) fn assert_bad_input(args: &[&str], needle: &str) {
    let dir = scratch();
    let json = dir.path().join("a.jsonl");
    let manifest = dir.path().join("m.json");
    let delta = dir.path().join("anomalies");
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--json",
        json.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
        "--output-delta",
        delta.to_str().unwrap(),
        "--quiet",
    ]);
    let out = bin_output(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !json.exists() && !manifest.exists() && !delta.exists(),
        "{args:?} wrote output"
    );
    assert!(
        out.stdout.is_empty(),
        "{args:?} printed {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn bad_tables_are_refused_with_a_clear_message() {
    let dir = scratch();
    let missing = dir.path().join("nope");
    assert_bad_input(
        &["run", "--table", missing.to_str().unwrap()],
        "no such path",
    );

    let folder = dir.path().join("folder");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("x.parquet"), b"not parquet").unwrap();
    assert_bad_input(
        &["run", "--table", folder.to_str().unwrap()],
        "not a Delta table",
    );

    let no_column = dir.path().join("no_column");
    support::write_table_without(&no_column, "CommandLine");
    assert_bad_input(
        &["run", "--table", no_column.to_str().unwrap()],
        "`CommandLine` is missing",
    );

    let no_parent = dir.path().join("no_parent");
    support::write_table_without(&no_parent, "ParentProcessName");
    assert_bad_input(
        &[
            "run",
            "--table",
            no_parent.to_str().unwrap(),
            "--preset",
            "soc",
        ],
        "`ParentProcessName` is missing; the evidence features read it",
    );

    let mistyped = dir.path().join("mistyped");
    support::write_table_with_string_time(&mistyped);
    assert_bad_input(
        &["run", "--table", mistyped.to_str().unwrap()],
        "`TimeGenerated` is Utf8 but must be a timestamp",
    );

    let numeric = dir.path().join("numeric");
    support::write_table_with_numeric_computer(&numeric);
    assert_bad_input(
        &["run", "--table", numeric.to_str().unwrap()],
        "`Computer` is Int64 but must be",
    );

    assert_bad_input(
        &["run", "--table", "ftp://example.org/events"],
        "--table ftp://example.org/events: procforest reads local paths, file:// and Azure \
         storage (az://",
    );

    let empty = dir.path().join("empty");
    support::write_empty_table(&empty);
    assert_bad_input(
        &["run", "--table", empty.to_str().unwrap()],
        "the table is empty",
    );

    let dv = dir.path().join("dv");
    support::write_table_with_deletion_vector(&dv);
    assert_bad_input(
        &["run", "--table", dv.to_str().unwrap()],
        "the deletion vector of file EventDate=2026-11-27/part-0.parquet: inline: bad encoding",
    );
}

#[test]
fn a_truncated_data_file_is_named() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 2, 4, 1, 0.0);
    let file = support::data_files(&table).into_iter().next().unwrap();
    let len = fs::metadata(&file).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let name = file.file_name().unwrap().to_str().unwrap().to_string();
    assert_bad_input(
        &["run", "--table", table.to_str().unwrap(), "--as-of", AS_OF],
        &name,
    );
}

#[test]
fn bad_settings_are_refused_with_a_clear_message() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 2, 4, 1, 0.0);
    let t = table.to_str().unwrap();
    assert_bad_input(
        &["run", "--table", t, "--interval", "week"],
        "--interval \"week\"",
    );
    assert_bad_input(
        &["run", "--table", t, "--max-samples", "0"],
        "--max-samples must be at least 1",
    );
    assert_bad_input(
        &["run", "--table", t, "--as-of", "2020-01-01"],
        "is --as-of before all data?",
    );
    assert_bad_input(
        &["run", "--table", t, "--window", "soon"],
        "--window \"soon\"",
    );
    assert_bad_input(
        &["run", "--table", t, "--contamination", "0.9"],
        "--contamination 0.9",
    );
    assert_bad_input(
        &[
            "run",
            "--table",
            t,
            "--preset",
            "soc",
            "--contamination",
            "auto",
        ],
        "--scoring families needs --contamination as a fraction",
    );
    for (flag, value, needle) in [
        (
            "--as-of",
            "2026-13-45",
            "--as-of \"2026-13-45\" is neither RFC 3339",
        ),
        ("--scheduler", "df://", "--scheduler df://: no host"),
        (
            "--scheduler",
            "http://h:1",
            "--scheduler http://h:1: expected df://HOST:PORT",
        ),
        (
            "--scratch-stale-after",
            "soon",
            "--scratch-stale-after \"soon\"",
        ),
    ] {
        assert_bad_input(&["run", "--table", t, flag, value], needle);
    }
}

/// What clap rejects is bad input too (exit 1, as documented), and names the flag;
/// `--help` is not an error.
#[test]
fn unknown_flags_and_unparsable_values_exit_1() {
    for (args, needle) in [
        (&["run", "--no-such-flag"][..], "--no-such-flag"),
        (&["run", "--trees", "many"][..], "--trees"),
        (&["run", "--features", "all"][..], "--features"),
        (&["no-such-command"][..], "no-such-command"),
    ] {
        let out = bin_output(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    let help = bin_output(&["run", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--contamination"));
}

#[test]
fn hourly_intervals_split_days() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 10_000, 2, 5, 2, 0.0);
    let scores_path = dir.path().join("s.parquet");
    run_ok(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--interval",
        "hour",
        "--quiet",
        "--scores-out",
        scores_path.to_str().unwrap(),
    ]);
    let scored = scores(&scores_path);
    assert!(scored.keys().all(|k| k.0 % 3_600_000_000 == 0));
    assert!(scored.keys().any(|k| k.0 % 86_400_000_000 != 0));
    let total: i64 = scored.values().map(|v| v.0).sum();
    assert_eq!(total, 10_000);
}

#[test]
fn null_and_empty_keys_are_categories_of_their_own() {
    let dir = scratch();
    let table = dir.path().join("gaps");
    support::write_table_with_gaps(&table);
    let scores_path = dir.path().join("s.parquet");
    let manifest = dir.path().join("m.json");
    run_ok(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
        "--scores-out",
        scores_path.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    let gaps = &m["null_or_empty_keys"];
    assert!(gaps["Computer"]["null"].as_u64().unwrap() > 0, "{gaps}");
    assert!(gaps["Computer"]["empty"].as_u64().unwrap() > 0, "{gaps}");
    assert!(gaps["Account"]["null"].as_u64().unwrap() > 0, "{gaps}");
    assert!(gaps["Process"]["empty"].as_u64().unwrap() > 0, "{gaps}");
    // Every group is scored once; null, empty and each value get distinct indices.
    let mut computer_index: HashMap<Option<String>, f64> = HashMap::new();
    let mut total = 0;
    for b in read_parquet(&scores_path) {
        let c = b
            .column_by_name("Computer")
            .unwrap()
            .as_string::<i32>()
            .clone();
        let f = b
            .column_by_name("computer_index")
            .unwrap()
            .as_primitive::<Float64Type>()
            .clone();
        let n = b
            .column_by_name("count")
            .unwrap()
            .as_primitive::<Int64Type>()
            .clone();
        for i in 0..b.num_rows() {
            use arrow::array::Array;
            let key = c.is_valid(i).then(|| c.value(i).to_string());
            let idx = f.value(i);
            assert!(idx.is_finite());
            if let Some(prev) = computer_index.insert(key.clone(), idx) {
                assert_eq!(prev, idx, "{key:?} has one index");
            }
            total += n.value(i);
        }
    }
    assert_eq!(total, 40, "every event is in a group");
    assert_eq!(
        computer_index.len(),
        4,
        "a, b, null and empty: {computer_index:?}"
    );
    let mut indices: Vec<f64> = computer_index.values().copied().collect();
    indices.sort_by(f64::total_cmp);
    assert_eq!(indices, vec![0.0, 1.0, 2.0, 3.0]);
}

#[test]
fn the_heartbeat_probe_tells_a_live_run_from_a_stuck_one() {
    let dir = scratch();
    let heartbeat = dir.path().join("heartbeat");
    let h = heartbeat.to_str().unwrap();
    run_ok(&["run", "--quiet", "--heartbeat-file", h]);
    assert!(
        bin_output(&["probe", "--heartbeat-file", h])
            .status
            .success()
    );
    let touched = std::process::Command::new("touch")
        .args(["-d", "20 minutes ago", h])
        .status()
        .unwrap();
    assert!(touched.success());
    let stale = bin_output(&["probe", "--heartbeat-file", h, "--max-age", "10m"]);
    assert_eq!(stale.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("no heartbeat"));
    let missing = bin_output(&[
        "probe",
        "--heartbeat-file",
        dir.path().join("none").to_str().unwrap(),
    ]);
    assert!(!missing.status.success());
}

#[test]
fn rarity_features_are_deterministic_and_explained() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 30_000, 4, 12, 6, 0.1);
    let mut outputs = Vec::new();
    for partitions in ["1", "8"] {
        let json = dir.path().join(format!("r{partitions}.jsonl"));
        run_ok(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--features",
            "rarity",
            "--partitions",
            partitions,
            "--json",
            json.to_str().unwrap(),
        ]);
        outputs.push(fs::read_to_string(&json).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    let first: serde_json::Value =
        serde_json::from_str(outputs[0].lines().next().unwrap()).unwrap();
    let features = first["features"].as_object().unwrap();
    assert_eq!(features.len(), 10, "{first}");
    for f in [
        "pair_log_groups",
        "log_p_process_given_account",
        "log_p_process_given_computer",
        "log_process_host_share",
    ] {
        assert!(features[f].as_f64().unwrap().is_finite(), "{f}");
    }
    // P(process | account) and the host share are probabilities: their logs are ≤ 0.
    assert!(features["log_p_process_given_account"].as_f64().unwrap() <= 0.0);
    assert!(features["log_process_host_share"].as_f64().unwrap() <= 0.0);
    let explanation = first["explanation"].as_object().unwrap();
    let total: f64 = explanation.values().map(|v| v.as_f64().unwrap()).sum();
    assert!(
        (total - 1.0).abs() < 1e-9,
        "shares sum to 1: {explanation:?}"
    );
}

/// The soc preset's evidence features give the same anomalies on one partition and on
/// eight, each with its evidence in range; a flag beside the preset overrides it.
#[test]
fn the_soc_preset_is_deterministic_and_its_evidence_in_range() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 30_000, 4, 12, 6, 0.1);
    let mut outputs = Vec::new();
    for partitions in ["1", "8"] {
        let json = dir.path().join(format!("soc{partitions}.jsonl"));
        run_ok(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--preset",
            "soc",
            // Beside the preset, overriding its 1 %: enough rows to check.
            "--contamination",
            "0.1",
            "--window",
            "2d",
            "--partitions",
            partitions,
            "--json",
            json.to_str().unwrap(),
        ]);
        outputs.push(fs::read_to_string(&json).unwrap());
    }
    assert_eq!(outputs[0], outputs[1]);
    assert!(
        !outputs[0].is_empty(),
        "the soc preset flags something here"
    );
    for line in outputs[0].lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let features = row["features"].as_object().unwrap();
        assert_eq!(features.len(), 14, "{row}");
        let value = |name: &str| features[name].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&value("novel_template_share")));
        for flag in [
            "lineage_new_on_host",
            "process_new_on_host",
            "process_new_for_account",
        ] {
            assert!([0.0, 1.0].contains(&value(flag)), "{flag}: {row}");
        }
        assert!((0.0..=8.0).contains(&value("line_entropy")));
        for log in [
            "log_rarest_template_events",
            "log_rarest_template_hosts",
            "log_rarest_lineage_events",
        ] {
            assert!(value(log) >= 0.0, "{log}: {row}");
        }
    }
}

/// Public attacks replayed into a copy of the report day: both presets measured against
/// them, the soc preset flagging less; the table itself untouched.
#[test]
fn evaluate_replays_attacks_into_a_copy_and_compares_presets() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 40_000, 5, 20, 3, 0.0);
    let log_before: Vec<_> = fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let attacks =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/attacks/public-attacks.jsonl");
    let json = dir.path().join("eval.json");
    let kept = dir.path().join("kept");
    let out = bin_output(&[
        "evaluate",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--presets",
        "notebook,soc",
        "--inject",
        attacks.to_str().unwrap(),
        "--inject-scenarios",
        "3",
        "--inject-keep",
        kept.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("of 3 scenarios"), "{stderr}");
    let results: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let results = results.as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["variant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["preset notebook", "preset soc"]);
    let flagged = |r: &serde_json::Value| r["flagged_fraction"].as_f64().unwrap();
    assert!(flagged(&results[1]) < flagged(&results[0]), "{results:?}");
    for r in results {
        assert!(r["labelled"].as_u64().unwrap() > 0, "{r}");
        let kinds = r["kinds"].as_object().unwrap();
        let in_kinds: u64 = kinds.values().map(|k| k["groups"].as_u64().unwrap()).sum();
        assert_eq!(in_kinds, r["labelled"].as_u64().unwrap(), "{r}");
    }
    let log_after: Vec<_> = fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(log_before, log_after, "the table itself is not written");
    assert!(
        kept.join("_procforest/labels.parquet").exists(),
        "the injected copy is kept with its labels"
    );
    assert_eq!(
        fs::read_dir(kept.join("_delta_log"))
            .unwrap()
            .filter(|e| e
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json"))
            .count(),
        log_after
            .iter()
            .filter(|n| n.to_string_lossy().ends_with(".json"))
            .count()
            + 1,
        "one commit more: the replayed events"
    );
}

/// A replay that cannot run says why, names what is wrong, exits 1 and writes nothing.
#[test]
fn bad_replays_are_refused_with_a_clear_message() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 3, 4, 1, 0.0);
    let table = table.to_str().unwrap();
    let attacks =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/attacks/public-attacks.jsonl");
    let attacks = attacks.to_str().unwrap();
    let replay = |table: &str, file: &str| {
        vec![
            "evaluate",
            "--table",
            table,
            "--as-of",
            AS_OF,
            "--presets",
            "soc",
            "--inject",
            file,
        ]
        .into_iter()
        .map(str::to_string)
        .collect::<Vec<_>>()
    };
    let check = |args: Vec<String>, needle: &str| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_bad_input(&args, needle);
    };
    let missing = dir.path().join("none.jsonl");
    check(replay(table, missing.to_str().unwrap()), "none.jsonl");
    let benign = dir.path().join("benign.jsonl");
    fs::write(
        &benign,
        r#"{"TimeGenerated":"2026-11-27T01:00:00Z","Computer":"h","Account":"D\\u","AccountType":"User","NewProcessName":"C:\\x.exe","attack":false}"#,
    )
    .unwrap();
    check(
        replay(table, benign.to_str().unwrap()),
        "no labelled attack events",
    );
    let kept = dir.path().join("kept");
    fs::create_dir(&kept).unwrap();
    let mut keep = replay(table, attacks);
    keep.extend([
        "--inject-keep".to_string(),
        kept.to_str().unwrap().to_string(),
    ]);
    check(keep, "already exists");
    check(
        replay("az://container/events", attacks),
        "must be a local folder",
    );
}

#[test]
fn evaluate_reports_metrics_per_feature_set() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 30_000, 4, 15, 8, 0.3);
    let json = dir.path().join("eval.json");
    let out = bin_output(&[
        "evaluate",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table_text = String::from_utf8_lossy(&out.stdout);
    assert!(
        table_text.contains("seed") && table_text.contains("rarity"),
        "{table_text}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let results = results.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for r in results {
        assert!(r["labelled"].as_u64().unwrap() > 0, "{r}");
        for k in [
            "flagged_fraction",
            "precision",
            "recall",
            "roc_auc",
            "pr_auc",
        ] {
            let v = r[k].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&v), "{k} = {v}");
        }
        assert_eq!(
            r["groups"], results[0]["groups"],
            "the same groups are judged"
        );
    }
}

#[test]
fn an_interrupt_ends_a_standalone_run_promptly_and_writes_nothing() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 200_000, 10, 20, 3, 0.0);
    for (signal, code, name) in [("-INT", 130, "SIGINT"), ("-TERM", 143, "SIGTERM")] {
        let heartbeat = dir.path().join(format!("heartbeat{signal}"));
        let json = dir.path().join(format!("anomalies{signal}.jsonl"));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_procforest"))
            .args([
                "run",
                "--table",
                table.to_str().unwrap(),
                "--as-of",
                AS_OF,
                "--quiet",
            ])
            .arg("--heartbeat-file")
            .arg(&heartbeat)
            .arg("--json")
            .arg(&json)
            .env("PROCFOREST_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The heartbeat's first beat means the run (and Ballista standalone) is under way.
        let started = std::time::Instant::now();
        while !heartbeat.exists() {
            assert!(started.elapsed().as_secs() < 30, "the run never started");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let kill = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
        let interrupted = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            assert!(
                interrupted.elapsed().as_secs() < 15,
                "the run did not end within 15 s of {name}"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains(&format!("interrupted by {name}")),
            "{stderr}"
        );
        assert!(!json.exists(), "an interrupted run wrote its output");
    }
}

/// A driver killed with SIGKILL leaves its scratch folder; the next run sharing the scratch
/// removes it once it has shown no sign of life for `--scratch-stale-after`, and never a
/// live run's folder (issue 27).
#[test]
fn a_killed_runs_scratch_is_removed_by_a_later_run() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 200_000, 10, 20, 3, 0.0);
    let shared = dir.path().join("scratch");
    let run_folders = || -> Vec<std::path::PathBuf> {
        let mut found: Vec<_> = fs::read_dir(&shared)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        found.sort();
        found
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_procforest"))
        .args(["run", "--table", table.to_str().unwrap(), "--as-of", AS_OF])
        .arg("--quiet")
        .arg("--scratch")
        .arg(&shared)
        .spawn()
        .unwrap();
    // Killed once its scratch is marked alive: mid-run, nothing cleaned up.
    let started = std::time::Instant::now();
    while !run_folders().iter().any(|f| f.join("_alive").exists()) {
        assert!(
            started.elapsed().as_secs() < 30,
            "the run never marked its scratch"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = run_folders();
    assert_eq!(killed.len(), 1, "the killed run's folder stays: {killed:?}");
    // A live run's folder beside it, marked alive just now.
    let live = shared.join("run-live");
    fs::create_dir_all(&live).unwrap();
    fs::write(live.join("_alive"), "now").unwrap();

    let later = |stale_after: &str| {
        bin_output(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--scratch",
            shared.to_str().unwrap(),
            "--scratch-stale-after",
            stale_after,
        ])
    };
    // Within the stale age: left alone.
    let o = later("1h");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(run_folders(), [killed[0].clone(), live.clone()]);
    // Past it: the killed run's folder goes, the live one stays (it keeps its mark fresh).
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    fs::write(live.join("_alive"), "still running").unwrap();
    let o = later("2s");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains(&killed[0].display().to_string()),
        "{stderr}"
    );
    assert_eq!(run_folders(), [live]);
}

/// A reported group as `--json` writes it: interval text and the four keys (`None` = null).
type ReportedGroup = (String, [Option<String>; 4]);
/// Reported groups and their command lines.
type GroupLines = HashMap<ReportedGroup, Vec<String>>;

/// The anomalies of a `--json` output by group, with their command lines.
fn anomaly_lines(json: &Path) -> GroupLines {
    fs::read_to_string(json)
        .unwrap()
        .lines()
        .map(|line| {
            let r: serde_json::Value = serde_json::from_str(line).unwrap();
            let key = ["computer", "account", "account_type", "process"]
                .map(|k| r[k].as_str().map(String::from));
            let lines = r["command_lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l.as_str().unwrap().to_string())
                .collect();
            ((r["interval"].as_str().unwrap().to_string(), key), lines)
        })
        .collect()
}

/// Runs the job on `table` with `extra` settings; returns the anomalies' command lines
/// and the manifest's `command_lines`.
fn run_for_lines(dir: &Path, table: &Path, name: &str, extra: &[&str]) -> (GroupLines, String) {
    let json = dir.join(format!("{name}.jsonl"));
    let manifest = dir.join(format!("{name}.json"));
    let mut args = vec![
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
        "--json",
        json.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    run_ok(&args);
    let m: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&manifest).unwrap()).unwrap();
    (
        anomaly_lines(&json),
        m["command_lines"].as_str().unwrap().to_string(),
    )
}

/// With a set contamination only the anomalies' command lines are gathered, after scoring
/// (manifest `command_lines: anomalies`): each anomaly's are its group's distinct command
/// lines, sorted, read straight from the table — on day files and on one file spanning
/// days — and, with null and empty keys, the same as the report groups' pass gives.
#[test]
fn the_anomalies_command_lines_are_gathered_after_scoring() {
    let dir = scratch();
    let by_day = dir.path().join("by_day");
    generate(&by_day, 20_000, 3, 10, 5, 0.05);
    let one_file = dir.path().join("one_file");
    support::copy_into_one_file(&by_day, &one_file);
    let mut expected = GroupLines::new();
    for e in read_table_events(&by_day) {
        let day = e.time_us.div_euclid(86_400_000_000) * 86_400_000_000;
        let day = chrono::DateTime::from_timestamp_micros(day)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let key = [e.computer, e.account, e.account_type, e.process].map(Some);
        expected.entry((day, key)).or_default().push(e.command_line);
    }
    for lines in expected.values_mut() {
        lines.sort();
        lines.dedup();
    }
    for (name, table) in [("d", &by_day), ("o", &one_file)] {
        let (anomalies, how) = run_for_lines(dir.path(), table, name, &["--contamination", "0.05"]);
        assert_eq!(how, "anomalies");
        assert!(!anomalies.is_empty(), "{name}: anomalies are reported");
        for (group, lines) in &anomalies {
            assert_eq!(Some(lines), expected.get(group), "{name}: {group:?}");
        }
    }
    let (_, how) = run_for_lines(dir.path(), &by_day, "auto", &[]);
    assert_eq!(how, "report_groups");

    // Null and empty keys: the null-safe join finds their groups.
    let gaps = dir.path().join("gaps");
    support::write_table_with_gaps(&gaps);
    let (all, _) = run_for_lines(dir.path(), &gaps, "gaps-auto", &[]);
    let (flagged, how) = run_for_lines(dir.path(), &gaps, "gaps-c", &["--contamination", "0.5"]);
    assert_eq!(how, "anomalies");
    let common: Vec<_> = flagged.keys().filter(|g| all.contains_key(*g)).collect();
    assert!(
        common
            .iter()
            .any(|(_, key)| key.iter().any(Option::is_none)),
        "a flagged group with a null key: {common:?}"
    );
    for group in common {
        assert_eq!(flagged[group], all[group], "{group:?}");
    }
}

#[test]
fn the_scores_folder_is_replaced_by_a_rerun_and_refused_when_a_file() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 10_000, 3, 5, 4, 0.0);
    let scores_dir = dir.path().join("scores");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--scores-out",
            scores_dir.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run_ok(&args);
        let mut names: Vec<String> = fs::read_dir(&scores_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    };
    let first = run(&["--partitions", "3"]);
    assert!(first.contains(&"_SUCCESS".to_string()), "{first:?}");
    assert!(
        first
            .iter()
            .all(|n| n == "_SUCCESS" || n.ends_with(".parquet")),
        "{first:?}"
    );
    let first_groups = scores(&scores_dir);
    // A second run replaces the files: the same groups once each, none of the first's files.
    let second = run(&["--partitions", "2"]);
    assert!(
        second.iter().all(|n| n == "_SUCCESS" || !first.contains(n)),
        "{second:?}"
    );
    let second_groups = scores(&scores_dir);
    let rows: usize = read_parquet(&scores_dir).iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, second_groups.len(), "a group written twice");
    assert_eq!(
        first_groups
            .keys()
            .collect::<std::collections::BTreeSet<_>>(),
        second_groups
            .keys()
            .collect::<std::collections::BTreeSet<_>>()
    );

    let file = dir.path().join("a-file");
    fs::write(&file, "not a folder").unwrap();
    let o = bin_output(&[
        "run",
        "--table",
        table.to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--quiet",
        "--scores-out",
        file.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("--scores-out") && stderr.contains("is a file"),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(&file).unwrap(), "not a folder");
}

/// `--scores-format delta`: the executors' files committed as one table version per run,
/// with the rows of the Parquet folder; a rerun replaces them; a folder of the other
/// format is refused.
#[test]
fn the_scores_table_holds_the_folders_rows_and_each_run_replaces_them() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 10_000, 3, 5, 4, 0.0);
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--scores-out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        bin_output(&args)
    };
    let folder = dir.path().join("scores-folder");
    assert!(run(&folder, &["--partitions", "3"]).status.success());
    let expected = scores(&folder);
    let delta = dir.path().join("scores-table");
    for (partitions, versions) in [("3", 2), ("2", 3)] {
        let o = run(
            &delta,
            &["--scores-format", "delta", "--partitions", partitions],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let rows: usize = support::read_delta(&delta)
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, expected.len(), "each group once");
        assert!(
            scores_of(support::read_delta(&delta)) == expected,
            "scores differ"
        );
        // Created once, then one commit per run.
        assert_eq!(support::commits(&delta).len(), versions);
    }
    let last = fs::read_to_string(support::commits(&delta).last().unwrap()).unwrap();
    assert!(
        last.contains("\"remove\"") && last.contains("\"add\""),
        "{last}"
    );
    // Each added file's statistics count its rows.
    let counted: u64 = last
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter_map(|a| a["add"]["stats"].as_str().map(String::from))
        .map(|stats| {
            let stats: serde_json::Value = serde_json::from_str(&stats).unwrap();
            stats["numRecords"].as_u64().unwrap()
        })
        .sum();
    assert_eq!(counted as usize, expected.len());
    // The other format's folder is refused before the run, and left alone.
    for (out, format, needle) in [
        (
            &delta,
            "parquet",
            "is a Delta table: add --scores-format delta",
        ),
        (&folder, "delta", "holds files and is not a Delta table"),
    ] {
        let before = support::parquet_files(out);
        let o = run(out, &["--scores-format", format]);
        assert_eq!(o.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains("--scores-out") && stderr.contains(needle),
            "{stderr}"
        );
        assert_eq!(support::parquet_files(out), before);
    }
}

/// Outputs that could not be written after the run are refused before it: nothing is
/// computed, nothing written (issue 27).
#[test]
fn outputs_that_cannot_be_written_are_refused_before_the_run() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 2, 4, 1, 0.0);
    let t = table.to_str().unwrap();
    let folder = dir.path().to_str().unwrap();
    for (flag, value, needle) in [
        (
            "--report-html",
            "/nonexistent/r.html",
            "--report-html /nonexistent/r.html: folder /nonexistent does not exist",
        ),
        ("--report-html", folder, "is a folder"),
        (
            "--model-out",
            "/nonexistent/m.json",
            "--model-out /nonexistent/m.json: folder",
        ),
        (
            "--scores-out",
            "/nonexistent/a/b",
            "--scores-out /nonexistent/a/b: folder /nonexistent/a does not exist",
        ),
    ] {
        assert_bad_input(
            &["run", "--table", t, "--as-of", AS_OF, flag, value],
            needle,
        );
    }
    // The JSON and manifest files beside a good anomalies table: that table stays unmade.
    let delta = dir.path().join("anomalies");
    for (flag, needle) in [
        ("--json", "--json /nonexistent/a.jsonl"),
        ("--manifest", "--manifest /nonexistent/a.jsonl"),
    ] {
        let o = bin_output(&[
            "run",
            "--table",
            t,
            "--as-of",
            AS_OF,
            "--quiet",
            flag,
            "/nonexistent/a.jsonl",
            "--output-delta",
            delta.to_str().unwrap(),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!delta.exists(), "the anomalies table was written");
    }
    // An anomalies table that is another table: refused, and left as it was.
    let log_files = || fs::read_dir(table.join("_delta_log")).unwrap().count();
    let before = log_files();
    let o = bin_output(&[
        "run",
        "--table",
        t,
        "--as-of",
        AS_OF,
        "--quiet",
        "--output-delta",
        t,
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "--output-delta {t}: not an anomalies table (no column as_of"
        )),
        "{stderr}"
    );
    assert_eq!(log_files(), before);
}

#[test]
fn a_version_beyond_the_newest_names_the_newest() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 2, 4, 1, 0.0);
    let t = table.to_str().unwrap();
    assert_bad_input(
        &["run", "--table", t, "--version", "999"],
        &format!("--version 999: the newest version of {t} is 2"),
    );
}

#[test]
fn a_timestamp_before_the_first_version_is_refused() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 2, 4, 1, 0.0);
    let t = table.to_str().unwrap();
    assert_bad_input(
        &["run", "--table", t, "--timestamp", "2001-01-01T00:00:00Z"],
        &format!(
            "--timestamp 2001-01-01T00:00:00+00:00: before the first version of {t} (version 0"
        ),
    );
}

#[test]
fn a_damaged_commit_or_checkpoint_is_bad_input() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 5_000, 12, 4, 1, 0.0);
    let log = table.join("_delta_log");
    let checkpoint = fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".checkpoint.parquet"))
        .expect("a checkpoint every ten commits");
    let t = table.to_str().unwrap();
    let needle = format!("--table {t}: a commit or checkpoint in its _delta_log/ cannot be read");
    let bytes = fs::read(&checkpoint).unwrap();
    fs::write(&checkpoint, &bytes[..bytes.len() / 2]).unwrap();
    assert_bad_input(&["run", "--table", t], &needle);
    fs::write(&checkpoint, &bytes).unwrap();
    let last = support::commits(&table).pop().unwrap();
    fs::write(last, "{\"add\": {\"path\": ").unwrap();
    assert_bad_input(&["run", "--table", t], &needle);
}

/// A file whose `EventDate` partition disagrees with its rows is read by what its rows
/// hold (its statistics), not dropped by its partition value.
#[test]
fn a_partition_value_that_disagrees_with_the_rows_loses_no_events() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate(&table, 8_000, 5, 4, 3, 0.0);
    let manifest = |name: &str| {
        let path = dir.path().join(name);
        run_ok(&[
            "run",
            "--table",
            table.to_str().unwrap(),
            "--as-of",
            AS_OF,
            "--quiet",
            "--manifest",
            path.to_str().unwrap(),
        ]);
        serde_json::from_str::<serde_json::Value>(&fs::read_to_string(path).unwrap()).unwrap()
    };
    let before = manifest("before.json");
    // The report day's file claims a day a month after the as-of.
    let last = support::commits(&table).pop().unwrap();
    let text = fs::read_to_string(&last).unwrap();
    let changed = text.replace(
        "\"EventDate\":\"2026-11-27\"",
        "\"EventDate\":\"2026-12-27\"",
    );
    assert_ne!(text, changed, "the last commit adds the report day's file");
    fs::write(&last, changed).unwrap();
    let after = manifest("after.json");
    assert_eq!(after["events"], before["events"]);
    assert_eq!(after["report_groups"], before["report_groups"]);
    assert_eq!(after["model"]["hash"], before["model"]["hash"]);
}

/// A damaged dead-letter file is refused before anything is sent, naming its line, and is
/// kept as it was (issue 27).
#[test]
fn a_damaged_dead_letter_file_is_refused_and_kept() {
    let dir = scratch();
    let path = dir.path().join("procforest-dead-letter-x.jsonl");
    let damaged = "\n{\"TimeGenerated\": \"cut short\n";
    fs::write(&path, damaged).unwrap();
    let out = bin_output(&[
        "resend",
        path.to_str().unwrap(),
        "--monitor-endpoint",
        "https://127.0.0.1:9",
        "--monitor-dcr",
        "dcr-00000000000000000000000000000000",
        "--monitor-stream",
        "Custom-ProcforestAnomalies_CL",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}, line 2", path.display())),
        "{stderr}"
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), damaged);
}
