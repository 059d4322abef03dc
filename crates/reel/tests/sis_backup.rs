//! Single instance store links in backups (real btrfs and XFS images, as root): a merged
//! tree's set holds each content once; restoring onto the same kind re-creates the sharing; GNU tar extracts
//! correct contents from the dumped set; onto ext4 the links come back as full copies.

use std::process::Command;

use reel_testkit::{LoopFs, TempHome, pseudo_random, require_tool, write_file};

fn ok(cmd: &mut Command) -> String {
    let out = reel_testkit::cli::succeeded(cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn used_bytes(path: &std::path::Path) -> u64 {
    let _ = Command::new("sync").status();
    let st = rustix::fs::statvfs(path).unwrap();
    (st.f_blocks - st.f_bfree) * st.f_frsize
}

const MIB: usize = 1 << 20;

#[test]
fn merged_trees_are_backed_up_once_and_restored_shared_btrfs() {
    merged_trees_are_backed_up_once_and_restored_shared("btrfs");
}

#[test]
fn merged_trees_are_backed_up_once_and_restored_shared_xfs() {
    merged_trees_are_backed_up_once_and_restored_shared("xfs");
}

fn merged_trees_are_backed_up_once_and_restored_shared(fs: &str) {
    let Some(src_fs) = LoopFs::new(fs, 400 << 20) else {
        return;
    };
    let Some(dst_fs) = LoopFs::new(fs, 400 << 20) else {
        return;
    };
    if !require_tool("tar") {
        return;
    }
    let home = TempHome::new();
    let reel = || reel_testkit::reel!(&home);
    let tree = src_fs.path().join("tree");
    // 60 files, 6 distinct 1 MiB contents.
    for i in 0..60u64 {
        write_file(
            &tree.join(format!("d{}/f{i:02}", i % 4)),
            &pseudo_random(i % 6, MIB),
        );
    }
    ok(reel().args(["sis", "merge"]).arg(&tree));
    let out = ok(reel().arg("backup").arg(&tree));
    assert!(out.contains("set 1"), "{out}");
    let listing: serde_json::Value =
        serde_json::from_str(&ok(reel().args(["list", "--json"]))).unwrap();
    let archive = listing["sets"][0]["info"]["archive_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        archive < 10 * MIB as u64,
        "the set holds each content once: {archive} bytes for 6 MiB distinct, 60 MiB total"
    );
    // Restore onto an empty file system of the same kind: the sharing comes back.
    let before = used_bytes(dst_fs.path());
    let target = dst_fs.path().join("r");
    ok(reel().args(["restore", "--to"]).arg(&target));
    let grown = used_bytes(dst_fs.path()) - before;
    assert!(
        grown < 20 * MIB as u64,
        "restored links share extents: {grown} bytes used for 60 MiB of files"
    );
    let restored_tree = target.join(tree.strip_prefix("/").unwrap());
    for i in 0..60u64 {
        let p = restored_tree.join(format!("d{}/f{i:02}", i % 4));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            pseudo_random(i % 6, MIB),
            "{}",
            p.display()
        );
    }
    // Writing to one restored link changes only that file.
    std::fs::write(restored_tree.join("d0/f00"), b"changed").unwrap();
    assert_eq!(
        std::fs::read(restored_tree.join("d0/f04")).unwrap(),
        pseudo_random(4, MIB)
    );
    assert_eq!(
        std::fs::read(restored_tree.join("d2/f06")).unwrap(),
        pseudo_random(0, MIB)
    );
    // GNU tar reads the dumped set: links are hard links to the common-store members.
    let tar_file = home.path().join("s.tar");
    std::fs::write(
        &tar_file,
        Command::new(env!("CARGO_BIN_EXE_reel"))
            .env("REEL_HOME", home.path().join("reel-home"))
            .args(["tape", "dump", "--file", "1"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let x = home.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(&tar_file)
        .arg("-C")
        .arg(&x)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar_tree = x.join(tree.strip_prefix("/").unwrap());
    for i in 0..60u64 {
        assert_eq!(
            std::fs::read(tar_tree.join(format!("d{}/f{i:02}", i % 4))).unwrap(),
            pseudo_random(i % 6, MIB)
        );
    }
}

#[test]
fn links_restored_where_there_are_no_reflinks_are_full_copies_and_say_so() {
    let Some(src_fs) = LoopFs::new("btrfs", 300 << 20) else {
        return;
    };
    let home = TempHome::new();
    let reel = || reel_testkit::reel!(&home);
    let tree = src_fs.path().join("tree");
    for i in 0..10u64 {
        write_file(&tree.join(format!("f{i}")), &pseudo_random(i % 2, 300_000));
    }
    ok(reel().args(["sis", "merge"]).arg(&tree));
    ok(reel().arg("backup").arg(&tree));
    // Restored onto ext4, which has no reflinks (a loop image: the temp directory could be
    // on btrfs or XFS).
    let Some(ext4) = LoopFs::new("ext4", 64 << 20) else {
        return;
    };
    let target = ext4.path().join("r");
    let out = ok(reel().args(["restore", "--to"]).arg(&target));
    assert!(out.contains("full copies"), "says so: {out}");
    let restored_tree = target.join(tree.strip_prefix("/").unwrap());
    for i in 0..10u64 {
        assert_eq!(
            std::fs::read(restored_tree.join(format!("f{i}"))).unwrap(),
            pseudo_random(i % 2, 300_000)
        );
    }
}
