//! A drive that reports no capacity (Linux st, GNU rmt: capacity and remaining both 0)
//! takes a whole set, index included, on the tape in it: unknown is not full.

use reel_core::{BackupOptions, NoProgress, RestoreOptions, Tapes};
use reel_tape::conformance::TestDrive;
use reel_tape::vtape::VirtualDrive;

#[test]
fn a_drive_without_capacity_keeps_the_set_and_its_index_on_one_tape() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    reel_testkit::make_tree(&src, 200, 7);
    let cart = reel_testkit::new_cartridge(tmp.path(), "c", 256 << 20);
    let open = || {
        let drive = TestDrive::new(VirtualDrive::open(&cart).unwrap()).capacity_unknown();
        // No changer: asking for a second tape would fail the backup.
        Tapes::single(Box::new(drive))
    };
    for _ in 0..2 {
        let report = reel_core::backup(
            &mut open(),
            None,
            &BackupOptions::new(vec![src.clone()]),
            &NoProgress,
        )
        .unwrap();
        assert_eq!(report.volumes, vec!["c".to_string()]);
        assert_eq!(report.set.parts.len(), 1, "{:?}", report.set.parts);
    }
    let out = tmp.path().join("out");
    let opts = RestoreOptions::new(out.clone());
    let report = reel_core::restore(&mut open(), None, &opts, &NoProgress).unwrap();
    assert!(
        report.files > 100 && report.problems.is_empty(),
        "{report:?}"
    );
    reel_testkit::assert_same_tree(&src, &out.join(src.strip_prefix("/").unwrap()));
}
