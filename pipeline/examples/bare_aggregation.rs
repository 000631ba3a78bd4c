//! The baseline for procforest's benchmarks: the same scan and GROUP BY the job's summaries
//! phase does (day × Computer × Account × AccountType × Process, with counts), over the same
//! Delta files, in plain DataFusion — no Ballista, no model, no outputs.
//!
//! `cargo run --release -p procforest-pipeline --example bare_aggregation -- TABLE [PARTITIONS]`
//! prints `{"groups": N, "seconds": S}`. For investigations, `BARE_SQL` replaces the query
//! over the registered `events` table and `BARE_EXPLAIN=1` prints its plan first;
//! `BARE_FILE_INTERVALS=1` gives the scan the job's file-day column
//! (`__procforest_file_interval_86400000000us`) and partitioning. The key columns are read
//! as string views, as the job reads them (and as DataFusion reads Parquet strings by
//! default); `BARE_PLAIN_STRINGS=1` reads them as the table's plain strings.

use std::{sync::Arc, time::Instant};

use datafusion::prelude::{SessionConfig, SessionContext};
use procforest_core::{scan::DeltaFilesTable, schema::keys_as_views};
use procforest_pipeline::source::{SnapshotChoice, TimeRange, open, resolve};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let table = args
        .next()
        .ok_or("usage: bare_aggregation TABLE [PARTITIONS]")?;
    let partitions: usize = match args.next() {
        Some(p) => p.parse()?,
        None => std::thread::available_parallelism()?.get(),
    };
    let started = Instant::now();
    let events = open(&table, &SnapshotChoice::Newest, Default::default()).await?;
    let (resolved, _) = resolve(
        &events,
        TimeRange {
            start: None,
            end: chrono::Utc::now(),
        },
    )
    .await?;
    let mut config = SessionConfig::new().with_target_partitions(partitions);
    // The keys read as the job reads them (string views), unless told otherwise.
    let schema = if std::env::var_os("BARE_PLAIN_STRINGS").is_some() {
        events.schema.clone()
    } else {
        keys_as_views(&events.schema)
    };
    let mut scan = DeltaFilesTable::try_new(resolved, schema)?;
    if std::env::var_os("BARE_FILE_INTERVALS").is_some() {
        // The job's scan: each file's day as a column, the scan partitioned by it.
        scan = scan.with_file_intervals(86_400_000_000);
        config.options_mut().optimizer.subset_repartition_threshold = 1;
    }
    let ctx = SessionContext::new_with_config(config);
    ctx.register_table("events", Arc::new(scan))?;
    // The day as the job computes it: integer arithmetic on microseconds (DataFusion's
    // `date_trunc('day', …)` on a UTC timestamp costs more than the rest of the query).
    let query = std::env::var("BARE_SQL").unwrap_or_else(|_| {
        "SELECT arrow_cast(t - ((t % 86400000000) + 86400000000) % 86400000000, \
         'Timestamp(Microsecond, Some(\"UTC\"))'), c, a, ty, p, count(*) \
         FROM (SELECT arrow_cast(\"TimeGenerated\", 'Int64') AS t, \"Computer\" AS c, \
         \"Account\" AS a, \"AccountType\" AS ty, \"Process\" AS p FROM events) \
         GROUP BY 1, 2, 3, 4, 5"
            .to_string()
    });
    if std::env::var_os("BARE_EXPLAIN").is_some() {
        ctx.sql(&format!("EXPLAIN {query}")).await?.show().await?;
    }
    // Stream the result and count its rows: every aggregate is computed (a wrapping
    // `SELECT count(*)` would let the optimiser drop unused ones).
    let mut stream = ctx.sql(&query).await?.execute_stream().await?;
    let mut groups = 0;
    while let Some(batch) = futures::StreamExt::next(&mut stream).await {
        groups += batch?.num_rows();
    }
    println!(
        "{}",
        serde_json::json!({"groups": groups, "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}
