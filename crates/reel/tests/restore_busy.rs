//! `reel restore --schedule-busy`: a file whose name is busy (here: a bind mount over it) is
//! staged next to its target and a MoveFile scheduled; `reel delayed run` carries it out.

use std::process::Command;

use reel_testkit::cli::ok;
use reel_testkit::{TempHome, require_root, require_tool, write_file};

/// Unmounts the bind mount when the test ends, whatever happens.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_busy_file_is_staged_and_moved_into_place_later() {
    if !require_root("bind-mounts a file over the restore target") || !require_tool("mount") {
        return;
    }
    let home = TempHome::new();
    let reel = || reel_testkit::reel!(&home);
    let src = home.path().join("src");
    write_file(&src.join("lib.so"), b"the restored library");
    write_file(&src.join("other.txt"), b"other");
    ok(reel().arg("backup").arg(&src));
    let target = home.path().join("out");
    let lib = target.join(src.strip_prefix("/").unwrap()).join("lib.so");
    write_file(&lib, b"in use");
    let holder = home.path().join("holder");
    write_file(&holder, b"in use");
    ok(Command::new("mount").arg("--bind").arg(&holder).arg(&lib));
    let mounted = Unmount(lib.clone());
    let ops = home.path().join("ops.bin");
    let out = ok(reel()
        .args(["restore", "--overwrite", "--schedule-busy"])
        .arg(&ops)
        .arg("--to")
        .arg(&target));
    assert!(out.contains("staged"), "{out}");
    assert_eq!(
        std::fs::read(&lib).unwrap(),
        b"in use",
        "the busy file is untouched"
    );
    let listing = ok(reel().args(["delayed", "show"]).arg(&ops));
    assert!(
        listing.contains("MoveFile") && listing.contains("lib.so"),
        "{listing}"
    );
    drop(mounted);
    ok(reel()
        .args(["delayed", "run"])
        .arg(&ops)
        .arg("--state-dir")
        .arg(home.path().join("state")));
    assert_eq!(std::fs::read(&lib).unwrap(), b"the restored library");
    let leftovers: Vec<_> = std::fs::read_dir(lib.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".reel-tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "the staged file was moved, not copied"
    );
}
