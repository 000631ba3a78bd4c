//! procforest's run, from a Delta table to a report, with no command line: a front end
//! fills a [`RunConfig`], [`run()`] returns a [`Report`], and sinks (another crate) deliver
//! it.
//!
//! The data flow, one module each: [`source`] (Delta snapshot → the files to read) →
//! [`stages`] (summaries → categories → features → training → scoring, on Ballista) →
//! [`report`] (the anomalies in report order, explained, with their command lines, and the
//! run's [`manifest`]). [`run()`] calls the stages in that order; [`scratch`] holds what they
//! hand each other; [`scores_out`] writes every score when asked.

pub mod config;
pub mod error;
pub mod files;
pub mod manifest;
pub mod observer;
pub mod report;
pub mod run;
pub mod scores_out;
pub mod scratch;
pub mod setting;
pub mod source;
pub mod stages;
pub mod summary_store;

pub use config::{AsOf, ConfigError, RunConfig, Setting};
pub use error::{ErrorKind, PipelineError, Result};
pub use observer::RunObserver;
pub use report::{Report, ScoredRow};
pub use run::{run, run_observed};
