//! `reel list|restore --archive` / `--tape T --file N` and `reel catalog scan`, as a user
//! runs them: tar files on disk and on standard input, a GNU multi-volume archive, a tape
//! GNU tar wrote onto a reel cartridge through `reel rmt`, the hostile corpus, and the
//! exit codes and messages of each.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use reel_testkit::cli::{ok, run};
use reel_testkit::{TempHome, assert_same_tree, make_tree, reel, require_tool, write_file};

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../reel-archive/tests/corpus/{name}.tar"))
}

fn gnu_tar(args: &[&str], archive: &Path, dir: &Path, members: &[&str]) -> Output {
    let out = Command::new("tar")
        .args(args)
        .arg("-f")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .args(members)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn list_and_restore_a_tar_file_and_standard_input() {
    if !require_tool("tar") {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 150, 99);
    write_file(&src.join("etc/fstab"), b"/dev/sda1 / ext4\n");
    let archive = home.path().join("a.tar");
    gnu_tar(&["-c", "--format=posix"], &archive, &src, &["."]);

    let listing = ok(reel!(&home).args(["list", "--archive"]).arg(&archive));
    assert!(listing.contains("./etc/fstab"), "{listing}");
    let json = ok(reel!(&home)
        .args(["--json", "list", "--archive"])
        .arg(&archive)
        .arg("etc"));
    let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
    let entries = doc["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "{json}");
    assert_eq!(doc["listing"]["members"], 2);
    assert_eq!(doc["listing"]["damage"].as_array().unwrap().len(), 0);

    // Whole archive: the same tree as the source (which is what tar -xpf gives too).
    let out = home.path().join("out");
    let text = ok(reel!(&home)
        .args(["restore", "--allow-outside-symlinks", "--archive"])
        .arg(&archive)
        .arg("--to")
        .arg(&out));
    assert!(text.contains("restored archive"), "{text}");
    assert_same_tree(&src, &out);

    // One file from standard input.
    let out2 = home.path().join("out2");
    let mut child = reel!(&home)
        .args(["restore", "--archive", "-", "etc/fstab", "--to"])
        .arg(&out2)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&archive).unwrap())
        .unwrap();
    let res = child.wait_with_output().unwrap();
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(
        std::fs::read(out2.join("etc/fstab")).unwrap(),
        b"/dev/sda1 / ext4\n"
    );
    assert_eq!(std::fs::read_dir(&out2).unwrap().count(), 1);
}

#[test]
fn usage_errors_say_what_to_do() {
    let home = TempHome::new();
    let tmp = home.path();
    write_file(&tmp.join("x.tar.gz"), &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    let out = run(reel!(&home)
        .args(["list", "--archive"])
        .arg(tmp.join("x.tar.gz")));
    assert_eq!(code(&out), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("gzip-compressed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(reel!(&home)
        .args(["restore", "--archive"])
        .arg(corpus("bad-checksum")));
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to"));
    let out = run(reel!(&home)
        .args(["list", "--archive"])
        .arg(tmp.join("missing.tar")));
    assert_eq!(code(&out), 2);
    let out = run(reel!(&home)
        .args(["list", "--file", "1", "--archive"])
        .arg(corpus("bad-checksum")));
    assert_eq!(code(&out), 2);
    // Staging busy files is for sets only: refused, not silently ignored.
    let out = run(reel!(&home)
        .args(["restore", "--schedule-busy", "--to"])
        .arg(tmp.join("out"))
        .arg("--archive")
        .arg(corpus("bad-checksum")));
    assert_eq!(code(&out), 2);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.join("out").exists());
}

#[test]
fn hostile_and_damaged_archives_exit_codes_and_messages() {
    let home = TempHome::new();
    for (name, want_code, want) in [
        ("dotdot-plain", 1, "../escape-dotdot: path contains '..'"),
        ("symlink-then-write", 1, "leaves the restore target"),
        ("hardlink-absolute", 1, "hl-abs"),
        (
            "bad-checksum",
            4,
            "corrupt archive at byte 1024: header checksum mismatch",
        ),
        ("truncated-in-data", 4, "archive truncated"),
        ("sparse-0.1-unsorted-map", 4, "sparse extent"),
    ] {
        let target = home.path().join(format!("t-{name}"));
        let out = run(reel!(&home)
            .args(["restore", "--archive"])
            .arg(corpus(name))
            .arg("--to")
            .arg(&target));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(code(&out), want_code, "{name}: {stderr}");
        assert!(stderr.contains(want), "{name}: {stderr}");
        assert!(!home.path().join("escape-dotdot").exists());
    }
    // Listing a damaged archive shows the members around the damage and exits 4.
    let out = run(reel!(&home)
        .args(["list", "--archive"])
        .arg(corpus("garbage-between-members")));
    assert_eq!(code(&out), 4);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" a\n") && stdout.contains(" c\n"),
        "{stdout}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("skipped 1536 bytes to the next header at byte 2560")
    );
}

