//! A virtual cartridge: its description (`cartridge.toml`), its partitions and its lock.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Result, TapeError};
use crate::vtape::partition::Partition;
use crate::vtape::store::{CartridgeStore, DirStore};

/// Name of the description file inside a cartridge directory.
pub const CARTRIDGE_FILE: &str = "cartridge.toml";
/// Version of the cartridge layout this code writes.
pub const CARTRIDGE_FORMAT: u32 = 1;
/// Smallest capacity a cartridge may have.
pub const MIN_CAPACITY: u64 = 1 << 20;
/// Smallest partition (also the smallest last partition).
pub const MIN_PARTITION_SIZE: u64 = 1 << 20;

/// The human-editable description of a cartridge.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CartridgeConfig {
    /// Layout version of the cartridge directory.
    pub format: u32,
    /// Unique id of the medium.
    pub id: uuid::Uuid,
    /// Barcode / label written on the cartridge.
    pub barcode: String,
    /// Nominal capacity in bytes (all partitions together).
    pub capacity: u64,
    /// Refuse every write, mark, erase, partition and format.
    #[serde(default)]
    pub write_protected: bool,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Sizes in bytes of partitions 1..n-1; the last partition takes the rest. Empty for an
    /// unpartitioned cartridge.
    #[serde(default)]
    pub partition_sizes: Vec<u64>,
}

impl CartridgeConfig {
    pub fn new(barcode: &str, capacity: u64) -> Self {
        let created = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        CartridgeConfig {
            format: CARTRIDGE_FORMAT,
            id: uuid::Uuid::new_v4(),
            barcode: barcode.to_string(),
            capacity,
            write_protected: false,
            created,
            partition_sizes: Vec::new(),
        }
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partition_sizes.len() as u32 + 1
    }

    /// Capacity of partition `number` (1-based).
    pub fn partition_capacity(&self, number: u32) -> u64 {
        let i = (number as usize).saturating_sub(1);
        match self.partition_sizes.get(i) {
            Some(size) => *size,
            None => self
                .capacity
                .saturating_sub(self.partition_sizes.iter().sum::<u64>()),
        }
    }

    /// Checks the values a hand edit could break.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.format != CARTRIDGE_FORMAT {
            return Err(format!(
                "format {} is not supported (this reel reads format {CARTRIDGE_FORMAT})",
                self.format
            ));
        }
        if self.capacity < MIN_CAPACITY {
            return Err(format!(
                "capacity {} is below the minimum of {MIN_CAPACITY} bytes",
                self.capacity
            ));
        }
        if self.barcode.is_empty() || self.barcode.len() > 64 {
            return Err("barcode must be 1 to 64 characters".into());
        }
        let max = crate::vtape::MAX_PARTITIONS;
        if self.partition_count() > max {
            return Err(format!(
                "{} partitions: a virtual cartridge has at most {max}",
                self.partition_count()
            ));
        }
        if let Some(s) = self
            .partition_sizes
            .iter()
            .find(|s| **s < MIN_PARTITION_SIZE)
        {
            return Err(format!(
                "partition size {s} is below the minimum of {MIN_PARTITION_SIZE} bytes"
            ));
        }
        let sum = self
            .partition_sizes
            .iter()
            .fold(0u64, |a, s| a.saturating_add(*s));
        if sum.saturating_add(MIN_PARTITION_SIZE) > self.capacity {
            return Err(format!(
                "partition sizes add up to {sum} bytes and leave less than {MIN_PARTITION_SIZE} bytes of the {} byte capacity for the last partition",
                self.capacity
            ));
        }
        Ok(())
    }

    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# reel virtual cartridge. Edit with care: reel validates this file when it loads the cartridge.\n{body}"
        )
    }
}

/// An exclusive lock on a cartridge directory, held while a drive has it loaded.
#[derive(Debug)]
pub struct CartridgeLock {
    _file: File,
}

