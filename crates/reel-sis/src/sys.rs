//! The kernel calls SIS is built on: FIEMAP (extent maps), FIDEDUPERANGE (share extents
//! after the kernel compared the bytes), FICLONE (share all extents), the reparse xattr.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{Mode, OFlags, XattrFlags};
use rustix::io::Errno;
use rustix::ioctl::{Opcode, Updater, ioctl, opcode};

use crate::reparse::{REPARSE_LEN, ReparseData};

/// Name of the xattr holding a link's reparse data.
pub const REPARSE_XATTR: &str = "user.reel.sis";

// ---- FIEMAP -------------------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapHeader {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

const EXTENTS_PER_CALL: usize = 128;

#[repr(C)]
struct FiemapRequest {
    header: FiemapHeader,
    extents: [FiemapExtent; EXTENTS_PER_CALL],
}

const FS_IOC_FIEMAP: Opcode = opcode::read_write::<FiemapHeader>(b'f', 11);
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
const FIEMAP_EXTENT_UNKNOWN: u32 = 0x2;
const FIEMAP_EXTENT_DELALLOC: u32 = 0x4;
const FIEMAP_EXTENT_ENCODED: u32 = 0x8;
const FIEMAP_EXTENT_DATA_INLINE: u32 = 0x200;
const FIEMAP_EXTENT_DATA_TAIL: u32 = 0x400;
const FIEMAP_EXTENT_UNWRITTEN: u32 = 0x800;
const FIEMAP_EXTENT_SHARED: u32 = 0x2000;

/// One mapped extent: `length` bytes at file offset `logical` live at disk address `physical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    pub logical: u64,
    pub physical: u64,
    pub length: u64,
    pub unwritten: bool,
    pub encoded: bool,
}

/// A file's extent map, normalised so that two files sharing the same blocks compare equal
/// however the filesystem split its extent records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtentMap {
    pub extents: Vec<Extent>,
    /// Some extent has no stable disk address (inline, delayed, unknown): such a map never
    /// proves sharing.
    pub unstable: bool,
    /// Some extent is shared with another file (or snapshot).
    pub any_shared: bool,
}

impl ExtentMap {
    /// True when both maps are stable and name the same disk blocks for the same offsets.
    pub fn same_blocks(&self, other: &ExtentMap) -> bool {
        !self.unstable && !other.unstable && self.extents == other.extents
    }
}

/// The extent map of an open file (flushes its dirty pages first, FIEMAP_FLAG_SYNC).
pub fn extent_map(file: &File) -> io::Result<ExtentMap> {
    let mut map = ExtentMap {
        extents: Vec::new(),
        unstable: false,
        any_shared: false,
    };
    let mut start = 0u64;
    // Bounded: each round either advances `start` or ends.
    loop {
        let mut req = FiemapRequest {
            header: FiemapHeader {
                fm_start: start,
                fm_length: u64::MAX - start,
                fm_flags: FIEMAP_FLAG_SYNC,
                fm_extent_count: EXTENTS_PER_CALL as u32,
                ..FiemapHeader::default()
            },
            extents: [FiemapExtent::default(); EXTENTS_PER_CALL],
        };
        // SAFETY: FS_IOC_FIEMAP takes a `struct fiemap` followed by `fm_extent_count`
        // extent records, which is exactly the layout of `FiemapRequest`.
        unsafe {
            let op: Updater<'_, FS_IOC_FIEMAP, FiemapRequest> = Updater::new(&mut req);
            ioctl(file.as_fd(), op)?;
        }
        let count = (req.header.fm_mapped_extents as usize).min(EXTENTS_PER_CALL);
        if count == 0 {
            break;
        }
        let mut last_seen = false;
        for fe in &req.extents[..count] {
            if fe.fe_flags
                & (FIEMAP_EXTENT_UNKNOWN
                    | FIEMAP_EXTENT_DELALLOC
                    | FIEMAP_EXTENT_DATA_INLINE
                    | FIEMAP_EXTENT_DATA_TAIL)
                != 0
            {
                map.unstable = true;
            }
            if fe.fe_flags & FIEMAP_EXTENT_SHARED != 0 {
                map.any_shared = true;
            }
            push_extent(
                &mut map.extents,
                Extent {
                    logical: fe.fe_logical,
                    physical: fe.fe_physical,
                    length: fe.fe_length,
                    unwritten: fe.fe_flags & FIEMAP_EXTENT_UNWRITTEN != 0,
                    encoded: fe.fe_flags & FIEMAP_EXTENT_ENCODED != 0,
                },
            );
            last_seen |= fe.fe_flags & FIEMAP_EXTENT_LAST != 0;
        }
        let last = req.extents[count - 1];
        let next = last.fe_logical.saturating_add(last.fe_length);
        if last_seen || next <= start {
            break;
        }
        start = next;
    }
    Ok(map)
}

