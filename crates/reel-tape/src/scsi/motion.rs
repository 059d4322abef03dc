//! Moving the tape: LOCATE where the drive has it, SPACE from the known position where it
//! does not, and — when the drive cannot report positions — spacing by reading, so that
//! reel's count of objects stays exact.

use reel_scsi::cdb::{self, SpaceCode};
use reel_scsi::device::timeout;
use reel_scsi::sense::{SenseKey, asc};
use reel_scsi::{Data, ScsiError, Sense};

use super::classify::Doing;
use super::drive::{ScsiTape, op};
use crate::error::{Result, TapeError};

/// What one object read by [`ScsiTape::skip_one`] was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Passed {
    Record,
    Filemark,
}

/// SPACE(6) takes a 24-bit signed count.
const SPACE_MAX: i64 = 0x7f_ffff;

fn is_bom(s: &Sense) -> bool {
    s.code() == asc::BEGINNING_OF_PARTITION_MEDIUM
        || s.code() == asc::POSITION_PAST_BEGINNING_OF_MEDIUM
        || (s.eom && s.key == SenseKey::NoSense)
}

fn is_eod(s: &Sense) -> bool {
    s.key == SenseKey::BlankCheck || s.code() == asc::END_OF_DATA
}

impl ScsiTape {
    pub(crate) fn rewind(&mut self) -> Result<()> {
        self.pending_filemark_clear();
        self.exec(&cdb::rewind(false), Data::None, timeout::MOTION)
            .map_err(|e| self.fail(Doing::Rewind, e))?;
        self.set_pos(Some(0));
        Ok(())
    }

    /// The logical position: reel's count, else READ POSITION.
    pub(crate) fn logical(&mut self) -> Result<u64> {
        if let Some(p) = self.pos() {
            return Ok(p);
        }
        if self.counts_positions() || !self.supports(op::READ_POSITION) {
            // An empty or unready drive says so first.
            self.dev
                .test_unit_ready()
                .map_err(|e| self.fail(Doing::Status, e))?;
            return Err(TapeError::NotSupported(format!(
                "position: {} cannot report where the tape is (READ POSITION: block position \
                 unknown), and it was moved before reel opened it or by an error; rewind it \
                 (reel tape seek --rewind) or seek to the end of data first",
                self.name
            )));
        }
        let p = self
            .dev
            .read_position_short()
            .map_err(|e| self.fail(Doing::Locate, e))?;
        if p.position_unknown {
            return Err(TapeError::NotReady(format!(
                "{}: the drive does not know its position",
                self.name
            )));
        }
        self.set_partition(u32::from(p.partition) + 1);
        self.set_pos(Some(u64::from(p.first_block)));
        Ok(u64::from(p.first_block))
    }

    /// Passes one object by reading it (a record's data is not kept).
    pub(crate) fn skip_one(&mut self) -> Result<Passed> {
        let bs = self.block_size() as usize;
        let mut small = vec![0u8; bs.max(1)];
        let c = cdb::read6(bs != 0, bs == 0, 1)
            .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        match self.exec(&c, Data::In(&mut small), timeout::SHORT) {
            Ok(_) => {
                self.advance(1);
                Ok(Passed::Record)
            }
            Err(ScsiError::Check { sense, .. }) if sense.filemark => {
                self.advance(1);
                Ok(Passed::Filemark)
            }
            Err(ScsiError::Check { sense, .. }) if is_eod(&sense) => Err(TapeError::NoDataDetected),
            Err(ScsiError::Check { sense, .. })
                if sense.ili
                    && matches!(sense.key, SenseKey::NoSense | SenseKey::RecoveredError) =>
            {
                self.advance(1);
                Ok(Passed::Record)
            }
            Err(e) => Err(self.fail(Doing::Space { forward: true }, e)),
        }
    }

    /// SPACE(6) blocks `n`, with no interpretation beyond the position when it succeeds.
    pub(crate) fn space_blocks_raw(&mut self, n: i64) -> Result<()> {
        let c = cdb::space6(SpaceCode::Blocks, n as i32)
            .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        self.exec(&c, Data::None, timeout::MOTION)
            .map_err(|e| self.fail(Doing::Space { forward: n > 0 }, e))?;
        if n >= 0 {
            self.advance(n as u64);
        } else {
            self.retreat(n.unsigned_abs());
        }
        Ok(())
    }

