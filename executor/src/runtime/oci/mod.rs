//! External OCI runtimes (runc, crun) as a [`Runtime`].
//!
//! The host side prepares the run exactly as for the built-in runtime
//! (see `prepare` in `mod.rs`: user, mount targets resolved inside the
//! rootfs, mount stubs, hosts and resolv.conf, the overlay lowers). Then:
//!
//! 1. A child is cloned into a private mount namespace (only it and the
//!    runtime it becomes live there) and a new pid namespace, whose init
//!    the runtime becomes: when it dies (with kiln: `PR_SET_PDEATHSIG`),
//!    the kernel kills the container too, so an interrupted or killed
//!    build leaves no step running (see `cleanup.rs` for the rest). It
//!    mounts a `/proc` of that pid namespace, makes `/` private, mounts the
//!    rootfs overlay (`userxattr`, remounted `nodev`) at `<scratch>/rootfs`
//!    and the overlays of [`Mount::Layers`] views (`nodev` too), creates
//!    the mount stubs (and the working directory) in the merged rootfs,
//!    for crun hides
//!    `/sys/fs/cgroup/unified` under a read-only tmpfs (crun 1.8 refuses a
//!    hybrid cgroup host), mounts the secrets tmpfs at `<scratch>/secrets`
//!    (the bundle) and writes the secret files and `config.json` (0600)
//!    there, and `execve`s `runc`/`crun run --bundle B ID` with a JSON
//!    `--log` in the 0700 per-run scratch directory and a `--root` state
//!    directory there (runc) or in the bundle (crun's state keeps a copy
//!    of `config.json`). Secrets and the environment are thus on no disk
//!    and go with the runtime's mount namespace, even if kiln is killed.
//! 2. `config.json` (built with `oci_spec::runtime`) asks for new user
//!    (identity-mapped, `0 0 4294967295`, as the built-in runtime's; not
//!    in a rootless kiln, already in one), pid, ipc, uts, mount (and for
//!    [`NetworkMode::None`] network) namespaces, runc's default `/proc`,
//!    `/dev` and `/sys` mounts (the host's `/sys` bound read-only without
//!    a network namespace), read-only binds of
//!    `/etc/hosts` and `/etc/resolv.conf`, the extra mounts (at their
//!    resolved targets), Docker's default capabilities, masked and
//!    read-only paths, `noNewPrivileges` and the seccomp profile (every
//!    capability, no seccomp and no masked paths for
//!    [`SecurityMode::Insecure`]).
//! 3. The combined output is collected; the exit status of `runc run` is
//!    the process's. Error entries in the runtime's log mean the runtime
//!    failed (the error carries its messages). The container state is
//!    deleted if the runtime left it, and the mount stubs are removed from
//!    the upper directory as with the built-in runtime.
//!
//! Differences from the built-in runtime: runc copies the process's
//! stdout and stderr through two pipes of its own, so their relative
//! order is not kept (each stream's is); `args[0]` without a `/` is looked
//! up in the `PATH` of `env` by the runtime, which fails when `env` has no
//! `PATH` (the built-in runtime falls back to the default `PATH`); with
//! [`SecurityMode::Insecure`] the process gets every capability of this
//! process's bounding set (the built-in runtime's user namespace may give
//! more).
//!
//! Devices: in the user namespace the step's `CAP_MKNOD` makes no char
//! or block device (the kernel wants it in the initial namespace), and
//! every mount kiln makes (the rootfs and layer overlays) or asks for is
//! `nodev`, so device nodes that layers bring cannot be opened. That is
//! the built-in runtime's isolation, and it does not depend on a device
//! cgroup: crun has none (see below), runc's is a second wall.
//!
//! runc creates cgroups named after the (unique, `kiln-…`) container id
//! (under `--cgroup-parent` when given); `runc run` removes them when the
//! container exits. crun runs with `--cgroup-manager=disabled`; with
//! `--cgroup-parent`, kiln makes the step's cgroup and crun's process
//! joins it before it starts (see `cgroup.rs`). `--ulimit`s are the
//! bundle's `process.rlimits` and `--shm-size` the size of its
//! `/dev/shm`. In a rootless kiln (root only of its user
//! namespace) runc runs with `--rootless=true` and no cgroups path, and
//! `/sys` is the host's bound read-only (sysfs needs an owned network
//! namespace).

mod spec;

