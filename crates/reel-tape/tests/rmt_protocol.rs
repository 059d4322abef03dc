//! The rmt request parser and server on bad input: random bytes, truncations, malformed
//! commands. Never a panic, bounded memory, an `E` reply for what cannot be done.

use std::io::{BufReader, Cursor};

use proptest::prelude::*;
use reel_tape::TapeError;
use reel_tape::rmt::protocol::*;
use reel_tape::rmt::{ServerConfig, SessionEnd, serve};

/// Parses everything; checks every request stays within the limits.
fn parse_all(bytes: &[u8]) -> usize {
    let mut r = RequestReader::new(BufReader::with_capacity(64, Cursor::new(bytes)));
    let mut n = 0;
    loop {
        match r.next_request().expect("reading from memory") {
            Incoming::End => return n,
            Incoming::Bad(bad) => {
                assert!(bad.message.len() < 2000);
                assert!(!bad.message.contains('\n'), "{}", bad.message);
                if bad.fatal {
                    return n;
                }
            }
            Incoming::Request(req) => {
                match &req {
                    Request::Open { device, .. } => assert!(device.len() <= MAX_LINE),
                    Request::Reel { line } => assert!(line.len() <= MAX_LINE),
                    Request::Read { count } | Request::Write { count } => {
                        assert!(*count <= MAX_RECORD)
                    }
                    _ => {}
                }
                if let Request::Write { count } = req {
                    // Skip the payload as the server would.
                    let mut sink = vec![0u8; count.min(1 << 16)];
                    let mut left = count;
                    while left > 0 {
                        let k = left.min(sink.len());
                        if std::io::Read::read_exact(r.input(), &mut sink[..k]).is_err() {
                            return n;
                        }
                        left -= k;
                    }
                }
            }
        }
        n += 1;
        assert!(n < 1_000_000);
    }
}

/// Runs a server session on `input` in a temp root with one cartridge `c`; returns the
/// output and how it ended.
fn session(input: &[u8]) -> (Vec<u8>, SessionEnd, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    reel_testkit::new_cartridge(root.path(), "c", 16 << 20);
    let mut out = Vec::new();
    let end = serve(
        Cursor::new(input.to_vec()),
        &mut out,
        &ServerConfig::new(root.path()),
    )
    .expect("a session on memory streams never fails with an I/O error");
    (out, end, root)
}

/// The replies of a session's output (data of `A` replies to R and S skipped by length
/// where the test knows them).
fn replies(out: &[u8]) -> Vec<Reply> {
    let mut r = ReplyReader::new(BufReader::new(Cursor::new(out)));
    let mut v = Vec::new();
    while let Ok(reply) = r.reply() {
        v.push(reply);
    }
    v
}

fn is_error(r: &Reply) -> bool {
    matches!(r, Reply::Err { errno, message } if *errno > 0 && !message.is_empty())
}

const SCRIPT: &[u8] = b"Oc\n66 O_RDWR|O_CREAT\nI-1\n0\nW5\nhelloI0\n1\nW3\nabcI5\n1\nR100\nsFsBSI2\n1\nR100\nXposition logical\nC\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
        parse_all(&bytes);
    }

    #[test]
    fn random_lines_of_commands_never_panic(
        lines in proptest::collection::vec(
            (prop::sample::select(b"OCLRWISisX?\n".to_vec()), "[-0-9A-Za-z_|./ ]{0,30}"),
            0..40,
        )
    ) {
        let mut bytes = Vec::new();
        for (c, rest) in lines {
            bytes.push(c);
            bytes.extend_from_slice(rest.as_bytes());
            bytes.push(b'\n');
        }
        parse_all(&bytes);
        let (_out, _end, _root) = session(&bytes);
    }

    #[test]
    fn random_bytes_never_panic_the_server(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (out, _end, root) = session(&bytes);
        // Whatever came in, the replies are well-formed A/E lines (A replies to R and S
        // carry data the reply reader cannot skip, so only the first one is checked).
        if let Some(first) = replies(&out).first() {
            let well_formed = matches!(first, Reply::Ok(_) | Reply::Err { .. });
            prop_assert!(well_formed);
        }
        // Nothing but the cartridge in the root (garbage creates no cartridge elsewhere).
        for e in std::fs::read_dir(root.path()).unwrap() {
            let name = e.unwrap().file_name();
            prop_assert!(name.to_string_lossy().ends_with(".vtape"), "{:?}", name);
        }
    }

    #[test]
    fn every_truncation_of_a_session_is_handled(cut in 0..SCRIPT.len(), flip in any::<(usize, u8)>()) {
        let (_out, _end, _root) = session(&SCRIPT[..cut]);
        let mut flipped = SCRIPT.to_vec();
        let i = flip.0 % flipped.len();
        flipped[i] ^= flip.1 | 1;
        let (_out, _end, _root) = session(&flipped);
    }

    #[test]
    fn open_flags_parse_like_gnu_rmt(write in any::<bool>(), read in any::<bool>(), create in any::<bool>(), numeric in any::<bool>()) {
        let access = match (read, write) {
            (true, true) | (false, false) => libc::O_RDWR,
            (false, true) => libc::O_WRONLY,
            (true, false) => libc::O_RDONLY,
        };
        let bits = access | if create { libc::O_CREAT } else { 0 };
        let mut names = vec![match access {
            libc::O_RDWR => "O_RDWR",
            libc::O_WRONLY => "O_WRONLY",
            _ => "O_RDONLY",
        }];
        if create {
            names.push("CREAT");
        }
        let text = if numeric { format!("{bits}") } else { format!("{bits} {}", names.join("|")) };
        let f = parse_open_flags(text.as_bytes()).unwrap();
        prop_assert_eq!(f.create, create);
        prop_assert_eq!(f.write, access != libc::O_RDONLY);
        prop_assert_eq!(f.read, access != libc::O_WRONLY);
    }
}

