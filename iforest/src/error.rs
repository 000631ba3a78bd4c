//! Typed errors: every bad input is one of these, never a panic.

/// What went wrong when fitting, scoring or loading a model.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// The input has no rows.
    #[error("the input has no rows")]
    NoRows,
    /// The input has no feature columns.
    #[error("the input has no feature columns")]
    NoFeatures,
    /// Feature columns differ in length.
    #[error("feature column {feature} has {len} rows but column 0 has {expected}")]
    MismatchedColumns {
        /// Index of the offending column.
        feature: usize,
        /// Its length.
        len: usize,
        /// Length of column 0.
        expected: usize,
    },
    /// The model expects another number of features.
    #[error("the model was trained on {expected} features but {got} were given")]
    WrongFeatureCount {
        /// Features the model was trained on.
        expected: usize,
        /// Features given.
        got: usize,
    },
    /// A value is infinite, or too large for `f32` (scikit-learn refuses these when fitting).
    #[error("feature {feature}, row {row}: value {value} is infinite or too large for float32")]
    NonFinite {
        /// Feature column.
        feature: usize,
        /// Row index.
        row: usize,
        /// The value.
        value: f64,
    },
    /// Every feature is constant over the training rows: there is nothing to isolate.
    #[error("every feature is constant over the {rows} training rows: nothing to learn")]
    AllFeaturesConstant {
        /// Number of training rows.
        rows: usize,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name, as in scikit-learn.
        name: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A serialised model could not be read.
    #[error("cannot read model: {0}")]
    BadModel(String),
    /// A serialised model has a format version this build does not read.
    #[error("model format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version found in the model.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
}
