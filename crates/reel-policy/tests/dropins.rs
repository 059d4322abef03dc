//! A `$REEL_ROOT` with vendor, runtime and administrator drop-ins: overrides, masks, malformed
//! lines; the merged result and the verdict on paths.

use std::path::{Path, PathBuf};

use reel_policy::{
    BackupFilter, BackupMode, EntryKind, FileState, HookPhase, Key, Level, ModeKind, Pattern,
    Policy, Reason, RestoreFilter, Roots, Severity, Source, Verdict, explain_path,
};
use reel_testkit::write_file;

struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        Root {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path(rel);
        write_file(&p, text.as_bytes());
        p
    }
    fn mask(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink("/dev/null", &p).unwrap();
        p
    }
    fn roots(&self) -> Roots {
        Roots::new(self.dir.path())
    }
}

fn vars(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/ann".into()),
        "TMPDIR" => Some("/var/tmp".into()),
        _ => None,
    }
}

fn src(file: &Path, line: usize) -> Source {
    Source::File {
        file: file.to_path_buf(),
        line,
    }
}

/// The three levels with a bit of everything.
fn build() -> (Root, Vec<PathBuf>) {
    let r = Root::new();
    let vendor_tmp = r.write(
        "usr/lib/reel/files-not-to-backup.d/50-tmp.conf",
        "# vendor: temporary files\n/tmp/* /s\n",
    );
    let vendor_cache = r.write(
        "usr/lib/reel/files-not-to-backup.d/60-cache.conf",
        "\n$HOME/.cache/\n*.o\n",
    );
    let vendor_masked = r.write(
        "usr/lib/reel/files-not-to-backup.d/70-masked.conf",
        "/srv/everything /s\n",
    );
    let vendor_swap = r.write(
        "usr/lib/reel/files-not-to-backup.d/10-swap.conf",
        "/swapfile\n",
    );
    // The administrator replaces 50-tmp.conf (so /tmp is not excluded any more) and adds
    // a file with malformed lines between good ones.
    let admin_tmp = r.write(
        "etc/reel/files-not-to-backup.d/50-tmp.conf",
        "${TMPDIR}/*.log\t/s\n",
    );
    let admin_mixed = r.write(
        "etc/reel/files-not-to-backup.d/80-admin.conf",
        "/srv/db/*.lock\nrelative/dir\n/srv/*/x\n$NOPE/x\n/srv/build/obj/\r\n; a comment\n/srv/?core\n",
    );
    // Runtime masks 70-masked.conf and replaces 10-swap.conf with an empty file.
    let runtime_mask = r.mask("run/reel/files-not-to-backup.d/70-masked.conf");
    let runtime_swap = r.write("run/reel/files-not-to-backup.d/10-swap.conf", "");
    // Not *.conf: never read.
    r.write("etc/reel/files-not-to-backup.d/README", "/everything /s\n");
    r.write("etc/reel/files-not-to-backup.d/.hidden.conf", "/hidden\n");

    r.write(
        "usr/lib/reel/files-not-to-snapshot.d/db.conf",
        "/srv/db/*.tmp /s\n",
    );
    r.write(
        "usr/lib/reel/paths-not-to-restore.d/id.conf",
        "/etc/machine-id\n/var/lib/reel/\n",
    );

    // reel.conf: the administrator's main file wins over the vendor's; drop-ins refine it.
    r.write(
        "usr/lib/reel/reel.conf",
        "max-snapshots = 8\nidle-timeout = 60\n",
    );
    let admin_conf = r.write(
        "etc/reel/reel.conf",
        "backup-mode = \"incremental\"\nmax-snapshots = 600\n",
    );
    let dropin = r.write(
        "usr/lib/reel/reel.conf.d/20-space.conf",
        "min-snapshot-space = \"64M\"\nexclude-if-present = [\".nobackup\", \".no-reel\"]\n",
    );
    let dropin2 = r.write(
        "etc/reel/reel.conf.d/90-mode.conf",
        "backup-mode = \"custom\"\n[backup-mode-custom]\n\"/home\" = \"incremental\"\n",
    );
    r.write("etc/reel/reel.conf.d/95-broken.conf", "max-snapshots = \n");
    (
        r,
        vec![
            vendor_tmp,
            vendor_cache,
            vendor_masked,
            vendor_swap,
            admin_tmp,
            admin_mixed,
            runtime_mask,
            runtime_swap,
            admin_conf,
            dropin,
            dropin2,
        ],
    )
}

