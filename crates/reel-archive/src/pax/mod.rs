//! POSIX.1-2001 pax archives: a streaming writer and a streaming reader.

pub mod facts;
pub mod gnu;
pub mod header;
mod member;
pub mod read;
pub mod sparse;
pub mod write;

pub use read::{
    Damage, DataReader, MAX_GLOBALS_LEN, MAX_META_LEN, Next, NextVolume, PaxReader, ReadEntry,
    parse_pax_records,
};
pub use write::{CopyOutcome, PaxWriter, pax_record};
