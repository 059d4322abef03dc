//! Encrypted files in backups: captured raw with no key, restored so their owners (and the
//! recovery identity) open them, the plaintext nowhere on tape, and GNU tar's copy an age
//! file that `age -d` opens.

use std::process::Command;

use reel_testkit::cli::run;
use reel_testkit::{TempHome, pseudo_random, require_tool, write_file};

const KNOWN: &[u8] = b"KNOWN-PLAINTEXT-backup-93c7a1";

fn ok(cmd: &mut Command) -> Vec<u8> {
    reel_testkit::cli::succeeded(cmd).stdout
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn encrypted_files_are_backed_up_raw_and_open_after_restore() {
    if !require_tool("age") || !require_tool("tar") {
        return;
    }
    let home = TempHome::new();
    let reel = || {
        let mut c = reel_testkit::reel!(&home);
        c.env_remove("REEL_EFS_IDENTITY")
            .env_remove("REEL_EFS_RECOVERY");
        c.env("XDG_CONFIG_HOME", home.path().join("nowhere"));
        c
    };
    let owner = home.path().join("owner.key");
    let recovery = home.path().join("recovery.key");
    ok(reel()
        .arg("efs")
        .arg("--identity")
        .arg(&owner)
        .arg("keygen"));
    ok(reel()
        .arg("efs")
        .arg("--identity")
        .arg(&recovery)
        .arg("keygen"));
    let recovery_pub = String::from_utf8(ok(reel()
        .arg("efs")
        .arg("--identity")
        .arg(&recovery)
        .args(["keygen", "--show"])))
    .unwrap()
    .split_whitespace()
    .find(|w| w.starts_with("age1"))
    .expect("recipient")
    .to_string();
    let src = home.path().join("src");
    let secret: Vec<u8> = [KNOWN, &pseudo_random(5, 200_000), KNOWN].concat();
    write_file(&src.join("secret.bin"), &secret);
    write_file(&src.join("plain.txt"), b"not secret");
    ok(reel()
        .arg("efs")
        .arg("--identity")
        .arg(&owner)
        .args(["encrypt", "--recovery", &recovery_pub])
        .arg(src.join("secret.bin")));
    assert!(!contains(
        &std::fs::read(src.join("secret.bin")).unwrap(),
        KNOWN
    ));

    // The backup operator has no identity at all.
    ok(reel().arg("backup").arg(&src));
    let lib = home.path().join("reel-home/library");
    let tap = std::fs::read(lib.join("tape-0001.vtape/p1.tap")).unwrap();
    assert!(!contains(&tap, KNOWN), "plaintext on the cartridge");
    let dumped = ok(reel().args(["tape", "dump", "--file", "1"]));
    assert!(!contains(&dumped, KNOWN), "plaintext in the dumped set");
    assert!(
        contains(&dumped, b"REEL.efs"),
        "the marker travels as REEL.efs"
    );
    // Every file reel keeps: cartridge files (image, sidecar index, descriptions), the
    // catalog and its WAL, the library's drive state.
    for entry in walkdir::WalkDir::new(home.path().join("reel-home")) {
        let entry = entry.unwrap();
        if entry.file_type().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            assert!(
                !contains(&bytes, KNOWN),
                "plaintext in {}",
                entry.path().display()
            );
        }
    }

    let target = home.path().join("out");
    ok(reel().args(["restore", "--to"]).arg(&target));
    let restored = target
        .join(src.strip_prefix("/").unwrap())
        .join("secret.bin");
    for key in [&owner, &recovery] {
        let plain = ok(reel()
            .arg("efs")
            .arg("--identity")
            .arg(key)
            .arg("cat")
            .arg(&restored));
        assert_eq!(plain, secret, "opens with {}", key.display());
    }
    let status = String::from_utf8(ok(reel().args(["efs", "status"]).arg(&restored))).unwrap();
    assert!(
        status.contains("age1"),
        "still marked as encrypted: {status}"
    );

    // GNU tar's copy is an age file the age CLI opens.
    let tar_file = home.path().join("s.tar");
    std::fs::write(&tar_file, &dumped).unwrap();
    let x = home.path().join("x");
    std::fs::create_dir(&x).unwrap();
    let out = run(Command::new("tar")
        .arg("-xf")
        .arg(&tar_file)
        .arg("-C")
        .arg(&x));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let extracted = x.join(src.strip_prefix("/").unwrap()).join("secret.bin");
    let plain = ok(Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&owner)
        .arg(&extracted));
    assert_eq!(plain, secret);
}
