//! The set index format does not drift: an index written by this code is byte-for-byte the
//! golden one (`data/index-golden.jsonl`, written by reel before index entries were typed),
//! and that index reads back as the same entries. The golden set covers every member kind,
//! non-UTF-8 and escaped names, sparse files (`hs`), references to earlier sets (`src`), times
//! before 1970 and at the ends of the range, and lines without the optional fields.

use reel_archive::Entry;
use reel_archive::index::{IndexEntry, IndexReader, IndexSpool, SetInfo, SetMode};
use reel_stream::{Extent, FileKind, FileMeta, SparseMap, Timestamp, Xattr};

const GOLDEN: &str = include_str!("data/index-golden.jsonl");

fn uuid(n: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(0x5eed_0000_0000_4000_8000_0000_0000_0000 | n)
}

fn info() -> SetInfo {
    SetInfo {
        id: uuid(1),
        number: 2,
        name: "golden".into(),
        started: "2026-12-01T10:00:00Z".into(),
        finished: "2026-12-01T10:05:00Z".into(),
        host: "host".into(),
        paths: vec!["/srv".into()],
        mode: SetMode::Incremental,
        parent: Some(uuid(2)),
        block_size: 262144,
        volume_id: uuid(3),
        data_file: 3,
        data_first_block: 0,
        data_records: 1,
        archive_bytes: 10240,
        files: 6,
        directories: 1,
        other: 5,
        content_bytes: 4096,
        problems: 0,
        reel_version: "0.1.0".into(),
        parts: Vec::new(),
    }
}

fn meta(kind: FileKind, mode: u32, secs: i64, nanos: u32) -> FileMeta {
    let mut m = FileMeta::new(kind, mode);
    m.uid = 1000;
    m.gid = 100;
    m.mtime = Timestamp::new(secs, nanos);
    m.ctime = Timestamp::new(secs + 1, nanos / 2);
    m.ino = 4242;
    m
}

/// The members of the golden index, built the way a backup builds them.
fn golden_entries() -> Vec<IndexEntry> {
    let mut out = Vec::new();
    // A regular file with owner names, an xattr and pax records of its own.
    let mut m = meta(FileKind::Regular, 0o644, 1_764_583_200, 123_456_789);
    m.size = 5;
    m.user = Some("alice".into());
    m.group = Some("staff".into());
    m.xattrs = vec![Xattr::new("user.note", "x")];
    let mut e = Entry::new("srv/a.txt", m);
    e.extra.push(("REEL.x".into(), b"1".to_vec()));
    out.push(IndexEntry::new(&e, 0, Some(blake3::hash(b"hello"))));
    // A name that is not UTF-8, setuid, uid/gid at the top of their range.
    let mut m = meta(FileKind::Regular, 0o4755, 1, 0);
    m.size = 3;
    m.uid = u32::MAX;
    m.gid = u32::MAX;
    let e = Entry::new(b"srv/bin/\xff\xfeprog".to_vec(), m);
    out.push(IndexEntry::new(&e, 1536, Some(blake3::hash(b"abc"))));
    // A sparse file: its own hash scheme, the logical size.
    let mut m = meta(FileKind::Regular, 0o600, 1_700_000_000, 500_000_000);
    m.size = 1 << 20;
    m.sparse = Some(SparseMap {
        extents: vec![
            Extent {
                offset: 0,
                len: 4096,
            },
            Extent {
                offset: 1 << 19,
                len: 4096,
            },
        ],
    });
    let e = Entry::new("srv/sparse.img", m);
    out.push(IndexEntry::new(&e, 3072, Some(blake3::hash(b"sparse"))));
    // A hard link to a member whose name is not UTF-8.
    let mut e = Entry::new("srv/bin/prog-link", meta(FileKind::Regular, 0o4755, 1, 0));
    e.hardlink = Some(b"srv/bin/\xff\xfeprog".to_vec());
    out.push(IndexEntry::new(&e, 17408, None));
    // A directory with a name that JSON escapes.
    let e = Entry::new(
        "srv/we\"ird\\dir\n\t\u{1}é😀",
        meta(FileKind::Directory, 0o1777, 1_600_000_000, 1),
    );
    out.push(IndexEntry::new(&e, 18432, None));
    // A symlink (its target escaped too).
    let mut m = meta(FileKind::Symlink, 0o777, 1_600_000_000, 999_999_999);
    m.symlink_target = Some("../we\"ird\\target".into());
    out.push(IndexEntry::new(&Entry::new("srv/link", m), 18944, None));
    // A fifo, devices and a socket; times before 1970 and at the ends of the range.
    out.push(IndexEntry::new(
        &Entry::new("srv/fifo", meta(FileKind::Fifo, 0o644, -2, 500_000_000)),
        19456,
        None,
    ));
    let mut m = meta(FileKind::CharDevice, 0o666, -1, 0);
    m.rdev = Some((1, 3));
    out.push(IndexEntry::new(&Entry::new("srv/null", m), 19968, None));
    let mut m = meta(FileKind::BlockDevice, 0o660, i64::MAX - 1, 999_999_999);
    m.rdev = Some((8, 0));
    out.push(IndexEntry::new(&Entry::new("srv/sda", m), 20480, None));
    let mut m = meta(FileKind::Socket, 0o755, 0, 0);
    m.mtime = Timestamp::new(i64::MIN, 0);
    out.push(IndexEntry::new(&Entry::new("srv/sock", m), 20992, None));
    // A regular file without a hash (as a scan of a foreign archive records it) and without
    // an inode.
    let mut m = meta(FileKind::Regular, 0o644, 1_000_000_000, 10);
    m.ino = 0;
    m.size = 7;
    out.push(IndexEntry::new(&Entry::new("srv/nohash", m), 21504, None));
    // An unchanged file of an incremental backup: its data is in an earlier set.
    let mut m = meta(FileKind::Regular, 0o644, 1_764_000_000, 42);
    m.size = 4088;
    let e = IndexEntry::new(
        &Entry::new("srv/old.txt", m),
        7680,
        Some(blake3::hash(b"old")),
    );
    out.push(IndexEntry {
        source_set: Some(uuid(4)),
        ..e
    });
    // A line as indexes written before incremental backups have it: no change time, inode.
    let mut m = meta(FileKind::Regular, 0o644, 1_500_000_000, 0);
    m.ino = 0;
    m.size = 1;
    let e = IndexEntry::new(
        &Entry::new("srv/older.txt", m),
        22016,
        Some(blake3::hash(b"1")),
    );
    out.push(IndexEntry { ctime: None, ..e });
    // The empty name (the root of a backup of `.`).
    out.push(IndexEntry::new(
        &Entry::new("", meta(FileKind::Directory, 0o755, 5, 5)),
        22528,
        None,
    ));
    out
}

