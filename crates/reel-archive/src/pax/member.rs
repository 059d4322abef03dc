//! What a member's headers say, made into one description: its main header block (ustar,
//! v7 or old GNU), then the pax records before it, taken key by key, then its sparse plan.
//!
//! Parsing only: reading the blocks, and the member's content after them, is the reader's
//! (`read.rs`). Damage found here does not stop the headers being read to their end, so
//! that reading goes on at the next member: the first damage is kept ([`HeaderDamage`]) and
//! the member is reported damaged once its headers are read.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use reel_stream::{FileKind, FileMeta, NameCache, Timestamp};

use crate::error::ArchiveError;
use crate::pax::gnu::{self, VolumePart};
use crate::pax::header::{self, BLOCK, field, kind};
use crate::pax::{facts, sparse};

/// Vendor keys that describe the archived file but that a restore has no use for: recognised
/// so that they are not carried along as unknown records.
const IGNORED_KEY_PREFIXES: [&str; 12] = [
    "SCHILY.dev",
    "SCHILY.ino",
    "SCHILY.nlink",
    "SCHILY.filetype",
    "SCHILY.tarfiletype",
    "SCHILY.archtype",
    "SCHILY.volhdr.",
    "SCHILY.id",
    "SCHILY.dumpdate",
    "SCHILY.offset",
    "LIBARCHIVE.symlinktype",
    "GNU.dumpdir",
];

/// Red Hat's tar (and GNU tar with `--selinux`) stores the SELinux label under this key.
const RHT_SELINUX: &str = "RHT.security.selinux";
/// star's real size of a sparse file.
const SCHILY_REALSIZE: &str = "SCHILY.realsize";

pub(super) fn corrupt(offset: u64, what: impl Into<String>) -> ArchiveError {
    ArchiveError::Corrupt {
        offset,
        what: what.into(),
    }
}

pub(super) fn trim_slashes(mut path: Vec<u8>) -> Vec<u8> {
    while path.len() > 1 && path.ends_with(b"/") {
        path.pop();
    }
    path
}

fn text(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok()
}

fn decimal(v: &[u8]) -> Option<u64> {
    text(v).and_then(|t| t.trim().parse().ok())
}

/// A member's main header block and where its headers are.
pub(super) struct MainHeader<'b> {
    pub block: &'b [u8; BLOCK],
    /// Offset of `block`, where damage in its fields is reported.
    pub at: u64,
    /// Offset of the member's first header block (extended headers included), where damage
    /// in its pax records is reported.
    pub first: u64,
    /// The size field (already checked).
    pub size: u64,
}

impl MainHeader<'_> {
    fn flag(&self) -> u8 {
        self.block[field::TYPEFLAG]
    }
}

/// The first damage found in a member's headers.
#[derive(Default)]
pub(super) struct HeaderDamage(Option<ArchiveError>);

impl HeaderDamage {
    pub fn record(&mut self, e: ArchiveError) {
        self.0.get_or_insert(e);
    }

    pub fn is_some(&self) -> bool {
        self.0.is_some()
    }

    pub fn take(&mut self) -> Option<ArchiveError> {
        self.0.take()
    }
}

/// What the extended headers before a member's main header said.
#[derive(Default)]
pub(super) struct Extended {
    /// Its pax records, in order (several `x` headers add up).
    pub records: Vec<(String, Vec<u8>)>,
    /// Bytes of pax header content taken so far (bounded by `MAX_META_LEN`).
    pub records_len: u64,
    /// GNU `L` and `K` headers.
    pub long_name: Option<Vec<u8>>,
    pub long_link: Option<Vec<u8>>,
    pub damage: HeaderDamage,
}

impl Extended {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.long_name.is_none()
            && self.long_link.is_none()
            && !self.damage.is_some()
    }
}

/// Which sparse format a member uses, with what its headers said.
pub(super) enum SparsePlan {
    /// GNU 1.0: the map is at the start of the data.
    InData { realsize: u64 },
    /// The map came with the headers (old GNU `S`, pax 0.0 and 0.1).
    Known {
        pairs: Vec<(u64, u64)>,
        realsize: u64,
    },
}

