//! [`Device`]: commands to one logical unit over any [`Transport`], with CHECK CONDITION
//! turned into [`ScsiError::Check`] carrying decoded sense, and typed helpers for the
//! commands whose answers the parsers of this crate read.

use std::time::Duration;

use crate::cdb::{self, Cdb, ElementType, PageControl, PositionForm};
use crate::error::{ParseError, Result, ScsiError, Status};
use crate::inquiry::Inquiry;
use crate::mam::Attribute;
use crate::sense::Sense;
use crate::smc::Element;
use crate::ssc::{BlockLimits, Density, LogPage, LongPosition, ModeData, ShortPosition};
use crate::transport::{Data, Transport};

/// How long commands may take.
pub mod timeout {
    use std::time::Duration;
    /// Inquiries, mode and log pages, reads and writes of one record.
    pub const SHORT: Duration = Duration::from_secs(60);
    /// Tape motion and robot moves: rewind, space, locate, load, move medium.
    pub const MOTION: Duration = Duration::from_secs(20 * 60);
    /// A long erase of a whole partition.
    pub const LONG: Duration = Duration::from_secs(8 * 3600);
}

/// One logical unit.
pub struct Device {
    transport: Box<dyn Transport>,
    name: String,
}

impl Device {
    pub fn new(transport: Box<dyn Transport>) -> Device {
        let name = transport.describe();
        Device { transport, name }
    }

    /// The device for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `cdb`; the number of bytes transferred on success.
    pub fn run(&mut self, cdb: &Cdb, data: Data<'_>, timeout: Duration) -> Result<usize> {
        let len = data.len();
        let reply = self
            .transport
            .execute(cdb.bytes(), data, timeout)
            .map_err(|e| ScsiError::Transport {
                device: self.name.clone(),
                command: cdb.name(),
                reason: e.0,
            })?;
        let transferred = len - reply.residual.min(len);
        match Status::from_byte(reply.status) {
            Status::Good | Status::ConditionMet => Ok(transferred),
            Status::CheckCondition => {
                let sense = Sense::parse(&reply.sense).map_err(|source| ScsiError::Malformed {
                    device: self.name.clone(),
                    command: cdb.name(),
                    source,
                })?;
                Err(ScsiError::Check {
                    device: self.name.clone(),
                    command: cdb.name(),
                    sense,
                    transferred,
                })
            }
            status => Err(ScsiError::Status {
                device: self.name.clone(),
                command: cdb.name(),
                status,
            }),
        }
    }

