//! The executor: carries out an operation file in order, writing each record's status back
//! in place.
//!
//! Order of work, and why:
//!
//! 1. Open the file without following a symlink, lock it, and (as root) refuse it unless it is
//!    owned by root and not writable by group or others: the file decides what root deletes.
//! 2. Parse every record and map every path *before doing anything*; one bad byte refuses the
//!    whole file.
//! 3. For each record not already `SC=00000000`: note the intent in the journal (below), do the
//!    operation, fsync the directories it changed, write `SC=XXXXXXXX` over field 4 and
//!    `fdatasync` the file. A failed MoveFile/DeleteFile stops the run; later records keep
//!    their status. A failed SetFileShortName is recorded and the run goes on.
//! 4. Write the overall status file.
//!
//! **Crash safety.** Between an operation and its status write a crash would leave a record
//! `NotExecuted` although its move or delete happened; run again naively, the move's source
//! is gone and the run would stop with `ERROR_FILE_NOT_FOUND`. So before each move or delete
//! the executor writes an *intent* to a small journal in the state directory (record offset,
//! and the device/inode of the file about to be moved or deleted) and fdatasyncs it. A re-run
//! that finds the source gone and the destination holding that very inode (or the deleted path
//! gone) records success without touching anything: no operation is done twice, and the end
//! state is the one a single run gives. Short-name changes are idempotent and need no intent.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;

use crate::error::{DelayedError, Result};
use crate::format::{self, Operation, Record, Status};
use crate::fsutil;
use crate::path::PathMap;
use crate::status::{self, FailureDetails, RunState, StatusFile};
use crate::win32;

/// The extended attribute through which ntfs-3g exposes a file's 8.3 short name.
pub const NTFS_DOS_NAME_XATTR: &str = "system.ntfs_dos_name";

/// Test hook: `REEL_DELAYED_TEST_KILL_AT=<stage>:<record>` makes the executor SIGKILL itself
/// at that point (stages `after-intent`, `after-op`, `after-status`), so tests can check
/// recovery from a crash at every step. Nothing sets it outside tests.
pub const KILL_AT_ENV: &str = "REEL_DELAYED_TEST_KILL_AT";

/// How to run a file.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where Windows drive and volume paths are mounted.
    pub map: PathMap,
    /// Where the status file and the journal go.
    pub state_dir: PathBuf,
    /// Refuse a file not owned by root or writable by group/others (default: when running
    /// as root).
    pub require_root_owned: bool,
    /// Check and plan only: nothing is changed, nothing is written.
    pub dry_run: bool,
}

impl RunOptions {
    /// Defaults: no map, root-ownership checks when running as root.
    pub fn new(state_dir: impl Into<PathBuf>) -> RunOptions {
        RunOptions {
            map: PathMap::new(),
            state_dir: state_dir.into(),
            require_root_owned: rustix::process::geteuid().is_root(),
            dry_run: false,
        }
    }
}

/// What happened to one record in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Already `SC=00000000` from an earlier run: skipped.
    AlreadyDone,
    /// Carried out now, successfully.
    Done,
    /// An interrupted earlier run had carried it out but not yet recorded it: recorded now.
    Recovered,
    /// Attempted and failed (the code is in the status).
    Failed,
    /// Not attempted: an earlier critical failure stopped the run.
    NotRun,
    /// Dry run: would be attempted.
    Planned,
}

/// One record's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct RecordOutcome {
    /// 1-based record number.
    pub record: usize,
    /// Byte offset of the record.
    pub offset: u64,
    #[serde(flatten)]
    pub operation: Operation,
    /// The Linux paths it acts on (source and destination for a move).
    pub linux_paths: Vec<PathBuf>,
    /// Status before the run.
    pub before: Status,
    /// Status after the run.
    pub after: Status,
    pub action: Action,
}

impl RecordOutcome {
    /// The Win32 code of the status after the run, if it was executed at some point.
    pub fn code(&self) -> Option<u32> {
        match self.after {
            Status::Code(c) => Some(c),
            Status::NotExecuted => None,
        }
    }
}