#[test]
fn merged_rules_follow_levels_names_and_masks() {
    let (r, f) = build();
    let [
        vendor_tmp,
        vendor_cache,
        vendor_masked,
        vendor_swap,
        admin_tmp,
        admin_mixed,
        runtime_mask,
        runtime_swap,
        ..,
    ] = &f[..]
    else {
        unreachable!()
    };
    let policy = Policy::load_with_vars(&r.roots(), &vars);
    let rules: Vec<(String, Source)> = policy
        .files_not_to_backup
        .rules()
        .iter()
        .map(|r| (r.pattern.expanded(), r.source.clone()))
        .collect();
    // Lexical order of file names (10-swap is empty, 50-tmp is the admin's, 70 is masked),
    // line order within a file.
    assert_eq!(
        rules,
        vec![
            ("/var/tmp/*.log /s".to_string(), src(admin_tmp, 1)),
            ("/home/ann/.cache/".to_string(), src(vendor_cache, 2)),
            ("*.o".to_string(), src(vendor_cache, 3)),
            ("/srv/db/*.lock".to_string(), src(admin_mixed, 1)),
            ("/srv/build/obj/".to_string(), src(admin_mixed, 5)),
            ("/srv/?core".to_string(), src(admin_mixed, 7)),
        ]
    );

    // Malformed lines: reported with file and line, never fatal.
    let problems: Vec<(PathBuf, Option<usize>, Severity)> = policy
        .diagnostics
        .iter()
        .filter(|d| d.file == *admin_mixed)
        .map(|d| (d.file.clone(), d.line, d.severity))
        .collect();
    assert_eq!(
        problems,
        vec![
            (admin_mixed.clone(), Some(2), Severity::Error),
            (admin_mixed.clone(), Some(3), Severity::Error),
            (admin_mixed.clone(), Some(4), Severity::Error),
        ],
        "{:#?}",
        policy.diagnostics
    );
    let msgs: Vec<String> = policy.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("80-admin.conf:2: error") && m.contains("relative")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains(":3: error") && m.contains("wildcards")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains(":4: error") && m.contains("`NOPE`")),
        "{msgs:#?}"
    );
    assert!(policy.has_errors());

    // What became of each file.
    let state = |p: &Path| {
        policy
            .files
            .iter()
            .find(|x| x.path == p)
            .map(|x| x.state.clone())
    };
    assert_eq!(
        state(vendor_tmp),
        Some(FileState::Overridden {
            by: admin_tmp.clone()
        })
    );
    assert_eq!(state(admin_tmp), Some(FileState::Used));
    assert_eq!(
        state(vendor_masked),
        Some(FileState::Masked {
            by: runtime_mask.clone()
        })
    );
    assert_eq!(state(runtime_mask), Some(FileState::Mask));
    assert_eq!(
        state(vendor_swap),
        Some(FileState::Overridden {
            by: runtime_swap.clone()
        })
    );
    assert_eq!(
        policy
            .files
            .iter()
            .find(|x| x.path == *runtime_swap)
            .map(|x| x.level),
        Some(Level::Runtime)
    );
    assert!(
        policy
            .files
            .iter()
            .all(|x| !x.path.ends_with("README") && !x.path.ends_with(".hidden.conf"))
    );

    // The other keys.
    assert_eq!(policy.files_not_to_snapshot.rules().len(), 1);
    assert_eq!(policy.paths_not_to_restore.rules().len(), 2);
    assert_eq!(
        policy.rules(Key::PathsNotToRestore).rules()[1]
            .pattern
            .expanded(),
        "/var/lib/reel/"
    );
}

