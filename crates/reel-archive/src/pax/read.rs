//! Streaming tar reader for pax, ustar, v7 and the GNU formats, for reel's own sets and for
//! archives other programs wrote.
//!
//! Reads members one at a time from any `Read`, never holding content in memory, and
//! names the byte offset of every problem. Handles pax local and global headers, GNU long
//! names and long links, GNU base-256 numbers, old (v7) headers, GNU sparse files in every
//! format GNU tar writes (old GNU `S` headers with extension blocks, pax 0.0, 0.1 and 1.0),
//! GNU multi-volume archives (`V` labels, `M` continuations, `GNU.volume.*` keys) when the
//! volumes are given in order ([`PaxReader::with_next_volume`]), and the vendor keys of
//! star (`SCHILY.*`), libarchive (`LIBARCHIVE.*`) and Red Hat's tar (`RHT.security.selinux`).
//!
//! Two ways to read:
//! - [`PaxReader::next_entry`] stops at the first damaged header with an error — what reel's
//!   own sets want, where the index says where every member starts;
//! - [`PaxReader::next_or_damage`] reports damage and goes on, as GNU tar does ("skipping to
//!   next header"): after a header that is not one (bad checksum, a size that is not a
//!   number or is negative) it scans forward block by block to the next valid header; after
//!   a member whose extended headers or sparse map are malformed it skips that member's
//!   data. Every step consumes input, so no input makes it loop, and memory stays bounded
//!   ([`MAX_META_LEN`], [`MAX_GLOBALS_LEN`], [`sparse::MAX_READ_EXTENTS`]).

use std::collections::VecDeque;
use std::io::{self, Read};

use reel_stream::{FileMeta, NameCache, SparseMap};

use crate::entry::Entry;
use crate::error::{ArchiveError, Result};
use crate::pax::gnu::{self, VolumePart};
use crate::pax::header::{self, BLOCK, field, kind};
use crate::pax::member::{
    Draft, Extended, HeaderDamage, MainHeader, PaxKeys, SparseKeys, SparsePlan, corrupt,
    trim_slashes,
};
use crate::pax::sparse;

/// Largest pax or GNU long-name header content accepted (bounded memory).
pub const MAX_META_LEN: u64 = 64 << 20;

/// Most bytes of global pax records kept at once (bounded memory over many global headers).
pub const MAX_GLOBALS_LEN: usize = 1 << 20;

/// A member as read, with where it is.
#[derive(Debug, Clone)]
pub struct ReadEntry {
    pub entry: Entry,
    /// Offset of the member's first header block (pax or GNU headers included), in its
    /// volume.
    pub header_offset: u64,
    /// Offset of its content.
    pub data_offset: u64,
    /// The volume (1 = the first input) the member's headers are in.
    pub volume: u32,
    /// Things worth telling about this member that do not stop it being restored (an
    /// unknown member type restored as a regular file, …).
    pub notes: Vec<String>,
}

/// What [`PaxReader::next_or_damage`] found.
// Members are the common case: not boxed, so reading one allocates nothing more.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Next {
    Member(ReadEntry),
    /// A damaged stretch the reader stepped over.
    Damage(Damage),
}

/// Damage reported by [`PaxReader::next_or_damage`], and where reading went on.
#[derive(Debug)]
pub struct Damage {
    /// What was wrong, naming the byte offset.
    pub error: ArchiveError,
    /// The volume the damage is in.
    pub volume: u32,
    /// Volume and offset of the header reading goes on at; `None` when the archive ended
    /// before another valid header.
    pub resumed_at: Option<(u32, u64)>,
    /// Bytes scanned over to get there (beyond the damaged header).
    pub skipped: u64,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.volume > 1 {
            write!(f, "volume {}: ", self.volume)?;
        }
        write!(f, "{}", self.error)?;
        match self.resumed_at {
            Some((v, at)) if self.skipped > 0 => {
                write!(
                    f,
                    "; skipped {} bytes to the next header at byte {at}",
                    self.skipped
                )?;
                if v != self.volume {
                    write!(f, " of volume {v}")?;
                }
                Ok(())
            }
            Some(_) => Ok(()),
            None if matches!(self.error, ArchiveError::Truncated { .. }) => Ok(()),
            None => write!(f, "; no valid header after it"),
        }
    }
}

/// Supplies volume `n` (2, 3, …) of a multi-volume archive; `None` when there is none.
pub type NextVolume<R> = Box<dyn FnMut(u32) -> Result<Option<R>>>;

/// How reading goes on after damage.
enum Resume {
    /// The block read is not a header: scan forward for one.
    Scan,
    /// The reader is at a member boundary (what is left of a bad member is skipped next).
    Here,
    /// Nothing more can be read.
    End,
}

enum Fault {
    /// Reading cannot go on (an I/O or tape failure).
    Fatal(ArchiveError),
    Damaged(ArchiveError, Resume),
}

