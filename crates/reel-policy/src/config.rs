//! `reel.conf`: the global options (TOML), after the Windows values DisableMonitoring,
//! IdleTimeout, MaxShadowCopies, MinDiffAreaFileSize, OverallPerformanceSetting and
//! CustomPerformanceSettings, plus reel's own `exclude-if-present`, `efs-recovery` and
//! `hook-timeout`.
//!
//! The main file is the `reel.conf` of the highest level that has one (`/etc` over `/run` over
//! `/usr/lib`); then the drop-ins `reel.conf.d/*.conf` of all levels, merged by name, are
//! applied in lexical order, each key replacing the value before it. A bad value is reported
//! with its file and line and the value before it stays.
//!
//! ```toml
//! backup-mode = "custom"            # full | incremental | custom
//! max-snapshots = 16                # 1..512, default 64
//! min-snapshot-space = "1G"         # bytes or a size; "auto": 32 MiB below 500 MiB, else 320 MiB
//! idle-timeout = 180                # seconds (or "3m"); 0 means the default, 180
//! disable-monitoring = true
//! exclude-if-present = [".nobackup", ".no-reel"]
//! efs-recovery = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"
//! hook-timeout = "5m"
//!
//! [backup-mode-custom]              # used when backup-mode = "custom"
//! "/" = "full"
//! "/home" = "incremental"
//! "UUID=0ac22ea6-712f-11de-adb0-00215a67606e" = "incremental"
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use toml_edit::{ImDocument, Item, TableLike};

use crate::diag::Diagnostic;
use crate::rules::Source;
use crate::size::{SizeErrorKind, parse_size};

/// The default number of snapshots kept per filesystem (MaxShadowCopies).
pub const DEFAULT_MAX_SNAPSHOTS: u32 = 64;
/// The largest `max-snapshots`.
pub const MAX_MAX_SNAPSHOTS: u32 = 512;
/// The default idle timeout (IdleTimeout), also used for 0.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// The default time limit of one hook.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// How `reel backup` backs up when neither `--full` nor `--incremental` is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeKind {
    /// Every file (OverallPerformanceSetting 1, "normal").
    Full,
    /// Files changed since the previous set (OverallPerformanceSetting 2, "faster").
    Incremental,
}

/// The `backup-mode` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    Full,
    Incremental,
    /// Per filesystem, from `[backup-mode-custom]` (OverallPerformanceSetting 3).
    Custom,
}

/// Which filesystem a `[backup-mode-custom]` entry is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FsSelector {
    /// The filesystem mounted here.
    MountPoint(PathBuf),
    /// The filesystem with this UUID (`UUID=…`, as in fstab; compared without case).
    Uuid(String),
}

/// The UUID of the file system holding `path`, as fstab and blkid write it (`UUID=`
/// selectors), from the kernel: FS_IOC_GETFSUUID (ext4, XFS, … since Linux 6.5), or for
/// btrfs its fsid (BTRFS_IOC_FS_INFO). `None` where the file system has none or the kernel
/// cannot say.
pub fn filesystem_uuid(path: &std::path::Path) -> Option<String> {
    use rustix::ioctl::{Getter, Opcode, Updater, opcode};
    /// `struct fsuuid2`: a length and up to 16 bytes.
    const FS_IOC_GETFSUUID: Opcode = opcode::read::<[u8; 17]>(0x15, 0);
    /// `struct btrfs_ioctl_fs_info_args` (1 KiB), the fsid at byte 16.
    const BTRFS_IOC_FS_INFO: Opcode = opcode::read::<[u8; 1024]>(0x94, 31);
    let fd = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC | rustix::fs::OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )
    .ok()?;
    // SAFETY: FS_IOC_GETFSUUID writes one struct fsuuid2 (17 bytes, byte-aligned).
    let generic = unsafe { rustix::ioctl::ioctl(&fd, Getter::<FS_IOC_GETFSUUID, [u8; 17]>::new()) };
    let bytes: [u8; 16] = match generic {
        Ok(raw) if raw[0] == 16 => raw[1..].try_into().ok()?,
        Ok(_) => return None,
        Err(_) => {
            // The kernel also reads the struct (its `flags` ask for more): zeroed, not
            // uninitialised.
            let mut info = [0u8; 1024];
            // SAFETY: BTRFS_IOC_FS_INFO reads and writes one struct btrfs_ioctl_fs_info_args
            // (1024 bytes); other file systems refuse it.
            unsafe {
                rustix::ioctl::ioctl(
                    &fd,
                    Updater::<BTRFS_IOC_FS_INFO, [u8; 1024]>::new(&mut info),
                )
            }
            .ok()?;
            info[16..32].try_into().ok()?
        }
    };
    if bytes.iter().all(|b| *b == 0) {
        return None;
    }
    Some(uuid::Uuid::from_bytes(bytes).hyphenated().to_string())
}

