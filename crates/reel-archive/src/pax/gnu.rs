//! GNU tar's extensions that other writers' archives carry, for reading them back: the old
//! GNU sparse header (`S`) and its extension blocks, the pax sparse formats 0.0 and 0.1, and
//! multi-volume continuations (`M` headers, `GNU.volume.*` keys).
//!
//! Layouts (GNU tar manual, appendix "Sparse Formats" and "GNU Extensions"):
//! - old GNU header (magic `ustar  \0`): atime at 345, ctime at 357, the multi-volume offset
//!   at 369 (12 bytes each), four sparse entries of 24 bytes (offset, size) at 386, the
//!   "is extended" flag at 482 and the real size at 483. An extension block holds 21 entries
//!   and its own flag at 504. An entry whose size field starts with NUL ends the list.
//! - pax 0.0: `GNU.sparse.size` (real size), `GNU.sparse.numblocks`, then
//!   `GNU.sparse.offset`/`GNU.sparse.numbytes` repeated once per extent, in order.
//! - pax 0.1: `GNU.sparse.size`, `GNU.sparse.numblocks`, `GNU.sparse.name` (the real name)
//!   and `GNU.sparse.map` (`offset,size,offset,size,…`).
//! - In all of them the extents' data follows the header, each extent in whole 512-byte
//!   blocks (how GNU tar reads them) or packed one after the other (how libarchive reads
//!   them); the two are the same bytes whenever every extent but the last is a multiple of
//!   512 bytes, which is all GNU tar writes. [`sparse_layout`] decides from the member's
//!   size.
//! - Multi-volume: a volume that continues a member starts (after an optional `V` label
//!   header) with an `M` header naming the member, whose size is what is left of it and
//!   whose offset field says where in the member this part starts. In pax archives the
//!   same facts are global keys `GNU.volume.filename`, `GNU.volume.size` and
//!   `GNU.volume.offset`, followed by an ordinary header (named `…/GNUFileParts/…`).

use reel_stream::{Extent, SparseMap};

use crate::pax::header::{self, BLOCK};
use crate::pax::sparse::{MAX_READ_EXTENTS, padded};

pub const ATIME: (usize, usize) = (345, 12);
pub const CTIME: (usize, usize) = (357, 12);
/// Multi-volume: where in the member the part after this header starts.
pub const OFFSET: (usize, usize) = (369, 12);
const SPARSE_AT: usize = 386;
const SPARSE_IN_HEADER: usize = 4;
const IS_EXTENDED: usize = 482;
pub const REALSIZE: (usize, usize) = (483, 12);
const SPARSE_IN_EXTENSION: usize = 21;
const EXTENSION_IS_EXTENDED: usize = 504;

/// pax keys of the 0.x sparse formats.
pub const SPARSE_SIZE: &str = "GNU.sparse.size";
pub const SPARSE_NUMBLOCKS: &str = "GNU.sparse.numblocks";
pub const SPARSE_OFFSET: &str = "GNU.sparse.offset";
pub const SPARSE_NUMBYTES: &str = "GNU.sparse.numbytes";
pub const SPARSE_MAP: &str = "GNU.sparse.map";

/// pax keys of multi-volume archives.
pub const VOLUME_LABEL: &str = "GNU.volume.label";
pub const VOLUME_FILENAME: &str = "GNU.volume.filename";
pub const VOLUME_SIZE: &str = "GNU.volume.size";
pub const VOLUME_OFFSET: &str = "GNU.volume.offset";

/// Reads up to `count` entries of 24 bytes from `block` at `at`. Returns whether the list
/// ended inside this block (an empty entry).
fn entries(
    block: &[u8],
    at: usize,
    count: usize,
    out: &mut Vec<(u64, u64)>,
) -> Result<bool, String> {
    for i in 0..count {
        let off = at + i * 24;
        if block[off + 12] == 0 {
            return Ok(true);
        }
        let o = header::get_number(block, (off, 12))
            .map_err(|e| format!("old GNU sparse entry {i}: offset: {e}"))?;
        let n = header::get_number(block, (off + 12, 12))
            .map_err(|e| format!("old GNU sparse entry {i}: size: {e}"))?;
        if o < 0 || n < 0 {
            return Err(format!("old GNU sparse entry {i} is negative ({o}, {n})"));
        }
        if out.len() >= MAX_READ_EXTENTS {
            return Err(format!(
                "old GNU sparse map has more than {MAX_READ_EXTENTS} entries"
            ));
        }
        out.push((o as u64, n as u64));
    }
    Ok(false)
}

/// The entries of an old GNU `S` header; `Ok(true)` when extension blocks follow.
pub fn header_entries(block: &[u8], out: &mut Vec<(u64, u64)>) -> Result<bool, String> {
    entries(block, SPARSE_AT, SPARSE_IN_HEADER, out)?;
    Ok(block[IS_EXTENDED] != 0)
}

/// The entries of one extension block; `Ok(true)` when another block follows.
pub fn extension_entries(block: &[u8; BLOCK], out: &mut Vec<(u64, u64)>) -> Result<bool, String> {
    entries(block, 0, SPARSE_IN_EXTENSION, out)?;
    Ok(block[EXTENSION_IS_EXTENDED] != 0)
}

