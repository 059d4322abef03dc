//! Srdelayed for Linux: delayed move, delete and short-name operations, carried out early in
//! the next boot.
//!
//! A system-state restore cannot always replace the files the running system holds. Windows
//! solves this with `srdelayed.exe` and a UTF-16 *operation file* listing moves, deletes and
//! short-name changes; this crate reads and writes **the same file, byte for byte**, carries
//! it out on Linux, and registers the run with systemd.
//!
//! This crate is for:
//! - the file format: [`parse`] and [`encode`] ([`format`](mod@format) documents the layout), with
//!   errors that name the byte offset and never a panic;
//! - editing a file safely: [`OperationFile`] (atomic appends that refuse duplicates and
//!   wrong ordering) and [`StagedReplacement`] for the restore path;
//! - carrying it out: [`run`], which writes each record's `SC=XXXXXXXX` status in place,
//!   flushed per record, survives being killed at any point, and writes the overall status
//!   file ([`StatusFile`]);
//! - Windows paths: [`PathMap`] maps `C:\…` and `Volume{…}\…` onto mount points;
//! - Win32 codes: [`win32`] maps `errno` onto them (table there);
//! - boot registration: [`systemd::register`].
//!
//! It is not for deciding *what* to schedule (that is `reel restore`), and it does not
//! touch the tape, archives or file metadata.
//!
//! # Scheduling a replacement from a restore
//!
//! ```no_run
//! use std::io::Write;
//! use std::path::Path;
//! use reel_delayed::{OperationFile, StagedReplacement, is_busy};
//!
//! # fn restore() -> Result<(), Box<dyn std::error::Error>> {
//! let target = Path::new("/usr/lib/libbusy.so.1");
//! let content: &[u8] = b"new library";
//! if let Err(e) = std::fs::write(target, content) {
//!     if is_busy(&e) {
//!         let mut ops = OperationFile::open_or_create("/var/lib/reel/restore-ops")?;
//!         let mut staged = StagedReplacement::create(target)?; // next to the target
//!         staged.file().write_all(content)?;
//!         let record = staged.schedule(&mut ops)?; // fsync, then MoveFile staged -> target
//!         println!("scheduled for the next boot at byte offset {}", record.offset);
//!         reel_delayed::systemd::register(&reel_delayed::systemd::Registration {
//!             root: "/".into(),
//!             operation_file: ops.path().to_path_buf(),
//!             reel_binary: std::env::current_exe()?,
//!             run_args: vec![],
//!         })?;
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! [`OperationFile::append_move`], [`append_delete`](OperationFile::append_delete) and
//! [`append_short_name`](OperationFile::append_short_name) take absolute Linux paths;
//! [`OperationFile::append`] takes any [`Operation`] (Windows paths too). Each append is one
//! atomic replacement of the file under its lock, refused when the same operation is already
//! there ([`DelayedError::Duplicate`]) or when an earlier record deletes a directory the new
//! one reaches into ([`DelayedError::Order`]).
//!
//! # Carrying a file out
//!
//! ```no_run
//! use reel_delayed::{RunOptions, run};
//! # fn go() -> Result<(), reel_delayed::DelayedError> {
//! let mut opts = RunOptions::new(reel_delayed::default_state_dir());
//! opts.map.insert("C:=/mnt/c".parse()?);
//! let report = run("/var/lib/reel/restore-ops".as_ref(), &opts, &mut |o| {
//!     eprintln!("record {}: {:?} {}", o.record, o.action, o.after)
//! })?;
//! assert!(report.succeeded());
//! # Ok(()) }
//! ```
//!
//! The rules [`run`] follows: records in order; MoveFile (rename(2): replaces the destination,
//! `ERROR_NOT_SAME_DEVICE` across file systems, `ERROR_ACCESS_DENIED` for a directory) and
//! DeleteFile (a file, a symlink, an empty directory; `ERROR_DIR_NOT_EMPTY` otherwise) stop
//! the run when they fail; SetFileShortName sets ntfs-3g's `system.ntfs_dos_name` and, where
//! that does not exist, records `ERROR_NOT_SUPPORTED` (50) and goes on. A symlink in the last
//! component is moved or deleted itself, never followed. As root, a file not owned by root or
//! writable by group/others is refused; any malformed byte refuses the whole file before
//! anything is done. Records already `SC=00000000` are skipped, so running a file again
//! finishes what an interrupted run started. See [`exec`] for how a kill between an operation
//! and its status write is recovered from.

pub mod error;
pub mod exec;
pub mod file;
pub mod format;
mod fsutil;
pub mod path;
pub mod stage;
pub mod status;
pub mod systemd;
pub mod win32;

pub use error::{DelayedError, Result};
pub use exec::{Action, RecordOutcome, RunOptions, RunReport, is_valid_short_name, run};
pub use file::{OperationFile, RequestWarning, check_request, same_filesystem, same_operation};
pub use format::{
    FormatError, FormatErrorKind, Operation, Record, Status, UnusedField, encode, encode_new, parse,
};
pub use fsutil::MAX_FILE_BYTES;
pub use path::{MapEntry, MapKey, NtPath, PathError, PathKind, PathMap};
pub use reel_error_class::ErrorClass;
pub use stage::{StagedReplacement, is_busy, schedule_replacement};
pub use status::{RunState, StatusFile, default_state_dir};
