//! The `BackupWrite`-like writer: re-creates a file from backup streams given in pieces of
//! any size.
//!
//! Content goes straight to a temporary file (bounded memory; data lands at its offsets,
//! so a sparse file stays sparse); metadata streams are collected (each at most
//! [`MAX_METADATA`] bytes) and applied at [`BackupWriter::finish`] in the safe order of
//! [`crate::apply`], then the file is renamed into place. Truncated or malformed input is
//! an error naming the byte offset, and nothing is left under the final name: the
//! temporary file is removed, and links, special files and directories are only created
//! once the whole input has been read and checked.

use std::os::unix::ffi::OsStrExt;
use std::time::SystemTime;

use crate::apply::{Outcome, PendingFile, RelPath, RestoreRoot};
use crate::error::{Result, StreamError};
use crate::meta::{FileKind, FileMeta, Timestamp};

use super::names::{from_utf16, utf16_units};
use super::parse::{Parser, StreamSink};
use super::reparse::Reparse;
use super::{StreamHeader, attr, ea, id, id_name, reparse, security};

/// Largest metadata stream accepted (EA, SECURITY, REPARSE, LINK, …).
pub const MAX_METADATA: u64 = 16 << 20;

/// How to write.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {}

enum Current {
    /// Main data at `pos`.
    Data { pos: u64 },
    /// A sparse block: its 8-byte offset, then data.
    Sparse {
        head: Vec<u8>,
        at: u64,
        offset: u64,
        pos: u64,
    },
    /// A metadata stream being collected.
    Collect {
        id: u32,
        buf: Vec<u8>,
        data_at: u64,
        name: Vec<u16>,
    },
    /// Data that is skipped.
    Skip,
}

struct Sink<'r> {
    root: &'r mut RestoreRoot,
    rel: RelPath,
    meta: FileMeta,
    mode: Option<u32>,
    reparse: Option<(Reparse, u64)>,
    link: Option<(Vec<u8>, u64)>,
    pending: Option<PendingFile>,
    data_header_at: Option<u64>,
    size: u64,
    sparse: bool,
    cur: Option<Current>,
    notes: Vec<String>,
    /// From `$REEL.REST`: where the input must end.
    expected_end: Option<(u64, u64)>,
    streams: u64,
}

/// See the module documentation.
pub struct BackupWriter<'r> {
    parser: Parser,
    sink: Sink<'r>,
}

fn now() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp::new(d.as_secs() as i64, d.subsec_nanos())
}

fn malformed(offset: u64, what: impl Into<String>) -> StreamError {
    StreamError::Malformed {
        offset,
        what: what.into(),
    }
}

