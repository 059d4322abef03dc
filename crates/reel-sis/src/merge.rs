//! Merge (what Windows calls the groveler): find duplicate files and turn them into SIS links.
//!
//! Two phases, both public so a caller can see the plan before anything changes:
//!
//! 1. [`scan`]: walk the tree (one filesystem, regular files of at least `min_size` bytes,
//!    each inode once), group by size, then by a partial hash (first and last 4 KiB), then by
//!    the full BLAKE3 hash. Only files that still have a partner are read further; files are
//!    streamed through a fixed buffer per thread, so memory is bounded by the number of files,
//!    never by their contents. Files that already are links contribute their hash without
//!    being read.
//! 2. [`ScanPlan::link`]: for each group, the common-store file is made by cloning one member
//!    into an unnamed file in the store and hashing that clone again (so a member written since
//!    the scan cannot put wrong bytes under a content name); every other member is then linked
//!    with FIDEDUPERANGE from the common-store file: the kernel compares the bytes under its
//!    own locks and shares the extents only when they are identical, so a file changed
//!    meanwhile is left exactly as its writer left it.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::error::{Result, SisError};
use crate::reparse::{ContentHash, ReparseData};
use crate::store::{CommonStore, LinkState, MapCache, STORE_DIR};
use crate::sys::{self, Dedupe};
use crate::volume::Volume;

/// Files up to this size are hashed whole at once (a partial hash would read them anyway).
const SMALL_FILE: u64 = 64 << 10;
const PARTIAL_BYTES: u64 = 4 << 10;
const READ_BUF: usize = 1 << 20;
/// Index checkpoints during a long link phase, so a crash loses little bookkeeping.
const CHECKPOINT_LINKS: usize = 20_000;

/// How to merge.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    /// Smaller files are left alone (they cannot free a whole block).
    pub min_size: u64,
    /// Hashing threads.
    pub threads: usize,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            min_size: 4096,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .min(8),
        }
    }
}

/// A file that could not be handled, and why.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    pub path: PathBuf,
    pub error: String,
}

/// Counters of the scan.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ScanStats {
    /// Regular files seen (each inode once).
    pub files: u64,
    /// Bytes in those files.
    pub bytes: u64,
    /// Names skipped because their inode was seen under another name (hard links).
    pub hard_links: u64,
    /// Files below `min_size`.
    pub small_files: u64,
    /// Files that shared their size with another (read further).
    pub size_candidates: u64,
    /// Files whose whole content was hashed.
    pub fully_hashed: u64,
    /// Bytes read for hashing.
    pub bytes_read: u64,
    pub seconds: f64,
}

/// One member of a duplicate group.
#[derive(Clone, Debug, Serialize)]
pub struct Member {
    pub path: PathBuf,
    pub ino: u64,
    /// Already a SIS link of this group's common-store file.
    pub linked: bool,
}

/// Files with identical content (by BLAKE3), to be linked to one common-store file.
#[derive(Clone, Debug, Serialize)]
pub struct DuplicateGroup {
    #[serde(serialize_with = "ser_hash")]
    pub hash: ContentHash,
    pub size: u64,
    pub members: Vec<Member>,
    /// The common-store file exists already.
    pub in_store: bool,
}

fn ser_hash<S: serde::Serializer>(h: &ContentHash, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&h.to_hex())
}

impl DuplicateGroup {
    /// Bytes a merge of this group can free: every unlinked copy, less the one that must
    /// stay when the common-store file is new.
    pub fn reclaimable_bytes(&self) -> u64 {
        let unlinked = self.members.iter().filter(|m| !m.linked).count() as u64;
        let keep = u64::from(!self.in_store && !self.members.iter().any(|m| m.linked));
        self.size * unlinked.saturating_sub(keep)
    }
}

/// The result of [`scan`]: what a merge would link.
#[derive(Debug, Serialize)]
pub struct ScanPlan {
    pub root: PathBuf,
    pub path: PathBuf,
    pub groups: Vec<DuplicateGroup>,
    pub stats: ScanStats,
    pub problems: Vec<Problem>,
}

