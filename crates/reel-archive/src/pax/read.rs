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
use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;

use reel_stream::{FileKind, FileMeta, NameCache, SparseMap, Timestamp};

use crate::entry::Entry;
use crate::error::{ArchiveError, Result};
use crate::pax::gnu::{self, VolumePart};
use crate::pax::header::{self, BLOCK, field, kind};
use crate::pax::{facts, sparse};

/// Largest pax or GNU long-name header content accepted (bounded memory).
pub const MAX_META_LEN: u64 = 64 << 20;

/// Most bytes of global pax records kept at once (bounded memory over many global headers).
pub const MAX_GLOBALS_LEN: usize = 1 << 20;

/// Vendor keys that describe the archived file but that a restore has no use for: recognised
/// so that they are not carried along as unknown records.
const IGNORED_KEY_PREFIXES: [&str; 12] = [
    "SCHILY.dev",
    "SCHILY.ino",
    "SCHILY.nlink",
    "SCHILY.filetype",
    "SCHILY.tarfiletype",
    "SCHILY.archtype",
    "SCHILY.volhdr.",
    "SCHILY.id",
    "SCHILY.dumpdate",
    "SCHILY.offset",
    "LIBARCHIVE.symlinktype",
    "GNU.dumpdir",
];

/// Red Hat's tar (and GNU tar with `--selinux`) stores the SELinux label under this key.
const RHT_SELINUX: &str = "RHT.security.selinux";
/// star's real size of a sparse file.
const SCHILY_REALSIZE: &str = "SCHILY.realsize";

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

