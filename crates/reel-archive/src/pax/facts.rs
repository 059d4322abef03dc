//! The file facts beyond ustar, as pax records: the mapping between [`FileMeta`] and the
//! keywords GNU tar, bsdtar and star use, plus reel's own.
//!
//! | fact | records | read by |
//! |---|---|---|
//! | extended attributes | `SCHILY.xattr.<name>` = raw value; names with `=`, `%` or non-printable bytes as `LIBARCHIVE.xattr.<%-encoded name>` = base64 value | GNU tar (`--xattrs`), bsdtar, star |
//! | POSIX ACLs | `SCHILY.acl.access`, `SCHILY.acl.default` in star's text form (`user:alice:r--:1000,…`) | GNU tar (`--acls`), bsdtar, star |
//! | chattr flags | `SCHILY.fflags` with libarchive's names (`schg,sappnd,nodump`); bits it has no name for in `REEL.flags` (hex) | bsdtar (`-p`), star |
//! | sparse files | GNU sparse 1.0 (see [`super::sparse`]) | GNU tar, bsdtar |
//!
//! Birth time is not written: Linux cannot set it, and every reader but reel would warn
//! about an unknown keyword on every member. `LIBARCHIVE.creationtime` is read when
//! present.

use base64::Engine;
use reel_stream::{Acl, FileMeta, NameCache, Timestamp, Xattr};

pub const XATTR_SCHILY: &str = "SCHILY.xattr.";
pub const XATTR_LIBARCHIVE: &str = "LIBARCHIVE.xattr.";
pub const ACL_ACCESS: &str = "SCHILY.acl.access";
pub const ACL_DEFAULT: &str = "SCHILY.acl.default";
pub const FFLAGS: &str = "SCHILY.fflags";
pub const REEL_FLAGS: &str = "REEL.flags";
pub const CREATION_TIME: &str = "LIBARCHIVE.creationtime";

fn plain_name(name: &[u8]) -> bool {
    !name.is_empty()
        && std::str::from_utf8(name).is_ok()
        && name
            .iter()
            .all(|b| *b > 0x20 && *b != 0x7F && *b != b'=' && *b != b'%')
}

fn percent_encode(name: &[u8]) -> String {
    let mut s = String::new();
    for b in name {
        if *b <= 0x20 || *b >= 0x7F || *b == b'%' || *b == b'=' {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(*b as char);
        }
    }
    s
}

fn percent_decode(text: &str) -> Option<Vec<u8>> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The pax records of `meta`'s extended facts, in a stable order.
pub fn records_of(meta: &FileMeta) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for x in &meta.xattrs {
        if plain_name(&x.name) {
            out.push((
                format!("{XATTR_SCHILY}{}", String::from_utf8_lossy(&x.name)),
                x.value.clone(),
            ));
        } else {
            out.push((
                format!("{XATTR_LIBARCHIVE}{}", percent_encode(&x.name)),
                base64::engine::general_purpose::STANDARD
                    .encode(&x.value)
                    .into_bytes(),
            ));
        }
    }
    if let Some(a) = &meta.acl_access {
        out.push((ACL_ACCESS.into(), a.to_text().into_bytes()));
    }
    if let Some(a) = &meta.acl_default {
        out.push((ACL_DEFAULT.into(), a.to_text().into_bytes()));
    }
    if meta.flags != 0 {
        let (text, rest) = reel_stream::flags::fflags_text(meta.flags);
        if !text.is_empty() {
            out.push((FFLAGS.into(), text.into_bytes()));
        }
        if rest != 0 {
            out.push((REEL_FLAGS.into(), format!("{rest:#x}").into_bytes()));
        }
    }
    out
}

/// What a record did to the metadata.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The record was understood and applied.
    Applied,
    /// Not one of these records: keep it as an unknown record.
    NotMine,
}

