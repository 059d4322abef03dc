//! POSIX ACLs: the kernel's binary form (the `system.posix_acl_access` /
//! `system.posix_acl_default` xattr values) and the text form tar archives carry.
//!
//! Binary form (little-endian): `u32 version = 2`, then one `u16 tag, u16 perm, u32 id`
//! entry per ACL entry, sorted by tag then id (the order the kernel demands).
//!
//! Text form: star's, which bsdtar writes and GNU tar and bsdtar both read:
//! `user::rw-,user:alice:r--:1000,group::r--,group:staff:r-x:50,mask::r-x,other::r--`
//! (named entries carry the name and, as a fourth field, the numeric id). The parser also
//! takes GNU tar's newline-separated form without ids, and comments.

use crate::names::NameCache;

pub const XATTR_ACCESS: &str = "system.posix_acl_access";
pub const XATTR_DEFAULT: &str = "system.posix_acl_default";

const VERSION: u32 = 2;
const TAG_USER_OBJ: u16 = 0x01;
const TAG_USER: u16 = 0x02;
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_GROUP: u16 = 0x08;
const TAG_MASK: u16 = 0x10;
const TAG_OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;

/// Who an ACL entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AclTag {
    UserObj,
    /// A named user: the id on the system it was captured on, and its name there if known.
    User {
        id: u32,
        name: Option<String>,
    },
    GroupObj,
    Group {
        id: u32,
        name: Option<String>,
    },
    Mask,
    Other,
}

impl AclTag {
    fn code(&self) -> u16 {
        match self {
            AclTag::UserObj => TAG_USER_OBJ,
            AclTag::User { .. } => TAG_USER,
            AclTag::GroupObj => TAG_GROUP_OBJ,
            AclTag::Group { .. } => TAG_GROUP,
            AclTag::Mask => TAG_MASK,
            AclTag::Other => TAG_OTHER,
        }
    }

    fn id(&self) -> u32 {
        match self {
            AclTag::User { id, .. } | AclTag::Group { id, .. } => *id,
            _ => UNDEFINED_ID,
        }
    }
}

/// One entry: who, and `rwx` bits (4 = read, 2 = write, 1 = execute).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclEntry {
    pub tag: AclTag,
    pub perm: u8,
}

/// A POSIX ACL (access or default).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Acl {
    pub entries: Vec<AclEntry>,
}

fn perm_text(p: u8) -> String {
    let mut s = String::with_capacity(3);
    s.push(if p & 4 != 0 { 'r' } else { '-' });
    s.push(if p & 2 != 0 { 'w' } else { '-' });
    s.push(if p & 1 != 0 { 'x' } else { '-' });
    s
}

impl Acl {
    /// Sorts the entries into the kernel's order.
    pub fn normalize(&mut self) {
        self.entries.sort_by_key(|e| (e.tag.code(), e.tag.id()));
    }

    /// Parses the kernel's binary form.
    pub fn from_xattr(value: &[u8]) -> Result<Acl, String> {
        if value.len() < 4 {
            return Err(format!("ACL of {} bytes has no header", value.len()));
        }
        let version = u32::from_le_bytes([value[0], value[1], value[2], value[3]]);
        if version != VERSION {
            return Err(format!("ACL version {version} (expected {VERSION})"));
        }
        let body = &value[4..];
        if !body.len().is_multiple_of(8) {
            return Err(format!(
                "ACL body of {} bytes is not a whole number of 8-byte entries",
                body.len()
            ));
        }
        let mut entries = Vec::with_capacity(body.len() / 8);
        for (i, e) in body.chunks_exact(8).enumerate() {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            if perm > 7 {
                return Err(format!("ACL entry {i} has permission bits {perm:#x}"));
            }
            let tag = match tag {
                TAG_USER_OBJ => AclTag::UserObj,
                TAG_USER => AclTag::User { id, name: None },
                TAG_GROUP_OBJ => AclTag::GroupObj,
                TAG_GROUP => AclTag::Group { id, name: None },
                TAG_MASK => AclTag::Mask,
                TAG_OTHER => AclTag::Other,
                other => return Err(format!("ACL entry {i} has unknown tag {other:#x}")),
            };
            entries.push(AclEntry {
                tag,
                perm: perm as u8,
            });
        }
        Ok(Acl { entries })
    }

