//! `reel delayed`: Srdelayed operation files — append records, show them, carry them out,
//! register them for the next boot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, anyhow};
use clap::Subcommand;
use reel_delayed::status::DEFAULT_STATE_DIR;
use reel_delayed::{
    Action, DelayedError, MapEntry, NtPath, Operation, OperationFile, RecordOutcome, RunOptions,
    Status, StatusFile, systemd, win32,
};
use serde::Serialize;

use crate::Global;
use crate::exit::{self, UsageError};
use crate::ui::print_json;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The operation file is Windows' srdelayed format, byte for byte (UTF-16LE, four NUL-terminated
fields per record, a final NUL). Paths are Linux paths, or Windows drive/volume paths carried
out through --map.

Examples:
  reel delayed add-move /usr/lib/.libfoo.so.new /usr/lib/libfoo.so --file /var/lib/reel/ops
  reel delayed add-delete /usr/lib/libold.so --file /var/lib/reel/ops
  reel delayed show /var/lib/reel/ops
  reel delayed register /var/lib/reel/ops          # run it early in the next boot
  reel delayed run /var/lib/reel/ops               # or run it now
  reel delayed run ops.bin --map C:=/mnt/c         # a file written on Windows
  reel delayed status                              # the outcome of the last run")]
pub struct Args {
    #[command(subcommand)]
    command: DelayedCommand,
}

#[derive(Subcommand, Debug)]
enum DelayedCommand {
    /// Append a MoveFile record: at run time SOURCE is renamed over DESTINATION (files only,
    /// same file system). The file is created if missing; a duplicate record is refused.
    #[command(after_help = "\
Examples:
  reel delayed add-move /usr/lib/.libfoo.so.new /usr/lib/libfoo.so --file /var/lib/reel/ops
  reel delayed add-move 'C:\\Stage\\a.dll' 'C:\\Windows\\System32\\a.dll' --file ops.bin")]
    AddMove {
        /// The file to move: a Linux path, C:\\…, Volume{GUID}\\… or \\??\\….
        source: String,
        /// Where it goes (replaced if it exists).
        destination: String,
        #[command(flatten)]
        file: AddFile,
    },
    /// Append a DeleteFile record: a file, a symlink (itself) or an empty directory.
    /// Schedule a directory's contents before the directory.
    #[command(after_help = "\
Examples:
  reel delayed add-delete /opt/app/old/lib.so --file /var/lib/reel/ops
  reel delayed add-delete /opt/app/old --file /var/lib/reel/ops")]
    AddDelete {
        /// The file, symlink or empty directory to delete.
        path: String,
        #[command(flatten)]
        file: AddFile,
    },
    /// Append a SetFileShortName record: give PATH the 8.3 name SHORT_NAME (NTFS through
    /// ntfs-3g; elsewhere the run records ERROR_NOT_SUPPORTED and goes on).
    #[command(
        name = "add-shortname",
        after_help = "Example:\n  reel delayed add-shortname /mnt/c/temp/ShortFileName.dll 'SHORTN~1.DLL' --file ops"
    )]
    AddShortname {
        /// The file to name.
        path: String,
        /// The 8.3 name, e.g. PROGRA~1.TXT.
        short_name: String,
        #[command(flatten)]
        file: AddFile,
    },
    /// Print the records and their status (NotExecuted or SC=XXXXXXXX with its Win32 name).
    #[command(
        after_help = "Examples:\n  reel delayed show /var/lib/reel/ops\n  reel delayed show /var/lib/reel/ops --json"
    )]
    Show {
        #[command(flatten)]
        file: FileArg,
    },
    /// Carry the file out now: in order, status written back in place after each record.
    /// Failed moves and deletes stop the run; records already SC=00000000 are skipped.
    #[command(after_help = "\
Exit status: 0 when every record succeeded, 1 when one failed (see `reel delayed show`),
2 when the file was refused (malformed, unsafe, unmapped path) and nothing was done.

