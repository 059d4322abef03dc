//! Boot registration: the systemd counterpart of Session Manager's `SetupExecute`.
//!
//! [`register`] installs a template unit `reel-delayed@.service` and enables the instance for
//! one operation file, `reel-delayed@<escaped path>.service`, in `sysinit.target.wants`. The
//! instance name is the file's path escaped as `systemd-escape --path` does (a space becomes
//! `\x20`, where Windows wrote `%20`), and the unit gets it back with `%f`. The unit runs
//! early in the next boot — `DefaultDependencies=no`, after `local-fs.target`, before
//! `sysinit.target`, only if the file exists (`ConditionPathExists=%f`) — and removes its own
//! enablement when it has run (`ExecStopPost=… delayed unregister %f`), as `SetupExecute`
//! runs once.
//!
//! With a root directory (`--root /mnt/restored`), everything is written under it, as Windows
//! writes `SetupExecute` into the recovered registry hive: the paths inside the units are the
//! ones the restored system will see when it boots.

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use crate::error::{DelayedError, Result};
use crate::fsutil;

/// The template unit's name.
pub const TEMPLATE: &str = "reel-delayed@.service";
/// The target whose `.wants` directory enables an instance.
pub const WANTED_BY: &str = "sysinit.target";
/// Where units are installed, relative to the root.
pub const UNIT_DIR: &str = "etc/systemd/system";
/// The first line of every unit reel writes; a file without it is never overwritten.
pub const MARKER: &str = "# Written by reel (`reel delayed register`).";

const MAX_UNIT_NAME: usize = 255;

/// What to register.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The root of the system that will boot (`/` for this one).
    pub root: PathBuf,
    /// The operation file's path as that system sees it (absolute).
    pub operation_file: PathBuf,
    /// The `reel` binary as that system sees it (absolute).
    pub reel_binary: PathBuf,
    /// Extra arguments for `reel delayed run` (e.g. `--state-dir`, `--map`), written in a
    /// drop-in for this instance only.
    pub run_args: Vec<String>,
}

/// What [`register`] wrote.
#[derive(Debug, Clone)]
pub struct Registered {
    pub unit: String,
    pub template: PathBuf,
    pub enablement: PathBuf,
    pub dropin: Option<PathBuf>,
}

/// `systemd-escape --path`: `/var/lib/reel/ops file` → `var-lib-reel-ops\x20file`.
pub fn escape_path(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| DelayedError::Register(format!("{} is not valid UTF-8", path.display())))?;
    if !text.starts_with('/') {
        return Err(DelayedError::Register(format!(
            "{text:?} is not an absolute path"
        )));
    }
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            _ => {
                return Err(DelayedError::Register(format!(
                    "{text:?} has '.' or '..' components; give the plain absolute path"
                )));
            }
        }
    }
    if parts.is_empty() {
        return Ok("-".to_string());
    }
    let joined = parts.join("/");
    let mut out = String::with_capacity(joined.len());
    for (i, b) in joined.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.') => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    Ok(out)
}

/// The instance unit for an operation file: `reel-delayed@<escaped path>.service`.
pub fn unit_name(operation_file: &Path) -> Result<String> {
    let name = format!("reel-delayed@{}.service", escape_path(operation_file)?);
    if name.len() > MAX_UNIT_NAME {
        return Err(DelayedError::Register(format!(
            "the unit name for {} would be {} characters, more than systemd's {MAX_UNIT_NAME}; use a shorter path for the operation file",
            operation_file.display(),
            name.len()
        )));
    }
    Ok(name)
}

