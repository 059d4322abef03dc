//! `reel tape`: every Win32 tape function from the command line, state kept between
//! commands, JSON output, exit codes and Win32-style errors on bad input.

use std::process::Output;

use reel_testkit::TempHome;
use serde_json::Value;

fn reel(home: &TempHome, args: &[&str]) -> Output {
    reel_testkit::reel!(home)
        .args(args)
        .output()
        .expect("run reel")
}

fn ok(home: &TempHome, args: &[&str]) -> String {
    let out = reel(home, args);
    assert!(
        out.status.success(),
        "reel {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(home: &TempHome, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&ok(home, &a)).expect("one JSON document")
}

/// Runs a command that must fail with exit `code` and a message naming `win32`.
fn fails(home: &TempHome, args: &[&str], code: i32, win32: &str) -> String {
    let out = reel(home, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "reel {args:?}: {err}");
    assert!(
        err.contains(win32),
        "reel {args:?}: expected {win32} in: {err}"
    );
    err
}

fn position(home: &TempHome) -> (u64, u64) {
    let p = json(home, &["tape", "position"]);
    (
        p["partition"].as_u64().unwrap(),
        p["block"].as_u64().unwrap(),
    )
}

#[test]
fn every_tape_function_from_the_command_line() {
    let home = TempHome::new();
    ok(&home, &["tape", "new", "a", "--capacity", "64M"]);
    ok(&home, &["tape", "new", "b", "--capacity", "64M"]);

    // GetTapeParameters: both structures.
    let p = json(&home, &["tape", "params"]);
    for key in [
        "ecc",
        "compression",
        "data_padding",
        "report_setmarks",
        "default_block_size",
        "maximum_block_size",
        "minimum_block_size",
        "maximum_partition_count",
        "features_low",
        "features_high",
        "eot_warning_zone_size",
    ] {
        assert!(p["drive"].get(key).is_some(), "drive.{key} missing: {p}");
    }
    for key in [
        "capacity",
        "remaining",
        "block_size",
        "partition_count",
        "write_protected",
    ] {
        assert!(p["media"].get(key).is_some(), "media.{key} missing: {p}");
    }
    assert_eq!(
        p["drive"]["features_high"].as_u64().unwrap() & 0x8000_0000,
        0
    );

    // GetTapeStatus.
    assert_eq!(json(&home, &["tape", "status"])["code"], 0);

    // WriteTapemark and GetTapePosition; the position survives between commands.
    ok(&home, &["tape", "mark", "--count", "3"]);
    assert_eq!(position(&home), (1, 3));
    ok(&home, &["tape", "mark", "--setmark"]);
    ok(&home, &["tape", "mark", "--short"]);
    ok(&home, &["tape", "mark", "--long"]);
    assert_eq!(position(&home), (1, 6));

    // SetTapePosition, every method, and failures that say where the tape stopped.
    ok(&home, &["tape", "seek", "--rewind"]);
    ok(&home, &["tape", "seek", "--filemarks", "2"]);
    assert_eq!(position(&home), (1, 2));
    ok(&home, &["tape", "seek", "--filemarks", "-1"]);
    assert_eq!(position(&home), (1, 1));
    ok(&home, &["tape", "seek", "--sequential-filemarks", "2"]);
    assert_eq!(position(&home), (1, 3));
    ok(&home, &["tape", "seek", "--setmarks", "1"]);
    assert_eq!(position(&home), (1, 4));
    ok(&home, &["tape", "seek", "--sequential-setmarks", "-1"]);
    assert_eq!(position(&home), (1, 3));
    ok(&home, &["tape", "seek", "--block", "1"]);
    ok(&home, &["tape", "seek", "--absolute", "5"]);
    assert_eq!(position(&home), (1, 5));
    ok(&home, &["tape", "seek", "--eod"]);
    assert_eq!(position(&home), (1, 6));
    let err = fails(
        &home,
        &["tape", "seek", "--blocks", "1"],
        3,
        "ERROR_NO_DATA_DETECTED",
    );
    assert!(err.contains("block 6"), "{err}");
    fails(
        &home,
        &["tape", "seek", "--filemarks", "-9"],
        3,
        "ERROR_BEGINNING_OF_MEDIA",
    );
    assert_eq!(position(&home), (1, 0));

    // EraseTape.
    ok(&home, &["tape", "seek", "--block", "2"]);
    ok(&home, &["tape", "erase"]);
    ok(&home, &["tape", "seek", "--eod"]);
    assert_eq!(position(&home), (1, 2));
    ok(&home, &["tape", "seek", "--rewind"]);
    ok(&home, &["tape", "erase", "--long"]);
    assert_eq!(
        json(&home, &["tape", "params"])["media"]["remaining"],
        64 << 20
    );

    // SetTapeParameters persists for the drive.
    ok(
        &home,
        &[
            "tape",
            "set",
            "--compression",
            "on",
            "--block-size",
            "1024",
            "--eot-zone",
            "2M",
        ],
    );
    let p = json(&home, &["tape", "params"]);
    assert_eq!(p["drive"]["compression"], true);
    assert_eq!(p["drive"]["eot_warning_zone_size"], 2 << 20);
    assert_eq!(p["media"]["block_size"], 1024);
    ok(
        &home,
        &[
            "tape",
            "set",
            "--block-size",
            "variable",
            "--compression",
            "off",
        ],
    );

    // CreateTapePartition.
    let parts = json(&home, &["tape", "partition", "--select", "2"]);
    assert_eq!(parts["partitions"].as_array().unwrap().len(), 2);
    ok(&home, &["tape", "seek", "--eod", "--partition", "2"]);
    assert_eq!(position(&home), (2, 0));
    let parts = json(&home, &["tape", "partition", "--initiator", "8M", "8M"]);
    assert_eq!(parts["partitions"][0], 8 << 20);
    assert_eq!(parts["partitions"].as_array().unwrap().len(), 3);
    ok(&home, &["tape", "partition", "--fixed"]);
    ok(&home, &["tape", "partition", "--select", "1"]);

    // PrepareTape: lock, unload refused, unlock, unload, no media, load, tension, format.
    ok(&home, &["tape", "mark"]);
    ok(&home, &["tape", "lock"]);
    fails(
        &home,
        &["tape", "unload"],
        3,
        "ERROR_UNABLE_TO_UNLOAD_MEDIA",
    );
    fails(
        &home,
        &["tape", "load", "b"],
        3,
        "ERROR_UNABLE_TO_UNLOAD_MEDIA",
    );
    ok(&home, &["tape", "unlock"]);
    ok(&home, &["tape", "unload"]);
    fails(&home, &["tape", "status"], 3, "");
    assert_eq!(json_status_code(&home), 1112);
    fails(&home, &["tape", "position"], 3, "ERROR_NO_MEDIA_IN_DRIVE");
    fails(&home, &["tape", "mark"], 3, "ERROR_NO_MEDIA_IN_DRIVE");
    ok(&home, &["tape", "load"]);
    assert_eq!(position(&home), (1, 0));
    ok(&home, &["tape", "tension"]);
    ok(&home, &["tape", "format"]);
    ok(&home, &["tape", "seek", "--eod"]);
    assert_eq!(position(&home), (1, 0));

    // The changer: loading another cartridge reports the media change.
    let loaded = json(&home, &["tape", "load", "b"]);
    assert!(
        loaded["done"].as_str().unwrap().contains("media changed"),
        "{loaded}"
    );
    assert_eq!(json(&home, &["tape", "params"])["drive_name"], "vtape:b");
    let list = json(&home, &["tape", "list"]);
    let b = list["cartridges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "b")
        .unwrap();
    assert_eq!(b["loaded"], true);

    // Write protection.
    ok(&home, &["tape", "protect", "a"]);
    fails(
        &home,
        &["--tape", "vtape:a", "tape", "mark"],
        3,
        "ERROR_WRITE_PROTECT",
    );
    fails(
        &home,
        &["--tape", "vtape:a", "tape", "format"],
        3,
        "ERROR_WRITE_PROTECT",
    );
    ok(&home, &["tape", "protect", "a", "--off"]);
    ok(&home, &["--tape", "vtape:a", "tape", "mark"]);
}

fn json_status_code(home: &TempHome) -> u64 {
    let out = reel(home, &["tape", "status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["code"].as_u64().unwrap()
}

#[test]
fn bad_input_is_a_win32_error_with_exit_2_and_changes_nothing() {
    let home = TempHome::new();
    ok(&home, &["tape", "new", "a", "--capacity", "16M"]);
    ok(&home, &["tape", "mark", "--count", "2"]);
    let lib = home.path().join("reel-home/library/a.vtape");
    let before = std::fs::read(lib.join("p1.tap")).unwrap();
    for args in [
        &["tape", "mark", "--count", "-1"][..],
        &["tape", "seek", "--block", "-3"],
        &["tape", "seek", "--absolute", "-1"],
        &["tape", "seek", "--block", "0", "--partition", "3"],
        &["tape", "seek", "--eod", "--partition", "-2"],
        &["tape", "set", "--block-size", "-5"],
        &["tape", "set", "--block-size", "20M"],
        &["tape", "partition", "--select", "7"],
        &["tape", "partition", "--select", "-1"],
        &["tape", "new", "x", "--partitions", "-2"],
    ] {
        fails(&home, args, 2, "ERROR_INVALID_PARAMETER");
    }
    fails(
        &home,
        &["tape", "partition", "--initiator", "16M"],
        3,
        "ERROR_PARTITION_FAILURE",
    );
    assert_eq!(std::fs::read(lib.join("p1.tap")).unwrap(), before);
    assert_eq!(position(&home), (1, 2));
    // A damaged cartridge.toml: a clear error naming the file, nothing touched.
    let toml = lib.join("cartridge.toml");
    let good = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, good.replace("capacity =", "capacity = \"big\" #")).unwrap();
    let err = fails(&home, &["tape", "status"], 2, "cartridge.toml");
    assert!(err.contains("capacity"), "{err}");
    assert_eq!(std::fs::read(lib.join("p1.tap")).unwrap(), before);
}

#[test]
fn initiator_partition_sizes_are_whole_mib_and_a_bare_number_is_mib() {
    let home = TempHome::new();
    ok(&home, &["tape", "new", "a", "--capacity", "64M"]);
    // As CreateTapePartition's size: 8 is 8 MiB, not 8 bytes.
    let parts = json(&home, &["tape", "partition", "--initiator", "8", "8"]);
    assert_eq!(parts["partitions"][0], 8 << 20);
    assert_eq!(parts["partitions"][1], 8 << 20);
    assert_eq!(parts["partitions"].as_array().unwrap().len(), 3);
    let parts = json(&home, &["tape", "partition", "--initiator", "16"]);
    assert_eq!(parts["partitions"][0], 16 << 20);
    assert_eq!(parts["partitions"].as_array().unwrap().len(), 2);
    // A suffix says its own unit; what CreateTapePartition cannot take is refused.
    for args in [
        &["tape", "partition", "--initiator", "4096B"][..],
        &["tape", "partition", "--initiator", "1.5"],
        &["tape", "partition", "--initiator", "8", "16"],
        &["tape", "partition", "--initiator", "0"],
    ] {
        fails(&home, args, 2, "ERROR_INVALID_PARAMETER");
    }
    fails(
        &home,
        &["tape", "partition", "--initiator", "lots"],
        2,
        "is not a size",
    );
    // The refusals left the layout alone.
    assert_eq!(
        json(&home, &["tape", "params"])["media"]["partition_count"],
        2
    );
}

#[test]
fn every_tape_subcommand_has_help_with_an_example() {
    let home = TempHome::new();
    for sub in [
        "new",
        "list",
        "params",
        "status",
        "position",
        "seek",
        "mark",
        "erase",
        "partition",
        "load",
        "unload",
        "lock",
        "unlock",
        "tension",
        "format",
        "set",
        "protect",
        "dump",
    ] {
        let help = ok(&home, &["tape", sub, "--help"]);
        assert!(
            help.contains("Example"),
            "reel tape {sub} --help has no example:\n{help}"
        );
    }
}

#[test]
fn a_cartridge_repaired_on_opening_is_reported_once() {
    let home = TempHome::new();
    ok(&home, &["tape", "new", "c", "--capacity", "8M"]);
    ok(&home, &["--tape", "vtape:c", "tape", "mark"]);
    // A write cut short by a crash: a record length and part of the record.
    let tap = home.path().join("reel-home/library/c.vtape/p1.tap");
    let mut f = std::fs::OpenOptions::new().append(true).open(&tap).unwrap();
    use std::io::Write;
    f.write_all(&9000u32.to_le_bytes()).unwrap();
    f.write_all(&[7u8; 100]).unwrap();
    drop(f);
    let out = reel(&home, &["--tape", "vtape:c", "tape", "status"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("104 bytes of an unfinished write"),
        "{err}"
    );
    // Repaired: the next command has nothing to say.
    let out = reel(&home, &["--tape", "vtape:c", "tape", "status"]);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
