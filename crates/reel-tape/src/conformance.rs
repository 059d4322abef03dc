//! The semantics every backend must show (tape.md, "Semantics every backend must show"),
//! as checks written against `&mut dyn TapeDrive`, so every backend runs the same suite.
//!
//! A backend's test file implements [`Harness`] (blank media, write protection, a changer
//! load) and runs each check of [`RULES`] as its own test with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```text
//! reel_tape::conformance_tests!(MyHarness::new());
//! ```
//!
//! A check that the backend cannot set up (a real drive cannot make a 4 MiB tape) reports
//! [`Fail::Skipped`]; [`run`] turns that into a failure under `REEL_REQUIRE_ALL=1` and a
//! printed note otherwise. A broken rule is [`Fail::Broken`] with what was expected.

use crate::drive::*;
use crate::error::{TapeError, code};
use crate::features::*;

/// One `#[test]` per rule of [`RULES`] for a backend, each on a fresh harness from
/// `$harness` (an expression), plus a test that no rule is left without one. Used by every
/// backend's test file, so the list of rules is written once:
///
/// ```text
/// reel_tape::conformance_tests!(MyHarness::new());
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr) => {
        $crate::conformance_tests!(
            @rules $harness;
            positions_count_objects,
            write_makes_end_of_data,
            filemark_read,
            setmark_read,
            end_of_data_read,
            variable_mode_reads,
            fixed_mode_whole_blocks,
            spacing_over_filemarks,
            spacing_failures,
            early_warning,
            write_past_end,
            write_protect,
            unload_then_no_media,
            media_changed_once,
            locked_unload_refused,
            unsupported_is_reported,
        );
    };
    (@rules $harness:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::conformance::run(stringify!($name), &mut $harness);
            }
        )*

        #[test]
        fn every_rule_has_a_test() {
            let tested = [$(stringify!($name)),*];
            for rule in $crate::conformance::RULES {
                assert!(tested.contains(&rule.name), "no test for rule {}", rule.name);
            }
        }
    };
}

/// Why a check did not pass.
#[derive(Debug)]
pub enum Fail {
    /// The backend breaks the rule: what was expected and what happened.
    Broken(String),
    /// The backend cannot set the check up (not a failure of the rule).
    Skipped(String),
}

impl From<TapeError> for Fail {
    fn from(e: TapeError) -> Self {
        Fail::Broken(format!("unexpected {} ({}): {e}", e.code_name(), e.code()))
    }
}

pub type Outcome = Result<(), Fail>;

/// What a backend provides to the checks.
pub trait Harness {
    /// Puts a blank, writable medium of about `capacity` bytes in a fresh drive with
    /// default settings (variable blocks, ReportSetmarks off), at the beginning.
    fn blank(&mut self, capacity: u64) -> Result<(), Fail>;
    /// The current drive.
    fn drive(&mut self) -> &mut dyn TapeDrive;
    /// Write-protects the medium in the drive; the drive is at the beginning afterwards.
    fn write_protect(&mut self) -> Result<(), Fail>;
    /// Puts a different medium in the drive (a changer load), as another program would.
    fn change_medium(&mut self) -> Result<(), Fail>;
}

/// One rule of tape.md and its check.
pub struct Rule {
    pub name: &'static str,
    pub rule: &'static str,
    pub check: fn(&mut dyn Harness) -> Outcome,
}

/// Every rule, in the order of tape.md.
pub const RULES: &[Rule] = &[
    Rule {
        name: "positions_count_objects",
        rule: "Positions count objects: every record and every mark is one object, numbered from 0 at the beginning of each partition (logical); absolute numbers objects across the whole cartridge.",
        check: positions_count_objects,
    },
    Rule {
        name: "write_makes_end_of_data",
        rule: "Writing anywhere makes that point the new end of data: everything after it is gone.",
        check: write_makes_end_of_data,
    },
    Rule {
        name: "filemark_read",
        rule: "A read that meets a filemark returns no data, fails with FILEMARK_DETECTED and leaves the tape just past the mark.",
        check: filemark_read,
    },
    Rule {
        name: "setmark_read",
        rule: "Setmarks: SETMARK_DETECTED when ReportSetmarks is on; otherwise they are passed over silently.",
        check: setmark_read,
    },
    Rule {
        name: "end_of_data_read",
        rule: "At end of data: NO_DATA_DETECTED, position unchanged.",
        check: end_of_data_read,
    },
    Rule {
        name: "variable_mode_reads",
        rule: "Variable mode: one read returns one record; a buffer smaller than the record returns the first part, fails with MORE_DATA and moves past the record.",
        check: variable_mode_reads,
    },
    Rule {
        name: "fixed_mode_whole_blocks",
        rule: "Fixed mode: lengths must be whole blocks, else INVALID_BLOCK_LENGTH.",
        check: fixed_mode_whole_blocks,
    },
    Rule {
        name: "spacing_over_filemarks",
        rule: "Spacing forward over filemarks leaves the tape after the last mark; backward, before it.",
        check: spacing_over_filemarks,
    },
    Rule {
        name: "spacing_failures",
        rule: "Spacing past end of data fails with NO_DATA_DETECTED; past the beginning with BEGINNING_OF_MEDIA; the tape stays where the failure happened, and the position query says where.",
        check: spacing_failures,
    },
    Rule {
        name: "early_warning",
        rule: "Early warning: a write that enters the last EOTWarningZoneSize bytes completes but reports END_OF_MEDIA.",
        check: early_warning,
    },
    Rule {
        name: "write_past_end",
        rule: "A write that does not fit before physical end writes nothing and fails with END_OF_MEDIA.",
        check: write_past_end,
    },
    Rule {
        name: "write_protect",
        rule: "A write-protected cartridge refuses every write, mark, erase, partition and format with WRITE_PROTECT and changes nothing.",
        check: write_protect,
    },
    Rule {
        name: "unload_then_no_media",
        rule: "Unload: further operations fail with NO_MEDIA_IN_DRIVE until Load.",
        check: unload_then_no_media,
    },
    Rule {
        name: "media_changed_once",
        rule: "Loading another cartridge: the next operation reports MEDIA_CHANGED once.",
        check: media_changed_once,
    },
    Rule {
        name: "locked_unload_refused",
        rule: "Unload while locked: UNABLE_TO_UNLOAD_MEDIA.",
        check: locked_unload_refused,
    },
    Rule {
        name: "unsupported_is_reported",
        rule: "An operation a backend cannot do returns NOT_SUPPORTED, never a silent no-op (and the TAPE_DRIVE_* bits say truthfully which are which).",
        check: unsupported_is_reported,
    },
];

