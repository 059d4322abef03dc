//! Re-creating files under a restore root, safely.
//!
//! Every path is walked from the root directory one component at a time with
//! `O_NOFOLLOW | O_DIRECTORY`, so nothing is ever written through a symlink — neither one the
//! archive created a moment ago nor one that was already there — and nothing lands outside
//! the root. Absolute paths and `..` are refused before any walk ([`check_path`]).
//!
//! Files are written under a temporary name in their final directory and renamed into place
//! once complete (content, then owner, mode and times last), so a crash or a bad stream never
//! leaves a half-restored file under the final name. Directory metadata is applied at
//! [`RestoreRoot::finish`], after their content, deepest first.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::{Refusal, Result, StreamError};
use crate::meta::{FileKind, FileMeta, Timestamp};
use crate::names::NameCache;

/// A relative path that passed [`check_path`]: normal components only.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath {
    components: Vec<OsString>,
}

impl RelPath {
    pub fn components(&self) -> &[OsString] {
        &self.components
    }

    pub fn file_name(&self) -> &OsStr {
        self.components
            .last()
            .map(|c| c.as_os_str())
            .unwrap_or_default()
    }

    pub fn depth(&self) -> usize {
        self.components.len()
    }

    /// `a/b/c`.
    pub fn to_path_buf(&self) -> PathBuf {
        self.components.iter().collect()
    }
}

impl std::fmt::Display for RelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_path_buf().display())
    }
}

/// Checks an archive member name for restore: refuses absolute paths, `..`, NUL and empty
/// names; drops `.` components and repeated slashes.
pub fn check_path(name: &[u8]) -> std::result::Result<RelPath, Refusal> {
    if name.contains(&0) {
        return Err(Refusal::Nul);
    }
    if name.first() == Some(&b'/') {
        return Err(Refusal::Absolute);
    }
    let mut components = Vec::new();
    for part in name.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(Refusal::DotDot),
            p => components.push(OsStr::from_bytes(p).to_os_string()),
        }
    }
    if components.is_empty() {
        return Err(Refusal::Empty);
    }
    Ok(RelPath { components })
}

/// What to do when the file to restore already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Existing {
    /// Leave it as it is (the default).
    #[default]
    Skip,
    /// Replace it.
    Overwrite,
    /// Replace it only when the archived file is newer.
    KeepNewer,
}

/// What happened to one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Written,
    /// Not written because a file is already there (per [`Existing`]).
    SkippedExisting,
}

/// The directory a restore writes under.
pub struct RestoreRoot {
    root: OwnedFd,
    root_path: PathBuf,
    existing: Existing,
    restore_owner: bool,
    names: NameCache,
    /// The parent directory used last, by its components (most entries share it).
    cached_dir: Option<(Vec<OsString>, OwnedFd)>,
    deferred_dirs: Vec<(RelPath, FileMeta)>,
    tmp_counter: u64,
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn to_timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: i64::from(t.nanos),
    }
}

