//! The `procforest` job's integration tests, one binary: the generator and the real sample
//! (`generate`), and the run end to end on Ballista standalone (`run`).

mod generate;
mod run;
mod support;
