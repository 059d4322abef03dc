//! `reel backup`: walk the given paths and write one set at the end of the volume.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use reel_archive::label::{host_name, now_rfc3339};
use reel_archive::{Entry, SetInfo, SetMode, SetWriter, VolumeLabel, VolumeState};
use reel_stream::{FileKind, NameCache, capture};
use reel_tape::TapeDrive;

use crate::error::{CoreError, Result};
use crate::progress::Progress;

/// What to back up and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    /// Name of the set (default: host and time).
    pub name: Option<String>,
    /// Record size of the set data.
    pub block_size: usize,
    /// Stay on the file system of each path.
    pub one_file_system: bool,
    /// Label a tape that holds another program's data (destroying it).
    pub force: bool,
}

impl BackupOptions {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        BackupOptions {
            paths,
            name: None,
            block_size: reel_archive::DEFAULT_BLOCK_SIZE,
            one_file_system: false,
            force: false,
        }
    }
}

/// What a backup did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub set: SetInfo,
    /// Per-file problems (the set is complete without those entries or with them as noted).
    pub problems: Vec<String>,
    /// The volume was blank (or foreign and forced) and got a new label.
    pub labelled: bool,
    /// The remains of an interrupted backup that this set replaced.
    pub replaced_leftover: Option<String>,
}

/// The archive name of an absolute path: the path without its leading slash.
pub fn archive_name(path: &Path) -> Vec<u8> {
    let bytes = path.as_os_str().as_bytes();
    let trimmed = bytes
        .iter()
        .position(|b| *b != b'/')
        .map(|i| &bytes[i..])
        .unwrap_or(b"");
    trimmed.to_vec()
}

/// Makes the backup roots absolute (without resolving a final symlink) and drops roots that
/// lie inside another root.
fn resolve_roots(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(CoreError::Usage(
            "nothing to back up: give at least one path".into(),
        ));
    }
    let mut roots = Vec::new();
    for p in paths {
        if std::fs::symlink_metadata(p).is_err() {
            return Err(CoreError::Usage(format!(
                "{}: no such file or directory",
                p.display()
            )));
        }
        let abs = if p.is_absolute() {
            p.clone()
        } else {
            std::env::current_dir()
                .map_err(|e| CoreError::Io {
                    context: "finding the current directory".into(),
                    source: e,
                })?
                .join(p)
        };
        // Resolve `.`/`..` and symlinks in the parent, keep the last component as given.
        let resolved = match (abs.parent(), abs.file_name()) {
            (Some(parent), Some(name)) => parent
                .canonicalize()
                .map_err(|e| CoreError::Io {
                    context: format!("resolving {}", parent.display()),
                    source: e,
                })?
                .join(name),
            _ => abs.canonicalize().map_err(|e| CoreError::Io {
                context: format!("resolving {}", abs.display()),
                source: e,
            })?,
        };
        roots.push(resolved);
    }
    roots.sort();
    roots.dedup();
    let mut kept: Vec<PathBuf> = Vec::new();
    for r in roots {
        if !kept.iter().any(|k| r.starts_with(k)) {
            kept.push(r);
        }
    }
    Ok(kept)
}

/// Reads a source file, turning a read error into end of file (the archive zero-fills the
/// rest) and keeping the error to report.
struct CapturingReader {
    file: File,
    error: Option<io::Error>,
}

impl Read for CapturingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Ok(0);
        }
        match self.file.read(buf) {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.error = Some(e);
                Ok(0)
            }
        }
    }
}

fn open_source(path: &Path) -> io::Result<File> {
    // O_NOATIME keeps backups from touching access times; only the owner (or root) may use it.
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOATIME.bits() as i32)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            File::open(path)
        }
        other => other,
    }
}

/// Files and bytes under the roots, counted by a background walk for progress totals.
#[derive(Default)]
struct Totals {
    bytes: AtomicU64,
    files: AtomicU64,
    stop: AtomicBool,
}

fn spawn_counter(roots: Vec<PathBuf>, one_fs: bool, totals: Arc<Totals>) {
    std::thread::spawn(move || {
        for root in roots {
            for entry in walkdir::WalkDir::new(&root)
                .follow_links(false)
                .same_file_system(one_fs)
            {
                if totals.stop.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(e) = entry {
                    totals.files.fetch_add(1, Ordering::Relaxed);
                    if e.file_type().is_file() {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        totals.bytes.fetch_add(len, Ordering::Relaxed);
                    }
                }
            }
        }
    });
}