use super::builtin::step_cgroup;
use super::child::Op;
use super::plan::{prepare, secret_tmpfs};
use super::spawn::{descs, report_error, spawn, Isolate};
use super::stubs::{create_stub, remove_stubs, Kind};
use super::{cpath, cstr, resolve, Fallbacks, RunOutput, RunRequest, Runtime, RuntimeError};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// An external OCI runtime (runc or crun) running RUN steps; needs root.
#[derive(Debug, Clone)]
pub struct OciRuntime {
    /// What the caller asked for (`runc`, `crun` or a path).
    name: String,
    /// The binary.
    path: PathBuf,
    /// The first line of `--version`.
    version: String,
    /// crun (needs the hybrid-cgroup workaround).
    crun: bool,
    /// kiln is root only of its user namespace (a rootless kiln).
    rootless: bool,
    /// The fallbacks to take anyway (only [`Fallbacks::overlay`] and
    /// [`Fallbacks::volatile`] apply).
    fallbacks: Fallbacks,
}

/// Where a runtime named without a `/` is looked for after `PATH`.
const FALLBACK_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

impl OciRuntime {
    /// Finds `program` (`runc`, `crun`, another name looked up in `PATH`
    /// and the sbin directories, or a path) and probes it with
    /// `--version`.
    ///
    /// # Errors
    /// [`RuntimeError::Oci`] when the binary is missing, `--version`
    /// fails, or (as root) the host can make no user namespace for the
    /// bundle; [`RuntimeError::Invalid`] when not running as root, not even
    /// of a user namespace (a rootless kiln without subordinate ids).
    pub fn new(program: &str) -> Result<OciRuntime, RuntimeError> {
        let fail = |message: String| RuntimeError::Oci {
            runtime: program.to_string(),
            message,
        };
        if program.is_empty() {
            return Err(fail("empty runtime name".into()));
        }
        let path = find(program).ok_or_else(|| {
            fail(if program.contains('/') {
                "no such executable".into()
            } else {
                "not found in PATH".into()
            })
        })?;
        if !crate::privileges::is_root() {
            return Err(needs_root(program));
        }
        let out = std::process::Command::new(&path)
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| fail(format!("running {} --version: {e}", path.display())))?;
        if !out.status.success() {
            return Err(fail(format!(
                "{} --version failed ({}): {}",
                path.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let version = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let crun = version.starts_with("crun ")
            || path.file_name().is_some_and(|n| n.as_bytes() == b"crun");
        let rt = OciRuntime {
            name: program.to_string(),
            path,
            version,
            crun,
            rootless: crate::privileges::in_user_namespace(),
            fallbacks: Fallbacks::default(),
        };
        if rt.userns() {
            let max = std::fs::read_to_string("/proc/sys/user/max_user_namespaces").ok();
            let has = Path::new("/proc/self/ns/user").exists();
            if let Some(why) = no_user_namespaces(max.as_deref(), has) {
                return Err(rt.error(why));
            }
        }
        Ok(rt)
    }

    /// The runtime, taking the ways of `fallbacks` even where the
    /// preferred ones work (of these, only the overlay mount and its
    /// `volatile` apply to an OCI runtime: the runtime itself mounts the
    /// rest).
    pub fn with_fallbacks(self, fallbacks: Fallbacks) -> OciRuntime {
        OciRuntime { fallbacks, ..self }
    }

    /// The runtime binary.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The first line of its `--version`, e.g. `runc version 1.1.5`.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether it is crun.
    pub fn is_crun(&self) -> bool {
        self.crun
    }

    /// Whether the bundle asks for a user namespace (identity-mapped, as
    /// the built-in runtime's): always, except in a rootless kiln, which
    /// runs in a user namespace already.
    fn userns(&self) -> bool {
        !self.rootless
    }

    fn error(&self, message: String) -> RuntimeError {
        RuntimeError::Oci {
            runtime: self.name.clone(),
            message,
        }
    }
}

/// Why the bundle's user namespace cannot be made: the kernel has none
/// (`has_userns`: `/proc/self/ns/user` exists) or allows none (`max`: the
/// text of `/proc/sys/user/max_user_namespaces`). Without one a step
/// would keep `CAP_MKNOD` over host devices, so the runtime is refused.
fn no_user_namespaces(max: Option<&str>, has_userns: bool) -> Option<String> {
    let why = if !has_userns {
        "this kernel has no user namespaces (CONFIG_USER_NS)".to_string()
    } else if max.is_some_and(|m| m.trim() == "0") {
        "this host allows no user namespaces (user.max_user_namespaces = 0)".to_string()
    } else {
        return None;
    };
    Some(format!(
        "{why}; RUN steps need one to be kept away from host devices"
    ))
}

fn needs_root(program: &str) -> RuntimeError {
    RuntimeError::Invalid(format!(
        "--runtime {program} needs root, or a rootless kiln with /etc/subuid entries \
         (use the built-in runtime)"
    ))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The binary of `program`: a path as is, a name through `PATH` and then
/// [`FALLBACK_DIRS`].
fn find(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let p = PathBuf::from(program);
        return is_executable(&p).then(|| std::path::absolute(&p).unwrap_or(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(FALLBACK_DIRS.iter().map(PathBuf::from))
        .filter(|d| d.is_absolute())
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

impl Runtime for OciRuntime {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        if !crate::privileges::is_root() {
            return Err(needs_root(&self.name));
        }
        self.run_with(req)
    }
}

impl OciRuntime {
    /// One run.
    fn run_with(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        let mut p = prepare(req, &self.fallbacks)?;
        let spec = req.process;
        // The overlays kiln mounts (the rootfs and layer views) are mounted
        // outside the container's user namespace: nodev, so that a device
        // node in a layer stays unusable, as in the built-in runtime (whose
        // user namespace owns its mounts).
        let mut ops = Vec::new();
        for (desc, op) in std::mem::take(&mut p.ops) {
            let target = match &op {
                Op::Overlay { target, .. } => Some(target.clone()),
                _ => None,
            };
            ops.push((desc, op));
            if let Some(target) = target {
                ops.push((
                    format!("making {} nodev", target.to_string_lossy()),
                    Op::Mount {
                        src: None,
                        target,
                        fstype: None,
                        flags: libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NODEV,
                        data: None,
                    },
                ));
            }
        }
        // The runtime runs as init of a new pid namespace: when it dies
        // (with kiln: PR_SET_PDEATHSIG), the kernel kills the container
        // too. It needs a /proc of that namespace.
        ops.push((
            "mounting /proc for the runtime's pid namespace".into(),
            Op::Mount {
                src: Some(cstr("proc")?),
                target: cstr("/proc")?,
                fstype: Some(cstr("proc")?),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
            },
        ));
        if self.crun && Path::new("/sys/fs/cgroup/unified").is_dir() {
            ops.push((
                "hiding /sys/fs/cgroup/unified (crun refuses hybrid cgroups)".into(),
                Op::Mount {
                    src: Some(cstr("cgroup-hide")?),
                    target: cstr("/sys/fs/cgroup/unified")?,
                    fstype: Some(cstr("tmpfs")?),
                    flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    data: None,
                },
            ));
        }
        // The mount points exist before the runtime mounts anything, so it
        // creates nothing in the rootfs (and follows no symlink on the
        // host side).
        for m in &p.mounts {
            create_stub(&mut ops, &p.root, &m.target, m.kind)?;
        }
        // The working directory, unless it lies on a mount (then the
        // runtime creates it there, as the built-in runtime does).
        let cwd_target = resolve::resolve(req.lower, &spec.cwd)?;
        let on_mount = p
            .mounts
            .iter()
            .any(|m| cwd_target.comps.starts_with(&m.target.comps));
        let cwd = if on_mount {
            spec.cwd.clone()
        } else {
            create_stub(&mut ops, &p.root, &cwd_target, Kind::Dir)?;
            format!("/{}", cwd_target.comps.join("/"))
        };

        // The bundle is the secrets tmpfs of the runtime's mount namespace:
        // config.json holds the environment (`env=` secrets included), so
        // it is on no disk and goes with the step, even if kiln is killed.
        // So is crun's state, which keeps a copy of it; runc's (cgroup
        // paths, for `runc delete` afterwards) stays in the scratch
        // directory.
        let bundle = match &p.secrets {
            Some(dir) => dir.clone(),
            None => {
                let dir = p.scratch.dir.join("secrets");
                secret_tmpfs(&mut ops, &dir)?;
                dir
            }
        };
        let state = if self.crun {
            bundle.join("state")
        } else {
            p.scratch.dir.join("state")
        };
        let log = p.scratch.dir.join("runtime.log");
        let id = p
            .scratch
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "kiln-run".to_string());
        let config = self.config(req, &p, &cwd, &id)?;
        let config_path = bundle.join("config.json");
        let json = serde_json::to_vec(&config)
            .map_err(|e| self.error(format!("writing {}: {e}", config_path.display())))?;
        ops.push((
            format!("writing {}", config_path.display()),
            Op::WriteFile {
                path: cpath(&config_path)?,
                data: json,
                mode: 0o600,
                uid: 0,
                gid: 0,
            },
        ));

        let mut argv: Vec<CString> = vec![cpath(&self.path)?];
        if self.crun {
            argv.push(cstr(format!("--root={}", state.display()))?);
            argv.push(cstr(format!("--log=file:{}", log.display()))?);
            argv.push(cstr("--log-format=json")?);
            argv.push(cstr("--cgroup-manager=disabled")?);
        } else {
            for a in [
                "--root".as_bytes(),
                state.as_os_str().as_bytes(),
                b"--log",
                log.as_os_str().as_bytes(),
                b"--log-format",
                b"json",
            ] {
                argv.push(cstr(a)?);
            }
            if self.rootless {
                // A rootless kiln: runc's rootless mode skips the cgroups it
                // may not create.
                argv.push(cstr("--rootless=true")?);
            }
        }
        for a in [
            "run".as_bytes(),
            b"--bundle",
            bundle.as_os_str().as_bytes(),
            id.as_bytes(),
        ] {
            argv.push(cstr(a)?);
        }
        let envp: Vec<CString> = std::env::vars_os()
            .filter(|(k, _)| {
                !matches!(
                    k.as_bytes(),
                    b"NOTIFY_SOCKET" | b"LISTEN_FDS" | b"LISTEN_PID" | b"LISTEN_FDNAMES"
                )
            })
            .map(|(k, v)| {
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstr(kv)
            })
            .collect::<Result<_, _>>()?;

        let descs = descs(&ops);
        // crun runs without a cgroup manager: its process joins the step's
        // cgroup, and the container's processes inherit it. runc makes its
        // own under the parent (`spec.rs`); a rootless kiln can make none.
        let cgroup = match &spec.resources.cgroup_parent {
            Some(_) if self.rootless => {
                return Err(self.error(
                    "--cgroup-parent: a rootless kiln cannot create cgroups for runc or crun"
                        .into(),
                ))
            }
            Some(_) if self.crun => step_cgroup(&spec.resources)?,
            _ => None,
        };
        let done = spawn(
            ops.into_iter().map(|(_, op)| op).collect(),
            vec![cpath(&self.path)?],
            argv,
            envp,
            Isolate {
                flags: libc::CLONE_NEWNS | libc::CLONE_NEWPID,
                id_maps: None,
                group: false,
                ulimits: &[],
                cgroup: cgroup.as_ref(),
                devices: None,
            },
            req,
        );
        // Whatever happened: no container state (or runc cgroup) stays.
        if state.join(&id).exists() {
            let _ = std::process::Command::new(&self.path)
                .arg("--root")
                .arg(&state)
                .args(["delete", "--force", &id])
                .stdin(std::process::Stdio::null())
                .output();
        }
        let done = done?;
        if let Some(report) = &done.report {
            let _ = remove_stubs(&p.changes, &p.stubs);
            return Err(
                match report_error(report, &descs, &self.path.to_string_lossy()) {
                    RuntimeError::Exec { program, error } => {
                        self.error(format!("exec {program}: {error}"))
                    }
                    e => e,
                },
            );
        }
        let errors = log_errors(&log);
        if !errors.is_empty() {
            let mut message = errors.join("; ");
            let out = String::from_utf8_lossy(&done.output);
            let out = out.trim();
            if !out.is_empty() && !errors.iter().all(|e| out.contains(e.as_str())) {
                let tail: String = {
                    let start = out.len().saturating_sub(4096);
                    let start = (start..=out.len())
                        .find(|i| out.is_char_boundary(*i))
                        .unwrap_or(out.len());
                    out[start..].to_string()
                };
                message.push_str(&format!("; output: {tail}"));
            }
            message.push_str(&format!(" (exit status {})", done.status));
            let _ = remove_stubs(&p.changes, &p.stubs);
            return Err(self.error(message));
        }
        remove_stubs(&p.changes, &p.stubs)?;
        Ok(RunOutput {
            status: done.status,
            output: done.output,
            notes: Vec::new(),
        })
    }
}

/// The `msg` of every error (or fatal) entry of a JSON runtime log.
fn log_errors(log: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(log) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            matches!(
                v.get("level").and_then(|l| l.as_str()),
                Some("error" | "fatal" | "panic")
            )
        })
        .filter_map(|v| v.get("msg").and_then(|m| m.as_str()).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_without_user_namespaces() {
        assert_eq!(no_user_namespaces(Some("15000\n"), true), None);
        assert_eq!(no_user_namespaces(None, true), None);
        let e = no_user_namespaces(Some("0\n"), true).unwrap();
        assert!(e.contains("user.max_user_namespaces = 0"), "{e}");
        let e = no_user_namespaces(Some("15000"), false).unwrap();
        assert!(
            e.contains("CONFIG_USER_NS") && e.contains("host devices"),
            "{e}"
        );
    }

    #[test]
    fn missing_binary_names_the_program() {
        let e = OciRuntime::new("kiln-no-such-runtime").unwrap_err();
        assert!(e.to_string().contains("kiln-no-such-runtime"), "{e}");
        let e = OciRuntime::new("/nonexistent/runc").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/runc"), "{e}");
    }
}
