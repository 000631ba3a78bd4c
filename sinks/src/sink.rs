//! The trait every output implements.

use procforest_pipeline::Report;

use crate::error::Result;

/// One output of a run.
#[async_trait::async_trait]
pub trait Sink: Send {
    /// Delivers the report.
    async fn deliver(&mut self, report: &Report) -> Result<()>;
}