/// Runs the check `name` against `harness`, panicking when the rule is broken (for use
/// in `#[test]` functions). A skipped check fails under `REEL_REQUIRE_ALL=1`.
pub fn run(name: &str, harness: &mut dyn Harness) {
    let rule = RULES
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no conformance rule named {name}"));
    match (rule.check)(harness) {
        Ok(()) => {}
        Err(Fail::Broken(why)) => panic!("rule broken: {}\n  {why}", rule.rule),
        Err(Fail::Skipped(why)) => {
            if std::env::var("REEL_REQUIRE_ALL").is_ok_and(|v| v == "1") {
                panic!("check {name} could not run and REEL_REQUIRE_ALL=1: {why}");
            }
            eprintln!("SKIPPED: {name}: {why}");
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(Fail::Broken(format!($($fmt)+)));
        }
    };
}

/// Test content: record `n` of `len` bytes (deterministic, poorly compressible).
pub fn record(n: u32, len: usize) -> Vec<u8> {
    let mut x = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn read_record(d: &mut dyn TapeDrive) -> Result<Vec<u8>, TapeError> {
    let mut buf = vec![0u8; 1 << 20];
    let n = d.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// Expects `r` to fail with Win32 `code`.
fn expect_code<T: std::fmt::Debug>(r: Result<T, TapeError>, code: u32, what: &str) -> Outcome {
    match r {
        Err(e) if e.code() == code => Ok(()),
        Err(e) => Err(Fail::Broken(format!(
            "{what}: expected error {code}, got {} ({}): {e}",
            e.code_name(),
            e.code()
        ))),
        Ok(v) => Err(Fail::Broken(format!(
            "{what}: expected error {code}, got success ({v:?})"
        ))),
    }
}

fn logical(d: &mut dyn TapeDrive) -> Result<u64, Fail> {
    Ok(d.position(PositionKind::Logical)?.offset)
}

fn expect_at(d: &mut dyn TapeDrive, at: u64, what: &str) -> Outcome {
    let p = logical(d)?;
    ensure!(
        p == at,
        "{what}: expected logical block {at}, the drive says {p}"
    );
    Ok(())
}

fn expect_record(d: &mut dyn TapeDrive, want: &[u8], what: &str) -> Outcome {
    match read_record(d) {
        Ok(got) => {
            ensure!(
                got == want,
                "{what}: read {} bytes that differ from the {} written",
                got.len(),
                want.len()
            );
            Ok(())
        }
        Err(e) => Err(Fail::Broken(format!(
            "{what}: expected a record of {} bytes, got {} ({}): {e}",
            want.len(),
            e.code_name(),
            e.code()
        ))),
    }
}

fn features(d: &mut dyn TapeDrive) -> Result<(u32, u32), Fail> {
    let p = d.drive_parameters()?;
    Ok((p.features_low, p.features_high))
}

fn has_high(d: &mut dyn TapeDrive, bit: u32) -> Result<bool, Fail> {
    Ok(features(d)?.1 & (bit & !TAPE_DRIVE_HIGH_FEATURES) != 0)
}

fn needs_high(d: &mut dyn TapeDrive, bit: u32, what: &str) -> Outcome {
    if has_high(d, bit)? {
        Ok(())
    } else {
        Err(Fail::Skipped(format!("the drive does not claim {what}")))
    }
}

/// label FM r1 r2 FM r3 FM: objects 0..7, filemarks at 1, 4, 6.
fn write_sample(d: &mut dyn TapeDrive) -> Outcome {
    d.write(&record(0, 100))?;
    d.write_marks(MarkKind::Filemarks, 1, false)?;
    d.write(&record(1, 4096))?;
    d.write(&record(2, 333))?;
    d.write_marks(MarkKind::Filemarks, 1, false)?;
    d.write(&record(3, 7000))?;
    d.write_marks(MarkKind::Filemarks, 1, false)?;
    Ok(())
}

const MEDIUM: u64 = 64 << 20;

fn positions_count_objects(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    expect_at(d, 0, "a blank tape")?;
    d.write(&record(0, 10))?;
    expect_at(d, 1, "after one record")?;
    d.write_marks(MarkKind::Filemarks, 2, false)?;
    expect_at(d, 3, "after a record and two filemarks")?;
    d.write(&record(1, 70_000))?;
    expect_at(d, 4, "a long record is one object")?;
    if has_high(d, TAPE_DRIVE_WRITE_SETMARKS)? {
        d.write_marks(MarkKind::Setmarks, 1, false)?;
        expect_at(d, 5, "a setmark is one object")?;
    }
    // Partitions: logical numbering restarts, absolute goes on.
    let max = d.drive_parameters()?.maximum_partition_count;
    let (low, _) = features(d)?;
    if max < 2 || low & TAPE_DRIVE_SELECT == 0 {
        return Err(Fail::Skipped(
            "the drive cannot make two partitions (absolute numbering across partitions not checked)".into(),
        ));
    }
    d.create_partitions(PartitionMethod::Select, 2, 0)?;
    ensure!(
        d.media_parameters()?.partition_count == 2,
        "CreateTapePartition(select, 2) did not give 2 partitions"
    );
    for i in 0..3 {
        d.write(&record(10 + i, 100))?;
    }
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 2,
            block: 0,
        },
        false,
    )?;
    let p = d.position(PositionKind::Logical)?;
    ensure!(
        p.partition == 2 && p.offset == 0,
        "the beginning of partition 2 is logical block 0 of partition 2, the drive says {p:?}"
    );
    d.write(&record(20, 100))?;
    d.write(&record(21, 100))?;
    let p = d.position(PositionKind::Logical)?;
    ensure!(
        p.partition == 2 && p.offset == 2,
        "after two records in partition 2: expected partition 2 block 2, got {p:?}"
    );
    let a = d.position(PositionKind::Absolute)?;
    ensure!(
        a.offset == 5,
        "absolute position after 3 objects in partition 1 and 2 in partition 2: expected 5, got {}",
        a.offset
    );
    d.set_position(SeekTo::AbsoluteBlock(1), false)?;
    let p = d.position(PositionKind::Logical)?;
    ensure!(
        p.partition == 1 && p.offset == 1,
        "absolute block 1 is partition 1 block 1, the drive went to {p:?}"
    );
    expect_record(d, &record(11, 100), "reading at absolute block 1")?;
    d.set_position(SeekTo::AbsoluteBlock(4), false)?;
    expect_record(d, &record(21, 100), "reading at absolute block 4")?;
    Ok(())
}

