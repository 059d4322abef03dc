//! Acceptance tests on real btrfs and XFS (reflink=1) images on loop devices, as root.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{LoopFs, content, first_physical, make_tree, snapshot};
use reel_sis::{
    CommonStore, ContentHash, LinkState, MapCache, MergeOptions, SisError, Volume, WatchEvent,
    Watcher,
};

fn state(store: &CommonStore, p: &Path) -> LinkState {
    store.link_state(p, &mut MapCache::default()).unwrap().state
}

fn open_store(fs: &LoopFs) -> CommonStore {
    CommonStore::open_or_create(Volume::containing(&fs.mnt).unwrap()).unwrap()
}

fn nothing(_: u64) {}

/// 1,000 files with 100 distinct contents: merge frees >= 85% of the duplicate bytes as the
/// filesystem measures them, changes no content or metadata, and a write to one link
/// changes only that file.
fn merge_thousand_files(kind: &str) {
    let Some(fs) = LoopFs::new(kind, 600) else {
        return;
    };
    let files = make_tree(&fs.mnt, 1000, 100);
    let before: HashMap<PathBuf, common::Snapshot> = files
        .iter()
        .map(|(p, _)| (p.clone(), snapshot(p)))
        .collect();
    let distinct_bytes: u64 = (0..100).map(|k| common::content_size(k) as u64).sum();
    let duplicate_bytes = distinct_bytes * 9;
    let used_before = fs.used_bytes();

    let store = open_store(&fs);
    let report =
        reel_sis::merge(&store, &fs.path("tree"), &MergeOptions::default(), &nothing).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.changed.is_empty(), "{:?}", report.changed);
    assert_eq!(report.groups, 100);
    assert_eq!(report.files_linked, 1000);
    assert_eq!(report.common_store_files_created, 100);
    assert_eq!(report.reclaimable_bytes, duplicate_bytes);

    let used_after = fs.used_bytes();
    let freed = used_before.saturating_sub(used_after);
    eprintln!(
        "{kind}: duplicate bytes {duplicate_bytes}, freed {freed} ({:.1}%), reported {}",
        freed as f64 * 100.0 / duplicate_bytes as f64,
        report.bytes_reclaimed
    );
    assert!(
        freed as f64 >= 0.85 * duplicate_bytes as f64,
        "{kind}: freed {freed} of {duplicate_bytes} duplicate bytes"
    );
    assert!(report.bytes_reclaimed as f64 >= 0.85 * duplicate_bytes as f64);

    // Content and metadata unchanged; every file is a link sharing its store file's blocks.
    for (p, k) in &files {
        assert_eq!(snapshot(p), before[p], "{} changed", p.display());
        let hash = ContentHash::of(&content(*k));
        assert_eq!(
            state(&store, p),
            LinkState::Link(reel_sis::ReparseData {
                hash,
                size: content(*k).len() as u64
            })
        );
        assert_eq!(first_physical(p), first_physical(&store.file_path(&hash)));
    }
    let status = reel_sis::status(&store).unwrap();
    assert_eq!(status.common_store_files, 100);
    assert_eq!(status.links_present, 1000);
    assert_eq!(status.bytes_saved as u64, duplicate_bytes);

    // Write to one link: only that file changes.
    let (a, k) = &files[5];
    let (b, kb) = &files[105];
    assert_eq!(k, kb);
    let store_file = store.file_path(&ContentHash::of(&content(*k)));
    std::fs::OpenOptions::new()
        .write(true)
        .open(a)
        .unwrap()
        .write_all_at(b"CHANGED", 100)
        .unwrap();
    let mut expect = content(*k);
    expect[100..107].copy_from_slice(b"CHANGED");
    assert_eq!(std::fs::read(a).unwrap(), expect);
    assert_eq!(std::fs::read(b).unwrap(), content(*k));
    assert_eq!(std::fs::read(&store_file).unwrap(), content(*k));
    assert!(
        matches!(state(&store, a), LinkState::Former { .. }),
        "{:?}",
        state(&store, a)
    );
    assert!(matches!(state(&store, b), LinkState::Link(_)));

    let v = reel_sis::verify(&store, &fs.mnt, &nothing).unwrap();
    assert!(v.intact());
    assert_eq!(v.links_ok, 999);
    assert_eq!(v.ordinary_now.len(), 1);
    assert_eq!(v.ordinary_now[0].path, *a);
    assert_eq!(v.common_store_files_checked, 100);

    // A second merge finds the links (without reading them) and nothing new to share.
    let again =
        reel_sis::merge(&store, &fs.path("tree"), &MergeOptions::default(), &nothing).unwrap();
    assert_eq!(again.already_linked, 999);
    assert_eq!(again.files_linked, 0);
    assert_eq!(again.common_store_files_created, 0);
}

