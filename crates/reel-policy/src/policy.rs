//! Loading the merged policy: the three pattern keys, `reel.conf` and the hook directories.

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::diag::{Diagnostic, Severity};
use crate::hooks::{self, Hook, HookContext, HookPhase, HookReport};
use crate::pattern::{Pattern, ProcessEnv, Vars};
use crate::roots::{PolicyFile, Roots, find_main_file, merge_dropins};
use crate::rules::{Key, Rule, RuleSet, Source};

/// Policy files larger than this are refused (a pattern list is a few kilobytes).
pub const MAX_POLICY_FILE: u64 = 4 << 20;

/// The merged policy of one root, with every problem found while reading it.
#[derive(Debug, Clone)]
pub struct Policy {
    roots: Roots,
    /// `files-not-to-backup.d` (FilesNotToBackup).
    pub files_not_to_backup: RuleSet,
    /// `files-not-to-snapshot.d` (FilesNotToSnapshot).
    pub files_not_to_snapshot: RuleSet,
    /// `paths-not-to-restore.d` (KeysNotToRestore).
    pub paths_not_to_restore: RuleSet,
    /// `reel.conf` and `reel.conf.d`.
    pub config: Config,
    hooks: [Vec<Hook>; 3],
    /// Every file found, and what became of it (used, overridden, masked).
    pub files: Vec<PolicyFile>,
    /// Malformed lines, bad values, unreadable files: reported, never fatal.
    pub diagnostics: Vec<Diagnostic>,
}

impl Policy {
    /// Reads the policy under `roots`, expanding `$VAR` from the process environment. It never
    /// fails: whatever cannot be read is skipped and listed in [`Policy::diagnostics`].
    pub fn load(roots: &Roots) -> Policy {
        Self::load_with_vars(roots, &ProcessEnv)
    }

    /// As [`Policy::load`], with the variables from `vars`.
    pub fn load_with_vars(roots: &Roots, vars: &dyn Vars) -> Policy {
        let mut diags = Vec::new();
        let mut files = Vec::new();
        let is_conf =
            |n: &OsStr| n.as_bytes().ends_with(b".conf") && !n.as_bytes().starts_with(b".");

        let mut sets: Vec<RuleSet> = Vec::new();
        for key in Key::FILE_KEYS {
            let merged = merge_dropins(roots, &format!("{}.d", key.name()), &is_conf, &mut diags);
            files.extend(merged.records);
            let mut rules = Vec::new();
            for path in &merged.effective {
                read_pattern_file(key, path, vars, &mut rules, &mut diags);
            }
            let (set, d) = RuleSet::new(rules);
            diags.extend(d);
            sets.push(set);
        }
        let paths_not_to_restore = sets.pop().unwrap_or_default();
        let files_not_to_snapshot = sets.pop().unwrap_or_default();
        let files_not_to_backup = sets.pop().unwrap_or_default();

        let mut config = Config::default();
        let main = find_main_file(roots, "reel.conf");
        files.extend(main.records);
        let dropins = merge_dropins(roots, "reel.conf.d", &is_conf, &mut diags);
        files.extend(dropins.records);
        for path in main.effective.iter().chain(&dropins.effective) {
            if let Some(text) = read_text(path, &mut diags) {
                config.apply_file(path, &text, &mut diags);
            }
        }
        config.check(&mut diags);

        let mut hooks: [Vec<Hook>; 3] = Default::default();
        for (slot, phase) in hooks.iter_mut().zip(HookPhase::ALL) {
            let merged = merge_dropins(roots, phase.dir_name(), &is_hook_name, &mut diags);
            files.extend(merged.records);
            for path in merged.effective {
                match std::fs::metadata(&path) {
                    Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {
                        let name = path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        slot.push(Hook { phase, name, path });
                    }
                    Ok(m) if m.is_file() => diags.push(Diagnostic::warning(
                        &path,
                        None,
                        "hook is not executable (chmod +x); skipped",
                    )),
                    Ok(_) => diags.push(Diagnostic::warning(
                        &path,
                        None,
                        "hook is not a regular file; skipped",
                    )),
                    Err(e) => diags.push(Diagnostic::error(
                        &path,
                        None,
                        format!("cannot read the hook: {e}"),
                    )),
                }
            }
        }

        Policy {
            roots: roots.clone(),
            files_not_to_backup,
            files_not_to_snapshot,
            paths_not_to_restore,
            config,
            hooks,
            files,
            diagnostics: diags,
        }
    }

    pub fn roots(&self) -> &Roots {
        &self.roots
    }

