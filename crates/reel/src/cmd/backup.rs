//! `reel backup PATH…`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;
use reel_core::{BackupOptions, backup};

use crate::Global;
use crate::cmd::open_drive;
use crate::exit::PARTIAL;
use crate::ui::{JobProgress, human_size, parse_size, print_json};

/// Back up files and directories as one new set at the end of the tape.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel backup ~/projects /etc                 both trees into one set
  reel backup --name nightly /srv
  reel --tape vtape:weekly-01 backup /home    onto another cartridge of the library

Paths are stored without their leading '/', so `reel restore --to /tmp/r` puts
/home/ann/x at /tmp/r/home/ann/x. A blank cartridge is labelled on first use.
Exit code 1 means the set was written but some files could not be backed up (listed).")]
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
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    let block_size = parse_size(&args.block_size)? as usize;
    let mut opts = BackupOptions::new(args.paths);
    opts.name = args.name;
    opts.block_size = block_size;
    opts.one_file_system = args.one_file_system;
    opts.force = args.force;
    let mut drive = open_drive(global)?;
    let progress = JobProgress::new(global);
    let started = Instant::now();
    let report = backup(&mut *drive, &opts, &progress);
    progress.finish();
    let report = report?;
    let secs = started.elapsed().as_secs_f64();
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        let s = &report.set;
        if report.labelled {
            println!("labelled {} as a new reel volume", drive.describe());
        }
        if let Some(l) = &report.replaced_leftover {
            println!("replaced the remains of an interrupted backup: {l}");
        }
        println!(
            "set {} \"{}\" on {}: {} files, {} directories, {} other, {} in {:.1}s ({}/s)",
            s.number,
            s.name,
            drive.describe(),
            s.files,
            s.directories,
            s.other,
            human_size(s.content_bytes),
            secs,
            human_size((s.content_bytes as f64 / secs.max(0.001)) as u64)
        );
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
