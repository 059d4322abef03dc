//! Encrypted files: encrypt and decrypt in place, read, inspect, share with more users.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use zeroize::Zeroize;

use crate::atomic::{Commit, Replacement};
use crate::error::{EfsError, Result};
use crate::header::{self, AGE_MAGIC, Header, MAX_HEADER_LEN, X25519_TAG};
use crate::identity::Identities;
use crate::marker::{self, Entry, Kind, Marker, Role, marker_of, remove_marker, set_marker};
use crate::options::{EncryptOptions, Named};

const COPY_BUF: usize = 256 * 1024;

fn open_nofollow(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .map_err(|e| EfsError::io(path, e))
}

fn describe_type(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_symlink() {
        "a symbolic link"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// An encrypted file opened for reading: marker, header and length checked.
pub(crate) struct Opened {
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) meta: Metadata,
    pub(crate) marker: Marker,
    pub(crate) header: Header,
    /// The first bytes of the file, at least the whole header.
    pub(crate) prefix: Vec<u8>,
}

/// Reads and parses the age header at the start of `file` (of `len` bytes).
pub(crate) fn read_header(file: &File, len: u64, path: &Path) -> Result<(Header, Vec<u8>)> {
    let mut want = (64 * 1024).min(len as usize);
    loop {
        let mut buf = vec![0u8; want];
        file.read_exact_at(&mut buf, 0)
            .map_err(|e| EfsError::io(path, e))?;
        match header::parse(&buf) {
            Ok(Some(h)) => return Ok((h, buf)),
            Ok(None) if (want as u64) < len && want < MAX_HEADER_LEN => {
                want = (want * 4).min(len as usize).min(MAX_HEADER_LEN);
            }
            Ok(None) => {
                return Err(EfsError::BadHeader {
                    path: path.to_path_buf(),
                    offset: want as u64,
                    what: "the file ends inside the age header (truncated)".into(),
                });
            }
            Err(e) => {
                return Err(EfsError::BadHeader {
                    path: path.to_path_buf(),
                    offset: e.offset,
                    what: e.what,
                });
            }
        }
    }
}

/// Checks that a ciphertext of `len` bytes with `header` holds `plaintext` bytes.
pub(crate) fn check_length(path: &Path, header_len: usize, len: u64, plaintext: u64) -> Result<()> {
    let expected = header_len as u64 + header::payload_len(plaintext);
    if expected == len {
        return Ok(());
    }
    let what = if len < expected {
        format!(
            "the marker says {plaintext} plaintext bytes, which take {expected} bytes of age file, but there are only {len}: truncated at byte {len}"
        )
    } else {
        format!(
            "the marker says {plaintext} plaintext bytes, which take {expected} bytes of age file, but there are {len}: {} extra bytes from byte {expected}",
            len - expected
        )
    };
    Err(EfsError::SizeMismatch {
        path: path.to_path_buf(),
        what,
    })
}

/// Opens an encrypted file: it must be a regular file with a file marker whose age header
/// parses and whose length fits the marker.
pub(crate) fn open_encrypted(path: &Path) -> Result<Opened> {
    let lmeta = path.symlink_metadata().map_err(|e| EfsError::io(path, e))?;
    if !lmeta.file_type().is_file() {
        if lmeta.is_dir() && marker::marker(path)?.is_some_and(|m| m.kind == Kind::Directory) {
            return Err(EfsError::Refused {
                path: path.to_path_buf(),
                what:
                    "is an encrypted directory (a marker only); its files are encrypted one by one"
                        .into(),
            });
        }
        return Err(EfsError::NotRegular {
            path: path.to_path_buf(),
            what: describe_type(&lmeta),
        });
    }
    let file = open_nofollow(path)?;
    let meta = file.metadata().map_err(|e| EfsError::io(path, e))?;
    let marker = match marker_of(&file, path)? {
        Some(m) if m.kind == Kind::File => m,
        Some(_) => {
            return Err(EfsError::BadMarker {
                path: path.to_path_buf(),
                offset: 5,
                what: "a regular file with a directory marker".into(),
            });
        }
        None => {
            return Err(EfsError::NotEncrypted {
                path: path.to_path_buf(),
            });
        }
    };
    let (header, prefix) = read_header(&file, meta.len(), path)?;
    check_length(path, header.len, meta.len(), marker.plaintext_size)?;
    Ok(Opened {
        path: path.to_path_buf(),
        file,
        meta,
        marker,
        header,
        prefix,
    })
}

/// Fails unless `path` still names the file `meta` describes, unchanged.
fn ensure_unchanged(path: &Path, file: &File, meta: &Metadata, doing: &'static str) -> Result<()> {
    let now = file.metadata().map_err(|e| EfsError::io(path, e))?;
    let named = path.symlink_metadata().map_err(|e| EfsError::io(path, e))?;
    let same = now.len() == meta.len()
        && now.mtime() == meta.mtime()
        && now.mtime_nsec() == meta.mtime_nsec()
        && named.ino() == meta.ino()
        && named.dev() == meta.dev();
    if same {
        Ok(())
    } else {
        Err(EfsError::Changed {
            path: path.to_path_buf(),
            doing,
        })
    }
}

/// Encrypts `path` in place to the recipients of `opts` and marks it. Returns the marker.
///
/// The ciphertext is written to a temp file beside it, given the original's owner, mode,
/// extended attributes and times, synced, and renamed over the name.
pub fn encrypt_file(path: &Path, opts: &EncryptOptions) -> Result<Marker> {
    let lmeta = path.symlink_metadata().map_err(|e| EfsError::io(path, e))?;
    if !lmeta.file_type().is_file() {
        return Err(EfsError::NotRegular {
            path: path.to_path_buf(),
            what: describe_type(&lmeta),
        });
    }
    let file = open_nofollow(path)?;
    let meta = file.metadata().map_err(|e| EfsError::io(path, e))?;
    if meta.nlink() > 1 {
        return Err(EfsError::HardLinked {
            path: path.to_path_buf(),
            links: meta.nlink(),
        });
    }
    if marker_of(&file, path)?.is_some() {
        return Err(EfsError::AlreadyEncrypted {
            path: path.to_path_buf(),
        });
    }
    let mut magic = [0u8; 22];
    if meta.len() >= magic.len() as u64 {
        file.read_exact_at(&mut magic, 0)
            .map_err(|e| EfsError::io(path, e))?;
        if magic == AGE_MAGIC {
            return Err(EfsError::AlreadyAgeFile {
                path: path.to_path_buf(),
            });
        }
    }
    let recipients = opts.ordered();
    if recipients.is_empty() {
        return Err(EfsError::Refused {
            path: path.to_path_buf(),
            what: "no recipients: give an identity (reel efs keygen) or --recipient".into(),
        });
    }
    if recipients.len() > marker::MAX_ENTRIES {
        return Err(EfsError::Refused {
            path: path.to_path_buf(),
            what: format!("more than {} recipients", marker::MAX_ENTRIES),
        });
    }

    let mut tmp = Replacement::beside(path)?;
    let encryptor = age::Encryptor::with_recipients(
        recipients
            .iter()
            .map(|(_, n)| &n.recipient as &dyn age::Recipient),
    )
    .map_err(|e| EfsError::Refused {
        path: path.to_path_buf(),
        what: format!("cannot encrypt to these recipients: {e}"),
    })?;
    let copied = {
        let out = BufWriter::with_capacity(COPY_BUF, tmp.file_mut());
        let mut writer = encryptor
            .wrap_output(out)
            .map_err(|e| EfsError::io(path, e))?;
        let mut reader = BufReader::with_capacity(COPY_BUF, &file);
        let n = io::copy(&mut reader, &mut writer).map_err(|e| EfsError::io(path, e))?;
        let out = writer.finish().map_err(|e| EfsError::io(path, e))?;
        out.into_inner()
            .map_err(|e| EfsError::io(path, e.into_error()))?;
        n
    };
    ensure_unchanged(path, &file, &meta, "encrypting")?;
    if copied != meta.len() {
        return Err(EfsError::Changed {
            path: path.to_path_buf(),
            doing: "encrypting",
        });
    }

    // The age crate writes one stanza per X25519 recipient, in order, then a grease stanza.
    let tmp_len = tmp
        .file()
        .metadata()
        .map_err(|e| EfsError::io(tmp.path(), e))?
        .len();
    let (header, _) = read_header(tmp.file(), tmp_len, tmp.path())?;
    check_length(tmp.path(), header.len, tmp_len, copied)?;
    let mut entries = Vec::with_capacity(recipients.len());
    for (i, (role, n)) in recipients.iter().enumerate() {
        if header.stanzas.get(i).map(|s| s.tag.as_str()) != Some(X25519_TAG) {
            return Err(EfsError::BadHeader {
                path: tmp.path().to_path_buf(),
                offset: 0,
                what: format!("expected an X25519 stanza at index {i} of the new header"),
            });
        }
        entries.push(Entry {
            role: *role,
            stanza: Some(i as u16),
            recipient: n.recipient.to_string(),
            name: n.name.clone(),
        });
    }
    let marker = Marker::file(copied, entries);
    tmp.copy_metadata(&file, path, &meta)?;
    set_marker(tmp.file(), path, &marker)?;
    tmp.set_times(&meta)?;
    ensure_unchanged(path, &file, &meta, "encrypting")?;
    tmp.commit(Commit::Replace)?;
    Ok(marker)
}

/// Writes the plaintext of encrypted `path` to `out`; returns its length.
///
/// Only authenticated chunks reach `out`; a damaged chunk stops the copy with its offset.
pub fn decrypt_to<W: Write>(path: &Path, ids: &Identities, out: W) -> Result<u64> {
    let opened = open_encrypted(path)?;
    decrypt_opened(&opened, ids, out)
}

fn no_match(opened: &Opened, ids: &Identities) -> EfsError {
    let mine: Vec<String> = ids.recipients().iter().map(|r| r.to_string()).collect();
    // A stanza recorded for one of these identities that does not open: damage, not a
    // missing key (a damaged stanza looks like one for somebody else).
    if let Some((entry, stanza)) = opened.marker.entries.iter().find_map(|e| {
        let i = usize::from(e.stanza?);
        let s = opened.header.stanzas.get(i)?;
        mine.contains(&e.recipient).then_some((e, s))
    }) {
        return EfsError::Tampered {
            path: opened.path.clone(),
            offset: stanza.offset as u64,
            what: format!(
                "the stanza recorded for {} does not open with its identity: the header was altered",
                entry.recipient
            ),
        };
    }
    let recorded: Vec<String> = opened
        .marker
        .entries
        .iter()
        .map(|e| {
            if e.name.is_empty() {
                e.recipient.clone()
            } else {
                format!("{} ({})", e.recipient, e.name)
            }
        })
        .collect();
    let hint = if recorded.is_empty() {
        format!("; your recipient is {}", mine.join(", "))
    } else {
        format!(
            "; it is encrypted to {}; your recipient is {} (ask a recipient to run `reel efs add-user`)",
            recorded.join(", "),
            mine.join(", ")
        )
    };
    EfsError::NoMatchingIdentity {
        path: opened.path.clone(),
        identity: ids.path().to_path_buf(),
        hint,
    }
}

fn decrypt_opened<W: Write>(opened: &Opened, ids: &Identities, mut out: W) -> Result<u64> {
    let path = &opened.path;
    // Our own unwrap first: it tells a missing key from a damaged header, with offsets.
    if ids.unwrap(&opened.header, &opened.prefix, path)?.is_none() {
        return Err(no_match(opened, ids));
    }
    let reader = BufReader::with_capacity(COPY_BUF, &opened.file);
    let decryptor = age::Decryptor::new(reader).map_err(|e| EfsError::BadHeader {
        path: path.clone(),
        offset: 0,
        what: e.to_string(),
    })?;
    let mut stream = decryptor.decrypt(ids.as_age()).map_err(|e| match e {
        age::DecryptError::NoMatchingKeys => no_match(opened, ids),
        age::DecryptError::InvalidMac => EfsError::Tampered {
            path: path.clone(),
            offset: 0,
            what: format!(
                "the header MAC does not verify (header bytes 0..{})",
                opened.header.len
            ),
        },
        other => EfsError::BadHeader {
            path: path.clone(),
            offset: 0,
            what: other.to_string(),
        },
    })?;
    let mut buf = vec![0u8; COPY_BUF];
    let mut total = 0u64;
    let result = loop {
        match stream.read(&mut buf) {
            Ok(0) => break Ok(total),
            Ok(n) => {
                if let Err(e) = out.write_all(&buf[..n]) {
                    break Err(EfsError::io(path, e));
                }
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::InvalidData
                    || e.kind() == io::ErrorKind::UnexpectedEof =>
            {
                let chunk = total / header::CHUNK_SIZE;
                break Err(EfsError::Tampered {
                    path: path.clone(),
                    offset: header::chunk_offset(opened.header.len, total),
                    what: format!("payload chunk {chunk} fails authentication ({e})"),
                });
            }
            Err(e) => break Err(EfsError::io(path, e)),
        }
    };
    buf.zeroize();
    let total = result?;
    if total != opened.marker.plaintext_size {
        return Err(EfsError::SizeMismatch {
            path: path.clone(),
            what: format!(
                "decrypted {total} bytes, the marker says {}",
                opened.marker.plaintext_size
            ),
        });
    }
    out.flush().map_err(|e| EfsError::io(path, e))?;
    Ok(total)
}

/// Decrypts `path` in place and removes its marker; returns the plaintext length.
pub fn decrypt_file(path: &Path, ids: &Identities) -> Result<u64> {
    let opened = open_encrypted(path)?;
    let mut tmp = Replacement::beside(path)?;
    let n = {
        let out = BufWriter::with_capacity(COPY_BUF, tmp.file_mut());
        decrypt_opened(&opened, ids, out)?
    };
    ensure_unchanged(path, &opened.file, &opened.meta, "decrypting")?;
    tmp.copy_metadata(&opened.file, path, &opened.meta)?;
    tmp.set_times(&opened.meta)?;
    tmp.commit(Commit::Replace)?;
    Ok(n)
}

/// One stanza of an encrypted file, with whom reel recorded it for.
#[derive(Debug, Clone, Serialize)]
pub struct StanzaStatus {
    pub index: usize,
    /// Stanza type: `X25519` for recipients; other types (e.g. age's random "grease") are kept.
    pub tag: String,
    /// The recorded entry for this stanza, if any.
    pub entry: Option<Entry>,
}

/// Who can open an encrypted file, and its sizes.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub path: PathBuf,
    pub kind: Kind,
    pub plaintext_size: u64,
    pub ciphertext_size: u64,
    pub header_size: u64,
    /// The header's stanzas (empty for a directory).
    pub stanzas: Vec<StanzaStatus>,
    /// Recorded entries whose stanza is not known (for a directory: all its entries).
    pub unplaced: Vec<Entry>,
    /// Number of X25519 stanzas: how many keys open the file.
    pub keys: usize,
    /// The stanza the given identity opens, if an identity was given and opens one.
    pub opened_by_identity: Option<usize>,
}

/// Reports who can open `path` (and, with `ids`, whether they open it, checking the header MAC).
pub fn status(path: &Path, ids: Option<&Identities>) -> Result<Status> {
    let lmeta = path.symlink_metadata().map_err(|e| EfsError::io(path, e))?;
    if lmeta.is_dir() {
        let m = marker::marker(path)?.ok_or_else(|| EfsError::NotEncrypted {
            path: path.to_path_buf(),
        })?;
        return Ok(Status {
            path: path.to_path_buf(),
            kind: m.kind,
            plaintext_size: 0,
            ciphertext_size: 0,
            header_size: 0,
            stanzas: Vec::new(),
            unplaced: m.entries,
            keys: 0,
            opened_by_identity: None,
        });
    }
    let opened = open_encrypted(path)?;
    let stanzas: Vec<StanzaStatus> = opened
        .header
        .stanzas
        .iter()
        .enumerate()
        .map(|(i, s)| StanzaStatus {
            index: i,
            tag: s.tag.clone(),
            entry: opened
                .marker
                .entry_for_stanza(i)
                .filter(|_| s.tag == X25519_TAG)
                .cloned(),
        })
        .collect();
    let unplaced = opened
        .marker
        .entries
        .iter()
        .filter(|e| {
            e.stanza.is_none_or(|i| {
                opened
                    .header
                    .stanzas
                    .get(usize::from(i))
                    .is_none_or(|s| s.tag != X25519_TAG)
            })
        })
        .cloned()
        .collect();
    let opened_by_identity = match ids {
        Some(ids) => ids
            .unwrap(&opened.header, &opened.prefix, path)?
            .map(|u| u.stanza),
        None => None,
    };
    Ok(Status {
        path: path.to_path_buf(),
        kind: Kind::File,
        plaintext_size: opened.marker.plaintext_size,
        ciphertext_size: opened.meta.len(),
        header_size: opened.header.len as u64,
        keys: opened.header.x25519_indices().len(),
        stanzas,
        unplaced,
        opened_by_identity,
    })
}

/// Writes `new_header`, then the payload of `opened` byte for byte, under `opened`'s name,
/// with `marker` and the original's metadata.
fn rewrite_header(opened: &Opened, new_header: &[u8], marker: &Marker) -> Result<()> {
    let path = &opened.path;
    let mut tmp = Replacement::beside(path)?;
    let payload = opened.meta.len() - opened.header.len as u64;
    {
        let mut out = BufWriter::with_capacity(COPY_BUF, tmp.file_mut());
        out.write_all(new_header)
            .map_err(|e| EfsError::io(path, e))?;
        let mut src = &opened.file;
        src.seek(SeekFrom::Start(opened.header.len as u64))
            .map_err(|e| EfsError::io(path, e))?;
        let copied = io::copy(
            &mut BufReader::with_capacity(COPY_BUF, src).take(payload),
            &mut out,
        )
        .map_err(|e| EfsError::io(path, e))?;
        out.flush().map_err(|e| EfsError::io(path, e))?;
        if copied != payload {
            return Err(EfsError::Changed {
                path: path.clone(),
                doing: "rewriting the header of",
            });
        }
    }
    ensure_unchanged(path, &opened.file, &opened.meta, "rewriting the header of")?;
    tmp.copy_metadata(&opened.file, path, &opened.meta)?;
    set_marker(tmp.file(), path, marker)?;
    tmp.set_times(&opened.meta)?;
    tmp.commit(Commit::Replace)
}

/// Lets `user` open `path` too: adds a stanza wrapping the file key for them.
///
/// Only the header changes; the payload bytes stay as they are. Adding a stanza needs the
/// file key (the header MAC is keyed by it), so `ids` must open the file.
pub fn add_user(path: &Path, ids: &Identities, user: &Named, role: Role) -> Result<Marker> {
    let opened = open_encrypted(path)?;
    if opened.header.is_scrypt() {
        return Err(EfsError::Refused {
            path: path.to_path_buf(),
            what: "is encrypted with a passphrase; age allows no other recipient beside one".into(),
        });
    }
    let new_recipient = user.recipient.to_string();
    if opened
        .marker
        .entries
        .iter()
        .any(|e| e.recipient == new_recipient && e.stanza.is_some())
    {
        return Err(EfsError::Refused {
            path: path.to_path_buf(),
            what: format!("{new_recipient} can already open it"),
        });
    }
    if opened.marker.entries.len() >= marker::MAX_ENTRIES {
        return Err(EfsError::Refused {
            path: path.to_path_buf(),
            what: format!(
                "it has the most recipients a marker holds ({})",
                marker::MAX_ENTRIES
            ),
        });
    }
    let unwrapped = ids
        .unwrap(&opened.header, &opened.prefix, path)?
        .ok_or_else(|| no_match(&opened, ids))?;
    let (wrapped, _labels) = age::Recipient::wrap_file_key(&user.recipient, &unwrapped.key)
        .map_err(|e| EfsError::Refused {
            path: path.to_path_buf(),
            what: format!("cannot wrap the file key for {new_recipient}: {e}"),
        })?;
    let mut stanzas = opened.header.stanzas.clone();
    let index = u16::try_from(stanzas.len())
        .ok()
        .filter(|&i| i != marker::UNKNOWN_STANZA)
        .ok_or_else(|| EfsError::Refused {
            path: path.to_path_buf(),
            what: "the header has too many stanzas to record another".into(),
        })?;
    stanzas.extend(wrapped.iter().map(header::Stanza::from_age));
    let new_header = header::encode(&stanzas, unwrapped.key_bytes());
    let mut marker = opened.marker.clone();
    // A recipient recorded without a stanza (a marked foreign file) now has one.
    marker.entries.retain(|e| e.recipient != new_recipient);
    marker.entries.push(Entry {
        role,
        stanza: Some(index),
        recipient: new_recipient,
        name: user.name.clone(),
    });
    rewrite_header(&opened, &new_header, &marker)?;
    Ok(marker)
}

/// Which recipient [`remove_user`] removes.
#[derive(Debug, Clone)]
pub enum Removal {
    /// The recorded recipient `age1…`.
    Recipient(String),
    /// The stanza at this index (see `status`), for files whose stanzas are not recorded.
    Stanza(usize),
}

/// Removes one recipient's stanza; only the header changes. Needs an identity that opens the
/// file (to recompute the header MAC). Removing the recovery recipient needs `allow_recovery`.
///
/// This stops the removed key from opening *this* file from now on; it cannot take back a
/// copy or a file key already seen. To revoke fully, decrypt and encrypt again.
pub fn remove_user(
    path: &Path,
    ids: &Identities,
    which: &Removal,
    allow_recovery: bool,
) -> Result<Marker> {
    let opened = open_encrypted(path)?;
    let refuse = |what: String| EfsError::Refused {
        path: path.to_path_buf(),
        what,
    };
    let index = match which {
        Removal::Stanza(i) => *i,
        Removal::Recipient(r) => {
            let entry = opened
                .marker
                .entries
                .iter()
                .find(|e| &e.recipient == r)
                .ok_or_else(|| {
                    refuse(format!(
                        "{r} is not a recorded recipient (see `reel efs status`)"
                    ))
                })?;
            match entry.stanza {
                Some(i) => usize::from(i),
                None => {
                    return Err(refuse(format!(
                        "which stanza is {r}'s is not known (the file was encrypted outside reel); remove it with --stanza N (see `reel efs status`)"
                    )));
                }
            }
        }
    };
    match opened.header.stanzas.get(index) {
        Some(s) if s.tag == X25519_TAG => {}
        Some(s) => {
            return Err(refuse(format!(
                "stanza {index} is a {} stanza, not a recipient",
                s.tag
            )));
        }
        None => return Err(refuse(format!("there is no stanza {index}"))),
    }
    let recorded = opened.marker.entry_for_stanza(index).cloned();
    if recorded.as_ref().is_some_and(|e| e.role == Role::Recovery) && !allow_recovery {
        return Err(refuse(
            "that is the recovery recipient required by policy; pass --force to remove it anyway"
                .into(),
        ));
    }
    if opened.header.x25519_indices().len() <= 1 {
        return Err(refuse(
            "that is the only recipient left; nobody could open the file".into(),
        ));
    }
    let unwrapped = ids
        .unwrap(&opened.header, &opened.prefix, path)?
        .ok_or_else(|| no_match(&opened, ids))?;
    let mut stanzas = opened.header.stanzas.clone();
    stanzas.remove(index);
    let new_header = header::encode(&stanzas, unwrapped.key_bytes());
    let mut marker = opened.marker.clone();
    let removed_recipient = recorded.map(|e| e.recipient);
    marker.entries.retain(|e| {
        e.stanza.map(usize::from) != Some(index)
            && !(e.stanza.is_none() && Some(&e.recipient) == removed_recipient.as_ref())
    });
    for e in &mut marker.entries {
        if let Some(s) = e.stanza.as_mut()
            && usize::from(*s) > index
        {
            *s -= 1;
        }
    }
    rewrite_header(&opened, &new_header, &marker)?;
    Ok(marker)
}

/// Marks an existing age file (made by `age`, `rage` or another tool) as an encrypted file.
///
/// The plaintext size follows from the file's length. With `ids`, the stanza they open is
/// recorded under `name` (and the header MAC checked); `others` are recorded without a stanza.
pub fn mark_file(
    path: &Path,
    ids: Option<&Identities>,
    name: &str,
    others: &[(Role, Named)],
) -> Result<Marker> {
    let lmeta = path.symlink_metadata().map_err(|e| EfsError::io(path, e))?;
    if !lmeta.file_type().is_file() {
        return Err(EfsError::NotRegular {
            path: path.to_path_buf(),
            what: describe_type(&lmeta),
        });
    }
    let file = open_nofollow(path)?;
    let meta = file.metadata().map_err(|e| EfsError::io(path, e))?;
    if marker_of(&file, path)?.is_some() {
        return Err(EfsError::AlreadyEncrypted {
            path: path.to_path_buf(),
        });
    }
    let (header, prefix) = read_header(&file, meta.len(), path)?;
    let plaintext = header::plaintext_len(meta.len() - header.len as u64).map_err(|what| {
        EfsError::SizeMismatch {
            path: path.to_path_buf(),
            what,
        }
    })?;
    let mut entries = Vec::new();
    if let Some(ids) = ids
        && let Some(u) = ids.unwrap(&header, &prefix, path)?
    {
        // Which of the identities opened it: the one whose recipient unwraps that stanza.
        let stanza = header.stanzas[u.stanza].to_age();
        let recipient = ids
            .recipients()
            .into_iter()
            .zip(ids.as_age())
            .find(|(_, id)| id.unwrap_stanza(&stanza).is_some_and(|r| r.is_ok()))
            .map(|(r, _)| r.to_string());
        if let Some(recipient) = recipient {
            entries.push(Entry {
                role: Role::User,
                stanza: u16::try_from(u.stanza)
                    .ok()
                    .filter(|&i| i != marker::UNKNOWN_STANZA),
                recipient,
                name: name.to_string(),
            });
        }
    }
    for (role, n) in others {
        let r = n.recipient.to_string();
        if !entries.iter().any(|e| e.recipient == r) {
            entries.push(Entry {
                role: *role,
                stanza: None,
                recipient: r,
                name: n.name.clone(),
            });
        }
    }
    let marker = Marker::file(plaintext, entries);
    set_marker(&file, path, &marker)?;
    Ok(marker)
}

/// Puts a directory marker on `dir` recording `entries` (replacing a directory marker there).
pub fn mark_dir(dir: &Path, entries: Vec<Entry>) -> Result<Marker> {
    let handle = open_dir(dir)?;
    let marker = Marker::directory(entries);
    set_marker(&handle, dir, &marker)?;
    Ok(marker)
}

/// Removes a directory's marker.
pub fn unmark_dir(dir: &Path) -> Result<()> {
    let handle = open_dir(dir)?;
    remove_marker(&handle, dir)
}

fn open_dir(dir: &Path) -> Result<File> {
    let lmeta = dir.symlink_metadata().map_err(|e| EfsError::io(dir, e))?;
    if !lmeta.is_dir() {
        return Err(EfsError::NotRegular {
            path: dir.to_path_buf(),
            what: "not a directory",
        });
    }
    OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::DIRECTORY).bits() as i32)
        .open(dir)
        .map_err(|e| EfsError::io(dir, e))
}

