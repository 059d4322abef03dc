//! The store's bookkeeping: which links share which common-store file (Windows keeps
//! back-pointers from each common-store file to its links; this is the same list).
//!
//! # File format (`.sis-common-store/links.index`, text, version 1)
//!
//! ```text
//! reel-sis-index 1
//! <64 hex: content hash> <size> <inode> <path relative to the volume root, %-escaped>
//! ...
//! end <number of link lines> <BLAKE3 hex of every byte before this line>
//! ```
//!
//! Paths escape `%`, space, control bytes and DEL as `%XX`; when a path is not UTF-8 every
//! byte from 0x80 up is escaped too. Lines are sorted by hash, then path. The trailer makes
//! a truncated or damaged file an error, never a silently shorter list.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use crate::error::{Result, corrupt};
use crate::reparse::ContentHash;
use crate::volume::is_plain_relative;

const HEADER: &str = "reel-sis-index 1\n";

/// One SIS link as recorded: its path relative to the volume root and its inode number.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkRecord {
    pub path: PathBuf,
    pub ino: u64,
}

/// A common-store file's size and the links that share it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexEntry {
    pub size: u64,
    pub links: Vec<LinkRecord>,
}

/// The whole index, kept in memory while a command works on the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Index {
    entries: BTreeMap<ContentHash, IndexEntry>,
    by_path: HashMap<PathBuf, ContentHash>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Common-store files with their links, by hash.
    pub fn entries(&self) -> impl Iterator<Item = (&ContentHash, &IndexEntry)> {
        self.entries.iter()
    }

    /// The entry of one common-store file.
    pub fn get(&self, hash: &ContentHash) -> Option<&IndexEntry> {
        self.entries.get(hash)
    }

    /// The common-store file a recorded link path shares.
    pub fn hash_of_path(&self, path: &Path) -> Option<ContentHash> {
        self.by_path.get(path).copied()
    }

    /// Number of recorded links.
    pub fn link_count(&self) -> usize {
        self.by_path.len()
    }

    /// Records `path` as a link of `hash` (moving it from any other common-store file).
    pub fn set_link(&mut self, hash: ContentHash, size: u64, path: PathBuf, ino: u64) {
        if let Some(old) = self.by_path.get(&path).copied() {
            if old == hash {
                if let Some(entry) = self.entries.get_mut(&hash)
                    && let Some(rec) = entry.links.iter_mut().find(|r| r.path == path)
                {
                    rec.ino = ino;
                }
                return;
            }
            self.remove_link(&path);
        }
        let entry = self.entries.entry(hash).or_insert_with(|| IndexEntry {
            size,
            links: Vec::new(),
        });
        entry.size = size;
        entry.links.push(LinkRecord {
            path: path.clone(),
            ino,
        });
        self.by_path.insert(path, hash);
    }

    /// Forgets a link; returns the common-store file it shared. The entry stays (possibly
    /// with no links) so the caller can decide about the common-store file.
    pub fn remove_link(&mut self, path: &Path) -> Option<ContentHash> {
        let hash = self.by_path.remove(path)?;
        if let Some(entry) = self.entries.get_mut(&hash) {
            entry.links.retain(|r| r.path != path);
        }
        Some(hash)
    }

    /// Forgets a common-store file and all its links.
    pub fn remove_entry(&mut self, hash: &ContentHash) -> Option<IndexEntry> {
        let entry = self.entries.remove(hash)?;
        for r in &entry.links {
            self.by_path.remove(&r.path);
        }
        Some(entry)
    }

    /// The file's bytes (entries without links are left out: they record nothing).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.by_path.len() * 120);
        out.extend_from_slice(HEADER.as_bytes());
        let mut count = 0u64;
        for (hash, entry) in &self.entries {
            let mut links: Vec<&LinkRecord> = entry.links.iter().collect();
            links.sort();
            for r in links {
                out.extend_from_slice(hash.to_hex().as_bytes());
                out.extend_from_slice(format!(" {} {} ", entry.size, r.ino).as_bytes());
                escape_path(r.path.as_os_str().as_bytes(), &mut out);
                out.push(b'\n');
                count += 1;
            }
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(format!("end {count} {}\n", sum.to_hex()).as_bytes());
        out
    }

    /// Parses the file's bytes; every defect is reported with its byte offset.
    pub fn decode(bytes: &[u8], what: &str) -> Result<Index> {
        if !bytes.starts_with(HEADER.as_bytes()) {
            let upto = bytes
                .iter()
                .zip(HEADER.as_bytes())
                .take_while(|(a, b)| a == b)
                .count();
            return Err(corrupt(what, upto, "no `reel-sis-index 1` header"));
        }
        let mut index = Index::new();
        let mut pos = HEADER.len();
        let mut count = 0u64;
        loop {
            let rest = &bytes[pos..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                return Err(corrupt(what, bytes.len(), "truncated: no `end` line"));
            };
            let line = &rest[..nl];
            if let Some(trailer) = line.strip_prefix(b"end ") {
                check_trailer(trailer, &bytes[..pos], count, pos + 4, what)?;
                if pos + nl + 1 != bytes.len() {
                    return Err(corrupt(what, pos + nl + 1, "bytes after the `end` line"));
                }
                return Ok(index);
            }
            let (hash, size, ino, path) = parse_line(line, pos, what)?;
            if let Some(entry) = index.entries.get(&hash)
                && entry.size != size
            {
                return Err(corrupt(
                    what,
                    pos + 65,
                    format!("size {size} differs from {} on an earlier line", entry.size),
                ));
            }
            if index.by_path.contains_key(&path) {
                return Err(corrupt(what, pos + 65, "the same path is listed twice"));
            }
            index.set_link(hash, size, path, ino);
            count += 1;
            pos += nl + 1;
        }
    }
}

