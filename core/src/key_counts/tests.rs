//! Key counts against counts made by hand, over Parquet files written here.

use std::{collections::BTreeMap, path::Path, sync::Arc};

use arrow::{
    array::{
        Array, ArrayRef, AsArray, Int32Array, LargeStringArray, RecordBatch, StringArray,
        TimestampMicrosecondArray, TimestampMillisecondArray,
    },
    datatypes::{DataType, Field, Int64Type, Schema, TimeUnit, TimestampMicrosecondType},
};
use datafusion::{
    physical_plan::{ExecutionPlanProperties, collect_partitioned},
    prelude::{SessionConfig, SessionContext},
};
use parquet::{arrow::ArrowWriter, file::properties::WriterProperties};

use super::*;
use crate::scan::ResolvedFile;

const DAY: i64 = 86_400_000_000;
/// 2026-11-01T00:00:00Z.
const START: i64 = 1_793_491_200_000_000;

/// One event: time, then the four keys.
type Event = (Option<i64>, [Option<&'static str>; 4]);
/// Interval start and keys → count.
type Expected = BTreeMap<(i64, [Option<String>; 4]), i64>;

const COMPUTERS: [Option<&str>; 4] = [Some("ws1"), Some("ws2"), Some(""), None];
const ACCOUNTS: [Option<&str>; 3] = [Some("alice"), Some("bob"), None];
const TYPES: [Option<&str>; 2] = [Some("User"), Some("Machine")];
const PROCESSES: [Option<&str>; 3] = [Some("cmd.exe"), Some("powershell.exe"), None];

/// `n` events of day `day`, keys cycling at different rates, every 7th without a time
/// when `null_times`.
fn events(day: i64, n: usize, null_times: bool) -> Vec<Event> {
    (0..n)
        .map(|i| {
            let time =
                (!(null_times && i % 7 == 3)).then_some(START + day * DAY + i as i64 * 1_000_000);
            let keys = [
                COMPUTERS[i % 4],
                ACCOUNTS[(i / 2) % 3],
                TYPES[(i / 5) % 2],
                PROCESSES[(i * 7 / 3) % 3],
            ];
            (time, keys)
        })
        .collect()
}

/// How a test file stores its columns.
#[derive(Clone, Copy)]
struct Layout {
    /// The keys as `LargeUtf8` rather than `Utf8`.
    large: bool,
    /// No dictionary pages (plain-encoded strings).
    plain: bool,
    /// The time in milliseconds rather than microseconds.
    millis: bool,
    /// Without the `Process` column.
    no_process: bool,
    /// Without the `CommandLine` column.
    no_lines: bool,
}

const USUAL: Layout = Layout {
    large: false,
    plain: false,
    millis: false,
    no_process: false,
    no_lines: false,
};

/// The command line of a file's row `i` (in every test file): repeated, empty, null,
/// and not only ASCII.
fn command_line(i: usize) -> Option<String> {
    match i % 7 {
        0 => None,
        1 | 4 => Some("cmd.exe /c whoami".into()),
        2 => Some(String::new()),
        3 => Some(format!("powershell.exe -enc {}", i % 5)),
        5 => Some("Ärger.exe \"C:\\x\"".into()),
        _ => Some(format!("z{}", i % 3)),
    }
}

/// A string column of `values`, `LargeUtf8` when `large`.
fn strings(values: Vec<Option<&str>>, large: bool) -> (DataType, ArrayRef) {
    if large {
        (
            DataType::LargeUtf8,
            Arc::new(LargeStringArray::from(values)),
        )
    } else {
        (DataType::Utf8, Arc::new(StringArray::from(values)))
    }
}

/// Writes `events` as a Parquet file and describes it as the Delta log would.
fn write_file(dir: &Path, name: &str, events: &[Event], layout: Layout) -> ResolvedFile {
    let time_type = |unit| DataType::Timestamp(unit, Some("UTC".into()));
    let unit = if layout.millis {
        TimeUnit::Millisecond
    } else {
        TimeUnit::Microsecond
    };
    let mut fields = vec![
        Field::new(crate::schema::TIME_GENERATED, time_type(unit), true),
        Field::new("EventID", DataType::Int32, false),
    ];
    let times: Vec<Option<i64>> = events.iter().map(|e| e.0).collect();
    let time: ArrayRef = if layout.millis {
        Arc::new(
            TimestampMillisecondArray::from(
                times
                    .iter()
                    .map(|t| t.map(|t| t / 1000))
                    .collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        )
    } else {
        Arc::new(TimestampMicrosecondArray::from(times.clone()).with_timezone("UTC"))
    };
    let mut columns = vec![
        time,
        Arc::new(Int32Array::from(vec![4688; events.len()])) as ArrayRef,
    ];
    for (k, key) in GROUP_KEYS.iter().enumerate() {
        if layout.no_process && *key == crate::schema::PROCESS {
            continue;
        }
        let values: Vec<Option<&str>> = events.iter().map(|e| e.1[k]).collect();
        let (data_type, array) = strings(values, layout.large);
        fields.push(Field::new(*key, data_type, true));
        columns.push(array);
    }
    if !layout.no_lines {
        let lines: Vec<Option<String>> = (0..events.len()).map(command_line).collect();
        let (data_type, array) =
            strings(lines.iter().map(Option::as_deref).collect(), layout.large);
        fields.push(Field::new(crate::schema::COMMAND_LINE, data_type, true));
        columns.push(array);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_batch(&dir.join(name), &batch, layout.plain, &times)
}

/// Writes `batch`, whose rows have `times`, as a Parquet file (row groups of 100 rows,
/// dictionary pages unless `plain`) and describes it as the Delta log would.
fn write_batch(
    path: &Path,
    batch: &RecordBatch,
    plain: bool,
    times: &[Option<i64>],
) -> ResolvedFile {
    let properties = WriterProperties::builder()
        .set_dictionary_enabled(!plain)
        .set_max_row_group_row_count(Some(100))
        .build();
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(path).unwrap(),
        batch.schema(),
        Some(properties),
    )
    .unwrap();
    // Several small batches, so that row groups and reader batches both split.
    for offset in (0..batch.num_rows()).step_by(64) {
        writer
            .write(&batch.slice(offset, 64.min(batch.num_rows() - offset)))
            .unwrap();
    }
    writer.close().unwrap();
    let valid: Vec<i64> = times.iter().flatten().copied().collect();
    ResolvedFile {
        url: url::Url::from_file_path(path).unwrap().to_string(),
        size: std::fs::metadata(path).unwrap().len(),
        partition_values: Vec::new(),
        num_records: Some(times.len() as u64),
        time_bounds: Some((*valid.iter().min().unwrap(), *valid.iter().max().unwrap())),
        time_nulls: Some((times.len() - valid.len()) as u64),
        deleted_rows: None,
    }
}

fn expected(files: &[Vec<Event>], window: TimeWindow) -> Expected {
    let mut expected = Expected::new();
    for events in files {
        for (time, keys) in events {
            let Some(time) = *time else { continue };
            if !window.contains(time) {
                continue;
            }
            let keys = keys.map(|k| k.map(str::to_string));
            *expected
                .entry((time.div_euclid(DAY) * DAY, keys))
                .or_default() += 1;
        }
    }
    expected
}

async fn key_counts(table: KeyCountsTable, partitions: usize) -> Expected {
    groups(table, partitions)
        .await
        .into_iter()
        .map(|(group, (count, _))| (group, count))
        .collect()
}

/// Interval start and keys → count and distinct sorted command lines (`None`: none).
type ExpectedLines = BTreeMap<(i64, [Option<String>; 4]), (i64, Option<Vec<String>>)>;

/// The table's rows by group: their counts, and their command lines when it gathers them
/// (`None` otherwise).
async fn groups(table: KeyCountsTable, partitions: usize) -> ExpectedLines {
    let schema = table.schema();
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(50);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("counts", Arc::new(table)).unwrap();
    let batches = ctx.table("counts").await.unwrap().collect().await.unwrap();
    let mut got = ExpectedLines::new();
    for batch in batches {
        assert_eq!(batch.schema(), schema);
        let interval = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        let count = batch.column(5).as_primitive::<Int64Type>();
        let lines = batch
            .column_by_name(COMMAND_LINES)
            .map(|c| c.as_list::<i32>());
        for row in 0..batch.num_rows() {
            let keys: [Option<String>; 4] = std::array::from_fn(|k| {
                let column = batch.column(k + 1).as_string::<i32>();
                column.is_valid(row).then(|| column.value(row).to_string())
            });
            let row_lines = lines.filter(|l| l.is_valid(row)).map(|lines| {
                let values = lines.value(row);
                let values = values.as_string::<i32>();
                assert_eq!(values.null_count(), 0, "no null line in a list");
                values.iter().flatten().map(str::to_string).collect()
            });
            let previous = got.insert((interval.value(row), keys), (count.value(row), row_lines));
            assert!(previous.is_none(), "a group came out twice");
        }
    }
    got
}

/// Writes each day's events as a file, in its layout.
fn write_days(dir: &Path, days: &[Vec<Event>], layouts: &[Layout]) -> Vec<ResolvedFile> {
    days.iter()
        .zip(layouts)
        .enumerate()
        .map(|(i, (events, layout))| write_file(dir, &format!("f{i}.parquet"), events, *layout))
        .collect()
}

fn table(files: Vec<ResolvedFile>, window: TimeWindow) -> KeyCountsTable {
    let resolved = ResolvedTable {
        physical_names: Default::default(),
        table_url: "file:///unused/".into(),
        version: 0,
        partition_columns: Vec::new(),
        files,
    };
    KeyCountsTable::try_new(resolved, DAY, window).unwrap()
}

#[tokio::test]
async fn counts_equal_hand_counts_whatever_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    // Four days, day 1 in two files; null times and null and empty keys throughout.
    let days: Vec<Vec<Event>> = vec![
        events(0, 300, true),
        events(1, 250, true),
        events(1, 120, false),
        events(2, 500, false),
        events(3, 90, true),
    ];
    let layouts = [
        USUAL,
        Layout {
            large: true,
            ..USUAL
        },
        Layout {
            plain: true,
            ..USUAL
        },
        Layout {
            millis: true,
            ..USUAL
        },
        USUAL,
    ];
    let files = write_days(dir.path(), &days, &layouts);
    // The window cuts into day 1 and day 3: their files' times are checked row by row.
    let window = TimeWindow {
        after_us: Some(START + DAY + 100_000_000),
        until_us: START + 3 * DAY + 40_000_000,
    };
    let table = table(files, window);
    let checked: Vec<bool> = table.files.iter().map(|f| f.check_time).collect();
    assert_eq!(
        checked,
        [true, true, true, false, true],
        "null times or cut by the window"
    );
    let want = expected(&days, window);
    assert!(
        want.len() > 40,
        "a test worth running: {} groups",
        want.len()
    );
    for partitions in [1, 2, 3, 8] {
        let got = key_counts(table.clone(), partitions).await;
        assert_eq!(got, want, "{partitions} partitions");
    }
    // One interval's files are read by one partition, whatever the number of partitions.
    for partitions in [2, 3, 8] {
        for files in table.partitions(partitions) {
            for (i, file) in files.iter().enumerate() {
                let later = &files[i..];
                assert!(later.iter().all(|f| f.interval_us >= file.interval_us));
            }
        }
        let homes: BTreeMap<i64, std::collections::BTreeSet<usize>> = table
            .partitions(partitions)
            .iter()
            .enumerate()
            .fold(BTreeMap::new(), |mut homes, (p, files)| {
                for f in files {
                    homes.entry(f.interval_us).or_default().insert(p);
                }
                homes
            });
        assert!(homes.values().all(|p| p.len() == 1), "{homes:?}");
    }
}

/// Intervals shared out by processes ([`KeyCountsTable::split_lone_intervals`]) count
/// each group in one share: the same rows as counted whole, command lines included, no
/// group twice (checked by [`groups`]).
#[tokio::test]
async fn intervals_shared_by_process_count_each_group_once() {
    let dir = tempfile::tempdir().unwrap();
    let days: Vec<Vec<Event>> = vec![
        events(0, 350, true),
        events(1, 250, true),
        events(1, 120, false),
    ];
    let files = write_days(dir.path(), &days, &[USUAL; 3]);
    let window = TimeWindow {
        after_us: None,
        until_us: START + 2 * DAY,
    };
    let whole = table(files, window).with_command_lines();
    let want = groups(whole.clone(), 1).await;
    assert_eq!(
        want.iter()
            .map(|(g, (n, _))| (g.clone(), *n))
            .collect::<Expected>(),
        expected(&days, window)
    );
    assert_eq!(whole.clone().split_lone_intervals(2).partitions(2).len(), 2);
    assert!(
        whole
            .clone()
            .split_lone_intervals(3)
            .partitions(3)
            .iter()
            .flatten()
            .all(|f| f.processes.is_none()),
        "not shared: as many partitions as intervals, or one more"
    );
    for shares in [2, 3] {
        let shared = whole.clone().split_lone_intervals(2 * shares);
        for partitions in [1, 2, 3, 8] {
            let got = groups(shared.clone(), partitions).await;
            assert_eq!(got, want, "{shares} shares on {partitions} partitions");
        }
    }
    // Every process name falls in exactly one share, a null one in the empty one's.
    for name in [None, Some("cmd.exe"), Some("powershell.exe"), Some("")] {
        let holding = (0..3)
            .filter(|&index| ProcessShare { index, of: 3 }.holds(name))
            .count();
        assert_eq!(holding, 1, "{name:?}");
    }
    for index in 0..3 {
        let share = ProcessShare { index, of: 3 };
        assert_eq!(share.holds(None), share.holds(Some("")));
    }
}

/// An interval over [`SHARED_INTERVAL_BYTES`] is shared out only for the evidence, whose
/// templating is worth each share reading the interval; counts alone keep it whole.
#[test]
fn a_large_interval_is_shared_only_for_the_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = write_days(dir.path(), &[events(0, 40, true)], &[USUAL]);
    // The sizes are only compared here, never read.
    files[0].size = SHARED_INTERVAL_BYTES + 1;
    let window = TimeWindow {
        after_us: None,
        until_us: START + DAY,
    };
    let shared = |table: KeyCountsTable| {
        let placed = table.split_lone_intervals(4).partitions(4);
        placed
            .iter()
            .flatten()
            .filter(|f| f.processes.is_some())
            .count()
    };
    let counts = table(files.clone(), window);
    assert_eq!(shared(counts.clone()), 0, "counts");
    assert_eq!(shared(counts.with_command_lines()), 0, "command lines");
    assert_eq!(
        shared(table(files, window).gathering(Gathered::Evidence)),
        4,
        "evidence"
    );
}

#[tokio::test]
async fn a_missing_key_column_counts_as_null() {
    let dir = tempfile::tempdir().unwrap();
    let day = events(0, 200, false);
    let file = write_file(
        dir.path(),
        "old.parquet",
        &day,
        Layout {
            no_process: true,
            ..USUAL
        },
    );
    let window = TimeWindow {
        after_us: None,
        until_us: START + DAY,
    };
    let without_process: Vec<Event> = day
        .iter()
        .map(|(t, k)| (*t, [k[0], k[1], k[2], None]))
        .collect();
    let got = key_counts(table(vec![file], window), 2).await;
    assert_eq!(got, expected(&[without_process], window));
}

/// An interval in more files than are read ahead (`read_ahead`): each file is counted
/// once, in order, whatever the layout of each; a file gone from the store names itself.
#[tokio::test]
async fn an_interval_in_many_small_files_counts_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let layouts = [
        USUAL,
        Layout {
            large: true,
            ..USUAL
        },
        Layout {
            plain: true,
            ..USUAL
        },
    ];
    let day: Vec<Event> = events(0, 1_300, true);
    let mut days: Vec<Vec<Event>> = day.chunks(100).map(<[Event]>::to_vec).collect();
    days.push(events(1, 150, false));
    let file_layouts: Vec<Layout> = (0..days.len()).map(|i| layouts[i % 3]).collect();
    let files = write_days(dir.path(), &days, &file_layouts);
    let window = TimeWindow {
        after_us: None,
        until_us: START + 2 * DAY,
    };
    let table = table(files.clone(), window);
    let want = expected(&days, window);
    for partitions in [1, 2] {
        assert_eq!(key_counts(table.clone(), partitions).await, want);
    }
    let lines = groups(table.clone().gathering(Gathered::CommandLines), 2).await;
    assert_eq!(
        lines,
        expected_lines(&days, &vec![true; days.len()], window)
    );

    std::fs::remove_file(dir.path().join("f7.parquet")).unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("counts", Arc::new(table)).unwrap();
    let error = ctx.table("counts").await.unwrap().collect().await;
    let message = error.unwrap_err().to_string();
    assert!(message.contains("f7.parquet"), "{message}");
}

