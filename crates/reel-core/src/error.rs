//! Errors of the jobs, sorted by what the user should do about them.

use reel_archive::ArchiveError;
use reel_stream::StreamError;
use reel_tape::TapeError;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// The request cannot be carried out as asked (bad path, unknown set, …).
    #[error("{0}")]
    Usage(String),
    /// A volume the job needs cannot be had: the operator declined, or cannot be asked.
    #[error("{0}")]
    Stopped(String),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Tape(#[from] TapeError),
    #[error(transparent)]
    Catalog(#[from] reel_catalog::CatalogError),
    /// A backup failed after closing parts of its set on full volumes: `cause` is why, `left`
    /// what that leaves on the tapes (a set that can never be restored, and what becomes of
    /// its space).
    #[error("{cause}. {left}")]
    SetUnfinished { cause: Box<CoreError>, left: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

/// What kind of failure, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Usage,
    Media,
    Integrity,
}

impl CoreError {
    pub fn kind(&self) -> FailureKind {
        let tape_kind = |t: &TapeError| match t {
            TapeError::Crc(_) => FailureKind::Integrity,
            TapeError::InvalidParameter(_) | TapeError::BadCartridge { .. } => FailureKind::Usage,
            _ => FailureKind::Media,
        };
        match self {
            CoreError::Usage(_) => FailureKind::Usage,
            CoreError::Stopped(_) => FailureKind::Media,
            CoreError::SetUnfinished { cause, .. } => cause.kind(),
            CoreError::Tape(t) => tape_kind(t),
            CoreError::Archive(a) => match a {
                ArchiveError::Tape { source, .. } => tape_kind(source),
                ArchiveError::Corrupt { .. }
                | ArchiveError::Truncated { .. }
                | ArchiveError::Integrity(_) => FailureKind::Integrity,
                ArchiveError::Volume(_) | ArchiveError::Io(_) => FailureKind::Media,
            },
            CoreError::Stream(_) | CoreError::Io { .. } => FailureKind::Media,
            CoreError::Catalog(_) => FailureKind::Usage,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;
