//! What reel tells applications after a restore: `last-restore-id` (LastRestoreId) and
//! `last-instance` (LastInstance) in `/var/lib/reel` (under `$REEL_ROOT`).
//!
//! Both files hold one line: a UUID, fresh for every restore that writes it. An application
//! stores the value it saw; when the file holds another value (or appears), a restore happened.
//! - `last-restore-id` is written at the end of every whole-set restore onto the live system.
//! - `last-instance` is written by a bare-metal restore, so services know they run on restored
//!   state.
//!
//! Writes are atomic: a temporary file in the same directory, fsync, rename, fsync of the
//! directory; a reader sees the old value or the new one, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use reel_error_class::ErrorClass;
use uuid::Uuid;

use crate::roots::Roots;

/// The file name of LastRestoreId.
pub const LAST_RESTORE_ID: &str = "last-restore-id";
/// The file name of LastInstance.
pub const LAST_INSTANCE: &str = "last-instance";

/// A state file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} does not hold a UUID (found {found:?}); remove it or restore again to write a new one"
    )]
    Malformed { path: PathBuf, found: String },
}

impl StateError {
    /// The class of this error: a state file that does not hold a UUID is usage (its
    /// message says to remove it), a failing system call is the medium's.
    pub fn class(&self) -> ErrorClass {
        match self {
            StateError::Io { .. } => ErrorClass::Media,
            StateError::Malformed { .. } => ErrorClass::Usage,
        }
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a fresh UUID to `last-restore-id` and returns it.
pub fn write_last_restore_id(roots: &Roots) -> Result<Uuid, StateError> {
    write_fresh(roots, LAST_RESTORE_ID)
}

/// Writes a fresh UUID to `last-instance` and returns it.
pub fn write_last_instance(roots: &Roots) -> Result<Uuid, StateError> {
    write_fresh(roots, LAST_INSTANCE)
}

/// The current `last-restore-id`, `None` when no restore wrote one yet.
pub fn read_last_restore_id(roots: &Roots) -> Result<Option<Uuid>, StateError> {
    read_id(&roots.state_dir().join(LAST_RESTORE_ID))
}

/// The current `last-instance`, `None` when no bare-metal restore wrote one yet.
pub fn read_last_instance(roots: &Roots) -> Result<Option<Uuid>, StateError> {
    read_id(&roots.state_dir().join(LAST_INSTANCE))
}

fn write_fresh(roots: &Roots, name: &str) -> Result<Uuid, StateError> {
    let dir = roots.state_dir();
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let id = Uuid::new_v4();
    write_atomic(&dir.join(name), format!("{}\n", id.hyphenated()).as_bytes())?;
    Ok(id)
}

fn read_id(path: &Path) -> Result<Option<Uuid>, StateError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io("read", path)(e)),
    };
    let shown = String::from_utf8_lossy(&text[..text.len().min(64)]).into_owned();
    let found = std::str::from_utf8(&text)
        .ok()
        .map(str::trim)
        .and_then(|t| Uuid::parse_str(t).ok());
    found.map(Some).ok_or(StateError::Malformed {
        path: path.to_path_buf(),
        found: shown,
    })
}

/// Replaces `path` with `bytes` atomically (temp file, fsync, rename, fsync of the directory).
/// The file is readable by everyone (0644): applications compare it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".reel-tmp-")
        .tempfile_in(dir)
        .map_err(io("create a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io("write", tmp.path()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(io("set permissions of", path))?;
    tmp.as_file().sync_all().map_err(io("fsync", path))?;
    tmp.persist(path).map_err(|e| StateError::Io {
        action: "rename into",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    let d = std::fs::File::open(dir).map_err(io("open", dir))?;
    d.sync_all().map_err(io("fsync", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_atomic_and_read_back() {
        let t = tempfile::tempdir().unwrap();
        let roots = Roots::new(t.path());
        assert_eq!(read_last_restore_id(&roots).unwrap(), None);
        let a = write_last_restore_id(&roots).unwrap();
        let b = write_last_restore_id(&roots).unwrap();
        assert_ne!(a, b);
        assert_eq!(read_last_restore_id(&roots).unwrap(), Some(b));
        let text = std::fs::read_to_string(t.path().join("var/lib/reel/last-restore-id")).unwrap();
        assert_eq!(text, format!("{b}\n"));
        let i = write_last_instance(&roots).unwrap();
        assert_eq!(read_last_instance(&roots).unwrap(), Some(i));
        // Nothing left behind but the two files.
        let mut names: Vec<_> = std::fs::read_dir(roots.state_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["last-instance", "last-restore-id"]);
        std::fs::write(roots.state_dir().join(LAST_RESTORE_ID), b"garbage\xff").unwrap();
        let err = read_last_restore_id(&roots).unwrap_err().to_string();
        assert!(err.contains("does not hold a UUID"), "{err}");
    }
}
