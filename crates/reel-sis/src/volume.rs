//! The volume a common store belongs to: its root directory (by default the mount point of
//! a path, from `/proc/self/mountinfo`), its filesystem type, and whether it can share
//! extents.

use std::ffi::OsString;
use std::fs::File;
use std::os::unix::ffi::OsStringExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags, StatxFlags};

use crate::error::{Result, SisError, corrupt};
use crate::sys;

/// A mounted filesystem (or the root you chose) on which a common store lives.
#[derive(Clone, Debug)]
pub struct Volume {
    root: PathBuf,
    fs_type: String,
    dev: u64,
}

/// One line of `/proc/self/mountinfo`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u64,
    pub mount_point: PathBuf,
    pub fs_type: String,
}

impl Volume {
    /// The volume holding `path`: its mount point is the volume root.
    pub fn containing(path: &Path) -> Result<Volume> {
        let abs = std::fs::canonicalize(path).map_err(|e| SisError::io("resolve", path, e))?;
        let mounts = mounts()?;
        let stx = rustix::fs::statx(
            rustix::fs::CWD,
            &abs,
            AtFlags::empty(),
            StatxFlags::MNT_ID | StatxFlags::INO,
        )
        .map_err(|e| SisError::io("stat", &abs, e))?;
        let by_id = mounts.iter().find(|m| {
            stx.stx_mask & StatxFlags::MNT_ID.bits() != 0 && m.mount_id == stx.stx_mnt_id
        });
        // Fallback for kernels without STATX_MNT_ID: the longest mount point above `abs`.
        let entry = by_id.or_else(|| mount_by_name(&mounts, &abs));
        let entry = entry.ok_or_else(|| {
            SisError::Invalid(format!(
                "no mount in /proc/self/mountinfo holds {}",
                abs.display()
            ))
        })?;
        Volume::at(&entry.mount_point.clone(), Some(entry.fs_type.clone()))
    }

    /// A volume rooted at `root`, a directory you choose (normally a mount point).
    pub fn at_root(root: &Path) -> Result<Volume> {
        Volume::at(root, None)
    }

    fn at(root: &Path, fs_type: Option<String>) -> Result<Volume> {
        let root = std::fs::canonicalize(root).map_err(|e| SisError::io("resolve", root, e))?;
        let st = rustix::fs::stat(&root).map_err(|e| SisError::io("stat", &root, e))?;
        if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
            return Err(SisError::Invalid(format!(
                "{} is not a directory, so it cannot be a volume root",
                root.display()
            )));
        }
        let fs_type = match fs_type {
            Some(t) => t,
            None => fs_type_of(&root)?,
        };
        Ok(Volume {
            dev: st.st_dev,
            root,
            fs_type,
        })
    }

    /// The root directory (absolute, canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The filesystem type, as the mount table names it (`btrfs`, `xfs`, `ext4`, ...).
    pub fn fs_type(&self) -> &str {
        &self.fs_type
    }

    /// The device number of the root (files of the volume share it, except btrfs subvolumes).
    pub fn dev(&self) -> u64 {
        self.dev
    }

    /// `path` relative to the root; an error when it is not below it.
    pub fn relative(&self, path: &Path) -> Result<PathBuf> {
        let rel = path
            .strip_prefix(&self.root)
            .map_err(|_| SisError::OutsideVolume {
                path: path.to_path_buf(),
                root: self.root.clone(),
            })?;
        Ok(rel.to_path_buf())
    }

    /// Refuses, naming the filesystem type, unless the filesystem can share extents. btrfs and
    /// bcachefs always can; ext*/tmpfs and the like never; anything else (XFS may be made
    /// with or without reflink) is asked with a real FICLONE between two unnamed files.
    pub fn require_reflink(&self) -> Result<()> {
        match self.fs_type.as_str() {
            "btrfs" | "bcachefs" => Ok(()),
            "ext2" | "ext3" | "ext4" | "tmpfs" | "ramfs" | "vfat" | "msdos" | "exfat" | "ntfs"
            | "ntfs3" | "fuseblk" | "iso9660" | "squashfs" | "overlay" | "nfs" | "nfs4"
            | "cifs" | "smb3" | "9p" | "proc" | "sysfs" | "devtmpfs" => Err(self.no_reflink()),
            _ => self.probe_reflink(),
        }
    }

    fn no_reflink(&self) -> SisError {
        SisError::NoReflink {
            path: self.root.clone(),
            fs_type: self.fs_type.clone(),
        }
    }

    fn probe_reflink(&self) -> Result<()> {
        let tmp = |what: &'static str| -> Result<File> {
            let fd = rustix::fs::openat(
                rustix::fs::CWD,
                &self.root,
                OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|e| SisError::io(what, &self.root, e))?;
            Ok(File::from(fd))
        };
        let src = match tmp("create a probe file in") {
            Ok(f) => f,
            // No O_TMPFILE at all: such a filesystem has no reflinks either.
            Err(SisError::Io { source, .. }) if sys::is_no_reflink(&source) => {
                return Err(self.no_reflink());
            }
            Err(e) => return Err(e),
        };
        std::os::unix::fs::FileExt::write_all_at(&src, &[0x5a; 4096], 0)
            .map_err(|e| SisError::io("write a probe file in", &self.root, e))?;
        let dest = tmp("create a probe file in")?;
        match sys::clone_whole(&dest, &src) {
            Ok(()) => Ok(()),
            Err(e) if sys::is_no_reflink(&e) => Err(self.no_reflink()),
            Err(e) => Err(SisError::io(
                "probe reflink support (FICLONE) on",
                &self.root,
                e,
            )),
        }
    }
}