fn write_makes_end_of_data(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    for i in 0..5 {
        d.write(&record(i, 500))?;
    }
    let seek = |d: &mut dyn TapeDrive, block| {
        d.set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block,
            },
            false,
        )
    };
    seek(d, 2)?;
    d.write(&record(9, 50))?;
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)?;
    expect_at(d, 3, "end of data after overwriting block 2")?;
    seek(d, 2)?;
    expect_record(d, &record(9, 50), "the new record")?;
    expect_code(
        read_record(d),
        code::ERROR_NO_DATA_DETECTED,
        "the old block 3",
    )?;
    // A mark written in the middle does the same.
    seek(d, 1)?;
    d.write_marks(MarkKind::Filemarks, 1, false)?;
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)?;
    expect_at(d, 2, "end of data after a filemark at block 1")?;
    Ok(())
}

fn filemark_read(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    d.write(&record(0, 100))?;
    d.write_marks(MarkKind::Filemarks, 1, false)?;
    d.write(&record(1, 200))?;
    d.set_position(SeekTo::Rewind, false)?;
    expect_record(d, &record(0, 100), "the first record")?;
    let mut buf = vec![0xA5u8; 4096];
    expect_code(
        d.read(&mut buf),
        code::ERROR_FILEMARK_DETECTED,
        "reading the filemark",
    )?;
    ensure!(
        buf.iter().all(|&b| b == 0xA5),
        "a read that meets a filemark must return no data, but the buffer was written"
    );
    expect_at(d, 2, "after reading the filemark (just past it)")?;
    expect_record(d, &record(1, 200), "the record after the filemark")?;
    Ok(())
}

fn setmark_read(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    needs_high(d, TAPE_DRIVE_WRITE_SETMARKS, "TAPE_DRIVE_WRITE_SETMARKS")?;
    d.write(&record(0, 100))?;
    d.write_marks(MarkKind::Setmarks, 1, false)?;
    d.write(&record(1, 200))?;
    let mut p = d.drive_parameters()?;
    ensure!(!p.report_setmarks, "ReportSetmarks must be off by default");
    d.set_position(SeekTo::Rewind, false)?;
    expect_record(d, &record(0, 100), "the first record")?;
    expect_record(
        d,
        &record(1, 200),
        "with ReportSetmarks off the setmark is passed over silently",
    )?;
    needs_high(d, TAPE_DRIVE_SET_REPORT_SMKS, "TAPE_DRIVE_SET_REPORT_SMKS")?;
    p.report_setmarks = true;
    d.set_drive_parameters(&set_params(&p))?;
    d.set_position(SeekTo::Rewind, false)?;
    expect_record(d, &record(0, 100), "the first record")?;
    expect_code(
        read_record(d),
        code::ERROR_SETMARK_DETECTED,
        "reading the setmark with ReportSetmarks on",
    )?;
    expect_at(d, 2, "after reading the setmark (just past it)")?;
    expect_record(d, &record(1, 200), "the record after the setmark")?;
    Ok(())
}

