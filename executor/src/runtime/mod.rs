//! The RUN sandboxes: the built-in one ([`BuiltinRuntime`]) and external
//! OCI runtimes ([`OciRuntime`]: runc, crun; see `oci.rs`).
//!
//! Both share the host-side preparation (`prepare`): the request is
//! checked, the user resolved through the rootfs's passwd and group files,
//! hosts and resolv.conf written to a per-run scratch directory, the
//! overlay lowers listed (a layer directory named twice is kept once),
//! every mount target resolved inside the rootfs (`Planned` mounts:
//! `/proc`, `/dev`, `/sys`, `/etc/resolv.conf`, `/etc/hosts`, the extra
//! [`Mount`]s by depth), the overlays of [`Mount::Layers`] views planned,
//! and the mount stubs to remove afterwards listed. Both then run a cloned
//! child (`spawn`) that executes the ops of `child.rs` and `execve`s: the
//! command itself for the built-in runtime, `runc`/`crun run` for an OCI
//! runtime.
//!
//! [`BuiltinRuntime`] runs one process the way BuildKit's runc executor
//! does, without any daemon or external binary:
//!
//! 1. The host side prepares everything the child needs (paths, mount
//!    plan, resolved user, argv/env) so that the child never allocates.
//! 2. A raw `clone` makes the child in new user, mount, pid, ipc, uts (and
//!    for [`NetworkMode::None`] net) namespaces; the host side writes the
//!    identity id map (`0 0 4294967295` as root, a single-id map
//!    otherwise) and lets it go.
//! 3. The child (pid 1 of its pid namespace) makes `/` private, mounts the
//!    overlay (`lowerdir+` per layer through `fsconfig`, falling back to
//!    `lowerdir=`; always `userxattr`), `/proc` (falling back to a bind of
//!    the host's), a tmpfs `/dev` with the usual nodes, devpts, shm and
//!    mqueue, `/sys` read-only (fresh, or a read-only bind), `/etc/hosts`
//!    and `/etc/resolv.conf` (read-only binds of files outside the rootfs),
//!    the extra [`Mount`]s (a [`Mount::Secret`] is written into a tmpfs
//!    mounted in this mount namespace only, then bound read-only),
//!    Docker's masked and read-only paths and the rlimits (`policy.rs`),
//!    then `pivot_root` (falling back to `MS_MOVE` +
//!    `chroot`), sets the hostname, brings `lo` up in a new netns,
//!    creates and enters the working directory, drops the capability
//!    bounding set to Docker's default 14, switches to the user, sets
//!    `no_new_privs`, installs Docker's default seccomp profile (see
//!    `seccomp.rs`) and `execve`s.
//! 4. The host side collects the combined output, waits, and removes the
//!    mount stubs it created from the upper directory (as BuildKit's
//!    `MountStubsCleaner` does, restoring the parent's times), so
//!    `/etc` stays as a copied-up directory and `RUN --mount` targets leave
//!    no trace. `/dev`, `/proc` and `/sys` created for a base lacking them
//!    stay (empty, 0755), as with BuildKit.
//!
//! The upper directory then holds the step's changes in overlay format
//! (whiteouts are 0/0 character devices, opaque directories carry
//! `user.overlay.opaque=y`), ready for [`crate::diff`].

mod child;
mod cleanup;
mod files;
mod oci;
mod policy;
mod resolve;
mod seccomp;
mod user;

use crate::stack::{LayerStack, SourceTree};
use child::{ChildPlan, Op};
use resolve::Target;
use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

pub use cleanup::{abort_runs, sweep_stale};
pub use oci::OciRuntime;

/// The process a RUN step executes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in the `PATH` of `env` (or the default
    /// `PATH`) inside the rootfs unless it contains a `/`.
    pub args: Vec<String>,
    /// The environment, `KEY=value`. `HOME` is added from the user's
    /// passwd entry (or `/`) when missing, as runc does.
    pub env: Vec<String>,
    /// The working directory (absolute); created (0755, root) if missing.
    pub cwd: String,
    /// `""` (root), `name`, `uid`, `name:group` or `uid:gid`; names are
    /// resolved through the rootfs's `/etc/passwd` and `/etc/group`, and
    /// supplementary groups come from `/etc/group` (runc's rules).
    pub user: String,
    /// The hostname, e.g. `buildkitsandbox`.
    pub hostname: String,
    /// The network namespace.
    pub network: NetworkMode,
    /// The sandbox's privileges.
    pub security: SecurityMode,
}

/// How much a RUN step may do (`RUN --security`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityMode {
    /// Docker's default capabilities, `no_new_privs` and the seccomp filter.
    #[default]
    Sandbox,
    /// Every capability and no seccomp filter (`--security=insecure`,
    /// which the build must allow with `--allow security.insecure`).
    Insecure,
}

/// The network a RUN step sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Share the host's network namespace.
    Host,
    /// A new, empty network namespace with `lo` up.
    None,
}

