//! What the backup filter costs per entry: `cargo run --release -p reel-policy --example
//! filter_cost [FILES] [RULES]`. Builds a temporary tree of empty files and times the
//! pattern-only match and the full check (patterns, xattr, nodump, markers, CACHEDIR.TAG).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Counts heap allocations, to show that the per-entry path allocates nothing.
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

use reel_policy::{BackupFilter, EntryKind, Key, Pattern, Rule, RuleSet, Source};

fn main() {
    let mut args = std::env::args().skip(1);
    let files: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let nrules: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let dir = tempfile::tempdir().expect("temp dir");
    let top = dir.path().to_path_buf();
    let mut entries: Vec<(PathBuf, EntryKind)> = Vec::with_capacity(files + files / 100);
    for d in 0..files.div_ceil(100) {
        let sub = top.join(format!("dir{d:05}"));
        std::fs::create_dir(&sub).expect("mkdir");
        entries.push((sub.clone(), EntryKind::Dir));
        for f in 0..100.min(files - d * 100) {
            let p = sub.join(format!("file{f:03}.dat"));
            std::fs::write(&p, b"").expect("write");
            entries.push((p, EntryKind::File));
        }
    }
    // A mix like a real system's: absolute files, /s subtrees, extensions anywhere, directories.
    let no_vars = |_: &str| None::<String>;
    let mut rules = Vec::new();
    for i in 0..nrules {
        let text = match i % 4 {
            0 => format!("/var/lib/app{i}/cache/* /s"),
            1 => format!("*.ext{i}"),
            2 => format!("/home/user{i}/.cache/"),
            _ => format!("{}/dir{:05}/nomatch{i}.dat", top.display(), i),
        };
        let pattern = Pattern::parse(&text, &no_vars).expect("pattern");
        rules.push(Rule {
            key: Key::FilesNotToBackup,
            pattern,
            source: Source::CommandLine { index: i },
        });
    }
    let (set, _) = RuleSet::new(rules);
    let filter = BackupFilter::from_parts(set, vec![".nobackup".into()]);

    let passes = 5;
    // Warm up (the regex engines keep per-thread caches), then count.
    for (p, k) in &entries {
        let _ = filter.check(p, *k);
    }
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    let t = Instant::now();
    let mut hits = 0usize;
    for _ in 0..passes {
        for (p, k) in &entries {
            hits += usize::from(filter.match_rules(p, *k == EntryKind::Dir).is_some());
        }
    }
    let rules_ns = t.elapsed().as_nanos() as f64 / (passes * entries.len()) as f64;
    let rules_allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    let allocs_before = ALLOCS.load(Ordering::Relaxed);

    let t = Instant::now();
    for _ in 0..passes {
        for (p, k) in &entries {
            hits += usize::from(!filter.check(p, *k).is_include());
        }
    }
    let full_ns = t.elapsed().as_nanos() as f64 / (passes * entries.len()) as f64;
    let full_allocs = ALLOCS.load(Ordering::Relaxed) - allocs_before;
    println!(
        "{} entries, {nrules} rules: patterns only {rules_ns:.0} ns/entry ({rules_allocs} allocations in {passes} passes), \
         full check {full_ns:.0} ns/entry ({full_allocs} allocations: the marker/tag paths of directories) ({hits} hits)",
        entries.len()
    );
}
