//! The virtual drive: a [`TapeDrive`] over a [`Cartridge`].
//!
//! # Semantics chosen where Windows leaves them to the device
//!
//! - Positions count objects (records and marks) from 0 in each partition; absolute
//!   positions number the objects of partition 1, then those of partition 2, and so on.
//! - Setmarks with ReportSetmarks off are invisible to reads and to block spacing (they
//!   still count as objects in positions). With ReportSetmarks on, reads, block spacing and
//!   filemark spacing stop at a setmark with SETMARK_DETECTED, like at a filemark.
//! - Early warning is reported by data writes only; marks written in the zone succeed
//!   silently (the closing marks a caller writes after the warning), and fail with
//!   END_OF_MEDIA only when they do not fit at all.
//! - Short and long filemarks are recorded as ordinary filemarks; every mark may be
//!   overwritten (what a long filemark promises, and more than a short one does).
//! - Short and long erase both make the position the new end of data and free the space
//!   after it (a virtual medium has no erase gap to leave behind).
//! - Capacity and Remaining are those of the current partition; Remaining is the room
//!   after the end of data, counted in stored (possibly compressed) bytes.
//! - ECC on: every record is checked against its CRC-32 when read; off: only its framing.
//!   Data padding is kept and reported; a virtual medium never needs to stream.
//! - PrepareTape(Format) erases every partition and keeps the layout.
//! - Immediate flags are accepted; operations complete before the call returns.
//! - Drive state that outlives a process (settings, block size, loaded or unloaded, lock,
//!   and for a no-rewind open the position) is kept in a [`StateFile`] (`drive.toml`).
//!   A pending MEDIA_CHANGED is not: opening the drive absorbs it, as opening a Linux st
//!   device does.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::drive::*;
use crate::error::{Result, TapeError};
use crate::features::*;
use crate::simh;
use crate::vtape::cartridge::{Cartridge, MIN_PARTITION_SIZE};
use crate::vtape::partition::Object;
use crate::vtape::store::replace_file;

/// Largest record the virtual drive accepts (the 24-bit SIMH limit, so classic readers
/// read every record).
pub const MAX_BLOCK_SIZE: u32 = 0x00FF_FFFF;
pub const MIN_BLOCK_SIZE: u32 = 1;
pub const DEFAULT_BLOCK_SIZE: u32 = 256 * 1024;
pub const MAX_PARTITIONS: u32 = 4;
/// zstd level of compressed records (fast; the point is to save tape, not CPU).
pub const COMPRESSION_LEVEL: i32 = 1;
/// Name of the drive state file (in a library directory, or in a bare cartridge directory).
pub const DRIVE_STATE_FILE: &str = "drive.toml";

/// The settings of the drive (SetTapeParameters): they stay with the drive when
/// cartridges change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriveSettings {
    pub ecc: bool,
    pub compression: bool,
    pub data_padding: bool,
    pub report_setmarks: bool,
    /// Size of the early-warning zone in bytes; `None` = the default for the medium.
    pub eot_warning_zone: Option<u32>,
    /// Block size of fixed-block mode; 0 = variable.
    pub block_size: u32,
}

impl Default for DriveSettings {
    fn default() -> Self {
        DriveSettings {
            ecc: true,
            compression: false,
            data_padding: false,
            report_setmarks: false,
            eot_warning_zone: None,
            block_size: 0,
        }
    }
}

impl DriveSettings {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.block_size != 0 && !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&self.block_size) {
            return Err(format!(
                "block_size {} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE} (0 = variable)",
                self.block_size
            ));
        }
        Ok(())
    }
}

/// Default early-warning zone: 1% of the capacity, at least 4 MiB, at most 1 GiB, never
/// more than a quarter of the medium.
pub fn default_eot_zone(capacity: u64) -> u32 {
    let zone = (capacity / 100).clamp(4 << 20, 1 << 30).min(capacity / 4);
    zone as u32
}

/// Where a drive keeps the state that outlives a process, and whether the position is
/// part of it (a no-rewind open, like `/dev/nst0`) or the tape is at the beginning on
/// every open (like `/dev/st0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateFile {
    pub path: PathBuf,
    pub keep_position: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedPosition {
    /// Id of the cartridge the position belongs to.
    cartridge: uuid::Uuid,
    partition: u32,
    block: u64,
}

/// The contents of `drive.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DriveStateDoc {
    /// PrepareTape(Unload) was done: no medium until Load.
    #[serde(default)]
    unloaded: bool,
    /// PrepareTape(Lock) is in force.
    #[serde(default)]
    locked: bool,
    #[serde(default)]
    settings: DriveSettings,
    #[serde(default)]
    position: Option<SavedPosition>,
}

