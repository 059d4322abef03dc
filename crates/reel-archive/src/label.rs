//! The volume label: the first record of a reel volume (tape file 0).
//!
//! Layout: the ASCII line `REEL-LABEL/1` and a newline, then a TOML document with the fields
//! of [`VolumeLabel`]. One record, readable with `reel tape dump --file 0`.

use serde::{Deserialize, Serialize};

use crate::error::{ArchiveError, Result};

/// First bytes of every reel label record.
pub const LABEL_MAGIC: &[u8] = b"REEL-LABEL/";
/// Label layout version this code writes.
pub const LABEL_VERSION: u32 = 1;
/// Largest label record accepted.
pub const MAX_LABEL_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeLabel {
    /// Unique id of this volume.
    pub volume_id: uuid::Uuid,
    /// Barcode or name of the cartridge when it was labelled.
    pub barcode: String,
    /// Pool the volume belongs to.
    #[serde(default = "default_pool")]
    pub pool: String,
    /// Id of the spanning series (the first volume's id) and this volume's place in it.
    pub series_id: uuid::Uuid,
    pub sequence: u32,
    /// When the volume was labelled (RFC 3339).
    pub created: String,
    /// Host that labelled it.
    #[serde(default)]
    pub host: String,
    /// reel's on-tape format version.
    pub format_version: u32,
    /// reel version that wrote the label.
    #[serde(default)]
    pub reel_version: String,
}

fn default_pool() -> String {
    "default".into()
}

/// Current time as RFC 3339 (UTC).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// This machine's host name (empty when unknown).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

impl VolumeLabel {
    /// A label for the first volume of a new series.
    pub fn new(barcode: &str) -> VolumeLabel {
        let id = uuid::Uuid::new_v4();
        VolumeLabel {
            volume_id: id,
            barcode: barcode.to_string(),
            pool: default_pool(),
            series_id: id,
            sequence: 1,
            created: now_rfc3339(),
            host: host_name(),
            format_version: LABEL_VERSION,
            reel_version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = format!("REEL-LABEL/{LABEL_VERSION}\n").into_bytes();
        out.extend(toml::to_string(self).unwrap_or_default().into_bytes());
        out
    }

    /// True when `record` starts like a reel label (it may still fail to decode).
    pub fn is_reel_label(record: &[u8]) -> bool {
        record.starts_with(LABEL_MAGIC)
    }

    pub fn decode(record: &[u8]) -> Result<VolumeLabel> {
        let corrupt = |offset: u64, what: String| ArchiveError::Corrupt { offset, what };
        if !Self::is_reel_label(record) {
            return Err(corrupt(0, "not a reel volume label".into()));
        }
        if record.len() > MAX_LABEL_LEN {
            return Err(corrupt(
                0,
                format!("label record of {} bytes is too long", record.len()),
            ));
        }
        let nl = record
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| corrupt(0, "label has no header line".into()))?;
        let version: u32 = std::str::from_utf8(&record[LABEL_MAGIC.len()..nl])
            .ok()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                corrupt(
                    LABEL_MAGIC.len() as u64,
                    "label version is not a number".into(),
                )
            })?;
        if version != LABEL_VERSION {
            return Err(corrupt(
                LABEL_MAGIC.len() as u64,
                format!(
                    "label version {version} is not supported (this reel reads {LABEL_VERSION})"
                ),
            ));
        }
        let body = std::str::from_utf8(&record[nl + 1..]).map_err(|e| {
            corrupt(
                (nl + 1 + e.valid_up_to()) as u64,
                "label is not UTF-8".into(),
            )
        })?;
        let body = body.trim_end_matches('\0');
        toml::from_str(body).map_err(|e| {
            let at = e.span().map(|s| s.start).unwrap_or(0);
            corrupt((nl + 1 + at) as u64, format!("label: {}", e.message()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_round_trips_and_rejects_garbage() {
        let l = VolumeLabel::new("tape-0001");
        assert_eq!(VolumeLabel::decode(&l.encode()).unwrap(), l);
        assert!(VolumeLabel::decode(b"ustar").is_err());
        assert!(VolumeLabel::decode(b"REEL-LABEL/9\nx=1").is_err());
        let mut bad = l.encode();
        bad.truncate(bad.len() / 2);
        assert!(VolumeLabel::decode(&bad).is_err());
    }
}
