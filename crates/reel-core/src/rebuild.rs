//! `reel catalog rebuild`: the catalog recreated from the tapes alone, and from the old
//! catalog what no tape can say: which parts of sets stopped unfinished at a volume change,
//! and the scans of tape files other programs wrote (`reel catalog scan`).

use std::collections::HashSet;

use serde::Serialize;

use reel_archive::volume::stopped_part;
use reel_archive::{PartMarker, SetOnTape, SetState, VolumeState};
use reel_catalog::{Catalog, ForeignFile, StoppedPart};
use reel_tape::{Library, TapeDrive};

use crate::error::Result;
use crate::manual::ManualChanger;
use crate::progress::Progress;

/// What a rebuild read.
#[derive(Debug, Clone, Serialize, Default)]
pub struct RebuildReport {
    pub volumes: Vec<String>,
    pub sets: u64,
    pub entries: u64,
    /// Volumes or sets that could not be read, and parts of sets that no volume read
    /// finishes, and why.
    pub problems: Vec<String>,
    /// Parts of sets that stopped unfinished at a volume change, as the catalog being
    /// replaced recorded them (the tapes cannot say so): kept in the new catalog.
    pub stopped: Vec<String>,
    /// Scans of foreign tape files (`reel catalog scan`) copied from the catalog being
    /// replaced: no tape holds them, and scanning again reads each tape file whole.
    pub foreign_scans_kept: u64,
}

/// A part of a set, read on a volume, that continues on another.
struct ContinuedPart {
    barcode: String,
    data_file: u64,
    marker: PartMarker,
}

/// A rebuild under way: the new catalog and what the volumes read so far hold.
struct Rebuild<'p> {
    fresh: FreshCatalog,
    report: RebuildReport,
    progress: &'p dyn Progress,
    /// Sets whose index was read: their parts on other volumes are accounted for.
    finished: HashSet<uuid::Uuid>,
    continued: Vec<ContinuedPart>,
}

