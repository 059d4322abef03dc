//! The set index: the tape file written after each set's data, listing every member with its
//! byte offset, size, content hash and metadata, so the tape describes itself and one file
//! can be restored without reading the set.
//!
//! Layout: a zstd stream of JSON lines, written in records of the set's block size:
//! 1. `{"reel_set_index":1,"set":{…SetInfo…}}`, in a zstd frame of its own (since
//!    2026-12; earlier indexes are one frame, and read the same)
//! 2. one [`IndexEntry`] per member, in archive order (the line's form is private to this
//!    module: `wire.rs`)
//! 3. `{"end":{"entries":N,"blake3":"…"}}` — the count and the BLAKE3 of every line before it,
//!    so a truncated or altered index is detected.

use std::io::{BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

use reel_stream::{FileKind, FileMeta, Timestamp};

use crate::entry::Entry;
use crate::error::{ArchiveError, Result};

mod wire;

pub const INDEX_VERSION: u32 = 1;
/// Longest index line accepted (bounded memory on garbage).
const MAX_LINE: usize = 1 << 20;

/// Full backup, or changes since a parent set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SetMode {
    Full,
    Incremental,
}

/// One volume's share of a set's data. A set that spans volumes is split at record
/// boundaries: the parts, concatenated in order, are the set's archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPart {
    pub volume_id: uuid::Uuid,
    /// Barcode of the volume (the cartridge name in a library).
    pub barcode: String,
    /// The volume's place in its series.
    pub sequence: u32,
    /// Tape file of this part and the logical block of its first record.
    pub data_file: u64,
    pub first_block: u64,
    /// Offset in the set data where this part begins, and its records.
    pub byte_start: u64,
    pub records: u64,
}

/// What a set is: written at the head of its index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetInfo {
    pub id: uuid::Uuid,
    /// Ordinal of the set on its volume (1 = first).
    pub number: u32,
    pub name: String,
    /// When the backup started and finished (RFC 3339).
    pub started: String,
    pub finished: String,
    pub host: String,
    /// The paths given to `reel backup`.
    pub paths: Vec<String>,
    pub mode: SetMode,
    #[serde(default)]
    pub parent: Option<uuid::Uuid>,
    /// Record size of the set data.
    pub block_size: u32,
    pub volume_id: uuid::Uuid,
    /// Tape file of the set data, the logical block of its first record, its record count.
    pub data_file: u64,
    pub data_first_block: u64,
    pub data_records: u64,
    /// Bytes of the pax archive (before record padding).
    pub archive_bytes: u64,
    /// Members by kind, and bytes of file content.
    pub files: u64,
    pub directories: u64,
    pub other: u64,
    pub content_bytes: u64,
    /// Entries that could not be backed up (listed when the backup ran).
    pub problems: u64,
    pub reel_version: String,
    /// Where the data is, part by part (one part unless the set spans volumes). The first
    /// part repeats `data_file`/`data_first_block`.
    #[serde(default)]
    pub parts: Vec<SetPart>,
}

impl SetInfo {
    /// The parts of the set's data; a set written without a parts list is one part on
    /// its own volume.
    pub fn data_parts(&self, barcode: &str) -> Vec<SetPart> {
        if !self.parts.is_empty() {
            return self.parts.clone();
        }
        vec![SetPart {
            volume_id: self.volume_id,
            barcode: barcode.to_string(),
            sequence: 1,
            data_file: self.data_file,
            first_block: self.data_first_block,
            byte_start: 0,
            records: self.data_records,
        }]
    }

    /// The set's data spans more than one volume.
    pub fn spans(&self) -> bool {
        self.parts.len() > 1
    }
}

/// What a member is, as the index records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file: its content follows its header in the archive.
    File,
    /// A hard link to an earlier member, which [`IndexEntry::link`] names.
    HardLink,
    /// A directory.
    Directory,
    /// A symbolic link; [`IndexEntry::link`] is its target.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A Unix domain socket.
    Socket,
}

impl EntryKind {
    /// The kind of an archive member: a hard link is one whatever its target is.
    pub fn of(entry: &Entry) -> EntryKind {
        if entry.hardlink.is_some() {
            return EntryKind::HardLink;
        }
        match entry.meta.kind {
            FileKind::Regular => EntryKind::File,
            FileKind::Directory => EntryKind::Directory,
            FileKind::Symlink => EntryKind::Symlink,
            FileKind::Fifo => EntryKind::Fifo,
            FileKind::CharDevice => EntryKind::CharDevice,
            FileKind::BlockDevice => EntryKind::BlockDevice,
            FileKind::Socket => EntryKind::Socket,
        }
    }

