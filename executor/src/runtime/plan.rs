//! The host side of a run that every runtime shares (`prepare`): the
//! request is checked, the user resolved through the rootfs's passwd and
//! group files, hosts and resolv.conf written to a per-run scratch
//! directory, the snapshot's mounts planned on the rootfs mount point
//! (an overlay lists a layer directory named twice once), every mount
//! target resolved inside the rootfs ([`Planned`] mounts: `/proc`, `/dev`,
//! `/sys`, `/etc/resolv.conf`, `/etc/hosts`, the extra [`Mount`]s by
//! depth), the views of [`Mount::Layers`] planned, and the mount stubs to
//! remove afterwards listed. Each runtime then turns the plan into the
//! child's operations (`builtin.rs`, `oci.rs`).

use super::child::Op;
use super::resolve::{self, Target};
use super::scratch::Scratch;
use super::stubs::{stub_paths, Kind};
use super::{cpath, cstr, files, prep, user, Fallbacks, Mount, RunRequest, RuntimeError};
use crate::snapshot::SnapshotMount;
use crate::stack::SourceTree;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The op making snapshot mount `m` at `target` (`empty` stands for
/// the lowers of an overlay without any; `fallbacks.overlay` and
/// `fallbacks.volatile` apply).
fn snapshot_op(
    m: &SnapshotMount,
    empty: &Path,
    target: &Path,
    fallbacks: &Fallbacks,
) -> Result<(String, Op), RuntimeError> {
    match m {
        SnapshotMount::Overlay {
            lowers,
            upper,
            work,
            volatile,
        } => overlay_op(
            lowers,
            empty,
            (upper, work),
            target,
            fallbacks.overlay,
            *volatile && !fallbacks.volatile,
        ),
        SnapshotMount::Bind { source } => Ok((
            format!("bind-mounting the rootfs copy on {}", target.display()),
            Op::Bind {
                src: cpath(source)?,
                target: cpath(target)?,
                recursive: false,
                readonly: false,
            },
        )),
    }
}

/// The op mounting an overlay of `lowers` (bottom first; `empty` when
/// there are none) with `upper` and `work` on `target`, `volatile` when
/// asked (and the kernel knows the option).
fn overlay_op(
    lowers: &[PathBuf],
    empty: &Path,
    (upper, work): (&Path, &Path),
    target: &Path,
    force_legacy: bool,
    volatile: bool,
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
    let legacy_volatile = format!("{legacy},volatile");
    Ok((
        format!("mounting overlay on {}", target.display()),
        Op::Overlay {
            lowers: lowers.iter().map(|p| cpath(p)).collect::<Result<_, _>>()?,
            upper: cpath(upper)?,
            work: cpath(work)?,
            target: cpath(target)?,
            legacy: (legacy.len() < 4000).then(|| cstr(&legacy)).transpose()?,
            legacy_volatile: (volatile && legacy_volatile.len() < 4000)
                .then(|| cstr(&legacy_volatile))
                .transpose()?,
            force_legacy,
            volatile,
        },
    ))
}

/// `p` made absolute.
fn absolute(p: &Path) -> Result<PathBuf, RuntimeError> {
    std::path::absolute(p).map_err(prep(format!("resolving {}", p.display())))
}

/// Refuses a path the overlay options cannot carry.
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
pub(super) enum What {
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
pub(super) struct Planned {
    /// What the error message calls it, e.g. `bind-mounting /etc/hosts`.
    pub(super) desc: String,
    pub(super) target: Target,
    pub(super) kind: Kind,
    pub(super) what: What,
}

impl Planned {
    /// The resolved absolute path inside the rootfs.
    pub(super) fn dest(&self) -> String {
        format!("/{}", self.target.comps.join("/"))
    }
}

/// The host-side preparation both runtimes share: the checked request,
/// the scratch directory with the rootfs mount point, hosts and
/// resolv.conf, the resolved user, the snapshot's mount ops, and the
/// mounts with their resolved targets and the stubs to remove afterwards.
pub(super) struct Prepared {
    /// The run's private directory (removed when this is dropped).
    pub(super) scratch: Scratch,
    /// The mount point of the rootfs (`<scratch>/rootfs`).
    pub(super) root: PathBuf,
    /// Where the process's writes land on the host (the stubs are
    /// removed there).
    pub(super) changes: PathBuf,
    /// The user the process runs as.
    pub(super) user: user::User,
    /// The environment, with `HOME` added when missing.
    pub(super) env: Vec<String>,
    /// Ops for the process's private mount namespace: the umask, `/`
    /// made private, the snapshot's mounts on `root`, the mounts of the
    /// [`Mount::Layers`] views and the secrets tmpfs with the secret files
    /// (outside the rootfs).
    pub(super) ops: Vec<(String, Op)>,
    /// `/proc`, `/dev`, `/sys`, `/etc/resolv.conf`, `/etc/hosts`, then the
    /// extra mounts sorted by depth (parents first).
    pub(super) mounts: Vec<Planned>,
    /// Mount stubs removed from `changes` afterwards.
    pub(super) stubs: Vec<String>,
    /// Whether kiln runs as root (of the host or of a user namespace).
    pub(super) is_root: bool,
    /// The secrets tmpfs (`<scratch>/secrets`), when `ops` mount it.
    pub(super) secrets: Option<PathBuf>,
}

/// Checks the request and prepares what both runtimes need (see
/// [`Prepared`]).
pub(super) fn prepare(
    req: &RunRequest<'_>,
    fallbacks: &Fallbacks,
) -> Result<Prepared, RuntimeError> {
    let spec = req.process;
    check_process(spec)?;
    let stack = req.lower;
    let is_root = crate::privileges::is_root();

    let user = user::resolve(stack, &spec.user)?;
    let env = user.environment(&spec.env);

    let scratch = Scratch::new()?;
    let root = scratch.dir.join("rootfs");
    std::fs::create_dir(&root).map_err(prep(format!("creating {}", root.display())))?;
    let hosts = scratch.dir.join("hosts");
    std::fs::write(&hosts, files::hosts(&spec.hostname, &spec.extra_hosts))
        .map_err(prep(format!("writing {}", hosts.display())))?;
    let resolv = scratch.dir.join("resolv.conf");
    std::fs::write(&resolv, files::resolv_conf(spec.network))
        .map_err(prep(format!("writing {}", resolv.display())))?;

    // ---- the snapshot
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
    for m in req.rootfs.mounts() {
        ops.push(snapshot_op(m, &empty, &root, fallbacks)?);
    }

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
    for m in req.mounts {
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
                let view = req
                    .snapshotter
                    .view(lower, &scratch.dir.join(format!("mount-{i}")))?;
                for m in &view.mounts {
                    ops.push(snapshot_op(m, &empty, &view.path, &Fallbacks::default())?);
                }
                let view = view.path;
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
        changes: req.rootfs.changes().to_path_buf(),
        user,
        env,
        ops,
        mounts,
        stubs,
        is_root,
        secrets: (secret_count > 0).then_some(secrets),
    })
}

/// Refuses a process no runtime can run: no argv, a relative working
/// directory, a hostname longer than the kernel takes.
pub(super) fn check_process(spec: &super::ProcessSpec) -> Result<(), RuntimeError> {
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
    Ok(())
}

/// Plans the tmpfs holding a step's secret files at `dir` (created here,
/// empty): mounted by the child in its private mount namespace, so only
/// that namespace ever sees the files, and they go with it.
pub(super) fn secret_tmpfs(ops: &mut Vec<(String, Op)>, dir: &Path) -> Result<(), RuntimeError> {
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

#[cfg(test)]
mod tests;
