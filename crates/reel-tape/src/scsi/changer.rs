//! [`ScsiChanger`]: a SCSI medium changer (SMC) as a [`MediaChanger`]: the element
//! address assignment page for the layout, READ ELEMENT STATUS (with volume tags) per
//! element type for the inventory, MOVE MEDIUM to move, INITIALIZE ELEMENT STATUS to
//! rescan.

use reel_scsi::cdb::ElementType;
use reel_scsi::sense::asc;
use reel_scsi::smc::{AddressAssignment, PAGE_ELEMENT_ADDRESS_ASSIGNMENT};
use reel_scsi::{Device, ScsiError};

use super::classify::{Doing, classify};
use crate::changer::{Element, Inventory, MediaChanger, Place};
use crate::error::{Result, TapeError};

/// A SCSI medium changer.
pub struct ScsiChanger {
    dev: Device,
    name: String,
    layout: AddressAssignment,
}

impl ScsiChanger {
    /// Opens the changer behind `dev`: checks it is one and reads its layout.
    pub fn open(mut dev: Device) -> Result<ScsiChanger> {
        let name = dev.name().to_string();
        let q = dev
            .inquiry()
            .map_err(|e| classify(&name, Doing::Inquire, e))?;
        if q.device_type != reel_scsi::inquiry::TYPE_MEDIUM_CHANGER {
            return Err(TapeError::NotSupported(format!(
                "{name} is a {} ({}), not a medium changer",
                q.device_type_name(),
                q.identity()
            )));
        }
        let page = dev
            .mode_sense(PAGE_ELEMENT_ADDRESS_ASSIGNMENT, 0, true)
            .map_err(|e| classify(&name, Doing::Inquire, e))?;
        let layout = page
            .page(PAGE_ELEMENT_ADDRESS_ASSIGNMENT, 0)
            .ok_or_else(|| {
                TapeError::NotSupported(format!("{name} has no element address assignment page"))
            })
            .and_then(|p| {
                AddressAssignment::parse(p).map_err(|e| super::classify::io(&name, e.to_string()))
            })?;
        Ok(ScsiChanger { dev, name, layout })
    }

    pub fn layout(&self) -> AddressAssignment {
        self.layout
    }

    fn elements(&mut self, kind: ElementType) -> Result<Vec<reel_scsi::smc::Element>> {
        let Some(r) = self.layout.range(kind).filter(|r| r.count > 0) else {
            return Ok(Vec::new());
        };
        let mut v = self
            .dev
            .read_element_status(kind, r.first, r.count)
            .map_err(|e| classify(&self.name, Doing::Inquire, e))?;
        // tgt returns every element from the start address on, whatever the count.
        v.retain(|e| {
            e.kind == kind && e.address >= r.first && e.address < r.first.saturating_add(r.count)
        });
        v.sort_by_key(|e| e.address);
        Ok(v)
    }

    /// The element address of a place, from the inventory's numbering.
    fn address(&mut self, place: Place) -> Result<u16> {
        let inv = self.inventory()?;
        inv.element(place).and_then(|e| e.address).ok_or_else(|| {
            TapeError::InvalidParameter(format!("{}: there is no {place}", self.name))
        })
    }

    fn smc_error(&self, e: ScsiError, from: Place, to: Place) -> TapeError {
        match e.sense().map(|s| s.code()) {
            Some(asc::MEDIUM_SOURCE_ELEMENT_EMPTY) => {
                TapeError::InvalidParameter(format!("{}: {from} is empty", self.name))
            }
            Some(asc::MEDIUM_DESTINATION_ELEMENT_FULL) => {
                TapeError::InvalidParameter(format!("{}: {to} is full", self.name))
            }
            Some(asc::MEDIUM_REMOVAL_PREVENTED) => TapeError::UnableToUnloadMedia,
            _ => classify(&self.name, Doing::Load, e),
        }
    }
}

fn element(
    e: &reel_scsi::smc::Element,
    place: Place,
    mail: bool,
    slot_of: &dyn Fn(u16) -> Option<u16>,
) -> Element {
    Element {
        place,
        mail,
        full: e.full,
        barcode: e.volume_tag.clone(),
        source: e.source.and_then(slot_of),
        address: Some(e.address),
        exception: e.except.then(|| {
            reel_scsi::sense::asc::name((e.asc, e.ascq))
                .map(str::to_string)
                .unwrap_or_else(|| format!("ASC {:02X}h ASCQ {:02X}h", e.asc, e.ascq))
        }),
    }
}

impl MediaChanger for ScsiChanger {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn inventory(&mut self) -> Result<Inventory> {
        let drives = self.elements(ElementType::DataTransfer)?;
        let storage = self.elements(ElementType::Storage)?;
        let mail = self.elements(ElementType::ImportExport)?;
        // mtx numbering: storage slots from 1, then the import/export slots.
        let slot_addrs: Vec<u16> = storage.iter().chain(&mail).map(|e| e.address).collect();
        let slot_of = |addr: u16| {
            slot_addrs
                .iter()
                .position(|&a| a == addr)
                .map(|i| i as u16 + 1)
        };
        let mut slots = Vec::new();
        for (i, e) in storage.iter().chain(&mail).enumerate() {
            slots.push(element(
                e,
                Place::Slot(i as u16 + 1),
                i >= storage.len(),
                &slot_of,
            ));
        }
        Ok(Inventory {
            changer: self.name.clone(),
            drives: drives
                .iter()
                .enumerate()
                .map(|(i, e)| element(e, Place::Drive(i as u16), false, &slot_of))
                .collect(),
            slots,
        })
    }

    fn rescan(&mut self) -> Result<()> {
        self.dev
            .initialize_element_status()
            .map_err(|e| classify(&self.name, Doing::Load, e))
    }

    fn move_medium(&mut self, from: Place, to: Place) -> Result<()> {
        let (src, dst) = (self.address(from)?, self.address(to)?);
        let transport = self.layout.transport.first;
        self.dev
            .move_medium(transport, src, dst)
            .map_err(|e| self.smc_error(e, from, to))
    }
}
