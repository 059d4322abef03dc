//! Tape files other programs wrote (GNU tar, bsdtar, star, …), scanned once by
//! `reel catalog scan` so that a later restore of one member seeks straight to it.
//!
//! A scanned tape file is a pseudo-set: one row in `foreign_files`, its members rows of
//! `entries` whose `set_id` is the scan's id and whose `offset` is the byte offset of the
//! member's first header in the tape file. A tape file is recognised by its number on the
//! tape and the BLAKE3 of its first record (a tar archive's first record holds its first
//! header, names and times, so two different archives practically never share it); the
//! reel label of the cartridge, when it has one, is kept for people. The id is derived from
//! both, so scanning the same tape file again replaces the earlier scan.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::{Catalog, CatalogError, Result, now};
use reel_archive::IndexEntry;

pub(crate) const MIGRATION: &str = "CREATE TABLE foreign_files (
         id TEXT PRIMARY KEY,
         fingerprint TEXT NOT NULL,
         file INTEGER NOT NULL,
         first_block INTEGER NOT NULL,
         record_size INTEGER NOT NULL,
         records INTEGER NOT NULL,
         bytes INTEGER NOT NULL,
         volume_id TEXT,
         barcode TEXT,
         drive TEXT NOT NULL,
         scanned TEXT NOT NULL,
         members INTEGER NOT NULL,
         damage INTEGER NOT NULL,
         globals INTEGER NOT NULL
     );
     CREATE INDEX foreign_by_fingerprint ON foreign_files(fingerprint, file);";

/// One scanned tape file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignFile {
    /// The pseudo-set id (see [`ForeignFile::id_for`]).
    pub id: uuid::Uuid,
    /// BLAKE3 (hex) of the tape file's first record.
    pub fingerprint: String,
    /// Tape file number (0 = the first file on the tape).
    pub file: u64,
    /// Logical block of the file's first record when it was scanned.
    pub first_block: u64,
    /// Size of every record of the file but the last (which may be shorter); 0 when the
    /// records vary, which rules out seeking by byte offset.
    pub record_size: u32,
    pub records: u64,
    /// Bytes in the tape file.
    pub bytes: u64,
    /// The cartridge's reel label, when it has one.
    pub volume_id: Option<uuid::Uuid>,
    pub barcode: Option<String>,
    /// The drive it was scanned in (for people).
    pub drive: String,
    /// When (RFC 3339); filled in by [`ForeignScan::finish`].
    pub scanned: String,
    pub members: u64,
    /// Damaged stretches the scan stepped over.
    pub damage: u64,
    /// The archive has global pax headers: members read after a seek would miss them, so
    /// restores read such a file from its start.
    pub globals: bool,
}

impl ForeignFile {
    /// The id of the scan of tape file `file` whose first record has this fingerprint.
    pub fn id_for(fingerprint: &str, file: u64) -> uuid::Uuid {
        let h = blake3::hash(format!("reel foreign tape file\0{file}\0{fingerprint}").as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&h.as_bytes()[..16]);
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    /// Byte offsets can be turned into records (every record but the last is one size).
    pub fn seekable(&self) -> bool {
        self.record_size > 0 && !self.globals
    }
}

/// A scan being recorded: members are added as they are read, and the whole scan is stored
/// in one transaction by [`ForeignScan::finish`] (a crash leaves the catalog as it was).
pub struct ForeignScan<'c> {
    tx: Transaction<'c>,
    path: std::path::PathBuf,
    id: uuid::Uuid,
    count: u64,
}

impl ForeignScan<'_> {
    fn sql(&self) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
        move |e| CatalogError::Sql {
            path: self.path.clone(),
            source: e,
        }
    }

    /// Records one member (its `offset` is its first header's byte offset in the file).
    pub fn push(&mut self, e: &IndexEntry) -> Result<()> {
        let mut stmt = self
            .tx
            .prepare_cached(crate::INSERT_ENTRY)
            .map_err(self.sql())?;
        // Members of a foreign tape file live in no earlier set.
        crate::insert_entry(&mut stmt, &self.id.to_string(), self.count, e, None)
            .map_err(self.sql())?;
        self.count += 1;
        Ok(())
    }

    /// Members recorded so far.
    pub fn members(&self) -> u64 {
        self.count
    }

    /// Stores the scan's description and commits. `info.id` must be the id the scan began
    /// with; `members` and `scanned` are filled in.
    pub fn finish(self, info: &ForeignFile) -> Result<ForeignFile> {
        self.finish_scanned_at(info, now())
    }

    fn finish_scanned_at(self, info: &ForeignFile, scanned: String) -> Result<ForeignFile> {
        let mut info = info.clone();
        info.id = self.id;
        info.members = self.count;
        info.scanned = scanned;
        self.tx
            .execute(
                "INSERT INTO foreign_files (id, fingerprint, file, first_block, record_size, records, bytes,
                                            volume_id, barcode, drive, scanned, members, damage, globals)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    info.id.to_string(),
                    info.fingerprint,
                    info.file as i64,
                    info.first_block as i64,
                    info.record_size,
                    info.records as i64,
                    info.bytes as i64,
                    info.volume_id.map(|v| v.to_string()),
                    info.barcode,
                    info.drive,
                    info.scanned,
                    info.members as i64,
                    info.damage as i64,
                    info.globals,
                ],
            )
            .map_err(self.sql())?;
        self.tx.commit().map_err(|e| CatalogError::Sql {
            path: self.path.clone(),
            source: e,
        })?;
        Ok(info)
    }
}

