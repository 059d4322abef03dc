//! `reel restore`: re-create the members of a set under a target directory.
//!
//! The set's index is read first: it says which members the patterns select, where each
//! one starts, and the content hash every restored file must match. Data is then read in
//! order, seeking over long stretches of unselected members, and written through
//! [`reel_stream::RestoreRoot`], which refuses unsafe paths and never writes through a
//! symlink. A damaged record costs the member it is in: the restore seeks to the next
//! selected member and goes on.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use reel_archive::pax::PaxReader;
use reel_archive::records::RecordReader;
use reel_archive::{ArchiveError, Entry, SetInfo};
use reel_stream::{Existing, FileKind, Outcome, RestoreRoot, StreamError, check_path};
use reel_tape::TapeDrive;

use crate::error::{CoreError, Result};
use crate::progress::Progress;
use crate::select::Selector;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Set number, name or id; `None` = the latest complete set.
    pub set: Option<String>,
    pub patterns: Vec<String>,
    pub target: PathBuf,
    pub existing: Existing,
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
}

impl RestoreReport {
    pub fn is_clean(&self) -> bool {
        self.refused.is_empty() && self.problems.is_empty() && self.integrity_failures.is_empty()
    }
}

/// One selected member, from the index.
struct Planned {
    offset: u64,
    hash: Option<blake3::Hash>,
}

/// Restores the selected members of a set from the volume in `drive`.
pub fn restore(
    drive: &mut dyn TapeDrive,
    opts: &RestoreOptions,
    progress: &dyn Progress,
) -> Result<RestoreReport> {
    let selector = Selector::new(&opts.patterns)?;
    let map = reel_archive::map_volume(drive)?;
    let set = map.find_set(opts.set.as_deref())?.clone();
    let index_block = *map
        .file_starts
        .get(set.index_file as usize)
        .ok_or_else(|| CoreError::Usage(format!("set {} has no index", set.number)))?;

    // The plan: selected members in archive order, plus hard-link targets they need.
    let (info, mut index) = reel_archive::open_index(drive, &set, index_block)?;
    let mut plan: Vec<Planned> = Vec::new();
    let mut total_bytes = 0u64;
    let mut added_link_targets = Vec::new();
    {
        let mut offsets_by_path: HashMap<Vec<u8>, (u64, Option<blake3::Hash>, u64)> =
            HashMap::new();
        let mut chosen: HashSet<u64> = HashSet::new();
        let mut needed_targets: Vec<Vec<u8>> = Vec::new();
        let mut all: Vec<(u64, Option<blake3::Hash>, u64)> = Vec::new();
        while let Some(e) = index.next_entry()? {
            let path = e.path();
            let row = (e.offset, e.content_hash(), e.size);
            if !selector.is_everything() && e.kind == 'f' {
                offsets_by_path.insert(path.clone(), row);
            }
            if selector.matches(&path) {
                chosen.insert(e.offset);
                if e.kind == 'h'
                    && !selector.is_everything()
                    && let Some(target) = &e.link
                {
                    needed_targets.push(target.as_bytes().to_vec());
                }
            }
            all.push(row);
        }
        for t in needed_targets {
            if let Some(&(off, _, _)) = offsets_by_path.get(&t)
                && chosen.insert(off)
            {
                added_link_targets.push(String::from_utf8_lossy(&t).into_owned());
            }
        }
        for (offset, hash, size) in all {
            if chosen.contains(&offset) {
                total_bytes += size;
                plan.push(Planned { offset, hash });
            }
        }
    }
    progress.total(total_bytes, plan.len() as u64);

    let mut report = RestoreReport {
        set: Some(info.clone()),
        target: opts.target.clone(),
        added_link_targets,
        ..Default::default()
    };
    let mut root = RestoreRoot::open(&opts.target, opts.existing)?;
    let block_size = info.block_size as usize;
    let mut pax = reel_archive::open_data(drive, &set, block_size)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut i = 0usize;
    let mut need_seek = false;
    while i < plan.len() {
        let planned = &plan[i];
        i += 1;
        // Far ahead (or after an error): seek; near: read on.
        let gap = planned.offset.saturating_sub(pax.offset());
        if need_seek || gap > 2 * block_size as u64 || planned.offset < pax.offset() {
            if let Err(e) = seek(&mut pax, planned.offset) {
                report.integrity_failures.push(format!(
                    "cannot reach the member at byte {}: {e}",
                    planned.offset
                ));
                need_seek = true;
                continue;
            }
            need_seek = false;
        }
        match restore_one(
            &mut pax,
            &mut root,
            planned,
            &mut buf,
            &mut report,
            progress,
        ) {
            Ok(()) => {}
            Err(
                e @ (ArchiveError::Tape { .. }
                | ArchiveError::Corrupt { .. }
                | ArchiveError::Truncated { .. }),
            ) => {
                let msg = format!(
                    "set {} (member at byte {}): {e}",
                    info.number, planned.offset
                );
                progress.problem(&msg);
                report.integrity_failures.push(msg);
                need_seek = true;
            }
            Err(e) => return Err(e.into()),
        }
    }
    for e in root.finish() {
        report.problems.push(e.to_string());
    }
    Ok(report)
}

fn seek(
    pax: &mut PaxReader<RecordReader<'_>>,
    offset: u64,
) -> std::result::Result<(), ArchiveError> {
    pax.get_mut().seek_to(offset)?;
    pax.reset_at(offset);
    Ok(())
}

/// Reads members until the planned one and restores it. Archive errors are returned (they
/// make the caller re-synchronise); per-member problems go into the report.
fn restore_one(
    pax: &mut PaxReader<RecordReader<'_>>,
    root: &mut RestoreRoot,
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
    let entry: Entry = read.entry;
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
                return restore_file(pax, root, &rel, &entry, planned, buf, report, progress);
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
fn restore_file(
    pax: &mut PaxReader<RecordReader<'_>>,
    root: &mut RestoreRoot,
    rel: &reel_stream::RelPath,
    entry: &Entry,
    planned: &Planned,
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
    let mut hasher = blake3::Hasher::new();
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
    if let Some(expected) = planned.hash
        && expected != hash
    {
        pending.abort();
        let msg = format!(
            "{shown}: content does not match the hash recorded at backup time (member at byte {} of tape file {}); not restored",
            planned.offset,
            report.set.as_ref().map(|s| s.data_file).unwrap_or(0)
        );
        progress.problem(&msg);
        report.integrity_failures.push(msg);
        return Ok(());
    }
    match pending.commit() {
        Ok(_) => {
            report.files += 1;
            report.bytes += entry.meta.size;
        }
        Err(e) => record_outcome(Err(e), &shown, report, progress),
    }
    Ok(())
}
