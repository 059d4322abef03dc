//! The virtual drive: a [`TapeDrive`] over a [`Cartridge`].

use std::path::{Path, PathBuf};

use crate::drive::*;
use crate::error::{Result, TapeError};
use crate::features::*;
use crate::simh;
use crate::vtape::cartridge::Cartridge;
use crate::vtape::partition::Object;

/// Largest record the virtual drive accepts (the 24-bit SIMH limit, so classic readers
/// read every record).
pub const MAX_BLOCK_SIZE: u32 = 0x00FF_FFFF;
pub const MIN_BLOCK_SIZE: u32 = 1;
pub const DEFAULT_BLOCK_SIZE: u32 = 256 * 1024;
pub const MAX_PARTITIONS: u32 = 4;

/// The settings of the drive (SetTapeParameters): they stay with the drive when
/// cartridges change.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// Default early-warning zone: 1% of the capacity, at least 4 MiB, at most 1 GiB, never
/// more than a quarter of the medium.
pub fn default_eot_zone(capacity: u64) -> u32 {
    let zone = (capacity / 100).clamp(4 << 20, 1 << 30).min(capacity / 4);
    zone as u32
}

/// A drive with a virtual cartridge in it.
pub struct VirtualDrive {
    cartridge: Option<Cartridge>,
    /// Directory of the cartridge last in the drive, for PrepareTape(Load) after Unload.
    last_dir: Option<PathBuf>,
    name: String,
    settings: DriveSettings,
    /// Current partition (index into the cartridge's partitions) and object position.
    partition: usize,
    pos: u64,
    media_changed: bool,
    locked: bool,
    scratch: Vec<u8>,
}

impl VirtualDrive {
    /// A drive with the cartridge in `dir` loaded, positioned at the beginning.
    pub fn open(dir: &Path) -> Result<VirtualDrive> {
        let cartridge = Cartridge::open(dir)?;
        Ok(VirtualDrive {
            name: format!("vtape:{}", cartridge.config().barcode),
            cartridge: Some(cartridge),
            last_dir: Some(dir.to_path_buf()),
            settings: DriveSettings::default(),
            partition: 0,
            pos: 0,
            media_changed: false,
            locked: false,
            scratch: Vec::new(),
        })
    }

    /// Puts another cartridge in the drive (a changer's load). The next operation reports
    /// MEDIA_CHANGED once, as a real drive does.
    pub fn load_cartridge(&mut self, dir: &Path) -> Result<()> {
        if self.locked && self.cartridge.is_some() {
            return Err(TapeError::UnableToUnloadMedia);
        }
        self.cartridge = None;
        let cartridge = Cartridge::open(dir)?;
        self.name = format!("vtape:{}", cartridge.config().barcode);
        self.cartridge = Some(cartridge);
        self.last_dir = Some(dir.to_path_buf());
        self.partition = 0;
        self.pos = 0;
        self.media_changed = true;
        Ok(())
    }

    /// The loaded cartridge, if any.
    pub fn cartridge(&self) -> Option<&Cartridge> {
        self.cartridge.as_ref()
    }

