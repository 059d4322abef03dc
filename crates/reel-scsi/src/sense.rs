//! Sense data (SPC-4 4.5): fixed format (response codes 70h/71h) and descriptor format
//! (72h/73h), current or deferred, with the stream-command bits a tape sets (FILEMARK, EOM,
//! ILI) and the INFORMATION field that carries a tape's residue.

use std::fmt;

use crate::bytes::Bytes;
use crate::error::ParseError;

/// Sense keys (SPC-4 table 27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenseKey {
    NoSense,
    RecoveredError,
    NotReady,
    MediumError,
    HardwareError,
    IllegalRequest,
    UnitAttention,
    DataProtect,
    BlankCheck,
    VendorSpecific,
    CopyAborted,
    AbortedCommand,
    Reserved0C,
    VolumeOverflow,
    Miscompare,
    Completed,
}

impl SenseKey {
    pub fn from_nibble(n: u8) -> SenseKey {
        use SenseKey::*;
        [
            NoSense,
            RecoveredError,
            NotReady,
            MediumError,
            HardwareError,
            IllegalRequest,
            UnitAttention,
            DataProtect,
            BlankCheck,
            VendorSpecific,
            CopyAborted,
            AbortedCommand,
            Reserved0C,
            VolumeOverflow,
            Miscompare,
            Completed,
        ][usize::from(n & 0x0f)]
    }

    /// The name SPC gives the key, e.g. `ILLEGAL REQUEST`.
    pub fn name(self) -> &'static str {
        use SenseKey::*;
        match self {
            NoSense => "NO SENSE",
            RecoveredError => "RECOVERED ERROR",
            NotReady => "NOT READY",
            MediumError => "MEDIUM ERROR",
            HardwareError => "HARDWARE ERROR",
            IllegalRequest => "ILLEGAL REQUEST",
            UnitAttention => "UNIT ATTENTION",
            DataProtect => "DATA PROTECT",
            BlankCheck => "BLANK CHECK",
            VendorSpecific => "VENDOR SPECIFIC",
            CopyAborted => "COPY ABORTED",
            AbortedCommand => "ABORTED COMMAND",
            Reserved0C => "RESERVED (0Ch)",
            VolumeOverflow => "VOLUME OVERFLOW",
            Miscompare => "MISCOMPARE",
            Completed => "COMPLETED",
        }
    }
}

/// Additional sense codes reel acts on (SPC-4 table 28), as (ASC, ASCQ).
pub mod asc {
    pub const NO_ADDITIONAL: (u8, u8) = (0x00, 0x00);
    pub const FILEMARK_DETECTED: (u8, u8) = (0x00, 0x01);
    pub const END_OF_PARTITION_MEDIUM: (u8, u8) = (0x00, 0x02);
    pub const SETMARK_DETECTED: (u8, u8) = (0x00, 0x03);
    pub const BEGINNING_OF_PARTITION_MEDIUM: (u8, u8) = (0x00, 0x04);
    pub const END_OF_DATA: (u8, u8) = (0x00, 0x05);
    pub const CLEANING_REQUESTED: (u8, u8) = (0x00, 0x17);
    pub const NOT_READY_BECOMING_READY: (u8, u8) = (0x04, 0x01);
    pub const INVALID_COMMAND_OPERATION_CODE: (u8, u8) = (0x20, 0x00);
    pub const INVALID_ELEMENT_ADDRESS: (u8, u8) = (0x21, 0x01);
    pub const INVALID_FIELD_IN_CDB: (u8, u8) = (0x24, 0x00);
    pub const INVALID_FIELD_IN_PARAMETER_LIST: (u8, u8) = (0x26, 0x00);
    pub const WRITE_PROTECTED: (u8, u8) = (0x27, 0x00);
    pub const MEDIUM_MAY_HAVE_CHANGED: (u8, u8) = (0x28, 0x00);
    pub const POWER_ON_RESET: (u8, u8) = (0x29, 0x00);
    pub const CLEANING_CARTRIDGE_INSTALLED: (u8, u8) = (0x30, 0x03);
    pub const MEDIUM_NOT_PRESENT: (u8, u8) = (0x3a, 0x00);
    pub const POSITION_PAST_BEGINNING_OF_MEDIUM: (u8, u8) = (0x3b, 0x0c);
    pub const MEDIUM_DESTINATION_ELEMENT_FULL: (u8, u8) = (0x3b, 0x0d);
    pub const MEDIUM_SOURCE_ELEMENT_EMPTY: (u8, u8) = (0x3b, 0x0e);
    pub const MEDIUM_REMOVAL_PREVENTED: (u8, u8) = (0x53, 0x02);

