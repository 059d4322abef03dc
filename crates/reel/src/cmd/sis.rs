//! `reel sis`: the single instance store (merge duplicates into SIS links, status, gc,
//! watch, verify). The work is done by `reel-sis`; this module parses and reports.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use reel_sis::{CommonStore, MergeOptions, SisError, Volume, WatchEvent, Watcher};

use crate::Global;
use crate::exit::{self, UsageError};
use crate::ui::{human_size, parse_size, print_json};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Duplicate files become SIS links: ordinary files whose blocks are shared (reflinks) with one
immutable copy in .sis-common-store/ at the root of the filesystem. Writing to a link changes
only that file (copy-on-write). Needs btrfs, XFS made with reflink=1, or bcachefs.

Examples:
  reel sis merge /srv/data                 link the duplicates under /srv/data
  reel sis merge --dry-run ~/photos        show what would be linked
  reel sis status /srv                     links, common-store files, bytes saved
  reel sis verify /srv/data                check links' extents and common-store hashes
  reel sis gc /srv                         remove common-store files no link uses
  reel sis watch /srv                      remove them as soon as their last link goes (root)")]
pub struct Args {
    #[command(subcommand)]
    command: SisCommand,
}

#[derive(clap::Args, Debug)]
struct Where {
    /// A path on the filesystem (for merge and verify: the tree to work on).
    path: PathBuf,
    /// The volume root holding .sis-common-store (default: the mount point of PATH).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum SisCommand {
    /// Find duplicate files under PATH and turn them into SIS links.
    #[command(after_help = "\
Files are grouped by size, then by a hash of their first and last 4 KiB, then by their full
BLAKE3 hash; each group is linked to one common-store file with FIDEDUPERANGE, so the kernel
compares the bytes and a file changed meanwhile is left untouched. The space reclaimed is
measured from the filesystem's free space.

Examples:
  reel sis merge /srv/data
  reel sis merge --min-size 64K --json /srv/data
  reel sis merge --dry-run -v ~/photos")]
    Merge {
        #[command(flatten)]
        at: Where,
        /// Leave smaller files alone (e.g. 4096, 64K, 1M).
        #[arg(long, default_value = "4K", value_name = "SIZE")]
        min_size: String,
        /// Hashing threads (default: the number of CPUs, at most 8).
        #[arg(long, value_name = "N")]
        threads: Option<usize>,
        /// Only scan and report the groups; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Links, common-store files and bytes saved on the volume of PATH.
    #[command(after_help = "Examples:\n  reel sis status /srv\n  reel sis status --json /srv")]
    Status {
        #[command(flatten)]
        at: Where,
    },
    /// Remove common-store files that no link uses any more; forget links that are gone or
    /// were written to (they are ordinary files now).
    #[command(after_help = "Examples:\n  reel sis gc /srv\n  reel sis gc -v --json /srv")]
    Gc {
        #[command(flatten)]
        at: Where,
    },
    /// Watch the filesystem (fanotify, needs root) and remove a common-store file as soon as
    /// its last link is deleted; runs until interrupted.
    #[command(after_help = "\
Prints one line per action (one JSON document per line with --json).

Examples:
  sudo reel sis watch /srv
  sudo reel sis watch --json /srv >> /var/log/reel-sis-watch.jsonl")]
    Watch {
        #[command(flatten)]
        at: Where,
    },
    /// Check that every link under PATH still shares exactly its common-store file's blocks
    /// (else it is reported as an ordinary file) and that common-store files hash to their
    /// names. Changes nothing.
    #[command(after_help = "\
Exit code 4 when a common-store file is damaged; links that were written to are reported as
ordinary files (that is copy-on-write working, not damage).

Examples:
  reel sis verify /srv/data
  reel sis verify --json /srv")]
    Verify {
        #[command(flatten)]
        at: Where,
    },
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    match args.command {
        SisCommand::Merge {
            at,
            min_size,
            threads,
            dry_run,
        } => merge(global, &at, &min_size, threads, dry_run),
        SisCommand::Status { at } => status(global, &at),
        SisCommand::Gc { at } => gc(global, &at),
        SisCommand::Watch { at } => watch(global, &at),
        SisCommand::Verify { at } => verify(global, &at),
    }
}

fn volume(at: &Where) -> Result<Volume, SisError> {
    match &at.root {
        Some(root) => {
            let v = Volume::at_root(root)?;
            let abs = std::fs::canonicalize(&at.path)
                .map_err(|e| SisError::io("resolve", &at.path, e))?;
            v.relative(&abs)?;
            Ok(v)
        }
        None => Volume::containing(&at.path),
    }
}

/// A byte counter on stderr while work runs (hidden unless stderr is a terminal).
fn byte_spinner(global: &Global, what: &str) -> ProgressBar {
    if global.quiet || global.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {msg} {bytes} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(what.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    bar
}

fn merge(
    global: &Global,
    at: &Where,
    min_size: &str,
    threads: Option<usize>,
    dry_run: bool,
) -> Result<ExitCode> {
    let vol = volume(at)?;
    let mut opts = MergeOptions {
        min_size: parse_size(min_size)?,
        ..MergeOptions::default()
    };
    if let Some(t) = threads {
        if t == 0 {
            return Err(UsageError("--threads must be at least 1".into()).into());
        }
        opts.threads = t;
    }
    vol.require_reflink()?;
    let bar = byte_spinner(global, "hashing");
    let progress = |n: u64| bar.inc(n);

    if dry_run {
        let store = match CommonStore::open(vol.clone()) {
            Ok(s) => Some(s),
            Err(SisError::NoStore { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let plan = reel_sis::scan(&vol, store.as_ref(), &at.path, &opts, &progress)?;
        bar.finish_and_clear();
        if global.json {
            print_json(&plan)?;
        } else {
            let files: usize = plan
                .groups
                .iter()
                .map(|g| g.members.iter().filter(|m| !m.linked).count())
                .sum();
            println!(
                "{}: {} files scanned ({}) in {:.2} s",
                plan.path.display(),
                plan.stats.files,
                human_size(plan.stats.bytes),
                plan.stats.seconds
            );
            println!(
                "would link {files} files in {} groups of identical files, freeing about {}",
                plan.groups.len(),
                human_size(plan.reclaimable_bytes())
            );
            if global.verbose > 0 {
                for g in &plan.groups {
                    println!("{} ({}):", g.hash.file_name(), human_size(g.size));
                    for m in &g.members {
                        println!(
                            "  {}{}",
                            m.path.display(),
                            if m.linked { " (linked)" } else { "" }
                        );
                    }
                }
            }
            print_problems(&plan.problems);
        }
        return Ok(exit_for(plan.problems.is_empty()));
    }

    let store = CommonStore::open_or_create(vol)?;
    let report = reel_sis::merge(&store, &at.path, &opts, &progress)?;
    bar.finish_and_clear();
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        println!(
            "{} (volume {}, {})",
            report.path.display(),
            report.root.display(),
            store.volume().fs_type()
        );
        println!(
            "  scanned {} files ({}) in {:.2} s: {} shared a size, {} hashed whole, {} read",
            report.scan.files,
            human_size(report.scan.bytes),
            report.scan.seconds,
            report.scan.size_candidates,
            report.scan.fully_hashed,
            human_size(report.scan.bytes_read)
        );
        println!(
            "  {} groups of identical files: {} files linked now, {} were links already, {} common-store files created",
            report.groups,
            report.files_linked,
            report.already_linked,
            report.common_store_files_created
        );
        println!(
            "  reclaimed {} (measured from free space; {} expected)",
            signed_size(report.bytes_reclaimed),
            human_size(report.reclaimable_bytes)
        );
        if !report.changed.is_empty() {
            println!("  left alone, changed during the merge:");
            for p in &report.changed {
                println!("    {}", p.display());
            }
        }
    }
    if !global.json {
        print_problems(&report.problems);
    }
    Ok(exit_for(report.problems.is_empty()))
}

fn status(global: &Global, at: &Where) -> Result<ExitCode> {
    let store = CommonStore::open(volume(at)?)?;
    let r = reel_sis::status(&store)?;
    if global.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "common store        {} ({})",
        r.common_store.display(),
        r.fs_type
    );
    println!(
        "common-store files  {} ({})",
        r.common_store_files,
        human_size(r.common_store_bytes)
    );
    println!(
        "links               {} present of {} recorded ({} of file data)",
        r.links_present,
        r.links,
        human_size(r.link_bytes)
    );
    println!("bytes saved         {}", signed_size(r.bytes_saved));
    if r.unreferenced_common_store_files > 0 || r.links_missing > 0 {
        println!(
            "to clean up         {} common-store files without links, {} links gone: run `reel sis gc {}`",
            r.unreferenced_common_store_files,
            r.links_missing,
            r.root.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn gc(global: &Global, at: &Where) -> Result<ExitCode> {
    let store = CommonStore::open(volume(at)?)?;
    let r = reel_sis::gc(&store)?;
    if global.json {
        print_json(&r)?;
        return Ok(ExitCode::SUCCESS);
    }
    if !global.quiet {
        println!(
            "checked {} links: {} forgotten; removed {} common-store files ({}); reclaimed {} (measured)",
            r.links_checked,
            r.links_dropped.len(),
            r.removed.len(),
            human_size(r.bytes_removed),
            signed_size(r.bytes_reclaimed)
        );
        if global.verbose > 0 {
            for d in &r.links_dropped {
                println!("  forgot {}: {}", d.path.display(), d.reason);
            }
            for f in &r.removed {
                println!(
                    "  removed {} ({}): {}",
                    f.name,
                    human_size(f.size),
                    f.reason
                );
            }
        }
        for f in &r.kept {
            println!("  kept {} ({}): {}", f.name, human_size(f.size), f.reason);
        }
        for p in &r.foreign {
            println!("  not reel's, left alone: {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn watch(global: &Global, at: &Where) -> Result<ExitCode> {
    let store = CommonStore::open(volume(at)?)?;
    let root = store.volume().root().to_path_buf();
    let mut watcher = Watcher::new(store)?;
    if !global.quiet && !global.json {
        eprintln!("watching {} (Ctrl-C to stop)", root.display());
    }
    let stop = AtomicBool::new(false);
    let json = global.json;
    let verbose = global.verbose;
    watcher.run(&stop, &mut |e| print_watch_event(e, json, verbose))?;
    Ok(ExitCode::SUCCESS)
}

fn print_watch_event(e: &WatchEvent, json: bool, verbose: u8) {
    if json {
        if let Ok(line) = serde_json::to_string(e) {
            println!("{line}");
        }
        return;
    }
    match e {
        WatchEvent::Removed { name, size } => {
            println!(
                "removed {name} ({}): its last link is gone",
                human_size(*size)
            )
        }
        WatchEvent::Forgot { path, reason } if verbose > 0 => {
            println!("forgot {}: {reason}", path.display())
        }
        WatchEvent::Recorded {
            path,
            common_store_file,
        } if verbose > 0 => println!(
            "recorded {} as a link of {common_store_file}",
            path.display()
        ),
        WatchEvent::Rescanned { links } if verbose > 0 => println!("re-checked {links} links"),
        _ => {}
    }
}

fn verify(global: &Global, at: &Where) -> Result<ExitCode> {
    let store = CommonStore::open(volume(at)?)?;
    let bar = byte_spinner(global, "hashing common-store files");
    let progress = |n: u64| bar.inc(n);
    let r = reel_sis::verify(&store, &at.path, &progress)?;
    bar.finish_and_clear();
    if global.json {
        print_json(&r)?;
    } else {
        println!(
            "{} links checked: {} intact, {} ordinary files now, {} gone; {} common-store files hashed ({})",
            r.links_checked,
            r.links_ok,
            r.ordinary_now.len(),
            r.missing.len(),
            r.common_store_files_checked,
            human_size(r.bytes_hashed)
        );
        for n in &r.ordinary_now {
            println!("  ordinary file now: {}: {}", n.path.display(), n.reason);
        }
        if global.verbose > 0 {
            for p in &r.missing {
                println!("  gone: {}", p.display());
            }
        }
        for p in &r.unrecorded_links {
            println!(
                "  link not in the index (renamed or restored): {}",
                p.display()
            );
        }
        if !r.unrecorded_links.is_empty() || !r.missing.is_empty() {
            println!(
                "  `reel sis merge {}` records links again; `reel sis gc` forgets gone ones",
                display(&at.path)
            );
        }
        for n in &r.missing_common_store_files {
            println!("  common-store file missing: {n}");
        }
        for d in &r.damaged {
            eprintln!(
                "reel: common-store file {} is damaged: its content hashes to {}",
                d.name, d.actual_hash
            );
        }
    }
    Ok(if r.intact() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::INTEGRITY)
    })
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn signed_size(n: i64) -> String {
    if n < 0 {
        format!("-{}", human_size(n.unsigned_abs()))
    } else {
        human_size(n as u64)
    }
}

fn print_problems(problems: &[reel_sis::merge::Problem]) {
    for p in problems {
        eprintln!("reel: {}: {}", p.path.display(), p.error);
    }
}

fn exit_for(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::PARTIAL)
    }
}
