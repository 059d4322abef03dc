//! Test support shared by reel's crates (a dev-dependency only).
//!
//! The rule of the project: a test that needs root, a tool or a kernel feature checks for it.
//! When it is missing the test **fails** if `REEL_REQUIRE_ALL=1` (CI sets it), and otherwise
//! prints why it skipped. Never a silent pass. Use it as:
//!
//! ```no_run
//! # fn t() {
//! if !reel_testkit::require_tool("bsdtar") { return; }
//! if !reel_testkit::require_root("mounts a btrfs image") { return; }
//! # }
//! ```
//!
//! Besides the checks, what several test files would otherwise each write again: a temporary
//! `REEL_HOME` ([`TempHome`]) and the program under test in it ([`reel!`]); commands run
//! with their output checked ([`cli`], [`run_ok`]); varied trees to back up ([`make_tree`]);
//! trees scanned into comparable facts ([`scan_tree`], [`tree_facts`],
//! [`assert_same_tree`]); loop-mounted file systems ([`LoopFs`]). Behind features, so that
//! crates below them need not build them: virtual cartridges (`tape`: `new_cartridge`) and
//! archives read back (`archive`: `pax::read_members`).

use std::path::{Path, PathBuf};
use std::process::Command;

pub mod tgt;

/// True when every requirement must be met (`REEL_REQUIRE_ALL=1`).
pub fn require_all() -> bool {
    std::env::var("REEL_REQUIRE_ALL").is_ok_and(|v| v == "1")
}

/// Reports a missing requirement: panics under `REEL_REQUIRE_ALL=1`, else prints the reason
/// on stderr. Returns false so callers can `return` from the test.
pub fn missing(what: &str) -> bool {
    if require_all() {
        panic!("requirement missing and REEL_REQUIRE_ALL=1: {what}");
    }
    eprintln!("SKIPPED: {what} (set REEL_REQUIRE_ALL=1 to make this a failure)");
    false
}

/// True when `tool` is on PATH; else reports it missing.
pub fn require_tool(tool: &str) -> bool {
    if find_on_path(tool).is_some() {
        true
    } else {
        missing(&format!("the tool `{tool}` is not installed"))
    }
}

/// True when running as root; else reports it missing (`why` says what needs root).
pub fn require_root(why: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        true
    } else {
        missing(&format!("root is needed: {why}"))
    }
}

/// The full path of `tool` on PATH.
pub fn find_on_path(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// Running the program under test (`reel`), with the checks every CLI test wants.
pub mod cli {
    use std::process::{Command, Output};

    /// Runs the command (it may fail); panics if it panicked, whatever its exit status.
    pub fn run(cmd: &mut Command) -> Output {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "reel panicked: {stderr}");
        out
    }

    /// A remote shell script in `dir` for host:path tapes: it ignores host and command and
    /// runs `REEL rmt --root ROOT` here (use with `--rsh-command` or REEL_RSH_COMMAND).
    pub fn reel_rmt_shell(
        dir: &std::path::Path,
        reel: &str,
        root: &std::path::Path,
    ) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("reel-rsh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nexec '{reel}' rmt --root '{}'\n", root.display()),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        script
    }

    /// Runs the command, which must succeed (and not panic); returns all it printed.
    pub fn succeeded(cmd: &mut Command) -> Output {
        let out = run(cmd);
        super::assert_success(cmd, out)
    }

    /// Runs the command, which must succeed (and not panic); returns its stdout.
    pub fn ok(cmd: &mut Command) -> String {
        String::from_utf8_lossy(&succeeded(cmd).stdout).into_owned()
    }
}

/// `out`, when the command succeeded; else a panic showing what it printed.
fn assert_success(cmd: &Command, out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs a command (any program), panicking with its output when it fails; returns stdout.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    String::from_utf8_lossy(&assert_success(cmd, out).stdout).into_owned()
}

/// A temporary directory that is also a `REEL_HOME` for commands run by the test.
pub struct TempHome {
    pub dir: tempfile::TempDir,
}