#[test]
fn merge_thousand_files_btrfs() {
    merge_thousand_files("btrfs");
}

#[test]
fn merge_thousand_files_xfs() {
    merge_thousand_files("xfs");
}

/// A file changed between the scan and the link is not linked and keeps its new content.
fn changed_between_scan_and_link(kind: &str) {
    let Some(fs) = LoopFs::new(kind, 400) else {
        return;
    };
    let files = make_tree(&fs.mnt, 30, 3);
    let store = open_store(&fs);
    let plan = reel_sis::scan(
        store.volume(),
        Some(&store),
        &fs.path("tree"),
        &MergeOptions::default(),
        &nothing,
    )
    .unwrap();
    assert_eq!(plan.groups.len(), 3);
    // Same size, different bytes, after the scan hashed it.
    let (victim, k) = &files[4];
    let mut changed = content(*k);
    changed[5000] ^= 0xff;
    std::fs::OpenOptions::new()
        .write(true)
        .open(victim)
        .unwrap()
        .write_all_at(&changed[5000..5001], 5000)
        .unwrap();
    let report = plan.link(&store).unwrap();
    assert_eq!(report.changed, vec![victim.clone()]);
    assert_eq!(report.files_linked, 29);
    assert_eq!(std::fs::read(victim).unwrap(), changed);
    assert_eq!(state(&store, victim), LinkState::Ordinary);
    for (p, k) in &files {
        if p != victim {
            assert_eq!(std::fs::read(p).unwrap(), content(*k));
            assert!(matches!(state(&store, p), LinkState::Link(_)));
        }
    }
}

#[test]
fn changed_between_scan_and_link_btrfs() {
    changed_between_scan_and_link("btrfs");
}

#[test]
fn changed_between_scan_and_link_xfs() {
    changed_between_scan_and_link("xfs");
}

