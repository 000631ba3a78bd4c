//! `procforest_sample_key(seed, c1, …, cn)`-style hash: a seeded 64-bit hash of a row's
//! group key, the same on every process and run, used to pick the training sample
//! independently of partitioning (the rows with the smallest keys).

use std::{any::Any, collections::HashMap, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, StringArray, UInt32Array, UInt64Array},
    compute::{cast, take},
    datatypes::{DataType, Int64Type},
};
use datafusion::{
    common::Result,
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};

/// The function's name in plans.
pub const SAMPLE_KEY_NAME: &str = "procforest_sample_key";

/// The seeded key hash; the seed travels in the plan through [`crate::codec`].
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SampleKeyUdf {
    seed: u64,
    signature: Signature,
}

impl SampleKeyUdf {
    /// A key hash for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            signature: Signature::variadic_any(Volatility::Immutable),
        }
    }
    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
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

/// Absorbs one 64-bit word into `state` (FxHash's step). For a fixed word it is a
/// bijection of the state, and for a fixed state a bijection of the word, so two word
/// sequences of the same length that differ anywhere end in different states.
fn absorb(state: u64, word: u64) -> u64 {
    (state.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// Absorbs `bytes` as little-endian words, the last one padded with zeros (the caller
/// absorbs the length first, so padding is unambiguous). Eight bytes per step: hashing
/// byte by byte (FNV-1a) was most of the cost of choosing the training sample.
fn absorb_bytes(mut state: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        state = absorb(state, u64::from_le_bytes(w));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0; 8];
        w[..rest.len()].copy_from_slice(rest);
        state = absorb(state, u64::from_le_bytes(w));
    }
    state
}

/// SplitMix64's finaliser: spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The state a key's hash starts from.
fn start(seed: u64) -> u64 {
    mix(seed ^ 0xcbf2_9ce4_8422_2325)
}

/// Absorbs one part (`None` = null).
fn absorb_part(state: u64, part: Option<&[u8]>) -> u64 {
    match part {
        // No length is u64::MAX: a null differs from every string.
        None => absorb(state, u64::MAX),
        Some(bytes) => absorb_bytes(absorb(state, bytes.len() as u64), bytes),
    }
}

/// The key of one row given as its parts (`None` = null), for tests and the driver.
pub fn sample_key(seed: u64, parts: &[Option<&[u8]>]) -> u64 {
    mix(parts
        .iter()
        .fold(start(seed), |state, part| absorb_part(state, *part)))
}

impl ScalarUDFImpl for SampleKeyUdf {
    fn name(&self) -> &str {
        SAMPLE_KEY_NAME
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let keys = sample_keys(self.seed, &arrays, args.number_rows)?;
        Ok(ColumnarValue::Array(Arc::new(keys)))
    }
}

/// The keys of `rows` rows whose parts are the columns `parts` (what the function computes,
/// for callers holding the columns).
pub fn sample_keys(seed: u64, parts: &[ArrayRef], rows: usize) -> Result<UInt64Array> {
    // Every part as text: strings stay as they are, timestamps and numbers print
    // canonically, so the key does not depend on the column's physical type.
    let texts: Vec<Texts> = parts
        .iter()
        .map(Texts::new)
        .collect::<std::result::Result<_, _>>()?;
    // A first part with few distinct values (the interval) is absorbed once per value.
    let first_states: Option<(&[u32], Vec<u64>)> = match texts.first() {
        Some(Texts::Distinct { index, texts }) => Some((
            index,
            (0..texts.len())
                .map(|i| {
                    absorb_part(
                        start(seed),
                        texts.is_valid(i).then(|| texts.value(i).as_bytes()),
                    )
                })
                .collect(),
        )),
        _ => None,
    };
    let keys = (0..rows).map(|r| {
        let (state, rest) = match &first_states {
            Some((index, states)) => match index[r] {
                u32::MAX => (absorb_part(start(seed), None), &texts[1..]),
                i => (states[i as usize], &texts[1..]),
            },
            None => (start(seed), &texts[..]),
        };
        mix(rest
            .iter()
            .fold(state, |state, t| absorb_part(state, t.get(r))))
    });
    Ok(UInt64Array::from_iter_values(keys))
}

/// A column's values as text, per row.
enum Texts {
    /// Every row cast.
    Cast(StringArray),
    /// Timestamps: each distinct value cast once (a summary column holds a few intervals,
    /// and formatting a timestamp costs more than hashing its text).
    Distinct {
        /// Per row, the index of its value's text (`u32::MAX` for null).
        index: Vec<u32>,
        /// The distinct values' texts.
        texts: StringArray,
    },
}

