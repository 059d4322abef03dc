//! `reel backup`: walk the given paths and write one set at the end of the volume.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::Serialize;

use reel_archive::label::{host_name, now_rfc3339};
use reel_archive::records::RecordSink;
use reel_archive::{
    ArchiveError, Entry, EntryKind, IndexEntry, SetInfo, SetMode, SetWriter, VolumeLabel,
    VolumeState,
};
use reel_catalog::{Catalog, StoppedPart};
use reel_policy::{BackupFilter, HookContext, HookPhase, Pattern, Policy, ProcessEnv, Roots};
use reel_stream::{Captured, ContentReader, FileKind, NameCache, capture_open};
use reel_tape::{SeekTo, TapeDrive};

use crate::error::{CoreError, Result};
use crate::progress::Progress;
use crate::scan::Walked;
use crate::source::Source;
pub use crate::source::{SkippedEntry, archive_name};
use crate::span::{ClosedParts, SpanningSink};
use crate::tapes::Tapes;

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
    /// Full or incremental; `None` = what the policy's backup-mode says for the file system
    /// of the first path (an incremental with no earlier set becomes a full backup).
    pub incremental: Option<bool>,
    /// `--exclude` patterns, added to the policy's files-not-to-backup.
    pub excludes: Vec<String>,
    /// Back up everything: no policy exclusions (and no `excludes`).
    pub ignore_exclusions: bool,
    /// Read from btrfs snapshots of the paths (the live tree elsewhere, unless required).
    pub snapshot: bool,
    pub require_snapshot: bool,
    /// Where the policy is read (`$REEL_ROOT` prefix).
    pub policy_roots: Roots,
}

