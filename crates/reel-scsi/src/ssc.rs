//! SSC-3 response data: READ POSITION (short and long forms), READ BLOCK LIMITS, mode
//! parameters (header, block descriptor, the data compression and medium partition
//! pages), REPORT DENSITY SUPPORT and log pages.

use crate::bytes::Bytes;
use crate::error::ParseError;

/// READ POSITION short form (SSC-3 table 33): 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortPosition {
    pub bop: bool,
    pub eop: bool,
    /// BPU: the block positions are unknown (the drive cannot say where it is).
    pub position_unknown: bool,
    pub partition: u8,
    pub first_block: u32,
    pub last_block: u32,
    pub blocks_in_buffer: u32,
    pub bytes_in_buffer: u32,
}

impl ShortPosition {
    pub fn parse(buf: &[u8]) -> Result<ShortPosition, ParseError> {
        let b = Bytes::new("READ POSITION short form", buf);
        if buf.len() < 20 {
            return Err(b.err(
                buf.len(),
                format!("{} bytes, the short form has 20", buf.len()),
            ));
        }
        let f = b.u8(0)?;
        Ok(ShortPosition {
            bop: f & 0x80 != 0,
            eop: f & 0x40 != 0,
            position_unknown: f & 0x04 != 0,
            partition: b.u8(1)?,
            first_block: b.be32(4)?,
            last_block: b.be32(8)?,
            blocks_in_buffer: b.be24(13)?,
            bytes_in_buffer: b.be32(16)?,
        })
    }
}

/// READ POSITION long form (SSC-3 table 34): 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPosition {
    pub bop: bool,
    pub eop: bool,
    /// MPU: the position is unknown.
    pub position_unknown: bool,
    /// LONU: the logical object number is unknown.
    pub object_unknown: bool,
    pub partition: u32,
    pub logical_object: u64,
    pub logical_file: u64,
}

impl LongPosition {
    pub fn parse(buf: &[u8]) -> Result<LongPosition, ParseError> {
        let b = Bytes::new("READ POSITION long form", buf);
        if buf.len() < 24 {
            return Err(b.err(
                buf.len(),
                format!("{} bytes, the long form has 32", buf.len()),
            ));
        }
        let f = b.u8(0)?;
        Ok(LongPosition {
            bop: f & 0x80 != 0,
            eop: f & 0x40 != 0,
            position_unknown: f & 0x08 != 0,
            object_unknown: f & 0x04 != 0,
            partition: b.be32(4)?,
            logical_object: b.be64(8)?,
            logical_file: b.be64(16)?,
        })
    }
}

/// READ BLOCK LIMITS data (SSC-3 table 45).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockLimits {
    pub granularity: u8,
    pub max: u32,
    pub min: u16,
}

impl BlockLimits {
    pub fn parse(buf: &[u8]) -> Result<BlockLimits, ParseError> {
        let b = Bytes::new("READ BLOCK LIMITS data", buf);
        Ok(BlockLimits {
            granularity: b.u8(0)? & 0x1f,
            max: b.be24(1)?,
            min: b.be16(4)?,
        })
    }
}

/// A mode parameter block descriptor (SPC-4 table 289, short LBA form).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockDescriptor {
    pub density: u8,
    pub blocks: u32,
    /// Block length; 0 means variable-length records.
    pub block_length: u32,
}

/// One mode page as the device returned it: code, subpage and its parameter bytes
/// (after the page header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModePage {
    pub code: u8,
    pub subpage: u8,
    pub data: Vec<u8>,
}

/// MODE SENSE data (SPC-4 7.5.4 / 7.5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeData {
    pub medium_type: u8,
    /// Device-specific parameter (SSC-3 table 56): WP, BUFFERED MODE, SPEED.
    pub device_specific: u8,
    pub block_descriptors: Vec<BlockDescriptor>,
    pub pages: Vec<ModePage>,
}

impl ModeData {
    /// Parses MODE SENSE(6) data (4-byte header).
    pub fn parse6(buf: &[u8]) -> Result<ModeData, ParseError> {
        let b = Bytes::new("MODE SENSE(6) data", buf);
        let total = (usize::from(b.u8(0)?) + 1).min(buf.len());
        let bd_len = usize::from(b.u8(3)?);
        Self::parse_rest(b, total, 4, bd_len, b.u8(1)?, b.u8(2)?)
    }