impl ScanPlan {
    /// Bytes a merge can free (estimate; [`MergeReport::bytes_reclaimed`] is measured).
    pub fn reclaimable_bytes(&self) -> u64 {
        self.groups
            .iter()
            .map(DuplicateGroup::reclaimable_bytes)
            .sum()
    }
}

/// What a merge did.
#[derive(Debug, Default, Serialize)]
pub struct MergeReport {
    pub root: PathBuf,
    pub path: PathBuf,
    pub scan: ScanStats,
    /// Groups of identical files found.
    pub groups: u64,
    /// Files turned into SIS links now.
    pub files_linked: u64,
    /// Files that were links already.
    pub already_linked: u64,
    /// Common-store files created.
    pub common_store_files_created: u64,
    /// Files changed between scan and link: left untouched, not linked.
    pub changed: Vec<PathBuf>,
    /// Files that could not be handled.
    pub problems: Vec<Problem>,
    /// Bytes the scan expected to free.
    pub reclaimable_bytes: u64,
    /// Free space gained, measured with statvfs after syncing the filesystem (negative when
    /// something else filled it meanwhile).
    pub bytes_reclaimed: i64,
    pub link_seconds: f64,
}

struct FileEntry {
    path: PathBuf,
    size: u64,
    ino: u64,
}

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Partial([u8; 32]),
    Full(ContentHash),
}

enum Probe {
    Linked(ContentHash),
    Key(Key),
    Gone,
}

/// Scans `path` (on `volume`) for duplicates. `store` is the volume's store when it exists
/// (its common-store files count as partners); `progress` is told the bytes read so far.
pub fn scan(
    volume: &Volume,
    store: Option<&CommonStore>,
    path: &Path,
    opts: &MergeOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ScanPlan> {
    let started = Instant::now();
    let abs = std::fs::canonicalize(path).map_err(|e| SisError::io("resolve", path, e))?;
    volume.relative(&abs)?;
    let store_dir = volume.root().join(STORE_DIR);
    let mut stats = ScanStats::default();
    let mut problems = Vec::new();
    let files = walk(&abs, &store_dir, opts.min_size, &mut stats, &mut problems);
    let stored = Stored::of(store)?;
    let candidates = same_size(&files, &stored);
    stats.size_candidates = candidates.len() as u64;

    let hashing = Hashing {
        files: &files,
        store,
        threads: opts.threads,
        bytes_read: AtomicU64::new(0),
        progress,
        problems: std::sync::Mutex::new(Vec::new()),
    };
    let probed = hashing.probe(&candidates);
    let to_hash = probed.partial_partners(&files, &stored);
    let (full, fully_hashed) = hashing.full_hashes(&to_hash, &probed.keys);
    stats.fully_hashed = fully_hashed;
    let groups = duplicate_groups(&files, &full, &probed.linked, &stored.hashes);

    stats.bytes_read = hashing.bytes_read.load(Ordering::Relaxed);
    stats.seconds = started.elapsed().as_secs_f64();
    problems.extend(hashing.problems.into_inner().unwrap_or_default());
    Ok(ScanPlan {
        root: volume.root().to_path_buf(),
        path: abs,
        groups,
        stats,
        problems,
    })
}

/// Walks `root` (one filesystem, not into `store_dir`) for regular files of at least
/// `min_size` bytes, each inode once.
fn walk(
    root: &Path,
    store_dir: &Path,
    min_size: u64,
    stats: &mut ScanStats,
    problems: &mut Vec<Problem>,
) -> Vec<FileEntry> {
    let mut files: Vec<FileEntry> = Vec::new();
    let mut seen_inodes: HashSet<(u64, u64)> = HashSet::new();
    let walker = walkdir::WalkDir::new(root)
        .same_file_system(true)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.path() != store_dir);
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                problems.push(Problem {
                    path: e.path().map(Path::to_path_buf).unwrap_or_default(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) => {
                problems.push(Problem {
                    path: entry.path().to_path_buf(),
                    error: e.to_string(),
                });
                continue;
            }
        };
        if !seen_inodes.insert((meta.dev(), meta.ino())) {
            stats.hard_links += 1;
            continue;
        }
        stats.files += 1;
        stats.bytes += meta.len();
        if meta.len() < min_size.max(1) {
            stats.small_files += 1;
            continue;
        }
        files.push(FileEntry {
            path: entry.into_path(),
            size: meta.len(),
            ino: meta.ino(),
        });
    }
    files
}

