//! Hyper-parameters, with scikit-learn's defaults.

use crate::{Error, IsolationForest, Result};

/// How many rows each tree is built from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxSamples {
    /// `min(256, n)`, scikit-learn's `"auto"`.
    Auto,
    /// A number of rows (≥ 1); above `n` it becomes `n`.
    Count(usize),
    /// A fraction of the rows in (0, 1].
    Fraction(f64),
}

/// How many features each tree may split on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxFeatures {
    /// A number of features (1 ≤ k ≤ n_features).
    Count(usize),
    /// A fraction of the features in (0, 1]; the default is 1.0 (all features).
    Fraction(f64),
}

/// How the decision threshold (`offset`) is set.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Contamination {
    /// Offset −0.5, as in the original paper (scikit-learn's `"auto"`).
    Auto,
    /// Expected fraction of outliers in (0, 0.5]: the offset is that percentile of
    /// the training rows' scores.
    Fraction(f64),
}

/// Parameters of an isolation forest; `Default` gives scikit-learn's defaults.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct IsolationForestParams {
    /// Number of trees (scikit-learn's `n_estimators`, default 100).
    pub n_estimators: usize,
    /// Rows per tree (default `Auto`).
    pub max_samples: MaxSamples,
    /// Features per tree (default all).
    pub max_features: MaxFeatures,
    /// Draw each tree's rows with replacement (default false).
    pub bootstrap: bool,
    /// How the offset is set (default `Auto`).
    pub contamination: Contamination,
    /// Seed of the random streams; the same seed and input give the same model.
    pub seed: u64,
    /// Fit trees on up to this many threads (1 = the calling thread). The model does
    /// not depend on it.
    pub threads: usize,
}

impl Default for IsolationForestParams {
    fn default() -> Self {
        Self {
            n_estimators: 100,
            max_samples: MaxSamples::Auto,
            max_features: MaxFeatures::Fraction(1.0),
            bootstrap: false,
            contamination: Contamination::Auto,
            seed: 0,
            threads: 1,
        }
    }
}

impl IsolationForestParams {
    /// Sets the number of trees.
    pub fn n_estimators(mut self, n: usize) -> Self {
        self.n_estimators = n;
        self
    }
    /// Sets the rows per tree.
    pub fn max_samples(mut self, m: MaxSamples) -> Self {
        self.max_samples = m;
        self
    }
    /// Sets the features per tree.
    pub fn max_features(mut self, m: MaxFeatures) -> Self {
        self.max_features = m;
        self
    }
    /// Draws rows with replacement.
    pub fn bootstrap(mut self, b: bool) -> Self {
        self.bootstrap = b;
        self
    }
    /// Sets the contamination.
    pub fn contamination(mut self, c: Contamination) -> Self {
        self.contamination = c;
        self
    }
    /// Sets the seed.
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = s;
        self
    }
    /// Sets the number of threads used to fit trees.
    pub fn threads(mut self, t: usize) -> Self {
        self.threads = t;
        self
    }

    /// Checks every parameter's range, as scikit-learn's `_parameter_constraints`.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, reason: &str| {
            Err(Error::InvalidParameter {
                name,
                reason: reason.to_string(),
            })
        };
        if self.n_estimators == 0 {
            return bad("n_estimators", "must be at least 1");
        }
        match self.max_samples {
            MaxSamples::Count(0) => return bad("max_samples", "must be at least 1"),
            MaxSamples::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad("max_samples", &format!("fraction {f} is not in (0, 1]"));
            }
            _ => {}
        }
        match self.max_features {
            MaxFeatures::Count(0) => return bad("max_features", "must be at least 1"),
            MaxFeatures::Fraction(f) if !(f > 0.0 && f <= 1.0) => {
                return bad("max_features", &format!("fraction {f} is not in (0, 1]"));
            }
            _ => {}
        }
        if let Contamination::Fraction(c) = self.contamination
            && !(c > 0.0 && c <= 0.5)
        {
            return bad("contamination", &format!("{c} is not in (0, 0.5]"));
        }
        Ok(())
    }

    /// Rows per tree for `n` input rows, as scikit-learn resolves `max_samples`
    /// (a count above `n` becomes `n`; that is reported by [`IsolationForest::warnings`]).
    pub fn effective_max_samples(&self, n: usize) -> Result<usize> {
        let m = match self.max_samples {
            MaxSamples::Auto => n.min(256),
            MaxSamples::Count(c) => c.min(n),
            MaxSamples::Fraction(f) => (f * n as f64) as usize,
        };
        if m == 0 {
            return Err(Error::InvalidParameter {
                name: "max_samples",
                reason: format!("{:?} of {n} rows selects no row", self.max_samples),
            });
        }
        Ok(m)
    }

    /// Features per tree for `n_features` input features.
    pub fn effective_max_features(&self, n_features: usize) -> Result<usize> {
        let m = match self.max_features {
            MaxFeatures::Count(c) => c,
            MaxFeatures::Fraction(f) => (f * n_features as f64) as usize,
        };
        if m > n_features {
            return Err(Error::InvalidParameter {
                name: "max_features",
                reason: format!("{m} is more than the {n_features} features"),
            });
        }
        Ok(m.max(1))
    }

    /// Fits a forest on columnar input: one slice per feature, all of equal length.
    pub fn fit<C: AsRef<[f64]>>(&self, columns: &[C]) -> Result<IsolationForest> {
        crate::fit::fit(self, columns)
    }
}
