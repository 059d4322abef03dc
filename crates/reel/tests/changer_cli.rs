//! `reel changer` on the virtual library: its cartridges as slots, the loaded one in
//! drive 0, `mail/` as the import/export slot.

use reel_testkit::TempHome;
use reel_testkit::cli::{ok, run};

const REEL: &str = env!("CARGO_BIN_EXE_reel");

#[test]
fn the_virtual_library_is_a_changer() {
    let home = TempHome::new();
    for name in ["mon", "tue", "wed"] {
        ok(home
            .command(REEL)
            .args(["tape", "new", name, "--capacity", "8M"]));
    }
    let status = ok(home.command(REEL).args(["changer", "status"]));
    assert!(
        status.contains("Data Transfer Element 0:Full (Storage Element 1 Loaded):VolumeTag = mon"),
        "{status}"
    );
    assert!(
        status.contains("      Storage Element 2:Full :VolumeTag=tue"),
        "{status}"
    );
    ok(home.command(REEL).args(["changer", "unload"]));
    ok(home.command(REEL).args(["changer", "load", "wed"]));
    let json: serde_json::Value = serde_json::from_str(&ok(home
        .command(REEL)
        .args(["changer", "status", "--json"])))
    .unwrap();
    assert_eq!(json["drives"][0]["barcode"], "wed", "{json}");
    // The drive reads the cartridge the changer loaded.
    let tapes = ok(home.command(REEL).args(["tape", "list"]));
    assert!(
        tapes.lines().any(|l| l.trim_start().starts_with("* wed")),
        "{tapes}"
    );
    ok(home.command(REEL).args(["changer", "export", "tue"]));
    assert!(
        home.path()
            .join("reel-home/library/mail/tue.vtape")
            .is_dir()
    );
    ok(home.command(REEL).args(["changer", "import", "--to", "6"]));
    let status = ok(home.command(REEL).args(["changer", "status"]));
    assert!(
        status.contains("Storage Element 6:Full :VolumeTag=tue"),
        "{status}"
    );
    let out = run(home.command(REEL).args(["changer", "transfer", "4", "5"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("slot 4 is empty"),
        "{out:?}"
    );
}
