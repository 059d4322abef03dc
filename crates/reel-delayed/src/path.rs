//! Paths in operation files (`\??\…`) and how they become Linux paths.
//!
//! A path field is `\??\` followed by an absolute path. reel writes Linux paths
//! (`\??\/usr/lib/x.so`). Windows-authored files hold drive paths (`\??\C:\temp\a.dll`) or
//! volume-GUID paths (`\??\Volume{26a21bda-…}\temp\a.dll`); a [`PathMap`] (`--map C:=/mnt/c`,
//! `--map Volume{…}=/mnt/v`) says where those volumes are mounted. Windows paths are used as
//! written: no case folding, components joined with `/` under the mapped directory. A
//! trailing `\` (the Windows documentation's own volume-GUID examples have one) is ignored.
//! `.` and `..` components are refused, so a mapped path can never leave its mount.

use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

/// The prefix every path field starts with.
pub const NT_PREFIX: &str = r"\??\";

/// Why a path cannot be written to, or carried out from, an operation file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{0:?} is not an absolute path")]
    NotAbsolute(String),
    #[error("{0:?} is not valid UTF-8; an operation file holds UTF-16 text")]
    NotUtf8(String),
    #[error("{0:?} contains a NUL character")]
    ContainsNul(String),
    #[error(
        "{path:?} has a {component:?} component; write the path without '.', '..' or empty components"
    )]
    NotNormal { path: String, component: String },
    #[error("{0:?} names a root directory, which cannot be moved, deleted or renamed")]
    Root(String),
    #[error("{path:?} is on {volume}, which has no --map (add e.g. --map {volume}=/mnt/windows)")]
    Unmapped { path: String, volume: String },
    #[error(
        "{0:?} is neither a Linux path (/…), a drive path (C:\\…) nor a volume-GUID path (Volume{{…}}\\…)"
    )]
    Unsupported(String),
    #[error("bad --map {0:?}: {1}")]
    BadMap(String, &'static str),
}

/// A path field's text after `\??\`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct NtPath(String);

