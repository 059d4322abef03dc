//! Win32 error codes as they appear in status fields (`SC=XXXXXXXX`), and how Linux errors
//! map onto them.
//!
//! The executor reports every outcome as a Win32 system error code, like Srdelayed does, so a
//! file carried out on Linux reads the same as one carried out by Windows. The mapping from
//! `errno`:
//!
//! | errno | Win32 code |
//! |---|---|
//! | (success) | 0 `ERROR_SUCCESS` |
//! | `ENOENT` | 2 `ERROR_FILE_NOT_FOUND` when the parent directory exists, else 3 `ERROR_PATH_NOT_FOUND` (decided by the executor) |
//! | `ENOTDIR` | 3 `ERROR_PATH_NOT_FOUND` |
//! | `EPERM`, `EACCES`, `EISDIR` | 5 `ERROR_ACCESS_DENIED` (also: a directory as MoveFile source) |
//! | `EMFILE`, `ENFILE` | 4 `ERROR_TOO_MANY_OPEN_FILES` |
//! | `EBADF` | 6 `ERROR_INVALID_HANDLE` |
//! | `ENOMEM` | 8 `ERROR_NOT_ENOUGH_MEMORY` |
//! | `EXDEV` | 17 `ERROR_NOT_SAME_DEVICE` |
//! | `EROFS` | 19 `ERROR_WRITE_PROTECT` |
//! | `ENODEV`, `ENXIO` | 20 `ERROR_BAD_UNIT` |
//! | `ENOMEDIUM`, `ENOTCONN` (a FUSE file system gone) | 21 `ERROR_NOT_READY` |
//! | `ETXTBSY` | 32 `ERROR_SHARING_VIOLATION` |
//! | `EAGAIN` | 33 `ERROR_LOCK_VIOLATION` |
//! | `EOPNOTSUPP`/`ENOTSUP`, and no short names on this file system | 50 `ERROR_NOT_SUPPORTED` |
//! | `EINVAL`, and a short name that is not a valid 8.3 name | 87 `ERROR_INVALID_PARAMETER` |
//! | `EINTR` | 95 `ERROR_INTERRUPT` |
//! | `EPIPE` | 109 `ERROR_BROKEN_PIPE` |
//! | `ENOSPC` | 112 `ERROR_DISK_FULL` |
//! | `ENOSYS` | 120 `ERROR_CALL_NOT_IMPLEMENTED` |
//! | `EILSEQ` | 123 `ERROR_INVALID_NAME` |
//! | `ENOTEMPTY` (and `EEXIST` from `rmdir`) | 145 `ERROR_DIR_NOT_EMPTY` |
//! | `EBUSY` | 170 `ERROR_BUSY` |
//! | `EEXIST` | 183 `ERROR_ALREADY_EXISTS` |
//! | `ENAMETOOLONG` | 206 `ERROR_FILENAME_EXCED_RANGE` |
//! | `EFBIG` | 223 `ERROR_FILE_TOO_LARGE` |
//! | `ECANCELED` | 995 `ERROR_OPERATION_ABORTED` |
//! | `EIO` | 1117 `ERROR_IO_DEVICE` |
//! | `EMLINK` | 1142 `ERROR_TOO_MANY_LINKS` |
//! | `EDQUOT` | 1295 `ERROR_DISK_QUOTA_EXCEEDED` |
//! | `EUCLEAN` (file system needs repair) | 1392 `ERROR_FILE_CORRUPT` |
//! | `ETIMEDOUT` | 1460 `ERROR_TIMEOUT` |
//! | `ELOOP` | 1921 `ERROR_CANT_RESOLVE_FILENAME` |
//! | any other errno *n* | `0x20000000 \| n` — bit 29 is the Win32 "customer code" bit, so the errno survives and no system code is faked |

use std::io;

pub const ERROR_SUCCESS: u32 = 0;
pub const ERROR_FILE_NOT_FOUND: u32 = 2;
pub const ERROR_PATH_NOT_FOUND: u32 = 3;
pub const ERROR_TOO_MANY_OPEN_FILES: u32 = 4;
pub const ERROR_ACCESS_DENIED: u32 = 5;
pub const ERROR_INVALID_HANDLE: u32 = 6;
pub const ERROR_NOT_ENOUGH_MEMORY: u32 = 8;
pub const ERROR_NOT_SAME_DEVICE: u32 = 17;
pub const ERROR_WRITE_PROTECT: u32 = 19;
pub const ERROR_BAD_UNIT: u32 = 20;
pub const ERROR_NOT_READY: u32 = 21;
pub const ERROR_SHARING_VIOLATION: u32 = 32;
pub const ERROR_LOCK_VIOLATION: u32 = 33;
pub const ERROR_NOT_SUPPORTED: u32 = 50;
pub const ERROR_INVALID_PARAMETER: u32 = 87;
pub const ERROR_INTERRUPT: u32 = 95;
pub const ERROR_BROKEN_PIPE: u32 = 109;
pub const ERROR_DISK_FULL: u32 = 112;
pub const ERROR_CALL_NOT_IMPLEMENTED: u32 = 120;
pub const ERROR_INVALID_NAME: u32 = 123;
pub const ERROR_DIR_NOT_EMPTY: u32 = 145;
pub const ERROR_BUSY: u32 = 170;
pub const ERROR_ALREADY_EXISTS: u32 = 183;
pub const ERROR_FILENAME_EXCED_RANGE: u32 = 206;
pub const ERROR_FILE_TOO_LARGE: u32 = 223;
pub const ERROR_OPERATION_ABORTED: u32 = 995;
pub const ERROR_IO_DEVICE: u32 = 1117;
pub const ERROR_TOO_MANY_LINKS: u32 = 1142;
pub const ERROR_DISK_QUOTA_EXCEEDED: u32 = 1295;
pub const ERROR_FILE_CORRUPT: u32 = 1392;
pub const ERROR_TIMEOUT: u32 = 1460;
pub const ERROR_CANT_RESOLVE_FILENAME: u32 = 1921;

