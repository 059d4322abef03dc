//! The age v1 header: parse it without a key, rewrite it with one, and the payload's size rules.
//!
//! An age file is `header || nonce(16) || payload`. The header is text:
//!
//! ```text
//! age-encryption.org/v1
//! -> X25519 <ephemeral share, base64>
//! <wrapped file key, base64, lines of 64 columns, the last one shorter (maybe empty)>
//! -> <other stanza types are kept as they are>
//! --- <HMAC-SHA256 over everything up to and including "---", base64>
//! ```
//!
//! Each X25519 stanza wraps the file key for one recipient; nothing in it names the recipient
//! (age keeps recipients private), which is why reel records who a stanza is for in its marker.
//! The MAC key is derived from the file key (HKDF-SHA256, info "header"), so changing the
//! stanza list needs the file key, i.e. an identity that opens the file; the payload key is
//! derived from the file key and the payload nonce, so the payload bytes stay valid when only
//! the header changes.
//!
//! The payload is ChaCha20-Poly1305 STREAM: 64 KiB plaintext chunks, each followed by a 16-byte
//! tag; the last chunk may be short (empty only when the whole plaintext is empty). So the
//! plaintext size follows from the payload length alone, which lets reel check a ciphertext
//! against its marker without any key.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first line of every age v1 file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
/// Longest header reel accepts (a header this long would hold thousands of recipients).
pub const MAX_HEADER_LEN: usize = 1 << 20;
/// Plaintext bytes per payload chunk.
pub const CHUNK_SIZE: u64 = 64 * 1024;
/// Poly1305 tag bytes after each chunk.
pub const TAG_SIZE: u64 = 16;
/// Payload nonce bytes before the first chunk.
pub const NONCE_SIZE: u64 = 16;
/// The stanza tag of X25519 recipients.
pub const X25519_TAG: &str = "X25519";
/// The stanza tag of passphrase (scrypt) files, which admit no other stanza.
pub const SCRYPT_TAG: &str = "scrypt";

const BODY_COLUMNS: usize = 64;
const MAC_B64_LEN: usize = 43;

/// A header problem at a byte offset (from the start of the age file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    pub offset: u64,
    pub what: String,
}

impl HeaderError {
    fn at(offset: usize, what: impl Into<String>) -> HeaderError {
        HeaderError {
            offset: offset as u64,
            what: what.into(),
        }
    }
}

/// One recipient stanza as it appears in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    pub tag: String,
    pub args: Vec<String>,
    pub body: Vec<u8>,
    /// The stanza's bytes as they appear in the header (kept verbatim when rewriting).
    pub encoded: Vec<u8>,
    /// Where the stanza starts in the file.
    pub offset: usize,
}

impl Stanza {
    /// A stanza from its parts, encoded canonically.
    pub fn new(tag: String, args: Vec<String>, body: Vec<u8>) -> Stanza {
        let mut encoded = Vec::with_capacity(16 + body.len() * 4 / 3);
        encoded.extend_from_slice(b"-> ");
        encoded.extend_from_slice(tag.as_bytes());
        for a in &args {
            encoded.push(b' ');
            encoded.extend_from_slice(a.as_bytes());
        }
        encoded.push(b'\n');
        let b64 = STANDARD_NO_PAD.encode(&body);
        let mut rest = b64.as_bytes();
        loop {
            let n = rest.len().min(BODY_COLUMNS);
            encoded.extend_from_slice(&rest[..n]);
            encoded.push(b'\n');
            rest = &rest[n..];
            // A full line must be followed by another (possibly empty) one.
            if n < BODY_COLUMNS {
                break;
            }
        }
        Stanza {
            tag,
            args,
            body,
            encoded,
            offset: 0,
        }
    }

    /// The same stanza in the form the `age` crate's identities unwrap.
    pub fn to_age(&self) -> age_core::format::Stanza {
        age_core::format::Stanza {
            tag: self.tag.clone(),
            args: self.args.clone(),
            body: self.body.clone(),
        }
    }