impl BackupOptions {
    pub fn new(paths: Vec<PathBuf>) -> Self {
        BackupOptions {
            paths,
            name: None,
            block_size: reel_archive::DEFAULT_BLOCK_SIZE,
            one_file_system: false,
            force: false,
            incremental: Some(false),
            excludes: Vec::new(),
            ignore_exclusions: false,
            snapshot: false,
            require_snapshot: false,
            policy_roots: Roots::from_env(),
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
    /// Barcodes of the volumes the set was written on, in order.
    pub volumes: Vec<String>,
    /// Files of an incremental backup left in earlier sets because they did not change.
    pub unchanged_files: u64,
    /// The set an incremental backup was taken since, for people: `set N "name" on VOLUME`.
    pub parent_set: Option<String>,
    /// Set when the catalog could not be updated (the set itself is complete on tape).
    pub catalog_warning: Option<String>,
    /// Entries the policy (or `--exclude`) kept out of the set, and why.
    pub skipped_by_policy: u64,
    /// Malformed policy lines, hook failures and snapshot notes (reported, never fatal).
    pub warnings: Vec<String>,
    /// Snapshots the set was read from.
    pub snapshots: Vec<PathBuf>,
}

/// What a backup would do (`--dry-run`): nothing is written.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DryRunReport {
    pub files: u64,
    pub directories: u64,
    pub other: u64,
    pub bytes: u64,
    /// Every entry the policy would skip, with the rule or convention responsible.
    pub skipped: Vec<SkippedEntry>,
    pub warnings: Vec<String>,
}

/// Makes the backup roots absolute (without resolving a final symlink) and drops roots that
/// lie inside another root.
fn resolve_roots(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if paths.is_empty() {
        return Err(CoreError::NothingToBackUp);
    }
    let mut roots = Vec::new();
    for p in paths {
        if std::fs::symlink_metadata(p).is_err() {
            return Err(CoreError::NoSuchPath { path: p.clone() });
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
    /// The file's content: all of it, or the data extents of a sparse file.
    file: ContentReader,
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

/// Where the new set goes on the volume in the drive.
struct AppendPoint {
    label: VolumeLabel,
    data_file: u64,
    block: u64,
    labelled: bool,
    leftover: Option<String>,
    /// Why no set can be appended to this volume (it ends with a part of a set continued on
    /// another volume: the set closed it as full).
    full: Option<String>,
}

/// Prepares the volume for a new set: labels a blank tape, checks a labelled one, and finds
/// the append point. A part of a set in `stopped_sets` (sets the catalog knows stopped
/// unfinished at a volume change) is overwritten like the remains of an interrupted backup.
/// A blank tape is labelled `name` when given (the name the operator was told to write on
/// it).
fn prepare_volume(
    drive: &mut dyn TapeDrive,
    opts: &BackupOptions,
    stopped_sets: &[uuid::Uuid],
    name: Option<&str>,
) -> Result<AppendPoint> {
    // A virtual cartridge is labelled with its name; a tape in a real or remote drive gets a
    // name of its own (the device path names the drive, not the tape).
    let barcode = match (drive.cartridge_name(), name) {
        (Some(cartridge), _) => cartridge,
        (None, Some(name)) => name.to_string(),
        (None, None) => crate::manual::new_tape_name(),
    };
    let mut labelled = false;
    match reel_archive::read_state(drive)? {
        VolumeState::Reel(_) => {}
        VolumeState::Blank => {
            reel_archive::write_label(drive, &VolumeLabel::new(&barcode))?;
            labelled = true;
        }
        VolumeState::Foreign { detail } => {
            if !opts.force {
                return Err(CoreError::ForeignVolume {
                    drive: drive.describe(),
                    detail,
                });
            }
            reel_archive::write_label(drive, &VolumeLabel::new(&barcode))?;
            labelled = true;
        }
    }
    let mut map = reel_archive::map_volume_knowing(drive, stopped_sets)?;
    if map.file_starts.len() == 1 {
        // The label never got its filemark (interrupted while labelling): write it again.
        reel_archive::write_label(drive, &map.label)?;
        map = reel_archive::map_volume_knowing(drive, stopped_sets)?;
    }
    // A set continued elsewhere closed this volume because it was full (at early warning, or
    // too near it for the set's index): a set appended after it would start past early
    // warning and at once continue on another volume, labelled as the next of the full
    // volume's series (a second volume claiming the same place in that series).
    let full = match map.sets.last() {
        Some(last) => match &last.state {
            reel_archive::SetState::Continued(m) => Some(format!(
                "set {} ({}) filled it and continues on {}; tape file {} is its part {}",
                m.set_name, m.set_id, m.next_barcode, last.data_file, m.part
            )),
            _ => None,
        },
        None => None,
    };
    Ok(AppendPoint {
        label: map.label,
        data_file: map.append_file,
        block: map.append_block,
        labelled,
        leftover: map.leftover,
        full,
    })
}

/// Backs up `opts.paths` as one new set at the end of the volume in the drive, continuing
/// on further volumes when it fills, and records it in `catalog` when one is given.
pub fn backup(
    tapes: &mut Tapes,
    catalog: Option<&mut Catalog>,
    opts: &BackupOptions,
    progress: &dyn Progress,
) -> Result<BackupReport> {
    let roots = resolve_roots(&opts.paths)?;
    check_block_size(opts.block_size, &*tapes.drive)?;
    let root_names: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
    let policy = load_policy(opts)?;
    for w in &policy.warnings {
        progress.problem(w);
    }
    let parent = parent_set(
        opts,
        &policy.policy,
        &roots,
        &root_names,
        catalog.as_deref(),
    )?;
    let set_id = uuid::Uuid::new_v4();
    let set_name = opts
        .name
        .clone()
        .unwrap_or_else(|| default_set_name(catalog.as_deref()));
    let hook_context = || {
        HookContext::new()
            .set_id(set_id)
            .var("REEL_SET_NAME", set_name.clone())
            .var("REEL_PATHS", root_names.join("\n"))
    };
    let mut warnings = policy.warnings.clone();
    run_pre_backup_hooks(&policy.policy, &hook_context(), progress, &mut warnings)?;
    let sources = take_snapshots(&roots, opts, &policy.policy, progress, &mut warnings)?;
    let snapshots: Vec<PathBuf> = sources.iter().filter_map(|s| s.snapshot.clone()).collect();
    let mut post_context = hook_context();
    if !snapshots.is_empty() {
        let listed: Vec<String> = snapshots.iter().map(|p| p.display().to_string()).collect();
        post_context = post_context.var("REEL_SNAPSHOT", listed.join("\n"));
    }
    let job = SetJob {
        opts,
        progress,
        policy: &policy,
        sources: &sources,
        root_names,
        parent,
    };
    let result = write_set(tapes, catalog, job, set_id, set_name);
    let status = match &result {
        Ok(r) if r.problems.is_empty() => "ok",
        Ok(_) => "partial",
        Err(_) => "failed",
    };
    let post = policy
        .policy
        .run_hooks(HookPhase::PostBackup, &post_context.status(status));
    let mut report = result?;
    for f in post.failures() {
        let msg = format!("post-backup hook: {f}");
        progress.problem(&msg);
        warnings.push(msg);
    }
    report.warnings = warnings;
    report.snapshots = snapshots;
    Ok(report)
}

/// Set data goes in records of `block_size` bytes: a whole number of tar blocks, and no
/// larger than the drive's largest record.
fn check_block_size(block_size: usize, drive: &dyn TapeDrive) -> Result<()> {
    let max_record = drive.max_record_len();
    if block_size < 512 || !block_size.is_multiple_of(512) || block_size > max_record {
        return Err(CoreError::BadBlockSize {
            size: block_size,
            max: max_record,
        });
    }
    Ok(())
}

/// The set an incremental backup of `roots` is taken since: `None` for a full backup. Full
/// or incremental is as asked, else as the policy's backup-mode says (incremental only when
/// it says so for every root's file system); an incremental backup with no earlier set of
/// the same paths is a full one, unless it was asked for.
fn parent_set(
    opts: &BackupOptions,
    policy: &Policy,
    roots: &[PathBuf],
    root_names: &[String],
    catalog: Option<&Catalog>,
) -> Result<Option<SetInfo>> {
    let explicit = opts.incremental == Some(true);
    let incremental = match opts.incremental {
        Some(i) => i,
        // One set is one mode: incremental only when every path's file system says so.
        None => roots.iter().all(|root| {
            let uuid = reel_policy::filesystem_uuid(root);
            policy
                .config
                .mode_for(&mount_point_of(root), uuid.as_deref())
                == reel_policy::ModeKind::Incremental
        }),
    };
    if !incremental {
        return Ok(None);
    }
    // The parent of an incremental backup: the newest set of the same paths.
    match catalog {
        None if explicit => Err(CoreError::IncrementalNeedsCatalog),
        None => Ok(None),
        Some(cat) => match cat.latest_set_for_paths(root_names)? {
            Some(p) => Ok(Some(p)),
            None if explicit => Err(CoreError::NoEarlierSet {
                paths: root_names.to_vec(),
            }),
            None => Ok(None),
        },
    }
}

/// The name of a set not named by the user: host and time, `-2`, `-3`… when the catalog
/// already has a set of that name (two backups in one second would share it, and a restore
/// by name would have to guess).
fn default_set_name(catalog: Option<&Catalog>) -> String {
    let host = host_name();
    let stamp: String = now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_digit())
        .take(14)
        .collect();
    let base = format!("{}-{}", if host.is_empty() { "reel" } else { &host }, stamp);
    let taken: Vec<String> = catalog
        .and_then(|c| c.sets().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect();
    std::iter::once(base.clone())
        .chain((2..).map(|n| format!("{base}-{n}")))
        .find(|name| !taken.contains(name))
        .unwrap_or(base)
}

/// Runs the pre-backup hooks: one that asks to cancel stops the backup; other failures are
/// reported and added to `warnings`.
fn run_pre_backup_hooks(
    policy: &Policy,
    context: &HookContext,
    progress: &dyn Progress,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let pre = policy.run_hooks(HookPhase::PreBackup, context);
    if pre.abort_requested() {
        return Err(CoreError::CancelledByHook {
            failures: pre.failures().map(|f| f.to_string()).collect(),
        });
    }
    for f in pre.failures() {
        let msg = format!("pre-backup hook: {f}");
        progress.problem(&msg);
        warnings.push(msg);
    }
    Ok(())
}

/// Where each root is read: a snapshot of it with `--snapshot`, else the live tree. Notes
/// on snapshots are reported and added to `warnings`.
fn take_snapshots(
    roots: &[PathBuf],
    opts: &BackupOptions,
    policy: &Policy,
    progress: &dyn Progress,
    warnings: &mut Vec<String>,
) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for root in roots {
        let (source, note) = take_snapshot(root, opts, policy)?;
        if let Some(note) = note {
            progress.problem(&note);
            warnings.push(note);
        }
        sources.push(source);
    }
    Ok(sources)
}

/// The policy of one backup, loaded once.
struct BackupPolicy {
    policy: Policy,
    filter: BackupFilter,
    /// Malformed policy lines, with file and line.
    warnings: Vec<String>,
}

fn load_policy(opts: &BackupOptions) -> Result<BackupPolicy> {
    let policy = Policy::load(&opts.policy_roots);
    let warnings = policy
        .diagnostics
        .iter()
        .map(|d| format!("policy: {d}"))
        .collect();
    let cwd = std::env::current_dir().map_err(|e| CoreError::Io {
        context: "finding the current directory".into(),
        source: e,
    })?;
    let mut patterns = Vec::new();
    for text in &opts.excludes {
        patterns.push(
            Pattern::parse_relative_to(text, &ProcessEnv, &cwd).map_err(|source| {
                CoreError::BadExclude {
                    text: text.clone(),
                    source,
                }
            })?,
        );
    }
    let filter = BackupFilter::new(&policy).with_excludes(&patterns);
    Ok(BackupPolicy {
        policy,
        filter,
        warnings,
    })
}

/// With `--snapshot`, a read-only btrfs snapshot of `root` to read from; elsewhere the live
/// tree and a note saying why (or an error with `--require-snapshot`).
fn take_snapshot(
    root: &Path,
    opts: &BackupOptions,
    policy: &Policy,
) -> Result<(Source, Option<String>)> {
    let live = Source::live(root);
    if !opts.snapshot {
        return Ok((live, None));
    }
    match reel_policy::snapshot::create(root, &policy.snapshot_options()) {
        Ok(snap) => {
            let note = (!snap.problems.is_empty()).then(|| {
                format!(
                    "snapshot {}: {}",
                    snap.path.display(),
                    snap.problems.join("; ")
                )
            });
            Ok((
                Source::in_snapshot(root, snap.source_in_snapshot(), snap.path.clone()),
                note,
            ))
        }
        Err(source) if opts.require_snapshot => Err(CoreError::SnapshotRequired { source }),
        Err(e) => Ok((live, Some(format!("{e}; reading the live tree")))),
    }
}

/// The mount point holding `path` (from /proc/self/mountinfo), for the policy's
/// per-file-system backup mode; `/` when the mount table cannot be read.
fn mount_point_of(path: &Path) -> PathBuf {
    reel_sis::mount_point_of(path).unwrap_or_else(|_| PathBuf::from("/"))
}

/// What a backup writes, and how: the job's inputs, from [`write_set`] to [`write_to_tape`].
struct SetJob<'a> {
    opts: &'a BackupOptions,
    progress: &'a dyn Progress,
    policy: &'a BackupPolicy,
    /// The paths to back up, each with where it is read from.
    sources: &'a [Source],
    /// The names of the sources in the set.
    root_names: Vec<String>,
    /// The set an incremental backup changes from.
    parent: Option<SetInfo>,
}

/// The part of a backup that writes the set and records it in the catalog.
fn write_set(
    tapes: &mut Tapes,
    catalog: Option<&mut Catalog>,
    job: SetJob<'_>,
    set_id: uuid::Uuid,
    set_name: String,
) -> Result<BackupReport> {
    let (opts, progress) = (job.opts, job.progress);
    // Without the catalog's word a stopped set's part looks like one continued elsewhere:
    // the backup still goes on, and the volume is taken for full.
    let stopped_sets = match catalog.as_deref().map(Catalog::stopped_set_ids) {
        None => Vec::new(),
        Some(Ok(ids)) => ids,
        Some(Err(e)) => {
            progress.problem(&format!(
                "the catalog cannot say which sets stopped unfinished ({e}); their parts are taken for parts continued on other tapes"
            ));
            Vec::new()
        }
    };
    let mut point = prepare_volume(&mut *tapes.drive, opts, &stopped_sets, None)?;
    let full_because = match point.full.take() {
        Some(why) => Some(why),
        None if point.leftover.is_none() => no_room_for_a_set(&mut *tapes.drive, opts.block_size),
        None => None,
    };
    if let Some(why) = full_because {
        // Started here, the set would put a record or two on this tape and go on on the
        // next at once: a restore of it would need both. It starts on a blank tape instead.
        let full = point.label.barcode.clone();
        let blank = match tapes.changer.next_blank(&full) {
            Ok(blank) => blank,
            Err(e) => {
                progress.problem(&format!("{full} is full: {why}"));
                return Err(e);
            }
        };
        progress.problem(&format!(
            "{full} is full ({why}): the set starts on {blank}"
        ));
        tapes.load_blank(&blank)?;
        point = prepare_volume(&mut *tapes.drive, opts, &stopped_sets, Some(&blank))?;
    }
    let parent_set = job.parent.as_ref().map(|p| {
        let volume = p.parts.first().map_or("?", |part| part.barcode.as_str());
        format!("set {} \"{}\" on {volume}", p.number, p.name)
    });
    let mut closed = ClosedParts::default();
    let written = write_to_tape(
        tapes,
        catalog.as_deref(),
        job,
        SetName {
            id: set_id,
            name: set_name.clone(),
        },
        &point,
        &mut closed,
    );
    let written = match written {
        Ok(w) => w,
        Err(e) if closed.parts.is_empty() => return Err(e),
        Err(e) => return Err(set_left_unfinished(catalog, &set_name, closed, e)),
    };
    let WrittenSet {
        info,
        first_label,
        new_labels,
        mut spool,
        problems,
        unchanged_files,
        skipped_by_policy,
    } = written;
    // The tape is the truth; the catalog is a cache: a failure here is reported, not fatal.
    let mut catalog_warning = None;
    if let Some(cat) = catalog {
        let result = (|| -> Result<()> {
            if point.labelled {
                for v in cat.volumes()? {
                    if v.barcode == first_label.barcode && v.id != first_label.volume_id {
                        cat.forget_volume(v.id)?;
                    }
                }
            }
            cat.record_volume(&first_label)?;
            // A stopped set's part this set was written over is gone from the tape.
            cat.forget_stopped_parts(first_label.volume_id, point.data_file)?;
            for l in &new_labels {
                for v in cat.volumes()? {
                    if v.barcode == l.barcode && v.id != l.volume_id {
                        cat.forget_volume(v.id)?;
                    }
                }
                cat.record_volume(l)?;
            }
            cat.add_set(&info, spool.read_back()?)?;
            Ok(())
        })();
        if let Err(e) = result {
            let msg = format!("the set is on tape, but the catalog was not updated: {e}");
            progress.problem(&msg);
            catalog_warning = Some(msg);
        }
    }
    Ok(BackupReport {
        volumes: std::iter::once(first_label.barcode.clone())
            .chain(new_labels.iter().map(|l| l.barcode.clone()))
            .collect(),
        set: info,
        problems,
        labelled: point.labelled,
        replaced_leftover: point.leftover,
        unchanged_files,
        parent_set,
        catalog_warning,
        skipped_by_policy,
        warnings: Vec::new(),
        snapshots: Vec::new(),
    })
}

/// The medium's capacity and remaining bytes, when the drive knows them: st and GNU rmt
/// report a capacity of 0, which says nothing about the room left.
fn known_media(drive: &mut dyn TapeDrive) -> Option<reel_tape::MediaParameters> {
    drive.media_parameters().ok().filter(|m| m.capacity > 0)
}

/// Why the tape in `drive` cannot take the start of a set: it is in its early-warning zone,
/// or within one record of it. `None` when there is room, or when the drive does not say
/// (capacity 0, as st and GNU rmt report: early warning will tell).
fn no_room_for_a_set(drive: &mut dyn TapeDrive, block_size: usize) -> Option<String> {
    let media = known_media(drive)?;
    let zone = drive
        .drive_parameters()
        .map_or(0, |d| u64::from(d.eot_warning_zone_size));
    let mib = |bytes: u64| format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20));
    (media.remaining < zone + block_size as u64).then(|| {
        format!(
            "{} of {} left, early warning at {} before the end",
            mib(media.remaining),
            mib(media.capacity),
            mib(zone)
        )
    })
}

