//! The marks file of a partition (`pN.marks`): what opening it would otherwise read the
//! whole index for.
//!
//! Opening a partition needs the object numbers of its filemarks and setmarks and the CRC
//! state of the index entries (appending continues it). Both come from reading every entry,
//! which grows with the tape: 300 KiB for 5 GiB of 256 KiB records, 64 MiB for 1 TiB, and
//! that on every command. The marks file keeps them as of the last sync, with a CRC-32 of
//! each window of 512 entries, so an entry read later is still checked before it is used:
//! the window holding it is checked when first read.
//!
//! It is a cache. It is written after the index header, without fsync, and trusted only
//! when it names the index header found on open (count, end of data and header CRC) and its
//! own CRC holds. Anything else, and the whole index is read and checked, as without it.
//!
//! Layout, little-endian: `REELMRK1`; the header's count (u64), end (u64) and CRC (u32);
//! the CRC of all entries (u32); the numbers of filemarks, setmarks and windows (u64 each);
//! the filemarks and setmarks (u64 each, ascending); the window CRCs (u32 each, the last
//! window possibly partial); a CRC-32 of every byte before it.

const MAGIC: &[u8; 8] = b"REELMRK1";
const FIXED_LEN: usize = 8 + 8 + 8 + 4 + 4 + 8 + 8 + 8;

/// CRC-32 of each window of the index entries written so far; the last one may be partial.
#[derive(Clone, Default)]
pub(crate) struct WindowCrcs {
    complete: Vec<u32>,
    partial: crc32fast::Hasher,
    /// Entries in the partial window.
    partial_len: u64,
}

impl WindowCrcs {
    /// `window` entries make a window; `entry_len` bytes an entry.
    pub fn update(&mut self, mut bytes: &[u8], window: u64, entry_len: u64) {
        while !bytes.is_empty() {
            let room = ((window - self.partial_len) * entry_len) as usize;
            let n = room.min(bytes.len());
            self.partial.update(&bytes[..n]);
            self.partial_len += n as u64 / entry_len;
            bytes = &bytes[n..];
            if self.partial_len == window {
                self.complete
                    .push(std::mem::take(&mut self.partial).finalize());
                self.partial_len = 0;
            }
        }
    }

    /// The CRC of window `k` as written so far (`None` past the last one).
    pub fn crc_of(&self, k: usize) -> Option<u32> {
        match k.cmp(&self.complete.len()) {
            std::cmp::Ordering::Less => Some(self.complete[k]),
            std::cmp::Ordering::Equal if self.partial_len > 0 => {
                Some(self.partial.clone().finalize())
            }
            _ => None,
        }
    }

    /// Windows holding at least one entry.
    pub fn len(&self) -> usize {
        self.complete.len() + usize::from(self.partial_len > 0)
    }

    fn all(&self) -> Vec<u32> {
        let mut v = self.complete.clone();
        if self.partial_len > 0 {
            v.push(self.partial.clone().finalize());
        }
        v
    }

    /// The windows of `count` entries whose CRCs are `crcs` (as [`Self::all`] gives them).
    fn from_crcs(mut crcs: Vec<u32>, count: u64, window: u64, entry_len: u64) -> WindowCrcs {
        let partial_len = count % window;
        let partial = if partial_len > 0 {
            let last = crcs.pop().unwrap_or_default();
            crc32fast::Hasher::new_with_initial_len(last, partial_len * entry_len)
        } else {
            crc32fast::Hasher::new()
        };
        WindowCrcs {
            complete: crcs,
            partial,
            partial_len,
        }
    }
}

/// The contents of a marks file.
pub(crate) struct MarksFile {
    pub count: u64,
    pub end: u64,
    pub header_crc: u32,
    pub entries_crc: u32,
    pub filemarks: Vec<u64>,
    pub setmarks: Vec<u64>,
    pub windows: WindowCrcs,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or_default())
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap_or_default())
}

impl MarksFile {
    /// The file's length with these many filemarks, setmarks and windows (`None` past u64).
    pub fn expected_len(filemarks: u64, setmarks: u64, windows: u64) -> Option<u64> {
        let marks = filemarks.checked_add(setmarks)?.checked_mul(8)?;
        (FIXED_LEN as u64 + 4)
            .checked_add(marks)?
            .checked_add(windows.checked_mul(4)?)
    }