impl Texts {
    fn new(array: &ArrayRef) -> std::result::Result<Self, arrow::error::ArrowError> {
        if !matches!(array.data_type(), DataType::Timestamp(_, _)) {
            return Ok(Texts::Cast(
                cast(array, &DataType::Utf8)?.as_string().clone(),
            ));
        }
        let values = cast(array, &DataType::Int64)?;
        let values = values.as_primitive::<Int64Type>();
        let mut seen: HashMap<i64, u32> = HashMap::new();
        let mut first_rows: Vec<u32> = Vec::new();
        let index = (0..values.len())
            .map(|r| match values.is_valid(r) {
                false => u32::MAX,
                true => *seen.entry(values.value(r)).or_insert_with(|| {
                    first_rows.push(r as u32);
                    first_rows.len() as u32 - 1
                }),
            })
            .collect();
        let firsts = take(array, &UInt32Array::from(first_rows), None)?;
        Ok(Texts::Distinct {
            index,
            texts: cast(&firsts, &DataType::Utf8)?.as_string().clone(),
        })
    }

    /// Row `r`'s text, `None` if null.
    fn get(&self, r: usize) -> Option<&[u8]> {
        let (strings, i) = match self {
            Texts::Cast(strings) => (strings, r),
            Texts::Distinct { index, texts } => match index[r] {
                u32::MAX => return None,
                i => (texts, i as usize),
            },
        };
        strings.is_valid(i).then(|| strings.value(i).as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_seed_parts_and_boundaries() {
        let k = |seed, parts: &[Option<&[u8]>]| sample_key(seed, parts);
        let a = k(42, &[Some(b"ab"), Some(b"c")]);
        assert_eq!(a, k(42, &[Some(b"ab"), Some(b"c")]));
        assert_ne!(a, k(43, &[Some(b"ab"), Some(b"c")]));
        assert_ne!(a, k(42, &[Some(b"a"), Some(b"bc")]));
        assert_ne!(k(42, &[None]), k(42, &[Some(b"")]));
    }

    #[test]
    fn every_byte_of_a_long_part_counts() {
        let long = b"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe".to_vec();
        let base = sample_key(42, &[Some(&long)]);
        for i in 0..long.len() {
            let mut changed = long.clone();
            changed[i] ^= 1;
            assert_ne!(sample_key(42, &[Some(&changed)]), base, "byte {i}");
        }
        let mut padded = long.clone();
        padded.push(0);
        assert_ne!(sample_key(42, &[Some(&padded)]), base);
    }

    /// Keys of similar names are uniform: the share below a bound is the bound's share.
    #[test]
    fn keys_of_similar_names_are_uniform() {
        let n = 100_000;
        for share in [0.01, 0.1, 0.5] {
            let bound = (share * u64::MAX as f64) as u64;
            let below = (0..n)
                .filter(|i| {
                    let host = format!("host-{i:06}.corp.example");
                    sample_key(42, &[Some(host.as_bytes()), Some(b"SYSTEM")]) <= bound
                })
                .count() as f64;
            let sd = (n as f64 * share * (1.0 - share)).sqrt();
            assert!(
                (below - n as f64 * share).abs() < 5.0 * sd,
                "{below} of {n} below the {share} bound"
            );
        }
    }

    #[test]
    fn keys_are_stable_across_builds() {
        // Pinned: a change here changes every training sample (it changed once, from
        // byte-wise FNV-1a to word-wise absorption, in version 0.1).
        assert_eq!(
            sample_key(42, &[Some(b"host"), None]),
            0x0005_981c_9195_213a
        );
    }

    /// Timestamps hash as their text, whether cast per row or per distinct value.
    #[test]
    fn timestamps_hash_as_their_text() {
        use arrow::array::{StringArray, TimestampMicrosecondArray};
        use datafusion::logical_expr::ScalarFunctionArgs;
        let times: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![
                Some(86_400_000_000),
                None,
                Some(0),
                Some(86_400_000_000),
                Some(-1),
            ])
            .with_timezone("UTC"),
        );
        let hosts: ArrayRef = Arc::new(StringArray::from(vec![
            Some("a"),
            Some("b"),
            None,
            Some("a"),
            Some("c"),
        ]));
        let text = cast(&times, &DataType::Utf8).unwrap();
        let text = text.as_string::<i32>();
        let udf = SampleKeyUdf::new(42);
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Array(times.clone()),
                ColumnarValue::Array(hosts.clone()),
            ],
            arg_fields: vec![
                Arc::new(arrow::datatypes::Field::new(
                    "t",
                    times.data_type().clone(),
                    true,
                )),
                Arc::new(arrow::datatypes::Field::new("h", DataType::Utf8, true)),
            ],
            number_rows: 5,
            return_field: Arc::new(arrow::datatypes::Field::new("k", DataType::UInt64, false)),
            config_options: Arc::new(Default::default()),
        };
        let keys = udf.invoke_with_args(args).unwrap().to_array(5).unwrap();
        let keys = keys.as_primitive::<arrow::datatypes::UInt64Type>();
        let hosts = hosts.as_string::<i32>();
        for r in 0..5 {
            let parts = [
                text.is_valid(r).then(|| text.value(r).as_bytes()),
                hosts.is_valid(r).then(|| hosts.value(r).as_bytes()),
            ];
            assert_eq!(keys.value(r), sample_key(42, &parts), "row {r}");
        }
        assert_eq!(keys.value(0), keys.value(3));
    }
}
