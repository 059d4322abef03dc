//! Rules (a pattern, the key it belongs to and where it was written) and rule sets compiled
//! for fast matching.

use std::fmt;
use std::path::{Path, PathBuf};

use globset::{Candidate, GlobSet, GlobSetBuilder};
use serde::Serialize;

use crate::diag::Diagnostic;
use crate::pattern::Pattern;

/// The pattern keys, after the Windows values they stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Key {
    /// FilesNotToBackup.
    FilesNotToBackup,
    /// FilesNotToSnapshot.
    FilesNotToSnapshot,
    /// KeysNotToRestore.
    PathsNotToRestore,
    /// `--exclude` on the command line (files-not-to-backup syntax).
    CommandLine,
}

impl Key {
    /// The name of the key (and of its drop-in directory without `.d`).
    pub fn name(self) -> &'static str {
        match self {
            Key::FilesNotToBackup => "files-not-to-backup",
            Key::FilesNotToSnapshot => "files-not-to-snapshot",
            Key::PathsNotToRestore => "paths-not-to-restore",
            Key::CommandLine => "--exclude",
        }
    }

    /// The keys read from drop-in directories.
    pub const FILE_KEYS: [Key; 3] = [
        Key::FilesNotToBackup,
        Key::FilesNotToSnapshot,
        Key::PathsNotToRestore,
    ];
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a rule or a setting was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Source {
    /// A line of a policy file (line 1 is the first).
    File { file: PathBuf, line: usize },
    /// The n-th `--exclude` of the command line (0 is the first).
    CommandLine { index: usize },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File { file, line } => write!(f, "{}:{line}", file.display()),
            Source::CommandLine { index } => write!(f, "--exclude #{}", index + 1),
        }
    }
}

