//! `reel list|restore --archive PATH` / `--tape T --file N`, and `reel catalog scan`:
//! archives other programs wrote. The work is `reel_core::foreign`'s; this prints it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use reel_core::foreign::{ForeignRestoreOptions, ForeignSource};
use reel_stream::Existing;

use crate::Global;
use crate::cmd::{catalog_path, open_catalog_for_reading_or_warn, open_tapes};
use crate::exit::{INTEGRITY, PARTIAL, UsageError};
use crate::ui::{JobProgress, human_size, print_json};

/// The source named by `--archive` / `--file`, if any.
pub fn source(archive: &[PathBuf], file: Option<u64>) -> Result<Option<ForeignSource>> {
    match (archive.is_empty(), file) {
        (true, None) => Ok(None),
        (false, None) => {
            if archive.len() > 1 && archive.iter().any(|p| p.as_os_str() == "-") {
                bail!(UsageError(
                    "standard input (-) can only be the one --archive".into()
                ));
            }
            Ok(Some(ForeignSource::Archives(archive.to_vec())))
        }
        (true, Some(n)) => Ok(Some(ForeignSource::TapeFile(n))),
        (false, Some(_)) => bail!(UsageError(
            "give either --archive or --file (a tape file of --tape), not both".into()
        )),
    }
}

/// All positional arguments are patterns for a foreign archive (there are no sets in it).
pub fn patterns(set: Option<String>, mut patterns: Vec<String>) -> Vec<String> {
    if let Some(s) = set {
        patterns.insert(0, s);
    }
    patterns
}

fn tapes_for(source: &ForeignSource, global: &Global) -> Result<Option<reel_core::Tapes>> {
    Ok(match source {
        ForeignSource::TapeFile(_) => Some(open_tapes(global)?),
        ForeignSource::Archives(_) => None,
    })
}

pub fn list(source: ForeignSource, patterns: Vec<String>, global: &Global) -> Result<ExitCode> {
    let mut tapes = tapes_for(&source, global)?;
    let catalog = match source {
        ForeignSource::TapeFile(_) => open_catalog_for_reading_or_warn(global),
        ForeignSource::Archives(_) => None,
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut io_error = None;
    let mut first = true;
    if global.json {
        write!(out, "{{\"entries\":[").context("writing to stdout")?;
    }
    let progress = JobProgress::new(global);
    let listing = reel_core::foreign::list(
        tapes.as_mut(),
        catalog.as_ref(),
        &source,
        &patterns,
        &progress,
        |e| {
            let r = if global.json {
                let sep = if first { "" } else { "," };
                first = false;
                serde_json::to_string(e)
                    .map_err(std::io::Error::from)
                    .and_then(|line| write!(out, "{sep}\n{line}"))
            } else {
                writeln!(out, "{}", crate::ui::entry_line(e))
            };
            if let Err(err) = r {
                io_error.get_or_insert(err);
            }
        },
    );
    progress.finish();
    let listing = listing?;
    if let Some(e) = io_error {
        return Err(e).context("writing to stdout");
    }
    if global.json {
        let tail = serde_json::to_string(&listing)?;
        writeln!(out, "\n],\"listing\":{tail}}}").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    if !global.json && !global.quiet {
        if let Some(id) = listing.from_catalog {
            eprintln!(
                "reel: listed from the catalog's scan {id} of {}",
                listing.source
            );
        }
        for n in &listing.notes {
            eprintln!("reel: note: {n}");
        }
        if !patterns.is_empty() && listing.members == 0 {
            eprintln!("reel: no member of {} matches the patterns", listing.source);
        }
        if !listing.damage.is_empty() {
            eprintln!(
                "reel: {} damaged stretches in {} (listed above); the members after each were read",
                listing.damage.len(),
                listing.source
            );
        }
    }
    Ok(if listing.damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INTEGRITY)
    })
}

pub struct RestoreArgs {
    pub source: ForeignSource,
    pub patterns: Vec<String>,
    pub target: Option<PathBuf>,
    pub existing: Existing,
    pub allow_outside_symlinks: bool,
    pub ignore_policy: bool,
}

