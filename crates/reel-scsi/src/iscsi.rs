//! User-space iSCSI through libiscsi, loaded at run time (`dlopen` of `libiscsi.so.7`), so
//! that a build of reel needs no system library beyond libc; when the library is missing
//! the error names the Debian package that provides it.
//!
//! Targets are written `iscsi://HOST[:PORT]/TARGET-IQN/LUN`. CHAP credentials never come
//! from the command line (where other users see them): see [`Chap`].

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::transport::{Data, Lost, Reply, Transport};

/// The Debian package with the library.
pub const DEBIAN_PACKAGE: &str = "libiscsi7";
/// The library's soname.
pub const LIBRARY: &str = "libiscsi.so.7";
const DEFAULT_PORT: u16 = 3260;

/// A parsed `iscsi://HOST[:PORT]/TARGET-IQN/LUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IscsiUrl {
    pub host: String,
    pub port: u16,
    pub target: String,
    pub lun: u16,
}

impl IscsiUrl {
    pub fn parse(url: &str) -> Result<IscsiUrl, String> {
        let bad = |why: &str| format!("{url}: {why} (expected iscsi://HOST[:PORT]/TARGET-IQN/LUN)");
        let rest = url
            .strip_prefix("iscsi://")
            .ok_or_else(|| bad("not an iscsi:// URL"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no target"))?;
        if authority.contains('@') {
            return Err(format!(
                "{url}: credentials in the URL would show on the command line; put them in \
                 REEL_ISCSI_CHAP_USER and REEL_ISCSI_CHAP_PASSWORD or in a CHAP file \
                 (REEL_ISCSI_CHAP_FILE)"
            ));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in the host"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after the IPv6 address")),
            };
            (h.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("bad port"))?,
            None => DEFAULT_PORT,
        };
        let (target, lun) = path.rsplit_once('/').ok_or_else(|| bad("no LUN"))?;
        if target.is_empty() || target.contains('/') {
            return Err(bad("bad target name"));
        }
        let lun = lun
            .parse::<u16>()
            .ok()
            .filter(|l| *l < 0x4000)
            .ok_or_else(|| bad("the LUN must be a number below 16384"))?;
        Ok(IscsiUrl {
            host,
            port,
            target: target.to_string(),
            lun,
        })
    }

    /// `HOST:PORT` (IPv6 in brackets), as libiscsi takes a portal.
    pub fn portal(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for IscsiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "iscsi://{}/{}/{}", self.portal(), self.target, self.lun)
    }
}

/// CHAP credentials: from `REEL_ISCSI_CHAP_USER` and `REEL_ISCSI_CHAP_PASSWORD`, or from a
/// TOML file (`user`, `password`, and for mutual CHAP `target_user`, `target_password`)
/// named by `REEL_ISCSI_CHAP_FILE` or found at the default path, which only its owner may
/// read.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chap {
    pub user: String,
    pub password: String,
    #[serde(default)]
    pub target_user: Option<String>,
    #[serde(default)]
    pub target_password: Option<String>,
}

impl std::fmt::Debug for Chap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Chap {{ user: {:?}, password: <hidden> }}", self.user)
    }
}

impl Chap {
    /// The credentials for this run, if any. `default_file` is read when it exists and no
    /// variable names another.
    pub fn from_environment(default_file: Option<&Path>) -> Result<Option<Chap>, String> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        if let (Some(user), Some(password)) =
            (var("REEL_ISCSI_CHAP_USER"), var("REEL_ISCSI_CHAP_PASSWORD"))
        {
            return Ok(Some(Chap {
                user,
                password,
                target_user: None,
                target_password: None,
            }));
        }
        if var("REEL_ISCSI_CHAP_USER").is_some() || var("REEL_ISCSI_CHAP_PASSWORD").is_some() {
            return Err("set both REEL_ISCSI_CHAP_USER and REEL_ISCSI_CHAP_PASSWORD".into());
        }
        let file = match var("REEL_ISCSI_CHAP_FILE") {
            Some(f) => PathBuf::from(f),
            None => match default_file {
                Some(f) if f.exists() => f.to_path_buf(),
                _ => return Ok(None),
            },
        };
        Self::from_file(&file).map(Some)
    }

    /// Reads a CHAP file, refusing one that others than its owner can read.
    pub fn from_file(path: &Path) -> Result<Chap, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("CHAP file {}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "CHAP file {} can be read by others (mode {:o}); chmod 600 it",
                path.display(),
                meta.permissions().mode() & 0o777
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("CHAP file {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            format!(
                "CHAP file {}: {}",
                path.display(),
                e.to_string().trim().replace('\n', " ")
            )
        })
    }
}

