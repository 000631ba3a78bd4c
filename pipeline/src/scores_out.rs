//! Every scored summary row as a Parquet dataset folder (keys, features, score,
//! prediction), for audit and comparison ([`crate::RunConfig::scores_out`]).
//!
//! The executors write it where they score, each partition its own file
//! ([`procforest_core::partition_writer`]): the rows never travel to the driver. They write
//! into `_pending-<run id>/` inside the folder; the driver commits once, after every other
//! stage succeeded: it moves the new files up, removes the previous run's, and writes
//! `_SUCCESS` last (Spark's marker). A failed run removes its pending files and leaves the
//! previous run's folder as it was.

use std::{collections::HashSet, sync::Arc};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::{
    logical_expr::{ScalarUDF, cast, when},
    prelude::{DataFrame, SessionContext, lit},
};
use futures::StreamExt;
use object_store::{ObjectStore, ObjectStoreExt, path::Path as ObjectPath};
use procforest_core::schema::{
    ACCOUNT, ACCOUNT_TYPE, COMPUTER, COUNT, INTERVAL, PREDICTION, PROCESS, SCORE,
};

use crate::{
    error::{Context, Result},
    setting::Setting,
    stages::{column, summaries},
};

/// The marker a committed folder holds.
pub const SUCCESS: &str = "_SUCCESS";