/// What kind of path an [`NtPath`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind<'a> {
    /// `/…`: a Linux path, used as is.
    Linux(&'a str),
    /// `C:\…`: a drive letter (upper case) and the rest after `C:`.
    Drive { letter: char, rest: &'a str },
    /// `Volume{GUID}\…`: the GUID (as written, without braces) and the rest after `}`.
    Volume { guid: &'a str, rest: &'a str },
    /// Anything else (UNC paths, relative paths, device paths).
    Other(&'a str),
}

impl NtPath {
    /// The path of a field, if the field starts with `\??\` and has something after it.
    pub fn from_field(field: &str) -> Option<NtPath> {
        let rest = field.strip_prefix(NT_PREFIX)?;
        if rest.is_empty() {
            None
        } else {
            Some(NtPath(rest.to_string()))
        }
    }

    /// The text after `\??\` as is (no checks); used by the parser's round trip.
    pub fn from_raw(rest: impl Into<String>) -> NtPath {
        NtPath(rest.into())
    }

    /// The field text: `\??\` and the path.
    pub fn to_field(&self) -> String {
        format!("{NT_PREFIX}{}", self.0)
    }

    /// The text after `\??\`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A Linux path for an operation file: absolute, UTF-8, without `.`/`..`/empty
    /// components or a trailing `/`.
    pub fn from_linux(path: &Path) -> Result<NtPath, PathError> {
        let text = path
            .to_str()
            .ok_or_else(|| PathError::NotUtf8(path.to_string_lossy().into_owned()))?;
        check_linux(text)?;
        Ok(NtPath(text.to_string()))
    }

    /// A path as a user types it: `\??\…` (taken as is), `\\?\…` (the Win32 long form, whose
    /// prefix is swapped for `\??\`), `C:\…`, `Volume{…}\…`, or a Linux path (made absolute
    /// against the current directory, `.` and `..` resolved lexically).
    pub fn from_user(arg: &str) -> Result<NtPath, PathError> {
        if arg.contains('\0') {
            return Err(PathError::ContainsNul(arg.to_string()));
        }
        if let Some(p) = NtPath::from_field(arg) {
            return Ok(p);
        }
        if let Some(rest) = arg.strip_prefix(r"\\?\")
            && !rest.is_empty()
        {
            return Ok(NtPath(rest.to_string()));
        }
        let p = NtPath(arg.to_string());
        match p.kind() {
            PathKind::Drive { .. } | PathKind::Volume { .. } => return Ok(p),
            PathKind::Linux(_) | PathKind::Other(_) => {}
        }
        if arg.starts_with('\\') {
            return Err(PathError::Unsupported(arg.to_string()));
        }
        let absolute =
            std::path::absolute(arg).map_err(|_| PathError::NotAbsolute(arg.to_string()))?;
        let mut clean = PathBuf::from("/");
        for c in absolute.components() {
            match c {
                Component::Normal(n) => clean.push(n),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            }
        }
        NtPath::from_linux(&clean)
    }

    /// What kind of path this is.
    pub fn kind(&self) -> PathKind<'_> {
        let s = self.0.as_str();
        if s.starts_with('/') {
            return PathKind::Linux(s);
        }
        let b = s.as_bytes();
        if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
            let rest = &s[2..];
            if rest.is_empty() || rest.starts_with('\\') {
                return PathKind::Drive {
                    letter: (b[0] as char).to_ascii_uppercase(),
                    rest,
                };
            }
        }
        if b.len() >= 8
            && b[..7].eq_ignore_ascii_case(b"volume{")
            && let Some(close) = s[7..].find('}')
        {
            let guid = &s[7..7 + close];
            let rest = &s[7 + close + 1..];
            if is_guid(guid) && (rest.is_empty() || rest.starts_with('\\')) {
                return PathKind::Volume { guid, rest };
            }
        }
        PathKind::Other(s)
    }

    /// A key for comparing two paths: Windows paths compare case-insensitively and ignore
    /// empty components (as Windows does), Linux paths compare exactly.
    pub fn compare_key(&self) -> Vec<String> {
        match self.kind() {
            PathKind::Linux(s) => std::iter::once("/".to_string())
                .chain(s.split('/').filter(|c| !c.is_empty()).map(str::to_string))
                .collect(),
            PathKind::Drive { letter, rest } => std::iter::once(format!("{letter}:"))
                .chain(windows_components(rest).map(|c| c.to_lowercase()))
                .collect(),
            PathKind::Volume { guid, rest } => {
                std::iter::once(format!("volume{{{}}}", guid.to_ascii_lowercase()))
                    .chain(windows_components(rest).map(|c| c.to_lowercase()))
                    .collect()
            }
            PathKind::Other(s) => vec![s.to_lowercase()],
        }
    }

    /// True when `self` lies strictly inside directory `dir`.
    pub fn is_inside(&self, dir: &NtPath) -> bool {
        let a = self.compare_key();
        let d = dir.compare_key();
        a.len() > d.len() && a[..d.len()] == d[..]
    }
}

impl fmt::Display for NtPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{NT_PREFIX}{}", self.0)
    }
}

fn windows_components(rest: &str) -> impl Iterator<Item = &str> {
    rest.split('\\').filter(|c| !c.is_empty())
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn check_linux(text: &str) -> Result<(), PathError> {
    if text.contains('\0') {
        return Err(PathError::ContainsNul(text.to_string()));
    }
    let Some(rest) = text.strip_prefix('/') else {
        return Err(PathError::NotAbsolute(text.to_string()));
    };
    if rest.is_empty() {
        return Err(PathError::Root(text.to_string()));
    }
    for c in rest.split('/') {
        if c.is_empty() || c == "." || c == ".." {
            return Err(PathError::NotNormal {
                path: text.to_string(),
                component: c.to_string(),
            });
        }
    }
    Ok(())
}

/// Which volume a `--map` entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MapKey {
    /// A drive letter, upper case.
    Drive(char),
    /// A volume GUID, lower case, without braces.
    Volume(String),
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapKey::Drive(c) => write!(f, "{c}:"),
            MapKey::Volume(g) => write!(f, "Volume{{{g}}}"),
        }
    }
}

