//! reel's Single Instance Store: duplicate files cost their space once, stay independent when
//! written, and are backed up once.
//!
//! This crate is the Linux counterpart of Windows SIS and its backup API:
//!
//! - a **common store**, `.sis-common-store/` at the root of a volume (the mount point of a
//!   path by default, or a root you give: [`Volume`]), mode 0700, holding immutable
//!   content-named files `<blake3-hex>.sis` and the store's bookkeeping (the link index,
//!   [`index`]);
//! - **SIS links**: ordinary files whose extents are shared with a common-store file
//!   (FIDEDUPERANGE or FICLONE), carrying [`ReparseData`] in the xattr `user.reel.sis`. A
//!   link is trusted only while its FIEMAP extent map equals its common-store file's
//!   ([`CommonStore::link_state`]); once written to, the filesystem's copy-on-write has made
//!   it an ordinary file again, and it is treated as one;
//! - [`merge`](merge::merge) (size → partial hash → BLAKE3 → FIDEDUPERANGE, so the kernel
//!   compares the bytes), [`status`], [`gc`], [`verify`] and a fanotify [`Watcher`] that
//!   removes a common-store file when its last link goes;
//! - the SIS backup API: [`BackupStructure`] and [`RestoreStructure`], with the behaviour of
//!   SisCreateBackupStructure … SisFreeRestoreStructure (see [`backup`]).
//!
//! It needs a filesystem that can share extents (btrfs, XFS with reflink, bcachefs) and
//! refuses elsewhere, naming the filesystem type; it never falls back to hard links.
//!
//! It is **not** the backup engine: writing links and common-store files into a backup set
//! (pax hard links, `REEL.sis`) is reel-core's and reel-archive's job, through the API here.
//! It holds no CLI code (`reel sis` lives in the `reel` crate).

pub mod backup;
pub mod error;
pub mod index;
pub mod maintenance;
pub mod merge;
pub mod reparse;
pub mod store;
pub mod sys;
pub mod volume;
pub mod watch;

pub use backup::{
    BackupStructure, LinkBackup, RestoreMode, RestoreReport, RestoreStructure, UnrestoredLink,
};
pub use error::{Result, SisError};
pub use index::{Index, IndexEntry, LinkRecord};
pub use maintenance::{GcReport, StatusReport, VerifyReport, gc, status, verify};
pub use merge::{DuplicateGroup, MergeOptions, MergeReport, ScanPlan, merge, scan};
pub use reel_error_class::ErrorClass;
pub use reparse::{ContentHash, ReparseData};
pub use store::{
    CommonStore, CommonStoreFile, CommonStoreWriter, INDEX_FILE, LinkCheck, LinkState, MARKER_FILE,
    MapCache, STORE_DIR, StoreLock,
};
pub use sys::REPARSE_XATTR;
pub use volume::{MountEntry, Volume, mount_by_name, mount_point_of, mounts};
pub use watch::{WatchEvent, Watcher};
