//! The `BackupRead`-like reader: a file as a byte stream of backup streams, pulled in
//! pieces of any size. Metadata streams are built at open (they are small); content is
//! read from the file as it is pulled, so memory stays bounded whatever the file's size.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Result, StreamError};
use crate::meta::{FileKind, FileMeta};
use crate::names::NameCache;
use crate::sparse::ContentReader;

use super::names::{to_utf16, utf16_bytes};
use super::{StreamHeader, attr, ea, id, reparse, security};

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// This file is a further name of a hard-linked file already read under this path
    /// (relative to the restore root): write a LINK stream instead of the content.
    pub link_target: Option<Vec<u8>>,
}

enum Body {
    Bytes(Vec<u8>),
    /// `len` bytes of content, preceded by an 8-byte offset for a sparse block.
    Content {
        prefix: Option<[u8; 8]>,
        len: u64,
    },
}

struct Planned {
    header: Vec<u8>,
    body: Body,
}

enum Phase {
    Header {
        bytes: Vec<u8>,
        pos: usize,
    },
    Prefix {
        bytes: [u8; 8],
        pos: usize,
        len: u64,
    },
    Bytes {
        bytes: Vec<u8>,
        pos: usize,
    },
    Content {
        left: u64,
    },
}

/// See the module documentation. `Read` yields the stream bytes.
pub struct BackupReader {
    meta: FileMeta,
    plan: VecDeque<Planned>,
    phase: Option<Phase>,
    content: Option<ContentReader>,
    offset: u64,
    warnings: Vec<String>,
    zero_filled: u64,
}

fn open_content(path: &Path) -> io::Result<File> {
    let base = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags((base | rustix::fs::OFlags::NOATIME).bits() as i32)
        .open(path)
    {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::PERM.raw_os_error()) => {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(base.bits() as i32)
                .open(path)
        }
        other => other,
    }
}

impl BackupReader {
    /// Captures `path` (a final symlink is not followed) and prepares its streams.
    pub fn open(path: &Path, opts: &ReadOptions) -> Result<BackupReader> {
        let mut names = NameCache::new();
        let (meta, warnings) = crate::meta::capture_reporting(path, &mut names)?;
        let content = if meta.kind == FileKind::Regular && opts.link_target.is_none() {
            let file = open_content(path).map_err(|e| StreamError::io(path, "open", e))?;
            let st =
                rustix::fs::fstat(&file).map_err(|e| StreamError::io(path, "stat", e.into()))?;
            if st.st_ino != meta.ino {
                return Err(StreamError::io(
                    path,
                    "read",
                    io::Error::other("the file was replaced while being read"),
                ));
            }
            Some(file)
        } else {
            None
        };
        let mut r = BackupReader::from_meta(meta, content, opts);
        r.warnings.splice(0..0, warnings);
        Ok(r)
    }

