//! The catalog: which volumes exist, which sets they hold, and where every member of every
//! set is — so a restore of one file is a lookup, a seek and a few records, and an
//! incremental backup knows what changed.
//!
//! This crate is for that cache, kept in one SQLite file (`$REEL_HOME/catalog.sqlite`). The
//! tapes are the truth: every set carries its own index, and `reel catalog rebuild` recreates
//! the catalog from them, so losing the file loses nothing. It is not for reading tapes
//! (`reel-archive`) or deciding what to back up (`reel-core`).
//!
//! Schema versions are kept in `PRAGMA user_version` and migrated forward on open; a file
//! that is not a healthy catalog gives [`CatalogError::Damaged`], whose message says to run
//! `reel catalog rebuild`.

use std::path::{Path, PathBuf};

use reel_archive::{EntryKind, HashScheme, IndexEntry, MetaDigest, SetInfo, VolumeLabel};
use reel_stream::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

pub mod foreign;
pub mod stopped;
pub use foreign::{ForeignFile, ForeignScan};
pub use reel_error_class::ErrorClass;
pub use stopped::StoppedPart;

/// Schema version this code writes.
pub const SCHEMA_VERSION: u32 = 5;

/// The schema, one step per version: step `i` takes version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: volumes, sets, entries.
    "CREATE TABLE volumes (
         id TEXT PRIMARY KEY,
         barcode TEXT NOT NULL,
         series_id TEXT NOT NULL,
         sequence INTEGER NOT NULL,
         labelled TEXT NOT NULL,
         seen TEXT NOT NULL
     );
     CREATE TABLE sets (
         id TEXT PRIMARY KEY,
         volume_id TEXT NOT NULL,
         number INTEGER NOT NULL,
         name TEXT NOT NULL,
         mode TEXT NOT NULL,
         parent TEXT,
         started TEXT NOT NULL,
         paths TEXT NOT NULL,
         info TEXT NOT NULL
     );
     CREATE TABLE entries (
         set_id TEXT NOT NULL,
         seq INTEGER NOT NULL,
         path BLOB NOT NULL,
         kind TEXT NOT NULL,
         size INTEGER NOT NULL,
         mode INTEGER NOT NULL,
         uid INTEGER NOT NULL,
         gid INTEGER NOT NULL,
         mtime TEXT NOT NULL,
         offset INTEGER NOT NULL,
         hash TEXT,
         link TEXT,
         meta_digest TEXT NOT NULL,
         PRIMARY KEY (set_id, seq)
     );
     CREATE INDEX entries_by_path ON entries(set_id, path);",
    // 1 -> 2: incremental backups need change time, inode and the set holding unchanged data.
    "ALTER TABLE entries ADD COLUMN ctime TEXT;
     ALTER TABLE entries ADD COLUMN ino INTEGER;
     ALTER TABLE entries ADD COLUMN source_set TEXT;
     CREATE INDEX sets_by_volume ON sets(volume_id);",
    // 2 -> 3: sparse files are hashed with their own scheme.
    "ALTER TABLE entries ADD COLUMN hash_scheme TEXT;",
    // 3 -> 4: tape files other programs wrote, scanned once (`reel catalog scan`); their
    // members are rows of `entries` with `set_id` = the scan's id.
    foreign::MIGRATION,
    // 4 -> 5: parts of sets that stopped unfinished at a volume change (the full volume was
    // ejected before the stop, so only the catalog can say so).
    stopped::MIGRATION,
];

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "the catalog {} is damaged ({detail}); it is only a cache: run `reel catalog rebuild` to recreate it from the tapes",
        path.display()
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the catalog {} has schema version {found}, newer than this reel understands ({SCHEMA_VERSION}); use a newer reel or `reel catalog rebuild`",
        path.display()
    )]
    TooNew { path: PathBuf, found: u32 },
    #[error("catalog {}: {source}", path.display())]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("catalog {}: stored set {id} cannot be read: {detail}", path.display())]
    BadRow {
        path: PathBuf,
        id: String,
        detail: String,
    },
}

