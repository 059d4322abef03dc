//! [`StDrive`]: the Win32 tape semantics over a st drive's mtio calls.
//!
//! # The mapping
//!
//! | trait operation | mtio |
//! |---|---|
//! | `read` | read(2); 0 bytes → MTIOCGET: GMT_EOD → NO_DATA_DETECTED, GMT_SM → setmark (passed over unless ReportSetmarks), else FILEMARK_DETECTED; ENOMEM (record longer than the buffer) → MTBSR 1 and a re-read into a full-size buffer → MORE_DATA with the first part |
//! | `write` | write(2); ENOSPC with GMT_EOT (st's early warning) → the write is repeated, as st allows, and reports END_OF_MEDIA as an early warning (the data is written); ENOSPC otherwise → END_OF_MEDIA (nothing written) |
//! | `write_marks` | MTWEOF / MTWEOFI (immediate) / MTWSM; short and long filemarks: NOT_SUPPORTED |
//! | `set_position` | MTREW, MTSEEK (after MTSETPART for another partition), MTEOM, MTFSF/MTBSF, MTFSR/MTBSR, MTFSS/MTBSS; absolute blocks and sequential marks: NOT_SUPPORTED |
//! | `position` | MTIOCPOS (logical object number; MT_ST_SCSI2LOGICAL should be on) and the partition from MTIOCGET's `mt_resid`; absolute: NOT_SUPPORTED |
//! | `status` | MTIOCGET: GMT_DR_OPEN → NO_MEDIA_IN_DRIVE, not GMT_ONLINE → NOT_READY, GMT_CLN → DEVICE_REQUIRES_CLEANING |
//! | `prepare` | MTLOAD, MTUNLOAD, MTLOCK, MTUNLOCK, MTRETEN; Format: NOT_SUPPORTED |
//! | `erase` | MTERASE 0 (short) / 1 (long) |
//! | `create_partitions` | initiator 1 → MTMKPART 0; initiator 2 → MTMKPART −size (the size of partition 1 in Win32 numbering, st's partition 0, the physically first on LTO-5 and later); fixed and select: NOT_SUPPORTED |
//! | `set_media_parameters` | MTSETBLK |
//! | `set_drive_parameters` | MTCOMPRESSION; ECC, padding, ReportSetmarks and the warning zone cannot be set: NOT_SUPPORTED when asked to change |
//! | `flush` | MTWEOF 0 after writing (the drive's buffer to the medium), MTNOP otherwise |
//!
//! Errno values: ENOMEDIUM → NO_MEDIA_IN_DRIVE; EACCES/EROFS/EBADF on a writing call →
//! WRITE_PROTECT; ENOSYS/ENOTTY → NOT_SUPPORTED; ENOSPC → END_OF_MEDIA; EBUSY, EAGAIN,
//! ENXIO → NOT_READY; EINVAL → INVALID_BLOCK_LENGTH on reads and writes, INVALID_PARAMETER
//! or PARTITION_FAILURE elsewhere, UNABLE_TO_UNLOAD_MEDIA for an unload while locked; EIO is
//! read with MTIOCGET after the failure: GMT_DR_OPEN → NO_MEDIA_IN_DRIVE, not GMT_ONLINE →
//! NOT_READY, GMT_EOD → NO_DATA_DETECTED, GMT_BOT after backward motion →
//! BEGINNING_OF_MEDIA, a changed file number after block spacing → FILEMARK_DETECTED,
//! GMT_SM → SETMARK_DETECTED, GMT_EOT on a write → END_OF_MEDIA, GMT_CLN →
//! DEVICE_REQUIRES_CLEANING, else an I/O error.
//!
//! What st cannot tell: capacity and remaining bytes, the early-warning zone size, the
//! partition count (reported as at least the current partition), a media change.

use crate::drive::*;
use crate::error::{Result, TapeError};
use crate::features::*;
use crate::st::mtio::{Errno, MtOp, MtStatus, Mtio, gmt};

/// Largest record the st mapping reads back for MORE_DATA (SCSI's 24-bit length).
pub const MAX_RECORD: usize = 0x00FF_FFFF;

