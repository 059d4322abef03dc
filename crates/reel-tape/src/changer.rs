//! Medium changers: tape libraries that move cartridges between storage slots, import/
//! export (mail) slots and drives. [`MediaChanger`] is what reel asks of one; the SCSI
//! changer ([`crate::scsi::ScsiChanger`], SMC) and the virtual library
//! ([`crate::library_changer::LibraryChanger`]) implement it.
//!
//! Places are numbered as `mtx` numbers them: drives from 0, storage slots from 1, and
//! import/export slots after the storage slots.

use serde::Serialize;

use crate::error::{Result, TapeError};

/// Where a cartridge can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "number", rename_all = "snake_case")]
pub enum Place {
    /// Drive `n` (from 0).
    Drive(u16),
    /// Storage slot `n` (from 1), or an import/export slot (numbered after them).
    Slot(u16),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Drive(n) => write!(f, "drive {n}"),
            Place::Slot(n) => write!(f, "slot {n}"),
        }
    }
}

/// One drive or slot and what is in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Element {
    pub place: Place,
    /// An import/export (mail) slot.
    pub mail: bool,
    pub full: bool,
    /// The cartridge's barcode (volume tag), when it has one.
    pub barcode: Option<String>,
    /// The slot the cartridge came from.
    pub source: Option<u16>,
    /// The changer's SCSI element address (SCSI changers).
    pub address: Option<u16>,
    /// The element is in an abnormal state: why.
    pub exception: Option<String>,
}

/// What a changer holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Inventory {
    pub changer: String,
    pub drives: Vec<Element>,
    /// Storage slots, then import/export slots.
    pub slots: Vec<Element>,
}

impl Inventory {
    pub fn element(&self, place: Place) -> Option<&Element> {
        self.drives
            .iter()
            .chain(&self.slots)
            .find(|e| e.place == place)
    }

    /// Where the cartridge with `barcode` is.
    pub fn find(&self, barcode: &str) -> Option<Place> {
        self.drives
            .iter()
            .chain(&self.slots)
            .find(|e| e.full && e.barcode.as_deref() == Some(barcode))
            .map(|e| e.place)
    }

    fn first_empty(&self, mail: bool) -> Option<u16> {
        self.slots
            .iter()
            .find(|e| !e.full && e.mail == mail)
            .map(|e| match e.place {
                Place::Slot(n) | Place::Drive(n) => n,
            })
    }

    /// The text `mtx status` prints for this inventory.
    pub fn mtx_status(&self) -> String {
        let mail = self.slots.iter().filter(|s| s.mail).count();
        let mut out = format!(
            "  Storage Changer {}:{} Drives, {} Slots ( {} Import/Export )\n",
            self.changer,
            self.drives.len(),
            self.slots.len(),
            mail
        );
        for d in &self.drives {
            let Place::Drive(n) = d.place else { continue };
            if d.full {
                out += &format!("Data Transfer Element {n}:Full");
                if let Some(s) = d.source {
                    out += &format!(" (Storage Element {s} Loaded)");
                }
                if let Some(b) = &d.barcode {
                    out += &format!(":VolumeTag = {b}");
                }
                out += "\n";
            } else {
                out += &format!("Data Transfer Element {n}:Empty\n");
            }
        }
        for s in &self.slots {
            let Place::Slot(n) = s.place else { continue };
            let ie = if s.mail { " IMPORT/EXPORT" } else { "" };
            if s.full {
                out += &format!("      Storage Element {n}{ie}:Full ");
                if let Some(b) = &s.barcode {
                    out += &format!(":VolumeTag={b}");
                }
                out += "\n";
            } else {
                out += &format!("      Storage Element {n}{ie}:Empty\n");
            }
        }
        out
    }
}

/// What reel asks of a medium changer.
pub trait MediaChanger: Send {
    /// The changer for messages.
    fn describe(&self) -> String;

    /// What is where.
    fn inventory(&mut self) -> Result<Inventory>;

    /// Has the changer check every element again (barcodes rescanned where it can).
    fn rescan(&mut self) -> Result<()>;

    /// Moves the cartridge at `from` to the empty `to`.
    fn move_medium(&mut self, from: Place, to: Place) -> Result<()>;