/// Appends, merging with the previous extent when both are contiguous on disk and in the file.
fn push_extent(extents: &mut Vec<Extent>, e: Extent) {
    if let Some(prev) = extents.last_mut()
        && !prev.encoded
        && !e.encoded
        && prev.unwritten == e.unwritten
        && prev.logical.checked_add(prev.length) == Some(e.logical)
        && prev.physical.checked_add(prev.length) == Some(e.physical)
    {
        prev.length += e.length;
        return;
    }
    extents.push(e);
}

// ---- FIDEDUPERANGE ------------------------------------------------------------------------

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DedupeRangeHeader {
    src_offset: u64,
    src_length: u64,
    dest_count: u16,
    reserved1: u16,
    reserved2: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DedupeRangeInfo {
    dest_fd: i64,
    dest_offset: u64,
    bytes_deduped: u64,
    status: i32,
    reserved: u32,
}

#[repr(C)]
struct DedupeRequest {
    header: DedupeRangeHeader,
    info: [DedupeRangeInfo; 1],
}

const FIDEDUPERANGE: Opcode = opcode::read_write::<DedupeRangeHeader>(0x94, 54);
const FILE_DEDUPE_RANGE_DIFFERS: i32 = 1;
/// Bytes asked for per call; btrfs works in 16 MiB pieces anyway, and a block multiple
/// keeps every piece but the last aligned.
const DEDUPE_CHUNK: u64 = 16 << 20;

/// What FIDEDUPERANGE found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dedupe {
    /// The whole range was identical and now shares the source's extents.
    Shared,
    /// The bytes differ at or after `offset`: nothing from there on was changed.
    Differs { offset: u64 },
}

/// Makes `len` bytes of `dest` share `src`'s extents, if and only if the kernel finds the
/// bytes identical. The destination's content never changes.
pub fn dedupe_whole(src: &File, dest: &File, len: u64) -> io::Result<Dedupe> {
    let mut offset = 0u64;
    while offset < len {
        let want = (len - offset).min(DEDUPE_CHUNK);
        let mut req = DedupeRequest {
            header: DedupeRangeHeader {
                src_offset: offset,
                src_length: want,
                dest_count: 1,
                ..DedupeRangeHeader::default()
            },
            info: [DedupeRangeInfo {
                dest_fd: i64::from(std::os::fd::AsRawFd::as_raw_fd(dest)),
                dest_offset: offset,
                ..DedupeRangeInfo::default()
            }],
        };
        // SAFETY: FIDEDUPERANGE takes a `struct file_dedupe_range` followed by `dest_count`
        // `struct file_dedupe_range_info` records, which is the layout of `DedupeRequest`;
        // `dest_fd` is a descriptor we keep open for the duration of the call.
        unsafe {
            let op: Updater<'_, FIDEDUPERANGE, DedupeRequest> = Updater::new(&mut req);
            ioctl(src.as_fd(), op)?;
        }
        let info = req.info[0];
        if info.status < 0 {
            return Err(io::Error::from_raw_os_error(-info.status));
        }
        if info.status == FILE_DEDUPE_RANGE_DIFFERS {
            return Ok(Dedupe::Differs { offset });
        }
        if info.bytes_deduped == 0 {
            return Err(io::Error::other(format!(
                "FIDEDUPERANGE made no progress at byte {offset}"
            )));
        }
        offset += info.bytes_deduped.min(want);
    }
    Ok(Dedupe::Shared)
}