fn set_params(p: &DriveParameters) -> SetDriveParameters {
    SetDriveParameters {
        ecc: p.ecc,
        compression: p.compression,
        data_padding: p.data_padding,
        report_setmarks: p.report_setmarks,
        eot_warning_zone_size: p.eot_warning_zone_size,
    }
}

fn end_of_data_read(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    expect_code(
        read_record(d),
        code::ERROR_NO_DATA_DETECTED,
        "reading a blank tape",
    )?;
    expect_at(d, 0, "after reading a blank tape")?;
    d.write(&record(0, 100))?;
    d.set_position(SeekTo::Rewind, false)?;
    expect_record(d, &record(0, 100), "the record")?;
    for i in 0..2 {
        expect_code(
            read_record(d),
            code::ERROR_NO_DATA_DETECTED,
            "reading at end of data",
        )?;
        expect_at(d, 1, &format!("after read {} at end of data", i + 1))?;
    }
    Ok(())
}

fn variable_mode_reads(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    ensure!(
        d.media_parameters()?.block_size == 0,
        "a fresh drive must be in variable-block mode"
    );
    d.write(&record(7, 1000))?;
    d.write(&record(8, 10))?;
    d.set_position(SeekTo::Rewind, false)?;
    let mut big = vec![0u8; 65536];
    let n = d.read(&mut big)?;
    ensure!(
        n == 1000,
        "one read returns one record: expected 1000 bytes, got {n}"
    );
    ensure!(big[..n] == record(7, 1000)[..], "record content differs");
    d.set_position(SeekTo::Rewind, false)?;
    let mut small = [0u8; 16];
    expect_code(
        d.read(&mut small),
        code::ERROR_MORE_DATA,
        "a 16-byte buffer for a 1000-byte record",
    )?;
    ensure!(
        small[..] == record(7, 1000)[..16],
        "the short buffer must hold the first part of the record"
    );
    expect_at(d, 1, "after MORE_DATA (past the record)")?;
    expect_record(d, &record(8, 10), "the next record")?;
    Ok(())
}

fn fixed_mode_whole_blocks(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    needs_high(d, TAPE_DRIVE_SET_BLOCK_SIZE, "TAPE_DRIVE_SET_BLOCK_SIZE")?;
    d.set_media_parameters(512)?;
    ensure!(
        d.media_parameters()?.block_size == 512,
        "the block size was set to 512 but the media parameters say otherwise"
    );
    expect_code(
        d.write(&record(0, 1000)),
        code::ERROR_INVALID_BLOCK_LENGTH,
        "writing 1000 bytes in 512-byte mode",
    )?;
    expect_at(d, 0, "after the refused write")?;
    let data = record(1, 1024);
    d.write(&data)?;
    expect_at(d, 2, "1024 bytes are two 512-byte blocks")?;
    d.set_position(SeekTo::Rewind, false)?;
    let mut odd = vec![0u8; 100];
    expect_code(
        d.read(&mut odd),
        code::ERROR_INVALID_BLOCK_LENGTH,
        "reading 100 bytes in 512-byte mode",
    )?;
    expect_at(d, 0, "after the refused read")?;
    let mut buf = vec![0u8; 1024];
    let n = d.read(&mut buf)?;
    ensure!(
        n == 1024 && buf == data,
        "reading two blocks back gave {n} bytes"
    );
    d.set_media_parameters(0)?;
    Ok(())
}

fn spacing_over_filemarks(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    write_sample(d)?;
    d.set_position(SeekTo::Rewind, false)?;
    d.set_position(SeekTo::SpaceFilemarks(2), false)?;
    expect_at(d, 5, "forward over 2 filemarks (after the second)")?;
    expect_record(d, &record(3, 7000), "the record after the second filemark")?;
    d.set_position(SeekTo::SpaceFilemarks(-1), false)?;
    expect_at(d, 4, "backward over 1 filemark (before it)")?;
    d.set_position(SeekTo::SpaceFilemarks(-1), false)?;
    expect_at(d, 1, "backward over the next filemark (before it)")?;
    d.set_position(SeekTo::SpaceFilemarks(0), false)?;
    expect_at(d, 1, "spacing over 0 filemarks does not move")?;
    // Block spacing stops at a filemark: after it forward, before it backward.
    d.set_position(SeekTo::Rewind, false)?;
    expect_code(
        d.set_position(SeekTo::SpaceRelativeBlocks(3), false),
        code::ERROR_FILEMARK_DETECTED,
        "spacing 3 blocks over a filemark",
    )?;
    expect_at(d, 2, "block spacing stopped by a filemark (just past it)")?;
    expect_code(
        d.set_position(SeekTo::SpaceRelativeBlocks(-2), false),
        code::ERROR_FILEMARK_DETECTED,
        "spacing 2 blocks back over a filemark",
    )?;
    expect_at(
        d,
        1,
        "backward block spacing stopped by a filemark (before it)",
    )?;
    Ok(())
}

