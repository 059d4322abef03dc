//! Streaming POSIX.1-2001 pax writer.
//!
//! reel writes its own pax rather than using the `tar` crate's builder because a set needs
//! things that builder does not give while streaming: pax-only extensions (it falls back to
//! GNU `././@LongLink` for long names), nanosecond times and vendor keys on every member,
//! and the exact byte offset of every header, which the set index records so that a restore
//! can seek straight to one file.

use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;

use reel_stream::{FileKind, FileMeta, SparseMap};

use crate::entry::Entry;
use crate::pax::header::{self, BLOCK, field, kind};
use crate::pax::{facts, sparse};

/// Largest size the 12-byte octal field holds.
const MAX_OCTAL_SIZE: u64 = 0o777_7777_7777;
/// Largest id the 8-byte octal field holds.
const MAX_OCTAL_ID: u32 = 0o777_7777;

/// Writes tar members in pax format to any `Write`, tracking byte offsets.
pub struct PaxWriter<W: Write> {
    out: W,
    offset: u64,
    /// Bytes of content still owed by the current member.
    owed: u64,
    /// Content bytes written for the current member (for padding).
    data_written: u64,
    /// Lengths of the data extents still to come of a sparse member (each is padded to a
    /// block in the archive), the first one being written.
    extents: std::collections::VecDeque<u64>,
    extent_left: u64,
}

/// How a member's content copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOutcome {
    /// Bytes taken from the source.
    pub copied: u64,
    /// Bytes of zeros written because the source ended early (it shrank while being read).
    pub zero_filled: u64,
}

/// One pax extended-header record: `"<len> <key>=<value>\n"`, where `len` counts the whole
/// record including its own digits.
pub fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    push_pax_record(&mut r, key, value);
    r
}

