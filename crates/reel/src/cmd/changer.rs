//! `reel changer`: a tape library's robot — what is in which slot, and moving cartridges
//! between slots, drives and the import/export (mail) slots. The changer is a SCSI
//! changer (`--changer iscsi://…`, `sg:/dev/sch0`, `/dev/sgN`) or the virtual library of
//! `--tape` (its cartridges as slots, `mail/` as the import/export slot).

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use reel_tape::library_changer::LibraryChanger;
use reel_tape::{Library, MediaChanger, Place, ScsiTarget, Target};

use crate::Global;
use crate::exit::UsageError;
use crate::ui::print_json;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Slots are numbered as mtx numbers them: storage slots from 1, the import/export slots
after them; drives from 0. A slot may also be given by the barcode of its cartridge.

Examples:
  reel changer --changer iscsi://10.0.0.5/iqn.2004-04.com.example:vtl/2 status
  reel changer status --json
  reel changer load 3                 # slot 3 into drive 0
  reel changer load REEL02L6 --drive 1
  reel changer unload                 # drive 0 back to the slot it came from
  reel changer transfer 3 5
  reel changer export REEL03L6        # to a mail slot, for the operator
  reel changer import                 # from a mail slot into the first empty slot")]
pub struct Args {
    /// The changer: iscsi://HOST[:PORT]/TARGET-IQN/LUN, sg:/dev/sch0, /dev/sgN, or a
    /// library directory (default: the library of --tape).
    #[arg(long, global = true, value_name = "CHANGER", env = "REEL_CHANGER")]
    changer: Option<String>,
    #[command(subcommand)]
    command: ChangerCommand,
}

#[derive(Subcommand, Debug)]
enum ChangerCommand {
    /// What is in every drive and slot (as `mtx status` prints it).
    #[command(after_help = "Examples:\n  reel changer status\n  reel changer status --json")]
    Status,
    /// Rescan (INITIALIZE ELEMENT STATUS: barcodes read again), then the status.
    #[command(after_help = "Example:\n  reel changer inventory")]
    Inventory,
    /// Put a cartridge (slot number or barcode) into a drive.
    #[command(
        after_help = "Examples:\n  reel changer load 3\n  reel changer load REEL02L6 --drive 1"
    )]
    Load {
        slot: String,
        #[arg(long, default_value_t = 0)]
        drive: u16,
    },
    /// Put a drive's cartridge back (into SLOT, else where it came from).
    #[command(after_help = "Examples:\n  reel changer unload\n  reel changer unload 5 --drive 1")]
    Unload {
        slot: Option<u16>,
        #[arg(long, default_value_t = 0)]
        drive: u16,
    },
    /// Move a cartridge from one slot (number or barcode) to an empty one.
    #[command(after_help = "Example:\n  reel changer transfer 3 5")]
    Transfer { from: String, to: u16 },
    /// Take a cartridge from an import/export slot into storage.
    #[command(
        after_help = "Examples:\n  reel changer import\n  reel changer import --from 9 --to 2"
    )]
    Import {
        #[arg(long)]
        from: Option<u16>,
        #[arg(long)]
        to: Option<u16>,
    },
    /// Move a cartridge (slot number or barcode) to an import/export slot.
    #[command(
        after_help = "Examples:\n  reel changer export 3\n  reel changer export REEL03L6 --to 9"
    )]
    Export {
        slot: String,
        #[arg(long)]
        to: Option<u16>,
    },
}

/// Opens the changer `--changer` names, else the library of `--tape`.
fn open(args: &Args, global: &Global) -> Result<Box<dyn MediaChanger>> {
    if let Some(spec) = &args.changer {
        if let Some(t) = ScsiTarget::parse(spec).or_else(|| {
            spec.starts_with("/dev/")
                .then(|| ScsiTarget::Sg(std::path::PathBuf::from(spec)))
        }) {
            let c = reel_tape::scsi::open_changer(&t)
                .with_context(|| format!("cannot open the changer {spec}"))?;
            return Ok(Box::new(c));
        }
        let dir = std::path::Path::new(spec);
        if !Library::is_library(dir) {
            bail!(UsageError(format!(
                "{spec} is neither a SCSI changer (iscsi://…, sg:/dev/…, /dev/sgN) nor a library directory"
            )));
        }
        return Ok(Box::new(LibraryChanger::new(Library::open_or_create(dir)?)));
    }
    let dir = match Target::parse(global.tape.as_deref())? {
        Target::Library(dir) => dir.unwrap_or_else(Library::default_dir),
        Target::LibraryCartridge { library, .. } => library.unwrap_or_else(Library::default_dir),
        _ => bail!(UsageError(
            "name the changer with --changer (a drive given with --tape has no changer reel knows)"
                .into()
        )),
    };
    Ok(Box::new(LibraryChanger::new(Library::open_or_create(
        &dir,
    )?)))
}

/// A slot number, or the slot of the cartridge with that barcode.
fn slot_of(changer: &mut dyn MediaChanger, spec: &str) -> Result<u16> {
    if let Ok(n) = spec.parse::<u16>() {
        return Ok(n);
    }
    match changer.inventory()?.find(spec) {
        Some(Place::Slot(n)) => Ok(n),
        Some(Place::Drive(d)) => {
            bail!(UsageError(format!("{spec} is in drive {d}, not in a slot")))
        }
        None => bail!(UsageError(format!(
            "no cartridge with barcode {spec} in {}",
            changer.describe()
        ))),
    }
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    let mut changer = open(&args, global)?;
    let c = &mut *changer;
    let said = match args.command {
        ChangerCommand::Status => None,
        ChangerCommand::Inventory => {
            c.rescan()?;
            None
        }
        ChangerCommand::Load { slot, drive } => {
            let slot = slot_of(c, &slot)?;
            c.load(slot, drive)?;
            Some(format!("slot {slot} loaded into drive {drive}"))
        }
        ChangerCommand::Unload { slot, drive } => {
            let to = c.unload(drive, slot)?;
            Some(format!("drive {drive} unloaded into slot {to}"))
        }
        ChangerCommand::Transfer { from, to } => {
            let from = slot_of(c, &from)?;
            c.transfer(from, to)?;
            Some(format!("slot {from} moved to slot {to}"))
        }
        ChangerCommand::Import { from, to } => {
            let (from, to) = c.import(from, to)?;
            Some(format!("imported from slot {from} into slot {to}"))
        }
        ChangerCommand::Export { slot, to } => {
            let slot = slot_of(c, &slot)?;
            let to = c.export(slot, to)?;
            Some(format!("slot {slot} exported to import/export slot {to}"))
        }
    };
    let inv = c.inventory()?;
    if global.json {
        print_json(&inv)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Status and inventory print the slots; a move says what it did.
    match said {
        None => print!("{}", inv.mtx_status()),
        Some(s) if !global.quiet => println!("{s}"),
        Some(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}
