//! SG_IO on a Linux SCSI generic node (`/dev/sgN`), and finding the sg node of a tape or
//! changer device through sysfs.
//!
//! The ioctl goes through the [`SgIoctl`] seam: [`SgFile`] issues the real one, tests
//! implement it to answer each `sg_io_hdr` as a device would (scripted), so everything
//! around the ioctl — building the header, reading status, sense, residue, host and
//! driver status — runs in tests on machines without SCSI devices.

use std::ffi::c_void;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::transport::{Data, Lost, Reply, Transport};

/// `SG_IO` (`<scsi/sg.h>`).
pub const SG_IO: u64 = 0x2285;
const SG_DXFER_NONE: i32 = -1;
const SG_DXFER_TO_DEV: i32 = -2;
const SG_DXFER_FROM_DEV: i32 = -3;
const SENSE_MAX: usize = 252;

/// `struct sg_io_hdr` (`<scsi/sg.h>`). Only this module builds one, with pointers to
/// buffers that live for the ioctl; the accessors give them out as slices.
#[repr(C)]
pub struct SgIoHdr {
    interface_id: i32,
    dxfer_direction: i32,
    cmd_len: u8,
    mx_sb_len: u8,
    iovec_count: u16,
    dxfer_len: u32,
    dxferp: *mut c_void,
    cmdp: *mut u8,
    sbp: *mut u8,
    timeout: u32,
    flags: u32,
    pack_id: i32,
    usr_ptr: *mut c_void,
    status: u8,
    masked_status: u8,
    msg_status: u8,
    sb_len_wr: u8,
    host_status: u16,
    driver_status: u16,
    resid: i32,
    duration: u32,
    info: u32,
}

impl SgIoHdr {
    /// The CDB.
    pub fn cdb(&self) -> &[u8] {
        // SAFETY: cmdp points to cmd_len bytes owned by the caller of `execute` for the
        // whole life of this header (see `SgTransport::execute`).
        unsafe { std::slice::from_raw_parts(self.cmdp, usize::from(self.cmd_len)) }
    }

    /// The data going to the device (`None` when the command reads or has no data).
    pub fn data_out(&self) -> Option<&[u8]> {
        (self.dxfer_direction == SG_DXFER_TO_DEV).then(|| {
            // SAFETY: dxferp points to dxfer_len bytes that outlive the header.
            unsafe { std::slice::from_raw_parts(self.dxferp as *const u8, self.dxfer_len as usize) }
        })
    }

    /// The buffer for data from the device (`None` unless the command reads).
    pub fn data_in(&mut self) -> Option<&mut [u8]> {
        (self.dxfer_direction == SG_DXFER_FROM_DEV).then(|| {
            // SAFETY: dxferp points to dxfer_len writable bytes that outlive the header,
            // borrowed mutably by `execute` for its duration.
            unsafe {
                std::slice::from_raw_parts_mut(self.dxferp as *mut u8, self.dxfer_len as usize)
            }
        })
    }

    /// The timeout the command was given, in milliseconds.
    pub fn timeout_ms(&self) -> u32 {
        self.timeout
    }

    /// Completes the command as a device would: status byte, residue, sense data.
    pub fn complete(&mut self, status: u8, resid: i32, sense: &[u8]) {
        self.status = status;
        self.masked_status = (status >> 1) & 0x7f;
        self.resid = resid;
        let n = sense.len().min(usize::from(self.mx_sb_len));
        // SAFETY: sbp points to mx_sb_len writable bytes that outlive the header.
        let sb = unsafe { std::slice::from_raw_parts_mut(self.sbp, usize::from(self.mx_sb_len)) };
        sb[..n].copy_from_slice(&sense[..n]);
        self.sb_len_wr = n as u8;
        if n > 0 {
            self.driver_status = DRIVER_SENSE;
        }
    }

    /// Sets the host adapter and driver status (a failed transport).
    pub fn set_host_driver(&mut self, host: u16, driver: u16) {
        self.host_status = host;
        self.driver_status = driver;
    }
}

const DRIVER_SENSE: u16 = 0x08;

/// The names of the Linux host byte values (`DID_*`).
fn host_status_name(h: u16) -> &'static str {
    match h {
        0x01 => "DID_NO_CONNECT (the device is gone)",
        0x02 => "DID_BUS_BUSY",
        0x03 => "DID_TIME_OUT (the command timed out)",
        0x04 => "DID_BAD_TARGET",
        0x05 => "DID_ABORT",
        0x06 => "DID_PARITY",
        0x07 => "DID_ERROR (internal error of the host adapter)",
        0x08 => "DID_RESET (the bus was reset)",
        0x09 => "DID_BAD_INTR",
        0x0e => "DID_TRANSPORT_DISRUPTED",
        0x0f => "DID_TRANSPORT_FAILFAST",
        _ => "host adapter error",
    }
}