fn spacing_failures(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    write_sample(d)?;
    d.set_position(SeekTo::Rewind, false)?;
    expect_code(
        d.set_position(SeekTo::SpaceFilemarks(5), false),
        code::ERROR_NO_DATA_DETECTED,
        "spacing over 5 of 3 filemarks",
    )?;
    expect_at(d, 7, "after spacing past end of data (at end of data)")?;
    expect_code(
        d.set_position(SeekTo::SpaceFilemarks(-9), false),
        code::ERROR_BEGINNING_OF_MEDIA,
        "spacing back over 9 of 3 filemarks",
    )?;
    expect_at(d, 0, "after spacing past the beginning (at the beginning)")?;
    expect_code(
        d.set_position(SeekTo::SpaceRelativeBlocks(-1), false),
        code::ERROR_BEGINNING_OF_MEDIA,
        "spacing one block back from the beginning",
    )?;
    expect_at(d, 0, "still at the beginning")?;
    d.set_position(SeekTo::SpaceFilemarks(2), false)?;
    expect_code(
        d.set_position(SeekTo::SpaceRelativeBlocks(3), false),
        code::ERROR_FILEMARK_DETECTED,
        "spacing 3 blocks where a filemark follows one",
    )?;
    expect_at(d, 7, "stopped just past the last filemark")?;
    expect_code(
        d.set_position(SeekTo::SpaceRelativeBlocks(1), false),
        code::ERROR_NO_DATA_DETECTED,
        "spacing one block at end of data",
    )?;
    expect_at(d, 7, "still at end of data")?;
    if has_high(d, TAPE_DRIVE_SETMARKS)? {
        d.set_position(SeekTo::Rewind, false)?;
        expect_code(
            d.set_position(SeekTo::SpaceSetmarks(1), false),
            code::ERROR_NO_DATA_DETECTED,
            "spacing over a setmark on a tape without setmarks",
        )?;
        expect_at(d, 7, "at end of data")?;
    }
    Ok(())
}

/// Sets the early-warning zone, when the drive lets us.
fn set_zone(d: &mut dyn TapeDrive, zone: u32) -> Result<u64, Fail> {
    let mut p = d.drive_parameters()?;
    if p.features_low & TAPE_DRIVE_SET_EOT_WZ_SIZE != 0 {
        p.eot_warning_zone_size = zone;
        d.set_drive_parameters(&set_params(&p))?;
    }
    Ok(u64::from(d.drive_parameters()?.eot_warning_zone_size))
}

fn small_medium(h: &mut dyn Harness) -> Result<u64, Fail> {
    h.blank(4 << 20)?;
    let d = h.drive();
    let (low, _) = features(d)?;
    if low & TAPE_DRIVE_TAPE_REMAINING == 0 {
        return Err(Fail::Skipped("the drive does not report Remaining".into()));
    }
    let cap = d.media_parameters()?.capacity;
    if cap > 64 << 20 {
        return Err(Fail::Skipped(format!(
            "the medium holds {cap} bytes; filling it is not a test"
        )));
    }
    Ok(cap)
}

