//! `procforest_sorted_distinct(list)`: each list of strings made distinct and sorted
//! bytewise, a null element (if any) last and kept once; a null list stays null.
//!
//! The same result as DataFusion's `array_sort(array_distinct(list), 'ASC', 'NULLS LAST')`
//! in one pass over each list's string slices, without the row encoding and the
//! per-list sort kernels of those two functions (they were most of the cost of the
//! report's command lines).

use std::{any::Any, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, GenericStringArray, ListArray},
    buffer::OffsetBuffer,
    compute::cast,
    datatypes::{DataType, Field},
};
use datafusion::{
    common::{Result, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

/// The function's name in plans.
pub const SORTED_DISTINCT_NAME: &str = "procforest_sorted_distinct";

/// The function; stateless, so any process can rebuild it from its name.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SortedDistinctUdf {
    signature: Signature,
}

impl Default for SortedDistinctUdf {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl SortedDistinctUdf {
    /// As a DataFusion `ScalarUDF`.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
    /// Whether `udf` is this function.
    pub fn is(udf: &ScalarUDF) -> bool {
        (udf.inner().as_ref() as &dyn Any).is::<Self>()
    }
}

/// The output type: a list of nullable strings.
fn output_type() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
}

impl ScalarUDFImpl for SortedDistinctUdf {
    fn name(&self) -> &str {
        SORTED_DISTINCT_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [DataType::List(_) | DataType::LargeList(_)] => Ok(output_type()),
            other => exec_err!("{SORTED_DISTINCT_NAME} takes one list of strings, not {other:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [input] = args.args.as_slice() else {
            return exec_err!("{SORTED_DISTINCT_NAME} takes one argument");
        };
        let lists = input.to_array(args.number_rows)?;
        let lists = cast(&lists, &output_type())?;
        Ok(ColumnarValue::Array(Arc::new(sorted_distinct(
            lists.as_list::<i32>(),
        )?)))
    }
}

/// Each list of `lists` (of strings) distinct and sorted; see the module documentation.
pub fn sorted_distinct(lists: &ListArray) -> Result<ListArray> {
    let Some(values) = lists.values().as_string_opt::<i32>() else {
        return exec_err!(
            "{SORTED_DISTINCT_NAME}: lists of {} are not strings",
            lists.value_type()
        );
    };
    let mut offsets = Vec::with_capacity(lists.len() + 1);
    offsets.push(0i32);
    let mut kept: Vec<Option<&str>> = Vec::with_capacity(values.len());
    let mut slices: Vec<&str> = Vec::new();
    for (i, window) in lists.value_offsets().windows(2).enumerate() {
        if lists.is_valid(i) {
            let (start, end) = (window[0] as usize, window[1] as usize);
            slices.clear();
            let mut has_null = false;
            for j in start..end {
                if values.is_valid(j) {
                    slices.push(values.value(j));
                } else {
                    has_null = true;
                }
            }
            slices.sort_unstable();
            slices.dedup();
            kept.extend(slices.iter().map(|s| Some(*s)));
            if has_null {
                kept.push(None);
            }
        }
        match i32::try_from(kept.len()) {
            Ok(o) => offsets.push(o),
            Err(_) => return exec_err!("{SORTED_DISTINCT_NAME}: over {} strings", i32::MAX),
        }
    }
    let strings: GenericStringArray<i32> = kept.into_iter().collect();
    Ok(ListArray::try_new(
        Arc::new(Field::new_list_field(DataType::Utf8, true)),
        OffsetBuffer::new(offsets.into()),
        Arc::new(strings) as ArrayRef,
        lists.nulls().cloned(),
    )?)
}

#[cfg(test)]
mod tests {
    use arrow::array::{ListBuilder, StringBuilder};
    use datafusion::prelude::SessionContext;

    use super::*;

    fn lists(rows: &[Option<Vec<Option<&str>>>]) -> ListArray {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for row in rows {
            match row {
                None => builder.append_null(),
                Some(items) => {
                    for item in items {
                        builder.values().append_option(*item);
                    }
                    builder.append(true);
                }
            }
        }
        builder.finish()
    }

    #[test]
    fn sorts_dedups_keeps_one_null_last_and_null_lists() {
        let input = lists(&[
            Some(vec![Some("b"), None, Some("a"), Some("b"), None, Some("")]),
            None,
            Some(vec![]),
            Some(vec![Some("é"), Some("z"), Some("Z")]),
        ]);
        let expected = lists(&[
            Some(vec![Some(""), Some("a"), Some("b"), None]),
            None,
            Some(vec![]),
            Some(vec![Some("Z"), Some("z"), Some("é")]),
        ]);
        assert_eq!(sorted_distinct(&input).unwrap(), expected);
    }

    /// The function equals DataFusion's `array_sort(array_distinct(…))` on varied lists.
    #[tokio::test]
    async fn equals_array_sort_of_array_distinct() {
        let words = [
            "cmd /c",
            "a",
            "",
            "powershell -enc",
            "a b",
            "Zeta",
            "zeta",
            "ß",
        ];
        let mut rows = Vec::new();
        let mut state = 7u64;
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        for _ in 0..300 {
            let len = next(12) as usize;
            rows.push(match next(10) {
                0 => None,
                _ => Some(
                    (0..len)
                        .map(|_| match next(9) {
                            8 => None,
                            w => Some(words[w as usize]),
                        })
                        .collect(),
                ),
            });
        }
        let input = lists(&rows);
        let ctx = SessionContext::new();
        let batch = arrow::record_batch::RecordBatch::try_from_iter([(
            "l",
            Arc::new(input.clone()) as ArrayRef,
        )])
        .unwrap();
        ctx.register_batch("t", batch).unwrap();
        let theirs = ctx
            .sql("SELECT array_sort(array_distinct(l), 'ASC', 'NULLS LAST') AS l FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let theirs = theirs[0].column(0).as_list::<i32>().clone();
        assert_eq!(sorted_distinct(&input).unwrap(), theirs);
    }
}
