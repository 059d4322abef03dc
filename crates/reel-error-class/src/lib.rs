//! The class of an error: what a failure means to whoever ran the command, which is what
//! reel's exit codes tell apart (README: 1 finished with per-file problems, 2 usage or
//! configuration error, 3 media or device error, 4 data integrity failure).
//!
//! Every library's error type has a `class()` method returning this one [`ErrorClass`]; an
//! error that wraps another gives its source's class. The command line keeps the one table
//! from class to exit code.
//!
//! Why a crate of its own: the classification is shared by every subsystem but belongs to
//! none of them. Put in the lowest crate (reel-tape), it would make reel-efs, reel-sis,
//! reel-delayed and reel-policy depend on the tape crate for one enum; a crate with no
//! dependencies couples nobody to anybody. The enum is not `#[non_exhaustive]` on purpose:
//! a new class must fail to compile the table until it has a code.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

/// What a failure means to whoever ran the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// The work finished, but some items (a file, an entry, a record) could not be done;
    /// each is reported. Also an error about one such item, when it is all a command was
    /// asked to do.
    Partial,
    /// The request or the configuration cannot be carried out as it is: a bad argument, an
    /// unknown set, a missing file, a refused overwrite, a catalog to rebuild. Asking again
    /// unchanged fails again.
    Usage,
    /// The medium or the device failed or cannot be had: a tape condition, a volume nobody
    /// loads, the system's I/O failing.
    Media,
    /// Data failed its check: a damaged or altered archive, record, ciphertext or store file.
    Integrity,
}
