//! Test support shared by reel's crates (a dev-dependency only).
//!
//! The rule of the project: a test that needs root, a tool or a kernel feature checks for it.
//! When it is missing the test **fails** if `REEL_REQUIRE_ALL=1` (CI sets it), and otherwise
//! prints why it skipped. Never a silent pass. Use it as:
//!
//! ```no_run
//! # fn t() {
//! if !reel_testkit::require_tool("bsdtar") { return; }
//! if !reel_testkit::require_root("mounts a btrfs image") { return; }
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

/// True when every requirement must be met (`REEL_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    std::env::var("REEL_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Reports a missing requirement: panics under `REEL_REQUIRE_ALL=1`, else prints the reason
/// on stderr. Returns false so callers can `return` from the test.
pub fn missing(what: &str) -> bool {
    if require_all() {
        panic!("requirement missing and REEL_REQUIRE_ALL=1: {what}");
    }
    eprintln!("SKIPPED: {what} (set REEL_REQUIRE_ALL=1 to make this a failure)");
    false
}

/// True when `tool` is on PATH; else reports it missing.
pub fn require_tool(tool: &str) -> bool {
    if find_on_path(tool).is_some() {
        true
    } else {
        missing(&format!("the tool `{tool}` is not installed"))
    }
}

/// True when running as root; else reports it missing (`why` says what needs root).
pub fn require_root(why: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        missing(&format!("root is needed: {why}"))
    }
}

/// The full path of `tool` on PATH.
pub fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Runs a command, panicking with its stderr when it fails; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory that is also a `REEL_HOME` for commands run by the test.
pub struct TempHome {
    pub dir: tempfile::TempDir,
}

impl TempHome {
    pub fn new() -> TempHome {
        TempHome {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command with `REEL_HOME` pointing here and no inherited `REEL_TAPE`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("REEL_HOME", self.path().join("reel-home"));
        c.env_remove("REEL_TAPE");
        c
    }
}

impl Default for TempHome {
    fn default() -> Self {
        Self::new()
    }
}

/// Writes a file, creating parent directories.
pub fn write_file(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dirs");
    }
    std::fs::write(path, content).expect("write file");
}

/// Deterministic pseudo-random bytes (xorshift), for test content that does not compress.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
