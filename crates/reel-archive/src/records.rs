//! Byte streams over tape records: a tape file read or written as `Read`/`Write`.
//!
//! Sets are written in fixed records of the set's block size (the last one zero-padded), so
//! byte offset `o` of a tape file is in record `o / block_size` — which is how a restore seeks
//! straight to one member.

use std::io::{self, Read, Write};

use reel_tape::{PositionKind, SeekTo, TapeDrive, TapeError};

use crate::error::ArchiveError;

/// Where a tape error happened, for messages: volume, tape file and record within it.
fn context(drive: &dyn TapeDrive, file: u64, record: u64) -> String {
    format!(
        "volume {}, tape file {file}, block {record}",
        drive.describe()
    )
}

/// Where a stream of fixed-size records goes: one drive ([`DriveSink`]), or a series of
/// volumes when a set spans cartridges (the sink changes volumes between records).
pub trait RecordSink {
    /// Writes one record.
    fn put_record(&mut self, record: &[u8]) -> Result<(), ArchiveError>;
    /// Ends the tape file being written (a filemark).
    fn end_file(&mut self) -> Result<(), ArchiveError>;
    /// The drive holding the current volume.
    fn drive(&mut self) -> &mut dyn TapeDrive;
}

/// Records onto one drive, at its current position.
pub struct DriveSink<'d> {
    drive: &'d mut dyn TapeDrive,
    file: u64,
    records: u64,
    early_warning: bool,
}

impl<'d> DriveSink<'d> {
    /// `file` is the tape file number, for messages.
    pub fn new(drive: &'d mut dyn TapeDrive, file: u64) -> Self {
        DriveSink {
            drive,
            file,
            records: 0,
            early_warning: false,
        }
    }

    /// True once the medium reported early warning.
    pub fn early_warning(&self) -> bool {
        self.early_warning
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    /// The tape file being written.
    pub fn file(&self) -> u64 {
        self.file
    }
}

impl RecordSink for DriveSink<'_> {
    fn put_record(&mut self, record: &[u8]) -> Result<(), ArchiveError> {
        match self.drive.write(record) {
            Ok(()) => {}
            Err(TapeError::EarlyWarning) => self.early_warning = true,
            Err(e) => {
                return Err(ArchiveError::tape(
                    context(&*self.drive, self.file, self.records),
                    e,
                ));
            }
        }
        self.records += 1;
        Ok(())
    }

    fn end_file(&mut self) -> Result<(), ArchiveError> {
        self.drive
            .write_marks(reel_tape::MarkKind::Filemarks, 1, false)
            .map_err(|e| {
                ArchiveError::tape(
                    format!(
                        "closing tape file {} on {}",
                        self.file,
                        self.drive.describe()
                    ),
                    e,
                )
            })
    }

    fn drive(&mut self) -> &mut dyn TapeDrive {
        &mut *self.drive
    }
}

/// Writes a byte stream as fixed-size records into a [`RecordSink`].
pub struct RecordWriter<S: RecordSink> {
    sink: S,
    block: Vec<u8>,
    block_size: usize,
    records: u64,
}

impl<S: RecordSink> RecordWriter<S> {
    pub fn new(sink: S, block_size: usize) -> Self {
        RecordWriter {
            sink,
            block: Vec::with_capacity(block_size),
            block_size,
            records: 0,
        }
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn sink(&mut self) -> &mut S {
        &mut self.sink
    }

    fn write_record(&mut self, data: &[u8]) -> io::Result<()> {
        self.sink.put_record(data).map_err(io::Error::other)?;
        self.records += 1;
        Ok(())
    }

    /// Pads the last record with zeros, writes it, and gives the sink back with the number
    /// of records written.
    pub fn finish(mut self) -> io::Result<(u64, S)> {
        if !self.block.is_empty() {
            self.block.resize(self.block_size, 0);
            let block = std::mem::take(&mut self.block);
            self.write_record(&block)?;
        }
        Ok((self.records, self.sink))
    }
}

impl<S: RecordSink> Write for RecordWriter<S> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let total = buf.len();
        while !buf.is_empty() {
            if self.block.is_empty() && buf.len() >= self.block_size {
                // Whole records straight from the caller's buffer.
                let (rec, rest) = buf.split_at(self.block_size);
                self.write_record(rec)?;
                buf = rest;
                continue;
            }
            let take = (self.block_size - self.block.len()).min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == self.block_size {
                let block = std::mem::take(&mut self.block);
                let r = self.write_record(&block);
                self.block = block;
                self.block.clear();
                r?;
            }
        }
        Ok(total)
    }

    /// Records are fixed-size: nothing is written until a record is full (or `finish`).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// How a tape file read ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileEnd {
    /// A filemark: the file is complete.
    Filemark,
    /// End of data without a filemark: the file was never finished (a crash while writing).
    EndOfData,
}