impl TempHome {
    pub fn new() -> TempHome {
        TempHome {
            dir: tempfile::tempdir().expect("create temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command with `REEL_HOME` pointing here, `REEL_ROOT` (policy and state such as
    /// last-restore-id) under [`TempHome::root`], and no inherited `REEL_TAPE`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env("REEL_HOME", self.path().join("reel-home"));
        c.env("REEL_ROOT", self.root());
        c.env_remove("REEL_TAPE");
        c
    }

    /// The `$REEL_ROOT` of commands made by [`TempHome::command`] (created on demand).
    pub fn root(&self) -> PathBuf {
        let r = self.path().join("reel-root");
        std::fs::create_dir_all(&r).expect("create REEL_ROOT");
        r
    }
}

impl Default for TempHome {
    fn default() -> Self {
        Self::new()
    }
}

/// The program under test, `reel`, as a command for a [`TempHome`] (given as a value or a
/// reference): `reel!(home).arg("backup")`. See [`TempHome::command`] for its environment.
///
/// A macro, because only the integration tests of the `reel` package know where cargo built
/// the program (`CARGO_BIN_EXE_reel`, set when they are compiled).
#[macro_export]
macro_rules! reel {
    ($home:expr) => {{
        let home: &$crate::TempHome = &$home;
        home.command(env!("CARGO_BIN_EXE_reel"))
    }};
}

/// Creates an empty virtual cartridge `NAME.vtape` in `dir`, with barcode NAME and room for
/// `capacity` bytes; returns its path.
#[cfg(feature = "tape")]
pub fn new_cartridge(dir: &Path, name: &str, capacity: u64) -> PathBuf {
    use reel_tape::vtape::{Cartridge, CartridgeConfig};
    let path = dir.join(format!("{name}.vtape"));
    Cartridge::create(&path, &CartridgeConfig::new(name, capacity))
        .unwrap_or_else(|e| panic!("create the cartridge {}: {e}", path.display()));
    path
}

/// Writes a file, creating parent directories.
pub fn write_file(path: &Path, content: &[u8]) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent dirs");
    }
    std::fs::write(path, content).expect("write file");
}

/// Deterministic pseudo-random bytes (xorshift), for test content that does not compress.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What a test compares about one file of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFacts {
    /// `f`, `d`, `l`, `p`, `c`, `b`, `s`.
    pub kind: char,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// Modification time with nanoseconds (not for directories of the walked root's parents).
    pub mtime: (i64, i64),
    /// BLAKE3 of the content of a regular file.
    pub content: Option<String>,
    pub symlink: Option<std::ffi::OsString>,
    /// Index of the file's hard-link group (files sharing an inode share it); 0 = single.
    pub link_group: usize,
}

/// A tree scanned into comparable facts ([`scan_tree`]).
#[derive(Debug)]
pub struct TreeScan<T> {
    /// A fact per entry, by path relative to the root.
    pub facts: std::collections::BTreeMap<PathBuf, T>,
    /// The relative paths of non-directories that share an inode, one group per inode, each
    /// sorted, the groups sorted. A group of one is a file whose other names are outside
    /// the tree.
    pub link_groups: Vec<Vec<PathBuf>>,
}

/// Scans every entry under `root` (the root itself excluded, symlinks not followed), in
/// file-name order, making each into a fact with `fact(path, lstat)`; notes which share an
/// inode.
pub fn scan_tree<T>(
    root: &Path,
    mut fact: impl FnMut(&Path, &std::fs::Metadata) -> T,
) -> TreeScan<T> {
    use std::os::unix::fs::MetadataExt;
    let mut groups: std::collections::BTreeMap<(u64, u64), Vec<PathBuf>> = Default::default();
    let mut facts = std::collections::BTreeMap::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .min_depth(1)
        .sort_by_file_name()
    {
        let entry = entry.expect("walk tree");
        let md = entry.path().symlink_metadata().expect("lstat");
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("under root")
            .to_path_buf();
        if !md.is_dir() && md.nlink() > 1 {
            groups
                .entry((md.dev(), md.ino()))
                .or_default()
                .push(rel.clone());
        }
        facts.insert(rel, fact(entry.path(), &md));
    }
    let mut link_groups: Vec<Vec<PathBuf>> = groups.into_values().collect();
    for g in &mut link_groups {
        g.sort();
    }
    link_groups.sort();
    TreeScan { facts, link_groups }
}