/// One word of an `ExecStart=` line: double-quoted, with `\`, `"` escaped and `%`, `$`
/// doubled so systemd takes it literally.
pub fn exec_word(word: &str) -> Result<String> {
    if word.chars().any(char::is_control) {
        return Err(DelayedError::Register(format!(
            "{word:?} contains control characters, which a unit file cannot hold"
        )));
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

fn path_word(path: &Path) -> Result<String> {
    let text = path
        .to_str()
        .ok_or_else(|| DelayedError::Register(format!("{} is not valid UTF-8", path.display())))?;
    exec_word(text)
}

/// The template unit's text.
pub fn template_text(reel_binary: &Path) -> Result<String> {
    let reel = path_word(reel_binary)?;
    Ok(format!(
        "{MARKER}
# One instance per operation file: reel-delayed@<systemd-escape --path FILE>.service.
# The counterpart of Windows' SetupExecute entry for srdelayed.exe.

[Unit]
Description=reel: delayed file operations in %f (Srdelayed)
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target shutdown.target
Conflicts=shutdown.target
ConditionPathExists=%f
RequiresMountsFor=%f

[Service]
Type=oneshot
ExecStart={reel} delayed run %f
ExecStopPost=-{reel} delayed unregister %f
StandardOutput=journal+console
StandardError=journal+console
TimeoutStartSec=1h

[Install]
WantedBy={WANTED_BY}
"
    ))
}

fn under_root(root: &Path, rel: &str) -> PathBuf {
    root.join(rel)
}

fn write_unit_file(path: &Path, text: &str) -> Result<()> {
    match std::fs::read_to_string(path) {
        Ok(old) if old == text => return Ok(()),
        Ok(old) if !old.starts_with(MARKER) => {
            return Err(DelayedError::Register(format!(
                "{} exists and was not written by reel; remove it or move it aside first",
                path.display()
            )));
        }
        _ => {}
    }
    let dir = fsutil::parent_dir(path);
    std::fs::create_dir_all(dir).map_err(|e| DelayedError::io("cannot create", dir, e))?;
    fsutil::replace_atomically(
        path,
        text.as_bytes(),
        Some(fsutil::Ownership {
            mode: 0o644,
            uid: 0,
            gid: 0,
        }),
    )
}

/// Installs the template (if needed) and enables the instance for the operation file.
pub fn register(reg: &Registration) -> Result<Registered> {
    for (what, p) in [
        ("operation file", &reg.operation_file),
        ("reel binary", &reg.reel_binary),
    ] {
        if !p.is_absolute() {
            return Err(DelayedError::Register(format!(
                "the {what} path {} must be absolute (as the booting system sees it)",
                p.display()
            )));
        }
    }
    let unit = unit_name(&reg.operation_file)?;
    let unit_dir = under_root(&reg.root, UNIT_DIR);
    let template = unit_dir.join(TEMPLATE);
    write_unit_file(&template, &template_text(&reg.reel_binary)?)?;

    let dropin_dir = unit_dir.join(format!("{unit}.d"));
    let dropin = dropin_dir.join("50-reel-run.conf");
    let dropin = if reg.run_args.is_empty() {
        remove_if_ours(&dropin)?;
        let _ = std::fs::remove_dir(&dropin_dir);
        None
    } else {
        let mut line = format!("{} delayed run", path_word(&reg.reel_binary)?);
        for a in &reg.run_args {
            line.push(' ');
            line.push_str(&exec_word(a)?);
        }
        let text = format!(
            "{MARKER}\n# Options for this operation file only.\n[Service]\nExecStart=\nExecStart={line} %f\n"
        );
        write_unit_file(&dropin, &text)?;
        Some(dropin)
    };

    let wants = unit_dir.join(format!("{WANTED_BY}.wants"));
    std::fs::create_dir_all(&wants).map_err(|e| DelayedError::io("cannot create", &wants, e))?;
    let link = wants.join(&unit);
    let link_target = PathBuf::from("..").join(TEMPLATE);
    match std::fs::read_link(&link) {
        Ok(t) if t == link_target => {}
        Ok(_) => {
            std::fs::remove_file(&link)
                .map_err(|e| DelayedError::io("cannot replace", &link, e))?;
            make_link(&link_target, &link)?;
        }
        Err(_) => make_link(&link_target, &link)?,
    }
    fsutil::fsync_dir(&wants).map_err(|e| DelayedError::io("cannot sync", &wants, e))?;
    Ok(Registered {
        unit,
        template,
        enablement: link,
        dropin,
    })
}

fn make_link(target: &Path, link: &Path) -> Result<()> {
    std::os::unix::fs::symlink(target, link).map_err(|e| DelayedError::io("cannot create", link, e))
}

fn remove_if_ours(path: &Path) -> Result<bool> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.starts_with(MARKER) => {
            std::fs::remove_file(path).map_err(|e| DelayedError::io("cannot remove", path, e))?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Disables the instance for an operation file (its enablement and drop-in); the template
/// stays for other files. Returns false when it was not registered.
pub fn unregister(root: &Path, operation_file: &Path) -> Result<bool> {
    let unit = unit_name(operation_file)?;
    let unit_dir = under_root(root, UNIT_DIR);
    let link = unit_dir.join(format!("{WANTED_BY}.wants")).join(&unit);
    let was = match std::fs::symlink_metadata(&link) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(&link).map_err(|e| DelayedError::io("cannot remove", &link, e))?;
            let _ = fsutil::fsync_dir(fsutil::parent_dir(&link));
            true
        }
        Ok(_) => {
            return Err(DelayedError::Register(format!(
                "{} is not a symlink; leaving it alone",
                link.display()
            )));
        }
        Err(_) => false,
    };
    let dropin_dir = unit_dir.join(format!("{unit}.d"));
    remove_if_ours(&dropin_dir.join("50-reel-run.conf"))?;
    let _ = std::fs::remove_dir(&dropin_dir);
    Ok(was)
}

/// Whether the instance for an operation file is enabled under `root`.
pub fn is_registered(root: &Path, operation_file: &Path) -> Result<bool> {
    let unit = unit_name(operation_file)?;
    let link = under_root(root, UNIT_DIR)
        .join(format!("{WANTED_BY}.wants"))
        .join(unit);
    Ok(std::fs::symlink_metadata(link).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_like_systemd() {
        let e = |p: &str| escape_path(Path::new(p)).unwrap();
        assert_eq!(e("/var/lib/reel/ops"), "var-lib-reel-ops");
        assert_eq!(e("/var/lib/reel/ops file"), "var-lib-reel-ops\\x20file");
        assert_eq!(e("/a-b/.hidden"), "a\\x2db-.hidden");
        assert_eq!(e("/.x"), "\\x2ex");
        assert_eq!(e("/"), "-");
        assert_eq!(e("/a//b/"), "a-b");
        assert_eq!(e("/é"), "\\xc3\\xa9");
        assert!(escape_path(Path::new("rel")).is_err());
        assert!(escape_path(Path::new("/a/../b")).is_err());
    }

    #[test]
    fn exec_words() {
        assert_eq!(exec_word("/usr/bin/reel").unwrap(), "\"/usr/bin/reel\"");
        assert_eq!(
            exec_word("/opt/my reel/%x$y\"\\").unwrap(),
            "\"/opt/my reel/%%x$$y\\\"\\\\\""
        );
        assert!(exec_word("a\nb").is_err());
    }
}
