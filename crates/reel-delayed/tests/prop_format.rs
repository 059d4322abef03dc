//! Property tests: random operation lists round-trip through the writer and the parser;
//! random truncations, bit flips and garbage are parsed or refused with an offset, never a
//! panic.

use proptest::prelude::*;
use reel_delayed::{NtPath, Operation, OperationFile, Status, UnusedField, encode, parse};

fn component() -> impl Strategy<Value = String> {
    // Names with spaces, non-ASCII and astral characters (surrogate pairs in UTF-16).
    prop::string::string_regex("[a-zA-Z0-9 ._~é€𝄞-]{1,12}")
        .unwrap()
        .prop_filter("not . or ..", |s| s != "." && s != "..")
}

fn linux_path() -> impl Strategy<Value = NtPath> {
    prop::collection::vec(component(), 1..5)
        .prop_map(|cs| NtPath::from_raw(format!("/{}", cs.join("/"))))
}

fn windows_path() -> impl Strategy<Value = NtPath> {
    let drive = (
        prop::char::range('A', 'Z'),
        prop::collection::vec(component(), 1..4),
    )
        .prop_map(|(d, cs)| NtPath::from_raw(format!("{d}:\\{}", cs.join("\\"))));
    let volume = (
        any::<u128>(),
        prop::collection::vec(component(), 1..4),
        any::<bool>(),
    )
        .prop_map(|(g, cs, trailing)| {
            let h = format!("{g:032x}");
            NtPath::from_raw(format!(
                "Volume{{{}-{}-{}-{}-{}}}\\{}{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..],
                cs.join("\\"),
                if trailing { "\\" } else { "" }
            ))
        });
    prop_oneof![drive, volume]
}

fn any_path() -> impl Strategy<Value = NtPath> {
    prop_oneof![linux_path(), windows_path()]
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        (any_path(), any_path()).prop_map(|(s, d)| Operation::move_file(s, d)),
        (any_path(), any::<bool>()).prop_map(|(p, empty)| Operation::DeleteFile {
            path: p,
            unused: if empty {
                UnusedField::Empty
            } else {
                UnusedField::Unused
            },
        }),
        (any_path(), "[A-Z0-9~_]{1,8}(\\.[A-Z0-9]{1,3})?")
            .prop_map(|(p, n)| Operation::set_short_name(p, n)),
    ]
}

fn status() -> impl Strategy<Value = Status> {
    prop_oneof![
        Just(Status::NotExecuted),
        any::<u32>().prop_map(Status::Code)
    ]
}

fn records() -> impl Strategy<Value = Vec<(Operation, Status)>> {
    prop::collection::vec((operation(), status()), 0..12)
}

fn valid_file() -> impl Strategy<Value = Vec<u8>> {
    records().prop_map(|rs| encode(rs.iter().map(|(o, s)| (o, *s))))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn writer_then_parser_round_trips(rs in records()) {
        let bytes = encode(rs.iter().map(|(o, s)| (o, *s)));
        let parsed = parse(&bytes).unwrap();
        prop_assert_eq!(parsed.len(), rs.len());
        for (p, (o, s)) in parsed.iter().zip(&rs) {
            prop_assert_eq!(&p.operation, o);
            prop_assert_eq!(p.status, *s);
            // The status offset really points at the status field.
            prop_assert_eq!(
                &bytes[p.status_offset as usize..][..22],
                &s.encode()[..]
            );
        }
        prop_assert_eq!(encode(parsed.iter().map(|r| (&r.operation, r.status))), bytes);
    }

    #[test]
    fn truncations_are_refused_with_an_offset(bytes in valid_file(), cut in any::<prop::sample::Index>()) {
        prop_assume!(bytes.len() > 2);
        let len = cut.index(bytes.len()); // 0..len-1: strictly shorter
        let e = parse(&bytes[..len]).expect_err("a truncated file is never complete");
        prop_assert!(e.offset <= len as u64, "offset {} past length {}", e.offset, len);
    }

    #[test]
    fn bit_flips_never_panic(bytes in valid_file(), flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6)) {
        let mut bytes = bytes;
        for (at, bit) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= 1 << bit;
        }
        match parse(&bytes) {
            Ok(recs) => {
                // Whatever parsed must re-encode to a file that parses the same way.
                let again = encode(recs.iter().map(|r| (&r.operation, r.status)));
                let re = parse(&again).unwrap();
                prop_assert_eq!(re.len(), recs.len());
            }
            Err(e) => prop_assert!(e.offset <= bytes.len() as u64),
        }
    }

    #[test]
    fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = parse(&bytes) {
            prop_assert!(e.offset <= bytes.len() as u64);
        }
    }

    #[test]
    fn byte_changes_never_panic(bytes in valid_file(), edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..5)) {
        let mut bytes = bytes;
        for (at, value, what) in edits {
            let i = at.index(bytes.len().max(1));
            match what {
                0 if i < bytes.len() => bytes[i] = value,
                1 => bytes.insert(i.min(bytes.len()), value),
                _ if i < bytes.len() => { bytes.remove(i); }
                _ => {}
            }
        }
        if let Err(e) = parse(&bytes) {
            prop_assert!(e.offset <= bytes.len() as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Appending one by one through `OperationFile` writes exactly what `encode` writes.
    #[test]
    fn appends_equal_encode(ops in prop::collection::vec(operation(), 0..8)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ops");
        let mut file = OperationFile::open_or_create(&path).unwrap();
        let mut kept = Vec::new();
        for op in ops {
            // Duplicates and deletes of a containing directory are refused; skip those.
            if file.append(op.clone()).is_ok() {
                kept.push(op);
            }
        }
        let expected = encode(kept.iter().map(|o| (o, Status::NotExecuted)));
        prop_assert_eq!(std::fs::read(&path).unwrap(), expected);
        prop_assert_eq!(file.records().len(), kept.len());
    }
}