    /// A stanza from the `age` crate's form.
    pub fn from_age(s: &age_core::format::Stanza) -> Stanza {
        Stanza::new(s.tag.clone(), s.args.clone(), s.body.clone())
    }
}

/// A parsed age v1 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub stanzas: Vec<Stanza>,
    pub mac: [u8; 32],
    /// Header length in bytes, up to and including the MAC line's newline.
    pub len: usize,
}

impl Header {
    /// Indices of the X25519 stanzas.
    pub fn x25519_indices(&self) -> Vec<usize> {
        self.stanzas
            .iter()
            .enumerate()
            .filter(|(_, s)| s.tag == X25519_TAG)
            .map(|(i, _)| i)
            .collect()
    }

    /// True when this is a passphrase file (one scrypt stanza).
    pub fn is_scrypt(&self) -> bool {
        self.stanzas.iter().any(|s| s.tag == SCRYPT_TAG)
    }
}

/// Parses the header at the start of `buf`. `Ok(None)` means `buf` is a valid beginning but
/// ends before the header does (read more and call again).
pub fn parse(buf: &[u8]) -> Result<Option<Header>, HeaderError> {
    let magic_len = AGE_MAGIC.len().min(buf.len());
    if let Some(i) = (0..magic_len).find(|&i| buf[i] != AGE_MAGIC[i]) {
        return Err(HeaderError::at(
            i,
            "not an age v1 file (it must start with \"age-encryption.org/v1\")",
        ));
    }
    if buf.len() < AGE_MAGIC.len() {
        return Ok(None);
    }
    let mut pos = AGE_MAGIC.len();
    let mut stanzas = Vec::new();
    loop {
        let Some(line) = line_at(buf, pos)? else {
            return Ok(None);
        };
        if let Some(rest) = line.strip_prefix(b"-> ") {
            let start = pos;
            let mut words = Vec::new();
            let mut word_at = pos + 3;
            for w in rest.split(|&b| b == b' ') {
                if w.is_empty() {
                    return Err(HeaderError::at(
                        word_at,
                        "empty stanza argument (stray or double space)",
                    ));
                }
                if let Some(j) = w.iter().position(|b| !(0x21..=0x7e).contains(b)) {
                    return Err(HeaderError::at(
                        word_at + j,
                        "stanza arguments must be printable ASCII",
                    ));
                }
                // Checked printable ASCII above, so this is valid UTF-8.
                words.push(String::from_utf8_lossy(w).into_owned());
                word_at += w.len() + 1;
            }
            pos += line.len() + 1;
            // The body: full 64-column lines, then one shorter line.
            let body_start = pos;
            let mut b64 = Vec::new();
            loop {
                let Some(bl) = line_at(buf, pos)? else {
                    return Ok(None);
                };
                if bl.len() > BODY_COLUMNS {
                    return Err(HeaderError::at(
                        pos + BODY_COLUMNS,
                        "stanza body line longer than 64 columns",
                    ));
                }
                if let Some(j) = bl.iter().position(|b| !is_b64(*b)) {
                    return Err(HeaderError::at(
                        pos + j,
                        "stanza body is not unpadded base64",
                    ));
                }
                b64.extend_from_slice(bl);
                pos += bl.len() + 1;
                if bl.len() < BODY_COLUMNS {
                    break;
                }
            }
            let body = STANDARD_NO_PAD
                .decode(&b64)
                .map_err(|e| HeaderError::at(body_start, format!("stanza body: {e}")))?;
            let mut it = words.into_iter();
            let tag = it.next().unwrap_or_default();
            stanzas.push(Stanza {
                tag,
                args: it.collect(),
                body,
                encoded: buf[start..pos].to_vec(),
                offset: start,
            });
        } else if line.starts_with(b"---") {
            let Some(b64) = line.strip_prefix(b"--- ") else {
                return Err(HeaderError::at(
                    pos + 3,
                    "the MAC line must be \"--- \" and the MAC",
                ));
            };
            if b64.len() != MAC_B64_LEN {
                return Err(HeaderError::at(
                    pos + 4,
                    format!(
                        "the header MAC must be 43 base64 characters, found {}",
                        b64.len()
                    ),
                ));
            }
            let mut mac = [0u8; 32];
            let decoded = STANDARD_NO_PAD
                .decode(b64)
                .map_err(|e| HeaderError::at(pos + 4, format!("header MAC: {e}")))?;
            if decoded.len() != 32 {
                return Err(HeaderError::at(pos + 4, "header MAC is not 32 bytes"));
            }
            mac.copy_from_slice(&decoded);
            if stanzas.is_empty() {
                return Err(HeaderError::at(pos, "the header has no recipient stanza"));
            }
            return Ok(Some(Header {
                stanzas,
                mac,
                len: pos + line.len() + 1,
            }));
        } else {
            return Err(HeaderError::at(
                pos,
                "expected a recipient stanza (\"-> \") or the MAC line (\"--- \")",
            ));
        }
    }
}