impl DriveStateDoc {
    fn read(path: &Path) -> Result<DriveStateDoc> {
        let text = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(TapeError::io(path, e)),
        };
        let bad = |reason: String| TapeError::BadCartridge {
            path: path.to_path_buf(),
            reason: format!("{reason} (fix it, or delete the file to reset the drive settings)"),
        };
        let text = String::from_utf8(text).map_err(|e| {
            bad(format!(
                "not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        let doc: DriveStateDoc =
            toml::from_str(&text).map_err(|e| bad(e.to_string().trim().replace('\n', " ")))?;
        doc.settings.validate().map_err(bad)?;
        Ok(doc)
    }

    fn write(&self, path: &Path) -> Result<()> {
        let body = toml::to_string(self).unwrap_or_default();
        let text = format!(
            "# reel virtual drive state: settings (reel tape set), load and lock state, position.\n{body}"
        );
        replace_file(path, text.as_bytes()).map_err(|e| TapeError::io(path, e))
    }
}

/// The position of a [`VirtualDrive`] in st terms (see [`VirtualDrive::position_detail`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionDetail {
    /// Current partition, 1-based.
    pub partition: u32,
    /// Logical object number in the partition.
    pub block: u64,
    /// Objects in the partition (the end of data is at this block).
    pub objects: u64,
    /// Filemarks before the position in this partition (st's `mt_fileno`).
    pub file_number: u64,
    /// Objects since the last filemark (st's `mt_blkno`).
    pub block_in_file: u64,
    /// The object just before the position is a filemark.
    pub after_filemark: bool,
    /// The object just before the position is a setmark.
    pub after_setmark: bool,
    /// Capacity and remaining bytes of the partition.
    pub capacity: u64,
    pub remaining: u64,
    /// The end of data is in the early-warning zone.
    pub in_warning_zone: bool,
    pub write_protected: bool,
    /// Block size of fixed-block mode, 0 for variable.
    pub block_size: u32,
}

/// A drive with a virtual cartridge in it.
pub struct VirtualDrive {
    cartridge: Option<Cartridge>,
    /// Directory of the cartridge last in the drive, for PrepareTape(Load) after Unload.
    last_dir: Option<PathBuf>,
    /// Id of the cartridge last in the drive, to tell a media change from a reload.
    last_id: Option<uuid::Uuid>,
    name: String,
    settings: DriveSettings,
    /// Current partition (index into the cartridge's partitions) and object position.
    partition: usize,
    pos: u64,
    media_changed: bool,
    locked: bool,
    /// Stored payload of the record being read.
    scratch: Vec<u8>,
    /// Decompressed record.
    plain: Vec<u8>,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    state: Option<StateFile>,
    /// What the state file holds now (to write it only on change).
    saved: Option<DriveStateDoc>,
}

fn drive_name(dir: &Path, cartridge: Option<&Cartridge>) -> String {
    match cartridge {
        Some(c) => format!("vtape:{}", c.config().barcode),
        None => format!(
            "vtape:{} (unloaded)",
            dir.file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".vtape").to_string())
                .unwrap_or_default()
        ),
    }
}

impl VirtualDrive {
    fn with_cartridge(dir: &Path, cartridge: Option<Cartridge>) -> VirtualDrive {
        VirtualDrive {
            name: drive_name(dir, cartridge.as_ref()),
            last_id: cartridge.as_ref().map(|c| c.config().id),
            cartridge,
            last_dir: Some(dir.to_path_buf()),
            settings: DriveSettings::default(),
            partition: 0,
            pos: 0,
            media_changed: false,
            locked: false,
            scratch: Vec::new(),
            plain: Vec::new(),
            compressor: None,
            state: None,
            saved: None,
        }
    }

    /// A drive with the cartridge in `dir` loaded, positioned at the beginning, with
    /// default settings and no state kept between processes.
    pub fn open(dir: &Path) -> Result<VirtualDrive> {
        let cartridge = Cartridge::open(dir)?;
        Ok(Self::with_cartridge(dir, Some(cartridge)))
    }

    /// A drive for the cartridge in `dir` whose settings, load and lock state (and, with
    /// `keep_position`, position) are read from and kept in `state`.
    pub fn open_with_state(dir: &Path, state: StateFile) -> Result<VirtualDrive> {
        let doc = DriveStateDoc::read(&state.path)?;
        let cartridge = if doc.unloaded {
            None
        } else {
            Some(Cartridge::open(dir)?)
        };
        let mut d = Self::with_cartridge(dir, cartridge);
        d.settings = doc.settings.clone();
        d.locked = doc.locked && d.cartridge.is_some();
        if let (true, Some(saved), Some(c)) = (state.keep_position, &doc.position, &d.cartridge) {
            let n = saved.partition as usize;
            if saved.cartridge == c.config().id && n >= 1 && n <= c.partitions.len() {
                d.partition = n - 1;
                // Another program may have shortened the tape meanwhile.
                d.pos = saved.block.min(c.partitions[n - 1].count());
            }
        }
        d.state = Some(state);
        d.saved = Some(doc);
        Ok(d)
    }

    /// Puts another cartridge in the drive (a changer's load). When it is not the
    /// cartridge that was in the drive, the next operation reports MEDIA_CHANGED once.
    pub fn load_cartridge(&mut self, dir: &Path) -> Result<()> {
        if self.locked && self.cartridge.is_some() {
            return Err(TapeError::UnableToUnloadMedia);
        }
        let cartridge = if self.last_dir.as_deref() == Some(dir) {
            // The lock of the old cartridge must go before the same one can be opened again.
            if let Some(mut old) = self.cartridge.take() {
                old.sync()?;
            }
            Cartridge::open(dir)?
        } else {
            // Open the new one first: when it cannot be loaded, the old one stays in.
            let new = Cartridge::open(dir)?;
            if let Some(mut old) = self.cartridge.take() {
                old.sync()?;
            }
            new
        };
        let id = cartridge.config().id;
        self.media_changed = self.last_id != Some(id);
        self.name = drive_name(dir, Some(&cartridge));
        self.cartridge = Some(cartridge);
        self.last_dir = Some(dir.to_path_buf());
        self.last_id = Some(id);
        self.partition = 0;
        self.pos = 0;
        self.save_state()
    }

