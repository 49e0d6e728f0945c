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
//! runc creates cgroups named after the (unique, `kiln-…`) container id;
//! `runc run` removes them when the container exits. crun runs with
//! `--cgroup-manager=disabled`. In a rootless kiln (root only of its user
//! namespace) runc runs with `--rootless=true` and no cgroups path, and
//! `/sys` is the host's bound read-only (sysfs needs an owned network
//! namespace).

use super::builtin::{last_cap, DEFAULT_CAPS};
use super::child::Op;
use super::plan::{prepare, secret_tmpfs, Planned, Prepared, What};
use super::spawn::{descs, report_error, spawn};
use super::stubs::{create_stub, remove_stubs, Kind};
use super::{
    cpath, cstr, files, policy, resolve, seccomp, Fallbacks, NetworkMode, RunOutput, RunRequest,
    Runtime, RuntimeError, SecurityMode,
};
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxIdMapping, LinuxIdMappingBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, Mount as OciMount, MountBuilder, ProcessBuilder,
    RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use std::collections::HashSet;
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
    /// The fallbacks to take anyway (only [`Fallbacks::overlay`] applies).
    fallbacks: Fallbacks,
}

/// Capability names by number (`CAP_` omitted), up to
/// `CAP_CHECKPOINT_RESTORE` (40).
const CAP_NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

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
    /// preferred ones work (of these, only the overlay mount applies to an
    /// OCI runtime: the runtime itself mounts the rest).
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
        let done = spawn(
            ops.into_iter().map(|(_, op)| op).collect(),
            vec![cpath(&self.path)?],
            argv,
            envp,
            libc::CLONE_NEWNS | libc::CLONE_NEWPID,
            None,
            req.output,
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

/// [`policy::RLIMITS`] for the bundle, clamped to this process's hard
/// limits as the built-in runtime does.
fn rlimits() -> Result<Vec<oci_spec::runtime::PosixRlimit>, RuntimeError> {
    policy::RLIMITS
        .iter()
        .map(|r| {
            let (soft, hard) = policy::clamp(r);
            use oci_spec::runtime::PosixRlimitType as T;
            let kind = match r.name {
                "RLIMIT_NOFILE" => T::RlimitNofile,
                "RLIMIT_NPROC" => T::RlimitNproc,
                "RLIMIT_CORE" => T::RlimitCore,
                "RLIMIT_STACK" => T::RlimitStack,
                other => return Err(RuntimeError::Invalid(format!("unknown rlimit {other}"))),
            };
            oci_spec::runtime::PosixRlimitBuilder::default()
                .typ(kind)
                .soft(soft)
                .hard(hard)
                .build()
                .map_err(|e| RuntimeError::Invalid(format!("rlimit {}: {e}", r.name)))
        })
        .collect()
}

/// This process's capability bounding set (every capability when
/// unreadable).
fn bounding_set() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        })
        .unwrap_or(u64::MAX)
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

fn mount(dest: &str, typ: &str, source: &Path, options: &[&str]) -> Result<OciMount, RuntimeError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(|e| RuntimeError::Invalid(format!("mount {dest}: {e}")))
}

/// The `ST_*` flags of the mount `path` is on (none when unknown).
fn mount_flags(path: &Path) -> libc::c_ulong {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return 0;
    };
    // SAFETY: a valid C string and a zeroed out-parameter.
    unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut st) == 0 {
            st.f_flag
        } else {
            0
        }
    }
}

/// The identity map of every id (`0 0 4294967295`, as the built-in
/// runtime has as root) when the bundle gets a user namespace; else none.
fn identity_map(userns: bool) -> Result<Vec<LinuxIdMapping>, RuntimeError> {
    if !userns {
        return Ok(Vec::new());
    }
    Ok(vec![LinuxIdMappingBuilder::default()
        .container_id(0u32)
        .host_id(0u32)
        .size(u32::MAX)
        .build()
        .map_err(|e| {
            RuntimeError::Invalid(format!("id map: {e}"))
        })?])
}

