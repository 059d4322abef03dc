//! [`ScsiTape`]: the Win32 tape semantics over SSC commands.
//!
//! # The mapping
//!
//! | trait operation | SSC |
//! |---|---|
//! | `read` | READ(6) variable or fixed; FILEMARK → FILEMARK_DETECTED; BLANK CHECK → NO_DATA_DETECTED; ILI with a negative residue (a longer record) → MORE_DATA with the first part (read again whole after SPACE −1 when the drive delivered none, as tgt does) |
//! | `write` | WRITE(6); EOM with NO SENSE → END_OF_MEDIA as an early warning (written); VOLUME OVERFLOW → END_OF_MEDIA (not written) |
//! | `write_marks` | WRITE FILEMARKS(6); setmarks (obsolete in SSC-3), short and long filemarks: NOT_SUPPORTED |
//! | `set_position` | REWIND, LOCATE(10/16), SPACE(6) blocks/filemarks/end of data; without LOCATE: SPACE from the known position (LOCATE → SPACE, as old drives need) |
//! | `position` | READ POSITION short form; when the drive cannot tell (tgt answers "block position unknown"), reel counts objects itself: it spaces by reading (every record and mark passes under the head once) and never loses count |
//! | `status` | TEST UNIT READY |
//! | `prepare` | LOAD UNLOAD (and, when a target ignores it, the START STOP UNIT form tgt reads it as), PREVENT ALLOW MEDIUM REMOVAL; tension and format: NOT_SUPPORTED |
//! | `erase` | ERASE(6), LONG for a long erase |
//! | `set_media_parameters` | MODE SELECT(6) with a block descriptor |
//! | `set_drive_parameters` | MODE SELECT(6) of the data compression page (when its DCC bit says the drive compresses) |
//! | `media_parameters` | MODE SENSE(6) (block length, WP) and READ ATTRIBUTE (capacity and remaining, MAM attributes 0001h/0000h) |
//! | `flush` | WRITE FILEMARKS(0) after writing |
//!
//! Which commands exist comes from REPORT SUPPORTED OPERATION CODES where the drive has it,
//! and is learned from INVALID COMMAND OPERATION CODE otherwise; a command the drive lacks
//! with no fallback is NOT_SUPPORTED naming the command, and the `TAPE_DRIVE_*` bits say so.
//! Partitions are not created (NOT_SUPPORTED).

use std::collections::HashSet;

use reel_scsi::cdb;
use reel_scsi::device::timeout;
use reel_scsi::sense::SenseKey;
use reel_scsi::ssc::{CompressionPage, PAGE_DATA_COMPRESSION};
use reel_scsi::{Data, Device, Inquiry, ScsiError, Sense};

use super::classify::{Doing, classify};
use crate::error::{Result, TapeError};

/// Operation codes the backend cares about.
pub(crate) mod op {
    pub const ERASE: u8 = 0x19;
    pub const LOAD_UNLOAD: u8 = 0x1b;
    pub const PREVENT_ALLOW: u8 = 0x1e;
    pub const LOCATE10: u8 = 0x2b;
    pub const MODE_SELECT6: u8 = 0x15;
    pub const SPACE6: u8 = 0x11;
    pub const LOG_SENSE: u8 = 0x4d;
    pub const READ_ATTRIBUTE: u8 = 0x8c;
    pub const READ_POSITION: u8 = 0x34;
}

/// Largest record or transfer of READ(6)/WRITE(6).
pub const MAX_RECORD: usize = 0x00ff_ffff;

