//! Packing records into request bodies: JSON arrays of at most [`MAX_BODY_BYTES`] bytes
//! before compression, the Logs Ingestion API's limit per call.

use super::MonitorRecord;

/// The service's limit on an uncompressed body.
pub const MAX_BODY_BYTES: usize = 1_000_000;

/// A request body and the records in it.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// The records, in order.
    pub records: Vec<MonitorRecord>,
}

impl Chunk {
    /// The JSON array.
    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.records).expect("records serialise")
    }

    /// Splits in two halves (for a 413); a single record comes back whole.
    pub fn split(self) -> Result<(Chunk, Chunk), Chunk> {
        if self.records.len() < 2 {
            return Err(self);
        }
        let mut left = self.records;
        let right = left.split_off(left.len() / 2);
        Ok((Chunk { records: left }, Chunk { records: right }))
    }
}

/// Packs records greedily, in order, into chunks whose JSON array fits `limit` bytes.
pub fn pack(records: Vec<MonitorRecord>, limit: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut current = Vec::new();
    let mut size = 2; // "[" and "]"
    for r in records {
        let len = serde_json::to_vec(&r).expect("records serialise").len();
        let extra = len + usize::from(!current.is_empty()); // the comma
        if !current.is_empty() && size + extra > limit {
            chunks.push(Chunk {
                records: std::mem::take(&mut current),
            });
            size = 2;
        }
        size += len + usize::from(!current.is_empty());
        current.push(r);
    }
    if !current.is_empty() {
        chunks.push(Chunk { records: current });
    }
    chunks
}
