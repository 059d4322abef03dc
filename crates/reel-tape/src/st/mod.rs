//! Real drives: the Linux st driver (`/dev/nst0`) through mtio.
//!
//! [`StDrive`] gives a st drive the Win32 tape semantics (see [`drive`] for the mapping of
//! every operation, errno and status bit). The calls it makes go through the [`Mtio`] seam:
//! [`DeviceMtio`] issues the real ioctls on a local device, the rmt client carries them to
//! a remote drive, and the unit tests script them.
//!
//! Open the no-rewind device (`/dev/nst0`): closing the rewinding one (`/dev/st0`) rewinds
//! the tape behind reel's back. st should have `MT_ST_SCSI2LOGICAL` set (`mt-st -f
//! /dev/nst0 stsetoptions scsi2logical`) so positions count objects, and
//! `MT_ST_CAN_PARTITIONS` for partitions.

pub mod drive;
pub mod mtio;

#[cfg(test)]
mod tests;

pub use drive::{
    Doing, INTERPRETED_ERRNOS, INTERPRETED_STATUS_BITS, ISSUED_OPS, StDrive, classify,
};
pub use mtio::{DeviceMtio, Errno, MtOp, MtStatus, Mtio, gmt};

use std::path::Path;

use crate::error::{Result, TapeError};

/// Opens a local st device as a drive.
pub fn open_device(path: &Path) -> Result<StDrive<DeviceMtio>> {
    let mtio = DeviceMtio::open(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => {
            TapeError::InvalidParameter(format!("{}: no such tape device", path.display()))
        }
        Some(libc::EBUSY) => {
            TapeError::NotReady(format!("{} is in use by another program", path.display()))
        }
        Some(libc::ENOMEDIUM) => TapeError::NoMediaInDrive,
        _ => TapeError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    })?;
    StDrive::open(mtio)
}
