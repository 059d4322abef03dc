//! Encrypted files on a real file system: in-place conversion, sharing, tampering, the raw API.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use reel_efs::{
    EfsError, EncryptOptions, Identities, Kind, Marker, Named, RawExport, RawFlags, RawImport,
    Removal, Role, TreeEvent,
};
use reel_testkit::{pseudo_random, write_file};

/// A plaintext that must never show up in any ciphertext, raw form or export buffer.
const KNOWN: &[u8] = b"KNOWN-PLAINTEXT-7f3a9c-reel-efs";

struct Keys {
    _dir: tempfile::TempDir,
    alice_path: PathBuf,
    bob_path: PathBuf,
    recovery_path: PathBuf,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().unwrap();
        let alice_path = dir.path().join("alice/identity.txt");
        let bob_path = dir.path().join("bob.txt");
        let recovery_path = dir.path().join("recovery.txt");
        for p in [&alice_path, &bob_path, &recovery_path] {
            reel_efs::generate_identity_file(p).unwrap();
        }
        Keys {
            _dir: dir,
            alice_path,
            bob_path,
            recovery_path,
        }
    }
    fn alice(&self) -> Identities {
        Identities::load(&self.alice_path).unwrap()
    }
    fn bob(&self) -> Identities {
        Identities::load(&self.bob_path).unwrap()
    }
    fn recovery(&self) -> Identities {
        Identities::load(&self.recovery_path).unwrap()
    }
    fn named(ids: &Identities, name: &str) -> Named {
        Named::new(ids.recipients().remove(0), name)
    }
    fn options(&self) -> EncryptOptions {
        EncryptOptions {
            users: vec![Keys::named(&self.alice(), "alice")],
            recovery: Some(Keys::named(&self.recovery(), "recovery")),
        }
    }
}

