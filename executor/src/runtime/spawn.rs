//! Running the child: a raw `clone` into new namespaces, the id maps of a
//! new user namespace, the output pipe, and waiting; a failure report of
//! the child becomes a [`RuntimeError`].

use super::cgroup::Leaf;
use super::child::{self, ChildPlan, Op};
use super::devices::{Channel, Supervisor};
use super::{cleanup, prep, CancelSignal, RunRequest, RuntimeError, Ulimit, OUTPUT_LIMIT};
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

/// A pipe, both ends close-on-exec.
fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    let mut fds = [0; 2];
    // SAFETY: fds points to two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(prep("creating a pipe")(io::Error::last_os_error()));
    }
    // SAFETY: pipe2 returned two fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A fork-like `clone` with `flags` (new namespaces) plus `SIGCHLD`: the
/// child's pid in the parent, 0 in the child.
///
/// # Safety
/// No new stack and no `CLONE_VM`: in a multi-threaded process the child
/// may only make async-signal-safe calls, and must `_exit` or `execve`.
pub(super) unsafe fn raw_clone(flags: libc::c_int) -> io::Result<libc::pid_t> {
    // SAFETY: the caller keeps the child to what is safe after a fork.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(pid as libc::pid_t)
}

/// Waits for (and reaps) the child `pid`: its exit code, or 128 + the
/// signal that killed it.
pub(super) fn wait_status(pid: libc::pid_t) -> io::Result<i32> {
    let mut st = 0;
    loop {
        // SAFETY: st is a valid int; `pid` is our own child.
        let r = unsafe { libc::waitpid(pid, &mut st, 0) };
        if r == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(if libc::WIFEXITED(st) {
        libc::WEXITSTATUS(st)
    } else if libc::WIFSIGNALED(st) {
        128 + libc::WTERMSIG(st)
    } else {
        255
    })
}

/// Raises the hard limits of the process `pid` that `ulimits` set above
/// its current ones (`prlimit64` from here, in the initial user namespace:
/// the child may only lower a hard limit). The child sets the exact values
/// itself, late (see `policy::rlimit_ops`).
fn raise_hard_limits(pid: libc::pid_t, ulimits: &[Ulimit]) -> Result<(), RuntimeError> {
    for u in ulimits {
        let mut old = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: no new value; old is a valid rlimit64 to write to.
        let got = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                pid,
                u.name.resource(),
                std::ptr::null::<libc::rlimit64>(),
                &mut old as *mut libc::rlimit64,
            )
        };
        if got < 0 {
            return Err(RuntimeError::Prepare {
                step: format!("--ulimit {u}: reading the current limit"),
                error: io::Error::last_os_error(),
            });
        }
        if u.hard <= old.rlim_max {
            continue;
        }
        let new = libc::rlimit64 {
            rlim_cur: old.rlim_cur,
            rlim_max: u.hard,
        };
        // SAFETY: a valid rlimit64 to read; no old value wanted.
        let r = unsafe {
            libc::syscall(
                libc::SYS_prlimit64,
                pid,
                u.name.resource(),
                &new as *const libc::rlimit64,
                std::ptr::null_mut::<libc::rlimit64>(),
            )
        };
        if r < 0 {
            let error = io::Error::last_os_error();
            let why = if error.raw_os_error() == Some(libc::EPERM) {
                format!(
                    " (the hard limit is above kiln's own, {}, and raising it needs CAP_SYS_RESOURCE)",
                    old.rlim_max
                )
            } else {
                String::new()
            };
            return Err(RuntimeError::Prepare {
                step: format!("--ulimit {u}: setting the limit{why}"),
                error,
            });
        }
    }
    Ok(())
}

/// A finished child of [`spawn`].
pub(super) struct Spawned {
    /// The exit code, or 128 + the signal number.
    pub(super) status: i32,
    /// The combined output, the last [`OUTPUT_LIMIT`] bytes.
    pub(super) output: Vec<u8>,
    /// The child's failure report: (operation index, errno, detail).
    pub(super) report: Option<(usize, i32, String)>,
}