impl Catalog {
    /// Starts recording a scan with this id, replacing an earlier scan of the same file.
    pub fn begin_foreign_scan(&mut self, id: uuid::Uuid) -> Result<ForeignScan<'_>> {
        let path = self.path.clone();
        let sql = |e| CatalogError::Sql {
            path: path.clone(),
            source: e,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute("DELETE FROM entries WHERE set_id = ?1", [id.to_string()])
            .map_err(sql)?;
        tx.execute("DELETE FROM foreign_files WHERE id = ?1", [id.to_string()])
            .map_err(sql)?;
        Ok(ForeignScan {
            tx,
            path,
            id,
            count: 0,
        })
    }

    /// Copies a scan, its description and members, from another catalog (the one a rebuild
    /// replaces: a scan is not on any tape, and reading the tape file again may take hours).
    /// The scan keeps its id and the time it was made. Returns the members `from` holds;
    /// nothing is kept unless that is all of them (`scan.members`).
    pub fn copy_foreign_scan(&mut self, from: &Catalog, scan: &ForeignFile) -> Result<u64> {
        let mut copy = self.begin_foreign_scan(scan.id)?;
        from.for_each_entry(scan.id, |e| copy.push(&e))?;
        let copied = copy.members();
        // Dropped uncommitted, the copy's transaction rolls back.
        if copied == scan.members {
            copy.finish_scanned_at(scan, scan.scanned.clone())?;
        }
        Ok(copied)
    }

    fn row_foreign(r: &rusqlite::Row<'_>) -> rusqlite::Result<ForeignFile> {
        let id: String = r.get(0)?;
        let volume: Option<String> = r.get(7)?;
        Ok(ForeignFile {
            id: id.parse().unwrap_or_default(),
            fingerprint: r.get(1)?,
            file: r.get::<_, i64>(2)? as u64,
            first_block: r.get::<_, i64>(3)? as u64,
            record_size: r.get(4)?,
            records: r.get::<_, i64>(5)? as u64,
            bytes: r.get::<_, i64>(6)? as u64,
            volume_id: volume.and_then(|v| v.parse().ok()),
            barcode: r.get(8)?,
            drive: r.get(9)?,
            scanned: r.get(10)?,
            members: r.get::<_, i64>(11)? as u64,
            damage: r.get::<_, i64>(12)? as u64,
            globals: r.get(13)?,
        })
    }

    const FOREIGN_COLUMNS: &'static str = "id, fingerprint, file, first_block, record_size, records, bytes, volume_id, barcode, drive, scanned, members, damage, globals";

    /// The scan of tape file `file` whose first record has this fingerprint, if any.
    pub fn foreign_file(&self, fingerprint: &str, file: u64) -> Result<Option<ForeignFile>> {
        let q = format!(
            "SELECT {} FROM foreign_files WHERE fingerprint = ?1 AND file = ?2",
            Self::FOREIGN_COLUMNS
        );
        self.conn
            .query_row(&q, params![fingerprint, file as i64], Self::row_foreign)
            .optional()
            .map_err(self.sql())
    }

    /// Every scanned tape file, newest scan first.
    pub fn foreign_files(&self) -> Result<Vec<ForeignFile>> {
        let q = format!(
            "SELECT {} FROM foreign_files ORDER BY scanned DESC",
            Self::FOREIGN_COLUMNS
        );
        let mut stmt = self.conn.prepare(&q).map_err(self.sql())?;
        let rows = stmt.query_map([], Self::row_foreign).map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row.map_err(self.sql())?);
        }
        Ok(out)
    }
}