/// One `--map` entry: `C:=/mnt/c` or `Volume{GUID}=/mnt/v`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapEntry {
    pub key: MapKey,
    pub dir: PathBuf,
}

impl FromStr for MapEntry {
    type Err = PathError;

    fn from_str(text: &str) -> Result<MapEntry, PathError> {
        let bad = |why| PathError::BadMap(text.to_string(), why);
        let (volume, dir) = text
            .split_once('=')
            .ok_or_else(|| bad("expected VOLUME=DIR, e.g. C:=/mnt/c"))?;
        let volume = volume
            .strip_prefix(r"\\?\")
            .or_else(|| volume.strip_prefix(NT_PREFIX))
            .unwrap_or(volume);
        let volume = volume.strip_suffix('\\').unwrap_or(volume);
        let probe = NtPath(volume.to_string());
        let key = match probe.kind() {
            PathKind::Drive { letter, rest: "" } => MapKey::Drive(letter),
            PathKind::Volume { guid, rest: "" } => MapKey::Volume(guid.to_ascii_lowercase()),
            _ => return Err(bad("the volume must be a drive (C:) or Volume{GUID}")),
        };
        let dir = PathBuf::from(dir);
        if !dir.is_absolute() {
            return Err(bad("the directory must be an absolute Linux path"));
        }
        Ok(MapEntry { key, dir })
    }
}

impl fmt::Display for MapEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.key, self.dir.display())
    }
}

/// Where Windows volumes are mounted, for carrying out Windows-authored files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathMap {
    entries: Vec<MapEntry>,
}

impl PathMap {
    pub fn new() -> PathMap {
        PathMap::default()
    }