impl<'p> Rebuild<'p> {
    fn start(path: &std::path::Path, progress: &'p dyn Progress) -> Result<Rebuild<'p>> {
        let mut rebuild = Rebuild {
            fresh: FreshCatalog::start(path)?,
            report: RebuildReport::default(),
            progress,
            finished: HashSet::new(),
            continued: Vec::new(),
        };
        rebuild.keep_foreign_scans()?;
        Ok(rebuild)
    }

    /// Copies the old catalog's scans of foreign tape files into the new one. A scan whose
    /// members the old file no longer holds in full (its log was lost with a crash) is
    /// reported and left out: `reel catalog scan` makes it again.
    fn keep_foreign_scans(&mut self) -> Result<()> {
        let scans = std::mem::take(&mut self.fresh.known_scans);
        if scans.is_empty() {
            return Ok(());
        }
        let old = match Catalog::open_read_only(&self.fresh.old) {
            Ok(old) => old,
            Err(e) => {
                self.problem(format!(
                    "the scans of {} foreign tape files could not be kept ({e}); scan them again with `reel catalog scan`",
                    scans.len()
                ));
                return Ok(());
            }
        };
        for scan in &scans {
            let what = format!(
                "the scan of tape file {}{} ({} members, {})",
                scan.file,
                scan.barcode
                    .as_deref()
                    .map(|b| format!(" of {b}"))
                    .unwrap_or_default(),
                scan.members,
                scan.scanned
            );
            match self.fresh.catalog.copy_foreign_scan(&old, scan) {
                Ok(n) if n == scan.members => self.report.foreign_scans_kept += 1,
                Ok(n) => {
                    self.problem(format!(
                        "{what} could not be kept: the old catalog holds {n} of its members; scan it again with `reel catalog scan`"
                    ));
                }
                Err(e) => {
                    self.problem(format!(
                        "{what} could not be kept ({e}); scan it again with `reel catalog scan`"
                    ));
                }
            }
        }
        Ok(())
    }

    fn problem(&mut self, msg: String) {
        self.progress.problem(&msg);
        self.report.problems.push(msg);
    }

    /// Adds what one volume holds to the catalog: its label, every complete set's index,
    /// and the stopped parts the old catalog knew of that are still on it.
    fn scan_volume(&mut self, drive: &mut dyn TapeDrive) -> Result<()> {
        let name = drive.describe();
        let stopped_sets: Vec<uuid::Uuid> =
            self.fresh.known_stopped.iter().map(|p| p.set_id).collect();
        let map = match reel_archive::map_volume_knowing(drive, &stopped_sets) {
            Ok(m) => m,
            Err(e) => {
                self.problem(format!("{name}: skipped: {e}"));
                return Ok(());
            }
        };
        self.fresh.catalog.record_volume(&map.label)?;
        self.report.volumes.push(map.label.barcode.clone());
        // A leftover stopped part is replaced by the next backup; one with sets after it (left
        // by a reel that did not know of the stop) stays until the tape is erased.
        for (set, replaced) in map
            .sets
            .iter()
            .map(|s| (s, false))
            .chain(map.unfinished.iter().map(|s| (s, true)))
        {
            if let SetState::Stopped(m) = &set.state {
                self.keep_stopped(&map.label, set, m, replaced)?;
            }
        }
        let sets: Vec<SetOnTape> = map.sets.clone();
        for set in sets {
            match &set.state {
                SetState::Complete => {}
                // Its index is on the series' last volume, if that was read (see `finish`).
                SetState::Continued(m) => {
                    self.continued.push(ContinuedPart {
                        barcode: map.label.barcode.clone(),
                        data_file: set.data_file,
                        marker: m.clone(),
                    });
                    continue;
                }
                SetState::Stopped(_) => continue,
                SetState::Incomplete(why) | SetState::Damaged(why) => {
                    self.problem(format!("{name}: set {}: {why}", set.number));
                    continue;
                }
            }
            let Some(index_block) = map.file_starts.get(set.index_file as usize).copied() else {
                continue;
            };
            // A set whose index cannot be read (damage past the first records) is reported
            // and left out; the other sets are still worth a catalog.
            let (info, mut index) = match reel_archive::open_index(drive, &set, index_block) {
                Ok(opened) => opened,
                Err(e) => {
                    self.problem(format!("{name}: set {}: skipped: {e}", set.number));
                    continue;
                }
            };
            self.progress
                .entry(&format!("{name}: set {} {}", set.number, info.name));
            let entries = std::iter::from_fn(|| index.next_entry().transpose());
            match self.fresh.catalog.add_set(&info, entries) {
                Ok(n) => {
                    self.report.sets += 1;
                    self.report.entries += n;
                    self.finished.insert(info.id);
                }
                // An entry of the index that does not read: the set's rows were rolled back.
                Err(e @ reel_catalog::CatalogError::BadRow { .. }) => {
                    self.problem(format!("{name}: set {}: skipped: {e}", set.number));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Records again a stopped part the old catalog knew of, found on the volume.
    fn keep_stopped(
        &mut self,
        label: &reel_archive::VolumeLabel,
        set: &SetOnTape,
        marker: &PartMarker,
        replaced: bool,
    ) -> Result<()> {
        let Some(known) = self
            .fresh
            .known_stopped
            .iter()
            .find(|p| p.set_id == marker.set_id && p.part == marker.part)
        else {
            return Ok(());
        };
        let part = StoppedPart {
            volume_id: label.volume_id,
            barcode: label.barcode.clone(),
            data_file: set.data_file,
            first_block: set.data_first_block,
            ..known.clone()
        };
        self.fresh.catalog.record_stopped_part(&part)?;
        let msg = format!(
            "{}: tape file {} is {} (the catalog recorded the stop on {}); {}",
            label.barcode,
            set.data_file,
            stopped_part(marker),
            part.stopped,
            if replaced {
                format!("the next backup on {} replaces it", label.barcode)
            } else {
                "sets were written after it, so its space is only reused when the tape is erased"
                    .to_string()
            }
        );
        self.progress.problem(&msg);
        self.report.stopped.push(msg);
        Ok(())
    }

    /// Reports the continued parts of sets no volume read finishes, and keeps the catalog.
    fn finish(mut self) -> RebuildReport {
        let unfinished: Vec<String> = self
            .continued
            .iter()
            .filter(|c| !self.finished.contains(&c.marker.set_id))
            .map(|c| {
                let m = &c.marker;
                format!(
                    "{}: tape file {} is part {} of set {} ({}), which continues on {}, but no volume read holds the rest of that set or its index: nothing of it can be restored unless {} is read too (if the backup stopped before {} was written, it never will be)",
                    c.barcode,
                    c.data_file,
                    m.part,
                    m.set_name,
                    m.set_id,
                    m.next_barcode,
                    m.next_barcode,
                    m.next_barcode
                )
            })
            .collect();
        for msg in unfinished {
            self.problem(msg);
        }
        self.fresh.done();
        self.report
    }
}

/// Rebuilds the catalog at `path` from every cartridge of `library`. The old file, if any,
/// is kept beside it as `*.old` until the rebuild has succeeded.
pub fn rebuild_from_library(
    path: &std::path::Path,
    library: &Library,
    progress: &dyn Progress,
) -> Result<RebuildReport> {
    let mut rebuild = Rebuild::start(path, progress)?;
    for name in library.cartridge_names()? {
        let dir = library.cartridge_dir(&name);
        match reel_tape::vtape::VirtualDrive::open(&dir) {
            Ok(mut drive) => {
                for note in drive.open_notes() {
                    progress.problem(&format!("warning: {note}"));
                }
                rebuild.scan_volume(&mut drive)?
            }
            Err(e) => rebuild.problem(format!("cartridge {name}: skipped: {e}")),
        }
    }
    Ok(rebuild.finish())
}

/// Rebuilds the catalog at `path` from tapes loaded by hand: the one in `drive`, then each
/// one the operator loads, until they say all are read (or cannot be asked). A tape read
/// already is not read twice.
pub fn rebuild_from_drive(
    path: &std::path::Path,
    mut drive: Box<dyn TapeDrive>,
    changer: &mut ManualChanger,
    progress: &dyn Progress,
) -> Result<RebuildReport> {
    let mut rebuild = Rebuild::start(path, progress)?;
    let mut read = HashSet::new();
    loop {
        match reel_archive::read_state(&mut *drive) {
            Ok(VolumeState::Reel(label)) if !read.insert(label.volume_id) => {
                progress.problem(&format!("{} was read already", label.barcode));
            }
            Ok(VolumeState::Reel(_)) => rebuild.scan_volume(&mut *drive)?,
            Ok(other) => rebuild.problem(format!(
                "{}: skipped: {}",
                drive.describe(),
                crate::manual::describe_state(&other)
            )),
            // An empty drive (at the start): nothing to read yet.
            Err(reel_archive::ArchiveError::Tape {
                source: reel_tape::TapeError::NoMediaInDrive,
                ..
            }) => {}
            Err(e) => rebuild.problem(format!("{}: skipped: {e}", drive.describe())),
        }
        let what = format!(
            "the next tape to read into the catalog ({} read so far; q when all are read)",
            read.len()
        );
        if !changer.load_another(&mut drive, &what)? {
            break;
        }
    }
    if read.is_empty() {
        rebuild.problem(format!(
            "no reel volume was read: load one into {}",
            changer.device()
        ));
    }
    Ok(rebuild.finish())
}

/// A new, empty catalog at `path`, the old file kept beside it as `*.old` until the rebuild
/// has succeeded.
struct FreshCatalog {
    catalog: Catalog,
    old: std::path::PathBuf,
    /// The stopped parts the old catalog recorded: only a catalog knows of them, since the
    /// tape was ejected before the stop (empty when the old file is missing or unreadable).
    known_stopped: Vec<StoppedPart>,
    /// The scans of foreign tape files the old catalog holds (their members are copied
    /// from the old file once the new one is open).
    known_scans: Vec<ForeignFile>,
}

impl FreshCatalog {
    fn start(path: &std::path::Path) -> Result<FreshCatalog> {
        let old = path.with_extension("sqlite.old");
        let mut known_stopped = Vec::new();
        let mut known_scans = Vec::new();
        if path.exists() {
            // Read before the file is moved: its log goes with its name. A damaged catalog
            // (the usual reason for a rebuild) just knows nothing.
            if let Ok(old) = Catalog::open_read_only(path) {
                known_stopped = old.stopped_parts().unwrap_or_default();
                known_scans = old.foreign_files().unwrap_or_default();
            }
            remove_with_logs(&old);
            std::fs::rename(path, &old).map_err(|e| crate::error::CoreError::Io {
                context: format!("moving the old catalog {} aside", path.display()),
                source: e,
            })?;
            // Its log goes with it: after a crash it may hold the last transactions (a
            // scan's members, read again below), which SQLite replays from the log beside
            // the file. The index of the log (`-shm`) is rebuilt from it.
            let _ = std::fs::rename(log_of(path, "-wal"), log_of(&old, "-wal"));
            remove_logs(path);
        }
        Ok(FreshCatalog {
            catalog: Catalog::open(path)?,
            old,
            known_stopped,
            known_scans,
        })
    }

    fn done(self) {
        remove_with_logs(&self.old);
    }
}

/// Removes a catalog file and the logs SQLite keeps beside it (`-wal`, `-shm`): reading
/// the old file leaves them, and stale ones would be replayed into the next file moved to
/// that name.
fn remove_with_logs(file: &std::path::Path) {
    let _ = std::fs::remove_file(file);
    remove_logs(file);
}

/// Removes the logs SQLite keeps beside a catalog file (`-wal`, `-shm`).
fn remove_logs(file: &std::path::Path) {
    for log in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(log_of(file, log));
    }
}

/// The name of the SQLite file `suffix` (`-wal`, `-shm`) beside `file`.
fn log_of(file: &std::path::Path, suffix: &str) -> std::path::PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    std::path::PathBuf::from(name)
}
