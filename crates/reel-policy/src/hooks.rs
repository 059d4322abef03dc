//! Hooks: executables in `pre-backup.d/`, `post-backup.d/` and `post-restore.d/` (merged over
//! the three levels like every drop-in directory) that let applications quiesce before a
//! backup, resume after it, and learn about restores.
//!
//! The contract a hook sees:
//! - hooks of a phase run one after another, in lexical order of their names, with stdin on
//!   /dev/null, the working directory `/`, and stdout and stderr captured (the last 4 KiB are
//!   reported);
//! - the environment holds `REEL_HOOK` (`pre-backup`, `post-backup` or `post-restore`) and what
//!   the caller adds: reel sets `REEL_SET_ID` (the set being written or restored),
//!   `REEL_SET_NAME`, `REEL_PATHS` (the paths, one a line), `REEL_SNAPSHOT` (post-backup: the
//!   snapshots read, one a line), `REEL_STATUS` (after the work: `ok`, `partial` or
//!   `failed`) and `REEL_RESTORE_ID` (the new last-restore-id); `REEL_ROOT` when set;
//! - each hook has `hook-timeout` (reel.conf, default 120 s) to finish; then its process group
//!   gets SIGTERM and, 2 s later, SIGKILL;
//! - a failure (non-zero exit, signal, timeout, cannot start) is reported and the work goes on,
//!   except that a **pre-backup** hook exiting with [`HOOK_ABORT_STATUS`] (99, also given to it
//!   as `REEL_HOOK_ABORT_STATUS`) asks reel to abort the backup.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The exit status with which a pre-backup hook asks reel to abort the backup.
pub const HOOK_ABORT_STATUS: i32 = 99;
/// How long a hook has after SIGTERM before SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(2);
/// How much of a hook's output is kept for the report.
pub const OUTPUT_TAIL: u64 = 4096;

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HookPhase {
    PreBackup = 0,
    PostBackup = 1,
    PostRestore = 2,
}

impl HookPhase {
    pub const ALL: [HookPhase; 3] = [
        HookPhase::PreBackup,
        HookPhase::PostBackup,
        HookPhase::PostRestore,
    ];

    /// `pre-backup`, `post-backup`, `post-restore`.
    pub fn name(self) -> &'static str {
        match self {
            HookPhase::PreBackup => "pre-backup",
            HookPhase::PostBackup => "post-backup",
            HookPhase::PostRestore => "post-restore",
        }
    }

    /// The drop-in directory: `pre-backup.d` etc.
    pub fn dir_name(self) -> &'static str {
        match self {
            HookPhase::PreBackup => "pre-backup.d",
            HookPhase::PostBackup => "post-backup.d",
            HookPhase::PostRestore => "post-restore.d",
        }
    }
}

/// One hook executable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hook {
    pub phase: HookPhase,
    pub name: String,
    pub path: PathBuf,
}

/// The environment given to hooks, beyond `REEL_HOOK`.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    vars: Vec<(String, OsString)>,
}

impl HookContext {
    pub fn new() -> HookContext {
        HookContext::default()
    }

    /// Adds a variable (a later one of the same name wins).
    pub fn var(mut self, name: impl Into<String>, value: impl Into<OsString>) -> HookContext {
        let name = name.into();
        self.vars.retain(|(n, _)| *n != name);
        self.vars.push((name, value.into()));
        self
    }

    /// `REEL_SET_ID`.
    pub fn set_id(self, id: impl ToString) -> HookContext {
        self.var("REEL_SET_ID", id.to_string())
    }

    /// `REEL_STATUS`: `ok`, `partial` or `failed`.
    pub fn status(self, status: &str) -> HookContext {
        self.var("REEL_STATUS", status)
    }

    pub fn vars(&self) -> &[(String, OsString)] {
        &self.vars
    }
}

/// How one hook ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum HookStatus {
    Ok,
    Failed { code: i32 },
    Killed { signal: i32 },
    TimedOut { after_secs: u64 },
    NotStarted { error: String },
}

/// One hook's run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookOutcome {
    pub hook: Hook,
    #[serde(flatten)]
    pub status: HookStatus,
    pub elapsed_ms: u64,
    /// The end of what it wrote on stdout and stderr (lossy UTF-8).
    pub output: String,
}

impl HookOutcome {
    pub fn is_ok(&self) -> bool {
        self.status == HookStatus::Ok
    }
}

/// The runs of one phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HookReport {
    pub phase: HookPhase,
    pub outcomes: Vec<HookOutcome>,
}

