//! Replacing a file atomically: write a temp file beside it, give it the original's owner,
//! mode, extended attributes and times, fsync, rename over the name, fsync the directory.
//! A crash at any point leaves the old file or the new one under the name, never a mix.

use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Gid, Timespec, Timestamps, Uid};
use tempfile::NamedTempFile;
use xattr::FileExt;

use crate::error::{EfsError, Result};
use crate::marker::XATTR_NAME;

/// The directory holding `path` (`.` for a bare name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a directory's entries durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    let d = File::open(dir).map_err(|e| EfsError::io(dir, e))?;
    d.sync_all().map_err(|e| EfsError::io(dir, e))
}

/// A temp file that will take `target`'s name.
pub(crate) struct Replacement {
    tmp: NamedTempFile,
    target: PathBuf,
}

/// How [`Replacement::commit`] treats an existing file under the name.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Replace it (atomic rename).
    Replace,
    /// Fail if anything has appeared under the name (rename with RENAME_NOREPLACE).
    NoClobber,
}

impl Replacement {
    /// A new, empty temp file (mode 0600) in `target`'s directory.
    pub(crate) fn beside(target: &Path) -> Result<Replacement> {
        let dir = parent_of(target);
        let tmp = tempfile::Builder::new()
            .prefix(".reel-efs-")
            .suffix(".tmp")
            .permissions(std::fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(|e| EfsError::io(dir, e))?;
        Ok(Replacement {
            tmp,
            target: target.to_path_buf(),
        })
    }

    pub(crate) fn file(&self) -> &File {
        self.tmp.as_file()
    }

    pub(crate) fn file_mut(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    pub(crate) fn path(&self) -> &Path {
        self.tmp.path()
    }

    /// Gives the temp file `meta`'s owner and mode and `from`'s extended attributes (all but
    /// the marker). Call before [`Replacement::set_times`].
    pub(crate) fn copy_metadata(
        &self,
        from: &File,
        from_path: &Path,
        meta: &Metadata,
    ) -> Result<()> {
        let file = self.file();
        let (uid, gid) = (meta.uid(), meta.gid());
        if let Err(e) = rustix::fs::fchown(file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
        {
            let me = rustix::process::geteuid().as_raw();
            // A user who may not give files away still owns what they made; only fail when
            // the original had another owner we cannot reproduce.
            if uid != me || e != rustix::io::Errno::PERM {
                return Err(EfsError::io(
                    &self.target,
                    std::io::Error::new(
                        std::io::Error::from(e).kind(),
                        format!("cannot keep owner {uid}:{gid} ({e}); run as the owner or as root"),
                    ),
                ));
            }
        }
        let names = match from.list_xattr() {
            Ok(n) => n.collect::<Vec<_>>(),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error()) => {
                Vec::new()
            }
            Err(e) => return Err(EfsError::io(from_path, e)),
        };
        for name in names {
            if name == XATTR_NAME {
                continue;
            }
            let Some(value) = from
                .get_xattr(&name)
                .map_err(|e| EfsError::io(from_path, e))?
            else {
                continue;
            };
            if let Err(e) = file.set_xattr(&name, &value) {
                // user.* attributes belong to the file's owner and must survive; system ones
                // (security labels) may be refused to an unprivileged user and are set by policy.
                if name.as_encoded_bytes().starts_with(b"user.") {
                    return Err(EfsError::io(
                        &self.target,
                        std::io::Error::new(e.kind(), format!("copying xattr {name:?}: {e}")),
                    ));
                }
            }
        }
        file.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .map_err(|e| EfsError::io(&self.target, e))
    }

    /// Gives the temp file `meta`'s access and modification times (last, after all writes).
    pub(crate) fn set_times(&self, meta: &Metadata) -> Result<()> {
        let times = Timestamps {
            last_access: Timespec {
                tv_sec: meta.atime(),
                tv_nsec: meta.atime_nsec() as _,
            },
            last_modification: Timespec {
                tv_sec: meta.mtime(),
                tv_nsec: meta.mtime_nsec() as _,
            },
        };
        rustix::fs::futimens(self.file(), &times).map_err(|e| EfsError::io(&self.target, e.into()))
    }

    /// Syncs the temp file, renames it to the target and syncs the directory.
    pub(crate) fn commit(self, how: Commit) -> Result<()> {
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| EfsError::io(self.tmp.path(), e))?;
        let target = self.target;
        let done = match how {
            Commit::Replace => self.tmp.persist(&target).map(drop),
            Commit::NoClobber => self.tmp.persist_noclobber(&target).map(drop),
        };
        if let Err(e) = done {
            // The temp file is removed when the error (holding it) drops.
            return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                EfsError::Exists {
                    path: target,
                    hint: "it appeared while reel was writing; nothing was replaced",
                }
            } else {
                EfsError::io(&target, e.error)
            });
        }
        sync_dir(parent_of(&target))
    }
}