impl CartridgeLock {
    fn acquire(dir: &Path) -> Result<CartridgeLock> {
        let path = dir.join("lock");
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TapeError::io(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(TapeError::NotReady(format!(
                    "cartridge {} is in use by another reel process (pid {}); wait for it to finish",
                    dir.display(),
                    holder.trim()
                )));
            }
            Err(e) => return Err(TapeError::io(&path, e.into())),
        }
        // Written over in place, then cut to length: truncating to zero first would free the
        // block and allocate it again on every open (a discard each time on `-o discard`).
        let holder = format!("{:<10}", std::process::id());
        let _ = file.write_all_at(holder.as_bytes(), 0);
        let _ = file.set_len(holder.len() as u64);
        Ok(CartridgeLock { _file: file })
    }
}

/// A loaded cartridge.
pub struct Cartridge {
    store: Box<dyn CartridgeStore>,
    pub(crate) config: CartridgeConfig,
    pub(crate) partitions: Vec<Partition>,
    _lock: Option<CartridgeLock>,
}

impl Cartridge {
    /// Creates a new blank cartridge directory `dir` (which must not exist yet).
    pub fn create(dir: &Path, config: &CartridgeConfig) -> Result<()> {
        config
            .validate()
            .map_err(|reason| TapeError::BadCartridge {
                path: dir.to_path_buf(),
                reason,
            })?;
        if dir.exists() {
            return Err(TapeError::InvalidParameter(format!(
                "{} already exists",
                dir.display()
            )));
        }
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| TapeError::io(parent, e))?;
        // Build under a temporary name so a crash never leaves a half-made cartridge.
        let tmp = parent.join(format!(
            ".{}.creating-{}",
            dir.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir(&tmp).map_err(|e| TapeError::io(&tmp, e))?;
        let store = DirStore::new(&tmp);
        store
            .replace_small(CARTRIDGE_FILE, config.to_toml().as_bytes())
            .map_err(|e| TapeError::io(tmp.join(CARTRIDGE_FILE), e))?;
        for n in 1..=config.partition_count() {
            store
                .open(&Partition::tap_name(n), true, true)
                .map_err(|e| TapeError::io(tmp.join(Partition::tap_name(n)), e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| TapeError::io(dir, e))?;
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Opens the cartridge in directory `dir`, locking it for this process.
    pub fn open(dir: &Path) -> Result<Cartridge> {
        let lock = CartridgeLock::acquire(dir)?;
        let store: Box<dyn CartridgeStore> = Box::new(DirStore::new(dir));
        let mut c = Self::open_store(store)?;
        c._lock = Some(lock);
        Ok(c)
    }

    /// Opens a cartridge kept in any [`CartridgeStore`] (no lock is taken).
    pub fn open_store(store: Box<dyn CartridgeStore>) -> Result<Cartridge> {
        let config = Self::read_config(&*store)?;
        let mut partitions = Vec::new();
        for n in 1..=config.partition_count() {
            partitions.push(Partition::open(&*store, n, false)?);
        }
        Ok(Cartridge {
            store,
            config,
            partitions,
            _lock: None,
        })
    }

    /// Reads and validates `cartridge.toml`.
    pub fn read_config(store: &dyn CartridgeStore) -> Result<CartridgeConfig> {
        let path = store.path_of(CARTRIDGE_FILE);
        let bytes = store
            .read_small(CARTRIDGE_FILE)
            .map_err(|e| TapeError::io(&path, e))?
            .ok_or_else(|| TapeError::BadCartridge {
                path: store.location(),
                reason: format!("{CARTRIDGE_FILE} is missing: this is not a reel cartridge"),
            })?;
        let text = String::from_utf8(bytes).map_err(|e| TapeError::BadCartridge {
            path: path.clone(),
            reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        })?;
        let config: CartridgeConfig =
            toml::from_str(&text).map_err(|e| TapeError::BadCartridge {
                path: path.clone(),
                reason: e.to_string().trim().replace('\n', " "),
            })?;
        config
            .validate()
            .map_err(|reason| TapeError::BadCartridge { path, reason })?;
        Ok(config)
    }

    /// Writes the description back (after a change of protection or layout).
    pub fn save_config(&self) -> Result<()> {
        self.store
            .replace_small(CARTRIDGE_FILE, self.config.to_toml().as_bytes())
            .map_err(|e| TapeError::io(self.store.path_of(CARTRIDGE_FILE), e))
    }

    pub fn config(&self) -> &CartridgeConfig {
        &self.config
    }

    pub fn location(&self) -> PathBuf {
        self.store.location()
    }

    /// Bytes stored on all partitions.
    pub fn used_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.used_bytes()).sum()
    }

    /// Torn bytes cut off at open, per partition (0 when the cartridge was closed cleanly).
    pub fn recovered_tail(&self) -> u64 {
        self.partitions.iter().map(|p| p.recovered_tail).sum()
    }

    /// What opening repaired or found missing, one sentence per partition concerned.
    pub fn open_notes(&self) -> Vec<String> {
        let location = self.location();
        let name = location.display();
        let mut notes = Vec::new();
        for (i, p) in self.partitions.iter().enumerate() {
            let part = i + 1;
            if p.lost_bytes > 0 {
                notes.push(format!(
                    "cartridge {name}, partition {part}: the data file ends {} bytes before the end its index recorded (it was cut or damaged after it was written); what was there is lost and the end of data is now after the last complete record",
                    p.lost_bytes
                ));
            } else if p.recovered_tail > 0 {
                notes.push(format!(
                    "cartridge {name}, partition {part}: {} bytes of an unfinished write (a crash or kill during a write) were cut after the last complete record",
                    p.recovered_tail
                ));
            }
        }
        notes
    }

    /// Sets or clears the write-protect switch (kept in `cartridge.toml`).
    pub fn set_write_protected(&mut self, on: bool) -> Result<()> {
        let mut config = self.config.clone();
        config.write_protected = on;
        self.store
            .replace_small(CARTRIDGE_FILE, config.to_toml().as_bytes())
            .map_err(|e| TapeError::io(self.store.path_of(CARTRIDGE_FILE), e))?;
        self.config = config;
        Ok(())
    }

    /// Erases every partition, keeping the layout (PrepareTape(Format)).
    pub fn erase_all(&mut self) -> Result<()> {
        for p in &mut self.partitions {
            p.erase_all()?;
        }
        Ok(())
    }

    /// Replaces the partition layout (CreateTapePartition): `sizes` are the byte sizes of
    /// partitions 1..n-1, the last takes the rest. Everything on the cartridge is erased.
    ///
    /// Crash order: all data is erased first, then files of new partitions are created
    /// empty, then `cartridge.toml` is replaced atomically, then surplus files are removed.
    /// A crash leaves either layout with every partition file present.
    pub fn repartition(&mut self, sizes: Vec<u64>) -> Result<()> {
        let mut config = self.config.clone();
        config.partition_sizes = sizes;
        config.validate().map_err(TapeError::PartitionFailure)?;
        self.erase_all()?;
        let old = self.partitions.len() as u32;
        let new = config.partition_count();
        for n in old + 1..=new {
            let mut p = Partition::open(&*self.store, n, true)?;
            // A file left from an older layout must not come back to life.
            p.erase_all()?;
            self.partitions.push(p);
        }
        self.store
            .replace_small(CARTRIDGE_FILE, config.to_toml().as_bytes())
            .map_err(|e| TapeError::io(self.store.path_of(CARTRIDGE_FILE), e))?;
        self.config = config;
        while self.partitions.len() as u32 > new {
            let p = self.partitions.pop();
            drop(p);
            let n = self.partitions.len() as u32 + 1;
            for name in [
                Partition::tap_name(n),
                Partition::idx_name(n),
                Partition::marks_name(n),
            ] {
                self.store
                    .remove(&name)
                    .map_err(|e| TapeError::io(self.store.path_of(&name), e))?;
            }
        }
        Ok(())
    }

    pub fn sync(&mut self) -> Result<()> {
        for p in &mut self.partitions {
            p.sync()?;
        }
        Ok(())
    }
}

impl Drop for Cartridge {
    fn drop(&mut self) {
        let _ = self.sync();
    }
}