/// The id and name of the set being written.
struct SetName {
    id: uuid::Uuid,
    name: String,
}

/// A set written to tape, data and index, that the catalog has yet to hear of.
struct WrittenSet {
    info: SetInfo,
    /// The volume the set begins on, and those labelled for it.
    first_label: VolumeLabel,
    new_labels: Vec<VolumeLabel>,
    /// The set's index, to read back into the catalog.
    spool: reel_archive::index::IndexSpool,
    problems: Vec<String>,
    unchanged_files: u64,
    skipped_by_policy: u64,
}

/// Writes the set's data from `point` on, across as many volumes as it takes, then its
/// index. Parts closed on full volumes are noted in `closed`, which outlives a failure.
fn write_to_tape(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    job: SetJob<'_>,
    set: SetName,
    point: &AppendPoint,
    closed: &mut ClosedParts,
) -> Result<WrittenSet> {
    let SetJob {
        opts,
        progress,
        policy,
        sources,
        root_names,
        parent,
    } = job;
    let roots: Vec<PathBuf> = sources.iter().map(|s| s.read_from.clone()).collect();
    let set_number = (point.data_file / 2 + 1) as u32;
    let started = now_rfc3339();
    let totals = progress.wants_totals().then(|| {
        let t = Arc::new(Totals::default());
        spawn_counter(roots.clone(), opts.one_file_system, t.clone());
        t
    });
    tapes
        .drive
        .set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: point.block,
            },
            false,
        )
        .map_err(|e| {
            ArchiveError::tape(
                format!(
                    "positioning {} at block {}",
                    tapes.drive.describe(),
                    point.block
                ),
                e,
            )
        })?;
    let first_label = point.label.clone();
    let sink = SpanningSink::new(
        tapes,
        progress,
        point.label.clone(),
        set.id,
        set.name.clone(),
        point.data_file,
        opts.block_size,
        closed,
    )?;
    let mut writer = SetWriter::with_sink(sink, opts.block_size)?;
    let mut job = Walker::new(progress, opts, policy);
    job.totals = totals.clone();
    job.parent = parent.as_ref().map(|p| (p.id, catalog));
    for source in sources {
        job.walk_root(&mut writer, source, opts.one_file_system)?;
    }
    if let Some(t) = &totals {
        t.stop.store(true, Ordering::Relaxed);
    }
    let data = writer.finish_data()?;
    let mut sink = data.sink;
    let mut spool = data.spool;
    // The index must fit after the last part; if the volume is nearly full, it goes on the
    // next one after an empty last part. A drive that reports no capacity (st, GNU rmt: 0)
    // gives no remaining bytes either: the index is written, and early warning, if it comes,
    // is the drive's to signal.
    let need = spool.bytes() + 4 * opts.block_size as u64 + (1 << 20);
    let remaining = known_media(sink.drive()).map_or(u64::MAX, |m| m.remaining);
    if remaining < need {
        sink.switch_volume()?;
        sink.end_file()?;
    }
    let parts = sink.parts().to_vec();
    let new_labels = sink.new_labels.clone();
    drop(sink);
    let index_file = parts
        .last()
        .map(|p| p.data_file + 1)
        .unwrap_or(point.data_file + 1);
    let info = SetInfo {
        id: set.id,
        number: set_number,
        name: set.name,
        started,
        finished: now_rfc3339(),
        host: host_name(),
        paths: root_names,
        mode: if parent.is_some() {
            SetMode::Incremental
        } else {
            SetMode::Full
        },
        parent: parent.as_ref().map(|p| p.id),
        block_size: opts.block_size as u32,
        volume_id: first_label.volume_id,
        data_file: point.data_file,
        data_first_block: parts.first().map(|p| p.first_block).unwrap_or(point.block),
        data_records: data.records,
        archive_bytes: data.archive_bytes,
        files: job.files,
        directories: job.directories,
        other: job.other,
        content_bytes: job.content_bytes,
        problems: job.problems.len() as u64,
        reel_version: env!("CARGO_PKG_VERSION").to_string(),
        parts,
    };
    reel_archive::write_index(
        &mut *tapes.drive,
        &mut spool,
        &info,
        opts.block_size,
        index_file,
    )?;
    Ok(WrittenSet {
        info,
        first_label,
        new_labels,
        spool,
        problems: std::mem::take(&mut job.problems),
        unchanged_files: job.unchanged,
        skipped_by_policy: job.skipped.len() as u64,
    })
}

