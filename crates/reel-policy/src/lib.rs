//! Backup and restore policy: what a backup skips, what a snapshot drops, what a restore
//! leaves alone, and how applications are told. It is the Linux form of the Windows
//! `HKLM\SYSTEM\CurrentControlSet\Control\BackupRestore` registry keys and related values.
//!
//! **What it is for.** Applications and administrators drop one file each into
//! `<key>.d/` directories, merged the way systemd merges drop-ins:
//!
//! ```text
//! /usr/lib/reel/<key>.d/*.conf   vendor (packages)
//! /run/reel/<key>.d/*.conf       runtime: replaces a vendor file of the same name
//! /etc/reel/<key>.d/*.conf       administrator: replaces both
//! ```
//!
//! Files are read in lexical order of their names; a symlink to `/dev/null` masks the files of
//! its name below it; `$REEL_ROOT` prefixes every directory ([`Roots`]). Keys:
//! `files-not-to-backup` (FilesNotToBackup), `files-not-to-snapshot` (FilesNotToSnapshot),
//! `paths-not-to-restore` (KeysNotToRestore), one [`Pattern`] a line; `reel.conf` and
//! `reel.conf.d/` (TOML) for the global options ([`Config`]: backup-mode with per-filesystem
//! entries, max-snapshots, min-snapshot-space, idle-timeout, disable-monitoring,
//! exclude-if-present, efs-recovery, hook-timeout); hooks in `pre-backup.d/`, `post-backup.d/`,
//! `post-restore.d/` ([`hooks`]); `last-restore-id` and `last-instance` in `/var/lib/reel`
//! ([`state`]). SYSVOL (DFSR's authoritative restore flag) has no Linux counterpart.
//!
//! Besides the keys, the backup filter honours what Linux users already rely on:
//! `CACHEDIR.TAG` with its 43-byte signature (the directory's content is skipped, the tag kept),
//! the `exclude-if-present` marker files (default `.nobackup`), the nodump flag (`chattr +d`)
//! and the xattr `user.xdg.robots.backup=false`. On btrfs, [`snapshot`] makes the consistent,
//! read-only copy a backup reads.
//!
//! Sizes in settings and on the command line are read by one parser, [`parse_size`].
//!
//! Loading never fails: malformed lines and values are skipped and reported as
//! [`Diagnostic`]s with file and line, so a broken policy file never stops a backup.
//!
//! **What it is not.** It walks nothing and writes no archive: the backup engine walks and
//! asks [`BackupFilter`] about every entry; the restore engine asks [`RestoreFilter`]. It does
//! not decide what a failed hook means beyond its report (see [`hooks`]).
//!
//! # How the backup and restore engines use it
//!
//! ```no_run
//! use std::path::Path;
//! use reel_policy::{BackupFilter, EntryKind, HookContext, HookPhase, Pattern, Policy, ProcessEnv,
//!                   RestoreFilter, Roots, Verdict};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let policy = Policy::load(&Roots::from_env());
//! for d in &policy.diagnostics {
//!     eprintln!("reel: {d}"); // file:line: error: …; never fatal
//! }
//!
//! // --- backup ---
//! let cwd = std::env::current_dir()?;
//! let excludes = vec![Pattern::parse_relative_to("*.o", &ProcessEnv, &cwd)?]; // --exclude
//! let filter = BackupFilter::new(&policy).with_excludes(&excludes);
//! let pre = policy.run_hooks(HookPhase::PreBackup, &HookContext::new().set_id(7));
//! if pre.abort_requested() { return Ok(()); }
//! for f in pre.failures() { eprintln!("reel: {f}"); }
//!
//! // With --snapshot: read from a btrfs snapshot, match patterns on live paths.
//! let snap = reel_policy::snapshot::create(Path::new("/home"), &policy.snapshot_options())?;
//! let real = snap.source_in_snapshot(); // walk this …
//! # let entry_in_snapshot = real.join("ann/a.o");
//! let live = snap.to_live(&entry_in_snapshot).unwrap(); // … and archive/match this
//! match filter.check_at(&live, &entry_in_snapshot, EntryKind::File) {
//!     Verdict::Include => { /* back it up; descend if a directory */ }
//!     Verdict::Exclude(reason) => println!("skip {}: {reason}", live.display()),
//!     Verdict::ExcludeContents { reason, keep } => {
//!         // a cache directory: archive the directory and its child `keep` only
//!         println!("skip the content of {} ({reason}), keep {keep}", live.display());
//!     }
//! }
//! policy.run_hooks(HookPhase::PostBackup, &HookContext::new().set_id(7).status("ok"));
//!
//! // --- restore ---
//! let restore = RestoreFilter::new(&policy);
//! if let Some(rule) = restore.check(Path::new("/etc/machine-id"), false) {
//!     println!("left as it is: /etc/machine-id ({rule})");
//! }
//! let id = reel_policy::state::write_last_restore_id(policy.roots())?; // whole-set restore
//! policy.run_hooks(HookPhase::PostRestore, &HookContext::new().set_id(7).var("REEL_RESTORE_ID", id.to_string()));
//! # Ok(()) }
//! ```

mod config;
mod diag;
mod filter;
pub mod hooks;
mod pattern;
mod policy;
mod roots;
mod rules;
mod size;
pub mod snapshot;
pub mod state;

pub use config::{
    BackupMode, Config, DEFAULT_HOOK_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_SNAPSHOTS,
    FilesystemMode, FsSelector, MAX_MAX_SNAPSHOTS, ModeKind, Setting, filesystem_uuid,
    parse_duration,
};
pub use diag::{Diagnostic, Severity};
pub use filter::{
    BackupFilter, CACHEDIR_SIGNATURE, CACHEDIR_TAG, Effect, EntryKind, Finding, KnownFacts,
    PathReport, ROBOTS_XATTR, Reason, RestoreFilter, Verdict, explain_path,
};
pub use hooks::{
    HOOK_ABORT_STATUS, Hook, HookContext, HookOutcome, HookPhase, HookReport, HookStatus,
};
pub use pattern::{Pattern, PatternError, ProcessEnv, Vars};
pub use policy::{MAX_POLICY_FILE, Policy};
pub use reel_error_class::ErrorClass;
pub use roots::{FileState, Level, PolicyFile, Roots};
pub use rules::{Key, Rule, RuleSet, Source};
pub use size::{SizeError, SizeErrorKind, parse_size, parse_size_in};

/// The matchers are shared across walker threads.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Policy>();
    send_sync::<BackupFilter>();
    send_sync::<RestoreFilter>();
};