/// What happened to one path of a tree operation.
#[derive(Debug)]
pub enum TreeEvent {
    /// A file was encrypted (or decrypted).
    Done(PathBuf),
    /// A directory got (or lost) its marker.
    Directory(PathBuf),
    /// Left alone, and why.
    Skipped(PathBuf, &'static str),
    /// Failed; the rest of the tree goes on.
    Failed(PathBuf, EfsError),
}

/// Lists a tree first (so reel's own temp files never show up mid-walk), staying on one file
/// system and never following symlinks.
fn list_tree(root: &Path, on: &mut impl FnMut(TreeEvent)) -> Vec<(PathBuf, std::fs::FileType)> {
    let mut out = Vec::new();
    for entry in walkdir::WalkDir::new(root)
        .follow_links(false)
        .same_file_system(true)
    {
        match entry {
            Ok(e) => out.push((e.path().to_path_buf(), e.file_type())),
            Err(e) => {
                let p = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let io = e
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop"));
                on(TreeEvent::Failed(p.clone(), EfsError::io(p, io)));
            }
        }
    }
    out
}

/// Marks `root` and every directory under it, and encrypts every regular file not yet
/// encrypted, all to `opts`. Problems are reported per path; the walk goes on.
pub fn encrypt_tree(root: &Path, opts: &EncryptOptions, mut on: impl FnMut(TreeEvent)) {
    let entries = opts.directory_entries();
    for (path, ft) in list_tree(root, &mut on) {
        if ft.is_dir() {
            match mark_dir(&path, entries.clone()) {
                Ok(_) => on(TreeEvent::Directory(path)),
                Err(e) => on(TreeEvent::Failed(path, e)),
            }
        } else if ft.is_file() {
            match marker::marker(&path) {
                Ok(Some(_)) => on(TreeEvent::Skipped(path, "already encrypted")),
                Ok(None) => match encrypt_file(&path, opts) {
                    Ok(_) => on(TreeEvent::Done(path)),
                    Err(e) => on(TreeEvent::Failed(path, e)),
                },
                Err(e) => on(TreeEvent::Failed(path, e)),
            }
        } else if ft.is_symlink() {
            on(TreeEvent::Skipped(path, "a symbolic link"));
        } else {
            on(TreeEvent::Skipped(path, "not a regular file"));
        }
    }
}

/// Decrypts every encrypted file under `root` and removes the directory markers.
pub fn decrypt_tree(root: &Path, ids: &Identities, mut on: impl FnMut(TreeEvent)) {
    let listed = list_tree(root, &mut on);
    let mut dirs = Vec::new();
    for (path, ft) in listed {
        if ft.is_dir() {
            dirs.push(path);
        } else if ft.is_file() {
            match marker::marker(&path) {
                Ok(None) => on(TreeEvent::Skipped(path, "not encrypted")),
                Ok(Some(_)) => match decrypt_file(&path, ids) {
                    Ok(_) => on(TreeEvent::Done(path)),
                    Err(e) => on(TreeEvent::Failed(path, e)),
                },
                Err(e) => on(TreeEvent::Failed(path, e)),
            }
        }
    }
    for dir in dirs.into_iter().rev() {
        match marker::marker(&dir) {
            Ok(Some(_)) => match unmark_dir(&dir) {
                Ok(()) => on(TreeEvent::Directory(dir)),
                Err(e) => on(TreeEvent::Failed(dir, e)),
            },
            Ok(None) => {}
            Err(e) => on(TreeEvent::Failed(dir, e)),
        }
    }
}
