//! A trained isolation forest: scores, decision function, predictions.

use std::sync::OnceLock;

use crate::{
    Error, FlatForest, IsolationForestParams, Result, Tree, average_path_length, fit::Columns,
};

/// A trained isolation forest.
///
/// Scores follow scikit-learn's `score_samples`: the opposite of the anomaly score of the
/// original paper, in [−1, 0); the lower, the more abnormal.
#[derive(Clone)]
pub struct IsolationForest {
    pub(crate) n_features: usize,
    pub(crate) max_samples: usize,
    pub(crate) trees: Vec<Tree>,
    pub(crate) offset: f64,
    pub(crate) params: IsolationForestParams,
    pub(crate) warnings: Vec<String>,
    flat: OnceLock<FlatForest>,
}

impl std::fmt::Debug for IsolationForest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolationForest")
            .field("n_features", &self.n_features)
            .field("max_samples", &self.max_samples)
            .field("trees", &self.trees.len())
            .field(
                "nodes",
                &self.trees.iter().map(|t| t.nodes.len()).sum::<usize>(),
            )
            .field("offset", &self.offset)
            .finish()
    }
}

impl PartialEq for IsolationForest {
    fn eq(&self, other: &Self) -> bool {
        self.n_features == other.n_features
            && self.max_samples == other.max_samples
            && self.trees == other.trees
            && self.offset.to_bits() == other.offset.to_bits()
            && self.params == other.params
    }
}

impl IsolationForest {
    /// Assembles a model from its parts (e.g. loaded from scikit-learn) after checking them.
    pub fn from_parts(
        n_features: usize,
        max_samples: usize,
        trees: Vec<Tree>,
        offset: f64,
    ) -> Result<Self> {
        if n_features == 0 {
            return Err(Error::NoFeatures);
        }
        if trees.is_empty() {
            return Err(Error::BadModel("the forest has no trees".into()));
        }
        if max_samples == 0 {
            return Err(Error::BadModel("max_samples is 0".into()));
        }
        if !offset.is_finite() {
            return Err(Error::BadModel(format!("offset {offset} is not finite")));
        }
        for (t, tree) in trees.iter().enumerate() {
            tree.validate(n_features)
                .map_err(|e| Error::BadModel(format!("tree {t}: {e}")))?;
        }
        Ok(Self {
            n_features,
            max_samples,
            trees,
            offset,
            params: IsolationForestParams::default(),
            warnings: Vec::new(),
            flat: OnceLock::new(),
        })
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }
    /// Rows each tree was built from (scikit-learn's `max_samples_`).
    pub fn max_samples(&self) -> usize {
        self.max_samples
    }
    /// The trees.
    pub fn trees(&self) -> &[Tree] {
        &self.trees
    }
    /// The decision offset (scikit-learn's `offset_`): −0.5 for contamination `auto`.
    pub fn offset(&self) -> f64 {
        self.offset
    }
    /// The parameters the model was fitted with.
    pub fn params(&self) -> &IsolationForestParams {
        &self.params
    }
    /// Warnings scikit-learn would have issued while fitting (e.g. max_samples capped).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The flattened, fast form of this forest (built once, on first use).
    pub fn flat(&self) -> &FlatForest {
        self.flat.get_or_init(|| FlatForest::new(self))
    }

    /// Builds now what scoring and explaining otherwise build on first use (the flat
    /// forest and each leaf's path shares), e.g. on an idle thread while rows are coming.
    pub fn prepare(&self) {
        self.flat().prepare_explanations();
    }

    /// `T · c(max_samples)`: the normaliser of the summed path lengths.
    pub(crate) fn denominator(&self) -> f64 {
        self.trees.len() as f64 * average_path_length(self.max_samples as f64)
    }

    fn check_input<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<()> {
        if columns.len() != self.n_features {
            return Err(Error::WrongFeatureCount {
                expected: self.n_features,
                got: columns.len(),
            });
        }
        let rows = columns[0].as_ref().len();
        for (feature, c) in columns.iter().enumerate() {
            if c.as_ref().len() != rows {
                return Err(Error::MismatchedColumns {
                    feature,
                    len: c.as_ref().len(),
                    expected: rows,
                });
            }
        }
        Ok(())
    }