/// The outcome of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub file: PathBuf,
    pub state: RunState,
    /// 0 when every record has succeeded (now or earlier), else the first failure's code
    /// (`RestoreStatusResult`).
    pub result: u32,
    /// 1-based record number of the first failure (`RestoreStatusDetails`).
    pub failed_record: Option<usize>,
    pub records: Vec<RecordOutcome>,
    /// Where the status file was written (`None` on a dry run).
    pub status_file: Option<PathBuf>,
}

impl RunReport {
    pub fn succeeded(&self) -> bool {
        self.result == 0
    }
}

/// Carries out the operation file at `path`. `on_record` sees each outcome as it happens
/// (for progress and the journal). Refusals (unsafe, malformed or unmappable file) are
/// errors and change nothing; per-record failures are in the report.
pub fn run(
    path: &Path,
    opts: &RunOptions,
    on_record: &mut dyn FnMut(&RecordOutcome),
) -> Result<RunReport> {
    let (file, meta) = fsutil::open_locked(path)?;
    fsutil::require_regular(path, &meta)?;
    if opts.require_root_owned {
        require_root_owned(path, &meta)?;
    }
    let bytes = fsutil::read_bounded(path, &file, &meta)?;
    let records = format::parse(&bytes).map_err(|source| DelayedError::Format {
        path: path.to_path_buf(),
        source,
    })?;
    let plan = resolve_all(path, &records, &opts.map)?;
    if opts.dry_run {
        return Ok(dry_run(path, &records, plan, on_record));
    }

    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut summary = running_summary(&canonical, records.len());
    let status_file = summary.write(&opts.state_dir)?;
    let (journal, intent) = Journal::open(&opts.state_dir, &canonical)?;
    let mut execution = Execution {
        file: &file,
        path,
        journal,
        intent,
        on_record,
        outcomes: Vec::with_capacity(records.len()),
        stopped: false,
        first_failure: None,
    };
    for (i, (rec, linux_paths)) in records.iter().zip(plan).enumerate() {
        execution.record(i + 1, rec, linux_paths)?;
    }
    let (outcomes, stopped, first_failure) = execution.finish();
    let (result, failed_record) = conclude(&mut summary, &outcomes, stopped, first_failure);
    summary.write(&opts.state_dir)?;

    Ok(RunReport {
        file: path.to_path_buf(),
        state: summary.state,
        result,
        failed_record,
        records: outcomes,
        status_file: Some(status_file),
    })
}

/// Refuses a file root must not run: one owned by another user, or writable by group or
/// others (the file decides what root moves and deletes).
fn require_root_owned(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.uid() != 0 {
        return Err(DelayedError::Unsafe {
            path: path.to_path_buf(),
            reason: format!(
                "it is owned by uid {}, not root, and running it as root would let that user decide what root moves and deletes (chown root {})",
                meta.uid(),
                path.display()
            ),
        });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(DelayedError::Unsafe {
            path: path.to_path_buf(),
            reason: format!(
                "it is writable by group or others (mode {:04o}) (chmod go-w {})",
                meta.mode() & 0o7777,
                path.display()
            ),
        });
    }
    Ok(())
}

/// The report of a dry run: what each record would do, nothing changed or written.
fn dry_run(
    path: &Path,
    records: &[Record],
    plan: Vec<Vec<PathBuf>>,
    on_record: &mut dyn FnMut(&RecordOutcome),
) -> RunReport {
    let outcomes: Vec<RecordOutcome> = records
        .iter()
        .zip(plan)
        .enumerate()
        .map(|(i, (r, linux_paths))| RecordOutcome {
            record: i + 1,
            offset: r.offset,
            operation: r.operation.clone(),
            linux_paths,
            before: r.status,
            after: r.status,
            action: if r.status.succeeded() {
                Action::AlreadyDone
            } else {
                Action::Planned
            },
        })
        .collect();
    for o in &outcomes {
        on_record(o);
    }
    RunReport {
        file: path.to_path_buf(),
        state: RunState::Finished,
        result: 0,
        failed_record: None,
        records: outcomes,
        status_file: None,
    }
}

