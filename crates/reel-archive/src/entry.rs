//! An archive member: a name, a file model, and the pax records reel does not interpret.

use reel_stream::{FileKind, FileMeta};

/// One member of a set (or of any tar archive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Member name as stored, without a trailing slash (bytes: names need not be UTF-8).
    pub path: Vec<u8>,
    /// What the member is and its metadata. For a hard link, `kind` is the kind of the
    /// target (regular) and [`Entry::hardlink`] names it.
    pub meta: FileMeta,
    /// Earlier member this one is a hard link to.
    pub hardlink: Option<Vec<u8>>,
    /// Further pax records, in order (`SCHILY.xattr.*`, `REEL.*`, unknown vendor keys).
    pub extra: Vec<(String, Vec<u8>)>,
}

impl Entry {
    pub fn new(path: impl Into<Vec<u8>>, meta: FileMeta) -> Entry {
        Entry {
            path: path.into(),
            meta,
            hardlink: None,
            extra: Vec::new(),
        }
    }

    /// Bytes of content that follow the header in the archive (for a sparse file: the
    /// GNU sparse map block and the data extents).
    pub fn data_len(&self) -> u64 {
        if self.hardlink.is_some() || self.meta.kind != FileKind::Regular {
            0
        } else if let Some(map) = &self.meta.sparse {
            crate::pax::sparse::map_block_len(map, self.meta.size)
                + crate::pax::sparse::padded_data_len(map)
        } else {
            self.meta.size
        }
    }

    /// Is this member a sparse file (GNU sparse 1.0 in the archive)?
    pub fn is_sparse(&self) -> bool {
        self.hardlink.is_none() && self.meta.kind == FileKind::Regular && self.meta.sparse.is_some()
    }

    /// The name shown to people (lossy for non-UTF-8 bytes).
    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}
