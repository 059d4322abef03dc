//! Archives other programs wrote — tar files, and tape files that GNU tar, bsdtar or star
//! wrote to a tape — listed, restored and catalogued with the same patterns, safety and
//! metadata fidelity as reel's own sets.
//!
//! Sources ([`ForeignSource`]): archive files (the volumes of one archive, in order; `-` is
//! standard input), or tape file N of the tape in the drive, with or without a reel label.
//! Every format [`reel_archive::pax::PaxReader`] reads is taken: v7, ustar, pax, GNU and old
//! GNU, GNU sparse files in every version, GNU multi-volume archives, the vendor keys of
//! star and libarchive.
//!
//! Damage is reported and stepped over as GNU tar does: a header that is not one makes the
//! reader scan to the next valid header, and the restore goes on with the members after it.
//! Members are restored through [`crate::restore::apply_member`], so they get the checks of
//! reel's own restores (absolute paths, `..`, writes through symlinks, hard links to outside
//! the target: refused and counted), plus one more that only foreign archives need: a
//! symlink whose target leaves the restore target is refused unless asked for
//! ([`ForeignRestoreOptions::allow_outside_symlinks`]).
//!
//! [`scan`] reads a tape file once and records every member's byte offset in the catalog; a
//! later list or restore of that tape file finds it there (by its number and the BLAKE3 of
//! its first record) and seeks: a tar archive on tape is written in records of one size, so
//! byte offset → record → logical block.
//!
//! What is supported, and what is not:
//! - GNU multi-volume archives (`tar -M`, gnu, oldgnu and posix formats, with or without
//!   `-V` labels): give the volumes as archive files, in order; a member split between
//!   volumes is joined after its `M` header (or `GNU.volume.*` keys) is checked against the
//!   member in progress. Volumes out of order or missing are reported and the split member
//!   is not restored. A split sparse member is reported, not joined. For volumes on tapes,
//!   dump each volume's tape file (`reel tape dump --file N`) and give the dumps.
//! - Sparse files: GNU's old `S` headers (with extension blocks) and pax 0.0, 0.1 and 1.0.
//!   star's own sparse layout is read only where it matches GNU's.
//! - Hard links whose target is not selected by the patterns: restored through the catalog
//!   (the target is added), refused with a message when reading an archive through.
//! - Global pax headers: honoured when reading through; a scanned tape file that has them is
//!   read through rather than seeked (a seek would miss them).
//! - A tape read error (a bad record) ends the read with the error (exit code 3).

use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;

use reel_archive::pax::{Next, PaxReader, ReadEntry};
use reel_archive::{ArchiveError, Entry, IndexEntry, VolumeState};
use reel_catalog::{Catalog, ForeignFile};
use reel_stream::{Existing, FileKind, RestoreRoot};
use reel_tape::{PositionKind, SeekTo, TapeDrive, TapeError};

use crate::error::{CoreError, Result};
use crate::plan::{Approach, Planner};
use crate::progress::Progress;
use crate::restore::{RestoreReport, Rules, apply_member};
use crate::select::Selector;
use crate::tapes::Tapes;

/// Where a foreign archive is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForeignSource {
    /// Archive files: the volumes of one archive, in order (`-` = standard input).
    Archives(Vec<PathBuf>),
    /// Tape file N of the tape in the drive (0 = the first file on the tape).
    TapeFile(u64),
}

impl ForeignSource {
    /// For messages: `archive x.tar`, `tape file 3 of vtape:c1`.
    pub fn describe(&self, drive: Option<&dyn TapeDrive>) -> String {
        match self {
            ForeignSource::Archives(paths) => {
                let names: Vec<String> = paths.iter().map(|p| shown_path(p)).collect();
                match names.as_slice() {
                    [one] => format!("archive {one}"),
                    many => format!("archive volumes {}", many.join(", ")),
                }
            }
            ForeignSource::TapeFile(n) => match drive {
                Some(d) => format!("tape file {n} of {}", d.describe()),
                None => format!("tape file {n}"),
            },
        }
    }
}

