//! `reel list`: the sets of a volume, or the members of one set (from its index alone).

use serde::Serialize;

use reel_archive::{IndexEntry, SetInfo, SetState, VolumeLabel};
use reel_tape::TapeDrive;

use reel_catalog::Catalog;

use crate::error::Result;
use crate::select::Selector;
use crate::sets;
use crate::tapes::Tapes;

#[derive(Debug, Clone, Serialize)]
pub struct SetListing {
    pub number: u32,
    /// `complete`, or why the set cannot be used.
    pub state: String,
    pub data_file: u64,
    pub info: Option<SetInfo>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VolumeListing {
    pub drive: String,
    pub label: VolumeLabel,
    pub sets: Vec<SetListing>,
    /// An unfinished set left by an interrupted or stopped backup (the next backup replaces
    /// it).
    pub leftover: Option<String>,
}

/// The sets of the volume in `drive`; a part of a set the catalog knows stopped unfinished
/// is shown as the leftover it is (the next backup replaces it), not as continued.
pub fn list_sets(drive: &mut dyn TapeDrive, catalog: Option<&Catalog>) -> Result<VolumeListing> {
    let map = reel_archive::map_volume_knowing(drive, &sets::stopped_set_ids(catalog))?;
    let sets = map
        .sets
        .iter()
        .map(|s| SetListing {
            number: s.number,
            state: match &s.state {
                SetState::Complete => "complete".into(),
                SetState::Incomplete(w) => format!("incomplete: {w}"),
                SetState::Damaged(w) => format!("damaged: {w}"),
                SetState::Continued(m) => format!(
                    "part {} of set {} ({}), continued on {}",
                    m.part, m.set_name, m.set_id, m.next_barcode
                ),
                SetState::Stopped(m) => {
                    format!("unfinished: {}", reel_archive::volume::stopped_part(m))
                }
            },
            data_file: s.data_file,
            info: s.info.clone(),
        })
        .collect();
    Ok(VolumeListing {
        drive: drive.describe(),
        label: map.label,
        sets,
        leftover: map.leftover,
    })
}

/// Calls `on_set` with the set's description, then `each` for every member of set `key`
/// (default: the latest) that the patterns select, from the catalog or the set's index
/// (never its data).
pub fn list_entries(
    tapes: &mut Tapes,
    catalog: Option<&Catalog>,
    key: Option<&str>,
    patterns: &[String],
    on_set: impl FnOnce(&SetInfo),
    mut each: impl FnMut(&IndexEntry),
) -> Result<SetInfo> {
    let selector = Selector::new(patterns)?;
    let set = sets::resolve(tapes, catalog, key)?;
    on_set(&set.info);
    let mut visit = |e: IndexEntry| -> Result<()> {
        if selector.matches(&e.path) {
            each(&e);
        }
        Ok(())
    };
    // Patterns that start with plain components: range lookups under them on the catalog's
    // path index, not a scan of the whole set.
    match selector
        .lookup_paths()
        .filter(|_| set.from_catalog())
        .zip(catalog)
    {
        Some((paths, cat)) => {
            for p in paths {
                cat.for_each_entry_under(set.info.id, p, &mut visit)?;
            }
        }
        None => sets::for_each_member(tapes, catalog, &set, visit)?,
    }
    Ok(set.info)
}
