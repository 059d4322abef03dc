//! TapeAlert (LOG SENSE page 2Eh) and MAM (READ ATTRIBUTE) of a SCSI drive.

use reel_scsi::tapealert::{self, CLEANING_FLAGS, PAGE_TAPE_ALERT};

use super::drive::{ScsiTape, op};
use crate::health::{DriveHealth, MamSummary};

impl ScsiTape {
    /// What the drive says about its health; what it cannot say is noted, not an error.
    pub fn health_report(&mut self) -> DriveHealth {
        let (alerts, alerts_note) = if !self.supports(op::LOG_SENSE) {
            (None, Some(self.lacks("TapeAlert", "LOG SENSE").to_string()))
        } else {
            match self.dev.log_sense(PAGE_TAPE_ALERT) {
                Ok(page) => match tapealert::flags_set(&page) {
                    Ok(flags) => (Some(flags), None),
                    Err(e) => (None, Some(e.to_string())),
                },
                Err(e) => (None, Some(format!("TapeAlert page: {e}"))),
            }
        };
        let (mam, mam_note) = if !self.supports(op::READ_ATTRIBUTE) {
            (None, Some(self.lacks("MAM", "READ ATTRIBUTE").to_string()))
        } else {
            match self.dev.read_attributes(0) {
                Ok(attrs) => (Some(MamSummary::from_attributes(&attrs)), None),
                Err(e) => (None, Some(format!("MAM: {e}"))),
            }
        };
        let asked_cleaning = self
            .dev
            .test_unit_ready()
            .err()
            .and_then(|e| {
                e.sense()
                    .map(|s| s.code() == reel_scsi::sense::asc::CLEANING_REQUESTED)
            })
            .unwrap_or(false);
        let cleaning_flag = alerts
            .iter()
            .flatten()
            .any(|f: &tapealert::Flag| CLEANING_FLAGS.contains(&f.number));
        DriveHealth {
            drive: self.name.clone(),
            identity: Some(self.identity()),
            alerts,
            alerts_note,
            mam,
            mam_note,
            cleaning_due: asked_cleaning || cleaning_flag,
        }
    }
}