    /// scikit-learn's `score_samples`: one score per row, in [−1, 0); lower is more
    /// abnormal. Uses the fast block scorer.
    pub fn score_samples<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<f64>> {
        self.check_input(columns)?;
        let rows = columns[0].as_ref().len();
        let mut out = vec![0.0; rows];
        self.flat().score_into(columns, &mut out);
        Ok(out)
    }

    /// The same scores by a plain recursive walk of every tree: the reference the fast
    /// scorer must equal exactly.
    pub fn score_samples_reference<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<f64>> {
        self.check_input(columns)?;
        let input = Columns::new(columns, false)?;
        Ok((0..input.rows)
            .map(|r| {
                let mut depth_sum = 0.0;
                for tree in &self.trees {
                    depth_sum += tree.path_length(|f| input.cols[f][r]);
                }
                score_from_depth_sum(depth_sum, self.denominator())
            })
            .collect())
    }

    /// Which features isolated each row: for every tree, each feature's share of the splits
    /// on the row's path, averaged over the trees. A row's shares sum to 1 (0 for a forest
    /// of single-leaf trees). Meant for the few rows of a report.
    pub fn explain<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<Vec<f64>>> {
        self.check_input(columns)?;
        let input = Columns::new(columns, false)?;
        let flat = self.flat();
        // Rows are independent: split them over the cores (same result whatever the split).
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(input.rows.div_ceil(1024))
            .max(1);
        let chunk = input.rows.div_ceil(threads).max(1);
        let parts: Vec<Option<Vec<Vec<f64>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..input.rows)
                .step_by(chunk)
                .map(|start| {
                    let input = &input;
                    let rows = start..(start + chunk).min(input.rows);
                    scope.spawn(move || flat.explain_rows(rows, |f, r| input.cols[f][r]))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("explaining thread"))
                .collect()
        });
        match parts.into_iter().collect::<Option<Vec<_>>>() {
            Some(parts) => Ok(parts.into_iter().flatten().collect()),
            None => self.explain_reference(columns),
        }
    }

    /// The same explanations by a walk of every tree: the reference [`Self::explain`]
    /// must equal exactly, and the way for forests too deep to flatten.
    pub fn explain_reference<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<Vec<f64>>> {
        self.check_input(columns)?;
        let input = Columns::new(columns, false)?;
        let mut counts = vec![0; self.n_features];
        Ok((0..input.rows)
            .map(|r| {
                let mut shares = vec![0.0; self.n_features];
                for tree in &self.trees {
                    let splits = tree.count_path_features(|f| input.cols[f][r], &mut counts);
                    // Each feature on the path gets its count of splits over the path's.
                    for (share, count) in shares.iter_mut().zip(counts.iter_mut()) {
                        if *count > 0 {
                            *share += *count as f64 / splits as f64;
                            *count = 0;
                        }
                    }
                }
                shares
                    .iter_mut()
                    .for_each(|s| *s /= self.trees.len() as f64);
                shares
            })
            .collect())
    }

    /// scikit-learn's `decision_function`: `score_samples − offset`; negative is abnormal.
    pub fn decision_function<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<f64>> {
        let mut s = self.score_samples(columns)?;
        s.iter_mut().for_each(|v| *v -= self.offset);
        Ok(s)
    }

    /// scikit-learn's `predict`: −1 for an anomaly, 1 for a normal row.
    pub fn predict<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<Vec<i8>> {
        Ok(self
            .decision_function(columns)?
            .into_iter()
            .map(|d| if d < 0.0 { -1 } else { 1 })
            .collect())
    }

    /// The prediction for one score: −1 when `score − offset < 0`.
    pub fn predict_score(&self, score: f64) -> i8 {
        if score - self.offset < 0.0 { -1 } else { 1 }
    }
}

/// The score of a row from the sum of its path lengths over the trees, as scikit-learn
/// computes it: `−2^(−sum / (T · c(ψ)))`, or −1 when the normaliser is 0.
pub(crate) fn score_from_depth_sum(depth_sum: f64, denominator: f64) -> f64 {
    let ratio = if denominator != 0.0 {
        depth_sum / denominator
    } else {
        1.0
    };
    -(2f64.powf(-ratio))
}
