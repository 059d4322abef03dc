//! The SIMH magnetic-tape image format, as reel writes and reads it.
//!
//! A tape image is a sequence of objects, each introduced by a little-endian 32-bit word:
//!
//! | word | object |
//! |---|---|
//! | `0x0000_0000` | tape mark (filemark) |
//! | class 0, length n > 0 | good data record: the word, n bytes, one pad byte if n is odd, the word again |
//! | class 1, length n > 0 | **reel private**: a record stored zstd-compressed (n = stored bytes) |
//! | class 8, length n > 0 | bad data record (written by other tools; read as a CRC error) |
//! | `0x7000_0001` | **reel private** marker: a setmark |
//! | `0xFFFF_FFFE`, `0xFFFE_FFFF` | erase gap (skipped) |
//! | `0xFFFF_FFFF` | end of medium (nothing after it is read) |
//!
//! The top four bits of a record word are its class, the low 28 bits its length. Plain records
//! are class 0, so SIMH and other `.tap` readers read reel cartridges; compressed records and
//! setmarks use SIMH's private classes, which those readers skip or report.

/// Word of a tape mark (filemark).
pub const TAPE_MARK: u32 = 0;
/// Word of the end-of-medium marker.
pub const END_OF_MEDIUM: u32 = 0xFFFF_FFFF;
/// Erase gap words (primary value and the forward half-gap).
pub const ERASE_GAP: u32 = 0xFFFF_FFFE;
pub const ERASE_GAP_HALF: u32 = 0xFFFE_FFFF;
/// reel's private marker for a setmark (class 7, value 1).
pub const SETMARK: u32 = 0x7000_0001;

/// Class of a good data record.
pub const CLASS_GOOD: u32 = 0x0;
/// reel's private data class: zstd-compressed record.
pub const CLASS_COMPRESSED: u32 = 0x1;
/// Class of a bad data record.
pub const CLASS_BAD: u32 = 0x8;

/// Largest record length a SIMH word can carry (28 bits).
pub const MAX_RECORD_LEN: u32 = 0x0FFF_FFFF;

/// What a leading word introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Word {
    TapeMark,
    Setmark,
    EraseGap,
    EndOfMedium,
    /// A data record of `class` whose stored payload is `len` bytes.
    Record {
        class: u32,
        len: u32,
    },
    /// A single-word marker reel does not know (private classes 7 and E, reserved F values).
    UnknownMarker(u32),
}

impl Word {
    pub fn decode(word: u32) -> Word {
        match word {
            TAPE_MARK => Word::TapeMark,
            SETMARK => Word::Setmark,
            ERASE_GAP | ERASE_GAP_HALF => Word::EraseGap,
            END_OF_MEDIUM => Word::EndOfMedium,
            w => {
                let class = w >> 28;
                let len = w & MAX_RECORD_LEN;
                match class {
                    0x7 | 0xE | 0xF => Word::UnknownMarker(w),
                    _ if len == 0 => Word::UnknownMarker(w),
                    _ => Word::Record { class, len },
                }
            }
        }
    }

    /// Bytes this object occupies in the image.
    pub fn stored_size(self) -> u64 {
        match self {
            Word::Record { len, .. } => record_size(len),
            _ => 4,
        }
    }
}

/// The word of a data record of `class` with `len` stored bytes.
pub fn record_word(class: u32, len: u32) -> u32 {
    debug_assert!(len > 0 && len <= MAX_RECORD_LEN);
    (class << 28) | len
}

/// Bytes a record with `len` payload bytes occupies: two words, the payload, the pad byte.
pub fn record_size(len: u32) -> u64 {
    8 + padded(len)
}

/// Payload length rounded up to an even number of bytes.
pub fn padded(len: u32) -> u64 {
    (u64::from(len) + 1) & !1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_decode() {
        assert_eq!(Word::decode(0), Word::TapeMark);
        assert_eq!(Word::decode(SETMARK), Word::Setmark);
        assert_eq!(Word::decode(0xFFFF_FFFF), Word::EndOfMedium);
        assert_eq!(Word::decode(0xFFFF_FFFE), Word::EraseGap);
        assert_eq!(Word::decode(512), Word::Record { class: 0, len: 512 });
        assert_eq!(
            Word::decode(record_word(CLASS_COMPRESSED, 77)),
            Word::Record { class: 1, len: 77 }
        );
        assert_eq!(Word::decode(0x8000_0000), Word::UnknownMarker(0x8000_0000));
        assert_eq!(record_size(3), 12);
        assert_eq!(record_size(4), 12);
    }
}
