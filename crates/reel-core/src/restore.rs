//! `reel restore`: re-create the members of a set under a target directory.
//!
//! The set's index is read first: it says which members the patterns select, where each
//! one starts, and the content hash every restored file must match. Data is then read in
//! order, seeking over long stretches of unselected members, and written through
//! [`reel_stream::RestoreRoot`], which refuses unsafe paths and never writes through a
//! symlink. A damaged record costs the member it is in: the restore seeks to the next
//! selected member and goes on.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use reel_archive::pax::PaxReader;
use reel_archive::{ArchiveError, Entry, IndexEntry, SetInfo};
use reel_catalog::Catalog;
use reel_stream::{Committed, Existing, FileKind, Outcome, RestoreRoot, StreamError, check_path};

use crate::error::Result;
use crate::plan::{self, Approach, Plan, Planner};
use crate::progress::Progress;
use crate::select::Selector;
use crate::sets::{self, ResolvedSet};
use crate::span::SetStream;
use crate::tapes::Tapes;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Set number, name or id; `None` = the latest complete set.
    pub set: Option<String>,
    pub patterns: Vec<String>,
    pub target: PathBuf,
    pub existing: Existing,
    /// Where the policy is read (paths-not-to-restore, post-restore hooks, last-restore-id);
    /// `None` restores everything and tells no one.
    pub policy_roots: Option<reel_policy::Roots>,
    /// A file whose final name is busy is staged next to it and a MoveFile scheduled in this
    /// delayed-operation file (carried out at the next boot by `reel delayed run`).
    pub schedule_busy: Option<PathBuf>,
}

impl RestoreOptions {
    /// The latest complete set, every member, under `target`; nothing existing is
    /// overwritten, no policy is read and no busy file is scheduled.
    pub fn new(target: PathBuf) -> Self {
        RestoreOptions {
            set: None,
            patterns: Vec::new(),
            target,
            existing: Existing::Skip,
            policy_roots: None,
            schedule_busy: None,
        }
    }
}

/// What decides, per member, whether and how it is written.
#[derive(Clone, Copy, Default)]
pub struct Rules<'a> {
    /// paths-not-to-restore (matched on the member's original absolute path).
    pub filter: Option<&'a reel_policy::RestoreFilter>,
    /// Delayed-operation file for files whose final name is busy.
    pub schedule_busy: Option<&'a std::path::Path>,
    /// Single instance store links and common-store files (reel's own sets).
    pub sis: Option<&'a std::cell::RefCell<crate::sis::SisRestore>>,
}

/// What a restore did. Everything not restored is listed with its reason.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RestoreReport {
    pub set: Option<SetInfo>,
    pub target: PathBuf,
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    pub hardlinks: u64,
    pub other: u64,
    pub bytes: u64,
    pub skipped_existing: u64,
    /// Members refused for safety (absolute paths, `..`, writes through symlinks, …).
    pub refused: Vec<String>,
    /// Members that failed for other reasons (permissions, space, …).
    pub problems: Vec<String>,
    /// Members whose data is damaged on the tape or fails its recorded hash.
    pub integrity_failures: Vec<String>,
    /// Hard-link targets restored because a selected member links to them.
    pub added_link_targets: Vec<String>,
    /// Files whose final name was busy: staged, with a move scheduled for the next boot.
    pub scheduled: Vec<String>,
    /// Members left as they are because the policy says not to restore them.
    pub left_by_policy: Vec<String>,
    /// The new last-restore-id, after a whole-set restore.
    pub restore_id: Option<uuid::Uuid>,
    /// Malformed policy lines and hook failures (reported, not fatal).
    pub warnings: Vec<String>,
}

impl RestoreReport {
    pub fn is_clean(&self) -> bool {
        self.refused.is_empty() && self.problems.is_empty() && self.integrity_failures.is_empty()
    }
}

/// One selected member: where its data is; its detail is the content hash it must match.
type Planned = plan::Planned<Option<blake3::Hash>>;

