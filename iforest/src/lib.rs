//! An isolation forest with scikit-learn semantics and a fast columnar scorer.
//!
//! This crate is procforest's model: pure algorithm, no DataFusion. It follows
//! scikit-learn 1.9's `IsolationForest` (defaults, sampling, split rules, path
//! lengths, scores, offset, NaN handling) so that results are distributed the same
//! way, and adds what a batch job needs: a versioned, serialisable model and a
//! branch-free block scorer that gives exactly the scores of a recursive walk.
//!
//! ```
//! use iforest::{IsolationForestParams, MaxSamples};
//!
//! let x0: Vec<f64> = (0..500).map(|i| (i % 50) as f64).collect();
//! let x1: Vec<f64> = (0..500).map(|i| (i % 7) as f64).collect();
//! let model = IsolationForestParams::default()
//!     .max_samples(MaxSamples::Count(100))
//!     .seed(42)
//!     .fit(&[&x0[..], &x1[..]])
//!     .unwrap();
//! let scores = model.score_samples(&[&[1000.0][..], &[3.0][..]]).unwrap();
//! assert!(scores[0] < -0.5, "a far-away point is anomalous");
//! ```

mod error;
mod families;
mod fit;
mod forest;
mod model;
mod params;
mod path_length;
mod persist;
mod scorer;
pub mod sklearn;
mod tree;

pub use error::Error;
pub use families::{Family, FamilyForest, REST_WEIGHT, combine};
pub use forest::IsolationForest;
pub use model::Model;
pub use params::{Contamination, IsolationForestParams, MaxFeatures, MaxSamples};
pub use path_length::average_path_length;
pub use persist::MODEL_FORMAT_VERSION;
pub use scorer::FlatForest;
pub use tree::{Node, Tree};

/// Result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
