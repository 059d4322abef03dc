//! The virtual library as a [`MediaChanger`]: its cartridges sit in numbered storage
//! slots (kept in `changer.toml` beside `library.toml`), the loaded one is in drive 0, and
//! the import/export (mail) slots are the cartridges in the `mail/` directory: export
//! moves a cartridge there for the operator to take away, import takes one put there into
//! the library. A cartridge's barcode is its name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::changer::{Element, Inventory, MediaChanger, Place};
use crate::error::{Result, TapeError};
use crate::library::{CARTRIDGE_SUFFIX, Library};
use crate::vtape::store::replace_file;

/// The slot layout of a virtual library.
pub const CHANGER_FILE: &str = "changer.toml";
/// Where exported cartridges go, and imported ones come from.
pub const MAIL_DIR: &str = "mail";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Layout {
    /// Number of storage slots (at least as many as cartridges).
    #[serde(default)]
    slots: Option<u16>,
    /// Number of import/export slots (at least as many as cartridges in `mail/`).
    #[serde(default)]
    mail_slots: Option<u16>,
    /// Cartridge name → storage slot.
    #[serde(default)]
    assigned: BTreeMap<String, u16>,
}

/// A virtual library's changer.
pub struct LibraryChanger {
    lib: Library,
}

impl LibraryChanger {
    pub fn new(lib: Library) -> Self {
        LibraryChanger { lib }
    }

    pub fn library(&self) -> &Library {
        &self.lib
    }

    fn layout_path(&self) -> PathBuf {
        self.lib.dir().join(CHANGER_FILE)
    }

    fn mail_dir(&self) -> PathBuf {
        self.lib.dir().join(MAIL_DIR)
    }

