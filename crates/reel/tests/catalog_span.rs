//! The catalog, spanning volumes, incremental chains and verify, as a user runs them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use reel_testkit::cli::{ok, run};
use reel_testkit::{TempHome, assert_same_tree, make_tree, pseudo_random, reel, require_tool};

/// Everything a command printed, for messages that may go to either stream.
fn stdout_and_stderr(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").expect("absolute"))
}

/// A snapshot of a tree as it is now (cp -a keeps modes, times to the nanosecond, links).
fn snapshot(src: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// A library `lib` with one small cartridge (`small-1`, a few MiB before early warning) and
/// a tree `src` of `files` files of 2 MiB.
fn small_cartridge_and_files(home: &TempHome, files: u64) -> (PathBuf, PathBuf) {
    let lib = home.path().join("lib");
    ok(reel!(home)
        .arg("--tape")
        .arg(&lib)
        .args(["tape", "new", "small-1", "--capacity", "12M"]));
    let src = home.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..files {
        std::fs::write(src.join(format!("f{i:02}")), pseudo_random(i, 2 << 20)).unwrap();
    }
    (lib, src)
}

#[test]
fn a_set_larger_than_a_cartridge_spans_volumes_and_restores() {
    let home = TempHome::new();
    let (lib, src) = small_cartridge_and_files(&home, 14);
    make_tree(&src.join("tree"), 200, 9);
    let out = ok(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["backup", "--name", "big"])
        .arg(&src));
    let carts = ok(reel!(&home).arg("--tape").arg(&lib).args(["tape", "list"]));
    let used = carts
        .lines()
        .filter(|l| l.contains("tape-") || l.contains("small-1"))
        .count();
    assert!(
        used >= 3,
        "the set should span 3+ cartridges:\n{out}\n{carts}"
    );
    // The first volume got a torn write after the backup (a crash of something else writing
    // to it): the changer loads it during the restore, and the repair is reported.
    let tap = lib.join("small-1.vtape/p1.tap");
    let mut f = std::fs::OpenOptions::new().append(true).open(&tap).unwrap();
    std::io::Write::write_all(&mut f, &[0x28, 0x23, 0, 0, 1, 2, 3]).unwrap();
    drop(f);
    // Restore across volumes.
    let t = home.path().join("r");
    let out = run(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["restore", "big", "--to"])
        .arg(&t));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning") && stderr.contains("7 bytes of an unfinished write"),
        "the repair of a cartridge loaded mid-job is reported: {stderr}"
    );
    assert_same_tree(&src, &restored(&t, &src));
    // The listing survives losing the catalog.
    let before = ok(reel!(&home).arg("--tape").arg(&lib).args(["list", "big"]));
    std::fs::remove_file(home.path().join("reel-home/catalog.sqlite")).unwrap();
    ok(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["catalog", "rebuild"]));
    let after = ok(reel!(&home).arg("--tape").arg(&lib).args(["list", "big"]));
    assert_eq!(before, after);
    let t2 = home.path().join("r2");
    ok(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["restore", "big", "--to"])
        .arg(&t2));
    assert_same_tree(&src, &restored(&t2, &src));
    // A missing volume is named.
    std::fs::rename(lib.join("tape-0001.vtape"), home.path().join("away.vtape")).unwrap();
    let outp = run(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["restore", "big", "--to"])
        .arg(home.path().join("r3")));
    assert!(!outp.status.success());
    let stderr = String::from_utf8_lossy(&outp.stderr);
    assert!(
        stderr.contains("tape-0001"),
        "names the missing volume: {stderr}"
    );
}

