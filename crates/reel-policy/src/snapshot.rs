//! Snapshots, the shadow-copy side: on btrfs, a backup can read a frozen, consistent copy of a
//! subvolume instead of the live tree.
//!
//! [`create`] makes a writable snapshot of the subvolume that holds the source path
//! (`BTRFS_IOC_SNAP_CREATE_V2`), deletes in it what `files-not-to-snapshot` matches (paths are
//! matched as they are on the live system; deletion never leaves the snapshot: every directory
//! is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from the snapshot's root),
//! makes it read-only (`BTRFS_IOC_SUBVOL_SETFLAGS`), and returns where to read. Snapshots live
//! in `<subvolume>/.reel-snapshots/reel-<UTC time>-<id>`, a directory tagged with
//! `CACHEDIR.TAG` so that no backup program (reel included) copies them; before a new one is
//! made, the oldest are destroyed (`BTRFS_IOC_SNAP_DESTROY`) so that at most `max-snapshots`
//! exist. Snapshots are kept after the backup (they are the "previous versions").
//!
//! Not here: nested subvolumes are not part of a snapshot (btrfs shows them as empty
//! directories); each needs its own. Other filesystems get [`SnapshotError::Unsupported`]
//! naming their type, so the caller can say so and read the live tree.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use reel_error_class::ErrorClass;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use rustix::ioctl::{Getter, Opcode, Setter, Updater, opcode};
use serde::Serialize;

use crate::config::Config;
use crate::policy::Policy;
use crate::rules::{Rule, RuleSet};

/// The directory, at the top of a subvolume, that holds reel's snapshots of it.
pub const SNAPSHOT_DIR: &str = ".reel-snapshots";
/// Every snapshot reel makes is named `reel-…`; only those are ever pruned.
pub const SNAPSHOT_PREFIX: &str = "reel-";

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// The inode number of the root directory of every btrfs subvolume.
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;
const BTRFS_SUBVOL_RDONLY: u64 = 1 << 1;
const BTRFS_SUBVOL_NAME_MAX: usize = 4039;
const BTRFS_PATH_NAME_MAX: usize = 4087;

/// `struct btrfs_ioctl_vol_args_v2` (4096 bytes).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; BTRFS_SUBVOL_NAME_MAX + 1],
}

/// `struct btrfs_ioctl_vol_args` (4096 bytes).
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; BTRFS_PATH_NAME_MAX + 1],
}

const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);

const BTRFS_IOC_SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(0x94, 23);
const BTRFS_IOC_SNAP_DESTROY: Opcode = opcode::write::<VolArgs>(0x94, 15);
const BTRFS_IOC_SUBVOL_GETFLAGS: Opcode = opcode::read::<u64>(0x94, 25);
const BTRFS_IOC_SUBVOL_SETFLAGS: Opcode = opcode::write::<u64>(0x94, 26);

/// What went wrong with a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "cannot snapshot {path}: it is on {fs_type}, and reel makes snapshots only on btrfs \
         (without --require-snapshot the backup reads the live tree)"
    )]
    Unsupported { path: PathBuf, fs_type: String },
    #[error(
        "not enough free space on {path} for a snapshot: {free} bytes free, min-snapshot-space \
         asks for {needed}; free space or lower min-snapshot-space in reel.conf"
    )]
    NotEnoughSpace {
        path: PathBuf,
        free: u64,
        needed: u64,
    },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SnapshotError {
    /// The class of this error: a file system that takes no snapshots and too little free
    /// space are configuration (usage), a failing system call is the medium's.
    pub fn class(&self) -> ErrorClass {
        match self {
            SnapshotError::Unsupported { .. } | SnapshotError::NotEnoughSpace { .. } => {
                ErrorClass::Usage
            }
            SnapshotError::Io { .. } => ErrorClass::Media,
        }
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(Errno) -> SnapshotError + 'a {
    move |e| SnapshotError::Io {
        action,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// A filesystem type, from `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsType {
    pub magic: i64,
}

impl FsType {
    pub fn is_btrfs(self) -> bool {
        self.magic == BTRFS_SUPER_MAGIC
    }

    /// The usual name (`ext4`, `xfs`, …), or the magic number in hex.
    pub fn name(self) -> String {
        let known = match self.magic {
            0x9123_683E => "btrfs",
            0xEF53 => "ext2/ext3/ext4",
            0x5846_5342 => "xfs",
            0x0102_1994 => "tmpfs",
            0x2FC1_2FC1 => "zfs",
            0xCA45_1A4E => "bcachefs",
            0xF2F5_2010 => "f2fs",
            0x794C_7630 => "overlayfs",
            0x6969 => "nfs",
            0xFF53_4D42 => "cifs",
            0x6573_5546 => "fuse",
            0x4d44 => "vfat",
            0x2011_BAB0 => "exfat",
            0x5346_544e => "ntfs",
            0x3434 => "nilfs2",
            0x7371_7368 => "squashfs",
            0x9fa0 => "proc",
            0x6265_6572 => "sysfs",
            _ => return format!("a filesystem of type {:#x}", self.magic),
        };
        known.to_string()
    }
}

/// The filesystem type of `path`.
pub fn filesystem_type(path: &Path) -> Result<FsType, SnapshotError> {
    let st = rustix::fs::statfs(path).map_err(io_err("statfs", path))?;
    #[allow(clippy::unnecessary_cast)]
    Ok(FsType {
        magic: st.f_type as i64,
    })
}

/// What [`create`] needs from the policy.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotOptions<'a> {
    /// Snapshots kept per subvolume, counting the new one (1..=512).
    pub max_snapshots: u32,
    /// For min-snapshot-space.
    pub config: &'a Config,
    /// What to delete from the snapshot.
    pub not_to_snapshot: &'a RuleSet,
}

impl Policy {
    /// The snapshot options of this policy.
    pub fn snapshot_options(&self) -> SnapshotOptions<'_> {
        SnapshotOptions {
            max_snapshots: self.config.max_snapshots.value,
            config: &self.config,
            not_to_snapshot: &self.files_not_to_snapshot,
        }
    }
}

