//! Encrypted files and the raw encryption API: reel's counterpart of Windows EFS and of
//! OpenEncryptedFileRaw / ReadEncryptedFileRaw / WriteEncryptedFileRaw / CloseEncryptedFileRaw.
//!
//! This crate is for:
//!
//! - **Encrypted files.** An encrypted file is a regular file whose bytes are an
//!   [age](https://age-encryption.org/v1) v1 file (X25519 recipients, ChaCha20-Poly1305 payload
//!   in 64 KiB chunks), marked by the extended attribute `user.reel.efs` ([`marker`](mod@marker)). Each
//!   recipient stanza of the age header is one key that opens the file: the users it is
//!   shared with and, when policy sets one, the recovery recipient. [`encrypt_file`] and
//!   [`decrypt_file`] convert in place atomically; [`decrypt_to`] reads; [`status`] says who
//!   can open a file; [`add_user`] and [`remove_user`] rewrite only the header; [`mark_file`]
//!   adopts an age file made by another tool; a directory can carry a marker
//!   ([`mark_dir`], [`encrypt_tree`]). Identities are age X25519 keys ([`identity`]), so
//!   `age -d -i IDENTITY` and `rage` open reel's files, and reel opens theirs.
//!   [`EncryptOptions`] holds who a file is encrypted to, with the rules that fill it: the
//!   recovery recipient given, else the policy's ([`EncryptOptions::choose_recovery`]), and
//!   the recipients a marked directory passes on ([`inheriting_dir`]).
//! - **The raw API** ([`raw`]). [`RawExport`] hands out a file's marker and ciphertext in a
//!   small documented container (or the ciphertext alone) without any key and without ever
//!   decrypting; [`RawImport`] recreates the file from it, checking every byte it can check
//!   without a key, never leaving a partial file under the final name, and never replacing an
//!   existing entry unless asked to ([`RawFlags`]).
//!
//! It is not for deciding *what* is encrypted or to whom the recovery key belongs (that is
//! policy, `reel-policy`'s `efs-recovery`), nor for archives: a backup engine calls the raw
//! API and frames the result itself.
//!
//! # Why add-user needs a key
//!
//! An X25519 stanza wraps the 16-byte file key for one recipient. The header ends with an
//! HMAC-SHA256 over all stanzas, keyed by HKDF(file key, "header"). Adding or removing a
//! stanza therefore needs the file key, which only an identity that opens the file can
//! unwrap; with it reel wraps the key for the new recipient, writes the new header with a new
//! MAC, and copies the payload byte for byte (its key is derived from the file key and the
//! payload nonce, which do not change). An operator without a key can back up and restore a
//! file but cannot change who opens it.
//!
//! # Who a stanza is for
//!
//! age keeps recipients private: nothing in an X25519 stanza names its public key. The marker
//! therefore records, for each stanza reel writes, the recipient (`age1…`), a name and a role
//! (user or recovery); [`status`] lists the header's stanzas with these records.
//!
//! # In a backup
//!
//! ```no_run
//! use std::io::Read;
//! use reel_efs::{RawExport, RawFlags, RawImport, Marker};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let path = std::path::Path::new("/home/alice/secret.txt");
//! if let Some(marker) = reel_efs::marker(path)? {
//!     // Capture: the marker as a pax value, the ciphertext as the entry's data.
//!     let export = RawExport::open(path)?;
//!     let pax_value = export.marker().to_pax_value()?;
//!     let size = export.ciphertext_len();
//!     let mut data = export.into_ciphertext_reader();
//!     # let mut sink = Vec::new(); data.read_to_end(&mut sink)?;
//!     # let _ = (marker, pax_value, size);
//! }
//! // Restore: marker back from the pax value, ciphertext from the entry.
//! # let pax_value = String::new(); let entry_data: &[u8] = &[];
//! let marker = Marker::from_pax_value(&pax_value)?;
//! RawImport::create(path, RawFlags::CREATE_FOR_IMPORT)?.import_parts(&marker, entry_data)?;
//! # Ok(()) }
//! ```

pub mod error;
pub mod header;
pub mod identity;
pub mod marker;
pub mod raw;

mod atomic;
mod file;
mod options;

pub use error::{EfsError, Result};
pub use file::{
    Removal, StanzaStatus, Status, TreeEvent, add_user, decrypt_file, decrypt_to, decrypt_tree,
    encrypt_file, encrypt_tree, mark_dir, mark_file, remove_user, status, unmark_dir,
};
pub use identity::{
    IDENTITY_ENV, Identities, RECOVERY_ENV, default_identity_path, generate_identity_file,
    parse_recipient, recipients_from_arg,
};
pub use marker::{Entry, Kind, Marker, Role, XATTR_NAME, marker};
pub use options::{EncryptOptions, Named, PolicyRecovery, inheriting_dir};
pub use raw::{
    ImportSummary, RawExport, RawFlags, RawImport, RawImportWriter, RawReader, encode_raw,
    peek_kind, verify_raw,
};
pub use reel_error_class::ErrorClass;