/// The state of reading one tape file as a byte stream, apart from the drive (so a reader
/// that changes volumes can keep it while it swaps drives).
pub struct RecordCursor {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    file: u64,
    /// Record number within the file of the next record to read.
    record: u64,
    /// Logical block of record 0 of this file, and the fixed record size, when known.
    first_block: Option<u64>,
    block_size: Option<usize>,
    ended: Option<FileEnd>,
}

impl RecordCursor {
    /// A cursor at record `record` of tape file `file`, whose record 0 is at logical block
    /// `first_block` (when known) and whose records are `block_size` bytes (when fixed).
    pub fn new(
        file: u64,
        first_block: Option<u64>,
        block_size: Option<usize>,
        record: u64,
    ) -> Self {
        let buffer = block_size.unwrap_or(1 << 20).max(512);
        RecordCursor {
            buf: vec![0u8; buffer],
            start: 0,
            end: 0,
            file,
            record,
            first_block,
            block_size,
            ended: None,
        }
    }

    /// How the file ended, once the reader reached its end.
    pub fn ended(&self) -> Option<FileEnd> {
        self.ended
    }

    /// Record number (within the file) of the next record to be read.
    pub fn next_record(&self) -> u64 {
        self.record
    }

    /// Byte offset within the file of the next byte `read` returns (fixed-size records).
    pub fn offset(&self) -> Option<u64> {
        let bs = self.block_size? as u64;
        let buffered = (self.end - self.start) as u64;
        Some(self.record * bs - buffered)
    }

    pub fn describe(&self, drive: &dyn TapeDrive) -> String {
        context(drive, self.file, self.record)
    }

    /// Moves to byte `offset` of the file (fixed-size records only): one seek and at most
    /// one record read, whatever the distance.
    pub fn seek_to(&mut self, drive: &mut dyn TapeDrive, offset: u64) -> Result<(), ArchiveError> {
        let (Some(first), Some(bs)) = (self.first_block, self.block_size) else {
            return Err(ArchiveError::Volume(
                "seek in a tape file of unknown record size".into(),
            ));
        };
        let target = offset / bs as u64;
        let within = (offset % bs as u64) as usize;
        // Inside the buffered record: no tape movement.
        if self.end == bs && self.record == target + 1 {
            self.start = within;
            return Ok(());
        }
        drive
            .set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: first + target,
                },
                false,
            )
            .map_err(|e| ArchiveError::tape(context(drive, self.file, target), e))?;
        self.record = target;
        self.start = 0;
        self.end = 0;
        self.ended = None;
        if within > 0 {
            self.fill(drive)
                .map_err(|e| ArchiveError::from_io(self.describe(drive), e))?;
            if self.end < within {
                return Err(ArchiveError::Truncated {
                    offset,
                    what: format!(
                        "{}: the tape file ends before byte {offset}",
                        self.describe(drive)
                    ),
                });
            }
            self.start = within;
        }
        Ok(())
    }

    /// Reads the next record into the buffer. `Ok(false)` at the end of the file.
    fn fill(&mut self, drive: &mut dyn TapeDrive) -> io::Result<bool> {
        if self.ended.is_some() {
            return Ok(false);
        }
        loop {
            match drive.read(&mut self.buf) {
                Ok(n) => {
                    self.start = 0;
                    self.end = n;
                    self.record += 1;
                    return Ok(true);
                }
                Err(TapeError::FilemarkDetected) => {
                    self.ended = Some(FileEnd::Filemark);
                    return Ok(false);
                }
                Err(TapeError::NoDataDetected) => {
                    self.ended = Some(FileEnd::EndOfData);
                    return Ok(false);
                }
                Err(TapeError::MoreData { record_len, .. })
                    if record_len <= drive.max_record_len() =>
                {
                    // A record larger than the buffer: grow and read it again.
                    self.buf.resize(record_len, 0);
                    if let Err(e) = drive.set_position(SeekTo::SpaceRelativeBlocks(-1), false) {
                        let ctx = context(drive, self.file, self.record);
                        return Err(io::Error::other(ArchiveError::tape(ctx, e)));
                    }
                }
                Err(e) => {
                    let ctx = context(drive, self.file, self.record);
                    // The drive moved past the bad record.
                    self.record += 1;
                    return Err(io::Error::other(ArchiveError::tape(ctx, e)));
                }
            }
        }
    }

    /// Reads one whole record (for label and index headers). `None` at the end of the file.
    pub fn read_record(
        &mut self,
        drive: &mut dyn TapeDrive,
    ) -> Result<Option<Vec<u8>>, ArchiveError> {
        if self.start < self.end {
            let v = self.buf[self.start..self.end].to_vec();
            self.start = self.end;
            return Ok(Some(v));
        }
        match self.fill(drive) {
            Ok(true) => {
                self.start = self.end;
                Ok(Some(self.buf[..self.end].to_vec()))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(ArchiveError::from_io(self.describe(drive), e)),
        }
    }

    /// The next whole record, left unread (for a caller that decides from its first bytes
    /// how to read on). `None` at the end of the file.
    pub fn peek_record(
        &mut self,
        drive: &mut dyn TapeDrive,
    ) -> Result<Option<&[u8]>, ArchiveError> {
        if self.start == self.end {
            match self.fill(drive) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err(ArchiveError::from_io(self.describe(drive), e)),
            }
        }
        Ok(Some(&self.buf[self.start..self.end]))
    }

    /// Points the cursor at record `record` of another tape file, keeping its buffer (no
    /// new allocation for each part or volume a reader mounts).
    pub fn reset(
        &mut self,
        file: u64,
        first_block: Option<u64>,
        block_size: Option<usize>,
        record: u64,
    ) {
        let wanted = block_size.unwrap_or(1 << 20).max(512);
        if self.buf.len() < wanted {
            self.buf.resize(wanted, 0);
        }
        self.start = 0;
        self.end = 0;
        self.file = file;
        self.record = record;
        self.first_block = first_block;
        self.block_size = block_size;
        self.ended = None;
    }

    /// `Read::read` with the drive passed in.
    pub fn read(&mut self, drive: &mut dyn TapeDrive, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && !self.fill(drive)? {
            return Ok(0);
        }
        let n = (self.end - self.start).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// Reads a tape file as a byte stream, from its current position to the next filemark.
pub struct RecordReader<'d> {
    drive: &'d mut dyn TapeDrive,
    cursor: RecordCursor,
}

