//! The SIS backup and restore structures on real filesystems (btrfs, XFS, ext4), as root.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use common::{LoopFs, content, first_physical, make_tree};
use reel_sis::{
    BackupStructure, CommonStore, ContentHash, LinkState, MapCache, MergeOptions, ReparseData,
    RestoreMode, RestoreStructure, SisError, Volume,
};

fn nothing(_: u64) {}

/// What a backup engine would have saved: each link's reparse data and each common-store
/// file once.
struct Saved {
    links: Vec<(PathBuf, ReparseData)>,
    store_files: HashMap<String, Vec<u8>>,
    internal: Vec<PathBuf>,
}

fn back_up(fs: &LoopFs) -> Saved {
    let mut bs: BackupStructure<PathBuf> = BackupStructure::open(&fs.mnt).unwrap();
    assert_eq!(bs.common_store_root(), fs.mnt.join(".sis-common-store"));
    let internal = bs.internal_files();
    assert!(
        internal.iter().any(|p| p.ends_with("links.index")),
        "{internal:?}"
    );
    let mut links = Vec::new();
    let mut store_files = HashMap::new();
    let mut first_of: HashMap<ContentHash, PathBuf> = HashMap::new();
    let mut paths: Vec<PathBuf> = walkdir(&fs.mnt.join("tree"));
    paths.sort();
    for p in paths {
        let Some(reparse) = bs.link_reparse(&p).unwrap() else {
            continue;
        };
        let answer = bs
            .files_to_back_up_for_link(&reparse, Some(p.clone()))
            .unwrap();
        match first_of.get(&reparse.hash) {
            None => {
                // The first link of a common-store file: named once, no matching context.
                assert_eq!(answer.files.len(), 1);
                assert!(answer.matching_context.is_none());
                let f = &answer.files[0];
                assert_eq!(f.name, reparse.hash.file_name());
                assert_eq!(f.relative, PathBuf::from(".sis-common-store").join(&f.name));
                assert!(
                    store_files
                        .insert(f.name.clone(), std::fs::read(&f.path).unwrap())
                        .is_none()
                );
                first_of.insert(reparse.hash, p.clone());
            }
            Some(first) => {
                assert!(answer.files.is_empty(), "common-store file returned twice");
                assert_eq!(answer.matching_context.as_ref(), Some(first));
            }
        }
        links.push((p.strip_prefix(&fs.mnt).unwrap().to_path_buf(), reparse));
    }
    Saved {
        links,
        store_files,
        internal,
    }
}

