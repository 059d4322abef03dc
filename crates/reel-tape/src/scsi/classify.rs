//! Sense data → Win32 tape errors: what a drive's CHECK CONDITION means for the operation
//! that received it.

use reel_scsi::sense::{SenseKey, asc};
use reel_scsi::{ScsiError, Sense};

use crate::error::TapeError;

/// What the failed command was doing (the same sense means different things for a read, a
/// write or a backward space).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doing {
    Read,
    Write,
    Mark,
    Space { forward: bool },
    Locate,
    Rewind,
    Load,
    Unload,
    Lock,
    Erase,
    Select,
    Status,
    Inquire,
}

impl Doing {
    fn writes(self) -> bool {
        matches!(self, Doing::Write | Doing::Mark | Doing::Erase)
    }
}

/// The Win32 error for a failed SCSI command on drive `name`.
pub fn classify(name: &str, doing: Doing, e: ScsiError) -> TapeError {
    match e {
        ScsiError::Check { sense, command, .. } => from_sense(name, doing, command, &sense),
        ScsiError::Status { .. } | ScsiError::Malformed { .. } | ScsiError::Open(_) => {
            io(name, e.to_string())
        }
        ScsiError::Transport { reason, .. } => {
            io(name, format!("the drive cannot be reached: {reason}"))
        }
    }
}

pub fn io(name: &str, reason: String) -> TapeError {
    TapeError::Io {
        path: name.into(),
        source: std::io::Error::other(reason),
    }
}

fn from_sense(name: &str, doing: Doing, command: &str, s: &Sense) -> TapeError {
    let what = || format!("{name}: {command}: {s}");
    if s.deferred {
        // Belongs to an earlier command: data the drive had accepted may not be on tape.
        return io(
            name,
            format!("a deferred error of an earlier write or motion reported at {command}: {s}"),
        );
    }
    match s.key {
        SenseKey::UnitAttention => match s.asc {
            0x28 => TapeError::MediaChanged,
            0x29 => TapeError::BusReset,
            _ => TapeError::NotReady(what()),
        },
        SenseKey::NotReady => match s.code() {
            asc::MEDIUM_NOT_PRESENT => TapeError::NoMediaInDrive,
            asc::CLEANING_CARTRIDGE_INSTALLED => {
                TapeError::NotReady(format!("{name}: a cleaning cartridge is loaded"))
            }
            asc::MEDIUM_REMOVAL_PREVENTED if doing == Doing::Unload => {
                TapeError::UnableToUnloadMedia
            }
            _ => TapeError::NotReady(what()),
        },
        SenseKey::DataProtect => TapeError::WriteProtect(what()),
        SenseKey::BlankCheck => TapeError::NoDataDetected,
        SenseKey::VolumeOverflow => TapeError::EndOfMedia,
        SenseKey::IllegalRequest => illegal(name, doing, command, s),
        SenseKey::MediumError => match s.code() {
            (0x14, _) if matches!(doing, Doing::Locate | Doing::Space { .. }) => {
                TapeError::NoDataDetected
            }
            (0x11, _) if doing == Doing::Read => TapeError::Crc(what()),
            _ => io(name, what()),
        },
        SenseKey::NoSense | SenseKey::RecoveredError => no_sense(name, doing, s, what),
        _ => io(name, what()),
    }
}

fn illegal(name: &str, doing: Doing, command: &str, s: &Sense) -> TapeError {
    match s.code() {
        asc::INVALID_COMMAND_OPERATION_CODE => {
            TapeError::NotSupported(format!("{command} is not implemented by the drive {name}"))
        }
        asc::MEDIUM_REMOVAL_PREVENTED => match doing {
            Doing::Unload => TapeError::UnableToUnloadMedia,
            _ => TapeError::UnableToLockMedia,
        },
        asc::POSITION_PAST_BEGINNING_OF_MEDIUM => TapeError::BeginningOfMedia,
        asc::INVALID_FIELD_IN_CDB if matches!(doing, Doing::Read | Doing::Write) => {
            TapeError::InvalidBlockLength(format!(
                "{name}: {command}: the length does not suit the drive's block size or limits ({s})"
            ))
        }
        _ if doing.writes() && s.asc == 0x27 => TapeError::WriteProtect(format!("{name}: {s}")),
        _ => TapeError::InvalidParameter(format!("{name}: {command}: {s}")),
    }
}