    /// Parses MODE SENSE(10) data (8-byte header).
    pub fn parse10(buf: &[u8]) -> Result<ModeData, ParseError> {
        let b = Bytes::new("MODE SENSE(10) data", buf);
        let total = (usize::from(b.be16(0)?) + 2).min(buf.len());
        if b.u8(4)? & 0x01 != 0 {
            return Err(b.err(4, "long LBA block descriptors are not used by tape drives"));
        }
        let bd_len = usize::from(b.be16(6)?);
        Self::parse_rest(b, total, 8, bd_len, b.u8(2)?, b.u8(3)?)
    }

    fn parse_rest(
        b: Bytes<'_>,
        total: usize,
        header: usize,
        bd_len: usize,
        medium_type: u8,
        device_specific: u8,
    ) -> Result<ModeData, ParseError> {
        if header + bd_len > total {
            return Err(b.err(
                header,
                format!("{bd_len} bytes of block descriptors in {total} bytes of mode data"),
            ));
        }
        if !bd_len.is_multiple_of(8) {
            return Err(b.err(
                header,
                format!("block descriptor length {bd_len} is not a multiple of 8"),
            ));
        }
        let mut block_descriptors = Vec::new();
        for at in (header..header + bd_len).step_by(8) {
            block_descriptors.push(BlockDescriptor {
                density: b.u8(at)?,
                blocks: b.be24(at + 1)?,
                block_length: b.be24(at + 5)?,
            });
        }
        let mut pages = Vec::new();
        let mut at = header + bd_len;
        while at < total {
            let first = b.u8(at)?;
            let spf = first & 0x40 != 0;
            let (subpage, len, hdr) = if spf {
                (b.u8(at + 1)?, usize::from(b.be16(at + 2)?), 4)
            } else {
                (0, usize::from(b.u8(at + 1)?), 2)
            };
            let data = b.slice(at + hdr, len).map_err(|_| {
                b.err(
                    at,
                    format!(
                        "mode page {:#04x} of {len} bytes runs past the end ({total})",
                        first & 0x3f
                    ),
                )
            })?;
            if at + hdr + len > total {
                return Err(b.err(
                    at,
                    format!(
                        "mode page {:#04x} runs past the mode data length",
                        first & 0x3f
                    ),
                ));
            }
            pages.push(ModePage {
                code: first & 0x3f,
                subpage,
                data: data.to_vec(),
            });
            at += hdr + len;
        }
        Ok(ModeData {
            medium_type,
            device_specific,
            block_descriptors,
            pages,
        })
    }

    /// WP of the device-specific parameter: the medium is write-protected.
    pub fn write_protected(&self) -> bool {
        self.device_specific & 0x80 != 0
    }

    /// The block length of the first block descriptor.
    pub fn block_length(&self) -> Option<u32> {
        self.block_descriptors.first().map(|d| d.block_length)
    }

    pub fn page(&self, code: u8, subpage: u8) -> Option<&ModePage> {
        self.pages
            .iter()
            .find(|p| p.code == code && p.subpage == subpage)
    }
}

/// MODE SELECT(6) parameter list that sets the block length (and keeps the density):
/// a mode parameter header and one block descriptor, no pages (SPC-4 7.5.4).
pub fn block_size_parameters(density: u8, block_length: u32) -> [u8; 12] {
    let l = block_length.to_be_bytes();
    [
        0, 0, 0x10,
        8, // header: length reserved in MODE SELECT, buffered mode, 8 bytes of descriptor
        density, 0, 0, 0, 0, l[1], l[2], l[3],
    ]
}

/// Data compression mode page (0Fh, SSC-3 8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionPage {
    /// DCE: compress written data.
    pub enabled: bool,
    /// DCC: the drive can compress.
    pub capable: bool,
    /// DDE: decompress read data.
    pub decompress: bool,
    pub compression_algorithm: u32,
    pub decompression_algorithm: u32,
}

