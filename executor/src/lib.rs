//! procforest's Ballista executor configuration, shared by the `procforest-executor`
//! binary and the driver's in-process standalone mode.

use std::{collections::HashMap, sync::Arc};

use ballista_core::extension::SessionConfigExt;
use ballista_executor::executor_process::ExecutorProcessConfig;
use datafusion::{execution::SessionStateBuilder, prelude::SessionConfig};
use procforest_core::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    session::{ballista_config, runtime_env},
};

/// Sets procforest's codecs, session configuration, functions and object stores on
/// `config`, with spill files under `work_dir`.
pub fn configure(config: &mut ExecutorProcessConfig, work_dir: &str) {
    config.override_logical_codec = Some(Arc::new(ProcforestLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ProcforestPhysicalCodec::default()));
    // Every function DataFusion's defaults have (Ballista's default registry lacks the
    // nested ones, e.g. `array_sort`, which the job's plans use).
    config.override_function_registry = Some(Arc::new(
        (&SessionStateBuilder::new().with_default_features().build()).into(),
    ));
    config.override_config_producer = Some(Arc::new(|| {
        ballista_config(SessionConfig::new_with_ballista())
    }));
    let work_dir = work_dir.to_string();
    config.override_runtime_producer = Some(Arc::new(move |_: &SessionConfig| {
        runtime_env(HashMap::new(), Some(&work_dir))
    }));
}
