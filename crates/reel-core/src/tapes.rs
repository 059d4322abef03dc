//! The drive a job uses, and where further volumes come from.
//!
//! A set that fills its cartridge continues on a blank one; a restore of such a set, or of
//! an incremental chain, needs other volumes. [`Tapes`] holds the drive and a
//! [`VolumeChanger`] that supplies volumes: the library's cartridges ([`LibraryChanger`]),
//! or nothing ([`NoChanger`], for a lone cartridge or device, which fails clearly).

use std::path::PathBuf;

use reel_archive::VolumeState;
use reel_tape::{Library, TapeDrive, Target};

use crate::error::{CoreError, Result};

/// Supplies volumes other than the one in the drive.
pub trait VolumeChanger {
    /// Opens a blank volume to continue a set on (never the one named `current`); returns
    /// the drive and the volume's barcode.
    fn open_blank(&mut self, current: &str) -> Result<(Box<dyn TapeDrive>, String)>;
    /// Opens the volume with this barcode, whose label must carry `volume_id`.
    fn open_volume(&mut self, barcode: &str, volume_id: uuid::Uuid) -> Result<Box<dyn TapeDrive>>;
    /// Where volumes come from, for messages.
    fn describe(&self) -> String;
}

/// No other volumes: every request fails with a message that says what to do.
pub struct NoChanger {
    pub what: String,
}

impl VolumeChanger for NoChanger {
    fn open_blank(&mut self, current: &str) -> Result<(Box<dyn TapeDrive>, String)> {
        Err(CoreError::Usage(format!(
            "{current} is full and {} has no other cartridges to continue on; back up to a library (the default, or --tape LIBRARY-DIR)",
            self.what
        )))
    }

    fn open_volume(&mut self, barcode: &str, volume_id: uuid::Uuid) -> Result<Box<dyn TapeDrive>> {
        Err(CoreError::Usage(format!(
            "volume {barcode} ({volume_id}) is needed but {} cannot load it; use the library that holds it (--tape LIBRARY-DIR)",
            self.what
        )))
    }

    fn describe(&self) -> String {
        self.what.clone()
    }
}

/// Volumes are the cartridges of a library; new blank ones are created as needed.
pub struct LibraryChanger {
    library: Library,
}

impl LibraryChanger {
    pub fn new(library: Library) -> Self {
        LibraryChanger { library }
    }

    fn barcode_of(drive: &dyn TapeDrive) -> String {
        let d = drive.describe();
        d.strip_prefix("vtape:").unwrap_or(&d).to_string()
    }
}

impl VolumeChanger for LibraryChanger {
    fn open_blank(&mut self, current: &str) -> Result<(Box<dyn TapeDrive>, String)> {
        let carts = self.library.cartridges()?;
        let capacity = carts
            .iter()
            .find(|c| c.name == current)
            .map(|c| c.capacity)
            .unwrap_or_else(|| self.library.default_capacity());
        let name = match carts
            .iter()
            .find(|c| c.name != current && c.used == 0 && !c.write_protected)
        {
            Some(c) => c.name.clone(),
            None => {
                let name = self.library.next_name()?;
                self.library.create_cartridge(&name, capacity, false)?;
                name
            }
        };
        let dir = self.library.cartridge_dir(&name);
        let drive = reel_tape::vtape::VirtualDrive::open(&dir)?;
        self.library.set_loaded(&name)?;
        Ok((Box::new(drive), name))
    }

    fn open_volume(&mut self, barcode: &str, volume_id: uuid::Uuid) -> Result<Box<dyn TapeDrive>> {
        // The barcode names the cartridge; if it was renamed, look for the label.
        let mut candidates = vec![barcode.to_string()];
        candidates.extend(
            self.library
                .cartridge_names()?
                .into_iter()
                .filter(|n| n != barcode),
        );
        for name in candidates {
            let dir = self.library.cartridge_dir(&name);
            if !dir.is_dir() {
                continue;
            }
            // A cartridge in use (the one in our own drive, or another process's) is skipped.
            let Ok(drive) = reel_tape::vtape::VirtualDrive::open(&dir) else {
                continue;
            };
            let mut drive: Box<dyn TapeDrive> = Box::new(drive);
            if let Ok(VolumeState::Reel(label)) = reel_archive::read_state(&mut *drive)
                && label.volume_id == volume_id
            {
                return Ok(drive);
            }
        }
        Err(CoreError::Usage(format!(
            "volume {barcode} ({volume_id}) is not in the library {}: it was removed, erased or relabelled",
            self.library.dir().display()
        )))
    }

    fn describe(&self) -> String {
        format!("library {}", self.library.dir().display())
    }
}

/// The drive of a job and the source of further volumes.
pub struct Tapes {
    pub drive: Box<dyn TapeDrive>,
    pub changer: Box<dyn VolumeChanger>,
}

/// Puts a drive in variable-block mode: sets are written and read one record per block,
/// whatever block size `reel tape set` left the drive in. A drive that cannot is left as it
/// is (its first write or read then says why).
pub fn variable_mode(mut drive: Box<dyn TapeDrive>) -> Box<dyn TapeDrive> {
    if drive.media_parameters().is_ok_and(|m| m.block_size != 0) {
        let _ = drive.set_media_parameters(0);
    }
    drive
}

impl Tapes {
    pub fn new(drive: Box<dyn TapeDrive>, changer: Box<dyn VolumeChanger>) -> Self {
        Tapes {
            drive: variable_mode(drive),
            changer,
        }
    }

    /// A drive with no other volumes.
    pub fn single(drive: Box<dyn TapeDrive>) -> Self {
        let what = drive.describe();
        Tapes::new(drive, Box::new(NoChanger { what }))
    }

    /// Opens the drive of a `--tape` target, with the library's changer when the target is
    /// (in) a library.
    pub fn open(target: &Target) -> Result<Tapes> {
        let drive = target.open()?;
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
            None => Tapes::single(drive),
        })
    }

    /// Barcode of the volume in the drive (the cartridge name for virtual cartridges).
    pub fn barcode(&self) -> String {
        LibraryChanger::barcode_of(&*self.drive)
    }

    /// Makes the volume with `volume_id` the one in the drive (no change when it already is).
    pub fn ensure_volume(&mut self, barcode: &str, volume_id: uuid::Uuid) -> Result<()> {
        if let Ok(VolumeState::Reel(label)) = reel_archive::read_state(&mut *self.drive)
            && label.volume_id == volume_id
        {
            return Ok(());
        }
        let drive = self.changer.open_volume(barcode, volume_id)?;
        self.drive = variable_mode(drive);
        Ok(())
    }
}