fn shown_path(p: &Path) -> String {
    if p.as_os_str() == "-" {
        "standard input".into()
    } else {
        p.display().to_string()
    }
}

/// A tape file read as a byte stream, record by record, noting the records' sizes (so a
/// scan knows whether byte offsets map to records) and able to seek to a byte offset when
/// they do.
pub struct TapeFile<'d> {
    drive: &'d mut dyn TapeDrive,
    file: u64,
    first_block: u64,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Index (within the file) of the next record to read.
    record: u64,
    /// Index of the record in `buf`, when one is there.
    buffered: Option<u64>,
    record_size: Option<usize>,
    uniform: bool,
    short_seen: bool,
    records: u64,
    bytes: u64,
    ended: bool,
    fingerprint: Option<String>,
}

const START_BUFFER: usize = 256 << 10;

impl<'d> TapeFile<'d> {
    /// Positions the drive at the start of tape file `file` (rewind, then space over `file`
    /// filemarks); reads nothing.
    pub fn open(drive: &'d mut dyn TapeDrive, file: u64) -> Result<Self> {
        let name = drive.describe();
        drive
            .set_position(SeekTo::Rewind, false)
            .map_err(|e| ArchiveError::tape(format!("rewinding {name}"), e))?;
        if file > 0 {
            let n = i64::try_from(file).map_err(|_| CoreError::TapeFileTooLarge { file })?;
            drive
                .set_position(SeekTo::SpaceFilemarks(n), false)
                .map_err(|e| match e {
                    TapeError::NoDataDetected | TapeError::EndOfMedia => {
                        CoreError::NoSuchTapeFile {
                            drive: name.clone(),
                            file,
                        }
                    }
                    e => ArchiveError::tape(format!("spacing to tape file {file} of {name}"), e)
                        .into(),
                })?;
        }
        let first_block = drive
            .position(PositionKind::Logical)
            .map_err(|e| ArchiveError::tape(format!("position of {name}"), e))?
            .offset;
        Ok(TapeFile {
            drive,
            file,
            first_block,
            buf: vec![0u8; START_BUFFER],
            start: 0,
            end: 0,
            record: 0,
            buffered: None,
            record_size: None,
            uniform: true,
            short_seen: false,
            records: 0,
            bytes: 0,
            ended: false,
            fingerprint: None,
        })
    }

    fn context(&self, record: u64) -> String {
        format!(
            "{}, tape file {}, record {record}",
            self.drive.describe(),
            self.file
        )
    }

    /// Reads the next record into the buffer; `Ok(false)` at the end of the file.
    fn fill(&mut self) -> io::Result<bool> {
        if self.ended {
            return Ok(false);
        }
        loop {
            match self.drive.read(&mut self.buf) {
                Ok(n) => {
                    self.note_record(n);
                    self.start = 0;
                    self.end = n;
                    self.buffered = Some(self.record);
                    self.record += 1;
                    return Ok(true);
                }
                Err(TapeError::FilemarkDetected | TapeError::NoDataDetected) => {
                    self.ended = true;
                    return Ok(false);
                }
                Err(TapeError::MoreData { record_len, .. })
                    if record_len <= self.drive.max_record_len() =>
                {
                    // A record larger than the buffer: grow it and read the record again.
                    self.buf.resize(record_len, 0);
                    if let Err(e) = self
                        .drive
                        .set_position(SeekTo::SpaceRelativeBlocks(-1), false)
                    {
                        return Err(io::Error::other(ArchiveError::tape(
                            self.context(self.record),
                            e,
                        )));
                    }
                }
                Err(e) => {
                    let ctx = self.context(self.record);
                    self.record += 1;
                    return Err(io::Error::other(ArchiveError::tape(ctx, e)));
                }
            }
        }
    }

    /// Keeps track of record sizes: uniform when every record but the last has the first
    /// one's size.
    fn note_record(&mut self, n: usize) {
        if self.record == 0 && self.fingerprint.is_none() {
            self.fingerprint = Some(blake3::hash(&self.buf[..n]).to_hex().to_string());
        }
        if self.record == self.records {
            self.records += 1;
            self.bytes += n as u64;
            match self.record_size {
                None => self.record_size = Some(n),
                Some(rs) => {
                    if self.short_seen || n > rs {
                        self.uniform = false;
                    } else if n < rs {
                        self.short_seen = true;
                    }
                }
            }
        }
    }

