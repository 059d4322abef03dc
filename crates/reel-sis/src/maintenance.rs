//! `status`, `gc` and `verify`: looking after a common store.

use std::collections::{BTreeSet, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::error::{Result, SisError};
use crate::index::Index;
use crate::reparse::ContentHash;
use crate::store::{CommonStore, LinkState, MapCache, STORE_DIR, StoreLock};
use crate::sys;

/// A common-store file that nothing recorded links to is removed by `gc` only after this
/// long (it may belong to a merge or restore that has not recorded its links yet) and only
/// when its extents are not shared with any file.
pub const UNRECORDED_GRACE: Duration = Duration::from_secs(3600);

/// What `reel sis status` shows.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub root: PathBuf,
    pub fs_type: String,
    pub common_store: PathBuf,
    pub common_store_files: u64,
    pub common_store_bytes: u64,
    /// Links in the index.
    pub links: u64,
    /// Recorded links whose path still holds the recorded inode.
    pub links_present: u64,
    /// Recorded links that are gone (`gc` forgets them).
    pub links_missing: u64,
    /// Logical bytes of the present links (what they would take as separate copies).
    pub link_bytes: u64,
    /// Bytes saved by sharing: each common-store file's size times (present links − 1),
    /// less the size of common-store files no link shares.
    pub bytes_saved: i64,
    /// Common-store files with no present link (`gc` removes them).
    pub unreferenced_common_store_files: u64,
}

/// Counts links and bytes from the index, checking only that each link's path still holds
/// its inode (cheap; `verify` checks extents).
pub fn status(store: &CommonStore) -> Result<StatusReport> {
    let index = store.read_index()?;
    let (files, _) = store.list_files()?;
    let root = store.volume().root();
    let mut r = StatusReport {
        root: root.to_path_buf(),
        fs_type: store.volume().fs_type().to_string(),
        common_store: store.dir().to_path_buf(),
        common_store_files: files.len() as u64,
        common_store_bytes: files.iter().map(|f| f.size).sum(),
        links: index.link_count() as u64,
        links_present: 0,
        links_missing: 0,
        link_bytes: 0,
        bytes_saved: 0,
        unreferenced_common_store_files: 0,
    };
    for f in &files {
        let present = index
            .get(&f.hash)
            .map(|e| {
                e.links
                    .iter()
                    .filter(|l| {
                        std::fs::symlink_metadata(root.join(&l.path))
                            .is_ok_and(|m| m.is_file() && m.ino() == l.ino)
                    })
                    .count() as u64
            })
            .unwrap_or(0);
        let recorded = index.get(&f.hash).map_or(0, |e| e.links.len() as u64);
        r.links_present += present;
        r.links_missing += recorded - present;
        r.link_bytes += present * f.size;
        if present == 0 {
            r.unreferenced_common_store_files += 1;
            r.bytes_saved -= f.size as i64;
        } else {
            r.bytes_saved += ((present - 1) * f.size) as i64;
        }
    }
    // Links recorded for common-store files that are not on disk at all.
    let on_disk: HashSet<ContentHash> = files.iter().map(|f| f.hash).collect();
    for (h, e) in index.entries() {
        if !on_disk.contains(h) {
            r.links_missing += e.links.len() as u64;
        }
    }
    Ok(r)
}

/// A recorded link that is no longer one.
#[derive(Clone, Debug, Serialize)]
pub struct DroppedLink {
    pub path: PathBuf,
    pub common_store_file: String,
    pub reason: String,
}

/// A common-store file `gc` removed or kept.
#[derive(Clone, Debug, Serialize)]
pub struct StoreFileNote {
    pub name: String,
    pub size: u64,
    pub reason: String,
}

/// What `reel sis gc` did.
#[derive(Debug, Default, Serialize)]
pub struct GcReport {
    pub links_checked: u64,
    pub links_dropped: Vec<DroppedLink>,
    pub removed: Vec<StoreFileNote>,
    pub bytes_removed: u64,
    /// Common-store files no recorded link shares that were kept (too young, or their
    /// extents are still shared by some file).
    pub kept: Vec<StoreFileNote>,
    /// Names in the store directory that are not reel's.
    pub foreign: Vec<PathBuf>,
    /// Free space gained, measured with statvfs after syncing.
    pub bytes_reclaimed: i64,
}

