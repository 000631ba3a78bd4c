//! Files that appear only when complete: written to `<name>.partial` and renamed into
//! place, so that a failed run leaves no partial output.

use std::path::{Path, PathBuf};

use crate::error::{Context, PipelineError, Result};

/// A file being written: `path.partial`, renamed to `path` by [`PendingFile::commit`] and
/// removed if dropped before.
pub struct PendingFile {
    target: PathBuf,
    partial: PathBuf,
    committed: bool,
}

impl PendingFile {
    /// Starts a file at `target` (its folder must exist).
    pub fn new(target: &Path) -> Result<Self> {
        if let Some(problem) = missing_folder(target) {
            return Err(PipelineError::bad_input(format!(
                "{}: {problem}",
                target.display()
            )));
        }
        let mut partial = target.as_os_str().to_owned();
        partial.push(".partial");
        Ok(Self {
            target: target.to_path_buf(),
            partial: PathBuf::from(partial),
            committed: false,
        })
    }

    /// Where to write until committed.
    pub fn path(&self) -> &Path {
        &self.partial
    }

    /// Moves the finished file into place.
    pub fn commit(mut self) -> Result<()> {
        std::fs::rename(&self.partial, &self.target)
            .runtime(format!("moving {} into place", self.target.display()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

/// Why nothing can be written at `target`, if its folder does not exist:
/// `folder F does not exist`. Output settings are checked with it before a run.
pub fn missing_folder(target: &Path) -> Option<String> {
    let folder = target.parent().filter(|p| !p.as_os_str().is_empty())?;
    (!folder.is_dir()).then(|| format!("folder {} does not exist", folder.display()))
}

/// Writes `bytes` to `target` through a [`PendingFile`].
pub fn write_file(target: &Path, bytes: &[u8]) -> Result<()> {
    let pending = PendingFile::new(target)?;
    std::fs::write(pending.path(), bytes).runtime(format!("writing {}", target.display()))?;
    pending.commit()
}
