//! chattr flags (`FS_IOC_GETFLAGS` / `FS_IOC_SETFLAGS`): which ones reel carries, their
//! `lsattr` letters and the names libarchive uses in `SCHILY.fflags`.
//!
//! Only flags a user can set are carried ([`RESTORABLE`]); the file system's own
//! (extents, inline data, verity, …) are not. On restore the flags that change how content
//! is stored ([`EARLY`]: no-CoW, compression) are set on the empty file before the content;
//! the others last, after times and after the rename, because `+i`/`+a` forbid changing
//! times and renaming.

use std::os::fd::AsFd;

pub const SECRM: u32 = 0x0000_0001;
pub const UNRM: u32 = 0x0000_0002;
pub const COMPR: u32 = 0x0000_0004;
pub const SYNC: u32 = 0x0000_0008;
pub const IMMUTABLE: u32 = 0x0000_0010;
pub const APPEND: u32 = 0x0000_0020;
pub const NODUMP: u32 = 0x0000_0040;
pub const NOATIME: u32 = 0x0000_0080;
pub const NOCOMP: u32 = 0x0000_0400;
pub const JOURNAL_DATA: u32 = 0x0000_4000;
pub const NOTAIL: u32 = 0x0000_8000;
pub const DIRSYNC: u32 = 0x0001_0000;
pub const TOPDIR: u32 = 0x0002_0000;
pub const NOCOW: u32 = 0x0080_0000;
pub const PROJINHERIT: u32 = 0x2000_0000;

/// Flags reel captures and restores.
pub const RESTORABLE: u32 = SECRM
    | UNRM
    | COMPR
    | SYNC
    | IMMUTABLE
    | APPEND
    | NODUMP
    | NOATIME
    | NOCOMP
    | JOURNAL_DATA
    | NOTAIL
    | DIRSYNC
    | TOPDIR
    | NOCOW
    | PROJINHERIT;

/// Flags set before the content is written (they only take effect on an empty file).
pub const EARLY: u32 = NOCOW | COMPR | NOCOMP;

/// (bit, lsattr letter, libarchive name when set, other accepted names).
const TABLE: &[(u32, char, &str, &[&str])] = &[
    (SECRM, 's', "secdel", &[]),
    (UNRM, 'u', "uunlink", &[]),
    (COMPR, 'c', "compress", &[]),
    (SYNC, 'S', "sync", &[]),
    (IMMUTABLE, 'i', "schg", &["schange", "simmutable"]),
    (APPEND, 'a', "sappnd", &["sappend"]),
    (NODUMP, 'd', "nodump", &[]),
    (NOATIME, 'A', "noatime", &[]),
    (NOCOMP, 'm', "nocompress-reel", &[]),
    (JOURNAL_DATA, 'j', "journal-data", &["journal"]),
    (NOTAIL, 't', "notail", &[]),
    (DIRSYNC, 'D', "dirsync", &[]),
    (TOPDIR, 'T', "topdir", &[]),
    (NOCOW, 'C', "nocow", &[]),
    (PROJINHERIT, 'P', "projinherit", &[]),
];

/// `lsattr`-style letters of the flags that are set (e.g. `ia`).
pub fn letters(flags: u32) -> String {
    TABLE
        .iter()
        .filter(|(bit, ..)| flags & bit != 0)
        .map(|(_, c, ..)| *c)
        .collect()
}

/// libarchive's `SCHILY.fflags` text of the flags libarchive knows (comma-separated), and
/// the bits it cannot name (carried separately in `REEL.flags`).
pub fn fflags_text(flags: u32) -> (String, u32) {
    let mut names = Vec::new();
    let mut rest = flags & RESTORABLE;
    for (bit, _, name, _) in TABLE {
        if flags & bit != 0 && !name.ends_with("-reel") {
            names.push(*name);
            rest &= !bit;
        }
    }
    (names.join(","), rest)
}

/// Parses `SCHILY.fflags` text; unknown names are returned to be reported.
pub fn parse_fflags(text: &str) -> (u32, Vec<String>) {
    let mut flags = 0;
    let mut unknown = Vec::new();
    for name in text
        .split([',', ' '])
        .map(str::trim)
        .filter(|n| !n.is_empty())
    {
        match TABLE
            .iter()
            .find(|(_, _, n, aliases)| *n == name || aliases.contains(&name))
        {
            Some((bit, ..)) => flags |= bit,
            None => unknown.push(name.to_string()),
        }
    }
    (flags, unknown)
}

/// The chattr flags of an open file. `Ok(None)` when the file system has none.
pub fn get(fd: impl AsFd) -> std::io::Result<Option<u32>> {
    match rustix::fs::ioctl_getflags(fd) {
        Ok(f) => Ok(Some(f.bits())),
        Err(rustix::io::Errno::NOTTY | rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::INVAL) => {
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Sets the restorable flags in `mask` to their value in `wanted`, keeping the others.
/// Does nothing when they already match.
pub fn set(fd: impl AsFd, wanted: u32, mask: u32) -> std::io::Result<()> {
    let fd = fd.as_fd();
    let mask = mask & RESTORABLE;
    let current = match rustix::fs::ioctl_getflags(fd) {
        Ok(f) => f.bits(),
        Err(e) if wanted & mask == 0 => {
            // Nothing to set on a file system without flags.
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let new = (current & !mask) | (wanted & mask);
    if new == current {
        return Ok(());
    }
    rustix::fs::ioctl_setflags(fd, rustix::fs::IFlags::from_bits_retain(new))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let f = IMMUTABLE | NODUMP | NOATIME | APPEND | SYNC | NOCOMP;
        let (text, rest) = fflags_text(f);
        assert_eq!(text, "sync,schg,sappnd,nodump,noatime");
        assert_eq!(rest, NOCOMP);
        let (parsed, unknown) = parse_fflags(&text);
        assert_eq!(parsed | rest, f);
        assert!(unknown.is_empty());
        assert_eq!(parse_fflags("uchg,schg").1, vec!["uchg".to_string()]);
        assert_eq!(letters(IMMUTABLE | APPEND | NODUMP), "iad");
    }
}
