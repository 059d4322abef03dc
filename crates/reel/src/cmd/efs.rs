//! `reel efs`: encrypted files (age format) and the raw export/import of their ciphertext.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use reel_efs::{
    EfsError, EncryptOptions, ErrorClass, Identities, Kind, Named, PolicyRecovery, RawExport,
    RawFlags, RawImport, Removal, Role, TreeEvent,
};

use crate::Global;
use crate::exit::{self, UsageError};
use crate::ui::{human_size, print_json};

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Encrypted files are age files (age-encryption.org/v1) marked with the xattr user.reel.efs.
Anyone holding an identity they are encrypted to opens them with `age -d -i IDENTITY` too.
A backup operator needs no key: export-raw / import-raw (and reel backup) move ciphertext only.

Examples:
  reel efs keygen                          make your identity (prints your public key)
  reel efs encrypt notes.txt               encrypt in place to you (+ the recovery recipient)
  reel efs encrypt -r ~/private            mark the directory, encrypt everything under it
  reel efs cat notes.txt | less            read without decrypting on disk
  reel efs add-user --recipient age1… --name bob notes.txt
  reel efs status notes.txt
  reel efs export-raw notes.txt > notes.raw
  reel efs import-raw /restore/notes.txt < notes.raw

The identity is --identity, else $REEL_EFS_IDENTITY, else $XDG_CONFIG_HOME/reel/efs/identity.txt
(~/.config/reel/efs/identity.txt). Exit codes: 0 ok, 1 some files failed, 2 usage,
4 a ciphertext, marker or raw form failed its checks.")]
pub struct Args {
    /// Identity file (age X25519 keys, as made by `reel efs keygen` or `age-keygen`).
    #[arg(long, global = true, value_name = "FILE", env = "REEL_EFS_IDENTITY")]
    identity: Option<PathBuf>,
    #[command(subcommand)]
    command: EfsCommand,
}

#[derive(Subcommand, Debug)]
enum EfsCommand {
    /// Make a new identity (never replaces one) and print its public key (recipient).
    #[command(
        after_help = "Examples:\n  reel efs keygen\n  reel efs keygen --show              print the recipient of your identity\n  reel efs --identity ./key.txt keygen"
    )]
    Keygen {
        /// Print the recipients of the existing identity instead of making one.
        #[arg(long)]
        show: bool,
    },
    /// Encrypt files in place (atomically) to you, the --recipient users and the recovery recipient.
    #[command(after_help = "\
A file inside a marked directory is also encrypted to the recipients recorded on the directory.
Owner, mode, extended attributes and times are kept. Hard-linked files are refused.