impl From<ArchiveError> for Fault {
    fn from(e: ArchiveError) -> Fault {
        match e {
            ArchiveError::Truncated { .. } => Fault::Damaged(e, Resume::End),
            ArchiveError::Corrupt { .. } | ArchiveError::Integrity(_) => {
                Fault::Damaged(e, Resume::Here)
            }
            other => Fault::Fatal(other),
        }
    }
}

/// A header block that passed its checksum, with its size.
struct Header {
    flag: u8,
    size: u64,
}

/// Checks a block is a tar header: its checksum and its size field.
fn parse_header(block: &[u8; BLOCK]) -> std::result::Result<Header, String> {
    let (unsigned, signed) = header::checksum(block);
    let recorded = header::get_number(block, field::CHKSUM)
        .map_err(|what| format!("header checksum field: {what}: not a tar header"))?;
    if recorded != unsigned as i64 && recorded != signed {
        return Err(format!(
            "header checksum mismatch (recorded {recorded:o}, computed {unsigned:o}): not a tar header"
        ));
    }
    let size =
        header::get_number(block, field::SIZE).map_err(|what| format!("size field: {what}"))?;
    if size < 0 {
        return Err(format!("negative size {size}"));
    }
    Ok(Header {
        flag: block[field::TYPEFLAG],
        size: size as u64,
    })
}

fn is_zero(block: &[u8]) -> bool {
    block.iter().all(|b| *b == 0)
}

fn pad_of(n: u64) -> u64 {
    (BLOCK as u64 - n % BLOCK as u64) % BLOCK as u64
}

/// Parses the records of a pax extended header. `base` is the offset of `data` in the
/// archive, for messages.
pub fn parse_pax_records(data: &[u8], base: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        if data[pos] == 0 {
            // Some writers pad the header content with NULs.
            if data[pos..].iter().all(|b| *b == 0) {
                break;
            }
        }
        let corrupt = |what: String| ArchiveError::Corrupt {
            offset: base + pos as u64,
            what,
        };
        let space = data[pos..]
            .iter()
            .take(20)
            .position(|b| *b == b' ')
            .ok_or_else(|| corrupt("pax record without a length".into()))?;
        let digits = &data[pos..pos + space];
        if digits.is_empty() || !digits.iter().all(|b| b.is_ascii_digit()) {
            return Err(corrupt(format!(
                "pax record length {:?} is not a number",
                String::from_utf8_lossy(digits)
            )));
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| corrupt("pax record length out of range".into()))?;
        if len <= space + 1 || len > data.len() - pos {
            return Err(corrupt(format!(
                "pax record length {len} does not fit the header ({} bytes left)",
                data.len() - pos
            )));
        }
        let record = &data[pos + space + 1..pos + len];
        let Some((&b'\n', body)) = record.split_last() else {
            return Err(corrupt("pax record does not end with a newline".into()));
        };
        let eq = body
            .iter()
            .position(|b| *b == b'=')
            .ok_or_else(|| corrupt("pax record without '='".into()))?;
        let key = std::str::from_utf8(&body[..eq])
            .map_err(|_| corrupt("pax keyword is not UTF-8".into()))?;
        if key.is_empty() {
            return Err(corrupt("empty pax keyword".into()));
        }
        out.push((key.to_string(), body[eq + 1..].to_vec()));
        pos += len;
    }
    Ok(out)
}

/// Reads tar members from `R`.
pub struct PaxReader<R: Read> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
    /// Lengths of the data extents still to read of a sparse member; the first one is being
    /// read, `extent_left` bytes of it.
    extents: VecDeque<u64>,
    extent_left: u64,
    /// Padding of those extents not yet skipped.
    extent_padding: u64,
    /// Each extent is padded to a whole block in the archive (else they are packed).
    pad_each_extent: bool,
    globals: Vec<(String, Vec<u8>)>,
    globals_len: usize,
    done: bool,
    current: String,
    current_path: Vec<u8>,
    /// Content bytes of the current member (non-sparse), for multi-volume continuations.
    member_size: u64,
    member_sparse: bool,
    names: NameCache,
    /// A header block found while resynchronising, to be read again.
    pushback: Option<[u8; BLOCK]>,
    next_volume: Option<NextVolume<R>>,
    volume: u32,
    volume_label: Option<String>,
    /// `GNU.volume.*` keys of the current volume, for the member they announce.
    volume_part: VolumePart,
}

impl<R: Read> PaxReader<R> {
    pub fn new(inner: R) -> Self {
        Self::starting_at(inner, 0)
    }

    /// A reader whose first byte is at `offset` of the archive (after a seek).
    pub fn starting_at(inner: R, offset: u64) -> Self {
        PaxReader {
            inner,
            offset,
            remaining: 0,
            padding: 0,
            extents: VecDeque::new(),
            extent_left: 0,
            extent_padding: 0,
            pad_each_extent: true,
            globals: Vec::new(),
            globals_len: 0,
            done: false,
            current: String::new(),
            current_path: Vec::new(),
            member_size: 0,
            member_sparse: false,
            names: NameCache::new(),
            pushback: None,
            next_volume: None,
            volume: 1,
            volume_label: None,
            volume_part: VolumePart::default(),
        }
    }

