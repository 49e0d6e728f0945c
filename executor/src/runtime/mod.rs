//! The built-in RUN sandbox.
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
//!    the extra [`Mount`]s, then `pivot_root` (falling back to `MS_MOVE` +
//!    `chroot`), sets the hostname, brings `lo` up in a new netns,
//!    creates and enters the working directory, drops the capability
//!    bounding set to Docker's default 14, switches to the user, sets
//!    `no_new_privs`, installs a small seccomp filter (see `seccomp.rs`)
//!    and `execve`s.
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
mod files;
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

/// An extra mount inside the rootfs (`RUN --mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Mount {
    fn target(&self) -> &str {
        match self {
            Mount::Bind { target, .. }
            | Mount::Tmpfs { target, .. }
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
}

/// What a finished process left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The exit code, or 128 + the signal number.
    pub status: i32,
    /// Combined stdout and stderr, the last 64 KiB.
    pub output: Vec<u8>,
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
        run(req)
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
/// lower, hosts, resolv.conf); removed on drop.
struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    fn new() -> Result<Scratch, RuntimeError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = base.join(format!("kiln-run-{}-{n}-{nanos:x}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let scratch = Scratch { dir };
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&scratch.dir, std::fs::Permissions::from_mode(0o711))
                        .map_err(prep(format!("creating {}", scratch.dir.display())))?;
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
#[derive(Clone, Copy, PartialEq, Eq)]
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
) -> Result<PathBuf, RuntimeError> {
    let base = scratch.join(format!("mount-{index}"));
    let (view, upper, work, empty) = (
        base.join("view"),
        base.join("upper"),
        base.join("work"),
        base.join("empty"),
    );
    for d in [&view, &upper, &work, &empty] {
        std::fs::create_dir_all(d).map_err(prep(format!("creating {}", d.display())))?;
    }
    let mut seen = std::collections::HashSet::new();
    let mut lowers: Vec<PathBuf> = lower
        .layers()
        .iter()
        .rev()
        .map(|l| absolute(l))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|p| seen.insert(p.clone()))
        .collect();
    if lowers.is_empty() {
        lowers.push(empty);
    }
    for p in lowers.iter().chain([&upper, &work]) {
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
    ops.push((
        format!("mounting overlay on {}", view.display()),
        Op::Overlay {
            lowers: lowers.iter().map(|p| cpath(p)).collect::<Result<_, _>>()?,
            upper: cpath(&upper)?,
            work: cpath(&work)?,
            target: cpath(&view)?,
            legacy: (legacy.len() < 4000).then(|| cstr(&legacy)).transpose()?,
            force_legacy: false,
        },
    ));
    Ok(view)
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

fn run(req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
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
    let upper = absolute(req.upper)?;
    let work = absolute(req.work)?;
    let lowers: Vec<PathBuf> = req
        .lower
        .layers()
        .iter()
        .map(|l| absolute(l))
        .collect::<Result<_, _>>()?;
    let stack = req.lower;
    let is_root = crate::sys::is_root();
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
    crate::sys::chmod(&upper, root_mode).map_err(prep(format!("chmod {}", upper.display())))?;

    let user = user::resolve(stack, &spec.user)?;

    let scratch = Scratch::new()?;
    let root = scratch.dir.join("root");
    std::fs::create_dir(&root).map_err(prep(format!("creating {}", root.display())))?;
    let hosts = scratch.dir.join("hosts");
    std::fs::write(&hosts, files::hosts(&spec.hostname))
        .map_err(prep(format!("writing {}", hosts.display())))?;
    let resolv = scratch.dir.join("resolv.conf");
    std::fs::write(&resolv, files::resolv_conf(spec.network))
        .map_err(prep(format!("writing {}", resolv.display())))?;

    // ---- the mount plan
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
    let overlay_lowers: Vec<PathBuf> = if lowers.is_empty() {
        let empty = scratch.dir.join("empty");
        std::fs::create_dir(&empty).map_err(prep(format!("creating {}", empty.display())))?;
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
            .filter(|p| seen.insert(p.as_path()))
            .cloned()
            .collect()
    };
    for p in overlay_lowers.iter().chain([&upper, &work]) {
        check_overlay_path(p)?;
    }
    let legacy = format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        overlay_lowers
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":"),
        upper.display(),
        work.display()
    );
    ops.push((
        format!("mounting overlay on {}", root.display()),
        Op::Overlay {
            lowers: overlay_lowers
                .iter()
                .map(|p| cpath(p))
                .collect::<Result<_, _>>()?,
            upper: cpath(&upper)?,
            work: cpath(&work)?,
            target: cpath(&root)?,
            legacy: (legacy.len() < 4000).then(|| cstr(&legacy)).transpose()?,
            force_legacy: forced.overlay,
        },
    ));

    let nse = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // /proc
    let t = resolve::resolve(stack, "/proc")?;
    let proc_path = create_stub(&mut ops, &root, &t, Kind::Dir)?;
    ops.push((
        "mounting /proc".into(),
        Op::Proc {
            target: proc_path,
            force_bind: forced.proc,
        },
    ));
    // /dev
    let t = resolve::resolve(stack, "/dev")?;
    let dev_path = create_stub(&mut ops, &root, &t, Kind::Dir)?;
    let dev = root.join(t.comps.join("/"));
    ops.push((
        "mounting a tmpfs on /dev".into(),
        Op::Mount {
            src: Some(cstr("tmpfs")?),
            target: dev_path,
            fstype: Some(cstr("tmpfs")?),
            flags: libc::MS_NOSUID | libc::MS_STRICTATIME,
            data: Some(cstr("mode=755,size=65536k")?),
        },
    ));
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let p = cpath(&dev.join(node))?;
        ops.push((
            format!("creating /dev/{node}"),
            Op::Touch { path: p.clone() },
        ));
        let bind = Op::Bind {
            src: cstr(format!("/dev/{node}"))?,
            target: p,
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
    let devpts_opts = if is_root {
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
    // /sys
    let t = resolve::resolve(stack, "/sys")?;
    let sys_path = create_stub(&mut ops, &root, &t, Kind::Dir)?;
    ops.push((
        "mounting /sys".into(),
        Op::Sys {
            target: sys_path,
            force_bind: forced.sys,
        },
    ));

    // /etc/resolv.conf, /etc/hosts, then the extra mounts (sorted by depth,
    // parents first); their stubs are removed afterwards.
    let mut stubs: Vec<String> = Vec::new();
    for (name, src) in [("/etc/resolv.conf", &resolv), ("/etc/hosts", &hosts)] {
        let t = resolve::resolve(stack, name)?;
        stubs.extend(stub_paths(&t));
        let target = create_stub(&mut ops, &root, &t, Kind::File)?;
        ops.push((
            format!("bind-mounting {name}"),
            Op::Bind {
                src: cpath(src)?,
                target,
                recursive: false,
                readonly: true,
            },
        ));
    }
    let mut mounts: Vec<(&Mount, Target)> = Vec::new();
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
        mounts.push((m, t));
    }
    mounts.sort_by_key(|(_, t)| t.comps.len());
    for (i, (m, t)) in mounts.iter().enumerate() {
        stubs.extend(stub_paths(t));
        match m {
            Mount::Bind {
                source,
                target,
                readonly,
            } => {
                let md = std::fs::metadata(source)
                    .map_err(prep(format!("reading bind source {}", source.display())))?;
                let kind = if md.is_dir() { Kind::Dir } else { Kind::File };
                let dst = create_stub(&mut ops, &root, t, kind)?;
                ops.push((
                    format!("bind-mounting {} on {target}", source.display()),
                    Op::Bind {
                        src: cpath(&absolute(source)?)?,
                        target: dst,
                        recursive: true,
                        readonly: *readonly,
                    },
                ));
            }
            Mount::Tmpfs { target, size } => {
                let dst = create_stub(&mut ops, &root, t, Kind::Dir)?;
                let mut data = "mode=1777".to_string();
                if let Some(size) = size {
                    data.push_str(&format!(",size={size}"));
                }
                ops.push((
                    format!("mounting a tmpfs on {target}"),
                    Op::Mount {
                        src: Some(cstr("tmpfs")?),
                        target: dst,
                        fstype: Some(cstr("tmpfs")?),
                        flags: libc::MS_NOSUID | libc::MS_NODEV,
                        data: Some(cstr(data)?),
                    },
                ));
            }
            Mount::Layers {
                lower,
                source,
                target,
                readonly,
            } => {
                let view = layers_view(&mut ops, &scratch.dir, i, lower)?;
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
                let dst = create_stub(&mut ops, &root, t, kind)?;
                ops.push((
                    format!("bind-mounting {source} on {target}"),
                    Op::Bind {
                        src: cpath(&view.join(&rel))?,
                        target: dst,
                        recursive: false,
                        readonly: *readonly,
                    },
                ));
            }
        }
    }

    policy::hardening_ops(&mut ops, stack, &root, spec.security)?;

    // ---- into the rootfs
    ops.push((
        "pivot_root".into(),
        Op::Pivot {
            root: cpath(&root)?,
            force_move: forced.pivot,
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
    let last_cap: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40);
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
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let program = &spec.args[0];
    let candidates: Vec<CString> = if program.contains('/') {
        vec![cstr(program)?]
    } else {
        let path = env
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
    let envp: Vec<CString> = env.iter().map(cstr).collect::<Result<_, _>>()?;
    let hostname_ok = spec.hostname.len() <= 64;
    if !hostname_ok {
        return Err(RuntimeError::Invalid(format!(
            "hostname {:?} is longer than 64 bytes",
            spec.hostname
        )));
    }

    // ---- fds
    let devnull = std::fs::File::open("/dev/null").map_err(prep("opening /dev/null"))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (sync_r, sync_w) = pipe()?;

    let descs: Vec<String> = ops.iter().map(|(d, _)| d.clone()).collect();
    let plan = ChildPlan::new(
        ops.into_iter().map(|(_, op)| op).collect(),
        candidates,
        argv,
        envp,
        devnull.as_raw_fd(),
        out_w.as_raw_fd(),
        err_w.as_raw_fd(),
        sync_r.as_raw_fd(),
    );

    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if spec.network == NetworkMode::None {
        flags |= libc::CLONE_NEWNET;
    }
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
        return Err(prep("clone (new user, mount, pid, ipc, uts namespaces)")(
            io::Error::last_os_error(),
        ));
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
    if let Err(e) = write_id_maps(pid, is_root) {
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
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
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
    let cleanup = remove_stubs(&upper, &stubs);

    if let Some((step, errno, detail)) = child::parse_report(&report) {
        let error = io::Error::from_raw_os_error(errno);
        if step == descs.len() {
            return Err(RuntimeError::Exec {
                program: program.clone(),
                error,
            });
        }
        let step = descs
            .get(step)
            .cloned()
            .unwrap_or_else(|| "redirecting stdin/stdout/stderr".to_string());
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        return Err(RuntimeError::Setup {
            step,
            error,
            detail,
        });
    }
    cleanup?;
    Ok(RunOutput { status, output })
}

/// Fallbacks forced through `KILN_RUNTIME_FALLBACKS` (a comma-separated
/// list of `overlay`, `proc`, `sys`, `pivot`, or `all`), to test them on a
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
        write("uid_map", "0 0 4294967295\n")?;
        write("gid_map", "0 0 4294967295\n")?;
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
        crate::sys::set_times(
            &parent,
            (pmd.atime(), pmd.atime_nsec()),
            (pmd.mtime(), pmd.mtime_nsec()),
        )
        .map_err(prep(format!("restoring the times of {}", parent.display())))?;
    }
    Ok(())
}
