//! Sets larger than one cartridge: writing across volumes and reading back across them.
//!
//! A set is split at a record boundary when the drive reports early warning (or a record
//! does not fit): the part on the full volume is closed with a filemark and a
//! [`PartMarker`], a blank volume is labelled with the next sequence number of the series,
//! and the records continue there. The parts, concatenated, are the set's archive; the set's
//! index (after the last part) lists them, so a restore seeks to any byte of the set.

use std::io::{self, Read};

use reel_archive::records::{RecordCursor, RecordSink};
use reel_archive::set::logical_position;
use reel_archive::{ArchiveError, PartMarker, SetPart, VolumeLabel};
use reel_tape::{MarkKind, TapeDrive, TapeError};

use crate::error::{CoreError, Result};
use crate::progress::Progress;
use crate::tapes::Tapes;

/// A part of a set closed on a full volume: where its data is, and the marker after it that
/// names the volume the set continues on.
#[derive(Debug, Clone)]
pub struct ClosedPart {
    pub part: SetPart,
    pub marker: PartMarker,
}

/// The parts a set's writing closed on full volumes, and why no blank volume came after the
/// last one: what a backup that fails before writing the set's index leaves behind (parts
/// of a set that can never be restored).
#[derive(Debug, Default)]
pub struct ClosedParts {
    pub parts: Vec<ClosedPart>,
    /// Why the changer stopped ([`CoreError::Stopped`]): the operator declined, or could not
    /// be asked.
    pub stopped: Option<String>,
}

/// Writes a set's records onto as many volumes as it takes.
pub struct SpanningSink<'a> {
    tapes: &'a mut Tapes,
    progress: &'a dyn Progress,
    set_id: uuid::Uuid,
    set_name: String,
    block_size: usize,
    label: VolumeLabel,
    parts: Vec<SetPart>,
    /// Records written in all parts.
    total_records: u64,
    /// Volumes labelled for this set (their labels, for the catalog).
    pub new_labels: Vec<VolumeLabel>,
    /// Kept outside the sink, which a failed write drops before its caller can ask it.
    closed: &'a mut ClosedParts,
}

impl<'a> SpanningSink<'a> {
    /// Starts the first part at the drive's position (the start of tape file `data_file`);
    /// every part closed on a full volume is noted in `closed`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tapes: &'a mut Tapes,
        progress: &'a dyn Progress,
        label: VolumeLabel,
        set_id: uuid::Uuid,
        set_name: String,
        data_file: u64,
        block_size: usize,
        closed: &'a mut ClosedParts,
    ) -> Result<Self> {
        let first_block = logical_position(&mut *tapes.drive)?;
        let parts = vec![SetPart {
            volume_id: label.volume_id,
            barcode: label.barcode.clone(),
            sequence: label.sequence,
            data_file,
            first_block,
            byte_start: 0,
            records: 0,
        }];
        Ok(SpanningSink {
            tapes,
            progress,
            set_id,
            set_name,
            block_size,
            label,
            parts,
            total_records: 0,
            new_labels: Vec::new(),
            closed,
        })
    }

    pub fn parts(&self) -> &[SetPart] {
        &self.parts
    }

    /// The label of the volume in the drive.
    pub fn label(&self) -> &VolumeLabel {
        &self.label
    }

    /// Closes the current part and continues on a blank volume.
    pub fn switch_volume(&mut self) -> Result<()> {
        let current = self.label.barcode.clone();
        let barcode = self.tapes.changer.next_blank(&current)?;
        let part_no = self.parts.len() as u32;
        let last = self.parts.last().cloned();
        let drive = &mut *self.tapes.drive;
        drive
            .write_marks(MarkKind::Filemarks, 1, false)
            .map_err(|e| {
                ArchiveError::tape(
                    format!("closing part {part_no} of the set on {}", drive.describe()),
                    e,
                )
            })?;
        let marker = PartMarker {
            set_id: self.set_id,
            set_name: self.set_name.clone(),
            part: part_no,
            byte_start: last.as_ref().map(|p| p.byte_start).unwrap_or(0),
            records: last.as_ref().map(|p| p.records).unwrap_or(0),
            next_barcode: barcode.clone(),
        };
        marker.write(drive)?;
        // The full volume is closed before it is ejected. If no blank one comes, the set is
        // never finished and this part only takes space: the caller records that (the tape
        // is out of reach by then).
        drive.flush().map_err(|e| {
            ArchiveError::tape(format!("closing part {part_no} on {}", drive.describe()), e)
        })?;
        if let Some(part) = last {
            self.closed.parts.push(ClosedPart { part, marker });
        }
        let sequence = self.label.sequence + 1;
        self.progress.problem(&format!(
            "{current} is full: set {} continues on {barcode} (volume {sequence} of the series)",
            self.set_name
        ));
        if let Err(e) = self.tapes.load_blank(&barcode) {
            if let CoreError::Stopped(why) = &e {
                self.closed.stopped = Some(why.clone());
            }
            return Err(e);
        }
        let mut label = VolumeLabel::new(&barcode);
        label.series_id = self.label.series_id;
        label.sequence = sequence;
        label.pool = self.label.pool.clone();
        reel_archive::write_label(&mut *self.tapes.drive, &label)?;
        let first_block = logical_position(&mut *self.tapes.drive)?;
        self.parts.push(SetPart {
            volume_id: label.volume_id,
            barcode,
            sequence: label.sequence,
            data_file: 1,
            first_block,
            byte_start: self.total_records * self.block_size as u64,
            records: 0,
        });
        self.new_labels.push(label.clone());
        self.label = label;
        Ok(())
    }

    fn count(&mut self) {
        self.total_records += 1;
        if let Some(p) = self.parts.last_mut() {
            p.records += 1;
        }
    }
}