fn no_sense(name: &str, doing: Doing, s: &Sense, what: impl Fn() -> String) -> TapeError {
    if s.filemark {
        return if s.code() == asc::SETMARK_DETECTED {
            TapeError::SetmarkDetected
        } else {
            TapeError::FilemarkDetected
        };
    }
    match s.code() {
        asc::END_OF_DATA => return TapeError::NoDataDetected,
        asc::BEGINNING_OF_PARTITION_MEDIUM => return TapeError::BeginningOfMedia,
        asc::CLEANING_REQUESTED => return TapeError::DeviceRequiresCleaning,
        _ => {}
    }
    if s.eom {
        return match doing {
            Doing::Space { forward: false } | Doing::Rewind => TapeError::BeginningOfMedia,
            Doing::Write | Doing::Mark => TapeError::EarlyWarning,
            _ => TapeError::EndOfMedia,
        };
    }
    io(name, what())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sense(key: u8, asc: u8, ascq: u8) -> Sense {
        Sense::parse(&[
            0x70, 0, key, 0, 0, 0, 0, 10, 0, 0, 0, 0, asc, ascq, 0, 0, 0, 0,
        ])
        .unwrap()
    }

    fn check(s: Sense) -> ScsiError {
        ScsiError::Check {
            device: "d".into(),
            command: "READ(6)",
            sense: s,
            transferred: 0,
        }
    }

    #[test]
    fn sense_to_win32() {
        use crate::error::code::*;
        let c = |doing, key, a, q| classify("d", doing, check(sense(key, a, q))).code();
        assert_eq!(c(Doing::Read, 0x02, 0x3a, 0), ERROR_NO_MEDIA_IN_DRIVE);
        assert_eq!(c(Doing::Read, 0x06, 0x28, 0), ERROR_MEDIA_CHANGED);
        assert_eq!(c(Doing::Read, 0x06, 0x29, 0), ERROR_BUS_RESET);
        assert_eq!(c(Doing::Write, 0x07, 0x27, 0), ERROR_WRITE_PROTECT);
        assert_eq!(c(Doing::Read, 0x08, 0, 5), ERROR_NO_DATA_DETECTED);
        assert_eq!(c(Doing::Write, 0x0d, 0, 2), ERROR_END_OF_MEDIA);
        assert_eq!(c(Doing::Locate, 0x05, 0x20, 0), ERROR_NOT_SUPPORTED);
        assert_eq!(
            c(Doing::Unload, 0x05, 0x53, 2),
            ERROR_UNABLE_TO_UNLOAD_MEDIA
        );
        assert_eq!(c(Doing::Read, 0x03, 0x11, 0), ERROR_CRC);
        assert_eq!(
            c(Doing::Space { forward: true }, 0x00, 0, 5),
            ERROR_NO_DATA_DETECTED
        );
        assert_eq!(
            c(Doing::Status, 0x00, 0, 0x17),
            ERROR_DEVICE_REQUIRES_CLEANING
        );
        assert_eq!(c(Doing::Write, 0x05, 0x24, 0), ERROR_INVALID_BLOCK_LENGTH);
        let mut eom = sense(0x00, 0, 2);
        eom.eom = true;
        assert!(matches!(
            classify("d", Doing::Write, check(eom.clone())),
            TapeError::EarlyWarning
        ));
        assert!(matches!(
            classify("d", Doing::Space { forward: false }, check(eom)),
            TapeError::BeginningOfMedia
        ));
        let mut d = sense(0x03, 0x0c, 0);
        d.deferred = true;
        let e = classify("d", Doing::Read, check(d));
        assert!(e.to_string().contains("deferred"), "{e}");
        let lost = ScsiError::Transport {
            device: "iscsi://h/t/1".into(),
            command: "READ(6)",
            reason: "connection reset".into(),
        };
        let e = classify("iscsi://h/t/1", Doing::Read, lost);
        assert_eq!(e.code(), ERROR_IO_DEVICE);
        assert!(e.to_string().contains("iscsi://h/t/1"), "{e}");
    }
}