fn corrupt(offset: u64, what: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt {
        offset,
        what: what.into(),
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

fn trim_slashes(mut path: Vec<u8>) -> Vec<u8> {
    while path.len() > 1 && path.ends_with(b"/") {
        path.pop();
    }
    path
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

fn text(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok()
}

fn decimal(v: &[u8]) -> Option<u64> {
    text(v).and_then(|t| t.trim().parse().ok())
}

/// Which sparse format a member uses, with what its headers said.
enum SparsePlan {
    /// GNU 1.0: the map is at the start of the data.
    InData { realsize: u64 },
    /// The map came with the headers (old GNU `S`, pax 0.0 and 0.1).
    Known {
        pairs: Vec<(u64, u64)>,
        realsize: u64,
    },
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
        let mut header_offset = self.offset;
        let mut local: Vec<(String, Vec<u8>)> = Vec::new();
        let mut local_len: u64 = 0;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        // Damage found in a member's extended headers: the member is skipped.
        let mut deferred: Option<ArchiveError> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                if !local.is_empty()
                    || long_name.is_some()
                    || long_link.is_some()
                    || deferred.is_some()
                {
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
                    header_offset = self.offset;
                    continue;
                }
                self.done = true;
                return Ok(None);
            }
            if is_zero(&block) {
                if lenient {
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
                }
                if self.open_next_volume()? {
                    header_offset = self.offset;
                    continue;
                }
                self.done = true;
                return Ok(None);
            }
            let h = match parse_header(&block) {
                Ok(h) => h,
                Err(what) => return Err(Fault::Damaged(corrupt(at, what), Resume::Scan)),
            };
            let size = h.size;
            let flag = h.flag;
            match flag {
                kind::PAX_LOCAL | b'X' => {
                    if size > MAX_META_LEN || local_len + size > MAX_META_LEN {
                        deferred.get_or_insert(corrupt(
                            at,
                            format!("pax extended header of {size} bytes is larger than the {MAX_META_LEN}-byte limit"),
                        ));
                        self.skip_bytes(sparse::padded(size))?;
                        continue;
                    }
                    local_len += size;
                    let data = self.read_meta(size, "pax extended header")?;
                    match parse_pax_records(&data, at + BLOCK as u64) {
                        Ok(records) => local.extend(records),
                        Err(e) => {
                            deferred.get_or_insert(e);
                        }
                    }
                    continue;
                }
                kind::PAX_GLOBAL => {
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
                        .map_err(|e| Fault::Damaged(e, Resume::Here))?;
                    continue;
                }
                kind::GNU_LONGNAME | kind::GNU_LONGLINK => {
                    if size > MAX_META_LEN {
                        deferred.get_or_insert(corrupt(
                            at,
                            format!("GNU long name of {size} bytes is larger than the {MAX_META_LEN}-byte limit"),
                        ));
                        self.skip_bytes(sparse::padded(size))?;
                        continue;
                    }
                    let mut data = self.read_meta(size, "GNU long name")?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    if flag == kind::GNU_LONGNAME {
                        long_name = Some(data);
                    } else {
                        long_link = Some(data);
                    }
                    continue;
                }
                kind::GNU_VOLUME => {
                    self.volume_label = Some(
                        String::from_utf8_lossy(header::get_bytes(&block, field::NAME))
                            .into_owned(),
                    );
                    self.skip_bytes(sparse::padded(size))?;
                    continue;
                }
                // Solaris ancillary data (ACLs in Solaris' own form) and GNU's obsolete
                // "names" member: nothing a Linux restore can use.
                b'A' | b'N' => {
                    self.skip_bytes(sparse::padded(size))?;
                    continue;
                }
                _ => {}
            }
            return self.member_from_header(
                &block,
                at,
                header_offset,
                size,
                local,
                long_name,
                long_link,
                deferred,
            );
        }
    }

    /// Builds the member whose (main) header block is `block`.
    #[allow(clippy::too_many_arguments)]
    fn member_from_header(
        &mut self,
        block: &[u8; BLOCK],
        at: u64,
        header_offset: u64,
        size: u64,
        local: Vec<(String, Vec<u8>)>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        mut deferred: Option<ArchiveError>,
    ) -> std::result::Result<Option<ReadEntry>, Fault> {
        let mut notes = Vec::new();
        let flag = block[field::TYPEFLAG];
        let magic = header::get_bytes(block, field::MAGIC);
        let posix = magic == b"ustar" && &block[field::VERSION.0..field::VERSION.0 + 2] != b" \0";
        let old_gnu = &block[field::MAGIC.0..field::MAGIC.0 + 8] == b"ustar  \0";
        let mut path = long_name.unwrap_or_else(|| {
            let name = header::get_bytes(block, field::NAME).to_vec();
            let prefix = header::get_bytes(block, field::PREFIX);
            if posix && !prefix.is_empty() {
                [prefix, b"/", &name].concat()
            } else {
                name
            }
        });
        let mut link =
            long_link.unwrap_or_else(|| header::get_bytes(block, field::LINKNAME).to_vec());
        let mut file_kind = match flag {
            kind::REGULAR
            | kind::REGULAR_OLD
            | kind::CONTIGUOUS
            | kind::HARDLINK
            | kind::GNU_SPARSE
            | kind::GNU_MULTIVOL => FileKind::Regular,
            kind::SYMLINK => FileKind::Symlink,
            kind::CHAR => FileKind::CharDevice,
            kind::BLOCK => FileKind::BlockDevice,
            kind::DIRECTORY | kind::GNU_DUMPDIR => FileKind::Directory,
            kind::FIFO => FileKind::Fifo,
            other => {
                // POSIX and GNU tar: an unknown type is extracted as a regular file.
                notes.push(format!(
                    "unknown member type {:?}: restored as a regular file, as GNU tar does",
                    other as char
                ));
                FileKind::Regular
            }
        };
        if flag == kind::REGULAR_OLD && path.ends_with(b"/") {
            file_kind = FileKind::Directory;
        }
        let num = |f: (usize, usize), name: &str, deferred: &mut Option<ArchiveError>| -> i64 {
            match header::get_number(block, f) {
                Ok(v) => v,
                Err(what) => {
                    deferred.get_or_insert(corrupt(at, format!("{name} field: {what}")));
                    0
                }
            }
        };
        let mode = num(field::MODE, "mode", &mut deferred);
        let uid = num(field::UID, "uid", &mut deferred);
        let gid = num(field::GID, "gid", &mut deferred);
        let mtime = num(field::MTIME, "mtime", &mut deferred);
        let mut meta = FileMeta::new(file_kind, (mode & 0o7777) as u32);
        for (v, name) in [(mode, "mode"), (uid, "uid"), (gid, "gid")] {
            if !(0..=i64::from(u32::MAX)).contains(&v) {
                deferred.get_or_insert(corrupt(at, format!("{name} {v} is out of range")));
            }
        }
        meta.uid = uid.clamp(0, i64::from(u32::MAX)) as u32;
        meta.gid = gid.clamp(0, i64::from(u32::MAX)) as u32;
        meta.mtime = Timestamp::new(mtime, 0);
        let uname = header::get_bytes(block, field::UNAME);
        let gname = header::get_bytes(block, field::GNAME);
        if magic.starts_with(b"ustar") || !uname.is_empty() {
            meta.user = (!uname.is_empty()).then(|| String::from_utf8_lossy(uname).into_owned());
            meta.group = (!gname.is_empty()).then(|| String::from_utf8_lossy(gname).into_owned());
        }
        if matches!(file_kind, FileKind::CharDevice | FileKind::BlockDevice) {
            let major = num(field::DEVMAJOR, "devmajor", &mut deferred);
            let minor = num(field::DEVMINOR, "devminor", &mut deferred);
            if !(0..=i64::from(u32::MAX)).contains(&major)
                || !(0..=i64::from(u32::MAX)).contains(&minor)
            {
                deferred.get_or_insert(corrupt(
                    at,
                    format!("device number {major},{minor} is out of range"),
                ));
            }
            meta.rdev = Some((
                major.clamp(0, u32::MAX.into()) as u32,
                minor.clamp(0, u32::MAX.into()) as u32,
            ));
        }
        let mut atime = None;
        let mut ctime = None;
        if old_gnu {
            // GNU's incremental dumps keep atime and ctime in the old GNU header.
            for (f, slot) in [(gnu::ATIME, &mut atime), (gnu::CTIME, &mut ctime)] {
                if let Ok(t) = header::get_number(block, f)
                    && t != 0
                {
                    *slot = Some(Timestamp::new(t, 0));
                }
            }
        }
        let mut size = size;
        let mut extra = Vec::new();
        let bad = |key: &str, v: &[u8]| {
            corrupt(
                header_offset,
                format!(
                    "pax record {key}={:?} is malformed",
                    String::from_utf8_lossy(v)
                ),
            )
        };
        let records: Vec<(String, Vec<u8>)> = self.globals.iter().cloned().chain(local).collect();
        let mut sparse_major: Option<Vec<u8>> = None;
        let mut sparse_name: Option<Vec<u8>> = None;
        let mut sparse_realsize: Option<u64> = None;
        let mut sparse_size: Option<u64> = None;
        let mut sparse_numblocks: Option<u64> = None;
        let mut sparse_pairs: Vec<(u64, u64)> = Vec::new();
        let mut sparse_map: Option<Vec<(u64, u64)>> = None;
        let mut schily_realsize: Option<u64> = None;
        let mut volume_part = VolumePart::default();
        for (key, value) in records {
            let number = |deferred: &mut Option<ArchiveError>| -> Option<u64> {
                let v = decimal(&value);
                if v.is_none() {
                    deferred.get_or_insert(bad(&key, &value));
                }
                v
            };
            match key.as_str() {
                sparse::MAJOR => sparse_major = Some(value),
                sparse::MINOR => {}
                sparse::NAME => sparse_name = Some(value),
                sparse::REALSIZE => sparse_realsize = number(&mut deferred),
                gnu::SPARSE_SIZE => sparse_size = number(&mut deferred),
                gnu::SPARSE_NUMBLOCKS => sparse_numblocks = number(&mut deferred),
                gnu::SPARSE_OFFSET => {
                    let o = number(&mut deferred).unwrap_or(0);
                    if sparse_pairs.len() >= sparse::MAX_READ_EXTENTS {
                        deferred.get_or_insert(corrupt(
                            header_offset,
                            "GNU sparse 0.0 map is too large",
                        ));
                    } else {
                        sparse_pairs.push((o, 0));
                    }
                }
                gnu::SPARSE_NUMBYTES => {
                    let n = number(&mut deferred).unwrap_or(0);
                    match sparse_pairs.last_mut() {
                        Some(p) => p.1 = n,
                        None => {
                            deferred.get_or_insert(corrupt(
                                header_offset,
                                "GNU.sparse.numbytes before any GNU.sparse.offset",
                            ));
                        }
                    }
                }
                gnu::SPARSE_MAP => match gnu::parse_map(&value) {
                    Ok(m) => sparse_map = Some(m),
                    Err(what) => {
                        deferred.get_or_insert(corrupt(header_offset, what));
                    }
                },
                SCHILY_REALSIZE => schily_realsize = number(&mut deferred),
                k if k.starts_with("GNU.volume.") => {
                    if let Err(what) = volume_part.take(k, &value) {
                        deferred.get_or_insert(corrupt(header_offset, what));
                    }
                }
                "path" => path = value,
                "linkpath" => link = value,
                "size" => {
                    if let Some(v) = number(&mut deferred) {
                        size = v;
                    }
                }
                "uid" | "gid" => match decimal(&value).and_then(|v| u32::try_from(v).ok()) {
                    Some(v) if key == "uid" => meta.uid = v,
                    Some(v) => meta.gid = v,
                    None => {
                        deferred.get_or_insert(bad(&key, &value));
                    }
                },
                "uname" => meta.user = Some(String::from_utf8_lossy(&value).into_owned()),
                "gname" => meta.group = Some(String::from_utf8_lossy(&value).into_owned()),
                "mtime" | "atime" | "ctime" => {
                    match text(&value).and_then(Timestamp::parse_decimal) {
                        Some(t) if key == "mtime" => meta.mtime = t,
                        Some(t) if key == "atime" => atime = Some(t),
                        Some(t) => ctime = Some(t),
                        None => {
                            deferred.get_or_insert(bad(&key, &value));
                        }
                    }
                }
                "SCHILY.devmajor" | "SCHILY.devminor" => {
                    match decimal(&value).and_then(|v| u32::try_from(v).ok()) {
                        Some(v) => {
                            let (mut ma, mut mi) = meta.rdev.unwrap_or((0, 0));
                            if key.ends_with("major") {
                                ma = v;
                            } else {
                                mi = v;
                            }
                            if matches!(file_kind, FileKind::CharDevice | FileKind::BlockDevice) {
                                meta.rdev = Some((ma, mi));
                            }
                        }
                        None => {
                            deferred.get_or_insert(bad(&key, &value));
                        }
                    }
                }
                "hdrcharset" | "charset" | "comment" => {}
                k if IGNORED_KEY_PREFIXES.iter().any(|p| k.starts_with(p)) => {}
                RHT_SELINUX => {
                    let key = format!("{}security.selinux", facts::XATTR_SCHILY);
                    if let Err(what) = facts::take_record(&mut meta, &key, &value, &mut self.names)
                    {
                        deferred.get_or_insert(corrupt(header_offset, what));
                    }
                }
                _ => match facts::take_record(&mut meta, &key, &value, &mut self.names) {
                    Ok(facts::Taken::Applied) => {}
                    Ok(facts::Taken::NotMine) => extra.push((key, value)),
                    Err(what) => {
                        deferred.get_or_insert(corrupt(header_offset, what));
                    }
                },
            }
        }
        meta.atime = atime.unwrap_or(meta.mtime);
        meta.ctime = ctime.unwrap_or(meta.mtime);
        let hardlink = (flag == kind::HARDLINK).then(|| trim_slashes(link.clone()));
        if file_kind == FileKind::Symlink {
            meta.symlink_target = Some(OsString::from_vec(link));
        }
        // Content follows for regular files, and for links and directories that declare
        // some (pax hard links with data, GNU dumpdirs); never for the others.
        let data_len = match flag {
            kind::SYMLINK | kind::CHAR | kind::BLOCK | kind::FIFO => 0,
            _ => size,
        };
        meta.size = if file_kind == FileKind::Regular && hardlink.is_none() {
            size
        } else {
            0
        };
        self.clear_member();
        self.remaining = data_len;
        self.padding = pad_of(data_len);
        self.member_size = data_len;

        // A part of a member continued from a volume not read before this one.
        let announced = std::mem::take(&mut self.volume_part);
        let continued_from = if flag == kind::GNU_MULTIVOL {
            Some(header::get_number(block, gnu::OFFSET).unwrap_or(0).max(0) as u64)
        } else if !announced.is_empty() || !volume_part.is_empty() {
            announced.offset.or(volume_part.offset).or(Some(0))
        } else {
            None
        };
        if let Some(from) = continued_from {
            let name = announced
                .name
                .or(volume_part.name)
                .unwrap_or_else(|| path.clone());
            return Err(Fault::Damaged(
                corrupt(
                    header_offset,
                    format!(
                        "{} is the part from byte {from} on of {}, continued from an earlier volume: give all the volumes, in order",
                        String::from_utf8_lossy(&path),
                        String::from_utf8_lossy(&name)
                    ),
                ),
                Resume::Here,
            ));
        }

        // Sparse files, in whichever format the writer used.
        let plan = if flag == kind::GNU_SPARSE {
            let mut pairs = Vec::new();
            let mut more = match gnu::header_entries(block, &mut pairs) {
                Ok(m) => m,
                Err(what) => {
                    deferred.get_or_insert(corrupt(at, what));
                    false
                }
            };
            let mut ext = [0u8; BLOCK];
            let mut ext_blocks = 0usize;
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
                more = match gnu::extension_entries(&ext, &mut pairs) {
                    Ok(m) => m,
                    Err(what) => {
                        deferred.get_or_insert(corrupt(ext_at, what));
                        ext[504] != 0
                    }
                };
            }
            let realsize = match header::get_number(block, gnu::REALSIZE) {
                Ok(v) if v >= 0 => Some(v as u64),
                Ok(v) => {
                    deferred.get_or_insert(corrupt(at, format!("negative sparse real size {v}")));
                    None
                }
                Err(what) => {
                    // star and some writers leave the GNU field empty and say it in pax.
                    if schily_realsize.is_none() && sparse_size.is_none() {
                        deferred
                            .get_or_insert(corrupt(at, format!("sparse real size field: {what}")));
                    }
                    None
                }
            };
            let realsize = schily_realsize
                .or(sparse_size)
                .or(realsize.filter(|r| *r > 0))
                .or(realsize)
                .unwrap_or(0);
            Some(SparsePlan::Known { pairs, realsize })
        } else if let Some(major) = sparse_major {
            if major != b"1" {
                deferred.get_or_insert(corrupt(
                    header_offset,
                    format!(
                        "GNU sparse format {}.x is not one reel knows",
                        String::from_utf8_lossy(&major)
                    ),
                ));
                None
            } else {
                match sparse_realsize {
                    Some(realsize) => Some(SparsePlan::InData { realsize }),
                    None => {
                        deferred.get_or_insert(corrupt(
                            header_offset,
                            "GNU sparse member without GNU.sparse.realsize",
                        ));
                        None
                    }
                }
            }
        } else if let Some(pairs) = sparse_map {
            Some(SparsePlan::Known {
                pairs,
                realsize: sparse_size.unwrap_or(0),
            })
        } else if !sparse_pairs.is_empty() || sparse_numblocks.is_some() {
            Some(SparsePlan::Known {
                pairs: sparse_pairs,
                realsize: sparse_size.unwrap_or(0),
            })
        } else {
            None
        };
        if let Some(n) = sparse_name {
            path = n;
        }
        let path = trim_slashes(path);
        self.current = String::from_utf8_lossy(&path).into_owned();
        self.current_path = path.clone();
        if let Some(plan) = &plan {
            if let SparsePlan::Known { pairs, .. } = plan
                && let Some(n) = sparse_numblocks
                && n != pairs.len() as u64
                && flag != kind::GNU_SPARSE
            {
                deferred.get_or_insert(corrupt(
                    header_offset,
                    format!(
                        "GNU.sparse.numblocks={n} but the map has {} entries",
                        pairs.len()
                    ),
                ));
            }
            if file_kind != FileKind::Regular || hardlink.is_some() {
                deferred.get_or_insert(corrupt(
                    header_offset,
                    format!("GNU sparse data on a {file_kind:?} member"),
                ));
            }
        }
        if let Some(e) = deferred {
            // The member's data is skipped by the next read.
            return Err(Fault::Damaged(e, Resume::Here));
        }
        match plan {
            None => {}
            Some(SparsePlan::InData { realsize }) => {
                let map = match self.read_sparse_map(realsize) {
                    Ok(m) => m,
                    Err(e) => {
                        self.extents.clear();
                        self.member_sparse = false;
                        return Err(Fault::from(e));
                    }
                };
                meta.size = realsize;
                meta.sparse = Some(map);
            }
            Some(SparsePlan::Known { pairs, realsize }) => {
                let map = gnu::map_of(&pairs, realsize)
                    .and_then(|map| gnu::sparse_layout(&map, data_len).map(|pad| (map, pad)))
                    .map_err(|what| Fault::Damaged(corrupt(header_offset, what), Resume::Here))?;
                let (map, pad_each) = map;
                self.start_extents(&map, data_len, pad_each);
                meta.size = realsize;
                meta.sparse = Some(map);
            }
        }
        let entry = Entry {
            path,
            meta,
            hardlink,
            extra,
        };
        Ok(Some(ReadEntry {
            entry,
            header_offset,
            data_offset: self.offset,
            volume: self.volume,
            notes,
        }))
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
