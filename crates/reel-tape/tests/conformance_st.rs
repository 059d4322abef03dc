//! The conformance suite on a real Linux st drive, when `REEL_TEST_ST_DEVICE` names one
//! (e.g. `/dev/nst0`). It ERASES the tape in that drive.
//!
//! This is an explicit opt-in: without the variable the test says that no real drive was
//! tested and passes (CI has no tape drive; the st mapping is tested there with a scripted
//! fake, `reel_tape::st` unit tests, and over rmt against the server's st emulation).
//! Checks a real drive cannot set up (write-protecting a cartridge, changing media, a
//! 4 MiB tape) are reported as not run; a broken rule fails the test.

use std::path::PathBuf;

use reel_tape::conformance::{Fail, Harness, RULES};
use reel_tape::st::{DeviceMtio, StDrive, open_device};
use reel_tape::{EraseKind, SeekTo, TapeDrive};

struct StHarness {
    path: PathBuf,
    drive: Option<StDrive<DeviceMtio>>,
}

impl Harness for StHarness {
    fn blank(&mut self, _capacity: u64) -> Result<(), Fail> {
        self.drive = None;
        let mut d = open_device(&self.path)?;
        d.set_position(SeekTo::Rewind, false)?;
        d.erase(EraseKind::Short, false)?;
        d.set_media_parameters(0)?;
        self.drive = Some(d);
        Ok(())
    }

    fn drive(&mut self) -> &mut dyn TapeDrive {
        self.drive.as_mut().expect("blank() first")
    }

    fn write_protect(&mut self) -> Result<(), Fail> {
        Err(Fail::Skipped(
            "a real cartridge cannot be write-protected from software".into(),
        ))
    }

    fn change_medium(&mut self) -> Result<(), Fail> {
        Err(Fail::Skipped(
            "changing the cartridge in a real drive needs a changer".into(),
        ))
    }
}

// Ignored (reported as such, never counted as passed) because no CI machine has a tape
// drive; the st mapping is tested with a scripted fake (reel_tape::st unit tests) and over
// rmt (tests/rmt_st.rs). Run by hand against a drive whose tape may be erased.
#[test]
#[ignore = "needs a real tape drive: REEL_TEST_ST_DEVICE=/dev/nstN cargo test -p reel-tape --test conformance_st -- --ignored"]
fn st_drive_conformance() {
    let Some(device) = std::env::var_os("REEL_TEST_ST_DEVICE").filter(|v| !v.is_empty()) else {
        panic!(
            "set REEL_TEST_ST_DEVICE=/dev/nstN to run the conformance suite against a real \
             drive (it erases the tape)"
        );
    };
    let mut h = StHarness {
        path: PathBuf::from(device),
        drive: None,
    };
    let mut broken = Vec::new();
    for rule in RULES {
        match (rule.check)(&mut h) {
            Ok(()) => eprintln!("passed: {}", rule.name),
            Err(Fail::Skipped(why)) => eprintln!("NOT RUN: {}: {why}", rule.name),
            Err(Fail::Broken(why)) => {
                eprintln!("BROKEN: {}: {why}", rule.name);
                broken.push(format!("{}: {}\n  {why}", rule.name, rule.rule));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "rules broken on {:?}:\n{}",
        h.path,
        broken.join("\n")
    );
}