/// How the child is made and what belongs to it.
pub(super) struct Isolate<'a> {
    /// The `clone` flags (new namespaces), `SIGCHLD` added.
    pub(super) flags: libc::c_int,
    /// `Some(is_root)`: write the identity id maps of the child's new
    /// user namespace before it goes on.
    pub(super) id_maps: Option<bool>,
    /// The child's process tree is its process group (it ran
    /// [`Op::NewSession`]; there is no pid namespace to hold it): when
    /// the child exits, the rest of the group is killed, and output still
    /// held open by a process that left the group is read for at most
    /// [`DRAIN`] more.
    pub(super) group: bool,
    /// Limits whose hard limit is raised on the child from here (in the
    /// initial user namespace, with `CAP_SYS_RESOURCE`) before it goes on;
    /// the child's ops set them exactly.
    pub(super) ulimits: &'a [Ulimit],
    /// The cgroup the child joins before it goes on.
    pub(super) cgroup: Option<&'a Leaf>,
    /// The socket the child sends its seccomp listener over: a device
    /// supervisor serves it while the child runs (`devices.rs`).
    pub(super) devices: Option<Channel>,
}

/// How long output is read after a process group was killed.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Clones a child as `how` says that runs `ops` (see `child.rs`) and
/// then `execve`s the first usable of `candidates`, with stdin on
/// `/dev/null` and stdout and stderr on one pipe; collects the output
/// (passing each chunk to `req.output` as it is read) and waits. When
/// `req.cancel` (or [`super::abort_runs`]) is cancelled, before the clone
/// or while the child runs, the child (its pid namespace, or its process
/// group) is killed and the result is [`RuntimeError::Cancelled`].
pub(super) fn spawn(
    ops: Vec<Op>,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    how: Isolate<'_>,
    req: &RunRequest<'_>,
) -> Result<Spawned, RuntimeError> {
    let Isolate {
        flags,
        id_maps,
        group,
        ulimits,
        cgroup,
        devices,
    } = how;
    let (sink, cancel) = (req.output, req.cancel);
    let cancelled = || cancel.is_some_and(CancelSignal::is_cancelled) || cleanup::aborted();
    if cancelled() {
        return Err(RuntimeError::Cancelled);
    }
    // ---- fds
    let devnull = std::fs::File::open("/dev/null").map_err(prep("opening /dev/null"))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (sync_r, sync_w) = pipe()?;

    let plan = ChildPlan::new(
        ops,
        candidates,
        argv,
        envp,
        devnull.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        sync_r.as_raw_fd(),
    );

    // SAFETY: the child only runs `child::run`, which makes raw syscalls on
    // data prepared above and never returns, allocates, or unwinds.
    let pid = unsafe { raw_clone(flags) };
    let pid = match pid {
        Ok(pid) => pid,
        Err(error)
            if flags & libc::CLONE_NEWUSER != 0 && error.raw_os_error() == Some(libc::EPERM) =>
        {
            return Err(RuntimeError::Unsupported(format!(
                "the sandbox cannot create its namespaces (clone: {error}): the seccomp profile or missing privileges refuse them here. Use --isolation chroot (or auto) as root, or allow user namespaces (Kubernetes: securityContext.seccompProfile.type: Unconfined, or hostUsers: false; docker run --security-opt seccomp=unconfined)"
            )));
        }
        Err(error) => return Err(prep("clone (new namespaces)")(error)),
    };
    if pid == 0 {
        // SAFETY: we are the freshly cloned child; see above.
        unsafe { child::run(&plan) }
    }
    drop(plan);
    let supervisor = devices.map(|Channel { parent, child }| {
        drop(child);
        Supervisor::start(parent)
    });
    drop(out_w);
    drop(err_w);
    drop(sync_r);
    drop(devnull);

    let mut child = Child {
        pid,
        status: None,
        group,
    };
    let _running = cleanup::ChildGuard::new(pid, cancel);
    if let Some(is_root) = id_maps {
        if let Err(e) = write_id_maps(pid, is_root) {
            child.kill();
            return Err(e);
        }
    }
    let placed =
        raise_hard_limits(pid, ulimits).and_then(|()| cgroup.map_or(Ok(()), |c| c.join(pid)));
    if let Err(e) = placed {
        child.kill();
        return Err(e);
    }
    let mut sync = std::fs::File::from(sync_w);
    if let Err(e) = sync.write_all(b"G") {
        child.kill();
        return Err(prep("starting the child")(e));
    }
    drop(sync);

    // Setup errors come through err_r; EOF means the exec happened.
    let mut report = Vec::new();
    std::fs::File::from(err_r)
        .read_to_end(&mut report)
        .map_err(prep("reading the child's status"))?;
    let mut output = Vec::new();
    let mut out = std::fs::File::from(out_r);
    let mut buf = vec![0u8; 64 * 1024];
    let mut drain_until: Option<std::time::Instant> = None;
    loop {
        if group && !wait_readable(&out, &mut child, &mut drain_until) {
            break;
        }
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if let Some(sink) = &sink {
                    sink.write(&buf[..n]);
                }
                output.extend_from_slice(&buf[..n]);
                if output.len() > 2 * OUTPUT_LIMIT {
                    output.drain(..output.len() - OUTPUT_LIMIT);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                child.kill();
                return Err(prep("reading the output")(e));
            }
        }
    }
    if output.len() > OUTPUT_LIMIT {
        output.drain(..output.len() - OUTPUT_LIMIT);
    }
    let status = child.wait().map_err(prep("waiting for the process"));
    if let Some(s) = supervisor {
        s.stop();
    }
    let status = status?;
    if cancelled() {
        return Err(RuntimeError::Cancelled);
    }
    Ok(Spawned {
        status,
        output,
        report: child::parse_report(&report),
    })
}

