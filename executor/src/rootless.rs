//! Rootless builds: a non-root `kiln build` re-enters itself as root of a
//! user namespace that maps the user's subordinate id ranges (from
//! `/etc/subuid` and `/etc/subgid`, written with `newuidmap` and
//! `newgidmap`, as rootless Podman and BuildKit do). Inside, layers are
//! unpacked and RUN steps run with their real owners, which map to the
//! subordinate ids on the host, so the image is the same as a root build's.
//!
//! It happens at start-up, while the process is single-threaded: the
//! process forks; the child unshares a user namespace and waits; the parent
//! writes the child's id maps and then only waits for it, passes SIGINT and
//! SIGTERM on to it, and passes its exit status on. The child gets SIGTERM
//! when the parent dies (even by SIGKILL).
//!
//! A program calls [`enter`] first thing in `main`; [`inside`] tells it
//! later whether it runs in that namespace.

use std::io;
use std::path::PathBuf;

/// Why the process could not enter its rootless namespace. The message
/// says what was being done; the OS error is the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RootlessError {
    /// `newuidmap` or `newgidmap` is not installed.
    #[error("rootless builds need {0} (Debian: apt install uidmap)")]
    MissingTool(&'static str),
    /// A system call failed; `what` names it (e.g. `fork`).
    #[error("{what}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// `newuidmap` or `newgidmap` failed (their messages went to stderr).
    #[error("the id maps of the rootless namespace could not be written (see above)")]
    IdMaps,
    /// The parent died before the child was set up.
    #[error("kiln ended while entering the rootless namespace")]
    ParentEnded,
}

type Result<T> = std::result::Result<T, RootlessError>;

/// The [`RootlessError::Os`] of the last OS error.
fn os(what: &'static str) -> RootlessError {
    RootlessError::Os {
        what,
        error: io::Error::last_os_error(),
    }
}

/// Set in the namespaced child so that it never tries again.
const INSIDE: &str = "KILN_ROOTLESS_NS";

/// One line of `/etc/subuid` or `/etc/subgid` that applies to the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubIds {
    /// The first host id.
    pub start: u64,
    /// How many.
    pub count: u64,
}

/// The first range of `file`'s text for the user `name` or `id`.
pub fn sub_ids(text: &str, name: &str, id: u32) -> Option<SubIds> {
    text.lines().find_map(|line| {
        let mut f = line.trim().split(':');
        let (who, start, count) = (f.next()?, f.next()?, f.next()?);
        if who != name && who != id.to_string() {
            return None;
        }
        Some(SubIds {
            start: start.trim().parse().ok()?,
            count: count.trim().parse().ok().filter(|c| *c > 0)?,
        })
    })
}

/// Whether this process already runs in kiln's rootless namespace.
pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// As a non-root user with subordinate ids, moves the process into a user
/// namespace where it is root; returns only in that child (or at once when
/// nothing is to be done). The parent never returns: it exits with the
/// child's status. `store_root` is the store the user would get outside
/// (kept, since inside the namespace the default would be root's).
///
/// Without subordinate ids it warns on stderr and returns (the sandbox
/// then maps only the user itself); `newuidmap`/`newgidmap` failures are
/// reported on stderr too.
///
/// # Errors
/// [`RootlessError`] when a tool is missing or a step fails.
pub fn enter(store_root: Option<PathBuf>) -> Result<()> {
    // SAFETY: no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    if uid == 0 || inside() {
        return Ok(());
    }
    let name = user_name(uid).unwrap_or_default();
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let (Some(subuid), Some(subgid)) = (
        sub_ids(&read("/etc/subuid"), &name, uid),
        sub_ids(&read("/etc/subgid"), &name, gid),
    ) else {
        // Without subordinate ids the sandbox maps only the user itself;
        // files of other owners cannot be made.
        eprintln!(
            "WARNING: no /etc/subuid and /etc/subgid entries for {name} (uid {uid}): RUN steps \
             can only create files owned by root; add them with usermod --add-subuids"
        );
        return Ok(());
    };
    for tool in ["newuidmap", "newgidmap"] {
        if which(tool).is_none() {
            return Err(RootlessError::MissingTool(tool));
        }
    }
    let (to_parent_r, to_parent_w) = pipe()?;
    let (to_child_r, to_child_w) = pipe()?;
    // SAFETY: no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the process is single-threaded here (called before any
    // thread or runtime starts), so the child may run ordinary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(os("fork"));
    }
    if pid == 0 {
        drop(to_parent_r);
        drop(to_child_w);
        // SAFETY: plain syscalls.
        let ok = unsafe { libc::unshare(libc::CLONE_NEWUSER) } == 0;
        write_byte(&to_parent_w, if ok { b'1' } else { b'0' });
        if !ok {
            // The parent goes on without a namespace (see below).
            // SAFETY: leaving the forked child at once.
            unsafe { libc::_exit(0) };
        }
        if read_byte(&to_child_r) != Some(b'1') {
            return Err(RootlessError::IdMaps);
        }
        // SAFETY: plain syscalls; the maps now include 0.
        unsafe {
            if libc::setresgid(0, 0, 0) != 0 || libc::setresuid(0, 0, 0) != 0 {
                return Err(os("becoming root in the user namespace"));
            }
            let _ = libc::setgroups(0, std::ptr::null());
            // A killed parent (kill -9) ends the build as SIGTERM does:
            // its RUN steps die and their directories go.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                return Err(RootlessError::ParentEnded);
            }
        }
        // Single-threaded: setting the environment is sound.
        std::env::set_var(INSIDE, "1");
        if std::env::var_os("KILN_ROOT").is_none() {
            if let Some(root) = store_root {
                std::env::set_var("KILN_ROOT", root);
            }
        }
        return Ok(());
    }
    drop(to_parent_w);
    drop(to_child_r);
    let unshared = read_byte(&to_parent_r) == Some(b'1');
    if !unshared {
        // User namespaces are refused (a seccomp profile such as Docker's
        // default, or a sysctl): build without one. Steps without RUN
        // work; RUN steps say what isolation is missing.
        let mut status = 0;
        // SAFETY: reaping our own child, which exits at once.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        eprintln!(
            "WARNING: user namespaces are refused here, so kiln builds as uid {uid} without \
             one: files of other owners in layers keep uid {uid}, and RUN steps need an \
             isolation that works here (see the error if one fails)"
        );
        return Ok(());
    }
    let mapped = (map(pid, "newuidmap", uid, subuid) && map(pid, "newgidmap", gid, subgid))
        || single_id_maps(pid, uid, gid);
    write_byte(&to_child_w, if mapped { b'1' } else { b'0' });
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe {
        // The parent only waits: SIGINT and SIGTERM sent to it go on to
        // the child, which ends the build (Ctrl-C reaches both, as one
        // process group; the child acts once).
        CHILD.store(pid, std::sync::atomic::Ordering::Relaxed);
        libc::signal(libc::SIGINT, forward as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, forward as *const () as libc::sighandler_t);
        while libc::waitpid(pid, &mut status, 0) < 0 {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    };
    std::process::exit(code);
}

