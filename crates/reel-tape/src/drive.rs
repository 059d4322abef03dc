//! The `TapeDrive` trait: the nine Win32 tape functions plus reads and writes.
//!
//! | Windows | here |
//! |---|---|
//! | ReadFile / WriteFile | [`TapeDrive::read`] / [`TapeDrive::write`] |
//! | CreateTapePartition | [`TapeDrive::create_partitions`] |
//! | EraseTape | [`TapeDrive::erase`] |
//! | GetTapeParameters | [`TapeDrive::drive_parameters`], [`TapeDrive::media_parameters`] |
//! | GetTapePosition | [`TapeDrive::position`] |
//! | GetTapeStatus | [`TapeDrive::status`] |
//! | PrepareTape | [`TapeDrive::prepare`] |
//! | SetTapeParameters | [`TapeDrive::set_drive_parameters`], [`TapeDrive::set_media_parameters`] |
//! | SetTapePosition | [`TapeDrive::set_position`] |
//! | WriteTapemark | [`TapeDrive::write_marks`] |

use serde::Serialize;

use crate::error::{Result, TapeError};

/// The largest record any of reel's drives reads or writes: the 24-bit transfer length of
/// SCSI READ and WRITE, 16 MiB - 1 (a virtual cartridge and an rmt request hold the same).
/// One drive may take less: [`TapeDrive::max_record_len`] says.
pub const MAX_TRANSFER_LEN: usize = 0x00FF_FFFF;

/// Which position [`TapeDrive::position`] reports (GetTapePosition's `dwPositionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionKind {
    /// Objects counted across the whole cartridge (TAPE_ABSOLUTE_POSITION).
    Absolute,
    /// Objects counted from the beginning of the current partition (TAPE_LOGICAL_POSITION).
    Logical,
}

/// A position: partition number (1-based, as in Win32) and object offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Position {
    pub partition: u32,
    pub offset: u64,
}

/// How to move the tape (SetTapePosition's `dwPositionMethod` with its arguments).
///
/// `partition` 0 means the current partition; 1..n name a partition, as in Win32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// TAPE_ABSOLUTE_BLOCK: object number across the cartridge.
    AbsoluteBlock(u64),
    /// TAPE_LOGICAL_BLOCK: object number within a partition.
    LogicalBlock { partition: u32, block: u64 },
    /// TAPE_REWIND: beginning of the current partition.
    Rewind,
    /// TAPE_SPACE_END_OF_DATA: end of data of a partition.
    EndOfData { partition: u32 },
    /// TAPE_SPACE_FILEMARKS: forward (n > 0) or backward (n < 0) over n filemarks.
    SpaceFilemarks(i64),
    /// TAPE_SPACE_RELATIVE_BLOCKS: forward or backward over n objects.
    SpaceRelativeBlocks(i64),
    /// TAPE_SPACE_SEQUENTIAL_FMKS: to the first run of n consecutive filemarks.
    SpaceSequentialFilemarks(i64),
    /// TAPE_SPACE_SETMARKS: forward or backward over n setmarks.
    SpaceSetmarks(i64),
    /// TAPE_SPACE_SEQUENTIAL_SMKS: to the first run of n consecutive setmarks.
    SpaceSequentialSetmarks(i64),
}

/// Kind of mark for [`TapeDrive::write_marks`] (WriteTapemark's `dwTapemarkType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkKind {
    Filemarks,
    Setmarks,
    ShortFilemarks,
    LongFilemarks,
}

/// EraseTape's `dwEraseType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseKind {
    /// TAPE_ERASE_SHORT: write an end-of-data marker at the current position.
    Short,
    /// TAPE_ERASE_LONG: erase from the current position to the end of the partition.
    Long,
}

/// PrepareTape's `dwOperation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrepareOp {
    Load,
    Unload,
    Lock,
    Unlock,
    Tension,
    Format,
}

/// CreateTapePartition's `dwPartitionMethod`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionMethod {
    /// TAPE_FIXED_PARTITIONS: the drive's fixed layout (count and size ignored).
    Fixed,
    /// TAPE_SELECT_PARTITIONS: `count` partitions of sizes the drive chooses.
    Select,
    /// TAPE_INITIATOR_PARTITIONS: `count` partitions, all but the last of `size_mb` megabytes.
    Initiator,
}

