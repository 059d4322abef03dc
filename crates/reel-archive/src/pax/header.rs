//! The 512-byte ustar header block and its numeric fields.

pub const BLOCK: usize = 512;

/// Field offsets and lengths of the ustar header (POSIX.1-1988 / 2001).
pub mod field {
    pub const NAME: (usize, usize) = (0, 100);
    pub const MODE: (usize, usize) = (100, 8);
    pub const UID: (usize, usize) = (108, 8);
    pub const GID: (usize, usize) = (116, 8);
    pub const SIZE: (usize, usize) = (124, 12);
    pub const MTIME: (usize, usize) = (136, 12);
    pub const CHKSUM: (usize, usize) = (148, 8);
    pub const TYPEFLAG: usize = 156;
    pub const LINKNAME: (usize, usize) = (157, 100);
    pub const MAGIC: (usize, usize) = (257, 6);
    pub const VERSION: (usize, usize) = (263, 2);
    pub const UNAME: (usize, usize) = (265, 32);
    pub const GNAME: (usize, usize) = (297, 32);
    pub const DEVMAJOR: (usize, usize) = (329, 8);
    pub const DEVMINOR: (usize, usize) = (337, 8);
    pub const PREFIX: (usize, usize) = (345, 155);
}

/// Type flags.
pub mod kind {
    pub const REGULAR: u8 = b'0';
    pub const REGULAR_OLD: u8 = 0;
    pub const HARDLINK: u8 = b'1';
    pub const SYMLINK: u8 = b'2';
    pub const CHAR: u8 = b'3';
    pub const BLOCK: u8 = b'4';
    pub const DIRECTORY: u8 = b'5';
    pub const FIFO: u8 = b'6';
    pub const CONTIGUOUS: u8 = b'7';
    pub const PAX_LOCAL: u8 = b'x';
    pub const PAX_GLOBAL: u8 = b'g';
    pub const GNU_LONGNAME: u8 = b'L';
    pub const GNU_LONGLINK: u8 = b'K';
    pub const GNU_SPARSE: u8 = b'S';
    pub const GNU_DUMPDIR: u8 = b'D';
    pub const GNU_VOLUME: u8 = b'V';
    pub const GNU_MULTIVOL: u8 = b'M';
}

/// Writes `value` as NUL-terminated octal in a field of `len` bytes; `false` when it does
/// not fit.
pub fn put_octal(block: &mut [u8], (off, len): (usize, usize), value: u64) -> bool {
    let digits = len - 1;
    // Zero-padded to `digits` (written by hand: this runs several times per member).
    let bits = u32::try_from(3 * digits).unwrap_or(u32::MAX);
    if value.checked_shr(bits).unwrap_or(0) != 0 {
        return false;
    }
    let mut rest = value;
    for b in block[off..off + digits].iter_mut().rev() {
        *b = b'0' + (rest & 7) as u8;
        rest >>= 3;
    }
    block[off + digits] = 0;
    true
}

/// Writes `value` in GNU base-256 (the top bit of the first byte set), for values octal
/// cannot hold. Both GNU tar and libarchive read it.
pub fn put_base256(block: &mut [u8], (off, len): (usize, usize), value: i64) {
    let bytes = value.to_be_bytes();
    let fill = if value < 0 { 0xFF } else { 0 };
    for b in &mut block[off..off + len] {
        *b = fill;
    }
    let n = bytes.len().min(len);
    block[off + len - n..off + len].copy_from_slice(&bytes[bytes.len() - n..]);
    block[off] |= 0x80;
}

/// Writes a number, in octal when it fits, else in base-256.
pub fn put_number(block: &mut [u8], f: (usize, usize), value: i64) {
    if value < 0 || !put_octal(block, f, value as u64) {
        put_base256(block, f, value);
    }
}

/// Reads a numeric field: octal (leading spaces, trailing NUL/space) or base-256.
pub fn get_number(block: &[u8], (off, len): (usize, usize)) -> Result<i64, String> {
    let f = &block[off..off + len];
    if f[0] & 0x80 != 0 {
        // base-256: two's complement, big-endian, top bit of the first byte is the marker.
        let negative = f[0] & 0x40 != 0;
        let mut v: i128 = if negative { -1 } else { 0 };
        for (i, b) in f.iter().enumerate() {
            let b = if i == 0 {
                b & 0x7F | if negative { 0x80 } else { 0 }
            } else {
                *b
            };
            v = (v << 8) | i128::from(b);
            if v > i128::from(i64::MAX) || v < i128::from(i64::MIN) {
                return Err(format!("base-256 number {:02x?} out of range", f));
            }
        }
        return Ok(v as i64);
    }
    let text: Vec<u8> = f
        .iter()
        .copied()
        .skip_while(|b| *b == b' ')
        .take_while(|b| *b != 0 && *b != b' ')
        .collect();
    if text.is_empty() {
        return Ok(0);
    }
    let mut v: u64 = 0;
    for b in &text {
        if !(b'0'..=b'7').contains(b) {
            return Err(format!(
                "non-octal byte {:?} in numeric field {:?}",
                *b as char,
                String::from_utf8_lossy(f)
            ));
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(b - b'0')))
            .ok_or_else(|| format!("octal number {:?} overflows", String::from_utf8_lossy(f)))?;
    }
    i64::try_from(v).map_err(|_| format!("number {v} out of range"))
}