fn plaintext(len: usize, seed: u64) -> Vec<u8> {
    let mut data = pseudo_random(seed, len);
    // Sprinkle the known plaintext through the file, including across chunk boundaries.
    let mut at = 0;
    while at + KNOWN.len() <= data.len() {
        data[at..at + KNOWN.len()].copy_from_slice(KNOWN);
        at += 65536 - 7;
    }
    data
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn decrypt(path: &Path, ids: &Identities) -> Vec<u8> {
    let mut out = Vec::new();
    reel_efs::decrypt_to(path, ids, &mut out).unwrap();
    out
}

/// Names in `dir` other than `keep`: catches temp files left behind.
fn strays(dir: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

fn set_times(path: &Path, atime: i64, mtime: i64) {
    use rustix::fs::{Timespec, Timestamps};
    let f = fs::File::open(path).unwrap();
    rustix::fs::futimens(
        &f,
        &Timestamps {
            last_access: Timespec {
                tv_sec: atime,
                tv_nsec: 5,
            },
            last_modification: Timespec {
                tv_sec: mtime,
                tv_nsec: 123_456_789,
            },
        },
    )
    .unwrap();
}

fn payload(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let h = reel_efs::header::parse(&bytes).unwrap().unwrap();
    bytes[h.len..].to_vec()
}

#[test]
fn encrypt_in_place_keeps_metadata_and_both_owner_and_recovery_open_it() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.txt");
    let data = plaintext(200_000, 1);
    write_file(&path, &data);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    xattr::set(&path, "user.note", b"kept").unwrap();
    if reel_testkit::require_root("chowns the file to another owner to check the owner is kept") {
        rustix::fs::chown(
            &path,
            Some(rustix::fs::Uid::from_raw(1234)),
            Some(rustix::fs::Gid::from_raw(5678)),
        )
        .unwrap();
    }
    set_times(&path, 1_600_000_000, 1_500_000_000);
    let before = fs::metadata(&path).unwrap();

    let marker = reel_efs::encrypt_file(&path, &keys.options()).unwrap();
    assert_eq!(marker.kind, Kind::File);
    assert_eq!(marker.plaintext_size, data.len() as u64);
    assert_eq!(marker.entries.len(), 2);
    assert_eq!(marker.entries[1].role, Role::Recovery);
    assert_eq!(reel_efs::marker(&path).unwrap(), Some(marker));

    // Metadata first: reading the file moves its access time.
    let after = fs::metadata(&path).unwrap();
    let bytes = fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(
        !contains(&bytes, KNOWN),
        "plaintext visible in the ciphertext"
    );
    assert_eq!(after.mode(), before.mode());
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(
        (after.mtime(), after.mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );
    assert_eq!(after.atime(), 1_600_000_000);
    assert_eq!(
        xattr::get(&path, "user.note").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_ne!(
        after.ino(),
        before.ino(),
        "replaced by rename, not rewritten in place"
    );

    assert_eq!(decrypt(&path, &keys.alice()), data);
    assert_eq!(decrypt(&path, &keys.recovery()), data);
    let err = reel_efs::decrypt_to(&path, &keys.bob(), &mut Vec::new()).unwrap_err();
    assert!(matches!(err, EfsError::NoMatchingIdentity { .. }), "{err}");
    assert!(err.to_string().contains("alice"), "{err}");

    // Encrypting twice is refused; decrypting brings back the bytes and metadata, no marker.
    let err = reel_efs::encrypt_file(&path, &keys.options()).unwrap_err();
    assert!(matches!(err, EfsError::AlreadyEncrypted { .. }));
    set_times(&path, 1_600_000_000, 1_500_000_000);
    assert_eq!(
        reel_efs::decrypt_file(&path, &keys.alice()).unwrap(),
        data.len() as u64
    );
    let back = fs::metadata(&path).unwrap();
    assert_eq!(back.atime(), 1_600_000_000);
    assert_eq!(fs::read(&path).unwrap(), data);
    assert_eq!(reel_efs::marker(&path).unwrap(), None);
    assert_eq!(back.mode(), before.mode());
    assert_eq!((back.uid(), back.gid()), (before.uid(), before.gid()));
    assert_eq!(
        (back.mtime(), back.mtime_nsec()),
        (1_500_000_000, 123_456_789)
    );
    assert_eq!(
        xattr::get(&path, "user.note").unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert!(strays(dir.path(), &["report.txt"]).is_empty());
}

#[test]
fn sizes_at_chunk_edges_round_trip() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    for len in [0usize, 1, 65535, 65536, 65537, 131072] {
        let path = dir.path().join(format!("f{len}"));
        let data = pseudo_random(len as u64, len);
        write_file(&path, &data);
        let m = reel_efs::encrypt_file(&path, &keys.options()).unwrap();
        assert_eq!(m.plaintext_size, len as u64);
        assert_eq!(decrypt(&path, &keys.recovery()), data, "len {len}");
    }
}

#[test]
fn hard_links_symlinks_and_age_files_are_refused() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    write_file(&a, b"secret");
    fs::hard_link(&a, dir.path().join("b")).unwrap();
    let err = reel_efs::encrypt_file(&a, &keys.options()).unwrap_err();
    assert!(
        matches!(err, EfsError::HardLinked { links: 2, .. }),
        "{err}"
    );
    assert_eq!(fs::read(&a).unwrap(), b"secret");

    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&a, &link).unwrap();
    let err = reel_efs::encrypt_file(&link, &keys.options()).unwrap_err();
    assert!(matches!(err, EfsError::NotRegular { .. }), "{err}");

    let c = dir.path().join("c");
    write_file(&c, b"age-encryption.org/v1\n-> X25519 abc\n");
    let err = reel_efs::encrypt_file(&c, &keys.options()).unwrap_err();
    assert!(matches!(err, EfsError::AlreadyAgeFile { .. }), "{err}");
}

#[test]
fn add_user_rewrites_only_the_header() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    let data = plaintext(150_000, 2);
    write_file(&path, &data);
    reel_efs::encrypt_file(&path, &keys.options()).unwrap();
    let payload_before = payload(&path);
    let err = reel_efs::decrypt_to(&path, &keys.bob(), &mut Vec::new()).unwrap_err();
    assert!(matches!(err, EfsError::NoMatchingIdentity { .. }));

    // Bob's identity cannot add anyone: it does not open the file.
    let carol = age::x25519::Identity::generate().to_public();
    let err = reel_efs::add_user(&path, &keys.bob(), &Named::new(carol, "carol"), Role::User)
        .unwrap_err();
    assert!(matches!(err, EfsError::NoMatchingIdentity { .. }), "{err}");

    let bob = Keys::named(&keys.bob(), "bob");
    let marker = reel_efs::add_user(&path, &keys.alice(), &bob, Role::User).unwrap();
    assert_eq!(payload(&path), payload_before, "payload bytes changed");
    assert_eq!(decrypt(&path, &keys.bob()), data);
    assert_eq!(decrypt(&path, &keys.alice()), data);
    assert_eq!(decrypt(&path, &keys.recovery()), data);
    let st = reel_efs::status(&path, Some(&keys.bob())).unwrap();
    assert_eq!(st.keys, 3);
    let bob_stanza = marker
        .entries
        .iter()
        .find(|e| e.name == "bob")
        .unwrap()
        .stanza
        .unwrap();
    assert_eq!(st.opened_by_identity, Some(usize::from(bob_stanza)));
    assert_eq!(
        st.stanzas[usize::from(bob_stanza)]
            .entry
            .as_ref()
            .map(|e| e.name.as_str()),
        Some("bob")
    );

    // Adding the same recipient again is refused.
    let err = reel_efs::add_user(&path, &keys.alice(), &bob, Role::User).unwrap_err();
    assert!(matches!(err, EfsError::Refused { .. }));

    // Remove bob: he can no longer open it; the payload is still untouched.
    let bob_recipient = bob.recipient.to_string();
    reel_efs::remove_user(
        &path,
        &keys.alice(),
        &Removal::Recipient(bob_recipient),
        false,
    )
    .unwrap();
    assert_eq!(payload(&path), payload_before);
    assert!(reel_efs::decrypt_to(&path, &keys.bob(), &mut Vec::new()).is_err());
    assert_eq!(decrypt(&path, &keys.alice()), data);

    // The recovery recipient needs force; the last recipient cannot go.
    let rec = keys.recovery().recipients()[0].to_string();
    let err = reel_efs::remove_user(
        &path,
        &keys.alice(),
        &Removal::Recipient(rec.clone()),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("recovery"), "{err}");
    reel_efs::remove_user(&path, &keys.alice(), &Removal::Recipient(rec), true).unwrap();
    assert!(reel_efs::decrypt_to(&path, &keys.recovery(), &mut Vec::new()).is_err());
    let alice = keys.alice().recipients()[0].to_string();
    let err =
        reel_efs::remove_user(&path, &keys.alice(), &Removal::Recipient(alice), true).unwrap_err();
    assert!(err.to_string().contains("only recipient"), "{err}");
    assert_eq!(decrypt(&path, &keys.alice()), data);
    assert_eq!(payload(&path), payload_before);
}