/// The filesystem type of the mount holding `path` (from the mount table).
fn fs_type_of(path: &Path) -> Result<String> {
    let mounts = mounts()?;
    let stx = rustix::fs::statx(rustix::fs::CWD, path, AtFlags::empty(), StatxFlags::MNT_ID)
        .map_err(|e| SisError::io("stat", path, e))?;
    let found = mounts
        .iter()
        .find(|m| m.mount_id == stx.stx_mnt_id)
        .or_else(|| mount_by_name(&mounts, path));
    Ok(found
        .map(|m| m.fs_type.clone())
        .unwrap_or_else(|| "unknown".to_string()))
}

/// The mounts of this process, from `/proc/self/mountinfo`, in its order.
pub fn mounts() -> Result<Vec<MountEntry>> {
    let path = Path::new("/proc/self/mountinfo");
    let bytes = std::fs::read(path).map_err(|e| SisError::io("read", path, e))?;
    parse_mountinfo(&bytes)
}

/// The mount holding `path` by its name: the one whose mount point is the longest prefix of
/// `path` as given (symlinks in it are not resolved); of mounts on the same point, the last
/// (the one on top).
pub fn mount_by_name<'m>(mounts: &'m [MountEntry], path: &Path) -> Option<&'m MountEntry> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// The mount point of the mount holding `path` by its name ([`mount_by_name`]), from this
/// process's mount table.
pub fn mount_point_of(path: &Path) -> Result<PathBuf> {
    let mounts = mounts()?;
    mount_by_name(&mounts, path)
        .map(|m| m.mount_point.clone())
        .ok_or_else(|| {
            SisError::Invalid(format!(
                "no mount in /proc/self/mountinfo holds {}",
                path.display()
            ))
        })
}

/// Parses `/proc/self/mountinfo` (see proc(5)); defects are reported with their byte offset.
pub fn parse_mountinfo(bytes: &[u8]) -> Result<Vec<MountEntry>> {
    const WHAT: &str = "/proc/self/mountinfo";
    let mut out = Vec::new();
    let mut line_start = 0usize;
    for line in bytes.split(|&b| b == b'\n') {
        let at = line_start;
        line_start += line.len() + 1;
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let sep = fields
            .iter()
            .position(|f| *f == b"-")
            .ok_or_else(|| corrupt(WHAT, at, "no ` - ` separator"))?;
        if sep < 6 || fields.len() < sep + 2 {
            return Err(corrupt(WHAT, at, "too few fields"));
        }
        let mount_id = std::str::from_utf8(fields[0])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| corrupt(WHAT, at, "mount id is not a number"))?;
        let mount_point = PathBuf::from(OsString::from_vec(unescape_octal(fields[4])));
        let fs_type = String::from_utf8_lossy(&unescape_octal(fields[sep + 1])).into_owned();
        if !mount_point.is_absolute() {
            return Err(corrupt(WHAT, at, "mount point is not absolute"));
        }
        out.push(MountEntry {
            mount_id,
            mount_point,
            fs_type,
        });
    }
    Ok(out)
}

