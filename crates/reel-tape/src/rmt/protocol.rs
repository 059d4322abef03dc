//! The rmt wire protocol: requests (server side), replies (client side), and reel's own
//! extension.
//!
//! # Requests
//!
//! | request | meaning | reply |
//! |---|---|---|
//! | `O`device`\n`flags`\n` | open (flags: decimal, `O_*` names joined by `|`, or both) | `A0` |
//! | `C`\[device\]`\n` | close | `A0` |
//! | `L`whence`\n`offset`\n` | lseek (GNU order) | `A`offset |
//! | `R`count`\n` | read up to count bytes | `A`n then n bytes |
//! | `W`count`\n` + count bytes | write | `A`n |
//! | `I`op`\n`count`\n` | MTIOCTOP (Linux codes; the standard codes 0–10 after `I-1`) | `A`… |
//! | `S` | MTIOCGET | `A`n then a `struct mtget` of n bytes |
//! | `i`op`\n`count`\n` | extended ioctl (0 CACHE, 1 NOCACHE, 2 RETEN, 3 ERASE, 4 EOM, 5 NBSF) | `A`… |
//! | `s`c (no newline) | one status field: T type, D dsreg, E erreg, R resid, F fileno, B blkno, f flags (gstat), b bf | `A`value |
//!
//! Errors: `E`errno`\n`message`\n`. A client asks for the extended protocol (version 1,
//! where `I` takes the standard codes and `i`/`s` exist) with `I-1\n0\n`; a server that
//! has it answers `A1`, GNU's rmt answers with an error (it has none of it).
//!
//! # reel's extension
//!
//! A reel server also answers `i`[`REEL_PROBE_OP`]`\n`version`\n` with `A`its version;
//! servers without it refuse the unknown `i` code. After that the client speaks `X` requests:
//! one line `X`verb args…`\n` per [`crate::TapeDrive`] call, so a remote cartridge keeps every
//! semantic of the local one. Errors carry the Win32 code and its kind:
//! `E`errno`\n`code kind message`\n` (see [`error_to_wire`]).
//!
//! # Limits
//!
//! Lines are at most [`MAX_LINE`] bytes (a longer one is refused and skipped, never
//! stored); counts above [`MAX_RECORD`] are refused. Nothing input-dependent panics.

use std::io::{self, BufRead, Read, Write};

use crate::error::TapeError;

/// Longest request line (a device path up to PATH_MAX and the command letter).
pub const MAX_LINE: usize = 4200;
/// Largest record a request may carry or ask for (the 24-bit SCSI and SIMH limit).
pub const MAX_RECORD: usize = 0x00FF_FFFF;
/// The `i` opcode of reel's extension probe.
pub const REEL_PROBE_OP: i64 = -1861;
/// reel's extension version.
pub const REEL_PROTOCOL_VERSION: i64 = 1;

/// Open flags of an `O` request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenFlags {
    /// O_WRONLY or O_RDWR.
    pub write: bool,
    /// O_RDONLY or O_RDWR.
    pub read: bool,
    pub create: bool,
}

/// One request a server reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Open {
        device: Vec<u8>,
        flags: OpenFlags,
    },
    Close,
    Seek {
        whence: u8,
        offset: i64,
    },
    Read {
        count: usize,
    },
    /// `count` bytes of data follow on the input.
    Write {
        count: usize,
    },
    Ioctl {
        op: i64,
        count: i64,
    },
    Status,
    ExtIoctl {
        op: i64,
        count: i64,
    },
    ExtStatus {
        field: u8,
    },
    Reel {
        line: String,
    },
}

/// A request that cannot be carried out as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest {
    pub errno: i32,
    pub message: String,
    /// The input cannot be followed any more (data of unknown length follows).
    pub fatal: bool,
}

impl BadRequest {
    fn new(message: impl Into<String>) -> BadRequest {
        BadRequest {
            errno: libc::EINVAL,
            message: message.into(),
            fatal: false,
        }
    }
}

/// What reading a request gave.
#[derive(Debug)]
pub enum Incoming {
    Request(Request),
    Bad(BadRequest),
    /// The input ended cleanly between requests.
    End,
}

/// Reads requests from a byte stream, with bounded memory.
pub struct RequestReader<R> {
    input: R,
    /// Bytes consumed so far (for messages).
    offset: u64,
    /// The last request was `s`: a newline right after it is the client's, not a request.
    after_ext_status: bool,
}

