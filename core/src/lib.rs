//! What procforest's driver, scheduler and executors share.
//!
//! - [`events`]: the vocabulary — the 4688 event schema and the summary/feature columns.
//! - [`scan`]: the explicit-file Delta scan, a table provider holding the files the driver
//!   resolved from a Delta snapshot, read as plain Parquet (executors need no delta-rs).
//! - [`key_counts`]: the summaries' counts read straight from interval-aligned files, the
//!   keys as Parquet dictionary indices (a table provider and its execution plan).
//! - [`scratch`]: a write-only table whose inserts write every partition's rows to its
//!   own Parquet file (the job's intermediate results), and may digest them as they go
//!   (category tallies and training-sample candidates for the driver).
//! - [`udf`]: the scoring UDF that carries the trained model inside the plan, and the
//!   seeded sample-key hash.
//! - [`codec`]: logical and physical codecs that encode those and delegate everything
//!   else to Ballista's own codecs.
//! - [`object_stores`]: an object-store registry that resolves `file://` and Azure URLs
//!   from the environment, on whichever process needs them.
//! - [`session`]: the session configuration every process builds the same way.
//! - [`process`]: the async runtime every process runs, and waiting for a peer.

pub mod codec;
pub mod events;
pub mod key_counts;
pub mod object_stores;
pub mod process;
pub mod scan;
pub mod scratch;
pub mod session;
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