/// One `[backup-mode-custom]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FilesystemMode {
    pub filesystem: FsSelector,
    pub mode: ModeKind,
    pub source: Source,
}

/// A value and where it was set (`None`: the built-in default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    pub value: T,
    pub source: Option<Source>,
}

impl<T> Setting<T> {
    fn default_value(value: T) -> Self {
        Setting {
            value,
            source: None,
        }
    }
}

/// The merged global options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    pub backup_mode: Setting<BackupMode>,
    pub backup_mode_custom: Vec<FilesystemMode>,
    pub max_snapshots: Setting<u32>,
    /// Bytes; `None` is "auto" (see [`Config::min_snapshot_space_for`]).
    pub min_snapshot_space: Setting<Option<u64>>,
    #[serde(serialize_with = "ser_secs")]
    pub idle_timeout: Setting<Duration>,
    pub disable_monitoring: Setting<bool>,
    pub exclude_if_present: Setting<Vec<String>>,
    /// The recipient (age) that can decrypt every encrypted file, for reel-efs.
    pub efs_recovery: Setting<Option<String>>,
    #[serde(serialize_with = "ser_secs")]
    pub hook_timeout: Setting<Duration>,
}

fn ser_secs<S: serde::Serializer>(s: &Setting<Duration>, ser: S) -> Result<S::Ok, S::Error> {
    Setting {
        value: s.value.as_secs(),
        source: s.source.clone(),
    }
    .serialize(ser)
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backup_mode: Setting::default_value(BackupMode::Full),
            backup_mode_custom: Vec::new(),
            max_snapshots: Setting::default_value(DEFAULT_MAX_SNAPSHOTS),
            min_snapshot_space: Setting::default_value(None),
            idle_timeout: Setting::default_value(DEFAULT_IDLE_TIMEOUT),
            disable_monitoring: Setting::default_value(false),
            exclude_if_present: Setting::default_value(vec![".nobackup".to_string()]),
            efs_recovery: Setting::default_value(None),
            hook_timeout: Setting::default_value(DEFAULT_HOOK_TIMEOUT),
        }
    }
}

impl Config {
    /// The mode of a filesystem: `backup-mode`, or for `custom` its `[backup-mode-custom]`
    /// entry, matched by UUID first, then by mount point; full when it has none.
    pub fn mode_for(&self, mount_point: &Path, fs_uuid: Option<&str>) -> ModeKind {
        match self.backup_mode.value {
            BackupMode::Full => ModeKind::Full,
            BackupMode::Incremental => ModeKind::Incremental,
            BackupMode::Custom => {
                let by_uuid = fs_uuid.and_then(|u| {
                    self.backup_mode_custom.iter().rev().find(|e| {
                        matches!(&e.filesystem, FsSelector::Uuid(x) if x.eq_ignore_ascii_case(u))
                    })
                });
                let by_mount = || {
                    self.backup_mode_custom.iter().rev().find(
                        |e| matches!(&e.filesystem, FsSelector::MountPoint(m) if m == mount_point),
                    )
                };
                by_uuid.or_else(by_mount).map_or(ModeKind::Full, |e| e.mode)
            }
        }
    }

    /// The free space a snapshot needs on a filesystem of `fs_size` bytes: `min-snapshot-space`,
    /// or by default (as MinDiffAreaFileSize) 32 MiB below 500 MiB and 320 MiB above.
    pub fn min_snapshot_space_for(&self, fs_size: u64) -> u64 {
        self.min_snapshot_space
            .value
            .unwrap_or(if fs_size < 500 << 20 {
                32 << 20
            } else {
                320 << 20
            })
    }