/// A writer thread keeps flipping bytes of one large duplicate while merge runs: whatever
/// the interleaving, the file ends with exactly the writer's content, is not a link, and the
/// common-store file still holds the content its name says.
fn concurrent_writer(kind: &str) {
    let Some(fs) = LoopFs::new(kind, 500) else {
        return;
    };
    let big = reel_testkit::pseudo_random(77, 24 << 20);
    let tree = fs.path("tree");
    for i in 0..4 {
        reel_testkit::write_file(&tree.join(format!("copy{i}.bin")), &big);
    }
    let target = tree.join("copy0.bin");
    let stop = Arc::new(AtomicBool::new(false));
    let merged = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, merged, target) = (stop.clone(), merged.clone(), target.clone());
        let big = big.clone();
        let mut model = big.clone();
        std::thread::spawn(move || {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(&target)
                .unwrap();
            let mut x = 12345u64;
            let mut writes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let off = (x % model.len() as u64) as usize;
                // Change one byte, then put it back: the file is identical to its duplicates
                // most of the time, so merge really races with the writer (hash, clone, dedupe).
                model[off] = big[off] ^ 0x5a;
                f.write_all_at(&model[off..off + 1], off as u64).unwrap();
                std::thread::sleep(Duration::from_micros(100));
                model[off] = big[off];
                f.write_all_at(&model[off..off + 1], off as u64).unwrap();
                writes += 2;
                if merged.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(Duration::from_micros(300 + x % 700));
            }
            // One last write after merge finished: the file must differ from its duplicates.
            let off = 4096usize;
            model[off] = big[off] ^ 0xa5;
            f.write_all_at(&model[off..off + 1], off as u64).unwrap();
            (model, writes)
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let store = open_store(&fs);
    let report = reel_sis::merge(&store, &tree, &MergeOptions::default(), &nothing).unwrap();
    merged.store(true, Ordering::Relaxed);
    let (model, writes) = writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    eprintln!(
        "{kind}: {writes} concurrent writes; merge linked {} changed {:?}",
        report.files_linked, report.changed
    );
    assert!(writes > 10);
    assert_eq!(
        std::fs::read(&target).unwrap(),
        model,
        "the written file was damaged"
    );
    assert!(!matches!(state(&store, &target), LinkState::Link(_)));
    for i in 1..4 {
        let p = tree.join(format!("copy{i}.bin"));
        assert_eq!(std::fs::read(&p).unwrap(), big);
        assert!(
            matches!(state(&store, &p), LinkState::Link(_)),
            "{}",
            p.display()
        );
    }
    let v = reel_sis::verify(&store, &fs.mnt, &nothing).unwrap();
    assert!(v.intact(), "{:?}", v.damaged);
    assert_eq!(
        std::fs::read(store.file_path(&ContentHash::of(&big))).unwrap(),
        big
    );
}

#[test]
fn concurrent_writer_btrfs() {
    concurrent_writer("btrfs");
}

#[test]
fn concurrent_writer_xfs() {
    concurrent_writer("xfs");
}

/// Deleting every link of a common-store file and running gc removes it; others stay.
fn gc_after_deleting_links(kind: &str) {
    let Some(fs) = LoopFs::new(kind, 400) else {
        return;
    };
    let files = make_tree(&fs.mnt, 40, 4);
    let store = open_store(&fs);
    reel_sis::merge(&store, &fs.path("tree"), &MergeOptions::default(), &nothing).unwrap();
    let h0 = ContentHash::of(&content(0));
    let h1 = ContentHash::of(&content(1));
    for (p, k) in &files {
        if *k == 0 {
            std::fs::remove_file(p).unwrap();
        }
    }
    // One link of content 1 goes, one is written to: the rest still hold the file.
    let ones: Vec<&PathBuf> = files
        .iter()
        .filter(|(_, k)| *k == 1)
        .map(|(p, _)| p)
        .collect();
    std::fs::remove_file(ones[0]).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(ones[1])
        .unwrap()
        .write_all_at(b"x", 0)
        .unwrap();
    assert!(store.file_path(&h0).exists());
    let report = reel_sis::gc(&store).unwrap();
    assert!(!store.file_path(&h0).exists(), "gc kept {}", h0.file_name());
    assert!(store.file_path(&h1).exists());
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].name, h0.file_name());
    assert_eq!(report.links_dropped.len(), 12);
    // The written file lost its stale reparse data.
    assert_eq!(state(&store, ones[1]), LinkState::Ordinary);
    let status = reel_sis::status(&store).unwrap();
    assert_eq!(status.common_store_files, 3);
    assert_eq!(status.links, 28);
    assert_eq!(status.unreferenced_common_store_files, 0);
    // gc again: nothing to do.
    let again = reel_sis::gc(&store).unwrap();
    assert!(again.removed.is_empty() && again.links_dropped.is_empty());
}

#[test]
fn gc_after_deleting_links_btrfs() {
    gc_after_deleting_links("btrfs");
}

#[test]
fn gc_after_deleting_links_xfs() {
    gc_after_deleting_links("xfs");
}

