//! The rmt server: reel cartridges for rmt clients (GNU tar, GNU mt, star, dump, reel).
//!
//! The device name of an `O` request is a cartridge directory: absolute, or relative to the
//! served root (`NAME` also finds `NAME.vtape`). Anything outside the root is refused, and so
//! are `..` components; with O_CREAT a missing cartridge `NAME` is created as `NAME.vtape`.
//!
//! The cartridge behaves as a Linux st drive opened through its no-rewind device
//! (`/dev/nst0`): the position is kept between sessions (in the cartridge's `drive.toml`),
//! so `mt fsf 1` in one session and `tar -t` in the next read the second tape file.
//!
//! | request | on the cartridge |
//! |---|---|
//! | `W` | one record (variable mode) or whole blocks (fixed mode); early warning as st shows it: the write completes, the next one fails with ENOSPC, the one after goes through |
//! | `R` | one record; a filemark reads 0 bytes (and is passed); end of data reads 0 bytes, then EIO; a record longer than the count: ENOMEM, and the record is passed (as st) |
//! | `I` MTWEOF, MTWEOFI, MTWSM | filemarks, setmarks |
//! | `I` MTFSF, MTBSF, MTFSFM, MTBSFM, MTFSR, MTBSR, MTFSS, MTBSS, MTREW, MTEOM, MTSEEK, MTSETPART | positioning |
//! | `I` MTTELL | the logical position, as the reply's number |
//! | `I` MTERASE, MTMKPART, MTSETBLK, MTCOMPRESSION, MTLOAD, MTUNLOAD, MTOFFL, MTLOCK, MTUNLOCK, MTRETEN, MTNOP, MTRESET | erase, partition, settings, load and lock, tension, flush |
//! | `S`, `s` | a Linux LP64 `struct mtget`: partition in `mt_resid`, block size in `mt_dsreg`, file and block numbers, GMT_BOT/EOF/SM/EOD/EOT/WR_PROT/ONLINE/DR_OPEN |
//! | `L` | ESPIPE, as on a tape |
//!
//! Nothing is written implicitly: closing after a write adds no filemark unless the
//! server runs with `mark_on_close` (st's behaviour).

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::drive::*;
use crate::error::TapeError;
use crate::library::Library;
use crate::rmt::protocol::*;
use crate::st::mtio::{MT_ISSCSI2, MtOp, MtStatus, gmt};
use crate::vtape::{
    CARTRIDGE_FILE, Cartridge, CartridgeConfig, DRIVE_STATE_FILE, StateFile, VirtualDrive,
};

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Cartridges are served from here only.
    pub root: PathBuf,
    /// Capacity of cartridges created by an open with O_CREAT.
    pub new_capacity: u64,
    /// Write a filemark when a device is closed right after a write (st's behaviour).
    pub mark_on_close: bool,
    /// Answer the extended protocol's handshake (`I-1`: standard codes, `i`, `s`), as
    /// dump's and star's rmt do. Off: behave like GNU's rmt (Linux codes only).
    pub extended: bool,
    /// Offer reel's extension to reel clients (every tape call carried as it is). Off:
    /// reel clients drive the cartridge through the st mapping, like any rmt client.
    pub reel_extension: bool,
}

impl ServerConfig {
    pub fn new(root: impl Into<PathBuf>) -> ServerConfig {
        ServerConfig {
            root: root.into(),
            new_capacity: 16 << 30,
            mark_on_close: false,
            extended: true,
            reel_extension: true,
        }
    }
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The client closed its side.
    Done,
    /// The input could not be followed any more (reported to the client with `E`).
    Desynchronized(String),
}

struct Open {
    drive: VirtualDrive,
    dir: PathBuf,
    writable: bool,
    /// A read has met the end of data: the next one fails (st: 0 bytes, then EIO).
    eod_read: bool,
    /// st's GMT_EOD: the last motion ended at the end of data.
    at_eod: bool,
    /// The last write entered the early-warning zone: refuse the next (st's ENOSPC).
    refuse_next_write: bool,
    wrote_last: bool,
}

struct Session<'a> {
    config: &'a ServerConfig,
    root: PathBuf,
    open: Option<Open>,
    /// The client asked for the extended protocol (`I-1`).
    version1: bool,
}

type Outcome = Result<Option<i64>, (i32, String)>;

fn tape_err(e: &TapeError) -> (i32, String) {
    (errno_for(e), e.to_string())
}

