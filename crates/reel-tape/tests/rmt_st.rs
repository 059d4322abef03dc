//! The st mapping carried over rmt, against the st emulation of reel's rmt server (the
//! requests GNU tar and GNU mt send): reel's client with reel's extension switched off
//! drives a cartridge through `I`/`S` (GNU's protocol, Linux codes) or the extended
//! protocol (`I-1`, standard codes, `s` status fields), reading errno values and status
//! bits exactly as it reads those of a real drive behind a real rmt.

use std::os::unix::net::UnixStream;
use std::path::Path;

use reel_tape::conformance::record;
use reel_tape::rmt::{Connection, RemoteDrive, RemoteKind, ServerConfig, serve};
use reel_tape::vtape::{Cartridge, store::DirStore};
use reel_tape::{MarkKind, PositionKind, PrepareOp, SeekTo, TapeDrive, TapeError};
use reel_testkit::new_cartridge;

fn open_plain(root: &Path, name: &str, extended: bool) -> RemoteDrive {
    let (client, server) = UnixStream::pair().expect("socket pair");
    let mut config = ServerConfig::new(root);
    config.reel_extension = false;
    config.extended = extended;
    std::thread::spawn(move || {
        let input = server.try_clone().expect("clone");
        serve(input, server, &config)
    });
    let conn = Connection::over(
        Box::new(client.try_clone().expect("clone")),
        Box::new(client),
        &format!("test:{name}"),
    );
    let d = RemoteDrive::open_over(conn, name).expect("open");
    assert_eq!(
        d.kind(),
        RemoteKind::Tape {
            version: u8::from(extended)
        }
    );
    d
}