/// With the watcher running, deleting the last link removes the common-store file without gc;
/// a renamed link keeps its common-store file.
fn watch_removes_without_gc(kind: &str) {
    let Some(fs) = LoopFs::new(kind, 400) else {
        return;
    };
    let files = make_tree(&fs.mnt, 30, 3);
    let store = open_store(&fs);
    reel_sis::merge(&store, &fs.path("tree"), &MergeOptions::default(), &nothing).unwrap();
    let mut watcher = Watcher::new(store.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let events = Arc::new(std::sync::Mutex::new(Vec::<WatchEvent>::new()));
    let handle = {
        let (stop, events) = (stop.clone(), events.clone());
        std::thread::spawn(move || {
            watcher
                .run(&stop, &mut |e| events.lock().unwrap().push(e.clone()))
                .unwrap();
        })
    };
    let h0 = ContentHash::of(&content(0));
    let h1 = ContentHash::of(&content(1));
    let h2 = ContentHash::of(&content(2));
    // Content 0: delete every link one by one.
    for (p, k) in &files {
        if *k == 0 {
            std::fs::remove_file(p).unwrap();
        }
    }
    // Content 1: rename every link to a new directory, then delete nothing.
    std::fs::create_dir_all(fs.path("moved")).unwrap();
    for (p, k) in &files {
        if *k == 1 {
            std::fs::rename(p, fs.path("moved").join(p.file_name().unwrap())).unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.file_path(&h0).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !store.file_path(&h0).exists(),
        "watch kept {} after its last link went",
        h0.file_name()
    );
    // Content 2: delete the whole directories holding them (handles of deleted dirs).
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        store.file_path(&h1).exists(),
        "a renamed link's common-store file was removed"
    );
    std::fs::remove_dir_all(fs.path("tree")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.file_path(&h2).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    handle.join().unwrap();
    assert!(
        !store.file_path(&h2).exists(),
        "watch kept {} after rm -r",
        h2.file_name()
    );
    assert!(
        store.file_path(&h1).exists(),
        "a renamed link's common-store file was removed"
    );
    let index = store.read_index().unwrap();
    let links1 = &index.get(&h1).unwrap().links;
    assert_eq!(links1.len(), 10);
    assert!(
        links1.iter().all(|l| l.path.starts_with("moved")),
        "{links1:?}"
    );
    let ev = events.lock().unwrap();
    assert!(
        ev.iter()
            .any(|e| matches!(e, WatchEvent::Removed { name, .. } if *name == h0.file_name()))
    );
}

#[test]
fn watch_removes_without_gc_btrfs() {
    watch_removes_without_gc("btrfs");
}

#[test]
fn watch_removes_without_gc_xfs() {
    watch_removes_without_gc("xfs");
}

/// ext4, tmpfs and XFS without reflink are refused, naming the filesystem type.
#[test]
fn refuses_filesystems_without_reflink() {
    for (kind, name) in [
        ("ext4", "ext4"),
        ("tmpfs", "tmpfs"),
        ("xfs-noreflink", "xfs"),
    ] {
        let Some(fs) = LoopFs::new(kind, 400) else {
            return;
        };
        reel_testkit::write_file(&fs.path("a"), b"x");
        let vol = Volume::containing(&fs.mnt).unwrap();
        assert_eq!(vol.fs_type(), name);
        let err = CommonStore::open_or_create(vol.clone()).unwrap_err();
        assert!(matches!(err, SisError::NoReflink { .. }), "{kind}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("its filesystem ({name}) cannot share extents")),
            "{msg}"
        );
        assert!(msg.contains("reflink"), "{msg}");
        let err = CommonStore::open(vol).unwrap_err();
        assert!(matches!(err, SisError::NoReflink { .. }), "{kind}: {err}");
        assert!(!fs.path(reel_sis::STORE_DIR).exists());
    }
}
