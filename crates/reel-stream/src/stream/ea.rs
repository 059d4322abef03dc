//! The EA stream: a list of FILE_FULL_EA_INFORMATION entries, and what reel puts in it.
//!
//! Entry layout (little-endian): `u32 NextEntryOffset` (0 for the last entry; otherwise
//! the distance to the next entry, a multiple of 4), `u8 Flags`, `u8 EaNameLength`,
//! `u16 EaValueLength`, the name, a NUL, the value, then padding to 4 bytes before the
//! next entry.
//!
//! Entries reel writes:
//! - WSL's: `$LXUID` and `$LXGID` (`u32`), `$LXMOD` (`u32` st_mode, file type bits
//!   included), `$LXDEV` (`u32` major then `u32` minor, as WSL writes it) for devices. On
//!   reading, the 4-byte `$LXDEV` of Linux' ntfs3 (the kernel's 32-bit dev_t) is accepted too;
//! - reel's: `$REEL.TIMES` = atime, mtime, ctime, birth time, each `i64` seconds then `u32`
//!   nanoseconds (48 bytes; a birth time the file system does not record has nanoseconds
//!   `0xFFFFFFFF`); `$REEL.FLAGS` = `u32` chattr flags (FS_IOC_GETFLAGS bits); `$REEL.USER`
//!   and `$REEL.GROUP` = owner and group names (UTF-8), for restoring by name as tar does;
//!   `$REEL.REST` = `u64` bytes of the streams that follow the EA stream (reel writes the
//!   EA stream first), so a stream cut between two streams is found incomplete;
//! - extended attributes under their Linux names (`user.mime_type`, `trusted.x`), as
//!   Linux' ntfs3 stores them. A value longer than an EA holds (65,535 bytes; Linux allows
//!   65,536) continues in a following entry with the same name.

use crate::meta::{FileKind, FileMeta, Timestamp};
use crate::xattrs::Xattr;

use super::{le16, le32};

pub const LXUID: &str = "$LXUID";
pub const LXGID: &str = "$LXGID";
pub const LXMOD: &str = "$LXMOD";
pub const LXDEV: &str = "$LXDEV";
pub const REEL_TIMES: &str = "$REEL.TIMES";
pub const REEL_FLAGS: &str = "$REEL.FLAGS";
pub const REEL_USER: &str = "$REEL.USER";
pub const REEL_GROUP: &str = "$REEL.GROUP";
pub const REEL_REST: &str = "$REEL.REST";

const MAX_EA_VALUE: usize = u16::MAX as usize;
const NO_BIRTH: u32 = u32::MAX;

/// One EA entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EaEntry {
    pub flags: u8,
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