impl HookReport {
    /// The hooks that did not succeed.
    pub fn failures(&self) -> impl Iterator<Item = &HookOutcome> {
        self.outcomes.iter().filter(|o| !o.is_ok())
    }

    /// True when a pre-backup hook asked to abort the backup (exit status 99).
    pub fn abort_requested(&self) -> bool {
        self.phase == HookPhase::PreBackup
            && self.outcomes.iter().any(|o| {
                o.status
                    == HookStatus::Failed {
                        code: HOOK_ABORT_STATUS,
                    }
            })
    }
}

impl std::fmt::Display for HookOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.status {
            HookStatus::Ok => "succeeded".to_string(),
            HookStatus::Failed { code } => format!("failed with exit status {code}"),
            HookStatus::Killed { signal } => format!("was killed by signal {signal}"),
            HookStatus::TimedOut { after_secs } => {
                format!("timed out after {after_secs} s and was killed")
            }
            HookStatus::NotStarted { error } => format!("could not start: {error}"),
        };
        write!(
            f,
            "{} hook {} {what}",
            self.hook.phase.name(),
            self.hook.path.display()
        )?;
        let tail = self.output.trim_end();
        if !self.is_ok() && !tail.is_empty() {
            let last = tail.lines().last().unwrap_or_default();
            write!(f, " (last output: {last})")?;
        }
        Ok(())
    }
}

/// Runs `hooks` in order, each with at most `timeout`.
pub fn run_hooks(
    phase: HookPhase,
    hooks: &[Hook],
    ctx: &HookContext,
    timeout: Duration,
) -> HookReport {
    let outcomes = hooks.iter().map(|h| run_one(h, ctx, timeout)).collect();
    HookReport { phase, outcomes }
}

fn run_one(hook: &Hook, ctx: &HookContext, timeout: Duration) -> HookOutcome {
    let start = Instant::now();
    let done = |status: HookStatus, output: String| HookOutcome {
        hook: hook.clone(),
        status,
        elapsed_ms: start.elapsed().as_millis() as u64,
        output,
    };
    // Output goes to an unlinked temporary file: no pipe to drain, no deadlock, and only the
    // tail is read back.
    let out = match tempfile::tempfile().and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(o) => o,
        Err(e) => {
            return done(
                HookStatus::NotStarted {
                    error: format!("no temporary file for its output: {e}"),
                },
                String::new(),
            );
        }
    };
    let (stdout, mut reader) = out;
    let stderr = match stdout.try_clone() {
        Ok(s) => s,
        Err(e) => {
            return done(
                HookStatus::NotStarted {
                    error: e.to_string(),
                },
                String::new(),
            );
        }
    };
    let mut cmd = Command::new(&hook.path);
    cmd.stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .current_dir("/")
        .env("REEL_HOOK", hook.phase.name())
        .process_group(0);
    if hook.phase == HookPhase::PreBackup {
        cmd.env("REEL_HOOK_ABORT_STATUS", HOOK_ABORT_STATUS.to_string());
    }
    for (k, v) in ctx.vars() {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return done(
                HookStatus::NotStarted {
                    error: e.to_string(),
                },
                String::new(),
            );
        }
    };
    drop(cmd);
    let deadline = start + timeout;
    let mut nap = Duration::from_millis(1);
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) => {}
            Err(_) => break None,
        }
        let now = Instant::now();
        if now >= deadline {
            break None;
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(50));
    };
    let status = match status {
        Some(st) => match (st.code(), st.signal()) {
            (Some(0), _) => HookStatus::Ok,
            (Some(code), _) => HookStatus::Failed { code },
            (None, Some(signal)) => HookStatus::Killed { signal },
            (None, None) => HookStatus::Failed { code: -1 },
        },
        None => {
            kill_group(child.id(), rustix::process::Signal::TERM);
            let grace_end = Instant::now() + KILL_GRACE;
            while Instant::now() < grace_end && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            kill_group(child.id(), rustix::process::Signal::KILL);
            let _ = child.wait();
            HookStatus::TimedOut {
                after_secs: timeout.as_secs(),
            }
        }
    };
    done(status, read_tail(&mut reader))
}

fn kill_group(pid: u32, signal: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

fn read_tail(f: &mut File) -> String {
    let Ok(len) = f.seek(SeekFrom::End(0)) else {
        return String::new();
    };
    let start = len.saturating_sub(OUTPUT_TAIL);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let _ = f.take(OUTPUT_TAIL).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
