//! Sizes as people write them: `4096`, `256K`, `16G`, `1.5T`, `320MiB` (binary multiples).
//!
//! One parser for the policy's settings (`min-snapshot-space`) and the command line
//! (`--capacity`, `--block-size`, tape partition sizes…).

/// Why a text is not a size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not a size (examples: 4096, 256K, 16G, 1.5T)")]
pub struct SizeError {
    /// The text as given.
    pub text: String,
    /// What is wrong with it.
    pub kind: SizeErrorKind,
}

/// What is wrong with a size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeErrorKind {
    /// The number part is not a number.
    NotANumber,
    /// Negative, infinite, or more bytes than a `u64` holds.
    OutOfRange,
}

/// The multiplier a size's suffix names, and the number before it; `None` for a bare number.
fn split_suffix(text: &str) -> (&str, Option<u64>) {
    let (t, says_bytes) = match text.strip_suffix("iB") {
        Some(t) => (t, false),
        None => match text.strip_suffix('B') {
            Some(t) => (t, true),
            None => (text, false),
        },
    };
    match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], Some(1 << 10)),
        Some((i, 'M' | 'm')) => (&t[..i], Some(1 << 20)),
        Some((i, 'G' | 'g')) => (&t[..i], Some(1 << 30)),
        Some((i, 'T' | 't')) => (&t[..i], Some(1 << 40)),
        // `512B` says bytes; `512` says nothing.
        _ => (t, says_bytes.then_some(1)),
    }
}

/// Parses a size in bytes: a number of bytes, or a number with a binary multiple `K`, `M`,
/// `G`, `T` (optionally followed by `B` or `iB`). Fractions are allowed (`1.5T`).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    parse_size_in(text, 1)
}

/// As [`parse_size`], but a bare number counts `unit`s: with `1 << 20`, `8` is 8 MiB, as in
/// CreateTapePartition's megabytes. A suffix (`8M`, `4096B`) says its own unit.
pub fn parse_size_in(text: &str, unit: u64) -> Result<u64, SizeError> {
    let bad = |kind| SizeError {
        text: text.to_string(),
        kind,
    };
    let (num, mult) = split_suffix(text.trim());
    let mult = mult.unwrap_or(unit);
    let value: f64 = num
        .trim()
        .parse()
        .map_err(|_| bad(SizeErrorKind::NotANumber))?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad(SizeErrorKind::OutOfRange));
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("16G"), Ok(16 << 30));
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert_eq!(parse_size("320MB"), Ok(320 << 20));
        assert_eq!(parse_size(" 1.5T "), Ok(3 << 39));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(
            parse_size("lots").map_err(|e| e.kind),
            Err(SizeErrorKind::NotANumber)
        );
        assert_eq!(
            parse_size("-1G").map_err(|e| e.kind),
            Err(SizeErrorKind::OutOfRange)
        );
        assert_eq!(
            parse_size("99999999999T").map_err(|e| e.kind),
            Err(SizeErrorKind::OutOfRange)
        );
        assert_eq!(
            parse_size("inf").map_err(|e| e.kind),
            Err(SizeErrorKind::OutOfRange)
        );
        assert!(parse_size("").is_err());
        assert!(parse_size("G").is_err());
        assert_eq!(
            parse_size("lots").unwrap_err().to_string(),
            "\"lots\" is not a size (examples: 4096, 256K, 16G, 1.5T)"
        );
    }

    #[test]
    fn a_bare_number_counts_the_unit_and_a_suffix_its_own() {
        const MIB: u64 = 1 << 20;
        assert_eq!(parse_size_in("8", MIB), Ok(8 << 20));
        assert_eq!(parse_size_in("0.5", MIB), Ok(512 << 10));
        assert_eq!(parse_size_in("500M", MIB), Ok(500 << 20));
        assert_eq!(parse_size_in("1G", MIB), Ok(1 << 30));
        assert_eq!(parse_size_in("4096B", MIB), Ok(4096));
        assert_eq!(parse_size_in("8MiB", MIB), Ok(8 << 20));
        assert!(parse_size_in("eight", MIB).is_err());
    }

    proptest! {
        #[test]
        fn any_text_is_a_size_or_an_error_never_a_panic(text in "\\PC{0,12}") {
            let _ = parse_size(&text);
            let _ = parse_size_in(&text, 1 << 20);
        }

        #[test]
        fn whole_numbers_round_trip(n in 0u64..(1 << 50)) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
            prop_assert_eq!(parse_size(&format!("{n}K")), Ok(n << 10));
        }
    }
}
