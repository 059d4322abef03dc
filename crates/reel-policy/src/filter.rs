//! Deciding, entry by entry, what a backup skips and what a restore leaves alone.
//!
//! [`BackupFilter`] is called by the walker for every entry, so it is built once (patterns
//! compiled into glob sets) and answers without allocating: the patterns first (no I/O), then
//! the `user.xdg.robots.backup` xattr and the nodump flag (one `lgetxattr` and one `statx`, or
//! the ioctl on an fd the walker already holds), and for directories the `exclude-if-present`
//! markers and `CACHEDIR.TAG`.

use std::ffi::CStr;
use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use globset::Candidate;
use rustix::fs::{AtFlags, CWD, IFlags, Mode, OFlags, StatxAttributes, StatxFlags};
use serde::Serialize;

use crate::pattern::Pattern;
use crate::policy::Policy;
use crate::rules::{Key, Rule, RuleSet, Source};

/// The name of the cache directory tag (<https://bford.info/cachedir/>).
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";
/// The first 43 bytes a `CACHEDIR.TAG` must hold to count.
pub const CACHEDIR_SIGNATURE: &[u8; 43] = b"Signature: 8a477f597d28d172789f06886806bc55";
/// The xattr that, set to `false`, asks backup programs to skip a file or directory.
pub const ROBOTS_XATTR: &str = "user.xdg.robots.backup";
const ROBOTS_XATTR_C: &CStr = c"user.xdg.robots.backup";

/// What kind of entry the walker is at (from its `lstat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    Dir,
    File,
    Symlink,
    /// Devices, FIFOs, sockets: only patterns apply (they are never opened).
    Other,
}

impl From<std::fs::FileType> for EntryKind {
    fn from(t: std::fs::FileType) -> Self {
        if t.is_dir() {
            EntryKind::Dir
        } else if t.is_file() {
            EntryKind::File
        } else if t.is_symlink() {
            EntryKind::Symlink
        } else {
            EntryKind::Other
        }
    }
}

/// Why an entry is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason<'f> {
    /// A `files-not-to-backup` rule or an `--exclude` pattern.
    Rule(&'f Rule),
    /// The directory holds this `exclude-if-present` marker.
    Marker(&'f str),
    /// The directory holds a `CACHEDIR.TAG` with the signature.
    CacheDirTag,
    /// The nodump flag (`chattr +d`).
    NoDump,
    /// `user.xdg.robots.backup` is `false`.
    RobotsXattr,
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Rule(r) => write!(f, "{r}"),
            Reason::Marker(m) => write!(f, "exclude-if-present marker `{m}` in the directory"),
            Reason::CacheDirTag => write!(f, "{CACHEDIR_TAG} with the cache directory signature"),
            Reason::NoDump => write!(f, "nodump flag (chattr +d)"),
            Reason::RobotsXattr => write!(f, "{ROBOTS_XATTR}=false"),
        }
    }
}

impl Reason<'_> {
    /// A short name for the kind of reason: `rule`, `marker`, `cachedir-tag`, `nodump`, `xattr`.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Rule(_) => "rule",
            Reason::Marker(_) => "marker",
            Reason::CacheDirTag => "cachedir-tag",
            Reason::NoDump => "nodump",
            Reason::RobotsXattr => "xattr",
        }
    }
}

/// What the walker does with an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict<'f> {
    /// Back it up (and walk into it, for a directory).
    Include,
    /// Skip it, and for a directory everything below it.
    Exclude(Reason<'f>),
    /// A directory whose content is skipped: back up the directory itself and its child
    /// named `keep` (the tag), nothing else.
    ExcludeContents {
        reason: Reason<'f>,
        keep: &'static str,
    },
}

impl Verdict<'_> {
    pub fn is_include(&self) -> bool {
        matches!(self, Verdict::Include)
    }
}