    /// The letter that stands for the kind in index lines, in the catalog and in the
    /// metadata digest: `f h d l p c b s`.
    pub fn code(self) -> char {
        match self {
            EntryKind::File => 'f',
            EntryKind::HardLink => 'h',
            EntryKind::Directory => 'd',
            EntryKind::Symlink => 'l',
            EntryKind::Fifo => 'p',
            EntryKind::CharDevice => 'c',
            EntryKind::BlockDevice => 'b',
            EntryKind::Socket => 's',
        }
    }

    /// The kind a letter of [`EntryKind::code`] stands for.
    pub fn from_code(code: char) -> Option<EntryKind> {
        Some(match code {
            'f' => EntryKind::File,
            'h' => EntryKind::HardLink,
            'd' => EntryKind::Directory,
            'l' => EntryKind::Symlink,
            'p' => EntryKind::Fifo,
            'c' => EntryKind::CharDevice,
            'b' => EntryKind::BlockDevice,
            's' => EntryKind::Socket,
            _ => return None,
        })
    }
}

/// How a member's content hash was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum HashScheme {
    /// BLAKE3 of the content.
    #[default]
    Blake3,
    /// `sparse-b3-64k`, for sparse files (see [`reel_stream::sparse`]).
    Sparse64k,
}

impl HashScheme {
    /// The scheme the content of a member described by `meta` is hashed with (by
    /// [`reel_stream::ContentHasher::for_meta`]).
    pub fn of(meta: &FileMeta) -> HashScheme {
        match reel_stream::ContentHasher::scheme(meta) {
            None => HashScheme::Blake3,
            Some(name) => {
                debug_assert_eq!(name, reel_stream::sparse::SPARSE_HASH_SCHEME);
                HashScheme::Sparse64k
            }
        }
    }

    /// The name index lines and the catalog record; `None` for plain BLAKE3, which they
    /// leave out.
    pub fn name(self) -> Option<&'static str> {
        match self {
            HashScheme::Blake3 => None,
            HashScheme::Sparse64k => Some(reel_stream::sparse::SPARSE_HASH_SCHEME),
        }
    }

    /// The scheme a recorded name stands for.
    pub fn from_name(name: &str) -> Option<HashScheme> {
        (name == reel_stream::sparse::SPARSE_HASH_SCHEME).then_some(HashScheme::Sparse64k)
    }
}

/// The digest of a member's metadata ([`meta_digest`]): the first 128 bits of a BLAKE3,
/// written as 32 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MetaDigest([u8; 16]);

impl MetaDigest {
    /// Parses the 32 hex digits of [`MetaDigest`]'s `Display`.
    pub fn from_hex(hex: &str) -> Option<MetaDigest> {
        let mut bytes = [0u8; 16];
        decode_hex(hex, &mut bytes).then_some(MetaDigest(bytes))
    }

    /// The lowercase hex digits (no allocation: index lines are written by the thousand).
    fn hex_digits(&self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        for (pair, b) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0xf)];
        }
        out
    }
}

impl std::fmt::Display for MetaDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = self.hex_digits();
        // Only ASCII hex digits were written.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| std::fmt::Error)?)
    }
}

impl std::fmt::Debug for MetaDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MetaDigest({self})")
    }
}

/// The value of each byte as a hex digit; 0xff for bytes that are not one.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Fills `out` from `hex`, two digits a byte; false unless `hex` is exactly that. A table
/// and no branch per digit: a third of the time of `blake3::Hash::from_hex` (measured), for
/// the two digests of every index line.
fn decode_hex(hex: &str, out: &mut [u8]) -> bool {
    if hex.len() != 2 * out.len() {
        return false;
    }
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        invalid |= high | low;
        *byte = (high << 4) | (low & 0xf);
    }
    invalid & 0xf0 == 0
}