    /// The kernel's binary form, with named entries' ids taken from `ids` (which maps a
    /// tag to the id to use on this system).
    pub fn to_xattr_with(&self, mut ids: impl FnMut(&AclTag) -> u32) -> Vec<u8> {
        let mut sorted: Vec<(u16, u32, u8)> = self
            .entries
            .iter()
            .map(|e| {
                let id = match &e.tag {
                    AclTag::User { .. } | AclTag::Group { .. } => ids(&e.tag),
                    _ => UNDEFINED_ID,
                };
                (e.tag.code(), id, e.perm)
            })
            .collect();
        sorted.sort();
        let mut out = Vec::with_capacity(4 + 8 * sorted.len());
        out.extend_from_slice(&VERSION.to_le_bytes());
        for (tag, id, perm) in sorted {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&u16::from(perm).to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        }
        out
    }

    /// The binary form with the captured ids.
    pub fn to_xattr(&self) -> Vec<u8> {
        self.to_xattr_with(|t| t.id())
    }

    /// The binary form for this system: named entries map by name when the name is known
    /// here (as tar does with owners), else by the recorded id.
    pub fn to_xattr_here(&self, names: &mut NameCache) -> Vec<u8> {
        self.to_xattr_with(|t| match t {
            AclTag::User { id, name } => {
                name.as_deref().and_then(|n| names.uid_of(n)).unwrap_or(*id)
            }
            AclTag::Group { id, name } => {
                name.as_deref().and_then(|n| names.gid_of(n)).unwrap_or(*id)
            }
            _ => UNDEFINED_ID,
        })
    }

    /// Fills in the names of named entries from this system's user and group databases.
    pub fn resolve_names(&mut self, names: &mut NameCache) {
        for e in &mut self.entries {
            match &mut e.tag {
                AclTag::User { id, name } if name.is_none() => *name = names.user_name(*id),
                AclTag::Group { id, name } if name.is_none() => *name = names.group_name(*id),
                _ => {}
            }
        }
    }

    /// The star text form (see the module documentation), in the kernel's order.
    pub fn to_text(&self) -> String {
        let mut sorted = self.clone();
        sorted.normalize();
        let parts: Vec<String> = sorted
            .entries
            .iter()
            .map(|e| {
                let p = perm_text(e.perm);
                match &e.tag {
                    AclTag::UserObj => format!("user::{p}"),
                    AclTag::GroupObj => format!("group::{p}"),
                    AclTag::Mask => format!("mask::{p}"),
                    AclTag::Other => format!("other::{p}"),
                    AclTag::User { id, name } => format!(
                        "user:{}:{p}:{id}",
                        name.clone().unwrap_or_else(|| id.to_string())
                    ),
                    AclTag::Group { id, name } => format!(
                        "group:{}:{p}:{id}",
                        name.clone().unwrap_or_else(|| id.to_string())
                    ),
                }
            })
            .collect();
        parts.join(",")
    }