#[test]
fn damaged_ciphertexts_are_rejected_with_offsets_and_leave_the_file_alone() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = plaintext(200_000, 3);
    write_file(&path, &data);
    reel_efs::encrypt_file(&path, &keys.options()).unwrap();
    let good = fs::read(&path).unwrap();
    let h = reel_efs::header::parse(&good).unwrap().unwrap();

    // A flipped byte in payload chunk 2: the error names the chunk's offset.
    let chunk2 = h.len as u64 + 16 + 2 * (65536 + 16);
    let mut bad = good.clone();
    bad[chunk2 as usize + 100] ^= 0x40;
    fs::write(&path, &bad).unwrap();
    let mut partial = Vec::new();
    let err = reel_efs::decrypt_to(&path, &keys.alice(), &mut partial).unwrap_err();
    match &err {
        EfsError::Tampered { offset, .. } => assert_eq!(*offset, chunk2),
        other => panic!("{other}"),
    }
    assert_eq!(
        partial.len(),
        2 * 65536,
        "only authenticated chunks are released"
    );
    assert_eq!(err.class(), reel_efs::ErrorClass::Integrity);
    let err = reel_efs::decrypt_file(&path, &keys.alice()).unwrap_err();
    assert!(matches!(err, EfsError::Tampered { .. }));
    assert_eq!(
        fs::read(&path).unwrap(),
        bad,
        "decrypt must not touch a damaged file"
    );
    assert!(strays(dir.path(), &["f"]).is_empty());

    // A flipped byte in a stanza: the MAC (or the stanza) fails.
    let mut bad = good.clone();
    bad[40] ^= 0x01;
    fs::write(&path, &bad).unwrap();
    let err = reel_efs::decrypt_to(&path, &keys.alice(), &mut Vec::new()).unwrap_err();
    assert_eq!(err.class(), reel_efs::ErrorClass::Integrity, "{err}");
    // A flip in the recovery stanza's body leaves alice's stanza intact, but the MAC fails.
    let mut bad = good.clone();
    let recovery_stanza = &h.stanzas[1];
    let body_at = recovery_stanza.offset
        + recovery_stanza
            .encoded
            .iter()
            .position(|&b| b == b'\n')
            .unwrap()
        + 3;
    bad[body_at] = if bad[body_at] == b'A' { b'B' } else { b'A' };
    fs::write(&path, &bad).unwrap();
    let err = reel_efs::decrypt_to(&path, &keys.alice(), &mut Vec::new()).unwrap_err();
    match &err {
        EfsError::Tampered { what, .. } => assert!(what.contains("MAC"), "{what}"),
        other => panic!("{other}"),
    }

    // Truncated: caught from the length alone, before any key is used.
    fs::write(&path, &good[..good.len() - 1000]).unwrap();
    let err = reel_efs::decrypt_to(&path, &keys.alice(), &mut Vec::new()).unwrap_err();
    match &err {
        EfsError::SizeMismatch { what, .. } => {
            assert!(
                what.contains(&format!("truncated at byte {}", good.len() - 1000)),
                "{what}"
            )
        }
        other => panic!("{other}"),
    }
    assert!(
        reel_efs::RawExport::open(&path).is_err(),
        "export refuses a truncated file"
    );
}

