//! The run's scratch: where intermediate results (summaries, command lines, index tables)
//! are written between phases, and how they are read back as tables.
//!
//! A run that is killed (SIGKILL, an out-of-memory pod) cannot remove its scratch. So each
//! run keeps a marker, [`ALIVE`], fresh in its folder while it runs ([`Scratch::keep_alive`]),
//! and removes, before it starts, the folders of other runs under the same scratch whose
//! marker (or, without one, newest file) is older than the stale age
//! ([`Scratch::remove_stale`]): runs sharing a scratch never remove each other's folders
//! while they live.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use arrow::datatypes::SchemaRef;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::ObjectStoreExt;
use procforest_core::partition_writer::digest::Digests;

use procforest_core::schema::TableName;

use crate::{
    error::{Context, Result},
    setting::Setting,
};

/// The marker a running run keeps fresh in its scratch folder.
pub const ALIVE: &str = "_alive";
/// How often the marker is rewritten.
const ALIVE_EVERY: Duration = Duration::from_secs(60);
/// The name prefix of a temporary scratch folder.
const TEMP_PREFIX: &str = "procforest-scratch-";
/// The name prefix of a run's folder under the scratch setting.
const RUN_PREFIX: &str = "run-";

/// Where this run keeps intermediate results: a temporary folder, or `run-<id>/` under
/// the scratch setting (a local folder, or an object-store URL shared with the executors).
/// Removed by [`Scratch::cleanup`] (and a temporary folder when dropped).
pub enum Scratch {
    /// A temporary folder.
    Temp(tempfile::TempDir),
    /// `run-<id>/` under a local the scratch setting.
    Dir(PathBuf),
    /// `run-<id>/` under an object-store the scratch setting.
    Url(String),
}

impl Scratch {
    /// The scratch of run `run_id` under the scratch setting `base` (`None` = a temporary folder).
    pub fn new(base: Option<&str>, run_id: &str) -> Result<Self> {
        match base {
            None => {
                let dir = tempfile::Builder::new()
                    .prefix(TEMP_PREFIX)
                    .tempdir_in(
                        std::path::absolute(std::env::temp_dir())
                            .runtime("finding the temporary folder")?,
                    )
                    .runtime("creating a scratch folder")?;
                Ok(Scratch::Temp(dir))
            }
            Some(base) if base.contains("://") && !base.starts_with("file://") => Ok(Scratch::Url(
                format!("{}/{RUN_PREFIX}{run_id}/", base.trim_end_matches('/')),
            )),
            Some(base) => {
                let base = base.strip_prefix("file://").unwrap_or(base);
                let dir = std::path::absolute(base)
                    .bad_setting(Setting::Scratch, format!("{base}: not a usable path"))?
                    .join(format!("{RUN_PREFIX}{run_id}"));
                std::fs::create_dir_all(&dir).bad_setting(
                    Setting::Scratch,
                    format!("{base}: cannot create {}", dir.display()),
                )?;
                Ok(Scratch::Dir(dir))
            }
        }
    }

    /// The location of a named intermediate result: the URL of a folder, ending with `/`
    /// (`file://` for a local scratch), as every process and DataFusion read it.
    pub fn path(&self, name: &str) -> String {
        match self {
            Scratch::Temp(t) => folder_url(&t.path().join(name)),
            Scratch::Dir(d) => folder_url(&d.join(name)),
            Scratch::Url(base) => format!("{base}{name}/"),
        }
    }

    /// Keeps this run's [`ALIVE`] marker fresh until the returned task is aborted.
    pub fn keep_alive(&self, ctx: &SessionContext) -> tokio::task::JoinHandle<()> {
        let marker = self.path(ALIVE).trim_end_matches('/').to_string();
        let ctx = ctx.clone();
        tokio::spawn(async move {
            loop {
                let put = async {
                    let (store, path) = store_of(&ctx, &marker)?;
                    let now = chrono::Utc::now().to_rfc3339();
                    store.put(&path, now.into()).await.runtime("writing")?;
                    Ok::<_, crate::PipelineError>(())
                };
                if let Err(e) = put.await {
                    tracing::warn!("cannot mark the scratch {marker} alive: {e}");
                }
                tokio::time::sleep(ALIVE_EVERY).await;
            }
        })
    }