/// The OCI mounts of one planned mount (`bind_sys`: binds the host's
/// `/sys` where sysfs cannot be mounted: no network namespace owned by
/// the container's user namespace).
fn oci_mounts(m: &Planned, bind_sys: bool) -> Result<Vec<OciMount>, RuntimeError> {
    let dest = m.dest();
    Ok(match &m.what {
        What::Proc => vec![mount(
            &dest,
            "proc",
            Path::new("proc"),
            &["nosuid", "noexec", "nodev"],
        )?],
        // A rootless kiln cannot mount sysfs without its own network
        // namespace: the host's /sys is bound read-only instead, as
        // rootless Podman does.
        What::Sys if bind_sys => vec![mount(
            &dest,
            "bind",
            Path::new("/sys"),
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?],
        What::Sys => vec![mount(
            &dest,
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )?],
        What::Dev => vec![
            mount(
                &dest,
                "tmpfs",
                Path::new("tmpfs"),
                &["nosuid", "strictatime", "mode=755", "size=65536k"],
            )?,
            mount(
                &format!("{dest}/pts"),
                "devpts",
                Path::new("devpts"),
                &[
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            )?,
            mount(
                &format!("{dest}/shm"),
                "tmpfs",
                Path::new("shm"),
                &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            )?,
            mount(
                &format!("{dest}/mqueue"),
                "mqueue",
                Path::new("mqueue"),
                &["nosuid", "noexec", "nodev"],
            )?,
        ],
        What::Bind {
            src,
            recursive,
            readonly,
        } => {
            // nodev like every mount of the container; and the flags the
            // source's mount has, which the runtime's read-only remount
            // must keep (they are locked in the user namespace).
            let mut opts = vec![if *recursive { "rbind" } else { "bind" }, "nodev"];
            let flags = mount_flags(src);
            if flags & libc::ST_NOSUID != 0 {
                opts.push("nosuid");
            }
            if flags & libc::ST_NOEXEC != 0 {
                opts.push("noexec");
            }
            if *readonly {
                opts.push("ro");
            }
            vec![mount(&dest, "bind", src, &opts)?]
        }
        // The secrets tmpfs is nosuid, nodev and noexec: flags the
        // read-only remount must keep.
        What::Secret { src } => vec![mount(
            &dest,
            "bind",
            src,
            &["bind", "nosuid", "nodev", "noexec", "ro"],
        )?],
        What::Tmpfs { data } => {
            let mut opts = vec!["nosuid", "nodev"];
            opts.extend(data.split(','));
            vec![mount(&dest, "tmpfs", Path::new("tmpfs"), &opts)?]
        }
    })
}

impl OciRuntime {
    /// The bundle's `config.json`.
    fn config(
        &self,
        req: &RunRequest<'_>,
        p: &Prepared,
        cwd: &str,
        id: &str,
    ) -> Result<Spec, RuntimeError> {
        let spec = &req.process;
        let bad = |what: &str| {
            let what = what.to_string();
            move |e: oci_spec::OciSpecError| RuntimeError::Invalid(format!("{what}: {e}"))
        };
        let insecure = spec.security == SecurityMode::Insecure;
        // Only what this process may pass on (the runtime fails to set a
        // capability outside its bounding set); the built-in runtime drops
        // the others from the bounding set the same way.
        let bounding = bounding_set();
        let numbers: Vec<u32> = if insecure {
            (0..=last_cap().min(63)).collect()
        } else {
            DEFAULT_CAPS.to_vec()
        };
        let caps: HashSet<Capability> = numbers
            .iter()
            .filter(|n| bounding & (1u64 << **n) != 0)
            .filter_map(|n| CAP_NAMES.get(*n as usize))
            .filter_map(|name| name.parse().ok())
            .collect();
        let user = UserBuilder::default()
            .uid(p.user.uid)
            .gid(p.user.gid)
            .additional_gids(p.user.groups.clone())
            .build()
            .map_err(bad("user"))?;
        let capabilities = LinuxCapabilitiesBuilder::default()
            .bounding(caps.clone())
            .effective(caps.clone())
            .permitted(caps)
            .inheritable(HashSet::new())
            .ambient(HashSet::new())
            .build()
            .map_err(bad("capabilities"))?;
        let process = ProcessBuilder::default()
            .terminal(false)
            .user(user)
            .args(spec.args.clone())
            .env(p.env.clone())
            .cwd(cwd)
            .capabilities(capabilities)
            .no_new_privileges(!insecure)
            .rlimits(rlimits()?)
            .build()
            .map_err(bad("process"))?;
        let mut namespaces = Vec::new();
        let mut types = vec![
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
            LinuxNamespaceType::Mount,
        ];
        if spec.network == NetworkMode::None {
            types.push(LinuxNamespaceType::Network);
        }
        let userns = self.userns();
        if userns {
            types.push(LinuxNamespaceType::User);
        }
        for typ in types {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(typ)
                    .build()
                    .map_err(bad("namespace"))?,
            );
        }
        let strings = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut linux = LinuxBuilder::default()
            .namespaces(namespaces)
            .uid_mappings(identity_map(userns)?)
            .gid_mappings(identity_map(userns)?)
            .devices(Vec::new());
        // A rootless kiln may not create cgroups; without a path, runc in
        // rootless mode creates none.
        if !self.rootless {
            linux = linux.cgroups_path(PathBuf::from(format!("/{id}")));
        }
        linux = if insecure {
            linux.masked_paths(Vec::new()).readonly_paths(Vec::new())
        } else {
            linux
                .masked_paths(strings(policy::MASKED_PATHS))
                .readonly_paths(strings(policy::READONLY_PATHS))
                .seccomp(seccomp::oci_profile())
        };
        let linux = linux.build().map_err(bad("linux"))?;
        let mut mounts = Vec::new();
        // sysfs needs a network namespace owned by the container's user
        // namespace; with the host's network, the host's /sys is bound.
        let bind_sys = self.rootless || (userns && spec.network == NetworkMode::Host);
        for m in &p.mounts {
            mounts.extend(oci_mounts(m, bind_sys)?);
        }
        let root = RootBuilder::default()
            .path(p.root.clone())
            .readonly(false)
            .build()
            .map_err(bad("root"))?;
        SpecBuilder::default()
            .version("1.0.2-dev")
            .root(root)
            .process(process)
            .hostname(files::hostname(&spec.hostname))
            .mounts(mounts)
            .linux(linux)
            .build()
            .map_err(bad("config.json"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_names_parse() {
        for name in CAP_NAMES {
            assert!(name.parse::<Capability>().is_ok(), "{name}");
        }
        assert_eq!(CAP_NAMES[40], "CHECKPOINT_RESTORE");
        assert_eq!(CAP_NAMES[21], "SYS_ADMIN");
    }

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
