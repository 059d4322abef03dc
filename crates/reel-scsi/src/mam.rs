//! Medium auxiliary memory (MAM): the attributes READ ATTRIBUTE returns (SPC-4 7.4),
//! with the names and formats of SPC-4 tables 331 to 334.

use crate::bytes::Bytes;
use crate::error::ParseError;

/// The value of an attribute, by its FORMAT field.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum AttributeValue {
    /// 00b BINARY: a big-endian number (when it is 1 to 8 bytes long) or bytes.
    Number(u64),
    Bytes(Vec<u8>),
    /// 01b ASCII and 10b TEXT, with the padding removed.
    Text(String),
}

/// One attribute.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Attribute {
    pub id: u16,
    pub name: &'static str,
    pub read_only: bool,
    pub value: AttributeValue,
}

pub const REMAINING_CAPACITY: u16 = 0x0000;
pub const MAXIMUM_CAPACITY: u16 = 0x0001;
pub const TAPEALERT_FLAGS: u16 = 0x0002;
pub const LOAD_COUNT: u16 = 0x0003;
pub const DEVICE_AT_LAST_LOAD: u16 = 0x020a;
pub const TOTAL_MB_WRITTEN: u16 = 0x0220;
pub const TOTAL_MB_READ: u16 = 0x0221;
pub const MEDIUM_MANUFACTURER: u16 = 0x0400;
pub const MEDIUM_SERIAL_NUMBER: u16 = 0x0401;
pub const MEDIUM_MANUFACTURE_DATE: u16 = 0x0406;
pub const BARCODE: u16 = 0x0806;

/// The SPC-4 name of attribute `id`.
pub fn attribute_name(id: u16) -> &'static str {
    match id {
        0x0000 => "remaining capacity in partition (MiB)",
        0x0001 => "maximum capacity in partition (MiB)",
        0x0002 => "TapeAlert flags",
        0x0003 => "load count",
        0x0004 => "MAM space remaining",
        0x0005 => "assigning organization",
        0x0006 => "formatted density code",
        0x0007 => "initialization count",
        0x0008 => "volume identifier",
        0x0009 => "volume change reference",
        0x020a => "device vendor/serial number at last load",
        0x020b => "device vendor/serial number at load-1",
        0x020c => "device vendor/serial number at load-2",
        0x020d => "device vendor/serial number at load-3",
        0x0220 => "total MB written in medium life",
        0x0221 => "total MB read in medium life",
        0x0222 => "total MB written in current/last load",
        0x0223 => "total MB read in current/last load",
        0x0224 => "logical position of first encrypted block",
        0x0225 => "logical position of first unencrypted block after the first encrypted block",
        0x0340 => "medium usage history",
        0x0341 => "partition usage history",
        0x0400 => "medium manufacturer",
        0x0401 => "medium serial number",
        0x0402 => "medium length (m)",
        0x0403 => "medium width (0.1 mm)",
        0x0404 => "assigning organization",
        0x0405 => "medium density code",
        0x0406 => "medium manufacture date",
        0x0407 => "MAM capacity",
        0x0408 => "medium type",
        0x0409 => "medium type information",
        0x040a => "numeric medium serial number",
        0x0800 => "application vendor",
        0x0801 => "application name",
        0x0802 => "application version",
        0x0803 => "user medium text label",
        0x0804 => "date and time last written",
        0x0805 => "text localization identifier",
        0x0806 => "barcode",
        0x0807 => "owning host textual name",
        0x0808 => "media pool",
        0x0809 => "partition user text label",
        0x080a => "load/unload at partition",
        0x080b => "application format version",
        0x080c => "volume coherency information",
        id if id < 0x0400 => "device attribute",
        id if id < 0x0800 => "medium attribute",
        id if id < 0x0c00 => "host attribute",
        _ => "vendor-specific attribute",
    }
}

