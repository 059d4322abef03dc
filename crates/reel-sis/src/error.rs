//! The crate's error type.

use std::path::{Path, PathBuf};

use reel_error_class::ErrorClass;

/// Everything that can go wrong in the single instance store.
#[derive(Debug, thiserror::Error)]
pub enum SisError {
    /// A system call on a named file failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The filesystem cannot share extents between files, so SIS links are impossible there.
    #[error(
        "{}: its filesystem ({fs_type}) cannot share extents between files (no \
         FICLONE/FIDEDUPERANGE); the single instance store needs btrfs, XFS made with \
         `mkfs.xfs -m reflink=1`, or bcachefs, and never falls back to hard links",
        path.display()
    )]
    NoReflink { path: PathBuf, fs_type: String },
    /// The volume has no common store yet.
    #[error(
        "{} has no common store ({}/{}): run `reel sis merge {}` first",
        root.display(),
        root.display(),
        crate::STORE_DIR,
        root.display()
    )]
    NoStore { root: PathBuf },
    /// A path is not on the volume the store belongs to.
    #[error("{} is not on the volume mounted at {}", path.display(), root.display())]
    OutsideVolume { path: PathBuf, root: PathBuf },
    /// Stored bytes (index, reparse data, fanotify buffer, mount table) do not parse.
    #[error("{what} is damaged at byte {offset}: {reason}")]
    Corrupt {
        what: String,
        offset: u64,
        reason: String,
    },
    /// A name that is not `<64 hex digits>.sis`.
    #[error("{name:?} is not a common-store file name (64 lowercase hex digits, then `.sis`)")]
    BadName { name: String },
    /// A common-store file whose content does not hash to its name.
    #[error(
        "common-store file {} is damaged: its content hashes to {actual}, not to its name",
        path.display()
    )]
    HashMismatch { path: PathBuf, actual: String },
    /// A common-store file that a link needs is not in the store.
    #[error("common-store file {} is missing", path.display())]
    MissingCommonStoreFile { path: PathBuf },
    /// A restore was asked to write a common-store file that exists already.
    #[error(
        "common-store file {} already exists; a restore never overwrites one (its content \
         never changes, so the existing file is used)",
        path.display()
    )]
    AlreadyPresent { path: PathBuf },
    /// Anything else the caller asked for that cannot be done, with the reason.
    #[error("{0}")]
    Invalid(String),
}

/// The crate's result type.
pub type Result<T, E = SisError> = std::result::Result<T, E>;

impl SisError {
    /// An I/O error on `path` while doing `op`.
    pub fn io(op: &'static str, path: &Path, source: impl Into<std::io::Error>) -> SisError {
        SisError::Io {
            op,
            path: path.to_path_buf(),
            source: source.into(),
        }
    }

    /// The class of this error: stored bytes that do not parse or hash to their name are
    /// integrity; a file system without reflinks, a volume without a store, a path or name
    /// that does not belong are the caller's configuration (usage); a failing system call,
    /// a missing common-store file and one a restore would overwrite are the medium's.
    pub fn class(&self) -> ErrorClass {
        match self {
            SisError::Corrupt { .. } | SisError::HashMismatch { .. } => ErrorClass::Integrity,
            SisError::NoReflink { .. }
            | SisError::NoStore { .. }
            | SisError::OutsideVolume { .. }
            | SisError::BadName { .. }
            | SisError::Invalid(_) => ErrorClass::Usage,
            SisError::Io { .. }
            | SisError::MissingCommonStoreFile { .. }
            | SisError::AlreadyPresent { .. } => ErrorClass::Media,
        }
    }
}

/// Builds a `Corrupt` error.
pub(crate) fn corrupt(
    what: impl Into<String>,
    offset: usize,
    reason: impl Into<String>,
) -> SisError {
    SisError::Corrupt {
        what: what.into(),
        offset: offset as u64,
        reason: reason.into(),
    }
}
