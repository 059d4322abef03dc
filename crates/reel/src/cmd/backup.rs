//! `reel backup PATH…`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use reel_core::backup::DryRunReport;
use reel_core::{BackupOptions, backup};

use crate::Global;
use crate::cmd::{open_catalog_or_warn, open_tapes};
use crate::exit::PARTIAL;
use crate::ui::{JobProgress, human_size, parse_size, print_json};

/// Back up files and directories as one new set at the end of the tape.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel backup ~/projects /etc                 both trees into one set
  reel backup --name nightly /srv
  reel --tape vtape:weekly-01 backup /home    onto another cartridge of the library
  reel backup --incremental /home             only what changed since the last set of /home
  reel backup --dry-run ~ --exclude '*.iso'   what would be skipped, and by which rule
  reel backup --snapshot /home                from a read-only btrfs snapshot

The policy (reel policy show) decides what is skipped: files-not-to-backup drop-ins,
CACHEDIR.TAG directories, .nobackup markers, the nodump flag, user.xdg.robots.backup=false;
--ignore-exclusions backs up everything.

Paths are stored without their leading '/', so `reel restore --to /tmp/r` puts
/home/ann/x at /tmp/r/home/ann/x. A blank cartridge is labelled on first use.
When a cartridge fills, the set continues on the next blank cartridge of the library
(one is created when there is none). Exit code 1 means the set was written but some files
could not be backed up (listed).")]
pub struct Args {
    /// Files and directories to back up.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Name of the set (default: HOST-YYYYMMDDhhmmss).
    #[arg(long)]
    name: Option<String>,
    /// Record size of the set on tape (multiple of 512).
    #[arg(long, default_value = "256K", value_name = "SIZE")]
    block_size: String,
    /// Do not cross into other file systems.
    #[arg(long, short = 'x')]
    one_file_system: bool,
    /// Label the tape even if it holds data reel did not write (destroys that data).
    #[arg(long)]
    force: bool,
    /// Only files changed since the newest set of the same paths (needs the catalog).
    #[arg(long, conflicts_with = "full")]
    incremental: bool,
    /// A full backup: everything, starting a new incremental chain (the default unless the
    /// policy's backup-mode says incremental).
    #[arg(long)]
    full: bool,
    /// Also skip what matches this pattern (files-not-to-backup syntax; repeatable).
    #[arg(long, value_name = "PATTERN")]
    exclude: Vec<String>,
    /// Back up everything under the paths: none of the policy's exclusions
    /// (files-not-to-backup, CACHEDIR.TAG, exclude-if-present markers, the nodump flag,
    /// user.xdg.robots.backup). Hooks and snapshots still follow the policy.
    #[arg(long, conflicts_with = "exclude")]
    ignore_exclusions: bool,
    /// Write nothing: list what the policy skips and why, and count what would be backed up.
    #[arg(long)]
    dry_run: bool,
    /// Read from a btrfs snapshot of each path (the live tree elsewhere, with a note).
    #[arg(long)]
    snapshot: bool,
    /// Fail instead of reading the live tree when a snapshot cannot be made.
    #[arg(long, requires = "snapshot")]
    require_snapshot: bool,
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    let block_size = parse_size(&args.block_size)? as usize;
    let mut opts = BackupOptions::new(args.paths);
    opts.name = args.name;
    opts.block_size = block_size;
    opts.one_file_system = args.one_file_system;
    opts.force = args.force;
    opts.incremental = if args.incremental {
        Some(true)
    } else if args.full {
        Some(false)
    } else {
        None
    };
    opts.excludes = args.exclude;
    opts.ignore_exclusions = args.ignore_exclusions;
    opts.snapshot = args.snapshot;
    opts.require_snapshot = args.require_snapshot;
    if args.dry_run {
        return dry_run(&opts, global);
    }
    let mut tapes = open_tapes(global)?;
    // A drive that raises a critical TapeAlert flag gets no backup.
    reel_tape::health::check_before_backup(&mut *tapes.drive)?;
    let mut catalog = open_catalog_or_warn(global);
    let progress = JobProgress::new(global);
    let started = Instant::now();
    let report = backup(&mut tapes, catalog.as_mut(), &opts, &progress);
    progress.finish();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        let s = &report.set;
        if report.labelled {
            println!(
                "labelled {} as a new reel volume",
                report.volumes.first().map(String::as_str).unwrap_or("?")
            );
        }
        if let Some(l) = &report.replaced_leftover {
            println!("replaced the remains of an unfinished backup: {l}");
        }
        println!(
            "set {} \"{}\" on {}: {} files, {} directories, {} other, {} in {:.1}s ({}/s)",
            s.number,
            s.name,
            report.volumes.join(" + "),
            s.files,
            s.directories,
            s.other,
            human_size(s.content_bytes),
            secs,
            human_size((s.content_bytes as f64 / secs.max(0.001)) as u64)
        );
        if report.skipped_by_policy > 0 {
            println!(
                "{} entries skipped by the policy (see `reel backup --dry-run` for which and why)",
                report.skipped_by_policy
            );
        }
        for snap in &report.snapshots {
            println!("read from snapshot {}", snap.display());
        }
        if report.unchanged_files > 0 {
            println!(
                "incremental since {}: {} unchanged files left in earlier sets",
                report.parent_set.as_deref().unwrap_or("an earlier set"),
                report.unchanged_files
            );
        }
        if !report.problems.is_empty() {
            println!(
                "{} files could not be backed up completely (listed above)",
                report.problems.len()
            );
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PARTIAL)
    })
}

fn dry_run(opts: &BackupOptions, global: &Global) -> Result<ExitCode> {
    let progress = JobProgress::new(global);
    let report: DryRunReport = reel_core::backup::dry_run(opts, &progress)?;
    progress.finish();
    if global.json {
        print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for s in &report.skipped {
        println!(
            "skip {}{}: {}",
            s.path,
            if s.contents_only {
                " (content only; the directory and its tag are kept)"
            } else {
                ""
            },
            s.reason
        );
    }
    println!(
        "would back up {} files ({}), {} directories, {} other; {} entries skipped by the policy",
        report.files,
        human_size(report.bytes),
        report.directories,
        report.other,
        report.skipped.len()
    );
    Ok(ExitCode::SUCCESS)
}
