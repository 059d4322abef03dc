//! The model of one file: what it is and its metadata, as captured from disk.

use std::ffi::{OsStr, OsString};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, CWD, FileType, StatxFlags};

use crate::acl::Acl;
use crate::error::{Result, StreamError};
use crate::sparse::SparseMap;
use crate::xattrs::Xattr;

/// What kind of file an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
}

impl FileKind {
    pub fn from_file_type(t: FileType) -> Option<FileKind> {
        Some(match t {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::Socket => FileKind::Socket,
            FileType::Unknown => return None,
        })
    }

    /// One letter, as `ls -l` shows it.
    pub fn letter(self) -> char {
        match self {
            FileKind::Regular => '-',
            FileKind::Directory => 'd',
            FileKind::Symlink => 'l',
            FileKind::Fifo => 'p',
            FileKind::CharDevice => 'c',
            FileKind::BlockDevice => 'b',
            FileKind::Socket => 's',
        }
    }
}

/// A point in time with nanoseconds (seconds may be negative: before 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

impl Timestamp {
    pub fn new(secs: i64, nanos: u32) -> Self {
        Timestamp { secs, nanos }
    }

    /// `secs[.nnnnnnnnn]`, the pax notation (trailing zeros of the fraction dropped).
    pub fn to_decimal(self) -> String {
        let mut out = Vec::with_capacity(24);
        self.push_decimal(&mut out);
        // Only ASCII digits, '-' and '.' were written.
        String::from_utf8(out).unwrap_or_default()
    }

    /// Appends [`Timestamp::to_decimal`]'s text to `out` (no allocation of its own: it runs
    /// several times per member of a backup).
    pub fn push_decimal(self, out: &mut Vec<u8>) {
        if self.nanos == 0 {
            if self.secs < 0 {
                out.push(b'-');
            }
            push_digits(out, self.secs.unsigned_abs(), 1);
            return;
        }
        // For negative times pax writes the value as a signed decimal: -1.5 = secs -2 + 0.5.
        let (negative, whole, frac) = if self.secs < 0 {
            let total = i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos);
            let abs = total.unsigned_abs();
            // |secs| < 2^63, so the whole seconds fit in a u64.
            (
                true,
                (abs / 1_000_000_000) as u64,
                (abs % 1_000_000_000) as u32,
            )
        } else {
            (false, self.secs as u64, self.nanos)
        };
        if negative {
            out.push(b'-');
        }
        push_digits(out, whole, 1);
        if frac != 0 {
            out.push(b'.');
            let at = out.len();
            push_digits(out, u64::from(frac), 9);
            while out.len() > at && out.last() == Some(&b'0') {
                out.pop();
            }
        }
    }

    /// Parses `secs[.fraction]` (pax time notation); `None` when malformed. Digits of the
    /// fraction past the nanoseconds are dropped.
    ///
    /// One pass and no allocation: it runs for the times of every member of a set index and
    /// of a pax archive read.
    pub fn parse_decimal(text: &str) -> Option<Timestamp> {
        let (neg, body) = match text.as_bytes() {
            [b'-', rest @ ..] => (true, rest),
            all => (false, all),
        };
        let (whole_digits, frac) = match body.iter().position(|&b| b == b'.') {
            Some(dot) => (&body[..dot], &body[dot + 1..]),
            None => (body, &[][..]),
        };
        if whole_digits.is_empty() {
            return None;
        }
        // u64: the whole seconds of i64::MIN (`-9223372036854775808`) are past i64::MAX.
        let mut whole = 0u64;
        for &b in whole_digits {
            whole = whole.checked_mul(10)?.checked_add(u64::from(digit(b)?))?;
        }
        let (nano_digits, dropped) = frac.split_at(frac.len().min(9));
        let mut nanos = 0u32;
        for &b in nano_digits {
            nanos = nanos * 10 + u32::from(digit(b)?);
        }
        nanos *= 10u32.pow(9 - nano_digits.len() as u32);
        for &b in dropped {
            digit(b)?;
        }
        if !neg {
            return Some(Timestamp::new(i64::try_from(whole).ok()?, nanos));
        }
        let total = -(i128::from(whole) * 1_000_000_000 + i128::from(nanos));
        let secs = total.div_euclid(1_000_000_000);
        let nanos = total.rem_euclid(1_000_000_000) as u32;
        Some(Timestamp::new(i64::try_from(secs).ok()?, nanos))
    }
}

