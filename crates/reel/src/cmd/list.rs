//! `reel list [SET] [PATTERN…]`

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use reel_archive::{EntryKind, IndexEntry};
use reel_stream::Timestamp;

use crate::Global;
use crate::cmd::{open_catalog_for_reading_or_warn, open_tapes, split_set_and_patterns};
use crate::ui::{human_size, print_json};

/// The sets on the tape, or the files of one set.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel list                      the sets on the tape
  reel list 2                    the files of set 2
  reel list latest 'home/*/notes/**'
  reel list --json 2 > set2.json
  reel list --archive old.tar 'etc/**'         a tar file any program wrote
  reel list --archive vol1.tar --archive vol2.tar   a GNU multi-volume archive
  reel --tape /dev/nst0 list --file 0          the first tape file, written by `tar -cf /dev/nst0`

SET is a set number, a set name, a set id (or its first characters), or `latest`.
A first argument containing '/' or a glob character is taken as a pattern of the latest set.")]
pub struct Args {
    /// Set to list (default: list the sets).
    #[arg(value_name = "SET")]
    set: Option<String>,
    /// Only members matching these patterns (and what is under them).
    #[arg(value_name = "PATTERN")]
    patterns: Vec<String>,
    /// List a tar archive another program wrote instead of a set (GNU tar, bsdtar, star,
    /// any format); repeat for the volumes of a multi-volume archive, in order; - reads
    /// standard input. All arguments are then patterns.
    #[arg(long, value_name = "PATH")]
    archive: Vec<PathBuf>,
    /// List tape file N of the tape (--tape) as a tar archive another program wrote, e.g.
    /// with `tar -cf /dev/nst0`. Files are numbered from 0. Uses the catalog when
    /// `reel catalog scan` has read it.
    #[arg(long, value_name = "N")]
    file: Option<u64>,
}

/// One member as `reel list` shows it.
pub(crate) fn entry_line(e: &IndexEntry) -> String {
    let link = match (e.kind, &e.link) {
        (EntryKind::Symlink, Some(t)) => format!(" -> {t}"),
        (EntryKind::HardLink, Some(t)) => format!(" link to {t}"),
        _ => String::new(),
    };
    format!(
        "{} {:>6}/{:<6} {:>12} {} {}{}",
        kind_mode(e),
        e.uid,
        e.gid,
        e.size,
        when(e.mtime),
        e.display_path(),
        link
    )
}

fn kind_mode(e: &IndexEntry) -> String {
    // As `ls -l` shows it.
    let kind = match e.kind {
        EntryKind::File | EntryKind::HardLink => '-',
        EntryKind::Directory => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
        EntryKind::Socket => 's',
    };
    let mut s = String::from(kind);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (bit, c) in bits {
        s.push(if e.mode & bit != 0 { c } else { '-' });
    }
    s
}

fn when(mtime: Timestamp) -> String {
    time::OffsetDateTime::from_unix_timestamp(mtime.secs)
        .ok()
        .and_then(|t| {
            t.format(&time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .ok()
        })
        .unwrap_or_else(|| mtime.to_decimal())
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    if let Some(source) = crate::cmd::foreign::source(&args.archive, args.file)? {
        let patterns = crate::cmd::foreign::patterns(args.set, args.patterns);
        return crate::cmd::foreign::list(source, patterns, global);
    }
    let mut tapes = open_tapes(global)?;
    let (set, patterns) = split_set_and_patterns(args.set, args.patterns);
    if set.is_none() && patterns.is_empty() {
        let catalog = open_catalog_for_reading_or_warn(global);
        let listing = reel_core::list_sets(&mut *tapes.drive, catalog.as_ref())?;
        if global.json {
            print_json(&listing)?;
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "volume {} ({}), labelled {}",
            listing.label.barcode, listing.drive, listing.label.created
        );
        if listing.sets.is_empty() {
            println!("  no sets yet");
        } else {
            println!(
                "  {:>3}  {:<28} {:<20} {:>9} {:>10}  state",
                "set", "name", "finished", "files", "size"
            );
        }
        for s in &listing.sets {
            match &s.info {
                Some(i) => {
                    println!(
                        "  {:>3}  {:<28} {:<20} {:>9} {:>10}  {}",
                        s.number,
                        i.name,
                        i.finished
                            .get(..19)
                            .unwrap_or(&i.finished)
                            .replace('T', " "),
                        i.files,
                        human_size(i.content_bytes),
                        s.state
                    );
                    // The tapes to have at hand for a restore of a set that spans several.
                    if i.parts.len() > 1 {
                        let volumes: Vec<String> = i
                            .parts
                            .iter()
                            .map(|p| format!("{} (#{})", p.barcode, p.sequence))
                            .collect();
                        println!("       on volumes {}", volumes.join(", "));
                    }
                }
                None => println!(
                    "  {:>3}  {:<28} {:<20} {:>9} {:>10}  {}",
                    s.number, "?", "", "", "", s.state
                ),
            }
        }
        if let Some(l) = &listing.leftover {
            println!("  note: {l}; the next backup replaces it");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stdout = std::io::stdout();
    let out = std::cell::RefCell::new(std::io::BufWriter::new(stdout.lock()));
    let mut first = true;
    let io_error = std::cell::RefCell::new(None);
    let mut count = 0u64;
    let json = global.json;
    let catalog = open_catalog_for_reading_or_warn(global);
    let info = reel_core::list_entries(
        &mut tapes,
        catalog.as_ref(),
        set.as_deref(),
        &patterns,
        |info| {
            if json {
                let head = serde_json::to_string(info).unwrap_or_default();
                if let Err(e) = write!(out.borrow_mut(), "{{\"set\":{head},\"entries\":[") {
                    io_error.borrow_mut().get_or_insert(e);
                }
            }
        },
        |e| {
            count += 1;
            let r = if json {
                let sep = if first { "" } else { "," };
                first = false;
                serde_json::to_string(e)
                    .map_err(std::io::Error::from)
                    .and_then(|line| write!(out.borrow_mut(), "{sep}\n{line}"))
            } else {
                writeln!(out.borrow_mut(), "{}", entry_line(e))
            };
            if let Err(err) = r {
                io_error.borrow_mut().get_or_insert(err);
            }
        },
    )?;
    let mut out = out.into_inner();
    if json {
        writeln!(out, "\n]}}").context("writing to stdout")?;
    }
    out.flush().context("writing to stdout")?;
    if let Some(e) = io_error.into_inner() {
        return Err(e).context("writing to stdout");
    }
    if !json && !global.quiet && !patterns.is_empty() && count == 0 {
        eprintln!(
            "reel: no member of set {} matches the patterns",
            info.number
        );
    }
    Ok(ExitCode::SUCCESS)
}