/// Printable, bounded excerpt of client input for messages.
pub fn excerpt(bytes: &[u8]) -> String {
    let mut s: String = String::from_utf8_lossy(&bytes[..bytes.len().min(40)])
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if bytes.len() > 40 {
        s.push('…');
    }
    s
}

impl<R: BufRead> RequestReader<R> {
    pub fn new(input: R) -> Self {
        RequestReader {
            input,
            offset: 0,
            after_ext_status: false,
        }
    }

    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying input (to read a `W` payload).
    pub fn input(&mut self) -> &mut R {
        &mut self.input
    }

    pub fn consumed(&mut self, n: usize) {
        self.offset += n as u64;
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let buf = self.input.fill_buf()?;
        let Some(&b) = buf.first() else {
            return Ok(None);
        };
        self.input.consume(1);
        self.offset += 1;
        Ok(Some(b))
    }

    /// One line without its newline. `Ok(Err(..))` for a line that was too long (skipped)
    /// or cut off by the end of input.
    fn line(&mut self) -> io::Result<Result<Vec<u8>, BadRequest>> {
        let start = self.offset;
        let mut out = Vec::new();
        let mut too_long = false;
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return Ok(Err(BadRequest {
                    errno: libc::EIO,
                    message: format!("premature end of input in the request at byte {start}"),
                    fatal: true,
                }));
            }
            let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], Some(i + 1)),
                None => (buf, None),
            };
            if !too_long {
                if out.len() + chunk.len() > MAX_LINE {
                    too_long = true;
                    out.clear();
                } else {
                    out.extend_from_slice(chunk);
                }
            }
            let used = done.unwrap_or(buf.len());
            self.input.consume(used);
            self.offset += used as u64;
            if done.is_some() {
                break;
            }
        }
        if too_long {
            return Ok(Err(BadRequest::new(format!(
                "the request line at byte {start} is longer than {MAX_LINE} bytes"
            ))));
        }
        Ok(Ok(out))
    }

    /// Reads the next request. I/O errors of the input come back as `Err`.
    pub fn next_request(&mut self) -> io::Result<Incoming> {
        let at = self.offset;
        let Some(c) = self.byte()? else {
            return Ok(Incoming::End);
        };
        if c == b's' {
            self.after_ext_status = true;
            return Ok(match self.byte()? {
                Some(f) => Incoming::Request(Request::ExtStatus { field: f }),
                None => Incoming::Bad(BadRequest {
                    errno: libc::EIO,
                    message: format!("premature end of input after 's' at byte {at}"),
                    fatal: true,
                }),
            });
        }
        let after_s = std::mem::take(&mut self.after_ext_status);
        if c == b'\n' && after_s {
            // "sT\n" or "S\n" from clients that end every request with a newline.
            return self.next_request();
        }
        if c == b'S' {
            // The BSD protocol's status request is the bare letter (GNU mt sends it so).
            self.after_ext_status = true;
            return Ok(Incoming::Request(Request::Status));
        }
        let rest = match self.line()? {
            Ok(l) => l,
            Err(bad) => return Ok(Incoming::Bad(bad)),
        };
        let r = match c {
            b'O' => {
                let flags = match self.line()? {
                    Ok(l) => l,
                    Err(bad) => return Ok(Incoming::Bad(bad)),
                };
                parse_open_flags(&flags).map(|flags| Request::Open {
                    device: rest,
                    flags,
                })
            }
            b'C' => Ok(Request::Close),
            b'L' => {
                let offset = match self.line()? {
                    Ok(l) => l,
                    Err(bad) => return Ok(Incoming::Bad(bad)),
                };
                parse_whence(&rest).and_then(|whence| {
                    Ok(Request::Seek {
                        whence,
                        offset: number(&offset, "seek offset")?,
                    })
                })
            }
            b'R' => count(&rest).map(|count| Request::Read { count }),
            b'W' => match count(&rest) {
                Ok(count) => Ok(Request::Write { count }),
                // The data that follows has an unknown or unreadable length.
                Err(mut bad) => {
                    bad.fatal = true;
                    Err(bad)
                }
            },
            b'I' | b'i' => {
                let cnt = match self.line()? {
                    Ok(l) => l,
                    Err(bad) => return Ok(Incoming::Bad(bad)),
                };
                number(&rest, "operation code").and_then(|op| {
                    let count = number(&cnt, "count")?;
                    Ok(if c == b'I' {
                        Request::Ioctl { op, count }
                    } else {
                        Request::ExtIoctl { op, count }
                    })
                })
            }
            b'X' => match String::from_utf8(rest) {
                Ok(line) => Ok(Request::Reel { line }),
                Err(e) => Err(BadRequest::new(format!(
                    "reel request at byte {at} is not UTF-8 ({})",
                    excerpt(e.as_bytes())
                ))),
            },
            other => Err(BadRequest::new(format!(
                "unknown command '{}' at byte {at}",
                excerpt(&[other])
            ))),
        };
        Ok(match r {
            Ok(r) => Incoming::Request(r),
            Err(bad) => Incoming::Bad(bad),
        })
    }
}