#[test]
fn incremental_chain_restores_every_point_in_time() {
    if !require_tool("cp") {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("data");
    make_tree(&src, 300, 21);
    std::fs::write(src.join("keep.txt"), b"unchanged all along").unwrap();
    std::fs::write(src.join("edit.txt"), b"version 1").unwrap();
    std::fs::write(src.join("gone.txt"), b"deleted later").unwrap();
    std::fs::write(src.join("old-name.txt"), b"renamed later").unwrap();
    std::fs::write(src.join("mode.txt"), b"chmod later").unwrap();
    let snaps = home.path().join("snaps");
    ok(reel!(&home).args(["backup", "--name", "full"]).arg(&src));
    snapshot(&src, &snaps.join("0"));
    // Changes: add, modify, delete, rename, chmod.
    std::fs::write(src.join("added.txt"), b"new file").unwrap();
    std::fs::write(src.join("edit.txt"), b"version 2, longer").unwrap();
    std::fs::remove_file(src.join("gone.txt")).unwrap();
    std::fs::rename(src.join("old-name.txt"), src.join("new-name.txt")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(src.join("mode.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = ok(reel!(&home)
        .args(["backup", "--incremental", "--name", "inc1"])
        .arg(&src));
    assert!(out.contains("unchanged"), "{out}");
    snapshot(&src, &snaps.join("1"));
    std::fs::write(src.join("edit.txt"), b"version 3").unwrap();
    std::fs::remove_file(src.join("added.txt")).unwrap();
    std::fs::create_dir(src.join("newdir")).unwrap();
    std::fs::write(src.join("newdir/x"), b"x").unwrap();
    ok(reel!(&home)
        .args(["backup", "--incremental", "--name", "inc2"])
        .arg(&src));
    snapshot(&src, &snaps.join("2"));
    // The incremental sets are small: only what changed is in their data.
    let listing: serde_json::Value =
        serde_json::from_str(&ok(reel!(&home).args(["list", "--json"]))).unwrap();
    let sets = listing["sets"].as_array().unwrap();
    assert_eq!(sets.len(), 3);
    let full_bytes = sets[0]["info"]["archive_bytes"].as_u64().unwrap();
    let inc_bytes = sets[2]["info"]["archive_bytes"].as_u64().unwrap();
    assert!(
        inc_bytes * 4 < full_bytes,
        "incremental {inc_bytes} vs full {full_bytes}"
    );
    for (i, name) in ["full", "inc1", "inc2"].iter().enumerate() {
        let t = home.path().join(format!("r{i}"));
        ok(reel!(&home).args(["restore", name, "--to"]).arg(&t));
        let snap = snaps.join(i.to_string()).join("data");
        assert_same_tree(&snap, &restored(&t, &src));
    }
    // Without the catalog, an incremental restore still works from the tapes alone.
    std::fs::remove_file(home.path().join("reel-home/catalog.sqlite")).unwrap();
    let t = home.path().join("r-nocat");
    ok(reel!(&home).args(["restore", "inc2", "--to"]).arg(&t));
    assert_same_tree(&snaps.join("2/data"), &restored(&t, &src));
}

#[test]
fn verify_names_the_damaged_file_and_passes_the_rest() {
    let home = TempHome::new();
    let src = home.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..6 {
        std::fs::write(src.join(format!("f{i}")), pseudo_random(i, 600_000)).unwrap();
    }
    ok(reel!(&home).args(["backup"]).arg(&src));
    let out = ok(reel!(&home).args(["verify", "--against-disk"]));
    assert!(
        out.contains("6 files verified") && out.contains("the disk matches"),
        "{out}"
    );
    // Flip one bit in the content of f3 on the cartridge (and fix up nothing else).
    let tap = home.path().join("reel-home/library/tape-0001.vtape/p1.tap");
    let mut bytes = std::fs::read(&tap).unwrap();
    let needle = &pseudo_random(3, 600_000)[300_000..300_064];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("f3 content on tape");
    bytes[at + 10] ^= 0x01;
    std::fs::write(&tap, &bytes).unwrap();
    let outp = run(reel!(&home).args(["verify"]));
    assert_eq!(outp.status.code(), Some(4));
    let all = stdout_and_stderr(&outp);
    assert!(all.contains("/f3"), "names f3: {all}");
    assert!(all.contains("5 files verified"), "the others verify: {all}");
    // A file changed on disk is reported by --against-disk.
    std::fs::write(src.join("f1"), b"changed").unwrap();
    let outp = run(reel!(&home).args(["verify", "--against-disk"]));
    let all = stdout_and_stderr(&outp);
    assert!(all.contains("/f1: differs"), "{all}");

    // With the drive's ECC off the record CRC no longer catches the flip: the BLAKE3 of
    // the content is what finds it.
    ok(reel!(&home).args(["tape", "set", "--ecc", "off"]));
    let outp = run(reel!(&home).args(["verify"]));
    assert_eq!(outp.status.code(), Some(4));
    let all = stdout_and_stderr(&outp);
    assert!(all.contains("/f3"), "names f3: {all}");
    assert!(
        all.contains("hash"),
        "a hash mismatch, not a CRC error: {all}"
    );
    assert!(!all.contains("CRC"), "{all}");
    assert!(all.contains("5 files verified"), "the others verify: {all}");
}

#[test]
fn a_damaged_catalog_is_reported_with_what_to_do() {
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 50, 2);
    ok(reel!(&home).args(["backup"]).arg(&src));
    let cat = home.path().join("reel-home/catalog.sqlite");
    std::fs::write(&cat, vec![0x42u8; 10_000]).unwrap();
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(cat.with_extension(ext));
    }
    // Reading still works from the tape, with a warning that says what to do.
    let outp = run(reel!(&home).args(["list", "1"]));
    assert!(outp.status.success());
    assert!(String::from_utf8_lossy(&outp.stderr).contains("reel catalog rebuild"));
    // An incremental backup needs it: a clear error.
    let outp = run(reel!(&home).args(["backup", "--incremental"]).arg(&src));
    assert_eq!(outp.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&outp.stderr).contains("catalog rebuild"));
    ok(reel!(&home).args(["catalog", "rebuild"]));
    ok(reel!(&home).args(["backup", "--incremental"]).arg(&src));
}