/// The status of a run of `records` records that has just started.
fn running_summary(canonical: &Path, records: usize) -> StatusFile {
    StatusFile {
        file: canonical.display().to_string(),
        state: RunState::Running,
        started: status::now_rfc3339(),
        ended: None,
        restore_status_result: 0,
        restore_status_result_name: win32::describe(0),
        records,
        succeeded: 0,
        failed: 0,
        not_executed: records,
        restore_status_details: None,
        failures: Vec::new(),
    }
}

/// A run in progress: the file and journal it writes to, and the outcomes so far.
struct Execution<'a> {
    file: &'a File,
    path: &'a Path,
    journal: Journal,
    /// The intent an interrupted run left in the journal.
    intent: Option<Intent>,
    on_record: &'a mut dyn FnMut(&RecordOutcome),
    outcomes: Vec<RecordOutcome>,
    /// A critical record failed: the records after it are not run.
    stopped: bool,
    first_failure: Option<usize>,
}

impl Execution<'_> {
    /// Carries out record `number` (unless it succeeded before or the run stopped) and
    /// writes its status over its status field.
    fn record(&mut self, number: usize, rec: &Record, linux_paths: Vec<PathBuf>) -> Result<()> {
        let mut outcome = RecordOutcome {
            record: number,
            offset: rec.offset,
            operation: rec.operation.clone(),
            linux_paths,
            before: rec.status,
            after: rec.status,
            action: Action::AlreadyDone,
        };
        if !rec.status.succeeded() {
            if self.stopped {
                outcome.action = Action::NotRun;
            } else {
                self.execute(number, rec, &mut outcome)?;
            }
        }
        (self.on_record)(&outcome);
        self.outcomes.push(outcome);
        Ok(())
    }

    fn execute(&mut self, number: usize, rec: &Record, outcome: &mut RecordOutcome) -> Result<()> {
        let pending = self
            .intent
            .filter(|t| t.offset == rec.offset && t.kind == intent_kind(&rec.operation))
            .filter(|_| !rec.status.succeeded());
        let result = execute(
            rec,
            &outcome.linux_paths,
            number,
            &mut self.journal,
            pending,
        );
        failpoint("after-op", number);
        let (code, action) = match result {
            Ok(Effect::Done) => (0, Action::Done),
            Ok(Effect::Recovered) => (0, Action::Recovered),
            Err(code) => (code, Action::Failed),
        };
        let status = Status::Code(code);
        self.file
            .write_all_at(&status.encode(), rec.status_offset)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| DelayedError::io("cannot record the status in", self.path, e))?;
        failpoint("after-status", number);
        outcome.after = status;
        outcome.action = action;
        if code != 0 {
            self.first_failure.get_or_insert(number);
            if rec.operation.is_critical() {
                self.stopped = true;
            }
        }
        Ok(())
    }

    /// Closes the journal: the outcomes, whether the run stopped, its first failure.
    fn finish(self) -> (Vec<RecordOutcome>, bool, Option<usize>) {
        self.journal.finish();
        (self.outcomes, self.stopped, self.first_failure)
    }
}