/// Bit 29 of a Win32 error code marks an application-defined ("customer") code; an errno
/// without a Win32 counterpart is reported as this bit plus the errno.
pub const CUSTOMER_ERRNO_FLAG: u32 = 0x2000_0000;

const NAMES: &[(u32, &str)] = &[
    (ERROR_SUCCESS, "ERROR_SUCCESS"),
    (ERROR_FILE_NOT_FOUND, "ERROR_FILE_NOT_FOUND"),
    (ERROR_PATH_NOT_FOUND, "ERROR_PATH_NOT_FOUND"),
    (ERROR_TOO_MANY_OPEN_FILES, "ERROR_TOO_MANY_OPEN_FILES"),
    (ERROR_ACCESS_DENIED, "ERROR_ACCESS_DENIED"),
    (ERROR_INVALID_HANDLE, "ERROR_INVALID_HANDLE"),
    (ERROR_NOT_ENOUGH_MEMORY, "ERROR_NOT_ENOUGH_MEMORY"),
    (ERROR_NOT_SAME_DEVICE, "ERROR_NOT_SAME_DEVICE"),
    (ERROR_WRITE_PROTECT, "ERROR_WRITE_PROTECT"),
    (ERROR_BAD_UNIT, "ERROR_BAD_UNIT"),
    (ERROR_NOT_READY, "ERROR_NOT_READY"),
    (ERROR_SHARING_VIOLATION, "ERROR_SHARING_VIOLATION"),
    (ERROR_LOCK_VIOLATION, "ERROR_LOCK_VIOLATION"),
    (ERROR_NOT_SUPPORTED, "ERROR_NOT_SUPPORTED"),
    (ERROR_INVALID_PARAMETER, "ERROR_INVALID_PARAMETER"),
    (ERROR_INTERRUPT, "ERROR_INTERRUPT"),
    (ERROR_BROKEN_PIPE, "ERROR_BROKEN_PIPE"),
    (ERROR_DISK_FULL, "ERROR_DISK_FULL"),
    (ERROR_CALL_NOT_IMPLEMENTED, "ERROR_CALL_NOT_IMPLEMENTED"),
    (ERROR_INVALID_NAME, "ERROR_INVALID_NAME"),
    (ERROR_DIR_NOT_EMPTY, "ERROR_DIR_NOT_EMPTY"),
    (ERROR_BUSY, "ERROR_BUSY"),
    (ERROR_ALREADY_EXISTS, "ERROR_ALREADY_EXISTS"),
    (ERROR_FILENAME_EXCED_RANGE, "ERROR_FILENAME_EXCED_RANGE"),
    (ERROR_FILE_TOO_LARGE, "ERROR_FILE_TOO_LARGE"),
    (ERROR_OPERATION_ABORTED, "ERROR_OPERATION_ABORTED"),
    (ERROR_IO_DEVICE, "ERROR_IO_DEVICE"),
    (ERROR_TOO_MANY_LINKS, "ERROR_TOO_MANY_LINKS"),
    (ERROR_DISK_QUOTA_EXCEEDED, "ERROR_DISK_QUOTA_EXCEEDED"),
    (ERROR_FILE_CORRUPT, "ERROR_FILE_CORRUPT"),
    (ERROR_TIMEOUT, "ERROR_TIMEOUT"),
    (ERROR_CANT_RESOLVE_FILENAME, "ERROR_CANT_RESOLVE_FILENAME"),
];

