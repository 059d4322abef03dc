//! File-system helpers: locked opens, bounded reads, atomic replacement, directory fsync.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, RenameFlags, flock, renameat_with};

use crate::error::{DelayedError, Result};

/// The largest operation file accepted (64 MiB, some 200,000 records with long paths).
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// The directory holding `path` (`.` for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// fsyncs a directory, making renames and unlinks in it durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn symlink_refusal(path: &Path) -> DelayedError {
    DelayedError::Unsafe {
        path: path.to_path_buf(),
        reason: "it is a symbolic link; name the operation file itself".into(),
    }
}

/// Opens an operation file without following a symlink in its last component.
pub fn open_nofollow(path: &Path, write: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                symlink_refusal(path)
            } else {
                DelayedError::io("cannot open", path, e)
            }
        })
}

/// Opens `path` read-write and takes its exclusive lock, making sure the locked file is still
/// the one at `path` (an appender replaces the file by renaming a new one over it).
pub fn open_locked(path: &Path) -> Result<(File, Metadata)> {
    for _ in 0..1000 {
        let file = open_nofollow(path, true)?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| DelayedError::io("cannot lock", path, e.into()))?;
        let meta = file
            .metadata()
            .map_err(|e| DelayedError::io("cannot stat", path, e))?;
        match std::fs::symlink_metadata(path) {
            Ok(now) if now.dev() == meta.dev() && now.ino() == meta.ino() => {
                return Ok((file, meta));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(DelayedError::io("cannot stat", path, e)),
        }
    }
    Err(DelayedError::io(
        "cannot lock",
        path,
        io::Error::other("the file keeps being replaced"),
    ))
}

/// Refuses anything but a regular file.
pub fn require_regular(path: &Path, meta: &Metadata) -> Result<()> {
    if meta.file_type().is_symlink() {
        return Err(symlink_refusal(path));
    }
    if !meta.is_file() {
        return Err(DelayedError::Unsafe {
            path: path.to_path_buf(),
            reason: "it is not a regular file".into(),
        });
    }
    Ok(())
}

/// Reads a whole file of at most [`MAX_FILE_BYTES`].
pub fn read_bounded(path: &Path, file: &File, meta: &Metadata) -> Result<Vec<u8>> {
    if meta.len() > MAX_FILE_BYTES {
        return Err(DelayedError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
            max: MAX_FILE_BYTES,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    let mut reader = file.take(MAX_FILE_BYTES + 1);
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| DelayedError::io("cannot read", path, e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(DelayedError::TooLarge {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
            max: MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// A temporary name next to `path`, on the same file system.
pub fn temp_name(path: &Path, tag: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Keep the whole name under NAME_MAX (255 bytes).
    let short: String = name.chars().take(160).collect();
    let id = uuid::Uuid::new_v4().simple().to_string();
    parent_dir(path).join(format!(".{short}.{tag}-{}", &id[..12]))
}

/// Who owns a file and its permission bits, to carry over to its replacement.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Ownership {
    pub fn of(meta: &Metadata) -> Ownership {
        Ownership {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }
}

fn write_temp(temp: &Path, bytes: &[u8], owner: Option<Ownership>, mode: u32) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(temp)?;
    f.write_all(bytes)?;
    if let Some(o) = owner {
        if rustix::process::geteuid().is_root() {
            std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid))?;
        }
        f.set_permissions(std::fs::Permissions::from_mode(o.mode))?;
    } else {
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    f.sync_all()
}

/// Replaces `path` with `bytes`: a temporary file next to it, fsync, rename, fsync of the
/// directory. `owner` carries the old file's mode and owner over.
pub fn replace_atomically(path: &Path, bytes: &[u8], owner: Option<Ownership>) -> Result<()> {
    let temp = temp_name(path, "reel-tmp");
    let result = write_temp(&temp, bytes, owner, 0o644)
        .and_then(|()| std::fs::rename(&temp, path))
        .and_then(|()| fsync_dir(parent_dir(path)));
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result.map_err(|e| DelayedError::io("cannot write", path, e))
}

/// Creates `path` with `bytes` unless it exists (atomically: no reader ever sees a partial
/// file). Returns false when it already existed.
pub fn create_atomically(path: &Path, bytes: &[u8], mode: u32) -> Result<bool> {
    let temp = temp_name(path, "reel-tmp");
    let written = write_temp(&temp, bytes, None, mode);
    let result = written.and_then(|()| {
        renameat_with(
            rustix::fs::CWD,
            &temp,
            rustix::fs::CWD,
            path,
            RenameFlags::NOREPLACE,
        )
        .map_err(io::Error::from)
    });
    match result {
        Ok(()) => {
            fsync_dir(parent_dir(path)).map_err(|e| DelayedError::io("cannot sync", path, e))?;
            Ok(true)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&temp);
            if e.kind() == io::ErrorKind::AlreadyExists {
                Ok(false)
            } else {
                Err(DelayedError::io("cannot create", path, e))
            }
        }
    }
}