/// Checks every recorded link (path, inode, reparse data, extents), forgets the ones that are
/// no longer links (removing their stale reparse data), and removes common-store files no
/// link shares any more.
pub fn gc(store: &CommonStore) -> Result<GcReport> {
    let root = store.volume().root().to_path_buf();
    let lock = store.lock()?;
    let free_before = sys::measured_free_bytes(&root)
        .map_err(|e| SisError::io("measure free space on", &root, e))?;
    let mut index = store.read_index()?;
    let mut report = GcReport::default();
    let mut cache = MapCache::default();
    let hashes: Vec<ContentHash> = index.entries().map(|(h, _)| *h).collect();
    let mut dirty = false;
    for hash in hashes {
        let links = index
            .get(&hash)
            .map(|e| e.links.clone())
            .unwrap_or_default();
        for rec in links {
            report.links_checked += 1;
            let abs = root.join(&rec.path);
            let verdict = recheck(store, &mut index, &hash, &abs, &rec.path, &mut cache)?;
            let reason = match verdict {
                Recheck::Keep => continue,
                // Already recorded under the other common-store file by `recheck`.
                Recheck::Moved(reason) => reason,
                Recheck::Drop(reason) => {
                    index.remove_link(&rec.path);
                    reason
                }
            };
            dirty = true;
            report.links_dropped.push(DroppedLink {
                path: rec.path.clone(),
                common_store_file: hash.file_name(),
                reason,
            });
        }
        dirty |= remove_if_unshared(
            store,
            &lock,
            &mut index,
            &hash,
            &mut report.removed,
            &mut cache,
        )?;
    }
    if dirty {
        store.save_index(&lock, &index)?;
    }
    report.bytes_removed = report.removed.iter().map(|n| n.size).sum();

    // Common-store files with no record at all.
    let (files, foreign) = store.list_files()?;
    report.foreign = foreign;
    let now = SystemTime::now();
    for f in files {
        if index.get(&f.hash).is_some_and(|e| !e.links.is_empty()) {
            continue;
        }
        let meta =
            std::fs::symlink_metadata(&f.path).map_err(|e| SisError::io("stat", &f.path, e))?;
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        let shared = sys::open_read(&f.path)
            .and_then(|file| sys::extent_map(&file))
            .map(|m| m.any_shared)
            .unwrap_or(true);
        if age < UNRECORDED_GRACE {
            report.kept.push(StoreFileNote {
                name: f.name,
                size: f.size,
                reason: format!(
                    "no recorded link, but only {}s old (a merge or restore may be about to \
                     record its links)",
                    age.as_secs()
                ),
            });
        } else if shared {
            report.kept.push(StoreFileNote {
                name: f.name,
                size: f.size,
                reason: "no recorded link, but its extents are shared with some file (a \
                         renamed link? `reel sis merge` re-records it)"
                    .into(),
            });
        } else {
            std::fs::remove_file(&f.path).map_err(|e| SisError::io("remove", &f.path, e))?;
            report.bytes_removed += f.size;
            report.removed.push(StoreFileNote {
                name: f.name,
                size: f.size,
                reason: "no link records it and nothing shares its extents".into(),
            });
        }
    }
    crate::store::fsync_dir(store.dir())?;
    drop(lock);
    let free_after = sys::measured_free_bytes(&root)
        .map_err(|e| SisError::io("measure free space on", &root, e))?;
    report.bytes_reclaimed = free_after as i64 - free_before as i64;
    Ok(report)
}

/// What became of a recorded link.
pub(crate) enum Recheck {
    /// Still a link of the same common-store file (its inode re-recorded).
    Keep,
    /// Now a link of another common-store file, and recorded there.
    Moved(String),
    /// Not a link any more: forget it (why).
    Drop(String),
}

/// Re-checks one recorded link of `hash`. A path that is now a link of another common-store
/// file is recorded there; a former link loses its stale reparse data.
pub(crate) fn recheck(
    store: &CommonStore,
    index: &mut Index,
    hash: &ContentHash,
    abs: &Path,
    rel: &Path,
    cache: &mut MapCache,
) -> Result<Recheck> {
    let check = store.link_state(abs, cache)?;
    Ok(match check.state {
        LinkState::Link(r) if r.hash == *hash => {
            index.set_link(r.hash, r.size, rel.to_path_buf(), check.ino);
            Recheck::Keep
        }
        LinkState::Link(r) => {
            index.set_link(r.hash, r.size, rel.to_path_buf(), check.ino);
            Recheck::Moved(format!("now a link of {}", r.hash.file_name()))
        }
        LinkState::Missing => Recheck::Drop("deleted".into()),
        LinkState::Ordinary => Recheck::Drop("an ordinary file now (no SIS reparse data)".into()),
        LinkState::Former { reason, .. } => {
            if let Ok(f) = sys::open_dedupe_dest(abs) {
                let _ = sys::remove_reparse(&f);
            }
            Recheck::Drop(format!("an ordinary file now: {reason}"))
        }
    })
}

