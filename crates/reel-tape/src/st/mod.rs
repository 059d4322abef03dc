//! Real drives: the Linux st driver (`/dev/nst0`) through mtio.
//!
//! [`StDrive`] gives a st drive the Win32 tape semantics (see [`drive`] for the mapping of
//! every operation, errno and status bit). The calls it makes go through the [`Mtio`] seam:
//! [`DeviceMtio`] issues the real ioctls on a local device, the rmt client carries them to
//! a remote drive, and the unit tests script them.
//!
//! Open the no-rewind device (`/dev/nst0`): closing the rewinding one (`/dev/st0`) rewinds
//! the tape behind reel's back. Opening a local drive sets the st options reel's
//! positions rely on (`MT_ST_SCSI2LOGICAL` so positions count objects, `MT_ST_CAN_BSR`,
//! `MT_ST_CAN_PARTITIONS`) and clears `MT_ST_TWO_FM` and `MT_ST_SYSV`
//! ([`StDrive::set_driver_options`]); where st refuses (it allows root only), opening
//! says what to run. A fixed-block read of a tape whose records are another size (a
//! foreign tape) switches the drive to variable blocks and reads the record again.

pub mod drive;
pub mod mtio;

#[cfg(test)]
mod tests;

pub use drive::{
    Doing, INTERPRETED_ERRNOS, INTERPRETED_STATUS_BITS, ISSUED_OPS, StDrive, classify, st_options,
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
    let mut drive = StDrive::open(mtio)?;
    drive.set_driver_options();
    Ok(drive)
}
