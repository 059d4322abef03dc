//! `reel sis watch`: removes a common-store file promptly when its last link goes.
//!
//! A fanotify group marks the whole filesystem (`FAN_MARK_FILESYSTEM`, which needs
//! CAP_SYS_ADMIN) for deletions, renames and close-after-write, reported with the parent
//! directory's file handle and the entry's name (`FAN_REPORT_DFID_NAME`). Each batch of events
//! is turned into paths (`open_by_handle_at` on the directory handle), and those paths are
//! re-checked against the index: a deleted or written link is forgotten, a renamed one is
//! re-recorded under its new name, and a common-store file left without links is removed.
//! When a directory cannot be resolved any more (it was deleted too) or the queue
//! overflowed, every recorded link is re-checked for presence instead.

use std::collections::BTreeSet;
use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;

use crate::error::{Result, SisError, corrupt};
use crate::maintenance::{StoreFileNote, remove_if_unshared};
use crate::reparse::ContentHash;
use crate::store::{CommonStore, LinkState, MapCache};
use crate::sys;

const FANOTIFY_METADATA_VERSION: u8 = 3;
const METADATA_LEN: usize = 24;
const INFO_TYPE_FID: u8 = 1;
const INFO_TYPE_DFID_NAME: u8 = 2;
const INFO_TYPE_DFID: u8 = 3;
const MAX_HANDLE_SZ: usize = 128;

/// What the watcher did, as it happens.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchEvent {
    /// A common-store file was removed: its last link went.
    Removed { name: String, size: u64 },
    /// A recorded link is no longer one (deleted, written, replaced).
    Forgot { path: PathBuf, reason: String },
    /// A link appeared under a new name (renamed, restored) and was recorded.
    Recorded {
        path: PathBuf,
        common_store_file: String,
    },
    /// Events were lost or unresolvable; every recorded link was re-checked.
    Rescanned { links: u64 },
}

/// A file handle as fanotify reports it (`struct file_handle`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHandle {
    pub handle_type: i32,
    pub bytes: Vec<u8>,
}

/// One fanotify event in FID mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub mask: u64,
    /// A file descriptor when the group is not in FID mode (-1 otherwise); the caller closes it.
    pub fd: i32,
    pub dir: Option<FileHandle>,
    pub name: Option<Vec<u8>>,
}

/// Parses a buffer read from a fanotify descriptor; every defect names its byte offset.
pub fn parse_events(buf: &[u8]) -> Result<Vec<RawEvent>> {
    const WHAT: &str = "fanotify event buffer";
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < buf.len() {
        let rest = &buf[at..];
        if rest.len() < METADATA_LEN {
            return Err(corrupt(WHAT, at, "truncated event metadata"));
        }
        let event_len = u32_at(rest, 0) as usize;
        let vers = rest[4];
        let metadata_len = usize::from(u16::from_ne_bytes([rest[6], rest[7]]));
        if vers != FANOTIFY_METADATA_VERSION {
            return Err(corrupt(
                WHAT,
                at + 4,
                format!("metadata version {vers}, 3 expected"),
            ));
        }
        if metadata_len < METADATA_LEN || event_len < metadata_len || event_len > rest.len() {
            return Err(corrupt(
                WHAT,
                at,
                format!("bad lengths (event {event_len}, metadata {metadata_len})"),
            ));
        }
        let mut mask_bytes = [0u8; 8];
        mask_bytes.copy_from_slice(&rest[8..16]);
        let mut ev = RawEvent {
            mask: u64::from_ne_bytes(mask_bytes),
            fd: i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]),
            dir: None,
            name: None,
        };
        let mut info_at = metadata_len;
        while info_at < event_len {
            let rec = &rest[info_at..event_len];
            if rec.len() < 4 {
                return Err(corrupt(WHAT, at + info_at, "truncated info record header"));
            }
            let info_type = rec[0];
            let len = usize::from(u16::from_ne_bytes([rec[2], rec[3]]));
            if len < 4 || len > rec.len() {
                return Err(corrupt(
                    WHAT,
                    at + info_at,
                    format!("info record length {len}"),
                ));
            }
            let body = &rec[4..len];
            if matches!(
                info_type,
                INFO_TYPE_FID | INFO_TYPE_DFID_NAME | INFO_TYPE_DFID
            ) {
                // fsid (8 bytes), then struct file_handle, then (DFID_NAME) a NUL-ended name.
                if body.len() < 16 {
                    return Err(corrupt(WHAT, at + info_at + 4, "truncated file handle"));
                }
                let handle_bytes = u32_at(body, 8) as usize;
                let handle_type = i32::from_ne_bytes([body[12], body[13], body[14], body[15]]);
                let end = 16usize
                    .checked_add(handle_bytes)
                    .filter(|&e| e <= body.len());
                let Some(end) = end.filter(|_| handle_bytes <= MAX_HANDLE_SZ) else {
                    return Err(corrupt(
                        WHAT,
                        at + info_at + 12,
                        format!("handle of {handle_bytes} bytes"),
                    ));
                };
                let handle = FileHandle {
                    handle_type,
                    bytes: body[16..end].to_vec(),
                };
                if info_type == INFO_TYPE_FID {
                    // The object itself; we only use directory handles.
                } else {
                    ev.dir = Some(handle);
                }
                if info_type == INFO_TYPE_DFID_NAME {
                    let tail = &body[end..];
                    let nul = tail.iter().position(|&b| b == 0).ok_or_else(|| {
                        corrupt(WHAT, at + info_at + 4 + end, "name without its NUL")
                    })?;
                    ev.name = Some(tail[..nul].to_vec());
                }
            }
            info_at += len;
        }
        out.push(ev);
        at += event_len;
    }
    Ok(out)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The running watcher of one common store.
