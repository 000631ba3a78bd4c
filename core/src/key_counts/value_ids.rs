//! Numbers for a string column's values, met batch by batch.

use std::{hash::BuildHasher, sync::Arc};

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
///
/// A table of many small files numbers every file's dictionary (a thousand hosts per file
/// of a hundred a day), so the numbering itself is kept to one cache line per value: see
/// [`Slots`].
#[derive(Debug, Default)]
pub struct ValueIds {
    ids: Slots,
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
        let hash = foldhash::fast::FixedState::default().hash_one(value);
        let values = &self.values;
        match self.ids.find(hash, value, |id| &*values[id as usize - 1]) {
            Ok(id) => id,
            Err(slot) => {
                self.values.push(value.into());
                let id = self.values.len() as u32;
                self.ids.insert(slot, hash, value, id);
                id
            }
        }
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

/// Bytes of a value kept in its slot: the keys' values (host and account names, process
/// file names) nearly always fit, so a lookup reads one cache line.
const INLINE: usize = 48;

/// One numbered value: its hash, number (0: empty slot), length and first bytes.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Slot {
    hash: u64,
    id: u32,
    len: u32,
    inline: [u8; INLINE],
}

impl Slot {
    const EMPTY: Slot = Slot {
        hash: 0,
        id: 0,
        len: 0,
        inline: [0; INLINE],
    };
}

/// Numbers by value: open addressing with linear probing, at most half full. A slot holds
/// the value's hash and, when short, its bytes, so a lookup compares within the slot;
/// `hashbrown`'s map reads a control group, a bucket and the string's heap allocation,
/// three cache misses once a partition's counts have pushed the table out of L2.
#[derive(Default)]
struct Slots {
    slots: Vec<Slot>,
    len: usize,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots").field("len", &self.len).finish()
    }
}

impl Slots {
    /// `value`'s number, or the index of the empty slot it would take; `stored` gives a
    /// number's value (for values too long to be kept in their slot).
    fn find<'a>(
        &self,
        hash: u64,
        value: &str,
        stored: impl Fn(u32) -> &'a str,
    ) -> std::result::Result<u32, usize> {
        if self.slots.is_empty() {
            return Err(0);
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = &self.slots[i];
            if slot.id == 0 {
                return Err(i);
            }
            if slot.hash == hash && slot.len as usize == value.len() {
                let same = match value.len() <= INLINE {
                    true => slot.inline[..value.len()] == *value.as_bytes(),
                    false => stored(slot.id) == value,
                };
                if same {
                    return Ok(slot.id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Numbers `value` as `id` in the empty slot `at` that [`Self::find`] returned.
    fn insert(&mut self, at: usize, hash: u64, value: &str, id: u32) {
        let mut slot = Slot {
            hash,
            id,
            len: value.len() as u32,
            ..Slot::EMPTY
        };
        let kept = value.len().min(INLINE);
        slot.inline[..kept].copy_from_slice(&value.as_bytes()[..kept]);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
            self.place(slot);
        } else {
            self.slots[at] = slot;
        }
        self.len += 1;
    }

    fn grow(&mut self) {
        let capacity = (self.slots.len() * 2).max(64);
        let old = std::mem::replace(&mut self.slots, vec![Slot::EMPTY; capacity]);
        for slot in old.into_iter().filter(|s| s.id != 0) {
            self.place(slot);
        }
    }

    /// Puts `slot` in the first empty slot from its hash's.
    fn place(&mut self, slot: Slot) {
        let mask = self.slots.len() - 1;
        let mut i = slot.hash as usize & mask;
        while self.slots[i].id != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = slot;
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

    /// Thousands of values, long ones (beyond what a slot keeps) sharing their first
    /// bytes, the empty string: each numbered once, in the order met, through every growth.
    #[test]
    fn every_value_keeps_its_number_through_growth() {
        let mut ids = ValueIds::default();
        let long = "x".repeat(INLINE);
        let values: Vec<String> = (0..5000)
            .map(|i| match i % 3 {
                0 => format!("host-{i}"),
                1 => format!("{long}{i}"),
                _ => format!("{i}"),
            })
            .chain([String::new(), long.clone()])
            .collect();
        for (n, value) in values.iter().enumerate() {
            assert_eq!(ids.id(value), n as u32 + 1, "{value}");
        }
        for (n, value) in values.iter().enumerate().rev() {
            assert_eq!(ids.id(value), n as u32 + 1, "{value} again");
            assert_eq!(ids.value(n as u32 + 1), Some(value.as_str()));
        }
        assert_eq!(ids.ids.len, values.len());
        assert!(ids.ids.len * 2 <= ids.ids.slots.len());
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
