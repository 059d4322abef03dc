//! The `user.reel.efs` marker: what makes a file (or directory) an encrypted one.
//!
//! # Layout (version 1, all integers big-endian)
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `rEFS` |
//! | 4 | 1 | layout version, 1 |
//! | 5 | 1 | kind: 1 = file (an age v1 file), 2 = directory |
//! | 6 | 2 | flags, 0 (reserved; a reader refuses unknown bits) |
//! | 8 | 8 | plaintext size in bytes (0 for a directory) |
//! | 16 | 2 | number of recipient entries N (at most 100) |
//! | 18 | … | N entries |
//!
//! Each entry:
//!
//! | size | field |
//! |---|---|
//! | 1 | role: 1 = user, 2 = recovery (the policy's recovery recipient) |
//! | 2 | index of the entry's stanza in the age header, 0xFFFF = not known |
//! | 1 | length R of the recipient (1..=255) |
//! | R | the recipient, `age1…` (ASCII) |
//! | 1 | length L of the name (0..=255) |
//! | L | a name for people (UTF-8), e.g. the user's login |
//!
//! The value ends exactly after the last entry. The entries say who a stanza is for: an X25519
//! stanza does not name its recipient, so without them `status` could count keys but not name
//! them. They are public keys and names only; nothing in the marker is secret.
//!
//! For a backup archive the marker travels as a pax value: [`Marker::to_pax_value`] (base64 of
//! the bytes above) and [`Marker::from_pax_value`].

use std::fs::File;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use xattr::FileExt;

use crate::error::{EfsError, Result};

/// The extended attribute that marks an encrypted file or directory.
pub const XATTR_NAME: &str = "user.reel.efs";
/// The marker's magic bytes.
pub const MARKER_MAGIC: &[u8; 4] = b"rEFS";
/// The marker layout this crate writes.
pub const MARKER_VERSION: u8 = 1;
/// Most recipient entries a marker holds (keeps it well under the 64 KiB xattr limit).
pub const MAX_ENTRIES: usize = 100;
/// Stanza index meaning "not known".
pub const UNKNOWN_STANZA: u16 = 0xFFFF;

/// A file or a directory marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file whose bytes are an age v1 file.
    File,
    /// A directory whose contents `encrypt -r` encrypts.
    Directory,
}

impl Kind {
    pub(crate) fn code(self) -> u8 {
        match self {
            Kind::File => 1,
            Kind::Directory => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<Kind> {
        match code {
            1 => Some(Kind::File),
            2 => Some(Kind::Directory),
            _ => None,
        }
    }
}

/// Why a recipient can open the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A user the file is shared with (the owner included).
    User,
    /// The recovery recipient from policy (`efs-recovery`).
    Recovery,
}

/// One recipient recorded in the marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub role: Role,
    /// Index of its stanza in the age header; `None` when not known (a file made elsewhere).
    pub stanza: Option<u16>,
    /// The `age1…` recipient.
    pub recipient: String,
    /// A name for people (may be empty).
    pub name: String,
}

/// The decoded `user.reel.efs` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    pub kind: Kind,
    /// Plaintext size in bytes (0 for a directory).
    pub plaintext_size: u64,
    pub entries: Vec<Entry>,
}

/// A problem in marker bytes, at an offset within them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("marker byte {offset}: {what}")]
pub struct MarkerError {
    pub offset: u64,
    pub what: String,
}

impl MarkerError {
    fn at(offset: usize, what: impl Into<String>) -> MarkerError {
        MarkerError {
            offset: offset as u64,
            what: what.into(),
        }
    }

    pub(crate) fn for_path(self, path: &Path) -> EfsError {
        EfsError::BadMarker {
            path: path.to_path_buf(),
            offset: self.offset,
            what: self.what,
        }
    }
}

impl Marker {
    /// A marker for a file of `plaintext_size` bytes.
    pub fn file(plaintext_size: u64, entries: Vec<Entry>) -> Marker {
        Marker {
            kind: Kind::File,
            plaintext_size,
            entries,
        }
    }

    /// A directory marker.
    pub fn directory(entries: Vec<Entry>) -> Marker {
        Marker {
            kind: Kind::Directory,
            plaintext_size: 0,
            entries,
        }
    }