/// Facts about every entry under `root` (relative paths; the root itself excluded).
pub fn tree_facts(root: &Path) -> std::collections::BTreeMap<PathBuf, FileFacts> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let scan = scan_tree(root, |path, md| {
        let ft = md.file_type();
        let kind = if ft.is_file() {
            'f'
        } else if ft.is_dir() {
            'd'
        } else if ft.is_symlink() {
            'l'
        } else if ft.is_fifo() {
            'p'
        } else if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            's'
        };
        let content = (kind == 'f').then(|| {
            let mut h = blake3::Hasher::new();
            let mut f = std::fs::File::open(path).expect("open");
            std::io::copy(&mut f, &mut h).expect("read");
            h.finalize().to_hex().to_string()
        });
        FileFacts {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: if kind == 'f' { md.size() } else { 0 },
            mtime: (md.mtime(), md.mtime_nsec()),
            content,
            symlink: (kind == 'l')
                .then(|| std::fs::read_link(path).expect("readlink").into_os_string()),
            link_group: 0,
        }
    });
    let mut out = scan.facts;
    // Number the hard-link groups (sorted, so two trees compare equal).
    for (i, g) in scan.link_groups.iter().filter(|g| g.len() > 1).enumerate() {
        for p in g {
            if let Some(f) = out.get_mut(p) {
                f.link_group = i + 1;
            }
        }
    }
    out
}

/// Panics with the first differences when the trees under `a` and `b` differ in kind,
/// mode, owner, size, content, mtime (ns), symlink target or hard-link structure.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let fa = tree_facts(a);
    let fb = tree_facts(b);
    let mut diffs = Vec::new();
    for (p, x) in &fa {
        match fb.get(p) {
            None => diffs.push(format!("{}: missing in {}", p.display(), b.display())),
            Some(y) if x != y => diffs.push(format!("{}: {x:?} != {y:?}", p.display())),
            _ => {}
        }
    }
    for p in fb.keys() {
        if !fa.contains_key(p) {
            diffs.push(format!("{}: extra in {}", p.display(), b.display()));
        }
    }
    assert!(
        diffs.is_empty(),
        "trees differ ({} differences), first ones:\n{}",
        diffs.len(),
        diffs
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Builds a varied tree of about `files` entries under `root`: nested directories, empty
/// and multi-megabyte files, odd modes, nanosecond mtimes, symlinks (relative, absolute,
/// dangling), hard links across directories, long and non-ASCII names.
pub fn make_tree(root: &Path, files: usize, seed: u64) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(root).expect("create root");
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut dirs = vec![root.to_path_buf()];
    let mut regular = Vec::new();
    for i in 0..files {
        let r = next();
        let parent = dirs[(r % dirs.len() as u64) as usize].clone();
        match r % 20 {
            0 | 1 => {
                let d = parent.join(format!("dir{i}"));
                std::fs::create_dir(&d).expect("mkdir");
                dirs.push(d);
            }
            2 if !regular.is_empty() => {
                let target: &PathBuf = &regular[(next() % regular.len() as u64) as usize];
                let link = parent.join(format!("hard{i}"));
                std::fs::hard_link(target, &link).expect("hard link");
            }
            3 => {
                let link = parent.join(format!("sym{i}"));
                let target = match next() % 3 {
                    0 => PathBuf::from("../somewhere/else"),
                    1 => PathBuf::from("/etc/hostname"),
                    _ => PathBuf::from(format!("dangling-{i}")),
                };
                std::os::unix::fs::symlink(target, &link).expect("symlink");
            }
            _ => {
                let size = match next() % 10 {
                    0 => 0,
                    1 => 1 + (next() % 3_000_000) as usize,
                    2 => 511,
                    3 => 512,
                    _ => (next() % 20_000) as usize,
                };
                let name = match i % 97 {
                    5 => format!("ünïcødé-{i}-файл"),
                    6 => format!("{}-{i}", "long".repeat(40)),
                    7 => format!("sp ace {i}"),
                    _ => format!("f{i}.dat"),
                };
                let p = parent.join(name);
                std::fs::write(&p, pseudo_random(next(), size)).expect("write");
                let mode = [0o644, 0o600, 0o755, 0o640, 0o444][(next() % 5) as usize];
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
                regular.push(p);
            }
        }
    }
    // Times last (creating children changes directory mtimes): nanosecond mtimes everywhere.
    let all: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .contents_first(true)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .collect();
    for p in all {
        let secs = 1_500_000_000 + (next() % 200_000_000) as i64;
        let nanos = (next() % 1_000_000_000) as i64;
        let ts = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        };
        let times = rustix::fs::Timestamps {
            last_access: ts,
            last_modification: ts,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            &p,
            &times,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("set times");
    }
}