impl CatalogError {
    /// The class of this error: always usage. The catalog is a cache of what the tapes
    /// say: whatever is wrong with it, the remedy is the user's (`reel catalog rebuild`, a
    /// newer reel), never the tapes'.
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// An SQLite error as a catalog error: corruption met in use is [`CatalogError::Damaged`].
fn sql_error(path: &Path, e: rusqlite::Error) -> CatalogError {
    use rusqlite::ErrorCode::{DatabaseCorrupt, NotADatabase};
    match e.sqlite_error_code() {
        Some(DatabaseCorrupt | NotADatabase) => CatalogError::Damaged {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        _ => CatalogError::Sql {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// A volume the catalog knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeRow {
    pub id: uuid::Uuid,
    pub barcode: String,
    pub series_id: uuid::Uuid,
    pub sequence: u32,
}

/// The catalog file.
pub struct Catalog {
    conn: Connection,
    path: PathBuf,
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// One member's row in `entries` (sets and foreign scans alike).
const INSERT_ENTRY: &str = "INSERT INTO entries (set_id, seq, path, kind, size, mode, uid, gid, mtime, offset, hash, link,
                                                 meta_digest, ctime, ino, source_set, hash_scheme)
                            VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)";

/// Inserts member number `seq` of set (or scan) `set_id` with a statement of [`INSERT_ENTRY`];
/// `source_set` is the earlier set holding its data, if any.
fn insert_entry(
    stmt: &mut rusqlite::Statement<'_>,
    set_id: &str,
    seq: u64,
    e: &IndexEntry,
    source_set: Option<uuid::Uuid>,
) -> rusqlite::Result<usize> {
    // The columns hold what index lines hold: kind letters, decimal times, hex digests.
    let mut kind = [0u8; 4];
    let kind: &str = e.kind.code().encode_utf8(&mut kind);
    stmt.execute(params![
        set_id,
        seq as i64,
        e.path,
        kind,
        e.size as i64,
        e.mode,
        e.uid,
        e.gid,
        e.mtime.to_decimal(),
        e.offset as i64,
        e.hash.as_ref().map(|h| h.to_hex()).as_deref(),
        e.link,
        e.meta_digest.to_string(),
        e.ctime.map(Timestamp::to_decimal),
        e.ino.map(|i| i as i64),
        source_set.map(|s| s.to_string()),
        e.hash_scheme.name(),
    ])
}

/// Text column `index` of a row of `entries`, parsed by `parse`; `what` it holds names it in
/// the error about a value that does not parse.
fn text_column<T>(
    r: &rusqlite::Row<'_>,
    index: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let text = r.get_ref(index)?.as_str()?;
    parse(text).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("{text:?} is not {what}").into(),
        )
    })
}

