//! Backup sets on tape: what reel writes on a volume and how it reads it back.
//!
//! This crate is for the on-tape format (see `spec/archive.md`): the volume [`label`], one
//! POSIX pax archive per set written in fixed records ([`pax`], [`records`]), the set
//! [`index`] written after each set, and the [`volume`] layout that ties them together
//! (`[label] FM [set data] FM [set index] FM …`), with the [`part`] marker that stands in for
//! the index after a part of a set continued on another volume. A set's data file, dumped
//! from the tape, is an archive GNU tar and bsdtar read.
//!
//! It is not for walking file systems or restoring files (`reel-stream`, `reel-core`), nor
//! for driving tapes (`reel-tape`); it only needs a [`reel_tape::TapeDrive`].

pub mod entry;
pub mod error;
pub mod index;
pub mod label;
pub mod part;
pub mod pax;
pub mod records;
pub mod set;
pub mod volume;

pub use entry::Entry;
pub use error::{ArchiveError, Result};
pub use index::{
    EntryKind, HashScheme, IndexEntry, IndexReader, MetaDigest, SetInfo, SetMode, SetPart,
};
pub use label::VolumeLabel;
pub use part::PartMarker;
pub use reel_error_class::ErrorClass;
pub use set::{
    Added, DEFAULT_BLOCK_SIZE, DataWritten, SetWriter, open_data, open_index, write_index,
};
pub use volume::{
    SetOnTape, SetState, VolumeMap, VolumeState, map_volume, map_volume_knowing, read_state,
    write_label,
};