/// Prepares the volume for a new set: labels a blank tape, checks a labelled one, and
/// returns (tape file, logical block) of the append point.
fn prepare_volume(
    drive: &mut dyn TapeDrive,
    opts: &BackupOptions,
) -> Result<(VolumeLabel, u64, u64, bool, Option<String>)> {
    let barcode = drive.describe();
    let barcode = barcode
        .strip_prefix("vtape:")
        .unwrap_or(&barcode)
        .to_string();
    let mut labelled = false;
    match reel_archive::read_state(drive)? {
        VolumeState::Reel(_) => {}
        VolumeState::Blank => {
            reel_archive::write_label(drive, &VolumeLabel::new(&barcode))?;
            labelled = true;
        }
        VolumeState::Foreign { detail } => {
            if !opts.force {
                return Err(CoreError::Usage(format!(
                    "{} holds data reel did not write ({detail}); refusing to overwrite it (use --force to label it anyway, destroying that data)",
                    drive.describe()
                )));
            }
            reel_archive::write_label(drive, &VolumeLabel::new(&barcode))?;
            labelled = true;
        }
    }
    let mut map = reel_archive::map_volume(drive)?;
    if map.file_starts.len() == 1 {
        // The label never got its filemark (interrupted while labelling): write it again.
        reel_archive::write_label(drive, &map.label)?;
        map = reel_archive::map_volume(drive)?;
    }
    Ok((
        map.label,
        map.append_file,
        map.append_block,
        labelled,
        map.leftover,
    ))
}

/// Backs up `opts.paths` as one new set at the end of the volume in `drive`.
pub fn backup(
    drive: &mut dyn TapeDrive,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let roots = resolve_roots(&opts.paths)?;
    if opts.block_size < 512
        || !opts.block_size.is_multiple_of(512)
        || opts.block_size > reel_tape::vtape::MAX_BLOCK_SIZE as usize
    {
        return Err(CoreError::Usage(format!(
            "block size {} must be a multiple of 512 between 512 and {}",
            opts.block_size,
            reel_tape::vtape::MAX_BLOCK_SIZE
        )));
    }
    let (label, data_file, at, labelled, leftover) = prepare_volume(drive, opts)?;
    let set_number = (data_file / 2 + 1) as u32;
    let started = now_rfc3339();
    let totals = progress.wants_totals().then(|| {
        let t = Arc::new(Totals::default());
        spawn_counter(roots.clone(), opts.one_file_system, t.clone());
        t
    });
    let mut writer = SetWriter::begin(drive, data_file, at, opts.block_size)?;
    let mut job = Walker {
        names: NameCache::new(),
        links: HashMap::new(),
        problems: Vec::new(),
        files: 0,
        directories: 0,
        other: 0,
        content_bytes: 0,
        progress,
        totals: totals.clone(),
        seen: 0,
    };
    for root in &roots {
        job.walk_root(&mut writer, root, opts.one_file_system)?;
    }
    if let Some(t) = &totals {
        t.stop.store(true, Ordering::Relaxed);
    }
    let info = SetInfo {
        id: uuid::Uuid::new_v4(),
        number: set_number,
        name: opts.name.clone().unwrap_or_else(|| {
            let host = host_name();
            let stamp: String = started
                .chars()
                .filter(|c| c.is_ascii_digit())
                .take(14)
                .collect();
            format!("{}-{}", if host.is_empty() { "reel" } else { &host }, stamp)
        }),
        started,
        finished: now_rfc3339(),
        host: host_name(),
        paths: roots.iter().map(|r| r.display().to_string()).collect(),
        mode: SetMode::Full,
        parent: None,
        block_size: opts.block_size as u32,
        volume_id: label.volume_id,
        data_file,
        data_first_block: 0,
        data_records: 0,
        archive_bytes: 0,
        files: job.files,
        directories: job.directories,
        other: job.other,
        content_bytes: job.content_bytes,
        problems: job.problems.len() as u64,
        reel_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let set = writer.finish(info)?;
    Ok(BackupReport {
        set,
        problems: job.problems,
        labelled,
        replaced_leftover: leftover,
    })
}

/// The walk of one backup: turns files into set members.
struct Walker<'p> {
    names: NameCache,
    /// First archive name of every multiply-linked file seen, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    problems: Vec<String>,
    files: u64,
    directories: u64,
    other: u64,
    content_bytes: u64,
    progress: &'p dyn Progress,
    totals: Option<Arc<Totals>>,
    seen: u64,
}

