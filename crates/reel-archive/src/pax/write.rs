//! Streaming POSIX.1-2001 pax writer.
//!
//! reel writes its own pax rather than using the `tar` crate's builder because a set needs
//! things that builder does not give while streaming: pax-only extensions (it falls back to
//! GNU `././@LongLink` for long names), nanosecond times and vendor keys on every member,
//! and the exact byte offset of every header, which the set index records so that a restore
//! can seek straight to one file.

use std::io::{self, Read, Write};

use reel_stream::FileKind;

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
        let meta = &entry.meta;
        let mut records: Vec<u8> = Vec::new();
        let mut binary = false;
        let mut block = [0u8; BLOCK];

        let mut name = entry.path.clone();
        if meta.kind == FileKind::Directory && entry.hardlink.is_none() && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let sparse_map = if entry.is_sparse() {
            meta.sparse.as_ref()
        } else {
            None
        };
        if sparse_map.is_some() {
            // GNU sparse 1.0: the real name in GNU.sparse.name, a stand-in in the header.
            binary |= std::str::from_utf8(&name).is_err();
            push_pax_record(&mut records, sparse::MAJOR, b"1");
            push_pax_record(&mut records, sparse::MINOR, b"0");
            push_pax_record(&mut records, sparse::NAME, &name);
            push_pax_record(
                &mut records,
                sparse::REALSIZE,
                meta.size.to_string().as_bytes(),
            );
            name = sparse_stand_in(&name);
        }
        let fits = is_plain_ascii(&name)
            .then(|| header::split_ustar_name(&name))
            .flatten();
        match fits {
            Some((prefix, base)) => {
                header::put_bytes(&mut block, field::PREFIX, prefix);
                header::put_bytes(&mut block, field::NAME, base);
            }
            None if sparse_map.is_some() => {
                header::put_bytes(&mut block, field::NAME, &ascii_stub(&name, 100));
            }
            None => {
                binary |= std::str::from_utf8(&name).is_err();
                push_pax_record(&mut records, "path", &name);
                let short = ascii_stub(&name, 100);
                header::put_bytes(&mut block, field::NAME, &short);
            }
        }

        let link: Option<Vec<u8>> = match (&entry.hardlink, &meta.symlink_target) {
            (Some(h), _) => Some(h.clone()),
            (None, Some(t)) if meta.kind == FileKind::Symlink => {
                Some(std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()).to_vec())
            }
            _ => None,
        };
        if let Some(link) = &link {
            if link.len() <= 100 && is_plain_ascii(link) {
                header::put_bytes(&mut block, field::LINKNAME, link);
            } else {
                binary |= std::str::from_utf8(link).is_err();
                push_pax_record(&mut records, "linkpath", link);
                header::put_bytes(&mut block, field::LINKNAME, &ascii_stub(link, 100));
            }
        }

        header::put_octal(&mut block, field::MODE, u64::from(meta.mode & 0o7777));
        for (f, id, key) in [(field::UID, meta.uid, "uid"), (field::GID, meta.gid, "gid")] {
            header::put_number(&mut block, f, i64::from(id));
            if id > MAX_OCTAL_ID {
                push_pax_record(&mut records, key, id.to_string().as_bytes());
            }
        }
        let size = entry.data_len();
        header::put_number(&mut block, field::SIZE, size as i64);
        if size > MAX_OCTAL_SIZE {
            push_pax_record(&mut records, "size", size.to_string().as_bytes());
        }
        header::put_number(&mut block, field::MTIME, meta.mtime.secs);
        let exact_times = meta.mtime.nanos != 0
            || meta.mtime.secs < 0
            || meta.mtime.secs as u64 > MAX_OCTAL_SIZE
            || !records.is_empty();
        if exact_times {
            let mut text = Vec::with_capacity(32);
            for (key, t) in [
                ("mtime", meta.mtime),
                ("atime", meta.atime),
                ("ctime", meta.ctime),
            ] {
                text.clear();
                t.push_decimal(&mut text);
                push_pax_record(&mut records, key, &text);
            }
        }

        block[field::TYPEFLAG] = if entry.hardlink.is_some() {
            kind::HARDLINK
        } else {
            match meta.kind {
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
        header::put_bytes(&mut block, field::MAGIC, b"ustar\0");
        header::put_bytes(&mut block, field::VERSION, b"00");
        for (f, value, key) in [
            (field::UNAME, &meta.user, "uname"),
            (field::GNAME, &meta.group, "gname"),
        ] {
            if let Some(v) = value {
                if v.len() <= 32 && is_plain_ascii(v.as_bytes()) {
                    header::put_bytes(&mut block, f, v.as_bytes());
                } else {
                    push_pax_record(&mut records, key, v.as_bytes());
                }
            }
        }
        if let Some((major, minor)) = meta.rdev {
            for (f, v, key) in [
                (field::DEVMAJOR, major, "SCHILY.devmajor"),
                (field::DEVMINOR, minor, "SCHILY.devminor"),
            ] {
                if !header::put_octal(&mut block, f, u64::from(v)) {
                    push_pax_record(&mut records, key, v.to_string().as_bytes());
                }
            }
        }
        for (key, value) in facts::records_of(meta) {
            push_pax_record(&mut records, &key, &value);
        }
        for (key, value) in &entry.extra {
            push_pax_record(&mut records, key, value);
        }
        if binary {
            let mut with_charset = pax_record("hdrcharset", b"BINARY");
            with_charset.extend(records);
            records = with_charset;
        }
        header::set_checksum(&mut block);

        if !records.is_empty() {
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
            header::put_number(&mut xh, field::MTIME, meta.mtime.secs.max(0));
            xh[field::TYPEFLAG] = kind::PAX_LOCAL;
            header::put_bytes(&mut xh, field::MAGIC, b"ustar\0");
            header::put_bytes(&mut xh, field::VERSION, b"00");
            header::set_checksum(&mut xh);
            self.put(&xh)?;
            self.put(&records)?;
            self.pad_to_block(records.len() as u64)?;
        }
        self.put(&block)?;
        self.owed = size;
        self.data_written = 0;
        self.extents.clear();
        self.extent_left = 0;
        if let Some(map) = sparse_map {
            // The map opens the data area (already a whole number of blocks).
            let map_block = sparse::map_block(map, meta.size);
            self.put(&map_block)?;
            self.extents = map
                .extents
                .iter()
                .map(|e| e.len)
                .filter(|l| *l > 0)
                .collect();
            self.extent_left = self.extents.front().copied().unwrap_or(0);
            self.owed = map.data_len();
        }
        Ok(start)
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