    /// Moves exactly `k` objects forward (records and filemarks alike), by SPACE where it
    /// can and by reading the last object, so that a target just past the end of data is
    /// NO_DATA_DETECTED with the position still known.
    pub(crate) fn forward_objects(&mut self, k: u64) -> Result<()> {
        let mut left = k;
        while left > 1 && !self.space_refused() && self.supports(op::SPACE6) {
            let n = (left - 1).min(SPACE_MAX as u64) as i64;
            let c = cdb::space6(SpaceCode::Blocks, n as i32)
                .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
            match self.exec(&c, Data::None, timeout::MOTION) {
                Ok(_) => {
                    self.advance(n as u64);
                    left -= n as u64;
                }
                // A drive whose block spacing stops at filemarks: after the mark.
                Err(ScsiError::Check { sense, .. }) if sense.filemark => {
                    let r = sense.residue().unwrap_or(0).unsigned_abs();
                    let moved = (n as u64).saturating_sub(r) + 1;
                    self.advance(moved);
                    left = left.saturating_sub(moved);
                }
                Err(ScsiError::Check { sense, .. }) if sense.key == SenseKey::DataProtect => {
                    // tgt refuses SPACE on a read-only medium: read instead.
                    self.refuse_space();
                }
                Err(ScsiError::Check { sense, .. }) if is_eod(&sense) => {
                    match sense.residue() {
                        Some(r) => self.advance((n as u64).saturating_sub(r.unsigned_abs())),
                        None => self.set_pos(None),
                    }
                    return Err(TapeError::NoDataDetected);
                }
                Err(e) => return Err(self.fail(Doing::Space { forward: true }, e)),
            }
        }
        for _ in 0..left {
            self.skip_one()?;
        }
        Ok(())
    }

    /// Moves exactly `k` objects back.
    pub(crate) fn backward_objects(&mut self, k: u64) -> Result<()> {
        let at = self.logical()?;
        if k >= at {
            return self.rewind();
        }
        if self.space_refused() || !self.supports(op::SPACE6) {
            self.rewind()?;
            return self.forward_objects(at - k);
        }
        let mut left = k;
        while left > 0 {
            let n = left.min(SPACE_MAX as u64) as i64;
            let c = cdb::space6(SpaceCode::Blocks, -n as i32)
                .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
            match self.exec(&c, Data::None, timeout::MOTION) {
                Ok(_) => {
                    self.retreat(n as u64);
                    left -= n as u64;
                }
                // Block spacing stopped at a filemark: before it (on its BOP side).
                Err(ScsiError::Check { sense, .. }) if sense.filemark => {
                    let r = sense.residue().unwrap_or(0).unsigned_abs();
                    let moved = (n as u64).saturating_sub(r) + 1;
                    self.retreat(moved);
                    left = left.saturating_sub(moved);
                }
                Err(ScsiError::Check { sense, .. }) if sense.key == SenseKey::DataProtect => {
                    self.refuse_space();
                    self.rewind()?;
                    return self.forward_objects(at - k);
                }
                Err(e) => return Err(self.fail(Doing::Space { forward: false }, e)),
            }
        }
        Ok(())
    }

    /// To logical object `block` of the current partition: LOCATE, else SPACE from where
    /// the tape is (LOCATE → SPACE).
    pub(crate) fn locate(&mut self, block: u64) -> Result<()> {
        self.pending_filemark_clear();
        if !self.counts_positions() && self.supports(op::LOCATE10) {
            let c = if block <= u64::from(u32::MAX) {
                cdb::locate10(block, None, false)
                    .map_err(|e| TapeError::InvalidParameter(e.to_string()))?
            } else {
                cdb::locate16(block, None, false)
            };
            match self.exec(&c, Data::None, timeout::MOTION) {
                Ok(_) => {
                    self.set_pos(Some(block));
                    return Ok(());
                }
                Err(e) if e.is_unsupported() && e.sense().is_some_and(|s| s.asc == 0x20) => {}
                Err(e) => {
                    self.set_pos(None);
                    return Err(self.fail(Doing::Locate, e));
                }
            }
        }
        let at = match self.pos() {
            Some(p) => p,
            None => {
                self.rewind()?;
                0
            }
        };
        if block == 0 {
            return self.rewind();
        }
        if block >= at {
            self.forward_objects(block - at)
        } else {
            self.backward_objects(at - block)
        }
    }

