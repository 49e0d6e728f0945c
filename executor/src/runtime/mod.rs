//! The RUN sandboxes: the built-in one ([`BuiltinRuntime`], `builtin.rs`)
//! and external OCI runtimes ([`OciRuntime`]: runc, crun; `oci.rs`). A
//! runtime runs a process on a rootfs given as snapshot mounts (see
//! [`crate::snapshot`]); it neither chooses nor commits the snapshot.
//!
//! Both share the host-side preparation (`plan.rs`: the child's
//! operations up to the mounts, listed before anything runs), turn it
//! into their own operation list (`builtin.rs`, `oci/`) and then run a
//! cloned child (`spawn.rs`) that executes those operations (`child/`)
//! and `execve`s: the command itself for the built-in runtime,
//! `runc`/`crun run` for an OCI runtime. `stubs.rs` creates and removes
//! the mount points, `scratch.rs` holds a run's private directory,
//! `cleanup.rs` what a killed build leaves, `cancel.rs` how a run that
//! has started is stopped ([`CancelSignal`]).
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
//!    rootfs snapshot (an overlay: `lowerdir+` per layer through
//!    `fsconfig`, falling back to `lowerdir=`, always `userxattr`; or a
//!    bind of a copy), `/proc` (falling back to a bind of
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
//!    mount stubs it created from the snapshot's changes (as BuildKit's
//!    `MountStubsCleaner` does, restoring the parent's times), so
//!    `/etc` stays as a copied-up directory and `RUN --mount` targets leave
//!    no trace. `/dev`, `/proc` and `/sys` created for a base lacking them
//!    stay (empty, 0755), as with BuildKit.
//!
//! The snapshotter's commit then leaves the step's changes in the upper
//! directory in overlay format (whiteouts are 0/0 character devices,
//! opaque directories carry `user.overlay.opaque=y`), ready for
//! [`crate::diff`].

mod builtin;
mod cancel;
mod cgroup;
mod child;
mod chroot;
mod cleanup;
pub(crate) mod devices;
mod files;
mod isolation;
mod oci;
mod plan;
mod policy;
mod resolve;
mod resources;
mod scratch;
mod seccomp;
mod spawn;
mod stubs;
mod user;

use crate::snapshot::{ActiveSnapshot, SnapshotError, Snapshotter};
use crate::stack::LayerStack;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

pub use builtin::BuiltinRuntime;
pub use cancel::CancelSignal;
pub use chroot::ChrootRuntime;
pub use cleanup::{abort_runs, sweep_stale};
pub use isolation::{Decision, IsolatedRuntime, Isolation, Probe};
pub use oci::OciRuntime;
pub use resources::{cgroup_parent, Resources, Ulimit, UlimitError, UlimitName};
pub use scratch::set_scratch_base;

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
    /// Extra `/etc/hosts` entries, name and address, after the usual ones.
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `/dev/shm`'s size, resource limits and the parent cgroup
    /// (`--shm-size`, `--ulimit`, `--cgroup-parent`).
    pub resources: Resources,
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

/// One process to run on a prepared snapshot (see
/// [`crate::Snapshots::run`], which makes one for a RUN step).
#[derive(Debug)]
pub struct RunRequest<'a> {
    /// The filesystem the rootfs shows: the user, the mount targets and
    /// the masked paths are looked up in it.
    pub lower: &'a LayerStack,
    /// The rootfs: a writable snapshot of `lower`.
    pub rootfs: &'a ActiveSnapshot,
    /// Makes the views of [`Mount::Layers`] mounts.
    pub snapshotter: &'a dyn Snapshotter,
    /// What to run.
    pub process: &'a ProcessSpec,
    /// Extra mounts; they leave no trace in the snapshot.
    pub mounts: &'a [Mount],
    /// Receives the process's combined output as it is read, in order,
    /// while the process runs (for live progress displays). It does not
    /// change what [`RunOutput::output`] keeps.
    pub output: Option<OutputSink<'a>>,
    /// Stops the run when cancelled: the process tree is killed, the run
    /// cleans up and fails with [`RuntimeError::Cancelled`].
    pub cancel: Option<&'a CancelSignal>,
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
    /// The kernel refused to mount an overlay (no overlayfs, not allowed
    /// in a user namespace, or an upper directory on a filesystem it
    /// refuses, such as overlayfs itself): copy snapshots would work
    /// (see [`crate::Snapshots`]).
    #[error("{step}: {error}{detail}")]
    OverlayRefused {
        /// The step, e.g. `mounting overlay on /tmp/…/rootfs`.
        step: String,
        /// The error.
        #[source]
        error: io::Error,
        /// Extra detail from the kernel (`fsconfig` log), may be empty.
        detail: String,
    },
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
    /// The isolation in use cannot give the step what it asks for (the
    /// chroot isolation and `RUN --network=none` or `--mount`), or no
    /// isolation can run a step here; the message says why and what to
    /// do.
    #[error("{0}")]
    Unsupported(String),
    /// The run's [`CancelSignal`] was cancelled (or [`abort_runs`] ran):
    /// the process was not started, or was killed with its whole tree.
    #[error("the run was cancelled")]
    Cancelled,
}