/// Completes the status of the run: counts, state, and the overall result, which is
/// returned with the record it comes from: the first record that failed in this run, else
/// the first record that is not a success, in file order.
fn conclude(
    summary: &mut StatusFile,
    outcomes: &[RecordOutcome],
    stopped: bool,
    first_failure: Option<usize>,
) -> (u32, Option<usize>) {
    let first_bad = outcomes
        .iter()
        .find(|o| matches!(o.after, Status::Code(c) if c != 0));
    summary.state = if stopped {
        RunState::Stopped
    } else {
        RunState::Finished
    };
    summary.ended = Some(status::now_rfc3339());
    summary.succeeded = outcomes.iter().filter(|o| o.after.succeeded()).count();
    summary.failed = outcomes
        .iter()
        .filter(|o| matches!(o.after, Status::Code(c) if c != 0))
        .count();
    summary.not_executed = outcomes
        .iter()
        .filter(|o| o.after == Status::NotExecuted)
        .count();
    let (result, failed_record) = match (first_failure, first_bad) {
        (Some(n), _) => (outcomes[n - 1].code().unwrap_or(0), Some(n)),
        (None, Some(o)) => (o.code().unwrap_or(0), Some(o.record)),
        (None, None) => (0, None),
    };
    summary.restore_status_result = result;
    summary.restore_status_result_name = win32::describe(result);
    summary.restore_status_details = failed_record.map(|n| failure_details(&outcomes[n - 1]));
    summary.failures = outcomes
        .iter()
        .filter(|o| o.action == Action::Failed)
        .map(failure_details)
        .collect();
    (result, failed_record)
}

fn failure_details(o: &RecordOutcome) -> FailureDetails {
    let code = o.code().unwrap_or(0);
    FailureDetails {
        record: o.record,
        offset: o.offset,
        operation: o.operation.keyword().to_string(),
        path: o.operation.target().to_field(),
        linux_path: o
            .linux_paths
            .last()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        code,
        status: Status::Code(code).to_field(),
        code_name: win32::describe(code),
    }
}

/// The Linux paths of every record, or the first record whose paths cannot be mapped.
pub fn resolve_all(file: &Path, records: &[Record], map: &PathMap) -> Result<Vec<Vec<PathBuf>>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            r.operation
                .paths()
                .into_iter()
                .map(|p| map.resolve(p))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|source| DelayedError::RecordPath {
                    path: file.to_path_buf(),
                    record: i + 1,
                    offset: r.offset,
                    source,
                })
        })
        .collect()
}

enum Effect {
    Done,
    Recovered,
}

fn execute(
    rec: &Record,
    paths: &[PathBuf],
    number: usize,
    journal: &mut Journal,
    pending: Option<Intent>,
) -> std::result::Result<Effect, u32> {
    match (&rec.operation, paths) {
        (Operation::MoveFile { .. }, [src, dst]) => {
            move_file(rec, src, dst, number, journal, pending)
        }
        (Operation::DeleteFile { .. }, [target]) => {
            delete_file(rec, target, number, journal, pending)
        }
        (Operation::SetFileShortName { short_name, .. }, [target]) => {
            set_short_name(target, short_name)
        }
        _ => Err(win32::ERROR_INVALID_PARAMETER),
    }
}

/// ERROR_FILE_NOT_FOUND when the directory exists, else ERROR_PATH_NOT_FOUND.
fn missing(path: &Path) -> u32 {
    match std::fs::metadata(fsutil::parent_dir(path)) {
        Ok(m) if m.is_dir() => win32::ERROR_FILE_NOT_FOUND,
        _ => win32::ERROR_PATH_NOT_FOUND,
    }
}

fn lstat_code(path: &Path) -> std::result::Result<std::fs::Metadata, u32> {
    std::fs::symlink_metadata(path).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOENT) => missing(path),
        _ => win32::from_io_error(&e),
    })
}

