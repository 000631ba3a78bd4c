//! What procforest's driver, scheduler and executors share: the cluster's vocabulary.
//! Nothing here knows the command line, Delta's transaction log or the run's order of
//! stages; everything here must decode identically on every process.
//!
//! - [`schema`]: every column and table name the stages share — the 4688 event schema,
//!   the summary, feature and score columns, the run's registered tables.
//! - [`scan`]: the explicit-file Delta scan, a table provider holding the files the driver
//!   resolved from a Delta snapshot, read as plain Parquet (executors need no delta-rs).
//! - [`key_counts`]: the summaries' counts read straight from interval-aligned files, the
//!   keys as Parquet dictionary indices (a table provider and its execution plan).
//! - [`partition_writer`]: a write-only table whose inserts write every partition's rows to its
//!   own Parquet file (the job's intermediate results), and may digest them as they go
//!   (category tallies and training-sample candidates for the driver).
//! - [`udf`]: the scoring UDF that carries the trained model inside the plan, and the
//!   seeded sample-key hash.
//! - [`codec`]: logical and physical codecs that encode those and delegate everything
//!   else to Ballista's own codecs.
//! - [`object_stores`]: an object-store registry that resolves `file://` and Azure URLs
//!   from the environment, on whichever process needs them.
//! - [`session`]: the session configuration every process builds the same way.
//! - [`template`]: command lines reduced to templates (what varies between runs of the
//!   same command replaced by placeholders).

pub mod codec;
pub mod deleted_rows;
pub mod key_counts;
pub mod object_stores;
pub mod partition_writer;
pub mod scan;
pub mod schema;
pub mod session;
pub mod template;
pub mod udf;

use std::sync::Arc;

use datafusion::{
    common::{DataFusionError, Result},
    physical_plan::ExecutionPlan,
};

/// The one input of plan node `node` (ours have one), or an internal error naming it.
pub(crate) fn single_input<'a>(
    node: &str,
    inputs: &'a [Arc<dyn ExecutionPlan>],
) -> Result<&'a Arc<dyn ExecutionPlan>> {
    match inputs {
        [input] => Ok(input),
        _ => Err(DataFusionError::Internal(format!(
            "{node} has one input, not {}",
            inputs.len()
        ))),
    }
}