/// The error of a backup that failed after closing parts of its set on full volumes. The
/// set has no index, so nothing of it can be restored; its parts are recorded in the
/// catalog as stopped, so that the next backup on each of those volumes starts where the
/// part starts instead of after it. The message says so (or that it could not be recorded).
fn set_left_unfinished(
    catalog: Option<&mut Catalog>,
    set_name: &str,
    closed: ClosedParts,
    error: CoreError,
) -> CoreError {
    // The operator's answer says more than the error it became on the way out of the writer.
    let cause = match closed.stopped {
        Some(why) => CoreError::Stopped(why),
        None => error,
    };
    let why = cause.to_string();
    let stopped_at = now_rfc3339();
    let recorded = match catalog {
        None => Err("no catalog is open".to_string()),
        Some(cat) => closed
            .parts
            .iter()
            .try_for_each(|c| {
                cat.record_stopped_part(&StoppedPart {
                    set_id: c.marker.set_id,
                    part: c.marker.part,
                    set_name: c.marker.set_name.clone(),
                    volume_id: c.part.volume_id,
                    barcode: c.part.barcode.clone(),
                    data_file: c.part.data_file,
                    first_block: c.part.first_block,
                    next_barcode: c.marker.next_barcode.clone(),
                    stopped: stopped_at.clone(),
                    why: why.clone(),
                })
            })
            .map_err(|e| e.to_string()),
    };
    let places: Vec<String> = closed
        .parts
        .iter()
        .map(|c| format!("{} (from tape file {})", c.part.barcode, c.part.data_file))
        .collect();
    let (its_parts, are, tapes) = match (places.as_slice(), closed.parts.as_slice()) {
        ([one], [closed]) => (
            format!("Its part on {one}"),
            "is",
            closed.part.barcode.clone(),
        ),
        (many, _) => (
            format!("Its parts on {}", many.join(" and ")),
            "are",
            "each of those tapes".to_string(),
        ),
    };
    let left = match recorded {
        Ok(()) => format!(
            "Set {set_name} was not finished: nothing of it can be restored. {its_parts} {are} recorded in the catalog as unfinished: the next backup on {tapes} starts there and reuses its space"
        ),
        Err(e) => format!(
            "Set {set_name} was not finished: nothing of it can be restored. {its_parts} could not be recorded in the catalog as unfinished ({e}), so reel will take {tapes} for full until it is erased"
        ),
    };
    CoreError::SetUnfinished {
        cause: Box::new(cause),
        left,
    }
}

