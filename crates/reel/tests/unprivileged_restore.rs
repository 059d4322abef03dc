//! A restore by an ordinary user: what needs a privilege (trusted.* xattrs, other owners) is
//! left out and listed per file, everything else is restored, and nothing is left behind.
//! Run as root, the test drops to `nobody` with setpriv (which also drops capabilities).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use reel_testkit::{TempHome, require_root, require_tool, run_ok, write_file};

const REEL: &str = env!("CARGO_BIN_EXE_reel");
const NOBODY: u32 = 65534;

/// Makes `dir` and everything under it usable by any user (the test's home is root's).
fn open_up(dir: &Path) {
    run_ok(Command::new("chmod").arg("-R").arg("a+rwX").arg(dir));
}

#[test]
fn an_ordinary_user_restores_what_it_may_and_lists_the_rest() {
    if !require_root("to drop to another user for the restore")
        || !require_tool("setpriv")
        || !require_tool("setfattr")
        || !require_tool("getfattr")
    {
        return;
    }
    let home = TempHome::new();
    let src = home.path().join("src");
    write_file(&src.join("a.txt"), b"alpha");
    write_file(&src.join("sub/b.txt"), b"beta");
    run_ok(
        Command::new("setfattr")
            .args(["-n", "trusted.origin", "-v", "lab"])
            .arg(src.join("a.txt")),
    );
    run_ok(
        Command::new("setfattr")
            .args(["-n", "user.note", "-v", "keep"])
            .arg(src.join("a.txt")),
    );
    std::os::unix::fs::chown(src.join("sub/b.txt"), Some(1234), Some(1234)).unwrap();
    run_ok(
        home.command(REEL)
            .args(["--no-progress", "backup"])
            .arg(&src),
    );

    open_up(home.path());
    let target = home.path().join("out");
    std::fs::create_dir(&target).unwrap();
    std::os::unix::fs::chown(&target, Some(NOBODY), Some(NOBODY)).unwrap();
    let out = home
        .command("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            REEL,
            "--no-progress",
            "restore",
            "--to",
        ])
        .arg(&target)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.code(),
        Some(1),
        "per-file problems: exit 1\n{stderr}"
    );
    assert!(
        stderr.contains("trusted.origin") && stderr.contains("CAP_SYS_ADMIN"),
        "the missing privilege is listed: {stderr}"
    );

    let restored = target.join(src.strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(restored.join("sub/b.txt")).unwrap(), b"beta");
    assert_eq!(
        xattr_value(&restored.join("a.txt"), "user.note").as_deref(),
        Some(&b"keep"[..])
    );
    for f in ["a.txt", "sub/b.txt"] {
        let m = std::fs::metadata(restored.join(f)).unwrap();
        assert_eq!(m.uid(), NOBODY, "{f} belongs to the user who restored it");
        assert_eq!(m.permissions().mode() & 0o777, 0o644);
    }
    // Files were created unnamed and linked into place by a user without capabilities
    // (kernels before 6.10 refuse AT_EMPTY_PATH then and the /proc path is taken): no
    // temporary names are left.
    for dir in [restored.clone(), restored.join("sub")] {
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| !n.starts_with(".reel-tmp")),
            "{dir:?}: {names:?}"
        );
    }
}

fn xattr_value(path: &Path, name: &str) -> Option<Vec<u8>> {
    let out = Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}
