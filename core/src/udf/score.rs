//! `procforest_score(f1, …, fn)`: scores rows with the trained isolation forest.
//!
//! The UDF holds the model and its compact binary form. The codecs write those bytes into
//! the plan; a receiving process decodes them once per content hash and reuses the model
//! for every task, so executors score their partitions without a model file.

use std::{
    any::Any,
    collections::VecDeque,
    hash::{Hash, Hasher},
    sync::{Arc, LazyLock, Mutex},
};

use arrow::{
    array::{Array, ArrayRef, AsArray, Float64Array},
    compute::cast,
    datatypes::{DataType, Float64Type},
};
use datafusion::{
    common::{DataFusionError, Result, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use iforest::IsolationForest;

/// The function's name in plans.
pub const SCORE_NAME: &str = "procforest_score";

/// Decoded models kept per process, most recent last.
const CACHE_SIZE: usize = 4;

/// Decoded models by content hash, oldest first.
type ModelCache = VecDeque<(String, Arc<IsolationForest>)>;

static CACHE: LazyLock<Mutex<ModelCache>> = LazyLock::new(|| Mutex::new(VecDeque::new()));

/// How many decoded models this process holds (for tests and diagnostics).
pub fn cached_models() -> usize {
    CACHE.lock().map(|c| c.len()).unwrap_or(0)
}

/// The scoring UDF; see the module documentation.
#[derive(Debug)]
pub struct ScoreUdf {
    model: Arc<IsolationForest>,
    payload: Arc<[u8]>,
    hash: String,
    signature: Signature,
}

impl PartialEq for ScoreUdf {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}
impl Eq for ScoreUdf {}
impl Hash for ScoreUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash.hash(state);
    }
}

impl ScoreUdf {
    /// Wraps a trained model.
    pub fn new(model: IsolationForest) -> Self {
        let payload: Arc<[u8]> = model.to_bytes().into();
        let hash = model.content_hash();
        Self::from_parts(Arc::new(model), payload, hash)
    }

    fn from_parts(model: Arc<IsolationForest>, payload: Arc<[u8]>, hash: String) -> Self {
        let signature = Signature::uniform(
            model.n_features(),
            vec![DataType::Float64],
            Volatility::Immutable,
        );
        Self {
            model,
            payload,
            hash,
            signature,
        }
    }

    /// Rebuilds the UDF from the bytes a codec wrote, reusing an already decoded model
    /// with the same content.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let hash = {
            use sha2::Digest;
            let digest = sha2::Sha256::digest(payload);
            digest
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let mut cache = CACHE
            .lock()
            .map_err(|_| DataFusionError::Internal("model cache poisoned".into()))?;
        if let Some((_, model)) = cache.iter().find(|(h, _)| *h == hash) {
            return Ok(Self::from_parts(model.clone(), payload.into(), hash));
        }
        let model = Arc::new(IsolationForest::from_bytes(payload).map_err(|e| {
            DataFusionError::Execution(format!("cannot decode the model in the plan: {e}"))
        })?);
        cache.push_back((hash.clone(), model.clone()));
        if cache.len() > CACHE_SIZE {
            cache.pop_front();
        }
        Ok(Self::from_parts(model, payload.into(), hash))
    }

    /// The model's bytes, as written into plans.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The model's content hash (SHA-256 of the payload, hex).
    pub fn model_hash(&self) -> &str {
        &self.hash
    }

    /// The model.
    pub fn model(&self) -> &IsolationForest {
        &self.model
    }

    /// As a DataFusion `ScalarUDF`.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
}

impl ScalarUDFImpl for ScoreUdf {
    fn name(&self) -> &str {
        SCORE_NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if args.args.len() != self.model.n_features() {
            return exec_err!(
                "{SCORE_NAME} takes {} features, got {}",
                self.model.n_features(),
                args.args.len()
            );
        }
        let rows = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let columns = arrays
            .iter()
            .map(feature_values)
            .collect::<Result<Vec<_>>>()?;
        let mut scores = vec![0.0; rows];
        self.model.flat().score_into(&columns, &mut scores);
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(scores))))
    }
}

/// A feature column as `f64` values; a null is a missing value (NaN).
fn feature_values(array: &ArrayRef) -> Result<Vec<f64>> {
    let array = cast(array, &DataType::Float64)?;
    let values = array.as_primitive::<Float64Type>();
    if values.null_count() == 0 {
        Ok(values.values().to_vec())
    } else {
        Ok(values.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }
}

impl ScoreUdf {
    /// Downcasts a `ScalarUDF` to this type.
    pub fn from_udf(udf: &ScalarUDF) -> Option<&Self> {
        (udf.inner().as_ref() as &dyn Any).downcast_ref::<Self>()
    }
}
