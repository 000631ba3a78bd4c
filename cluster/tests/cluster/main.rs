//! The cluster's binaries as processes: flags, environment variables, health endpoints and
//! a bounded wait for the scheduler. (These tests also make `cargo test --workspace` build
//! the binaries the end-to-end tests start.)

mod executor_cli;
mod scheduler_cli;
