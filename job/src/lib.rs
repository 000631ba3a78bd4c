//! procforest: finds anomalous process executions in Windows Security 4688 events kept in
//! a Delta Lake table.
//!
//! The data flow, one module each: [`source`] (Delta snapshot → files to read) →
//! [`pipeline`] (summaries → features → training sample → model → scores, on Ballista) →
//! [`sinks`] (console, JSON lines, Parquet, Delta, manifest). [`generate`] and [`sample`]
//! make event tables for tests, demos and benchmarks.

pub mod cli;
pub mod context;
pub mod delta_io;
pub mod error;
pub mod evaluate;
pub mod generate;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod sample;
pub mod scratch;
pub mod sinks;
pub mod source;
