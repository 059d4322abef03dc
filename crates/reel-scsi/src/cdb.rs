//! Command descriptor blocks for the SPC, SSC and SMC commands reel sends, each built from
//! the command's table in the standard (the section is named at each builder).
//!
//! Every builder checks that its numbers fit their fields ([`CdbError`]) instead of
//! silently truncating a count or a block number.

use std::fmt;

/// A command descriptor block with the command's name, for messages.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Cdb {
    bytes: [u8; 16],
    len: u8,
    name: &'static str,
}

impl Cdb {
    fn new<const N: usize>(name: &'static str, b: [u8; N]) -> Cdb {
        let mut bytes = [0u8; 16];
        bytes[..N].copy_from_slice(&b);
        Cdb {
            bytes,
            len: N as u8,
            name,
        }
    }

    /// The CDB bytes (6, 10, 12 or 16 of them).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The command's name as the standard writes it, e.g. `READ POSITION`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The operation code.
    pub fn opcode(&self) -> u8 {
        self.bytes[0]
    }
}

impl fmt::Debug for Cdb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [", self.name)?;
        for (i, b) in self.bytes().iter().enumerate() {
            if i > 0 {
                write!(f, " ")?;
            }
            write!(f, "{b:02x}")?;
        }
        write!(f, "]")
    }
}

/// A number that does not fit its CDB field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {field} {value} does not fit the command (the limit is {max})")]
pub struct CdbError {
    pub command: &'static str,
    pub field: &'static str,
    pub value: i128,
    pub max: i128,
}

fn fits(
    command: &'static str,
    field: &'static str,
    v: i128,
    min: i128,
    max: i128,
) -> Result<(), CdbError> {
    if (min..=max).contains(&v) {
        Ok(())
    } else {
        Err(CdbError {
            command,
            field,
            value: v,
            max,
        })
    }
}

fn be24(v: u32) -> [u8; 3] {
    let b = v.to_be_bytes();
    [b[1], b[2], b[3]]
}

// ---- SPC-4 ----

/// TEST UNIT READY (SPC-4 6.37).
pub fn test_unit_ready() -> Cdb {
    Cdb::new("TEST UNIT READY", [0x00, 0, 0, 0, 0, 0])
}

/// REQUEST SENSE (SPC-4 6.29); `descriptor` asks for descriptor-format sense.
pub fn request_sense(alloc: u8, descriptor: bool) -> Cdb {
    Cdb::new(
        "REQUEST SENSE",
        [0x03, u8::from(descriptor), 0, 0, alloc, 0],
    )
}

/// INQUIRY (SPC-4 6.6): standard data, or the vital product data page `vpd`.
pub fn inquiry(vpd: Option<u8>, alloc: u16) -> Cdb {
    let [hi, lo] = alloc.to_be_bytes();
    let (evpd, page) = match vpd {
        Some(p) => (1, p),
        None => (0, 0),
    };
    Cdb::new("INQUIRY", [0x12, evpd, page, hi, lo, 0])
}

/// Page control of MODE SENSE (SPC-4 table 98).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageControl {
    Current = 0,
    Changeable = 1,
    Default = 2,
    Saved = 3,
}

/// MODE SENSE(6) (SPC-4 6.11); `dbd` leaves out block descriptors.
pub fn mode_sense6(page: u8, subpage: u8, pc: PageControl, dbd: bool, alloc: u8) -> Cdb {
    Cdb::new(
        "MODE SENSE(6)",
        [
            0x1a,
            if dbd { 0x08 } else { 0 },
            ((pc as u8) << 6) | (page & 0x3f),
            subpage,
            alloc,
            0,
        ],
    )
}

/// MODE SENSE(10) (SPC-4 6.12).
pub fn mode_sense10(page: u8, subpage: u8, pc: PageControl, dbd: bool, alloc: u16) -> Cdb {
    let [hi, lo] = alloc.to_be_bytes();
    Cdb::new(
        "MODE SENSE(10)",
        [
            0x5a,
            if dbd { 0x08 } else { 0 },
            ((pc as u8) << 6) | (page & 0x3f),
            subpage,
            0,
            0,
            0,
            hi,
            lo,
            0,
        ],
    )
}

/// MODE SELECT(6) (SPC-4 6.9) with PF set (pages in the standard's format), not saved.
pub fn mode_select6(len: u8) -> Cdb {
    Cdb::new("MODE SELECT(6)", [0x15, 0x10, 0, 0, len, 0])
}

