//! Loading a forest exported from scikit-learn, to check this crate against it.
//!
//! The export (see `iforest/tools/export_sklearn.py`) is JSON holding scikit-learn's own
//! node arrays for every tree plus the feature subset of each tree, so the loaded model
//! gives scikit-learn's `score_samples` for the same trees.

use crate::{Error, IsolationForest, Node, Result, Tree};

/// One exported scikit-learn tree (`estimator.tree_` arrays).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SklearnTree {
    /// `children_left` (−1 for a leaf).
    pub children_left: Vec<i64>,
    /// `children_right` (−1 for a leaf).
    pub children_right: Vec<i64>,
    /// `feature`, an index into the tree's feature subset (negative for a leaf).
    pub feature: Vec<i64>,
    /// `threshold`.
    pub threshold: Vec<f64>,
    /// `n_node_samples`.
    pub n_node_samples: Vec<i64>,
    /// `missing_go_to_left` (0 or 1).
    pub missing_go_to_left: Vec<u8>,
}

/// An exported scikit-learn `IsolationForest`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SklearnForest {
    /// Number of input features (`n_features_in_`).
    pub n_features: usize,
    /// `max_samples_`.
    pub max_samples: usize,
    /// `offset_`.
    pub offset: f64,
    /// `estimators_features_`: each tree's feature subset.
    pub estimators_features: Vec<Vec<u32>>,
    /// The trees.
    pub trees: Vec<SklearnTree>,
}

impl SklearnForest {
    /// Parses the export.
    pub fn from_json(text: &str) -> Result<Self> {
        serde_json::from_str(text).map_err(|e| Error::BadModel(format!("scikit-learn export: {e}")))
    }

    /// Converts the exported trees into a model of this crate.
    pub fn to_model(&self) -> Result<IsolationForest> {
        if self.estimators_features.len() != self.trees.len() {
            return Err(Error::BadModel(
                "estimators_features and trees differ in length".into(),
            ));
        }
        let trees = self
            .trees
            .iter()
            .zip(&self.estimators_features)
            .enumerate()
            .map(|(t, (tree, features))| {
                convert_tree(tree, features)
                    .map_err(|e| Error::BadModel(format!("scikit-learn tree {t}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        IsolationForest::from_parts(self.n_features, self.max_samples, trees, self.offset)
    }
}

fn convert_tree(tree: &SklearnTree, features: &[u32]) -> Result<Tree> {
    let n = tree.children_left.len();
    let same_len = [
        tree.children_right.len(),
        tree.feature.len(),
        tree.threshold.len(),
        tree.n_node_samples.len(),
        tree.missing_go_to_left.len(),
    ]
    .iter()
    .all(|&l| l == n);
    if !same_len {
        return Err(Error::BadModel("node arrays differ in length".into()));
    }
    let index = |v: i64| u32::try_from(v).map_err(|_| Error::BadModel(format!("bad index {v}")));
    let nodes = (0..n)
        .map(|i| {
            if tree.children_left[i] < 0 {
                Ok(Node::Leaf {
                    n_samples: index(tree.n_node_samples[i])?,
                })
            } else {
                let local = index(tree.feature[i])? as usize;
                let feature = *features
                    .get(local)
                    .ok_or_else(|| Error::BadModel(format!("feature {local} not in subset")))?;
                Ok(Node::Split {
                    feature,
                    threshold: tree.threshold[i],
                    left: index(tree.children_left[i])?,
                    right: index(tree.children_right[i])?,
                    missing_left: tree.missing_go_to_left[i] != 0,
                })
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Tree { nodes })
}
