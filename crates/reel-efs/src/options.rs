//! Who a file is encrypted to: its users, the recovery recipient (given, else the policy's)
//! and what a marked directory passes on to the files encrypted in it.

use std::path::Path;

use crate::error::{EfsError, Result};
use crate::identity::{parse_recipient, recipients_from_arg};
use crate::marker::{Entry, Kind, Marker, Role, marker};

/// A recipient with a name for people.
#[derive(Debug, Clone)]
pub struct Named {
    pub recipient: age::x25519::Recipient,
    pub name: String,
}

impl Named {
    pub fn new(recipient: age::x25519::Recipient, name: impl Into<String>) -> Named {
        Named {
            recipient,
            name: name.into(),
        }
    }
}

/// The policy's recovery recipient (reel-policy's `efs-recovery`) and where it was set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyRecovery {
    /// The recipient, `age1…` or a file; `None` (or blank) when the policy sets none.
    pub recipient: Option<String>,
    /// The policy file and line that set it, for messages.
    pub set_in: Option<String>,
}

/// Who a file is encrypted to.
#[derive(Debug, Clone, Default)]
pub struct EncryptOptions {
    /// The users (the owner first); each gets a stanza.
    pub users: Vec<Named>,
    /// The recovery recipient from policy (`efs-recovery`), if one is set.
    pub recovery: Option<Named>,
}

impl EncryptOptions {
    /// Sets the recovery recipient, first found of: `given` (`--recovery`, or
    /// [`RECOVERY_ENV`](crate::RECOVERY_ENV)), else the policy's `efs-recovery`, which
    /// `policy` is asked for only then. A blank one means none; any other must be exactly one
    /// recipient (`age1…`, or a file holding one).
    pub fn choose_recovery(
        &mut self,
        given: Option<&str>,
        policy: impl FnOnce() -> PolicyRecovery,
    ) -> Result<()> {
        let (text, whence) = match given {
            Some(r) => (
                Some(r.to_string()),
                "--recovery / REEL_EFS_RECOVERY".to_string(),
            ),
            None => {
                let setting = policy();
                let whence = match &setting.set_in {
                    Some(src) => format!("efs-recovery ({src})"),
                    None => "efs-recovery".to_string(),
                };
                (setting.recipient, whence)
            }
        };
        let Some(text) = text.filter(|r| !r.trim().is_empty()) else {
            return Ok(());
        };
        let list = recipients_from_arg(&text).map_err(|e| EfsError::BadRecovery {
            whence,
            source: Box::new(e),
        })?;
        let [one] = list.as_slice() else {
            return Err(EfsError::RecoveryNotOne);
        };
        self.recovery = Some(Named::new(one.clone(), "recovery"));
        Ok(())
    }

    /// Adds the recipients recorded in a directory marker (users and recovery) that are not
    /// there yet: a file encrypted inside a marked directory is shared like the directory.
    pub fn inherit(&mut self, dir_marker: &Marker) -> Result<()> {
        for e in &dir_marker.entries {
            let named = Named::new(parse_recipient(&e.recipient)?, e.name.clone());
            match e.role {
                Role::User => self.users.push(named),
                Role::Recovery if self.recovery.is_none() => self.recovery = Some(named),
                Role::Recovery => {}
            }
        }
        Ok(())
    }

    /// As [`EncryptOptions::inherit`], from the marker of `dir` when it is a marked
    /// directory; nothing when it carries no directory marker.
    pub fn inherit_from_dir(&mut self, dir: &Path) -> Result<()> {
        match marker(dir)? {
            Some(m) if m.kind == Kind::Directory => self.inherit(&m),
            _ => Ok(()),
        }
    }

    /// The recipients in stanza order, without repeats (the first role wins).
    pub(crate) fn ordered(&self) -> Vec<(Role, &Named)> {
        let mut out: Vec<(Role, &Named)> = Vec::new();
        let all = self
            .users
            .iter()
            .map(|n| (Role::User, n))
            .chain(self.recovery.iter().map(|n| (Role::Recovery, n)));
        for (role, n) in all {
            let key = n.recipient.to_string();
            if !out.iter().any(|(_, m)| m.recipient.to_string() == key) {
                out.push((role, n));
            }
        }
        out
    }

    /// The entries a directory marker records for these recipients.
    pub fn directory_entries(&self) -> Vec<Entry> {
        self.ordered()
            .into_iter()
            .map(|(role, n)| Entry {
                role,
                stanza: None,
                recipient: n.recipient.to_string(),
                name: n.name.clone(),
            })
            .collect()
    }
}

