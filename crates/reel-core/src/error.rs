//! Errors of the jobs; [`CoreError::class`] says what the user should do about them (the
//! exit code).

use reel_archive::ArchiveError;
use reel_error_class::ErrorClass;
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

impl CoreError {
    /// The class of this error: a wrapped error has its source's class, a volume that
    /// cannot be had is the medium's, an I/O failure is the medium's, and a refusal of the
    /// request is usage.
    pub fn class(&self) -> ErrorClass {
        match self {
            CoreError::Usage(_) => ErrorClass::Usage,
            CoreError::Stopped(_) | CoreError::Io { .. } => ErrorClass::Media,
            CoreError::SetUnfinished { cause, .. } => cause.class(),
            CoreError::Archive(a) => a.class(),
            CoreError::Stream(s) => s.class(),
            CoreError::Tape(t) => t.class(),
            CoreError::Catalog(c) => c.class(),
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_errors_have_their_source_s_class() {
        let crc = CoreError::Tape(TapeError::Crc("block 9".into()));
        assert_eq!(crc.class(), ErrorClass::Integrity);
        let unfinished = CoreError::SetUnfinished {
            cause: Box::new(CoreError::Stopped("REEL-2 is needed, but no".into())),
            left: "nothing of the set can be restored".into(),
        };
        assert_eq!(unfinished.class(), ErrorClass::Media);
        let corrupt = ArchiveError::Corrupt {
            offset: 512,
            what: "bad checksum".into(),
        };
        assert_eq!(CoreError::from(corrupt).class(), ErrorClass::Integrity);
    }
}