/// A SCSI tape drive with the Win32 tape semantics.
pub struct ScsiTape {
    pub(crate) dev: Device,
    pub(crate) name: String,
    pub(crate) inquiry: Inquiry,
    /// What REPORT SUPPORTED OPERATION CODES listed (`None`: the drive cannot say).
    pub(super) supported: Option<HashSet<u8>>,
    /// Commands the drive answered with INVALID COMMAND OPERATION CODE.
    pub(super) refused: HashSet<u8>,
    /// reel counts positions: the drive cannot report them.
    pub(super) counted: bool,
    /// The logical object number, when known.
    pub(super) pos: Option<u64>,
    /// Current partition, 1-based.
    pub(super) partition: u32,
    pub(super) block_size: u32,
    pub(super) density: u8,
    pub(super) compression: Option<CompressionPage>,
    pub(super) locked: bool,
    pub(super) wrote_last: bool,
    /// A fixed-block read stopped at a filemark after delivering data: the next read
    /// reports it.
    pub(super) pending_filemark: bool,
    /// SPACE was refused with DATA PROTECT (tgt on a read-only medium): move by reading.
    pub(super) space_refused: bool,
    /// Where reads land: the caller's buffer gets bytes only from a read that returns
    /// data (a target may fill the buffer of a read that meets a filemark).
    pub(super) scratch: Vec<u8>,
}

impl ScsiTape {
    /// Opens the drive behind `dev`: checks it is a tape drive, learns its commands and
    /// block size, and whether it reports positions. The tape is not moved.
    pub fn open(mut dev: Device) -> Result<ScsiTape> {
        let name = dev.name().to_string();
        let inquiry = dev
            .inquiry()
            .map_err(|e| classify(&name, Doing::Inquire, e))?;
        if inquiry.device_type != reel_scsi::inquiry::TYPE_SEQUENTIAL {
            return Err(TapeError::NotSupported(format!(
                "{name} is a {} ({}), not a tape drive",
                inquiry.device_type_name(),
                inquiry.identity()
            )));
        }
        let supported = dev
            .supported_commands()
            .ok()
            .map(|v| v.iter().map(|c| c.opcode).collect());
        let mut t = ScsiTape {
            dev,
            name,
            inquiry,
            supported,
            refused: HashSet::new(),
            counted: false,
            pos: None,
            partition: 1,
            block_size: 0,
            density: 0,
            compression: None,
            locked: false,
            wrote_last: false,
            pending_filemark: false,
            space_refused: false,
            scratch: Vec::new(),
        };
        // Unit attentions pending from before this session (power on, a cartridge loaded
        // earlier) are not news to this user.
        for _ in 0..4 {
            match t.dev.test_unit_ready() {
                Err(e) if e.sense().is_some_and(|s| s.key == SenseKey::UnitAttention) => continue,
                _ => break,
            }
        }
        t.learn_medium();
        Ok(t)
    }

    /// Reads what the loaded medium's state tells: block size, density, compression,
    /// and whether positions come from the drive. Without a medium, nothing is learned.
    fn learn_medium(&mut self) {
        if let Ok(m) = self.dev.mode_sense(0, 0, false)
            && let Some(d) = m.block_descriptors.first()
        {
            self.block_size = d.block_length;
            self.density = d.density;
        }
        self.compression = self
            .dev
            .mode_sense(PAGE_DATA_COMPRESSION, 0, true)
            .ok()
            .and_then(|m| m.page(PAGE_DATA_COMPRESSION, 0).cloned())
            .and_then(|p| CompressionPage::parse(&p).ok());
        match self.dev.read_position_short() {
            Ok(p) if !p.position_unknown => {
                self.counted = false;
                self.pos = Some(u64::from(p.first_block));
                self.partition = u32::from(p.partition) + 1;
            }
            Ok(_) => {
                self.counted = true;
                self.pos = None;
            }
            Err(e) if e.is_unsupported() => {
                self.refused.insert(op::READ_POSITION);
                self.counted = true;
                self.pos = None;
            }
            Err(_) => self.pos = None,
        }
    }

    /// Whether the drive implements `opcode` (as far as reel knows).
    pub(crate) fn supports(&self, opcode: u8) -> bool {
        !self.refused.contains(&opcode)
            && self.supported.as_ref().is_none_or(|s| s.contains(&opcode))
    }