/// The directory whose marker a file encrypted at `path` inherits
/// ([`EncryptOptions::inherit_from_dir`]): `path` itself when it is a directory (it is
/// marked, and what is under it encrypted, alike), else the directory it is in as named
/// (none for a bare file name).
pub fn inheriting_dir(path: &Path) -> Option<&Path> {
    if path.symlink_metadata().is_ok_and(|m| m.is_dir()) {
        Some(path)
    } else {
        path.parent().filter(|p| !p.as_os_str().is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    fn recipient() -> age::x25519::Recipient {
        age::x25519::Identity::generate().to_public()
    }

    fn no_policy() -> PolicyRecovery {
        panic!("the policy is not asked when a recovery recipient is given")
    }

    #[test]
    fn a_given_recovery_recipient_wins_over_the_policy() {
        let given = recipient();
        let mut opts = EncryptOptions::default();
        opts.choose_recovery(Some(&given.to_string()), no_policy)
            .unwrap();
        let chosen = opts.recovery.unwrap();
        assert_eq!(chosen.recipient.to_string(), given.to_string());
        assert_eq!(chosen.name, "recovery");
        // A blank one given means none, and the policy is not asked either.
        let mut opts = EncryptOptions::default();
        opts.choose_recovery(Some("  "), no_policy).unwrap();
        assert!(opts.recovery.is_none());
    }

    #[test]
    fn without_one_given_the_policy_says() {
        let from_policy = recipient();
        let mut opts = EncryptOptions::default();
        opts.choose_recovery(None, || PolicyRecovery {
            recipient: Some(from_policy.to_string()),
            set_in: Some("/etc/reel/reel.conf:3".into()),
        })
        .unwrap();
        assert_eq!(
            opts.recovery.unwrap().recipient.to_string(),
            from_policy.to_string()
        );
        let mut opts = EncryptOptions::default();
        opts.choose_recovery(None, PolicyRecovery::default).unwrap();
        assert!(opts.recovery.is_none());
    }

    #[test]
    fn a_bad_recovery_recipient_says_where_it_was_set() {
        let mut opts = EncryptOptions::default();
        let e = opts
            .choose_recovery(None, || PolicyRecovery {
                recipient: Some("age1nonsense".into()),
                set_in: Some("/etc/reel/reel.conf:3".into()),
            })
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the recovery recipient of efs-recovery (/etc/reel/reel.conf:3)"
        );
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert!(source.contains("age1nonsense"), "{source}");
        assert_eq!(e.class(), ErrorClass::Usage);
        let e = opts
            .choose_recovery(Some("age1nonsense"), no_policy)
            .unwrap_err();
        assert!(e.to_string().contains("--recovery"), "{e}");
        // A file of recipients holding two is not one recovery recipient.
        let dir = tempfile::tempdir().unwrap();
        let two = dir.path().join("two.txt");
        std::fs::write(&two, format!("{}\n{}\n", recipient(), recipient())).unwrap();
        let e = opts
            .choose_recovery(Some(two.to_str().unwrap()), no_policy)
            .unwrap_err();
        assert!(matches!(e, EfsError::RecoveryNotOne), "{e}");
        assert_eq!(e.class(), ErrorClass::Usage);
        // A recipient file that cannot be read is the system's failure, not the request's.
        let e = EfsError::BadRecovery {
            whence: "efs-recovery".into(),
            source: Box::new(EfsError::Io {
                path: two,
                source: std::io::Error::other("EIO"),
            }),
        };
        assert_eq!(e.class(), ErrorClass::Partial);
    }

    #[test]
    fn a_file_inherits_its_marked_directory_and_a_directory_its_own_marker() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("private");
        let file = dir.join("notes.txt");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&file, "x").unwrap();
        assert_eq!(inheriting_dir(&file), Some(dir.as_path()));
        assert_eq!(inheriting_dir(&dir), Some(dir.as_path()));
        assert_eq!(inheriting_dir(Path::new("notes.txt")), None);

        // Not marked: nothing is added.
        let mut opts = EncryptOptions::default();
        opts.inherit_from_dir(&dir).unwrap();
        assert!(opts.users.is_empty() && opts.recovery.is_none());

        let (bob, recovery) = (recipient(), recipient());
        let marked = EncryptOptions {
            users: vec![Named::new(bob.clone(), "bob")],
            recovery: Some(Named::new(recovery.clone(), "recovery")),
        };
        crate::mark_dir(&dir, marked.directory_entries()).unwrap();
        let own = recipient();
        let mut opts = EncryptOptions {
            users: vec![Named::new(own.clone(), "me")],
            recovery: None,
        };
        opts.inherit_from_dir(inheriting_dir(&file).unwrap())
            .unwrap();
        let users: Vec<String> = opts.users.iter().map(|n| n.recipient.to_string()).collect();
        assert_eq!(users, [own.to_string(), bob.to_string()]);
        assert_eq!(
            opts.recovery.unwrap().recipient.to_string(),
            recovery.to_string()
        );
        // A recovery recipient already chosen is kept.
        let mine = recipient();
        let mut opts = EncryptOptions {
            users: Vec::new(),
            recovery: Some(Named::new(mine.clone(), "recovery")),
        };
        opts.inherit_from_dir(&dir).unwrap();
        assert_eq!(
            opts.recovery.unwrap().recipient.to_string(),
            mine.to_string()
        );
    }

    #[test]
    fn a_damaged_directory_marker_is_an_error_naming_the_directory() {
        let root = tempfile::tempdir().unwrap();
        xattr::set(root.path(), crate::XATTR_NAME, b"garbage").unwrap();
        let e = EncryptOptions::default()
            .inherit_from_dir(root.path())
            .unwrap_err();
        assert_eq!(e.class(), ErrorClass::Integrity);
        assert!(
            e.to_string().contains(&root.path().display().to_string()),
            "{e}"
        );
    }
}
