//! The crate's error type.

use std::io;
use std::path::PathBuf;

use reel_error_class::ErrorClass;

use crate::format::FormatError;
use crate::path::PathError;

/// Everything that stops reel-delayed from reading, writing, running or registering an
/// operation file. Per-record failures during a run are not errors: they are Win32 codes in
/// the file's status fields and in the [`RunReport`](crate::RunReport).
#[derive(Debug, thiserror::Error)]
pub enum DelayedError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not a valid operation file, nothing was done: {source}")]
    Format {
        path: PathBuf,
        #[source]
        source: FormatError,
    },
    #[error(
        "{path} is {len} bytes, more than the {max} bytes an operation file may have; split the operations over several files"
    )]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error("{path}: record {record} at byte offset {offset}: {source}; nothing was done")]
    RecordPath {
        path: PathBuf,
        record: usize,
        offset: u64,
        #[source]
        source: PathError,
    },
    #[error("{0}")]
    Path(#[from] PathError),
    #[error("{path} already holds this operation as record {record} (byte offset {offset})")]
    Duplicate {
        path: PathBuf,
        record: usize,
        offset: u64,
    },
    #[error(
        "{path}: record {record} (byte offset {offset}) deletes {dir}, so nothing inside it can come later; schedule the operations on its contents first"
    )]
    Order {
        path: PathBuf,
        record: usize,
        offset: u64,
        dir: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("refusing {path}: {reason}; nothing was done")]
    Unsafe { path: PathBuf, reason: String },
    #[error("{0}")]
    Register(String),
}

pub type Result<T, E = DelayedError> = std::result::Result<T, E>;

impl DelayedError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        DelayedError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// The class of this error: usage when it is in what was asked for or in the operation
    /// file (bad input, refused file, duplicate, a file that does not exist), media when the
    /// system failed.
    pub fn class(&self) -> ErrorClass {
        match self {
            // A file that is not there was named wrongly; other I/O errors are the system's.
            DelayedError::Io { source, .. } if source.kind() != io::ErrorKind::NotFound => {
                ErrorClass::Media
            }
            _ => ErrorClass::Usage,
        }
    }
}
