//! A set never starts on a tape already in its early-warning zone: it would put a record
//! there and go on on the next tape at once, and a restore of it would need both. It starts
//! on a blank cartridge, and the full one is left as it was.

use reel_core::{BackupOptions, LibraryChanger, NoProgress, RestoreOptions, Tapes};
use reel_tape::conformance::TestDrive;
use reel_tape::vtape::VirtualDrive;
use reel_tape::{Library, TapeDrive};

#[test]
fn a_backup_onto_a_tape_past_early_warning_starts_on_the_next_cartridge() {
    let tmp = tempfile::tempdir().unwrap();
    let lib_dir = tmp.path().join("lib");
    Library::open_or_create(&lib_dir)
        .unwrap()
        .create_cartridge("c1", 64 << 20, false)
        .unwrap();
    let open = |name: &str| {
        let library = Library::open_or_create(&lib_dir).unwrap();
        let drive = VirtualDrive::open(&library.cartridge_dir(name)).unwrap();
        Tapes::new(Box::new(drive), Box::new(LibraryChanger::new(library)))
    };
    let first = tmp.path().join("first");
    reel_testkit::make_tree(&first, 40, 3);
    let report = reel_core::backup(
        &mut open("c1"),
        None,
        &BackupOptions::new(vec![first.clone()]),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.volumes, ["c1"]);

    // A drive whose early warning comes just short of what c1 holds now: c1 is full.
    let c1_tape = Library::open_or_create(&lib_dir)
        .unwrap()
        .cartridge_dir("c1")
        .join("p1.tap");
    let full_c1 = || {
        let library = Library::open_or_create(&lib_dir).unwrap();
        let mut drive = VirtualDrive::open(&library.cartridge_dir("c1")).unwrap();
        let remaining = drive.media_parameters().unwrap().remaining;
        let drive =
            TestDrive::new(drive).early_warning_zone(u32::try_from(remaining - 4096).unwrap());
        Tapes::new(Box::new(drive), Box::new(LibraryChanger::new(library)))
    };
    let c1_before = std::fs::read(&c1_tape).unwrap();

    let second = tmp.path().join("second");
    reel_testkit::make_tree(&second, 40, 4);
    let report = reel_core::backup(
        &mut full_c1(),
        None,
        &BackupOptions::new(vec![second.clone()]),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.volumes.len(), 1, "{:?}", report.volumes);
    let next = report.volumes[0].clone();
    assert_ne!(next, "c1");
    assert_eq!(report.set.parts.len(), 1, "{:?}", report.set.parts);
    assert_eq!(report.set.parts[0].barcode, next);
    assert_eq!(report.set.number, 1, "the first set of a new volume");
    assert!(report.labelled);
    // Nothing was written on the full cartridge.
    assert_eq!(std::fs::read(&c1_tape).unwrap(), c1_before);

    // The set restores from the new cartridge alone.
    let out = tmp.path().join("out");
    let opts = RestoreOptions::new(out.clone());
    let restored = reel_core::restore(&mut open(&next), None, &opts, &NoProgress).unwrap();
    assert!(restored.problems.is_empty(), "{restored:?}");
    reel_testkit::assert_same_tree(&second, &out.join(second.strip_prefix("/").unwrap()));
}

#[test]
fn without_another_cartridge_a_full_tape_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let cart = reel_testkit::new_cartridge(tmp.path(), "c", 64 << 20);
    let src = tmp.path().join("src");
    reel_testkit::make_tree(&src, 10, 5);
    let Err(err) = reel_core::backup(
        &mut Tapes::single(Box::new(
            TestDrive::new(VirtualDrive::open(&cart).unwrap())
                .early_warning_zone((64 << 20) - 4096),
        )),
        None,
        &BackupOptions::new(vec![src]),
        &NoProgress,
    ) else {
        panic!("a backup onto a full tape with nowhere else to go");
    };
    assert!(err.to_string().contains("c is full"), "{err}");
}
