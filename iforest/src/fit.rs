//! Fitting: scikit-learn's `IsolationForest.fit` on columnar input.

use rand::{Rng, SeedableRng, seq::index};
use rand_chacha::ChaCha8Rng;

use crate::{
    Contamination, Error, IsolationForest, IsolationForestParams, MaxSamples, Node, Result, Tree,
};

/// scikit-learn's `FEATURE_THRESHOLD`: a feature whose max ≤ min + this (in `f32`) is constant.
const FEATURE_THRESHOLD: f32 = 1e-7;

/// Input columns cast to `f32`, as scikit-learn casts `X` to `float32`.
pub(crate) struct Columns {
    pub cols: Vec<Vec<f32>>,
    pub rows: usize,
}

impl Columns {
    /// Checks shape and values and casts. NaN is kept (a missing value);
    /// infinities and values beyond `f32` are refused, as scikit-learn refuses them.
    pub fn new<C: AsRef<[f64]>>(columns: &[C], refuse_infinite: bool) -> Result<Self> {
        let first = columns.first().ok_or(Error::NoFeatures)?;
        let rows = first.as_ref().len();
        let mut cols = Vec::with_capacity(columns.len());
        for (feature, column) in columns.iter().enumerate() {
            let column = column.as_ref();
            if column.len() != rows {
                return Err(Error::MismatchedColumns {
                    feature,
                    len: column.len(),
                    expected: rows,
                });
            }
            let cast: Vec<f32> = column.iter().map(|&v| v as f32).collect();
            if refuse_infinite && let Some(row) = cast.iter().position(|v| v.is_infinite()) {
                return Err(Error::NonFinite {
                    feature,
                    row,
                    value: column[row],
                });
            }
            cols.push(cast);
        }
        Ok(Self { cols, rows })
    }
}

/// Fits a forest; see [`IsolationForestParams::fit`].
pub(crate) fn fit<C: AsRef<[f64]>>(
    params: &IsolationForestParams,
    columns: &[C],
) -> Result<IsolationForest> {
    params.validate()?;
    let input = Columns::new(columns, true)?;
    if input.rows == 0 {
        return Err(Error::NoRows);
    }
    if input.cols.iter().all(|c| is_constant(c.iter().copied())) {
        return Err(Error::AllFeaturesConstant { rows: input.rows });
    }
    let n_features = input.cols.len();
    let max_samples = params.effective_max_samples(input.rows)?;
    let max_features = params.effective_max_features(n_features)?;
    let mut warnings = Vec::new();
    if let MaxSamples::Count(c) = params.max_samples
        && c > input.rows
    {
        warnings.push(format!(
            "max_samples ({c}) is greater than the total number of samples ({}); \
             max_samples will be set to n_samples for estimation",
            input.rows
        ));
    }
    let max_depth = (max_samples.max(2) as f64).log2().ceil() as u32;
    let builder = TreeBuilder {
        input: &input,
        max_samples,
        max_features,
        max_depth,
        bootstrap: params.bootstrap,
    };
    let trees = build_trees(&builder, params.n_estimators, params.seed, params.threads);
    let mut model = IsolationForest::from_parts(n_features, max_samples, trees, -0.5)?;
    model.params = params.clone();
    model.warnings = warnings;
    if let Contamination::Fraction(c) = params.contamination {
        let mut scores = model.flat().score_f32_columns(&input.cols, input.rows);
        scores.sort_by(f64::total_cmp);
        model.offset = percentile(&scores, 100.0 * c);
    }
    Ok(model)
}

/// True when the values are constant as scikit-learn's splitter sees it at the root:
/// all missing, or none missing and max ≤ min + 1e-7 (in `f32`).
fn is_constant(values: impl Iterator<Item = f32>) -> bool {
    let (min, max, missing, n) = min_max(values);
    missing == n || (missing == 0 && max <= min + FEATURE_THRESHOLD)
}

/// Minimum and maximum of the non-NaN values, the NaN count and the total count.
fn min_max(values: impl Iterator<Item = f32>) -> (f32, f32, usize, usize) {
    let (mut min, mut max, mut missing, mut n) = (f32::INFINITY, f32::NEG_INFINITY, 0, 0);
    for v in values {
        n += 1;
        if v.is_nan() {
            missing += 1;
        } else {
            min = min.min(v);
            max = max.max(v);
        }
    }
    (min, max, missing, n)
}

/// The random stream of tree `t`: independent of the other trees, so trees can be fitted
/// in any order or in parallel and give the same forest.
fn tree_rng(seed: u64, t: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(t as u64);
    rng
}

fn build_trees(builder: &TreeBuilder, n_trees: usize, seed: u64, threads: usize) -> Vec<Tree> {
    let threads = threads.clamp(1, n_trees);
    if threads == 1 {
        return (0..n_trees)
            .map(|t| builder.build(&mut tree_rng(seed, t)))
            .collect();
    }
    let mut trees: Vec<Option<Tree>> = vec![None; n_trees];
    let chunk = n_trees.div_ceil(threads);
    std::thread::scope(|s| {
        for (c, slot) in trees.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                for (k, tree) in slot.iter_mut().enumerate() {
                    *tree = Some(builder.build(&mut tree_rng(seed, c * chunk + k)));
                }
            });
        }
    });
    trees
        .into_iter()
        .map(|t| t.expect("every tree built"))
        .collect()
}

