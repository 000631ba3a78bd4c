//! One isolation tree: its nodes and the plain recursive walk that defines its scores.

use crate::{Error, Result, average_path_length};

/// A node of an isolation tree.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Node {
    /// An internal node: rows with `x[feature] <= threshold` go to `left`, the others to
    /// `right`; a missing value (NaN) goes left when `missing_left`.
    Split {
        /// Feature index (into the forest's input columns).
        feature: u32,
        /// Split threshold, compared with the value cast to `f32`.
        threshold: f64,
        /// Index of the left child.
        left: u32,
        /// Index of the right child.
        right: u32,
        /// Where a NaN goes.
        missing_left: bool,
    },
    /// A leaf holding `n_samples` training rows.
    Leaf {
        /// Training rows that reached this leaf.
        n_samples: u32,
    },
}

/// An isolation tree: `nodes[0]` is the root; every child index is larger than its parent's.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tree {
    /// The nodes.
    pub nodes: Vec<Node>,
}

/// The path length scikit-learn adds up for a row ending in a leaf at `depth` (root = 0)
/// holding `n_samples` rows: `(depth + 1) + c(n_samples) − 1`, in that order of operations.
pub fn leaf_path_length(depth: u32, n_samples: u32) -> f64 {
    (depth as f64 + 1.0) + average_path_length(n_samples as f64) - 1.0
}

impl Tree {
    /// Checks that the tree is well formed for `n_features` inputs: children after their
    /// parent and in range, features in range, finite thresholds, at least one node.
    pub fn validate(&self, n_features: usize) -> Result<()> {
        let bad = |msg: String| Err(Error::BadModel(msg));
        if self.nodes.is_empty() {
            return bad("a tree has no nodes".into());
        }
        let len = self.nodes.len();
        for (i, node) in self.nodes.iter().enumerate() {
            if let Node::Split {
                feature,
                threshold,
                left,
                right,
                ..
            } = node
            {
                let (l, r) = (*left as usize, *right as usize);
                if l <= i || r <= i || l >= len || r >= len || l == r {
                    return bad(format!("node {i} has bad children {l}, {r}"));
                }
                if *feature as usize >= n_features {
                    return bad(format!(
                        "node {i} splits on feature {feature} of {n_features}"
                    ));
                }
                if !threshold.is_finite() {
                    return bad(format!("node {i} has threshold {threshold}"));
                }
            }
        }
        Ok(())
    }

    /// Depth of the deepest leaf (a single-leaf tree has depth 0).
    pub fn depth(&self) -> u32 {
        let mut depths = vec![0u32; self.nodes.len()];
        let mut max = 0;
        for (i, node) in self.nodes.iter().enumerate() {
            if let Node::Split { left, right, .. } = node {
                let d = depths[i] + 1;
                depths[*left as usize] = d;
                depths[*right as usize] = d;
                max = max.max(d);
            }
        }
        max
    }

    /// Walks one row from the root and returns the leaf's depth and sample count.
    /// `value(f)` gives the row's value of feature `f`, already cast to `f32`.
    pub fn leaf_of(&self, value: impl Fn(usize) -> f32) -> (u32, u32) {
        let mut i = 0usize;
        let mut depth = 0;
        loop {
            match &self.nodes[i] {
                Node::Leaf { n_samples } => return (depth, *n_samples),
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    missing_left,
                } => {
                    let x = value(*feature as usize);
                    let go_left = if x.is_nan() {
                        *missing_left
                    } else {
                        (x as f64) <= *threshold
                    };
                    i = if go_left { *left } else { *right } as usize;
                    depth += 1;
                }
            }
        }
    }

    /// Adds to `counts[f]` the number of splits on feature `f` along one row's path;
    /// returns the path's number of splits.
    pub fn count_path_features(&self, value: impl Fn(usize) -> f32, counts: &mut [u32]) -> u32 {
        let mut i = 0usize;
        let mut splits = 0;
        while let Node::Split {
            feature,
            threshold,
            left,
            right,
            missing_left,
        } = &self.nodes[i]
        {
            counts[*feature as usize] += 1;
            splits += 1;
            let x = value(*feature as usize);
            let go_left = if x.is_nan() {
                *missing_left
            } else {
                (x as f64) <= *threshold
            };
            i = if go_left { *left } else { *right } as usize;
        }
        splits
    }

    /// The path length of one row through this tree (see [`leaf_path_length`]).
    pub fn path_length(&self, value: impl Fn(usize) -> f32) -> f64 {
        let (depth, n) = self.leaf_of(value);
        leaf_path_length(depth, n)
    }
}
