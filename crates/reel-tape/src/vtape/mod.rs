//! The virtual cartridge: the embedded default backend.
//!
//! A cartridge is a directory `NAME.vtape/` holding `cartridge.toml` (its description:
//! id, barcode, capacity, `partition_sizes`, `write_protected`), one SIMH tape image per
//! partition (`p1.tap`, …, up to [`MAX_PARTITIONS`]) and a sidecar index per partition
//! (`p1.idx`) that makes every seek one lookup, with its marks file (`p1.marks`) that makes
//! opening one read instead of a read of the whole index. See [`crate::simh`] for the image
//! format and the `partition` and `marks_file` modules for the index and crash recovery.
//! CreateTapePartition rewrites `partition_sizes` (erasing the cartridge); the files of a
//! partition that no longer exists are removed.
//!
//! # Drive state between processes
//!
//! Every `reel` command is a new process, but a drive keeps its settings, its block size,
//! whether the tape is unloaded or locked, and (for a no-rewind open) its position. They
//! are kept in `drive.toml` ([`DRIVE_STATE_FILE`], a [`StateFile`]):
//!
//! - for a library, in the library directory (`library/drive.toml`); the cartridge in the
//!   drive is the one `library.toml` names (`loaded`);
//! - for a cartridge used on its own (`--tape ./x.vtape`, `--tape vtape:NAME`), in the
//!   cartridge directory.
//!
//! ```toml
//! unloaded = false
//! locked = false
//! [settings]
//! ecc = true
//! compression = true
//! data_padding = false
//! report_setmarks = false
//! eot_warning_zone = 67108864
//! block_size = 0
//! [position]            # only written by no-rewind opens (`reel tape ...`)
//! cartridge = "6f1c…"   # the position belongs to this cartridge id
//! partition = 1
//! block = 42
//! ```
//!
//! The file is replaced atomically when a setting changes and when the drive is closed.
//! A position for another cartridge, or beyond the end of data (another program shortened
//! the tape), is not trusted: the drive starts at the beginning or at the end of data.
//! A damaged file is reported with its path (delete it to reset the drive). A pending
//! MEDIA_CHANGED is not kept: opening the drive absorbs it, as opening `/dev/nst0` does.
//! [`VirtualDrive::open`] uses no state file at all (default settings, at the beginning).

mod cartridge;
mod drive;
mod marks_file;
mod partition;
pub mod store;

pub use cartridge::{
    CARTRIDGE_FILE, CARTRIDGE_FORMAT, Cartridge, CartridgeConfig, CartridgeLock, MIN_CAPACITY,
    MIN_PARTITION_SIZE,
};
pub use drive::{
    COMPRESSION_LEVEL, DEFAULT_BLOCK_SIZE, DRIVE_STATE_FILE, DriveSettings, MAX_BLOCK_SIZE,
    MAX_PARTITIONS, MIN_BLOCK_SIZE, PositionDetail, StateFile, VirtualDrive, default_eot_zone,
};
