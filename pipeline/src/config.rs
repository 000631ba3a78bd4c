//! A run's configuration: what to read, how to summarise and model it, and the one output
//! the stages write themselves (every score). Checked by [`RunConfig::validate`] before
//! anything is read; a front end (the CLI) fills it from its flags.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

pub use crate::{
    error::ConfigError,
    setting::{MAX_SAMPLES, MAX_TREE_ROWS, MAX_TREES, Setting},
    source::SnapshotChoice,
    stages::{
        features::FeatureSet,
        summaries::Interval,
        training::{ModelSettings, Scoring},
    },
};

/// Everything a run needs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunConfig {
    /// Table location (path or URL).
    pub table: String,
    /// How the manifest names the table (the location, unless the front end says better).
    #[serde(skip)]
    pub table_label: Option<String>,
    /// Which snapshot.
    #[serde(skip)]
    pub snapshot: SnapshotChoice,
    /// Storage options for the table (never logged: values may be secrets).
    #[serde(skip)]
    pub storage_options: HashMap<String, String>,
    /// The as-of time: events after it are ignored; the report window ends here.
    pub as_of: AsOf,
    /// Report window length, microseconds.
    pub window_us: i64,
    /// Training history in days (`None` = all).
    pub train_days: Option<u32>,
    /// Summary interval.
    pub interval: Interval,
    /// The preset the settings started from (recorded in the manifest).
    pub preset: Preset,
    /// The model's inputs.
    pub features: FeatureSet,
    /// Model settings.
    pub model: ModelSettings,
    /// Target partitions.
    pub partitions: usize,
    /// Scheduler URL (`None` = standalone).
    pub scheduler: Option<String>,
    /// Scratch location for intermediate results (`None` = a temporary folder).
    pub scratch: Option<String>,
    /// How long another run's scratch folder may go without a sign of life before a run
    /// removes it (see [`crate::scratch`]).
    pub scratch_stale_after: std::time::Duration,
    /// Where every scored row is written by the executors, as a folder of Parquet files
    /// (a local path, or a URL the executors can write to).
    pub scores_out: Option<String>,
    /// Whether `scores_out` is a Parquet folder or a Delta table.
    pub scores_format: crate::scores_out::ScoresFormat,
    /// The summaries table (a path or URL, like the table's): the summary rows of earlier
    /// runs, read where their source files are unchanged (see [`crate::summary_store`]).
    pub summaries: Option<String>,
    /// Whether the summaries table is rebuilt: every interval computed from the events,
    /// whatever it holds.
    pub rebuild_summaries: bool,
    /// Whether to count the report groups' scores into a histogram (for a report page):
    /// one more small job over the report's rows, unless every score is written anyway.
    pub score_histogram: bool,
}

/// A named choice of the model's settings. Settings given beside a preset override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// The notebook's: the six seed features, 100 trees of 100 rows, contamination `auto`
    /// (scikit-learn's offset −0.5, which flags most of a day: see EVALUATION.md).
    Notebook,
    /// A nightly SOC report: the evidence features (command-line novelty, lineage, first
    /// seen, rarity), 100 trees of 256 rows, and the threshold at the training window's
    /// 1 % most anomalous groups; EVALUATION.md measures what it flags and finds.
    Soc,
}

impl Preset {
    /// Every preset, in documentation order.
    pub const ALL: [Preset; 2] = [Preset::Notebook, Preset::Soc];

    /// The preset's name (`notebook`, `soc`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Notebook => "notebook",
            Preset::Soc => "soc",
        }
    }

    /// The preset's features.
    pub fn features(self) -> FeatureSet {
        match self {
            Preset::Notebook => FeatureSet::Seed,
            Preset::Soc => FeatureSet::Evidence,
        }
    }

    /// The preset's model settings, with `seed`.
    pub fn model(self, seed: u64) -> ModelSettings {
        let (max_samples, contamination, scoring) = match self {
            Preset::Notebook => (100, None, Scoring::Forest),
            Preset::Soc => (256, Some(0.01), Scoring::Families),
        };
        ModelSettings {
            scoring,
            trees: 100,
            max_samples,
            seed,
            contamination,
        }
    }
}

/// The as-of time.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AsOf {
    /// A given time.
    At(DateTime<Utc>),
    /// The end of the UTC day of the table's newest event (for a table whose events are
    /// long past, such as the bundled sample).
    EndOfNewestDay,
}

impl RunConfig {
    /// Checks every setting's range; the error names the first one out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let model = &self.model;
        if model.trees == 0 {
            return Err(ConfigError::AtLeastOne(Setting::Trees));
        }
        if model.max_samples == 0 {
            return Err(ConfigError::AtLeastOne(Setting::MaxSamples));
        }
        // The model rides in every task of the scoring stage: keep it well under gRPC's
        // 16 MiB messages (about 26 bytes per training row per tree, 13 MB at the limit).
        // Scoring by families, each family's forest also carries its training rows'
        // scores (8 bytes a row beside the forest's ~26 a row per tree): counted as a
        // third more rows.
        let tree_rows = model.trees * model.max_samples;
        let tree_rows = match model.scoring {
            Scoring::Forest => tree_rows,
            Scoring::Families => tree_rows * self.features.families().len() * 4 / 3,
        };
        if model.trees > MAX_TREES || model.max_samples > MAX_SAMPLES || tree_rows > MAX_TREE_ROWS {
            return Err(ConfigError::ModelTooLarge {
                trees: model.trees,
                max_samples: model.max_samples,
            });
        }
        if let Some(c) = model.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return Err(ConfigError::Contamination(c));
        }
        if model.scoring == Scoring::Families && model.contamination.is_none() {
            return Err(ConfigError::FamiliesNeedContamination);
        }
        if self.window_us <= 0 {
            return Err(ConfigError::NotPositive(Setting::Window));
        }
        if self.partitions == 0 {
            return Err(ConfigError::AtLeastOne(Setting::Partitions));
        }
        if self.train_days == Some(0) {
            return Err(ConfigError::AtLeastOne(Setting::TrainDays));
        }
        Ok(())
    }
}
