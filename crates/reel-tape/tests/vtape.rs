//! The virtual cartridge on real files: records, marks, positioning, persistence, crash
//! recovery and damage detection.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use reel_tape::vtape::{Cartridge, VirtualDrive};
use reel_tape::{MarkKind, PositionKind, SeekTo, TapeDrive, TapeError};
use reel_testkit::new_cartridge;

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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
    let _d = VirtualDrive::open(&path).unwrap();
    let e = VirtualDrive::open(&path)
        .err()
        .expect("second open must fail");
    assert!(e.to_string().contains("in use"), "{e}");
}

#[test]
fn torn_tail_is_cut_and_the_cartridge_accepts_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let notes = d.open_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    // The 4-byte length word and the 1,234 bytes after it.
    assert!(
        notes[0].contains("1238 bytes of an unfinished write"),
        "{notes:?}"
    );
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 16 << 20);
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
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
    std::fs::write(
        path.join("cartridge.toml"),
        "format = 1\ncapacity = \"lots\"\n",
    )
    .unwrap();
    let e = VirtualDrive::open(&path).err().expect("must fail");
    let msg = e.to_string();
    assert!(msg.contains("cartridge.toml"), "{msg}");
}

/// Every file of a cartridge directory except its lock, to prove "nothing changed".
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "lock"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn sample_cartridge(dir: &Path) -> PathBuf {
    let path = new_cartridge(dir, "t", 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    write_sample(&mut d);
    path
}

#[test]
fn bad_input_gets_a_win32_error_and_changes_nothing() {
    use reel_tape::{EraseKind, PartitionMethod, PrepareOp};
    let tmp = tempfile::tempdir().unwrap();
    let path = sample_cartridge(tmp.path());
    let before = snapshot(&path);
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(SeekTo::SpaceFilemarks(1), false).unwrap();
    let at = d.position(PositionKind::Logical).unwrap();
    let params = d.media_parameters().unwrap();
    type Case = (
        &'static str,
        fn(&mut VirtualDrive) -> Result<(), TapeError>,
        u32,
    );
    let cases: Vec<Case> = vec![
        (
            "block size too large",
            |d| d.set_media_parameters(reel_tape::vtape::MAX_BLOCK_SIZE + 1),
            87,
        ),
        (
            "block size u32::MAX",
            |d| d.set_media_parameters(u32::MAX),
            87,
        ),
        (
            "seek to partition 3 of 1",
            |d| {
                d.set_position(
                    SeekTo::LogicalBlock {
                        partition: 3,
                        block: 0,
                    },
                    false,
                )
            },
            87,
        ),
        (
            "end of data of partition 2 of 1",
            |d| d.set_position(SeekTo::EndOfData { partition: 2 }, false),
            87,
        ),
        (
            "9 partitions",
            |d| d.create_partitions(PartitionMethod::Select, 9, 0),
            87,
        ),
        (
            "0 partitions",
            |d| d.create_partitions(PartitionMethod::Select, 0, 0),
            87,
        ),
        (
            "initiator without a size",
            |d| d.create_partitions(PartitionMethod::Initiator, 2, 0),
            87,
        ),
        (
            "initiator larger than the cartridge",
            |d| d.create_partitions(PartitionMethod::Initiator, 2, 64),
            1105,
        ),
        (
            "initiator leaving no last partition",
            |d| d.create_partitions(PartitionMethod::Initiator, 4, 22),
            1105,
        ),
        (
            "zero sequential count is no move",
            |d| d.set_position(SeekTo::SpaceSequentialFilemarks(0), false),
            0,
        ),
        ("empty record", |d| d.write(b""), 1106),
        (
            "record over the limit",
            |d| d.write(&vec![0u8; reel_tape::vtape::MAX_BLOCK_SIZE as usize + 1]),
            1106,
        ),
    ];
    for (what, op, code) in cases {
        match op(&mut d) {
            Ok(()) => assert_eq!(code, 0, "{what}: succeeded"),
            Err(e) => {
                assert_eq!(e.code(), code, "{what}: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
        assert_eq!(
            d.position(PositionKind::Logical).unwrap(),
            at,
            "{what} moved the tape"
        );
    }
    assert_eq!(d.media_parameters().unwrap(), params);
    // Messages name the thing.
    let e = d
        .set_position(
            SeekTo::LogicalBlock {
                partition: 3,
                block: 0,
            },
            false,
        )
        .unwrap_err();
    assert!(e.to_string().contains("partition 3"), "{e}");
    drop(d);
    assert_eq!(snapshot(&path), before, "bad input changed the cartridge");

    // Write-protected: every mutating operation refused, files untouched.
    let mut config =
        Cartridge::read_config(&reel_tape::vtape::store::DirStore::new(&path)).unwrap();
    config.write_protected = true;
    std::fs::write(path.join("cartridge.toml"), config.to_toml()).unwrap();
    let before = snapshot(&path);
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 2,
        },
        false,
    )
    .unwrap();
    let refused = [
        d.write(b"x"),
        d.write_marks(MarkKind::Filemarks, 1, false),
        d.write_marks(MarkKind::Setmarks, 0, false),
        d.erase(EraseKind::Short, false),
        d.erase(EraseKind::Long, false),
        d.create_partitions(PartitionMethod::Select, 2, 0),
        d.prepare(PrepareOp::Format, false),
    ];
    for r in refused {
        let e = r.unwrap_err();
        assert_eq!(e.code(), 19, "{e}");
        assert!(e.to_string().contains("write-protected"), "{e}");
    }
    drop(d);
    assert_eq!(
        snapshot(&path),
        before,
        "a write-protected cartridge changed"
    );
}

#[test]
fn damaged_descriptions_are_clear_errors_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = sample_cartridge(tmp.path());
    let good = std::fs::read_to_string(path.join("cartridge.toml")).unwrap();
    let damaged = [
        ("", "missing field"),
        ("format = 1\ncapacity = \"lots\"\n", "capacity"),
        ("\u{0}\u{1}garbage", ""),
        (&good.replace("capacity = ", "capacity = -"), "capacity"),
        (&good.replace("format = 1", "format = 7"), "format 7"),
        (&format!("{good}partition_sizes = [0]\n"), ""),
        (&format!("{good}unknown_key = 3\n"), "unknown"),
        (&good[..good.len() / 2], ""),
    ];
    for (text, needle) in damaged {
        std::fs::write(path.join("cartridge.toml"), text).unwrap();
        let before = snapshot(&path);
        let e = VirtualDrive::open(&path)
            .err()
            .expect("a damaged cartridge.toml must not open");
        let msg = e.to_string();
        assert!(msg.contains("cartridge.toml"), "{msg}");
        assert!(msg.contains(needle), "{msg} (wanted {needle:?})");
        assert_eq!(e.code(), 21, "{msg}");
        assert_eq!(snapshot(&path), before);
    }
    std::fs::write(path.join("cartridge.toml"), &good).unwrap();
    // Non-UTF-8 bytes: the offset is named.
    std::fs::write(path.join("cartridge.toml"), b"format = 1\n\xff\xfe").unwrap();
    let e = VirtualDrive::open(&path).err().unwrap();
    assert!(e.to_string().contains("byte 11"), "{e}");
    std::fs::write(path.join("cartridge.toml"), &good).unwrap();
    // A damaged drive state file names itself and says how to recover.
    let state = reel_tape::vtape::StateFile {
        path: tmp.path().join("drive.toml"),
        keep_position: true,
    };
    std::fs::write(&state.path, "settings = { block_size = 999999999 }\n").unwrap();
    let e = VirtualDrive::open_with_state(&path, state.clone())
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("drive.toml") && e.to_string().contains("delete"),
        "{e}"
    );
    std::fs::write(&state.path, "locked = \"maybe\"\n").unwrap();
    assert!(VirtualDrive::open_with_state(&path, state).is_err());
}