pub fn restore(args: RestoreArgs, global: &Global) -> Result<ExitCode> {
    let Some(target) = args.target else {
        bail!(UsageError(
            "restoring a foreign archive needs --to DIR (its member names are relative; restore under / with --to /)".into()
        ));
    };
    let opts = ForeignRestoreOptions {
        source: args.source,
        patterns: args.patterns,
        target,
        existing: args.existing,
        allow_outside_symlinks: args.allow_outside_symlinks,
        policy_roots: (!args.ignore_policy).then(reel_policy::Roots::from_env),
    };
    let mut tapes = tapes_for(&opts.source, global)?;
    let catalog = match opts.source {
        ForeignSource::TapeFile(_) => open_catalog_for_reading_or_warn(global),
        ForeignSource::Archives(_) => None,
    };
    let progress = JobProgress::new(global);
    let report = reel_core::foreign::restore(tapes.as_mut(), catalog.as_ref(), &opts, &progress);
    progress.finish();
    let report = report?;
    let r = &report.restore;
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        println!(
            "restored {} to {}: {} files ({}), {} directories, {} symlinks, {} hard links, {} other",
            report.source,
            r.target.display(),
            r.files,
            human_size(r.bytes),
            r.directories,
            r.symlinks,
            r.hardlinks,
            r.other
        );
        if let Some(id) = report.from_catalog {
            println!("  seeked by the catalog's scan {id}");
        }
        if let Some(l) = &report.volume_label {
            println!("  archive volume label: {l}");
        }
        for t in &r.added_link_targets {
            println!("  also restored {t}: a selected hard link needs it");
        }
        if !r.left_by_policy.is_empty() {
            println!(
                "  {} members left as they are (paths-not-to-restore; --ignore-policy restores them)",
                r.left_by_policy.len()
            );
        }
        if r.skipped_existing > 0 {
            println!(
                "  {} existing files left as they were (use --overwrite or --keep-newer)",
                r.skipped_existing
            );
        }
        if !r.refused.is_empty() {
            println!(
                "  {} members refused for safety (listed above)",
                r.refused.len()
            );
        }
        if !r.problems.is_empty() {
            println!("  {} members failed (listed above)", r.problems.len());
        }
        if !r.integrity_failures.is_empty() {
            println!(
                "  {} members damaged in the archive and not restored (listed above)",
                r.integrity_failures.len()
            );
        }
        if !report.damage.is_empty() {
            println!(
                "  {} damaged stretches of the archive stepped over (listed above); the members after each were restored",
                report.damage.len()
            );
        }
    }
    Ok(
        if !report.damage.is_empty() || !r.integrity_failures.is_empty() {
            ExitCode::from(INTEGRITY)
        } else if !report.is_clean() {
            ExitCode::from(PARTIAL)
        } else {
            ExitCode::SUCCESS
        },
    )
}

pub fn scan(file: u64, global: &Global) -> Result<ExitCode> {
    let mut tapes = open_tapes(global)?;
    let mut catalog = reel_catalog::Catalog::open(&catalog_path())?;
    let progress = JobProgress::new(global);
    let report = reel_core::foreign::scan(&mut tapes, &mut catalog, file, &progress);
    progress.finish();
    let report = report?;
    if global.json {
        print_json(&report)?;
    } else if !global.quiet {
        println!(
            "scanned tape file {} of {}: {} members, {} in {} records",
            report.file,
            report.drive,
            report.members,
            human_size(report.bytes),
            report.records
        );
        if let Some(b) = &report.barcode {
            println!("  reel volume {b}");
        }
        if let Some(l) = &report.archive_label {
            println!("  archive volume label: {l}");
        }
        if report.seekable {
            println!(
                "  records of {} bytes: restores of single members seek straight to them",
                report.record_size
            );
        } else {
            println!(
                "  restores read this file from its start (its records vary in size, or it has global pax headers)"
            );
        }
        for n in &report.notes {
            println!("  note: {n}");
        }
        if !report.damage.is_empty() {
            println!(
                "  {} damaged stretches stepped over (listed above)",
                report.damage.len()
            );
        }
        println!("  catalogued as {}", report.id);
    }
    Ok(if report.damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(INTEGRITY)
    })
}

/// `reel catalog scans`: the tape files scanned so far.
pub fn scans(global: &Global) -> Result<ExitCode> {
    let catalog = reel_catalog::Catalog::open(&catalog_path())?;
    let scans = catalog.foreign_files()?;
    if global.json {
        #[derive(serde::Serialize)]
        struct Row<'a> {
            id: String,
            file: u64,
            drive: &'a str,
            barcode: Option<&'a str>,
            members: u64,
            bytes: u64,
            record_size: u32,
            damage: u64,
            scanned: &'a str,
        }
        let rows: Vec<Row> = scans
            .iter()
            .map(|s| Row {
                id: s.id.to_string(),
                file: s.file,
                drive: &s.drive,
                barcode: s.barcode.as_deref(),
                members: s.members,
                bytes: s.bytes,
                record_size: s.record_size,
                damage: s.damage,
                scanned: &s.scanned,
            })
            .collect();
        print_json(&rows)?;
        return Ok(ExitCode::SUCCESS);
    }
    if scans.is_empty() {
        println!("no foreign tape files scanned yet (reel catalog scan --file N)");
    }
    for s in &scans {
        println!(
            "{}  tape file {} of {}{}: {} members, {}, scanned {}{}",
            s.id,
            s.file,
            s.drive,
            s.barcode
                .as_deref()
                .map(|b| format!(" (volume {b})"))
                .unwrap_or_default(),
            s.members,
            human_size(s.bytes),
            s.scanned.get(..19).unwrap_or(&s.scanned).replace('T', " "),
            if s.damage > 0 {
                format!(", {} damaged stretches", s.damage)
            } else {
                String::new()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
