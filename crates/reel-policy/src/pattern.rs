//! The pattern syntax of `files-not-to-backup`, `files-not-to-snapshot`, `paths-not-to-restore`
//! and of `--exclude`: the Linux form of the Windows `[Drive][Path]\FileName [/s]` entries.
//!
//! ```text
//! /var/tmp/* /s          every entry below /var/tmp, at any depth (the directory itself stays)
//! /swapfile              one file
//! $HOME/.cache/          a directory (trailing `/`: matches directories only) and so its content
//! ${XDG_RUNTIME_DIR}/*.sock
//! *.o                    a bare name: that name in every directory
//! ```
//!
//! Rules: the directory part is literal (no wildcards, as on Windows); the last component may use
//! `*` (any run of characters other than `/`) and `?` (one character); `$VAR` and `${VAR}` are
//! replaced by the variable's value (taken literally, never as wildcards) and `$$` is a `$`; a
//! trailing ` /s` (after white space) also matches in every subdirectory; the Windows idiom
//! `*.*` means every name. `..` is refused. A relative pattern is allowed only as a bare name,
//! except on the command line, where it is taken relative to the current directory.

use std::fmt;
use std::path::Path;

use globset::{Glob, GlobBuilder};
use reel_error_class::ErrorClass;
use serde::Serialize;

/// Why a pattern was refused. Offsets count bytes from the start of the pattern text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("the pattern is empty")]
    Empty,
    #[error("the pattern names no file (it is only `/`)")]
    NoName,
    #[error("`${{` at byte {offset} is not closed by `}}`")]
    UnclosedBrace { offset: usize },
    #[error(
        "`$` at byte {offset} starts no variable name (write `$$` for a literal `$`, `$NAME` or `${{NAME}}`)"
    )]
    BadVariable { offset: usize },
    #[error("the variable `{name}` (byte {offset}) is not set")]
    UnsetVariable { name: String, offset: usize },
    #[error(
        "the variable `{name}` (byte {offset}) is empty (refused: `$X/*` with X empty would match from `/`)"
    )]
    EmptyVariable { name: String, offset: usize },
    #[error("the variable `{name}` (byte {offset}) holds a NUL byte")]
    NulInVariable { name: String, offset: usize },
    #[error("wildcards are allowed only in the last component, not in the directory `{component}`")]
    WildcardInDirectory { component: String },
    #[error("`..` is not allowed in a pattern")]
    DotDot,
    #[error(
        "the pattern is relative: write an absolute path (`/dir/name`) or a bare name (`name`, matched in every directory)"
    )]
    Relative,
    #[error("the pattern holds a NUL byte at byte {offset}")]
    Nul { offset: usize },
    #[error("the pattern cannot be compiled: {0}")]
    Glob(String),
}

impl PatternError {
    /// The class of this error: always usage (the pattern, or a variable it names, is
    /// written wrong).
    pub fn class(&self) -> ErrorClass {
        ErrorClass::Usage
    }
}

/// One character of the expanded pattern, and whether it may act as a wildcard (characters
/// that came from a variable never do).
#[derive(Clone, Copy)]
struct Ch {
    c: char,
    wild: bool,
}

/// A parsed pattern: where it applies and what name it matches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pattern {
    /// The text as written, without the ` /s` suffix.
    pub text: String,
    /// The directory the pattern applies in (absolute, normalised, without a trailing `/`;
    /// empty for `/`); `None` for a bare name, which applies in every directory.
    pub dir: Option<String>,
    /// The last component; may hold `*` and `?` wildcards.
    pub name: String,
    /// Positions in `name` (char indices) of `*`/`?` that are literal characters (they came
    /// from a variable's value), so the glob escapes them.
    #[serde(skip)]
    literal_wild: Vec<usize>,
    /// ` /s`: also in every subdirectory of `dir`.
    pub recursive: bool,
    /// A trailing `/`: matches directories only.
    pub dir_only: bool,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        if self.recursive {
            f.write_str(" /s")?;
        }
        Ok(())
    }
}

