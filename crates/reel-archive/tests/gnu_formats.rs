//! The GNU sparse formats other than 1.0 and the vendor keys, as round trips: random sparse
//! files written in the old GNU `S` layout (with extension blocks), in pax 0.0 and in pax
//! 0.1 — each extent padded to blocks as GNU tar writes them, or packed as other writers
//! do — read back as the same map and the same bytes; `SCHILY.*`, `LIBARCHIVE.*` and
//! `RHT.*` keys land where they belong.

mod malicious;

use malicious::{Tar, header, record};
use proptest::prelude::*;
use reel_archive::pax::header::{self as hdr, BLOCK, field};
use reel_archive::pax::{Next, PaxReader};

/// A sparse file: (offset, data) extents in order, and its size.
#[derive(Debug, Clone)]
struct Sparse {
    extents: Vec<(u64, Vec<u8>)>,
    size: u64,
}

/// `aligned`: every extent but the last starts and ends on a 512-byte boundary, as GNU tar
/// writes them (it scans files in blocks); other writers pack arbitrary extents.
fn sparse_strategy(aligned: bool) -> impl Strategy<Value = Sparse> {
    let gaps = proptest::collection::vec(
        (0u64..5000, proptest::collection::vec(any::<u8>(), 1..1500)),
        0..30,
    );
    (gaps, 0u64..3000).prop_map(move |(gaps, tail)| {
        let mut at = 0u64;
        let mut extents = Vec::new();
        let count = gaps.len();
        for (i, (gap, mut data)) in gaps.into_iter().enumerate() {
            at += gap;
            if aligned {
                at = at.div_ceil(512) * 512;
                if i + 1 < count {
                    let want = data.len().div_ceil(512) * 512;
                    data.resize(want, 0x55);
                }
            }
            let len = data.len() as u64;
            extents.push((at, data));
            at += len;
        }
        Sparse {
            extents,
            size: at + tail,
        }
    })
}

/// The member's data: extents each padded to whole blocks, or packed.
fn data_of(s: &Sparse, padded: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, d) in &s.extents {
        out.extend_from_slice(d);
        if padded {
            out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
        }
    }
    out
}

fn stored_len(s: &Sparse, padded: bool) -> u64 {
    if padded {
        // GNU tar's size field is the sum of the extents; the padding follows from it.
        s.extents.iter().map(|(_, d)| d.len() as u64).sum()
    } else {
        data_of(s, false).len() as u64
    }
}

fn map_pairs(s: &Sparse) -> Vec<(u64, u64)> {
    let mut pairs: Vec<(u64, u64)> = s
        .extents
        .iter()
        .map(|(o, d)| (*o, d.len() as u64))
        .collect();
    pairs.push((s.size, 0));
    pairs
}

fn old_gnu(s: &Sparse, padded: bool) -> Vec<u8> {
    let pairs = map_pairs(s);
    let data = data_of(s, padded);
    let mut b = header(b"sparse-file", b'S', stored_len(s, padded), b"");
    b[field::MAGIC.0..field::MAGIC.0 + 8].copy_from_slice(b"ustar  \0");
    let (first, rest) = pairs.split_at(pairs.len().min(4));
    for (i, (o, n)) in first.iter().enumerate() {
        hdr::put_octal(&mut b, (386 + i * 24, 12), *o);
        hdr::put_octal(&mut b, (398 + i * 24, 12), *n);
    }
    b[482] = u8::from(!rest.is_empty());
    hdr::put_octal(&mut b, (483, 12), s.size);
    hdr::set_checksum(&mut b);
    let mut t = Tar::new();
    t.block(&b);
    let chunks: Vec<&[(u64, u64)]> = rest.chunks(21).collect();
    for (ci, chunk) in chunks.iter().enumerate() {
        let mut e = [0u8; BLOCK];
        for (i, (o, n)) in chunk.iter().enumerate() {
            hdr::put_octal(&mut e, (i * 24, 12), *o);
            hdr::put_octal(&mut e, (i * 24 + 12, 12), *n);
        }
        e[504] = u8::from(ci + 1 < chunks.len());
        t.block(&e);
    }
    t.data(&data).file("after", b"after\n").end();
    t.take()
}

fn pax_0(s: &Sparse, padded: bool, minor: u8) -> Vec<u8> {
    let pairs = map_pairs(s);
    let mut body = record("GNU.sparse.size", s.size.to_string().as_bytes());
    body.extend(record(
        "GNU.sparse.numblocks",
        pairs.len().to_string().as_bytes(),
    ));
    let name: &[u8] = if minor == 1 {
        body.extend(record("GNU.sparse.name", b"sparse-file"));
        let map: Vec<String> = pairs
            .iter()
            .flat_map(|(o, n)| [o.to_string(), n.to_string()])
            .collect();
        body.extend(record("GNU.sparse.map", map.join(",").as_bytes()));
        b"GNUSparseFile.1/sparse-file"
    } else {
        for (o, n) in &pairs {
            body.extend(record("GNU.sparse.offset", o.to_string().as_bytes()));
            body.extend(record("GNU.sparse.numbytes", n.to_string().as_bytes()));
        }
        b"sparse-file"
    };
    let mut t = Tar::new();
    t.pax_body(&body);
    let h = header(name, b'0', stored_len(s, padded), b"");
    t.block(&h)
        .data(&data_of(s, padded))
        .file("after", b"after\n")
        .end();
    t.take()
}

