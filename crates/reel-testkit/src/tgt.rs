//! A `tgtd` (Debian package `tgt`) serving a virtual tape library over iSCSI on the
//! loopback address, for tests of reel's SCSI code against a target nobody here wrote.
//!
//! [`Tgt::start`] runs `tgtd -f` on a free 127.0.0.1 port with its own control channel
//! (`-C`), so tests running in parallel never share one, and configures with `tgtadm` one
//! target with a tape drive (LUN 1) and a medium changer (LUN 2) whose slots hold
//! cartridges made by `tgtimg` with the barcodes asked for. The daemon is killed when the
//! [`Tgt`] is dropped (it ignores SIGTERM while it has targets).
//!
//! Element addresses of the changer: data transfer element 1 (LUN 1), medium transport 2,
//! storage slots from 3, one import/export slot at 100.
//!
//! tgtd's start-up messages about iSER ("Failed to initialize RDMA; load kernel
//! modules?") are harmless: iSER is the RDMA transport, the TCP portal used here does not
//! need it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The target's name.
pub const IQN: &str = "iqn.2024-01.invalid.reel.test:vtl";
/// First storage slot address.
pub const FIRST_SLOT: u16 = 3;
/// The drive's data transfer element address.
pub const DRIVE_ELEMENT: u16 = 1;
/// The import/export (mail) slot address.
pub const MAIL_SLOT: u16 = 100;

/// What to put in the library.
#[derive(Debug, Clone)]
pub struct TgtConfig {
    /// Barcodes of the cartridges in the storage slots, in slot order.
    pub barcodes: Vec<String>,
    /// Storage slots (at least as many as barcodes).
    pub slots: u16,
    /// Size of each cartridge in MB (tgtimg's unit).
    pub size_mb: u32,
    /// A cartridge already in the drive, outside the changer's slots (for tests of the
    /// drive alone; the changer reports its drive empty).
    pub loaded: Option<String>,
    /// CHAP user and password the target requires.
    pub chap: Option<(String, String)>,
}

impl Default for TgtConfig {
    fn default() -> Self {
        TgtConfig {
            barcodes: vec!["REEL01L6".into(), "REEL02L6".into(), "REEL03L6".into()],
            slots: 6,
            size_mb: 16,
            loaded: None,
            chap: None,
        }
    }
}

/// A running tgtd with the library of a [`TgtConfig`].
pub struct Tgt {
    child: Child,
    dir: tempfile::TempDir,
    pub port: u16,
    control: u16,
    made: u32,
}

fn tool(name: &str) -> Option<PathBuf> {
    crate::find_on_path(name).or_else(|| {
        let p = Path::new("/usr/sbin").join(name);
        p.is_file().then_some(p)
    })
}

impl Tgt {
    /// Starts tgtd with the library `config` describes; `None` (after saying why, or
    /// failing under `REEL_REQUIRE_ALL=1`) when tgt is not installed or not usable here.
    pub fn start(config: &TgtConfig) -> Option<Tgt> {
        for t in ["tgtd", "tgtadm", "tgtimg"] {
            if tool(t).is_none() {
                crate::missing(&format!("`{t}` is not installed (Debian package tgt)"));
                return None;
            }
        }
        if !rustix::process::geteuid().is_root() {
            crate::missing("tgtd needs root (its control socket is in /var/run/tgtd)");
            return None;
        }
        let mut last = String::new();
        for _ in 0..8 {
            match Self::try_start(config) {
                Ok(t) => return Some(t),
                Err(e) => last = e,
            }
        }
        panic!("tgtd would not start: {last}");
    }