/// The line starting at `pos`, without its newline; `None` when no newline follows yet.
fn line_at(buf: &[u8], pos: usize) -> Result<Option<&[u8]>, HeaderError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\n') {
        Some(n) => Ok(Some(&rest[..n])),
        None if pos + rest.len() >= MAX_HEADER_LEN => Err(HeaderError::at(
            pos,
            "no end of the age header within 1 MiB",
        )),
        None => Ok(None),
    }
}

fn is_b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// The header bytes for `stanzas` with a MAC made from `file_key`.
pub fn encode(stanzas: &[Stanza], file_key: &[u8; 16]) -> Vec<u8> {
    let mut out = AGE_MAGIC.to_vec();
    for s in stanzas {
        out.extend_from_slice(&s.encoded);
    }
    out.extend_from_slice(b"---");
    let mac = compute_mac(file_key, &out);
    out.push(b' ');
    out.extend_from_slice(STANDARD_NO_PAD.encode(mac).as_bytes());
    out.push(b'\n');
    out
}

/// The header MAC over `covered` (the header up to and including "---").
pub fn compute_mac(file_key: &[u8; 16], covered: &[u8]) -> [u8; 32] {
    let mac_key = age_core::primitives::hkdf(&[], b"header", file_key);
    // An HMAC accepts keys of any length; 32 bytes is never refused.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key).expect("HMAC takes any key");
    mac.update(covered);
    mac.finalize().into_bytes().into()
}

/// True when `header`'s MAC (over the first bytes of `file`) verifies with `file_key`.
pub fn verify_mac(header: &Header, header_bytes: &[u8], file_key: &[u8; 16]) -> bool {
    let covered_len = header.len.saturating_sub(MAC_B64_LEN + 2);
    let Some(covered) = header_bytes.get(..covered_len) else {
        return false;
    };
    let mac_key = age_core::primitives::hkdf(&[], b"header", file_key);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&mac_key).expect("HMAC takes any key");
    mac.update(covered);
    mac.verify_slice(&header.mac).is_ok()
}

/// Payload bytes (nonce, chunks and tags) of a plaintext of `plaintext` bytes.
pub fn payload_len(plaintext: u64) -> u64 {
    let chunks = plaintext.div_ceil(CHUNK_SIZE).max(1);
    NONCE_SIZE + plaintext + chunks * TAG_SIZE
}

/// The plaintext size a payload of `payload` bytes holds, or why no valid payload has that length.
pub fn plaintext_len(payload: u64) -> Result<u64, String> {
    let full = CHUNK_SIZE + TAG_SIZE;
    if payload < NONCE_SIZE + TAG_SIZE {
        return Err(format!(
            "a payload of {payload} bytes is shorter than the nonce and one tag (32 bytes)"
        ));
    }
    let q = payload - NONCE_SIZE;
    let chunks = q.div_ceil(full);
    let last = q - (chunks - 1) * full;
    if last < TAG_SIZE || (last == TAG_SIZE && chunks > 1) {
        return Err(format!(
            "a payload of {payload} bytes ends inside a chunk tag: the ciphertext is truncated or extended"
        ));
    }
    Ok(q - chunks * TAG_SIZE)
}