/// What the store holds already: the hashes and sizes of its common-store files.
#[derive(Default)]
struct Stored {
    hashes: HashSet<ContentHash>,
    sizes: HashSet<u64>,
}

impl Stored {
    fn of(store: Option<&CommonStore>) -> Result<Stored> {
        let mut stored = Stored::default();
        if let Some(store) = store {
            let (list, _) = store.list_files()?;
            for f in list {
                stored.hashes.insert(f.hash);
                stored.sizes.insert(f.size);
            }
        }
        Ok(stored)
    }
}

/// The files (indexes into `files`) that share their size with another or with a store
/// file, in inode order (which roughly follows disk order).
fn same_size(files: &[FileEntry], stored: &Stored) -> Vec<usize> {
    let mut by_size: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, f) in files.iter().enumerate() {
        by_size.entry(f.size).or_default().push(i);
    }
    let mut candidates: Vec<usize> = by_size
        .iter()
        .filter(|(size, v)| v.len() >= 2 || stored.sizes.contains(size))
        .flat_map(|(_, v)| v.iter().copied())
        .collect();
    candidates.sort_by_key(|&i| files[i].ino);
    candidates
}

/// What the first pass found: files that are links already, and the others' keys.
struct Probed {
    keys: HashMap<usize, Key>,
    linked: HashMap<usize, ContentHash>,
    linked_sizes: HashSet<u64>,
}

impl Probed {
    /// Files with a partial key that still have a possible partner (another file with the
    /// same size and key, a store file or an existing link of its size), in inode order.
    fn partial_partners(&self, files: &[FileEntry], stored: &Stored) -> Vec<usize> {
        let mut partial_groups: HashMap<(u64, Key), Vec<usize>> = HashMap::new();
        for (&i, &k) in &self.keys {
            if let Key::Partial(_) = k {
                partial_groups
                    .entry((files[i].size, k))
                    .or_default()
                    .push(i);
            }
        }
        let mut to_hash: Vec<usize> = partial_groups
            .into_iter()
            .filter(|((size, _), v)| {
                v.len() >= 2 || stored.sizes.contains(size) || self.linked_sizes.contains(size)
            })
            .flat_map(|(_, v)| v)
            .collect();
        to_hash.sort_by_key(|&i| files[i].ino);
        to_hash
    }
}

/// The reading passes of a scan, on several threads, with what they share.
struct Hashing<'a> {
    files: &'a [FileEntry],
    store: Option<&'a CommonStore>,
    threads: usize,
    bytes_read: AtomicU64,
    progress: &'a (dyn Fn(u64) + Sync),
    problems: std::sync::Mutex<Vec<Problem>>,
}