/// What the error messages call each op, and whether it mounts an
/// overlay (see [`report_error`]).
pub(super) fn descs(ops: &[(String, Op)]) -> Vec<(String, bool)> {
    ops.iter()
        .map(|(d, op)| (d.clone(), matches!(op, Op::Overlay { .. })))
        .collect()
}

/// The error of a child's failure report; index `descs.len()` is the
/// `execve` of `program`. An overlay mount that the kernel refuses is
/// [`RuntimeError::OverlayRefused`].
pub(super) fn report_error(
    report: &(usize, i32, String),
    descs: &[(String, bool)],
    program: &str,
) -> RuntimeError {
    let (step, errno, detail) = report;
    let error = io::Error::from_raw_os_error(*errno);
    if *step == descs.len() {
        return RuntimeError::Exec {
            program: program.to_string(),
            error,
        };
    }
    let overlay = descs.get(*step).is_some_and(|(_, overlay)| *overlay);
    let step = descs
        .get(*step)
        .map(|(d, _)| d.clone())
        .unwrap_or_else(|| "redirecting stdin/stdout/stderr".to_string());
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    if overlay && overlay_refused(&error) {
        return RuntimeError::OverlayRefused {
            step,
            error,
            detail,
        };
    }
    RuntimeError::Setup {
        step,
        error,
        detail,
    }
}

/// Whether a failed overlay mount means overlayfs is not usable here (no
/// overlayfs, not allowed in a user namespace, or an upper directory on a
/// filesystem it refuses, such as overlayfs itself), rather than a bad
/// request (a missing layer directory, say).
fn overlay_refused(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EINVAL | libc::EPERM | libc::EACCES | libc::ENODEV | libc::EOPNOTSUPP)
    )
}

