//! The fast scorer: every tree padded to a complete tree of the forest's depth and walked
//! level by level over a block of rows, without branches.
//!
//! A leaf above the last level is padded: the nodes below it are copies that lead to leaves
//! all holding its path length, so whatever way a row goes below it, the result is the
//! same. Thresholds are rounded down to `f32` once, since for an `f32` value `x`,
//! `x <= t` exactly when `x <= round_down_f32(t)`. Path lengths are summed over trees in
//! tree order, as the recursive walk sums them, so scores are bit-identical to it.

use crate::{IsolationForest, Node, forest::score_from_depth_sum, tree::leaf_path_length};

/// Rows scored together: small enough for the block and its indices to stay in L1.
const BLOCK: usize = 256;
/// Deeper forests (max_samples above 2^16) are scored by walking the nodes.
const MAX_FLAT_DEPTH: u32 = 16;

/// An internal node of a padded tree.
#[derive(Debug, Clone, Copy, Default)]
#[repr(C)]
struct FlatNode {
    /// Largest `f32` not above the split threshold.
    threshold: f32,
    /// Feature index.
    feature: u32,
}

/// A forest flattened for fast scoring; see the module documentation.
#[derive(Clone)]
pub struct FlatForest {
    n_features: usize,
    n_trees: usize,
    depth: u32,
    /// Per tree, `2^depth − 1` internal nodes in breadth-first order.
    nodes: Vec<FlatNode>,
    /// Per tree and internal node: where a NaN goes.
    missing_left: Vec<bool>,
    /// Per tree, `2^depth` leaf path lengths.
    leaves: Vec<f64>,
    /// Per tree and leaf position, the level of the real leaf it pads (its number of
    /// splits), for explanations.
    leaf_levels: Vec<u8>,
    denominator: f64,
    /// The trees themselves, for forests too deep to pad.
    fallback: Option<Vec<crate::Tree>>,
    /// Each padded leaf's path shares, for explanations (built on first use).
    leaf_paths: std::sync::OnceLock<LeafPathShares>,
}

impl std::fmt::Debug for FlatForest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlatForest")
            .field("trees", &self.n_trees)
            .field("depth", &self.depth)
            .field("padded", &self.fallback.is_none())
            .finish()
    }
}

/// The largest `f32` that is not above `t`.
fn round_down_f32(t: f64) -> f32 {
    let r = t as f32;
    if (r as f64) > t { r.next_down() } else { r }
}