fn export_to_vec(path: &Path) -> Vec<u8> {
    let mut raw = Vec::new();
    let n = RawExport::open(path)
        .unwrap()
        .export(|chunk| {
            assert!(!contains(chunk, KNOWN), "plaintext in an export buffer");
            raw.extend_from_slice(chunk);
            Ok(())
        })
        .unwrap();
    assert_eq!(n, raw.len() as u64);
    raw
}

#[test]
fn raw_export_and_import_need_no_key() {
    let keys = Keys::new();
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = [0usize, 10, 70_000, 300_000]
        .iter()
        .map(|&n| (format!("file{n}"), plaintext(n, n as u64)))
        .collect();
    for (name, data) in &files {
        let p = src.path().join(name);
        write_file(&p, data);
        reel_efs::encrypt_file(&p, &keys.options()).unwrap();
    }
    // From here on, no identity is used until the restored files are opened.
    for (i, (name, data)) in files.iter().enumerate() {
        let p = src.path().join(name);
        let export = RawExport::open(&p).unwrap();
        let m = export.marker().encode().unwrap().len();
        assert_eq!(export.raw_len(), export.ciphertext_len() + 64 + m as u64);
        let raw = export_to_vec(&p);
        assert_eq!(raw.len() as u64, export.raw_len());
        assert!(!contains(&raw, KNOWN), "plaintext in the raw form");
        let ct = fs::read(&p).unwrap();
        assert_eq!(
            &raw[24 + m..24 + m + ct.len()],
            &ct[..],
            "ciphertext exactly as on disk"
        );
        let target = dst.path().join(name);
        let import = RawImport::create(&target, RawFlags::CREATE_FOR_IMPORT).unwrap();
        // Three ways in: the callback, the writer, a reader.
        let summary = match i % 3 {
            0 => {
                let mut rest = &raw[..];
                import
                    .import(|buf| {
                        let n = buf.len().min(rest.len()).min(1000);
                        buf[..n].copy_from_slice(&rest[..n]);
                        rest = &rest[n..];
                        Ok(n)
                    })
                    .unwrap()
            }
            1 => {
                let mut w = import.writer();
                for piece in raw.chunks(777) {
                    w.write_all(piece).unwrap();
                }
                w.finish().unwrap()
            }
            _ => import.import_from(&raw[..]).unwrap(),
        };
        assert_eq!(summary.plaintext_size, data.len() as u64);
        assert_eq!(summary.raw_len, raw.len() as u64);
        assert_eq!(
            fs::read(&target).unwrap(),
            fs::read(&p).unwrap(),
            "ciphertext as on disk"
        );
        assert_eq!(
            reel_efs::marker(&target).unwrap(),
            reel_efs::marker(&p).unwrap()
        );
        assert_eq!(decrypt(&target, &keys.alice()), *data);
        assert_eq!(decrypt(&target, &keys.recovery()), *data);
    }
}