    /// Applies one TOML file over the current values.
    pub(crate) fn apply_file(&mut self, path: &Path, text: &str, diags: &mut Vec<Diagnostic>) {
        let doc = match ImDocument::parse(text) {
            Ok(d) => d,
            Err(e) => {
                let line = e.span().map(|s| line_of(text, s.start));
                diags.push(Diagnostic::error(
                    path,
                    line,
                    format!(
                        "not valid TOML ({}); the whole file is ignored",
                        e.message().trim().replace('\n', "; ")
                    ),
                ));
                return;
            }
        };
        let table = doc.as_table();
        for (key, item) in table.iter() {
            let line = table
                .key(key)
                .and_then(|k| k.span())
                .or_else(|| item.span())
                .map_or(1, |s| line_of(text, s.start));
            let source = Source::File {
                file: path.to_path_buf(),
                line,
            };
            let mut bad = |msg: String| {
                diags.push(Diagnostic::error(path, Some(line), format!("{key}: {msg}")))
            };
            match key {
                "backup-mode" => match parse_backup_mode(item) {
                    Ok(v) => self.backup_mode = Setting { value: v, source: Some(source) },
                    Err(m) => bad(m),
                },
                "backup-mode-custom" => match item.as_table_like() {
                    Some(t) => self.apply_custom(path, text, t, diags),
                    None => bad(format!("expected a table, found {}", item.type_name())),
                },
                "max-snapshots" => match item.as_integer() {
                    Some(n) if (1..=MAX_MAX_SNAPSHOTS as i64).contains(&n) => {
                        self.max_snapshots = Setting { value: n as u32, source: Some(source) }
                    }
                    _ => bad(format!("expected a whole number from 1 to {MAX_MAX_SNAPSHOTS}")),
                },
                "min-snapshot-space" => match parse_size_item(item) {
                    Ok(v) => self.min_snapshot_space = Setting { value: v, source: Some(source) },
                    Err(m) => bad(m),
                },
                "idle-timeout" => match parse_duration_item(item) {
                    Ok(d) => {
                        let d = if d.is_zero() { DEFAULT_IDLE_TIMEOUT } else { d };
                        self.idle_timeout = Setting { value: d, source: Some(source) }
                    }
                    Err(m) => bad(m),
                },
                "hook-timeout" => match parse_duration_item(item) {
                    Ok(d) if !d.is_zero() => self.hook_timeout = Setting { value: d, source: Some(source) },
                    Ok(_) => bad("must be at least one second".into()),
                    Err(m) => bad(m),
                },
                "disable-monitoring" => {
                    let v = item.as_bool().or_else(|| match item.as_integer() {
                        Some(0) => Some(false),
                        Some(1) => Some(true),
                        _ => None,
                    });
                    match v {
                        Some(v) => self.disable_monitoring = Setting { value: v, source: Some(source) },
                        None => bad("expected true or false".into()),
                    }
                }
                "exclude-if-present" => match parse_marker_list(item) {
                    Ok(v) => self.exclude_if_present = Setting { value: v, source: Some(source) },
                    Err(m) => bad(m),
                },
                "efs-recovery" => match item.as_str().map(str::trim) {
                    Some("") => self.efs_recovery = Setting { value: None, source: Some(source) },
                    Some(s) => self.efs_recovery = Setting { value: Some(s.to_string()), source: Some(source) },
                    None => bad("expected a recipient string, e.g. \"age1…\"".into()),
                },
                _ => diags.push(Diagnostic::warning(
                    path,
                    Some(line),
                    format!(
                        "unknown key `{key}` ignored (known: backup-mode, backup-mode-custom, max-snapshots, \
                         min-snapshot-space, idle-timeout, disable-monitoring, exclude-if-present, \
                         efs-recovery, hook-timeout)"
                    ),
                )),
            }
        }
    }