/// An extra mount inside the rootfs (`RUN --mount`). Its `Debug` output
/// shows a secret's length, never its bytes.
#[derive(Clone, PartialEq, Eq)]
pub enum Mount {
    /// A (recursive) bind mount of a host path.
    Bind {
        /// The host path (file or directory).
        source: PathBuf,
        /// The absolute path inside the rootfs.
        target: String,
        /// Mount it read-only.
        readonly: bool,
    },
    /// A fresh tmpfs (mode 1777).
    Tmpfs {
        /// The absolute path inside the rootfs.
        target: String,
        /// Its size limit in bytes (the kernel's default when `None`).
        size: Option<u64>,
    },
    /// A secret file (`RUN --mount=type=secret`), read-only, `nosuid`,
    /// `nodev` and `noexec`. Its bytes are written only into a tmpfs
    /// mounted in the step's own mount namespace (see [`Runtime::run`]), so
    /// they are on no disk and gone with the step, even if kiln is killed.
    Secret {
        /// The content.
        data: Vec<u8>,
        /// The absolute path inside the rootfs.
        target: String,
        /// The file's mode (the umask does not apply).
        mode: u32,
        /// The file's owner.
        uid: u32,
        /// The file's group.
        gid: u32,
    },
    /// A path of another filesystem given as layers (`RUN
    /// --mount=type=bind,from=stage`): an overlay of `lower` with a
    /// throwaway upper directory, so writes (when not `readonly`) are
    /// discarded after the step.
    Layers {
        /// The source filesystem.
        lower: LayerStack,
        /// The path inside it (symlinks are resolved inside `lower`).
        source: String,
        /// The absolute path inside the rootfs.
        target: String,
        /// Mount it read-only.
        readonly: bool,
    },
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mount::Bind {
                source,
                target,
                readonly,
            } => f
                .debug_struct("Bind")
                .field("source", source)
                .field("target", target)
                .field("readonly", readonly)
                .finish(),
            Mount::Tmpfs { target, size } => f
                .debug_struct("Tmpfs")
                .field("target", target)
                .field("size", size)
                .finish(),
            Mount::Secret {
                data,
                target,
                mode,
                uid,
                gid,
            } => f
                .debug_struct("Secret")
                .field("data", &format_args!("<{} bytes>", data.len()))
                .field("target", target)
                .field("mode", &format_args!("{mode:o}"))
                .field("uid", uid)
                .field("gid", gid)
                .finish(),
            Mount::Layers {
                lower,
                source,
                target,
                readonly,
            } => f
                .debug_struct("Layers")
                .field("lower", lower)
                .field("source", source)
                .field("target", target)
                .field("readonly", readonly)
                .finish(),
        }
    }
}

impl Mount {
    fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
            | Mount::Secret { target, .. }
            | Mount::Layers { target, .. } => target,
        }
    }
}

/// One RUN execution.
#[derive(Debug)]
pub struct RunRequest<'a> {
    /// The read-only layers (empty for scratch).
    pub lower: &'a LayerStack,
    /// An empty directory that receives the changes (becomes the layer).
    /// Its mode and owner are set from the top lower layer's root (0755
    /// root for scratch): it is the merged root directory.
    pub upper: &'a Path,
    /// An empty overlay work directory on the same filesystem as `upper`.
    pub work: &'a Path,
    /// What to run.
    pub process: ProcessSpec,
    /// Extra mounts; they leave no trace in `upper`.
    pub mounts: Vec<Mount>,
    /// Receives the process's combined output as it is read, in order,
    /// while the process runs (for live progress displays). It does not
    /// change what [`RunOutput::output`] keeps.
    pub output: Option<OutputSink<'a>>,
}

/// A callback that receives a running process's output, chunk by chunk,
/// in the order it was written (see [`RunRequest::output`]). Called on the
/// thread that runs [`Runtime::run`]; it should be cheap.
#[derive(Clone, Copy)]
pub struct OutputSink<'a>(pub &'a (dyn Fn(&[u8]) + Sync));

impl OutputSink<'_> {
    /// Passes one chunk to the callback.
    pub fn write(&self, data: &[u8]) {
        (self.0)(data)
    }
}

impl std::fmt::Debug for OutputSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputSink(..)")
    }
}

/// What a finished process left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit code, or 128 + the signal number.
    pub status: i32,
    /// Combined stdout and stderr, the last 64 KiB.
    pub output: Vec<u8>,
    /// Things the user should know about how the step ran (e.g. that
    /// overlayfs was refused and copy snapshots are used from now on).
    pub notes: Vec<String>,
}

/// How much output [`RunOutput::output`] keeps.
pub const OUTPUT_LIMIT: usize = 64 * 1024;

/// Why a process could not be run. The message names the failed step.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The request itself is unusable.
    #[error("invalid run request: {0}")]
    Invalid(String),
    /// Preparing on the host side failed.
    #[error("{step}: {error}")]
    Prepare {
        /// What was being done.
        step: String,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// The user could not be resolved in the rootfs.
    #[error("{0}")]
    User(String),
    /// A step of the sandbox setup failed in the child.
    #[error("{step}: {error}{detail}")]
    Setup {
        /// The step, e.g. `mounting overlay on /tmp/…/root`.
        step: String,
        /// The error.
        #[source]
        error: io::Error,
        /// Extra detail from the kernel (`fsconfig` log), may be empty.
        detail: String,
    },
    /// The command could not be executed.
    #[error("exec {program:?}: {error}")]
    Exec {
        /// `args[0]`.
        program: String,
        /// The error (`ENOENT`: not found in `PATH`).
        #[source]
        error: io::Error,
    },
    /// An external OCI runtime ([`OciRuntime`]) is missing or failed; the
    /// message carries what it reported.
    #[error("OCI runtime {runtime}: {message}")]
    Oci {
        /// The runtime as named by the caller, e.g. `runc`.
        runtime: String,
        /// What went wrong, with the runtime's own error messages.
        message: String,
    },
}

/// Runs RUN steps.
pub trait Runtime: Send + Sync {
    /// Runs `req.process` on the overlay of `req.lower` + `req.upper` and
    /// waits for it. A non-zero exit is not an error.
    ///
    /// # Errors
    /// [`RuntimeError`] when the sandbox cannot be set up or the command
    /// cannot be executed.
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError>;
}

/// The built-in namespace sandbox (see the module docs). Needs a kernel
/// that lets this process create user namespaces (≥ 5.11 for overlay in a
/// user namespace; ≥ 6.8 for `lowerdir+`, older kernels use `lowerdir=`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinRuntime;

