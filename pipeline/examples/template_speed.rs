//! How fast `procforest_core::template::template` runs, on one thread, over the command
//! lines of a table's Parquet files: per event, and per distinct line (what a plan that
//! templates each Parquet dictionary entry once would pay).
//!
//! `cargo run --release -p procforest-pipeline --example template_speed -- FILE.parquet ...`
//! prints `{"events": N, "distinct": D, "per_event_s": S, "per_distinct_s": S2}`.

use std::{collections::HashSet, fs::File, time::Instant};

use arrow::array::{Array, AsArray};
use parquet::arrow::{ProjectionMask, arrow_reader::ParquetRecordBatchReaderBuilder};
use procforest_core::{
    schema::{ACCOUNT, COMMAND_LINE, COMPUTER},
    template::template,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    for path in std::env::args().skip(1) {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(&path)?)?;
        let schema = builder.parquet_schema();
        let wanted: Vec<usize> = (0..schema.num_columns())
            .filter(|&i| [COMMAND_LINE, ACCOUNT, COMPUTER].contains(&schema.column(i).name()))
            .collect();
        let mask = ProjectionMask::leaves(schema, wanted);
        for batch in builder.with_projection(mask).build()? {
            let batch = batch?;
            let text = |name: &str| -> Result<Vec<String>, Box<dyn std::error::Error>> {
                let column = batch.column_by_name(name).ok_or(format!("no {name}"))?;
                let column = arrow::compute::cast(column, &arrow::datatypes::DataType::Utf8)?;
                let strings = column.as_string::<i32>();
                Ok((0..strings.len())
                    .map(|i| match strings.is_valid(i) {
                        true => strings.value(i).to_string(),
                        false => String::new(),
                    })
                    .collect())
            };
            let (lines, accounts, hosts) = (text(COMMAND_LINE)?, text(ACCOUNT)?, text(COMPUTER)?);
            rows.extend(
                lines
                    .into_iter()
                    .zip(accounts)
                    .zip(hosts)
                    .map(|((l, a), h)| (l, a, h)),
            );
        }
    }
    let started = Instant::now();
    let mut bytes = 0usize;
    for (line, account, host) in &rows {
        bytes += template(line, Some(account), Some(host)).len();
    }
    let per_event = started.elapsed().as_secs_f64();
    let distinct: HashSet<&(String, String, String)> = rows.iter().collect();
    let started = Instant::now();
    for (line, account, host) in &distinct {
        bytes += template(line, Some(account), Some(host)).len();
    }
    let per_distinct = started.elapsed().as_secs_f64();
    println!(
        "{{\"events\": {}, \"distinct\": {}, \"per_event_s\": {per_event:.3}, \
         \"per_distinct_s\": {per_distinct:.3}, \"bytes\": {bytes}}}",
        rows.len(),
        distinct.len()
    );
    Ok(())
}