/// What a failed call was doing, to read its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    Read,
    Write,
    Mark,
    Setmark,
    SpaceFilemarks { forward: bool },
    SpaceBlocks { forward: bool },
    SpaceSetmarks { forward: bool },
    Seek,
    SetPartition,
    Rewind,
    EndOfData,
    Erase,
    Partition,
    Load,
    Unload,
    Lock,
    Unlock,
    Tension,
    SetBlockSize,
    Compression,
    Status,
    Tell,
    Flush,
}

impl Doing {
    fn writes(self) -> bool {
        matches!(
            self,
            Doing::Write | Doing::Mark | Doing::Setmark | Doing::Erase | Doing::Partition
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Doing::SpaceFilemarks { forward: false }
                | Doing::SpaceBlocks { forward: false }
                | Doing::SpaceSetmarks { forward: false }
                | Doing::Rewind
        )
    }
}

/// Every MTIOCTOP operation [`StDrive`] issues.
pub const ISSUED_OPS: &[MtOp] = &[
    MtOp::Fsf,
    MtOp::Bsf,
    MtOp::Fsr,
    MtOp::Bsr,
    MtOp::Fss,
    MtOp::Bss,
    MtOp::Weof,
    MtOp::WeofI,
    MtOp::Wsm,
    MtOp::Rew,
    MtOp::Nop,
    MtOp::Reten,
    MtOp::Eom,
    MtOp::Erase,
    MtOp::SetBlk,
    MtOp::Seek,
    MtOp::SetPart,
    MtOp::MkPart,
    MtOp::Compression,
    MtOp::Lock,
    MtOp::Unlock,
    MtOp::Load,
    MtOp::Unload,
    MtOp::SetDrvBuffer,
];

/// st driver options (`<linux/mtio.h>`, MTSETDRVBUFFER with `MT_ST_SETBOOLEANS` /
/// `MT_ST_CLEARBOOLEANS`).
pub mod st_options {
    pub const SETBOOLEANS: i32 = 0x3000_0000;
    pub const CLEARBOOLEANS: i32 = 0x4000_0000;
    pub const TWO_FM: i32 = 0x10;
    pub const CAN_BSR: i32 = 0x100;
    pub const CAN_PARTITIONS: i32 = 0x400;
    pub const SCSI2LOGICAL: i32 = 0x800;
    pub const SYSV: i32 = 0x1000;
    /// What reel's positions and moves rely on: MTIOCPOS and MTSEEK in logical objects
    /// (SCSI2LOGICAL), MTBSR after a record longer than the buffer (CAN_BSR), partitions.
    pub const WANTED: i32 = SCSI2LOGICAL | CAN_BSR | CAN_PARTITIONS;
    /// What would change the tape behind reel's back: two filemarks at close (TWO_FM),
    /// System V close semantics that space to the next filemark (SYSV).
    pub const UNWANTED: i32 = TWO_FM | SYSV;
}

/// Every errno value the mapping gives a meaning of its own (the rest are I/O errors).
pub const INTERPRETED_ERRNOS: &[Errno] = &[
    Errno::ENOMEDIUM,
    Errno::EACCES,
    Errno::EROFS,
    Errno::EBADF,
    Errno::ENOSYS,
    Errno::ENOTTY,
    Errno::ENOSPC,
    Errno::EBUSY,
    Errno::EAGAIN,
    Errno::ENXIO,
    Errno::EINVAL,
    Errno::ENOMEM,
    Errno::EOVERFLOW,
    Errno::EIO,
];

/// Every `mt_gstat` bit the mapping reads.
pub const INTERPRETED_STATUS_BITS: &[u64] = &[
    gmt::EOF,
    gmt::BOT,
    gmt::EOT,
    gmt::SM,
    gmt::EOD,
    gmt::WR_PROT,
    gmt::ONLINE,
    gmt::DR_OPEN,
    gmt::CLN,
];