impl Runtime for BuiltinRuntime {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        with_snapshot_fallback(|copy| run(req, copy))
    }
}

/// Docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
/// KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT,
/// MKNOD, AUDIT_WRITE, SETFCAP.
const DEFAULT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn prep(step: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let step = step.into();
    move |error| RuntimeError::Prepare { step, error }
}

fn cstr(s: impl AsRef<[u8]>) -> Result<CString, RuntimeError> {
    let s = s.as_ref();
    CString::new(s).map_err(|_| {
        RuntimeError::Invalid(format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(s)
        ))
    })
}

fn cpath(p: &Path) -> Result<CString, RuntimeError> {
    cstr(p.as_os_str().as_bytes())
}

/// A per-run scratch directory outside the rootfs (mount point, empty
/// lower, hosts, resolv.conf; an OCI runtime's bundle and state), 0700
/// (only its owner can reach anything in it); locked and registered for
/// [`cleanup`] while it lives, removed on drop.
struct Scratch {
    dir: PathBuf,
    guard: Option<cleanup::DirGuard>,
}

impl Scratch {
    fn new() -> Result<Scratch, RuntimeError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        let base = std::env::temp_dir();
        SWEPT.call_once(|| {
            cleanup::sweep_stale(&base);
        });
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = base.join(format!(
                "{}{}-{n}-{nanos:x}",
                cleanup::PREFIX,
                std::process::id()
            ));
            // Private from the start: an OCI bundle's config.json holds the
            // step's environment, secrets with `env=` included.
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let mut scratch = Scratch { dir, guard: None };
                    let what = || format!("creating {}", scratch.dir.display());
                    scratch.guard =
                        Some(cleanup::DirGuard::new(&scratch.dir).map_err(prep(what()))?);
                    // The umask may have taken more than the group's and
                    // others' bits.
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&scratch.dir, std::fs::Permissions::from_mode(0o700))
                        .map_err(prep(what()))?;
                    return Ok(scratch);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(prep(format!("creating {}", dir.display()))(e)),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.guard = None;
    }
}

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

/// What the stub cleaner removes after the run: paths relative to the
/// root, deepest first per mount target.
fn stub_paths(target: &Target) -> Vec<String> {
    (target.existing + 1..=target.comps.len())
        .rev()
        .map(|i| target.comps[..i].join("/"))
        .collect()
}

/// What kind of mount point a target needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
}

/// Plans the ops creating the missing part of `target` below `root`.
fn create_stub(
    ops: &mut Vec<(String, Op)>,
    root: &Path,
    target: &Target,
    kind: Kind,
) -> Result<CString, RuntimeError> {
    for i in target.existing..target.comps.len() {
        let p = root.join(target.comps[..=i].join("/"));
        let last = i + 1 == target.comps.len();
        let what = format!("creating mount point {}", p.display());
        if last && kind == Kind::File {
            ops.push((what, Op::Touch { path: cpath(&p)? }));
        } else {
            ops.push((
                what,
                Op::Mkdir {
                    path: cpath(&p)?,
                    mode: 0o755,
                },
            ));
        }
    }
    cpath(&root.join(target.comps.join("/")))
}

/// Plans an overlay of `lower` (with a throwaway upper directory) at a
/// mount point in the scratch directory, outside the rootfs; returns it.
fn layers_view(
    ops: &mut Vec<(String, Op)>,
    scratch: &Path,
    index: usize,
    lower: &LayerStack,
    copy: bool,
) -> Result<PathBuf, RuntimeError> {
    let base = scratch.join(format!("mount-{index}"));
    if copy {
        let view = base.join("view");
        crate::stack::materialize(lower, &view).map_err(prep(format!(
            "copying a mount source to {}",
            view.display()
        )))?;
        return Ok(view);
    }
    let (view, upper, work, empty) = (
        base.join("view"),
        base.join("upper"),
        base.join("work"),
        base.join("empty"),
    );
    for d in [&view, &upper, &work, &empty] {
        std::fs::create_dir_all(d).map_err(prep(format!("creating {}", d.display())))?;
    }
    let lowers: Vec<PathBuf> = lower
        .layers()
        .iter()
        .map(|l| absolute(l))
        .collect::<Result<_, _>>()?;
    ops.push(overlay_op(&lowers, &empty, &upper, &work, &view, false)?);
    Ok(view)
}

/// The op mounting an overlay of `lowers` (bottom first; `empty` when
/// there are none) with `upper` and `work` on `target`.
fn overlay_op(
    lowers: &[PathBuf],
    empty: &Path,
    upper: &Path,
    work: &Path,
    target: &Path,
    force_legacy: bool,
) -> Result<(String, Op), RuntimeError> {
    let lowers: Vec<&Path> = if lowers.is_empty() {
        vec![empty]
    } else {
        // Layers with equal content share one directory, so a stack can
        // name the same directory twice; overlayfs refuses that (ELOOP).
        // Keeping only the topmost occurrence gives the same merged view:
        // it shadows every entry of the lower copies.
        let mut seen = std::collections::HashSet::new();
        lowers
            .iter()
            .rev()
            .map(PathBuf::as_path)
            .filter(|p| seen.insert(*p))
            .collect()
    };
    for p in lowers.iter().copied().chain([upper, work]) {
        check_overlay_path(p)?;
    }
    let legacy = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":"),
        upper.display(),
        work.display()
    );
    Ok((
        format!("{OVERLAY_STEP} {}", target.display()),
        Op::Overlay {
            lowers: lowers.iter().map(|p| cpath(p)).collect::<Result<_, _>>()?,
            upper: cpath(upper)?,
            work: cpath(work)?,
            target: cpath(target)?,
            legacy: (legacy.len() < 4000).then(|| cstr(&legacy)).transpose()?,
            force_legacy,
        },
    ))
}

