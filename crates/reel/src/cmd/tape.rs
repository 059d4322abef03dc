//! `reel tape`: the drive and its cartridges, one subcommand per Win32 tape function.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reel_tape::{EraseKind, Library, MarkKind, PositionKind, SeekTo, TapeError, Target};
use serde::Serialize;

use crate::Global;
use crate::cmd::open_drive;
use crate::exit::UsageError;
use crate::ui::{human_size, parse_size, print_json};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Examples:
  reel tape new weekly-01 --capacity 100G
  reel tape list
  reel tape params --json
  reel tape seek --filemarks 2 && reel tape position
  reel tape dump --file 1 > set1.tar")]
pub struct Args {
    #[command(subcommand)]
    command: TapeCommand,
}

#[derive(Subcommand, Debug)]
enum TapeCommand {
    /// Create a blank virtual cartridge in the library (the --tape library, else the default).
    #[command(after_help = "Example:\n  reel tape new weekly-01 --capacity 100G")]
    New {
        /// Name (letters, digits, '-', '_', '.').
        name: String,
        /// Nominal capacity, e.g. 16G, 800G, 1.5T.
        #[arg(long, default_value = "16G")]
        capacity: String,
        /// Create it write-protected.
        #[arg(long)]
        write_protect: bool,
    },
    /// The cartridges of the library, with use and protection.
    #[command(after_help = "Example:\n  reel tape list --json")]
    List,
    /// Drive and media parameters (GetTapeParameters).
    #[command(
        visible_alias = "info",
        after_help = "Example:\n  reel tape params --json"
    )]
    Params,
    /// Drive status (GetTapeStatus): ready, or the pending condition.
    Status,
    /// Current position (GetTapePosition): logical and absolute.
    Position,
    /// Move the tape (SetTapePosition).
    #[command(
        after_help = "Examples:\n  reel tape seek --rewind\n  reel tape seek --filemarks 2\n  reel tape seek --block 120 --partition 1\n  reel tape seek --eod"
    )]
    Seek {
        #[command(flatten)]
        to: SeekArgs,
        /// Partition for --block and --eod (0 = current).
        #[arg(long, default_value_t = 0)]
        partition: u32,
    },
    /// Write filemarks (WriteTapemark) at the current position.
    #[command(after_help = "Example:\n  reel tape seek --eod && reel tape mark --count 1")]
    Mark {
        /// Number of marks.
        #[arg(long, default_value_t = 1)]
        count: u32,
        /// Write setmarks instead of filemarks.
        #[arg(long, conflicts_with_all = ["short", "long"])]
        setmark: bool,
        /// Short filemarks.
        #[arg(long, conflicts_with = "long")]
        short: bool,
        /// Long filemarks.
        #[arg(long)]
        long: bool,
    },
    /// Erase from the current position (EraseTape): end of data here.
    #[command(
        after_help = "Example:\n  reel tape seek --rewind && reel tape erase   # blank the cartridge"
    )]
    Erase {
        /// Long erase: wipe to the end of the partition.
        #[arg(long)]
        long: bool,
    },
    /// Copy the bytes of one tape file to stdout (a set's data is a tar archive).
    #[command(
        after_help = "Examples:\n  reel tape dump --file 1 > set1.tar && tar -tvf set1.tar\n  reel tape dump --file 0            # the volume label"
    )]
    Dump {
        /// Tape file number: 0 is the label, 1 the first set's data, 2 its index, …
        #[arg(long, default_value_t = 1)]
        file: u64,
    },
}