    /// The SPC name of an (ASC, ASCQ) pair, for the ones tape drives and changers use.
    pub fn name(code: (u8, u8)) -> Option<&'static str> {
        Some(match code {
            (0x00, 0x00) => "NO ADDITIONAL SENSE INFORMATION",
            (0x00, 0x01) => "FILEMARK DETECTED",
            (0x00, 0x02) => "END-OF-PARTITION/MEDIUM DETECTED",
            (0x00, 0x03) => "SETMARK DETECTED",
            (0x00, 0x04) => "BEGINNING-OF-PARTITION/MEDIUM DETECTED",
            (0x00, 0x05) => "END-OF-DATA DETECTED",
            (0x00, 0x16) => "OPERATION IN PROGRESS",
            (0x00, 0x17) => "CLEANING REQUESTED",
            (0x04, 0x00) => "LOGICAL UNIT NOT READY, CAUSE NOT REPORTABLE",
            (0x04, 0x01) => "LOGICAL UNIT IS IN PROCESS OF BECOMING READY",
            (0x04, 0x02) => "LOGICAL UNIT NOT READY, INITIALIZING COMMAND REQUIRED",
            (0x04, 0x03) => "LOGICAL UNIT NOT READY, MANUAL INTERVENTION REQUIRED",
            (0x0c, 0x00) => "WRITE ERROR",
            (0x11, 0x00) => "UNRECOVERED READ ERROR",
            (0x14, 0x00) => "RECORDED ENTITY NOT FOUND",
            (0x1a, 0x00) => "PARAMETER LIST LENGTH ERROR",
            (0x20, 0x00) => "INVALID COMMAND OPERATION CODE",
            (0x21, 0x01) => "INVALID ELEMENT ADDRESS",
            (0x24, 0x00) => "INVALID FIELD IN CDB",
            (0x25, 0x00) => "LOGICAL UNIT NOT SUPPORTED",
            (0x26, 0x00) => "INVALID FIELD IN PARAMETER LIST",
            (0x27, 0x00) => "WRITE PROTECTED",
            (0x28, 0x00) => "NOT READY TO READY CHANGE, MEDIUM MAY HAVE CHANGED",
            (0x28, 0x01) => "IMPORT OR EXPORT ELEMENT ACCESSED",
            (0x29, 0x00) => "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
            (0x2a, 0x01) => "MODE PARAMETERS CHANGED",
            (0x30, 0x00) => "INCOMPATIBLE MEDIUM INSTALLED",
            (0x30, 0x03) => "CLEANING CARTRIDGE INSTALLED",
            (0x30, 0x07) => "CLEANING FAILURE",
            (0x31, 0x00) => "MEDIUM FORMAT CORRUPTED",
            (0x3a, 0x00) => "MEDIUM NOT PRESENT",
            (0x3b, 0x00) => "SEQUENTIAL POSITIONING ERROR",
            (0x3b, 0x0c) => "POSITION PAST BEGINNING OF MEDIUM",
            (0x3b, 0x0d) => "MEDIUM DESTINATION ELEMENT FULL",
            (0x3b, 0x0e) => "MEDIUM SOURCE ELEMENT EMPTY",
            (0x44, 0x00) => "INTERNAL TARGET FAILURE",
            (0x50, 0x00) => "WRITE APPEND ERROR",
            (0x53, 0x00) => "MEDIA LOAD OR EJECT FAILED",
            (0x53, 0x02) => "MEDIUM REMOVAL PREVENTED",
            (0x5d, 0x00) => "FAILURE PREDICTION THRESHOLD EXCEEDED",
            _ => return None,
        })
    }
}

