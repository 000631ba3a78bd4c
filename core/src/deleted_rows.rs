//! Rows a Delta deletion vector removes from a data file, and the deletion vector format.
//!
//! The driver resolves each file's deletion vector into [`DeletedRows`], which travels in
//! the plan beside the file; a scan turns it into a Parquet row selection, so executors
//! skip deleted rows while reading plain Parquet and never learn about Delta.
//!
//! The format (Delta protocol, "Deletion Vector Format"): a set of row indexes as a
//! `RoaringBitmapArray` in its portable serialization — the magic number 1681511377 (little
//! endian), the number of 32-bit bitmaps (u64, little endian), then per bitmap its high 32
//! bits (u32, little endian) and a standard portable 32-bit Roaring bitmap. That is
//! `RoaringTreemap`'s own serialization behind the magic. Stored inline, those bytes are
//! Z85-encoded (padded with zeros to a multiple of four bytes). Stored in a file (which
//! starts with a version byte, 1), each vector is framed at its offset as its size (u32,
//! big endian), the bytes, and the CRC-32 (ISO-HDLC) of the bytes (u32, big endian). A
//! relative file name is `<prefix>deletion_vector_<uuid>.bin`, the UUID Z85-encoded in the
//! descriptor's last 20 characters.

use std::io::Cursor;

use base64::Engine as _;
use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use roaring::RoaringTreemap;

/// The portable serialization's magic number.
pub const PORTABLE_MAGIC: u32 = 1_681_511_377;
/// The native serialization's magic number (Delta readers need not support it).
const NATIVE_MAGIC: u32 = 1_681_511_376;
/// The first byte of a deletion vector file.
pub const FILE_FORMAT_VERSION: u8 = 1;

/// What is wrong with a deletion vector's bytes.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FormatError {
    /// Shorter than its framing says.
    #[error("truncated: {0}")]
    Truncated(String),
    /// Not the portable `RoaringBitmapArray`.
    #[error("magic number {0} is not the portable RoaringBitmapArray's ({PORTABLE_MAGIC})")]
    Magic(u32),
    /// The stored checksum does not match the bytes.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// In the file.
        stored: u32,
        /// Of the bytes read.
        computed: u32,
    },
    /// The stored size disagrees with the descriptor's.
    #[error("the file frames {stored} bytes, the descriptor says {described}")]
    Size {
        /// In the file.
        stored: u32,
        /// In the log.
        described: u32,
    },
    /// Not Z85, or not a UUID.
    #[error("bad encoding: {0}")]
    Encoding(String),
    /// The bitmap's own structure.
    #[error("bad bitmap: {0}")]
    Bitmap(String),
    /// Row indexes beyond the file, or a cardinality the log disagrees with.
    #[error("{0}")]
    Rows(String),
}

/// A file's deleted rows: indexes into its rows in file order, and how many rows it has.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletedRows {
    file_rows: u64,
    rows: RoaringTreemap,
}

impl DeletedRows {
    /// Deleted `rows` of a file of `file_rows` rows; every index must be inside the file.
    pub fn new(file_rows: u64, rows: RoaringTreemap) -> Result<Self, FormatError> {
        if let Some(max) = rows.max()
            && max >= file_rows
        {
            return Err(FormatError::Rows(format!(
                "row {max} is deleted but the file has {file_rows} rows"
            )));
        }
        Ok(Self { file_rows, rows })
    }

    /// Rows the file holds, deleted ones included.
    pub fn file_rows(&self) -> u64 {
        self.file_rows
    }

    /// Rows deleted.
    pub fn count(&self) -> u64 {
        self.rows.len()
    }

    /// Rows left.
    pub fn live_rows(&self) -> u64 {
        self.file_rows - self.count()
    }

    /// The deleted row indexes.
    pub fn rows(&self) -> &RoaringTreemap {
        &self.rows
    }

    /// The rows to read, over the whole file: runs of kept rows selected, deleted skipped.
    pub fn row_selection(&self) -> RowSelection {
        let mut selectors = Vec::new();
        let mut next = 0u64;
        let mut push = |selector: RowSelector| match selectors.last_mut() {
            Some(RowSelector { skip, row_count }) if *skip == selector.skip => {
                *row_count += selector.row_count
            }
            _ => selectors.push(selector),
        };
        for row in &self.rows {
            if row > next {
                push(RowSelector::select((row - next) as usize));
            }
            push(RowSelector::skip(1));
            next = row + 1;
        }
        if self.file_rows > next {
            push(RowSelector::select((self.file_rows - next) as usize));
        }
        RowSelection::from(selectors)
    }
}

/// How [`DeletedRows`] travels in a plan: the row count and the portable bitmap, base64.
#[derive(serde::Serialize, serde::Deserialize)]
struct Encoded {
    file_rows: u64,
    rows: String,
}

