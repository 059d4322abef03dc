//! One partition of a virtual cartridge: its SIMH data file and its sidecar index.
//!
//! The sidecar index (`pN.idx`) maps object number → byte offset, so positioning is one
//! lookup whatever the size of the tape. Layout: a 32-byte header (`REELIDX1`, version 2,
//! CRC-32 of the header fields and of every entry they count, the object count and data
//! length covered by the last sync), then one 16-byte
//! entry per object: byte offset (u64), leading SIMH word (u32) and CRC-32 of the stored
//! payload (u32, 0 for marks). All little-endian.
//!
//! Crash safety: records are appended to the data file first and their index entries later;
//! marks and close sync both files and then the header. On open, everything up to the synced
//! point is trusted and the data file beyond it is scanned: complete objects are indexed, a
//! torn tail is cut off. Without a usable index the whole data file is scanned. A malformed
//! object with data after it is damage, not a torn tail: reading there fails with a CRC error
//! and writes that would destroy what follows are refused.
//!
//! Opening does not read the whole index when the marks file (`pN.marks`, see
//! [`super::marks_file`]) matches its header: the marks and the entries' CRC come from there,
//! and each window of entries is checked against its CRC when first read. A window that fails
//! is handled as a damaged index found on open: the data file is scanned and the index
//! rewritten.

use std::io::{self, IoSlice};

use crate::error::{Result, TapeError};
use crate::simh::{self, Word};
use crate::vtape::marks_file::{MarksFile, WindowCrcs};
use crate::vtape::store::{CartridgeStore, StoreFile};

const IDX_MAGIC: &[u8; 8] = b"REELIDX1";
/// Version 2: the header CRC covers the header fields and every entry they count
/// (version-1 files are not trusted and are rebuilt from the data file).
const IDX_VERSION: u32 = 2;
const IDX_HEADER_LEN: u64 = 32;
const ENTRY_LEN: u64 = 16;
/// Index entries kept in memory before they are written out.
const PENDING_LIMIT: usize = 4096;
/// Index entries read at a time for sequential reads.
const WINDOW: u64 = 4096;
/// Index entries read at a time after a jump (locate, space): a restore of one file
/// needs a handful of entries, and a whole window is 64 KiB read and decoded.
const JUMP_WINDOW: u64 = 64;
/// Index entries under one CRC in the marks file: the most read to check an entry when the
/// index was not read whole on open (8 KiB).
const CHECK_WINDOW: u64 = 512;

/// What an object is, as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Record { class: u32, len: u32 },
    Filemark,
    Setmark,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub offset: u64,
    pub word: u32,
    pub crc: u32,
}

impl Entry {
    pub fn object(&self) -> Object {
        match Word::decode(self.word) {
            Word::TapeMark => Object::Filemark,
            Word::Setmark => Object::Setmark,
            Word::Record { class, len } => Object::Record { class, len },
            // Only the three kinds above are ever indexed.
            _ => Object::Filemark,
        }
    }

    fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.offset.to_le_bytes());
        b[8..12].copy_from_slice(&self.word.to_le_bytes());
        b[12..16].copy_from_slice(&self.crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Entry {
        Entry {
            offset: u64::from_le_bytes(b[0..8].try_into().unwrap_or_default()),
            word: u32::from_le_bytes(b[8..12].try_into().unwrap_or_default()),
            crc: u32::from_le_bytes(b[12..16].try_into().unwrap_or_default()),
        }
    }

    fn stored_size(&self) -> u64 {
        Word::decode(self.word).stored_size()
    }
}

/// The header CRC: the header fields, then the entries they count.
fn header_crc(count: u64, end: u64, entries: &crc32fast::Hasher) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&count.to_le_bytes());
    h.update(&end.to_le_bytes());
    h.combine(entries);
    h.finalize()
}

/// How a scan of the data file ended.
enum ScanEnd {
    /// Clean end of file (or an end-of-medium word) at this offset.
    End(u64),
    /// An incomplete object reaching past the end of the file starts here.
    Torn(u64),
    /// A malformed object starts here, and the file goes on after it.
    Damaged(u64, String),
}

pub(crate) struct Partition {
    number: u32,
    tap_name: String,
    tap: Box<dyn StoreFile>,
    idx: Box<dyn StoreFile>,
    /// The marks file, when it could be opened (it is only a cache).
    marks: Option<Box<dyn StoreFile>>,
    location: std::path::PathBuf,
    /// Bytes of the data file in use; end of data.
    end: u64,
    /// Objects on the partition.
    count: u64,
    /// Entries already in the index file.
    flushed: u64,
    pending: Vec<Entry>,
    /// Something was written or cut since the last sync.
    unsynced: bool,
    /// CRC state over the bytes of the entries in the index file.
    entries_crc: crc32fast::Hasher,
    /// CRC of each window of `CHECK_WINDOW` entries in the index file.
    windows: WindowCrcs,
    /// Windows still to be checked against `windows` before use (opened from the marks
    /// file); empty when every entry was checked on open.
    unchecked: Vec<bool>,
    /// Object numbers of the filemarks and setmarks, ascending.
    filemarks: Vec<u64>,
    setmarks: Vec<u64>,
    /// Byte offset of unreadable data that follows end of data (found by a full scan).
    damaged_at: Option<(u64, String)>,
    window_start: u64,
    window: Vec<Entry>,
    /// The window's bytes as read, kept for the next read.
    window_bytes: Vec<u8>,
    /// Torn bytes cut off when the partition was opened (for reporting).
    pub recovered_tail: u64,
    /// Bytes the index had recorded that the data file no longer holds (for reporting).
    pub lost_bytes: u64,
}