/// The index `entries` make, decompressed.
fn written(entries: &[IndexEntry]) -> String {
    let mut spool = IndexSpool::new().unwrap();
    for e in entries {
        spool.push(e).unwrap();
    }
    let mut out = Vec::new();
    spool.write_index(&info(), &mut out).unwrap();
    let plain = zstd::decode_all(&out[..]).unwrap();
    String::from_utf8(plain).unwrap()
}

#[test]
fn the_index_written_is_byte_for_byte_the_golden_one() {
    let text = written(&golden_entries());
    for (i, (got, want)) in text.lines().zip(GOLDEN.lines()).enumerate() {
        assert_eq!(got, want, "line {}", i + 1);
    }
    assert_eq!(text, GOLDEN);
}

#[test]
fn the_golden_index_reads_back_as_its_entries() {
    let want = golden_entries();
    let compressed = zstd::encode_all(GOLDEN.as_bytes(), 1).unwrap();
    let (set, mut reader) = IndexReader::open(&compressed[..]).unwrap();
    assert_eq!(set, info());
    let mut got = Vec::new();
    while let Some(e) = reader.next_entry().unwrap() {
        got.push(e);
    }
    assert_eq!(got, want);
}

#[test]
fn every_golden_line_decodes_and_encodes_to_the_same_bytes() {
    let lines: Vec<&str> = GOLDEN.lines().collect();
    let entries = &lines[1..lines.len() - 1];
    assert_eq!(entries.len(), golden_entries().len());
    for line in entries {
        let e: IndexEntry = serde_json::from_str(line).unwrap();
        assert_eq!(serde_json::to_string(&e).unwrap(), *line);
    }
}

#[test]
fn golden_entries_are_typed() {
    use reel_archive::{EntryKind, HashScheme};
    let entries = golden_entries();
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind).collect();
    use EntryKind::*;
    assert_eq!(
        kinds,
        [
            File,
            File,
            File,
            HardLink,
            Directory,
            Symlink,
            Fifo,
            CharDevice,
            BlockDevice,
            Socket,
            File,
            File,
            File,
            Directory
        ]
    );
    for k in kinds {
        assert_eq!(EntryKind::from_code(k.code()), Some(k));
    }
    assert_eq!(entries[0].hash, Some(blake3::hash(b"hello")));
    assert_eq!(entries[0].hash_scheme, HashScheme::Blake3);
    assert_eq!(entries[2].hash_scheme, HashScheme::Sparse64k);
    assert_eq!(entries[2].size, 1 << 20);
    assert_eq!(entries[1].path, b"srv/bin/\xff\xfeprog");
    assert_eq!(
        entries[3].link.as_deref(),
        Some("srv/bin/\u{fffd}\u{fffd}prog")
    );
    assert_eq!(entries[6].mtime, Timestamp::new(-2, 500_000_000));
    assert_eq!(entries[8].mtime, Timestamp::new(i64::MAX - 1, 999_999_999));
    assert_eq!(entries[9].mtime, Timestamp::new(i64::MIN, 0));
    assert_eq!(entries[10].hash, None);
    assert_eq!(entries[10].ino, None);
    assert_eq!(entries[12].ctime, None);
    assert_eq!(
        entries[0].meta_digest.to_string(),
        "4e43166b59d68ea57b4ed1130750a7e8"
    );
    assert!(entries[13].path.is_empty());
}

