//! `reel stream`: one file as Windows backup streams (BackupRead / BackupWrite).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use reel_stream::stream::{
    BackupReader, BackupWriter, ReadOptions, WriteOptions, attr_names, describe, id_name,
};
use reel_stream::{Existing, RestoreRoot, StreamError, check_path};
use serde::Serialize;

use crate::Global;
use crate::exit::{INTEGRITY, PARTIAL, UsageError};
use crate::ui::{human_size, print_json};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
A file's content, owner, mode, times, extended attributes, ACLs, chattr flags, holes and
link targets as a sequence of WIN32_STREAM_ID streams, the format of Windows' BackupRead
and BackupWrite (byte-compatible headers; WSL's $LXUID/$LXGID/$LXMOD/$LXDEV entries).

Examples:
  reel stream read /srv/disk.img > disk.bks        one file as backup streams
  reel stream show disk.bks                        the streams, sizes and names
  reel stream write /restore/disk.img < disk.bks   re-create it (sparse stays sparse)
  reel stream read /etc/hosts | reel stream write /tmp/hosts")]
pub struct Args {
    #[command(subcommand)]
    command: StreamCommand,
}

#[derive(Subcommand, Debug)]
enum StreamCommand {
    /// Write PATH as backup streams on stdout (BackupRead). A symlink is read as itself.
    #[command(
        after_help = "Examples:\n  reel stream read /srv/disk.img > disk.bks\n  reel stream read --output hosts.bks /etc/hosts\n  reel stream read --link-to data/a data/b > b.bks   # a LINK stream to data/a"
    )]
    Read {
        path: PathBuf,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// PATH is a further name of a hard-linked file restored as NAME (relative to the
        /// directory the stream is written into): store a LINK stream instead of the data.
        #[arg(long, value_name = "NAME")]
        link_to: Option<PathBuf>,
    },
    /// Re-create PATH from backup streams on stdin (BackupWrite). Nothing is left under
    /// PATH when the input is truncated or malformed.
    #[command(
        after_help = "Examples:\n  reel stream write /restore/disk.img < disk.bks\n  reel stream write --overwrite ./hosts < hosts.bks\n  reel stream write --input hosts.bks ./hosts"
    )]
    Write {
        path: PathBuf,
        /// Read from this file instead of stdin.
        #[arg(long, short = 'i', value_name = "FILE")]
        input: Option<PathBuf>,
        /// Replace PATH when it exists.
        #[arg(long)]
        overwrite: bool,
        /// The restore root: PATH must lie inside it, LINK streams name files relative to
        /// it, and nothing is written outside it (default: the directory of PATH).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// List the streams of a backup stream file (or stdin): ids, attributes, sizes, names.
    #[command(
        after_help = "Examples:\n  reel stream show disk.bks\n  reel stream read /etc/hosts | reel stream show\n  reel stream show --json disk.bks"
    )]
    Show {
        /// The stream file (default: stdin).
        file: Option<PathBuf>,
    },
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    match args.command {
        StreamCommand::Read {
            path,
            output,
            link_to,
        } => read(&path, output.as_deref(), link_to, global),
        StreamCommand::Write {
            path,
            input,
            overwrite,
            root,
        } => write(&path, input.as_deref(), overwrite, root.as_deref(), global),
        StreamCommand::Show { file } => show(file.as_deref(), global),
    }
}

fn read(
    path: &Path,
    output: Option<&Path>,
    link_to: Option<PathBuf>,
    global: &Global,
) -> Result<ExitCode> {
    let opts = ReadOptions {
        link_target: link_to.map(|p| p.into_os_string().into_encoded_bytes()),
    };
    let mut out: Box<dyn Write> = match output {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("cannot create {}", p.display()))?)
        }
        None => {
            if io::stdout().is_terminal() {
                return Err(UsageError(
                    "refusing to write binary backup streams to a terminal: redirect stdout to a file, or use --output FILE".into(),
                )
                .into());
            }
            Box::new(io::stdout().lock())
        }
    };
    let mut reader = BackupReader::open(path, &opts)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).with_context(|| {
            format!(
                "reading {} at stream byte {}",
                path.display(),
                reader.offset()
            )
        })?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .context("writing the backup streams")?;
    }
    out.flush().context("writing the backup streams")?;
    let warnings = reader.warnings();
    for w in &warnings {
        if !global.quiet {
            eprintln!("reel: {w}");
        }
    }
    Ok(if warnings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PARTIAL)
    })
}

