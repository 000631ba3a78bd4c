use std::collections::BTreeMap;

use arrow::{
    array::{Int64Array, TimestampMicrosecondArray},
    compute::concat_batches,
};
use object_store::memory::InMemory;

use super::*;
use crate::udf::sample_key;

const DAY: i64 = 86_400_000_000;

/// `n` summary rows (numbered from `first`) over three days, with null and repeated keys.
fn summary_rows(first: usize, n: usize) -> RecordBatch {
    let ids: Vec<usize> = (first..first + n).collect();
    let strings = |f: &dyn Fn(usize) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(
            ids.iter().map(|&i| f(i)).collect::<Vec<_>>(),
        ))
    };
    RecordBatch::try_from_iter([
        (
            INTERVAL,
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    ids.iter().map(|&i| (i % 3) as i64 * DAY),
                )
                .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        (
            GROUP_KEYS[0],
            strings(&|i| (i % 7 != 0).then(|| format!("host{}", i / 3))),
        ),
        (
            GROUP_KEYS[1],
            strings(&|i| Some(format!("account{}", i % 5))),
        ),
        (
            GROUP_KEYS[2],
            strings(&|i| (i % 4 != 0).then(|| "User".into())),
        ),
        (GROUP_KEYS[3], strings(&|i| Some(format!("p{i}")))),
        (
            COUNT,
            Arc::new(Int64Array::from_iter_values(
                ids.iter().map(|&i| 1 + (i % 9) as i64),
            )) as ArrayRef,
        ),
        ("command_lines", strings(&|i| Some(format!("ignored {i}")))),
    ])
    .unwrap()
}

fn spec(sample_rows: usize) -> DigestSpec {
    DigestSpec {
        dir: "memory:///digests/".into(),
        seed: 42,
        sample_rows,
        report_start_us: 2 * DAY,
        report_end_us: 2 * DAY,
    }
}

/// Feeds `rows` to a digest in batches of `batch_rows` and writes it as partition `name`.
async fn digest_into(
    store: &InMemory,
    rows: &RecordBatch,
    batch_rows: usize,
    sample: usize,
    name: &str,
) {
    let mut digest = Digest::new(spec(sample));
    let mut offset = 0;
    while offset < rows.num_rows() {
        let len = batch_rows.min(rows.num_rows() - offset);
        digest.add(&rows.slice(offset, len)).unwrap();
        offset += len;
    }
    digest.write(store, name).await.unwrap();
}

/// Each key column's values with their summary rows, events and report rows, counted
/// directly.
fn direct_census(rows: &RecordBatch) -> Vec<BTreeMap<Option<String>, Tally>> {
    let micros = cast(rows.column(0), &DataType::Int64).unwrap();
    let micros = micros.as_primitive::<Int64Type>();
    let counts = rows
        .column_by_name(COUNT)
        .unwrap()
        .as_primitive::<Int64Type>();
    GROUP_KEYS
        .iter()
        .map(|key| {
            let values = rows.column_by_name(key).unwrap().as_string::<i32>();
            let mut tallies: BTreeMap<Option<String>, Tally> = BTreeMap::new();
            for r in 0..rows.num_rows() {
                let value = values.is_valid(r).then(|| values.value(r).to_string());
                let tally = tallies.entry(value).or_default();
                tally.groups += 1;
                tally.events += counts.value(r) as u64;
                tally.report_groups += (micros.value(r) == 2 * DAY) as u64;
            }
            tallies
        })
        .collect()
}

/// The sample keys of `rows`, as the function computes them row by row.
fn keys_of(rows: &RecordBatch) -> Vec<u64> {
    let texts: Vec<ArrayRef> = std::iter::once(INTERVAL)
        .chain(GROUP_KEYS)
        .map(|c| cast(rows.column_by_name(c).unwrap(), &DataType::Utf8).unwrap())
        .collect();
    (0..rows.num_rows())
        .map(|r| {
            let parts: Vec<Option<&[u8]>> = texts
                .iter()
                .map(|t| {
                    let t = t.as_string::<i32>();
                    t.is_valid(r).then(|| t.value(r).as_bytes())
                })
                .collect();
            sample_key(42, &parts)
        })
        .collect()
}

