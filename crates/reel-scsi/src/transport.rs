//! The seam between commands and the wire: one trait every transport implements (SG_IO on
//! a Linux sg node, iSCSI through libiscsi, a scripted fake in tests).

use std::time::Duration;

/// The data phase of a command.
pub enum Data<'a> {
    None,
    /// Data from the device into this buffer (its length is the transfer length asked).
    In(&'a mut [u8]),
    /// Data to the device.
    Out(&'a [u8]),
}

impl Data<'_> {
    pub fn len(&self) -> usize {
        match self {
            Data::None => 0,
            Data::In(b) => b.len(),
            Data::Out(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a command ended, as the transport saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The SCSI status byte.
    pub status: u8,
    /// Bytes of the data phase that did not move (requested minus transferred).
    pub residual: usize,
    /// Sense data returned with CHECK CONDITION (empty otherwise).
    pub sense: Vec<u8>,
}

impl Reply {
    pub fn good() -> Reply {
        Reply {
            status: 0,
            residual: 0,
            sense: Vec::new(),
        }
    }
}

/// A command could not be carried to the device or back (not a SCSI status).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Lost(pub String);

/// Carries commands to one logical unit.
pub trait Transport: Send {
    /// The device for messages: `/dev/sg3`, `iscsi://127.0.0.1:3260/iqn…/1`.
    fn describe(&self) -> String;

    /// Sends `cdb` with its data phase and waits at most `timeout` for it to complete.
    fn execute(&mut self, cdb: &[u8], data: Data<'_>, timeout: Duration) -> Result<Reply, Lost>;
}

impl<T: Transport + ?Sized> Transport for Box<T> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn execute(&mut self, cdb: &[u8], data: Data<'_>, timeout: Duration) -> Result<Reply, Lost> {
        (**self).execute(cdb, data, timeout)
    }
}