    fn apply_custom(
        &mut self,
        path: &Path,
        text: &str,
        t: &dyn TableLike,
        diags: &mut Vec<Diagnostic>,
    ) {
        for (fs, item) in t.iter() {
            let line = t
                .get_key_value(fs)
                .and_then(|(k, _)| k.span())
                .or_else(|| item.span())
                .map_or(1, |s| line_of(text, s.start));
            let filesystem = if let Some(u) = fs.strip_prefix("UUID=") {
                if u.is_empty() || !u.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                    diags.push(Diagnostic::error(
                        path,
                        Some(line),
                        format!("backup-mode-custom: `{fs}` is not a filesystem UUID"),
                    ));
                    continue;
                }
                FsSelector::Uuid(u.to_string())
            } else if fs.starts_with('/') {
                let p = Path::new(fs);
                FsSelector::MountPoint(if p.as_os_str().len() > 1 {
                    p.components().collect()
                } else {
                    p.to_path_buf()
                })
            } else {
                diags.push(Diagnostic::error(
                    path,
                    Some(line),
                    format!("backup-mode-custom: `{fs}` is neither a mount point (/…) nor UUID=…"),
                ));
                continue;
            };
            let mode = match parse_backup_mode(item) {
                Ok(BackupMode::Full) => ModeKind::Full,
                Ok(BackupMode::Incremental) => ModeKind::Incremental,
                Ok(BackupMode::Custom) => {
                    diags.push(Diagnostic::error(
                        path,
                        Some(line),
                        format!("backup-mode-custom.\"{fs}\": must be full or incremental"),
                    ));
                    continue;
                }
                Err(m) => {
                    diags.push(Diagnostic::error(
                        path,
                        Some(line),
                        format!("backup-mode-custom.\"{fs}\": {m}"),
                    ));
                    continue;
                }
            };
            self.backup_mode_custom
                .retain(|e| e.filesystem != filesystem);
            self.backup_mode_custom.push(FilesystemMode {
                filesystem,
                mode,
                source: Source::File {
                    file: path.to_path_buf(),
                    line,
                },
            });
        }
    }

    /// Warnings about the merged result as a whole.
    pub(crate) fn check(&self, diags: &mut Vec<Diagnostic>) {
        if self.backup_mode.value != BackupMode::Custom
            && let Some(e) = self.backup_mode_custom.first()
            && let Source::File { file, line } = &e.source
        {
            diags.push(Diagnostic::warning(
                file,
                Some(*line),
                "backup-mode-custom is ignored because backup-mode is not \"custom\"",
            ));
        }
    }
}

/// The 1-based line of a byte offset.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn parse_backup_mode(item: &Item) -> Result<BackupMode, String> {
    if let Some(s) = item.as_str() {
        return match s.trim().to_ascii_lowercase().as_str() {
            "full" | "normal" => Ok(BackupMode::Full),
            "incremental" | "faster" => Ok(BackupMode::Incremental),
            "custom" => Ok(BackupMode::Custom),
            _ => Err(format!("`{s}` is not full, incremental or custom")),
        };
    }
    // The Windows numbers: 1 normal (full), 2 faster (incremental), 3 custom.
    match item.as_integer() {
        Some(1) => Ok(BackupMode::Full),
        Some(2) => Ok(BackupMode::Incremental),
        Some(3) => Ok(BackupMode::Custom),
        _ => Err("expected \"full\", \"incremental\" or \"custom\"".into()),
    }
}

/// A size setting: bytes (see [`parse_size`]), or `auto` for `None`.
fn parse_size_setting(text: &str) -> Result<Option<u64>, String> {
    if text.trim().eq_ignore_ascii_case("auto") {
        return Ok(None);
    }
    parse_size(text).map(Some).map_err(|e| match e.kind {
        SizeErrorKind::NotANumber => format!("`{text}` is not a size (e.g. 320M, 1G, auto)"),
        SizeErrorKind::OutOfRange => format!("`{text}` is out of range"),
    })
}

fn parse_size_item(item: &Item) -> Result<Option<u64>, String> {
    if let Some(n) = item.as_integer() {
        return u64::try_from(n)
            .map(Some)
            .map_err(|_| "must not be negative".to_string());
    }
    match item.as_str() {
        Some(s) => parse_size_setting(s),
        None => Err("expected a size such as \"320M\", a number of bytes, or \"auto\"".into()),
    }
}

/// A duration: whole seconds, or a string `90`, `90s`, `5m`, `2h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1u64),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90, 90s, 5m, 2h)"))?;
    n.checked_mul(mult)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is out of range"))
}

fn parse_duration_item(item: &Item) -> Result<Duration, String> {
    if let Some(n) = item.as_integer() {
        return u64::try_from(n)
            .map(Duration::from_secs)
            .map_err(|_| "must not be negative".to_string());
    }
    match item.as_str() {
        Some(s) => parse_duration(s),
        None => Err("expected seconds or a duration such as \"5m\"".into()),
    }
}