pub const PAGE_DATA_COMPRESSION: u8 = 0x0f;
pub const PAGE_DEVICE_CONFIGURATION: u8 = 0x10;
pub const PAGE_MEDIUM_PARTITION: u8 = 0x11;

impl CompressionPage {
    pub fn parse(page: &ModePage) -> Result<CompressionPage, ParseError> {
        let b = Bytes::new("data compression mode page (0Fh)", &page.data);
        if page.code != PAGE_DATA_COMPRESSION {
            return Err(b.err(0, format!("page code {:#04x}, expected 0Fh", page.code)));
        }
        Ok(CompressionPage {
            enabled: b.u8(0)? & 0x80 != 0,
            capable: b.u8(0)? & 0x40 != 0,
            decompress: b.u8(1)? & 0x80 != 0,
            compression_algorithm: b.be32(2)?,
            decompression_algorithm: b.be32(6)?,
        })
    }

    /// The page (with its 2-byte header, PS cleared) for MODE SELECT with DCE set as
    /// asked and the rest as read.
    pub fn select_bytes(&self, enable: bool) -> [u8; 16] {
        let c = self.compression_algorithm.to_be_bytes();
        let d = self.decompression_algorithm.to_be_bytes();
        [
            PAGE_DATA_COMPRESSION,
            0x0e,
            if enable { 0x80 } else { 0 } | if self.capable { 0x40 } else { 0 },
            if self.decompress || enable { 0x80 } else { 0 },
            c[0],
            c[1],
            c[2],
            c[3],
            d[0],
            d[1],
            d[2],
            d[3],
            0,
            0,
            0,
            0,
        ]
    }
}

/// Medium partition mode page (11h, SSC-3 8.3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPage {
    pub max_additional: u8,
    pub additional_defined: u8,
    pub fixed: bool,
    pub select: bool,
    pub initiator: bool,
    /// PSUM: 0 bytes, 1 kilobytes, 2 megabytes, 3 10^(partition units) bytes.
    pub size_unit: u8,
    pub partition_units: u8,
    pub sizes: Vec<u16>,
}

impl PartitionPage {
    pub fn parse(page: &ModePage) -> Result<PartitionPage, ParseError> {
        let b = Bytes::new("medium partition mode page (11h)", &page.data);
        if page.code != PAGE_MEDIUM_PARTITION {
            return Err(b.err(0, format!("page code {:#04x}, expected 11h", page.code)));
        }
        let flags = b.u8(2)?;
        let mut sizes = Vec::new();
        let mut at = 6;
        while at + 2 <= page.data.len() {
            sizes.push(b.be16(at)?);
            at += 2;
        }
        Ok(PartitionPage {
            max_additional: b.u8(0)?,
            additional_defined: b.u8(1)?,
            fixed: flags & 0x80 != 0,
            select: flags & 0x40 != 0,
            initiator: flags & 0x20 != 0,
            size_unit: (flags >> 3) & 0x03,
            partition_units: b.u8(4)? & 0x0f,
            sizes,
        })
    }
}

/// One density descriptor of REPORT DENSITY SUPPORT (SSC-3 table 47).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Density {
    pub primary_code: u8,
    pub secondary_code: u8,
    pub writable: bool,
    pub default: bool,
    pub bits_per_mm: u32,
    pub media_width: u16,
    pub tracks: u16,
    /// Capacity in megabytes (10^6 bytes).
    pub capacity_mb: u32,
    pub organization: String,
    pub name: String,
    pub description: String,
}

/// REPORT DENSITY SUPPORT data: a 4-byte header and 52-byte descriptors.
pub fn parse_density_support(buf: &[u8]) -> Result<Vec<Density>, ParseError> {
    let b = Bytes::new("REPORT DENSITY SUPPORT data", buf);
    let total = (usize::from(b.be16(0)?) + 2).min(buf.len());
    let mut out = Vec::new();
    let mut at = 4;
    while at + 52 <= total {
        let f = b.u8(at + 2)?;
        out.push(Density {
            primary_code: b.u8(at)?,
            secondary_code: b.u8(at + 1)?,
            writable: f & 0x80 != 0,
            default: f & 0x20 != 0,
            bits_per_mm: b.be24(at + 5)?,
            media_width: b.be16(at + 8)?,
            tracks: b.be16(at + 10)?,
            capacity_mb: b.be32(at + 12)?,
            organization: b.ascii(at + 16, 8)?,
            name: b.ascii(at + 24, 8)?,
            description: b.ascii(at + 32, 20)?,
        });
        at += 52;
    }
    if at < total {
        return Err(b.err(
            at,
            format!("{} bytes left, a density descriptor has 52", total - at),
        ));
    }
    Ok(out)
}

