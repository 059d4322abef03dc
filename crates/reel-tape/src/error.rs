//! Errors with the Win32 tape error codes.
//!
//! Every failure a drive reports maps onto one Win32 error code (the numeric values of
//! `winerror.h`), so programs written against the Windows tape functions see the same
//! conditions. [`TapeError::code`] returns the number; `Display` gives a sentence that names
//! the thing and, where it helps, what to do next.

use std::io;
use std::path::PathBuf;

use reel_error_class::ErrorClass;

/// Win32 error codes used by the tape API (values from `winerror.h`).
pub mod code {
    pub const ERROR_WRITE_PROTECT: u32 = 19;
    pub const ERROR_NOT_READY: u32 = 21;
    pub const ERROR_CRC: u32 = 23;
    pub const ERROR_NOT_SUPPORTED: u32 = 50;
    pub const ERROR_INVALID_PARAMETER: u32 = 87;
    pub const ERROR_MORE_DATA: u32 = 234;
    pub const ERROR_END_OF_MEDIA: u32 = 1100;
    pub const ERROR_FILEMARK_DETECTED: u32 = 1101;
    pub const ERROR_BEGINNING_OF_MEDIA: u32 = 1102;
    pub const ERROR_SETMARK_DETECTED: u32 = 1103;
    pub const ERROR_NO_DATA_DETECTED: u32 = 1104;
    pub const ERROR_PARTITION_FAILURE: u32 = 1105;
    pub const ERROR_INVALID_BLOCK_LENGTH: u32 = 1106;
    pub const ERROR_DEVICE_NOT_PARTITIONED: u32 = 1107;
    pub const ERROR_UNABLE_TO_LOCK_MEDIA: u32 = 1108;
    pub const ERROR_UNABLE_TO_UNLOAD_MEDIA: u32 = 1109;
    pub const ERROR_MEDIA_CHANGED: u32 = 1110;
    pub const ERROR_BUS_RESET: u32 = 1111;
    pub const ERROR_NO_MEDIA_IN_DRIVE: u32 = 1112;
    pub const ERROR_IO_DEVICE: u32 = 1117;
    pub const ERROR_EOM_OVERFLOW: u32 = 1129;
    pub const ERROR_DEVICE_REQUIRES_CLEANING: u32 = 1165;
}

/// A tape condition or failure. Each variant carries one Win32 code ([`TapeError::code`]).
#[derive(Debug, thiserror::Error)]
pub enum TapeError {
    /// Physical end of the medium: the write did not fit and nothing was written.
    #[error("end of media: the record does not fit on the cartridge (nothing was written)")]
    EndOfMedia,
    /// The write completed but entered the early-warning zone: write closing marks and
    /// change volumes. Same Win32 code as [`TapeError::EndOfMedia`].
    #[error("early warning: the cartridge is nearly full (the write completed)")]
    EarlyWarning,
    #[error("filemark detected")]
    FilemarkDetected,
    #[error("beginning of media reached")]
    BeginningOfMedia,
    #[error("setmark detected")]
    SetmarkDetected,
    #[error("no data detected: end of recorded data")]
    NoDataDetected,
    #[error("partition failure: {0}")]
    PartitionFailure(String),
    #[error("invalid block length: {0}")]
    InvalidBlockLength(String),
    #[error("the cartridge is not partitioned")]
    DeviceNotPartitioned,
    #[error("unable to lock the media")]
    UnableToLockMedia,
    #[error("unable to unload the media: it is locked (unlock it first)")]
    UnableToUnloadMedia,
    #[error("the media in the drive has changed")]
    MediaChanged,
    #[error("bus reset")]
    BusReset,
    #[error("no media in drive (load a cartridge first)")]
    NoMediaInDrive,
    #[error("end of media overflow: {0}")]
    EomOverflow(String),
    #[error("the drive requires cleaning")]
    DeviceRequiresCleaning,
    #[error("the cartridge is write-protected: {0}")]
    WriteProtect(String),
    #[error("the drive is not ready: {0}")]
    NotReady(String),
    /// Data on the medium failed its check (a damaged record or tape image).
    #[error("data error (cyclic redundancy check): {0}")]
    Crc(String),
    #[error("not supported: {0}")]
    NotSupported(String),
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The record was longer than the buffer: the buffer holds its first part and the tape
    /// has moved past the record.
    #[error("more data: the record has {record_len} bytes, the buffer took {copied}")]
    MoreData { record_len: usize, copied: usize },
    /// A device-level I/O failure (for the virtual cartridge: the host file system).
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A cartridge description or tape image that cannot be used as it is.
    #[error("invalid cartridge {}: {reason}", path.display())]
    BadCartridge { path: PathBuf, reason: String },
}

