//! The main job on a SCSI tape drive over iSCSI: tgtd's virtual drive on 127.0.0.1.
//! Backup, list and restore give the tree back; a one-file restore spaces to its member
//! (tgtd logs every READ it serves, so the test counts them); `reel tape dump` gives a set
//! GNU tar lists; killing tgtd mid-backup is a media error naming the drive, with no set
//! left complete in the catalog. The changer LUN: `reel changer` status (as mtx prints it,
//! and as JSON with the barcodes tgtimg wrote), load, unload, transfer, export, import.

use std::path::Path;
use std::process::{Command, Stdio};

use reel_testkit::cli::ok;
use reel_testkit::tgt::{Tgt, TgtConfig};
use reel_testkit::{
    TempHome, assert_same_tree, make_tree, pseudo_random, require_tool, write_file,
};

const REEL: &str = env!("CARGO_BIN_EXE_reel");

fn start(size_mb: u32) -> Option<Tgt> {
    if let Err(e) = reel_scsi::iscsi::library_available() {
        reel_testkit::missing(&e);
        return None;
    }
    Tgt::start(&TgtConfig {
        barcodes: vec![],
        loaded: Some("MAIN01L6".into()),
        size_mb,
        ..TgtConfig::default()
    })
}

fn reel(home: &TempHome, tgt: &Tgt) -> Command {
    let mut c = home.command(REEL);
    c.arg("--tape").arg(tgt.drive_url()).arg("--no-prompt");
    c
}

/// READs tgtd served so far (it logs each one).
fn reads(tgt: &Tgt) -> usize {
    tgt.log().matches("Executed READ_6").count()
}

#[test]
fn backup_list_restore_and_dump_over_iscsi() {
    let Some(tgt) = start(64) else {
        return;
    };
    let home = TempHome::new();
    let src = home.path().join("src");
    make_tree(&src, 40, 7);
    write_file(&src.join("big/blob.bin"), &pseudo_random(3, 3 << 20));
    write_file(&src.join("z-last/needle.txt"), b"the one file\n");

    ok(reel(&home, &tgt)
        .arg("backup")
        .arg(&src)
        .args(["--name", "first"]));
    let list = ok(reel(&home, &tgt).arg("list"));
    assert!(list.contains("first"), "{list}");

    let out = home.path().join("out");
    ok(reel(&home, &tgt).arg("restore").arg("--to").arg(&out));
    let restored = out.join(src.strip_prefix("/").unwrap());
    assert_same_tree(&src, &restored);

    // One file: the drive is spaced to the member, not read through the set.
    let before = reads(&tgt);
    let one = home.path().join("one");
    let member = format!(
        "{}/z-last/needle.txt",
        src.strip_prefix("/").unwrap().display()
    );
    ok(reel(&home, &tgt)
        .args(["restore", "first"])
        .arg(&member)
        .arg("--to")
        .arg(&one));
    let needle = one.join(&member);
    assert_eq!(std::fs::read(&needle).unwrap(), b"the one file\n");
    let one_reads = reads(&tgt) - before;
    // The set has more than 12 records of 256 KiB (3 MiB of blob alone); reading the
    // label, the index and the member's record is a handful.
    eprintln!("a one-file restore issued {one_reads} READs");
    assert!(
        one_reads <= 8,
        "a one-file restore issued {one_reads} READs"
    );

    if require_tool("tar") {
        let dump = home
            .command(REEL)
            .arg("--tape")
            .arg(tgt.drive_url())
            .args(["tape", "dump", "--file", "1"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            dump.status.success(),
            "{}",
            String::from_utf8_lossy(&dump.stderr)
        );
        let tar = home.path().join("set1.tar");
        std::fs::write(&tar, &dump.stdout).unwrap();
        let listing = reel_testkit::run_ok(Command::new("tar").arg("-tf").arg(&tar));
        assert!(listing.contains("z-last/needle.txt"), "{listing}");
        assert!(listing.contains("big/blob.bin"), "{listing}");
    }
}

#[test]
fn a_killed_target_mid_backup_is_a_media_error_naming_the_drive() {
    let Some(mut tgt) = start(256) else {
        return;
    };
    let home = TempHome::new();
    let src = home.path().join("src");
    for i in 0..24 {
        write_file(
            &src.join(format!("f{i:02}.bin")),
            &pseudo_random(i, 4 << 20),
        );
    }
    let mut child = reel(&home, &tgt)
        .arg("backup")
        .arg(&src)
        .args(["--name", "doomed"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the target once the backup has written 16 MiB to the cartridge image.
    let image = tgt.media_home().join("MAIN01L6");
    let written = || std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while written() < 16 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never wrote"
        );
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let url = tgt.drive_url();
    tgt.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    eprintln!("reel after the kill: {stderr}");
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&url), "the drive is not named: {stderr}");
    // The catalog records complete sets only: the killed one is not there.
    let sets = catalog_set_names(&home.path().join("reel-home"));
    assert!(!sets.iter().any(|n| n == "doomed"), "{sets:?}");
}