impl FlatForest {
    /// Flattens a forest.
    pub fn new(model: &IsolationForest) -> Self {
        let depth = model.trees.iter().map(|t| t.depth()).max().unwrap_or(0);
        let mut flat = Self {
            n_features: model.n_features,
            n_trees: model.trees.len(),
            depth,
            nodes: Vec::new(),
            missing_left: Vec::new(),
            leaves: Vec::new(),
            leaf_levels: Vec::new(),
            denominator: model.denominator(),
            fallback: None,
            leaf_paths: std::sync::OnceLock::new(),
        };
        if depth > MAX_FLAT_DEPTH {
            flat.fallback = Some(model.trees.clone());
            return flat;
        }
        let n_internal = (1usize << depth) - 1;
        let n_leaves = 1usize << depth;
        flat.nodes = vec![FlatNode::default(); n_internal * flat.n_trees];
        flat.missing_left = vec![false; n_internal * flat.n_trees];
        flat.leaves = vec![0.0; n_leaves * flat.n_trees];
        flat.leaf_levels = vec![0; n_leaves * flat.n_trees];
        for (t, tree) in model.trees.iter().enumerate() {
            let nodes = &mut flat.nodes[t * n_internal..(t + 1) * n_internal];
            let missing = &mut flat.missing_left[t * n_internal..(t + 1) * n_internal];
            let leaves = &mut flat.leaves[t * n_leaves..(t + 1) * n_leaves];
            let leaf_levels = &mut flat.leaf_levels[t * n_leaves..(t + 1) * n_leaves];
            // (node in the tree, position in its level, level)
            let mut stack = vec![(0usize, 0usize, 0u32)];
            while let Some((i, pos, level)) = stack.pop() {
                match &tree.nodes[i] {
                    Node::Split {
                        feature,
                        threshold,
                        left,
                        right,
                        missing_left,
                    } => {
                        let flat_index = (1usize << level) - 1 + pos;
                        nodes[flat_index] = FlatNode {
                            threshold: round_down_f32(*threshold),
                            feature: *feature,
                        };
                        missing[flat_index] = *missing_left;
                        stack.push((*left as usize, 2 * pos, level + 1));
                        stack.push((*right as usize, 2 * pos + 1, level + 1));
                    }
                    Node::Leaf { n_samples } => {
                        let span = 1usize << (depth - level);
                        leaves[pos * span..(pos + 1) * span]
                            .fill(leaf_path_length(level, *n_samples));
                        // `level` ≤ MAX_FLAT_DEPTH fits a byte.
                        leaf_levels[pos * span..(pos + 1) * span].fill(level as u8);
                    }
                }
            }
        }
        flat
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Scores `out.len()` rows of `columns` (one slice per feature) into `out`.
    ///
    /// # Panics
    /// If the number of columns or their lengths do not match; [`IsolationForest::score_samples`]
    /// checks these and returns an error instead.
    pub fn score_into<C: AsRef<[f64]>>(&self, columns: &[C], out: &mut [f64]) {
        self.score_with(columns.len(), out, |f, r| columns[f].as_ref()[r] as f32);
    }

    /// Scores rows given as `f32` columns.
    pub(crate) fn score_f32_columns(&self, columns: &[Vec<f32>], rows: usize) -> Vec<f64> {
        let mut out = vec![0.0; rows];
        self.score_with(columns.len(), &mut out, |f, r| columns[f][r]);
        out
    }

    /// Scores rows on up to `threads` threads, each taking a contiguous range of rows.
    pub fn score_parallel<C: AsRef<[f64]> + Sync>(
        &self,
        columns: &[C],
        out: &mut [f64],
        threads: usize,
    ) {
        let threads = threads.max(1);
        let chunk = out.len().div_ceil(threads).max(BLOCK);
        std::thread::scope(|s| {
            for (c, part) in out.chunks_mut(chunk).enumerate() {
                s.spawn(move || {
                    let start = c * chunk;
                    self.score_with(columns.len(), part, |f, r| {
                        columns[f].as_ref()[start + r] as f32
                    });
                });
            }
        });
    }

    /// The scoring loop: `value(f, r)` reads feature `f` of row `r` as `f32`.
    fn score_with(&self, n_features: usize, out: &mut [f64], value: impl Fn(usize, usize) -> f32) {
        assert_eq!(n_features, self.n_features, "feature count");
        if let Some(trees) = &self.fallback {
            for (r, o) in out.iter_mut().enumerate() {
                let mut sum = 0.0;
                for tree in trees {
                    sum += tree.path_length(|f| value(f, r));
                }
                *o = score_from_depth_sum(sum, self.denominator);
            }
            return;
        }
        let nf = self.n_features;
        let n_internal = (1usize << self.depth) - 1;
        let n_leaves = n_internal + 1;
        let mut block = vec![0f32; BLOCK * nf];
        let mut index = [0u32; BLOCK];
        let mut sums = [0f64; BLOCK];
        for (b, out_block) in out.chunks_mut(BLOCK).enumerate() {
            let m = out_block.len();
            let mut has_nan = false;
            for r in 0..m {
                for f in 0..nf {
                    let v = value(f, b * BLOCK + r);
                    has_nan |= v.is_nan();
                    block[r * nf + f] = v;
                }
            }
            let block = &block[..m * nf];
            let sums = &mut sums[..m];
            sums.fill(0.0);
            for t in 0..self.n_trees {
                let nodes = &self.nodes[t * n_internal..(t + 1) * n_internal];
                let leaves = &self.leaves[t * n_leaves..(t + 1) * n_leaves];
                let index = &mut index[..m];
                index.fill(0);
                if has_nan {
                    let missing = &self.missing_left[t * n_internal..(t + 1) * n_internal];
                    descend_with_nan(nodes, missing, block, nf, index, self.depth);
                } else {
                    descend_lanes(nodes, block, nf, index, self.depth);
                }
                for (s, &i) in sums.iter_mut().zip(index.iter()) {
                    *s += leaves[i as usize - n_internal];
                }
            }
            for (o, &s) in out_block.iter_mut().zip(sums.iter()) {
                *o = score_from_depth_sum(s, self.denominator);
            }
        }
    }
}

impl FlatForest {
    /// Each padded leaf's path as (feature, share of the path's splits) pairs, in the order
    /// of the features' first split from the root: what a walk of the tree adds for a row
    /// ending there, computed once per leaf instead of once per row, and once per forest:
    /// every explaining thread reads the same table.
    fn leaf_path_shares(&self) -> &LeafPathShares {
        self.leaf_paths
            .get_or_init(|| self.build_leaf_path_shares())
    }

