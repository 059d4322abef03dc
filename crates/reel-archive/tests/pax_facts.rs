//! The pax side of the file facts on random members: xattrs, ACLs, chattr flags and GNU
//! sparse 1.0 maps round-trip through the writer and reader; damaged or cut archives give
//! an error naming the byte offset, never a panic. GNU tar reads reel's sparse members.

use std::process::Command;

use proptest::prelude::*;
use reel_archive::Entry;
use reel_archive::pax::PaxWriter;
use reel_stream::{Acl, Extent, FileKind, FileMeta, NameCache, SparseMap, Timestamp, Xattr};
use reel_testkit::pax::{ReadMember, read_members};

#[derive(Debug, Clone)]
struct Member {
    entry: Entry,
    /// The archive content: the whole file, or the data extents of a sparse one.
    content: Vec<u8>,
}

fn xattrs_strategy() -> impl Strategy<Value = Vec<Xattr>> {
    proptest::collection::btree_map(
        prop_oneof![
            "user\\.[a-z]{1,12}".prop_map(String::into_bytes),
            "trusted\\.[a-z]{1,8}".prop_map(String::into_bytes),
            "security\\.[a-z]{1,8}".prop_map(String::into_bytes),
            // Names only LIBARCHIVE.xattr can carry.
            proptest::collection::vec(1u8..=255, 1..20).prop_map(|mut v| {
                v.retain(|b| *b != 0);
                [b"user.".to_vec(), v, b"=%".to_vec()].concat()
            }),
        ],
        proptest::collection::vec(any::<u8>(), 0..300),
        0..6,
    )
    .prop_map(|m| m.into_iter().map(|(n, v)| Xattr::new(n, v)).collect())
}

fn acl_strategy() -> impl Strategy<Value = Option<Acl>> {
    prop_oneof![
        Just(None),
        (0u8..8, 0u8..8, 1000u32..70000, 0u8..8).prop_map(|(u, g, id, m)| {
            let text = format!(
                "user::{},user:{id}:{}:{id},group::{},mask::{},other::r--",
                perm(u),
                perm(m),
                perm(g),
                perm(m | g)
            );
            Some(Acl::from_text(&text, &mut NameCache::new()).unwrap())
        }),
    ]
}

fn perm(p: u8) -> String {
    format!(
        "{}{}{}",
        if p & 4 != 0 { 'r' } else { '-' },
        if p & 2 != 0 { 'w' } else { '-' },
        if p & 1 != 0 { 'x' } else { '-' }
    )
}

fn sparse_strategy() -> impl Strategy<Value = (u64, SparseMap)> {
    (
        proptest::collection::vec((0u64..100_000, 1u64..3000), 0..6),
        0u64..1_000_000,
    )
        .prop_map(|(pieces, tail)| {
            let mut extents = Vec::new();
            let mut at = 0u64;
            for (gap, len) in pieces {
                at += gap;
                extents.push(Extent { offset: at, len });
                at += len;
            }
            (at + tail, SparseMap { extents })
        })
}

fn member_strategy() -> impl Strategy<Value = Member> {
    (
        "[a-z]{1,10}(/[a-z0-9]{1,10}){0,2}",
        0u8..3,
        xattrs_strategy(),
        acl_strategy(),
        prop_oneof![Just(0u32), Just(0x10u32), Just(0x70u32), Just(0x400u32)],
        sparse_strategy(),
        proptest::collection::vec(any::<u8>(), 0..2000),
    )
        .prop_map(|(path, k, xattrs, acl, flags, (size, map), content)| {
            let kind = [FileKind::Regular, FileKind::Directory, FileKind::Regular][k as usize];
            let mut meta = FileMeta::new(kind, 0o640);
            meta.mtime = Timestamp::new(1_700_000_000, 123);
            meta.xattrs = xattrs;
            meta.acl_access = acl;
            meta.flags = flags;
            let mut entry_content = Vec::new();
            if k == 0 {
                meta.size = content.len() as u64;
                entry_content = content;
            } else if k == 2 {
                meta.size = size;
                entry_content = reel_testkit::pseudo_random(size, map.data_len() as usize);
                meta.sparse = Some(map);
            }
            Member {
                entry: Entry::new(path, meta),
                content: entry_content,
            }
        })
}