/// A decimal number (optional sign, nothing else).
pub fn number(bytes: &[u8], what: &str) -> Result<i64, BadRequest> {
    let s = std::str::from_utf8(bytes).unwrap_or("");
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadRequest::new(format!(
            "invalid {what} '{}'",
            excerpt(bytes)
        )));
    }
    s.parse::<i64>()
        .map_err(|_| BadRequest::new(format!("{what} {} is out of range", excerpt(bytes))))
}

fn count(bytes: &[u8]) -> Result<usize, BadRequest> {
    let n = number(bytes, "byte count")?;
    let n =
        usize::try_from(n).map_err(|_| BadRequest::new(format!("byte count {n} is negative")))?;
    if n > MAX_RECORD {
        return Err(BadRequest::new(format!(
            "byte count {n} is above the largest record ({MAX_RECORD} bytes)"
        )));
    }
    Ok(n)
}

fn parse_whence(bytes: &[u8]) -> Result<u8, BadRequest> {
    let s = std::str::from_utf8(bytes).unwrap_or("").trim();
    match s {
        "0" | "SET" | "SEEK_SET" => Ok(0),
        "1" | "CUR" | "SEEK_CUR" => Ok(1),
        "2" | "END" | "SEEK_END" => Ok(2),
        _ => Err(BadRequest::new(format!(
            "invalid seek direction '{}'",
            excerpt(bytes)
        ))),
    }
}

/// Open flags as GNU's rmt takes them: a decimal number, `O_*` names joined by `|`, or a
/// number followed by names (the names win).
pub fn parse_open_flags(bytes: &[u8]) -> Result<OpenFlags, BadRequest> {
    let bad = || BadRequest::new(format!("invalid open mode '{}'", excerpt(bytes)));
    let s = std::str::from_utf8(bytes).map_err(|_| bad())?.trim();
    let (numeric, names) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(0) => (None, s),
        Some(i) => (Some(&s[..i]), s[i..].trim()),
        None => (Some(s), ""),
    };
    let mut bits: i64 = 0;
    let mut named = false;
    if !names.is_empty() {
        for part in names.split('|') {
            let name = part.trim();
            let name = name.strip_prefix("O_").unwrap_or(name);
            let v = match name {
                "RDONLY" => libc::O_RDONLY,
                "WRONLY" => libc::O_WRONLY,
                "RDWR" => libc::O_RDWR,
                "CREAT" => libc::O_CREAT,
                "TRUNC" => libc::O_TRUNC,
                "APPEND" => libc::O_APPEND,
                "EXCL" => libc::O_EXCL,
                "NONBLOCK" => libc::O_NONBLOCK,
                "NOCTTY" => libc::O_NOCTTY,
                "SYNC" => libc::O_SYNC,
                "DSYNC" => libc::O_DSYNC,
                "RSYNC" => libc::O_RSYNC,
                "LARGEFILE" => libc::O_LARGEFILE,
                n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                    n.parse().map_err(|_| bad())?
                }
                _ => return Err(bad()),
            };
            bits |= i64::from(v);
            named = true;
        }
    }
    if !named {
        let n = numeric.ok_or_else(bad)?;
        bits = n.parse().map_err(|_| bad())?;
    }
    let access = bits & i64::from(libc::O_ACCMODE);
    Ok(OpenFlags {
        read: access == i64::from(libc::O_RDONLY) || access == i64::from(libc::O_RDWR),
        write: access == i64::from(libc::O_WRONLY) || access == i64::from(libc::O_RDWR),
        create: bits & i64::from(libc::O_CREAT) != 0,
    })
}