    /// The BLAKE3 of the file's first record (reads it if need be), which identifies the
    /// tape file in the catalog. `None` for an empty tape file.
    pub fn fingerprint(&mut self) -> Result<Option<String>> {
        if self.fingerprint.is_none() && self.record == 0 {
            self.fill()
                .map_err(|e| ArchiveError::from_io(self.context(0), e))?;
        }
        Ok(self.fingerprint.clone())
    }

    /// Moves to byte `offset` of the file, whose records are `record_size` bytes: one seek
    /// and one record read.
    pub fn seek_to(&mut self, offset: u64, record_size: usize) -> Result<()> {
        let target = offset / record_size as u64;
        let within = (offset % record_size as u64) as usize;
        if self.buffered == Some(target) && within <= self.end {
            self.start = within;
            return Ok(());
        }
        self.drive
            .set_position(
                SeekTo::LogicalBlock {
                    partition: 0,
                    block: self.first_block + target,
                },
                false,
            )
            .map_err(|e| ArchiveError::tape(self.context(target), e))?;
        self.record = target;
        self.buffered = None;
        self.start = 0;
        self.end = 0;
        self.ended = false;
        if !self
            .fill()
            .map_err(|e| ArchiveError::from_io(self.context(target), e))?
            || self.end < within
        {
            return Err(ArchiveError::Truncated {
                offset,
                what: format!(
                    "{}: the tape file ends before byte {offset}",
                    self.context(target)
                ),
            }
            .into());
        }
        self.start = within;
        Ok(())
    }

    /// Logical block of the file's first record.
    pub fn first_block(&self) -> u64 {
        self.first_block
    }

    /// The records' size when every one but the last has it; `None` when they vary (or none
    /// was read).
    pub fn uniform_record_size(&self) -> Option<usize> {
        self.record_size.filter(|_| self.uniform)
    }

    /// Records and bytes read so far (each record counted once).
    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    pub fn drive(&mut self) -> &mut dyn TapeDrive {
        &mut *self.drive
    }
}

impl Read for TapeFile<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end && !self.fill()? {
            return Ok(0);
        }
        let n = (self.end - self.start).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// Compressed archives are recognised by their first bytes and refused with what to do.
fn compression_of(head: &[u8]) -> Option<(&'static str, &'static str)> {
    const KINDS: [(&[u8], &str, &str); 5] = [
        (&[0x1f, 0x8b], "gzip", "zcat"),
        (b"BZh", "bzip2", "bzcat"),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz", "xzcat"),
        (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", "zstdcat"),
        (&[0x04, 0x22, 0x4d, 0x18], "lz4", "lz4cat"),
    ];
    KINDS
        .iter()
        .find(|(magic, _, _)| head.starts_with(magic))
        .map(|(_, name, cat)| (*name, *cat))
}

/// Opens one archive file (or standard input) for reading.
fn open_archive(path: &Path) -> Result<Box<dyn Read>> {
    let shown = shown_path(path);
    let inner: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(io::stdin())
    } else {
        let file = std::fs::File::open(path).map_err(|source| CoreError::CannotOpenArchive {
            shown: shown.clone(),
            source,
        })?;
        if file.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(CoreError::ArchiveIsDirectory { shown });
        }
        Box::new(file)
    };
    let mut reader = BufReader::with_capacity(1 << 20, inner);
    let head = reader.fill_buf().map_err(|e| CoreError::Io {
        context: format!("reading {shown}"),
        source: e,
    })?;
    if let Some((compression, decompressor)) = compression_of(head) {
        return Err(CoreError::CompressedArchive {
            shown,
            compression,
            decompressor,
        });
    }
    Ok(Box::new(reader))
}

