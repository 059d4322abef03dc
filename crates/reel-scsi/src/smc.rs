//! SMC-3 response data: the element address assignment mode page (1Dh) and READ ELEMENT
//! STATUS data with volume tags and device identifiers.

use crate::bytes::Bytes;
use crate::cdb::ElementType;
use crate::error::ParseError;
use crate::ssc::ModePage;

pub const PAGE_ELEMENT_ADDRESS_ASSIGNMENT: u8 = 0x1d;

/// First address and count of one element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ElementRange {
    pub first: u16,
    pub count: u16,
}

/// The element address assignment page (SMC-3 table 95).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AddressAssignment {
    pub transport: ElementRange,
    pub storage: ElementRange,
    pub import_export: ElementRange,
    pub data_transfer: ElementRange,
}

impl AddressAssignment {
    pub fn parse(page: &ModePage) -> Result<AddressAssignment, ParseError> {
        let b = Bytes::new("element address assignment page (1Dh)", &page.data);
        if page.code != PAGE_ELEMENT_ADDRESS_ASSIGNMENT {
            return Err(b.err(0, format!("page code {:#04x}, expected 1Dh", page.code)));
        }
        // Offsets are of the page data, after the 2-byte page header.
        let range = |at: usize| -> Result<ElementRange, ParseError> {
            Ok(ElementRange {
                first: b.be16(at)?,
                count: b.be16(at + 2)?,
            })
        };
        Ok(AddressAssignment {
            transport: range(0)?,
            storage: range(4)?,
            import_export: range(8)?,
            data_transfer: range(12)?,
        })
    }

    pub fn range(&self, kind: ElementType) -> Option<ElementRange> {
        match kind {
            ElementType::MediumTransport => Some(self.transport),
            ElementType::Storage => Some(self.storage),
            ElementType::ImportExport => Some(self.import_export),
            ElementType::DataTransfer => Some(self.data_transfer),
            ElementType::All => None,
        }
    }
}

/// One element descriptor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Element {
    pub kind: ElementType,
    pub address: u16,
    pub full: bool,
    /// EXCEPT: the element is in an abnormal state (ASC/ASCQ say which).
    pub except: bool,
    /// ACCESS: the medium transport can reach it.
    pub access: bool,
    /// IMPEXP (import/export elements): placed by an operator (import) rather than by the
    /// changer.
    pub imported: bool,
    pub asc: u8,
    pub ascq: u8,
    /// Where the medium came from (SVALID).
    pub source: Option<u16>,
    /// The primary volume tag (barcode), trimmed; `None` when empty.
    pub volume_tag: Option<String>,
    /// The device identifier of a data transfer element (DVCID), as text.
    pub identifier: Option<String>,
}

/// READ ELEMENT STATUS data (SMC-3 tables 20, 21, 22 onwards): a header, then element
/// status pages each with a header and descriptors of the page's length.
pub fn parse_element_status(buf: &[u8]) -> Result<Vec<Element>, ParseError> {
    let b = Bytes::new("READ ELEMENT STATUS data", buf);
    let report = b.be24(5)? as usize;
    let end = (8 + report).min(buf.len());
    let mut out = Vec::new();
    let mut at = 8;
    while at + 8 <= end {
        let code = b.u8(at)? & 0x0f;
        let kind = ElementType::from_code(code)
            .filter(|k| *k != ElementType::All)
            .ok_or_else(|| {
                b.err(
                    at,
                    format!("element type code {code} is not an element type"),
                )
            })?;
        let flags = b.u8(at + 1)?;
        let (pvoltag, avoltag) = (flags & 0x80 != 0, flags & 0x40 != 0);
        let desc_len = usize::from(b.be16(at + 2)?);
        let bytes = b.be24(at + 5)? as usize;
        if desc_len < 12 {
            return Err(b.err(
                at + 2,
                format!("element descriptor length {desc_len} is below 12"),
            ));
        }
        // A device may send less than its headers declare (an allocation length too small,
        // or tgt 1.0.85, which sends 8 bytes less): the descriptors that arrived count,
        // and the last one as far as its address, flags and volume tag arrived.
        let page_end = (at + 8 + bytes).min(end);
        let mut d = at + 8;
        while d < page_end {
            let have = (page_end - d).min(desc_len);
            let needed = if pvoltag { 44 } else { 12 };
            if have < needed {
                return Err(b.err(
                    d,
                    format!(
                        "an element descriptor cut to {have} bytes (at least {needed} are needed)"
                    ),
                ));
            }
            out.push(descriptor(b, d, have, kind, pvoltag, avoltag)?);
            d += desc_len;
        }
        at = at + 8 + bytes;
    }
    Ok(out)
}