fn parse_line(line: &[u8], at: usize, what: &str) -> Result<(ContentHash, u64, u64, PathBuf)> {
    let mut fields = line.splitn(4, |&b| b == b' ');
    let hash_field = fields.next().unwrap_or(b"");
    let hash = std::str::from_utf8(hash_field)
        .ok()
        .and_then(ContentHash::from_hex)
        .ok_or_else(|| corrupt(what, at, "not a 64-digit lowercase hex hash"))?;
    let mut at_field = at + hash_field.len() + 1;
    let mut number = |name: &str| -> Result<u64> {
        let f = fields
            .next()
            .ok_or_else(|| corrupt(what, at_field, format!("truncated line: no {name}")))?;
        let n = parse_u64(f)
            .ok_or_else(|| corrupt(what, at_field, format!("{name} is not a number")))?;
        at_field += f.len() + 1;
        Ok(n)
    };
    let size = number("size")?;
    let ino = number("inode")?;
    let path_field = fields
        .next()
        .ok_or_else(|| corrupt(what, at + line.len(), "truncated line: no path"))?;
    let path_off = at + (line.len() - path_field.len());
    let raw = unescape_path(path_field, path_off, what)?;
    let path = PathBuf::from(OsString::from_vec(raw));
    if !is_plain_relative(&path) {
        return Err(corrupt(
            what,
            path_off,
            "path is not a plain relative path (absolute, empty, or with `..`)",
        ));
    }
    Ok((hash, size, ino, path))
}

fn parse_u64(f: &[u8]) -> Option<u64> {
    if f.is_empty() || !f.iter().all(u8::is_ascii_digit) || (f.len() > 1 && f[0] == b'0') {
        return None;
    }
    std::str::from_utf8(f).ok()?.parse().ok()
}

fn check_trailer(trailer: &[u8], body: &[u8], count: u64, at: usize, what: &str) -> Result<()> {
    let mut f = trailer.splitn(2, |&b| b == b' ');
    let n = f.next().and_then(parse_u64);
    if n != Some(count) {
        return Err(corrupt(
            what,
            at,
            format!("the `end` line does not count {count} links"),
        ));
    }
    let sum = f.next().unwrap_or(b"");
    if sum != blake3::hash(body).to_hex().as_bytes() {
        return Err(corrupt(
            what,
            at,
            "checksum does not match the lines above it",
        ));
    }
    Ok(())
}

