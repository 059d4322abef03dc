//! Identities (age X25519 secret keys) and recipients (their public keys).
//!
//! An identity file is in the format of `age-keygen`: comment lines starting with `#`, and one
//! `AGE-SECRET-KEY-1…` per line. Files made by `reel efs keygen` work with `age -d -i` and the
//! other way round.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use age_core::format::FileKey;
use zeroize::Zeroize;

use crate::error::{EfsError, Result};
use crate::header::{Header, X25519_TAG, verify_mac};

/// Environment variable naming the identity file (overrides the default place).
pub const IDENTITY_ENV: &str = "REEL_EFS_IDENTITY";
/// Environment variable naming the recovery recipient until policy provides it.
pub const RECOVERY_ENV: &str = "REEL_EFS_RECOVERY";

/// Where the identity lives: `$REEL_EFS_IDENTITY`, else `$XDG_CONFIG_HOME/reel/efs/identity.txt`,
/// else `~/.config/reel/efs/identity.txt`.
pub fn default_identity_path() -> PathBuf {
    if let Some(p) = std::env::var_os(IDENTITY_ENV).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/root"))
                .join(".config")
        });
    config.join("reel/efs/identity.txt")
}

/// Parses an `age1…` X25519 recipient.
pub fn parse_recipient(text: &str) -> Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(text.trim()).map_err(|_| EfsError::BadRecipient(text.into()))
}

/// The identities of one identity file.
pub struct Identities {
    keys: Vec<age::x25519::Identity>,
    path: PathBuf,
}

impl std::fmt::Debug for Identities {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print secret keys.
        f.debug_struct("Identities")
            .field("path", &self.path)
            .field("count", &self.keys.len())
            .finish()
    }
}

/// The file key of an age file, unwrapped by an identity, with the stanza that held it.
pub struct Unwrapped {
    pub(crate) key: FileKey,
    /// Index of the stanza the identity opened.
    pub stanza: usize,
}

impl Unwrapped {
    pub(crate) fn key_bytes(&self) -> &[u8; 16] {
        self.key.expose_secret()
    }
}

impl Identities {
    /// Reads an identity file.
    pub fn load(path: &Path) -> Result<Identities> {
        let mut text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EfsError::NoIdentity {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(EfsError::io(path, e)),
        };
        let parsed = Identities::parse(&text, path);
        text.zeroize();
        parsed
    }

    fn parse(text: &str, path: &Path) -> Result<Identities> {
        let mut keys = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = age::x25519::Identity::from_str(line).map_err(|_| EfsError::BadIdentity {
                path: path.to_path_buf(),
                line: i + 1,
                what: "not an AGE-SECRET-KEY-1… line (only X25519 identities are supported)".into(),
            })?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(EfsError::BadIdentity {
                path: path.to_path_buf(),
                line: 0,
                what: "the file holds no identity".into(),
            });
        }
        Ok(Identities {
            keys,
            path: path.to_path_buf(),
        })
    }

    /// The file these identities came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The recipients (public keys) of these identities.
    pub fn recipients(&self) -> Vec<age::x25519::Recipient> {
        self.keys.iter().map(|k| k.to_public()).collect()
    }

    /// The identities as the `age` crate takes them.
    pub(crate) fn as_age(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.keys.iter().map(|k| k as &dyn age::Identity)
    }

    /// Unwraps the file key from `header` and checks the header MAC with it.
    ///
    /// `Ok(None)`: no identity matches a stanza. A matching key whose MAC fails is tampering.
    pub(crate) fn unwrap(
        &self,
        header: &Header,
        header_bytes: &[u8],
        path: &Path,
    ) -> Result<Option<Unwrapped>> {
        for (i, stanza) in header.stanzas.iter().enumerate() {
            if stanza.tag != X25519_TAG {
                continue;
            }
            let age_stanza = stanza.to_age();
            for key in &self.keys {
                match age::Identity::unwrap_stanza(key, &age_stanza) {
                    None => continue,
                    Some(Err(e)) => {
                        return Err(EfsError::BadHeader {
                            path: path.to_path_buf(),
                            offset: stanza.offset as u64,
                            what: format!("stanza {i}: {e}"),
                        });
                    }
                    Some(Ok(file_key)) => {
                        if !verify_mac(header, header_bytes, file_key.expose_secret()) {
                            return Err(EfsError::Tampered {
                                path: path.to_path_buf(),
                                offset: 0,
                                what: format!(
                                    "the header MAC does not verify (header bytes 0..{})",
                                    header.len
                                ),
                            });
                        }
                        return Ok(Some(Unwrapped {
                            key: file_key,
                            stanza: i,
                        }));
                    }
                }
            }
        }
        Ok(None)
    }
}

/// Makes a new identity file at `path` (never replacing one) and returns its recipient.
///
/// The file is created with mode 0600 in a directory made with mode 0700, written to a temp
/// name, synced and linked into place, so a crash leaves either no file or a whole one.
pub fn generate_identity_file(path: &Path) -> Result<age::x25519::Recipient> {
    if path.symlink_metadata().is_ok() {
        return Err(EfsError::Exists {
            path: path.to_path_buf(),
            hint: "reel never replaces an identity (files encrypted to it would be lost); move it away first",
        });
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| EfsError::io(dir, e))?;
    }
    let key = age::x25519::Identity::generate();
    let recipient = key.to_public();
    let created = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        key.to_string().expose_secret()
    );
    let tmp = tempfile::Builder::new()
        .prefix(".identity.")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| EfsError::io(dir, e));
    let result = tmp.and_then(|mut tmp| {
        tmp.write_all(text.as_bytes())
            .and_then(|_| tmp.as_file().sync_all())
            .map_err(|e| EfsError::io(tmp.path(), e))?;
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                EfsError::Exists {
                    path: path.to_path_buf(),
                    hint: "reel never replaces an identity; move it away first",
                }
            } else {
                EfsError::io(path, e.error)
            }
        })?;
        crate::atomic::sync_dir(dir)
    });
    text.zeroize();
    result?;
    Ok(recipient)
}

/// Recipients named on a command line: an `age1…` string, or a file holding recipients (one
/// per line, `#` comments) or identities (their public keys are taken).
pub fn recipients_from_arg(text: &str) -> Result<Vec<age::x25519::Recipient>> {
    let t = text.trim();
    if t.starts_with("age1") {
        return Ok(vec![parse_recipient(t)?]);
    }
    let path = Path::new(t);
    if !path.is_file() {
        return Err(EfsError::BadRecipient(text.into()));
    }
    let mut content = std::fs::read_to_string(path).map_err(|e| EfsError::io(path, e))?;
    let mut out = Vec::new();
    let mut bad = None;
    for (i, line) in content.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Ok(r) = age::x25519::Recipient::from_str(line) {
            out.push(r);
        } else if let Ok(id) = age::x25519::Identity::from_str(line) {
            out.push(id.to_public());
        } else if bad.is_none() {
            bad = Some(i + 1);
        }
    }
    content.zeroize();
    match bad {
        Some(line) => Err(EfsError::BadIdentity {
            path: path.to_path_buf(),
            line,
            what: "neither an age1… recipient nor an AGE-SECRET-KEY-1… identity".into(),
        }),
        None if out.is_empty() => Err(EfsError::BadRecipient(text.into())),
        None => Ok(out),
    }
}