fn move_file(
    rec: &Record,
    src: &Path,
    dst: &Path,
    number: usize,
    journal: &mut Journal,
    pending: Option<Intent>,
) -> std::result::Result<Effect, u32> {
    let meta = match lstat_code(src) {
        Ok(m) => m,
        Err(code) => {
            // Done by an interrupted run? The destination then holds the very inode.
            if let Some(t) = pending
                && std::fs::symlink_metadata(dst)
                    .is_ok_and(|m| m.dev() == t.dev && m.ino() == t.ino)
            {
                return Ok(Effect::Recovered);
            }
            return Err(code);
        }
    };
    if meta.is_dir() {
        return Err(win32::ERROR_ACCESS_DENIED);
    }
    journal
        .record(&Intent {
            offset: rec.offset,
            kind: b'M',
            dev: meta.dev(),
            ino: meta.ino(),
        })
        .map_err(|e| win32::from_io_error(&e))?;
    failpoint("after-intent", number);
    // rename(2) never follows a symlink in either last component: a link is moved itself.
    if let Err(e) = std::fs::rename(src, dst) {
        return Err(match e.raw_os_error() {
            Some(libc::ENOENT) => missing(dst),
            _ => win32::from_io_error(&e),
        });
    }
    let src_dir = fsutil::parent_dir(src);
    let dst_dir = fsutil::parent_dir(dst);
    fsutil::fsync_dir(dst_dir).map_err(|e| win32::from_io_error(&e))?;
    if src_dir != dst_dir {
        fsutil::fsync_dir(src_dir).map_err(|e| win32::from_io_error(&e))?;
    }
    Ok(Effect::Done)
}

fn delete_file(
    rec: &Record,
    target: &Path,
    number: usize,
    journal: &mut Journal,
    pending: Option<Intent>,
) -> std::result::Result<Effect, u32> {
    let meta = match lstat_code(target) {
        Ok(m) => m,
        Err(code) => {
            if pending.is_some() && code == win32::ERROR_FILE_NOT_FOUND {
                return Ok(Effect::Recovered);
            }
            return Err(code);
        }
    };
    journal
        .record(&Intent {
            offset: rec.offset,
            kind: b'D',
            dev: meta.dev(),
            ino: meta.ino(),
        })
        .map_err(|e| win32::from_io_error(&e))?;
    failpoint("after-intent", number);
    // symlink_metadata: a symlink to a directory is a link, removed with unlink.
    let removed = if meta.is_dir() {
        std::fs::remove_dir(target).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOTEMPTY | libc::EEXIST) => win32::ERROR_DIR_NOT_EMPTY,
            _ => win32::from_io_error(&e),
        })
    } else {
        std::fs::remove_file(target).map_err(|e| win32::from_io_error(&e))
    };
    removed?;
    fsutil::fsync_dir(fsutil::parent_dir(target)).map_err(|e| win32::from_io_error(&e))?;
    Ok(Effect::Done)
}

/// An 8.3 name: 1–8 characters, optionally a dot and 1–3 more, from the characters FAT and
/// NTFS allow in short names.
pub fn is_valid_short_name(name: &str) -> bool {
    fn ok_char(c: char) -> bool {
        c.is_ascii_alphanumeric() || "!#$%&'()-@^_`{}~".contains(c)
    }
    let (base, ext) = match name.split_once('.') {
        Some((b, e)) => (b, Some(e)),
        None => (name, None),
    };
    let base_ok = (1..=8).contains(&base.len()) && base.chars().all(ok_char);
    let ext_ok = ext.is_none_or(|e| (1..=3).contains(&e.len()) && e.chars().all(ok_char));
    base_ok && ext_ok
}

fn set_short_name(target: &Path, name: &str) -> std::result::Result<Effect, u32> {
    lstat_code(target)?;
    if !is_valid_short_name(name) {
        return Err(win32::ERROR_INVALID_PARAMETER);
    }
    rustix::fs::lsetxattr(
        target,
        NTFS_DOS_NAME_XATTR,
        name.as_bytes(),
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(|e| win32::from_errno(e.raw_os_error()))?;
    // Best effort: the short name lives in the directory entry; ntfs-3g commits on fsync.
    if let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(target)
    {
        let _ = f.sync_all();
    }
    Ok(Effect::Done)
}

fn intent_kind(op: &Operation) -> u8 {
    match op {
        Operation::MoveFile { .. } => b'M',
        Operation::DeleteFile { .. } => b'D',
        Operation::SetFileShortName { .. } => b'S',
    }
}

/// What the executor was about to do when it last wrote the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Intent {
    offset: u64,
    kind: u8,
    dev: u64,
    ino: u64,
}

