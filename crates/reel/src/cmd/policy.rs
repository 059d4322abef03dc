//! `reel policy`: the merged backup/restore policy and what it says about a path.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use reel_policy::{
    BackupFilter, Config, Effect, FileState, Finding, Hook, HookPhase, Key, PathReport, Pattern,
    Policy, PolicyFile, ProcessEnv, Roots, Rule, Setting, Source, explain_path,
};
use serde::Serialize;

use crate::Global;
use crate::exit::{self, UsageError};
use crate::ui::print_json;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
The policy is read from /usr/lib/reel (vendor), /run/reel (runtime) and /etc/reel (administrator),
all under $REEL_ROOT when set; a file replaces the file of the same name at a lower level, and a
symlink to /dev/null masks it. Keys: files-not-to-backup.d/, files-not-to-snapshot.d/,
paths-not-to-restore.d/ (one pattern a line), reel.conf and reel.conf.d/ (TOML), pre-backup.d/,
post-backup.d/, post-restore.d/ (hooks).

Examples:
  reel policy show
  reel policy show --json
  reel policy check ~/.cache/thumbnails /var/tmp/build.log
  reel policy check --exclude '*.o' src/main.o
  REEL_ROOT=/mnt/sysimage reel policy show")]
pub struct Args {
    /// Read the policy under this root instead of / (default: $REEL_ROOT).
    #[arg(long, global = true, value_name = "DIR", env = "REEL_ROOT")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: PolicyCommand,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// The merged policy: every pattern, option and hook with the file and line it comes
    /// from, the files overridden or masked, and the problems found. Exits 1 when a line or a
    /// file had to be ignored.
    #[command(
        after_help = "Examples:\n  reel policy show\n  reel policy show --json | jq '.rules[] | select(.key == \"files-not-to-backup\")'"
    )]
    Show,
    /// Whether a backup skips each PATH (and why: rule, marker, cache tag, nodump flag or
    /// xattr, on the path or an ancestor), whether snapshots drop it and restores leave it.
    #[command(
        after_help = "Examples:\n  reel policy check /var/tmp/x ~/.cache\n  reel policy check --exclude 'build/' ./build/out.bin --json"
    )]
    Check {
        /// Paths to check (relative ones against the current directory).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Also apply this pattern, as `reel backup --exclude` would (repeatable).
        #[arg(long, value_name = "PATTERN")]
        exclude: Vec<String>,
    },
}

pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    let roots = match &args.root {
        Some(r) if !r.as_os_str().is_empty() => Roots::new(r),
        _ => Roots::default(),
    };
    let policy = Policy::load(&roots);
    match args.command {
        PolicyCommand::Show => show(&policy, global),
        PolicyCommand::Check { paths, exclude } => check(&policy, global, &paths, &exclude),
    }
}

#[derive(Serialize)]
struct RuleView<'a> {
    key: Key,
    pattern: &'a str,
    expanded: String,
    recursive: bool,
    directories_only: bool,
    #[serde(flatten)]
    source: &'a Source,
}

impl<'a> RuleView<'a> {
    fn new(r: &'a Rule) -> Self {
        RuleView {
            key: r.key,
            pattern: &r.pattern.text,
            expanded: r.pattern.expanded(),
            recursive: r.pattern.recursive,
            directories_only: r.pattern.dir_only,
            source: &r.source,
        }
    }
}

#[derive(Serialize)]
struct ShowDoc<'a> {
    root: PathBuf,
    directories: Vec<PathBuf>,
    rules: Vec<RuleView<'a>>,
    config: &'a Config,
    hooks: Vec<&'a Hook>,
    files: &'a [PolicyFile],
    diagnostics: &'a [reel_policy::Diagnostic],
}