fn io_err(store: &dyn CartridgeStore, name: &str) -> impl Fn(io::Error) -> TapeError {
    let path = store.path_of(name);
    move |e| TapeError::io(path.clone(), e)
}

impl Partition {
    pub fn tap_name(number: u32) -> String {
        format!("p{number}.tap")
    }

    pub fn idx_name(number: u32) -> String {
        format!("p{number}.idx")
    }

    pub fn marks_name(number: u32) -> String {
        format!("p{number}.marks")
    }

    /// Opens (or creates, when `create`) partition `number` of the cartridge.
    pub fn open(store: &dyn CartridgeStore, number: u32, create: bool) -> Result<Partition> {
        let tap_name = Self::tap_name(number);
        let idx_name = Self::idx_name(number);
        let tap = store
            .open(&tap_name, create, true)
            .map_err(io_err(store, &tap_name))?
            .ok_or_else(|| TapeError::BadCartridge {
                path: store.location(),
                reason: format!("data file {tap_name} of partition {number} is missing"),
            })?;
        let idx = store
            .open(&idx_name, true, true)
            .map_err(io_err(store, &idx_name))?
            .ok_or_else(|| TapeError::BadCartridge {
                path: store.location(),
                reason: format!("cannot create index file {idx_name}"),
            })?;
        let marks = store
            .open(&Self::marks_name(number), true, true)
            .ok()
            .flatten();
        let mut p = Partition {
            number,
            tap_name,
            tap,
            idx,
            marks,
            location: store.location(),
            end: 0,
            count: 0,
            flushed: 0,
            pending: Vec::new(),
            unsynced: true,
            entries_crc: crc32fast::Hasher::new(),
            windows: WindowCrcs::default(),
            unchecked: Vec::new(),
            filemarks: Vec::new(),
            setmarks: Vec::new(),
            damaged_at: None,
            window_start: 0,
            window: Vec::new(),
            window_bytes: Vec::new(),
            recovered_tail: 0,
            lost_bytes: 0,
        };
        p.recover()?;
        Ok(p)
    }