/// One entry deleted from a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// The path as on the live system.
    pub path: PathBuf,
    pub rule: Rule,
}

/// A read-only snapshot made for a backup.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The path asked for (canonical, on the live system).
    pub source: PathBuf,
    /// The live subvolume that was snapshotted (its root directory).
    pub subvolume: PathBuf,
    /// The snapshot's root directory.
    pub path: PathBuf,
    /// What files-not-to-snapshot removed from it.
    pub removed: Vec<Removed>,
    /// Deletions that failed (best effort, as on Windows): one line each.
    pub problems: Vec<String>,
    /// Older snapshots destroyed to stay within max-snapshots.
    pub pruned: Vec<PathBuf>,
}

impl Snapshot {
    /// Where to read the source path: inside the snapshot.
    pub fn source_in_snapshot(&self) -> PathBuf {
        self.to_snapshot(&self.source)
            .unwrap_or_else(|| self.path.clone())
    }

    /// The live path of a path inside the snapshot (what patterns and the archive see).
    pub fn to_live(&self, in_snapshot: &Path) -> Option<PathBuf> {
        let rel = in_snapshot.strip_prefix(&self.path).ok()?;
        Some(if rel.as_os_str().is_empty() {
            self.subvolume.clone()
        } else {
            self.subvolume.join(rel)
        })
    }

    /// The path inside the snapshot of a live path, when the snapshot holds it.
    pub fn to_snapshot(&self, live: &Path) -> Option<PathBuf> {
        let rel = live.strip_prefix(&self.subvolume).ok()?;
        Some(if rel.as_os_str().is_empty() {
            self.path.clone()
        } else {
            self.path.join(rel)
        })
    }

    /// Destroys this snapshot now (for callers that do not keep it).
    pub fn destroy(self) -> Result<(), SnapshotError> {
        destroy(&self.path)
    }
}

/// The root directory of the btrfs subvolume holding `path` (canonicalised first).
pub fn subvolume_root(path: &Path) -> Result<PathBuf, SnapshotError> {
    let canon = std::fs::canonicalize(path).map_err(|source| SnapshotError::Io {
        action: "resolve",
        path: path.to_path_buf(),
        source,
    })?;
    let fs = filesystem_type(&canon)?;
    if !fs.is_btrfs() {
        return Err(SnapshotError::Unsupported {
            path: canon,
            fs_type: fs.name(),
        });
    }
    let mut dir = if canon.is_dir() {
        canon.clone()
    } else {
        canon.parent().unwrap_or(Path::new("/")).to_path_buf()
    };
    loop {
        let st = rustix::fs::stat(&dir).map_err(io_err("stat", &dir))?;
        if st.st_ino == BTRFS_FIRST_FREE_OBJECTID && filesystem_type(&dir)?.is_btrfs() {
            return Ok(dir);
        }
        if !dir.pop() {
            return Err(SnapshotError::Unsupported {
                path: canon,
                fs_type: "btrfs without a subvolume root above it".into(),
            });
        }
    }
}

