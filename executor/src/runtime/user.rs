//! Resolving the USER of a RUN step through the rootfs's `/etc/passwd` and
//! `/etc/group`, with BuildKit's and runc's rules:
//!
//! - `""` is 0:0 with group 0; `uid:gid` (both numeric) is
//!   taken as is, with the gid as the only group;
//! - otherwise the user part is a name or a numeric uid (a uid that is not
//!   in passwd is fine, with gid 0; an unknown name is an error);
//! - an explicit group is a name or numeric gid (unknown name: error);
//!   without one, the primary gid comes from passwd and the supplementary
//!   groups are the primary gid followed by the groups of `/etc/group`
//!   listing the user's name.
//!
//! The home directory (for `HOME`) is the passwd entry of the final uid,
//! or `/`.

use super::{resolve, RuntimeError};
use crate::stack::{LayerStack, SourceTree};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct User {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub home: String,
}

impl User {
    /// `env` with `HOME` set to the user's home when it does not set one,
    /// as runc does.
    pub(super) fn environment(&self, env: &[String]) -> Vec<String> {
        let mut env = env.to_vec();
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", self.home));
        }
        env
    }
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// The content of a file of the rootfs, `None` when absent.
fn read(stack: &LayerStack, path: &str) -> Result<Option<String>, RuntimeError> {
    let err = |error: std::io::Error| RuntimeError::Prepare {
        step: format!("reading {path} of the rootfs"),
        error,
    };
    let t = resolve::resolve(stack, path)?;
    if t.existing < t.comps.len() {
        return Ok(None);
    }
    let Some(entry) = stack
        .entry(&t.comps.join("/"))
        .map_err(|e| err(std::io::Error::other(e.to_string())))?
    else {
        return Ok(None);
    };
    if !entry.metadata.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(&entry.real).map_err(err)?;
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.trim().parse().ok()?,
                gid: f.get(3)?.trim().parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.trim().parse().ok()?,
                members: f
                    .get(3)
                    .unwrap_or(&"")
                    .split(',')
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty())
                    .collect(),
            })
        })
        .collect()
}

fn numeric(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Resolves `spec` in the rootfs `stack`.
pub(super) fn resolve(stack: &LayerStack, spec: &str) -> Result<User, RuntimeError> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let passwd = read(stack, "/etc/passwd")?;
    let passwd = parse_passwd(passwd.as_deref().unwrap_or(""));
    let home_of = |uid: u32| {
        passwd
            .iter()
            .find(|p| p.uid == uid)
            .map(|p| p.home.clone())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".to_string())
    };
    if spec.is_empty() {
        return Ok(User {
            uid: 0,
            gid: 0,
            groups: vec![0],
            home: home_of(0),
        });
    }
    if let (Some(uid), Some(gid)) = (numeric(user_arg), group_arg.and_then(numeric)) {
        return Ok(User {
            uid,
            gid,
            groups: vec![gid],
            home: home_of(uid),
        });
    }
    let uid_arg = numeric(user_arg);
    let matched = passwd.iter().find(|p| match uid_arg {
        Some(uid) => p.uid == uid,
        None => p.name == user_arg,
    });
    let (uid, mut gid) = match (matched, uid_arg) {
        (Some(p), _) => (p.uid, p.gid),
        (None, Some(uid)) => (uid, 0),
        (None, None) => {
            return Err(RuntimeError::User(format!(
                "unable to find user {user_arg}: no matching entries in passwd file"
            )))
        }
    };
    let mut groups = Vec::new();
    let group_text = read(stack, "/etc/group")?;
    let group = parse_group(group_text.as_deref().unwrap_or(""));
    match group_arg {
        Some(g) => {
            let gid_arg = numeric(g);
            let found = group.iter().find(|e| match gid_arg {
                Some(gid) => e.gid == gid,
                None => e.name == g,
            });
            gid = match (found, gid_arg) {
                (Some(e), _) => e.gid,
                (None, Some(gid)) => gid,
                (None, None) => {
                    return Err(RuntimeError::User(format!(
                        "unable to find group {g}: no matching entries in group file"
                    )))
                }
            };
        }
        None => {
            if let Some(p) = matched {
                groups = group
                    .iter()
                    .filter(|e| e.members.contains(&p.name))
                    .map(|e| e.gid)
                    .collect();
            }
        }
    }
    // As runc (and so BuildKit) does: the primary group is always among
    // the supplementary groups, first.
    groups.retain(|g| *g != gid);
    groups.insert(0, gid);
    Ok(User {
        uid,
        gid,
        groups,
        home: home_of(uid),
    })
}
