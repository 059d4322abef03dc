//! Extended attributes: reading them without following symlinks and writing them on a file
//! being restored, by open descriptor or by name in a directory opened safely.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::acl::{XATTR_ACCESS, XATTR_DEFAULT};

/// One extended attribute. Names are bytes (`user.foo`); values are raw bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl Xattr {
    pub fn new(name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Xattr {
        Xattr {
            name: name.into(),
            value: value.into(),
        }
    }

    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// `security.*` attributes (SELinux label, capabilities, IMA): they travel with the
    /// security data, and `security.capability` must be set after the owner.
    pub fn is_security(&self) -> bool {
        self.name.starts_with(b"security.")
    }
}

/// Namespaces reel carries as plain attributes (ACLs are carried as ACLs).
pub fn is_carried_name(name: &[u8]) -> bool {
    name.starts_with(b"user.") || name.starts_with(b"trusted.") || name.starts_with(b"security.")
}

/// Largest value Linux allows (`XATTR_SIZE_MAX`).
pub const MAX_VALUE: usize = 65536;

/// What was read from a file's attributes.
#[derive(Debug, Default)]
pub struct Captured {
    pub xattrs: Vec<Xattr>,
    pub acl_access: Option<Vec<u8>>,
    pub acl_default: Option<Vec<u8>>,
    /// Names read but not carried (other `system.*` attributes), to report.
    pub skipped: Vec<String>,
}

fn not_supported(e: &rustix::io::Errno) -> bool {
    matches!(*e, rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::PERM)
}

/// Where attributes are read from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// By path, not following a final symlink (`llistxattr`, `lgetxattr`).
    Path(&'a Path),
    /// An open file (`flistxattr`, `fgetxattr`).
    Fd(BorrowedFd<'a>),
}

impl Source<'_> {
    fn list(self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Source::Path(p) => rustix::fs::llistxattr(p, buf),
            Source::Fd(fd) => rustix::fs::flistxattr(fd, buf),
        }
    }

    fn get(self, name: &OsStr, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            Source::Path(p) => rustix::fs::lgetxattr(p, name, buf),
            Source::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
        }
    }
}

/// Reads every attribute of `path` (a final symlink is not followed), sorted by name.
pub fn capture(path: &Path) -> io::Result<Captured> {
    capture_from(Source::Path(path))
}

/// Reads every attribute of an open file, sorted by name.
pub fn capture_fd(fd: impl AsFd) -> io::Result<Captured> {
    capture_from(Source::Fd(fd.as_fd()))
}

/// Names listed in one call when they fit (most files have none or a few short ones).
const FIRST_LIST: usize = 1024;

fn capture_from(src: Source<'_>) -> io::Result<Captured> {
    let mut out = Captured::default();
    // One call for the usual short (or empty) list; a longer one is sized and read again,
    // retrying with a bigger buffer when it grows between the calls.
    let mut first = [0u8; FIRST_LIST];
    let mut list = Vec::new();
    let names: &[u8] = match src.list(&mut first) {
        Ok(n) => &first[..n],
        Err(e) if not_supported(&e) => return Ok(out),
        Err(rustix::io::Errno::RANGE) => {
            list.resize(FIRST_LIST * 4, 0);
            let n = loop {
                match src.list(&mut list[..]) {
                    Ok(n) => break n,
                    Err(rustix::io::Errno::RANGE) if list.len() < (1 << 20) => {
                        list.resize(list.len() * 2, 0);
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            &list[..n]
        }
        Err(e) => return Err(e.into()),
    };
    if names.is_empty() {
        return Ok(out);
    }
    let mut value = vec![0u8; MAX_VALUE];
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let os = OsStr::from_bytes(name);
        let got = match src.get(os, &mut value[..]) {
            Ok(n) => value[..n].to_vec(),
            // Removed since the listing.
            Err(rustix::io::Errno::NODATA) => continue,
            Err(e) => {
                return Err(io::Error::new(
                    io::Error::from(e).kind(),
                    format!(
                        "reading extended attribute {}: {}",
                        String::from_utf8_lossy(name),
                        io::Error::from(e)
                    ),
                ));
            }
        };
        if name == XATTR_ACCESS.as_bytes() {
            out.acl_access = Some(got);
        } else if name == XATTR_DEFAULT.as_bytes() {
            out.acl_default = Some(got);
        } else if is_carried_name(name) {
            out.xattrs.push(Xattr::new(name, got));
        } else {
            out.skipped.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    out.xattrs.sort();
    Ok(out)
}

/// Where an attribute is written: an open file, or a name in an open directory (for
/// symlinks and device nodes, which must not be opened).
pub enum Target<'a, F: AsFd> {
    Fd(&'a F),
    At { dir: &'a F, name: &'a OsStr },
}

impl<F: AsFd> Target<'_, F> {
    /// `/proc/self/fd/<dir>/<name>`: the directory is pinned by its descriptor, and the
    /// `l*xattr` calls do not follow the final component.
    fn proc_path(dir: &F, name: &OsStr) -> PathBuf {
        let mut p = PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd()));
        p.push(name);
        p
    }

    pub fn set(&self, name: &[u8], value: &[u8]) -> io::Result<()> {
        let key = OsStr::from_bytes(name);
        let r = match self {
            Target::Fd(fd) => {
                rustix::fs::fsetxattr(fd, key, value, rustix::fs::XattrFlags::empty())
            }
            Target::At { dir, name } => rustix::fs::lsetxattr(
                Self::proc_path(dir, name),
                key,
                value,
                rustix::fs::XattrFlags::empty(),
            ),
        };
        r.map_err(io::Error::from)
    }
}
