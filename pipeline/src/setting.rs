//! The names of a run's settings, as its errors name them, and the limits of the model's.

/// Most trees a model may have.
pub const MAX_TREES: usize = 1000;
/// Most rows per tree.
pub const MAX_SAMPLES: usize = 4096;
/// Most trees × rows per tree (bounds the model's size in the plan).
pub const MAX_TREE_ROWS: usize = 500_000;

/// A setting of a run, as its errors name it (a front end names it its own way: see
/// [`crate::PipelineError::render`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Setting {
    /// [`crate::RunConfig::table`].
    Table,
    /// [`crate::config::SnapshotChoice::Version`].
    Version,
    /// [`crate::config::SnapshotChoice::Timestamp`].
    Timestamp,
    /// [`crate::RunConfig::storage_options`].
    StorageOptions,
    /// [`crate::RunConfig::as_of`].
    AsOf,
    /// [`crate::RunConfig::window_us`].
    Window,
    /// [`crate::RunConfig::train_days`].
    TrainDays,
    /// [`crate::RunConfig::interval`].
    Interval,
    /// [`crate::RunConfig::features`].
    Features,
    /// [`crate::config::ModelSettings::trees`].
    Trees,
    /// [`crate::config::ModelSettings::max_samples`].
    MaxSamples,
    /// [`crate::config::ModelSettings::contamination`].
    Contamination,
    /// [`crate::config::ModelSettings::scoring`].
    Scoring,
    /// [`crate::RunConfig::partitions`].
    Partitions,
    /// [`crate::RunConfig::scheduler`].
    Scheduler,
    /// [`crate::RunConfig::scratch`].
    Scratch,
    /// [`crate::RunConfig::scores_out`].
    ScoresOut,
    /// [`crate::RunConfig::summaries`].
    Summaries,
}

impl Setting {
    /// The setting's own name (its field's).
    pub fn name(self) -> &'static str {
        match self {
            Setting::Table => "table",
            Setting::Version => "version",
            Setting::Timestamp => "timestamp",
            Setting::StorageOptions => "storage_options",
            Setting::AsOf => "as_of",
            Setting::Window => "window",
            Setting::TrainDays => "train_days",
            Setting::Interval => "interval",
            Setting::Features => "features",
            Setting::Trees => "trees",
            Setting::MaxSamples => "max_samples",
            Setting::Contamination => "contamination",
            Setting::Scoring => "scoring",
            Setting::Partitions => "partitions",
            Setting::Scheduler => "scheduler",
            Setting::Scratch => "scratch",
            Setting::ScoresOut => "scores_out",
            Setting::Summaries => "summaries",
        }
    }
}