/// Which of SPC's two layouts the device used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenseFormat {
    Fixed,
    Descriptor,
}

/// Decoded sense data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sense {
    pub format: SenseFormat,
    /// A deferred error (71h/73h): it belongs to an earlier command (a buffered write that
    /// failed on the medium), not to the one that received it.
    pub deferred: bool,
    pub key: SenseKey,
    pub asc: u8,
    pub ascq: u8,
    /// FILEMARK (fixed byte 2 bit 7, or the stream commands descriptor): a filemark or
    /// setmark stopped the command.
    pub filemark: bool,
    /// EOM: end of partition or early warning (writes), beginning of partition (reverse).
    pub eom: bool,
    /// ILI: the record length differed from the requested length.
    pub ili: bool,
    /// The INFORMATION field when VALID: for tape commands, the residue (requested minus
    /// actual), a signed number in two's complement of the field's width.
    pub information: Option<i64>,
    /// COMMAND-SPECIFIC INFORMATION (fixed bytes 8–11 or descriptor type 01h).
    pub command_specific: Option<u64>,
    /// SENSE KEY SPECIFIC bytes when SKSV is set (field pointer, progress indication).
    pub key_specific: Option<[u8; 3]>,
}

impl Sense {
    /// Decodes sense data; fields past what the device returned are taken as absent.
    pub fn parse(buf: &[u8]) -> Result<Sense, ParseError> {
        let b = Bytes::new("sense data", buf);
        let code = b.u8(0)? & 0x7f;
        match code {
            0x70 | 0x71 => Self::fixed(b, code == 0x71),
            0x72 | 0x73 => Self::descriptor(b, code == 0x73),
            other => Err(b.err(
                0,
                format!("response code {other:#04x} is neither fixed (70h/71h) nor descriptor (72h/73h) sense"),
            )),
        }
    }

    fn fixed(b: Bytes<'_>, deferred: bool) -> Result<Sense, ParseError> {
        let flags = b.u8(2)?;
        // Bytes the device declared (ADDITIONAL SENSE LENGTH), limited to what arrived.
        let declared = match b.u8(7) {
            Ok(add) => (8 + usize::from(add)).min(b.len()),
            Err(_) => b.len(),
        };
        let has = |end: usize| end <= declared;
        let information = if b.u8(0)? & 0x80 != 0 && has(7) {
            Some(i64::from(b.be32(3)? as i32))
        } else {
            None
        };
        let command_specific = if has(12) {
            Some(u64::from(b.be32(8)?)).filter(|&v| v != 0)
        } else {
            None
        };
        let (asc, ascq) = if has(14) {
            (b.u8(12)?, b.u8(13)?)
        } else {
            (0, 0)
        };
        let key_specific = if has(18) && b.u8(15)? & 0x80 != 0 {
            let s = b.slice(15, 3)?;
            Some([s[0], s[1], s[2]])
        } else {
            None
        };
        Ok(Sense {
            format: SenseFormat::Fixed,
            deferred,
            key: SenseKey::from_nibble(flags),
            asc,
            ascq,
            filemark: flags & 0x80 != 0,
            eom: flags & 0x40 != 0,
            ili: flags & 0x20 != 0,
            information,
            command_specific,
            key_specific,
        })
    }