fn early_warning(h: &mut dyn Harness) -> Outcome {
    small_medium(h)?;
    let d = h.drive();
    let zone = set_zone(d, 1 << 20)?;
    ensure!(zone > 0, "the early-warning zone is 0");
    let rec = record(5, 64 * 1024);
    for i in 0.. {
        let before = d.media_parameters()?.remaining;
        let pos = logical(d)?;
        match d.write(&rec) {
            Ok(()) => {
                let after = d.media_parameters()?.remaining;
                ensure!(
                    after >= zone,
                    "write {i} left {after} bytes, inside the {zone}-byte warning zone, without END_OF_MEDIA"
                );
            }
            Err(e) if e.code() == code::ERROR_END_OF_MEDIA => {
                let after = d.media_parameters()?.remaining;
                ensure!(
                    before >= zone && after < zone,
                    "END_OF_MEDIA at write {i} with {before} bytes remaining before and {after} after; the zone is {zone}"
                );
                ensure!(
                    after < before,
                    "the write that entered the warning zone must complete (Remaining went from {before} to {after})"
                );
                expect_at(d, pos + 1, "after the write that entered the zone")?;
                d.set_position(SeekTo::SpaceRelativeBlocks(-1), false)?;
                expect_record(d, &rec, "the record that entered the warning zone")?;
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        ensure!(i < 1000, "no early warning after {i} writes");
    }
    Ok(())
}

fn write_past_end(h: &mut dyn Harness) -> Outcome {
    small_medium(h)?;
    let d = h.drive();
    set_zone(d, 1 << 20)?;
    let rec = record(6, 100 * 1024);
    let mut last = None;
    for i in 0.. {
        ensure!(i < 1000, "no END_OF_MEDIA after {i} writes");
        let before = d.media_parameters()?.remaining;
        let pos = logical(d)?;
        match d.write(&rec) {
            Ok(()) => {}
            Err(e) if e.code() == code::ERROR_END_OF_MEDIA => {
                let after = d.media_parameters()?.remaining;
                if after < before {
                    // Early warning: the write completed.
                    last = Some(pos);
                    continue;
                }
                ensure!(
                    (before as usize) < rec.len(),
                    "END_OF_MEDIA without writing while {before} bytes remain for a {}-byte record",
                    rec.len()
                );
                expect_at(d, pos, "a write that did not fit must not move the tape")?;
                d.set_position(SeekTo::EndOfData { partition: 0 }, false)?;
                expect_at(d, pos, "a write that did not fit must not add an object")?;
                if let Some(l) = last {
                    d.set_position(
                        SeekTo::LogicalBlock {
                            partition: 0,
                            block: l,
                        },
                        false,
                    )?;
                    expect_record(d, &rec, "the last record before the end")?;
                }
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        last = Some(pos);
    }
    Ok(())
}

fn write_protect(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    {
        let d = h.drive();
        d.write(&record(0, 100))?;
        d.write_marks(MarkKind::Filemarks, 1, false)?;
        d.write(&record(1, 200))?;
    }
    h.write_protect()?;
    let d = h.drive();
    ensure!(
        d.media_parameters()?.write_protected,
        "media parameters must say WriteProtected"
    );
    let remaining = d.media_parameters()?.remaining;
    const WP: u32 = code::ERROR_WRITE_PROTECT;
    for at in [0u64, 1, 3] {
        d.set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: at,
            },
            false,
        )?;
        expect_code(d.write(&record(9, 10)), WP, "write")?;
        for kind in [
            MarkKind::Filemarks,
            MarkKind::Setmarks,
            MarkKind::ShortFilemarks,
            MarkKind::LongFilemarks,
        ] {
            expect_code(d.write_marks(kind, 1, false), WP, &format!("{kind:?}"))?;
        }
        expect_code(d.erase(EraseKind::Short, false), WP, "short erase")?;
        expect_code(d.erase(EraseKind::Long, false), WP, "long erase")?;
        expect_at(d, at, "after the refused operations")?;
    }
    for method in [
        PartitionMethod::Fixed,
        PartitionMethod::Select,
        PartitionMethod::Initiator,
    ] {
        expect_code(
            d.create_partitions(method, 2, 1),
            WP,
            &format!("{method:?} partitions"),
        )?;
    }
    expect_code(d.prepare(PrepareOp::Format, false), WP, "format")?;
    ensure!(
        d.media_parameters()?.remaining == remaining,
        "Remaining changed on a write-protected cartridge"
    );
    ensure!(
        d.media_parameters()?.partition_count == 1,
        "the partition count changed on a write-protected cartridge"
    );
    d.set_position(SeekTo::Rewind, false)?;
    expect_record(d, &record(0, 100), "the first record after refused writes")?;
    expect_code(
        read_record(d),
        code::ERROR_FILEMARK_DETECTED,
        "the filemark",
    )?;
    expect_record(d, &record(1, 200), "the second record")?;
    expect_code(read_record(d), code::ERROR_NO_DATA_DETECTED, "end of data")?;
    Ok(())
}

fn unload_then_no_media(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    needs_high(d, TAPE_DRIVE_LOAD_UNLOAD, "TAPE_DRIVE_LOAD_UNLOAD")?;
    d.write(&record(0, 100))?;
    d.write(&record(1, 100))?;
    d.prepare(PrepareOp::Unload, false)?;
    const NM: u32 = code::ERROR_NO_MEDIA_IN_DRIVE;
    expect_code(read_record(d), NM, "read after unload")?;
    expect_code(d.write(b"x"), NM, "write after unload")?;
    expect_code(
        d.write_marks(MarkKind::Filemarks, 1, false),
        NM,
        "mark after unload",
    )?;
    expect_code(
        d.position(PositionKind::Logical),
        NM,
        "position after unload",
    )?;
    expect_code(
        d.set_position(SeekTo::Rewind, false),
        NM,
        "rewind after unload",
    )?;
    expect_code(d.status(), NM, "status after unload")?;
    expect_code(d.media_parameters(), NM, "media parameters after unload")?;
    expect_code(d.erase(EraseKind::Short, false), NM, "erase after unload")?;
    expect_code(d.status(), NM, "status again")?;
    d.prepare(PrepareOp::Load, false)?;
    d.status()?;
    expect_at(d, 0, "Load moves the tape to the beginning")?;
    expect_record(d, &record(0, 100), "the data after Load")?;
    Ok(())
}

fn media_changed_once(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    h.drive().write(&record(0, 100))?;
    h.change_medium()?;
    let d = h.drive();
    expect_code(
        d.status(),
        code::ERROR_MEDIA_CHANGED,
        "the first operation after a media change",
    )?;
    d.status()?;
    expect_at(d, 0, "the new medium is at the beginning")?;
    expect_code(
        read_record(d),
        code::ERROR_NO_DATA_DETECTED,
        "the new (blank) medium",
    )?;
    // Reported once per change, also when the next operation is a read.
    h.change_medium()?;
    let d = h.drive();
    expect_code(
        read_record(d),
        code::ERROR_MEDIA_CHANGED,
        "a read after a media change",
    )?;
    expect_code(
        read_record(d),
        code::ERROR_NO_DATA_DETECTED,
        "the read after that",
    )?;
    Ok(())
}

fn locked_unload_refused(h: &mut dyn Harness) -> Outcome {
    h.blank(MEDIUM)?;
    let d = h.drive();
    needs_high(d, TAPE_DRIVE_LOCK_UNLOCK, "TAPE_DRIVE_LOCK_UNLOCK")?;
    needs_high(d, TAPE_DRIVE_LOAD_UNLOAD, "TAPE_DRIVE_LOAD_UNLOAD")?;
    d.write(&record(0, 100))?;
    d.prepare(PrepareOp::Lock, false)?;
    expect_code(
        d.prepare(PrepareOp::Unload, false),
        code::ERROR_UNABLE_TO_UNLOAD_MEDIA,
        "unload while locked",
    )?;
    d.status()?;
    expect_at(d, 1, "a refused unload does not move the tape")?;
    d.prepare(PrepareOp::Unlock, false)?;
    d.prepare(PrepareOp::Unload, false)?;
    expect_code(
        d.status(),
        code::ERROR_NO_MEDIA_IN_DRIVE,
        "after unlock and unload",
    )?;
    d.prepare(PrepareOp::Load, false)?;
    d.status()?;
    Ok(())
}

fn unsupported_is_reported(h: &mut dyn Harness) -> Outcome {
    type Op = fn(&mut dyn TapeDrive) -> Result<(), TapeError>;
    let ops: &[(&str, bool, u32, Op)] = &[
        ("erase short", false, TAPE_DRIVE_ERASE_SHORT, |d| {
            d.erase(EraseKind::Short, false)
        }),
        ("erase long", false, TAPE_DRIVE_ERASE_LONG, |d| {
            d.erase(EraseKind::Long, false)
        }),
        ("fixed partitions", false, TAPE_DRIVE_FIXED, |d| {
            d.create_partitions(PartitionMethod::Fixed, 0, 0)
        }),
        ("select partitions", false, TAPE_DRIVE_SELECT, |d| {
            d.create_partitions(PartitionMethod::Select, 1, 0)
        }),
        ("initiator partitions", false, TAPE_DRIVE_INITIATOR, |d| {
            d.create_partitions(PartitionMethod::Initiator, 1, 0)
        }),
        (
            "get absolute position",
            false,
            TAPE_DRIVE_GET_ABSOLUTE_BLK,
            |d| d.position(PositionKind::Absolute).map(drop),
        ),
        (
            "get logical position",
            false,
            TAPE_DRIVE_GET_LOGICAL_BLK,
            |d| d.position(PositionKind::Logical).map(drop),
        ),
        ("load", true, TAPE_DRIVE_LOAD_UNLOAD, |d| {
            d.prepare(PrepareOp::Load, false)
        }),
        ("tension", true, TAPE_DRIVE_TENSION, |d| {
            d.prepare(PrepareOp::Tension, false)
        }),
        ("lock", true, TAPE_DRIVE_LOCK_UNLOCK, |d| {
            d.prepare(PrepareOp::Lock, false)?;
            d.prepare(PrepareOp::Unlock, false)
        }),
        ("format", true, TAPE_DRIVE_FORMAT, |d| {
            d.prepare(PrepareOp::Format, false)
        }),
        ("set block size", true, TAPE_DRIVE_SET_BLOCK_SIZE, |d| {
            d.set_media_parameters(512)?;
            d.set_media_parameters(0)
        }),
        ("absolute block", true, TAPE_DRIVE_ABSOLUTE_BLK, |d| {
            d.set_position(SeekTo::AbsoluteBlock(0), false)
        }),
        ("logical block", true, TAPE_DRIVE_LOGICAL_BLK, |d| {
            d.set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: 0,
                },
                false,
            )
        }),
        ("end of data", true, TAPE_DRIVE_END_OF_DATA, |d| {
            d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        }),
        ("relative blocks", true, TAPE_DRIVE_RELATIVE_BLKS, |d| {
            d.set_position(SeekTo::SpaceRelativeBlocks(1), false)
        }),
        ("filemarks", true, TAPE_DRIVE_FILEMARKS, |d| {
            d.set_position(SeekTo::SpaceFilemarks(1), false)
        }),
        (
            "sequential filemarks",
            true,
            TAPE_DRIVE_SEQUENTIAL_FMKS,
            |d| d.set_position(SeekTo::SpaceSequentialFilemarks(1), false),
        ),
        ("setmarks", true, TAPE_DRIVE_SETMARKS, |d| {
            d.set_position(SeekTo::SpaceSetmarks(1), false)
        }),
        (
            "sequential setmarks",
            true,
            TAPE_DRIVE_SEQUENTIAL_SMKS,
            |d| d.set_position(SeekTo::SpaceSequentialSetmarks(1), false),
        ),
        (
            "reverse positioning",
            true,
            TAPE_DRIVE_REVERSE_POSITION,
            |d| {
                d.set_position(SeekTo::SpaceRelativeBlocks(2), false)?;
                d.set_position(SeekTo::SpaceRelativeBlocks(-1), false)
            },
        ),
        ("write setmarks", true, TAPE_DRIVE_WRITE_SETMARKS, |d| {
            d.write_marks(MarkKind::Setmarks, 1, false)
        }),
        ("write filemarks", true, TAPE_DRIVE_WRITE_FILEMARKS, |d| {
            d.write_marks(MarkKind::Filemarks, 1, false)
        }),
        (
            "write short filemarks",
            true,
            TAPE_DRIVE_WRITE_SHORT_FMKS,
            |d| d.write_marks(MarkKind::ShortFilemarks, 1, false),
        ),
        (
            "write long filemarks",
            true,
            TAPE_DRIVE_WRITE_LONG_FMKS,
            |d| d.write_marks(MarkKind::LongFilemarks, 1, false),
        ),
    ];
    for (name, is_high, bit, op) in ops {
        h.blank(MEDIUM)?;
        let d = h.drive();
        for i in 0..3 {
            d.write(&record(i, 100))?;
        }
        d.set_position(SeekTo::Rewind, false)?;
        let (low, high) = features(d)?;
        let claimed = if *is_high {
            high & (bit & !TAPE_DRIVE_HIGH_FEATURES) != 0
        } else {
            low & bit != 0
        };
        let r = op(d);
        let unsupported = matches!(&r, Err(e) if e.code() == code::ERROR_NOT_SUPPORTED);
        ensure!(
            claimed != unsupported,
            "{name}: the feature bit {bit:#010x} is {} but the operation {}",
            if claimed { "set" } else { "clear" },
            match &r {
                Ok(()) => "succeeded".to_string(),
                Err(e) => format!("failed with {} ({e})", e.code_name()),
            }
        );
    }
    // FeaturesHigh carries no flag bit, as GetTapeParameters reports it.
    h.blank(MEDIUM)?;
    let (_, high) = features(h.drive())?;
    ensure!(
        high & TAPE_DRIVE_HIGH_FEATURES == 0,
        "FeaturesHigh {high:#010x} has the 0x80000000 flag bit set"
    );
    Ok(())
}

