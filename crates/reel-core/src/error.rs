//! Errors of the jobs. Each variant says what went wrong with typed fields; [`CoreError::class`]
//! says what the user should do about it (the exit code).

use std::path::PathBuf;

use reel_archive::ArchiveError;
use reel_error_class::ErrorClass;
use reel_policy::PatternError;
use reel_policy::snapshot::SnapshotError;
use reel_stream::StreamError;
use reel_tape::TapeError;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    // What to back up and how (usage).
    /// A backup was asked for no path.
    #[error("nothing to back up: give at least one path")]
    NothingToBackUp,
    /// A path given to back up does not exist.
    #[error("{}: no such file or directory", path.display())]
    NoSuchPath { path: PathBuf },
    /// The volume to write holds data reel did not write, and `--force` was not given.
    #[error(
        "{drive} holds data reel did not write ({detail}); refusing to overwrite it (use --force to label it anyway, destroying that data)"
    )]
    ForeignVolume { drive: String, detail: String },
    /// A block size that is not a multiple of 512 between 512 and `max`.
    #[error("block size {size} must be a multiple of 512 between 512 and {max}")]
    BadBlockSize { size: usize, max: usize },
    /// An incremental backup was asked for without a catalog.
    #[error("an incremental backup needs the catalog (run `reel catalog rebuild` to recreate it)")]
    IncrementalNeedsCatalog,
    /// An incremental backup was asked for, but the catalog has no earlier set of `paths`.
    #[error(
        "no earlier set of {} is in the catalog: make a full backup first (or `reel catalog rebuild` if the catalog was lost)",
        paths.join(", ")
    )]
    NoEarlierSet { paths: Vec<String> },
    /// A pre-backup hook asked to cancel the backup; `failures` are the hooks' reports.
    #[error("a pre-backup hook asked to cancel the backup: {}", failures.join("; "))]
    CancelledByHook { failures: Vec<String> },
    /// An `--exclude` pattern that does not parse.
    #[error("--exclude {text:?}: {source}")]
    BadExclude { text: String, source: PatternError },
    /// `--require-snapshot` was given and no snapshot could be made. Usage whatever the
    /// snapshot's failure: it is the requirement that stops the job (without it, the backup
    /// reads the live tree).
    #[error("--require-snapshot: {source}")]
    SnapshotRequired { source: SnapshotError },

    // Which members (usage).
    /// A member pattern that does not parse.
    #[error("pattern {pattern:?}: {source}")]
    BadPattern {
        pattern: String,
        source: globset::Error,
    },
    /// Patterns that parse one by one but cannot be compiled together.
    #[error("patterns: {source}")]
    BadPatterns { source: globset::Error },

    // Which set (usage).
    /// The volume in the drive cannot be mapped, so the set asked for is not found on it
    /// (nor in the catalog). Usage whatever the cause: the set is looked for elsewhere
    /// first, and what is wrong is where the user looked.
    #[error(transparent)]
    UnreadableVolume(ArchiveError),
    /// The set was found on the volume, but its index cannot be read.
    #[error("set {number} has no readable index")]
    SetIndexUnreadable { number: u32 },
    /// The set was found on the volume, but its index's tape file is not there.
    #[error("set {number} has no index")]
    SetIndexMissing { number: u32 },
    /// A name or id prefix that matches several sets of the catalog.
    #[error("{key:?} matches {matches} sets in the catalog; give the set id")]
    AmbiguousSet { key: String, matches: usize },
    /// The set's members are listed in the catalog only, and there is no catalog.
    #[error("the catalog is needed to list this set")]
    ListNeedsCatalog,
    /// The set an incremental set refers to for its unchanged files cannot be found.
    #[error(
        "set {id}, which holds unchanged files of this incremental set, is neither on this volume nor in the catalog (run `reel catalog rebuild` with all volumes in the library)"
    )]
    AncestorNotFound { id: Uuid },
    /// A set described without any data part.
    #[error("the set has no data parts")]
    NoDataParts,

    // Other volumes (usage).
    /// The volume being written is full and the changer has no other cartridge.
    #[error(
        "{current} is full and {changer} has no other cartridges to continue on; back up to a library (the default, or --tape LIBRARY-DIR)"
    )]
    NoMoreCartridges { current: String, changer: String },
    /// A blank cartridge is wanted and the changer has none.
    #[error("{changer} has no other cartridges to load {barcode} from")]
    NoCartridgeToLoad { barcode: String, changer: String },
    /// A volume is needed and the changer cannot load volumes.
    #[error(
        "volume {barcode} ({volume_id}) is needed but {changer} cannot load it; use the library that holds it (--tape LIBRARY-DIR)"
    )]
    CannotLoadVolume {
        barcode: String,
        volume_id: Uuid,
        changer: String,
    },
    /// A volume is needed and the library does not hold it.
    #[error(
        "volume {barcode} ({volume_id}) is not in the library {}: it was removed, erased or relabelled",
        library.display()
    )]
    VolumeNotInLibrary {
        barcode: String,
        volume_id: Uuid,
        library: PathBuf,
    },

    // Archives other programs wrote (usage).
    /// A tape file number beyond what the drive can space over.
    #[error("tape file {file} is too large")]
    TapeFileTooLarge { file: u64 },
    /// The tape ends before tape file `file`.
    #[error(
        "{drive} has no tape file {file} (tape files are numbered from 0; `reel tape dump --file N` shows one)"
    )]
    NoSuchTapeFile { drive: String, file: u64 },
    /// A tape file was asked for, and no tape drive was given.
    #[error("tape file {file}: no tape drive given")]
    NoTapeDrive { file: u64 },
    /// The tape file to scan holds nothing; `what` names it.
    #[error("{what} is empty: there is nothing to scan")]
    EmptyTapeFile { what: String },
    /// An archive file that cannot be opened; `shown` is its name as the user gave it.
    #[error("cannot open the archive {shown}: {source}")]
    CannotOpenArchive {
        shown: String,
        source: std::io::Error,
    },
    /// An archive named that is a directory.
    #[error("{shown} is a directory, not an archive file")]
    ArchiveIsDirectory { shown: String },
    /// A compressed archive: `compression` names the format, `decompressor` the command
    /// that undoes it.
    #[error(
        "{shown} is {compression}-compressed; reel reads plain tar archives: decompress it first, e.g. `{decompressor} {shown} | reel restore --archive - --to DIR`"
    )]
    CompressedArchive {
        shown: String,
        compression: &'static str,
        decompressor: &'static str,
    },
    /// A restore from archive files was given none.
    #[error("no archive given")]
    NoArchive,
    /// A restore through a catalog scan without the catalog.
    #[error("no catalog")]
    NoCatalog,

    /// A volume the job needs cannot be had: the operator declined, or cannot be asked.
    /// The message says which volume, where, and why; callers keep it to say so again.
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
    /// cannot be had is the medium's, an I/O failure is the medium's, and every named
    /// refusal of the request is usage.
    pub fn class(&self) -> ErrorClass {
        match self {
            CoreError::Stopped(_) | CoreError::Io { .. } => ErrorClass::Media,
            CoreError::SetUnfinished { cause, .. } => cause.class(),
            CoreError::Archive(a) => a.class(),
            CoreError::Stream(s) => s.class(),
            CoreError::Tape(t) => t.class(),
            CoreError::Catalog(c) => c.class(),
            CoreError::BadExclude { source, .. } => source.class(),
            CoreError::NothingToBackUp
            | CoreError::NoSuchPath { .. }
            | CoreError::ForeignVolume { .. }
            | CoreError::BadBlockSize { .. }
            | CoreError::IncrementalNeedsCatalog
            | CoreError::NoEarlierSet { .. }
            | CoreError::CancelledByHook { .. }
            | CoreError::SnapshotRequired { .. }
            | CoreError::BadPattern { .. }
            | CoreError::BadPatterns { .. }
            | CoreError::UnreadableVolume(_)
            | CoreError::SetIndexUnreadable { .. }
            | CoreError::SetIndexMissing { .. }
            | CoreError::AmbiguousSet { .. }
            | CoreError::ListNeedsCatalog
            | CoreError::AncestorNotFound { .. }
            | CoreError::NoDataParts
            | CoreError::NoMoreCartridges { .. }
            | CoreError::NoCartridgeToLoad { .. }
            | CoreError::CannotLoadVolume { .. }
            | CoreError::VolumeNotInLibrary { .. }
            | CoreError::TapeFileTooLarge { .. }
            | CoreError::NoSuchTapeFile { .. }
            | CoreError::NoTapeDrive { .. }
            | CoreError::EmptyTapeFile { .. }
            | CoreError::CannotOpenArchive { .. }
            | CoreError::ArchiveIsDirectory { .. }
            | CoreError::CompressedArchive { .. }
            | CoreError::NoArchive
            | CoreError::NoCatalog => ErrorClass::Usage,
        }
    }
}