type Ctx = *mut c_void;
type Task = *mut c_void;

#[repr(C)]
struct IscsiData {
    size: usize,
    data: *mut u8,
}

/// The libiscsi functions reel calls, resolved once.
struct Api {
    _lib: libloading::Library,
    create_context: unsafe extern "C" fn(*const c_char) -> Ctx,
    destroy_context: unsafe extern "C" fn(Ctx) -> c_int,
    set_targetname: unsafe extern "C" fn(Ctx, *const c_char) -> c_int,
    set_session_type: unsafe extern "C" fn(Ctx, c_int) -> c_int,
    set_header_digest: unsafe extern "C" fn(Ctx, c_int) -> c_int,
    set_initiator_username_pwd: unsafe extern "C" fn(Ctx, *const c_char, *const c_char) -> c_int,
    set_target_username_pwd: unsafe extern "C" fn(Ctx, *const c_char, *const c_char) -> c_int,
    full_connect_sync: unsafe extern "C" fn(Ctx, *const c_char, c_int) -> c_int,
    logout_sync: unsafe extern "C" fn(Ctx) -> c_int,
    get_error: unsafe extern "C" fn(Ctx) -> *const c_char,
    set_timeout: unsafe extern "C" fn(Ctx, c_int) -> c_int,
    set_noautoreconnect: unsafe extern "C" fn(Ctx, c_int),
    scsi_command_sync: unsafe extern "C" fn(Ctx, c_int, Task, *mut IscsiData) -> Task,
    create_task: unsafe extern "C" fn(c_int, *mut u8, c_int, c_int) -> Task,
    free_task: unsafe extern "C" fn(Task),
    add_data_in_buffer: unsafe extern "C" fn(Task, c_int, *mut u8) -> c_int,
    /// Where `struct scsi_data datain` lies in `struct scsi_task` (see [`datain_offset`]).
    datain: usize,
}

// `struct scsi_task` (scsi-lowlevel.h), the fields before `sense`, which every libiscsi
// release lays out alike on LP64: status, cdb_size, xfer_dir, expxferlen, cdb[16],
// residual_status, residual.
const TASK_STATUS: usize = 0;
const TASK_RESIDUAL_STATUS: usize = 32;
const TASK_RESIDUAL: usize = 40;
const TASK_SENSE: usize = 48;
const RESIDUAL_UNDERFLOW: c_int = 1;
const SESSION_NORMAL: c_int = 2;
const HEADER_DIGEST_NONE_CRC32C: c_int = 1;
const XFER_NONE: c_int = 0;
const XFER_READ: c_int = 1;
const XFER_WRITE: c_int = 2;

/// Where `datain` (which holds the sense data of a CHECK CONDITION) lies in a task.
///
/// `struct scsi_sense` grew between libiscsi 1.19 (16 bytes on LP64) and 1.20 (24: an
/// 8-byte INFORMATION field at byte 16), under the same soname, which moves `datain`. The
/// loaded library is asked which it is: its own `scsi_parse_sense_data` decodes a
/// fixed-format sense with a VALID information field into a zeroed buffer, and 1.20 and
/// later store the field at byte 16, where 1.19 writes nothing.
unsafe fn datain_offset(
    parse: unsafe extern "C" fn(*mut c_void, *const u8),
) -> Result<usize, String> {
    let sb: [u8; 18] = [
        0xf0, 0, 0x05, 0x11, 0x22, 0x33, 0x44, 0x0a, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0,
    ];
    let mut buf = [0u64; 8];
    // SAFETY: the buffer is larger than either layout of struct scsi_sense; the function
    // reads 18 bytes of sb.
    unsafe { parse(buf.as_mut_ptr().cast(), sb.as_ptr()) };
    let bytes: Vec<u8> = buf.iter().flat_map(|w| w.to_ne_bytes()).collect();
    if bytes[0] != 0x70 {
        return Err("libiscsi's scsi_parse_sense_data did not decode a test sense".into());
    }
    if buf[2] == 0x1122_3344 {
        Ok(TASK_SENSE + 24)
    } else if bytes[16..].iter().all(|&b| b == 0) {
        Ok(TASK_SENSE + 16)
    } else {
        Err("the loaded libiscsi has a struct scsi_sense reel does not know".into())
    }
}