#[test]
fn verdicts_on_paths() {
    let (r, _) = build();
    let policy = Policy::load_with_vars(&r.roots(), &vars);
    let cwd = Path::new("/src/proj");
    let extra = [
        Pattern::parse_relative_to("target/", &vars, cwd).unwrap(),
        Pattern::parse_relative_to("docs/*.pdf", &vars, cwd).unwrap(),
    ];
    let filter = BackupFilter::new(&policy).with_excludes(&extra);
    let rule_line = |p: &str, dir: bool| match filter.match_rules(Path::new(p), dir) {
        Some(r) => format!("{}", r.source),
        None => "-".into(),
    };
    // /s with a wildcard and a variable.
    assert!(rule_line("/var/tmp/a/b/c.log", false).ends_with("50-tmp.conf:1"));
    assert_eq!(rule_line("/var/tmp/a/b/c.txt", false), "-");
    // The vendor's /tmp rule was overridden by the admin's file of the same name.
    assert_eq!(rule_line("/tmp/x", false), "-");
    // The masked file's rule is gone; the empty runtime file replaced /swapfile.
    assert_eq!(rule_line("/srv/everything/x", false), "-");
    assert_eq!(rule_line("/swapfile", false), "-");
    // Directory pattern from $HOME.
    assert!(rule_line("/home/ann/.cache", true).ends_with("60-cache.conf:2"));
    assert_eq!(rule_line("/home/ann/.cache", false), "-");
    // Bare name: anywhere.
    assert!(rule_line("/usr/src/linux/kernel/fork.o", false).ends_with("60-cache.conf:3"));
    // `?` matches one character; wildcards only in the last component.
    assert!(rule_line("/srv/xcore", false).ends_with("80-admin.conf:7"));
    assert_eq!(rule_line("/srv/core", false), "-");
    // Command-line patterns, relative to the current directory or bare.
    assert_eq!(rule_line("/src/proj/target", true), "--exclude #1");
    assert_eq!(rule_line("/elsewhere/target", true), "--exclude #1");
    assert_eq!(rule_line("/src/proj/docs/a.pdf", false), "--exclude #2");
    assert_eq!(rule_line("/src/proj/docs/sub/a.pdf", false), "-");
    // The full verdict of a path that does not exist uses the patterns only.
    assert!(matches!(
        filter.check(Path::new("/srv/db/x.lock"), EntryKind::File),
        Verdict::Exclude(Reason::Rule(r)) if r.key == Key::FilesNotToBackup
    ));

    // Inside an excluded directory, reported through it.
    let report = explain_path(&policy, &filter, Path::new("/home/ann/.cache/thumbs/a.png"));
    let b = report.backup.expect("excluded");
    assert_eq!(b.via.as_deref(), Some(Path::new("/home/ann/.cache")));
    assert_eq!(report.kind, None);
    let report = explain_path(&policy, &filter, Path::new("/srv/db/x/y.tmp"));
    assert!(report.snapshot.is_some() && report.backup.is_none() && report.restore.is_none());

    // Restore: paths-not-to-restore (a directory and its content) and files-not-to-backup.
    let restore = RestoreFilter::new(&policy);
    assert_eq!(
        restore
            .check(Path::new("/etc/machine-id"), false)
            .map(|r| r.key),
        Some(Key::PathsNotToRestore)
    );
    assert_eq!(
        restore
            .check(Path::new("/var/lib/reel/last-restore-id"), false)
            .map(|r| r.key),
        Some(Key::PathsNotToRestore)
    );
    assert_eq!(restore.check(Path::new("/var/lib/reelx"), true), None);
    assert_eq!(
        restore.check(Path::new("/x/y.o"), false).map(|r| r.key),
        Some(Key::FilesNotToBackup)
    );
    let only = RestoreFilter::paths_not_to_restore_only(&policy);
    assert_eq!(only.check(Path::new("/x/y.o"), false), None);
}

#[test]
fn reel_conf_main_file_then_dropins_with_sources() {
    let (r, f) = build();
    let (admin_conf, dropin, dropin2) = (&f[8], &f[9], &f[10]);
    let policy = Policy::load_with_vars(&r.roots(), &vars);
    let c = &policy.config;
    // The vendor's reel.conf is replaced whole by the admin's: its idle-timeout is gone.
    assert_eq!(c.idle_timeout.value.as_secs(), 180);
    assert_eq!(c.idle_timeout.source, None);
    // 600 is out of range: reported, default kept.
    assert_eq!(c.max_snapshots.value, 64);
    assert!(
        policy
            .diagnostics
            .iter()
            .any(|d| d.file == *admin_conf && d.line == Some(2))
    );
    // Drop-ins apply over the main file, in name order.
    assert_eq!(c.backup_mode.value, BackupMode::Custom);
    assert_eq!(c.backup_mode.source, Some(src(dropin2, 1)));
    assert_eq!(c.min_snapshot_space.value, Some(64 << 20));
    assert_eq!(c.min_snapshot_space.source, Some(src(dropin, 1)));
    assert_eq!(c.exclude_if_present.value, vec![".nobackup", ".no-reel"]);
    assert_eq!(c.mode_for(Path::new("/home"), None), ModeKind::Incremental);
    assert_eq!(c.mode_for(Path::new("/"), None), ModeKind::Full);
    // A broken TOML drop-in is reported with its line and ignored whole.
    assert!(
        policy
            .diagnostics
            .iter()
            .any(|d| d.file.ends_with("95-broken.conf") && d.line == Some(1))
    );
    let rf = policy
        .files
        .iter()
        .find(|x| x.path.ends_with("usr/lib/reel/reel.conf"))
        .unwrap();
    assert_eq!(
        rf.state,
        FileState::Overridden {
            by: admin_conf.clone()
        }
    );
}

