//! Restoring one file seeks straight to it: the drive reads a handful of records, however
//! large the set. Reads are counted through the `TapeDrive` trait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use reel_core::{BackupOptions, NoProgress, RestoreOptions, Tapes};
use reel_tape::conformance::TestDrive;
use reel_tape::vtape::VirtualDrive;

#[test]
fn one_small_file_is_restored_with_a_few_record_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    // ~96 MiB of big files around one small one: 384 records of 256 KiB.
    for i in 0..48 {
        std::fs::write(
            src.join(format!("big{i:02}")),
            reel_testkit::pseudo_random(i, 2 << 20),
        )
        .unwrap();
    }
    std::fs::write(src.join("big24-needle"), b"the needle, a small file").unwrap();
    let cart = reel_testkit::new_cartridge(tmp.path(), "c", 1 << 30);
    let reads = Arc::new(AtomicU64::new(0));
    let catalog_path = tmp.path().join("catalog.sqlite");
    {
        let drive =
            TestDrive::new(VirtualDrive::open(&cart).unwrap()).counting_reads(reads.clone());
        let mut tapes = Tapes::single(Box::new(drive));
        let mut catalog = reel_catalog::Catalog::open(&catalog_path).unwrap();
        reel_core::backup(
            &mut tapes,
            Some(&mut catalog),
            &BackupOptions::new(vec![src.clone()]),
            &NoProgress,
        )
        .unwrap();
    }
    let needle = format!("{}/big24-needle", src.strip_prefix("/").unwrap().display());
    for with_catalog in [true, false] {
        let drive =
            TestDrive::new(VirtualDrive::open(&cart).unwrap()).counting_reads(reads.clone());
        let mut tapes = Tapes::single(Box::new(drive));
        let catalog = with_catalog.then(|| reel_catalog::Catalog::open(&catalog_path).unwrap());
        let out = tmp.path().join(format!("out-{with_catalog}"));
        let opts = RestoreOptions {
            patterns: vec![needle.clone()],
            ..RestoreOptions::new(out.clone())
        };
        reads.store(0, Ordering::Relaxed);
        let report = reel_core::restore(&mut tapes, catalog.as_ref(), &opts, &NoProgress).unwrap();
        let n = reads.load(Ordering::Relaxed);
        assert_eq!(report.files, 1);
        assert_eq!(
            std::fs::read(out.join(&needle)).unwrap(),
            b"the needle, a small file"
        );
        // Label, index header, (index), then the member's record: a handful, not 384.
        assert!(
            n <= 8,
            "restoring one file read {n} records (catalog: {with_catalog})"
        );
    }
}
