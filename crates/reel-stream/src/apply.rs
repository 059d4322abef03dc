//! Re-creating files under a restore root, safely.
//!
//! Every path is walked from the root directory one component at a time with
//! `O_NOFOLLOW | O_DIRECTORY`, so nothing is ever written through a symlink — neither one the
//! archive created a moment ago nor one that was already there — and nothing lands outside
//! the root. Absolute paths and `..` are refused before any walk ([`check_path`]).
//!
//! Files are written unnamed (`O_TMPFILE`, or under a temporary name where the file system
//! lacks it) in their final directory and linked or renamed into place once complete, so a
//! crash or a bad stream never leaves a half-restored file under the final name. Directory
//! metadata is applied at [`RestoreRoot::finish`], after their content, deepest first.
//!
//! ## The order metadata is applied in
//!
//! 1. chattr flags that change how content is stored (no-CoW, compression), on the empty
//!    file — they do not take effect later;
//! 2. content (holes of a sparse file stay holes: data goes to its offsets, the size is
//!    set at the end);
//! 3. extended attributes, then ACLs (an access ACL also sets the group bits);
//! 4. owner — before mode, because `chown` clears setuid/setgid bits;
//! 5. mode;
//! 6. `security.capability` — after the owner, because the kernel drops file capabilities
//!    on `chown`;
//! 7. atime and mtime (nanoseconds) — after everything that could change them;
//! 8. rename into place — before the remaining flags, because an immutable or append-only
//!    file can be neither renamed nor have its times set;
//! 9. the remaining chattr flags (`+i`, `+a`, `+d`, …) last, on the open descriptor.
//!
//! ctime and birth time are recorded but cannot be set on Linux. What cannot be applied
//! for want of a privilege (`trusted.*` needs CAP_SYS_ADMIN, `security.capability`
//! CAP_SETFCAP, `+i`/`+a` CAP_LINUX_IMMUTABLE, owners CAP_CHOWN) or of file system support
//! is reported per file ([`RestoreRoot::take_warnings`], and in [`RestoreRoot::finish`]);
//! the file is restored without it.

use std::cell::RefCell;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::error::{Refusal, Result, StreamError};
use crate::meta::{FileKind, FileMeta, Timestamp};
use crate::names::NameCache;
use crate::sparse::Placer;
use crate::xattrs::Target;

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

/// Name lookups and per-file problems, shared by a root and the files it hands out.
#[derive(Default)]
struct Shared {
    names: NameCache,
    warnings: Vec<StreamError>,
    /// Writes out small files in the background (see [`Flusher`]).
    flusher: Option<Flusher>,
}

/// Content of small files written, across files, before the file system is synced in the
/// background.
const BACKGROUND_SYNC_STEP: u64 = 64 << 20;

/// Small files are not worth a writeback call each (see [`PendingFile::commit_or_stage`]),
/// so without this a restore of many of them leaves all their data to the final `syncfs`,
/// with the disk idle until then. Every [`BACKGROUND_SYNC_STEP`] of their content, a thread
/// of its own runs `syncfs` while the restore goes on; the final one then has little left.
/// It syncs through a file of its own (the root opened again), so that a write error it
/// meets is still reported by the final `syncfs` (errors are tracked per open file).
struct Flusher {
    /// The restore root opened again, handed to the thread when it starts.
    sync_dir: Option<OwnedFd>,
    since: u64,
    running: Option<(std::sync::mpsc::SyncSender<()>, std::thread::JoinHandle<()>)>,
}

impl Flusher {
    fn new(sync_dir: OwnedFd) -> Flusher {
        Flusher {
            sync_dir: Some(sync_dir),
            since: 0,
            running: None,
        }
    }

    /// Counts `bytes` of small-file content; past a step, asks for a sync (none is queued
    /// while one runs: the next step asks again).
    fn wrote(&mut self, bytes: u64) {
        self.since += bytes;
        if self.since < BACKGROUND_SYNC_STEP {
            return;
        }
        self.since = 0;
        if self.running.is_none() {
            let Some(fd) = self.sync_dir.take() else {
                return;
            };
            let (ask, asked) = std::sync::mpsc::sync_channel::<()>(1);
            let spawned = std::thread::Builder::new()
                .name("reel-sync".into())
                .spawn(move || {
                    for () in asked {
                        let _ = rustix::fs::syncfs(&fd);
                    }
                });
            match spawned {
                Ok(handle) => self.running = Some((ask, handle)),
                Err(_) => return,
            }
        }
        if let Some((ask, _)) = &self.running {
            let _ = ask.try_send(());
        }
    }

