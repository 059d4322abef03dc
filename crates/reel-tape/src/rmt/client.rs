//! The rmt client: a remote drive (`--tape host:/dev/nst0`) reached through a remote shell
//! (`ssh`, or `--rsh-command`) running an rmt server.
//!
//! The client runs `RSH host [-l user] RMT` like GNU tar does (RSH defaults to `ssh`, RMT
//! to `/usr/sbin/rmt`; `reel --rsh-command`/`--rmt-command`, or `REEL_RSH_COMMAND` and
//! `REEL_RMT_COMMAND`, change them) and opens the device read-write (read-only when the
//! server refuses writing; like tar, a name that does not exist is created). It then asks
//! what the server speaks and drives it in one of three ways ([`RemoteKind`]):
//!
//! - a reel server (`reel rmt`): reel's extension carries every [`TapeDrive`] call as it is,
//!   with its Win32 error, so a remote cartridge behaves exactly like a local one;
//! - a tape drive behind GNU's or the BSDs' rmt: the st mapping ([`crate::st::StDrive`]) over
//!   `I` (Linux MTIOCTOP codes) and `S` (a Linux `struct mtget`); after the version-1
//!   handshake (`I-1`, dump's and star's rmt) the standard codes and the `s` status fields.
//!   rmt carries no MTIOCPOS, so positions are NOT_SUPPORTED there;
//! - a plain file behind rmt (MTIOCGET fails): one tape file of bytes; reads return what
//!   was written, in the sizes asked for, rewind and end of data are byte seeks.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::drive::*;
use crate::error::{Result, TapeError};
use crate::features::*;
use crate::rmt::protocol::*;
use crate::rmt::server::standard_code;
use crate::st::mtio::{Errno, MtOp, MtStatus, Mtio};
use crate::st::{Doing, StDrive, classify};

static COMMANDS: Mutex<(Option<String>, Option<String>)> = Mutex::new((None, None));

/// Sets the remote shell and remote rmt command for every later remote open (the CLI's
/// `--rsh-command` and `--rmt-command`); `None` keeps the environment's or the default.
pub fn set_commands(rsh: Option<&str>, rmt: Option<&str>) {
    if let Ok(mut c) = COMMANDS.lock() {
        *c = (rsh.map(str::to_string), rmt.map(str::to_string));
    }
}

/// How the client reaches a remote host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RshConfig {
    /// The remote shell: a program and its arguments, split at white space.
    pub rsh: String,
    /// The command the remote shell runs: the rmt server.
    pub rmt: String,
}

impl RshConfig {
    /// [`set_commands`], else `REEL_RSH_COMMAND`/`REEL_RMT_COMMAND`, else `ssh` and
    /// `/usr/sbin/rmt`.
    pub fn current() -> RshConfig {
        let (rsh, rmt) = COMMANDS.lock().map(|c| c.clone()).unwrap_or_default();
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        RshConfig {
            rsh: rsh
                .or_else(|| env("REEL_RSH_COMMAND"))
                .unwrap_or_else(|| "ssh".into()),
            rmt: rmt
                .or_else(|| env("REEL_RMT_COMMAND"))
                .unwrap_or_else(|| "/usr/sbin/rmt".into()),
        }
    }
}

/// One rmt session: requests out, replies in.
pub struct Connection {
    name: String,
    child: Option<Child>,
    replies: Option<ReplyReader<BufReader<Box<dyn Read + Send>>>>,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
    open: bool,
}

impl Connection {
    /// Starts `RSH host [-l user] RMT`.
    pub fn spawn(host: &str, config: &RshConfig, name: &str) -> Result<Connection> {
        let mut words = config.rsh.split_whitespace();
        let program = words.next().ok_or_else(|| {
            TapeError::InvalidParameter("the remote shell command is empty".into())
        })?;
        let mut cmd = Command::new(program);
        cmd.args(words);
        match host.split_once('@') {
            Some((user, h)) if !user.is_empty() && !h.is_empty() => {
                cmd.arg(h).arg("-l").arg(user);
            }
            _ => {
                cmd.arg(host);
            }
        }
        cmd.arg(&config.rmt)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // ETXTBSY: the shell script was just written, and a process forked elsewhere (in
        // this program or another) still holds it open for writing until its exec; that
        // passes in moments.
        let mut spawned = cmd.spawn();
        for _ in 0..50 {
            match &spawned {
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(Duration::from_millis(20));
                    spawned = cmd.spawn();
                }
                _ => break,
            }
        }
        let mut child = spawned.map_err(|e| TapeError::Io {
            path: name.into(),
            source: io::Error::new(
                e.kind(),
                format!("cannot run the remote shell '{}': {e}", config.rsh),
            ),
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            let _ = child.kill();
            return Err(TapeError::Io {
                path: name.into(),
                source: io::Error::other("the remote shell has no pipes"),
            });
        };
        let mut c = Connection::over(Box::new(stdout), Box::new(stdin), name);
        c.child = Some(child);
        Ok(c)
    }