fn read(d: &mut dyn TapeDrive) -> Result<Vec<u8>, TapeError> {
    let mut buf = vec![0u8; 1 << 20];
    let n = d.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn code<T: std::fmt::Debug>(r: Result<T, TapeError>) -> &'static str {
    match r {
        Err(e) => e.code_name(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// label FM r1 r2 FM
fn sample(d: &mut dyn TapeDrive) {
    d.write(&record(0, 100)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
    d.write(&record(1, 4096)).unwrap();
    d.write(&record(2, 333)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
    d.set_position(SeekTo::Rewind, false).unwrap();
}

fn records_marks_and_spacing(extended: bool) {
    let root = tempfile::tempdir().unwrap();
    new_cartridge(root.path(), "t", 64 << 20);
    let mut d = open_plain(root.path(), "t", extended);
    let d: &mut dyn TapeDrive = &mut d;
    sample(d);
    assert_eq!(read(d).unwrap(), record(0, 100));
    assert_eq!(code(read(d)), "ERROR_FILEMARK_DETECTED");
    assert_eq!(read(d).unwrap(), record(1, 4096));
    assert_eq!(read(d).unwrap(), record(2, 333));
    assert_eq!(code(read(d)), "ERROR_FILEMARK_DETECTED");
    // End of data: st's 0 bytes, then EIO; both are NO_DATA_DETECTED.
    assert_eq!(code(read(d)), "ERROR_NO_DATA_DETECTED");
    assert_eq!(code(read(d)), "ERROR_NO_DATA_DETECTED");
    // A short buffer: ENOMEM from the server, MTBSR and a full read by the client.
    d.set_position(SeekTo::Rewind, false).unwrap();
    let mut small = [0u8; 16];
    match d.read(&mut small) {
        Err(TapeError::MoreData { record_len, copied }) => {
            assert_eq!((record_len, copied), (100, 16));
            assert_eq!(small[..], record(0, 100)[..16]);
        }
        other => panic!("expected MORE_DATA, got {other:?}"),
    }
    assert_eq!(
        code(read(d)),
        "ERROR_FILEMARK_DETECTED",
        "moved past the record"
    );
    // Filemark spacing.
    d.set_position(SeekTo::Rewind, false).unwrap();
    d.set_position(SeekTo::SpaceFilemarks(1), false).unwrap();
    assert_eq!(read(d).unwrap(), record(1, 4096));
    d.set_position(SeekTo::SpaceFilemarks(-1), false).unwrap();
    assert_eq!(code(read(d)), "ERROR_FILEMARK_DETECTED", "before the mark");
    // Block spacing stops at a filemark: the file number changed.
    d.set_position(SeekTo::Rewind, false).unwrap();
    assert_eq!(
        code(d.set_position(SeekTo::SpaceRelativeBlocks(3), false)),
        "ERROR_FILEMARK_DETECTED"
    );
    assert_eq!(read(d).unwrap(), record(1, 4096));
    // Past the end and past the beginning.
    d.set_position(SeekTo::Rewind, false).unwrap();
    assert_eq!(
        code(d.set_position(SeekTo::SpaceFilemarks(5), false)),
        "ERROR_NO_DATA_DETECTED"
    );
    assert_eq!(
        code(d.set_position(SeekTo::SpaceFilemarks(-9), false)),
        "ERROR_BEGINNING_OF_MEDIA"
    );
    assert_eq!(read(d).unwrap(), record(0, 100), "at the beginning");
    // End of data, then append.
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    d.write(&record(3, 50)).unwrap();
    d.set_position(SeekTo::Rewind, false).unwrap();
    d.set_position(SeekTo::SpaceFilemarks(2), false).unwrap();
    assert_eq!(read(d).unwrap(), record(3, 50));
    // rmt carries no MTIOCPOS.
    assert_eq!(
        code(d.position(PositionKind::Logical)),
        "ERROR_NOT_SUPPORTED"
    );
}

#[test]
fn records_marks_and_spacing_over_gnu_style_rmt() {
    records_marks_and_spacing(false);
}

#[test]
fn records_marks_and_spacing_over_the_extended_protocol() {
    records_marks_and_spacing(true);
}

#[test]
fn fixed_blocks_load_lock_and_write_protection_over_rmt() {
    let root = tempfile::tempdir().unwrap();
    new_cartridge(root.path(), "t", 64 << 20);
    {
        let mut d = open_plain(root.path(), "t", false);
        d.set_media_parameters(512).unwrap();
        assert_eq!(d.media_parameters().unwrap().block_size, 512, "MTSETBLK");
        assert_eq!(code(d.write(&[1u8; 1000])), "ERROR_INVALID_BLOCK_LENGTH");
        d.write(&[2u8; 1024]).unwrap();
        d.set_media_parameters(0).unwrap();
        // Unload, load, lock.
        d.prepare(PrepareOp::Unload, false).unwrap();
        assert_eq!(code(d.status()), "ERROR_NO_MEDIA_IN_DRIVE");
        assert_eq!(code(read(&mut d)), "ERROR_NO_MEDIA_IN_DRIVE");
        d.prepare(PrepareOp::Load, false).unwrap();
        d.status().unwrap();
        d.prepare(PrepareOp::Lock, false).unwrap();
        assert_eq!(
            code(d.prepare(PrepareOp::Unload, false)),
            "ERROR_UNABLE_TO_UNLOAD_MEDIA"
        );
        d.prepare(PrepareOp::Unlock, false).unwrap();
    }
    // Write-protect the cartridge: writes and marks are refused, reads go on.
    let path = root.path().join("t.vtape");
    let mut config = Cartridge::read_config(&DirStore::new(&path)).unwrap();
    config.write_protected = true;
    std::fs::write(path.join("cartridge.toml"), config.to_toml()).unwrap();
    let mut d = open_plain(root.path(), "t", false);
    assert!(d.media_parameters().unwrap().write_protected, "GMT_WR_PROT");
    d.set_position(SeekTo::Rewind, false).unwrap();
    assert_eq!(code(d.write(b"x")), "ERROR_WRITE_PROTECT");
    assert_eq!(
        code(d.write_marks(MarkKind::Filemarks, 1, false)),
        "ERROR_WRITE_PROTECT"
    );
    let mut two = vec![0u8; 1024];
    d.set_media_parameters(512).unwrap();
    assert_eq!(d.read(&mut two).unwrap(), 1024);
    assert_eq!(two, vec![2u8; 1024]);
}

#[test]
fn early_warning_over_rmt_follows_st() {
    let root = tempfile::tempdir().unwrap();
    new_cartridge(root.path(), "small", 4 << 20);
    let mut d = open_plain(root.path(), "small", false);
    let rec = record(9, 64 * 1024);
    let (mut written, mut warnings) = (0u32, 0u32);
    loop {
        match d.write(&rec) {
            Ok(()) => written += 1,
            Err(TapeError::EarlyWarning) => {
                written += 1;
                warnings += 1;
            }
            Err(TapeError::EndOfMedia) => break,
            Err(e) => panic!("unexpected {e}"),
        }
        assert!(written < 1000, "no end of media");
    }
    assert!(warnings > 0, "no early warning before the end");
    assert!(written > 40, "only {written} records fit 4 MiB");
    d.set_position(SeekTo::Rewind, false).unwrap();
    let mut n = 0;
    while let Ok(r) = read(&mut d) {
        assert_eq!(r, rec);
        n += 1;
    }
    assert_eq!(
        n, written,
        "every write that reported success or a warning is on tape"
    );
}