    /// Adds (or replaces) the mapping of one volume.
    pub fn insert(&mut self, entry: MapEntry) {
        self.entries.retain(|e| e.key != entry.key);
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[MapEntry] {
        &self.entries
    }

    fn dir_for(&self, key: &MapKey) -> Option<&Path> {
        self.entries
            .iter()
            .find(|e| &e.key == key)
            .map(|e| e.dir.as_path())
    }

    /// The Linux path an operation-file path names.
    pub fn resolve(&self, path: &NtPath) -> Result<PathBuf, PathError> {
        let shown = path.to_field();
        let (key, rest) = match path.kind() {
            PathKind::Linux(s) => {
                check_linux(s)?;
                return Ok(PathBuf::from(s));
            }
            PathKind::Drive { letter, rest } => (MapKey::Drive(letter), rest),
            PathKind::Volume { guid, rest } => (MapKey::Volume(guid.to_ascii_lowercase()), rest),
            PathKind::Other(_) => return Err(PathError::Unsupported(shown)),
        };
        let dir = self.dir_for(&key).ok_or_else(|| PathError::Unmapped {
            path: shown.clone(),
            volume: key.to_string(),
        })?;
        let mut out = dir.to_path_buf();
        let mut any = false;
        for c in windows_components(rest) {
            // `/` would split a Windows name into two Linux names; `:` would name an NTFS
            // alternate data stream, which a path cannot reach on Linux.
            if c == "." || c == ".." || c.contains('/') || c.contains(':') {
                return Err(PathError::NotNormal {
                    path: shown,
                    component: c.to_string(),
                });
            }
            out.push(c);
            any = true;
        }
        if !any {
            return Err(PathError::Root(shown));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "26a21bda-a627-11d7-9931-806e6f6e6963";

    fn map() -> PathMap {
        let mut m = PathMap::new();
        m.insert("c:=/mnt/c".parse().unwrap());
        m.insert(
            format!(r"\\?\Volume{{{}}}\=/mnt/v", GUID.to_uppercase())
                .parse()
                .unwrap(),
        );
        m
    }

    #[test]
    fn kinds() {
        let p = NtPath::from_field(r"\??\C:\Stage\a.dll").unwrap();
        assert_eq!(
            p.kind(),
            PathKind::Drive {
                letter: 'C',
                rest: r"\Stage\a.dll"
            }
        );
        let v = NtPath::from_field(&format!(r"\??\Volume{{{GUID}}}\temp\b.dll\")).unwrap();
        assert!(matches!(v.kind(), PathKind::Volume { guid, .. } if guid == GUID));
        assert!(matches!(
            NtPath::from_raw("/usr/lib/x.so").kind(),
            PathKind::Linux(_)
        ));
        assert!(matches!(
            NtPath::from_raw(r"UNC\srv\share\x").kind(),
            PathKind::Other(_)
        ));
        assert!(NtPath::from_field(r"\??\").is_none());
        assert!(NtPath::from_field(r"C:\x").is_none());
    }

    #[test]
    fn mapping() {
        let m = map();
        assert_eq!(
            m.resolve(&NtPath::from_raw(r"C:\Stage\a.dll")).unwrap(),
            PathBuf::from("/mnt/c/Stage/a.dll")
        );
        assert_eq!(
            m.resolve(&NtPath::from_raw(format!(r"Volume{{{GUID}}}\temp\b.dll\")))
                .unwrap(),
            PathBuf::from("/mnt/v/temp/b.dll")
        );
        assert!(matches!(
            m.resolve(&NtPath::from_raw(r"D:\x")),
            Err(PathError::Unmapped { .. })
        ));
        assert!(matches!(
            m.resolve(&NtPath::from_raw(r"C:\a\..\..\etc\passwd")),
            Err(PathError::NotNormal { .. })
        ));
        assert!(matches!(
            m.resolve(&NtPath::from_raw(r"C:\")),
            Err(PathError::Root(_))
        ));
        assert!(matches!(
            m.resolve(&NtPath::from_raw(r"C:\x\file:stream")),
            Err(PathError::NotNormal { .. })
        ));
        assert!(matches!(
            m.resolve(&NtPath::from_raw("/a//b")),
            Err(PathError::NotNormal { .. })
        ));
        assert!(m.resolve(&NtPath::from_raw("relative")).is_err());
    }

    #[test]
    fn user_forms() {
        assert_eq!(
            NtPath::from_user(r"\\?\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\x")
                .unwrap()
                .to_field(),
            format!(r"\??\Volume{{{GUID}}}\x")
        );
        assert_eq!(
            NtPath::from_user(r"C:\temp\a.dll").unwrap().to_field(),
            r"\??\C:\temp\a.dll"
        );
        assert_eq!(
            NtPath::from_user("/usr/./lib/../lib/x.so")
                .unwrap()
                .as_str(),
            "/usr/lib/x.so"
        );
        assert!(NtPath::from_user("/").is_err());
    }

    #[test]
    fn comparing() {
        let a = NtPath::from_raw(r"C:\Temp\A.dll");
        let b = NtPath::from_raw(r"c:\temp\\a.DLL");
        assert_eq!(a.compare_key(), b.compare_key());
        assert!(a.is_inside(&NtPath::from_raw(r"C:\TEMP")));
        assert!(!NtPath::from_raw("/a/B").is_inside(&NtPath::from_raw("/a/b")));
        assert!(NtPath::from_raw("/a/b/c").is_inside(&NtPath::from_raw("/a/b")));
        assert!(!NtPath::from_raw("/a/bc").is_inside(&NtPath::from_raw("/a/b")));
    }
}