/// A reader over the archive volumes `paths`, in order.
fn archive_reader(paths: &[PathBuf]) -> Result<PaxReader<Box<dyn Read>>> {
    let Some(first) = paths.first() else {
        return Err(CoreError::NoArchive);
    };
    let reader = PaxReader::new(open_archive(first)?);
    if paths.len() == 1 {
        return Ok(reader);
    }
    let rest: Vec<PathBuf> = paths[1..].to_vec();
    Ok(reader.with_next_volume(Box::new(move |n| {
        let Some(path) = rest.get(n as usize - 2) else {
            return Ok(None);
        };
        open_archive(path).map(Some).map_err(|e| match e {
            CoreError::Archive(a) => a,
            other => ArchiveError::Volume(other.to_string()),
        })
    })))
}

/// Total bytes of the archive files (for progress; 0 for standard input).
fn archive_bytes(paths: &[PathBuf]) -> u64 {
    paths
        .iter()
        .filter(|p| p.as_os_str() != "-")
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// A symlink whose target can lead out of the restore target: absolute, climbing above the
/// target with `..`, or using `..` after a name (which another symlink could turn into a way
/// out). Returns why.
pub fn symlink_leaves_target(link_path: &[u8], target: &[u8]) -> Option<String> {
    if target.first() == Some(&b'/') {
        return Some("it is absolute".into());
    }
    let Ok(rel) = reel_stream::check_path(link_path) else {
        return None; // the member itself is refused for its path
    };
    let mut depth = rel.depth().saturating_sub(1) as i64;
    let mut named = false;
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if named {
                    return Some(
                        "it uses '..' after a name, which other links could turn into a way out"
                            .into(),
                    );
                }
                depth -= 1;
                if depth < 0 {
                    return Some("it climbs above the restore target".into());
                }
            }
            _ => {
                named = true;
                depth += 1;
            }
        }
    }
    None
}

/// A member path as patterns see it: without the `./` that `tar -C DIR .` puts in front.
fn match_path(mut path: &[u8]) -> &[u8] {
    while let Some(rest) = path.strip_prefix(b"./") {
        path = rest;
    }
    while let Some(rest) = path.strip_prefix(b"/") {
        path = rest;
    }
    path
}

/// The archive's entry for its top directory (`.` or `./`): the restore target itself.
fn is_top_directory(entry: &Entry) -> bool {
    entry.meta.kind == FileKind::Directory
        && entry.hardlink.is_none()
        && !entry.path.is_empty()
        && entry
            .path
            .split(|b| *b == b'/')
            .all(|c| c.is_empty() || c == b".")
}

/// Some writers (bsdtar) store the group bits of the mode as the ACL's `group::` entry
/// rather than its mask, which is what the group bits of a file with an ACL are. The
/// restore sets the ACL, then the mode: make the mode say the mask, as `tar -x` ends up.
fn mode_with_acl_mask(meta: &mut reel_stream::FileMeta) {
    if let Some(mask) = meta.acl_access.as_ref().and_then(|acl| {
        acl.entries
            .iter()
            .find(|e| e.tag == reel_stream::AclTag::Mask)
    }) {
        meta.mode = (meta.mode & !0o070) | (u32::from(mask.perm & 7) << 3);
    }
}

/// What a listing found besides the members.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ForeignListing {
    pub source: String,
    /// The catalog scan the members came from, when they came from one.
    pub from_catalog: Option<uuid::Uuid>,
    pub volume_label: Option<String>,
    pub members: u64,
    /// Damaged stretches, each with where reading went on.
    pub damage: Vec<String>,
    pub notes: Vec<String>,
}

fn describe_source(source: &ForeignSource, tapes: &Option<&mut Tapes>) -> String {
    source.describe(tapes.as_ref().map(|t| &*t.drive as &dyn TapeDrive))
}

fn need_tapes(tapes: Option<&mut Tapes>, file: u64) -> Result<&mut Tapes> {
    tapes.ok_or(CoreError::NoTapeDrive { file })
}