/// The SG_IO ioctl on an open sg node.
pub trait SgIoctl: Send {
    fn describe(&self) -> String;
    /// Issues SG_IO with `hdr`, which it fills in.
    fn sg_io(&mut self, hdr: &mut SgIoHdr) -> std::io::Result<()>;
}

/// An sg node opened for SG_IO.
pub struct SgFile {
    file: std::fs::File,
    path: PathBuf,
}

impl SgFile {
    pub fn open(path: &Path) -> std::io::Result<SgFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        Ok(SgFile {
            file,
            path: path.to_path_buf(),
        })
    }
}

impl SgIoctl for SgFile {
    fn describe(&self) -> String {
        self.path.display().to_string()
    }

    fn sg_io(&mut self, hdr: &mut SgIoHdr) -> std::io::Result<()> {
        // SAFETY: SG_IO takes a struct sg_io_hdr whose pointers are valid for the call.
        let r = unsafe { libc::ioctl(self.file.as_raw_fd(), SG_IO as _, hdr as *mut SgIoHdr) };
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

/// The SG_IO transport over any [`SgIoctl`].
pub struct SgTransport<I: SgIoctl> {
    io: I,
}

impl<I: SgIoctl> SgTransport<I> {
    pub fn new(io: I) -> Self {
        SgTransport { io }
    }

    pub fn ioctl(&mut self) -> &mut I {
        &mut self.io
    }
}

impl<I: SgIoctl> Transport for SgTransport<I> {
    fn describe(&self) -> String {
        self.io.describe()
    }

    fn execute(&mut self, cdb: &[u8], data: Data<'_>, timeout: Duration) -> Result<Reply, Lost> {
        let mut cmd = cdb.to_vec();
        let mut sense = [0u8; SENSE_MAX];
        let (dir, ptr, len): (i32, *mut c_void, usize) = match data {
            Data::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
            Data::In(b) => (SG_DXFER_FROM_DEV, b.as_mut_ptr().cast(), b.len()),
            Data::Out(b) => (SG_DXFER_TO_DEV, b.as_ptr() as *mut c_void, b.len()),
        };
        let mut hdr = SgIoHdr {
            interface_id: i32::from(b'S'),
            dxfer_direction: dir,
            cmd_len: u8::try_from(cmd.len())
                .map_err(|_| Lost("CDB longer than 255 bytes".into()))?,
            mx_sb_len: SENSE_MAX as u8,
            iovec_count: 0,
            dxfer_len: u32::try_from(len)
                .map_err(|_| Lost(format!("a transfer of {len} bytes is too long for SG_IO")))?,
            dxferp: ptr,
            cmdp: cmd.as_mut_ptr(),
            sbp: sense.as_mut_ptr(),
            timeout: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            flags: 0,
            pack_id: 0,
            usr_ptr: std::ptr::null_mut(),
            status: 0,
            masked_status: 0,
            msg_status: 0,
            sb_len_wr: 0,
            host_status: 0,
            driver_status: 0,
            resid: 0,
            duration: 0,
            info: 0,
        };
        self.io
            .sg_io(&mut hdr)
            .map_err(|e| Lost(format!("SG_IO on {}: {e}", self.io.describe())))?;
        if hdr.host_status != 0 {
            return Err(Lost(format!(
                "host status {:#06x}: {}",
                hdr.host_status,
                host_status_name(hdr.host_status)
            )));
        }
        let driver = hdr.driver_status & 0x0f;
        if driver != 0 && driver != DRIVER_SENSE {
            return Err(Lost(format!(
                "driver status {:#06x}{}",
                hdr.driver_status,
                if driver == 0x06 { " (timed out)" } else { "" }
            )));
        }
        let sb = usize::from(hdr.sb_len_wr).min(SENSE_MAX);
        Ok(Reply {
            status: hdr.status,
            residual: usize::try_from(hdr.resid.max(0)).unwrap_or(0).min(len),
            sense: sense[..sb].to_vec(),
        })
    }
}

/// The sg node (`sgN`) of the character device `major:minor` (a st tape mode device, a
/// changer, or an sg node itself), read from `sysfs` (normally `/sys`):
/// `/sys/dev/char/MAJ:MIN/device/scsi_generic/sgN`.
pub fn sg_name_for(major: u32, minor: u32, sysfs: &Path) -> Result<String, String> {
    const SCSI_GENERIC_MAJOR: u32 = 21;
    if major == SCSI_GENERIC_MAJOR {
        return Ok(format!("sg{minor}"));
    }
    let dir = sysfs
        .join("dev/char")
        .join(format!("{major}:{minor}"))
        .join("device/scsi_generic");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| {
            format!(
                "{}: {e}; the device has no SCSI generic node (is the sg module loaded?)",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sg"))
        .collect();
    names.sort();
    names
        .into_iter()
        .next()
        .ok_or_else(|| format!("{} is empty: no sg node for {major}:{minor}", dir.display()))
}

/// Opens the sg node of `device` (`/dev/nst0`, `/dev/sch0`, `/dev/sg3`, or a symlink to
/// one such as `/dev/tape/by-id/…`).
pub fn open_sg_for(device: &Path) -> Result<SgTransport<SgFile>, String> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(device).map_err(|e| format!("{}: {e}", device.display()))?;
    if !meta.file_type().is_char_device() {
        return Err(format!("{} is not a character device", device.display()));
    }
    let rdev = meta.rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let name = sg_name_for(major, minor, Path::new("/sys"))?;
    let node = Path::new("/dev").join(&name);
    let file = SgFile::open(&node).map_err(|e| format!("{}: {e}", node.display()))?;
    Ok(SgTransport::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that answers one command: checks the CDB, fills data in, completes.
    struct OneShot {
        want_cdb: Vec<u8>,
        data_in: Vec<u8>,
        status: u8,
        resid: i32,
        sense: Vec<u8>,
        host: u16,
        driver: u16,
        saw_out: Option<Vec<u8>>,
    }

    impl SgIoctl for OneShot {
        fn describe(&self) -> String {
            "/dev/sg9".into()
        }
        fn sg_io(&mut self, hdr: &mut SgIoHdr) -> std::io::Result<()> {
            assert_eq!(hdr.cdb(), &self.want_cdb[..]);
            assert_eq!(hdr.interface_id, i32::from(b'S'));
            self.saw_out = hdr.data_out().map(<[u8]>::to_vec);
            if let Some(buf) = hdr.data_in() {
                let n = self.data_in.len().min(buf.len());
                buf[..n].copy_from_slice(&self.data_in[..n]);
            }
            hdr.complete(self.status, self.resid, &self.sense);
            if self.host != 0 || self.driver != 0 {
                hdr.set_host_driver(self.host, self.driver);
            }
            Ok(())
        }
    }

    fn one(cdb: &[u8]) -> OneShot {
        OneShot {
            want_cdb: cdb.to_vec(),
            data_in: vec![],
            status: 0,
            resid: 0,
            sense: vec![],
            host: 0,
            driver: 0,
            saw_out: None,
        }
    }

    #[test]
    fn data_in_with_residue() {
        let mut io = one(&[0x08, 0, 0, 1, 0, 0]);
        io.data_in = vec![7; 100];
        io.resid = 156;
        let mut t = SgTransport::new(io);
        let mut buf = vec![0u8; 256];
        let r = t
            .execute(
                &[0x08, 0, 0, 1, 0, 0],
                Data::In(&mut buf),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(r.status, 0);
        assert_eq!(r.residual, 156);
        assert!(buf[..100].iter().all(|&b| b == 7));
    }

    #[test]
    fn data_out_reaches_the_device_and_sense_comes_back() {
        let mut io = one(&[0x0a, 0, 0, 0, 4, 0]);
        io.status = 0x02;
        io.sense = vec![
            0x70, 0, 0x40, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0,
        ];
        let mut t = SgTransport::new(io);
        let r = t
            .execute(
                &[0x0a, 0, 0, 0, 4, 0],
                Data::Out(b"abcd"),
                Duration::from_secs(5),
            )
            .unwrap();
        assert_eq!(r.status, 0x02);
        assert_eq!(r.sense.len(), 18);
        assert_eq!(t.ioctl().saw_out.as_deref(), Some(&b"abcd"[..]));
    }

    #[test]
    fn host_and_driver_failures_are_transport_errors() {
        let mut io = one(&[0, 0, 0, 0, 0, 0]);
        io.host = 0x01;
        let e = SgTransport::new(io)
            .execute(&[0; 6], Data::None, Duration::from_secs(1))
            .unwrap_err();
        assert!(e.0.contains("DID_NO_CONNECT"), "{e}");
        let mut io = one(&[0, 0, 0, 0, 0, 0]);
        io.driver = 0x06;
        let e = SgTransport::new(io)
            .execute(&[0; 6], Data::None, Duration::from_secs(1))
            .unwrap_err();
        assert!(e.0.contains("timed out"), "{e}");
    }

    #[test]
    fn sg_node_through_sysfs() {
        let sys = tempfile::tempdir().unwrap();
        let dir = sys.path().join("dev/char/9:128/device/scsi_generic/sg3");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(sg_name_for(9, 128, sys.path()).unwrap(), "sg3");
        assert_eq!(sg_name_for(21, 4, sys.path()).unwrap(), "sg4");
        let e = sg_name_for(9, 1, sys.path()).unwrap_err();
        assert!(e.contains("no SCSI generic node"), "{e}");
    }
}