/// The scores folder's schema for the feature `names`.
pub fn schema(names: &[&str]) -> SchemaRef {
    let mut fields = vec![
        Field::new(
            INTERVAL,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new(COMPUTER, DataType::Utf8, true),
        Field::new(ACCOUNT, DataType::Utf8, true),
        Field::new(ACCOUNT_TYPE, DataType::Utf8, true),
        Field::new(PROCESS, DataType::Utf8, true),
        Field::new(COUNT, DataType::Int64, false),
    ];
    fields.extend(
        names
            .iter()
            .map(|f| Field::new(*f, DataType::Float64, false)),
    );
    fields.push(Field::new(SCORE, DataType::Float64, false));
    fields.push(Field::new(PREDICTION, DataType::Int8, false));
    Arc::new(Schema::new(fields))
}

/// A run's scores folder.
#[derive(Debug, Clone)]
pub struct ScoresOut {
    /// The folder, a URL ending with `/`.
    dir: String,
    /// Where the executors write, a URL ending with `/`.
    pending: String,
}

impl ScoresOut {
    /// The folder at `location` (a local path or a URL the executors can write to; created
    /// by the first file written) for run `run_id`.
    pub fn new(location: &str, run_id: &str) -> Result<Self> {
        let dir = if location.contains("://") && !location.starts_with("file://") {
            format!("{}/", location.trim_end_matches('/'))
        } else {
            local_folder(location.strip_prefix("file://").unwrap_or(location))?
        };
        let pending = format!("{dir}_pending-{run_id}/");
        Ok(Self { dir, pending })
    }

    /// The folder's URL.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Scores every row of `features` on the executors and writes them, with their
    /// prediction against `offset`, into the pending folder; returns the rows written.
    pub async fn write(
        &self,
        features: DataFrame,
        names: &[&str],
        score: ScalarUDF,
        offset: f64,
    ) -> Result<u64> {
        let schema = schema(names);
        let kept = &schema.fields()[..schema.fields().len() - 2];
        let mut select: Vec<_> = kept
            .iter()
            .map(|f| cast(column(f.name()), f.data_type().clone()).alias(f.name()))
            .collect();
        select.push(
            score
                .call(names.iter().map(|f| column(f)).collect())
                .alias(SCORE),
        );
        // The prediction from the score column, in a projection of its own: in the same
        // one, the score's expression would appear twice and be computed twice.
        let prediction = when((column(SCORE) - lit(offset)).lt(lit(0.0)), lit(-1i8))
            .otherwise(lit(1i8))
            .runtime("planning predictions")?;
        let mut with_prediction: Vec<_> = kept.iter().map(|f| column(f.name())).collect();
        with_prediction.push(column(SCORE));
        with_prediction.push(prediction.alias(PREDICTION));
        let scored = features
            .select(select)
            .and_then(|df| df.select(with_prediction))
            .runtime("planning the scores")?;
        summaries::write(scored, &self.pending, "every score").await
    }

    /// Moves the run's files into the folder, removes the previous run's, and writes the
    /// success marker last.
    pub async fn commit(&self, ctx: &SessionContext) -> Result<()> {
        let (store, dir) = store_of(ctx, &self.dir)?;
        let (_, pending) = store_of(ctx, &self.pending)?;
        let mut written = HashSet::new();
        for from in list(&store, &pending).await? {
            let Some(name) = from.filename().map(str::to_string) else {
                continue;
            };
            let to = dir.clone().join(name.as_str());
            store
                .rename(&from, &to)
                .await
                .bad_setting(Setting::ScoresOut, format!("moving {from} into {dir}"))?;
            written.insert(to);
        }
        let listing = store
            .list_with_delimiter(Some(&dir))
            .await
            .runtime(format!("listing the scores folder {}", self.dir))?;
        for old in listing.objects.into_iter().map(|o| o.location) {
            if !written.contains(&old) && old.filename() != Some(SUCCESS) {
                store
                    .delete(&old)
                    .await
                    .runtime(format!("removing the previous scores {old}"))?;
            }
        }
        store
            .put(&dir.clone().join(SUCCESS), Vec::new().into())
            .await
            .bad_setting(
                Setting::ScoresOut,
                format!("writing {SUCCESS} in {}", self.dir),
            )?;
        self.abandon(ctx).await;
        Ok(())
    }

    /// Removes whatever is left of the run's pending files; failures are logged.
    pub async fn abandon(&self, ctx: &SessionContext) {
        let removed = async {
            let (store, pending) = store_of(ctx, &self.pending)?;
            for file in list(&store, &pending).await? {
                store
                    .delete(&file)
                    .await
                    .runtime("removing pending scores")?;
            }
            Ok::<_, crate::PipelineError>(())
        };
        if let Err(e) = removed.await {
            tracing::warn!("cannot remove the pending scores {}: {e}", self.pending);
        }
        // Local folders stay behind their files: the pending one goes, and the scores
        // folder too when this run made it (a committed one holds at least _SUCCESS).
        for url in [&self.pending, &self.dir] {
            let local = url::Url::parse(url).ok().filter(|u| u.scheme() == "file");
            if let Some(path) = local.and_then(|u| u.to_file_path().ok()) {
                let _ = std::fs::remove_dir(path);
            }
        }
    }
}

/// Every row of a local scores folder, file by file in name order (for tools that read a
/// run's scores back: the evaluation, tests).
pub fn read_local(
    dir: &std::path::Path,
) -> Result<impl Iterator<Item = Result<arrow::record_batch::RecordBatch>>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .runtime(format!("reading the scores folder {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let mut readers = Vec::with_capacity(files.len());
    for path in files {
        let file = std::fs::File::open(&path).runtime(format!("reading {}", path.display()))?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .and_then(|builder| builder.build())
            .runtime(format!("reading {}", path.display()))?;
        readers.push(reader);
    }
    Ok(readers
        .into_iter()
        .flatten()
        .map(|batch| batch.runtime("reading scores")))
}

/// A local folder as a `file://` URL ending with `/`.
fn local_folder(path: &str) -> Result<String> {
    let absolute = std::path::absolute(path)
        .bad_setting(Setting::ScoresOut, format!("{path}: not a usable path"))?;
    if absolute.is_file() {
        return Err(crate::PipelineError::bad_setting(
            Setting::ScoresOut,
            format!("{path} is a file: the scores are written as a folder of Parquet files"),
        ));
    }
    if let Some(problem) = crate::files::missing_folder(&absolute).filter(|_| !absolute.is_dir()) {
        return Err(crate::PipelineError::bad_setting(
            Setting::ScoresOut,
            format!("{path}: {problem}"),
        ));
    }
    Ok(url::Url::from_directory_path(&absolute)
        .map(String::from)
        .unwrap_or_else(|()| format!("file://{}/", absolute.display())))
}

fn store_of(ctx: &SessionContext, url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    let (store_url, path) =
        procforest_core::scan::store_and_path(url).bad_setting(Setting::ScoresOut, url)?;
    let store = ctx
        .runtime_env()
        .object_store(&store_url)
        .bad_setting(Setting::ScoresOut, url)?;
    Ok((store, path))
}

/// Every object under `prefix`.
async fn list(store: &Arc<dyn ObjectStore>, prefix: &ObjectPath) -> Result<Vec<ObjectPath>> {
    let mut files = Vec::new();
    let mut listing = store.list(Some(prefix));
    while let Some(meta) = listing.next().await {
        files.push(meta.runtime(format!("listing {prefix}"))?.location);
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &std::path::Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_commit_moves_the_new_files_in_and_the_old_ones_out() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("scores");
        let ctx = SessionContext::new();
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("old-1.parquet"), "old").unwrap();
        std::fs::write(folder.join(SUCCESS), "").unwrap();
        let out = ScoresOut::new(folder.to_str().unwrap(), "r1").unwrap();
        let pending = folder.join("_pending-r1");
        std::fs::create_dir_all(&pending).unwrap();
        std::fs::write(pending.join("new-1.parquet"), "new").unwrap();
        std::fs::write(pending.join("new-2.parquet"), "new").unwrap();
        out.commit(&ctx).await.unwrap();
        assert_eq!(names(&folder), [SUCCESS, "new-1.parquet", "new-2.parquet"]);
    }

    #[tokio::test]
    async fn an_abandoned_run_leaves_the_folder_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = SessionContext::new();
        // A folder this run would have made: gone with its pending files.
        let fresh = dir.path().join("fresh");
        let out = ScoresOut::new(fresh.to_str().unwrap(), "r2").unwrap();
        std::fs::create_dir_all(fresh.join("_pending-r2")).unwrap();
        std::fs::write(fresh.join("_pending-r2/part.parquet"), "x").unwrap();
        out.abandon(&ctx).await;
        assert!(!fresh.exists());
        // A committed folder: only the pending files go.
        let kept = dir.path().join("kept");
        std::fs::create_dir_all(kept.join("_pending-r3")).unwrap();
        std::fs::write(kept.join("_pending-r3/part.parquet"), "x").unwrap();
        std::fs::write(kept.join("old.parquet"), "old").unwrap();
        std::fs::write(kept.join(SUCCESS), "").unwrap();
        let out = ScoresOut::new(kept.to_str().unwrap(), "r3").unwrap();
        out.abandon(&ctx).await;
        assert_eq!(names(&kept), [SUCCESS, "old.parquet"]);
    }
}
