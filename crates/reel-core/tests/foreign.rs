//! Archives other programs wrote, restored by reel and by `tar -xpf`: the two trees must be
//! the same — kinds, modes, owners, sizes, content, nanosecond mtimes, symlink targets,
//! hard-link structure, xattrs, ACLs and holes of sparse files. GNU tar in every format,
//! bsdtar in every format and Python's tarfile in every format; archive files, standard
//! input style streams, and tape files of a cartridge with and without a reel label,
//! read through, or through `reel catalog scan` offsets with a handful of record reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reel_core::NoProgress;
use reel_core::foreign::{ForeignRestoreOptions, ForeignRestoreReport, ForeignSource};
use reel_stream::{Existing, NameCache};
use reel_tape::conformance::TestDrive;
use reel_tape::vtape::{Cartridge, CartridgeConfig, VirtualDrive};
use reel_tape::*;
use reel_testkit::{
    assert_same_tree, make_tree, pseudo_random, require_root, require_tool, write_file,
};

/// Files with the facts `make_tree` does not make: holes, xattrs, ACLs, a fifo, a device.
fn add_specials(root: &Path) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::create(root.join("sparse.img")).unwrap();
    f.write_all_at(&pseudo_random(11, 8192), 0).unwrap();
    f.write_all_at(&pseudo_random(12, 3000), 3 << 20).unwrap();
    f.set_len(6 << 20).unwrap();
    drop(f);
    write_file(&root.join("attrs/tagged.txt"), b"tagged\n");
    write_file(&root.join("attrs/acl.txt"), b"acl\n");
    std::fs::create_dir_all(root.join("attrs/shared")).unwrap();
    if require_tool("setfattr") && require_tool("setfacl") {
        run(Command::new("setfattr")
            .args(["-n", "user.origin", "-v", "foreign test"])
            .arg(root.join("attrs/tagged.txt")));
        run(Command::new("setfattr")
            .args(["-n", "user.binary", "-v", "0x00ff10"])
            .arg(root.join("attrs/tagged.txt")));
        run(Command::new("setfacl")
            .args(["-m", "u:4321:rw,g:4322:r"])
            .arg(root.join("attrs/acl.txt")));
        run(Command::new("setfacl")
            .args(["-d", "-m", "u:4321:rwx"])
            .arg(root.join("attrs/shared")));
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    if rustix::process::geteuid().is_root() {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null-device"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs an archiver that may warn about names its format cannot hold (and then exits
/// non-zero having written the rest).
fn run_lenient(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.code().is_some_and(|c| c <= 2),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What `assert_same_tree` does not compare: xattrs, ACLs, and which parts are holes.
fn extended_facts(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut names = NameCache::new();
    reel_testkit::scan_tree(root, |path, _| {
        let meta = reel_stream::capture(path, &mut names).unwrap();
        let holes = meta.sparse.as_ref().map(|m| {
            // Allocation granularity differs between writers; what matters is that the
            // data is where the map says and the rest are holes.
            m.data_len().div_ceil(65536)
        });
        format!(
            "xattrs={:?} acl={:?} default={:?} sparse-64k-blocks={holes:?} rdev={:?}",
            meta.xattrs
                .iter()
                .map(|x| (
                    String::from_utf8_lossy(&x.name).into_owned(),
                    x.value.clone()
                ))
                .collect::<Vec<_>>(),
            meta.acl_access,
            meta.acl_default,
            meta.rdev
        )
    })
    .facts
}

/// How the reference tree is made. GNU tar is `tar -xpf`; for bsdtar's archives, which list
/// a directory's contents apart from the directory, GNU tar sets the directory's times
/// before it is done writing into it (they end up at extraction time), so bsdtar's own
/// `-xpf` is the reference there.
#[derive(Clone, Copy)]
enum Extractor {
    GnuTar,
    Bsdtar,
}

fn tar_extract(archive: &Path, to: &Path, how: Extractor) {
    std::fs::create_dir_all(to).unwrap();
    match how {
        Extractor::GnuTar => run(Command::new("tar")
            .args(["-x", "-p", "--xattrs", "--xattrs-include=*", "--acls", "-f"])
            .arg(archive)
            .arg("-C")
            .arg(to)),
        Extractor::Bsdtar => run(Command::new("bsdtar")
            .args(["-x", "-p", "--acls", "--xattrs", "-f"])
            .arg(archive)
            .arg("-C")
            .arg(to)),
    };
}

fn reel_restore(
    source: ForeignSource,
    tapes: Option<&mut reel_core::Tapes>,
    catalog: Option<&reel_catalog::Catalog>,
    to: &Path,
    patterns: &[&str],
) -> ForeignRestoreReport {
    let opts = ForeignRestoreOptions {
        source,
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        target: to.to_path_buf(),
        existing: Existing::Skip,
        allow_outside_symlinks: true,
        policy_roots: None,
    };
    reel_core::foreign::restore(tapes, catalog, &opts, &NoProgress).unwrap()
}

fn assert_clean(tool: &str, r: &ForeignRestoreReport) {
    assert!(r.damage.is_empty(), "{tool}: damage {:?}", r.damage);
    assert!(
        r.restore.refused.is_empty(),
        "{tool}: refused {:?}",
        r.restore.refused
    );
    assert!(
        r.restore.integrity_failures.is_empty(),
        "{tool}: {:?}",
        r.restore.integrity_failures
    );
    assert!(
        r.restore.problems.is_empty(),
        "{tool}: problems {:?}",
        r.restore.problems
    );
}

/// The restored tree has the facts the archive format carries: xattrs and ACLs (`rich`),
/// holes (`sparse`) and the device node.
fn assert_carried(tool: &str, tree: &Path, rich: bool, sparse: bool) {
    let facts = extended_facts(tree);
    let get = |p: &str| facts.get(Path::new(p)).cloned().unwrap_or_default();
    if rich {
        assert!(
            get("attrs/tagged.txt").contains("user.origin"),
            "{tool}: {}",
            get("attrs/tagged.txt")
        );
        assert!(
            get("attrs/acl.txt").contains("4321"),
            "{tool}: {}",
            get("attrs/acl.txt")
        );
        assert!(
            get("attrs/shared").contains("default=Some"),
            "{tool}: {}",
            get("attrs/shared")
        );
    }
    if sparse {
        assert!(
            get("sparse.img").contains("sparse-64k-blocks=Some("),
            "{tool}: {}",
            get("sparse.img")
        );
    }
    // v7 has no device members.
    if rustix::process::geteuid().is_root() && !tool.contains("v7") {
        assert!(
            get("null-device").contains("rdev=Some((1, 3))"),
            "{tool}: {}",
            get("null-device")
        );
    }
}

/// reel and GNU tar restore the same tree from `archive`.
fn compare_with_tar(tool: &str, archive: &Path, work: &Path, how: Extractor) -> PathBuf {
    let by_tar = work.join("by-tar");
    let by_reel = work.join("by-reel");
    let _ = std::fs::remove_dir_all(&by_tar);
    let _ = std::fs::remove_dir_all(&by_reel);
    tar_extract(archive, &by_tar, how);
    let report = reel_restore(
        ForeignSource::Archives(vec![archive.to_path_buf()]),
        None,
        None,
        &by_reel,
        &[],
    );
    assert_clean(tool, &report);
    assert!(
        report.restore.files > 10,
        "{tool}: {} files",
        report.restore.files
    );
    assert_same_tree(&by_tar, &by_reel);
    let (a, b) = (extended_facts(&by_tar), extended_facts(&by_reel));
    for (p, facts) in &a {
        assert_eq!(Some(facts), b.get(p), "{tool}: {}", p.display());
    }
    by_reel
}

fn source_tree(work: &Path) -> PathBuf {
    let src = work.join("src");
    make_tree(&src, 120, 1313);
    add_specials(&src);
    src
}

#[test]
fn gnu_tar_archives_restore_like_tar_xpf() {
    if !require_tool("tar")
        || !require_root("owners, device nodes and ACLs as tar -xp restores them")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    for format in ["gnu", "oldgnu", "posix", "ustar", "v7"] {
        let archive = tmp.path().join(format!("gnu-{format}.tar"));
        let mut cmd = Command::new("tar");
        cmd.args(["-c", &format!("--format={format}")]);
        if matches!(format, "gnu" | "oldgnu" | "posix") {
            cmd.arg("--sparse");
        }
        if format == "posix" {
            cmd.args(["--xattrs", "--xattrs-include=*", "--acls"]);
        }
        cmd.arg("-f").arg(&archive).arg("-C").arg(&src).arg(".");
        run_lenient(&mut cmd);
        let tool = format!("GNU tar --format={format}");
        let tree = compare_with_tar(&tool, &archive, tmp.path(), Extractor::GnuTar);
        let sparse = matches!(format, "gnu" | "oldgnu" | "posix");
        assert_carried(&tool, &tree, format == "posix", sparse);
    }
}

#[test]
fn bsdtar_archives_restore_like_tar_xpf() {
    if !require_tool("bsdtar")
        || !require_tool("tar")
        || !require_root("owners and device nodes as tar -xp restores them")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    for format in ["pax", "ustar", "gnutar", "v7"] {
        let archive = tmp.path().join(format!("bsd-{format}.tar"));
        run_lenient(
            Command::new("bsdtar")
                .args(["-c", "--format", format, "-f"])
                .arg(&archive)
                .arg("-C")
                .arg(&src)
                .arg("."),
        );
        let tool = format!("bsdtar --format {format}");
        let tree = compare_with_tar(&tool, &archive, tmp.path(), Extractor::Bsdtar);
        assert_carried(&tool, &tree, format == "pax", format == "pax");
    }
}

#[test]
fn python_tarfile_archives_restore_like_tar_xpf() {
    if !require_tool("python3")
        || !require_tool("tar")
        || !require_root("owners and device nodes as tar -xp restores them")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    for format in ["USTAR_FORMAT", "GNU_FORMAT", "PAX_FORMAT"] {
        let archive = tmp.path().join(format!("py-{format}.tar"));
        let script = format!(
            "import os, sys, tarfile\nos.chdir(sys.argv[1])\nwith tarfile.open(sys.argv[2], 'w', format=tarfile.{format}) as t:\n    for n in sorted(os.listdir('.')):\n        try:\n            t.add(n)\n        except ValueError:\n            pass\n"
        );
        run(Command::new("python3")
            .arg("-c")
            .arg(&script)
            .arg(&src)
            .arg(&archive));
        let tool = format!("tarfile {format}");
        let tree = compare_with_tar(&tool, &archive, tmp.path(), Extractor::GnuTar);
        assert_carried(&tool, &tree, false, false);
    }
}

#[test]
fn patterns_select_in_foreign_archives_with_dot_slash_names() {
    if !require_tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write_file(&src.join("etc/fstab"), b"fstab\n");
    write_file(&src.join("etc/hosts"), b"hosts\n");
    write_file(&src.join("home/ann/notes.md"), b"notes\n");
    let archive = tmp.path().join("a.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .arg("."));
    let out = tmp.path().join("out");
    let r = reel_restore(
        ForeignSource::Archives(vec![archive.clone()]),
        None,
        None,
        &out,
        &["etc/fstab", "home/*/notes.md"],
    );
    assert_clean("patterns", &r);
    assert_eq!(r.restore.files, 2);
    assert_eq!(std::fs::read(out.join("etc/fstab")).unwrap(), b"fstab\n");
    assert!(out.join("home/ann/notes.md").exists());
    assert!(!out.join("etc/hosts").exists());
    let mut listed = Vec::new();
    let l = reel_core::foreign::list(
        None,
        None,
        &ForeignSource::Archives(vec![archive]),
        &["etc".into()],
        &NoProgress,
        |e| listed.push(e.display_path()),
    )
    .unwrap();
    assert_eq!(l.members, 3, "{listed:?}");
    assert!(listed.iter().all(|p| p.contains("etc")), "{listed:?}");
}

/// Opens a cartridge. Other tests of this process fork tools while a cartridge's lock
/// file is open, and a forked child holds the flock until it execs: retry briefly.
fn open_drive(cart: &Path) -> VirtualDrive {
    let mut tries = 0;
    loop {
        match VirtualDrive::open(cart) {
            Ok(d) => return d,
            Err(TapeError::NotReady(_)) if tries < 200 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("{}: {e}", cart.display()),
        }
    }
}

/// Writes `archive` as tape file records of `record` bytes (the last one as long as what
/// is left, when `short_last`), then a filemark — what `tar -b N -cf /dev/nst0` leaves.
fn write_tape_file(drive: &mut dyn TapeDrive, archive: &[u8], record: usize) {
    for chunk in archive.chunks(record) {
        drive.write(chunk).unwrap();
    }
    drive.write_marks(MarkKind::Filemarks, 1, false).unwrap();
}

fn new_cartridge(dir: &Path, labelled: bool) -> PathBuf {
    let cart = dir.join(if labelled {
        "labelled.vtape"
    } else {
        "bare.vtape"
    });
    Cartridge::create(&cart, &CartridgeConfig::new("c", 4 << 30)).unwrap();
    if labelled {
        let mut d = open_drive(&cart);
        reel_archive::write_label(&mut d, &reel_archive::VolumeLabel::new("SHELF7")).unwrap();
    }
    cart
}

#[test]
fn tape_files_of_a_cartridge_with_and_without_a_label() {
    if !require_tool("tar")
        || !require_tool("bsdtar")
        || !require_root("owners and device nodes as tar -xp restores them")
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = source_tree(tmp.path());
    let gnu = tmp.path().join("gnu.tar");
    run(Command::new("tar")
        .args([
            "-c",
            "--format=posix",
            "--sparse",
            "--xattrs",
            "--xattrs-include=*",
            "--acls",
            "-b",
            "20",
            "-f",
        ])
        .arg(&gnu)
        .arg("-C")
        .arg(&src)
        .arg("."));
    let bsd = tmp.path().join("bsd.tar");
    run(Command::new("bsdtar")
        .args(["-c", "--format", "gnutar", "-b", "64", "-f"])
        .arg(&bsd)
        .arg("-C")
        .arg(&src)
        .arg("."));
    for labelled in [false, true] {
        let cart = new_cartridge(tmp.path(), labelled);
        {
            let mut d = open_drive(&cart);
            d.set_position(SeekTo::EndOfData { partition: 0 }, false)
                .unwrap();
            write_tape_file(&mut d, &std::fs::read(&gnu).unwrap(), 20 * 512);
            write_tape_file(&mut d, &std::fs::read(&bsd).unwrap(), 64 * 512);
        }
        let first = u64::from(labelled);
        for (file, archive, tool, how) in [
            (first, &gnu, "GNU tar posix", Extractor::GnuTar),
            (first + 1, &bsd, "bsdtar gnutar", Extractor::Bsdtar),
        ] {
            let by_tar = tmp.path().join("t-by-tar");
            let by_reel = tmp.path().join("t-by-reel");
            let _ = std::fs::remove_dir_all(&by_tar);
            let _ = std::fs::remove_dir_all(&by_reel);
            tar_extract(archive, &by_tar, how);
            let mut tapes = reel_core::Tapes::single(Box::new(open_drive(&cart)));
            let report = reel_restore(
                ForeignSource::TapeFile(file),
                Some(&mut tapes),
                None,
                &by_reel,
                &[],
            );
            let tool = format!("{tool} on tape file {file} (labelled: {labelled})");
            assert_clean(&tool, &report);
            assert_same_tree(&by_tar, &by_reel);
            assert_eq!(extended_facts(&by_tar), extended_facts(&by_reel), "{tool}");
        }
        // The label is not a tar archive: a clear report, nothing restored.
        if labelled {
            let mut tapes = reel_core::Tapes::single(Box::new(open_drive(&cart)));
            let r = reel_restore(
                ForeignSource::TapeFile(0),
                Some(&mut tapes),
                None,
                &tmp.path().join("label-out"),
                &[],
            );
            assert_eq!(r.restore.files, 0);
            assert!(!r.damage.is_empty(), "{r:?}");
        }
    }
}

#[test]
fn after_a_catalog_scan_one_file_is_restored_with_a_few_record_reads() {
    if !require_tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    // ~120 MiB: 60 files of 2 MiB around two small ones; the last lands in the short last
    // record.
    for i in 0..60u64 {
        write_file(
            &src.join(format!("big/{i:02}.bin")),
            &pseudo_random(i, 2 << 20),
        );
        if i == 30 {
            write_file(&src.join("big/30-needle.txt"), b"the needle\n");
        }
    }
    write_file(&src.join("zz-last.txt"), b"the last one\n");
    let archive = tmp.path().join("big.tar");
    run(Command::new("tar")
        .args(["-c", "--format=gnu", "-b", "20", "-f"])
        .arg(&archive)
        .arg("-C")
        .arg(&src)
        .args(["big", "zz-last.txt"]));
    // Drop the zero padding GNU tar adds after the end-of-archive blocks, so the last
    // record is shorter than the others.
    let mut bytes = std::fs::read(&archive).unwrap();
    while bytes.len() > 1024
        && bytes[bytes.len() - 1024..].iter().all(|b| *b == 0)
        && bytes[bytes.len() - 2048..bytes.len() - 1024]
            .iter()
            .all(|b| *b == 0)
    {
        bytes.truncate(bytes.len() - 1024);
    }
    assert_ne!(bytes.len() % 10240, 0, "a short last record");
    let cart = new_cartridge(tmp.path(), true);
    {
        let mut d = open_drive(&cart);
        d.set_position(SeekTo::EndOfData { partition: 0 }, false)
            .unwrap();
        write_tape_file(&mut d, &bytes, 10240);
    }
    let records = bytes.len().div_ceil(10240) as u64;
    let reads = Arc::new(AtomicU64::new(0));
    let counting = || {
        let drive = TestDrive::new(open_drive(&cart)).counting_reads(reads.clone());
        reel_core::Tapes::single(Box::new(drive))
    };
    let mut catalog = reel_catalog::Catalog::open(&tmp.path().join("catalog.sqlite")).unwrap();
    let report = reel_core::foreign::scan(&mut counting(), &mut catalog, 1, &NoProgress).unwrap();
    assert_eq!(report.members, 63, "{report:?}");
    assert_eq!(report.record_size, 10240);
    assert!(report.seekable);
    assert_eq!(report.records, records);
    assert_eq!(report.barcode.as_deref(), Some("SHELF7"));
    assert!(report.damage.is_empty());
    // A second scan replaces the first.
    let again = reel_core::foreign::scan(&mut counting(), &mut catalog, 1, &NoProgress).unwrap();
    assert_eq!(again.id, report.id);
    assert_eq!(catalog.foreign_files().unwrap().len(), 1);

    for (pattern, content) in [
        ("big/30-needle.txt", &b"the needle\n"[..]),
        ("zz-last.txt", b"the last one\n"),
    ] {
        let out = tmp
            .path()
            .join(format!("out-{}", pattern.replace('/', "_")));
        reads.store(0, Ordering::Relaxed);
        let mut tapes = counting();
        let r = reel_restore(
            ForeignSource::TapeFile(1),
            Some(&mut tapes),
            Some(&catalog),
            &out,
            &[pattern],
        );
        let n = reads.load(Ordering::Relaxed);
        assert_clean(pattern, &r);
        assert_eq!(r.from_catalog, Some(report.id));
        assert_eq!(r.restore.files, 1);
        assert_eq!(std::fs::read(out.join(pattern)).unwrap(), content);
        // The first record (to recognise the tape file), then the member's record(s).
        assert!(n <= 4, "restoring {pattern} read {n} records of {records}");
    }
    // Listing from the catalog reads only the first record.
    reads.store(0, Ordering::Relaxed);
    let mut listed = 0;
    let l = reel_core::foreign::list(
        Some(&mut counting()),
        Some(&catalog),
        &ForeignSource::TapeFile(1),
        &[],
        &NoProgress,
        |_| listed += 1,
    )
    .unwrap();
    assert_eq!(l.from_catalog, Some(report.id));
    assert_eq!(listed, 63);
    assert!(reads.load(Ordering::Relaxed) <= 1);
    // Without the catalog: the whole file is read.
    reads.store(0, Ordering::Relaxed);
    let out = tmp.path().join("out-no-catalog");
    let r = reel_restore(
        ForeignSource::TapeFile(1),
        Some(&mut counting()),
        None,
        &out,
        &["zz-last.txt"],
    );
    assert_eq!(r.restore.files, 1);
    assert!(reads.load(Ordering::Relaxed) >= records);
    // A different tape file in the same place is not mistaken for the scanned one.
    {
        let mut d = open_drive(&cart);
        d.set_position(SeekTo::Rewind, false).unwrap();
        d.set_position(SeekTo::SpaceFilemarks(1), false).unwrap();
        let other = tmp.path().join("other.tar");
        run(Command::new("tar")
            .args(["-c", "-f"])
            .arg(&other)
            .arg("-C")
            .arg(&src)
            .arg("zz-last.txt"));
        write_tape_file(&mut d, &std::fs::read(&other).unwrap(), 10240);
    }
    let out = tmp.path().join("out-other");
    let r = reel_restore(
        ForeignSource::TapeFile(1),
        Some(&mut counting()),
        Some(&catalog),
        &out,
        &[],
    );
    assert_eq!(r.from_catalog, None);
    assert_eq!(r.restore.files, 1);
}