/// The value of an ASCII decimal digit.
fn digit(b: u8) -> Option<u8> {
    let d = b.wrapping_sub(b'0');
    (d <= 9).then_some(d)
}

/// Appends `value` in decimal, zero-padded to at least `width` digits.
// u64, not u128: a u128 division by 10 is a library call, and this runs for every time of
// every member.
fn push_digits(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while value != 0 {
        i -= 1;
        buf[i] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    let start = i.min(buf.len().saturating_sub(width.max(1)));
    out.extend_from_slice(&buf[start..]);
}

/// A file as captured: kind, identity and metadata. Content is read separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    pub kind: FileKind,
    /// Permission bits with setuid/setgid/sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Owner and group names, when the system knows them.
    pub user: Option<String>,
    pub group: Option<String>,
    /// Content length of a regular file; 0 for others.
    pub size: u64,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub ctime: Timestamp,
    /// Creation time, where the file system records it.
    pub btime: Option<Timestamp>,
    /// Device numbers (major, minor) of a character or block device.
    pub rdev: Option<(u32, u32)>,
    /// Target of a symlink, as stored (bytes, not resolved).
    pub symlink_target: Option<OsString>,
    /// Identity on the source file system, for hard links and change detection.
    pub dev: u64,
    pub ino: u64,
    pub nlink: u64,
    /// Extended attributes carried as such (`user.*`, `trusted.*`, `security.*`), sorted
    /// by name. ACLs are not among them.
    pub xattrs: Vec<Xattr>,
    /// POSIX access ACL beyond the mode bits, and the default ACL of a directory.
    pub acl_access: Option<Acl>,
    pub acl_default: Option<Acl>,
    /// chattr flags (only [`crate::flags::RESTORABLE`] bits).
    pub flags: u32,
    /// Data extents of a sparse regular file (`None`: dense). The content carried in
    /// archives and streams is then the extents' bytes only.
    pub sparse: Option<SparseMap>,
}

impl FileMeta {
    /// A minimal description (for entries built from archives rather than disk).
    pub fn new(kind: FileKind, mode: u32) -> FileMeta {
        FileMeta {
            kind,
            mode,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            size: 0,
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            btime: None,
            rdev: None,
            symlink_target: None,
            dev: 0,
            ino: 0,
            nlink: 1,
            xattrs: Vec::new(),
            acl_access: None,
            acl_default: None,
            flags: 0,
            sparse: None,
        }
    }

    /// Bytes of content carried for this file: the file size, or the data of a sparse one.
    pub fn content_len(&self) -> u64 {
        match &self.sparse {
            Some(map) => map.data_len(),
            None => self.size,
        }
    }

    /// Does the file carry facts beyond owner, mode and times (xattrs, ACLs, flags)?
    pub fn has_extended_facts(&self) -> bool {
        !self.xattrs.is_empty()
            || self.acl_access.is_some()
            || self.acl_default.is_some()
            || self.flags != 0
    }
}

/// Reads everything about `path` (a final symlink is not followed): stat, xattrs, ACLs,
/// chattr flags and the sparse map. Problems that do not stop the capture (an attribute
/// that cannot be read, a file system without flags support, …) are dropped; use
/// [`capture_reporting`] to get them.
pub fn capture(path: &Path, names: &mut crate::names::NameCache) -> Result<FileMeta> {
    capture_reporting(path, names).map(|(m, _)| m)
}

/// Like [`capture`], also returning what could not be captured, one message per problem
/// (for the caller to report per file).
pub fn capture_reporting(
    path: &Path,
    names: &mut crate::names::NameCache,
) -> Result<(FileMeta, Vec<String>)> {
    let c = capture_open(path, names)?;
    Ok((c.meta, c.warnings))
}

