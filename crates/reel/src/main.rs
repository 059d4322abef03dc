//! The `reel` command line: parses arguments, opens what a command needs, drives the
//! library crates and reports. It holds no format logic of its own.

mod cmd;
mod exit;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  reel backup ~/projects              back up to the default virtual tape
  reel list                           the sets on the tape
  reel list 1                         the files of set 1
  reel restore --to /tmp/out          restore the latest set under /tmp/out
  reel restore 1 'home/*/notes/**' --to /tmp/out
  reel tape new weekly-01 --capacity 100G
  reel tape dump --file 1 > set1.tar  the first set as a tar archive

The default tape is the loaded cartridge of the library in $REEL_HOME/library
(else $XDG_DATA_HOME/reel/library, else ~/.local/share/reel/library), created on first use.
Exit codes: 0 success, 1 finished with per-file problems, 2 usage or configuration error,
3 media or device error, 4 data integrity failure.";

/// reel: tape-first backups for Linux, with the semantics of the Windows Backup API.
#[derive(Parser, Debug)]
#[command(name = "reel", version, about, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Tape to use: a cartridge or library directory, vtape:NAME, /dev/nst0 or host:/dev/nst0
    /// (default: the loaded cartridge of the default library).
    #[arg(long, global = true, value_name = "TARGET", env = "REEL_TAPE")]
    pub tape: Option<String>,
    /// Machine-readable output on stdout (one JSON document).
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// No progress bars, even on a terminal.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Never ask for a tape: when a job on a real or remote drive needs another one (a set
    /// that fills the tape, a restore from several), it stops with an error naming it.
    #[arg(long, global = true, env = "REEL_NO_PROMPT", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_prompt: bool,
    /// Seconds to wait for a drive to become ready after a tape was loaded by hand (a real
    /// drive threads and positions a new tape); still not ready, reel asks again.
    #[arg(
        long,
        global = true,
        value_name = "SECONDS",
        env = "REEL_TAPE_READY_WAIT",
        default_value_t = 180
    )]
    pub tape_ready_wait: u64,
    /// Remote shell for host:path tapes, run as `CMD host [-l user] RMT` (default: ssh).
    #[arg(long, global = true, value_name = "CMD", env = "REEL_RSH_COMMAND")]
    pub rsh_command: Option<String>,
    /// rmt server the remote shell runs for host:path tapes (default: /usr/sbin/rmt; for a
    /// reel server: "reel rmt --root DIR").
    #[arg(long, global = true, value_name = "CMD", env = "REEL_RMT_COMMAND")]
    pub rmt_command: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Back up files and directories as a new set on the tape.
    Backup(cmd::backup::Args),
    /// The sets on the tape, or the files of one set.
    List(cmd::list::Args),
    /// Restore a set, a subtree or matching files.
    Restore(cmd::restore::Args),
    /// Re-read a set and check every file against its recorded hash (and the disk).
    Verify(cmd::verify::Args),
    /// The catalog of volumes, sets and files: rebuild it from the tapes.
    Catalog(cmd::catalog::Args),
    /// The backup and restore policy: what is skipped, snapshotted, left alone, and why.
    Policy(cmd::policy::Args),
    /// Single instance store: merge duplicates into copy-on-write links, status, gc, watch, verify.
    Sis(cmd::sis::Args),
    /// Operate the tape drive and its cartridges (the Win32 tape functions).
    Tape(cmd::tape::Args),
    /// Delayed move/delete/short-name operations for the next boot (Srdelayed).
    Delayed(cmd::delayed::Args),
    /// One file as Windows backup streams: read, write, show (BackupRead/BackupWrite).
    Stream(cmd::stream::Args),
    /// Encrypted files (age format) and raw export/import of their ciphertext, no key needed.
    Efs(cmd::efs::Args),
    /// rmt server on stdin/stdout: serves reel cartridges to GNU tar, GNU mt and remote reels.
    Rmt(cmd::rmt::Args),
}

fn main() -> ExitCode {
    // Output piped into `head` and closed early ends reel quietly, as it does a C tool,
    // instead of a panic on the failed write.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    reel_tape::rmt::set_commands(
        cli.global.rsh_command.as_deref(),
        cli.global.rmt_command.as_deref(),
    );
    let result = match cli.command {
        Command::Backup(args) => cmd::backup::run(args, &cli.global),
        Command::List(args) => cmd::list::run(args, &cli.global),
        Command::Restore(args) => cmd::restore::run(args, &cli.global),
        Command::Verify(args) => cmd::verify::run(args, &cli.global),
        Command::Catalog(args) => cmd::catalog::run(args, &cli.global),
        Command::Policy(args) => cmd::policy::run(args, &cli.global),
        Command::Sis(args) => cmd::sis::run(args, &cli.global),
        Command::Tape(args) => cmd::tape::run(args, &cli.global),
        Command::Delayed(args) => cmd::delayed::run(args, &cli.global),
        Command::Stream(args) => cmd::stream::run(args, &cli.global),
        Command::Efs(args) => cmd::efs::run(args, &cli.global),
        Command::Rmt(args) => cmd::rmt::run(args, &cli.global),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("reel: {}", exit::describe(&err));
            ExitCode::from(exit::code_for(&err))
        }
    }
}
