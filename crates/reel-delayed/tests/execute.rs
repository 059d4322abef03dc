//! The executor on real files in temporary trees.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use reel_delayed::status::RunState;
use reel_delayed::win32;
use reel_delayed::{
    Action, DelayedError, NtPath, Operation, OperationFile, RunOptions, RunReport,
    StagedReplacement, Status, StatusFile, encode_new, parse, run,
};

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.p(rel);
        reel_testkit::write_file(&p, content.as_bytes());
        p
    }
    fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.p(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }
    fn nt(&self, rel: &str) -> NtPath {
        NtPath::from_linux(&self.p(rel)).unwrap()
    }
    fn ops_file(&self, ops: &[Operation]) -> PathBuf {
        let p = self.p("ops");
        fs::write(&p, encode_new(ops)).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        p
    }
    fn state(&self) -> PathBuf {
        self.p("state")
    }
    fn opts(&self) -> RunOptions {
        RunOptions::new(self.state())
    }
    fn run(&self, file: &Path) -> RunReport {
        run(file, &self.opts(), &mut |_| {}).unwrap()
    }
    fn statuses(&self, file: &Path) -> Vec<Status> {
        parse(&fs::read(file).unwrap())
            .unwrap()
            .iter()
            .map(|r| r.status)
            .collect()
    }
}

fn mv(t: &Tree, a: &str, b: &str) -> Operation {
    Operation::move_file(t.nt(a), t.nt(b))
}
fn del(t: &Tree, a: &str) -> Operation {
    Operation::delete_file(t.nt(a))
}
fn short(t: &Tree, a: &str, name: &str) -> Operation {
    Operation::set_short_name(t.nt(a), name)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap()
}

