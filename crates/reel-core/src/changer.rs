//! Where the volumes of a job come from: the job-level changer.
//!
//! [`VolumeChanger`] answers what a job asks when the volume in the drive is not the one it
//! needs — "give me the next volume of this set": a blank volume for a set that fills its
//! volume to continue on ([`VolumeChanger::next_blank`], [`VolumeChanger::load_blank`]), or
//! the volume with a given barcode and volume id for a restore of a spanned set or of an
//! incremental chain ([`VolumeChanger::load_volume`]). It puts that volume in the job's
//! drive; how it gets there is its own business:
//!
//! - [`LibraryChanger`]: another cartridge of a virtual library (a new one when none is
//!   blank);
//! - [`crate::manual::ManualChanger`]: the operator of a real or remote drive, asked to load
//!   a tape by hand;
//! - [`NoChanger`]: a lone cartridge; every request fails with what to do.
//!
//! A robot fits as one more implementation on top of a device-level changer (reel-tape's
//! `MediaChanger` of issue 26: inventory, load and unload of the slots of a SCSI media
//! changer): it would map barcodes to slots, move the cartridge wanted into the drive and
//! check its label, while jobs go on asking only for the volumes of their sets.
//! [`crate::tapes::Tapes`] pairs a job's drive with its changer.

use reel_archive::VolumeState;
use reel_tape::{Library, TapeDrive};

use crate::error::{CoreError, Result};

/// Supplies volumes other than the one in the drive.
pub trait VolumeChanger {
    /// The name the blank volume a set continues on will carry (never `current`, the full
    /// one). Asked before the full volume is closed, since its closing marker names the next.
    fn next_blank(&mut self, current: &str) -> Result<String>;
    /// Replaces the volume in `drive` by a blank one, to be labelled `barcode` (from
    /// [`VolumeChanger::next_blank`]).
    fn load_blank(&mut self, drive: &mut Box<dyn TapeDrive>, barcode: &str) -> Result<()>;
    /// Replaces the volume in `drive` by the one with this barcode, whose label must carry
    /// `volume_id`.
    fn load_volume(
        &mut self,
        drive: &mut Box<dyn TapeDrive>,
        barcode: &str,
        volume_id: uuid::Uuid,
    ) -> Result<()>;
    /// Where volumes come from, for messages.
    fn describe(&self) -> String;
}

/// No other volumes: every request fails with a message that says what to do.
pub struct NoChanger {
    pub what: String,
}

impl VolumeChanger for NoChanger {
    fn next_blank(&mut self, current: &str) -> Result<String> {
        Err(CoreError::NoMoreCartridges {
            current: current.to_string(),
            changer: self.what.clone(),
        })
    }

    fn load_blank(&mut self, _drive: &mut Box<dyn TapeDrive>, barcode: &str) -> Result<()> {
        Err(CoreError::NoCartridgeToLoad {
            barcode: barcode.to_string(),
            changer: self.what.clone(),
        })
    }

    fn load_volume(
        &mut self,
        _drive: &mut Box<dyn TapeDrive>,
        barcode: &str,
        volume_id: uuid::Uuid,
    ) -> Result<()> {
        Err(CoreError::CannotLoadVolume {
            barcode: barcode.to_string(),
            volume_id,
            changer: self.what.clone(),
        })
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
}

impl VolumeChanger for LibraryChanger {
    fn next_blank(&mut self, current: &str) -> Result<String> {
        let carts = self.library.cartridges()?;
        let capacity = carts
            .iter()
            .find(|c| c.name == current)
            .map(|c| c.capacity)
            .unwrap_or_else(|| self.library.default_capacity());
        Ok(
            match carts
                .iter()
                .find(|c| c.name != current && c.used == 0 && !c.write_protected)
            {
                Some(c) => c.name.clone(),
                None => {
                    let name = self.library.next_name()?;
                    self.library.create_cartridge(&name, capacity, false)?;
                    name
                }
            },
        )
    }

    fn load_blank(&mut self, drive: &mut Box<dyn TapeDrive>, barcode: &str) -> Result<()> {
        let dir = self.library.cartridge_dir(barcode);
        *drive = Box::new(reel_tape::vtape::VirtualDrive::open(&dir)?);
        self.library.set_loaded(barcode)?;
        Ok(())
    }

    fn load_volume(
        &mut self,
        drive: &mut Box<dyn TapeDrive>,
        barcode: &str,
        volume_id: uuid::Uuid,
    ) -> Result<()> {
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
            let Ok(found) = reel_tape::vtape::VirtualDrive::open(&dir) else {
                continue;
            };
            let mut found: Box<dyn TapeDrive> = Box::new(found);
            if let Ok(VolumeState::Reel(label)) = reel_archive::read_state(&mut *found)
                && label.volume_id == volume_id
            {
                *drive = found;
                return Ok(());
            }
        }
        Err(CoreError::VolumeNotInLibrary {
            barcode: barcode.to_string(),
            volume_id,
            library: self.library.dir().to_path_buf(),
        })
    }

    fn describe(&self) -> String {
        format!("library {}", self.library.dir().display())
    }
}