const INTENT_BYTES: usize = 128;
const INTENT_MAGIC: &str = "reel-delayed-intent 1";

impl Intent {
    fn encode(&self) -> [u8; INTENT_BYTES] {
        let text = format!(
            "{INTENT_MAGIC} {} {} {} {}",
            self.offset, self.kind as char, self.dev, self.ino
        );
        let mut out = [b' '; INTENT_BYTES];
        let n = text.len().min(INTENT_BYTES - 1);
        out[..n].copy_from_slice(&text.as_bytes()[..n]);
        out[INTENT_BYTES - 1] = b'\n';
        out
    }

    fn decode(bytes: &[u8]) -> Option<Intent> {
        let text = std::str::from_utf8(bytes).ok()?;
        let rest = text.trim().strip_prefix(INTENT_MAGIC)?;
        let mut it = rest.split_whitespace();
        let offset = it.next()?.parse().ok()?;
        let kind = match it.next()? {
            "M" => b'M',
            "D" => b'D',
            _ => return None,
        };
        let dev = it.next()?.parse().ok()?;
        let ino = it.next()?.parse().ok()?;
        Some(Intent {
            offset,
            kind,
            dev,
            ino,
        })
    }
}

/// One small file per operation file in the state directory, overwritten in place before
/// each move or delete and removed when a run ends.
struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    fn open(state_dir: &Path, op_file: &Path) -> Result<(Journal, Option<Intent>)> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| DelayedError::io("cannot create state directory", state_dir, e))?;
        let path = state_dir.join(format!(
            "delayed-intent-{:016x}",
            fnv1a(op_file.as_os_str().as_encoded_bytes())
        ));
        let existed = path.exists();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| DelayedError::io("cannot open the journal", &path, e))?;
        if !existed {
            fsutil::fsync_dir(state_dir)
                .map_err(|e| DelayedError::io("cannot sync", state_dir, e))?;
        }
        let mut buf = [0u8; INTENT_BYTES];
        let n = file.read_at(&mut buf, 0).unwrap_or(0);
        let intent = Intent::decode(&buf[..n]);
        Ok((Journal { path, file }, intent))
    }

    fn record(&mut self, intent: &Intent) -> io::Result<()> {
        self.file.write_all_at(&intent.encode(), 0)?;
        self.file.sync_data()
    }

    /// The run is over and every status is on disk: the intent is no longer needed.
    fn finish(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// FNV-1a, 64 bits: a stable name for a journal (a std hasher may change between releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn failpoint(stage: &str, record: usize) {
    static KILL_AT: OnceLock<Option<String>> = OnceLock::new();
    let target = KILL_AT.get_or_init(|| std::env::var(KILL_AT_ENV).ok());
    if let Some(t) = target
        && t.split_once(':')
            .is_some_and(|(s, n)| s == stage && n.parse() == Ok(record))
    {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
        // SIGKILL cannot be caught; wait for it to land.
        loop {
            std::thread::park();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names() {
        for ok in [
            "SHORTN~1.DLL",
            "ShortN~1.dll",
            "A",
            "PROGRA~1",
            "X.Y",
            "A_B-C.$$$",
        ] {
            assert!(is_valid_short_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".DLL",
            "TOOLONGNAME.TXT",
            "A.TOOL",
            "A.B.C",
            "A B.TXT",
            "A*.TXT",
            "É.TXT",
            "A.",
        ] {
            assert!(!is_valid_short_name(bad), "{bad}");
        }
    }

    #[test]
    fn intent_round_trip() {
        let i = Intent {
            offset: 1234,
            kind: b'M',
            dev: u64::MAX,
            ino: 42,
        };
        assert_eq!(Intent::decode(&i.encode()), Some(i));
        assert_eq!(Intent::decode(b"garbage"), None);
        assert_eq!(Intent::decode(&[0xff; 128]), None);
    }
}
