//! The source against upstream tables written by Spark and Databricks (delta-kernel-rs's
//! test data, `fixtures/upstream/`), read to the contents their own tests document.

use std::{path::PathBuf, sync::Arc};

use arrow::{
    array::{AsArray, RecordBatch},
    datatypes::{DataType, Int64Type},
    util::pretty::pretty_format_batches,
};
use datafusion::{
    physical_plan::collect,
    prelude::{ParquetReadOptions, SessionContext},
};
use datafusion_proto::bytes::{
    physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
};
use procforest_core::{codec::ProcforestPhysicalCodec, deleted_rows, scan::DeltaFilesTable};

use super::*;

fn fixture(name: &str) -> PathBuf {
    upstream("delta-kernel-rs").join(name)
}

fn upstream(repository: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/upstream")
        .join(repository)
}

fn everything() -> TimeRange {
    TimeRange {
        start: None,
        end: DateTime::from_timestamp(4_000_000_000, 0).unwrap(),
    }
}

/// What a query over the table gives, run directly and again after the physical plan went
/// through the codecs (as the executors receive it): both must agree.
struct Read {
    batches: Vec<RecordBatch>,
    pruning: Pruning,
}

async fn read(table: &std::path::Path, choice: SnapshotChoice, sql: &str) -> Read {
    let location = table.to_str().unwrap();
    let table = open_any(location, &choice, HashMap::new()).await.unwrap();
    let (resolved, pruning) = resolve(&table, everything()).await.unwrap();
    let provider = DeltaFilesTable::try_new(resolved, table.schema.clone()).unwrap();
    let ctx = SessionContext::new();
    ctx.register_table("t", Arc::new(provider)).unwrap();
    let plan = ctx
        .sql(sql)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let batches = collect(plan.clone(), ctx.task_ctx()).await.unwrap();
    let codec = ProcforestPhysicalCodec::default();
    let bytes = physical_plan_to_bytes_with_extension_codec(plan, &codec).unwrap();
    let decoded =
        physical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec).unwrap();
    let again = collect(decoded, ctx.task_ctx()).await.unwrap();
    assert_eq!(
        pretty_format_batches(&batches).unwrap().to_string(),
        pretty_format_batches(&again).unwrap().to_string(),
        "the plan after the codecs reads the same rows"
    );
    Read { batches, pruning }
}

fn longs(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column(0), &DataType::Int64).unwrap();
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect()
}

/// The rows of a Spark-written `expected/` folder, in the query's order.
async fn expected(table: &str, sql: &str) -> String {
    let ctx = SessionContext::new();
    let dir = fixture(table).join("expected");
    ctx.register_parquet("t", dir.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    pretty_format_batches(&batches).unwrap().to_string()
}

#[tokio::test]
async fn a_file_stored_deletion_vector_hides_its_rows() {
    // Upstream: `DELETE ... WHERE value IN (0, 9)` on values 0..9; 8 rows remain.
    let r = read(
        &fixture("table-with-dv-small"),
        SnapshotChoice::Newest,
        "SELECT value FROM t ORDER BY value",
    )
    .await;
    assert_eq!(longs(&r.batches), (1..=8).collect::<Vec<_>>());
    assert_eq!(r.pruning.rows_deleted, 2);
    assert_eq!(r.pruning.rows_in_scanned_files, 8);

    // Two files, one with three of its five rows deleted: ids 3..9 remain.
    let r = read(
        &fixture("with-short-dv"),
        SnapshotChoice::Newest,
        "SELECT id FROM t ORDER BY id",
    )
    .await;
    assert_eq!(longs(&r.batches), (3..=9).collect::<Vec<_>>());
}

#[tokio::test]
async fn inline_deletion_vectors_hide_their_rows_at_each_version() {
    // The table's history (upstream's CDF test): deleted rows per version.
    let cases: [(u64, &[i64]); 5] = [
        (1, &[0, 9]),
        (3, &[0, 1, 4, 5]),
        (4, &[0, 5]),
        (5, &[3]),
        (6, &[]),
    ];
    for (version, deleted) in cases {
        let r = read(
            &fixture("cdf-table-with-dv"),
            SnapshotChoice::Version(version),
            "SELECT value FROM t ORDER BY value",
        )
        .await;
        let kept: Vec<i64> = (0..10).filter(|v| !deleted.contains(v)).collect();
        assert_eq!(longs(&r.batches), kept, "version {version}");
    }
}

#[tokio::test]
async fn spark_tables_with_checkpoints_and_replaced_vectors_read_as_expected() {
    // Each DELETE replaced the file's vector (removing the old one in the same commit).
    let sql = "SELECT id FROM t ORDER BY id";
    let r = read(
        &fixture("log-replay-dv-key-cases/delta"),
        SnapshotChoice::Newest,
        sql,
    )
    .await;
    assert_eq!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 47);
    assert_eq!(
        pretty_format_batches(&r.batches).unwrap().to_string(),
        expected("log-replay-dv-key-cases", sql).await
    );
    // Partitioned, fifteen DELETEs, a checkpoint at version 10.
    let sql = "SELECT part, col1, col2 FROM t ORDER BY col1";
    let r = read(
        &fixture("dv-partitioned-with-checkpoint/delta"),
        SnapshotChoice::Newest,
        sql,
    )
    .await;
    assert_eq!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 35);
    assert_eq!(
        pretty_format_batches(&r.batches).unwrap().to_string(),
        expected("dv-partitioned-with-checkpoint", sql).await
    );
}