fn absolute(p: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(p).map_err(prep(format!("resolving {}", p.display())))
}

fn check_overlay_path(p: &Path) -> Result<(), RuntimeError> {
    let b = p.as_os_str().as_bytes();
    if b.contains(&b',') || b.contains(&b':') || b.contains(&b'\\') {
        // Only the legacy `lowerdir=` string needs these escaped; with
        // `lowerdir+` they are fine. We refuse them for both for now.
        return Err(RuntimeError::Invalid(format!(
            "overlay path {} contains ',', ':' or '\\'",
            p.display()
        )));
    }
    Ok(())
}

/// What a [`Planned`] mount is.
#[derive(Debug)]
enum What {
    /// A fresh proc.
    Proc,
    /// A tmpfs `/dev` with the usual nodes, devpts, shm and mqueue.
    Dev,
    /// A read-only sysfs.
    Sys,
    /// A bind mount of a host path (outside the rootfs).
    Bind {
        src: PathBuf,
        recursive: bool,
        readonly: bool,
    },
    /// A tmpfs with these options (`mode=1777[,size=N]`).
    Tmpfs { data: String },
    /// A read-only bind of a secret file in the secrets tmpfs (`nosuid`,
    /// `nodev`, `noexec`), which exists only in the mount namespace of the
    /// process (or of the OCI runtime).
    Secret { src: PathBuf },
}

/// One mount of the sandbox, in mount order, with its target resolved
/// inside the rootfs.
#[derive(Debug)]
struct Planned {
    /// What the error message calls it, e.g. `bind-mounting /etc/hosts`.
    desc: String,
    target: Target,
    kind: Kind,
    what: What,
}

impl Planned {
    /// The resolved absolute path inside the rootfs.
    fn dest(&self) -> String {
        format!("/{}", self.target.comps.join("/"))
    }
}

/// The host-side preparation both runtimes share: the checked request,
/// the scratch directory with the rootfs mount point, hosts and
/// resolv.conf, the resolved user, the overlay ops, and the mounts with
/// their resolved targets and the stubs to remove afterwards.
struct Prepared {
    scratch: Scratch,
    /// The mount point of the rootfs overlay (`<scratch>/rootfs`).
    root: PathBuf,
    /// The absolute upper directory.
    upper: PathBuf,
    user: user::User,
    /// The environment, with `HOME` added when missing.
    env: Vec<String>,
    /// Ops for the process's private mount namespace: the umask, `/`
    /// made private, the rootfs overlay and the overlays of
    /// [`Mount::Layers`] views (outside the rootfs).
    ops: Vec<(String, Op)>,
    /// `/proc`, `/dev`, `/sys`, `/etc/resolv.conf`, `/etc/hosts`, then the
    /// extra mounts sorted by depth (parents first).
    mounts: Vec<Planned>,
    /// Mount stubs removed from the upper directory afterwards.
    stubs: Vec<String>,
    is_root: bool,
    forced: Forced,
    /// Copy snapshots: the plain copy of the lower layers the process
    /// changes (mounted on `root`), diffed into `upper` afterwards.
    copy: Option<PathBuf>,
    /// The secrets tmpfs (`<scratch>/secrets`), when `ops` mount it.
    secrets: Option<PathBuf>,
}