    fn read_layout(&self) -> Result<Layout> {
        let path = self.layout_path();
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| TapeError::BadCartridge {
                path,
                reason: e.to_string().trim().replace('\n', " "),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Layout::default()),
            Err(e) => Err(TapeError::io(&path, e)),
        }
    }

    fn write_layout(&self, l: &Layout) -> Result<()> {
        let path = self.layout_path();
        let body = toml::to_string(l).unwrap_or_default();
        let text = format!("# reel: the slots of the virtual library's changer.\n{body}");
        replace_file(&path, text.as_bytes()).map_err(|e| TapeError::io(&path, e))
    }

    fn mail_names(&self) -> Result<Vec<String>> {
        let dir = self.mail_dir();
        let mut names = Vec::new();
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(TapeError::io(&dir, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| TapeError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(CARTRIDGE_SUFFIX)
                && entry.path().is_dir()
            {
                names.push(stem.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// The layout with every cartridge of the library in a slot (new ones in the lowest
    /// free slots, in name order), saved when that changed it.
    fn settled_layout(&self) -> Result<Layout> {
        let mut l = self.read_layout()?;
        let names = self.lib.cartridge_names()?;
        let before = l.assigned.clone();
        l.assigned.retain(|n, _| names.contains(n));
        for n in &names {
            if !l.assigned.contains_key(n) {
                let used: Vec<u16> = l.assigned.values().copied().collect();
                let free = (1..).find(|s| !used.contains(s)).unwrap_or(1);
                l.assigned.insert(n.clone(), free);
            }
        }
        // The slot count only grows, so that slot numbers (and the import/export slots
        // after them) stay where they are.
        let highest = l.assigned.values().copied().max().unwrap_or(0);
        let storage = l
            .slots
            .unwrap_or(0)
            .max(highest)
            .max(l.assigned.len() as u16 + 2)
            .max(8);
        if l.assigned != before || l.slots != Some(storage) {
            l.slots = Some(storage);
            self.write_layout(&l)?;
        }
        Ok(l)
    }

    /// Storage slot count and mail slot count of a layout.
    fn counts(&self, l: &Layout) -> Result<(u16, u16)> {
        let storage = l.slots.unwrap_or(8);
        let mail = l
            .mail_slots
            .unwrap_or(1)
            .max(self.mail_names()?.len() as u16)
            .max(1);
        Ok((storage, mail))
    }

    /// Cartridge name at a place (with the inventory's numbering).
    fn name_at(&self, inv: &Inventory, place: Place) -> Result<String> {
        inv.element(place)
            .filter(|e| e.full)
            .and_then(|e| e.barcode.clone())
            .ok_or_else(|| {
                TapeError::InvalidParameter(format!("{}: {place} is empty", inv.changer))
            })
    }

    fn move_dir(from: &Path, to: &Path) -> Result<()> {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(|e| TapeError::io(parent, e))?;
        }
        if to.exists() {
            return Err(TapeError::InvalidParameter(format!(
                "{} already exists",
                to.display()
            )));
        }
        std::fs::rename(from, to).map_err(|e| TapeError::io(from, e))
    }

    fn drive_locked(&mut self) -> Result<bool> {
        Ok(self.lib.loaded().is_some() && self.lib.open_drive_no_rewind()?.is_locked())
    }
}

impl MediaChanger for LibraryChanger {
    fn describe(&self) -> String {
        self.lib.dir().display().to_string()
    }

    fn inventory(&mut self) -> Result<Inventory> {
        let l = self.settled_layout()?;
        let (storage, mail_count) = self.counts(&l)?;
        let loaded = self.lib.loaded().map(str::to_string);
        let by_slot: BTreeMap<u16, &String> = l.assigned.iter().map(|(n, s)| (*s, n)).collect();
        let empty = |place, mail| Element {
            place,
            mail,
            full: false,
            barcode: None,
            source: None,
            address: None,
            exception: None,
        };
        let mut slots = Vec::new();
        for s in 1..=storage {
            match by_slot.get(&s) {
                Some(n) if loaded.as_deref() != Some(n.as_str()) => slots.push(Element {
                    full: true,
                    barcode: Some((*n).clone()),
                    ..empty(Place::Slot(s), false)
                }),
                _ => slots.push(empty(Place::Slot(s), false)),
            }
        }
        let mail = self.mail_names()?;
        for i in 0..mail_count {
            let place = Place::Slot(storage + 1 + i);
            match mail.get(usize::from(i)) {
                Some(n) => slots.push(Element {
                    full: true,
                    barcode: Some(n.clone()),
                    ..empty(place, true)
                }),
                None => slots.push(empty(place, true)),
            }
        }
        let drive = match &loaded {
            Some(n) => Element {
                full: true,
                barcode: Some(n.clone()),
                source: l.assigned.get(n).copied(),
                ..empty(Place::Drive(0), false)
            },
            None => empty(Place::Drive(0), false),
        };
        Ok(Inventory {
            changer: self.describe(),
            drives: vec![drive],
            slots,
        })
    }

    fn rescan(&mut self) -> Result<()> {
        self.settled_layout().map(drop)
    }

    fn move_medium(&mut self, from: Place, to: Place) -> Result<()> {
        let inv = self.inventory()?;
        let name = self.name_at(&inv, from)?;
        let target = inv.element(to).ok_or_else(|| {
            TapeError::InvalidParameter(format!("{}: there is no {to}", inv.changer))
        })?;
        if target.full {
            return Err(TapeError::InvalidParameter(format!(
                "{}: {to} is full",
                inv.changer
            )));
        }
        let (from_mail, to_mail) = (inv.element(from).is_some_and(|e| e.mail), target.mail);
        if matches!(from, Place::Drive(_)) && self.drive_locked()? {
            return Err(TapeError::UnableToUnloadMedia);
        }
        let mut l = self.settled_layout()?;
        match (from, to) {
            (Place::Slot(_), Place::Drive(_)) if from_mail => {
                return Err(TapeError::InvalidParameter(format!(
                    "{name} is in an import/export slot: import it first"
                )));
            }
            (Place::Slot(_), Place::Drive(_)) => {
                let mut drive = self.lib.open_drive_no_rewind()?;
                self.lib.load(&mut drive, &name)?;
            }
            (Place::Drive(_), Place::Slot(s)) if !to_mail => {
                l.assigned.insert(name.clone(), s);
                self.write_layout(&l)?;
                self.lib.set_unloaded()?;
            }
            (_, Place::Slot(_)) if to_mail => {
                if matches!(from, Place::Drive(_)) {
                    self.lib.set_unloaded()?;
                }
                let dir = self.lib.cartridge_dir(&name);
                Self::move_dir(
                    &dir,
                    &self.mail_dir().join(format!("{name}{CARTRIDGE_SUFFIX}")),
                )?;
                l.assigned.remove(&name);
                self.write_layout(&l)?;
            }
            (Place::Slot(_), Place::Slot(s)) => {
                if from_mail {
                    Library::check_name(&name)?;
                    let src = self.mail_dir().join(format!("{name}{CARTRIDGE_SUFFIX}"));
                    Self::move_dir(&src, &self.lib.cartridge_dir(&name))?;
                }
                l.assigned.insert(name, s);
                self.write_layout(&l)?;
            }
            _ => {
                return Err(TapeError::NotSupported(format!(
                    "moving from {from} to {to} in a virtual library"
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn library(names: &[&str]) -> (tempfile::TempDir, LibraryChanger) {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::open_or_create(dir.path()).unwrap();
        for n in names {
            lib.create_cartridge(n, 8 << 20, false).unwrap();
        }
        (dir, LibraryChanger::new(lib))
    }

    #[test]
    fn cartridges_are_slots_and_the_loaded_one_is_in_the_drive() {
        let (_d, mut c) = library(&["alpha", "beta", "gamma"]);
        let inv = c.inventory().unwrap();
        // The first cartridge created is loaded: drive 0 holds it, slot 1 is empty.
        assert_eq!(inv.drives[0].barcode.as_deref(), Some("alpha"));
        assert_eq!(inv.drives[0].source, Some(1));
        assert!(!inv.element(Place::Slot(1)).unwrap().full);
        assert_eq!(inv.find("beta"), Some(Place::Slot(2)));
        let status = inv.mtx_status();
        assert!(
            status.contains(
                "Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = alpha"
            ),
            "{status}"
        );
        assert!(
            status.contains("Storage Element 3:Full :VolumeTag=gamma"),
            "{status}"
        );
        assert!(status.contains("IMPORT/EXPORT:Empty"), "{status}");
    }

    #[test]
    fn load_unload_transfer_export_import() {
        let (dir, mut c) = library(&["alpha", "beta", "gamma"]);
        assert_eq!(c.unload(0, None).unwrap(), 1);
        c.load(2, 0).unwrap();
        assert_eq!(c.library().loaded(), Some("beta"));
        // Slot 2 is empty while beta is in the drive: unload it elsewhere.
        assert_eq!(c.unload(0, Some(4)).unwrap(), 4);
        assert_eq!(c.inventory().unwrap().find("beta"), Some(Place::Slot(4)));
        c.transfer(3, 2).unwrap();
        assert_eq!(c.inventory().unwrap().find("gamma"), Some(Place::Slot(2)));
        let mail = c.export(2, None).unwrap();
        assert!(dir.path().join("mail/gamma.vtape").is_dir());
        assert!(!dir.path().join("gamma.vtape").exists());
        assert!(
            c.inventory()
                .unwrap()
                .element(Place::Slot(mail))
                .unwrap()
                .mail
        );
        let (from, to) = c.import(None, None).unwrap();
        assert_eq!(from, mail);
        assert!(dir.path().join("gamma.vtape").is_dir());
        assert_eq!(c.inventory().unwrap().find("gamma"), Some(Place::Slot(to)));
        // Errors name the place.
        let e = c.load(5, 0).unwrap_err().to_string();
        assert!(e.contains("slot 5 is empty"), "{e}");
        assert_eq!(
            c.inventory()
                .unwrap()
                .slots
                .iter()
                .filter(|s| !s.mail)
                .count(),
            8
        );
        c.load(1, 0).unwrap();
        let e = c.load(4, 0).unwrap_err().to_string();
        assert!(e.contains("drive 0 is full"), "{e}");
    }
}
