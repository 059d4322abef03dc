//! `reel restore [SET] [PATTERN…] [--to DIR]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use reel_core::{RestoreOptions, restore};
use reel_stream::Existing;

use crate::Global;
use crate::cmd::{open_catalog_for_reading_or_warn, open_tapes, split_set_and_patterns};
use crate::exit::{INTEGRITY, PARTIAL};
use crate::ui::{JobProgress, human_size, print_json};

/// Restore a set, a subtree or files matching patterns.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel restore --to /tmp/r                      the latest set, under /tmp/r
  reel restore 2 --to /tmp/r                    set 2
  reel restore 2 home/ann/notes --to /tmp/r     one subtree of set 2
  reel restore latest 'etc/*.conf' --to /tmp/r
  reel restore 3 --to / --overwrite             back to the original places
  reel restore --archive old.tar --to /tmp/r    a tar file any program wrote
  reel restore --archive - 'home/ann/**' --to /tmp/r < old.tar
  reel --tape /dev/nst0 restore --file 0 etc/fstab --to /tmp/r
                                                from a tape `tar -cf /dev/nst0` wrote

Paths the policy lists in paths-not-to-restore are left as they are (reported). After a
whole set restored to its original places (no --to, or --to / or $REEL_ROOT), last-restore-id
gets a new UUID and post-restore hooks run with REEL_SET_ID.
Members with absolute paths or '..', or that would be written through a symlink, are
refused and listed; nothing is written outside the target. From foreign archives, symlinks
pointing outside the target are refused too (--allow-outside-symlinks), and damaged
headers are reported and stepped over, as GNU tar does, restoring the members after them. Every file is checked against
the hash recorded at backup time. Exit codes: 1 some members refused or failed,
4 some members damaged on the tape.")]
pub struct Args {
    /// Set to restore (number, name, id or `latest`; default: the latest).
    #[arg(value_name = "SET")]
    set: Option<String>,
    /// Only members matching these patterns (and what is under them).
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,
    /// Directory to restore under (default: the original places, under /).
    #[arg(long, value_name = "DIR")]
    to: Option<PathBuf>,
    /// Replace existing files.
    #[arg(long, conflicts_with = "keep_newer")]
    overwrite: bool,
    /// Replace existing files only when the archived one is newer.
    #[arg(long)]
    keep_newer: bool,
    /// Restore paths the policy says not to restore, and do not tell applications
    /// (no last-restore-id, no post-restore hooks).
    #[arg(long)]
    ignore_policy: bool,
    /// A file whose name is busy (a mount point, a running image) is staged next to it and a
    /// move scheduled in this delayed-operation file (default:
    /// $REEL_ROOT/var/lib/reel/delayed-operations); `reel delayed register` runs it at boot.
    /// (Sets only: not with --archive or --file.)
    #[arg(long, value_name = "FILE", num_args = 0..=1, conflicts_with_all = ["archive", "file"])]
    schedule_busy: Option<Option<PathBuf>>,
    /// Restore from a tar archive another program wrote instead of a set (GNU tar, bsdtar,
    /// star, any format); repeat for the volumes of a multi-volume archive, in order; -
    /// reads standard input. All arguments are then patterns; --to is required.
    #[arg(long, value_name = "PATH")]
    archive: Vec<PathBuf>,
    /// Restore from tape file N of the tape (--tape), a tar archive another program wrote.
    /// Seeks straight to the selected members when `reel catalog scan` has read the file.
    #[arg(long, value_name = "N")]
    file: Option<u64>,
    /// With --archive/--file: restore symlinks whose target leaves the --to directory
    /// (absolute, or climbing out with ..) as they are, instead of refusing them.
    #[arg(long)]
    allow_outside_symlinks: bool,
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    if let Some(source) = crate::cmd::foreign::source(&args.archive, args.file)? {
        let existing = if args.overwrite {
            Existing::Overwrite
        } else if args.keep_newer {
            Existing::KeepNewer
        } else {
            Existing::Skip
        };
        return crate::cmd::foreign::restore(
            crate::cmd::foreign::RestoreArgs {
                source,
                patterns: crate::cmd::foreign::patterns(args.set, args.patterns),
                target: args.to,
                existing,
                allow_outside_symlinks: args.allow_outside_symlinks,
                ignore_policy: args.ignore_policy,
            },
            global,
        );
    }
    let (set, patterns) = split_set_and_patterns(args.set, args.patterns);
    let existing = if args.overwrite {
        Existing::Overwrite
    } else if args.keep_newer {
        Existing::KeepNewer
    } else {
        Existing::Skip
    };
    let target = args.to.unwrap_or_else(|| PathBuf::from("/"));
    let opts = RestoreOptions {
        set,
        patterns,
        target,
        existing,
        policy_roots: (!args.ignore_policy).then(reel_policy::Roots::from_env),
        schedule_busy: args.schedule_busy.map(|f| {
            f.unwrap_or_else(|| {
                reel_policy::Roots::from_env()
                    .state_dir()
                    .join("delayed-operations")
            })
        }),
    };
    let mut tapes = open_tapes(global)?;
    let catalog = open_catalog_for_reading_or_warn(global);
    let progress = JobProgress::new(global);
    let report = restore(&mut tapes, catalog.as_ref(), &opts, &progress);
    progress.finish();
    let report = report?;
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        let set = report.set.as_ref();
        println!(
            "restored set {} to {}: {} files ({}), {} directories, {} symlinks, {} hard links, {} other",
            set.map(|s| s.number).unwrap_or(0),
            report.target.display(),
            report.files,
            human_size(report.bytes),
            report.directories,
            report.symlinks,
            report.hardlinks,
            report.other
        );
        if !report.left_by_policy.is_empty() {
            println!(
                "  {} members left as they are (paths-not-to-restore; --ignore-policy restores them):",
                report.left_by_policy.len()
            );
            for l in &report.left_by_policy {
                println!("    {l}");
            }
        }
        if !report.scheduled.is_empty() {
            println!(
                "  {} busy files staged, moves scheduled for the next boot:",
                report.scheduled.len()
            );
            for s in &report.scheduled {
                println!("    {s}");
            }
            if let Some(f) = &opts.schedule_busy {
                println!(
                    "  carry them out with `reel delayed run {0}`, or at boot after `reel delayed register {0}`",
                    f.display()
                );
            }
        }
        if let Some(id) = report.restore_id {
            println!("  last-restore-id is now {id}");
        }
        for t in &report.added_link_targets {
            println!("  also restored {t}: a selected hard link needs it");
        }
        if report.skipped_existing > 0 {
            println!(
                "  {} existing files left as they were (use --overwrite or --keep-newer)",
                report.skipped_existing
            );
        }
        if !report.refused.is_empty() {
            println!(
                "  {} members refused for safety (listed above)",
                report.refused.len()
            );
        }
        if !report.problems.is_empty() {
            println!("  {} members failed (listed above)", report.problems.len());
        }
        if !report.integrity_failures.is_empty() {
            println!(
                "  {} members damaged on the tape and not restored (listed above)",
                report.integrity_failures.len()
            );
        }
    }
    Ok(if !report.integrity_failures.is_empty() {
        ExitCode::from(INTEGRITY)
    } else if !report.is_clean() {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}