/// A drive for tests of the jobs above the trait: every call goes to `inner` unchanged,
/// except what the builder methods ask for. Counting reads shows a job reads only a few
/// records of a large tape; hiding the capacity plays a Linux st drive or a GNU rmt server,
/// which report neither capacity nor remaining bytes (both 0); a wider early-warning zone
/// makes a tape full without filling it.
pub struct TestDrive<D: TapeDrive> {
    inner: D,
    reads: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    capacity_unknown: bool,
    early_warning_zone: Option<u32>,
}

impl<D: TapeDrive> TestDrive<D> {
    pub fn new(inner: D) -> Self {
        TestDrive {
            inner,
            reads: None,
            capacity_unknown: false,
            early_warning_zone: None,
        }
    }

    /// Adds one to `reads` for each record read; shared, so the count survives the drive
    /// being moved into a job and dropped.
    pub fn counting_reads(mut self, reads: std::sync::Arc<std::sync::atomic::AtomicU64>) -> Self {
        self.reads = Some(reads);
        self
    }

    /// Reports capacity and remaining bytes as 0, as st and GNU rmt do.
    pub fn capacity_unknown(mut self) -> Self {
        self.capacity_unknown = true;
        self
    }

    /// Reports an early-warning zone of `bytes` in the drive parameters (a tape with less
    /// left than that is to be taken for full before anything is written).
    pub fn early_warning_zone(mut self, bytes: u32) -> Self {
        self.early_warning_zone = Some(bytes);
        self
    }
}