    /// The marker's bytes (the xattr value). Fails only when an entry does not fit the layout.
    pub fn encode(&self) -> std::result::Result<Vec<u8>, MarkerError> {
        if self.entries.len() > MAX_ENTRIES {
            return Err(MarkerError::at(
                16,
                format!("more than {MAX_ENTRIES} recipients"),
            ));
        }
        let mut out = Vec::with_capacity(18 + self.entries.len() * 80);
        out.extend_from_slice(MARKER_MAGIC);
        out.push(MARKER_VERSION);
        out.push(self.kind.code());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&self.plaintext_size.to_be_bytes());
        out.extend_from_slice(&(self.entries.len() as u16).to_be_bytes());
        for e in &self.entries {
            let at = out.len();
            out.push(match e.role {
                Role::User => 1,
                Role::Recovery => 2,
            });
            out.extend_from_slice(&e.stanza.unwrap_or(UNKNOWN_STANZA).to_be_bytes());
            let r = e.recipient.as_bytes();
            if r.is_empty() || r.len() > 255 || !e.recipient.is_ascii() {
                return Err(MarkerError::at(
                    at,
                    "a recipient must be 1 to 255 ASCII characters",
                ));
            }
            out.push(r.len() as u8);
            out.extend_from_slice(r);
            let n = e.name.as_bytes();
            if n.len() > 255 {
                return Err(MarkerError::at(at, "a name must be at most 255 bytes"));
            }
            out.push(n.len() as u8);
            out.extend_from_slice(n);
        }
        Ok(out)
    }

    /// Decodes marker bytes; every problem names its offset.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Marker, MarkerError> {
        let mut r = Cursor { bytes, pos: 0 };
        let magic = r.take(4, "the magic")?;
        if magic != MARKER_MAGIC {
            return Err(MarkerError::at(0, "not a reel efs marker (bad magic)"));
        }
        let version = r.u8("the version")?;
        if version != MARKER_VERSION {
            return Err(MarkerError::at(
                4,
                format!(
                    "marker layout version {version} is not known (this reel reads version {MARKER_VERSION}); a newer reel wrote it"
                ),
            ));
        }
        let kind = r.u8("the kind")?;
        let kind = Kind::from_code(kind)
            .ok_or_else(|| MarkerError::at(5, format!("unknown kind {kind}")))?;
        let flags = r.u16("the flags")?;
        if flags != 0 {
            return Err(MarkerError::at(6, format!("unknown flags {flags:#06x}")));
        }
        let plaintext_size = r.u64("the plaintext size")?;
        if kind == Kind::Directory && plaintext_size != 0 {
            return Err(MarkerError::at(
                8,
                "a directory marker with a plaintext size",
            ));
        }
        let count = r.u16("the entry count")? as usize;
        if count > MAX_ENTRIES {
            return Err(MarkerError::at(
                16,
                format!("{count} recipients (at most {MAX_ENTRIES})"),
            ));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            let at = r.pos;
            let role = match r.u8("an entry's role")? {
                1 => Role::User,
                2 => Role::Recovery,
                other => return Err(MarkerError::at(at, format!("unknown role {other}"))),
            };
            let stanza = r.u16("an entry's stanza index")?;
            let rlen = r.u8("a recipient's length")? as usize;
            let rat = r.pos;
            let recipient = r.take(rlen, "a recipient")?;
            if rlen == 0 || !recipient.iter().all(|b| (0x21..=0x7e).contains(b)) {
                return Err(MarkerError::at(
                    rat,
                    "a recipient must be printable ASCII, not empty",
                ));
            }
            let nlen = r.u8("a name's length")? as usize;
            let nat = r.pos;
            let name = std::str::from_utf8(r.take(nlen, "a name")?)
                .map_err(|_| MarkerError::at(nat, "a name is not UTF-8"))?;
            entries.push(Entry {
                role,
                stanza: (stanza != UNKNOWN_STANZA).then_some(stanza),
                recipient: String::from_utf8_lossy(recipient).into_owned(),
                name: name.to_string(),
            });
        }
        if r.pos != bytes.len() {
            return Err(MarkerError::at(
                r.pos,
                format!("{} bytes after the last entry", bytes.len() - r.pos),
            ));
        }
        Ok(Marker {
            kind,
            plaintext_size,
            entries,
        })
    }

    /// The marker as a pax extended-header value (base64 of [`Marker::encode`]).
    pub fn to_pax_value(&self) -> std::result::Result<String, MarkerError> {
        Ok(STANDARD.encode(self.encode()?))
    }

    /// The marker from a pax value made by [`Marker::to_pax_value`].
    pub fn from_pax_value(value: &str) -> std::result::Result<Marker, MarkerError> {
        let bytes = STANDARD
            .decode(value.trim())
            .map_err(|e| MarkerError::at(0, format!("pax value is not base64: {e}")))?;
        Marker::decode(&bytes)
    }

    /// The entry recorded for `stanza`.
    pub fn entry_for_stanza(&self, stanza: usize) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.stanza.map(usize::from) == Some(stanza))
    }

    /// True when a recovery recipient is recorded.
    pub fn has_recovery(&self) -> bool {
        self.entries.iter().any(|e| e.role == Role::Recovery)
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], MarkerError> {
        match self.bytes.get(self.pos..self.pos + n) {
            Some(s) => {
                self.pos += n;
                Ok(s)
            }
            None => Err(MarkerError::at(
                self.bytes.len(),
                format!("the marker ends inside {what}"),
            )),
        }
    }

    fn u8(&mut self, what: &str) -> std::result::Result<u8, MarkerError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &str) -> std::result::Result<u16, MarkerError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u64(&mut self, what: &str) -> std::result::Result<u64, MarkerError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