#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct SeekArgs {
    /// Logical block (object number) within a partition.
    #[arg(long, allow_negative_numbers = false)]
    block: Option<u64>,
    /// Absolute block (object number across the cartridge).
    #[arg(long)]
    absolute: Option<u64>,
    /// Back to the beginning of the partition.
    #[arg(long)]
    rewind: bool,
    /// To the end of data.
    #[arg(long)]
    eod: bool,
    /// Space over N filemarks (negative: backward).
    #[arg(long, allow_negative_numbers = true)]
    filemarks: Option<i64>,
    /// Space over N setmarks (negative: backward).
    #[arg(long, allow_negative_numbers = true)]
    setmarks: Option<i64>,
    /// Space over N blocks (negative: backward).
    #[arg(long, allow_negative_numbers = true)]
    blocks: Option<i64>,
    /// To the first run of N consecutive filemarks.
    #[arg(long)]
    sequential_filemarks: Option<i64>,
    /// To the first run of N consecutive setmarks.
    #[arg(long)]
    sequential_setmarks: Option<i64>,
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    match args.command {
        TapeCommand::New {
            name,
            capacity,
            write_protect,
        } => new(global, &name, &capacity, write_protect),
        TapeCommand::List => list(global),
        TapeCommand::Params => params(global),
        TapeCommand::Status => status(global),
        TapeCommand::Position => position(global),
        TapeCommand::Seek { to, partition } => seek(global, to, partition),
        TapeCommand::Mark {
            count,
            setmark,
            short,
            long,
        } => {
            let kind = if setmark {
                MarkKind::Setmarks
            } else if short {
                MarkKind::ShortFilemarks
            } else if long {
                MarkKind::LongFilemarks
            } else {
                MarkKind::Filemarks
            };
            let mut drive = open_drive(global)?;
            drive.write_marks(kind, count, false)?;
            report_position(global, &mut *drive)
        }
        TapeCommand::Erase { long } => {
            let mut drive = open_drive(global)?;
            let kind = if long {
                EraseKind::Long
            } else {
                EraseKind::Short
            };
            drive.erase(kind, false)?;
            report_position(global, &mut *drive)
        }
        TapeCommand::Dump { file } => dump(global, file),
    }
}

/// The library `--tape` names (a library directory), else the default library.
fn library_dir(global: &Global) -> Result<PathBuf> {
    match global.tape.as_deref() {
        None => Ok(Library::default_dir()),
        Some(t) => match Target::parse(Some(t)) {
            Ok(Target::Library(Some(dir))) => Ok(dir),
            Ok(Target::Library(None)) | Ok(Target::LibraryCartridge { library: None, .. }) => {
                Ok(Library::default_dir())
            }
            Ok(_) => bail!(UsageError(format!(
                "--tape {t} is not a library; give a library directory (or none for the default library)"
            ))),
            // A directory that does not exist yet becomes a new library.
            Err(_) if !std::path::Path::new(t).exists() => Ok(PathBuf::from(t)),
            Err(e) => Err(e.into()),
        },
    }
}