    fn tap_err(&self) -> impl Fn(io::Error) -> TapeError + '_ {
        move |e| TapeError::io(self.location.join(&self.tap_name), e)
    }

    fn idx_err(&self) -> impl Fn(io::Error) -> TapeError + '_ {
        move |e| TapeError::io(self.location.join(Self::idx_name(self.number)), e)
    }

    /// Brings index and data file into agreement after open (see the module docs).
    fn recover(&mut self) -> Result<()> {
        let tap_len = self.tap.len().map_err(self.tap_err())?;
        let (mut count, mut end, stored_crc) = self.read_header().unwrap_or((0, 0, 0));
        // The index is synced only after the data it describes, so a data file shorter than
        // the index's end was cut or damaged after the fact, not by a crash.
        let indexed_end = end;
        let idx_len = self.idx.len().map_err(self.idx_err())?;
        let mut trusted = end <= tap_len
            && IDX_HEADER_LEN.saturating_add(count.saturating_mul(ENTRY_LEN)) <= idx_len
            && (count == 0 || self.last_entry_matches(count, end)?);
        let mut from_marks_file = false;
        if trusted {
            // Marks of the trusted part come from the marks file or the index; the header
            // CRC proves the entries' CRC either way (and, read here, every entry).
            self.flushed = count;
            match self.read_marks_file(count, end, stored_crc) {
                Some(m) => {
                    self.filemarks = m.filemarks;
                    self.setmarks = m.setmarks;
                    self.entries_crc =
                        crc32fast::Hasher::new_with_initial_len(m.entries_crc, count * ENTRY_LEN);
                    self.unchecked = vec![true; m.windows.len()];
                    self.windows = m.windows;
                    from_marks_file = true;
                }
                None => self.load_marks()?,
            }
            trusted = header_crc(count, end, &self.entries_crc) == stored_crc;
        }
        if !trusted {
            count = 0;
            end = 0;
            self.forget_index();
        }
        self.count = count;
        self.flushed = count;
        self.end = end;
        // Scan the data file beyond the trusted part.
        let full_scan = count == 0;
        let scan = self.scan_from(end, tap_len)?;
        match scan {
            ScanEnd::End(at) => self.end = at,
            ScanEnd::Torn(at) => {
                self.end = at;
                self.recovered_tail = tap_len - at;
            }
            ScanEnd::Damaged(at, why) => {
                self.end = at;
                if full_scan {
                    self.damaged_at = Some((at, why));
                } else {
                    // Beyond the synced point only unsynced writes can be: cut them.
                    self.recovered_tail = tap_len - at;
                }
            }
        }
        self.lost_bytes = indexed_end.saturating_sub(self.end);
        // A cartridge closed cleanly needs no repair: opening it writes nothing (no fsync
        // on every open, which would make each `reel` command pay for it).
        let clean = trusted
            && self.count == count
            && self.end == tap_len
            && idx_len == IDX_HEADER_LEN + count * ENTRY_LEN
            && self.pending.is_empty();
        if clean {
            self.unsynced = false;
            if !from_marks_file {
                // Written once (no fsync): the next open need not read the whole index.
                self.write_marks_file();
            }
            return Ok(());
        }
        if self.damaged_at.is_none() && self.end < tap_len {
            self.tap.truncate(self.end).map_err(self.tap_err())?;
        }
        self.idx
            .truncate(IDX_HEADER_LEN + self.flushed * ENTRY_LEN)
            .map_err(self.idx_err())?;
        self.sync()?;
        Ok(())
    }

    /// Drops what is known of the index's entries (to be rebuilt from the data file).
    fn forget_index(&mut self) {
        self.entries_crc = crc32fast::Hasher::new();
        self.windows = WindowCrcs::default();
        self.unchecked.clear();
        self.filemarks.clear();
        self.setmarks.clear();
        self.window.clear();
        self.window_start = 0;
    }

    /// The marks file, if it describes the index whose header says `count`, `end`, `crc`.
    fn read_marks_file(&self, count: u64, end: u64, crc: u32) -> Option<MarksFile> {
        let file = self.marks.as_ref()?;
        let len = file.len().ok()?;
        // Never longer than with every object a mark: a bound before allocating.
        let windows = count.div_ceil(CHECK_WINDOW);
        if len > MarksFile::expected_len(count, count, windows)? {
            return None;
        }
        let mut bytes = vec![0u8; usize::try_from(len).ok()?];
        file.read_exact_at(&mut bytes, 0).ok()?;
        let m = MarksFile::decode(&bytes, CHECK_WINDOW, ENTRY_LEN)?;
        (m.count == count && m.end == end && m.header_crc == crc).then_some(m)
    }

    /// Writes the marks file for the index as synced. Best effort: without it (a read-only
    /// cartridge, a full disk) the next open reads the whole index instead.
    fn write_marks_file(&mut self) {
        debug_assert!(self.pending.is_empty() && self.flushed == self.count);
        let Some(file) = &self.marks else { return };
        let m = MarksFile {
            count: self.count,
            end: self.end,
            header_crc: header_crc(self.count, self.end, &self.entries_crc),
            entries_crc: self.entries_crc.clone().finalize(),
            filemarks: self.filemarks.clone(),
            setmarks: self.setmarks.clone(),
            windows: self.windows.clone(),
        };
        let bytes = m.encode();
        // Written over the old one, then cut to length: a crash in between leaves a file
        // whose own CRC fails, and it is ignored.
        let written = file
            .write_all_at(&[IoSlice::new(&bytes)], 0)
            .and_then(|()| file.truncate(bytes.len() as u64));
        if written.is_err() {
            self.marks = None;
        }
    }

    /// Checks window `k` of the index against its CRC and makes it the current window. A
    /// window that fails means a damaged index: it is rebuilt from the data file.
    fn check_window(&mut self, k: usize) -> Result<()> {
        let start = k as u64 * CHECK_WINDOW;
        let n = self.flushed.saturating_sub(start).min(CHECK_WINDOW);
        let crc = crc32fast::hash(self.read_entries(start, n)?);
        if n == 0 || Some(crc) != self.windows.crc_of(k) {
            return self.rebuild();
        }
        self.unchecked[k] = false;
        self.take_window(start, n);
        Ok(())
    }

    /// Reads entries `start..start + n` from the index file into `window_bytes`.
    fn read_entries(&mut self, start: u64, n: u64) -> Result<&[u8]> {
        let len = (n * ENTRY_LEN) as usize;
        if self.window_bytes.len() < len {
            self.window_bytes.resize(len, 0);
        }
        let bytes = &mut self.window_bytes[..len];
        self.idx
            .read_exact_at(bytes, IDX_HEADER_LEN + start * ENTRY_LEN)
            .map_err(|e| TapeError::io(self.location.join(Self::idx_name(self.number)), e))?;
        Ok(bytes)
    }

    /// Makes the `n` entries just read by `read_entries` the window starting at `start`.
    fn take_window(&mut self, start: u64, n: u64) {
        let bytes = &self.window_bytes[..(n * ENTRY_LEN) as usize];
        self.window.clear();
        self.window
            .extend(bytes.chunks_exact(ENTRY_LEN as usize).map(Entry::decode));
        self.window_start = start;
    }

    /// Checks every window not yet checked (before a change that keeps the entries and
    /// writes a header over them).
    fn check_all_windows(&mut self) -> Result<()> {
        let mut k = 0;
        while k < self.unchecked.len() {
            if self.unchecked[k] {
                self.check_window(k)?;
            }
            k += 1;
        }
        Ok(())
    }

    /// Indexes the data file anew, as when the index is lost.
    fn rebuild(&mut self) -> Result<()> {
        let tap_len = self.tap.len().map_err(self.tap_err())?;
        // The header first: a crash during the scan must not trust the old entries (or
        // the marks file that goes with them).
        self.write_header(0, 0, &crc32fast::Hasher::new())?;
        self.forget_index();
        self.count = 0;
        self.flushed = 0;
        self.end = 0;
        self.pending.clear();
        self.damaged_at = None;
        self.unsynced = true;
        match self.scan_from(0, tap_len)? {
            ScanEnd::End(at) | ScanEnd::Torn(at) => self.end = at,
            ScanEnd::Damaged(at, why) => {
                self.end = at;
                self.damaged_at = Some((at, why));
            }
        }
        if self.damaged_at.is_none() && self.end < tap_len {
            self.tap.truncate(self.end).map_err(self.tap_err())?;
        }
        self.flush_entries()?;
        self.idx
            .truncate(IDX_HEADER_LEN + self.flushed * ENTRY_LEN)
            .map_err(self.idx_err())?;
        self.sync()
    }

    /// (count, end, stored CRC); the CRC is checked once the entries are read.
    fn read_header(&self) -> Option<(u64, u64, u32)> {
        let mut h = [0u8; IDX_HEADER_LEN as usize];
        self.idx.read_exact_at(&mut h, 0).ok()?;
        if &h[0..8] != IDX_MAGIC || u32::from_le_bytes(h[8..12].try_into().ok()?) != IDX_VERSION {
            return None;
        }
        let crc = u32::from_le_bytes(h[12..16].try_into().ok()?);
        let count = u64::from_le_bytes(h[16..24].try_into().ok()?);
        let end = u64::from_le_bytes(h[24..32].try_into().ok()?);
        Some((count, end, crc))
    }

    /// Writes the header covering the first `count` entries, whose CRC state is `entries`.
    fn write_header(&self, count: u64, end: u64, entries: &crc32fast::Hasher) -> Result<()> {
        let mut h = [0u8; IDX_HEADER_LEN as usize];
        h[0..8].copy_from_slice(IDX_MAGIC);
        h[8..12].copy_from_slice(&IDX_VERSION.to_le_bytes());
        h[16..24].copy_from_slice(&count.to_le_bytes());
        h[24..32].copy_from_slice(&end.to_le_bytes());
        let crc = header_crc(count, end, entries);
        h[12..16].copy_from_slice(&crc.to_le_bytes());
        self.idx
            .write_all_at(&[IoSlice::new(&h)], 0)
            .map_err(self.idx_err())
    }

    /// Cheap consistency check of a trusted index: its last entry must describe an object
    /// that ends exactly at the covered length and whose leading word is in the data file.
    fn last_entry_matches(&self, count: u64, end: u64) -> Result<bool> {
        let mut b = [0u8; ENTRY_LEN as usize];
        if self
            .idx
            .read_exact_at(&mut b, IDX_HEADER_LEN + (count - 1) * ENTRY_LEN)
            .is_err()
        {
            return Ok(false);
        }
        let e = Entry::decode(&b);
        if e.offset + e.stored_size() != end {
            return Ok(false);
        }
        let mut w = [0u8; 4];
        if self.tap.read_exact_at(&mut w, e.offset).is_err() {
            return Ok(false);
        }
        Ok(u32::from_le_bytes(w) == e.word)
    }

    /// Reads the first `flushed` entries: their marks and their CRC state.
    fn load_marks(&mut self) -> Result<()> {
        self.filemarks.clear();
        self.setmarks.clear();
        self.entries_crc = crc32fast::Hasher::new();
        self.windows = WindowCrcs::default();
        let mut buf = vec![0u8; (WINDOW * ENTRY_LEN) as usize];
        let mut i = 0;
        while i < self.flushed {
            let n = (self.flushed - i).min(WINDOW);
            let bytes = &mut buf[..(n * ENTRY_LEN) as usize];
            self.idx
                .read_exact_at(bytes, IDX_HEADER_LEN + i * ENTRY_LEN)
                .map_err(self.idx_err())?;
            self.entries_crc.update(bytes);
            self.windows.update(bytes, CHECK_WINDOW, ENTRY_LEN);
            for (k, chunk) in bytes.chunks_exact(ENTRY_LEN as usize).enumerate() {
                match Entry::decode(chunk).object() {
                    Object::Filemark => self.filemarks.push(i + k as u64),
                    Object::Setmark => self.setmarks.push(i + k as u64),
                    Object::Record { .. } => {}
                }
            }
            i += n;
        }
        Ok(())
    }

    /// Indexes the objects of the data file from `offset` to `tap_len`.
    fn scan_from(&mut self, mut offset: u64, tap_len: u64) -> Result<ScanEnd> {
        // Allocated at the first record to check: a cartridge closed cleanly has none, and
        // every command opening it would otherwise pay for a MiB it never touches.
        let mut chunk = Vec::new();
        loop {
            if offset == tap_len {
                return Ok(ScanEnd::End(offset));
            }
            if offset + 4 > tap_len {
                return Ok(ScanEnd::Torn(offset));
            }
            let mut w = [0u8; 4];
            self.tap
                .read_exact_at(&mut w, offset)
                .map_err(self.tap_err())?;
            let word = u32::from_le_bytes(w);
            match Word::decode(word) {
                Word::EndOfMedium => return Ok(ScanEnd::End(offset)),
                Word::EraseGap | Word::UnknownMarker(_) => {
                    // Not objects: skipped, as SIMH does.
                    offset += 4;
                }
                Word::TapeMark | Word::Setmark => {
                    self.push_entry(Entry {
                        offset,
                        word,
                        crc: 0,
                    })?;
                    offset += 4;
                }
                Word::Record { len, .. } => {
                    let size = simh::record_size(len);
                    if offset + size > tap_len {
                        return Ok(ScanEnd::Torn(offset));
                    }
                    if chunk.is_empty() {
                        chunk = vec![0u8; 1 << 20];
                    }
                    let mut hasher = crc32fast::Hasher::new();
                    let mut done = 0u64;
                    while done < u64::from(len) {
                        let n = (u64::from(len) - done).min(chunk.len() as u64) as usize;
                        self.tap
                            .read_exact_at(&mut chunk[..n], offset + 4 + done)
                            .map_err(self.tap_err())?;
                        hasher.update(&chunk[..n]);
                        done += n as u64;
                    }
                    let mut t = [0u8; 4];
                    self.tap
                        .read_exact_at(&mut t, offset + size - 4)
                        .map_err(self.tap_err())?;
                    let trailer = u32::from_le_bytes(t);
                    if trailer != word {
                        return Ok(ScanEnd::Damaged(
                            offset,
                            format!(
                                "record at byte {offset} of {} has leading length word {word:#010x} but trailing {trailer:#010x}",
                                self.tap_name
                            ),
                        ));
                    }
                    self.push_entry(Entry {
                        offset,
                        word,
                        crc: hasher.finalize(),
                    })?;
                    offset += size;
                }
            }
        }
    }

    fn push_entry(&mut self, e: Entry) -> Result<()> {
        self.unsynced = true;
        match e.object() {
            Object::Filemark => self.filemarks.push(self.count),
            Object::Setmark => self.setmarks.push(self.count),
            Object::Record { .. } => {}
        }
        self.end = e.offset + e.stored_size();
        self.pending.push(e);
        self.count += 1;
        if self.pending.len() >= PENDING_LIMIT {
            self.flush_entries()?;
        }
        Ok(())
    }

    /// CRC state of the first `k` entries of the index file, and of their windows.
    fn hash_entries(&self, k: u64) -> Result<(crc32fast::Hasher, WindowCrcs)> {
        let mut h = crc32fast::Hasher::new();
        let mut windows = WindowCrcs::default();
        let mut buf = vec![0u8; (WINDOW * ENTRY_LEN) as usize];
        let mut i = 0;
        while i < k {
            let n = (k - i).min(WINDOW);
            let bytes = &mut buf[..(n * ENTRY_LEN) as usize];
            self.idx
                .read_exact_at(bytes, IDX_HEADER_LEN + i * ENTRY_LEN)
                .map_err(self.idx_err())?;
            h.update(bytes);
            windows.update(bytes, CHECK_WINDOW, ENTRY_LEN);
            i += n;
        }
        Ok((h, windows))
    }

    fn flush_entries(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut bytes = Vec::with_capacity(self.pending.len() * ENTRY_LEN as usize);
        for e in &self.pending {
            bytes.extend_from_slice(&e.encode());
        }
        self.idx
            .write_all_at(
                &[IoSlice::new(&bytes)],
                IDX_HEADER_LEN + self.flushed * ENTRY_LEN,
            )
            .map_err(self.idx_err())?;
        self.entries_crc.update(&bytes);
        self.windows.update(&bytes, CHECK_WINDOW, ENTRY_LEN);
        self.flushed += self.pending.len() as u64;
        self.pending.clear();
        Ok(())
    }

    /// Makes everything written durable: data, then index entries, then the header.
    /// Makes everything written durable; nothing to do (no fsync) when nothing changed.
    pub fn sync(&mut self) -> Result<()> {
        if !self.unsynced {
            return Ok(());
        }
        self.tap.sync().map_err(self.tap_err())?;
        self.flush_entries()?;
        self.idx.sync().map_err(self.idx_err())?;
        self.write_header(self.count, self.end, &self.entries_crc)?;
        self.idx.sync().map_err(self.idx_err())?;
        self.unsynced = false;
        self.write_marks_file();
        Ok(())
    }

    pub fn number(&self) -> u32 {
        self.number
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Bytes of the data file in use.
    pub fn used_bytes(&self) -> u64 {
        self.end
    }

    pub fn filemarks(&self) -> &[u64] {
        &self.filemarks
    }

    pub fn setmarks(&self) -> &[u64] {
        &self.setmarks
    }

    /// The unreadable region after end of data, if a full scan found one.
    pub fn damage(&self) -> Option<&(u64, String)> {
        self.damaged_at.as_ref()
    }

    /// The index entry of object `i` (`i < count`).
    pub fn entry(&mut self, i: u64) -> Result<Entry> {
        debug_assert!(i < self.count);
        let k = (i / CHECK_WINDOW) as usize;
        if i < self.flushed && self.unchecked.get(k) == Some(&true) {
            self.check_window(k)?;
            if i >= self.count {
                return Err(TapeError::Crc(format!(
                    "object {i} of partition {}: the index was damaged, and the data file, scanned again, has only {} objects",
                    self.number, self.count
                )));
            }
        }
        if i >= self.flushed {
            return Ok(self.pending[(i - self.flushed) as usize]);
        }
        let window_end = self.window_start + self.window.len() as u64;
        if i < self.window_start || i >= window_end {
            let size = if i == window_end { WINDOW } else { JUMP_WINDOW };
            let n = (self.flushed - i).min(size);
            self.read_entries(i, n)?;
            self.take_window(i, n);
        }
        Ok(self.window[(i - self.window_start) as usize])
    }

    fn describe_object(&self, i: u64, e: &Entry) -> String {
        format!(
            "object {i} of partition {} (byte {} of {})",
            self.number,
            e.offset,
            self.location.join(&self.tap_name).display()
        )
    }

    /// Byte offset in the data file where object `i` starts (end of data for `i >= count`).
    pub fn offset_of(&mut self, i: u64) -> Result<u64> {
        if i >= self.count {
            return Ok(self.end);
        }
        Ok(self.entry(i)?.offset)
    }

    /// Reads the stored payload of record `i` into `out[..len]` and checks its framing
    /// and, when `verify_crc` is set (the drive's ECC setting), its CRC. `out` must hold
    /// at least the stored length.
    pub fn read_payload(&mut self, i: u64, out: &mut [u8], verify_crc: bool) -> Result<usize> {
        let e = self.entry(i)?;
        let Object::Record { len, .. } = e.object() else {
            return Err(TapeError::InvalidParameter(format!(
                "object {i} is not a record"
            )));
        };
        let len_usize = len as usize;
        debug_assert!(out.len() >= len_usize);
        let mut head = [0u8; 4];
        let mut tail = [0u8; 5];
        let tail_len = (simh::padded(len) - u64::from(len)) as usize + 4;
        let mut bufs = [
            io::IoSliceMut::new(&mut head),
            io::IoSliceMut::new(&mut out[..len_usize]),
            io::IoSliceMut::new(&mut tail[..tail_len]),
        ];
        let want = 4 + len_usize + tail_len;
        let got = self
            .tap
            .read_vectored_at(&mut bufs, e.offset)
            .map_err(self.tap_err())?;
        if got < want {
            return Err(TapeError::Crc(format!(
                "{}: the data file ends inside the record (truncated tape image)",
                self.describe_object(i, &e)
            )));
        }
        let lead = u32::from_le_bytes(head);
        let trail = u32::from_le_bytes(tail[tail_len - 4..tail_len].try_into().unwrap_or_default());
        if lead != e.word || trail != e.word {
            return Err(TapeError::Crc(format!(
                "{}: record framing damaged (length words {lead:#010x}/{trail:#010x}, index says {:#010x})",
                self.describe_object(i, &e),
                e.word
            )));
        }
        if !verify_crc {
            return Ok(len_usize);
        }
        let crc = crc32fast::hash(&out[..len_usize]);
        if crc != e.crc {
            return Err(TapeError::Crc(format!(
                "{}: record data damaged (CRC {crc:#010x}, recorded {:#010x})",
                self.describe_object(i, &e),
                e.crc
            )));
        }
        Ok(len_usize)
    }

    /// Appends a record of `class` with `payload` at end of data.
    pub fn append_record(&mut self, class: u32, payload: &[u8]) -> Result<()> {
        self.refuse_if_damaged()?;
        let len = u32::try_from(payload.len())
            .ok()
            .filter(|l| *l > 0 && *l <= simh::MAX_RECORD_LEN)
            .ok_or_else(|| TapeError::InvalidBlockLength(format!("{} bytes", payload.len())))?;
        let word = simh::record_word(class, len);
        let w = word.to_le_bytes();
        let pad = [0u8; 1];
        let pad_len = (simh::padded(len) - u64::from(len)) as usize;
        let offset = self.end;
        self.tap
            .write_all_at(
                &[
                    IoSlice::new(&w),
                    IoSlice::new(payload),
                    IoSlice::new(&pad[..pad_len]),
                    IoSlice::new(&w),
                ],
                offset,
            )
            .map_err(self.tap_err())?;
        self.push_entry(Entry {
            offset,
            word,
            crc: crc32fast::hash(payload),
        })
    }

    /// Appends a filemark or setmark at end of data.
    pub fn append_mark(&mut self, setmark: bool) -> Result<()> {
        self.refuse_if_damaged()?;
        let word = if setmark {
            simh::SETMARK
        } else {
            simh::TAPE_MARK
        };
        let offset = self.end;
        self.tap
            .write_all_at(&[IoSlice::new(&word.to_le_bytes())], offset)
            .map_err(self.tap_err())?;
        self.push_entry(Entry {
            offset,
            word,
            crc: 0,
        })
    }

    fn refuse_if_damaged(&self) -> Result<()> {
        match &self.damaged_at {
            Some((at, why)) => Err(TapeError::Crc(format!(
                "partition {} has unreadable data after end of data ({why}); writing would destroy the data after byte {at}: erase from here to overwrite it",
                self.number
            ))),
            None => Ok(()),
        }
    }

    /// Erases the whole partition (including an unreadable region) and makes it durable.
    pub fn erase_all(&mut self) -> Result<()> {
        self.unsynced = true;
        self.truncate_at(0, true)?;
        if self.end > 0 || self.tap.len().map_err(self.tap_err())? > 0 {
            self.tap.truncate(0).map_err(self.tap_err())?;
            self.end = 0;
        }
        self.sync()
    }

    /// Makes object `i` the new end of data: it and everything after it are gone.
    ///
    /// While the partition has a damaged region after end of data, only an explicit erase
    /// (`discard_damage`) may cut: a plain write would destroy data that may still be
    /// recovered.
    pub fn truncate_at(&mut self, i: u64, discard_damage: bool) -> Result<()> {
        if i < self.count || self.damaged_at.is_some() {
            self.unsynced = true;
        }
        if !discard_damage {
            self.refuse_if_damaged()?;
        }
        if i > 0 && i < self.count {
            // The entries kept get a new header CRC: they must be right first.
            self.check_all_windows()?;
        }
        if i >= self.count {
            if self.damaged_at.take().is_some() {
                self.tap.truncate(self.end).map_err(self.tap_err())?;
                self.sync()?;
            }
            return Ok(());
        }
        let new_end = self.entry(i)?.offset;
        // Lower the synced point first so a crash in between never trusts dropped entries.
        // It covers the entries in the index file only: when some of those kept are still
        // in memory, it ends where the first of them starts (a reopen finds them by scanning
        // the data file), not at the new end of data, or they would be skipped.
        let keep = i.min(self.flushed);
        let (kept_crc, kept_windows) = if keep == self.flushed {
            (self.entries_crc.clone(), self.windows.clone())
        } else {
            self.hash_entries(keep)?
        };
        let kept_end = if keep == i {
            new_end
        } else {
            self.entry(keep)?.offset
        };
        self.write_header(keep, kept_end.min(self.end), &kept_crc)?;
        self.entries_crc = kept_crc;
        self.windows = kept_windows;
        self.unchecked.clear();
        if i >= self.flushed {
            self.pending.truncate((i - self.flushed) as usize);
        } else {
            self.pending.clear();
            self.flushed = i;
            self.idx
                .truncate(IDX_HEADER_LEN + i * ENTRY_LEN)
                .map_err(self.idx_err())?;
        }
        self.tap.truncate(new_end).map_err(self.tap_err())?;
        self.count = i;
        self.end = new_end;
        self.damaged_at = None;
        self.filemarks.retain(|&m| m < i);
        self.setmarks.retain(|&m| m < i);
        self.window.clear();
        self.window_start = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::*;
    use crate::vtape::store::DirStore;

    /// A cartridge directory that counts the bytes read from index files.
    struct Counting {
        inner: DirStore,
        idx_bytes: Arc<AtomicU64>,
    }

    struct CountingFile {
        inner: Box<dyn StoreFile>,
        bytes: Arc<AtomicU64>,
    }

    impl StoreFile for CountingFile {
        fn len(&self) -> io::Result<u64> {
            self.inner.len()
        }
        fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
            self.bytes.fetch_add(buf.len() as u64, Relaxed);
            self.inner.read_exact_at(buf, offset)
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let n = self.inner.read_at(buf, offset)?;
            self.bytes.fetch_add(n as u64, Relaxed);
            Ok(n)
        }
        fn write_all_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
            self.inner.write_all_at(bufs, offset)
        }
        fn truncate(&self, len: u64) -> io::Result<()> {
            self.inner.truncate(len)
        }
        fn sync(&self) -> io::Result<()> {
            self.inner.sync()
        }
    }

    impl CartridgeStore for Counting {
        fn location(&self) -> PathBuf {
            self.inner.location()
        }
        fn open(
            &self,
            name: &str,
            create: bool,
            writable: bool,
        ) -> io::Result<Option<Box<dyn StoreFile>>> {
            let file = self.inner.open(name, create, writable)?;
            Ok(match file {
                Some(f) if name.ends_with(".idx") => Some(Box::new(CountingFile {
                    inner: f,
                    bytes: self.idx_bytes.clone(),
                })),
                other => other,
            })
        }
        fn read_small(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
            self.inner.read_small(name)
        }
        fn replace_small(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
            self.inner.replace_small(name, bytes)
        }
        fn remove(&self, name: &str) -> io::Result<()> {
            self.inner.remove(name)
        }
    }

    fn counting(dir: &Path) -> (Counting, Arc<AtomicU64>) {
        let bytes = Arc::new(AtomicU64::new(0));
        let store = Counting {
            inner: DirStore::new(dir),
            idx_bytes: bytes.clone(),
        };
        (store, bytes)
    }

    /// `records` small records, a filemark after every 1000th and a setmark after the 2500th.
    fn write_records(p: &mut Partition, from: u64, records: u64) {
        for r in from..from + records {
            p.append_record(0, &r.to_le_bytes()).unwrap();
            if r % 1000 == 999 {
                p.append_mark(false).unwrap();
            }
            if r == 2500 {
                p.append_mark(true).unwrap();
            }
        }
        p.sync().unwrap();
    }

    /// Count, end of data, filemarks, setmarks, entries' CRC and the entries.
    type IndexState = (u64, u64, Vec<u64>, Vec<u64>, u32, Vec<Entry>);

    /// Everything a partition knows of its index, every entry read (and so checked).
    fn state(p: &mut Partition) -> IndexState {
        let entries = (0..p.count()).map(|i| p.entry(i).unwrap()).collect();
        (
            p.count(),
            p.used_bytes(),
            p.filemarks().to_vec(),
            p.setmarks().to_vec(),
            p.entries_crc.clone().finalize(),
            entries,
        )
    }

    /// The same partition opened without its marks file (the whole index read).
    fn state_without_marks_file(dir: &Path) -> IndexState {
        let copy = tempfile::tempdir().unwrap();
        for f in ["p1.tap", "p1.idx"] {
            std::fs::copy(dir.join(f), copy.path().join(f)).unwrap();
        }
        let mut p = Partition::open(&DirStore::new(copy.path()), 1, false).unwrap();
        assert!(p.unchecked.is_empty());
        state(&mut p)
    }

    #[test]
    fn with_a_marks_file_opening_reads_next_to_nothing_of_the_index() {
        let dir = tempfile::tempdir().unwrap();
        write_records(
            &mut Partition::open(&DirStore::new(dir.path()), 1, true).unwrap(),
            0,
            20_000,
        );
        let idx_len = std::fs::metadata(dir.path().join("p1.idx")).unwrap().len();
        let (store, read) = counting(dir.path());
        let mut p = Partition::open(&store, 1, false).unwrap();
        // The header and the last entry.
        assert_eq!(
            read.load(Relaxed),
            IDX_HEADER_LEN + ENTRY_LEN,
            "index is {idx_len} bytes"
        );
        // One entry far in: one window of entries, checked.
        let far = p.entry(15_000).unwrap();
        assert!(read.load(Relaxed) <= IDX_HEADER_LEN + ENTRY_LEN + CHECK_WINDOW * ENTRY_LEN);
        let want = state_without_marks_file(dir.path());
        assert_eq!(far, want.5[15_000]);
        assert_eq!(state(&mut p), want);
        assert_eq!(p.filemarks().len(), 20);
        assert_eq!(p.setmarks().len(), 1);
    }

    #[test]
    fn a_damaged_entry_is_found_when_its_window_is_read_and_the_index_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        write_records(
            &mut Partition::open(&DirStore::new(dir.path()), 1, true).unwrap(),
            0,
            5_000,
        );
        let want = state_without_marks_file(dir.path());
        let idx = dir.path().join("p1.idx");
        let mut bytes = std::fs::read(&idx).unwrap();
        // The offset of entry 3000: it would point into the middle of another record.
        bytes[(IDX_HEADER_LEN + 3000 * ENTRY_LEN) as usize] ^= 0x08;
        std::fs::write(&idx, &bytes).unwrap();
        let mut p = Partition::open(&DirStore::new(dir.path()), 1, false).unwrap();
        assert!(!p.unchecked.is_empty(), "opened from the marks file");
        assert_eq!(p.entry(3000).unwrap(), want.5[3000]);
        assert_eq!(state(&mut p), want);
        drop(p);
        // The rebuilt index is whole again.
        assert_eq!(state_without_marks_file(dir.path()), want);
    }

    #[test]
    fn appends_and_cuts_after_a_marks_file_open_keep_it_right() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        write_records(&mut Partition::open(&store, 1, true).unwrap(), 0, 3_300);
        // Appending to a partial window opened from the marks file.
        let mut p = Partition::open(&store, 1, false).unwrap();
        assert!(!p.unchecked.is_empty());
        write_records(&mut p, 3_300, 1_200);
        drop(p);
        let mut p = Partition::open(&store, 1, false).unwrap();
        assert!(!p.unchecked.is_empty());
        assert_eq!(state(&mut p), state_without_marks_file(dir.path()));
        drop(p);
        // Cutting in the middle, then writing on.
        let mut p = Partition::open(&store, 1, false).unwrap();
        p.truncate_at(2_222, false).unwrap();
        write_records(&mut p, 9_000, 700);
        drop(p);
        let mut p = Partition::open(&store, 1, false).unwrap();
        assert!(!p.unchecked.is_empty());
        let got = state(&mut p);
        assert_eq!(got, state_without_marks_file(dir.path()));
        assert_eq!(got.0, 2_222 + 700);
    }

    #[test]
    fn a_stale_marks_file_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        write_records(&mut Partition::open(&store, 1, true).unwrap(), 0, 1_500);
        let old = std::fs::read(dir.path().join("p1.marks")).unwrap();
        let mut p = Partition::open(&store, 1, false).unwrap();
        write_records(&mut p, 1_500, 600);
        drop(p);
        // A marks file older than the index (as if its last write was lost in a crash).
        std::fs::write(dir.path().join("p1.marks"), &old).unwrap();
        let mut p = Partition::open(&store, 1, false).unwrap();
        assert!(p.unchecked.is_empty(), "the index was read whole");
        assert_eq!(state(&mut p), state_without_marks_file(dir.path()));
    }
}
