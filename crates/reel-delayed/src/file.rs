//! [`OperationFile`]: an operation file on disk, and appending to it safely.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{DelayedError, Result};
use crate::format::{self, Operation, Record, Status};
use crate::fsutil;
use crate::path::{NtPath, PathKind};

/// An operation file on disk and the records it held when last read.
///
/// Appending never edits the file in place: the new file (old bytes, new records, final NUL)
/// is written under a temporary name, fsynced and renamed over the old one, under the file's
/// lock, so a crash leaves either the old or the new file and a concurrent run never sees a
/// half-written record. The bytes of existing records are copied unchanged.
#[derive(Debug, Clone)]
pub struct OperationFile {
    path: PathBuf,
    records: Vec<Record>,
    len: u64,
}

impl OperationFile {
    /// Reads and checks an existing operation file.
    pub fn open(path: impl AsRef<Path>) -> Result<OperationFile> {
        let path = path.as_ref();
        let file = fsutil::open_nofollow(path, false)?;
        let meta = file
            .metadata()
            .map_err(|e| DelayedError::io("cannot stat", path, e))?;
        fsutil::require_regular(path, &meta)?;
        let bytes = fsutil::read_bounded(path, &file, &meta)?;
        let records = format::parse(&bytes).map_err(|source| DelayedError::Format {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(OperationFile {
            path: path.to_path_buf(),
            records,
            len: bytes.len() as u64,
        })
    }

    /// Opens the file, or creates it with no records (a single NUL, mode 0644, parent
    /// directories created) when it does not exist.
    pub fn open_or_create(path: impl AsRef<Path>) -> Result<OperationFile> {
        let path = path.as_ref();
        match std::fs::symlink_metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = fsutil::parent_dir(path);
                std::fs::create_dir_all(dir)
                    .map_err(|e| DelayedError::io("cannot create directory", dir, e))?;
                fsutil::create_atomically(path, &format::encode_new(&[]), 0o644)?;
            }
            Err(e) => return Err(DelayedError::io("cannot stat", path, e)),
        }
        OperationFile::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The records, in file order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when the file holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Reads the file again (another process may have appended or run it).
    pub fn reload(&mut self) -> Result<()> {
        *self = OperationFile::open(&self.path)?;
        Ok(())
    }

    /// The record holding the same operation as `op`, if any (see [`same_operation`]).
    pub fn find(&self, op: &Operation) -> Option<(usize, &Record)> {
        self.records
            .iter()
            .enumerate()
            .find(|(_, r)| same_operation(&r.operation, op))
            .map(|(i, r)| (i + 1, r))
    }

    /// Appends a `MoveFile` record for two absolute Linux paths. Refuses a duplicate, a
    /// source that is a directory, and a path inside a directory an earlier record deletes.
    pub fn append_move(&mut self, source: &Path, destination: &Path) -> Result<Record> {
        refuse_directory_source(source)?;
        let op = Operation::move_file(
            NtPath::from_linux(source)?,
            NtPath::from_linux(destination)?,
        );
        self.append(op)
    }

    /// Appends a `DeleteFile` record for an absolute Linux path.
    pub fn append_delete(&mut self, path: &Path) -> Result<Record> {
        self.append(Operation::delete_file(NtPath::from_linux(path)?))
    }

    /// Appends a `SetFileShortName` record for an absolute Linux path.
    pub fn append_short_name(&mut self, path: &Path, short_name: &str) -> Result<Record> {
        self.append(Operation::set_short_name(
            NtPath::from_linux(path)?,
            short_name,
        ))
    }

    /// Appends one record.
    pub fn append(&mut self, op: Operation) -> Result<Record> {
        let mut added = self.append_all(vec![op])?;
        added.pop().ok_or_else(|| {
            DelayedError::Invalid("internal: an appended record went missing".into())
        })
    }

    /// Appends records in one atomic replacement of the file (all or none). Each is checked
    /// against the file as it is now on disk and against the ones before it in `ops`.
    pub fn append_all(&mut self, ops: Vec<Operation>) -> Result<Vec<Record>> {
        let path = self.path.clone();
        let (file, meta) = fsutil::open_locked(&path)?;
        fsutil::require_regular(&path, &meta)?;
        let old = fsutil::read_bounded(&path, &file, &meta)?;
        let mut records = format::parse(&old).map_err(|source| DelayedError::Format {
            path: path.clone(),
            source,
        })?;
        let base = records.len();
        for op in &ops {
            check_new(&path, &records, op)?;
            // Stand-in record so later ops in this batch are checked against it.
            records.push(Record {
                operation: op.clone(),
                status: Status::NotExecuted,
                offset: 0,
                status_offset: 0,
            });
        }
        // `old` ends with the final NUL (the parser checked); the new records go before it.
        let mut bytes = old[..old.len() - 2].to_vec();
        for op in &ops {
            format::encode_record(op, Status::NotExecuted, &mut bytes);
        }
        bytes.extend_from_slice(&[0, 0]);
        if bytes.len() as u64 > fsutil::MAX_FILE_BYTES {
            return Err(DelayedError::TooLarge {
                path,
                len: bytes.len() as u64,
                max: fsutil::MAX_FILE_BYTES,
            });
        }
        // The writer never writes what the parser would refuse.
        let reparsed = format::parse(&bytes).map_err(|source| {
            DelayedError::Invalid(format!(
                "cannot write these operations to {}: {source}",
                path.display()
            ))
        })?;
        fsutil::replace_atomically(&path, &bytes, Some(fsutil::Ownership::of(&meta)))?;
        drop(file);
        let added = reparsed[base..].to_vec();
        self.records = reparsed;
        self.len = bytes.len() as u64;
        Ok(added)
    }
}

/// Two records ask for the same thing: same keyword and same paths (Windows paths compared
/// case-insensitively), and for short names the same name. The status does not matter.
pub fn same_operation(a: &Operation, b: &Operation) -> bool {
    match (a, b) {
        (
            Operation::MoveFile {
                source: s1,
                destination: d1,
            },
            Operation::MoveFile {
                source: s2,
                destination: d2,
            },
        ) => s1.compare_key() == s2.compare_key() && d1.compare_key() == d2.compare_key(),
        (Operation::DeleteFile { path: p1, .. }, Operation::DeleteFile { path: p2, .. }) => {
            p1.compare_key() == p2.compare_key()
        }
        (
            Operation::SetFileShortName {
                short_name: n1,
                path: p1,
            },
            Operation::SetFileShortName {
                short_name: n2,
                path: p2,
            },
        ) => n1 == n2 && p1.compare_key() == p2.compare_key(),
        _ => false,
    }
}

fn check_new(path: &Path, records: &[Record], op: &Operation) -> Result<()> {
    for p in op.paths() {
        if let PathKind::Other(_) = p.kind() {
            return Err(DelayedError::Path(crate::path::PathError::Unsupported(
                p.to_field(),
            )));
        }
        if let PathKind::Linux(_) = p.kind() {
            NtPath::from_linux(Path::new(p.as_str()))?;
        }
    }
    if let Operation::SetFileShortName { short_name, .. } = op
        && (short_name.is_empty() || short_name.contains('\0'))
    {
        return Err(DelayedError::Invalid(
            "the short name must be a non-empty 8.3 name, e.g. PROGRA~1.TXT".into(),
        ));
    }
    for (i, r) in records.iter().enumerate() {
        if same_operation(&r.operation, op) {
            return Err(DelayedError::Duplicate {
                path: path.to_path_buf(),
                record: i + 1,
                offset: r.offset,
            });
        }
        if let Operation::DeleteFile { path: dir, .. } = &r.operation
            && op.paths().iter().any(|p| p.is_inside(dir))
        {
            return Err(DelayedError::Order {
                path: path.to_path_buf(),
                record: i + 1,
                offset: r.offset,
                dir: dir.to_field(),
            });
        }
    }
    Ok(())
}

/// Whether two existing paths' directories are on the same file system (`None` when either
/// directory cannot be examined). MoveFile works only within one file system.
pub fn same_filesystem(a: &Path, b: &Path) -> Option<bool> {
    let da = std::fs::metadata(fsutil::parent_dir(a)).ok()?;
    let db = std::fs::metadata(fsutil::parent_dir(b)).ok()?;
    Some(da.dev() == db.dev())
}

/// MoveFile moves files only: a directory as its source is refused when it is scheduled.
fn refuse_directory_source(source: &Path) -> Result<()> {
    if std::fs::symlink_metadata(source).is_ok_and(|m| m.is_dir()) {
        return Err(DelayedError::Invalid(format!(
            "{} is a directory; MoveFile moves files only (schedule its files one by one)",
            source.display()
        )));
    }
    Ok(())
}

/// What may keep an operation being scheduled from working, as things are now: it is
/// appended all the same (things may change before the run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestWarning {
    /// MoveFile's source and destination directories are on different file systems.
    DifferentFileSystems {
        source: PathBuf,
        destination: PathBuf,
    },
}

