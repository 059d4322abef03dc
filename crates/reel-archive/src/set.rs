//! Writing one set (its data, then its index) and reading it back.
//!
//! A set's data goes through a [`RecordSink`]: on one drive ([`DriveSink`]) it is one tape
//! file; when the sink changes volumes on early warning, the data is split at a record
//! boundary into parts, one per volume, each followed by a [`PartMarker`](crate::part::PartMarker) where the index
//! would be, and the index follows the last part. The parts, concatenated in order, are the
//! set's archive.

use std::io::Read;

use reel_tape::{PositionKind, SeekTo, TapeDrive};

use crate::entry::Entry;
use crate::error::{ArchiveError, Result};
use crate::index::{IndexEntry, IndexReader, IndexSpool, SetInfo};
use crate::pax::{PaxReader, PaxWriter};
use crate::records::{DriveSink, RecordReader, RecordSink, RecordWriter};
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

/// Writes one set's data as a pax archive in fixed records, collecting its index.
pub struct SetWriter<S: RecordSink> {
    pax: PaxWriter<RecordWriter<S>>,
    spool: IndexSpool,
    block_size: usize,
    buf: Vec<u8>,
    /// Logical block where the data begins (for single-drive sets).
    first_block: u64,
}

/// A set's data, written and closed; its index still to write.
pub struct DataWritten<S: RecordSink> {
    pub sink: S,
    /// Records of set data (all parts).
    pub records: u64,
    /// Bytes of the pax archive (before record padding).
    pub archive_bytes: u64,
    pub spool: IndexSpool,
}

impl<'d> SetWriter<DriveSink<'d>> {
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
        SetWriter::with_sink(DriveSink::new(drive, data_file), block_size)
    }

    /// Ends the data and writes the index right after it on the same drive (a set that
    /// does not span volumes); fills in the layout fields of `info`.
    pub fn finish(self, mut info: SetInfo) -> Result<SetInfo> {
        let block_size = self.block_size;
        let first_block = self.first_block;
        let data = self.finish_data()?;
        let mut sink = data.sink;
        let data_file = sink.file();
        info.data_file = data_file;
        info.data_first_block = first_block;
        info.data_records = data.records;
        info.archive_bytes = data.archive_bytes;
        info.block_size = block_size as u32;
        let mut spool = data.spool;
        write_index(sink.drive(), &mut spool, &info, block_size, data_file + 1)?;
        Ok(info)
    }
}

impl<S: RecordSink> SetWriter<S> {
    /// Starts a set's data in `sink`, which is positioned where the data begins.
    pub fn with_sink(mut sink: S, block_size: usize) -> Result<Self> {
        let first_block = logical_position(sink.drive())?;
        Ok(SetWriter {
            first_block,
            pax: PaxWriter::new(RecordWriter::new(sink, block_size)),
            spool: IndexSpool::new()?,
            block_size,
            buf: vec![0u8; block_size.max(64 * 1024)],
        })
    }

    /// Bytes of set data written so far.
    pub fn bytes(&self) -> u64 {
        self.pax.offset()
    }

    pub fn sink(&mut self) -> &mut S {
        self.pax.get_mut().sink()
    }

    fn context(&self) -> String {
        format!("writing the set data at byte {}", self.pax.offset())
    }

    /// Adds a member; `content` supplies `entry.data_len()` bytes for regular files (hashed
    /// on the way); `progress` sees the size of every chunk.
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
        if entry.hardlink.is_none() && entry.meta.kind == reel_stream::FileKind::Regular {
            let mut hasher = reel_stream::ContentHasher::for_meta(&entry.meta);
            let mut empty = std::io::empty();
            let src: &mut dyn Read = match content {
                Some(c) => c,
                None => &mut empty,
            };
            let context = self.context();
            let outcome = self
                .pax
                .copy_data(src, &mut self.buf, |chunk| {
                    hasher.update(chunk);
                    progress(chunk.len() as u64);
                })
                .map_err(|e| ArchiveError::from_io(context, e))?;
            added.copied = outcome.copied;
            added.zero_filled = outcome.zero_filled;
            added.hash = Some(hasher.finalize());
        }
        self.spool
            .push(&IndexEntry::new(entry, offset, added.hash))?;
        Ok(added)
    }

    /// Adds an index line for a member whose data lives in an earlier set (an unchanged file
    /// of an incremental backup): nothing is written to the archive.
    pub fn add_reference(&mut self, entry: IndexEntry) -> Result<()> {
        self.spool.push(&entry)
    }

    /// Ends the data: end-of-archive blocks, record padding, filemark.
    pub fn finish_data(self) -> Result<DataWritten<S>> {
        let archive_bytes = self.pax.offset() + 1024;
        let records = self
            .pax
            .finish()
            .map_err(|e| ArchiveError::from_io("ending the set data".to_string(), e))?;
        let (records, mut sink) = records
            .finish()
            .map_err(|e| ArchiveError::from_io("ending the set data".to_string(), e))?;
        sink.end_file()?;
        Ok(DataWritten {
            sink,
            records,
            archive_bytes,
            spool: self.spool,
        })
    }

    pub fn block_size(&self) -> usize {
        self.block_size
    }
}

/// Writes a set's index as tape file `index_file` at the drive's position, with its
/// filemark, and flushes the drive.
pub fn write_index(
    drive: &mut dyn TapeDrive,
    spool: &mut IndexSpool,
    info: &SetInfo,
    block_size: usize,
    index_file: u64,
) -> Result<()> {
    let mut w = RecordWriter::new(DriveSink::new(drive, index_file), block_size);
    spool.write_index(info, &mut w).map_err(|e| match e {
        ArchiveError::Io(io) => {
            ArchiveError::from_io(format!("writing the index (tape file {index_file})"), io)
        }
        other => other,
    })?;
    let (_, mut sink) = w.finish().map_err(|e| {
        ArchiveError::from_io(format!("writing the index (tape file {index_file})"), e)
    })?;
    sink.end_file()?;
    let drive = sink.drive();
    drive
        .flush()
        .map_err(|e| ArchiveError::tape(format!("flushing {}", drive.describe()), e))
}

/// Logical position of the drive.
pub fn logical_position(drive: &mut dyn TapeDrive) -> Result<u64> {
    drive
        .position(PositionKind::Logical)
        .map(|p| p.offset)
        .map_err(|e| ArchiveError::tape(format!("asking the position of {}", drive.describe()), e))
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

/// Opens a set's data (its part on this volume) for reading from its first record.
pub fn open_data<'d>(
    drive: &'d mut dyn TapeDrive,
    set: &SetOnTape,
    block_size: usize,
) -> Result<PaxReader<RecordReader<'d>>> {
    let reader =
        RecordReader::at_record(drive, set.data_file, set.data_first_block, block_size, 0)?;
    Ok(PaxReader::new(reader))
}