#[test]
fn import_never_replaces_without_the_flag() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src, b"payload");
    reel_efs::encrypt_file(&src, &keys.options()).unwrap();
    let raw = export_to_vec(&src);

    for name in ["existing", ".hidden"] {
        let target = dir.path().join(name);
        write_file(&target, b"old contents");
        let err = RawImport::create(&target, RawFlags::CREATE_FOR_IMPORT).unwrap_err();
        assert!(matches!(err, EfsError::Exists { .. }), "{err}");
        assert_eq!(fs::read(&target).unwrap(), b"old contents");
    }
    // A hidden name needs OVERWRITE_HIDDEN; OVERWRITE alone is not enough.
    let hidden = dir.path().join(".hidden");
    let err =
        RawImport::create(&hidden, RawFlags::CREATE_FOR_IMPORT | RawFlags::OVERWRITE).unwrap_err();
    assert!(err.to_string().contains("OVERWRITE_HIDDEN"), "{err}");
    RawImport::create(
        &hidden,
        RawFlags::CREATE_FOR_IMPORT | RawFlags::OVERWRITE_HIDDEN,
    )
    .unwrap()
    .import_from(&raw[..])
    .unwrap();
    assert_eq!(decrypt(&hidden, &keys.alice()), b"payload");

    let existing = dir.path().join("existing");
    let s = RawImport::create(&existing, RawFlags::CREATE_FOR_IMPORT | RawFlags::OVERWRITE)
        .unwrap()
        .import_from(&raw[..])
        .unwrap();
    assert!(s.replaced);
    assert_eq!(decrypt(&existing, &keys.alice()), b"payload");

    // Something appearing under the name during a no-overwrite import is not replaced.
    let racing = dir.path().join("racing");
    let import = RawImport::create(&racing, RawFlags::CREATE_FOR_IMPORT).unwrap();
    write_file(&racing, b"won the race");
    let err = import.import_from(&raw[..]).unwrap_err();
    assert!(matches!(err, EfsError::Exists { .. }), "{err}");
    assert_eq!(fs::read(&racing).unwrap(), b"won the race");

    let err = RawImport::create(&dir.path().join("x"), RawFlags::EXPORT).unwrap_err();
    assert!(matches!(err, EfsError::InvalidFlags(_)));
    assert!(RawFlags::from_bits(0x8000).is_err());
    assert!(strays(dir.path(), &["src", "existing", ".hidden", "racing"]).is_empty());
}

