//! The hostile corpus (`crates/reel-archive/tests/corpus/`, built by
//! `crates/reel-archive/tests/malicious/mod.rs`) restored as foreign archives: path
//! traversal in every form, link tricks and damaged headers. Nothing is written outside the
//! target (its parent directory is compared before and after, byte for byte), every case is
//! reported (refused or damaged, by name), the members around the damage are restored, and
//! nothing panics.

#[path = "../../reel-archive/tests/malicious/mod.rs"]
mod malicious;

use std::path::{Path, PathBuf};

use reel_core::NoProgress;
use reel_core::foreign::{ForeignRestoreOptions, ForeignSource};
use reel_stream::Existing;
use reel_testkit::tree_facts;

fn corpus_file(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../reel-archive/tests/corpus/{name}.tar"))
}

/// Everything under `work` but the restore target, with the sentinel's link count.
fn outside_state(work: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let facts: Vec<String> = tree_facts(work)
        .into_iter()
        .filter(|(p, _)| !p.starts_with("target"))
        .map(|(p, f)| format!("{} {f:?}", p.display()))
        .collect();
    let nlink = std::fs::metadata(work.join("outside/sentinel"))
        .unwrap()
        .nlink();
    format!("{}\nsentinel links: {nlink}", facts.join("\n"))
}

fn escapes_at_root() -> Vec<String> {
    std::fs::read_dir("/")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("reel-corpus-escape"))
        .collect()
}

#[test]
fn hostile_archives_write_nothing_outside_the_target_and_every_case_is_reported() {
    for allow_outside_symlinks in [false, true] {
        for case in malicious::cases() {
            let path = corpus_file(case.name);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                case.bytes,
                "{} is stale",
                path.display()
            );
            let tmp = tempfile::tempdir().unwrap();
            let work = tmp.path().join("work");
            let target = work.join("target");
            std::fs::create_dir_all(work.join("outside")).unwrap();
            std::fs::write(work.join("outside/sentinel"), b"keep").unwrap();
            std::fs::create_dir_all(&target).unwrap();
            let before = outside_state(&work);
            let opts = ForeignRestoreOptions {
                source: ForeignSource::Archives(vec![path.clone()]),
                patterns: vec![],
                target: target.clone(),
                existing: Existing::Overwrite,
                allow_outside_symlinks,
                policy_roots: None,
            };
            let label = format!(
                "{} (allow outside symlinks: {allow_outside_symlinks})",
                case.name
            );
            let report = reel_core::foreign::restore(None, None, &opts, &NoProgress)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert_eq!(
                outside_state(&work),
                before,
                "{label}: something changed outside the target"
            );
            assert!(
                escapes_at_root().is_empty(),
                "{label}: wrote {:?} at /",
                escapes_at_root()
            );
            let r = &report.restore;
            let messages: Vec<&String> = r
                .refused
                .iter()
                .chain(&r.integrity_failures)
                .chain(&r.problems)
                .chain(&report.damage)
                .collect();
            for want in &case.reported {
                assert!(
                    messages.iter().any(|m| m.contains(want)),
                    "{label}: {want:?} is not reported; messages: {messages:#?}"
                );
            }
            if case.damaged {
                assert!(
                    !report.damage.is_empty() || !r.integrity_failures.is_empty(),
                    "{label}: damage not reported: {messages:#?}"
                );
                for m in report.damage.iter().chain(&r.integrity_failures) {
                    assert!(m.contains("byte "), "{label}: no byte offset in {m}");
                }
            } else {
                assert!(
                    !r.refused.is_empty(),
                    "{label}: nothing refused: {messages:#?}"
                );
            }
            for (name, content) in &case.restored {
                let p = target.join(name);
                assert!(
                    p.symlink_metadata().is_ok(),
                    "{label}: {name} was not restored; {messages:#?}"
                );
                if let Some(want) = content {
                    assert_eq!(
                        &std::fs::read(&p).unwrap(),
                        want,
                        "{label}: content of {name}"
                    );
                }
            }
        }
    }
}

#[test]
fn refusals_say_what_and_why() {
    let tmp = tempfile::tempdir().unwrap();
    let restore = |name: &str, allow: bool| {
        let opts = ForeignRestoreOptions {
            source: ForeignSource::Archives(vec![corpus_file(name)]),
            patterns: vec![],
            target: tmp.path().join(format!("{name}-{allow}")),
            existing: Existing::Skip,
            allow_outside_symlinks: allow,
            policy_roots: None,
        };
        reel_core::foreign::restore(None, None, &opts, &NoProgress).unwrap()
    };
    let r = restore("dotdot-plain", false);
    assert_eq!(
        r.restore.refused,
        vec!["../escape-dotdot: path contains '..'".to_string()]
    );
    let r = restore("absolute-path", false);
    assert!(
        r.restore.refused[0].contains("/reel-corpus-escape-abs: absolute path"),
        "{:?}",
        r.restore.refused
    );
    let r = restore("symlink-then-write", false);
    assert!(
        r.restore.refused[0]
            .starts_with("refused esc: its target ../outside leaves the restore target"),
        "{:?}",
        r.restore.refused
    );
    let r = restore("symlink-then-write", true);
    assert!(
        r.restore.refused[0].contains("esc/pwned")
            && r.restore.refused[0].contains("through the symlink esc"),
        "{:?}",
        r.restore.refused
    );
    let r = restore("hardlink-to-parent", false);
    assert!(
        r.restore.refused[0].contains("hl") && r.restore.refused[0].contains(".."),
        "{:?}",
        r.restore.refused
    );
    let r = restore("dir-then-symlink", true);
    assert!(
        r.restore.refused[0].contains("directory is in the way"),
        "{:?}",
        r.restore.refused
    );
    let r = restore("bad-checksum", false);
    assert_eq!(r.restore.files, 2);
    assert_eq!(r.damage.len(), 1);
    assert!(
        r.damage[0].contains("corrupt archive at byte 1024: header checksum mismatch")
            && r.damage[0].contains("next header at byte 2048"),
        "{:?}",
        r.damage
    );
}
