//! Tape drives with the semantics of the Windows tape API.
//!
//! This crate is for driving tapes: the [`TapeDrive`] trait (the nine Win32 tape functions
//! plus reads and writes, with Windows' error codes in [`TapeError`]) and its backends:
//! the virtual cartridge ([`vtape`], SIMH tape images with a sidecar index, crash-safe),
//! a [`library`] of cartridges that serves as the default drive, real drives through the
//! Linux st driver ([`st`]), SCSI drives spoken to directly over SG_IO or iSCSI ([`scsi`],
//! on `reel-scsi`) and remote drives over the rmt protocol ([`rmt`], which also holds the
//! rmt server behind `reel rmt`). [`Target`] turns a `--tape` argument into an open drive.
//! [`MediaChanger`] is a tape library's robot (SCSI changers and the virtual library);
//! [`health`] is what a drive says about itself (TapeAlert, MAM).
//!
//! [`conformance`] holds the semantics checks every backend runs.
//!
//! It is not for what goes on the tape: labels, archives and indexes are `reel-archive`'s.
//!
//! ```no_run
//! use reel_tape::{MarkKind, SeekTo, TapeDrive, Target};
//! let mut drive = Target::parse(Some("./lib/tape-0001.vtape"))?.open()?;
//! drive.set_position(SeekTo::EndOfData { partition: 0 }, false)?;
//! drive.write(b"a record")?;
//! drive.write_marks(MarkKind::Filemarks, 1, false)?;
//! # Ok::<(), reel_tape::TapeError>(())
//! ```

pub mod changer;
pub mod conformance;
pub mod drive;
pub mod error;
pub mod features;
pub mod health;
pub mod library;
pub mod library_changer;
pub mod rmt;
pub mod scsi;
pub mod simh;
pub mod st;
pub mod target;
pub mod vtape;

pub use changer::{Inventory, MediaChanger, Place};
pub use drive::{
    DriveParameters, EraseKind, MAX_TRANSFER_LEN, MarkKind, MediaParameters, PartitionLayout,
    PartitionMethod, Position, PositionKind, PrepareOp, SeekTo, SetDriveParameters, TapeDrive,
};
pub use error::{Result, TapeError};
pub use library::{CartridgeInfo, Library, reel_home};
pub use reel_error_class::ErrorClass;
pub use target::{ScsiTarget, Target};