/// A member as its headers describe it, built from its main header block and then changed
/// by its pax records.
pub(super) struct Draft {
    pub flag: u8,
    pub path: Vec<u8>,
    /// Link target: the hard link's or the symlink's, until [`Draft::settle`] says which.
    link: Vec<u8>,
    pub hardlink: Option<Vec<u8>>,
    /// Bytes of content the headers declare.
    size: u64,
    pub meta: FileMeta,
    /// Set by the old GNU header or pax records; else the mtime.
    atime: Option<Timestamp>,
    ctime: Option<Timestamp>,
    /// Records reel does not interpret, carried along.
    pub extra: Vec<(String, Vec<u8>)>,
    pub notes: Vec<String>,
    pub damage: HeaderDamage,
}

impl Draft {
    /// A member as its main header block names it (the GNU long name and link, when there
    /// were some, stand in for its name fields), with the damage found before it. The
    /// block's other fields are read by [`Draft::read_ustar`].
    // Small and inlined: the draft is built where it is used rather than copied there (this
    // runs for every member read).
    #[inline]
    pub fn new(
        main: &MainHeader<'_>,
        long_name: Option<Vec<u8>>,
        long_link: Option<Vec<u8>>,
        damage: HeaderDamage,
    ) -> Draft {
        let flag = main.flag();
        let path = long_name.unwrap_or_else(|| ustar_name(main.block));
        let link =
            long_link.unwrap_or_else(|| header::get_bytes(main.block, field::LINKNAME).to_vec());
        let mut notes = Vec::new();
        let file_kind = kind_of(flag, &path, &mut notes);
        Draft {
            flag,
            path,
            link,
            hardlink: None,
            size: main.size,
            meta: FileMeta::new(file_kind, 0),
            atime: None,
            ctime: None,
            extra: Vec::new(),
            notes,
            damage,
        }
    }

    /// Reads the fields of the main header block: mode, owner, times, device numbers.
    pub fn read_ustar(&mut self, main: &MainHeader<'_>) {
        self.read_ids_and_times(main);
        self.read_owner_names(main.block);
        if matches!(self.meta.kind, FileKind::CharDevice | FileKind::BlockDevice) {
            self.read_device(main);
        }
        if &main.block[field::MAGIC.0..field::MAGIC.0 + 8] == b"ustar  \0" {
            self.read_old_gnu_times(main.block);
        }
    }

    /// A numeric field; 0 (and damage) when it is not a number.
    fn number(&mut self, main: &MainHeader<'_>, f: (usize, usize), name: &str) -> i64 {
        match header::get_number(main.block, f) {
            Ok(v) => v,
            Err(what) => {
                self.damage
                    .record(corrupt(main.at, format!("{name} field: {what}")));
                0
            }
        }
    }

    fn read_ids_and_times(&mut self, main: &MainHeader<'_>) {
        let mode = self.number(main, field::MODE, "mode");
        let uid = self.number(main, field::UID, "uid");
        let gid = self.number(main, field::GID, "gid");
        let mtime = self.number(main, field::MTIME, "mtime");
        for (v, name) in [(mode, "mode"), (uid, "uid"), (gid, "gid")] {
            if !(0..=i64::from(u32::MAX)).contains(&v) {
                self.damage
                    .record(corrupt(main.at, format!("{name} {v} is out of range")));
            }
        }
        self.meta.mode = (mode & 0o7777) as u32;
        self.meta.uid = uid.clamp(0, i64::from(u32::MAX)) as u32;
        self.meta.gid = gid.clamp(0, i64::from(u32::MAX)) as u32;
        self.meta.mtime = Timestamp::new(mtime, 0);
    }

    fn read_owner_names(&mut self, block: &[u8; BLOCK]) {
        let magic = header::get_bytes(block, field::MAGIC);
        let uname = header::get_bytes(block, field::UNAME);
        let gname = header::get_bytes(block, field::GNAME);
        if magic.starts_with(b"ustar") || !uname.is_empty() {
            self.meta.user =
                (!uname.is_empty()).then(|| String::from_utf8_lossy(uname).into_owned());
            self.meta.group =
                (!gname.is_empty()).then(|| String::from_utf8_lossy(gname).into_owned());
        }
    }

    fn read_device(&mut self, main: &MainHeader<'_>) {
        let major = self.number(main, field::DEVMAJOR, "devmajor");
        let minor = self.number(main, field::DEVMINOR, "devminor");
        if !(0..=i64::from(u32::MAX)).contains(&major)
            || !(0..=i64::from(u32::MAX)).contains(&minor)
        {
            self.damage.record(corrupt(
                main.at,
                format!("device number {major},{minor} is out of range"),
            ));
        }
        self.meta.rdev = Some((
            major.clamp(0, u32::MAX.into()) as u32,
            minor.clamp(0, u32::MAX.into()) as u32,
        ));
    }

