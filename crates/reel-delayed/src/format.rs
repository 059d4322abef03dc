//! The operation file's bytes: parser and writer.
//!
//! The whole file is one UTF-16LE string without a byte-order mark. It holds records of four
//! fields; every field ends with one NUL code unit, and one more NUL follows the last record:
//!
//! ```text
//! MoveFile␀\??\src␀\??\dst␀NotExecuted␀ DeleteFile␀Unused␀\??\path␀NotExecuted␀ ␀
//! ```
//!
//! | record | field 1 | field 2 | field 3 | field 4 |
//! |---|---|---|---|---|
//! | move | `MoveFile` | `\??\` source | `\??\` destination | status |
//! | delete | `DeleteFile` | `Unused` (or empty) | `\??\` path | status |
//! | short name | `SetFileShortName` | short name | `\??\` path | status |
//!
//! Keywords are case-sensitive. The status is `NotExecuted` until the executor overwrites it
//! with `SC=` and eight hex digits of a Win32 code; both are 11 code units (22 bytes), so the
//! file is updated in place and never changes length.
//!
//! [`parse`] refuses anything else with a [`FormatError`] naming the byte offset; it never
//! panics, whatever the input. [`encode`] writes the canonical form (upper-case hex in status
//! codes); parsing and encoding a file reel wrote gives back the same bytes.

use std::fmt;

use serde::Serialize;

use crate::path::NtPath;

pub const MOVE_FILE: &str = "MoveFile";
pub const DELETE_FILE: &str = "DeleteFile";
pub const SET_FILE_SHORT_NAME: &str = "SetFileShortName";
pub const UNUSED: &str = "Unused";
pub const NOT_EXECUTED: &str = "NotExecuted";

/// Bytes of a status field (`NotExecuted` or `SC=XXXXXXXX`: 11 UTF-16 code units).
pub const STATUS_FIELD_BYTES: usize = 22;

/// The longest field accepted, in UTF-16 code units: Windows' longest path (32,767) plus the
/// `\??\` prefix. It bounds what one malformed field can make the parser hold.
pub const MAX_FIELD_UNITS: usize = 32_767 + 4;

/// What field 2 of a DeleteFile record held, kept so a parsed file re-encodes byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum UnusedField {
    /// `Unused`, as the Windows documentation says to write it (and as reel writes it).
    #[default]
    Unused,
    /// An empty field.
    Empty,
}

/// One requested operation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "operation")]
pub enum Operation {
    /// Move a file (never a directory) within one file system, replacing the destination.
    MoveFile { source: NtPath, destination: NtPath },
    /// Delete a file, a symbolic link, or an empty directory.
    DeleteFile { path: NtPath, unused: UnusedField },
    /// Give a file its 8.3 short name (NTFS only).
    SetFileShortName { short_name: String, path: NtPath },
}

impl Operation {
    pub fn move_file(source: NtPath, destination: NtPath) -> Operation {
        Operation::MoveFile {
            source,
            destination,
        }
    }

    pub fn delete_file(path: NtPath) -> Operation {
        Operation::DeleteFile {
            path,
            unused: UnusedField::Unused,
        }
    }

    pub fn set_short_name(path: NtPath, short_name: impl Into<String>) -> Operation {
        Operation::SetFileShortName {
            short_name: short_name.into(),
            path,
        }
    }