/// True when `path` is the root of a read-only subvolume.
pub fn is_read_only(path: &Path) -> Result<bool, SnapshotError> {
    let fd = open_dir(path)?;
    // SAFETY: BTRFS_IOC_SUBVOL_GETFLAGS writes one u64.
    let flags =
        unsafe { rustix::ioctl::ioctl(&fd, Getter::<BTRFS_IOC_SUBVOL_GETFLAGS, u64>::new()) }
            .map_err(io_err("read the subvolume flags of", path))?;
    Ok(flags & BTRFS_SUBVOL_RDONLY != 0)
}

fn open_dir(path: &Path) -> Result<OwnedFd, SnapshotError> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err("open", path))
}

fn name_bytes<const N: usize>(name: &str, path: &Path) -> Result<[u8; N], SnapshotError> {
    let mut out = [0u8; N];
    if name.len() >= N || name.contains('/') || name.contains('\0') {
        return Err(SnapshotError::Io {
            action: "name a snapshot",
            path: path.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad snapshot name"),
        });
    }
    out[..name.len()].copy_from_slice(name.as_bytes());
    Ok(out)
}

/// The snapshots reel made of a subvolume, oldest first.
pub fn list(subvolume: &Path) -> Result<Vec<PathBuf>, SnapshotError> {
    let container = subvolume.join(SNAPSHOT_DIR);
    let entries = match std::fs::read_dir(&container) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SnapshotError::Io {
                action: "list",
                path: container,
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| SnapshotError::Io {
            action: "list",
            path: container.clone(),
            source,
        })?;
        let name = entry.file_name();
        if !name.as_bytes().starts_with(SNAPSHOT_PREFIX.as_bytes()) {
            continue;
        }
        let path = entry.path();
        // Only subvolume roots: a stray directory is never destroyed.
        if rustix::fs::lstat(&path).is_ok_and(|st| {
            st.st_ino == BTRFS_FIRST_FREE_OBJECTID
                && FileType::from_raw_mode(st.st_mode) == FileType::Directory
        }) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Destroys the oldest snapshots until at most `keep` remain; returns what it destroyed.
pub fn prune(subvolume: &Path, keep: usize) -> Result<Vec<PathBuf>, SnapshotError> {
    let all = list(subvolume)?;
    let excess = all.len().saturating_sub(keep);
    let mut gone = Vec::new();
    for path in all.into_iter().take(excess) {
        destroy(&path)?;
        gone.push(path);
    }
    Ok(gone)
}

/// Destroys one snapshot (a subvolume) by path.
pub fn destroy(path: &Path) -> Result<(), SnapshotError> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let parent_fd = open_dir(parent)?;
    let mut args = VolArgs {
        fd: 0,
        name: name_bytes(&name, path)?,
    };
    // SAFETY: BTRFS_IOC_SNAP_DESTROY reads a btrfs_ioctl_vol_args, which VolArgs is.
    unsafe {
        rustix::ioctl::ioctl(
            &parent_fd,
            Updater::<BTRFS_IOC_SNAP_DESTROY, VolArgs>::new(&mut args),
        )
    }
    .map_err(io_err("destroy the snapshot", path))
}