    /// True when reel counts positions itself (the drive reports none).
    pub fn counts_positions(&self) -> bool {
        self.counted
    }

    /// The drive's INQUIRY identity, e.g. `IET VIRTUAL-TAPE 0001`.
    pub fn identity(&self) -> String {
        self.inquiry.identity()
    }

    /// Runs a command, remembering a command the drive does not know.
    pub(crate) fn exec(
        &mut self,
        c: &reel_scsi::Cdb,
        data: Data<'_>,
        t: std::time::Duration,
    ) -> Result<usize, ScsiError> {
        let r = self.dev.run(c, data, t);
        if let Err(e) = &r
            && e.sense()
                .is_some_and(|s| s.code() == reel_scsi::sense::asc::INVALID_COMMAND_OPERATION_CODE)
        {
            self.refused.insert(c.opcode());
        }
        if let Err(e) = &r
            && let Some(s) = e.sense()
        {
            self.after_attention(s);
        }
        if let Err(ScsiError::Transport { .. }) = &r {
            self.pos = None;
        }
        r
    }

    /// A unit attention changes what reel knows: a new medium is at its beginning, a
    /// reset leaves the position unknown.
    fn after_attention(&mut self, s: &Sense) {
        if s.key != SenseKey::UnitAttention {
            return;
        }
        self.pending_filemark = false;
        self.locked = false;
        if s.asc == 0x28 {
            self.pos = Some(0);
            self.partition = 1;
            self.learn_medium();
        } else {
            self.pos = None;
        }
    }

    pub(crate) fn fail(&self, doing: Doing, e: ScsiError) -> TapeError {
        classify(&self.name, doing, e)
    }

    /// A command the drive lacks that would change the medium: a write-protected or
    /// missing medium says so first (as every backend must), else NOT_SUPPORTED.
    pub(crate) fn unsupported_change(&mut self, what: &str) -> TapeError {
        if let Err(e) = self.dev.test_unit_ready()
            && e.sense()
                .is_some_and(|s| s.code() == reel_scsi::sense::asc::MEDIUM_NOT_PRESENT)
        {
            return TapeError::NoMediaInDrive;
        }
        match self.dev.mode_sense(0, 0, true) {
            Ok(m) if m.write_protected() => {
                TapeError::WriteProtect(format!("{}: the cartridge is write-protected", self.name))
            }
            _ => TapeError::NotSupported(format!("{what} on {} ({})", self.name, self.identity())),
        }
    }

    /// NOT_SUPPORTED naming the command the drive lacks.
    pub(crate) fn lacks(&self, what: &str, command: &str) -> TapeError {
        TapeError::NotSupported(format!(
            "{what}: the drive {} ({}) does not implement {command}",
            self.name,
            self.identity()
        ))
    }

    /// The transfer length of a read or write of `len` bytes: whole blocks in fixed mode;
    /// in variable mode one record, of at most [`MAX_RECORD`] bytes (a larger read buffer
    /// takes any record).
    fn transfer(&self, len: usize, what: &str) -> Result<usize> {
        let bs = self.block_size as usize;
        let bad = || {
            TapeError::InvalidBlockLength(format!(
                "a {what} of {len} bytes with block size {}",
                self.block_size
            ))
        };
        if len == 0 {
            return Err(bad());
        }
        match bs {
            0 if what == "read" => Ok(len.min(MAX_RECORD)),
            0 if len > MAX_RECORD => Err(TapeError::InvalidBlockLength(format!(
                "a write of {len} bytes: SCSI tape records are at most {MAX_RECORD} bytes"
            ))),
            0 => Ok(len),
            bs if !len.is_multiple_of(bs) || len / bs > MAX_RECORD => Err(bad()),
            bs => Ok(len / bs),
        }
    }

