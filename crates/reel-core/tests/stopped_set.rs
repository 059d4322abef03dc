//! A set that cannot continue after filling a volume (here: the next cartridge cannot be
//! loaded) is recorded in the catalog as stopped, and the next backup on the full volume
//! starts where it started.

use std::path::Path;

use reel_catalog::Catalog;
use reel_core::{BackupOptions, CoreError, ErrorClass, NoProgress, Tapes, VolumeChanger};
use reel_tape::TapeDrive;
use reel_tape::vtape::VirtualDrive;

/// A changer whose blank cartridge is gone by the time it is loaded.
struct LostBlank;

impl VolumeChanger for LostBlank {
    fn next_blank(&mut self, _current: &str) -> reel_core::Result<String> {
        Ok("lost-0001".into())
    }

    fn load_blank(
        &mut self,
        _drive: &mut Box<dyn TapeDrive>,
        barcode: &str,
    ) -> reel_core::Result<()> {
        Err(CoreError::Io {
            context: format!("opening cartridge {barcode}"),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
    }

    fn load_volume(
        &mut self,
        _drive: &mut Box<dyn TapeDrive>,
        barcode: &str,
        _volume_id: uuid::Uuid,
    ) -> reel_core::Result<()> {
        panic!("no volume should be needed, asked for {barcode}")
    }

    fn describe(&self) -> String {
        "a changer that lost its blank cartridge".into()
    }
}

fn tapes(cart: &Path) -> Tapes {
    Tapes::new(
        Box::new(VirtualDrive::open(cart).unwrap()),
        Box::new(LostBlank),
    )
}

/// Six 2 MiB files: more than a 12 MiB cartridge takes before early warning.
fn big_tree(dir: &Path) -> std::path::PathBuf {
    let big = dir.join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..6 {
        std::fs::write(
            big.join(format!("f{i}")),
            reel_testkit::pseudo_random(i, 2 << 20),
        )
        .unwrap();
    }
    big
}

#[test]
fn a_set_that_cannot_continue_is_recorded_and_its_space_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let big = big_tree(tmp.path());
    let small = tmp.path().join("small");
    reel_testkit::make_tree(&small, 30, 5);
    std::fs::write(small.join("note"), b"kept").unwrap();
    // 12 MiB: early warning after 8 MiB, well before the 12 MiB of `big`.
    let cart = reel_testkit::new_cartridge(tmp.path(), "c", 12 << 20);
    let mut catalog = Catalog::open(&tmp.path().join("catalog.sqlite")).unwrap();

    // A first set that stays, then the one that fills the volume.
    let mut first = BackupOptions::new(vec![small.clone()]);
    first.name = Some("first".into());
    let report =
        reel_core::backup(&mut tapes(&cart), Some(&mut catalog), &first, &NoProgress).unwrap();
    assert_eq!(report.set.data_file, 1);
    let mut opts = BackupOptions::new(vec![big.clone()]);
    opts.name = Some("big".into());
    let err = reel_core::backup(&mut tapes(&cart), Some(&mut catalog), &opts, &NoProgress)
        .expect_err("the set cannot continue");
    assert!(matches!(err, CoreError::SetUnfinished { .. }), "{err:?}");
    assert_eq!(err.class(), ErrorClass::Media);
    let msg = err.to_string();
    assert!(
        msg.contains("opening cartridge lost-0001")
            && msg.contains("Set big was not finished: nothing of it can be restored")
            && msg.contains("Its part on c (from tape file 3) is recorded in the catalog")
            && msg.contains("the next backup on c starts there"),
        "{msg}"
    );
    let stopped = catalog.stopped_parts().unwrap();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(
        (
            stopped[0].set_name.as_str(),
            stopped[0].data_file,
            stopped[0].next_barcode.as_str()
        ),
        ("big", 3, "lost-0001")
    );
    assert!(stopped[0].why.contains("opening cartridge lost-0001"));

    // Listed as a leftover with the catalog, as a continued part without it.
    let mut drive = VirtualDrive::open(&cart).unwrap();
    let listing = reel_core::list_sets(&mut drive, Some(&catalog)).unwrap();
    assert_eq!(listing.sets.len(), 1);
    assert!(
        listing
            .leftover
            .as_deref()
            .is_some_and(|l| l.starts_with("set 2 is unfinished") && l.contains("lost-0001")),
        "{listing:?}"
    );
    let alone = reel_core::list_sets(&mut drive, None).unwrap();
    assert_eq!(alone.sets.len(), 2);
    assert!(
        alone.sets[1].state.contains("continued on lost-0001"),
        "{alone:?}"
    );
    drop(drive);

    // The next backup goes where `big` began (tape file 3), over its part.
    let mut again = BackupOptions::new(vec![small.clone()]);
    again.name = Some("again".into());
    let report =
        reel_core::backup(&mut tapes(&cart), Some(&mut catalog), &again, &NoProgress).unwrap();
    assert_eq!(report.set.data_file, 3);
    assert_eq!(report.set.data_first_block, stopped[0].first_block);
    assert!(report.replaced_leftover.is_some());
    assert!(catalog.stopped_parts().unwrap().is_empty());
    let mut drive = VirtualDrive::open(&cart).unwrap();
    let listing = reel_core::list_sets(&mut drive, Some(&catalog)).unwrap();
    let names: Vec<&str> = listing
        .sets
        .iter()
        .map(|s| s.info.as_ref().map_or("?", |i| i.name.as_str()))
        .collect();
    assert_eq!(names, ["first", "again"]);
    assert!(listing.sets.iter().all(|s| s.state == "complete"));
    assert_eq!(listing.leftover, None);
}

#[test]
fn without_a_catalog_the_stop_is_said_not_to_be_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let big = big_tree(tmp.path());
    let cart = reel_testkit::new_cartridge(tmp.path(), "c", 12 << 20);
    let mut opts = BackupOptions::new(vec![big]);
    opts.name = Some("big".into());
    let err = reel_core::backup(&mut tapes(&cart), None, &opts, &NoProgress)
        .expect_err("the set cannot continue");
    let msg = err.to_string();
    assert!(
        msg.contains("nothing of it can be restored")
            && msg.contains(
                "could not be recorded in the catalog as unfinished (no catalog is open)"
            )
            && msg.contains("reel will take c for full until it is erased"),
        "{msg}"
    );
    // And so it does: the volume ends with a part continued elsewhere, so the next set goes
    // to a blank cartridge (here one that cannot be loaded) and nothing is written on c.
    let image = std::fs::read(cart.join("p1.tap")).unwrap();
    let mut again = BackupOptions::new(vec![tmp.path().join("big")]);
    again.name = Some("again".into());
    let err =
        reel_core::backup(&mut tapes(&cart), None, &again, &NoProgress).expect_err("a full volume");
    assert!(
        err.to_string().contains("opening cartridge lost-0001"),
        "{err}"
    );
    assert!(
        std::fs::read(cart.join("p1.tap")).unwrap() == image,
        "c changed"
    );
}
