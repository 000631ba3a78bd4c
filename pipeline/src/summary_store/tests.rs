use std::collections::BTreeMap;

use arrow::array::{Array, Int64Array, TimestampMicrosecondArray};
use procforest_core::scan::ResolvedFile;

use super::*;

const DAY: i64 = 86_400_000_000;

fn file(name: &str, bounds: Option<(i64, i64)>) -> ResolvedFile {
    ResolvedFile {
        url: format!("file:///t/{name}.parquet"),
        size: 100,
        partition_values: Vec::new(),
        num_records: Some(10),
        time_bounds: bounds,
        time_nulls: Some(0),
        deleted_rows: None,
    }
}

fn table(files: Vec<ResolvedFile>) -> ResolvedTable {
    ResolvedTable {
        table_url: "file:///t/".into(),
        version: 3,
        partition_columns: Vec::new(),
        files,
        physical_names: Default::default(),
    }
}

/// One file a day for days 0..4.
fn days() -> Vec<ResolvedFile> {
    (0..4)
        .map(|d| file(&format!("d{d}"), Some((d * DAY + 5, d * DAY + 500))))
        .collect()
}

fn prints(files: Vec<ResolvedFile>) -> Fingerprints {
    fingerprints(&table(files), Interval::Day, Some(-1), 4 * DAY - 1).unwrap()
}

/// The intervals whose fingerprints differ between `a` and `b` (or are in one only).
fn changed(a: &Fingerprints, b: &Fingerprints) -> Vec<i64> {
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).copied().collect();
    keys.into_iter()
        .filter(|k| a.get(k) != b.get(k))
        .map(|k| k / DAY)
        .collect()
}

#[test]
fn a_late_file_changes_its_day_alone() {
    let before = prints(days());
    assert_eq!(before.len(), 4);
    let mut files = days();
    files.push(file("late", Some((DAY + 7, DAY + 9))));
    assert_eq!(changed(&before, &prints(files)), [1]);
}

#[test]
fn a_compaction_changes_the_days_its_files_span() {
    let before = prints(days());
    let mut files = days();
    files.retain(|f| !f.url.contains("d1") && !f.url.contains("d2"));
    files.push(file("compacted", Some((DAY + 5, 2 * DAY + 500))));
    assert_eq!(changed(&before, &prints(files)), [1, 2]);
}

#[test]
fn deleted_rows_and_a_dropped_day_change_their_days() {
    let before = prints(days());
    let mut files = days();
    let deleted = roaring::RoaringTreemap::from_iter([3u64]);
    files[2].deleted_rows =
        Some(procforest_core::deleted_rows::DeletedRows::new(10, deleted).unwrap());
    assert_eq!(changed(&before, &prints(files)), [2]);
    let mut files = days();
    files.remove(3);
    let after = prints(files);
    assert_eq!(changed(&before, &after), [3]);
    assert!(!after.contains_key(&(3 * DAY)));
}

#[test]
fn an_interval_cut_by_the_window_differs_from_a_whole_one() {
    let whole = prints(days());
    let cut = fingerprints(&table(days()), Interval::Day, Some(DAY + 100), 4 * DAY - 1).unwrap();
    // Day 0 leaves the window, day 1 is cut, days 2 and 3 are the same.
    assert_eq!(changed(&whole, &cut), [0, 1]);
    assert!(!cut.contains_key(&0));
}

#[test]
fn files_without_statistics_leave_intervals_unknown() {
    let mut files = days();
    files.push(file("unknown", None));
    assert!(fingerprints(&table(files.clone()), Interval::Day, None, 4 * DAY).is_none());
    // Unless every one of its times is null: then it holds no interval's events.
    files.last_mut().unwrap().time_nulls = Some(10);
    let known = fingerprints(&table(files), Interval::Day, None, 4 * DAY).unwrap();
    assert_eq!(known, prints(days()));
}