    /// Waits for the sync under way, if any.
    fn stop(self) {
        if let Some((ask, handle)) = self.running {
            drop(ask);
            let _ = handle.join();
        }
    }
}

type SharedRef = Rc<RefCell<Shared>>;

fn warn(shared: &SharedRef, path: &Path, what: String) {
    shared.borrow_mut().warnings.push(StreamError::Partial {
        path: path.to_path_buf(),
        what,
    });
}

/// The directory a restore writes under.
pub struct RestoreRoot {
    root: OwnedFd,
    root_path: PathBuf,
    existing: Existing,
    restore_owner: bool,
    shared: SharedRef,
    /// The parent directory used last, by its components (most entries share it).
    cached_dir: Option<(Vec<OsString>, ParentDir)>,
    deferred_dirs: Vec<(RelPath, FileMeta)>,
    tmp_counter: u64,
    /// This process's id and owner, read once (temporary names, owner changes).
    pid: u32,
    ids: (u32, u32),
    /// How the restore is made durable at [`RestoreRoot::finish`].
    sync_plan: SyncPlan,
    /// Entries created or replaced so far.
    entries: usize,
    /// New files start unnamed (`O_TMPFILE`) until the file system says it cannot.
    unnamed_files: bool,
}

/// A restore of a few files syncs just them and the directories it changed: `syncfs` would
/// also wait for every other writer's dirty data on the file system, seconds on a busy
/// server for a one-file restore. Past `SYNC_EACH_LIMIT` entries one `syncfs` is cheaper,
/// and so it is from the start when the system holds little dirty data (`QUIET_DIRTY_LIMIT`):
/// then `syncfs` writes little more than ours and flushes the disk cache once, where a file
/// under ten new directories costs eleven fsyncs, each one a cache flush.
enum SyncPlan {
    /// Each file is fsynced before its rename; these directories (whose entries changed)
    /// are fsynced at the end.
    Each(Vec<Rc<OwnedFd>>),
    WholeFileSystem,
}

const SYNC_EACH_LIMIT: usize = 16;

/// Dirty and under-writeback page cache, system-wide, below which `syncfs` is cheap.
const QUIET_DIRTY_LIMIT: u64 = 4 << 20;

/// Whether the page cache holds less than `QUIET_DIRTY_LIMIT` of data not yet on disk
/// (`Dirty` + `Writeback` of /proc/meminfo). Unknown counts as busy.
fn system_is_quiet() -> bool {
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    unwritten_bytes(&meminfo).is_some_and(|bytes| bytes < QUIET_DIRTY_LIMIT)
}

/// `Dirty` + `Writeback` of a /proc/meminfo text, in bytes; `None` when either is missing.
fn unwritten_bytes(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kib = line[name.len()..].trim().strip_suffix("kB")?.trim();
        kib.parse::<u64>().ok()?.checked_mul(1024)
    };
    field("Dirty:")?.checked_add(field("Writeback:")?)
}

/// An open directory files are created in, with what new files inherit from it.
#[derive(Clone)]
struct ParentDir {
    fd: std::rc::Rc<OwnedFd>,
    /// New files get chattr flags from it (so they must be set even when none are wanted).
    passes_flags: bool,
    /// setgid: new files get its group (so the group must be set even when it is ours).
    setgid: bool,
}

impl ParentDir {
    fn new(fd: OwnedFd) -> ParentDir {
        let passes_flags = rustix::fs::ioctl_getflags(&fd)
            .map(|f| f.bits() & crate::flags::RESTORABLE != 0)
            .unwrap_or(false);
        let setgid = rustix::fs::fstat(&fd)
            .map(|st| st.st_mode & 0o2000 != 0)
            .unwrap_or(true);
        ParentDir {
            fd: std::rc::Rc::new(fd),
            passes_flags,
            setgid,
        }
    }
}