    /// Puts the cartridge of slot `slot` into drive `drive`.
    fn load(&mut self, slot: u16, drive: u16) -> Result<()> {
        let inv = self.inventory()?;
        need_full(&inv, Place::Slot(slot))?;
        need_empty(&inv, Place::Drive(drive))?;
        self.move_medium(Place::Slot(slot), Place::Drive(drive))
    }

    /// Puts the cartridge in drive `drive` back into `to`, else into the slot it came
    /// from, else into the first empty storage slot. Returns the slot.
    fn unload(&mut self, drive: u16, to: Option<u16>) -> Result<u16> {
        let inv = self.inventory()?;
        let d = need_full(&inv, Place::Drive(drive))?;
        let slot = match to {
            Some(s) => s,
            None => d
                .source
                .filter(|s| {
                    inv.element(Place::Slot(*s))
                        .is_some_and(|e| !e.full && !e.mail)
                })
                .or_else(|| inv.first_empty(false))
                .ok_or_else(|| {
                    TapeError::InvalidParameter(format!(
                        "{}: no empty slot to unload drive {drive} into",
                        inv.changer
                    ))
                })?,
        };
        need_empty(&inv, Place::Slot(slot))?;
        self.move_medium(Place::Drive(drive), Place::Slot(slot))?;
        Ok(slot)
    }

    /// Moves a cartridge from slot `from` to the empty slot `to`.
    fn transfer(&mut self, from: u16, to: u16) -> Result<()> {
        let inv = self.inventory()?;
        need_full(&inv, Place::Slot(from))?;
        need_empty(&inv, Place::Slot(to))?;
        self.move_medium(Place::Slot(from), Place::Slot(to))
    }

    /// Takes a cartridge placed in an import/export slot (`from`, else the first full one)
    /// into storage slot `to` (else the first empty one). Returns (from, to).
    fn import(&mut self, from: Option<u16>, to: Option<u16>) -> Result<(u16, u16)> {
        let inv = self.inventory()?;
        let from = match from {
            Some(f) => f,
            None => inv
                .slots
                .iter()
                .find(|e| e.mail && e.full)
                .map(|e| match e.place {
                    Place::Slot(n) | Place::Drive(n) => n,
                })
                .ok_or_else(|| {
                    TapeError::InvalidParameter(format!(
                        "{}: the import/export slots are empty",
                        inv.changer
                    ))
                })?,
        };
        if !inv.element(Place::Slot(from)).is_some_and(|e| e.mail) {
            return Err(TapeError::InvalidParameter(format!(
                "slot {from} is not an import/export slot"
            )));
        }
        let to = match to {
            Some(t) => t,
            None => inv.first_empty(false).ok_or_else(|| {
                TapeError::InvalidParameter(format!("{}: no empty storage slot", inv.changer))
            })?,
        };
        self.transfer(from, to)?;
        Ok((from, to))
    }

    /// Puts the cartridge of slot `slot` into an import/export slot (`to`, else the first
    /// empty one) for an operator to take out. Returns that slot.
    fn export(&mut self, slot: u16, to: Option<u16>) -> Result<u16> {
        let inv = self.inventory()?;
        let to = match to {
            Some(t) => t,
            None => inv.first_empty(true).ok_or_else(|| {
                TapeError::InvalidParameter(format!("{}: no empty import/export slot", inv.changer))
            })?,
        };
        if !inv.element(Place::Slot(to)).is_some_and(|e| e.mail) {
            return Err(TapeError::InvalidParameter(format!(
                "slot {to} is not an import/export slot"
            )));
        }
        self.transfer(slot, to)?;
        Ok(to)
    }
}

fn need_full(inv: &Inventory, place: Place) -> Result<&Element> {
    match inv.element(place) {
        Some(e) if e.full => Ok(e),
        Some(_) => Err(TapeError::InvalidParameter(format!(
            "{}: {place} is empty",
            inv.changer
        ))),
        None => Err(TapeError::InvalidParameter(format!(
            "{}: there is no {place}",
            inv.changer
        ))),
    }
}

fn need_empty(inv: &Inventory, place: Place) -> Result<()> {
    match inv.element(place) {
        Some(e) if !e.full => Ok(()),
        Some(e) => Err(TapeError::InvalidParameter(format!(
            "{}: {place} is full ({})",
            inv.changer,
            e.barcode.as_deref().unwrap_or("no barcode")
        ))),
        None => Err(TapeError::InvalidParameter(format!(
            "{}: there is no {place}",
            inv.changer
        ))),
    }
}
