//! The `reel` command line: parses arguments, opens what a command needs, drives the
//! library crates and reports. It holds no format logic of its own.

mod cmd;
mod exit;
mod ui;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::{ArgMatches, Args, FromArgMatches};

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

/// The parsed command line.
#[derive(Debug)]
struct Cli {
    global: Global,
    command: Command,
}

impl Cli {
    fn try_parse() -> Result<Cli, clap::Error> {
        Self::try_parse_from(std::env::args_os().collect())
    }

    fn try_parse_from(args: Vec<OsString>) -> Result<Cli, clap::Error> {
        Self::parse_with(Self::command_for(&args), args)
    }

    fn parse_with(parser: clap::Command, args: Vec<OsString>) -> Result<Cli, clap::Error> {
        let mut matches = parser.try_get_matches_from(args)?;
        let global = <Global as FromArgMatches>::from_arg_matches_mut(&mut matches)?;
        let command = Command::from_arg_matches_mut(&mut matches)?;
        Ok(Cli { global, command })
    }

    /// The parser for `args`. A subcommand gets its options only if its name is among the
    /// arguments: building all of them, a few hundred options, cost more than a one-file
    /// restore's own work. The others stay as name and summary, which is all the top-level
    /// help and clap's "did you mean" need. A word that merely equals a subcommand's name
    /// (`reel backup list`) builds one more, never a wrong parser.
    fn command_for(args: &[OsString]) -> clap::Command {
        let mut cli = Global::augment_args(clap::Command::new("reel"))
            .version(env!("CARGO_PKG_VERSION"))
            .about(env!("CARGO_PKG_DESCRIPTION"))
            .after_help(EXAMPLES)
            .propagate_version(true)
            .subcommand_required(true)
            .arg_required_else_help(true);
        for sub in SUBCOMMANDS {
            let stub = clap::Command::new(sub.name);
            let full = if args.iter().any(|a| a == sub.name) {
                (sub.args)(stub)
            } else {
                stub
            };
            cli = cli.subcommand(full.about(sub.about).long_about(None));
        }
        cli
    }
}

/// Options every command takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Global {
    /// Tape to use: a cartridge or library directory, vtape:NAME, /dev/nst0, host:/dev/nst0,
    /// iscsi://HOST[:PORT]/TARGET-IQN/LUN or sg:/dev/nst0 (default: the loaded cartridge of the
    /// default library).
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

#[derive(Debug)]
enum Command {
    Backup(cmd::backup::Args),
    List(cmd::list::Args),
    Restore(cmd::restore::Args),
    Verify(cmd::verify::Args),
    Catalog(cmd::catalog::Args),
    Policy(cmd::policy::Args),
    Sis(cmd::sis::Args),
    Tape(cmd::tape::Args),
    Changer(cmd::changer::Args),
    Delayed(cmd::delayed::Args),
    Stream(cmd::stream::Args),
    Efs(cmd::efs::Args),
    Rmt(cmd::rmt::Args),
}

/// A subcommand: its name, its one-line summary and how to add its options.
struct Sub {
    name: &'static str,
    about: &'static str,
    args: fn(clap::Command) -> clap::Command,
}

const SUBCOMMANDS: &[Sub] = &[
    Sub {
        name: "backup",
        about: "Back up files and directories as a new set on the tape",
        args: <cmd::backup::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "list",
        about: "The sets on the tape, or the files of one set",
        args: <cmd::list::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "restore",
        about: "Restore a set, a subtree or matching files",
        args: <cmd::restore::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "verify",
        about: "Re-read a set and check every file against its recorded hash (and the disk)",
        args: <cmd::verify::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "catalog",
        about: "The catalog of volumes, sets and files: rebuild it from the tapes",
        args: <cmd::catalog::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "policy",
        about: "The backup and restore policy: what is skipped, snapshotted, left alone, and why",
        args: <cmd::policy::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "sis",
        about: "Single instance store: merge duplicates into copy-on-write links, status, gc, watch, verify",
        args: <cmd::sis::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "tape",
        about: "Operate the tape drive and its cartridges (the Win32 tape functions)",
        args: <cmd::tape::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "changer",
        about: "A tape library's changer: slots, barcodes, load, unload, transfer, import, export",
        args: <cmd::changer::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "delayed",
        about: "Delayed move/delete/short-name operations for the next boot (Srdelayed)",
        args: <cmd::delayed::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "stream",
        about: "One file as Windows backup streams: read, write, show (BackupRead/BackupWrite)",
        args: <cmd::stream::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "efs",
        about: "Encrypted files (age format) and raw export/import of their ciphertext, no key needed",
        args: <cmd::efs::Args as clap::Args>::augment_args,
    },
    Sub {
        name: "rmt",
        about: "rmt server on stdin/stdout: serves reel cartridges to GNU tar, GNU mt and remote reels",
        args: <cmd::rmt::Args as clap::Args>::augment_args,
    },
];

