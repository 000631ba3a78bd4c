//! The bundled real sample table, embedded in the binary at build time (`build.rs`), so
//! `procforest run` without `--table` works from anywhere.

use crate::error::{CliError, Result};

mod files {
    include!(concat!(env!("OUT_DIR"), "/sample_table.rs"));
}

/// Writes the bundled sample table into a fresh temporary folder (removed when dropped).
pub fn materialize() -> Result<tempfile::TempDir> {
    if files::SAMPLE_FILES.is_empty() {
        return Err(CliError::Usage(
            "this build has no bundled sample table; give --table".into(),
        ));
    }
    let failed = |e: std::io::Error| CliError::Failed(format!("unpacking the bundled sample: {e}"));
    let dir = tempfile::Builder::new()
        .prefix("procforest-sample-")
        .tempdir()
        .map_err(failed)?;
    for (rel, bytes) in files::SAMPLE_FILES {
        let path = dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        std::fs::write(&path, bytes).map_err(failed)?;
    }
    Ok(dir)
}
