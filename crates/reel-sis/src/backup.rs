//! The SIS backup API, with the behaviour of the Windows functions.
//!
//! | Windows | here |
//! |---|---|
//! | SisCreateBackupStructure | [`BackupStructure::open`] (+ [`common_store_root`](BackupStructure::common_store_root), [`internal_files`](BackupStructure::internal_files)) |
//! | SisCSFilesToBackupForLink | [`BackupStructure::files_to_back_up_for_link`] |
//! | SisFreeBackupStructure, SisFreeAllocatedMemory | `Drop` |
//! | SisCreateRestoreStructure | [`RestoreStructure::open`] |
//! | SisRestoredLink | [`RestoreStructure::restored_link`] |
//! | SisRestoredCommonStoreFile | [`RestoreStructure::restored_common_store_file`] (or [`RestoreStructure::write_common_store_file`], which calls it) |
//! | SisFreeRestoreStructure | [`RestoreStructure::finish`] |
//!
//! A backup asks each link's reparse data (found with
//! [`BackupStructure::link_reparse`]) which common-store files to save: each is named at most
//! once per backup structure. A restore reports each restored link; it is asked only for the
//! common-store files that are neither on disk already nor asked for before, never deletes or
//! overwrites one, and `finish` re-clones every restored link from its common-store file.
//! On a filesystem without reflinks the restore works the same way but keeps the common-store
//! files in a staging directory and gives every link a full copy ([`RestoreMode::FullCopies`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Result, SisError};
use crate::reparse::{ContentHash, ReparseData};
use crate::store::{
    CommonStore, CommonStoreFile, CommonStoreWriter, LinkState, MapCache, STORE_DIR,
};
use crate::sys;
use crate::volume::Volume;

/// What `files_to_back_up_for_link` answers.
#[derive(Clone, Debug)]
pub struct LinkBackup<C> {
    /// Common-store files to save with this link (empty when an earlier link named them).
    pub files: Vec<CommonStoreFile>,
    /// The context the caller gave with the first link of the same common-store file, when
    /// this is not the first (Windows' `matchingFileContext`).
    pub matching_context: Option<C>,
}

/// A backup pass over one volume (SisCreateBackupStructure). `C` is the caller's context for
/// a link (e.g. its archive member name); it is handed back for later links of the same
/// common-store file.
#[derive(Debug)]
pub struct BackupStructure<C = ()> {
    store: CommonStore,
    returned: HashMap<ContentHash, Option<C>>,
    cache: MapCache,
}

impl<C: Clone> BackupStructure<C> {
    /// Opens the backup structure of the volume rooted at `volume_root`.
    pub fn open(volume_root: &Path) -> Result<BackupStructure<C>> {
        let store = CommonStore::open(Volume::at_root(volume_root)?)?;
        Ok(BackupStructure {
            store,
            returned: HashMap::new(),
            cache: MapCache::default(),
        })
    }

    /// Like [`open`](Self::open), but `None` when the volume has no common store or cannot
    /// have one (no reflinks): then there are no SIS links and every file is backed up as an
    /// ordinary file.
    pub fn open_if_any(volume_root: &Path) -> Result<Option<BackupStructure<C>>> {
        match BackupStructure::open(volume_root) {
            Ok(b) => Ok(Some(b)),
            Err(SisError::NoStore { .. } | SisError::NoReflink { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The store.
    pub fn store(&self) -> &CommonStore {
        &self.store
    }

    /// The common store's directory (`<root>/.sis-common-store`).
    pub fn common_store_root(&self) -> &Path {
        self.store.dir()
    }

    /// The store's internal files to save whatever links are saved (absolute paths).
    pub fn internal_files(&self) -> Vec<PathBuf> {
        self.store.internal_files()
    }

    /// The reparse data of `path` if it is a SIS link to be saved as one; `None` when it must
    /// be saved as an ordinary file (no reparse data, or written since it was linked).
    pub fn link_reparse(&mut self, path: &Path) -> Result<Option<ReparseData>> {
        match self.store.link_state(path, &mut self.cache)?.state {
            LinkState::Link(r) => Ok(Some(r)),
            _ => Ok(None),
        }
    }

    /// The common-store files this link needs that this structure has not returned before
    /// (SisCSFilesToBackupForLink). Call it once per link saved.
    pub fn files_to_back_up_for_link(
        &mut self,
        reparse: &ReparseData,
        this_context: Option<C>,
    ) -> Result<LinkBackup<C>> {
        if let Some(ctx) = self.returned.get(&reparse.hash) {
            return Ok(LinkBackup {
                files: Vec::new(),
                matching_context: ctx.clone(),
            });
        }
        let file = self.store.describe(&reparse.hash, reparse.size);
        let meta = std::fs::metadata(&file.path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SisError::MissingCommonStoreFile {
                    path: file.path.clone(),
                }
            } else {
                SisError::io("stat", &file.path, e)
            }
        })?;
        if meta.len() != reparse.size {
            return Err(SisError::Invalid(format!(
                "common-store file {} has {} bytes but the link says {}",
                file.path.display(),
                meta.len(),
                reparse.size
            )));
        }
        self.returned.insert(reparse.hash, this_context);
        Ok(LinkBackup {
            files: vec![file],
            matching_context: None,
        })
    }
}

/// How a restore re-creates the links.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RestoreMode {
    /// Links share their common-store file's extents (btrfs, XFS with reflink, bcachefs).
    Reflinks,
    /// The filesystem cannot share extents: every link gets its own full copy.
    FullCopies,
}

/// A link that `finish` could not re-create.
#[derive(Clone, Debug, Serialize)]
pub struct UnrestoredLink {
    pub path: PathBuf,
    pub common_store_file: String,
    pub reason: String,
}

/// What `finish` did.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub mode: RestoreMode,
    /// Why full copies (`None` with reflinks).
    pub mode_reason: Option<String>,
    pub fs_type: String,
    /// Links re-created (as reflinks or as full copies, per `mode`).
    pub links_restored: u64,
    pub bytes_in_links: u64,
    /// Common-store files written by this restore.
    pub common_store_files_restored: u64,
    /// Links whose common-store file never came (or could not be used): left as written.
    pub unrestored: Vec<UnrestoredLink>,
}

