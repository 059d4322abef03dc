//! Loop-mounted filesystem images for the SIS tests (root only).

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use reel_testkit::{require_root, require_tool, run_ok};

/// A filesystem image mounted on a loop device; unmounted and detached on drop.
pub struct LoopFs {
    _dir: tempfile::TempDir,
    pub mnt: PathBuf,
    device: Option<String>,
    mounted: bool,
    pub kind: String,
}

impl LoopFs {
    /// Makes and mounts a `kind` filesystem (`btrfs`, `xfs`, `xfs-noreflink`, `ext4`, `tmpfs`)
    /// of `mib` MiB. `None` (after reporting why) when root or the mkfs tool is missing.
    pub fn new(kind: &str, mib: u64) -> Option<LoopFs> {
        if !require_root(&format!("mounts a {kind} image on a loop device")) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("reel-sis-fs-")
            .tempdir()
            .expect("temp dir");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mount point");
        let mut fs = LoopFs {
            mnt,
            device: None,
            mounted: false,
            kind: kind.to_string(),
            _dir: dir,
        };
        if kind == "tmpfs" {
            run_ok(
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
                    .arg(&fs.mnt),
            );
            fs.mounted = true;
            return Some(fs);
        }
        let tool = match kind {
            "btrfs" => "mkfs.btrfs",
            "xfs" | "xfs-noreflink" => "mkfs.xfs",
            "ext4" => "mkfs.ext4",
            other => panic!("unknown fs kind {other}"),
        };
        if !require_tool(tool) || !require_tool("losetup") {
            return None;
        }
        let image = fs._dir.path().join("fs.img");
        let f = std::fs::File::create(&image).expect("image");
        f.set_len(mib << 20).expect("size image");
        drop(f);
        let mut mkfs = Command::new(tool);
        match kind {
            "btrfs" => mkfs.args(["-q", "-f"]),
            "xfs" => mkfs.args(["-q", "-f", "-m", "reflink=1"]),
            "xfs-noreflink" => mkfs.args(["-q", "-f", "-m", "reflink=0"]),
            _ => mkfs.args(["-q", "-F"]),
        };
        run_ok(mkfs.arg(&image));
        let dev = run_ok(Command::new("losetup").args(["-f", "--show"]).arg(&image))
            .trim()
            .to_string();
        fs.device = Some(dev.clone());
        run_ok(Command::new("mount").arg(&dev).arg(&fs.mnt));
        fs.mounted = true;
        Some(fs)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// Bytes in use, from statvfs after syncing the filesystem.
    pub fn used_bytes(&self) -> u64 {
        let dir = std::fs::File::open(&self.mnt).expect("open mount");
        rustix::fs::syncfs(&dir).expect("syncfs");
        let st = rustix::fs::fstatvfs(&dir).expect("statvfs");
        (st.f_blocks - st.f_bfree) * st.f_frsize
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        if self.mounted {
            let ok = Command::new("umount")
                .arg(&self.mnt)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
            }
        }
        if let Some(dev) = &self.device {
            let _ = Command::new("losetup").arg("-d").arg(dev).status();
        }
    }
}

/// Size of distinct content `k` (between 20 KiB and about 180 KiB, not block-aligned).
pub fn content_size(k: u64) -> usize {
    20_000 + (k as usize * 1_637) % 160_000
}

/// The content of distinct content number `k`.
pub fn content(k: u64) -> Vec<u8> {
    reel_testkit::pseudo_random(1000 + k, content_size(k))
}

/// Writes `files` files cycling through `distinct` contents under `root/tree`, in 10
/// directories, with varied modes and times and an extra user xattr on some. Returns the
/// paths with their content numbers.
pub fn make_tree(root: &Path, files: u64, distinct: u64) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    for j in 0..files {
        let k = j % distinct;
        let p = root.join(format!("tree/d{}/f{j:04}.bin", j % 10));
        reel_testkit::write_file(&p, &content(k));
        let mode = if j % 3 == 0 { 0o600 } else { 0o644 };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        if j % 7 == 0 {
            rustix::fs::setxattr(
                &p,
                "user.test.tag",
                format!("tag{j}").as_bytes(),
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
        }
        let t = rustix::fs::Timespec {
            tv_sec: 1_600_000_000 + j as i64 * 37,
            tv_nsec: (j as i64 * 1_234_567) % 1_000_000_000,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::empty(),
        )
        .unwrap();
        out.push((p, k));
    }
    out
}

/// What must not change when a file becomes a link: everything but ctime and our xattr.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub nlink: u64,
    pub ino: u64,
    pub hash: [u8; 32],
    pub other_xattrs: Vec<(String, Vec<u8>)>,
}

pub fn snapshot(p: &Path) -> Snapshot {
    let m = std::fs::symlink_metadata(p).unwrap();
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names[..]).unwrap();
    let mut other = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        if name == reel_sis::REPARSE_XATTR {
            continue;
        }
        let mut v = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(p, name.as_str(), &mut v[..]).unwrap();
        v.truncate(len);
        other.push((name, v));
    }
    other.sort();
    Snapshot {
        mode: m.mode(),
        uid: m.uid(),
        gid: m.gid(),
        size: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        nlink: m.nlink(),
        ino: m.ino(),
        hash: *blake3::hash(&std::fs::read(p).unwrap()).as_bytes(),
        other_xattrs: other,
    }
}

/// The physical address of the first extent of `p` (FIEMAP through the library).
pub fn first_physical(p: &Path) -> u64 {
    let f = std::fs::File::open(p).unwrap();
    reel_sis::sys::extent_map(&f).unwrap().extents[0].physical
}