#[test]
fn moves_and_deletes_succeed_in_place() {
    let t = Tree::new();
    t.write("stage/a.new", "new a");
    t.write("live/a", "old a");
    t.write("stage/b.new", "new b");
    t.write("live/old.txt", "old");
    t.mkdir("live/empty");
    t.mkdir("live/keepme");
    t.write("live/keepme/inside", "x");
    symlink(t.p("live/keepme"), t.p("live/link-to-dir")).unwrap();
    t.write("target-of-link", "target");
    symlink(t.p("target-of-link"), t.p("stage/link")).unwrap();

    let file = t.ops_file(&[
        mv(&t, "stage/a.new", "live/a"),
        mv(&t, "stage/b.new", "live/b"),
        del(&t, "live/old.txt"),
        del(&t, "live/empty"),
        del(&t, "live/link-to-dir"),
        mv(&t, "stage/link", "live/link"),
    ]);
    let before = fs::read(&file).unwrap();
    let report = t.run(&file);

    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.state, RunState::Finished);
    assert_eq!(read(&t.p("live/a")), "new a");
    assert_eq!(read(&t.p("live/b")), "new b");
    assert!(!t.p("stage/a.new").exists() && !t.p("stage/b.new").exists());
    assert!(!t.p("live/old.txt").exists());
    assert!(!t.p("live/empty").exists());
    // Symlinks in the last component are acted on themselves, never followed.
    assert!(fs::symlink_metadata(t.p("live/link-to-dir")).is_err());
    assert_eq!(read(&t.p("live/keepme/inside")), "x");
    assert!(
        fs::symlink_metadata(t.p("live/link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        fs::read_link(t.p("live/link")).unwrap(),
        t.p("target-of-link")
    );
    assert_eq!(read(&t.p("target-of-link")), "target");

    let after = fs::read(&file).unwrap();
    assert_eq!(after.len(), before.len(), "the file length never changes");
    assert!(t.statuses(&file).iter().all(|s| *s == Status::Code(0)));
    // Only the status fields changed: NotExecuted became SC=00000000 in place.
    let mut expected = before.clone();
    for r in parse(&before).unwrap() {
        expected[r.status_offset as usize..][..22].copy_from_slice(&Status::Code(0).encode());
    }
    assert_eq!(after, expected);
    let status = StatusFile::read(&t.state()).unwrap();
    assert_eq!(status.restore_status_result, 0);
    assert_eq!(status.state, RunState::Finished);
    assert_eq!(status.succeeded, 6);
    assert!(status.restore_status_details.is_none());

    // Running again does nothing: every record is already SC=00000000.
    t.write("stage/a.new", "a second a");
    let again = t.run(&file);
    assert!(
        again
            .records
            .iter()
            .all(|o| o.action == Action::AlreadyDone)
    );
    assert_eq!(read(&t.p("stage/a.new")), "a second a");
    assert_eq!(read(&t.p("live/a")), "new a");
    assert_eq!(fs::read(&file).unwrap(), after);
}

#[test]
fn a_non_empty_directory_stops_the_run_and_a_rerun_finishes_it() {
    let t = Tree::new();
    t.write("x", "x");
    t.write("full/f", "f");
    t.write("z", "z");
    t.write("s", "s");
    let file = t.ops_file(&[
        mv(&t, "x", "y"),
        del(&t, "full"),
        mv(&t, "z", "w"),
        short(&t, "s", "S.TXT"),
    ]);
    let len = fs::metadata(&file).unwrap().len();
    let report = t.run(&file);
    assert_eq!(report.result, win32::ERROR_DIR_NOT_EMPTY);
    assert_eq!(report.failed_record, Some(2));
    assert_eq!(report.state, RunState::Stopped);
    assert_eq!(
        t.statuses(&file),
        vec![
            Status::Code(0),
            Status::Code(145),
            Status::NotExecuted,
            Status::NotExecuted
        ]
    );
    assert!(
        t.p("z").exists() && !t.p("w").exists(),
        "nothing after the failure ran"
    );
    let status = StatusFile::read(&t.state()).unwrap();
    assert_eq!(status.restore_status_result, 145);
    assert_eq!(status.state, RunState::Stopped);
    let d = status.restore_status_details.unwrap();
    assert_eq!(
        (d.record, d.code, d.operation.as_str()),
        (2, 145, "DeleteFile")
    );
    assert_eq!(d.status, "SC=00000091");
    assert_eq!(status.not_executed, 2);

    // Empty the directory and run again: record 1 is not done twice.
    fs::remove_file(t.p("full/f")).unwrap();
    t.write("x", "a new x that must stay");
    let report = t.run(&file);
    let actions: Vec<Action> = report.records.iter().map(|o| o.action).collect();
    assert_eq!(
        actions[..3],
        [Action::AlreadyDone, Action::Done, Action::Done]
    );
    assert_eq!(read(&t.p("x")), "a new x that must stay");
    assert_eq!(read(&t.p("y")), "x");
    assert!(!t.p("full").exists());
    assert_eq!(read(&t.p("w")), "z");
    assert_eq!(fs::metadata(&file).unwrap().len(), len);
    // The short name cannot be set on this file system: recorded, and not critical.
    assert_eq!(
        t.statuses(&file)[3],
        Status::Code(win32::ERROR_NOT_SUPPORTED)
    );
    assert_eq!(report.result, win32::ERROR_NOT_SUPPORTED);
    assert_eq!(report.failed_record, Some(4));
}

#[test]
fn a_failing_short_name_does_not_stop_the_run() {
    let t = Tree::new();
    t.write("long file name.txt", "x");
    t.write("a", "a");
    let file = t.ops_file(&[
        short(&t, "long file name.txt", "LONGFI~1.TXT"),
        short(&t, "missing.txt", "MISSIN~1.TXT"),
        mv(&t, "a", "b"),
        short(&t, "b", "NOT AN 8.3 NAME"),
    ]);
    let report = t.run(&file);
    assert_eq!(report.state, RunState::Finished);
    assert_eq!(
        t.statuses(&file),
        vec![
            Status::Code(win32::ERROR_NOT_SUPPORTED),
            Status::Code(win32::ERROR_FILE_NOT_FOUND),
            Status::Code(0),
            Status::Code(win32::ERROR_INVALID_PARAMETER),
        ]
    );
    assert_eq!(read(&t.p("b")), "a");
    assert_eq!(report.result, 50);
    assert_eq!(report.failed_record, Some(1));
    let status = StatusFile::read(&t.state()).unwrap();
    assert_eq!(status.failures.len(), 3);
    assert_eq!(status.restore_status_details.unwrap().record, 1);
}

/// Runs one operation alone and returns its code.
fn code_of(t: &Tree, op: Operation) -> u32 {
    let file = t.ops_file(&[op]);
    let report = t.run(&file);
    match t.statuses(&file)[0] {
        Status::Code(c) => {
            assert_eq!(report.result, c);
            c
        }
        Status::NotExecuted => panic!("not executed"),
    }
}

#[test]
fn linux_errors_become_win32_codes() {
    let t = Tree::new();
    t.mkdir("d");
    t.write("f", "f");
    t.write("nonempty/x", "x");
    assert_eq!(
        code_of(&t, mv(&t, "missing", "y")),
        win32::ERROR_FILE_NOT_FOUND
    );
    assert_eq!(
        code_of(&t, mv(&t, "no/such/dir/x", "y")),
        win32::ERROR_PATH_NOT_FOUND
    );
    assert_eq!(code_of(&t, mv(&t, "d", "d2")), win32::ERROR_ACCESS_DENIED);
    assert!(t.p("d").is_dir());
    assert_eq!(
        code_of(&t, mv(&t, "f", "no/such/dir/f")),
        win32::ERROR_PATH_NOT_FOUND
    );
    assert_eq!(
        code_of(&t, mv(&t, "f", "nonempty")),
        win32::ERROR_ACCESS_DENIED
    );
    assert_eq!(code_of(&t, del(&t, "missing")), win32::ERROR_FILE_NOT_FOUND);
    assert_eq!(
        code_of(&t, del(&t, "nope/missing")),
        win32::ERROR_PATH_NOT_FOUND
    );
    assert_eq!(
        code_of(&t, del(&t, "f/below-a-file")),
        win32::ERROR_PATH_NOT_FOUND
    );
    assert_eq!(code_of(&t, del(&t, "nonempty")), win32::ERROR_DIR_NOT_EMPTY);
    assert!(t.p("f").exists());
}

#[test]
fn a_move_across_file_systems_is_not_same_device() {
    let t = Tree::new();
    let shm = Path::new("/dev/shm");
    let other = if shm.is_dir()
        && fs::metadata(shm).unwrap().dev() != fs::metadata(t.dir.path()).unwrap().dev()
    {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        reel_testkit::missing("a second file system (/dev/shm as tmpfs)");
        return;
    };
    t.write("f", "f");
    let dst = other.path().join("f");
    let op = Operation::move_file(t.nt("f"), NtPath::from_linux(&dst).unwrap());
    assert_eq!(code_of(&t, op), win32::ERROR_NOT_SAME_DEVICE);
    assert!(t.p("f").exists() && !dst.exists());
}

/// Every malformation from the issue, each after a valid move that must not happen.
#[test]
fn malformed_files_are_refused_before_anything_is_done() {
    let t = Tree::new();
    t.write("a", "a");
    let good = encode_new(&[mv(&t, "a", "b")]);
    let first = good[..good.len() - 2].to_vec();
    let u = |s: &str| reel_delayed::format::utf16le(s);

    let mut cases: Vec<(&str, Vec<u8>, u64)> = Vec::new();
    let mut odd = good.clone();
    odd.push(0);
    cases.push(("odd length", odd, good.len() as u64));
    let mut bom = vec![0xFF, 0xFE];
    bom.extend(&good);
    cases.push(("BOM", bom, 0));
    cases.push(("missing final NUL", first.clone(), first.len() as u64));
    let mut three = first.clone();
    three.extend(u("MoveFile\0\\??\\/c\0\\??\\/d\0\0"));
    let field4 = (first.len() + u("MoveFile\0\\??\\/c\0\\??\\/d\0").len()) as u64;
    cases.push(("three fields", three, field4));
    let mut keyword = first.clone();
    keyword.extend(u("RenameFile\0\\??\\/c\0\\??\\/d\0NotExecuted\0\0"));
    cases.push(("unknown keyword", keyword, first.len() as u64));
    let mut prefix = first.clone();
    prefix.extend(u("DeleteFile\0Unused\0/c\0NotExecuted\0\0"));
    let field3 = (first.len() + u("DeleteFile\0Unused\0").len()) as u64;
    cases.push(("missing \\??\\", prefix, field3));

    let file = t.p("ops");
    for (what, bytes, offset) in cases {
        fs::write(&file, &bytes).unwrap();
        let err = run(&file, &t.opts(), &mut |_| panic!("{what}: a record ran")).expect_err(what);
        match &err {
            DelayedError::Format { source, .. } => {
                assert_eq!(source.offset, offset, "{what}: {err}")
            }
            other => panic!("{what}: unexpected {other}"),
        }
        assert!(
            err.to_string().contains(&format!("byte offset {offset}")),
            "{err}"
        );
        assert!(
            t.p("a").exists() && !t.p("b").exists(),
            "{what}: the move ran"
        );
        assert_eq!(fs::read(&file).unwrap(), bytes, "{what}: the file changed");
        assert!(!t.state().join("delayed-status.toml").exists());
    }
}

#[test]
fn unsafe_operation_files_are_refused_as_root() {
    if !reel_testkit::require_root("checks refusal of files not owned by root") {
        return;
    }
    let t = Tree::new();
    t.write("a", "a");
    let file = t.ops_file(&[mv(&t, "a", "b")]);
    let refused = |why: &str| {
        let err = run(&file, &t.opts(), &mut |_| {}).expect_err(why);
        assert!(matches!(err, DelayedError::Unsafe { .. }), "{why}: {err}");
        assert!(t.p("a").exists() && !t.p("b").exists());
    };
    fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
    refused("group-writable");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o646)).unwrap();
    refused("other-writable");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&file, Some(65534), Some(65534)).unwrap();
    refused("owned by nobody");
    std::os::unix::fs::chown(&file, Some(0), Some(0)).unwrap();
    // A symlink to the operation file is refused too.
    let link = t.p("ops-link");
    symlink(&file, &link).unwrap();
    let err = run(&link, &t.opts(), &mut |_| {}).unwrap_err();
    assert!(matches!(err, DelayedError::Unsafe { .. }), "{err}");
    // Mode 0644, owned by root: runs.
    assert!(t.run(&file).succeeded());
    assert_eq!(read(&t.p("b")), "a");
}