/// What `opts` would back up, and what the policy would skip and why, without writing.
pub fn dry_run(opts: &BackupOptions, progress: &dyn Progress) -> Result<DryRunReport> {
    let roots = resolve_roots(&opts.paths)?;
    let policy = load_policy(opts)?;
    let mut job = Walker::new(progress, opts, &policy);
    for root in &roots {
        let source = Source::live(root);
        job.walk_filtered(
            &source,
            opts.one_file_system,
            &mut |job, _real, _live, captured| {
                match captured.meta.kind {
                    FileKind::Regular => {
                        job.files += 1;
                        job.content_bytes += captured.meta.size;
                    }
                    FileKind::Directory => job.directories += 1,
                    _ => job.other += 1,
                }
                Ok(())
            },
        )?;
    }
    let mut warnings = policy.warnings.clone();
    warnings.extend(job.problems.iter().cloned());
    Ok(DryRunReport {
        files: job.files,
        directories: job.directories,
        other: job.other,
        bytes: job.content_bytes,
        skipped: std::mem::take(&mut job.skipped),
        warnings,
    })
}

/// The walk of one backup: turns files into set members.
struct Walker<'p, 'c> {
    names: NameCache,
    /// First archive name of every multiply-linked file seen, by (device, inode).
    links: HashMap<(u64, u64), Vec<u8>>,
    problems: Vec<String>,
    files: u64,
    directories: u64,
    other: u64,
    content_bytes: u64,
    /// Files of an incremental backup found unchanged since the parent.
    unchanged: u64,
    progress: &'p dyn Progress,
    totals: Option<Arc<Totals>>,
    seen: u64,
    /// The parent set of an incremental backup and the catalog that lists it.
    parent: Option<(uuid::Uuid, Option<&'c Catalog>)>,
    /// What the policy keeps out of the set.
    filter: Option<&'c BackupFilter>,
    skipped: Vec<SkippedEntry>,
    /// Single instance store links met on the way.
    sis: crate::sis::SisBackup,
}

impl<'p, 'c> Walker<'p, 'c> {
    /// A walk that has seen nothing yet; its filter is the policy's unless `opts` says to
    /// ignore exclusions.
    fn new(progress: &'p dyn Progress, opts: &BackupOptions, policy: &'c BackupPolicy) -> Self {
        Walker {
            names: NameCache::new(),
            links: HashMap::new(),
            problems: Vec::new(),
            files: 0,
            directories: 0,
            other: 0,
            content_bytes: 0,
            unchanged: 0,
            progress,
            totals: None,
            seen: 0,
            parent: None,
            filter: (!opts.ignore_exclusions).then_some(&policy.filter),
            skipped: Vec::new(),
            sis: crate::sis::SisBackup::default(),
        }
    }