    /// The keyword of field 1.
    pub fn keyword(&self) -> &'static str {
        match self {
            Operation::MoveFile { .. } => MOVE_FILE,
            Operation::DeleteFile { .. } => DELETE_FILE,
            Operation::SetFileShortName { .. } => SET_FILE_SHORT_NAME,
        }
    }

    /// MoveFile and DeleteFile failures stop the run; a SetFileShortName failure does not.
    pub fn is_critical(&self) -> bool {
        !matches!(self, Operation::SetFileShortName { .. })
    }

    /// The path the operation acts on (field 3: destination, deleted path, renamed file).
    pub fn target(&self) -> &NtPath {
        match self {
            Operation::MoveFile { destination, .. } => destination,
            Operation::DeleteFile { path, .. } => path,
            Operation::SetFileShortName { path, .. } => path,
        }
    }

    /// Every path the operation touches.
    pub fn paths(&self) -> Vec<&NtPath> {
        match self {
            Operation::MoveFile {
                source,
                destination,
            } => vec![source, destination],
            Operation::DeleteFile { path, .. } | Operation::SetFileShortName { path, .. } => {
                vec![path]
            }
        }
    }

    /// Fields 2 and 3 as they are written.
    pub fn fields(&self) -> (String, String) {
        match self {
            Operation::MoveFile {
                source,
                destination,
            } => (source.to_field(), destination.to_field()),
            Operation::DeleteFile { path, unused } => (
                match unused {
                    UnusedField::Unused => UNUSED.to_string(),
                    UnusedField::Empty => String::new(),
                },
                path.to_field(),
            ),
            Operation::SetFileShortName { short_name, path } => {
                (short_name.clone(), path.to_field())
            }
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operation::MoveFile {
                source,
                destination,
            } => write!(f, "MoveFile {source} -> {destination}"),
            Operation::DeleteFile { path, .. } => write!(f, "DeleteFile {path}"),
            Operation::SetFileShortName { short_name, path } => {
                write!(f, "SetFileShortName {path} as {short_name:?}")
            }
        }
    }
}

/// Field 4 of a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `NotExecuted`: not yet carried out.
    NotExecuted,
    /// `SC=XXXXXXXX`: carried out with this Win32 code (0 = success).
    Code(u32),
}

impl Status {
    pub fn succeeded(&self) -> bool {
        *self == Status::Code(0)
    }

    /// The field text.
    pub fn to_field(&self) -> String {
        match self {
            Status::NotExecuted => NOT_EXECUTED.to_string(),
            Status::Code(c) => format!("SC={c:08X}"),
        }
    }

    /// The field's 22 bytes, as written in place.
    pub fn encode(&self) -> [u8; STATUS_FIELD_BYTES] {
        let mut out = [0u8; STATUS_FIELD_BYTES];
        for (i, unit) in self.to_field().encode_utf16().enumerate() {
            let [lo, hi] = unit.to_le_bytes();
            out[2 * i] = lo;
            out[2 * i + 1] = hi;
        }
        out
    }

    fn parse(text: &str) -> Option<Status> {
        if text == NOT_EXECUTED {
            return Some(Status::NotExecuted);
        }
        let hex = text.strip_prefix("SC=")?;
        if hex.len() != 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(hex, 16).ok().map(Status::Code)
    }
}

impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_field())
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_field())
    }
}

/// One parsed record and where it sits in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub operation: Operation,
    pub status: Status,
    /// Byte offset of field 1.
    pub offset: u64,
    /// Byte offset of field 4 (the status, rewritten in place).
    pub status_offset: u64,
}

/// Why bytes are not an operation file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte offset {offset}{}: {kind}", record_suffix(*.record))]
pub struct FormatError {
    /// Byte offset of the problem.
    pub offset: u64,
    /// The record (1-based) the problem is in, when it is in one.
    pub record: Option<usize>,
    pub kind: FormatErrorKind,
}

fn record_suffix(record: Option<usize>) -> String {
    record.map(|r| format!(" (record {r})")).unwrap_or_default()
}