    /// The rules of a key.
    pub fn rules(&self, key: Key) -> &RuleSet {
        static EMPTY: std::sync::OnceLock<RuleSet> = std::sync::OnceLock::new();
        match key {
            Key::FilesNotToBackup => &self.files_not_to_backup,
            Key::FilesNotToSnapshot => &self.files_not_to_snapshot,
            Key::PathsNotToRestore => &self.paths_not_to_restore,
            Key::CommandLine => EMPTY.get_or_init(RuleSet::default),
        }
    }

    /// The hooks of a phase, in the order they run (by name).
    pub fn hooks(&self, phase: HookPhase) -> &[Hook] {
        &self.hooks[phase as usize]
    }

    /// Runs the hooks of `phase` with the policy's `hook-timeout`; under a `$REEL_ROOT`
    /// prefix, the hooks are told it as `REEL_ROOT`.
    pub fn run_hooks(&self, phase: HookPhase, ctx: &HookContext) -> HookReport {
        let mut ctx = ctx.clone();
        if self.roots().prefix() != Path::new("/") {
            ctx = ctx.var("REEL_ROOT", self.roots().prefix().as_os_str());
        }
        hooks::run_hooks(
            phase,
            self.hooks(phase),
            &ctx,
            self.config.hook_timeout.value,
        )
    }

    /// True when a diagnostic of error severity was found (something was ignored).
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Hook names as run-parts accepts them: no hidden files, editor backups or package-manager
/// leftovers.
fn is_hook_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    !(b.starts_with(b".")
        || b.ends_with(b"~")
        || b.ends_with(b".swp")
        || b.ends_with(b".disabled")
        || [
            ".dpkg-old",
            ".dpkg-new",
            ".dpkg-dist",
            ".dpkg-tmp",
            ".rpmnew",
            ".rpmsave",
            ".rpmorig",
        ]
        .iter()
        .any(|s| b.ends_with(s.as_bytes())))
}

fn read_bytes(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Vec<u8>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            diags.push(Diagnostic::error(
                path,
                None,
                format!("cannot open: {e}; file ignored"),
            ));
            return None;
        }
    };
    match file.metadata() {
        Ok(m) if m.is_dir() => {
            diags.push(Diagnostic::error(path, None, "is a directory; ignored"));
            return None;
        }
        Ok(m) if m.len() > MAX_POLICY_FILE => {
            diags.push(Diagnostic::error(
                path,
                None,
                format!(
                    "is {} bytes, more than the {MAX_POLICY_FILE} a policy file may have; ignored",
                    m.len()
                ),
            ));
            return None;
        }
        _ => {}
    }
    let mut buf = Vec::new();
    if let Err(e) = file.take(MAX_POLICY_FILE + 1).read_to_end(&mut buf) {
        diags.push(Diagnostic::error(
            path,
            None,
            format!("cannot read: {e}; file ignored"),
        ));
        return None;
    }
    if buf.len() as u64 > MAX_POLICY_FILE {
        diags.push(Diagnostic::error(
            path,
            None,
            "grew beyond the size a policy file may have; ignored",
        ));
        return None;
    }
    Some(buf)
}

fn read_text(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let bytes = read_bytes(path, diags)?;
    match String::from_utf8(bytes) {
        Ok(s) => Some(s),
        Err(e) => {
            let offset = e.utf8_error().valid_up_to();
            let line = crate::config::line_of(&String::from_utf8_lossy(e.as_bytes()), offset);
            diags.push(Diagnostic::error(
                path,
                Some(line),
                format!("not UTF-8 (byte {offset}); the whole file is ignored"),
            ));
            None
        }
    }
}

/// Reads one pattern file: a pattern a line; blank lines and lines starting with `#` or `;`
/// are skipped; a bad line is reported and skipped.
fn read_pattern_file(
    key: Key,
    path: &Path,
    vars: &dyn Vars,
    rules: &mut Vec<Rule>,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(bytes) = read_bytes(path, diags) else {
        return;
    };
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let Ok(line) = std::str::from_utf8(raw) else {
            diags.push(Diagnostic::error(
                path,
                Some(line_no),
                "not UTF-8; line ignored",
            ));
            continue;
        };
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') || t.starts_with(';') {
            continue;
        }
        match Pattern::parse(t, vars) {
            Ok(pattern) => rules.push(Rule {
                key,
                pattern,
                source: Source::File {
                    file: PathBuf::from(path),
                    line: line_no,
                },
            }),
            Err(e) => diags.push(Diagnostic::error(
                path,
                Some(line_no),
                format!("`{t}`: {e}; line ignored"),
            )),
        }
    }
}
