//! procforest's Ballista scheduler configuration, shared by the `procforest-scheduler`
//! binary and the driver's in-process standalone mode.

use std::{collections::HashMap, sync::Arc};

use ballista_core::{extension::SessionConfigExt, utils::default_session_builder};
use ballista_scheduler::config::SchedulerConfig;
use datafusion::{execution::SessionStateBuilder, prelude::SessionConfig};
use procforest_core::{
    codec::{ProcforestLogicalCodec, ProcforestPhysicalCodec},
    session::{ballista_config, runtime_env},
};

/// `config` with procforest's codecs, session configuration and object stores.
pub fn configure(mut config: SchedulerConfig) -> SchedulerConfig {
    config.override_logical_codec = Some(Arc::new(ProcforestLogicalCodec::default()));
    config.override_physical_codec = Some(Arc::new(ProcforestPhysicalCodec::default()));
    config
        .with_override_config_producer(Arc::new(|| {
            ballista_config(SessionConfig::new_with_ballista())
        }))
        .with_override_session_builder(Arc::new(|session_config: SessionConfig| {
            let state = default_session_builder(session_config)?;
            Ok(SessionStateBuilder::new_from_existing(state)
                .with_runtime_env(runtime_env(HashMap::new(), None)?)
                .build())
        }))
}