impl<'r> BackupWriter<'r> {
    /// A writer that creates `rel` under `root`. Without an EA stream the file gets this
    /// process's owner, mode 0644 (0755 for a directory) and the current time.
    pub fn new(root: &'r mut RestoreRoot, rel: RelPath, _opts: &WriteOptions) -> BackupWriter<'r> {
        let t = now();
        let mut meta = FileMeta::new(FileKind::Regular, 0o644);
        meta.uid = rustix::process::geteuid().as_raw();
        meta.gid = rustix::process::getegid().as_raw();
        meta.atime = t;
        meta.mtime = t;
        meta.ctime = t;
        BackupWriter {
            parser: Parser::new(),
            sink: Sink {
                root,
                rel,
                meta,
                mode: None,
                reparse: None,
                link: None,
                pending: None,
                data_header_at: None,
                size: 0,
                sparse: false,
                cur: None,
                notes: Vec::new(),
                expected_end: None,
                streams: 0,
            },
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.parser.offset()
    }

    /// Takes more stream bytes. After an error the writer is unusable (drop it: the
    /// temporary file goes with it).
    pub fn write(&mut self, data: &[u8]) -> Result<()> {
        self.parser.feed(data, &mut self.sink)
    }

    /// Ends the input and creates the file. Returns what was skipped or could not be
    /// applied (streams Linux cannot hold, missing privileges), one message each.
    pub fn finish(mut self) -> Result<Vec<String>> {
        self.parser.finish()?;
        let end = self.parser.offset();
        if self.sink.streams == 0 {
            return Err(StreamError::Truncated {
                offset: 0,
                what: "the input holds no backup streams".into(),
            });
        }
        if let Some((want, ea_at)) = self.sink.expected_end
            && want != end
        {
            return Err(StreamError::Truncated {
                offset: end,
                what: format!(
                    "the EA stream at byte {ea_at} says the streams end at byte {want}, the input ends at byte {end}"
                ),
            });
        }
        self.sink.create(end)?;
        let mut notes = std::mem::take(&mut self.sink.notes);
        notes.extend(
            self.sink
                .root
                .take_warnings()
                .into_iter()
                .map(|w| w.to_string()),
        );
        Ok(notes)
    }
}

impl Sink<'_> {
    fn ensure_pending(&mut self, at: u64) -> Result<()> {
        if self.pending.is_some() {
            return Ok(());
        }
        if self.data_header_at.is_none() {
            self.data_header_at = Some(at);
        }
        match self.root.begin_file(&self.rel, &self.meta)? {
            Some(p) => {
                self.pending = Some(p);
                Ok(())
            }
            None => Err(exists(self.root, &self.rel)),
        }
    }

    fn write_at(&mut self, chunk: &[u8], offset: u64) -> Result<()> {
        let Some(p) = &mut self.pending else {
            return Ok(());
        };
        p.write_at(chunk, offset)
            .map_err(|e| StreamError::io(p.path().to_path_buf(), "write", e))?;
        self.size = self.size.max(offset + chunk.len() as u64);
        Ok(())
    }

    fn finish_collected(
        &mut self,
        sid: u32,
        buf: Vec<u8>,
        data_at: u64,
        name: Vec<u16>,
    ) -> Result<()> {
        let bad = |(at, what): (usize, String)| malformed(data_at + at as u64, what);
        match sid {
            id::EA_DATA => {
                let entries = ea::parse(&buf).map_err(bad)?;
                let f = ea::interpret(&entries).map_err(bad)?;
                if let Some(rest) = f.rest {
                    let stream_end = data_at + buf.len() as u64;
                    let want = stream_end.checked_add(rest).ok_or_else(|| {
                        malformed(data_at, format!("$REEL.REST {rest} is out of range"))
                    })?;
                    self.expected_end = Some((want, data_at));
                }
                if let Some(v) = f.uid {
                    self.meta.uid = v;
                }
                if let Some(v) = f.gid {
                    self.meta.gid = v;
                }
                if let Some(m) = f.mode {
                    self.mode = Some(m);
                    self.meta.mode = m & 0o7777;
                }
                if f.rdev.is_some() {
                    self.meta.rdev = f.rdev;
                }
                if let Some([a, m, c, b]) = f.times {
                    self.meta.atime = a.unwrap_or(self.meta.atime);
                    self.meta.mtime = m.unwrap_or(self.meta.mtime);
                    self.meta.ctime = c.unwrap_or(self.meta.ctime);
                    self.meta.btime = b;
                }
                if let Some(fl) = f.flags {
                    self.meta.flags = fl & crate::flags::RESTORABLE;
                }
                if f.user.is_some() {
                    self.meta.user = f.user;
                }
                if f.group.is_some() {
                    self.meta.group = f.group;
                }
                self.meta.xattrs.extend(f.xattrs);
                self.notes.extend(f.notes);
            }
            id::SECURITY_DATA => {
                let s = security::decode(&buf).map_err(bad)?;
                if s.windows_descriptor {
                    self.notes.push(
                        "SECURITY_DATA stream holds a Windows security descriptor, which Linux cannot hold; skipped"
                            .into(),
                    );
                }
                if s.acl_access.is_some() {
                    self.meta.acl_access = s.acl_access;
                }
                if s.acl_default.is_some() {
                    self.meta.acl_default = s.acl_default;
                }
                self.meta.xattrs.extend(s.xattrs);
            }
            id::REPARSE_DATA => {
                let r = reparse::decode(&buf).map_err(bad)?;
                if let Reparse::Other { tag } = r {
                    self.notes.push(format!(
                        "REPARSE_DATA stream with tag {} has no Linux form; skipped",
                        reparse::tag_name(tag)
                    ));
                } else {
                    self.reparse = Some((r, data_at));
                }
            }
            id::LINK => {
                let units = utf16_units(&buf)
                    .ok_or_else(|| malformed(data_at, "LINK name has an odd number of bytes"))?;
                let target = from_utf16(&units).map_err(|e| malformed(data_at, e))?;
                self.link = Some((target, data_at));
            }
            id::ALTERNATE_DATA => {
                let raw = from_utf16(&name).map_err(|e| malformed(data_at, e))?;
                // ":name:$DATA" -> "name"
                let trimmed = raw.strip_prefix(b":").unwrap_or(&raw);
                let trimmed = trimmed.strip_suffix(b":$DATA").unwrap_or(trimmed);
                let mut xname = b"user.".to_vec();
                xname.extend_from_slice(trimmed);
                self.notes.push(format!(
                    "ALTERNATE_DATA stream {} stored as the extended attribute {}",
                    String::from_utf8_lossy(&raw),
                    String::from_utf8_lossy(&xname)
                ));
                self.meta.xattrs.push(crate::xattrs::Xattr::new(xname, buf));
            }
            _ => {}
        }
        Ok(())
    }

    /// Creates the file from everything gathered.
    fn create(&mut self, end: u64) -> Result<()> {
        let from_mode = match self.mode {
            Some(m) => ea::kind_of_mode(m),
            None => None,
        };
        let from_reparse = match &self.reparse {
            Some((Reparse::Symlink(_), _)) => Some(FileKind::Symlink),
            Some((Reparse::Special(k), _)) => Some(*k),
            _ => None,
        };
        if let (Some(a), Some(b), Some((_, at))) = (from_mode, from_reparse, &self.reparse)
            && a != b
        {
            return Err(malformed(
                *at,
                format!("the reparse data says {b:?} but $LXMOD says {a:?}"),
            ));
        }
        let kind = from_mode.or(from_reparse).unwrap_or(FileKind::Regular);
        if kind == FileKind::Directory && self.mode.is_none() {
            self.meta.mode = 0o755;
        }
        self.meta.kind = kind;
        if let (Some(at), true) = (self.data_header_at, kind != FileKind::Regular) {
            return Err(malformed(at, format!("content streams for a {kind:?}")));
        }
        if matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) && self.meta.rdev.is_none()
        {
            return Err(malformed(
                end,
                format!("a {kind:?} without $LXDEV device numbers"),
            ));
        }
        if !matches!(kind, FileKind::CharDevice | FileKind::BlockDevice) {
            self.meta.rdev = None;
        }
        if let Some((target, at)) = self.link.take() {
            if self.data_header_at.is_some() {
                return Err(malformed(at, "a LINK stream and content for the same file"));
            }
            let t = crate::apply::check_path(&target).map_err(|reason| StreamError::Refused {
                path: self.rel.to_string(),
                reason,
            })?;
            return match self.root.make_hardlink(&self.rel, &t, &self.meta)? {
                Outcome::Written => Ok(()),
                Outcome::SkippedExisting => Err(exists(self.root, &self.rel)),
            };
        }
        let outcome = match kind {
            FileKind::Regular => {
                self.ensure_pending(end)?;
                let mut p = self.pending.take().expect("created above");
                if self.sparse {
                    p.set_len(self.size).map_err(|e| {
                        StreamError::io(p.path().to_path_buf(), "set the size of", e)
                    })?;
                }
                self.meta.size = self.size;
                p.set_meta(self.meta.clone());
                p.commit()?
            }
            FileKind::Directory => self.root.make_dir(&self.rel, &self.meta)?,
            FileKind::Symlink => {
                if let Some((Reparse::Symlink(t), _)) = &self.reparse {
                    self.meta.symlink_target = Some(std::ffi::OsStr::from_bytes(t).to_os_string());
                } else {
                    return Err(malformed(
                        end,
                        "a symlink ($LXMOD) without its REPARSE_DATA target",
                    ));
                }
                self.root.make_symlink(&self.rel, &self.meta)?
            }
            _ => self.root.make_special(&self.rel, &self.meta)?,
        };
        match outcome {
            Outcome::Written => Ok(()),
            Outcome::SkippedExisting => Err(exists(self.root, &self.rel)),
        }
    }
}