/// Checks the request and prepares what both runtimes need (see
/// [`Prepared`]).
fn prepare(req: &RunRequest<'_>, copy: bool) -> Result<Prepared, RuntimeError> {
    let spec = &req.process;
    if spec.args.is_empty() {
        return Err(RuntimeError::Invalid("empty argv".into()));
    }
    if !spec.cwd.starts_with('/') {
        return Err(RuntimeError::Invalid(format!(
            "working directory {:?} is not absolute",
            spec.cwd
        )));
    }
    if spec.hostname.len() > 64 {
        return Err(RuntimeError::Invalid(format!(
            "hostname {:?} is longer than 64 bytes",
            spec.hostname
        )));
    }
    let upper = absolute(req.upper)?;
    let work = absolute(req.work)?;
    let lowers: Vec<PathBuf> = req
        .lower
        .layers()
        .iter()
        .map(|l| absolute(l))
        .collect::<Result<_, _>>()?;
    let stack = req.lower;
    let is_root = crate::privileges::is_root();
    let forced = Forced::from_env();

    // The merged root directory is the upper directory: give it the
    // lower root's mode and owner (0755 root for scratch).
    let (root_mode, root_uid, root_gid) = match lowers.last() {
        Some(top) => {
            let md = std::fs::metadata(top).map_err(prep(format!("reading {}", top.display())))?;
            (md.mode() & 0o7777, md.uid(), md.gid())
        }
        None => (0o755, 0, 0),
    };
    if is_root {
        std::os::unix::fs::chown(&upper, Some(root_uid), Some(root_gid))
            .map_err(prep(format!("chown {}", upper.display())))?;
    }
    crate::file_meta::chmod(&upper, root_mode)
        .map_err(prep(format!("chmod {}", upper.display())))?;

    let user = user::resolve(stack, &spec.user)?;
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }

    let scratch = Scratch::new()?;
    let root = scratch.dir.join("rootfs");
    std::fs::create_dir(&root).map_err(prep(format!("creating {}", root.display())))?;
    let hosts = scratch.dir.join("hosts");
    std::fs::write(&hosts, files::hosts(&spec.hostname))
        .map_err(prep(format!("writing {}", hosts.display())))?;
    let resolv = scratch.dir.join("resolv.conf");
    std::fs::write(&resolv, files::resolv_conf(spec.network))
        .map_err(prep(format!("writing {}", resolv.display())))?;

    // ---- the overlays
    let mut ops: Vec<(String, Op)> = Vec::new();
    ops.push(("setting the umask".into(), Op::Umask(0o022)));
    ops.push((
        "making / private".into(),
        Op::Mount {
            src: None,
            target: cstr("/")?,
            fstype: None,
            flags: libc::MS_REC | libc::MS_PRIVATE,
            data: None,
        },
    ));
    let empty = scratch.dir.join("empty");
    std::fs::create_dir(&empty).map_err(prep(format!("creating {}", empty.display())))?;
    let copy_dir = if copy {
        let dir = work.join("rootfs");
        crate::stack::materialize(stack, &dir)
            .map_err(prep(format!("copying the rootfs to {}", dir.display())))?;
        if is_root {
            std::os::unix::fs::chown(&dir, Some(root_uid), Some(root_gid))
                .map_err(prep(format!("chown {}", dir.display())))?;
        }
        crate::file_meta::chmod(&dir, root_mode)
            .map_err(prep(format!("chmod {}", dir.display())))?;
        ops.push((
            format!("bind-mounting the rootfs copy on {}", root.display()),
            Op::Bind {
                src: cpath(&dir)?,
                target: cpath(&root)?,
                recursive: false,
                readonly: false,
            },
        ));
        Some(dir)
    } else {
        ops.push(overlay_op(
            &lowers,
            &empty,
            &upper,
            &work,
            &root,
            forced.overlay,
        )?);
        None
    };

    // ---- the mounts
    let mut mounts = Vec::new();
    for (name, what) in [
        ("/proc", What::Proc),
        ("/dev", What::Dev),
        ("/sys", What::Sys),
    ] {
        mounts.push(Planned {
            desc: format!("mounting {name}"),
            target: resolve::resolve(stack, name)?,
            kind: Kind::Dir,
            what,
        });
    }
    // /etc/resolv.conf, /etc/hosts, then the extra mounts (sorted by depth,
    // parents first); their stubs are removed afterwards.
    let mut stubs: Vec<String> = Vec::new();
    for (name, src) in [("/etc/resolv.conf", &resolv), ("/etc/hosts", &hosts)] {
        let target = resolve::resolve(stack, name)?;
        stubs.extend(stub_paths(&target));
        mounts.push(Planned {
            desc: format!("bind-mounting {name}"),
            target,
            kind: Kind::File,
            what: What::Bind {
                src: src.clone(),
                recursive: false,
                readonly: true,
            },
        });
    }
    let mut extra: Vec<(&Mount, Target)> = Vec::new();
    for m in &req.mounts {
        if !m.target().starts_with('/') {
            return Err(RuntimeError::Invalid(format!(
                "mount target {:?} is not absolute",
                m.target()
            )));
        }
        let t = resolve::resolve(stack, m.target())?;
        if t.comps.is_empty() {
            return Err(RuntimeError::Invalid(format!(
                "mount target {:?} is the root",
                m.target()
            )));
        }
        extra.push((m, t));
    }
    extra.sort_by_key(|(_, t)| t.comps.len());
    let secrets = scratch.dir.join("secrets");
    let mut secret_count = 0usize;
    for (i, (m, target)) in extra.into_iter().enumerate() {
        stubs.extend(stub_paths(&target));
        let planned = match m {
            Mount::Bind {
                source,
                target: name,
                readonly,
            } => {
                let md = std::fs::metadata(source)
                    .map_err(prep(format!("reading bind source {}", source.display())))?;
                Planned {
                    desc: format!("bind-mounting {} on {name}", source.display()),
                    target,
                    kind: if md.is_dir() { Kind::Dir } else { Kind::File },
                    what: What::Bind {
                        src: absolute(source)?,
                        recursive: true,
                        readonly: *readonly,
                    },
                }
            }
            Mount::Secret {
                data,
                target: name,
                mode,
                uid,
                gid,
            } => {
                if secret_count == 0 {
                    secret_tmpfs(&mut ops, &secrets)?;
                }
                let src = secrets.join(format!("secret-{secret_count}"));
                secret_count += 1;
                ops.push((
                    format!("writing the secret for {name}"),
                    Op::WriteFile {
                        path: cpath(&src)?,
                        data: data.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    },
                ));
                Planned {
                    desc: format!("bind-mounting a secret on {name}"),
                    target,
                    kind: Kind::File,
                    what: What::Secret { src },
                }
            }
            Mount::Tmpfs { target: name, size } => {
                let mut data = "mode=1777".to_string();
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                Planned {
                    desc: format!("mounting a tmpfs on {name}"),
                    target,
                    kind: Kind::Dir,
                    what: What::Tmpfs { data },
                }
            }
            Mount::Layers {
                lower,
                source,
                target: name,
                readonly,
            } => {
                let view = layers_view(&mut ops, &scratch.dir, i, lower, copy)?;
                let src = resolve::resolve(lower, &format!("/{source}"))?;
                if src.existing < src.comps.len() {
                    return Err(RuntimeError::Invalid(format!(
                        "bind mount source {source:?} does not exist"
                    )));
                }
                let rel = src.comps.join("/");
                let kind = match lower.entry(&rel) {
                    Ok(Some(e)) if !e.metadata.is_dir() => Kind::File,
                    _ => Kind::Dir,
                };
                Planned {
                    desc: format!("bind-mounting {source} on {name}"),
                    target,
                    kind,
                    what: What::Bind {
                        src: view.join(&rel),
                        recursive: false,
                        readonly: *readonly,
                    },
                }
            }
        };
        mounts.push(planned);
    }
    Ok(Prepared {
        scratch,
        root,
        upper,
        user,
        env,
        ops,
        mounts,
        stubs,
        is_root,
        forced,
        copy: copy_dir,
        secrets: (secret_count > 0).then_some(secrets),
    })
}

