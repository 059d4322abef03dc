//! One module per subcommand: its clap arguments and a `run` that drives the library crates.

pub mod backup;
pub mod catalog;
pub mod changer;
pub mod delayed;
pub mod efs;
pub mod foreign;
pub mod health;
pub mod list;
pub mod policy;
pub mod restore;
pub mod rmt;
pub mod sis;
pub mod stream;
pub mod tape;
pub mod verify;

use anyhow::{Context, Result};
use reel_tape::Target;

use crate::Global;

/// Opens the drive named by `--tape` with the changer of its library (for sets that span
/// cartridges and for incremental chains).
pub fn open_tapes(global: &Global) -> Result<reel_core::Tapes> {
    let target = Target::parse(global.tape.as_deref())?;
    let operator = crate::ui::TerminalOperator::for_run(global);
    let ready_wait = std::time::Duration::from_secs(global.tape_ready_wait);
    let tapes = reel_core::Tapes::open_waiting(&target, operator, ready_wait).with_context(
        || match &global.tape {
            Some(t) => format!("cannot open tape {t}"),
            None => "cannot open the default tape".to_string(),
        },
    )?;
    // Never silent, even with --quiet: data may be lost.
    let tapes = tapes.with_note_sink(crate::ui::warn);
    tapes.report_open_notes();
    Ok(tapes)
}

/// Says what opening the medium repaired. Never silent, even with --quiet: data may be lost.
pub fn warn_open_notes(drive: &dyn reel_tape::TapeDrive) {
    for note in drive.open_notes() {
        crate::ui::warn(&note);
    }
}

/// Where the catalog lives: `$REEL_HOME/catalog.sqlite`.
pub fn catalog_path() -> std::path::PathBuf {
    reel_tape::reel_home().join("catalog.sqlite")
}

/// Opens the catalog; a damaged one is reported (with what to do) and the job goes on
/// without it, reading indexes from tape.
pub fn open_catalog_or_warn(global: &Global) -> Option<reel_catalog::Catalog> {
    warn_catalog(reel_catalog::Catalog::open(&catalog_path()), global)
}

/// [`open_catalog_or_warn`] for jobs that only read the catalog (a read-only connection:
/// cheaper to open and close, which a one-file restore notices).
pub fn open_catalog_for_reading_or_warn(global: &Global) -> Option<reel_catalog::Catalog> {
    warn_catalog(
        reel_catalog::Catalog::open_read_only(&catalog_path()),
        global,
    )
}

fn warn_catalog(
    opened: reel_catalog::Result<reel_catalog::Catalog>,
    global: &Global,
) -> Option<reel_catalog::Catalog> {
    match opened {
        Ok(c) => Some(c),
        Err(e) => {
            if !global.quiet {
                eprintln!("reel: warning: {e}");
            }
            None
        }
    }
}

/// Splits `[SET] [PATTERN…]`: a first argument with '/' or a glob character is a pattern
/// of the latest set; `latest` means the latest set.
pub fn split_set_and_patterns(
    set: Option<String>,
    mut patterns: Vec<String>,
) -> (Option<String>, Vec<String>) {
    match set {
        Some(s) if s.contains(['/', '*', '?', '[']) => {
            patterns.insert(0, s);
            (None, patterns)
        }
        Some(s) if s == "latest" => (None, patterns),
        other => (other, patterns),
    }
}
