//! Tables as Spark and Databricks write them: deletion vectors, and the errors when they
//! cannot be trusted.

use std::{fs, path::Path};

use arrow::util::display::array_value_to_string;

use crate::{
    run::{AS_OF, assert_bad_input, run_ok},
    support::{generate, generate_with, read_parquet, scratch},
};

/// A run's answer: its anomalies (JSON lines), every group's count and score, its model,
/// and how its summaries read the files (the manifest's `summary_sources`).
fn answer(
    table: &Path,
    out: &Path,
    name: &str,
    flags: &[&str],
) -> (String, Vec<String>, String, String) {
    let json = out.join(format!("{name}.jsonl"));
    let scores_path = out.join(format!("{name}.parquet"));
    let model = out.join(format!("{name}.model.json"));
    let manifest = out.join(format!("{name}.manifest.json"));
    let mut args = vec![
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
        "--model-out",
        model.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    run_ok(&args);
    let mut groups: Vec<String> = read_parquet(&scores_path)
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |i| {
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, i).unwrap())
                    .collect::<Vec<_>>()
                    .join("|")
            })
        })
        .collect();
    groups.sort();
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(manifest).unwrap()).unwrap();
    (
        fs::read_to_string(json).unwrap(),
        groups,
        fs::read_to_string(model).unwrap(),
        manifest["summary_sources"].to_string(),
    )
}

/// The ways of reading a table the tests compare: key counts over day files, the
/// `GROUP BY` over the scan (hourly intervals: day files span several), the soc preset's
/// scans.
const READS: [(&str, &[&str]); 3] = [
    ("days", &[]),
    ("hours", &["--interval", "hour", "--window", "1d"]),
    ("soc", &["--preset", "soc"]),
];

/// Asserts that `table` gives `reference`'s answer — anomalies, every group's count and
/// score, model, how the summaries read the files — every way of [`READS`], with `extra`
/// flags; runs' outputs go to `out`, named after `label`.
fn assert_same_answers(reference: &Path, table: &Path, out: &Path, label: &str, extra: &[&str]) {
    for (name, flags) in READS {
        let flags: Vec<&str> = flags.iter().chain(extra).copied().collect();
        let expected = answer(reference, out, &format!("{label}-{name}-reference"), &flags);
        let got = answer(table, out, &format!("{label}-{name}"), &flags);
        // The small tables' soc threshold may flag nothing; the notebook's always flags.
        assert!(
            name == "soc" || !expected.0.is_empty(),
            "{label} {name}: some anomalies"
        );
        assert_eq!(got.0, expected.0, "{label} {name}: anomalies");
        assert!(
            got.1 == expected.1,
            "{label} {name}: group counts and scores"
        );
        assert_eq!(got.2, expected.2, "{label} {name}: model");
        assert_eq!(
            got.3, expected.3,
            "{label} {name}: the files are read the same way"
        );
    }
}

/// The generator's duplicates, deleted with deletion vectors, leave exactly the table
/// generated without them: every way of reading it gives that table's answer.
#[test]
fn deleted_rows_give_the_answer_of_the_table_without_them() {
    let dir = scratch();
    let with = dir.path().join("with_vectors");
    // Eight days: the vectors' commit is version 9, which gets a checkpoint.
    let summary = generate_with(&with, 40_000, 8, 15, 9, 0.05, &["--duplicates", "0.05"]);
    assert!(
        with.join("_delta_log/00000000000000000009.checkpoint.parquet")
            .is_file()
    );
    let deleted = &summary["deleted"];
    let files = deleted["files"].as_u64().unwrap();
    let inline = deleted["inline"].as_u64().unwrap();
    assert!(
        files >= 4 && inline >= 2 && files - inline >= 2,
        "{summary}"
    );
    assert!(deleted["rows"].as_u64().unwrap() > 1_000, "{summary}");
    let without = dir.path().join("without");
    generate(&without, 40_000, 8, 15, 9, 0.05);
    assert_eq!(
        crate::support::count_live_rows(&with),
        crate::support::count_delta_rows(&without),
        "delta-rs reads the vectors we wrote as deleting the duplicates"
    );

    for partitions in ["1", "3"] {
        let label = format!("vectors-{partitions}");
        assert_same_answers(
            &without,
            &with,
            dir.path(),
            &label,
            &["--partitions", partitions],
        );
    }
}

