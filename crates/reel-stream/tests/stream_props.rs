//! The Win32 stream codec on real files: what BackupReader writes BackupWriter gives back
//! in any chunking; truncated or damaged streams are refused with an offset, never a
//! panic, and nothing is left under the final name.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use proptest::prelude::*;
use reel_stream::stream::{BackupReader, BackupWriter, ReadOptions, WriteOptions};
use reel_stream::{Existing, RestoreRoot, check_path};

/// A few files with the facts the encoding carries (made once per test process).
fn sample_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path();
        std::fs::write(p.join("plain"), reel_testkit::pseudo_random(1, 70_000)).unwrap();
        // Sparse: data, hole, data, hole at the end.
        let f = std::fs::File::create(p.join("sparse")).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&reel_testkit::pseudo_random(2, 5000), 0)
            .unwrap();
        f.write_all_at(&reel_testkit::pseudo_random(3, 5000), 1 << 20)
            .unwrap();
        f.set_len(3 << 20).unwrap();
        std::fs::write(p.join("attrs"), b"with attributes").unwrap();
        let _ = xattr_set(&p.join("attrs"), "user.one", b"1");
        let _ = xattr_set(&p.join("attrs"), "user.bin", &[0, 255, 0, 10]);
        std::os::unix::fs::symlink("../some/where", p.join("link")).unwrap();
        d
    })
    .path()
}

fn xattr_set(p: &Path, name: &str, value: &[u8]) -> std::io::Result<()> {
    rustix::fs::setxattr(p, name, value, rustix::fs::XattrFlags::empty()).map_err(Into::into)
}

fn stream_of(name: &str) -> Vec<u8> {
    let mut r = BackupReader::open(&sample_dir().join(name), &ReadOptions::default()).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// Writes `bytes` in pieces of `chunks` sizes as `name` under a fresh directory.
fn write_stream(
    dir: &Path,
    bytes: &[u8],
    chunks: &[usize],
) -> Result<(), reel_stream::StreamError> {
    let mut root = RestoreRoot::open(dir, Existing::Skip).unwrap();
    let rel = check_path(b"out").unwrap();
    let mut w = BackupWriter::new(&mut root, rel, &WriteOptions::default());
    let mut pos = 0;
    let mut i = 0;
    while pos < bytes.len() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(bytes.len())
            .max(1);
        let end = (pos + n).min(bytes.len());
        w.write(&bytes[pos..end])?;
        pos = end;
        i += 1;
    }
    w.finish()?;
    root.finish();
    Ok(())
}

fn nothing_left(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

fn same_file(a: &Path, b: &Path) {
    let ma = std::fs::symlink_metadata(a).unwrap();
    let mb = std::fs::symlink_metadata(b).unwrap();
    assert_eq!(ma.mode(), mb.mode());
    assert_eq!(ma.len(), mb.len());
    assert_eq!((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()));
    if ma.file_type().is_symlink() {
        assert_eq!(
            std::fs::read_link(a).unwrap(),
            std::fs::read_link(b).unwrap()
        );
    } else {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }
    let names = |p: &Path| {
        let mut buf = vec![0u8; 65536];
        let n = rustix::fs::llistxattr(p, &mut buf[..]).unwrap_or(0);
        buf.truncate(n);
        let mut list: Vec<Vec<u8>> = buf
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| s.to_vec())
            .collect();
        list.sort();
        list
    };
    assert_eq!(names(a), names(b));
}

#[test]
fn every_sample_round_trips_in_one_piece() {
    for name in ["plain", "sparse", "attrs", "link"] {
        let bytes = stream_of(name);
        let out = tempfile::tempdir().unwrap();
        write_stream(out.path(), &bytes, &[bytes.len()]).unwrap();
        same_file(&sample_dir().join(name), &out.path().join("out"));
        if name == "sparse" {
            let m = std::fs::metadata(out.path().join("out")).unwrap();
            assert!(
                m.blocks() * 512 < 200_000,
                "the holes stay holes: {} blocks",
                m.blocks()
            );
        }
    }
}

#[test]
fn backup_seek_skips_within_one_stream_only() {
    let full = stream_of("plain");
    let mut r = BackupReader::open(&sample_dir().join("plain"), &ReadOptions::default()).unwrap();
    // Between streams, nothing moves.
    assert_eq!(r.seek(10).unwrap(), 0);
    let mut out = Vec::new();
    // Read headers and data until the DATA stream's header has been read, then skip.
    let mut hdr = [0u8; 20];
    r.read_exact(&mut hdr).unwrap(); // EA header
    let ea_size = u64::from_le_bytes(hdr[8..16].try_into().unwrap());
    out.extend_from_slice(&hdr);
    assert_eq!(
        r.seek(ea_size + 100).unwrap(),
        ea_size,
        "stops at the stream's end"
    );
    r.read_exact(&mut hdr).unwrap(); // DATA header
    assert_eq!(u32::from_le_bytes(hdr[0..4].try_into().unwrap()), 1);
    assert_eq!(r.seek(1000).unwrap(), 1000);
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    let data_at = 20 + ea_size as usize + 20;
    assert_eq!(rest, full[data_at + 1000..]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_chunking_gives_the_same_file(
        which in 0usize..4,
        chunks in proptest::collection::vec(1usize..5000, 1..20),
    ) {
        let name = ["plain", "sparse", "attrs", "link"][which];
        let bytes = stream_of(name);
        let out = tempfile::tempdir().unwrap();
        write_stream(out.path(), &bytes, &chunks).unwrap();
        same_file(&sample_dir().join(name), &out.path().join("out"));
    }

    #[test]
    fn truncated_streams_are_refused_and_leave_nothing(
        which in 0usize..4,
        cut in any::<proptest::sample::Index>(),
    ) {
        let name = ["plain", "sparse", "attrs", "link"][which];
        let bytes = stream_of(name);
        let cut = cut.index(bytes.len()).max(1);
        let out = tempfile::tempdir().unwrap();
        let r = write_stream(out.path(), &bytes[..cut], &[977]);
        let err = r.expect_err("a cut stream must be refused");
        prop_assert!(err.to_string().contains("byte"), "{}", err);
        prop_assert!(nothing_left(out.path()), "left behind: {:?}",
            std::fs::read_dir(out.path()).unwrap().map(|e| e.unwrap().file_name()).collect::<Vec<_>>());
    }

    #[test]
    fn damaged_streams_error_with_an_offset_or_apply_never_panic(
        which in 0usize..4,
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 1..6),
    ) {
        let name = ["plain", "sparse", "attrs", "link"][which];
        let mut bytes = stream_of(name);
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v;
        }
        let out = tempfile::tempdir().unwrap();
        match write_stream(out.path(), &bytes, &[4096]) {
            Ok(()) => {}
            Err(e) => {
                let msg = e.to_string();
                if e.is_data_error() {
                    prop_assert!(msg.contains("byte"), "{}", msg);
                }
                prop_assert!(!out.path().join("out").exists(), "{} left a file: {}", name, msg);
            }
        }
    }

    #[test]
    fn garbage_is_refused(garbage in proptest::collection::vec(any::<u8>(), 1..2000)) {
        let out = tempfile::tempdir().unwrap();
        if let Err(e) = write_stream(out.path(), &garbage, &[333]) {
            prop_assert!(!out.path().join("out").exists());
            if e.is_data_error() {
                prop_assert!(e.to_string().contains("byte"));
            }
        }
    }
}
