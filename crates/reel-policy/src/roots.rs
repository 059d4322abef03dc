//! Where the policy lives: three configuration directories (vendor, runtime, administrator) and
//! the state directory, all under an optional `$REEL_ROOT` prefix; and the systemd-style merge
//! of `<key>.d/` drop-in directories.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::diag::Diagnostic;

/// The level a configuration directory has. Higher levels replace files of the same name in
/// lower ones, as systemd does: administrator (`/etc`) over runtime (`/run`) over vendor
/// (`/usr/lib`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Vendor,
    Runtime,
    Admin,
}

/// The root under which reel finds its policy and keeps its state. `$REEL_ROOT` (tests,
/// chroots, images) prefixes every directory; unset, the root is `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    prefix: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots::new("/")
    }
}

impl Roots {
    /// Vendor defaults, shipped by packages.
    pub const VENDOR_DIR: &'static str = "usr/lib/reel";
    /// Runtime configuration, made at boot or by running services.
    pub const RUNTIME_DIR: &'static str = "run/reel";
    /// The administrator's configuration.
    pub const ADMIN_DIR: &'static str = "etc/reel";
    /// Where `last-restore-id` and `last-instance` are written.
    pub const STATE_DIR: &'static str = "var/lib/reel";

    /// Roots under `prefix` (`/` for the running system).
    pub fn new(prefix: impl Into<PathBuf>) -> Roots {
        Roots {
            prefix: prefix.into(),
        }
    }

    /// Roots under `$REEL_ROOT`, or `/` when it is unset or empty.
    pub fn from_env() -> Roots {
        match std::env::var_os("REEL_ROOT") {
            Some(p) if !p.is_empty() => Roots::new(p),
            _ => Roots::default(),
        }
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The configuration directories, lowest level first.
    pub fn config_dirs(&self) -> [(Level, PathBuf); 3] {
        [
            (Level::Vendor, self.prefix.join(Self::VENDOR_DIR)),
            (Level::Runtime, self.prefix.join(Self::RUNTIME_DIR)),
            (Level::Admin, self.prefix.join(Self::ADMIN_DIR)),
        ]
    }

    /// The state directory (`/var/lib/reel`).
    pub fn state_dir(&self) -> PathBuf {
        self.prefix.join(Self::STATE_DIR)
    }
}

/// What became of one file found in the configuration directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum FileState {
    /// Read and used.
    Used,
    /// A file of the same name at a higher level replaced it.
    Overridden { by: PathBuf },
    /// A mask (a symlink to /dev/null) at a higher level hides it.
    Masked { by: PathBuf },
    /// This file is a mask: it hides the files of its name at lower levels.
    Mask,
}

/// One file of the policy and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyFile {
    /// The drop-in directory or file it belongs to, e.g. `files-not-to-backup.d`, `reel.conf`.
    pub key: String,
    pub path: PathBuf,
    pub level: Level,
    #[serde(flatten)]
    pub state: FileState,
}

/// True when `path` masks: a symlink to /dev/null, or any character device (which
/// `/dev/null` is, when the link is resolved).
fn is_mask(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_symlink()
        && std::fs::read_link(path).is_ok_and(|t| t == Path::new("/dev/null"))
    {
        return true;
    }
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// The result of merging one drop-in directory name across the levels.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    /// The files to read, in lexical order of their names.
    pub effective: Vec<PathBuf>,
    /// Every file seen, with what became of it.
    pub records: Vec<PolicyFile>,
}

/// Merges `<dir>/<subdir>/` over the three levels: a name at a higher level replaces the same
/// name below; a mask removes it. `accept` filters names (e.g. `*.conf`).
pub(crate) fn merge_dropins(
    roots: &Roots,
    subdir: &str,
    accept: &dyn Fn(&OsStr) -> bool,
    diags: &mut Vec<Diagnostic>,
) -> Merged {
    let mut by_name: BTreeMap<OsString, Vec<(Level, PathBuf)>> = BTreeMap::new();
    for (level, dir) in roots.config_dirs() {
        let dir = dir.join(subdir);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOTDIR.raw_os_error()) => {
                diags.push(Diagnostic::error(&dir, None, "not a directory; ignored"));
                continue;
            }
            Err(e) => {
                diags.push(Diagnostic::error(
                    &dir,
                    None,
                    format!("cannot read the directory: {e}"),
                ));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    diags.push(Diagnostic::error(
                        &dir,
                        None,
                        format!("cannot read the directory: {e}"),
                    ));
                    break;
                }
            };
            let name = entry.file_name();
            if !accept(&name) {
                continue;
            }
            by_name.entry(name).or_default().push((level, entry.path()));
        }
    }
    let mut merged = Merged::default();
    for (_, mut found) in by_name {
        found.sort_by_key(|(level, _)| *level);
        let Some((top_level, top)) = found.pop() else {
            continue;
        };
        if is_mask(&top) {
            for (level, path) in found {
                merged.records.push(PolicyFile {
                    key: subdir.to_string(),
                    path,
                    level,
                    state: FileState::Masked { by: top.clone() },
                });
            }
            merged.records.push(PolicyFile {
                key: subdir.to_string(),
                path: top,
                level: top_level,
                state: FileState::Mask,
            });
            continue;
        }
        for (level, path) in found {
            merged.records.push(PolicyFile {
                key: subdir.to_string(),
                path,
                level,
                state: FileState::Overridden { by: top.clone() },
            });
        }
        merged.records.push(PolicyFile {
            key: subdir.to_string(),
            path: top.clone(),
            level: top_level,
            state: FileState::Used,
        });
        merged.effective.push(top);
    }
    merged
}

/// Finds a single file (`reel.conf`) at the highest level that has it.
pub(crate) fn find_main_file(roots: &Roots, name: &str) -> Merged {
    let mut found: Vec<(Level, PathBuf)> = Vec::new();
    for (level, dir) in roots.config_dirs() {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            found.push((level, path));
        }
    }
    let mut merged = Merged::default();
    let Some((top_level, top)) = found.pop() else {
        return merged;
    };
    let masked = is_mask(&top);
    for (level, path) in found {
        let state = if masked {
            FileState::Masked { by: top.clone() }
        } else {
            FileState::Overridden { by: top.clone() }
        };
        merged.records.push(PolicyFile {
            key: name.to_string(),
            path,
            level,
            state,
        });
    }
    merged.records.push(PolicyFile {
        key: name.to_string(),
        path: top.clone(),
        level: top_level,
        state: if masked {
            FileState::Mask
        } else {
            FileState::Used
        },
    });
    if !masked {
        merged.effective.push(top);
    }
    merged
}
