//! One model of a file — what it is, its metadata, its content — captured safely from disk
//! and re-created safely under a restore root.
//!
//! This crate is for the file side of backup and restore: [`capture`] reads a file's
//! metadata without following symlinks, [`RestoreRoot`] re-creates files, directories,
//! links and special files under a target directory without ever writing through a symlink
//! or outside the target, with temp-name-then-rename for every file and metadata applied in
//! the safe order (content, owner, mode, times last).
//!
//! It is not for archive formats (pax is `reel-archive`'s) or tapes (`reel-tape`).

pub mod apply;
pub mod error;
pub mod meta;
pub mod names;

pub use apply::{Existing, Outcome, PendingFile, RelPath, RestoreRoot, check_path};
pub use error::{Refusal, Result, StreamError};
pub use meta::{FileKind, FileMeta, Timestamp, capture};
pub use names::NameCache;