/// Serves one client on `input`/`output` until it goes away.
pub fn serve(
    input: impl Read,
    output: impl Write,
    config: &ServerConfig,
) -> io::Result<SessionEnd> {
    let root = config.root.canonicalize().map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("the served root {}: {e}", config.root.display()),
        )
    })?;
    let mut reader = RequestReader::new(BufReader::with_capacity(256 * 1024, input));
    let mut out = BufWriter::with_capacity(256 * 1024, output);
    let mut s = Session {
        config,
        root,
        open: None,
        version1: false,
    };
    let mut buf: Vec<u8> = Vec::new();
    let end = loop {
        let incoming = match reader.next_request() {
            Ok(i) => i,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break SessionEnd::Done,
            Err(e) => {
                s.close();
                return Err(e);
            }
        };
        let req = match incoming {
            Incoming::End => break SessionEnd::Done,
            Incoming::Bad(bad) => {
                write_error(&mut out, bad.errno, &bad.message)?;
                out.flush()?;
                if bad.fatal {
                    break SessionEnd::Desynchronized(bad.message);
                }
                continue;
            }
            Incoming::Request(r) => r,
        };
        match req {
            Request::Write { count } => {
                buf.resize(count, 0);
                if let Err(e) = reader.input().read_exact(&mut buf) {
                    let msg = format!("premature end of input in {count} bytes of data ({e})");
                    write_error(&mut out, libc::EIO, &msg)?;
                    out.flush()?;
                    break SessionEnd::Desynchronized(msg);
                }
                reader.consumed(count);
                let r = s.write(&buf);
                reply(&mut out, r)?;
            }
            Request::Read { count } => {
                buf.resize(count, 0);
                match s.read(&mut buf) {
                    Ok(n) => write_data(&mut out, &buf[..n])?,
                    Err((errno, msg)) => write_error(&mut out, errno, &msg)?,
                }
            }
            Request::Status => match s.status() {
                Ok(st) => write_data(&mut out, &st.to_lp64_bytes())?,
                Err((errno, msg)) => write_error(&mut out, errno, &msg)?,
            },
            Request::Reel { .. } if !config.reel_extension => {
                write_error(&mut out, libc::EINVAL, "reel's extension is off")?;
            }
            Request::Reel { line } => match s.reel(&line, &mut reader, &mut out, &mut buf) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
                    ) =>
                {
                    out.flush()?;
                    s.close();
                    return Ok(SessionEnd::Desynchronized(e.to_string()));
                }
                Err(e) => return Err(e),
            },
            other => {
                let r = s.handle(other);
                reply(&mut out, r)?;
            }
        }
        out.flush()?;
        // Records in the tens of MiB should not stay allocated between requests.
        if buf.capacity() > 4 << 20 {
            buf = Vec::new();
        }
    };
    s.close();
    out.flush()?;
    Ok(end)
}

fn reply(out: &mut dyn Write, r: Outcome) -> io::Result<()> {
    match r {
        Ok(n) => write_ok(out, n.unwrap_or(0)),
        Err((errno, msg)) => write_error(out, errno, &msg),
    }
}