fn walkdir(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn merged_source(kind: &str) -> Option<(LoopFs, Vec<(PathBuf, u64)>)> {
    let fs = LoopFs::new(kind, 400)?;
    let files = make_tree(&fs.mnt, 60, 6);
    // One ordinary (unique) file too: it must not be treated as a link.
    reel_testkit::write_file(
        &fs.path("tree/unique.bin"),
        &reel_testkit::pseudo_random(5, 50_000),
    );
    let store = CommonStore::open_or_create(Volume::containing(&fs.mnt).unwrap()).unwrap();
    reel_sis::merge(&store, &fs.path("tree"), &MergeOptions::default(), &nothing).unwrap();
    Some((fs, files))
}

/// Backup returns each common-store file once; restore onto an empty filesystem asks for
/// each once, and finish re-creates the sharing.
fn round_trip(kind: &str) {
    let Some((src, files)) = merged_source(kind) else {
        return;
    };
    let saved = back_up(&src);
    assert_eq!(saved.links.len(), 60);
    assert_eq!(saved.store_files.len(), 6);
    assert_eq!(saved.internal.len(), 2);

    let Some(dst) = LoopFs::new(kind, 400) else {
        return;
    };
    let mut rs = RestoreStructure::open(&dst.mnt).unwrap();
    assert_eq!(rs.mode(), RestoreMode::Reflinks);
    assert_eq!(
        rs.internal_files_to_restore().len(),
        1,
        "the index is absent, so it is asked for"
    );
    let mut asked: HashSet<String> = HashSet::new();
    for (rel, reparse) in &saved.links {
        // The engine writes the link as an empty file with its metadata, as on Windows.
        let p = dst.mnt.join(rel);
        reel_testkit::write_file(&p, b"");
        set_mtime(&p, 1_500_000_000);
        let wanted = rs.restored_link(&p, reparse).unwrap();
        for f in wanted {
            assert!(asked.insert(f.name.clone()), "{} asked twice", f.name);
            assert!(rs.needs_common_store_file(&f.name).unwrap());
            let mut w = rs.write_common_store_file(&f.name).unwrap();
            w.write_all(&saved.store_files[&f.name]).unwrap();
            w.commit().unwrap();
            rs.restored_common_store_file(&f.name).unwrap();
            assert!(!rs.needs_common_store_file(&f.name).unwrap());
        }
    }
    assert_eq!(asked.len(), 6);
    assert!(rs.mode_reason().is_none());
    let report = rs.finish().unwrap();
    assert_eq!(report.links_restored, 60);
    assert!(report.unrestored.is_empty(), "{:?}", report.unrestored);

    let store = CommonStore::open(Volume::at_root(&dst.mnt).unwrap()).unwrap();
    for (p, k) in &files {
        let q = dst.mnt.join(p.strip_prefix(&src.mnt).unwrap());
        assert_eq!(std::fs::read(&q).unwrap(), content(*k));
        assert_eq!(
            std::fs::metadata(&q).unwrap().mtime(),
            1_500_000_000,
            "finish lost the mtime"
        );
        let st = store
            .link_state(&q, &mut MapCache::default())
            .unwrap()
            .state;
        assert!(matches!(st, LinkState::Link(_)), "{}: {st:?}", q.display());
        let h = ContentHash::of(&content(*k));
        assert_eq!(
            first_physical(&q),
            first_physical(&store.file_path(&h)),
            "not shared"
        );
    }
    assert_eq!(store.read_index().unwrap().link_count(), 60);
    // The sharing is real: btrfs/XFS count the shared bytes once.
    let status = reel_sis::status(&store).unwrap();
    assert_eq!(status.links_present, 60);
}

#[test]
fn backup_restore_round_trip_btrfs() {
    round_trip("btrfs");
}

#[test]
fn backup_restore_round_trip_xfs() {
    round_trip("xfs");
}

/// A restore asks only for missing common-store files, never overwrites one, checks written
/// content against the name, and reports links whose file never came.
#[test]
fn restore_asks_only_for_missing_and_never_overwrites() {
    let Some((src, _files)) = merged_source("btrfs") else {
        return;
    };
    let saved = back_up(&src);
    let Some(dst) = LoopFs::new("btrfs", 400) else {
        return;
    };

    // One common-store file is on the target already (say, from an earlier restore).
    let (present_rel, present) = saved.links[0].clone();
    let mut rs = RestoreStructure::open(&dst.mnt).unwrap();
    {
        let mut w = rs
            .write_common_store_file(&present.hash.file_name())
            .unwrap();
        w.write_all(&saved.store_files[&present.hash.file_name()])
            .unwrap();
        w.commit().unwrap();
    }
    let present_path = dst
        .mnt
        .join(".sis-common-store")
        .join(present.hash.file_name());
    let ino_before = std::fs::metadata(&present_path).unwrap().ino();
    drop(rs);

    let mut rs = RestoreStructure::open(&dst.mnt).unwrap();
    // Never overwritten, whatever the caller tries.
    let err = rs
        .write_common_store_file(&present.hash.file_name())
        .unwrap_err();
    assert!(matches!(err, SisError::AlreadyPresent { .. }), "{err}");
    let withheld = saved
        .links
        .iter()
        .map(|(_, r)| r.hash)
        .find(|h| *h != present.hash)
        .unwrap();
    let mut asked = HashSet::new();
    for (rel, reparse) in &saved.links {
        let p = dst.mnt.join(rel);
        reel_testkit::write_file(&p, b"");
        for f in rs.restored_link(&p, reparse).unwrap() {
            assert_ne!(f.hash, present.hash, "asked for a file already on disk");
            assert!(asked.insert(f.hash));
            if f.hash == withheld {
                continue; // the "tape" lacks it
            }
            // Damaged bytes are refused and leave nothing behind.
            let mut bad = rs.write_common_store_file(&f.name).unwrap();
            bad.write_all(b"not the content").unwrap();
            assert!(matches!(
                bad.commit().unwrap_err(),
                SisError::HashMismatch { .. }
            ));
            assert!(!f.path.exists());
            let mut w = rs.write_common_store_file(&f.name).unwrap();
            w.write_all(&saved.store_files[&f.name]).unwrap();
            w.commit().unwrap();
            rs.restored_common_store_file(&f.name).unwrap();
        }
    }
    assert_eq!(asked.len(), 5);
    let report = rs.finish().unwrap();
    assert_eq!(report.links_restored, 50);
    assert_eq!(report.unrestored.len(), 10);
    assert!(
        report
            .unrestored
            .iter()
            .all(|u| u.common_store_file == withheld.file_name())
    );
    assert!(report.unrestored[0].reason.contains("never restored"));
    assert_eq!(std::fs::metadata(&present_path).unwrap().ino(), ino_before);
    assert_eq!(
        std::fs::read(&present_path).unwrap(),
        saved.store_files[&present.hash.file_name()]
    );
    let q = dst.mnt.join(&present_rel);
    assert_eq!(
        std::fs::read(&q).unwrap(),
        saved.store_files[&present.hash.file_name()]
    );
}

/// On ext4 the restore gives every link a full copy and says so.
#[test]
fn restore_onto_ext4_makes_full_copies() {
    let Some((src, files)) = merged_source("btrfs") else {
        return;
    };
    let saved = back_up(&src);
    let Some(dst) = LoopFs::new("ext4", 200) else {
        return;
    };
    // Restoring into a directory of the volume (reel restore --to): staged there.
    let out = dst.path("out");
    std::fs::create_dir(&out).unwrap();
    let mut rs = RestoreStructure::open_for(&out).unwrap();
    assert_eq!(rs.mode(), RestoreMode::FullCopies);
    assert_eq!(rs.fs_type(), "ext4");
    let staging = rs.common_store_root().to_path_buf();
    assert!(
        rs.mode_reason()
            .unwrap()
            .contains("(ext4) cannot share extents")
    );
    assert!(staging.starts_with(&out), "{}", staging.display());
    for (rel, reparse) in &saved.links {
        let p = out.join(rel);
        reel_testkit::write_file(&p, b"");
        for f in rs.restored_link(&p, reparse).unwrap() {
            let mut w = rs.write_common_store_file(&f.name).unwrap();
            w.write_all(&saved.store_files[&f.name]).unwrap();
            w.commit().unwrap();
            rs.restored_common_store_file(&f.name).unwrap();
        }
    }
    let report = rs.finish().unwrap();
    assert_eq!(report.mode, RestoreMode::FullCopies);
    assert_eq!(report.links_restored, 60);
    assert!(!staging.exists(), "staging directory left behind");
    assert!(!dst.path(".sis-common-store").exists());
    for (p, k) in &files {
        let q = out.join(p.strip_prefix(&src.mnt).unwrap());
        assert_eq!(std::fs::read(&q).unwrap(), content(*k));
        // Ordinary files: no reparse data.
        let mut buf = [0u8; 64];
        assert!(rustix::fs::getxattr(&q, reel_sis::REPARSE_XATTR, &mut buf[..]).is_err());
    }
}

fn set_mtime(p: &std::path::Path, secs: i64) {
    let t = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        p,
        &rustix::fs::Timestamps {
            last_access: t,
            last_modification: t,
        },
        rustix::fs::AtFlags::empty(),
    )
    .unwrap();
}