Examples:
  reel efs encrypt notes.txt
  reel efs encrypt -r ~/private
  reel efs encrypt --recipient age1… --recipient ~/bob.pub report.pdf
  REEL_EFS_RECOVERY=age1… reel efs encrypt notes.txt")]
    Encrypt {
        /// Files (or, with -r, directories).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Mark directories and encrypt every file under them.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Another user: age1…, or a file of recipients or identities. Repeatable.
        #[arg(long = "recipient", value_name = "RECIPIENT")]
        recipients: Vec<String>,
        /// The recovery recipient (policy's efs-recovery): age1… or a file.
        #[arg(long, value_name = "RECIPIENT", env = "REEL_EFS_RECOVERY")]
        recovery: Option<String>,
        /// Your name as recorded in the marker (default: your login).
        #[arg(long)]
        name: Option<String>,
    },
    /// Decrypt files in place (atomically) and remove their marker.
    #[command(
        after_help = "Examples:\n  reel efs decrypt notes.txt\n  reel efs decrypt -r ~/private"
    )]
    Decrypt {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Decrypt everything under directories and remove their markers.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// Print the plaintext of encrypted files (nothing is written to disk).
    #[command(after_help = "Example:\n  reel efs cat notes.txt | grep TODO")]
    Cat {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Who can open encrypted files (the header's stanzas, with the names recorded for them).
    #[command(
        after_help = "Examples:\n  reel efs status notes.txt\n  reel efs status --json notes.txt"
    )]
    Status {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Let another user open files: adds a stanza to the header; the payload is not re-encrypted.
    #[command(after_help = "\
Needs your identity: the header's MAC is keyed by the file key, which only an identity that
opens the file can unwrap.

Example:
  reel efs add-user --recipient age1… --name bob notes.txt")]
    AddUser {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The new user: age1…, or a file holding their recipient.
        #[arg(long, value_name = "RECIPIENT", required = true)]
        recipient: String,
        /// Their name, as recorded in the marker.
        #[arg(long, default_value = "")]
        name: String,
        /// Add them as the recovery recipient rather than a user.
        #[arg(long)]
        as_recovery: bool,
    },
    /// Stop a user's key from opening files: removes its stanza from the header.
    #[command(after_help = "\
This changes who opens the file from now on; it cannot take back copies. To revoke fully,
decrypt and encrypt again.

Examples:
  reel efs remove-user --recipient age1… notes.txt
  reel efs remove-user --stanza 2 foreign.age      (see `reel efs status`)")]
    RemoveUser {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The recorded recipient to remove.
        #[arg(
            long,
            value_name = "RECIPIENT",
            conflicts_with = "stanza",
            required_unless_present = "stanza"
        )]
        recipient: Option<String>,
        /// The stanza index to remove.
        #[arg(long)]
        stanza: Option<usize>,
        /// Allow removing the recovery recipient.
        #[arg(long)]
        force: bool,
    },
    /// Mark age files made by another tool (age, rage) as encrypted files, without changing their bytes.
    #[command(after_help = "Example:\n  age -r age1… -o doc.age doc && reel efs mark doc.age")]
    Mark {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Record another recipient it is encrypted to (its stanza stays unknown). Repeatable.
        #[arg(long = "recipient", value_name = "RECIPIENT")]
        recipients: Vec<String>,
        /// Your name as recorded in the marker (default: your login).
        #[arg(long)]
        name: Option<String>,
    },
    /// Write an encrypted file's raw form (marker + ciphertext) to stdout; needs no key.
    #[command(after_help = "\
