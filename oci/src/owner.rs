//! Whose a store temporary is, and whether its maker still runs.
//!
//! Every temporary a kiln process makes in a store (ingest files, staging
//! and work directories, files being replaced) carries the process's
//! *tag*, `<pid>x<16 hex digits>` ([`process_tag`]). The pid is for
//! people; the random part keeps a pid the kernel gives out again from
//! naming another process's files. That happens all the time in
//! containers, where kiln is often pid 1 in every run.
//!
//! A process that opens a store for writing registers there
//! ([`register`]): it creates `owners/<tag>` and holds an exclusive
//! flock(2) on it until it exits, a kill -9 included. While the lock is
//! held, its maker runs. This holds across pid namespaces, so pods and
//! containers can share a store. A tag with no owner file falls back to
//! its pid (`/proc/<pid>` exists), and so do the bare-pid names of older
//! kilns; this process's own pid under another name is an earlier
//! process's, since this one names with its tag.

use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The maker of a temporary, read from its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A tag `<pid>x<hex>` (this kiln's names).
    Tagged {
        /// The whole tag.
        tag: String,
        /// Its pid part.
        pid: u32,
    },
    /// A bare pid (older kilns' names).
    Pid(u32),
}

/// This process's tag, `<pid>x<16 hex digits>`, the same for its whole
/// life (a forked child keeps its parent's, and its lock).
pub fn process_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        // std's hasher keys come from the OS's random source.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            hasher.write_u128(now.as_nanos());
        }
        format!("{}x{:016x}", std::process::id(), hasher.finish())
    })
}

/// The maker named in a temporary's name: ingest files start with it
/// (`ingest` true); every other temporary carries it after `tmp-`,
/// `work-` or `kiln-run-`. `None` for a name without one (`.tmpXXXXXX`
/// staging directories of older kilns).
pub fn owner_of(name: &str, ingest: bool) -> Option<Owner> {
    let rest = if ingest {
        name
    } else {
        ["tmp-", "work-", "kiln-run-"]
            .iter()
            .find_map(|marker| name.split_once(marker).map(|(_, rest)| rest))?
    };
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let pid: u32 = digits.parse().ok().filter(|p| *p != 0)?;
    let after = &rest[digits.len()..];
    let hex: String = after
        .strip_prefix('x')
        .map(|h| h.chars().take_while(char::is_ascii_hexdigit).collect())
        .unwrap_or_default();
    Some(if hex.len() == 16 {
        Owner::Tagged {
            tag: format!("{digits}x{hex}"),
            pid,
        }
    } else {
        Owner::Pid(pid)
    })
}

impl Owner {
    /// Whether this process made it.
    pub fn is_this_process(&self) -> bool {
        matches!(self, Owner::Tagged { tag, .. } if tag == process_tag())
    }

    /// Whether its maker may still run, judged by the owner files in
    /// `owners` (a store's `owners/`; `None` to judge by pid alone). In
    /// doubt, alive: a live process's files are never taken for dead.
    pub fn alive(&self, owners: Option<&Path>) -> bool {
        match self {
            Owner::Tagged { tag, pid } => {
                if tag == process_tag() {
                    return true;
                }
                match owners.map(|dir| lock_state(&dir.join(tag))) {
                    Some(LockState::Held) => true,
                    Some(LockState::Free) => false,
                    Some(LockState::Missing) | None => other_process_exists(*pid),
                }
            }
            Owner::Pid(pid) => other_process_exists(*pid),
        }
    }
}

/// Whether `pid` names a process other than this one: this process names
/// its files with its own tag, so its pid under another name is an
/// earlier process's that had the same pid.
fn other_process_exists(pid: u32) -> bool {
    pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists()
}

enum LockState {
    Held,
    Free,
    Missing,
}

fn lock_state(path: &Path) -> LockState {
    let Ok(file) = File::open(path) else {
        return LockState::Missing;
    };
    match file.try_lock() {
        Ok(()) => LockState::Free,
        Err(_) => LockState::Held,
    }
}

/// The owner files this process holds, one per store it registered in.
static HELD: Mutex<Vec<(PathBuf, File)>> = Mutex::new(Vec::new());

/// Registers this process in the owner directory `owners` (made 0700 if
/// needed): creates `owners/<tag>` and holds an exclusive lock on it until
/// the process exits. Registering again in the same directory does
/// nothing.
///
/// # Errors
/// The I/O error of creating or locking the file.
pub fn register(owners: &Path) -> io::Result<()> {
    let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
    if held.iter().any(|(dir, _)| dir == owners) {
        return Ok(());
    }
    match std::fs::DirBuilder::new().mode(0o700).create(owners) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let path = owners.join(process_tag());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.lock()?;
    held.push((owners.to_path_buf(), file));
    Ok(())
}

/// Removes the owner files in `owners` whose process has ended (no lock
/// held on them). Returns how many went.
pub fn sweep_owners(owners: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(owners) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if matches!(lock_state(&path), LockState::Free) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_tags_or_bare_pids() {
        let tag = process_tag();
        assert!(tag.starts_with(&format!("{}x", std::process::id())));
        assert_eq!(tag.len(), tag.find('x').map_or(0, |x| x + 17));
        let me = owner_of(&format!("work-{tag}-3"), false).expect("owner");
        assert!(me.is_this_process() && me.alive(None));
        for name in [
            format!(".tmp-{tag}-abc"),
            format!("x.json.tmp-{tag}-ThreadId(2)"),
            format!("kiln-run-{tag}-0-1f"),
        ] {
            assert!(
                owner_of(&name, false).is_some_and(|o| o.is_this_process()),
                "{name}"
            );
        }
        assert!(owner_of(&format!("{tag}-0-12"), true).is_some_and(|o| o.is_this_process()));
        assert_eq!(owner_of("tmp-77-0", false), Some(Owner::Pid(77)));
        assert_eq!(owner_of("77-0-9", true), Some(Owner::Pid(77)));
        assert_eq!(owner_of(".tmpAbC", false), None);
        assert_eq!(owner_of("tmp-0-1", false), None);
    }

    #[test]
    fn a_reused_pid_never_makes_another_processs_files_look_alive() {
        // This process's own pid in an old-style name is not this
        // process's; an ended process's tag with an unlocked owner file is
        // dead even though its pid (ours) exists.
        let me = std::process::id();
        assert!(!Owner::Pid(me).alive(None));
        let dir = tempfile::tempdir().expect("tempdir");
        let old = format!("{me}x0123456789abcdef");
        std::fs::write(dir.path().join(&old), b"").expect("owner file");
        let owner = owner_of(&format!("work-{old}-0"), false).expect("owner");
        assert!(!owner.is_this_process());
        assert!(!owner.alive(Some(dir.path())));
        // Without its owner file, the pid decides: ours is not another
        // process's; init's (pid 1 here) is alive.
        assert!(!owner.alive(Some(&dir.path().join("none"))));
        let init = owner_of("work-1x0123456789abcdef-0", false).expect("owner");
        assert!(init.alive(Some(&dir.path().join("none"))));
        assert_eq!(sweep_owners(dir.path()), 1);
    }

    #[test]
    fn a_registered_process_is_alive_to_others_until_it_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let owners = dir.path().join("owners");
        register(&owners).expect("register");
        register(&owners).expect("again");
        let file = owners.join(process_tag());
        // Another open file description sees the lock held.
        assert!(matches!(lock_state(&file), LockState::Held));
        assert_eq!(sweep_owners(&owners), 0);
        assert!(file.exists());
    }
}
