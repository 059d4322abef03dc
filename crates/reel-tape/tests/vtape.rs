//! The virtual cartridge on real files: records, marks, positioning, persistence, crash
//! recovery and damage detection.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use reel_tape::vtape::{Cartridge, CartridgeConfig, VirtualDrive};
use reel_tape::{MarkKind, PositionKind, SeekTo, TapeDrive, TapeError};

fn new_cartridge(dir: &Path, capacity: u64) -> PathBuf {
    let path = dir.join("t.vtape");
    Cartridge::create(&path, &CartridgeConfig::new("t", capacity)).expect("create cartridge");
    path
}

fn record(n: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(n) as u8)
        .collect()
}

fn read_rec(d: &mut dyn TapeDrive) -> Result<Vec<u8>, TapeError> {
    let mut buf = vec![0u8; 1 << 20];
    let n = d.read(&mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

/// label FM r1 r2 FM r3 FM
fn write_sample(d: &mut dyn TapeDrive) {
    d.write(&record(0, 100)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
    d.write(&record(1, 4096)).unwrap();
    d.write(&record(2, 333)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
    d.write(&record(3, 70_000)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
}

#[test]
fn records_and_marks_read_back_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    write_sample(&mut d);
    d.set_position(SeekTo::Rewind, false).unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), record(0, 100));
    assert!(matches!(read_rec(&mut d), Err(TapeError::FilemarkDetected)));
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 2);
    assert_eq!(read_rec(&mut d).unwrap(), record(1, 4096));
    assert_eq!(read_rec(&mut d).unwrap(), record(2, 333));
    assert!(matches!(read_rec(&mut d), Err(TapeError::FilemarkDetected)));
    assert_eq!(read_rec(&mut d).unwrap(), record(3, 70_000));
    assert!(matches!(read_rec(&mut d), Err(TapeError::FilemarkDetected)));
    let end = d.position(PositionKind::Logical).unwrap();
    let e = read_rec(&mut d).unwrap_err();
    assert!(matches!(e, TapeError::NoDataDetected));
    assert_eq!(e.code(), 1104);
    assert_eq!(
        d.position(PositionKind::Logical).unwrap(),
        end,
        "EOD leaves the position"
    );
}

#[test]
fn short_buffer_gets_more_data_and_moves_past_record() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    d.write(&record(7, 1000)).unwrap();
    d.write(&record(8, 10)).unwrap();
    d.set_position(SeekTo::Rewind, false).unwrap();
    let mut small = [0u8; 16];
    match d.read(&mut small) {
        Err(TapeError::MoreData { record_len, copied }) => {
            assert_eq!((record_len, copied), (1000, 16));
        }
        other => panic!("expected MoreData, got {other:?}"),
    }
    assert_eq!(&small[..], &record(7, 1000)[..16]);
    assert_eq!(read_rec(&mut d).unwrap(), record(8, 10));
}

#[test]
fn writing_in_the_middle_makes_new_end_of_data() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    write_sample(&mut d);
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 2,
        },
        false,
    )
    .unwrap();
    d.write(&record(9, 50)).unwrap();
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 3);
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 2,
        },
        false,
    )
    .unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), record(9, 50));
    assert!(matches!(read_rec(&mut d), Err(TapeError::NoDataDetected)));
}

#[test]
fn spacing_filemarks_forward_and_backward() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    write_sample(&mut d); // objects: 0 r0, 1 FM, 2 r1, 3 r2, 4 FM, 5 r3, 6 FM
    d.set_position(SeekTo::Rewind, false).unwrap();
    d.set_position(SeekTo::SpaceFilemarks(2), false).unwrap();
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 5);
    assert_eq!(read_rec(&mut d).unwrap(), record(3, 70_000));
    d.set_position(SeekTo::SpaceFilemarks(-1), false).unwrap();
    assert_eq!(
        d.position(PositionKind::Logical).unwrap().offset,
        4,
        "backward stops before the mark"
    );
    let e = d
        .set_position(SeekTo::SpaceFilemarks(5), false)
        .unwrap_err();
    assert!(matches!(e, TapeError::NoDataDetected));
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 7);
    let e = d
        .set_position(SeekTo::SpaceFilemarks(-9), false)
        .unwrap_err();
    assert!(matches!(e, TapeError::BeginningOfMedia));
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 0);
}

#[test]
fn cartridge_persists_across_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    {
        let mut d = VirtualDrive::open(&path).unwrap();
        write_sample(&mut d);
    }
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 1,
            block: 5,
        },
        false,
    )
    .unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), record(3, 70_000));
}

#[test]
fn second_open_of_a_loaded_cartridge_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let _d = VirtualDrive::open(&path).unwrap();
    let e = VirtualDrive::open(&path)
        .err()
        .expect("second open must fail");
    assert!(e.to_string().contains("in use"), "{e}");
}

#[test]
fn torn_tail_is_cut_and_the_cartridge_accepts_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    {
        let mut d = VirtualDrive::open(&path).unwrap();
        write_sample(&mut d);
    }
    // A crash mid-record: half a record appended after the last mark.
    let tap = path.join("p1.tap");
    let mut f = OpenOptions::new().append(true).open(&tap).unwrap();
    f.write_all(&5000u32.to_le_bytes()).unwrap();
    f.write_all(&[0xAB; 1234]).unwrap();
    drop(f);
    let mut d = VirtualDrive::open(&path).unwrap();
    assert!(d.cartridge().unwrap().recovered_tail() > 0);
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 7);
    d.write(&record(4, 10)).unwrap();
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 7,
        },
        false,
    )
    .unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), record(4, 10));
}

