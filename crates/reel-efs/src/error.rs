//! The errors of encrypted-file operations and the raw API.

use std::io;
use std::path::PathBuf;

use reel_error_class::ErrorClass;

/// What went wrong, naming the file and, for bad bytes, the offset.
#[derive(Debug, thiserror::Error)]
pub enum EfsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is not an encrypted file (it has no user.reel.efs marker)")]
    NotEncrypted { path: PathBuf },
    #[error("{path} is already encrypted (it carries the user.reel.efs marker)")]
    AlreadyEncrypted { path: PathBuf },
    #[error(
        "{path} already holds an age file; mark it with `reel efs mark` instead of encrypting it twice"
    )]
    AlreadyAgeFile { path: PathBuf },
    #[error(
        "{path} is {what}; only regular files (and, for markers, directories) can be encrypted"
    )]
    NotRegular { path: PathBuf, what: &'static str },
    #[error(
        "{path} has {links} hard links; encrypting one name would leave the plaintext under the others (break the links first)"
    )]
    HardLinked { path: PathBuf, links: u64 },
    #[error("{path} changed while reel was {doing} it; nothing was replaced, try again")]
    Changed { path: PathBuf, doing: &'static str },
    #[error("marker of {path}: byte {offset}: {what}")]
    BadMarker {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: age header, byte {offset}: {what}")]
    BadHeader {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: ciphertext does not match its marker: {what}")]
    SizeMismatch { path: PathBuf, what: String },
    #[error("{path}: {what} (ciphertext byte {offset}); the file was altered or damaged")]
    Tampered {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: raw form, byte {offset}: {what}")]
    BadRaw {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error("{path}: raw form is truncated: it ends at byte {offset}, inside {field}")]
    RawTruncated {
        path: PathBuf,
        offset: u64,
        field: &'static str,
    },
    #[error("{path} already exists; {hint}")]
    Exists { path: PathBuf, hint: &'static str },
    #[error("{0}")]
    InvalidFlags(String),
    #[error(
        "no identity at {path}; create one with `reel efs keygen`, or name one with --identity / REEL_EFS_IDENTITY"
    )]
    NoIdentity { path: PathBuf },
    #[error("identity file {path}, line {line}: {what}")]
    BadIdentity {
        path: PathBuf,
        line: usize,
        what: String,
    },
    #[error("{path}: none of the identities in {identity} can open it{hint}")]
    NoMatchingIdentity {
        path: PathBuf,
        identity: PathBuf,
        hint: String,
    },
    #[error(
        "{0:?} is not an age X25519 recipient (expected age1… as printed by `reel efs keygen`)"
    )]
    BadRecipient(String),
    #[error("{path}: {what}")]
    Refused { path: PathBuf, what: String },
    /// The recovery recipient (named by `whence`: the command line or the policy) is not one.
    #[error("the recovery recipient of {whence}")]
    BadRecovery {
        whence: String,
        #[source]
        source: Box<EfsError>,
    },
    #[error("the recovery recipient must be exactly one recipient")]
    RecoveryNotOne,
    #[error("the export callback failed: {0}")]
    Callback(#[source] io::Error),
}

impl EfsError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> EfsError {
        EfsError::Io {
            path: path.into(),
            source,
        }
    }

    /// The class of this error: integrity when bytes failed a check (damaged or altered
    /// ciphertext, marker or raw form); partial when the system refused or failed an
    /// operation on the file (every efs operation is on one file: a command over several
    /// reports it and goes on); usage when the request cannot be done as asked (wrong file,
    /// missing key, existing target).
    pub fn class(&self) -> ErrorClass {
        match self {
            EfsError::BadRecovery { source, .. } => source.class(),
            EfsError::Io { .. } | EfsError::Callback(_) | EfsError::Changed { .. } => {
                ErrorClass::Partial
            }
            EfsError::BadMarker { .. }
            | EfsError::BadHeader { .. }
            | EfsError::SizeMismatch { .. }
            | EfsError::Tampered { .. }
            | EfsError::BadRaw { .. }
            | EfsError::RawTruncated { .. } => ErrorClass::Integrity,
            _ => ErrorClass::Usage,
        }
    }
}

pub type Result<T, E = EfsError> = std::result::Result<T, E>;
