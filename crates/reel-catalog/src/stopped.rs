//! Parts of sets that stopped unfinished at a volume change.
//!
//! When a set fills a volume, the part on it is closed with a marker naming the volume the
//! set continues on, and the full volume is ejected before the next one is asked for. If
//! none comes (the operator answers `q`) or the set fails later, the set never gets its
//! index: nothing of it can be restored, and its parts only take space. The full volume was
//! ejected, so it cannot say so itself; the catalog does, and the next backup on that volume
//! starts where the unfinished set started (as it does over an interrupted backup).

use rusqlite::params;

use crate::{Catalog, CatalogError, Result};

pub(crate) const MIGRATION: &str = "CREATE TABLE stopped_parts (
         set_id TEXT NOT NULL,
         part INTEGER NOT NULL,
         set_name TEXT NOT NULL,
         volume_id TEXT NOT NULL,
         barcode TEXT NOT NULL,
         data_file INTEGER NOT NULL,
         first_block INTEGER NOT NULL,
         next_barcode TEXT NOT NULL,
         stopped TEXT NOT NULL,
         why TEXT NOT NULL,
         PRIMARY KEY (set_id, part)
     );
     CREATE INDEX stopped_by_volume ON stopped_parts(volume_id, data_file);";

/// One part of a set that stopped unfinished: closed on a full volume with a marker saying
/// the set continues on `next_barcode`, which never came to hold the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoppedPart {
    pub set_id: uuid::Uuid,
    /// The part's number in the set (1 = first), as its marker on tape says.
    pub part: u32,
    pub set_name: String,
    /// The volume the part is on.
    pub volume_id: uuid::Uuid,
    pub barcode: String,
    /// Tape file of the part's data, and the logical block where it begins.
    pub data_file: u64,
    pub first_block: u64,
    /// The volume the part's marker names as the continuation.
    pub next_barcode: String,
    /// When the backup stopped (RFC 3339).
    pub stopped: String,
    /// Why it stopped, as the backup said.
    pub why: String,
}

impl Catalog {
    /// Records a part of a set that stopped unfinished (replacing an earlier record of it).
    pub fn record_stopped_part(&mut self, part: &StoppedPart) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO stopped_parts (set_id, part, set_name, volume_id, barcode,
                                                       data_file, first_block, next_barcode, stopped, why)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    part.set_id.to_string(),
                    part.part,
                    part.set_name,
                    part.volume_id.to_string(),
                    part.barcode,
                    part.data_file as i64,
                    part.first_block as i64,
                    part.next_barcode,
                    part.stopped,
                    part.why,
                ],
            )
            .map_err(self.sql())?;
        Ok(())
    }

    /// Every recorded stopped part, by volume and tape file.
    pub fn stopped_parts(&self) -> Result<Vec<StoppedPart>> {
        self.query_stopped(
            "SELECT * FROM stopped_parts ORDER BY volume_id, data_file",
            &[],
        )
    }

    /// The stopped parts on one volume, by tape file.
    pub fn stopped_parts_on_volume(&self, volume_id: uuid::Uuid) -> Result<Vec<StoppedPart>> {
        self.query_stopped(
            "SELECT * FROM stopped_parts WHERE volume_id = ?1 ORDER BY data_file",
            &[&volume_id.to_string()],
        )
    }

    /// The ids of the sets that stopped unfinished (what a volume map needs to know).
    pub fn stopped_set_ids(&self) -> Result<Vec<uuid::Uuid>> {
        let mut ids: Vec<uuid::Uuid> = self
            .stopped_parts()?
            .into_iter()
            .map(|p| p.set_id)
            .collect();
        ids.sort();
        ids.dedup();
        Ok(ids)
    }

    /// Forgets the stopped parts of a volume from tape file `from_file` on: a new set was
    /// written over them.
    pub fn forget_stopped_parts(&mut self, volume_id: uuid::Uuid, from_file: u64) -> Result<usize> {
        self.conn
            .execute(
                "DELETE FROM stopped_parts WHERE volume_id = ?1 AND data_file >= ?2",
                params![volume_id.to_string(), from_file as i64],
            )
            .map_err(self.sql())
    }

    fn query_stopped(
        &self,
        sql_text: &str,
        args: &[&dyn rusqlite::ToSql],
    ) -> Result<Vec<StoppedPart>> {
        let mut stmt = self.conn.prepare(sql_text).map_err(self.sql())?;
        let rows = stmt
            .query_map(args, |r| {
                Ok((
                    r.get::<_, String>("set_id")?,
                    r.get::<_, String>("volume_id")?,
                    StoppedPart {
                        set_id: uuid::Uuid::nil(),
                        part: r.get("part")?,
                        set_name: r.get("set_name")?,
                        volume_id: uuid::Uuid::nil(),
                        barcode: r.get("barcode")?,
                        data_file: r.get::<_, i64>("data_file")? as u64,
                        first_block: r.get::<_, i64>("first_block")? as u64,
                        next_barcode: r.get("next_barcode")?,
                        stopped: r.get("stopped")?,
                        why: r.get("why")?,
                    },
                ))
            })
            .map_err(self.sql())?;
        let mut out = Vec::new();
        for row in rows {
            let (set_id, volume_id, mut part) = row.map_err(self.sql())?;
            let bad = |what: &str, e: uuid::Error| CatalogError::BadRow {
                path: self.path.clone(),
                id: set_id.clone(),
                detail: format!("stopped part {}: {what}: {e}", part.part),
            };
            part.set_id = set_id.parse().map_err(|e| bad("set id", e))?;
            part.volume_id = volume_id.parse().map_err(|e| bad("volume id", e))?;
            out.push(part);
        }
        Ok(out)
    }
}