#[test]
fn records_after_the_last_sync_survive_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    write_sample(&mut d);
    d.write(&record(5, 999)).unwrap();
    // Simulate a kill: the drive is never dropped, so no sync happens.
    std::mem::forget(d);
    // The lock died with the "process": drop it by reopening through a fresh file lock is
    // not possible in-process, so copy the cartridge as a crash image.
    let copy = tmp.path().join("crash.vtape");
    std::fs::create_dir(&copy).unwrap();
    for f in ["cartridge.toml", "p1.tap", "p1.idx"] {
        std::fs::copy(path.join(f), copy.join(f)).unwrap();
    }
    let mut d = VirtualDrive::open(&copy).unwrap();
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 7,
        },
        false,
    )
    .unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), record(5, 999));
}

#[test]
fn lost_index_is_rebuilt_from_the_image() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    {
        let mut d = VirtualDrive::open(&path).unwrap();
        write_sample(&mut d);
    }
    std::fs::remove_file(path.join("p1.idx")).unwrap();
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(SeekTo::SpaceFilemarks(1), false).unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), record(1, 4096));
}

#[test]
fn flipped_bit_in_a_record_is_a_crc_error_naming_the_object() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    {
        let mut d = VirtualDrive::open(&path).unwrap();
        write_sample(&mut d);
    }
    let tap = path.join("p1.tap");
    let mut bytes = std::fs::read(&tap).unwrap();
    // Record 1 (object 2) starts after r0 (8+100) and the mark (4): flip a payload bit.
    bytes[112 + 4 + 100] ^= 0x10;
    std::fs::write(&tap, &bytes).unwrap();
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 2,
        },
        false,
    )
    .unwrap();
    let e = read_rec(&mut d).unwrap_err();
    assert_eq!(e.code(), 23, "{e}");
    assert!(e.to_string().contains("object 2"), "{e}");
    // The tape moved past the bad record; the next one reads.
    assert_eq!(read_rec(&mut d).unwrap(), record(2, 333));
}

#[test]
fn damaged_framing_without_index_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    {
        let mut d = VirtualDrive::open(&path).unwrap();
        write_sample(&mut d);
    }
    let tap = path.join("p1.tap");
    let mut bytes = std::fs::read(&tap).unwrap();
    // Corrupt the trailing length word of record 1 (object 2).
    let at = 112 + 4 + 4096;
    bytes[at] ^= 0xFF;
    std::fs::write(&tap, &bytes).unwrap();
    std::fs::remove_file(path.join("p1.idx")).unwrap();
    let len_before = bytes.len() as u64;
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 2,
        },
        false,
    )
    .unwrap();
    let e = read_rec(&mut d).unwrap_err();
    assert_eq!(e.code(), 23, "{e}");
    let e = d.write(b"x").unwrap_err();
    assert_eq!(e.code(), 23, "{e}");
    assert_eq!(
        std::fs::metadata(&tap).unwrap().len(),
        len_before,
        "nothing destroyed"
    );
}

#[test]
fn plain_simh_image_from_another_tool_reads() {
    // Class-0 records and zero-length tape marks, with an erase gap and an end-of-medium
    // marker, as other SIMH tools write them.
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    let mut img = Vec::new();
    let rec = |img: &mut Vec<u8>, data: &[u8]| {
        img.extend_from_slice(&(data.len() as u32).to_le_bytes());
        img.extend_from_slice(data);
        if data.len() % 2 == 1 {
            img.push(0);
        }
        img.extend_from_slice(&(data.len() as u32).to_le_bytes());
    };
    rec(&mut img, b"HDR1 odd");
    rec(&mut img, b"abc");
    img.extend_from_slice(&0u32.to_le_bytes());
    img.extend_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    rec(&mut img, b"second file");
    img.extend_from_slice(&0u32.to_le_bytes());
    img.extend_from_slice(&0u32.to_le_bytes());
    img.extend_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    std::fs::write(path.join("p1.tap"), &img).unwrap();
    let mut d = VirtualDrive::open(&path).unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), b"HDR1 odd");
    assert_eq!(read_rec(&mut d).unwrap(), b"abc");
    assert!(matches!(read_rec(&mut d), Err(TapeError::FilemarkDetected)));
    assert_eq!(read_rec(&mut d).unwrap(), b"second file");
    assert!(matches!(read_rec(&mut d), Err(TapeError::FilemarkDetected)));
    assert!(matches!(read_rec(&mut d), Err(TapeError::FilemarkDetected)));
    assert!(matches!(read_rec(&mut d), Err(TapeError::NoDataDetected)));
}

#[test]
fn capacity_and_early_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 16 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    let zone = d.drive_parameters().unwrap().eot_warning_zone_size as u64;
    assert!(zone > 0);
    let rec = vec![0x5Au8; 256 * 1024];
    let mut warned_at = None;
    for i in 0.. {
        match d.write(&rec) {
            Ok(()) => {}
            Err(TapeError::EarlyWarning) => {
                warned_at.get_or_insert(i);
            }
            Err(TapeError::EndOfMedia) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let warned_at = warned_at.expect("early warning before end of media");
    let m = d.media_parameters().unwrap();
    assert!(m.remaining < rec.len() as u64 + 8);
    assert!((warned_at as u64 + 1) * (rec.len() as u64 + 8) > m.capacity - zone);
    // The failed write wrote nothing: the last object is still a full record.
    let pos = d.position(PositionKind::Logical).unwrap().offset;
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: pos - 1,
        },
        false,
    )
    .unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), rec);
}

#[test]
fn bad_cartridge_description_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), 64 << 20);
    std::fs::write(
        path.join("cartridge.toml"),
        "format = 1\ncapacity = \"lots\"\n",
    )
    .unwrap();
    let e = VirtualDrive::open(&path).err().expect("must fail");
    let msg = e.to_string();
    assert!(msg.contains("cartridge.toml"), "{msg}");
}