impl RestoreRoot {
    /// Opens (creating it when missing) the restore root `dir`. The root itself may be
    /// reached through symlinks; nothing below it is.
    pub fn open(dir: &Path, existing: Existing) -> Result<RestoreRoot> {
        std::fs::create_dir_all(dir).map_err(|e| StreamError::io(dir, "create", e))?;
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StreamError::io(dir, "open", errno_io(e)))?;
        Ok(RestoreRoot {
            root,
            root_path: dir.to_path_buf(),
            existing,
            restore_owner: rustix::process::geteuid().is_root(),
            names: NameCache::new(),
            cached_dir: None,
            deferred_dirs: Vec::new(),
            tmp_counter: 0,
        })
    }

    pub fn path(&self) -> &Path {
        &self.root_path
    }

    fn full(&self, rel: &RelPath) -> PathBuf {
        self.root_path.join(rel.to_path_buf())
    }

    fn refused(rel: &RelPath, reason: Refusal) -> StreamError {
        StreamError::Refused {
            path: rel.to_string(),
            reason,
        }
    }

    /// Opens the directory holding `rel`'s last component, walking from the root without
    /// following symlinks; creates missing directories when `create`.
    fn parent_dir(&mut self, rel: &RelPath, create: bool) -> Result<OwnedFd> {
        let parents = &rel.components[..rel.components.len() - 1];
        if let Some((key, fd)) = &self.cached_dir
            && key.as_slice() == parents
        {
            return fd
                .try_clone()
                .map_err(|e| StreamError::io(self.full(rel), "open", e));
        }
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| StreamError::io(&self.root_path, "open", e))?;
        for (i, comp) in parents.iter().enumerate() {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&cur, comp.as_os_str(), flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&cur, comp.as_os_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(StreamError::io(
                                self.full(rel),
                                "create directory for",
                                errno_io(e),
                            ));
                        }
                    }
                    rustix::fs::openat(&cur, comp.as_os_str(), flags, Mode::empty())
                        .map_err(|e| self.walk_error(&cur, rel, i, e))?
                }
                Err(e) => return Err(self.walk_error(&cur, rel, i, e)),
            };
            cur = next;
        }
        let copy = cur
            .try_clone()
            .map_err(|e| StreamError::io(self.full(rel), "open", e))?;
        self.cached_dir = Some((parents.to_vec(), copy));
        Ok(cur)
    }

    /// Explains why component `i` of `rel` could not be opened as a directory.
    fn walk_error(&self, dir: &OwnedFd, rel: &RelPath, i: usize, e: Errno) -> StreamError {
        let so_far: PathBuf = rel.components[..=i].iter().collect();
        let shown = so_far.display().to_string();
        match e {
            Errno::LOOP | Errno::NOTDIR => {
                match rustix::fs::statat(
                    dir,
                    rel.components[i].as_os_str(),
                    AtFlags::SYMLINK_NOFOLLOW,
                ) {
                    Ok(st)
                        if rustix::fs::FileType::from_raw_mode(st.st_mode)
                            == rustix::fs::FileType::Symlink =>
                    {
                        Self::refused(rel, Refusal::ThroughSymlink(shown))
                    }
                    _ => Self::refused(rel, Refusal::NotADirectory(shown)),
                }
            }
            Errno::NOENT => Self::refused(rel, Refusal::LinkTargetMissing(rel.to_string())),
            other => StreamError::io(
                self.root_path.join(so_far),
                "open directory",
                errno_io(other),
            ),
        }
    }

    fn tmp_name(&mut self) -> OsString {
        self.tmp_counter += 1;
        OsString::from(format!(
            ".reel-tmp-{}-{}",
            std::process::id(),
            self.tmp_counter
        ))
    }

    /// Applies the existing-file policy to `name` in `dir`. `Ok(false)` = leave it.
    fn may_replace(&self, dir: &OwnedFd, rel: &RelPath, meta: &FileMeta) -> Result<bool> {
        match rustix::fs::statat(dir, rel.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(true),
            Err(e) => Err(StreamError::io(self.full(rel), "check", errno_io(e))),
            Ok(st) => {
                if rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::Directory
                {
                    return Err(Self::refused(rel, Refusal::DirectoryInTheWay));
                }
                Ok(match self.existing {
                    Existing::Skip => false,
                    Existing::Overwrite => true,
                    Existing::KeepNewer => {
                        Timestamp::new(st.st_mtime, st.st_mtime_nsec as u32) < meta.mtime
                    }
                })
            }
        }
    }

    fn owner_ids(&mut self, meta: &FileMeta) -> (u32, u32) {
        let uid = meta
            .user
            .as_deref()
            .and_then(|n| self.names.uid_of(n))
            .unwrap_or(meta.uid);
        let gid = meta
            .group
            .as_deref()
            .and_then(|n| self.names.gid_of(n))
            .unwrap_or(meta.gid);
        (uid, gid)
    }

    /// Starts a regular file: content goes to a temporary name until [`PendingFile::commit`].
    /// `Ok(None)` when an existing file is kept.
    pub fn begin_file(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<Option<PendingFile>> {
        let dir = self.parent_dir(rel, true)?;
        if !self.may_replace(&dir, rel, meta)? {
            return Ok(None);
        }
        let tmp = self.tmp_name();
        let fd = rustix::fs::openat(
            &dir,
            tmp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| StreamError::io(self.full(rel), "create", errno_io(e)))?;
        let owner = self.restore_owner.then(|| self.owner_ids(meta));
        Ok(Some(PendingFile {
            dir,
            tmp,
            name: rel.file_name().to_os_string(),
            shown: self.full(rel),
            file: File::from(fd),
            meta: meta.clone(),
            owner,
            done: false,
        }))
    }

    /// Creates a directory (or accepts an existing one); its metadata is applied at
    /// [`RestoreRoot::finish`].
    pub fn make_dir(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<Outcome> {
        let dir = self.parent_dir(rel, true)?;
        let mode = Mode::from_raw_mode((meta.mode | 0o700) & 0o777);
        match rustix::fs::mkdirat(&dir, rel.file_name(), mode) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rustix::fs::statat(&dir, rel.file_name(), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| StreamError::io(self.full(rel), "check", errno_io(e)))?;
                match rustix::fs::FileType::from_raw_mode(st.st_mode) {
                    rustix::fs::FileType::Directory => {}
                    rustix::fs::FileType::Symlink => {
                        return Err(Self::refused(rel, Refusal::ThroughSymlink(rel.to_string())));
                    }
                    _ => return Err(Self::refused(rel, Refusal::NotADirectory(rel.to_string()))),
                }
            }
            Err(e) => {
                return Err(StreamError::io(
                    self.full(rel),
                    "create directory",
                    errno_io(e),
                ));
            }
        }
        self.deferred_dirs.push((rel.clone(), meta.clone()));
        Ok(Outcome::Written)
    }

    /// Creates a symlink (its target is stored as is and never followed).
    pub fn make_symlink(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<Outcome> {
        let target = meta.symlink_target.clone().unwrap_or_default();
        let dir = self.parent_dir(rel, true)?;
        if !self.may_replace(&dir, rel, meta)? {
            return Ok(Outcome::SkippedExisting);
        }
        let tmp = self.tmp_name();
        rustix::fs::symlinkat(target.as_os_str(), &dir, tmp.as_os_str())
            .map_err(|e| StreamError::io(self.full(rel), "create symlink", errno_io(e)))?;
        let result = (|| {
            if self.restore_owner {
                let (uid, gid) = self.owner_ids(meta);
                rustix::fs::chownat(
                    &dir,
                    tmp.as_os_str(),
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| StreamError::io(self.full(rel), "set owner of", errno_io(e)))?;
            }
            let times = Timestamps {
                last_access: to_timespec(meta.atime),
                last_modification: to_timespec(meta.mtime),
            };
            rustix::fs::utimensat(&dir, tmp.as_os_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| StreamError::io(self.full(rel), "set times of", errno_io(e)))?;
            rustix::fs::renameat(&dir, tmp.as_os_str(), &dir, rel.file_name())
                .map_err(|e| StreamError::io(self.full(rel), "rename into place", errno_io(e)))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_os_str(), AtFlags::empty());
        }
        result.map(|()| Outcome::Written)
    }

    /// Creates `rel` as a hard link to the already restored `target`.
    pub fn make_hardlink(
        &mut self,
        rel: &RelPath,
        target: &RelPath,
        meta: &FileMeta,
    ) -> Result<Outcome> {
        let tdir = self.parent_dir(target, false).map_err(|e| match e {
            StreamError::Refused {
                reason: Refusal::LinkTargetMissing(_),
                ..
            } => Self::refused(rel, Refusal::LinkTargetMissing(target.to_string())),
            StreamError::Refused { reason, .. } => Self::refused(rel, reason),
            other => other,
        })?;
        let dir = self.parent_dir(rel, true)?;
        if !self.may_replace(&dir, rel, meta)? {
            return Ok(Outcome::SkippedExisting);
        }
        let tmp = self.tmp_name();
        match rustix::fs::linkat(
            &tdir,
            target.file_name(),
            &dir,
            tmp.as_os_str(),
            AtFlags::empty(),
        ) {
            Ok(()) => {}
            Err(Errno::NOENT) => {
                return Err(Self::refused(
                    rel,
                    Refusal::LinkTargetMissing(target.to_string()),
                ));
            }
            Err(e) => {
                return Err(StreamError::io(
                    self.full(rel),
                    "create hard link",
                    errno_io(e),
                ));
            }
        }
        rustix::fs::renameat(&dir, tmp.as_os_str(), &dir, rel.file_name()).map_err(|e| {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_os_str(), AtFlags::empty());
            StreamError::io(self.full(rel), "rename into place", errno_io(e))
        })?;
        Ok(Outcome::Written)
    }

    /// Creates a fifo or device node.
    pub fn make_special(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<Outcome> {
        let file_type = match meta.kind {
            FileKind::Fifo => rustix::fs::FileType::Fifo,
            FileKind::CharDevice => rustix::fs::FileType::CharacterDevice,
            FileKind::BlockDevice => rustix::fs::FileType::BlockDevice,
            _ => {
                return Err(StreamError::Unsupported {
                    path: self.full(rel),
                    what: format!("special file kind {:?}", meta.kind),
                });
            }
        };
        let dir = self.parent_dir(rel, true)?;
        if !self.may_replace(&dir, rel, meta)? {
            return Ok(Outcome::SkippedExisting);
        }
        let tmp = self.tmp_name();
        let (major, minor) = meta.rdev.unwrap_or((0, 0));
        rustix::fs::mknodat(
            &dir,
            tmp.as_os_str(),
            file_type,
            Mode::from_raw_mode(0o600),
            rustix::fs::makedev(major, minor),
        )
        .map_err(|e| StreamError::io(self.full(rel), "create", errno_io(e)))?;
        let result = (|| {
            // By name in the directory: opening a device node could have side effects.
            let owner = self.restore_owner.then(|| self.owner_ids(meta));
            if let Some((uid, gid)) = owner {
                rustix::fs::chownat(
                    &dir,
                    tmp.as_os_str(),
                    Some(rustix::fs::Uid::from_raw(uid)),
                    Some(rustix::fs::Gid::from_raw(gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| StreamError::io(self.full(rel), "set owner of", errno_io(e)))?;
            }
            rustix::fs::chmodat(
                &dir,
                tmp.as_os_str(),
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| StreamError::io(self.full(rel), "set mode of", errno_io(e)))?;
            let times = Timestamps {
                last_access: to_timespec(meta.atime),
                last_modification: to_timespec(meta.mtime),
            };
            rustix::fs::utimensat(&dir, tmp.as_os_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| StreamError::io(self.full(rel), "set times of", errno_io(e)))?;
            rustix::fs::renameat(&dir, tmp.as_os_str(), &dir, rel.file_name())
                .map_err(|e| StreamError::io(self.full(rel), "rename into place", errno_io(e)))
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&dir, tmp.as_os_str(), AtFlags::empty());
        }
        result.map(|()| Outcome::Written)
    }

    /// Applies the deferred directory metadata (deepest first) and makes the restore durable
    /// (`syncfs`). Returns the problems met, one per directory.
    pub fn finish(mut self) -> Vec<StreamError> {
        let mut problems = Vec::new();
        let mut dirs = std::mem::take(&mut self.deferred_dirs);
        dirs.sort_by(|a, b| b.0.depth().cmp(&a.0.depth()).then_with(|| a.0.cmp(&b.0)));
        dirs.dedup_by(|a, b| a.0 == b.0);
        self.cached_dir = None;
        for (rel, meta) in dirs {
            if let Err(e) = self.finish_dir(&rel, &meta) {
                problems.push(e);
            }
        }
        if let Err(e) = rustix::fs::syncfs(&self.root) {
            problems.push(StreamError::io(&self.root_path, "sync", errno_io(e)));
        }
        problems
    }

    fn finish_dir(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<()> {
        let parent = self.parent_dir(rel, false)?;
        let fd = rustix::fs::openat(
            &parent,
            rel.file_name(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StreamError::io(self.full(rel), "open directory", errno_io(e)))?;
        let owner = self.restore_owner.then(|| self.owner_ids(meta));
        apply_fd_metadata(&fd, meta, owner)
            .map_err(|(op, e)| StreamError::io(self.full(rel), op, e))
    }
}

/// Owner, mode, then times, on an open file: the order that keeps setuid bits and mtimes.
fn apply_fd_metadata(
    fd: &impl AsFd,
    meta: &FileMeta,
    owner: Option<(u32, u32)>,
) -> std::result::Result<(), (&'static str, io::Error)> {
    if let Some((uid, gid)) = owner {
        rustix::fs::fchown(
            fd,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| ("set owner of", errno_io(e)))?;
    }
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))
        .map_err(|e| ("set mode of", errno_io(e)))?;
    let times = Timestamps {
        last_access: to_timespec(meta.atime),
        last_modification: to_timespec(meta.mtime),
    };
    rustix::fs::futimens(fd, &times).map_err(|e| ("set times of", errno_io(e)))
}

/// A regular file being restored under a temporary name.
pub struct PendingFile {
    dir: OwnedFd,
    tmp: OsString,
    name: OsString,
    shown: PathBuf,
    file: File,
    meta: FileMeta,
    owner: Option<(u32, u32)>,
    done: bool,
}

impl PendingFile {
    /// The final path (for messages).
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// Applies metadata (owner, mode, times last) and renames the file into place.
    pub fn commit(mut self) -> Result<Outcome> {
        apply_fd_metadata(&self.file, &self.meta, self.owner)
            .map_err(|(op, e)| StreamError::io(&self.shown, op, e))?;
        rustix::fs::renameat(
            &self.dir,
            self.tmp.as_os_str(),
            &self.dir,
            self.name.as_os_str(),
        )
        .map_err(|e| StreamError::io(&self.shown, "rename into place", errno_io(e)))?;
        self.done = true;
        Ok(Outcome::Written)
    }

    /// Drops the partial file (also what `Drop` does when not committed).
    pub fn abort(mut self) {
        self.discard();
    }

    fn discard(&mut self) {
        if !self.done {
            let _ = rustix::fs::unlinkat(&self.dir, self.tmp.as_os_str(), AtFlags::empty());
            self.done = true;
        }
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_checked() {
        assert_eq!(check_path(b"/etc/passwd"), Err(Refusal::Absolute));
        assert_eq!(check_path(b"a/../../x"), Err(Refusal::DotDot));
        assert_eq!(check_path(b".."), Err(Refusal::DotDot));
        assert_eq!(check_path(b"./"), Err(Refusal::Empty));
        assert_eq!(check_path(b""), Err(Refusal::Empty));
        assert_eq!(check_path(b"a\0b"), Err(Refusal::Nul));
        assert_eq!(check_path(b"./a//b/./c").unwrap().to_string(), "a/b/c");
        assert_eq!(check_path(b"a..b/..c").unwrap().depth(), 2);
    }
}