/// The namespaced child, for [`forward`].
static CHILD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// A signal handler: passes the signal on to [`CHILD`].
extern "C" fn forward(sig: libc::c_int) {
    let pid = CHILD.load(std::sync::atomic::Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Where newuidmap or newgidmap cannot write the maps (a setuid one
/// without CAP_SYS_ADMIN, as in a container), maps only the user itself,
/// as `unshare -r` does, and says what that costs.
fn single_id_maps(pid: libc::pid_t, uid: u32, gid: u32) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let written = std::fs::write(proc.join("setgroups"), "deny")
        .and_then(|()| std::fs::write(proc.join("uid_map"), format!("0 {uid} 1\n")))
        .and_then(|()| std::fs::write(proc.join("gid_map"), format!("0 {gid} 1\n")));
    match written {
        Ok(()) => {
            eprintln!(
                "WARNING: the subordinate ids could not be mapped, so the build maps only uid \
                 {uid}: files of other owners in layers become root's, and RUN steps can only \
                 create files owned by root (newuidmap with file capabilities instead of the \
                 setuid bit works in containers)"
            );
            true
        }
        Err(e) => {
            eprintln!("kiln: writing the id maps of the rootless namespace: {e}");
            false
        }
    }
}

/// Runs `tool PID 0 ID 1 1 START COUNT`; reports failures on stderr.
fn map(pid: libc::pid_t, tool: &str, id: u32, sub: SubIds) -> bool {
    let out = std::process::Command::new(tool)
        .args([
            pid.to_string(),
            "0".into(),
            id.to_string(),
            "1".into(),
            "1".into(),
            sub.start.to_string(),
            sub.count.to_string(),
        ])
        .output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            eprintln!(
                "kiln: {tool} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            false
        }
        Err(e) => {
            eprintln!("kiln: running {tool}: {e}");
            false
        }
    }
}

fn user_name(uid: u32) -> Option<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 2 && f[2] == uid.to_string()).then(|| f[0].to_string())
    })
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/bin".into(), "/usr/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

fn pipe() -> Result<(std::fs::File, std::fs::File)> {
    let mut fds = [0; 2];
    // SAFETY: fds points to two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(os("creating a pipe"));
    }
    use std::os::fd::FromRawFd;
    // SAFETY: two fresh fds we own.
    Ok(unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    })
}

fn write_byte(mut f: &std::fs::File, b: u8) {
    use std::io::Write;
    let _ = f.write_all(&[b]);
}

fn read_byte(mut f: &std::fs::File) -> Option<u8> {
    use std::io::Read;
    let mut b = [0u8; 1];
    f.read_exact(&mut b).ok().map(|()| b[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_by_name_or_id() {
        let text = "alice:100000:65536\n1001:200000:1000\nbob:300000:0\n";
        assert_eq!(
            sub_ids(text, "alice", 1000),
            Some(SubIds {
                start: 100000,
                count: 65536
            })
        );
        assert_eq!(
            sub_ids(text, "carol", 1001),
            Some(SubIds {
                start: 200000,
                count: 1000
            })
        );
        assert_eq!(sub_ids(text, "bob", 1002), None, "an empty range is none");
        assert_eq!(sub_ids("garbage\n", "x", 1), None);
    }
}