    fn descriptor(b: Bytes<'_>, deferred: bool) -> Result<Sense, ParseError> {
        let mut s = Sense {
            format: SenseFormat::Descriptor,
            deferred,
            key: SenseKey::from_nibble(b.u8(1)?),
            asc: b.u8(2)?,
            ascq: b.u8(3)?,
            filemark: false,
            eom: false,
            ili: false,
            information: None,
            command_specific: None,
            key_specific: None,
        };
        let Ok(add) = b.u8(7) else {
            return Ok(s);
        };
        let end = (8 + usize::from(add)).min(b.len());
        let mut at = 8;
        while at + 2 <= end {
            let kind = b.u8(at)?;
            let len = usize::from(b.u8(at + 1)?);
            if at + 2 + len > end {
                return Err(b.err(
                    at,
                    format!(
                        "sense data descriptor {kind:#04x} of {len} bytes runs past the end ({end})"
                    ),
                ));
            }
            match kind {
                0x00 if len >= 10 && b.u8(at + 2)? & 0x80 != 0 => {
                    s.information = Some(b.be64(at + 4)? as i64);
                }
                0x01 if len >= 10 => s.command_specific = Some(b.be64(at + 4)?),
                0x02 if len >= 6 => {
                    let k = b.slice(at + 4, 3)?;
                    if k[0] & 0x80 != 0 {
                        s.key_specific = Some([k[0], k[1], k[2]]);
                    }
                }
                0x04 if len >= 2 => {
                    let f = b.u8(at + 3)?;
                    s.filemark = f & 0x80 != 0;
                    s.eom = f & 0x40 != 0;
                    s.ili = f & 0x20 != 0;
                }
                0x05 if len >= 2 => s.ili = b.u8(at + 3)? & 0x20 != 0,
                _ => {}
            }
            at += 2 + len;
        }
        Ok(s)
    }

    /// (ASC, ASCQ).
    pub fn code(&self) -> (u8, u8) {
        (self.asc, self.ascq)
    }

    /// The device does not implement the command, or a field of it.
    pub fn is_unsupported(&self) -> bool {
        self.key == SenseKey::IllegalRequest
            && matches!(
                self.code(),
                asc::INVALID_COMMAND_OPERATION_CODE
                    | asc::INVALID_FIELD_IN_CDB
                    | asc::INVALID_FIELD_IN_PARAMETER_LIST
            )
    }

    /// The INFORMATION field as a tape residue: requested minus done (0 when not valid).
    pub fn residue(&self) -> Option<i64> {
        self.information
    }
}