/// MODE SELECT(10) (SPC-4 6.10) with PF set, not saved.
pub fn mode_select10(len: u16) -> Cdb {
    let [hi, lo] = len.to_be_bytes();
    Cdb::new("MODE SELECT(10)", [0x55, 0x10, 0, 0, 0, 0, 0, hi, lo, 0])
}

/// LOG SENSE (SPC-4 6.8) of the cumulative values (PC 01b) of `page`.
pub fn log_sense(page: u8, subpage: u8, alloc: u16) -> Cdb {
    let [hi, lo] = alloc.to_be_bytes();
    Cdb::new(
        "LOG SENSE",
        [0x4d, 0, 0x40 | (page & 0x3f), subpage, 0, 0, 0, hi, lo, 0],
    )
}

/// READ ATTRIBUTE (SPC-4 6.17), service action ATTRIBUTE VALUES (00h), from attribute
/// `first` of partition `partition`.
pub fn read_attribute(first: u16, partition: u8, alloc: u32) -> Cdb {
    let [f1, f2] = first.to_be_bytes();
    let a = alloc.to_be_bytes();
    Cdb::new(
        "READ ATTRIBUTE",
        [
            0x8c, 0x00, 0, 0, 0, 0, 0, partition, f1, f2, a[0], a[1], a[2], a[3], 0, 0,
        ],
    )
}

/// REPORT SUPPORTED OPERATION CODES (SPC-4 6.35; MAINTENANCE IN, service action 0Ch),
/// reporting option 000b: every command the device implements.
pub fn report_supported_opcodes(alloc: u32) -> Cdb {
    let a = alloc.to_be_bytes();
    Cdb::new(
        "REPORT SUPPORTED OPERATION CODES",
        [0xa3, 0x0c, 0, 0, 0, 0, a[0], a[1], a[2], a[3], 0, 0],
    )
}

/// PREVENT ALLOW MEDIUM REMOVAL (SPC-4 6.13).
pub fn prevent_allow_medium_removal(prevent: bool) -> Cdb {
    Cdb::new(
        "PREVENT ALLOW MEDIUM REMOVAL",
        [0x1e, 0, 0, 0, u8::from(prevent), 0],
    )
}

// ---- SSC-3 ----

/// REWIND (SSC-3 7.6).
pub fn rewind(immed: bool) -> Cdb {
    Cdb::new("REWIND", [0x01, u8::from(immed), 0, 0, 0, 0])
}

/// READ BLOCK LIMITS (SSC-3 7.5).
pub fn read_block_limits() -> Cdb {
    Cdb::new("READ BLOCK LIMITS", [0x05, 0, 0, 0, 0, 0])
}

/// READ(6) (SSC-3 6.4): in fixed mode `length` counts blocks, else bytes of one record;
/// `sili` suppresses the ILI condition for a record of another length (variable mode).
pub fn read6(fixed: bool, sili: bool, length: u32) -> Result<Cdb, CdbError> {
    fits("READ(6)", "transfer length", length.into(), 0, 0xff_ffff)?;
    let l = be24(length);
    Ok(Cdb::new(
        "READ(6)",
        [
            0x08,
            (u8::from(sili) << 1) | u8::from(fixed),
            l[0],
            l[1],
            l[2],
            0,
        ],
    ))
}

/// WRITE(6) (SSC-3 6.9): blocks in fixed mode, else the bytes of one record.
pub fn write6(fixed: bool, length: u32) -> Result<Cdb, CdbError> {
    fits("WRITE(6)", "transfer length", length.into(), 0, 0xff_ffff)?;
    let l = be24(length);
    Ok(Cdb::new(
        "WRITE(6)",
        [0x0a, u8::from(fixed), l[0], l[1], l[2], 0],
    ))
}

/// WRITE FILEMARKS(6) (SSC-3 6.10); `setmarks` writes setmarks (WSMK, SSC-2).
pub fn write_filemarks6(count: u32, setmarks: bool, immed: bool) -> Result<Cdb, CdbError> {
    fits("WRITE FILEMARKS(6)", "count", count.into(), 0, 0xff_ffff)?;
    let c = be24(count);
    Ok(Cdb::new(
        "WRITE FILEMARKS(6)",
        [
            0x10,
            (u8::from(setmarks) << 1) | u8::from(immed),
            c[0],
            c[1],
            c[2],
            0,
        ],
    ))
}

/// What SPACE counts (SSC-3 table 43).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceCode {
    Blocks = 0,
    Filemarks = 1,
    SequentialFilemarks = 2,
    EndOfData = 3,
    /// Obsolete in SSC-3, defined in SSC-2.
    Setmarks = 4,
    SequentialSetmarks = 5,
}