/// A restore onto one volume (SisCreateRestoreStructure … SisFreeRestoreStructure).
#[derive(Debug)]
pub struct RestoreStructure {
    volume: Volume,
    mode: RestoreMode,
    /// Where common-store files go: the store, or a staging directory for full copies.
    files_dir: PathBuf,
    store: Option<CommonStore>,
    mode_reason: Option<String>,
    internal_to_restore: Vec<PathBuf>,
    asked: HashSet<ContentHash>,
    written: HashSet<ContentHash>,
    links: Vec<(PathBuf, ReparseData)>,
    finished: bool,
}

impl RestoreStructure {
    /// Opens the restore structure of the volume rooted at `volume_root`: the common store
    /// (created when absent) on a filesystem with reflinks, else a staging directory under
    /// the root for full copies.
    pub fn open(volume_root: &Path) -> Result<RestoreStructure> {
        let volume = Volume::at_root(volume_root)?;
        match volume.require_reflink() {
            Ok(()) => RestoreStructure::with_store(volume),
            Err(e @ SisError::NoReflink { .. }) => {
                let reason = e.to_string();
                let parent = volume.root().to_path_buf();
                RestoreStructure::with_staging(volume, &parent, reason)
            }
            Err(e) => Err(e),
        }
    }

    /// The restore structure for restoring into `target_dir` (what `reel restore --to`
    /// needs): the volume is the one holding `target_dir`. Where the common store cannot be
    /// used — no reflinks, or no permission to create it at the volume root — the links are
    /// restored as full copies, staged in `target_dir`, and [`mode_reason`](Self::mode_reason)
    /// says why.
    pub fn open_for(target_dir: &Path) -> Result<RestoreStructure> {
        let volume = Volume::containing(target_dir)?;
        let reason = match volume.require_reflink() {
            Ok(()) => match RestoreStructure::with_store(volume.clone()) {
                Ok(rs) => return Ok(rs),
                Err(e @ SisError::Io { .. }) => e.to_string(),
                Err(e) => return Err(e),
            },
            // No reflinks, or the probe could not even create a file at the root.
            Err(e @ (SisError::NoReflink { .. } | SisError::Io { .. })) => e.to_string(),
            Err(e) => return Err(e),
        };
        let target = std::fs::canonicalize(target_dir)
            .map_err(|e| SisError::io("resolve", target_dir, e))?;
        RestoreStructure::with_staging(volume, &target, reason)
    }

    fn with_store(volume: Volume) -> Result<RestoreStructure> {
        let existing_dir = volume.root().join(STORE_DIR);
        let internal_to_restore: Vec<PathBuf> = [crate::store::INDEX_FILE]
            .iter()
            .map(|n| existing_dir.join(n))
            .filter(|p| !p.exists())
            .collect();
        let store = CommonStore::open_or_create(volume.clone())?;
        Ok(RestoreStructure {
            files_dir: store.dir().to_path_buf(),
            store: Some(store),
            volume,
            mode: RestoreMode::Reflinks,
            mode_reason: None,
            internal_to_restore,
            asked: HashSet::new(),
            written: HashSet::new(),
            links: Vec::new(),
            finished: false,
        })
    }

