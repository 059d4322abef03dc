//! SCSI for tapes and changers: what reel says to a drive or a library and how it reads
//! the answers.
//!
//! This is its own crate because a SCSI command never knows what a set is, nor what the
//! Win32 tape functions promise: it builds CDBs ([`cdb`]) from the tables of SPC-4, SSC-3
//! and SMC-3, parses what devices return (sense data, positions, mode and log pages,
//! TapeAlert, MAM attributes, element status), and carries commands to a device over a
//! [`Transport`]. The tape drive backend (`reel-tape`'s `scsi` module, which maps SSC onto
//! the Win32 tape semantics) and the medium changer both build on it, as Proxmox Backup
//! Server splits its `sg_tape` drive from its `sg_pt_changer`.
//!
//! Every parser is total: any byte string gives a value or a [`ParseError`] naming the
//! offset where decoding stopped; none panics (property tests check it).
//!
//! Transports: [`sg`] (SG_IO on a Linux sg node, the st or changer device's node found
//! through sysfs) and [`iscsi`] (user-space iSCSI through libiscsi, loaded at run time so
//! that a build needs nothing beyond libc).

mod bytes;
pub mod cdb;
pub mod device;
pub mod error;
pub mod inquiry;
pub mod iscsi;
pub mod mam;
pub mod sense;
pub mod sg;
pub mod smc;
pub mod ssc;
pub mod tapealert;
pub mod transport;

pub use cdb::{Cdb, CdbError, ElementType, SpaceCode};
pub use device::Device;
pub use error::{ParseError, Result, ScsiError, Status};
pub use inquiry::Inquiry;
pub use sense::{Sense, SenseKey};
pub use transport::{Data, Lost, Reply, Transport};
