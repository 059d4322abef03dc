//! `reel tape`: the drive and its cartridges, one subcommand per Win32 tape function.
//!
//! Every command opens the drive without rewinding (like `/dev/nst0`), so the tape stays
//! where the previous command left it; settings, load and lock state persist too (the
//! drive's `drive.toml`, see `reel_tape::vtape::StateFile`).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reel_tape::{
    EraseKind, Library, MarkKind, PartitionLayout, PositionKind, PrepareOp, SeekTo,
    SetDriveParameters, TapeDrive, TapeError, Target,
};
use serde::Serialize;

use crate::Global;
use crate::exit::UsageError;
use crate::ui::{human_size, parse_size, parse_size_in, print_json};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Each command is one Win32 tape function on the drive named by --tape (default: the
default library's drive). The tape stays where the last command left it.

Examples:
  reel tape new weekly-01 --capacity 100G
  reel tape list
  reel tape params --json
  reel tape seek --filemarks 2 && reel tape position
  reel tape set --compression on --block-size 0
  reel tape load weekly-01
  reel tape dump --file 1 > set1.tar")]
pub struct Args {
    #[command(subcommand)]
    command: TapeCommand,
}

#[derive(Subcommand, Debug)]
enum TapeCommand {
    /// Create a blank virtual cartridge in the library (the --tape library, else the default).
    #[command(
        after_help = "Examples:\n  reel tape new weekly-01 --capacity 100G\n  reel tape new lto-index --capacity 1T --partitions 2\n  reel tape new archive-2019 --write-protect"
    )]
    New {
        /// Name (letters, digits, '-', '_', '.').
        name: String,
        /// Nominal capacity, e.g. 16G, 800G, 1.5T.
        #[arg(long, default_value = "16G")]
        capacity: String,
        /// Number of partitions of equal size (CreateTapePartition, select method).
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        partitions: i64,
        /// Create it write-protected.
        #[arg(long)]
        write_protect: bool,
    },
    /// The cartridges of the library, with use and protection.
    #[command(after_help = "Examples:\n  reel tape list\n  reel tape list --json")]
    List,
    /// Drive and media parameters (GetTapeParameters, both structures).
    #[command(
        visible_alias = "info",
        after_help = "Examples:\n  reel tape params\n  reel tape params --json"
    )]
    Params,
    /// Drive status (GetTapeStatus): ready, or the pending condition.
    #[command(after_help = "Examples:\n  reel tape status\n  reel tape status --json")]
    Status,
    /// Current position (GetTapePosition): logical and absolute.
    #[command(after_help = "Examples:\n  reel tape position\n  reel tape position --json")]
    Position,
    /// Move the tape (SetTapePosition).
    #[command(
        after_help = "Examples:\n  reel tape seek --rewind\n  reel tape seek --filemarks 2\n  reel tape seek --filemarks -1\n  reel tape seek --block 120 --partition 2\n  reel tape seek --absolute 4711\n  reel tape seek --eod\n  reel tape seek --sequential-filemarks 2"
    )]
    Seek {
        #[command(flatten)]
        to: SeekArgs,
        /// Partition for --block and --eod (0 = current, 1..n).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        partition: i64,
    },
    /// Write tapemarks (WriteTapemark) at the current position: filemarks by default.
    #[command(
        after_help = "Examples:\n  reel tape seek --eod && reel tape mark\n  reel tape mark --setmark\n  reel tape mark --long --count 2"
    )]
    Mark {
        /// Number of marks.
        #[arg(long, default_value_t = 1, allow_negative_numbers = true)]
        count: i64,
        /// Setmarks instead of filemarks.
        #[arg(long, conflicts_with_all = ["short", "long"])]
        setmark: bool,
        /// Short filemarks.
        #[arg(long, conflicts_with = "long")]
        short: bool,
        /// Long filemarks.
        #[arg(long)]
        long: bool,
    },
    /// Erase from the current position (EraseTape): it becomes the end of data.
    #[command(
        after_help = "Examples:\n  reel tape seek --rewind && reel tape erase   # blank the partition\n  reel tape erase --long"
    )]
    Erase {
        /// Long erase: wipe to the end of the partition.
        #[arg(long)]
        long: bool,
    },
    /// Repartition the cartridge (CreateTapePartition). Erases everything on it.
    #[command(
        after_help = "Examples:\n  reel tape partition --fixed           # the drive's layout: a small first partition\n  reel tape partition --select 2        # two equal partitions\n  reel tape partition --select 1        # back to one partition\n  reel tape partition --initiator 500M  # 500 MiB, then the rest"
    )]
    Partition {
        #[command(flatten)]
        how: PartitionArgs,
    },
    /// Load the tape (PrepareTape(Load)); with NAME, put that library cartridge in the drive.
    #[command(after_help = "Examples:\n  reel tape load\n  reel tape load weekly-02")]
    Load {
        /// A cartridge of the library to load (the changer).
        name: Option<String>,
    },
    /// Unload the tape (PrepareTape(Unload)): no media until `reel tape load`.
    #[command(after_help = "Example:\n  reel tape unload")]
    Unload,
    /// Lock the ejection mechanism (PrepareTape(Lock)): unload and changer loads fail.
    #[command(after_help = "Example:\n  reel tape lock")]
    Lock,
    /// Unlock the ejection mechanism (PrepareTape(Unlock)).
    #[command(after_help = "Example:\n  reel tape unlock")]
    Unlock,
    /// Tension the tape (PrepareTape(Tension)): ends at the beginning.
    #[command(after_help = "Example:\n  reel tape tension")]
    Tension,
    /// Low-level format (PrepareTape(Format)): erases every partition, keeps the layout.
    #[command(after_help = "Example:\n  reel tape format")]
    Format,
    /// Change drive and media settings (SetTapeParameters); they persist for the drive.
    #[command(
        after_help = "Examples:\n  reel tape set --compression on\n  reel tape set --block-size 65536    # fixed 64 KiB blocks\n  reel tape set --block-size 0        # variable-length records\n  reel tape set --report-setmarks on --eot-zone 64M"
    )]
    Set(SetArgs),
    /// Set or clear a cartridge's write-protect switch (in its cartridge.toml).
    #[command(
        after_help = "Examples:\n  reel tape protect weekly-01\n  reel tape protect weekly-01 --off"
    )]
    Protect {
        /// Cartridge of the library.
        name: String,
        /// Clear the switch instead.
        #[arg(long)]
        off: bool,
    },
    /// Drive health: TapeAlert flags, the cartridge's MAM attributes, cleaning due.
    #[command(
        after_help = "Examples:\n  reel --tape iscsi://10.0.0.5/iqn.2004-04.com.example:vtl/1 tape health\n  reel tape health --json"
    )]
    Health,
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
    #[arg(long, allow_negative_numbers = true)]
    block: Option<i64>,
    /// Absolute block (object number across the cartridge).
    #[arg(long, allow_negative_numbers = true)]
    absolute: Option<i64>,
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
    /// To the first run of N consecutive filemarks (negative: backward).
    #[arg(long, allow_negative_numbers = true)]
    sequential_filemarks: Option<i64>,
    /// To the first run of N consecutive setmarks (negative: backward).
    #[arg(long, allow_negative_numbers = true)]
    sequential_setmarks: Option<i64>,
}

