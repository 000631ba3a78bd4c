//! The `procforest` job's integration tests, one binary: the generator and the real sample
//! (`generate`), the run end to end on Ballista standalone (`run`), tables as Spark and
//! Databricks write them (`delta_tables`), and the summaries table (`summaries`).

mod delta_tables;
mod generate;
mod run;
mod summaries;
mod support;
