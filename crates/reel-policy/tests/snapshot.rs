//! btrfs snapshots on a loop-mounted image (root): files-not-to-snapshot removed, read-only,
//! consistent, never more than max-snapshots; a clear error elsewhere.

use std::path::{Path, PathBuf};
use std::process::Command;

use reel_policy::snapshot::{self, SnapshotError};
use reel_policy::{BackupFilter, EntryKind, Policy, Reason, Roots, Verdict};
use reel_testkit::{run_ok, write_file};

/// A btrfs image on a loop device (root), with the btrfs tool the tests also use.
fn btrfs_image() -> Option<reel_testkit::LoopFs> {
    let fs = reel_testkit::LoopFs::new("btrfs", 256 << 20)?;
    reel_testkit::require_tool("btrfs").then_some(fs)
}

fn policy_root(mnt: &Path, outside: &Path, extra_conf: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let m = mnt.display();
    write_file(
        &root
            .path()
            .join("etc/reel/files-not-to-snapshot.d/test.conf"),
        format!(
            "{m}/home/ann/projects/db/*.tmp /s\n\
             {m}/home/ann/.cache/\n\
             {m}/*.swp /s\n\
             {m}/home/ann/esc/*\n\
             {m}/home/ann/esc2/x/* /s\n\
             {m}/other/x\n\
             {}/* /s\n",
            outside.display()
        )
        .as_bytes(),
    );
    write_file(
        &root.path().join("etc/reel/reel.conf"),
        format!("max-snapshots = 3\n{extra_conf}").as_bytes(),
    );
    root
}

fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