pub struct Watcher {
    store: CommonStore,
    fan: File,
    mount_fd: File,
    store_handle: Option<FileHandle>,
    pending: BTreeSet<PathBuf>,
    rescan: bool,
}

impl Watcher {
    /// Starts watching the store's filesystem. Events that happen after this returns are seen.
    pub fn new(store: CommonStore) -> Result<Watcher> {
        let root = store.volume().root().to_path_buf();
        let flags = libc::FAN_CLASS_NOTIF
            | libc::FAN_CLOEXEC
            | libc::FAN_NONBLOCK
            | libc::FAN_REPORT_DFID_NAME;
        // SAFETY: plain system call; the result is checked.
        let fd = unsafe { libc::fanotify_init(flags, (libc::O_RDONLY | libc::O_LARGEFILE) as u32) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) => SisError::Invalid(
                    "`reel sis watch` watches a whole filesystem with fanotify, which needs root \
                     (CAP_SYS_ADMIN); run it as root, or run `reel sis gc` from time to time instead"
                        .into(),
                ),
                _ => SisError::io("start fanotify for", &root, e),
            });
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let fan = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let c_root = CString::new(root.as_os_str().as_bytes())
            .map_err(|_| SisError::Invalid(format!("{} contains a NUL byte", root.display())))?;
        let mask =
            libc::FAN_DELETE | libc::FAN_MOVED_FROM | libc::FAN_MOVED_TO | libc::FAN_CLOSE_WRITE;
        // SAFETY: plain system call with a valid C string; the result is checked.
        let rc = unsafe {
            libc::fanotify_mark(
                fan.as_raw_fd(),
                libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM,
                mask,
                libc::AT_FDCWD,
                c_root.as_ptr(),
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            return Err(SisError::io(
                "watch (fanotify_mark FAN_MARK_FILESYSTEM)",
                &root,
                e,
            ));
        }
        let mount_fd = File::open(&root).map_err(|e| SisError::io("open", &root, e))?;
        let store_handle = handle_of(store.dir());
        Ok(Watcher {
            store,
            fan,
            mount_fd,
            store_handle,
            pending: BTreeSet::new(),
            rescan: false,
        })
    }

    /// Runs until `stop` is set, reporting what it does.
    pub fn run(&mut self, stop: &AtomicBool, on_event: &mut dyn FnMut(&WatchEvent)) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            self.poll(Duration::from_millis(200), on_event)?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for events, then handles what is pending (if the store lock is
    /// free; otherwise it stays pending for the next call).
    pub fn poll(&mut self, timeout: Duration, on_event: &mut dyn FnMut(&WatchEvent)) -> Result<()> {
        if self.wait_readable(timeout)? {
            // Let a burst (rm -r) arrive as one batch.
            std::thread::sleep(Duration::from_millis(20));
            self.drain()?;
        }
        if self.pending.is_empty() && !self.rescan {
            return Ok(());
        }
        self.process(on_event)
    }

    fn wait_readable(&self, timeout: Duration) -> Result<bool> {
        let mut pfd = libc::pollfd {
            fd: self.fan.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(SisError::io(
                "poll fanotify for",
                self.store.volume().root(),
                e,
            ));
        }
        Ok(rc > 0)
    }

    fn drain(&mut self) -> Result<()> {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match self.fan.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(SisError::io(
                        "read fanotify events for",
                        self.store.volume().root(),
                        e,
                    ));
                }
            };
            let events = match parse_events(&buf[..n]) {
                Ok(ev) => ev,
                Err(_) => {
                    // Never guess from a buffer we do not understand: re-check everything.
                    self.rescan = true;
                    continue;
                }
            };
            for ev in events {
                if ev.fd >= 0 {
                    // SAFETY: fanotify handed us this descriptor; we own and close it.
                    drop(unsafe { OwnedFd::from_raw_fd(ev.fd) });
                }
                if ev.mask & libc::FAN_Q_OVERFLOW != 0 {
                    self.rescan = true;
                    continue;
                }
                let (Some(dir), Some(name)) = (ev.dir, ev.name) else {
                    self.rescan = true;
                    continue;
                };
                if self.store_handle.as_ref() == Some(&dir) {
                    continue; // the store's own files
                }
                match self.resolve(&dir) {
                    Some(dir_path) => {
                        let path = dir_path.join(OsString::from_vec(name));
                        if let Ok(rel) = self.store.volume().relative(&path)
                            && !rel.starts_with(crate::STORE_DIR)
                            && !rel.as_os_str().is_empty()
                        {
                            self.pending.insert(rel);
                        }
                    }
                    None => self.rescan = true,
                }
            }
        }
    }

    /// The current path of a directory handle; `None` when it is gone.
    fn resolve(&self, handle: &FileHandle) -> Option<PathBuf> {
        // struct file_handle, 4-byte aligned: handle_bytes, handle_type, f_handle[].
        let mut raw = vec![0u32; 2 + handle.bytes.len().div_ceil(4)];
        raw[0] = handle.bytes.len() as u32;
        raw[1] = handle.handle_type as u32;
        // SAFETY: `raw` has room for the 8-byte header plus the handle bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                handle.bytes.as_ptr(),
                raw.as_mut_ptr().add(2).cast::<u8>(),
                handle.bytes.len(),
            );
        }
        // SAFETY: `raw` is a valid struct file_handle for the duration of the call.
        let fd = unsafe {
            libc::open_by_handle_at(
                self.mount_fd.as_raw_fd(),
                raw.as_mut_ptr().cast::<libc::file_handle>(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let path = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).ok()?;
        if path.as_os_str().as_bytes().ends_with(b" (deleted)") {
            return None;
        }
        Some(path)
    }

    fn process(&mut self, on_event: &mut dyn FnMut(&WatchEvent)) -> Result<()> {
        let Some(lock) = self.store.try_lock()? else {
            return Ok(()); // a merge or gc is running: keep the events for later
        };
        let root = self.store.volume().root().to_path_buf();
        let mut index = self.store.read_index()?;
        let mut cache = MapCache::default();
        let mut affected: BTreeSet<ContentHash> = BTreeSet::new();
        let mut changed = false;
        let pending = std::mem::take(&mut self.pending);
        for rel in pending {
            let abs = root.join(&rel);
            let check = self.store.link_state(&abs, &mut cache)?;
            match check.state {
                LinkState::Link(r) => {
                    let before = index.hash_of_path(&rel);
                    index.set_link(r.hash, r.size, rel.clone(), check.ino);
                    if before != Some(r.hash) {
                        changed = true;
                        if let Some(b) = before {
                            affected.insert(b);
                        }
                        on_event(&WatchEvent::Recorded {
                            path: abs,
                            common_store_file: r.hash.file_name(),
                        });
                    }
                }
                state => {
                    if let Some(h) = index.remove_link(&rel) {
                        changed = true;
                        affected.insert(h);
                        let reason = match state {
                            LinkState::Missing => "deleted or renamed away".to_string(),
                            LinkState::Ordinary => "no SIS reparse data any more".to_string(),
                            LinkState::Former { reason, .. } => {
                                if let Ok(f) = sys::open_read(&abs) {
                                    let _ = sys::remove_reparse(&f);
                                }
                                format!("an ordinary file now: {reason}")
                            }
                            LinkState::Link(_) => String::new(),
                        };
                        on_event(&WatchEvent::Forgot { path: abs, reason });
                    }
                }
            }
        }
        if std::mem::take(&mut self.rescan) {
            let records: Vec<(ContentHash, PathBuf, u64)> = index
                .entries()
                .flat_map(|(h, e)| e.links.iter().map(move |l| (*h, l.path.clone(), l.ino)))
                .collect();
            let links = records.len() as u64;
            for (h, rel, ino) in records {
                let present = std::fs::symlink_metadata(root.join(&rel))
                    .is_ok_and(|m| m.is_file() && m.ino() == ino);
                if !present {
                    index.remove_link(&rel);
                    changed = true;
                    affected.insert(h);
                    on_event(&WatchEvent::Forgot {
                        path: root.join(&rel),
                        reason: "deleted or renamed away".into(),
                    });
                }
            }
            on_event(&WatchEvent::Rescanned { links });
        }
        let mut removed: Vec<StoreFileNote> = Vec::new();
        for h in affected {
            changed |=
                remove_if_unshared(&self.store, &lock, &mut index, &h, &mut removed, &mut cache)?;
        }
        if changed {
            self.store.save_index(&lock, &index)?;
        }
        for r in removed {
            on_event(&WatchEvent::Removed {
                name: r.name,
                size: r.size,
            });
        }
        Ok(())
    }
}

