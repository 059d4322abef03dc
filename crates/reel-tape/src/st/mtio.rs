//! The mtio seam: the handful of calls a Linux st drive understands (MTIOCTOP, MTIOCGET,
//! MTIOCPOS, read, write), behind the [`Mtio`] trait so the mapping onto the Win32 tape
//! semantics ([`super::StDrive`]) is tested with a scripted fake, and so the same mapping
//! drives a remote st drive over rmt.
//!
//! Numbers are Linux's (`<linux/mtio.h>`): the MTIOCTOP operation codes, the `mt_gstat`
//! status bits, the `mt_dsreg` fields and the `struct mtget` layout.

use std::fmt;
use std::path::{Path, PathBuf};

/// An errno value, as st (or a remote rmt server) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(pub i32);

impl Errno {
    pub const EPERM: Errno = Errno(libc::EPERM);
    pub const ENOENT: Errno = Errno(libc::ENOENT);
    pub const EIO: Errno = Errno(libc::EIO);
    pub const ENXIO: Errno = Errno(libc::ENXIO);
    pub const EBADF: Errno = Errno(libc::EBADF);
    pub const EAGAIN: Errno = Errno(libc::EAGAIN);
    pub const ENOMEM: Errno = Errno(libc::ENOMEM);
    pub const EACCES: Errno = Errno(libc::EACCES);
    pub const EBUSY: Errno = Errno(libc::EBUSY);
    pub const EINVAL: Errno = Errno(libc::EINVAL);
    pub const ENOTTY: Errno = Errno(libc::ENOTTY);
    pub const ENOSPC: Errno = Errno(libc::ENOSPC);
    pub const ESPIPE: Errno = Errno(libc::ESPIPE);
    pub const EROFS: Errno = Errno(libc::EROFS);
    pub const ENOSYS: Errno = Errno(libc::ENOSYS);
    pub const EOVERFLOW: Errno = Errno(libc::EOVERFLOW);
    pub const ENOMEDIUM: Errno = Errno(libc::ENOMEDIUM);

    pub fn last() -> Errno {
        Errno(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
        )
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = std::io::Error::from_raw_os_error(self.0);
        write!(f, "errno {}: {}", self.0, e.kind_text())
    }
}

trait KindText {
    fn kind_text(&self) -> String;
}

impl KindText for std::io::Error {
    /// The strerror text without Rust's " (os error N)" suffix.
    fn kind_text(&self) -> String {
        let s = self.to_string();
        match s.rfind(" (os error") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }
}

/// MTIOCTOP operations, with Linux's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum MtOp {
    Reset = 0,
    Fsf = 1,
    Bsf = 2,
    Fsr = 3,
    Bsr = 4,
    Weof = 5,
    Rew = 6,
    Offl = 7,
    Nop = 8,
    Reten = 9,
    Bsfm = 10,
    Fsfm = 11,
    Eom = 12,
    Erase = 13,
    Ras1 = 14,
    Ras2 = 15,
    Ras3 = 16,
    SetBlk = 20,
    SetDensity = 21,
    Seek = 22,
    Tell = 23,
    SetDrvBuffer = 24,
    Fss = 25,
    Bss = 26,
    Wsm = 27,
    Lock = 28,
    Unlock = 29,
    Load = 30,
    Unload = 31,
    Compression = 32,
    SetPart = 33,
    MkPart = 34,
    WeofI = 35,
}

impl MtOp {
    pub const ALL: [MtOp; 33] = [
        MtOp::Reset,
        MtOp::Fsf,
        MtOp::Bsf,
        MtOp::Fsr,
        MtOp::Bsr,
        MtOp::Weof,
        MtOp::Rew,
        MtOp::Offl,
        MtOp::Nop,
        MtOp::Reten,
        MtOp::Bsfm,
        MtOp::Fsfm,
        MtOp::Eom,
        MtOp::Erase,
        MtOp::Ras1,
        MtOp::Ras2,
        MtOp::Ras3,
        MtOp::SetBlk,
        MtOp::SetDensity,
        MtOp::Seek,
        MtOp::Tell,
        MtOp::SetDrvBuffer,
        MtOp::Fss,
        MtOp::Bss,
        MtOp::Wsm,
        MtOp::Lock,
        MtOp::Unlock,
        MtOp::Load,
        MtOp::Unload,
        MtOp::Compression,
        MtOp::SetPart,
        MtOp::MkPart,
        MtOp::WeofI,
    ];

    /// The Linux MTIOCTOP code.
    pub fn code(self) -> i16 {
        self as i16
    }

    pub fn from_code(code: i64) -> Option<MtOp> {
        MtOp::ALL
            .iter()
            .copied()
            .find(|op| i64::from(op.code()) == code)
    }