/// Plans the tmpfs holding a step's secret files at `dir` (created here,
/// empty): mounted by the child in its private mount namespace, so only
/// that namespace ever sees the files, and they go with it.
fn secret_tmpfs(ops: &mut Vec<(String, Op)>, dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(prep(format!("creating {}", dir.display())))?;
    ops.push((
        format!("mounting the secrets tmpfs on {}", dir.display()),
        Op::Mount {
            src: Some(cstr("secrets")?),
            target: cpath(dir)?,
            fstype: Some(cstr("tmpfs")?),
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: Some(cstr("mode=0700")?),
        },
    ));
    Ok(())
}

/// The step name of the rootfs overlay mount (the copy fallback looks for
/// it).
const OVERLAY_STEP: &str = "mounting overlay on";

/// After the process: removes the mount stubs and, with copy snapshots,
/// writes the changes of the copy into the upper directory.
fn finish(p: &Prepared, lower: &LayerStack) -> Result<(), RuntimeError> {
    match &p.copy {
        None => remove_stubs(&p.upper, &p.stubs),
        Some(dir) => {
            remove_stubs(dir, &p.stubs)?;
            crate::walkdiff::walk_diff(lower, dir, &p.upper)
                .map_err(prep(format!("diffing {}", dir.display())))?;
            std::fs::remove_dir_all(dir).map_err(prep(format!("removing {}", dir.display())))
        }
    }
}

/// Whether RUN steps use copy snapshots: forced with
/// `KILN_RUNTIME_FALLBACKS=copy`, or after overlayfs was refused once.
static COPY_SNAPSHOTS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

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

/// Runs `run` with overlay snapshots unless they are known not to work;
/// when the kernel refuses the rootfs overlay (an upper directory on
/// overlayfs, say), switches to copy snapshots for this and every later
/// step and says so in [`RunOutput::notes`].
fn with_snapshot_fallback(
    run: impl Fn(bool) -> Result<RunOutput, RuntimeError>,
) -> Result<RunOutput, RuntimeError> {
    use std::sync::atomic::Ordering;
    let copy = COPY_SNAPSHOTS.load(Ordering::Relaxed) || Forced::from_env().copy;
    match run(copy) {
        Err(RuntimeError::Setup {
            step,
            error,
            detail,
        }) if !copy && step.starts_with(OVERLAY_STEP) && overlay_refused(&error) => {
            // Steps running at once may all get here; one says it.
            let first = !COPY_SNAPSHOTS.swap(true, Ordering::Relaxed);
            let mut out = run(true)?;
            if first {
                out.notes.push(format!(
                "overlayfs cannot be used here ({step}: {error}{detail}): RUN steps use copy snapshots from now on"
                ));
            }
            Ok(out)
        }
        other => other,
    }
}