impl Walker<'_> {
    fn problem(&mut self, message: String) {
        self.progress.problem(&message);
        self.problems.push(message);
    }

    fn walk_root(&mut self, writer: &mut SetWriter<'_>, root: &Path, one_fs: bool) -> Result<()> {
        let walk = walkdir::WalkDir::new(root)
            .follow_links(false)
            .follow_root_links(false)
            .same_file_system(one_fs)
            .sort_by_file_name();
        for item in walk {
            let dent = match item {
                Ok(d) => d,
                Err(e) => {
                    let path = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    self.problem(format!(
                        "{path}: {}",
                        e.io_error()
                            .map(|i| i.to_string())
                            .unwrap_or_else(|| e.to_string())
                    ));
                    continue;
                }
            };
            self.add_path(writer, dent.path())?;
        }
        Ok(())
    }

    fn add_path(&mut self, writer: &mut SetWriter<'_>, path: &Path) -> Result<()> {
        let name = archive_name(path);
        if name.is_empty() {
            return Ok(()); // the root directory "/" itself
        }
        let meta = match capture(path, &mut self.names) {
            Ok(m) => m,
            Err(e) => {
                self.problem(e.to_string());
                return Ok(());
            }
        };
        self.progress.entry(&path.to_string_lossy());
        self.seen += 1;
        if self.seen % 256 == 1
            && let Some(t) = &self.totals
        {
            self.progress.total(
                t.bytes.load(Ordering::Relaxed),
                t.files.load(Ordering::Relaxed),
            );
        }
        if meta.kind == FileKind::Socket {
            // Sockets are created by their servers; tar skips them too.
            return Ok(());
        }
        let mut entry = Entry::new(name.clone(), meta);
        if entry.meta.nlink > 1 && entry.meta.kind != FileKind::Directory {
            let key = (entry.meta.dev, entry.meta.ino);
            if let Some(first) = self.links.get(&key) {
                entry.hardlink = Some(first.clone());
                writer.add(&entry, None, |_| {})?;
                self.other += 1;
                return Ok(());
            }
            self.links.insert(key, name);
        }
        match entry.meta.kind {
            FileKind::Regular => self.add_file(writer, path, &entry),
            FileKind::Directory => {
                self.directories += 1;
                writer.add(&entry, None, |_| {})?;
                Ok(())
            }
            _ => {
                self.other += 1;
                writer.add(&entry, None, |_| {})?;
                Ok(())
            }
        }
    }

    fn add_file(&mut self, writer: &mut SetWriter<'_>, path: &Path, entry: &Entry) -> Result<()> {
        let file = match open_source(path) {
            Ok(f) => f,
            Err(e) => {
                self.problem(format!(
                    "{}: cannot open: {e} (not backed up)",
                    path.display()
                ));
                return Ok(());
            }
        };
        let mut src = CapturingReader { file, error: None };
        let progress = self.progress;
        let added = writer.add(entry, Some(&mut src), |n| progress.bytes(n))?;
        self.files += 1;
        self.content_bytes += added.copied;
        if let Some(e) = src.error {
            self.problem(format!(
                "{}: read error after {} bytes: {e} (the rest is stored as zeros)",
                path.display(),
                added.copied
            ));
        } else if added.zero_filled > 0 {
            self.problem(format!(
                "{}: shrank by {} bytes while being read (the rest is stored as zeros)",
                path.display(),
                added.zero_filled
            ));
        } else if let Ok(after) = rustix::fs::fstat(&src.file) {
            let changed = after.st_size as u64 != entry.meta.size
                || after.st_mtime != entry.meta.mtime.secs
                || after.st_mtime_nsec as u32 != entry.meta.mtime.nanos;
            if changed {
                self.problem(format!("{}: changed while being read", path.display()));
            }
        }
        Ok(())
    }
}
