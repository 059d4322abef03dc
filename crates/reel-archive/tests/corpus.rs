//! The hostile and damaged archives of `tests/corpus/` through the reader: every damaged
//! stretch is reported with its byte offset, the reader goes on to the members after it,
//! hostile names reach the restore layer as they are (which refuses them; see reel-core's
//! `foreign_safety` tests), and nothing loops or panics.

mod malicious;

use std::path::PathBuf;

use reel_archive::pax::{Next, PaxReader};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[test]
fn committed_corpus_is_what_the_generator_builds() {
    let dir = corpus_dir();
    let update = std::env::var_os("REEL_UPDATE_CORPUS").is_some();
    if update {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut index = String::from("# name: what the archive does (see tests/malicious/mod.rs)\n");
    for c in malicious::cases() {
        let path = dir.join(format!("{}.tar", c.name));
        index.push_str(&format!("{}.tar: {}\n", c.name, c.about));
        if update {
            std::fs::write(&path, &c.bytes).unwrap();
            continue;
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run with REEL_UPDATE_CORPUS=1 to write the corpus)",
                path.display()
            )
        });
        assert!(
            committed == c.bytes,
            "{} differs from what tests/malicious/mod.rs builds (REEL_UPDATE_CORPUS=1 rewrites it)",
            path.display()
        );
    }
    let index_path = dir.join("INDEX");
    if update {
        std::fs::write(&index_path, &index).unwrap();
    } else {
        assert_eq!(std::fs::read_to_string(&index_path).unwrap(), index);
    }
}

/// Members read: (name, content).
type Members = Vec<(Vec<u8>, Vec<u8>)>;

/// Reads everything, content included; returns the members and the messages.
pub fn read_all(bytes: &[u8]) -> (Members, Vec<String>) {
    let mut pax = PaxReader::new(bytes);
    let mut members = Vec::new();
    let mut messages = Vec::new();
    // Each step consumes at least one block of input: this bounds the steps.
    let limit = bytes.len() / 512 + 4;
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(
            steps <= limit,
            "more steps than blocks: the reader does not consume input"
        );
        let next = match pax.next_or_damage() {
            Ok(Some(n)) => n,
            Ok(None) => break,
            Err(e) => {
                messages.push(e.to_string());
                break;
            }
        };
        match next {
            Next::Member(r) => {
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    match pax.read_data(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => data.extend_from_slice(&buf[..n]),
                        Err(e) => {
                            messages.push(format!("{}: {e}", r.entry.display_path()));
                            break;
                        }
                    }
                }
                members.push((r.entry.path.clone(), data));
            }
            Next::Damage(d) => messages.push(d.to_string()),
        }
    }
    (members, messages)
}

#[test]
fn every_case_is_reported_and_reading_goes_on() {
    for c in malicious::cases() {
        let (members, messages) = read_all(&c.bytes);
        let names: Vec<String> = members
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect();
        if c.damaged {
            assert!(
                !messages.is_empty(),
                "{}: no damage reported ({names:?})",
                c.name
            );
            for m in &messages {
                assert!(
                    m.contains("byte ") || m.contains("volume"),
                    "{}: message without a byte offset: {m}",
                    c.name
                );
            }
        }
        // Refusals of hostile names are the restore layer's; the reader reports damage.
        for r in c.reported.iter().filter(|_| c.damaged) {
            assert!(
                messages.iter().any(|m| m.contains(r)) || names.iter().any(|n| n.contains(r)),
                "{}: {r:?} appears in neither the members {names:?} nor the messages {messages:?}",
                c.name
            );
        }
        for (name, content) in &c.restored {
            if let Some(want) = content {
                let got = members
                    .iter()
                    .find(|(n, _)| n == name.as_bytes())
                    .unwrap_or_else(|| {
                        panic!(
                            "{}: member {name} not read; got {names:?} and {messages:?}",
                            c.name
                        )
                    });
                assert_eq!(&got.1, want, "{}: content of {name}", c.name);
            }
        }
    }
}

#[test]
fn damage_names_the_offset_and_where_reading_went_on() {
    let cases = malicious::cases();
    let get = |name: &str| cases.iter().find(|c| c.name == name).unwrap();
    let (_, m) = read_all(&get("bad-checksum").bytes);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with("corrupt archive at byte 1024: header checksum mismatch"),
        "{}",
        m[0]
    );
    assert!(
        m[0].contains("skipped 1024 bytes to the next header at byte 2048"),
        "{}",
        m[0]
    );
    let (_, m) = read_all(&get("garbage-between-members").bytes);
    assert!(
        m[0].contains("at byte 1024") && m[0].contains("next header at byte 2560"),
        "{m:?}"
    );
    let (_, m) = read_all(&get("negative-size").bytes);
    assert!(m[0].contains("at byte 1024: negative size -4096"), "{m:?}");
}