/// One member, as the index lists it. In index lines (and `reel list --json`) it is the
/// JSON object of its `Serialize` implementation, the same since the first index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// Member name as stored (bytes: names need not be UTF-8).
    pub path: Vec<u8>,
    /// What the member is.
    pub kind: EntryKind,
    /// Content bytes in the archive (for a sparse file: its logical size).
    pub size: u64,
    /// Permission bits with setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    /// Owner and group ids.
    pub uid: u32,
    pub gid: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Byte offset of the member's first header block in the set data.
    pub offset: u64,
    /// Hash of the content (regular files), computed by `hash_scheme`.
    pub hash: Option<blake3::Hash>,
    /// How `hash` was computed ([`HashScheme::Blake3`] when there is none).
    pub hash_scheme: HashScheme,
    /// Link target (symlink target or hard-link target member), lossy UTF-8.
    pub link: Option<String>,
    /// Digest of the member's metadata (kind, mode, owner, times, link, extra records).
    pub meta_digest: MetaDigest,
    /// Change time and inode at backup time, for incremental backups (indexes written
    /// before them have neither).
    pub ctime: Option<Timestamp>,
    pub ino: Option<u64>,
    /// In an incremental set: the set whose data holds this unchanged file (the member is
    /// not in this set's archive; `offset` is its offset in that set).
    pub source_set: Option<uuid::Uuid>,
}

/// The digest of a member's metadata, as the index records it.
pub fn meta_digest(entry: &Entry) -> MetaDigest {
    let m = &entry.meta;
    let mut h = blake3::Hasher::new();
    h.update(&[EntryKind::of(entry).code() as u8]);
    for v in [
        u64::from(m.mode),
        u64::from(m.uid),
        u64::from(m.gid),
        m.size,
    ] {
        h.update(&v.to_le_bytes());
    }
    h.update(&m.mtime.secs.to_le_bytes());
    h.update(&m.mtime.nanos.to_le_bytes());
    h.update(m.user.as_deref().unwrap_or("").as_bytes());
    h.update(&[0]);
    h.update(m.group.as_deref().unwrap_or("").as_bytes());
    h.update(&[0]);
    if let Some((a, b)) = m.rdev {
        h.update(&a.to_le_bytes());
        h.update(&b.to_le_bytes());
    }
    if let Some(t) = &m.symlink_target {
        h.update(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()));
    }
    if let Some(l) = &entry.hardlink {
        h.update(l);
    }
    // Extended attributes, ACLs and file flags: a change to any of them is a change.
    let mut xattrs: Vec<_> = m.xattrs.iter().collect();
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    for x in xattrs {
        h.update(&(x.name.len() as u64).to_le_bytes());
        h.update(&x.name);
        h.update(&(x.value.len() as u64).to_le_bytes());
        h.update(&x.value);
    }
    for acl in [&m.acl_access, &m.acl_default] {
        h.update(format!("{acl:?}").as_bytes());
    }
    h.update(&m.flags.to_le_bytes());
    for (k, v) in &entry.extra {
        h.update(k.as_bytes());
        h.update(&[0]);
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v);
    }
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&h.finalize().as_bytes()[..16]);
    MetaDigest(digest)
}

impl IndexEntry {
    /// The index line of `entry`, written at `offset` with content hash `hash`.
    pub fn new(entry: &Entry, offset: u64, hash: Option<blake3::Hash>) -> IndexEntry {
        let link = entry
            .hardlink
            .as_deref()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .or_else(|| {
                entry
                    .meta
                    .symlink_target
                    .as_ref()
                    .map(|t| t.to_string_lossy().into_owned())
            });
        IndexEntry {
            path: entry.path.clone(),
            kind: EntryKind::of(entry),
            size: if entry.is_sparse() {
                entry.meta.size
            } else {
                entry.data_len()
            },
            mode: entry.meta.mode,
            uid: entry.meta.uid,
            gid: entry.meta.gid,
            mtime: entry.meta.mtime,
            offset,
            hash,
            hash_scheme: match hash {
                Some(_) => HashScheme::of(&entry.meta),
                None => HashScheme::Blake3,
            },
            link,
            meta_digest: meta_digest(entry),
            ctime: Some(entry.meta.ctime),
            ino: (entry.meta.ino != 0).then_some(entry.meta.ino),
            source_set: None,
        }
    }

    /// The name shown to people (lossy for non-UTF-8 bytes).
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

#[derive(Serialize, Deserialize)]
struct HeaderLine {
    reel_set_index: u32,
    set: SetInfo,
}

#[derive(Serialize, Deserialize)]
struct EndLine {
    end: EndInfo,
}

#[derive(Serialize, Deserialize)]
struct EndInfo {
    entries: u64,
    blake3: String,
}

/// Collects index lines during a backup in a spool file (bounded memory), then writes the
/// finished index.
pub struct IndexSpool {
    file: std::io::BufWriter<std::fs::File>,
    entries: u64,
    bytes: u64,
}

impl IndexSpool {
    /// A spool in an anonymous temporary file.
    pub fn new() -> Result<IndexSpool> {
        Ok(IndexSpool {
            file: std::io::BufWriter::new(tempfile::tempfile()?),
            entries: 0,
            bytes: 0,
        })
    }

