//! Content hashes, common-store file names and a link's reparse data.
//!
//! # Reparse data layout (xattr `user.reel.sis`, version 1, 52 bytes)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `RSIS` |
//! | 4 | 1 | format version, `1` |
//! | 5 | 3 | reserved, zero |
//! | 8 | 8 | file size in bytes, little-endian |
//! | 16 | 32 | BLAKE3 hash of the content: the common-store file is `<hex of it>.sis` |
//! | 48 | 4 | CRC-32 (IEEE) of bytes 0..48, little-endian |
//!
//! The text form (for archive headers and people) is `1:<64 hex digits>.sis:<size>`.
//! Reparse data only *claims* a link; whether a file still is one is decided by its
//! extent map (see [`crate::CommonStore::link_state`]).

use std::fmt;

use crate::error::{Result, SisError, corrupt};

/// Length of the binary reparse data.
pub const REPARSE_LEN: usize = 52;
/// Current reparse data format version.
pub const REPARSE_VERSION: u8 = 1;
const MAGIC: &[u8; 4] = b"RSIS";

/// A BLAKE3 content hash: the identity, and the name, of a common-store file.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// The hash of `bytes`.
    pub fn of(bytes: &[u8]) -> ContentHash {
        ContentHash(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
            s.push(char::from_digit(u32::from(b & 15), 16).unwrap_or('0'));
        }
        s
    }

    /// Parses 64 lowercase hex digits.
    pub fn from_hex(text: &str) -> Option<ContentHash> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_digit(pair[0])?;
            let lo = hex_digit(pair[1])?;
            out[i] = (hi << 4) | lo;
        }
        Some(ContentHash(out))
    }

    /// The common-store file name: `<hex>.sis`.
    pub fn file_name(&self) -> String {
        format!("{}.sis", self.to_hex())
    }

    /// The hash named by a common-store file name (`<hex>.sis`).
    pub fn from_file_name(name: &str) -> Result<ContentHash> {
        name.strip_suffix(".sis")
            .and_then(ContentHash::from_hex)
            .ok_or_else(|| SisError::BadName {
                name: name.to_string(),
            })
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.to_hex())
    }
}

/// A SIS link's reparse data: which common-store file it shares, and its size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReparseData {
    pub hash: ContentHash,
    pub size: u64,
}

impl ReparseData {
    /// The common-store file name this link points to.
    pub fn common_store_name(&self) -> String {
        self.hash.file_name()
    }

    /// The 52-byte binary form stored in the xattr.
    pub fn to_bytes(&self) -> [u8; REPARSE_LEN] {
        let mut out = [0u8; REPARSE_LEN];
        out[0..4].copy_from_slice(MAGIC);
        out[4] = REPARSE_VERSION;
        out[8..16].copy_from_slice(&self.size.to_le_bytes());
        out[16..48].copy_from_slice(&self.hash.0);
        let crc = crc32fast::hash(&out[0..48]);
        out[48..52].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Parses the binary form; every defect is reported with its byte offset.
    pub fn from_bytes(bytes: &[u8]) -> Result<ReparseData> {
        const WHAT: &str = "SIS reparse data";
        if bytes.len() < 5 {
            return Err(corrupt(
                WHAT,
                bytes.len(),
                format!("truncated: {} bytes, {REPARSE_LEN} expected", bytes.len()),
            ));
        }
        if &bytes[0..4] != MAGIC {
            return Err(corrupt(
                WHAT,
                0,
                "no `RSIS` magic: not reel SIS reparse data",
            ));
        }
        if bytes[4] != REPARSE_VERSION {
            return Err(corrupt(
                WHAT,
                4,
                format!(
                    "format version {} (this reel reads version {REPARSE_VERSION})",
                    bytes[4]
                ),
            ));
        }
        if bytes.len() != REPARSE_LEN {
            return Err(corrupt(
                WHAT,
                bytes.len().min(REPARSE_LEN),
                format!("{} bytes, {REPARSE_LEN} expected", bytes.len()),
            ));
        }
        if let Some(i) = bytes[5..8].iter().position(|&b| b != 0) {
            return Err(corrupt(WHAT, 5 + i, "reserved byte is not zero"));
        }
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[48..52]);
        if crc32fast::hash(&bytes[0..48]) != u32::from_le_bytes(crc) {
            return Err(corrupt(WHAT, 48, "checksum does not match"));
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&bytes[8..16]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[16..48]);
        Ok(ReparseData {
            hash: ContentHash(hash),
            size: u64::from_le_bytes(size),
        })
    }

