//! Sparse files: finding the data extents (`SEEK_DATA` / `SEEK_HOLE`), reading only them,
//! writing them back at their offsets so holes stay holes, and hashing the logical content
//! without reading the holes.
//!
//! A file's *content* in an archive or stream is the bytes of its data extents, in order;
//! the [`SparseMap`] says where each extent lies in the file.
//!
//! ## The content hash of a sparse file (`sparse-b3-64k`)
//!
//! Hashing a 1 TiB file that holds 1 MiB of data with plain BLAKE3 means hashing a
//! terabyte of zeros (minutes per file, at backup and again at every restore and verify).
//! So the hash of a sparse file is BLAKE3 over its logical content cut into 64 KiB blocks,
//! where only blocks holding a non-zero byte are hashed, each as `u64le(block index)` then
//! the block's bytes (the last block may be short), followed by `u64le(logical size)`.
//! It depends on the logical content only (not on where the file system put its holes),
//! so it can be recomputed from any copy, sparse or not. Dense files keep plain BLAKE3.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use crate::meta::{FileKind, FileMeta};

/// One data extent: `len` bytes at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Extent {
    pub offset: u64,
    pub len: u64,
}

impl Extent {
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// Where the data of a sparse file lies; everything else reads as zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SparseMap {
    /// Sorted, non-overlapping data extents (zero-length extents are allowed and ignored).
    pub extents: Vec<Extent>,
}

/// Most extents kept for one file (bounded memory); beyond it, small holes are stored as
/// zeros.
pub const MAX_EXTENTS: usize = 1 << 16;

/// Name of the content-hash scheme of sparse files (see the module documentation).
pub const SPARSE_HASH_SCHEME: &str = "sparse-b3-64k";
const HASH_BLOCK: usize = 64 * 1024;

impl SparseMap {
    /// Bytes of data (what the archive or stream carries).
    pub fn data_len(&self) -> u64 {
        self.extents.iter().map(|e| e.len).sum()
    }

    /// Checks the map against the file's logical size.
    pub fn validate(&self, size: u64) -> Result<(), String> {
        let mut prev_end = 0u64;
        for (i, e) in self.extents.iter().enumerate() {
            let end = e
                .offset
                .checked_add(e.len)
                .ok_or_else(|| format!("sparse extent {i} ({}+{}) overflows", e.offset, e.len))?;
            if e.offset < prev_end {
                return Err(format!(
                    "sparse extent {i} at {} overlaps or precedes the previous one (ending at {prev_end})",
                    e.offset
                ));
            }
            if end > size {
                return Err(format!(
                    "sparse extent {i} ({}+{}) ends past the file size {size}",
                    e.offset, e.len
                ));
            }
            prev_end = end;
        }
        Ok(())
    }

    /// The map with zero-length extents dropped.
    pub fn compact(mut self) -> SparseMap {
        self.extents.retain(|e| e.len > 0);
        self
    }
}