#[tokio::test]
async fn a_key_that_is_not_a_string_names_the_file_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odd.parquet");
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            crate::schema::TIME_GENERATED,
            crate::schema::time_type(),
            false,
        ),
        Field::new(crate::schema::COMPUTER, DataType::Int32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(TimestampMicrosecondArray::from(vec![START]).with_timezone("UTC")),
            Arc::new(Int32Array::from(vec![7])),
        ],
    )
    .unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let file = ResolvedFile {
        url: url::Url::from_file_path(&path).unwrap().to_string(),
        size: std::fs::metadata(&path).unwrap().len(),
        partition_values: Vec::new(),
        num_records: Some(1),
        time_bounds: Some((START, START)),
        time_nulls: Some(0),
        deleted_rows: None,
    };
    let window = TimeWindow {
        after_us: None,
        until_us: START + DAY,
    };
    let ctx = SessionContext::new();
    ctx.register_table("counts", Arc::new(table(vec![file], window)))
        .unwrap();
    let error = ctx
        .table("counts")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("odd.parquet"), "{message}");
    assert!(
        message.contains("Computer is Int32, not a string"),
        "{message}"
    );
}

#[test]
fn files_outside_one_interval_or_keys_in_partition_values_are_refused() {
    let file = |bounds| ResolvedFile {
        url: "file:///t/a.parquet".into(),
        size: 1,
        partition_values: Vec::new(),
        num_records: Some(1),
        time_bounds: bounds,
        time_nulls: Some(0),
        deleted_rows: None,
    };
    let resolved = |files, partition_columns: Vec<&str>| ResolvedTable {
        physical_names: Default::default(),
        table_url: "file:///t/".into(),
        version: 0,
        partition_columns: partition_columns.into_iter().map(String::from).collect(),
        files,
    };
    assert!(KeyCountsTable::can_read(
        &resolved(vec![file(Some((START, START + 5)))], vec![]),
        DAY
    ));
    assert!(!KeyCountsTable::can_read(
        &resolved(vec![file(Some((START, START + DAY)))], vec![]),
        DAY
    ));
    assert!(!KeyCountsTable::can_read(
        &resolved(vec![file(None)], vec![]),
        DAY
    ));
    assert!(!KeyCountsTable::can_read(
        &resolved(vec![file(Some((START, START + 5)))], vec!["Computer"]),
        DAY
    ));
}