impl Session<'_> {
    fn drive(&mut self) -> Result<&mut Open, (i32, String)> {
        self.open
            .as_mut()
            .ok_or((libc::EBADF, "no device is open (send O first)".to_string()))
    }

    fn close(&mut self) -> Option<(i32, String)> {
        let mut o = self.open.take()?;
        let mut err = None;
        if self.config.mark_on_close
            && o.wrote_last
            && let Err(e) = o.drive.write_marks(MarkKind::Filemarks, 1, false)
        {
            err = Some(tape_err(&e));
        }
        if let Err(e) = o.drive.flush() {
            err = err.or(Some(tape_err(&e)));
        }
        err
    }

    /// The cartridge directory a device name stands for, inside the root.
    fn resolve(&self, device: &[u8], create: bool) -> Result<(PathBuf, bool), (i32, String)> {
        use std::os::unix::ffi::OsStrExt;
        let shown = excerpt(device);
        if device.is_empty() || device.contains(&0) {
            return Err((libc::ENOENT, format!("invalid device name '{shown}'")));
        }
        let path = Path::new(std::ffi::OsStr::from_bytes(device));
        if path.components().any(|c| c == Component::ParentDir) {
            return Err((
                libc::EACCES,
                format!("'{shown}': '..' is not allowed in device names"),
            ));
        }
        let full = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.root.join(path)
        };
        let outside = || {
            (
                libc::EACCES,
                format!(
                    "'{shown}' is outside the served root {}",
                    self.root.display()
                ),
            )
        };
        let inside = |p: &Path| -> Result<PathBuf, (i32, String)> {
            let c = p.canonicalize().map_err(|e| {
                (
                    e.raw_os_error().unwrap_or(libc::EIO),
                    format!("'{shown}': {e}"),
                )
            })?;
            if c.starts_with(&self.root) {
                Ok(c)
            } else {
                Err(outside())
            }
        };
        let mut with_suffix = full.clone().into_os_string();
        with_suffix.push(".vtape");
        let with_suffix = PathBuf::from(with_suffix);
        for candidate in [&full, &with_suffix] {
            if candidate.symlink_metadata().is_ok() {
                let c = inside(candidate)?;
                if !c.join(CARTRIDGE_FILE).is_file() {
                    return Err((
                        libc::ENOENT,
                        format!("'{shown}' is not a reel cartridge (no {CARTRIDGE_FILE})"),
                    ));
                }
                return Ok((c, false));
            }
        }
        if !create {
            return Err((
                libc::ENOENT,
                format!(
                    "no cartridge '{shown}' in {} (create one with `reel tape new`, or open with O_CREAT)",
                    self.root.display()
                ),
            ));
        }
        let parent = full.parent().ok_or_else(outside)?;
        let parent = inside(parent)?;
        let name = full
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".vtape").to_string())
            .unwrap_or_default();
        Library::check_name(&name).map_err(|e| tape_err(&e))?;
        // Named as a library names its cartridges, so `reel tape` finds it.
        let dir = parent.join(format!("{name}.vtape"));
        Cartridge::create(&dir, &CartridgeConfig::new(&name, self.config.new_capacity))
            .map_err(|e| tape_err(&e))?;
        Ok((dir, true))
    }

    fn open_device(&mut self, device: &[u8], flags: OpenFlags) -> Outcome {
        if let Some(e) = self.close() {
            return Err(e);
        }
        let (dir, _created) = self.resolve(device, flags.create)?;
        let drive = VirtualDrive::open_with_state(
            &dir,
            StateFile {
                path: dir.join(DRIVE_STATE_FILE),
                keep_position: true,
            },
        )
        .map_err(|e| match e {
            TapeError::Io { ref source, .. } if source.kind() == io::ErrorKind::WouldBlock => (
                libc::EBUSY,
                format!("{}: in use by another program", dir.display()),
            ),
            e => tape_err(&e),
        })?;
        self.open = Some(Open {
            drive,
            dir,
            writable: flags.write,
            eod_read: false,
            at_eod: false,
            refuse_next_write: false,
            wrote_last: false,
        });
        Ok(None)
    }

    fn handle(&mut self, req: Request) -> Outcome {
        match req {
            Request::Open { device, flags } => self.open_device(&device, flags),
            Request::Close => match self.close() {
                Some(e) => Err(e),
                None => Ok(None),
            },
            Request::Seek { .. } => {
                self.drive()?;
                Err((libc::ESPIPE, "a tape cannot seek by bytes".into()))
            }
            Request::Ioctl { op, count } => {
                if op == -1 && self.config.extended {
                    // The extended protocol (version 1): standard codes and i/s.
                    self.version1 = true;
                    return Ok(Some(1));
                }
                let op = if self.version1 {
                    standard_op(op)
                } else {
                    MtOp::from_code(op)
                };
                let op = op.ok_or((libc::EINVAL, "unknown MTIOCTOP operation".to_string()))?;
                self.ioctl(op, count)
            }
            Request::ExtIoctl { op, count } => {
                if !self.config.extended {
                    return Err((libc::EINVAL, "no extended operations".into()));
                }
                if op == REEL_PROBE_OP {
                    return if self.config.reel_extension {
                        Ok(Some(REEL_PROTOCOL_VERSION))
                    } else {
                        Err((libc::EINVAL, "reel's extension is off".into()))
                    };
                }
                match op {
                    2 => self.ioctl(MtOp::Reten, count),
                    3 => self.ioctl(MtOp::Erase, count),
                    4 => self.ioctl(MtOp::Eom, count),
                    5 => {
                        // MTNBSF: back to the beginning of the file `count` files back.
                        let o = self.drive()?;
                        let back = count.checked_add(1).and_then(i64::checked_neg);
                        let back = back.ok_or((libc::EINVAL, "count out of range".into()))?;
                        match o.drive.set_position(SeekTo::SpaceFilemarks(back), false) {
                            Ok(()) => {
                                let r = o.drive.set_position(SeekTo::SpaceFilemarks(1), false);
                                moved(o, r)
                            }
                            Err(TapeError::BeginningOfMedia) => Ok(None),
                            Err(e) => Err(tape_err(&e)),
                        }
                    }
                    0 | 1 => Err((
                        libc::EINVAL,
                        "a virtual drive has no cache to switch".into(),
                    )),
                    _ => Err((libc::EINVAL, "unknown extended operation".into())),
                }
            }
            Request::ExtStatus { field } => {
                if !self.config.extended {
                    return Err((libc::EINVAL, "no extended status".into()));
                }
                let s = self.status()?;
                let v = match field {
                    b'T' => s.mt_type,
                    b'D' => s.dsreg,
                    b'E' => s.erreg,
                    b'R' => s.resid,
                    b'F' => i64::from(s.fileno),
                    b'B' => i64::from(s.blkno),
                    b'f' => s.gstat,
                    b'b' => 0,
                    _ => return Err((libc::EINVAL, "unknown status field".into())),
                };
                Ok(Some(v))
            }
            Request::Write { .. }
            | Request::Read { .. }
            | Request::Status
            | Request::Reel { .. } => {
                Err((libc::EINVAL, "internal: request handled elsewhere".into()))
            }
        }
    }

    fn write(&mut self, data: &[u8]) -> Outcome {
        let o = self.drive()?;
        if !o.writable {
            return Err((libc::EBADF, "the device was opened read-only".into()));
        }
        o.eod_read = false;
        o.at_eod = false;
        if std::mem::take(&mut o.refuse_next_write) {
            // st: after the write that met the early warning, one write fails.
            return Err((libc::ENOSPC, "end of medium (early warning)".into()));
        }
        match o.drive.write(data) {
            Ok(()) => {
                o.wrote_last = true;
                Ok(Some(data.len() as i64))
            }
            Err(TapeError::EarlyWarning) => {
                o.wrote_last = true;
                o.refuse_next_write = true;
                Ok(Some(data.len() as i64))
            }
            Err(e) => Err(tape_err(&e)),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, (i32, String)> {
        let o = self.drive()?;
        o.wrote_last = false;
        match o.drive.read(buf) {
            Ok(n) => {
                o.eod_read = false;
                o.at_eod = false;
                Ok(n)
            }
            Err(TapeError::FilemarkDetected) | Err(TapeError::SetmarkDetected) => {
                o.eod_read = false;
                o.at_eod = false;
                Ok(0)
            }
            Err(TapeError::NoDataDetected) => {
                o.at_eod = true;
                if std::mem::replace(&mut o.eod_read, true) {
                    Err((libc::EIO, "end of recorded data".into()))
                } else {
                    Ok(0)
                }
            }
            Err(e) => Err(tape_err(&e)),
        }
    }

    /// A Linux `struct mtget` for the cartridge.
    fn status(&mut self) -> Result<MtStatus, (i32, String)> {
        let o = self.drive()?;
        let mut s = MtStatus {
            mt_type: MT_ISSCSI2,
            resid: 0,
            dsreg: 0,
            gstat: 0,
            erreg: 0,
            fileno: -1,
            blkno: -1,
        };
        let Some(d) = o.drive.position_detail() else {
            s.gstat = gmt::DR_OPEN as i64;
            return Ok(s);
        };
        let mut bits = gmt::ONLINE;
        if d.block == 0 {
            bits |= gmt::BOT;
        }
        if d.after_filemark {
            bits |= gmt::EOF;
        }
        if d.after_setmark {
            bits |= gmt::SM;
        }
        if o.at_eod && d.block == d.objects {
            bits |= gmt::EOD;
        }
        if d.in_warning_zone {
            bits |= gmt::EOT;
        }
        if d.write_protected {
            bits |= gmt::WR_PROT;
        }
        s.gstat = bits as i64;
        s.resid = i64::from(d.partition) - 1;
        s.dsreg = i64::from(d.block_size) & crate::st::mtio::MT_ST_BLKSIZE_MASK;
        s.fileno = i32::try_from(d.file_number).unwrap_or(i32::MAX);
        s.blkno = i32::try_from(d.block_in_file).unwrap_or(i32::MAX);
        Ok(s)
    }

    fn ioctl(&mut self, op: MtOp, count: i64) -> Outcome {
        let o = self.drive()?;
        let writes = matches!(
            op,
            MtOp::Weof | MtOp::WeofI | MtOp::Wsm | MtOp::Erase | MtOp::MkPart
        );
        if writes && !o.writable {
            return Err((libc::EACCES, "the device was opened read-only".into()));
        }
        let n32 = || -> Result<u32, (i32, String)> {
            u32::try_from(count)
                .map_err(|_| (libc::EINVAL, format!("count {count} is out of range")))
        };
        o.eod_read = false;
        o.refuse_next_write = false;
        o.wrote_last = false;
        let d = &mut o.drive;
        let r = match op {
            MtOp::Weof => d.write_marks(MarkKind::Filemarks, n32()?, false),
            MtOp::WeofI => d.write_marks(MarkKind::Filemarks, n32()?, true),
            MtOp::Wsm => d.write_marks(MarkKind::Setmarks, n32()?, false),
            MtOp::Fsf => d.set_position(SeekTo::SpaceFilemarks(count), false),
            MtOp::Bsf => d.set_position(SeekTo::SpaceFilemarks(neg(count)?), false),
            MtOp::Fsfm => d
                .set_position(SeekTo::SpaceFilemarks(count), false)
                .and_then(|()| d.set_position(SeekTo::SpaceFilemarks(-1), false)),
            MtOp::Bsfm => d
                .set_position(SeekTo::SpaceFilemarks(neg(count)?), false)
                .and_then(|()| d.set_position(SeekTo::SpaceFilemarks(1), false)),
            MtOp::Fsr => d.set_position(SeekTo::SpaceRelativeBlocks(count), false),
            MtOp::Bsr => d.set_position(SeekTo::SpaceRelativeBlocks(neg(count)?), false),
            MtOp::Fss => d.set_position(SeekTo::SpaceSetmarks(count), false),
            MtOp::Bss => d.set_position(SeekTo::SpaceSetmarks(neg(count)?), false),
            MtOp::Rew | MtOp::Reset => d.set_position(SeekTo::Rewind, false),
            MtOp::Eom => d.set_position(SeekTo::EndOfData { partition: 0 }, false),
            MtOp::Seek => {
                let block = u64::try_from(count)
                    .map_err(|_| (libc::EINVAL, format!("block {count} is negative")))?;
                d.set_position(
                    SeekTo::LogicalBlock {
                        partition: 0,
                        block,
                    },
                    false,
                )
            }
            MtOp::Tell => {
                return d
                    .position(PositionKind::Logical)
                    .map(|p| Some(p.offset as i64))
                    .map_err(|e| tape_err(&e));
            }
            MtOp::SetPart => {
                let p = u32::try_from(count)
                    .ok()
                    .and_then(|p| p.checked_add(1))
                    .ok_or((libc::EINVAL, format!("partition {count} is out of range")))?;
                d.set_position(
                    SeekTo::LogicalBlock {
                        partition: p,
                        block: 0,
                    },
                    false,
                )
            }
            MtOp::Erase => d.erase(
                if count == 0 {
                    EraseKind::Short
                } else {
                    EraseKind::Long
                },
                false,
            ),
            MtOp::MkPart => {
                let total_mb = d
                    .cartridge()
                    .map(|c| c.config().capacity >> 20)
                    .unwrap_or(0);
                if count == 0 {
                    d.create_partitions(PartitionMethod::Initiator, 1, 0)
                } else {
                    // Negative: the size of st's partition 0; positive: of partition 1.
                    let first = if count < 0 {
                        count.unsigned_abs()
                    } else {
                        total_mb.saturating_sub(count as u64)
                    };
                    let first = u32::try_from(first)
                        .ok()
                        .filter(|&f| f > 0 && u64::from(f) < total_mb)
                        .ok_or((
                            libc::EINVAL,
                            format!("a partition of {count} MB does not fit {total_mb} MB"),
                        ))?;
                    d.create_partitions(PartitionMethod::Initiator, 2, first)
                }
            }
            MtOp::SetBlk => {
                let bs = u32::try_from(count & crate::st::mtio::MT_ST_BLKSIZE_MASK).unwrap_or(0);
                d.set_media_parameters(bs)
            }
            MtOp::Compression => d.drive_parameters().and_then(|p| {
                d.set_drive_parameters(&SetDriveParameters {
                    ecc: p.ecc,
                    compression: count != 0,
                    data_padding: p.data_padding,
                    report_setmarks: p.report_setmarks,
                    eot_warning_zone_size: p.eot_warning_zone_size,
                })
            }),
            MtOp::Load => d.prepare(PrepareOp::Load, false),
            MtOp::Unload => d.prepare(PrepareOp::Unload, false),
            MtOp::Offl => d
                .set_position(SeekTo::Rewind, false)
                .and_then(|()| d.prepare(PrepareOp::Unload, false)),
            MtOp::Lock => d.prepare(PrepareOp::Lock, false),
            MtOp::Unlock => d.prepare(PrepareOp::Unlock, false),
            MtOp::Reten => d.prepare(PrepareOp::Tension, false),
            MtOp::Nop => d.flush(),
            MtOp::Ras1 | MtOp::Ras2 | MtOp::Ras3 | MtOp::SetDensity | MtOp::SetDrvBuffer => {
                return Err((
                    libc::ENOSYS,
                    format!("{} is not supported by a virtual drive", op.name()),
                ));
            }
        };
        let o = self.drive()?;
        let r = moved(o, r);
        if op == MtOp::Eom && r.is_ok() {
            // st's GMT_EOD after spacing to the end of data.
            o.at_eod = true;
        }
        r
    }

    /// One request of reel's extension.
    fn reel<R: BufRead>(
        &mut self,
        line: &str,
        reader: &mut RequestReader<R>,
        out: &mut dyn Write,
        buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
        let verb = words.first().copied().unwrap_or("");
        let args = &words[words.len().min(1)..];
        if verb == "write" {
            // The data follows whatever the outcome: read it first.
            let count = match args.first().map(|a| number(a.as_bytes(), "byte count")) {
                Some(Ok(n)) if (0..=MAX_RECORD as i64).contains(&n) => n as usize,
                _ => {
                    return write_error(
                        out,
                        libc::EINVAL,
                        "write needs a byte count within limits",
                    )
                    .and_then(|()| {
                        Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "reel write without a usable byte count",
                        ))
                    });
                }
            };
            buf.resize(count, 0);
            reader.input().read_exact(buf)?;
            reader.consumed(count);
            let r = match self.drive() {
                Ok(o) if !o.writable => Err(read_only()),
                Ok(o) => o.drive.write(buf),
                Err((_, m)) => Err(TapeError::NotReady(m)),
            };
            return reel_reply(out, r.map(|()| None));
        }
        if verb == "read" {
            let count = match args.first().map(|a| number(a.as_bytes(), "byte count")) {
                Some(Ok(n)) if (1..=MAX_RECORD as i64).contains(&n) => n as usize,
                _ => return reel_reply(out, Err(inval("read needs a byte count within limits"))),
            };
            buf.resize(count, 0);
            let r = match self.drive() {
                Ok(o) => o.drive.read(buf),
                Err((_, m)) => Err(TapeError::NotReady(m)),
            };
            return match r {
                Ok(n) => write_data(out, &buf[..n]),
                Err(TapeError::MoreData { record_len, copied }) => {
                    let e = TapeError::MoreData { record_len, copied };
                    write_error(out, errno_for(&e), &error_to_wire(&e))?;
                    out.write_all(&buf[..copied])
                }
                Err(e) => write_error(out, errno_for(&e), &error_to_wire(&e)),
            };
        }
        let r = self.reel_call(verb, args);
        reel_reply(out, r)
    }

    /// A reel-extension call other than `read` and `write`: `verb` with its arguments.
    fn reel_call(&mut self, verb: &str, a: &[&str]) -> Result<Option<Vec<u8>>, TapeError> {
        if verb == "load" {
            return self.reel_load(&a.join(" ")).map(|()| None);
        }
        let o = self
            .open
            .as_mut()
            .ok_or_else(|| TapeError::NotReady("no device is open (send O first)".into()))?;
        let writable = o.writable;
        let d = &mut o.drive;
        let args = CallArgs { verb, words: a };
        let text = |v: String| Ok(Some(v.into_bytes()));
        match verb {
            "marks" | "erase" | "partition" if !writable => Err(read_only()),
            "marks" => d
                .write_marks(args.mark_kind()?, args.small(1)?, args.flag(2)?)
                .map(|()| None),
            "seek" => d.set_position(args.seek_to()?, false).map(|()| None),
            "position" => {
                let p = d.position(args.position_kind()?)?;
                text(format!("{} {}", p.partition, p.offset))
            }
            "status" => d.status().map(|()| None),
            "prepare" => d
                .prepare(args.prepare_op(writable)?, args.flag(1)?)
                .map(|()| None),
            "erase" => d.erase(args.erase_kind()?, args.flag(1)?).map(|()| None),
            "partition" => d
                .create_partitions(args.partition_method()?, args.small(1)?, args.small(2)?)
                .map(|()| None),
            "drive" => text(drive_parameters_text(&d.drive_parameters()?)),
            "media" => text(media_parameters_text(&d.media_parameters()?)),
            "setdrive" => d
                .set_drive_parameters(&args.drive_parameters()?)
                .map(|()| None),
            "setmedia" => d.set_media_parameters(args.small(0)?).map(|()| None),
            "flush" => d.flush().map(|()| None),
            "describe" => text(d.describe()),
            _ => Err(inval(&format!(
                "unknown reel request '{}'",
                message_line(verb)
            ))),
        }
    }

    /// `load PATH`: loads the cartridge at `path` (resolved as an `O` request's name) into
    /// the open device.
    fn reel_load(&mut self, path: &str) -> Result<(), TapeError> {
        let (dir, _) = self
            .resolve(path.as_bytes(), false)
            .map_err(|(_, m)| TapeError::InvalidParameter(m))?;
        let o = self
            .open
            .as_mut()
            .ok_or_else(|| TapeError::NotReady("no device is open".into()))?;
        o.drive.load_cartridge(&dir)?;
        o.dir = dir;
        Ok(())
    }
}

