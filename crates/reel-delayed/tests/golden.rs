//! Golden files built byte by byte from the layout in the Windows documentation
//! (desktop-src/Backup/srdelayed-exe.md): UTF-16LE, no BOM, four fields per record each ending
//! in one NUL code unit, one more NUL after the last record. The records are the documentation's
//! own examples (drive paths and volume-GUID paths, including the trailing backslash its
//! volume-GUID DeleteFile and SetFileShortName examples carry).

use reel_delayed::format::STATUS_FIELD_BYTES;
use reel_delayed::{
    FormatErrorKind, NtPath, Operation, OperationFile, Status, UnusedField, encode, encode_new,
    parse,
};

/// One NUL code unit: the field terminator.
const NUL: [u8; 2] = [0x00, 0x00];

/// An ASCII string as UTF-16LE, spelled out: each character's byte, then a zero high byte.
fn w(ascii: &str) -> Vec<u8> {
    assert!(ascii.is_ascii());
    let mut out = Vec::new();
    for b in ascii.bytes() {
        out.push(b);
        out.push(0x00);
    }
    out
}

/// A record: four fields, each followed by NUL.
fn record(f1: &str, f2: &str, f3: &str, f4: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for f in [f1, f2, f3, f4] {
        out.extend(w(f));
        out.extend(NUL);
    }
    out
}

/// Records, then the final NUL.
fn file(records: &[Vec<u8>]) -> Vec<u8> {
    let mut out: Vec<u8> = records.concat();
    out.extend(NUL);
    out
}

const GUID: &str = "26a21bda-a627-11d7-9931-806e6f6e6963";

fn vol(rest: &str) -> String {
    format!(r"\??\Volume{{{GUID}}}{rest}")
}

fn p(field: &str) -> NtPath {
    NtPath::from_field(field).expect("a \\??\\ path")
}