impl std::fmt::Display for RequestWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RequestWarning::DifferentFileSystems {
                source,
                destination,
            } => write!(
                f,
                "{} and {} are on different file systems now; the move will fail with ERROR_NOT_SAME_DEVICE (17) unless that changes by the time it runs",
                source.display(),
                destination.display()
            ),
        }
    }
}

/// Checks an operation someone asks to schedule, before it goes into a file. Refused: what
/// cannot work whatever happens before the run (a directory as MoveFile's source, a short
/// name that is not 8.3). Warned of: what fails as things are now (a move across file
/// systems). Windows paths are checked when they are carried out, through the map.
pub fn check_request(op: &Operation) -> Result<Vec<RequestWarning>> {
    let mut warnings = Vec::new();
    match op {
        Operation::MoveFile {
            source,
            destination,
        } => {
            if let (PathKind::Linux(s), PathKind::Linux(d)) = (source.kind(), destination.kind()) {
                let (source, destination) = (Path::new(s), Path::new(d));
                refuse_directory_source(source)?;
                if same_filesystem(source, destination) == Some(false) {
                    warnings.push(RequestWarning::DifferentFileSystems {
                        source: source.to_path_buf(),
                        destination: destination.to_path_buf(),
                    });
                }
            }
        }
        Operation::SetFileShortName { short_name, .. } => {
            if !crate::exec::is_valid_short_name(short_name) {
                return Err(DelayedError::Invalid(format!(
                    "{short_name:?} is not an 8.3 short name (1-8 characters, optionally a dot and 1-3 more; letters, digits and !#$%&'()-@^_`{{}}~)"
                )));
            }
        }
        Operation::DeleteFile { .. } => {}
    }
    Ok(warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(p: &Path) -> NtPath {
        NtPath::from_linux(p).unwrap()
    }

    #[test]
    fn a_directory_cannot_be_moved() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let op = Operation::move_file(linux(&sub), linux(&dir.path().join("elsewhere")));
        let e = check_request(&op).unwrap_err();
        assert_eq!(e.class(), crate::ErrorClass::Usage);
        assert!(e.to_string().contains("is a directory"), "{e}");
        // And a file can, on one file system without a warning.
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let op = Operation::move_file(linux(&file), linux(&dir.path().join("g")));
        assert_eq!(check_request(&op).unwrap(), []);
        // The same refusal through the file's own append.
        let mut ops = OperationFile::open_or_create(dir.path().join("ops")).unwrap();
        assert!(ops.append_move(&sub, &dir.path().join("x")).is_err());
        assert!(ops.records().is_empty());
    }

    #[test]
    fn a_move_across_file_systems_is_scheduled_with_a_warning() {
        let here = tempfile::tempdir().unwrap();
        let file = here.path().join("f");
        std::fs::write(&file, "x").unwrap();
        // /proc is a file system of its own wherever a test runs.
        let there = Path::new("/proc/reel-test-destination");
        if same_filesystem(&file, there) != Some(false) {
            panic!(
                "{} and /proc should be on different file systems",
                file.display()
            );
        }
        let op = Operation::move_file(linux(&file), linux(there));
        let warnings = check_request(&op).unwrap();
        assert_eq!(
            warnings,
            [RequestWarning::DifferentFileSystems {
                source: file.clone(),
                destination: there.to_path_buf(),
            }]
        );
        assert!(
            warnings[0]
                .to_string()
                .contains("ERROR_NOT_SAME_DEVICE (17)")
        );
    }

    #[test]
    fn a_short_name_must_be_8_3() {
        let p = linux(Path::new("/x"));
        assert!(check_request(&Operation::set_short_name(p.clone(), "PROGRA~1.TXT")).is_ok());
        for bad in ["not a short name", "TOOLONGNAME.TXT", "A.LONG", ""] {
            let e = check_request(&Operation::set_short_name(p.clone(), bad)).unwrap_err();
            assert!(
                e.class() == crate::ErrorClass::Usage && e.to_string().contains("8.3"),
                "{bad:?}: {e}"
            );
        }
    }

    #[test]
    fn windows_paths_are_left_to_the_run() {
        let op = Operation::move_file(
            NtPath::from_user(r"C:\Stage\a.dll").unwrap(),
            NtPath::from_user(r"D:\a.dll").unwrap(),
        );
        assert_eq!(check_request(&op).unwrap(), []);
    }
}
