//! The layout of a reel volume and how to find things on it.
//!
//! ```text
//! [label] FM [set 1 data] FM [set 1 index] FM [set 2 data] FM [set 2 index] FM … EOD
//! ```
//! Tape file 0 is the label, set `s` has its data in file `2s-1` and its index in file `2s`.
//! A set is complete when its index is followed by a filemark; anything after the last
//! complete set is the remains of an interrupted backup, which the next backup overwrites.
//! So is a part of a set that stopped at a volume change, when the caller knows of it (the
//! tape cannot say: it was ejected before the stop; see [`map_volume_knowing`]).

use reel_tape::{MarkKind, PositionKind, SeekTo, TapeDrive, TapeError};

use crate::error::{ArchiveError, Result};
use crate::index::{IndexReader, SetInfo};
use crate::label::{MAX_LABEL_LEN, VolumeLabel};
use crate::part::PartMarker;
use crate::records::RecordReader;

/// What is at the beginning of the tape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeState {
    /// Nothing recorded.
    Blank,
    /// A reel volume.
    Reel(VolumeLabel),
    /// Something else (another program's data); `detail` says what was found.
    Foreign { detail: String },
}

/// Reads the label at the beginning of the tape (rewinds first).
pub fn read_state(drive: &mut dyn TapeDrive) -> Result<VolumeState> {
    drive
        .set_position(SeekTo::Rewind, false)
        .map_err(|e| ArchiveError::tape(format!("rewinding {}", drive.describe()), e))?;
    let mut buf = vec![0u8; MAX_LABEL_LEN];
    match drive.read(&mut buf) {
        Ok(n) => {
            let rec = &buf[..n];
            if VolumeLabel::is_reel_label(rec) {
                let label = VolumeLabel::decode(rec).map_err(|e| {
                    ArchiveError::Volume(format!(
                        "volume {}: the label (tape file 0, block 0) is damaged: {e}",
                        drive.describe()
                    ))
                })?;
                Ok(VolumeState::Reel(label))
            } else {
                Ok(VolumeState::Foreign {
                    detail: format!("a first record of {n} bytes that is not a reel label"),
                })
            }
        }
        Err(TapeError::NoDataDetected) => Ok(VolumeState::Blank),
        Err(TapeError::MoreData { record_len, .. }) => Ok(VolumeState::Foreign {
            detail: format!("a first record of {record_len} bytes that is not a reel label"),
        }),
        Err(TapeError::FilemarkDetected) => Ok(VolumeState::Foreign {
            detail: "an empty first tape file".into(),
        }),
        Err(e) => Err(ArchiveError::tape(
            format!(
                "reading the label of {} (tape file 0, block 0)",
                drive.describe()
            ),
            e,
        )),
    }
}

/// Writes a new label at the beginning of the tape, erasing everything on it.
pub fn write_label(drive: &mut dyn TapeDrive, label: &VolumeLabel) -> Result<()> {
    let ctx = |what: &str| format!("{what} on {}", drive.describe());
    let c = ctx("labelling the volume");
    drive
        .set_position(SeekTo::Rewind, false)
        .map_err(|e| ArchiveError::tape(c.clone(), e))?;
    match drive.write(&label.encode()) {
        Ok(()) | Err(TapeError::EarlyWarning) => {}
        Err(e) => return Err(ArchiveError::tape(c, e)),
    }
    drive
        .write_marks(MarkKind::Filemarks, 1, false)
        .map_err(|e| ArchiveError::tape(c, e))
}

/// How a set on the volume stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetState {
    Complete,
    /// The backup did not finish (no index, or a cut-off one).
    Incomplete(String),
    /// The index is there but cannot be read.
    Damaged(String),
    /// A part of a set that continues on another volume (its index is on the last one).
    Continued(PartMarker),
    /// A part closed to continue on another volume, of a set the caller knows stopped there
    /// unfinished: the set has no index anywhere, and nothing of it can be restored.
    Stopped(PartMarker),
}

/// One set as found on the volume.
#[derive(Debug, Clone)]
pub struct SetOnTape {
    /// Ordinal on the volume (1 = first).
    pub number: u32,
    pub data_file: u64,
    pub index_file: u64,
    /// Logical block where the data starts.
    pub data_first_block: u64,
    /// The set's description from its index (complete sets).
    pub info: Option<SetInfo>,
    pub state: SetState,
}