    /// To the end of data. A drive that reports positions spaces there; otherwise reel
    /// reads its way there, counting.
    pub(crate) fn end_of_data(&mut self) -> Result<()> {
        self.pending_filemark_clear();
        if !self.counts_positions() && self.supports(op::SPACE6) {
            let c = cdb::space6(SpaceCode::EndOfData, 0)
                .map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
            self.set_pos(None);
            return self
                .exec(&c, Data::None, timeout::MOTION)
                .map(drop)
                .map_err(|e| self.fail(Doing::Space { forward: true }, e));
        }
        if self.pos().is_none() {
            self.rewind()?;
        }
        loop {
            match self.skip_one() {
                Ok(_) => {}
                Err(TapeError::NoDataDetected) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// The positions of the filemarks before the current position (reel-counted drives):
    /// rewinds and reads up to where the tape was, which is where it ends.
    fn marks_before_here(&mut self) -> Result<(u64, Vec<u64>)> {
        let at = self.logical()?;
        self.rewind()?;
        let mut marks = Vec::new();
        while self.pos().unwrap_or(at) < at {
            let here = self.pos().unwrap_or(0);
            if self.skip_one()? == Passed::Filemark {
                marks.push(here);
            }
        }
        Ok((at, marks))
    }

    /// SetTapePosition(TAPE_SPACE_FILEMARKS).
    pub(crate) fn space_filemarks(&mut self, n: i64) -> Result<()> {
        self.pending_filemark_clear();
        if n == 0 {
            return Ok(());
        }
        if !self.counts_positions() && self.supports(op::SPACE6) {
            return self.space_drive(SpaceCode::Filemarks, n);
        }
        if n > 0 {
            let mut passed = 0;
            while passed < n {
                if self.skip_one()? == Passed::Filemark {
                    passed += 1;
                }
            }
            return Ok(());
        }
        let (_, marks) = self.marks_before_here()?;
        let back = n.unsigned_abs() as usize;
        if back > marks.len() {
            self.rewind()?;
            return Err(TapeError::BeginningOfMedia);
        }
        self.locate(marks[marks.len() - back])
    }

    /// SetTapePosition(TAPE_SPACE_RELATIVE_BLOCKS): block spacing stops at a filemark,
    /// after it going forward, before it going back.
    pub(crate) fn space_blocks(&mut self, n: i64) -> Result<()> {
        self.pending_filemark_clear();
        if n == 0 {
            return Ok(());
        }
        if !self.counts_positions() && self.supports(op::SPACE6) {
            return self.space_drive(SpaceCode::Blocks, n);
        }
        if n > 0 {
            for _ in 0..n {
                if self.skip_one()? == Passed::Filemark {
                    return Err(TapeError::FilemarkDetected);
                }
            }
            return Ok(());
        }
        let (at, marks) = self.marks_before_here()?;
        let back = n.unsigned_abs();
        let target = at.checked_sub(back);
        // The nearest filemark behind the tape within reach stops it (before the mark).
        if let Some(&m) = marks.iter().rev().find(|&&m| target.is_none_or(|t| m >= t)) {
            self.locate(m)?;
            return Err(TapeError::FilemarkDetected);
        }
        match target {
            Some(t) => self.locate(t),
            None => {
                self.rewind()?;
                Err(TapeError::BeginningOfMedia)
            }
        }
    }

    /// SPACE on a drive that reports positions: the drive does the Win32 semantics.
    fn space_drive(&mut self, code: SpaceCode, n: i64) -> Result<()> {
        if n.abs() > SPACE_MAX {
            return Err(TapeError::InvalidParameter(format!(
                "spacing over {n}: SPACE(6) moves at most {SPACE_MAX} at a time"
            )));
        }
        let c =
            cdb::space6(code, n as i32).map_err(|e| TapeError::InvalidParameter(e.to_string()))?;
        let r = self.exec(&c, Data::None, timeout::MOTION);
        let known = self.pos();
        self.set_pos(None);
        match r {
            Ok(_) => {
                if code == SpaceCode::Blocks {
                    self.set_pos(known.map(|p| p.saturating_add_signed(n)));
                }
                Ok(())
            }
            Err(ScsiError::Check { sense, .. }) if is_bom(&sense) && n < 0 => {
                Err(TapeError::BeginningOfMedia)
            }
            Err(ScsiError::Check { sense, .. }) if is_eod(&sense) => Err(TapeError::NoDataDetected),
            Err(e) => Err(self.fail(Doing::Space { forward: n > 0 }, e)),
        }
    }
}