/// Removes the common-store file of `hash` when the index records no link of it.
pub(crate) fn remove_if_unshared(
    store: &CommonStore,
    _lock: &StoreLock,
    index: &mut Index,
    hash: &ContentHash,
    removed: &mut Vec<StoreFileNote>,
    cache: &mut MapCache,
) -> Result<bool> {
    let Some(entry) = index.get(hash) else {
        return Ok(false);
    };
    if !entry.links.is_empty() {
        return Ok(false);
    }
    let size = entry.size;
    let path = store.file_path(hash);
    match std::fs::remove_file(&path) {
        Ok(()) => removed.push(StoreFileNote {
            name: hash.file_name(),
            size,
            reason: "its last link is gone".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SisError::io("remove", &path, e)),
    }
    index.remove_entry(hash);
    CommonStore::forget_map(cache, hash);
    Ok(true)
}

/// A link `verify` found in a state worth reporting.
#[derive(Clone, Debug, Serialize)]
pub struct LinkNote {
    pub path: PathBuf,
    pub reason: String,
}

/// A damaged common-store file.
#[derive(Clone, Debug, Serialize)]
pub struct DamagedFile {
    pub name: String,
    pub actual_hash: String,
}

/// What `reel sis verify` found.
#[derive(Debug, Default, Serialize)]
pub struct VerifyReport {
    pub links_checked: u64,
    pub links_ok: u64,
    /// Recorded links that are ordinary files now (written since): treated as such.
    pub ordinary_now: Vec<LinkNote>,
    /// Recorded links that are gone.
    pub missing: Vec<PathBuf>,
    /// Links found under the path that the index does not record (renamed or restored).
    pub unrecorded_links: Vec<PathBuf>,
    pub common_store_files_checked: u64,
    pub bytes_hashed: u64,
    /// Common-store files whose content does not hash to their name: data integrity failure.
    pub damaged: Vec<DamagedFile>,
    /// Common-store files that recorded links need but the store lacks.
    pub missing_common_store_files: Vec<String>,
}

impl VerifyReport {
    /// True when nothing is damaged (ordinary-now links are not damage).
    pub fn intact(&self) -> bool {
        self.damaged.is_empty()
    }
}

/// Checks that every recorded link under `under` still maps to exactly its common-store
/// file's blocks (else it is reported as an ordinary file), re-hashes the common-store files
/// those links use (every one when `under` is the volume root), and walks `under` for links
/// the index does not know. Changes nothing.
pub fn verify(
    store: &CommonStore,
    under: &Path,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifyReport> {
    let root = store.volume().root().to_path_buf();
    let under = std::fs::canonicalize(under).map_err(|e| SisError::io("resolve", under, e))?;
    let rel_under = store.volume().relative(&under)?;
    let whole_volume = rel_under.as_os_str().is_empty();
    let index = store.read_index()?;
    let mut report = VerifyReport::default();
    let mut cache = MapCache::default();
    let mut needed: BTreeSet<ContentHash> = BTreeSet::new();
    let mut recorded: HashSet<PathBuf> = HashSet::new();

    for (hash, entry) in index.entries() {
        for rec in &entry.links {
            if !rec.path.starts_with(&rel_under) {
                continue;
            }
            recorded.insert(rec.path.clone());
            needed.insert(*hash);
            report.links_checked += 1;
            let abs = root.join(&rec.path);
            let check = store.link_state(&abs, &mut cache)?;
            match check.state {
                LinkState::Link(r) if r.hash == *hash => report.links_ok += 1,
                LinkState::Link(r) => report.ordinary_now.push(LinkNote {
                    path: abs,
                    reason: format!("now a link of {} (not recorded so)", r.hash.file_name()),
                }),
                LinkState::Missing => report.missing.push(abs),
                LinkState::Ordinary => report.ordinary_now.push(LinkNote {
                    path: abs,
                    reason: "no SIS reparse data".into(),
                }),
                LinkState::Former { reason, .. } => {
                    report.ordinary_now.push(LinkNote { path: abs, reason })
                }
            }
        }
    }

    // Common-store files: the content must hash to the name.
    let (files, _) = store.list_files()?;
    let on_disk: HashSet<ContentHash> = files.iter().map(|f| f.hash).collect();
    for h in &needed {
        if !on_disk.contains(h) {
            report.missing_common_store_files.push(h.file_name());
        }
    }
    let mut buf = vec![0u8; 1 << 20];
    for f in files
        .iter()
        .filter(|f| whole_volume || needed.contains(&f.hash))
    {
        let file = sys::open_read(&f.path).map_err(|e| SisError::io("open", &f.path, e))?;
        let (actual, len) =
            sys::hash_file(&file, &mut buf).map_err(|e| SisError::io("read", &f.path, e))?;
        progress(len);
        report.bytes_hashed += len;
        report.common_store_files_checked += 1;
        if actual != f.hash {
            report.damaged.push(DamagedFile {
                name: f.name.clone(),
                actual_hash: actual.to_hex(),
            });
        }
    }

    // Links the index does not know (renamed, restored by another tool, index lost).
    let store_dir = root.join(STORE_DIR);
    for entry in walkdir::WalkDir::new(&under)
        .same_file_system(true)
        .into_iter()
        .filter_entry(|e| e.path() != store_dir)
        .flatten()
    {
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = match entry.path().strip_prefix(&root) {
            Ok(r) => r.to_path_buf(),
            Err(_) => continue,
        };
        if recorded.contains(&rel) {
            continue;
        }
        let mut buf = [0u8; 64];
        let has_xattr = matches!(
            rustix::fs::lgetxattr(entry.path(), sys::REPARSE_XATTR, &mut buf[..]),
            Ok(_) | Err(rustix::io::Errno::RANGE)
        );
        if !has_xattr {
            continue;
        }
        if let LinkState::Link(_) = store.link_state(entry.path(), &mut cache)?.state {
            report.unrecorded_links.push(entry.into_path());
        }
    }
    Ok(report)
}