fn read_only() -> TapeError {
    TapeError::WriteProtect("the device was opened read-only".into())
}

/// The arguments of a reel-extension call, by position, as the tape calls take them.
struct CallArgs<'a> {
    verb: &'a str,
    words: &'a [&'a str],
}

impl CallArgs<'_> {
    fn first(&self) -> Option<&str> {
        self.words.first().copied()
    }

    fn int(&self, i: usize) -> Result<i64, TapeError> {
        self.words
            .get(i)
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                inval(&format!(
                    "{}: argument {} is missing or no number",
                    self.verb,
                    i + 1
                ))
            })
    }

    fn small(&self, i: usize) -> Result<u32, TapeError> {
        u32::try_from(self.int(i)?).map_err(|_| {
            inval(&format!(
                "{}: argument {} is out of range",
                self.verb,
                i + 1
            ))
        })
    }

    fn flag(&self, i: usize) -> Result<bool, TapeError> {
        Ok(self.int(i)? != 0)
    }

    fn block(&self, i: usize) -> Result<u64, TapeError> {
        u64::try_from(self.int(i)?).map_err(|_| inval("negative block"))
    }

    fn mark_kind(&self) -> Result<MarkKind, TapeError> {
        Ok(match self.first() {
            Some("filemarks") => MarkKind::Filemarks,
            Some("setmarks") => MarkKind::Setmarks,
            Some("short") => MarkKind::ShortFilemarks,
            Some("long") => MarkKind::LongFilemarks,
            _ => return Err(inval("marks: unknown kind")),
        })
    }

    fn seek_to(&self) -> Result<SeekTo, TapeError> {
        Ok(match self.first() {
            Some("absolute") => SeekTo::AbsoluteBlock(self.block(1)?),
            Some("logical") => SeekTo::LogicalBlock {
                partition: self.small(1)?,
                block: self.block(2)?,
            },
            Some("rewind") => SeekTo::Rewind,
            Some("eod") => SeekTo::EndOfData {
                partition: self.small(1)?,
            },
            Some("filemarks") => SeekTo::SpaceFilemarks(self.int(1)?),
            Some("blocks") => SeekTo::SpaceRelativeBlocks(self.int(1)?),
            Some("seqfilemarks") => SeekTo::SpaceSequentialFilemarks(self.int(1)?),
            Some("setmarks") => SeekTo::SpaceSetmarks(self.int(1)?),
            Some("seqsetmarks") => SeekTo::SpaceSequentialSetmarks(self.int(1)?),
            _ => return Err(inval("seek: unknown method")),
        })
    }

    fn position_kind(&self) -> Result<PositionKind, TapeError> {
        match self.first() {
            Some("logical") => Ok(PositionKind::Logical),
            Some("absolute") => Ok(PositionKind::Absolute),
            _ => Err(inval("position: logical or absolute")),
        }
    }

    /// The operation of `prepare`; `format` only on a device opened for writing.
    fn prepare_op(&self, writable: bool) -> Result<PrepareOp, TapeError> {
        Ok(match self.first() {
            Some("load") => PrepareOp::Load,
            Some("unload") => PrepareOp::Unload,
            Some("lock") => PrepareOp::Lock,
            Some("unlock") => PrepareOp::Unlock,
            Some("tension") => PrepareOp::Tension,
            Some("format") if writable => PrepareOp::Format,
            Some("format") => return Err(read_only()),
            _ => return Err(inval("prepare: unknown operation")),
        })
    }

    fn erase_kind(&self) -> Result<EraseKind, TapeError> {
        match self.first() {
            Some("short") => Ok(EraseKind::Short),
            Some("long") => Ok(EraseKind::Long),
            _ => Err(inval("erase: short or long")),
        }
    }

    fn partition_method(&self) -> Result<PartitionMethod, TapeError> {
        match self.first() {
            Some("fixed") => Ok(PartitionMethod::Fixed),
            Some("select") => Ok(PartitionMethod::Select),
            Some("initiator") => Ok(PartitionMethod::Initiator),
            _ => Err(inval("partition: unknown method")),
        }
    }

    /// `setdrive ECC COMPRESSION PADDING SETMARKS EOT_ZONE`.
    fn drive_parameters(&self) -> Result<SetDriveParameters, TapeError> {
        Ok(SetDriveParameters {
            ecc: self.flag(0)?,
            compression: self.flag(1)?,
            data_padding: self.flag(2)?,
            report_setmarks: self.flag(3)?,
            eot_warning_zone_size: self.small(4)?,
        })
    }
}

