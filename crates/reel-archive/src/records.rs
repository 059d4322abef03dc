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

/// Writes a byte stream as fixed-size records.
pub struct RecordWriter<'d> {
    drive: &'d mut dyn TapeDrive,
    block: Vec<u8>,
    block_size: usize,
    file: u64,
    records: u64,
    early_warning: bool,
}

/// What a finished record stream wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrittenRecords {
    pub records: u64,
    /// The medium reported early warning during the stream.
    pub early_warning: bool,
}

impl<'d> RecordWriter<'d> {
    /// `file` is the tape file number, for messages.
    pub fn new(drive: &'d mut dyn TapeDrive, block_size: usize, file: u64) -> Self {
        RecordWriter {
            drive,
            block: Vec::with_capacity(block_size),
            block_size,
            file,
            records: 0,
            early_warning: false,
        }
    }

    /// Records written so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn early_warning(&self) -> bool {
        self.early_warning
    }

    fn write_record(&mut self, data: &[u8]) -> io::Result<()> {
        match self.drive.write(data) {
            Ok(()) => {}
            Err(TapeError::EarlyWarning) => self.early_warning = true,
            Err(e) => {
                let ctx = context(&*self.drive, self.file, self.records);
                return Err(io::Error::other(ArchiveError::tape(ctx, e)));
            }
        }
        self.records += 1;
        Ok(())
    }

    /// Pads the last record with zeros, writes it, and gives the drive back.
    pub fn finish(mut self) -> io::Result<(WrittenRecords, &'d mut dyn TapeDrive)> {
        if !self.block.is_empty() {
            self.block.resize(self.block_size, 0);
            let block = std::mem::take(&mut self.block);
            self.write_record(&block)?;
        }
        let written = WrittenRecords {
            records: self.records,
            early_warning: self.early_warning,
        };
        Ok((written, self.drive))
    }
}

impl Write for RecordWriter<'_> {
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

/// Reads a tape file as a byte stream, from its current position to the next filemark.
pub struct RecordReader<'d> {
    drive: &'d mut dyn TapeDrive,
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

impl<'d> RecordReader<'d> {
    /// Reads from the drive's current position, which must be the start of tape file `file`.
    pub fn new(drive: &'d mut dyn TapeDrive, file: u64, buffer: usize) -> Self {
        let first_block = drive.position(PositionKind::Logical).ok().map(|p| p.offset);
        RecordReader {
            drive,
            buf: vec![0u8; buffer.max(512)],
            start: 0,
            end: 0,
            file,
            record: 0,
            first_block,
            block_size: None,
            ended: None,
        }
    }

    /// Declares the file's records fixed-size, which enables [`RecordReader::seek_to`].
    pub fn with_block_size(mut self, block_size: usize) -> Self {
        self.block_size = Some(block_size);
        if self.buf.len() < block_size {
            self.buf.resize(block_size, 0);
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
        let mut r = RecordReader::new(drive, file, block_size).with_block_size(block_size);
        r.first_block = Some(first_block);
        r.record = record;
        Ok(r)
    }

    /// How the file ended, once the reader reached its end.
    pub fn ended(&self) -> Option<FileEnd> {
        self.ended
    }

    /// Record number (within the file) of the next record to be read.
    pub fn next_record(&self) -> u64 {
        self.record
    }

    pub fn describe(&self) -> String {
        context(&*self.drive, self.file, self.record)
    }

    /// Byte offset within the file of the next byte `read` returns (fixed-size records).
    pub fn offset(&self) -> Option<u64> {
        let bs = self.block_size? as u64;
        let buffered = (self.end - self.start) as u64;
        Some(self.record * bs - buffered)
    }

    /// Moves to byte `offset` of the file (fixed-size records only): one seek and at most
    /// one record read, whatever the distance.
    pub fn seek_to(&mut self, offset: u64) -> Result<(), ArchiveError> {
        let (Some(first), Some(bs)) = (self.first_block, self.block_size) else {
            return Err(ArchiveError::Volume(
                "seek in a tape file of unknown record size".into(),
            ));
        };
        let target = offset / bs as u64;
        let within = (offset % bs as u64) as usize;
        // Inside the buffered record: no tape movement.
        if self.end > 0 && self.record == target + 1 && self.end == bs {
            self.start = within;
            return Ok(());
        }
        self.drive
            .set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: first + target,
                },
                false,
            )
            .map_err(|e| ArchiveError::tape(context(&*self.drive, self.file, target), e))?;
        self.record = target;
        self.start = 0;
        self.end = 0;
        self.ended = None;
        if within > 0 {
            self.fill()
                .map_err(|e| ArchiveError::from_io(self.describe(), e))?;
            if self.end < within {
                return Err(ArchiveError::Truncated {
                    offset,
                    what: format!(
                        "{}: the tape file ends before byte {offset}",
                        self.describe()
                    ),
                });
            }
            self.start = within;
        }
        Ok(())
    }

    /// Reads the next record into the buffer. `Ok(false)` at the end of the file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.ended.is_some() {
            return Ok(false);
        }
        loop {
            match self.drive.read(&mut self.buf) {
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
                    if record_len <= reel_tape::vtape::MAX_BLOCK_SIZE as usize =>
                {
                    // A record larger than the buffer: grow and read it again.
                    self.buf.resize(record_len, 0);
                    if let Err(e) = self
                        .drive
                        .set_position(SeekTo::SpaceRelativeBlocks(-1), false)
                    {
                        let ctx = context(&*self.drive, self.file, self.record);
                        return Err(io::Error::other(ArchiveError::tape(ctx, e)));
                    }
                }
                Err(e) => {
                    let ctx = context(&*self.drive, self.file, self.record);
                    // The drive moved past the bad record.
                    self.record += 1;
                    return Err(io::Error::other(ArchiveError::tape(ctx, e)));
                }
            }
        }
    }

    /// Reads one whole record (for label and index headers). `None` at the end of the file.
    pub fn read_record(&mut self) -> Result<Option<Vec<u8>>, ArchiveError> {
        if self.start < self.end {
            let v = self.buf[self.start..self.end].to_vec();
            self.start = self.end;
            return Ok(Some(v));
        }
        match self.fill() {
            Ok(true) => {
                self.start = self.end;
                Ok(Some(self.buf[..self.end].to_vec()))
            }
            Ok(false) => Ok(None),
            Err(e) => Err(ArchiveError::from_io(self.describe(), e)),
        }
    }

    pub fn drive(&mut self) -> &mut dyn TapeDrive {
        &mut *self.drive
    }
}

impl Read for RecordReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && !self.fill()? {
            return Ok(0);
        }
        let n = (self.end - self.start).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}
