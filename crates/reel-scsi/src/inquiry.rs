//! INQUIRY data (SPC-4 6.6.2) and the unit serial number page (VPD 80h, SPC-4 7.8.16).

use crate::bytes::Bytes;
use crate::error::ParseError;

/// Peripheral device types reel meets (SPC-4 table 141).
pub const TYPE_SEQUENTIAL: u8 = 0x01;
pub const TYPE_MEDIUM_CHANGER: u8 = 0x08;

/// Standard INQUIRY data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inquiry {
    pub qualifier: u8,
    pub device_type: u8,
    pub removable: bool,
    /// VERSION: the SPC version claimed (5 = SPC-3, 6 = SPC-4).
    pub version: u8,
    pub vendor: String,
    pub product: String,
    pub revision: String,
}

impl Inquiry {
    pub fn parse(buf: &[u8]) -> Result<Inquiry, ParseError> {
        let b = Bytes::new("INQUIRY data", buf);
        let b0 = b.u8(0)?;
        // ADDITIONAL LENGTH: what the device has; identification needs bytes 8..36.
        let have = 5 + usize::from(b.u8(4)?);
        if have < 36 || buf.len() < 36 {
            return Err(b.err(
                4,
                format!(
                    "{} bytes of standard data ({} declared); vendor, product and revision need 36",
                    buf.len(),
                    have
                ),
            ));
        }
        Ok(Inquiry {
            qualifier: b0 >> 5,
            device_type: b0 & 0x1f,
            removable: b.u8(1)? & 0x80 != 0,
            version: b.u8(2)?,
            vendor: b.ascii(8, 8)?,
            product: b.ascii(16, 16)?,
            revision: b.ascii(32, 4)?,
        })
    }

    /// `VENDOR PRODUCT REVISION`, for messages.
    pub fn identity(&self) -> String {
        format!("{} {} {}", self.vendor, self.product, self.revision)
    }

    pub fn device_type_name(&self) -> &'static str {
        match self.device_type {
            0x00 => "direct access block device",
            TYPE_SEQUENTIAL => "sequential access device (tape)",
            TYPE_MEDIUM_CHANGER => "medium changer",
            0x05 => "CD/DVD device",
            0x0d => "enclosure services device",
            _ => "other device",
        }
    }
}

/// The unit serial number of VPD page 80h.
pub fn unit_serial_number(buf: &[u8]) -> Result<String, ParseError> {
    let b = Bytes::new("unit serial number page (VPD 80h)", buf);
    let page = b.u8(1)?;
    if page != 0x80 {
        return Err(b.err(1, format!("page code {page:#04x}, expected 80h")));
    }
    let len = usize::from(b.be16(2)?);
    let avail = len.min(buf.len().saturating_sub(4));
    Ok(b.ascii(4, avail)?.trim_start().to_string())
}

/// One command of REPORT SUPPORTED OPERATION CODES (SPC-4 table 229): the operation code
/// and, for commands with service actions, the service action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SupportedCommand {
    pub opcode: u8,
    pub service_action: Option<u16>,
}

/// REPORT SUPPORTED OPERATION CODES data, all commands format (SPC-4 table 228): a 4-byte
/// length, then 8-byte command descriptors, each followed by a 12-byte timeouts
/// descriptor when CTDP is set.
pub fn parse_supported_opcodes(buf: &[u8]) -> Result<Vec<SupportedCommand>, ParseError> {
    let b = Bytes::new("REPORT SUPPORTED OPERATION CODES data", buf);
    let len = b.be32(0)? as usize;
    let end = len.saturating_add(4).min(buf.len());
    let mut out = Vec::new();
    let mut at = 4;
    while at < end {
        let d = b.slice(at, 8)?;
        let flags = d[5];
        out.push(SupportedCommand {
            opcode: d[0],
            service_action: (flags & 0x01 != 0).then(|| u16::from_be_bytes([d[2], d[3]])),
        });
        at += 8 + if flags & 0x02 != 0 { 12 } else { 0 };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // What tgt's spc_inquiry returns for a tape LUN (SPC-4 table 142): type 01h,
    // RMB set, version 05h, vendor "IET", product "VIRTUAL-TAPE", revision "0001".
    #[test]
    fn standard_inquiry_of_a_tape() {
        let mut d = vec![0x01, 0x80, 0x05, 0x02, 59, 0, 0, 0x02];
        d.extend_from_slice(b"IET     VIRTUAL-TAPE    0001");
        d.resize(64, 0);
        let q = Inquiry::parse(&d).unwrap();
        assert_eq!(q.device_type, TYPE_SEQUENTIAL);
        assert!(q.removable);
        assert_eq!(q.vendor, "IET");
        assert_eq!(q.product, "VIRTUAL-TAPE");
        assert_eq!(q.revision, "0001");
        assert_eq!(q.identity(), "IET VIRTUAL-TAPE 0001");
    }

    #[test]
    fn short_inquiry_names_the_offset() {
        let e = Inquiry::parse(&[0x08, 0x80, 0x05, 0x02, 10]).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(Inquiry::parse(&[]).is_err());
    }

    // All-commands format as tgt builds it for its tape LUN (no timeouts descriptors):
    // TEST UNIT READY, READ(6), and MAINTENANCE IN with service action 0Ch.
    #[test]
    fn supported_opcodes() {
        let d = [
            0, 0, 0, 24, 0x00, 0, 0, 0, 0, 0x00, 0, 6, 0x08, 0, 0, 0, 0, 0x00, 0, 6, 0xa3, 0, 0,
            0x0c, 0, 0x01, 0, 12,
        ];
        let v = parse_supported_opcodes(&d).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[1].opcode, 0x08);
        assert_eq!(v[2].service_action, Some(0x0c));
        assert_eq!(parse_supported_opcodes(&d[..10]).unwrap_err().offset, 4);
    }

    #[test]
    fn serial_number_page() {
        let mut d = vec![0x01, 0x80, 0x00, 0x0a];
        d.extend_from_slice(b"  HU1234567");
        assert_eq!(unit_serial_number(&d).unwrap(), "HU123456");
        assert!(unit_serial_number(&[0x01, 0x83, 0, 0]).is_err());
    }
}