    pub fn settings(&self) -> &DriveSettings {
        &self.settings
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
                "{} ({})",
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

    /// Writes one record at the current position (truncating what follows).
    fn write_record(&mut self, data: &[u8]) -> Result<()> {
        let compression = self.settings.compression;
        let part = self.partition;
        let pos = self.pos;
        // Compress first so the capacity check uses the stored size.
        let compressed = if compression {
            zstd::bulk::compress(data, 1)
                .ok()
                .filter(|c| c.len() < data.len())
        } else {
            None
        };
        let (class, payload) = match &compressed {
            Some(c) => (simh::CLASS_COMPRESSED, c.as_slice()),
            None => (simh::CLASS_GOOD, data),
        };
        let c = self.writable()?;
        let number = part as u32 + 1;
        let capacity = c.config.partition_capacity(number);
        let p = &mut c.partitions[part];
        p.truncate_at(pos, false)?;
        let stored = simh::record_size(payload.len() as u32);
        if p.used_bytes() + stored > capacity {
            return Err(TapeError::EndOfMedia);
        }
        p.append_record(class, payload)?;
        let used = p.used_bytes();
        self.pos += 1;
        if used > capacity.saturating_sub(self.eot_zone(capacity)) {
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
            n => Err(TapeError::PartitionFailure(format!(
                "partition {n} does not exist (the cartridge has {count})"
            ))),
        }
    }

    /// Spaces over `n` marks of one kind (`marks` = their object numbers, ascending).
    fn space_marks(&mut self, marks: &[u64], count: u64, n: i64) -> Result<()> {
        if n > 0 {
            let first = marks.partition_point(|&m| m < self.pos);
            let target = first + (n as usize) - 1;
            match marks.get(target) {
                Some(&m) => self.pos = m + 1,
                None => {
                    self.pos = count;
                    return Err(TapeError::NoDataDetected);
                }
            }
        } else if n < 0 {
            let before = marks.partition_point(|&m| m < self.pos);
            let back = n.unsigned_abs() as usize;
            if before >= back {
                self.pos = marks[before - back];
            } else {
                self.pos = 0;
                return Err(TapeError::BeginningOfMedia);
            }
        }
        Ok(())
    }

    /// Moves to just after the first run of `n` consecutive marks at or after the position.
    fn space_sequential(&mut self, marks: &[u64], count: u64, n: i64) -> Result<()> {
        if n <= 0 {
            return Err(TapeError::InvalidParameter(
                "sequential mark count must be positive".into(),
            ));
        }
        let n = n as usize;
        let start = marks.partition_point(|&m| m < self.pos);
        let mut run = 0usize;
        for i in start..marks.len() {
            run = if run > 0 && marks[i] == marks[i - 1] + 1 {
                run + 1
            } else {
                1
            };
            if run == n {
                self.pos = marks[i] + 1;
                return Ok(());
            }
        }
        self.pos = count;
        Err(TapeError::NoDataDetected)
    }

    fn read_one_record(&mut self, buf: &mut [u8]) -> Result<usize> {
        let part = self.partition;
        let report_setmarks = self.settings.report_setmarks;
        loop {
            let pos = self.pos;
            self.ready()?;
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
                        p.read_payload(pos, buf)
                    } else {
                        self.scratch.resize(len, 0);
                        let r = p.read_payload(pos, &mut self.scratch);
                        r.and_then(|n| match class {
                            simh::CLASS_GOOD => Ok(n),
                            simh::CLASS_COMPRESSED => {
                                let plain = zstd::stream::decode_all(&self.scratch[..n]).map_err(|e| {
                                    TapeError::Crc(format!(
                                        "compressed record {pos} of partition {} does not decompress: {e}",
                                        part + 1
                                    ))
                                })?;
                                let n = plain.len();
                                self.scratch = plain;
                                Ok(n)
                            }
                            other => Err(TapeError::Crc(format!(
                                "record {pos} of partition {} is of class {other:#x} (a bad or foreign record)",
                                part + 1
                            ))),
                        })
                        .map(|n| {
                            let copied = n.min(buf.len());
                            buf[..copied].copy_from_slice(&self.scratch[..copied]);
                            n
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
        let low = TAPE_DRIVE_ERASE_SHORT
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
            TAPE_DRIVE_LOCK_UNLOCK,
            TAPE_DRIVE_TENSION,
            TAPE_DRIVE_SET_BLOCK_SIZE,
            TAPE_DRIVE_SET_ECC,
            TAPE_DRIVE_SET_COMPRESSION,
            TAPE_DRIVE_SET_PADDING,
            TAPE_DRIVE_SET_REPORT_SMKS,
            TAPE_DRIVE_ABSOLUTE_BLK,
            TAPE_DRIVE_LOGICAL_BLK,
            TAPE_DRIVE_END_OF_DATA,
            TAPE_DRIVE_RELATIVE_BLKS,
            TAPE_DRIVE_FILEMARKS,
            TAPE_DRIVE_SEQUENTIAL_FMKS,
            TAPE_DRIVE_SETMARKS,
            TAPE_DRIVE_SEQUENTIAL_SMKS,
            TAPE_DRIVE_REVERSE_POSITION,
            TAPE_DRIVE_WRITE_SETMARKS,
            TAPE_DRIVE_WRITE_FILEMARKS,
            TAPE_DRIVE_WRITE_SHORT_FMKS,
            TAPE_DRIVE_WRITE_LONG_FMKS,
        ]);
        (low, high)
    }
}

impl TapeDrive for VirtualDrive {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let bs = self.settings.block_size as usize;
        if bs == 0 {
            return self.read_one_record(buf);
        }
        if buf.is_empty() || buf.len() % bs != 0 {
            self.ready()?;
            return Err(TapeError::InvalidBlockLength(format!(
                "{} bytes is not a multiple of the block size {bs}",
                buf.len()
            )));
        }
        let mut done = 0;
        while done < buf.len() {
            match self.read_one_record(&mut buf[done..done + bs]) {
                Ok(n) => done += n,
                // A mark after some blocks: return those; the next read reports the mark.
                Err(e) if e.is_mark_or_end() && done > 0 => {
                    if !matches!(e, TapeError::NoDataDetected) {
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
            return self.write_record(buf);
        }
        if buf.is_empty() || buf.len() % bs != 0 {
            return Err(TapeError::InvalidBlockLength(format!(
                "{} bytes is not a multiple of the block size {bs}",
                buf.len()
            )));
        }
        let mut warned = false;
        for block in buf.chunks(bs) {
            match self.write_record(block) {
                Ok(()) => {}
                Err(TapeError::EarlyWarning) => warned = true,
                Err(e) => return Err(e),
            }
        }
        if warned {
            Err(TapeError::EarlyWarning)
        } else {
            Ok(())
        }
    }

    fn write_marks(&mut self, kind: MarkKind, count: u32, _immediate: bool) -> Result<()> {
        let part = self.partition;
        let mut pos = self.pos;
        let c = self.writable()?;
        let capacity = c.config.partition_capacity(part as u32 + 1);
        let p = &mut c.partitions[part];
        p.truncate_at(pos, false)?;
        let setmark = matches!(kind, MarkKind::Setmarks);
        let mut result = Ok(());
        for _ in 0..count {
            if p.used_bytes() + 4 > capacity {
                result = Err(TapeError::EndOfMedia);
                break;
            }
            p.append_mark(setmark)?;
            pos += 1;
        }
        p.sync()?;
        self.pos = pos;
        result
    }

    fn set_position(&mut self, to: SeekTo, _immediate: bool) -> Result<()> {
        self.ready()?;
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
                let (marks, count) = self.marks(false);
                self.space_marks(&marks, count, n)
            }
            SeekTo::SpaceSetmarks(n) => {
                let (marks, count) = self.marks(true);
                self.space_marks(&marks, count, n)
            }
            SeekTo::SpaceSequentialFilemarks(n) => {
                let (marks, count) = self.marks(false);
                self.space_sequential(&marks, count, n)
            }
            SeekTo::SpaceSequentialSetmarks(n) => {
                let (marks, count) = self.marks(true);
                self.space_sequential(&marks, count, n)
            }
            SeekTo::SpaceRelativeBlocks(n) => self.space_blocks(n),
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
        match op {
            PrepareOp::Load => {
                if self.cartridge.is_some() {
                    self.ready()?;
                    self.pos = 0;
                    return Ok(());
                }
                let dir = self.last_dir.clone().ok_or(TapeError::NoMediaInDrive)?;
                let c = Cartridge::open(&dir)?;
                self.cartridge = Some(c);
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
                self.pos = 0;
                Ok(())
            }
            PrepareOp::Format => Err(TapeError::NotSupported(
                "formatting a virtual cartridge (use `reel tape erase --long` at the beginning)"
                    .into(),
            )),
        }
    }

    fn erase(&mut self, kind: EraseKind, _immediate: bool) -> Result<()> {
        let part = self.partition;
        let pos = self.pos;
        let c = self.writable()?;
        let p = &mut c.partitions[part];
        // Short writes end of data here; long wipes to the end of the partition. On a
        // virtual cartridge both leave nothing after the position.
        let _ = kind;
        p.truncate_at(pos, true)?;
        p.sync()
    }

    fn create_partitions(
        &mut self,
        _method: PartitionMethod,
        _count: u32,
        _size_mb: u32,
    ) -> Result<()> {
        self.writable()?;
        Err(TapeError::NotSupported(
            "partitioning virtual cartridges is not implemented yet".into(),
        ))
    }

    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        let (features_low, features_high) = self.features();
        let capacity = self
            .cartridge
            .as_ref()
            .map(|c| c.config.capacity)
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
        let capacity = c.config.capacity;
        let p_cap = c.config.partition_capacity(part as u32 + 1);
        Ok(MediaParameters {
            capacity,
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
            .map(|c| c.config.capacity)
            .unwrap_or(u64::MAX);
        if u64::from(params.eot_warning_zone_size) >= capacity {
            return Err(TapeError::InvalidParameter(format!(
                "early-warning zone of {} bytes does not fit a cartridge of {capacity} bytes",
                params.eot_warning_zone_size
            )));
        }
        self.settings.ecc = params.ecc;
        self.settings.compression = params.compression;
        self.settings.data_padding = params.data_padding;
        self.settings.report_setmarks = params.report_setmarks;
        self.settings.eot_warning_zone = Some(params.eot_warning_zone_size);
        Ok(())
    }

    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        self.ready()?;
        if block_size != 0 && !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&block_size) {
            return Err(TapeError::InvalidParameter(format!(
                "block size {block_size} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE} (0 = variable)"
            )));
        }
        self.settings.block_size = block_size;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        match self.cartridge.as_mut() {
            Some(c) => c.sync(),
            None => Ok(()),
        }
    }
}

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

    fn marks(&self, setmarks: bool) -> (Vec<u64>, u64) {
        match self.cartridge.as_ref() {
            Some(c) => {
                let p = &c.partitions[self.partition];
                let marks = if setmarks {
                    p.setmarks()
                } else {
                    p.filemarks()
                };
                (marks.to_vec(), p.count())
            }
            None => (Vec::new(), 0),
        }
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

    /// Spaces over `n` objects, stopping at a filemark as a drive does.
    fn space_blocks(&mut self, n: i64) -> Result<()> {
        let part = self.partition;
        let count = self.current_count();
        let filemarks = self.marks(false).0;
        if n > 0 {
            let target = self.pos.saturating_add(n as u64);
            let next_mark = filemarks
                .iter()
                .copied()
                .find(|&m| m >= self.pos && m < target);
            if let Some(m) = next_mark {
                self.pos = m + 1;
                return Err(TapeError::FilemarkDetected);
            }
            if target > count {
                self.pos = count;
                return Err(TapeError::NoDataDetected);
            }
            self.pos = target;
        } else if n < 0 {
            let back = n.unsigned_abs();
            let target = self.pos.saturating_sub(back);
            let prev_mark = filemarks
                .iter()
                .rev()
                .copied()
                .find(|&m| m < self.pos && m >= target);
            if let Some(m) = prev_mark {
                self.pos = m;
                return Err(TapeError::FilemarkDetected);
            }
            if back > self.pos {
                self.pos = 0;
                return Err(TapeError::BeginningOfMedia);
            }
            self.pos = target;
        }
        let _ = part;
        Ok(())
    }
}