fn to_archive(e: CoreError) -> ArchiveError {
    match e {
        CoreError::Archive(a) => a,
        CoreError::Tape(t) => ArchiveError::tape("changing volumes".to_string(), t),
        other => ArchiveError::Volume(other.to_string()),
    }
}

impl RecordSink for SpanningSink<'_> {
    fn put_record(&mut self, record: &[u8]) -> Result<(), ArchiveError> {
        let ctx = |drive: &dyn TapeDrive, n: u64| {
            format!("volume {}, set data block {n}", drive.describe())
        };
        match self.tapes.drive.write(record) {
            Ok(()) => self.count(),
            Err(TapeError::EarlyWarning) => {
                self.count();
                self.switch_volume().map_err(to_archive)?;
            }
            Err(TapeError::EndOfMedia) => {
                // Nothing was written: continue on the next volume and write it there.
                self.switch_volume().map_err(to_archive)?;
                match self.tapes.drive.write(record) {
                    Ok(()) | Err(TapeError::EarlyWarning) => self.count(),
                    Err(e) => {
                        return Err(ArchiveError::tape(
                            ctx(&*self.tapes.drive, self.total_records),
                            e,
                        ));
                    }
                }
            }
            Err(e) => {
                return Err(ArchiveError::tape(
                    ctx(&*self.tapes.drive, self.total_records),
                    e,
                ));
            }
        }
        Ok(())
    }

    fn end_file(&mut self) -> Result<(), ArchiveError> {
        let drive = &mut *self.tapes.drive;
        drive
            .write_marks(MarkKind::Filemarks, 1, false)
            .map_err(|e| {
                ArchiveError::tape(format!("closing the set data on {}", drive.describe()), e)
            })
    }

    fn drive(&mut self) -> &mut dyn TapeDrive {
        &mut *self.tapes.drive
    }
}

/// Reads a set's data across its parts as one byte stream, changing volumes as needed.
pub struct SetStream<'a> {
    tapes: &'a mut Tapes,
    parts: Vec<SetPart>,
    block_size: usize,
    /// Part being read and its cursor.
    current: usize,
    cursor: RecordCursor,
    /// The volume in the drive is the current part's.
    mounted: bool,
    /// Why a volume could not be had from the operator: the job is over, nobody is asked again.
    stopped: Option<String>,
}

impl<'a> SetStream<'a> {
    pub fn new(tapes: &'a mut Tapes, parts: Vec<SetPart>, block_size: usize) -> Result<Self> {
        let first = parts.first().cloned().ok_or(CoreError::NoDataParts)?;
        Ok(SetStream {
            tapes,
            cursor: RecordCursor::new(
                first.data_file,
                Some(first.first_block),
                Some(block_size),
                0,
            ),
            parts,
            block_size,
            current: 0,
            mounted: false,
            stopped: None,
        })
    }

    /// Loads the current part's volume and positions at byte `within` of the part.
    fn mount(&mut self, within: u64) -> Result<(), ArchiveError> {
        if let Some(why) = &self.stopped {
            return Err(ArchiveError::Volume(why.clone()));
        }
        let part = self.parts[self.current].clone();
        self.tapes
            .ensure_volume(&part.barcode, part.volume_id)
            .map_err(|e| {
                if let CoreError::Stopped(why) = &e {
                    self.stopped = Some(why.clone());
                }
                to_archive(e)
            })?;
        self.cursor.reset(
            part.data_file,
            Some(part.first_block),
            Some(self.block_size),
            0,
        );
        self.cursor.seek_to(&mut *self.tapes.drive, within)?;
        self.mounted = true;
        Ok(())
    }

    /// Why the job must stop: a volume it needs cannot be had (see [`CoreError::Stopped`]).
    pub fn stopped(&self) -> Option<CoreError> {
        self.stopped.clone().map(CoreError::Stopped)
    }

    /// Moves to byte `offset` of the set data (any part).
    pub fn seek_to(&mut self, offset: u64) -> Result<(), ArchiveError> {
        let idx = self
            .parts
            .iter()
            .rposition(|p| p.byte_start <= offset)
            .unwrap_or(0);
        let part = &self.parts[idx];
        if idx == self.current && self.mounted {
            return self
                .cursor
                .seek_to(&mut *self.tapes.drive, offset - part.byte_start);
        }
        self.current = idx;
        let within = offset - part.byte_start;
        self.mount(within)
    }
}

impl Read for SetStream<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.mounted {
                self.mount(0).map_err(io::Error::other)?;
            }
            let n = self.cursor.read(&mut *self.tapes.drive, out)?;
            if n > 0 || self.current + 1 >= self.parts.len() {
                return Ok(n);
            }
            // End of this part: the set continues on the next volume.
            self.current += 1;
            self.mounted = false;
        }
    }
}