The raw form: magic REELEFSR, version, the marker, the ciphertext exactly as on disk, end magic
and a BLAKE3 checksum (layout in reel-efs's raw module documentation).

Examples:
  reel efs export-raw notes.txt > notes.raw
  reel efs export-raw -o notes.raw notes.txt")]
    ExportRaw {
        path: PathBuf,
        /// Write to FILE (created, never replaced) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Recreate an encrypted file (or directory marker) from its raw form on stdin; needs no key.
    #[command(after_help = "\
Nothing appears under PATH unless the whole raw form checks out. An existing PATH is never
replaced without --overwrite (--overwrite-hidden for a name starting with '.').

Examples:
  reel efs import-raw /restore/notes.txt < notes.raw
  reel efs import-raw --overwrite -i notes.raw notes.txt")]
    ImportRaw {
        path: PathBuf,
        /// Read from FILE instead of stdin.
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Replace an existing entry.
        #[arg(long)]
        overwrite: bool,
        /// Replace an existing hidden entry (name starting with '.').
        #[arg(long)]
        overwrite_hidden: bool,
    },
}

/// Runs an efs command. An error that stops it exits with its class's code (see
/// [`exit`]): every efs operation is on files, so a file that cannot be read or written
/// (an efs file, or the -i/-o/stdout of export-raw and import-raw) is a per-file problem
/// (exit 1), as the help says.
pub fn run(args: Args, global: &Global) -> Result<ExitCode> {
    dispatch(args, global)
}

fn dispatch(args: Args, global: &Global) -> Result<ExitCode> {
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(reel_efs::default_identity_path);
    match args.command {
        EfsCommand::Keygen { show } => keygen(global, &identity, show),
        EfsCommand::Encrypt {
            paths,
            recursive,
            recipients,
            recovery,
            name,
        } => {
            let opts = encrypt_options(&identity, &recipients, recovery.as_deref(), name)?;
            encrypt(global, &paths, recursive, &opts)
        }
        EfsCommand::Decrypt { paths, recursive } => decrypt(global, &identity, &paths, recursive),
        EfsCommand::Cat { paths } => cat(global, &identity, &paths),
        EfsCommand::Status { paths } => status(global, &identity, args.identity.is_some(), &paths),
        EfsCommand::AddUser {
            paths,
            recipient,
            name,
            as_recovery,
        } => {
            let role = if as_recovery {
                Role::Recovery
            } else {
                Role::User
            };
            add_user(global, &identity, &paths, &recipient, &name, role)
        }
        EfsCommand::RemoveUser {
            paths,
            recipient,
            stanza,
            force,
        } => remove_user(global, &identity, &paths, recipient, stanza, force),
        EfsCommand::Mark {
            paths,
            recipients,
            name,
        } => mark(global, &identity, &paths, &recipients, name),
        EfsCommand::ExportRaw { path, output } => export_raw(global, &path, output.as_deref()),
        EfsCommand::ImportRaw {
            path,
            input,
            overwrite,
            overwrite_hidden,
        } => import_raw(global, &path, input.as_deref(), overwrite, overwrite_hidden),
    }
}

fn decrypt(
    global: &Global,
    identity: &Path,
    paths: &[PathBuf],
    recursive: bool,
) -> Result<ExitCode> {
    let ids = Identities::load(identity)?;
    let mut report = Report::new(global);
    for path in paths {
        if recursive && path.is_dir() {
            reel_efs::decrypt_tree(path, &ids, |ev| {
                report.tree_event(ev, "decrypted", "unmarked")
            });
        } else {
            match reel_efs::decrypt_file(path, &ids) {
                Ok(n) => report.ok(path, format!("decrypted ({})", human_size(n))),
                Err(e) => report.failed(path, e),
            }
        }
    }
    report.finish()
}

fn cat(global: &Global, identity: &Path, paths: &[PathBuf]) -> Result<ExitCode> {
    let ids = Identities::load(identity)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut report = Report::new(global);
    report.quiet_ok = true;
    for path in paths {
        if let Err(e) = reel_efs::decrypt_to(path, &ids, &mut out) {
            report.failed(path, e);
        }
    }
    report.finish()
}

fn add_user(
    global: &Global,
    identity: &Path,
    paths: &[PathBuf],
    recipient: &str,
    name: &str,
    role: Role,
) -> Result<ExitCode> {
    let ids = Identities::load(identity)?;
    let users = reel_efs::recipients_from_arg(recipient)?;
    let mut report = Report::new(global);
    for path in paths {
        for user in &users {
            let named = Named::new(user.clone(), name);
            match reel_efs::add_user(path, &ids, &named, role) {
                Ok(m) => report.ok(
                    path,
                    format!("added {user}; {} recipients", m.entries.len()),
                ),
                Err(e) => report.failed(path, e),
            }
        }
    }
    report.finish()
}

fn remove_user(
    global: &Global,
    identity: &Path,
    paths: &[PathBuf],
    recipient: Option<String>,
    stanza: Option<usize>,
    force: bool,
) -> Result<ExitCode> {
    let ids = Identities::load(identity)?;
    let which = match (recipient, stanza) {
        (Some(r), _) => {
            let r = reel_efs::recipients_from_arg(&r)?;
            let [one] = r.as_slice() else {
                bail!(UsageError(
                    "--recipient must name exactly one recipient".into()
                ));
            };
            Removal::Recipient(one.to_string())
        }
        (None, Some(i)) => Removal::Stanza(i),
        (None, None) => bail!(UsageError(
            "say whom to remove: --recipient or --stanza".into()
        )),
    };
    let mut report = Report::new(global);
    for path in paths {
        match reel_efs::remove_user(path, &ids, &which, force) {
            Ok(m) => report.ok(
                path,
                format!("removed; {} recorded recipients left", m.entries.len()),
            ),
            Err(e) => report.failed(path, e),
        }
    }
    report.finish()
}

fn mark(
    global: &Global,
    identity: &Path,
    paths: &[PathBuf],
    recipients: &[String],
    name: Option<String>,
) -> Result<ExitCode> {
    let ids = match Identities::load(identity) {
        Ok(ids) => Some(ids),
        Err(EfsError::NoIdentity { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let mut others = Vec::new();
    for r in recipients {
        for rec in reel_efs::recipients_from_arg(r)? {
            others.push((Role::User, Named::new(rec, "")));
        }
    }
    let name = name.unwrap_or_else(login_name);
    let mut report = Report::new(global);
    for path in paths {
        match reel_efs::mark_file(path, ids.as_ref(), &name, &others) {
            Ok(m) => report.ok(
                path,
                format!(
                    "marked ({} plaintext, {} recorded recipients)",
                    human_size(m.plaintext_size),
                    m.entries.len()
                ),
            ),
            Err(e) => report.failed(path, e),
        }
    }
    report.finish()
}

/// The user's login, for names recorded in markers.
fn login_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", current_uid()))
}

fn current_uid() -> u32 {
    // /proc/self belongs to the process's user; no extra dependency for one call.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

/// Per-path results: lines (or a JSON document) on stdout, errors on stderr, the exit code.
struct Report {
    json: bool,
    quiet: bool,
    quiet_ok: bool,
    results: Vec<serde_json::Value>,
    failed: usize,
    integrity: bool,
}

impl Report {
    fn new(global: &Global) -> Report {
        Report {
            json: global.json,
            quiet: global.quiet,
            quiet_ok: false,
            results: Vec::new(),
            failed: 0,
            integrity: false,
        }
    }

    fn ok(&mut self, path: &Path, what: String) {
        if self.json {
            self.results
                .push(serde_json::json!({ "path": path, "ok": true, "result": what }));
        } else if !self.quiet && !self.quiet_ok {
            println!("{}: {what}", path.display());
        }
    }

    fn skipped(&mut self, path: &Path, why: &str) {
        if self.json {
            self.results
                .push(serde_json::json!({ "path": path, "ok": true, "skipped": why }));
        } else if !self.quiet {
            println!("{}: skipped ({why})", path.display());
        }
    }

    fn failed(&mut self, path: &Path, err: EfsError) {
        self.failed += 1;
        self.integrity |= err.class() == ErrorClass::Integrity;
        eprintln!("reel: {err}");
        if self.json {
            self.results.push(serde_json::json!({
                "path": path, "ok": false, "error": err.to_string(),
                "integrity": err.class() == ErrorClass::Integrity,
            }));
        }
    }

    fn tree_event(&mut self, ev: TreeEvent, done: &str, dir: &str) {
        match ev {
            TreeEvent::Done(p) => self.ok(&p, done.to_string()),
            TreeEvent::Directory(p) => self.ok(&p, dir.to_string()),
            TreeEvent::Skipped(p, why) => self.skipped(&p, why),
            TreeEvent::Failed(p, e) => self.failed(&p, e),
        }
    }

    fn finish(self) -> Result<ExitCode> {
        if self.json {
            print_json(&serde_json::json!({ "results": self.results, "failed": self.failed }))?;
        }
        Ok(ExitCode::from(if self.integrity {
            exit::INTEGRITY
        } else if self.failed > 0 {
            exit::PARTIAL
        } else {
            exit::OK
        }))
    }
}

fn keygen(global: &Global, identity: &Path, show: bool) -> Result<ExitCode> {
    let recipients: Vec<String> = if show {
        Identities::load(identity)?
            .recipients()
            .iter()
            .map(|r| r.to_string())
            .collect()
    } else {
        vec![reel_efs::generate_identity_file(identity)?.to_string()]
    };
    if global.json {
        print_json(
            &serde_json::json!({ "identity": identity, "recipients": recipients, "created": !show }),
        )?;
    } else {
        if !show && !global.quiet {
            eprintln!(
                "identity written to {} (keep it safe: without it, or the recovery key, files encrypted to it are lost)",
                identity.display()
            );
        }
        for r in recipients {
            println!("{r}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn named_all(args: &[String], name: &str) -> Result<Vec<Named>> {
    let mut out = Vec::new();
    for a in args {
        for r in reel_efs::recipients_from_arg(a)? {
            out.push(Named::new(r, name));
        }
    }
    Ok(out)
}

/// Who `reel efs encrypt` encrypts to: you (your identity's recipients, named `name`), the
/// --recipient users, and the recovery recipient (--recovery, else the policy's).
fn encrypt_options(
    identity: &Path,
    recipients: &[String],
    recovery: Option<&str>,
    name: Option<String>,
) -> Result<EncryptOptions> {
    let mut opts = EncryptOptions::default();
    let name = name.unwrap_or_else(login_name);
    match Identities::load(identity) {
        Ok(ids) => opts.users.extend(
            ids.recipients()
                .into_iter()
                .map(|r| Named::new(r, name.clone())),
        ),
        // Encrypting only for others is fine; encrypting for nobody is not.
        Err(EfsError::NoIdentity { .. }) if !recipients.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    opts.users.extend(named_all(recipients, "")?);
    opts.choose_recovery(recovery, || {
        let setting = reel_policy::Policy::load(&reel_policy::Roots::from_env())
            .config
            .efs_recovery;
        PolicyRecovery {
            recipient: setting.value,
            set_in: setting.source.map(|src| src.to_string()),
        }
    })?;
    Ok(opts)
}

fn encrypt(
    global: &Global,
    paths: &[PathBuf],
    recursive: bool,
    base: &EncryptOptions,
) -> Result<ExitCode> {
    let mut report = Report::new(global);
    for path in paths {
        let mut opts = base.clone();
        if let Some(dir) = reel_efs::inheriting_dir(path)
            && let Err(e) = opts.inherit_from_dir(dir)
        {
            report.failed(dir, e);
            continue;
        }
        if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
            if !recursive {
                report.failed(
                    path,
                    EfsError::NotRegular {
                        path: path.clone(),
                        what: "a directory (use -r to mark it and encrypt what is under it)",
                    },
                );
                continue;
            }
            reel_efs::encrypt_tree(path, &opts, |ev| {
                report.tree_event(ev, "encrypted", "marked")
            });
            continue;
        }
        match reel_efs::encrypt_file(path, &opts) {
            Ok(m) => report.ok(
                path,
                format!(
                    "encrypted ({}, {} recipients{})",
                    human_size(m.plaintext_size),
                    m.entries.len(),
                    if m.has_recovery() {
                        " incl. recovery"
                    } else {
                        ""
                    }
                ),
            ),
            Err(e) => report.failed(path, e),
        }
    }
    report.finish()
}

fn status(
    global: &Global,
    identity: &Path,
    identity_given: bool,
    paths: &[PathBuf],
) -> Result<ExitCode> {
    // The identity is optional here: without one, status still lists the stanzas.
    let ids = match Identities::load(identity) {
        Ok(ids) => Some(ids),
        Err(EfsError::NoIdentity { .. }) if !identity_given => None,
        Err(e) => return Err(e.into()),
    };
    let mut docs = Vec::new();
    let mut report = Report::new(global);
    report.json = false;
    let mut plain = 0usize;
    for path in paths {
        match reel_efs::status(path, ids.as_ref()) {
            Ok(st) => {
                if global.json {
                    docs.push(serde_json::to_value(&st)?);
                } else {
                    print_status(&st, ids.is_some());
                }
            }
            Err(EfsError::NotEncrypted { .. }) => {
                plain += 1;
                if global.json {
                    docs.push(serde_json::json!({ "path": path, "encrypted": false }));
                } else {
                    println!("{}: not encrypted", path.display());
                }
            }
            Err(e) => {
                if global.json {
                    docs.push(serde_json::json!({ "path": path, "error": e.to_string() }));
                }
                report.failed(path, e);
            }
        }
    }
    if global.json {
        print_json(&serde_json::json!({ "files": docs, "not_encrypted": plain }))?;
    }
    report.finish()
}

fn print_status(st: &reel_efs::Status, have_identity: bool) {
    if st.kind == Kind::Directory {
        println!("{}: encrypted directory (marker)", st.path.display());
        for e in &st.unplaced {
            println!(
                "  new files encrypt to {} {}{}",
                e.recipient,
                e.name,
                role_note(e.role)
            );
        }
        return;
    }
    println!(
        "{}: encrypted file, {} plaintext ({} bytes ciphertext, {}-byte header); {} key{} open it",
        st.path.display(),
        human_size(st.plaintext_size),
        st.ciphertext_size,
        st.header_size,
        st.keys,
        if st.keys == 1 { "" } else { "s" }
    );
    for s in &st.stanzas {
        match (&s.entry, s.tag.as_str()) {
            (Some(e), _) => println!(
                "  stanza {}: {} {}{}",
                s.index,
                e.recipient,
                if e.name.is_empty() {
                    "(no name)"
                } else {
                    &e.name
                },
                role_note(e.role)
            ),
            (None, "X25519") => println!("  stanza {}: X25519 recipient not recorded", s.index),
            (None, tag) => println!(
                "  stanza {}: {tag} (not a recipient reel knows; kept as is)",
                s.index
            ),
        }
    }
    for e in &st.unplaced {
        println!(
            "  also recorded: {} {}{} (its stanza is not known)",
            e.recipient,
            e.name,
            role_note(e.role)
        );
    }
    match (have_identity, st.opened_by_identity) {
        (true, Some(i)) => println!("  your identity opens it (stanza {i})"),
        (true, None) => println!("  your identity does not open it"),
        (false, _) => {}
    }
}

fn role_note(role: Role) -> &'static str {
    match role {
        Role::User => "",
        Role::Recovery => " [recovery]",
    }
}

fn export_raw(global: &Global, path: &Path, output: Option<&Path>) -> Result<ExitCode> {
    let export = RawExport::open(path)?;
    let raw_len = export.raw_len();
    let written = match output {
        Some(out_path) => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(out_path)
                .map_err(exit::file_error(
                    ErrorClass::Partial,
                    format!(
                        "cannot create {} (it is never replaced)",
                        out_path.display()
                    ),
                ))?;
            let mut out = std::io::BufWriter::new(file);
            let result = export
                .export(|chunk| out.write_all(chunk))
                .map_err(anyhow::Error::from)
                .and_then(|n| {
                    let written = out
                        .into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|file| file.sync_all());
                    written.map_err(exit::file_error(
                        ErrorClass::Partial,
                        format!("cannot write {}", out_path.display()),
                    ))?;
                    Ok(n)
                });
            if result.is_err() {
                // No half raw form left behind under the name.
                let _ = std::fs::remove_file(out_path);
            }
            result?
        }
        None => {
            let stdout = std::io::stdout();
            if stdout.is_terminal() {
                bail!(UsageError(
                    "the raw form is binary; redirect stdout to a file or use -o FILE".into()
                ));
            }
            let mut out = stdout.lock();
            let n = export.export(|chunk| out.write_all(chunk))?;
            out.flush().map_err(exit::file_error(
                ErrorClass::Partial,
                "writing to stdout".into(),
            ))?;
            n
        }
    };
    debug_assert_eq!(written, raw_len);
    if !global.quiet && output.is_some() {
        if global.json {
            print_json(&serde_json::json!({ "path": path, "output": output, "raw_len": written }))?;
        } else {
            println!("{}: raw form written ({written} bytes)", path.display());
        }
    } else if global.verbose > 0 {
        eprintln!("{}: raw form written ({written} bytes)", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn import_raw(
    global: &Global,
    path: &Path,
    input: Option<&Path>,
    overwrite: bool,
    overwrite_hidden: bool,
) -> Result<ExitCode> {
    let mut reader: Box<dyn Read> = match input {
        Some(p) => Box::new(File::open(p).map_err(exit::file_error(
            ErrorClass::Partial,
            format!("cannot open {}", p.display()),
        ))?),
        None => {
            if std::io::stdin().is_terminal() {
                bail!(UsageError(
                    "give the raw form on stdin (reel efs import-raw PATH < file.raw) or with -i FILE".into()
                ));
            }
            Box::new(std::io::stdin().lock())
        }
    };
    // The first 16 bytes say whether this is a directory's raw form (CREATE_FOR_DIR).
    let mut prefix = Vec::with_capacity(16);
    (&mut reader)
        .take(16)
        .read_to_end(&mut prefix)
        .map_err(exit::file_error(
            ErrorClass::Partial,
            "reading the raw form".into(),
        ))?;
    let mut flags = RawFlags::CREATE_FOR_IMPORT;
    if reel_efs::peek_kind(&prefix) == Some(Kind::Directory) {
        flags = flags | RawFlags::CREATE_FOR_DIR;
    }
    if overwrite {
        flags = flags | RawFlags::OVERWRITE;
    }
    if overwrite_hidden {
        flags = flags | RawFlags::OVERWRITE_HIDDEN;
    }
    let summary =
        RawImport::create(path, flags)?.import_from(std::io::Cursor::new(prefix).chain(reader))?;
    if global.json {
        print_json(&summary)?;
    } else if !global.quiet {
        println!(
            "{}: imported {} ({} plaintext, {} bytes ciphertext{})",
            summary.path.display(),
            match summary.kind {
                Kind::File => "encrypted file",
                Kind::Directory => "directory marker",
            },
            human_size(summary.plaintext_size),
            summary.ciphertext_len,
            if summary.replaced {
                ", replaced the existing entry"
            } else {
                ""
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