    /// One READ of `buf` (variable: one record; fixed: whole blocks). Updates the position.
    pub(crate) fn read_impl(&mut self, buf: &mut [u8]) -> Result<usize> {
        let len = self.transfer(buf.len(), "read")?;
        if std::mem::take(&mut self.pending_filemark) {
            return Err(TapeError::FilemarkDetected);
        }
        self.wrote_last = false;
        let bs = self.block_size as usize;
        let fixed = bs != 0;
        let c = cdb::read6(fixed, false, len as u32)
            .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.resize(if fixed { buf.len() } else { len }, 0);
        let r = self.exec(&c, Data::In(&mut scratch), timeout::SHORT);
        let out = match r {
            Ok(n) => {
                self.advance(if fixed { (n / bs) as u64 } else { 1 });
                Ok(n)
            }
            Err(ScsiError::Check {
                sense, transferred, ..
            }) => self.read_condition(&mut scratch, &sense, transferred),
            Err(e) => Err(self.fail(Doing::Read, e)),
        };
        let delivered = match &out {
            Ok(n) => *n,
            Err(TapeError::MoreData { copied, .. }) => *copied,
            Err(_) => 0,
        };
        buf[..delivered].copy_from_slice(&scratch[..delivered]);
        self.scratch = scratch;
        out
    }

    /// A READ that ended with CHECK CONDITION.
    fn read_condition(&mut self, buf: &mut [u8], s: &Sense, transferred: usize) -> Result<usize> {
        let bs = self.block_size as usize;
        let asked = buf.len();
        if s.filemark && s.code() != reel_scsi::sense::asc::SETMARK_DETECTED {
            if let Some(in_buf) = asked.checked_div(bs) {
                // Fixed blocks read before the mark: deliver them; the mark comes next.
                let left = s.residue().unwrap_or(0).max(0) as usize;
                let blocks = in_buf.saturating_sub(left);
                self.advance(blocks as u64 + 1);
                if blocks > 0 {
                    self.pending_filemark = true;
                    return Ok(blocks * bs);
                }
            } else {
                self.advance(1);
            }
            return Err(TapeError::FilemarkDetected);
        }
        if s.ili && bs == 0 && matches!(s.key, SenseKey::NoSense | SenseKey::RecoveredError) {
            let residue = s.residue().unwrap_or(0);
            let record_len = (asked as i64 - residue).max(0) as usize;
            self.advance(1);
            if residue >= 0 {
                return Ok(record_len);
            }
            if transferred < asked {
                // The drive delivered nothing of the longer record (tgt): read it again
                // whole and hand out its first part, as SSC has the drive do.
                self.reread_longer(buf, record_len)?;
            }
            return Err(TapeError::MoreData {
                record_len,
                copied: asked,
            });
        }
        Err(self.fail(
            Doing::Read,
            ScsiError::Check {
                device: self.name.clone(),
                command: "READ(6)",
                sense: s.clone(),
                transferred,
            },
        ))
    }

    fn reread_longer(&mut self, buf: &mut [u8], record_len: usize) -> Result<()> {
        self.space_blocks_raw(-1)?;
        let mut whole = vec![0u8; record_len.min(MAX_RECORD)];
        let c = cdb::read6(false, true, whole.len() as u32)
            .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        match self.exec(&c, Data::In(&mut whole), timeout::SHORT) {
            Ok(_) => {}
            Err(ScsiError::Check { sense, .. }) if sense.ili && !sense.filemark => {}
            Err(e) => return Err(self.fail(Doing::Read, e)),
        }
        self.advance(1);
        let n = buf.len().min(whole.len());
        buf[..n].copy_from_slice(&whole[..n]);
        Ok(())
    }

    pub(crate) fn pos(&self) -> Option<u64> {
        self.pos
    }

    pub(crate) fn set_pos(&mut self, pos: Option<u64>) {
        self.pos = pos;
    }

    pub(crate) fn set_partition(&mut self, partition: u32) {
        self.partition = partition;
    }

    pub(crate) fn partition(&self) -> u32 {
        self.partition
    }

    pub(crate) fn block_size(&self) -> u32 {
        self.block_size
    }

