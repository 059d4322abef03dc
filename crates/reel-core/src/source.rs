//! What a backup reads, as both sides of its walk see it: a path to back up and where its
//! content is read (the live tree or a snapshot), the archive name of a path, what the
//! policy is told of an entry and what it left out. The walk ([`crate::scan`]), the SIS
//! links ([`crate::sis`]) and the job ([`crate::backup`]) share these.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The archive name of an absolute path: the path without its leading slash.
pub fn archive_name(path: &Path) -> Vec<u8> {
    let bytes = path.as_os_str().as_bytes();
    let trimmed = bytes
        .iter()
        .position(|b| *b != b'/')
        .map(|i| &bytes[i..])
        .unwrap_or(b"");
    trimmed.to_vec()
}

/// One path to back up, and where its content is read: the live tree or a snapshot of it.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) live: PathBuf,
    pub(crate) read_from: PathBuf,
    pub(crate) snapshot: Option<PathBuf>,
}

impl Source {
    /// `root`, read where it is.
    pub(crate) fn live(root: &Path) -> Source {
        Source {
            live: root.to_path_buf(),
            read_from: root.to_path_buf(),
            snapshot: None,
        }
    }

    /// `root`, read at `read_from` inside the snapshot `snapshot`.
    pub(crate) fn in_snapshot(root: &Path, read_from: PathBuf, snapshot: PathBuf) -> Source {
        Source {
            live: root.to_path_buf(),
            read_from,
            snapshot: Some(snapshot),
        }
    }

    /// The live path of a path under `read_from`.
    pub(crate) fn live_path(&self, real: &Path) -> PathBuf {
        match real.strip_prefix(&self.read_from) {
            Ok(rest) if rest.as_os_str().is_empty() => self.live.clone(),
            Ok(rest) => self.live.join(rest),
            Err(_) => real.to_path_buf(),
        }
    }
}

/// An entry the policy kept out of a set, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedEntry {
    pub path: String,
    /// `rule`, `marker`, `cachedir-tag`, `nodump`, `xattr`.
    pub kind: String,
    pub reason: String,
    /// Only the directory's content is skipped (the directory and its tag are kept).
    pub contents_only: bool,
}

impl SkippedEntry {
    /// The entry at `live` the policy left out for `reason` (with `contents_only`, the
    /// directory and its tag are kept).
    pub(crate) fn new(live: &Path, reason: &reel_policy::Reason<'_>, contents_only: bool) -> Self {
        SkippedEntry {
            path: live.display().to_string(),
            kind: reason.kind().to_string(),
            reason: reason.to_string(),
            contents_only,
        }
    }
}

/// What the policy needs to know of an entry, from what the capture read.
pub(crate) fn known_facts(meta: &reel_stream::FileMeta) -> reel_policy::KnownFacts {
    reel_policy::KnownFacts {
        nodump: meta.flags & reel_stream::flags::NODUMP != 0,
        robots_backup_false: meta
            .xattrs
            .iter()
            .find(|x| x.name == reel_policy::ROBOTS_XATTR.as_bytes())
            .is_some_and(|x| reel_policy::KnownFacts::robots_value_says_no(&x.value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_names_drop_the_leading_slashes() {
        assert_eq!(
            archive_name(Path::new("/home/ann/a.txt")),
            b"home/ann/a.txt"
        );
        assert_eq!(archive_name(Path::new("//srv")), b"srv");
        assert_eq!(archive_name(Path::new("/")), b"");
    }

    #[test]
    fn paths_read_in_a_snapshot_are_named_after_the_live_tree() {
        let s = Source::in_snapshot(
            Path::new("/home"),
            PathBuf::from("/.snapshots/home-1/home"),
            PathBuf::from("/.snapshots/home-1"),
        );
        assert_eq!(
            s.live_path(Path::new("/.snapshots/home-1/home/ann/a")),
            Path::new("/home/ann/a")
        );
        assert_eq!(
            s.live_path(Path::new("/.snapshots/home-1/home")),
            Path::new("/home")
        );
        let live = Source::live(Path::new("/srv"));
        assert_eq!(live.live_path(Path::new("/srv/x")), Path::new("/srv/x"));
    }
}
