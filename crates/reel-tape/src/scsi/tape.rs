//! The [`TapeDrive`] implementation of [`ScsiTape`] (the motion and I/O it calls live in
//! `drive.rs` and `motion.rs`).

use reel_scsi::Data;
use reel_scsi::cdb;
use reel_scsi::device::timeout;
use reel_scsi::sense::asc;
use reel_scsi::ssc::{self, PAGE_DATA_COMPRESSION};

use super::classify::Doing;
use super::drive::{MAX_RECORD, ScsiTape, op};
use crate::drive::*;
use crate::error::{Result, TapeError};
use crate::features::*;

impl ScsiTape {
    fn features(&self) -> (u32, u32) {
        let s = |o| self.supports(o);
        let mut low = TAPE_DRIVE_VARIABLE_BLOCK
            | TAPE_DRIVE_WRITE_PROTECT
            | TAPE_DRIVE_ECC
            | TAPE_DRIVE_GET_LOGICAL_BLK
            | TAPE_DRIVE_GET_ABSOLUTE_BLK;
        if s(op::MODE_SELECT6) {
            low |= TAPE_DRIVE_FIXED_BLOCK;
        }
        if s(op::ERASE) {
            low |= TAPE_DRIVE_ERASE_SHORT | TAPE_DRIVE_ERASE_LONG;
        }
        if self.compression_capable() {
            low |= TAPE_DRIVE_COMPRESSION;
        }
        if s(op::READ_ATTRIBUTE) {
            low |= TAPE_DRIVE_TAPE_CAPACITY | TAPE_DRIVE_TAPE_REMAINING;
        }
        let mut bits = vec![
            TAPE_DRIVE_LOGICAL_BLK,
            TAPE_DRIVE_ABSOLUTE_BLK,
            TAPE_DRIVE_END_OF_DATA,
            TAPE_DRIVE_RELATIVE_BLKS,
            TAPE_DRIVE_FILEMARKS,
            TAPE_DRIVE_REVERSE_POSITION,
            TAPE_DRIVE_WRITE_FILEMARKS,
            TAPE_DRIVE_WRITE_MARK_IMMED,
        ];
        if s(op::LOAD_UNLOAD) {
            bits.push(TAPE_DRIVE_LOAD_UNLOAD);
        }
        if s(op::PREVENT_ALLOW) {
            bits.push(TAPE_DRIVE_LOCK_UNLOCK);
        }
        if s(op::MODE_SELECT6) {
            bits.push(TAPE_DRIVE_SET_BLOCK_SIZE);
        }
        if self.compression_capable() && s(op::MODE_SELECT6) {
            bits.push(TAPE_DRIVE_SET_COMPRESSION);
        }
        (low, high(&bits))
    }

    /// UNLOAD, and for a target that ignores LOAD UNLOAD's UNLOAD (tgt reads the command
    /// as START STOP UNIT), the LOEJ form it understands.
    fn unload(&mut self) -> Result<()> {
        if !self.supports(op::LOAD_UNLOAD) {
            return Err(self.lacks("unload", "LOAD UNLOAD"));
        }
        self.exec(
            &cdb::load_unload(false, false, false),
            Data::None,
            timeout::MOTION,
        )
        .map_err(|e| self.fail(Doing::Unload, e))?;
        if self.dev.test_unit_ready().is_ok() {
            // Still loaded: the byte START STOP UNIT calls LOEJ is LOAD UNLOAD's RETEN.
            self.exec(
                &cdb::load_unload(false, true, false),
                Data::None,
                timeout::MOTION,
            )
            .map_err(|e| self.fail(Doing::Unload, e))?;
        }
        self.set_pos(None);
        Ok(())
    }

    fn load(&mut self) -> Result<()> {
        if !self.supports(op::LOAD_UNLOAD) {
            return Err(self.lacks("load", "LOAD UNLOAD"));
        }
        self.exec(
            &cdb::load_unload(true, false, false),
            Data::None,
            timeout::MOTION,
        )
        .map_err(|e| self.fail(Doing::Load, e))?;
        if let Err(e) = self.dev.test_unit_ready()
            && e.sense()
                .is_some_and(|s| s.code() == asc::MEDIUM_NOT_PRESENT)
        {
            self.exec(
                &cdb::load_unload(true, true, false),
                Data::None,
                timeout::MOTION,
            )
            .map_err(|e| self.fail(Doing::Load, e))?;
        }
        // Load leaves the tape at its beginning.
        self.rewind()?;
        self.set_partition(1);
        Ok(())
    }