/// The selected members of `set`, with the hard-link targets they need.
fn make_plan(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    set: &ResolvedSet,
    selector: &Selector,
) -> Result<Plan<Option<blake3::Hash>>> {
    let mut planner = Planner::new(selector, |path| path, |e| e.hash);
    // Patterns that start with plain components, against the catalog: range lookups under
    // them on the path index, not a scan of the set (a restore of one file touches a handful
    // of rows however large the set).
    let ranges = selector
        .lookup_paths()
        .filter(|_| set.from_catalog())
        .zip(catalog);
    match ranges {
        Some((paths, cat)) => {
            for p in paths {
                cat.for_each_entry_under(set.info.id, p, |e: IndexEntry| -> Result<()> {
                    planner.offer(&e);
                    Ok(())
                })?;
            }
        }
        None => sets::for_each_member(tapes, catalog, set, |e| {
            planner.offer(&e);
            Ok(())
        })?,
    }
    planner.finish(|target| match ranges {
        // A target outside the looked-up ranges: one more lookup.
        Some((_, cat)) => Ok(cat.entry(set.info.id, target)?),
        None => Ok::<_, crate::error::CoreError>(None),
    })
}

/// Restores the selected members of a set. Members an incremental set left in earlier sets
/// are read from those sets (loading their volumes through the changer).
pub fn restore(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let selector = Selector::new(&opts.patterns)?;
    let set = sets::resolve(tapes, catalog, opts.set.as_deref())?;
    let plan = make_plan(tapes, catalog, &set, &selector)?;
    progress.total(plan.total_bytes, plan.members);
    let info = set.info.clone();
    let mut report = RestoreReport {
        set: Some(info.clone()),
        target: opts.target.clone(),
        added_link_targets: plan.added_link_targets,
        ..Default::default()
    };
    let policy = opts.policy_roots.as_ref().map(reel_policy::Policy::load);
    if let Some(p) = &policy {
        for d in &p.diagnostics {
            let msg = format!("policy: {d}");
            progress.problem(&msg);
            report.warnings.push(msg);
        }
    }
    let filter = policy.as_ref().map(reel_policy::RestoreFilter::new);
    let mut root = RestoreRoot::open(&opts.target, opts.existing)?;
    let sis = crate::sis::SisRestore::new(&opts.target);
    // Earlier sets first (unchanged files), then the set itself (directories, links and
    // changed files, in order, so hard links find their targets).
    let mut groups: Vec<(Option<uuid::Uuid>, Vec<Planned>)> = plan.groups.into_iter().collect();
    groups.sort_by_key(|(source, _)| source.is_none());
    for (source, planned) in groups {
        let (source_info, barcode) = match source {
            None => (info.clone(), set.barcode.clone()),
            Some(id) => sets::info_by_id(tapes, catalog, id)?,
        };
        let parts = source_info.data_parts(&barcode);
        let block_size = source_info.block_size as usize;
        let stream = SetStream::new(tapes, parts, block_size)?;
        let mut pax = PaxReader::new(stream);
        let rules = Rules {
            filter: filter.as_ref(),
            schedule_busy: opts.schedule_busy.as_deref(),
            sis: Some(&sis),
        };
        restore_group(
            &mut pax,
            &mut root,
            rules,
            &source_info,
            &planned,
            block_size,
            &mut report,
            progress,
        )?;
    }
    // What could not be applied (privileges, file system support) and directory metadata
    // problems: listed like every other problem, not only counted.
    for e in root.finish() {
        let msg = e.to_string();
        progress.problem(&msg);
        report.problems.push(msg);
    }
    let (notes, problems) = sis.into_inner().finish();
    for n in notes {
        progress.problem(&n);
        report.warnings.push(n);
    }
    for p in problems {
        progress.problem(&p);
        report.problems.push(p);
    }
    // A whole set restored to the system's own places (`/`, or the REEL_ROOT the policy is
    // read under): applications learn of it (LastRestoreId, post-restore hooks). A restore
    // to some other directory changes nothing they use.
    if let Some(p) = &policy
        && opts.patterns.is_empty()
        && same_directory(&opts.target, p.roots().prefix())
    {
        let mut ctx = reel_policy::HookContext::new().set_id(info.id);
        match reel_policy::state::write_last_restore_id(p.roots()) {
            Ok(id) => {
                report.restore_id = Some(id);
                ctx = ctx.var("REEL_RESTORE_ID", id.to_string());
            }
            Err(e) => {
                let msg = format!("last-restore-id not written: {e}");
                progress.problem(&msg);
                report.warnings.push(msg);
            }
        }
        let hooks = p.run_hooks(reel_policy::HookPhase::PostRestore, &ctx);
        for f in hooks.failures() {
            let msg = format!("post-restore hook: {f}");
            progress.problem(&msg);
            report.warnings.push(msg);
        }
    }
    Ok(report)
}

