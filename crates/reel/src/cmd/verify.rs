//! `reel verify [SET] [--against-disk]`

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use reel_core::{VerifyOptions, verify};

use crate::Global;
use crate::cmd::{open_catalog_for_reading_or_warn, open_tapes};
use crate::exit::{INTEGRITY, PARTIAL};
use crate::ui::{JobProgress, human_size, print_json};

/// Re-read a set and check every file against the hash recorded at backup time.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel verify                    the latest set
  reel verify 3 --against-disk   set 3, and compare it with the files on disk now
  reel verify nightly --json

Exit codes: 4 when a file on tape is damaged or missing, 1 when only the disk differs.")]
pub struct Args {
    /// Set to verify (number, name, id or `latest`; default: the latest).
    #[arg(value_name = "SET")]
    set: Option<String>,
    /// Also compare every file with the file on disk (at its original path under --root).
    #[arg(long)]
    against_disk: bool,
    /// Where the backed-up paths are on disk (default /).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    let mut tapes = open_tapes(global)?;
    let catalog = open_catalog_for_reading_or_warn(global);
    let progress = JobProgress::new(global);
    let opts = VerifyOptions {
        set: args.set.filter(|s| s != "latest"),
        against_disk: args.against_disk,
        disk_root: args.root,
    };
    let report = verify(&mut tapes, catalog.as_ref(), &opts, &progress);
    progress.finish();
    let report = report?;
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        let set = report.set.as_ref();
        println!(
            "set {} \"{}\": {} files verified ({}), {} damaged, {} missing on tape{}",
            set.map(|s| s.number).unwrap_or(0),
            set.map(|s| s.name.as_str()).unwrap_or(""),
            report.verified,
            human_size(report.bytes),
            report.damaged.len(),
            report.missing_on_tape.len(),
            if report.in_earlier_sets > 0 {
                format!(
                    ", {} in earlier sets of the chain (verify those)",
                    report.in_earlier_sets
                )
            } else {
                String::new()
            }
        );
        for m in &report.missing_on_tape {
            println!("  missing on tape: {m}");
        }
        if args.against_disk {
            for d in &report.differs_on_disk {
                println!("  {d}");
            }
            for m in &report.missing_on_disk {
                println!("  gone from disk: {m}");
            }
            if report.disk_ok() {
                println!("  the disk matches the backup");
            }
        }
    }
    Ok(if !report.tape_ok() {
        ExitCode::from(INTEGRITY)
    } else if !report.disk_ok() {
        ExitCode::from(PARTIAL)
    } else {
        ExitCode::SUCCESS
    })
}