    /// The `<linux/mtio.h>` name, e.g. `MTFSF`.
    pub fn name(self) -> &'static str {
        match self {
            MtOp::Reset => "MTRESET",
            MtOp::Fsf => "MTFSF",
            MtOp::Bsf => "MTBSF",
            MtOp::Fsr => "MTFSR",
            MtOp::Bsr => "MTBSR",
            MtOp::Weof => "MTWEOF",
            MtOp::Rew => "MTREW",
            MtOp::Offl => "MTOFFL",
            MtOp::Nop => "MTNOP",
            MtOp::Reten => "MTRETEN",
            MtOp::Bsfm => "MTBSFM",
            MtOp::Fsfm => "MTFSFM",
            MtOp::Eom => "MTEOM",
            MtOp::Erase => "MTERASE",
            MtOp::Ras1 => "MTRAS1",
            MtOp::Ras2 => "MTRAS2",
            MtOp::Ras3 => "MTRAS3",
            MtOp::SetBlk => "MTSETBLK",
            MtOp::SetDensity => "MTSETDENSITY",
            MtOp::Seek => "MTSEEK",
            MtOp::Tell => "MTTELL",
            MtOp::SetDrvBuffer => "MTSETDRVBUFFER",
            MtOp::Fss => "MTFSS",
            MtOp::Bss => "MTBSS",
            MtOp::Wsm => "MTWSM",
            MtOp::Lock => "MTLOCK",
            MtOp::Unlock => "MTUNLOCK",
            MtOp::Load => "MTLOAD",
            MtOp::Unload => "MTUNLOAD",
            MtOp::Compression => "MTCOMPRESSION",
            MtOp::SetPart => "MTSETPART",
            MtOp::MkPart => "MTMKPART",
            MtOp::WeofI => "MTWEOFI",
        }
    }
}

/// `mt_gstat` bits (`GMT_*`).
pub mod gmt {
    pub const EOF: u64 = 0x8000_0000;
    pub const BOT: u64 = 0x4000_0000;
    pub const EOT: u64 = 0x2000_0000;
    pub const SM: u64 = 0x1000_0000;
    pub const EOD: u64 = 0x0800_0000;
    pub const WR_PROT: u64 = 0x0400_0000;
    pub const ONLINE: u64 = 0x0100_0000;
    pub const D_6250: u64 = 0x0080_0000;
    pub const D_1600: u64 = 0x0040_0000;
    pub const D_800: u64 = 0x0020_0000;
    pub const DR_OPEN: u64 = 0x0004_0000;
    pub const IM_REP_EN: u64 = 0x0001_0000;
    pub const CLN: u64 = 0x0000_8000;
}

/// `mt_type` of SCSI-2 drives (what st reports for every modern drive).
pub const MT_ISSCSI2: i64 = 0x72;
/// `mt_dsreg` fields.
pub const MT_ST_BLKSIZE_MASK: i64 = 0x00ff_ffff;
pub const MT_ST_DENSITY_SHIFT: u32 = 24;

/// The `struct mtget` of MTIOCGET.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MtStatus {
    pub mt_type: i64,
    /// st puts the current partition (0-based) here.
    pub resid: i64,
    pub dsreg: i64,
    pub gstat: i64,
    pub erreg: i64,
    /// File number (filemarks passed); -1 when unknown.
    pub fileno: i32,
    /// Block number within the file; -1 when unknown.
    pub blkno: i32,
}

/// Size of `struct mtget` on LP64 Linux (x86_64, aarch64, …).
pub const MTGET_SIZE_LP64: usize = 48;
/// Size of `struct mtget` on ILP32 Linux (i386, arm, …).
pub const MTGET_SIZE_ILP32: usize = 28;

impl MtStatus {
    pub fn has(&self, bit: u64) -> bool {
        (self.gstat as u64) & bit != 0
    }

    pub fn block_size(&self) -> u32 {
        (self.dsreg & MT_ST_BLKSIZE_MASK) as u32
    }

    pub fn density(&self) -> u8 {
        ((self.dsreg as u64 >> MT_ST_DENSITY_SHIFT) & 0xff) as u8
    }

    /// The current partition, 0-based (st's `mt_resid`).
    pub fn partition(&self) -> i64 {
        self.resid
    }

    /// The LP64 little-endian layout (what an x86_64 or aarch64 Linux MTIOCGET returns).
    pub fn to_lp64_bytes(&self) -> [u8; MTGET_SIZE_LP64] {
        let mut b = [0u8; MTGET_SIZE_LP64];
        for (i, v) in [self.mt_type, self.resid, self.dsreg, self.gstat, self.erreg]
            .iter()
            .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        b[40..44].copy_from_slice(&self.fileno.to_le_bytes());
        b[44..48].copy_from_slice(&self.blkno.to_le_bytes());
        b
    }