/// Restores one set's planned members, seeking over long stretches and past damage.
#[allow(clippy::too_many_arguments)]
fn restore_group(
    pax: &mut PaxReader<SetStream<'_>>,
    root: &mut RestoreRoot,
    rules: Rules<'_>,
    info: &SetInfo,
    plan: &[Planned],
    block_size: usize,
    report: &mut RestoreReport,
    progress: &dyn Progress,
) -> Result<()> {
    // Big enough for the largest member, at most 1 MiB: a few small files need no MiB
    // buffer zeroed.
    let largest = plan.iter().map(|p| p.size).max().unwrap_or(0);
    let mut buf = vec![0u8; largest.clamp(4096, 1 << 20) as usize];
    let mut approach = Approach::new(block_size);
    for planned in plan {
        if approach.must_seek(pax.offset(), planned.offset) {
            if let Err(e) = seek(pax, planned.offset) {
                if let Some(stop) = pax.get_mut().stopped() {
                    return Err(stop);
                }
                let msg = format!(
                    "set {} ({}): cannot reach the member at byte {}: {e}",
                    info.number, info.name, planned.offset
                );
                progress.problem(&msg);
                report.integrity_failures.push(msg);
                approach.lost();
                continue;
            }
            approach.arrived();
        }
        match restore_one(pax, root, rules, planned, &mut buf, report, progress) {
            Ok(()) => {}
            Err(
                e @ (ArchiveError::Tape { .. }
                | ArchiveError::Corrupt { .. }
                | ArchiveError::Truncated { .. }),
            ) => {
                if let Some(stop) = pax.get_mut().stopped() {
                    return Err(stop);
                }
                let msg = format!(
                    "set {} (member at byte {}): {e}",
                    info.number, planned.offset
                );
                progress.problem(&msg);
                report.integrity_failures.push(msg);
                approach.lost();
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn seek(pax: &mut PaxReader<SetStream<'_>>, offset: u64) -> std::result::Result<(), ArchiveError> {
    pax.get_mut().seek_to(offset)?;
    pax.reset_at(offset);
    Ok(())
}

/// Reads members until the planned one and restores it. Archive errors are returned (they
/// make the caller re-synchronise); per-member problems go into the report.
fn restore_one(
    pax: &mut PaxReader<SetStream<'_>>,
    root: &mut RestoreRoot,
    rules: Rules<'_>,
    planned: &Planned,
    buf: &mut [u8],
    report: &mut RestoreReport,
    progress: &dyn Progress,
) -> std::result::Result<(), ArchiveError> {
    let read = loop {
        let Some(r) = pax.next_entry()? else {
            return Err(ArchiveError::Truncated {
                offset: pax.offset(),
                what: format!(
                    "the set data ends before the member the index places at byte {}",
                    planned.offset
                ),
            });
        };
        if r.header_offset == planned.offset {
            break r;
        }
        if r.header_offset > planned.offset {
            return Err(ArchiveError::Corrupt {
                offset: r.header_offset,
                what: format!(
                    "the index places a member at byte {} but the data has none there",
                    planned.offset
                ),
            });
        }
    };
    apply_member(
        pax,
        root,
        rules,
        read.entry,
        planned.detail,
        buf,
        report,
        progress,
    )
}

/// Restores one member whose header `pax` has just read (its content is next in `pax`):
/// refuses unsafe names, honours the policy, writes through the restore root and checks the
/// content against `expected` when known. Archive errors are returned (the caller decides how
/// to go on); per-member problems go into the report. Used for reel's own sets and for any
/// other tar archive.
#[allow(clippy::too_many_arguments)]
pub fn apply_member<R: std::io::Read>(
    pax: &mut PaxReader<R>,
    root: &mut RestoreRoot,
    rules: Rules<'_>,
    mut entry: Entry,
    expected: Option<blake3::Hash>,
    buf: &mut [u8],
    report: &mut RestoreReport,
    progress: &dyn Progress,
) -> std::result::Result<(), ArchiveError> {
    if let Err(e) = crate::efs::restore_marker(&mut entry) {
        let msg = format!("{}: {e}", entry.display_path());
        progress.problem(&msg);
        report.integrity_failures.push(msg);
        return Ok(());
    }
    let shown = entry.display_path();
    progress.entry(&shown);
    let rel = match check_path(&entry.path) {
        Ok(r) => r,
        Err(reason) => {
            report.refused.push(format!("{shown}: {reason}"));
            progress.problem(&format!("refused {shown}: {reason}"));
            return Ok(());
        }
    };
    // paths-not-to-restore: the live copy stays as it is (matched on the original path).
    if let Some(rule) = rules.filter.and_then(|f| {
        f.check(
            &std::path::Path::new("/").join(rel.to_path_buf()),
            entry.meta.kind == FileKind::Directory && entry.hardlink.is_none(),
        )
    }) {
        report.left_by_policy.push(format!("{shown}: {rule}"));
        return Ok(());
    }
    if let Some(sis) = rules.sis {
        // A file of a common store goes into the target's store, not into the tree.
        if let Some(name) = crate::sis::store_file_name(&entry.path) {
            match sis.borrow_mut().restore_store_member(pax, &name, buf) {
                Ok(true) => return Ok(()),
                Ok(false) => return Ok(()), // the store's internal files: the target keeps its own
                Err(e) => {
                    let msg = format!("{shown}: {e}");
                    progress.problem(&msg);
                    report.problems.push(msg);
                    return Ok(());
                }
            }
        }
        // A SIS link: an empty file with the link's metadata now, a clone at the end.
        if let Some(pos) = entry
            .extra
            .iter()
            .position(|(k, _)| k == crate::sis::PAX_KEY)
        {
            let (_, value) = entry.extra.remove(pos);
            let text = String::from_utf8_lossy(&value).into_owned();
            let mut meta = entry.meta.clone();
            meta.size = 0;
            meta.sparse = None;
            let made = match root.begin_file(&rel, &meta) {
                Ok(Some(p)) => p.commit().map(|_| true),
                Ok(None) => Ok(false),
                Err(e) => Err(e),
            };
            match made {
                Ok(true) => {
                    let dest = root.path().join(rel.to_path_buf());
                    if let Err(e) = sis.borrow_mut().restored_link(&dest, &text) {
                        let msg = format!("{shown}: {e}");
                        progress.problem(&msg);
                        report.problems.push(msg);
                    } else {
                        report.files += 1;
                        report.bytes += entry.meta.size;
                    }
                }
                Ok(false) => report.skipped_existing += 1,
                Err(e) => record_outcome(Err(e), &shown, report, progress),
            }
            return Ok(());
        }
    }
    let result: std::result::Result<Outcome, StreamError> = if let Some(target) = &entry.hardlink {
        match check_path(target) {
            Ok(t) => root.make_hardlink(&rel, &t, &entry.meta).inspect(|o| {
                if *o == Outcome::Written {
                    report.hardlinks += 1;
                }
            }),
            Err(reason) => Err(StreamError::Refused {
                path: shown.clone(),
                reason,
            }),
        }
    } else {
        match entry.meta.kind {
            FileKind::Regular => {
                return restore_file(
                    pax, root, rules, &rel, &entry, expected, buf, report, progress,
                );
            }
            FileKind::Directory => root
                .make_dir(&rel, &entry.meta)
                .inspect(|_| report.directories += 1),
            FileKind::Symlink => root.make_symlink(&rel, &entry.meta).inspect(|o| {
                if *o == Outcome::Written {
                    report.symlinks += 1;
                }
            }),
            _ => root.make_special(&rel, &entry.meta).inspect(|o| {
                if *o == Outcome::Written {
                    report.other += 1;
                }
            }),
        }
    };
    record_outcome(result, &shown, report, progress);
    Ok(())
}

fn record_outcome(
    result: std::result::Result<Outcome, StreamError>,
    shown: &str,
    report: &mut RestoreReport,
    progress: &dyn Progress,
) {
    match result {
        Ok(Outcome::Written) => {}
        Ok(Outcome::SkippedExisting) => report.skipped_existing += 1,
        Err(e @ StreamError::Refused { .. }) => {
            progress.problem(&e.to_string());
            report.refused.push(e.to_string());
        }
        Err(e) => {
            let msg = format!("{shown}: {e}");
            progress.problem(&msg);
            report.problems.push(msg);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn restore_file<R: std::io::Read>(
    pax: &mut PaxReader<R>,
    root: &mut RestoreRoot,
    rules: Rules<'_>,
    rel: &reel_stream::RelPath,
    entry: &Entry,
    expected: Option<blake3::Hash>,
    buf: &mut [u8],
    report: &mut RestoreReport,
    progress: &dyn Progress,
) -> std::result::Result<(), ArchiveError> {
    let shown = entry.display_path();
    let mut pending = match root.begin_file(rel, &entry.meta) {
        Ok(Some(p)) => p,
        Ok(None) => {
            report.skipped_existing += 1;
            progress.bytes(entry.meta.size);
            return Ok(());
        }
        Err(e) => {
            record_outcome(Err(e), &shown, report, progress);
            progress.bytes(entry.meta.size);
            return Ok(());
        }
    };
    let mut hasher = reel_stream::ContentHasher::for_meta(&entry.meta);
    let mut write_error = None;
    loop {
        // Archive errors propagate (the partial file is discarded when `pending` drops).
        let n = pax.read_data(buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.bytes(n as u64);
        if write_error.is_none()
            && let Err(e) = pending.write_all(&buf[..n])
        {
            write_error = Some(e);
        }
    }
    if let Some(e) = write_error {
        pending.abort();
        let msg = format!(
            "{shown}: cannot write {}: {e}",
            root.path().join(rel.to_path_buf()).display()
        );
        progress.problem(&msg);
        report.problems.push(msg);
        return Ok(());
    }
    let hash = hasher.finalize();
    if let Some(expected) = expected
        && expected != hash
    {
        pending.abort();
        let msg = format!(
            "{shown}: content does not match the hash recorded at backup time; not restored"
        );
        progress.problem(&msg);
        report.integrity_failures.push(msg);
        return Ok(());
    }
    let final_path = root.path().join(rel.to_path_buf());
    match pending.commit_or_stage(rules.schedule_busy.is_some()) {
        Ok(Committed::Written) => {
            report.files += 1;
            report.bytes += entry.meta.size;
        }
        Ok(Committed::SkippedExisting) => report.skipped_existing += 1,
        Ok(Committed::Staged(staged)) => {
            let scheduled = rules.schedule_busy.map(|ops| {
                reel_delayed::OperationFile::open_or_create(ops)
                    .and_then(|mut f| f.append_move(&staged, &final_path))
            });
            match scheduled {
                Some(Ok(_)) => {
                    report.scheduled.push(format!(
                        "{}: busy; staged as {} and moved into place at the next boot",
                        final_path.display(),
                        staged.display()
                    ));
                    report.files += 1;
                    report.bytes += entry.meta.size;
                }
                Some(Err(e)) => {
                    let _ = std::fs::remove_file(&staged);
                    let msg = format!(
                        "{}: busy, and the move could not be scheduled: {e}",
                        final_path.display()
                    );
                    progress.problem(&msg);
                    report.problems.push(msg);
                }
                None => {}
            }
        }
        Err(e) => record_outcome(Err(e), &shown, report, progress),
    }
    Ok(())
}

/// Whether two paths name the same existing directory.
fn same_directory(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