    /// Builds the explanations' table now, unless the forest is explained by walking trees.
    pub(crate) fn prepare_explanations(&self) {
        if self.fallback.is_none() {
            self.leaf_path_shares();
        }
    }

    /// Builds [`Self::leaf_path_shares`]' table.
    fn build_leaf_path_shares(&self) -> LeafPathShares {
        let nf = self.n_features;
        let depth = self.depth;
        let n_internal = (1usize << depth) - 1;
        let n_leaves = n_internal + 1;
        let mut paths = LeafPathShares {
            start: Vec::with_capacity(self.n_trees * n_leaves + 1),
            pairs: Vec::new(),
        };
        let mut counts = vec![0u32; nf];
        for t in 0..self.n_trees {
            let nodes = &self.nodes[t * n_internal..(t + 1) * n_internal];
            let levels = &self.leaf_levels[t * n_leaves..(t + 1) * n_leaves];
            for (leaf, &splits) in levels.iter().enumerate() {
                paths.start.push(paths.pairs.len());
                let splits = splits as u32;
                let feature =
                    |l: u32| nodes[(1usize << l) - 1 + (leaf >> (depth - l))].feature as usize;
                for l in 0..splits {
                    counts[feature(l)] += 1;
                }
                for l in 0..splits {
                    let f = feature(l);
                    if counts[f] > 0 {
                        paths
                            .pairs
                            .push((f as u32, counts[f] as f64 / splits as f64));
                        counts[f] = 0;
                    }
                }
            }
        }
        paths.start.push(paths.pairs.len());
        paths
    }