/// Plans the ops of the built-in runtime for one mount (its stub first).
fn builtin_mount_ops(
    ops: &mut Vec<(String, Op)>,
    p: &Prepared,
    m: &Planned,
) -> Result<(), RuntimeError> {
    let dst = create_stub(ops, &p.root, &m.target, m.kind)?;
    let nse = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    match &m.what {
        What::Proc => ops.push((
            m.desc.clone(),
            Op::Proc {
                target: dst,
                force_bind: p.forced.proc,
            },
        )),
        What::Sys => ops.push((
            m.desc.clone(),
            Op::Sys {
                target: dst,
                force_bind: p.forced.sys,
            },
        )),
        What::Bind {
            src,
            recursive,
            readonly,
        } => ops.push((
            m.desc.clone(),
            Op::Bind {
                src: cpath(src)?,
                target: dst,
                recursive: *recursive,
                readonly: *readonly,
            },
        )),
        What::Secret { src } => ops.push((
            m.desc.clone(),
            Op::Bind {
                src: cpath(src)?,
                target: dst,
                recursive: false,
                readonly: true,
            },
        )),
        What::Tmpfs { data } => ops.push((
            m.desc.clone(),
            Op::Mount {
                src: Some(cstr("tmpfs")?),
                target: dst,
                fstype: Some(cstr("tmpfs")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV,
                data: Some(cstr(data)?),
            },
        )),
        What::Dev => {
            let dev = p.root.join(m.target.comps.join("/"));
            ops.push((
                "mounting a tmpfs on /dev".into(),
                Op::Mount {
                    src: Some(cstr("tmpfs")?),
                    target: dst,
                    fstype: Some(cstr("tmpfs")?),
                    flags: libc::MS_NOSUID | libc::MS_STRICTATIME,
                    data: Some(cstr("mode=755,size=65536k")?),
                },
            ));
            for node in ["null", "zero", "full", "random", "urandom", "tty"] {
                let path = cpath(&dev.join(node))?;
                ops.push((
                    format!("creating /dev/{node}"),
                    Op::Touch { path: path.clone() },
                ));
                let bind = Op::Bind {
                    src: cstr(format!("/dev/{node}"))?,
                    target: path,
                    recursive: false,
                    readonly: false,
                };
                // Some hosts (CI containers) have no /dev/tty.
                let bind = if node == "tty" {
                    Op::Optional(Box::new(bind))
                } else {
                    bind
                };
                ops.push((format!("bind-mounting /dev/{node}"), bind));
            }
            for (dir, mode) in [("pts", 0o755), ("shm", 0o1777), ("mqueue", 0o755)] {
                ops.push((
                    format!("creating /dev/{dir}"),
                    Op::Mkdir {
                        path: cpath(&dev.join(dir))?,
                        mode,
                    },
                ));
            }
            let devpts_opts = if p.is_root {
                "newinstance,ptmxmode=0666,mode=0620,gid=5"
            } else {
                "newinstance,ptmxmode=0666,mode=0620"
            };
            ops.push((
                "mounting devpts on /dev/pts".into(),
                Op::Mount {
                    src: Some(cstr("devpts")?),
                    target: cpath(&dev.join("pts"))?,
                    fstype: Some(cstr("devpts")?),
                    flags: libc::MS_NOSUID | libc::MS_NOEXEC,
                    data: Some(cstr(devpts_opts)?),
                },
            ));
            ops.push((
                "mounting a tmpfs on /dev/shm".into(),
                Op::Mount {
                    src: Some(cstr("shm")?),
                    target: cpath(&dev.join("shm"))?,
                    fstype: Some(cstr("tmpfs")?),
                    flags: nse,
                    data: Some(cstr("mode=1777,size=65536k")?),
                },
            ));
            ops.push((
                "mounting mqueue on /dev/mqueue".into(),
                Op::Optional(Box::new(Op::Mount {
                    src: Some(cstr("mqueue")?),
                    target: cpath(&dev.join("mqueue"))?,
                    fstype: Some(cstr("mqueue")?),
                    flags: nse,
                    data: None,
                })),
            ));
            for (name, to) in [
                ("ptmx", "pts/ptmx"),
                ("fd", "/proc/self/fd"),
                ("stdin", "/proc/self/fd/0"),
                ("stdout", "/proc/self/fd/1"),
                ("stderr", "/proc/self/fd/2"),
                ("core", "/proc/kcore"),
            ] {
                ops.push((
                    format!("creating /dev/{name}"),
                    Op::Symlink {
                        target: cstr(to)?,
                        link: cpath(&dev.join(name))?,
                    },
                ));
            }
        }
    }
    Ok(())
}

fn run(req: &RunRequest<'_>, copy: bool) -> Result<RunOutput, RuntimeError> {
    let mut p = prepare(req, copy)?;
    let spec = &req.process;
    let mut ops = std::mem::take(&mut p.ops);
    for m in &p.mounts {
        builtin_mount_ops(&mut ops, &p, m)?;
    }

    policy::hardening_ops(&mut ops, req.lower, &p.root, spec.security)?;

    // ---- into the rootfs
    ops.push((
        "pivot_root".into(),
        Op::Pivot {
            root: cpath(&p.root)?,
            force_move: p.forced.pivot,
        },
    ));
    ops.push((
        "setting the hostname".into(),
        Op::Hostname(files::hostname(&spec.hostname).as_bytes().to_vec()),
    ));
    if spec.network == NetworkMode::None {
        ops.push(("bringing up lo".into(), Op::LoUp));
    }
    let mut prefix = String::new();
    for c in spec.cwd.split('/').filter(|c| !c.is_empty() && *c != ".") {
        prefix.push('/');
        prefix.push_str(c);
        ops.push((
            format!("creating the working directory {prefix}"),
            Op::Mkdir {
                path: cstr(&prefix)?,
                mode: 0o755,
            },
        ));
    }
    ops.push((
        format!("changing to the working directory {}", spec.cwd),
        Op::Chdir(cstr(&spec.cwd)?),
    ));
    let last_cap: u32 = last_cap();
    let insecure = spec.security == SecurityMode::Insecure;
    let keep = if insecure {
        u64::MAX
    } else {
        DEFAULT_CAPS.iter().fold(0u64, |m, c| m | (1 << c))
    };
    ops.push((
        "dropping capabilities".into(),
        Op::DropBounding { keep, last_cap },
    ));
    let user = &p.user;
    ops.push((
        format!("switching to user {:?}", spec.user),
        Op::SetUser {
            uid: user.uid,
            gid: user.gid,
            groups: user.groups.clone(),
        },
    ));
    if !insecure {
        ops.push(("setting no_new_privs".into(), Op::NoNewPrivs));
        if let Some(filter) = seccomp::filter() {
            ops.push(("installing the seccomp filter".into(), Op::Seccomp(filter)));
        }
    }

    // ---- exec
    let program = &spec.args[0];
    let candidates: Vec<CString> = if program.contains('/') {
        vec![cstr(program)?]
    } else {
        let path = p
            .env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH);
        path.split(':')
            .map(|d| {
                let d = if d.is_empty() { "." } else { d };
                cstr(format!("{}/{program}", d.trim_end_matches('/')))
            })
            .collect::<Result<_, _>>()?
    };
    let argv: Vec<CString> = spec.args.iter().map(cstr).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = p.env.iter().map(cstr).collect::<Result<_, _>>()?;

    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if spec.network == NetworkMode::None {
        flags |= libc::CLONE_NEWNET;
    }
    let descs: Vec<String> = ops.iter().map(|(d, _)| d.clone()).collect();
    let done = spawn(
        ops.into_iter().map(|(_, op)| op).collect(),
        candidates,
        argv,
        envp,
        flags,
        Some(p.is_root),
        req.output,
    )?;
    if let Some(report) = &done.report {
        let _ = remove_stubs(&p.upper, &p.stubs);
        return Err(report_error(report, &descs, program));
    }
    finish(&p, req.lower)?;
    Ok(RunOutput {
        status: done.status,
        output: done.output,
        notes: Vec::new(),
    })
}

/// `/proc/sys/kernel/cap_last_cap` (40 when unreadable).
fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// A finished child of [`spawn`].
struct Spawned {
    /// The exit code, or 128 + the signal number.
    status: i32,
    /// The combined output, the last [`OUTPUT_LIMIT`] bytes.
    output: Vec<u8>,
    /// The child's failure report: (operation index, errno, detail).
    report: Option<(usize, i32, String)>,
}