/// The Win32 error for errno `e` of a call that was `doing` something; `after` is the
/// drive's status read after the failure (for EIO), `fileno_before` the file number before
/// a block-spacing call, `locked` whether reel locked the door.
pub fn classify(
    name: &str,
    doing: Doing,
    e: Errno,
    after: Option<&MtStatus>,
    fileno_before: Option<i32>,
    locked: bool,
) -> TapeError {
    let what = format!("{name}: {doing:?} failed with {e}");
    let has = |bit| after.is_some_and(|s: &MtStatus| s.has(bit));
    match e {
        Errno::ENOMEDIUM => TapeError::NoMediaInDrive,
        Errno::EACCES | Errno::EROFS if doing.writes() => {
            TapeError::WriteProtect(format!("{name}: the tape is write-protected ({e})"))
        }
        Errno::EBADF if doing.writes() => TapeError::WriteProtect(format!(
            "{name} was opened read-only (no write permission on the device node)"
        )),
        Errno::ENOSYS | Errno::ENOTTY => {
            TapeError::NotSupported(format!("{name}: the driver does not do {doing:?} ({e})"))
        }
        Errno::ENOSPC => TapeError::EndOfMedia,
        Errno::EBUSY => {
            TapeError::NotReady(format!("{name} is busy (another program has it open): {e}"))
        }
        Errno::EAGAIN | Errno::ENXIO => TapeError::NotReady(format!("{name}: {e}")),
        Errno::EOVERFLOW => TapeError::InvalidBlockLength(what),
        Errno::EINVAL => match doing {
            Doing::Read | Doing::Write => TapeError::InvalidBlockLength(format!(
                "{name}: the length does not suit the drive's block size or limits ({e})"
            )),
            Doing::Unload if locked => TapeError::UnableToUnloadMedia,
            Doing::Lock => TapeError::UnableToLockMedia,
            Doing::Setmark | Doing::SpaceSetmarks { .. } => TapeError::NotSupported(format!(
                "{name}: the drive has no setmarks ({e}); LTO drives do not"
            )),
            Doing::Compression => TapeError::NotSupported(format!(
                "{name}: the drive cannot switch compression ({e})"
            )),
            Doing::Partition => TapeError::PartitionFailure(format!(
                "{name}: the drive refused to partition ({e}); partition support may be off in st \
                 (`mt-st -f {name} stsetoptions can-partitions`)"
            )),
            Doing::SetPartition => TapeError::InvalidParameter(format!(
                "{name}: no such partition, or partition support is off in st ({e})"
            )),
            _ => TapeError::InvalidParameter(what),
        },
        Errno::EIO => {
            if has(gmt::DR_OPEN) {
                TapeError::NoMediaInDrive
            } else if after.is_some() && !has(gmt::ONLINE) {
                TapeError::NotReady(format!("{name} is not online ({e})"))
            } else if doing == Doing::Unload && locked {
                TapeError::UnableToUnloadMedia
            } else if doing == Doing::Lock {
                TapeError::UnableToLockMedia
            } else if matches!(doing, Doing::Partition | Doing::SetPartition) {
                TapeError::PartitionFailure(what)
            } else if matches!(doing, Doing::Write | Doing::Mark | Doing::Setmark) && has(gmt::EOT)
            {
                TapeError::EndOfMedia
            } else if doing.backward() && has(gmt::BOT) {
                TapeError::BeginningOfMedia
            } else if matches!(doing, Doing::SpaceBlocks { .. })
                && fileno_before.is_some_and(|f| after.is_some_and(|s| s.fileno != f))
            {
                TapeError::FilemarkDetected
            } else if has(gmt::SM)
                && matches!(
                    doing,
                    Doing::SpaceBlocks { .. } | Doing::SpaceFilemarks { .. } | Doing::Read
                )
            {
                TapeError::SetmarkDetected
            } else if has(gmt::EOD)
                && matches!(
                    doing,
                    Doing::Read
                        | Doing::Seek
                        | Doing::EndOfData
                        | Doing::SpaceBlocks { forward: true }
                        | Doing::SpaceFilemarks { forward: true }
                        | Doing::SpaceSetmarks { forward: true }
                )
            {
                TapeError::NoDataDetected
            } else if has(gmt::CLN) {
                TapeError::DeviceRequiresCleaning
            } else {
                io_error(name, e)
            }
        }
        _ => io_error(name, e),
    }
}

fn io_error(name: &str, e: Errno) -> TapeError {
    TapeError::Io {
        path: name.into(),
        source: std::io::Error::from_raw_os_error(e.0),
    }
}

/// A st drive (local or remote) with the Win32 tape semantics.
pub struct StDrive<M: Mtio> {
    mtio: M,
    block_size: u32,
    compression: bool,
    locked: bool,
    wrote_last: bool,
    partitions_made: Option<u32>,
    scratch: Vec<u8>,
    /// What opening and reading found, for the user (`open_notes`).
    notes: Vec<String>,
    /// A fixed-block read already fell back to variable blocks, or the block size was
    /// chosen through reel (then a record of another size is the caller's error).
    probed: bool,
}