    /// Reads a multi-volume archive: when a volume ends (inside a member or between
    /// members), `next(n)` supplies volume `n`. Members split between volumes are joined
    /// (GNU `M` headers and `GNU.volume.*` keys are checked against the member in progress);
    /// volumes that simply follow one another are read as one archive.
    pub fn with_next_volume(mut self, next: NextVolume<R>) -> Self {
        self.next_volume = Some(next);
        self
    }

    /// Starts over at `offset` after the caller moved the inner reader there (a seek to a
    /// member's first header block).
    pub fn reset_at(&mut self, offset: u64) {
        self.offset = offset;
        self.clear_member();
        self.pushback = None;
        self.volume_part = VolumePart::default();
        self.done = false;
    }

    fn clear_member(&mut self) {
        self.remaining = 0;
        self.padding = 0;
        self.extents.clear();
        self.extent_left = 0;
        self.extent_padding = 0;
        self.member_size = 0;
        self.member_sparse = false;
    }

    /// Offset of the next byte to be read (in the current volume).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The volume being read (1 = the first).
    pub fn volume(&self) -> u32 {
        self.volume
    }

    /// The label of the current volume (a GNU `V` header or `GNU.volume.label`), if any.
    pub fn volume_label(&self) -> Option<&str> {
        self.volume_label.as_deref()
    }

    /// The archive had global pax headers (`g`), which apply to every member after them.
    pub fn has_globals(&self) -> bool {
        !self.globals.is_empty()
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Moves to the next volume, if there is one.
    fn open_next_volume(&mut self) -> Result<bool> {
        let Some(next) = self.next_volume.as_mut() else {
            return Ok(false);
        };
        match next(self.volume + 1)? {
            Some(inner) => {
                self.inner = inner;
                self.volume += 1;
                self.offset = 0;
                self.pushback = None;
                self.volume_part = VolumePart::default();
                self.volume_label = None;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Reads one block; `Ok(false)` at a clean end of input.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
        if let Some(b) = self.pushback.take() {
            *block = b;
            self.offset += BLOCK as u64;
            return Ok(true);
        }
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ArchiveError::from_io(
                        format!("reading the archive at byte {}", self.offset + got as u64),
                        e,
                    ));
                }
            }
        }
        if got == 0 {
            return Ok(false);
        }
        if got < BLOCK {
            self.offset += got as u64;
            return Err(ArchiveError::Truncated {
                offset: self.offset,
                what: "the archive ends inside a header block".into(),
            });
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// Reads exactly `len` bytes of header content (pax records, long names), with padding.
    fn read_meta(&mut self, len: u64, what: &str) -> Result<Vec<u8>> {
        if len > MAX_META_LEN {
            return Err(corrupt(
                self.offset,
                format!("{what} of {len} bytes is larger than the {MAX_META_LEN}-byte limit"),
            ));
        }
        let mut data = vec![0u8; len as usize];
        let start = self.offset;
        self.read_exact_counted(&mut data).map_err(|e| match e {
            ArchiveError::Io(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                ArchiveError::Truncated {
                    offset: start,
                    what: format!("the archive ends inside a {what}"),
                }
            }
            other => other,
        })?;
        self.skip_padding(pad_of(len))?;
        Ok(data)
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => return Err(ArchiveError::Io(io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => {
                    got += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ArchiveError::from_io(
                        format!("reading the archive at byte {}", self.offset),
                        e,
                    ));
                }
            }
        }
        Ok(())
    }

    fn skip_bytes(&mut self, n: u64) -> Result<()> {
        let start = self.offset;
        let skipped = self.skip_some(n)?;
        if skipped < n {
            return Err(ArchiveError::Truncated {
                offset: self.offset,
                what: format!(
                    "the archive ends {} bytes into content that started at byte {start}",
                    self.offset - start
                ),
            });
        }
        Ok(())
    }