/// Two partitions' digests add up to the direct counts of all their rows, and the rows
/// they keep hold the 50 with the smallest keys of all (each partition cut its rows back
/// several times on the way).
#[tokio::test]
async fn digests_add_up_to_the_counts_and_keep_the_smallest_keys() {
    let store = InMemory::new();
    let (left, right) = (summary_rows(0, 700), summary_rows(700, 500));
    digest_into(&store, &left, 64, 50, "a").await;
    digest_into(&store, &right, 100, 50, "b").await;
    let digests = read(&store, &Path::from("digests")).await.unwrap();

    let all = concat_batches(&left.schema(), [&left, &right]).unwrap();
    let census = digests.tallies().unwrap();
    let expected = direct_census(&all);
    for (column, expected) in census.categories.iter().zip(&expected) {
        let ours: BTreeMap<Option<String>, Tally> = column.iter().cloned().collect();
        assert_eq!(&ours, expected);
    }
    assert_eq!(census.total.groups, 1200);
    assert_eq!(
        census.total.events,
        expected[2].values().map(|t| t.events).sum::<u64>()
    );
    assert_eq!(census.total.report_groups, 400);
    assert!(expected[0].contains_key(&None), "null keys are counted");

    let kept: Vec<u64> = digests
        .kept_rows()
        .iter()
        .flat_map(|b| sample_key_column(b).unwrap().values().to_vec())
        .collect();
    assert!(
        kept.len() >= 100 && kept.len() < 200,
        "{} rows kept",
        kept.len()
    );
    let mut smallest = keys_of(&all);
    smallest.sort_unstable();
    for key in &smallest[..50] {
        assert!(kept.contains(key), "the sample's key {key} was dropped");
    }
    let kept_keys_match: Vec<u64> = digests.kept_rows().iter().flat_map(keys_of).collect();
    assert_eq!(kept_keys_match, kept, "kept rows carry their own keys");
    let mut candidates: Vec<u64> = digests
        .candidates(50)
        .unwrap()
        .iter()
        .flat_map(|b| sample_key_column(b).unwrap().values().to_vec())
        .collect();
    candidates.sort_unstable();
    assert_eq!(
        candidates,
        smallest[..50],
        "the candidates are the smallest 50"
    );
}

/// A partition with fewer rows than the sample keeps them all; an empty one writes its
/// (empty) tallies and no rows.
#[tokio::test]
async fn small_partitions_keep_every_row() {
    let store = InMemory::new();
    digest_into(&store, &summary_rows(0, 30), 7, 50, "a").await;
    digest_into(&store, &summary_rows(0, 0), 7, 50, "b").await;
    let digests = read(&store, &Path::from("digests")).await.unwrap();
    let kept: usize = digests.kept_rows().iter().map(RecordBatch::num_rows).sum();
    assert_eq!(kept, 30);
    assert_eq!(digests.tallies().unwrap().total.groups, 30);
}

/// A digest needs the summaries' columns, and says which is missing.
#[test]
fn a_missing_column_is_named() {
    let rows = summary_rows(0, 5);
    let without_count = rows.project(&[0, 1, 2, 3, 4]).unwrap();
    let error = Digest::new(spec(5)).add(&without_count).unwrap_err();
    assert!(error.to_string().contains(COUNT), "{error}");
}

/// A digest-only write of rows stored elsewhere digests them as a write of them would,
/// and writes no rows.
#[tokio::test]
async fn a_digest_only_write_digests_without_writing() {
    use datafusion::{
        catalog::MemTable, datasource::provider_as_source, logical_expr::LogicalPlanBuilder,
        prelude::SessionContext,
    };
    let rows = summary_rows(0, 300);
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| format!("file://{}/{name}/", dir.path().display());
    let digested = |name: &str| DigestSpec {
        dir: url(&format!("{name}-digest")),
        ..spec(40)
    };
    let ctx = SessionContext::new();
    for (name, only) in [("written", false), ("digested", true)] {
        let source = MemTable::try_new(rows.schema(), vec![vec![rows.clone()]]).unwrap();
        let input = ctx.read_table(Arc::new(source)).unwrap();
        let sink = crate::partition_writer::ScratchSink::try_new(&url(name), rows.schema())
            .unwrap()
            .with_digest(digested(name))
            .unwrap();
        let sink = match only {
            true => sink.digest_only(),
            false => sink,
        };
        let plan = LogicalPlanBuilder::insert_into(
            input.logical_plan().clone(),
            "scratch",
            provider_as_source(Arc::new(sink)),
            datafusion::logical_expr::dml::InsertOp::Append,
        )
        .unwrap()
        .build()
        .unwrap();
        datafusion::prelude::DataFrame::new(ctx.state(), plan)
            .collect()
            .await
            .unwrap();
    }
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let written = read(&local, &Path::from("written-digest")).await.unwrap();
    let digested = read(&local, &Path::from("digested-digest")).await.unwrap();
    let census = |d: &Digests| -> Vec<BTreeMap<Option<String>, Tally>> {
        let tallies = d.tallies().unwrap();
        let columns = tallies.categories.iter();
        columns.map(|c| c.iter().cloned().collect()).collect()
    };
    assert_eq!(census(&digested), census(&written));
    let keys = |d: &Digests| -> Vec<u64> {
        let mut keys: Vec<u64> = d.kept_rows().iter().flat_map(keys_of).collect();
        keys.sort_unstable();
        keys
    };
    assert_eq!(keys(&digested), keys(&written));
    assert!(dir.path().join("written").exists());
    assert!(!dir.path().join("digested").exists(), "no rows written");
}
