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
use iforest::Model;

/// The function's name in plans.
pub const SCORE_NAME: &str = "procforest_score";

/// Decoded models kept per process, most recent last.
const CACHE_SIZE: usize = 4;

/// Decoded models by content hash, oldest first.
type ModelCache = VecDeque<(String, Arc<Model>)>;

static CACHE: LazyLock<Mutex<ModelCache>> = LazyLock::new(|| Mutex::new(VecDeque::new()));

/// How many decoded models this process holds (for tests and diagnostics).
pub fn cached_models() -> usize {
    CACHE.lock().map(|c| c.len()).unwrap_or(0)
}

/// The cache's model with `hash`, or `model` added to the cache as that (dropping the
/// oldest beyond [`CACHE_SIZE`]): one copy per content, whoever made it first.
fn remember(cache: &mut ModelCache, hash: &str, model: Arc<Model>) -> Arc<Model> {
    if let Some((_, cached)) = cache.iter().find(|(h, _)| h == hash) {
        return Arc::clone(cached);
    }
    cache.push_back((hash.to_string(), Arc::clone(&model)));
    if cache.len() > CACHE_SIZE {
        cache.pop_front();
    }
    model
}

/// The scoring UDF; see the module documentation.
#[derive(Debug)]
pub struct ScoreUdf {
    model: Arc<Model>,
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
    /// Wraps a trained model. The model joins this process's decoded models (or, if one
    /// with the same content is there, the UDF takes that one), so that a plan carrying
    /// it into this same process (Ballista standalone's scheduler and executor) reuses
    /// it, with its flattened form, instead of decoding a copy.
    pub fn new(model: Model) -> Self {
        let payload: Arc<[u8]> = model.to_bytes().into();
        let hash = Model::content_hash_of(&payload);
        let mut model = Arc::new(model);
        if let Ok(mut cache) = CACHE.lock() {
            model = remember(&mut cache, &hash, model);
        }
        Self::from_parts(model, payload, hash)
    }

    fn from_parts(model: Arc<Model>, payload: Arc<[u8]>, hash: String) -> Self {
        // Volatile only so that DataFusion never copies the call: an immutable one is
        // inlined into a filter on the score pushed below the projection that computes
        // it, which scored every flagged row twice. The score of a row never changes.
        let signature = Signature::uniform(
            model.n_features(),
            vec![DataType::Float64],
            Volatility::Volatile,
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
        let hash = Model::content_hash_of(payload);
        let mut cache = CACHE
            .lock()
            .map_err(|_| DataFusionError::Internal("model cache poisoned".into()))?;
        if let Some((_, model)) = cache.iter().find(|(h, _)| *h == hash) {
            return Ok(Self::from_parts(model.clone(), payload.into(), hash));
        }
        let model = Arc::new(Model::from_bytes(payload).map_err(|e| {
            DataFusionError::Execution(format!("cannot decode the model in the plan: {e}"))
        })?);
        let model = remember(&mut cache, &hash, model);
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
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model, shared: the same one this process's plans score with.
    pub fn shared_model(&self) -> Arc<Model> {
        Arc::clone(&self.model)
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
        self.model.score_into(&columns, &mut scores);
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

#[cfg(test)]
mod tests {
    use arrow::{
        datatypes::{Field, Schema},
        record_batch::RecordBatch,
    };
    use datafusion::{
        datasource::MemTable,
        physical_plan::displayable,
        prelude::{SessionContext, col, lit},
    };
    use iforest::IsolationForestParams;

    use super::*;

    fn model() -> Model {
        let x: Vec<Vec<f64>> = (0..2)
            .map(|f| (0..300).map(|r| ((r * (f + 3)) % 17) as f64).collect())
            .collect();
        Model::Forest(
            IsolationForestParams::default()
                .n_estimators(10)
                .seed(7)
                .fit(&x)
                .unwrap(),
        )
    }

    #[test]
    fn a_plan_decoded_in_the_process_that_wrapped_the_model_scores_with_it() {
        let udf = ScoreUdf::new(model());
        assert_eq!(
            udf.model_hash(),
            Model::content_hash_of(&udf.model().to_bytes())
        );
        let decoded = ScoreUdf::decode(udf.payload()).unwrap();
        assert!(Arc::ptr_eq(&decoded.shared_model(), &udf.shared_model()));
        assert!(ScoreUdf::decode(&udf.payload()[1..]).is_err());
    }

    #[tokio::test]
    async fn a_filter_on_the_score_does_not_score_again() {
        let a = vec![1.0, 50.0, 3.0, 40.0];
        let b = vec![2.0, 2.0, 90.0, 1.0];
        let model = model();
        let threshold = -0.45;
        let expected = model
            .score_samples(&[&a, &b])
            .unwrap()
            .iter()
            .filter(|s| **s < threshold)
            .count();
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Float64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Float64Array::from(a)) as ArrayRef,
                Arc::new(Float64Array::from(b)),
            ],
        )
        .unwrap();
        let ctx = SessionContext::new();
        let table = MemTable::try_new(schema, vec![vec![batch]]).unwrap();
        ctx.register_table("features", Arc::new(table)).unwrap();
        let score = ScoreUdf::new(model)
            .into_udf()
            .call(vec![col("a"), col("b")]);
        let df = ctx
            .table("features")
            .await
            .unwrap()
            .select(vec![col("a"), score.alias("score")])
            .unwrap()
            .filter(col("score").lt(lit(threshold)))
            .unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let shown = displayable(plan.as_ref()).indent(true).to_string();
        assert_eq!(shown.matches(SCORE_NAME).count(), 1, "{shown}");
        let rows: usize = df
            .collect()
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(rows, expected);
    }
}
