//! The set index round-trips through a tape-like byte stream and detects damage.

use reel_archive::index::{IndexEntry, IndexReader, IndexSpool, SetInfo, SetMode};
use reel_archive::{ArchiveError, Entry};
use reel_stream::{FileKind, FileMeta, Timestamp};

fn info() -> SetInfo {
    SetInfo {
        id: uuid::Uuid::new_v4(),
        number: 3,
        name: "n".into(),
        started: "s".into(),
        finished: "f".into(),
        host: "h".into(),
        paths: vec!["/x".into()],
        mode: SetMode::Full,
        parent: None,
        block_size: 512,
        volume_id: uuid::Uuid::new_v4(),
        data_file: 5,
        data_first_block: 9,
        data_records: 2,
        archive_bytes: 1024,
        files: 1000,
        directories: 0,
        other: 0,
        content_bytes: 0,
        problems: 0,
        reel_version: "0".into(),
        parts: Vec::new(),
    }
}

fn index_bytes(n: usize) -> (Vec<IndexEntry>, Vec<u8>) {
    let mut spool = IndexSpool::new().unwrap();
    let mut entries = Vec::new();
    for i in 0..n {
        let mut meta = FileMeta::new(FileKind::Regular, 0o644);
        meta.size = i as u64;
        meta.mtime = Timestamp::new(i as i64, 7);
        let path = if i % 7 == 0 {
            vec![b'a', 0xFF, b'0' + (i % 10) as u8]
        } else {
            format!("d/{i}").into_bytes()
        };
        let e = IndexEntry::new(
            &Entry::new(path, meta),
            i as u64 * 512,
            Some(blake3::hash(&i.to_le_bytes())),
        );
        spool.push(&e).unwrap();
        entries.push(e);
    }
    let mut out = Vec::new();
    spool.write_index(&info(), &mut out).unwrap();
    (entries, out)
}

/// The set number and every entry of an index that reads whole.
fn read_whole(bytes: &[u8]) -> (u32, Vec<IndexEntry>) {
    let (info, mut r) = IndexReader::open(bytes).unwrap();
    let mut got = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        got.push(e);
    }
    (info.number, got)
}

#[test]
fn index_round_trips_with_non_utf8_paths() {
    let (entries, bytes) = index_bytes(1000);
    let (number, got) = read_whole(&bytes);
    assert_eq!(number, 3);
    assert_eq!(got, entries);
    assert_eq!(got[7].path, vec![b'a', 0xFF, b'7']);
}

#[test]
fn cut_or_altered_index_is_an_error() {
    let (_, bytes) = index_bytes(2000);
    for cut in [bytes.len() / 3, bytes.len() - 10] {
        let result = IndexReader::open(&bytes[..cut]).and_then(|(_, mut r)| {
            while r.next_entry()?.is_some() {}
            Ok(())
        });
        assert!(result.is_err(), "cut at {cut} accepted");
    }
    // Altered content that still decompresses: change one entry, re-encode, keep the end line.
    let (_, mut r) = IndexReader::open(&bytes[..]).unwrap();
    let mut plain = Vec::new();
    let mut dec = zstd::stream::read::Decoder::new(&bytes[..]).unwrap();
    std::io::copy(&mut dec, &mut plain).unwrap();
    while r.next_entry().unwrap().is_some() {}
    let text = String::from_utf8_lossy(&plain).replace("\"d/5\"", "\"d/6\"");
    let altered = zstd::encode_all(text.as_bytes(), 1).unwrap();
    let (_, mut r) = IndexReader::open(&altered[..]).unwrap();
    let err = loop {
        match r.next_entry() {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("altered index accepted"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, ArchiveError::Integrity(_)), "{err}");
    assert!(IndexReader::open(&b"not zstd at all"[..]).is_err());
}

#[test]
fn header_is_a_frame_of_its_own_and_one_frame_indexes_still_read() {
    use std::io::Read;
    let (entries, bytes) = index_bytes(500);
    // The first zstd frame holds the header line alone: a reader after the set's
    // description decodes a few hundred bytes, not a block of entries.
    let mut first = String::new();
    let mut dec = zstd::stream::read::Decoder::new(&bytes[..])
        .unwrap()
        .single_frame();
    dec.read_to_string(&mut first).unwrap();
    assert!(first.starts_with("{\"reel_set_index\":1,"), "{first}");
    assert_eq!(first.matches('\n').count(), 1, "{first}");
    // Indexes written by earlier versions are one frame: same lines, same result.
    let mut plain = Vec::new();
    std::io::copy(
        &mut zstd::stream::read::Decoder::new(&bytes[..]).unwrap(),
        &mut plain,
    )
    .unwrap();
    assert!(plain.starts_with(first.as_bytes()));
    let one_frame = zstd::encode_all(&plain[..], 1).unwrap();
    assert_eq!(read_whole(&one_frame), (3, entries));
}
