//! Crash safety: a child process writes to a cartridge and is killed with SIGKILL at a
//! random moment; the cartridge then opens at its last complete object, every object on
//! it is whole, and it takes new writes.
//!
//! The child is this test binary itself, re-run with `REEL_CRASH_CHILD` set (the
//! `crash_child` test does the writing then and nothing otherwise).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reel_tape::conformance::record;
use reel_tape::vtape::VirtualDrive;
use reel_tape::{MarkKind, PartitionMethod, PositionKind, SeekTo, TapeDrive, TapeError};
use reel_testkit::new_cartridge;

const MAGIC: &[u8; 4] = b"RCRS";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A self-describing record: magic, sequence number, then deterministic bytes.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len.max(12));
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&seq.to_le_bytes());
    b.extend_from_slice(&record(seq as u32, len.saturating_sub(12)));
    b
}

fn check_payload(b: &[u8]) -> Result<u64, String> {
    if b.len() < 12 || &b[..4] != MAGIC {
        return Err(format!(
            "record of {} bytes without the test header",
            b.len()
        ));
    }
    let seq = u64::from_le_bytes(b[4..12].try_into().unwrap());
    if b[12..] != record(seq as u32, b.len() - 12)[..] {
        return Err(format!("record {seq} has the wrong content"));
    }
    Ok(seq)
}

/// The writer the parent kills. Append-only mode reports each object on stdout once the
/// call that wrote it returned.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("REEL_CRASH_CHILD") else {
        return;
    };
    let append_only = std::env::var("REEL_CRASH_APPEND_ONLY").is_ok();
    let seed: u64 = std::env::var("REEL_CRASH_SEED").unwrap().parse().unwrap();
    let mut rng = Rng(seed | 1);
    let mut d = VirtualDrive::open(Path::new(&dir)).unwrap();
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    let out = std::io::stdout();
    let mut seq = 0u64;
    loop {
        let roll = rng.below(100);
        let mut line = String::new();
        if roll < 80 || append_only && roll < 92 {
            let max = if rng.below(4) == 0 { 400_000 } else { 5000 };
            let len = 12 + rng.below(max) as usize;
            match d.write(&payload(seq, len)) {
                Ok(()) | Err(TapeError::EarlyWarning) => line = format!("OBJ R {seq}"),
                Err(e) => panic!("{e}"),
            }
            seq += 1;
        } else if roll < 92 || append_only {
            let kind = if rng.below(3) == 0 {
                MarkKind::Setmarks
            } else {
                MarkKind::Filemarks
            };
            d.write_marks(kind, 1, false).unwrap();
            line = format!("OBJ {}", if kind == MarkKind::Setmarks { "S" } else { "F" });
        } else if roll < 97 {
            // Overwrite somewhere in the middle (truncation, then new data).
            let count = d.position(PositionKind::Logical).unwrap().offset;
            let at = rng.below(count + 1);
            d.set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: at,
                },
                false,
            )
            .unwrap();
            if rng.below(2) == 0 {
                d.erase(reel_tape::EraseKind::Short, false).unwrap();
            }
        } else if roll < 99 {
            d.set_position(SeekTo::EndOfData { partition: 0 }, false)
                .unwrap();
        } else {
            let n = 1 + rng.below(2) as u32;
            d.create_partitions(PartitionMethod::Select, n, 0).unwrap();
        }
        if !line.is_empty() {
            let mut o = out.lock();
            writeln!(o, "{line}").unwrap();
            o.flush().unwrap();
        }
    }
}

/// What a cartridge holds: per partition, the objects ('R' + seq, 'F', 'S').
fn contents(path: &Path) -> Vec<Vec<String>> {
    let mut d = VirtualDrive::open(path)
        .unwrap_or_else(|e| panic!("cartridge does not open after a crash: {e}"));
    let mut p = d.drive_parameters().unwrap();
    p.report_setmarks = true;
    d.set_drive_parameters(&reel_tape::SetDriveParameters {
        ecc: true,
        compression: false,
        data_padding: false,
        report_setmarks: true,
        eot_warning_zone_size: p.eot_warning_zone_size,
    })
    .unwrap();
    let parts = d.media_parameters().unwrap().partition_count;
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for part in 1..=parts {
        d.set_position(
            SeekTo::LogicalBlock {
                partition: part,
                block: 0,
            },
            false,
        )
        .unwrap();
        let mut objs = Vec::new();
        loop {
            match d.read(&mut buf) {
                Ok(n) => {
                    let seq = check_payload(&buf[..n])
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                    objs.push(format!("R{seq}"));
                }
                Err(TapeError::FilemarkDetected) => objs.push("F".into()),
                Err(TapeError::SetmarkDetected) => objs.push("S".into()),
                Err(TapeError::NoDataDetected) => break,
                Err(e) => panic!(
                    "object {} of partition {part} is damaged after a crash: {e}",
                    objs.len()
                ),
            }
        }
        all.push(objs);
    }
    all
}