impl serde::Serialize for DeletedRows {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::with_capacity(self.rows.serialized_size());
        self.rows
            .serialize_into(&mut bytes)
            .map_err(serde::ser::Error::custom)?;
        Encoded {
            file_rows: self.file_rows,
            rows: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for DeletedRows {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let encoded = Encoded::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.rows)
            .map_err(serde::de::Error::custom)?;
        let rows =
            RoaringTreemap::deserialize_from(bytes.as_slice()).map_err(serde::de::Error::custom)?;
        DeletedRows::new(encoded.file_rows, rows).map_err(serde::de::Error::custom)
    }
}

/// Decodes a serialized `RoaringBitmapArray` (magic first).
pub fn decode_bitmap(bytes: &[u8]) -> Result<RoaringTreemap, FormatError> {
    let magic = bytes
        .get(..4)
        .ok_or_else(|| FormatError::Truncated(format!("{} bytes, no magic number", bytes.len())))?;
    let magic = u32::from_le_bytes(magic.try_into().expect("four bytes"));
    if magic != PORTABLE_MAGIC {
        return Err(match magic {
            NATIVE_MAGIC => FormatError::Bitmap("the native serialization is not supported".into()),
            other => FormatError::Magic(other),
        });
    }
    let mut cursor = Cursor::new(&bytes[4..]);
    RoaringTreemap::deserialize_from(&mut cursor).map_err(|e| FormatError::Bitmap(e.to_string()))
}

/// Serializes `rows` as a `RoaringBitmapArray` (magic first).
pub fn encode_bitmap(rows: &RoaringTreemap) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + rows.serialized_size());
    bytes.extend_from_slice(&PORTABLE_MAGIC.to_le_bytes());
    rows.serialize_into(&mut bytes)
        .expect("writing to a Vec cannot fail");
    bytes
}

/// Decodes an inline vector: Z85 text of `size_in_bytes` bytes (padding dropped).
pub fn decode_inline(text: &str, size_in_bytes: u32) -> Result<RoaringTreemap, FormatError> {
    let bytes = z85::decode(text).map_err(|e| FormatError::Encoding(format!("{e:?}")))?;
    let size = size_in_bytes as usize;
    if bytes.len() < size {
        return Err(FormatError::Truncated(format!(
            "{} inline bytes, the descriptor says {size}",
            bytes.len()
        )));
    }
    decode_bitmap(&bytes[..size])
}

/// Encodes `rows` inline: Z85 text and the size in bytes the descriptor records.
pub fn encode_inline(rows: &RoaringTreemap) -> (String, u32) {
    let mut bytes = encode_bitmap(rows);
    let size = bytes.len() as u32;
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    (z85::encode(bytes), size)
}

/// Decodes a vector stored in a file, given the file's bytes from the descriptor's offset
/// on: the framed size, the bytes, their checksum.
pub fn decode_stored(framed: &[u8], size_in_bytes: u32) -> Result<RoaringTreemap, FormatError> {
    let word = |at: usize| -> Result<u32, FormatError> {
        framed
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("four bytes")))
            .ok_or_else(|| {
                FormatError::Truncated(format!("{} bytes, needed {}", framed.len(), at + 4))
            })
    };
    let stored = word(0)?;
    if stored != size_in_bytes {
        return Err(FormatError::Size {
            stored,
            described: size_in_bytes,
        });
    }
    let size = stored as usize;
    let checksum = word(4 + size)?;
    let data = &framed[4..4 + size];
    let computed = crc32(data);
    if computed != checksum {
        return Err(FormatError::Checksum {
            stored: checksum,
            computed,
        });
    }
    decode_bitmap(data)
}

/// Frames `rows` for a file: size, bytes, checksum (the file's version byte not included).
pub fn encode_stored(rows: &RoaringTreemap) -> Vec<u8> {
    let data = encode_bitmap(rows);
    let mut framed = Vec::with_capacity(data.len() + 8);
    framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
    framed.extend_from_slice(&data);
    framed.extend_from_slice(&crc32(&data).to_be_bytes());
    framed
}

fn crc32(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

/// The file name, relative to the table's root, of a `u` descriptor's `pathOrInlineDv`.
pub fn relative_file_name(path_or_inline_dv: &str) -> Result<String, FormatError> {
    let split = path_or_inline_dv
        .len()
        .checked_sub(20)
        .filter(|&at| path_or_inline_dv.is_char_boundary(at))
        .ok_or_else(|| {
            FormatError::Encoding(format!(
                "{path_or_inline_dv:?} is shorter than a Z85 UUID (20 characters)"
            ))
        })?;
    let (prefix, encoded) = path_or_inline_dv.split_at(split);
    let uuid = z85::decode(encoded).map_err(|e| FormatError::Encoding(format!("{e:?}")))?;
    let hex: String = uuid.iter().map(|b| format!("{b:02x}")).collect();
    let uuid = format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let prefix = match prefix {
        "" => String::new(),
        p => format!("{p}/"),
    };
    Ok(format!("{prefix}deletion_vector_{uuid}.bin"))
}

/// A `u` descriptor's `pathOrInlineDv` for a UUID's 16 bytes and an optional prefix.
pub fn encode_file_name(prefix: &str, uuid: [u8; 16]) -> String {
    format!("{prefix}{}", z85::encode(uuid))
}

#[cfg(test)]
mod tests;