/// Makes a read-only snapshot of the subvolume holding `source`, without what
/// files-not-to-snapshot matches, after pruning older snapshots to stay within
/// `max_snapshots`.
pub fn create(source: &Path, opts: &SnapshotOptions<'_>) -> Result<Snapshot, SnapshotError> {
    let source = std::fs::canonicalize(source).map_err(|e| SnapshotError::Io {
        action: "resolve",
        path: source.to_path_buf(),
        source: e,
    })?;
    let subvolume = subvolume_root(&source)?;
    let subvol_fd = open_dir(&subvolume)?;

    let vfs = rustix::fs::fstatvfs(&subvol_fd).map_err(io_err("statvfs", &subvolume))?;
    let free = vfs.f_bavail.saturating_mul(vfs.f_frsize);
    let needed = opts
        .config
        .min_snapshot_space_for(vfs.f_blocks.saturating_mul(vfs.f_frsize));
    if free < needed {
        return Err(SnapshotError::NotEnoughSpace {
            path: subvolume,
            free,
            needed,
        });
    }

    let container = subvolume.join(SNAPSHOT_DIR);
    ensure_container(&container)?;
    let keep_before = (opts.max_snapshots.max(1) as usize).saturating_sub(1);
    let pruned = prune(&subvolume, keep_before)?;

    let name = snapshot_name();
    let path = container.join(&name);
    let container_fd = open_dir(&container)?;
    let mut args = VolArgsV2 {
        fd: i64::from(rustix::fd::AsRawFd::as_raw_fd(&subvol_fd)),
        transid: 0,
        flags: 0,
        unused: [0; 4],
        name: name_bytes(&name, &path)?,
    };
    // SAFETY: BTRFS_IOC_SNAP_CREATE_V2 reads a btrfs_ioctl_vol_args_v2, which VolArgsV2 is;
    // args.fd is an open fd of the source subvolume for the whole call.
    unsafe {
        rustix::ioctl::ioctl(
            &container_fd,
            Updater::<BTRFS_IOC_SNAP_CREATE_V2, VolArgsV2>::new(&mut args),
        )
    }
    .map_err(io_err("create a snapshot of", &subvolume))?;
    drop(subvol_fd);

    let mut snap = Snapshot {
        source,
        subvolume,
        path,
        removed: Vec::new(),
        problems: Vec::new(),
        pruned,
    };
    // From here on a failure destroys the half-made snapshot.
    let finish = |snap: &mut Snapshot| -> Result<(), SnapshotError> {
        let snap_fd = open_dir(&snap.path)?;
        remove_not_to_snapshot(snap, snap_fd.as_fd(), opts.not_to_snapshot);
        // SAFETY: both ioctls take a u64 of subvolume flags.
        let flags = unsafe {
            rustix::ioctl::ioctl(&snap_fd, Getter::<BTRFS_IOC_SUBVOL_GETFLAGS, u64>::new())
        }
        .map_err(io_err("read the subvolume flags of", &snap.path))?;
        unsafe {
            rustix::ioctl::ioctl(
                &snap_fd,
                Setter::<BTRFS_IOC_SUBVOL_SETFLAGS, u64>::new(flags | BTRFS_SUBVOL_RDONLY),
            )
        }
        .map_err(io_err("make read-only", &snap.path))?;
        Ok(())
    };
    if let Err(e) = finish(&mut snap) {
        let _ = destroy(&snap.path);
        return Err(e);
    }
    Ok(snap)
}

fn snapshot_name() -> String {
    let t = time::OffsetDateTime::now_utc();
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{SNAPSHOT_PREFIX}{:04}{:02}{:02}T{:02}{:02}{:02}.{:03}Z-{}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
        &id[..8]
    )
}