/// The kinds of malformation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatErrorKind {
    #[error(
        "the file has an odd number of bytes ({0}); UTF-16LE text has two bytes per code unit, so it is truncated or not an operation file"
    )]
    OddLength(u64),
    #[error(
        "the file starts with a byte-order mark ({0}); an operation file is UTF-16LE without one"
    )]
    ByteOrderMark(&'static str),
    #[error(
        "the file ends without the final NUL that follows the last record (a file with no records is a single NUL, 2 bytes)"
    )]
    MissingFinalNul,
    #[error("field {field} is not NUL-terminated: the file ends inside it")]
    UnterminatedField { field: usize },
    #[error(
        "the record has {found} fields where 4 are needed (keyword, two parameters, status), then the file ends"
    )]
    TooFewFields { found: usize },
    #[error(
        "field 4 should be the status (NotExecuted or SC=XXXXXXXX) but is the keyword {0:?}: the record has only 3 fields"
    )]
    KeywordAsStatus(String),
    #[error(
        "unknown keyword {0:?}; records start with MoveFile, DeleteFile or SetFileShortName (case-sensitive), and every record has exactly 4 fields"
    )]
    UnknownKeyword(String),
    #[error("field {field} must be a path starting with \\??\\, found {found:?}")]
    MissingPrefix { field: usize, found: String },
    #[error("field 2 of DeleteFile must be \"Unused\" or empty, found {0:?}{hint}", hint = delete_hint(.0))]
    BadUnusedField(String),
    #[error("the short name (field 2 of SetFileShortName) is empty")]
    EmptyShortName,
    #[error("field 4 must be NotExecuted or SC= and 8 hex digits, found {0:?}")]
    BadStatus(String),
    #[error("field {field} is longer than {MAX_FIELD_UNITS} UTF-16 code units")]
    FieldTooLong { field: usize },
    #[error("unpaired UTF-16 surrogate 0x{0:04X}")]
    UnpairedSurrogate(u16),
    #[error("data after the final NUL; the records end at the first empty keyword")]
    TrailingData,
}

fn delete_hint(found: &str) -> &'static str {
    if found.starts_with(crate::path::NT_PREFIX) {
        " (is the \"Unused\" field missing?)"
    } else {
        ""
    }
}

/// Encodes text as UTF-16LE, without any terminator.
pub fn utf16le(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn push_field(out: &mut Vec<u8>, text: &str) {
    for unit in text.encode_utf16() {
        out.extend_from_slice(&unit.to_le_bytes());
    }
    out.extend_from_slice(&[0, 0]);
}

/// Appends one record (four NUL-terminated fields) to `out`.
pub fn encode_record(operation: &Operation, status: Status, out: &mut Vec<u8>) {
    let (f2, f3) = operation.fields();
    push_field(out, operation.keyword());
    push_field(out, &f2);
    push_field(out, &f3);
    push_field(out, &status.to_field());
}

/// A whole file: the records, then the final NUL.
pub fn encode<'a>(records: impl IntoIterator<Item = (&'a Operation, Status)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (op, status) in records {
        encode_record(op, status, &mut out);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// A whole file of new (`NotExecuted`) records.
pub fn encode_new(operations: &[Operation]) -> Vec<u8> {
    encode(operations.iter().map(|op| (op, Status::NotExecuted)))
}

/// Parses a whole operation file. Nothing is accepted partially: any malformation anywhere
/// refuses the file, naming the byte offset.
pub fn parse(bytes: &[u8]) -> Result<Vec<Record>, FormatError> {
    check_encoding(bytes)?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let mut records = Vec::new();
    let mut pos = 0usize; // in code units
    loop {
        match units.get(pos) {
            None => {
                return Err(FormatError::at(
                    2 * pos as u64,
                    None,
                    FormatErrorKind::MissingFinalNul,
                ));
            }
            Some(0) => {
                if pos + 1 != units.len() {
                    return Err(FormatError::at(
                        2 * (pos as u64 + 1),
                        None,
                        FormatErrorKind::TrailingData,
                    ));
                }
                return Ok(records);
            }
            Some(_) => {}
        }
        let record = records.len() + 1;
        let offset = 2 * pos as u64;
        let mut fields = Fields {
            units: &units,
            pos,
            record,
        };
        let keyword = fields.next(1)?;
        let f2 = fields.next(2)?;
        let f3 = fields.next(3)?;
        let f4 = fields.next(4)?;
        pos = fields.pos;
        let at_end = pos >= units.len();
        let operation = operation_of(keyword, f2, f3, record)?;
        let status_offset = f4.offset;
        let status = status_of(f4, at_end, record)?;
        records.push(Record {
            operation,
            status,
            offset,
            status_offset,
        });
    }
}

impl FormatError {
    fn at(offset: u64, record: Option<usize>, kind: FormatErrorKind) -> FormatError {
        FormatError {
            offset,
            record,
            kind,
        }
    }
}

/// Refuses bytes that cannot be UTF-16LE without a byte-order mark.
fn check_encoding(bytes: &[u8]) -> Result<(), FormatError> {
    let len = bytes.len() as u64;
    if len % 2 == 1 {
        return Err(FormatError::at(
            len - 1,
            None,
            FormatErrorKind::OddLength(len),
        ));
    }
    let bom = match bytes.get(..2) {
        Some([0xFF, 0xFE]) => "FF FE, UTF-16LE",
        Some([0xFE, 0xFF]) => "FE FF, UTF-16BE",
        _ => return Ok(()),
    };
    Err(FormatError::at(
        0,
        None,
        FormatErrorKind::ByteOrderMark(bom),
    ))
}

/// One field's text and the byte offset where it starts.
struct Field {
    text: String,
    offset: u64,
}

/// The fields of record `record`, read one after another from code unit `pos` on.
struct Fields<'a> {
    units: &'a [u16],
    pos: usize,
    record: usize,
}