#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct PartitionArgs {
    /// The drive's own layout (count and size ignored).
    #[arg(long)]
    fixed: bool,
    /// N partitions of sizes the drive chooses (equal).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    select: Option<i64>,
    /// Partitions of SIZE (whole MiB; a bare number is MiB) each, then one with the rest;
    /// repeat SIZE for more partitions (all sizes must be equal, as CreateTapePartition takes
    /// one size).
    #[arg(long, value_name = "SIZE", num_args = 1..)]
    initiator: Option<Vec<String>>,
}

#[derive(clap::Args, Debug)]
#[group(required = true, multiple = true)]
struct SetArgs {
    /// Block size in bytes for fixed-block mode; 0 or "variable" for variable records.
    #[arg(long, allow_negative_numbers = true)]
    block_size: Option<String>,
    /// Store records zstd-compressed when that is smaller.
    #[arg(long, value_name = "on|off")]
    compression: Option<OnOff>,
    /// Check every record's CRC when reading.
    #[arg(long, value_name = "on|off")]
    ecc: Option<OnOff>,
    /// Data padding.
    #[arg(long, value_name = "on|off")]
    padding: Option<OnOff>,
    /// Report setmarks to reads and spacing (else they are passed silently).
    #[arg(long, value_name = "on|off")]
    report_setmarks: Option<OnOff>,
    /// Size of the early-warning zone before the end of a partition, e.g. 64M.
    #[arg(long, value_name = "SIZE")]
    eot_zone: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OnOff {
    On,
    Off,
}

impl OnOff {
    fn on(self) -> bool {
        matches!(self, OnOff::On)
    }
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    match args.command {
        TapeCommand::New {
            name,
            capacity,
            partitions,
            write_protect,
        } => new(global, &name, &capacity, partitions, write_protect),
        TapeCommand::List => list(global),
        TapeCommand::Params => params(global),
        TapeCommand::Status => status(global),
        TapeCommand::Position => {
            let mut drive = open(global)?;
            report_position(global, &mut *drive)
        }
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
            let count = u32::try_from(nonnegative("mark count", count)?).map_err(|_| {
                TapeError::InvalidParameter(format!("mark count {count} is too large"))
            })?;
            let mut drive = open(global)?;
            drive.write_marks(kind, count, false)?;
            drive.flush()?;
            report_position(global, &mut *drive)
        }
        TapeCommand::Erase { long } => {
            let mut drive = open(global)?;
            let kind = if long {
                EraseKind::Long
            } else {
                EraseKind::Short
            };
            drive.erase(kind, false)?;
            report_position(global, &mut *drive)
        }
        TapeCommand::Partition { how } => partition(global, how),
        TapeCommand::Load { name: Some(name) } => changer_load(global, &name),
        TapeCommand::Load { name: None } => prepare(global, PrepareOp::Load, "loaded"),
        TapeCommand::Unload => prepare(global, PrepareOp::Unload, "unloaded"),
        TapeCommand::Lock => prepare(global, PrepareOp::Lock, "locked"),
        TapeCommand::Unlock => prepare(global, PrepareOp::Unlock, "unlocked"),
        TapeCommand::Tension => prepare(global, PrepareOp::Tension, "tensioned"),
        TapeCommand::Format => prepare(global, PrepareOp::Format, "formatted"),
        TapeCommand::Set(s) => set(global, s),
        TapeCommand::Protect { name, off } => protect(global, &name, !off),
        TapeCommand::Dump { file } => dump(global, file),
        TapeCommand::Health => {
            let mut drive = open(global)?;
            crate::cmd::health::run(global, &mut *drive)
        }
    }
}