    pub fn push(&mut self, e: &IndexEntry) -> Result<()> {
        let mut line = serde_json::to_vec(e).map_err(std::io::Error::from)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.entries += 1;
        self.bytes += line.len() as u64;
        Ok(())
    }

    /// Bytes of index lines so far (an upper bound of the compressed index).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The lines pushed so far, parsed again (for the catalog).
    pub fn read_back(&mut self) -> Result<impl Iterator<Item = Result<IndexEntry>> + '_> {
        use std::io::Seek;
        self.file.flush()?;
        let mut file = self.file.get_ref().try_clone()?;
        file.rewind()?;
        let mut line_no = 0u64;
        Ok(BufReader::new(file).lines().map(move |line| {
            line_no += 1;
            let line = line?;
            serde_json::from_str(&line).map_err(|e| ArchiveError::Corrupt {
                offset: line_no,
                what: format!("index spool line {line_no}: {e}"),
            })
        }))
    }

    /// Lines pushed so far.
    pub fn len(&self) -> u64 {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Writes the complete index (header, entries, end line) to `out`, zstd-compressed.
    pub fn write_index(&mut self, info: &SetInfo, out: impl Write) -> Result<()> {
        use std::io::Seek;
        self.file.flush()?;
        let mut spool = self.file.get_ref().try_clone()?;
        spool.rewind()?;
        // Level 1: at level 3 compressing the index was ~5% of the CPU of a small-file
        // backup (perf), and the index came out no smaller on the bench's 100,000 files.
        let mut enc = zstd::Encoder::new(out, 1)?;
        let mut digest = blake3::Hasher::new();
        let mut header = serde_json::to_vec(&HeaderLine {
            reel_set_index: INDEX_VERSION,
            set: info.clone(),
        })
        .map_err(std::io::Error::from)?;
        header.push(b'\n');
        digest.update(&header);
        // The header is a zstd frame of its own, a few hundred bytes: a reader after the set's
        // description (a restore checking that the tape still holds the set the catalog
        // names) decodes it alone instead of the first 128 KiB block of entries. Readers of
        // the whole index go on into the next frame, as zstd streams allow.
        enc.write_all(&header)?;
        let out = enc.finish()?;
        let mut enc = zstd::Encoder::new(out, 1)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = spool.read(&mut buf)?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
            enc.write_all(&buf[..n])?;
        }
        let mut end = serde_json::to_vec(&EndLine {
            end: EndInfo {
                entries: self.entries,
                blake3: digest.finalize().to_hex().to_string(),
            },
        })
        .map_err(std::io::Error::from)?;
        end.push(b'\n');
        enc.write_all(&end)?;
        enc.finish()?.flush()?;
        Ok(())
    }
}

/// Reads an index: the header first, then entries one at a time, verified at the end.
pub struct IndexReader<R: Read> {
    lines: BufReader<zstd::Decoder<'static, BufReader<R>>>,
    digest: blake3::Hasher,
    entries: u64,
    line_no: u64,
    done: bool,
    line: Vec<u8>,
}

impl<R: Read> IndexReader<R> {
    /// Opens an index and reads its header.
    pub fn open(input: R) -> Result<(SetInfo, IndexReader<R>)> {
        // A small input buffer: zstd's default (128 KiB) is filled before the first line
        // is decoded, a copy that reading only the header does not need.
        let dec = zstd::Decoder::with_buffer(BufReader::with_capacity(16 * 1024, input)).map_err(
            |e| ArchiveError::Corrupt {
                offset: 0,
                what: format!("set index: {e}"),
            },
        )?;
        let mut r = IndexReader {
            lines: BufReader::new(dec),
            digest: blake3::Hasher::new(),
            entries: 0,
            line_no: 0,
            done: false,
            line: Vec::new(),
        };
        if !r.next_line()? {
            return Err(ArchiveError::Truncated {
                offset: 0,
                what: "set index is empty".into(),
            });
        }
        let header: HeaderLine = serde_json::from_slice(&r.line).map_err(|e| r.bad(e))?;
        if header.reel_set_index != INDEX_VERSION {
            return Err(ArchiveError::Corrupt {
                offset: 0,
                what: format!(
                    "set index version {} is not supported",
                    header.reel_set_index
                ),
            });
        }
        r.digest.update(&r.line);
        Ok((header.set, r))
    }

    fn bad(&self, e: impl std::fmt::Display) -> ArchiveError {
        ArchiveError::Corrupt {
            offset: self.line_no,
            what: format!("set index line {}: {e}", self.line_no),
        }
    }