impl Fields<'_> {
    /// Field `field` (1 to 4) of the record: the text up to its NUL.
    fn next(&mut self, field: usize) -> Result<Field, FormatError> {
        let start = self.pos;
        let at = 2 * start as u64;
        let record = Some(self.record);
        if start >= self.units.len() {
            // The previous field's NUL was the file's last unit.
            let kind = FormatErrorKind::TooFewFields { found: field - 1 };
            return Err(FormatError::at(at, record, kind));
        }
        let Some(nul) = self.units[start..].iter().position(|&u| u == 0) else {
            let kind = if self.units.len() - start > MAX_FIELD_UNITS {
                FormatErrorKind::FieldTooLong { field }
            } else {
                FormatErrorKind::UnterminatedField { field }
            };
            return Err(FormatError::at(at, record, kind));
        };
        if nul > MAX_FIELD_UNITS {
            let kind = FormatErrorKind::FieldTooLong { field };
            return Err(FormatError::at(at, record, kind));
        }
        let text = decode(&self.units[start..start + nul], start, self.record)?;
        self.pos = start + nul + 1;
        Ok(Field { text, offset: at })
    }
}

/// The operation fields 1 to 3 of record `record` ask for.
fn operation_of(
    keyword: Field,
    f2: Field,
    f3: Field,
    record: usize,
) -> Result<Operation, FormatError> {
    let path = |f: Field, field: usize| {
        NtPath::from_field(&f.text).ok_or_else(|| {
            FormatError::at(
                f.offset,
                Some(record),
                FormatErrorKind::MissingPrefix {
                    field,
                    found: f.text,
                },
            )
        })
    };
    match keyword.text.as_str() {
        MOVE_FILE => Ok(Operation::MoveFile {
            source: path(f2, 2)?,
            destination: path(f3, 3)?,
        }),
        DELETE_FILE => {
            let unused = match f2.text.as_str() {
                UNUSED => UnusedField::Unused,
                "" => UnusedField::Empty,
                _ => {
                    let kind = FormatErrorKind::BadUnusedField(f2.text);
                    return Err(FormatError::at(f2.offset, Some(record), kind));
                }
            };
            Ok(Operation::DeleteFile {
                path: path(f3, 3)?,
                unused,
            })
        }
        SET_FILE_SHORT_NAME => {
            if f2.text.is_empty() {
                let kind = FormatErrorKind::EmptyShortName;
                return Err(FormatError::at(f2.offset, Some(record), kind));
            }
            Ok(Operation::SetFileShortName {
                short_name: f2.text,
                path: path(f3, 3)?,
            })
        }
        _ => {
            let kind = FormatErrorKind::UnknownKeyword(keyword.text);
            Err(FormatError::at(keyword.offset, Some(record), kind))
        }
    }
}

/// The status in field 4 of record `record` (`at_end`: the record ends the file).
fn status_of(f4: Field, at_end: bool, record: usize) -> Result<Status, FormatError> {
    if let Some(s) = Status::parse(&f4.text) {
        return Ok(s);
    }
    let kind = if f4.text.is_empty() && at_end {
        // `…\??\dst␀␀` then the end: the final NUL closed an empty 4th field.
        FormatErrorKind::TooFewFields { found: 3 }
    } else if [MOVE_FILE, DELETE_FILE, SET_FILE_SHORT_NAME].contains(&f4.text.as_str()) {
        FormatErrorKind::KeywordAsStatus(f4.text)
    } else {
        FormatErrorKind::BadStatus(f4.text)
    };
    Err(FormatError::at(f4.offset, Some(record), kind))
}

