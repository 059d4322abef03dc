//! `reel catalog rebuild`

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reel_tape::{Library, Target};

use crate::Global;
use crate::cmd::catalog_path;
use crate::exit::{PARTIAL, UsageError};
use crate::ui::{JobProgress, print_json};

/// The catalog of volumes, sets and files (a cache of what the tapes say).
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel catalog rebuild                 from every cartridge of the default library
  reel --tape ./lib catalog rebuild    from the cartridges of ./lib
  reel --tape /dev/nst0 catalog rebuild
                                       from the tape in the drive, then each one you
                                       load when asked (q when all are read)
  reel --tape /dev/nst0 catalog scan --file 0
                                       catalogue a tape GNU tar wrote (bscan-like)
  reel catalog scans                   the foreign tape files catalogued

A scanned tape file is recognised by its number and its first record; scanning it again
replaces the earlier scan. `rebuild` reads reel's own sets from the tapes and keeps the old
catalog's scans (no tape holds them); if the old catalog is too damaged to give them, scan
the foreign files again after it.

The catalog lives in $REEL_HOME/catalog.sqlite. Losing it loses nothing: every set carries
its own index on tape, and `rebuild` reads them all.")]
pub struct Args {
    #[command(subcommand)]
    command: CatalogCommand,
}

#[derive(Subcommand, Debug)]
enum CatalogCommand {
    /// Recreate the catalog from the tapes alone: every cartridge of a library, or for a real
    /// or remote drive, the tape in it and each one loaded when asked.
    Rebuild,
    /// Read a tape file another program wrote (e.g. `tar -cf /dev/nst0`) once and record
    /// where every member is, so later lists and restores of it seek straight to a member.
    Scan {
        /// Tape file number on the tape (--tape); files are numbered from 0.
        #[arg(long, value_name = "N")]
        file: u64,
    },
    /// The foreign tape files scanned so far.
    Scans,
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    match args.command {
        CatalogCommand::Rebuild => rebuild(global),
        CatalogCommand::Scan { file } => crate::cmd::foreign::scan(file, global),
        CatalogCommand::Scans => crate::cmd::foreign::scans(global),
    }
}

fn rebuild(global: &Global) -> Result<ExitCode> {
    let target = Target::parse(global.tape.as_deref())?;
    let dir = match &target {
        Target::Library(dir) => dir.clone().unwrap_or_else(Library::default_dir),
        Target::LibraryCartridge { library, .. } => {
            library.clone().unwrap_or_else(Library::default_dir)
        }
        Target::Cartridge(dir) => match dir.parent() {
            Some(p) if Library::is_library(p) => p.to_path_buf(),
            _ => bail!(UsageError(format!(
                "{} is not in a library; rebuild reads a whole library (--tape LIBRARY-DIR)",
                dir.display()
            ))),
        },
        // A real or remote drive: the tape in it, then each one the operator loads.
        Target::Device(_) | Target::Remote { .. } | Target::Scsi(_) => {
            let drive = reel_core::manual::open_manual(&target).with_context(|| {
                format!("cannot open tape {}", global.tape.as_deref().unwrap_or(""))
            })?;
            crate::cmd::warn_open_notes(&*drive);
            let mut changer = reel_core::ManualChanger::new(
                target.clone(),
                crate::ui::TerminalOperator::for_run(global),
            );
            let progress = JobProgress::new(global);
            let report = reel_core::rebuild::rebuild_from_drive(
                &catalog_path(),
                drive,
                &mut changer,
                &progress,
            );
            progress.finish();
            return print_rebuild(report?, global);
        }
    };
    let library = Library::open_or_create(&dir)?;
    let progress = JobProgress::new(global);
    let report = reel_core::rebuild::rebuild_from_library(&catalog_path(), &library, &progress);
    progress.finish();
    print_rebuild(report?, global)
}

fn print_rebuild(report: reel_core::rebuild::RebuildReport, global: &Global) -> Result<ExitCode> {
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        println!(
            "catalog rebuilt from {} volumes ({}): {} sets, {} files",
            report.volumes.len(),
            report.volumes.join(", "),
            report.sets,
            report.entries
        );
        if report.foreign_scans_kept > 0 {
            println!(
                "kept {} scans of foreign tape files from the old catalog",
                report.foreign_scans_kept
            );
        }
    }
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PARTIAL)
    })
}