fn new(global: &Global, name: &str, capacity: &str, write_protect: bool) -> Result<ExitCode> {
    let capacity = parse_size(capacity)?;
    let dir = library_dir(global)?;
    let mut lib = Library::open_or_create(&dir)?;
    let path = lib.create_cartridge(name, capacity, write_protect)?;
    if global.json {
        print_json(&serde_json::json!({
            "name": name, "path": path, "capacity": capacity, "write_protected": write_protect,
        }))?;
    } else if !global.quiet {
        println!(
            "created cartridge {name} ({}) at {}",
            human_size(capacity),
            path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn list(global: &Global) -> Result<ExitCode> {
    let dir = library_dir(global)?;
    let lib = Library::open_or_create(&dir)?;
    let carts = lib.cartridges()?;
    if global.json {
        print_json(&serde_json::json!({ "library": dir, "cartridges": carts }))?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("library {}", dir.display());
    if carts.is_empty() {
        println!("  no cartridges yet (one is created on first use, or: reel tape new NAME)");
    }
    for c in carts {
        println!(
            "  {} {:<20} {:>10} of {:>10} used{}",
            if c.loaded { "*" } else { " " },
            c.name,
            human_size(c.used),
            human_size(c.capacity),
            if c.write_protected {
                "  write-protected"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Serialize)]
struct ParamsDoc {
    drive_name: String,
    drive: reel_tape::DriveParameters,
    media: reel_tape::MediaParameters,
}

fn params(global: &Global) -> Result<ExitCode> {
    let mut drive = open_drive(global)?;
    let doc = ParamsDoc {
        drive_name: drive.describe(),
        drive: drive.drive_parameters()?,
        media: drive.media_parameters()?,
    };
    if global.json {
        print_json(&doc)?;
        return Ok(ExitCode::SUCCESS);
    }
    let d = &doc.drive;
    let m = &doc.media;
    println!("drive {}", doc.drive_name);
    println!(
        "  ECC {}, compression {}, data padding {}, report setmarks {}",
        on(d.ecc),
        on(d.compression),
        on(d.data_padding),
        on(d.report_setmarks)
    );
    println!(
        "  block size: default {}, min {}, max {}",
        d.default_block_size, d.minimum_block_size, d.maximum_block_size
    );
    println!("  partitions: up to {}", d.maximum_partition_count);
    println!(
        "  features: low {:#010x}, high {:#010x}",
        d.features_low, d.features_high
    );
    println!(
        "  early-warning zone: {}",
        human_size(u64::from(d.eot_warning_zone_size))
    );
    println!("media");
    println!(
        "  capacity {}, remaining {}",
        human_size(m.capacity),
        human_size(m.remaining)
    );
    println!(
        "  block size {}, partitions {}, write-protected {}",
        if m.block_size == 0 {
            "variable".to_string()
        } else {
            m.block_size.to_string()
        },
        m.partition_count,
        if m.write_protected { "yes" } else { "no" }
    );
    Ok(ExitCode::SUCCESS)
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

fn status(global: &Global) -> Result<ExitCode> {
    let mut drive = open_drive(global)?;
    let result = drive.status();
    let (code, text) = match &result {
        Ok(()) => (0, "ready".to_string()),
        Err(e) => (e.code(), e.to_string()),
    };
    if global.json {
        print_json(
            &serde_json::json!({ "drive": drive.describe(), "code": code, "status": text }),
        )?;
    } else {
        println!("{}: {text}", drive.describe());
    }
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(crate::exit::MEDIA),
    })
}

fn report_position(global: &Global, drive: &mut dyn reel_tape::TapeDrive) -> Result<ExitCode> {
    let logical = drive.position(PositionKind::Logical)?;
    let absolute = drive.position(PositionKind::Absolute)?;
    if global.json {
        print_json(&serde_json::json!({ "logical": logical, "absolute": absolute.offset }))?;
    } else if !global.quiet {
        println!(
            "partition {}, block {} (absolute block {})",
            logical.partition, logical.offset, absolute.offset
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn position(global: &Global) -> Result<ExitCode> {
    let mut drive = open_drive(global)?;
    report_position(global, &mut *drive)
}

fn seek(global: &Global, s: SeekArgs, partition: u32) -> Result<ExitCode> {
    let to = if let Some(block) = s.block {
        SeekTo::LogicalBlock { partition, block }
    } else if let Some(b) = s.absolute {
        SeekTo::AbsoluteBlock(b)
    } else if s.rewind {
        SeekTo::Rewind
    } else if s.eod {
        SeekTo::EndOfData { partition }
    } else if let Some(n) = s.filemarks {
        SeekTo::SpaceFilemarks(n)
    } else if let Some(n) = s.setmarks {
        SeekTo::SpaceSetmarks(n)
    } else if let Some(n) = s.blocks {
        SeekTo::SpaceRelativeBlocks(n)
    } else if let Some(n) = s.sequential_filemarks {
        SeekTo::SpaceSequentialFilemarks(n)
    } else if let Some(n) = s.sequential_setmarks {
        SeekTo::SpaceSequentialSetmarks(n)
    } else {
        bail!(UsageError(
            "say where to seek (see reel tape seek --help)".into()
        ));
    };
    let mut drive = open_drive(global)?;
    drive.set_position(to, false)?;
    report_position(global, &mut *drive)
}

fn dump(global: &Global, file: u64) -> Result<ExitCode> {
    let mut drive = open_drive(global)?;
    drive.set_position(SeekTo::Rewind, false)?;
    if file > 0 {
        drive
            .set_position(SeekTo::SpaceFilemarks(file as i64), false)
            .with_context(|| format!("tape file {file} does not exist on {}", drive.describe()))?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = vec![0u8; reel_tape::vtape::MAX_BLOCK_SIZE as usize + 1];
    let mut records = 0u64;
    loop {
        match drive.read(&mut buf) {
            Ok(n) => {
                out.write_all(&buf[..n]).context("writing to stdout")?;
                records += 1;
            }
            Err(TapeError::FilemarkDetected | TapeError::NoDataDetected) => break,
            Err(e) => {
                return Err(anyhow::Error::new(e).context(format!(
                    "reading record {records} of tape file {file} on {}",
                    drive.describe()
                )));
            }
        }
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
