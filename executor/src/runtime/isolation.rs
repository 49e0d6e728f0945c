//! The isolation ladder: which isolation runs RUN steps
//! ([`Isolation`]), and `auto`, which probes the environment on the first
//! RUN step and takes the strongest isolation that works
//! ([`IsolatedRuntime`]).
//!
//! | isolation | needs | how |
//! |---|---|---|
//! | `sandbox` | user namespaces (new namespaces allowed by the seccomp profile) | the built-in sandbox or an OCI runtime |
//! | `chroot` | root with CAP_SYS_CHROOT and CAP_MKNOD (Docker's defaults) | [`ChrootRuntime`] on copy snapshots |
//!
//! The probes are what the isolations themselves do: a `clone` with the
//! sandbox's namespace flags, and in a forked child `chroot` plus a
//! `mknod` of `/dev/null`'s device in a scratch directory.
//! `KILN_ISOLATION_PROBE` (`namespaces-refused`, `chroot-refused`, or
//! both, comma-separated) makes the probes report a refusal, to test the
//! choice and its messages where everything works.

use super::chroot::ChrootRuntime;
use super::scratch::Scratch;
use super::spawn::{raw_clone, wait_status};
use super::{RunOutput, RunRequest, Runtime, RuntimeError};
use std::io;
use std::sync::{Arc, OnceLock};

/// Which isolation runs RUN steps (`--isolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// The strongest that works here, probed on the first RUN step.
    #[default]
    Auto,
    /// New namespaces: the built-in sandbox (or `--runtime`).
    Sandbox,
    /// `chroot` into a copy snapshot, for containers that refuse new
    /// namespaces (see [`ChrootRuntime`]).
    Chroot,
}

impl std::str::FromStr for Isolation {
    type Err = String;

    fn from_str(s: &str) -> Result<Isolation, String> {
        match s {
            "auto" => Ok(Isolation::Auto),
            "sandbox" => Ok(Isolation::Sandbox),
            "chroot" => Ok(Isolation::Chroot),
            other => Err(format!(
                "unknown isolation {other:?} (auto, sandbox or chroot)"
            )),
        }
    }
}

impl std::fmt::Display for Isolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Isolation::Auto => "auto",
            Isolation::Sandbox => "sandbox",
            Isolation::Chroot => "chroot",
        })
    }
}

/// What the probes found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `clone` with the sandbox's namespace flags; the error when refused.
    pub namespaces: Result<(), String>,
    /// `chroot` and `mknod` of a character device; the error when refused.
    pub chroot: Result<(), String>,
}

/// The isolation `auto` takes, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The isolation, or `None` when no isolation can run a RUN step.
    pub isolation: Option<Isolation>,
    /// One line saying why (and, when none works, the ways out).
    pub reason: String,
}

impl Probe {
    /// Probes this process's environment (see the module docs).
    pub fn run() -> Probe {
        let forced = std::env::var("KILN_ISOLATION_PROBE").unwrap_or_default();
        let forced = |what: &str| forced.split(',').any(|w| w.trim() == what);
        let refused = |e: io::Error| e.to_string();
        Probe {
            namespaces: if forced("namespaces-refused") {
                Err("Operation not permitted (os error 1) (KILN_ISOLATION_PROBE)".into())
            } else {
                probe_namespaces().map_err(refused)
            },
            chroot: if forced("chroot-refused") {
                Err("Operation not permitted (os error 1) (KILN_ISOLATION_PROBE)".into())
            } else {
                probe_chroot()
            },
        }
    }

    /// The isolation `auto` takes for what was found.
    pub fn decide(&self) -> Decision {
        match (&self.namespaces, &self.chroot) {
            (Ok(()), _) => Decision {
                isolation: Some(Isolation::Sandbox),
                reason: "isolation sandbox: new namespaces can be created here".into(),
            },
            (Err(ns), Ok(())) => Decision {
                isolation: Some(Isolation::Chroot),
                reason: format!(
                    "isolation chroot: new namespaces are refused here (clone: {ns}), as Docker's default seccomp profile and Kubernetes' RuntimeDefault refuse them; RUN steps run chrooted in a copy of the rootfs, without their own pid, network or mount namespace"
                ),
            },
            (Err(ns), Err(chroot)) => Decision {
                isolation: None,
                reason: no_isolation(ns, chroot),
            },
        }
    }
}

/// The message when no isolation can run a RUN step: both causes and the
/// ways out.
fn no_isolation(ns: &str, chroot: &str) -> String {
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let chroot_way = if root {
        "give kiln's container Docker's default capabilities (CAP_SYS_CHROOT, CAP_MKNOD) for the chroot isolation"
    } else {
        "run kiln as root (with Docker's default capabilities) for the chroot isolation"
    };
    format!(
        "no isolation can run RUN steps here: new namespaces are refused (clone: {ns}: the seccomp profile, or missing privileges) and chroot is refused ({chroot}: {}). Ways out: allow user namespaces (Kubernetes: securityContext.seccompProfile.type: Unconfined, or hostUsers: false; docker run --security-opt seccomp=unconfined), or {chroot_way}. Dockerfiles without RUN build anywhere",
        if root {
            "capabilities dropped"
        } else {
            "not root"
        }
    )
}

