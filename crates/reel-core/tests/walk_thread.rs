//! The backup's walk runs on a thread of its own, ahead of the writing. A job that fails
//! while the walk is far from done (the only tape fills) stops the walk too and returns its
//! error, instead of waiting for a walk that waits for it.

use std::time::Duration;

use reel_core::{BackupOptions, NoProgress, Tapes};
use reel_tape::vtape::VirtualDrive;

/// `files` files of 4 KiB, 100 to a directory.
fn many_files(dir: &std::path::Path, files: usize) {
    for i in 0..files {
        let sub = dir.join(format!("d{:03}", i / 100));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            sub.join(format!("f{i:05}")),
            reel_testkit::pseudo_random(i as u64, 4096),
        )
        .unwrap();
    }
}

#[test]
fn a_job_that_fails_midway_stops_the_walk_and_returns_its_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cart = reel_testkit::new_cartridge(tmp.path(), "c", 4 << 20);
    let src = tmp.path().join("src");
    many_files(&src, 3000);
    // A 4 MiB tape for a 12 MiB set, with no other tape to go on to. On a thread, so that
    // a walk left waiting for the failed job fails the test instead of hanging it.
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = reel_core::backup(
            &mut Tapes::single(Box::new(VirtualDrive::open(&cart).unwrap())),
            None,
            &BackupOptions::new(vec![src]),
            &NoProgress,
        );
        let _ = done.send(r.map(|_| ()).map_err(|e| e.to_string()));
    });
    let Ok(Err(err)) = result.recv_timeout(Duration::from_secs(60)) else {
        panic!("the backup did not fail within a minute (a 12 MiB set on a 4 MiB tape)");
    };
    assert!(
        err.contains("c is full") && err.contains("no other"),
        "{err}"
    );
}
