//! The common store: `.sis-common-store/` at the volume root, mode 0700, holding immutable
//! content-named `<blake3-hex>.sis` files and the store's bookkeeping.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Result, SisError, corrupt};
use crate::index::Index;
use crate::reparse::{ContentHash, ReparseData};
use crate::sys::{self, ExtentMap};
use crate::volume::Volume;

/// Name of the common store directory at the volume root.
pub const STORE_DIR: &str = ".sis-common-store";
/// The link index inside the store (see [`crate::index`] for its format).
pub const INDEX_FILE: &str = "links.index";
/// The store's format marker inside the store.
pub const MARKER_FILE: &str = "STORE";
const MARKER: &[u8] = b"reel-sis-store 1\n";
const LOCK_FILE: &str = "lock";

/// An open common store.
#[derive(Clone, Debug)]
pub struct CommonStore {
    volume: Volume,
    dir: PathBuf,
}

/// The store's exclusive lock (an `flock` on `.sis-common-store/lock`), held while the
/// index or the set of common-store files changes. Released on drop.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

/// What a file is, as far as SIS is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// A SIS link: it carries reparse data and shares every block of its common-store file.
    Link(ReparseData),
    /// An ordinary file (no reparse data).
    Ordinary,
    /// It carries reparse data but is not a link any more (written since, or its common-store
    /// file is gone): an ordinary file in every respect, backup included.
    Former {
        reparse: Option<ReparseData>,
        reason: String,
    },
    /// Nothing (or no regular file) at that path.
    Missing,
}

/// A file's SIS state plus the identity it was checked under.
#[derive(Clone, Debug)]
pub struct LinkCheck {
    pub state: LinkState,
    pub ino: u64,
    pub size: u64,
}

/// Extent maps of common-store files, which never change, computed once per command.
#[derive(Default, Debug)]
pub struct MapCache {
    maps: HashMap<ContentHash, Option<ExtentMap>>,
}

/// A common-store file on disk.
#[derive(Clone, Debug)]
pub struct CommonStoreFile {
    /// `<hex>.sis`.
    pub name: String,
    pub hash: ContentHash,
    /// Absolute path.
    pub path: PathBuf,
    /// Path relative to the volume root: `.sis-common-store/<hex>.sis`.
    pub relative: PathBuf,
    pub size: u64,
}

impl CommonStore {
    /// Opens the existing store of `volume`. Without one: the reflink refusal on filesystems
    /// that cannot share extents, else [`SisError::NoStore`].
    pub fn open(volume: Volume) -> Result<CommonStore> {
        let dir = volume.root().join(STORE_DIR);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(SisError::Invalid(format!(
                    "{} exists but is not a directory; move it away",
                    dir.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                volume.require_reflink()?;
                return Err(SisError::NoStore {
                    root: volume.root().to_path_buf(),
                });
            }
            Err(e) => return Err(SisError::io("open", &dir, e)),
        }
        let store = CommonStore { volume, dir };
        store.check_marker()?;
        Ok(store)
    }

    /// Opens the store of `volume`, creating it (mode 0700) when absent. Refuses, naming the
    /// filesystem type, where extents cannot be shared.
    pub fn open_or_create(volume: Volume) -> Result<CommonStore> {
        volume.require_reflink()?;
        let dir = volume.root().join(STORE_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {
                fsync_dir(volume.root())?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(SisError::io("create the common store", &dir, e)),
        }
        let store = CommonStore { volume, dir };
        let marker = store.dir.join(MARKER_FILE);
        if !marker.exists() {
            write_atomically(&store.dir, MARKER_FILE, MARKER)?;
        }
        store.check_marker()?;
        Ok(store)
    }

    /// The store of the volume holding `path` (its mount point).
    pub fn for_path(path: &Path) -> Result<CommonStore> {
        CommonStore::open(Volume::containing(path)?)
    }

    fn check_marker(&self) -> Result<()> {
        let path = self.dir.join(MARKER_FILE);
        match std::fs::read(&path) {
            Ok(bytes) if bytes == MARKER => Ok(()),
            Ok(bytes) => {
                let at = bytes.iter().zip(MARKER).take_while(|(a, b)| a == b).count();
                Err(corrupt(
                    path.display().to_string(),
                    at,
                    "not a reel-sis-store version 1 marker",
                ))
            }
            // A store made by an interrupted first merge has no marker yet; the next
            // open_or_create writes it.
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(SisError::io("read", &path, e)),
        }
    }

    /// The volume.
    pub fn volume(&self) -> &Volume {
        &self.volume
    }

    /// The store directory (absolute).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the common-store file of `hash` lives.
    pub fn file_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(hash.file_name())
    }

    /// Describes the common-store file of `hash` (which need not exist).
    pub fn describe(&self, hash: &ContentHash, size: u64) -> CommonStoreFile {
        let name = hash.file_name();
        CommonStoreFile {
            path: self.dir.join(&name),
            relative: Path::new(STORE_DIR).join(&name),
            name,
            hash: *hash,
            size,
        }
    }

    /// The store's internal files that a backup must save with the common-store files
    /// (the marker and the link index), as absolute paths; only those that exist.
    pub fn internal_files(&self) -> Vec<PathBuf> {
        [MARKER_FILE, INDEX_FILE]
            .iter()
            .map(|n| self.dir.join(n))
            .filter(|p| p.exists())
            .collect()
    }

    /// Takes the store's exclusive lock, waiting for it.
    pub fn lock(&self) -> Result<StoreLock> {
        let file = self.lock_file()?;
        rustix::fs::flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| SisError::io("lock", &self.dir.join(LOCK_FILE), e))?;
        Ok(StoreLock { _file: file })
    }