/// The map of a reel volume: its label, where each tape file starts, its sets and where
/// the next set goes.
#[derive(Debug, Clone)]
pub struct VolumeMap {
    pub label: VolumeLabel,
    /// Logical block of the start of each tape file that follows a filemark (file 0 at 0).
    pub file_starts: Vec<u64>,
    /// Logical block of end of data.
    pub end_of_data: u64,
    pub sets: Vec<SetOnTape>,
    /// Tape file and logical block where the next set's data begins.
    pub append_file: u64,
    pub append_block: u64,
    /// What the next backup will overwrite (remains of an interrupted backup, or a part of
    /// a set known to have stopped), if anything.
    pub leftover: Option<String>,
    /// The sets `leftover` describes (left out of `sets`).
    pub unfinished: Vec<SetOnTape>,
}

impl VolumeMap {
    pub fn complete_sets(&self) -> impl Iterator<Item = &SetOnTape> {
        self.sets.iter().filter(|s| s.state == SetState::Complete)
    }

    /// Finds a set by number, name or id (prefix); `None` = the latest complete set.
    pub fn find_set(&self, key: Option<&str>) -> Result<&SetOnTape> {
        let complete: Vec<&SetOnTape> = self.complete_sets().collect();
        let Some(key) = key else {
            return complete.last().copied().ok_or_else(|| {
                ArchiveError::Volume(format!(
                    "volume {} holds no complete backup set yet",
                    self.label.barcode
                ))
            });
        };
        if let Ok(n) = key.parse::<u32>() {
            let set = self.sets.iter().find(|s| s.number == n).ok_or_else(|| {
                ArchiveError::Volume(format!(
                    "volume {} has no set {n} (it has {} complete sets){}",
                    self.label.barcode,
                    self.sets.len(),
                    self.leftover
                        .as_ref()
                        .map(|l| format!("; note: {l}"))
                        .unwrap_or_default()
                ))
            })?;
            return match &set.state {
                SetState::Complete => Ok(set),
                SetState::Incomplete(why) | SetState::Damaged(why) => {
                    Err(ArchiveError::Volume(format!(
                        "set {n} on volume {} cannot be used: {why}",
                        self.label.barcode
                    )))
                }
                SetState::Stopped(m) => Err(ArchiveError::Volume(format!(
                    "set {n} on volume {} cannot be used: {}",
                    self.label.barcode,
                    stopped_part(m)
                ))),
                SetState::Continued(m) => Err(ArchiveError::Volume(format!(
                    "tape file {} of volume {} is part {} of set {} ({}), which continues on volume {}; its index is on the set's last volume",
                    set.data_file, self.label.barcode, m.part, m.set_name, m.set_id, m.next_barcode
                ))),
            };
        }
        let matches: Vec<&SetOnTape> = complete
            .iter()
            .copied()
            .filter(|s| {
                s.info.as_ref().is_some_and(|i| {
                    i.name == key || i.id.to_string().starts_with(&key.to_ascii_lowercase())
                })
            })
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(ArchiveError::Volume(format!(
                "no set named {key:?} on volume {} (see `reel list`){}",
                self.label.barcode,
                self.leftover
                    .as_ref()
                    .map(|l| format!("; note: {l}"))
                    .unwrap_or_default()
            ))),
            many => Err(ArchiveError::Volume(format!(
                "{key:?} matches {} sets on volume {}; give the set number",
                many.len(),
                self.label.barcode
            ))),
        }
    }
}

fn position(drive: &mut dyn TapeDrive) -> Result<u64> {
    drive
        .position(PositionKind::Logical)
        .map(|p| p.offset)
        .map_err(|e| ArchiveError::tape(format!("asking the position of {}", drive.describe()), e))
}

/// What the tape file after a set's data holds: the set's index, or the marker of a part
/// that continues on the next volume.
pub enum AfterData {
    Index(Box<SetInfo>),
    Part(PartMarker),
}

/// Reads the file that starts at the drive's position: an index header or a part marker.
pub fn read_after_data(drive: &mut dyn TapeDrive, file: u64) -> Result<AfterData> {
    let mut reader = RecordReader::new(drive, file, 1 << 20);
    // The first record is looked at in place: the index then reads it from the same buffer
    // (no copy of a whole record, which a one-file restore would pay for).
    if let Some(first) = reader.peek_record()?
        && PartMarker::is_marker(first)
    {
        return Ok(AfterData::Part(PartMarker::decode(first)?));
    }
    let (info, _) = IndexReader::open(reader)?;
    Ok(AfterData::Index(Box::new(info)))
}

