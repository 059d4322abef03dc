//! The main job end to end, as a user runs it: `reel backup`, `reel list`, `reel restore`,
//! `reel tape dump` on the default virtual tape, with real files, GNU tar and bsdtar.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reel_testkit::cli::{ok, run};
use reel_testkit::{TempHome, assert_same_tree, make_tree, reel, require_tool, write_file};

/// Where a backed-up absolute path lands under a restore target.
fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute"))
}

fn cartridge(home: &TempHome) -> PathBuf {
    home.path().join("reel-home/library/tape-0001.vtape")
}

#[test]
fn backup_then_restore_gives_back_an_identical_tree() {
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 3000, 7);
    let out = ok(reel!(&home).args(["backup"]).arg(&src));
    assert!(out.contains("set 1"), "{out}");
    let target = home.path().join("out");
    ok(reel!(&home).args(["restore", "--to"]).arg(&target));
    assert_same_tree(&src, &restored(&target, &src));
    // diff -r agrees on content.
    if require_tool("diff") {
        ok(Command::new("diff")
            .args(["-r", "--no-dereference"])
            .arg(&src)
            .arg(restored(&target, &src)));
    }
}

#[test]
fn dumped_set_is_a_tar_archive_for_gnu_tar_and_bsdtar() {
    if !require_tool("tar") || !require_tool("bsdtar") {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 400, 11);
    ok(reel!(&home).args(["backup"]).arg(&src));
    let tar_path = home.path().join("s.tar");
    let file = std::fs::File::create(&tar_path).unwrap();
    let status = reel!(&home)
        .args(["tape", "dump", "--file", "1"])
        .stdout(file)
        .status()
        .unwrap();
    assert!(status.success());
    for tool in ["tar", "bsdtar"] {
        let out = run(Command::new(tool).arg("-tvf").arg(&tar_path));
        assert!(
            out.status.success(),
            "{tool} -tvf failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{tool} warned: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(listing.lines().count() > 400, "{tool} listed too little");
    }
    let gnu = home.path().join("gnu");
    std::fs::create_dir(&gnu).unwrap();
    let out = run(Command::new("tar")
        .arg("-xpf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&gnu));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(&src, &restored(&gnu, &src));
    let bsd = home.path().join("bsd");
    std::fs::create_dir(&bsd).unwrap();
    let out = run(Command::new("bsdtar")
        .arg("-xpf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&bsd));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_same_tree(&src, &restored(&bsd, &src));
}

#[test]
fn two_backups_make_two_sets_and_the_first_still_restores() {
    let home = TempHome::new();
    let a = home.path().join("a");
    let b = home.path().join("b");
    make_tree(&a, 200, 1);
    make_tree(&b, 200, 2);
    ok(reel!(&home).args(["backup", "--name", "first"]).arg(&a));
    ok(reel!(&home).args(["backup", "--name", "second"]).arg(&b));
    let listing = ok(reel!(&home).args(["list"]));
    assert!(
        listing.contains("first") && listing.contains("second"),
        "{listing}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(reel!(&home).args(["list", "--json"]))).unwrap();
    assert_eq!(json["sets"].as_array().map(|s| s.len()), Some(2));
    let target = home.path().join("out1");
    ok(reel!(&home).args(["restore", "1", "--to"]).arg(&target));
    assert_same_tree(&a, &restored(&target, &a));
    assert!(
        !restored(&target, &b).exists(),
        "set 1 must not hold set 2's files"
    );
    let target = home.path().join("out2");
    ok(reel!(&home)
        .args(["restore", "second", "--to"])
        .arg(&target));
    assert_same_tree(&b, &restored(&target, &b));
    // Listing one set's files, as text and JSON.
    let files = ok(reel!(&home).args(["list", "1"]));
    assert!(files.lines().count() > 200);
    let json: serde_json::Value =
        serde_json::from_str(&ok(reel!(&home).args(["list", "--json", "2"]))).unwrap();
    assert_eq!(json["set"]["name"], "second");
    assert!(json["entries"].as_array().unwrap().len() > 200);
}

#[test]
fn selective_restore_takes_a_subtree_and_hard_link_targets() {
    let home = TempHome::new();
    let src = home.path().join("src");
    std::fs::create_dir_all(src.join("keep/deep")).unwrap();
    std::fs::create_dir_all(src.join("a-first")).unwrap();
    std::fs::create_dir_all(src.join("other")).unwrap();
    std::fs::write(src.join("keep/deep/a"), b"a").unwrap();
    // Walked first, so it holds the content and keep/link becomes a hard link to it.
    std::fs::write(src.join("a-first/shared"), b"shared content").unwrap();
    std::fs::hard_link(src.join("a-first/shared"), src.join("keep/link")).unwrap();
    std::fs::write(src.join("other/b"), b"b").unwrap();
    ok(reel!(&home).args(["backup"]).arg(&src));
    let target = home.path().join("out");
    let pattern = format!("{}/keep", src.strip_prefix("/").unwrap().display());
    let out = ok(reel!(&home)
        .args(["restore", "latest", &pattern, "--to"])
        .arg(&target));
    let r = restored(&target, &src);
    assert_eq!(std::fs::read(r.join("keep/deep/a")).unwrap(), b"a");
    assert_eq!(
        std::fs::read(r.join("keep/link")).unwrap(),
        b"shared content"
    );
    assert!(out.contains("also restored"), "{out}");
    assert_eq!(
        std::fs::read(r.join("a-first/shared")).unwrap(),
        b"shared content"
    );
    assert!(!r.join("other/b").exists());

    // Listing plain paths (a catalog range lookup): each member once, nothing else, even
    // when one path is inside another.
    let inner = format!("{pattern}/deep");
    let listed = ok(reel!(&home).args(["list", "latest", &inner, &pattern]));
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().find(|t| t.contains("/keep")))
        .collect();
    let want = [
        pattern.clone(),
        format!("{pattern}/deep"),
        format!("{pattern}/deep/a"),
        format!("{pattern}/link"),
    ];
    let mut got: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    got.sort();
    assert_eq!(got, want, "{listed}");
}

/// Wildcard patterns that start with plain components are answered by range lookups on the
/// catalog under those components; a set without a catalog is scanned. Both give the same
/// listing, in the same (archive) order, and the same restore, hard-link targets outside the
/// looked-up ranges included.
#[test]
fn wildcard_patterns_list_and_restore_alike_with_and_without_the_catalog() {
    let home = TempHome::new();
    let src = home.path().join("src");
    for d in ["a/b", "a/bz", "z"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for (f, body) in [
        ("a/b/c", "c"),
        ("a/b/e.md", "e"),
        ("a/b-x", "bx"),
        ("a/bz/d.md", "d"),
        ("z/y.md", "y"),
        ("a/target-first", "shared"),
    ] {
        std::fs::write(src.join(f), body).unwrap();
    }
    // Walked after its target (`a/target-first` < `z`): the link is the one in `z`.
    std::fs::hard_link(src.join("a/target-first"), src.join("z/link.md")).unwrap();
    ok(reel!(&home).args(["backup"]).arg(&src));
    let base = src.strip_prefix("/").unwrap().display().to_string();
    let patterns = [format!("{base}/a/b*"), format!("{base}/z/*.md")];
    let list = |home: &TempHome| ok(reel!(home).args(["list", "latest"]).args(&patterns));
    let restore = |home: &TempHome, to: &Path| {
        ok(reel!(home)
            .args(["restore", "latest"])
            .args(&patterns)
            .arg("--to")
            .arg(to))
    };
    let with_catalog = list(&home);
    let to_with = home.path().join("with");
    let out = restore(&home, &to_with);
    assert!(out.contains("also restored"), "{out}");
    let r = restored(&to_with, &src);
    for f in [
        "a/b/c",
        "a/b/e.md",
        "a/b-x",
        "a/bz/d.md",
        "z/y.md",
        "a/target-first",
    ] {
        assert!(r.join(f).is_file(), "{f} not restored:\n{out}");
    }
    assert_eq!(std::fs::read(r.join("z/link.md")).unwrap(), b"shared");

    for f in ["catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"] {
        let _ = std::fs::remove_file(home.path().join("reel-home").join(f));
    }
    let scanned = list(&home);
    let members = |listing: &str| -> Vec<String> {
        listing
            .lines()
            .filter(|l| l.contains(&base))
            .map(str::to_string)
            .collect()
    };
    // Archive order both ways: `a/b-x` after what is under `a/b` (path order has it before).
    assert_eq!(
        members(&with_catalog),
        members(&scanned),
        "{with_catalog}\n---\n{scanned}"
    );
    let names: Vec<String> = members(&scanned)
        .iter()
        .map(|l| {
            let at = l.find(&base).unwrap() + base.len() + 1;
            l[at..].split(' ').next().unwrap().to_string()
        })
        .collect();
    let want = [
        "a/b",
        "a/b/c",
        "a/b/e.md",
        "a/b-x",
        "a/bz",
        "a/bz/d.md",
        "z/link.md",
        "z/y.md",
    ];
    assert_eq!(names, want, "{scanned}");
    let to_without = home.path().join("without");
    restore(&home, &to_without);
    // The selected subtrees alike (the directories above them are created at restore time).
    let r2 = restored(&to_without, &src);
    for d in ["a/b", "a/bz"] {
        assert_same_tree(&r.join(d), &r2.join(d));
    }
    for f in ["a/b-x", "a/target-first", "z/link.md", "z/y.md"] {
        assert_eq!(
            std::fs::read(r.join(f)).unwrap(),
            std::fs::read(r2.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn sigkill_mid_backup_leaves_a_cartridge_that_opens_lists_and_accepts_the_next_backup() {
    let home = TempHome::new();
    let small = home.path().join("small");
    make_tree(&small, 100, 3);
    ok(reel!(&home)
        .args(["backup", "--name", "before"])
        .arg(&small));
    let tap = cartridge(&home).join("p1.tap");
    let before = std::fs::metadata(&tap).unwrap().len();
    // Enough data that the kill lands mid-set.
    let big = home.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..96 {
        std::fs::write(
            big.join(format!("f{i}")),
            reel_testkit::pseudo_random(i, 1 << 20),
        )
        .unwrap();
    }
    let mut child = reel!(&home)
        .args(["backup", "--name", "killed"])
        .arg(&big)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let len = std::fs::metadata(&tap).map(|m| m.len()).unwrap_or(0);
        if len > before + (4 << 20) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "backup made no progress"
        );
        if child.try_wait().unwrap().is_some() {
            panic!("the backup finished before it could be killed; make the data set larger");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::KILL,
    )
    .unwrap();
    child.wait().unwrap();
    let listing = ok(reel!(&home).args(["list"]));
    assert!(listing.contains("before"), "{listing}");
    assert!(!listing.contains("killed  "), "{listing}");
    assert!(
        listing.contains("interrupted"),
        "the leftover is reported: {listing}"
    );
    let after = home.path().join("after");
    make_tree(&after, 50, 4);
    ok(reel!(&home).args(["backup", "--name", "after"]).arg(&after));
    let listing = ok(reel!(&home).args(["list"]));
    assert!(
        listing.contains("before") && listing.contains("after"),
        "{listing}"
    );
    let t1 = home.path().join("r1");
    ok(reel!(&home).args(["restore", "before", "--to"]).arg(&t1));
    assert_same_tree(&small, &restored(&t1, &small));
    let t2 = home.path().join("r2");
    ok(reel!(&home).args(["restore", "after", "--to"]).arg(&t2));
    assert_same_tree(&after, &restored(&t2, &after));
}

/// Byte offset in p1.tap of the payload of record `record` of tape file `file`, found by
/// walking the SIMH framing.
fn record_offset(tap: &[u8], file: usize, record: usize) -> usize {
    let (mut pos, mut f, mut r) = (0usize, 0usize, 0usize);
    loop {
        let word = u32::from_le_bytes(tap[pos..pos + 4].try_into().unwrap());
        if word == 0 {
            f += 1;
            r = 0;
            pos += 4;
            continue;
        }
        let len = (word & 0x0FFF_FFFF) as usize;
        if f == file && r == record {
            return pos + 4;
        }
        pos += 8 + len + (len & 1);
        r += 1;
    }
}

#[test]
fn a_flipped_bit_is_named_by_volume_file_and_block_and_the_rest_restores() {
    let home = TempHome::new();
    let src = home.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..8 {
        std::fs::write(
            src.join(format!("f{i}")),
            reel_testkit::pseudo_random(i, 300_000),
        )
        .unwrap();
    }
    ok(reel!(&home).args(["backup"]).arg(&src));
    let tap_path = cartridge(&home).join("p1.tap");
    let mut tap = std::fs::read(&tap_path).unwrap();
    let at = record_offset(&tap, 1, 3) + 1000;
    tap[at] ^= 0x04;
    std::fs::write(&tap_path, &tap).unwrap();
    let target = home.path().join("out");
    let out = run(reel!(&home).args(["restore", "--to"]).arg(&target));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(4),
        "integrity failure exit code; stderr: {stderr}"
    );
    assert!(
        stderr.contains("volume vtape:tape-0001")
            && stderr.contains("tape file 1")
            && stderr.contains("block 3"),
        "the error names volume, file and block: {stderr}"
    );
    // Files outside the damaged record are restored and intact.
    let r = restored(&target, &src);
    let intact = (0..8)
        .filter(|i| {
            std::fs::read(r.join(format!("f{i}"))).ok()
                == Some(reel_testkit::pseudo_random(*i, 300_000))
        })
        .count();
    assert!(intact >= 6, "only {intact} of 8 files restored");
}

#[test]
fn a_truncated_tape_image_is_reported_not_panicked_on() {
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 300, 5);
    ok(reel!(&home).args(["backup", "--name", "one"]).arg(&src));
    ok(reel!(&home).args(["backup", "--name", "two"]).arg(&src));
    let tap_path = cartridge(&home).join("p1.tap");
    let len = std::fs::metadata(&tap_path).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&tap_path)
        .unwrap();
    f.set_len(len - len / 4).unwrap();
    drop(f);
    let out = run(reel!(&home).args(["list"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("one"), "{listing}");
    // The repair made on opening is said, with how much was lost.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains("before the end its index recorded"),
        "the cut is reported: {stderr}"
    );
    let out = run(reel!(&home)
        .args(["restore", "two", "--to"])
        .arg(home.path().join("x")));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tape file 3"),
        "names the tape file: {stderr}"
    );
    assert!(stderr.contains("tape-0001"), "names the volume: {stderr}");
    // The first set is intact.
    let t = home.path().join("r1");
    ok(reel!(&home).args(["restore", "one", "--to"]).arg(&t));
    assert_same_tree(&src, &restored(&t, &src));
}

#[test]
fn restore_refuses_unsafe_members_and_writes_nothing_outside_the_target() {
    // A set whose members try to escape, built with GNU tar and written as a set by hand is
    // issue 13's job; here the pax writer itself produces the hostile names.
    use reel_archive::Entry;
    use reel_stream::{FileKind, FileMeta};
    let home = TempHome::new();
    let cart = reel_testkit::new_cartridge(home.path(), "c", 64 << 20);
    {
        let mut drive = reel_tape::vtape::VirtualDrive::open(&cart).unwrap();
        reel_archive::write_label(&mut drive, &reel_archive::VolumeLabel::new("c")).unwrap();
        let map = reel_archive::map_volume(&mut drive).unwrap();
        let mut w =
            reel_archive::SetWriter::begin(&mut drive, map.append_file, map.append_block, 4096)
                .unwrap();
        let file = |path: &str, body: &[u8]| {
            let mut m = FileMeta::new(FileKind::Regular, 0o644);
            m.size = body.len() as u64;
            (Entry::new(path.as_bytes().to_vec(), m), body.to_vec())
        };
        let mut dir = FileMeta::new(FileKind::Directory, 0o755);
        dir.size = 0;
        let mut link = FileMeta::new(FileKind::Symlink, 0o777);
        link.symlink_target = Some("/tmp".into());
        let members = vec![
            file("/etc/evil-absolute", b"x"),
            file("a/../../evil-dotdot", b"x"),
            (Entry::new(b"d".to_vec(), dir), Vec::new()),
            (Entry::new(b"d/escape".to_vec(), link), Vec::new()),
            file("d/escape/evil-through-symlink", b"x"),
            file("d/fine", b"fine"),
        ];
        for (e, body) in &members {
            let mut c: &[u8] = body;
            w.add(e, Some(&mut c), |_| {}).unwrap();
        }
        let info = reel_archive::SetInfo {
            id: uuid::Uuid::new_v4(),
            number: 1,
            name: "hostile".into(),
            started: String::new(),
            finished: String::new(),
            host: String::new(),
            paths: vec![],
            mode: reel_archive::SetMode::Full,
            parent: None,
            block_size: 4096,
            volume_id: map.label.volume_id,
            data_file: 1,
            data_first_block: 0,
            data_records: 0,
            archive_bytes: 0,
            files: 4,
            directories: 1,
            other: 1,
            content_bytes: 0,
            problems: 0,
            reel_version: String::new(),
            parts: Vec::new(),
        };
        w.finish(info).unwrap();
    }
    let target = home.path().join("target");
    let out = run(reel!(&home)
        .arg("--tape")
        .arg(&cart)
        .args(["restore", "--to"])
        .arg(&target));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "refusals give exit code 1: {stderr}"
    );
    for what in ["absolute path", "'..'", "through the symlink"] {
        assert!(stderr.contains(what), "reports {what}: {stderr}");
    }
    assert!(stdout.contains("3 members refused"), "{stdout}");
    assert_eq!(std::fs::read(target.join("d/fine")).unwrap(), b"fine");
    assert!(!Path::new("/etc/evil-absolute").exists());
    assert!(!home.path().join("evil-dotdot").exists());
    assert!(!Path::new("/tmp/evil-through-symlink").exists());
}

#[test]
fn default_set_names_are_unique_and_an_incremental_names_its_parent() {
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 20, 5);
    // Three backups in a row, most likely within one second: the names a restore by name
    // takes must still differ.
    ok(reel!(&home).arg("backup").arg(&src));
    ok(reel!(&home).arg("backup").arg(&src));
    write_file(&src.join("new.txt"), b"new\n");
    let out = ok(reel!(&home).args(["backup", "--incremental"]).arg(&src));
    let json: serde_json::Value =
        serde_json::from_str(&ok(reel!(&home).args(["list", "--json"]))).unwrap();
    let names: Vec<String> = json["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["info"]["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3);
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), 3, "{names:?}");
    assert!(
        out.contains(&format!("incremental since set 2 \"{}\" on ", names[1])),
        "{out}"
    );
    let target = home.path().join("out");
    ok(reel!(&home)
        .args(["restore", &names[2], "--to"])
        .arg(&target));
    assert_same_tree(&src, &restored(&target, &src));
}