fn lseek(fd: impl AsFd, pos: rustix::fs::SeekFrom) -> io::Result<Option<u64>> {
    match rustix::fs::seek(fd, pos) {
        Ok(p) => Ok(Some(p)),
        Err(rustix::io::Errno::NXIO) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Finds the data extents of an open regular file of `size` bytes. `None` when the file
/// has no holes (or the file system cannot tell).
pub fn scan(file: &File, size: u64) -> io::Result<Option<SparseMap>> {
    if size == 0 {
        return Ok(None);
    }
    match lseek(file, rustix::fs::SeekFrom::Hole(0)) {
        Ok(Some(h)) if h >= size => return Ok(None),
        Ok(_) => {}
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    // Holes smaller than `min_hole` are kept as data; it grows until the map fits.
    let mut min_hole = 0u64;
    'attempt: loop {
        let mut extents: Vec<Extent> = Vec::new();
        let mut pos = 0u64;
        while pos < size {
            let Some(data) = lseek(file, rustix::fs::SeekFrom::Data(pos))? else {
                break;
            };
            if data >= size {
                break;
            }
            let hole = lseek(file, rustix::fs::SeekFrom::Hole(data))?
                .unwrap_or(size)
                .min(size);
            match extents.last_mut() {
                Some(last) if data - last.end() < min_hole => last.len = hole - last.offset,
                _ => extents.push(Extent {
                    offset: data,
                    len: hole - data,
                }),
            }
            if extents.len() > MAX_EXTENTS {
                min_hole = (min_hole * 4).max(64 * 1024);
                continue 'attempt;
            }
            pos = hole.max(data + 1);
        }
        if extents.len() == 1 && extents[0].offset == 0 && extents[0].len == size {
            return Ok(None);
        }
        return Ok(Some(SparseMap { extents }));
    }
}

/// Reads a file's archive content: the whole file, or only the data extents of a sparse
/// one (positioned reads; holes are never read).
pub struct ContentReader {
    file: File,
    map: Option<SparseMap>,
    extent: usize,
    within: u64,
}

impl ContentReader {
    pub fn new(file: File, map: Option<SparseMap>) -> ContentReader {
        ContentReader {
            file,
            map: map.map(SparseMap::compact),
            extent: 0,
            within: 0,
        }
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn into_file(self) -> File {
        self.file
    }

    /// Skips `n` bytes of content without reading them; returns how many were skipped
    /// (fewer at the end of the content).
    pub fn skip(&mut self, mut n: u64) -> io::Result<u64> {
        let Some(map) = &self.map else {
            let pos = rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Current(0))?;
            let size = self.file.metadata()?.len();
            let moved = n.min(size.saturating_sub(pos));
            rustix::fs::seek(&self.file, rustix::fs::SeekFrom::Start(pos + moved))?;
            return Ok(moved);
        };
        let mut moved = 0;
        while n > 0 && self.extent < map.extents.len() {
            let e = map.extents[self.extent];
            let step = (e.len - self.within).min(n);
            self.within += step;
            moved += step;
            n -= step;
            if self.within == e.len {
                self.extent += 1;
                self.within = 0;
            }
        }
        Ok(moved)
    }
}

impl Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(map) = &self.map else {
            return self.file.read(buf);
        };
        while let Some(e) = map.extents.get(self.extent) {
            if self.within == e.len {
                self.extent += 1;
                self.within = 0;
                continue;
            }
            let want = (e.len - self.within).min(buf.len() as u64) as usize;
            let n = self
                .file
                .read_at(&mut buf[..want], e.offset + self.within)?;
            if n == 0 {
                // The file shrank: the content ends here (the caller zero-fills and reports).
                self.extent = map.extents.len();
                return Ok(0);
            }
            self.within += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

/// Turns the archive content of a sparse file into positioned writes.
#[derive(Debug, Clone)]
pub struct Placer {
    extents: Vec<Extent>,
    extent: usize,
    within: u64,
}

impl Placer {
    pub fn new(map: &SparseMap) -> Placer {
        Placer {
            extents: map.clone().compact().extents,
            extent: 0,
            within: 0,
        }
    }

    /// Where the next `len` content bytes go: (file offset, how many of them fit there).
    /// `None` once the map is full.
    pub fn next(&mut self, len: usize) -> Option<(u64, usize)> {
        while let Some(e) = self.extents.get(self.extent) {
            if self.within == e.len {
                self.extent += 1;
                self.within = 0;
                continue;
            }
            let n = (e.len - self.within).min(len as u64) as usize;
            let at = e.offset + self.within;
            self.within += n as u64;
            return Some((at, n));
        }
        None
    }
}

/// The content hash of a member: plain BLAKE3 for dense files, `sparse-b3-64k` for sparse
/// ones (fed the archive content, i.e. the data extents in order).
pub enum ContentHasher {
    Dense(Box<blake3::Hasher>),
    Sparse(Box<SparseHasher>),
}

impl ContentHasher {
    /// The hasher for a member described by `meta`.
    pub fn for_meta(meta: &FileMeta) -> ContentHasher {
        match (&meta.sparse, meta.kind) {
            (Some(map), FileKind::Regular) => {
                ContentHasher::Sparse(Box::new(SparseHasher::new(map, meta.size)))
            }
            _ => ContentHasher::Dense(Box::new(blake3::Hasher::new())),
        }
    }

    /// The name of the scheme for `meta` (`None` = plain BLAKE3).
    pub fn scheme(meta: &FileMeta) -> Option<&'static str> {
        (meta.sparse.is_some() && meta.kind == FileKind::Regular).then_some(SPARSE_HASH_SCHEME)
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            ContentHasher::Dense(h) => {
                h.update(data);
            }
            ContentHasher::Sparse(s) => s.update(data),
        }
    }

    pub fn finalize(self) -> blake3::Hash {
        match self {
            ContentHasher::Dense(h) => h.finalize(),
            ContentHasher::Sparse(s) => s.finalize(),
        }
    }
}

/// See the module documentation.
pub struct SparseHasher {
    placer: Placer,
    size: u64,
    hasher: blake3::Hasher,
    block: u64,
    buf: Vec<u8>,
    touched: bool,
}

impl SparseHasher {
    pub fn new(map: &SparseMap, size: u64) -> SparseHasher {
        SparseHasher {
            placer: Placer::new(map),
            size,
            hasher: blake3::Hasher::new(),
            block: 0,
            buf: vec![0u8; HASH_BLOCK],
            touched: false,
        }
    }

    /// Feeds logical content at `offset` (offsets must not go backwards).
    pub fn update_at(&mut self, mut offset: u64, mut bytes: &[u8]) {
        while !bytes.is_empty() && offset < self.size {
            let block = offset / HASH_BLOCK as u64;
            if block != self.block {
                self.flush();
                self.block = block;
            }
            let within = (offset % HASH_BLOCK as u64) as usize;
            let n = (HASH_BLOCK - within).min(bytes.len());
            self.buf[within..within + n].copy_from_slice(&bytes[..n]);
            self.touched = true;
            offset += n as u64;
            bytes = &bytes[n..];
        }
    }

    /// Feeds archive content (data extents in order).
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let Some((at, n)) = self.placer.next(data.len()) else {
                return;
            };
            self.update_at(at, &data[..n]);
            data = &data[n..];
        }
    }

    fn flush(&mut self) {
        if !self.touched {
            return;
        }
        let start = self.block * HASH_BLOCK as u64;
        let len = (self.size - start).min(HASH_BLOCK as u64) as usize;
        if self.buf[..len].iter().any(|b| *b != 0) {
            self.hasher.update(&self.block.to_le_bytes());
            self.hasher.update(&self.buf[..len]);
        }
        self.buf.fill(0);
        self.touched = false;
    }

    pub fn finalize(mut self) -> blake3::Hash {
        self.flush();
        self.hasher.update(&self.size.to_le_bytes());
        self.hasher.finalize()
    }
}

