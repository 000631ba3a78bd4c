//! Scalar functions procforest adds to plans. Both carry their state (the model, the seed)
//! in the plan itself through [`crate::codec`], so no process needs them registered.

mod sample_key;
mod score;

pub use sample_key::{SAMPLE_KEY_NAME, SampleKeyUdf, sample_key};
pub use score::{SCORE_NAME, ScoreUdf, cached_models};