/// READ ATTRIBUTE data with service action ATTRIBUTE VALUES (SPC-4 table 330): a 4-byte
/// AVAILABLE DATA length and attributes of a 5-byte header each.
pub fn parse_attributes(buf: &[u8]) -> Result<Vec<Attribute>, ParseError> {
    let b = Bytes::new("READ ATTRIBUTE data", buf);
    let avail = b.be32(0)? as usize;
    let end = avail.saturating_add(4).min(buf.len());
    let mut out = Vec::new();
    let mut at = 4;
    while at < end {
        let id = b.be16(at)?;
        let flags = b.u8(at + 2)?;
        let len = usize::from(b.be16(at + 3)?);
        if at + 5 + len > end {
            return Err(b.err(
                at,
                format!("attribute {id:#06x} of {len} bytes runs past the data ({end} bytes)"),
            ));
        }
        let raw = b.slice(at + 5, len)?;
        let value = match flags & 0x03 {
            0 if (1..=8).contains(&len) => AttributeValue::Number(b.be_uint(at + 5, len)?),
            0 => AttributeValue::Bytes(raw.to_vec()),
            1 => AttributeValue::Text(crate::bytes::ascii_trimmed(raw)),
            2 => AttributeValue::Text(
                String::from_utf8_lossy(raw)
                    .trim_end_matches(['\0', ' '])
                    .to_string(),
            ),
            _ => {
                return Err(b.err(
                    at + 2,
                    format!("attribute {id:#06x} has the reserved format 11b"),
                ));
            }
        };
        out.push(Attribute {
            id,
            name: attribute_name(id),
            read_only: flags & 0x80 != 0,
            value,
        });
        at += 5 + len;
    }
    Ok(out)
}

/// The attributes a health report shows, picked from a READ ATTRIBUTE answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct MamSummary {
    pub barcode: Option<String>,
    pub medium_serial: Option<String>,
    pub manufacturer: Option<String>,
    pub manufacture_date: Option<String>,
    pub load_count: Option<u64>,
    pub total_mb_written: Option<u64>,
    pub total_mb_read: Option<u64>,
    pub remaining_mib: Option<u64>,
    pub maximum_mib: Option<u64>,
}

impl MamSummary {
    pub fn from_attributes(attrs: &[Attribute]) -> MamSummary {
        let text = |id| {
            attrs
                .iter()
                .find(|a| a.id == id)
                .and_then(|a| match &a.value {
                    AttributeValue::Text(t) if !t.is_empty() => Some(t.clone()),
                    _ => None,
                })
        };
        let num = |id| {
            attrs
                .iter()
                .find(|a| a.id == id)
                .and_then(|a| match a.value {
                    AttributeValue::Number(n) => Some(n),
                    _ => None,
                })
        };
        MamSummary {
            barcode: text(BARCODE),
            medium_serial: text(MEDIUM_SERIAL_NUMBER),
            manufacturer: text(MEDIUM_MANUFACTURER),
            manufacture_date: text(MEDIUM_MANUFACTURE_DATE),
            load_count: num(LOAD_COUNT),
            total_mb_written: num(TOTAL_MB_WRITTEN),
            total_mb_read: num(TOTAL_MB_READ),
            remaining_mib: num(REMAINING_CAPACITY),
            maximum_mib: num(MAXIMUM_CAPACITY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One attribute as SPC-4 table 330 lays it out.
    pub(crate) fn attr(id: u16, format: u8, value: &[u8]) -> Vec<u8> {
        let mut v = id.to_be_bytes().to_vec();
        v.push(0x80 | format);
        v.extend_from_slice(&(value.len() as u16).to_be_bytes());
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn attributes_of_an_lto_cartridge() {
        let mut body = Vec::new();
        body.extend(attr(LOAD_COUNT, 0, &42u64.to_be_bytes()));
        body.extend(attr(TOTAL_MB_WRITTEN, 0, &1_234_567u64.to_be_bytes()));
        body.extend(attr(
            MEDIUM_SERIAL_NUMBER,
            1,
            b"HA1234567890                    ",
        ));
        body.extend(attr(BARCODE, 1, b"R00001L6                        "));
        body.extend(attr(0x0340, 0, &[0u8; 90]));
        let mut d = (body.len() as u32).to_be_bytes().to_vec();
        d.extend(body);
        let attrs = parse_attributes(&d).unwrap();
        assert_eq!(attrs.len(), 5);
        assert!(attrs[0].read_only);
        assert_eq!(attrs[0].name, "load count");
        let m = MamSummary::from_attributes(&attrs);
        assert_eq!(m.load_count, Some(42));
        assert_eq!(m.total_mb_written, Some(1_234_567));
        assert_eq!(m.barcode.as_deref(), Some("R00001L6"));
        assert_eq!(m.medium_serial.as_deref(), Some("HA1234567890"));
        assert!(matches!(attrs[4].value, AttributeValue::Bytes(ref b) if b.len() == 90));
    }

    #[test]
    fn an_attribute_past_the_end_names_its_offset() {
        let mut d = 12u32.to_be_bytes().to_vec();
        d.extend(attr(LOAD_COUNT, 0, &[0, 0, 0, 1]));
        d.extend([0x08, 0x06, 0x01, 0x00, 0x20]);
        let e = parse_attributes(&d).unwrap_err();
        assert_eq!(e.offset, 13);
        assert!(parse_attributes(&[0, 0]).is_err());
    }
}