/// The six documented records, with the operations they must parse to.
fn documented() -> Vec<(Vec<u8>, Operation)> {
    vec![
        (
            record(
                "MoveFile",
                r"\??\C:\Stage\a.dll",
                r"\??\C:\temp\a.dll",
                "NotExecuted",
            ),
            Operation::move_file(p(r"\??\C:\Stage\a.dll"), p(r"\??\C:\temp\a.dll")),
        ),
        (
            record(
                "MoveFile",
                &vol(r"\Stage\a.dll"),
                &vol(r"\temp\a.dll"),
                "NotExecuted",
            ),
            Operation::move_file(p(&vol(r"\Stage\a.dll")), p(&vol(r"\temp\a.dll"))),
        ),
        (
            record("DeleteFile", "Unused", r"\??\C:\temp\b.dll", "NotExecuted"),
            Operation::delete_file(p(r"\??\C:\temp\b.dll")),
        ),
        (
            record("DeleteFile", "Unused", &vol(r"\temp\b.dll\"), "NotExecuted"),
            Operation::delete_file(p(&vol(r"\temp\b.dll\"))),
        ),
        (
            record(
                "SetFileShortName",
                "ShortN~1.dll",
                r"\??\C:\temp\ShortFileName.dll",
                "NotExecuted",
            ),
            Operation::set_short_name(p(r"\??\C:\temp\ShortFileName.dll"), "ShortN~1.dll"),
        ),
        (
            record(
                "SetFileShortName",
                "ShortN~1.dll",
                &vol(r"\temp\ShortFileName.dll\"),
                "NotExecuted",
            ),
            Operation::set_short_name(p(&vol(r"\temp\ShortFileName.dll\")), "ShortN~1.dll"),
        ),
    ]
}

#[test]
fn literal_bytes_of_one_delete_record() {
    // DeleteFile␀Unused␀\??\/x␀NotExecuted␀␀, every byte written out.
    #[rustfmt::skip]
    let bytes: Vec<u8> = vec![
        0x44,0x00, 0x65,0x00, 0x6C,0x00, 0x65,0x00, 0x74,0x00, 0x65,0x00, 0x46,0x00, 0x69,0x00, 0x6C,0x00, 0x65,0x00, 0x00,0x00,
        0x55,0x00, 0x6E,0x00, 0x75,0x00, 0x73,0x00, 0x65,0x00, 0x64,0x00, 0x00,0x00,
        0x5C,0x00, 0x3F,0x00, 0x3F,0x00, 0x5C,0x00, 0x2F,0x00, 0x78,0x00, 0x00,0x00,
        0x4E,0x00, 0x6F,0x00, 0x74,0x00, 0x45,0x00, 0x78,0x00, 0x65,0x00, 0x63,0x00, 0x75,0x00, 0x74,0x00, 0x65,0x00, 0x64,0x00, 0x00,0x00,
        0x00,0x00,
    ];
    let recs = parse(&bytes).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs[0].operation,
        Operation::DeleteFile {
            path: p(r"\??\/x"),
            unused: UnusedField::Unused
        }
    );
    assert_eq!(recs[0].status, Status::NotExecuted);
    assert_eq!(recs[0].offset, 0);
    assert_eq!(recs[0].status_offset, 20 + 2 + 12 + 2 + 12 + 2);
    assert_eq!(encode_new(&[recs[0].operation.clone()]), bytes);

    // SC=00000091 (ERROR_DIR_NOT_EMPTY) written over NotExecuted: same length, in place.
    #[rustfmt::skip]
    let sc: [u8; STATUS_FIELD_BYTES] = [
        0x53,0x00, 0x43,0x00, 0x3D,0x00, 0x30,0x00, 0x30,0x00, 0x30,0x00, 0x30,0x00, 0x30,0x00, 0x30,0x00, 0x39,0x00, 0x31,0x00,
    ];
    assert_eq!(Status::Code(145).encode(), sc);
    let mut done = bytes.clone();
    done[recs[0].status_offset as usize..][..STATUS_FIELD_BYTES].copy_from_slice(&sc);
    assert_eq!(done.len(), bytes.len());
    assert_eq!(parse(&done).unwrap()[0].status, Status::Code(0x91));
}

#[test]
fn each_documented_record_parses_and_reencodes_byte_for_byte() {
    for (bytes, op) in documented() {
        let golden = file(&[bytes]);
        let recs = parse(&golden).unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].operation, op);
        assert_eq!(recs[0].status, Status::NotExecuted);
        assert_eq!(encode_new(&[op]), golden);
    }
}

#[test]
fn all_documented_records_in_one_file() {
    let (records, ops): (Vec<_>, Vec<_>) = documented().into_iter().unzip();
    let golden = file(&records);
    let parsed = parse(&golden).unwrap();
    assert_eq!(
        parsed
            .iter()
            .map(|r| r.operation.clone())
            .collect::<Vec<_>>(),
        ops
    );
    // Offsets: each record starts where the previous one's bytes end.
    let mut at = 0u64;
    for (r, bytes) in parsed.iter().zip(&records) {
        assert_eq!(r.offset, at);
        assert_eq!(
            r.status_offset,
            at + bytes.len() as u64 - STATUS_FIELD_BYTES as u64 - 2
        );
        at += bytes.len() as u64;
    }
    assert_eq!(encode_new(&ops), golden);
    assert_eq!(
        encode(parsed.iter().map(|r| (&r.operation, r.status))),
        golden
    );
}

#[test]
fn files_reel_writes_are_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("DelayedOperations");
    let mut ops = OperationFile::open_or_create(&path).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), NUL.to_vec());
    let (records, expected): (Vec<_>, Vec<_>) = documented().into_iter().unzip();
    for op in expected {
        ops.append(op).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), file(&records));

    // Linux paths through the convenience API.
    let linux = dir.path().join("linux-ops");
    let mut ops = OperationFile::open_or_create(&linux).unwrap();
    ops.append_move("/srv/stage/a.so".as_ref(), "/usr/lib/a.so".as_ref())
        .unwrap();
    ops.append_delete("/usr/lib/old.so".as_ref()).unwrap();
    ops.append_short_name("/mnt/c/LongFileName.dll".as_ref(), "LONGFI~1.DLL")
        .unwrap();
    assert_eq!(
        std::fs::read(&linux).unwrap(),
        file(&[
            record(
                "MoveFile",
                r"\??\/srv/stage/a.so",
                r"\??\/usr/lib/a.so",
                "NotExecuted"
            ),
            record(
                "DeleteFile",
                "Unused",
                r"\??\/usr/lib/old.so",
                "NotExecuted"
            ),
            record(
                "SetFileShortName",
                "LONGFI~1.DLL",
                r"\??\/mnt/c/LongFileName.dll",
                "NotExecuted"
            ),
        ])
    );
}

#[test]
fn non_ascii_paths_are_utf16() {
    // "é" is U+00E9 (E9 00); "𝄞" is U+1D11E, the surrogate pair D834 DD1E (34 D8 1E DD).
    let mut bytes = Vec::new();
    bytes.extend(w("DeleteFile"));
    bytes.extend(NUL);
    bytes.extend(NUL); // empty "unused" field, which the documentation's format allows
    bytes.extend(w(r"\??\/tmp/"));
    bytes.extend([0xE9, 0x00, 0x34, 0xD8, 0x1E, 0xDD]);
    bytes.extend(NUL);
    bytes.extend(w("SC=0000ABCD"));
    bytes.extend(NUL);
    bytes.extend(NUL);
    let recs = parse(&bytes).unwrap();
    assert_eq!(
        recs[0].operation,
        Operation::DeleteFile {
            path: p("\\??\\/tmp/é𝄞"),
            unused: UnusedField::Empty
        }
    );
    assert_eq!(recs[0].status, Status::Code(0xABCD));
    assert_eq!(encode(recs.iter().map(|r| (&r.operation, r.status))), bytes);
}

/// A valid first record, so every malformation below comes after something that would run.
fn good_first() -> Vec<u8> {
    record("MoveFile", r"\??\/a", r"\??\/b", "NotExecuted")
}

fn refused(bytes: &[u8]) -> (u64, FormatErrorKind) {
    let e = parse(bytes).expect_err("must be refused");
    assert!(e.offset <= bytes.len() as u64);
    assert!(e.to_string().contains(&format!("byte offset {}", e.offset)));
    (e.offset, e.kind)
}

#[test]
fn malformed_files_name_the_offset() {
    let good = file(&[good_first()]);
    let first = good_first().len() as u64;

    // Odd length: the last byte is half a code unit.
    let mut odd = good.clone();
    odd.push(0x00);
    assert_eq!(
        refused(&odd),
        (
            good.len() as u64,
            FormatErrorKind::OddLength(good.len() as u64 + 1)
        )
    );

    // A byte-order mark.
    let mut bom = vec![0xFF, 0xFE];
    bom.extend(&good);
    assert!(matches!(
        refused(&bom),
        (0, FormatErrorKind::ByteOrderMark(_))
    ));

    // No final NUL.
    let no_final = good_first();
    assert_eq!(
        refused(&no_final),
        (first, FormatErrorKind::MissingFinalNul)
    );

    // Three fields, then the end.
    let mut three = Vec::new();
    for f in ["MoveFile", r"\??\/a", r"\??\/b"] {
        three.extend(w(f));
        three.extend(NUL);
    }
    let field4 = three.len() as u64;
    three.extend(NUL);
    assert_eq!(
        refused(&three),
        (field4, FormatErrorKind::TooFewFields { found: 3 })
    );

    // Three fields, then another record.
    let mut three_mid = good_first();
    let second = three_mid.len() as u64;
    for f in ["DeleteFile", "Unused", r"\??\/c"] {
        three_mid.extend(w(f));
        three_mid.extend(NUL);
    }
    let field4 = three_mid.len() as u64;
    three_mid.extend(good_first());
    three_mid.extend(NUL);
    let (off, kind) = refused(&three_mid);
    assert_eq!(off, field4);
    assert_eq!(kind, FormatErrorKind::KeywordAsStatus("MoveFile".into()));
    assert!(off > second);

    // Unknown (wrong-case) keyword in record 2.
    let bad_kw = file(&[
        good_first(),
        record("movefile", r"\??\/c", r"\??\/d", "NotExecuted"),
    ]);
    assert_eq!(
        refused(&bad_kw),
        (first, FormatErrorKind::UnknownKeyword("movefile".into()))
    );

    // A path without \??\ (field 3 of record 2).
    let no_prefix = file(&[
        good_first(),
        record("MoveFile", r"\??\/c", r"C:\d", "NotExecuted"),
    ]);
    let f3 = first + (w("MoveFile").len() + 2 + w(r"\??\/c").len() + 2) as u64;
    assert_eq!(
        refused(&no_prefix),
        (
            f3,
            FormatErrorKind::MissingPrefix {
                field: 3,
                found: r"C:\d".into()
            }
        )
    );

    // DeleteFile without its "Unused" field.
    let mut no_unused = Vec::new();
    for f in ["DeleteFile", r"\??\/c", "NotExecuted"] {
        no_unused.extend(w(f));
        no_unused.extend(NUL);
    }
    no_unused.extend(NUL);
    let (off, kind) = refused(&no_unused);
    assert_eq!(off, (w("DeleteFile").len() + 2) as u64);
    assert!(matches!(kind, FormatErrorKind::BadUnusedField(_)));

    // A bad status.
    let bad_status = file(&[record("MoveFile", r"\??\/a", r"\??\/b", "SC=1234")]);
    assert!(matches!(
        refused(&bad_status).1,
        FormatErrorKind::BadStatus(_)
    ));

    // Data after the final NUL.
    let mut trailing = good.clone();
    trailing.extend(w("x"));
    assert_eq!(
        refused(&trailing),
        (good.len() as u64, FormatErrorKind::TrailingData)
    );
}
