//! `reel tape health`: the drive's TapeAlert flags (standard names and severities), the
//! cartridge's MAM attributes and whether cleaning is due.

use std::process::ExitCode;

use anyhow::Result;
use reel_tape::TapeDrive;
use reel_tape::health::DriveHealth;

use crate::Global;
use crate::ui::print_json;

pub fn run(global: &Global, drive: &mut dyn TapeDrive) -> Result<ExitCode> {
    let h = drive.health()?;
    if global.json {
        print_json(&h)?;
    } else {
        print!("{}", text(&h));
    }
    Ok(ExitCode::SUCCESS)
}

fn text(h: &DriveHealth) -> String {
    let mut out = format!("drive {}", h.drive);
    if let Some(id) = &h.identity {
        out += &format!(" ({id})");
    }
    out += "\n";
    match (&h.alerts, &h.alerts_note) {
        (Some(a), _) if a.is_empty() => out += "TapeAlert: no flags set\n",
        (Some(a), _) => {
            out += "TapeAlert:\n";
            for f in a {
                out += &format!("  {:02X}h {:<11} {}\n", f.number, f.severity.name(), f.name);
            }
        }
        (None, note) => {
            out += &format!(
                "TapeAlert: not available ({})\n",
                note.as_deref().unwrap_or("unknown")
            )
        }
    }
    match (&h.mam, &h.mam_note) {
        (Some(m), _) => {
            out += "cartridge memory (MAM):\n";
            let rows: [(&str, Option<String>); 7] = [
                ("barcode", m.barcode.clone()),
                ("serial number", m.medium_serial.clone()),
                ("manufacturer", m.manufacturer.clone()),
                ("load count", m.load_count.map(|v| v.to_string())),
                (
                    "written in life",
                    m.total_mb_written.map(|v| format!("{v} MB")),
                ),
                ("read in life", m.total_mb_read.map(|v| format!("{v} MB"))),
                ("remaining", m.remaining_mib.map(|v| format!("{v} MiB"))),
            ];
            for (k, v) in rows {
                if let Some(v) = v {
                    out += &format!("  {k}: {v}\n");
                }
            }
        }
        (None, note) => {
            out += &format!(
                "cartridge memory: not available ({})\n",
                note.as_deref().unwrap_or("unknown")
            )
        }
    }
    out += &format!(
        "cleaning due: {}\n",
        if h.cleaning_due { "yes" } else { "no" }
    );
    let critical = h.critical();
    if !critical.is_empty() {
        out += &format!(
            "{} critical flag(s): backups refuse this drive\n",
            critical.len()
        );
    }
    out
}