fn write(
    path: &Path,
    input: Option<&Path>,
    overwrite: bool,
    root_dir: Option<&Path>,
    global: &Global,
) -> Result<ExitCode> {
    let (parent, rel_bytes) = match root_dir {
        Some(root) => {
            let inside = path.strip_prefix(root).map_err(|_| {
                UsageError(format!(
                    "{} is not inside --root {}",
                    path.display(),
                    root.display()
                ))
            })?;
            (
                root.to_path_buf(),
                inside.as_os_str().as_encoded_bytes().to_vec(),
            )
        }
        None => {
            let name = path.file_name().ok_or_else(|| {
                UsageError(format!(
                    "{}: give the path of the file to create",
                    path.display()
                ))
            })?;
            let parent = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (parent, name.as_encoded_bytes().to_vec())
        }
    };
    let rel = check_path(&rel_bytes).map_err(|r| UsageError(format!("{}: {r}", path.display())))?;
    if !parent.is_dir() {
        return Err(UsageError(format!("{}: no such directory", parent.display())).into());
    }
    let mut src: Box<dyn Read> = match input {
        Some(p) => Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
        None => Box::new(io::stdin().lock()),
    };
    let existing = if overwrite {
        Existing::Overwrite
    } else {
        Existing::Skip
    };
    let mut root = RestoreRoot::open(&parent, existing)?;
    let mut writer = BackupWriter::new(&mut root, rel, &WriteOptions::default());
    let mut buf = vec![0u8; 1 << 20];
    let fail = |e: StreamError| -> Result<ExitCode> {
        eprintln!(
            "reel: cannot re-create {}: {e}; nothing was written under that name",
            path.display()
        );
        Ok(ExitCode::from(crate::exit::code(e.class())))
    };
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("reading the backup streams"),
        };
        if let Err(e) = writer.write(&buf[..n]) {
            return fail(e);
        }
    }
    let mut notes = match writer.finish() {
        Ok(n) => n,
        Err(e) => return fail(e),
    };
    notes.extend(root.finish().into_iter().map(|e| e.to_string()));
    for n in &notes {
        if !global.quiet {
            eprintln!("reel: {}: {n}", path.display());
        }
    }
    Ok(if notes.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PARTIAL)
    })
}

#[derive(Serialize)]
struct ShownStream {
    offset: u64,
    id: u32,
    kind: &'static str,
    attributes: Vec<&'static str>,
    size: u64,
    name: String,
    details: Vec<String>,
}

fn show(file: Option<&Path>, global: &Global) -> Result<ExitCode> {
    let mut src: Box<dyn Read> = match file {
        Some(p) => Box::new(File::open(p).with_context(|| format!("cannot open {}", p.display()))?),
        None => Box::new(io::stdin().lock()),
    };
    let shown = file
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "<stdin>".into());
    let streams = match describe(&mut src) {
        Ok(s) => s,
        Err(e) if e.is_data_error() => {
            eprintln!("reel: {shown}: {e}");
            return Ok(ExitCode::from(INTEGRITY));
        }
        Err(e) => return Err(e).with_context(|| format!("reading {shown}")),
    };
    let rows: Vec<ShownStream> = streams
        .into_iter()
        .map(|s| ShownStream {
            offset: s.header_at,
            id: s.id,
            kind: id_name(s.id),
            attributes: attr_names(s.attributes),
            size: s.size,
            name: s.name,
            details: s.details,
        })
        .collect();
    if global.json {
        print_json(&serde_json::json!({ "file": shown, "streams": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>12}  {:<14} {:<20} {:>12}  NAME / DETAILS",
        "OFFSET", "STREAM", "ATTRIBUTES", "SIZE"
    );
    for r in &rows {
        let attrs = if r.attributes.is_empty() {
            "-".to_string()
        } else {
            r.attributes.join(",")
        };
        println!(
            "{:>12}  {:<14} {:<20} {:>12}  {}",
            r.offset,
            r.kind,
            attrs,
            human_size(r.size),
            r.name
        );
        for d in &r.details {
            println!("{:>12}  {d}", "");
        }
    }
    Ok(ExitCode::SUCCESS)
}
