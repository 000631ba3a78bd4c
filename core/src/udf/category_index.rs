//! `procforest_category_index_<key>(value)`: a category's index (as `DOUBLE`), looked up
//! in the index the function carries in the plan, so that computing features needs no
//! join with the index tables (each join costs Ballista stages in every job that
//! computes features).

use std::{
    any::Any,
    collections::HashMap,
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow::{
    array::{Array, AsArray, Float64Array},
    compute::cast,
    datatypes::DataType,
};
use datafusion::{
    common::{DataFusionError, Result, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

/// The functions' names start with this; the key column's name (lower case) follows.
pub const CATEGORY_INDEX_PREFIX: &str = "procforest_category_index_";

/// What the plan carries.
#[derive(serde::Serialize, serde::Deserialize)]
struct Payload {
    key: String,
    /// The key column's values in index order (a null value is a category too).
    values: Vec<Option<String>>,
}

/// One key column's index lookup; see the module documentation.
#[derive(Debug)]
pub struct CategoryIndexUdf {
    name: String,
    key: String,
    lookup: HashMap<String, f64, foldhash::fast::FixedState>,
    null_index: Option<f64>,
    payload: Arc<[u8]>,
    signature: Signature,
}

impl PartialEq for CategoryIndexUdf {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
    }
}
impl Eq for CategoryIndexUdf {}
impl Hash for CategoryIndexUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.payload.hash(state);
    }
}

impl CategoryIndexUdf {
    /// The lookup of key column `key`, whose values are given in index order.
    pub fn new(key: &str, values: Vec<Option<String>>) -> Result<Self> {
        let payload = serde_json::to_vec(&Payload {
            key: key.to_string(),
            values,
        })
        .map_err(|e| DataFusionError::Internal(format!("category index of {key}: {e}")))?;
        Self::decode(&payload)
    }

    /// Rebuilds the function from the bytes a codec wrote.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let Payload { key, values } = serde_json::from_slice(payload).map_err(|e| {
            DataFusionError::Execution(format!("cannot decode a category index in the plan: {e}"))
        })?;
        let mut lookup =
            HashMap::with_capacity_and_hasher(values.len(), foldhash::fast::FixedState::default());
        let mut null_index = None;
        for (index, value) in values.into_iter().enumerate() {
            match value {
                Some(v) => {
                    lookup.insert(v, index as f64);
                }
                None => null_index = Some(index as f64),
            }
        }
        Ok(Self {
            name: name_for(&key),
            key,
            lookup,
            null_index,
            payload: payload.into(),
            signature: Signature::any(1, Volatility::Immutable),
        })
    }

    /// The bytes written into plans.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// As a DataFusion `ScalarUDF`.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }

    /// The index of every value of `values` (any string type), as the function computes
    /// it in a plan; a value not in the index is an error naming it.
    pub fn indices_of(&self, values: &dyn Array) -> Result<Float64Array> {
        let values = cast(values, &DataType::Utf8)?;
        let values = values.as_string::<i32>();
        let indices = (0..values.len())
            .map(|i| {
                let found = match values.is_valid(i) {
                    true => self.lookup.get(values.value(i)).copied(),
                    false => self.null_index,
                };
                found.ok_or_else(|| {
                    let shown = values.is_valid(i).then(|| values.value(i));
                    DataFusionError::Execution(format!(
                        "{} value {shown:?} is not in its category index",
                        self.key
                    ))
                })
            })
            .collect::<Result<Vec<f64>>>()?;
        Ok(Float64Array::from(indices))
    }

    /// Downcasts a `ScalarUDF` to this type.
    pub fn from_udf(udf: &ScalarUDF) -> Option<&Self> {
        (udf.inner().as_ref() as &dyn Any).downcast_ref::<Self>()
    }
}

/// The function's name for key column `key`.
pub fn name_for(key: &str) -> String {
    format!("{CATEGORY_INDEX_PREFIX}{}", key.to_lowercase())
}

impl ScalarUDFImpl for CategoryIndexUdf {
    fn name(&self) -> &str {
        &self.name
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [value] = args.args.as_slice() else {
            return exec_err!("{} takes one argument", self.name);
        };
        let indices = self.indices_of(value.to_array(args.number_rows)?.as_ref())?;
        Ok(ColumnarValue::Array(Arc::new(indices)))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, StringArray};
    use datafusion::prelude::SessionContext;

    use super::*;

    #[tokio::test]
    async fn looks_up_values_and_null_and_refuses_unknown_ones() {
        let udf = CategoryIndexUdf::new("Computer", vec![Some("b".into()), None, Some("a".into())])
            .unwrap();
        let decoded = CategoryIndexUdf::decode(udf.payload()).unwrap();
        assert_eq!(decoded, udf);
        let ctx = SessionContext::new();
        ctx.register_udf(decoded.into_udf());
        let column: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("b")]));
        let batch = arrow::record_batch::RecordBatch::try_from_iter([("c", column)]).unwrap();
        ctx.register_batch("t", batch).unwrap();
        let out = ctx
            .sql("SELECT procforest_category_index_computer(c) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let got = out[0]
            .column(0)
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(got.values().to_vec(), vec![2.0, 1.0, 0.0]);
        let unknown = ctx
            .sql("SELECT procforest_category_index_computer('zzz')")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap_err();
        assert!(unknown.to_string().contains("\"zzz\""), "{unknown}");
    }
}
