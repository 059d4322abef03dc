//! Benchmark driver for `bench/tape-throughput` (not a test): sequential write and read of
//! 256 KiB records on a virtual cartridge, and absolute seek times.
//!
//! ```text
//! vtape_bench write DIR SOURCE [RECORD]   # new cartridge DIR from SOURCE, then fsync
//! vtape_bench read DIR [RECORD]           # read every record, discard
//! vtape_bench fill DIR BYTES [RECORD]     # new cartridge with BYTES of records
//! vtape_bench seek DIR COUNT              # random absolute seeks (+ one read each)
//! ```
//! Each prints one line `key=value ...` for the script to parse.

use std::io::Read;
use std::path::Path;
use std::time::Instant;

use reel_tape::vtape::{Cartridge, CartridgeConfig, VirtualDrive};
use reel_tape::{PositionKind, SeekTo, TapeDrive, TapeError};

fn new_cartridge(dir: &Path, capacity: u64) -> VirtualDrive {
    let _ = std::fs::remove_dir_all(dir);
    Cartridge::create(dir, &CartridgeConfig::new("bench", capacity)).expect("create cartridge");
    VirtualDrive::open(dir).expect("open cartridge")
}

fn arg(args: &[String], i: usize, what: &str) -> String {
    args.get(i)
        .cloned()
        .unwrap_or_else(|| panic!("missing argument: {what}"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = arg(&args, 1, "mode");
    let dir = Path::new(&args[2]).to_path_buf();
    let record: usize = args
        .get(if mode == "read" { 3 } else { 4 })
        .and_then(|s| s.parse().ok())
        .unwrap_or(256 * 1024);
    match mode.as_str() {
        "write" => {
            let mut src = std::fs::File::open(arg(&args, 3, "SOURCE")).expect("open source");
            let mut d = new_cartridge(&dir, 1 << 40);
            let mut buf = vec![0u8; record];
            let start = Instant::now();
            let mut total = 0u64;
            loop {
                let mut n = 0;
                while n < record {
                    match src.read(&mut buf[n..]).expect("read source") {
                        0 => break,
                        k => n += k,
                    }
                }
                if n == 0 {
                    break;
                }
                d.write(&buf[..n]).expect("write");
                total += n as u64;
            }
            d.flush().expect("flush");
            let s = start.elapsed().as_secs_f64();
            println!(
                "bytes={total} seconds={s:.3} mib_per_s={:.1}",
                total as f64 / s / 1048576.0
            );
        }
        "read" => {
            let mut d = VirtualDrive::open(&dir).expect("open");
            let mut buf = vec![0u8; record.max(1 << 20)];
            let start = Instant::now();
            let mut total = 0u64;
            loop {
                match d.read(&mut buf) {
                    Ok(n) => total += n as u64,
                    Err(TapeError::NoDataDetected | TapeError::FilemarkDetected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            let s = start.elapsed().as_secs_f64();
            println!(
                "bytes={total} seconds={s:.3} mib_per_s={:.1}",
                total as f64 / s / 1048576.0
            );
        }
        "fill" => {
            let bytes: u64 = arg(&args, 3, "BYTES").parse().expect("BYTES");
            let mut d = new_cartridge(&dir, bytes * 2);
            let mut buf = vec![0u8; record];
            let mut x = 0x1234_5678_9abc_def1u64;
            let mut total = 0u64;
            let mut i = 0u64;
            while total < bytes {
                // Cheap distinct content: a counter stamped over a fixed pattern.
                for chunk in buf.chunks_mut(8).take(64) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
                }
                buf[..8].copy_from_slice(&i.to_le_bytes());
                d.write(&buf).expect("write");
                total += record as u64;
                i += 1;
            }
            d.flush().expect("flush");
            println!("bytes={total} records={i}");
        }
        "seek" => {
            let count: u64 = arg(&args, 3, "COUNT").parse().expect("COUNT");
            let t0 = Instant::now();
            let mut d = VirtualDrive::open(&dir).expect("open");
            let open_ms = t0.elapsed().as_secs_f64() * 1000.0;
            d.set_position(SeekTo::EndOfData { partition: 0 }, false)
                .unwrap();
            let objects = d.position(PositionKind::Absolute).unwrap().offset;
            let mut buf = vec![0u8; 1 << 20];
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            let mut seek_ns = 0u128;
            let mut read_ns = 0u128;
            for _ in 0..count {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let target = x % objects;
                let t = Instant::now();
                d.set_position(SeekTo::AbsoluteBlock(target), false)
                    .unwrap();
                seek_ns += t.elapsed().as_nanos();
                let t = Instant::now();
                let n = d.read(&mut buf).unwrap();
                read_ns += t.elapsed().as_nanos();
                assert_eq!(
                    u64::from_le_bytes(buf[..8].try_into().unwrap()),
                    target,
                    "{n}"
                );
            }
            println!(
                "objects={objects} open_ms={open_ms:.2} seek_us={:.2} seek_read_us={:.1}",
                seek_ns as f64 / count as f64 / 1000.0,
                (seek_ns + read_ns) as f64 / count as f64 / 1000.0
            );
        }
        other => panic!("unknown mode {other}"),
    }
}