    /// Reads one line into `self.line` (with its newline); `Ok(false)` at end of input.
    fn next_line(&mut self) -> Result<bool> {
        self.line.clear();
        let n = (&mut self.lines)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.line)
            .map_err(
                |e| match ArchiveError::from_io("reading the set index", e) {
                    ArchiveError::Io(io) => ArchiveError::Corrupt {
                        offset: self.line_no,
                        what: format!("set index after line {}: {io}", self.line_no),
                    },
                    other => other,
                },
            )?;
        if n == 0 {
            return Ok(false);
        }
        self.line_no += 1;
        if self.line.len() > MAX_LINE || self.line.last() != Some(&b'\n') {
            return Err(ArchiveError::Truncated {
                offset: self.line_no,
                what: format!("set index line {} is cut off", self.line_no),
            });
        }
        Ok(true)
    }

    /// The next entry; `None` after the last, once the end line has verified the index.
    pub fn next_entry(&mut self) -> Result<Option<IndexEntry>> {
        if self.done {
            return Ok(None);
        }
        if !self.next_line()? {
            return Err(ArchiveError::Truncated {
                offset: self.line_no,
                what: format!(
                    "set index ends after {} entries without its end line",
                    self.entries
                ),
            });
        }
        if self.line.starts_with(b"{\"end\"") {
            let end: EndLine = serde_json::from_slice(&self.line).map_err(|e| self.bad(e))?;
            let digest = std::mem::replace(&mut self.digest, blake3::Hasher::new()).finalize();
            if end.end.entries != self.entries || end.end.blake3 != digest.to_hex().as_str() {
                return Err(ArchiveError::Integrity(format!(
                    "set index does not match its end line ({} entries read, {} recorded; digest {})",
                    self.entries,
                    end.end.entries,
                    if end.end.blake3 == digest.to_hex().as_str() {
                        "ok"
                    } else {
                        "differs"
                    }
                )));
            }
            self.done = true;
            return Ok(None);
        }
        let e: IndexEntry = serde_json::from_slice(&self.line).map_err(|e| self.bad(e))?;
        self.digest.update(&self.line);
        self.entries += 1;
        Ok(Some(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of bytes decodes as the standard library reads two hex digits (either
    /// case), or not at all.
    #[test]
    fn hex_decoding_matches_the_standard_parser() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let pair = [a, b];
                let Ok(text) = std::str::from_utf8(&pair) else {
                    continue;
                };
                let mut out = [0u8; 1];
                let want = text
                    .bytes()
                    .all(|c| c.is_ascii_hexdigit())
                    .then(|| u8::from_str_radix(text, 16).ok())
                    .flatten();
                let got = decode_hex(text, &mut out).then_some(out[0]);
                assert_eq!(got, want, "{pair:?}");
            }
        }
        let mut two = [0u8; 2];
        assert!(!decode_hex("abc", &mut two));
        assert!(!decode_hex("abcdef", &mut two));
        assert!(!decode_hex("ab\u{e9}", &mut two));
    }

    #[test]
    fn meta_digests_read_back_from_their_text() {
        let d = meta_digest(&Entry::new("a", FileMeta::new(FileKind::Regular, 0o644)));
        let text = d.to_string();
        assert_eq!(text.len(), 32);
        assert_eq!(MetaDigest::from_hex(&text), Some(d));
        assert_eq!(MetaDigest::from_hex(&text.to_uppercase()), Some(d));
        assert_eq!(MetaDigest::from_hex(&text[1..]), None);
        assert_eq!(format!("{d:?}"), format!("MetaDigest({text})"));
    }

    #[test]
    fn kinds_and_schemes_read_back_from_their_codes() {
        use EntryKind::*;
        let all = [
            File,
            HardLink,
            Directory,
            Symlink,
            Fifo,
            CharDevice,
            BlockDevice,
            Socket,
        ];
        let codes: String = all.iter().map(|k| k.code()).collect();
        assert_eq!(codes, "fhdlpcbs");
        for k in all {
            assert_eq!(EntryKind::from_code(k.code()), Some(k));
        }
        assert_eq!(EntryKind::from_code('x'), None);
        for s in [HashScheme::Blake3, HashScheme::Sparse64k] {
            let back = s
                .name()
                .map_or(Some(HashScheme::Blake3), HashScheme::from_name);
            assert_eq!(back, Some(s));
        }
        assert_eq!(HashScheme::from_name("blake3"), None);
    }
}
