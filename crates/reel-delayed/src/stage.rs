//! Staging a replacement for a file that cannot be replaced now (`reel restore
//! --schedule-busy`): the new content is written next to its target, on the same file
//! system, and a MoveFile record is scheduled to put it in place at the next boot.

use std::fs::File;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{DelayedError, Result};
use crate::file::OperationFile;
use crate::format::Record;
use crate::fsutil;

/// True for the errors that mean "the target is in use" rather than "something is wrong":
/// `ETXTBSY` (a running executable opened for writing) and `EBUSY`.
pub fn is_busy(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ETXTBSY | libc::EBUSY))
}

/// A file created next to `target` (`.NAME.reel-staged-XXXXXXXXXXXX` in the same directory)
/// to hold its replacement. Dropped without [`schedule`](Self::schedule) or
/// [`keep`](Self::keep), it is removed.
#[derive(Debug)]
pub struct StagedReplacement {
    target: PathBuf,
    staged: PathBuf,
    file: File,
    keep: bool,
}

impl StagedReplacement {
    /// Creates the staged file (mode 0600, never an existing file, never through a symlink).
    /// `target` must be an absolute path; its directory must exist.
    pub fn create(target: &Path) -> Result<StagedReplacement> {
        if !target.is_absolute() {
            return Err(DelayedError::Invalid(format!(
                "{} is not an absolute path",
                target.display()
            )));
        }
        let staged = fsutil::temp_name(target, "reel-staged");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&staged)
            .map_err(|e| DelayedError::io("cannot create the staged file", &staged, e))?;
        Ok(StagedReplacement {
            target: target.to_path_buf(),
            staged,
            file,
            keep: false,
        })
    }

    /// The file the replacement is for.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Where the replacement is being written.
    pub fn path(&self) -> &Path {
        &self.staged
    }

    /// The open staged file, to write the content into (metadata can be applied through
    /// [`path`](Self::path)).
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Makes the staged file durable and appends `MoveFile staged → target` to `ops`.
    /// Returns the new record.
    pub fn schedule(mut self, ops: &mut OperationFile) -> Result<Record> {
        self.file
            .sync_all()
            .map_err(|e| DelayedError::io("cannot sync", &self.staged, e))?;
        fsutil::fsync_dir(fsutil::parent_dir(&self.staged))
            .map_err(|e| DelayedError::io("cannot sync", &self.staged, e))?;
        let record = ops.append_move(&self.staged, &self.target)?;
        self.keep = true;
        Ok(record)
    }

    /// Keeps the staged file without scheduling anything; returns its path.
    pub fn keep(mut self) -> PathBuf {
        self.keep = true;
        self.staged.clone()
    }
}

impl Drop for StagedReplacement {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.staged);
        }
    }
}

/// Stages `content` as the replacement of `target` and schedules the move in `ops`: the
/// one-call form of [`StagedReplacement`]. Returns the staged path and the new record.
pub fn schedule_replacement(
    ops: &mut OperationFile,
    target: &Path,
    content: &mut dyn io::Read,
) -> Result<(PathBuf, Record)> {
    let mut staged = StagedReplacement::create(target)?;
    io::copy(content, staged.file())
        .map_err(|e| DelayedError::io("cannot write the staged file", staged.path(), e))?;
    let path = staged.path().to_path_buf();
    let record = staged.schedule(ops)?;
    Ok((path, record))
}