/// One rule: a pattern of a key, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub key: Key,
    pub pattern: Pattern,
    pub source: Source,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}` ({})", self.key, self.pattern, self.source)
    }
}

/// Rules compiled into glob sets. Matching does not allocate unless something matches.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Rules that match files and directories alike.
    any: GlobSet,
    any_idx: Vec<usize>,
    /// Rules that match directories only (a trailing `/`).
    dirs: GlobSet,
    dirs_idx: Vec<usize>,
    /// Everything below what a rule matches.
    under: GlobSet,
    under_idx: Vec<usize>,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            rules: Vec::new(),
            any: GlobSet::empty(),
            any_idx: Vec::new(),
            dirs: GlobSet::empty(),
            dirs_idx: Vec::new(),
            under: GlobSet::empty(),
            under_idx: Vec::new(),
        }
    }
}

impl RuleSet {
    /// Compiles rules. A rule whose glob fails is dropped and reported (it cannot happen with
    /// patterns from [`Pattern::parse`], which already compiled it once).
    pub fn new(rules: Vec<Rule>) -> (RuleSet, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let mut kept = Vec::with_capacity(rules.len());
        let mut any = GlobSetBuilder::new();
        let mut dirs = GlobSetBuilder::new();
        let mut under = GlobSetBuilder::new();
        let (mut any_idx, mut dirs_idx, mut under_idx) = (Vec::new(), Vec::new(), Vec::new());
        for rule in rules {
            let globs = rule
                .pattern
                .self_glob()
                .and_then(|s| Ok((s, rule.pattern.under_glob()?)));
            let (self_glob, under_glob) = match globs {
                Ok(g) => g,
                Err(e) => {
                    let (file, line) = match &rule.source {
                        Source::File { file, line } => (file.clone(), Some(*line)),
                        Source::CommandLine { .. } => (PathBuf::from("--exclude"), None),
                    };
                    diags.push(Diagnostic::error(
                        file,
                        line,
                        format!("`{}`: {e}", rule.pattern),
                    ));
                    continue;
                }
            };
            let i = kept.len();
            if rule.pattern.dir_only {
                dirs.add(self_glob);
                dirs_idx.push(i);
            } else {
                any.add(self_glob);
                any_idx.push(i);
            }
            under.add(under_glob);
            under_idx.push(i);
            kept.push(rule);
        }
        let build = |b: GlobSetBuilder, diags: &mut Vec<Diagnostic>| match b.build() {
            Ok(s) => Some(s),
            Err(e) => {
                diags.push(Diagnostic::error(
                    "(patterns)",
                    None,
                    format!("cannot compile the patterns: {e}"),
                ));
                None
            }
        };
        match (
            build(any, &mut diags),
            build(dirs, &mut diags),
            build(under, &mut diags),
        ) {
            (Some(any), Some(dirs), Some(under)) => (
                RuleSet {
                    rules: kept,
                    any,
                    any_idx,
                    dirs,
                    dirs_idx,
                    under,
                    under_idx,
                },
                diags,
            ),
            _ => (RuleSet::default(), diags),
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule (in file and line order) that matches the entry itself: `path` is an
    /// absolute path, `is_dir` whether it is a directory. This is what a walker needs, since
    /// it never enters an excluded directory.
    pub fn match_entry(&self, path: &Path, is_dir: bool) -> Option<&Rule> {
        let cand = Candidate::new(path);
        self.match_candidate(&cand, is_dir)
    }

    pub(crate) fn match_candidate(&self, cand: &Candidate<'_>, is_dir: bool) -> Option<&Rule> {
        let mut best: Option<usize> = None;
        if self.any.is_match_candidate(cand) {
            best = self
                .any
                .matches_candidate(cand)
                .into_iter()
                .map(|i| self.any_idx[i])
                .min();
        }
        if is_dir && self.dirs.is_match_candidate(cand) {
            let d = self
                .dirs
                .matches_candidate(cand)
                .into_iter()
                .map(|i| self.dirs_idx[i])
                .min();
            best = match (best, d) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        best.and_then(|i| self.rules.get(i))
    }

    /// The first rule that matches `path` or one of its ancestors (a path inside an excluded
    /// directory is excluded too). For restores and `reel policy check`, where nothing is
    /// walked from the top.
    pub fn match_path(&self, path: &Path, is_dir: bool) -> Option<&Rule> {
        let cand = Candidate::new(path);
        let own = self.match_candidate(&cand, is_dir);
        let above = if self.under.is_match_candidate(&cand) {
            self.under
                .matches_candidate(&cand)
                .into_iter()
                .map(|i| self.under_idx[i])
                .min()
        } else {
            None
        };
        match (own, above) {
            (Some(r), Some(i)) => {
                let own_i = self
                    .rules
                    .iter()
                    .position(|x| std::ptr::eq(x, r))
                    .unwrap_or(usize::MAX);
                self.rules.get(own_i.min(i))
            }
            (Some(r), None) => Some(r),
            (None, Some(i)) => self.rules.get(i),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    fn set(lines: &[&str]) -> RuleSet {
        let vars = |n: &str| (n == "TMPDIR").then(|| "/var/tmp".to_string());
        let rules = lines
            .iter()
            .enumerate()
            .map(|(i, l)| Rule {
                key: Key::FilesNotToBackup,
                pattern: Pattern::parse(l, &vars).unwrap(),
                source: Source::File {
                    file: "/t.conf".into(),
                    line: i + 1,
                },
            })
            .collect();
        let (s, d) = RuleSet::new(rules);
        assert!(d.is_empty());
        s
    }

    fn line(s: &RuleSet, path: &str, is_dir: bool) -> Option<usize> {
        s.match_entry(Path::new(path), is_dir)
            .map(|r| match r.source {
                Source::File { line, .. } => line,
                Source::CommandLine { .. } => 0,
            })
    }

    #[test]
    fn verdicts_per_form() {
        let s = set(&[
            "$TMPDIR/* /s",      // 1: everything below /var/tmp
            "/swapfile",         // 2
            "/home/ann/.cache/", // 3: a directory
            "*.o",               // 4: anywhere
            "/srv/log/x?.log",   // 5: this directory only
            "/srv/data/core /s", // 6: core in /srv/data and below
            "/[odd]{dir}/a,b",   // 7: glob characters are literal
        ]);
        assert_eq!(
            line(&s, "/var/tmp", true),
            None,
            "the directory itself stays"
        );
        assert_eq!(line(&s, "/var/tmp/a", false), Some(1));
        assert_eq!(line(&s, "/var/tmp/a/b/c", false), Some(1));
        assert_eq!(line(&s, "/var/tmpx/a", false), None);
        assert_eq!(line(&s, "/swapfile", false), Some(2));
        assert_eq!(line(&s, "/x/swapfile", false), None);
        assert_eq!(line(&s, "/home/ann/.cache", true), Some(3));
        assert_eq!(
            line(&s, "/home/ann/.cache", false),
            None,
            "a file of that name is not a directory"
        );
        assert_eq!(line(&s, "/x.o", false), Some(4));
        assert_eq!(
            line(&s, "/a/b/c/.o", false),
            Some(4),
            "`*` matches an empty run and dotfiles"
        );
        assert_eq!(line(&s, "/a/b.o/c", false), None);
        assert_eq!(line(&s, "/srv/log/x1.log", false), Some(5));
        assert_eq!(line(&s, "/srv/log/x12.log", false), None);
        assert_eq!(
            line(&s, "/srv/log/sub/x1.log", false),
            None,
            "not recursive"
        );
        assert_eq!(line(&s, "/srv/data/core", false), Some(6));
        assert_eq!(line(&s, "/srv/data/a/b/core", true), Some(6));
        assert_eq!(line(&s, "/srv/core", false), None);
        assert_eq!(line(&s, "/[odd]{dir}/a,b", false), Some(7));
        assert_eq!(line(&s, "/o/a,b", false), None);
        // Names that are not UTF-8 still match wildcards.
        let odd = Path::new(OsStr::from_bytes(b"/var/tmp/\xff\xfe"));
        assert!(s.match_entry(odd, false).is_some());
        let odd_o = Path::new(OsStr::from_bytes(b"/x/\xff.o"));
        assert!(s.match_entry(odd_o, false).is_some());
    }

    #[test]
    fn match_path_sees_ancestors_and_first_rule_wins() {
        let s = set(&["/home/ann/.cache/", "*.tmp", "/home/ann/.cache/x.tmp"]);
        let r = s
            .match_path(Path::new("/home/ann/.cache/a/b.txt"), false)
            .unwrap();
        assert_eq!(
            r.source,
            Source::File {
                file: "/t.conf".into(),
                line: 1
            }
        );
        let r = s
            .match_path(Path::new("/home/ann/.cache/x.tmp"), false)
            .unwrap();
        assert_eq!(
            r.source,
            Source::File {
                file: "/t.conf".into(),
                line: 1
            },
            "the first rule in order"
        );
        assert!(
            s.match_path(Path::new("/home/ann/.cachex/a"), false)
                .is_none()
        );
        assert!(
            s.match_entry(Path::new("/home/ann/.cache/a/b.txt"), false)
                .is_none(),
            "entry only"
        );
    }
}