/// What a part of a stopped set is, in a few words for messages.
pub fn stopped_part(m: &PartMarker) -> String {
    format!(
        "part {} of set {} ({}), which was to continue on {}, but the backup stopped at that tape change: the set was never finished and nothing of it can be restored",
        m.part, m.set_name, m.set_id, m.next_barcode
    )
}

/// Maps a reel volume: label, tape files, sets and the append point.
pub fn map_volume(drive: &mut dyn TapeDrive) -> Result<VolumeMap> {
    map_volume_knowing(drive, &[])
}

/// [`map_volume`], knowing which sets stopped unfinished at a volume change (`stopped_sets`,
/// their ids, from the catalog): a part of one of them is [`SetState::Stopped`] and, when
/// nothing complete follows it, a leftover the next set overwrites, like the remains of an
/// interrupted backup.
pub fn map_volume_knowing(
    drive: &mut dyn TapeDrive,
    stopped_sets: &[uuid::Uuid],
) -> Result<VolumeMap> {
    let label = reel_label(drive)?;
    let files = TapeFiles::find(drive)?;
    let mut sets = Vec::new();
    let mut number = 1u32;
    while let Some(set) = files.set(drive, number, stopped_sets)? {
        sets.push(set);
        number += 1;
    }
    let unfinished = split_unfinished(&label, &mut sets)?;
    let leftover = describe_unfinished(&unfinished);
    let append_file = 2 * sets.len() as u64 + 1;
    let append_block = match files.starts.get(append_file as usize) {
        Some(b) => *b,
        // The label has no filemark after it (interrupted while labelling).
        None => files.end_of_data,
    };
    Ok(VolumeMap {
        label,
        file_starts: files.starts,
        end_of_data: files.end_of_data,
        sets,
        append_file,
        append_block,
        leftover,
        unfinished,
    })
}

/// The label of a reel volume; an error for a blank or foreign one.
fn reel_label(drive: &mut dyn TapeDrive) -> Result<VolumeLabel> {
    match read_state(drive)? {
        VolumeState::Reel(l) => Ok(l),
        VolumeState::Blank => Err(ArchiveError::Volume(format!(
            "volume {} is blank: no backup has been written to it yet",
            drive.describe()
        ))),
        VolumeState::Foreign { detail } => Err(ArchiveError::Volume(format!(
            "{} is not a reel volume: it starts with {detail}",
            drive.describe()
        ))),
    }
}

/// Where a volume's tape files start, and where its data ends.
struct TapeFiles {
    /// Logical block of the start of each tape file that follows a filemark (file 0 at 0).
    starts: Vec<u64>,
    end_of_data: u64,
}

impl TapeFiles {
    /// Spaces over one filemark at a time from the beginning, then finds the end of data.
    fn find(drive: &mut dyn TapeDrive) -> Result<TapeFiles> {
        drive
            .set_position(SeekTo::Rewind, false)
            .map_err(|e| ArchiveError::tape(format!("rewinding {}", drive.describe()), e))?;
        let mut starts = vec![0u64];
        loop {
            match drive.set_position(SeekTo::SpaceFilemarks(1), false) {
                Ok(()) => starts.push(position(drive)?),
                Err(TapeError::NoDataDetected) => break,
                Err(e) => {
                    return Err(ArchiveError::tape(
                        format!(
                            "spacing over tape file {} of {}",
                            starts.len() - 1,
                            drive.describe()
                        ),
                        e,
                    ));
                }
            }
        }
        drive
            .set_position(SeekTo::EndOfData { partition: 0 }, false)
            .map_err(|e| {
                ArchiveError::tape(
                    format!("finding the end of data of {}", drive.describe()),
                    e,
                )
            })?;
        let end_of_data = position(drive)?;
        Ok(TapeFiles {
            starts,
            end_of_data,
        })
    }

    /// Files 0..terminated-1 end with a filemark.
    fn terminated(&self) -> u64 {
        self.starts.len() as u64 - 1
    }