/// CreateTapePartition's three arguments, checked: how, how many, and how large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionLayout {
    pub method: PartitionMethod,
    /// Number of partitions (ignored by the fixed method).
    pub count: u32,
    /// Size in megabytes (MiB) of all but the last partition (initiator method only).
    pub size_mb: u32,
}

impl PartitionLayout {
    /// TAPE_FIXED_PARTITIONS: the drive's own layout.
    pub fn fixed() -> PartitionLayout {
        PartitionLayout {
            method: PartitionMethod::Fixed,
            count: 0,
            size_mb: 0,
        }
    }

    /// TAPE_SELECT_PARTITIONS: `count` partitions of sizes the drive chooses.
    pub fn select(count: u32) -> PartitionLayout {
        PartitionLayout {
            method: PartitionMethod::Select,
            count,
            size_mb: 0,
        }
    }

    /// TAPE_INITIATOR_PARTITIONS: one partition of each of `sizes` (in bytes), then one with
    /// the rest. CreateTapePartition takes one size in megabytes, so every size must be the
    /// same whole, non-zero number of MiB.
    pub fn initiator(sizes: &[u64]) -> Result<PartitionLayout> {
        let mut size_mb = None;
        for &bytes in sizes {
            if bytes % (1 << 20) != 0 || bytes == 0 {
                return Err(TapeError::InvalidParameter(format!(
                    "partition size {bytes} bytes is not a whole number of MiB (CreateTapePartition takes megabytes)"
                )));
            }
            let mb = u32::try_from(bytes >> 20).map_err(|_| {
                TapeError::InvalidParameter(format!("partition size {bytes} bytes is too large"))
            })?;
            if size_mb.is_some_and(|m| m != mb) {
                return Err(TapeError::InvalidParameter(
                    "the initiator partition sizes must all be equal: CreateTapePartition makes all but the last partition the same size".into(),
                ));
            }
            size_mb = Some(mb);
        }
        let count = u32::try_from(sizes.len())
            .ok()
            .and_then(|n| n.checked_add(1))
            .ok_or_else(|| {
                TapeError::InvalidParameter(format!("{} partitions are too many", sizes.len()))
            })?;
        Ok(PartitionLayout {
            method: PartitionMethod::Initiator,
            count,
            size_mb: size_mb.unwrap_or(0),
        })
    }
}

/// GetTapeParameters(GET_TAPE_DRIVE_INFORMATION): TAPE_GET_DRIVE_PARAMETERS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriveParameters {
    pub ecc: bool,
    pub compression: bool,
    pub data_padding: bool,
    pub report_setmarks: bool,
    pub default_block_size: u32,
    pub maximum_block_size: u32,
    pub minimum_block_size: u32,
    pub maximum_partition_count: u32,
    /// `TAPE_DRIVE_*` capability bits of the low word (winnt.h values).
    pub features_low: u32,
    /// `TAPE_DRIVE_*` capability bits of the high word, without the high-features flag bit.
    pub features_high: u32,
    pub eot_warning_zone_size: u32,
}

/// GetTapeParameters(GET_TAPE_MEDIA_INFORMATION): TAPE_GET_MEDIA_PARAMETERS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MediaParameters {
    pub capacity: u64,
    pub remaining: u64,
    /// Block size in bytes; 0 means variable-length records.
    pub block_size: u32,
    pub partition_count: u32,
    pub write_protected: bool,
}

/// SetTapeParameters(SET_TAPE_DRIVE_INFORMATION): TAPE_SET_DRIVE_PARAMETERS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDriveParameters {
    pub ecc: bool,
    pub compression: bool,
    pub data_padding: bool,
    pub report_setmarks: bool,
    pub eot_warning_zone_size: u32,
}

/// One open tape drive with the observable semantics of the Win32 tape functions.
///
/// Positions count objects (records and marks). Reads and writes move one record (variable
/// block mode) or whole blocks (fixed block mode). Every backend behaves the same; an
/// operation a backend cannot perform fails with [`crate::TapeError::NotSupported`].
pub trait TapeDrive: Send {
    /// A short name of the drive and medium for messages, e.g. `vtape:tape-0001`.
    fn describe(&self) -> String;

    /// The barcode of the cartridge in the drive, when the drive knows it: a virtual
    /// cartridge's name. `None` for a real or remote drive, where the device names the drive
    /// and not the tape (a tape there gets a name of its own when it is labelled).
    fn cartridge_name(&self) -> Option<String>;

