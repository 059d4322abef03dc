//! Bounds-checked big-endian reads: every field read either succeeds or says which
//! structure was short and at which offset, so no parser can index past its input.

use crate::error::ParseError;

/// A response being decoded: the bytes and the name of the structure, for errors.
#[derive(Clone, Copy)]
pub(crate) struct Bytes<'a> {
    pub buf: &'a [u8],
    pub what: &'static str,
}

impl<'a> Bytes<'a> {
    pub fn new(what: &'static str, buf: &'a [u8]) -> Self {
        Bytes { buf, what }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn err(&self, offset: usize, reason: impl Into<String>) -> ParseError {
        ParseError::new(self.what, offset, reason)
    }

    pub fn slice(&self, offset: usize, len: usize) -> Result<&'a [u8], ParseError> {
        offset
            .checked_add(len)
            .and_then(|end| self.buf.get(offset..end))
            .ok_or_else(|| {
                self.err(
                    offset.min(self.buf.len()),
                    format!(
                        "needs {len} bytes at offset {offset}, the response has {}",
                        self.buf.len()
                    ),
                )
            })
    }

    pub fn u8(&self, offset: usize) -> Result<u8, ParseError> {
        Ok(self.slice(offset, 1)?[0])
    }

    pub fn be16(&self, offset: usize) -> Result<u16, ParseError> {
        let s = self.slice(offset, 2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    pub fn be24(&self, offset: usize) -> Result<u32, ParseError> {
        let s = self.slice(offset, 3)?;
        Ok(u32::from_be_bytes([0, s[0], s[1], s[2]]))
    }

    pub fn be32(&self, offset: usize) -> Result<u32, ParseError> {
        let s = self.slice(offset, 4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub fn be64(&self, offset: usize) -> Result<u64, ParseError> {
        let s = self.slice(offset, 8)?;
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        Ok(u64::from_be_bytes(b))
    }

    /// A big-endian unsigned number of 1 to 8 bytes.
    pub fn be_uint(&self, offset: usize, len: usize) -> Result<u64, ParseError> {
        if len == 0 || len > 8 {
            return Err(self.err(offset, format!("a {len}-byte number does not fit 64 bits")));
        }
        Ok(self
            .slice(offset, len)?
            .iter()
            .fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }

    /// An ASCII field with the trailing spaces and NULs T10 pads with removed.
    pub fn ascii(&self, offset: usize, len: usize) -> Result<String, ParseError> {
        Ok(ascii_trimmed(self.slice(offset, len)?))
    }
}

/// Printable ASCII of a padded field; other bytes are shown as `?`.
pub(crate) fn ascii_trimmed(b: &[u8]) -> String {
    let s: String = b
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else if c == 0 {
                ' '
            } else {
                '?'
            }
        })
        .collect();
    s.trim_end().to_string()
}