/// Applies one record to `meta`. `Err` is a malformed value (the message says why).
pub fn take_record(
    meta: &mut FileMeta,
    key: &str,
    value: &[u8],
    names: &mut NameCache,
) -> Result<Taken, String> {
    if let Some(name) = key.strip_prefix(XATTR_SCHILY) {
        return Ok(put_xattr(meta, name.as_bytes(), value.to_vec()));
    }
    if let Some(name) = key.strip_prefix(XATTR_LIBARCHIVE) {
        let name = percent_decode(name).ok_or_else(|| format!("bad %-encoding in {key}"))?;
        if meta.xattrs.iter().any(|x| x.name == name) {
            return Ok(Taken::Applied);
        }
        // libarchive writes the base64 without its `=` padding.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let value = lenient
            .decode(value)
            .map_err(|e| format!("{key}: bad base64 ({e})"))?;
        return Ok(put_xattr(meta, &name, value));
    }
    match key {
        ACL_ACCESS | ACL_DEFAULT => {
            let text = std::str::from_utf8(value).map_err(|_| format!("{key} is not UTF-8"))?;
            match Acl::from_text(text, names) {
                Ok(acl) => {
                    if key == ACL_ACCESS {
                        meta.acl_access = Some(acl);
                    } else {
                        meta.acl_default = Some(acl);
                    }
                    Ok(Taken::Applied)
                }
                // An ACL naming users unknown here is not damage: keep the record as is.
                Err(_) => Ok(Taken::NotMine),
            }
        }
        FFLAGS => {
            let text = std::str::from_utf8(value).map_err(|_| format!("{key} is not UTF-8"))?;
            let (bits, _unknown) = reel_stream::flags::parse_fflags(text);
            meta.flags |= bits;
            Ok(Taken::Applied)
        }
        REEL_FLAGS => {
            let text = std::str::from_utf8(value).map_err(|_| format!("{key} is not UTF-8"))?;
            let bits = match text.strip_prefix("0x") {
                Some(h) => u32::from_str_radix(h, 16),
                None => text.parse(),
            }
            .map_err(|_| format!("{key}={text:?} is not a number"))?;
            meta.flags |= bits & reel_stream::flags::RESTORABLE;
            Ok(Taken::Applied)
        }
        CREATION_TIME => {
            let text = std::str::from_utf8(value).map_err(|_| format!("{key} is not UTF-8"))?;
            meta.btime = Some(
                Timestamp::parse_decimal(text)
                    .ok_or_else(|| format!("{key}={text:?} is not a time"))?,
            );
            Ok(Taken::Applied)
        }
        _ => Ok(Taken::NotMine),
    }
}

fn put_xattr(meta: &mut FileMeta, name: &[u8], value: Vec<u8>) -> Taken {
    // GNU tar also stores ACLs as raw xattrs; take them when the text form is absent.
    let acl_slot = if name == reel_stream::acl::XATTR_ACCESS.as_bytes() {
        Some(&mut meta.acl_access)
    } else if name == reel_stream::acl::XATTR_DEFAULT.as_bytes() {
        Some(&mut meta.acl_default)
    } else {
        None
    };
    if let Some(slot) = acl_slot {
        if slot.is_none()
            && let Ok(acl) = Acl::from_xattr(&value)
        {
            *slot = Some(acl);
        }
        return Taken::Applied;
    }
    if !reel_stream::xattrs::is_carried_name(name) {
        return Taken::NotMine;
    }
    match meta.xattrs.iter_mut().find(|x| x.name == name) {
        Some(x) => x.value = value,
        None => {
            meta.xattrs.push(Xattr::new(name, value));
            meta.xattrs.sort();
        }
    }
    Taken::Applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use reel_stream::FileKind;

    #[test]
    fn facts_round_trip_through_records() {
        let mut m = FileMeta::new(FileKind::Regular, 0o640);
        m.xattrs = vec![
            Xattr::new("user.plain", b"v\0\xff".to_vec()),
            Xattr::new(b"user.we=ird\n\xff".to_vec(), b"x".to_vec()),
        ];
        m.xattrs.sort();
        let mut names = NameCache::new();
        m.acl_access = Some(
            Acl::from_text(
                "user::rw-,user:4242:r--:4242,group::r--,mask::r--,other::---",
                &mut names,
            )
            .unwrap(),
        );
        m.flags = reel_stream::flags::IMMUTABLE | reel_stream::flags::NOCOMP;
        let recs = records_of(&m);
        let mut back = FileMeta::new(FileKind::Regular, 0o640);
        for (k, v) in &recs {
            assert_eq!(
                take_record(&mut back, k, v, &mut names).unwrap(),
                Taken::Applied,
                "{k}"
            );
        }
        assert_eq!(back.xattrs, m.xattrs);
        assert_eq!(back.acl_access, m.acl_access);
        assert_eq!(back.flags, m.flags);
    }
}