    /// The largest record, in bytes, this drive reads or writes (also its
    /// [`DriveParameters::maximum_block_size`], known here without asking the drive).
    fn max_record_len(&self) -> usize;

    /// What opening the medium had to repair or found missing, one sentence each, for the
    /// user to see (a virtual cartridge cut after a crash, or shorter than its index says).
    fn open_notes(&self) -> Vec<String> {
        Vec::new()
    }

    /// ReadFile: one record (variable mode) or whole blocks (fixed mode) into `buf`.
    /// Returns the number of bytes read. Marks and end of data come back as errors
    /// (`FilemarkDetected`, `SetmarkDetected`, `NoDataDetected`).
    fn read(&mut self, buf: &mut [u8]) -> Result<usize>;

    /// WriteFile: one record (variable mode) or whole blocks (fixed mode). `EarlyWarning`
    /// means the data was written and the medium is nearly full.
    fn write(&mut self, buf: &[u8]) -> Result<()>;

    /// WriteTapemark.
    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> Result<()>;

    /// SetTapePosition.
    fn set_position(&mut self, to: SeekTo, immediate: bool) -> Result<()>;

    /// GetTapePosition.
    fn position(&mut self, kind: PositionKind) -> Result<Position>;

    /// GetTapeStatus: `Ok` when the drive is ready, else the pending condition.
    fn status(&mut self) -> Result<()>;

    /// PrepareTape.
    fn prepare(&mut self, op: PrepareOp, immediate: bool) -> Result<()>;

    /// EraseTape.
    fn erase(&mut self, kind: EraseKind, immediate: bool) -> Result<()>;

    /// CreateTapePartition. Erases the cartridge.
    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<()>;

    /// GetTapeParameters(GET_TAPE_DRIVE_INFORMATION).
    fn drive_parameters(&mut self) -> Result<DriveParameters>;

    /// GetTapeParameters(GET_TAPE_MEDIA_INFORMATION).
    fn media_parameters(&mut self) -> Result<MediaParameters>;

    /// SetTapeParameters(SET_TAPE_DRIVE_INFORMATION).
    fn set_drive_parameters(&mut self, params: &SetDriveParameters) -> Result<()>;

    /// SetTapeParameters(SET_TAPE_MEDIA_INFORMATION): block size, 0 for variable.
    fn set_media_parameters(&mut self, block_size: u32) -> Result<()>;

    /// Make everything written so far durable (the host-side flush of a buffered drive).
    fn flush(&mut self) -> Result<()>;

    /// TapeAlert flags, MAM attributes and whether cleaning is due (SCSI drives);
    /// NOT_SUPPORTED for a drive that reports no health.
    fn health(&mut self) -> Result<crate::health::DriveHealth> {
        Err(crate::error::TapeError::NotSupported(format!(
            "{} reports no drive health (TapeAlert and MAM are read from SCSI drives)",
            self.describe()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn initiator_sizes_become_one_size_in_megabytes_and_a_count() {
        assert_eq!(
            PartitionLayout::initiator(&[8 * MIB, 8 * MIB]).unwrap(),
            PartitionLayout {
                method: PartitionMethod::Initiator,
                count: 3,
                size_mb: 8
            }
        );
        assert_eq!(
            PartitionLayout::initiator(&[]).unwrap(),
            PartitionLayout {
                method: PartitionMethod::Initiator,
                count: 1,
                size_mb: 0
            }
        );
    }

    #[test]
    fn initiator_sizes_that_createtapepartition_cannot_take_are_invalid_parameters() {
        for sizes in [
            &[8][..],                           // bytes, not MiB
            &[MIB + 1],                         // not whole MiB
            &[0],                               // empty partition
            &[8 * MIB, 16 * MIB],               // one size only
            &[(u64::from(u32::MAX) + 1) * MIB], // more megabytes than a DWORD holds
        ] {
            let e = PartitionLayout::initiator(sizes).unwrap_err();
            assert!(
                matches!(e, TapeError::InvalidParameter(_)),
                "{sizes:?}: {e}"
            );
        }
        let e = PartitionLayout::initiator(&[MIB + 1])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1048577 bytes is not a whole number of MiB"),
            "{e}"
        );
    }
}
