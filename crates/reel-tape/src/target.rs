//! `--tape TARGET`: which drive and medium a command works on.
//!
//! | form | meaning |
//! |---|---|
//! | (none) | the default library's loaded cartridge |
//! | `vtape:NAME` | cartridge NAME of the default library |
//! | `DIR` with `cartridge.toml` (e.g. `./x.vtape`) | that cartridge |
//! | `DIR` with `library.toml` | that library's loaded cartridge |
//! | `/dev/nst0` | a Linux st drive ([`crate::st`]; use the no-rewind device) |
//! | `host:/dev/nst0`, `user@host:path` | a remote drive over rmt ([`crate::rmt::client`]): a tape, a file, or a cartridge of a `reel rmt` server |
//! | `iscsi://HOST[:PORT]/TARGET-IQN/LUN` | a SCSI tape drive over user-space iSCSI ([`crate::scsi`]) |
//! | `sg:/dev/nst0`, `/dev/sg3` | a local drive spoken to in SCSI through its sg node ([`crate::scsi`]) |

use std::path::{Path, PathBuf};

use crate::drive::{SeekTo, TapeDrive};
use crate::error::{Result, TapeError};
use crate::library::Library;
use crate::rmt::{RemoteDrive, RshConfig};
use crate::vtape::{CARTRIDGE_FILE, DRIVE_STATE_FILE, StateFile, VirtualDrive};

/// A parsed `--tape` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The loaded cartridge of a library (the default library when `None`).
    Library(Option<PathBuf>),
    /// One named cartridge of a library (the default library when `None`).
    LibraryCartridge {
        library: Option<PathBuf>,
        name: String,
    },
    /// A cartridge directory.
    Cartridge(PathBuf),
    /// A Linux st device.
    Device(PathBuf),
    /// A remote drive: `[user@]host` and the path on it.
    Remote { host: String, path: String },
    /// A drive spoken to in SCSI: over iSCSI or through a local sg node.
    Scsi(ScsiTarget),
}

/// Where a SCSI drive (or changer) is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScsiTarget {
    /// `iscsi://HOST[:PORT]/TARGET-IQN/LUN`.
    Iscsi(String),
    /// A local device whose sg node reel uses (`/dev/nst0`, `/dev/sch0`, `/dev/sg3`).
    Sg(PathBuf),
}

impl ScsiTarget {
    /// `iscsi://…`, `sg:/dev/…` or `/dev/sgN`; `None` for anything else.
    pub fn parse(spec: &str) -> Option<ScsiTarget> {
        if spec.starts_with("iscsi://") {
            return Some(ScsiTarget::Iscsi(spec.to_string()));
        }
        if let Some(p) = spec.strip_prefix("sg:") {
            return Some(ScsiTarget::Sg(PathBuf::from(p)));
        }
        let is_sg_node = spec
            .strip_prefix("/dev/sg")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        is_sg_node.then(|| ScsiTarget::Sg(PathBuf::from(spec)))
    }

    /// Opens the logical unit.
    pub fn connect(&self) -> Result<reel_scsi::Device> {
        match self {
            ScsiTarget::Iscsi(url) => crate::scsi::connect_iscsi(url),
            ScsiTarget::Sg(path) => crate::scsi::connect_sg(path),
        }
    }
}

impl std::fmt::Display for ScsiTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScsiTarget::Iscsi(url) => write!(f, "{url}"),
            ScsiTarget::Sg(p) => write!(f, "sg:{}", p.display()),
        }
    }
}

