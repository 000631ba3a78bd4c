//! Scalar functions procforest adds to plans. They carry their state (the model, the seed)
//! in the plan itself through [`crate::codec`], so no process needs them registered.

mod category_index;
mod group_set;
mod line;
mod sample_key;
mod score;
mod sorted_distinct;

pub use category_index::{
    CATEGORY_INDEX_PREFIX, CategoryIndexUdf, name_for as category_index_name,
};
pub use group_set::{GROUP_SET_NAME, Group, GroupSetUdf};
pub use line::{LINE_ENTROPY_NAME, LineEntropyUdf, TEMPLATE_NAME, TemplateUdf, byte_entropy};
pub use sample_key::{SAMPLE_KEY_NAME, SampleKeyUdf, sample_key, sample_keys};
pub use score::{SCORE_NAME, ScoreUdf, cached_models};
pub use sorted_distinct::{SORTED_DISTINCT_NAME, SortedDistinctUdf, sorted_distinct};