#[test]
fn windows_paths_run_through_the_map() {
    let t = Tree::new();
    let c = t.mkdir("mnt/c");
    let v = t.mkdir("mnt/v");
    t.write("mnt/c/Stage/a.dll", "new a");
    t.write("mnt/c/temp/a.dll", "old a");
    t.write("mnt/v/Stage/a.dll", "vol a");
    t.mkdir("mnt/v/temp");
    t.write("mnt/v/temp/b.dll", "b");
    let guid = "26a21bda-a627-11d7-9931-806e6f6e6963";
    let nt = |s: &str| NtPath::from_field(s).unwrap();
    let file = t.ops_file(&[
        Operation::move_file(nt(r"\??\C:\Stage\a.dll"), nt(r"\??\C:\temp\a.dll")),
        Operation::move_file(
            nt(&format!(r"\??\Volume{{{guid}}}\Stage\a.dll")),
            nt(&format!(r"\??\Volume{{{guid}}}\temp\a.dll")),
        ),
        Operation::delete_file(nt(&format!(r"\??\Volume{{{guid}}}\temp\b.dll\"))),
    ]);
    // Without a map nothing runs, and the error names the record and the missing --map.
    let err = run(&file, &t.opts(), &mut |_| {}).unwrap_err();
    assert!(
        matches!(err, DelayedError::RecordPath { record: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("--map C:="), "{err}");
    assert!(t.p("mnt/c/Stage/a.dll").exists());

    let mut opts = t.opts();
    opts.map
        .insert(format!("C:={}", c.display()).parse().unwrap());
    opts.map.insert(
        format!("Volume{{{}}}={}", guid.to_uppercase(), v.display())
            .parse()
            .unwrap(),
    );
    let report = run(&file, &opts, &mut |_| {}).unwrap();
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(read(&t.p("mnt/c/temp/a.dll")), "new a");
    assert_eq!(read(&t.p("mnt/v/temp/a.dll")), "vol a");
    assert!(!t.p("mnt/v/temp/b.dll").exists());
}

#[test]
fn dry_run_changes_nothing() {
    let t = Tree::new();
    t.write("a", "a");
    let file = t.ops_file(&[mv(&t, "a", "b")]);
    let before = fs::read(&file).unwrap();
    let mut opts = t.opts();
    opts.dry_run = true;
    let report = run(&file, &opts, &mut |_| {}).unwrap();
    assert_eq!(report.records[0].action, Action::Planned);
    assert_eq!(report.records[0].linux_paths, vec![t.p("a"), t.p("b")]);
    assert!(t.p("a").exists() && !t.p("b").exists());
    assert_eq!(fs::read(&file).unwrap(), before);
    assert!(!t.state().exists());
}

#[test]
fn staged_replacements_are_scheduled_and_carried_out() {
    use std::io::Write;
    let t = Tree::new();
    let target = t.write("usr/lib/libbusy.so", "old library");
    let mut ops = OperationFile::open_or_create(t.p("state/restore-ops")).unwrap();

    // Dropped without scheduling: removed.
    let abandoned = StagedReplacement::create(&target).unwrap();
    let abandoned_path = abandoned.path().to_path_buf();
    assert!(abandoned_path.exists());
    drop(abandoned);
    assert!(!abandoned_path.exists());

    let mut staged = StagedReplacement::create(&target).unwrap();
    assert_eq!(staged.path().parent(), target.parent());
    staged.file().write_all(b"new library").unwrap();
    let staged_path = staged.path().to_path_buf();
    let record = staged.schedule(&mut ops).unwrap();
    assert_eq!(
        record.operation,
        Operation::move_file(
            NtPath::from_linux(&staged_path).unwrap(),
            NtPath::from_linux(&target).unwrap()
        )
    );
    // The same move again is a duplicate.
    let dup = ops.append_move(&staged_path, &target).unwrap_err();
    assert!(
        matches!(dup, DelayedError::Duplicate { record: 1, .. }),
        "{dup}"
    );
    // A directory cannot be a MoveFile source.
    let dir = t.mkdir("somedir");
    assert!(matches!(
        ops.append_move(&dir, &t.p("elsewhere")),
        Err(DelayedError::Invalid(_))
    ));
    // Deleting a directory, then reaching into it, is the wrong order.
    ops.append_delete(&t.p("old")).unwrap();
    let order = ops.append_delete(&t.p("old/file")).unwrap_err();
    assert!(
        matches!(order, DelayedError::Order { record: 2, .. }),
        "{order}"
    );
    assert_eq!(ops.records().len(), 2);
    t.mkdir("old");

    let (path2, _) = reel_delayed::schedule_replacement(
        &mut ops,
        &t.write("etc/conf", "old conf"),
        &mut &b"new conf"[..],
    )
    .unwrap();
    assert!(path2.exists());

    let report = t.run(ops.path());
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(read(&target), "new library");
    assert_eq!(read(&t.p("etc/conf")), "new conf");
    assert!(!staged_path.exists() && !path2.exists());
}

#[test]
fn is_busy_recognises_text_file_busy() {
    let err = |n| std::io::Error::from_raw_os_error(n);
    assert!(reel_delayed::is_busy(&err(libc::ETXTBSY)));
    assert!(reel_delayed::is_busy(&err(libc::EBUSY)));
    assert!(!reel_delayed::is_busy(&err(libc::ENOENT)));
}

/// SetFileShortName for real: an NTFS image mounted with ntfs-3g.
#[test]
fn short_names_on_ntfs_3g() {
    if !reel_testkit::require_root("mounts an NTFS image with ntfs-3g")
        || !reel_testkit::require_tool("mkntfs")
        || !reel_testkit::require_tool("ntfs-3g")
    {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        reel_testkit::missing("FUSE (/dev/fuse), which ntfs-3g mounts through");
        return;
    }
    let t = Tree::new();
    let image = t.p("ntfs.img");
    fs::File::create(&image).unwrap().set_len(16 << 20).unwrap();
    reel_testkit::run_ok(
        std::process::Command::new("mkntfs")
            .args(["-F", "-Q", "-q"])
            .arg(&image),
    );
    let mnt = t.mkdir("mnt");
    reel_testkit::run_ok(std::process::Command::new("ntfs-3g").arg(&image).arg(&mnt));
    let _unmount = Unmount(mnt.clone());

    let long = mnt.join("LongFileName.dll");
    fs::write(&long, "x").unwrap();
    fs::write(mnt.join("Other.txt"), "y").unwrap();
    let nt = |p: &Path| NtPath::from_linux(p).unwrap();
    let file = t.ops_file(&[
        Operation::set_short_name(nt(&long), "LONGFI~1.DLL"),
        Operation::set_short_name(nt(&mnt.join("Other.txt")), "BAD*NAME.TXT"),
        Operation::move_file(nt(&mnt.join("Other.txt")), nt(&mnt.join("Moved.txt"))),
    ]);
    let report = t.run(&file);
    assert_eq!(
        t.statuses(&file),
        vec![
            Status::Code(0),
            Status::Code(win32::ERROR_INVALID_PARAMETER),
            Status::Code(0)
        ]
    );
    assert_eq!(report.failed_record, Some(2));
    assert_eq!(read(&mnt.join("Moved.txt")), "y");
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(&long, "system.ntfs_dos_name", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"LONGFI~1.DLL");
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
