//! Writing one set (its data, then its index) and reading it back.

use std::io::Read;

use reel_tape::{MarkKind, PositionKind, SeekTo, TapeDrive};

use crate::entry::Entry;
use crate::error::{ArchiveError, Result};
use crate::index::{IndexEntry, IndexReader, IndexSpool, SetInfo};
use crate::pax::{PaxReader, PaxWriter};
use crate::records::{RecordReader, RecordWriter};
use crate::volume::SetOnTape;

/// Default record size of set data.
pub const DEFAULT_BLOCK_SIZE: usize = 256 * 1024;

/// What adding one member did.
#[derive(Debug, Clone, Copy)]
pub struct Added {
    /// Byte offset of the member's first header block in the set data.
    pub offset: u64,
    /// Bytes of content taken from the source.
    pub copied: u64,
    /// Bytes zero-filled because the source ended early (it shrank while being read).
    pub zero_filled: u64,
    pub hash: Option<blake3::Hash>,
}

/// Writes one set at the append point of a volume: data as a pax archive in fixed records,
/// a filemark, the index, a filemark.
pub struct SetWriter<'d> {
    pax: PaxWriter<RecordWriter<'d>>,
    spool: IndexSpool,
    data_file: u64,
    data_first_block: u64,
    block_size: usize,
    buf: Vec<u8>,
}

impl<'d> SetWriter<'d> {
    /// Positions at logical block `at` (the start of tape file `data_file`) and starts the
    /// set's data there. Everything after that point on the tape is discarded.
    pub fn begin(
        drive: &'d mut dyn TapeDrive,
        data_file: u64,
        at: u64,
        block_size: usize,
    ) -> Result<Self> {
        drive
            .set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: at,
                },
                false,
            )
            .map_err(|e| {
                ArchiveError::tape(format!("positioning {} at block {at}", drive.describe()), e)
            })?;
        let data_first_block = drive
            .position(PositionKind::Logical)
            .map_err(|e| {
                ArchiveError::tape(format!("asking the position of {}", drive.describe()), e)
            })?
            .offset;
        Ok(SetWriter {
            pax: PaxWriter::new(RecordWriter::new(drive, block_size, data_file)),
            spool: IndexSpool::new()?,
            data_file,
            data_first_block,
            block_size,
            buf: vec![0u8; block_size.max(64 * 1024)],
        })
    }

    pub fn data_file(&self) -> u64 {
        self.data_file
    }

    pub fn data_first_block(&self) -> u64 {
        self.data_first_block
    }

    /// Bytes of set data written so far.
    pub fn bytes(&self) -> u64 {
        self.pax.offset()
    }

    /// True once the medium reported early warning.
    pub fn early_warning(&mut self) -> bool {
        self.pax.get_mut().early_warning()
    }

    fn context(&self) -> String {
        format!(
            "writing tape file {} at byte {}",
            self.data_file,
            self.pax.offset()
        )
    }

    /// Adds a member; `content` supplies `entry.data_len()` bytes for regular files (hashed
    /// on the way). `inspect` sees every chunk (progress).
    pub fn add(
        &mut self,
        entry: &Entry,
        content: Option<&mut dyn Read>,
        mut progress: impl FnMut(u64),
    ) -> Result<Added> {
        let offset = self
            .pax
            .write_header(entry)
            .map_err(|e| ArchiveError::from_io(self.context(), e))?;
        let mut added = Added {
            offset,
            copied: 0,
            zero_filled: 0,
            hash: None,
        };
        if entry.data_len() > 0
            || (entry.hardlink.is_none() && entry.meta.kind == reel_stream::FileKind::Regular)
        {
            let mut hasher = blake3::Hasher::new();
            let mut empty = std::io::empty();
            let src: &mut dyn Read = match content {
                Some(c) => c,
                None => &mut empty,
            };
            let outcome = self
                .pax
                .copy_data(src, &mut self.buf, |chunk| {
                    hasher.update(chunk);
                    progress(chunk.len() as u64);
                })
                .map_err(|e| match ArchiveError::from_io(String::new(), e) {
                    // Errors reading the source file are the caller's (per-file problem).
                    ArchiveError::Io(io) => ArchiveError::Io(io),
                    other => other,
                })?;
            added.copied = outcome.copied;
            added.zero_filled = outcome.zero_filled;
            added.hash = Some(hasher.finalize());
        }
        self.spool
            .push(&IndexEntry::new(entry, offset, added.hash))?;
        Ok(added)
    }

    /// Ends the data (end-of-archive blocks, padding, filemark), writes the index and its
    /// filemark, and returns the set's description with the layout filled in.
    pub fn finish(self, mut info: SetInfo) -> Result<SetInfo> {
        let archive_bytes = self.pax.offset() + 1024;
        let records = self.pax.finish().map_err(|e| {
            ArchiveError::from_io(format!("ending tape file {}", self.data_file), e)
        })?;
        let (written, drive) = records.finish().map_err(|e| {
            ArchiveError::from_io(format!("ending tape file {}", self.data_file), e)
        })?;
        drive
            .write_marks(MarkKind::Filemarks, 1, false)
            .map_err(|e| ArchiveError::tape(format!("closing tape file {}", self.data_file), e))?;
        info.data_file = self.data_file;
        info.data_first_block = self.data_first_block;
        info.data_records = written.records;
        info.archive_bytes = archive_bytes;
        info.block_size = self.block_size as u32;
        let index_file = self.data_file + 1;
        let mut w = RecordWriter::new(drive, self.block_size, index_file);
        self.spool.write_index(&info, &mut w).map_err(|e| match e {
            ArchiveError::Io(io) => {
                ArchiveError::from_io(format!("writing the index (tape file {index_file})"), io)
            }
            other => other,
        })?;
        let (_, drive) = w.finish().map_err(|e| {
            ArchiveError::from_io(format!("writing the index (tape file {index_file})"), e)
        })?;
        drive
            .write_marks(MarkKind::Filemarks, 1, false)
            .map_err(|e| ArchiveError::tape(format!("closing tape file {index_file}"), e))?;
        drive
            .flush()
            .map_err(|e| ArchiveError::tape("flushing the volume".to_string(), e))?;
        Ok(info)
    }
}

/// Opens a set's index for reading: the set's description and its entries.
pub fn open_index<'d>(
    drive: &'d mut dyn TapeDrive,
    set: &SetOnTape,
    index_first_block: u64,
) -> Result<(SetInfo, IndexReader<RecordReader<'d>>)> {
    drive
        .set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: index_first_block,
            },
            false,
        )
        .map_err(|e| {
            ArchiveError::tape(
                format!(
                    "seeking to the index of set {} (tape file {})",
                    set.number, set.index_file
                ),
                e,
            )
        })?;
    let reader = RecordReader::new(drive, set.index_file, 1 << 20);
    IndexReader::open(reader)
}

/// Opens a set's data for reading from its first member.
pub fn open_data<'d>(
    drive: &'d mut dyn TapeDrive,
    set: &SetOnTape,
    block_size: usize,
) -> Result<PaxReader<RecordReader<'d>>> {
    let reader =
        RecordReader::at_record(drive, set.data_file, set.data_first_block, block_size, 0)?;
    Ok(PaxReader::new(reader))
}
