//! TapeAlert (SSC-3 annex A; the TapeAlert log page 2Eh, SSC-3 8.2.3): 64 flags, each with
//! its standard name and severity.

use crate::error::ParseError;
use crate::ssc::LogPage;

/// The TapeAlert log page code.
pub const PAGE_TAPE_ALERT: u8 = 0x2e;

/// Severity of a flag, as the TapeAlert specification classes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Information,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Information => "information",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A TapeAlert flag: its number (parameter code 1..64), name and severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Flag {
    pub number: u8,
    pub name: &'static str,
    pub severity: Severity,
}

use Severity::{Critical as C, Information as I, Warning as W};

/// Flags 1..=64 (SSC-3 table A.1). Numbers the standard leaves reserved or obsolete are
/// named so.
const FLAGS: [(&str, Severity); 64] = [
    ("Read warning", W),
    ("Write warning", W),
    ("Hard error", W),
    ("Media", C),
    ("Read failure", C),
    ("Write failure", C),
    ("Media life", W),
    ("Not data grade", W),
    ("Write protect", C),
    ("Volume removal prevented", I),
    ("Cleaning volume", I),
    ("Unsupported format", I),
    ("Recoverable mechanical cartridge failure", C),
    ("Unrecoverable mechanical cartridge failure", C),
    ("Memory chip in cartridge failure", W),
    ("Forced eject", C),
    ("Read only format", W),
    ("Tape directory corrupted on load", W),
    ("Nearing media life", I),
    ("Cleaning required", C),
    ("Cleaning requested", W),
    ("Expired cleaning volume", C),
    ("Invalid cleaning volume", C),
    ("Retension requested", W),
    ("Multi-port interface error on a primary port", W),
    ("Cooling fan failure", W),
    ("Power supply failure", W),
    ("Power consumption", W),
    ("Drive preventive maintenance required", W),
    ("Hardware A", C),
    ("Hardware B", C),
    ("Primary interface", W),
    ("Eject volume", C),
    ("Microcode update fail", W),
    ("Drive humidity", W),
    ("Drive temperature", W),
    ("Drive voltage", W),
    ("Predictive failure", C),
    ("Diagnostics required", W),
    ("Obsolete (28h)", I),
    ("Obsolete (29h)", I),
    ("Obsolete (2Ah)", I),
    ("Obsolete (2Bh)", I),
    ("Obsolete (2Ch)", I),
    ("Obsolete (2Dh)", I),
    ("Obsolete (2Eh)", I),
    ("Reserved (2Fh)", I),
    ("Reserved (30h)", I),
    ("Reserved (31h)", I),
    ("Lost statistics", W),
    ("Tape directory invalid at unload", W),
    ("Tape system area write failure", C),
    ("Tape system area read failure", C),
    ("No start of data", C),
    ("Loading or threading failure", C),
    ("Unrecoverable unload failure", C),
    ("Automation interface failure", C),
    ("Microcode failure", W),
    ("WORM volume integrity check failed", W),
    ("WORM volume overwrite attempted", W),
    ("Reserved (3Dh)", I),
    ("Reserved (3Eh)", I),
    ("Reserved (3Fh)", I),
    ("Reserved (40h)", I),
];

/// The flag with parameter code `number` (1..=64).
pub fn flag(number: u8) -> Option<Flag> {
    let (name, severity) = *FLAGS.get(usize::from(number).checked_sub(1)?)?;
    Some(Flag {
        number,
        name,
        severity,
    })
}

/// Flags that mean the drive needs cleaning (cleaning required, cleaning requested).
pub const CLEANING_FLAGS: [u8; 2] = [20, 21];

/// The flags set in a TapeAlert log page (each parameter 0001h..0040h is one byte whose
/// bit 0 is the flag).
pub fn flags_set(page: &LogPage) -> Result<Vec<Flag>, ParseError> {
    if page.code != PAGE_TAPE_ALERT {
        return Err(ParseError::new(
            "TapeAlert log page",
            0,
            format!("page code {:#04x}, expected 2Eh", page.code),
        ));
    }
    let mut out = Vec::new();
    for p in &page.parameters {
        let Ok(number) = u8::try_from(p.code) else {
            continue;
        };
        if let Some(f) = flag(number)
            && p.value.first().is_some_and(|v| v & 1 != 0)
        {
            out.push(f);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_severities_follow_the_annex() {
        assert_eq!(flag(1).unwrap().name, "Read warning");
        assert_eq!(flag(4).unwrap().severity, Severity::Critical);
        assert_eq!(flag(20).unwrap().name, "Cleaning required");
        assert_eq!(flag(21).unwrap().severity, Severity::Warning);
        assert_eq!(flag(0x37).unwrap().name, "Loading or threading failure");
        assert_eq!(flag(64).unwrap().name, "Reserved (40h)");
        assert!(flag(0).is_none() && flag(65).is_none());
    }

    // A TapeAlert page (SSC-3 table 101): 64 one-byte parameters, flags 3 (Hard error) and
    // 20 (Cleaning required) set.
    #[test]
    fn flags_of_a_page() {
        let mut d = vec![0x2e, 0, 0x01, 0x40];
        for code in 1u16..=64 {
            d.extend_from_slice(&code.to_be_bytes());
            d.push(0x03);
            d.push(1);
            d.push(u8::from(code == 3 || code == 20));
        }
        let page = LogPage::parse(&d).unwrap();
        let set = flags_set(&page).unwrap();
        let names: Vec<_> = set.iter().map(|f| f.name).collect();
        assert_eq!(names, ["Hard error", "Cleaning required"]);
        assert_eq!(set[1].severity, Severity::Critical);
    }
}
