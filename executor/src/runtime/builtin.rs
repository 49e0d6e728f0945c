//! The built-in runtime: runs the process itself, in namespaces of its
//! own (see the module docs of `runtime`).

use super::cgroup::{self, Leaf};
use super::child::Op;
use super::devices::Channel;
use super::plan::{prepare, Planned, Prepared, What};
use super::spawn::{descs, report_error, spawn, Isolate};
use super::stubs::{create_stub, remove_stubs};
use super::{
    cpath, cstr, files, policy, seccomp, user, Fallbacks, NetworkMode, ProcessSpec, Resources,
    RunOutput, RunRequest, Runtime, RuntimeError, SecurityMode,
};
use std::ffi::CString;
use std::os::fd::AsRawFd;

/// The built-in namespace sandbox (see the module docs). Needs a kernel
/// that lets this process create user namespaces (≥ 5.11 for overlay in a
/// user namespace; ≥ 6.8 for `lowerdir+`, older kernels use `lowerdir=`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinRuntime {
    fallbacks: Fallbacks,
}

impl BuiltinRuntime {
    /// The runtime, taking the ways of `fallbacks` even where the
    /// preferred ones work.
    pub fn new(fallbacks: Fallbacks) -> BuiltinRuntime {
        BuiltinRuntime { fallbacks }
    }
}

impl Runtime for BuiltinRuntime {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        run(req, &self.fallbacks)
    }
}

/// Docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
/// KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT,
/// MKNOD, AUDIT_WRITE, SETFCAP.
pub(super) const DEFAULT_CAPS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Plans the ops of the built-in runtime for one mount (its stub first).
fn mount_ops(
    ops: &mut Vec<(String, Op)>,
    p: &Prepared,
    m: &Planned,
    fallbacks: &Fallbacks,
    shm: &str,
) -> Result<(), RuntimeError> {
    let dst = create_stub(ops, &p.root, &m.target, m.kind)?;
    let nse = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    match &m.what {
        What::Proc => ops.push((
            m.desc.clone(),
            Op::Proc {
                target: dst,
                force_bind: fallbacks.proc,
            },
        )),
        What::Sys => ops.push((
            m.desc.clone(),
            Op::Sys {
                target: dst,
                force_bind: fallbacks.sys,
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
            // The tty group (5), where this namespace maps it.
            let devpts_opts = if p.is_root && crate::privileges::gid_mapped(5) {
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
                    data: Some(cstr(format!("mode=1777,{shm}"))?),
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

/// What the built-in runtime's child gets: its operations (with what
/// the error messages call them), then the `execve` of the first usable
/// candidate with `argv` and `envp`, in new namespaces (`flags`).
pub(super) struct BuiltinPlan {
    /// The operations, in order.
    pub(super) ops: Vec<(String, Op)>,
    /// The paths `args[0]` may be (looked up in `PATH` unless it has a `/`).
    pub(super) candidates: Vec<CString>,
    /// The arguments.
    pub(super) argv: Vec<CString>,
    /// The environment.
    pub(super) envp: Vec<CString>,
    /// The `clone` flags (namespaces).
    pub(super) flags: libc::c_int,
    /// The socket the child sends its seccomp listener over, for the
    /// device supervisor (`devices.rs`); `None` without a filter.
    pub(super) devices: Option<Channel>,
}

/// Plans the built-in runtime's child for a prepared run `p` (see the
/// module docs of `runtime`); touches nothing on the host.
pub(super) fn plan(
    req: &RunRequest<'_>,
    p: &mut Prepared,
    fallbacks: &Fallbacks,
) -> Result<BuiltinPlan, RuntimeError> {
    let spec = req.process;
    let mut ops = std::mem::take(&mut p.ops);
    let shm = spec.resources.shm_option();
    for m in &p.mounts {
        mount_ops(&mut ops, p, m, fallbacks, &shm)?;
    }

    policy::hardening_ops(&mut ops, req.lower, &p.root, spec.security)?;

    // ---- into the rootfs
    ops.push((
        "pivot_root".into(),
        Op::Pivot {
            root: cpath(&p.root)?,
            force_move: fallbacks.pivot,
        },
    ));
    ops.push((
        "setting the hostname".into(),
        Op::Hostname(files::hostname(&spec.hostname).as_bytes().to_vec()),
    ));
    if spec.network == NetworkMode::None {
        ops.push(("bringing up lo".into(), Op::LoUp));
    }
    cwd_ops(&mut ops, &spec.cwd)?;
    let devices = match spec.security {
        SecurityMode::Insecure => None,
        SecurityMode::Sandbox => Some(Channel::new()?),
    };
    privilege_ops(
        &mut ops,
        spec,
        &p.user,
        &[],
        devices.as_ref().map(|c| c.child.as_raw_fd()),
    );
    // Last, so a small `nofile` starves neither the mounts nor the
    // filter's listener.
    policy::rlimit_ops(&mut ops, &spec.resources);

    // ---- exec
    let (candidates, argv, envp) = exec_args(&spec.args, &p.env)?;

    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    if spec.network == NetworkMode::None {
        flags |= libc::CLONE_NEWNET;
    }
    Ok(BuiltinPlan {
        ops,
        candidates,
        argv,
        envp,
        flags,
        devices,
    })
}

/// What the child `execve`s: the paths `args[0]` may be (looked up in
/// the `PATH` of `env`, or the default one, unless it has a `/`), the
/// arguments and the environment.
#[allow(clippy::type_complexity)]
pub(super) fn exec_args(
    args: &[String],
    env: &[String],
) -> Result<(Vec<CString>, Vec<CString>, Vec<CString>), RuntimeError> {
    let program = &args[0];
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
    let argv: Vec<CString> = args.iter().map(cstr).collect::<Result<_, _>>()?;
    let envp: Vec<CString> = env.iter().map(cstr).collect::<Result<_, _>>()?;
    Ok((candidates, argv, envp))
}

/// The ops that leave the child with the step's privileges, last before
/// the `execve`: the capability bounding set cut to Docker's defaults less
/// `withheld` (kept whole with `--security=insecure`), the user, and
/// (unless insecure) `no_new_privs` and Docker's seccomp filter; with a
/// `listener` socket, the filter hands device `mknod`s to the supervisor
/// the listener is sent to (`devices.rs`).
pub(super) fn privilege_ops(
    ops: &mut Vec<(String, Op)>,
    spec: &ProcessSpec,
    user: &user::User,
    withheld: &[u32],
    listener: Option<std::os::fd::RawFd>,
) {
    let insecure = spec.security == SecurityMode::Insecure;
    let keep = if insecure {
        u64::MAX
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| !withheld.contains(c))
            .fold(0u64, |m, c| m | (1 << c))
    };
    ops.push((
        "dropping capabilities".into(),
        Op::DropBounding {
            keep,
            last_cap: last_cap(),
        },
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
        if let Some(filter) = seccomp::filter(listener.is_some()) {
            ops.push((
                "installing the seccomp filter".into(),
                Op::Seccomp {
                    filter,
                    listener: listener.unwrap_or(-1),
                },
            ));
        }
    }
}

/// The ops that create the working directory `cwd` (each missing
/// component, 0755) and change into it, inside the new root.
pub(super) fn cwd_ops(ops: &mut Vec<(String, Op)>, cwd: &str) -> Result<(), RuntimeError> {
    let mut prefix = String::new();
    for c in cwd.split('/').filter(|c| !c.is_empty() && *c != ".") {
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
        format!("changing to the working directory {cwd}"),
        Op::Chdir(cstr(cwd)?),
    ));
    Ok(())
}

/// One run of the built-in runtime.
fn run(req: &RunRequest<'_>, fallbacks: &Fallbacks) -> Result<RunOutput, RuntimeError> {
    let mut p = prepare(req, fallbacks)?;
    let plan = plan(req, &mut p, fallbacks)?;
    let descs = descs(&plan.ops);
    let cgroup = step_cgroup(&req.process.resources)?;
    let done = spawn(
        plan.ops.into_iter().map(|(_, op)| op).collect(),
        plan.candidates,
        plan.argv,
        plan.envp,
        Isolate {
            flags: plan.flags,
            id_maps: Some(p.is_root),
            group: false,
            ulimits: &req.process.resources.ulimits,
            cgroup: cgroup.as_ref(),
            devices: plan.devices,
        },
        req,
    )?;
    if let Some(report) = &done.report {
        let _ = remove_stubs(&p.changes, &p.stubs);
        return Err(report_error(report, &descs, &req.process.args[0]));
    }
    remove_stubs(&p.changes, &p.stubs)?;
    Ok(RunOutput {
        status: done.status,
        output: done.output,
        notes: Vec::new(),
    })
}

/// The step's leaf cgroup under `--cgroup-parent`, when one is given
/// (see `cgroup.rs`).
pub(super) fn step_cgroup(resources: &Resources) -> Result<Option<Leaf>, RuntimeError> {
    let Some(parent) = &resources.cgroup_parent else {
        return Ok(None);
    };
    let hierarchies = cgroup::hierarchies()?;
    Leaf::create(&hierarchies, parent, &cgroup::leaf_name()).map(Some)
}

/// `/proc/sys/kernel/cap_last_cap` (40 when unreadable).
pub(super) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}