/// Bytes of a NUL-terminated (or full-length) text field.
pub fn get_bytes(block: &[u8], (off, len): (usize, usize)) -> &[u8] {
    let f = &block[off..off + len];
    let end = f.iter().position(|b| *b == 0).unwrap_or(len);
    &f[..end]
}

/// Copies `value` into a text field; `false` when it does not fit.
pub fn put_bytes(block: &mut [u8], (off, len): (usize, usize), value: &[u8]) -> bool {
    if value.len() > len {
        return false;
    }
    block[off..off + value.len()].copy_from_slice(value);
    true
}

/// The header checksum: sum of all bytes with the checksum field taken as spaces.
pub fn checksum(block: &[u8]) -> (u64, i64) {
    let (off, len) = field::CHKSUM;
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, b) in block.iter().enumerate() {
        let b = if (off..off + len).contains(&i) {
            b' '
        } else {
            *b
        };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    (unsigned, signed)
}

/// Fills in the checksum field (six octal digits, NUL, space).
pub fn set_checksum(block: &mut [u8]) {
    let (off, len) = field::CHKSUM;
    // The field counts as spaces in the sum; at most 512 * 255 = 0o377000: six digits.
    let sum: u64 = block[..off].iter().map(|b| u64::from(*b)).sum::<u64>()
        + block[off + len..]
            .iter()
            .map(|b| u64::from(*b))
            .sum::<u64>()
        + 8 * u64::from(b' ');
    put_octal(block, (off, 7), sum);
    block[off + 7] = b' ';
}

/// Splits a name into ustar (prefix, name) when possible.
pub fn split_ustar_name(name: &[u8]) -> Option<(&[u8], &[u8])> {
    if name.len() <= 100 {
        return Some((&[], name));
    }
    if name.len() > 256 {
        return None;
    }
    // The prefix is everything before a '/', at most 155 bytes; the rest at most 100.
    (0..name.len())
        .rev()
        .filter(|&i| name[i] == b'/')
        .find(|&i| i <= 155 && name.len() - i - 1 <= 100 && i > 0 && i + 1 < name.len())
        .map(|i| (&name[..i], &name[i + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_octal_and_base256() {
        let f = (0usize, 12usize);
        for v in [
            0i64,
            1,
            0o777,
            8 << 30,
            (8 << 30) - 1,
            1 << 40,
            i64::MAX,
            -1,
            -(1 << 33),
        ] {
            let mut b = [0u8; 12];
            put_number(&mut b, f, v);
            assert_eq!(get_number(&b, f).unwrap(), v, "{v}");
        }
        let mut b = [0u8; 8];
        b[..7].copy_from_slice(b"  0755 ");
        assert_eq!(get_number(&b, (0, 8)).unwrap(), 0o755);
        b[..7].copy_from_slice(b"0000789");
        assert!(get_number(&b, (0, 8)).is_err());
    }

    /// The field writers as first written (with `format!`), which the hand-written ones
    /// must match byte for byte.
    fn octal_reference(block: &mut [u8], (off, len): (usize, usize), value: u64) -> bool {
        let digits = len - 1;
        let text = format!("{value:0digits$o}");
        if text.len() > digits {
            return false;
        }
        block[off..off + digits].copy_from_slice(text.as_bytes());
        block[off + digits] = 0;
        true
    }

    fn checksum_reference(block: &mut [u8]) {
        let (sum, _) = checksum(block);
        let text = format!("{sum:06o}\0 ");
        let (off, _) = field::CHKSUM;
        block[off..off + 8].copy_from_slice(text.as_bytes());
    }

    proptest::proptest! {
        #[test]
        fn octal_matches_the_reference(value: u64, shift in 0u32..64, len in 2usize..25) {
            for v in [value, value >> shift, 8u64.saturating_pow(shift % 23), 8u64.saturating_pow(shift % 23).wrapping_sub(1)] {
                let mut a = vec![0xAAu8; 30];
                let mut b = a.clone();
                let fits = put_octal(&mut a, (3, len), v);
                proptest::prop_assert_eq!(fits, octal_reference(&mut b, (3, len), v));
                proptest::prop_assert_eq!(a, b);
            }
        }

        #[test]
        fn checksum_matches_the_reference(bytes in proptest::collection::vec(proptest::num::u8::ANY, BLOCK)) {
            let mut a = bytes.clone();
            let mut b = bytes;
            set_checksum(&mut a);
            checksum_reference(&mut b);
            proptest::prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn checksum_of_extremes_matches_the_reference() {
        for fill in [0u8, b' ', 0x7F, 0x80, 0xFF] {
            let mut a = [fill; BLOCK];
            let mut b = a;
            set_checksum(&mut a);
            checksum_reference(&mut b);
            assert_eq!(a, b, "fill {fill:#x}");
        }
    }

    #[test]
    fn ustar_split() {
        let long = [b"a".repeat(150), b"/".to_vec(), b"b".repeat(99)].concat();
        let (p, n) = split_ustar_name(&long).unwrap();
        assert_eq!(p.len(), 150);
        assert_eq!(n.len(), 99);
        assert!(split_ustar_name(&b"x".repeat(120)).is_none());
    }
}