fn parse_marker_list(item: &Item) -> Result<Vec<String>, String> {
    let arr = item
        .as_array()
        .ok_or_else(|| "expected a list of file names, e.g. [\".nobackup\"]".to_string())?;
    let mut out = Vec::new();
    for v in arr.iter() {
        let s = v
            .as_str()
            .ok_or_else(|| "every entry must be a string".to_string())?;
        if s.is_empty() || s == "." || s == ".." || s.contains('/') || s.contains('\0') {
            return Err(format!("`{s}` is not a file name (no `/`, not empty)"));
        }
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size_setting("320M"), Ok(Some(320 << 20)));
        assert_eq!(parse_size_setting("1.5GiB"), Ok(Some(3 << 29)));
        assert_eq!(parse_size_setting("auto"), Ok(None));
        assert_eq!(
            parse_size_setting("lots"),
            Err("`lots` is not a size (e.g. 320M, 1G, auto)".into())
        );
        assert_eq!(
            parse_size_setting("-1G"),
            Err("`-1G` is out of range".into())
        );
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("42"), Ok(Duration::from_secs(42)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn applies_values_with_lines_and_reports_bad_ones() {
        let text = "\
# comment
backup-mode = \"custom\"
max-snapshots = 0
min-snapshot-space = \"1G\"
idle-timeout = 0
exclude-if-present = [\".nobackup\", \"bad/name\"]
colour = \"blue\"

[backup-mode-custom]
\"/\" = \"full\"
\"UUID=0AC22EA6-712F-11de-adb0-00215a67606e\" = 2
\"home\" = \"full\"
";
        let mut c = Config::default();
        let mut d = Vec::new();
        c.apply_file(Path::new("/x/reel.conf"), text, &mut d);
        assert_eq!(c.backup_mode.value, BackupMode::Custom);
        assert_eq!(
            c.backup_mode.source,
            Some(Source::File {
                file: "/x/reel.conf".into(),
                line: 2
            })
        );
        assert_eq!(c.max_snapshots.value, DEFAULT_MAX_SNAPSHOTS, "0 is refused");
        assert_eq!(c.min_snapshot_space.value, Some(1 << 30));
        assert_eq!(
            c.idle_timeout.value, DEFAULT_IDLE_TIMEOUT,
            "0 means the default"
        );
        assert_eq!(
            c.exclude_if_present.value,
            vec![".nobackup".to_string()],
            "bad list keeps the default"
        );
        let lines: Vec<_> = d.iter().map(|x| x.line).collect();
        assert_eq!(lines, vec![Some(3), Some(6), Some(7), Some(12)], "{d:#?}");
        assert_eq!(c.mode_for(Path::new("/"), None), ModeKind::Full);
        assert_eq!(
            c.mode_for(
                Path::new("/data"),
                Some("0ac22ea6-712f-11de-adb0-00215a67606e")
            ),
            ModeKind::Incremental
        );
        assert_eq!(c.mode_for(Path::new("/other"), None), ModeKind::Full);
        assert_eq!(c.min_snapshot_space_for(100), 1 << 30);
        assert_eq!(
            Config::default().min_snapshot_space_for(100 << 20),
            32 << 20
        );
        assert_eq!(Config::default().min_snapshot_space_for(1 << 30), 320 << 20);
    }

    #[test]
    fn invalid_toml_names_the_line() {
        let mut c = Config::default();
        let mut d = Vec::new();
        c.apply_file(
            Path::new("/x/a.conf"),
            "max-snapshots = 3\n\nidle-timeout = = 5\nhook-timeout = 9\n",
            &mut d,
        );
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].line, Some(3), "{d:?}");
        assert_eq!(
            c.max_snapshots.value, DEFAULT_MAX_SNAPSHOTS,
            "a broken file is ignored whole"
        );
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        const GOOD: &str = "backup-mode = \"custom\"\nmax-snapshots = 16\nmin-snapshot-space = \"1G\"\n\
            idle-timeout = \"3m\"\nexclude-if-present = [\".nobackup\"]\nefs-recovery = \"age1x\"\n\
            [backup-mode-custom]\n\"/\" = \"full\"\n";

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

            #[test]
            fn any_text_is_survived(text in any::<String>()) {
                let mut c = Config::default();
                let mut d = Vec::new();
                c.apply_file(Path::new("/f"), &text, &mut d);
                for x in &d { prop_assert!(x.line.is_none_or(|l| l >= 1 && l <= text.lines().count() + 1)); }
            }

            #[test]
            fn truncations_and_flips_are_survived(cut in 0usize..200, flip in 0usize..200, bit in 0u8..7) {
                let mut bytes = GOOD.as_bytes()[..cut.min(GOOD.len())].to_vec();
                if let Some(b) = bytes.get_mut(flip) { *b ^= 1 << bit; }
                let text = String::from_utf8_lossy(&bytes);
                let mut c = Config::default();
                let mut d = Vec::new();
                c.apply_file(Path::new("/f"), &text, &mut d);
                prop_assert!((1..=MAX_MAX_SNAPSHOTS).contains(&c.max_snapshots.value));
            }
        }
    }
}