fn write_archive(members: &[Member]) -> Vec<u8> {
    let mut w = PaxWriter::new(Vec::new());
    let mut buf = vec![0u8; 4096];
    for m in members {
        w.write_header(&m.entry).unwrap();
        if m.entry.meta.kind == FileKind::Regular {
            let mut src: &[u8] = &m.content;
            w.copy_data(&mut src, &mut buf, |_| {}).unwrap();
        }
    }
    w.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn facts_round_trip(members in proptest::collection::vec(member_strategy(), 1..8)) {
        let bytes = write_archive(&members);
        let read = read_members(&bytes).unwrap();
        prop_assert_eq!(read.len(), members.len());
        for (ReadMember { entry: got, content, .. }, m) in read.iter().zip(&members) {
            let want = &m.entry.meta;
            prop_assert_eq!(&got.path, &m.entry.path);
            prop_assert_eq!(&got.meta.xattrs, &want.xattrs);
            prop_assert_eq!(&got.meta.acl_access, &want.acl_access);
            prop_assert_eq!(got.meta.flags, want.flags);
            prop_assert_eq!(got.meta.size, want.size);
            prop_assert_eq!(
                got.meta.sparse.clone().map(|s| s.compact()),
                want.sparse.clone().map(|s| s.compact())
            );
            prop_assert_eq!(content, &m.content);
            prop_assert!(got.extra.is_empty(), "{:?}", got.extra);
        }
    }

    #[test]
    fn cut_and_damaged_archives_never_panic(
        members in proptest::collection::vec(member_strategy(), 1..5),
        cut in any::<proptest::sample::Index>(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), 1u8..=255), 0..6),
    ) {
        let mut bytes = write_archive(&members);
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= v;
        }
        let cut = cut.index(bytes.len());
        if let Err(e) = read_members(&bytes[..cut]) {
            let msg = e.to_string();
            prop_assert!(msg.contains("byte"), "{}", msg);
        }
    }
}

#[test]
fn sparse_map_lies_are_refused_with_an_offset() {
    let mut meta = FileMeta::new(FileKind::Regular, 0o644);
    meta.size = 10_000;
    meta.sparse = Some(SparseMap {
        extents: vec![Extent {
            offset: 100,
            len: 500,
        }],
    });
    let m = Member {
        entry: Entry::new("f", meta),
        content: vec![7; 500],
    };
    let good = write_archive(&[m]);
    // The map block is the second block after the pax header block and its records.
    let map_at = good
        .windows(10)
        .position(|w| w == b"2\n100\n500\n")
        .expect("map");
    assert_eq!(map_at % 512, 0);
    for (bad, what) in [
        (&b"2\n100\n900\n"[..], "lists 900 bytes"),
        (b"2\n1x0\n", "unexpected"),
    ] {
        let mut b = good.clone();
        b[map_at..map_at + bad.len()].copy_from_slice(bad);
        let err = read_members(&b).unwrap_err().to_string();
        assert!(
            err.contains(&format!("byte {map_at}")) && err.contains(what),
            "{err}"
        );
    }
}

#[test]
fn gnu_tar_extracts_reel_sparse_members_sparse() {
    if !reel_testkit::require_tool("tar") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut meta = FileMeta::new(FileKind::Regular, 0o644);
    meta.size = 1 << 40;
    meta.sparse = Some(SparseMap {
        extents: vec![
            Extent {
                offset: 4096,
                len: 5000,
            },
            Extent {
                offset: 1 << 39,
                len: 8192,
            },
        ],
    });
    let data = reel_testkit::pseudo_random(5, 13_192);
    let m = Member {
        entry: Entry::new("dir/huge", meta),
        content: data.clone(),
    };
    let tar = dir.path().join("a.tar");
    std::fs::write(&tar, write_archive(&[m])).unwrap();
    let listing = reel_testkit::run_ok(Command::new("tar").arg("-tvf").arg(&tar));
    assert!(
        listing.contains("dir/huge") && listing.contains("1099511627776"),
        "{listing}"
    );
    reel_testkit::run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(dir.path()),
    );
    let out = dir.path().join("dir/huge");
    let md = std::fs::metadata(&out).unwrap();
    assert_eq!(md.len(), 1 << 40);
    use std::os::unix::fs::{FileExt, MetadataExt};
    assert!(md.blocks() < 200, "{} blocks", md.blocks());
    let f = std::fs::File::open(&out).unwrap();
    let mut b = vec![0u8; 5000];
    f.read_exact_at(&mut b, 4096).unwrap();
    assert!(b == data[..5000], "first extent differs");
    let mut b = vec![0u8; 8192];
    f.read_exact_at(&mut b, 1 << 39).unwrap();
    assert!(b == data[5000..], "second extent differs");
    if reel_testkit::require_tool("bsdtar") {
        let bsd = dir.path().join("bsd");
        std::fs::create_dir(&bsd).unwrap();
        reel_testkit::run_ok(
            Command::new("bsdtar")
                .arg("-xf")
                .arg(&tar)
                .arg("-C")
                .arg(&bsd),
        );
        let md = std::fs::metadata(bsd.join("dir/huge")).unwrap();
        assert_eq!(md.len(), 1 << 40);
        assert!(md.blocks() < 200, "bsdtar: {} blocks", md.blocks());
    }
}