#[test]
fn gnu_multi_volume_archive_given_in_order() {
    if !require_tool("tar") {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("src");
    write_file(&src.join("big"), &reel_testkit::pseudo_random(5, 500_000));
    write_file(&src.join("small"), b"small\n");
    // The gnu format keeps whole seconds.
    for p in [src.join("big"), src.join("small"), src.clone()] {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .or_else(|_| std::fs::File::open(&p))
            .unwrap()
            .set_modified(t)
            .unwrap();
    }
    let v = |i: u32| home.path().join(format!("v{i}.tar"));
    let out = Command::new("tar")
        .args(["-c", "-M", "-L", "200", "--format=gnu", "-f"])
        .arg(v(1))
        .arg("-f")
        .arg(v(2))
        .arg("-f")
        .arg(v(3))
        .arg("-C")
        .arg(&src)
        .args(["big", "small"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = home.path().join("out");
    ok(reel!(&home)
        .args(["restore", "--to"])
        .arg(&target)
        .arg("--archive")
        .arg(v(1))
        .arg("--archive")
        .arg(v(2))
        .arg("--archive")
        .arg(v(3)));
    assert_same_tree(&src, &target);
    // Out of order: reported, not joined wrongly.
    let target = home.path().join("out-wrong");
    let out = run(reel!(&home)
        .args(["restore", "--to"])
        .arg(&target)
        .arg("--archive")
        .arg(v(1))
        .arg("--archive")
        .arg(v(3)));
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!target.join("big").exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of order or one is missing"));
}

#[test]
fn gnu_tar_onto_a_cartridge_through_reel_rmt_then_scan_and_restore() {
    if !require_tool("tar") {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 120, 4242);
    write_file(&src.join("needle.txt"), b"needle\n");
    let root = home.path().join("tapes");
    std::fs::create_dir_all(&root).unwrap();
    let rsh = home.path().join("reel-rsh");
    write_file(
        &rsh,
        format!(
            "#!/bin/sh\nexec {} rmt --root {} --mark-on-close\n",
            env!("CARGO_BIN_EXE_reel"),
            root.display()
        )
        .as_bytes(),
    );
    std::os::unix::fs::PermissionsExt::set_mode(
        &mut std::fs::metadata(&rsh).unwrap().permissions(),
        0o755,
    );
    std::fs::set_permissions(&rsh, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    // GNU tar writes `members` of src onto cartridge `shelf` through reel rmt.
    let rsh_command = format!("--rsh-command={}", rsh.display());
    let tar_onto = |shelf: &str, members: &str| {
        gnu_tar(
            &[&rsh_command, "-c", "--format=posix"],
            Path::new(&format!("localhost:{shelf}")),
            &src,
            &[members],
        )
    };
    let out = tar_onto("shelf1", ".");
    // The rmt server names a new cartridge NAME or NAME.vtape.
    let cart = [root.join("shelf1.vtape"), root.join("shelf1")]
        .into_iter()
        .find(|p| p.is_dir())
        .unwrap_or_else(|| root.join("shelf1"));
    let found: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        cart.is_dir(),
        "tar wrote {found:?} under {}: {}",
        root.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let tape = cart.to_str().unwrap().to_string();

    let listing = ok(reel!(&home).args(["--tape", &tape, "list", "--file", "0"]));
    assert!(listing.contains("./needle.txt"), "{listing}");
    let target = home.path().join("whole");
    ok(reel!(&home)
        .args([
            "--tape",
            &tape,
            "restore",
            "--file",
            "0",
            "--allow-outside-symlinks",
            "--to",
        ])
        .arg(&target));
    assert_same_tree(&src, &target);

    let json = ok(reel!(&home).args(["--tape", &tape, "--json", "catalog", "scan", "--file", "0"]));
    let scan: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(scan["record_size"], 10240, "{json}");
    assert_eq!(scan["seekable"], true);
    let id = scan["id"].as_str().unwrap().to_string();
    let scans = ok(reel!(&home).args(["catalog", "scans"]));
    assert!(scans.contains(&id), "{scans}");

    // One member, seeking from the catalog's scan.
    let restore_needle = |into: &str| {
        let target = home.path().join(into);
        let json = ok(reel!(&home)
            .args([
                "--tape",
                &tape,
                "--json",
                "restore",
                "--file",
                "0",
                "needle.txt",
                "--to",
            ])
            .arg(&target));
        let report: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(report["from_catalog"].as_str(), Some(id.as_str()), "{json}");
        assert_eq!(report["files"], 1);
        assert_eq!(
            std::fs::read(target.join("needle.txt")).unwrap(),
            b"needle\n"
        );
    };
    restore_needle("one");
    // GNU tar reads the cartridge back through reel rmt too.
    let out = home
        .command("tar")
        .arg(format!("--rsh-command={}", rsh.display()))
        .args(["-t", "-f", "localhost:shelf1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("./needle.txt"));

    // A rebuild keeps the scan (no tape holds it): the restore still seeks from the catalog.
    let json = ok(reel!(&home).args(["--json", "catalog", "rebuild"]));
    let rebuilt: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rebuilt["foreign_scans_kept"], 1, "{json}");
    // The old catalog it copied them from is gone once the rebuild succeeded, logs included.
    let left: Vec<String> = std::fs::read_dir(home.path().join("reel-home"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".old"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let scans = ok(reel!(&home).args(["catalog", "scans"]));
    assert!(scans.contains(&id), "{scans}");
    restore_needle("after-rebuild");

    // A scan still only in the catalog's log, as a crash leaves it (here another
    // connection keeps the log from being folded into the file): a rebuild keeps it too.
    tar_onto("shelf2", "needle.txt");
    let shelf2 = tape.replace("shelf1", "shelf2");
    let catalog = home.path().join("reel-home/catalog.sqlite");
    let holder = reel_catalog::Catalog::open_read_only(&catalog).unwrap();
    ok(reel!(&home).args(["--tape", &shelf2, "catalog", "scan", "--file", "0"]));
    drop(holder);
    let wal = home.path().join("reel-home/catalog.sqlite-wal");
    assert!(
        std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) > 0,
        "the scan is not in the log"
    );
    let json = ok(reel!(&home).args(["--json", "catalog", "rebuild"]));
    let rebuilt: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rebuilt["foreign_scans_kept"], 2, "{json}");
    restore_needle("after-crash-and-rebuild");
}