    /// The loaded cartridge, if any.
    pub fn cartridge(&self) -> Option<&Cartridge> {
        self.cartridge.as_ref()
    }

    pub fn settings(&self) -> &DriveSettings {
        &self.settings
    }

    /// True after PrepareTape(Lock) until Unlock.
    pub fn is_locked(&self) -> bool {
        self.locked
    }

    /// Where the tape is, in the terms of a Linux st drive's MTIOCGET (file and block
    /// numbers, marks just passed, end of data, early warning). `None` without a medium.
    /// For servers that present the cartridge as an st drive (`reel rmt`).
    pub fn position_detail(&self) -> Option<PositionDetail> {
        let c = self.cartridge.as_ref()?;
        let p = c.partitions.get(self.partition)?;
        let pos = self.pos;
        let fm = p.filemarks();
        let sm = p.setmarks();
        let file_number = fm.partition_point(|&m| m < pos) as u64;
        let last_mark = fm[..file_number as usize].last().copied();
        let capacity = c.config.partition_capacity(self.partition as u32 + 1);
        let remaining = capacity.saturating_sub(p.used_bytes());
        Some(PositionDetail {
            partition: self.partition as u32 + 1,
            block: pos,
            objects: p.count(),
            file_number,
            block_in_file: last_mark.map_or(pos, |m| pos - m - 1),
            after_filemark: pos > 0 && fm.binary_search(&(pos - 1)).is_ok(),
            after_setmark: pos > 0 && sm.binary_search(&(pos - 1)).is_ok(),
            capacity,
            remaining,
            in_warning_zone: remaining < self.eot_zone(capacity),
            write_protected: c.config.write_protected,
            block_size: self.settings.block_size,
        })
    }

