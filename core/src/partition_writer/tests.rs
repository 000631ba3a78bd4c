use arrow::{
    array::{Array, AsArray, Int64Array, StringArray},
    datatypes::{Int64Type, UInt64Type},
};
use datafusion::{
    catalog::MemTable,
    datasource::{provider_as_source, source::DataSourceExec},
    logical_expr::LogicalPlanBuilder,
    physical_plan::collect_partitioned,
    prelude::{DataFrame, ParquetReadOptions, SessionContext},
};
use datafusion_proto::{
    bytes::{
        logical_plan_from_bytes_with_extension_codec, logical_plan_to_bytes_with_extension_codec,
        physical_plan_from_bytes_with_extension_codec, physical_plan_to_bytes_with_extension_codec,
    },
    logical_plan::LogicalExtensionCodec,
};

use super::*;
use crate::codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("n", DataType::Int64, false),
    ]))
}

/// Partitions of `sizes` rows each (a size of 0 is an empty partition), every row distinct.
fn partitions(sizes: &[usize]) -> Vec<Vec<RecordBatch>> {
    let mut next = 0i64;
    sizes
        .iter()
        .map(|&size| {
            let keys: StringArray = (0..size)
                .map(|i| (i % 3 != 0).then(|| format!("k{}", next + i as i64)))
                .collect();
            let n = Int64Array::from_iter_values(next..next + size as i64);
            next += size as i64;
            vec![RecordBatch::try_new(schema(), vec![Arc::new(keys), Arc::new(n)]).unwrap()]
        })
        .collect()
}

/// The insert of `input`'s rows into `sink`, as `DataFrame::write_table` plans it.
fn insert(input: &DataFrame, sink: ScratchSink) -> datafusion::logical_expr::LogicalPlan {
    LogicalPlanBuilder::insert_into(
        input.logical_plan().clone(),
        "scratch",
        provider_as_source(Arc::new(sink)),
        InsertOp::Append,
    )
    .unwrap()
    .build()
    .unwrap()
}

fn dir_url(dir: &tempfile::TempDir) -> String {
    format!("file://{}/", dir.path().display())
}

/// The rows of a folder's Parquet files, as (key, n) sorted by n.
async fn rows_in(dir: &tempfile::TempDir) -> Vec<(Option<String>, i64)> {
    let ctx = SessionContext::new();
    let batches = ctx
        .read_parquet(
            format!("{}/", dir.path().display()),
            ParquetReadOptions::default().schema(&schema()),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut rows = Vec::new();
    for batch in batches {
        let keys = arrow::compute::cast(batch.column(0), &DataType::Utf8).unwrap();
        let keys = keys.as_string::<i32>();
        let n = batch.column(1).as_primitive::<Int64Type>();
        for i in 0..batch.num_rows() {
            rows.push((
                keys.is_valid(i).then(|| keys.value(i).to_string()),
                n.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| r.1);
    rows
}

fn parquet_files(dir: &tempfile::TempDir) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An insert into the sink writes each non-empty partition to its own file, in one
/// stage (no partition is merged into another), and reports the rows per partition.
#[tokio::test]
async fn every_partition_writes_its_own_file() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let sizes = [5, 0, 70_000, 1];
    let source = MemTable::try_new(schema(), partitions(&sizes)).unwrap();
    let input = ctx.read_table(Arc::new(source)).unwrap();
    let sink = ScratchSink::try_new(&dir_url(&dir), schema()).unwrap();
    let plan = insert(&input, sink);
    let physical = DataFrame::new(ctx.state(), plan)
        .create_physical_plan()
        .await
        .unwrap();
    assert!(physical.is::<ParquetWriterExec>(), "{physical:?}");
    assert_eq!(physical.output_partitioning().partition_count(), 4);
    let counts: Vec<u64> = collect_partitioned(physical, ctx.task_ctx())
        .await
        .unwrap()
        .into_iter()
        .map(|batches| {
            batches
                .iter()
                .map(|b| b.column(0).as_primitive::<UInt64Type>().value(0))
                .sum()
        })
        .collect();
    assert_eq!(counts, vec![5, 0, 70_000, 1]);
    let files = parquet_files(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with(".parquet")), "{files:?}");
    let expected: Vec<(Option<String>, i64)> = partitions(&sizes)
        .iter()
        .flatten()
        .flat_map(|b| {
            let keys = b.column(0).as_string::<i32>().clone();
            let n = b.column(1).as_primitive::<Int64Type>().clone();
            (0..b.num_rows()).map(move |i| {
                (
                    keys.is_valid(i).then(|| keys.value(i).to_string()),
                    n.value(i),
                )
            })
        })
        .collect();
    assert_eq!(rows_in(&dir).await, expected);
    // The large partition's file holds row groups of at most ROW_GROUP_ROWS rows.
    let large = files
        .iter()
        .map(|f| dir.path().join(f))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let reader =
        parquet::file::reader::SerializedFileReader::new(std::fs::File::open(large).unwrap())
            .unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&reader);
    assert_eq!(meta.num_row_groups(), 2);
    assert_eq!(meta.row_group(0).num_rows() as usize, ROW_GROUP_ROWS);
}

/// Ballista may run each partition of a stage as its own task, where it is partition 0 of
/// a restricted plan: the files must not overwrite each other.
#[tokio::test]
async fn partitions_run_apart_write_apart() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let sizes = [10, 20, 30];
    let input = DataSourceExec::from_data_source(
        datafusion::datasource::memory::MemorySourceConfig::try_new(
            &partitions(&sizes),
            schema(),
            None,
        )
        .unwrap(),
    );
    let plan: Arc<dyn ExecutionPlan> =
        Arc::new(ParquetWriterExec::try_new(input, dir_url(&dir), "w".to_string()).unwrap());
    for p in 0..sizes.len() {
        let restricted = ballista_scheduler::state::task_builder::restrict_plan_to_partitions(
            plan.clone(),
            &[p],
        )
        .unwrap();
        assert_eq!(restricted.output_partitioning().partition_count(), 1);
        collect_partitioned(restricted, ctx.task_ctx())
            .await
            .unwrap();
    }
    assert_eq!(parquet_files(&dir).len(), 3);
    assert_eq!(rows_in(&dir).await.len(), 60);
}

