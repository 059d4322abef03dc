//! Single instance store links in sets.
//!
//! Backup: a SIS link (a file sharing its extents with a common-store file, as `reel sis
//! merge` makes them) is written as a pax hard link to the member
//! `.sis-common-store/<hash>.sis` of the same set, with a `REEL.sis` key; each common-store
//! file is written once per set, just before its first link, and the store's internal files
//! once. GNU tar and bsdtar restore such a link as a hard link with the right content.
//!
//! Restore: common-store members go into the common store of the target's file system (or
//! a staging directory where there are no reflinks), links are re-created as clones of
//! their common-store file at the end (full copies without reflinks, and the report says so).

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use reel_archive::Entry;
use reel_archive::pax::PaxReader;
use reel_sis::{BackupStructure, ReparseData, RestoreStructure, Volume};

use crate::source::archive_name;

/// Pax key of a SIS link: the text form of its reparse data.
pub const PAX_KEY: &str = "REEL.sis";

/// What the backup must write for one link.
pub struct LinkPlan {
    /// Files to write first, as ordinary members (internal files, the common-store file).
    pub write_first: Vec<PathBuf>,
    /// Archive name of the common-store member the link is a hard link to.
    pub target_member: Vec<u8>,
    /// `REEL.sis` value.
    pub reparse_text: String,
}

/// The single instance stores met by one backup, by volume root.
#[derive(Default)]
pub struct SisBackup {
    volumes: HashMap<PathBuf, Option<BackupStructure<()>>>,
    internal_written: HashSet<PathBuf>,
    /// Links written as links.
    pub links: u64,
}

impl SisBackup {
    /// The plan for `path` when it is a SIS link to keep as one; `None` for an ordinary file
    /// (no link xattr, no store, or written since it was linked).
    pub fn plan(
        &mut self,
        path: &Path,
        entry: &Entry,
    ) -> Result<Option<LinkPlan>, reel_sis::SisError> {
        let tag = reel_sis::REPARSE_XATTR.as_bytes();
        if !entry.meta.xattrs.iter().any(|x| x.name == tag) {
            return Ok(None);
        }
        let volume = Volume::containing(path)?;
        let root = volume.root().to_path_buf();
        let structure = match self.volumes.get_mut(&root) {
            Some(s) => s,
            None => {
                let s = BackupStructure::open_if_any(&root)?;
                self.volumes.entry(root.clone()).or_insert(s)
            }
        };
        let Some(structure) = structure else {
            return Ok(None);
        };
        let Some(reparse) = structure.link_reparse(path)? else {
            return Ok(None);
        };
        let mut write_first = Vec::new();
        if self.internal_written.insert(root.clone()) {
            write_first.extend(structure.internal_files());
        }
        let needed = structure.files_to_back_up_for_link(&reparse, None)?;
        write_first.extend(needed.files.into_iter().map(|f| f.path));
        let target = structure
            .common_store_root()
            .join(reparse.common_store_name());
        self.links += 1;
        Ok(Some(LinkPlan {
            write_first,
            target_member: archive_name(&target),
            reparse_text: reparse.to_text(),
        }))
    }
}

/// Turns a captured link into the set's link member.
pub fn make_link_member(entry: &mut Entry, plan: &LinkPlan) {
    let tag = reel_sis::REPARSE_XATTR.as_bytes();
    entry.meta.xattrs.retain(|x| x.name != tag);
    entry.hardlink = Some(plan.target_member.clone());
    entry
        .extra
        .push((PAX_KEY.to_string(), plan.reparse_text.clone().into_bytes()));
}

/// Whether a member is a file of a common store (by its last two path components).
pub fn store_file_name(path: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(path).ok()?;
    let mut parts = text.rsplit('/');
    let name = parts.next()?;
    (parts.next()? == reel_sis::store::STORE_DIR).then(|| name.to_string())
}

/// The restore side: opened when the first SIS member arrives.
pub struct SisRestore {
    target: PathBuf,
    structure: Option<RestoreStructure>,
    /// Set when the structure could not be opened (reported once).
    failed: Option<String>,
    pub links: u64,
}

impl SisRestore {
    pub fn new(target: &Path) -> RefCell<SisRestore> {
        RefCell::new(SisRestore {
            target: target.to_path_buf(),
            structure: None,
            failed: None,
            links: 0,
        })
    }

    fn structure(&mut self) -> Result<&mut RestoreStructure, String> {
        if let Some(why) = &self.failed {
            return Err(why.clone());
        }
        if self.structure.is_none() {
            match RestoreStructure::open_for(&self.target) {
                Ok(s) => self.structure = Some(s),
                Err(e) => {
                    let why = format!("single instance store on {}: {e}", self.target.display());
                    self.failed = Some(why.clone());
                    return Err(why);
                }
            }
        }
        self.structure
            .as_mut()
            .ok_or_else(|| "no restore structure".to_string())
    }

    /// A common-store member: its content goes into the target's common store (checked
    /// against its name, which is its hash), unless that file is already there. Internal
    /// files of the store are not restored: the target's store keeps its own.
    pub fn restore_store_member<R: Read>(
        &mut self,
        pax: &mut PaxReader<R>,
        name: &str,
        buf: &mut [u8],
    ) -> Result<bool, String> {
        if reel_sis::ContentHash::from_file_name(name).is_err() {
            return Ok(false);
        }
        let s = self.structure()?;
        if !s.needs_common_store_file(name).map_err(|e| e.to_string())? {
            return Ok(true);
        }
        let mut w = s.write_common_store_file(name).map_err(|e| e.to_string())?;
        loop {
            let n = pax.read_data(buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            w.write_all(&buf[..n]).map_err(|e| e.to_string())?;
        }
        w.commit().map_err(|e| e.to_string())?;
        s.restored_common_store_file(name)
            .map_err(|e| e.to_string())?;
        Ok(true)
    }

    /// A link member, already created (empty, with its metadata) at `dest`: it becomes a
    /// clone of its common-store file at [`SisRestore::finish`].
    pub fn restored_link(&mut self, dest: &Path, reparse_text: &str) -> Result<(), String> {
        let reparse = ReparseData::from_text(reparse_text)
            .map_err(|e| format!("damaged REEL.sis value: {e}"))?;
        let s = self.structure()?;
        s.restored_link(dest, &reparse).map_err(|e| e.to_string())?;
        self.links += 1;
        Ok(())
    }

    /// Re-clones every link; returns (notes, problems).
    pub fn finish(self) -> (Vec<String>, Vec<String>) {
        let Some(s) = self.structure else {
            return (Vec::new(), self.failed.into_iter().collect());
        };
        match s.finish() {
            Ok(r) => {
                let mut notes = Vec::new();
                if let Some(why) = r.mode_reason {
                    notes.push(format!(
                        "{} single-instance links restored as full copies: {why}",
                        r.links_restored
                    ));
                }
                let problems = r
                    .unrestored
                    .iter()
                    .map(|u| {
                        format!(
                            "{}: SIS link not re-created ({}): {}",
                            u.path.display(),
                            u.common_store_file,
                            u.reason
                        )
                    })
                    .collect();
                (notes, problems)
            }
            Err(e) => (Vec::new(), vec![format!("single instance store: {e}")]),
        }
    }
}
