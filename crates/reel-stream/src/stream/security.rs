//! The SECURITY stream in reel's layout: a Linux file's POSIX ACLs and `security.*`
//! attributes (SELinux label, file capabilities, IMA/EVM).
//!
//! Layout (little-endian): the 8 bytes `REELSEC1`, then entries of `u16 name length`, the
//! attribute name (`system.posix_acl_access`, `system.posix_acl_default`,
//! `security.selinux`, `security.capability`, …), `u32 value length`, the value — each
//! value exactly as the Linux kernel stores it (ACLs in their binary xattr form).
//!
//! A SECURITY stream that does not start with the magic is a Windows security descriptor;
//! Linux cannot hold it, and the writer reports and skips it.

use crate::acl::{Acl, XATTR_ACCESS, XATTR_DEFAULT};
use crate::meta::FileMeta;
use crate::xattrs::Xattr;

use super::{le16, le32};

pub const MAGIC: &[u8; 8] = b"REELSEC1";

/// The SECURITY stream of a file, or `None` when it has nothing to put there.
pub fn encode(meta: &FileMeta) -> Option<Vec<u8>> {
    let mut entries: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    if let Some(a) = &meta.acl_access {
        entries.push((XATTR_ACCESS.as_bytes().to_vec(), a.to_xattr()));
    }
    if let Some(a) = &meta.acl_default {
        entries.push((XATTR_DEFAULT.as_bytes().to_vec(), a.to_xattr()));
    }
    for x in meta.xattrs.iter().filter(|x| x.is_security()) {
        entries.push((x.name.clone(), x.value.clone()));
    }
    if entries.is_empty() {
        return None;
    }
    let mut out = MAGIC.to_vec();
    for (name, value) in entries {
        out.extend_from_slice(&(name.len() as u16).to_le_bytes());
        out.extend_from_slice(&name);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        out.extend_from_slice(&value);
    }
    Some(out)
}

/// What a SECURITY stream holds.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecurityFacts {
    pub acl_access: Option<Acl>,
    pub acl_default: Option<Acl>,
    pub xattrs: Vec<Xattr>,
    /// The stream was a Windows security descriptor (not applied).
    pub windows_descriptor: bool,
}

/// Parses a SECURITY stream; errors carry the offset inside `data`.
pub fn decode(data: &[u8]) -> Result<SecurityFacts, (usize, String)> {
    let mut f = SecurityFacts::default();
    if !data.starts_with(MAGIC) {
        f.windows_descriptor = true;
        return Ok(f);
    }
    let mut pos = MAGIC.len();
    while pos < data.len() {
        if data.len() - pos < 2 {
            return Err((pos, "security entry name length cut short".into()));
        }
        let nlen = le16(data, pos) as usize;
        let name = data.get(pos + 2..pos + 2 + nlen).ok_or_else(|| {
            (
                pos,
                format!("security entry name of {nlen} bytes cut short"),
            )
        })?;
        let vpos = pos + 2 + nlen;
        if data.len() < vpos + 4 {
            return Err((vpos, "security entry value length cut short".into()));
        }
        let vlen = le32(data, vpos) as usize;
        let value = data.get(vpos + 4..vpos + 4 + vlen).ok_or_else(|| {
            (
                vpos,
                format!("security entry value of {vlen} bytes cut short"),
            )
        })?;
        if name == XATTR_ACCESS.as_bytes() || name == XATTR_DEFAULT.as_bytes() {
            let acl = Acl::from_xattr(value).map_err(|e| (vpos + 4, e))?;
            if name == XATTR_ACCESS.as_bytes() {
                f.acl_access = Some(acl);
            } else {
                f.acl_default = Some(acl);
            }
        } else if name.starts_with(b"security.") {
            if value.len() > crate::xattrs::MAX_VALUE {
                return Err((vpos, format!("security attribute value of {vlen} bytes")));
            }
            f.xattrs.push(Xattr::new(name, value));
        } else {
            return Err((
                pos,
                format!(
                    "security entry {:?} is neither an ACL nor a security.* attribute",
                    String::from_utf8_lossy(name)
                ),
            ));
        }
        pos = vpos + 4 + vlen;
    }
    Ok(f)
}
