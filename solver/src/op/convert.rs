//! The one place the solver's op types become the executor's: file actions
//! to apply and the modes a process runs with.

use super::{Chmod, CopyAction, FileAction, NetworkMode, Owner, SecurityMode};

impl From<&FileAction> for kiln_executor::FileAction {
    fn from(action: &FileAction) -> Self {
        match action {
            FileAction::Copy(copy) => kiln_executor::FileAction::Copy(copy.into()),
            FileAction::Mkdir {
                path,
                mode,
                owner,
                parents,
            } => kiln_executor::FileAction::Mkdir {
                path: path.clone(),
                mode: *mode,
                owner: owner.as_ref().map(Into::into),
                parents: *parents,
            },
            FileAction::Mkfile {
                path,
                data,
                mode,
                owner,
            } => kiln_executor::FileAction::Mkfile {
                path: path.clone(),
                data: data.clone(),
                mode: *mode,
                owner: owner.as_ref().map(Into::into),
            },
            FileAction::Rm {
                path,
                allow_not_found,
            } => kiln_executor::FileAction::Rm {
                path: path.clone(),
                allow_not_found: *allow_not_found,
            },
        }
    }
}

impl From<&CopyAction> for kiln_executor::CopyAction {
    fn from(copy: &CopyAction) -> Self {
        kiln_executor::CopyAction {
            input: copy.input,
            sources: copy.sources.clone(),
            dest: copy.dest.clone(),
            dest_is_dir: copy.dest_is_dir,
            owner: copy.owner.as_ref().map(Into::into),
            chmod: copy.chmod.as_ref().map(Into::into),
            unpack: copy.unpack,
            excludes: copy.excludes.clone(),
            parents: copy.parents,
        }
    }
}

impl From<&Owner> for kiln_executor::Owner {
    fn from(owner: &Owner) -> Self {
        match owner {
            Owner::Ids { uid, gid } => kiln_executor::Owner::Ids {
                uid: *uid,
                gid: *gid,
            },
            Owner::Names { user, group } => kiln_executor::Owner::Names {
                user: user.clone(),
                group: group.clone(),
            },
        }
    }
}

impl From<&Chmod> for kiln_executor::Chmod {
    fn from(chmod: &Chmod) -> Self {
        match chmod {
            Chmod::Octal(bits) => kiln_executor::Chmod::Octal(*bits),
            Chmod::Symbolic(text) => kiln_executor::Chmod::Symbolic(text.clone()),
        }
    }
}

impl From<NetworkMode> for kiln_executor::NetworkMode {
    /// The default network is the host's.
    fn from(mode: NetworkMode) -> Self {
        match mode {
            NetworkMode::None => kiln_executor::NetworkMode::None,
            NetworkMode::Default | NetworkMode::Host => kiln_executor::NetworkMode::Host,
        }
    }
}

impl From<SecurityMode> for kiln_executor::SecurityMode {
    fn from(mode: SecurityMode) -> Self {
        match mode {
            SecurityMode::Sandbox => kiln_executor::SecurityMode::Sandbox,
            SecurityMode::Insecure => kiln_executor::SecurityMode::Insecure,
        }
    }
}

/// The executor's actions for `actions`, in order.
pub(crate) fn executor_actions(actions: &[FileAction]) -> Vec<kiln_executor::FileAction> {
    actions.iter().map(Into::into).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners() -> [Owner; 2] {
        [
            Owner::Ids { uid: 1, gid: 2 },
            Owner::Names {
                user: "app".into(),
                group: Some("staff".into()),
            },
        ]
    }

    #[test]
    fn every_file_action_keeps_every_field() {
        let [ids, names] = owners();
        let actions = vec![
            FileAction::Copy(CopyAction {
                input: 2,
                sources: vec!["a".into(), "b*".into()],
                dest: "/d".into(),
                dest_is_dir: true,
                owner: Some(ids),
                chmod: Some(Chmod::Octal(0o750)),
                unpack: true,
                excludes: vec!["*.md".into()],
                parents: true,
            }),
            FileAction::Copy(CopyAction {
                input: 1,
                sources: vec!["c".into()],
                dest: "/c".into(),
                dest_is_dir: false,
                owner: Some(names.clone()),
                chmod: Some(Chmod::Symbolic("u+x".into())),
                unpack: false,
                excludes: Vec::new(),
                parents: false,
            }),
            FileAction::Mkdir {
                path: "/m".into(),
                mode: 0o700,
                owner: Some(names),
                parents: false,
            },
            FileAction::Mkfile {
                path: "/f".into(),
                data: b"x\n".to_vec(),
                mode: 0o600,
                owner: None,
            },
            FileAction::Rm {
                path: "/r".into(),
                allow_not_found: true,
            },
        ];
        let converted = executor_actions(&actions);
        let expected = vec![
            kiln_executor::FileAction::Copy(kiln_executor::CopyAction {
                input: 2,
                sources: vec!["a".into(), "b*".into()],
                dest: "/d".into(),
                dest_is_dir: true,
                owner: Some(kiln_executor::Owner::Ids { uid: 1, gid: 2 }),
                chmod: Some(kiln_executor::Chmod::Octal(0o750)),
                unpack: true,
                excludes: vec!["*.md".into()],
                parents: true,
            }),
            kiln_executor::FileAction::Copy(kiln_executor::CopyAction {
                input: 1,
                sources: vec!["c".into()],
                dest: "/c".into(),
                dest_is_dir: false,
                owner: Some(kiln_executor::Owner::Names {
                    user: "app".into(),
                    group: Some("staff".into()),
                }),
                chmod: Some(kiln_executor::Chmod::Symbolic("u+x".into())),
                unpack: false,
                excludes: Vec::new(),
                parents: false,
            }),
            kiln_executor::FileAction::Mkdir {
                path: "/m".into(),
                mode: 0o700,
                owner: Some(kiln_executor::Owner::Names {
                    user: "app".into(),
                    group: Some("staff".into()),
                }),
                parents: false,
            },
            kiln_executor::FileAction::Mkfile {
                path: "/f".into(),
                data: b"x\n".to_vec(),
                mode: 0o600,
                owner: None,
            },
            kiln_executor::FileAction::Rm {
                path: "/r".into(),
                allow_not_found: true,
            },
        ];
        assert_eq!(converted, expected);
    }

    #[test]
    fn modes_map_to_what_the_sandbox_does() {
        use kiln_executor::{NetworkMode as Net, SecurityMode as Sec};
        assert_eq!(Net::from(NetworkMode::Default), Net::Host);
        assert_eq!(Net::from(NetworkMode::Host), Net::Host);
        assert_eq!(Net::from(NetworkMode::None), Net::None);
        assert_eq!(Sec::from(SecurityMode::Sandbox), Sec::Sandbox);
        assert_eq!(Sec::from(SecurityMode::Insecure), Sec::Insecure);
    }

    #[test]
    fn modes_are_hashed_as_the_words_of_their_flags() {
        for (mode, word) in [
            (NetworkMode::Default, "default"),
            (NetworkMode::Host, "host"),
            (NetworkMode::None, "none"),
        ] {
            assert_eq!(serde_json::to_value(mode).ok(), Some(word.into()));
            assert_eq!(word.parse::<NetworkMode>(), Ok(mode));
        }
        for (mode, word) in [
            (SecurityMode::Sandbox, "sandbox"),
            (SecurityMode::Insecure, "insecure"),
        ] {
            assert_eq!(serde_json::to_value(mode).ok(), Some(word.into()));
        }
        assert!("bridge"
            .parse::<NetworkMode>()
            .is_err_and(|e| e.contains("expected default, host or none")));
    }
}