    /// Set `number` of the volume and how it stands; `None` past the last set.
    fn set(
        &self,
        drive: &mut dyn TapeDrive,
        number: u32,
        stopped_sets: &[uuid::Uuid],
    ) -> Result<Option<SetOnTape>> {
        let data_file = 2 * u64::from(number) - 1;
        let index_file = data_file + 1;
        let Some(&data_start) = self.starts.get(data_file as usize) else {
            return Ok(None);
        };
        let terminated = self.terminated();
        if data_start == self.end_of_data && data_file == terminated {
            return Ok(None); // nothing after the last filemark
        }
        let (state, info) = if index_file < terminated {
            let index_start = self.starts[index_file as usize];
            after_data_state(drive, index_file, index_start, stopped_sets)?
        } else if data_file < terminated {
            let index_blocks = self.end_of_data - self.starts[index_file as usize];
            let why = format!(
                "its index (tape file {index_file}) ends after {index_blocks} blocks without a filemark: the backup was interrupted or the tape image is cut short"
            );
            (SetState::Incomplete(why), None)
        } else {
            let blocks = self.end_of_data - data_start;
            let why = format!(
                "its data (tape file {data_file}) ends after {blocks} blocks without a filemark: the backup was interrupted or the tape image is cut short"
            );
            (SetState::Incomplete(why), None)
        };
        Ok(Some(SetOnTape {
            number,
            data_file,
            index_file,
            data_first_block: data_start,
            info,
            state,
        }))
    }
}

/// How a set stands by the tape file after its data (`index_file`, at block `start`): its
/// index, or a part marker.
fn after_data_state(
    drive: &mut dyn TapeDrive,
    index_file: u64,
    start: u64,
    stopped_sets: &[uuid::Uuid],
) -> Result<(SetState, Option<SetInfo>)> {
    drive
        .set_position(
            SeekTo::LogicalBlock {
                partition: 0,
                block: start,
            },
            false,
        )
        .map_err(|e| ArchiveError::tape(format!("seeking to tape file {index_file}"), e))?;
    Ok(match read_after_data(drive, index_file) {
        Ok(AfterData::Index(info)) => (SetState::Complete, Some(*info)),
        Ok(AfterData::Part(marker)) if stopped_sets.contains(&marker.set_id) => {
            (SetState::Stopped(marker), None)
        }
        Ok(AfterData::Part(marker)) => (SetState::Continued(marker), None),
        Err(e) => (
            SetState::Damaged(format!(
                "its index (tape file {index_file}) cannot be read: {e}"
            )),
            None,
        ),
    })
}

/// Splits off the end of `sets` the next set overwrites: what follows the last set that is
/// not the remains of an interrupted backup or a part of a stopped set.
fn split_unfinished(label: &VolumeLabel, sets: &mut Vec<SetOnTape>) -> Result<Vec<SetOnTape>> {
    let unfinished =
        |s: &SetOnTape| matches!(s.state, SetState::Incomplete(_) | SetState::Stopped(_));
    let last_kept = sets
        .iter()
        .rposition(|s| !unfinished(s))
        .map(|i| i + 1)
        .unwrap_or(0);
    // An interrupted backup leaves one unfinished set at the end; a stopped part may come
    // before it (a reel that did not know of the stop appended after it).
    let interrupted = sets[last_kept..]
        .iter()
        .filter(|s| matches!(s.state, SetState::Incomplete(_)))
        .count();
    if interrupted > 1 {
        return Err(ArchiveError::Volume(format!(
            "volume {} has {} unfinished sets after set {last_kept}: its layout is not one reel writes; refusing to go on",
            label.barcode,
            sets.len() - last_kept
        )));
    }
    Ok(sets.split_off(last_kept))
}

/// What the next backup will overwrite, in words; `None` for nothing.
fn describe_unfinished(unfinished: &[SetOnTape]) -> Option<String> {
    (!unfinished.is_empty()).then(|| {
        unfinished
            .iter()
            .map(|s| match &s.state {
                SetState::Incomplete(why) => format!("set {} is unfinished: {why}", s.number),
                SetState::Stopped(m) => {
                    format!("set {} is unfinished: {}", s.number, stopped_part(m))
                }
                _ => format!("set {} is unfinished", s.number),
            })
            .collect::<Vec<_>>()
            .join("; ")
    })
}
