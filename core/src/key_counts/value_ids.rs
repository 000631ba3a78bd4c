//! Numbers for a string column's values, met batch by batch.

use std::{collections::HashMap, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, AsArray, DictionaryArray, StringArray},
    compute::cast,
    datatypes::{DataType, Int32Type},
};
use datafusion::common::Result;

/// The number of a null value.
pub const NULL_ID: u32 = 0;

/// Gives every distinct value of one column a number (from 1, in the order met; 0 is null)
/// and keeps the values to turn numbers back into strings.
///
/// A Parquet column read as a dictionary hands over each row group's distinct values once
/// and then only indices into them; consecutive batches of a row group share the same
/// values array. So the values are numbered once per dictionary, and a row costs one
/// lookup in a small table, never a string hash or comparison.
#[derive(Debug, Default)]
pub struct ValueIds {
    ids: HashMap<Box<str>, u32, foldhash::fast::FixedState>,
    values: Vec<Box<str>>,
    /// The dictionary last numbered (held, so its address cannot be reused) and the number
    /// of each of its entries.
    last: Option<(ArrayRef, Vec<u32>)>,
}

impl ValueIds {
    /// The value numbered `id` (`None` for [`NULL_ID`]).
    pub fn value(&self, id: u32) -> Option<&str> {
        (id != NULL_ID).then(|| &*self.values[id as usize - 1])
    }

    pub(super) fn id(&mut self, value: &str) -> u32 {
        if let Some(&id) = self.ids.get(value) {
            return id;
        }
        self.values.push(value.into());
        let id = self.values.len() as u32;
        self.ids.insert(value.into(), id);
        id
    }

    /// Folds the number of each row's value of `column` into `keys` (`key << 32 | id`).
    /// `column` is a dictionary of strings (the fast path), or any string array (numbered
    /// row by row).
    pub fn fold_into(&mut self, column: &ArrayRef, keys: &mut [u128]) -> Result<()> {
        let dictionary = match column.data_type() {
            DataType::Dictionary(key, value)
                if **key == DataType::Int32 && **value == DataType::Utf8 =>
            {
                column.as_dictionary::<Int32Type>().clone()
            }
            other => {
                let plain = match other {
                    DataType::Dictionary(_, _) | DataType::Utf8 => column.clone(),
                    _ => cast(column, &DataType::Utf8)?,
                };
                let cast_to =
                    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
                cast(&plain, &cast_to)?.as_dictionary::<Int32Type>().clone()
            }
        };
        let numbers = self.numbers_of(&dictionary);
        let indices = dictionary.keys();
        let fold = |key: &mut u128, id: u32| *key = (*key << 32) | u128::from(id);
        match indices.nulls() {
            None => {
                for (key, &index) in keys.iter_mut().zip(indices.values()) {
                    fold(key, numbers[index as usize]);
                }
            }
            Some(nulls) => {
                for (i, (key, &index)) in keys.iter_mut().zip(indices.values()).enumerate() {
                    let id = if nulls.is_valid(i) {
                        numbers[index as usize]
                    } else {
                        NULL_ID
                    };
                    fold(key, id);
                }
            }
        }
        Ok(())
    }

    /// The number of each entry of `dictionary`'s values, from the cache when it is the
    /// dictionary last seen.
    fn numbers_of(&mut self, dictionary: &DictionaryArray<Int32Type>) -> &[u32] {
        let values = dictionary.values();
        let cached = matches!(&self.last, Some((last, _)) if Arc::ptr_eq(last, values));
        if !cached {
            let strings: &StringArray = values.as_string::<i32>();
            let numbers = (0..strings.len())
                .map(|i| {
                    if strings.is_valid(i) {
                        self.id(strings.value(i))
                    } else {
                        NULL_ID
                    }
                })
                .collect();
            self.last = Some((values.clone(), numbers));
        }
        &self.last.as_ref().expect("set above").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{DictionaryArray, Int32Array, StringViewArray};

    fn dictionary(indices: Vec<Option<i32>>, values: &ArrayRef) -> ArrayRef {
        Arc::new(DictionaryArray::new(
            Int32Array::from(indices),
            values.clone(),
        ))
    }

    #[test]
    fn equal_values_get_equal_numbers_across_dictionaries_and_types() {
        let mut ids = ValueIds::default();
        let first: ArrayRef = Arc::new(StringArray::from(vec![Some("b"), Some("a"), None]));
        let second: ArrayRef = Arc::new(StringArray::from(vec!["a", "c"]));
        let mut keys = vec![0u128; 4];
        // Null entries in the dictionary and null indices both number as null.
        ids.fold_into(
            &dictionary(vec![Some(0), Some(1), Some(2), None], &first),
            &mut keys,
        )
        .unwrap();
        assert_eq!(keys, [1, 2, 0, 0]);
        let mut keys = vec![0u128; 3];
        ids.fold_into(
            &dictionary(vec![Some(1), Some(0), Some(0)], &second),
            &mut keys,
        )
        .unwrap();
        assert_eq!(keys, [3, 2, 2]);
        // A plain string column is numbered the same way.
        let plain: ArrayRef = Arc::new(StringViewArray::from(vec![Some("c"), None, Some("b")]));
        let mut keys = vec![7u128; 3];
        ids.fold_into(&plain, &mut keys).unwrap();
        assert_eq!(keys, [7 << 32 | 3, 7 << 32, 7 << 32 | 1]);
        assert_eq!(ids.values.len(), 3);
        assert_eq!(
            (1..=3).map(|id| ids.value(id)).collect::<Vec<_>>(),
            [Some("b"), Some("a"), Some("c")]
        );
        assert_eq!(ids.value(NULL_ID), None);
    }

    #[test]
    fn a_dictionary_seen_again_is_not_renumbered() {
        let mut ids = ValueIds::default();
        let values: ArrayRef = Arc::new(StringArray::from(vec!["x", "y"]));
        let mut keys = vec![0u128; 2];
        ids.fold_into(&dictionary(vec![Some(1), Some(0)], &values), &mut keys)
            .unwrap();
        let cached = ids.last.as_ref().unwrap().1.as_ptr();
        ids.fold_into(&dictionary(vec![Some(0), Some(0)], &values), &mut keys)
            .unwrap();
        assert_eq!(ids.last.as_ref().unwrap().1.as_ptr(), cached);
        assert_eq!(keys, [2 << 32 | 1, 1 << 32 | 1]);
    }
}