/// Creates `<subvolume>/.reel-snapshots` with a `CACHEDIR.TAG`, so backups skip it.
fn ensure_container(container: &Path) -> Result<(), SnapshotError> {
    match std::fs::create_dir(container) {
        Ok(()) => {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(container, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| SnapshotError::Io {
                    action: "set permissions of",
                    path: container.to_path_buf(),
                    source,
                },
            )?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(SnapshotError::Io {
                action: "create",
                path: container.to_path_buf(),
                source,
            });
        }
    }
    let tag = container.join(crate::filter::CACHEDIR_TAG);
    if !crate::filter::has_cachedir_tag_at(container) {
        let mut text = crate::filter::CACHEDIR_SIGNATURE.to_vec();
        text.extend_from_slice(
            b"\n# reel's btrfs snapshots: backup programs need not copy them.\n",
        );
        crate::state::write_atomic(&tag, &text).map_err(|e| SnapshotError::Io {
            action: "write",
            path: tag.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(())
}

const BENEATH: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS)
    .union(ResolveFlags::NO_XDEV);

/// Opens a directory of the snapshot by its path relative to the snapshot root, never leaving
/// it (no `..`, no symlinks, no mount crossing).
fn open_beneath(root: BorrowedFd<'_>, rel: &Path) -> Result<OwnedFd, Errno> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    rustix::fs::openat2(
        root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        BENEATH,
    )
}

/// The directories to look in for a rule, relative to the subvolume root, and whether to look
/// below them. `None`: the rule cannot match inside this subvolume.
fn walk_job(rule: &Rule, subvolume: &Path) -> Option<(PathBuf, bool)> {
    let Some(dir) = &rule.pattern.dir else {
        return Some((PathBuf::new(), true));
    };
    let dir = Path::new(if dir.is_empty() { "/" } else { dir });
    if let Ok(rel) = dir.strip_prefix(subvolume) {
        return Some((rel.to_path_buf(), rule.pattern.recursive));
    }
    // The rule's directory is above the subvolume: only a recursive rule reaches into it.
    (subvolume.starts_with(dir) && rule.pattern.recursive).then(|| (PathBuf::new(), true))
}

fn remove_not_to_snapshot(snap: &mut Snapshot, root: BorrowedFd<'_>, rules: &RuleSet) {
    let mut jobs: Vec<(PathBuf, bool)> = rules
        .rules()
        .iter()
        .filter_map(|r| walk_job(r, &snap.subvolume))
        .collect();
    jobs.sort();
    jobs.dedup();
    if jobs
        .iter()
        .any(|(rel, rec)| rel.as_os_str().is_empty() && *rec)
    {
        jobs = vec![(PathBuf::new(), true)];
    }
    for (rel, recursive) in jobs {
        let mut stack = vec![rel];
        while let Some(rel) = stack.pop() {
            let dirfd = match open_beneath(root, &rel) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    snap.problems.push(format!(
                        "cannot open {}: {e}",
                        snap.subvolume.join(&rel).display()
                    ));
                    continue;
                }
            };
            let mut dir = match Dir::new(dirfd) {
                Ok(d) => d,
                Err(e) => {
                    snap.problems.push(format!(
                        "cannot list {}: {e}",
                        snap.subvolume.join(&rel).display()
                    ));
                    continue;
                }
            };
            let mut children: Vec<(std::ffi::OsString, bool)> = Vec::new();
            while let Some(entry) = dir.read() {
                let entry = match entry {
                    Ok(e) => e,
                    Err(e) => {
                        snap.problems.push(format!(
                            "cannot list {}: {e}",
                            snap.subvolume.join(&rel).display()
                        ));
                        break;
                    }
                };
                let name = entry.file_name();
                if name == c"." || name == c".." {
                    continue;
                }
                let name = std::ffi::OsStr::from_bytes(name.to_bytes()).to_os_string();
                let is_dir = match entry.file_type() {
                    FileType::Unknown => dir
                        .fd()
                        .ok()
                        .and_then(|fd| {
                            rustix::fs::statat(fd, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW).ok()
                        })
                        .is_some_and(|st| {
                            FileType::from_raw_mode(st.st_mode) == FileType::Directory
                        }),
                    t => t == FileType::Directory,
                };
                children.push((name, is_dir));
            }
            let Ok(dirfd) = dir.fd() else { continue };
            for (name, is_dir) in children {
                let child_rel = rel.join(&name);
                let live = snap.subvolume.join(&child_rel);
                if let Some(rule) = rules.match_entry(&live, is_dir) {
                    let result = if is_dir {
                        remove_tree(root, &child_rel).and_then(|()| {
                            rustix::fs::unlinkat(dirfd, name.as_os_str(), AtFlags::REMOVEDIR)
                        })
                    } else {
                        rustix::fs::unlinkat(dirfd, name.as_os_str(), AtFlags::empty())
                    };
                    match result {
                        Ok(()) | Err(Errno::NOENT) => snap.removed.push(Removed {
                            path: live,
                            rule: rule.clone(),
                        }),
                        Err(e) => snap.problems.push(format!(
                            "cannot remove {} from the snapshot: {e}",
                            live.display()
                        )),
                    }
                } else if is_dir
                    && recursive
                    && !(rel.as_os_str().is_empty() && name == SNAPSHOT_DIR)
                {
                    stack.push(child_rel);
                }
            }
        }
    }
}

/// Removes everything below `rel` (not `rel` itself), depth first, without recursion.
fn remove_tree(root: BorrowedFd<'_>, rel: &Path) -> Result<(), Errno> {
    // (directory, its children already removed)
    let mut stack: Vec<(PathBuf, bool)> = vec![(rel.to_path_buf(), false)];
    while let Some((dir_rel, emptied)) = stack.pop() {
        if emptied {
            if dir_rel != rel {
                let parent = open_beneath(root, dir_rel.parent().unwrap_or(Path::new("")))?;
                let name = dir_rel.file_name().unwrap_or_default();
                rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)?;
            }
            continue;
        }
        stack.push((dir_rel.clone(), true));
        let mut dir = Dir::new(open_beneath(root, &dir_rel)?)?;
        let mut subdirs = Vec::new();
        let mut files = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry?;
            let name: &CStr = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            let name = std::ffi::OsStr::from_bytes(name.to_bytes()).to_os_string();
            let is_dir = match entry.file_type() {
                FileType::Unknown => {
                    rustix::fs::statat(dir.fd()?, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
                }
                t => t == FileType::Directory,
            };
            if is_dir {
                subdirs.push(name)
            } else {
                files.push(name)
            }
        }
        let fd = dir.fd()?;
        for f in files {
            match rustix::fs::unlinkat(fd, f.as_os_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e),
            }
        }
        for d in subdirs {
            stack.push((dir_rel.join(d), false));
        }
    }
    Ok(())
}