#[test]
fn the_plan_survives_encoding() {
    let file = |i: i64| CountedFile {
        path: format!("t/day{i}.parquet"),
        size: 100 + i as u64,
        interval_us: START + i * DAY,
        check_time: i % 2 == 0,
        // One file with deleted rows: they travel in the work list too.
        deleted_rows: (i == 1).then(|| {
            crate::deleted_rows::DeletedRows::new(10, [2u64, 3].into_iter().collect()).unwrap()
        }),
        // And a share of another's processes.
        processes: (i == 2).then_some(ProcessShare { index: 1, of: 3 }),
    };
    let window = TimeWindow {
        after_us: Some(START - 1),
        until_us: START + 9 * DAY,
    };
    let partitions = vec![vec![file(0), file(2)], vec![file(1)]];
    let exec = KeyCountsExec::try_new(
        work_list(&partitions).unwrap(),
        ObjectStoreUrl::parse("file://").unwrap(),
        window,
        Some(vec![0, 5]),
        Gathered::Counts,
    )
    .unwrap();
    assert_eq!(exec::files_of_partitions(&exec), partitions);
    let decoded =
        KeyCountsExec::decode(&exec.encode().unwrap(), &[work_list(&partitions).unwrap()]).unwrap();
    assert_eq!(exec::files_of_partitions(&decoded), partitions);
    assert_eq!(decoded.schema(), exec.schema());
    assert_eq!(exec.schema().fields().len(), 2);
    assert_eq!(exec.properties().output_partitioning().partition_count(), 2);
    // With command lines, projected to the interval and the lines.
    let exec = KeyCountsExec::try_new(
        work_list(&partitions).unwrap(),
        ObjectStoreUrl::parse("file://").unwrap(),
        window,
        Some(vec![0, 6]),
        Gathered::CommandLines,
    )
    .unwrap();
    let decoded =
        KeyCountsExec::decode(&exec.encode().unwrap(), &[work_list(&partitions).unwrap()]).unwrap();
    assert_eq!(decoded.schema(), exec.schema());
    assert_eq!(exec.schema().field(1).name(), COMMAND_LINES);
}