#[test]
fn reel_cartridges_are_plain_simh_images() {
    // An independent SIMH reader (class-0 records, zero tape marks): what other tools see.
    let tmp = tempfile::tempdir().unwrap();
    let path = sample_cartridge(tmp.path());
    let img = std::fs::read(path.join("p1.tap")).unwrap();
    let mut at = 0;
    let mut seen = Vec::new();
    while at < img.len() {
        let w = u32::from_le_bytes(img[at..at + 4].try_into().unwrap());
        if w == 0 {
            seen.push(None);
            at += 4;
            continue;
        }
        assert_eq!(w >> 28, 0, "class-0 records only");
        let n = w as usize;
        let data = img[at + 4..at + 4 + n].to_vec();
        let pad = n % 2;
        let trailer =
            u32::from_le_bytes(img[at + 4 + n + pad..at + 8 + n + pad].try_into().unwrap());
        assert_eq!(trailer, w);
        seen.push(Some(data));
        at += 8 + n + pad;
    }
    let want = vec![
        Some(record(0, 100)),
        None,
        Some(record(1, 4096)),
        Some(record(2, 333)),
        None,
        Some(record(3, 70_000)),
        None,
    ];
    assert_eq!(seen, want);
}

#[test]
fn compression_stores_less_and_reads_back() {
    use reel_tape::SetDriveParameters;
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    let zone = d.drive_parameters().unwrap().eot_warning_zone_size;
    d.set_drive_parameters(&SetDriveParameters {
        ecc: true,
        compression: true,
        data_padding: false,
        report_setmarks: false,
        eot_warning_zone_size: zone,
    })
    .unwrap();
    let text: Vec<u8> = b"reel tape "
        .iter()
        .cycle()
        .take(256 * 1024)
        .copied()
        .collect();
    let noise = reel_tape::conformance::record(4, 256 * 1024);
    let r0 = d.media_parameters().unwrap().remaining;
    d.write(&text).unwrap();
    let r1 = d.media_parameters().unwrap().remaining;
    d.write(&noise).unwrap();
    let r2 = d.media_parameters().unwrap().remaining;
    assert!(
        r0 - r1 < 8 * 1024,
        "compressible record took {} bytes",
        r0 - r1
    );
    assert_eq!(
        r1 - r2,
        8 + 256 * 1024,
        "incompressible records are stored as they are"
    );
    d.set_position(SeekTo::Rewind, false).unwrap();
    assert_eq!(read_rec(&mut d).unwrap(), text);
    assert_eq!(read_rec(&mut d).unwrap(), noise);
    // The compressed record is reel's private class 1; the plain one class 0.
    let img = std::fs::read(path.join("p1.tap")).unwrap();
    assert_eq!(u32::from_le_bytes(img[0..4].try_into().unwrap()) >> 28, 1);
    // A corrupted compressed record is a CRC error, not a panic or a huge allocation.
    drop(d);
    let mut img = img;
    img[4..8].copy_from_slice(&[0xff; 4]);
    std::fs::write(path.join("p1.tap"), &img).unwrap();
    std::fs::remove_file(path.join("p1.idx")).unwrap();
    let mut d = VirtualDrive::open(&path).unwrap();
    let e = read_rec(&mut d).unwrap_err();
    assert_eq!(e.code(), 23, "{e}");
}