    pub(crate) fn space_refused(&self) -> bool {
        self.space_refused
    }

    pub(crate) fn refuse_space(&mut self) {
        self.space_refused = true;
    }

    pub(crate) fn pending_filemark_clear(&mut self) {
        self.pending_filemark = false;
    }

    pub(crate) fn set_block_size(&mut self, bs: u32) {
        self.block_size = bs;
    }

    pub(crate) fn density(&self) -> u8 {
        self.density
    }

    pub(crate) fn compression_page(&self) -> Option<CompressionPage> {
        self.compression
    }

    pub(crate) fn set_compression_page(&mut self, page: Option<CompressionPage>) {
        self.compression = page;
    }

    /// The data compression page says the drive compresses (DCC).
    pub(crate) fn compression_capable(&self) -> bool {
        self.compression.is_some_and(|c| c.capable)
    }

    pub(crate) fn compression_enabled(&self) -> bool {
        self.compression.is_some_and(|c| c.enabled)
    }

    pub(crate) fn advance(&mut self, n: u64) {
        if let Some(p) = self.pos.as_mut() {
            *p += n;
        }
    }

    pub(crate) fn retreat(&mut self, n: u64) {
        if let Some(p) = self.pos.as_mut() {
            *p = p.saturating_sub(n);
        }
    }

    /// One WRITE of `buf`. Updates the position.
    pub(crate) fn write_impl(&mut self, buf: &[u8]) -> Result<()> {
        let len = self.transfer(buf.len(), "write")?;
        self.pending_filemark = false;
        let fixed = self.block_size != 0;
        let objects = if fixed { len as u64 } else { 1 };
        let c = cdb::write6(fixed, len as u32)
            .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        let r = self.exec(&c, Data::Out(buf), timeout::SHORT);
        let out = match r {
            Ok(_) => {
                self.advance(objects);
                Ok(())
            }
            Err(ScsiError::Check { sense, .. })
                if sense.eom
                    && matches!(sense.key, SenseKey::NoSense | SenseKey::RecoveredError) =>
            {
                // Early warning: the data went to tape (a residue means part of it did not).
                match sense.residue().unwrap_or(0) {
                    0 => {
                        self.advance(objects);
                        Err(TapeError::EarlyWarning)
                    }
                    r => {
                        self.pos = None;
                        Err(TapeError::EomOverflow(format!(
                            "{}: {r} of {len} {} were not written at the end of the tape",
                            self.name,
                            if fixed { "blocks" } else { "bytes" }
                        )))
                    }
                }
            }
            Err(ScsiError::Check { sense, .. }) if sense.key == SenseKey::VolumeOverflow => {
                let r = sense.residue().unwrap_or(len as i64);
                if r >= len as i64 {
                    Err(TapeError::EndOfMedia)
                } else {
                    self.pos = None;
                    Err(TapeError::EomOverflow(format!(
                        "{}: the end of the tape was reached with {r} of {len} not written",
                        self.name
                    )))
                }
            }
            Err(e) => Err(self.fail(Doing::Write, e)),
        };
        self.wrote_last = matches!(out, Ok(()) | Err(TapeError::EarlyWarning));
        out
    }

    pub(crate) fn write_filemarks(&mut self, count: u32, immediate: bool) -> Result<()> {
        let c = cdb::write_filemarks6(count, false, immediate)
            .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        self.pending_filemark = false;
        match self.exec(&c, Data::None, timeout::MOTION) {
            Ok(_) => {}
            // Marks in the early-warning zone are written; the warning is the writes'.
            Err(ScsiError::Check { sense, .. })
                if sense.eom
                    && matches!(sense.key, SenseKey::NoSense | SenseKey::RecoveredError) => {}
            Err(e) => return Err(self.fail(Doing::Mark, e)),
        }
        self.advance(u64::from(count));
        // Without IMMED the drive writes its buffer to tape before the marks.
        self.wrote_last = immediate && (count > 0 || self.wrote_last);
        Ok(())
    }
}
