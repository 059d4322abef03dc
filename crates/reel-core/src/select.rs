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
    /// The patterns as paths, when none has a wildcard.
    literal: Option<Vec<Vec<u8>>>,
}

impl Selector {
    pub fn new(patterns: &[String]) -> Result<Selector> {
        if patterns.is_empty() {
            return Ok(Selector {
                set: None,
                literal: None,
            });
        }
        let literal = patterns
            .iter()
            .all(|p| !p.contains(['*', '?', '[', ']', '{', '}', '\\']))
            .then(|| {
                patterns
                    .iter()
                    .map(|p| {
                        p.trim_start_matches('/')
                            .trim_end_matches('/')
                            .as_bytes()
                            .to_vec()
                    })
                    .filter(|p| !p.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|l| l.len() == patterns.len())
            .map(|mut l| {
                // Each member once: no path twice, none under another one (the range
                // lookup of `a` already covers `a/b`).
                l.sort();
                l.dedup();
                let all = l.clone();
                l.retain(|p| {
                    !all.iter().any(|q| {
                        q != p && p.len() > q.len() && p.starts_with(q) && p[q.len()] == b'/'
                    })
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
                .map_err(|e| CoreError::Usage(format!("pattern {p:?}: {e}")))?;
            b.add(glob);
        }
        let set = b
            .build()
            .map_err(|e| CoreError::Usage(format!("patterns: {e}")))?;
        Ok(Selector {
            set: Some(set),
            literal,
        })
    }

    /// The patterns as plain member paths, when none has a wildcard: each then selects
    /// exactly one path and what is under it (a catalog answers with a range lookup).
    pub fn literal_paths(&self) -> Option<&[Vec<u8>]> {
        self.literal.as_deref()
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
    fn literal_paths_name_each_member_once() {
        let s = Selector::new(&[
            "home/ann/notes".into(),
            "/home/ann/".into(),
            "home/ann".into(),
            "home/anna".into(),
        ])
        .unwrap();
        let want: &[Vec<u8>] = &[b"home/ann".to_vec(), b"home/anna".to_vec()];
        assert_eq!(s.literal_paths(), Some(want));
        assert_eq!(
            Selector::new(&["a/*".into()]).unwrap().literal_paths(),
            None
        );
    }
}
