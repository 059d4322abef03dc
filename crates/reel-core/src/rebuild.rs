//! `reel catalog rebuild`: the catalog recreated from the tapes alone.

use serde::Serialize;

use reel_archive::{SetOnTape, SetState, VolumeState};
use reel_catalog::Catalog;
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
    /// Volumes or sets that could not be read, and why.
    pub problems: Vec<String>,
}

/// Adds what one volume holds to the catalog: its label and every complete set's index.
pub fn scan_volume(
    drive: &mut dyn TapeDrive,
    catalog: &mut Catalog,
    report: &mut RebuildReport,
    progress: &dyn Progress,
) -> Result<()> {
    let name = drive.describe();
    let map = match reel_archive::map_volume(drive) {
        Ok(m) => m,
        Err(e) => {
            let msg = format!("{name}: skipped: {e}");
            progress.problem(&msg);
            report.problems.push(msg);
            return Ok(());
        }
    };
    catalog.record_volume(&map.label)?;
    report.volumes.push(map.label.barcode.clone());
    let sets: Vec<SetOnTape> = map.sets.clone();
    for set in sets {
        match &set.state {
            SetState::Complete => {}
            SetState::Continued(_) => continue, // its index is on the series' last volume
            SetState::Stopped(m) => {
                let msg = format!(
                    "{name}: set {}: {}",
                    set.number,
                    reel_archive::volume::stopped_part(m)
                );
                progress.problem(&msg);
                report.problems.push(msg);
                continue;
            }
            SetState::Incomplete(why) | SetState::Damaged(why) => {
                let msg = format!("{name}: set {}: {why}", set.number);
                progress.problem(&msg);
                report.problems.push(msg);
                continue;
            }
        }
        let Some(index_block) = map.file_starts.get(set.index_file as usize).copied() else {
            continue;
        };
        // A set whose index cannot be read (damage past the first records) is reported and
        // left out; the other sets are still worth a catalog.
        let (info, mut index) = match reel_archive::open_index(drive, &set, index_block) {
            Ok(opened) => opened,
            Err(e) => {
                let msg = format!("{name}: set {}: skipped: {e}", set.number);
                progress.problem(&msg);
                report.problems.push(msg);
                continue;
            }
        };
        progress.entry(&format!("{name}: set {} {}", set.number, info.name));
        let entries = std::iter::from_fn(|| index.next_entry().transpose());
        match catalog.add_set(&info, entries) {
            Ok(n) => {
                report.sets += 1;
                report.entries += n;
            }
            // An entry of the index that does not read: the set's rows were rolled back.
            Err(e @ reel_catalog::CatalogError::BadRow { .. }) => {
                let msg = format!("{name}: set {}: skipped: {e}", set.number);
                progress.problem(&msg);
                report.problems.push(msg);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Rebuilds the catalog at `path` from every cartridge of `library`. The old file, if any,
/// is kept beside it as `*.old` until the rebuild has succeeded.
pub fn rebuild_from_library(
    path: &std::path::Path,
    library: &Library,
    progress: &dyn Progress,
) -> Result<RebuildReport> {
    let mut fresh = FreshCatalog::start(path)?;
    let mut report = RebuildReport::default();
    for name in library.cartridge_names()? {
        let dir = library.cartridge_dir(&name);
        match reel_tape::vtape::VirtualDrive::open(&dir) {
            Ok(mut drive) => {
                for note in drive.open_notes() {
                    progress.problem(&format!("warning: {note}"));
                }
                scan_volume(&mut drive, &mut fresh.catalog, &mut report, progress)?
            }
            Err(e) => {
                let msg = format!("cartridge {name}: skipped: {e}");
                progress.problem(&msg);
                report.problems.push(msg);
            }
        }
    }
    fresh.done();
    Ok(report)
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
    let mut fresh = FreshCatalog::start(path)?;
    let mut report = RebuildReport::default();
    let mut read = std::collections::HashSet::new();
    loop {
        match reel_archive::read_state(&mut *drive) {
            Ok(VolumeState::Reel(label)) if !read.insert(label.volume_id) => {
                progress.problem(&format!("{} was read already", label.barcode));
            }
            Ok(VolumeState::Reel(_)) => {
                scan_volume(&mut *drive, &mut fresh.catalog, &mut report, progress)?
            }
            Ok(other) => {
                let msg = format!(
                    "{}: skipped: {}",
                    drive.describe(),
                    crate::manual::describe_state(&other)
                );
                progress.problem(&msg);
                report.problems.push(msg);
            }
            // An empty drive (at the start): nothing to read yet.
            Err(reel_archive::ArchiveError::Tape {
                source: reel_tape::TapeError::NoMediaInDrive,
                ..
            }) => {}
            Err(e) => {
                let msg = format!("{}: skipped: {e}", drive.describe());
                progress.problem(&msg);
                report.problems.push(msg);
            }
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
        let msg = format!(
            "no reel volume was read: load one into {}",
            changer.device()
        );
        progress.problem(&msg);
        report.problems.push(msg);
    }
    fresh.done();
    Ok(report)
}

/// A new, empty catalog at `path`, the old file kept beside it as `*.old` until the rebuild
/// has succeeded.
struct FreshCatalog {
    catalog: Catalog,
    old: std::path::PathBuf,
}

impl FreshCatalog {
    fn start(path: &std::path::Path) -> Result<FreshCatalog> {
        let old = path.with_extension("sqlite.old");
        if path.exists() {
            let _ = std::fs::remove_file(&old);
            std::fs::rename(path, &old).map_err(|e| crate::error::CoreError::Io {
                context: format!("moving the old catalog {} aside", path.display()),
                source: e,
            })?;
            for ext in ["sqlite-wal", "sqlite-shm"] {
                let _ = std::fs::remove_file(path.with_extension(ext));
            }
        }
        Ok(FreshCatalog {
            catalog: Catalog::open(path)?,
            old,
        })
    }

    fn done(self) {
        let _ = std::fs::remove_file(&self.old);
    }
}