/// Where to read an entry's attributes: by path, or through an fd the walker holds.
#[derive(Clone, Copy)]
enum At<'a> {
    Path(&'a Path),
    Fd(BorrowedFd<'a>),
    /// The walker already read the entry's flags and xattrs: use them; `Path` for the
    /// directory lookups (markers, tags).
    Known(&'a Path, KnownFacts),
}

/// What a walker already knows about an entry (it captured its flags and xattrs), so the
/// filter does no I/O of its own for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KnownFacts {
    /// The nodump flag (`chattr +d`) is set.
    pub nodump: bool,
    /// `user.xdg.robots.backup` is `false`.
    pub robots_backup_false: bool,
}

impl KnownFacts {
    /// Whether an xattr value of `user.xdg.robots.backup` says "do not back up".
    pub fn robots_value_says_no(value: &[u8]) -> bool {
        robots_no(value)
    }
}

/// The backup-side matcher: files-not-to-backup, `--exclude` patterns, exclude-if-present
/// markers, `CACHEDIR.TAG`, the nodump flag and `user.xdg.robots.backup`. Build it once per
/// backup and share it (it is `Send + Sync`).
#[derive(Debug, Clone)]
pub struct BackupFilter {
    policy_rules: RuleSet,
    extra_rules: RuleSet,
    markers: Vec<String>,
}

impl BackupFilter {
    /// The filter of a policy: its files-not-to-backup rules and its exclude-if-present markers.
    pub fn new(policy: &Policy) -> BackupFilter {
        BackupFilter {
            policy_rules: policy.files_not_to_backup.clone(),
            extra_rules: RuleSet::default(),
            markers: policy.config.exclude_if_present.value.clone(),
        }
    }

    /// A filter from parts (tests, tools without a policy).
    pub fn from_parts(rules: RuleSet, markers: Vec<String>) -> BackupFilter {
        BackupFilter {
            policy_rules: rules,
            extra_rules: RuleSet::default(),
            markers,
        }
    }

    /// Adds the `--exclude` patterns of the command line (parse them with
    /// [`Pattern::parse_relative_to`]); they are reported as `--exclude #n`.
    pub fn with_excludes(mut self, patterns: &[Pattern]) -> BackupFilter {
        let rules = patterns
            .iter()
            .enumerate()
            .map(|(index, p)| Rule {
                key: Key::CommandLine,
                pattern: p.clone(),
                source: Source::CommandLine { index },
            })
            .collect();
        // Parsed patterns always compile (parse builds the glob once); nothing to report.
        self.extra_rules = RuleSet::new(rules).0;
        self
    }

    /// The exclude-if-present marker names.
    pub fn markers(&self) -> &[String] {
        &self.markers
    }

    /// The patterns only (no I/O): the first files-not-to-backup rule, else `--exclude`
    /// pattern, matching the entry itself.
    pub fn match_rules(&self, logical: &Path, is_dir: bool) -> Option<&Rule> {
        let cand = Candidate::new(logical);
        self.match_rules_candidate(&cand, is_dir)
    }

    fn match_rules_candidate(&self, cand: &Candidate<'_>, is_dir: bool) -> Option<&Rule> {
        self.policy_rules
            .match_candidate(cand, is_dir)
            .or_else(|| self.extra_rules.match_candidate(cand, is_dir))
    }

    /// The verdict on a live entry at `path` (absolute), as the walker sees it.
    pub fn check(&self, path: &Path, kind: EntryKind) -> Verdict<'_> {
        self.check_at(path, path, kind)
    }

    /// The verdict on an entry read at `real` whose patterns are matched at `logical`: when
    /// backing up from a snapshot, `real` is inside the snapshot and `logical` is the path on
    /// the live system (see [`crate::snapshot::Snapshot::to_live`]).
    pub fn check_at(&self, logical: &Path, real: &Path, kind: EntryKind) -> Verdict<'_> {
        self.verdict(logical, At::Path(real), kind)
    }

    /// The verdict on an entry the walker holds open (`fd` from `open(O_RDONLY)`; for a
    /// directory, the fd it lists). Saves the `statx`/path lookups.
    pub fn check_fd(&self, logical: &Path, fd: BorrowedFd<'_>, kind: EntryKind) -> Verdict<'_> {
        self.verdict(logical, At::Fd(fd), kind)
    }

    /// The verdict on an entry whose flags and xattrs the walker already captured
    /// (`facts`); `real` is where it is read, for the directory lookups only. The same
    /// verdict as [`BackupFilter::check_at`], without re-reading what is known.
    pub fn check_known(
        &self,
        logical: &Path,
        real: &Path,
        kind: EntryKind,
        facts: KnownFacts,
    ) -> Verdict<'_> {
        self.verdict(logical, At::Known(real, facts), kind)
    }

    fn verdict(&self, logical: &Path, at: At<'_>, kind: EntryKind) -> Verdict<'_> {
        let cand = Candidate::new(logical);
        if let Some(rule) = self.match_rules_candidate(&cand, kind == EntryKind::Dir) {
            return Verdict::Exclude(Reason::Rule(rule));
        }
        if matches!(kind, EntryKind::Dir | EntryKind::File) {
            if robots_says_no(at) {
                return Verdict::Exclude(Reason::RobotsXattr);
            }
            if has_nodump(at, kind) {
                return Verdict::Exclude(Reason::NoDump);
            }
        }
        if kind == EntryKind::Dir {
            for marker in &self.markers {
                if child_exists(at, marker) {
                    return Verdict::Exclude(Reason::Marker(marker));
                }
            }
            if has_cachedir_tag(at) {
                return Verdict::ExcludeContents {
                    reason: Reason::CacheDirTag,
                    keep: CACHEDIR_TAG,
                };
            }
        }
        Verdict::Include
    }

    /// Why `path` (absolute, on the live system) would be skipped by a backup that walks down
    /// to it: the first ancestor or the path itself that a rule, marker, tag, flag or xattr
    /// excludes. For `reel policy check`; it does I/O on every ancestor.
    pub fn explain(&self, path: &Path) -> Option<Finding> {
        let path = normalize(path);
        let mut current = PathBuf::from("/");
        let comps: Vec<_> = path
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
            .collect();
        for (i, comp) in comps.iter().enumerate() {
            // `current` is a proper ancestor of the path here: a directory.
            let v = if i == 0 {
                Verdict::Include
            } else {
                self.check(&current, EntryKind::Dir)
            };
            match v {
                Verdict::Include => {}
                Verdict::Exclude(r) => {
                    return Some(Finding::new(Effect::Excluded, r, Some(&current)));
                }
                Verdict::ExcludeContents { reason, keep } => {
                    let is_the_tag = i + 1 == comps.len() && comp.as_os_str() == keep;
                    if !is_the_tag {
                        return Some(Finding::new(Effect::Excluded, reason, Some(&current)));
                    }
                }
            }
            current.push(comp);
        }
        let kind = match std::fs::symlink_metadata(&path) {
            Ok(m) => EntryKind::from(m.file_type()),
            // Not there: patterns only; a directory pattern is matched too.
            Err(_) => {
                return self
                    .match_rules(&path, true)
                    .map(|r| Finding::new(Effect::Excluded, Reason::Rule(r), None));
            }
        };
        match self.check(&path, kind) {
            Verdict::Include => None,
            Verdict::Exclude(r) => Some(Finding::new(Effect::Excluded, r, None)),
            Verdict::ExcludeContents { reason, .. } => {
                Some(Finding::new(Effect::ContentsExcluded, reason, None))
            }
        }
    }
}

