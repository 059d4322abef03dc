//! Exit codes and how errors map onto them.

use reel_tape::TapeError;

pub const OK: u8 = 0;
/// Finished, with per-file problems (listed).
pub const PARTIAL: u8 = 1;
/// Usage or configuration error.
pub const USAGE: u8 = 2;
/// Media or device error.
pub const MEDIA: u8 = 3;
/// Data integrity failure.
pub const INTEGRITY: u8 = 4;

/// An error in what the user asked for (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code for an error, from the first cause that decides it.
pub fn code_for(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return USAGE;
        }
        if let Some(c) = cause.downcast_ref::<reel_core::CoreError>() {
            return match c.kind() {
                reel_core::FailureKind::Usage => USAGE,
                reel_core::FailureKind::Media => MEDIA,
                reel_core::FailureKind::Integrity => INTEGRITY,
            };
        }
        if let Some(c) = cause.downcast_ref::<reel_catalog::CatalogError>() {
            let _ = c;
            return USAGE;
        }
        if let Some(t) = cause.downcast_ref::<TapeError>() {
            return match t {
                TapeError::InvalidParameter(_) | TapeError::BadCartridge { .. } => USAGE,
                TapeError::Crc(_) => INTEGRITY,
                _ => MEDIA,
            };
        }
    }
    MEDIA
}

/// The full message of an error: its context chain, and the Win32 condition of a tape error.
pub fn describe(err: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let text = match cause.downcast_ref::<TapeError>() {
            Some(t) => format!("{t} [{} {}]", t.code_name(), t.code()),
            None => cause.to_string(),
        };
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    parts.join(": ")
}