    /// Explanations (see [`IsolationForest::explain`]) of rows `rows`, where `value(f, r)`
    /// reads feature `f` of row `r` as `f32`; `None` for forests too deep to pad.
    ///
    /// Rows descend as in scoring; a row's leaf position then names its path, whose
    /// splits are the ancestors above the real leaf's level. Each feature's share is added
    /// once per tree, in tree order, as the walk of every tree adds it: the results are
    /// bit-identical to it.
    pub(crate) fn explain_rows(
        &self,
        rows: std::ops::Range<usize>,
        value: impl Fn(usize, usize) -> f32,
    ) -> Option<Vec<Vec<f64>>> {
        if self.fallback.is_some() {
            return None;
        }
        let nf = self.n_features;
        let depth = self.depth;
        let n_internal = (1usize << depth) - 1;
        let n_leaves = n_internal + 1;
        let mut out = Vec::with_capacity(rows.len());
        let mut block = vec![0f32; BLOCK * nf];
        let mut index = [0u32; BLOCK];
        let mut shares = vec![0f64; BLOCK * nf];
        let paths = self.leaf_path_shares();
        let mut first = rows.start;
        while first < rows.end {
            let m = BLOCK.min(rows.end - first);
            let mut has_nan = false;
            for r in 0..m {
                for f in 0..nf {
                    let v = value(f, first + r);
                    has_nan |= v.is_nan();
                    block[r * nf + f] = v;
                }
            }
            let block = &block[..m * nf];
            let shares = &mut shares[..m * nf];
            shares.fill(0.0);
            for t in 0..self.n_trees {
                let nodes = &self.nodes[t * n_internal..(t + 1) * n_internal];
                let index = &mut index[..m];
                index.fill(0);
                if has_nan {
                    let missing = &self.missing_left[t * n_internal..(t + 1) * n_internal];
                    descend_with_nan(nodes, missing, block, nf, index, depth);
                } else {
                    descend_lanes(nodes, block, nf, index, depth);
                }
                for (r, &i) in index.iter().enumerate() {
                    let leaf = t * n_leaves + (i as usize - n_internal);
                    let row = &mut shares[r * nf..(r + 1) * nf];
                    for &(f, share) in &paths.pairs[paths.start[leaf]..paths.start[leaf + 1]] {
                        row[f as usize] += share;
                    }
                }
            }
            out.extend(shares.chunks_exact(nf).map(|row| {
                row.iter()
                    .map(|s| s / self.n_trees as f64)
                    .collect::<Vec<f64>>()
            }));
            first += m;
        }
        Some(out)
    }
}

/// Moves every row of the block down `depth` levels: the child of node `i` is `2i + 1`
/// (left) or `2i + 2` (right).
///
/// This is the hot loop, so it indexes without bounds checks. Invariants, established by
/// [`FlatForest::new`] and [`FlatForest::score_with`] and checked in debug builds:
/// `nodes.len() == 2^depth − 1` (so every index reached before the last level is inside),
/// every `feature < nf`, and `block.len() == index.len() · nf`.
#[inline]
fn descend(nodes: &[FlatNode], block: &[f32], nf: usize, index: &mut [u32], depth: u32) {
    debug_assert_eq!(nodes.len(), (1usize << depth) - 1);
    debug_assert_eq!(block.len(), index.len() * nf);
    debug_assert!(nodes.iter().all(|n| (n.feature as usize) < nf));
    if depth == 0 {
        return;
    }
    // Level 0: every row is at the root.
    let root = nodes[0];
    for (r, i) in index.iter_mut().enumerate() {
        let x = block[r * nf + root.feature as usize];
        *i = 1 + (x > root.threshold) as u32;
    }
    for _ in 1..depth {
        for (r, i) in index.iter_mut().enumerate() {
            // SAFETY: at level `l` (1 ≤ l < depth) every `*i` lies in `[2^l − 1, 2^(l+1) − 1)`,
            // below `2^depth − 1 = nodes.len()`; `node.feature < nf` and
            // `r < index.len()`, so `r · nf + feature < block.len()`.
            unsafe {
                let node = *nodes.get_unchecked(*i as usize);
                let x = *block.get_unchecked(r * nf + node.feature as usize);
                *i = 2 * *i + 1 + (x > node.threshold) as u32;
            }
        }
    }
}

/// Rows walked together by [`descend_lanes`]: independent walks the CPU overlaps.
const LANES: usize = 16;

/// As [`descend`], but walks groups of [`LANES`] rows through all levels with their node
/// indices in registers (no index load and store per level); the rest of the block goes
/// through [`descend`].
#[inline]
fn descend_lanes(nodes: &[FlatNode], block: &[f32], nf: usize, index: &mut [u32], depth: u32) {
    debug_assert_eq!(nodes.len(), (1usize << depth) - 1);
    debug_assert_eq!(block.len(), index.len() * nf);
    debug_assert!(nodes.iter().all(|n| (n.feature as usize) < nf));
    let whole = index.len() / LANES * LANES;
    let (head, tail) = index.split_at_mut(whole);
    for (g, group) in head.chunks_exact_mut(LANES).enumerate() {
        let rows = &block[g * LANES * nf..(g + 1) * LANES * nf];
        let mut i = [0u32; LANES];
        for _ in 0..depth {
            for (lane, node_index) in i.iter_mut().enumerate() {
                // SAFETY: as in `descend`: at level `l < depth` every index is below
                // `2^depth − 1 = nodes.len()`; `feature < nf` and `lane < LANES`, so
                // `lane · nf + feature < rows.len() = LANES · nf`.
                unsafe {
                    let node = *nodes.get_unchecked(*node_index as usize);
                    let x = *rows.get_unchecked(lane * nf + node.feature as usize);
                    *node_index = 2 * *node_index + 1 + (x > node.threshold) as u32;
                }
            }
        }
        group.copy_from_slice(&i);
    }
    descend(nodes, &block[whole * nf..], nf, tail, depth);
}

/// As [`descend`], sending NaN where the node says (with bounds checks: blocks holding NaN
/// are rare).
#[inline]
fn descend_with_nan(
    nodes: &[FlatNode],
    missing_left: &[bool],
    block: &[f32],
    nf: usize,
    index: &mut [u32],
    depth: u32,
) {
    for _ in 0..depth {
        for (r, i) in index.iter_mut().enumerate() {
            let node = nodes[*i as usize];
            let x = block[r * nf + node.feature as usize];
            let right = if x.is_nan() {
                !missing_left[*i as usize]
            } else {
                x > node.threshold
            };
            *i = 2 * *i + 1 + right as u32;
        }
    }
}

/// Per padded leaf of every tree (tree-major), the (feature, share) pairs of its path:
/// leaf `k`'s are `pairs[start[k]..start[k + 1]]`.
#[derive(Clone)]
struct LeafPathShares {
    start: Vec<usize>,
    pairs: Vec<(u32, f64)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_down_keeps_comparisons_exact() {
        for t in [0.1f64, -0.1, 1.0 / 3.0, 1.7e9 + 0.3, -2.5, 0.0, 1e-40] {
            let r = round_down_f32(t);
            assert!((r as f64) <= t);
            assert!((r.next_up() as f64) > t);
        }
    }
}