/// The Win32 code for an errno (see the table in the module docs). `ENOENT` gives
/// `ERROR_FILE_NOT_FOUND`; the executor turns it into `ERROR_PATH_NOT_FOUND` when the
/// parent directory is missing.
pub fn from_errno(errno: i32) -> u32 {
    match errno {
        0 => ERROR_SUCCESS,
        libc::ENOENT => ERROR_FILE_NOT_FOUND,
        libc::ENOTDIR => ERROR_PATH_NOT_FOUND,
        libc::EPERM | libc::EACCES | libc::EISDIR => ERROR_ACCESS_DENIED,
        libc::EMFILE | libc::ENFILE => ERROR_TOO_MANY_OPEN_FILES,
        libc::EBADF => ERROR_INVALID_HANDLE,
        libc::ENOMEM => ERROR_NOT_ENOUGH_MEMORY,
        libc::EXDEV => ERROR_NOT_SAME_DEVICE,
        libc::EROFS => ERROR_WRITE_PROTECT,
        libc::ENODEV | libc::ENXIO => ERROR_BAD_UNIT,
        libc::ENOMEDIUM | libc::ENOTCONN => ERROR_NOT_READY,
        libc::ETXTBSY => ERROR_SHARING_VIOLATION,
        libc::EAGAIN => ERROR_LOCK_VIOLATION,
        libc::EOPNOTSUPP => ERROR_NOT_SUPPORTED,
        libc::EINVAL => ERROR_INVALID_PARAMETER,
        libc::EINTR => ERROR_INTERRUPT,
        libc::EPIPE => ERROR_BROKEN_PIPE,
        libc::ENOSPC => ERROR_DISK_FULL,
        libc::ENOSYS => ERROR_CALL_NOT_IMPLEMENTED,
        libc::EILSEQ => ERROR_INVALID_NAME,
        libc::ENOTEMPTY => ERROR_DIR_NOT_EMPTY,
        libc::EBUSY => ERROR_BUSY,
        libc::EEXIST => ERROR_ALREADY_EXISTS,
        libc::ENAMETOOLONG => ERROR_FILENAME_EXCED_RANGE,
        libc::EFBIG => ERROR_FILE_TOO_LARGE,
        libc::ECANCELED => ERROR_OPERATION_ABORTED,
        libc::EIO => ERROR_IO_DEVICE,
        libc::EMLINK => ERROR_TOO_MANY_LINKS,
        libc::EDQUOT => ERROR_DISK_QUOTA_EXCEEDED,
        libc::EUCLEAN => ERROR_FILE_CORRUPT,
        libc::ETIMEDOUT => ERROR_TIMEOUT,
        libc::ELOOP => ERROR_CANT_RESOLVE_FILENAME,
        n if n > 0 => CUSTOMER_ERRNO_FLAG | (n as u32 & 0x0FFF_FFFF),
        _ => CUSTOMER_ERRNO_FLAG,
    }
}

/// The Win32 code for an I/O error: from its errno, else from its kind.
pub fn from_io_error(err: &io::Error) -> u32 {
    if let Some(errno) = err.raw_os_error() {
        return from_errno(errno);
    }
    match err.kind() {
        io::ErrorKind::NotFound => ERROR_FILE_NOT_FOUND,
        io::ErrorKind::PermissionDenied => ERROR_ACCESS_DENIED,
        io::ErrorKind::AlreadyExists => ERROR_ALREADY_EXISTS,
        io::ErrorKind::InvalidInput => ERROR_INVALID_PARAMETER,
        io::ErrorKind::OutOfMemory => ERROR_NOT_ENOUGH_MEMORY,
        io::ErrorKind::Unsupported => ERROR_NOT_SUPPORTED,
        _ => ERROR_IO_DEVICE,
    }
}

/// The symbolic name of a code this crate produces (`ERROR_DIR_NOT_EMPTY`), if it has one.
pub fn name(code: u32) -> Option<&'static str> {
    NAMES.iter().find(|(c, _)| *c == code).map(|(_, n)| *n)
}

/// A code for people: `ERROR_DIR_NOT_EMPTY (145)`, `errno 61 (0x2000003D)`, or `0x000004D5`.
pub fn describe(code: u32) -> String {
    if let Some(n) = name(code) {
        format!("{n} ({code})")
    } else if code & CUSTOMER_ERRNO_FLAG != 0 && code & 0xC000_0000 == 0 {
        let errno = (code & !CUSTOMER_ERRNO_FLAG) as i32;
        format!(
            "errno {errno} ({}) [0x{code:08X}]",
            io::Error::from_raw_os_error(errno)
        )
    } else {
        format!("Win32 error {code} (0x{code:08X})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_codes() {
        assert_eq!(from_errno(libc::ENOENT), 2);
        assert_eq!(from_errno(libc::ENOTDIR), 3);
        assert_eq!(from_errno(libc::EACCES), 5);
        assert_eq!(from_errno(libc::EXDEV), 17);
        assert_eq!(from_errno(libc::EOPNOTSUPP), 50);
        assert_eq!(from_errno(libc::ENOTSUP), 50);
        assert_eq!(from_errno(libc::ENOTEMPTY), 145);
        assert_eq!(from_errno(libc::EROFS), 19);
        assert_eq!(from_errno(libc::ENOSPC), 112);
    }

    #[test]
    fn unmapped_errno_keeps_its_number_under_the_customer_bit() {
        let code = from_errno(libc::ENODATA);
        assert_eq!(code, 0x2000_0000 | libc::ENODATA as u32);
        assert!(describe(code).starts_with(&format!("errno {}", libc::ENODATA)));
        assert_eq!(describe(145), "ERROR_DIR_NOT_EMPTY (145)");
    }

    #[test]
    fn every_named_code_is_unique() {
        for (i, (c, _)) in NAMES.iter().enumerate() {
            assert!(NAMES[i + 1..].iter().all(|(d, _)| d != c), "duplicate {c}");
        }
    }
}