/// The marker of `path` (not following a symlink), `None` when it carries none.
pub fn marker(path: &Path) -> Result<Option<Marker>> {
    match xattr::get(path, XATTR_NAME) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => Marker::decode(&bytes)
            .map(Some)
            .map_err(|e| e.for_path(path)),
        Err(e) if unsupported(&e) => Ok(None),
        Err(e) => Err(EfsError::io(path, e)),
    }
}

/// The marker of an open file.
pub fn marker_of(file: &File, path: &Path) -> Result<Option<Marker>> {
    match file.get_xattr(XATTR_NAME) {
        Ok(None) => Ok(None),
        Ok(Some(bytes)) => Marker::decode(&bytes)
            .map(Some)
            .map_err(|e| e.for_path(path)),
        Err(e) if unsupported(&e) => Ok(None),
        Err(e) => Err(EfsError::io(path, e)),
    }
}

/// Sets the marker on an open file or directory.
pub(crate) fn set_marker(file: &File, path: &Path, marker: &Marker) -> Result<()> {
    let bytes = marker.encode().map_err(|e| e.for_path(path))?;
    file.set_xattr(XATTR_NAME, &bytes).map_err(|e| {
        let hint = if unsupported(&e) {
            " (this file system does not store user extended attributes)"
        } else {
            ""
        };
        EfsError::io(
            path,
            std::io::Error::new(e.kind(), format!("setting {XATTR_NAME}: {e}{hint}")),
        )
    })
}

/// Removes the marker from an open file or directory (no error when it has none).
pub(crate) fn remove_marker(file: &File, path: &Path) -> Result<()> {
    match file.remove_xattr(XATTR_NAME) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NODATA.raw_os_error()) => Ok(()),
        Err(e) => Err(EfsError::io(path, e)),
    }
}

fn unsupported(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::NOTSUP.raw_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry() -> impl Strategy<Value = Entry> {
        (
            prop::bool::ANY,
            prop::option::of(0u16..0xFFFF),
            "[a-z0-9]{1,80}",
            "\\PC{0,20}",
        )
            .prop_map(|(rec, stanza, recipient, name)| Entry {
                role: if rec { Role::Recovery } else { Role::User },
                stanza,
                recipient,
                name,
            })
    }

    fn any_marker() -> impl Strategy<Value = Marker> {
        (
            prop::bool::ANY,
            any::<u64>(),
            prop::collection::vec(entry(), 0..6),
        )
            .prop_map(|(dir, size, entries)| {
                if dir {
                    Marker::directory(entries)
                } else {
                    Marker::file(size, entries)
                }
            })
    }

    proptest! {
        #[test]
        fn round_trips(m in any_marker()) {
            let bytes = m.encode().unwrap();
            prop_assert_eq!(Marker::decode(&bytes).unwrap(), m.clone());
            prop_assert_eq!(Marker::from_pax_value(&m.to_pax_value().unwrap()).unwrap(), m);
        }

        #[test]
        fn truncations_fail_with_offsets(m in any_marker(), cut in any::<prop::sample::Index>()) {
            let bytes = m.encode().unwrap();
            let at = cut.index(bytes.len());
            let err = Marker::decode(&bytes[..at]).unwrap_err();
            prop_assert!(err.offset as usize <= at);
        }

        #[test]
        fn garbage_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
            let _ = Marker::decode(&data);
            let mut with_magic = b"rEFS\x01\x01\x00\x00".to_vec();
            with_magic.extend_from_slice(&data);
            let _ = Marker::decode(&with_magic);
        }
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut b = Marker::file(5, vec![]).encode().unwrap();
        b.push(0);
        let e = Marker::decode(&b).unwrap_err();
        assert_eq!(e.offset, 18);
    }
}