/// Looks up a scan of the tape file `tf` is at (reading its first record).
fn catalog_scan_of(
    tf: &mut TapeFile<'_>,
    catalog: Option<&Catalog>,
    file: u64,
) -> Result<Option<ForeignFile>> {
    let Some(cat) = catalog else {
        return Ok(None);
    };
    let Some(fp) = tf.fingerprint()? else {
        return Ok(None);
    };
    Ok(cat.foreign_file(&fp, file)?)
}

/// Lists the members of a foreign archive that the patterns select: from the catalog when
/// the tape file was scanned, else by reading the archive through.
pub fn list(
    tapes: Option<&mut Tapes>,
    catalog: Option<&Catalog>,
    source: &ForeignSource,
    patterns: &[String],
    progress: &dyn Progress,
    mut each: impl FnMut(&IndexEntry),
) -> Result<ForeignListing> {
    let selector = Selector::new(patterns)?;
    let mut listing = ForeignListing {
        source: describe_source(source, &tapes),
        ..Default::default()
    };
    let mut take = |listing: &mut ForeignListing, pax_entry: &ReadEntry| {
        for n in &pax_entry.notes {
            let msg = format!("{}: {n}", pax_entry.entry.display_path());
            progress.problem(&msg);
            listing.notes.push(msg);
        }
        if selector.matches(match_path(&pax_entry.entry.path)) {
            listing.members += 1;
            each(&IndexEntry::new(
                &pax_entry.entry,
                pax_entry.header_offset,
                None,
            ));
        }
    };
    match source {
        ForeignSource::Archives(paths) => {
            let mut pax = archive_reader(paths)?;
            read_through(&mut pax, &mut listing, progress, &mut take)?;
            listing.volume_label = pax.volume_label().map(str::to_string);
        }
        ForeignSource::TapeFile(file) => {
            let tapes = need_tapes(tapes, *file)?;
            let mut tf = TapeFile::open(&mut *tapes.drive, *file)?;
            if let Some(scan) = catalog_scan_of(&mut tf, catalog, *file)?
                && let Some(cat) = catalog
            {
                listing.from_catalog = Some(scan.id);
                cat.for_each_entry(scan.id, |e: IndexEntry| -> Result<()> {
                    if selector.matches(match_path(&e.path)) {
                        listing.members += 1;
                        each(&e);
                    }
                    Ok(())
                })?;
                if scan.damage > 0 {
                    listing.notes.push(format!(
                        "the scan of {} stepped over {} damaged stretches (run `reel catalog scan` again to see them)",
                        listing.source, scan.damage
                    ));
                }
                return Ok(listing);
            }
            let mut pax = PaxReader::new(tf);
            read_through(&mut pax, &mut listing, progress, &mut take)?;
            listing.volume_label = pax.volume_label().map(str::to_string);
        }
    }
    Ok(listing)
}

/// Reads every member header of an archive, reporting damage.
fn read_through<R: Read>(
    pax: &mut PaxReader<R>,
    listing: &mut ForeignListing,
    progress: &dyn Progress,
    take: &mut impl FnMut(&mut ForeignListing, &ReadEntry),
) -> Result<()> {
    while let Some(next) = pax.next_or_damage()? {
        match next {
            Next::Member(r) => take(listing, &r),
            Next::Damage(d) => {
                let msg = format!("{}: {d}", listing.source);
                progress.problem(&msg);
                listing.damage.push(msg);
            }
        }
    }
    Ok(())
}

/// What to restore from a foreign archive, and how.
#[derive(Debug, Clone)]
pub struct ForeignRestoreOptions {
    pub source: ForeignSource,
    pub patterns: Vec<String>,
    pub target: PathBuf,
    pub existing: Existing,
    /// Restore symlinks whose target leaves the restore target, as they are (they are never
    /// followed by the restore itself). Off: they are refused and counted.
    pub allow_outside_symlinks: bool,
    /// Where the policy is read (paths-not-to-restore); `None` restores everything.
    pub policy_roots: Option<reel_policy::Roots>,
}