    /// GNU's incremental dumps keep atime and ctime in the old GNU header.
    fn read_old_gnu_times(&mut self, block: &[u8; BLOCK]) {
        for (f, slot) in [(gnu::ATIME, &mut self.atime), (gnu::CTIME, &mut self.ctime)] {
            if let Ok(t) = header::get_number(block, f)
                && t != 0
            {
                *slot = Some(Timestamp::new(t, 0));
            }
        }
    }

    /// Settles what the header block and the pax records said together: the times not given
    /// default to the mtime, the link is the hard link's or the symlink's, the file size.
    /// Returns the bytes of content that follow the headers.
    pub fn settle(&mut self) -> u64 {
        self.meta.atime = self.atime.unwrap_or(self.meta.mtime);
        self.meta.ctime = self.ctime.unwrap_or(self.meta.mtime);
        let link = std::mem::take(&mut self.link);
        // A hard link is a regular file to the reader: the two never meet.
        if self.flag == kind::HARDLINK {
            self.hardlink = Some(trim_slashes(link));
        } else if self.meta.kind == FileKind::Symlink {
            self.meta.symlink_target = Some(OsString::from_vec(link));
        }
        self.meta.size = if self.meta.kind == FileKind::Regular && self.hardlink.is_none() {
            self.size
        } else {
            0
        };
        // Content follows for regular files, and for links and directories that declare
        // some (pax hard links with data, GNU dumpdirs); never for the others.
        match self.flag {
            kind::SYMLINK | kind::CHAR | kind::BLOCK | kind::FIFO => 0,
            _ => self.size,
        }
    }

    /// Checks a sparse plan fits the member (`numblocks`: what `GNU.sparse.numblocks` said).
    pub fn check_sparse(&mut self, plan: &SparsePlan, numblocks: Option<u64>, first: u64) {
        if let SparsePlan::Known { pairs, .. } = plan
            && let Some(n) = numblocks
            && n != pairs.len() as u64
            && self.flag != kind::GNU_SPARSE
        {
            self.damage.record(corrupt(
                first,
                format!(
                    "GNU.sparse.numblocks={n} but the map has {} entries",
                    pairs.len()
                ),
            ));
        }
        if self.meta.kind != FileKind::Regular || self.hardlink.is_some() {
            self.damage.record(corrupt(
                first,
                format!("GNU sparse data on a {:?} member", self.meta.kind),
            ));
        }
    }
}

/// The member name of a header block: `prefix/name` in POSIX ustar, else the name field.
fn ustar_name(block: &[u8; BLOCK]) -> Vec<u8> {
    let magic = header::get_bytes(block, field::MAGIC);
    let posix = magic == b"ustar" && &block[field::VERSION.0..field::VERSION.0 + 2] != b" \0";
    let name = header::get_bytes(block, field::NAME);
    let prefix = header::get_bytes(block, field::PREFIX);
    if posix && !prefix.is_empty() {
        [prefix, b"/", name].concat()
    } else {
        name.to_vec()
    }
}

/// The kind of file a type flag stands for (an unknown one is a regular file, with a note).
fn kind_of(flag: u8, path: &[u8], notes: &mut Vec<String>) -> FileKind {
    match flag {
        kind::REGULAR_OLD if path.ends_with(b"/") => FileKind::Directory,
        kind::REGULAR
        | kind::REGULAR_OLD
        | kind::CONTIGUOUS
        | kind::HARDLINK
        | kind::GNU_SPARSE
        | kind::GNU_MULTIVOL => FileKind::Regular,
        kind::SYMLINK => FileKind::Symlink,
        kind::CHAR => FileKind::CharDevice,
        kind::BLOCK => FileKind::BlockDevice,
        kind::DIRECTORY | kind::GNU_DUMPDIR => FileKind::Directory,
        kind::FIFO => FileKind::Fifo,
        other => {
            // POSIX and GNU tar: an unknown type is extracted as a regular file.
            notes.push(format!(
                "unknown member type {:?}: restored as a regular file, as GNU tar does",
                other as char
            ));
            FileKind::Regular
        }
    }
}

