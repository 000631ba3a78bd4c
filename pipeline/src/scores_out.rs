//! Every scored summary row (keys, features, score, prediction), for audit and comparison
//! ([`crate::RunConfig::scores_out`]): a Parquet dataset folder or a Delta table
//! ([`ScoresFormat`]).
//!
//! The executors write it where they score, each partition its own file
//! ([`procforest_core::partition_writer`]): the rows never travel to the driver. The
//! driver commits once, after every other stage succeeded:
//! - a folder: the executors write into `_pending-<run id>/`; the driver moves the new
//!   files up, removes the previous run's, and writes `_SUCCESS` last (Spark's marker);
//! - a Delta table: the executors write into `run-<run id>/` inside the table; the driver
//!   commits one version that adds them and removes the previous run's files (they stay
//!   readable by time travel until a vacuum).
//!
//! A failed run removes its own files and leaves the previous run's folder or table as it
//! was.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::{
    logical_expr::{ScalarUDF, cast, when},
    prelude::{DataFrame, SessionContext, lit},
};
use deltalake::{
    DeltaTable, DeltaTableBuilder, DeltaTableError,
    kernel::{
        Action, Add, MetadataExt, StructType,
        engine::arrow_conversion::TryIntoKernel,
        transaction::{CommitBuilder, CommitProperties},
    },
    protocol::{DeltaOperation, SaveMode},
};
use futures::StreamExt;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, path::Path as ObjectPath};
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

/// How the scores are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoresFormat {
    /// A folder of Parquet files with Spark's `_SUCCESS` marker.
    #[default]
    Parquet,
    /// A Delta table, replaced by each run in one commit.
    Delta,
}

/// A run's scores folder or table.
#[derive(Debug, Clone)]
pub struct ScoresOut {
    /// The folder or table, a URL ending with `/`.
    dir: String,
    /// Where the executors write, a URL ending with `/`.
    pending: String,
    format: ScoresFormat,
    /// For the Delta table.
    storage_options: HashMap<String, String>,
}