    /// Writes the drive state file now (it is also written when the drive is dropped).
    pub fn save_state(&mut self) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let doc = DriveStateDoc {
            unloaded: self.cartridge.is_none(),
            locked: self.locked,
            settings: self.settings.clone(),
            position: match (&self.cartridge, state.keep_position) {
                (Some(c), true) => Some(SavedPosition {
                    cartridge: c.config().id,
                    partition: self.partition as u32 + 1,
                    block: self.pos,
                }),
                _ => None,
            },
        };
        if self.saved.as_ref() == Some(&doc) {
            return Ok(());
        }
        doc.write(&state.path)?;
        self.saved = Some(doc);
        Ok(())
    }

    /// Checks that a medium is ready; reports a media change once.
    fn ready(&mut self) -> Result<&mut Cartridge> {
        if self.cartridge.is_none() {
            return Err(TapeError::NoMediaInDrive);
        }
        if self.media_changed {
            self.media_changed = false;
            return Err(TapeError::MediaChanged);
        }
        self.cartridge.as_mut().ok_or(TapeError::NoMediaInDrive)
    }

    fn writable(&mut self) -> Result<&mut Cartridge> {
        let c = self.ready()?;
        if c.config.write_protected {
            return Err(TapeError::WriteProtect(format!(
                "{} ({}); nothing was changed",
                c.config.barcode,
                c.location().display()
            )));
        }
        Ok(c)
    }

    fn eot_zone(&self, capacity: u64) -> u64 {
        u64::from(
            self.settings
                .eot_warning_zone
                .unwrap_or_else(|| default_eot_zone(capacity)),
        )
    }

    /// The stored form of one record: (class, compressed bytes or None for the data as is).
    fn encode_record(&mut self, data: &[u8]) -> (u32, Option<Vec<u8>>) {
        if !self.settings.compression {
            return (simh::CLASS_GOOD, None);
        }
        if self.compressor.is_none() {
            self.compressor = zstd::bulk::Compressor::new(COMPRESSION_LEVEL).ok();
        }
        let compressed = self
            .compressor
            .as_mut()
            .and_then(|c| c.compress(data).ok())
            .filter(|c| c.len() < data.len());
        match compressed {
            Some(c) => (simh::CLASS_COMPRESSED, Some(c)),
            None => (simh::CLASS_GOOD, None),
        }
    }

    /// Writes `blocks` as records at the current position (all or nothing as far as
    /// capacity goes). Returns `EarlyWarning` when the end of data is in the warning zone.
    fn write_records(&mut self, blocks: &[&[u8]]) -> Result<()> {
        self.writable()?;
        let encoded: Vec<(u32, Option<Vec<u8>>)> =
            blocks.iter().map(|b| self.encode_record(b)).collect();
        let stored: u64 = blocks
            .iter()
            .zip(&encoded)
            .map(|(b, (_, c))| simh::record_size(c.as_ref().map_or(b.len(), |c| c.len()) as u32))
            .sum();
        let part = self.partition;
        let pos = self.pos;
        let zone = {
            let c = self.cartridge.as_ref().ok_or(TapeError::NoMediaInDrive)?;
            self.eot_zone(c.config.partition_capacity(part as u32 + 1))
        };
        let c = self.cartridge.as_mut().ok_or(TapeError::NoMediaInDrive)?;
        let capacity = c.config.partition_capacity(part as u32 + 1);
        let p = &mut c.partitions[part];
        let start = p.offset_of(pos)?;
        if start.saturating_add(stored) > capacity {
            return Err(TapeError::EndOfMedia);
        }
        p.truncate_at(pos, false)?;
        for (b, (class, comp)) in blocks.iter().zip(&encoded) {
            let payload: &[u8] = comp.as_deref().unwrap_or(b);
            p.append_record(*class, payload)?;
            self.pos += 1;
        }
        if p.used_bytes() > capacity.saturating_sub(zone) {
            return Err(TapeError::EarlyWarning);
        }
        Ok(())
    }

    fn partition_index(&self, partition: u32) -> Result<usize> {
        let count = self
            .cartridge
            .as_ref()
            .map(|c| c.partitions.len())
            .unwrap_or(0);
        match partition {
            0 => Ok(self.partition),
            n if (n as usize) <= count => Ok(n as usize - 1),
            n => Err(TapeError::InvalidParameter(format!(
                "partition {n} does not exist (the cartridge has {count}{})",
                if count == 1 {
                    "; create partitions with CreateTapePartition / `reel tape partition`"
                } else {
                    ""
                }
            ))),
        }
    }

    /// Reads the record or mark at the position (variable mode rules).
    fn read_one_record(&mut self, buf: &mut [u8]) -> Result<usize> {
        let part = self.partition;
        let report_setmarks = self.settings.report_setmarks;
        let verify = self.settings.ecc;
        self.ready()?;
        loop {
            let pos = self.pos;
            let c = self.cartridge.as_mut().ok_or(TapeError::NoMediaInDrive)?;
            let p = &mut c.partitions[part];
            if pos >= p.count() {
                if let Some((at, why)) = p.damage() {
                    return Err(TapeError::Crc(format!(
                        "partition {} is unreadable from byte {at}: {why}",
                        p.number()
                    )));
                }
                return Err(TapeError::NoDataDetected);
            }
            let entry = p.entry(pos)?;
            match entry.object() {
                Object::Filemark => {
                    self.pos += 1;
                    return Err(TapeError::FilemarkDetected);
                }
                Object::Setmark => {
                    self.pos += 1;
                    if report_setmarks {
                        return Err(TapeError::SetmarkDetected);
                    }
                }
                Object::Record { class, len } => {
                    let len = len as usize;
                    let result = if class == simh::CLASS_GOOD && buf.len() >= len {
                        p.read_payload(pos, buf, verify)
                    } else {
                        self.scratch.resize(len, 0);
                        let r = p.read_payload(pos, &mut self.scratch, verify);
                        r.and_then(|n| match class {
                            simh::CLASS_GOOD => Ok(n),
                            simh::CLASS_COMPRESSED => {
                                decompress(&self.scratch[..n], &mut self.plain).map_err(|why| {
                                    TapeError::Crc(format!(
                                        "compressed record at block {pos} of partition {}: {why}",
                                        part + 1
                                    ))
                                })?;
                                std::mem::swap(&mut self.scratch, &mut self.plain);
                                Ok(self.scratch.len())
                            }
                            other => Err(TapeError::Crc(format!(
                                "record at block {pos} of partition {} is of class {other:#x} (a bad or foreign record)",
                                part + 1
                            ))),
                        })
                        .inspect(|&n| {
                            let copied = n.min(buf.len());
                            buf[..copied].copy_from_slice(&self.scratch[..copied]);
                        })
                    };
                    // Like a drive, move past the record even when it could not be read.
                    self.pos += 1;
                    let n = result?;
                    if n > buf.len() {
                        return Err(TapeError::MoreData {
                            record_len: n,
                            copied: buf.len(),
                        });
                    }
                    return Ok(n);
                }
            }
        }
    }

    fn features(&self) -> (u32, u32) {
        let low = TAPE_DRIVE_FIXED
            | TAPE_DRIVE_SELECT
            | TAPE_DRIVE_INITIATOR
            | TAPE_DRIVE_ERASE_SHORT
            | TAPE_DRIVE_ERASE_LONG
            | TAPE_DRIVE_ERASE_IMMEDIATE
            | TAPE_DRIVE_TAPE_CAPACITY
            | TAPE_DRIVE_TAPE_REMAINING
            | TAPE_DRIVE_FIXED_BLOCK
            | TAPE_DRIVE_VARIABLE_BLOCK
            | TAPE_DRIVE_WRITE_PROTECT
            | TAPE_DRIVE_EOT_WZ_SIZE
            | TAPE_DRIVE_ECC
            | TAPE_DRIVE_COMPRESSION
            | TAPE_DRIVE_PADDING
            | TAPE_DRIVE_REPORT_SMKS
            | TAPE_DRIVE_GET_ABSOLUTE_BLK
            | TAPE_DRIVE_GET_LOGICAL_BLK
            | TAPE_DRIVE_SET_EOT_WZ_SIZE;
        let high = high(&[
            TAPE_DRIVE_LOAD_UNLOAD,
            TAPE_DRIVE_TENSION,
            TAPE_DRIVE_LOCK_UNLOCK,
            TAPE_DRIVE_REWIND_IMMEDIATE,
            TAPE_DRIVE_SET_BLOCK_SIZE,
            TAPE_DRIVE_LOAD_UNLD_IMMED,
            TAPE_DRIVE_TENSION_IMMED,
            TAPE_DRIVE_LOCK_UNLK_IMMED,
            TAPE_DRIVE_SET_ECC,
            TAPE_DRIVE_SET_COMPRESSION,
            TAPE_DRIVE_SET_PADDING,
            TAPE_DRIVE_SET_REPORT_SMKS,
            TAPE_DRIVE_ABSOLUTE_BLK,
            TAPE_DRIVE_ABS_BLK_IMMED,
            TAPE_DRIVE_LOGICAL_BLK,
            TAPE_DRIVE_LOG_BLK_IMMED,
            TAPE_DRIVE_END_OF_DATA,
            TAPE_DRIVE_RELATIVE_BLKS,
            TAPE_DRIVE_FILEMARKS,
            TAPE_DRIVE_SEQUENTIAL_FMKS,
            TAPE_DRIVE_SETMARKS,
            TAPE_DRIVE_SEQUENTIAL_SMKS,
            TAPE_DRIVE_REVERSE_POSITION,
            TAPE_DRIVE_SPACE_IMMEDIATE,
            TAPE_DRIVE_WRITE_SETMARKS,
            TAPE_DRIVE_WRITE_FILEMARKS,
            TAPE_DRIVE_WRITE_SHORT_FMKS,
            TAPE_DRIVE_WRITE_LONG_FMKS,
            TAPE_DRIVE_WRITE_MARK_IMMED,
            TAPE_DRIVE_FORMAT,
            TAPE_DRIVE_FORMAT_IMMEDIATE,
        ]);
        (low, high)
    }

    /// Partition sizes in bytes (all but the last) for a CreateTapePartition request.
    fn layout(
        &self,
        capacity: u64,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<Vec<u64>> {
        let check_count = |count: u32| {
            if count == 0 || count > MAX_PARTITIONS {
                Err(TapeError::InvalidParameter(format!(
                    "{count} partitions: a virtual cartridge has 1 to {MAX_PARTITIONS}"
                )))
            } else {
                Ok(())
            }
        };
        let mib = |b: u64| b & !((1 << 20) - 1);
        Ok(match method {
            // The drive's own layout: a small first partition (for an index, as LTFS
            // uses it) of 1/20 of the capacity, the rest in the second.
            PartitionMethod::Fixed => {
                let first = mib(capacity / 20).max(MIN_PARTITION_SIZE);
                vec![first]
            }
            PartitionMethod::Select => {
                check_count(count)?;
                let each = mib(capacity / u64::from(count));
                vec![each; count as usize - 1]
            }
            PartitionMethod::Initiator => {
                check_count(count)?;
                if count > 1 && size_mb == 0 {
                    return Err(TapeError::InvalidParameter(
                        "initiator partitions need a size (megabytes) for all but the last".into(),
                    ));
                }
                vec![u64::from(size_mb) << 20; count as usize - 1]
            }
        })
    }
}