    /// Removes the folders other runs left under the same scratch whose [`ALIVE`] marker
    /// (or newest file) is older than `stale_after`; failures are logged, not fatal.
    pub async fn remove_stale(&self, ctx: &SessionContext, stale_after: Duration) {
        let removed = match self {
            Scratch::Temp(t) => match t.path().parent() {
                Some(parent) => remove_stale_local(parent, TEMP_PREFIX, t.path(), stale_after),
                None => Ok(Vec::new()),
            },
            Scratch::Dir(d) => match d.parent() {
                Some(parent) => remove_stale_local(parent, RUN_PREFIX, d, stale_after),
                None => Ok(Vec::new()),
            },
            Scratch::Url(own) => remove_stale_url(ctx, own, stale_after).await,
        };
        match removed {
            Ok(folders) => {
                for folder in folders {
                    tracing::warn!(
                        "removed {folder}: the scratch of a run that stopped without \
                         removing it (not alive for over {} s)",
                        stale_after.as_secs()
                    );
                }
            }
            Err(e) => tracing::warn!("cannot look for stale scratch folders: {e}"),
        }
    }

    /// Removes what the run wrote; failures are logged, not fatal.
    pub async fn cleanup(self, ctx: Option<&SessionContext>) {
        match self {
            Scratch::Temp(t) => drop(t),
            Scratch::Dir(d) => {
                if let Err(e) = std::fs::remove_dir_all(&d) {
                    tracing::warn!("cannot remove scratch {}: {e}", d.display());
                }
            }
            Scratch::Url(base) => {
                if let Some(ctx) = ctx
                    && let Err(e) = remove_prefix(ctx, &base).await
                {
                    tracing::warn!("cannot remove scratch {base}: {e}");
                }
            }
        }
    }
}

/// Whether something last alive at `alive` is stale.
fn is_stale(alive: SystemTime, stale_after: Duration) -> bool {
    SystemTime::now()
        .duration_since(alive)
        .is_ok_and(|age| age > stale_after)
}

/// The stale folders named `prefix…` in `parent`, `own` excepted, removed.
fn remove_stale_local(
    parent: &Path,
    prefix: &str,
    own: &Path,
    stale_after: Duration,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(parent).runtime(format!("listing {}", parent.display()))?;
    for entry in entries.flatten() {
        let folder = entry.path();
        let named = entry.file_name().to_string_lossy().starts_with(prefix);
        if !named || folder == own || !folder.is_dir() {
            continue;
        }
        let alive = std::fs::metadata(folder.join(ALIVE))
            .and_then(|m| m.modified())
            .ok()
            .or_else(|| newest_local(&folder));
        if alive.is_some_and(|t| is_stale(t, stale_after)) {
            std::fs::remove_dir_all(&folder).runtime(format!("removing {}", folder.display()))?;
            removed.push(folder.display().to_string());
        }
    }
    Ok(removed)
}

/// The newest modification time below a folder (the folder's own when empty).
fn newest_local(folder: &Path) -> Option<SystemTime> {
    let mut newest = std::fs::metadata(folder).and_then(|m| m.modified()).ok();
    for entry in std::fs::read_dir(folder).ok()?.flatten() {
        let path = entry.path();
        let time = match path.is_dir() {
            true => newest_local(&path),
            false => entry.metadata().and_then(|m| m.modified()).ok(),
        };
        newest = newest.max(time);
    }
    newest
}

