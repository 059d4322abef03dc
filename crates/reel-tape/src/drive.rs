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

use crate::error::Result;

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