/// Decompresses one stored record into `out` (bounded by the block size limit).
fn decompress(stored: &[u8], out: &mut Vec<u8>) -> std::result::Result<(), String> {
    let size = zstd::zstd_safe::get_frame_content_size(stored)
        .map_err(|_| "not a zstd frame".to_string())?
        .ok_or_else(|| "the zstd frame does not say its size".to_string())?;
    if size == 0 || size > u64::from(MAX_BLOCK_SIZE) {
        return Err(format!(
            "the zstd frame says {size} bytes, outside 1..={MAX_BLOCK_SIZE}"
        ));
    }
    out.clear();
    out.resize(size as usize, 0);
    let n = zstd::bulk::Decompressor::new()
        .and_then(|mut d| d.decompress_to_buffer(stored, &mut out[..]))
        .map_err(|e| format!("does not decompress: {e}"))?;
    if n as u64 != size {
        return Err(format!("decompressed to {n} bytes, the frame says {size}"));
    }
    Ok(())
}

impl TapeDrive for VirtualDrive {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn cartridge_name(&self) -> Option<String> {
        self.cartridge.as_ref().map(|c| c.config().barcode.clone())
    }

    fn max_record_len(&self) -> usize {
        MAX_BLOCK_SIZE as usize
    }

    fn open_notes(&self) -> Vec<String> {
        self.cartridge
            .as_ref()
            .map(Cartridge::open_notes)
            .unwrap_or_default()
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let bs = self.settings.block_size as usize;
        if bs == 0 {
            return self.read_one_record(buf);
        }
        self.ready()?;
        if buf.is_empty() || !buf.len().is_multiple_of(bs) {
            return Err(TapeError::InvalidBlockLength(format!(
                "a read of {} bytes is not a multiple of the block size {bs} (fixed-block mode)",
                buf.len()
            )));
        }
        let mut done = 0;
        while done < buf.len() {
            let before = self.pos;
            let r = self.read_one_record(&mut buf[done..done + bs]);
            let r = match r {
                Ok(n) if n != bs => Err(TapeError::InvalidBlockLength(format!(
                    "the record at block {before} has {n} bytes, the block size is {bs}"
                ))),
                Err(TapeError::MoreData { record_len, .. }) => {
                    Err(TapeError::InvalidBlockLength(format!(
                        "the record at block {before} has {record_len} bytes, the block size is {bs}"
                    )))
                }
                other => other,
            };
            match r {
                Ok(n) => done += n,
                // After some blocks, return them; the next read reports the condition.
                Err(e) if done > 0 => {
                    if !matches!(e, TapeError::NoDataDetected) && self.pos > 0 {
                        self.pos -= 1;
                    }
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.writable()?;
        let bs = self.settings.block_size as usize;
        if bs == 0 {
            if buf.is_empty() || buf.len() > MAX_BLOCK_SIZE as usize {
                return Err(TapeError::InvalidBlockLength(format!(
                    "{} bytes (records are 1 to {MAX_BLOCK_SIZE} bytes)",
                    buf.len()
                )));
            }
            return self.write_records(&[buf]);
        }
        if buf.is_empty() || !buf.len().is_multiple_of(bs) {
            return Err(TapeError::InvalidBlockLength(format!(
                "a write of {} bytes is not a multiple of the block size {bs} (fixed-block mode)",
                buf.len()
            )));
        }
        let blocks: Vec<&[u8]> = buf.chunks(bs).collect();
        self.write_records(&blocks)
    }

    fn write_marks(&mut self, kind: MarkKind, count: u32, _immediate: bool) -> Result<()> {
        let part = self.partition;
        let pos = self.pos;
        let c = self.writable()?;
        if count == 0 {
            // WRITE FILEMARKS(0) only flushes.
            return c.sync();
        }
        let capacity = c.config.partition_capacity(part as u32 + 1);
        let p = &mut c.partitions[part];
        let start = p.offset_of(pos)?;
        if start.saturating_add(4 * u64::from(count)) > capacity {
            return Err(TapeError::EndOfMedia);
        }
        p.truncate_at(pos, false)?;
        let setmark = matches!(kind, MarkKind::Setmarks);
        for _ in 0..count {
            p.append_mark(setmark)?;
        }
        p.sync()?;
        self.pos = pos + u64::from(count);
        Ok(())
    }

    fn set_position(&mut self, to: SeekTo, _immediate: bool) -> Result<()> {
        self.ready()?;
        let rs = self.settings.report_setmarks;
        match to {
            SeekTo::Rewind => {
                self.pos = 0;
                Ok(())
            }
            SeekTo::EndOfData { partition } => {
                self.partition = self.partition_index(partition)?;
                self.pos = self.current_count();
                Ok(())
            }
            SeekTo::LogicalBlock { partition, block } => {
                self.partition = self.partition_index(partition)?;
                self.seek_within(block)
            }
            SeekTo::AbsoluteBlock(block) => {
                let counts = self.counts();
                let mut rest = block;
                for (i, count) in counts.iter().enumerate() {
                    if rest < *count || i + 1 == counts.len() {
                        self.partition = i;
                        return self.seek_within(rest);
                    }
                    rest -= count;
                }
                Ok(())
            }
            SeekTo::SpaceFilemarks(n) => {
                let m = self.marks();
                let stops = if rs { m.setmarks.as_slice() } else { &[] };
                let r = space_marks(&m.filemarks, stops, m.count, self.pos, n);
                self.apply(r)
            }
            SeekTo::SpaceSetmarks(n) => {
                let m = self.marks();
                let r = space_marks(&m.setmarks, &[], m.count, self.pos, n);
                self.apply(r)
            }
            SeekTo::SpaceSequentialFilemarks(n) => {
                let m = self.marks();
                let stops = if rs { m.setmarks.as_slice() } else { &[] };
                let r = space_sequential(&m.filemarks, stops, m.count, self.pos, n);
                self.apply(r)
            }
            SeekTo::SpaceSequentialSetmarks(n) => {
                let m = self.marks();
                let r = space_sequential(&m.setmarks, &[], m.count, self.pos, n);
                self.apply(r)
            }
            SeekTo::SpaceRelativeBlocks(n) => {
                let m = self.marks();
                let r = space_blocks(&m, rs, self.pos, n);
                self.apply(r)
            }
        }
    }

    fn position(&mut self, kind: PositionKind) -> Result<Position> {
        self.ready()?;
        let part = self.partition;
        Ok(match kind {
            PositionKind::Logical => Position {
                partition: part as u32 + 1,
                offset: self.pos,
            },
            PositionKind::Absolute => Position {
                partition: 0,
                offset: self.counts()[..part].iter().sum::<u64>() + self.pos,
            },
        })
    }

    fn status(&mut self) -> Result<()> {
        self.ready().map(|_| ())
    }

    fn prepare(&mut self, op: PrepareOp, _immediate: bool) -> Result<()> {
        let result = match op {
            PrepareOp::Load => {
                if self.cartridge.is_some() {
                    self.ready()?;
                } else {
                    let dir = self.last_dir.clone().ok_or(TapeError::NoMediaInDrive)?;
                    let c = Cartridge::open(&dir)?;
                    let id = c.config().id;
                    // Someone may have put another cartridge in its place meanwhile.
                    self.media_changed = self.last_id.is_some_and(|old| old != id);
                    self.name = drive_name(&dir, Some(&c));
                    self.last_id = Some(id);
                    self.cartridge = Some(c);
                }
                self.partition = 0;
                self.pos = 0;
                Ok(())
            }
            PrepareOp::Unload => {
                self.ready()?;
                if self.locked {
                    return Err(TapeError::UnableToUnloadMedia);
                }
                if let Some(mut c) = self.cartridge.take() {
                    c.sync()?;
                }
                if let Some(dir) = &self.last_dir {
                    self.name = drive_name(dir, None);
                }
                self.partition = 0;
                self.pos = 0;
                Ok(())
            }
            PrepareOp::Lock => {
                self.ready()?;
                self.locked = true;
                Ok(())
            }
            PrepareOp::Unlock => {
                self.ready()?;
                self.locked = false;
                Ok(())
            }
            PrepareOp::Tension => {
                self.ready()?;
                self.partition = 0;
                self.pos = 0;
                Ok(())
            }
            PrepareOp::Format => {
                let c = self.writable()?;
                c.erase_all()?;
                self.partition = 0;
                self.pos = 0;
                Ok(())
            }
        };
        result?;
        self.save_state()
    }

    fn erase(&mut self, _kind: EraseKind, _immediate: bool) -> Result<()> {
        let part = self.partition;
        let pos = self.pos;
        let c = self.writable()?;
        let p = &mut c.partitions[part];
        // Short writes end of data here; long wipes to the end of the partition. On a
        // virtual cartridge both leave nothing after the position (see the module docs).
        p.truncate_at(pos, true)?;
        p.sync()
    }

    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<()> {
        let capacity = self.writable()?.config.capacity;
        let sizes = self.layout(capacity, method, count, size_mb)?;
        let c = self.writable()?;
        c.repartition(sizes)?;
        self.partition = 0;
        self.pos = 0;
        self.save_state()
    }

    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        let (features_low, features_high) = self.features();
        let capacity = self
            .cartridge
            .as_ref()
            .map(|c| c.config.partition_capacity(self.partition as u32 + 1))
            .unwrap_or(0);
        Ok(DriveParameters {
            ecc: self.settings.ecc,
            compression: self.settings.compression,
            data_padding: self.settings.data_padding,
            report_setmarks: self.settings.report_setmarks,
            default_block_size: DEFAULT_BLOCK_SIZE,
            maximum_block_size: MAX_BLOCK_SIZE,
            minimum_block_size: MIN_BLOCK_SIZE,
            maximum_partition_count: MAX_PARTITIONS,
            features_low,
            features_high,
            eot_warning_zone_size: self.eot_zone(capacity) as u32,
        })
    }

    fn media_parameters(&mut self) -> Result<MediaParameters> {
        let block_size = self.settings.block_size;
        let part = self.partition;
        let c = self.ready()?;
        let p_cap = c.config.partition_capacity(part as u32 + 1);
        Ok(MediaParameters {
            capacity: p_cap,
            remaining: p_cap.saturating_sub(c.partitions[part].used_bytes()),
            block_size,
            partition_count: c.partitions.len() as u32,
            write_protected: c.config.write_protected,
        })
    }

    fn set_drive_parameters(&mut self, params: &SetDriveParameters) -> Result<()> {
        let capacity = self
            .cartridge
            .as_ref()
            .map(|c| c.config.partition_capacity(self.partition as u32 + 1))
            .unwrap_or(u64::MAX);
        if u64::from(params.eot_warning_zone_size) >= capacity {
            return Err(TapeError::InvalidParameter(format!(
                "an early-warning zone of {} bytes does not fit the {capacity} bytes of the partition",
                params.eot_warning_zone_size
            )));
        }
        self.settings.ecc = params.ecc;
        self.settings.compression = params.compression;
        self.settings.data_padding = params.data_padding;
        self.settings.report_setmarks = params.report_setmarks;
        self.settings.eot_warning_zone = Some(params.eot_warning_zone_size);
        self.save_state()
    }

    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        self.ready()?;
        if block_size != 0 && !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(TapeError::InvalidParameter(format!(
                "block size {block_size} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE} (0 = variable)"
            )));
        }
        self.settings.block_size = block_size;
        self.save_state()
    }

