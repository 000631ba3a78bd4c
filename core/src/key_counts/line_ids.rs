//! Numbers for command lines, met row by row.

use std::{
    collections::{HashMap, hash_map::Entry},
    hash::{BuildHasher, BuildHasherDefault, Hasher},
};

use arrow::{
    array::{Array, ArrayRef, AsArray},
    compute::cast,
    datatypes::{DataType, Int32Type},
};
use datafusion::common::Result;

use super::value_ids::NULL_ID;

/// Gives every distinct string of a column a number (from 1, in the order met; 0 is null)
/// and keeps the strings, back to back in one buffer.
///
/// Made for columns with many distinct values, such as command lines, where
/// [`super::value_ids::ValueIds`]' table of owned strings costs an allocation or two per
/// value: here a string is hashed, and a table maps the hash to the number of the first
/// string with that hash (checked against the kept string; another string with the same
/// hash, which almost never happens, is numbered through a second table). A dictionary
/// array's values are numbered once per dictionary, as `ValueIds` does (Parquet hands a
/// column chunk's dictionary-encoded pages over so).
#[derive(Debug, Default)]
pub struct LineIds {
    hasher: foldhash::fast::FixedState,
    by_hash: HashMap<u64, u32, BuildHasherDefault<HashValue>>,
    collided: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    text: String,
    /// Where each string ends in `text`, by number − 1.
    ends: Vec<usize>,
    /// The dictionary last numbered (held, so its address cannot be reused) and the number
    /// of each of its entries.
    last: Option<(ArrayRef, Vec<u32>)>,
}

/// The hasher of keys that are hashes already.
#[derive(Default)]
struct HashValue(u64);

impl Hasher for HashValue {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `u64`s are hashed with it; anything else is folded in, never lost.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// The bytes of the string numbered `id` in `text` and `ends`.
fn kept<'a>(text: &'a str, ends: &[usize], id: u32) -> &'a [u8] {
    let i = id as usize - 1;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    &text.as_bytes()[start..ends[i]]
}

impl LineIds {
    /// The string numbered `id` (`None` for [`NULL_ID`]).
    pub fn value(&self, id: u32) -> Option<&str> {
        if id == NULL_ID {
            return None;
        }
        let i = id as usize - 1;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.text[start..self.ends[i]])
    }

    /// The bytes of the string numbered `id` (not [`NULL_ID`]): they sort as the strings.
    pub fn bytes(&self, id: u32) -> &[u8] {
        kept(&self.text, &self.ends, id)
    }

    fn keep(text: &mut String, ends: &mut Vec<usize>, value: &str) -> u32 {
        text.push_str(value);
        ends.push(text.len());
        ends.len() as u32
    }

    /// The number of `value`.
    pub fn id(&mut self, value: &str) -> u32 {
        let hash = self.hasher.hash_one(value);
        match self.by_hash.entry(hash) {
            Entry::Occupied(first) => {
                let id = *first.get();
                if kept(&self.text, &self.ends, id) == value.as_bytes() {
                    return id;
                }
                if let Some(&id) = self.collided.get(value) {
                    return id;
                }
                let id = Self::keep(&mut self.text, &mut self.ends, value);
                self.collided.insert(value.into(), id);
                id
            }
            Entry::Vacant(slot) => *slot.insert(Self::keep(&mut self.text, &mut self.ends, value)),
        }
    }

    /// The number of each row's string of `column` (any string array, best a dictionary
    /// of strings) in `ids`, cleared first.
    pub fn ids_into(&mut self, column: &ArrayRef, ids: &mut Vec<u32>) -> Result<()> {
        ids.clear();
        ids.reserve(column.len());
        match column.data_type() {
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Utf8 =>
            {
                let dictionary = column.as_dictionary::<Int32Type>();
                let numbers = self.numbers_of(dictionary.values());
                let indices = dictionary.keys();
                ids.extend(indices.iter().map(|index| match index {
                    Some(i) => numbers[i as usize],
                    None => NULL_ID,
                }));
            }
            DataType::Utf8View => {
                for value in column.as_string_view() {
                    ids.push(value.map_or(NULL_ID, |v| self.id(v)));
                }
            }
            DataType::Utf8 => {
                for value in column.as_string::<i32>() {
                    ids.push(value.map_or(NULL_ID, |v| self.id(v)));
                }
            }
            DataType::LargeUtf8 => {
                for value in column.as_string::<i64>() {
                    ids.push(value.map_or(NULL_ID, |v| self.id(v)));
                }
            }
            _ => {
                let views = cast(column, &DataType::Utf8View)?;
                for value in views.as_string_view() {
                    ids.push(value.map_or(NULL_ID, |v| self.id(v)));
                }
            }
        }
        Ok(())
    }

    /// The number of each entry of a dictionary's `values` (strings), from the cache when
    /// it is the dictionary last seen.
    fn numbers_of(&mut self, values: &ArrayRef) -> &[u32] {
        let cached = matches!(&self.last, Some((last, _)) if std::sync::Arc::ptr_eq(last, values));
        if !cached {
            let strings = values.as_string::<i32>();
            let numbers = strings
                .iter()
                .map(|value| value.map_or(NULL_ID, |v| self.id(v)))
                .collect();
            self.last = Some((values.clone(), numbers));
        }
        &self.last.as_ref().expect("set above").1
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        DictionaryArray, Int32Array, LargeStringArray, StringArray, StringViewArray,
    };

    use super::*;

    #[test]
    fn equal_strings_get_equal_numbers_whatever_the_array_type() {
        let mut ids = LineIds::default();
        let mut numbers = vec![7];
        let views: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("cmd.exe /c whoami and then some more text"),
            None,
            Some(""),
            Some("cmd.exe /c whoami and then some more text"),
        ]));
        ids.ids_into(&views, &mut numbers).unwrap();
        assert_eq!(numbers, [1, NULL_ID, 2, 1]);
        let plain: ArrayRef = Arc::new(StringArray::from(vec!["", "b"]));
        ids.ids_into(&plain, &mut numbers).unwrap();
        assert_eq!(numbers, [2, 3]);
        let large: ArrayRef = Arc::new(LargeStringArray::from(vec![Some("b"), None]));
        ids.ids_into(&large, &mut numbers).unwrap();
        assert_eq!(numbers, [3, NULL_ID]);
        let values: ArrayRef = Arc::new(StringArray::from(vec!["c", "b"]));
        let dictionary: ArrayRef = Arc::new(DictionaryArray::new(
            Int32Array::from(vec![Some(1), Some(0), None]),
            values,
        ));
        ids.ids_into(&dictionary, &mut numbers).unwrap();
        assert_eq!(numbers, [3, 4, NULL_ID]);
        let kept: Vec<Option<&str>> = (0..=4).map(|id| ids.value(id)).collect();
        assert_eq!(
            kept,
            [
                None,
                Some("cmd.exe /c whoami and then some more text"),
                Some(""),
                Some("b"),
                Some("c")
            ]
        );
    }

    #[test]
    fn strings_with_the_same_hash_keep_their_own_numbers() {
        let mut ids = LineIds::default();
        let first = ids.id("first");
        // Another string filed under the first one's hash, as a collision would be.
        let hash = ids.hasher.hash_one("second");
        ids.by_hash.insert(hash, first);
        let second = ids.id("second");
        assert_ne!(second, first);
        assert_eq!(ids.id("second"), second);
        assert_eq!(ids.id("first"), first);
        assert_eq!(ids.value(second), Some("second"));
        assert_eq!(ids.collided.len(), 1);
    }
}