    /// A session over any byte streams (an in-process server, a socket).
    pub fn over(
        input: Box<dyn Read + Send>,
        output: Box<dyn Write + Send>,
        name: &str,
    ) -> Connection {
        Connection {
            name: name.to_string(),
            child: None,
            replies: Some(ReplyReader::new(BufReader::with_capacity(
                256 * 1024,
                input,
            ))),
            out: Some(BufWriter::with_capacity(256 * 1024, output)),
            open: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn io(&self, e: io::Error) -> TapeError {
        TapeError::Io {
            path: self.name.clone().into(),
            source: e,
        }
    }

    fn closed(&self) -> TapeError {
        self.io(io::Error::new(
            io::ErrorKind::NotConnected,
            "the rmt session is closed",
        ))
    }

    /// Sends one request (and its data) and reads the reply line.
    pub fn request(&mut self, head: &[u8], data: &[u8]) -> Result<Reply> {
        let Some(out) = self.out.as_mut() else {
            return Err(self.closed());
        };
        let sent = out
            .write_all(head)
            .and_then(|()| out.write_all(data))
            .and_then(|()| out.flush());
        if let Err(e) = sent {
            return Err(self.io(io::Error::new(
                e.kind(),
                format!("sending to the rmt server: {e}"),
            )));
        }
        let Some(replies) = self.replies.as_mut() else {
            return Err(self.closed());
        };
        let r = replies.reply();
        r.map_err(|e| self.io(e))
    }

    /// Reads `buf.len()` bytes of reply data.
    pub fn data(&mut self, buf: &mut [u8]) -> Result<()> {
        let Some(replies) = self.replies.as_mut() else {
            return Err(self.closed());
        };
        let r = replies.data(buf);
        r.map_err(|e| self.io(e))
    }

    /// Sends `C`, closes the pipes and waits for the remote shell.
    pub fn close(&mut self) {
        if self.open && self.out.is_some() {
            let _ = self.request(b"C\n", b"");
            self.open = false;
        }
        self.out = None;
        self.replies = None;
        if let Some(mut child) = self.child.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }

    /// `O`: opens `path` read-write (creating it), or read-only when writing is refused.
    fn open_device(&mut self, path: &str) -> Result<bool> {
        if path.contains('\n') {
            return Err(TapeError::InvalidParameter(format!(
                "the remote device name {path:?} has a newline"
            )));
        }
        let flags = libc::O_RDWR | libc::O_CREAT;
        let mut writable = true;
        let mut r = self.request(format!("O{path}\n{flags} O_RDWR|O_CREAT\n").as_bytes(), b"")?;
        if let Reply::Err { errno, .. } = r
            && matches!(errno, libc::EACCES | libc::EROFS | libc::EPERM)
        {
            writable = false;
            r = self.request(format!("O{path}\n0 O_RDONLY\n").as_bytes(), b"")?;
        }
        match r {
            Reply::Ok(_) => {
                self.open = true;
                Ok(writable)
            }
            Reply::Err { errno, message } => Err(match errno {
                libc::ENOENT | libc::ENOTDIR => {
                    TapeError::InvalidParameter(format!("{}: {message}", self.name))
                }
                libc::EBUSY => {
                    // A reel server sends its whole message, which says "not ready" already.
                    let why = message
                        .strip_prefix("the drive is not ready: ")
                        .unwrap_or(&message);
                    TapeError::NotReady(format!("{}: {why}", self.name))
                }
                libc::ENOMEDIUM => TapeError::NoMediaInDrive,
                _ => self.io(io::Error::new(
                    io::Error::from_raw_os_error(errno).kind(),
                    format!("opening on the rmt server: {message} (errno {errno})"),
                )),
            }),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// What the remote end turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteKind {
    /// A reel server: every call carried as it is.
    Reel,
    /// A tape drive behind an rmt server (version 0: GNU's; 1: the extended protocol).
    Tape { version: u8 },
    /// A plain file behind an rmt server.
    File { version: u8 },
}

/// The st calls carried over rmt.
pub struct RmtMtio {
    conn: Connection,
    version1: bool,
}

impl RmtMtio {
    fn errno(&self, r: Result<Reply>) -> std::result::Result<i64, Errno> {
        match r {
            Ok(Reply::Ok(n)) => Ok(n),
            Ok(Reply::Err { errno, .. }) => Err(Errno(errno)),
            Err(_) => Err(Errno::EIO),
        }
    }

    fn field(&mut self, f: u8) -> std::result::Result<i64, Errno> {
        let r = self.conn.request(&[b's', f], b"");
        self.errno(r)
    }
}

impl Mtio for RmtMtio {
    fn describe(&self) -> String {
        self.conn.name.clone()
    }

    fn op(&mut self, op: MtOp, count: i32) -> std::result::Result<i32, Errno> {
        let code = if self.version1 {
            standard_code(op).ok_or(Errno::ENOSYS)?
        } else {
            i64::from(op.code())
        };
        let r = self
            .conn
            .request(format!("I{code}\n{count}\n").as_bytes(), b"");
        self.errno(r).map(|_| count)
    }

    fn status(&mut self) -> std::result::Result<MtStatus, Errno> {
        if self.version1 {
            return Ok(MtStatus {
                mt_type: self.field(b'T')?,
                dsreg: self.field(b'D')?,
                erreg: self.field(b'E')?,
                resid: self.field(b'R')?,
                fileno: self.field(b'F')? as i32,
                blkno: self.field(b'B')? as i32,
                gstat: self.field(b'f')?,
            });
        }
        let r = self.conn.request(b"S\n", b"");
        let n = self.errno(r)?;
        let n = usize::try_from(n).map_err(|_| Errno::EIO)?;
        if n > 4096 {
            return Err(Errno::EIO);
        }
        let mut raw = vec![0u8; n];
        self.conn.data(&mut raw).map_err(|_| Errno::EIO)?;
        // A layout reel cannot read (a big-endian remote) is no status at all.
        MtStatus::from_bytes(&raw).ok_or(Errno::EOVERFLOW)
    }

    fn tell(&mut self) -> std::result::Result<u64, Errno> {
        Err(Errno::ENOSYS)
    }

    fn read(&mut self, buf: &mut [u8]) -> std::result::Result<usize, Errno> {
        read_bytes(&mut self.conn, buf).map_err(|e| match e {
            ReadFail::Errno(e) => e,
            ReadFail::Link => Errno::EIO,
        })
    }

    fn write(&mut self, buf: &[u8]) -> std::result::Result<usize, Errno> {
        let r = self
            .conn
            .request(format!("W{}\n", buf.len()).as_bytes(), buf);
        let n = self.errno(r)?;
        usize::try_from(n).map_err(|_| Errno::EIO)
    }

    fn supports(&self, op: MtOp) -> bool {
        if self.version1 {
            standard_code(op).is_some()
        } else {
            op != MtOp::Tell
        }
    }

    fn can_tell(&self) -> bool {
        false
    }
}

enum ReadFail {
    Errno(Errno),
    Link,
}

/// `R`: at most `buf.len()` bytes.
fn read_bytes(conn: &mut Connection, buf: &mut [u8]) -> std::result::Result<usize, ReadFail> {
    let count = buf.len().min(MAX_RECORD);
    match conn.request(format!("R{count}\n").as_bytes(), b"") {
        Ok(Reply::Ok(n)) => {
            let n = usize::try_from(n).map_err(|_| ReadFail::Link)?;
            if n > count {
                return Err(ReadFail::Link);
            }
            conn.data(&mut buf[..n]).map_err(|_| ReadFail::Link)?;
            Ok(n)
        }
        Ok(Reply::Err { errno, .. }) => Err(ReadFail::Errno(Errno(errno))),
        Err(_) => Err(ReadFail::Link),
    }
}

/// A remote drive.
pub struct RemoteDrive {
    inner: Inner,
}

enum Inner {
    Reel(ReelRemote),
    Tape(StDrive<RmtMtio>, u8),
    File(FileRemote),
}

impl RemoteDrive {
    /// Opens `path` on `host` through the remote shell of `config`.
    pub fn open(host: &str, path: &str, config: &RshConfig) -> Result<RemoteDrive> {
        let name = format!("{host}:{path}");
        let conn = Connection::spawn(host, config, &name)?;
        RemoteDrive::open_over(conn, path)
    }

    /// Opens `path` over an established session.
    pub fn open_over(mut conn: Connection, path: &str) -> Result<RemoteDrive> {
        let writable = conn.open_device(path)?;
        let version1 = matches!(conn.request(b"I-1\n0\n", b"")?, Reply::Ok(v) if v >= 1);
        if version1
            && let Reply::Ok(_) = conn.request(
                format!("i{REEL_PROBE_OP}\n{REEL_PROTOCOL_VERSION}\n").as_bytes(),
                b"",
            )?
        {
            return Ok(RemoteDrive {
                inner: Inner::Reel(ReelRemote { conn }),
            });
        }
        let version = u8::from(version1);
        let mut mtio = RmtMtio { conn, version1 };
        match mtio.status() {
            Ok(_) => {
                let d = StDrive::open(mtio)?;
                Ok(RemoteDrive {
                    inner: Inner::Tape(d, version),
                })
            }
            Err(Errno::ENOTTY) | Err(Errno::EINVAL) | Err(Errno::ENOSYS) => Ok(RemoteDrive {
                inner: Inner::File(FileRemote {
                    conn: mtio.conn,
                    version1,
                    writable,
                }),
            }),
            Err(e) => {
                let name = mtio.conn.name.clone();
                Err(classify(&name, Doing::Status, e, None, None, false))
            }
        }
    }

    pub fn kind(&self) -> RemoteKind {
        match &self.inner {
            Inner::Reel(_) => RemoteKind::Reel,
            Inner::Tape(_, v) => RemoteKind::Tape { version: *v },
            Inner::File(f) => RemoteKind::File {
                version: u8::from(f.version1),
            },
        }
    }

    /// Puts another cartridge in a reel server's drive (a remote changer load): `path` is
    /// a cartridge of the served root. NOT_SUPPORTED for other servers.
    pub fn load_cartridge(&mut self, path: &str) -> Result<()> {
        match &mut self.inner {
            Inner::Reel(r) => r.call(&format!("load {}", message_line(path))).map(drop),
            _ => Err(TapeError::NotSupported(
                "loading a cartridge needs a reel rmt server".into(),
            )),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $d:ident => $call:expr) => {
        match &mut $self.inner {
            Inner::Reel($d) => $call,
            Inner::Tape($d, _) => $call,
            Inner::File($d) => $call,
        }
    };
}

impl TapeDrive for RemoteDrive {
    fn describe(&self) -> String {
        match &self.inner {
            Inner::Reel(r) => format!("rmt:{}", r.conn.name),
            Inner::Tape(d, _) => format!("rmt:{}", d.describe().trim_start_matches("st:")),
            Inner::File(f) => format!("rmt:{} (file)", f.conn.name),
        }
    }
    fn cartridge_name(&self) -> Option<String> {
        match &self.inner {
            Inner::Reel(r) => r.cartridge_name(),
            Inner::Tape(d, _) => d.cartridge_name(),
            Inner::File(f) => f.cartridge_name(),
        }
    }
    fn max_record_len(&self) -> usize {
        match &self.inner {
            Inner::Reel(r) => r.max_record_len(),
            Inner::Tape(d, _) => d.max_record_len().min(MAX_RECORD),
            Inner::File(f) => f.max_record_len(),
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        dispatch!(self, d => d.read(buf))
    }
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        dispatch!(self, d => d.write(buf))
    }
    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> Result<()> {
        dispatch!(self, d => d.write_marks(kind, count, immediate))
    }
    fn set_position(&mut self, to: SeekTo, immediate: bool) -> Result<()> {
        dispatch!(self, d => d.set_position(to, immediate))
    }
    fn position(&mut self, kind: PositionKind) -> Result<Position> {
        dispatch!(self, d => d.position(kind))
    }
    fn status(&mut self) -> Result<()> {
        dispatch!(self, d => d.status())
    }
    fn prepare(&mut self, op: PrepareOp, immediate: bool) -> Result<()> {
        dispatch!(self, d => d.prepare(op, immediate))
    }
    fn erase(&mut self, kind: EraseKind, immediate: bool) -> Result<()> {
        dispatch!(self, d => d.erase(kind, immediate))
    }
    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<()> {
        dispatch!(self, d => d.create_partitions(method, count, size_mb))
    }
    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        dispatch!(self, d => d.drive_parameters())
    }
    fn media_parameters(&mut self) -> Result<MediaParameters> {
        dispatch!(self, d => d.media_parameters())
    }
    fn set_drive_parameters(&mut self, params: &SetDriveParameters) -> Result<()> {
        dispatch!(self, d => d.set_drive_parameters(params))
    }
    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        dispatch!(self, d => d.set_media_parameters(block_size))
    }
    fn flush(&mut self) -> Result<()> {
        dispatch!(self, d => d.flush())
    }
}

/// A reel server: every call as an `X` request.
struct ReelRemote {
    conn: Connection,
}

impl ReelRemote {
    fn fail(&self, message: &str) -> TapeError {
        error_from_wire(message, &self.conn.name)
    }

    /// One request; its reply data, if any.
    fn call(&mut self, line: &str) -> Result<Vec<u8>> {
        match self.conn.request(format!("X{line}\n").as_bytes(), b"")? {
            Reply::Ok(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= 64 * 1024)
                    .ok_or_else(|| {
                        self.conn
                            .io(io::Error::other(format!("reply of {n} bytes")))
                    })?;
                let mut data = vec![0u8; n];
                self.conn.data(&mut data)?;
                Ok(data)
            }
            Reply::Err { message, .. } => Err(self.fail(&message)),
        }
    }

    fn numbers(&mut self, line: &str, want: usize) -> Result<Vec<u64>> {
        let data = self.call(line)?;
        let text = String::from_utf8_lossy(&data);
        let v: Vec<u64> = text
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        if v.len() != want {
            return Err(self.conn.io(io::Error::other(format!(
                "'{line}' answered '{}'",
                message_line(&text)
            ))));
        }
        Ok(v)
    }
}

fn imm(b: bool) -> u8 {
    u8::from(b)
}

impl TapeDrive for ReelRemote {
    fn describe(&self) -> String {
        format!("rmt:{}", self.conn.name)
    }

    fn cartridge_name(&self) -> Option<String> {
        // A remote drive's tape is labelled with a name of its own, as a real drive's.
        None
    }

    fn max_record_len(&self) -> usize {
        // One rmt request carries one record.
        MAX_RECORD
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Err(TapeError::InvalidBlockLength("a read of 0 bytes".into()));
        }
        let count = buf.len().min(MAX_RECORD);
        match self
            .conn
            .request(format!("Xread {count}\n").as_bytes(), b"")?
        {
            Reply::Ok(n) => {
                let n = usize::try_from(n)
                    .ok()
                    .filter(|&n| n <= count)
                    .ok_or_else(|| {
                        self.conn.io(io::Error::other(format!(
                            "read reply of {n} bytes for {count}"
                        )))
                    })?;
                self.conn.data(&mut buf[..n])?;
                Ok(n)
            }
            Reply::Err { message, .. } => {
                let e = self.fail(&message);
                if let TapeError::MoreData { copied, .. } = e {
                    if copied > count {
                        return Err(self.conn.io(io::Error::other("MoreData copied too much")));
                    }
                    self.conn.data(&mut buf[..copied])?;
                }
                Err(e)
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        if buf.len() > MAX_RECORD {
            return Err(TapeError::InvalidBlockLength(format!(
                "{} bytes: an rmt request carries at most {MAX_RECORD}",
                buf.len()
            )));
        }
        match self
            .conn
            .request(format!("Xwrite {}\n", buf.len()).as_bytes(), buf)?
        {
            Reply::Ok(_) => Ok(()),
            Reply::Err { message, .. } => Err(self.fail(&message)),
        }
    }

    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> Result<()> {
        let k = match kind {
            MarkKind::Filemarks => "filemarks",
            MarkKind::Setmarks => "setmarks",
            MarkKind::ShortFilemarks => "short",
            MarkKind::LongFilemarks => "long",
        };
        self.call(&format!("marks {k} {count} {}", imm(immediate)))
            .map(drop)
    }

    fn set_position(&mut self, to: SeekTo, _immediate: bool) -> Result<()> {
        let line = match to {
            SeekTo::AbsoluteBlock(b) => format!("seek absolute {b}"),
            SeekTo::LogicalBlock { partition, block } => {
                format!("seek logical {partition} {block}")
            }
            SeekTo::Rewind => "seek rewind".into(),
            SeekTo::EndOfData { partition } => format!("seek eod {partition}"),
            SeekTo::SpaceFilemarks(n) => format!("seek filemarks {n}"),
            SeekTo::SpaceRelativeBlocks(n) => format!("seek blocks {n}"),
            SeekTo::SpaceSequentialFilemarks(n) => format!("seek seqfilemarks {n}"),
            SeekTo::SpaceSetmarks(n) => format!("seek setmarks {n}"),
            SeekTo::SpaceSequentialSetmarks(n) => format!("seek seqsetmarks {n}"),
        };
        self.call(&line).map(drop)
    }

    fn position(&mut self, kind: PositionKind) -> Result<Position> {
        let k = match kind {
            PositionKind::Logical => "logical",
            PositionKind::Absolute => "absolute",
        };
        let v = self.numbers(&format!("position {k}"), 2)?;
        Ok(Position {
            partition: u32::try_from(v[0]).unwrap_or(0),
            offset: v[1],
        })
    }

    fn status(&mut self) -> Result<()> {
        self.call("status").map(drop)
    }

    fn prepare(&mut self, op: PrepareOp, immediate: bool) -> Result<()> {
        let o = match op {
            PrepareOp::Load => "load",
            PrepareOp::Unload => "unload",
            PrepareOp::Lock => "lock",
            PrepareOp::Unlock => "unlock",
            PrepareOp::Tension => "tension",
            PrepareOp::Format => "format",
        };
        self.call(&format!("prepare {o} {}", imm(immediate)))
            .map(drop)
    }

    fn erase(&mut self, kind: EraseKind, immediate: bool) -> Result<()> {
        let k = match kind {
            EraseKind::Short => "short",
            EraseKind::Long => "long",
        };
        self.call(&format!("erase {k} {}", imm(immediate)))
            .map(drop)
    }

    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> Result<()> {
        let m = match method {
            PartitionMethod::Fixed => "fixed",
            PartitionMethod::Select => "select",
            PartitionMethod::Initiator => "initiator",
        };
        self.call(&format!("partition {m} {count} {size_mb}"))
            .map(drop)
    }

    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        let v = self.numbers("drive", 11)?;
        let u = |i: usize| u32::try_from(v[i]).unwrap_or(u32::MAX);
        Ok(DriveParameters {
            ecc: v[0] != 0,
            compression: v[1] != 0,
            data_padding: v[2] != 0,
            report_setmarks: v[3] != 0,
            default_block_size: u(4),
            maximum_block_size: u(5),
            minimum_block_size: u(6),
            maximum_partition_count: u(7),
            features_low: u(8),
            features_high: u(9),
            eot_warning_zone_size: u(10),
        })
    }

    fn media_parameters(&mut self) -> Result<MediaParameters> {
        let v = self.numbers("media", 5)?;
        Ok(MediaParameters {
            capacity: v[0],
            remaining: v[1],
            block_size: u32::try_from(v[2]).unwrap_or(u32::MAX),
            partition_count: u32::try_from(v[3]).unwrap_or(u32::MAX),
            write_protected: v[4] != 0,
        })
    }

    fn set_drive_parameters(&mut self, p: &SetDriveParameters) -> Result<()> {
        self.call(&format!(
            "setdrive {} {} {} {} {}",
            u8::from(p.ecc),
            u8::from(p.compression),
            u8::from(p.data_padding),
            u8::from(p.report_setmarks),
            p.eot_warning_zone_size
        ))
        .map(drop)
    }

    fn set_media_parameters(&mut self, block_size: u32) -> Result<()> {
        self.call(&format!("setmedia {block_size}")).map(drop)
    }

    fn flush(&mut self) -> Result<()> {
        self.call("flush").map(drop)
    }
}

/// A plain file behind rmt: one tape file of bytes.
struct FileRemote {
    conn: Connection,
    version1: bool,
    writable: bool,
}

impl FileRemote {
    fn unsupported(&self, what: &str) -> TapeError {
        TapeError::NotSupported(format!(
            "{what}: {} is a plain file on the rmt server, not a tape",
            self.conn.name
        ))
    }

    fn errno(&self, errno: i32, doing: Doing) -> TapeError {
        classify(&self.conn.name, doing, Errno(errno), None, None, false)
    }

    fn lseek(&mut self, whence: u8) -> Result<()> {
        // GNU's rmt reads the direction first, the BSD-derived ones the offset first.
        let req = if self.version1 {
            format!("L0\n{whence}\n")
        } else {
            format!("L{whence}\n0\n")
        };
        match self.conn.request(req.as_bytes(), b"")? {
            Reply::Ok(_) => Ok(()),
            Reply::Err { errno, .. } => Err(self.errno(errno, Doing::Seek)),
        }
    }
}

impl TapeDrive for FileRemote {
    fn describe(&self) -> String {
        format!("rmt:{} (file)", self.conn.name)
    }

    fn cartridge_name(&self) -> Option<String> {
        None
    }

    fn max_record_len(&self) -> usize {
        MAX_RECORD
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize> {
        if buf.is_empty() {
            return Err(TapeError::InvalidBlockLength("a read of 0 bytes".into()));
        }
        match read_bytes(&mut self.conn, buf) {
            Ok(0) => Err(TapeError::NoDataDetected),
            Ok(n) => Ok(n),
            Err(ReadFail::Errno(e)) => Err(self.errno(e.0, Doing::Read)),
            Err(ReadFail::Link) => Err(self
                .conn
                .io(io::Error::other("the rmt session failed during a read"))),
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        if buf.is_empty() || buf.len() > MAX_RECORD {
            return Err(TapeError::InvalidBlockLength(format!(
                "{} bytes (1 to {MAX_RECORD} per write)",
                buf.len()
            )));
        }
        if !self.writable {
            return Err(TapeError::WriteProtect(format!(
                "{} was opened read-only",
                self.conn.name
            )));
        }
        match self
            .conn
            .request(format!("W{}\n", buf.len()).as_bytes(), buf)?
        {
            Reply::Ok(n) if n == buf.len() as i64 => Ok(()),
            Reply::Ok(n) => Err(TapeError::EomOverflow(format!(
                "{n} of {} bytes written",
                buf.len()
            ))),
            Reply::Err { errno, .. } => Err(self.errno(errno, Doing::Write)),
        }
    }

    fn write_marks(&mut self, _kind: MarkKind, _count: u32, _immediate: bool) -> Result<()> {
        Err(self.unsupported("tapemarks"))
    }

    fn set_position(&mut self, to: SeekTo, _immediate: bool) -> Result<()> {
        match to {
            SeekTo::Rewind => self.lseek(0),
            SeekTo::EndOfData { partition: 0 | 1 } => self.lseek(2),
            other => Err(self.unsupported(&format!("{other:?}"))),
        }
    }

    fn position(&mut self, _kind: PositionKind) -> Result<Position> {
        Err(self.unsupported("positions"))
    }

    fn status(&mut self) -> Result<()> {
        Ok(())
    }

    fn prepare(&mut self, op: PrepareOp, _immediate: bool) -> Result<()> {
        Err(self.unsupported(&format!("PrepareTape({op:?})")))
    }

    fn erase(&mut self, _kind: EraseKind, _immediate: bool) -> Result<()> {
        Err(self.unsupported("erase"))
    }

    fn create_partitions(&mut self, _m: PartitionMethod, _c: u32, _s: u32) -> Result<()> {
        Err(self.unsupported("partitions"))
    }

    fn drive_parameters(&mut self) -> Result<DriveParameters> {
        Ok(DriveParameters {
            ecc: false,
            compression: false,
            data_padding: false,
            report_setmarks: false,
            default_block_size: 0,
            maximum_block_size: MAX_RECORD as u32,
            minimum_block_size: 1,
            maximum_partition_count: 1,
            features_low: TAPE_DRIVE_VARIABLE_BLOCK,
            features_high: high(&[TAPE_DRIVE_END_OF_DATA]),
            eot_warning_zone_size: 0,
        })
    }

    fn media_parameters(&mut self) -> Result<MediaParameters> {
        Ok(MediaParameters {
            capacity: 0,
            remaining: 0,
            block_size: 0,
            partition_count: 1,
            write_protected: !self.writable,
        })
    }

    fn set_drive_parameters(&mut self, _p: &SetDriveParameters) -> Result<()> {
        Err(self.unsupported("drive settings"))
    }

    fn set_media_parameters(&mut self, _block_size: u32) -> Result<()> {
        Err(self.unsupported("block sizes"))
    }

    fn flush(&mut self) -> Result<()> {
        Ok(())
    }
}
