//! What an interrupted build leaves behind, and how it goes away.
//!
//! Every run's process tree lives in a pid namespace whose init is the
//! child kiln clones (the sandbox itself, or the `runc`/`crun` process);
//! that child dies with kiln (`PR_SET_PDEATHSIG`), and the kernel kills
//! every other process of the namespace with its init. What stays is the
//! per-run scratch directory (`kiln-run-*` in the store's `runs/`, or in
//! `$TMPDIR` when no store set it, with the OCI bundle
//! and the runtime's state) and the cgroups runc named after it.
//!
//! - A run whose [`CancelSignal`] is cancelled kills its child and cleans
//!   up after itself as after any exit.
//! - [`abort_runs`] (called by the CLI on SIGINT/SIGTERM) cancels the
//!   process-wide [`CancelSignal`] every run watches, waits until the runs
//!   have cleaned up, and removes what a run has not removed in time
//!   (scratch directories and runc's cgroups).
//! - After a `kill -9` nothing of kiln runs to clean up: the next run
//!   sweeps the scratch directories of dead processes ([`sweep_stale`]).
//!   A live run holds an `flock` on its directory, so a sweep never
//!   touches the runs of another kiln.

use super::cancel::{CancelSignal, Watch};
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, LazyLock, Mutex};

/// The prefix of scratch directory names.
pub(super) const PREFIX: &str = "kiln-run-";

/// The scratch directories of the runs going on now.
static RUNNING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// The signal every run of this process watches; [`abort_runs`] cancels
/// it, and no run starts after that.
static PROCESS: LazyLock<CancelSignal> = LazyLock::new(CancelSignal::new);

/// Notified when a run unregisters its directory.
static RUN_ENDED: Condvar = Condvar::new();

fn running() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether [`abort_runs`] ran.
pub(super) fn aborted() -> bool {
    PROCESS.is_cancelled()
}

/// A registered scratch directory, locked against the sweep;
/// unregistered on drop.
pub(super) struct DirGuard {
    dir: PathBuf,
    _lock: OwnedFd,
}

impl DirGuard {
    /// Locks and registers `dir`; fails with `ECANCELED` once the runs
    /// were aborted.
    pub(super) fn new(dir: &Path) -> io::Result<DirGuard> {
        let lock = open_dir(dir)?;
        // SAFETY: a valid fd.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // Checked under the lock that abort_runs holds while it cancels.
        let mut dirs = running();
        if aborted() {
            return Err(io::Error::from_raw_os_error(libc::ECANCELED));
        }
        dirs.push(dir.to_path_buf());
        Ok(DirGuard {
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        running().retain(|d| *d != self.dir);
        RUN_ENDED.notify_all();
    }
}

/// A running child (held through a pidfd), watching the process-wide
/// signal and its run's own; unregistered on drop.
pub(super) struct ChildGuard {
    /// Dropped before the fd closes.
    _watches: Vec<Watch>,
    _fd: Option<OwnedFd>,
}

impl ChildGuard {
    /// Registers `pid` (a child not reaped yet) with the process-wide
    /// signal and `cancel`; kills it at once when one of them is
    /// cancelled already.
    pub(super) fn new(pid: libc::pid_t, cancel: Option<&CancelSignal>) -> ChildGuard {
        // SAFETY: a plain syscall.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as i32;
        if fd < 0 {
            // Kernels before 5.3: not registered (it still dies with kiln).
            return ChildGuard {
                _watches: Vec::new(),
                _fd: None,
            };
        }
        // SAFETY: a fresh fd we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let watches = std::iter::once(&*PROCESS)
            .chain(cancel)
            .map(|signal| signal.watch(fd.as_fd()))
            .collect();
        ChildGuard {
            _watches: watches,
            _fd: Some(fd),
        }
    }
}

fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a valid C string.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Kills every running child of this process's runs (cancelling the
/// process-wide signal: later runs fail to start), waits until the runs
/// have cleaned up after themselves (their scratch directories and, for
/// runc, the container state and cgroups), at most 10 s, and removes what
/// is left of them. For a signal handler thread: call it, then end the
/// process.
pub fn abort_runs() {
    let mut dirs = running();
    PROCESS.cancel();
    // A run unregisters its directory last, after its child (the init of
    // the step's pid namespace, which exits only after every other process
    // of the namespace) is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !dirs.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        dirs = RUN_ENDED
            .wait_timeout(dirs, left)
            .map(|(d, _)| d)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    for dir in dirs.iter() {
        remove(dir);
    }
}

/// Removes a scratch directory and the cgroups runc named after it.
fn remove(dir: &Path) {
    if let Some(id) = dir.file_name() {
        remove_cgroups(Path::new("/sys/fs/cgroup"), id);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// `rmdir` of `<root>/<id>` and `<root>/<controller>/<id>` (cgroup v2 and
/// v1 hierarchies); only empty cgroups go.
fn remove_cgroups(root: &Path, id: &std::ffi::OsStr) {
    let _ = std::fs::remove_dir(root.join(id));
    if let Ok(entries) = std::fs::read_dir(root) {
        for e in entries.flatten() {
            let _ = std::fs::remove_dir(e.path().join(id));
        }
    }
}

/// Removes the scratch directories in `tmp` left by runs of processes
/// that are gone (killed with `SIGKILL`, or a crash): directories named
/// `kiln-run-<tag>-…` (or `kiln-run-<pid>-…`), owned by this user, whose
/// maker no longer runs ([`kiln_oci::Owner::alive`]) and which nobody
/// holds locked. Returns how many were removed.
pub fn sweep_stale(tmp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return 0;
    };
    // SAFETY: no preconditions.
    let euid = unsafe { libc::geteuid() };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with(PREFIX)) else {
            continue;
        };
        let Some(owner) = kiln_oci::temporary_owner(name, false) else {
            continue;
        };
        // By tag or pid only: the directory's own lock, below, keeps a
        // live run of another pid namespace.
        let alive = owner.alive(None);
        let path = e.path();
        let owned_dir =
            std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir() && m.uid() == euid);
        if alive || !owned_dir {
            continue;
        }
        let Ok(lock) = open_dir(&path) else {
            continue;
        };
        // SAFETY: a valid fd.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            continue;
        }
        remove(&path);
        removed += 1;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_keeps_live_and_locked_dirs_and_removes_dead_ones() {
        let tmp = tempfile_dir();
        // pid 0 never names a process here; i32::MAX is above pid_max.
        let dead = tmp.join(format!("{PREFIX}{}-0-0", i32::MAX));
        let live = tmp.join(format!("{PREFIX}{}-0-0", kiln_oci::process_tag()));
        let locked = tmp.join(format!("{PREFIX}{}-1-0", i32::MAX));
        let other = tmp.join("kiln-runner");
        for d in [&dead, &live, &locked, &other] {
            std::fs::create_dir_all(d.join("state/x")).unwrap();
        }
        let guard = DirGuard::new(&locked).unwrap();
        assert_eq!(sweep_stale(&tmp), 1);
        assert!(!dead.exists());
        assert!(live.exists() && locked.exists() && other.exists());
        drop(guard);
        let _ = std::fs::remove_dir_all(&tmp);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "kiln-cleanup-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