/// Clones a child with `flags` (plus `SIGCHLD`) that runs `ops` (see
/// `child.rs`) and then `execve`s the first usable of `candidates`, with
/// stdin on `/dev/null` and stdout and stderr on one pipe; writes the
/// identity id maps first when `id_maps` is `Some(is_root)` (for a new
/// user namespace); collects the output (passing each chunk to `sink` as
/// it is read) and waits.
fn spawn(
    ops: Vec<Op>,
    candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    flags: libc::c_int,
    id_maps: Option<bool>,
    sink: Option<OutputSink<'_>>,
) -> Result<Spawned, RuntimeError> {
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

    // SAFETY: a fork-like clone (no new stack, no CLONE_VM). The child only
    // runs `child::run`, which makes raw syscalls on data prepared above and
    // never returns, allocates, or unwinds.
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
        return Err(prep("clone (new namespaces)")(io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the freshly cloned child; see above.
        unsafe { child::run(&plan) }
    }
    let pid = pid as libc::pid_t;
    drop(plan);
    drop(out_w);
    drop(err_w);
    drop(sync_r);
    drop(devnull);

    let mut child = Child { pid, reaped: false };
    let _running = cleanup::ChildGuard::new(pid);
    if let Some(is_root) = id_maps {
        if let Err(e) = write_id_maps(pid, is_root) {
            child.kill();
            return Err(e);
        }
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
    loop {
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
    let status = child.wait().map_err(prep("waiting for the process"))?;
    Ok(Spawned {
        status,
        output,
        report: child::parse_report(&report),
    })
}

/// The error of a child's failure report; index `descs.len()` is the
/// `execve` of `program`.
fn report_error(report: &(usize, i32, String), descs: &[String], program: &str) -> RuntimeError {
    let (step, errno, detail) = report;
    let error = io::Error::from_raw_os_error(*errno);
    if *step == descs.len() {
        return RuntimeError::Exec {
            program: program.to_string(),
            error,
        };
    }
    let step = descs
        .get(*step)
        .cloned()
        .unwrap_or_else(|| "redirecting stdin/stdout/stderr".to_string());
    let detail = if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    };
    RuntimeError::Setup {
        step,
        error,
        detail,
    }
}

/// Fallbacks forced through `KILN_RUNTIME_FALLBACKS` (a comma-separated
/// list of `overlay`, `proc`, `sys`, `pivot`, or `all`; and `copy` for copy
/// snapshots), to test them on a
/// host where the preferred way works.
#[derive(Debug, Default, Clone, Copy)]
struct Forced {
    /// `mount(2)` with `lowerdir=` instead of `fsconfig` + `lowerdir+`.
    overlay: bool,
    /// A bind of the host's /proc instead of a fresh proc.
    proc: bool,
    /// A read-only bind of the host's /sys instead of a fresh sysfs.
    sys: bool,
    /// `MS_MOVE` + `chroot` instead of `pivot_root`.
    pivot: bool,
    /// Copy snapshots instead of overlayfs.
    copy: bool,
}

impl Forced {
    fn from_env() -> Forced {
        let Ok(v) = std::env::var("KILN_RUNTIME_FALLBACKS") else {
            return Forced::default();
        };
        let has = |name: &str| v.split(',').any(|w| w.trim() == name || w.trim() == "all");
        Forced {
            overlay: has("overlay"),
            proc: has("proc"),
            sys: has("sys"),
            pivot: has("pivot"),
            // Not part of `all`: a different snapshotter, not a fallback
            // of one mount step.
            copy: v.split(',').any(|w| w.trim() == "copy"),
        }
    }
}

/// The child process; killed and reaped on drop unless waited for.
struct Child {
    pid: libc::pid_t,
    reaped: bool,
}

impl Child {
    fn kill(&mut self) {
        if !self.reaped {
            // SAFETY: plain syscalls on our own child.
            unsafe { libc::kill(self.pid, libc::SIGKILL) };
            let _ = self.wait();
        }
    }

    fn wait(&mut self) -> io::Result<i32> {
        let mut st = 0;
        loop {
            // SAFETY: st is a valid int.
            let r = unsafe { libc::waitpid(self.pid, &mut st, 0) };
            if r == self.pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        self.reaped = true;
        Ok(if libc::WIFEXITED(st) {
            libc::WEXITSTATUS(st)
        } else if libc::WIFSIGNALED(st) {
            128 + libc::WTERMSIG(st)
        } else {
            255
        })
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

/// BuildKit's `MountStubsCleaner`: removes each stub (deepest first) from
/// the upper directory if it is still an empty directory or an empty
/// regular file, keeping its parent's times.
fn remove_stubs(upper: &Path, stubs: &[String]) -> Result<(), RuntimeError> {
    for rel in stubs {
        // The run may have replaced a parent with a symlink to the host.
        let Some(p) = resolve::beneath(upper, rel) else {
            continue;
        };
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            let empty = std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                continue;
            }
        } else if !md.is_file() || md.len() != 0 {
            continue;
        }
        let parent = p.parent().unwrap_or(upper).to_path_buf();
        let pmd = std::fs::symlink_metadata(&parent)
            .map_err(prep(format!("reading {}", parent.display())))?;
        let removed = if md.is_dir() {
            std::fs::remove_dir(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(prep(format!("removing mount stub {}", p.display())))?;
        crate::file_meta::set_times(
            &parent,
            (pmd.atime(), pmd.atime_nsec()),
            (pmd.mtime(), pmd.mtime_nsec()),
        )
        .map_err(prep(format!("restoring the times of {}", parent.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Mount;

    #[test]
    fn a_secret_mount_debugs_without_its_bytes() {
        let m = Mount::Secret {
            data: b"hunter2".to_vec(),
            target: "/run/secrets/s".into(),
            mode: 0o400,
            uid: 0,
            gid: 0,
        };
        let shown = format!("{m:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("<7 bytes>") && shown.contains("/run/secrets/s"),
            "{shown}"
        );
    }
}
