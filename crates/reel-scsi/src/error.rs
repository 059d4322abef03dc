//! Errors: a response that does not parse ([`ParseError`], naming the offset) and a command
//! that failed ([`ScsiError`]: CHECK CONDITION with its sense, another status, or the
//! transport).

use crate::sense::Sense;

/// Bytes from a device that are not what the table says: which structure, where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: {reason} (at byte offset {offset})")]
pub struct ParseError {
    /// The structure being decoded, e.g. `READ POSITION long form`.
    pub what: &'static str,
    /// Byte offset in the response where decoding stopped.
    pub offset: usize,
    pub reason: String,
}

impl ParseError {
    pub fn new(what: &'static str, offset: usize, reason: impl Into<String>) -> Self {
        ParseError {
            what,
            offset,
            reason: reason.into(),
        }
    }
}

/// A SCSI status byte other than GOOD (SAM-5 table 45).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Good,
    CheckCondition,
    ConditionMet,
    Busy,
    ReservationConflict,
    TaskSetFull,
    AcaActive,
    TaskAborted,
    Other(u8),
}

impl Status {
    pub fn from_byte(b: u8) -> Status {
        match b {
            0x00 => Status::Good,
            0x02 => Status::CheckCondition,
            0x04 => Status::ConditionMet,
            0x08 => Status::Busy,
            0x18 => Status::ReservationConflict,
            0x28 => Status::TaskSetFull,
            0x30 => Status::AcaActive,
            0x40 => Status::TaskAborted,
            b => Status::Other(b),
        }
    }

    pub fn name(self) -> String {
        match self {
            Status::Good => "GOOD".into(),
            Status::CheckCondition => "CHECK CONDITION".into(),
            Status::ConditionMet => "CONDITION MET".into(),
            Status::Busy => "BUSY".into(),
            Status::ReservationConflict => "RESERVATION CONFLICT".into(),
            Status::TaskSetFull => "TASK SET FULL".into(),
            Status::AcaActive => "ACA ACTIVE".into(),
            Status::TaskAborted => "TASK ABORTED".into(),
            Status::Other(b) => format!("status {b:#04x}"),
        }
    }
}

/// A command that did not complete with GOOD status.
#[derive(Debug, thiserror::Error)]
pub enum ScsiError {
    /// CHECK CONDITION: the device said why in its sense data. `transferred` bytes moved
    /// before the condition (a READ that met a filemark or a longer record).
    #[error("{device}: {command} failed: {sense}")]
    Check {
        device: String,
        command: &'static str,
        sense: Sense,
        transferred: usize,
    },
    /// Another status than GOOD or CHECK CONDITION (BUSY, RESERVATION CONFLICT, …).
    #[error("{device}: {command} ended with {}", status.name())]
    Status {
        device: String,
        command: &'static str,
        status: Status,
    },
    /// The command could not be carried: the connection was lost, the ioctl failed, the
    /// host adapter or the driver reported an error.
    #[error("{device}: {command} could not be carried out: {reason}")]
    Transport {
        device: String,
        command: &'static str,
        reason: String,
    },
    /// The device answered with bytes that do not parse.
    #[error("{device}: {command} answered with malformed data: {source}")]
    Malformed {
        device: String,
        command: &'static str,
        #[source]
        source: ParseError,
    },
    /// The device, target or library cannot be opened.
    #[error("{0}")]
    Open(String),
}

impl ScsiError {
    /// What the failure means to whoever ran the command: always a device condition (a
    /// device that answers garbage or cannot be reached is a device problem too).
    pub fn class(&self) -> reel_error_class::ErrorClass {
        reel_error_class::ErrorClass::Media
    }

    /// The sense data of a CHECK CONDITION.
    pub fn sense(&self) -> Option<&Sense> {
        match self {
            ScsiError::Check { sense, .. } => Some(sense),
            _ => None,
        }
    }

    /// True when the device does not know the command (ILLEGAL REQUEST, INVALID COMMAND
    /// OPERATION CODE) or a field of it (INVALID FIELD IN CDB / PARAMETER LIST): the
    /// command is not implemented by this device.
    pub fn is_unsupported(&self) -> bool {
        self.sense().is_some_and(Sense::is_unsupported)
    }

    /// True when the transport was lost (the target went away, the cable was pulled).
    pub fn is_transport(&self) -> bool {
        matches!(self, ScsiError::Transport { .. })
    }
}

pub type Result<T, E = ScsiError> = std::result::Result<T, E>;