/// Where variables come from: the process environment, or a map in tests.
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment (non-UTF-8 values count as unset).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Vars for ProcessEnv {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<F: Fn(&str) -> Option<String>> Vars for F {
    fn get(&self, name: &str) -> Option<String> {
        self(name)
    }
}

impl Pattern {
    /// Parses one pattern line (already stripped of comments). A relative pattern with a
    /// directory part is refused.
    pub fn parse(line: &str, vars: &dyn Vars) -> Result<Pattern, PatternError> {
        Self::parse_inner(line, vars, None)
    }

    /// Parses a command-line pattern: like [`Pattern::parse`], but a relative pattern with a
    /// directory part (`build/tmp`) is taken relative to `base` (the current directory).
    pub fn parse_relative_to(
        line: &str,
        vars: &dyn Vars,
        base: &Path,
    ) -> Result<Pattern, PatternError> {
        Self::parse_inner(line, vars, Some(base))
    }

    fn parse_inner(
        line: &str,
        vars: &dyn Vars,
        base: Option<&Path>,
    ) -> Result<Pattern, PatternError> {
        if let Some(offset) = line.find('\0') {
            return Err(PatternError::Nul { offset });
        }
        let trimmed = line.trim();
        let (text, recursive) = split_recursive_flag(trimmed);
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        let mut chars = expand(text, vars)?;
        let is_absolute = chars.first().is_some_and(|c| c.c == '/');
        let has_inner_slash = {
            let end = chars.iter().rposition(|c| c.c != '/').map_or(0, |i| i + 1);
            chars[..end].iter().any(|c| c.c == '/')
        };
        let anywhere = !is_absolute && !has_inner_slash;
        if !is_absolute && has_inner_slash {
            match base {
                Some(base) => {
                    let mut joined: Vec<Ch> = base
                        .to_string_lossy()
                        .chars()
                        .map(|c| Ch { c, wild: false })
                        .collect();
                    joined.push(Ch {
                        c: '/',
                        wild: false,
                    });
                    joined.extend(chars);
                    chars = joined;
                    if chars.first().is_none_or(|c| c.c != '/') {
                        return Err(PatternError::Relative);
                    }
                }
                None => return Err(PatternError::Relative),
            }
        }
        let dir_only = chars.last().is_some_and(|c| c.c == '/');
        // Components, normalised: no empty ones, no `.`, `..` refused.
        let mut components: Vec<Vec<Ch>> = Vec::new();
        for part in chars.split(|c| c.c == '/') {
            if part.is_empty() || (part.len() == 1 && part[0].c == '.') {
                continue;
            }
            if part.len() == 2 && part[0].c == '.' && part[1].c == '.' {
                return Err(PatternError::DotDot);
            }
            components.push(part.to_vec());
        }
        let Some(name) = components.pop() else {
            return Err(PatternError::NoName);
        };
        for comp in &components {
            if comp.iter().any(|c| c.wild && (c.c == '*' || c.c == '?')) {
                return Err(PatternError::WildcardInDirectory {
                    component: comp.iter().map(|c| c.c).collect(),
                });
            }
        }
        let dir = if anywhere {
            None
        } else {
            let mut d = String::new();
            for comp in &components {
                d.push('/');
                d.extend(comp.iter().map(|c| c.c));
            }
            Some(d)
        };
        // `*.*` is every name on Windows; keep that meaning. Runs of `*` are one `*`.
        let mut name_chars: Vec<Ch> = Vec::with_capacity(name.len());
        for ch in name {
            let is_star = ch.wild && ch.c == '*';
            if is_star && name_chars.last().is_some_and(|p: &Ch| p.wild && p.c == '*') {
                continue;
            }
            name_chars.push(ch);
        }
        if name_chars.len() == 3
            && name_chars[0].wild
            && name_chars[0].c == '*'
            && name_chars[1].c == '.'
            && name_chars[2].wild
            && name_chars[2].c == '*'
        {
            name_chars.truncate(1);
        }
        let literal_wild = name_chars
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.wild && (c.c == '*' || c.c == '?'))
            .map(|(i, _)| i)
            .collect();
        let pattern = Pattern {
            text: text.to_string(),
            dir,
            name: name_chars.iter().map(|c| c.c).collect(),
            literal_wild,
            recursive,
            dir_only,
        };
        // Refuse now what would fail later.
        pattern.self_glob()?;
        Ok(pattern)
    }

    /// True when the pattern applies in every directory (a bare name).
    pub fn is_anywhere(&self) -> bool {
        self.dir.is_none()
    }

    /// The expanded form, e.g. `/var/tmp/* /s` or `*.o`, with a trailing `/` for directory
    /// patterns.
    pub fn expanded(&self) -> String {
        let mut s = match &self.dir {
            Some(d) => format!("{d}/{}", self.name),
            None => self.name.clone(),
        };
        if self.dir_only {
            s.push('/');
        }
        if self.recursive {
            s.push_str(" /s");
        }
        s
    }

    /// True when `name` holds a wildcard.
    pub fn has_wildcard(&self) -> bool {
        self.name
            .chars()
            .enumerate()
            .any(|(i, c)| (c == '*' || c == '?') && !self.literal_wild.contains(&i))
    }

    /// The glob (globset syntax) of the paths the pattern matches itself.
    pub(crate) fn self_glob_text(&self) -> String {
        let mut g = String::new();
        match &self.dir {
            None => g.push_str("**/"),
            Some(d) => {
                push_escaped(&mut g, d);
                g.push('/');
                if self.recursive {
                    g.push_str("**/");
                }
            }
        }
        for (i, c) in self.name.chars().enumerate() {
            if (c == '*' || c == '?') && !self.literal_wild.contains(&i) {
                g.push(c);
            } else {
                push_escaped_char(&mut g, c);
            }
        }
        g
    }

    pub(crate) fn self_glob(&self) -> Result<Glob, PatternError> {
        build_glob(&self.self_glob_text())
    }

    /// The glob of everything below a matched directory.
    pub(crate) fn under_glob(&self) -> Result<Glob, PatternError> {
        build_glob(&format!("{}/**", self.self_glob_text()))
    }
}