#[test]
fn damaged_raw_forms_leave_nothing_under_the_name() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src, &plaintext(100_000, 9));
    reel_efs::encrypt_file(&src, &keys.options()).unwrap();
    let raw = export_to_vec(&src);
    let target = dir.path().join("restored");
    let (m, c) = reel_efs::verify_raw(&raw[..], Path::new("src.raw")).unwrap();
    assert_eq!(Some(m), reel_efs::marker(&src).unwrap());
    assert_eq!(c, fs::metadata(&src).unwrap().len());

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for cut in [
        0,
        5,
        16,
        30,
        200,
        raw.len() / 2,
        raw.len() - 40,
        raw.len() - 1,
    ] {
        cases.push((format!("truncated at {cut}"), raw[..cut].to_vec()));
    }
    for at in [
        3,
        9,
        10,
        20,
        150,
        400,
        raw.len() / 2,
        raw.len() - 50,
        raw.len() - 10,
    ] {
        let mut bad = raw.clone();
        bad[at] ^= 0x10;
        cases.push((format!("flipped at {at}"), bad));
    }
    let mut longer = raw.clone();
    longer.push(0);
    cases.push(("one extra byte".into(), longer));

    for (what, bytes) in cases {
        assert!(
            reel_efs::verify_raw(&bytes[..], Path::new("x")).is_err(),
            "{what}"
        );
        let err = RawImport::create(&target, RawFlags::CREATE_FOR_IMPORT)
            .unwrap()
            .import_from(&bytes[..])
            .unwrap_err();
        assert_eq!(
            err.class(),
            reel_efs::ErrorClass::Integrity,
            "{what}: {err}"
        );
        let text = err.to_string();
        assert!(text.contains("byte"), "{what}: no offset in {text}");
        assert!(!target.exists(), "{what}: left a file under the final name");
        assert!(
            strays(dir.path(), &["src"]).is_empty(),
            "{what}: temp files left"
        );
    }

    // Dropping an import half-way (CloseEncryptedFileRaw without success) leaves nothing.
    let import = RawImport::create(&target, RawFlags::CREATE_FOR_IMPORT).unwrap();
    let mut w = import.writer();
    w.write_all(&raw[..raw.len() / 2]).unwrap();
    drop(w);
    assert!(!target.exists());
    assert!(strays(dir.path(), &["src"]).is_empty());

    // A failing import callback aborts cleanly too.
    let err = RawImport::create(&target, RawFlags::CREATE_FOR_IMPORT)
        .unwrap()
        .import(|_| Err(std::io::Error::other("tape read error")))
        .unwrap_err();
    assert!(matches!(err, EfsError::Callback(_)));
    assert!(!target.exists());
    assert!(strays(dir.path(), &["src"]).is_empty());
}