impl<M: Mtio> StDrive<M> {
    /// Wraps an open st channel; fails when it is not a tape drive (MTIOCGET refused).
    pub fn open(mut mtio: M) -> Result<StDrive<M>> {
        let name = mtio.describe();
        let status = mtio.status().map_err(|e| match e {
            Errno::ENOTTY | Errno::EINVAL | Errno::ENOSYS => {
                TapeError::NotSupported(format!("{name} is not a tape drive (MTIOCGET: {e})"))
            }
            e => classify(&name, Doing::Status, e, None, None, false),
        })?;
        Ok(StDrive {
            mtio,
            block_size: status.block_size(),
            compression: false,
            locked: false,
            wrote_last: false,
            partitions_made: None,
            scratch: Vec::new(),
            notes: Vec::new(),
            probed: false,
        })
    }

    /// Sets the st driver options reel's positions rely on ([`st_options::WANTED`]) and
    /// clears those that would move the tape behind its back ([`st_options::UNWANTED`]).
    /// A driver that refuses (st allows it to root only) leaves a note saying what to run.
    pub fn set_driver_options(&mut self) {
        if !self.mtio.supports(MtOp::SetDrvBuffer) {
            return;
        }
        let set = self.mtio.op(
            MtOp::SetDrvBuffer,
            st_options::SETBOOLEANS | st_options::WANTED,
        );
        let clear = self.mtio.op(
            MtOp::SetDrvBuffer,
            st_options::CLEARBOOLEANS | st_options::UNWANTED,
        );
        if let Some(e) = set.err().or(clear.err()) {
            let name = self.name();
            self.notes.push(format!(
                "the st options reel relies on could not be set on {name} ({e}); run as root, or \
                 `mt-st -f {name} stsetoptions scsi2logical can-bsr can-partitions` and \
                 `mt-st -f {name} stclearoptions two-fm sysv`"
            ));
        }
    }

    /// The channel underneath (for tests and for the rmt client's own calls).
    pub fn mtio(&mut self) -> &mut M {
        &mut self.mtio
    }

    fn name(&self) -> String {
        self.mtio.describe()
    }

    fn fail(&mut self, doing: Doing, e: Errno, fileno_before: Option<i32>) -> TapeError {
        let name = self.name();
        let after = if e == Errno::EIO {
            self.mtio.status().ok()
        } else {
            None
        };
        classify(&name, doing, e, after.as_ref(), fileno_before, self.locked)
    }

    fn need(&self, op: MtOp, what: &str) -> Result<()> {
        if self.mtio.supports(op) {
            Ok(())
        } else {
            Err(TapeError::NotSupported(format!(
                "{what}: {} cannot be sent to {}",
                op.name(),
                self.name()
            )))
        }
    }

    fn op(&mut self, op: MtOp, count: i64, doing: Doing) -> Result<i32> {
        self.need(op, &format!("{doing:?}"))?;
        let count = i32::try_from(count).map_err(|_| {
            TapeError::InvalidParameter(format!("{} count {count} is out of range", op.name()))
        })?;
        self.wrote_last = false;
        self.mtio
            .op(op, count)
            .map_err(|e| self.fail(doing, e, None))
    }

    fn status_raw(&mut self, doing: Doing) -> Result<MtStatus> {
        let name = self.name();
        self.mtio
            .status()
            .map_err(|e| classify(&name, doing, e, None, None, self.locked))
    }

    /// For an operation st cannot do that would change the medium: a write-protected
    /// tape says WRITE_PROTECT (as every backend must), else NOT_SUPPORTED.
    fn unsupported_change(&mut self, what: &str) -> TapeError {
        match self.mtio.status() {
            Ok(s) if s.has(gmt::DR_OPEN) => TapeError::NoMediaInDrive,
            Ok(s) if s.has(gmt::WR_PROT) => {
                TapeError::WriteProtect(format!("{}: the tape is write-protected", self.name()))
            }
            _ => TapeError::NotSupported(format!("{what} on a st drive ({})", self.name())),
        }
    }

