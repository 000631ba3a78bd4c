//! `procforest_in_groups(interval, computer, account, account_type, process)`: whether a
//! row's summary group is one of a set the function carries in the plan (the anomalies',
//! whose command lines are gathered after scoring). A filter on it needs no join, so the
//! report's events are neither shuffled nor sorted to find the few groups wanted.

use std::{
    any::Any,
    collections::HashSet,
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow::{
    array::{Array, AsArray, BooleanArray},
    compute::cast,
    datatypes::{DataType, Int64Type},
};
use datafusion::{
    common::{DataFusionError, Result, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

/// The function's name.
pub const GROUP_SET_NAME: &str = "procforest_in_groups";

/// A summary group: its interval (microseconds) and its four keys (`None` = null).
pub type Group = (i64, [Option<String>; 4]);

/// The set; see the module documentation.
#[derive(Debug)]
pub struct GroupSetUdf {
    /// Each group's [`group_bytes`]. Filters call it on every summary row of a window
    /// (the evidence's wanted rows), hence the fast hash.
    groups: HashSet<Vec<u8>, foldhash::fast::FixedState>,
    payload: Arc<[u8]>,
    signature: Signature,
}

impl PartialEq for GroupSetUdf {
    fn eq(&self, other: &Self) -> bool {
        self.payload == other.payload
    }
}
impl Eq for GroupSetUdf {}
impl Hash for GroupSetUdf {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.payload.hash(state);
    }
}

/// A group as bytes, unambiguous: the interval, then each key as a null marker or its
/// length and bytes.
fn group_bytes(buf: &mut Vec<u8>, interval: i64, keys: [Option<&[u8]>; 4]) {
    buf.clear();
    buf.extend_from_slice(&interval.to_le_bytes());
    for key in keys {
        match key {
            None => buf.push(0),
            Some(bytes) => {
                buf.push(1);
                buf.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
                buf.extend_from_slice(bytes);
            }
        }
    }
}

impl GroupSetUdf {
    /// The set of `groups`.
    pub fn new(groups: &[Group]) -> Result<Self> {
        let payload = serde_json::to_vec(groups)
            .map_err(|e| DataFusionError::Internal(format!("a group set: {e}")))?;
        Self::decode(&payload)
    }

    /// Rebuilds the function from the bytes a codec wrote.
    pub fn decode(payload: &[u8]) -> Result<Self> {
        let groups: Vec<Group> = serde_json::from_slice(payload).map_err(|e| {
            DataFusionError::Execution(format!("cannot decode a group set in the plan: {e}"))
        })?;
        let groups = groups
            .iter()
            .map(|(interval, keys)| {
                let mut bytes = Vec::new();
                group_bytes(
                    &mut bytes,
                    *interval,
                    keys.each_ref().map(|k| k.as_deref().map(str::as_bytes)),
                );
                bytes
            })
            .collect();
        Ok(Self {
            groups,
            payload: payload.into(),
            signature: Signature::any(5, Volatility::Immutable),
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

    /// Downcasts a `ScalarUDF` to this type.
    pub fn from_udf(udf: &ScalarUDF) -> Option<&Self> {
        (udf.inner().as_ref() as &dyn Any).downcast_ref::<Self>()
    }
}

impl ScalarUDFImpl for GroupSetUdf {
    fn name(&self) -> &str {
        GROUP_SET_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [interval, keys @ ..] = args.args.as_slice() else {
            return exec_err!("{GROUP_SET_NAME} takes an interval and four keys");
        };
        let [computer, account, account_type, process] = keys else {
            return exec_err!("{GROUP_SET_NAME} takes an interval and four keys");
        };
        let interval = cast(&interval.to_array(rows)?, &DataType::Int64)?;
        let interval = interval.as_primitive::<Int64Type>();
        // As views: no copy of the strings (Parquet reads them as views already).
        let keys = [computer, account, account_type, process].map(|k| {
            k.to_array(rows)
                .and_then(|a| Ok(cast(&a, &DataType::Utf8View)?))
        });
        let [computer, account, account_type, process] = keys;
        let keys = [computer?, account?, account_type?, process?];
        let keys = keys.each_ref().map(|k| k.as_string_view());
        let mut buf = Vec::new();
        let found: BooleanArray = (0..rows)
            .map(|r| {
                if interval.is_null(r) {
                    return Some(false);
                }
                let key = keys.map(|k| k.is_valid(r).then(|| k.value(r).as_bytes()));
                group_bytes(&mut buf, interval.value(r), key);
                Some(self.groups.contains(&buf))
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(found)))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
    use datafusion::prelude::SessionContext;

    use super::*;

    /// Finds exactly the set's groups: a null key is not an empty one, and neither
    /// matches a group whose key is the other; the interval counts.
    #[tokio::test]
    async fn finds_exactly_the_groups_of_the_set() {
        let s = |v: &str| Some(v.to_string());
        let udf = GroupSetUdf::new(&[
            (0, [s("h"), s("a"), s("User"), s("p")]),
            (0, [None, s("a"), s("User"), s("")]),
            (86_400_000_000, [s("h"), None, s("User"), s("p")]),
        ])
        .unwrap();
        let decoded = GroupSetUdf::decode(udf.payload()).unwrap();
        assert_eq!(decoded, udf);
        let ctx = SessionContext::new();
        let strings = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let day = 86_400_000_000;
        let batch = arrow::record_batch::RecordBatch::try_from_iter([
            (
                "interval",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![0, 0, 0, day, 0, day])
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
            (
                "c",
                strings(vec![
                    Some("h"),
                    None,
                    Some(""),
                    Some("h"),
                    Some("h"),
                    Some("h"),
                ]),
            ),
            (
                "a",
                strings(vec![
                    Some("a"),
                    Some("a"),
                    Some("a"),
                    None,
                    Some("a"),
                    Some(""),
                ]),
            ),
            ("t", strings(vec![Some("User"); 6])),
            (
                "p",
                strings(vec![
                    Some("p"),
                    Some(""),
                    Some(""),
                    Some("p"),
                    None,
                    Some("p"),
                ]),
            ),
        ])
        .unwrap();
        ctx.register_batch("rows", batch).unwrap();
        ctx.register_udf(decoded.into_udf());
        let batches = ctx
            .sql("SELECT procforest_in_groups(\"interval\", c, a, t, p) FROM rows")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let found: Vec<bool> = batches[0].column(0).as_boolean().iter().flatten().collect();
        assert_eq!(found, vec![true, true, false, true, false, false]);
    }
}