#[test]
fn partitions_persist_and_are_positioned_independently() {
    use reel_tape::PartitionMethod;
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), "t", 64 << 20);
    {
        let mut d = VirtualDrive::open(&path).unwrap();
        d.write(b"gone after partitioning").unwrap();
        d.create_partitions(PartitionMethod::Initiator, 3, 8)
            .unwrap();
        let m = d.media_parameters().unwrap();
        assert_eq!((m.partition_count, m.capacity), (3, 8 << 20));
        assert!(matches!(read_rec(&mut d), Err(TapeError::NoDataDetected)));
        for p in 1..=3u32 {
            d.set_position(
                SeekTo::LogicalBlock {
                    partition: p,
                    block: 0,
                },
                false,
            )
            .unwrap();
            d.write(&record(p, 1000)).unwrap();
        }
        d.set_position(SeekTo::EndOfData { partition: 3 }, false)
            .unwrap();
        assert_eq!(d.media_parameters().unwrap().capacity, 48 << 20);
    }
    assert!(path.join("p3.tap").is_file());
    let mut d = VirtualDrive::open(&path).unwrap();
    for p in [3u32, 1, 2] {
        d.set_position(
            SeekTo::LogicalBlock {
                partition: p,
                block: 0,
            },
            false,
        )
        .unwrap();
        assert_eq!(read_rec(&mut d).unwrap(), record(p, 1000));
    }
    d.set_position(SeekTo::AbsoluteBlock(2), false).unwrap();
    assert_eq!(d.position(PositionKind::Logical).unwrap().partition, 3);
    // Back to one partition: the extra files go.
    d.create_partitions(PartitionMethod::Select, 1, 0).unwrap();
    drop(d);
    assert!(!path.join("p2.tap").exists() && !path.join("p3.idx").exists());
    let config = Cartridge::read_config(&reel_tape::vtape::store::DirStore::new(&path)).unwrap();
    assert!(config.partition_sizes.is_empty());
}

