//! `TAPE_DRIVE_*` capability bits of TAPE_GET_DRIVE_PARAMETERS, with the values of winnt.h.
//!
//! Every value was checked against winnt.h / ntddtape.h and the TAPE_GET_DRIVE_PARAMETERS
//! reference page. `FeaturesLow` takes the low constants as they are. The high constants
//! carry the flag bit [`TAPE_DRIVE_HIGH_FEATURES`] (0x80000000) in winnt.h; `FeaturesHigh`
//! holds them without it, as GetTapeParameters reports them: Windows' tape miniclass
//! drivers clear the bit (`FeaturesHigh &= ~TAPE_DRIVE_HIGH_FEATURES`) before returning,
//! and Microsoft's tape test tool warns when a driver forgets to. Use [`high`] to build it.

pub const TAPE_DRIVE_FIXED: u32 = 0x0000_0001;
pub const TAPE_DRIVE_SELECT: u32 = 0x0000_0002;
pub const TAPE_DRIVE_INITIATOR: u32 = 0x0000_0004;
pub const TAPE_DRIVE_ERASE_SHORT: u32 = 0x0000_0010;
pub const TAPE_DRIVE_ERASE_LONG: u32 = 0x0000_0020;
pub const TAPE_DRIVE_ERASE_BOP_ONLY: u32 = 0x0000_0040;
pub const TAPE_DRIVE_ERASE_IMMEDIATE: u32 = 0x0000_0080;
pub const TAPE_DRIVE_TAPE_CAPACITY: u32 = 0x0000_0100;
pub const TAPE_DRIVE_TAPE_REMAINING: u32 = 0x0000_0200;
pub const TAPE_DRIVE_FIXED_BLOCK: u32 = 0x0000_0400;
pub const TAPE_DRIVE_VARIABLE_BLOCK: u32 = 0x0000_0800;
pub const TAPE_DRIVE_WRITE_PROTECT: u32 = 0x0000_1000;
pub const TAPE_DRIVE_EOT_WZ_SIZE: u32 = 0x0000_2000;
pub const TAPE_DRIVE_ECC: u32 = 0x0001_0000;
pub const TAPE_DRIVE_COMPRESSION: u32 = 0x0002_0000;
pub const TAPE_DRIVE_PADDING: u32 = 0x0004_0000;
pub const TAPE_DRIVE_REPORT_SMKS: u32 = 0x0008_0000;
pub const TAPE_DRIVE_GET_ABSOLUTE_BLK: u32 = 0x0010_0000;
pub const TAPE_DRIVE_GET_LOGICAL_BLK: u32 = 0x0020_0000;
pub const TAPE_DRIVE_SET_EOT_WZ_SIZE: u32 = 0x0040_0000;
pub const TAPE_DRIVE_EJECT_MEDIA: u32 = 0x0100_0000;
pub const TAPE_DRIVE_CLEAN_REQUESTS: u32 = 0x0200_0000;
pub const TAPE_DRIVE_SET_CMP_BOP_ONLY: u32 = 0x0400_0000;
pub const TAPE_DRIVE_RESERVED_BIT: u32 = 0x8000_0000;

/// Flag bit that marks a winnt.h constant as belonging to `FeaturesHigh`.
pub const TAPE_DRIVE_HIGH_FEATURES: u32 = 0x8000_0000;

pub const TAPE_DRIVE_LOAD_UNLOAD: u32 = 0x8000_0001;
pub const TAPE_DRIVE_TENSION: u32 = 0x8000_0002;
pub const TAPE_DRIVE_LOCK_UNLOCK: u32 = 0x8000_0004;
pub const TAPE_DRIVE_REWIND_IMMEDIATE: u32 = 0x8000_0008;
pub const TAPE_DRIVE_SET_BLOCK_SIZE: u32 = 0x8000_0010;
pub const TAPE_DRIVE_LOAD_UNLD_IMMED: u32 = 0x8000_0020;
pub const TAPE_DRIVE_TENSION_IMMED: u32 = 0x8000_0040;
pub const TAPE_DRIVE_LOCK_UNLK_IMMED: u32 = 0x8000_0080;
pub const TAPE_DRIVE_SET_ECC: u32 = 0x8000_0100;
pub const TAPE_DRIVE_SET_COMPRESSION: u32 = 0x8000_0200;
pub const TAPE_DRIVE_SET_PADDING: u32 = 0x8000_0400;
pub const TAPE_DRIVE_SET_REPORT_SMKS: u32 = 0x8000_0800;
pub const TAPE_DRIVE_ABSOLUTE_BLK: u32 = 0x8000_1000;
pub const TAPE_DRIVE_ABS_BLK_IMMED: u32 = 0x8000_2000;
pub const TAPE_DRIVE_LOGICAL_BLK: u32 = 0x8000_4000;
pub const TAPE_DRIVE_LOG_BLK_IMMED: u32 = 0x8000_8000;
pub const TAPE_DRIVE_END_OF_DATA: u32 = 0x8001_0000;
pub const TAPE_DRIVE_RELATIVE_BLKS: u32 = 0x8002_0000;
pub const TAPE_DRIVE_FILEMARKS: u32 = 0x8004_0000;
pub const TAPE_DRIVE_SEQUENTIAL_FMKS: u32 = 0x8008_0000;
pub const TAPE_DRIVE_SETMARKS: u32 = 0x8010_0000;
pub const TAPE_DRIVE_SEQUENTIAL_SMKS: u32 = 0x8020_0000;
pub const TAPE_DRIVE_REVERSE_POSITION: u32 = 0x8040_0000;
pub const TAPE_DRIVE_SPACE_IMMEDIATE: u32 = 0x8080_0000;
pub const TAPE_DRIVE_WRITE_SETMARKS: u32 = 0x8100_0000;
pub const TAPE_DRIVE_WRITE_FILEMARKS: u32 = 0x8200_0000;
pub const TAPE_DRIVE_WRITE_SHORT_FMKS: u32 = 0x8400_0000;
pub const TAPE_DRIVE_WRITE_LONG_FMKS: u32 = 0x8800_0000;
pub const TAPE_DRIVE_WRITE_MARK_IMMED: u32 = 0x9000_0000;
pub const TAPE_DRIVE_FORMAT: u32 = 0xA000_0000;
pub const TAPE_DRIVE_FORMAT_IMMEDIATE: u32 = 0xC000_0000;

/// Combines high-word constants into a `FeaturesHigh` value (flag bit removed).
pub const fn high(bits: &[u32]) -> u32 {
    let mut v = 0;
    let mut i = 0;
    while i < bits.len() {
        v |= bits[i] & !TAPE_DRIVE_HIGH_FEATURES;
        i += 1;
    }
    v
}