/// Undoes the kernel's `\ooo` escapes (space, tab, newline, backslash).
fn unescape_octal(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && i + 3 < field.len()
            && field[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = u32::from(field[i + 1] - b'0') * 64
                + u32::from(field[i + 2] - b'0') * 8
                + u32::from(field[i + 3] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(field[i]);
            i += 1;
        }
    }
    out
}

/// True when `rel` is a plain relative path (no root, no `..`, no `.`), safe to join to a root.
pub fn is_plain_relative(rel: &Path) -> bool {
    !rel.as_os_str().is_empty() && rel.components().all(|c| matches!(c, Component::Normal(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "\
22 1 252:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
36 22 7:0 / /mnt/with\\040space rw,relatime shared:2 - btrfs /dev/loop0 rw,space_cache=v2
37 22 7:1 / /srv/x rw master:3 shared:4 - xfs /dev/loop1 rw,attr2
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(SAMPLE.as_bytes()).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[1].fs_type, "btrfs");
        assert_eq!(m[2].mount_id, 37);
        assert_eq!(m[2].fs_type, "xfs");
    }

    #[test]
    fn every_octal_escape_is_undone() {
        let text = "40 22 7:2 / /mnt/tab\\011new\\012line\\134back rw - ext4 /dev/x\\040y rw\n";
        let m = parse_mountinfo(text.as_bytes()).unwrap();
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/tab\tnew\nline\\back"));
    }

    #[test]
    fn the_mount_by_name_is_the_longest_mount_point_above_the_path() {
        let mounts = parse_mountinfo(SAMPLE.as_bytes()).unwrap();
        let point = |p: &str| mount_by_name(&mounts, Path::new(p)).map(|m| m.mount_point.clone());
        assert_eq!(
            point("/mnt/with space/a/b"),
            Some(PathBuf::from("/mnt/with space"))
        );
        assert_eq!(point("/mnt/with"), Some(PathBuf::from("/")));
        assert_eq!(point("/srv/x"), Some(PathBuf::from("/srv/x")));
        assert_eq!(point("/srv/xy"), Some(PathBuf::from("/")));
        assert_eq!(point("relative"), None);
        // Two mounts on one point: the later one is on top.
        let stacked = format!("{SAMPLE}38 37 7:2 / /srv/x rw - ext4 /dev/loop2 rw\n");
        let mounts = parse_mountinfo(stacked.as_bytes()).unwrap();
        assert_eq!(
            mount_by_name(&mounts, Path::new("/srv/x/f"))
                .unwrap()
                .mount_id,
            38
        );
    }

    #[test]
    fn this_process_has_a_mount_point_for_every_absolute_path() {
        assert_eq!(
            mount_point_of(Path::new("/proc/self")).unwrap(),
            Path::new("/proc")
        );
        assert!(mount_point_of(Path::new("/no/such/dir")).is_ok());
    }

    #[test]
    fn bad_line_names_its_offset() {
        let text = format!("{SAMPLE}garbage line\n");
        let e = parse_mountinfo(text.as_bytes()).unwrap_err().to_string();
        assert!(e.contains(&format!("byte {}", SAMPLE.len())), "{e}");
    }

    #[test]
    fn the_root_of_this_process_is_a_volume() {
        let v = Volume::containing(Path::new("/proc/self")).unwrap();
        assert_eq!(v.root(), Path::new("/proc"));
        assert_eq!(v.fs_type(), "proc");
        assert!(matches!(
            v.require_reflink(),
            Err(SisError::NoReflink { .. })
        ));
    }

    #[test]
    fn plain_relative_paths() {
        assert!(is_plain_relative(Path::new("a/b")));
        assert!(!is_plain_relative(Path::new("/a")));
        assert!(!is_plain_relative(Path::new("a/../b")));
        assert!(!is_plain_relative(Path::new("")));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_mountinfo(&bytes);
        }

        #[test]
        fn truncation_never_panics(cut in 0usize..SAMPLE.len()) {
            let _ = parse_mountinfo(&SAMPLE.as_bytes()[..cut]);
        }
    }
}
