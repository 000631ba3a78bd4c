//! Event tables for procforest's tests, demos, benchmarks and detection evaluation; never
//! a dependency of a production run.
//!
//! - [`generate`]: a realistic synthetic tenant's 4688 events with injected attacks.
//! - [`sample_import`]: the public sample events (msticpy, OTRF) as a Delta table.
//! - [`delta_writer`]: how both write Delta tables (a commit per day, checkpoints).
//! - [`labels`]: each table's ground truth, and a report checked against it.
//! - [`evaluate`]: detection quality per feature set against the labels.

pub mod column_mapping;
pub mod deletion_vectors;
pub mod delta_writer;
pub mod evaluate;
pub mod generate;
pub mod inject;
pub mod labels;
pub mod sample_import;