/// Runs processes on snapshots (the RUN sandboxes).
pub trait Runtime: Send + Sync {
    /// Runs `req.process` on the rootfs `req.rootfs` (with `req.mounts`)
    /// and waits for it. A non-zero exit is not an error. Mount stubs it
    /// created are gone from [`ActiveSnapshot::changes`] afterwards.
    ///
    /// When `req.cancel` is cancelled before or while the process runs,
    /// the process and everything it started are killed promptly, the
    /// run's scratch directory is removed, and the run fails with
    /// [`RuntimeError::Cancelled`].
    ///
    /// # Errors
    /// [`RuntimeError`] when the sandbox cannot be set up or the command
    /// cannot be executed; [`RuntimeError::OverlayRefused`] when the
    /// kernel refuses the snapshot's overlay; [`RuntimeError::Cancelled`].
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError>;

    /// Whether it runs only on copy snapshots (the chroot isolation mounts
    /// nothing, so an overlay cannot be its rootfs).
    fn needs_copy_snapshots(&self) -> bool {
        false
    }
}

/// A [`RuntimeError::Prepare`] maker for `map_err`.
fn prep(step: impl Into<String>) -> impl FnOnce(io::Error) -> RuntimeError {
    let step = step.into();
    move |error| RuntimeError::Prepare { step, error }
}

/// `s` as a C string ([`RuntimeError::Invalid`] with a NUL byte).
fn cstr(s: impl AsRef<[u8]>) -> Result<CString, RuntimeError> {
    let s = s.as_ref();
    CString::new(s).map_err(|_| {
        RuntimeError::Invalid(format!(
            "{:?} contains a NUL byte",
            String::from_utf8_lossy(s)
        ))
    })
}

/// `p` as a C string.
fn cpath(p: &Path) -> Result<CString, RuntimeError> {
    cstr(p.as_os_str().as_bytes())
}

/// Fallbacks a runtime takes even where the preferred way works, to test
/// them (kiln reads them from `KILN_RUNTIME_FALLBACKS`, see
/// [`Fallbacks::parse`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Fallbacks {
    /// `mount(2)` with `lowerdir=` instead of `fsconfig` + `lowerdir+`.
    pub overlay: bool,
    /// A bind of the host's /proc instead of a fresh proc.
    pub proc: bool,
    /// A read-only bind of the host's /sys instead of a fresh sysfs.
    pub sys: bool,
    /// `MS_MOVE` + `chroot` instead of `pivot_root`.
    pub pivot: bool,
    /// A step's overlay without `volatile`: its process's `fsync`s reach
    /// the disk, as they would outside a sandbox.
    pub volatile: bool,
    /// Copy snapshots instead of overlayfs (the snapshotter's choice, not
    /// the runtime's: see [`Fallbacks::snapshots`]).
    pub copy: bool,
}

impl Fallbacks {
    /// Reads a comma-separated list of `overlay`, `proc`, `sys`, `pivot`,
    /// `volatile`, or `all` (every one of those); and `copy` for copy
    /// snapshots. Other words are ignored.
    pub fn parse(list: &str) -> Fallbacks {
        let has = |name: &str| {
            list.split(',')
                .any(|w| w.trim() == name || w.trim() == "all")
        };
        Fallbacks {
            overlay: has("overlay"),
            proc: has("proc"),
            sys: has("sys"),
            pivot: has("pivot"),
            volatile: has("volatile"),
            // Not part of `all`: a different snapshotter, not a fallback
            // of one mount step.
            copy: list.split(',').any(|w| w.trim() == "copy"),
        }
    }

    /// The snapshot mode these fallbacks ask for.
    pub fn snapshots(&self) -> crate::SnapshotMode {
        if self.copy {
            crate::SnapshotMode::Copy
        } else {
            crate::SnapshotMode::Overlay
        }
    }
}

impl From<SnapshotError> for RuntimeError {
    fn from(e: SnapshotError) -> RuntimeError {
        RuntimeError::Prepare {
            step: e.step,
            error: e.error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fallbacks, Mount};
    use crate::SnapshotMode;

    #[test]
    fn fallbacks_parse_the_list() {
        assert_eq!(Fallbacks::parse(""), Fallbacks::default());
        let f = Fallbacks::parse("proc, sys,unknown");
        assert!(f.proc && f.sys && !f.overlay && !f.pivot && !f.copy);
        let all = Fallbacks::parse("all");
        assert!(all.overlay && all.proc && all.sys && all.pivot);
        assert!(!all.copy, "copy is not a fallback of a mount step");
        assert_eq!(all.snapshots(), SnapshotMode::Overlay);
        assert_eq!(
            Fallbacks::parse("pivot,copy").snapshots(),
            SnapshotMode::Copy
        );
    }

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
