//! `reel efs` as a user and a backup operator run it: keys, in-place encryption, sharing,
//! raw export/import without any key, damaged input, and the age CLI reading what reel wrote.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use reel_testkit::cli::run;
use reel_testkit::{TempHome, pseudo_random, require_tool, write_file};

const KNOWN: &[u8] = b"KNOWN-PLAINTEXT-cli-5b1e";

/// A user's environment: their own config dir, no inherited efs settings.
struct User {
    home: TempHome,
}

impl User {
    fn new() -> User {
        User {
            home: TempHome::new(),
        }
    }

    fn config(&self) -> PathBuf {
        self.home.path().join("config")
    }

    fn identity(&self) -> PathBuf {
        self.config().join("reel/efs/identity.txt")
    }

    fn reel(&self) -> Command {
        let mut c = reel_testkit::reel!(&self.home);
        c.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.config())
            .env_remove("REEL_EFS_IDENTITY")
            .env_remove("REEL_EFS_RECOVERY")
            .stdin(Stdio::null());
        c
    }
}

fn ok(cmd: &mut Command) -> Vec<u8> {
    reel_testkit::cli::succeeded(cmd).stdout
}

fn text(b: Vec<u8>) -> String {
    String::from_utf8(b).unwrap()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut d = pseudo_random(seed, len);
    let mut at = 0;
    while at + KNOWN.len() <= d.len() {
        d[at..at + KNOWN.len()].copy_from_slice(KNOWN);
        at += 40_000;
    }
    d
}

fn export_raw(user: &User, path: &Path, out: &Path) {
    let file = fs::File::create(out).unwrap();
    ok(user
        .reel()
        .args(["efs", "export-raw"])
        .arg(path)
        .stdout(Stdio::from(file)));
}

fn import_raw(user: &User, path: &Path, raw: &Path, extra: &[&str]) -> Output {
    run(user
        .reel()
        .args(["efs", "import-raw"])
        .args(extra)
        .arg(path)
        .stdin(Stdio::from(fs::File::open(raw).unwrap())))
}

fn payload(path: &Path) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let h = reel_age_header_len(&bytes);
    bytes[h..].to_vec()
}

/// Length of the age header (up to the MAC line's newline).
fn reel_age_header_len(bytes: &[u8]) -> usize {
    let mac = bytes.windows(4).position(|w| w == b"\n---").unwrap() + 1;
    mac + bytes[mac..].iter().position(|&b| b == b'\n').unwrap() + 1
}

#[test]
fn operator_without_keys_backs_up_and_restores_what_owners_open() {
    let alice = User::new();
    let operator = User::new(); // has no identity at all
    let work = tempfile::tempdir().unwrap();
    let recovery_key = work.path().join("recovery.txt");

    let alice_recipient = text(ok(alice.reel().args(["efs", "keygen"])));
    assert!(
        alice_recipient.trim().starts_with("age1"),
        "{alice_recipient}"
    );
    assert!(alice.identity().is_file());
    let again = run(alice.reel().args(["efs", "keygen"]));
    assert_eq!(code(&again), 2, "keygen must never replace an identity");
    let shown = text(ok(alice.reel().args(["efs", "keygen", "--show"])));
    assert_eq!(shown.trim(), alice_recipient.trim());
    let recovery = text(ok(alice
        .reel()
        .args(["efs", "keygen", "--identity"])
        .arg(&recovery_key)));

    let file = work.path().join("diary.txt");
    let plain = data(120_000, 1);
    write_file(&file, &plain);
    ok(alice
        .reel()
        .args(["efs", "encrypt"])
        .arg(&file)
        .env("REEL_EFS_RECOVERY", recovery.trim()));
    assert!(!contains(&fs::read(&file).unwrap(), KNOWN));

    let st: serde_json::Value = serde_json::from_slice(&ok(alice
        .reel()
        .args(["efs", "status", "--json"])
        .arg(&file)))
    .unwrap();
    let f = &st["files"][0];
    assert_eq!(f["keys"], 2);
    assert_eq!(f["plaintext_size"], 120_000);
    assert_eq!(f["opened_by_identity"], 0);
    assert_eq!(f["stanzas"][1]["entry"]["role"], "recovery");
    assert_eq!(ok(alice.reel().args(["efs", "cat"]).arg(&file)), plain);

    // The operator: no identity anywhere, exports and imports all the same.
    let denied = run(operator.reel().args(["efs", "cat"]).arg(&file));
    assert_eq!(
        code(&denied),
        2,
        "{}",
        String::from_utf8_lossy(&denied.stderr)
    );
    assert!(String::from_utf8_lossy(&denied.stderr).contains("reel efs keygen"));
    let raw = work.path().join("diary.raw");
    export_raw(&operator, &file, &raw);
    let raw_bytes = fs::read(&raw).unwrap();
    assert!(raw_bytes.starts_with(b"REELEFSR"));
    assert!(!contains(&raw_bytes, KNOWN), "plaintext in the raw form");

    let restored = work.path().join("restored/diary.txt");
    fs::create_dir_all(restored.parent().unwrap()).unwrap();
    let out = import_raw(&operator, &restored, &raw, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&restored).unwrap(), fs::read(&file).unwrap());
    assert_eq!(ok(alice.reel().args(["efs", "cat"]).arg(&restored)), plain);
    assert_eq!(
        ok(alice
            .reel()
            .args(["efs", "cat", "--identity"])
            .arg(&recovery_key)
            .arg(&restored)),
        plain
    );

    // Import over an existing file needs --overwrite.
    let out = import_raw(&operator, &restored, &raw, &[]);
    assert_eq!(code(&out), 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    let out = import_raw(&operator, &restored, &raw, &["--overwrite", "--json"]);
    assert!(out.status.success());
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["replaced"], true);

    // Truncated or tampered raw forms: exit 4, with a byte offset, nothing under the name.
    let bad = work.path().join("bad.raw");
    let target = work.path().join("restored/never.txt");
    fs::write(&bad, &raw_bytes[..raw_bytes.len() - 500]).unwrap();
    let out = import_raw(&operator, &target, &bad, &[]);
    assert_eq!(code(&out), 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
    let mut flipped = raw_bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    fs::write(&bad, &flipped).unwrap();
    let out = import_raw(&operator, &target, &bad, &[]);
    assert_eq!(code(&out), 4);
    assert!(String::from_utf8_lossy(&out.stderr).contains("byte"));
    assert!(!target.exists());
    let leftovers: Vec<_> = fs::read_dir(work.path().join("restored"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("diary.txt")]);

    // A tampered ciphertext on disk: exit 4 when an owner reads it.
    let mut ct = fs::read(&restored).unwrap();
    let n = ct.len();
    ct[n - 20] ^= 0x80;
    fs::write(&restored, &ct).unwrap();
    let out = run(alice.reel().args(["efs", "cat"]).arg(&restored));
    assert_eq!(code(&out), 4, "{}", String::from_utf8_lossy(&out.stderr));

    // Independent reader: the age CLI opens the restored ciphertext with the recovery key.
    if require_tool("age") {
        let out = ok(Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&recovery_key)
            .arg(&file));
        assert_eq!(out, plain);
    }
}

