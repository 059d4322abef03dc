//! Exit codes, and the one table from an error's class to its code.
//!
//! Every library error says its [`ErrorClass`] (`class()`); here the class of an error that
//! stopped a command is found ([`class_of`]) and turned into the code ([`code`]).

use std::error::Error;

use reel_error_class::ErrorClass;
use reel_tape::TapeError;

pub const OK: u8 = 0;
/// Finished, with per-file problems (listed).
pub const PARTIAL: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// Media or device error.
pub const MEDIA: u8 = 3;
/// Data integrity failure.
pub const INTEGRITY: u8 = 4;

/// An error in what the user asked for, found by the command line itself (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A file the command line itself opens, reads or writes (a `-i`/`-o` file, standard
/// output) failed; `class` is what that means to the command.
#[derive(Debug, thiserror::Error)]
#[error("{what}")]
pub struct FileError {
    pub what: String,
    pub class: ErrorClass,
    #[source]
    pub source: std::io::Error,
}

/// For `map_err`: an I/O error on a file of the command line's, described by `what`.
pub fn file_error(class: ErrorClass, what: String) -> impl FnOnce(std::io::Error) -> FileError {
    move |source| FileError {
        what,
        class,
        source,
    }
}

/// The exit code of each class of error.
pub fn code(class: ErrorClass) -> u8 {
    match class {
        ErrorClass::Partial => PARTIAL,
        ErrorClass::Usage => USAGE,
        ErrorClass::Media => MEDIA,
        ErrorClass::Integrity => INTEGRITY,
    }
}

/// The exit code for an error that stopped a command.
pub fn code_for(err: &anyhow::Error) -> u8 {
    code(class_of(err))
}

/// The class of an error: that of the first cause in its chain that has one (the outermost
/// knows best). Media when none has: what is left is the system failing under some context.
pub fn class_of(err: &anyhow::Error) -> ErrorClass {
    err.chain()
        .find_map(class_of_cause)
        .unwrap_or(ErrorClass::Media)
}

/// The class of one cause, when it is an error type that has one.
fn class_of_cause(cause: &(dyn Error + 'static)) -> Option<ErrorClass> {
    fn class<E: Error + 'static>(
        cause: &(dyn Error + 'static),
        of: fn(&E) -> ErrorClass,
    ) -> Option<ErrorClass> {
        cause.downcast_ref::<E>().map(of)
    }
    class::<UsageError>(cause, |_| ErrorClass::Usage)
        .or_else(|| class::<FileError>(cause, |e| e.class))
        .or_else(|| class(cause, reel_core::CoreError::class))
        .or_else(|| class(cause, reel_archive::ArchiveError::class))
        .or_else(|| class(cause, reel_stream::StreamError::class))
        .or_else(|| class(cause, TapeError::class))
        .or_else(|| class(cause, reel_catalog::CatalogError::class))
        .or_else(|| class(cause, reel_sis::SisError::class))
        .or_else(|| class(cause, reel_efs::EfsError::class))
        .or_else(|| class(cause, reel_delayed::DelayedError::class))
        .or_else(|| class(cause, reel_policy::PatternError::class))
        .or_else(|| class(cause, reel_policy::state::StateError::class))
        .or_else(|| class(cause, reel_policy::snapshot::SnapshotError::class))
        .or_else(|| class(cause, reel_scsi::ScsiError::class))
}

/// The full message of an error: its context chain, and the Win32 condition of a tape error.
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<TapeError>() {
            Some(t) => format!("{t} [{} {}]", t.code_name(), t.code()),
            None => cause.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outermost_cause_with_a_class_decides() {
        let tape = TapeError::Crc("record 7".into());
        let archive = reel_archive::ArchiveError::tape("reading set 1", tape);
        let err = anyhow::Error::new(reel_core::CoreError::from(archive)).context("verify");
        assert_eq!(code_for(&err), INTEGRITY);
        // The tape says media; the job says the set was looked for in the wrong place.
        let tape = TapeError::NoMediaInDrive;
        let archive = reel_archive::ArchiveError::tape("mapping the volume", tape);
        let err = anyhow::Error::new(reel_core::CoreError::UnreadableVolume(archive));
        assert!(err.chain().any(|c| c.is::<TapeError>()));
        assert_eq!(code_for(&err), USAGE);
    }

    #[test]
    fn an_error_without_a_class_is_the_media_s() {
        let err = anyhow::Error::new(std::io::Error::other("EIO")).context("writing");
        assert_eq!(code_for(&err), MEDIA);
    }

    #[test]
    fn a_wrapping_error_takes_its_source_s_class() {
        let cause = reel_core::CoreError::Tape(TapeError::InvalidParameter("x".into()));
        let err = reel_core::CoreError::SetUnfinished {
            cause: Box::new(cause),
            left: String::new(),
        };
        assert_eq!(code_for(&err.into()), USAGE);
        let file = file_error(ErrorClass::Partial, "cannot open x".into())(std::io::Error::other(
            "EACCES",
        ));
        assert_eq!(code_for(&file.into()), PARTIAL);
    }
}
