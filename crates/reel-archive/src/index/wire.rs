//! An index line as JSON: the short field names, kind letters, decimal times and hex digests
//! the format has had since the first index, converted to and from [`IndexEntry`] here and
//! nowhere else.
//!
//! Decoding costs no allocation beyond the entry's own name and link: the texts are parsed
//! where they lie in the line (every line of a 100,000-member set is decoded by a restore or
//! a listing of it).

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

use reel_stream::Timestamp;

use super::{EntryKind, HashScheme, IndexEntry, MetaDigest, decode_hex};

/// The JSON object of one index line.
#[derive(Serialize, Deserialize)]
struct Line<'a> {
    /// The name when it is UTF-8, else `px`: the name's bytes in hex.
    #[serde(rename = "p", default, skip_serializing_if = "str::is_empty", borrow)]
    path_text: Cow<'a, str>,
    #[serde(rename = "px", default, skip_serializing_if = "Option::is_none")]
    path_hex: Option<Text<Hex<'a>>>,
    #[serde(rename = "t")]
    kind: Text<EntryKind>,
    #[serde(rename = "s")]
    size: u64,
    #[serde(rename = "m")]
    mode: u32,
    #[serde(rename = "u")]
    uid: u32,
    #[serde(rename = "g")]
    gid: u32,
    #[serde(rename = "mt")]
    mtime: Text<Timestamp>,
    #[serde(rename = "o")]
    offset: u64,
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    hash: Option<Text<blake3::Hash>>,
    /// Absent for plain BLAKE3.
    #[serde(rename = "hs", default, skip_serializing_if = "Option::is_none")]
    hash_scheme: Option<Text<HashScheme>>,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    link: Option<Cow<'a, str>>,
    #[serde(rename = "md")]
    meta_digest: Text<MetaDigest>,
    #[serde(rename = "ct", default, skip_serializing_if = "Option::is_none")]
    ctime: Option<Text<Timestamp>>,
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    ino: Option<u64>,
    #[serde(rename = "src", default, skip_serializing_if = "Option::is_none")]
    source_set: Option<uuid::Uuid>,
}

impl<'a> From<&'a IndexEntry> for Line<'a> {
    fn from(e: &'a IndexEntry) -> Line<'a> {
        let (path_text, path_hex) = match std::str::from_utf8(&e.path) {
            Ok(text) => (Cow::Borrowed(text), None),
            Err(_) => (
                Cow::Borrowed(""),
                Some(Text(Hex(Cow::Borrowed(&e.path[..])))),
            ),
        };
        Line {
            path_text,
            path_hex,
            kind: Text(e.kind),
            size: e.size,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            mtime: Text(e.mtime),
            offset: e.offset,
            hash: e.hash.map(Text),
            hash_scheme: e.hash_scheme.name().map(|_| Text(e.hash_scheme)),
            link: e.link.as_deref().map(Cow::Borrowed),
            meta_digest: Text(e.meta_digest),
            ctime: e.ctime.map(Text),
            ino: e.ino,
            source_set: e.source_set,
        }
    }
}

impl From<Line<'_>> for IndexEntry {
    fn from(l: Line<'_>) -> IndexEntry {
        IndexEntry {
            path: match l.path_hex {
                Some(Text(Hex(bytes))) => bytes.into_owned(),
                None => l.path_text.into_owned().into_bytes(),
            },
            kind: l.kind.0,
            size: l.size,
            mode: l.mode,
            uid: l.uid,
            gid: l.gid,
            mtime: l.mtime.0,
            offset: l.offset,
            hash: l.hash.map(|h| h.0),
            hash_scheme: l.hash_scheme.map(|s| s.0).unwrap_or_default(),
            link: l.link.map(Cow::into_owned),
            meta_digest: l.meta_digest.0,
            ctime: l.ctime.map(|t| t.0),
            ino: l.ino,
            source_set: l.source_set,
        }
    }
}

impl Serialize for IndexEntry {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Line::from(self).serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for IndexEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Line::deserialize(deserializer).map(IndexEntry::from)
    }
}

/// A value a line holds as a JSON string.
trait TextForm: Sized {
    /// What the string must be, for the message about one that is not.
    const EXPECTED: &'static str;
    fn parse(text: &str) -> Option<Self>;
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;
}

/// A [`TextForm`] value, (de)serialized as its string.
struct Text<T>(T);

impl<T: TextForm> Serialize for Text<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<T: TextForm> fmt::Display for Text<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.write(f)
    }
}

impl<'de, T: TextForm> Deserialize<'de> for Text<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor(PhantomData))
    }
}

struct TextVisitor<T>(PhantomData<T>);

impl<T: TextForm> de::Visitor<'_> for TextVisitor<T> {
    type Value = Text<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTED)
    }

    // The string is parsed where it lies (borrowed from the line, or in the parser's
    // scratch buffer when it has escapes): no copy of it is made.
    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        T::parse(text)
            .map(Text)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
    }
}

impl TextForm for EntryKind {
    const EXPECTED: &'static str = "a member kind (t: one of the letters f h d l p c b s)";

    fn parse(text: &str) -> Option<Self> {
        let mut chars = text.chars();
        match (chars.next(), chars.next()) {
            (Some(code), None) => EntryKind::from_code(code),
            _ => None,
        }
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Write::write_char(f, self.code())
    }
}

impl TextForm for Timestamp {
    const EXPECTED: &'static str = "a time as seconds[.fraction] (mt, ct)";

    fn parse(text: &str) -> Option<Self> {
        Timestamp::parse_decimal(text)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_decimal())
    }
}

impl TextForm for blake3::Hash {
    const EXPECTED: &'static str = "a BLAKE3 content hash of 64 hex digits (h)";

    fn parse(text: &str) -> Option<Self> {
        let mut bytes = [0u8; blake3::OUT_LEN];
        decode_hex(text, &mut bytes).then(|| blake3::Hash::from_bytes(bytes))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl TextForm for HashScheme {
    const EXPECTED: &'static str = "a content hash scheme (hs: sparse-b3-64k)";

    fn parse(text: &str) -> Option<Self> {
        HashScheme::from_name(text)
    }

    // Only schemes with a name are written (plain BLAKE3 leaves `hs` out).
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name().unwrap_or_default())
    }
}

impl TextForm for MetaDigest {
    const EXPECTED: &'static str = "a metadata digest of 32 hex digits (md)";

    fn parse(text: &str) -> Option<Self> {
        MetaDigest::from_hex(text)
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Bytes as hex digits (a name that is not UTF-8).
struct Hex<'a>(Cow<'a, [u8]>);

impl TextForm for Hex<'_> {
    const EXPECTED: &'static str = "a name in hex digits (px)";

    fn parse(text: &str) -> Option<Self> {
        let mut bytes = vec![0u8; text.len() / 2];
        decode_hex(text, &mut bytes).then_some(Hex(Cow::Owned(bytes)))
    }

    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}
