//! The Win32 backup stream encoding of a file: what `BackupRead` produces and `BackupWrite`
//! consumes on Windows, for Linux files.
//!
//! A file is a sequence of streams, each a 20-byte little-endian header
//! (`u32 stream_id, u32 attributes, i64 size, u32 name_size`), `name_size` bytes of
//! UTF-16LE name, then `size` bytes of data, with nothing in between (MS-BKUP 2.1, 2.2).
//!
//! ## What reel writes for a Linux file, in this order
//!
//! | stream | when | data |
//! |---|---|---|
//! | SECURITY (attribute CONTAINS_SECURITY) | ACLs or `security.*` attributes | reel's layout, [`security`] |
//! | EA | always | FILE_FULL_EA_INFORMATION list, [`ea`]: WSL's `$LXUID`, `$LXGID`, `$LXMOD`, `$LXDEV`; reel's `$REEL.TIMES`, `$REEL.FLAGS`, `$REEL.USER`, `$REEL.GROUP`; `user.*` and `trusted.*` attributes by their Linux names |
//! | REPARSE_DATA | symlink, fifo, device, socket | [`reparse`]: IO_REPARSE_TAG_SYMLINK, WSL's LX_FIFO / LX_CHR / LX_BLK, AF_UNIX |
//! | LINK | a second name of a hard-linked file, when the caller says so | UTF-16LE path of the first name, relative to the restore root |
//! | DATA | a regular file with content | the content |
//! | DATA (attribute SPARSE, size 0) then SPARSE_BLOCK (attribute SPARSE) per data extent | a sparse file | `i64` offset then the extent's bytes; a last block without bytes at the file size when the file ends in a hole |
//!
//! Names are UTF-16LE; bytes of a Linux name that are not UTF-8 are carried as the lone
//! surrogates U+DC80..U+DCFF (one per byte) and come back as the same bytes ([`names`]).
//!
//! Streams Linux cannot hold (ALTERNATE_DATA beyond 64 KiB, OBJECT_ID, PROPERTY_DATA,
//! TXFS_DATA, GHOSTED_FILE_EXTENTS, Windows security descriptors, other reparse tags) are
//! skipped on write and reported by name; a small ALTERNATE_DATA stream becomes the xattr
//! `user.<stream name>` (ntfs-3g's convention), a Windows EA without a Linux namespace the
//! xattr `user.<EA name>`.

pub mod ea;
pub mod names;
pub mod parse;
pub mod read;
pub mod reparse;
pub mod security;
pub mod write;

pub use parse::{Parser, StreamSink, describe};
pub use read::{BackupReader, ReadOptions};
pub use write::{BackupWriter, WriteOptions};

/// Size of the fixed part of a stream header.
pub const HEADER_LEN: usize = 20;

/// `dwStreamId` values (winbase.h, MS-BKUP 2.2).
pub mod id {
    pub const DATA: u32 = 1;
    pub const EA_DATA: u32 = 2;
    pub const SECURITY_DATA: u32 = 3;
    pub const ALTERNATE_DATA: u32 = 4;
    pub const LINK: u32 = 5;
    pub const PROPERTY_DATA: u32 = 6;
    pub const OBJECT_ID: u32 = 7;
    pub const REPARSE_DATA: u32 = 8;
    pub const SPARSE_BLOCK: u32 = 9;
    pub const TXFS_DATA: u32 = 10;
    pub const GHOSTED_FILE_EXTENTS: u32 = 11;
}

/// `dwStreamAttributes` bits.
pub mod attr {
    pub const MODIFIED_WHEN_READ: u32 = 1;
    pub const CONTAINS_SECURITY: u32 = 2;
    pub const CONTAINS_PROPERTIES: u32 = 4;
    pub const SPARSE: u32 = 8;
}

/// The Windows name of a stream id (`BACKUP_DATA`, …).
pub fn id_name(id: u32) -> &'static str {
    match id {
        id::DATA => "DATA",
        id::EA_DATA => "EA_DATA",
        id::SECURITY_DATA => "SECURITY_DATA",
        id::ALTERNATE_DATA => "ALTERNATE_DATA",
        id::LINK => "LINK",
        id::PROPERTY_DATA => "PROPERTY_DATA",
        id::OBJECT_ID => "OBJECT_ID",
        id::REPARSE_DATA => "REPARSE_DATA",
        id::SPARSE_BLOCK => "SPARSE_BLOCK",
        id::TXFS_DATA => "TXFS_DATA",
        id::GHOSTED_FILE_EXTENTS => "GHOSTED_FILE_EXTENTS",
        _ => "UNKNOWN",
    }
}

/// Names of the attribute bits that are set.
pub fn attr_names(attributes: u32) -> Vec<&'static str> {
    [
        (attr::MODIFIED_WHEN_READ, "MODIFIED_WHEN_READ"),
        (attr::CONTAINS_SECURITY, "CONTAINS_SECURITY"),
        (attr::CONTAINS_PROPERTIES, "CONTAINS_PROPERTIES"),
        (attr::SPARSE, "SPARSE"),
    ]
    .iter()
    .filter(|(b, _)| attributes & b != 0)
    .map(|(_, n)| *n)
    .collect()
}

/// A parsed stream header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    pub id: u32,
    pub attributes: u32,
    /// Bytes of data after the header and name.
    pub size: u64,
    /// The name as UTF-16 code units (empty for unnamed streams).
    pub name: Vec<u16>,
}

impl StreamHeader {
    pub fn new(id: u32, attributes: u32, size: u64) -> StreamHeader {
        StreamHeader {
            id,
            attributes,
            size,
            name: Vec::new(),
        }
    }

    /// Header and name bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + 2 * self.name.len());
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.attributes.to_le_bytes());
        out.extend_from_slice(&(self.size as i64).to_le_bytes());
        out.extend_from_slice(&((self.name.len() * 2) as u32).to_le_bytes());
        for u in &self.name {
            out.extend_from_slice(&u.to_le_bytes());
        }
        out
    }

    /// The name for people (lossless for names reel wrote).
    pub fn name_text(&self) -> String {
        String::from_utf8_lossy(&names::from_utf16(&self.name).unwrap_or_default()).into_owned()
    }
}

/// Reads a little-endian `u32` at `at` (callers check the length).
pub(crate) fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

pub(crate) fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}