impl TapeError {
    /// The Win32 error code of this condition.
    pub fn code(&self) -> u32 {
        use code::*;
        match self {
            TapeError::EndOfMedia | TapeError::EarlyWarning => ERROR_END_OF_MEDIA,
            TapeError::FilemarkDetected => ERROR_FILEMARK_DETECTED,
            TapeError::BeginningOfMedia => ERROR_BEGINNING_OF_MEDIA,
            TapeError::SetmarkDetected => ERROR_SETMARK_DETECTED,
            TapeError::NoDataDetected => ERROR_NO_DATA_DETECTED,
            TapeError::PartitionFailure(_) => ERROR_PARTITION_FAILURE,
            TapeError::InvalidBlockLength(_) => ERROR_INVALID_BLOCK_LENGTH,
            TapeError::DeviceNotPartitioned => ERROR_DEVICE_NOT_PARTITIONED,
            TapeError::UnableToLockMedia => ERROR_UNABLE_TO_LOCK_MEDIA,
            TapeError::UnableToUnloadMedia => ERROR_UNABLE_TO_UNLOAD_MEDIA,
            TapeError::MediaChanged => ERROR_MEDIA_CHANGED,
            TapeError::BusReset => ERROR_BUS_RESET,
            TapeError::NoMediaInDrive => ERROR_NO_MEDIA_IN_DRIVE,
            TapeError::EomOverflow(_) => ERROR_EOM_OVERFLOW,
            TapeError::DeviceRequiresCleaning => ERROR_DEVICE_REQUIRES_CLEANING,
            TapeError::WriteProtect(_) => ERROR_WRITE_PROTECT,
            TapeError::NotReady(_) => ERROR_NOT_READY,
            TapeError::Crc(_) => ERROR_CRC,
            TapeError::NotSupported(_) => ERROR_NOT_SUPPORTED,
            TapeError::InvalidParameter(_) => ERROR_INVALID_PARAMETER,
            TapeError::MoreData { .. } => ERROR_MORE_DATA,
            TapeError::Io { .. } => ERROR_IO_DEVICE,
            TapeError::BadCartridge { .. } => ERROR_NOT_READY,
        }
    }

    /// The Win32 symbolic name of [`TapeError::code`], e.g. `ERROR_FILEMARK_DETECTED`.
    pub fn code_name(&self) -> &'static str {
        use code::*;
        match self.code() {
            ERROR_WRITE_PROTECT => "ERROR_WRITE_PROTECT",
            ERROR_NOT_READY => "ERROR_NOT_READY",
            ERROR_CRC => "ERROR_CRC",
            ERROR_NOT_SUPPORTED => "ERROR_NOT_SUPPORTED",
            ERROR_INVALID_PARAMETER => "ERROR_INVALID_PARAMETER",
            ERROR_MORE_DATA => "ERROR_MORE_DATA",
            ERROR_END_OF_MEDIA => "ERROR_END_OF_MEDIA",
            ERROR_FILEMARK_DETECTED => "ERROR_FILEMARK_DETECTED",
            ERROR_BEGINNING_OF_MEDIA => "ERROR_BEGINNING_OF_MEDIA",
            ERROR_SETMARK_DETECTED => "ERROR_SETMARK_DETECTED",
            ERROR_NO_DATA_DETECTED => "ERROR_NO_DATA_DETECTED",
            ERROR_PARTITION_FAILURE => "ERROR_PARTITION_FAILURE",
            ERROR_INVALID_BLOCK_LENGTH => "ERROR_INVALID_BLOCK_LENGTH",
            ERROR_DEVICE_NOT_PARTITIONED => "ERROR_DEVICE_NOT_PARTITIONED",
            ERROR_UNABLE_TO_LOCK_MEDIA => "ERROR_UNABLE_TO_LOCK_MEDIA",
            ERROR_UNABLE_TO_UNLOAD_MEDIA => "ERROR_UNABLE_TO_UNLOAD_MEDIA",
            ERROR_MEDIA_CHANGED => "ERROR_MEDIA_CHANGED",
            ERROR_BUS_RESET => "ERROR_BUS_RESET",
            ERROR_NO_MEDIA_IN_DRIVE => "ERROR_NO_MEDIA_IN_DRIVE",
            ERROR_IO_DEVICE => "ERROR_IO_DEVICE",
            ERROR_EOM_OVERFLOW => "ERROR_EOM_OVERFLOW",
            ERROR_DEVICE_REQUIRES_CLEANING => "ERROR_DEVICE_REQUIRES_CLEANING",
            _ => "ERROR_UNKNOWN",
        }
    }

    /// The class of this condition: a failed data check is integrity, a request the drive
    /// cannot take (a bad parameter, a cartridge description or image that cannot be used)
    /// is usage, everything else is the medium's or the device's.
    pub fn class(&self) -> ErrorClass {
        match self {
            TapeError::Crc(_) => ErrorClass::Integrity,
            TapeError::InvalidParameter(_) | TapeError::BadCartridge { .. } => ErrorClass::Usage,
            _ => ErrorClass::Media,
        }
    }

    /// True for the conditions a reader meets in normal operation (marks, end of data),
    /// as opposed to failures.
    pub fn is_mark_or_end(&self) -> bool {
        matches!(
            self,
            TapeError::FilemarkDetected | TapeError::SetmarkDetected | TapeError::NoDataDetected
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        TapeError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = TapeError> = std::result::Result<T, E>;