/// One line of a reply message: no newline, bounded.
pub fn message_line(message: &str) -> String {
    let mut s: String = message
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if s.len() > 1000 {
        let mut cut = 1000;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// `A`n`\n`.
pub fn write_ok(out: &mut dyn Write, n: i64) -> io::Result<()> {
    writeln!(out, "A{n}")
}

/// `A`len`\n` and the data.
pub fn write_data(out: &mut dyn Write, data: &[u8]) -> io::Result<()> {
    writeln!(out, "A{}", data.len())?;
    out.write_all(data)
}

/// `E`errno`\n`message`\n`.
pub fn write_error(out: &mut dyn Write, errno: i32, message: &str) -> io::Result<()> {
    write!(out, "E{errno}\n{}\n", message_line(message))
}

/// The errno a tape condition shows to rmt clients, as a Linux st drive would show it.
pub fn errno_for(e: &TapeError) -> i32 {
    match e {
        TapeError::NoMediaInDrive => libc::ENOMEDIUM,
        TapeError::WriteProtect(_) => libc::EACCES,
        TapeError::EndOfMedia | TapeError::EarlyWarning | TapeError::EomOverflow(_) => libc::ENOSPC,
        TapeError::NotSupported(_) => libc::ENOSYS,
        TapeError::InvalidParameter(_)
        | TapeError::InvalidBlockLength(_)
        | TapeError::DeviceNotPartitioned => libc::EINVAL,
        TapeError::MoreData { .. } => libc::ENOMEM,
        TapeError::NotReady(_) => libc::EBUSY,
        TapeError::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        _ => libc::EIO,
    }
}

/// The kind word of a [`TapeError`] on the wire.
fn kind(e: &TapeError) -> &'static str {
    match e {
        TapeError::EndOfMedia => "EndOfMedia",
        TapeError::EarlyWarning => "EarlyWarning",
        TapeError::FilemarkDetected => "FilemarkDetected",
        TapeError::BeginningOfMedia => "BeginningOfMedia",
        TapeError::SetmarkDetected => "SetmarkDetected",
        TapeError::NoDataDetected => "NoDataDetected",
        TapeError::PartitionFailure(_) => "PartitionFailure",
        TapeError::InvalidBlockLength(_) => "InvalidBlockLength",
        TapeError::DeviceNotPartitioned => "DeviceNotPartitioned",
        TapeError::UnableToLockMedia => "UnableToLockMedia",
        TapeError::UnableToUnloadMedia => "UnableToUnloadMedia",
        TapeError::MediaChanged => "MediaChanged",
        TapeError::BusReset => "BusReset",
        TapeError::NoMediaInDrive => "NoMediaInDrive",
        TapeError::EomOverflow(_) => "EomOverflow",
        TapeError::DeviceRequiresCleaning => "DeviceRequiresCleaning",
        TapeError::WriteProtect(_) => "WriteProtect",
        TapeError::NotReady(_) => "NotReady",
        TapeError::Crc(_) => "Crc",
        TapeError::NotSupported(_) => "NotSupported",
        TapeError::InvalidParameter(_) => "InvalidParameter",
        TapeError::MoreData { .. } => "MoreData",
        TapeError::Io { .. } => "Io",
        TapeError::BadCartridge { .. } => "BadCartridge",
    }
}

/// The message line of an error in reel's extension: `code kind detail`.
pub fn error_to_wire(e: &TapeError) -> String {
    let detail = match e {
        TapeError::PartitionFailure(m)
        | TapeError::InvalidBlockLength(m)
        | TapeError::EomOverflow(m)
        | TapeError::WriteProtect(m)
        | TapeError::NotReady(m)
        | TapeError::Crc(m)
        | TapeError::NotSupported(m)
        | TapeError::InvalidParameter(m) => m.clone(),
        TapeError::MoreData { record_len, copied } => format!("{record_len} {copied}"),
        TapeError::BadCartridge { path, reason } => format!("{}: {reason}", path.display()),
        other => other.to_string(),
    };
    message_line(&format!("{} {} {detail}", e.code(), kind(e)))
}

/// Rebuilds a [`TapeError`] from a reel extension error line; `remote` names the remote
/// drive for I/O errors.
pub fn error_from_wire(line: &str, remote: &str) -> TapeError {
    let mut parts = line.splitn(3, ' ');
    let _code = parts.next();
    let kind = parts.next().unwrap_or("");
    let detail = parts.next().unwrap_or("").to_string();
    match kind {
        "EndOfMedia" => TapeError::EndOfMedia,
        "EarlyWarning" => TapeError::EarlyWarning,
        "FilemarkDetected" => TapeError::FilemarkDetected,
        "BeginningOfMedia" => TapeError::BeginningOfMedia,
        "SetmarkDetected" => TapeError::SetmarkDetected,
        "NoDataDetected" => TapeError::NoDataDetected,
        "PartitionFailure" => TapeError::PartitionFailure(detail),
        "InvalidBlockLength" => TapeError::InvalidBlockLength(detail),
        "DeviceNotPartitioned" => TapeError::DeviceNotPartitioned,
        "UnableToLockMedia" => TapeError::UnableToLockMedia,
        "UnableToUnloadMedia" => TapeError::UnableToUnloadMedia,
        "MediaChanged" => TapeError::MediaChanged,
        "BusReset" => TapeError::BusReset,
        "NoMediaInDrive" => TapeError::NoMediaInDrive,
        "EomOverflow" => TapeError::EomOverflow(detail),
        "DeviceRequiresCleaning" => TapeError::DeviceRequiresCleaning,
        "WriteProtect" => TapeError::WriteProtect(detail),
        "NotReady" => TapeError::NotReady(detail),
        "Crc" => TapeError::Crc(detail),
        "NotSupported" => TapeError::NotSupported(detail),
        "InvalidParameter" => TapeError::InvalidParameter(detail),
        "MoreData" => {
            let mut n = detail.split(' ').map(|x| x.parse::<usize>().ok());
            match (n.next().flatten(), n.next().flatten()) {
                (Some(record_len), Some(copied)) => TapeError::MoreData { record_len, copied },
                _ => TapeError::Io {
                    path: remote.into(),
                    source: io::Error::other(format!("bad MoreData reply '{detail}'")),
                },
            }
        }
        "BadCartridge" => TapeError::BadCartridge {
            path: remote.into(),
            reason: detail,
        },
        _ => TapeError::Io {
            path: remote.into(),
            source: io::Error::other(format!("remote: {line}")),
        },
    }
}

/// A reply a client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(i64),
    Err { errno: i32, message: String },
}

