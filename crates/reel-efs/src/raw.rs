//! The raw encryption API: export an encrypted file as ciphertext and import it back, with no
//! key and without ever holding plaintext (OpenEncryptedFileRaw, ReadEncryptedFileRaw,
//! WriteEncryptedFileRaw, CloseEncryptedFileRaw).
//!
//! # The raw form (version 1, integers big-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `REELEFSR` |
//! | 8 | 2 | container version, 1 |
//! | 10 | 1 | kind: 1 = file, 2 = directory (the same as the marker's) |
//! | 11 | 1 | reserved, 0 |
//! | 12 | 4 | marker length M (1..=65536) |
//! | 16 | M | the `user.reel.efs` marker, byte for byte (see [`marker`](mod@crate::marker)) |
//! | 16+M | 8 | ciphertext length C (0 for a directory) |
//! | 24+M | C | the ciphertext: the file's bytes exactly as on disk, an age v1 file |
//! | 24+M+C | 8 | end magic `REELEFSE` |
//! | 32+M+C | 32 | BLAKE3 of bytes 0..32+M+C (everything before it) |
//!
//! The whole form is 64 + M + C bytes. An import checks every field, the age header at the
//! start of the ciphertext, that C fits the marker's plaintext size, and the checksum; any
//! problem is an error naming the byte offset, and nothing appears under the final name.
//! The checksum catches damage without a key; the age MAC and tags catch the rest when an
//! owner opens the file.

use std::fs::{File, Metadata};
use std::io::{self, BufWriter, Read, Write};
use std::ops::BitOr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::atomic::{Commit, Replacement, parent_of, sync_dir};
use crate::error::{EfsError, Result};
use crate::file::open_encrypted;
use crate::header::{self, MAX_HEADER_LEN};
use crate::marker::{self, Kind, Marker, set_marker};

/// First bytes of a raw form.
pub const RAW_MAGIC: &[u8; 8] = b"REELEFSR";
/// Bytes before the checksum at the end of a raw form.
pub const RAW_END_MAGIC: &[u8; 8] = b"REELEFSE";
/// The container version this crate writes and reads.
pub const RAW_VERSION: u16 = 1;
/// Longest marker a raw form may carry.
pub const MAX_MARKER_LEN: usize = 64 * 1024;
const FIXED_LEN: usize = 16;
const CHUNK: usize = 256 * 1024;

/// How [`RawImport::create`] opens its target (the OpenEncryptedFileRaw flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RawFlags(u32);

impl RawFlags {
    /// Open for export (0, as on Windows).
    pub const EXPORT: RawFlags = RawFlags(0);
    /// Open for import (restore).
    pub const CREATE_FOR_IMPORT: RawFlags = RawFlags(1);
    /// Import a directory (its marker), with `CREATE_FOR_IMPORT`.
    pub const CREATE_FOR_DIR: RawFlags = RawFlags(2);
    /// Replace an existing *hidden* entry (name starting with `.`), as Windows replaces a
    /// hidden file on import only with this flag.
    pub const OVERWRITE_HIDDEN: RawFlags = RawFlags(4);
    /// reel's own: replace an existing entry (not hidden). Without it an import never
    /// replaces anything.
    pub const OVERWRITE: RawFlags = RawFlags(0x100);

    const KNOWN: u32 = 1 | 2 | 4 | 0x100;

    /// Flags from their bits; unknown bits are refused.
    pub fn from_bits(bits: u32) -> Result<RawFlags> {
        if bits & !Self::KNOWN != 0 {
            return Err(EfsError::InvalidFlags(format!(
                "unknown raw flags {:#x}",
                bits & !Self::KNOWN
            )));
        }
        Ok(RawFlags(bits))
    }

    pub fn bits(self) -> u32 {
        self.0
    }