/// The sparse-file keys of a member's pax records (GNU 0.0, 0.1 and 1.0, star), kept until
/// all records are read.
#[derive(Default)]
pub(super) struct SparseKeys {
    major: Option<Vec<u8>>,
    /// The real name of a GNU 1.0 sparse member (its header has a stand-in).
    pub name: Option<Vec<u8>>,
    realsize: Option<u64>,
    size: Option<u64>,
    pub numblocks: Option<u64>,
    /// GNU 0.0: `offset`/`numbytes` pairs.
    pairs: Vec<(u64, u64)>,
    /// GNU 0.1: the map in one record.
    map: Option<Vec<(u64, u64)>>,
    schily_realsize: Option<u64>,
}

impl SparseKeys {
    /// The plan the pax records give (not for an old GNU `S` member).
    pub fn pax_plan(&mut self, first: u64, damage: &mut HeaderDamage) -> Option<SparsePlan> {
        if let Some(major) = self.major.take() {
            if major != b"1" {
                damage.record(corrupt(
                    first,
                    format!(
                        "GNU sparse format {}.x is not one reel knows",
                        String::from_utf8_lossy(&major)
                    ),
                ));
                return None;
            }
            let Some(realsize) = self.realsize else {
                damage.record(corrupt(
                    first,
                    "GNU sparse member without GNU.sparse.realsize",
                ));
                return None;
            };
            Some(SparsePlan::InData { realsize })
        } else if let Some(pairs) = self.map.take() {
            Some(SparsePlan::Known {
                pairs,
                realsize: self.size.unwrap_or(0),
            })
        } else if !self.pairs.is_empty() || self.numblocks.is_some() {
            Some(SparsePlan::Known {
                pairs: std::mem::take(&mut self.pairs),
                realsize: self.size.unwrap_or(0),
            })
        } else {
            None
        }
    }

    /// The real size of an old GNU `S` member: from its header block, unless pax records say
    /// it (star and some writers leave the GNU field empty).
    pub fn old_gnu_realsize(&self, main: &MainHeader<'_>, damage: &mut HeaderDamage) -> u64 {
        let in_header = match header::get_number(main.block, gnu::REALSIZE) {
            Ok(v) if v >= 0 => Some(v as u64),
            Ok(v) => {
                damage.record(corrupt(main.at, format!("negative sparse real size {v}")));
                None
            }
            Err(what) => {
                if self.schily_realsize.is_none() && self.size.is_none() {
                    damage.record(corrupt(main.at, format!("sparse real size field: {what}")));
                }
                None
            }
        };
        self.schily_realsize
            .or(self.size)
            .or(in_header.filter(|r| *r > 0))
            .or(in_header)
            .unwrap_or(0)
    }
}

/// Takes a member's pax records key by key (globals first, then its own): the standard
/// keys override what the header block said, the file facts fill in its metadata, the
/// sparse and multi-volume keys are kept for the steps after, and the rest is carried along.
pub(super) struct PaxKeys<'d> {
    draft: &'d mut Draft,
    names: &'d mut NameCache,
    /// Offset of the member's first header, where damage in its records is reported.
    first: u64,
    sparse: SparseKeys,
    volume_part: VolumePart,
}

impl<'d> PaxKeys<'d> {
    pub fn new(draft: &'d mut Draft, names: &'d mut NameCache, first: u64) -> Self {
        PaxKeys {
            draft,
            names,
            first,
            sparse: SparseKeys::default(),
            volume_part: VolumePart::default(),
        }
    }

    /// What the records said about a sparse file, and about a multi-volume part.
    pub fn finish(self) -> (SparseKeys, VolumePart) {
        (self.sparse, self.volume_part)
    }

