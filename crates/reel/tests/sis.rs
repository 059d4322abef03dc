//! `reel sis` end to end on loop-mounted filesystems (root only).

use std::path::{Path, PathBuf};

use reel_testkit::{LoopFs, TempHome, pseudo_random, write_file};

fn reel(home: &TempHome, args: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut c = reel_testkit::reel!(home);
    for a in args {
        c.arg(a);
    }
    c.output().unwrap()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    (0..24)
        .map(|i| {
            let data = pseudo_random(i % 4, 30_000 + (i % 4) as usize * 7_000);
            let p = root.join(format!("t/d{}/f{i}", i % 3));
            write_file(&p, &data);
            (p, data)
        })
        .collect()
}

#[test]
fn merge_status_gc_verify_on_btrfs() {
    let Some(fs) = LoopFs::new("btrfs", 400 << 20) else {
        return;
    };
    let mnt = fs.path();
    let home = TempHome::new();
    let files = tree(mnt);
    let t = mnt.join("t");

    let dry = json(&reel(
        &home,
        &[&"--json", &"sis", &"merge", &"--dry-run", &t],
    ));
    assert_eq!(dry["groups"].as_array().unwrap().len(), 4);
    assert!(
        !mnt.join(".sis-common-store").exists(),
        "--dry-run changed something"
    );

    let m = json(&reel(&home, &[&"--json", &"sis", &"merge", &t]));
    assert_eq!(m["files_linked"], 24);
    assert_eq!(m["common_store_files_created"], 4);
    assert!(m["bytes_reclaimed"].as_i64().unwrap() > 0);
    for (p, data) in &files {
        assert_eq!(&std::fs::read(p).unwrap(), data);
    }

    let s = json(&reel(&home, &[&"--json", &"sis", &"status", &mnt]));
    assert_eq!(s["common_store_files"], 4);
    assert_eq!(s["links_present"], 24);
    assert_eq!(s["fs_type"], "btrfs");

    // Human output names what it did.
    let out = reel(&home, &[&"sis", &"status", &t]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("24 present of 24 recorded"), "{text}");

    // Delete every link of one content: gc removes its common-store file.
    for (i, (p, _)) in files.iter().enumerate() {
        if i % 4 == 0 {
            std::fs::remove_file(p).unwrap();
        }
    }
    let g = json(&reel(&home, &[&"--json", &"sis", &"gc", &mnt]));
    assert_eq!(g["removed"].as_array().unwrap().len(), 1, "{g}");
    assert_eq!(g["links_dropped"].as_array().unwrap().len(), 6);

    let v = reel(&home, &[&"sis", &"verify", &mnt]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));

    // A damaged common-store file is a data integrity failure (exit 4).
    let store = mnt.join(".sis-common-store");
    let victim = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sis"))
        .unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let v = reel(&home, &[&"sis", &"verify", &mnt]);
    assert_eq!(v.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&v.stderr).contains("damaged"));
}

#[test]
fn refuses_ext4_naming_it() {
    let Some(fs) = LoopFs::new("ext4", 200 << 20) else {
        return;
    };
    let mnt = fs.path();
    let home = TempHome::new();
    tree(mnt);
    for cmd in ["merge", "status", "gc", "verify"] {
        let out = reel(&home, &[&"sis", &cmd, &mnt.join("t")]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("filesystem (ext4) cannot share") && err.contains("reflink"),
            "{cmd}: {err}"
        );
    }
    assert!(!mnt.join(".sis-common-store").exists());
}

#[test]
fn help_has_examples() {
    let home = TempHome::new();
    for sub in ["merge", "status", "gc", "watch", "verify"] {
        let out = reel(&home, &[&"sis", &sub, &"--help"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(text.contains("Example"), "{sub}: {text}");
        assert!(text.contains(&format!("reel sis {sub}")), "{sub}: {text}");
    }
}