/// The file handle of a directory (to recognise events inside it).
fn handle_of(path: &Path) -> Option<FileHandle> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut raw = [0u32; 2 + MAX_HANDLE_SZ / 4];
    raw[0] = MAX_HANDLE_SZ as u32;
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a struct file_handle with room for MAX_HANDLE_SZ bytes.
    let rc = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            raw.as_mut_ptr().cast::<libc::file_handle>(),
            &mut mount_id,
            0,
        )
    };
    if rc < 0 {
        return None;
    }
    let len = (raw[0] as usize).min(MAX_HANDLE_SZ);
    let bytes: Vec<u8> = raw[2..]
        .iter()
        .flat_map(|w| w.to_ne_bytes())
        .take(len)
        .collect();
    Some(FileHandle {
        handle_type: raw[1] as i32,
        bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(ev: &RawEvent) -> Vec<u8> {
        let mut info = Vec::new();
        if let Some(dir) = &ev.dir {
            let ty = if ev.name.is_some() {
                INFO_TYPE_DFID_NAME
            } else {
                INFO_TYPE_DFID
            };
            let mut body = vec![0u8; 8];
            body.extend_from_slice(&(dir.bytes.len() as u32).to_ne_bytes());
            body.extend_from_slice(&dir.handle_type.to_ne_bytes());
            body.extend_from_slice(&dir.bytes);
            if let Some(n) = &ev.name {
                body.extend_from_slice(n);
                body.push(0);
            }
            while !(body.len() + 4).is_multiple_of(4) {
                body.push(0);
            }
            info.push(ty);
            info.push(0);
            info.extend_from_slice(&((body.len() + 4) as u16).to_ne_bytes());
            info.extend_from_slice(&body);
        }
        let len = METADATA_LEN + info.len();
        let mut out = Vec::new();
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.push(FANOTIFY_METADATA_VERSION);
        out.push(0);
        out.extend_from_slice(&(METADATA_LEN as u16).to_ne_bytes());
        out.extend_from_slice(&ev.mask.to_ne_bytes());
        out.extend_from_slice(&ev.fd.to_ne_bytes());
        out.extend_from_slice(&0i32.to_ne_bytes());
        out.extend_from_slice(&info);
        out
    }

    fn any_event() -> impl Strategy<Value = RawEvent> {
        (
            any::<u64>(),
            proptest::option::of((any::<i32>(), proptest::collection::vec(any::<u8>(), 0..40))),
            proptest::collection::vec(1u8..=255, 0..30),
        )
            .prop_map(|(mask, dir, name)| {
                let has_dir = dir.is_some();
                RawEvent {
                    mask,
                    fd: -1,
                    dir: dir.map(|(t, b)| FileHandle {
                        handle_type: t,
                        bytes: b,
                    }),
                    name: if has_dir { Some(name) } else { None },
                }
            })
    }

    proptest! {
        #[test]
        fn events_round_trip(evs in proptest::collection::vec(any_event(), 0..5)) {
            let buf: Vec<u8> = evs.iter().flat_map(encode).collect();
            prop_assert_eq!(parse_events(&buf).unwrap(), evs);
        }

        #[test]
        fn truncation_is_an_error(ev in any_event(), cut in 1usize..200) {
            let buf = encode(&ev);
            let cut = cut % buf.len();
            if cut > 0 {
                prop_assert!(parse_events(&buf[..cut]).is_err());
            }
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_events(&bytes);
        }

        #[test]
        fn bit_flips_never_panic(ev in any_event(), at in any::<usize>(), bit in 0u8..8) {
            let mut buf = encode(&ev);
            let at = at % buf.len();
            buf[at] ^= 1 << bit;
            let _ = parse_events(&buf);
        }
    }
}