    pub fn contains(self, other: RawFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for RawFlags {
    type Output = RawFlags;
    fn bitor(self, rhs: RawFlags) -> RawFlags {
        RawFlags(self.0 | rhs.0)
    }
}

/// The kind a raw form declares, from its first 16 bytes (`None` when they are not a raw
/// form's start). Lets a caller choose `CREATE_FOR_DIR` before importing.
pub fn peek_kind(prefix: &[u8]) -> Option<Kind> {
    if prefix.len() < FIXED_LEN || &prefix[..8] != RAW_MAGIC {
        return None;
    }
    Kind::from_code(prefix[10])
}

enum ExportStage {
    Prefix,
    Data,
    Trailer,
    Done,
}

/// An encrypted file or directory opened for export (OpenEncryptedFileRaw with flags 0).
pub struct RawExport {
    path: PathBuf,
    file: Option<File>,
    meta: Metadata,
    marker: Marker,
    marker_bytes: Vec<u8>,
    ciphertext_len: u64,
    done: u64,
    stage: ExportStage,
    hasher: blake3::Hasher,
    ciphertext_only: bool,
}

impl RawExport {
    /// Opens `path` for export. It must carry the marker; a file's ciphertext must start
    /// with an age header and have the length its marker implies. Needs read access only.
    pub fn open(path: &Path) -> Result<RawExport> {
        let lmeta = path.symlink_metadata().map_err(|e| EfsError::io(path, e))?;
        let (file, meta, marker, ciphertext_len) = if lmeta.is_dir() {
            let m = marker::marker(path)?.ok_or_else(|| EfsError::NotEncrypted {
                path: path.to_path_buf(),
            })?;
            if m.kind != Kind::Directory {
                return Err(EfsError::BadMarker {
                    path: path.to_path_buf(),
                    offset: 5,
                    what: "a directory with a file marker".into(),
                });
            }
            (None, lmeta, m, 0)
        } else {
            let opened = open_encrypted(path)?;
            let len = opened.meta.len();
            (Some(opened.file), opened.meta, opened.marker, len)
        };
        let marker_bytes = marker.encode().map_err(|e| e.for_path(path))?;
        Ok(RawExport {
            path: path.to_path_buf(),
            file,
            meta,
            marker,
            marker_bytes,
            ciphertext_len,
            done: 0,
            stage: ExportStage::Prefix,
            hasher: blake3::Hasher::new(),
            ciphertext_only: false,
        })
    }

    /// The marker (for the backup engine's `REEL.efs` pax key).
    pub fn marker(&self) -> &Marker {
        &self.marker
    }

    pub fn kind(&self) -> Kind {
        self.marker.kind
    }

    /// Bytes of ciphertext (the file's length; 0 for a directory).
    pub fn ciphertext_len(&self) -> u64 {
        self.ciphertext_len
    }

    /// Bytes of the whole raw form.
    pub fn raw_len(&self) -> u64 {
        (FIXED_LEN + self.marker_bytes.len() + 8 + 8 + 32) as u64 + self.ciphertext_len
    }

    /// The next piece of the raw form into `buf`; false when all has been produced.
    fn next_chunk(&mut self, buf: &mut Vec<u8>) -> Result<bool> {
        buf.clear();
        match self.stage {
            ExportStage::Prefix => {
                buf.extend_from_slice(RAW_MAGIC);
                buf.extend_from_slice(&RAW_VERSION.to_be_bytes());
                buf.push(self.marker.kind.code());
                buf.push(0);
                buf.extend_from_slice(&(self.marker_bytes.len() as u32).to_be_bytes());
                buf.extend_from_slice(&self.marker_bytes);
                buf.extend_from_slice(&self.ciphertext_len.to_be_bytes());
                self.hasher.update(buf);
                self.stage = ExportStage::Data;
            }
            ExportStage::Data => {
                let remaining = self.ciphertext_len - self.done;
                if remaining == 0 {
                    self.finish_data()?;
                    return self.next_chunk(buf);
                }
                let Some(file) = &self.file else {
                    self.stage = ExportStage::Trailer;
                    return self.next_chunk(buf);
                };
                buf.resize(CHUNK.min(remaining as usize), 0);
                let n = loop {
                    match file.read_at(buf, self.done) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(EfsError::io(&self.path, e)),
                    }
                };
                if n == 0 {
                    return Err(EfsError::Changed {
                        path: self.path.clone(),
                        doing: "exporting (it shrank)",
                    });
                }
                buf.truncate(n);
                if !self.ciphertext_only {
                    self.hasher.update(buf);
                }
                self.done += n as u64;
            }
            ExportStage::Trailer => {
                buf.extend_from_slice(RAW_END_MAGIC);
                self.hasher.update(RAW_END_MAGIC);
                buf.extend_from_slice(self.hasher.finalize().as_bytes());
                self.stage = ExportStage::Done;
            }
            ExportStage::Done => return Ok(false),
        }
        Ok(true)
    }

    /// After the last ciphertext byte: the file must not have grown or been modified.
    fn finish_data(&mut self) -> Result<()> {
        if let Some(file) = &self.file {
            let mut probe = [0u8; 1];
            let grew = file
                .read_at(&mut probe, self.ciphertext_len)
                .map_err(|e| EfsError::io(&self.path, e))?
                > 0;
            let now = file.metadata().map_err(|e| EfsError::io(&self.path, e))?;
            if grew
                || now.mtime() != self.meta.mtime()
                || now.mtime_nsec() != self.meta.mtime_nsec()
                || now.len() != self.meta.len()
            {
                return Err(EfsError::Changed {
                    path: self.path.clone(),
                    doing: "exporting",
                });
            }
        }
        self.stage = if self.ciphertext_only {
            ExportStage::Done
        } else {
            ExportStage::Trailer
        };
        Ok(())
    }

    /// ReadEncryptedFileRaw: hands the raw form to `callback` in pieces until all is done.
    /// A callback error aborts the export and is returned. Returns the bytes produced.
    pub fn export(mut self, mut callback: impl FnMut(&[u8]) -> io::Result<()>) -> Result<u64> {
        let mut buf = Vec::with_capacity(CHUNK);
        let mut total = 0u64;
        while self.next_chunk(&mut buf)? {
            callback(&buf).map_err(EfsError::Callback)?;
            total += buf.len() as u64;
        }
        Ok(total)
    }

    /// The raw form as a reader.
    pub fn into_reader(self) -> RawReader {
        RawReader {
            export: self,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Only the ciphertext (the file's bytes as on disk), as a reader: what a backup archive
    /// stores as the entry data next to the marker. Errors if the file changes meanwhile.
    pub fn into_ciphertext_reader(mut self) -> RawReader {
        self.ciphertext_only = true;
        self.stage = ExportStage::Data;
        RawReader {
            export: self,
            buf: Vec::new(),
            pos: 0,
        }
    }
}

/// Reads a raw form (or only the ciphertext) from a [`RawExport`].
pub struct RawReader {
    export: RawExport,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for RawReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            self.pos = 0;
            if !self
                .export
                .next_chunk(&mut self.buf)
                .map_err(io::Error::other)?
            {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Checks a ciphertext as it streams past: its age header parses, and its length fits the
/// marker's plaintext size. Offsets are relative to the ciphertext's start.
pub(crate) struct CipherCheck {
    plaintext: u64,
    /// The announced length, when known up front.
    len: Option<u64>,
    seen: u64,
    head: Vec<u8>,
    next_parse: usize,
    header_len: Option<usize>,
}

type CheckError = (u64, String);

impl CipherCheck {
    pub(crate) fn new(plaintext: u64, len: Option<u64>) -> CipherCheck {
        CipherCheck {
            plaintext,
            len,
            seen: 0,
            head: Vec::new(),
            next_parse: 256,
            header_len: None,
        }
    }

    fn length_error(&self, header_len: usize, len: u64) -> Option<CheckError> {
        let expected = header_len as u64 + header::payload_len(self.plaintext);
        (expected != len).then(|| {
            (
                len.min(expected),
                format!(
                    "the ciphertext has {len} bytes, but a {header_len}-byte age header and {} plaintext bytes (the marker's) make {expected}",
                    self.plaintext
                ),
            )
        })
    }

    fn try_parse(&mut self) -> std::result::Result<(), CheckError> {
        match header::parse(&self.head) {
            Ok(Some(h)) => {
                self.header_len = Some(h.len);
                self.head = Vec::new();
                if let Some(len) = self.len
                    && let Some(e) = self.length_error(h.len, len)
                {
                    return Err(e);
                }
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err((e.offset, format!("age header: {}", e.what))),
        }
    }

    pub(crate) fn push(&mut self, part: &[u8]) -> std::result::Result<(), CheckError> {
        if self.header_len.is_none() {
            let room = MAX_HEADER_LEN + 1 - self.head.len();
            self.head.extend_from_slice(&part[..part.len().min(room)]);
            // Parse at doubling sizes so a header arriving byte by byte costs linear time.
            if self.head.len() >= self.next_parse || self.len == Some(self.seen + part.len() as u64)
            {
                self.next_parse = (self.head.len() * 2).min(MAX_HEADER_LEN + 1);
                self.try_parse()?;
            }
        }
        self.seen += part.len() as u64;
        Ok(())
    }

    pub(crate) fn finish(&mut self) -> std::result::Result<(), CheckError> {
        if self.header_len.is_none() {
            self.try_parse()?;
        }
        match self.header_len {
            None => Err((
                self.seen,
                "the ciphertext ends inside its age header".into(),
            )),
            Some(h) => match self.length_error(h, self.seen) {
                Some(e) => Err(e),
                None => Ok(()),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Fixed,
    Marker(usize),
    CipherLen,
    Cipher(u64),
    EndMagic,
    Checksum,
    Done,
}

impl State {
    fn field_len(self) -> usize {
        match self {
            State::Fixed => FIXED_LEN,
            State::Marker(m) => m,
            State::CipherLen | State::EndMagic => 8,
            State::Checksum => 32,
            State::Cipher(_) | State::Done => 0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            State::Fixed => "the fixed header",
            State::Marker(_) => "the marker",
            State::CipherLen => "the ciphertext length",
            State::Cipher(_) => "the ciphertext",
            State::EndMagic => "the end magic",
            State::Checksum => "the checksum",
            State::Done => "nothing",
        }
    }
}

/// A push parser of raw forms: bytes in, ciphertext out, every field checked.
pub(crate) struct RawDecoder {
    path: PathBuf,
    expect: Option<Kind>,
    state: State,
    offset: u64,
    field: Vec<u8>,
    hasher: blake3::Hasher,
    kind: Option<Kind>,
    marker: Option<Marker>,
    check: Option<CipherCheck>,
    cipher_start: u64,
    cipher_len: u64,
}

impl RawDecoder {
    pub(crate) fn new(path: &Path, expect: Option<Kind>) -> RawDecoder {
        RawDecoder {
            path: path.to_path_buf(),
            expect,
            state: State::Fixed,
            offset: 0,
            field: Vec::with_capacity(FIXED_LEN),
            hasher: blake3::Hasher::new(),
            kind: None,
            marker: None,
            check: None,
            cipher_start: 0,
            cipher_len: 0,
        }
    }

    fn bad(&self, offset: u64, what: impl Into<String>) -> EfsError {
        EfsError::BadRaw {
            path: self.path.clone(),
            offset,
            what: what.into(),
        }
    }

    pub(crate) fn marker(&self) -> Option<&Marker> {
        self.marker.as_ref()
    }

    /// Feeds bytes; ciphertext bytes go to `sink` once everything before them checked out.
    pub(crate) fn push(
        &mut self,
        mut data: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        while !data.is_empty() {
            match self.state {
                State::Done => {
                    return Err(self.bad(self.offset, "bytes after the end of the raw form"));
                }
                State::Cipher(remaining) => {
                    let n = (data.len() as u64).min(remaining) as usize;
                    let part = &data[..n];
                    self.hasher.update(part);
                    if let Some(check) = self.check.as_mut()
                        && let Err((at, what)) = check.push(part)
                    {
                        return Err(self.bad(self.cipher_start + at, what));
                    }
                    sink(part)?;
                    self.offset += n as u64;
                    data = &data[n..];
                    self.state = State::Cipher(remaining - n as u64);
                    if remaining == n as u64 {
                        self.end_cipher()?;
                    }
                }
                state => {
                    let need = state.field_len() - self.field.len();
                    let take = need.min(data.len());
                    self.field.extend_from_slice(&data[..take]);
                    if state != State::Checksum {
                        self.hasher.update(&data[..take]);
                    }
                    self.offset += take as u64;
                    data = &data[take..];
                    if self.field.len() == state.field_len() {
                        let start = self.offset - self.field.len() as u64;
                        let field = std::mem::take(&mut self.field);
                        self.complete(state, &field, start)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn end_cipher(&mut self) -> Result<()> {
        if let Some(check) = self.check.as_mut()
            && let Err((at, what)) = check.finish()
        {
            return Err(self.bad(self.cipher_start + at, what));
        }
        self.state = State::EndMagic;
        Ok(())
    }

    fn complete(&mut self, state: State, f: &[u8], start: u64) -> Result<()> {
        match state {
            State::Fixed => {
                if &f[..8] != RAW_MAGIC {
                    return Err(self.bad(0, "not a reel raw form (bad magic; expected REELEFSR)"));
                }
                let version = u16::from_be_bytes([f[8], f[9]]);
                if version != RAW_VERSION {
                    return Err(self.bad(
                        8,
                        format!("raw form version {version} is not known (this reel reads {RAW_VERSION})"),
                    ));
                }
                let kind = Kind::from_code(f[10])
                    .ok_or_else(|| self.bad(10, format!("unknown kind {}", f[10])))?;
                if let Some(expect) = self.expect
                    && expect != kind
                {
                    return Err(self.bad(
                        10,
                        match kind {
                            Kind::Directory => {
                                "the raw form is of a directory; import it with CREATE_FOR_DIR"
                            }
                            Kind::File => "the raw form is of a file, but CREATE_FOR_DIR was given",
                        },
                    ));
                }
                if f[11] != 0 {
                    return Err(self.bad(11, "reserved byte is not 0"));
                }
                let m = u32::from_be_bytes([f[12], f[13], f[14], f[15]]) as usize;
                if m == 0 || m > MAX_MARKER_LEN {
                    return Err(
                        self.bad(12, format!("marker length {m} is out of range (1..=65536)"))
                    );
                }
                self.kind = Some(kind);
                self.state = State::Marker(m);
            }
            State::Marker(_) => {
                let marker = Marker::decode(f)
                    .map_err(|e| self.bad(start + e.offset, format!("marker: {}", e.what)))?;
                if Some(marker.kind) != self.kind {
                    return Err(
                        self.bad(start + 5, "the marker's kind differs from the raw form's")
                    );
                }
                self.marker = Some(marker);
                self.state = State::CipherLen;
            }
            State::CipherLen => {
                let mut b = [0u8; 8];
                b.copy_from_slice(f);
                let c = u64::from_be_bytes(b);
                let marker = self
                    .marker
                    .as_ref()
                    .ok_or_else(|| self.bad(start, "no marker"))?;
                self.cipher_start = start + 8;
                self.cipher_len = c;
                match marker.kind {
                    Kind::Directory if c != 0 => {
                        return Err(self.bad(start, "a directory's raw form with ciphertext"));
                    }
                    Kind::Directory => self.state = State::EndMagic,
                    Kind::File => {
                        if c == 0 {
                            return Err(self.bad(start, "a file's raw form without ciphertext"));
                        }
                        self.check = Some(CipherCheck::new(marker.plaintext_size, Some(c)));
                        self.state = State::Cipher(c);
                    }
                }
            }
            State::EndMagic => {
                if f != RAW_END_MAGIC {
                    return Err(self.bad(
                        start,
                        "end magic REELEFSE missing: the ciphertext length or the data is wrong",
                    ));
                }
                self.state = State::Checksum;
            }
            State::Checksum => {
                let expected = self.hasher.finalize();
                if f != expected.as_bytes() {
                    return Err(self.bad(
                        start,
                        "BLAKE3 checksum does not match: the raw form was altered or damaged",
                    ));
                }
                self.state = State::Done;
            }
            State::Cipher(_) | State::Done => {}
        }
        Ok(())
    }

    /// Ends the input: the raw form must be complete.
    pub(crate) fn finish(&self) -> Result<()> {
        if self.state == State::Done {
            Ok(())
        } else {
            Err(EfsError::RawTruncated {
                path: self.path.clone(),
                offset: self.offset,
                field: self.state.name(),
            })
        }
    }
}

/// What an import produced.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub path: PathBuf,
    pub kind: Kind,
    pub plaintext_size: u64,
    pub ciphertext_len: u64,
    /// Bytes of raw form read (0 for [`RawImport::import_parts`]).
    pub raw_len: u64,
    /// True when an existing entry was replaced.
    pub replaced: bool,
}

enum Target {
    File {
        tmp: Replacement,
        out: BufWriter<File>,
    },
    Directory,
}

/// A target opened for import (OpenEncryptedFileRaw with CREATE_FOR_IMPORT).
///
/// Dropping it before [`RawImport::finish`] (CloseEncryptedFileRaw without success) removes
/// everything it wrote; nothing ever appears under the final name until all checks pass.
pub struct RawImport {
    path: PathBuf,
    flags: RawFlags,
    existed: bool,
    target: Target,
    decoder: RawDecoder,
    read: u64,
}

impl std::fmt::Debug for RawImport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawImport")
            .field("path", &self.path)
            .field("flags", &self.flags)
            .field("existed", &self.existed)
            .field("read", &self.read)
            .finish()
    }
}

impl std::fmt::Debug for RawExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawExport")
            .field("path", &self.path)
            .field("kind", &self.marker.kind)
            .field("ciphertext_len", &self.ciphertext_len)
            .finish()
    }
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.as_encoded_bytes().first() == Some(&b'.'))
}

impl RawImport {
    /// Opens `path` for import. `flags` must hold `CREATE_FOR_IMPORT`, and `CREATE_FOR_DIR`
    /// for a directory. An existing entry is refused unless `OVERWRITE` (or, for a hidden
    /// name, `OVERWRITE_HIDDEN`) allows replacing it.
    pub fn create(path: &Path, flags: RawFlags) -> Result<RawImport> {
        let flags = RawFlags::from_bits(flags.bits())?;
        if !flags.contains(RawFlags::CREATE_FOR_IMPORT) {
            return Err(EfsError::InvalidFlags(
                "an import needs CREATE_FOR_IMPORT (flags 0 open for export)".into(),
            ));
        }
        let dir = flags.contains(RawFlags::CREATE_FOR_DIR);
        let existed = match path.symlink_metadata() {
            Ok(meta) => {
                let (allowed, hint) = if is_hidden(path) {
                    (
                        flags.contains(RawFlags::OVERWRITE_HIDDEN),
                        "it is hidden; pass OVERWRITE_HIDDEN (import-raw --overwrite-hidden) to replace it",
                    )
                } else {
                    (
                        flags.contains(RawFlags::OVERWRITE),
                        "pass OVERWRITE (import-raw --overwrite) to replace it",
                    )
                };
                if !allowed {
                    return Err(EfsError::Exists {
                        path: path.to_path_buf(),
                        hint,
                    });
                }
                if dir != meta.is_dir() {
                    return Err(EfsError::Refused {
                        path: path.to_path_buf(),
                        what: if dir {
                            "exists and is not a directory; remove it to import a directory there"
                                .into()
                        } else {
                            "is a directory; a file cannot replace it".into()
                        },
                    });
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(EfsError::io(path, e)),
        };
        let target = if dir {
            Target::Directory
        } else {
            let tmp = Replacement::beside(path)?;
            let out = tmp
                .file()
                .try_clone()
                .map_err(|e| EfsError::io(tmp.path(), e))?;
            Target::File {
                tmp,
                out: BufWriter::with_capacity(CHUNK, out),
            }
        };
        Ok(RawImport {
            path: path.to_path_buf(),
            flags,
            existed,
            target,
            decoder: RawDecoder::new(path, Some(if dir { Kind::Directory } else { Kind::File })),
            read: 0,
        })
    }

    /// Feeds raw-form bytes.
    fn push(&mut self, data: &[u8]) -> Result<()> {
        self.read += data.len() as u64;
        let path = &self.path;
        match &mut self.target {
            Target::File { out, .. } => self.decoder.push(data, &mut |part| {
                out.write_all(part).map_err(|e| EfsError::io(path, e))
            }),
            Target::Directory => self.decoder.push(data, &mut |_| {
                Err(EfsError::BadRaw {
                    path: path.clone(),
                    offset: 0,
                    what: "ciphertext in a directory's raw form".into(),
                })
            }),
        }
    }

    /// WriteEncryptedFileRaw: pulls the raw form from `callback` (which fills the buffer and
    /// returns how much it put there, 0 at the end), checks it and commits the file.
    pub fn import(
        mut self,
        mut callback: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> Result<ImportSummary> {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = callback(&mut buf).map_err(EfsError::Callback)?;
            if n == 0 {
                break;
            }
            let Some(data) = buf.get(..n) else {
                return Err(EfsError::Callback(io::Error::other(format!(
                    "the import callback claimed {n} bytes in a {}-byte buffer",
                    buf.len()
                ))));
            };
            self.push(data)?;
        }
        self.finish()
    }

    /// Imports the raw form read from `reader`.
    pub fn import_from(self, mut reader: impl Read) -> Result<ImportSummary> {
        self.import(|buf| {
            loop {
                match reader.read(buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    other => return other,
                }
            }
        })
    }

    /// A writer taking the raw form; call [`RawImportWriter::finish`] at the end.
    pub fn writer(self) -> RawImportWriter {
        RawImportWriter { import: self }
    }

    /// CloseEncryptedFileRaw after a complete import: checks the end of the raw form, sets
    /// the marker, syncs, and renames into place (never over an entry that appeared meanwhile
    /// unless overwriting was allowed).
    pub fn finish(self) -> Result<ImportSummary> {
        self.decoder.finish()?;
        let marker = self
            .decoder
            .marker()
            .cloned()
            .ok_or_else(|| EfsError::RawTruncated {
                path: self.path.clone(),
                offset: 0,
                field: "the marker",
            })?;
        let read = self.read;
        let ciphertext_len = self.decoder.cipher_len;
        self.commit(&marker, ciphertext_len, read)
    }

    fn commit(self, marker: &Marker, ciphertext_len: u64, raw_len: u64) -> Result<ImportSummary> {
        let RawImport {
            path,
            flags: _,
            existed,
            target,
            ..
        } = self;
        match target {
            Target::File { tmp, mut out } => {
                out.flush().map_err(|e| EfsError::io(&path, e))?;
                set_marker(tmp.file(), &path, marker)?;
                tmp.commit(if existed {
                    Commit::Replace
                } else {
                    Commit::NoClobber
                })?;
            }
            Target::Directory => import_directory(&path, existed, marker)?,
        }
        Ok(ImportSummary {
            path,
            kind: marker.kind,
            plaintext_size: marker.plaintext_size,
            ciphertext_len,
            raw_len,
            replaced: existed,
        })
    }

    /// Recreates an encrypted file from its marker and ciphertext kept apart, as a backup
    /// archive keeps them (marker in a pax key, ciphertext as the entry data). The same
    /// checks apply: the age header parses and the length fits the marker. For a directory
    /// marker `ciphertext` must be empty.
    pub fn import_parts(
        mut self,
        marker: &Marker,
        mut ciphertext: impl Read,
    ) -> Result<ImportSummary> {
        let expected = if self.flags.contains(RawFlags::CREATE_FOR_DIR) {
            Kind::Directory
        } else {
            Kind::File
        };
        if marker.kind != expected {
            return Err(EfsError::InvalidFlags(format!(
                "{}: the marker is of a {:?} but the flags open a {:?}",
                self.path.display(),
                marker.kind,
                expected
            )));
        }
        let mut check = CipherCheck::new(marker.plaintext_size, None);
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match ciphertext.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(EfsError::io(&self.path, e)),
            };
            let part = &buf[..n];
            match &mut self.target {
                Target::Directory => {
                    return Err(EfsError::Refused {
                        path: self.path.clone(),
                        what: "a directory marker comes with no data".into(),
                    });
                }
                Target::File { out, .. } => {
                    if let Err((at, what)) = check.push(part) {
                        return Err(EfsError::BadHeader {
                            path: self.path.clone(),
                            offset: at,
                            what,
                        });
                    }
                    out.write_all(part)
                        .map_err(|e| EfsError::io(&self.path, e))?;
                }
            }
            total += n as u64;
        }
        if matches!(self.target, Target::File { .. })
            && let Err((at, what)) = check.finish()
        {
            return Err(EfsError::SizeMismatch {
                path: self.path.clone(),
                what: format!("byte {at}: {what}"),
            });
        }
        self.commit(marker, total, 0)
    }
}

fn import_directory(path: &Path, existed: bool, marker: &Marker) -> Result<()> {
    let set_on = |dir: &Path| -> Result<()> {
        let handle = File::open(dir).map_err(|e| EfsError::io(dir, e))?;
        set_marker(&handle, path, marker)?;
        handle.sync_all().map_err(|e| EfsError::io(dir, e))
    };
    if existed {
        return set_on(path);
    }
    let parent = parent_of(path);
    let tmp = tempfile::Builder::new()
        .prefix(".reel-efs-")
        .suffix(".tmp")
        .tempdir_in(parent)
        .map_err(|e| EfsError::io(parent, e))?;
    set_on(tmp.path())?;
    rustix::fs::renameat_with(
        rustix::fs::CWD,
        tmp.path(),
        rustix::fs::CWD,
        path,
        rustix::fs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| {
        if e == rustix::io::Errno::EXIST {
            EfsError::Exists {
                path: path.to_path_buf(),
                hint: "it appeared while reel was importing; nothing was replaced",
            }
        } else {
            EfsError::io(path, e.into())
        }
    })?;
    // Renamed: the temp name is gone, so keep TempDir from removing anything.
    let _ = tmp.keep();
    sync_dir(parent)
}

/// A [`Write`] taking a raw form for import (the pushing side of WriteEncryptedFileRaw).
pub struct RawImportWriter {
    import: RawImport,
}

impl Write for RawImportWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.import.push(buf).map_err(io::Error::other)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl RawImportWriter {
    /// Checks the end of the raw form and commits (see [`RawImport::finish`]).
    pub fn finish(self) -> Result<ImportSummary> {
        self.import.finish()
    }
}

/// Checks a whole raw form from `reader` without writing anything; returns its marker and
/// ciphertext length.
pub fn verify_raw(reader: impl Read, name: &Path) -> Result<(Marker, u64)> {
    let mut decoder = RawDecoder::new(name, None);
    let mut reader = reader;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(EfsError::io(name, e)),
        };
        decoder.push(&buf[..n], &mut |_| Ok(()))?;
    }
    decoder.finish()?;
    let marker = decoder
        .marker()
        .cloned()
        .ok_or_else(|| EfsError::RawTruncated {
            path: name.to_path_buf(),
            offset: 0,
            field: "the marker",
        })?;
    Ok((marker, decoder.cipher_len))
}

/// Builds a raw form in memory from parts (for tests and tools; export streams instead).
pub fn encode_raw(
    marker: &Marker,
    ciphertext: &[u8],
) -> std::result::Result<Vec<u8>, marker::MarkerError> {
    let m = marker.encode()?;
    let mut out = Vec::with_capacity(64 + m.len() + ciphertext.len());
    out.extend_from_slice(RAW_MAGIC);
    out.extend_from_slice(&RAW_VERSION.to_be_bytes());
    out.push(marker.kind.code());
    out.push(0);
    out.extend_from_slice(&(m.len() as u32).to_be_bytes());
    out.extend_from_slice(&m);
    out.extend_from_slice(&(ciphertext.len() as u64).to_be_bytes());
    out.extend_from_slice(ciphertext);
    out.extend_from_slice(RAW_END_MAGIC);
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{Stanza, X25519_TAG, encode};
    use crate::marker::{Entry, Role};
    use proptest::prelude::*;

    /// A structurally valid age file (random "ciphertext") of `plaintext` bytes.
    fn fake_age(stanzas: usize, plaintext: u64, seed: u8) -> Vec<u8> {
        let list: Vec<Stanza> = (0..stanzas)
            .map(|i| Stanza::new(X25519_TAG.into(), vec![format!("s{i}")], vec![seed; 32]))
            .collect();
        let mut out = encode(&list, &[seed; 16]);
        let payload = header::payload_len(plaintext) as usize;
        out.extend((0..payload).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
        out
    }

    fn decode_all(raw: &[u8], splits: &[usize]) -> Result<(Marker, Vec<u8>)> {
        let mut d = RawDecoder::new(Path::new("<test>"), None);
        let mut out = Vec::new();
        let mut rest = raw;
        for &s in splits {
            let (a, b) = rest.split_at(s.min(rest.len()));
            d.push(a, &mut |p| {
                out.extend_from_slice(p);
                Ok(())
            })?;
            rest = b;
        }
        d.push(rest, &mut |p| {
            out.extend_from_slice(p);
            Ok(())
        })?;
        d.finish()?;
        Ok((d.marker().cloned().unwrap(), out))
    }

    fn sample_marker(plaintext: u64) -> Marker {
        Marker::file(
            plaintext,
            vec![Entry {
                role: Role::User,
                stanza: Some(0),
                recipient: "age1example".into(),
                name: "alice".into(),
            }],
        )
    }

    #[test]
    fn round_trip_and_offsets() {
        let ct = fake_age(2, 1000, 3);
        let raw = encode_raw(&sample_marker(1000), &ct).unwrap();
        let (m, out) = decode_all(&raw, &[3, 17, 100]).unwrap();
        assert_eq!(m, sample_marker(1000));
        assert_eq!(out, ct);

        // Wrong plaintext size in the marker: caught at the ciphertext's header, with offset.
        let raw = encode_raw(&sample_marker(999), &ct).unwrap();
        let err = decode_all(&raw, &[]).unwrap_err();
        assert!(matches!(err, EfsError::BadRaw { .. }), "{err}");

        // Truncated inside the ciphertext.
        let raw = encode_raw(&sample_marker(1000), &ct).unwrap();
        let err = decode_all(&raw[..raw.len() - 100], &[]).unwrap_err();
        match err {
            EfsError::RawTruncated { offset, field, .. } => {
                assert_eq!(offset, raw.len() as u64 - 100);
                assert_eq!(field, "the ciphertext");
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn directory_form() {
        let m = Marker::directory(vec![]);
        let raw = encode_raw(&m, &[]).unwrap();
        assert_eq!(peek_kind(&raw), Some(Kind::Directory));
        let (back, out) = decode_all(&raw, &[]).unwrap();
        assert_eq!(back, m);
        assert!(out.is_empty());
    }

    proptest! {
        #[test]
        fn raw_round_trips(stanzas in 1usize..4, plaintext in 0u64..200_000, seed in any::<u8>(), splits in prop::collection::vec(0usize..70_000, 0..6)) {
            let ct = fake_age(stanzas, plaintext, seed);
            let m = sample_marker(plaintext);
            let raw = encode_raw(&m, &ct).unwrap();
            let (back, out) = decode_all(&raw, &splits).unwrap();
            prop_assert_eq!(back, m);
            prop_assert_eq!(out, ct);
        }

        #[test]
        fn every_truncation_fails(plaintext in 0u64..3000, cut in any::<prop::sample::Index>()) {
            let raw = encode_raw(&sample_marker(plaintext), &fake_age(1, plaintext, 1)).unwrap();
            let at = cut.index(raw.len());
            prop_assert!(decode_all(&raw[..at], &[]).is_err());
        }

        #[test]
        fn every_bit_flip_fails(plaintext in 0u64..3000, at in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut raw = encode_raw(&sample_marker(plaintext), &fake_age(1, plaintext, 2)).unwrap();
            let i = at.index(raw.len());
            raw[i] ^= 1 << bit;
            prop_assert!(decode_all(&raw, &[]).is_err());
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..600), with_magic in any::<bool>()) {
            let mut raw = if with_magic { RAW_MAGIC.to_vec() } else { Vec::new() };
            raw.extend_from_slice(&data);
            let _ = decode_all(&raw, &[7]);
        }

        #[test]
        fn extra_bytes_fail(plaintext in 0u64..2000, extra in prop::collection::vec(any::<u8>(), 1..20)) {
            let mut raw = encode_raw(&sample_marker(plaintext), &fake_age(1, plaintext, 4)).unwrap();
            raw.extend_from_slice(&extra);
            prop_assert!(decode_all(&raw, &[]).is_err());
        }
    }
}