impl Hashing<'_> {
    fn note(&self, path: &Path, e: String) {
        if let Ok(mut p) = self.problems.lock() {
            p.push(Problem {
                path: path.to_path_buf(),
                error: e,
            });
        }
    }

    /// First pass: existing links, small files (full hash), large files (partial hash).
    fn probe(&self, candidates: &[usize]) -> Probed {
        let first: Vec<(usize, Probe)> = par_map(candidates, self.threads, |&i, buf, cache| {
            let f = &self.files[i];
            let probe = probe_file(self.store, f, buf, cache, &self.bytes_read, self.progress)
                .unwrap_or_else(|e| {
                    self.note(&f.path, e);
                    Probe::Gone
                });
            (i, probe)
        });
        let mut probed = Probed {
            keys: HashMap::new(),
            linked: HashMap::new(),
            linked_sizes: HashSet::new(),
        };
        for (i, p) in first {
            match p {
                Probe::Linked(h) => {
                    probed.linked_sizes.insert(self.files[i].size);
                    probed.linked.insert(i, h);
                }
                Probe::Key(k) => {
                    probed.keys.insert(i, k);
                }
                Probe::Gone => {}
            }
        }
        probed
    }

    /// Second pass: the full hashes of `to_hash`, with those the first pass found (`keys`);
    /// and how many files were hashed whole.
    fn full_hashes(
        &self,
        to_hash: &[usize],
        keys: &HashMap<usize, Key>,
    ) -> (HashMap<usize, ContentHash>, u64) {
        let second: Vec<(usize, Option<ContentHash>)> =
            par_map(to_hash, self.threads, |&i, buf, _cache| {
                let f = &self.files[i];
                match full_hash(f, buf, &self.bytes_read, self.progress) {
                    Ok(h) => (i, h),
                    Err(e) => {
                        self.note(&f.path, e);
                        (i, None)
                    }
                }
            });
        let mut full: HashMap<usize, ContentHash> = HashMap::new();
        for (&i, &k) in keys {
            if let Key::Full(h) = k {
                full.insert(i, h);
            }
        }
        let fully_hashed = (full.len() + second.iter().filter(|(_, h)| h.is_some()).count()) as u64;
        for (i, h) in second {
            if let Some(h) = h {
                full.insert(i, h);
            }
        }
        (full, fully_hashed)
    }
}

/// Groups files by full hash, existing links with them: the groups with something to
/// merge (two members, or one and the store file) and those of links only (re-recorded by
/// `link`), largest first.
fn duplicate_groups(
    files: &[FileEntry],
    full: &HashMap<usize, ContentHash>,
    linked: &HashMap<usize, ContentHash>,
    store_hashes: &HashSet<ContentHash>,
) -> Vec<DuplicateGroup> {
    let mut groups_map: HashMap<ContentHash, Vec<(usize, bool)>> = HashMap::new();
    for (&i, &h) in full {
        groups_map.entry(h).or_default().push((i, false));
    }
    for (&i, &h) in linked {
        groups_map.entry(h).or_default().push((i, true));
    }
    let mut groups: Vec<DuplicateGroup> = groups_map
        .into_iter()
        .filter_map(|(hash, mut members)| {
            let in_store = store_hashes.contains(&hash);
            let ordinary = members.iter().filter(|(_, l)| !l).count();
            let keep = if ordinary == 0 {
                // Only links: nothing to merge, but they are re-recorded by `link`.
                true
            } else {
                members.len() >= 2 || in_store
            };
            if !keep {
                return None;
            }
            members.sort_by(|a, b| files[a.0].path.cmp(&files[b.0].path));
            Some(DuplicateGroup {
                hash,
                size: files[members[0].0].size,
                members: members
                    .into_iter()
                    .map(|(i, l)| Member {
                        path: files[i].path.clone(),
                        ino: files[i].ino,
                        linked: l,
                    })
                    .collect(),
                in_store,
            })
        })
        .collect();
    groups.sort_by(|a, b| b.size.cmp(&a.size).then(a.hash.cmp(&b.hash)));
    groups
}

