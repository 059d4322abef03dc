//! The marker written after a part of a set that continues on another volume.
//!
//! A set whose data does not fit one volume is split into parts; each part but the last is
//! followed, where the index would be, by a [`PartMarker`] naming the set, the part and the
//! volume it continues on (`REEL-PART/1` and TOML, see `spec/archive.md`). The volume
//! changer writes markers; the volume map reads them.

use serde::{Deserialize, Serialize};

use reel_tape::{MarkKind, TapeDrive};

use crate::error::{ArchiveError, Result};

/// First bytes of a part marker record.
pub const PART_MAGIC: &[u8] = b"REEL-PART/";

/// Written where the index would be, after a part of a set that continues on the next
/// volume: `REEL-PART/1`, a newline, TOML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartMarker {
    pub set_id: uuid::Uuid,
    pub set_name: String,
    /// This part's number (1 = first).
    pub part: u32,
    /// Offset in the set data where this part begins, and its records.
    pub byte_start: u64,
    pub records: u64,
    /// Barcode of the volume the set continues on.
    pub next_barcode: String,
}

impl PartMarker {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"REEL-PART/1\n".to_vec();
        out.extend(toml::to_string(self).unwrap_or_default().into_bytes());
        out
    }

    pub fn is_marker(record: &[u8]) -> bool {
        record.starts_with(PART_MAGIC)
    }

    pub fn decode(record: &[u8]) -> Result<PartMarker> {
        let corrupt = |what: String| ArchiveError::Corrupt { offset: 0, what };
        let rest = record
            .strip_prefix(b"REEL-PART/1\n".as_slice())
            .ok_or_else(|| corrupt("not a reel part marker (version 1)".into()))?;
        let text = std::str::from_utf8(rest)
            .map_err(|e| corrupt(format!("part marker is not UTF-8: {e}")))?;
        toml::from_str(text.trim_end_matches('\0'))
            .map_err(|e| corrupt(format!("part marker: {}", e.message())))
    }

    /// Writes the marker as its own tape file (record and filemark) and flushes.
    pub fn write(&self, drive: &mut dyn TapeDrive) -> Result<()> {
        let ctx = format!(
            "writing the part marker of set {} on {}",
            self.set_name,
            drive.describe()
        );
        match drive.write(&self.encode()) {
            Ok(()) | Err(reel_tape::TapeError::EarlyWarning) => {}
            Err(e) => return Err(ArchiveError::tape(ctx, e)),
        }
        drive
            .write_marks(MarkKind::Filemarks, 1, false)
            .map_err(|e| ArchiveError::tape(ctx.clone(), e))?;
        drive.flush().map_err(|e| ArchiveError::tape(ctx, e))
    }
}
