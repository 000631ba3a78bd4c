//! The model a run trains and ships: one isolation forest, or a forest per family of
//! features ([`FamilyForest`]). Both score rows (lower is more abnormal), flag those below
//! their offset, explain rows by the features that isolated them, and travel as bytes.

use crate::{FamilyForest, IsolationForest, Result};

/// A trained model; see the module documentation.
// One model per run, held behind an `Arc`: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    /// One forest over every feature (scikit-learn's `IsolationForest`).
    Forest(IsolationForest),
    /// A forest per family of features, combined.
    Families(FamilyForest),
}

impl Model {
    /// Number of input columns.
    pub fn n_features(&self) -> usize {
        match self {
            Model::Forest(m) => m.n_features(),
            Model::Families(m) => m.n_features(),
        }
    }

    /// The threshold: a score below it is an anomaly.
    pub fn offset(&self) -> f64 {
        match self {
            Model::Forest(m) => m.offset(),
            Model::Families(m) => m.offset(),
        }
    }

    /// The prediction for one score: −1 when `score − offset < 0`.
    pub fn predict_score(&self, score: f64) -> i8 {
        if score - self.offset() < 0.0 { -1 } else { 1 }
    }

    /// One score per row; lower is more abnormal.
    pub fn score_samples<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<f64>> {
        match self {
            Model::Forest(m) => m.score_samples(columns),
            Model::Families(m) => m.score_samples(columns),
        }
    }

    /// Scores `columns` (all of the model's, of equal length) into `out`, with the fast
    /// scorers.
    pub fn score_into<C: AsRef<[f64]>>(&self, columns: &[C], out: &mut [f64]) {
        match self {
            Model::Forest(m) => m.flat().score_into(columns, out),
            Model::Families(m) => m.score_into(columns, out),
        }
    }

    /// Which features isolated each row (shares summing to 1 per row).
    pub fn explain<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<Vec<f64>>> {
        match self {
            Model::Forest(m) => m.explain(columns),
            Model::Families(m) => m.explain(columns),
        }
    }

    /// The forests, in order (one, or one per family).
    pub fn forests(&self) -> Vec<&IsolationForest> {
        match self {
            Model::Forest(m) => vec![m],
            Model::Families(m) => m.families().iter().map(|f| f.forest()).collect(),
        }
    }

    /// Trees in all.
    pub fn trees(&self) -> usize {
        self.forests().iter().map(|f| f.trees().len()).sum()
    }

    /// Rows per tree.
    pub fn max_samples(&self) -> usize {
        self.forests().first().map_or(0, |f| f.max_samples())
    }

    /// What fitting noticed.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .forests()
            .iter()
            .flat_map(|f| f.warnings().iter().cloned())
            .collect();
        if let Model::Families(m) = self {
            warnings.extend(m.warnings().iter().cloned());
        }
        warnings
    }

    /// Builds the forests' fast scorers ahead of the first score.
    pub fn prepare(&self) {
        self.forests().iter().for_each(|f| f.prepare());
    }

    /// The model as pretty JSON.
    pub fn to_json(&self) -> String {
        match self {
            Model::Forest(m) => m.to_json(),
            Model::Families(m) => m.to_json(),
        }
    }

    /// Reads a model written by [`Model::to_json`].
    pub fn from_json(text: &str) -> Result<Self> {
        match FamilyForest::is_json(text) {
            true => FamilyForest::from_json(text).map(Model::Families),
            false => IsolationForest::from_json(text).map(Model::Forest),
        }
    }

    /// The model's compact binary form (a single forest's is [`IsolationForest::to_bytes`]).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Model::Forest(m) => m.to_bytes(),
            Model::Families(m) => m.to_bytes(),
        }
    }

    /// Reads a model written by [`Model::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        match FamilyForest::is_bytes(bytes) {
            true => FamilyForest::from_bytes(bytes).map(Model::Families),
            false => IsolationForest::from_bytes(bytes).map(Model::Forest),
        }
    }

    /// SHA-256 of a model's bytes, hex.
    pub fn content_hash_of(bytes: &[u8]) -> String {
        IsolationForest::content_hash_of(bytes)
    }
}