fn probe_file(
    store: Option<&CommonStore>,
    f: &FileEntry,
    buf: &mut [u8],
    cache: &mut MapCache,
    bytes_read: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> std::result::Result<Probe, String> {
    let file = match sys::open_read(&f.path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Probe::Gone),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if meta.ino() != f.ino || meta.len() != f.size {
        return Ok(Probe::Gone);
    }
    if let Some(store) = store
        && let Ok(Some(Ok(_))) = sys::read_reparse(&file)
    {
        let check = store
            .link_state_of(&file, &f.path, cache)
            .map_err(|e| e.to_string())?;
        if let LinkState::Link(r) = check.state {
            return Ok(Probe::Linked(r.hash));
        }
    }
    if f.size <= SMALL_FILE {
        let (h, len) = sys::hash_file(&file, buf).map_err(|e| format!("cannot read: {e}"))?;
        bytes_read.fetch_add(len, Ordering::Relaxed);
        progress(len);
        if len != f.size {
            return Ok(Probe::Gone);
        }
        return Ok(Probe::Key(Key::Full(h)));
    }
    let mut hasher = blake3::Hasher::new();
    let n = PARTIAL_BYTES as usize;
    let head = read_exact_at(&file, &mut buf[..n], 0).map_err(|e| format!("cannot read: {e}"))?;
    hasher.update(&buf[..head]);
    let tail = read_exact_at(&file, &mut buf[..n], f.size - PARTIAL_BYTES)
        .map_err(|e| format!("cannot read: {e}"))?;
    hasher.update(&buf[..tail]);
    let read = (head + tail) as u64;
    bytes_read.fetch_add(read, Ordering::Relaxed);
    progress(read);
    Ok(Probe::Key(Key::Partial(*hasher.finalize().as_bytes())))
}

fn full_hash(
    f: &FileEntry,
    buf: &mut [u8],
    bytes_read: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> std::result::Result<Option<ContentHash>, String> {
    let file = match sys::open_read(&f.path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    // Tell the kernel we read it once, front to back.
    let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
    let (h, len) = sys::hash_file(&file, buf).map_err(|e| format!("cannot read: {e}"))?;
    bytes_read.fetch_add(len, Ordering::Relaxed);
    progress(len);
    Ok((len == f.size).then_some(h))
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Maps `items` on `threads` threads, each with its own read buffer and extent-map cache.
fn par_map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    f: impl Fn(&T, &mut [u8], &mut MapCache) -> R + Sync,
) -> Vec<R> {
    let threads = threads.clamp(1, 64).min(items.len().max(1));
    let next = AtomicUsize::new(0);
    let mut out: Vec<R> = Vec::with_capacity(items.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut buf = vec![0u8; READ_BUF];
                    let mut cache = MapCache::default();
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push(f(item, &mut buf, &mut cache));
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(mine) => out.extend(mine),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    out
}

impl ScanPlan {
    /// Links every group to its common-store file (see the module doc). Holds the store lock
    /// for the duration; the free space gained is measured around it.
    pub fn link(self, store: &CommonStore) -> Result<MergeReport> {
        let started = Instant::now();
        let root = store.volume().root().to_path_buf();
        let lock = store.lock()?;
        let mut index = store.read_index()?;
        let free_before = sys::measured_free_bytes(&root)
            .map_err(|e| SisError::io("measure free space on", &root, e))?;
        let mut report = MergeReport {
            root: root.clone(),
            path: self.path.clone(),
            scan: self.stats.clone(),
            groups: self.groups.len() as u64,
            reclaimable_bytes: self.reclaimable_bytes(),
            problems: self.problems,
            ..MergeReport::default()
        };
        let mut buf = vec![0u8; READ_BUF];
        let mut cache = MapCache::default();
        let mut since_checkpoint = 0usize;

        for group in &self.groups {
            let reparse = ReparseData {
                hash: group.hash,
                size: group.size,
            };
            let record = |index: &mut crate::Index, path: &Path, ino: u64| -> Result<()> {
                let rel = store.volume().relative(path)?;
                index.set_link(group.hash, group.size, rel, ino);
                Ok(())
            };

            // Links already: just make sure they are recorded.
            for m in group.members.iter().filter(|m| m.linked) {
                record(&mut index, &m.path, m.ino)?;
                report.already_linked += 1;
            }
            if group.members.iter().all(|m| m.linked) {
                continue;
            }

            // The common-store file: the existing one, or a verified clone of a member.
            let mut source = None;
            let mut cloned_from: Option<&Path> = None;
            let store_path = store.file_path(&group.hash);
            if let Ok(existing) = sys::open_read(&store_path) {
                source = Some(existing);
            } else {
                for m in group.members.iter().filter(|m| !m.linked) {
                    let file = match open_same(&m.path, m.ino, group.size) {
                        Ok(Some(f)) => f,
                        Ok(None) => continue,
                        Err(e) => {
                            report.problems.push(Problem {
                                path: m.path.clone(),
                                error: e,
                            });
                            continue;
                        }
                    };
                    match store.publish_clone(&lock, &file, &group.hash, group.size, &mut buf)? {
                        Some(p) => {
                            report.common_store_files_created += u64::from(p.created);
                            source = Some(p.file);
                            cloned_from = Some(&m.path);
                            break;
                        }
                        None => continue,
                    }
                }
            }
            let Some(source) = source else {
                // Every member changed since the scan.
                for m in group.members.iter().filter(|m| !m.linked) {
                    report.changed.push(m.path.clone());
                }
                continue;
            };

            let mut linked_here = 0u64;
            for m in group.members.iter().filter(|m| !m.linked) {
                match link_member(
                    store,
                    &source,
                    m,
                    &reparse,
                    cloned_from == Some(&m.path),
                    &mut cache,
                ) {
                    Ok(Outcome::Linked) => {
                        record(&mut index, &m.path, m.ino)?;
                        linked_here += 1;
                        since_checkpoint += 1;
                    }
                    Ok(Outcome::Changed) => report.changed.push(m.path.clone()),
                    Err(e) => report.problems.push(Problem {
                        path: m.path.clone(),
                        error: e,
                    }),
                }
            }
            report.files_linked += linked_here;
            let recorded = index.get(&group.hash).is_some_and(|e| !e.links.is_empty());
            if !recorded {
                // Nothing shares it after all: do not leave an orphan behind.
                if std::fs::remove_file(&store_path).is_ok() {
                    report.common_store_files_created =
                        report.common_store_files_created.saturating_sub(1);
                }
                index.remove_entry(&group.hash);
            }
            if since_checkpoint >= CHECKPOINT_LINKS {
                store.save_index(&lock, &index)?;
                since_checkpoint = 0;
            }
        }
        store.save_index(&lock, &index)?;
        let free_after = sys::measured_free_bytes(&root)
            .map_err(|e| SisError::io("measure free space on", &root, e))?;
        report.bytes_reclaimed = free_after as i64 - free_before as i64;
        report.link_seconds = started.elapsed().as_secs_f64();
        drop(lock);
        Ok(report)
    }
}

enum Outcome {
    Linked,
    Changed,
}

/// Opens `path` if it is still the inode and size the scan saw.
fn open_same(path: &Path, ino: u64, size: u64) -> std::result::Result<Option<File>, String> {
    let file = match sys::open_dedupe_dest(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let meta = file.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    Ok((meta.ino() == ino && meta.len() == size).then_some(file))
}

fn link_member(
    store: &CommonStore,
    source: &File,
    m: &Member,
    reparse: &ReparseData,
    was_clone_source: bool,
    cache: &mut MapCache,
) -> std::result::Result<Outcome, String> {
    let Some(file) = open_same(&m.path, m.ino, reparse.size)? else {
        return Ok(Outcome::Changed);
    };
    // The member the common-store file was cloned from shares its blocks already, unless it
    // was written since: then it is deduplicated like the others (and found different).
    let shares = was_clone_source
        && matches!(
            (sys::extent_map(source), sys::extent_map(&file)),
            (Ok(a), Ok(b)) if a.same_blocks(&b)
        );
    if !shares {
        match sys::dedupe_whole(source, &file, reparse.size) {
            Ok(Dedupe::Shared) => {}
            Ok(Dedupe::Differs { .. }) => return Ok(Outcome::Changed),
            Err(e) => return Err(format!("FIDEDUPERANGE: {e}")),
        }
    }
    sys::write_reparse(&file, reparse).map_err(|e| format!("cannot set the SIS xattr: {e}"))?;
    // Trust only what the extent map shows: a write racing with us undoes the link.
    let check = store
        .link_state_of(&file, &m.path, cache)
        .map_err(|e| e.to_string())?;
    if matches!(check.state, LinkState::Link(_)) && check.ino == m.ino {
        Ok(Outcome::Linked)
    } else {
        let _ = sys::remove_reparse(&file);
        Ok(Outcome::Changed)
    }
}

/// Scans `path` and links what it found: `reel sis merge`.
pub fn merge(
    store: &CommonStore,
    path: &Path,
    opts: &MergeOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<MergeReport> {
    let plan = scan(store.volume(), Some(store), path, opts, progress)?;
    plan.link(store)
}
