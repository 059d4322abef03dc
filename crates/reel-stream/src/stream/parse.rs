//! A push parser of backup streams: takes bytes in any chunking, checks every header and
//! hands headers and data to a [`StreamSink`]. Errors name the byte offset from the start
//! of the input.

use std::io::Read;

use crate::error::{Result, StreamError};

use super::names::utf16_units;
use super::{HEADER_LEN, StreamHeader, id};

/// Longest stream name accepted (NTFS names are at most 255 UTF-16 units; `:name:$DATA`).
pub const MAX_NAME_BYTES: usize = 4096;

/// Receives what the parser finds.
pub trait StreamSink {
    /// A stream starts; its data begins at byte `data_at` of the input.
    fn begin(&mut self, header: &StreamHeader, header_at: u64, data_at: u64) -> Result<()>;
    /// A piece of the current stream's data, starting at byte `at` of the input.
    fn data(&mut self, chunk: &[u8], at: u64) -> Result<()>;
    /// The current stream ended (its data ended just before byte `at`).
    fn end(&mut self, at: u64) -> Result<()>;
}

enum State {
    Header {
        buf: [u8; HEADER_LEN],
        have: usize,
    },
    Name {
        header: StreamHeader,
        buf: Vec<u8>,
        need: usize,
        header_at: u64,
    },
    Body {
        remaining: u64,
    },
}

