//! Errors of the archive layer. Every format error names where it was found.

use reel_error_class::ErrorClass;
use reel_tape::TapeError;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A malformed archive: `offset` is the byte offset inside the tape file (or archive).
    #[error("corrupt archive at byte {offset}: {what}")]
    Corrupt { offset: u64, what: String },
    /// The archive ends in the middle of something.
    #[error("archive truncated at byte {offset}: {what}")]
    Truncated { offset: u64, what: String },
    /// A tape condition while reading or writing, with where it happened.
    #[error("{context}: {source}")]
    Tape {
        context: String,
        #[source]
        source: TapeError,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A volume that is not a reel volume, or a layout reel does not recognise.
    #[error("{0}")]
    Volume(String),
    /// Data that fails its recorded hash.
    #[error("integrity: {0}")]
    Integrity(String),
}

impl ArchiveError {
    pub fn tape(context: impl Into<String>, source: TapeError) -> Self {
        ArchiveError::Tape {
            context: context.into(),
            source,
        }
    }

    /// Unwraps a tape error carried inside an `io::Error` by the record reader/writer.
    /// Unwraps an archive or tape error carried inside an `io::Error` (the record reader
    /// and writer pass them through `Read`/`Write`); other I/O errors stay I/O errors.
    pub fn from_io(context: impl Into<String>, e: std::io::Error) -> Self {
        let carried = e
            .get_ref()
            .is_some_and(|inner| inner.is::<TapeError>() || inner.is::<ArchiveError>());
        if !carried {
            return ArchiveError::Io(e);
        }
        let Some(inner) = e.into_inner() else {
            return ArchiveError::Volume(format!("{}: unknown I/O failure", context.into()));
        };
        match inner.downcast::<ArchiveError>() {
            Ok(a) => *a,
            Err(inner) => match inner.downcast::<TapeError>() {
                Ok(t) => ArchiveError::tape(context, *t),
                Err(other) => ArchiveError::Io(std::io::Error::other(other)),
            },
        }
    }

    /// The class of this error: a tape condition has its own class, bytes that do not parse
    /// or fail their hash are integrity, a volume reel does not recognise and a failing I/O
    /// are the medium's.
    pub fn class(&self) -> ErrorClass {
        match self {
            ArchiveError::Tape { source, .. } => source.class(),
            ArchiveError::Corrupt { .. }
            | ArchiveError::Truncated { .. }
            | ArchiveError::Integrity(_) => ErrorClass::Integrity,
            ArchiveError::Volume(_) | ArchiveError::Io(_) => ErrorClass::Media,
        }
    }

    /// The tape error behind this error, if any.
    pub fn tape_error(&self) -> Option<&TapeError> {
        match self {
            ArchiveError::Tape { source, .. } => Some(source),
            _ => None,
        }
    }
}

pub type Result<T, E = ArchiveError> = std::result::Result<T, E>;