fn missing_library(detail: &str) -> String {
    format!(
        "iSCSI needs libiscsi ({LIBRARY}), which cannot be loaded: {detail}; install the \
         Debian package {DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE})"
    )
}

impl Api {
    fn load(path: &str) -> Result<Api, String> {
        if cfg!(not(all(target_os = "linux", target_pointer_width = "64"))) {
            return Err("iSCSI is supported on 64-bit Linux only".into());
        }
        // SAFETY: loading libiscsi runs its (trivial) initialisers only.
        let lib = unsafe { libloading::Library::new(path) }
            .map_err(|e| missing_library(&e.to_string()))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the type is the function's prototype in iscsi.h /
                // scsi-lowlevel.h of libiscsi 1.19 and later.
                *unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| missing_library(&format!("{} has no {}: {e}", path, $name)))?
            };
        }
        let parse: unsafe extern "C" fn(*mut c_void, *const u8) = sym!("scsi_parse_sense_data");
        // SAFETY: parse is libiscsi's scsi_parse_sense_data.
        let datain = unsafe { datain_offset(parse) }?;
        Ok(Api {
            create_context: sym!("iscsi_create_context"),
            destroy_context: sym!("iscsi_destroy_context"),
            set_targetname: sym!("iscsi_set_targetname"),
            set_session_type: sym!("iscsi_set_session_type"),
            set_header_digest: sym!("iscsi_set_header_digest"),
            set_initiator_username_pwd: sym!("iscsi_set_initiator_username_pwd"),
            set_target_username_pwd: sym!("iscsi_set_target_username_pwd"),
            full_connect_sync: sym!("iscsi_full_connect_sync"),
            logout_sync: sym!("iscsi_logout_sync"),
            get_error: sym!("iscsi_get_error"),
            set_timeout: sym!("iscsi_set_timeout"),
            set_noautoreconnect: sym!("iscsi_set_noautoreconnect"),
            scsi_command_sync: sym!("iscsi_scsi_command_sync"),
            create_task: sym!("scsi_create_task"),
            free_task: sym!("scsi_free_scsi_task"),
            add_data_in_buffer: sym!("scsi_task_add_data_in_buffer"),
            datain,
            _lib: lib,
        })
    }

    /// The process's libiscsi: `REEL_LIBISCSI` (a path) or the system's `libiscsi.so.7`.
    fn get() -> Result<&'static Api, String> {
        static API: OnceLock<Result<Api, String>> = OnceLock::new();
        API.get_or_init(|| {
            let path = std::env::var("REEL_LIBISCSI").unwrap_or_else(|_| LIBRARY.to_string());
            Api::load(&path)
        })
        .as_ref()
        .map_err(Clone::clone)
    }

    fn error(&self, ctx: Ctx) -> String {
        // SAFETY: ctx is a live context; the string is owned by it and copied at once.
        let p = unsafe { (self.get_error)(ctx) };
        if p.is_null() {
            return "unknown error".into();
        }
        // SAFETY: libiscsi returns a NUL-terminated string.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Whether libiscsi can be loaded here (`Err` says what to install).
pub fn library_available() -> Result<(), String> {
    Api::get().map(drop)
}

/// Tries to load libiscsi from `path` (not cached): for checking the message a missing
/// library gives.
pub fn try_load(path: &str) -> Result<(), String> {
    Api::load(path).map(drop)
}

/// The initiator name reel logs in with: `REEL_ISCSI_INITIATOR`, else one made from the
/// host name.
pub fn initiator_name() -> String {
    if let Some(n) = std::env::var("REEL_ISCSI_INITIATOR")
        .ok()
        .filter(|n| !n.is_empty())
    {
        return n;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!(
        "iqn.2026-01.invalid.reel:{}",
        if host.is_empty() { "host" } else { &host }
    )
}

/// A logged-in session to one LUN.
pub struct IscsiTransport {
    api: &'static Api,
    ctx: Ctx,
    url: IscsiUrl,
}

// SAFETY: the context is used by one thread at a time (every use takes &mut self or owns
// the transport); libiscsi contexts have no thread affinity.
unsafe impl Send for IscsiTransport {}

impl IscsiTransport {
    /// Logs in to `url` with `chap` credentials, if any.
    pub fn connect(url: &IscsiUrl, chap: Option<&Chap>) -> Result<IscsiTransport, String> {
        let api = Api::get()?;
        let cstr = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
        let initiator = cstr(&initiator_name())?;
        // SAFETY: a valid C string; NULL on failure.
        let ctx = unsafe { (api.create_context)(initiator.as_ptr()) };
        if ctx.is_null() {
            return Err("libiscsi could not create a context".into());
        }
        let t = IscsiTransport {
            api,
            ctx,
            url: url.clone(),
        };
        let target = cstr(&url.target)?;
        let portal = cstr(&url.portal())?;
        // SAFETY: ctx is live; the strings outlive the calls (libiscsi copies them).
        unsafe {
            (api.set_targetname)(ctx, target.as_ptr());
            (api.set_session_type)(ctx, SESSION_NORMAL);
            (api.set_header_digest)(ctx, HEADER_DIGEST_NONE_CRC32C);
            // A lost connection fails the command instead of being retried forever: a
            // tape's position is lost with it.
            (api.set_noautoreconnect)(ctx, 1);
            (api.set_timeout)(ctx, 30);
        }
        if let Some(chap) = chap {
            let (u, p) = (cstr(&chap.user)?, cstr(&chap.password)?);
            // SAFETY: as above.
            unsafe { (api.set_initiator_username_pwd)(ctx, u.as_ptr(), p.as_ptr()) };
            if let (Some(tu), Some(tp)) = (&chap.target_user, &chap.target_password) {
                let (u, p) = (cstr(tu)?, cstr(tp)?);
                // SAFETY: as above.
                unsafe { (api.set_target_username_pwd)(ctx, u.as_ptr(), p.as_ptr()) };
            }
        }
        // SAFETY: ctx is live, portal a C string.
        let r = unsafe { (api.full_connect_sync)(ctx, portal.as_ptr(), c_int::from(url.lun)) };
        if r != 0 {
            return Err(format!("cannot log in to {url}: {}", api.error(ctx)));
        }
        Ok(t)
    }

    pub fn url(&self) -> &IscsiUrl {
        &self.url
    }
}

impl Drop for IscsiTransport {
    fn drop(&mut self) {
        // SAFETY: ctx is live and not used again.
        unsafe {
            (self.api.set_timeout)(self.ctx, 5);
            (self.api.logout_sync)(self.ctx);
            (self.api.destroy_context)(self.ctx);
        }
    }
}

/// Reads a field of `struct scsi_task` at `offset`.
unsafe fn field<T: Copy>(task: Task, offset: usize) -> T {
    // SAFETY: the caller names an offset of a field of type T in a live task.
    unsafe { std::ptr::read_unaligned(task.cast::<u8>().add(offset).cast::<T>()) }
}

impl Transport for IscsiTransport {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn execute(&mut self, cdb: &[u8], data: Data<'_>, timeout: Duration) -> Result<Reply, Lost> {
        let api = self.api;
        let mut cdb = cdb.to_vec();
        let len = data.len();
        let len_c = c_int::try_from(len)
            .map_err(|_| Lost(format!("a transfer of {len} bytes is too long")))?;
        let dir = match data {
            Data::None => XFER_NONE,
            Data::In(_) => XFER_READ,
            Data::Out(_) => XFER_WRITE,
        };
        // SAFETY: the CDB buffer is copied into the task.
        let task = unsafe { (api.create_task)(cdb.len() as c_int, cdb.as_mut_ptr(), dir, len_c) };
        if task.is_null() {
            return Err(Lost("libiscsi could not allocate a task".into()));
        }
        let secs = c_int::try_from(timeout.as_secs().max(1)).unwrap_or(c_int::MAX);
        let mut out = IscsiData {
            size: 0,
            data: std::ptr::null_mut(),
        };
        let out_ptr: *mut IscsiData = match data {
            Data::In(buf) => {
                // SAFETY: buf outlives the synchronous command below.
                unsafe { (api.add_data_in_buffer)(task, len_c, buf.as_mut_ptr()) };
                std::ptr::null_mut()
            }
            Data::Out(buf) => {
                out.size = buf.len();
                out.data = buf.as_ptr() as *mut u8;
                &mut out
            }
            Data::None => std::ptr::null_mut(),
        };
        // SAFETY: ctx and task are live; the data buffers outlive the call, which returns
        // when the command completed, failed or timed out.
        let done = unsafe {
            (api.set_timeout)(self.ctx, secs);
            (api.scsi_command_sync)(self.ctx, c_int::from(self.url.lun), task, out_ptr)
        };
        let result = if done.is_null() {
            Err(Lost(api.error(self.ctx)))
        } else {
            // SAFETY: offsets of fields of the live task (see the TASK_* constants and
            // datain_offset).
            unsafe { self.reply(task, len) }
        };
        // SAFETY: the task is not used again.
        unsafe { (api.free_task)(task) };
        result
    }
}

impl IscsiTransport {
    unsafe fn reply(&self, task: Task, len: usize) -> Result<Reply, Lost> {
        // SAFETY: the caller passes a completed, live task.
        let status: c_int = unsafe { field(task, TASK_STATUS) };
        if !(0..=0xff).contains(&status) {
            let why = match status as u32 {
                0x0f00_0000 => "the command was cancelled".to_string(),
                0x0f00_0002 => "the command timed out".to_string(),
                _ => self.api.error(self.ctx),
            };
            return Err(Lost(why));
        }
        let (residual_status, residual): (c_int, usize) = unsafe {
            (
                field(task, TASK_RESIDUAL_STATUS),
                field(task, TASK_RESIDUAL),
            )
        };
        let residual = if residual_status == RESIDUAL_UNDERFLOW {
            residual.min(len)
        } else {
            0
        };
        let mut sense = Vec::new();
        if status == 0x02 {
            let size: c_int = unsafe { field(task, self.api.datain) };
            let ptr: *const u8 = unsafe { field(task, self.api.datain + 8) };
            if !ptr.is_null() && size >= 2 {
                // SAFETY: libiscsi allocated `size` bytes at ptr: a 2-byte SenseLength,
                // then the sense data (RFC 7143 11.4.7.2).
                let d = unsafe { std::slice::from_raw_parts(ptr, size as usize) };
                let n = usize::from(u16::from_be_bytes([d[0], d[1]])).min(d.len() - 2);
                sense = d[2..2 + n].to_vec();
            }
        }
        Ok(Reply {
            status: status as u8,
            residual,
            sense,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = IscsiUrl::parse("iscsi://127.0.0.1:3261/iqn.2024-01.test.reel:vtl/2").unwrap();
        assert_eq!(u.host, "127.0.0.1");
        assert_eq!(u.port, 3261);
        assert_eq!(u.target, "iqn.2024-01.test.reel:vtl");
        assert_eq!(u.lun, 2);
        assert_eq!(u.portal(), "127.0.0.1:3261");
        assert_eq!(
            u.to_string(),
            "iscsi://127.0.0.1:3261/iqn.2024-01.test.reel:vtl/2"
        );
        let u = IscsiUrl::parse("iscsi://[::1]/iqn.x:y/0").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", 3260));
        assert_eq!(u.portal(), "[::1]:3260");
        for bad in [
            "iscsi://h/iqn",
            "iscsi:///iqn/1",
            "iscsi://h:0/iqn/1",
            "iscsi://h/iqn/x",
            "iscsi://h/iqn/99999",
            "iscsi://h/a/b/1",
            "http://h/iqn/1",
        ] {
            assert!(IscsiUrl::parse(bad).is_err(), "{bad}");
        }
        let e = IscsiUrl::parse("iscsi://u%p@h/iqn/1").unwrap_err();
        assert!(e.contains("REEL_ISCSI_CHAP_USER"), "{e}");
    }

    #[test]
    fn chap_file_must_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("chap.toml");
        std::fs::write(&f, "user = \"reel\"\npassword = \"s3cret-pass12\"\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Chap::from_file(&f).unwrap_err();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let c = Chap::from_file(&f).unwrap();
        assert_eq!(c.user, "reel");
        assert!(!format!("{c:?}").contains("s3cret"));
        std::fs::write(&f, "user = \"reel\"\n").unwrap();
        assert!(Chap::from_file(&f).is_err());
    }

    #[test]
    fn a_missing_library_names_the_package() {
        let e = try_load("/nonexistent/libiscsi.so.7").unwrap_err();
        assert!(e.contains("apt-get install libiscsi7"), "{e}");
    }
}