#[test]
fn export_callback_errors_abort() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    write_file(&src, &plaintext(600_000, 4));
    reel_efs::encrypt_file(&src, &keys.options()).unwrap();
    let mut calls = 0;
    let err = RawExport::open(&src)
        .unwrap()
        .export(|_| {
            calls += 1;
            if calls == 2 {
                Err(std::io::Error::other("tape full"))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
    assert!(matches!(err, EfsError::Callback(_)));
    assert_eq!(calls, 2);
    // Unmarked files are not exported raw.
    let plain = dir.path().join("plain");
    write_file(&plain, b"x");
    assert!(matches!(
        RawExport::open(&plain),
        Err(EfsError::NotEncrypted { .. })
    ));
}

#[test]
fn directories_carry_markers_and_have_a_raw_form() {
    let keys = Keys::new();
    let root = tempfile::tempdir().unwrap();
    let tree = root.path().join("tree");
    write_file(&tree.join("a.txt"), &plaintext(5000, 1));
    write_file(&tree.join("sub/b.txt"), &plaintext(70_000, 2));
    write_file(&tree.join("sub/deeper/c.txt"), b"");
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();
    let mut done = Vec::new();
    let mut dirs = Vec::new();
    let mut skipped = Vec::new();
    reel_efs::encrypt_tree(&tree, &keys.options(), |ev| match ev {
        TreeEvent::Done(p) => done.push(p),
        TreeEvent::Directory(p) => dirs.push(p),
        TreeEvent::Skipped(p, _) => skipped.push(p),
        TreeEvent::Failed(p, e) => panic!("{}: {e}", p.display()),
    });
    assert_eq!(done.len(), 3);
    assert_eq!(dirs.len(), 3);
    assert_eq!(skipped, vec![tree.join("link")]);
    let dm = reel_efs::marker(&tree.join("sub")).unwrap().unwrap();
    assert_eq!(dm.kind, Kind::Directory);
    assert_eq!(dm.entries.len(), 2);
    assert!(dm.has_recovery());
    for f in ["a.txt", "sub/b.txt", "sub/deeper/c.txt"] {
        assert!(!contains(&fs::read(tree.join(f)).unwrap(), KNOWN));
    }
    // Running again skips what is already encrypted.
    let mut again = 0;
    reel_efs::encrypt_tree(&tree, &keys.options(), |ev| {
        if let TreeEvent::Skipped(_, why) = ev {
            again += usize::from(why == "already encrypted");
        }
    });
    assert_eq!(again, 3);

    // Directory raw form: needs CREATE_FOR_DIR.
    let raw = export_to_vec(&tree.join("sub"));
    assert_eq!(reel_efs::peek_kind(&raw), Some(Kind::Directory));
    let out = root.path().join("restored-sub");
    let err = RawImport::create(&out, RawFlags::CREATE_FOR_IMPORT)
        .unwrap()
        .import_from(&raw[..])
        .unwrap_err();
    assert!(err.to_string().contains("CREATE_FOR_DIR"), "{err}");
    assert!(!out.exists());
    RawImport::create(&out, RawFlags::CREATE_FOR_IMPORT | RawFlags::CREATE_FOR_DIR)
        .unwrap()
        .import_from(&raw[..])
        .unwrap();
    assert!(out.is_dir());
    assert_eq!(reel_efs::marker(&out).unwrap(), Some(dm.clone()));
    // Over an existing directory: only with OVERWRITE; it then just gets the marker.
    let existing = root.path().join("existing-dir");
    fs::create_dir(&existing).unwrap();
    assert!(
        RawImport::create(
            &existing,
            RawFlags::CREATE_FOR_IMPORT | RawFlags::CREATE_FOR_DIR
        )
        .is_err()
    );
    RawImport::create(
        &existing,
        RawFlags::CREATE_FOR_IMPORT | RawFlags::CREATE_FOR_DIR | RawFlags::OVERWRITE,
    )
    .unwrap()
    .import_from(&raw[..])
    .unwrap();
    assert_eq!(reel_efs::marker(&existing).unwrap(), Some(dm));

    // decrypt -r: everything back, markers gone.
    let mut failed = 0;
    reel_efs::decrypt_tree(&tree, &keys.recovery(), |ev| {
        if let TreeEvent::Failed(p, e) = ev {
            eprintln!("{}: {e}", p.display());
            failed += 1;
        }
    });
    assert_eq!(failed, 0);
    assert_eq!(
        fs::read(tree.join("sub/b.txt")).unwrap(),
        plaintext(70_000, 2)
    );
    assert_eq!(reel_efs::marker(&tree.join("sub")).unwrap(), None);
    assert_eq!(reel_efs::marker(&tree).unwrap(), None);
}

#[test]
fn ciphertext_and_marker_kept_apart_restore_like_a_backup() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let data = plaintext(90_000, 5);
    write_file(&src, &data);
    reel_efs::encrypt_file(&src, &keys.options()).unwrap();
    let on_disk = fs::read(&src).unwrap();

    // What a backup engine stores: a pax value and the entry data.
    let export = RawExport::open(&src).unwrap();
    let pax = export.marker().to_pax_value().unwrap();
    assert_eq!(export.ciphertext_len(), on_disk.len() as u64);
    let mut entry = Vec::new();
    std::io::Read::read_to_end(&mut export.into_ciphertext_reader(), &mut entry).unwrap();
    assert_eq!(entry, on_disk);

    let marker = Marker::from_pax_value(&pax).unwrap();
    let target = dir.path().join("restored");
    RawImport::create(&target, RawFlags::CREATE_FOR_IMPORT)
        .unwrap()
        .import_parts(&marker, &entry[..])
        .unwrap();
    assert_eq!(decrypt(&target, &keys.recovery()), data);

    // Truncated entry data or a wrong marker: refused, nothing left.
    let t2 = dir.path().join("restored2");
    let err = RawImport::create(&t2, RawFlags::CREATE_FOR_IMPORT)
        .unwrap()
        .import_parts(&marker, &entry[..entry.len() - 3])
        .unwrap_err();
    assert_eq!(err.class(), reel_efs::ErrorClass::Integrity, "{err}");
    let err = RawImport::create(&t2, RawFlags::CREATE_FOR_IMPORT)
        .unwrap()
        .import_parts(&marker, &b"not an age file at all"[..])
        .unwrap_err();
    assert_eq!(err.class(), reel_efs::ErrorClass::Integrity, "{err}");
    assert!(!t2.exists());
    assert!(strays(dir.path(), &["src", "restored"]).is_empty());
}

fn age_tools() -> bool {
    reel_testkit::require_tool("age") && reel_testkit::require_tool("age-keygen")
}

fn run(cmd: &mut std::process::Command) -> Vec<u8> {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn files_reel_encrypts_open_with_the_age_cli_even_after_add_user() {
    if !age_tools() {
        return;
    }
    let keys = Keys::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let data = plaintext(140_000, 6);
    write_file(&path, &data);
    reel_efs::encrypt_file(&path, &keys.options()).unwrap();
    let age_d = |id: &Path| {
        run(std::process::Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(id)
            .arg(&path))
    };
    assert_eq!(age_d(&keys.alice_path), data);
    assert_eq!(age_d(&keys.recovery_path), data);
    // The header reel rewrites (new stanza, new MAC) is valid for an independent implementation.
    reel_efs::add_user(
        &path,
        &keys.alice(),
        &Keys::named(&keys.bob(), "bob"),
        Role::User,
    )
    .unwrap();
    assert_eq!(age_d(&keys.bob_path), data);
    let rec = keys.recovery().recipients()[0].to_string();
    reel_efs::remove_user(&path, &keys.alice(), &Removal::Recipient(rec), true).unwrap();
    assert_eq!(age_d(&keys.alice_path), data);
    let out = std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&keys.recovery_path)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "the removed recipient still opens the file"
    );
}