/// Reads replies, with the byte offset for messages.
pub struct ReplyReader<R> {
    input: R,
    offset: u64,
}

impl<R: BufRead> ReplyReader<R> {
    pub fn new(input: R) -> Self {
        ReplyReader { input, offset: 0 }
    }

    fn bad(&self, what: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("rmt reply at byte {}: {what}", self.offset),
        )
    }

    fn line(&mut self) -> io::Result<String> {
        let mut out = Vec::new();
        let n = (&mut self.input)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut out)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the rmt server closed the connection (at byte {})",
                    self.offset
                ),
            ));
        }
        if out.last() != Some(&b'\n') {
            return Err(self.bad(format!(
                "a line without newline or longer than {MAX_LINE} bytes"
            )));
        }
        self.offset += n as u64;
        out.pop();
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// The next `A`/`E` reply.
    pub fn reply(&mut self) -> io::Result<Reply> {
        let line = self.line()?;
        if let Some(n) = line.strip_prefix('A') {
            return n
                .trim()
                .parse::<i64>()
                .map(Reply::Ok)
                .map_err(|_| self.bad(format!("'A{}' is no number", excerpt(n.as_bytes()))));
        }
        if let Some(e) = line.strip_prefix('E') {
            let errno = e.trim().parse::<i32>().unwrap_or(libc::EIO);
            let message = self.line()?;
            return Ok(Reply::Err { errno, message });
        }
        Err(self.bad(format!("'{}' is neither A nor E", excerpt(line.as_bytes()))))
    }

    /// Exactly `buf.len()` bytes of data.
    pub fn data(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf)?;
        self.offset += buf.len() as u64;
        Ok(())
    }
}
