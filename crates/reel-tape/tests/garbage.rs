//! Garbage and truncation for every file of a cartridge: `cartridge.toml`, `drive.toml`,
//! the SIMH data file, the sidecar index and the marks file. Never a panic; a damaged
//! description is a clear error naming the file; a damaged index is rebuilt from the data
//! file; a damaged marks file is ignored; a damaged data file reads up to the damage and
//! reports it.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use reel_tape::conformance::record;
use reel_tape::vtape::{StateFile, VirtualDrive};
use reel_tape::{MarkKind, SeekTo, TapeDrive, TapeError};

fn sample(dir: &Path) -> PathBuf {
    let path = reel_testkit::new_cartridge(dir, "g", 64 << 20);
    let mut d = VirtualDrive::open(&path).unwrap();
    d.write(&record(0, 100)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
    d.write(&record(1, 3001)).unwrap();
    d.write_marks(MarkKind::Setmarks, 1, false).unwrap();
    d.write(&record(2, 20)).unwrap();
    d.write_marks(MarkKind::Filemarks, 1, false).unwrap();
    path
}

/// Reads every object; returns what came back (never panics, bounded by the object count).
fn read_all(d: &mut VirtualDrive) -> Vec<Result<usize, u32>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    for _ in 0..64 {
        match d.read(&mut buf) {
            Err(TapeError::NoDataDetected) => break,
            r => out.push(r.map_err(|e| e.code())),
        }
    }
    out
}

fn mutate(bytes: &mut Vec<u8>, cut: Option<usize>, flips: &[(usize, u8)]) {
    for &(at, bit) in flips {
        if !bytes.is_empty() {
            let i = at % bytes.len();
            bytes[i] ^= 1 << (bit % 8);
        }
    }
    if let Some(c) = cut {
        bytes.truncate(c % (bytes.len() + 1));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn damaged_cartridge_toml(cut in proptest::option::of(0usize..400), flips in proptest::collection::vec((0usize..400, 0u8..8), 0..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let path = sample(tmp.path());
        let file = path.join("cartridge.toml");
        let mut bytes = std::fs::read(&file).unwrap();
        mutate(&mut bytes, cut, &flips);
        std::fs::write(&file, &bytes).unwrap();
        let tap = std::fs::read(path.join("p1.tap")).unwrap();
        match VirtualDrive::open(&path) {
            Ok(mut d) => { read_all(&mut d); }
            Err(e) => {
                prop_assert!(e.to_string().contains("cartridge.toml"), "{}", e);
                prop_assert_eq!(e.code(), 21);
            }
        }
        prop_assert_eq!(std::fs::read(path.join("p1.tap")).unwrap(), tap, "opening changed the data");
    }

    #[test]
    fn damaged_drive_toml(text in "[a-z_=\\[\\]{}\"0-9 .\n-]{0,120}") {
        let tmp = tempfile::tempdir().unwrap();
        let path = sample(tmp.path());
        let state = StateFile { path: tmp.path().join("drive.toml"), keep_position: true };
        std::fs::write(&state.path, &text).unwrap();
        match VirtualDrive::open_with_state(&path, state) {
            Ok(mut d) => { let _ = d.status(); read_all(&mut d); }
            Err(e) => prop_assert!(e.to_string().contains("drive.toml"), "{}", e),
        }
    }

    #[test]
    fn damaged_index_is_rebuilt(cut in proptest::option::of(0usize..300), flips in proptest::collection::vec((0usize..300, 0u8..8), 0..6)) {
        let tmp = tempfile::tempdir().unwrap();
        let path = sample(tmp.path());
        let want = read_all(&mut VirtualDrive::open(&path).unwrap());
        let file = path.join("p1.idx");
        let mut bytes = std::fs::read(&file).unwrap();
        mutate(&mut bytes, cut, &flips);
        std::fs::write(&file, &bytes).unwrap();
        let mut d = VirtualDrive::open(&path).unwrap();
        // Setmarks are not reported by default: the same view as `want`.
        prop_assert_eq!(read_all(&mut d), want);
    }

    #[test]
    fn damaged_marks_file(cut in proptest::option::of(0usize..200), flips in proptest::collection::vec((0usize..200, 0u8..8), 0..6), also_index in proptest::option::of((0usize..300, 0u8..8))) {
        let tmp = tempfile::tempdir().unwrap();
        let path = sample(tmp.path());
        let want = read_all(&mut VirtualDrive::open(&path).unwrap());
        let file = path.join("p1.marks");
        let mut bytes = std::fs::read(&file).unwrap();
        prop_assert!(!bytes.is_empty(), "closing wrote the marks file");
        mutate(&mut bytes, cut, &flips);
        std::fs::write(&file, &bytes).unwrap();
        if let Some(flip) = also_index {
            let idx = path.join("p1.idx");
            let mut bytes = std::fs::read(&idx).unwrap();
            mutate(&mut bytes, None, &[flip]);
            std::fs::write(&idx, &bytes).unwrap();
        }
        let mut d = VirtualDrive::open(&path).unwrap();
        prop_assert_eq!(read_all(&mut d), want);
    }

    #[test]
    fn damaged_data_file(cut in proptest::option::of(0usize..3300), flips in proptest::collection::vec((0usize..3300, 0u8..8), 0..4), drop_index in any::<bool>()) {
        let tmp = tempfile::tempdir().unwrap();
        let path = sample(tmp.path());
        let file = path.join("p1.tap");
        let mut bytes = std::fs::read(&file).unwrap();
        mutate(&mut bytes, cut, &flips);
        std::fs::write(&file, &bytes).unwrap();
        if drop_index {
            std::fs::remove_file(path.join("p1.idx")).unwrap();
        }
        match VirtualDrive::open(&path) {
            Ok(mut d) => {
                let got = read_all(&mut d);
                for r in &got {
                    if let Err(code) = r {
                        prop_assert!([23, 1101, 234].contains(code), "unexpected error {}", code);
                    }
                }
                // Wherever the damage is, seeking and writing at end of data never panics.
                let _ = d.set_position(SeekTo::EndOfData { partition: 0 }, false);
                let _ = d.write(b"after damage");
            }
            Err(e) => prop_assert!(e.code() == 21 || e.code() == 1117, "{}", e),
        }
    }
}
