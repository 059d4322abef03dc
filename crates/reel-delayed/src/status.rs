//! The overall status file: the Linux counterpart of the `RestoreStatusResult` and
//! `RestoreStatusDetails` values Srdelayed writes under
//! `HKLM\Software\Microsoft\Windows NT\CurrentVersion\SystemRestore`.
//!
//! `<state dir>/delayed-status.toml` (default state dir `/var/lib/reel`, overridable with
//! `REEL_STATE_DIR`) describes the last run. It is written atomically when a run starts
//! (`state = "running"`, so a crash leaves that behind) and when it ends:
//!
//! ```toml
//! file = "/var/lib/reel/restore-ops"
//! state = "stopped"                     # running | finished | stopped
//! started = "2025-01-01T00:00:00Z"
//! ended = "2025-01-01T00:00:01Z"
//! restore_status_result = 145           # 0 when every operation succeeded
//! restore_status_result_name = "ERROR_DIR_NOT_EMPTY (145)"
//! records = 3
//! succeeded = 1                          # including records done by an earlier run
//! failed = 1
//! not_executed = 1
//!
//! [restore_status_details]              # only when restore_status_result != 0
//! record = 2                             # 1-based
//! offset = 120                           # byte offset of the record
//! operation = "DeleteFile"
//! path = "\\??\\/srv/old"
//! code = 145
//! status = "SC=00000091"
//!
//! [[failures]]                           # every failed record of this run
//! record = 2
//! ...
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DelayedError, Result};
use crate::fsutil;

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/reel";
/// The environment variable that overrides it.
pub const STATE_DIR_ENV: &str = "REEL_STATE_DIR";
/// The status file's name in the state directory.
pub const STATUS_FILE_NAME: &str = "delayed-status.toml";

/// The state directory: `$REEL_STATE_DIR`, else `/var/lib/reel`.
pub fn default_state_dir() -> PathBuf {
    std::env::var_os(STATE_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Started and not ended: if this is what a reader finds, the run was interrupted.
    Running,
    /// Went through every record (short-name failures may be among them).
    Finished,
    /// Stopped at a failed MoveFile or DeleteFile.
    Stopped,
}

/// One failed record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetails {
    /// 1-based record number.
    pub record: usize,
    /// Byte offset of the record in the operation file.
    pub offset: u64,
    pub operation: String,
    /// The path the operation acts on, as written in the file.
    pub path: String,
    /// The Linux path it was carried out on.
    pub linux_path: String,
    pub code: u32,
    /// The status field as written (`SC=XXXXXXXX`).
    pub status: String,
    pub code_name: String,
}

/// The whole status file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    pub file: String,
    pub state: RunState,
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<String>,
    pub restore_status_result: u32,
    pub restore_status_result_name: String,
    pub records: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub not_executed: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_status_details: Option<FailureDetails>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<FailureDetails>,
}

impl StatusFile {
    /// The path of the status file in `state_dir`.
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(STATUS_FILE_NAME)
    }

    /// Writes it atomically to `<state_dir>/delayed-status.toml`.
    pub fn write(&self, state_dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| DelayedError::io("cannot create state directory", state_dir, e))?;
        let path = Self::path_in(state_dir);
        let text = toml::to_string_pretty(self)
            .map_err(|e| DelayedError::Invalid(format!("cannot encode the status file: {e}")))?;
        let text = format!(
            "# Outcome of the last `reel delayed run` (RestoreStatusResult / RestoreStatusDetails).\n{text}"
        );
        fsutil::replace_atomically(&path, text.as_bytes(), None)?;
        Ok(path)
    }

    /// Reads `<state_dir>/delayed-status.toml`.
    pub fn read(state_dir: &Path) -> Result<StatusFile> {
        let path = Self::path_in(state_dir);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| DelayedError::io("cannot read", &path, e))?;
        toml::from_str(&text).map_err(|e| {
            DelayedError::Invalid(format!("{} is not a status file: {e}", path.display()))
        })
    }
}

pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}