fn build_glob(text: &str) -> Result<Glob, PatternError> {
    GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map_err(|e| PatternError::Glob(e.to_string()))
}

/// Escapes the characters globset treats specially, by putting each in a class of its own.
fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        push_escaped_char(out, c);
    }
}

fn push_escaped_char(out: &mut String, c: char) {
    match c {
        '*' | '?' | '[' | ']' | '{' | '}' | ',' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        _ => out.push(c),
    }
}

/// Splits a trailing ` /s` (or ` /S`) flag off a trimmed line.
fn split_recursive_flag(line: &str) -> (&str, bool) {
    for flag in ["/s", "/S"] {
        if let Some(rest) = line.strip_suffix(flag)
            && rest.ends_with(|c: char| c.is_whitespace())
        {
            return (rest.trim_end(), true);
        }
    }
    (line, false)
}

fn is_var_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands `$NAME`, `${NAME}` and `$$`; characters from values are never wildcards.
fn expand(text: &str, vars: &dyn Vars) -> Result<Vec<Ch>, PatternError> {
    let mut out = Vec::with_capacity(text.len());
    let mut iter = text.char_indices().peekable();
    while let Some((offset, c)) = iter.next() {
        if c != '$' {
            out.push(Ch { c, wild: true });
            continue;
        }
        let name = match iter.peek().copied() {
            Some((_, '$')) => {
                iter.next();
                out.push(Ch {
                    c: '$',
                    wild: false,
                });
                continue;
            }
            Some((_, '{')) => {
                iter.next();
                let mut name = String::new();
                let mut closed = false;
                for (_, c) in iter.by_ref() {
                    if c == '}' {
                        closed = true;
                        break;
                    }
                    name.push(c);
                }
                if !closed {
                    return Err(PatternError::UnclosedBrace { offset });
                }
                let mut cs = name.chars();
                if !cs.next().is_some_and(is_var_start) || !cs.all(is_var_char) {
                    return Err(PatternError::BadVariable { offset });
                }
                name
            }
            Some((_, c)) if is_var_start(c) => {
                let mut name = String::new();
                while let Some(&(_, c)) = iter.peek() {
                    if !is_var_char(c) {
                        break;
                    }
                    name.push(c);
                    iter.next();
                }
                name
            }
            _ => return Err(PatternError::BadVariable { offset }),
        };
        let value = vars.get(&name).ok_or_else(|| PatternError::UnsetVariable {
            name: name.clone(),
            offset,
        })?;
        if value.is_empty() {
            return Err(PatternError::EmptyVariable { name, offset });
        }
        if value.contains('\0') {
            return Err(PatternError::NulInVariable { name, offset });
        }
        out.extend(value.chars().map(|c| Ch { c, wild: false }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "HOME" => Some("/home/ann".into()),
            "TEMP" => Some("/var/tmp".into()),
            "STAR" => Some("/data/a*b".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn p(s: &str) -> Result<Pattern, PatternError> {
        Pattern::parse(s, &vars)
    }

    #[test]
    fn parses_the_forms() {
        let a = p("/var/tmp/* /s").unwrap();
        assert_eq!(a.dir.as_deref(), Some("/var/tmp"));
        assert_eq!(a.name, "*");
        assert!(a.recursive && !a.dir_only);
        assert_eq!(a.expanded(), "/var/tmp/* /s");

        let b = p("  $HOME/.cache/  ").unwrap();
        assert_eq!(b.dir.as_deref(), Some("/home/ann"));
        assert_eq!(b.name, ".cache");
        assert!(b.dir_only && !b.recursive);
        assert_eq!(b.text, "$HOME/.cache/");

        let c = p("*.o").unwrap();
        assert!(c.is_anywhere());
        assert_eq!(c.self_glob_text(), "**/*.o");

        let d = p("${TEMP}/x?.log\t/S").unwrap();
        assert_eq!(d.expanded(), "/var/tmp/x?.log /s");

        let e = p("/SIS Common Store/*.* /s").unwrap();
        assert_eq!(e.name, "*");
        assert_eq!(e.dir.as_deref(), Some("/SIS Common Store"));

        let root = p("/swapfile").unwrap();
        assert_eq!(root.dir.as_deref(), Some(""));
        assert_eq!(root.self_glob_text(), "/swapfile");

        // "/s" alone is the file /s, not an empty pattern with a flag.
        let s = p("/s").unwrap();
        assert_eq!(s.name, "s");
        assert!(!s.recursive);

        let dollars = p("/boot/$$RECYCLE.BIN").unwrap();
        assert_eq!(dollars.name, "$RECYCLE.BIN");
        assert_eq!(p("/a//./b/").unwrap().expanded(), "/a/b/");
    }

    #[test]
    fn refuses_what_it_must() {
        assert_eq!(p("   "), Err(PatternError::Empty));
        assert_eq!(p("\t"), Err(PatternError::Empty));
        assert_eq!(p("/"), Err(PatternError::NoName));
        assert_eq!(p("/a/../b"), Err(PatternError::DotDot));
        assert!(matches!(
            p("/a*/b"),
            Err(PatternError::WildcardInDirectory { .. })
        ));
        assert!(matches!(p("a/b"), Err(PatternError::Relative)));
        assert!(matches!(
            p("$NOPE/x"),
            Err(PatternError::UnsetVariable { offset: 0, .. })
        ));
        assert!(matches!(
            p("/x/${HOME"),
            Err(PatternError::UnclosedBrace { offset: 3 })
        ));
        assert!(matches!(
            p("/x/$-"),
            Err(PatternError::BadVariable { offset: 3 })
        ));
        assert!(matches!(
            p("/x/${1A}"),
            Err(PatternError::BadVariable { .. })
        ));
        assert!(matches!(p("/x\0y"), Err(PatternError::Nul { offset: 2 })));
        // An empty variable would turn `$X/*` into `/*`.
        assert!(matches!(
            p("$EMPTY/*"),
            Err(PatternError::EmptyVariable { offset: 0, .. })
        ));
    }

    #[test]
    fn variable_values_are_literal() {
        // A `*` inside a variable's value is a character, not a wildcard, and is allowed in
        // the directory part.
        let a = p("$STAR/*.log").unwrap();
        assert_eq!(a.dir.as_deref(), Some("/data/a*b"));
        assert_eq!(a.self_glob_text(), "/data/a[*]b/*.log");
    }

    #[test]
    fn relative_to_base_on_the_command_line() {
        let a = Pattern::parse_relative_to("build/tmp/", &vars, Path::new("/src/proj")).unwrap();
        assert_eq!(a.expanded(), "/src/proj/build/tmp/");
        let b = Pattern::parse_relative_to("node_modules/", &vars, Path::new("/src")).unwrap();
        assert!(b.is_anywhere() && b.dir_only);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;
        use crate::rules::{Key, Rule, RuleSet, Source};

        fn no_vars(_: &str) -> Option<String> {
            Some("/v".into())
        }

        /// Wildcard matching by definition, for comparison.
        fn wild_match(p: &[char], n: &[char]) -> bool {
            match p.split_first() {
                None => n.is_empty(),
                Some(('*', rest)) => (0..=n.len()).any(|i| wild_match(rest, &n[i..])),
                Some(('?', rest)) => !n.is_empty() && wild_match(rest, &n[1..]),
                Some((c, rest)) => n.first() == Some(c) && wild_match(rest, &n[1..]),
            }
        }

        fn compile(p: Pattern) -> RuleSet {
            let rule = Rule {
                key: Key::FilesNotToBackup,
                pattern: p,
                source: Source::CommandLine { index: 0 },
            };
            let (set, diags) = RuleSet::new(vec![rule]);
            assert!(diags.is_empty(), "{diags:?}");
            set
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn never_panics_on_any_text(line in any::<String>()) {
                let _ = Pattern::parse(&line, &no_vars);
                let _ = Pattern::parse_relative_to(&line, &no_vars, Path::new("/base"));
            }

            #[test]
            fn never_panics_on_pattern_like_text(line in "[/$*?{}\\[\\] a.s\t,!~-]{0,24}") {
                if let Ok(p) = Pattern::parse(&line, &no_vars) {
                    // Whatever parses compiles and round-trips through its expanded form.
                    let set = compile(p.clone());
                    prop_assert_eq!(set.rules().len(), 1);
                    if !p.expanded().contains('$') {
                        let again = Pattern::parse(&p.expanded(), &no_vars).unwrap();
                        prop_assert_eq!((&again.dir, &again.name, again.recursive, again.dir_only),
                                        (&p.dir, &p.name, p.recursive, p.dir_only));
                    }
                }
            }

            #[test]
            fn literal_names_match_only_themselves(name in "[^/*?$\\x00\\s][^/*?$\\x00]{0,15}") {
                prop_assume!(name != "." && name != ".." && name.trim() == name);
                let set = compile(Pattern::parse(&format!("/d/{name}"), &no_vars).unwrap());
                let (same, longer, other) = (format!("/d/{name}"), format!("/d/{name}x"), format!("/d/x{name}"));
                prop_assert!(set.match_entry(Path::new(&same), false).is_some());
                prop_assert!(set.match_entry(Path::new(&longer), false).is_none());
                prop_assert!(set.match_entry(Path::new(&other), false).is_none());
            }

            #[test]
            fn wildcards_mean_what_they_say(pat in "[ab*?]{1,6}", name in "[ab]{1,6}", deep in any::<bool>()) {
                let set = compile(Pattern::parse(&format!("/d/{pat}"), &no_vars).unwrap());
                let p: Vec<char> = pat.chars().collect();
                let n: Vec<char> = name.chars().collect();
                let path = if deep { format!("/d/sub/{name}") } else { format!("/d/{name}") };
                let expect = !deep && wild_match(&p, &n);
                prop_assert_eq!(set.match_entry(Path::new(&path), false).is_some(), expect);
            }
        }
    }
}
