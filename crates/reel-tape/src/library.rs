//! A library of virtual cartridges (a changer): a directory of `NAME.vtape` cartridges,
//! with the name of the one in the drive kept in `library.toml`.
//!
//! The default library lives in `$REEL_HOME/library` (else `$XDG_DATA_HOME/reel/library`,
//! else `~/.local/share/reel/library`) and is created on first use, with one blank
//! cartridge, so `reel backup` works on a fresh machine with no set-up.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::drive::{PartitionLayout, TapeDrive};
use crate::error::{Result, TapeError};
use crate::vtape::{
    Cartridge, CartridgeConfig, DRIVE_STATE_FILE, MAX_PARTITIONS, StateFile, VirtualDrive,
    store::replace_file,
};

/// File that marks a directory as a library and names the loaded cartridge.
pub const LIBRARY_FILE: &str = "library.toml";
/// Capacity of cartridges the library creates by itself (16 GiB).
pub const DEFAULT_CAPACITY: u64 = 16 << 30;
/// Suffix of cartridge directories.
pub const CARTRIDGE_SUFFIX: &str = ".vtape";

/// reel's data directory: `$REEL_HOME`, else `$XDG_DATA_HOME/reel`, else
/// `~/.local/share/reel`.
pub fn reel_home() -> PathBuf {
    if let Some(h) = std::env::var_os("REEL_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("reel");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".local/share/reel")
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LibraryState {
    /// Name of the cartridge in the drive.
    #[serde(default)]
    loaded: Option<String>,
    /// Capacity of cartridges created automatically.
    #[serde(default)]
    default_capacity: Option<u64>,
}

/// What the library knows about one of its cartridges.
#[derive(Debug, Clone, Serialize)]
pub struct CartridgeInfo {
    pub name: String,
    pub path: PathBuf,
    pub id: uuid::Uuid,
    pub capacity: u64,
    /// Bytes of tape image in use (all partitions).
    pub used: u64,
    pub write_protected: bool,
    pub loaded: bool,
}

/// A directory of virtual cartridges.
#[derive(Debug)]
pub struct Library {
    dir: PathBuf,
    state: LibraryState,
}

impl Library {
    /// The default library directory.
    pub fn default_dir() -> PathBuf {
        reel_home().join("library")
    }

    /// True when `dir` holds a library.
    pub fn is_library(dir: &Path) -> bool {
        dir.join(LIBRARY_FILE).is_file()
    }

    /// Opens the library in `dir`, creating it (empty) when it does not exist.
    pub fn open_or_create(dir: &Path) -> Result<Library> {
        std::fs::create_dir_all(dir).map_err(|e| TapeError::io(dir, e))?;
        let file = dir.join(LIBRARY_FILE);
        let state = match std::fs::read_to_string(&file) {
            Ok(text) => toml::from_str(&text).map_err(|e| TapeError::BadCartridge {
                path: file.clone(),
                reason: e.to_string().trim().replace('\n', " "),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LibraryState::default(),
            Err(e) => return Err(TapeError::io(&file, e)),
        };
        let lib = Library {
            dir: dir.to_path_buf(),
            state,
        };
        if !file.exists() {
            lib.save()?;
        }
        Ok(lib)
    }

    fn save(&self) -> Result<()> {
        let file = self.dir.join(LIBRARY_FILE);
        let body = toml::to_string(&self.state).unwrap_or_default();
        let text =
            format!("# reel library: the cartridges are the *.vtape directories here.\n{body}");
        replace_file(&file, text.as_bytes()).map_err(|e| TapeError::io(&file, e))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Directory of cartridge `name`.
    pub fn cartridge_dir(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{CARTRIDGE_SUFFIX}"))
    }

    /// Checks a cartridge name: letters, digits, `-`, `_`, `.`; 1 to 64 characters.
    pub fn check_name(name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(())
        } else {
            Err(TapeError::InvalidParameter(format!(
                "cartridge name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
            )))
        }
    }

    /// Creates a blank cartridge `name`; the first cartridge of a library is loaded.
    pub fn create_cartridge(
        &mut self,
        name: &str,
        capacity: u64,
        write_protected: bool,
    ) -> Result<PathBuf> {
        Self::check_name(name)?;
        let dir = self.cartridge_dir(name);
        if dir.exists() {
            return Err(TapeError::InvalidParameter(format!(
                "a cartridge named {name} already exists in {}",
                self.dir.display()
            )));
        }
        let mut config = CartridgeConfig::new(name, capacity);
        config.write_protected = write_protected;
        Cartridge::create(&dir, &config)?;
        if self.state.loaded.is_none() {
            self.state.loaded = Some(name.to_string());
            self.save()?;
        }
        Ok(dir)
    }

    /// Creates a blank cartridge `name` of `capacity` bytes in `partitions` partitions of
    /// equal size (CreateTapePartition's select method), write-protected when asked; the
    /// first cartridge of a library is loaded. A step that fails leaves nothing of the
    /// cartridge behind: no directory, and the library's loaded cartridge as it was.
    pub fn create_partitioned_cartridge(
        &mut self,
        name: &str,
        capacity: u64,
        partitions: u32,
        write_protected: bool,
    ) -> Result<PathBuf> {
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(TapeError::InvalidParameter(format!(
                "{partitions} partitions: a virtual cartridge has 1 to {MAX_PARTITIONS}"
            )));
        }
        let loaded_before = self.state.loaded.clone();
        let path = self.create_cartridge(name, capacity, false)?;
        let made = (|| -> Result<()> {
            if partitions > 1 {
                let mut drive = VirtualDrive::open(&path)?;
                let layout = PartitionLayout::select(partitions);
                drive.create_partitions(layout.method, layout.count, layout.size_mb)?;
            }
            if write_protected {
                self.set_write_protected(name, true)?;
            }
            Ok(())
        })();
        if let Err(e) = made {
            // Best effort: the error that stopped the creation is the one to report.
            let _ = std::fs::remove_dir_all(&path);
            if self.state.loaded != loaded_before {
                self.state.loaded = loaded_before;
                let _ = self.save();
            }
            return Err(e);
        }
        Ok(path)
    }

    /// Sets or clears the write-protect switch of cartridge `name` (not while it is in use).
    pub fn set_write_protected(&self, name: &str, on: bool) -> Result<()> {
        Self::check_name(name)?;
        let dir = self.cartridge_dir(name);
        if !dir.is_dir() {
            return Err(TapeError::InvalidParameter(format!(
                "no cartridge named {name} in {}",
                self.dir.display()
            )));
        }
        Cartridge::open(&dir)?.set_write_protected(on)
    }

    /// Names of the cartridges, in slot (name) order.
    pub fn cartridge_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let rd = std::fs::read_dir(&self.dir).map_err(|e| TapeError::io(&self.dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| TapeError::io(&self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(CARTRIDGE_SUFFIX)
                && !stem.starts_with('.')
                && entry.path().is_dir()
            {
                names.push(stem.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Facts about every cartridge (read from their descriptions; none is opened).
    pub fn cartridges(&self) -> Result<Vec<CartridgeInfo>> {
        let mut out = Vec::new();
        for name in self.cartridge_names()? {
            let path = self.cartridge_dir(&name);
            let store = crate::vtape::store::DirStore::new(&path);
            let config = Cartridge::read_config(&store)?;
            let mut used = 0;
            for n in 1..=config.partition_count() {
                used += std::fs::metadata(path.join(format!("p{n}.tap")))
                    .map(|m| m.len())
                    .unwrap_or(0);
            }
            out.push(CartridgeInfo {
                loaded: self.state.loaded.as_deref() == Some(name.as_str()),
                name,
                path,
                id: config.id,
                capacity: config.capacity,
                used,
                write_protected: config.write_protected,
            });
        }
        Ok(out)
    }

    /// Name of the cartridge in the drive.
    pub fn loaded(&self) -> Option<&str> {
        self.state.loaded.as_deref()
    }

    /// Records `name` as the cartridge in the drive.
    pub fn set_loaded(&mut self, name: &str) -> Result<()> {
        if !self.cartridge_dir(name).is_dir() {
            return Err(TapeError::InvalidParameter(format!(
                "no cartridge named {name} in {}",
                self.dir.display()
            )));
        }
        self.state.loaded = Some(name.to_string());
        self.save()
    }

    /// Records the drive as empty (a changer took its cartridge out). A job on the
    /// library loads the first cartridge again, as in a new library.
    pub fn set_unloaded(&mut self) -> Result<()> {
        self.state.loaded = None;
        self.save()
    }

    /// Capacity of cartridges created automatically.
    pub fn default_capacity(&self) -> u64 {
        self.state.default_capacity.unwrap_or(DEFAULT_CAPACITY)
    }

    /// A name for a new cartridge: `tape-0001`, `tape-0002`, …
    pub fn next_name(&self) -> Result<String> {
        let names = self.cartridge_names()?;
        let n = (1..)
            .find(|n| !names.contains(&format!("tape-{n:04}")))
            .unwrap_or(1);
        Ok(format!("tape-{n:04}"))
    }

    /// The state file of the library's drive (`drive.toml` in the library directory).
    pub fn drive_state(&self, keep_position: bool) -> StateFile {
        StateFile {
            path: self.dir.join(DRIVE_STATE_FILE),
            keep_position,
        }
    }

    /// Opens the drive with the loaded cartridge, creating and loading a first blank
    /// cartridge in an empty library. The drive's settings, load and lock state come from
    /// its state file; the tape is at the beginning (a rewinding open, like `/dev/st0`).
    pub fn open_drive(&mut self) -> Result<VirtualDrive> {
        let dir = self.loaded_dir()?;
        VirtualDrive::open_with_state(&dir, self.drive_state(false))
    }

    /// Like [`Library::open_drive`], but the tape stays where the last user left it (a
    /// no-rewind open, like `/dev/nst0`): what `reel tape` commands use.
    pub fn open_drive_no_rewind(&mut self) -> Result<VirtualDrive> {
        let dir = self.loaded_dir()?;
        VirtualDrive::open_with_state(&dir, self.drive_state(true))
    }

    /// The changer: puts cartridge `name` in `drive` (which must be this library's drive)
    /// and records it as loaded. Fails with UNABLE_TO_UNLOAD_MEDIA while the drive is
    /// locked; the drive reports MEDIA_CHANGED once afterwards.
    pub fn load(&mut self, drive: &mut VirtualDrive, name: &str) -> Result<()> {
        Self::check_name(name)?;
        let dir = self.cartridge_dir(name);
        if !dir.is_dir() {
            return Err(TapeError::InvalidParameter(format!(
                "no cartridge named {name} in {}; create it with `reel tape new {name}`",
                self.dir.display()
            )));
        }
        drive.load_cartridge(&dir)?;
        self.set_loaded(name)
    }

    /// Directory of the loaded cartridge, creating and loading a first blank cartridge
    /// in an empty library.
    fn loaded_dir(&mut self) -> Result<PathBuf> {
        let name = match self.state.loaded.clone() {
            Some(name) if self.cartridge_dir(&name).is_dir() => name,
            Some(name) => {
                return Err(TapeError::NotReady(format!(
                    "the library {} says cartridge {name} is loaded, but it is not there; load another with `reel tape load NAME`",
                    self.dir.display()
                )));
            }
            None => {
                let names = self.cartridge_names()?;
                let name = match names.first() {
                    Some(n) => n.clone(),
                    None => {
                        let n = self.next_name()?;
                        self.create_cartridge(&n, self.default_capacity(), false)?;
                        n
                    }
                };
                self.set_loaded(&name)?;
                name
            }
        };
        Ok(self.cartridge_dir(&name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_new_cartridge_is_partitioned_and_protected_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::open_or_create(dir.path()).unwrap();
        let path = lib
            .create_partitioned_cartridge("two", 64 * MIB, 2, true)
            .unwrap();
        assert_eq!(lib.loaded(), Some("two"));
        let mut drive = VirtualDrive::open(&path).unwrap();
        let media = drive.media_parameters().unwrap();
        assert_eq!(media.partition_count, 2);
        assert!(media.write_protected);
        let one = lib
            .create_partitioned_cartridge("one", 16 * MIB, 1, false)
            .unwrap();
        let media = VirtualDrive::open(&one)
            .unwrap()
            .media_parameters()
            .unwrap();
        assert_eq!((media.partition_count, media.write_protected), (1, false));
        assert_eq!(lib.loaded(), Some("two"), "only the first is loaded");
    }

    #[test]
    fn a_partition_count_out_of_range_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::open_or_create(dir.path()).unwrap();
        for n in [0, MAX_PARTITIONS + 1] {
            let e = lib
                .create_partitioned_cartridge("x", 64 * MIB, n, false)
                .unwrap_err();
            assert!(matches!(e, TapeError::InvalidParameter(_)), "{e}");
        }
        assert!(lib.cartridge_names().unwrap().is_empty());
        assert_eq!(lib.loaded(), None);
    }

    #[test]
    fn a_cartridge_that_cannot_be_partitioned_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut lib = Library::open_or_create(dir.path()).unwrap();
        // 1 MiB cannot hold two partitions of at least 1 MiB each.
        let e = lib
            .create_partitioned_cartridge("small", MIB, 2, false)
            .unwrap_err();
        assert!(!lib.cartridge_dir("small").exists(), "{e}");
        assert!(lib.cartridge_names().unwrap().is_empty());
        // The library does not claim a cartridge that is not there, on disk either.
        assert_eq!(lib.loaded(), None);
        assert_eq!(Library::open_or_create(dir.path()).unwrap().loaded(), None);
        // And the name is free again.
        lib.create_partitioned_cartridge("small", 8 * MIB, 2, false)
            .unwrap();
    }
}