fn escape_path(path: &[u8], out: &mut Vec<u8>) {
    let utf8 = std::str::from_utf8(path).is_ok();
    for &b in path {
        let plain = b > 0x20 && b != 0x7f && b != b'%' && (utf8 || b < 0x80);
        if plain {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
}

fn unescape_path(field: &[u8], at: usize, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let b = field[i];
        if b == b'%' {
            let hex = field
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| corrupt(what, at + i, "bad %-escape in path"))?;
            out.push(hex);
            i += 3;
        } else if b <= 0x20 || b == 0x7f {
            return Err(corrupt(what, at + i, "unescaped control byte in path"));
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Index {
        let mut ix = Index::new();
        let a = ContentHash::of(b"a");
        let b = ContentHash::of(b"b");
        ix.set_link(a, 10, "x/one".into(), 5);
        ix.set_link(a, 10, "x/two words%".into(), 6);
        ix.set_link(
            b,
            20,
            PathBuf::from(OsString::from_vec(b"bin\xff\n".to_vec())),
            7,
        );
        ix
    }

    #[test]
    fn round_trip_and_moves() {
        let mut ix = sample();
        let back = Index::decode(&ix.encode(), "index").unwrap();
        assert_eq!(back, ix);
        let b = ContentHash::of(b"b");
        ix.set_link(b, 20, "x/one".into(), 5);
        assert_eq!(ix.hash_of_path(Path::new("x/one")), Some(b));
        assert_eq!(ix.get(&ContentHash::of(b"a")).unwrap().links.len(), 1);
        assert_eq!(ix.link_count(), 3);
    }

    #[test]
    fn damage_is_reported_with_offsets() {
        let bytes = sample().encode();
        let mut bad = bytes.clone();
        let i = HEADER.len() + 3;
        bad[i] = b'Z';
        let e = Index::decode(&bad, "links.index").unwrap_err().to_string();
        assert!(e.contains(&format!("byte {}", HEADER.len())), "{e}");
        let e = Index::decode(&bytes[..bytes.len() - 5], "links.index")
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
        let evil = b"reel-sis-index 1\n".to_vec();
        let mut evil = evil;
        let h = ContentHash::of(b"q").to_hex();
        evil.extend_from_slice(format!("{h} 1 2 ../etc/passwd\n").as_bytes());
        let sum = blake3::hash(&evil).to_hex();
        evil.extend_from_slice(format!("end 1 {sum}\n").as_bytes());
        let e = Index::decode(&evil, "links.index").unwrap_err().to_string();
        assert!(e.contains("plain relative"), "{e}");
    }

    fn any_index() -> impl Strategy<Value = Index> {
        proptest::collection::vec(
            (
                0u8..4,
                any::<u32>(),
                proptest::collection::vec(
                    proptest::collection::vec(1u8..=255, 1..12)
                        .prop_filter("no slash-only", |v| v.iter().any(|&b| b != b'/')),
                    1..3,
                ),
            ),
            0..12,
        )
        .prop_map(|links| {
            let mut ix = Index::new();
            for (h, ino, comps) in links {
                let hash = ContentHash::of(&[h]);
                let mut p = PathBuf::new();
                for c in comps {
                    let c: Vec<u8> = c
                        .into_iter()
                        .map(|b| if b == b'/' { b'_' } else { b })
                        .collect();
                    let c = if c == b"." || c == b".." {
                        b"dot".to_vec()
                    } else {
                        c
                    };
                    p.push(OsString::from_vec(c));
                }
                ix.set_link(hash, u64::from(h) * 1000, p, u64::from(ino));
            }
            ix
        })
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(ix in any_index()) {
            let back = Index::decode(&ix.encode(), "index").unwrap();
            prop_assert_eq!(back.encode(), ix.encode());
        }

        #[test]
        fn truncation_is_an_error(ix in any_index(), cut in 0usize..4000) {
            let bytes = ix.encode();
            let cut = cut % bytes.len();
            prop_assert!(Index::decode(&bytes[..cut], "index").is_err());
        }

        #[test]
        fn bit_flips_are_errors(ix in any_index(), at in any::<usize>(), bit in 0u8..8) {
            let mut bytes = ix.encode();
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            prop_assert!(Index::decode(&bytes, "index").is_err());
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut b = HEADER.as_bytes().to_vec();
            b.extend_from_slice(&bytes);
            let _ = Index::decode(&b, "index");
            let _ = Index::decode(&bytes, "index");
        }
    }
}