/// Where the payload chunk holding plaintext byte `plaintext_offset` starts in the file.
pub fn chunk_offset(header_len: usize, plaintext_offset: u64) -> u64 {
    header_len as u64 + NONCE_SIZE + (plaintext_offset / CHUNK_SIZE) * (CHUNK_SIZE + TAG_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample(stanzas: usize) -> (Vec<u8>, [u8; 16]) {
        let key = [7u8; 16];
        let list: Vec<Stanza> = (0..stanzas)
            .map(|i| {
                Stanza::new(
                    X25519_TAG.into(),
                    vec![format!("arg{i}")],
                    vec![i as u8; 32 + i],
                )
            })
            .collect();
        (encode(&list, &key), key)
    }

    #[test]
    fn round_trip_and_mac() {
        let (bytes, key) = sample(3);
        let h = parse(&bytes).unwrap().unwrap();
        assert_eq!(h.len, bytes.len());
        assert_eq!(h.stanzas.len(), 3);
        assert!(verify_mac(&h, &bytes, &key));
        assert!(!verify_mac(&h, &bytes, &[8u8; 16]));
        let again = encode(&h.stanzas, &key);
        assert_eq!(again, bytes);
    }

    #[test]
    fn body_of_exactly_64_columns_has_an_empty_last_line() {
        // 48 bytes encode to exactly 64 base64 characters.
        let s = Stanza::new("t".into(), vec![], vec![1; 48]);
        assert!(s.encoded.ends_with(b"\n\n"));
        let bytes = encode(&[s], &[0; 16]);
        let h = parse(&bytes).unwrap().unwrap();
        assert_eq!(h.stanzas[0].body, vec![1; 48]);
    }

    #[test]
    fn errors_name_offsets() {
        let e = parse(b"age-encryption.org/v2\n").unwrap_err();
        assert_eq!(e.offset, 20);
        let e = parse(b"age-encryption.org/v1\n-> X25519  x\nAAAA\n--- x\n").unwrap_err();
        assert_eq!(e.offset, 32);
        let e = parse(b"age-encryption.org/v1\nhello\n").unwrap_err();
        assert_eq!(e.offset, 22);
        assert_eq!(
            parse(b"age-encryption.org/v1\n-> X25519 a\nAAAA").unwrap(),
            None
        );
    }

    #[test]
    fn payload_sizes() {
        assert_eq!(payload_len(0), 32);
        assert_eq!(plaintext_len(32), Ok(0));
        assert_eq!(payload_len(65536), 16 + 65536 + 16);
        assert_eq!(payload_len(65537), 16 + 65537 + 32);
        assert!(plaintext_len(16 + 65552 + 16).is_err());
        assert!(plaintext_len(31).is_err());
    }

    proptest! {
        #[test]
        fn payload_len_inverts(pt in 0u64..(1 << 40)) {
            prop_assert_eq!(plaintext_len(payload_len(pt)), Ok(pt));
        }

        #[test]
        fn any_payload_length_is_consistent(p in 0u64..(1 << 30)) {
            if let Ok(pt) = plaintext_len(p) {
                prop_assert_eq!(payload_len(pt), p);
            }
        }

        #[test]
        fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
            let mut buf = AGE_MAGIC.to_vec();
            buf.extend_from_slice(&data);
            let _ = parse(&buf);
            let _ = parse(&data);
        }

        #[test]
        fn truncations_are_incomplete_and_flips_never_panic(n in 1usize..5, cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (bytes, key) = sample(n);
            let at = cut.index(bytes.len());
            prop_assert_eq!(parse(&bytes[..at]), Ok(None));
            let mut bad = bytes.clone();
            let i = flip.index(bad.len());
            bad[i] ^= 1 << bit;
            if let Ok(Some(h)) = parse(&bad) {
                // A flip that still parses must break the MAC.
                prop_assert!(!verify_mac(&h, &bad, &key));
            }
        }
    }
}