impl EaEntry {
    pub fn new(name: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> EaEntry {
        EaEntry {
            flags: 0,
            name: name.into(),
            value: value.into(),
        }
    }
}

/// Encodes entries (values too long for one entry are split over several).
pub fn encode(entries: &[EaEntry]) -> Vec<u8> {
    let mut pieces: Vec<(&EaEntry, &[u8])> = Vec::new();
    for e in entries {
        if e.value.is_empty() {
            pieces.push((e, &[]));
        }
        for chunk in e.value.chunks(MAX_EA_VALUE) {
            pieces.push((e, chunk));
        }
    }
    let mut out = Vec::new();
    let last = pieces.len().saturating_sub(1);
    for (i, (e, value)) in pieces.iter().enumerate() {
        let len = 8 + e.name.len() + 1 + value.len();
        let padded = (len + 3) & !3;
        let next = if i == last { 0 } else { padded as u32 };
        out.extend_from_slice(&next.to_le_bytes());
        out.push(e.flags);
        out.push(e.name.len() as u8);
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(&e.name);
        out.push(0);
        out.extend_from_slice(value);
        if i != last {
            out.resize(out.len() + padded - len, 0);
        }
    }
    out
}

/// Parses an EA list. Errors carry the offset inside `data`.
pub fn parse(data: &[u8]) -> Result<Vec<(usize, EaEntry)>, (usize, String)> {
    let mut out: Vec<(usize, EaEntry)> = Vec::new();
    let mut pos = 0usize;
    if data.is_empty() {
        return Ok(out);
    }
    loop {
        let left = data.len() - pos;
        if left < 8 {
            return Err((pos, format!("EA entry header needs 8 bytes, {left} left")));
        }
        let next = le32(data, pos) as usize;
        let flags = data[pos + 4];
        let name_len = data[pos + 5] as usize;
        let value_len = le16(data, pos + 6) as usize;
        let len = 8 + name_len + 1 + value_len;
        if len > left {
            return Err((
                pos,
                format!(
                    "EA entry of {len} bytes (name {name_len}, value {value_len}) does not fit the {left} bytes left"
                ),
            ));
        }
        if name_len == 0 {
            return Err((pos, "EA entry with an empty name".into()));
        }
        let name = &data[pos + 8..pos + 8 + name_len];
        if name.contains(&0) {
            return Err((pos + 8, "EA name contains a NUL byte".into()));
        }
        if data[pos + 8 + name_len] != 0 {
            return Err((pos + 8 + name_len, "EA name is not NUL-terminated".into()));
        }
        let value = &data[pos + 9 + name_len..pos + len];
        out.push((
            pos,
            EaEntry {
                flags,
                name: name.to_vec(),
                value: value.to_vec(),
            },
        ));
        if next == 0 {
            let rest = &data[pos + len..];
            if rest.len() > 3 || rest.iter().any(|b| *b != 0) {
                return Err((
                    pos + len,
                    format!("{} bytes after the last EA entry", rest.len()),
                ));
            }
            return Ok(out);
        }
        if next < len || !next.is_multiple_of(4) || next >= left {
            return Err((
                pos,
                format!(
                    "EA NextEntryOffset {next} is not a multiple of 4 between the entry's length {len} and the {left} bytes left"
                ),
            ));
        }
        pos += next;
    }
}

fn put_time(out: &mut Vec<u8>, t: Option<Timestamp>) {
    let t = t.unwrap_or(Timestamp {
        secs: 0,
        nanos: NO_BIRTH,
    });
    out.extend_from_slice(&t.secs.to_le_bytes());
    out.extend_from_slice(&t.nanos.to_le_bytes());
}

/// `st_mode` file type bits of a kind.
pub fn type_bits(kind: FileKind) -> u32 {
    match kind {
        FileKind::Regular => 0o100000,
        FileKind::Directory => 0o040000,
        FileKind::Symlink => 0o120000,
        FileKind::Fifo => 0o010000,
        FileKind::CharDevice => 0o020000,
        FileKind::BlockDevice => 0o060000,
        FileKind::Socket => 0o140000,
    }
}

/// The kind of `st_mode` type bits.
pub fn kind_of_mode(mode: u32) -> Option<FileKind> {
    Some(match mode & 0o170000 {
        0o100000 => FileKind::Regular,
        0o040000 => FileKind::Directory,
        0o120000 => FileKind::Symlink,
        0o010000 => FileKind::Fifo,
        0o020000 => FileKind::CharDevice,
        0o060000 => FileKind::BlockDevice,
        0o140000 => FileKind::Socket,
        _ => return None,
    })
}

/// The EA entries of a file: WSL's, reel's, then `user.*`/`trusted.*` attributes
/// (`security.*` travel in the SECURITY stream).
pub fn entries_of(meta: &FileMeta) -> Vec<EaEntry> {
    let mut v = vec![
        EaEntry::new(LXUID, meta.uid.to_le_bytes()),
        EaEntry::new(LXGID, meta.gid.to_le_bytes()),
        EaEntry::new(
            LXMOD,
            (type_bits(meta.kind) | (meta.mode & 0o7777)).to_le_bytes(),
        ),
    ];
    if let Some((major, minor)) = meta.rdev {
        let mut dev = major.to_le_bytes().to_vec();
        dev.extend_from_slice(&minor.to_le_bytes());
        v.push(EaEntry::new(LXDEV, dev));
    }
    let mut times = Vec::with_capacity(48);
    put_time(&mut times, Some(meta.atime));
    put_time(&mut times, Some(meta.mtime));
    put_time(&mut times, Some(meta.ctime));
    put_time(&mut times, meta.btime);
    v.push(EaEntry::new(REEL_TIMES, times));
    if meta.flags != 0 {
        v.push(EaEntry::new(REEL_FLAGS, meta.flags.to_le_bytes()));
    }
    if let Some(u) = &meta.user {
        v.push(EaEntry::new(REEL_USER, u.as_bytes()));
    }
    if let Some(g) = &meta.group {
        v.push(EaEntry::new(REEL_GROUP, g.as_bytes()));
    }
    for x in meta.xattrs.iter().filter(|x| !x.is_security()) {
        if x.name.len() <= u8::MAX as usize {
            v.push(EaEntry::new(x.name.clone(), x.value.clone()));
        }
    }
    v
}

/// What the EA stream said, beyond the attributes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EaFacts {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Full st_mode from `$LXMOD`.
    pub mode: Option<u32>,
    pub rdev: Option<(u32, u32)>,
    pub times: Option<[Option<Timestamp>; 4]>,
    pub flags: Option<u32>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub rest: Option<u64>,
    pub xattrs: Vec<Xattr>,
    /// Entries turned into something else or dropped, to report.
    pub notes: Vec<String>,
}