    /// After a read of 0 bytes: which mark (or the end of data) stopped it. `None` for a
    /// setmark that is to be passed over.
    fn zero_read(&mut self) -> Result<Option<TapeError>> {
        let s = self.status_raw(Doing::Read)?;
        if s.has(gmt::DR_OPEN) {
            return Ok(Some(TapeError::NoMediaInDrive));
        }
        if s.has(gmt::EOD) {
            return Ok(Some(TapeError::NoDataDetected));
        }
        if s.has(gmt::SM) {
            // st has no ReportSetmarks switch: reel reports none and reads on.
            return Ok(None);
        }
        Ok(Some(TapeError::FilemarkDetected))
    }

    fn features(&self) -> (u32, u32) {
        let s = |op| self.mtio.supports(op);
        let mut low = TAPE_DRIVE_FIXED_BLOCK
            | TAPE_DRIVE_VARIABLE_BLOCK
            | TAPE_DRIVE_WRITE_PROTECT
            | TAPE_DRIVE_ECC;
        if s(MtOp::Erase) {
            low |= TAPE_DRIVE_ERASE_SHORT | TAPE_DRIVE_ERASE_LONG;
        }
        if s(MtOp::MkPart) {
            low |= TAPE_DRIVE_INITIATOR;
        }
        if s(MtOp::Compression) {
            low |= TAPE_DRIVE_COMPRESSION;
        }
        if self.mtio.can_tell() {
            low |= TAPE_DRIVE_GET_LOGICAL_BLK;
        }
        let mut bits = Vec::new();
        let mut add = |cond: bool, bit: u32| {
            if cond {
                bits.push(bit);
            }
        };
        add(s(MtOp::Load) && s(MtOp::Unload), TAPE_DRIVE_LOAD_UNLOAD);
        add(s(MtOp::Reten), TAPE_DRIVE_TENSION);
        add(s(MtOp::Lock) && s(MtOp::Unlock), TAPE_DRIVE_LOCK_UNLOCK);
        add(s(MtOp::SetBlk), TAPE_DRIVE_SET_BLOCK_SIZE);
        add(s(MtOp::Compression), TAPE_DRIVE_SET_COMPRESSION);
        add(s(MtOp::Seek), TAPE_DRIVE_LOGICAL_BLK);
        add(s(MtOp::Eom), TAPE_DRIVE_END_OF_DATA);
        add(s(MtOp::Fsr) && s(MtOp::Bsr), TAPE_DRIVE_RELATIVE_BLKS);
        add(s(MtOp::Fsf) && s(MtOp::Bsf), TAPE_DRIVE_FILEMARKS);
        add(s(MtOp::Fss) && s(MtOp::Bss), TAPE_DRIVE_SETMARKS);
        add(s(MtOp::Bsf) || s(MtOp::Bsr), TAPE_DRIVE_REVERSE_POSITION);
        add(s(MtOp::Wsm), TAPE_DRIVE_WRITE_SETMARKS);
        add(s(MtOp::Weof), TAPE_DRIVE_WRITE_FILEMARKS);
        add(s(MtOp::WeofI), TAPE_DRIVE_WRITE_MARK_IMMED);
        (low, high(&bits))
    }

    /// A fixed-block read failed (`e`): the tape may hold records of another size, a
    /// foreign tape whose block size is unknown. The drive goes to variable blocks, which
    /// read a record of any size, and back to `start` for the read to be made again.
    fn probe_variable(&mut self, start: u64, e: Errno) -> Result<()> {
        self.probed = true;
        let was = self.block_size;
        self.op(MtOp::SetBlk, 0, Doing::SetBlockSize)?;
        self.block_size = 0;
        let here = self
            .mtio
            .tell()
            .map_err(|e| self.fail(Doing::Tell, e, None))?;
        if here != start {
            let to = i64::try_from(start).unwrap_or(i64::MAX);
            self.op(MtOp::Seek, to, Doing::Seek)?;
        }
        let name = self.name();
        self.notes.push(format!(
            "{name} was set to {was}-byte blocks and the tape's records are not ({e}): reading \
             it in variable-block mode, which reads records of any size"
        ));
        Ok(())
    }