impl<'d> RecordReader<'d> {
    /// Reads from the drive's current position, which must be the start of tape file `file`.
    pub fn new(drive: &'d mut dyn TapeDrive, file: u64, _buffer: usize) -> Self {
        let first_block = drive.position(PositionKind::Logical).ok().map(|p| p.offset);
        RecordReader {
            drive,
            cursor: RecordCursor::new(file, first_block, None, 0),
        }
    }

    /// Declares the file's records fixed-size, which enables [`RecordReader::seek_to`].
    pub fn with_block_size(mut self, block_size: usize) -> Self {
        self.cursor.block_size = Some(block_size);
        if self.cursor.buf.len() < block_size {
            self.cursor.buf.resize(block_size, 0);
        }
        self
    }

    /// Starts reading at record `record` of tape file `file`, whose record 0 is at logical
    /// block `first_block`: positions the drive there.
    pub fn at_record(
        drive: &'d mut dyn TapeDrive,
        file: u64,
        first_block: u64,
        block_size: usize,
        record: u64,
    ) -> Result<Self, ArchiveError> {
        drive
            .set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: first_block + record,
                },
                false,
            )
            .map_err(|e| ArchiveError::tape(context(&*drive, file, record), e))?;
        Ok(RecordReader {
            drive,
            cursor: RecordCursor::new(file, Some(first_block), Some(block_size), record),
        })
    }

    /// How the file ended, once the reader reached its end.
    pub fn ended(&self) -> Option<FileEnd> {
        self.cursor.ended()
    }

    /// Record number (within the file) of the next record to be read.
    pub fn next_record(&self) -> u64 {
        self.cursor.next_record()
    }

    pub fn describe(&self) -> String {
        self.cursor.describe(&*self.drive)
    }

    /// Byte offset within the file of the next byte `read` returns (fixed-size records).
    pub fn offset(&self) -> Option<u64> {
        self.cursor.offset()
    }

    /// Moves to byte `offset` of the file (fixed-size records only).
    pub fn seek_to(&mut self, offset: u64) -> Result<(), ArchiveError> {
        self.cursor.seek_to(&mut *self.drive, offset)
    }

    /// Reads one whole record. `None` at the end of the file.
    pub fn read_record(&mut self) -> Result<Option<Vec<u8>>, ArchiveError> {
        self.cursor.read_record(&mut *self.drive)
    }

    /// The next whole record, left unread. `None` at the end of the file.
    pub fn peek_record(&mut self) -> Result<Option<&[u8]>, ArchiveError> {
        self.cursor.peek_record(&mut *self.drive)
    }

    pub fn drive(&mut self) -> &mut dyn TapeDrive {
        &mut *self.drive
    }
}

impl Read for RecordReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.cursor.read(&mut *self.drive, out)
    }
}
