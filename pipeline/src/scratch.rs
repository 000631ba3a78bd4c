//! The run's scratch: where intermediate results (summaries, command lines, index tables)
//! are written between phases, and how they are read back as tables.

use std::{path::PathBuf, sync::Arc};

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
                    .prefix("procforest-scratch-")
                    .tempdir_in(
                        std::path::absolute(std::env::temp_dir())
                            .runtime("finding the temporary folder")?,
                    )
                    .runtime("creating a scratch folder")?;
                Ok(Scratch::Temp(dir))
            }
            Some(base) if base.contains("://") && !base.starts_with("file://") => Ok(Scratch::Url(
                format!("{}/run-{run_id}/", base.trim_end_matches('/')),
            )),
            Some(base) => {
                let base = base.strip_prefix("file://").unwrap_or(base);
                let dir = std::path::absolute(base)
                    .bad_setting(Setting::Scratch, format!("{base}: not a usable path"))?
                    .join(format!("run-{run_id}"));
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
    use datafusion::datasource::{
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    };
    let urls = dirs
        .iter()
        .map(ListingTableUrl::parse)
        .collect::<datafusion::common::Result<Vec<_>>>()
        .runtime(format!("reading {name}"))?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
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