    pub fn encode(&self) -> Vec<u8> {
        let windows = self.windows.all();
        let mut b = Vec::with_capacity(
            FIXED_LEN + 8 * (self.filemarks.len() + self.setmarks.len()) + 4 * windows.len() + 4,
        );
        b.extend_from_slice(MAGIC);
        b.extend_from_slice(&self.count.to_le_bytes());
        b.extend_from_slice(&self.end.to_le_bytes());
        b.extend_from_slice(&self.header_crc.to_le_bytes());
        b.extend_from_slice(&self.entries_crc.to_le_bytes());
        b.extend_from_slice(&(self.filemarks.len() as u64).to_le_bytes());
        b.extend_from_slice(&(self.setmarks.len() as u64).to_le_bytes());
        b.extend_from_slice(&(windows.len() as u64).to_le_bytes());
        for m in self.filemarks.iter().chain(&self.setmarks) {
            b.extend_from_slice(&m.to_le_bytes());
        }
        for w in &windows {
            b.extend_from_slice(&w.to_le_bytes());
        }
        let crc = crc32fast::hash(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a marks file of a partition of `window`-entry windows; `None` for anything
    /// malformed (the caller then reads the index instead).
    pub fn decode(b: &[u8], window: u64, entry_len: u64) -> Option<MarksFile> {
        if b.len() < FIXED_LEN + 4 || &b[..8] != MAGIC {
            return None;
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32fast::hash(body) != u32_at(crc, 0) {
            return None;
        }
        let count = u64_at(b, 8);
        let (filemarks, setmarks, windows) = (u64_at(b, 32), u64_at(b, 40), u64_at(b, 48));
        if Self::expected_len(filemarks, setmarks, windows)? != b.len() as u64
            || windows != count.div_ceil(window)
        {
            return None;
        }
        let mut at = FIXED_LEN;
        let mut marks = |n: u64| -> Option<Vec<u64>> {
            let v: Vec<u64> = (0..n).map(|k| u64_at(b, at + 8 * k as usize)).collect();
            at += 8 * n as usize;
            // Ascending object numbers of this partition, or not ours.
            let ascending = v.windows(2).all(|p| p[0] < p[1]);
            (ascending && v.last().is_none_or(|&m| m < count)).then_some(v)
        };
        let filemarks = marks(filemarks)?;
        let setmarks = marks(setmarks)?;
        let crcs = (0..windows as usize)
            .map(|k| u32_at(b, at + 4 * k))
            .collect();
        Some(MarksFile {
            count,
            end: u64_at(b, 16),
            header_crc: u32_at(b, 24),
            entries_crc: u32_at(b, 28),
            filemarks,
            setmarks,
            windows: WindowCrcs::from_crcs(crcs, count, window, entry_len),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MarksFile {
        let mut windows = WindowCrcs::default();
        windows.update(&[7u8; 16 * 10], 4, 16);
        MarksFile {
            count: 10,
            end: 1234,
            header_crc: 0xdead_beef,
            entries_crc: 0x0123_4567,
            filemarks: vec![1, 5],
            setmarks: vec![9],
            windows,
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let b = m.encode();
        let d = MarksFile::decode(&b, 4, 16).expect("decodes");
        assert_eq!(
            (d.count, d.end, d.header_crc, d.entries_crc),
            (10, 1234, 0xdead_beef, 0x0123_4567)
        );
        assert_eq!((d.filemarks, d.setmarks), (vec![1, 5], vec![9]));
        assert_eq!(d.windows.len(), 3);
        for k in 0..4 {
            assert_eq!(d.windows.crc_of(k), m.windows.crc_of(k), "window {k}");
        }
        // The partial window goes on where it stopped.
        let (mut a, mut c) = (m.windows.clone(), d.windows.clone());
        a.update(&[9u8; 32], 4, 16);
        c.update(&[9u8; 32], 4, 16);
        assert_eq!(a.all(), c.all());
    }

    #[test]
    fn windows_split_at_their_boundaries() {
        let bytes: Vec<u8> = (0..16 * 9).map(|i| i as u8).collect();
        let mut one = WindowCrcs::default();
        one.update(&bytes, 4, 16);
        let mut pieces = WindowCrcs::default();
        for chunk in bytes.chunks(16 * 3) {
            pieces.update(chunk, 4, 16);
        }
        assert_eq!(one.all(), pieces.all());
        assert_eq!(one.all()[0], crc32fast::hash(&bytes[..64]));
        assert_eq!(one.all()[2], crc32fast::hash(&bytes[128..]));
    }

    #[test]
    fn anything_malformed_is_refused() {
        let b = sample().encode();
        for cut in 0..b.len() {
            assert!(
                MarksFile::decode(&b[..cut], 4, 16).is_none(),
                "cut at {cut}"
            );
        }
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut m = b.clone();
                m[i] ^= 1 << bit;
                assert!(
                    MarksFile::decode(&m, 4, 16).is_none(),
                    "bit {bit} of byte {i}"
                );
            }
        }
        // Another window size: the window count does not fit.
        assert!(MarksFile::decode(&b, 8, 16).is_none());
    }
}