    fn try_start(config: &TgtConfig) -> Result<Tgt, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        // A free port now; another process may take it before tgtd binds, which the log
        // tells and the caller retries.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // The control channel number is a short int; derive it from the port, unique now.
        let control = 1000 + port % 30000;
        let log = std::fs::File::create(dir.path().join("tgtd.log")).map_err(|e| e.to_string())?;
        let child = Command::new(tool("tgtd").expect("checked"))
            .args(["-f", "-C", &control.to_string(), "--iscsi"])
            .arg(format!("portal=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run tgtd: {e}"))?;
        let mut t = Tgt {
            child,
            dir,
            port,
            control,
            made: 0,
        };
        t.wait_ready()?;
        t.configure(config)?;
        Ok(t)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains("failed to create/bind to portal") || log.contains("another tgtd") {
                return Err(format!(
                    "port {} or control {} taken: {log}",
                    self.port, self.control
                ));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("tgtd exited ({status}): {log}"));
            }
            let up = self
                .tgtadm_raw(&["--op", "show", "--mode", "system"])
                .is_ok()
                && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if up {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("tgtd did not come up in 10 s: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What tgtd printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tgtd.log")).unwrap_or_default()
    }

    fn tgtadm_raw(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(tool("tgtadm").expect("checked"))
            .args(["-C", &self.control.to_string(), "--lld", "iscsi"])
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "tgtadm {}: {}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Runs `tgtadm` on this daemon (its control channel and the iscsi driver added).
    pub fn tgtadm(&self, args: &[&str]) -> String {
        self.tgtadm_raw(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Updates LUN `lun` of the target with `params` (`online=0`, `readonly=1`, …).
    pub fn update_lun(&self, lun: u8, params: &str) -> Result<String, String> {
        self.tgtadm_raw(&[
            "--mode",
            "logicalunit",
            "--op",
            "update",
            "--tid",
            "1",
            "--lun",
            &lun.to_string(),
            "--params",
            params,
        ])
    }

    /// The directory of the cartridge images (the changer's media home).
    pub fn media_home(&self) -> &Path {
        self.dir.path()
    }

    /// Makes a blank cartridge image `barcode` with tgtimg in the media home.
    pub fn make_cartridge(&self, barcode: &str, size_mb: u32) -> PathBuf {
        let file = self.dir.path().join(barcode);
        let out = Command::new(tool("tgtimg").expect("checked"))
            .args(["--op", "new", "--device-type", "tape", "--type", "data"])
            .arg(format!("--barcode={barcode}"))
            .arg(format!("--size={size_mb}"))
            .arg(format!("--file={}", file.display()))
            .output()
            .expect("run tgtimg");
        assert!(
            out.status.success(),
            "tgtimg {barcode}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        file
    }

    fn configure(&mut self, c: &TgtConfig) -> Result<(), String> {
        let home = self.dir.path().to_path_buf();
        for b in &c.barcodes {
            self.make_cartridge(b, c.size_mb);
        }
        // The drive needs a backing file to be created; without a loaded cartridge it is
        // taken offline (no medium) right after.
        let drive_file = match &c.loaded {
            Some(b) => self.make_cartridge(b, c.size_mb),
            None => self.make_cartridge("EMPTY-DRIVE", 1),
        };
        let smc = home.join("smc");
        std::fs::write(&smc, [0u8; 1024]).map_err(|e| e.to_string())?;
        let run = |args: &[&str]| self.tgtadm_raw(args).map(drop);
        run(&["--op", "new", "--mode", "target", "--tid", "1", "-T", IQN])?;
        run(&[
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            "1",
            "--lun",
            "1",
            "-b",
            &drive_file.display().to_string(),
            "--device-type",
            "tape",
        ])?;
        if c.loaded.is_none() {
            self.update_lun(1, "online=0")?;
        }
        run(&[
            "--mode",
            "logicalunit",
            "--op",
            "new",
            "--tid",
            "1",
            "--lun",
            "2",
            "-b",
            &smc.display().to_string(),
            "--device-type",
            "changer",
        ])?;
        self.update_lun(2, &format!("media_home={}", home.display()))?;
        self.update_lun(
            2,
            &format!("element_type=4,start_address={DRIVE_ELEMENT},quantity=1"),
        )?;
        self.update_lun(
            2,
            &format!("element_type=4,address={DRIVE_ELEMENT},tid=1,lun=1"),
        )?;
        self.update_lun(2, "element_type=1,start_address=2,quantity=1")?;
        self.update_lun(
            2,
            &format!(
                "element_type=2,start_address={FIRST_SLOT},quantity={}",
                c.slots.max(c.barcodes.len() as u16)
            ),
        )?;
        self.update_lun(
            2,
            &format!("element_type=3,start_address={MAIL_SLOT},quantity=1"),
        )?;
        for (i, b) in c.barcodes.iter().enumerate() {
            let addr = FIRST_SLOT + i as u16;
            self.update_lun(
                2,
                &format!("element_type=2,address={addr},barcode={b},sides=1"),
            )?;
        }
        if let Some((user, password)) = &c.chap {
            run(&[
                "--mode",
                "account",
                "--op",
                "new",
                "--user",
                user,
                "--password",
                password,
            ])?;
            run(&[
                "--mode", "account", "--op", "bind", "--tid", "1", "--user", user,
            ])?;
        }
        run(&[
            "--op", "bind", "--mode", "target", "--tid", "1", "-I", "ALL",
        ])?;
        Ok(())
    }

    /// `iscsi://127.0.0.1:PORT/IQN/LUN`.
    pub fn url(&self, lun: u8) -> String {
        format!("iscsi://127.0.0.1:{}/{IQN}/{lun}", self.port)
    }

    /// The tape drive (LUN 1).
    pub fn drive_url(&self) -> String {
        self.url(1)
    }

    /// The changer (LUN 2).
    pub fn changer_url(&self) -> String {
        self.url(2)
    }

    /// Puts a fresh blank cartridge in the drive, outside the changer (the drive's tape is
    /// swapped behind any session: reopen the drive afterwards). Returns its barcode.
    pub fn load_blank(&mut self, size_mb: u32) -> String {
        self.made += 1;
        let barcode = format!("BLANK{:03}", self.made);
        let file = self.make_cartridge(&barcode, size_mb);
        // Allow removal first, in case a test left it prevented; offline; then the new path
        // (which brings it online).
        self.update_lun(1, "online=0")
            .unwrap_or_else(|e| panic!("{e}"));
        self.update_lun(1, "readonly=0")
            .unwrap_or_else(|e| panic!("{e}"));
        self.update_lun(1, &format!("path={}", file.display()))
            .unwrap_or_else(|e| panic!("{e}"));
        barcode
    }

    /// Kills the daemon now (as a crash would), leaving the [`Tgt`] to clean up.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tgt {
    fn drop(&mut self) {
        self.kill();
        for suffix in ["", ".lock"] {
            let _ = std::fs::remove_file(format!("/var/run/tgtd/socket.{}{suffix}", self.control));
        }
    }
}