fn show(policy: &Policy, global: &Global) -> Result<ExitCode> {
    let code = ExitCode::from(if policy.has_errors() {
        exit::PARTIAL
    } else {
        exit::OK
    });
    if global.json {
        let doc = ShowDoc {
            root: policy.roots().prefix().to_path_buf(),
            directories: policy
                .roots()
                .config_dirs()
                .into_iter()
                .map(|(_, p)| p)
                .collect(),
            rules: Key::FILE_KEYS
                .iter()
                .flat_map(|k| policy.rules(*k).rules())
                .map(RuleView::new)
                .collect(),
            config: &policy.config,
            hooks: HookPhase::ALL
                .iter()
                .flat_map(|p| policy.hooks(*p))
                .collect(),
            files: &policy.files,
            diagnostics: &policy.diagnostics,
        };
        print_json(&doc)?;
        return Ok(code);
    }
    let dirs: Vec<String> = policy
        .roots()
        .config_dirs()
        .iter()
        .map(|(_, p)| p.display().to_string())
        .collect();
    println!("Policy read from {} (later levels win)", dirs.join(" < "));
    for key in Key::FILE_KEYS {
        println!("\n{key}");
        let rules = policy.rules(key).rules();
        if rules.is_empty() {
            println!("  (none)");
        }
        for r in rules {
            let expanded = r.pattern.expanded();
            let shown = if r.pattern.text.contains('$') {
                format!("{expanded}   [{}]", r.pattern.text)
            } else {
                expanded
            };
            println!("  {shown:<44} {}", r.source);
        }
    }
    let c = &policy.config;
    println!("\nreel.conf");
    line(
        "backup-mode",
        &format!("{:?}", c.backup_mode.value).to_lowercase(),
        &c.backup_mode,
    );
    for e in &c.backup_mode_custom {
        let fs = match &e.filesystem {
            reel_policy::FsSelector::MountPoint(p) => p.display().to_string(),
            reel_policy::FsSelector::Uuid(u) => format!("UUID={u}"),
        };
        println!(
            "  {:<44} {}",
            format!("  {fs} = {:?}", e.mode).to_lowercase(),
            e.source
        );
    }
    line(
        "max-snapshots",
        &c.max_snapshots.value.to_string(),
        &c.max_snapshots,
    );
    let space = match c.min_snapshot_space.value {
        Some(b) => crate::ui::human_size(b),
        None => "auto (32 MiB below 500 MiB, else 320 MiB)".into(),
    };
    line("min-snapshot-space", &space, &c.min_snapshot_space);
    line(
        "idle-timeout",
        &format!("{} s", c.idle_timeout.value.as_secs()),
        &c.idle_timeout,
    );
    line(
        "disable-monitoring",
        &c.disable_monitoring.value.to_string(),
        &c.disable_monitoring,
    );
    line(
        "exclude-if-present",
        &format!("{:?}", c.exclude_if_present.value),
        &c.exclude_if_present,
    );
    line(
        "efs-recovery",
        c.efs_recovery.value.as_deref().unwrap_or("(none)"),
        &c.efs_recovery,
    );
    line(
        "hook-timeout",
        &format!("{} s", c.hook_timeout.value.as_secs()),
        &c.hook_timeout,
    );

    println!("\nhooks");
    let mut any = false;
    for phase in HookPhase::ALL {
        for h in policy.hooks(phase) {
            any = true;
            println!(
                "  {:<44} {}",
                format!("{}: {}", phase.name(), h.name),
                h.path.display()
            );
        }
    }
    if !any {
        println!("  (none)");
    }
    if !policy.files.is_empty() {
        println!("\nfiles");
        for f in &policy.files {
            let state = match &f.state {
                FileState::Used => "used".to_string(),
                FileState::Overridden { by } => format!("overridden by {}", by.display()),
                FileState::Masked { by } => format!("masked by {}", by.display()),
                FileState::Mask => "mask".to_string(),
            };
            println!("  {:<60} {state}", f.path.display().to_string());
        }
    }
    if !policy.diagnostics.is_empty() {
        println!("\nproblems (the lines or files named were ignored)");
        for d in &policy.diagnostics {
            println!("  {d}");
        }
    }
    Ok(code)
}

fn line<T>(name: &str, value: &str, s: &Setting<T>) {
    let from = s
        .source
        .as_ref()
        .map_or("(default)".to_string(), |s| s.to_string());
    println!("  {:<44} {from}", format!("{name} = {value}"));
}

fn check(
    policy: &Policy,
    global: &Global,
    paths: &[PathBuf],
    exclude: &[String],
) -> Result<ExitCode> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let mut patterns: Vec<Pattern> = Vec::new();
    for (i, text) in exclude.iter().enumerate() {
        let p = Pattern::parse_relative_to(text, &ProcessEnv, &cwd)
            .map_err(|e| UsageError(format!("--exclude #{} `{text}`: {e}", i + 1)))?;
        patterns.push(p);
    }
    if !global.quiet {
        for d in &policy.diagnostics {
            eprintln!("reel: {d}");
        }
    }
    let filter = BackupFilter::new(policy).with_excludes(&patterns);
    let reports: Vec<PathReport> = paths
        .iter()
        .map(|p| explain_path(policy, &filter, p))
        .collect();
    if global.json {
        print_json(&reports)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &reports {
        let note = if r.kind.is_none() {
            "  (does not exist: patterns only)"
        } else {
            ""
        };
        println!("{}{note}", r.path.display());
        let backup = match &r.backup {
            None => "backed up".to_string(),
            Some(f) if f.effect == Effect::ContentsExcluded => {
                format!("content skipped, directory and tag kept: {}", finding(f))
            }
            Some(f) => format!("excluded: {}", finding(f)),
        };
        println!("  backup:   {backup}");
        let snap = r.snapshot.as_ref().map_or("kept".to_string(), |f| {
            format!("removed from snapshots: {}", finding(f))
        });
        println!("  snapshot: {snap}");
        let restore = r.restore.as_ref().map_or("restored".to_string(), |f| {
            format!("left as it is: {}", finding(f))
        });
        println!("  restore:  {restore}");
    }
    Ok(ExitCode::SUCCESS)
}

fn finding(f: &Finding) -> String {
    match &f.via {
        Some(v) if f.rule.is_some() => format!("inside {}, which {}", v.display(), rule_text(f)),
        _ if f.rule.is_some() => rule_text(f),
        _ => f.detail.clone(),
    }
}

fn rule_text(f: &Finding) -> String {
    match &f.rule {
        Some(r) => format!("matches {} `{}` ({})", r.key, r.pattern, r.source),
        None => f.detail.clone(),
    }
}