    fn lock(&mut self, on: bool) -> Result<()> {
        if !self.supports(op::PREVENT_ALLOW) {
            return Err(self.lacks("lock", "PREVENT ALLOW MEDIUM REMOVAL"));
        }
        self.dev
            .prevent_medium_removal(on)
            .map_err(|e| self.fail(Doing::Lock, e))?;
        self.locked = on;
        Ok(())
    }
}

impl TapeDrive for ScsiTape {
    fn describe(&self) -> String {
        format!("scsi:{}", self.name)
    }

    fn cartridge_name(&self) -> Option<String> {
        // The drive does not read barcodes; its changer does (MediaChanger).
        None
    }

    fn max_record_len(&self) -> usize {
        // The variable-block transfer length's limit; a drive with smaller block limits
        // refuses larger records with ILLEGAL REQUEST, which reaches the user named.
        MAX_RECORD
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        self.read_impl(buf)
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.write_impl(buf)
    }

    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> Result<()> {
        match kind {
            MarkKind::Filemarks => self.write_filemarks(count, immediate),
            MarkKind::Setmarks => {
                Err(self.unsupported_change("setmarks (obsolete in SSC-3; LTO drives have none)"))
            }
            MarkKind::ShortFilemarks | MarkKind::LongFilemarks => {
                Err(self.unsupported_change(&format!("{kind:?}")))
            }
        }
    }

    fn set_position(&mut self, to: SeekTo, _immediate: bool) -> Result<()> {
        self.wrote_last = false;
        match to {
            SeekTo::Rewind => self.rewind(),
            SeekTo::LogicalBlock { partition, block } => {
                self.check_partition(partition)?;
                self.locate(block)
            }
            SeekTo::AbsoluteBlock(block) => self.locate(block),
            SeekTo::EndOfData { partition } => {
                self.check_partition(partition)?;
                self.end_of_data()
            }
            SeekTo::SpaceFilemarks(n) => self.space_filemarks(n),
            SeekTo::SpaceRelativeBlocks(n) => self.space_blocks(n),
            SeekTo::SpaceSetmarks(_)
            | SeekTo::SpaceSequentialFilemarks(_)
            | SeekTo::SpaceSequentialSetmarks(_) => Err(TapeError::NotSupported(format!(
                "{to:?} on a SCSI drive (setmarks are obsolete in SSC-3)"
            ))),
        }
    }

    fn position(&mut self, _kind: PositionKind) -> Result<Position> {
        // One partition: absolute and logical numbers are the same.
        let offset = self.logical()?;
        Ok(Position {
            partition: self.partition(),
            offset,
        })
    }

    fn status(&mut self) -> Result<()> {
        self.exec(&cdb::test_unit_ready(), Data::None, timeout::SHORT)
            .map(drop)
            .map_err(|e| self.fail(Doing::Status, e))
    }

    fn prepare(&mut self, op: PrepareOp, _immediate: bool) -> Result<()> {
        self.wrote_last = false;
        match op {
            PrepareOp::Load => self.load(),
            PrepareOp::Unload => self.unload(),
            PrepareOp::Lock => self.lock(true),
            PrepareOp::Unlock => self.lock(false),
            PrepareOp::Tension => Err(TapeError::NotSupported(format!(
                "tension: {} is not retensioned by reel (LTO drives do not need it)",
                self.name
            ))),
            PrepareOp::Format => Err(self.unsupported_change("format (FORMAT MEDIUM)")),
        }
    }