impl FromArgMatches for Command {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        let Some((name, mut sub)) = matches.remove_subcommand() else {
            return Err(clap::Error::new(clap::error::ErrorKind::MissingSubcommand));
        };
        let sub = &mut sub;
        Ok(match name.as_str() {
            "backup" => Command::Backup(FromArgMatches::from_arg_matches_mut(sub)?),
            "list" => Command::List(FromArgMatches::from_arg_matches_mut(sub)?),
            "restore" => Command::Restore(FromArgMatches::from_arg_matches_mut(sub)?),
            "verify" => Command::Verify(FromArgMatches::from_arg_matches_mut(sub)?),
            "catalog" => Command::Catalog(FromArgMatches::from_arg_matches_mut(sub)?),
            "policy" => Command::Policy(FromArgMatches::from_arg_matches_mut(sub)?),
            "sis" => Command::Sis(FromArgMatches::from_arg_matches_mut(sub)?),
            "tape" => Command::Tape(FromArgMatches::from_arg_matches_mut(sub)?),
            "changer" => Command::Changer(FromArgMatches::from_arg_matches_mut(sub)?),
            "delayed" => Command::Delayed(FromArgMatches::from_arg_matches_mut(sub)?),
            "stream" => Command::Stream(FromArgMatches::from_arg_matches_mut(sub)?),
            "efs" => Command::Efs(FromArgMatches::from_arg_matches_mut(sub)?),
            "rmt" => Command::Rmt(FromArgMatches::from_arg_matches_mut(sub)?),
            _ => return Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
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
        Command::Changer(args) => cmd::changer::run(args, &cli.global),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    /// The parser with every subcommand built in full.
    fn full_parser() -> clap::Command {
        let names: Vec<OsString> = SUBCOMMANDS.iter().map(|s| s.name.into()).collect();
        Cli::command_for(&names)
    }

    #[test]
    fn full_parser_is_well_formed() {
        full_parser().debug_assert();
    }

    #[test]
    fn every_subcommand_maps_to_its_variant() {
        for sub in SUBCOMMANDS {
            let cli = Cli::try_parse_from(argv(&format!("reel {} --help", sub.name)));
            let err = cli.expect_err("--help ends parsing");
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::DisplayHelp,
                "{}",
                sub.name
            );
        }
        let cli = Cli::try_parse_from(argv("reel restore 1 a/b --to /tmp/x")).unwrap();
        assert!(matches!(cli.command, Command::Restore(_)));
    }

    /// The lazily built parser gives what the full one gives, results and errors alike.
    #[test]
    fn lazy_parser_agrees_with_the_full_one() {
        let lines = [
            "reel restore 1 a/b --to /tmp/x",
            "reel --tape vtape:x -v backup /srv --incremental",
            "reel backup list",
            "reel --json list 2",
            "reel tape new t --capacity 1G",
            "reel tape status",
            "reel changer status --json",
            "reel catalog rebuild",
            "reel verify latest --against-disk",
            "reel sis status /srv",
            "reel policy show",
            "reel delayed show ops.bin",
            "reel rmt",
            "reel stream show f.streams",
            "reel efs status a b",
            "reel",
            "reel bakcup /srv",
            "reel restore --bogus",
            "reel --tape",
            "reel help restore",
            "reel --version",
        ];
        let mut parsed = std::collections::BTreeSet::new();
        for line in lines {
            let lazy = Cli::try_parse_from(argv(line));
            let full = Cli::parse_with(full_parser(), argv(line));
            match (lazy, full) {
                (Ok(l), Ok(f)) => {
                    assert_eq!(format!("{l:?}"), format!("{f:?}"), "{line}");
                    // The subcommand named on the line is the variant parsed.
                    let name = line
                        .split(' ')
                        .find(|w| SUBCOMMANDS.iter().any(|s| s.name == *w))
                        .unwrap_or_default();
                    let variant = format!("{:?}", l.command).to_lowercase();
                    assert!(
                        variant.starts_with(&format!("{name}(")),
                        "{line}: {variant}"
                    );
                    parsed.insert(name);
                }
                (Err(l), Err(f)) => {
                    assert_eq!(l.kind(), f.kind(), "{line}");
                    assert_eq!(l.to_string(), f.to_string(), "{line}");
                }
                (l, f) => panic!("{line}: lazy {l:?}, full {f:?}"),
            }
        }
        let all: std::collections::BTreeSet<&str> = SUBCOMMANDS.iter().map(|s| s.name).collect();
        assert_eq!(parsed, all, "a line that parses for every subcommand");
    }
}