    /// Takes the store's exclusive lock if nobody holds it.
    pub fn try_lock(&self) -> Result<Option<StoreLock>> {
        let file = self.lock_file()?;
        match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(SisError::io("lock", &self.dir.join(LOCK_FILE), e)),
        }
    }

    fn lock_file(&self) -> Result<File> {
        let path = self.dir.join(LOCK_FILE);
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| SisError::io("open", &path, e))
    }

    /// Reads the link index (empty when there is none yet). The file is only ever replaced
    /// by rename, so this is consistent even without the lock.
    pub fn read_index(&self) -> Result<Index> {
        let path = self.dir.join(INDEX_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => Index::decode(&bytes, &path.display().to_string()).map_err(|e| match e {
                SisError::Corrupt {
                    what,
                    offset,
                    reason,
                } => SisError::Corrupt {
                    what,
                    offset,
                    reason: format!(
                        "{reason} (move the file aside; the next `reel sis merge {}` rebuilds \
                         it from the links' reparse data)",
                        self.volume.root().display()
                    ),
                },
                other => other,
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::new()),
            Err(e) => Err(SisError::io("read", &path, e)),
        }
    }

    /// Replaces the link index (temp file, fsync, rename, fsync of the directory).
    pub fn save_index(&self, _lock: &StoreLock, index: &Index) -> Result<()> {
        write_atomically(&self.dir, INDEX_FILE, &index.encode())
    }

    /// The common-store files on disk, with the names that are not common-store files.
    pub fn list_files(&self) -> Result<(Vec<CommonStoreFile>, Vec<PathBuf>)> {
        let mut files = Vec::new();
        let mut other = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(|e| SisError::io("list", &self.dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| SisError::io("list", &self.dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if [MARKER_FILE, INDEX_FILE, LOCK_FILE].contains(&name.as_ref())
                || name.starts_with(".tmp-")
            {
                continue;
            }
            match ContentHash::from_file_name(&name) {
                Ok(hash) => {
                    let meta = entry
                        .metadata()
                        .map_err(|e| SisError::io("stat", &entry.path(), e))?;
                    files.push(self.describe(&hash, meta.len()));
                }
                Err(_) => other.push(entry.path()),
            }
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok((files, other))
    }

    /// Whether the file at `path` is a SIS link: it must carry reparse data naming a
    /// common-store file that exists, have that file's size, and map to exactly its blocks.
    pub fn link_state(&self, path: &Path, cache: &mut MapCache) -> Result<LinkCheck> {
        let file = match sys::open_read(path) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
                ) =>
            {
                return Ok(LinkCheck {
                    state: LinkState::Missing,
                    ino: 0,
                    size: 0,
                });
            }
            Err(e) => return Err(SisError::io("open", path, e)),
        };
        self.link_state_of(&file, path, cache)
    }

    /// [`link_state`](Self::link_state) of an open file.
    pub fn link_state_of(
        &self,
        file: &File,
        path: &Path,
        cache: &mut MapCache,
    ) -> Result<LinkCheck> {
        let meta = file.metadata().map_err(|e| SisError::io("stat", path, e))?;
        let mut check = LinkCheck {
            state: LinkState::Ordinary,
            ino: meta.ino(),
            size: meta.len(),
        };
        if !meta.is_file() {
            check.state = LinkState::Missing;
            return Ok(check);
        }
        let reparse = match sys::read_reparse(file)
            .map_err(|e| SisError::io("read the SIS xattr of", path, e))?
        {
            None => return Ok(check),
            Some(Err(e)) => {
                check.state = LinkState::Former {
                    reparse: None,
                    reason: e.to_string(),
                };
                return Ok(check);
            }
            Some(Ok(r)) => r,
        };
        let former = |reason: String| LinkState::Former {
            reparse: Some(reparse),
            reason,
        };
        if reparse.size != meta.len() {
            check.state = former(format!(
                "size is {} but the link was made at {}",
                meta.len(),
                reparse.size
            ));
            return Ok(check);
        }
        let Some(store_map) = self.store_map(&reparse.hash, cache)? else {
            check.state = former(format!(
                "its common-store file {} is gone",
                reparse.hash.file_name()
            ));
            return Ok(check);
        };
        let map = sys::extent_map(file)
            .map_err(|e| SisError::io("map the extents (FIEMAP) of", path, e))?;
        check.state = if map.same_blocks(&store_map) {
            LinkState::Link(reparse)
        } else {
            former("its extents no longer match its common-store file (written since)".into())
        };
        Ok(check)
    }

    /// The extent map of a common-store file; `None` when it does not exist.
    fn store_map(&self, hash: &ContentHash, cache: &mut MapCache) -> Result<Option<ExtentMap>> {
        if let Some(m) = cache.maps.get(hash) {
            return Ok(m.clone());
        }
        let path = self.file_path(hash);
        let map = match sys::open_read(&path) {
            Ok(f) => Some(
                sys::extent_map(&f)
                    .map_err(|e| SisError::io("map the extents (FIEMAP) of", &path, e))?,
            ),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(SisError::io("open", &path, e)),
        };
        cache.maps.insert(*hash, map.clone());
        Ok(map)
    }

    /// Forgets cached extent maps (after common-store files were removed).
    pub fn forget_map(cache: &mut MapCache, hash: &ContentHash) {
        cache.maps.remove(hash);
    }

    /// Makes the common-store file for `hash` from `source` (a file whose content hashed to
    /// `hash`): clones its extents into an unnamed file in the store, hashes that again (the
    /// source may have changed since), and only then names it, never replacing an existing
    /// one. Returns the store file, or `None` when the source no longer has that content.
    pub(crate) fn publish_clone(
        &self,
        _lock: &StoreLock,
        source: &File,
        hash: &ContentHash,
        size: u64,
        buf: &mut [u8],
    ) -> Result<Option<Published>> {
        let final_path = self.file_path(hash);
        if let Ok(existing) = sys::open_read(&final_path) {
            return Ok(Some(Published {
                file: existing,
                created: false,
            }));
        }
        let tmp = unnamed_file(&self.dir)?;
        sys::clone_whole(&tmp, source)
            .map_err(|e| SisError::io("clone (FICLONE) into", &self.dir, e))?;
        let (got, len) =
            sys::hash_file(&tmp, buf).map_err(|e| SisError::io("read back", &self.dir, e))?;
        if got != *hash || len != size {
            return Ok(None);
        }
        // A clone only adds references to extents that are already on disk, and the
        // filesystem orders it before the name and before the dedupes that follow: no fsync
        // per file (the merge ends with a syncfs of the whole filesystem).
        let created = name_unnamed(&tmp, &self.dir, &hash.file_name(), Durability::Ordered)?;
        let file = sys::open_read(&final_path).map_err(|e| SisError::io("open", &final_path, e))?;
        Ok(Some(Published { file, created }))
    }
}

/// A common-store file ready to be a dedupe source.
pub(crate) struct Published {
    pub file: File,
    /// False when it existed already.
    pub created: bool,
}

/// Streams a common-store file into a store directory during a restore: the bytes go to an
/// unnamed file; [`commit`](Self::commit) checks they hash to the name and names the file,
/// never replacing an existing one.
#[derive(Debug)]
pub struct CommonStoreWriter {
    dir: PathBuf,
    file: File,
    hasher: blake3::Hasher,
    hash: ContentHash,
    written: u64,
}

impl CommonStoreWriter {
    pub(crate) fn new(dir: &Path, hash: ContentHash) -> Result<CommonStoreWriter> {
        let path = dir.join(hash.file_name());
        if path.exists() {
            return Err(SisError::AlreadyPresent { path });
        }
        Ok(CommonStoreWriter {
            dir: dir.to_path_buf(),
            file: unnamed_file(dir)?,
            hasher: blake3::Hasher::new(),
            hash,
            written: 0,
        })
    }

    /// Checks the content against the name, then publishes the file. A mismatch is
    /// [`SisError::HashMismatch`] and leaves nothing behind.
    pub fn commit(mut self) -> Result<PathBuf> {
        let path = self.dir.join(self.hash.file_name());
        self.file
            .flush()
            .map_err(|e| SisError::io("write", &path, e))?;
        let got = ContentHash(*self.hasher.finalize().as_bytes());
        if got != self.hash {
            return Err(SisError::HashMismatch {
                path,
                actual: got.to_hex(),
            });
        }
        if !name_unnamed(
            &self.file,
            &self.dir,
            &self.hash.file_name(),
            Durability::SyncData,
        )? {
            return Err(SisError::AlreadyPresent { path });
        }
        fsync_dir(&self.dir)?;
        Ok(path)
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Write for CommonStoreWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// An unnamed (O_TMPFILE) read-only-mode file in `dir`: it vanishes if we crash before naming it.
fn unnamed_file(dir: &Path) -> Result<File> {
    let fd = rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )
    .map_err(|e| SisError::io("create an unnamed file in", dir, e))?;
    Ok(File::from(fd))
}

/// Whether naming a file must first make its data durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Written with write(2): fsync before the name exists, or a crash may leave a named
    /// file without its data.
    SyncData,
    /// Made by FICLONE from data already on disk: the filesystem orders it.
    Ordered,
}

/// Syncs (if asked) and names an unnamed file; false when the name exists already (never replaced).
fn name_unnamed(file: &File, dir: &Path, name: &str, durability: Durability) -> Result<bool> {
    let target = dir.join(name);
    if durability == Durability::SyncData {
        file.sync_all()
            .map_err(|e| SisError::io("sync", &target, e))?;
    }
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    let linked = rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        rustix::fs::CWD,
        &target,
        AtFlags::SYMLINK_FOLLOW,
    )
    .or_else(|e| {
        if e == Errno::NOENT {
            // No /proc: AT_EMPTY_PATH does the same for CAP_DAC_READ_SEARCH holders.
            rustix::fs::linkat(file, "", rustix::fs::CWD, &target, AtFlags::EMPTY_PATH)
        } else {
            Err(e)
        }
    });
    match linked {
        Ok(()) => {
            // The mode was fixed at creation (0444); make sure no umask made it stricter than
            // the owner can read.
            let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o444));
            Ok(true)
        }
        Err(Errno::EXIST) => Ok(false),
        Err(e) => Err(SisError::io("name", &target, e)),
    }
}

/// Writes `dir/name` atomically: temp file, fsync, rename, fsync of the directory.
pub(crate) fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".tmp-{name}-{}", std::process::id()));
    let target = dir.join(name);
    let result = (|| -> io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &target)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(SisError::io("write", &target, e));
    }
    fsync_dir(dir)
}

pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| SisError::io("sync", dir, e))
}