#[test]
fn a_file_from_the_age_cli_is_marked_exported_imported_and_still_opens() {
    if !age_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.txt");
    let key2 = dir.path().join("key2.txt");
    run(std::process::Command::new("age-keygen").arg("-o").arg(&key));
    run(std::process::Command::new("age-keygen")
        .arg("-o")
        .arg(&key2));
    let ids = Identities::load(&key).unwrap();
    let other = Identities::load(&key2).unwrap().recipients()[0].to_string();
    let plain = dir.path().join("plain");
    let data = plaintext(100_000, 7);
    write_file(&plain, &data);
    let enc = dir.path().join("doc.age");
    run(std::process::Command::new("age")
        .arg("-r")
        .arg(ids.recipients()[0].to_string())
        .arg("-r")
        .arg(&other)
        .arg("-o")
        .arg(&enc)
        .arg(&plain));
    let original = fs::read(&enc).unwrap();

    let m = reel_efs::mark_file(
        &enc,
        Some(&ids),
        "alice",
        &[(
            Role::User,
            Named::new(reel_efs::parse_recipient(&other).unwrap(), "bob"),
        )],
    )
    .unwrap();
    assert_eq!(m.plaintext_size, data.len() as u64);
    assert_eq!(
        fs::read(&enc).unwrap(),
        original,
        "marking does not touch the bytes"
    );
    let st = reel_efs::status(&enc, Some(&ids)).unwrap();
    assert_eq!(st.keys, 2);
    assert!(st.opened_by_identity.is_some());
    assert_eq!(st.unplaced.len(), 1, "bob's stanza is not known");

    let raw = export_to_vec(&enc);
    assert!(!contains(&raw, KNOWN));
    let restored = dir.path().join("restored.age");
    RawImport::create(&restored, RawFlags::CREATE_FOR_IMPORT)
        .unwrap()
        .import_from(&raw[..])
        .unwrap();
    assert_eq!(fs::read(&restored).unwrap(), original);
    let out = run(std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key)
        .arg(&restored));
    assert_eq!(out, data);
    let out = run(std::process::Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&key2)
        .arg(&restored));
    assert_eq!(out, data);
    assert_eq!(decrypt(&restored, &ids), data);
}
