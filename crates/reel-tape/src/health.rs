//! Drive health: the TapeAlert flags a drive raises (with their standard names and
//! severities), the cartridge's medium auxiliary memory, and whether cleaning is due —
//! what `reel tape health` shows and what a backup checks before it writes.

use serde::Serialize;

use crate::drive::TapeDrive;
use crate::error::{Result, TapeError};

pub use reel_scsi::mam::MamSummary;
pub use reel_scsi::tapealert::{Flag as TapeAlert, Severity};

/// What a drive says about its health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DriveHealth {
    pub drive: String,
    /// Vendor, product and revision.
    pub identity: Option<String>,
    /// The TapeAlert flags set; `None` when the drive cannot report them.
    pub alerts: Option<Vec<TapeAlert>>,
    /// Why there are no alerts to show (the drive lacks LOG SENSE, …).
    pub alerts_note: Option<String>,
    /// The cartridge's MAM attributes; `None` when they cannot be read.
    pub mam: Option<MamSummary>,
    pub mam_note: Option<String>,
    /// A TapeAlert cleaning flag is set, or the drive asked for cleaning.
    pub cleaning_due: bool,
}

impl DriveHealth {
    /// The flags of critical severity.
    pub fn critical(&self) -> Vec<&TapeAlert> {
        self.alerts
            .iter()
            .flatten()
            .filter(|f| f.severity == Severity::Critical)
            .collect()
    }

    /// An error when a critical flag is set: a backup is not started on such a drive.
    pub fn refuse_critical(&self) -> Result<()> {
        let critical = self.critical();
        if critical.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = critical
            .iter()
            .map(|f| format!("{} ({:02X}h)", f.name, f.number))
            .collect();
        Err(TapeError::NotReady(format!(
            "{} reports critical TapeAlert flags: {}; no backup is started on it \
             (`reel tape health` shows every flag; fix the drive or the cartridge first)",
            self.drive,
            names.join(", ")
        )))
    }
}

/// Checks a drive before a backup writes to it: a drive with a critical TapeAlert flag is
/// refused; a drive that reports no health (a virtual cartridge, st) passes.
pub fn check_before_backup(drive: &mut dyn TapeDrive) -> Result<()> {
    match drive.health() {
        Ok(h) => h.refuse_critical(),
        Err(TapeError::NotSupported(_)) => Ok(()),
        Err(e) => Err(e),
    }
}
