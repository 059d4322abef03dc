//! The drive a job uses, and where further volumes come from.
//!
//! A set that fills its cartridge continues on a blank one; a restore of such a set, or of
//! an incremental chain, needs other volumes. [`Tapes`] holds the drive and a
//! [`VolumeChanger`] that supplies volumes: the library's cartridges ([`LibraryChanger`]),
//! the operator of a real or remote drive ([`ManualChanger`]), or nothing ([`NoChanger`],
//! for a lone cartridge, which fails clearly). [`Tapes::open`] picks the changer a `--tape`
//! target calls for.

use std::path::PathBuf;

use reel_archive::VolumeState;
use reel_tape::{Library, TapeDrive, Target};

use crate::changer::{LibraryChanger, NoChanger, VolumeChanger};
use crate::error::Result;
use crate::manual::{ManualChanger, Operator};

/// The drive of a job and the source of further volumes.
pub struct Tapes {
    pub drive: Box<dyn TapeDrive>,
    pub changer: Box<dyn VolumeChanger>,
    /// Told what loading a volume repaired or found missing ([`TapeDrive::open_notes`]);
    /// nothing by default, see [`Tapes::with_note_sink`].
    on_note: Box<dyn Fn(&str) + Send + Sync>,
}

/// Puts a drive in variable-block mode: sets are written and read one record per block,
/// whatever block size `reel tape set` left the drive in. A drive that cannot is left as it
/// is (its first write or read then says why).
pub fn variable_mode(drive: &mut dyn TapeDrive) {
    if drive.media_parameters().is_ok_and(|m| m.block_size != 0) {
        let _ = drive.set_media_parameters(0);
    }
}

impl Tapes {
    pub fn new(mut drive: Box<dyn TapeDrive>, changer: Box<dyn VolumeChanger>) -> Self {
        variable_mode(&mut *drive);
        Tapes {
            drive,
            changer,
            on_note: Box::new(|_| {}),
        }
    }

    /// Where to say what loading a volume in the middle of a job repaired (a cartridge cut
    /// after a crash): data may be lost, so the user is told.
    pub fn with_note_sink(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.on_note = Box::new(sink);
        self
    }

    /// Has the changer load blank volume `barcode`, then readies it for a set: what opening
    /// it repaired is told, and the drive is put in variable-block mode.
    pub fn load_blank(&mut self, barcode: &str) -> Result<()> {
        self.changer.load_blank(&mut self.drive, barcode)?;
        self.report_open_notes();
        variable_mode(&mut *self.drive);
        Ok(())
    }

    /// Says what opening the volume now in the drive repaired.
    pub fn report_open_notes(&self) {
        for note in self.drive.open_notes() {
            (self.on_note)(&note);
        }
    }

    /// A drive with no other volumes.
    pub fn single(drive: Box<dyn TapeDrive>) -> Self {
        let what = drive.describe();
        Tapes::new(drive, Box::new(NoChanger { what }))
    }

    /// Opens the drive of a `--tape` target, with the library's changer when the target is
    /// (in) a library, and `operator` to change tapes by hand in a real or remote drive.
    pub fn open(target: &Target, operator: Box<dyn Operator>) -> Result<Tapes> {
        Self::open_waiting(target, operator, crate::manual::READY_WAIT)
    }

    /// [`Tapes::open`], waiting up to `ready_wait` for a tape loaded by hand to become ready.
    pub fn open_waiting(
        target: &Target,
        operator: Box<dyn Operator>,
        ready_wait: std::time::Duration,
    ) -> Result<Tapes> {
        let manual = matches!(
            target,
            Target::Device(_) | Target::Remote { .. } | Target::Scsi(_)
        );
        let drive = if manual {
            crate::manual::open_manual(target)?
        } else {
            target.open()?
        };
        let library_dir: Option<PathBuf> = match target {
            Target::Library(dir) => Some(dir.clone().unwrap_or_else(Library::default_dir)),
            Target::LibraryCartridge { library, .. } => {
                Some(library.clone().unwrap_or_else(Library::default_dir))
            }
            Target::Cartridge(dir) => dir
                .parent()
                .filter(|p| Library::is_library(p))
                .map(|p| p.to_path_buf()),
            _ => None,
        };
        Ok(match library_dir {
            Some(dir) => Tapes::new(
                drive,
                Box::new(LibraryChanger::new(Library::open_or_create(&dir)?)),
            ),
            None if manual => Tapes::new(
                drive,
                Box::new(ManualChanger::new(target.clone(), operator).with_ready_wait(ready_wait)),
            ),
            None => Tapes::single(drive),
        })
    }

    /// Makes the volume with `volume_id` the one in the drive (no change when it already is).
    pub fn ensure_volume(&mut self, barcode: &str, volume_id: uuid::Uuid) -> Result<()> {
        if let Ok(VolumeState::Reel(label)) = reel_archive::read_state(&mut *self.drive)
            && label.volume_id == volume_id
        {
            return Ok(());
        }
        self.changer
            .load_volume(&mut self.drive, barcode, volume_id)?;
        self.report_open_notes();
        variable_mode(&mut *self.drive);
        Ok(())
    }
}