    fn flush(&mut self) -> Result<()> {
        if let Some(c) = self.cartridge.as_mut() {
            c.sync()?;
        }
        self.save_state()
    }
}

impl Drop for VirtualDrive {
    fn drop(&mut self) {
        let _ = self.save_state();
    }
}

/// The marks of the current partition.
struct Marks {
    filemarks: Vec<u64>,
    setmarks: Vec<u64>,
    count: u64,
}

/// Where a spacing operation ends and how.
type Moved = (u64, Result<()>);

impl VirtualDrive {
    fn counts(&self) -> Vec<u64> {
        self.cartridge
            .as_ref()
            .map(|c| c.partitions.iter().map(|p| p.count()).collect())
            .unwrap_or_default()
    }

    fn current_count(&self) -> u64 {
        self.counts().get(self.partition).copied().unwrap_or(0)
    }

    fn marks(&self) -> Marks {
        match self.cartridge.as_ref() {
            Some(c) => {
                let p = &c.partitions[self.partition];
                Marks {
                    filemarks: p.filemarks().to_vec(),
                    setmarks: p.setmarks().to_vec(),
                    count: p.count(),
                }
            }
            None => Marks {
                filemarks: Vec::new(),
                setmarks: Vec::new(),
                count: 0,
            },
        }
    }