/// Clones a child with the built-in sandbox's namespace flags; it exits
/// at once.
fn probe_namespaces() -> io::Result<()> {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // SAFETY: the child only calls `_exit`.
    let pid = unsafe { raw_clone(flags)? };
    if pid == 0 {
        // SAFETY: in the child; async-signal-safe.
        unsafe { libc::_exit(0) };
    }
    wait_status(pid).map(|_| ())
}

/// In a scratch directory, whether a forked child may `chroot` and then
/// make a character device (`/dev/null`'s), each in its own child.
fn probe_chroot() -> Result<(), String> {
    let scratch = Scratch::new().map_err(|e| e.to_string())?;
    let node = scratch.dir.join("null");
    let node =
        std::ffi::CString::new(node.as_os_str().as_encoded_bytes()).map_err(|e| e.to_string())?;
    // SAFETY (both): raw syscalls on data prepared above.
    in_child("chroot", || unsafe { libc::chroot(c"/".as_ptr()) })?;
    in_child("mknod", || unsafe {
        libc::mknod(node.as_ptr(), libc::S_IFCHR | 0o600, libc::makedev(1, 3))
    })
}

/// Runs the syscall `call` in a forked child, which exits with its errno
/// (an exit code holds every errno); `what: error` when it failed.
fn in_child(what: &str, call: impl Fn() -> libc::c_int) -> Result<(), String> {
    // SAFETY: the child makes one syscall and `_exit`s.
    let pid = unsafe { raw_clone(0) }.map_err(|e| format!("fork: {e}"))?;
    if pid == 0 {
        let code = if call() == 0 {
            0
        } else {
            // SAFETY: reading this thread's errno.
            unsafe { *libc::__errno_location() }
        };
        // SAFETY: in the child; async-signal-safe.
        unsafe { libc::_exit(code) };
    }
    match wait_status(pid).map_err(|e| format!("waiting for the probe: {e}"))? {
        0 => Ok(()),
        errno => Err(format!("{what}: {}", io::Error::from_raw_os_error(errno))),
    }
}

/// Runs RUN steps in the isolation asked for: `sandbox` with the given
/// runtime, `chroot` with [`ChrootRuntime`], and `auto` probing on the
/// first step ([`Probe`]) and saying what it took, and why, in that
/// step's [`RunOutput::notes`] (once per build).
pub struct IsolatedRuntime {
    asked: Isolation,
    sandbox: Arc<dyn Runtime>,
    decided: OnceLock<Decision>,
    told: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for IsolatedRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IsolatedRuntime")
            .field("asked", &self.asked)
            .field("decided", &self.decided.get())
            .finish()
    }
}

impl IsolatedRuntime {
    /// RUN steps in `asked`, with `sandbox` as the sandbox's runtime.
    pub fn new(asked: Isolation, sandbox: Arc<dyn Runtime>) -> IsolatedRuntime {
        IsolatedRuntime {
            asked,
            sandbox,
            decided: OnceLock::new(),
            told: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The isolation steps run in (probing once for `auto`); `None`
    /// with the reason when none can.
    pub fn decision(&self) -> &Decision {
        self.decided.get_or_init(|| match self.asked {
            Isolation::Auto => Probe::run().decide(),
            asked => Decision {
                isolation: Some(asked),
                reason: format!("isolation {asked}: asked for"),
            },
        })
    }
}

impl Runtime for IsolatedRuntime {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        let decision = self.decision();
        let mut out = match decision.isolation {
            Some(Isolation::Chroot) => ChrootRuntime.run(req)?,
            Some(_) => self.sandbox.run(req)?,
            None => return Err(RuntimeError::Unsupported(decision.reason.clone())),
        };
        let auto = self.asked == Isolation::Auto;
        if auto && !self.told.swap(true, std::sync::atomic::Ordering::Relaxed) {
            out.notes.insert(0, decision.reason.clone());
        }
        Ok(out)
    }

    fn needs_copy_snapshots(&self) -> bool {
        self.decision().isolation == Some(Isolation::Chroot)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_isolation_that_works_is_taken() {
        let refused = || Err("Operation not permitted (os error 1)".to_string());
        let both = Probe {
            namespaces: Ok(()),
            chroot: Ok(()),
        };
        assert_eq!(both.decide().isolation, Some(Isolation::Sandbox));
        let no_ns = Probe {
            namespaces: refused(),
            chroot: Ok(()),
        };
        let d = no_ns.decide();
        assert_eq!(d.isolation, Some(Isolation::Chroot));
        assert!(
            d.reason.contains("new namespaces are refused"),
            "{}",
            d.reason
        );
        let none = Probe {
            namespaces: refused(),
            chroot: refused(),
        };
        let d = none.decide();
        assert_eq!(d.isolation, None);
        for way in [
            "seccompProfile.type: Unconfined",
            "hostUsers: false",
            "seccomp=unconfined",
        ] {
            assert!(d.reason.contains(way), "{way}: {}", d.reason);
        }
    }

    #[test]
    fn names_parse_and_print() {
        for name in ["auto", "sandbox", "chroot"] {
            let i: Isolation = name.parse().expect("parses");
            assert_eq!(i.to_string(), name);
        }
        assert!("none".parse::<Isolation>().is_err());
    }
}
