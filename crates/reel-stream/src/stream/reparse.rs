//! The REPARSE_DATA stream: a REPARSE_DATA_BUFFER (`u32 ReparseTag, u16 ReparseDataLength,
//! u16 Reserved`, then the tag's data).
//!
//! - A symlink is written as IO_REPARSE_TAG_SYMLINK (`0xA000000C`): `u16
//!   SubstituteNameOffset, u16 SubstituteNameLength, u16 PrintNameOffset, u16
//!   PrintNameLength, u32 Flags` (1 = relative), then both names in UTF-16LE — reel writes
//!   the Linux target, byte for byte ([`super::names`]), as both names. WSL's own
//!   IO_REPARSE_TAG_LX_SYMLINK (`0xA000001D`: `u32 version = 2`, then the UTF-8 target) is
//!   read too.
//! - A fifo, character device, block device, socket: WSL's IO_REPARSE_TAG_LX_FIFO
//!   (`0x80000024`), LX_CHR (`0x80000025`), LX_BLK (`0x80000026`) and AF_UNIX
//!   (`0x80000023`), with no data; device numbers are in the EA `$LXDEV`.

use crate::meta::FileKind;

use super::names::{from_utf16, to_utf16, utf16_bytes, utf16_units};
use super::{le16, le32};

pub const TAG_MOUNT_POINT: u32 = 0xA000_0003;
pub const TAG_SIS: u32 = 0x8000_0007;
pub const TAG_SYMLINK: u32 = 0xA000_000C;
pub const TAG_LX_SYMLINK: u32 = 0xA000_001D;
pub const TAG_AF_UNIX: u32 = 0x8000_0023;
pub const TAG_LX_FIFO: u32 = 0x8000_0024;
pub const TAG_LX_CHR: u32 = 0x8000_0025;
pub const TAG_LX_BLK: u32 = 0x8000_0026;
const SYMLINK_FLAG_RELATIVE: u32 = 1;

/// What a reparse buffer describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reparse {
    Symlink(Vec<u8>),
    Special(FileKind),
    /// A tag Linux has nothing for (mount points, SIS, cloud files, …).
    Other {
        tag: u32,
    },
}

/// The name of a tag, for messages.
pub fn tag_name(tag: u32) -> String {
    let n = match tag {
        TAG_MOUNT_POINT => "MOUNT_POINT",
        TAG_SIS => "SIS",
        TAG_SYMLINK => "SYMLINK",
        TAG_LX_SYMLINK => "LX_SYMLINK",
        TAG_AF_UNIX => "AF_UNIX",
        TAG_LX_FIFO => "LX_FIFO",
        TAG_LX_CHR => "LX_CHR",
        TAG_LX_BLK => "LX_BLK",
        _ => return format!("{tag:#010x}"),
    };
    format!("IO_REPARSE_TAG_{n} ({tag:#010x})")
}

fn buffer(tag: u32, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&(data.len() as u16).to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(data);
    out
}

/// The reparse buffer of a symlink target.
pub fn symlink(target: &[u8]) -> Vec<u8> {
    let name = utf16_bytes(&to_utf16(target));
    let mut data = Vec::with_capacity(12 + 2 * name.len());
    let len = name.len() as u16;
    data.extend_from_slice(&0u16.to_le_bytes());
    data.extend_from_slice(&len.to_le_bytes());
    data.extend_from_slice(&len.to_le_bytes());
    data.extend_from_slice(&len.to_le_bytes());
    let flags = if target.first() == Some(&b'/') {
        0
    } else {
        SYMLINK_FLAG_RELATIVE
    };
    data.extend_from_slice(&flags.to_le_bytes());
    data.extend_from_slice(&name);
    data.extend_from_slice(&name);
    buffer(TAG_SYMLINK, &data)
}

/// The reparse buffer of a special file (`None` for kinds that have none).
pub fn special(kind: FileKind) -> Option<Vec<u8>> {
    let tag = match kind {
        FileKind::Fifo => TAG_LX_FIFO,
        FileKind::CharDevice => TAG_LX_CHR,
        FileKind::BlockDevice => TAG_LX_BLK,
        FileKind::Socket => TAG_AF_UNIX,
        _ => return None,
    };
    Some(buffer(tag, &[]))
}

/// Decodes a reparse buffer; errors carry the offset inside `data`.
pub fn decode(data: &[u8]) -> Result<Reparse, (usize, String)> {
    if data.len() < 8 {
        return Err((
            0,
            format!("reparse buffer of {} bytes (at least 8)", data.len()),
        ));
    }
    let tag = le32(data, 0);
    let len = le16(data, 4) as usize;
    if 8 + len != data.len() {
        return Err((
            4,
            format!(
                "ReparseDataLength {len} does not match the {} bytes after the reparse header",
                data.len() - 8
            ),
        ));
    }
    let body = &data[8..];
    match tag {
        TAG_SYMLINK => {
            if body.len() < 12 {
                return Err((8, "symlink reparse data shorter than 12 bytes".into()));
            }
            let (so, sl) = (le16(body, 0) as usize, le16(body, 2) as usize);
            let flags = le32(body, 8);
            let names = &body[12..];
            let sub = names.get(so..so + sl).ok_or_else(|| {
                (
                    8,
                    format!(
                        "substitute name {so}+{sl} lies outside the {} name bytes",
                        names.len()
                    ),
                )
            })?;
            let units =
                utf16_units(sub).ok_or_else(|| (20 + so, "odd-length UTF-16 name".into()))?;
            let mut target = from_utf16(&units).map_err(|e| (20 + so, e))?;
            if flags & SYMLINK_FLAG_RELATIVE == 0 && target.starts_with(br"\??\") {
                // A Windows absolute path: keep it readable, without the NT prefix.
                target.drain(..4);
            }
            Ok(Reparse::Symlink(target))
        }
        TAG_LX_SYMLINK => {
            if body.len() < 4 {
                return Err((8, "LX_SYMLINK data shorter than its version field".into()));
            }
            let version = le32(body, 0);
            if version != 2 {
                return Err((8, format!("LX_SYMLINK version {version} (expected 2)")));
            }
            Ok(Reparse::Symlink(body[4..].to_vec()))
        }
        TAG_LX_FIFO => Ok(Reparse::Special(FileKind::Fifo)),
        TAG_LX_CHR => Ok(Reparse::Special(FileKind::CharDevice)),
        TAG_LX_BLK => Ok(Reparse::Special(FileKind::BlockDevice)),
        TAG_AF_UNIX => Ok(Reparse::Special(FileKind::Socket)),
        other => Ok(Reparse::Other { tag: other }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reparse_round_trips() {
        for t in [&b"../rel/target"[..], b"/abs/x", b"odd\xffname", b""] {
            assert_eq!(decode(&symlink(t)).unwrap(), Reparse::Symlink(t.to_vec()));
        }
        for k in [
            FileKind::Fifo,
            FileKind::CharDevice,
            FileKind::BlockDevice,
            FileKind::Socket,
        ] {
            assert_eq!(decode(&special(k).unwrap()).unwrap(), Reparse::Special(k));
        }
        let mut lx = buffer(TAG_LX_SYMLINK, &[2, 0, 0, 0, b'a', b'/', b'b']);
        assert_eq!(decode(&lx).unwrap(), Reparse::Symlink(b"a/b".to_vec()));
        lx[8] = 1;
        assert!(decode(&lx).is_err());
        let s = symlink(b"x");
        for cut in 0..s.len() {
            assert!(decode(&s[..cut]).is_err());
        }
    }
}