fn descriptor(
    b: Bytes<'_>,
    d: usize,
    len: usize,
    kind: ElementType,
    pvoltag: bool,
    avoltag: bool,
) -> Result<Element, ParseError> {
    let flags = b.u8(d + 2)?;
    let svalid = b.u8(d + 9)? & 0x80 != 0;
    let mut at = d + 12;
    let volume_tag = if pvoltag {
        let tag = b.ascii(at, 32)?;
        at += 36;
        Some(tag.trim().to_string()).filter(|t| !t.is_empty())
    } else {
        None
    };
    if avoltag {
        at += 36;
    }
    let at = at.min(d + len);
    // The identification descriptor: code set, identifier type, reserved, length.
    let identifier = if at + 4 <= d + len {
        // Cut short (see parse_element_status), the identifier is what arrived of it.
        let idlen = usize::from(b.u8(at + 3)?).min(d + len - (at + 4));
        if idlen > 0 {
            let id = b.slice(at + 4, idlen)?;
            Some(crate::bytes::ascii_trimmed(id)).filter(|s| !s.trim().is_empty())
        } else {
            None
        }
    } else {
        None
    };
    if at > d + len {
        return Err(b.err(
            d,
            format!(
                "volume tags need {} bytes, the descriptor has {len}",
                at - d
            ),
        ));
    }
    Ok(Element {
        kind,
        address: b.be16(d)?,
        full: flags & 0x01 != 0,
        imported: flags & 0x02 != 0,
        except: flags & 0x04 != 0,
        access: flags & 0x08 != 0,
        asc: b.u8(d + 4)?,
        ascq: b.u8(d + 5)?,
        source: if svalid { Some(b.be16(d + 10)?) } else { None },
        volume_tag,
        identifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // The page as tgt's smc_lu_init and add_slt build it (SMC-3 table 95): transport at 2
    // (1), storage from 3 (4), import/export at 10 (1), data transfer at 1 (1).
    #[test]
    fn address_assignment() {
        let page = ModePage {
            code: 0x1d,
            subpage: 0,
            data: vec![0, 2, 0, 1, 0, 3, 0, 4, 0, 10, 0, 1, 0, 1, 0, 1, 0, 0],
        };
        let a = AddressAssignment::parse(&page).unwrap();
        assert_eq!(a.transport, ElementRange { first: 2, count: 1 });
        assert_eq!(a.storage, ElementRange { first: 3, count: 4 });
        assert_eq!(
            a.import_export,
            ElementRange {
                first: 10,
                count: 1
            }
        );
        assert_eq!(a.data_transfer, ElementRange { first: 1, count: 1 });
        let short = ModePage {
            code: 0x1d,
            subpage: 0,
            data: vec![0; 10],
        };
        assert_eq!(AddressAssignment::parse(&short).unwrap_err().offset, 10);
    }

    /// A storage element descriptor with a primary volume tag (SMC-3 table 26): 52 bytes
    /// as tgt sends them (12 + 36 + 4 for an empty identification descriptor header).
    fn storage(addr: u16, full: bool, tag: &str, source: Option<u16>) -> Vec<u8> {
        let mut d = vec![0u8; 52];
        d[0..2].copy_from_slice(&addr.to_be_bytes());
        d[2] = u8::from(full) | 0x08;
        if let Some(s) = source {
            d[9] = 0x80;
            d[10..12].copy_from_slice(&s.to_be_bytes());
        }
        let mut t = [b' '; 32];
        t[..tag.len()].copy_from_slice(tag.as_bytes());
        d[12..44].copy_from_slice(&t);
        d
    }

    fn page(kind: u8, desc_len: u16, descs: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = descs.concat();
        let mut p = vec![kind, 0x80];
        p.extend_from_slice(&desc_len.to_be_bytes());
        p.push(0);
        p.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        p.extend(body);
        p
    }

    fn status(first: u16, count: u16, pages: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = pages.concat();
        let mut d = first.to_be_bytes().to_vec();
        d.extend_from_slice(&count.to_be_bytes());
        d.push(0);
        d.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        d.extend(body);
        d
    }

    #[test]
    fn storage_elements_with_barcodes() {
        let p = page(
            2,
            52,
            &[
                storage(3, true, "R00001L6", None),
                storage(4, false, "", None),
                storage(5, true, "R00003L6", Some(1)),
            ],
        );
        let v = parse_element_status(&status(3, 3, &[p])).unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].kind, ElementType::Storage);
        assert!(v[0].full && v[0].access);
        assert_eq!(v[0].volume_tag.as_deref(), Some("R00001L6"));
        assert!(!v[1].full);
        assert_eq!(v[1].volume_tag, None);
        assert_eq!(v[2].source, Some(1));
    }

    // A data transfer element with DVCID (SMC-3 table 24): 86 bytes, identifier of 34 bytes
    // (vendor, product, serial), as tgt's add_element_descriptor writes it.
    #[test]
    fn data_transfer_element_with_identifier() {
        let mut d = storage(1, true, "R00002L6", Some(4));
        d.resize(86, 0);
        d[48] = 2;
        d[49] = 1;
        d[51] = 34;
        d[52..86].copy_from_slice(b"IET     VIRTUAL-TAPE    beaf11    ");
        let v = parse_element_status(&status(1, 1, &[page(4, 86, &[d])])).unwrap();
        assert_eq!(v[0].kind, ElementType::DataTransfer);
        assert_eq!(v[0].volume_tag.as_deref(), Some("R00002L6"));
        assert_eq!(v[0].source, Some(4));
        assert_eq!(
            v[0].identifier.as_deref(),
            Some("IET     VIRTUAL-TAPE    beaf11")
        );
    }

    #[test]
    fn a_page_past_the_end_names_its_offset() {
        let mut d = status(3, 1, &[page(2, 52, &[storage(3, true, "X", None)])]);
        // Cut by 8 bytes, as tgt sends it: the element is there with its tag.
        d.truncate(d.len() - 8);
        let v = parse_element_status(&d).unwrap();
        assert_eq!(v[0].volume_tag.as_deref(), Some("X"));
        // Cut inside the volume tag: an error naming the descriptor.
        d.truncate(40);
        let e = parse_element_status(&d).unwrap_err();
        assert_eq!(e.offset, 16);
        assert!(parse_element_status(&[0, 0, 0]).is_err());
        let bad = status(3, 1, &[page(9, 52, &[storage(3, true, "X", None)])]);
        assert_eq!(parse_element_status(&bad).unwrap_err().offset, 8);
    }
}