/// One log parameter (SPC-4 7.3.2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogParameter {
    pub code: u16,
    pub control: u8,
    pub value: Vec<u8>,
}

/// A log page (SPC-4 7.3.2.1): page code, subpage and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPage {
    pub code: u8,
    pub subpage: u8,
    pub parameters: Vec<LogParameter>,
}

impl LogPage {
    pub fn parse(buf: &[u8]) -> Result<LogPage, ParseError> {
        let b = Bytes::new("log page", buf);
        let code = b.u8(0)? & 0x3f;
        let subpage = b.u8(1)?;
        let len = usize::from(b.be16(2)?);
        let end = 4 + len;
        if end > buf.len() {
            return Err(b.err(
                2,
                format!("page length {len}, but only {} bytes follow", buf.len() - 4),
            ));
        }
        let mut parameters = Vec::new();
        let mut at = 4;
        while at < end {
            let pcode = b.be16(at)?;
            let control = b.u8(at + 2)?;
            let plen = usize::from(b.u8(at + 3)?);
            if at + 4 + plen > end {
                return Err(b.err(
                    at,
                    format!("parameter {pcode:#06x} of {plen} bytes runs past the page"),
                ));
            }
            parameters.push(LogParameter {
                code: pcode,
                control,
                value: b.slice(at + 4, plen)?.to_vec(),
            });
            at += 4 + plen;
        }
        Ok(LogPage {
            code,
            subpage,
            parameters,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Short form (SSC-3 table 33): BOP set, partition 0, first and last block 0.
    #[test]
    fn short_position_at_bop() {
        let mut d = [0u8; 20];
        d[0] = 0x80;
        let p = ShortPosition::parse(&d).unwrap();
        assert!(p.bop && !p.position_unknown);
        assert_eq!(p.first_block, 0);
    }

    // What tgt returns for the short form: byte 0 = 20 (14h: BYCU | BPU), all else zero.
    #[test]
    fn short_position_unknown_as_tgt_sends_it() {
        let mut d = [0u8; 20];
        d[0] = 20;
        let p = ShortPosition::parse(&d).unwrap();
        assert!(p.position_unknown);
        assert!(ShortPosition::parse(&d[..19]).is_err());
    }

    // Long form (SSC-3 table 34): partition 1, logical object 0x1_0000_0005, file 7.
    #[test]
    fn long_position() {
        let d = [
            0x00, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        let p = LongPosition::parse(&d).unwrap();
        assert_eq!(p.partition, 1);
        assert_eq!(p.logical_object, 0x1_0000_0005);
        assert_eq!(p.logical_file, 7);
        assert!(!p.position_unknown && !p.object_unknown);
    }

    // tgt's READ BLOCK LIMITS in variable mode: granularity 9, max 1 MiB, min 4.
    #[test]
    fn block_limits() {
        let l = BlockLimits::parse(&[9, 0x10, 0x00, 0x00, 0x00, 0x04]).unwrap();
        assert_eq!((l.granularity, l.max, l.min), (9, 1 << 20, 4));
        assert!(BlockLimits::parse(&[9, 0]).is_err());
    }

    // MODE SENSE(6) of the data compression page with a block descriptor (SPC-4 table
    // 270 header, SSC-3 table 56 device-specific byte, SSC-3 table 58 page): buffered
    // mode 1, density 58h (LTO-5), block length 0 (variable), DCE and DCC set, DDE set,
    // algorithm 01h (ALDC).
    #[test]
    fn mode_sense6_compression_page() {
        let d = [
            27, 0, 0x10, 8, // header
            0x58, 0, 0, 0, 0, 0, 0, 0, // block descriptor
            0x0f, 0x0e, 0xc0, 0x80, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0,
        ];
        let m = ModeData::parse6(&d).unwrap();
        assert!(!m.write_protected());
        assert_eq!(m.block_length(), Some(0));
        assert_eq!(m.block_descriptors[0].density, 0x58);
        let c = CompressionPage::parse(m.page(0x0f, 0).unwrap()).unwrap();
        assert!(c.enabled && c.capable && c.decompress);
        assert_eq!(c.compression_algorithm, 1);
        let sel = c.select_bytes(false);
        assert_eq!(sel[..4], [0x0f, 0x0e, 0x40, 0x80]);
    }

    // MODE SENSE(10) with WP set, a 512-byte block length, and the medium partition page
    // (SSC-3 table 62): 1 additional partition allowed, 1 defined, IDP, PSUM megabytes,
    // sizes 100 and FFFFh.
    #[test]
    fn mode_sense10_partition_page() {
        let d = [
            0, 26, 0, 0x80, 0, 0, 0, 8, // header
            0, 0, 0, 0, 0, 0, 0x02, 0x00, // block descriptor: 512
            0x11, 10, 1, 1, 0x30, 0, 0, 0, 0, 100, 0xff, 0xff,
        ];
        let m = ModeData::parse10(&d).unwrap();
        assert!(m.write_protected());
        assert_eq!(m.block_length(), Some(512));
        let p = PartitionPage::parse(m.page(0x11, 0).unwrap()).unwrap();
        assert_eq!((p.max_additional, p.additional_defined), (1, 1));
        assert!(p.initiator && !p.select && !p.fixed);
        assert_eq!(p.size_unit, 2);
        assert_eq!(p.sizes, vec![100, 0xffff]);
    }

    #[test]
    fn mode_page_past_the_end_names_its_offset() {
        let d = [9, 0, 0, 0, 0x0f, 0x0e, 0, 0, 0, 0];
        let e = ModeData::parse6(&d).unwrap_err();
        assert_eq!(e.offset, 4);
    }

    #[test]
    fn block_size_parameter_list() {
        assert_eq!(
            block_size_parameters(0, 65536),
            [0, 0, 0x10, 8, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]
        );
    }

    // REPORT DENSITY SUPPORT with one descriptor (SSC-3 tables 46, 47): LTO-5, density 58h,
    // writable and default, 1500000 MB.
    #[test]
    fn density_support() {
        let mut d = vec![0, 54, 0, 0];
        let mut desc = vec![0x58, 0x58, 0xa0, 0, 0, 0, 0x3c, 0x8c, 0, 127, 0x05, 0x00];
        desc.extend_from_slice(&1_500_000u32.to_be_bytes());
        desc.extend_from_slice(b"LTO-CVE U-516   ");
        desc.extend_from_slice(b"LTO-5 data          ");
        d.extend_from_slice(&desc);
        let v = parse_density_support(&d).unwrap();
        assert_eq!(v.len(), 1);
        assert!(v[0].writable && v[0].default);
        assert_eq!(v[0].capacity_mb, 1_500_000);
        assert_eq!(v[0].organization, "LTO-CVE");
        assert_eq!(v[0].name, "U-516");
        assert_eq!(v[0].description, "LTO-5 data");
        assert_eq!(parse_density_support(&d[..40]).unwrap_err().offset, 4);
        d[1] = 60;
        d.extend_from_slice(&[0; 6]);
        assert!(parse_density_support(&d).is_err());
    }

    #[test]
    fn log_page_parameters() {
        let d = [0x2e, 0, 0, 10, 0, 1, 0x03, 1, 0, 0, 2, 0x03, 1, 1];
        let p = LogPage::parse(&d).unwrap();
        assert_eq!(p.code, 0x2e);
        assert_eq!(p.parameters.len(), 2);
        assert_eq!(p.parameters[1].code, 2);
        assert_eq!(p.parameters[1].value, [1]);
        let e = LogPage::parse(&[0x2e, 0, 0, 6, 0, 1, 3, 9, 0, 0]).unwrap_err();
        assert_eq!(e.offset, 4);
    }
}