#[test]
fn a_session_script_gets_the_replies_of_a_tape() {
    let (out, end, _root) = session(b"Oc\n66 O_RDWR|O_CREAT\nW5\nhelloI5\n1\nW3\nabcI6\n1\nR100\n");
    assert_eq!(end, SessionEnd::Done);
    assert_eq!(
        out,
        b"A0\nA5\nA0\nA3\nA0\nA5\nhello".to_vec(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn tape_errors_cross_the_wire_intact() {
    let errors = vec![
        TapeError::EndOfMedia,
        TapeError::EarlyWarning,
        TapeError::FilemarkDetected,
        TapeError::BeginningOfMedia,
        TapeError::SetmarkDetected,
        TapeError::NoDataDetected,
        TapeError::PartitionFailure("p".into()),
        TapeError::InvalidBlockLength("b".into()),
        TapeError::DeviceNotPartitioned,
        TapeError::UnableToLockMedia,
        TapeError::UnableToUnloadMedia,
        TapeError::MediaChanged,
        TapeError::BusReset,
        TapeError::NoMediaInDrive,
        TapeError::EomOverflow("o".into()),
        TapeError::DeviceRequiresCleaning,
        TapeError::WriteProtect("w\nx".into()),
        TapeError::NotReady("n".into()),
        TapeError::Crc("c".into()),
        TapeError::NotSupported("s".into()),
        TapeError::InvalidParameter("i".into()),
        TapeError::MoreData {
            record_len: 1000,
            copied: 16,
        },
        TapeError::Io {
            path: "x".into(),
            source: std::io::Error::other("boom"),
        },
    ];
    for e in errors {
        let line = error_to_wire(&e);
        assert!(!line.contains('\n'));
        let back = error_from_wire(&line, "host:cart");
        assert_eq!(back.code(), e.code(), "{e:?} -> {line} -> {back:?}");
        assert_eq!(
            std::mem::discriminant(&back),
            std::mem::discriminant(&e),
            "{line}"
        );
        if let TapeError::MoreData { record_len, copied } = back {
            assert_eq!((record_len, copied), (1000, 16));
        }
    }
    // Garbage from a server is an I/O error, not a panic.
    let e = error_from_wire("garbage", "host:cart");
    assert_eq!(e.code_name(), "ERROR_IO_DEVICE");
}

/// Each malformed request gets an `E` reply, and the session stays usable where the input
/// can still be followed (a valid request after it is answered).
#[test]
fn malformed_requests_get_an_error_reply() {
    let outside = tempfile::tempdir().unwrap();
    reel_testkit::new_cartridge(outside.path(), "secret", 16 << 20);
    let secret = outside.path().join("secret.vtape");
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("garbage bytes", b"\x00\xff\xfegarbage\n".to_vec(), true),
        ("an unknown command letter", b"Qwhat\n".to_vec(), true),
        (
            "a huge read count",
            b"R99999999999999999999999\n".to_vec(),
            true,
        ),
        (
            "a read above the record limit",
            b"R4294967296\n".to_vec(),
            true,
        ),
        ("a negative read count", b"R-5\n".to_vec(), true),
        ("a huge write count", b"W99999999999\n".to_vec(), false),
        (
            "a write count that is no number",
            b"Wlots\n".to_vec(),
            false,
        ),
        ("an unknown MTIOCTOP code", b"I999\n1\n".to_vec(), true),
        (
            "a huge MTIOCTOP count",
            b"I5\n99999999999999\n".to_vec(),
            true,
        ),
        (
            "an ioctl count that is no number",
            b"I1\nabc\n".to_vec(),
            true,
        ),
        (
            "an unknown extended ioctl",
            b"I-1\n0\ni77\n1\n".to_vec(),
            true,
        ),
        ("an unknown status field", b"s?".to_vec(), true),
        (
            "an invalid seek direction",
            b"Lsideways\n0\n".to_vec(),
            true,
        ),
        ("an invalid open mode", b"Oc\nBOGUS|MODE\n".to_vec(), true),
        ("a path with ..", b"O../x\n0\n".to_vec(), true),
        (
            "an absolute path outside the root",
            format!("O{}\n0\n", secret.display()).into_bytes(),
            true,
        ),
        (
            "/etc/passwd, with O_CREAT",
            b"O/etc/passwd\n66 O_RDWR|O_CREAT\n".to_vec(),
            true,
        ),
        (
            "a new cartridge outside the root",
            format!("O{}/new.vtape\n66\n", outside.path().display()).into_bytes(),
            true,
        ),
        (
            "a line longer than the limit",
            [b"O".to_vec(), vec![b'a'; 10_000], b"\n".to_vec()].concat(),
            true,
        ),
        (
            "an unknown reel request",
            b"I-1\n0\nXfrobnicate\n".to_vec(),
            true,
        ),
        (
            "a reel read of a huge count",
            b"I-1\n0\nXread 999999999999\n".to_vec(),
            true,
        ),
        (
            "a reel load outside the root",
            format!("Xload {}\n", secret.display()).into_bytes(),
            true,
        ),
        ("a premature end of write data", b"W10\nabc".to_vec(), false),
    ];
    for (what, bad, continues) in cases {
        // With the cartridge open, so the request itself is what fails.
        let mut input = b"Oc\n2\n".to_vec();
        input.extend_from_slice(&bad);
        // A failed open closes the device, as GNU's rmt does: open again to check.
        input.extend_from_slice(b"Oc\n2\n");
        let (out, end, root) = session(&input);
        let r = replies(&out);
        assert_eq!(r.first(), Some(&Reply::Ok(0)), "{what}: the open");
        let errors: Vec<&Reply> = r[1..].iter().filter(|x| is_error(x)).collect();
        assert!(
            !errors.is_empty(),
            "{what}: no E reply in {:?}",
            String::from_utf8_lossy(&out)
        );
        if continues {
            assert_eq!(r.last(), Some(&Reply::Ok(0)), "{what}: the session goes on");
            assert_eq!(end, SessionEnd::Done, "{what}");
        } else {
            assert!(
                matches!(end, SessionEnd::Desynchronized(_)),
                "{what}: {end:?}"
            );
        }
        // Nothing was created or opened outside the root.
        assert!(!outside.path().join("new.vtape").exists(), "{what}");
        let names: Vec<String> = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["c.vtape".to_string()], "{what}");
    }
    // The cartridge outside the root was never opened (no drive state was written there).
    assert!(!secret.join("drive.toml").exists());
    // A symlink inside the root that leads outside is refused too.
    let (_, _, root) = session(b"");
    std::os::unix::fs::symlink(&secret, root.path().join("link.vtape")).unwrap();
    let mut out = Vec::new();
    serve(
        Cursor::new(b"Olink\n0\n".to_vec()),
        &mut out,
        &ServerConfig::new(root.path()),
    )
    .unwrap();
    let r = replies(&out);
    assert!(
        matches!(&r[0], Reply::Err { errno, .. } if *errno == libc::EACCES),
        "{r:?}"
    );
    assert!(!secret.join("drive.toml").exists());
}

/// Closing after a write adds nothing by default; with `mark_on_close`, a filemark as st.
#[test]
fn a_filemark_on_close_only_when_asked() {
    use reel_tape::TapeDrive;
    use reel_tape::vtape::VirtualDrive;
    for mark in [false, true] {
        let root = tempfile::tempdir().unwrap();
        let cart = reel_testkit::new_cartridge(root.path(), "c", 16 << 20);
        let mut config = ServerConfig::new(root.path());
        config.mark_on_close = mark;
        let mut out = Vec::new();
        serve(
            Cursor::new(b"Oc\n2\nW5\nhelloC\n".to_vec()),
            &mut out,
            &config,
        )
        .unwrap();
        assert_eq!(out, b"A0\nA5\nA0\n");
        let mut d = VirtualDrive::open(&cart).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(d.read(&mut buf).unwrap(), 5);
        let next = d.read(&mut buf).unwrap_err();
        let want = if mark {
            "ERROR_FILEMARK_DETECTED"
        } else {
            "ERROR_NO_DATA_DETECTED"
        };
        assert_eq!(next.code_name(), want, "mark_on_close = {mark}");
    }
}