    pub fn take(&mut self, key: String, value: Vec<u8>) {
        match key.as_str() {
            sparse::MAJOR => self.sparse.major = Some(value),
            sparse::MINOR => {}
            sparse::NAME => self.sparse.name = Some(value),
            sparse::REALSIZE => self.sparse.realsize = self.number(&key, &value),
            gnu::SPARSE_SIZE => self.sparse.size = self.number(&key, &value),
            gnu::SPARSE_NUMBLOCKS => self.sparse.numblocks = self.number(&key, &value),
            gnu::SPARSE_OFFSET => {
                let offset = self.number(&key, &value).unwrap_or(0);
                self.take_sparse_offset(offset);
            }
            gnu::SPARSE_NUMBYTES => {
                let len = self.number(&key, &value).unwrap_or(0);
                self.take_sparse_numbytes(len);
            }
            gnu::SPARSE_MAP => match gnu::parse_map(&value) {
                Ok(m) => self.sparse.map = Some(m),
                Err(what) => self.damaged(what),
            },
            SCHILY_REALSIZE => self.sparse.schily_realsize = self.number(&key, &value),
            k if k.starts_with("GNU.volume.") => {
                if let Err(what) = self.volume_part.take(k, &value) {
                    self.damaged(what);
                }
            }
            "path" => self.draft.path = value,
            "linkpath" => self.draft.link = value,
            "size" => {
                if let Some(v) = self.number(&key, &value) {
                    self.draft.size = v;
                }
            }
            "uid" | "gid" => self.take_id(&key, &value),
            "uname" => self.draft.meta.user = Some(String::from_utf8_lossy(&value).into_owned()),
            "gname" => self.draft.meta.group = Some(String::from_utf8_lossy(&value).into_owned()),
            "mtime" | "atime" | "ctime" => self.take_time(&key, &value),
            "SCHILY.devmajor" | "SCHILY.devminor" => self.take_device(&key, &value),
            "hdrcharset" | "charset" | "comment" => {}
            k if IGNORED_KEY_PREFIXES.iter().any(|p| k.starts_with(p)) => {}
            RHT_SELINUX => {
                let key = format!("{}security.selinux", facts::XATTR_SCHILY);
                let taken = facts::take_record(&mut self.draft.meta, &key, &value, self.names);
                if let Err(what) = taken {
                    self.damaged(what);
                }
            }
            _ => match facts::take_record(&mut self.draft.meta, &key, &value, self.names) {
                Ok(facts::Taken::Applied) => {}
                Ok(facts::Taken::NotMine) => self.draft.extra.push((key, value)),
                Err(what) => self.damaged(what),
            },
        }
    }

    fn damaged(&mut self, what: impl Into<String>) {
        self.draft.damage.record(corrupt(self.first, what));
    }

    fn malformed(&mut self, key: &str, value: &[u8]) {
        self.damaged(format!(
            "pax record {key}={:?} is malformed",
            String::from_utf8_lossy(value)
        ));
    }

    /// A decimal record's value; `None` (and damage) when it is not one.
    fn number(&mut self, key: &str, value: &[u8]) -> Option<u64> {
        let v = decimal(value);
        if v.is_none() {
            self.malformed(key, value);
        }
        v
    }

    fn take_sparse_offset(&mut self, offset: u64) {
        if self.sparse.pairs.len() >= sparse::MAX_READ_EXTENTS {
            self.damaged("GNU sparse 0.0 map is too large");
        } else {
            self.sparse.pairs.push((offset, 0));
        }
    }

    fn take_sparse_numbytes(&mut self, len: u64) {
        match self.sparse.pairs.last_mut() {
            Some(p) => p.1 = len,
            None => self.damaged("GNU.sparse.numbytes before any GNU.sparse.offset"),
        }
    }

    fn take_id(&mut self, key: &str, value: &[u8]) {
        match decimal(value).and_then(|v| u32::try_from(v).ok()) {
            Some(v) if key == "uid" => self.draft.meta.uid = v,
            Some(v) => self.draft.meta.gid = v,
            None => self.malformed(key, value),
        }
    }

    fn take_time(&mut self, key: &str, value: &[u8]) {
        match text(value).and_then(Timestamp::parse_decimal) {
            Some(t) if key == "mtime" => self.draft.meta.mtime = t,
            Some(t) if key == "atime" => self.draft.atime = Some(t),
            Some(t) => self.draft.ctime = Some(t),
            None => self.malformed(key, value),
        }
    }

    fn take_device(&mut self, key: &str, value: &[u8]) {
        let Some(v) = decimal(value).and_then(|v| u32::try_from(v).ok()) else {
            self.malformed(key, value);
            return;
        };
        let meta = &mut self.draft.meta;
        let (mut major, mut minor) = meta.rdev.unwrap_or((0, 0));
        if key.ends_with("major") {
            major = v;
        } else {
            minor = v;
        }
        if matches!(meta.kind, FileKind::CharDevice | FileKind::BlockDevice) {
            meta.rdev = Some((major, minor));
        }
    }
}