/// SPACE(6) (SSC-3 7.7): a 24-bit two's complement count, negative for reverse.
pub fn space6(code: SpaceCode, count: i32) -> Result<Cdb, CdbError> {
    fits("SPACE(6)", "count", count.into(), -0x80_0000, 0x7f_ffff)?;
    let c = be24(count as u32 & 0xff_ffff);
    Ok(Cdb::new(
        "SPACE(6)",
        [0x11, code as u8, c[0], c[1], c[2], 0],
    ))
}

/// SPACE(16) (SSC-3 7.8): a 64-bit count.
pub fn space16(code: SpaceCode, count: i64) -> Cdb {
    let c = count.to_be_bytes();
    Cdb::new(
        "SPACE(16)",
        [
            0x91, code as u8, 0, 0, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], 0, 0, 0, 0,
        ],
    )
}

/// LOCATE(10) (SSC-3 7.4): to logical object `object`; with `partition`, change
/// partition first (CP).
pub fn locate10(object: u64, partition: Option<u8>, immed: bool) -> Result<Cdb, CdbError> {
    fits(
        "LOCATE(10)",
        "logical object identifier",
        object.into(),
        0,
        u32::MAX.into(),
    )?;
    let o = (object as u32).to_be_bytes();
    Ok(Cdb::new(
        "LOCATE(10)",
        [
            0x2b,
            (u8::from(partition.is_some()) << 1) | u8::from(immed),
            0,
            o[0],
            o[1],
            o[2],
            o[3],
            0,
            partition.unwrap_or(0),
            0,
        ],
    ))
}

/// LOCATE(16) (SSC-3 7.5).
pub fn locate16(object: u64, partition: Option<u8>, immed: bool) -> Cdb {
    let o = object.to_be_bytes();
    Cdb::new(
        "LOCATE(16)",
        [
            0x92,
            (u8::from(partition.is_some()) << 1) | u8::from(immed),
            0,
            partition.unwrap_or(0),
            o[0],
            o[1],
            o[2],
            o[3],
            o[4],
            o[5],
            o[6],
            o[7],
            0,
            0,
            0,
            0,
        ],
    )
}

/// The READ POSITION service actions (SSC-3 table 31).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionForm {
    /// 00h, 20 bytes: 32-bit block numbers.
    Short = 0x00,
    /// 06h, 32 bytes: 64-bit logical object number and file number.
    Long = 0x06,
}

/// READ POSITION (SSC-3 7.3).
pub fn read_position(form: PositionForm) -> Cdb {
    let alloc: u16 = match form {
        PositionForm::Short => 0,
        PositionForm::Long => 32,
    };
    let [hi, lo] = alloc.to_be_bytes();
    Cdb::new(
        "READ POSITION",
        [0x34, form as u8, 0, 0, 0, 0, 0, hi, lo, 0],
    )
}

/// ERASE(6) (SSC-3 6.2): `long` erases to the end of the partition.
pub fn erase6(long: bool, immed: bool) -> Cdb {
    Cdb::new(
        "ERASE(6)",
        [0x19, (u8::from(immed) << 1) | u8::from(long), 0, 0, 0, 0],
    )
}

/// LOAD UNLOAD (SSC-3 7.2): LOAD bit set loads, clear unloads; RETEN tensions first.
pub fn load_unload(load: bool, retension: bool, immed: bool) -> Cdb {
    Cdb::new(
        "LOAD UNLOAD",
        [
            0x1b,
            u8::from(immed),
            0,
            0,
            (u8::from(retension) << 1) | u8::from(load),
            0,
        ],
    )
}

/// REPORT DENSITY SUPPORT (SSC-3 6.7): the densities of the mounted medium (`media`) or
/// of the drive.
pub fn report_density_support(media: bool, alloc: u16) -> Cdb {
    let [hi, lo] = alloc.to_be_bytes();
    Cdb::new(
        "REPORT DENSITY SUPPORT",
        [0x44, u8::from(media), 0, 0, 0, 0, 0, hi, lo, 0],
    )
}

// ---- SMC-3 ----

/// Element type codes (SMC-3 table 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ElementType {
    All = 0,
    MediumTransport = 1,
    Storage = 2,
    ImportExport = 3,
    DataTransfer = 4,
}

impl ElementType {
    pub fn from_code(c: u8) -> Option<ElementType> {
        Some(match c {
            0 => ElementType::All,
            1 => ElementType::MediumTransport,
            2 => ElementType::Storage,
            3 => ElementType::ImportExport,
            4 => ElementType::DataTransfer,
            _ => return None,
        })
    }
}