    /// Parses the text form. Named entries without a numeric id need the name to be known
    /// on this system (`names`) or to be numeric.
    pub fn from_text(text: &str, names: &mut NameCache) -> Result<Acl, String> {
        let mut entries = Vec::new();
        for raw in text.split([',', '\n']) {
            let item = raw.split('#').next().unwrap_or("").trim();
            if item.is_empty() {
                continue;
            }
            let item = item.strip_prefix("default:").unwrap_or(item);
            let fields: Vec<&str> = item.split(':').collect();
            if fields.len() < 3 || fields.len() > 4 {
                return Err(format!(
                    "ACL entry {item:?} is not tag:qualifier:perms[:id]"
                ));
            }
            let mut perm = 0u8;
            for c in fields[2].chars() {
                match c {
                    'r' => perm |= 4,
                    'w' => perm |= 2,
                    'x' => perm |= 1,
                    '-' => {}
                    _ => return Err(format!("ACL entry {item:?} has permission {c:?}")),
                }
            }
            let qualifier = fields[1];
            let explicit_id = match fields.get(3) {
                Some(t) => Some(
                    t.parse::<u32>()
                        .map_err(|_| format!("ACL entry {item:?} has a bad id {t:?}"))?,
                ),
                None => None,
            };
            let named = |is_user: bool, names: &mut NameCache| -> Result<AclTag, String> {
                let numeric = qualifier.parse::<u32>().ok();
                let id = match explicit_id.or(numeric) {
                    Some(id) => id,
                    None => {
                        let found = if is_user {
                            names.uid_of(qualifier)
                        } else {
                            names.gid_of(qualifier)
                        };
                        found.ok_or_else(|| {
                            format!(
                                "ACL entry {item:?} names {} {qualifier:?}, unknown here and without a numeric id",
                                if is_user { "user" } else { "group" }
                            )
                        })?
                    }
                };
                let name = (numeric.is_none()).then(|| qualifier.to_string());
                Ok(if is_user {
                    AclTag::User { id, name }
                } else {
                    AclTag::Group { id, name }
                })
            };
            let tag = match (fields[0], qualifier.is_empty()) {
                ("user" | "u", true) => AclTag::UserObj,
                ("user" | "u", false) => named(true, names)?,
                ("group" | "g", true) => AclTag::GroupObj,
                ("group" | "g", false) => named(false, names)?,
                ("mask" | "m", _) => AclTag::Mask,
                ("other" | "o", _) => AclTag::Other,
                (t, _) => return Err(format!("ACL entry {item:?} has unknown tag {t:?}")),
            };
            entries.push(AclEntry { tag, perm });
        }
        if entries.is_empty() {
            return Err("empty ACL".into());
        }
        let mut acl = Acl { entries };
        acl.normalize();
        Ok(acl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_text_round_trip() {
        let acl = Acl {
            entries: vec![
                AclEntry {
                    tag: AclTag::UserObj,
                    perm: 6,
                },
                AclEntry {
                    tag: AclTag::User {
                        id: 1234,
                        name: None,
                    },
                    perm: 4,
                },
                AclEntry {
                    tag: AclTag::GroupObj,
                    perm: 4,
                },
                AclEntry {
                    tag: AclTag::Mask,
                    perm: 6,
                },
                AclEntry {
                    tag: AclTag::Other,
                    perm: 0,
                },
            ],
        };
        let bin = acl.to_xattr();
        assert_eq!(bin.len(), 4 + 5 * 8);
        assert_eq!(Acl::from_xattr(&bin).unwrap(), acl);
        let text = acl.to_text();
        assert_eq!(
            text,
            "user::rw-,user:1234:r--:1234,group::r--,mask::rw-,other::---"
        );
        let mut names = NameCache::new();
        assert_eq!(Acl::from_text(&text, &mut names).unwrap(), acl);
        // GNU tar's form: newline-separated, numeric qualifier, no id field.
        let gnu = "user::rw-\nuser:1234:r--\ngroup::r--\nmask::rw-\nother::---\n";
        assert_eq!(Acl::from_text(gnu, &mut names).unwrap(), acl);
    }

    #[test]
    fn malformed_acls_are_refused() {
        for bad in [
            &b""[..],
            b"\x02\0\0",
            b"\x01\0\0\0",
            b"\x02\0\0\0\x01\0\x06\0\xff",
        ] {
            assert!(Acl::from_xattr(bad).is_err());
        }
        let mut names = NameCache::new();
        for bad in [
            "",
            "user::rwz",
            "bogus::rw-",
            "user:nosuchuser-reel-test:rw-",
            "u:1:r:x",
        ] {
            assert!(Acl::from_text(bad, &mut names).is_err(), "{bad}");
        }
    }
}