    fn space(&mut self, n: i64, fwd: MtOp, back: MtOp, doing: fn(bool) -> Doing) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        let (op, count, d) = if n > 0 {
            (fwd, n, doing(true))
        } else {
            (back, n.checked_neg().unwrap_or(i64::MAX), doing(false))
        };
        // SCSI SPACE takes a 24-bit signed count.
        if count > 0x7F_FFFF {
            return Err(TapeError::InvalidParameter(format!(
                "spacing over {n}: a st drive spaces at most 8388607 at a time"
            )));
        }
        self.need(op, &format!("{d:?}"))?;
        let before = if matches!(d, Doing::SpaceBlocks { .. }) {
            Some(self.status_raw(d)?.fileno)
        } else {
            None
        };
        self.wrote_last = false;
        match self.mtio.op(op, count as i32) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(d, e, before)),
        }
    }

    fn set_partition(&mut self, partition: u32) -> Result<()> {
        if partition == 0 {
            return Ok(());
        }
        self.op(MtOp::SetPart, i64::from(partition) - 1, Doing::SetPartition)
            .map(drop)
    }
}

impl<M: Mtio> TapeDrive for StDrive<M> {
    fn describe(&self) -> String {
        format!("st:{}", self.mtio.describe())
    }

    fn cartridge_name(&self) -> Option<String> {
        // The st driver does not read barcodes (a changer does).
        None
    }

    fn max_record_len(&self) -> usize {
        MAX_RECORD
    }

