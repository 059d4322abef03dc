//! `reel rmt` with the real GNU clients (tar, and mt from Debian's cpio), reel's own rmt
//! client through it, and malformed requests sent to the real server process.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use reel_testkit::{TempHome, run_ok};

const REEL: &str = env!("CARGO_BIN_EXE_reel");

/// A remote shell for tar/mt/reel that ignores host and command and runs `reel rmt` on
/// `root` here.
fn rsh_script(home: &TempHome, root: &Path) -> PathBuf {
    reel_testkit::cli::reel_rmt_shell(home.path(), REEL, root)
}

fn gnu(home: &TempHome, tool: &str, rsh: &Path) -> Command {
    let mut c = home.command(tool);
    c.arg(format!("--rsh-command={}", rsh.display()));
    c.env_remove("REEL_RSH_COMMAND")
        .env_remove("REEL_RMT_COMMAND");
    c
}

fn reel(home: &TempHome) -> Command {
    let mut c = reel_testkit::reel!(home);
    c.env_remove("REEL_RSH_COMMAND")
        .env_remove("REEL_RMT_COMMAND");
    c
}

/// The member names of a tar archive on stdin.
fn tar_names(archive: &[u8]) -> Vec<String> {
    let mut child = Command::new("tar")
        .args(["-tf", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tar");
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "tar -t failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn gnu_tar_and_mt_use_a_cartridge_through_reel_rmt() {
    if !reel_testkit::require_tool("tar") || !reel_testkit::require_tool("mt-gnu") {
        return;
    }
    let home = TempHome::new();
    let lib = home.path().join("lib");
    run_ok(
        reel(&home)
            .arg("--tape")
            .arg(&lib)
            .args(["tape", "new", "cart", "--capacity", "64M"]),
    );
    let rsh = rsh_script(&home, &lib);
    let src = home.path().join("src");
    reel_testkit::write_file(&src.join("first.txt"), b"the first archive\n");
    reel_testkit::write_file(&src.join("second.txt"), b"the second archive\n");
    reel_testkit::write_file(
        &src.join("big.bin"),
        &reel_testkit::pseudo_random(7, 300_000),
    );

    // tar writes an archive, mt a filemark, tar a second archive.
    run_ok(
        gnu(&home, "tar", &rsh)
            .arg("-cf")
            .arg("localhost:cart")
            .arg("-C")
            .arg(&src)
            .arg("first.txt"),
    );
    run_ok(gnu(&home, "mt-gnu", &rsh).args(["-f", "localhost:cart", "weof"]));
    run_ok(
        gnu(&home, "tar", &rsh)
            .arg("-cf")
            .arg("localhost:cart")
            .arg("-C")
            .arg(&src)
            .args(["second.txt", "big.bin"]),
    );
    // mt positions: rewind, forward over one filemark; tar lists the second archive.
    run_ok(gnu(&home, "mt-gnu", &rsh).args(["-f", "localhost:cart", "rewind"]));
    run_ok(gnu(&home, "mt-gnu", &rsh).args(["-f", "localhost:cart", "fsf", "1"]));
    let listed = run_ok(gnu(&home, "tar", &rsh).args(["-tf", "localhost:cart"]));
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["second.txt", "big.bin"]
    );
    // …and extracts it intact.
    let out = home.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    run_ok(gnu(&home, "mt-gnu", &rsh).args(["-f", "localhost:cart", "rewind"]));
    run_ok(gnu(&home, "mt-gnu", &rsh).args(["-f", "localhost:cart", "fsf", "1"]));
    run_ok(
        gnu(&home, "tar", &rsh)
            .args(["-xf", "localhost:cart", "-C"])
            .arg(&out),
    );
    assert_eq!(
        std::fs::read(out.join("big.bin")).unwrap(),
        std::fs::read(src.join("big.bin")).unwrap()
    );
    // mt rewind, and tar lists the first.
    run_ok(gnu(&home, "mt-gnu", &rsh).args(["-f", "localhost:cart", "rewind"]));
    let listed = run_ok(gnu(&home, "tar", &rsh).args(["-tf", "localhost:cart"]));
    assert_eq!(listed.trim(), "first.txt");

    // reel lists both tape files of the cartridge, directly…
    let cart = lib.join("cart.vtape");
    let dump = |target: &str, file: &str, via_rmt: bool| {
        let mut c = reel(&home);
        c.args(["--tape", target]);
        if via_rmt {
            c.arg("--rsh-command").arg(&rsh);
        }
        let out = c.args(["tape", "dump", "--file", file]).output().unwrap();
        assert!(
            out.status.success(),
            "reel tape dump --file {file} of {target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tar_names(&out.stdout)
    };
    let cart_s = cart.display().to_string();
    assert_eq!(dump(&cart_s, "0", false), ["first.txt"]);
    assert_eq!(dump(&cart_s, "1", false), ["second.txt", "big.bin"]);
    // …and through its own rmt client talking to reel rmt.
    assert_eq!(dump("localhost:cart", "0", true), ["first.txt"]);
    assert_eq!(dump("localhost:cart", "1", true), ["second.txt", "big.bin"]);
    let pos = run_ok(
        reel(&home)
            .args(["--tape", "localhost:cart", "--json"])
            .arg("--rsh-command")
            .arg(&rsh)
            .args(["tape", "position"]),
    );
    let pos: serde_json::Value = serde_json::from_str(&pos).unwrap();
    assert_eq!(pos["drive"], "rmt:localhost:cart");
    assert_eq!(pos["partition"], 1);

    // tar -c to a name that does not exist creates a cartridge in the root (O_CREAT).
    run_ok(
        gnu(&home, "tar", &rsh)
            .arg("-cf")
            .arg("localhost:fresh")
            .arg("-C")
            .arg(&src)
            .arg("first.txt"),
    );
    assert!(lib.join("fresh.vtape/cartridge.toml").is_file());
    let listed = run_ok(reel(&home).arg("--tape").arg(&lib).args(["tape", "list"]));
    assert!(listed.contains("fresh"), "{listed}");
}

#[test]
fn reel_backs_up_and_lists_through_reel_rmt() {
    let home = TempHome::new();
    let lib = home.path().join("lib");
    run_ok(reel(&home).arg("--tape").arg(&lib).args([
        "tape",
        "new",
        "remote",
        "--capacity",
        "256M",
    ]));
    let rsh = rsh_script(&home, &lib);
    let src = home.path().join("data");
    reel_testkit::make_tree(&src, 20, 3);
    let with_rmt = |c: &mut Command| {
        c.args(["--tape", "localhost:remote"])
            .arg("--rsh-command")
            .arg(&rsh)
            .arg("--no-progress");
    };
    let mut b = reel(&home);
    with_rmt(&mut b);
    run_ok(b.arg("backup").arg(&src));
    let mut l = reel(&home);
    with_rmt(&mut l);
    let sets = run_ok(l.arg("list"));
    assert!(sets.contains('1'), "{sets}");
    let out = home.path().join("restored");
    let mut r = reel(&home);
    with_rmt(&mut r);
    run_ok(r.arg("restore").arg("--to").arg(&out));
    let restored_root = out.join(src.strip_prefix("/").unwrap());
    reel_testkit::assert_same_tree(&src, &restored_root);
}

/// Sends `input` to a `reel rmt` process; returns its stdout, stderr and exit code.
fn session(home: &TempHome, root: &Path, input: &[u8]) -> (Vec<u8>, String, i32) {
    let mut child = reel(home)
        .arg("rmt")
        .arg("--root")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    (
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The reply lines: `A…`, and `E…` with its message.
fn reply_lines(out: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn malformed_requests_to_reel_rmt_get_error_replies() {
    let home = TempHome::new();
    let lib = home.path().join("lib");
    run_ok(
        reel(&home)
            .arg("--tape")
            .arg(&lib)
            .args(["tape", "new", "c", "--capacity", "16M"]),
    );
    let outside = home.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // Each request alone after a good open, followed by a good request.
    let cases: &[(&str, &[u8], &str)] = &[
        ("garbage", b"\x01\x02garbage\xff\n", "E22"),
        ("unknown opcode", b"I4242\n1\n", "E22"),
        ("unknown extended opcode", b"I-1\n0\ni99\n1\n", "E22"),
        (
            "huge read count",
            b"R123456789012345678901234567890\n",
            "E22",
        ),
        ("read count over the record limit", b"R999999999\n", "E22"),
        ("non-numeric ioctl count", b"I5\nlots\n", "E22"),
        ("negative mark count", b"I5\n-3\n", "E22"),
        ("path escape with ..", b"O../../etc/passwd\n0\n", "E13"),
        ("absolute path outside the root", b"O/etc\n0\n", "E13"),
        (
            "creating outside the root",
            b"O/tmp/reel-rmt-should-not-exist\n66 O_RDWR|O_CREAT\n",
            "E13",
        ),
        (
            "reel request without the extension handshake, unknown verb",
            b"Xexplode\n",
            "E22",
        ),
    ];
    for (what, bad, want) in cases {
        let mut input = b"Oc\n2\n".to_vec();
        input.extend_from_slice(bad);
        input.extend_from_slice(b"Oc\n2\nI8\n1\n");
        let (out, err, code) = session(&home, &lib, &input);
        let lines = reply_lines(&out);
        assert_eq!(
            lines.first().map(String::as_str),
            Some("A0"),
            "{what}: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| l == want),
            "{what}: no {want} reply in {lines:?} (stderr {err})"
        );
        assert_eq!(
            lines.last().map(String::as_str),
            Some("A0"),
            "{what}: the session goes on"
        );
        assert_eq!(code, 0, "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    assert!(!Path::new("/tmp/reel-rmt-should-not-exist").exists());
    assert!(!Path::new("/tmp/reel-rmt-should-not-exist.vtape").exists());
    // A write of a huge count cannot be followed: E, and the session ends (exit 2).
    for (what, bad) in [
        ("huge write count", &b"W99999999999999\n"[..]),
        ("write count that is no number", b"Wmany\n"),
        ("write data cut short", b"W100\nshort"),
    ] {
        let mut input = b"Oc\n2\n".to_vec();
        input.extend_from_slice(bad);
        let (out, err, code) = session(&home, &lib, &input);
        let lines = reply_lines(&out);
        assert!(
            lines.iter().any(|l| l.starts_with('E')),
            "{what}: {lines:?}"
        );
        assert_eq!(code, 2, "{what}: {err}");
        assert!(err.contains("session ended"), "{what}: {err}");
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
    // Nothing appeared outside the served root.
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn reel_rmt_help_shows_how_to_use_it_from_tar() {
    let home = TempHome::new();
    let help = run_ok(reel(&home).args(["rmt", "--help"]));
    assert!(help.contains("--rsh-command"), "{help}");
    assert!(help.contains("tar --rsh-command="), "{help}");
    assert!(help.contains("-cf localhost:"), "{help}");
    assert!(help.contains("--root"), "{help}");
}