    /// Decodes a little-endian `struct mtget` of either Linux layout (by its size), as an
    /// rmt server's `S` reply carries it. `None` for any other size.
    pub fn from_bytes(b: &[u8]) -> Option<MtStatus> {
        let long64 = |i: usize| -> Option<i64> {
            Some(i64::from_le_bytes(
                b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let int = |at: usize| -> Option<i32> {
            Some(i32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
        };
        match b.len() {
            MTGET_SIZE_LP64 => Some(MtStatus {
                mt_type: long64(0)?,
                resid: long64(1)?,
                dsreg: long64(2)?,
                gstat: long64(3)?,
                erreg: long64(4)?,
                fileno: int(40)?,
                blkno: int(44)?,
            }),
            MTGET_SIZE_ILP32 => Some(MtStatus {
                mt_type: i64::from(int(0)?),
                resid: i64::from(int(4)?),
                dsreg: i64::from(int(8)?),
                // The 32-bit long holds the bits as they are: keep them unsigned.
                gstat: i64::from(int(12)? as u32),
                erreg: i64::from(int(16)?),
                fileno: int(20)?,
                blkno: int(24)?,
            }),
            _ => None,
        }
    }
}

/// The calls a st drive understands. `op` returns the operation's `mt_count` after the
/// call (MTTELL's position; the count otherwise).
pub trait Mtio: Send {
    /// A short name for messages, e.g. `/dev/nst0` or `host:/dev/nst0`.
    fn describe(&self) -> String;
    /// MTIOCTOP.
    fn op(&mut self, op: MtOp, count: i32) -> Result<i32, Errno>;
    /// MTIOCGET.
    fn status(&mut self) -> Result<MtStatus, Errno>;
    /// MTIOCPOS: the logical block (object) number in the current partition.
    fn tell(&mut self) -> Result<u64, Errno>;
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno>;
    fn write(&mut self, buf: &[u8]) -> Result<usize, Errno>;
    /// Whether this channel can carry `op` at all (a remote server may not).
    fn supports(&self, _op: MtOp) -> bool {
        true
    }
    /// Whether MTIOCPOS is available.
    fn can_tell(&self) -> bool {
        true
    }
}

impl<M: Mtio + ?Sized> Mtio for Box<M> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn op(&mut self, op: MtOp, count: i32) -> Result<i32, Errno> {
        (**self).op(op, count)
    }
    fn status(&mut self) -> Result<MtStatus, Errno> {
        (**self).status()
    }
    fn tell(&mut self) -> Result<u64, Errno> {
        (**self).tell()
    }
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        (**self).read(buf)
    }
    fn write(&mut self, buf: &[u8]) -> Result<usize, Errno> {
        (**self).write(buf)
    }
    fn supports(&self, op: MtOp) -> bool {
        (**self).supports(op)
    }
    fn can_tell(&self) -> bool {
        (**self).can_tell()
    }
}

#[repr(C)]
struct RawMtop {
    mt_op: libc::c_short,
    mt_count: libc::c_int,
}

#[repr(C)]
struct RawMtget {
    mt_type: libc::c_long,
    mt_resid: libc::c_long,
    mt_dsreg: libc::c_long,
    mt_gstat: libc::c_long,
    mt_erreg: libc::c_long,
    mt_fileno: libc::c_int,
    mt_blkno: libc::c_int,
}

#[repr(C)]
struct RawMtpos {
    mt_blkno: libc::c_long,
}

/// `_IOC` of the generic Linux ioctl encoding (x86, arm, riscv, loongarch, s390).
const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'm' as u64) << 8) | nr
}
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;
const MTIOCTOP: u64 = ioc(IOC_WRITE, 1, std::mem::size_of::<RawMtop>());
const MTIOCGET: u64 = ioc(IOC_READ, 2, std::mem::size_of::<RawMtget>());
const MTIOCPOS: u64 = ioc(IOC_READ, 3, std::mem::size_of::<RawMtpos>());

/// A local st device (`/dev/nst0`) opened read-write (read-only when the node does not
/// allow writing), with O_NONBLOCK so an empty drive or a write-protected tape opens and
/// the condition is reported per operation.
pub struct DeviceMtio {
    file: std::fs::File,
    path: PathBuf,
}

impl DeviceMtio {
    pub fn open(path: &Path) -> std::io::Result<DeviceMtio> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = |write: bool| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
        };
        let file = match open(true) {
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES) | Some(libc::EROFS) | Some(libc::EPERM)
                ) =>
            {
                open(false)?
            }
            other => other?,
        };
        Ok(DeviceMtio {
            file,
            path: path.to_path_buf(),
        })
    }

    fn fd(&self) -> libc::c_int {
        use std::os::fd::AsRawFd;
        self.file.as_raw_fd()
    }
}