fn crash_round(dir: &Path, round: u64, append_only: bool) {
    let path = new_cartridge(dir, &format!("r{round}"), 1 << 30);
    let seed = round.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ u64::from(std::process::id());
    let mut rng = Rng(seed | 1);
    let mut child = Command::new(std::env::current_exe().unwrap());
    child
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("REEL_CRASH_CHILD", &path)
        .env("REEL_CRASH_SEED", seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if append_only {
        child.env("REEL_CRASH_APPEND_ONLY", "1");
    }
    let mut child = child.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest may print its "test crash_child ... " before the first line.
            .filter_map(|l| l.find("OBJ ").map(|i| l[i + 4..].to_string()))
            .collect::<Vec<_>>()
    });
    // Kill at a random moment: often early (mid-first-writes), sometimes later.
    let delay =
        Duration::from_millis(20 + rng.below(if round.is_multiple_of(3) { 30 } else { 400 }));
    let start = Instant::now();
    while start.elapsed() < delay {
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let reported = reader.join().unwrap();

    let objects = contents(&path);
    if append_only {
        let got = &objects[0];
        let want: Vec<String> = reported
            .iter()
            .map(|l| l.replace("R ", "R").replace(' ', ""))
            .collect();
        assert!(
            got.len() >= want.len() && got.len() <= want.len() + 1,
            "round {round}: {} objects reported written, {} on the cartridge: {want:?} vs {got:?}",
            want.len(),
            got.len()
        );
        assert_eq!(
            &got[..want.len()],
            &want[..],
            "round {round}: objects differ"
        );
    }
    // A rebuilt index (from the data files alone) sees the same tape.
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "idx") {
            std::fs::remove_file(p).unwrap();
        }
    }
    assert_eq!(
        contents(&path),
        objects,
        "round {round}: rebuilt index disagrees"
    );
    // And it takes new writes at its end of data.
    let mut d = VirtualDrive::open(&path).unwrap();
    d.set_position(SeekTo::EndOfData { partition: 0 }, false)
        .unwrap();
    d.write(&payload(999_999, 100)).unwrap();
    d.set_position(SeekTo::SpaceRelativeBlocks(-1), false)
        .unwrap();
    let mut buf = vec![0u8; 1000];
    let n = d.read(&mut buf).unwrap();
    assert_eq!(check_payload(&buf[..n]).unwrap(), 999_999);
}

#[test]
fn sigkill_at_random_moments_leaves_the_last_complete_object() {
    if std::env::var("REEL_CRASH_CHILD").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for round in 0..16 {
        crash_round(tmp.path(), round, round % 2 == 0);
    }
}

/// Records overwritten before their index entries reached the index file, then a crash:
/// the records kept before the overwrite are still there on reopening (the index file's
/// synced point used to claim their bytes without their entries, so a reopen skipped them).
#[test]
fn a_crash_after_an_overwrite_keeps_the_records_before_it() {
    if std::env::var("REEL_CRASH_CHILD").is_ok() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = new_cartridge(tmp.path(), "over", 1 << 30);
    let mut d = VirtualDrive::open(&path).unwrap();
    for seq in 0..6 {
        d.write(&payload(seq, 100 + seq as usize)).unwrap();
    }
    d.set_position(
        SeekTo::LogicalBlock {
            partition: 0,
            block: 5,
        },
        false,
    )
    .unwrap();
    d.write(&payload(6, 300)).unwrap();
    // What a SIGKILL now leaves: the files as they are, the drive never closed.
    let crashed = tmp.path().join("crashed.vtape");
    std::fs::create_dir(&crashed).unwrap();
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        if p.file_name().is_some_and(|n| n != "lock") {
            std::fs::copy(&p, crashed.join(p.file_name().unwrap())).unwrap();
        }
    }
    drop(d);
    let want: Vec<String> = ["R0", "R1", "R2", "R3", "R4", "R6"]
        .map(String::from)
        .to_vec();
    assert_eq!(contents(&crashed), vec![want]);
}