/// Ballista runs several partitions of a stage in one task by restricting the stage's plan
/// to them: the restricted plan must count those partitions' files and no others.
#[tokio::test]
async fn a_plan_restricted_to_some_partitions_counts_only_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let days: Vec<Vec<Event>> = (0..6)
        .map(|d| events(d, 80 + d as usize * 10, false))
        .collect();
    let files = days
        .iter()
        .enumerate()
        .map(|(i, e)| write_file(dir.path(), &format!("d{i}.parquet"), e, USUAL))
        .collect();
    let window = TimeWindow {
        after_us: None,
        until_us: START + 9 * DAY,
    };
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(4));
    let plan = table(files, window)
        .scan(&ctx.state(), None, &[], None)
        .await
        .unwrap();
    assert_eq!(plan.output_partitioning().partition_count(), 4);
    let rows = |batches: Vec<RecordBatch>| batches.iter().map(|b| b.num_rows()).sum::<usize>();
    let whole: Vec<usize> = collect_partitioned(plan.clone(), ctx.task_ctx())
        .await
        .unwrap()
        .into_iter()
        .map(rows)
        .collect();
    let restricted =
        ballista_scheduler::state::task_builder::restrict_plan_to_partitions(plan, &[2, 3])
            .unwrap();
    assert_eq!(restricted.output_partitioning().partition_count(), 2);
    let sliced: Vec<usize> = collect_partitioned(restricted, ctx.task_ctx())
        .await
        .unwrap()
        .into_iter()
        .map(rows)
        .collect();
    assert_eq!(sliced, whole[2..]);
}