/// The stale `run-…/` folders beside `own` in an object store, removed.
async fn remove_stale_url(
    ctx: &SessionContext,
    own: &str,
    stale_after: Duration,
) -> Result<Vec<String>> {
    let base = own.trim_end_matches('/');
    let base = &base[..base.rfind('/').map_or(0, |i| i + 1)];
    let (store, prefix) = store_of(ctx, base)?;
    let listing = store
        .list_with_delimiter(Some(&prefix))
        .await
        .runtime(format!("listing {base}"))?;
    let mut removed = Vec::new();
    for folder in listing.common_prefixes {
        let Some(name) = folder.filename().map(str::to_string) else {
            continue;
        };
        let url = format!("{base}{name}/");
        if !name.starts_with(RUN_PREFIX) || url == own {
            continue;
        }
        let alive = match store.head(&folder.clone().join(ALIVE)).await {
            Ok(meta) => Some(meta.last_modified),
            Err(_) => {
                let mut newest = None;
                let mut files = store.list(Some(&folder));
                while let Some(meta) = files.next().await {
                    let time = meta.runtime(format!("listing {url}"))?.last_modified;
                    newest = newest.max(Some(time));
                }
                newest
            }
        };
        if alive.is_some_and(|t| is_stale(t.into(), stale_after)) {
            remove_prefix(ctx, &url).await?;
            removed.push(url);
        }
    }
    Ok(removed)
}

/// The `file://` URL of a local folder (absolute, as [`Scratch::new`] makes them), ending
/// with `/`.
fn folder_url(path: &std::path::Path) -> String {
    url::Url::from_directory_path(path)
        .map(String::from)
        .unwrap_or_else(|()| format!("file://{}/", path.display()))
}

/// The object store holding a scratch URL, and the URL's path in it.
fn store_of(
    ctx: &SessionContext,
    url: &str,
) -> Result<(Arc<dyn object_store::ObjectStore>, object_store::path::Path)> {
    let (store_url, prefix) = procforest_core::scan::store_and_path(url).runtime("scratch URL")?;
    let store = ctx
        .runtime_env()
        .object_store(&store_url)
        .runtime("scratch store")?;
    Ok((store, prefix))
}

/// Deletes every object under a URL prefix.
async fn remove_prefix(ctx: &SessionContext, base: &str) -> Result<()> {
    let (store, prefix) = store_of(ctx, base)?;
    let mut listing = store.list(Some(&prefix));
    while let Some(meta) = listing.next().await {
        let meta = meta.runtime("listing scratch")?;
        store
            .delete(&meta.location)
            .await
            .runtime("deleting scratch")?;
    }
    Ok(())
}

/// The digests written beside the summaries in scratch folders `dirs`
/// ([`procforest_core::partition_writer::digest`]), read by the driver.
pub async fn read_digests(ctx: &SessionContext, dirs: &[String]) -> Result<Digests> {
    let reads = dirs.iter().map(|dir| async move {
        let (store, prefix) = store_of(ctx, dir)?;
        procforest_core::partition_writer::digest::read(store.as_ref(), &prefix)
            .await
            .runtime(format!("reading the summaries' digests in {dir}"))
    });
    let mut all = Digests::default();
    for digests in futures::future::try_join_all(reads).await? {
        all.extend(digests);
    }
    Ok(all)
}

/// A scratch folder of Parquet files and their schema (a folder may hold no file).
#[derive(Debug, Clone)]
pub struct ScratchTable {
    /// The folder (ending with `/`).
    pub dir: String,
    /// The files' schema.
    pub schema: SchemaRef,
}

impl ScratchTable {
    /// The size of its files, in bytes.
    pub async fn bytes(&self, ctx: &SessionContext) -> Result<u64> {
        let (store, prefix) = store_of(ctx, &self.dir)?;
        let mut listing = store.list(Some(&prefix));
        let mut bytes = 0;
        while let Some(meta) = listing.next().await {
            bytes += meta.runtime("listing scratch")?.size;
        }
        Ok(bytes)
    }
}

/// Registers the Parquet files of scratch folders `dirs` as table `name` with `schema`
/// (which also makes the report's files read as counts alone, and serves when a folder
/// holds no file).
pub fn register_parquet(
    ctx: &SessionContext,
    name: TableName,
    dirs: &[String],
    schema: &SchemaRef,
) -> Result<()> {
    register(ctx, name, dirs, schema, false)
}

/// [`register_parquet`] for a table read mostly through a selective filter: a scan
/// applies the filters pushed into it while it decodes each file (Parquet row filters),
/// decoding the other columns only for the rows that pass. Not the default (nor
/// DataFusion's): a filter that keeps most rows gains nothing from it, and the filter's
/// columns are then decoded before the rest.
pub fn register_parquet_filtered(
    ctx: &SessionContext,
    name: TableName,
    dirs: &[String],
    schema: &SchemaRef,
) -> Result<()> {
    register(ctx, name, dirs, schema, true)
}