/// READ ELEMENT STATUS (SMC-3 6.11): `count` elements of `kind` from address `start`,
/// with volume tags (`voltag`) and device identifiers (`dvcid`).
pub fn read_element_status(
    kind: ElementType,
    start: u16,
    count: u16,
    voltag: bool,
    dvcid: bool,
    alloc: u32,
) -> Result<Cdb, CdbError> {
    fits(
        "READ ELEMENT STATUS",
        "allocation length",
        alloc.into(),
        0,
        0xff_ffff,
    )?;
    let [s1, s2] = start.to_be_bytes();
    let [c1, c2] = count.to_be_bytes();
    let a = be24(alloc);
    Ok(Cdb::new(
        "READ ELEMENT STATUS",
        [
            0xb8,
            (u8::from(voltag) << 4) | (kind as u8),
            s1,
            s2,
            c1,
            c2,
            u8::from(dvcid),
            a[0],
            a[1],
            a[2],
            0,
            0,
        ],
    ))
}

/// MOVE MEDIUM (SMC-3 6.6).
pub fn move_medium(transport: u16, source: u16, destination: u16) -> Cdb {
    let [t1, t2] = transport.to_be_bytes();
    let [s1, s2] = source.to_be_bytes();
    let [d1, d2] = destination.to_be_bytes();
    Cdb::new("MOVE MEDIUM", [0xa5, 0, t1, t2, s1, s2, d1, d2, 0, 0, 0, 0])
}

/// INITIALIZE ELEMENT STATUS (SMC-3 6.2): the changer takes a new inventory.
pub fn initialize_element_status() -> Cdb {
    Cdb::new("INITIALIZE ELEMENT STATUS", [0x07, 0, 0, 0, 0, 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_follow_the_tables() {
        assert_eq!(test_unit_ready().bytes(), [0, 0, 0, 0, 0, 0]);
        assert_eq!(inquiry(Some(0x80), 255).bytes(), [0x12, 1, 0x80, 0, 255, 0]);
        assert_eq!(
            read6(false, true, 262_144).unwrap().bytes(),
            [0x08, 0x02, 0x04, 0x00, 0x00, 0]
        );
        assert_eq!(write6(true, 2).unwrap().bytes(), [0x0a, 1, 0, 0, 2, 0]);
        // SPACE(6) back over one filemark: count FFFFFFh.
        assert_eq!(
            space6(SpaceCode::Filemarks, -1).unwrap().bytes(),
            [0x11, 1, 0xff, 0xff, 0xff, 0]
        );
        assert_eq!(
            space6(SpaceCode::EndOfData, 0).unwrap().bytes(),
            [0x11, 3, 0, 0, 0, 0]
        );
        assert!(space6(SpaceCode::Blocks, 0x80_0000).is_err());
        assert!(space6(SpaceCode::Blocks, -0x80_0000).is_ok());
        assert_eq!(
            locate10(0x0102_0304, Some(1), false).unwrap().bytes(),
            [0x2b, 0x02, 0, 1, 2, 3, 4, 0, 1, 0]
        );
        assert!(locate10(1 << 32, None, false).is_err());
        assert_eq!(
            read_position(PositionForm::Long).bytes(),
            [0x34, 0x06, 0, 0, 0, 0, 0, 0, 32, 0]
        );
        assert_eq!(
            load_unload(false, false, false).bytes(),
            [0x1b, 0, 0, 0, 0, 0]
        );
        assert_eq!(erase6(true, true).bytes(), [0x19, 3, 0, 0, 0, 0]);
        assert_eq!(
            log_sense(0x2e, 0, 0x0140).bytes(),
            [0x4d, 0, 0x6e, 0, 0, 0, 0, 0x01, 0x40, 0]
        );
        assert_eq!(
            read_element_status(ElementType::Storage, 0x0400, 10, true, false, 0x1000)
                .unwrap()
                .bytes(),
            [0xb8, 0x12, 0x04, 0x00, 0, 10, 0, 0, 0x10, 0, 0, 0]
        );
        assert_eq!(
            move_medium(0, 0x1000, 0x0100).bytes(),
            [0xa5, 0, 0, 0, 0x10, 0, 0x01, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            read_attribute(0x0400, 0, 4096).bytes()[..10],
            [0x8c, 0, 0, 0, 0, 0, 0, 0, 4, 0]
        );
        assert_eq!(format!("{:?}", rewind(false)), "REWIND [01 00 00 00 00 00]");
    }
}