/// The names of the sets in the catalog of `reel_home`.
fn catalog_set_names(reel_home: &Path) -> Vec<String> {
    let path = reel_home.join("catalog.sqlite");
    if !path.exists() {
        return Vec::new();
    }
    let catalog = reel_catalog::Catalog::open_read_only(&path).expect("open the catalog");
    catalog
        .sets()
        .expect("read the catalog")
        .into_iter()
        .map(|s| s.name)
        .collect()
}

fn changer(home: &TempHome, tgt: &Tgt) -> Command {
    let mut c = home.command(REEL);
    c.arg("changer").arg("--changer").arg(tgt.changer_url());
    c
}

#[test]
fn the_changer_over_iscsi_shows_barcodes_and_moves_cartridges() {
    if let Err(e) = reel_scsi::iscsi::library_available() {
        reel_testkit::missing(&e);
        return;
    }
    let Some(tgt) = Tgt::start(&TgtConfig::default()) else {
        return;
    };
    let home = TempHome::new();
    // mtx status as mtx prints it: one drive, 6 storage slots and a mail slot.
    let status = ok(changer(&home, &tgt).arg("status"));
    assert!(status.contains("Storage Changer"), "{status}");
    assert!(
        status.contains(":1 Drives, 7 Slots ( 1 Import/Export )"),
        "{status}"
    );
    assert!(status.contains("Data Transfer Element 0:Empty"), "{status}");
    assert!(
        status.contains("      Storage Element 1:Full :VolumeTag=REEL01L6"),
        "{status}"
    );
    assert!(
        status.contains("      Storage Element 7 IMPORT/EXPORT:Empty"),
        "{status}"
    );

    // Load by barcode; the JSON status shows the drive full with the slot it came from.
    ok(changer(&home, &tgt).args(["load", "REEL02L6"]));
    let json: serde_json::Value =
        serde_json::from_str(&ok(changer(&home, &tgt).args(["status", "--json"]))).unwrap();
    let drive = &json["drives"][0];
    assert_eq!(drive["full"], true, "{json}");
    assert_eq!(drive["barcode"], "REEL02L6", "{json}");
    assert_eq!(drive["source"], 2, "{json}");
    let barcodes: Vec<_> = json["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["barcode"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(barcodes[..3], ["REEL01L6", "", "REEL03L6"], "{json}");

    // The drive now has the cartridge: a backup goes on it.
    let src = home.path().join("src");
    make_tree(&src, 5, 1);
    ok(reel(&home, &tgt).arg("backup").arg(&src));
    // reel tape health: tgt has no TapeAlert page or MAM, and says so.
    let health = ok(reel(&home, &tgt).args(["tape", "health"]));
    assert!(
        health.contains("TapeAlert: not available") && health.contains("LOG SENSE"),
        "{health}"
    );

    // Back to its slot, a transfer, an export to the mail slot and the import back.
    ok(changer(&home, &tgt).arg("unload"));
    ok(changer(&home, &tgt).args(["transfer", "3", "5"]));
    ok(changer(&home, &tgt).args(["export", "REEL01L6"]));
    let status = ok(changer(&home, &tgt).arg("status"));
    assert!(
        status.contains("Storage Element 7 IMPORT/EXPORT:Full :VolumeTag=REEL01L6"),
        "{status}"
    );
    assert!(
        status.contains("Storage Element 5:Full :VolumeTag=REEL03L6"),
        "{status}"
    );
    ok(changer(&home, &tgt).arg("import"));
    let status = ok(changer(&home, &tgt).arg("inventory"));
    assert!(
        status.contains("Storage Element 1:Full :VolumeTag=REEL01L6"),
        "{status}"
    );
    // An empty slot cannot be loaded: a usage error naming it.
    let out = reel_testkit::cli::run(changer(&home, &tgt).args(["load", "4"]));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("slot 4 is empty"),
        "{out:?}"
    );
}