/// What a finding does to the path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Effect {
    /// The path is not backed up (or not restored, not in the snapshot).
    Excluded,
    /// The directory is backed up with its tag, without the rest of its content.
    ContentsExcluded,
}

/// An owned, printable account of why a path is skipped (for `reel policy check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub effect: Effect,
    /// `rule`, `marker`, `cachedir-tag`, `nodump` or `xattr`.
    pub reason: &'static str,
    /// The rule, when a pattern decided.
    pub rule: Option<Rule>,
    /// The ancestor that carries the reason (None: the path itself).
    pub via: Option<PathBuf>,
    /// One line for people.
    pub detail: String,
}

impl Finding {
    pub(crate) fn new(effect: Effect, reason: Reason<'_>, via: Option<&Path>) -> Finding {
        let rule = match reason {
            Reason::Rule(r) => Some(r.clone()),
            _ => None,
        };
        let mut detail = reason.to_string();
        if let Some(v) = via {
            detail = format!("inside {}: {detail}", v.display());
        }
        Finding {
            effect,
            reason: reason.kind(),
            rule,
            via: via.map(Path::to_path_buf),
            detail,
        }
    }

    pub(crate) fn from_rule(rule: &Rule) -> Finding {
        Finding::new(Effect::Excluded, Reason::Rule(rule), None)
    }
}

/// The restore-side matcher: `paths-not-to-restore`, and `files-not-to-backup` (Windows asks
/// backup programs neither to back up nor to restore those). Paths are the original absolute
/// paths of the archived entries; a path inside a matched directory is matched too.
#[derive(Debug, Clone)]
pub struct RestoreFilter {
    not_to_restore: RuleSet,
    not_to_backup: Option<RuleSet>,
}

impl RestoreFilter {
    /// paths-not-to-restore and files-not-to-backup.
    pub fn new(policy: &Policy) -> RestoreFilter {
        RestoreFilter {
            not_to_restore: policy.paths_not_to_restore.clone(),
            not_to_backup: Some(policy.files_not_to_backup.clone()),
        }
    }

    /// paths-not-to-restore only.
    pub fn paths_not_to_restore_only(policy: &Policy) -> RestoreFilter {
        RestoreFilter {
            not_to_restore: policy.paths_not_to_restore.clone(),
            not_to_backup: None,
        }
    }

    /// The rule that keeps `original` (absolute) from being restored, if any.
    pub fn check(&self, original: &Path, is_dir: bool) -> Option<&Rule> {
        self.not_to_restore
            .match_path(original, is_dir)
            .or_else(|| {
                self.not_to_backup
                    .as_ref()
                    .and_then(|s| s.match_path(original, is_dir))
            })
    }
}