impl Target {
    /// Parses a `--tape` value (`None` = the default).
    pub fn parse(spec: Option<&str>) -> Result<Target> {
        let Some(spec) = spec.filter(|s| !s.is_empty()) else {
            return Ok(Target::Library(None));
        };
        if let Some(scsi) = ScsiTarget::parse(spec) {
            if let ScsiTarget::Iscsi(url) = &scsi {
                reel_scsi::iscsi::IscsiUrl::parse(url).map_err(TapeError::InvalidParameter)?;
            }
            return Ok(Target::Scsi(scsi));
        }
        if let Some(name) = spec.strip_prefix("vtape:") {
            Library::check_name(name)?;
            return Ok(Target::LibraryCartridge {
                library: None,
                name: name.to_string(),
            });
        }
        let path = Path::new(spec);
        if path.join(CARTRIDGE_FILE).is_file() {
            return Ok(Target::Cartridge(path.to_path_buf()));
        }
        if Library::is_library(path) {
            return Ok(Target::Library(Some(path.to_path_buf())));
        }
        if spec.starts_with("/dev/") {
            return Ok(Target::Device(path.to_path_buf()));
        }
        // host:path, as rsh/ssh targets are written (a '/' before the ':' means a local path).
        if let Some((host, rpath)) = spec.split_once(':')
            && !host.is_empty()
            && !host.contains('/')
            && !rpath.is_empty()
        {
            return Ok(Target::Remote {
                host: host.to_string(),
                path: rpath.to_string(),
            });
        }
        if path.is_dir() {
            return Err(TapeError::InvalidParameter(format!(
                "{spec} is a directory but neither a cartridge (no {CARTRIDGE_FILE}) nor a library; create one with `reel tape new`"
            )));
        }
        Err(TapeError::InvalidParameter(format!(
            "{spec}: no such cartridge, library or tape device"
        )))
    }

    /// Opens the drive this target names, at the beginning of the tape (a rewinding open,
    /// like `/dev/st0`). Drive settings, load and lock state persist between processes
    /// (see [`crate::vtape::StateFile`]).
    pub fn open(&self) -> Result<Box<dyn TapeDrive>> {
        self.open_mode(false)
    }

    /// Opens the drive this target names where the last user left the tape (a no-rewind
    /// open, like `/dev/nst0`), as `reel tape` commands do.
    pub fn open_no_rewind(&self) -> Result<Box<dyn TapeDrive>> {
        self.open_mode(true)
    }

    /// Opens a virtual target as a [`VirtualDrive`] (for the changer and drive-state
    /// operations only a virtual drive has). `Ok(None)` for real or remote drives.
    pub fn open_virtual(
        &self,
        keep_position: bool,
    ) -> Result<Option<(VirtualDrive, Option<Library>)>> {
        match self {
            Target::Library(dir) => {
                let dir = dir.clone().unwrap_or_else(Library::default_dir);
                let mut lib = Library::open_or_create(&dir)?;
                let drive = if keep_position {
                    lib.open_drive_no_rewind()?
                } else {
                    lib.open_drive()?
                };
                Ok(Some((drive, Some(lib))))
            }
            Target::LibraryCartridge { library, name } => {
                let dir = library.clone().unwrap_or_else(Library::default_dir);
                let lib = Library::open_or_create(&dir)?;
                let cdir = lib.cartridge_dir(name);
                if !cdir.is_dir() {
                    return Err(TapeError::InvalidParameter(format!(
                        "no cartridge named {name} in {}; create it with `reel tape new {name}`",
                        dir.display()
                    )));
                }
                Ok(Some((standalone(&cdir, keep_position)?, None)))
            }
            Target::Cartridge(dir) => Ok(Some((standalone(dir, keep_position)?, None))),
            Target::Device(_) | Target::Remote { .. } | Target::Scsi(_) => Ok(None),
        }
    }

    fn open_mode(&self, keep_position: bool) -> Result<Box<dyn TapeDrive>> {
        if let Some((drive, _)) = self.open_virtual(keep_position)? {
            return Ok(Box::new(drive));
        }
        let mut drive: Box<dyn TapeDrive> = match self {
            Target::Device(path) => Box::new(crate::st::open_device(path)?),
            Target::Remote { host, path } => {
                Box::new(RemoteDrive::open(host, path, &RshConfig::current())?)
            }
            Target::Scsi(t) => Box::new(crate::scsi::ScsiTape::open(t.connect()?)?),
            _ => return Err(TapeError::NotSupported("unknown target".into())),
        };
        if !keep_position {
            // A rewinding open: the tape starts at the beginning, as on /dev/st0.
            drive.set_position(SeekTo::Rewind, false)?;
        }
        Ok(drive)
    }
}

/// A cartridge used on its own: its drive state lives in the cartridge directory.
fn standalone(dir: &Path, keep_position: bool) -> Result<VirtualDrive> {
    VirtualDrive::open_with_state(
        dir,
        StateFile {
            path: dir.join(DRIVE_STATE_FILE),
            keep_position,
        },
    )
}
