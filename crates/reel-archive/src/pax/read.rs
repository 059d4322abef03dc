//! Streaming tar reader for pax, ustar and the common GNU extensions.
//!
//! Reads members one at a time from any `Read`, never holding content in memory, and
//! names the byte offset of every problem. Handles pax local and global headers, GNU long
//! names and long links, GNU base-256 numbers and old (v7) headers.

use std::ffi::OsString;
use std::io::{self, Read};
use std::os::unix::ffi::OsStringExt;

use reel_stream::{FileKind, FileMeta, NameCache, Timestamp};

use crate::entry::Entry;
use crate::error::{ArchiveError, Result};
use crate::pax::header::{self, BLOCK, field, kind};
use crate::pax::{facts, sparse};

/// Largest pax or GNU long-name header content accepted (bounded memory).
pub const MAX_META_LEN: u64 = 64 << 20;

/// A member as read, with where it is.
#[derive(Debug, Clone)]
pub struct ReadEntry {
    pub entry: Entry,
    /// Offset of the member's first header block (pax or GNU headers included).
    pub header_offset: u64,
    /// Offset of its content.
    pub data_offset: u64,
}

/// Reads tar members from `R`.
pub struct PaxReader<R: Read> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
    /// Lengths of the data extents still to read of a sparse member (each padded to a
    /// block in the archive); the first one is being read, `extent_left` bytes of it.
    extents: std::collections::VecDeque<u64>,
    extent_left: u64,
    /// Padding of those extents not yet skipped.
    extent_padding: u64,
    globals: Vec<(String, Vec<u8>)>,
    done: bool,
    current: String,
    names: NameCache,
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
        if len <= space + 1 || pos + len > data.len() {
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
            extents: std::collections::VecDeque::new(),
            extent_left: 0,
            extent_padding: 0,
            globals: Vec::new(),
            done: false,
            current: String::new(),
            names: NameCache::new(),
        }
    }

    /// Starts over at `offset` after the caller moved the inner reader there (a seek to a
    /// member's first header block).
    pub fn reset_at(&mut self, offset: u64) {
        self.offset = offset;
        self.remaining = 0;
        self.padding = 0;
        self.extents.clear();
        self.extent_left = 0;
        self.extent_padding = 0;
        self.done = false;
    }

    /// Offset of the next byte to be read.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads one block; `Ok(false)` at a clean end of input.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool> {
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
            return Err(ArchiveError::Truncated {
                offset: self.offset + got as u64,
                what: "the archive ends inside a header block".into(),
            });
        }
        self.offset += BLOCK as u64;
        Ok(true)
    }

    /// Reads exactly `len` bytes of header content (pax records, long names), with padding.
    fn read_meta(&mut self, len: u64, what: &str) -> Result<Vec<u8>> {
        if len > MAX_META_LEN {
            return Err(ArchiveError::Corrupt {
                offset: self.offset,
                what: format!("{what} of {len} bytes is larger than the {MAX_META_LEN}-byte limit"),
            });
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
        let pad = (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64;
        self.skip_bytes(pad)?;
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

    fn skip_bytes(&mut self, mut n: u64) -> Result<()> {
        let mut scratch = [0u8; 8192];
        let start = self.offset;
        while n > 0 {
            let want = n.min(scratch.len() as u64) as usize;
            match self.inner.read(&mut scratch[..want]) {
                Ok(0) => {
                    return Err(ArchiveError::Truncated {
                        offset: self.offset,
                        what: format!(
                            "the archive ends {} bytes into content that started at byte {start}",
                            self.offset - start
                        ),
                    });
                }
                Ok(k) => {
                    n -= k as u64;
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
        Ok(())
    }

    /// Reads the GNU sparse 1.0 map at the start of the current member's data and leaves
    /// the member's remaining content as its data extents.
    fn read_sparse_map(&mut self, realsize: u64) -> Result<reel_stream::SparseMap> {
        let start = self.offset;
        let mut parser = sparse::MapParser::new();
        let mut block = [0u8; BLOCK];
        loop {
            if self.remaining < BLOCK as u64 {
                return Err(ArchiveError::Corrupt {
                    offset: start,
                    what: "the GNU sparse map does not fit the member's data".into(),
                });
            }
            if self.offset - start > sparse::MAX_READ_EXTENTS as u64 * 40 {
                return Err(ArchiveError::Corrupt {
                    offset: start,
                    what: "the GNU sparse map is too large".into(),
                });
            }
            let at = self.offset;
            if !self.read_block(&mut block)? {
                return Err(ArchiveError::Truncated {
                    offset: at,
                    what: "the archive ends inside a GNU sparse map".into(),
                });
            }
            self.remaining -= BLOCK as u64;
            let done = parser
                .feed(&block)
                .map_err(|what| ArchiveError::Corrupt { offset: at, what })?;
            if done {
                break;
            }
        }
        let map = parser
            .finish(realsize)
            .map_err(|what| ArchiveError::Corrupt {
                offset: start,
                what,
            })?;
        let padded = sparse::padded_data_len(&map);
        if padded != self.remaining {
            return Err(ArchiveError::Corrupt {
                offset: start,
                what: format!(
                    "the GNU sparse map lists {} bytes of data ({padded} in whole blocks) but the member holds {}",
                    map.data_len(),
                    self.remaining
                ),
            });
        }
        self.remaining = map.data_len();
        self.padding = 0;
        self.extents = map
            .extents
            .iter()
            .map(|e| e.len)
            .filter(|l| *l > 0)
            .collect();
        self.extent_left = self.extents.front().copied().unwrap_or(0);
        self.extent_padding = padded - map.data_len();
        Ok(map)
    }

    /// Skips what is left of the current member's content.
    pub fn skip_data(&mut self) -> Result<()> {
        let n = self.remaining + self.padding + self.extent_padding;
        self.remaining = 0;
        self.padding = 0;
        self.extents.clear();
        self.extent_left = 0;
        self.extent_padding = 0;
        self.skip_bytes(n)
    }

    /// Reads content of the current member; 0 at its end.
    pub fn read_data(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let mut want = self.remaining.min(buf.len() as u64) as usize;
        if !self.extents.is_empty() {
            want = want.min(self.extent_left as usize);
        }
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
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
        if n == 0 {
            return Err(ArchiveError::Truncated {
                offset: self.offset,
                what: format!(
                    "the archive ends with {} bytes of {} missing",
                    self.remaining, self.current
                ),
            });
        }
        self.offset += n as u64;
        self.remaining -= n as u64;
        if let Some(&len) = self.extents.front() {
            self.extent_left -= n as u64;
            if self.extent_left == 0 {
                let pad = sparse::padded(len) - len;
                self.extent_padding -= pad;
                self.extents.pop_front();
                self.extent_left = self.extents.front().copied().unwrap_or(0);
                self.skip_bytes(pad)?;
            }
        }
        if self.remaining == 0 {
            let pad = self.padding;
            self.padding = 0;
            self.skip_bytes(pad)?;
        }
        Ok(n)
    }

    /// Bytes of content left in the current member.
    pub fn data_remaining(&self) -> u64 {
        self.remaining
    }

    /// Reads the next member's headers; `None` at the end of the archive. Content the
    /// caller did not read is skipped.
    pub fn next_entry(&mut self) -> Result<Option<ReadEntry>> {
        if self.done {
            return Ok(None);
        }
        self.skip_data()?;
        let header_offset = self.offset;
        let mut local: Vec<(String, Vec<u8>)> = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let at = self.offset;
            if !self.read_block(&mut block)? {
                // End of input without the end-of-archive blocks: accept at a member boundary.
                self.done = true;
                if !local.is_empty() || long_name.is_some() || long_link.is_some() {
                    return Err(ArchiveError::Truncated {
                        offset: at,
                        what: "the archive ends after an extended header, before its member".into(),
                    });
                }
                return Ok(None);
            }
            if block.iter().all(|b| *b == 0) {
                self.done = true;
                return Ok(None);
            }
            let (unsigned, signed) = header::checksum(&block);
            let recorded = header::get_number(&block, field::CHKSUM).map_err(|what| {
                ArchiveError::Corrupt {
                    offset: at,
                    what: format!("header checksum field: {what}"),
                }
            })?;
            if recorded != unsigned as i64 && recorded != signed {
                return Err(ArchiveError::Corrupt {
                    offset: at,
                    what: format!(
                        "header checksum mismatch (recorded {recorded:o}, computed {unsigned:o}): not a tar header"
                    ),
                });
            }
            let num = |f: (usize, usize), name: &str| {
                header::get_number(&block, f).map_err(|what| ArchiveError::Corrupt {
                    offset: at,
                    what: format!("{name} field: {what}"),
                })
            };
            let size = num(field::SIZE, "size")?;
            if size < 0 {
                return Err(ArchiveError::Corrupt {
                    offset: at,
                    what: format!("negative size {size}"),
                });
            }
            let size = size as u64;
            let flag = block[field::TYPEFLAG];
            match flag {
                kind::PAX_LOCAL => {
                    let data = self.read_meta(size, "pax extended header")?;
                    local.extend(parse_pax_records(&data, at + BLOCK as u64)?);
                    continue;
                }
                kind::PAX_GLOBAL => {
                    let data = self.read_meta(size, "pax global header")?;
                    for (k, v) in parse_pax_records(&data, at + BLOCK as u64)? {
                        self.globals.retain(|(gk, _)| *gk != k);
                        self.globals.push((k, v));
                    }
                    continue;
                }
                kind::GNU_LONGNAME | kind::GNU_LONGLINK => {
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
                _ => {}
            }
            let posix = header::get_bytes(&block, field::MAGIC) == b"ustar";
            let mut path = long_name.take().unwrap_or_else(|| {
                let name = header::get_bytes(&block, field::NAME).to_vec();
                let prefix = header::get_bytes(&block, field::PREFIX);
                if posix && !prefix.is_empty() {
                    [prefix, b"/", &name].concat()
                } else {
                    name
                }
            });
            let mut link = long_link
                .take()
                .unwrap_or_else(|| header::get_bytes(&block, field::LINKNAME).to_vec());
            let file_kind = match flag {
                kind::REGULAR | kind::REGULAR_OLD | kind::CONTIGUOUS | kind::HARDLINK => {
                    FileKind::Regular
                }
                kind::SYMLINK => FileKind::Symlink,
                kind::CHAR => FileKind::CharDevice,
                kind::BLOCK => FileKind::BlockDevice,
                kind::DIRECTORY | kind::GNU_DUMPDIR => FileKind::Directory,
                kind::FIFO => FileKind::Fifo,
                other => {
                    return Err(ArchiveError::Corrupt {
                        offset: at,
                        what: format!("unsupported member type {:?}", other as char),
                    });
                }
            };
            let mut file_kind = file_kind;
            if flag == kind::REGULAR_OLD && path.ends_with(b"/") {
                file_kind = FileKind::Directory;
            }
            let mode = num(field::MODE, "mode")?;
            let mut meta = FileMeta::new(file_kind, (mode & 0o7777) as u32);
            meta.uid = num(field::UID, "uid")? as u32;
            meta.gid = num(field::GID, "gid")? as u32;
            meta.mtime = Timestamp::new(num(field::MTIME, "mtime")?, 0);
            let uname = header::get_bytes(&block, field::UNAME);
            let gname = header::get_bytes(&block, field::GNAME);
            if posix || !uname.is_empty() {
                meta.user =
                    (!uname.is_empty()).then(|| String::from_utf8_lossy(uname).into_owned());
                meta.group =
                    (!gname.is_empty()).then(|| String::from_utf8_lossy(gname).into_owned());
            }
            if matches!(file_kind, FileKind::CharDevice | FileKind::BlockDevice) {
                meta.rdev = Some((
                    num(field::DEVMAJOR, "devmajor")? as u32,
                    num(field::DEVMINOR, "devminor")? as u32,
                ));
            }
            let mut size = size;
            let mut atime = None;
            let mut ctime = None;
            let mut extra = Vec::new();
            let bad = |key: &str, v: &[u8]| ArchiveError::Corrupt {
                offset: header_offset,
                what: format!(
                    "pax record {key}={:?} is malformed",
                    String::from_utf8_lossy(v)
                ),
            };
            let records: Vec<(String, Vec<u8>)> =
                self.globals.iter().cloned().chain(local).collect();
            let mut sparse_major: Option<Vec<u8>> = None;
            let mut sparse_name: Option<Vec<u8>> = None;
            let mut sparse_realsize: Option<u64> = None;
            for (key, value) in records {
                match key.as_str() {
                    sparse::MAJOR => sparse_major = Some(value),
                    sparse::MINOR => {}
                    sparse::NAME => sparse_name = Some(value),
                    sparse::REALSIZE => {
                        sparse_realsize = Some(
                            text(&value)
                                .and_then(|t| t.parse().ok())
                                .ok_or_else(|| bad(&key, &value))?,
                        )
                    }
                    k if sparse::OLD_KEYS.contains(&k) => {
                        return Err(ArchiveError::Corrupt {
                            offset: header_offset,
                            what: format!(
                                "GNU sparse format 0.x ({k}) is not supported; extract this member with GNU tar"
                            ),
                        });
                    }
                    "path" => path = value,
                    "linkpath" => link = value,
                    "size" => {
                        size = text(&value)
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| bad(&key, &value))?;
                    }
                    "uid" => {
                        meta.uid = text(&value)
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| bad(&key, &value))?
                    }
                    "gid" => {
                        meta.gid = text(&value)
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| bad(&key, &value))?
                    }
                    "uname" => meta.user = Some(String::from_utf8_lossy(&value).into_owned()),
                    "gname" => meta.group = Some(String::from_utf8_lossy(&value).into_owned()),
                    "mtime" => {
                        meta.mtime = text(&value)
                            .and_then(Timestamp::parse_decimal)
                            .ok_or_else(|| bad(&key, &value))?;
                    }
                    "atime" => {
                        atime = Some(
                            text(&value)
                                .and_then(Timestamp::parse_decimal)
                                .ok_or_else(|| bad(&key, &value))?,
                        )
                    }
                    "ctime" => {
                        ctime = Some(
                            text(&value)
                                .and_then(Timestamp::parse_decimal)
                                .ok_or_else(|| bad(&key, &value))?,
                        )
                    }
                    "SCHILY.devmajor" | "SCHILY.devminor" => {
                        let v: u32 = text(&value)
                            .and_then(|t| t.parse().ok())
                            .ok_or_else(|| bad(&key, &value))?;
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
                    "hdrcharset" | "charset" | "comment" => {}
                    _ => match facts::take_record(&mut meta, &key, &value, &mut self.names) {
                        Ok(facts::Taken::Applied) => {}
                        Ok(facts::Taken::NotMine) => extra.push((key, value)),
                        Err(what) => {
                            return Err(ArchiveError::Corrupt {
                                offset: header_offset,
                                what,
                            });
                        }
                    },
                }
            }
            meta.atime = atime.unwrap_or(meta.mtime);
            meta.ctime = ctime.unwrap_or(meta.mtime);
            while path.len() > 1 && path.ends_with(b"/") {
                path.pop();
            }
            let hardlink = (flag == kind::HARDLINK).then(|| link.clone());
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
            self.remaining = data_len;
            self.padding = (BLOCK as u64 - data_len % BLOCK as u64) % BLOCK as u64;
            if let Some(major) = sparse_major {
                if major != b"1" || file_kind != FileKind::Regular || hardlink.is_some() {
                    return Err(ArchiveError::Corrupt {
                        offset: header_offset,
                        what: format!(
                            "GNU sparse format {} on a {:?} member is not supported",
                            String::from_utf8_lossy(&major),
                            file_kind
                        ),
                    });
                }
                let realsize = sparse_realsize.ok_or_else(|| ArchiveError::Corrupt {
                    offset: header_offset,
                    what: "GNU sparse member without GNU.sparse.realsize".into(),
                })?;
                if let Some(n) = sparse_name {
                    path = n;
                    while path.len() > 1 && path.ends_with(b"/") {
                        path.pop();
                    }
                }
                let map = self.read_sparse_map(realsize)?;
                meta.size = realsize;
                meta.sparse = Some(map);
            }
            let entry = Entry {
                path,
                meta,
                hardlink,
                extra,
            };
            self.current = entry.display_path();
            return Ok(Some(ReadEntry {
                entry,
                header_offset,
                data_offset: self.offset,
            }));
        }
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