fn decode(units: &[u16], start: usize, record: usize) -> Result<String, FormatError> {
    let mut out = String::with_capacity(units.len());
    let mut i = 0usize;
    for r in char::decode_utf16(units.iter().copied()) {
        match r {
            Ok(c) => {
                out.push(c);
                i += c.len_utf16();
            }
            Err(e) => {
                return Err(FormatError {
                    offset: 2 * (start + i) as u64,
                    record: Some(record),
                    kind: FormatErrorKind::UnpairedSurrogate(e.unpaired_surrogate()),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn move_op(a: &str, b: &str) -> Operation {
        Operation::move_file(NtPath::from_raw(a), NtPath::from_raw(b))
    }

    #[test]
    fn empty_file_is_one_nul() {
        assert_eq!(encode_new(&[]), vec![0, 0]);
        assert_eq!(parse(&[0, 0]).unwrap(), vec![]);
        let e = parse(&[]).unwrap_err();
        assert_eq!((e.offset, e.kind), (0, FormatErrorKind::MissingFinalNul));
    }

    #[test]
    fn status_is_eleven_units() {
        assert_eq!(Status::NotExecuted.encode().len(), STATUS_FIELD_BYTES);
        assert_eq!(utf16le("SC=00000091"), Status::Code(145).encode().to_vec());
        assert_eq!(utf16le(NOT_EXECUTED), Status::NotExecuted.encode().to_vec());
        assert_eq!(Status::parse("SC=0000009a"), Some(Status::Code(0x9a)));
        assert_eq!(Status::parse("SC=9a"), None);
        assert_eq!(Status::parse("SC=+0000009"), None);
    }

    #[test]
    fn offsets_point_at_fields() {
        let ops = [move_op("/a", "/b"), move_op("/c", "/d")];
        let bytes = encode_new(&ops);
        let recs = parse(&bytes).unwrap();
        assert_eq!(recs[0].offset, 0);
        let first_len = utf16le("MoveFile\0\\??\\/a\0\\??\\/b\0NotExecuted\0").len() as u64;
        assert_eq!(recs[1].offset, first_len);
        assert_eq!(
            &bytes[recs[1].status_offset as usize..][..STATUS_FIELD_BYTES],
            &Status::NotExecuted.encode()
        );
    }

    #[test]
    fn three_fields_at_the_end() {
        let mut b = utf16le("MoveFile\0\\??\\/a\0\\??\\/b\0");
        b.extend_from_slice(&[0, 0]);
        let e = parse(&b).unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::TooFewFields { found: 3 });
        assert_eq!(e.record, Some(1));
    }

    #[test]
    fn three_fields_in_the_middle() {
        let mut b = utf16le("MoveFile\0\\??\\/a\0\\??\\/b\0");
        b.extend(utf16le("MoveFile\0\\??\\/c\0\\??\\/d\0NotExecuted\0\0"));
        let e = parse(&b).unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::KeywordAsStatus("MoveFile".into()));
        assert_eq!(
            e.offset,
            utf16le("MoveFile\0\\??\\/a\0\\??\\/b\0").len() as u64
        );
    }

    #[test]
    fn unpaired_surrogate_offset() {
        let mut b = utf16le("MoveFile\0\\??\\/a");
        let at = b.len() as u64;
        b.extend_from_slice(&0xD800u16.to_le_bytes());
        b.extend(utf16le("\0\\??\\/b\0NotExecuted\0\0"));
        let e = parse(&b).unwrap_err();
        assert_eq!(e.offset, at);
        assert_eq!(e.kind, FormatErrorKind::UnpairedSurrogate(0xD800));
    }

    #[test]
    fn trailing_data() {
        let mut b = encode_new(&[move_op("/a", "/b")]);
        b.extend_from_slice(&[0x41, 0]);
        let e = parse(&b).unwrap_err();
        assert_eq!(e.kind, FormatErrorKind::TrailingData);
        assert_eq!(e.offset, b.len() as u64 - 2);
    }
}