struct TreeBuilder<'a> {
    input: &'a Columns,
    max_samples: usize,
    max_features: usize,
    max_depth: u32,
    bootstrap: bool,
}

impl TreeBuilder<'_> {
    fn build(&self, rng: &mut ChaCha8Rng) -> Tree {
        let n_features = self.input.cols.len();
        let features: Vec<u32> = if self.max_features == n_features {
            (0..n_features as u32).collect()
        } else {
            index::sample(rng, n_features, self.max_features)
                .into_iter()
                .map(|f| f as u32)
                .collect()
        };
        let mut rows: Vec<u32> = if self.bootstrap {
            // Duplicates only add weight in scikit-learn: splits and leaf sizes count
            // distinct rows.
            let mut r: Vec<u32> = (0..self.max_samples)
                .map(|_| rng.random_range(0..self.input.rows) as u32)
                .collect();
            r.sort_unstable();
            r.dedup();
            r
        } else {
            index::sample(rng, self.input.rows, self.max_samples)
                .into_iter()
                .map(|r| r as u32)
                .collect()
        };
        let mut nodes = Vec::with_capacity(2 * rows.len());
        self.grow(&mut nodes, &mut rows, 0, &features, rng);
        Tree { nodes }
    }

    /// Grows the subtree for `rows` at `depth`; returns its root's index.
    fn grow(
        &self,
        nodes: &mut Vec<Node>,
        rows: &mut [u32],
        depth: u32,
        features: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> u32 {
        let id = nodes.len();
        let leaf = Node::Leaf {
            n_samples: rows.len() as u32,
        };
        nodes.push(leaf.clone());
        if depth >= self.max_depth || rows.len() < 2 {
            return id as u32;
        }
        // Draw features until one is not constant in this node (constant ones do not
        // count as the draw); no such feature makes a leaf.
        let mut candidates = features.to_vec();
        let (feature, min, max, missing) = loop {
            if candidates.is_empty() {
                return id as u32;
            }
            let j = rng.random_range(0..candidates.len());
            let f = candidates[j];
            let col = &self.input.cols[f as usize];
            let (min, max, missing, n) = min_max(rows.iter().map(|&r| col[r as usize]));
            if missing == n || (missing == 0 && max <= min + FEATURE_THRESHOLD) {
                candidates.swap_remove(j);
                continue;
            }
            break (f, min, max, missing);
        };
        let (lo, hi) = (min as f64, max as f64);
        let mut threshold = (hi - lo) * rng.random::<f64>() + lo;
        let random_missing_left = (missing > 0).then(|| rng.random::<bool>());
        if threshold == hi {
            threshold = lo;
        }
        let col = &self.input.cols[feature as usize];
        let goes_left = |r: u32| {
            let x = col[r as usize];
            if x.is_nan() {
                random_missing_left.unwrap_or(false)
            } else {
                (x as f64) <= threshold
            }
        };
        let n_left = partition(rows, goes_left);
        let n_right = rows.len() - n_left;
        if n_left == 0 || n_right == 0 {
            // scikit-learn rejects the only split it drew: the node stays a leaf.
            return id as u32;
        }
        // Without missing values in training, a NaN later goes to the larger child.
        let missing_left = random_missing_left.unwrap_or(n_left > n_right);
        let (left_rows, right_rows) = rows.split_at_mut(n_left);
        let left = self.grow(nodes, left_rows, depth + 1, features, rng);
        let right = self.grow(nodes, right_rows, depth + 1, features, rng);
        nodes[id] = Node::Split {
            feature,
            threshold,
            left,
            right,
            missing_left,
        };
        id as u32
    }
}

/// Moves the rows for which `left` holds to the front; returns how many there are.
fn partition(rows: &mut [u32], left: impl Fn(u32) -> bool) -> usize {
    let mut k = 0;
    for i in 0..rows.len() {
        if left(rows[i]) {
            rows.swap(i, k);
            k += 1;
        }
    }
    k
}

/// `numpy.percentile(sorted, q)` with its default linear interpolation.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    let virtual_index = (q / 100.0) * (n - 1) as f64;
    let below = virtual_index.floor();
    let gamma = virtual_index - below;
    let a = sorted[below as usize];
    let b = sorted[((below as usize) + 1).min(n - 1)];
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_matches_numpy() {
        // numpy.percentile([1, 2, 3, 4], [0, 10, 50, 75, 100]) == [1, 1.3, 2.5, 3.25, 4]
        let s = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&s, 0.0), 1.0);
        assert!((percentile(&s, 10.0) - 1.3).abs() < 1e-15);
        assert_eq!(percentile(&s, 50.0), 2.5);
        assert_eq!(percentile(&s, 75.0), 3.25);
        assert_eq!(percentile(&s, 100.0), 4.0);
        assert_eq!(percentile(&[7.0], 30.0), 7.0);
    }

    #[test]
    fn constant_detection_uses_f32_tolerance() {
        assert!(is_constant([1.0f32, 1.0 + 5e-8].into_iter()));
        assert!(!is_constant([1.0f32, 1.5].into_iter()));
        assert!(is_constant([f32::NAN, f32::NAN].into_iter()));
        // Constant values with a missing one can still be split.
        assert!(!is_constant([1.0f32, f32::NAN].into_iter()));
        // Large magnitudes: min + 1e-7 rounds to min in f32, so only equal values are constant.
        assert!(!is_constant([1.7e9f32, 1.7e9 + 256.0].into_iter()));
    }
}
