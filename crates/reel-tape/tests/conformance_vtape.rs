//! The conformance suite (`reel_tape::conformance`) on the virtual cartridge: one test per
//! rule of tape.md's "Semantics every backend must show".

use std::path::PathBuf;

use reel_tape::TapeDrive;
use reel_tape::conformance::{Fail, Harness};
use reel_tape::vtape::{Cartridge, VirtualDrive, store::DirStore};

struct VtapeHarness {
    dir: tempfile::TempDir,
    drive: Option<VirtualDrive>,
    made: u32,
}

impl VtapeHarness {
    fn new() -> Self {
        VtapeHarness {
            dir: tempfile::tempdir().expect("temp dir"),
            drive: None,
            made: 0,
        }
    }

    fn new_cartridge(&mut self, capacity: u64) -> PathBuf {
        self.made += 1;
        reel_testkit::new_cartridge(self.dir.path(), &format!("c{}", self.made), capacity)
    }
}

impl Harness for VtapeHarness {
    fn blank(&mut self, capacity: u64) -> Result<(), Fail> {
        self.drive = None;
        let path = self.new_cartridge(capacity);
        self.drive = Some(VirtualDrive::open(&path)?);
        Ok(())
    }

    fn drive(&mut self) -> &mut dyn TapeDrive {
        self.drive.as_mut().expect("blank() first")
    }

    fn write_protect(&mut self) -> Result<(), Fail> {
        let drive = self.drive.take().expect("blank() first");
        let path = drive.cartridge().expect("loaded").location();
        drop(drive);
        let store = DirStore::new(&path);
        let mut config = Cartridge::read_config(&store)?;
        config.write_protected = true;
        std::fs::write(path.join("cartridge.toml"), config.to_toml()).expect("edit cartridge.toml");
        self.drive = Some(VirtualDrive::open(&path)?);
        Ok(())
    }

    fn change_medium(&mut self) -> Result<(), Fail> {
        let path = self.new_cartridge(64 << 20);
        self.drive
            .as_mut()
            .expect("blank() first")
            .load_cartridge(&path)?;
        Ok(())
    }
}

reel_tape::conformance_tests!(VtapeHarness::new());
