//! `reel delayed` end to end: the real binary on temporary trees, killed with SIGKILL mid-run,
//! and its boot registration checked by `systemd-analyze verify`.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reel_testkit::TempHome;

struct Env {
    home: TempHome,
}

impl Env {
    fn new() -> Env {
        Env {
            home: TempHome::new(),
        }
    }
    fn p(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }
    fn state(&self) -> PathBuf {
        self.p("state")
    }
    fn reel(&self) -> Command {
        let mut c = reel_testkit::reel!(&self.home);
        c.env("REEL_STATE_DIR", self.state());
        c.env_remove("REEL_DELAYED_TEST_KILL_AT");
        c.env_remove("REEL_DELAYED_FILE");
        c
    }
    fn out(&self, args: &[&str]) -> Output {
        self.reel().args(args).output().expect("run reel")
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "reel {args:?} failed with {}:\n{}{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }
    fn write(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.p(rel);
        reel_testkit::write_file(&p, content.as_bytes());
        p
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn code(o: &Output) -> Option<i32> {
    o.status.code()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// UTF-16LE of ASCII text, byte by byte.
fn w(ascii: &str) -> Vec<u8> {
    ascii.bytes().flat_map(|b| [b, 0x00]).collect()
}

fn record(fields: [&str; 4]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|f| {
            let mut v = w(f);
            v.extend([0, 0]);
            v
        })
        .collect()
}

#[test]
fn add_commands_write_the_documented_bytes() {
    let e = Env::new();
    let file = e.p("DelayedOperations");
    e.ok(&[
        "delayed",
        "add-move",
        r"C:\Stage\a.dll",
        r"C:\temp\a.dll",
        "--file",
        s(&file),
    ]);
    e.ok(&[
        "delayed",
        "add-move",
        r"\\?\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\Stage\a.dll",
        r"\??\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}\temp\a.dll",
        "--file",
        s(&file),
    ]);
    e.ok(&[
        "delayed",
        "add-delete",
        r"C:\temp\b.dll",
        "--file",
        s(&file),
    ]);
    e.ok(&[
        "delayed",
        "add-shortname",
        r"C:\temp\ShortFileName.dll",
        "ShortN~1.dll",
        "--file",
        s(&file),
    ]);
    let vol = r"\??\Volume{26a21bda-a627-11d7-9931-806e6f6e6963}";
    let mut golden = Vec::new();
    golden.extend(record([
        "MoveFile",
        r"\??\C:\Stage\a.dll",
        r"\??\C:\temp\a.dll",
        "NotExecuted",
    ]));
    golden.extend(record([
        "MoveFile",
        &format!(r"{vol}\Stage\a.dll"),
        &format!(r"{vol}\temp\a.dll"),
        "NotExecuted",
    ]));
    golden.extend(record([
        "DeleteFile",
        "Unused",
        r"\??\C:\temp\b.dll",
        "NotExecuted",
    ]));
    golden.extend(record([
        "SetFileShortName",
        "ShortN~1.dll",
        r"\??\C:\temp\ShortFileName.dll",
        "NotExecuted",
    ]));
    golden.extend([0, 0]);
    assert_eq!(fs::read(&file).unwrap(), golden);

    // A duplicate (Windows paths compare case-insensitively) is refused, nothing changes.
    let dup = e.out(&[
        "delayed",
        "add-delete",
        r"c:\TEMP\B.DLL",
        "--file",
        s(&file),
    ]);
    assert_eq!(code(&dup), Some(2), "{}", stderr(&dup));
    assert!(stderr(&dup).contains("record 3"), "{}", stderr(&dup));
    // Wrong order: deleting a directory, then something inside it.
    e.ok(&["delayed", "add-delete", r"C:\old", "--file", s(&file)]);
    let order = e.out(&["delayed", "add-delete", r"C:\old\x.dll", "--file", s(&file)]);
    assert_eq!(code(&order), Some(2), "{}", stderr(&order));
    assert!(stderr(&order).contains("deletes"), "{}", stderr(&order));
    // Not an 8.3 name.
    let bad = e.out(&[
        "delayed",
        "add-shortname",
        "/x",
        "not a short name",
        "--file",
        s(&file),
    ]);
    assert_eq!(code(&bad), Some(2));
    // A directory as a MoveFile source.
    fs::create_dir_all(e.p("somedir")).unwrap();
    let dir = e.out(&[
        "delayed",
        "add-move",
        s(&e.p("somedir")),
        "/elsewhere",
        "--file",
        s(&file),
    ]);
    assert_eq!(code(&dir), Some(2));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&e.ok(&["delayed", "show", s(&file), "--json"]))
            .unwrap()["records"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
}

#[test]
fn run_show_and_status() {
    let e = Env::new();
    let file = e.p("ops");
    let x = e.write("tree/x", "x");
    let full = e.write("tree/full/f", "f").parent().unwrap().to_path_buf();
    let z = e.write("tree/z", "z");
    let f = s(&file);
    e.ok(&["delayed", "add-move", s(&x), s(&e.p("tree/y")), "--file", f]);
    e.ok(&["delayed", "add-delete", s(&full), "--file", f]);
    e.ok(&["delayed", "add-move", s(&z), s(&e.p("tree/w")), "--file", f]);
    let len = fs::metadata(&file).unwrap().len();

    let dry = e.out(&["delayed", "run", f, "--dry-run"]);
    assert_eq!(code(&dry), Some(0), "{}", stderr(&dry));
    assert!(x.exists());

    let o = e.out(&["delayed", "run", f]);
    assert_eq!(
        code(&o),
        Some(1),
        "a failed delete is exit 1: {}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("ERROR_DIR_NOT_EMPTY (145)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::metadata(&file).unwrap().len(), len);

    let show: serde_json::Value =
        serde_json::from_str(&e.ok(&["delayed", "show", f, "--json"])).unwrap();
    let recs = show["records"].as_array().unwrap();
    let statuses: Vec<&str> = recs.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["SC=00000000", "SC=00000091", "NotExecuted"]);
    assert_eq!(recs[1]["code_name"], "ERROR_DIR_NOT_EMPTY");
    assert_eq!(recs[1]["operation"], "DeleteFile");
    assert_eq!(show["bytes"], len);
    let text = e.ok(&["delayed", "show", f]);
    assert!(
        text.contains("SC=00000091") && text.contains("NotExecuted"),
        "{text}"
    );

    let st = e.out(&["--json", "delayed", "status"]);
    assert_eq!(code(&st), Some(1));
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["restore_status_result"], 145);
    assert_eq!(st["state"], "stopped");
    assert_eq!(st["restore_status_details"]["record"], 2);
    assert!(e.state().join("delayed-status.toml").is_file());

    fs::remove_file(full.join("f")).unwrap();
    let again = e.ok(&["--json", "delayed", "run", f]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["result"], 0);
    let actions: Vec<&str> = again["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["already-done", "done", "done"]);
    assert_eq!(fs::read_to_string(e.p("tree/w")).unwrap(), "z");
    assert_eq!(e.out(&["delayed", "status"]).status.code(), Some(0));
}

#[test]
fn refused_files_exit_2_and_name_the_offset() {
    let e = Env::new();
    let a = e.write("a", "a");
    let file = e.p("ops");
    e.ok(&[
        "delayed",
        "add-move",
        s(&a),
        s(&e.p("b")),
        "--file",
        s(&file),
    ]);
    let mut bytes = fs::read(&file).unwrap();
    let len = bytes.len();
    bytes.truncate(len - 2); // no final NUL
    fs::write(&file, &bytes).unwrap();
    let o = e.out(&["delayed", "run", s(&file)]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("byte offset {}", len - 2)),
        "{}",
        stderr(&o)
    );
    assert!(a.exists());
    let show = e.out(&["delayed", "show", s(&file)]);
    assert_eq!(code(&show), Some(2));

    // Group-writable, as root.
    if !reel_testkit::require_root("the ownership checks apply to root") {
        return;
    }
    bytes.extend([0, 0]);
    fs::write(&file, &bytes).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
    let o = e.out(&["delayed", "run", s(&file)]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("writable by group or others"),
        "{}",
        stderr(&o)
    );
    assert!(a.exists());
}

/// The records of the crash tests: moves, a delete of a file and of the directory it was in.
fn crash_tree(e: &Env) -> PathBuf {
    let file = e.p("ops");
    let f = s(&file);
    for i in 0..3 {
        let src = e.write(&format!("t/stage/f{i}"), &format!("content {i}"));
        e.write(&format!("t/live/f{i}"), "old");
        e.ok(&[
            "delayed",
            "add-move",
            s(&src),
            s(&e.p(&format!("t/live/f{i}"))),
            "--file",
            f,
        ]);
    }
    let gone = e.write("t/old/gone", "gone");
    e.ok(&["delayed", "add-delete", s(&gone), "--file", f]);
    e.ok(&["delayed", "add-delete", s(&e.p("t/old")), "--file", f]);
    file
}

fn statuses(file: &Path) -> Vec<String> {
    reel_delayed::parse(&fs::read(file).unwrap())
        .unwrap()
        .iter()
        .map(|r| r.status.to_field())
        .collect()
}

/// After a crash, put sentinels back at the sources of records already marked done: a
/// re-run that did such a record twice would move or delete them.
fn plant_sentinels(e: &Env, done: &[bool]) -> Vec<PathBuf> {
    let mut planted = Vec::new();
    for (i, _) in done.iter().enumerate().take(3).filter(|(_, d)| **d) {
        planted.push(e.write(&format!("t/stage/f{i}"), "sentinel"));
    }
    // (Recreating t/old/gone while its directory's delete is still pending would make that
    // delete fail for a reason of the test's making, so only when both are done.)
    if done[3] && done[4] {
        planted.push(e.write("t/old/gone", "sentinel"));
    }
    planted
}

fn check_end_state(e: &Env, file: &Path, planted: &[PathBuf]) {
    assert!(
        statuses(file).iter().all(|s| s == "SC=00000000"),
        "{:?}",
        statuses(file)
    );
    for i in 0..3 {
        assert_eq!(
            fs::read_to_string(e.p(&format!("t/live/f{i}"))).unwrap(),
            format!("content {i}")
        );
        let src = e.p(&format!("t/stage/f{i}"));
        if planted.contains(&src) {
            assert_eq!(
                fs::read_to_string(&src).unwrap(),
                "sentinel",
                "record {} ran twice",
                i + 1
            );
        } else {
            assert!(!src.exists());
        }
    }
    let gone = e.p("t/old/gone");
    if planted.contains(&gone) {
        assert_eq!(
            fs::read_to_string(&gone).unwrap(),
            "sentinel",
            "the delete ran twice"
        );
    } else {
        assert!(!e.p("t/old").exists());
    }
}

#[test]
fn killed_at_every_step_then_rerun_does_each_operation_once() {
    for stage in ["after-intent", "after-op", "after-status"] {
        for n in 1..=5 {
            let e = Env::new();
            let file = crash_tree(&e);
            let len = fs::metadata(&file).unwrap().len();
            let o = e
                .reel()
                .args(["delayed", "run", s(&file)])
                .env("REEL_DELAYED_TEST_KILL_AT", format!("{stage}:{n}"))
                .output()
                .unwrap();
            assert_eq!(
                o.status.signal(),
                Some(9),
                "{stage}:{n} was not killed: {}",
                stderr(&o)
            );
            assert_eq!(fs::metadata(&file).unwrap().len(), len);
            let st = statuses(&file);
            let done: Vec<bool> = st.iter().map(|s| s == "SC=00000000").collect();
            // Everything before record n is done; record n is done only after its status write.
            assert!(done[..n - 1].iter().all(|d| *d), "{stage}:{n}: {st:?}");
            assert_eq!(done[n - 1], stage == "after-status", "{stage}:{n}: {st:?}");
            assert!(
                st[n..].iter().all(|s| s == "NotExecuted"),
                "{stage}:{n}: {st:?}"
            );
            let status = fs::read_to_string(e.state().join("delayed-status.toml")).unwrap();
            assert!(status.contains("state = \"running\""), "{status}");

            let planted = plant_sentinels(&e, &done);
            let o = e.out(&["--json", "delayed", "run", s(&file)]);
            assert_eq!(code(&o), Some(0), "{stage}:{n} re-run: {}", stderr(&o));
            let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let action = report["records"][n - 1]["action"]
                .as_str()
                .unwrap()
                .to_string();
            let expected = match stage {
                "after-intent" => "done",
                "after-op" => "recovered",
                _ => "already-done",
            };
            assert_eq!(action, expected, "{stage}:{n}");
            check_end_state(&e, &file, &planted);
            assert_eq!(fs::metadata(&file).unwrap().len(), len);
            let status = fs::read_to_string(e.state().join("delayed-status.toml")).unwrap();
            assert!(status.contains("state = \"finished\""), "{status}");
        }
    }
}

#[test]
fn killed_at_random_moments_then_rerun() {
    let e = Env::new();
    let file = e.p("ops");
    let count = 40;
    let make = |e: &Env| {
        let _ = fs::remove_dir_all(e.p("r"));
        let _ = fs::remove_file(&file);
        for i in 0..count {
            e.write(&format!("r/a{i}"), &format!("{i}"));
        }
        let ops: Vec<reel_delayed::Operation> = (0..count)
            .map(|i| {
                reel_delayed::Operation::move_file(
                    reel_delayed::NtPath::from_linux(&e.p(&format!("r/a{i}"))).unwrap(),
                    reel_delayed::NtPath::from_linux(&e.p(&format!("r/b{i}"))).unwrap(),
                )
            })
            .collect();
        let mut f = reel_delayed::OperationFile::open_or_create(&file).unwrap();
        f.append_all(ops).unwrap();
    };
    // How long a whole run takes here, to spread the kills over it.
    make(&e);
    let t0 = Instant::now();
    e.ok(&["delayed", "run", s(&file)]);
    let full = t0.elapsed().max(Duration::from_millis(5));

    let mut mid_run = 0;
    for round in 0..40u64 {
        make(&e);
        let mut child = e
            .reel()
            .args(["delayed", "run", s(&file)])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let frac = reel_testkit::pseudo_random(round, 1)[0] as u32;
        std::thread::sleep(full * frac / 255);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let st = statuses(&file);
        let done = st.iter().filter(|s| *s == "SC=00000000").count();
        if done > 0 && done < count {
            mid_run += 1;
        }
        e.ok(&["delayed", "run", s(&file)]);
        assert!(statuses(&file).iter().all(|s| s == "SC=00000000"));
        for i in 0..count {
            assert!(!e.p(&format!("r/a{i}")).exists());
            assert_eq!(
                fs::read_to_string(e.p(&format!("r/b{i}"))).unwrap(),
                format!("{i}")
            );
        }
        if mid_run >= 5 {
            break;
        }
    }
    eprintln!("{mid_run} kill(s) landed mid-run (a whole run takes {full:?})");
    assert!(
        mid_run >= 1,
        "no kill landed in the middle of a run (a run takes {full:?})"
    );
}

#[test]
fn register_writes_a_unit_systemd_analyze_accepts() {
    if !reel_testkit::require_tool("systemd-analyze") {
        return;
    }
    let e = Env::new();
    let root = e.p("root");
    // The booting system's reel, at a path with a space (quoting in ExecStart=).
    let reel_in_root = root.join("opt/my reel/reel");
    fs::create_dir_all(reel_in_root.parent().unwrap()).unwrap();
    if fs::hard_link(env!("CARGO_BIN_EXE_reel"), &reel_in_root).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_reel"), &reel_in_root).unwrap();
    }
    let ops_here = root.join("var/lib/reel/restore ops");
    let staged = e.write("root/usr/lib/.libx.staged", "x");
    e.ok(&[
        "delayed",
        "add-move",
        "/usr/lib/.libx.staged",
        "/usr/lib/libx.so",
        "--file",
        s(&ops_here),
    ]);
    assert!(staged.exists());
    let out = e.ok(&[
        "--json",
        "delayed",
        "register",
        "/var/lib/reel/restore ops",
        "--root",
        s(&root),
        "--reel-path",
        "/opt/my reel/reel",
    ]);
    let reg: serde_json::Value = serde_json::from_str(&out).unwrap();
    let unit = reg["unit"].as_str().unwrap().to_string();
    // The instance name is the path escaped exactly as systemd-escape does it.
    if reel_testkit::require_tool("systemd-escape") {
        let escaped = reel_testkit::run_ok(
            Command::new("systemd-escape").args(["--path", "/var/lib/reel/restore ops"]),
        );
        assert_eq!(unit, format!("reel-delayed@{}.service", escaped.trim()));
    }
    let wants = root
        .join("etc/systemd/system/sysinit.target.wants")
        .join(&unit);
    assert_eq!(
        fs::read_link(&wants).unwrap(),
        Path::new("../reel-delayed@.service")
    );
    let template =
        fs::read_to_string(root.join("etc/systemd/system/reel-delayed@.service")).unwrap();
    for line in [
        "DefaultDependencies=no",
        "After=local-fs.target",
        "Before=sysinit.target",
        "ConditionPathExists=%f",
        "ExecStart=\"/opt/my reel/reel\" delayed run %f",
        "WantedBy=sysinit.target",
    ] {
        assert!(template.contains(line), "missing {line:?} in\n{template}");
    }
    assert!(
        !root
            .join("etc/systemd/system")
            .join(format!("{unit}.d"))
            .exists(),
        "no drop-in without options (and $REEL_STATE_DIR of this shell is not baked in)"
    );
    verify(&root, &unit);

