//! The pax codec on random members: what the writer writes the reader gives back, and
//! damaged archives meet a clear error, never a panic.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use proptest::prelude::*;
use reel_archive::Entry;
use reel_archive::pax::PaxWriter;
use reel_stream::{FileKind, FileMeta, Timestamp};
use reel_testkit::pax::{ReadMember, read_members};

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,12}(/[a-z0-9._-]{1,12}){0,3}".prop_map(|s| s.into_bytes()),
        // Long names (pax path), unicode, and arbitrary non-UTF-8 bytes.
        "[a-z]{100,300}".prop_map(|s| s.into_bytes()),
        "[a-zé日本/]{1,80}".prop_map(|s| s.trim_matches('/').replace("//", "/").into_bytes()),
        proptest::collection::vec(1u8..=255, 1..200).prop_map(|mut v| {
            v.retain(|b| *b != b'/');
            if v.is_empty() {
                v.push(b'x');
            }
            v
        }),
    ]
    .prop_filter("non-empty", |v| !v.is_empty())
}

fn time_strategy() -> impl Strategy<Value = Timestamp> {
    (-4_000_000_000i64..20_000_000_000i64, 0u32..1_000_000_000)
        .prop_map(|(s, n)| Timestamp::new(s, n))
}

#[derive(Debug, Clone)]
struct Member {
    entry: Entry,
    content: Vec<u8>,
}

fn member_strategy() -> impl Strategy<Value = Member> {
    (
        name_strategy(),
        0u8..6,
        0u32..0o10000,
        prop_oneof![0u32..70000, Just(0o7777777u32), Just(4_000_000_000u32)],
        prop_oneof![0u32..70000, Just(2_097_152u32)],
        time_strategy(),
        time_strategy(),
        proptest::collection::vec(any::<u8>(), 0..3000),
        prop_oneof![Just(None), "[a-z]{1,40}".prop_map(Some)],
        name_strategy(),
    )
        .prop_map(
            |(path, k, mode, uid, gid, mtime, atime, content, user, link)| {
                let kind = [
                    FileKind::Regular,
                    FileKind::Directory,
                    FileKind::Symlink,
                    FileKind::Fifo,
                    FileKind::CharDevice,
                    FileKind::Regular,
                ][k as usize];
                let mut meta = FileMeta::new(kind, mode);
                meta.uid = uid;
                meta.gid = gid;
                meta.mtime = mtime;
                meta.atime = atime;
                meta.ctime = mtime;
                meta.user = user.clone();
                meta.group = user;
                let mut entry = Entry::new(path, meta);
                let content = match kind {
                    FileKind::Regular if k == 5 => {
                        entry.hardlink = Some(link);
                        Vec::new()
                    }
                    FileKind::Regular => {
                        entry.meta.size = content.len() as u64;
                        entry.extra.push(("REEL.test".into(), b"v=1\n\0x".to_vec()));
                        content
                    }
                    FileKind::Symlink => {
                        entry.meta.symlink_target = Some(OsString::from_vec(link));
                        Vec::new()
                    }
                    FileKind::CharDevice => {
                        entry.meta.rdev = Some((uid % 5000, gid % 3_000_000));
                        Vec::new()
                    }
                    _ => Vec::new(),
                };
                Member { entry, content }
            },
        )
}

fn write_archive(members: &[Member]) -> (Vec<u8>, Vec<u64>) {
    let mut w = PaxWriter::new(Vec::new());
    let mut offsets = Vec::new();
    let mut buf = vec![0u8; 4096];
    for m in members {
        offsets.push(w.write_header(&m.entry).unwrap());
        if m.entry.data_len() > 0 {
            let mut src: &[u8] = &m.content;
            w.copy_data(&mut src, &mut buf, |_| {}).unwrap();
        }
    }
    (w.finish().unwrap(), offsets)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn members_round_trip(members in proptest::collection::vec(member_strategy(), 1..12)) {
        let (bytes, offsets) = write_archive(&members);
        prop_assert_eq!(bytes.len() % 512, 0);
        let read = read_members(&bytes).unwrap();
        prop_assert_eq!(read.len(), members.len());
        for (ReadMember { header_offset: off, entry: got, content }, (want_off, m)) in read.iter().zip(offsets.iter().zip(&members)) {
            prop_assert_eq!(off, want_off);
            let want = &m.entry;
            prop_assert_eq!(&got.path, &want.path);
            prop_assert_eq!(got.meta.kind, want.meta.kind);
            prop_assert_eq!(got.meta.mode, want.meta.mode);
            prop_assert_eq!(got.meta.uid, want.meta.uid);
            prop_assert_eq!(got.meta.gid, want.meta.gid);
            prop_assert_eq!(got.meta.mtime, want.meta.mtime);
            prop_assert_eq!(&got.meta.user, &want.meta.user);
            prop_assert_eq!(&got.hardlink, &want.hardlink);
            prop_assert_eq!(&got.meta.symlink_target, &want.meta.symlink_target);
            prop_assert_eq!(got.meta.rdev, want.meta.rdev);
            prop_assert_eq!(&got.extra, &want.extra);
            prop_assert_eq!(content, &m.content);
        }
    }

    #[test]
    fn truncated_archives_error_or_stop_never_panic(
        members in proptest::collection::vec(member_strategy(), 1..6),
        cut in any::<proptest::sample::Index>(),
    ) {
        let (bytes, _) = write_archive(&members);
        let cut = cut.index(bytes.len());
        let _ = read_members(&bytes[..cut]);
    }

    #[test]
    fn damaged_archives_error_never_panic(
        members in proptest::collection::vec(member_strategy(), 1..6),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let (mut bytes, _) = write_archive(&members);
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v | 1;
        }
        if let Err(e) = read_members(&bytes) {
            // Every error names where.
            let msg = e.to_string();
            prop_assert!(msg.contains("byte"), "{}", msg);
        }
    }

    #[test]
    fn garbage_is_refused_with_an_offset(garbage in proptest::collection::vec(any::<u8>(), 512..4096)) {
        prop_assume!(!garbage[..512].iter().all(|b| *b == 0));
        let r = read_members(&garbage);
        prop_assert!(r.is_err());
    }
}

#[test]
fn lying_pax_lengths_are_refused() {
    for records in [
        &b"99 path=x\n"[..],
        b"5 path=x\n",
        b"x path=y\n",
        b"9 pathx\n",
    ] {
        let err = reel_archive::pax::parse_pax_records(records, 512).unwrap_err();
        assert!(err.to_string().contains("byte 512"), "{err}");
    }
}
