//! A real tree walked with the backup filter: CACHEDIR.TAG (right and wrong signature), a
//! `.nobackup` directory, a nodump file, an xattr-marked file, and patterns; exactly the
//! right entries are skipped.

use std::collections::BTreeSet;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use reel_policy::{
    BackupFilter, CACHEDIR_SIGNATURE, Effect, EntryKind, Pattern, Policy, Reason, Roots, Verdict,
    explain_path,
};
use reel_testkit::write_file;

fn set_nodump(path: &Path) -> bool {
    let fd = std::fs::File::open(path).unwrap();
    let flags = rustix::fs::ioctl_getflags(fd.as_fd()).unwrap();
    match rustix::fs::ioctl_setflags(fd.as_fd(), flags | rustix::fs::IFlags::NODUMP) {
        Ok(()) => true,
        Err(e) => reel_testkit::missing(&format!(
            "the temp filesystem does not take the nodump flag: {e}"
        )),
    }
}

fn set_robots(path: &Path, value: &[u8]) -> bool {
    match rustix::fs::setxattr(
        path,
        "user.xdg.robots.backup",
        value,
        rustix::fs::XattrFlags::empty(),
    ) {
        Ok(()) => true,
        Err(e) => reel_testkit::missing(&format!(
            "the temp filesystem does not take user xattrs: {e}"
        )),
    }
}

/// What a walker using the filter backs up (paths relative to `top`), and what it skipped why.
fn walk(
    filter: &BackupFilter,
    top: &Path,
    use_fd: bool,
) -> (BTreeSet<String>, Vec<(String, String)>) {
    let mut kept = BTreeSet::new();
    let mut skipped = Vec::new();
    let mut stack = vec![(top.to_path_buf(), None::<&'static str>)];
    while let Some((dir, only)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let rel = path
                .strip_prefix(top)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if let Some(keep) = only
                && e.file_name() != keep
            {
                skipped.push((rel, "content of a cache directory".into()));
                continue;
            }
            let kind = EntryKind::from(e.file_type().unwrap());
            let verdict = if use_fd && matches!(kind, EntryKind::File | EntryKind::Dir) {
                let f = std::fs::File::open(&path).unwrap();
                // The reason borrows the filter, not the fd: fine to drop `f` after.
                filter.check_fd(&path, f.as_fd(), kind)
            } else {
                filter.check(&path, kind)
            };
            match verdict {
                Verdict::Include => {
                    kept.insert(rel);
                    if kind == EntryKind::Dir {
                        stack.push((path, None));
                    }
                }
                Verdict::Exclude(r) => skipped.push((rel, r.kind().to_string())),
                Verdict::ExcludeContents { reason, keep } => {
                    assert_eq!(reason, Reason::CacheDirTag);
                    kept.insert(rel);
                    stack.push((path, Some(keep)));
                }
            }
        }
    }
    skipped.sort();
    (kept, skipped)
}

struct Fixture {
    _dir: tempfile::TempDir,
    top: PathBuf,
    root: tempfile::TempDir,
}

fn fixture() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let top = dir.path().join("data");
    let mut tag = CACHEDIR_SIGNATURE.to_vec();
    tag.extend_from_slice(b"\n# made by a browser\n");
    write_file(&top.join("cache/CACHEDIR.TAG"), &tag);
    write_file(&top.join("cache/blob1"), b"x");
    write_file(&top.join("cache/sub/blob2"), b"x");
    // One byte off: not a tag.
    let mut wrong = CACHEDIR_SIGNATURE.to_vec();
    wrong[42] = b'6';
    write_file(&top.join("notcache/CACHEDIR.TAG"), &wrong);
    write_file(&top.join("notcache/keep.txt"), b"x");
    // Too short: not a tag either.
    write_file(
        &top.join("shorttag/CACHEDIR.TAG"),
        &CACHEDIR_SIGNATURE[..42],
    );
    write_file(&top.join("scratch/.nobackup"), b"");
    write_file(&top.join("scratch/big.bin"), b"x");
    write_file(&top.join("docs/report.txt"), b"x");
    write_file(&top.join("docs/nodump.iso"), b"x");
    write_file(&top.join("docs/robots.db"), b"x");
    write_file(&top.join("docs/robots-true.db"), b"x");
    write_file(&top.join("docs/main.o"), b"x");
    write_file(&top.join("logs/a.log"), b"x");
    write_file(&top.join("logs/deep/b.log"), b"x");
    write_file(&top.join("logs/deep/c.txt"), b"x");
    std::fs::create_dir_all(top.join("robotsdir")).unwrap();
    write_file(&top.join("robotsdir/inner"), b"x");
    std::os::unix::fs::symlink("docs/report.txt", top.join("link")).unwrap();
    if !set_nodump(&top.join("docs/nodump.iso"))
        || !set_robots(&top.join("docs/robots.db"), b"false")
        || !set_robots(&top.join("docs/robots-true.db"), b"true")
        || !set_robots(&top.join("robotsdir"), b"false")
    {
        return None;
    }

    let root = tempfile::tempdir().unwrap();
    write_file(
        &root.path().join("etc/reel/files-not-to-backup.d/test.conf"),
        b"$TREE/logs/*.log /s\n",
    );
    Some(Fixture {
        _dir: dir,
        top,
        root,
    })
}

