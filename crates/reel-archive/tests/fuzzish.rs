//! A bounded-time mutation fuzzer on the tar reader that runs on stable Rust in every
//! `cargo test`. (The libFuzzer target in `fuzz/` needs a nightly toolchain; see
//! `fuzz/README.md`.)
//!
//! Seeds: the archives of `fuzz/corpus/pax_reader/` (GNU tar, bsdtar and Python's tarfile
//! in every format, GNU sparse formats, multi-volume parts) and the hostile corpus of
//! `tests/corpus/`. Each round mutates a seed — bit flips, random bytes over a header field,
//! truncation, a block dropped or repeated, two seeds spliced, the input split into two
//! volumes — and reads it through with both [`PaxReader::next_or_damage`] and the strict
//! [`PaxReader::next_entry`], content included. It must never panic, and every step must
//! consume input (a step budget of one per block). Rounds are deterministic (xorshift from
//! the round number); a failure names the round and writes the input to a file.
//!
//! `REEL_FUZZ_SECS` sets the time budget (default 3 seconds).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reel_archive::pax::{Next, PaxReader};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in [
        root.join("../../fuzz/corpus/pax_reader"),
        root.join("tests/corpus"),
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "tar"))
            .collect();
        files.sort();
        for f in files {
            out.push(std::fs::read(&f).unwrap());
        }
    }
    assert!(out.len() > 40, "seed corpus missing ({} files)", out.len());
    out
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> (Vec<u8>, Option<usize>) {
    let mut data = seeds[rng.below(seeds.len())].clone();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        if data.is_empty() {
            break;
        }
        match rng.below(7) {
            0 => {
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(data.len());
                    data[i] ^= 1 << rng.below(8);
                }
            }
            1 => {
                // Random bytes over a header field of a random block.
                let block = rng.below(data.len() / 512 + 1) * 512;
                let fields = [
                    (100, 8),
                    (108, 8),
                    (124, 12),
                    (136, 12),
                    (148, 8),
                    (156, 1),
                    (345, 155),
                    (386, 96),
                    (482, 13),
                ];
                let (off, len) = fields[rng.below(fields.len())];
                for i in block + off..(block + off + len).min(data.len()) {
                    data[i] = match rng.below(4) {
                        0 => 0xFF,
                        1 => b'7',
                        2 => 0,
                        _ => rng.next() as u8,
                    };
                }
            }
            2 => {
                let at = rng.below(data.len());
                data.truncate(at);
            }
            3 => {
                let blocks = data.len() / 512;
                if blocks > 1 {
                    let b = rng.below(blocks) * 512;
                    data.drain(b..b + 512);
                }
            }
            4 => {
                let blocks = data.len() / 512;
                if blocks > 0 {
                    let b = rng.below(blocks) * 512;
                    let copy = data[b..b + 512].to_vec();
                    data.splice(b..b, copy);
                }
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let cut = rng.below(data.len() / 512 + 1) * 512;
                let from = rng.below(other.len() / 512 + 1) * 512;
                data.truncate(cut);
                data.extend_from_slice(&other[from.min(other.len())..]);
            }
            _ => {
                // A pax-looking record with a lying length in a random place.
                let at = rng.below(data.len());
                let junk = format!("{} path=../x\n", rng.below(100_000));
                for (i, b) in junk.bytes().enumerate() {
                    if at + i < data.len() {
                        data[at + i] = b;
                    }
                }
            }
        }
    }
    let split = (rng.below(3) == 0).then(|| rng.below(data.len() / 512 + 1) * 512);
    (data, split)
}

/// Reads the input through, content included, both ways.
fn exercise(data: &[u8], split: Option<usize>) {
    let budget = data.len() / 512 + 8;
    // Lenient, as one archive or as two volumes.
    use std::io::Cursor;
    let mut pax: PaxReader<Cursor<Vec<u8>>> = match split {
        Some(at) => {
            let (a, b) = data.split_at(at.min(data.len()));
            let mut rest = Some(Cursor::new(b.to_vec()));
            PaxReader::new(Cursor::new(a.to_vec()))
                .with_next_volume(Box::new(move |_| Ok(rest.take())))
        }
        None => PaxReader::new(Cursor::new(data.to_vec())),
    };
    let mut buf = vec![0u8; 3000];
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(
            steps <= budget,
            "lenient reader took more steps than there are blocks"
        );
        match pax.next_or_damage() {
            Ok(Some(Next::Member(_))) => {
                let mut reads = 0u64;
                while let Ok(n) = pax.read_data(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    reads += 1;
                    assert!(
                        reads <= data.len() as u64 + 1,
                        "read_data does not consume input"
                    );
                }
            }
            Ok(Some(Next::Damage(d))) => {
                let _ = d.to_string();
            }
            Ok(None) | Err(_) => break,
        }
    }
    // Strict: stops at the first damage.
    let mut pax = PaxReader::new(data);
    let mut steps = 0;
    while let Ok(Some(_)) = pax.next_entry() {
        steps += 1;
        assert!(
            steps <= budget,
            "strict reader took more steps than there are blocks"
        );
        while let Ok(n) = pax.read_data(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
}

fn save(data: &[u8], round: u64) -> PathBuf {
    let p = std::env::temp_dir().join(format!("reel-fuzzish-round-{round}.tar"));
    let _ = std::fs::write(&p, data);
    p
}

#[test]
fn mutated_archives_never_panic_or_hang() {
    let seeds = seeds();
    // The seeds themselves first.
    for s in &seeds {
        exercise(s, None);
    }
    let secs: u64 = std::env::var("REEL_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut round = 0u64;
    while Instant::now() < deadline {
        round += 1;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ round.wrapping_mul(0x2545_F491_4F6C_DD1D));
        let (data, split) = mutate(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| exercise(&data, split));
        if outcome.is_err() {
            let path = save(&data, round);
            panic!(
                "round {round} (split {split:?}) failed; input saved as {}",
                Path::new(&path).display()
            );
        }
    }
    eprintln!("fuzzish: {round} mutated archives read in {secs} s");
    assert!(round > 50, "too few rounds ({round}) in {secs} s");
}