/// The reply to `drive`: the parameters, space-separated, flags as 0 or 1.
fn drive_parameters_text(p: &DriveParameters) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {} {}",
        u8::from(p.ecc),
        u8::from(p.compression),
        u8::from(p.data_padding),
        u8::from(p.report_setmarks),
        p.default_block_size,
        p.maximum_block_size,
        p.minimum_block_size,
        p.maximum_partition_count,
        p.features_low,
        p.features_high,
        p.eot_warning_zone_size
    )
}

/// The reply to `media`.
fn media_parameters_text(m: &MediaParameters) -> String {
    format!(
        "{} {} {} {} {}",
        m.capacity,
        m.remaining,
        m.block_size,
        m.partition_count,
        u8::from(m.write_protected)
    )
}

fn inval(m: &str) -> TapeError {
    TapeError::InvalidParameter(m.to_string())
}

fn reel_reply(out: &mut dyn Write, r: Result<Option<Vec<u8>>, TapeError>) -> io::Result<()> {
    match r {
        Ok(None) => write_ok(out, 0),
        Ok(Some(data)) => write_data(out, &data),
        Err(e) => write_error(out, errno_for(&e), &error_to_wire(&e)),
    }
}

fn neg(count: i64) -> Result<i64, (i32, String)> {
    count
        .checked_neg()
        .ok_or((libc::EINVAL, format!("count {count} is out of range")))
}

/// Records where a motion left the tape (st's end-of-data state) and turns its result
/// into a reply.
fn moved(o: &mut Open, r: Result<(), TapeError>) -> Outcome {
    o.at_eod = matches!(r, Err(TapeError::NoDataDetected));
    r.map(|()| None).map_err(|e| tape_err(&e))
}

/// The standard (BSD/Sun) MTIOCTOP codes of the extended protocol.
fn standard_op(op: i64) -> Option<MtOp> {
    Some(match op {
        0 => MtOp::Weof,
        1 => MtOp::Fsf,
        2 => MtOp::Bsf,
        3 => MtOp::Fsr,
        4 => MtOp::Bsr,
        5 => MtOp::Rew,
        6 => MtOp::Offl,
        7 => MtOp::Nop,
        8 => MtOp::Reten,
        9 => MtOp::Erase,
        10 => MtOp::Eom,
        _ => return None,
    })
}

/// The standard (GNU rmt `I-1`) code of an operation, for clients.
pub fn standard_code(op: MtOp) -> Option<i64> {
    (0..=10).find(|&c| standard_op(c) == Some(op))
}