#[test]
fn sharing_and_directories() {
    let alice = User::new();
    let bob = User::new();
    let work = tempfile::tempdir().unwrap();
    ok(alice.reel().args(["efs", "keygen"]));
    let bob_recipient = text(ok(bob.reel().args(["efs", "keygen"])));
    let file = work.path().join("plan.txt");
    let plain = data(70_000, 2);
    write_file(&file, &plain);
    ok(alice.reel().args(["efs", "encrypt"]).arg(&file));
    assert_eq!(code(&run(bob.reel().args(["efs", "cat"]).arg(&file))), 1);
    let before = payload(&file);
    // Bob's public key in a file works as well as the string.
    let bob_pub = work.path().join("bob.pub");
    fs::write(&bob_pub, &bob_recipient).unwrap();
    ok(alice
        .reel()
        .args(["efs", "add-user", "--name", "bob", "--recipient"])
        .arg(&bob_pub)
        .arg(&file));
    assert_eq!(payload(&file), before, "add-user changed the payload");
    assert_eq!(ok(bob.reel().args(["efs", "cat"]).arg(&file)), plain);
    let status = text(ok(bob.reel().args(["efs", "status"]).arg(&file)));
    assert!(status.contains("bob"), "{status}");
    assert!(status.contains("your identity opens it"), "{status}");
    ok(alice
        .reel()
        .args(["efs", "remove-user", "--recipient", bob_recipient.trim()])
        .arg(&file));
    assert_eq!(payload(&file), before);
    assert_ne!(code(&run(bob.reel().args(["efs", "cat"]).arg(&file))), 0);

    // A directory: -r marks it and encrypts what is under it; a file added later inherits.
    let dir = work.path().join("private");
    write_file(&dir.join("a.txt"), &data(1000, 3));
    write_file(&dir.join("sub/b.txt"), &data(2000, 4));
    let out = run(alice.reel().args(["efs", "encrypt"]).arg(&dir));
    assert_eq!(
        code(&out),
        1,
        "a directory without -r is a per-file problem"
    );
    ok(alice
        .reel()
        .args(["efs", "encrypt", "-r", "--recipient", bob_recipient.trim()])
        .arg(&dir));
    let st = text(ok(alice.reel().args(["efs", "status"]).arg(&dir)));
    assert!(st.contains("encrypted directory"), "{st}");
    write_file(&dir.join("sub/later.txt"), b"added later");
    ok(alice
        .reel()
        .args(["efs", "encrypt"])
        .arg(dir.join("sub/later.txt")));
    assert_eq!(
        ok(bob
            .reel()
            .args(["efs", "cat"])
            .arg(dir.join("sub/later.txt"))),
        b"added later"
    );
    let raw = work.path().join("sub.raw");
    export_raw(&bob, &dir.join("sub"), &raw);
    let out = import_raw(&bob, &work.path().join("sub-restored"), &raw, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(work.path().join("sub-restored").is_dir());
    ok(alice.reel().args(["efs", "decrypt", "-r"]).arg(&dir));
    assert_eq!(fs::read(dir.join("sub/b.txt")).unwrap(), data(2000, 4));
}

#[test]
fn an_age_cli_file_is_marked_and_round_trips_raw() {
    if !require_tool("age") || !require_tool("age-keygen") {
        return;
    }
    let user = User::new();
    let work = tempfile::tempdir().unwrap();
    let key = work.path().join("key.txt");
    ok(Command::new("age-keygen").arg("-o").arg(&key));
    let recipient = text(ok(Command::new("age-keygen").arg("-y").arg(&key)));
    let plain = data(50_000, 5);
    let src = work.path().join("plain");
    write_file(&src, &plain);
    let enc = work.path().join("doc.age");
    ok(Command::new("age")
        .args(["-r", recipient.trim(), "-o"])
        .arg(&enc)
        .arg(&src));
    ok(user
        .reel()
        .args(["efs", "mark", "--identity"])
        .arg(&key)
        .arg(&enc));
    let raw = work.path().join("doc.raw");
    export_raw(&user, &enc, &raw);
    let restored = work.path().join("restored.age");
    let out = import_raw(&user, &restored, &raw, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ok(Command::new("age")
            .arg("-d")
            .arg("-i")
            .arg(&key)
            .arg(&restored)),
        plain
    );
    assert_eq!(
        ok(user
            .reel()
            .args(["efs", "cat", "--identity"])
            .arg(&key)
            .arg(&restored)),
        plain
    );

    // Through a backup and a restore too, by an operator with no key: the restored file is
    // still marked and the age CLI still opens it.
    let operator = User::new();
    let tree = work.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::rename(&enc, tree.join("doc.age")).unwrap();
    ok(operator.reel().args(["--no-progress", "backup"]).arg(&tree));
    let out_dir = work.path().join("out");
    ok(operator
        .reel()
        .args(["--no-progress", "restore", "--to"])
        .arg(&out_dir));
    let back = out_dir
        .join(tree.strip_prefix("/").unwrap())
        .join("doc.age");
    assert_eq!(
        ok(Command::new("age").arg("-d").arg("-i").arg(&key).arg(&back)),
        plain
    );
    let st: serde_json::Value = serde_json::from_slice(&ok(user
        .reel()
        .args(["efs", "status", "--json"])
        .arg(&back)))
    .unwrap();
    assert_eq!(st["not_encrypted"], 0, "still an encrypted file: {st}");
    assert_eq!(st["files"][0]["keys"], 1, "{st}");
}

#[test]
fn every_efs_subcommand_has_help_with_an_example() {
    let user = User::new();
    for sub in [
        "keygen",
        "encrypt",
        "decrypt",
        "cat",
        "status",
        "add-user",
        "remove-user",
        "mark",
        "export-raw",
        "import-raw",
    ] {
        let help = text(ok(user.reel().args(["efs", sub, "--help"])));
        assert!(
            help.contains("Example"),
            "reel efs {sub} --help has no example:\n{help}"
        );
    }
}

#[test]
fn the_recovery_recipient_comes_from_the_policy_when_not_given() {
    let alice = User::new();
    let work = tempfile::tempdir().unwrap();
    let recovery_key = work.path().join("recovery.txt");
    ok(alice.reel().args(["efs", "keygen"]));
    let recovery = text(ok(alice
        .reel()
        .args(["efs", "keygen", "--identity"])
        .arg(&recovery_key)));
    write_file(
        &alice.home.root().join("etc/reel/reel.conf"),
        format!("efs-recovery = \"{}\"\n", recovery.trim()).as_bytes(),
    );
    let file = work.path().join("ledger.txt");
    let plain = data(5000, 7);
    write_file(&file, &plain);
    ok(alice.reel().args(["efs", "encrypt"]).arg(&file));
    // The recovery identity alone opens it.
    let opened = ok(alice
        .reel()
        .args(["efs", "cat", "--identity"])
        .arg(&recovery_key)
        .arg(&file));
    assert_eq!(opened, plain);

    // A policy recipient that is not one is an error naming reel.conf, and nothing changes.
    write_file(
        &alice.home.root().join("etc/reel/reel.conf"),
        b"efs-recovery = \"not-a-key\"\n",
    );
    let other = work.path().join("other.txt");
    write_file(&other, &plain);
    let out = run(alice.reel().args(["efs", "encrypt"]).arg(&other));
    assert_ne!(code(&out), 0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reel.conf"), "{err}");
    assert_eq!(fs::read(&other).unwrap(), plain);
}