#[test]
fn the_files_of_intervals_are_those_that_may_hold_them() {
    let mut files = days();
    files.push(file("span", Some((2 * DAY, 3 * DAY + 1))));
    files.push(file("unknown", None));
    let kept = files_of_intervals(&table(files), &[3 * DAY], Interval::Day, (None, 4 * DAY));
    let names: Vec<_> = kept.files.iter().map(|f| f.url.as_str()).collect();
    assert_eq!(
        names,
        [
            "file:///t/d3.parquet",
            "file:///t/span.parquet",
            "file:///t/unknown.parquet"
        ]
    );
}

#[test]
fn interval_ids_name_days_and_hours() {
    assert_eq!(interval_id(Interval::Day, 3 * DAY), "1970-01-04");
    assert_eq!(
        interval_id(Interval::Hour, DAY + 13 * 3_600_000_000),
        "1970-01-02T13"
    );
}

/// Summary rows: one per (day, computer), count = day + 1.
fn rows(days: &[i64], computer: &str) -> RecordBatch {
    let n = days.len();
    let strings = |v: &str| Arc::new(StringArray::from(vec![Some(v); n])) as Arc<dyn Array>;
    RecordBatch::try_new(
        rows_schema(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(days.iter().map(|d| d * DAY).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            strings(computer),
            strings("a"),
            strings("User"),
            strings("cmd.exe"),
            Arc::new(Int64Array::from(
                days.iter().map(|d| d + 1).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn counts(batch: RecordBatch) -> Computed {
    Computed(vec![(Kind::Counts, vec![batch])])
}

fn state(prints: &Fingerprints) -> StoredState {
    StoredState {
        format: FORMAT,
        source: "file:///t/".into(),
        source_version: 3,
        interval: Interval::Day,
        fingerprints: prints.clone(),
        line_fingerprints: Default::default(),
    }
}

async fn stored_rows(store: &SummaryStore, intervals: &[i64]) -> BTreeMap<(i64, String), i64> {
    let files = store
        .files_of(Kind::Counts, intervals, Interval::Day)
        .unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    let mut out = BTreeMap::new();
    for file in files {
        let path = url::Url::parse(&file).unwrap().to_file_path().unwrap();
        let batches = ctx
            .read_parquet(path.to_str().unwrap(), Default::default())
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        for b in batches {
            let t =
                arrow::compute::cast(b.column_by_name(INTERVAL).unwrap(), &time_type()).unwrap();
            let t = t.as_primitive::<TimestampMicrosecondType>();
            let c =
                arrow::compute::cast(b.column_by_name(COMPUTER).unwrap(), &DataType::Utf8).unwrap();
            let c = c.as_string::<i32>();
            let n = b
                .column_by_name(COUNT)
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>();
            for i in 0..b.num_rows() {
                out.insert((t.value(i) / DAY, c.value(i).to_string()), n.value(i));
            }
        }
    }
    out
}

/// Where a test's summaries table goes in `dir`.
fn store_location(dir: &tempfile::TempDir) -> String {
    dir.path().join("summaries").to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_store_keeps_unchanged_days_and_replaces_the_counted_ones() {
    let dir = tempfile::tempdir().unwrap();
    let location = &store_location(&dir);
    let first = prints(days());

    // A new table: every interval counted, the table rebuilt.
    let store = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let reuse = store.reuse(&first, "file:///t/", Interval::Day, 3 * DAY, false);
    assert!(reuse.rebuild);
    assert_eq!(reuse.counts.counted.len(), 4);
    let saved = store
        .save(counts(rows(&[0, 1, 2, 3], "h")), &reuse, &state(&first))
        .await
        .unwrap();
    assert_eq!(saved.rows, 4);

    // Day 1 gains a late file and day 3 (the report) is counted again: days 0 and 2 are read.
    let mut files = days();
    files.push(file("late", Some((DAY + 7, DAY + 9))));
    let second = prints(files);
    let store = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let reuse = store.reuse(&second, "file:///t/", Interval::Day, 3 * DAY, false);
    assert!(!reuse.rebuild);
    assert_eq!(reuse.counts.stored, [0, 2 * DAY]);
    assert_eq!(reuse.counts.counted, [DAY, 3 * DAY]);
    store
        .save(counts(rows(&[1, 3], "late")), &reuse, &state(&second))
        .await
        .unwrap();

    let store = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let all = [0, DAY, 2 * DAY, 3 * DAY];
    let expected: BTreeMap<_, _> = [(0, "h"), (1, "late"), (2, "h"), (3, "late")]
        .map(|(d, c)| ((d, c.to_string()), d + 1))
        .into();
    assert_eq!(stored_rows(&store, &all).await, expected);
    // Nothing changed since: the history is read, the report counted.
    let reuse = store.reuse(&second, "file:///t/", Interval::Day, 3 * DAY, false);
    assert_eq!(reuse.counts.stored, [0, DAY, 2 * DAY]);

    // Another source, or another interval, rebuilds.
    assert!(
        store
            .reuse(&second, "file:///u/", Interval::Day, 3 * DAY, false)
            .rebuild
    );
    assert!(
        store
            .reuse(&second, "file:///t/", Interval::Hour, 3 * DAY, false)
            .rebuild
    );

    // Day 0 left the window: its rows are dropped.
    let mut third = second.clone();
    third.remove(&0);
    let reuse = store.reuse(&third, "file:///t/", Interval::Day, 3 * DAY, false);
    assert_eq!(reuse.counts.vanished, [0]);
    store
        .save(counts(rows(&[3], "late")), &reuse, &state(&third))
        .await
        .unwrap();
    let store = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    assert!(
        !stored_rows(&store, &all)
            .await
            .contains_key(&(0, "h".to_string()))
    );
}

#[tokio::test]
async fn of_two_runs_saving_at_once_one_commits_and_the_other_leaves_it() {
    let dir = tempfile::tempdir().unwrap();
    let location = &store_location(&dir);
    let first = prints(days());
    let store = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let reuse = store.reuse(&first, "file:///t/", Interval::Day, 3 * DAY, false);
    store
        .save(counts(rows(&[0, 1, 2, 3], "h")), &reuse, &state(&first))
        .await
        .unwrap();

    // Both open the same version; the first commits, the second finds it changed.
    let a = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let b = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let reuse = a.reuse(&first, "file:///t/", Interval::Day, 3 * DAY, false);
    let saved_a = a
        .save(counts(rows(&[3], "a")), &reuse, &state(&first))
        .await
        .unwrap();
    let saved_b = b
        .save(counts(rows(&[3], "b")), &reuse, &state(&first))
        .await
        .unwrap();
    assert!(saved_a.version.is_some());
    assert_eq!(saved_b.version, None);
    let store = SummaryStore::open(location, Default::default())
        .await
        .unwrap();
    let day3 = stored_rows(&store, &[3 * DAY]).await;
    assert_eq!(day3.keys().map(|k| k.1.as_str()).collect::<Vec<_>>(), ["a"]);
}

#[tokio::test]
async fn another_table_is_refused_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("other");
    let schema: StructType = (&Schema::new(vec![Field::new("x", DataType::Int64, true)]))
        .try_into_kernel()
        .unwrap();
    DeltaTableBuilder::from_url(
        crate::source::table_url_for_write(location.to_str().unwrap()).unwrap(),
    )
    .unwrap()
    .build()
    .unwrap()
    .create()
    .with_columns(schema.fields().cloned())
    .await
    .unwrap();
    let error = SummaryStore::open(location.to_str().unwrap(), Default::default())
        .await
        .err()
        .unwrap();
    assert!(
        error.to_string().contains("not a summaries table"),
        "{error}"
    );
    assert!(error.to_string().contains("summaries"), "{error}");
}

/// Command-line rows: one per day, template `t<day>`.
fn line_rows(days: &[i64]) -> RecordBatch {
    let n = days.len();
    let strings = |v: &str| Arc::new(StringArray::from(vec![Some(v); n])) as Arc<dyn Array>;
    let templates: Vec<String> = days.iter().map(|d| format!("t{d}")).collect();
    RecordBatch::try_new(
        Kind::Lines.schema(),
        vec![
            Arc::new(
                TimestampMicrosecondArray::from(days.iter().map(|d| d * DAY).collect::<Vec<_>>())
                    .with_timezone("UTC"),
            ),
            strings("h"),
            strings("a"),
            strings("User"),
            strings("cmd.exe"),
            strings("explorer.exe"),
            Arc::new(StringArray::from(templates)),
            Arc::new(Int64Array::from(vec![1; n])),
            Arc::new(Int64Array::from(vec![10; n])),
            Arc::new(arrow::array::Float64Array::from(vec![2.5; n])),
            Arc::new(Int64Array::from(vec![1; n])),
        ],
    )
    .unwrap()
}

#[tokio::test]
async fn command_line_rows_are_kept_by_runs_that_do_not_compute_them() {
    let dir = tempfile::tempdir().unwrap();
    let location = &store_location(&dir);
    let prints = prints(days());
    let open = || SummaryStore::open(location, Default::default());
    let source = "file:///t/";
    let lines_of = |store: &SummaryStore| {
        store
            .files_of(Kind::Lines, &[0, DAY, 2 * DAY, 3 * DAY], Interval::Day)
            .unwrap()
            .len()
    };

    // A run with the evidence features writes both kinds.
    let store = open().await.unwrap();
    let reuse = store.reuse(&prints, source, Interval::Day, 3 * DAY, true);
    let incremental = Incremental {
        store,
        fingerprints: prints.clone(),
        reuse: reuse.clone(),
        stored_files: Vec::new(),
        stored_evidence: Vec::new(),
    };
    let state = incremental.state(source, 3, Interval::Day);
    assert_eq!(state.line_fingerprints, prints);
    let computed = Computed(vec![
        (Kind::Counts, vec![rows(&[0, 1, 2, 3], "h")]),
        (Kind::Lines, vec![line_rows(&[0, 1, 2, 3])]),
    ]);
    incremental
        .store
        .save(computed, &reuse, &state)
        .await
        .unwrap();

    // A run without them counts the report again and leaves the command-line rows.
    let store = open().await.unwrap();
    assert_eq!(lines_of(&store), 4);
    let reuse = store.reuse(&prints, source, Interval::Day, 3 * DAY, false);
    assert_eq!(reuse.evidence, None);
    let incremental = Incremental {
        store,
        fingerprints: prints.clone(),
        reuse: reuse.clone(),
        stored_files: Vec::new(),
        stored_evidence: Vec::new(),
    };
    let state = incremental.state(source, 3, Interval::Day);
    assert_eq!(state.line_fingerprints, prints);
    incremental
        .store
        .save(counts(rows(&[3], "h")), &reuse, &state)
        .await
        .unwrap();

    // The next run with them reads the history's command-line rows.
    let store = open().await.unwrap();
    assert_eq!(lines_of(&store), 4);
    let reuse = store.reuse(&prints, source, Interval::Day, 3 * DAY, true);
    assert_eq!(reuse.evidence.as_ref().unwrap().stored, [0, DAY, 2 * DAY]);
    assert_eq!(reuse.evidence.as_ref().unwrap().counted, [3 * DAY]);

    // A rebuild without them drops every command-line row and its fingerprints.
    let reuse = store.reuse(&prints, "file:///u/", Interval::Day, 3 * DAY, false);
    assert!(reuse.rebuild);
    let incremental = Incremental {
        store,
        fingerprints: prints.clone(),
        reuse: reuse.clone(),
        stored_files: Vec::new(),
        stored_evidence: Vec::new(),
    };
    let state = incremental.state("file:///u/", 3, Interval::Day);
    assert!(state.line_fingerprints.is_empty());
    incremental
        .store
        .save(counts(rows(&[0, 1, 2, 3], "h")), &reuse, &state)
        .await
        .unwrap();
    assert_eq!(lines_of(&open().await.unwrap()), 0);
}