/// Like [`text_column`], for a column that may be NULL.
fn optional_text_column<T>(
    r: &rusqlite::Row<'_>,
    index: usize,
    what: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> rusqlite::Result<Option<T>> {
    match r.get_ref(index)? {
        rusqlite::types::ValueRef::Null => Ok(None),
        _ => text_column(r, index, what, parse).map(Some),
    }
}

impl Catalog {
    /// Opens (creating or migrating) the catalog at `path`.
    pub fn open(path: &Path) -> Result<Catalog> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let damaged = |detail: String| CatalogError::Damaged {
            path: path.to_path_buf(),
            detail,
        };
        let conn = Connection::open(path).map_err(|e| damaged(e.to_string()))?;
        let mut cat = Catalog {
            conn,
            path: path.to_path_buf(),
        };
        // A file that is not a database fails here, not later in the middle of a job. Damage
        // deeper in the file is reported where it is met (SQLITE_CORRUPT), with the same
        // advice: checking the whole file on every open would cost every command its size.
        cat.conn
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(|e| damaged(e.to_string()))?;
        cat.conn
            .execute_batch(
                // SQLite's default page cache (2 MiB) and on-disk temp store: a bigger
                // cache made a 100,000-file backup no faster and its memory grow with the tree.
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
            )
            .map_err(|e| damaged(e.to_string()))?;
        cat.migrate()?;
        Ok(cat)
    }

    /// Opens the catalog at `path` for jobs that only read it (restore, list, verify): a
    /// read-only connection, with none of [`Catalog::open`]'s set-up statements, that leaves
    /// SQLite's `-wal`/`-shm` files in place when it closes instead of creating and deleting
    /// them on every command (about a third of the catalog's cost in a one-file restore).
    /// A missing file or an older schema goes through [`Catalog::open`], which creates or
    /// migrates it, as does any failure, so errors are exactly those of `open`.
    pub fn open_read_only(path: &Path) -> Result<Catalog> {
        use rusqlite::OpenFlags;
        if !path.is_file() {
            return Self::open(path);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        let Ok(conn) = Connection::open_with_flags(path, flags) else {
            return Self::open(path);
        };
        // One statement for both checks: reading sqlite_master is what fails on a file that
        // is not a database (as in `open`), and the schema it loads is needed anyway.
        let found = conn.query_row(
            "SELECT (SELECT count(*) FROM sqlite_master), user_version FROM pragma_user_version",
            [],
            |r| r.get::<_, u32>(1),
        );
        match found {
            Ok(version) if version == SCHEMA_VERSION => Ok(Catalog {
                conn,
                path: path.to_path_buf(),
            }),
            Ok(version) if version > SCHEMA_VERSION => Err(CatalogError::TooNew {
                path: path.to_path_buf(),
                found: version,
            }),
            _ => {
                drop(conn);
                Self::open(path)
            }
        }
    }

    /// Opens an in-memory catalog (tests, one-off rebuilds).
    pub fn in_memory() -> Result<Catalog> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| CatalogError::Sql {
            path: path.clone(),
            source: e,
        })?;
        let mut cat = Catalog { conn, path };
        cat.migrate()?;
        Ok(cat)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
        move |e| sql_error(&self.path, e)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<u32> {
        self.conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.sql())
    }

    fn migrate(&mut self) -> Result<()> {
        let found = self.schema_version()?;
        if found > SCHEMA_VERSION {
            return Err(CatalogError::TooNew {
                path: self.path.clone(),
                found,
            });
        }
        Self::migrate_to(&mut self.conn, found, SCHEMA_VERSION).map_err(|e| CatalogError::Damaged {
            path: self.path.clone(),
            detail: format!("migrating from schema {found}: {e}"),
        })
    }

    /// Applies the migration steps from version `from` to `to`, each in its own transaction.
    fn migrate_to(conn: &mut Connection, from: u32, to: u32) -> rusqlite::Result<()> {
        for version in from..to {
            let tx = conn.transaction()?;
            tx.execute_batch(MIGRATIONS[version as usize])?;
            tx.pragma_update(None, "user_version", version + 1)?;
            tx.commit()?;
        }
        Ok(())
    }

    /// Creates a catalog file at an older schema version (for migration tests).
    pub fn create_at_version(path: &Path, version: u32) -> Result<Connection> {
        let mut conn = Connection::open(path).map_err(|e| CatalogError::Sql {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::migrate_to(&mut conn, 0, version.min(SCHEMA_VERSION)).map_err(|e| {
            CatalogError::Sql {
                path: path.to_path_buf(),
                source: e,
            }
        })?;
        Ok(conn)
    }

    /// Records (or refreshes) a volume from its label.
    pub fn record_volume(&mut self, label: &VolumeLabel) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO volumes (id, barcode, series_id, sequence, labelled, seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT(id) DO UPDATE SET barcode = ?2, seen = ?6",
                params![
                    label.volume_id.to_string(),
                    label.barcode,
                    label.series_id.to_string(),
                    label.sequence,
                    label.created,
                    now()
                ],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Forgets a volume that was erased or relabelled, with the sets that began on it and the
    /// stopped parts on it.
    pub fn forget_volume(&mut self, volume_id: uuid::Uuid) -> Result<usize> {
        let id = volume_id.to_string();
        let tx = self.conn.transaction().map_err(|e| CatalogError::Sql {
            path: self.path.clone(),
            source: e,
        })?;
        let sql = |e| sql_error(&self.path, e);
        tx.execute(
            "DELETE FROM entries WHERE set_id IN (SELECT id FROM sets WHERE volume_id = ?1)",
            [&id],
        )
        .map_err(sql)?;
        let n = tx
            .execute("DELETE FROM sets WHERE volume_id = ?1", [&id])
            .map_err(sql)?;
        tx.execute("DELETE FROM stopped_parts WHERE volume_id = ?1", [&id])
            .map_err(sql)?;
        tx.execute("DELETE FROM volumes WHERE id = ?1", [&id])
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(n)
    }

    /// All volumes, by series and sequence.
    pub fn volumes(&self) -> Result<Vec<VolumeRow>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, barcode, series_id, sequence FROM volumes ORDER BY series_id, sequence",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get(1)?,
                    r.get::<_, String>(2)?,
                    r.get(3)?,
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, barcode, series, sequence) = row.map_err(self.sql())?;
            out.push(VolumeRow {
                id: id.parse().unwrap_or_default(),
                barcode,
                series_id: series.parse().unwrap_or_default(),
                sequence,
            });
        }
        Ok(out)
    }

    /// Stores a set and its members (replacing an earlier copy of the same set), in one
    /// transaction: a crash leaves the catalog as it was.
    pub fn add_set<E>(
        &mut self,
        info: &SetInfo,
        entries: impl IntoIterator<Item = Result<IndexEntry, E>>,
    ) -> Result<u64>
    where
        E: std::fmt::Display,
    {
        let path = self.path.clone();
        let sql = |e| sql_error(&path, e);
        let id = info.id.to_string();
        let info_json = serde_json::to_string(info).map_err(|e| CatalogError::BadRow {
            path: path.clone(),
            id: id.clone(),
            detail: e.to_string(),
        })?;
        let tx = self.conn.transaction().map_err(sql)?;
        tx.execute("DELETE FROM entries WHERE set_id = ?1", [&id])
            .map_err(sql)?;
        tx.execute("DELETE FROM sets WHERE id = ?1", [&id])
            .map_err(sql)?;
        tx.execute(
            "INSERT INTO sets (id, volume_id, number, name, mode, parent, started, paths, info)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                info.volume_id.to_string(),
                info.number,
                info.name,
                format!("{:?}", info.mode).to_lowercase(),
                info.parent.map(|p| p.to_string()),
                info.started,
                paths_key(&info.paths),
                info_json
            ],
        )
        .map_err(sql)?;
        let mut count = 0u64;
        {
            let mut stmt = tx.prepare(INSERT_ENTRY).map_err(sql)?;
            for e in entries {
                let e = e.map_err(|err| CatalogError::BadRow {
                    path: path.clone(),
                    id: id.clone(),
                    detail: err.to_string(),
                })?;
                insert_entry(&mut stmt, &id, count, &e, e.source_set).map_err(sql)?;
                count += 1;
            }
        }
        tx.commit().map_err(sql)?;
        Ok(count)
    }

    fn parse_info(&self, id: &str, json: &str) -> Result<SetInfo> {
        serde_json::from_str(json).map_err(|e| CatalogError::BadRow {
            path: self.path.clone(),
            id: id.to_string(),
            detail: e.to_string(),
        })
    }

    fn query_sets(&self, sql_text: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<SetInfo>> {
        let mut stmt = self.conn.prepare(sql_text).map_err(self.sql())?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row.map_err(self.sql())?;
            out.push(self.parse_info(&id, &json)?);
        }
        Ok(out)
    }

    /// Every set, oldest first.
    pub fn sets(&self) -> Result<Vec<SetInfo>> {
        self.query_sets("SELECT id, info FROM sets ORDER BY started, number", &[])
    }

    /// The sets that begin on a volume, by their number on it.
    pub fn sets_on_volume(&self, volume_id: uuid::Uuid) -> Result<Vec<SetInfo>> {
        self.query_sets(
            "SELECT id, info FROM sets WHERE volume_id = ?1 ORDER BY number",
            &[&volume_id.to_string()],
        )
    }

    pub fn set(&self, id: uuid::Uuid) -> Result<Option<SetInfo>> {
        Ok(self
            .query_sets(
                "SELECT id, info FROM sets WHERE id = ?1",
                &[&id.to_string()],
            )?
            .pop())
    }

    /// The newest set of exactly these backup paths (the parent of an incremental backup).
    pub fn latest_set_for_paths(&self, paths: &[String]) -> Result<Option<SetInfo>> {
        Ok(self
            .query_sets(
                "SELECT id, info FROM sets WHERE paths = ?1 ORDER BY started DESC, number DESC LIMIT 1",
                &[&paths_key(paths)],
            )?
            .pop())
    }

    fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<IndexEntry> {
        Ok(IndexEntry {
            path: r.get(0)?,
            kind: text_column(r, 1, "a member kind letter", |t| {
                let mut chars = t.chars();
                match (chars.next(), chars.next()) {
                    (Some(code), None) => EntryKind::from_code(code),
                    _ => None,
                }
            })?,
            size: r.get::<_, i64>(2)? as u64,
            mode: r.get(3)?,
            uid: r.get(4)?,
            gid: r.get(5)?,
            mtime: text_column(r, 6, "a time", Timestamp::parse_decimal)?,
            offset: r.get::<_, i64>(7)? as u64,
            hash: optional_text_column(r, 8, "a BLAKE3 hash", |t| blake3::Hash::from_hex(t).ok())?,
            hash_scheme: optional_text_column(r, 14, "a hash scheme", HashScheme::from_name)?
                .unwrap_or_default(),
            link: r.get(9)?,
            meta_digest: text_column(r, 10, "a metadata digest", MetaDigest::from_hex)?,
            ctime: optional_text_column(r, 11, "a time", Timestamp::parse_decimal)?,
            ino: r.get::<_, Option<i64>>(12)?.map(|i| i as u64),
            source_set: optional_text_column(r, 13, "a set id", |t| t.parse().ok())?,
        })
    }

    const ENTRY_COLUMNS: &'static str = "path, kind, size, mode, uid, gid, mtime, offset, hash, link, meta_digest, ctime, ino, source_set, hash_scheme";

    /// The member `path` of set `set`.
    pub fn entry(&self, set: uuid::Uuid, path: &[u8]) -> Result<Option<IndexEntry>> {
        let q = format!(
            "SELECT {} FROM entries WHERE set_id = ?1 AND path = ?2",
            Self::ENTRY_COLUMNS
        );
        self.conn
            .query_row(&q, params![set.to_string(), path], Self::row_entry)
            .optional()
            .map_err(self.sql())
    }

    /// Calls `each` for the member `prefix` of set `set` and every member under it
    /// (`prefix/…`), in archive order: two lookups on the path index, not a scan of the set.
    pub fn for_each_entry_under<E: From<CatalogError>>(
        &self,
        set: uuid::Uuid,
        prefix: &[u8],
        mut each: impl FnMut(IndexEntry) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        if let Some(e) = self.entry(set, prefix)? {
            each(e)?;
        }
        // Paths under `p` sort between `p/` and `p0` ('0' follows '/').
        let lower = [prefix, b"/"].concat();
        let upper = [prefix, b"0"].concat();
        // In archive order, as a scan of the set lists them: path order puts `a/b-x` between
        // `a/b` and `a/b/c` ('-' sorts before '/').
        let q = format!(
            "SELECT {} FROM entries INDEXED BY entries_by_path WHERE set_id = ?1 AND path >= ?2 AND path < ?3 ORDER BY seq",
            Self::ENTRY_COLUMNS
        );
        let mut stmt = self.conn.prepare(&q).map_err(self.sql())?;
        let rows = stmt
            .query_map(params![set.to_string(), lower, upper], Self::row_entry)
            .map_err(self.sql())?;
        for row in rows {
            each(row.map_err(self.sql())?)?;
        }
        Ok(())
    }

    /// Calls `each` for every member of set `set`, in archive order.
    pub fn for_each_entry<E: From<CatalogError>>(
        &self,
        set: uuid::Uuid,
        mut each: impl FnMut(IndexEntry) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let q = format!(
            "SELECT {} FROM entries WHERE set_id = ?1 ORDER BY seq",
            Self::ENTRY_COLUMNS
        );
        let mut stmt = self.conn.prepare(&q).map_err(self.sql())?;
        let rows = stmt
            .query_map([set.to_string()], Self::row_entry)
            .map_err(self.sql())?;
        for row in rows {
            each(row.map_err(self.sql())?)?;
        }
        Ok(())
    }

    /// Writes the write-ahead log into the main file (before copying the file elsewhere).
    pub fn conn_checkpoint(&self) {
        let _ = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    }

    /// Members of a set.
    pub fn entry_count(&self, set: uuid::Uuid) -> Result<u64> {
        self.conn
            .query_row(
                "SELECT COUNT(*) FROM entries WHERE set_id = ?1",
                [set.to_string()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(self.sql())
    }
}

/// The backup paths of a set as one comparable key.
fn paths_key(paths: &[String]) -> String {
    let mut p = paths.to_vec();
    p.sort();
    p.join("\n")
}