fn fixed<const N: usize>(e: &EaEntry, at: usize) -> Result<[u8; N], (usize, String)> {
    e.value.as_slice().try_into().map_err(|_| {
        (
            at,
            format!(
                "EA {} has {} bytes, expected {N}",
                String::from_utf8_lossy(&e.name),
                e.value.len()
            ),
        )
    })
}

/// Interprets parsed entries. Errors carry the offset of the entry.
pub fn interpret(entries: &[(usize, EaEntry)]) -> Result<EaFacts, (usize, String)> {
    let mut f = EaFacts::default();
    let mut prev_name: Option<Vec<u8>> = None;
    for (at, e) in entries {
        let at = *at;
        let name = e.name.as_slice();
        let continues = prev_name.as_deref() == Some(name);
        prev_name = Some(name.to_vec());
        match name {
            n if n == LXUID.as_bytes() => f.uid = Some(u32::from_le_bytes(fixed::<4>(e, at)?)),
            n if n == LXGID.as_bytes() => f.gid = Some(u32::from_le_bytes(fixed::<4>(e, at)?)),
            n if n == LXMOD.as_bytes() => {
                let m = u32::from_le_bytes(fixed::<4>(e, at)?);
                if kind_of_mode(m).is_none() {
                    return Err((at, format!("$LXMOD {m:#o} has no file type")));
                }
                f.mode = Some(m);
            }
            n if n == LXDEV.as_bytes() => {
                f.rdev = Some(if e.value.len() == 4 {
                    // Linux' ntfs3 writes the kernel's 32-bit dev_t: 12 bits of major
                    // above 20 bits of minor.
                    let v = u32::from_le_bytes(fixed::<4>(e, at)?);
                    (v >> 20, v & 0xF_FFFF)
                } else {
                    let d = fixed::<8>(e, at)?;
                    (
                        u32::from_le_bytes([d[0], d[1], d[2], d[3]]),
                        u32::from_le_bytes([d[4], d[5], d[6], d[7]]),
                    )
                });
            }
            n if n == REEL_TIMES.as_bytes() => {
                let d = fixed::<48>(e, at)?;
                let mut t = [None; 4];
                for (i, slot) in t.iter_mut().enumerate() {
                    let mut s = [0u8; 8];
                    s.copy_from_slice(&d[i * 12..i * 12 + 8]);
                    let secs = i64::from_le_bytes(s);
                    let nanos = u32::from_le_bytes([
                        d[i * 12 + 8],
                        d[i * 12 + 9],
                        d[i * 12 + 10],
                        d[i * 12 + 11],
                    ]);
                    if nanos == NO_BIRTH && i == 3 {
                        continue;
                    }
                    if nanos >= 1_000_000_000 {
                        return Err((at, format!("$REEL.TIMES has {nanos} nanoseconds")));
                    }
                    *slot = Some(Timestamp::new(secs, nanos));
                }
                f.times = Some(t);
            }
            n if n == REEL_REST.as_bytes() => {
                f.rest = Some(u64::from_le_bytes(fixed::<8>(e, at)?));
            }
            n if n == REEL_FLAGS.as_bytes() => {
                f.flags = Some(u32::from_le_bytes(fixed::<4>(e, at)?));
            }
            n if n == REEL_USER.as_bytes() || n == REEL_GROUP.as_bytes() => {
                let s = String::from_utf8(e.value.clone())
                    .map_err(|_| (at, format!("{} is not UTF-8", String::from_utf8_lossy(n))))?;
                if n == REEL_USER.as_bytes() {
                    f.user = Some(s);
                } else {
                    f.group = Some(s);
                }
            }
            n if crate::xattrs::is_carried_name(n) => match f.xattrs.last_mut() {
                Some(last) if continues && last.name == n => {
                    last.value.extend_from_slice(&e.value);
                    if last.value.len() > crate::xattrs::MAX_VALUE {
                        return Err((
                            at,
                            format!(
                                "EA {} continues past the 65,536 bytes Linux allows",
                                String::from_utf8_lossy(n)
                            ),
                        ));
                    }
                }
                _ => f.xattrs.push(Xattr::new(n, e.value.clone())),
            },
            b"LXATTRB" | b"LXXATTR" => f.notes.push(format!(
                "EA {} (WSL 1's own metadata format) skipped",
                String::from_utf8_lossy(name)
            )),
            n if n.starts_with(b"$") => f.notes.push(format!(
                "EA {} is not known to reel; skipped",
                String::from_utf8_lossy(n)
            )),
            n => {
                // A Windows EA: Linux has no namespace for it; user.* is where it fits.
                let mut xname = b"user.".to_vec();
                xname.extend_from_slice(n);
                f.notes.push(format!(
                    "Windows EA {} stored as the extended attribute {}",
                    String::from_utf8_lossy(n),
                    String::from_utf8_lossy(&xname)
                ));
                f.xattrs.push(Xattr::new(xname, e.value.clone()));
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ea_lists_round_trip_and_split_long_values() {
        let entries = vec![
            EaEntry::new("$LXUID", 1000u32.to_le_bytes()),
            EaEntry::new("user.a", vec![7u8; 65_536]),
            EaEntry::new("user.empty", Vec::new()),
            EaEntry::new("user.b", b"xyz".to_vec()),
        ];
        let bytes = encode(&entries);
        let parsed = parse(&bytes).unwrap();
        assert_eq!(parsed.len(), 5, "the 65,536-byte value takes two entries");
        for (at, _) in &parsed {
            assert_eq!(at % 4, 0);
        }
        let facts = interpret(&parsed).unwrap();
        assert_eq!(facts.uid, Some(1000));
        assert_eq!(facts.xattrs.len(), 3);
        assert_eq!(facts.xattrs[0].value.len(), 65_536);
        assert!(facts.xattrs[1].value.is_empty());
    }

    #[test]
    fn bad_lists_name_the_offset() {
        let good = encode(&[
            EaEntry::new("user.a", b"1".to_vec()),
            EaEntry::new("user.b", b"2".to_vec()),
        ]);
        for cut in 1..good.len() {
            assert!(parse(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad = good.clone();
        bad[0] = 3; // NextEntryOffset not a multiple of 4
        assert_eq!(parse(&bad).unwrap_err().0, 0);
        let mut bad = good.clone();
        bad[8 + 6] = b'x'; // the NUL after the first name
        assert_eq!(parse(&bad).unwrap_err().0, 14);
        let mode = encode(&[EaEntry::new("$LXMOD", 0o777u32.to_le_bytes())]);
        assert!(interpret(&parse(&mode).unwrap()).is_err());
        let dev = encode(&[EaEntry::new("$LXDEV", vec![1u8; 6])]);
        assert!(interpret(&parse(&dev).unwrap()).is_err());
    }

    #[test]
    fn device_numbers_in_the_wsl_and_the_ntfs3_layouts() {
        // WSL: u32 major, u32 minor.
        let mut wsl = 8u32.to_le_bytes().to_vec();
        wsl.extend_from_slice(&17u32.to_le_bytes());
        let facts = interpret(&parse(&encode(&[EaEntry::new("$LXDEV", wsl)])).unwrap()).unwrap();
        assert_eq!(facts.rdev, Some((8, 17)));
        // Linux' ntfs3: the kernel's dev_t, major << 20 | minor.
        let kdev = (259u32 << 20) | 70_000;
        let facts =
            interpret(&parse(&encode(&[EaEntry::new("$LXDEV", kdev.to_le_bytes())])).unwrap())
                .unwrap();
        assert_eq!(facts.rdev, Some((259, 70_000)));
    }
}