/// Opens the drive `--tape` names without rewinding.
fn open(global: &Global) -> Result<Box<dyn TapeDrive>> {
    let target = Target::parse(global.tape.as_deref())?;
    let drive = target
        .open_no_rewind()
        .with_context(|| match &global.tape {
            Some(t) => format!("cannot open tape {t}"),
            None => "cannot open the default tape".to_string(),
        })?;
    crate::cmd::warn_open_notes(&*drive);
    Ok(drive)
}

/// A count or number that may not be negative: ERROR_INVALID_PARAMETER otherwise.
fn nonnegative(what: &str, v: i64) -> Result<u64, TapeError> {
    u64::try_from(v).map_err(|_| {
        TapeError::InvalidParameter(format!("{what} {v} is negative; it must be 0 or more"))
    })
}

fn small(what: &str, v: i64) -> Result<u32, TapeError> {
    let v = nonnegative(what, v)?;
    u32::try_from(v).map_err(|_| TapeError::InvalidParameter(format!("{what} {v} is too large")))
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

fn new(
    global: &Global,
    name: &str,
    capacity: &str,
    partitions: i64,
    write_protect: bool,
) -> Result<ExitCode> {
    let capacity = parse_size(capacity)?;
    let partitions = small("partition count", partitions)?;
    let dir = library_dir(global)?;
    let mut lib = Library::open_or_create(&dir)?;
    let path = lib
        .create_partitioned_cartridge(name, capacity, partitions, write_protect)
        .with_context(|| format!("creating cartridge {name}"))?;
    if global.json {
        print_json(&serde_json::json!({
            "name": name, "path": path, "capacity": capacity, "partitions": partitions,
            "write_protected": write_protect,
        }))?;
    } else if !global.quiet {
        println!(
            "created cartridge {name} ({}{}{}) at {}",
            human_size(capacity),
            if partitions > 1 {
                format!(", {partitions} partitions")
            } else {
                String::new()
            },
            if write_protect {
                ", write-protected"
            } else {
                ""
            },
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
    let mut drive = open(global)?;
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
    println!("media (current partition)");
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
    let mut drive = open(global)?;
    let result = drive.status();
    let (code, name, text) = match &result {
        Ok(()) => (0, "NO_ERROR", "ready".to_string()),
        Err(e) => (e.code(), e.code_name(), e.to_string()),
    };
    if global.json {
        print_json(&serde_json::json!({
            "drive": drive.describe(), "code": code, "code_name": name, "status": text,
        }))?;
    } else {
        println!("{}: {text}", drive.describe());
    }
    Ok(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(crate::exit::MEDIA),
    })
}

#[derive(Serialize)]
struct PositionDoc {
    drive: String,
    partition: u32,
    block: u64,
    /// `None` on drives that report no absolute position (st drives, remote drives).
    absolute: Option<u64>,
}

fn where_is(drive: &mut dyn TapeDrive) -> Result<PositionDoc, TapeError> {
    let logical = drive.position(PositionKind::Logical)?;
    let absolute = match drive.position(PositionKind::Absolute) {
        Ok(p) => Some(p.offset),
        Err(TapeError::NotSupported(_)) => None,
        Err(e) => return Err(e),
    };
    Ok(PositionDoc {
        drive: drive.describe(),
        partition: logical.partition,
        block: logical.offset,
        absolute,
    })
}

fn report_position(global: &Global, drive: &mut dyn TapeDrive) -> Result<ExitCode> {
    let p = where_is(drive)?;
    if global.json {
        print_json(&p)?;
    } else if !global.quiet {
        match p.absolute {
            Some(a) => println!(
                "partition {}, block {} (absolute block {a})",
                p.partition, p.block
            ),
            None => println!("partition {}, block {}", p.partition, p.block),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn seek(global: &Global, s: SeekArgs, partition: i64) -> Result<ExitCode> {
    let partition = small("partition", partition)?;
    let (to, what) = if let Some(block) = s.block {
        let block = nonnegative("block", block)?;
        (
            SeekTo::LogicalBlock { partition, block },
            format!("--block {block}"),
        )
    } else if let Some(b) = s.absolute {
        let b = nonnegative("absolute block", b)?;
        (SeekTo::AbsoluteBlock(b), format!("--absolute {b}"))
    } else if s.rewind {
        (SeekTo::Rewind, "--rewind".into())
    } else if s.eod {
        (SeekTo::EndOfData { partition }, "--eod".into())
    } else if let Some(n) = s.filemarks {
        (SeekTo::SpaceFilemarks(n), format!("--filemarks {n}"))
    } else if let Some(n) = s.setmarks {
        (SeekTo::SpaceSetmarks(n), format!("--setmarks {n}"))
    } else if let Some(n) = s.blocks {
        (SeekTo::SpaceRelativeBlocks(n), format!("--blocks {n}"))
    } else if let Some(n) = s.sequential_filemarks {
        (
            SeekTo::SpaceSequentialFilemarks(n),
            format!("--sequential-filemarks {n}"),
        )
    } else if let Some(n) = s.sequential_setmarks {
        (
            SeekTo::SpaceSequentialSetmarks(n),
            format!("--sequential-setmarks {n}"),
        )
    } else {
        bail!(UsageError(
            "say where to seek (see reel tape seek --help)".into()
        ));
    };
    let mut drive = open(global)?;
    if let Err(e) = drive.set_position(to, false) {
        // The tape stays where the failure happened: say where that is.
        if let Ok(p) = where_is(&mut *drive) {
            if global.json {
                print_json(&serde_json::json!({
                    "drive": p.drive, "partition": p.partition, "block": p.block,
                    "absolute": p.absolute, "error": e.code_name(), "code": e.code(),
                }))?;
            }
            return Err(anyhow::Error::new(e).context(format!(
                "seek {what} stopped at partition {}, block {}",
                p.partition, p.block
            )));
        }
        return Err(anyhow::Error::new(e).context(format!("seek {what}")));
    }
    report_position(global, &mut *drive)
}

fn partition(global: &Global, how: PartitionArgs) -> Result<ExitCode> {
    let layout = if how.fixed {
        PartitionLayout::fixed()
    } else if let Some(n) = how.select {
        PartitionLayout::select(small("partition count", n)?)
    } else if let Some(sizes) = how.initiator {
        // Sizes are whole MiB, as CreateTapePartition takes them: a bare number is MiB.
        let bytes = sizes
            .iter()
            .map(|s| parse_size_in(s, 1 << 20))
            .collect::<Result<Vec<u64>, _>>()?;
        PartitionLayout::initiator(&bytes)?
    } else {
        bail!(UsageError(
            "say how to partition (see reel tape partition --help)".into()
        ));
    };
    let mut drive = open(global)?;
    drive.create_partitions(layout.method, layout.count, layout.size_mb)?;
    let parts = drive.media_parameters()?.partition_count;
    let mut sizes = Vec::new();
    for p in 1..=parts {
        drive.set_position(SeekTo::EndOfData { partition: p }, false)?;
        sizes.push(drive.media_parameters()?.capacity);
    }
    drive.set_position(
        SeekTo::LogicalBlock {
            partition: 1,
            block: 0,
        },
        false,
    )?;
    if global.json {
        print_json(&serde_json::json!({ "drive": drive.describe(), "partitions": sizes }))?;
    } else if !global.quiet {
        let list: Vec<String> = sizes.iter().map(|s| human_size(*s)).collect();
        println!(
            "{}: {} partition{} ({}); the cartridge is blank, at partition 1",
            drive.describe(),
            parts,
            if parts == 1 { "" } else { "s" },
            list.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn report_prepared(global: &Global, drive: &mut dyn TapeDrive, done: &str) -> Result<ExitCode> {
    // Unload leaves no medium: there is no position to report then.
    let position = where_is(drive).ok();
    if global.json {
        print_json(&serde_json::json!({
            "drive": drive.describe(), "done": done,
            "position": position.as_ref().map(|p| serde_json::json!({
                "partition": p.partition, "block": p.block, "absolute": p.absolute,
            })),
        }))?;
    } else if !global.quiet {
        match position {
            Some(p) => println!(
                "{}: {done}; at partition {}, block {}",
                drive.describe(),
                p.partition,
                p.block
            ),
            None => println!("{}: {done}", drive.describe()),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn prepare(global: &Global, op: PrepareOp, done: &str) -> Result<ExitCode> {
    let mut drive = open(global)?;
    drive.prepare(op, false)?;
    report_prepared(global, &mut *drive, done)
}

fn changer_load(global: &Global, name: &str) -> Result<ExitCode> {
    let target = Target::parse(global.tape.as_deref())?;
    let Some((mut drive, Some(mut lib))) = target.open_virtual(true)? else {
        bail!(UsageError(format!(
            "`reel tape load {name}` needs a library (the default one, or --tape LIBRARY_DIR); \
             without a name, `reel tape load` loads the tape in the drive"
        )));
    };
    crate::cmd::warn_open_notes(&drive);
    lib.load(&mut drive, name)?;
    crate::cmd::warn_open_notes(&drive);
    // The first operation after a media change reports it, as a drive does.
    let changed = matches!(drive.status(), Err(TapeError::MediaChanged));
    let done = if changed {
        format!("loaded {name} (media changed)")
    } else {
        format!("loaded {name}")
    };
    report_prepared(global, &mut drive, &done)
}

fn set(global: &Global, s: SetArgs) -> Result<ExitCode> {
    let mut drive = open(global)?;
    if let Some(bs) = &s.block_size {
        let bs = match bs.trim() {
            "variable" | "0" => 0,
            t if t.starts_with('-') => {
                bail!(TapeError::InvalidParameter(format!(
                    "block size {t} is negative; use 0 for variable-length records"
                )))
            }
            t => {
                let v = parse_size(t)?;
                u32::try_from(v).map_err(|_| {
                    TapeError::InvalidParameter(format!(
                        "block size {v} is outside 1..={} (0 = variable)",
                        drive.max_record_len()
                    ))
                })?
            }
        };
        drive.set_media_parameters(bs)?;
    }
    let mut p = drive.drive_parameters()?;
    let zone = match &s.eot_zone {
        Some(z) => {
            let v = parse_size(z)?;
            u32::try_from(v).map_err(|_| {
                TapeError::InvalidParameter(format!("early-warning zone {z} is too large"))
            })?
        }
        None => p.eot_warning_zone_size,
    };
    let any_drive_setting = s.compression.is_some()
        || s.ecc.is_some()
        || s.padding.is_some()
        || s.report_setmarks.is_some()
        || s.eot_zone.is_some();
    if any_drive_setting {
        let new = SetDriveParameters {
            ecc: s.ecc.map_or(p.ecc, OnOff::on),
            compression: s.compression.map_or(p.compression, OnOff::on),
            data_padding: s.padding.map_or(p.data_padding, OnOff::on),
            report_setmarks: s.report_setmarks.map_or(p.report_setmarks, OnOff::on),
            eot_warning_zone_size: zone,
        };
        drive.set_drive_parameters(&new)?;
        p = drive.drive_parameters()?;
    }
    drive.flush()?;
    let block_size = drive.media_parameters().map(|m| m.block_size).ok();
    if global.json {
        print_json(&serde_json::json!({
            "drive": drive.describe(), "ecc": p.ecc, "compression": p.compression,
            "data_padding": p.data_padding, "report_setmarks": p.report_setmarks,
            "eot_warning_zone_size": p.eot_warning_zone_size, "block_size": block_size,
        }))?;
    } else if !global.quiet {
        println!(
            "{}: ECC {}, compression {}, data padding {}, report setmarks {}, early-warning zone {}, block size {}",
            drive.describe(),
            on(p.ecc),
            on(p.compression),
            on(p.data_padding),
            on(p.report_setmarks),
            human_size(u64::from(p.eot_warning_zone_size)),
            match block_size {
                Some(0) => "variable".to_string(),
                Some(b) => b.to_string(),
                None => "unknown (no media)".to_string(),
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn protect(global: &Global, name: &str, on_: bool) -> Result<ExitCode> {
    let dir = library_dir(global)?;
    let lib = Library::open_or_create(&dir)?;
    lib.set_write_protected(name, on_)?;
    if global.json {
        print_json(&serde_json::json!({ "name": name, "write_protected": on_ }))?;
    } else if !global.quiet {
        println!(
            "{name}: write protection {}",
            if on_ { "on" } else { "off" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn dump(global: &Global, file: u64) -> Result<ExitCode> {
    let mut drive = open(global)?;
    drive.set_position(SeekTo::Rewind, false)?;
    if file > 0 {
        let n = i64::try_from(file)
            .map_err(|_| TapeError::InvalidParameter(format!("tape file {file} is too large")))?;
        drive
            .set_position(SeekTo::SpaceFilemarks(n), false)
            .with_context(|| format!("tape file {file} does not exist on {}", drive.describe()))?;
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Variable mode: room for the largest record. Fixed mode: whole blocks, about 1 MiB.
    let bs = drive.media_parameters()?.block_size as usize;
    let len = if bs == 0 {
        drive.max_record_len() + 1
    } else {
        bs * (1usize << 20).div_ceil(bs)
    };
    let mut buf = vec![0u8; len];
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