impl Mtio for DeviceMtio {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn op(&mut self, op: MtOp, count: i32) -> Result<i32, Errno> {
        let mut arg = RawMtop {
            mt_op: op.code(),
            mt_count: count,
        };
        // SAFETY: MTIOCTOP takes a pointer to a struct mtop that lives for the call.
        let r = unsafe { libc::ioctl(self.fd(), MTIOCTOP as _, &mut arg as *mut RawMtop) };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(arg.mt_count)
    }

    // c_long is i32 on 32-bit targets: the conversions are not useless there.
    #[allow(clippy::useless_conversion)]
    fn status(&mut self) -> Result<MtStatus, Errno> {
        let mut g = RawMtget {
            mt_type: 0,
            mt_resid: 0,
            mt_dsreg: 0,
            mt_gstat: 0,
            mt_erreg: 0,
            mt_fileno: 0,
            mt_blkno: 0,
        };
        // SAFETY: MTIOCGET fills a struct mtget that lives for the call.
        let r = unsafe { libc::ioctl(self.fd(), MTIOCGET as _, &mut g as *mut RawMtget) };
        if r < 0 {
            return Err(Errno::last());
        }
        Ok(MtStatus {
            mt_type: i64::from(g.mt_type),
            resid: i64::from(g.mt_resid),
            dsreg: i64::from(g.mt_dsreg),
            gstat: i64::from(g.mt_gstat),
            erreg: i64::from(g.mt_erreg),
            fileno: g.mt_fileno,
            blkno: g.mt_blkno,
        })
    }

    #[allow(clippy::useless_conversion)]
    fn tell(&mut self) -> Result<u64, Errno> {
        let mut p = RawMtpos { mt_blkno: 0 };
        // SAFETY: MTIOCPOS fills a struct mtpos that lives for the call.
        let r = unsafe { libc::ioctl(self.fd(), MTIOCPOS as _, &mut p as *mut RawMtpos) };
        if r < 0 {
            return Err(Errno::last());
        }
        u64::try_from(i64::from(p.mt_blkno)).map_err(|_| Errno::EIO)
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Errno> {
        // SAFETY: reads at most buf.len() bytes into buf.
        let n = unsafe { libc::read(self.fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(Errno::last());
        }
        Ok(n as usize)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, Errno> {
        // SAFETY: writes buf.len() bytes from buf.
        let n = unsafe { libc::write(self.fd(), buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(Errno::last());
        }
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_are_linuxs() {
        // The values <linux/mtio.h> gives on x86_64.
        #[cfg(target_pointer_width = "64")]
        {
            assert_eq!(MTIOCTOP, 0x4008_6d01);
            assert_eq!(MTIOCGET, 0x8030_6d02);
            assert_eq!(MTIOCPOS, 0x8008_6d03);
        }
    }

    #[test]
    fn mtget_layouts_round_trip() {
        let s = MtStatus {
            mt_type: MT_ISSCSI2,
            resid: 1,
            dsreg: (0x58 << 24) | 512,
            gstat: (gmt::EOF | gmt::ONLINE | gmt::WR_PROT) as i64,
            erreg: 3,
            fileno: 7,
            blkno: -1,
        };
        let b = s.to_lp64_bytes();
        assert_eq!(MtStatus::from_bytes(&b), Some(s));
        assert_eq!(s.block_size(), 512);
        assert_eq!(s.density(), 0x58);
        assert!(s.has(gmt::EOF) && s.has(gmt::WR_PROT) && !s.has(gmt::BOT));
        // ILP32: seven 32-bit fields.
        let mut b32 = Vec::new();
        for v in [0x72i32, 0, 512, gmt::BOT as i32, 0, 0, 0] {
            b32.extend_from_slice(&v.to_le_bytes());
        }
        let s32 = MtStatus::from_bytes(&b32).expect("28 bytes decode");
        assert!(s32.has(gmt::BOT));
        assert_eq!(s32.block_size(), 512);
        assert_eq!(MtStatus::from_bytes(&b[..47]), None);
    }

    #[test]
    fn op_codes_are_linuxs() {
        assert_eq!(MtOp::Weof.code(), 5);
        assert_eq!(MtOp::Rew.code(), 6);
        assert_eq!(MtOp::Eom.code(), 12);
        assert_eq!(MtOp::Erase.code(), 13);
        assert_eq!(MtOp::SetBlk.code(), 20);
        assert_eq!(MtOp::Wsm.code(), 27);
        assert_eq!(MtOp::MkPart.code(), 34);
        assert_eq!(MtOp::WeofI.code(), 35);
        for op in MtOp::ALL {
            assert_eq!(MtOp::from_code(i64::from(op.code())), Some(op));
        }
        assert_eq!(MtOp::from_code(17), None);
        assert_eq!(MtOp::from_code(-1), None);
    }
}
