//! Linux names (bytes) as UTF-16 code units and back, losslessly.
//!
//! Valid UTF-8 becomes UTF-16. A byte that is not part of valid UTF-8 becomes the lone
//! surrogate `U+DC00 + byte` (bytes 0x80..0xFF, as Python's `surrogateescape`); valid UTF-8
//! never encodes a surrogate, so the way back is unambiguous.

/// Encodes name bytes as UTF-16 code units.
pub fn to_utf16(bytes: &[u8]) -> Vec<u16> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.extend(s.encode_utf16());
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` is valid UTF-8 by construction.
                out.extend(String::from_utf8_lossy(good).encode_utf16());
                let n = e.error_len().unwrap_or(bad.len()).max(1);
                for b in &bad[..n] {
                    out.push(0xDC00 | u16::from(*b));
                }
                rest = &bad[n..];
            }
        }
    }
    out
}

/// Decodes UTF-16 code units to name bytes. Fails on a lone surrogate that is not one of
/// the escapes (Windows allows them; Linux has no bytes for them).
pub fn from_utf16(units: &[u16]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(units.len());
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            Err(e) => {
                let u = e.unpaired_surrogate();
                if (0xDC80..=0xDCFF).contains(&u) {
                    out.push((u & 0xFF) as u8);
                } else {
                    return Err(format!(
                        "name contains the unpaired surrogate U+{u:04X}, which has no Linux form"
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// Little-endian bytes of UTF-16 code units.
pub fn utf16_bytes(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_le_bytes()).collect()
}

/// UTF-16 code units of little-endian bytes (`None` for an odd length).
pub fn utf16_units(bytes: &[u8]) -> Option<Vec<u16>> {
    if !bytes.len().is_multiple_of(2) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for n in [
            &b"plain.txt"[..],
            "ünïcødé-файл-日本-😀".as_bytes(),
            b"bad\xff\xfebytes\x80",
            b"\xed\xa0\x80", // an encoded surrogate: not UTF-8, so escaped byte by byte
            b"line\nbreak",
            b"",
        ] {
            let u = to_utf16(n);
            assert_eq!(from_utf16(&u).unwrap(), n, "{n:?}");
        }
        assert_eq!(to_utf16("é".as_bytes()), vec![0xE9]);
        assert!(from_utf16(&[0xD800]).is_err());
        assert!(from_utf16(&[0xDC41]).is_err());
    }
}