/// Appends [`pax_record`]'s record to `out`.
pub fn push_pax_record(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    let rest = key.len() + value.len() + 3; // space, '=', newline
    let mut len = rest + 1;
    while len != rest + decimal_len(len) {
        len = rest + decimal_len(len);
    }
    out.reserve(len);
    push_decimal(out, len as u64);
    out.push(b' ');
    out.extend_from_slice(key.as_bytes());
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

/// Digits of `n` in decimal.
fn decimal_len(n: usize) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn is_plain_ascii(b: &[u8]) -> bool {
    b.iter().all(|c| (0x20..0x7F).contains(c))
}

impl<W: Write> PaxWriter<W> {
    pub fn new(out: W) -> Self {
        PaxWriter {
            out,
            offset: 0,
            owed: 0,
            data_written: 0,
            extents: std::collections::VecDeque::new(),
            extent_left: 0,
        }
    }

    /// Bytes written so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad_to_block(&mut self, written: u64) -> io::Result<()> {
        let rem = (written % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    /// Writes the header block(s) of `entry` and returns the offset of the first one. The
    /// member's content (`entry.data_len()` bytes) must follow, through [`Self::write_data`]
    /// or [`Self::copy_data`].
    pub fn write_header(&mut self, entry: &Entry) -> io::Result<u64> {
        if self.owed != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} bytes of the previous member's content are missing",
                    self.owed
                ),
            ));
        }
        let start = self.offset;
        let sparse_map = if entry.is_sparse() {
            entry.meta.sparse.as_ref()
        } else {
            None
        };
        let size = entry.data_len();
        let mut headers = Headers::new();
        headers.put_name(entry, sparse_map.is_some());
        headers.put_link(entry);
        headers.put_numbers(&entry.meta, size);
        headers.put_kind(entry)?;
        headers.put_owner_names(&entry.meta);
        headers.put_device(&entry.meta);
        headers.put_facts(entry);
        headers.finish();
        if !headers.records.is_empty() {
            self.put_pax_header(entry, &headers.records)?;
        }
        self.put(&headers.block)?;
        self.start_content(size);
        if let Some(map) = sparse_map {
            self.start_sparse_content(map, entry.meta.size)?;
        }
        Ok(start)
    }

    /// Writes the pax extended header that carries `records` (before the member's own).
    fn put_pax_header(&mut self, entry: &Entry, records: &[u8]) -> io::Result<()> {
        let mut xh = [0u8; BLOCK];
        let base = entry
            .path
            .rsplit(|b| *b == b'/')
            .find(|c| !c.is_empty())
            .unwrap_or(b"entry");
        let mut xname = b"PaxHeaders/".to_vec();
        xname.extend(ascii_stub(base, 100 - xname.len()));
        header::put_bytes(&mut xh, field::NAME, &xname);
        header::put_octal(&mut xh, field::MODE, 0o644);
        header::put_octal(&mut xh, field::UID, 0);
        header::put_octal(&mut xh, field::GID, 0);
        header::put_number(&mut xh, field::SIZE, records.len() as i64);
        header::put_number(&mut xh, field::MTIME, entry.meta.mtime.secs.max(0));
        xh[field::TYPEFLAG] = kind::PAX_LOCAL;
        header::put_bytes(&mut xh, field::MAGIC, b"ustar\0");
        header::put_bytes(&mut xh, field::VERSION, b"00");
        header::set_checksum(&mut xh);
        self.put(&xh)?;
        self.put(records)?;
        self.pad_to_block(records.len() as u64)
    }

    /// The member's content, `size` bytes, is owed next.
    fn start_content(&mut self, size: u64) {
        self.owed = size;
        self.data_written = 0;
        self.extents.clear();
        self.extent_left = 0;
    }

    /// A GNU sparse 1.0 member's content: its map opens the data area (already a whole
    /// number of blocks), then the extents of `map` are owed, each padded to a block.
    fn start_sparse_content(&mut self, map: &SparseMap, realsize: u64) -> io::Result<()> {
        let map_block = sparse::map_block(map, realsize);
        self.put(&map_block)?;
        self.extents = map
            .extents
            .iter()
            .map(|e| e.len)
            .filter(|l| *l > 0)
            .collect();
        self.extent_left = self.extents.front().copied().unwrap_or(0);
        self.owed = map.data_len();
        Ok(())
    }

    /// Writes part of the current member's content.
    pub fn write_data(&mut self, buf: &[u8]) -> io::Result<()> {
        if buf.len() as u64 > self.owed {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "more content than the header declared",
            ));
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let n = if self.extents.is_empty() {
                rest.len()
            } else {
                (self.extent_left.min(rest.len() as u64)) as usize
            };
            self.put(&rest[..n])?;
            self.owed -= n as u64;
            self.data_written += n as u64;
            rest = &rest[n..];
            if let Some(&len) = self.extents.front() {
                self.extent_left -= n as u64;
                if self.extent_left == 0 {
                    // Each region of a GNU sparse member fills whole blocks.
                    let pad = sparse::padded(len) - len;
                    self.put(&vec![0u8; pad as usize])?;
                    self.data_written += pad;
                    self.extents.pop_front();
                    self.extent_left = self.extents.front().copied().unwrap_or(0);
                }
            }
        }
        if self.owed == 0 {
            self.pad_to_block(self.data_written)?;
        }
        Ok(())
    }

    /// Copies the current member's content from `src`, calling `inspect` on every chunk
    /// (hashing). A source that ends early is zero-filled to the declared size and reported.
    pub fn copy_data(
        &mut self,
        src: &mut dyn Read,
        buf: &mut [u8],
        mut inspect: impl FnMut(&[u8]),
    ) -> io::Result<CopyOutcome> {
        let mut copied = 0u64;
        while self.owed > 0 {
            let want = (self.owed.min(buf.len() as u64)) as usize;
            let n = match src.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            inspect(&buf[..n]);
            self.write_data(&buf[..n])?;
            copied += n as u64;
        }
        let zero_filled = self.owed;
        if zero_filled > 0 {
            let zeros = vec![0u8; (zero_filled.min(1 << 20)) as usize];
            while self.owed > 0 {
                let n = self.owed.min(zeros.len() as u64) as usize;
                self.write_data(&zeros[..n])?;
            }
        }
        Ok(CopyOutcome {
            copied,
            zero_filled,
        })
    }

    /// Ends the archive (two zero blocks) and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        if self.owed != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} bytes of the last member's content are missing",
                    self.owed
                ),
            ));
        }
        self.put(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A member's headers being put together: its ustar header block, and the pax records
/// for what the block cannot hold exactly (they go in an extended header before it).
struct Headers {
    block: [u8; BLOCK],
    records: Vec<u8>,
    /// A name in the records is not UTF-8: they then say `hdrcharset=BINARY`.
    binary: bool,
}

impl Headers {
    fn new() -> Headers {
        Headers {
            block: [0u8; BLOCK],
            records: Vec::new(),
            binary: false,
        }
    }

    fn push_record(&mut self, key: &str, value: &[u8]) {
        push_pax_record(&mut self.records, key, value);
    }

    /// A name or link target that goes in a record (not UTF-8: the records are binary).
    fn push_name_record(&mut self, key: &str, name: &[u8]) {
        self.binary |= std::str::from_utf8(name).is_err();
        self.push_record(key, name);
    }

    /// The member's name: in the name and prefix fields when it fits them, else in a
    /// `path` record with a stand-in in the block. A sparse member's real name goes in
    /// `GNU.sparse.name` and GNU's `GNUSparseFile.0` stand-in in the block.
    fn put_name(&mut self, entry: &Entry, sparse: bool) {
        let mut name = entry.path.clone();
        if entry.meta.kind == FileKind::Directory
            && entry.hardlink.is_none()
            && !name.ends_with(b"/")
        {
            name.push(b'/');
        }
        if sparse {
            self.binary |= std::str::from_utf8(&name).is_err();
            self.push_record(sparse::MAJOR, b"1");
            self.push_record(sparse::MINOR, b"0");
            self.push_record(sparse::NAME, &name);
            self.push_record(sparse::REALSIZE, entry.meta.size.to_string().as_bytes());
            name = sparse_stand_in(&name);
        }
        let fits = is_plain_ascii(&name)
            .then(|| header::split_ustar_name(&name))
            .flatten();
        match fits {
            Some((prefix, base)) => {
                header::put_bytes(&mut self.block, field::PREFIX, prefix);
                header::put_bytes(&mut self.block, field::NAME, base);
            }
            None => {
                if !sparse {
                    self.push_name_record("path", &name);
                }
                header::put_bytes(&mut self.block, field::NAME, &ascii_stub(&name, 100));
            }
        }
    }

    /// The hard link's or the symlink's target: in the link field when it fits, else in a
    /// `linkpath` record.
    fn put_link(&mut self, entry: &Entry) {
        let link: &[u8] = match (&entry.hardlink, &entry.meta.symlink_target) {
            (Some(h), _) => h,
            (None, Some(t)) if entry.meta.kind == FileKind::Symlink => t.as_bytes(),
            _ => return,
        };
        if link.len() <= 100 && is_plain_ascii(link) {
            header::put_bytes(&mut self.block, field::LINKNAME, link);
        } else {
            self.push_name_record("linkpath", link);
            header::put_bytes(&mut self.block, field::LINKNAME, &ascii_stub(link, 100));
        }
    }

    /// Mode, ids, size (`size` bytes of content follow) and times; records for ids and a
    /// size octal cannot hold, and exact times whenever there is an extended header anyway
    /// or the mtime is not whole seconds octal holds.
    fn put_numbers(&mut self, meta: &FileMeta, size: u64) {
        header::put_octal(&mut self.block, field::MODE, u64::from(meta.mode & 0o7777));
        for (f, id, key) in [(field::UID, meta.uid, "uid"), (field::GID, meta.gid, "gid")] {
            header::put_number(&mut self.block, f, i64::from(id));
            if id > MAX_OCTAL_ID {
                self.push_record(key, id.to_string().as_bytes());
            }
        }
        header::put_number(&mut self.block, field::SIZE, size as i64);
        if size > MAX_OCTAL_SIZE {
            self.push_record("size", size.to_string().as_bytes());
        }
        header::put_number(&mut self.block, field::MTIME, meta.mtime.secs);
        let exact_times = meta.mtime.nanos != 0
            || meta.mtime.secs < 0
            || meta.mtime.secs as u64 > MAX_OCTAL_SIZE
            || !self.records.is_empty();
        if exact_times {
            let mut text = Vec::with_capacity(32);
            for (key, t) in [
                ("mtime", meta.mtime),
                ("atime", meta.atime),
                ("ctime", meta.ctime),
            ] {
                text.clear();
                t.push_decimal(&mut text);
                self.push_record(key, &text);
            }
        }
    }

    /// The type flag, magic and version; sockets are refused.
    fn put_kind(&mut self, entry: &Entry) -> io::Result<()> {
        self.block[field::TYPEFLAG] = if entry.hardlink.is_some() {
            kind::HARDLINK
        } else {
            match entry.meta.kind {
                FileKind::Regular => kind::REGULAR,
                FileKind::Directory => kind::DIRECTORY,
                FileKind::Symlink => kind::SYMLINK,
                FileKind::Fifo => kind::FIFO,
                FileKind::CharDevice => kind::CHAR,
                FileKind::BlockDevice => kind::BLOCK,
                FileKind::Socket => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "sockets cannot be archived",
                    ));
                }
            }
        };
        header::put_bytes(&mut self.block, field::MAGIC, b"ustar\0");
        header::put_bytes(&mut self.block, field::VERSION, b"00");
        Ok(())
    }

    fn put_owner_names(&mut self, meta: &FileMeta) {
        for (f, value, key) in [
            (field::UNAME, &meta.user, "uname"),
            (field::GNAME, &meta.group, "gname"),
        ] {
            if let Some(v) = value {
                if v.len() <= 32 && is_plain_ascii(v.as_bytes()) {
                    header::put_bytes(&mut self.block, f, v.as_bytes());
                } else {
                    self.push_record(key, v.as_bytes());
                }
            }
        }
    }

    fn put_device(&mut self, meta: &FileMeta) {
        let Some((major, minor)) = meta.rdev else {
            return;
        };
        for (f, v, key) in [
            (field::DEVMAJOR, major, "SCHILY.devmajor"),
            (field::DEVMINOR, minor, "SCHILY.devminor"),
        ] {
            if !header::put_octal(&mut self.block, f, u64::from(v)) {
                self.push_record(key, v.to_string().as_bytes());
            }
        }
    }

    /// The facts beyond ustar (xattrs, ACLs, flags) and the entry's other records.
    fn put_facts(&mut self, entry: &Entry) {
        for (key, value) in facts::records_of(&entry.meta) {
            self.push_record(&key, &value);
        }
        for (key, value) in &entry.extra {
            self.push_record(key, value);
        }
    }

    /// Says the records' charset when it is not UTF-8, and checksums the block.
    fn finish(&mut self) {
        if self.binary {
            let mut with_charset = pax_record("hdrcharset", b"BINARY");
            with_charset.extend_from_slice(&self.records);
            self.records = with_charset;
        }
        header::set_checksum(&mut self.block);
    }
}