#[tokio::test]
async fn no_files_count_nothing_in_one_partition() {
    let window = TimeWindow {
        after_us: None,
        until_us: START,
    };
    let table = table(Vec::new(), window);
    assert_eq!(table.partitions(4), vec![Vec::new()]);
    assert!(key_counts(table, 4).await.is_empty());
}

/// What key counts with command lines should give for `files` (those with `has_lines`
/// set hold the column).
fn expected_lines(files: &[Vec<Event>], has_lines: &[bool], window: TimeWindow) -> ExpectedLines {
    let mut tallies: BTreeMap<_, (i64, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for (events, has_lines) in files.iter().zip(has_lines) {
        for (i, (time, keys)) in events.iter().enumerate() {
            let Some(time) = *time else { continue };
            if !window.contains(time) {
                continue;
            }
            let keys = keys.map(|k| k.map(str::to_string));
            let tally = tallies
                .entry((time.div_euclid(DAY) * DAY, keys))
                .or_default();
            tally.0 += 1;
            if let Some(line) = command_line(i).filter(|_| *has_lines) {
                tally.1.insert(line);
            }
        }
    }
    tallies
        .into_iter()
        .map(|(group, (count, lines))| {
            let lines = (!lines.is_empty()).then(|| lines.into_iter().collect());
            (group, (count, lines))
        })
        .collect()
}

#[tokio::test]
async fn command_lines_are_each_groups_distinct_lines_sorted() {
    let dir = tempfile::tempdir().unwrap();
    let days: Vec<Vec<Event>> = vec![
        events(0, 300, true),
        events(1, 250, true),
        events(1, 120, false),
        events(2, 500, false),
        events(3, 90, false),
    ];
    let layouts = [
        USUAL,
        Layout {
            large: true,
            ..USUAL
        },
        Layout {
            plain: true,
            ..USUAL
        },
        Layout {
            no_lines: true,
            ..USUAL
        },
        USUAL,
    ];
    let has_lines: Vec<bool> = layouts.iter().map(|l| !l.no_lines).collect();
    let files = write_days(dir.path(), &days, &layouts);
    // The window cuts into day 1: its files' times are checked row by row.
    let window = TimeWindow {
        after_us: Some(START + DAY + 100_000_000),
        until_us: START + 4 * DAY,
    };
    let plain = table(files, window);
    let with_lines = plain.clone().with_command_lines();
    let want = expected_lines(&days, &has_lines, window);
    let several = want
        .values()
        .filter(|(_, l)| l.as_ref().is_some_and(|l| l.len() > 1));
    assert!(several.count() > 20, "groups with several lines: {want:?}");
    assert!(
        want.values().any(|(_, l)| l.is_none()),
        "groups without lines (the file without the column)"
    );
    for partitions in [1, 2, 3] {
        let got = groups(with_lines.clone(), partitions).await;
        assert_eq!(got, want, "{partitions} partitions");
    }
    // The counts are those of key counts without command lines.
    let counts: Expected = want.iter().map(|(g, (n, _))| (g.clone(), *n)).collect();
    assert_eq!(key_counts(plain, 2).await, counts);
    // The option survives the logical plan's encoding.
    let decoded = KeyCountsTable::decode(&with_lines.encode().unwrap()).unwrap();
    assert_eq!(decoded.schema(), schema_with_command_lines());
    assert_eq!(groups(decoded, 2).await, want);
}

/// One event of the evidence tests: time, the four keys, parent, command line.
type EvidenceEvent = (
    Option<i64>,
    [Option<&'static str>; 4],
    Option<&'static str>,
    Option<String>,
);

/// Interval, keys, parent, template → events, longest line, highest entropy.
type EvidenceRows = BTreeMap<(i64, [Option<String>; 4], String, String), (i64, i64, u64)>;

const PAYLOAD: &str = "SQBFAFgAIAAoAE4AZQB3AC0ATwBiAGoAZQBjAHQAIABOAGUAdAAuAFcAZQBi";

/// `n` events of day `day` whose lines name their users and hosts, hide them in
/// payloads, or name nobody; users include one named as a placeholder's word.
fn evidence_events(day: i64, n: usize) -> Vec<EvidenceEvent> {
    const HOSTS: [Option<&str>; 4] = [Some("WS1.corp.local"), Some("sqbfafga"), Some(""), None];
    const USERS: [Option<&str>; 4] = [Some(r"CORP\alice"), Some(r"CORP\b64"), Some("SVC$"), None];
    const PARENTS: [Option<&str>; 4] = [
        Some(r"C:\Windows\explorer.exe"),
        None,
        Some(""),
        Some(r"C:\Windows\System32\cmd.exe"),
    ];
    (0..n)
        .map(|i| {
            let time = (i % 11 != 5).then_some(START + day * DAY + i as i64 * 1_000_000);
            let keys = [
                HOSTS[i % 4],
                USERS[(i / 3) % 4],
                Some("User"),
                [Some("cmd.exe"), Some("powershell.exe"), None, Some("")][(i / 2) % 4],
            ];
            let line = match i % 9 {
                0 => None,
                1 => Some("cmd.exe /c whoami".to_string()),
                2 => Some(String::new()),
                3 => Some(format!("net user ALICE /domain {}", i % 4)),
                4 => Some(format!("ping ws1 -n {}", i % 3)),
                5 => Some(format!("powershell.exe -enc {PAYLOAD}")),
                6 => Some(format!(r"C:\Users\svc\AppData\Local\Temp\x{}.exe", i % 5)),
                7 => Some("Ärger.exe \"C:\\x\" 12345 svc".to_string()),
                _ => Some("  cmd.exe   /c dir   ".to_string()),
            };
            (time, keys, PARENTS[(i / 5) % 4], line)
        })
        .collect()
}

/// Writes evidence events as a Parquet file, without the parent or line column when so
/// told, dictionary-encoded unless `plain`.
fn write_evidence_file(
    dir: &Path,
    name: &str,
    events: &[EvidenceEvent],
    (parents, lines, plain): (bool, bool, bool),
) -> ResolvedFile {
    let times: Vec<Option<i64>> = events.iter().map(|e| e.0).collect();
    let mut fields = vec![Field::new(
        crate::schema::TIME_GENERATED,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )];
    let mut columns: Vec<ArrayRef> = vec![Arc::new(
        TimestampMicrosecondArray::from(times.clone()).with_timezone("UTC"),
    )];
    let mut string_column = |name: &str, values: Vec<Option<&str>>| {
        fields.push(Field::new(name, DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(values)));
    };
    for (k, key) in GROUP_KEYS.iter().enumerate() {
        string_column(key, events.iter().map(|e| e.1[k]).collect());
    }
    if parents {
        string_column(PARENT_PROCESS_NAME, events.iter().map(|e| e.2).collect());
    }
    if lines {
        string_column(
            COMMAND_LINE,
            events.iter().map(|e| e.3.as_deref()).collect(),
        );
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap();
    write_batch(&dir.join(name), &batch, plain, &times)
}

/// The evidence rows worked out event by event: each line templated with its own user
/// and host (what the evidence's SQL does), a null parent or line as the empty one.
fn expected_evidence(
    files: &[Vec<EvidenceEvent>],
    has: &[(bool, bool)],
    window: TimeWindow,
) -> EvidenceRows {
    let mut rows = EvidenceRows::new();
    for (events, (parents, lines)) in files.iter().zip(has) {
        for (time, keys, parent, line) in events {
            let Some(time) = *time else { continue };
            if !window.contains(time) {
                continue;
            }
            let line = line.as_deref().filter(|_| *lines);
            let template = line.map_or(String::new(), |l| {
                crate::template::template(l, keys[1], keys[0])
            });
            let parent = parent.filter(|_| *parents).unwrap_or("").to_string();
            let keys = keys.map(|k| k.map(str::to_string));
            let row = rows
                .entry((time.div_euclid(DAY) * DAY, keys, parent, template))
                .or_default();
            row.0 += 1;
            row.1 = row.1.max(line.map_or(0, |l| l.chars().count() as i64));
            let entropy = line.map_or(0.0, |l| crate::udf::byte_entropy(l.as_bytes()));
            row.2 = row.2.max(entropy.to_bits());
        }
    }
    rows
}

async fn evidence_rows(table: KeyCountsTable, partitions: usize) -> EvidenceRows {
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(50);
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("evidence", Arc::new(table)).unwrap();
    let batches = ctx
        .table("evidence")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut got = EvidenceRows::new();
    // Each row's reported interval totals (of its (process, template), (process, parent),
    // (host, process, parent), (host, process) and (account, process)).
    let mut in_interval = BTreeMap::new();
    for batch in batches {
        assert_eq!(batch.schema(), evidence::schema());
        let interval = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        let text = |c: usize, row: usize| {
            let column = batch.column(c).as_string::<i32>();
            column.is_valid(row).then(|| column.value(row).to_string())
        };
        let int = |c: usize, row: usize| batch.column(c).as_primitive::<Int64Type>().value(row);
        let entropy = batch
            .column(9)
            .as_primitive::<arrow::datatypes::Float64Type>();
        for row in 0..batch.num_rows() {
            let keys: [Option<String>; 4] = std::array::from_fn(|k| text(k + 1, row));
            let key = (
                interval.value(row),
                keys,
                text(5, row).unwrap(),
                text(6, row).unwrap(),
            );
            let value = (int(7, row), int(8, row), entropy.value(row).to_bits());
            in_interval.insert(
                key.clone(),
                std::array::from_fn::<i64, 5, _>(|t| int(10 + t, row)),
            );
            assert!(got.insert(key, value).is_none(), "a row came out twice");
        }
    }
    // Worked out from the rows: a null key is the empty one.
    type By = fn(&[String; 4], &str, &str) -> Vec<String>;
    let by: [By; 5] = [
        |k, _, t| vec![k[3].clone(), t.into()],
        |k, p, _| vec![k[3].clone(), p.into()],
        |k, p, _| vec![k[0].clone(), k[3].clone(), p.into()],
        |k, _, _| vec![k[0].clone(), k[3].clone()],
        |k, _, _| vec![k[1].clone(), k[3].clone()],
    ];
    let named = |keys: &[Option<String>; 4]| keys.clone().map(Option::unwrap_or_default);
    let mut totals: BTreeMap<(usize, i64, Vec<String>), i64> = BTreeMap::new();
    for ((interval, keys, parent, template), (events, _, _)) in &got {
        for (t, by) in by.iter().enumerate() {
            let key = by(&named(keys), parent, template);
            *totals.entry((t, *interval, key)).or_default() += events;
        }
    }
    for ((interval, keys, parent, template), reported) in in_interval {
        for (t, by) in by.iter().enumerate() {
            let want = totals[&(t, interval, by(&named(&keys), &parent, &template))];
            assert_eq!(
                reported[t], want,
                "total {t}: {interval} {keys:?} {parent} {template}"
            );
        }
    }
    got
}

#[tokio::test]
async fn evidence_rows_equal_every_event_templated_with_its_own_names() {
    let dir = tempfile::tempdir().unwrap();
    let days = vec![
        evidence_events(0, 400),
        evidence_events(1, 300),
        evidence_events(1, 150),
        evidence_events(2, 500),
        evidence_events(3, 200),
    ];
    // (parents, lines, plain) per file.
    let layouts = [
        (true, true, false),
        (true, true, true),
        (false, true, false),
        (true, false, false),
        (true, true, false),
    ];
    let files: Vec<_> = days
        .iter()
        .zip(layouts)
        .enumerate()
        .map(|(i, (events, layout))| {
            write_evidence_file(dir.path(), &format!("e{i}.parquet"), events, layout)
        })
        .collect();
    let window = TimeWindow {
        after_us: Some(START + DAY + 100_000_000),
        until_us: START + 4 * DAY,
    };
    let has: Vec<(bool, bool)> = layouts.iter().map(|l| (l.0, l.1)).collect();
    let want = expected_evidence(&days, &has, window);
    // The names matter: some templates hold them, and a user named like the payload's
    // placeholder changes that placeholder.
    let templates: Vec<&String> = want.keys().map(|k| &k.3).collect();
    for placeholder in ["<user>", "<host>", "<<user>:le64>", "<b64:le64>"] {
        assert!(
            templates.iter().any(|t| t.contains(placeholder)),
            "{placeholder}: {templates:?}"
        );
    }
    let evidence = table(files, window).gathering(Gathered::Evidence);
    for partitions in [1, 2, 3] {
        assert_eq!(
            evidence_rows(evidence.clone(), partitions).await,
            want,
            "{partitions} partitions"
        );
    }
    let decoded = KeyCountsTable::decode(&evidence.encode().unwrap()).unwrap();
    assert_eq!(evidence_rows(decoded, 2).await, want);
    // Each interval shared out by processes: no row twice (checked by `evidence_rows`,
    // with each row's (process, template) total), the same rows, on as many partitions as
    // shares or fewer.
    for partitions in [8, 12] {
        let shared = evidence.clone().split_lone_intervals(partitions);
        let placed = shared.partitions(partitions);
        assert!(placed.iter().flatten().all(|f| f.processes.is_some()));
        assert_eq!(placed.len(), partitions);
        assert_eq!(evidence_rows(shared.clone(), partitions).await, want);
        assert_eq!(
            evidence_rows(shared.clone(), 3).await,
            want,
            "fewer partitions"
        );
        let decoded = KeyCountsTable::decode(&shared.encode().unwrap()).unwrap();
        assert_eq!(
            decoded.partitions(3),
            shared.partitions(3),
            "the shares travel"
        );
    }
}