/// `.` and empty components removed, `..` resolved lexically; made absolute against the
/// current directory.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .unwrap_or_else(|_| PathBuf::from("/"))
            .join(path)
    };
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn robots_says_no(at: At<'_>) -> bool {
    let mut buf = [0u8; 16];
    let n = match at {
        At::Path(p) => rustix::fs::lgetxattr(p, ROBOTS_XATTR_C, &mut buf),
        At::Fd(fd) => rustix::fs::fgetxattr(fd, ROBOTS_XATTR_C, &mut buf),
        At::Known(_, facts) => return facts.robots_backup_false,
    };
    match n {
        Ok(n) => robots_no(buf.get(..n).unwrap_or_default()),
        Err(_) => false,
    }
}

/// `false` (any case, surrounding blanks and a trailing NUL allowed) means "do not back up".
fn robots_no(v: &[u8]) -> bool {
    let v = v.trim_ascii().strip_suffix(b"\0").unwrap_or(v.trim_ascii());
    v.eq_ignore_ascii_case(b"false")
}

fn has_nodump(at: At<'_>, kind: EntryKind) -> bool {
    match at {
        At::Known(_, facts) => facts.nodump,
        At::Fd(fd) => rustix::fs::ioctl_getflags(fd).is_ok_and(|f| f.contains(IFlags::NODUMP)),
        At::Path(p) => {
            // statx reports the flag without opening the file on ext4, btrfs, xfs, tmpfs…
            if let Ok(st) = rustix::fs::statx(CWD, p, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE) {
                let mask = st.stx_attributes_mask;
                if mask.contains(StatxAttributes::NODUMP) {
                    return st.stx_attributes.contains(StatxAttributes::NODUMP);
                }
            }
            // …elsewhere ask FS_IOC_GETFLAGS on the open file (regular files and directories
            // only: opening a device could rewind a tape).
            match open_entry(p, kind) {
                Some(fd) => {
                    rustix::fs::ioctl_getflags(&fd).is_ok_and(|f| f.contains(IFlags::NODUMP))
                }
                None => false,
            }
        }
    }
}

fn open_entry(p: &Path, kind: EntryKind) -> Option<OwnedFd> {
    let base =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let flags = match kind {
        EntryKind::Dir => base | OFlags::DIRECTORY,
        EntryKind::File => base,
        _ => return None,
    };
    rustix::fs::open(p, flags | OFlags::NOATIME, Mode::empty())
        .or_else(|_| rustix::fs::open(p, flags, Mode::empty()))
        .ok()
}

fn child_exists(at: At<'_>, name: &str) -> bool {
    match at {
        At::Fd(fd) => {
            rustix::fs::statx(fd, name, AtFlags::SYMLINK_NOFOLLOW, StatxFlags::TYPE).is_ok()
        }
        At::Path(p) | At::Known(p, _) => rustix::fs::statx(
            CWD,
            p.join(name),
            AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::TYPE,
        )
        .is_ok(),
    }
}

/// True when the directory holds a regular file `CACHEDIR.TAG` starting with the signature.
pub fn has_cachedir_tag_at(dir: &Path) -> bool {
    has_cachedir_tag(At::Path(dir))
}

fn has_cachedir_tag(at: At<'_>) -> bool {
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY;
    let fd = match at {
        At::Fd(fd) => rustix::fs::openat(fd, CACHEDIR_TAG, flags, Mode::empty()),
        At::Path(p) | At::Known(p, _) => {
            rustix::fs::open(p.join(CACHEDIR_TAG), flags, Mode::empty())
        }
    };
    let Ok(fd) = fd else { return false };
    if !rustix::fs::fstat(&fd)
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
    {
        return false;
    }
    let mut buf = [0u8; 43];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd.as_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return false,
        }
    }
    got == buf.len() && &buf == CACHEDIR_SIGNATURE
}

/// Everything the policy says about one path (for `reel policy check`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathReport {
    /// The path, absolute and normalised.
    pub path: PathBuf,
    /// Its kind, when it exists.
    pub kind: Option<EntryKind>,
    /// Why a backup skips it (None: backed up).
    pub backup: Option<Finding>,
    /// Why a snapshot drops it (None: kept in snapshots).
    pub snapshot: Option<Finding>,
    /// Why a restore leaves it alone (None: restored).
    pub restore: Option<Finding>,
}

/// What the policy (and `filter`, which may carry `--exclude` patterns) says about `path`.
pub fn explain_path(policy: &Policy, filter: &BackupFilter, path: &Path) -> PathReport {
    let path = normalize(path);
    let kind = std::fs::symlink_metadata(&path)
        .ok()
        .map(|m| EntryKind::from(m.file_type()));
    // A path that does not exist is matched as a directory too, so directory rules show.
    let is_dir = kind.is_none_or(|k| k == EntryKind::Dir);
    PathReport {
        backup: filter.explain(&path),
        snapshot: policy
            .files_not_to_snapshot
            .match_path(&path, is_dir)
            .map(Finding::from_rule),
        restore: RestoreFilter::new(policy)
            .check(&path, is_dir)
            .map(Finding::from_rule),
        kind,
        path,
    }
}
