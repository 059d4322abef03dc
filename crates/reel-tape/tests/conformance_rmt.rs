//! The conformance suite (`reel_tape::conformance`) on a virtual cartridge reached over
//! rmt: reel's rmt client talking to reel's rmt server (the code behind `reel rmt`),
//! in-process over a socket pair. One test per rule.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;

use reel_tape::TapeDrive;
use reel_tape::conformance::{Fail, Harness};
use reel_tape::rmt::{Connection, RemoteDrive, RemoteKind, ServerConfig, serve};
use reel_tape::vtape::{Cartridge, store::DirStore};
use reel_tape::{SeekTo, TapeError};

/// Opens `name` on an rmt server over `root` running on its own thread.
fn connect(root: &std::path::Path, name: &str) -> Result<RemoteDrive, TapeError> {
    let (client, server) = UnixStream::pair().expect("socket pair");
    let config = ServerConfig::new(root);
    std::thread::spawn(move || {
        let input = server.try_clone().expect("clone");
        serve(input, server, &config)
    });
    let conn = Connection::over(
        Box::new(client.try_clone().expect("clone")),
        Box::new(client),
        &format!("test:{name}"),
    );
    let d = RemoteDrive::open_over(conn, name)?;
    assert_eq!(
        d.kind(),
        RemoteKind::Reel,
        "a reel server speaks reel's extension"
    );
    Ok(d)
}

struct RmtHarness {
    root: tempfile::TempDir,
    drive: Option<RemoteDrive>,
    current: Option<String>,
    made: u32,
}

impl RmtHarness {
    fn new() -> Self {
        RmtHarness {
            root: tempfile::tempdir().expect("temp dir"),
            drive: None,
            current: None,
            made: 0,
        }
    }

    fn new_cartridge(&mut self, capacity: u64) -> String {
        self.made += 1;
        let name = format!("c{}", self.made);
        reel_testkit::new_cartridge(self.root.path(), &name, capacity);
        name
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.vtape"))
    }
}

impl Harness for RmtHarness {
    fn blank(&mut self, capacity: u64) -> Result<(), Fail> {
        self.drive = None;
        let name = self.new_cartridge(capacity);
        self.drive = Some(connect(self.root.path(), &name)?);
        self.current = Some(name);
        Ok(())
    }

    fn drive(&mut self) -> &mut dyn TapeDrive {
        self.drive.as_mut().expect("blank() first")
    }

    fn write_protect(&mut self) -> Result<(), Fail> {
        // Close the session (the server releases the cartridge), flip the switch, reopen.
        self.drive = None;
        let name = self.current.clone().expect("blank() first");
        let path = self.path(&name);
        let mut config = Cartridge::read_config(&DirStore::new(&path))?;
        config.write_protected = true;
        std::fs::write(path.join("cartridge.toml"), config.to_toml()).expect("edit");
        let mut d = connect(self.root.path(), &name)?;
        d.set_position(SeekTo::Rewind, false)?;
        self.drive = Some(d);
        Ok(())
    }

    fn change_medium(&mut self) -> Result<(), Fail> {
        let name = self.new_cartridge(64 << 20);
        self.drive
            .as_mut()
            .expect("blank() first")
            .load_cartridge(&name)?;
        self.current = Some(name);
        Ok(())
    }
}

reel_tape::conformance_tests!(RmtHarness::new());