/// See the module documentation.
pub struct Parser {
    state: State,
    offset: u64,
    header_at: u64,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    pub fn new() -> Parser {
        Parser {
            state: State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
            offset: 0,
            header_at: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Feeds bytes.
    pub fn feed(&mut self, mut data: &[u8], sink: &mut dyn StreamSink) -> Result<()> {
        while !data.is_empty() {
            match &mut self.state {
                State::Header { buf, have } => {
                    if *have == 0 {
                        self.header_at = self.offset;
                    }
                    let n = (HEADER_LEN - *have).min(data.len());
                    buf[*have..*have + n].copy_from_slice(&data[..n]);
                    *have += n;
                    self.offset += n as u64;
                    data = &data[n..];
                    if *have == HEADER_LEN {
                        let b = *buf;
                        self.begin_header(&b, sink)?;
                    }
                }
                State::Name { buf, need, .. } => {
                    let n = (*need - buf.len()).min(data.len());
                    buf.extend_from_slice(&data[..n]);
                    self.offset += n as u64;
                    data = &data[n..];
                    if buf.len() == *need {
                        let State::Name {
                            mut header,
                            buf,
                            header_at,
                            ..
                        } = std::mem::replace(&mut self.state, State::Body { remaining: 0 })
                        else {
                            unreachable!("state checked above")
                        };
                        header.name = utf16_units(&buf).unwrap_or_default();
                        self.start_body(header, header_at, sink)?;
                    }
                }
                State::Body { remaining } => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    let at = self.offset;
                    *remaining -= n as u64;
                    let done = *remaining == 0;
                    self.offset += n as u64;
                    sink.data(&data[..n], at)?;
                    data = &data[n..];
                    if done {
                        self.state = State::Header {
                            buf: [0; HEADER_LEN],
                            have: 0,
                        };
                        sink.end(self.offset)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn begin_header(&mut self, b: &[u8; HEADER_LEN], sink: &mut dyn StreamSink) -> Result<()> {
        let at = self.header_at;
        let stream_id = super::le32(b, 0);
        let attributes = super::le32(b, 4);
        let size = super::le64(b, 8) as i64;
        let name_size = super::le32(b, 16) as usize;
        if !(id::DATA..=id::GHOSTED_FILE_EXTENTS).contains(&stream_id) {
            return Err(StreamError::Malformed {
                offset: at,
                what: format!("unknown stream id {stream_id} (not a backup stream header?)"),
            });
        }
        if size < 0 {
            return Err(StreamError::Malformed {
                offset: at + 8,
                what: format!("negative stream size {size}"),
            });
        }
        if !name_size.is_multiple_of(2) || name_size > MAX_NAME_BYTES {
            return Err(StreamError::Malformed {
                offset: at + 16,
                what: format!(
                    "stream name size {name_size} (must be even and at most {MAX_NAME_BYTES})"
                ),
            });
        }
        let header = StreamHeader::new(stream_id, attributes, size as u64);
        if name_size == 0 {
            self.start_body(header, at, sink)
        } else {
            self.state = State::Name {
                header,
                buf: Vec::with_capacity(name_size),
                need: name_size,
                header_at: at,
            };
            Ok(())
        }
    }

    fn start_body(
        &mut self,
        header: StreamHeader,
        header_at: u64,
        sink: &mut dyn StreamSink,
    ) -> Result<()> {
        let remaining = header.size;
        sink.begin(&header, header_at, self.offset)?;
        if remaining == 0 {
            self.state = State::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            };
            sink.end(self.offset)
        } else {
            self.state = State::Body { remaining };
            Ok(())
        }
    }

    /// Ends the input: an error unless it stopped between two streams.
    pub fn finish(&self) -> Result<()> {
        match &self.state {
            State::Header { have: 0, .. } => Ok(()),
            State::Header { have, .. } => Err(StreamError::Truncated {
                offset: self.offset,
                what: format!(
                    "the input ends {have} bytes into the stream header at byte {}",
                    self.header_at
                ),
            }),
            State::Name { need, buf, .. } => Err(StreamError::Truncated {
                offset: self.offset,
                what: format!(
                    "the input ends inside the stream name of the header at byte {} ({} of {need} bytes)",
                    self.header_at,
                    buf.len()
                ),
            }),
            State::Body { remaining } => Err(StreamError::Truncated {
                offset: self.offset,
                what: format!(
                    "the input ends with {remaining} bytes of the stream whose header is at byte {} missing",
                    self.header_at
                ),
            }),
        }
    }
}

/// One stream as `reel stream show` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub header_at: u64,
    pub id: u32,
    pub attributes: u32,
    pub size: u64,
    pub name: String,
    /// Decoded content: EA entries, reparse tag, sparse block offset, link target, …
    pub details: Vec<String>,
}

struct Describer {
    out: Vec<StreamInfo>,
    buf: Vec<u8>,
    keep: bool,
}

const DESCRIBE_KEEP: u64 = 16 << 20;

impl StreamSink for Describer {
    fn begin(&mut self, h: &StreamHeader, header_at: u64, _data_at: u64) -> Result<()> {
        self.out.push(StreamInfo {
            header_at,
            id: h.id,
            attributes: h.attributes,
            size: h.size,
            name: h.name_text(),
            details: Vec::new(),
        });
        self.buf.clear();
        self.keep = matches!(
            h.id,
            id::EA_DATA | id::SECURITY_DATA | id::REPARSE_DATA | id::LINK | id::SPARSE_BLOCK
        ) && h.size <= DESCRIBE_KEEP;
        Ok(())
    }

    fn data(&mut self, chunk: &[u8], _at: u64) -> Result<()> {
        if self.keep {
            let room = if self.out.last().is_some_and(|s| s.id == id::SPARSE_BLOCK) {
                8usize.saturating_sub(self.buf.len())
            } else {
                chunk.len()
            };
            self.buf.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
        Ok(())
    }

    fn end(&mut self, _at: u64) -> Result<()> {
        let Some(info) = self.out.last_mut() else {
            return Ok(());
        };
        if !self.keep {
            return Ok(());
        }
        let d = &mut info.details;
        match info.id {
            id::EA_DATA => match super::ea::parse(&self.buf) {
                Ok(entries) => {
                    for (_, e) in entries {
                        d.push(format!(
                            "{} ({} bytes)",
                            String::from_utf8_lossy(&e.name),
                            e.value.len()
                        ));
                    }
                }
                Err((at, what)) => d.push(format!("malformed at +{at}: {what}")),
            },
            id::SECURITY_DATA => match super::security::decode(&self.buf) {
                Ok(s) if s.windows_descriptor => d.push("Windows security descriptor".into()),
                Ok(s) => {
                    if let Some(a) = &s.acl_access {
                        d.push(format!("access ACL {}", a.to_text()));
                    }
                    if let Some(a) = &s.acl_default {
                        d.push(format!("default ACL {}", a.to_text()));
                    }
                    for x in &s.xattrs {
                        d.push(format!("{} ({} bytes)", x.name_lossy(), x.value.len()));
                    }
                }
                Err((at, what)) => d.push(format!("malformed at +{at}: {what}")),
            },
            id::REPARSE_DATA => match super::reparse::decode(&self.buf) {
                Ok(super::reparse::Reparse::Symlink(t)) => {
                    d.push(format!("symlink to {}", String::from_utf8_lossy(&t)))
                }
                Ok(super::reparse::Reparse::Special(k)) => d.push(format!("{k:?}")),
                Ok(super::reparse::Reparse::Other { tag }) => d.push(super::reparse::tag_name(tag)),
                Err((at, what)) => d.push(format!("malformed at +{at}: {what}")),
            },
            id::LINK => match utf16_units(&self.buf).map(|u| super::names::from_utf16(&u)) {
                Some(Ok(p)) => d.push(format!("hard link to {}", String::from_utf8_lossy(&p))),
                _ => d.push("malformed link name".into()),
            },
            id::SPARSE_BLOCK if self.buf.len() == 8 => {
                let off = super::le64(&self.buf, 0) as i64;
                d.push(format!("at offset {off}, {} bytes", info.size - 8));
            }
            _ => {}
        }
        Ok(())
    }
}

/// Lists the streams of `input` (bounded memory: data is skipped, metadata streams up to
/// 16 MiB are decoded).
pub fn describe(input: &mut dyn Read) -> Result<Vec<StreamInfo>> {
    let mut parser = Parser::new();
    let mut sink = Describer {
        out: Vec::new(),
        buf: Vec::new(),
        keep: false,
    };
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(StreamError::io("<input>", "read", e)),
        };
        parser.feed(&buf[..n], &mut sink)?;
    }
    parser.finish()?;
    Ok(sink.out)
}