    fn with_staging(volume: Volume, parent: &Path, reason: String) -> Result<RestoreStructure> {
        let staging = parent.join(format!(".sis-restore-staging-{}", std::process::id()));
        std::fs::create_dir_all(&staging)
            .map_err(|e| SisError::io("create the staging directory", &staging, e))?;
        std::fs::set_permissions(
            &staging,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .map_err(|e| SisError::io("protect", &staging, e))?;
        Ok(RestoreStructure {
            files_dir: staging,
            store: None,
            volume,
            mode: RestoreMode::FullCopies,
            mode_reason: Some(reason),
            internal_to_restore: Vec::new(),
            asked: HashSet::new(),
            written: HashSet::new(),
            links: Vec::new(),
            finished: false,
        })
    }

    /// Reflinks, or full copies (and why: the filesystem type).
    pub fn mode(&self) -> RestoreMode {
        self.mode
    }

    /// Why links are restored as full copies (`None` with reflinks): say it to the user.
    pub fn mode_reason(&self) -> Option<&str> {
        self.mode_reason.as_deref()
    }

    /// Whether a common-store file must be written: it is neither on disk nor written by this
    /// restore. For a sequential medium, where the common-store file comes before the links
    /// that need it (a tar hard link's target precedes it), ask this when meeting it.
    pub fn needs_common_store_file(&self, name: &str) -> Result<bool> {
        let hash = ContentHash::from_file_name(name)?;
        Ok(!self.written.contains(&hash) && !self.files_dir.join(hash.file_name()).exists())
    }

    /// The filesystem type of the target.
    pub fn fs_type(&self) -> &str {
        self.volume.fs_type()
    }

    /// Where common-store files are to be written (the common store, or the staging
    /// directory in full-copy mode).
    pub fn common_store_root(&self) -> &Path {
        &self.files_dir
    }

    /// The store's internal files to restore: only those absent on disk (empty in full-copy
    /// mode). An existing store's bookkeeping is never replaced. Restore them before
    /// [`finish`](Self::finish), which adds the restored links to the index.
    pub fn internal_files_to_restore(&self) -> &[PathBuf] {
        &self.internal_to_restore
    }

    /// Reports a restored link (SisRestoredLink). Returns the common-store files to restore
    /// for it: those neither on disk already nor returned before.
    pub fn restored_link(
        &mut self,
        path: &Path,
        reparse: &ReparseData,
    ) -> Result<Vec<CommonStoreFile>> {
        let path = absolute(path)?;
        self.volume.relative(&path)?;
        self.links.push((path, *reparse));
        let target = self.files_dir.join(reparse.hash.file_name());
        if self.asked.contains(&reparse.hash) || target.exists() {
            return Ok(Vec::new());
        }
        self.asked.insert(reparse.hash);
        let name = reparse.hash.file_name();
        Ok(vec![CommonStoreFile {
            relative: Path::new(STORE_DIR).join(&name),
            path: target,
            name,
            hash: reparse.hash,
            size: reparse.size,
        }])
    }

    /// Writes a common-store file the restore was asked for: stream its bytes into the
    /// returned writer and `commit` it (which checks the content against the name), then
    /// call [`restored_common_store_file`](Self::restored_common_store_file).
    pub fn write_common_store_file(&mut self, name: &str) -> Result<CommonStoreWriter> {
        let hash = ContentHash::from_file_name(name)?;
        CommonStoreWriter::new(&self.files_dir, hash)
    }

    /// Reports a common-store file as restored (SisRestoredCommonStoreFile). It must be in
    /// place; its content is checked against its name.
    pub fn restored_common_store_file(&mut self, name: &str) -> Result<()> {
        let hash = ContentHash::from_file_name(name)?;
        let path = self.files_dir.join(name);
        let file = sys::open_read(&path).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                SisError::MissingCommonStoreFile { path: path.clone() }
            } else {
                SisError::io("open", &path, e)
            }
        })?;
        let mut buf = vec![0u8; 1 << 20];
        let (actual, _) =
            sys::hash_file(&file, &mut buf).map_err(|e| SisError::io("read", &path, e))?;
        if actual != hash {
            return Err(SisError::HashMismatch {
                path,
                actual: actual.to_hex(),
            });
        }
        self.written.insert(hash);
        Ok(())
    }

    /// Re-creates every restored link from its common-store file (SisFreeRestoreStructure):
    /// a reflink of it (or a full copy in full-copy mode), keeping the link's owner, mode and
    /// times, with its reparse data, recorded in the index. Links whose common-store file
    /// never came are reported and left as they were.
    pub fn finish(mut self) -> Result<RestoreReport> {
        self.finished = true;
        let mut report = RestoreReport {
            mode: self.mode,
            mode_reason: self.mode_reason.clone(),
            fs_type: self.volume.fs_type().to_string(),
            links_restored: 0,
            bytes_in_links: 0,
            common_store_files_restored: self.written.len() as u64,
            unrestored: Vec::new(),
        };
        let lock = match &self.store {
            Some(s) => Some(s.lock()?),
            None => None,
        };
        let mut index = match &self.store {
            Some(s) => Some(s.read_index()?),
            None => None,
        };
        let mut cache = MapCache::default();
        let links = std::mem::take(&mut self.links);
        for (path, reparse) in links {
            let src_path = self.files_dir.join(reparse.hash.file_name());
            let src = match sys::open_read(&src_path) {
                Ok(f) => f,
                Err(e) => {
                    report.unrestored.push(UnrestoredLink {
                        path,
                        common_store_file: reparse.hash.file_name(),
                        reason: if e.raw_os_error() == Some(libc::ENOENT) {
                            "its common-store file was never restored".into()
                        } else {
                            format!("cannot open its common-store file: {e}")
                        },
                    });
                    continue;
                }
            };
            match self.recreate(&path, &src, &reparse) {
                Ok(ino) => {
                    report.links_restored += 1;
                    report.bytes_in_links += reparse.size;
                    if let (Some(store), Some(index)) = (&self.store, index.as_mut()) {
                        // Record it only if it really is a link now.
                        if let Ok(check) = store.link_state(&path, &mut cache)
                            && matches!(check.state, LinkState::Link(_))
                            && let Ok(rel) = self.volume.relative(&path)
                        {
                            index.set_link(reparse.hash, reparse.size, rel, ino);
                        }
                    }
                }
                Err(reason) => report.unrestored.push(UnrestoredLink {
                    path,
                    common_store_file: reparse.hash.file_name(),
                    reason,
                }),
            }
        }
        if let (Some(store), Some(lock), Some(index)) = (&self.store, &lock, &index) {
            store.save_index(lock, index)?;
        }
        drop(lock);
        self.remove_staging();
        Ok(report)
    }

    /// Makes `path` a reflink (or full copy) of `src`, keeping its metadata.
    fn recreate(
        &self,
        path: &Path,
        src: &File,
        reparse: &ReparseData,
    ) -> std::result::Result<u64, String> {
        let src_len = src.metadata().map_err(|e| e.to_string())?.len();
        if src_len != reparse.size {
            return Err(format!(
                "its common-store file has {src_len} bytes, the link says {}",
                reparse.size
            ));
        }
        let meta = std::fs::symlink_metadata(path)
            .map_err(|e| format!("cannot stat the restored link: {e}"))?;
        if !meta.is_file() {
            return Err("the restored link is not a regular file".into());
        }
        let times = [rustix::fs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: meta.atime(),
                tv_nsec: meta.atime_nsec() as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: meta.mtime(),
                tv_nsec: meta.mtime_nsec() as _,
            },
        }];
        let dest = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("cannot open the restored link for writing: {e}"))?;
        match self.mode {
            RestoreMode::Reflinks => {
                sys::clone_whole(&dest, src)
                    .map_err(|e| format!("FICLONE from the common-store file: {e}"))?;
                sys::write_reparse(&dest, reparse)
                    .map_err(|e| format!("cannot set the SIS xattr: {e}"))?;
            }
            RestoreMode::FullCopies => {
                dest.set_len(0).map_err(|e| e.to_string())?;
                copy_all(src, &dest).map_err(|e| format!("cannot copy the content: {e}"))?;
                // A full copy is an ordinary file: no reparse data.
                let _ = sys::remove_reparse(&dest);
            }
        }
        dest.sync_all().map_err(|e| e.to_string())?;
        rustix::fs::futimens(&dest, &times[0])
            .map_err(|e| format!("cannot restore the times: {e}"))?;
        Ok(meta.ino())
    }

    fn remove_staging(&self) {
        if self.mode == RestoreMode::FullCopies {
            let _ = std::fs::remove_dir_all(&self.files_dir);
        }
    }
}

use std::os::unix::fs::OpenOptionsExt;

impl Drop for RestoreStructure {
    fn drop(&mut self) {
        if !self.finished {
            self.remove_staging();
        }
    }
}

fn copy_all(src: &File, dest: &File) -> std::io::Result<()> {
    let len = src.metadata()?.len();
    let mut off_in = 0u64;
    let mut off_out = 0u64;
    while off_in < len {
        let want = (len - off_in).min(1 << 30) as usize;
        let n =
            rustix::fs::copy_file_range(src, Some(&mut off_in), dest, Some(&mut off_out), want)?;
        if n == 0 {
            return Err(std::io::Error::other(
                "the common-store file shrank while copying",
            ));
        }
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| SisError::Invalid(format!("{} names no file", path.display())))?;
    let parent = std::fs::canonicalize(parent).map_err(|e| SisError::io("resolve", parent, e))?;
    Ok(parent.join(name))
}