    // Options for this file only go into a drop-in, which systemd must accept too.
    e.ok(&[
        "delayed",
        "register",
        "/var/lib/reel/restore ops",
        "--root",
        s(&root),
        "--reel-path",
        "/opt/my reel/reel",
        "--state-dir",
        "/var/lib/reel state",
        "--map",
        "C:=/mnt/c",
    ]);
    let dropin = root
        .join("etc/systemd/system")
        .join(format!("{unit}.d"))
        .join("50-reel-run.conf");
    let text = fs::read_to_string(&dropin).unwrap();
    assert!(
        text.contains("\"--state-dir\" \"/var/lib/reel state\" \"--map\" \"C:=/mnt/c\" %f"),
        "{text}"
    );
    verify(&root, &unit);

    // The unit calls `reel delayed unregister %f` when done; the same command here.
    e.ok(&[
        "delayed",
        "unregister",
        "/var/lib/reel/restore ops",
        "--root",
        s(&root),
    ]);
    assert!(fs::symlink_metadata(&wants).is_err());
    assert!(!dropin.exists());
    // Registering a file that does not exist on the live system is refused.
    let o = e.out(&["delayed", "register", s(&e.p("nope"))]);
    assert_eq!(code(&o), Some(2), "{}", stderr(&o));
}

fn verify(root: &Path, unit: &str) {
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg(unit)
        .output()
        .unwrap();
    assert!(
        o.status.success() && o.stderr.is_empty() && o.stdout.is_empty(),
        "systemd-analyze verify {unit}: {}\n{}{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn help_has_examples() {
    let e = Env::new();
    for sub in [
        "add-move",
        "add-delete",
        "add-shortname",
        "show",
        "run",
        "register",
        "unregister",
        "status",
    ] {
        let h = e.ok(&["delayed", sub, "--help"]);
        assert!(h.contains("Example"), "{sub} --help has no example:\n{h}");
    }
}