/// What a restore from a foreign archive did.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ForeignRestoreReport {
    pub source: String,
    /// The catalog scan whose offsets the restore seeked by, if any.
    pub from_catalog: Option<uuid::Uuid>,
    pub volume_label: Option<String>,
    /// Damaged stretches of the archive, each with where reading went on.
    pub damage: Vec<String>,
    /// Things worth knowing that did not stop a member (unknown member types, …).
    pub notes: Vec<String>,
    #[serde(flatten)]
    pub restore: RestoreReport,
}

impl ForeignRestoreReport {
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty() && self.restore.is_clean()
    }
}

/// Per-member restore state shared by the sequential and the seeking restore.
struct Restorer<'a> {
    root: RestoreRoot,
    rules: Rules<'a>,
    allow_outside_symlinks: bool,
    buf: Vec<u8>,
    report: ForeignRestoreReport,
    progress: &'a dyn Progress,
}

impl Restorer<'_> {
    /// Restores the member `pax` has just read. Archive errors in its content are reported
    /// (the reader goes on after them).
    fn member<R: Read>(&mut self, pax: &mut PaxReader<R>, read: ReadEntry) -> Result<()> {
        for n in &read.notes {
            let msg = format!("{}: {n}", read.entry.display_path());
            self.progress.problem(&msg);
            self.report.notes.push(msg);
        }
        let mut entry: Entry = read.entry;
        mode_with_acl_mask(&mut entry.meta);
        if is_top_directory(&entry) {
            // `tar -C DIR .` archives DIR itself as `./`: that is the restore target, which
            // is left as it is.
            return Ok(());
        }
        if !self.allow_outside_symlinks
            && entry.meta.kind == FileKind::Symlink
            && entry.hardlink.is_none()
            && let Some(target) = &entry.meta.symlink_target
            && let Some(why) = symlink_leaves_target(
                &entry.path,
                std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()),
            )
        {
            let msg = format!(
                "refused {}: its target {} leaves the restore target: {why} (--allow-outside-symlinks restores such links as they are)",
                entry.display_path(),
                target.to_string_lossy()
            );
            self.progress.problem(&msg);
            self.report.restore.refused.push(msg);
            return Ok(());
        }
        let shown = entry.display_path();
        match apply_member(
            pax,
            &mut self.root,
            self.rules,
            entry,
            None,
            &mut self.buf,
            &mut self.report.restore,
            self.progress,
        ) {
            Ok(()) => Ok(()),
            Err(
                e @ (ArchiveError::Corrupt { .. }
                | ArchiveError::Truncated { .. }
                | ArchiveError::Integrity(_)),
            ) => {
                let msg = format!("{shown}: not restored: {e}");
                self.progress.problem(&msg);
                self.report.restore.integrity_failures.push(msg);
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    fn damage(&mut self, source: &str, d: impl std::fmt::Display) {
        let msg = format!("{source}: {d}");
        self.progress.problem(&msg);
        self.report.damage.push(msg);
    }
}

/// Restores the members of a foreign archive that the patterns select, under
/// `opts.target`. A tape file scanned into the catalog is read by seeking to each selected
/// member; anything else is read through.
pub fn restore(
    tapes: Option<&mut Tapes>,
    catalog: Option<&Catalog>,
    opts: &ForeignRestoreOptions,
    progress: &dyn Progress,
) -> Result<ForeignRestoreReport> {
    let selector = Selector::new(&opts.patterns)?;
    let policy = opts.policy_roots.as_ref().map(reel_policy::Policy::load);
    let filter = policy.as_ref().map(reel_policy::RestoreFilter::new);
    let source_name = describe_source(&opts.source, &tapes);
    let mut r = Restorer {
        root: RestoreRoot::open(&opts.target, opts.existing)?,
        rules: Rules {
            filter: filter.as_ref(),
            ..Default::default()
        },
        allow_outside_symlinks: opts.allow_outside_symlinks,
        buf: vec![0u8; 1 << 20],
        report: ForeignRestoreReport {
            source: source_name.clone(),
            restore: RestoreReport {
                target: opts.target.clone(),
                ..Default::default()
            },
            ..Default::default()
        },
        progress,
    };
    if let Some(p) = &policy {
        for d in &p.diagnostics {
            let msg = format!("policy: {d}");
            progress.problem(&msg);
            r.report.restore.warnings.push(msg);
        }
    }
    match &opts.source {
        ForeignSource::Archives(paths) => {
            progress.total(archive_bytes(paths), 0);
            let mut pax = archive_reader(paths)?;
            restore_sequential(&mut pax, &selector, &mut r, &source_name)?;
            r.report.volume_label = pax.volume_label().map(str::to_string);
        }
        ForeignSource::TapeFile(file) => {
            let tapes = need_tapes(tapes, *file)?;
            let mut tf = TapeFile::open(&mut *tapes.drive, *file)?;
            match catalog_scan_of(&mut tf, catalog, *file)? {
                Some(scan) if scan.seekable() => {
                    let cat = catalog.ok_or(CoreError::NoCatalog)?;
                    r.report.from_catalog = Some(scan.id);
                    restore_seeking(tf, cat, &scan, &selector, &mut r, &source_name)?;
                }
                _ => {
                    let mut pax = PaxReader::new(tf);
                    restore_sequential(&mut pax, &selector, &mut r, &source_name)?;
                    r.report.volume_label = pax.volume_label().map(str::to_string);
                }
            }
        }
    }
    let Restorer {
        root, mut report, ..
    } = r;
    for e in root.finish() {
        let msg = e.to_string();
        progress.problem(&msg);
        report.restore.problems.push(msg);
    }
    Ok(report)
}

fn restore_sequential<R: Read>(
    pax: &mut PaxReader<R>,
    selector: &Selector,
    r: &mut Restorer<'_>,
    source: &str,
) -> Result<()> {
    while let Some(next) = pax.next_or_damage()? {
        match next {
            Next::Member(read) => {
                if selector.matches(match_path(&read.entry.path)) {
                    r.member(pax, read)?;
                }
            }
            Next::Damage(d) => r.damage(source, d),
        }
    }
    Ok(())
}

fn restore_seeking(
    tf: TapeFile<'_>,
    catalog: &Catalog,
    scan: &ForeignFile,
    selector: &Selector,
    r: &mut Restorer<'_>,
    source: &str,
) -> Result<()> {
    // The selected members, and the regular files selected hard links need; each keeps its
    // path, to check the catalog against the tape.
    let mut planner = Planner::new(selector, match_path, |e| e.path.clone());
    catalog.for_each_entry(scan.id, |e: IndexEntry| -> Result<()> {
        planner.offer(&e);
        Ok(())
    })?;
    let plan = planner.finish(|_| Ok::<_, CoreError>(None))?;
    r.report
        .restore
        .added_link_targets
        .extend(plan.added_link_targets);
    r.progress.total(plan.total_bytes, plan.members);
    let record_size = scan.record_size as usize;
    let mut pax = PaxReader::new(tf);
    let mut approach = Approach::new(record_size);
    // A tape file has one source: the groups are one.
    for planned in plan.groups.into_values().flatten() {
        if approach.must_seek(pax.offset(), planned.offset) {
            pax.get_mut().seek_to(planned.offset, record_size)?;
            pax.reset_at(planned.offset);
            approach.arrived();
        }
        // Read on to the member (a few headers at most when near).
        loop {
            match pax.next_or_damage()? {
                None => {
                    r.damage(
                        source,
                        format!(
                            "the tape file ends before {} (at byte {} by the catalog): the catalog is out of date; run `reel catalog scan` again",
                            String::from_utf8_lossy(&planned.detail),
                            planned.offset
                        ),
                    );
                    approach.lost();
                    break;
                }
                Some(Next::Damage(d)) => {
                    r.damage(source, d);
                    approach.lost();
                    break;
                }
                Some(Next::Member(read)) => {
                    if read.header_offset < planned.offset {
                        continue;
                    }
                    if read.header_offset != planned.offset || read.entry.path != planned.detail {
                        r.damage(
                            source,
                            format!(
                                "the catalog places {} at byte {} but the tape has {} at byte {}: the catalog is out of date; run `reel catalog scan` again",
                                String::from_utf8_lossy(&planned.detail),
                                planned.offset,
                                read.entry.display_path(),
                                read.header_offset
                            ),
                        );
                        approach.lost();
                        break;
                    }
                    r.member(&mut pax, read)?;
                    break;
                }
            }
        }
    }
    Ok(())
}

/// What `reel catalog scan` found.
#[derive(Debug, Clone, Serialize)]
pub struct ScanReport {
    /// The scan's id in the catalog (its members are listed under it).
    pub id: uuid::Uuid,
    pub drive: String,
    pub file: u64,
    pub fingerprint: String,
    /// The cartridge's reel label, if it has one.
    pub volume_id: Option<uuid::Uuid>,
    pub barcode: Option<String>,
    /// The archive's own volume label (GNU `-V`), if any.
    pub archive_label: Option<String>,
    pub members: u64,
    pub records: u64,
    pub bytes: u64,
    /// Size of the file's records (0 when they vary).
    pub record_size: u32,
    /// Whether later restores can seek straight to a member.
    pub seekable: bool,
    pub damage: Vec<String>,
    pub notes: Vec<String>,
}

/// Reads tape file `file` of the tape in the drive once and records every member's byte
/// offset in the catalog (replacing an earlier scan of the same file).
pub fn scan(
    tapes: &mut Tapes,
    catalog: &mut Catalog,
    file: u64,
    progress: &dyn Progress,
) -> Result<ScanReport> {
    let drive_name = tapes.drive.describe();
    let (volume_id, barcode) = match reel_archive::read_state(&mut *tapes.drive) {
        Ok(VolumeState::Reel(label)) => (Some(label.volume_id), Some(label.barcode)),
        _ => (None, None),
    };
    let source = ForeignSource::TapeFile(file).describe(Some(&*tapes.drive));
    let mut tf = TapeFile::open(&mut *tapes.drive, file)?;
    let fingerprint = tf.fingerprint()?.ok_or_else(|| CoreError::EmptyTapeFile {
        what: source.clone(),
    })?;
    let first_block = tf.first_block();
    let id = ForeignFile::id_for(&fingerprint, file);
    let mut pax = PaxReader::new(tf);
    let mut damage = Vec::new();
    let mut notes = Vec::new();
    let mut record = catalog.begin_foreign_scan(id)?;
    while let Some(next) = pax.next_or_damage()? {
        match next {
            Next::Member(r) => {
                progress.entry(&r.entry.display_path());
                progress.bytes(r.entry.data_len());
                for n in &r.notes {
                    notes.push(format!("{}: {n}", r.entry.display_path()));
                }
                record.push(&IndexEntry::new(&r.entry, r.header_offset, None))?;
            }
            Next::Damage(d) => {
                let msg = format!("{source}: {d}");
                progress.problem(&msg);
                damage.push(msg);
            }
        }
    }
    let archive_label = pax.volume_label().map(str::to_string);
    // Global pax headers apply to every member after them: a seek would miss them.
    let globals = pax.has_globals();
    let tf = pax.into_inner();
    // Read to the end of the tape file (records after the end-of-archive blocks), so the
    // record count and sizes are the whole file's.
    let mut tf = tf;
    io::copy(&mut tf, &mut io::sink()).map_err(|e| ArchiveError::from_io(source.clone(), e))?;
    let record_size = tf.uniform_record_size().unwrap_or(0);
    let record_size = u32::try_from(record_size).unwrap_or(0);
    let info = ForeignFile {
        id,
        fingerprint: fingerprint.clone(),
        file,
        first_block,
        record_size,
        records: tf.records(),
        bytes: tf.bytes_read(),
        volume_id,
        barcode: barcode.clone(),
        drive: drive_name.clone(),
        scanned: String::new(),
        members: 0,
        damage: damage.len() as u64,
        globals,
    };
    let stored = record.finish(&info)?;
    Ok(ScanReport {
        id,
        drive: drive_name,
        file,
        fingerprint,
        volume_id,
        barcode,
        archive_label,
        members: stored.members,
        records: stored.records,
        bytes: stored.bytes,
        record_size,
        seekable: stored.seekable(),
        damage,
        notes,
    })
}
