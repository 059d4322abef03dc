//! The reader on archives other programs wrote: GNU tar in every format (with sparse files
//! in each of GNU's sparse formats, xattrs and ACLs, multi-volume archives), bsdtar in every
//! format and Python's tarfile in every format. Each archive is read member by member and
//! every member checked against the files it was made from.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use reel_archive::pax::{Next, PaxReader};
use reel_stream::FileKind;
use reel_testkit::{pseudo_random, require_tool, run_ok, write_file};

/// What the reader gave for one member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    kind: FileKind,
    size: u64,
    content: Vec<u8>,
    symlink: Option<Vec<u8>>,
    hardlink: Option<Vec<u8>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    acl_users: Vec<u32>,
    sparse: bool,
    mode: u32,
    mtime: i64,
}

/// Reads every member of an archive (given as its volumes), with its content laid out at its
/// logical offsets. Returns the members and the damage reported.
fn read_volumes(volumes: Vec<Vec<u8>>) -> (BTreeMap<String, Seen>, Vec<String>) {
    let mut rest = volumes.into_iter();
    let first = rest.next().expect("one volume");
    let mut pax: PaxReader<std::io::Cursor<Vec<u8>>> = PaxReader::new(std::io::Cursor::new(first))
        .with_next_volume(Box::new(move |_| Ok(rest.next().map(std::io::Cursor::new))));
    let mut out = BTreeMap::new();
    let mut damage = Vec::new();
    while let Some(next) = pax.next_or_damage().expect("no I/O error") {
        let read = match next {
            Next::Member(r) => r,
            Next::Damage(d) => {
                damage.push(d.to_string());
                continue;
            }
        };
        let e = read.entry;
        let mut data = Vec::new();
        let mut buf = vec![0u8; 7000];
        let mut failed = false;
        loop {
            match pax.read_data(&mut buf) {
                Ok(0) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
                Err(err) => {
                    damage.push(format!("{}: {err}", e.display_path()));
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            continue;
        }
        let content = match &e.meta.sparse {
            Some(map) => {
                let mut full = vec![0u8; e.meta.size as usize];
                let mut at = 0usize;
                for x in &map.extents {
                    let o = x.offset as usize;
                    full[o..o + x.len as usize].copy_from_slice(&data[at..at + x.len as usize]);
                    at += x.len as usize;
                }
                assert_eq!(at, data.len(), "{}: sparse data length", e.display_path());
                full
            }
            None => data,
        };
        let seen = Seen {
            kind: e.meta.kind,
            size: e.meta.size,
            content,
            symlink: e
                .meta
                .symlink_target
                .as_ref()
                .map(|t| std::os::unix::ffi::OsStrExt::as_bytes(t.as_os_str()).to_vec()),
            hardlink: e.hardlink.clone(),
            xattrs: e
                .meta
                .xattrs
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
            acl_users: e
                .meta
                .acl_access
                .as_ref()
                .map(|a| {
                    a.entries
                        .iter()
                        .filter_map(|x| match &x.tag {
                            reel_stream::AclTag::User { id, .. } => Some(*id),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            sparse: e.meta.sparse.is_some(),
            mode: e.meta.mode,
            mtime: e.meta.mtime.secs,
        };
        out.insert(e.display_path(), seen);
    }
    (out, damage)
}

fn read_archive(bytes: Vec<u8>) -> (BTreeMap<String, Seen>, Vec<String>) {
    read_volumes(vec![bytes])
}

const LONG_DIR: &str = "long-names-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb/cccccccccccccccccccccccccccccccccccccccccccccc";

/// The tree every tool archives: regular files, a long name, a symlink, a hard link, a
/// sparse file, xattrs and an ACL.
fn make_source(root: &Path) {
    write_file(&root.join("dir/small.txt"), b"hello\n");
    write_file(&root.join("dir/empty"), b"");
    write_file(&root.join("dir/odd"), &pseudo_random(1, 700));
    write_file(
        &root.join(LONG_DIR).join("file-with-a-long-name.bin"),
        &pseudo_random(2, 3000),
    );
    std::os::unix::fs::symlink("dir/small.txt", root.join("link")).unwrap();
    std::fs::hard_link(root.join("dir/odd"), root.join("hard")).unwrap();
    // A sparse file: data at 0, at 512 KiB, and a hole at the end.
    let f = std::fs::File::create(root.join("sparse")).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&pseudo_random(3, 4096), 0).unwrap();
    f.write_all_at(&pseudo_random(4, 5000), 512 << 10).unwrap();
    f.set_len(1 << 20).unwrap();
    drop(f);
    if require_tool("setfattr") && require_tool("setfacl") {
        run_ok(
            Command::new("setfattr")
                .args(["-n", "user.colour", "-v", "blue"])
                .arg(root.join("dir/small.txt")),
        );
        run_ok(
            Command::new("setfacl")
                .args(["-m", "u:4321:r"])
                .arg(root.join("dir/odd")),
        );
    }
}

const TOP: [&str; 6] = [
    "dir",
    "long-names-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "link",
    "hard",
    "sparse",
    "dir/small.txt",
];

/// Checks what was read against the source tree. `long`: the format stores long names;
/// `hard_first`: which of the two hard-linked names the tool stored the data under.
fn check(
    tool: &str,
    seen: &BTreeMap<String, Seen>,
    src: &Path,
    long: bool,
    xattrs: bool,
    sparse: bool,
) {
    let file = |p: &str| {
        seen.get(p).unwrap_or_else(|| {
            panic!(
                "{tool}: no member {p}; got {:?}",
                seen.keys().collect::<Vec<_>>()
            )
        })
    };
    for p in ["dir/small.txt", "dir/empty", "dir/odd"] {
        let s = file(p);
        let want = std::fs::read(src.join(p)).unwrap();
        if s.hardlink.is_none() {
            assert_eq!(s.kind, FileKind::Regular, "{tool}: {p}");
            assert_eq!(s.content, want, "{tool}: content of {p}");
            assert_eq!(s.size, want.len() as u64, "{tool}: size of {p}");
        }
        assert_eq!(s.mode, 0o644, "{tool}: mode of {p}");
        let mtime = std::fs::metadata(src.join(p)).unwrap();
        assert_eq!(
            s.mtime,
            std::os::unix::fs::MetadataExt::mtime(&mtime),
            "{tool}: mtime of {p}"
        );
    }
    assert_eq!(file("dir").kind, FileKind::Directory, "{tool}");
    assert_eq!(file("link").kind, FileKind::Symlink, "{tool}");
    assert_eq!(
        file("link").symlink.as_deref(),
        Some(&b"dir/small.txt"[..]),
        "{tool}"
    );
    // One of the two names of the hard-linked file carries the data, the other links to it.
    let (odd, hard) = (file("dir/odd"), file("hard"));
    assert!(
        odd.hardlink.as_deref() == Some(b"hard") || hard.hardlink.as_deref() == Some(b"dir/odd"),
        "{tool}: hard link: {odd:?} {hard:?}"
    );
    let sp = file("sparse");
    let want = std::fs::read(src.join("sparse")).unwrap();
    assert_eq!(sp.size, 1 << 20, "{tool}: sparse size");
    assert!(sp.content == want, "{tool}: sparse content");
    if sparse {
        assert!(sp.sparse, "{tool}: sparse member read as sparse");
    }
    if long {
        let p = format!("{LONG_DIR}/file-with-a-long-name.bin");
        assert_eq!(
            file(&p).content,
            std::fs::read(src.join(&p)).unwrap(),
            "{tool}: long name"
        );
    }
    if xattrs {
        let small = file("dir/small.txt");
        assert!(
            small
                .xattrs
                .contains(&(b"user.colour".to_vec(), b"blue".to_vec())),
            "{tool}: xattrs {:?}",
            small.xattrs
        );
        let odd = if odd.hardlink.is_none() { odd } else { hard };
        assert_eq!(odd.acl_users, vec![4321], "{tool}: ACL");
    }
}

fn tool_archive(src: &Path, out: &Path, program: &str, args: &[&str], members: &[&str]) -> Vec<u8> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .arg("-f")
        .arg(out)
        .arg("-C")
        .arg(src)
        .args(members);
    run_ok(&mut cmd);
    std::fs::read(out).unwrap()
}

#[test]
fn gnu_tar_every_format() {
    if !require_tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    for (format, long, xattrs, sparse) in [
        ("gnu", true, false, true),
        ("oldgnu", true, false, true),
        ("posix", true, true, true),
        ("ustar", true, false, false),
        ("v7", false, false, false),
    ] {
        let mut args = vec!["-c".to_string(), format!("--format={format}")];
        if sparse {
            args.push("--sparse".into());
        }
        if xattrs {
            args.extend([
                "--xattrs".into(),
                "--xattrs-include=*".into(),
                "--acls".into(),
            ]);
        }
        let members: Vec<&str> = if long {
            TOP[..5].to_vec()
        } else {
            vec!["dir", "link", "hard", "sparse"]
        };
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let bytes = tool_archive(
            &src,
            &tmp.path().join(format!("{format}.tar")),
            "tar",
            &args,
            &members,
        );
        let (seen, damage) = read_archive(bytes);
        assert!(damage.is_empty(), "GNU tar --format={format}: {damage:?}");
        check(
            &format!("GNU tar --format={format}"),
            &seen,
            &src,
            long,
            xattrs,
            sparse,
        );
    }
}

#[test]
fn gnu_tar_every_sparse_format() {
    if !require_tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    // A sparse file with many extents: the old GNU header spills into extension blocks.
    let f = std::fs::File::create(src.join("many")).unwrap();
    use std::os::unix::fs::FileExt;
    for i in 0..40u64 {
        f.write_all_at(&pseudo_random(i, 1000 + i as usize), i * 65536)
            .unwrap();
    }
    f.set_len(40 * 65536 + 8192).unwrap();
    drop(f);
    let want_many = std::fs::read(src.join("many")).unwrap();
    for (format, version) in [
        ("posix", "0.0"),
        ("posix", "0.1"),
        ("posix", "1.0"),
        ("gnu", ""),
        ("oldgnu", ""),
    ] {
        let mut args = vec![
            "-c".to_string(),
            format!("--format={format}"),
            "--sparse".into(),
        ];
        if !version.is_empty() {
            args.push(format!("--sparse-version={version}"));
        }
        let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        let bytes = tool_archive(
            &src,
            &tmp.path().join("s.tar"),
            "tar",
            &args,
            &["sparse", "many", "dir"],
        );
        let (seen, damage) = read_archive(bytes);
        let tool = format!("GNU tar --format={format} --sparse-version={version}");
        assert!(damage.is_empty(), "{tool}: {damage:?}");
        for name in ["sparse", "many"] {
            let s = seen
                .get(name)
                .unwrap_or_else(|| panic!("{tool}: no {name}: {:?}", seen.keys()));
            assert!(s.sparse, "{tool}: {name} is sparse");
            let want = std::fs::read(src.join(name)).unwrap();
            assert_eq!(s.size, want.len() as u64, "{tool}: {name} size");
            assert!(s.content == want, "{tool}: {name} content");
        }
        assert!(seen["many"].content == want_many);
        assert_eq!(
            seen["dir/odd"].content,
            std::fs::read(src.join("dir/odd")).unwrap(),
            "{tool}"
        );
    }
}

#[test]
fn bsdtar_every_format() {
    if !require_tool("bsdtar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    for (format, long, xattrs, sparse) in [
        ("pax", true, true, true),
        ("ustar", true, false, false),
        ("gnutar", true, false, false),
        ("v7", false, false, false),
    ] {
        let members: Vec<&str> = if long {
            TOP[..5].to_vec()
        } else {
            vec!["dir", "link", "hard", "sparse"]
        };
        let bytes = tool_archive(
            &src,
            &tmp.path().join(format!("{format}.tar")),
            "bsdtar",
            &["-c", "--format", format],
            &members,
        );
        let (seen, damage) = read_archive(bytes);
        assert!(damage.is_empty(), "bsdtar --format {format}: {damage:?}");
        check(
            &format!("bsdtar --format {format}"),
            &seen,
            &src,
            long,
            xattrs,
            sparse,
        );
    }
}

#[test]
fn python_tarfile_every_format() {
    if !require_tool("python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_source(&src);
    for format in ["USTAR_FORMAT", "GNU_FORMAT", "PAX_FORMAT"] {
        let out = tmp.path().join(format!("{format}.tar"));
        let script = format!(
            "import os, tarfile, sys\nos.chdir(sys.argv[1])\nwith tarfile.open(sys.argv[2], 'w', format=tarfile.{format}) as t:\n    for m in ['dir', 'long-names-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 'link', 'hard', 'sparse']:\n        t.add(m)\n"
        );
        run_ok(
            Command::new("python3")
                .arg("-c")
                .arg(&script)
                .arg(&src)
                .arg(&out),
        );
        let (seen, damage) = read_archive(std::fs::read(&out).unwrap());
        assert!(damage.is_empty(), "tarfile {format}: {damage:?}");
        check(
            &format!("tarfile {format}"),
            &seen,
            &src,
            true,
            false,
            false,
        );
    }
}

#[test]
fn gnu_tar_multi_volume_archives_are_joined() {
    if !require_tool("tar") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let big = pseudo_random(9, 700_000);
    write_file(&src.join("big"), &big);
    write_file(&src.join("after"), b"after the split\n");
    for format in ["gnu", "oldgnu", "posix"] {
        for label in [false, true] {
            let dir = tmp.path().join(format!("mv-{format}-{label}"));
            std::fs::create_dir_all(&dir).unwrap();
            let mut cmd = Command::new("tar");
            cmd.args(["-c", "-M", "-L", "300", &format!("--format={format}")]);
            if label {
                cmd.args(["-V", "shelf-7"]);
            }
            for i in 1..=4 {
                cmd.arg("-f").arg(dir.join(format!("v{i}.tar")));
            }
            cmd.arg("-C").arg(&src).args(["big", "after"]);
            run_ok(&mut cmd);
            let volumes: Vec<Vec<u8>> = (1..=4)
                .map(|i| dir.join(format!("v{i}.tar")))
                .filter(|p| p.exists())
                .map(|p| std::fs::read(p).unwrap())
                .collect();
            assert!(volumes.len() >= 3, "{format}: {} volumes", volumes.len());
            let tool = format!("GNU tar -M --format={format} (label: {label})");
            let (seen, damage) = read_volumes(volumes.clone());
            assert!(damage.is_empty(), "{tool}: {damage:?}");
            assert_eq!(
                seen.keys().collect::<Vec<_>>(),
                vec!["after", "big"],
                "{tool}"
            );
            assert!(seen["big"].content == big, "{tool}: the joined member");
            assert_eq!(seen["after"].content, b"after the split\n", "{tool}");
            // Volumes out of order: the split member is reported, not joined wrongly.
            let mut swapped = volumes.clone();
            swapped.swap(1, 2);
            let (seen, damage) = read_volumes(swapped);
            assert!(
                !damage.is_empty(),
                "{tool}: out of order volumes are reported"
            );
            assert!(
                !seen.contains_key("big"),
                "{tool}: no wrongly joined member"
            );
            // A later volume alone: its first member is the part of a member begun earlier.
            let (seen, damage) = read_volumes(vec![volumes[1].clone()]);
            assert!(
                damage
                    .iter()
                    .any(|d| d.contains("continued from an earlier volume")
                        || d.contains("part from byte")),
                "{tool}: {damage:?}"
            );
            assert!(!seen.contains_key("big"), "{tool}");
        }
    }
}