/// Makes `dest` share all of `src`'s extents (FICLONE): `dest` becomes a copy of `src`.
pub fn clone_whole(dest: &File, src: &File) -> io::Result<()> {
    rustix::fs::ioctl_ficlone(dest, src).map_err(io::Error::from)
}

/// True for the errors that mean "this filesystem cannot share extents".
pub fn is_no_reflink(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::EINVAL | libc::ENOTTY | libc::EXDEV | libc::ENOSYS)
    )
}

// ---- reparse xattr ------------------------------------------------------------------------

/// A file's reparse data: `Ok(None)` when it has none, `Err` only for I/O failures; data
/// that is not reel's (wrong size, damaged) is reported as `Ok(Some(Err(..)))`.
pub fn read_reparse(file: &File) -> io::Result<Option<crate::Result<ReparseData>>> {
    let mut buf = [0u8; REPARSE_LEN + 1];
    match rustix::fs::fgetxattr(file, REPARSE_XATTR, &mut buf[..]) {
        Ok(n) => Ok(Some(ReparseData::from_bytes(&buf[..n.min(buf.len())]))),
        Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => Ok(None),
        Err(Errno::RANGE) => Ok(Some(Err(crate::error::corrupt(
            "SIS reparse data",
            REPARSE_LEN,
            "longer than 52 bytes",
        )))),
        Err(e) => Err(e.into()),
    }
}

/// Writes a file's reparse data.
pub fn write_reparse(file: &File, reparse: &ReparseData) -> io::Result<()> {
    rustix::fs::fsetxattr(
        file,
        REPARSE_XATTR,
        &reparse.to_bytes(),
        XattrFlags::empty(),
    )
    .map_err(io::Error::from)
}

/// Removes a file's reparse data (absent is fine).
pub fn remove_reparse(file: &File) -> io::Result<()> {
    match rustix::fs::fremovexattr(file, REPARSE_XATTR) {
        Ok(()) | Err(Errno::NODATA) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

// ---- opening files ------------------------------------------------------------------------

/// Opens a regular file for reading without following a final symlink, and without updating
/// its access time where we may (the owner or root).
pub fn open_read(path: &Path) -> io::Result<File> {
    let base = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, base | OFlags::NOATIME, Mode::empty()) {
        Err(Errno::PERM) => rustix::fs::open(path, base, Mode::empty())?,
        other => other?,
    };
    Ok(File::from(fd))
}

/// Opens a file so that it can be the destination of FIDEDUPERANGE and carry an xattr:
/// read-only where that is allowed (owner or root; no write open, so no close-write event
/// and no change of mtime), else for writing.
pub fn open_dedupe_dest(path: &Path) -> io::Result<File> {
    match open_read(path) {
        Ok(f) => Ok(f),
        Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
            let fd = rustix::fs::open(
                path,
                OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            Ok(File::from(fd))
        }
        Err(e) => Err(e),
    }
}

/// Reads the whole of `file` from offset 0 and returns its BLAKE3 hash and length.
pub fn hash_file(file: &File, buf: &mut [u8]) -> io::Result<(crate::ContentHash, u64)> {
    use std::os::unix::fs::FileExt;
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0u64;
    loop {
        let n = match file.read_at(buf, offset) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok((crate::ContentHash(*hasher.finalize().as_bytes()), offset))
}

/// Free bytes for unprivileged users on the filesystem of `path`, after committing it.
pub fn measured_free_bytes(path: &Path) -> io::Result<u64> {
    let dir = File::open(path)?;
    rustix::fs::syncfs(&dir)?;
    let st = rustix::fs::fstatvfs(&dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}