    /// The text form `1:<hex>.sis:<size>` (e.g. for a `REEL.sis` pax key).
    pub fn to_text(&self) -> String {
        format!("{REPARSE_VERSION}:{}:{}", self.hash.file_name(), self.size)
    }

    /// Parses the text form; defects are reported with their byte offset.
    pub fn from_text(text: &str) -> Result<ReparseData> {
        const WHAT: &str = "SIS reparse text";
        let mut parts = text.splitn(3, ':');
        let version = parts.next().unwrap_or("");
        if version != "1" {
            return Err(corrupt(
                WHAT,
                0,
                format!("version {version:?} (this reel reads version 1)"),
            ));
        }
        let name = parts
            .next()
            .ok_or_else(|| corrupt(WHAT, text.len(), "truncated: no common-store name"))?;
        let name_at = version.len() + 1;
        let hash = ContentHash::from_file_name(name).map_err(|_| {
            corrupt(
                WHAT,
                name_at,
                format!("{name:?} is not a common-store name"),
            )
        })?;
        let size_text = parts
            .next()
            .ok_or_else(|| corrupt(WHAT, text.len(), "truncated: no size"))?;
        let size_at = name_at + name.len() + 1;
        if size_text.is_empty() || !size_text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(corrupt(
                WHAT,
                size_at,
                format!("{size_text:?} is not a size"),
            ));
        }
        let size = size_text
            .parse::<u64>()
            .map_err(|_| corrupt(WHAT, size_at, format!("{size_text:?} is too large")))?;
        Ok(ReparseData { hash, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_reparse() -> impl Strategy<Value = ReparseData> {
        (any::<[u8; 32]>(), any::<u64>()).prop_map(|(h, size)| ReparseData {
            hash: ContentHash(h),
            size,
        })
    }

    #[test]
    fn names_round_trip() {
        let h = ContentHash::of(b"hello");
        assert_eq!(h.to_hex(), blake3::hash(b"hello").to_hex().as_str());
        assert_eq!(ContentHash::from_file_name(&h.file_name()).unwrap(), h);
        assert!(ContentHash::from_file_name("abc.sis").is_err());
        assert!(ContentHash::from_file_name(&h.to_hex()).is_err());
        // Names are lowercase only: one content, one name.
        assert!(ContentHash::from_hex(&h.to_hex().to_uppercase()).is_none());
    }

    #[test]
    fn bad_bytes_name_the_offset() {
        let r = ReparseData {
            hash: ContentHash::of(b"x"),
            size: 7,
        };
        let mut b = r.to_bytes().to_vec();
        b[20] ^= 1;
        let e = ReparseData::from_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("byte 48"), "{e}");
        b[20] ^= 1;
        b[4] = 9;
        let e = ReparseData::from_bytes(&b).unwrap_err().to_string();
        assert!(e.contains("byte 4") && e.contains("version 9"), "{e}");
        let e = ReparseData::from_bytes(&r.to_bytes()[..30])
            .unwrap_err()
            .to_string();
        assert!(e.contains("byte 30"), "{e}");
    }

    proptest! {
        #[test]
        fn binary_round_trip(r in any_reparse()) {
            prop_assert_eq!(ReparseData::from_bytes(&r.to_bytes()).unwrap(), r);
        }

        #[test]
        fn text_round_trip(r in any_reparse()) {
            prop_assert_eq!(ReparseData::from_text(&r.to_text()).unwrap(), r);
        }

        #[test]
        fn binary_truncation_is_an_error(r in any_reparse(), cut in 0usize..REPARSE_LEN) {
            prop_assert!(ReparseData::from_bytes(&r.to_bytes()[..cut]).is_err());
        }

        #[test]
        fn binary_bit_flip_is_an_error(r in any_reparse(), bit in 0usize..REPARSE_LEN * 8) {
            let mut b = r.to_bytes();
            b[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(ReparseData::from_bytes(&b).is_err());
        }

        #[test]
        fn text_truncation_is_an_error(r in any_reparse(), cut in 0usize..70) {
            let t = r.to_text();
            let cut = cut.min(t.len() - 1);
            // A cut inside the size digits still parses (as a smaller size); anything before
            // the size must fail.
            let size_at = t.rfind(':').unwrap_or(0);
            if cut <= size_at {
                prop_assert!(ReparseData::from_text(&t[..cut]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = ReparseData::from_bytes(&bytes);
            let _ = ReparseData::from_text(&String::from_utf8_lossy(&bytes));
        }
    }
}
