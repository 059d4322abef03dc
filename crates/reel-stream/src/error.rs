//! Errors of capture and apply.

use std::io;
use std::path::PathBuf;

use reel_error_class::ErrorClass;

/// Why a restore refused an entry (nothing was written for it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("absolute path")]
    Absolute,
    #[error("path contains '..'")]
    DotDot,
    #[error("empty path")]
    Empty,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("it would be written through the symlink {0}")]
    ThroughSymlink(String),
    #[error("{0} is not a directory")]
    NotADirectory(String),
    #[error("the hard link target {0} is not among the restored files")]
    LinkTargetMissing(String),
    #[error("an existing directory is in the way")]
    DirectoryInTheWay,
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("refused {path}: {reason}")]
    Refused { path: String, reason: Refusal },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("{}: unsupported {what}", path.display())]
    Unsupported { path: PathBuf, what: String },
    /// Part of a file could not be restored (the rest was): a missing privilege, a file
    /// system without xattrs or flags, … Reported per file; the restore goes on.
    #[error("{}: {what}", path.display())]
    Partial { path: PathBuf, what: String },
    /// A backup stream that is cut short; `offset` counts from the stream's first byte.
    #[error("backup stream truncated at byte {offset}: {what}")]
    Truncated { offset: u64, what: String },
    /// A backup stream that is not well-formed at `offset`.
    #[error("malformed backup stream at byte {offset}: {what}")]
    Malformed { offset: u64, what: String },
}

impl StreamError {
    pub fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        StreamError::Io {
            path: path.into(),
            op,
            source,
        }
    }

    /// The class of this error: a truncated or malformed stream is integrity; a refused
    /// entry, an unsupported kind and a partly restored file are problems of one file
    /// (a restore lists and counts them, and goes on); a failing system call is the
    /// medium's.
    pub fn class(&self) -> ErrorClass {
        match self {
            StreamError::Truncated { .. } | StreamError::Malformed { .. } => ErrorClass::Integrity,
            StreamError::Refused { .. }
            | StreamError::Unsupported { .. }
            | StreamError::Partial { .. } => ErrorClass::Partial,
            StreamError::Io { .. } => ErrorClass::Media,
        }
    }

    /// True for problems with the input data (truncated or malformed streams).
    pub fn is_data_error(&self) -> bool {
        self.class() == ErrorClass::Integrity
    }

    /// True when the entry was refused for safety (counted, not fatal).
    pub fn is_refusal(&self) -> bool {
        matches!(self, StreamError::Refused { .. })
    }
}

pub type Result<T, E = StreamError> = std::result::Result<T, E>;