impl ScoresOut {
    /// The folder or table at `location` (a local path or a URL the executors can write
    /// to; created by the first run) for run `run_id`.
    pub fn new(
        location: &str,
        run_id: &str,
        format: ScoresFormat,
        storage_options: HashMap<String, String>,
    ) -> Result<Self> {
        let dir = if location.contains("://") && !location.starts_with("file://") {
            format!("{}/", location.trim_end_matches('/'))
        } else {
            let path = location.strip_prefix("file://").unwrap_or(location);
            check_local_format(path, format)?;
            local_folder(path)?
        };
        let pending = match format {
            ScoresFormat::Parquet => format!("{dir}_pending-{run_id}/"),
            // Inside the table and not hidden: Delta's vacuum skips folders named `_…`.
            ScoresFormat::Delta => format!("{dir}run-{run_id}/"),
        };
        Ok(Self {
            dir,
            pending,
            format,
            storage_options,
        })
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

    /// Makes the run's files the folder's or table's content (see the module
    /// documentation); `names` are the features written.
    pub async fn commit(&self, ctx: &SessionContext, names: &[&str]) -> Result<()> {
        match self.format {
            ScoresFormat::Parquet => self.commit_folder(ctx).await,
            ScoresFormat::Delta => self.commit_table(ctx, names).await,
        }
    }

    /// Moves the run's files into the folder, removes the previous run's, and writes the
    /// success marker last.
    async fn commit_folder(&self, ctx: &SessionContext) -> Result<()> {
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

    /// Commits one table version that adds the run's files and removes every file of the
    /// previous version, with the schema of `names` (changed when the feature set did).
    async fn commit_table(&self, ctx: &SessionContext, names: &[&str]) -> Result<()> {
        let what = format!("committing the scores table {}", self.dir);
        let (store, root) = store_of(ctx, &self.dir)?;
        let (_, pending) = store_of(ctx, &self.pending)?;
        let mut written: Vec<ObjectMeta> = Vec::new();
        let mut listing = store.list(Some(&pending));
        while let Some(meta) = listing.next().await {
            written.push(meta.runtime(format!("listing {pending}"))?);
        }
        let schema: StructType = schema(names).as_ref().try_into_kernel().runtime(&what)?;
        let table = self.open_or_create_table(&schema).await?;
        let snapshot = table.snapshot().runtime(&what)?;
        let mut actions = Vec::new();
        if snapshot.schema().as_ref() != &schema {
            let metadata = snapshot.metadata().clone().with_schema(&schema);
            actions.push(Action::Metadata(metadata.runtime(&what)?));
        }
        let previous = snapshot.snapshot().try_log_data().runtime(&what)?;
        actions.extend(
            previous
                .iter()
                .map(|f| Action::Remove(f.remove_action(true))),
        );
        for meta in written {
            let relative = meta.location.as_ref()[root.as_ref().len()..].trim_start_matches('/');
            let rows = rows_in(&store, &meta).await?;
            actions.push(Action::Add(Add {
                path: relative.to_string(),
                size: meta.size as i64,
                modification_time: meta.last_modified.timestamp_millis(),
                data_change: true,
                // Readers answer a count from it (Spark, Databricks' `COUNT(*)`).
                stats: Some(serde_json::json!({ "numRecords": rows }).to_string()),
                ..Default::default()
            }));
        }
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: None,
            predicate: None,
        };
        CommitBuilder::from(CommitProperties::default())
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .runtime(what)?;
        Ok(())
    }

    /// The scores table, created (empty, with `schema`) by its first run.
    async fn open_or_create_table(&self, schema: &StructType) -> Result<DeltaTable> {
        let what = format!("opening the scores table {}", self.dir);
        let url = url::Url::parse(&self.dir).bad_setting(Setting::ScoresOut, &self.dir)?;
        let builder = || {
            DeltaTableBuilder::from_url(url.clone())
                .bad_setting(Setting::ScoresOut, &self.dir)
                .map(|b| b.with_storage_options(self.storage_options.clone()))
        };
        match builder()?.load().await {
            Ok(table) => Ok(table),
            Err(DeltaTableError::NotATable(_)) => builder()?
                .build()
                .runtime(&what)?
                .create()
                .with_columns(schema.fields().cloned())
                // Another run may have created it meanwhile: that one is used.
                .with_save_mode(SaveMode::Ignore)
                .await
                .runtime(what),
            Err(e) => Err(e).runtime(what),
        }
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

/// The rows of a written Parquet file, from its footer (its last 8 bytes give the
/// metadata's length).
async fn rows_in(store: &Arc<dyn ObjectStore>, file: &ObjectMeta) -> Result<i64> {
    let what = || format!("reading the footer of {}", file.location);
    let size = file.size;
    let tail = store
        .get_range(&file.location, size.saturating_sub(8)..size)
        .await
        .runtime(what())?;
    let length = tail
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .unwrap_or(0) as u64;
    let start = size.saturating_sub(8 + length);
    let metadata = store
        .get_range(&file.location, start..size - 8)
        .await
        .runtime(what())?;
    let metadata = parquet::file::metadata::ParquetMetaDataReader::decode_metadata(&metadata)
        .runtime(what())?;
    Ok(metadata.file_metadata().num_rows())
}

/// Refuses a local folder that is of the other format: a Delta table given as a folder
/// (the commit would remove its data files), or a folder of files given as a Delta table.
fn check_local_format(path: &str, format: ScoresFormat) -> Result<()> {
    let folder = std::path::Path::new(path);
    let is_table = folder.join("_delta_log").is_dir();
    let has_files = std::fs::read_dir(folder).is_ok_and(|mut d| d.next().is_some());
    let problem = match format {
        ScoresFormat::Parquet if is_table => "is a Delta table: add --scores-format delta",
        ScoresFormat::Delta if has_files && !is_table => {
            "holds files and is not a Delta table: give a new or empty folder"
        }
        _ => return Ok(()),
    };
    Err(crate::PipelineError::bad_setting(
        Setting::ScoresOut,
        format!("{path} {problem}"),
    ))
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
        let out = ScoresOut::new(
            folder.to_str().unwrap(),
            "r1",
            Default::default(),
            Default::default(),
        )
        .unwrap();
        let pending = folder.join("_pending-r1");
        std::fs::create_dir_all(&pending).unwrap();
        std::fs::write(pending.join("new-1.parquet"), "new").unwrap();
        std::fs::write(pending.join("new-2.parquet"), "new").unwrap();
        out.commit(&ctx, &[]).await.unwrap();
        assert_eq!(names(&folder), [SUCCESS, "new-1.parquet", "new-2.parquet"]);
    }

    #[tokio::test]
    async fn an_abandoned_run_leaves_the_folder_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = SessionContext::new();
        // A folder this run would have made: gone with its pending files.
        let fresh = dir.path().join("fresh");
        let out = ScoresOut::new(
            fresh.to_str().unwrap(),
            "r2",
            Default::default(),
            Default::default(),
        )
        .unwrap();
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
        let out = ScoresOut::new(
            kept.to_str().unwrap(),
            "r3",
            Default::default(),
            Default::default(),
        )
        .unwrap();
        out.abandon(&ctx).await;
        assert_eq!(names(&kept), [SUCCESS, "old.parquet"]);
    }

    #[tokio::test]
    async fn an_abandoned_run_leaves_the_scores_table_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let ctx = SessionContext::new();
        let table = dir.path().join("table");
        std::fs::create_dir_all(table.join("_delta_log")).unwrap();
        std::fs::write(table.join("_delta_log/00000000000000000000.json"), "{}").unwrap();
        std::fs::create_dir_all(table.join("run-r0")).unwrap();
        std::fs::write(table.join("run-r0/part-0.parquet"), "committed").unwrap();
        let out = ScoresOut::new(
            table.to_str().unwrap(),
            "r4",
            ScoresFormat::Delta,
            Default::default(),
        )
        .unwrap();
        std::fs::create_dir_all(table.join("run-r4")).unwrap();
        std::fs::write(table.join("run-r4/part-0.parquet"), "x").unwrap();
        out.abandon(&ctx).await;
        assert_eq!(names(&table), ["_delta_log", "run-r0"]);
        assert_eq!(names(&table.join("run-r0")), ["part-0.parquet"]);
    }
}