    /// Skips up to `n` bytes; fewer at the end of the input.
    fn skip_some(&mut self, mut n: u64) -> Result<u64> {
        let mut scratch = [0u8; 8192];
        let mut done = 0;
        while n > 0 {
            let want = n.min(scratch.len() as u64) as usize;
            match self.inner.read(&mut scratch[..want]) {
                Ok(0) => break,
                Ok(k) => {
                    n -= k as u64;
                    done += k as u64;
                    self.offset += k as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ArchiveError::from_io(
                        format!("reading the archive at byte {}", self.offset),
                        e,
                    ));
                }
            }
        }
        Ok(done)
    }

    /// Skips block padding. An archive that ends inside the padding after complete content
    /// lost nothing: it simply ends there.
    fn skip_padding(&mut self, n: u64) -> Result<()> {
        if self.skip_some(n)? < n {
            self.done = true;
        }
        Ok(())
    }

    /// Reads the GNU sparse 1.0 map at the start of the current member's data and leaves
    /// the member's remaining content as its data extents.
    fn read_sparse_map(&mut self, realsize: u64) -> Result<SparseMap> {
        let start = self.offset;
        let mut parser = sparse::MapParser::new();
        let mut block = [0u8; BLOCK];
        loop {
            if self.remaining < BLOCK as u64 {
                return Err(corrupt(
                    start,
                    "the GNU sparse map does not fit the member's data",
                ));
            }
            if self.offset - start > sparse::MAX_READ_EXTENTS as u64 * 40 {
                return Err(corrupt(start, "the GNU sparse map is too large"));
            }
            let at = self.offset;
            if !self.read_block(&mut block)? {
                return Err(ArchiveError::Truncated {
                    offset: at,
                    what: "the archive ends inside a GNU sparse map".into(),
                });
            }
            self.remaining -= BLOCK as u64;
            let done = parser.feed(&block).map_err(|what| corrupt(at, what))?;
            if done {
                break;
            }
        }
        let map = parser
            .finish(realsize)
            .map_err(|what| corrupt(start, what))?;
        let stored = self.remaining;
        let pad_each = gnu::sparse_layout(&map, stored).map_err(|what| corrupt(start, what))?;
        self.start_extents(&map, stored, pad_each);
        Ok(map)
    }

    /// Makes the current member's content the extents of `map`, laid out in `stored` bytes.
    fn start_extents(&mut self, map: &SparseMap, stored: u64, pad_each: bool) {
        let total = map.data_len();
        self.remaining = total;
        self.extents = map
            .extents
            .iter()
            .map(|e| e.len)
            .filter(|l| *l > 0)
            .collect();
        self.extent_left = self.extents.front().copied().unwrap_or(0);
        self.pad_each_extent = pad_each;
        if pad_each {
            self.extent_padding = map
                .extents
                .iter()
                .map(|e| sparse::padded(e.len))
                .sum::<u64>()
                - total;
            self.padding = 0;
        } else {
            self.extent_padding = 0;
            self.padding = sparse::padded(stored) - total;
        }
        self.member_sparse = true;
    }

    /// Skips what is left of the current member's content.
    pub fn skip_data(&mut self) -> Result<()> {
        if self.next_volume.is_none() {
            let n = self.remaining + self.extent_padding;
            let pad = self.padding;
            self.clear_member();
            self.skip_bytes(n)?;
            return self.skip_padding(pad);
        }
        // The content may continue on the next volume: read it through.
        let mut scratch = vec![0u8; 64 << 10];
        while self.read_data(&mut scratch)? > 0 {}
        let rest = self.padding + self.extent_padding;
        self.clear_member();
        self.skip_padding(rest)
    }

    /// Reads content of the current member; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let mut want = self.remaining.min(buf.len() as u64) as usize;
        if !self.extents.is_empty() {
            want = want.min(self.extent_left as usize);
        }
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(0) => {
                    if self.continue_member()? {
                        continue;
                    }
                    self.done = true;
                    return Err(ArchiveError::Truncated {
                        offset: self.offset,
                        what: format!(
                            "the archive ends with {} bytes of {} missing (if this is one volume of a multi-volume archive, give all of them, in order)",
                            self.remaining, self.current
                        ),
                    });
                }
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(ArchiveError::from_io(
                        format!("reading {} at byte {}", self.current, self.offset),
                        e,
                    ));
                }
            }
        };
        self.offset += n as u64;
        self.remaining -= n as u64;
        if let Some(&len) = self.extents.front() {
            self.extent_left -= n as u64;
            if self.extent_left == 0 {
                self.extents.pop_front();
                self.extent_left = self.extents.front().copied().unwrap_or(0);
                if self.pad_each_extent {
                    let pad = sparse::padded(len) - len;
                    self.extent_padding -= pad;
                    self.skip_padding(pad)?;
                }
            }
        }
        if self.remaining == 0 {
            let pad = self.padding;
            self.padding = 0;
            self.skip_padding(pad)?;
        }
        Ok(n)
    }

    /// Bytes of content left in the current member.
    pub fn data_remaining(&self) -> u64 {
        self.remaining
    }

    /// The current member's content ended with its volume: opens the next volume and checks
    /// that it continues this member. `Ok(false)` when there is no next volume.
    fn continue_member(&mut self) -> Result<bool> {
        if self.next_volume.is_none() || !self.open_next_volume()? {
            return Ok(false);
        }
        let volume = self.volume;
        if self.member_sparse {
            return Err(corrupt(
                0,
                format!(
                    "volume {volume}: {} is a sparse file split between volumes, which reel cannot join",
                    self.current
                ),
            ));
        }
        let delivered = self.member_size - self.remaining;
        let (at, part, part_size) = match self.continuation_header(volume) {
            Ok(found) => found,
            Err(e) => {
                // Nothing of this volume can be taken as the member's content.
                self.clear_member();
                return Err(e);
            }
        };
        let matches = part.name.as_deref().map(|n| trim_slashes(n.to_vec()))
            == Some(trim_slashes(self.current_path.clone()))
            && part.offset == Some(delivered)
            && part_size == self.remaining;
        if !matches {
            let shown = String::from_utf8_lossy(part.name.as_deref().unwrap_or(b"?")).into_owned();
            let what = format!(
                "volume {volume} continues {shown} from byte {} with {part_size} bytes, but {} needs its bytes from {delivered} on ({} of them): the volumes are out of order or one is missing",
                part.offset
                    .map(|o| o.to_string())
                    .unwrap_or_else(|| "?".into()),
                self.current,
                self.remaining
            );
            // The part is skipped with the rest of this member.
            self.clear_member();
            self.remaining = part_size;
            self.member_size = part_size;
            self.padding = pad_of(part_size);
            return Err(corrupt(at, what));
        }
        self.padding = pad_of(self.remaining);
        Ok(true)
    }

    /// Reads the headers at the start of a new volume up to the one that announces the
    /// continued part (an `M` header, or any header after `GNU.volume.*` keys): its offset,
    /// what it says, and the part's size.
    fn continuation_header(&mut self, volume: u32) -> Result<(u64, VolumePart, u64)> {
        let mut long_name: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                return Err(ArchiveError::Truncated {
                    offset: at,
                    what: format!(
                        "volume {volume} is empty; it should continue {}",
                        self.current
                    ),
                });
            }
            if is_zero(&block) {
                return Err(corrupt(
                    at,
                    format!("volume {volume} ends without continuing {}", self.current),
                ));
            }
            let h = parse_header(&block)
                .map_err(|what| corrupt(at, format!("volume {volume}: {what}")))?;
            match h.flag {
                kind::GNU_VOLUME => {
                    self.volume_label = Some(
                        String::from_utf8_lossy(header::get_bytes(&block, field::NAME))
                            .into_owned(),
                    );
                    self.skip_bytes(sparse::padded(h.size))?;
                }
                kind::PAX_GLOBAL => {
                    let data = self.read_meta(h.size, "pax global header")?;
                    let records = parse_pax_records(&data, at + BLOCK as u64)?;
                    self.take_globals(records, at)?;
                }
                kind::PAX_LOCAL | b'X' => {
                    // The part's own header (GNU writes atime/ctime of 0): nothing to keep.
                    let data = self.read_meta(h.size, "pax extended header")?;
                    parse_pax_records(&data, at + BLOCK as u64)?;
                }
                kind::GNU_LONGNAME => {
                    let mut data = self.read_meta(h.size, "GNU long name")?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    long_name = Some(data);
                }
                kind::GNU_MULTIVOL => {
                    let name = long_name
                        .take()
                        .unwrap_or_else(|| header::get_bytes(&block, field::NAME).to_vec());
                    let offset = header::get_number(&block, gnu::OFFSET).map_err(|what| {
                        corrupt(at, format!("continuation offset field: {what}"))
                    })?;
                    let part = VolumePart {
                        name: Some(name),
                        size: Some(h.size),
                        offset: u64::try_from(offset).ok(),
                    };
                    return Ok((at, part, h.size));
                }
                _ => {
                    if self.volume_part.is_empty() {
                        let name = long_name
                            .take()
                            .unwrap_or_else(|| header::get_bytes(&block, field::NAME).to_vec());
                        // What is left of the member cannot be found: leave this member here.
                        self.pushback = Some(block);
                        self.offset = at;
                        self.clear_member();
                        return Err(corrupt(
                            at,
                            format!(
                                "volume {volume} starts with {}, not with the rest of {}: the volumes are out of order or one is missing",
                                String::from_utf8_lossy(&name),
                                self.current
                            ),
                        ));
                    }
                    let part = std::mem::take(&mut self.volume_part);
                    return Ok((at, part, h.size));
                }
            }
        }
    }

    /// Keeps global records (dropping what GNU's multi-volume keys announce into
    /// `volume_part`), within [`MAX_GLOBALS_LEN`].
    fn take_globals(&mut self, records: Vec<(String, Vec<u8>)>, at: u64) -> Result<()> {
        for (k, v) in records {
            if k == gnu::VOLUME_LABEL {
                self.volume_label = Some(String::from_utf8_lossy(&v).into_owned());
                continue;
            }
            if k.starts_with("GNU.volume.") {
                self.volume_part
                    .take(&k, &v)
                    .map_err(|what| corrupt(at, what))?;
                continue;
            }
            if let Some(pos) = self.globals.iter().position(|(gk, _)| *gk == k) {
                let (ok, ov) = self.globals.remove(pos);
                self.globals_len -= ok.len() + ov.len();
            }
            if self.globals_len + k.len() + v.len() > MAX_GLOBALS_LEN {
                return Err(corrupt(
                    at,
                    format!("global pax records exceed {MAX_GLOBALS_LEN} bytes; {k} ignored"),
                ));
            }
            self.globals_len += k.len() + v.len();
            self.globals.push((k, v));
        }
        Ok(())
    }

    /// Reads the next member's headers; `None` at the end of the archive. Content the
    /// caller did not read is skipped. Damage is an error (see [`Self::next_or_damage`] for
    /// reading on past it).
    pub fn next_entry(&mut self) -> Result<Option<ReadEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip_data()?;
        match self.read_member(false) {
            Ok(e) => Ok(e),
            Err(Fault::Fatal(e)) | Err(Fault::Damaged(e, _)) => Err(e),
        }
    }

    /// Reads the next member, or reports damage and goes on after it, as GNU tar does:
    /// `Ok(None)` at the end of the archive; `Err` only when the input itself fails (an I/O
    /// or tape error). Content the caller did not read is skipped.
    pub fn next_or_damage(&mut self) -> Result<Option<Next>> {
        if self.done {
            return Ok(None);
        }
        let fault = match self.skip_data() {
            Ok(()) => match self.read_member(true) {
                Ok(Some(e)) => return Ok(Some(Next::Member(e))),
                Ok(None) => return Ok(None),
                Err(f) => f,
            },
            Err(e) => Fault::from(e),
        };
        let (error, resume) = match fault {
            Fault::Fatal(e) => return Err(e),
            Fault::Damaged(e, r) => (e, r),
        };
        let volume = self.volume;
        let (resumed_at, skipped) = match resume {
            Resume::End => {
                self.done = true;
                self.clear_member();
                (None, 0)
            }
            Resume::Here => {
                if self.done {
                    (None, 0)
                } else {
                    (Some((self.volume, self.offset)), 0)
                }
            }
            Resume::Scan => self.resync()?,
        };
        Ok(Some(Next::Damage(Damage {
            error,
            volume,
            resumed_at,
            skipped,
        })))
    }

    /// Scans forward block by block to the next block that is a valid header.
    fn resync(&mut self) -> Result<(Option<(u32, u64)>, u64)> {
        self.clear_member();
        // The damaged header block itself is stepped over too.
        let mut skipped = BLOCK as u64;
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            match self.read_block(&mut block) {
                Ok(true) => {
                    if !is_zero(&block) && parse_header(&block).is_ok() {
                        self.pushback = Some(block);
                        self.offset = at;
                        return Ok((Some((self.volume, at)), skipped));
                    }
                    skipped += BLOCK as u64;
                }
                Ok(false) => {
                    if self.open_next_volume()? {
                        continue;
                    }
                    self.done = true;
                    return Ok((None, skipped));
                }
                Err(ArchiveError::Truncated { .. }) => {
                    self.done = true;
                    return Ok((None, skipped));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one member's headers. `lenient` reads on past a lone zero block.
    fn read_member(&mut self, lenient: bool) -> std::result::Result<Option<ReadEntry>, Fault> {
        let mut first = self.offset;
        let mut extended = Extended::default();
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                if !extended.is_empty() {
                    self.done = true;
                    return Err(Fault::Damaged(
                        ArchiveError::Truncated {
                            offset: at,
                            what: "the archive ends after an extended header, before its member"
                                .into(),
                        },
                        Resume::End,
                    ));
                }
                // End of input without the end-of-archive blocks: accept at a member
                // boundary, or go on with the next volume.
                if self.open_next_volume()? {
                    first = self.offset;
                    continue;
                }
                self.done = true;
                return Ok(None);
            }
            if is_zero(&block) {
                if lenient {
                    self.refuse_lone_zero_block(at)?;
                }
                if self.open_next_volume()? {
                    first = self.offset;
                    continue;
                }
                self.done = true;
                return Ok(None);
            }
            let h = parse_header(&block)
                .map_err(|what| Fault::Damaged(corrupt(at, what), Resume::Scan))?;
            if !self.take_extended(&block, &h, at, &mut extended)? {
                let main = MainHeader {
                    block: &block,
                    at,
                    first,
                    size: h.size,
                };
                return self.member_from_header(main, extended);
            }
        }
    }

    /// A zero block followed by a valid header is not the end of the archive but damage
    /// (reading goes on at that header).
    fn refuse_lone_zero_block(&mut self, at: u64) -> std::result::Result<(), Fault> {
        let next_at = self.offset;
        let mut next = [0u8; BLOCK];
        if let Ok(true) = self.read_block(&mut next)
            && !is_zero(&next)
            && parse_header(&next).is_ok()
        {
            self.pushback = Some(next);
            self.offset = next_at;
            return Err(Fault::Damaged(
                corrupt(
                    at,
                    "a lone zero block in the middle of the archive; reading on",
                ),
                Resume::Here,
            ));
        }
        Ok(())
    }

    /// Takes the header `block` at `at` when it is an extended header (pax, GNU long name,
    /// volume label, …) into `extended`, or into the globals; `Ok(false)` when it is the
    /// member's main header.
    fn take_extended(
        &mut self,
        block: &[u8; BLOCK],
        h: &Header,
        at: u64,
        extended: &mut Extended,
    ) -> std::result::Result<bool, Fault> {
        let size = h.size;
        match h.flag {
            kind::PAX_LOCAL | b'X' => self.take_pax_local(at, size, extended)?,
            kind::PAX_GLOBAL => self.take_pax_global(at, size)?,
            kind::GNU_LONGNAME | kind::GNU_LONGLINK => {
                if size > MAX_META_LEN {
                    extended.damage.record(corrupt(
                        at,
                        format!("GNU long name of {size} bytes is larger than the {MAX_META_LEN}-byte limit"),
                    ));
                    self.skip_bytes(sparse::padded(size))?;
                    return Ok(true);
                }
                let mut data = self.read_meta(size, "GNU long name")?;
                while data.last() == Some(&0) {
                    data.pop();
                }
                if h.flag == kind::GNU_LONGNAME {
                    extended.long_name = Some(data);
                } else {
                    extended.long_link = Some(data);
                }
            }
            kind::GNU_VOLUME => {
                self.volume_label = Some(
                    String::from_utf8_lossy(header::get_bytes(block, field::NAME)).into_owned(),
                );
                self.skip_bytes(sparse::padded(size))?;
            }
            // Solaris ancillary data (ACLs in Solaris' own form) and GNU's obsolete "names"
            // member: nothing a Linux restore can use.
            b'A' | b'N' => self.skip_bytes(sparse::padded(size))?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// A pax extended header of `size` bytes: its records go with the member's.
    fn take_pax_local(
        &mut self,
        at: u64,
        size: u64,
        extended: &mut Extended,
    ) -> std::result::Result<(), Fault> {
        if size > MAX_META_LEN || extended.records_len + size > MAX_META_LEN {
            extended.damage.record(corrupt(
                at,
                format!("pax extended header of {size} bytes is larger than the {MAX_META_LEN}-byte limit"),
            ));
            self.skip_bytes(sparse::padded(size))?;
            return Ok(());
        }
        extended.records_len += size;
        let data = self.read_meta(size, "pax extended header")?;
        match parse_pax_records(&data, at + BLOCK as u64) {
            Ok(records) => extended.records.extend(records),
            Err(e) => extended.damage.record(e),
        }
        Ok(())
    }

    /// A pax global header of `size` bytes: its records apply to every member after it.
    fn take_pax_global(&mut self, at: u64, size: u64) -> std::result::Result<(), Fault> {
        if size > MAX_META_LEN {
            self.skip_bytes(sparse::padded(size))?;
            return Err(Fault::Damaged(
                corrupt(
                    at,
                    format!(
                        "pax global header of {size} bytes is larger than the {MAX_META_LEN}-byte limit"
                    ),
                ),
                Resume::Here,
            ));
        }
        let data = self.read_meta(size, "pax global header")?;
        let records = parse_pax_records(&data, at + BLOCK as u64)
            .map_err(|e| Fault::Damaged(e, Resume::Here))?;
        self.take_globals(records, at)
            .map_err(|e| Fault::Damaged(e, Resume::Here))
    }

    /// Builds the member whose main header is `main`, with what its extended headers said,
    /// and starts its content.
    fn member_from_header(
        &mut self,
        main: MainHeader<'_>,
        extended: Extended,
    ) -> std::result::Result<Option<ReadEntry>, Fault> {
        let Extended {
            records,
            long_name,
            long_link,
            damage,
            ..
        } = extended;
        let mut draft = Draft::new(&main, long_name, long_link, damage);
        draft.read_ustar(&main);
        let mut keys = PaxKeys::new(&mut draft, &mut self.names, main.first);
        for (key, value) in self.globals.iter().cloned().chain(records) {
            keys.take(key, value);
        }
        let (mut sparse_keys, volume_part) = keys.finish();
        let data_len = draft.settle();
        self.start_content(data_len);
        self.refuse_continued_part(&main, &draft.path, volume_part)?;

        // Sparse files, in whichever format the writer used.
        let plan = if draft.flag == kind::GNU_SPARSE {
            Some(self.old_gnu_sparse_plan(&main, &mut draft.damage, &sparse_keys)?)
        } else {
            sparse_keys.pax_plan(main.first, &mut draft.damage)
        };
        if let Some(name) = sparse_keys.name.take() {
            draft.path = name;
        }
        let path = trim_slashes(std::mem::take(&mut draft.path));
        self.current = String::from_utf8_lossy(&path).into_owned();
        self.current_path = path.clone();
        if let Some(plan) = &plan {
            draft.check_sparse(plan, sparse_keys.numblocks, main.first);
        }
        if let Some(e) = draft.damage.take() {
            // The member's data is skipped by the next read.
            return Err(Fault::Damaged(e, Resume::Here));
        }
        if let Some(plan) = plan {
            self.start_sparse(plan, main.first, data_len, &mut draft.meta)?;
        }
        Ok(Some(ReadEntry {
            entry: Entry {
                path,
                meta: draft.meta,
                hardlink: draft.hardlink,
                extra: draft.extra,
            },
            header_offset: main.first,
            data_offset: self.offset,
            volume: self.volume,
            notes: draft.notes,
        }))
    }

    /// The current member's content is `data_len` bytes (and their padding).
    fn start_content(&mut self, data_len: u64) {
        self.clear_member();
        self.remaining = data_len;
        self.padding = pad_of(data_len);
        self.member_size = data_len;
    }

    /// Refuses a member that is the part of a file begun on a volume not read before this
    /// one (an `M` header, or `GNU.volume.*` keys in the volume's globals or in `in_records`).
    fn refuse_continued_part(
        &mut self,
        main: &MainHeader<'_>,
        path: &[u8],
        in_records: VolumePart,
    ) -> std::result::Result<(), Fault> {
        let announced = std::mem::take(&mut self.volume_part);
        let continued_from = if main.block[field::TYPEFLAG] == kind::GNU_MULTIVOL {
            Some(
                header::get_number(main.block, gnu::OFFSET)
                    .unwrap_or(0)
                    .max(0) as u64,
            )
        } else if !announced.is_empty() || !in_records.is_empty() {
            announced.offset.or(in_records.offset).or(Some(0))
        } else {
            None
        };
        let Some(from) = continued_from else {
            return Ok(());
        };
        let name = announced
            .name
            .or(in_records.name)
            .unwrap_or_else(|| path.to_vec());
        Err(Fault::Damaged(
            corrupt(
                main.first,
                format!(
                    "{} is the part from byte {from} on of {}, continued from an earlier volume: give all the volumes, in order",
                    String::from_utf8_lossy(path),
                    String::from_utf8_lossy(&name)
                ),
            ),
            Resume::Here,
        ))
    }

    /// The sparse map of an old GNU `S` member: the entries in its header block, then in
    /// the extension blocks that follow it.
    fn old_gnu_sparse_plan(
        &mut self,
        main: &MainHeader<'_>,
        damage: &mut HeaderDamage,
        keys: &SparseKeys,
    ) -> std::result::Result<SparsePlan, Fault> {
        let mut pairs = Vec::new();
        let more = match gnu::header_entries(main.block, &mut pairs) {
            Ok(m) => m,
            Err(what) => {
                damage.record(corrupt(main.at, what));
                false
            }
        };
        if more {
            self.read_sparse_extensions(main.at, &mut pairs, damage)?;
        }
        let realsize = keys.old_gnu_realsize(main, damage);
        Ok(SparsePlan::Known { pairs, realsize })
    }

    /// Reads the extension blocks of an old GNU sparse header (at `at`) into `pairs`.
    fn read_sparse_extensions(
        &mut self,
        at: u64,
        pairs: &mut Vec<(u64, u64)>,
        damage: &mut HeaderDamage,
    ) -> std::result::Result<(), Fault> {
        let mut ext = [0u8; BLOCK];
        let mut ext_blocks = 0usize;
        let mut more = true;
        while more {
            let ext_at = self.offset;
            if !self.read_block(&mut ext)? {
                self.done = true;
                return Err(Fault::Damaged(
                    ArchiveError::Truncated {
                        offset: ext_at,
                        what: "the archive ends inside an old GNU sparse header".into(),
                    },
                    Resume::End,
                ));
            }
            ext_blocks += 1;
            if ext_blocks > sparse::MAX_READ_EXTENTS / 21 + 1 {
                return Err(Fault::Damaged(
                    corrupt(at, "old GNU sparse header with too many extension blocks"),
                    Resume::Scan,
                ));
            }
            more = match gnu::extension_entries(&ext, pairs) {
                Ok(m) => m,
                Err(what) => {
                    damage.record(corrupt(ext_at, what));
                    ext[504] != 0
                }
            };
        }
        Ok(())
    }

    /// Starts a sparse member's content by its plan (the member's `data_len` bytes hold the
    /// data extents); its size becomes its real size.
    fn start_sparse(
        &mut self,
        plan: SparsePlan,
        first: u64,
        data_len: u64,
        meta: &mut FileMeta,
    ) -> std::result::Result<(), Fault> {
        let (map, realsize) = match plan {
            SparsePlan::InData { realsize } => match self.read_sparse_map(realsize) {
                Ok(map) => (map, realsize),
                Err(e) => {
                    self.extents.clear();
                    self.member_sparse = false;
                    return Err(Fault::from(e));
                }
            },
            SparsePlan::Known { pairs, realsize } => {
                let (map, pad_each) = gnu::map_of(&pairs, realsize)
                    .and_then(|map| gnu::sparse_layout(&map, data_len).map(|pad| (map, pad)))
                    .map_err(|what| Fault::Damaged(corrupt(first, what), Resume::Here))?;
                self.start_extents(&map, data_len, pad_each);
                (map, realsize)
            }
        };
        meta.size = realsize;
        meta.sparse = Some(map);
        Ok(())
    }
}

/// `Read` over the current member's content.
pub struct DataReader<'a, R: Read>(pub &'a mut PaxReader<R>);

impl<R: Read> Read for DataReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_data(buf).map_err(|e| match e {
            ArchiveError::Io(io) => io,
            ArchiveError::Tape { source, context } => {
                io::Error::other(ArchiveError::Tape { context, source })
            }
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        })
    }
}
