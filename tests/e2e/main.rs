//! End-to-end tests across processes: the `procforest` driver against a real
//! `procforest-scheduler` and `procforest-executor`s on 127.0.0.1, tables in local folders
//! and in Azurite.

mod azure;
mod azure_monitor;
mod cluster;
mod common;
mod helm;
mod html_report;
mod progress;
mod sentinel;
