//! The tar reader on arbitrary input: `next_or_damage` (reading on past damage) and the
//! strict `next_entry`, content included, as one archive or split into two volumes. It
//! must never panic, and every step must consume input.

#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use reel_archive::pax::{Next, PaxReader};

fuzz_target!(|input: &[u8]| {
    // The first byte chooses whether (and at which block) the input is split into two
    // volumes of a multi-volume archive.
    let Some((&choice, data)) = input.split_first() else {
        return;
    };
    let budget = data.len() / 512 + 8;
    let mut pax = if choice & 1 == 1 {
        let at = (usize::from(choice >> 1) * 512).min(data.len());
        let (a, b) = data.split_at(at);
        let mut rest = Some(Cursor::new(b.to_vec()));
        PaxReader::new(Cursor::new(a.to_vec())).with_next_volume(Box::new(move |_| Ok(rest.take())))
    } else {
        PaxReader::new(Cursor::new(data.to_vec()))
    };
    let mut buf = vec![0u8; 3000];
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(
            steps <= budget,
            "the reader took more steps than there are blocks"
        );
        match pax.next_or_damage() {
            Ok(Some(Next::Member(_))) => {
                let mut reads = 0usize;
                while let Ok(n) = pax.read_data(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    reads += 1;
                    assert!(reads <= data.len() + 1, "read_data does not consume input");
                }
            }
            Ok(Some(Next::Damage(d))) => {
                let _ = d.to_string();
            }
            Ok(None) | Err(_) => break,
        }
    }
    let mut pax = PaxReader::new(data);
    let mut steps = 0;
    while let Ok(Some(_)) = pax.next_entry() {
        steps += 1;
        assert!(
            steps <= budget,
            "the strict reader took more steps than there are blocks"
        );
        while let Ok(n) = pax.read_data(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
});
