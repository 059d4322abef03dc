//! Real drives spoken to in SCSI (SSC) directly: over SG_IO on a Linux sg node, or over
//! user-space iSCSI (`iscsi://HOST[:PORT]/TARGET-IQN/LUN`).
//!
//! [`ScsiTape`] gives an SSC drive the Win32 tape semantics (see [`drive`] for the
//! mapping); the commands and their parsers are `reel-scsi`'s. Where a drive lacks a
//! command reel falls back where a fallback exists (LOCATE → SPACE from a known position;
//! positions counted by reel when READ POSITION cannot tell them) and otherwise answers
//! NOT_SUPPORTED naming the command.
//!
//! iSCSI CHAP credentials come from `REEL_ISCSI_CHAP_USER`/`REEL_ISCSI_CHAP_PASSWORD` or a
//! file (`REEL_ISCSI_CHAP_FILE`, default `$REEL_HOME/iscsi-chap.toml`, mode 600), never
//! from the command line.

mod changer;
mod classify;
pub mod drive;
mod health;
mod motion;
mod tape;

#[cfg(test)]
mod tests;

pub use changer::ScsiChanger;
pub use classify::{Doing, classify};
pub use drive::{MAX_RECORD, ScsiTape};

use std::path::{Path, PathBuf};

use reel_scsi::Device;
use reel_scsi::iscsi::{Chap, IscsiTransport, IscsiUrl};

use crate::error::{Result, TapeError};

/// The default CHAP file: `$REEL_HOME/iscsi-chap.toml`.
pub fn chap_file() -> PathBuf {
    crate::library::reel_home().join("iscsi-chap.toml")
}

/// Logs in to an iSCSI target (`iscsi://HOST[:PORT]/TARGET-IQN/LUN`) and returns the
/// logical unit, with the CHAP credentials of this run.
pub fn connect_iscsi(url: &str) -> Result<Device> {
    let parsed = IscsiUrl::parse(url).map_err(TapeError::InvalidParameter)?;
    let chap = Chap::from_environment(Some(&chap_file())).map_err(TapeError::InvalidParameter)?;
    let t = IscsiTransport::connect(&parsed, chap.as_ref()).map_err(TapeError::NotReady)?;
    Ok(Device::new(Box::new(t)))
}

/// Opens the SCSI generic node of a tape or changer device (`/dev/nst0`, `/dev/sch0`,
/// `/dev/sg3`), found through sysfs.
pub fn connect_sg(path: &Path) -> Result<Device> {
    let t = reel_scsi::sg::open_sg_for(path)
        .map_err(|e| TapeError::NotReady(format!("{}: {e}", path.display())))?;
    Ok(Device::new(Box::new(t)))
}

/// Opens an iSCSI tape drive.
pub fn open_iscsi(url: &str) -> Result<ScsiTape> {
    ScsiTape::open(connect_iscsi(url)?)
}

/// Opens a SCSI changer (`iscsi://…`, `sg:/dev/sch0`, `/dev/sgN`).
pub fn open_changer(target: &crate::target::ScsiTarget) -> Result<ScsiChanger> {
    ScsiChanger::open(target.connect()?)
}

/// Opens a local tape drive through its sg node.
pub fn open_sg(path: &Path) -> Result<ScsiTape> {
    ScsiTape::open(connect_sg(path)?)
}