pub type Result<T, E = CoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// The named variants say what the free-form messages they replaced said, word for word
    /// (users and scripts read them), and are usage errors.
    #[test]
    fn named_refusals_keep_their_messages_and_are_usage() {
        let id = Uuid::nil();
        let cases = [
            (
                CoreError::NoSuchPath {
                    path: "/srv/gone".into(),
                },
                "/srv/gone: no such file or directory".to_string(),
            ),
            (
                CoreError::NoEarlierSet {
                    paths: vec!["/a".into(), "/b".into()],
                },
                "no earlier set of /a, /b is in the catalog: make a full backup first (or `reel catalog rebuild` if the catalog was lost)".into(),
            ),
            (
                CoreError::CancelledByHook {
                    failures: vec!["one".into(), "two".into()],
                },
                "a pre-backup hook asked to cancel the backup: one; two".into(),
            ),
            (
                CoreError::AmbiguousSet {
                    key: "daily".into(),
                    matches: 3,
                },
                "\"daily\" matches 3 sets in the catalog; give the set id".into(),
            ),
            (
                CoreError::VolumeNotInLibrary {
                    barcode: "REEL-1".into(),
                    volume_id: id,
                    library: "/lib".into(),
                },
                format!(
                    "volume REEL-1 ({id}) is not in the library /lib: it was removed, erased or relabelled"
                ),
            ),
            (
                CoreError::CompressedArchive {
                    shown: "a.tgz".into(),
                    compression: "gzip",
                    decompressor: "zcat",
                },
                "a.tgz is gzip-compressed; reel reads plain tar archives: decompress it first, e.g. `zcat a.tgz | reel restore --archive - --to DIR`".into(),
            ),
        ];
        for (err, message) in cases {
            assert_eq!(err.to_string(), message);
            assert_eq!(err.class(), ErrorClass::Usage, "{err}");
        }
    }

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