/// The sink and the writer survive the codecs (the sink as an insert's target in a
/// logical plan, the writer with its input in a physical plan).
#[tokio::test]
async fn sink_and_writer_survive_the_codecs() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = SessionContext::new();
    let sink = ScratchSink::try_new(&dir_url(&dir), schema()).unwrap();
    let codec = ProcforestLogicalCodec::default();
    let mut bytes = Vec::new();
    codec
        .try_encode_table_provider(&"scratch".into(), Arc::new(sink.clone()), &mut bytes)
        .unwrap();
    let decoded = codec
        .try_decode_table_provider(&bytes, &"scratch".into(), schema(), &ctx.task_ctx())
        .unwrap();
    let decoded = decoded
        .downcast_ref::<ScratchSink>()
        .expect("a scratch sink");
    assert_eq!(decoded.dir, sink.dir);
    assert_eq!(decoded.write_id, sink.write_id);
    assert_eq!(decoded.schema(), schema());

    // The insert as the driver sends it (over rows a logical plan can carry).
    let input = ctx
        .sql("SELECT * FROM (VALUES ('a', 1), (NULL, 2), ('c', 3)) AS t(key, n)")
        .await
        .unwrap();
    let plan = insert(&input, sink);
    let bytes = logical_plan_to_bytes_with_extension_codec(&plan, &codec).unwrap();
    let plan =
        logical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &codec).unwrap();
    let physical = DataFrame::new(ctx.state(), plan)
        .create_physical_plan()
        .await
        .unwrap();
    // And the physical plan as the scheduler sends it to the executors.
    let physical_codec = ProcforestPhysicalCodec::default();
    let bytes =
        physical_plan_to_bytes_with_extension_codec(physical.clone(), &physical_codec).unwrap();
    let decoded =
        physical_plan_from_bytes_with_extension_codec(&bytes, &ctx.task_ctx(), &physical_codec)
            .unwrap();
    let writer = decoded
        .downcast_ref::<ParquetWriterExec>()
        .expect("a writer");
    assert_eq!(writer.dir, dir_url(&dir));
    collect_partitioned(decoded, ctx.task_ctx()).await.unwrap();
    assert_eq!(
        rows_in(&dir).await,
        vec![(Some("a".into()), 1), (None, 2), (Some("c".into()), 3)]
    );
}