/// A file as captured, with the descriptor its flags and holes were read through: for a
/// regular file, open for reading its content (so it is opened once, and what is read is the
/// very inode that was described).
#[derive(Debug)]
pub struct Captured {
    pub meta: FileMeta,
    pub file: Option<std::fs::File>,
    /// What could not be read (never fatal), one line each.
    pub warnings: Vec<String>,
}

/// Like [`capture_reporting`], keeping the open file of a regular file for its content.
pub fn capture_open(path: &Path, names: &mut crate::names::NameCache) -> Result<Captured> {
    capture_open_at(CWD, path.as_os_str(), path, names)
}

/// [`capture_open`] of the entry `name` of the directory open as `dir` (a walker keeps its
/// current directory open, so each entry costs a one-component lookup instead of a walk of
/// its whole path); `path` is the entry's full path, for messages and for the attributes of
/// entries that are not opened (symlinks, devices, fifos).
///
/// The entry is opened `O_PATH | O_NOFOLLOW` first and everything is read through that
/// descriptor: its stat, its link target, and, for a regular file or directory, the file
/// reopened from it (through `/proc/self/fd`), whose attributes and flags are then read. So
/// all of it describes one inode, a final symlink is never followed, and nothing that took
/// the entry's place (a device node) is ever opened.
pub fn capture_open_at(
    dir: impl AsFd,
    name: &OsStr,
    path: &Path,
    names: &mut crate::names::NameCache,
) -> Result<Captured> {
    use rustix::fs::{Mode, OFlags};
    let pathfd = rustix::fs::openat(
        dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| StreamError::io(path, "stat", e.into()))?;
    let stx = rustix::fs::statx(
        &pathfd,
        "",
        AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .map_err(|e| StreamError::io(path, "stat", e.into()))?;
    let (mut meta, allocated) = meta_of_statx(&stx, path, names, || {
        rustix::fs::readlinkat(&pathfd, "", Vec::new())
    })?;
    let mut warnings = Vec::new();
    let shown = path.display();
    let mut opened = None;
    let mut unreadable = None;
    if matches!(meta.kind, FileKind::Regular | FileKind::Directory) {
        match reopen(&pathfd) {
            Ok(file) => opened = Some(file),
            Err(e) => unreadable = Some(e),
        }
    }
    drop(pathfd);
    // Attributes through the open file when there is one (same inode as the stat), else by
    // path with the `l*` calls, which do not follow a final symlink.
    let xattrs = match &opened {
        Some(file) => crate::xattrs::capture_fd(file),
        None => crate::xattrs::capture(path),
    };
    match xattrs {
        Ok(c) => {
            meta.xattrs = c.xattrs;
            for (raw, slot, what) in [
                (c.acl_access, &mut meta.acl_access, "access ACL"),
                (c.acl_default, &mut meta.acl_default, "default ACL"),
            ] {
                if let Some(raw) = raw {
                    match Acl::from_xattr(&raw) {
                        Ok(mut acl) => {
                            acl.resolve_names(names);
                            *slot = Some(acl);
                        }
                        Err(e) => warnings.push(format!("{shown}: {what} not backed up: {e}")),
                    }
                }
            }
            for name in c.skipped {
                warnings.push(format!(
                    "{shown}: extended attribute {name} is not carried (only user.*, trusted.*, security.* and POSIX ACLs are)"
                ));
            }
        }
        Err(e) => warnings.push(format!("{shown}: extended attributes not backed up: {e}")),
    }
    match unreadable {
        // Unreadable files are reported when their content is read.
        Some(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {}
        Some(e) => warnings.push(format!("{shown}: chattr flags and holes not read: {e}")),
        None => {}
    }
    if let Some(file) = &opened {
        match crate::flags::get(file) {
            Ok(f) => meta.flags = f.unwrap_or(0) & crate::flags::RESTORABLE,
            Err(e) => warnings.push(format!("{shown}: chattr flags not backed up: {e}")),
        }
        // A file with as many bytes allocated as it is long has no holes: no need to ask
        // (the common case, one seek saved per file).
        if meta.kind == FileKind::Regular && allocated < meta.size {
            match crate::sparse::scan(file, meta.size) {
                Ok(map) => meta.sparse = map,
                Err(e) => warnings.push(format!(
                    "{shown}: cannot find its holes ({e}); stored as a dense file"
                )),
            }
        }
    }
    if meta.kind != FileKind::Regular {
        opened = None;
    }
    Ok(Captured {
        meta,
        file: opened,
        warnings,
    })
}

/// Opens for reading the regular file or directory that `pathfd` (an `O_PATH` descriptor)
/// refers to: that very inode, through `/proc/self/fd`, so whatever took its name since
/// (a device node, whose open could have side effects) is not opened.
///
/// The name is looked up in `/proc/self/fd`, kept open: a walk of the whole path revalidates
/// each `/proc` directory on every call, which made this a seventh of a small-file backup.
fn reopen(pathfd: &rustix::fd::OwnedFd) -> std::io::Result<std::fs::File> {
    use rustix::fs::{Mode, OFlags};
    // Kept with the process that opened it: a child forked without exec would otherwise
    // look its descriptors up in its parent's table.
    type ProcFds = (rustix::process::Pid, Option<rustix::fd::OwnedFd>);
    static PROC_FDS: std::sync::OnceLock<ProcFds> = std::sync::OnceLock::new();
    let (opener, fds) = PROC_FDS.get_or_init(|| {
        let fds = rustix::fs::open(
            "/proc/self/fd",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        (rustix::process::getpid(), fds)
    });
    let fds = fds
        .as_ref()
        .filter(|_| *opener == rustix::process::getpid());
    let number = std::os::fd::AsRawFd::as_raw_fd(pathfd).to_string();
    let base = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let open = |flags: OFlags| match fds {
        Some(dir) => rustix::fs::openat(dir, number.as_str(), flags, Mode::empty()),
        None => rustix::fs::open(format!("/proc/self/fd/{number}"), flags, Mode::empty()),
    };
    let fd = match open(base | OFlags::NOATIME) {
        Err(rustix::io::Errno::PERM) => open(base)?,
        other => other?,
    };
    Ok(std::fs::File::from(fd))
}

/// Reads the stat part of the metadata of `path` without following a final symlink.
pub fn capture_stat(path: &Path, names: &mut crate::names::NameCache) -> Result<FileMeta> {
    let stx = rustix::fs::statx(
        CWD,
        path,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )
    .map_err(|e| StreamError::io(path, "stat", e.into()))?;
    meta_of_statx(&stx, path, names, || rustix::fs::readlink(path, Vec::new())).map(|(m, _)| m)
}

/// The metadata in `stx` (of `path`) and the bytes allocated to the file; `read_link`
/// reads the target of a symlink.
fn meta_of_statx(
    stx: &rustix::fs::Statx,
    path: &Path,
    names: &mut crate::names::NameCache,
    read_link: impl FnOnce() -> rustix::io::Result<std::ffi::CString>,
) -> Result<(FileMeta, u64)> {
    let file_type = FileType::from_raw_mode(u32::from(stx.stx_mode));
    let kind = FileKind::from_file_type(file_type).ok_or_else(|| StreamError::Unsupported {
        path: path.to_path_buf(),
        what: format!("file type of mode {:#o}", stx.stx_mode),
    })?;
    let ts = |t: rustix::fs::StatxTimestamp| Timestamp::new(t.tv_sec, t.tv_nsec);
    let symlink_target = if kind == FileKind::Symlink {
        let target = read_link().map_err(|e| StreamError::io(path, "readlink", e.into()))?;
        Some(OsStr::from_bytes(target.as_bytes()).to_os_string())
    } else {
        None
    };
    let rdev = matches!(kind, FileKind::CharDevice | FileKind::BlockDevice)
        .then_some((stx.stx_rdev_major, stx.stx_rdev_minor));
    let allocated = stx.stx_blocks.saturating_mul(512);
    let meta = FileMeta {
        kind,
        mode: u32::from(stx.stx_mode) & 0o7777,
        uid: stx.stx_uid,
        gid: stx.stx_gid,
        user: names.user_name(stx.stx_uid),
        group: names.group_name(stx.stx_gid),
        size: if kind == FileKind::Regular {
            stx.stx_size
        } else {
            0
        },
        mtime: ts(stx.stx_mtime),
        atime: ts(stx.stx_atime),
        ctime: ts(stx.stx_ctime),
        btime: (stx.stx_mask & StatxFlags::BTIME.bits() != 0).then(|| ts(stx.stx_btime)),
        rdev,
        symlink_target,
        dev: (u64::from(stx.stx_dev_major) << 32) | u64::from(stx.stx_dev_minor),
        ino: stx.stx_ino,
        nlink: u64::from(stx.stx_nlink),
        xattrs: Vec::new(),
        acl_access: None,
        acl_default: None,
        flags: 0,
        sparse: None,
    };
    Ok((meta, allocated))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The notation as first written (with `format!`), which `push_decimal` must match
    /// byte for byte: the text is in every archive and index written so far.
    fn decimal_reference(t: Timestamp) -> String {
        if t.nanos == 0 {
            return t.secs.to_string();
        }
        let (sign, whole, frac) = if t.secs < 0 {
            let total = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
            let abs = total.unsigned_abs();
            (
                "-",
                (abs / 1_000_000_000) as u64,
                (abs % 1_000_000_000) as u32,
            )
        } else {
            ("", t.secs as u64, t.nanos)
        };
        let mut f = format!("{frac:09}");
        while f.ends_with('0') {
            f.pop();
        }
        if f.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{f}")
        }
    }

    /// `Timestamp::parse_decimal` written plainly (strings, std parsers).
    fn parse_reference(text: &str) -> Option<Timestamp> {
        let (neg, body) = match text.strip_prefix('-') {
            Some(b) => (true, b),
            None => (false, text),
        };
        let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
        if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole: u64 = whole.parse().ok()?;
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        let nanos: u32 = digits.parse().ok()?;
        let total = i128::from(whole) * 1_000_000_000 + i128::from(nanos);
        let total = if neg { -total } else { total };
        let secs = i64::try_from(total.div_euclid(1_000_000_000)).ok()?;
        Some(Timestamp::new(secs, total.rem_euclid(1_000_000_000) as u32))
    }

    proptest::proptest! {
        #[test]
        fn decimal_matches_the_reference(secs: i64, nanos: u32, small in -3i64..3, ns in 0u32..1_000_000_000) {
            for t in [Timestamp::new(secs, nanos), Timestamp::new(small, ns), Timestamp::new(secs, ns)] {
                proptest::prop_assert_eq!(t.to_decimal(), decimal_reference(t));
            }
        }

        /// The one-pass parser reads what the plain one (`parse_reference`) reads, and
        /// refuses what it refuses.
        #[test]
        fn parse_matches_the_reference(
            text in "-?[0-9]{0,21}(\\.[0-9]{0,12})?",
            junk in "[-.0-9x+ ]{0,25}",
        ) {
            for t in [&text, &junk] {
                proptest::prop_assert_eq!(Timestamp::parse_decimal(t), parse_reference(t), "{}", t);
            }
        }

        /// Every time reads back from its text exactly (set index lines store times so).
        #[test]
        fn decimal_reads_back_exactly(secs: i64, ns in 0u32..1_000_000_000) {
            let t = Timestamp::new(secs, ns);
            proptest::prop_assert_eq!(Timestamp::parse_decimal(&t.to_decimal()), Some(t));
        }
    }

    #[test]
    fn decimal_edges_match_the_reference() {
        for secs in [
            i64::MIN,
            i64::MIN + 1,
            -1_000_000_001,
            -2,
            -1,
            0,
            1,
            i64::MAX,
        ] {
            for nanos in [0, 1, 10, 500_000_000, 999_999_999, 1_000_000_000, u32::MAX] {
                let t = Timestamp::new(secs, nanos);
                assert_eq!(t.to_decimal(), decimal_reference(t), "{t:?}");
            }
        }
    }

    /// Capturing through an open directory describes each kind of entry exactly as
    /// capturing by path does, never follows a final symlink, and hands back an open file
    /// for regular files only.
    #[test]
    fn capture_through_the_directory_matches_capture_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let file = root.join("file");
        reel_testkit::write_file(&file, &reel_testkit::pseudo_random(7, 5000));
        // A user.* attribute where the file system takes one (tmpfs and ext4 do).
        let has_xattr = rustix::fs::setxattr(
            &file,
            "user.reel-test",
            b"value",
            rustix::fs::XattrFlags::empty(),
        )
        .is_ok();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(&file, root.join("link")).unwrap();
        std::os::unix::fs::symlink("sub", root.join("dirlink")).unwrap();
        nix::unistd::mkfifo(
            &root.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap();
        let dirfd = rustix::fs::open(
            root,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .unwrap();
        let mut names = crate::names::NameCache::new();
        for (name, kind) in [
            ("file", FileKind::Regular),
            ("sub", FileKind::Directory),
            ("link", FileKind::Symlink),
            ("dirlink", FileKind::Symlink),
            ("fifo", FileKind::Fifo),
        ] {
            let path = root.join(name);
            let at = capture_open_at(&dirfd, OsStr::new(name), &path, &mut names).unwrap();
            let mut by_path = capture_open(&path, &mut names).unwrap();
            assert_eq!(at.meta.kind, kind, "{name}");
            // Reading a symlink's target may touch its atime (relatime) between the two.
            by_path.meta.atime = at.meta.atime;
            assert_eq!(at.meta, by_path.meta, "{name}");
            assert!(at.warnings.is_empty(), "{name}: {:?}", at.warnings);
            assert_eq!(at.file.is_some(), kind == FileKind::Regular, "{name}");
        }
        let at =
            capture_open_at(&dirfd, OsStr::new("link"), &root.join("link"), &mut names).unwrap();
        assert_eq!(at.meta.symlink_target.as_deref(), Some(file.as_os_str()));
        let at = capture_open_at(&dirfd, OsStr::new("file"), &file, &mut names).unwrap();
        assert_eq!(at.meta.size, 5000);
        if has_xattr {
            assert_eq!(
                at.meta.xattrs,
                vec![crate::xattrs::Xattr::new("user.reel-test", "value")]
            );
        }
        // The open file is the captured inode, ready to read.
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut at.file.unwrap(), &mut content).unwrap();
        assert_eq!(content, reel_testkit::pseudo_random(7, 5000));
        // A name that is gone is an error naming the path.
        let err = capture_open_at(&dirfd, OsStr::new("gone"), &root.join("gone"), &mut names)
            .unwrap_err()
            .to_string();
        assert!(err.contains("gone"), "{err}");
    }

    #[test]
    fn decimal_times_round_trip() {
        for (t, s) in [
            (Timestamp::new(0, 0), "0"),
            (Timestamp::new(1_700_000_000, 5), "1700000000.000000005"),
            (Timestamp::new(12, 500_000_000), "12.5"),
            (Timestamp::new(-2, 500_000_000), "-1.5"),
            (Timestamp::new(-1, 0), "-1"),
            (Timestamp::new(i64::MIN, 0), "-9223372036854775808"),
            (
                Timestamp::new(i64::MIN, 1),
                "-9223372036854775807.999999999",
            ),
            (
                Timestamp::new(i64::MAX, 999_999_999),
                "9223372036854775807.999999999",
            ),
        ] {
            assert_eq!(t.to_decimal(), s);
            assert_eq!(Timestamp::parse_decimal(s), Some(t), "{s}");
        }
        assert_eq!(
            Timestamp::parse_decimal("1.1234567891"),
            Some(Timestamp::new(1, 123_456_789))
        );
        for bad in [
            "",
            ".5",
            "1x",
            "1.2.3",
            "-",
            "+1",
            "1e5",
            "1.+5",
            "1.-5",
            "9223372036854775808",
            "-9223372036854775809",
            "-9223372036854775808.5",
            "99999999999999999999",
        ] {
            assert_eq!(Timestamp::parse_decimal(bad), None, "{bad}");
        }
    }
}
