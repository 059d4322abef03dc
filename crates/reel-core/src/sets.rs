//! Finding a set and its members: on the tape in the drive, or in the catalog.
//!
//! The tape is authoritative, the catalog is fast: a set found on the volume in the drive
//! takes its members from the catalog when the catalog has that set (the same id means the
//! same members), else from the set's index on tape. A set that is not on the volume in the
//! drive (an older volume, a set whose index is on another volume of its series) is found
//! in the catalog, and its volumes are loaded through the changer.

use reel_archive::{IndexEntry, SetInfo, SetOnTape};
use reel_catalog::Catalog;

use crate::error::{CoreError, Result};
use crate::tapes::Tapes;

/// Where a set's members are read from.
#[derive(Debug, Clone)]
enum Members {
    Catalog,
    Tape {
        set: Box<SetOnTape>,
        index_block: u64,
    },
}

/// A set found by [`resolve`].
#[derive(Debug, Clone)]
pub struct ResolvedSet {
    pub info: SetInfo,
    /// Barcode of the volume the set begins on.
    pub barcode: String,
    members: Members,
}

impl ResolvedSet {
    /// True when the members come from the catalog (no index read from tape).
    pub fn from_catalog(&self) -> bool {
        matches!(self.members, Members::Catalog)
    }

    /// The set's data parts.
    pub fn parts(&self) -> Vec<reel_archive::SetPart> {
        self.info.data_parts(&self.barcode)
    }
}

fn catalog_barcode(catalog: &Catalog, info: &SetInfo) -> Result<String> {
    if let Some(p) = info.parts.first() {
        return Ok(p.barcode.clone());
    }
    Ok(catalog
        .volumes()?
        .into_iter()
        .find(|v| v.id == info.volume_id)
        .map(|v| v.barcode)
        .unwrap_or_default())
}

/// Finds set `key` (number on the volume in the drive, name, id or id prefix; `None` = the
/// newest complete set on the volume in the drive).
pub fn resolve(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    key: Option<&str>,
) -> Result<ResolvedSet> {
    if let (Some(cat), Some(key)) = (catalog, key)
        && let Some(found) = resolve_by_catalog(tapes, cat, key)
    {
        return Ok(found);
    }
    let on_tape =
        match reel_archive::map_volume_knowing(&mut *tapes.drive, &stopped_set_ids(catalog)) {
            Ok(map) => {
                let found = map.find_set(key).cloned();
                found.map(|set| (set, map)).map_err(CoreError::from)
            }
            Err(e) => Err(CoreError::UnreadableVolume(e)),
        };
    match on_tape {
        Ok((set, map)) => {
            let info = set
                .info
                .clone()
                .ok_or(CoreError::SetIndexUnreadable { number: set.number })?;
            let in_catalog = match catalog {
                Some(c) => c.set(info.id).ok().flatten().is_some(),
                None => false,
            };
            let members = if in_catalog {
                Members::Catalog
            } else {
                let index_block = *map
                    .file_starts
                    .get(set.index_file as usize)
                    .ok_or(CoreError::SetIndexMissing { number: set.number })?;
                Members::Tape {
                    set: Box::new(set),
                    index_block,
                }
            };
            Ok(ResolvedSet {
                info,
                barcode: map.label.barcode.clone(),
                members,
            })
        }
        Err(tape_err) => {
            let (Some(cat), Some(key)) = (catalog, key) else {
                return Err(tape_err);
            };
            let lower = key.to_ascii_lowercase();
            let found: Vec<SetInfo> = cat
                .sets()?
                .into_iter()
                .filter(|s| s.name == key || s.id.to_string().starts_with(&lower))
                .collect();
            match found.as_slice() {
                [one] => Ok(ResolvedSet {
                    barcode: catalog_barcode(cat, one)?,
                    info: one.clone(),
                    members: Members::Catalog,
                }),
                [] => Err(tape_err),
                many => Err(CoreError::AmbiguousSet {
                    key: key.to_string(),
                    matches: many.len(),
                }),
            }
        }
    }
}

/// The sets the catalog knows stopped unfinished at a volume change (none without a
/// catalog, or when it cannot say: the tape alone then shows their parts as continued).
pub fn stopped_set_ids(catalog: Option<&Catalog>) -> Vec<uuid::Uuid> {
    catalog
        .and_then(|c| c.stopped_set_ids().ok())
        .unwrap_or_default()
}

/// Calls `each` for every member of the set, in archive order.
pub fn for_each_member(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    set: &ResolvedSet,
    mut each: impl FnMut(IndexEntry) -> Result<()>,
) -> Result<()> {
    match (&set.members, catalog) {
        (Members::Catalog, Some(cat)) => cat.for_each_entry(set.info.id, each),
        (
            Members::Tape {
                set: on_tape,
                index_block,
            },
            _,
        ) => {
            let (_, mut index) =
                reel_archive::open_index(&mut *tapes.drive, on_tape, *index_block)?;
            while let Some(e) = index.next_entry()? {
                each(e)?;
            }
            Ok(())
        }
        (Members::Catalog, None) => Err(CoreError::ListNeedsCatalog),
    }
}

/// The description of set `id` (an ancestor of an incremental set): from the catalog, else
/// from the volume in the drive.
pub fn info_by_id(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    id: uuid::Uuid,
) -> Result<(SetInfo, String)> {
    if let Some(cat) = catalog
        && let Some(info) = cat.set(id)?
    {
        let barcode = catalog_barcode(cat, &info)?;
        return Ok((info, barcode));
    }
    let map = reel_archive::map_volume(&mut *tapes.drive)?;
    map.complete_sets()
        .filter_map(|s| s.info.clone())
        .find(|i| i.id == id)
        .map(|i| (i, map.label.barcode.clone()))
        .ok_or(CoreError::AncestorNotFound { id })
}

/// The fast way to a named set: the label of the volume in the drive, the catalog's sets of
/// that volume, and one record read to check the set's index is still where the catalog
/// says (a tape rewritten since would not match). `None`: go the long way (map the volume).
fn resolve_by_catalog(tapes: &mut Tapes, cat: &Catalog, key: &str) -> Option<ResolvedSet> {
    let reel_archive::VolumeState::Reel(label) =
        reel_archive::read_state(&mut *tapes.drive).ok()?
    else {
        return None;
    };
    let sets = cat.sets_on_volume(label.volume_id).ok()?;
    let lower = key.to_ascii_lowercase();
    let mut found = sets.iter().filter(|s| match key.parse::<u32>() {
        Ok(n) => s.number == n,
        Err(_) => s.name == key || s.id.to_string().starts_with(&lower),
    });
    let info = found.next()?.clone();
    if found.next().is_some() {
        return None;
    }
    let parts = info.data_parts(&label.barcode);
    let last = parts.last()?;
    if last.volume_id != label.volume_id {
        return None;
    }
    // The index follows the last part's records and their filemark.
    let index_block = last.first_block + last.records + 1;
    tapes
        .drive
        .set_position(
            reel_tape::SeekTo::LogicalBlock {
                partition: 0,
                block: index_block,
            },
            false,
        )
        .ok()?;
    match reel_archive::volume::read_after_data(&mut *tapes.drive, last.data_file + 1).ok()? {
        reel_archive::volume::AfterData::Index(on_tape) if on_tape.id == info.id => {}
        _ => return None,
    }
    Some(ResolvedSet {
        info,
        barcode: label.barcode,
        members: Members::Catalog,
    })
}
