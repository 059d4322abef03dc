//! Which members a restore or listing takes: glob patterns over member paths.
//!
//! A pattern selects the members it matches and everything under them, so `home/ann` takes
//! the whole directory and `home/*/notes/**/*.md` takes markdown files. `*` and `?` stay
//! within one path component; `**` crosses them. A leading `/` is ignored (member paths are
//! relative).

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::error::{CoreError, Result};

/// A compiled selection; empty = everything.
#[derive(Debug, Clone)]
pub struct Selector {
    set: Option<GlobSet>,
    /// Paths whose subtrees hold every member the patterns can select (see `lookup_paths`).
    lookup: Option<Vec<Vec<u8>>>,
}

/// Characters that make a pattern component a wildcard (or an escape).
const GLOB_CHARS: [char; 7] = ['*', '?', '[', ']', '{', '}', '\\'];

/// The leading components of `pattern` that have no wildcard, joined: every path the
/// pattern matches lies under them. Empty when the first component has one.
fn plain_prefix(pattern: &str) -> &str {
    let trimmed = pattern.trim_start_matches('/').trim_end_matches('/');
    let (mut start, mut end) = (0, 0);
    for component in trimmed.split('/') {
        if component.contains(GLOB_CHARS) {
            break;
        }
        end = start + component.len();
        start = end + 1;
    }
    &trimmed[..end]
}

impl Selector {
    pub fn new(patterns: &[String]) -> Result<Selector> {
        if patterns.is_empty() {
            return Ok(Selector {
                set: None,
                lookup: None,
            });
        }
        let lookup = patterns
            .iter()
            .map(|p| plain_prefix(p).as_bytes().to_vec())
            .collect::<Vec<_>>();
        let lookup = (!lookup.iter().any(|p| p.is_empty())).then(|| {
            // Each member once: no path twice, none under another one (the range lookup
            // of `a` already covers `a/b`).
            let mut l = lookup;
            l.sort();
            l.dedup();
            let all = l.clone();
            l.retain(|p| {
                !all.iter()
                    .any(|q| q != p && p.len() > q.len() && p.starts_with(q) && p[q.len()] == b'/')
            });
            l
        });
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let trimmed = p.trim_start_matches('/').trim_end_matches('/');
            let trimmed = if trimmed.is_empty() { "**" } else { trimmed };
            let glob = GlobBuilder::new(trimmed)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| CoreError::BadPattern {
                    pattern: p.clone(),
                    source,
                })?;
            b.add(glob);
        }
        let set = b
            .build()
            .map_err(|source| CoreError::BadPatterns { source })?;
        Ok(Selector {
            set: Some(set),
            lookup,
        })
    }

    /// Member paths whose subtrees hold every member the patterns can select: a plain
    /// pattern itself, else its leading components up to the first wildcard (`home` for
    /// `home/*/notes/**`). A catalog answers each with a range lookup, and `matches` picks
    /// from what it returns. `None` when a pattern starts with a wildcard (`*.conf`): then
    /// only a scan of the whole set finds its members.
    pub fn lookup_paths(&self) -> Option<&[Vec<u8>]> {
        self.lookup.as_deref()
    }

    pub fn is_everything(&self) -> bool {
        self.set.is_none()
    }

    /// True when `path` or one of its ancestors matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        let Some(set) = &self.set else {
            return true;
        };
        let text = String::from_utf8_lossy(path);
        let mut p: &str = text.trim_end_matches('/');
        loop {
            if set.is_match(p) {
                return true;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_subtrees_and_globs() {
        let s = Selector::new(&["home/ann".into(), "/srv/*/logs/**/*.gz".into()]).unwrap();
        assert!(s.matches(b"home/ann"));
        assert!(s.matches(b"home/ann/notes/a.md"));
        assert!(!s.matches(b"home/anna"));
        assert!(!s.matches(b"home"));
        assert!(s.matches(b"srv/web/logs/2024/x.gz"));
        assert!(!s.matches(b"srv/web/x/logs/x.gz"));
        assert!(Selector::new(&[]).unwrap().matches(b"anything"));
        assert!(Selector::new(&["[".into()]).is_err());
    }

    #[test]
    fn lookup_paths_name_each_member_once() {
        let s = Selector::new(&[
            "home/ann/notes".into(),
            "/home/ann/".into(),
            "home/ann".into(),
            "home/anna".into(),
        ])
        .unwrap();
        let want: &[Vec<u8>] = &[b"home/ann".to_vec(), b"home/anna".to_vec()];
        assert_eq!(s.lookup_paths(), Some(want));
    }

    #[test]
    fn lookup_paths_of_wildcards_are_their_plain_leading_components() {
        let lookup = |patterns: &[&str]| {
            let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
            Selector::new(&patterns).unwrap().lookup_paths().map(|l| {
                l.iter()
                    .map(|p| String::from_utf8(p.clone()).unwrap())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(lookup(&["a/*"]), Some(vec!["a".into()]));
        assert_eq!(
            lookup(&[
                "/srv/*/logs/**/*.gz",
                "home/ann/notes/**/*.md",
                "home/ann/x"
            ]),
            Some(vec![
                "home/ann/notes".into(),
                "home/ann/x".into(),
                "srv".into()
            ])
        );
        assert_eq!(
            lookup(&["etc/ssh*/", "etc/ssh/sshd_config"]),
            Some(vec!["etc".into()])
        );
        assert_eq!(lookup(&["a/b\\*c/d"]), Some(vec!["a".into()]));
        assert_eq!(lookup(&["a/{b,c}"]), Some(vec!["a".into()]));
        // A pattern that starts with a wildcard can match anywhere: no lookup.
        assert_eq!(lookup(&["home/ann", "*.conf"]), None);
        assert_eq!(lookup(&["**/core"]), None);
        assert_eq!(lookup(&["/"]), None);
    }

    /// Whatever a pattern matches lies under its lookup paths.
    #[test]
    fn every_match_is_under_a_lookup_path() {
        let patterns: Vec<String> = ["home/*/notes/**/*.md", "srv/w?b/logs", "etc/[ab]*"]
            .iter()
            .map(|p| p.to_string())
            .collect();
        let s = Selector::new(&patterns).unwrap();
        let lookup = s.lookup_paths().unwrap().to_vec();
        let under = |p: &[u8]| {
            lookup
                .iter()
                .any(|q| p == q.as_slice() || (p.starts_with(q) && p[q.len()] == b'/'))
        };
        for path in [
            "home/ann/notes/x.md",
            "home/bob/notes/a/b/c.md",
            "home/bob/notes/a/b/c.md/inside",
            "srv/web/logs",
            "srv/wab/logs/1.gz",
            "etc/apt",
            "etc/b",
            "homer/ann/notes/x.md",
            "srv/web/logsx",
            "etc/c",
        ] {
            if s.matches(path.as_bytes()) {
                assert!(
                    under(path.as_bytes()),
                    "{path} matches but is under no lookup path"
                );
            }
        }
        assert!(s.matches(b"home/ann/notes/x.md") && s.matches(b"etc/apt"));
    }
}
