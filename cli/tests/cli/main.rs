//! The `procforest` job's integration tests, one binary: the generator and the real sample
//! (`generate`), the run end to end on Ballista standalone (`run`), and tables as Spark and
//! Databricks write them (`delta_tables`).

mod delta_tables;
mod generate;
mod run;
mod support;