    fn problem(&mut self, message: String) {
        self.progress.problem(&message);
        self.problems.push(message);
    }

    fn walk_root<S: RecordSink>(
        &mut self,
        writer: &mut SetWriter<S>,
        source: &Source,
        one_fs: bool,
    ) -> Result<()> {
        self.walk_filtered(source, one_fs, &mut |job, real, live, captured| {
            job.add_captured(writer, real, live, captured)
        })
    }

    /// Walks one source in name order, asking the policy about every entry: skipped entries
    /// (and the subtrees of skipped directories) are recorded, the rest go to `visit` with
    /// their real path (where to read) and live path (what to call them). The walk and the
    /// capture run on a thread of their own ([`crate::scan`]), ahead of `visit`.
    fn walk_filtered(
        &mut self,
        source: &Source,
        one_fs: bool,
        visit: &mut dyn FnMut(&mut Self, &Path, &Path, Captured) -> Result<()>,
    ) -> Result<()> {
        let filter = self.filter;
        std::thread::scope(|scope| {
            let (walked, scanner) = crate::scan::spawn(scope, source, one_fs, filter)?;
            let mut visited = || -> Result<()> {
                for item in walked.iter().flatten() {
                    match item {
                        Walked::Entry {
                            real,
                            live,
                            captured,
                        } => visit(self, &real, &live, captured)?,
                        Walked::Skipped(s) => self.skipped.push(s),
                        Walked::Problem(p) => self.problem(p),
                    }
                }
                Ok(())
            };
            let result = visited();
            // A job that stopped (a tape error) stops the walk too.
            drop(walked);
            if let Err(panic) = scanner.join() {
                std::panic::resume_unwind(panic);
            }
            result
        })
    }