/// What the reader gave for the sparse member: its map, size and data, and every name.
struct ReadBack {
    map: Vec<(u64, u64)>,
    size: u64,
    data: Vec<u8>,
    names: Vec<String>,
}

fn read_back(bytes: &[u8]) -> ReadBack {
    let mut pax = PaxReader::new(bytes);
    let mut got = None;
    let mut names = Vec::new();
    while let Some(n) = pax.next_or_damage().unwrap() {
        match n {
            Next::Member(r) => {
                names.push(r.entry.display_path());
                let mut data = Vec::new();
                let mut buf = [0u8; 700];
                loop {
                    let n = pax.read_data(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    data.extend_from_slice(&buf[..n]);
                }
                if r.entry.path == b"sparse-file" {
                    let map = r.entry.meta.sparse.clone().unwrap_or_default();
                    got = Some((
                        map.extents.iter().map(|e| (e.offset, e.len)).collect(),
                        r.entry.meta.size,
                        data,
                    ));
                }
            }
            Next::Damage(d) => panic!("damage: {d}"),
        }
    }
    let (map, size, data) = got.expect("the sparse member");
    ReadBack {
        map,
        size,
        data,
        names,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sparse_formats_round_trip(
        (s, padded) in any::<bool>().prop_flat_map(|padded| (sparse_strategy(padded), Just(padded)))
    ) {
        let want_map: Vec<(u64, u64)> = s.extents.iter().map(|(o, d)| (*o, d.len() as u64)).collect();
        let want_data: Vec<u8> = s.extents.iter().flat_map(|(_, d)| d.clone()).collect();
        for (format, bytes) in [
            ("old GNU", old_gnu(&s, padded)),
            ("pax 0.0", pax_0(&s, padded, 0)),
            ("pax 0.1", pax_0(&s, padded, 1)),
        ] {
            let ReadBack { map, size, data, names } = read_back(&bytes);
            prop_assert_eq!(&map, &want_map, "{} map", format);
            prop_assert_eq!(size, s.size, "{} size", format);
            prop_assert!(data == want_data, "{} data", format);
            prop_assert_eq!(names, vec!["sparse-file".to_string(), "after".to_string()], "{}", format);
        }
    }
}

#[test]
fn vendor_keys_land_where_they_belong() {
    let mut t = Tar::new();
    t.pax(&[
        ("SCHILY.xattr.user.star", b"from star"),
        (
            "SCHILY.acl.access",
            b"user::rw-,user:777:r--:777,group::r--,mask::r--,other::---",
        ),
        ("SCHILY.fflags", b"nodump"),
        ("SCHILY.dev", b"2049"),
        ("SCHILY.ino", b"1234"),
        ("SCHILY.nlink", b"1"),
        ("SCHILY.filetype", b"file"),
        ("LIBARCHIVE.creationtime", b"1500000000.5"),
        ("LIBARCHIVE.xattr.user.lib%3Dweird", b"dmFsdWU"),
        ("RHT.security.selinux", b"system_u:object_r:etc_t:s0"),
        ("VENDOR.unknown", b"kept"),
    ])
    .file("f", b"data")
    .end();
    let bytes = t.take();
    let mut pax = PaxReader::new(&bytes[..]);
    let Some(Next::Member(r)) = pax.next_or_damage().unwrap() else {
        panic!("a member");
    };
    let m = &r.entry.meta;
    let names: Vec<String> = m
        .xattrs
        .iter()
        .map(|x| String::from_utf8_lossy(&x.name).into_owned())
        .collect();
    assert!(names.contains(&"user.star".to_string()), "{names:?}");
    assert!(names.contains(&"user.lib=weird".to_string()), "{names:?}");
    assert!(names.contains(&"security.selinux".to_string()), "{names:?}");
    let weird = m
        .xattrs
        .iter()
        .find(|x| x.name == b"user.lib=weird")
        .unwrap();
    assert_eq!(weird.value, b"value");
    assert!(m.acl_access.is_some());
    assert_ne!(m.flags, 0);
    assert_eq!(m.btime.map(|t| t.secs), Some(1_500_000_000));
    // Identity keys are recognised and dropped; unknown vendor keys are kept as records.
    assert_eq!(
        r.entry.extra,
        vec![("VENDOR.unknown".to_string(), b"kept".to_vec())]
    );
}

#[test]
fn unknown_member_types_are_regular_files_with_a_note() {
    let mut t = Tar::new();
    let h = header(b"odd", b'Q', 3, b"");
    t.block(&h).data(b"abc").end();
    let bytes = t.take();
    let mut pax = PaxReader::new(&bytes[..]);
    let Some(Next::Member(r)) = pax.next_or_damage().unwrap() else {
        panic!("a member");
    };
    assert_eq!(r.entry.meta.kind, reel_stream::FileKind::Regular);
    assert_eq!(r.entry.meta.size, 3);
    assert!(
        r.notes[0].contains("unknown member type 'Q'"),
        "{:?}",
        r.notes
    );
}