/// Waits until the output pipe `out` is readable, for a child whose tree
/// is its process group. Once the child has exited, the rest of its group
/// is killed and reading goes on for at most [`DRAIN`] (`drain_until`);
/// false when that time is up.
fn wait_readable(
    out: &std::fs::File,
    child: &mut Child,
    drain_until: &mut Option<std::time::Instant>,
) -> bool {
    loop {
        if let Some(until) = drain_until {
            if std::time::Instant::now() >= *until {
                return false;
            }
        }
        let mut fd = libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut fd, 1, 100) };
        if ready > 0 {
            return true;
        }
        if drain_until.is_none() && child.has_exited() {
            child.kill_group();
            *drain_until = Some(std::time::Instant::now() + DRAIN);
        }
    }
}

/// The child process; killed (with its group, when it leads one) and
/// reaped on drop unless waited for.
struct Child {
    pid: libc::pid_t,
    /// Its exit status, once reaped.
    status: Option<i32>,
    /// It leads a process group that holds its tree.
    group: bool,
}

impl Child {
    fn kill(&mut self) {
        if self.status.is_none() {
            // SAFETY: plain syscalls on our own child, not reaped yet.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            self.kill_group();
            let _ = self.wait();
        }
    }

    /// Kills the child's process group. Only while the child is not
    /// reaped: its pid (the group's id) cannot have been given to another
    /// process.
    fn kill_group(&self) {
        if self.group && self.status.is_none() {
            // SAFETY: a plain syscall on our own child's group.
            unsafe { libc::kill(-self.pid, libc::SIGKILL) };
        }
    }

    /// Whether the child has exited, without reaping it.
    fn has_exited(&self) -> bool {
        if self.status.is_some() {
            return true;
        }
        // SAFETY: a zeroed siginfo is a valid out-parameter.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child; WNOWAIT leaves it unreaped.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: waitid filled `info` (si_pid stays 0 when nothing exited).
        r == 0 && unsafe { info.si_pid() } == self.pid
    }

    fn wait(&mut self) -> io::Result<i32> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        self.kill_group_if_exited();
        let status = wait_status(self.pid)?;
        self.status = Some(status);
        Ok(status)
    }

    /// Kills what is left of the group once the child has exited, before
    /// it is reaped (see [`Child::kill_group`]).
    fn kill_group_if_exited(&self) {
        if self.group {
            // Block until the child exits, leaving it unreaped.
            // SAFETY: a zeroed siginfo is a valid out-parameter.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: waitid on our own child; WNOWAIT leaves it unreaped.
                let r = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        self.pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if r == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            self.kill_group();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.kill();
    }
}

fn write_id_maps(pid: libc::pid_t, is_root: bool) -> Result<(), RuntimeError> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let write = |name: &str, content: &str| {
        std::fs::write(proc.join(name), content)
            .map_err(prep(format!("writing /proc/{pid}/{name}")))
    };
    if is_root {
        // Identity maps of every id this process has: all of them on the
        // host, the subordinate ranges in a rootless namespace.
        write("uid_map", &identity_map("/proc/self/uid_map"))?;
        write("gid_map", &identity_map("/proc/self/gid_map"))?;
    } else {
        // TODO: newuidmap/newgidmap with the subordinate ranges; a
        // single-id map cannot chown to other ids.
        // SAFETY: no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        write("setgroups", "deny")?;
        write("uid_map", &format!("0 {uid} 1\n"))?;
        write("gid_map", &format!("0 {gid} 1\n"))?;
    }
    Ok(())
}

/// An id map that maps the inside ids of the map in `path` to themselves
/// (`0 0 4294967295` in the initial namespace).
fn identity_map(path: &str) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = String::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let [inside, _, count] = f[..] {
            out.push_str(&format!("{inside} {inside} {count}\n"));
        }
    }
    if out.is_empty() {
        out.push_str("0 0 4294967295\n");
    }
    out
}