Examples:
  reel delayed run /var/lib/reel/ops
  reel delayed run ops.bin --map C:=/mnt/c --map 'Volume{26a21bda-a627-11d7-9931-806e6f6e6963}=/mnt/v'
  reel delayed run /var/lib/reel/ops --dry-run")]
    Run {
        #[command(flatten)]
        file: FileArg,
        #[command(flatten)]
        run: RunArgs,
        /// Check the file and show what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the file early in the next boot: installs and enables a one-shot systemd unit
    /// (the counterpart of Windows' SetupExecute). It disables itself after running.
    #[command(after_help = "\
FILE is the path the booting system will see. With --root, the unit is written into that
system's root (e.g. a restored system mounted at /mnt/sys), as Windows writes SetupExecute
into the recovered registry.

Examples:
  reel delayed register /var/lib/reel/ops
  reel delayed register /var/lib/reel/ops --root /mnt/sys --reel-path /usr/bin/reel")]
    Register {
        #[command(flatten)]
        file: FileArg,
        /// Root of the system that will boot.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
        /// The reel binary as the booting system sees it (default: this binary).
        #[arg(long, value_name = "PATH")]
        reel_path: Option<PathBuf>,
        /// Map a Windows volume for the boot run: C:=/mnt/c or Volume{GUID}=/mnt/v (repeatable).
        #[arg(long = "map", value_name = "VOLUME=DIR")]
        map: Vec<MapEntry>,
        /// State directory for the boot run (default there: /var/lib/reel). Not taken from
        /// $REEL_STATE_DIR: the boot run does not inherit this shell's environment.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
    },
    /// Remove the boot registration of a file (the unit does this itself after running).
    #[command(after_help = "Example:\n  reel delayed unregister /var/lib/reel/ops --root /mnt/sys")]
    Unregister {
        #[command(flatten)]
        file: FileArg,
        /// Root of the system the registration is in.
        #[arg(long, value_name = "DIR", default_value = "/")]
        root: PathBuf,
    },
    /// The outcome of the last run (RestoreStatusResult / RestoreStatusDetails).
    #[command(after_help = "Example:\n  reel delayed status --json")]
    Status {
        #[command(flatten)]
        state: StateDirArg,
    },
}

#[derive(clap::Args, Debug)]
struct AddFile {
    /// The operation file to append to (created if missing).
    #[arg(
        long = "file",
        short = 'f',
        value_name = "FILE",
        env = "REEL_DELAYED_FILE"
    )]
    file: PathBuf,
}

#[derive(clap::Args, Debug)]
struct FileArg {
    /// The operation file.
    #[arg(value_name = "FILE", required_unless_present = "file_flag")]
    file: Option<PathBuf>,
    /// The operation file (instead of the positional FILE).
    #[arg(
        long = "file",
        short = 'f',
        value_name = "FILE",
        conflicts_with = "file"
    )]
    file_flag: Option<PathBuf>,
}

impl FileArg {
    fn path(&self) -> Result<&Path> {
        self.file
            .as_deref()
            .or(self.file_flag.as_deref())
            .ok_or_else(|| anyhow!(UsageError("name the operation file".into())))
    }
}

#[derive(clap::Args, Debug)]
struct StateDirArg {
    /// Where the status file and the crash journal go.
    #[arg(long, value_name = "DIR", env = "REEL_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Where a Windows volume is mounted: C:=/mnt/c or Volume{GUID}=/mnt/v (repeatable).
    #[arg(long = "map", value_name = "VOLUME=DIR")]
    map: Vec<MapEntry>,
    /// Where the status file and the crash journal go [default: /var/lib/reel].
    #[arg(long, value_name = "DIR", env = "REEL_STATE_DIR")]
    state_dir: Option<PathBuf>,
}

impl RunArgs {
    fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
    }
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    match args.command {
        DelayedCommand::AddMove {
            source,
            destination,
            file,
        } => add(global, &file.file, Added::Move(source, destination)),
        DelayedCommand::AddDelete { path, file } => add(global, &file.file, Added::Delete(path)),
        DelayedCommand::AddShortname {
            path,
            short_name,
            file,
        } => add(global, &file.file, Added::ShortName(path, short_name)),
        DelayedCommand::Show { file } => show(global, file.path()?),
        DelayedCommand::Run { file, run, dry_run } => run_file(global, file.path()?, &run, dry_run),
        DelayedCommand::Register {
            file,
            root,
            reel_path,
            map,
            state_dir,
        } => {
            let run = RunArgs { map, state_dir };
            register(global, file.path()?, &root, reel_path, &run)
        }
        DelayedCommand::Unregister { file, root } => unregister(global, file.path()?, &root),
        DelayedCommand::Status { state } => status(global, &state.state_dir),
    }
}