impl<D: TapeDrive> TapeDrive for TestDrive<D> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn cartridge_name(&self) -> Option<String> {
        self.inner.cartridge_name()
    }
    fn max_record_len(&self) -> usize {
        self.inner.max_record_len()
    }
    fn open_notes(&self) -> Vec<String> {
        self.inner.open_notes()
    }
    fn read(&mut self, buf: &mut [u8]) -> crate::Result<usize> {
        if let Some(reads) = &self.reads {
            reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        self.inner.read(buf)
    }
    fn write(&mut self, buf: &[u8]) -> crate::Result<()> {
        self.inner.write(buf)
    }
    fn write_marks(&mut self, kind: MarkKind, count: u32, immediate: bool) -> crate::Result<()> {
        self.inner.write_marks(kind, count, immediate)
    }
    fn set_position(&mut self, to: SeekTo, immediate: bool) -> crate::Result<()> {
        self.inner.set_position(to, immediate)
    }
    fn position(&mut self, kind: PositionKind) -> crate::Result<Position> {
        self.inner.position(kind)
    }
    fn status(&mut self) -> crate::Result<()> {
        self.inner.status()
    }
    fn prepare(&mut self, op: PrepareOp, immediate: bool) -> crate::Result<()> {
        self.inner.prepare(op, immediate)
    }
    fn erase(&mut self, kind: EraseKind, immediate: bool) -> crate::Result<()> {
        self.inner.erase(kind, immediate)
    }
    fn create_partitions(
        &mut self,
        method: PartitionMethod,
        count: u32,
        size_mb: u32,
    ) -> crate::Result<()> {
        self.inner.create_partitions(method, count, size_mb)
    }
    fn drive_parameters(&mut self) -> crate::Result<DriveParameters> {
        let mut d = self.inner.drive_parameters()?;
        if let Some(zone) = self.early_warning_zone {
            d.eot_warning_zone_size = zone;
        }
        Ok(d)
    }
    fn media_parameters(&mut self) -> crate::Result<MediaParameters> {
        let mut m = self.inner.media_parameters()?;
        if self.capacity_unknown {
            m.capacity = 0;
            m.remaining = 0;
        }
        Ok(m)
    }
    fn set_drive_parameters(&mut self, params: &SetDriveParameters) -> crate::Result<()> {
        self.inner.set_drive_parameters(params)
    }
    fn set_media_parameters(&mut self, block_size: u32) -> crate::Result<()> {
        self.inner.set_media_parameters(block_size)
    }
    fn flush(&mut self) -> crate::Result<()> {
        self.inner.flush()
    }
}