    fn erase(&mut self, kind: EraseKind, immediate: bool) -> Result<()> {
        if !self.supports(op::ERASE) {
            return Err(self.unsupported_change("erase (the drive does not implement ERASE)"));
        }
        let long = kind == EraseKind::Long;
        let t = if long { timeout::LONG } else { timeout::MOTION };
        self.exec(&cdb::erase6(long, immediate), Data::None, t)
            .map_err(|e| self.fail(Doing::Erase, e))
            .map(drop)
    }

    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        _count: u32,
        _size_mb: u32,
    ) -> Result<()> {
        Err(self.unsupported_change(&format!(
            "{method:?} partitions (reel does not partition SCSI tapes yet)"
        )))
    }

    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        let (features_low, features_high) = self.features();
        let limits = self.dev.read_block_limits().ok();
        Ok(DriveParameters {
            ecc: true,
            compression: self.compression_enabled(),
            data_padding: false,
            report_setmarks: false,
            default_block_size: 0,
            maximum_block_size: limits.map_or(MAX_RECORD as u32, |l| l.max.min(MAX_RECORD as u32)),
            minimum_block_size: limits.map_or(1, |l| u32::from(l.min.max(1))),
            maximum_partition_count: 1,
            features_low,
            features_high,
            eot_warning_zone_size: 0,
        })
    }

    fn media_parameters(&mut self) -> Result<MediaParameters> {
        // Mode pages answer without a medium (tgt): the medium is checked first.
        self.status()?;
        let m = self
            .dev
            .mode_sense(0, 0, false)
            .map_err(|e| self.fail(Doing::Status, e))?;
        let block_size = m.block_length().unwrap_or(self.block_size());
        self.set_block_size(block_size);
        let (capacity, remaining) = self.capacity();
        Ok(MediaParameters {
            capacity,
            remaining,
            block_size,
            partition_count: 1,
            write_protected: m.write_protected(),
        })
    }

    fn set_drive_parameters(&mut self, p: &SetDriveParameters) -> Result<()> {
        if !p.ecc || p.data_padding || p.report_setmarks || p.eot_warning_zone_size != 0 {
            return Err(TapeError::NotSupported(
                "a SCSI drive sets only compression (ECC stays on; padding, setmark reporting and the warning zone are the drive's)".into(),
            ));
        }
        if p.compression == self.compression_enabled() {
            return Ok(());
        }
        let Some(page) = self.compression_page().filter(|c| c.capable) else {
            return Err(TapeError::NotSupported(format!(
                "compression: {} does not compress (its data compression page has DCC clear or is missing)",
                self.name
            )));
        };
        if !self.supports(op::MODE_SELECT6) {
            return Err(self.lacks("compression", "MODE SELECT(6)"));
        }
        let mut params = vec![0, 0, 0x10, 0];
        params.extend_from_slice(&page.select_bytes(p.compression));
        self.dev
            .mode_select(&params)
            .map_err(|e| self.fail(Doing::Select, e))?;
        self.reload_compression();
        Ok(())
    }

    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        if block_size > MAX_RECORD as u32 {
            return Err(TapeError::InvalidParameter(format!(
                "block size {block_size} is above the 24-bit limit of SCSI tape"
            )));
        }
        if !self.supports(op::MODE_SELECT6) {
            return Err(self.lacks("set block size", "MODE SELECT(6)"));
        }
        let params = ssc::block_size_parameters(self.density(), block_size);
        self.dev
            .mode_select(&params)
            .map_err(|e| self.fail(Doing::Select, e))?;
        self.set_block_size(block_size);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.wrote_last {
            self.write_filemarks(0, false)?;
            self.wrote_last = false;
        }
        Ok(())
    }

    fn health(&mut self) -> Result<crate::health::DriveHealth> {
        Ok(self.health_report())
    }
}

impl ScsiTape {
    fn check_partition(&self, partition: u32) -> Result<()> {
        if partition == 0 || partition == self.partition() {
            Ok(())
        } else {
            Err(TapeError::InvalidParameter(format!(
                "partition {partition}: reel uses SCSI tapes with one partition"
            )))
        }
    }

    /// Capacity and remaining bytes from MAM (attributes 0001h and 0000h, in MiB), or 0
    /// when the drive has no READ ATTRIBUTE.
    fn capacity(&mut self) -> (u64, u64) {
        if !self.supports(op::READ_ATTRIBUTE) {
            return (0, 0);
        }
        match self.dev.read_attributes(0) {
            Ok(attrs) => {
                let m = reel_scsi::mam::MamSummary::from_attributes(&attrs);
                (
                    m.maximum_mib.unwrap_or(0) << 20,
                    m.remaining_mib.unwrap_or(0) << 20,
                )
            }
            Err(_) => (0, 0),
        }
    }

    fn reload_compression(&mut self) {
        let page = self
            .dev
            .mode_sense(PAGE_DATA_COMPRESSION, 0, true)
            .ok()
            .and_then(|m| m.page(PAGE_DATA_COMPRESSION, 0).cloned())
            .and_then(|p| ssc::CompressionPage::parse(&p).ok());
        self.set_compression_page(page);
    }
}