    /// Runs a command that returns data of at most `alloc` bytes.
    pub fn read_data(&mut self, cdb: &Cdb, alloc: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; alloc];
        let n = self.run(cdb, Data::In(&mut buf), timeout::SHORT)?;
        buf.truncate(n);
        Ok(buf)
    }

    fn parsed<T>(&self, cdb: &Cdb, r: std::result::Result<T, ParseError>) -> Result<T> {
        r.map_err(|source| ScsiError::Malformed {
            device: self.name.clone(),
            command: cdb.name(),
            source,
        })
    }

    /// The commands the device implements (REPORT SUPPORTED OPERATION CODES).
    pub fn supported_commands(&mut self) -> Result<Vec<crate::inquiry::SupportedCommand>> {
        let c = cdb::report_supported_opcodes(4096);
        let d = self.read_data(&c, 4096)?;
        self.parsed(&c, crate::inquiry::parse_supported_opcodes(&d))
    }

    pub fn test_unit_ready(&mut self) -> Result<()> {
        self.run(&cdb::test_unit_ready(), Data::None, timeout::SHORT)
            .map(drop)
    }

    pub fn inquiry(&mut self) -> Result<Inquiry> {
        let c = cdb::inquiry(None, 96);
        let d = self.read_data(&c, 96)?;
        self.parsed(&c, Inquiry::parse(&d))
    }

    /// The unit serial number (VPD page 80h).
    pub fn serial_number(&mut self) -> Result<String> {
        let c = cdb::inquiry(Some(0x80), 252);
        let d = self.read_data(&c, 252)?;
        self.parsed(&c, crate::inquiry::unit_serial_number(&d))
    }

    /// MODE SENSE of the current values of `page` (MODE SENSE(6), or (10) where the
    /// device has no (6)).
    pub fn mode_sense(&mut self, page: u8, subpage: u8, dbd: bool) -> Result<ModeData> {
        let c = cdb::mode_sense6(page, subpage, PageControl::Current, dbd, 255);
        match self.read_data(&c, 255) {
            Ok(d) => self.parsed(&c, ModeData::parse6(&d)),
            Err(e)
                if e.sense().is_some_and(|s| {
                    s.code() == crate::sense::asc::INVALID_COMMAND_OPERATION_CODE
                }) =>
            {
                let c = cdb::mode_sense10(page, subpage, PageControl::Current, dbd, 1024);
                let d = self.read_data(&c, 1024)?;
                self.parsed(&c, ModeData::parse10(&d))
            }
            Err(e) => Err(e),
        }
    }

    /// MODE SELECT(6) of a parameter list (header, block descriptors, pages).
    pub fn mode_select(&mut self, params: &[u8]) -> Result<()> {
        let len = u8::try_from(params.len()).map_err(|_| {
            ScsiError::Open(format!(
                "{}: a MODE SELECT(6) parameter list of {} bytes is too long",
                self.name,
                params.len()
            ))
        })?;
        self.run(&cdb::mode_select6(len), Data::Out(params), timeout::SHORT)
            .map(drop)
    }

    pub fn log_sense(&mut self, page: u8) -> Result<LogPage> {
        let c = cdb::log_sense(page, 0, 1024);
        let d = self.read_data(&c, 1024)?;
        self.parsed(&c, LogPage::parse(&d))
    }

    /// The MAM attributes of partition `partition` (READ ATTRIBUTE, from the first).
    pub fn read_attributes(&mut self, partition: u8) -> Result<Vec<Attribute>> {
        let c = cdb::read_attribute(0, partition, 8192);
        let d = self.read_data(&c, 8192)?;
        self.parsed(&c, crate::mam::parse_attributes(&d))
    }

    pub fn read_position_short(&mut self) -> Result<ShortPosition> {
        let c = cdb::read_position(PositionForm::Short);
        let d = self.read_data(&c, 20)?;
        self.parsed(&c, ShortPosition::parse(&d))
    }

    pub fn read_position_long(&mut self) -> Result<LongPosition> {
        let c = cdb::read_position(PositionForm::Long);
        let d = self.read_data(&c, 32)?;
        self.parsed(&c, LongPosition::parse(&d))
    }

    pub fn read_block_limits(&mut self) -> Result<BlockLimits> {
        let c = cdb::read_block_limits();
        let d = self.read_data(&c, 6)?;
        self.parsed(&c, BlockLimits::parse(&d))
    }

    pub fn report_density_support(&mut self, media: bool) -> Result<Vec<Density>> {
        let c = cdb::report_density_support(media, 8192);
        let d = self.read_data(&c, 8192)?;
        self.parsed(&c, crate::ssc::parse_density_support(&d))
    }

    /// READ ELEMENT STATUS of `count` elements of one type from `start`, with volume tags;
    /// data transfer elements with their device identifiers.
    pub fn read_element_status(
        &mut self,
        kind: ElementType,
        start: u16,
        count: u16,
    ) -> Result<Vec<Element>> {
        // 8 bytes of header, 8 of page header, at most 88 a descriptor (SMC-3 table 24).
        let alloc = 16 + 88 * u32::from(count.max(1));
        let dvcid = kind == ElementType::DataTransfer;
        let c = cdb::read_element_status(kind, start, count, true, dvcid, alloc)
            .map_err(|e| ScsiError::Open(e.to_string()))?;
        let d = self.read_data(&c, alloc as usize)?;
        self.parsed(&c, crate::smc::parse_element_status(&d))
    }

    pub fn move_medium(&mut self, transport: u16, source: u16, destination: u16) -> Result<()> {
        self.run(
            &cdb::move_medium(transport, source, destination),
            Data::None,
            timeout::MOTION,
        )
        .map(drop)
    }

    pub fn initialize_element_status(&mut self) -> Result<()> {
        self.run(
            &cdb::initialize_element_status(),
            Data::None,
            timeout::MOTION,
        )
        .map(drop)
    }

    pub fn prevent_medium_removal(&mut self, prevent: bool) -> Result<()> {
        self.run(
            &cdb::prevent_allow_medium_removal(prevent),
            Data::None,
            timeout::SHORT,
        )
        .map(drop)
    }
}
