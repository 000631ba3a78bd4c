//! Reading an interval's small files ahead of the one being counted.
//!
//! A table written by streaming ingestion holds hundreds of small files a day. Read one
//! after another, each costs a round trip to the object store (a blocking-pool hop on a
//! local disk) that the counting waits for. Here the next few small files are fetched
//! whole, each by a task of its own, while the counter works on the current one; the
//! counter still takes them in order, so nothing it counts depends on which fetch ends
//! first. A file is parsed from its fetched bytes without copying them.

use std::{collections::VecDeque, ops::Range, sync::Arc};

use bytes::Bytes;
use datafusion::common::{DataFusionError, Result, runtime::SpawnedTask};
use futures::{FutureExt, future::BoxFuture};
use object_store::{ObjectStore, ObjectStoreExt, path::Path};
use parquet::{
    arrow::{arrow_reader::ArrowReaderOptions, async_reader::AsyncFileReader},
    errors::ParquetError,
    file::metadata::{ParquetMetaData, ParquetMetaDataReader},
};

use super::CountedFile;

/// Files up to this size are read whole, in one request.
pub(super) const WHOLE_FILE_BYTES: u64 = 8 << 20;

/// Small files fetched ahead of the one being counted: with [`WHOLE_FILE_BYTES`], at most
/// 32 MiB held per partition beyond the current file.
const FILES_AHEAD: usize = 4;

/// How one file of an interval is read.
pub(super) enum FileRead {
    /// Whole, by a task started ahead of time.
    Whole(SpawnedTask<Result<Bytes>>),
    /// Range by range as the reader asks (a file larger than [`WHOLE_FILE_BYTES`]).
    Ranged,
}

impl FileRead {
    /// The file's bytes if it was read whole (`None` when it is read by ranges).
    pub(super) async fn whole(self) -> Result<Option<Bytes>> {
        match self {
            FileRead::Whole(task) => {
                let bytes = task
                    .join_unwind()
                    .await
                    .map_err(|e| DataFusionError::External(Box::new(e)))??;
                Ok(Some(bytes))
            }
            FileRead::Ranged => Ok(None),
        }
    }
}

/// The reads of an interval's files, in the files' order, each small file's started up to
/// [`FILES_AHEAD`] files before the counter takes it. Dropping it aborts the fetches not
/// taken.
pub(super) struct ReadAhead<'a> {
    store: Arc<dyn ObjectStore>,
    /// Files whose read has not started.
    files: std::slice::Iter<'a, CountedFile>,
    started: VecDeque<(&'a CountedFile, FileRead)>,
}

impl<'a> ReadAhead<'a> {
    pub(super) fn new(store: Arc<dyn ObjectStore>, files: &'a [CountedFile]) -> Self {
        Self {
            store,
            files: files.iter(),
            started: VecDeque::with_capacity(FILES_AHEAD + 1),
        }
    }

    /// The next file and its read, after starting those of the files after it.
    pub(super) fn next_file(&mut self) -> Option<(&'a CountedFile, FileRead)> {
        while self.started.len() <= FILES_AHEAD {
            let Some(file) = self.files.next() else {
                break;
            };
            self.started.push_back((file, self.start(file)));
        }
        self.started.pop_front()
    }

    fn start(&self, file: &CountedFile) -> FileRead {
        if file.size > WHOLE_FILE_BYTES {
            return FileRead::Ranged;
        }
        let store = self.store.clone();
        let (path, size) = (file.path.clone(), file.size);
        FileRead::Whole(SpawnedTask::spawn(async move {
            let path = Path::parse(&path).map_err(|e| DataFusionError::External(Box::new(e)))?;
            Ok(store.get_range(&path, 0..size).await?)
        }))
    }
}

/// A Parquet file held in memory: its footer and column chunks are slices of its bytes.
pub(super) struct WholeFile(pub(super) Bytes);

impl AsyncFileReader for WholeFile {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        let len = self.0.len() as u64;
        let slice = match range.start <= range.end && range.end <= len {
            true => Ok(self.0.slice(range.start as usize..range.end as usize)),
            false => Err(ParquetError::EOF(format!(
                "range {range:?} is beyond the file's {len} bytes"
            ))),
        };
        futures::future::ready(slice).boxed()
    }

    fn get_metadata<'b>(
        &'b mut self,
        options: Option<&'b ArrowReaderOptions>,
    ) -> BoxFuture<'b, parquet::errors::Result<Arc<ParquetMetaData>>> {
        let metadata = ParquetMetaDataReader::new()
            .with_arrow_reader_options(options)
            .parse_and_finish(&self.0)
            .map(Arc::new);
        futures::future::ready(metadata).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_range_beyond_the_file_is_an_error_not_a_panic() {
        let mut file = WholeFile(Bytes::from_static(b"PAR1"));
        assert_eq!(file.get_bytes(1..3).await.unwrap().as_ref(), b"AR");
        let err = file.get_bytes(2..9).await.unwrap_err().to_string();
        assert!(err.contains("beyond the file's 4 bytes"), "{err}");
        assert!(file.get_metadata(None).await.is_err(), "not a Parquet file");
    }
}