fn exists(root: &RestoreRoot, rel: &RelPath) -> StreamError {
    StreamError::io(
        root.path().join(rel.to_path_buf()),
        "create",
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "it already exists (allow replacing it to overwrite)",
        ),
    )
}

impl StreamSink for Sink<'_> {
    fn begin(&mut self, h: &StreamHeader, header_at: u64, data_at: u64) -> Result<()> {
        self.streams += 1;
        if let Some((want, _)) = self.expected_end
            && data_at + h.size > want
        {
            return Err(malformed(
                header_at,
                format!(
                    "the {} stream runs past the end the EA stream gave (byte {want})",
                    id_name(h.id)
                ),
            ));
        }
        self.cur = Some(match h.id {
            id::DATA if h.name.is_empty() => {
                self.data_header_at.get_or_insert(header_at);
                if h.attributes & attr::SPARSE != 0 {
                    self.sparse = true;
                }
                self.ensure_pending(header_at)?;
                Current::Data { pos: 0 }
            }
            id::SPARSE_BLOCK => {
                if h.size < 8 {
                    return Err(malformed(
                        header_at + 8,
                        format!(
                            "SPARSE_BLOCK of {} bytes has no room for its offset",
                            h.size
                        ),
                    ));
                }
                self.data_header_at.get_or_insert(header_at);
                self.sparse = true;
                self.ensure_pending(header_at)?;
                Current::Sparse {
                    head: Vec::with_capacity(8),
                    at: data_at,
                    offset: 0,
                    pos: 0,
                }
            }
            id::EA_DATA | id::SECURITY_DATA | id::REPARSE_DATA | id::LINK => {
                if h.size > MAX_METADATA {
                    return Err(malformed(
                        header_at + 8,
                        format!(
                            "{} stream of {} bytes is larger than the {MAX_METADATA}-byte limit",
                            id_name(h.id),
                            h.size
                        ),
                    ));
                }
                Current::Collect {
                    id: h.id,
                    buf: Vec::with_capacity(h.size as usize),
                    data_at,
                    name: Vec::new(),
                }
            }
            id::ALTERNATE_DATA | id::DATA if h.size <= crate::xattrs::MAX_VALUE as u64 => {
                Current::Collect {
                    id: id::ALTERNATE_DATA,
                    buf: Vec::with_capacity(h.size as usize),
                    data_at,
                    name: h.name.clone(),
                }
            }
            other => {
                let what = match other {
                    id::ALTERNATE_DATA | id::DATA => format!(
                        "ALTERNATE_DATA stream {} of {} bytes is larger than an extended attribute can hold; skipped",
                        h.name_text(),
                        h.size
                    ),
                    _ => format!(
                        "{} stream{} ({} bytes) cannot be held by Linux; skipped",
                        id_name(other),
                        if h.name.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", h.name_text())
                        },
                        h.size
                    ),
                };
                self.notes.push(what);
                Current::Skip
            }
        });
        Ok(())
    }

    fn data(&mut self, chunk: &[u8], _at: u64) -> Result<()> {
        match self.cur.take() {
            Some(Current::Data { pos }) => {
                self.write_at(chunk, pos)?;
                self.cur = Some(Current::Data {
                    pos: pos + chunk.len() as u64,
                });
            }
            Some(Current::Sparse {
                mut head,
                at,
                mut offset,
                mut pos,
            }) => {
                let mut rest = chunk;
                if head.len() < 8 {
                    let n = (8 - head.len()).min(rest.len());
                    head.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    if head.len() == 8 {
                        let o = super::le64(&head, 0) as i64;
                        if o < 0 {
                            return Err(malformed(
                                at,
                                format!("SPARSE_BLOCK offset {o} is negative"),
                            ));
                        }
                        offset = o as u64;
                    }
                }
                if !rest.is_empty() {
                    let target = offset.checked_add(pos).filter(|t| {
                        t.checked_add(rest.len() as u64)
                            .is_some_and(|e| e <= i64::MAX as u64)
                    });
                    let Some(target) = target else {
                        return Err(malformed(
                            at,
                            format!("SPARSE_BLOCK at {offset} runs past the largest file size"),
                        ));
                    };
                    self.write_at(rest, target)?;
                    pos += rest.len() as u64;
                }
                self.cur = Some(Current::Sparse {
                    head,
                    at,
                    offset,
                    pos,
                });
            }
            Some(Current::Collect {
                id,
                mut buf,
                data_at,
                name,
            }) => {
                buf.extend_from_slice(chunk);
                self.cur = Some(Current::Collect {
                    id,
                    buf,
                    data_at,
                    name,
                });
            }
            other => self.cur = other,
        }
        Ok(())
    }

    fn end(&mut self, _at: u64) -> Result<()> {
        match self.cur.take() {
            Some(Current::Collect {
                id,
                buf,
                data_at,
                name,
            }) => self.finish_collected(id, buf, data_at, name),
            Some(Current::Sparse { offset, pos, .. }) => {
                self.size = self.size.max(offset + pos);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
