//! reel's rmt client against GNU's rmt server (`/usr/sbin/rmt-tar`, from Debian's tar),
//! reached through a remote shell script that runs it locally (no ssh): a tape file of
//! records written to a local file "device", read back, and GNU's error replies.

use std::path::{Path, PathBuf};

use reel_tape::conformance::record;
use reel_tape::rmt::{RemoteDrive, RemoteKind, RshConfig};
use reel_tape::{MarkKind, SeekTo, TapeDrive, TapeError, Target};

/// GNU's rmt server (Debian's tar ships it as /usr/sbin/rmt-tar, which may not be on a
/// user's PATH).
fn gnu_rmt() -> Option<PathBuf> {
    let sbin = PathBuf::from("/usr/sbin/rmt-tar");
    if sbin.is_file() {
        return Some(sbin);
    }
    if !reel_testkit::require_tool("rmt-tar") {
        return None;
    }
    reel_testkit::find_on_path("rmt-tar")
}

/// A remote shell that ignores host and command and runs GNU's rmt here, logging the
/// arguments it was given.
fn rsh_script(dir: &Path, rmt: &Path) -> PathBuf {
    let script = dir.join("rsh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexec '{}'\n",
            dir.join("rsh-args").display(),
            rmt.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

#[test]
fn reel_writes_and_reads_a_tape_file_through_gnu_rmt() {
    let Some(rmt) = gnu_rmt() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = RshConfig {
        rsh: rsh_script(dir.path(), &rmt).display().to_string(),
        rmt: "/usr/sbin/rmt".into(),
    };
    let device = dir.path().join("tape.img");
    let dev = device.display().to_string();
    let records: Vec<Vec<u8>> = (0..5)
        .map(|i| record(i, if i == 4 { 777 } else { 10240 }))
        .collect();
    {
        let mut d = RemoteDrive::open("backup@localhost", &dev, &config).expect("open");
        assert_eq!(d.kind(), RemoteKind::File { version: 0 });
        assert!(d.describe().contains("tape.img"), "{}", d.describe());
        for r in &records {
            d.write(r).expect("write");
        }
        // A file has no tapemarks: said so, not silently ignored.
        assert_eq!(
            d.write_marks(MarkKind::Filemarks, 1, false)
                .unwrap_err()
                .code_name(),
            "ERROR_NOT_SUPPORTED"
        );
        d.flush().unwrap();
    }
    // GNU's rmt wrote exactly the bytes.
    let on_disk = std::fs::read(&device).unwrap();
    assert_eq!(on_disk, records.concat());
    // The remote shell got host, -l user and the rmt command, as tar passes them.
    let args = std::fs::read_to_string(dir.path().join("rsh-args")).unwrap();
    assert_eq!(
        args.lines().next(),
        Some("localhost -l backup /usr/sbin/rmt")
    );
    // Read it back in a new session, record by record.
    let mut d = RemoteDrive::open("localhost", &dev, &config).expect("reopen");
    let mut buf = vec![0u8; 10240];
    for r in &records {
        let n = d.read(&mut buf).expect("read");
        assert_eq!(&buf[..n], &r[..]);
    }
    match d.read(&mut buf) {
        Err(TapeError::NoDataDetected) => {}
        other => panic!("expected the end of data, got {other:?}"),
    }
    // Rewind (lseek through rmt) and read again; append at the end of data.
    d.set_position(SeekTo::Rewind, false).unwrap();
    let n = d.read(&mut buf).unwrap();
    assert_eq!(&buf[..n], &records[0][..]);
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    d.write(b"tail").unwrap();
    drop(d);
    assert_eq!(
        std::fs::metadata(&device).unwrap().len(),
        4 * 10240 + 777 + 4
    );
}

#[test]
fn the_tape_target_reaches_gnu_rmt_and_reports_its_errors() {
    let Some(rmt) = gnu_rmt() else { return };
    let dir = tempfile::tempdir().unwrap();
    let script = rsh_script(dir.path(), &rmt);
    reel_tape::rmt::set_commands(Some(&script.display().to_string()), None);
    let device = dir.path().join("t.img");
    let target = Target::parse(Some(&format!("localhost:{}", device.display()))).unwrap();
    assert!(matches!(target, Target::Remote { .. }));
    {
        let mut d = target.open().expect("open through the target");
        d.write(&record(1, 4096)).unwrap();
    }
    let mut d = target.open().expect("a rewinding open");
    let mut buf = vec![0u8; 4096];
    assert_eq!(d.read(&mut buf).unwrap(), 4096);
    assert_eq!(buf, record(1, 4096));
    drop(d);
    // GNU's rmt refuses a device in a directory that does not exist: ENOENT, said clearly.
    let missing = Target::parse(Some("localhost:/nonexistent-dir/x")).unwrap();
    let e = missing.open().err().expect("no such directory");
    assert_eq!(e.code_name(), "ERROR_INVALID_PARAMETER", "{e}");
    assert!(
        e.to_string().contains("localhost:/nonexistent-dir/x"),
        "{e}"
    );
    reel_tape::rmt::set_commands(None, None);
}