    fn apply(&mut self, (pos, r): Moved) -> Result<()> {
        self.pos = pos;
        r
    }

    fn seek_within(&mut self, block: u64) -> Result<()> {
        let count = self.current_count();
        if block > count {
            self.pos = count;
            return Err(TapeError::NoDataDetected);
        }
        self.pos = block;
        Ok(())
    }
}

/// Spaces over `n` marks of one kind (`marks`, ascending object numbers); `stops` are
/// marks that end the motion early (setmarks, when reported, for filemark spacing).
fn space_marks(marks: &[u64], stops: &[u64], count: u64, pos: u64, n: i64) -> Moved {
    if n > 0 {
        let first = marks.partition_point(|&m| m < pos);
        let target = first.saturating_add(n as usize - 1);
        let limit = marks.get(target).copied().unwrap_or(count);
        let stop = stops[stops.partition_point(|&s| s < pos)..]
            .first()
            .copied();
        match (stop, marks.get(target)) {
            (Some(s), _) if s < limit => (s + 1, Err(TapeError::SetmarkDetected)),
            (_, Some(&m)) => (m + 1, Ok(())),
            _ => (count, Err(TapeError::NoDataDetected)),
        }
    } else if n < 0 {
        let before = marks.partition_point(|&m| m < pos);
        let back = n.unsigned_abs() as usize;
        let target = before.checked_sub(back).map(|i| marks[i]);
        let stop = stops[..stops.partition_point(|&s| s < pos)].last().copied();
        match (stop, target) {
            (Some(s), t) if t.is_none_or(|t| s > t) => (s, Err(TapeError::SetmarkDetected)),
            (_, Some(t)) => (t, Ok(())),
            _ => (0, Err(TapeError::BeginningOfMedia)),
        }
    } else {
        (pos, Ok(()))
    }
}

