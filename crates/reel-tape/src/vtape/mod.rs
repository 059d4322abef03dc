//! The virtual cartridge: the embedded default backend.
//!
//! A cartridge is a directory `NAME.vtape/` holding `cartridge.toml` (its description), one
//! SIMH tape image per partition (`p1.tap`, …) and a sidecar index per partition (`p1.idx`)
//! that makes every seek one lookup. See [`crate::simh`] for the image format and
//! [`partition`] for the index and crash recovery.

mod cartridge;
mod drive;
mod partition;
pub mod store;

pub use cartridge::{
    CARTRIDGE_FILE, CARTRIDGE_FORMAT, Cartridge, CartridgeConfig, CartridgeLock, MIN_CAPACITY,
};
pub use drive::{
    DEFAULT_BLOCK_SIZE, DriveSettings, MAX_BLOCK_SIZE, MAX_PARTITIONS, MIN_BLOCK_SIZE,
    VirtualDrive, default_eot_zone,
};