impl fmt::Display for Sense {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.deferred {
            write!(f, "deferred error: ")?;
        }
        write!(f, "{}", self.key.name())?;
        match asc::name(self.code()) {
            Some(n) => write!(f, ", {n}")?,
            None => write!(f, ", ASC {:02X}h ASCQ {:02X}h", self.asc, self.ascq)?,
        }
        let flags: Vec<&str> = [
            (self.filemark, "FILEMARK"),
            (self.eom, "EOM"),
            (self.ili, "ILI"),
        ]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
        if !flags.is_empty() {
            write!(f, " [{}]", flags.join(" "))?;
        }
        if let Some(i) = self.information {
            write!(f, " (information {i})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixed format, SPC-4 table 26, as tgt's ssc_sense_data_build sends it for a READ
    // that met a filemark: VALID | 70h, key NO SENSE with FILEMARK, INFORMATION = the
    // requested length (65536), additional length 0Ah, ASC/ASCQ 00h/01h.
    #[test]
    fn fixed_filemark_with_residue() {
        let sb = [
            0xf0, 0x00, 0x80, 0x00, 0x01, 0x00, 0x00, 0x0a, 0, 0, 0, 0, 0x00, 0x01, 0, 0, 0, 0,
        ];
        let s = Sense::parse(&sb).unwrap();
        assert_eq!(s.format, SenseFormat::Fixed);
        assert!(!s.deferred);
        assert_eq!(s.key, SenseKey::NoSense);
        assert!(s.filemark && !s.eom && !s.ili);
        assert_eq!(s.information, Some(65536));
        assert_eq!(s.code(), asc::FILEMARK_DETECTED);
        assert_eq!(
            s.to_string(),
            "NO SENSE, FILEMARK DETECTED [FILEMARK] (information 65536)"
        );
    }

    // ILI with a negative residue: a 100-byte READ of a 1000-byte record gives
    // INFORMATION = 100 - 1000 = -900 = FFFFFC7Ch.
    #[test]
    fn fixed_ili_negative_residue() {
        let sb = [
            0xf0, 0x00, 0x20, 0xff, 0xff, 0xfc, 0x7c, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let s = Sense::parse(&sb).unwrap();
        assert!(s.ili && !s.filemark);
        assert_eq!(s.residue(), Some(-900));
    }

    // Deferred error, fixed format 71h: MEDIUM ERROR, WRITE ERROR (0Ch/00h), with SKSV and
    // a progress indication in the sense key specific bytes.
    #[test]
    fn fixed_deferred_medium_error() {
        let sb = [
            0x71, 0x00, 0x03, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x0c, 0x00, 0x00, 0x80, 0x12, 0x34,
        ];
        let s = Sense::parse(&sb).unwrap();
        assert!(s.deferred);
        assert_eq!(s.key, SenseKey::MediumError);
        assert_eq!(s.code(), (0x0c, 0x00));
        assert_eq!(s.information, None);
        assert_eq!(s.key_specific, Some([0x80, 0x12, 0x34]));
        assert!(
            s.to_string()
                .starts_with("deferred error: MEDIUM ERROR, WRITE ERROR")
        );
    }

    // Early warning on a write: NO SENSE with EOM, ASC 00h/02h.
    #[test]
    fn fixed_early_warning() {
        let sb = [
            0x70, 0, 0x40, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x00, 0x02, 0, 0, 0, 0,
        ];
        let s = Sense::parse(&sb).unwrap();
        assert!(s.eom && !s.filemark);
        assert_eq!(s.code(), asc::END_OF_PARTITION_MEDIUM);
    }

    // BLANK CHECK at end of data, as tgt sends it: key byte 48h (EOM | BLANK CHECK).
    #[test]
    fn fixed_blank_check() {
        let sb = [
            0x70, 0, 0x48, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0x00, 0x05, 0, 0, 0, 0,
        ];
        let s = Sense::parse(&sb).unwrap();
        assert_eq!(s.key, SenseKey::BlankCheck);
        assert!(s.eom);
        assert_eq!(s.code(), asc::END_OF_DATA);
    }

    // Descriptor format (SPC-4 table 12), 72h: ILLEGAL REQUEST, INVALID FIELD IN CDB,
    // with an information descriptor (type 00h, length 0Ah, VALID) and a stream commands
    // descriptor (type 04h, length 02h) with FILEMARK and ILI.
    #[test]
    fn descriptor_with_information_and_stream_bits() {
        let sb = [
            0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0x10, // header, 16 bytes of descriptors
            0x00, 0x0a, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0x01, 0x00, // information 256
            0x04, 0x02, 0x00, 0xa0, // stream: FILEMARK | ILI
        ];
        let s = Sense::parse(&sb).unwrap();
        assert_eq!(s.format, SenseFormat::Descriptor);
        assert_eq!(s.key, SenseKey::IllegalRequest);
        assert!(s.is_unsupported());
        assert_eq!(s.information, Some(256));
        assert!(s.filemark && s.ili && !s.eom);
    }

    // Descriptor format, deferred (73h), with a descriptor that claims more bytes than
    // there are: an error naming its offset.
    #[test]
    fn descriptor_overrun_is_an_error() {
        let sb = [
            0x73, 0x03, 0x0c, 0x00, 0, 0, 0, 0x06, 0x00, 0x0a, 0x80, 0, 0, 0,
        ];
        let e = Sense::parse(&sb).unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.to_string().contains("runs past the end"), "{e}");
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(Sense::parse(&[]).unwrap_err().offset, 0);
        assert!(Sense::parse(&[0x7f, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(Sense::parse(&[0x70, 0]).is_err());
    }

    // A short fixed sense (the device returned 8 bytes): the key is there, ASC is not.
    #[test]
    fn fixed_truncated_keeps_the_key() {
        let s = Sense::parse(&[0x70, 0, 0x02, 0, 0, 0, 0, 0x0a]).unwrap();
        assert_eq!(s.key, SenseKey::NotReady);
        assert_eq!(s.code(), (0, 0));
    }
}