/// Archives read back, to compare with what was written.
#[cfg(feature = "archive")]
pub mod pax {
    use reel_archive::pax::{DataReader, PaxReader};
    use reel_archive::{ArchiveError, Entry};

    /// A member as the reader gives it back.
    #[derive(Debug)]
    pub struct ReadMember {
        /// Byte offset of the member's first header.
        pub header_offset: u64,
        pub entry: Entry,
        /// The content as stored: the whole file, or the data extents of a sparse one.
        pub content: Vec<u8>,
    }

    /// Reads every member of `bytes` with its content; the first error ends the reading
    /// (never a panic).
    pub fn read_members(bytes: &[u8]) -> Result<Vec<ReadMember>, ArchiveError> {
        let mut r = PaxReader::new(bytes);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut content = Vec::new();
            std::io::copy(&mut DataReader(&mut r), &mut content)
                .map_err(|e| ArchiveError::from_io("read", e))?;
            out.push(ReadMember {
                header_offset: e.header_offset,
                entry: e.entry,
                content,
            });
        }
        Ok(out)
    }
}

/// A file system image made with `mkfs.<fstype>` and mounted on a loop device, unmounted
/// (lazily if busy) when dropped. Needs root and the mkfs tool; `None` (with the skip or
/// failure of [`missing`]) otherwise.
pub struct LoopFs {
    _dir: tempfile::TempDir,
    mnt: PathBuf,
    mounted: bool,
}

impl LoopFs {
    /// `fstype`: `btrfs`, `xfs` (made with reflink=1), `ext4`; `size` in bytes.
    pub fn new(fstype: &str, size: u64) -> Option<LoopFs> {
        let mkfs = format!("mkfs.{fstype}");
        if !require_root(&format!("mounts a {fstype} image on a loop device"))
            || !require_tool(&mkfs)
            || !require_tool("mount")
        {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let img = dir.path().join("fs.img");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(size))
            .expect("create image");
        let mut cmd = Command::new(&mkfs);
        match fstype {
            "btrfs" => cmd.args(["-q", "-f"]),
            "xfs" => cmd.args(["-q", "-f", "-m", "reflink=1"]),
            _ => cmd.args(["-q", "-F"]),
        };
        run_ok(cmd.arg(&img));
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mount point");
        run_ok(
            Command::new("mount")
                .arg("-o")
                .arg("loop")
                .arg(&img)
                .arg(&mnt),
        );
        Some(LoopFs {
            _dir: dir,
            mnt,
            mounted: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.mnt
    }

    /// The file system's UUID as util-linux reads it from the superblock (`findmnt`).
    pub fn uuid(&self) -> String {
        let out = Command::new("findmnt")
            .args(["-n", "-o", "UUID"])
            .arg(&self.mnt)
            .output()
            .expect("findmnt");
        let uuid = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            uuid.len(),
            36,
            "findmnt gave no UUID for {}: {uuid:?}",
            self.mnt.display()
        );
        uuid
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
    }
}