    /// Prepares the streams of a file already captured; `content` is the open regular
    /// file (`None` for other kinds and for hard links).
    pub fn from_meta(meta: FileMeta, content: Option<File>, opts: &ReadOptions) -> BackupReader {
        let mut plan = VecDeque::new();
        let bytes = |sid: u32, attributes: u32, data: Vec<u8>| Planned {
            header: StreamHeader::new(sid, attributes, data.len() as u64).encode(),
            body: Body::Bytes(data),
        };
        if let Some(sec) = security::encode(&meta) {
            plan.push_back(bytes(id::SECURITY_DATA, attr::CONTAINS_SECURITY, sec));
        }
        match (meta.kind, &meta.symlink_target) {
            (FileKind::Symlink, Some(t)) => {
                let target = std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str());
                plan.push_back(bytes(id::REPARSE_DATA, 0, reparse::symlink(target)));
            }
            (kind, _) => {
                if let Some(r) = reparse::special(kind) {
                    plan.push_back(bytes(id::REPARSE_DATA, 0, r));
                }
            }
        }
        let mut content = content;
        if let Some(target) = &opts.link_target {
            plan.push_back(bytes(id::LINK, 0, utf16_bytes(&to_utf16(target))));
            content = None;
        } else if meta.kind == FileKind::Regular {
            match &meta.sparse {
                None if meta.size > 0 => plan.push_back(Planned {
                    header: StreamHeader::new(id::DATA, 0, meta.size).encode(),
                    body: Body::Content {
                        prefix: None,
                        len: meta.size,
                    },
                }),
                None => {}
                Some(map) => {
                    plan.push_back(bytes(id::DATA, attr::SPARSE, Vec::new()));
                    let mut end = 0;
                    for e in map.extents.iter().filter(|e| e.len > 0) {
                        plan.push_back(Planned {
                            header: StreamHeader::new(id::SPARSE_BLOCK, attr::SPARSE, 8 + e.len)
                                .encode(),
                            body: Body::Content {
                                prefix: Some((e.offset as i64).to_le_bytes()),
                                len: e.len,
                            },
                        });
                        end = e.end();
                    }
                    if end < meta.size {
                        // Says where the file ends.
                        plan.push_back(bytes(
                            id::SPARSE_BLOCK,
                            attr::SPARSE,
                            (meta.size as i64).to_le_bytes().to_vec(),
                        ));
                    }
                }
            }
        }
        // The EA stream goes first and says how many bytes of streams follow it, so that
        // a stream cut between two streams is still found to be incomplete.
        let rest: u64 = plan
            .iter()
            .map(|p| {
                p.header.len() as u64
                    + match &p.body {
                        Body::Bytes(b) => b.len() as u64,
                        Body::Content { prefix, len } => len + if prefix.is_some() { 8 } else { 0 },
                    }
            })
            .sum();
        let mut entries = ea::entries_of(&meta);
        entries.push(ea::EaEntry::new(ea::REEL_REST, rest.to_le_bytes()));
        plan.push_front(bytes(id::EA_DATA, 0, ea::encode(&entries)));
        let sparse = meta.sparse.clone();
        BackupReader {
            content: content.map(|f| ContentReader::new(f, sparse)),
            meta,
            plan,
            phase: None,
            offset: 0,
            warnings: Vec::new(),
            zero_filled: 0,
        }
    }

    /// The file as captured.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    /// Bytes produced so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What could not be captured or read (one message each).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = self.warnings.clone();
        if self.zero_filled > 0 {
            w.push(format!(
                "the file shrank while being read: {} bytes stored as zeros",
                self.zero_filled
            ));
        }
        w
    }

    fn next_phase(&mut self) -> bool {
        let Some(p) = self.plan.pop_front() else {
            return false;
        };
        self.plan.push_front(Planned {
            header: Vec::new(),
            body: p.body,
        });
        self.phase = Some(Phase::Header {
            bytes: p.header,
            pos: 0,
        });
        true
    }

    /// Moves from a finished header to its body.
    fn body_phase(&mut self) {
        self.phase = match self.plan.pop_front().map(|p| p.body) {
            Some(Body::Bytes(b)) if !b.is_empty() => Some(Phase::Bytes { bytes: b, pos: 0 }),
            Some(Body::Content {
                prefix: Some(p),
                len,
            }) => Some(Phase::Prefix {
                bytes: p,
                pos: 0,
                len,
            }),
            Some(Body::Content { prefix: None, len }) if len > 0 => {
                Some(Phase::Content { left: len })
            }
            _ => None,
        };
    }

    /// `BackupSeek`: skips up to `n` bytes of the current stream's data and returns how far
    /// it moved. It never leaves the current stream: at its end the next read returns the
    /// next stream's header. Between streams (or inside a header) it moves nothing.
    pub fn seek(&mut self, n: u64) -> io::Result<u64> {
        let mut moved = 0;
        let mut n = n;
        while n > 0 {
            match &mut self.phase {
                Some(Phase::Prefix { bytes: _, pos, len }) => {
                    let step = (8 - *pos as u64).min(n);
                    *pos += step as usize;
                    moved += step;
                    n -= step;
                    if *pos == 8 {
                        let len = *len;
                        self.phase = (len > 0).then_some(Phase::Content { left: len });
                    }
                }
                Some(Phase::Bytes { bytes, pos }) => {
                    let step = ((bytes.len() - *pos) as u64).min(n);
                    *pos += step as usize;
                    moved += step;
                    n -= step;
                    if *pos == bytes.len() {
                        self.phase = None;
                    }
                }
                Some(Phase::Content { left }) => {
                    let want = (*left).min(n);
                    let skipped = match &mut self.content {
                        Some(c) => c.skip(want)?,
                        None => 0,
                    };
                    // A shrunken file: the rest of the stream is zeros to skip as well.
                    let step = want.max(skipped);
                    *left -= step;
                    moved += step;
                    n -= step;
                    if *left == 0 {
                        self.phase = None;
                    }
                }
                _ => break,
            }
        }
        self.offset += moved;
        Ok(moved)
    }
}

impl Read for BackupReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let phase = match &mut self.phase {
                Some(p) => p,
                None => {
                    if !self.next_phase() {
                        return Ok(0);
                    }
                    continue;
                }
            };
            let n = match phase {
                Phase::Header { bytes, pos } => {
                    let n = (bytes.len() - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    if *pos == bytes.len() {
                        self.body_phase();
                    }
                    n
                }
                Phase::Prefix { bytes, pos, len } => {
                    let n = (8 - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    if *pos == 8 {
                        let len = *len;
                        self.phase = (len > 0).then_some(Phase::Content { left: len });
                    }
                    n
                }
                Phase::Bytes { bytes, pos } => {
                    let n = (bytes.len() - *pos).min(buf.len());
                    buf[..n].copy_from_slice(&bytes[*pos..*pos + n]);
                    *pos += n;
                    if *pos == bytes.len() {
                        self.phase = None;
                    }
                    n
                }
                Phase::Content { left } => {
                    let want = (*left).min(buf.len() as u64) as usize;
                    let got = match &mut self.content {
                        Some(c) => loop {
                            match c.read(&mut buf[..want]) {
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                                other => break other?,
                            }
                        },
                        None => 0,
                    };
                    let n = if got == 0 {
                        // The file shrank: the header promised `left` more bytes.
                        buf[..want].fill(0);
                        self.zero_filled += want as u64;
                        want
                    } else {
                        got
                    };
                    *left -= n as u64;
                    if *left == 0 {
                        self.phase = None;
                    }
                    n
                }
            };
            self.offset += n as u64;
            return Ok(n);
        }
    }
}
