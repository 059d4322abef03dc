//! One module per subcommand: its clap arguments and a `run` that drives the library crates.

pub mod backup;
pub mod list;
pub mod restore;
pub mod tape;

use anyhow::{Context, Result};
use reel_tape::{TapeDrive, Target};

use crate::Global;

/// Opens the drive named by `--tape` (default: the default library's loaded cartridge).
pub fn open_drive(global: &Global) -> Result<Box<dyn TapeDrive>> {
    let target = Target::parse(global.tape.as_deref())?;
    let drive = target.open().with_context(|| match &global.tape {
        Some(t) => format!("cannot open tape {t}"),
        None => "cannot open the default tape".to_string(),
    })?;
    Ok(drive)
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