impl AsFd for ParentDir {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
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
        // A root created here has new entries above it too: leave those to syncfs.
        let created_root = !dir.is_dir();
        let sync_plan = if created_root || system_is_quiet() {
            SyncPlan::WholeFileSystem
        } else {
            SyncPlan::Each(Vec::new())
        };
        std::fs::create_dir_all(dir).map_err(|e| StreamError::io(dir, "create", e))?;
        let root = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| StreamError::io(dir, "open", errno_io(e)))?;
        let shared = SharedRef::default();
        shared.borrow_mut().flusher = rustix::fs::openat(
            &root,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()
        .map(Flusher::new);
        Ok(RestoreRoot {
            root,
            root_path: dir.to_path_buf(),
            existing,
            restore_owner: rustix::process::geteuid().is_root(),
            shared,
            cached_dir: None,
            deferred_dirs: Vec::new(),
            tmp_counter: 0,
            pid: std::process::id(),
            ids: (
                rustix::process::geteuid().as_raw(),
                rustix::process::getegid().as_raw(),
            ),
            sync_plan,
            entries: 0,
            unnamed_files: true,
        })
    }

    /// Records that an entry of `dir` is being created or replaced (see [`SyncPlan`]).
    fn note_entry(&mut self, dir: &Rc<OwnedFd>) {
        self.entries += 1;
        if self.entries > SYNC_EACH_LIMIT {
            self.sync_plan = SyncPlan::WholeFileSystem;
        } else if let SyncPlan::Each(dirs) = &mut self.sync_plan
            && !dirs.iter().any(|d| Rc::ptr_eq(d, dir))
        {
            dirs.push(dir.clone());
        }
    }

    fn syncs_each(&self) -> bool {
        matches!(self.sync_plan, SyncPlan::Each(_))
    }

    pub fn path(&self) -> &Path {
        &self.root_path
    }

    /// What could not be applied to the files restored since the last call (missing
    /// privileges, file system support), one problem per file and fact.
    pub fn take_warnings(&mut self) -> Vec<StreamError> {
        std::mem::take(&mut self.shared.borrow_mut().warnings)
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
    fn parent_dir(&mut self, rel: &RelPath, create: bool) -> Result<ParentDir> {
        let parents = &rel.components[..rel.components.len() - 1];
        if let Some((key, dir)) = &self.cached_dir
            && key.as_slice() == parents
        {
            return Ok(dir.clone());
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
                        Ok(()) => {
                            if self.syncs_each() {
                                match cur.try_clone() {
                                    Ok(fd) => self.note_entry(&Rc::new(fd)),
                                    Err(_) => self.sync_plan = SyncPlan::WholeFileSystem,
                                }
                            }
                        }
                        Err(Errno::EXIST) => {}
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
        let dir = ParentDir::new(cur);
        self.cached_dir = Some((parents.to_vec(), dir.clone()));
        Ok(dir)
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
        OsString::from(format!(".reel-tmp-{}-{}", self.pid, self.tmp_counter))
    }

    /// Applies the existing-file policy to `name` in `dir`. `Ok(false)` = leave it.
    fn may_replace(&self, dir: &ParentDir, rel: &RelPath, meta: &FileMeta) -> Result<bool> {
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
        owner_ids(&self.shared, meta)
    }

    /// Starts a regular file: content goes to a temporary name until [`PendingFile::commit`].
    /// `Ok(None)` when an existing file is kept.
    pub fn begin_file(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<Option<PendingFile>> {
        let dir = self.parent_dir(rel, true)?;
        // Keeping existing files is decided at the rename (RENAME_NOREPLACE): no lookup
        // first, which a restore into an empty directory would pay for every file.
        if self.existing != Existing::Skip && !self.may_replace(&dir, rel, meta)? {
            return Ok(None);
        }
        self.note_entry(&dir.fd);
        let tmp = self.tmp_name();
        // An unnamed file (O_TMPFILE) gets its name with one link once complete: one
        // directory change instead of a create and a rename, and nothing to clean up after
        // a crash. File systems without it get a temporary name.
        let mut unnamed = None;
        if self.unnamed_files {
            match rustix::fs::openat(
                &dir,
                ".",
                OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(fd) => unnamed = Some(fd),
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => {
                    self.unnamed_files = false;
                }
                Err(e) => return Err(StreamError::io(self.full(rel), "create", errno_io(e))),
            }
        }
        let anonymous = unnamed.is_some();
        let fd = match unnamed {
            Some(fd) => fd,
            None => rustix::fs::openat(
                &dir,
                tmp.as_os_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| StreamError::io(self.full(rel), "create", errno_io(e)))?,
        };
        let file = File::from(fd);
        let shown = self.full(rel);
        let set_flags = meta.flags != 0 || dir.passes_flags;
        if set_flags {
            apply_flags(&file, meta, crate::flags::EARLY, &shown, &self.shared);
        }
        Ok(Some(PendingFile {
            no_replace: self.existing == Existing::Skip,
            set_flags,
            restore_owner: self.restore_owner,
            our_ids: self.ids,
            dir_setgid: dir.setgid,
            dir: dir.fd,
            tmp,
            name: rel.file_name().to_os_string(),
            shown,
            file,
            placer: meta.sparse.as_ref().map(Placer::new),
            meta: meta.clone(),
            shared: self.shared.clone(),
            done: false,
            unflushed: 0,
            sync_before_rename: self.syncs_each(),
            anonymous,
        }))
    }

    /// Creates a directory (or accepts an existing one); its metadata is applied at
    /// [`RestoreRoot::finish`].
    pub fn make_dir(&mut self, rel: &RelPath, meta: &FileMeta) -> Result<Outcome> {
        let dir = self.parent_dir(rel, true)?;
        let mode = Mode::from_raw_mode((meta.mode | 0o700) & 0o777);
        match rustix::fs::mkdirat(&dir, rel.file_name(), mode) {
            Ok(()) => self.note_entry(&dir.fd),
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
        self.note_entry(&dir.fd);
        let tmp = self.tmp_name();
        rustix::fs::symlinkat(target.as_os_str(), &dir, tmp.as_os_str())
            .map_err(|e| StreamError::io(self.full(rel), "create symlink", errno_io(e)))?;
        let shown = self.full(rel);
        let result = (|| {
            let target = Target::At {
                dir: &dir,
                name: tmp.as_os_str(),
            };
            apply_xattrs(&target, meta, false, &shown, &self.shared);
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
            apply_capability(&target, meta, &shown, &self.shared);
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
        self.note_entry(&dir.fd);
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
            FileKind::Socket => rustix::fs::FileType::Socket,
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
        self.note_entry(&dir.fd);
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
        let shown = self.full(rel);
        let result = (|| {
            // By name in the directory: opening a device node could have side effects.
            let target = Target::At {
                dir: &dir,
                name: tmp.as_os_str(),
            };
            apply_xattrs(&target, meta, false, &shown, &self.shared);
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
            apply_capability(&target, meta, &shown, &self.shared);
            if meta.flags != 0 {
                warn(
                    &self.shared,
                    &shown,
                    format!(
                        "chattr flags {} not restored: special files are never opened",
                        crate::flags::letters(meta.flags)
                    ),
                );
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

    /// Applies the deferred directory metadata (deepest first) and makes the restore durable
    /// (`syncfs`). Returns the problems met, one per directory.
    pub fn finish(mut self) -> Vec<StreamError> {
        let mut problems = Vec::new();
        let mut dirs = std::mem::take(&mut self.deferred_dirs);
        dirs.sort_by(|a, b| b.0.depth().cmp(&a.0.depth()).then_with(|| a.0.cmp(&b.0)));
        dirs.dedup_by(|a, b| a.0 == b.0);
        self.cached_dir = None;
        // Their metadata changes too: each is fsynced after them while that stays cheap.
        if self.entries + dirs.len() > SYNC_EACH_LIMIT {
            self.sync_plan = SyncPlan::WholeFileSystem;
        }
        for (rel, meta) in dirs {
            if let Err(e) = self.finish_dir(&rel, &meta) {
                problems.push(e);
            }
        }
        match std::mem::replace(&mut self.sync_plan, SyncPlan::WholeFileSystem) {
            SyncPlan::Each(dirs) => {
                for dir in dirs {
                    if let Err(e) = rustix::fs::fsync(&*dir) {
                        problems.push(StreamError::io(&self.root_path, "sync", errno_io(e)));
                    }
                }
            }
            SyncPlan::WholeFileSystem => {
                let flusher = self.shared.borrow_mut().flusher.take();
                if let Some(f) = flusher {
                    f.stop();
                }
                if let Err(e) = rustix::fs::syncfs(&self.root) {
                    problems.push(StreamError::io(&self.root_path, "sync", errno_io(e)));
                }
            }
        }
        let mut all = self.take_warnings();
        all.extend(problems);
        all
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
        let shown = self.full(rel);
        apply_fd_metadata(&fd, meta, owner, true, &shown, &self.shared)
            .map_err(|(op, e)| StreamError::io(self.full(rel), op, e))?;
        apply_flags(&fd, meta, crate::flags::RESTORABLE, &shown, &self.shared);
        if self.syncs_each() {
            rustix::fs::fsync(&fd)
                .map_err(|e| StreamError::io(self.full(rel), "sync", errno_io(e)))?;
        }
        Ok(())
    }
}

fn owner_ids(shared: &SharedRef, meta: &FileMeta) -> (u32, u32) {
    let names = &mut shared.borrow_mut().names;
    let uid = meta
        .user
        .as_deref()
        .and_then(|n| names.uid_of(n))
        .unwrap_or(meta.uid);
    let gid = meta
        .group
        .as_deref()
        .and_then(|n| names.gid_of(n))
        .unwrap_or(meta.gid);
    (uid, gid)
}

/// Why setting attribute `name` failed, with the privilege it needs when that is why.
fn xattr_problem(name: &[u8], e: &io::Error, on_regular: bool) -> String {
    let shown = String::from_utf8_lossy(name);
    let hint = match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::PERM) if name == b"security.capability" => " (needs CAP_SETFCAP)",
        Some(Errno::PERM) if name.starts_with(b"trusted.") || name.starts_with(b"security.") => {
            " (needs CAP_SYS_ADMIN)"
        }
        Some(Errno::PERM) if name.starts_with(b"user.") && !on_regular => {
            " (Linux allows user.* attributes only on regular files and directories)"
        }
        Some(Errno::OPNOTSUPP) => " (the file system does not support it)",
        Some(Errno::NOSPC) => " (no room for it in this file system's attribute space)",
        _ => "",
    };
    format!("extended attribute {shown} not restored: {e}{hint}")
}

/// Extended attributes (all but `security.capability`) and ACLs.
fn apply_xattrs<F: AsFd>(
    target: &Target<'_, F>,
    meta: &FileMeta,
    on_regular: bool,
    shown: &Path,
    shared: &SharedRef,
) {
    for x in &meta.xattrs {
        if x.name == b"security.capability" {
            continue;
        }
        if let Err(e) = target.set(&x.name, &x.value) {
            warn(shared, shown, xattr_problem(&x.name, &e, on_regular));
        }
    }
    for (acl, name, what) in [
        (&meta.acl_access, crate::acl::XATTR_ACCESS, "access ACL"),
        (&meta.acl_default, crate::acl::XATTR_DEFAULT, "default ACL"),
    ] {
        let Some(acl) = acl else { continue };
        let value = acl.to_xattr_here(&mut shared.borrow_mut().names);
        if let Err(e) = target.set(name.as_bytes(), &value) {
            warn(shared, shown, format!("{what} not restored: {e}"));
        }
    }
}

/// `security.capability`, which must come after the owner (a `chown` clears it).
fn apply_capability<F: AsFd>(
    target: &Target<'_, F>,
    meta: &FileMeta,
    shown: &Path,
    shared: &SharedRef,
) {
    for x in meta
        .xattrs
        .iter()
        .filter(|x| x.name == b"security.capability")
    {
        if let Err(e) = target.set(&x.name, &x.value) {
            warn(shared, shown, xattr_problem(&x.name, &e, true));
        }
    }
}

/// Sets the chattr flags of `mask`, reporting what could not be set.
fn apply_flags(fd: &impl AsFd, meta: &FileMeta, mask: u32, shown: &Path, shared: &SharedRef) {
    if let Err(e) = crate::flags::set(fd, meta.flags, mask) {
        let wanted = crate::flags::letters(meta.flags & mask);
        let hint = match e.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::PERM) => " (+i and +a need CAP_LINUX_IMMUTABLE)",
            Some(Errno::NOTTY | Errno::OPNOTSUPP | Errno::INVAL) => {
                " (the file system does not support them)"
            }
            _ => "",
        };
        warn(
            shared,
            shown,
            format!("chattr flags {wanted:?} not restored: {e}{hint}"),
        );
    }
}

/// Xattrs, ACLs, owner, mode, capability, then times, on an open file (see the module
/// documentation for why in this order).
fn apply_fd_metadata<F: AsFd>(
    fd: &F,
    meta: &FileMeta,
    owner: Option<(u32, u32)>,
    on_regular: bool,
    shown: &Path,
    shared: &SharedRef,
) -> std::result::Result<(), (&'static str, io::Error)> {
    let target = Target::Fd(fd);
    apply_xattrs(&target, meta, on_regular, shown, shared);
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
    apply_capability(&target, meta, shown, shared);
    let times = Timestamps {
        last_access: to_timespec(meta.atime),
        last_modification: to_timespec(meta.mtime),
    };
    rustix::fs::futimens(fd, &times).map_err(|e| ("set times of", errno_io(e)))
}

/// How [`PendingFile::commit_or_stage`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Renamed into place.
    Written,
    /// Complete under this temporary path; the final name is busy.
    Staged(PathBuf),
    /// An existing file of the final name was kept ([`Existing::Skip`]).
    SkippedExisting,
}

/// A regular file being restored under a temporary name.
///
/// Its content is written through `Write`: the whole file, or for a sparse file (the
/// metadata has a sparse map) the data extents in order, which land at their offsets.
pub struct PendingFile {
    dir: std::rc::Rc<OwnedFd>,
    /// Keep an existing file of the final name (rename without replacing).
    no_replace: bool,
    /// Flags are wanted or inherited: set them.
    set_flags: bool,
    /// Owners are restored (root); new files are ours, with our group unless the directory
    /// is setgid, so no change of owner is needed when that is what the archive says.
    restore_owner: bool,
    our_ids: (u32, u32),
    dir_setgid: bool,
    tmp: OsString,
    name: OsString,
    shown: PathBuf,
    file: File,
    placer: Option<Placer>,
    meta: FileMeta,
    shared: SharedRef,
    done: bool,
    /// Content written since writeback was last started (see `start_writeback`).
    unflushed: u64,
    /// fsync before the rename (a restore of a few files; see `SyncPlan`).
    sync_before_rename: bool,
    /// The file has no name yet (`O_TMPFILE`); `tmp` is only reserved for it.
    anonymous: bool,
}

/// How much of a file's content is written before its writeback is started.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Asks the kernel to start writing a file's dirty pages now, without waiting. A restore ends
/// with one `syncfs`; without this the disk idles while files are produced and everything is
/// written during that final sync. Only a hint: errors surface at the sync.
fn start_writeback(file: &File) {
    // SAFETY: a plain syscall on an open descriptor; no memory is passed.
    unsafe {
        libc::sync_file_range(
            std::os::fd::AsRawFd::as_raw_fd(file),
            0,
            0,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

impl PendingFile {
    /// The final path (for messages).
    pub fn path(&self) -> &Path {
        &self.shown
    }

    /// The metadata that [`Self::commit`] will apply.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    /// Replaces the metadata to apply (for writers that learn it after the content).
    /// The owner is looked up again when `restore_owner` was in force.
    pub fn set_meta(&mut self, meta: FileMeta) {
        self.placer = meta.sparse.as_ref().map(Placer::new);
        self.set_flags |= meta.flags != 0;
        if self.set_flags {
            apply_flags(
                &self.file,
                &meta,
                crate::flags::EARLY,
                &self.shown,
                &self.shared,
            );
        }
        self.meta = meta;
    }

    /// The owner to set, if it is not already the file's.
    fn owner(&self) -> Option<(u32, u32)> {
        if !self.restore_owner {
            return None;
        }
        let ids = owner_ids(&self.shared, &self.meta);
        (ids != self.our_ids || self.dir_setgid).then_some(ids)
    }

    /// Sets the length of the file (a sparse file ending in a hole).
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// Writes content at `offset` (for writers that place data themselves).
    pub fn write_at(&mut self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(buf, offset)
    }

    /// Applies the metadata in the safe order (module documentation) and renames the file
    /// into place; the last chattr flags are set after the rename.
    pub fn commit(self) -> Result<Outcome> {
        match self.commit_or_stage(false)? {
            Committed::Written => Ok(Outcome::Written),
            Committed::SkippedExisting => Ok(Outcome::SkippedExisting),
            // Unreachable with staging off; kept total for the type.
            Committed::Staged(_) => Ok(Outcome::Written),
        }
    }

    /// Like [`PendingFile::commit`], but when the final name cannot be replaced because it
    /// is busy (`EBUSY`: a mount point; `ETXTBSY`) and `stage_when_busy` is set, the
    /// complete file is kept under its temporary name and its path returned, for a delayed
    /// move at the next boot.
    pub fn commit_or_stage(mut self, stage_when_busy: bool) -> Result<Committed> {
        if self.unflushed >= 256 << 10 && !self.sync_before_rename {
            start_writeback(&self.file);
        } else if !self.sync_before_rename
            && let Some(f) = &mut self.shared.borrow_mut().flusher
        {
            // Small files: one more syscall each costs more than it saves; they are
            // written out in the background every 64 MiB instead.
            f.wrote(self.unflushed);
        }
        if self.meta.sparse.is_some() {
            // A file ending in a hole gets its length here.
            self.file
                .set_len(self.meta.size)
                .map_err(|e| StreamError::io(&self.shown, "set the size of", e))?;
        }
        apply_fd_metadata(
            &self.file,
            &self.meta,
            self.owner(),
            true,
            &self.shown,
            &self.shared,
        )
        .map_err(|(op, e)| StreamError::io(&self.shown, op, e))?;
        if self.sync_before_rename {
            self.file
                .sync_all()
                .map_err(|e| StreamError::io(&self.shown, "sync", e))?;
        }
        if self.anonymous {
            match self.link(self.name.as_os_str()) {
                Ok(()) => return Ok(self.committed()),
                Err(Errno::EXIST) if self.no_replace => {
                    self.discard();
                    return Ok(Committed::SkippedExisting);
                }
                // Replacing a file: named first, then renamed over it (atomically), as below.
                Err(Errno::EXIST) => {
                    let tmp = self.tmp.clone();
                    self.link(&tmp).map_err(|e| {
                        StreamError::io(&self.shown, "name the new file", errno_io(e))
                    })?;
                    self.anonymous = false;
                }
                Err(e) => {
                    return Err(StreamError::io(&self.shown, "link into place", errno_io(e)));
                }
            }
        }
        let flags = if self.no_replace {
            rustix::fs::RenameFlags::NOREPLACE
        } else {
            rustix::fs::RenameFlags::empty()
        };
        match rustix::fs::renameat_with(
            &*self.dir,
            self.tmp.as_os_str(),
            &*self.dir,
            self.name.as_os_str(),
            flags,
        ) {
            Ok(()) => {}
            Err(Errno::EXIST) if self.no_replace => {
                self.discard();
                return Ok(Committed::SkippedExisting);
            }
            Err(Errno::BUSY | Errno::TXTBSY) if stage_when_busy => {
                self.file
                    .sync_all()
                    .map_err(|e| StreamError::io(&self.shown, "sync", e))?;
                self.done = true;
                let staged = self
                    .shown
                    .parent()
                    .map(|d| d.join(&self.tmp))
                    .unwrap_or_else(|| PathBuf::from(&self.tmp));
                return Ok(Committed::Staged(staged));
            }
            Err(e) => {
                return Err(StreamError::io(
                    &self.shown,
                    "rename into place",
                    errno_io(e),
                ));
            }
        }
        Ok(self.committed())
    }

    /// The file is in place: the flags that forbid changes come last.
    fn committed(&mut self) -> Committed {
        self.done = true;
        if self.set_flags {
            let late = crate::flags::RESTORABLE & !crate::flags::EARLY;
            apply_flags(&self.file, &self.meta, late, &self.shown, &self.shared);
        }
        Committed::Written
    }

    /// Gives the unnamed file the name `name` in its directory (fails with EEXIST when the
    /// name is taken). AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH before Linux 6.10; without it,
    /// through /proc.
    fn link(&self, name: &OsStr) -> std::result::Result<(), Errno> {
        match rustix::fs::linkat(&self.file, "", &*self.dir, name, AtFlags::EMPTY_PATH) {
            Err(Errno::NOENT | Errno::PERM) => {
                let proc = format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&self.file)
                );
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    proc.as_str(),
                    &*self.dir,
                    name,
                    AtFlags::SYMLINK_FOLLOW,
                )
            }
            other => other,
        }
    }

    /// Drops the partial file (also what `Drop` does when not committed).
    pub fn abort(mut self) {
        self.discard();
    }

    fn discard(&mut self) {
        if !self.done {
            // An unnamed file goes away with its descriptor.
            if !self.anonymous {
                let _ = rustix::fs::unlinkat(&self.dir, self.tmp.as_os_str(), AtFlags::empty());
            }
            self.done = true;
        }
    }
}

impl Write for PendingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(placer) = &mut self.placer else {
            let n = self.file.write(buf)?;
            self.unflushed += n as u64;
            if self.unflushed >= WRITEBACK_STEP {
                start_writeback(&self.file);
                self.unflushed = 0;
            }
            return Ok(n);
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let Some((at, n)) = placer.next(buf.len()) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more content than the sparse map of the file holds",
            ));
        };
        self.file.write_all_at(&buf[..n], at)?;
        Ok(n)
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
    fn flusher_syncs_in_the_background_every_step_and_stops() {
        let dir = tempfile::tempdir().unwrap();
        let root = rustix::fs::open(
            dir.path(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .unwrap();
        let mut f = Flusher::new(root);
        f.wrote(BACKGROUND_SYNC_STEP - 1);
        assert!(f.running.is_none(), "no sync before a step of content");
        f.wrote(1);
        assert!(f.running.is_some(), "a sync thread after a step");
        // Steps while a sync runs are coalesced, never blocking the restore.
        for _ in 0..10 {
            f.wrote(BACKGROUND_SYNC_STEP);
        }
        assert_eq!(f.since, 0);
        f.stop();
    }

    #[test]
    fn unwritten_bytes_adds_dirty_and_writeback() {
        let meminfo = "MemTotal:       24641312 kB\nDirty:               80 kB\n\
                       Writeback:           120 kB\nAnonPages:        12 kB\n";
        assert_eq!(unwritten_bytes(meminfo), Some(200 * 1024));
        assert_eq!(unwritten_bytes("Dirty: 80 kB\n"), None);
        assert_eq!(unwritten_bytes("Dirty: x kB\nWriteback: 1 kB\n"), None);
        assert_eq!(unwritten_bytes(""), None);
    }

    /// Writes `content` as `name` under `root` and commits it.
    fn restore_one(root: &mut RestoreRoot, name: &str, content: &[u8]) -> Committed {
        let rel = check_path(name.as_bytes()).unwrap();
        let mut meta = FileMeta::new(FileKind::Regular, 0o640);
        meta.size = content.len() as u64;
        let Some(mut pending) = root.begin_file(&rel, &meta).unwrap() else {
            return Committed::SkippedExisting;
        };
        pending.write_all(content).unwrap();
        pending.commit_or_stage(false).unwrap()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Unnamed files (O_TMPFILE) and, where a file system lacks them, temporary names: new
    /// files, kept existing ones and replaced ones come out the same and leave nothing else.
    #[test]
    fn new_kept_and_replaced_files_with_and_without_unnamed_files() {
        for unnamed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut root = RestoreRoot::open(dir.path(), Existing::Skip).unwrap();
            root.unnamed_files = unnamed;
            assert!(matches!(
                restore_one(&mut root, "d/a", b"first"),
                Committed::Written
            ));
            assert!(matches!(
                restore_one(&mut root, "d/a", b"second"),
                Committed::SkippedExisting
            ));
            assert_eq!(std::fs::read(dir.path().join("d/a")).unwrap(), b"first");
            assert!(root.finish().is_empty());

            let mut root = RestoreRoot::open(dir.path(), Existing::Overwrite).unwrap();
            root.unnamed_files = unnamed;
            assert!(matches!(
                restore_one(&mut root, "d/a", b"third"),
                Committed::Written
            ));
            assert!(matches!(
                restore_one(&mut root, "d/b", b"new"),
                Committed::Written
            ));
            assert!(root.finish().is_empty());
            assert_eq!(std::fs::read(dir.path().join("d/a")).unwrap(), b"third");
            assert_eq!(std::fs::read(dir.path().join("d/b")).unwrap(), b"new");
            assert_eq!(
                names_in(&dir.path().join("d")),
                ["a", "b"],
                "unnamed: {unnamed}"
            );
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("d/a"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o640);
        }
    }

    /// A file abandoned half-written leaves no trace under either scheme.
    #[test]
    fn an_abandoned_file_leaves_nothing() {
        for unnamed in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let mut root = RestoreRoot::open(dir.path(), Existing::Skip).unwrap();
            root.unnamed_files = unnamed;
            let rel = check_path(b"x").unwrap();
            let meta = FileMeta::new(FileKind::Regular, 0o600);
            let mut pending = root.begin_file(&rel, &meta).unwrap().unwrap();
            pending.write_all(b"half").unwrap();
            pending.abort();
            assert!(names_in(dir.path()).is_empty(), "unnamed: {unnamed}");
        }
    }

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