/// The `sparse-b3-64k` hash of `data` as a dense byte string (for tests and verification
/// of files read in full).
pub fn sparse_hash_of_bytes(data: &[u8]) -> blake3::Hash {
    let map = SparseMap {
        extents: vec![Extent {
            offset: 0,
            len: data.len() as u64,
        }],
    };
    let mut h = SparseHasher::new(&map, data.len() as u64);
    h.update(data);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_hash_depends_on_logical_content_only() {
        let mut logical = vec![0u8; 300_000];
        logical[5] = 1;
        logical[70_000..70_010].copy_from_slice(b"0123456789");
        logical[299_999] = 9;
        let whole = sparse_hash_of_bytes(&logical);
        // The same content described by a map with holes, and by one with zero "data".
        let maps = [
            vec![(0u64, 10u64), (69_000, 2_000), (299_000, 1_000)],
            vec![(0, 100_000), (100_000, 200_000)],
            vec![(5, 1), (70_000, 10), (299_999, 1)],
        ];
        for m in maps {
            let map = SparseMap {
                extents: m
                    .iter()
                    .map(|&(o, l)| Extent { offset: o, len: l })
                    .collect(),
            };
            map.validate(logical.len() as u64).unwrap();
            let mut h = SparseHasher::new(&map, logical.len() as u64);
            for e in &map.extents {
                // Feed in odd chunk sizes.
                for c in logical[e.offset as usize..e.end() as usize].chunks(777) {
                    h.update(c);
                }
            }
            assert_eq!(h.finalize(), whole, "{map:?}");
        }
        let mut other = logical.clone();
        other[200_000] = 1;
        assert_ne!(sparse_hash_of_bytes(&other), whole);
        let mut longer = logical.clone();
        longer.push(0);
        assert_ne!(sparse_hash_of_bytes(&longer), whole);
    }

    #[test]
    fn maps_are_validated() {
        let m = |v: &[(u64, u64)]| SparseMap {
            extents: v
                .iter()
                .map(|&(o, l)| Extent { offset: o, len: l })
                .collect(),
        };
        assert!(m(&[(0, 5), (10, 5)]).validate(15).is_ok());
        assert!(m(&[(0, 5), (4, 5)]).validate(15).is_err());
        assert!(m(&[(10, 5), (0, 5)]).validate(15).is_err());
        assert!(m(&[(0, 16)]).validate(15).is_err());
        assert!(m(&[(u64::MAX, 2)]).validate(u64::MAX).is_err());
    }
}