#[test]
fn drive_state_persists_between_opens() {
    use reel_tape::vtape::StateFile;
    use reel_tape::{PrepareOp, SetDriveParameters};
    let tmp = tempfile::tempdir().unwrap();
    let path = sample_cartridge(tmp.path());
    let nst = StateFile {
        path: tmp.path().join("drive.toml"),
        keep_position: true,
    };
    let st = StateFile {
        keep_position: false,
        ..nst.clone()
    };
    {
        let mut d = VirtualDrive::open_with_state(&path, nst.clone()).unwrap();
        d.set_position(SeekTo::SpaceFilemarks(2), false).unwrap();
        d.set_media_parameters(4096).unwrap();
        d.set_drive_parameters(&SetDriveParameters {
            ecc: false,
            compression: true,
            data_padding: true,
            report_setmarks: true,
            eot_warning_zone_size: 1 << 20,
        })
        .unwrap();
        d.prepare(PrepareOp::Lock, false).unwrap();
    }
    let mut d = VirtualDrive::open_with_state(&path, nst.clone()).unwrap();
    assert_eq!(
        d.position(PositionKind::Logical).unwrap().offset,
        5,
        "no-rewind keeps the position"
    );
    let p = d.drive_parameters().unwrap();
    assert!(!p.ecc && p.compression && p.data_padding && p.report_setmarks);
    assert_eq!(p.eot_warning_zone_size, 1 << 20);
    assert_eq!(d.media_parameters().unwrap().block_size, 4096);
    assert!(matches!(
        d.prepare(PrepareOp::Unload, false),
        Err(TapeError::UnableToUnloadMedia)
    ));
    d.prepare(PrepareOp::Unlock, false).unwrap();
    d.prepare(PrepareOp::Unload, false).unwrap();
    drop(d);
    // A rewinding open: settings and unload kept, position not.
    let mut d = VirtualDrive::open_with_state(&path, st.clone()).unwrap();
    assert!(matches!(d.status(), Err(TapeError::NoMediaInDrive)));
    d.prepare(PrepareOp::Load, false).unwrap();
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 0);
    assert_eq!(d.media_parameters().unwrap().block_size, 4096);
    drop(d);
    // The cartridge is free while unloaded, and a shortened tape clamps the position.
    let mut d = VirtualDrive::open_with_state(&path, nst.clone()).unwrap();
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    drop(d);
    {
        let mut other = VirtualDrive::open(&path).unwrap();
        other
            .set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: 2,
                },
                false,
            )
            .unwrap();
        other.erase(reel_tape::EraseKind::Short, false).unwrap();
    }
    let mut d = VirtualDrive::open_with_state(&path, nst).unwrap();
    assert_eq!(d.position(PositionKind::Logical).unwrap().offset, 2);
}

#[test]
fn ecc_setting_decides_whether_record_crcs_are_checked() {
    use reel_tape::SetDriveParameters;
    let tmp = tempfile::tempdir().unwrap();
    let path = sample_cartridge(tmp.path());
    let tap = path.join("p1.tap");
    let mut bytes = std::fs::read(&tap).unwrap();
    bytes[8 + 50] ^= 0x01; // a payload bit of record 0
    std::fs::write(&tap, &bytes).unwrap();
    let mut d = VirtualDrive::open(&path).unwrap();
    assert_eq!(
        read_rec(&mut d).unwrap_err().code(),
        23,
        "ECC on: the CRC catches it"
    );
    let zone = d.drive_parameters().unwrap().eot_warning_zone_size;
    d.set_drive_parameters(&SetDriveParameters {
        ecc: false,
        compression: false,
        data_padding: false,
        report_setmarks: false,
        eot_warning_zone_size: zone,
    })
    .unwrap();
    d.set_position(SeekTo::Rewind, false).unwrap();
    let got = read_rec(&mut d).unwrap();
    assert_eq!(got.len(), 100);
    assert_ne!(
        got,
        record(0, 100),
        "ECC off: the damaged bytes come back unchecked"
    );
}