#[test]
fn masked_reel_conf_and_empty_root() {
    let r = Root::new();
    r.write("usr/lib/reel/reel.conf", "max-snapshots = 3\n");
    r.mask("etc/reel/reel.conf");
    let policy = Policy::load(&r.roots());
    assert_eq!(policy.config.max_snapshots.value, 64, "masked");
    assert!(policy.diagnostics.is_empty(), "{:?}", policy.diagnostics);

    let empty = Root::new();
    let policy = Policy::load(&empty.roots());
    assert!(
        policy.files_not_to_backup.is_empty()
            && policy.files.is_empty()
            && policy.diagnostics.is_empty()
    );
    assert_eq!(policy.config.exclude_if_present.value, vec![".nobackup"]);
}

#[test]
fn unreadable_and_strange_files_are_reported_not_fatal() {
    let r = Root::new();
    // A directory where a drop-in file should be, a non-UTF-8 line, a key dir that is a file.
    std::fs::create_dir_all(r.path("etc/reel/files-not-to-backup.d/dir.conf")).unwrap();
    write_file(
        &r.path("etc/reel/files-not-to-backup.d/bytes.conf"),
        b"/ok\n/bad\xff\n/ok2\n",
    );
    r.write("etc/reel/paths-not-to-restore.d", "not a directory");
    let big = "/x\n".repeat((reel_policy::MAX_POLICY_FILE as usize / 3) + 10);
    r.write("etc/reel/files-not-to-snapshot.d/huge.conf", &big);
    let policy = Policy::load(&r.roots());
    let got: Vec<String> = policy
        .files_not_to_backup
        .rules()
        .iter()
        .map(|r| r.pattern.expanded())
        .collect();
    assert_eq!(got, ["/ok", "/ok2"]);
    let msgs: Vec<String> = policy.diagnostics.iter().map(|d| d.to_string()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("dir.conf") && m.contains("directory")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("bytes.conf:2") && m.contains("UTF-8")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("paths-not-to-restore.d") && m.contains("not a directory")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter()
            .any(|m| m.contains("huge.conf") && m.contains("bytes")),
        "{msgs:#?}"
    );
    assert!(policy.files_not_to_snapshot.is_empty());
}

#[test]
fn hooks_merge_by_name_and_skip_what_cannot_run() {
    use std::os::unix::fs::PermissionsExt;
    let r = Root::new();
    let exe = |rel: &str| {
        let p = r.write(rel, "#!/bin/sh\nexit 0\n");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    };
    exe("usr/lib/reel/pre-backup.d/20-db");
    let admin_db = exe("etc/reel/pre-backup.d/20-db");
    exe("usr/lib/reel/pre-backup.d/10-first");
    exe("usr/lib/reel/pre-backup.d/30-masked");
    r.mask("etc/reel/pre-backup.d/30-masked");
    exe("usr/lib/reel/pre-backup.d/40-old.dpkg-old");
    exe("usr/lib/reel/pre-backup.d/50-x~");
    r.write("usr/lib/reel/pre-backup.d/60-not-exec", "#!/bin/sh\n");
    exe("etc/reel/post-restore.d/notify");
    let policy = Policy::load(&r.roots());
    let names: Vec<&str> = policy
        .hooks(HookPhase::PreBackup)
        .iter()
        .map(|h| h.name.as_str())
        .collect();
    assert_eq!(names, ["10-first", "20-db"]);
    assert_eq!(policy.hooks(HookPhase::PreBackup)[1].path, admin_db);
    assert!(policy.hooks(HookPhase::PostBackup).is_empty());
    assert_eq!(policy.hooks(HookPhase::PostRestore).len(), 1);
    assert!(
        policy
            .diagnostics
            .iter()
            .any(|d| d.file.ends_with("60-not-exec") && d.severity == Severity::Warning)
    );
}