enum Added {
    Move(String, String),
    Delete(String),
    ShortName(String, String),
}

fn user_path(arg: &str) -> Result<NtPath> {
    NtPath::from_user(arg).map_err(|e| DelayedError::from(e).into())
}

#[derive(Serialize)]
struct AddedJson<'a> {
    file: &'a Path,
    record: usize,
    offset: u64,
    #[serde(flatten)]
    operation: &'a Operation,
    status: Status,
}

fn add(global: &Global, file: &Path, what: Added) -> Result<ExitCode> {
    let op = match what {
        Added::Move(s, d) => Operation::move_file(user_path(&s)?, user_path(&d)?),
        Added::Delete(p) => Operation::delete_file(user_path(&p)?),
        Added::ShortName(p, name) => Operation::set_short_name(user_path(&p)?, name),
    };
    // Refusals leave the file as it was (not even created).
    let warnings = reel_delayed::check_request(&op)?;
    if !global.quiet {
        for w in warnings {
            eprintln!("reel: warning: {w}");
        }
    }
    let mut ops = OperationFile::open_or_create(file)?;
    let record = ops.append(op)?;
    let number = ops.records().len();
    if global.json {
        print_json(&AddedJson {
            file,
            record: number,
            offset: record.offset,
            operation: &record.operation,
            status: record.status,
        })?;
    } else if !global.quiet {
        println!(
            "{}: record {number} at byte offset {}: {}",
            file.display(),
            record.offset,
            record.operation
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn status_words(status: Status) -> String {
    match status {
        Status::NotExecuted => "not executed".into(),
        Status::Code(0) => "ok".into(),
        Status::Code(c) => win32::describe(c),
    }
}

#[derive(Serialize)]
struct ShowJson<'a> {
    file: &'a Path,
    bytes: u64,
    records: Vec<ShowRecord<'a>>,
}

#[derive(Serialize)]
struct ShowRecord<'a> {
    record: usize,
    offset: u64,
    status_offset: u64,
    #[serde(flatten)]
    operation: &'a Operation,
    status: Status,
    code: Option<u32>,
    code_name: Option<String>,
}

fn show(global: &Global, file: &Path) -> Result<ExitCode> {
    let ops = OperationFile::open(file)?;
    if global.json {
        let records = ops
            .records()
            .iter()
            .enumerate()
            .map(|(i, r)| ShowRecord {
                record: i + 1,
                offset: r.offset,
                status_offset: r.status_offset,
                operation: &r.operation,
                status: r.status,
                code: match r.status {
                    Status::Code(c) => Some(c),
                    Status::NotExecuted => None,
                },
                code_name: match r.status {
                    Status::Code(c) => win32::name(c).map(str::to_string),
                    Status::NotExecuted => None,
                },
            })
            .collect();
        print_json(&ShowJson {
            file,
            bytes: ops.len(),
            records,
        })?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{}: {} record{}, {} bytes",
        file.display(),
        ops.records().len(),
        if ops.records().len() == 1 { "" } else { "s" },
        ops.len()
    );
    if !ops.is_empty() {
        println!(
            "{:>4}  {:>8}  {:<11}  {:<28}  OPERATION",
            "#", "OFFSET", "STATUS", "RESULT"
        );
    }
    for (i, r) in ops.records().iter().enumerate() {
        println!(
            "{:>4}  {:>8}  {:<11}  {:<28}  {}",
            i + 1,
            r.offset,
            r.status.to_field(),
            status_words(r.status),
            r.operation
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn path_map(run: &RunArgs) -> reel_delayed::PathMap {
    let mut map = reel_delayed::PathMap::new();
    for e in &run.map {
        map.insert(e.clone());
    }
    map
}

fn outcome_line(o: &RecordOutcome, total: usize) -> String {
    let what = match &o.operation {
        Operation::MoveFile { .. } => format!(
            "MoveFile {} -> {}",
            o.linux_paths
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            o.linux_paths
                .get(1)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        Operation::DeleteFile { .. } => format!(
            "DeleteFile {}",
            o.linux_paths
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
        Operation::SetFileShortName { short_name, .. } => format!(
            "SetFileShortName {} as {short_name}",
            o.linux_paths
                .first()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ),
    };
    let result = match o.action {
        Action::AlreadyDone => "already done (SC=00000000), skipped".to_string(),
        Action::Done => "done, SC=00000000".to_string(),
        Action::Recovered => {
            "done by an interrupted earlier run, recorded now (SC=00000000)".to_string()
        }
        Action::Failed => {
            let code = o.code().unwrap_or(0);
            let tail = if o.operation.is_critical() {
                "; stopping: MoveFile and DeleteFile failures are critical"
            } else {
                "; going on: short names are not critical"
            };
            format!("FAILED, {} {}{tail}", o.after, win32::describe(code))
        }
        Action::NotRun => format!("not run ({})", o.after),
        Action::Planned => "would run".to_string(),
    };
    format!("record {}/{total} {what}: {result}", o.record)
}

#[derive(Serialize)]
struct RunJson<'a> {
    #[serde(flatten)]
    report: &'a reel_delayed::RunReport,
    result_name: String,
}

fn run_file(global: &Global, file: &Path, run: &RunArgs, dry_run: bool) -> Result<ExitCode> {
    let mut opts = RunOptions::new(run.state_dir());
    opts.map = path_map(run);
    opts.dry_run = dry_run;
    let mut total = 0usize;
    if let Ok(ops) = OperationFile::open(file) {
        total = ops.records().len();
    }
    let report = reel_delayed::run(file, &opts, &mut |o| {
        let show = match o.action {
            Action::AlreadyDone | Action::NotRun => global.verbose > 0,
            _ => true,
        };
        if show && !global.quiet {
            eprintln!("reel delayed: {}", outcome_line(o, total.max(o.record)));
        }
    })?;
    if global.json {
        print_json(&RunJson {
            report: &report,
            result_name: win32::describe(report.result),
        })?;
    }
    let counts = |a: Action| report.records.iter().filter(|o| o.action == a).count();
    if !global.quiet {
        if dry_run {
            eprintln!(
                "reel delayed: {}: {} record(s) would run, {} already done; nothing was changed",
                file.display(),
                counts(Action::Planned),
                counts(Action::AlreadyDone)
            );
        } else if report.succeeded() {
            eprintln!(
                "reel delayed: {}: all {} record(s) succeeded ({} now, {} earlier)",
                file.display(),
                report.records.len(),
                counts(Action::Done) + counts(Action::Recovered),
                counts(Action::AlreadyDone)
            );
        } else {
            eprintln!(
                "reel delayed: {}: RestoreStatusResult {} from record {}{}; details in {}",
                file.display(),
                win32::describe(report.result),
                report.failed_record.unwrap_or(0),
                match report.state {
                    reel_delayed::RunState::Stopped => format!(
                        ", {} record(s) after it not run; fix the cause and run again (done records are skipped)",
                        counts(Action::NotRun)
                    ),
                    _ => String::new(),
                },
                report
                    .status_file
                    .as_deref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            );
        }
    }
    Ok(if report.succeeded() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    })
}

#[derive(Serialize)]
struct RegisterJson<'a> {
    unit: &'a str,
    operation_file: &'a Path,
    template: &'a Path,
    enablement: &'a Path,
    dropin: Option<&'a Path>,
}

fn absolute_file(file: &Path) -> Result<PathBuf> {
    std::path::absolute(file).map_err(|e| anyhow!(UsageError(format!("{}: {e}", file.display()))))
}

fn in_root(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn register(
    global: &Global,
    file: &Path,
    root: &Path,
    reel_path: Option<PathBuf>,
    run: &RunArgs,
) -> Result<ExitCode> {
    let is_live = root == Path::new("/");
    if !is_live && !file.is_absolute() {
        return Err(anyhow!(UsageError(format!(
            "with --root, give the operation file as the booting system sees it: an absolute path (not {})",
            file.display()
        ))));
    }
    let file = absolute_file(file)?;
    let seen_here = in_root(root, &file);
    match OperationFile::open(&seen_here) {
        Ok(ops) => {
            if ops.records().iter().all(|r| r.status.succeeded()) && !global.quiet {
                eprintln!(
                    "reel: warning: every record of {} is already done; the boot run will have nothing to do",
                    seen_here.display()
                );
            }
        }
        Err(DelayedError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound && !is_live =>
        {
            if !global.quiet {
                eprintln!(
                    "reel: warning: {} does not exist yet; the unit only runs if it exists at boot",
                    seen_here.display()
                );
            }
        }
        Err(DelayedError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Err(anyhow!(UsageError(format!(
                "{} does not exist; add records first (reel delayed add-move … --file {})",
                file.display(),
                file.display()
            ))));
        }
        Err(e) => return Err(e.into()),
    }
    let reel_binary = match reel_path {
        Some(p) => p,
        None => std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| anyhow!("cannot find this reel binary ({e}); give --reel-path"))?,
    };
    if !in_root(root, &reel_binary).is_file() && !global.quiet {
        eprintln!(
            "reel: warning: {} does not exist under {}; the unit will fail at boot unless reel is installed there (see --reel-path)",
            reel_binary.display(),
            root.display()
        );
    }
    let mut run_args = Vec::new();
    if let Some(dir) = &run.state_dir {
        run_args.push("--state-dir".to_string());
        run_args.push(dir.display().to_string());
    }
    for e in &run.map {
        run_args.push("--map".to_string());
        run_args.push(e.to_string());
    }
    let reg = systemd::register(&systemd::Registration {
        root: root.to_path_buf(),
        operation_file: file.clone(),
        reel_binary,
        run_args,
    })?;
    if global.json {
        print_json(&RegisterJson {
            unit: &reg.unit,
            operation_file: &file,
            template: &reg.template,
            enablement: &reg.enablement,
            dropin: reg.dropin.as_deref(),
        })?;
    } else if !global.quiet {
        println!(
            "registered {}: `reel delayed run {}` runs early in the next boot{}",
            reg.unit,
            file.display(),
            if is_live {
                String::new()
            } else {
                format!(" of the system in {}", root.display())
            }
        );
        println!("  unit:      {}", reg.template.display());
        println!("  enabled:   {}", reg.enablement.display());
        if let Some(d) = &reg.dropin {
            println!("  options:   {}", d.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn unregister(global: &Global, file: &Path, root: &Path) -> Result<ExitCode> {
    let file = if root == Path::new("/") {
        absolute_file(file)?
    } else {
        file.to_path_buf()
    };
    let unit = systemd::unit_name(&file)?;
    let was = systemd::unregister(root, &file)?;
    if global.json {
        print_json(&serde_json::json!({ "unit": unit, "was_registered": was }))?;
    } else if !global.quiet {
        if was {
            println!("unregistered {unit}");
        } else {
            println!("{unit} was not registered");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn status(global: &Global, state_dir: &Path) -> Result<ExitCode> {
    let s = StatusFile::read(state_dir).map_err(|e| match e {
        DelayedError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            anyhow!(UsageError(format!(
                "no run recorded in {} (nothing has been run with this state directory)",
                state_dir.display()
            )))
        }
        e => e.into(),
    })?;
    if global.json {
        print_json(&s)?;
    } else {
        println!("file:                 {}", s.file);
        let state = match s.state {
            reel_delayed::RunState::Running => "running (or interrupted: run the file again)",
            reel_delayed::RunState::Finished => "finished",
            reel_delayed::RunState::Stopped => "stopped at a failed MoveFile or DeleteFile",
        };
        println!("state:                {state}");
        println!("started:              {}", s.started);
        if let Some(e) = &s.ended {
            println!("ended:                {e}");
        }
        println!("RestoreStatusResult:  {}", s.restore_status_result_name);
        println!(
            "records:              {} ({} succeeded, {} failed, {} not executed)",
            s.records, s.succeeded, s.failed, s.not_executed
        );
        if let Some(d) = &s.restore_status_details {
            println!(
                "RestoreStatusDetails: record {} at byte offset {}: {} {} -> {}",
                d.record, d.offset, d.operation, d.path, d.code_name
            );
        }
    }
    Ok(if s.restore_status_result == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    })
}
