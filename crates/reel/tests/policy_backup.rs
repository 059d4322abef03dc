//! The policy in real backups and restores: exclusions and their reasons, --dry-run,
//! paths-not-to-restore, last-restore-id and post-restore hooks, btrfs snapshots.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use reel_testkit::cli::run;
use reel_testkit::{LoopFs, TempHome, reel, require_tool, write_file};

fn ok(cmd: &mut Command) -> (String, String) {
    let out = reel_testkit::cli::succeeded(cmd);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Member paths of a set, relative to `src`.
fn members(home: &TempHome, set: &str, src: &Path) -> BTreeSet<String> {
    let (json, _) = ok(reel!(home).args(["list", "--json", set]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let prefix = format!("{}/", src.strip_prefix("/").unwrap().display());
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["p"].as_str())
        .filter_map(|p| p.strip_prefix(&prefix).map(str::to_string))
        .collect()
}

fn policy_file(home: &TempHome, key: &str, name: &str, text: &str) {
    write_file(
        &home.root().join(format!("etc/reel/{key}.d/{name}")),
        text.as_bytes(),
    );
}

const SIGNATURE: &[u8] = b"Signature: 8a477f597d28d172789f06886806bc55";

#[test]
fn backup_skips_exactly_what_the_policy_says_and_dry_run_says_why() {
    let home = TempHome::new();
    let src = home.path().join("src");
    write_file(&src.join("keep.txt"), b"keep");
    write_file(
        &src.join("cache/CACHEDIR.TAG"),
        &[SIGNATURE, b"\n# a cache"].concat(),
    );
    write_file(&src.join("cache/blob"), b"cached");
    write_file(
        &src.join("notcache/CACHEDIR.TAG"),
        b"Signature: 8a477f597d28d172789f06886806bc56",
    );
    write_file(&src.join("notcache/blob"), b"kept: wrong signature");
    write_file(&src.join("private/.nobackup"), b"");
    write_file(&src.join("private/secret"), b"s");
    write_file(&src.join("nodump.bin"), b"n");
    write_file(&src.join("robots.txt"), b"r");
    write_file(&src.join("deep/er/scratch.tmp"), b"t");
    write_file(&src.join("deep/er/kept.dat"), b"k");
    write_file(&src.join("big.iso"), b"iso");
    let f = std::fs::File::open(src.join("nodump.bin")).unwrap();
    let flags = rustix::fs::ioctl_getflags(f.as_fd()).unwrap();
    if let Err(e) = rustix::fs::ioctl_setflags(f.as_fd(), flags | rustix::fs::IFlags::NODUMP) {
        reel_testkit::missing(&format!("nodump flag on the temp file system: {e}"));
        return;
    }
    drop(f);
    rustix::fs::setxattr(
        src.join("robots.txt").as_path(),
        "user.xdg.robots.backup",
        b"false",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    policy_file(
        &home,
        "files-not-to-backup",
        "app.conf",
        &format!("{}/*.tmp /s\n", src.display()),
    );
    // A malformed file: reported with file and line, never fatal.
    policy_file(
        &home,
        "files-not-to-backup",
        "broken.conf",
        "relative/pattern.txt\n",
    );

    let (dry, _) = ok(reel!(&home)
        .args(["backup", "--dry-run", "--exclude", "*.iso"])
        .arg(&src));
    for (what, why) in [
        ("cache", "CACHEDIR.TAG"),
        ("private", "exclude-if-present"),
        ("nodump.bin", "nodump"),
        ("robots.txt", "user.xdg.robots.backup"),
        ("scratch.tmp", "app.conf:1"),
        ("big.iso", "*.iso"),
    ] {
        let line = dry
            .lines()
            .find(|l| l.contains(what) && l.starts_with("skip"))
            .unwrap_or_else(|| panic!("{what} not in:\n{dry}"));
        assert!(line.contains(why), "{what} should say {why}: {line}");
    }
    assert!(
        !dry.contains("notcache ("),
        "wrong signature is not a cache: {dry}"
    );
    assert!(
        run(reel!(&home).args(["list"])).stdout.is_empty()
            || !home.path().join("reel-home/library").exists(),
        "dry run writes nothing"
    );

    let (_, err) = ok(reel!(&home)
        .args(["backup", "--exclude", "*.iso"])
        .arg(&src));
    assert!(
        err.contains("broken.conf:1"),
        "malformed policy reported with file and line: {err}"
    );
    let got = members(&home, "1", &src);
    let want: BTreeSet<String> = [
        "keep.txt",
        "cache",
        "cache/CACHEDIR.TAG",
        "notcache",
        "notcache/CACHEDIR.TAG",
        "notcache/blob",
        "deep",
        "deep/er",
        "deep/er/kept.dat",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(got, want);

    // --ignore-exclusions: every one of them goes in (and --exclude is refused with it).
    ok(reel!(&home)
        .args(["backup", "--ignore-exclusions"])
        .arg(&src));
    let all = members(&home, "2", &src);
    for what in [
        "cache/blob",
        "private/secret",
        "nodump.bin",
        "robots.txt",
        "deep/er/scratch.tmp",
        "big.iso",
    ] {
        assert!(all.contains(what), "{what} backed up: {all:?}");
    }
    let out = run(reel!(&home)
        .args(["backup", "--ignore-exclusions", "--exclude", "*.iso"])
        .arg(&src));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn whole_set_restore_sets_last_restore_id_runs_hooks_and_leaves_protected_paths() {
    if !require_tool("sh") {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("src");
    write_file(&src.join("a.txt"), b"a");
    write_file(&src.join("machine-id"), b"old id");
    ok(reel!(&home).arg("backup").arg(&src));
    let hook_out = home.path().join("hook.out");
    let hook = home.root().join("etc/reel/post-restore.d/10-note");
    write_file(
        &hook,
        format!(
            "#!/bin/sh\necho \"$REEL_SET_ID $REEL_RESTORE_ID\" > {}\n",
            hook_out.display()
        )
        .as_bytes(),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    policy_file(
        &home,
        "paths-not-to-restore",
        "ids.conf",
        &format!("{}/machine-id\n", src.display()),
    );
    // A whole set restored elsewhere than the system's places tells no application.
    let elsewhere = home.path().join("elsewhere");
    ok(reel!(&home).args(["restore", "--to"]).arg(&elsewhere));
    assert!(
        elsewhere
            .join(src.strip_prefix("/").unwrap())
            .join("a.txt")
            .is_file()
    );
    let id_path = home.root().join("var/lib/reel/last-restore-id");
    assert!(
        !id_path.exists(),
        "a restore to another directory wrote last-restore-id"
    );
    assert!(
        !hook_out.exists(),
        "a restore to another directory ran the hooks"
    );
    // To the system root (REEL_ROOT stands in for /): a whole-system restore.
    let target = home.root().to_path_buf();
    let (out, _) = ok(reel!(&home).args(["restore", "--to"]).arg(&target));
    assert!(out.contains("machine-id"), "reported: {out}");
    let r = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(r.join("a.txt")).unwrap(), b"a");
    assert!(
        !r.join("machine-id").exists(),
        "paths-not-to-restore left alone"
    );
    let id = std::fs::read_to_string(&id_path).unwrap();
    let id = id.trim();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let (json, _) = ok(reel!(&home).args(["list", "--json"]));
    let set_id = serde_json::from_str::<serde_json::Value>(&json).unwrap()["sets"][0]["info"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let note = std::fs::read_to_string(&hook_out).expect("post-restore hook ran");
    assert_eq!(note.trim(), format!("{set_id} {id}"));
    // A second whole restore makes a new id; a partial one does not.
    ok(reel!(&home)
        .args(["restore", "--overwrite", "--to"])
        .arg(&target));
    let id2 = std::fs::read_to_string(&id_path).unwrap();
    assert_ne!(id2.trim(), id);
    ok(reel!(&home)
        .args(["restore", "latest", "*/a.txt", "--overwrite", "--to"])
        .arg(&target));
    assert_eq!(std::fs::read_to_string(&id_path).unwrap(), id2);
}

#[test]
fn snapshot_backups_drop_files_not_to_snapshot_and_keep_at_most_max_snapshots() {
    let Some(fs) = LoopFs::new("btrfs", 300 << 20) else {
        return;
    };
    if !require_tool("btrfs") {
        return;
    }
    let home = TempHome::new();
    let vol = fs.path().join("data");
    reel_testkit::run_ok(
        Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(&vol),
    );
    write_file(&vol.join("doc.txt"), b"document");
    write_file(&vol.join("db/live.sqlite-journal"), b"journal");
    policy_file(
        &home,
        "files-not-to-snapshot",
        "db.conf",
        &format!("{}/*-journal /s\n", vol.display()),
    );
    write_file(
        &home.root().join("etc/reel/reel.conf"),
        b"max-snapshots = 2\n",
    );
    let mut snapshots_seen = Vec::new();
    for i in 0..3 {
        write_file(&vol.join(format!("new-{i}.txt")), b"n");
        let (out, _) = ok(reel!(&home)
            .args(["backup", "--snapshot", "--require-snapshot"])
            .arg(&vol));
        assert!(out.contains("read from snapshot"), "{out}");
        let snaps: Vec<PathBuf> = std::fs::read_dir(vol.join(".reel-snapshots"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        assert!(snaps.len() <= 2, "never more than max-snapshots: {snaps:?}");
        snapshots_seen.push(snaps.len());
    }
    let got = members(&home, "3", &vol);
    assert!(
        got.contains("doc.txt") && got.contains("new-2.txt"),
        "{got:?}"
    );
    assert!(
        !got.contains("db/live.sqlite-journal"),
        "files-not-to-snapshot are not in the set: {got:?}"
    );
    // The snapshot directory is a cache directory: itself and its tag, none of its content.
    let in_snapshots: Vec<&String> = got
        .iter()
        .filter(|p| p.starts_with(".reel-snapshots/"))
        .collect();
    assert_eq!(
        in_snapshots,
        vec![".reel-snapshots/CACHEDIR.TAG"],
        "snapshots are not backed up"
    );
    // The live tree keeps the file.
    assert!(vol.join("db/live.sqlite-journal").exists());
    // Elsewhere, --require-snapshot fails clearly and plain --snapshot reads the live tree.
    let plain = home.path().join("plain");
    write_file(&plain.join("x"), b"x");
    let out = run(reel!(&home)
        .args(["backup", "--snapshot", "--require-snapshot"])
        .arg(&plain));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("btrfs"));
    let (_, err) = ok(reel!(&home).args(["backup", "--snapshot"]).arg(&plain));
    assert!(err.contains("live tree"), "{err}");
}

#[test]
fn backup_hooks_see_the_set_and_a_pre_backup_hook_can_cancel_it() {
    if !require_tool("sh") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let home = TempHome::new();
    let src = home.path().join("src");
    write_file(&src.join("a.txt"), b"a");
    let seen = home.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    for phase in ["pre-backup", "post-backup"] {
        let hook = home.root().join(format!("etc/reel/{phase}.d/10-note"));
        let out = seen.join(phase);
        write_file(
            &hook,
            format!(
                "#!/bin/sh\nprintf '%s|%s|%s|%s|%s\\n' \"$REEL_HOOK\" \"$REEL_SET_ID\" \"$REEL_SET_NAME\" \"$REEL_PATHS\" \"$REEL_STATUS\" > '{}'\n",
                out.display()
            )
            .as_bytes(),
        );
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    ok(reel!(&home).args(["backup", "--name", "nightly"]).arg(&src));
    let (json, _) = ok(reel!(&home).args(["list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let set_id = v["sets"][0]["info"]["id"].as_str().unwrap().to_string();
    let src_s = src.display().to_string();
    let pre = std::fs::read_to_string(seen.join("pre-backup")).expect("pre-backup hook ran");
    assert_eq!(pre.trim(), format!("pre-backup|{set_id}|nightly|{src_s}|"));
    let post = std::fs::read_to_string(seen.join("post-backup")).expect("post-backup hook ran");
    assert_eq!(
        post.trim(),
        format!("post-backup|{set_id}|nightly|{src_s}|ok")
    );

    // A pre-backup hook exiting with REEL_HOOK_ABORT_STATUS (99) cancels the backup.
    let veto = home.root().join("etc/reel/pre-backup.d/20-veto");
    write_file(
        &veto,
        b"#!/bin/sh\necho busy >&2\nexit \"$REEL_HOOK_ABORT_STATUS\"\n",
    );
    std::fs::set_permissions(&veto, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(reel!(&home).arg("backup").arg(&src));
    assert_eq!(out.status.code(), Some(2), "a cancelled backup is exit 2");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cancel"), "{err}");
    let (json, _) = ok(reel!(&home).args(["list", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["sets"].as_array().unwrap().len(), 1, "no second set");
}

#[test]
fn backup_mode_custom_picks_each_file_systems_mode_by_uuid() {
    let Some(fs) = LoopFs::new("ext4", 32 << 20) else {
        return;
    };
    if !require_tool("findmnt") {
        return;
    }
    let uuid = fs.uuid().to_uppercase();
    let home = TempHome::new();
    // fstab style, in capitals: UUIDs compare without case.
    write_file(
        &home.root().join("etc/reel/reel.conf"),
        format!(
            "backup-mode = \"custom\"\n[backup-mode-custom]\n\"UUID={uuid}\" = \"incremental\"\n"
        )
        .as_bytes(),
    );
    let data = fs.path().join("data");
    write_file(&data.join("a.txt"), b"first");
    let elsewhere = home.path().join("elsewhere");
    write_file(&elsewhere.join("b.txt"), b"b");
    let mode_of_latest = |home: &TempHome| {
        let (json, _) = ok(reel!(home).args(["list", "--json"]));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        v["sets"].as_array().unwrap().last().unwrap()["info"]["mode"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // The first backup has no parent: full.
    ok(reel!(&home).arg("backup").arg(&data));
    assert_eq!(mode_of_latest(&home), "full");
    write_file(&data.join("c.txt"), b"added");
    ok(reel!(&home).arg("backup").arg(&data));
    assert_eq!(
        mode_of_latest(&home),
        "incremental",
        "the file system's entry (by UUID) makes plain backups incremental"
    );
    // With a path on a file system that has no entry (full by default), the set is full.
    ok(reel!(&home).arg("backup").arg(&data).arg(&elsewhere));
    assert_eq!(mode_of_latest(&home), "full");
}