/// `dir/GNUSparseFile.0/name`, the header name GNU tar gives a sparse member.
fn sparse_stand_in(name: &[u8]) -> Vec<u8> {
    let (dir, base) = match name.iter().rposition(|b| *b == b'/') {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (&b"."[..], name),
    };
    [dir, b"/GNUSparseFile.0/", base].concat()
}

/// A printable-ASCII stand-in of at most `max` bytes for readers without pax support.
fn ascii_stub(name: &[u8], max: usize) -> Vec<u8> {
    let mut s: Vec<u8> = name
        .iter()
        .map(|b| if (0x20..0x7F).contains(b) { *b } else { b'_' })
        .collect();
    if s.len() > max {
        s = s.split_off(s.len() - max);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_count_themselves() {
        assert_eq!(pax_record("path", b"a"), b"9 path=a\n");
        // 93 bytes of value: "99 x=…\n" is 99 bytes. One more byte crosses to three digits.
        let r = pax_record("x", &[b'v'; 93]);
        assert_eq!(r.len(), 99);
        assert!(r.starts_with(b"99 x="));
        for n in 0..12_000 {
            let r = pax_record("k", &vec![b'v'; n]);
            let (len, _) = r.split_at(r.iter().position(|b| *b == b' ').unwrap());
            assert_eq!(
                std::str::from_utf8(len).unwrap(),
                r.len().to_string(),
                "{n}"
            );
        }
        let r = pax_record("x", &[b'v'; 94]);
        assert_eq!(r.len(), 101);
        assert!(r.starts_with(b"101 x="));
    }
}
