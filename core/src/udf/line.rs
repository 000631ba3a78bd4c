//! Functions of a command line, for the evidence features (the pipeline's `evidence`
//! stage):
//!
//! - `procforest_template(line, account, computer)`: [`crate::template::template`] of each
//!   row's command line, run by its account on its computer; a null line stays null.
//! - `procforest_line_entropy(line)`: the Shannon entropy of the line's bytes, in bits per
//!   byte (0 for an empty line, at most 8); a null line stays null. Encoded or obfuscated
//!   commands stand out from the words and paths of usual ones.
//!
//! Both are pure and stateless: any process rebuilds them from their names.

use std::{any::Any, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, Float64Array, StringArray, StringViewArray},
    compute::cast,
    datatypes::DataType,
};
use datafusion::{
    common::{Result, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

use crate::template::template;

/// `procforest_template`'s name in plans.
pub const TEMPLATE_NAME: &str = "procforest_template";
/// `procforest_line_entropy`'s name in plans.
pub const LINE_ENTROPY_NAME: &str = "procforest_line_entropy";

/// Each argument as a string view array (any string type is accepted).
fn strings(name: &str, args: &ScalarFunctionArgs) -> Result<Vec<StringViewArray>> {
    args.args
        .iter()
        .map(|arg| {
            let array = arg.to_array(args.number_rows)?;
            match array.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                    Ok(cast(&array, &DataType::Utf8View)?.as_string_view().clone())
                }
                other => exec_err!("{name} takes strings, not {other}"),
            }
        })
        .collect()
}

fn is_string(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
    )
}

/// Row `i` of `array`, `None` when null.
fn at(array: &StringViewArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i))
}

/// The template function; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TemplateUdf {
    signature: Signature,
}

impl Default for TemplateUdf {
    fn default() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl TemplateUdf {
    /// As a DataFusion `ScalarUDF`.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
    /// Whether `udf` is this function.
    pub fn is(udf: &ScalarUDF) -> bool {
        (udf.inner().as_ref() as &dyn Any).is::<Self>()
    }
}

impl ScalarUDFImpl for TemplateUdf {
    fn name(&self) -> &str {
        TEMPLATE_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [a, b, c] if [a, b, c].into_iter().all(is_string) => Ok(DataType::Utf8),
            other => exec_err!("{TEMPLATE_NAME} takes (line, account, computer), not {other:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = strings(TEMPLATE_NAME, &args)?;
        let [lines, accounts, computers] = columns.as_slice() else {
            return exec_err!("{TEMPLATE_NAME} takes three arguments");
        };
        let templates: StringArray = (0..args.number_rows)
            .map(|i| at(lines, i).map(|line| template(line, at(accounts, i), at(computers, i))))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(templates) as ArrayRef))
    }
}

/// The entropy function; see the module documentation.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LineEntropyUdf {
    signature: Signature,
}

impl Default for LineEntropyUdf {
    fn default() -> Self {
        Self {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl LineEntropyUdf {
    /// As a DataFusion `ScalarUDF`.
    pub fn into_udf(self) -> ScalarUDF {
        ScalarUDF::new_from_impl(self)
    }
    /// Whether `udf` is this function.
    pub fn is(udf: &ScalarUDF) -> bool {
        (udf.inner().as_ref() as &dyn Any).is::<Self>()
    }
}

impl ScalarUDFImpl for LineEntropyUdf {
    fn name(&self) -> &str {
        LINE_ENTROPY_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t] if is_string(t) => Ok(DataType::Float64),
            other => exec_err!("{LINE_ENTROPY_NAME} takes one string, not {other:?}"),
        }
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let columns = strings(LINE_ENTROPY_NAME, &args)?;
        let [lines] = columns.as_slice() else {
            return exec_err!("{LINE_ENTROPY_NAME} takes one argument");
        };
        let entropies: Float64Array = lines
            .iter()
            .map(|line| line.map(|l| byte_entropy(l.as_bytes())))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(entropies) as ArrayRef))
    }
}

/// Shannon entropy of `bytes`, in bits per byte (0 when empty).
pub fn byte_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let total = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use datafusion::prelude::SessionContext;

    use super::*;

    #[test]
    fn entropy_is_zero_for_one_symbol_and_log2_for_uniform_bytes() {
        assert_eq!(byte_entropy(b""), 0.0);
        assert_eq!(byte_entropy(b"aaaa"), 0.0);
        assert!((byte_entropy(b"ab") - 1.0).abs() < 1e-12);
        assert!((byte_entropy(b"abcd") - 2.0).abs() < 1e-12);
        let all: Vec<u8> = (0..=255).collect();
        assert!((byte_entropy(&all) - 8.0).abs() < 1e-12);
    }

    /// Through SQL, on string views and plain strings, nulls kept: the functions give
    /// what the Rust functions give.
    #[tokio::test]
    async fn the_functions_in_sql_match_the_rust_functions() {
        let ctx = SessionContext::new();
        ctx.register_udf(TemplateUdf::default().into_udf());
        ctx.register_udf(LineEntropyUdf::default().into_udf());
        let sql = "SELECT procforest_template(line, account, host) AS t, \
                   procforest_line_entropy(line) AS e FROM (VALUES \
                   ('C:\\Users\\alice\\x.exe run 12345 on WS01', 'CORP\\alice', arrow_cast('ws01.corp.local', 'Utf8View')), \
                   (NULL, 'CORP\\bob', arrow_cast('ws02', 'Utf8View'))) AS v(line, account, host)";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let t = batches[0].column(0).as_string::<i32>();
        let e = batches[0]
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>();
        let line = r"C:\Users\alice\x.exe run 12345 on WS01";
        assert_eq!(
            t.value(0),
            template(line, Some(r"CORP\alice"), Some("ws01.corp.local"))
        );
        assert_eq!(t.value(0), r"<profile>\x.exe run <n> on <host>");
        assert!(t.is_null(1));
        assert_eq!(e.value(0), byte_entropy(line.as_bytes()));
        assert!(e.is_null(1));
    }
}