/// Spaces to the first run of `|n|` consecutive marks in the direction of travel, ending
/// just past the run's last mark in that direction.
fn space_sequential(marks: &[u64], stops: &[u64], count: u64, pos: u64, n: i64) -> Moved {
    let want = n.unsigned_abs() as usize;
    if n > 0 {
        let start = marks.partition_point(|&m| m < pos);
        let mut run = 0usize;
        let mut found = None;
        for i in start..marks.len() {
            run = if run > 0 && marks[i] == marks[i - 1] + 1 {
                run + 1
            } else {
                1
            };
            if run == want {
                found = Some(marks[i] + 1);
                break;
            }
        }
        let limit = found.unwrap_or(count);
        let stop = stops[stops.partition_point(|&s| s < pos)..]
            .first()
            .copied();
        match (stop, found) {
            (Some(s), _) if s < limit => (s + 1, Err(TapeError::SetmarkDetected)),
            (_, Some(t)) => (t, Ok(())),
            _ => (count, Err(TapeError::NoDataDetected)),
        }
    } else if n < 0 {
        let end = marks.partition_point(|&m| m < pos);
        let mut run = 0usize;
        let mut found = None;
        for i in (0..end).rev() {
            run = if run > 0 && marks[i] + 1 == marks[i + 1] {
                run + 1
            } else {
                1
            };
            if run == want {
                found = Some(marks[i]);
                break;
            }
        }
        let stop = stops[..stops.partition_point(|&s| s < pos)].last().copied();
        match (stop, found) {
            (Some(s), t) if t.is_none_or(|t| s > t) => (s, Err(TapeError::SetmarkDetected)),
            (_, Some(t)) => (t, Ok(())),
            _ => (0, Err(TapeError::BeginningOfMedia)),
        }
    } else {
        (pos, Ok(()))
    }
}

/// Spaces over `n` blocks (records). Filemarks stop the motion; setmarks stop it when
/// reported and are invisible (not counted) otherwise.
fn space_blocks(m: &Marks, rs: bool, pos: u64, n: i64) -> Moved {
    let fm = &m.filemarks;
    let sm = &m.setmarks;
    if n > 0 {
        let want = n as u64;
        let next_fm = fm[fm.partition_point(|&x| x < pos)..].first().copied();
        let next_sm = sm[sm.partition_point(|&x| x < pos)..].first().copied();
        let (stop, err) = match (next_fm, next_sm.filter(|_| rs)) {
            (Some(f), Some(s)) if s < f => (s, TapeError::SetmarkDetected),
            (Some(f), _) => (f, TapeError::FilemarkDetected),
            (None, Some(s)) => (s, TapeError::SetmarkDetected),
            (None, None) => (m.count, TapeError::NoDataDetected),
        };
        // Objects between pos and the stop are records and (when not reported) setmarks.
        let invisible: &[u64] = if rs {
            &[]
        } else {
            &sm[sm.partition_point(|&x| x < pos)..sm.partition_point(|&x| x < stop)]
        };
        let records = stop - pos - invisible.len() as u64;
        if records >= want {
            let mut x = pos + want;
            for &s in invisible {
                if s < x {
                    x += 1;
                } else {
                    break;
                }
            }
            (x, Ok(()))
        } else if stop == m.count {
            (m.count, Err(err))
        } else {
            (stop + 1, Err(err))
        }
    } else if n < 0 {
        let want = n.unsigned_abs();
        let prev_fm = fm[..fm.partition_point(|&x| x < pos)].last().copied();
        let prev_sm = sm[..sm.partition_point(|&x| x < pos)].last().copied();
        let stop = match (prev_fm, prev_sm.filter(|_| rs)) {
            (Some(f), Some(s)) if s > f => Some((s, TapeError::SetmarkDetected)),
            (Some(f), _) => Some((f, TapeError::FilemarkDetected)),
            (None, Some(s)) => Some((s, TapeError::SetmarkDetected)),
            (None, None) => None,
        };
        let low = stop.as_ref().map_or(0, |(s, _)| s + 1);
        let invisible: &[u64] = if rs {
            &[]
        } else {
            &sm[sm.partition_point(|&x| x < low)..sm.partition_point(|&x| x < pos)]
        };
        let records = pos - low - invisible.len() as u64;
        if records >= want {
            let mut x = pos - want;
            for &s in invisible.iter().rev() {
                if s >= x {
                    x -= 1;
                } else {
                    break;
                }
            }
            (x, Ok(()))
        } else {
            match stop {
                Some((s, e)) => (s, Err(e)),
                None => (0, Err(TapeError::BeginningOfMedia)),
            }
        }
    } else {
        (pos, Ok(()))
    }
}
