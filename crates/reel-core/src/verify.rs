//! `reel verify`: re-read a set and check every file against the hash recorded at backup
//! time, and optionally against the files on disk.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::Serialize;

use reel_archive::pax::PaxReader;
use reel_archive::{ArchiveError, EntryKind, HashScheme, SetInfo};
use reel_catalog::Catalog;

use crate::error::Result;
use crate::progress::Progress;
use crate::sets;
use crate::span::SetStream;
use crate::tapes::Tapes;

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub set: Option<String>,
    /// Also compare with the files on disk under `disk_root` (default `/`).
    pub against_disk: bool,
    pub disk_root: PathBuf,
}

/// What a verification found, file by file.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    pub set: Option<SetInfo>,
    /// Files whose data on tape matches the recorded hash.
    pub verified: u64,
    pub bytes: u64,
    /// Files of an incremental set that live in earlier sets (verify those sets).
    pub in_earlier_sets: u64,
    /// Files whose data on tape does not match, or cannot be read (damaged records).
    pub damaged: Vec<String>,
    /// Members the index lists but the data does not hold.
    pub missing_on_tape: Vec<String>,
    /// With `--against-disk`: files that differ from the disk, or are gone from it.
    pub differs_on_disk: Vec<String>,
    pub missing_on_disk: Vec<String>,
}

impl VerifyReport {
    pub fn tape_ok(&self) -> bool {
        self.damaged.is_empty() && self.missing_on_tape.is_empty()
    }

    pub fn disk_ok(&self) -> bool {
        self.differs_on_disk.is_empty() && self.missing_on_disk.is_empty()
    }
}

/// Hashes a file on disk with the scheme the index used for it.
fn hash_file(path: &std::path::Path, scheme: HashScheme) -> std::io::Result<blake3::Hash> {
    let f = std::fs::File::open(path)?;
    match scheme {
        HashScheme::Blake3 => {
            let mut h = blake3::Hasher::new();
            std::io::copy(&mut &f, &mut h)?;
            return Ok(h.finalize());
        }
        // Read only the data extents the file has now (the scheme does not depend on where
        // the holes are).
        HashScheme::Sparse64k => {}
    }
    let size = f.metadata()?.len();
    let map = reel_stream::sparse::scan(&f, size)?.unwrap_or_else(|| reel_stream::SparseMap {
        extents: vec![reel_stream::Extent {
            offset: 0,
            len: size,
        }],
    });
    let mut hasher = reel_stream::sparse::SparseHasher::new(&map, size);
    let mut reader = reel_stream::ContentReader::new(f, Some(map));
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize())
}

/// Reads the whole set once and compares every file with its recorded hash.
pub fn verify(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    opts: &VerifyOptions,
    progress: &dyn Progress,
) -> Result<VerifyReport> {
    let set = sets::resolve(tapes, catalog, opts.set.as_deref())?;
    let info = set.info.clone();
    // Offset -> (path, hash) of the members with data in this set.
    let mut expected: HashMap<u64, (String, Option<blake3::Hash>)> = HashMap::new();
    let mut report = VerifyReport {
        set: Some(info.clone()),
        ..Default::default()
    };
    let mut on_disk: Vec<(String, blake3::Hash, HashScheme)> = Vec::new();
    let mut total = 0u64;
    sets::for_each_member(tapes, catalog, &set, |e| {
        if e.kind == EntryKind::File {
            if let Some(h) = e.hash
                && opts.against_disk
            {
                on_disk.push((e.display_path(), h, e.hash_scheme));
            }
            if e.source_set.is_some() {
                report.in_earlier_sets += 1;
            } else {
                total += e.size;
                expected.insert(e.offset, (e.display_path(), e.hash));
            }
        }
        Ok(())
    })?;
    progress.total(total, expected.len() as u64);
    let block_size = info.block_size as usize;
    let stream = SetStream::new(tapes, set.parts(), block_size)?;
    let mut pax = PaxReader::new(stream);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let next = match pax.next_entry() {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                if let Some(stop) = pax.get_mut().stopped() {
                    return Err(stop);
                }
                // Damage in a header: go on from the next member the index knows.
                let here = pax.offset();
                let msg = format!("set data at byte {here}: {e}");
                progress.problem(&msg);
                report.damaged.push(msg);
                match expected
                    .keys()
                    .copied()
                    .filter(|o| *o > here.saturating_sub(1))
                    .min()
                {
                    Some(next) => {
                        if pax.get_mut().seek_to(next).is_err() {
                            break;
                        }
                        pax.reset_at(next);
                        continue;
                    }
                    None => break,
                }
            }
        };
        let Some((path, hash)) = expected.remove(&next.header_offset) else {
            continue;
        };
        progress.entry(&path);
        let mut h = reel_stream::ContentHasher::for_meta(&next.entry.meta);
        let mut failed: Option<ArchiveError> = None;
        loop {
            match pax.read_data(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    h.update(&buf[..n]);
                    progress.bytes(n as u64);
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match (failed, hash) {
            (Some(e), _) => {
                if let Some(stop) = pax.get_mut().stopped() {
                    return Err(stop);
                }
                let msg = format!("{path}: cannot be read: {e}");
                progress.problem(&msg);
                report.damaged.push(msg);
                // Re-synchronise at the next member the index knows.
                let here = pax.offset();
                match expected.keys().copied().filter(|o| *o >= here).min() {
                    Some(next) => {
                        if pax.get_mut().seek_to(next).is_err() {
                            break;
                        }
                        pax.reset_at(next);
                    }
                    None => break,
                }
            }
            (None, Some(want)) if want != h.finalize() => {
                let msg = format!(
                    "{path}: content on tape does not match the hash recorded at backup time"
                );
                progress.problem(&msg);
                report.damaged.push(msg);
            }
            (None, _) => {
                report.verified += 1;
                report.bytes += next.entry.meta.size;
            }
        }
    }
    let mut missing: Vec<String> = expected.into_values().map(|(p, _)| p).collect();
    missing.sort();
    report.missing_on_tape = missing;
    if opts.against_disk {
        for (path, want, scheme) in on_disk {
            let disk = opts.disk_root.join(&path);
            match hash_file(&disk, scheme) {
                Ok(h) if h == want => {}
                Ok(_) => report
                    .differs_on_disk
                    .push(format!("{path}: differs from the backup")),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.missing_on_disk.push(path)
                }
                Err(e) => report
                    .differs_on_disk
                    .push(format!("{path}: cannot be read on disk: {e}")),
            }
        }
    }
    Ok(report)
}