#[test]
fn rebuild_reports_a_set_whose_index_is_damaged_and_keeps_the_others() {
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 400, 3);
    ok(reel!(&home).args(["backup", "--name", "first"]).arg(&src));
    ok(reel!(&home).args(["backup", "--name", "second"]).arg(&src));
    // Damage set 1's index (tape file 2) in the middle.
    let index = reel!(&home)
        .args(["tape", "dump", "--file", "2"])
        .output()
        .unwrap();
    assert!(index.status.success());
    let index = index.stdout;
    assert!(index.len() > 400, "index of {} bytes", index.len());
    let tap_path = home.path().join("reel-home/library/tape-0001.vtape/p1.tap");
    let mut tap = std::fs::read(&tap_path).unwrap();
    let at = tap
        .windows(64)
        .position(|w| w == &index[..64])
        .expect("set 1's index in the image");
    let flip = at + index.len() * 3 / 4;
    tap[flip] ^= 0x5a;
    std::fs::write(&tap_path, &tap).unwrap();
    std::fs::remove_file(home.path().join("reel-home/catalog.sqlite")).unwrap();
    for ext in ["sqlite-wal", "sqlite-shm"] {
        let _ = std::fs::remove_file(home.path().join("reel-home/catalog").with_extension(ext));
    }

    let out = run(reel!(&home).args(["catalog", "rebuild"]));
    let all = stdout_and_stderr(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("set 1") && all.contains("tape file 2") && all.contains("1 sets"),
        "{all}"
    );
    // The second set made it into the catalog, the first did not.
    let listed = ok(reel!(&home).args(["list", "second"]));
    assert!(listed.contains("src/"), "{listed}");
    let out = run(reel!(&home).args(["list", "first"]));
    assert!(
        !out.status.success(),
        "set 1 is not listed from a damaged index"
    );
}

#[test]
fn a_volume_a_set_filled_and_continued_from_takes_no_new_set() {
    let home = TempHome::new();
    let (lib, src) = small_cartridge_and_files(&home, 10);
    ok(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["backup", "--name", "big"])
        .arg(&src));
    let small = home.path().join("small");
    make_tree(&small, 20, 4);
    let cartridges = || ok(reel!(&home).arg("--tape").arg(&lib).args(["tape", "list"]));
    let before = cartridges();
    assert!(
        before.contains("tape-0001") && before.contains("tape-0002"),
        "big spans three cartridges: {before}"
    );
    // The first volume (part 1 of big) and the middle one (part 2, a volume holding nothing
    // else): each was closed when big filled it. A set appended there would start past
    // early warning and at once continue on a new cartridge that claims to be the next
    // volume of big's series. The set starts on a blank cartridge instead, and the full
    // one is left as it was.
    for (cartridge, part, next, blank) in [
        ("small-1", 1, "tape-0001", "tape-0003"),
        ("tape-0001", 2, "tape-0002", "tape-0004"),
    ] {
        let tap = lib.join(format!("{cartridge}.vtape/p1.tap"));
        let image = std::fs::read(&tap).unwrap();
        let out = run(reel!(&home)
            .arg("--tape")
            .arg(lib.join(format!("{cartridge}.vtape")))
            .args(["backup", "--name", &format!("after-{part}")])
            .arg(&small));
        let all = stdout_and_stderr(&out);
        assert!(out.status.success(), "{all}");
        assert!(
            all.contains(&format!("{cartridge} is full (set big"))
                && all.contains(&format!("continues on {next}"))
                && all.contains(&format!("its part {part}"))
                && all.contains(&format!("the set starts on {blank}"))
                && all.contains(&format!("set 1 \"after-{part}\" on {blank}:")),
            "{all}"
        );
        assert!(std::fs::read(&tap).unwrap() == image, "{cartridge} changed");
    }
    // Without a library to take a blank cartridge from, the full volume is refused.
    let lone = home.path().join("lone");
    snapshot(&lib.join("small-1.vtape"), &lone);
    let out = run(reel!(&home)
        .arg("--tape")
        .arg(lone.join("small-1.vtape"))
        .args(["backup", "--name", "refused"])
        .arg(&small));
    let all = stdout_and_stderr(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("small-1 is full: set big") && all.contains("no other cartridges"),
        "{all}"
    );
    // The volume big ends on takes the set, and big is still whole.
    let out = ok(reel!(&home)
        .arg("--tape")
        .arg(lib.join("tape-0002.vtape"))
        .args(["backup", "--name", "after"])
        .arg(&small));
    assert!(out.contains("set 2 \"after\" on tape-0002:"), "{out}");
    let t = home.path().join("r");
    ok(reel!(&home)
        .arg("--tape")
        .arg(&lib)
        .args(["restore", "big", "--to"])
        .arg(&t));
    assert_same_tree(&src, &restored(&t, &src));
    let t2 = home.path().join("r2");
    ok(reel!(&home)
        .arg("--tape")
        .arg(lib.join("tape-0002.vtape"))
        .args(["restore", "after", "--to"])
        .arg(&t2));
    assert_same_tree(&small, &restored(&t2, &small));
}