#[test]
fn our_stored_vectors_are_byte_for_byte_spark_s() {
    // The vector file of upstream's `DELETE ... WHERE value IN (0, 9)`: the version byte,
    // then one framed vector. Encoding its rows again gives the same bytes.
    let dir = fixture("table-with-dv-small");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(bytes[0], deleted_rows::FILE_FORMAT_VERSION);
    let rows = deleted_rows::decode_stored(&bytes[1..], 36).unwrap();
    assert_eq!(rows.iter().collect::<Vec<_>>(), vec![0, 9]);
    assert_eq!(deleted_rows::encode_stored(&rows), bytes[1..]);
    assert_eq!(
        deleted_rows::relative_file_name("vBn[lx{q8@P<9BNH/isA").unwrap(),
        file.file_name().unwrap().to_str().unwrap()
    );
}

#[tokio::test]
async fn column_mapped_tables_read_by_their_logical_names() {
    // Spark 3.5, every column renamed to a `col-<uuid>` physical name; `id` mode also
    // numbers the Parquet fields. A filter on a mapped column prunes by the file's name.
    for table in [
        "table-with-columnmapping-mode-name",
        "table-with-columnmapping-mode-id",
    ] {
        let sql = "SELECT \"IntegerType\", \"StringType\", \"LongType\", \"DateType\" \
                   FROM t ORDER BY \"IntegerType\" NULLS LAST";
        let r = read(
            &fixture(&format!("{table}/delta")),
            SnapshotChoice::Newest,
            sql,
        )
        .await;
        assert_eq!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
        assert_eq!(
            pretty_format_batches(&r.batches).unwrap().to_string(),
            expected(table, sql).await,
            "{table}"
        );
        let sql = "SELECT \"IntegerType\" FROM t WHERE \"IntegerType\" > 1 ORDER BY 1";
        let r = read(
            &fixture(&format!("{table}/delta")),
            SnapshotChoice::Newest,
            sql,
        )
        .await;
        assert_eq!(longs(&r.batches), vec![2, 3, 4], "{table}");
    }
    // Mapped, partitioned by a mapped column, with deletion vectors and a checkpoint.
    let sql = "SELECT part, col1, col2 FROM t ORDER BY col1";
    let r = read(
        &fixture("dv-with-columnmapping/delta"),
        SnapshotChoice::Newest,
        sql,
    )
    .await;
    assert_eq!(r.batches.iter().map(|b| b.num_rows()).sum::<usize>(), 35);
    assert_eq!(
        pretty_format_batches(&r.batches).unwrap().to_string(),
        expected("dv-with-columnmapping", sql).await
    );
}

#[tokio::test]
async fn a_renamed_partition_column_reads_by_its_new_name() {
    // Databricks: `id` renamed `newid` after mapping was turned on; files and partition
    // values keep calling it `id`.
    let table = upstream("delta-rs").join("table_with_partitioning_mapping");
    let r = read(
        &table,
        SnapshotChoice::Newest,
        "SELECT newid, description FROM t ORDER BY newid",
    )
    .await;
    assert_eq!(
        pretty_format_batches(&r.batches).unwrap().to_string(),
        [
            "+-------+-----------------+",
            "| newid | description     |",
            "+-------+-----------------+",
            "| 1     | Initial data    |",
            "| 2     | Additional data |",
            "+-------+-----------------+",
        ]
        .join("\n")
    );
}

#[tokio::test]
async fn v2_checkpoints_with_sidecars_and_compacted_logs_read_as_expected() {
    // Spark's `multipart v2 checkpoint` test: ids 0 (three times), 0..30, 0..100 twice,
    // 0..1000, behind v2 checkpoints whose files are listed in sidecars.
    let r = read(
        &fixture("v2-checkpoints-parquet-with-sidecars"),
        SnapshotChoice::Newest,
        "SELECT id FROM t ORDER BY id",
    )
    .await;
    let mut expected: Vec<i64> = [3, 30, 100, 100, 1000]
        .iter()
        .enumerate()
        .flat_map(|(i, &n)| match i {
            0 => vec![0; n],
            _ => (0..n as i64).collect(),
        })
        .collect();
    expected.sort();
    assert_eq!(longs(&r.batches), expected);
    // A log with compacted (merged) commit files, deletes and merges among them.
    let r = read(
        &fixture("compacted-log-files-table"),
        SnapshotChoice::Newest,
        "SELECT id, comment FROM t ORDER BY id",
    )
    .await;
    assert_eq!(
        pretty_format_batches(&r.batches).unwrap().to_string(),
        [
            "+----+--------------------+",
            "| id | comment            |",
            "+----+--------------------+",
            "| 0  | new                |",
            "| 1  | after-large-delete |",
            "| 2  |                    |",
            "| 10 | merge1-insert      |",
            "| 12 | merge2-insert      |",
            "+----+--------------------+",
        ]
        .join("\n")
    );
}