/// Parses a 0.1 map: `offset,size,offset,size,…`.
pub fn parse_map(text: &[u8]) -> Result<Vec<(u64, u64)>, String> {
    let text = std::str::from_utf8(text).map_err(|_| "GNU.sparse.map is not text".to_string())?;
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let mut numbers = Vec::new();
    for part in text.split(',') {
        if numbers.len() >= 2 * MAX_READ_EXTENTS {
            return Err(format!(
                "GNU.sparse.map has more than {MAX_READ_EXTENTS} entries"
            ));
        }
        let n: u64 = part
            .trim()
            .parse()
            .map_err(|_| format!("GNU.sparse.map entry {part:?} is not a number"))?;
        numbers.push(n);
    }
    if numbers.len() % 2 != 0 {
        return Err(format!(
            "GNU.sparse.map has an odd number of values ({})",
            numbers.len()
        ));
    }
    Ok(numbers.chunks_exact(2).map(|p| (p[0], p[1])).collect())
}

/// The map of a file of `realsize` bytes from (offset, size) pairs, checked.
pub fn map_of(pairs: &[(u64, u64)], realsize: u64) -> Result<SparseMap, String> {
    let map = SparseMap {
        extents: pairs
            .iter()
            .map(|&(offset, len)| Extent { offset, len })
            .collect(),
    };
    map.validate(realsize)?;
    Ok(map.compact())
}

/// How a member's extents lie in the archive when it holds `stored` bytes for them: each
/// extent padded to whole blocks (`Ok(true)`), or packed one after the other (`Ok(false)`).
///
/// When `stored` is the sum of the extents, they are packed: that is how GNU tar's size
/// fields count them, and since GNU tar only writes extents that are whole blocks (but the
/// last), packed and padded are then the same bytes — while other writers' extents of any
/// length are packed. A `stored` that only whole padded extents fill (GNU sparse 1.0, whose
/// size counts the padding) means padded.
pub fn sparse_layout(map: &SparseMap, stored: u64) -> Result<bool, String> {
    let total = map.data_len();
    // Saturating: a hostile map's extents may add up to more than 64 bits can count.
    let each_padded: u64 = map.extents.iter().fold(0u64, |acc, e| {
        acc.saturating_add(e.len.saturating_add(511) / 512 * 512)
    });
    if stored == total {
        Ok(false)
    } else if padded(stored) == each_padded {
        Ok(true)
    } else {
        Err(format!(
            "the sparse map lists {total} bytes of data but the member holds {stored}"
        ))
    }
}

/// A continued member's part, as a volume announces it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumePart {
    pub name: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub offset: Option<u64>,
}

impl VolumePart {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.size.is_none() && self.offset.is_none()
    }

    /// Takes one `GNU.volume.*` record; `Err` for a malformed number.
    pub fn take(&mut self, key: &str, value: &[u8]) -> Result<(), String> {
        let number = || {
            std::str::from_utf8(value)
                .ok()
                .and_then(|t| t.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    format!(
                        "pax record {key}={:?} is not a number",
                        String::from_utf8_lossy(value)
                    )
                })
        };
        match key {
            VOLUME_FILENAME => self.name = Some(value.to_vec()),
            VOLUME_SIZE => self.size = Some(number()?),
            VOLUME_OFFSET => self.offset = Some(number()?),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_extents_do_not_overflow() {
        let map = map_of(&[(0, u64::MAX / 2), (u64::MAX / 2, u64::MAX / 2)], u64::MAX).unwrap();
        assert!(sparse_layout(&map, 1 << 40).is_err());
    }

    #[test]
    fn maps_and_layouts() {
        assert_eq!(
            parse_map(b"0,10,4096,100").unwrap(),
            vec![(0, 10), (4096, 100)]
        );
        assert!(parse_map(b"1,2,3").is_err());
        assert!(parse_map(b"1,x").is_err());
        assert_eq!(parse_map(b"").unwrap(), vec![]);
        let aligned = map_of(&[(0, 1024), (8192, 10), (9000, 0)], 9000).unwrap();
        assert_eq!(aligned.extents.len(), 2);
        // 1024 + 10: packed and padded are the same blocks.
        assert!(sparse_layout(&aligned, 1034).is_ok());
        let odd = map_of(&[(0, 10), (100, 10)], 200).unwrap();
        assert!(sparse_layout(&odd, 1024).unwrap());
        assert!(!sparse_layout(&odd, 20).unwrap());
        assert!(sparse_layout(&odd, 700).unwrap());
        assert!(sparse_layout(&odd, 1100).is_err());
        assert!(map_of(&[(10, 10), (5, 1)], 100).is_err());
        assert!(map_of(&[(90, 20)], 100).is_err());
    }

    #[test]
    fn old_header_entries() {
        let mut b = [0u8; BLOCK];
        header::put_octal(&mut b, (386, 12), 0);
        header::put_octal(&mut b, (398, 12), 512);
        header::put_octal(&mut b, (410, 12), 4096);
        header::put_octal(&mut b, (422, 12), 0);
        let mut out = Vec::new();
        assert!(!header_entries(&b, &mut out).unwrap());
        assert_eq!(out, vec![(0, 512), (4096, 0)]);
        b[IS_EXTENDED] = 1;
        b[386] = b'9';
        let mut out = Vec::new();
        assert!(header_entries(&b, &mut out).is_err());
    }
}
