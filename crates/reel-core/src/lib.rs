//! The backup program behind the `reel` command, as a library.
//!
//! This crate is for the jobs — [`backup::backup`], [`restore::restore`],
//! [`list::list_sets`] / [`list::list_entries`] — which wire the file side (`reel-stream`),
//! the on-tape format (`reel-archive`) and the drive (`reel-tape`) together, report progress
//! through [`Progress`] and return reports that say what happened to every file. The CLI
//! only parses arguments and prints these reports.
//!
//! It is not for formats or devices: those belong to the crates it drives.

pub mod backup;
pub mod changer;
pub mod efs;
pub mod error;
pub mod foreign;
pub mod list;
pub mod manual;
mod plan;
pub mod progress;
pub mod rebuild;
pub mod restore;
mod scan;
pub mod select;
pub mod sets;
pub mod sis;
mod source;
pub mod span;
pub mod tapes;
pub mod verify;

pub use backup::{BackupOptions, BackupReport, backup};
pub use changer::{LibraryChanger, NoChanger, VolumeChanger};
pub use error::{CoreError, Result};
pub use list::{SetListing, VolumeListing, list_entries, list_sets};
pub use manual::{ManualChanger, NoOperator, Operator};
pub use progress::{NoProgress, Progress};
pub use reel_error_class::ErrorClass;
pub use restore::{RestoreOptions, RestoreReport, Rules, apply_member, restore};
pub use select::Selector;
pub use tapes::Tapes;
pub use verify::{VerifyOptions, VerifyReport, verify};
