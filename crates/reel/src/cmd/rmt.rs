//! `reel rmt`: an rmt server on stdin/stdout serving reel cartridges (see
//! `reel_tape::rmt::server` for what each request does to a cartridge).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use reel_tape::Library;
use reel_tape::rmt::{ServerConfig, SessionEnd, serve};

use crate::Global;
use crate::exit::UsageError;
use crate::ui::parse_size;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Speaks the remote tape protocol of GNU tar's and the BSDs' rmt on stdin/stdout, so tar,
mt, star, dump and remote reels can use reel cartridges. The device name a client opens
is a cartridge directory, relative to --root (NAME also finds NAME.vtape) or absolute
inside it; anything outside the root is refused. A cartridge behaves as a tape in a Linux
st drive opened without rewinding: the position stays where the last session left it.
Writes become records, MTWEOF filemarks, MTFSF/MTBSF/MTFSR/MTBSR/MTREW/MTEOM move the tape,
status queries report the cartridge's state. Nothing is written on close unless
--mark-on-close is given.

Examples:
  # GNU tar and mt through a one-line remote shell that runs reel rmt locally:
  printf '#!/bin/sh\\nexec reel rmt --root \"$HOME/tapes\"\\n' > ~/bin/reel-rsh; chmod +x ~/bin/reel-rsh
  tar --rsh-command=$HOME/bin/reel-rsh -cf localhost:weekly-01 ~/projects
  mt --rsh-command=$HOME/bin/reel-rsh -f localhost:weekly-01 weof
  mt --rsh-command=$HOME/bin/reel-rsh -f localhost:weekly-01 rewind
  tar --rsh-command=$HOME/bin/reel-rsh -tvf localhost:weekly-01

  # Over ssh, with reel rmt as the remote rmt server:
  tar --rmt-command='reel rmt --root /srv/tapes' -cf backup-host:weekly-01 /etc
  reel --tape backup-host:weekly-01 --rmt-command 'reel rmt --root /srv/tapes' list")]
pub struct Args {
    /// Serve the cartridges under this directory (default: the default library).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Write a filemark when a client closes right after writing (what a st drive does).
    #[arg(long)]
    mark_on_close: bool,
    /// Capacity of a cartridge created by an open with O_CREAT (e.g. tar -cf to a new name).
    #[arg(long, value_name = "SIZE", default_value = "16G")]
    new_capacity: String,
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    let root = match args.root {
        Some(r) => {
            if !r.is_dir() {
                bail!(UsageError(format!(
                    "--root {}: no such directory",
                    r.display()
                )));
            }
            r
        }
        None => Library::open_or_create(&Library::default_dir())
            .context("opening the default library to serve")?
            .dir()
            .to_path_buf(),
    };
    let mut config = ServerConfig::new(&root);
    config.mark_on_close = args.mark_on_close;
    config.new_capacity = parse_size(&args.new_capacity)?;
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    let end = serve(stdin, stdout, &config)
        .with_context(|| format!("rmt session serving {}", root.display()))?;
    match end {
        SessionEnd::Done => Ok(ExitCode::SUCCESS),
        SessionEnd::Desynchronized(why) => {
            if !global.quiet {
                eprintln!("reel rmt: session ended: {why}");
            }
            Ok(ExitCode::from(crate::exit::USAGE))
        }
    }
}