/// The golden index with entry line `n` (from 1) replaced by `line`, compressed.
fn with_line(n: usize, line: &str) -> Vec<u8> {
    let mut lines: Vec<&str> = GOLDEN.lines().collect();
    lines[n] = line;
    zstd::encode_all(format!("{}\n", lines.join("\n")).as_bytes(), 1).unwrap()
}

/// The error reading the golden index with entry line `n` replaced by `line`.
fn error_with_line(n: usize, line: &str) -> String {
    let bytes = with_line(n, line);
    let (_, mut reader) = IndexReader::open(&bytes[..]).unwrap();
    loop {
        match reader.next_entry() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("accepted {line}"),
            Err(e) => {
                assert!(
                    matches!(e, reel_archive::ArchiveError::Corrupt { offset, .. } if offset == n as u64 + 1),
                    "{e:?}"
                );
                return e.to_string();
            }
        }
    }
}

#[test]
fn garbage_in_a_line_is_an_error_saying_what_and_where() {
    let lines: Vec<&str> = GOLDEN.lines().collect();
    let first = lines[1];
    let sparse = lines[3];
    let non_utf8 = lines[2];
    let cases: Vec<(usize, String, &[&str])> = vec![
        (
            1,
            first.replace("\"t\":\"f\"", "\"t\":\"z\""),
            &["\"z\"", "member kind"],
        ),
        (
            1,
            first.replace("\"t\":\"f\"", "\"t\":\"ff\""),
            &["\"ff\"", "member kind"],
        ),
        (
            1,
            first.replace("\"t\":\"f\"", "\"t\":\"\""),
            &["member kind"],
        ),
        (1, first.replace("\"t\":\"f\"", "\"t\":5"), &["member kind"]),
        (
            1,
            first.replace("\"mt\":\"1764583200.123456789\"", "\"mt\":\"yesterday\""),
            &["\"yesterday\"", "time", "mt"],
        ),
        (
            1,
            first.replace("\"mt\":\"1764583200.123456789\"", "\"mt\":\"1.2.3\""),
            &["\"1.2.3\"", "time"],
        ),
        (
            1,
            first.replace("\"ct\":\"1764583201.061728394\"", "\"ct\":\"-\""),
            &["\"-\"", "time", "ct"],
        ),
        (
            1,
            first.replace("\"mt\":\"1764583200.123456789\",", ""),
            &["missing field `mt`"],
        ),
        (
            1,
            first.replace("\"h\":\"ea8f", "\"h\":\"zz8f"),
            &["\"zz8f", "BLAKE3"],
        ),
        (
            1,
            first.replace("\"h\":\"ea8f", "\"h\":\"8f"),
            &["BLAKE3", "64 hex digits"],
        ),
        (
            1,
            first.replace("\"md\":\"4e43", "\"md\":\"4g43"),
            &["\"4g43", "metadata digest"],
        ),
        (
            1,
            first.replace("\"md\":\"4e43", "\"md\":\"4e4"),
            &["metadata digest"],
        ),
        (
            3,
            sparse.replace("sparse-b3-64k", "md5"),
            &["\"md5\"", "hash scheme"],
        ),
        (
            2,
            non_utf8.replace("\"px\":\"7372", "\"px\":\"737"),
            &["\"737", "name in hex"],
        ),
        (
            2,
            non_utf8.replace("\"px\":\"7372", "\"px\":\"7g72"),
            &["\"7g72", "name in hex"],
        ),
        (1, "garbage".to_string(), &["set index line 2"]),
    ];
    for (n, line, wanted) in cases {
        assert_ne!(line, lines[n], "the case changes nothing");
        let err = error_with_line(n, &line);
        assert!(err.contains(&format!("set index line {}", n + 1)), "{err}");
        for w in wanted {
            assert!(err.contains(w), "{err} (wanted {w})");
        }
    }
}

/// Any byte of any line changed to anything: an entry or an error, never a panic.
#[test]
fn no_change_to_a_line_panics_the_decoder() {
    for line in GOLDEN.lines() {
        let bytes = line.as_bytes();
        for i in 0..bytes.len() {
            for b in [b'x', b'"', b'0', b'-', b'.', b'\\', b'}', 0xff, 0] {
                let mut changed = bytes.to_vec();
                changed[i] = b;
                let _ = serde_json::from_slice::<IndexEntry>(&changed);
            }
            let _ = serde_json::from_slice::<IndexEntry>(&bytes[..i]);
        }
    }
}
