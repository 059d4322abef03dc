//! GNU sparse format 1.0 in pax archives, as GNU tar writes it.
//!
//! The member's pax header says `GNU.sparse.major=1`, `GNU.sparse.minor=0`,
//! `GNU.sparse.name=<real name>` and `GNU.sparse.realsize=<logical size>`; its ustar name is
//! a stand-in (`<dir>/GNUSparseFile.0/<name>`) so that old readers do not overwrite the
//! real file with the encoded data. The data area starts with the map — decimal numbers
//! each ending in a newline: the number of extents, then each extent's offset and size —
//! padded with NULs to a 512-byte boundary, followed by each extent's bytes, each padded
//! with NULs to a 512-byte boundary (GNU tar reads and writes regions in whole blocks).
//! A file that ends in a hole gets a last, empty extent at its size.

use reel_stream::{Extent, SparseMap};

use crate::pax::header::BLOCK;

pub const MAJOR: &str = "GNU.sparse.major";
pub const MINOR: &str = "GNU.sparse.minor";
pub const NAME: &str = "GNU.sparse.name";
pub const REALSIZE: &str = "GNU.sparse.realsize";
/// Keywords of the older 0.x formats (recognised to refuse them clearly).
pub const OLD_KEYS: [&str; 4] = [
    "GNU.sparse.size",
    "GNU.sparse.numblocks",
    "GNU.sparse.offset",
    "GNU.sparse.map",
];

/// Most extents accepted in a map read from an archive (bounded memory).
pub const MAX_READ_EXTENTS: usize = 1 << 22;

/// The map block of a file of `realsize` bytes: text padded to 512 bytes.
pub fn map_block(map: &SparseMap, realsize: u64) -> Vec<u8> {
    let mut entries: Vec<(u64, u64)> = map
        .extents
        .iter()
        .filter(|e| e.len > 0)
        .map(|e| (e.offset, e.len))
        .collect();
    let end = entries.last().map(|(o, l)| o + l).unwrap_or(0);
    if end < realsize || entries.is_empty() {
        entries.push((realsize, 0));
    }
    let mut text = format!("{}\n", entries.len());
    for (o, l) in entries {
        text.push_str(&format!("{o}\n{l}\n"));
    }
    let mut out = text.into_bytes();
    let pad = (BLOCK - out.len() % BLOCK) % BLOCK;
    out.resize(out.len() + pad, 0);
    out
}

/// Bytes of the map block (without building the data).
pub fn map_block_len(map: &SparseMap, realsize: u64) -> u64 {
    map_block(map, realsize).len() as u64
}

/// `n` rounded up to whole 512-byte blocks.
pub fn padded(n: u64) -> u64 {
    n.div_ceil(BLOCK as u64) * BLOCK as u64
}

/// Bytes the extents take in the archive, each padded to 512.
pub fn padded_data_len(map: &SparseMap) -> u64 {
    map.extents.iter().map(|e| padded(e.len)).sum()
}

/// A map being read block by block from the start of a member's data.
#[derive(Debug, Default)]
pub struct MapParser {
    numbers: Vec<u64>,
    partial: Vec<u8>,
    expected: Option<usize>,
}

impl MapParser {
    pub fn new() -> MapParser {
        MapParser::default()
    }

    /// Feeds one 512-byte block; `Ok(true)` once the map is complete (the rest of the
    /// block is padding).
    pub fn feed(&mut self, block: &[u8]) -> Result<bool, String> {
        for &b in block {
            if self
                .expected
                .is_some_and(|n| self.numbers.len() == 1 + 2 * n)
            {
                return Ok(true);
            }
            match b {
                b'0'..=b'9' => {
                    if self.partial.len() >= 20 {
                        return Err("a number in the sparse map is too long".into());
                    }
                    self.partial.push(b);
                }
                b'\n' => {
                    let text = std::str::from_utf8(&self.partial).unwrap_or("");
                    let n: u64 = text
                        .parse()
                        .map_err(|_| format!("sparse map entry {:?} is not a number", text))?;
                    self.partial.clear();
                    self.numbers.push(n);
                    if self.numbers.len() == 1 {
                        if n as usize > MAX_READ_EXTENTS {
                            return Err(format!("sparse map of {n} extents is too large"));
                        }
                        self.expected = Some(n as usize);
                    }
                }
                other => {
                    return Err(format!("unexpected byte {other:#04x} in the sparse map"));
                }
            }
        }
        Ok(self
            .expected
            .is_some_and(|n| self.numbers.len() == 1 + 2 * n))
    }

    /// The map (zero-length extents dropped), checked against `realsize`.
    pub fn finish(self, realsize: u64) -> Result<SparseMap, String> {
        let pairs = &self.numbers[1.min(self.numbers.len())..];
        let map = SparseMap {
            extents: pairs
                .chunks_exact(2)
                .map(|p| Extent {
                    offset: p[0],
                    len: p[1],
                })
                .collect(),
        };
        map.validate(realsize)?;
        Ok(map.compact())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_blocks_round_trip() {
        let map = SparseMap {
            extents: vec![
                Extent { offset: 0, len: 10 },
                Extent {
                    offset: 4096,
                    len: 100,
                },
            ],
        };
        let block = map_block(&map, 1 << 40);
        assert_eq!(block.len(), 512);
        assert!(block.starts_with(b"3\n0\n10\n4096\n100\n1099511627776\n0\n"));
        let mut p = MapParser::new();
        assert!(p.feed(&block).unwrap());
        assert_eq!(p.finish(1 << 40).unwrap(), map);
        let mut p = MapParser::new();
        assert!(p.feed(b"1\n0\nx\n").is_err());
        let mut p = MapParser::new();
        p.feed(b"1\n10\n10\n").unwrap();
        assert!(p.finish(15).is_err());
    }
}