    fn open_notes(&self) -> Vec<String> {
        self.notes.clone()
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        let bs = self.block_size as usize;
        if buf.is_empty() || (bs != 0 && !buf.len().is_multiple_of(bs)) {
            return Err(TapeError::InvalidBlockLength(format!(
                "a read of {} bytes with block size {}",
                buf.len(),
                self.block_size
            )));
        }
        self.wrote_last = false;
        // Where a fixed-block read starts, to read the record again in variable mode
        // when the tape's records are not the blocks the drive was left in.
        let start = if bs != 0 && !self.probed && self.mtio.can_tell() {
            self.mtio.tell().ok()
        } else {
            None
        };
        loop {
            match self.mtio.read(buf) {
                Ok(0) => match self.zero_read()? {
                    Some(e) => return Err(e),
                    None => continue,
                },
                Ok(n) => return Ok(n),
                Err(Errno::ENOMEM) if bs == 0 => {
                    // st skipped the record that did not fit: back over it and read it
                    // whole, to hand out its first part as Windows does.
                    self.op(MtOp::Bsr, 1, Doing::Read)?;
                    let mut scratch = std::mem::take(&mut self.scratch);
                    scratch.resize(MAX_RECORD, 0);
                    let r = self.mtio.read(&mut scratch);
                    let out = match r {
                        Ok(n) => {
                            let copied = n.min(buf.len());
                            buf[..copied].copy_from_slice(&scratch[..copied]);
                            Err(TapeError::MoreData {
                                record_len: n,
                                copied,
                            })
                        }
                        Err(e) => Err(self.fail(Doing::Read, e, None)),
                    };
                    scratch.clear();
                    self.scratch = scratch;
                    return out;
                }
                Err(e @ (Errno::EIO | Errno::EINVAL | Errno::ENOMEM | Errno::EOVERFLOW))
                    if start.is_some() && !self.probed =>
                {
                    self.probe_variable(start.unwrap_or(0), e)?;
                }
                Err(e) => return Err(self.fail(Doing::Read, e, None)),
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        let bs = self.block_size as usize;
        if buf.is_empty() || (bs != 0 && !buf.len().is_multiple_of(bs)) {
            return Err(TapeError::InvalidBlockLength(format!(
                "a write of {} bytes with block size {}",
                buf.len(),
                self.block_size
            )));
        }
        let first = self.mtio.write(buf);
        let result = match first {
            Ok(n) if n == buf.len() => Ok(()),
            Ok(n) => Err(TapeError::EomOverflow(format!(
                "{}: {n} of {} bytes were written before the end of the tape",
                self.name(),
                buf.len()
            ))),
            Err(Errno::ENOSPC) => {
                // st's early warning: this write was refused, the next may proceed.
                let s = self.status_raw(Doing::Write)?;
                if s.has(gmt::EOT) {
                    match self.mtio.write(buf) {
                        Ok(n) if n == buf.len() => Err(TapeError::EarlyWarning),
                        Ok(n) => Err(TapeError::EomOverflow(format!(
                            "{}: {n} of {} bytes were written before the end of the tape",
                            self.name(),
                            buf.len()
                        ))),
                        Err(Errno::ENOSPC) => Err(TapeError::EndOfMedia),
                        Err(e) => Err(self.fail(Doing::Write, e, None)),
                    }
                } else {
                    Err(TapeError::EndOfMedia)
                }
            }
            Err(e) => Err(self.fail(Doing::Write, e, None)),
        };
        self.wrote_last = matches!(result, Ok(()) | Err(TapeError::EarlyWarning));
        result
    }

    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> Result<()> {
        match kind {
            MarkKind::Filemarks if immediate => {
                self.op(MtOp::WeofI, i64::from(count), Doing::Mark)?;
            }
            MarkKind::Filemarks => {
                self.op(MtOp::Weof, i64::from(count), Doing::Mark)?;
            }
            MarkKind::Setmarks => {
                self.op(MtOp::Wsm, i64::from(count), Doing::Setmark)?;
            }
            MarkKind::ShortFilemarks | MarkKind::LongFilemarks => {
                return Err(self.unsupported_change(&format!("{kind:?}")));
            }
        }
        Ok(())
    }

    fn set_position(&mut self, to: SeekTo, _immediate: bool) -> Result<()> {
        match to {
            SeekTo::Rewind => self.op(MtOp::Rew, 1, Doing::Rewind).map(drop),
            SeekTo::LogicalBlock { partition, block } => {
                self.need(MtOp::Seek, "seek to a logical block")?;
                self.set_partition(partition)?;
                let block = i64::try_from(block).unwrap_or(i64::MAX);
                self.op(MtOp::Seek, block, Doing::Seek).map(drop)
            }
            SeekTo::EndOfData { partition } => {
                self.need(MtOp::Eom, "space to end of data")?;
                self.set_partition(partition)?;
                self.op(MtOp::Eom, 1, Doing::EndOfData).map(drop)
            }
            SeekTo::SpaceFilemarks(n) => self.space(n, MtOp::Fsf, MtOp::Bsf, |forward| {
                Doing::SpaceFilemarks { forward }
            }),
            SeekTo::SpaceRelativeBlocks(n) => self.space(n, MtOp::Fsr, MtOp::Bsr, |forward| {
                Doing::SpaceBlocks { forward }
            }),
            SeekTo::SpaceSetmarks(n) => self.space(n, MtOp::Fss, MtOp::Bss, |forward| {
                Doing::SpaceSetmarks { forward }
            }),
            SeekTo::AbsoluteBlock(_) => Err(TapeError::NotSupported(
                "absolute block positions on a st drive (use logical blocks)".into(),
            )),
            SeekTo::SpaceSequentialFilemarks(_) | SeekTo::SpaceSequentialSetmarks(_) => Err(
                TapeError::NotSupported("spacing to sequential marks on a st drive".into()),
            ),
        }
    }

    fn position(&mut self, kind: PositionKind) -> Result<Position> {
        if kind == PositionKind::Absolute {
            return Err(TapeError::NotSupported(
                "absolute positions on a st drive (st reports logical ones)".into(),
            ));
        }
        if !self.mtio.can_tell() {
            return Err(TapeError::NotSupported(format!(
                "{} cannot report the position (no MTIOCPOS)",
                self.name()
            )));
        }
        let s = self.status_raw(Doing::Tell)?;
        if s.has(gmt::DR_OPEN) {
            return Err(TapeError::NoMediaInDrive);
        }
        let offset = self
            .mtio
            .tell()
            .map_err(|e| self.fail(Doing::Tell, e, None))?;
        Ok(Position {
            partition: u32::try_from(s.partition().max(0) + 1).unwrap_or(1),
            offset,
        })
    }

    fn status(&mut self) -> Result<()> {
        let s = self.status_raw(Doing::Status)?;
        if s.has(gmt::DR_OPEN) {
            return Err(TapeError::NoMediaInDrive);
        }
        if !s.has(gmt::ONLINE) {
            return Err(TapeError::NotReady(format!(
                "{} is not online (loading, or offline)",
                self.name()
            )));
        }
        if s.has(gmt::CLN) {
            return Err(TapeError::DeviceRequiresCleaning);
        }
        Ok(())
    }

    fn prepare(&mut self, op: PrepareOp, _immediate: bool) -> Result<()> {
        match op {
            PrepareOp::Load => self.op(MtOp::Load, 0, Doing::Load).map(drop),
            PrepareOp::Unload => self.op(MtOp::Unload, 0, Doing::Unload).map(drop),
            PrepareOp::Lock => {
                self.op(MtOp::Lock, 0, Doing::Lock)?;
                self.locked = true;
                Ok(())
            }
            PrepareOp::Unlock => {
                self.op(MtOp::Unlock, 0, Doing::Unlock)?;
                self.locked = false;
                Ok(())
            }
            PrepareOp::Tension => self.op(MtOp::Reten, 1, Doing::Tension).map(drop),
            PrepareOp::Format => Err(self.unsupported_change("PrepareTape(Format)")),
        }
    }

    fn erase(&mut self, kind: EraseKind, _immediate: bool) -> Result<()> {
        let arg = match kind {
            EraseKind::Short => 0,
            EraseKind::Long => 1,
        };
        self.op(MtOp::Erase, arg, Doing::Erase).map(drop)
    }

    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<()> {
        if method != PartitionMethod::Initiator {
            return Err(self.unsupported_change(&format!(
                "{method:?} partitions (st partitions by size: the initiator method)"
            )));
        }
        let arg = match count {
            1 => 0,
            2 if size_mb > 0 => -i64::from(size_mb),
            2 => {
                return Err(TapeError::InvalidParameter(
                    "two initiator partitions need the size of the first".into(),
                ));
            }
            n => {
                return Err(TapeError::InvalidParameter(format!(
                    "{n} partitions: a st drive makes one or two"
                )));
            }
        };
        self.op(MtOp::MkPart, arg, Doing::Partition)?;
        self.partitions_made = Some(count);
        Ok(())
    }

    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        let (features_low, features_high) = self.features();
        Ok(DriveParameters {
            ecc: true,
            compression: self.compression,
            data_padding: false,
            report_setmarks: false,
            default_block_size: 0,
            maximum_block_size: MAX_RECORD as u32,
            minimum_block_size: 1,
            maximum_partition_count: if self.mtio.supports(MtOp::MkPart) {
                2
            } else {
                1
            },
            features_low,
            features_high,
            eot_warning_zone_size: 0,
        })
    }

    fn media_parameters(&mut self) -> Result<MediaParameters> {
        let s = self.status_raw(Doing::Status)?;
        if s.has(gmt::DR_OPEN) {
            return Err(TapeError::NoMediaInDrive);
        }
        self.block_size = s.block_size();
        let current = u32::try_from(s.partition().max(0) + 1).unwrap_or(1);
        Ok(MediaParameters {
            capacity: 0,
            remaining: 0,
            block_size: self.block_size,
            partition_count: self.partitions_made.unwrap_or(1).max(current),
            write_protected: s.has(gmt::WR_PROT),
        })
    }

    fn set_drive_parameters(&mut self, p: &SetDriveParameters) -> Result<()> {
        if !p.ecc || p.data_padding || p.report_setmarks || p.eot_warning_zone_size != 0 {
            return Err(TapeError::NotSupported(
                "a st drive sets only compression (ECC stays on; padding, setmark reporting \
                 and the warning zone are the drive's)"
                    .into(),
            ));
        }
        // st cannot read the drive's compression state back: always send it.
        self.op(
            MtOp::Compression,
            i64::from(p.compression),
            Doing::Compression,
        )?;
        self.compression = p.compression;
        Ok(())
    }

    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        if block_size > MAX_RECORD as u32 {
            return Err(TapeError::InvalidParameter(format!(
                "block size {block_size} is above the 24-bit limit of SCSI tape"
            )));
        }
        self.op(MtOp::SetBlk, i64::from(block_size), Doing::SetBlockSize)?;
        self.block_size = block_size;
        // A block size chosen here is meant: no probing for another.
        self.probed = true;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.wrote_last {
            // WRITE FILEMARKS(0): the drive's buffer goes to the medium. It also tells st
            // the last operation was no write, so closing adds no filemark of its own.
            self.op(MtOp::Weof, 0, Doing::Flush).map(drop)
        } else {
            self.op(MtOp::Nop, 1, Doing::Flush).map(drop)
        }
    }
}

impl<M: Mtio> Drop for StDrive<M> {
    fn drop(&mut self) {
        // st writes a filemark when a device is closed right after a write; Windows does
        // not. Flushing first keeps the tape as reel left it.
        if self.wrote_last {
            let _ = self.mtio.op(MtOp::Weof, 0);
        }
    }
}
