//! The session every procforest process builds the same way: Ballista configuration with
//! procforest's codecs, and a runtime whose object stores resolve from the environment.

use std::{collections::HashMap, sync::Arc};

use ballista_core::extension::SessionConfigExt;
use datafusion::{
    common::Result,
    execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder},
    prelude::SessionConfig,
};

use crate::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    object_stores::ObjectStores,
};

/// A Ballista session configuration with procforest's codecs and `partitions` target
/// partitions.
pub fn session_config(partitions: usize) -> SessionConfig {
    let mut config = ballista_config(SessionConfig::new_with_ballista())
        .with_target_partitions(partitions.max(1));
    // A scan hash-partitioned on the interval (see `scan`) satisfies a GROUP BY on the
    // interval and more keys, however few partitions there are: no shuffle.
    config.options_mut().optimizer.subset_repartition_threshold = 1;
    config
}

/// Adds procforest's codecs to a Ballista configuration (for scheduler and executor
/// configuration producers, which start from Ballista's defaults).
pub fn ballista_config(config: SessionConfig) -> SessionConfig {
    config
        .with_ballista_logical_extension_codec(Arc::new(ProcforestLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(ProcforestPhysicalCodec::default()))
        .with_ballista_job_name("procforest")
}

/// A runtime whose object-store registry resolves local and Azure URLs by itself;
/// spill files go under `temp_dir` when given.
pub fn runtime_env(
    azure_options: HashMap<String, String>,
    temp_dir: Option<&str>,
) -> Result<Arc<RuntimeEnv>> {
    let mut builder = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(ObjectStores::with_azure_options(azure_options)));
    if let Some(dir) = temp_dir {
        builder = builder.with_temp_file_path(dir);
    }
    builder.build_arc()
}