    /// Captures `path` (metadata, and the open file of a regular file); problems are
    /// reported, and `None` means the entry cannot be backed up.
    fn capture(&mut self, path: &Path) -> Option<Captured> {
        let captured = capture_open(path, &mut self.names);
        self.report_capture(captured)
    }

    /// Reports a capture's warnings, or its error (the entry is then left out).
    fn report_capture(&mut self, captured: reel_stream::Result<Captured>) -> Option<Captured> {
        match captured {
            Ok(c) => {
                for w in &c.warnings {
                    self.problem(w.clone());
                }
                Some(c)
            }
            Err(e) => {
                self.problem(e.to_string());
                None
            }
        }
    }

    /// Captures and adds the entry at `path` (not walked: common-store files of SIS links).
    fn add_path<S: RecordSink>(
        &mut self,
        writer: &mut SetWriter<S>,
        path: &Path,
        live: &Path,
    ) -> Result<()> {
        match self.capture(path) {
            Some(c) => self.add_captured(writer, path, live, c),
            None => Ok(()),
        }
    }

    /// Adds an entry read at `path`, named after `live` (its path on the live system; the
    /// same unless reading from a snapshot).
    fn add_captured<S: RecordSink>(
        &mut self,
        writer: &mut SetWriter<S>,
        path: &Path,
        live: &Path,
        captured: Captured,
    ) -> Result<()> {
        let name = archive_name(live);
        if name.is_empty() {
            return Ok(()); // the root directory "/" itself
        }
        let Captured { meta, file, .. } = captured;
        self.progress.entry(&live.to_string_lossy());
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
        crate::efs::capture_marker(&mut entry);
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
            FileKind::Regular => {
                if self.add_if_sis_link(writer, path, &mut entry)? {
                    self.files += 1;
                    return Ok(());
                }
                if let Some(reference) = self.unchanged_since_parent(&entry)? {
                    writer.add_reference(reference)?;
                    self.unchanged += 1;
                    self.files += 1;
                    self.progress.bytes(entry.meta.size);
                    return Ok(());
                }
                self.add_file(writer, path, &entry, file)
            }
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

    /// A SIS link goes in as a hard link to its common-store file (written first, once per
    /// set). `false`: back it up as an ordinary file.
    fn add_if_sis_link<S: RecordSink>(
        &mut self,
        writer: &mut SetWriter<S>,
        path: &Path,
        entry: &mut Entry,
    ) -> Result<bool> {
        let plan = match self.sis.plan(path, entry) {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(false),
            Err(e) => {
                self.problem(format!(
                    "{}: backed up as an ordinary file: {e}",
                    path.display()
                ));
                return Ok(false);
            }
        };
        for file in &plan.write_first {
            self.add_path(writer, file, file)?;
        }
        crate::sis::make_link_member(entry, &plan);
        writer.add(entry, None, |_| {})?;
        self.progress.bytes(entry.meta.size);
        Ok(true)
    }

    /// In an incremental backup, the index line that refers to the parent chain's copy of a
    /// file that has not changed (same kind, size, mtime, ctime, inode and metadata).
    fn unchanged_since_parent(&self, entry: &Entry) -> Result<Option<IndexEntry>> {
        let Some((parent_id, Some(cat))) = self.parent else {
            return Ok(None);
        };
        let Some(old) = cat.entry(parent_id, &entry.path)? else {
            return Ok(None);
        };
        let now = IndexEntry::new(entry, 0, None);
        let same = old.kind == EntryKind::File
            && old.size == now.size
            && old.mtime == now.mtime
            && old.ctime.is_some()
            && old.ctime == now.ctime
            && old.ino == now.ino
            && old.meta_digest == now.meta_digest
            && old.hash.is_some();
        if !same {
            return Ok(None);
        }
        let source = old.source_set.unwrap_or(parent_id);
        Ok(Some(IndexEntry {
            source_set: Some(source),
            ..old
        }))
    }

    fn add_file<S: RecordSink>(
        &mut self,
        writer: &mut SetWriter<S>,
        path: &Path,
        entry: &Entry,
        opened: Option<File>,
    ) -> Result<()> {
        let file = match opened.map(Ok).unwrap_or_else(|| open_source(path)) {
            Ok(f) => f,
            Err(e) => {
                self.problem(format!(
                    "{}: cannot open: {e} (not backed up)",
                    path.display()
                ));
                return Ok(());
            }
        };
        let mut src = CapturingReader {
            file: ContentReader::new(file, entry.meta.sparse.clone()),
            error: None,
        };
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
        } else if let Ok(after) = rustix::fs::fstat(src.file.file()) {
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