/// A stored vector whose bytes were damaged, or whose file is gone, stops the run naming
/// the data file and the vector file; nothing is written.
#[test]
fn a_corrupt_or_missing_vector_file_is_named() {
    let dir = scratch();
    let table = dir.path().join("events");
    generate_with(&table, 8_000, 3, 5, 2, 0.0, &["--duplicates", "0.05"]);
    let vectors: Vec<_> = fs::read_dir(&table)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    assert_eq!(vectors.len(), 1, "one shared vector file");
    let name = vectors[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let mut bytes = fs::read(&vectors[0]).unwrap();
    bytes[12] ^= 0x40;
    fs::write(&vectors[0], &bytes).unwrap();
    let args = ["run", "--table", table.to_str().unwrap(), "--as-of", AS_OF];
    assert_bad_input(&args, "checksum mismatch");
    assert_bad_input(&args, &name);
    assert_bad_input(&args, "the deletion vector of file EventDate=");

    fs::remove_file(&vectors[0]).unwrap();
    assert_bad_input(&args, &format!("{name} is named in the log but missing"));
}

/// A copy of a table with column mapping (`name` and `id` modes), two of its columns
/// renamed since (the files still call them `Hostname` and `ProcessCommandLine`, the others
/// `col-<uuid>`), reads by the table's names and gives the original's answer.
#[test]
fn a_column_mapped_table_with_renamed_columns_gives_the_unmapped_answer() {
    use procforest_datasets::column_mapping::{Mode, copy_with_mapping};
    let dir = scratch();
    let plain = dir.path().join("plain");
    generate(&plain, 30_000, 4, 12, 4, 0.05);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for mode in [Mode::Name, Mode::Id] {
        let mapped = dir.path().join(format!("{mode:?}"));
        let names = runtime
            .block_on(copy_with_mapping(
                plain.to_str().unwrap(),
                mapped.to_str().unwrap(),
                mode,
            ))
            .unwrap();
        assert_eq!(names["Computer"], "Hostname");
        // The copy's files name no column as the table does.
        let file = crate::support::data_files(&mapped).remove(0);
        let columns: Vec<String> = crate::support::read_parquet(&file)[0]
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert!(
            columns.contains(&"ProcessCommandLine".to_string()),
            "{columns:?}"
        );
        assert!(
            !columns.iter().any(|c| names.contains_key(c)),
            "{columns:?}"
        );

        assert_same_answers(&plain, &mapped, dir.path(), &format!("{mode:?}"), &[]);
    }
}

/// Tables laid out as users' are — twenty files a day (streaming ingestion), no partition
/// column (liquid clustering), `TimeGenerated` as `timestamp_ntz` (read as UTC) — give the
/// day-partitioned table's answer, their summaries still reading whole days.
#[test]
fn tables_laid_out_as_users_write_them_give_the_same_answer() {
    let dir = scratch();
    let plain = dir.path().join("plain");
    generate(&plain, 30_000, 4, 12, 6, 0.05);
    let laid_out = dir.path().join("laid_out");
    let flags = ["--files-per-day", "20", "--unpartitioned", "--naive-time"];
    generate_with(&laid_out, 30_000, 4, 12, 6, 0.05, &flags);
    let files = crate::support::count_files(&laid_out);
    assert_eq!(files, 80, "twenty files a day");
    assert_same_answers(&plain, &laid_out, dir.path(), "laid-out", &[]);
}

/// Spark writes timestamps as Parquet INT96 by default: a table whose `TimeGenerated` is
/// INT96 (`cli/tests/fixtures/int96-events`, made by `make_int96.py` from a generated
/// table) gives the answers of the same table with it in microseconds, every way of
/// reading it.
#[test]
fn spark_int96_timestamps_read_as_the_microseconds_they_hold() {
    let dir = scratch();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/int96-events");
    let int96 = dir.path().join("int96");
    crate::support::copy_dir(&fixture, &int96);
    let first = crate::support::data_files(&int96)[0].clone();
    let reader =
        parquet::file::serialized_reader::SerializedFileReader::new(fs::File::open(first).unwrap())
            .unwrap();
    let columns = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .schema_descr()
        .columns()
        .to_vec();
    let time = columns
        .iter()
        .find(|c| c.name() == "TimeGenerated")
        .unwrap();
    let physical = time.physical_type();
    assert_eq!(
        physical,
        parquet::basic::Type::INT96,
        "the fixture is Spark's layout"
    );
    let micros = dir.path().join("micros");
    crate::support::copy_with_microsecond_time(&int96, &micros);
    assert_same_answers(&micros, &int96, dir.path(), "int96", &[]);
}

/// Row tracking, as Databricks turns it on (writer version 7 with `rowTracking` and
/// `domainMetadata`, `delta.enableRowTracking`), is a writer feature: the table gives the
/// same answers every way of reading it.
#[test]
fn a_table_with_row_tracking_reads_as_without() {
    let dir = scratch();
    let plain = dir.path().join("plain");
    generate(&plain, 8_000, 3, 6, 3, 0.05);
    let tracked = dir.path().join("tracked");
    crate::support::copy_dir(&plain, &tracked);
    crate::support::commit_protocol_and_metadata(&tracked, |protocol, metadata| {
        *protocol = serde_json::json!({
            "minReaderVersion": 1,
            "minWriterVersion": 7,
            "writerFeatures": ["rowTracking", "domainMetadata", "appendOnly", "invariants"],
        });
        metadata["configuration"]["delta.enableRowTracking"] = "true".into();
        metadata["configuration"]["delta.rowTracking.materializedRowIdColumnName"] =
            "_row-id-col-3c5c8c51-0d4a-4a7e-9f3b-5d8e3a2b1c0d".into();
    });
    assert_same_answers(&plain, &tracked, dir.path(), "tracked", &[]);
}

/// Type widening on a column procforest never reads changes nothing; on one it reads,
/// the table is refused naming the column. A reader feature nobody knows is refused.
#[test]
fn widened_types_and_unknown_reader_features() {
    use crate::support::{commit_protocol_and_metadata, set_field};
    let dir = scratch();
    let plain = dir.path().join("plain");
    generate(&plain, 8_000, 3, 6, 3, 0.05);
    let expected = answer(&plain, dir.path(), "plain", &[]);

    let widen = |protocol: &mut serde_json::Value| {
        *protocol = serde_json::json!({
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["typeWidening"],
            "writerFeatures": ["typeWidening"],
        });
    };
    let unread = dir.path().join("unread");
    crate::support::copy_dir(&plain, &unread);
    commit_protocol_and_metadata(&unread, |protocol, metadata| {
        widen(protocol);
        metadata["configuration"]["delta.enableTypeWidening"] = "true".into();
        let change = serde_json::json!([{"fromType": "integer", "toType": "long"}]);
        set_field(
            metadata,
            "EventID",
            "long",
            serde_json::json!({"delta.typeChanges": change}),
        );
    });
    let got = answer(&unread, dir.path(), "unread", &[]);
    assert_eq!(got.0, expected.0);
    assert!(got.1 == expected.1);

    let read = dir.path().join("read");
    crate::support::copy_dir(&plain, &read);
    commit_protocol_and_metadata(&read, |protocol, metadata| {
        widen(protocol);
        for features in ["readerFeatures", "writerFeatures"] {
            protocol[features] = serde_json::json!(["typeWidening", "timestampNtz"]);
        }
        let change = serde_json::json!([{"fromType": "date", "toType": "timestamp_ntz"}]);
        set_field(
            metadata,
            "TimeGenerated",
            "timestamp_ntz",
            serde_json::json!({"delta.typeChanges": change}),
        );
    });
    assert_bad_input(
        &["run", "--table", read.to_str().unwrap(), "--as-of", AS_OF],
        "the type of column TimeGenerated, which procforest reads, was widened",
    );

    let unknown = dir.path().join("unknown");
    crate::support::copy_dir(&plain, &unknown);
    commit_protocol_and_metadata(&unknown, |protocol, _| {
        *protocol = serde_json::json!({
            "minReaderVersion": 3,
            "minWriterVersion": 7,
            "readerFeatures": ["aFeatureFromTheFuture"],
            "writerFeatures": ["aFeatureFromTheFuture"],
        });
    });
    assert_bad_input(
        &[
            "run",
            "--table",
            unknown.to_str().unwrap(),
            "--as-of",
            AS_OF,
        ],
        "aFeatureFromTheFuture",
    );
}