fn register(
    ctx: &SessionContext,
    name: TableName,
    dirs: &[String],
    schema: &SchemaRef,
    filter_rows: bool,
) -> Result<()> {
    use datafusion::datasource::{
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    };
    let urls = dirs
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::common::Result<Vec<_>>>()
        .runtime(format!("reading {name}"))?;
    let format = ParquetFormat::default();
    let mut parquet = format.options().clone();
    parquet.global.pushdown_filters = filter_rows;
    let format = format.with_options(parquet);
    let options = ListingOptions::new(Arc::new(format)).with_file_extension(".parquet");
    let table = ListingTable::try_new(
        ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(schema.clone()),
    )
    .runtime(format!("reading {name}"))?;
    ctx.register_table(name.as_str(), Arc::new(table))
        .runtime(format!("reading {name}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether a file is below `folder` (a local store leaves emptied folders behind).
    fn has_files(folder: &Path) -> bool {
        std::fs::read_dir(folder).unwrap().flatten().any(|e| {
            let path = e.path();
            !path.is_dir() || has_files(&path)
        })
    }

    fn aged(path: &Path, age: Duration) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    /// The object-store path (a scratch in Blob storage), over a local store: a killed
    /// run's folder goes, a live one and this run's own stay.
    #[tokio::test]
    async fn stale_folders_in_an_object_store_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path();
        for (folder, file, age) in [
            ("run-killed", "summaries/part-0.parquet", 3_600),
            ("run-killed-old", ALIVE, 3_600),
            ("run-live", ALIVE, 0),
            ("run-me", ALIVE, 3_600),
            ("other", "x", 3_600),
        ] {
            let path = base.join(folder).join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "x").unwrap();
            aged(&path, Duration::from_secs(age));
        }
        let ctx = SessionContext::new();
        let own = folder_url(&base.join("run-me"));
        let removed = remove_stale_url(&ctx, &own, Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        let mut left: Vec<String> = std::fs::read_dir(base)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|name| has_files(&base.join(name)))
            .collect();
        left.sort();
        assert_eq!(left, ["other", "run-live", "run-me"]);
    }

    /// A table registered as filtered applies a filter in its scan, as the files are
    /// decoded (no filter above the scan), and gives the rows the plain one gives.
    #[tokio::test]
    async fn a_filtered_table_filters_rows_as_it_decodes_them() {
        use arrow::{
            array::{Int64Array, RecordBatch, StringArray},
            datatypes::{DataType, Field, Schema},
        };
        use procforest_core::schema::table::EVIDENCE_LINES;
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, true),
        ]));
        let keys = Int64Array::from_iter_values(0..10_000);
        let values = StringArray::from_iter_values((0..10_000).map(|i| format!("v{}", i % 97)));
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(keys), Arc::new(values)]).unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        let file = std::fs::File::create(dir.path().join("t/part-0.parquet")).unwrap();
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(1_000))
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, schema.clone(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
        let folder = format!("{}/", dir.path().join("t").display());
        let mut shown = Vec::new();
        for filtered in [false, true] {
            let ctx = SessionContext::new();
            let register = match filtered {
                true => register_parquet_filtered,
                false => register_parquet,
            };
            register(&ctx, EVIDENCE_LINES, std::slice::from_ref(&folder), &schema).unwrap();
            let sql = format!("SELECT k, v FROM {EVIDENCE_LINES} WHERE k % 10 = 3 ORDER BY k");
            let df = ctx.sql(&sql).await.unwrap();
            let plan = df.clone().create_physical_plan().await.unwrap();
            let plan = datafusion::physical_plan::displayable(plan.as_ref())
                .indent(true)
                .to_string();
            assert_eq!(plan.contains("FilterExec"), !filtered, "{plan}");
            let rows = df.collect().await.unwrap();
            assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 1_000);
            shown.push(
                arrow::util::pretty::pretty_format_batches(&rows)
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(shown[0], shown[1]);
    }
}