fn filter(f: &Fixture) -> BackupFilter {
    let tree = f.top.to_string_lossy().into_owned();
    let vars = move |n: &str| (n == "TREE").then(|| tree.clone());
    let policy = Policy::load_with_vars(&Roots::new(f.root.path()), &vars);
    assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);
    let extra = [Pattern::parse("*.o", &vars).unwrap()];
    BackupFilter::new(&policy).with_excludes(&extra)
}

fn expected_kept() -> BTreeSet<String> {
    [
        "cache",
        "cache/CACHEDIR.TAG",
        "notcache",
        "notcache/CACHEDIR.TAG",
        "notcache/keep.txt",
        "shorttag",
        "shorttag/CACHEDIR.TAG",
        "docs",
        "docs/report.txt",
        "docs/robots-true.db",
        "logs",
        "logs/deep",
        "logs/deep/c.txt",
        "link",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

fn expected_skipped() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = [
        ("cache/blob1", "content of a cache directory"),
        ("cache/sub", "content of a cache directory"),
        ("scratch", "marker"),
        ("docs/nodump.iso", "nodump"),
        ("docs/robots.db", "xattr"),
        ("docs/main.o", "rule"),
        ("logs/a.log", "rule"),
        ("logs/deep/b.log", "rule"),
        ("robotsdir", "xattr"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    v.sort();
    v
}

#[test]
fn walk_by_path_skips_exactly_the_right_entries() {
    let Some(f) = fixture() else { return };
    let (kept, skipped) = walk(&filter(&f), &f.top, false);
    assert_eq!(kept, expected_kept());
    assert_eq!(skipped, expected_skipped());
}

#[test]
fn walk_with_open_fds_agrees() {
    let Some(f) = fixture() else { return };
    let (kept, skipped) = walk(&filter(&f), &f.top, true);
    assert_eq!(kept, expected_kept());
    assert_eq!(skipped, expected_skipped());
}

#[test]
fn check_explains_through_ancestors() {
    let Some(f) = fixture() else { return };
    let filter = filter(&f);
    let policy = Policy::load(&Roots::new(f.root.path()));
    let r = explain_path(&policy, &filter, &f.top.join("cache/sub/blob2"));
    let b = r.backup.unwrap();
    assert_eq!(
        (b.reason, b.via),
        ("cachedir-tag", Some(f.top.join("cache")))
    );
    let r = explain_path(&policy, &filter, &f.top.join("cache/CACHEDIR.TAG"));
    assert_eq!(r.backup, None, "the tag itself is kept");
    let r = explain_path(&policy, &filter, &f.top.join("cache"));
    assert_eq!(r.backup.map(|b| b.effect), Some(Effect::ContentsExcluded));
    let r = explain_path(&policy, &filter, &f.top.join("scratch/big.bin"));
    let b = r.backup.unwrap();
    assert_eq!((b.reason, b.via), ("marker", Some(f.top.join("scratch"))));
    assert!(b.detail.contains(".nobackup"), "{}", b.detail);
    let r = explain_path(&policy, &filter, &f.top.join("robotsdir/inner"));
    assert_eq!(r.backup.unwrap().reason, "xattr");
    let r = explain_path(&policy, &filter, &f.top.join("docs/nodump.iso"));
    assert_eq!(r.backup.unwrap().reason, "nodump");
    let r = explain_path(&policy, &filter, &f.top.join("notcache/keep.txt"));
    assert_eq!(r.backup, None);
    // Relative paths and `..` are resolved against the current directory, lexically.
    let r = explain_path(&policy, &filter, &f.top.join("docs/../docs/main.o"));
    assert_eq!(r.path, f.top.join("docs/main.o"));
    assert_eq!(r.backup.unwrap().reason, "rule");
}

/// The fallback for filesystems whose statx does not report the flag: the ioctl on an open
/// file. Checked directly on a file: `check_fd` always uses the ioctl.
#[test]
fn nodump_via_ioctl_on_fd() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f");
    write_file(&p, b"x");
    if !set_nodump(&p) {
        return;
    }
    let filter = BackupFilter::from_parts(Default::default(), vec![]);
    let f = std::fs::File::open(&p).unwrap();
    assert_eq!(
        filter.check_fd(&p, f.as_fd(), EntryKind::File),
        Verdict::Exclude(Reason::NoDump)
    );
    assert_eq!(
        filter.check(&p, EntryKind::File),
        Verdict::Exclude(Reason::NoDump)
    );
    // A FIFO is never opened (it would block); only patterns apply.
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert_eq!(filter.check(&fifo, EntryKind::Other), Verdict::Include);
}
