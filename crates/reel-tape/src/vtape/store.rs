//! The storage seam of a virtual cartridge: a few named files with positional I/O.
//!
//! Everything the cartridge keeps goes through [`CartridgeStore`] and [`StoreFile`]: open,
//! length, read-at, write-at, truncate, sync, and small whole-file replace for the
//! description. [`DirStore`] keeps them in a local directory; an object-storage backend
//! (S3-compatible, as tape gateways do) implements the same two traits.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, IoSliceMut, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One file of a cartridge, accessed by offset.
#[allow(clippy::len_without_is_empty)] // a length that can fail; emptiness is not asked
pub trait StoreFile: Send {
    fn len(&self) -> io::Result<u64>;
    /// Reads exactly `buf.len()` bytes at `offset`; `UnexpectedEof` when the file is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Reads as much as is there at `offset` (short at end of file).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Fills `bufs` one after the other from `offset` until they are full or the file ends;
    /// returns the bytes read. Backends with vectored reads (preadv) override this so a
    /// record (word, payload, trailer) costs one call.
    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        let mut total = 0usize;
        let mut at = offset;
        for b in bufs.iter_mut() {
            let n = self.read_at(b, at)?;
            total += n;
            at += n as u64;
            if n < b.len() {
                break;
            }
        }
        Ok(total)
    }
    /// Writes all of `bufs`, one after the other, at `offset`.
    fn write_all_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()>;
    fn truncate(&self, len: u64) -> io::Result<()>;
    fn sync(&self) -> io::Result<()>;
}

/// The files of one cartridge.
pub trait CartridgeStore: Send {
    /// Where the cartridge lives, for messages.
    fn location(&self) -> PathBuf;
    /// The path of a named file, for messages.
    fn path_of(&self, name: &str) -> PathBuf {
        self.location().join(name)
    }
    /// Opens a data file for reading and writing, creating it empty when `create` is set.
    /// `Ok(None)` when it does not exist and `create` is not set.
    fn open(
        &self,
        name: &str,
        create: bool,
        writable: bool,
    ) -> io::Result<Option<Box<dyn StoreFile>>>;
    /// A small file read whole (`Ok(None)` when missing).
    fn read_small(&self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Replaces a small file atomically (temp name, fsync, rename).
    fn replace_small(&self, name: &str, bytes: &[u8]) -> io::Result<()>;
    fn remove(&self, name: &str) -> io::Result<()>;
}

/// A cartridge kept in a local directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        DirStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A cartridge file on a local file system.
struct LocalFile {
    file: File,
    /// Bytes before this offset have had their writeback started (see `start_writeback`).
    written_back: std::sync::atomic::AtomicU64,
}

/// How much a sequential writer dirties before it asks the kernel to start writing it.
const WRITEBACK_STEP: u64 = 8 << 20;

impl LocalFile {
    fn new(file: File) -> Self {
        LocalFile {
            file,
            written_back: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Starts (does not wait for) writeback of what was written since the last call, once
    /// there is at least `WRITEBACK_STEP` of it. A set ends with an fsync for durability;
    /// without this the disk sits idle while records are produced and the whole set is
    /// written during that final fsync. With it the writing overlaps the producing, the
    /// fsync has little left to do, and dirty pages stay few.
    fn start_writeback(&self, end: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let from = self.written_back.load(Relaxed);
        if end < from {
            // Written behind (a rewrite after a seek back): start again from there.
            self.written_back.store(end, Relaxed);
            return;
        }
        if end - from < WRITEBACK_STEP {
            return;
        }
        // Only a hint: an error here (e.g. a file system without the call) changes nothing,
        // the final fsync reports real write errors.
        // SAFETY: plain syscall on an open descriptor, no memory passed.
        unsafe {
            libc::sync_file_range(
                std::os::fd::AsRawFd::as_raw_fd(&self.file),
                from as libc::off64_t,
                (end - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        self.written_back.store(end, Relaxed);
    }
}

impl StoreFile for LocalFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            match FileExt::read_at(&self.file, &mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn read_vectored_at(&self, bufs: &mut [IoSliceMut<'_>], offset: u64) -> io::Result<usize> {
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let got = loop {
            match rustix::io::preadv(&self.file, bufs, offset) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if got == want || got == 0 {
            return Ok(got);
        }
        // A short read (rare: end of file or a signal): finish piece by piece.
        let mut total = 0usize;
        let mut at = offset;
        for b in bufs.iter_mut() {
            let len = b.len();
            if total + len <= got {
                total += len;
                at += len as u64;
                continue;
            }
            let skip = got.saturating_sub(total);
            let n = skip + StoreFile::read_at(self, &mut b[skip..], at + skip as u64)?;
            total += n;
            at += n as u64;
            if n < len {
                break;
            }
        }
        Ok(total)
    }

    fn write_all_at(&self, bufs: &[IoSlice<'_>], offset: u64) -> io::Result<()> {
        // pwritev writes the frame (word, payload, pad, word) without assembling it first.
        let mut slices: Vec<&[u8]> = bufs
            .iter()
            .map(|b| &**b)
            .filter(|b| !b.is_empty())
            .collect();
        let mut offset = offset;
        while !slices.is_empty() {
            let io: Vec<IoSlice<'_>> = slices.iter().map(|s| IoSlice::new(s)).collect();
            let mut n = match rustix::io::pwritev(&self.file, &io, offset) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            offset += n as u64;
            while n > 0 {
                if n >= slices[0].len() {
                    n -= slices[0].len();
                    slices.remove(0);
                } else {
                    slices[0] = &slices[0][n..];
                    n = 0;
                }
            }
        }
        self.start_writeback(offset);
        Ok(())
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.written_back
            .fetch_min(len, std::sync::atomic::Ordering::Relaxed);
        self.file.set_len(len)
    }

    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl CartridgeStore for DirStore {
    fn location(&self) -> PathBuf {
        self.dir.clone()
    }

    fn open(
        &self,
        name: &str,
        create: bool,
        writable: bool,
    ) -> io::Result<Option<Box<dyn StoreFile>>> {
        let path = self.dir.join(name);
        let mut opts = OpenOptions::new();
        opts.read(true).write(writable).create(create && writable);
        match opts.open(&path) {
            Ok(f) => Ok(Some(Box::new(LocalFile::new(f)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_small(&self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match std::fs::read(self.dir.join(name)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn replace_small(&self, name: &str, bytes: &[u8]) -> io::Result<()> {
        replace_file(&self.dir.join(name), bytes)
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Writes `bytes` to `path` through a temporary name, fsync and rename, then syncs the
/// directory, so a crash leaves either the old or the new file.
pub fn replace_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(dir)?.sync_all()
}
