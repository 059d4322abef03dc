//! One model of a file — what it is, its metadata, its content — captured safely from disk,
//! re-created safely under a restore root, and encoded as Windows backup streams.
//!
//! This crate is for the file side of backup and restore:
//! - [`capture`] reads a file's metadata without following symlinks: stat with nanosecond
//!   times, extended attributes ([`xattrs`]), POSIX ACLs ([`acl`]), chattr flags
//!   ([`flags`]) and the data extents of sparse files ([`sparse`]);
//! - [`RestoreRoot`] re-creates files, directories, links and special files under a target
//!   directory without ever writing through a symlink or outside the target, with
//!   temp-name-then-rename for every file and metadata applied in a safe order (see
//!   [`apply`]);
//! - [`stream`] is the Win32 backup stream encoding of the same model (`BackupRead`,
//!   `BackupWrite`, `BackupSeek`): WIN32_STREAM_ID headers, EAs with WSL's `$LX*` entries,
//!   reparse data for links and special files, sparse blocks.
//!
//! It is not for archive formats (pax is `reel-archive`'s) or tapes (`reel-tape`).

pub mod acl;
pub mod apply;
pub mod error;
pub mod flags;
pub mod meta;
pub mod names;
pub mod sparse;
pub mod stream;
pub mod xattrs;

pub use acl::{Acl, AclEntry, AclTag};
pub use apply::{Committed, Existing, Outcome, PendingFile, RelPath, RestoreRoot, check_path};
pub use error::{Refusal, Result, StreamError};
pub use meta::{
    Captured, FileKind, FileMeta, Timestamp, capture, capture_open, capture_open_at,
    capture_reporting, capture_stat,
};
pub use names::NameCache;
pub use reel_error_class::ErrorClass;
pub use sparse::{ContentHasher, ContentReader, Extent, SparseMap};
pub use xattrs::Xattr;