#[test]
fn snapshot_on_btrfs_is_filtered_read_only_consistent_and_pruned() {
    let Some(img) = btrfs_image() else { return };
    let mnt = img.path().to_path_buf();
    run_ok(
        Command::new("btrfs")
            .args(["subvolume", "create"])
            .arg(mnt.join("home")),
    );
    let home = mnt.join("home");
    let outside = tempfile::tempdir().unwrap();
    write_file(&outside.path().join("precious"), b"must survive");
    write_file(&outside.path().join("x/deep"), b"must survive");

    write_file(&home.join("ann/projects/a.txt"), b"version 1");
    write_file(&home.join("ann/projects/db/x.tmp"), b"t");
    write_file(&home.join("ann/projects/db/sub/y.tmp"), b"t");
    write_file(&home.join("ann/projects/db/keep.dat"), b"k");
    write_file(&home.join("ann/.cache/big/blob"), b"c");
    write_file(&home.join("ann/.cache/small"), b"c");
    write_file(&home.join("ann/projects/.a.txt.swp"), b"s");
    write_file(&home.join(".root.swp"), b"s");
    // Symlinks that would lead a careless deleter out of the snapshot.
    std::os::unix::fs::symlink(outside.path(), home.join("ann/esc")).unwrap();
    std::fs::create_dir_all(home.join("ann/esc2")).unwrap();
    std::os::unix::fs::symlink(outside.path(), home.join("ann/esc2/x")).unwrap();
    write_file(&mnt.join("other/x"), b"not in the subvolume");

    let root = policy_root(&mnt, outside.path(), "");
    let policy = Policy::load(&Roots::new(root.path()));
    assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);
    let opts = policy.snapshot_options();

    let source = home.join("ann/projects");
    let snap = snapshot::create(&source, &opts).unwrap();
    assert_eq!(snap.subvolume, home);
    assert!(
        snap.path.starts_with(home.join(".reel-snapshots")),
        "{}",
        snap.path.display()
    );
    assert!(snap.problems.is_empty(), "{:?}", snap.problems);
    assert!(snapshot::is_read_only(&snap.path).unwrap());
    assert_eq!(snap.source_in_snapshot(), snap.path.join("ann/projects"));
    assert_eq!(
        snap.to_live(&snap.path.join("ann/x")),
        Some(home.join("ann/x"))
    );

    // What files-not-to-snapshot matched is gone from the snapshot, and only there.
    let mut removed: Vec<PathBuf> = snap.removed.iter().map(|r| r.path.clone()).collect();
    removed.sort();
    let mut expect = vec![
        home.join("ann/projects/db/x.tmp"),
        home.join("ann/projects/db/sub/y.tmp"),
        home.join("ann/.cache"),
        home.join("ann/projects/.a.txt.swp"),
        home.join(".root.swp"),
    ];
    expect.sort();
    assert_eq!(removed, expect);
    for live in &expect {
        assert!(exists(live), "live {} was touched", live.display());
        assert!(
            !exists(&snap.to_snapshot(live).unwrap()),
            "{} still in the snapshot",
            live.display()
        );
    }
    let s = |rel: &str| snap.path.join(rel);
    assert_eq!(std::fs::read(s("ann/projects/db/keep.dat")).unwrap(), b"k");
    assert!(
        exists(&s("ann/projects/db/sub")),
        "the directory of a removed file stays"
    );
    // The symlinks are in the snapshot, untouched, and nothing outside was deleted.
    assert!(
        std::fs::symlink_metadata(s("ann/esc"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read(outside.path().join("precious")).unwrap(),
        b"must survive"
    );
    assert_eq!(
        std::fs::read(outside.path().join("x/deep")).unwrap(),
        b"must survive"
    );
    assert!(exists(&mnt.join("other/x")));

    // Read-only, and consistent: later changes to the live tree do not reach it.
    let err = std::fs::write(s("ann/projects/new"), b"x").unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error()),
        "{err}"
    );
    std::fs::write(home.join("ann/projects/a.txt"), b"version 2").unwrap();
    assert_eq!(
        std::fs::read(s("ann/projects/a.txt")).unwrap(),
        b"version 1"
    );

    // Backing up from the snapshot: patterns are matched on live paths; the snapshot store
    // (in later snapshots) is a tagged cache directory.
    let filter = BackupFilter::new(&policy);
    let in_snap = s("ann/projects/a.txt");
    assert_eq!(
        filter.check_at(&snap.to_live(&in_snap).unwrap(), &in_snap, EntryKind::File),
        Verdict::Include
    );

    // Never more than max-snapshots (3): the oldest go first.
    let mut made = vec![snap.path.clone()];
    for _ in 0..4 {
        let next = snapshot::create(&source, &opts).unwrap();
        made.push(next.path.clone());
        let now = snapshot::list(&home).unwrap();
        assert!(now.len() <= 3, "{now:?}");
        assert_eq!(now.last(), Some(&next.path));
    }
    assert_eq!(
        snapshot::list(&home).unwrap(),
        made[made.len() - 3..].to_vec()
    );
    let latest = made.last().unwrap();
    let store = latest.join(".reel-snapshots");
    assert_eq!(
        filter.check_at(&home.join(".reel-snapshots"), &store, EntryKind::Dir),
        Verdict::ExcludeContents {
            reason: Reason::CacheDirTag,
            keep: "CACHEDIR.TAG"
        }
    );

    // Pruning to zero destroys them all (read-only ones included).
    let gone = snapshot::prune(&home, 0).unwrap();
    assert_eq!(gone.len(), 3);
    assert!(snapshot::list(&home).unwrap().is_empty());
    let out = run_ok(
        Command::new("btrfs")
            .args(["subvolume", "list", "-o"])
            .arg(&home),
    );
    assert!(!out.contains("reel-"), "{out}");
}

#[test]
fn min_snapshot_space_is_honoured() {
    let Some(img) = btrfs_image() else { return };
    let outside = tempfile::tempdir().unwrap();
    write_file(&img.path().join("data/f"), b"x");
    let root = policy_root(img.path(), outside.path(), "min-snapshot-space = \"1T\"\n");
    let policy = Policy::load(&Roots::new(root.path()));
    let err = snapshot::create(&img.path().join("data"), &policy.snapshot_options()).unwrap_err();
    assert!(
        matches!(err, SnapshotError::NotEnoughSpace { needed, .. } if needed == 1 << 40),
        "{err}"
    );
    assert!(err.to_string().contains("min-snapshot-space"), "{err}");
    assert!(snapshot::list(img.path()).unwrap().is_empty());
}

#[test]
fn other_filesystems_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let fs = snapshot::filesystem_type(dir.path()).unwrap();
    if fs.is_btrfs() {
        reel_testkit::missing("the temp directory is on btrfs; no non-btrfs filesystem to test");
        return;
    }
    let policy = Policy::load(&Roots::new(dir.path()));
    let err = snapshot::create(dir.path(), &policy.snapshot_options()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, SnapshotError::Unsupported { .. }), "{msg}");
    assert!(
        msg.contains(&fs.name()) && msg.contains("only on btrfs"),
        "{msg}"
    );
    assert!(!dir.path().join(".reel-snapshots").exists());
}
