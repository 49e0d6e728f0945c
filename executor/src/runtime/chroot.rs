//! The chroot isolation ([`ChrootRuntime`]): RUN steps where no namespace
//! can be created and nothing can be mounted, as in a container under
//! Docker's default seccomp profile and capabilities (Kubernetes'
//! `RuntimeDefault`), where Kaniko runs.
//!
//! Those settings still allow `chroot(2)` (CAP_SYS_CHROOT) and `mknod(2)`
//! (CAP_MKNOD), so the step runs in a copy snapshot (a plain directory):
//!
//! 1. The host side stages the rootfs: `/dev` with `null`, `zero`, `full`,
//!    `random`, `urandom` and `tty` made by mknod, `pts`, `shm` and the
//!    `fd`/`stdin`/`stdout`/`stderr` links; empty `/proc` and `/sys`;
//!    kiln's `/etc/hosts` and `/etc/resolv.conf` written over the image's
//!    (kept aside), and read-only file binds (heredoc scripts at
//!    `/dev/pipes/NAME`) copied in. Every path is resolved inside the
//!    rootfs first.
//! 2. The child starts a new session (its process group holds the step's
//!    process tree), chroots, creates and enters the working directory,
//!    drops the capability bounding set to Docker's 14 less
//!    `CAP_SYS_CHROOT` (so the classic chroot escape is not open), takes
//!    the user, sets `no_new_privs`, installs Docker's seccomp filter and
//!    Docker's rlimits, and `execve`s.
//! 3. When it exits, what is left of its process group is killed.
//! 4. The host side undoes the staging, with no path followed through a
//!    symlink the step may have planted: what the step created in `/dev`,
//!    `/proc` and `/sys` goes (the sandbox shows it tmpfs and kernel
//!    filesystems there), the image's hosts and resolv.conf come back,
//!    and the touched directories get their times back. The copy
//!    snapshot's diff then holds what the sandbox's would.
//!
//! What it does not isolate (the README's table lists it too): the step
//! shares kiln's pid, network, ipc and uts namespaces (it can see and
//! signal other processes of the container, and `hostname` is the
//! container's); there is no `/proc` (programs that need it fail); a
//! process that leaves the step's session is not killed; and a RUN
//! `--network=none` or `--mount` (other than a read-only bind of a file)
//! is refused, since both need what this isolation cannot make.

use super::builtin::{cwd_ops, exec_args, privilege_ops, step_cgroup};
use super::child::Op;
use super::plan::check_process;
use super::resolve::{self, beneath};
use super::spawn::{descs, report_error, spawn, Isolate};
use super::stubs::remove_stubs;
use super::{
    cpath, files, policy, prep, user, Mount, NetworkMode, RunOutput, RunRequest, Runtime,
    RuntimeError,
};
use crate::snapshot::SnapshotMount;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The chroot isolation (see the module docs). Needs copy snapshots
/// ([`crate::SnapshotMode::Copy`]), CAP_SYS_CHROOT and CAP_MKNOD.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChrootRuntime;

/// `CAP_SYS_CHROOT`, which the step does not keep.
const CAP_SYS_CHROOT: u32 = 18;

/// The device nodes of `/dev`: name, major, minor.
const DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

impl Runtime for ChrootRuntime {
    fn run(&self, req: &RunRequest<'_>) -> Result<RunOutput, RuntimeError> {
        let spec = req.process;
        check_process(spec)?;
        if spec.network == NetworkMode::None {
            return Err(RuntimeError::Unsupported(
                "RUN --network=none needs a network namespace, which the chroot isolation cannot create".into(),
            ));
        }
        if let Some(m) = req.mounts.iter().find(|m| copied_file(m).is_none()) {
            return Err(RuntimeError::Unsupported(format!(
                "RUN --mount (on {}) needs a mount, which the chroot isolation cannot make",
                m.target()
            )));
        }
        let root = match req.rootfs.mounts() {
            [SnapshotMount::Bind { source }] => source.clone(),
            _ => {
                return Err(RuntimeError::Invalid(
                    "the chroot isolation runs on copy snapshots".into(),
                ))
            }
        };
        let user = user::resolve(req.lower, &spec.user)?;
        let env = user.environment(&spec.env);

        let mut staged = Staged::new(&root);
        let result = stage(req, &mut staged).and_then(|()| {
            let mut ops: Vec<(String, Op)> = vec![
                ("setting the umask".into(), Op::Umask(0o022)),
                ("starting a session".into(), Op::NewSession),
                (
                    format!("changing root to {}", root.display()),
                    Op::Chroot(cpath(&root)?),
                ),
            ];
            cwd_ops(&mut ops, &spec.cwd)?;
            policy::rlimit_ops(&mut ops, &spec.resources);
            privilege_ops(&mut ops, spec, &user, &[CAP_SYS_CHROOT], None);
            let (candidates, argv, envp) = exec_args(&spec.args, &env)?;
            let descs = descs(&ops);
            let cgroup = step_cgroup(&spec.resources)?;
            let done = spawn(
                ops.into_iter().map(|(_, op)| op).collect(),
                candidates,
                argv,
                envp,
                Isolate {
                    flags: 0,
                    id_maps: None,
                    group: true,
                    ulimits: &spec.resources.ulimits,
                    cgroup: cgroup.as_ref(),
                    devices: None,
                },
                req,
            )?;
            if let Some(report) = &done.report {
                return Err(report_error(report, &descs, &spec.args[0]));
            }
            let mut notes = Vec::new();
            static SHM_NOTED: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if spec.resources.shm_size.is_some()
                && !SHM_NOTED.swap(true, std::sync::atomic::Ordering::Relaxed)
            {
                notes.push("--shm-size: the chroot isolation mounts nothing, so /dev/shm is a directory of the rootfs, without a size limit".to_string());
            }
            Ok(RunOutput {
                status: done.status,
                output: done.output,
                notes,
            })
        });
        let undone = staged.undo();
        let out = result?;
        undone?;
        Ok(out)
    }

    fn needs_copy_snapshots(&self) -> bool {
        true
    }
}

/// The host file of a read-only bind of a regular file (a heredoc
/// script at `/dev/pipes/NAME`, a `--mount=type=bind` of a file), which
/// this isolation shows as a copy in the rootfs, removed afterwards.
fn copied_file(m: &Mount) -> Option<&Path> {
    match m {
        Mount::Bind {
            source,
            readonly: true,
            ..
        } if std::fs::metadata(source).is_ok_and(|md| md.is_file()) => Some(source),
        _ => None,
    }
}

/// Stages the rootfs of `req` (step 1 of the module docs).
fn stage(req: &RunRequest<'_>, staged: &mut Staged) -> Result<(), RuntimeError> {
    let lower = req.lower;
    for name in ["/proc", "/sys", "/dev"] {
        let target = resolve::resolve(lower, name)?;
        let rel = target.comps.join("/");
        // Made for a base that lacks it, it stays (empty, 0755), as the
        // sandbox's mount point does.
        staged.kept_dir(&rel)?;
        staged.keep_only_what_is_there(&rel);
    }
    let dev = resolve::resolve(lower, "/dev")?.comps.join("/");
    for (name, major, minor) in DEVICES {
        staged.device(&format!("{dev}/{name}"), major, minor)?;
    }
    staged.dir(&format!("{dev}/pts"), 0o755)?;
    staged.dir(&format!("{dev}/shm"), 0o1777)?;
    for (name, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        staged.symlink(&format!("{dev}/{name}"), to)?;
    }
    let spec = req.process;
    for (name, content) in [
        (
            "/etc/hosts",
            files::hosts(&spec.hostname, &spec.extra_hosts),
        ),
        ("/etc/resolv.conf", files::resolv_conf(spec.network)),
    ] {
        let target = resolve::resolve(lower, name)?;
        staged.file(&target, content.as_bytes(), None)?;
    }
    for m in req.mounts {
        if let Some(source) = copied_file(m) {
            let content =
                std::fs::read(source).map_err(prep(format!("reading {}", source.display())))?;
            let mode = std::fs::metadata(source)
                .map_err(prep(format!("reading {}", source.display())))?
                .mode();
            let target = resolve::resolve(lower, m.target())?;
            staged.file(&target, &content, Some(mode & 0o7777))?;
        }
    }
    Ok(())
}

/// What staging changed in a rootfs, undone in reverse order.
struct Staged {
    root: PathBuf,
    undo: Vec<Undo>,
    /// Directories whose times come back at the end, with them.
    times: Vec<(String, Times)>,
}

/// A file's (atime, mtime), each (seconds, nanoseconds).
type Times = ((i64, i64), (i64, i64));

enum Undo {
    /// Remove a mount stub the way the sandbox does
    /// ([`remove_stubs`]: its parent keeps the times it has then, so a
    /// directory that got a stub is in the layer, as on overlayfs).
    Stub(String),
    /// Remove what staging created.
    Created(String),
    /// Put a file's bytes, mode and times back.
    Restore {
        rel: String,
        bytes: Vec<u8>,
        mode: u32,
        times: Times,
    },
    /// Remove what the step added to a directory that staging found with
    /// these entries.
    Prune {
        rel: String,
        before: Vec<std::ffi::OsString>,
    },
}

impl Staged {
    fn new(root: &Path) -> Staged {
        Staged {
            root: root.to_path_buf(),
            undo: Vec::new(),
            times: Vec::new(),
        }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Remembers the times of the parent directory of `rel` (once).
    fn remember_parent(&mut self, rel: &str) {
        let parent = rel.rsplit_once('/').map_or("", |(p, _)| p).to_string();
        if self.times.iter().any(|(p, _)| *p == parent) {
            return;
        }
        if let Ok(md) = std::fs::symlink_metadata(self.path(&parent)) {
            self.times.push((
                parent,
                ((md.atime(), md.atime_nsec()), (md.mtime(), md.mtime_nsec())),
            ));
        }
    }

    /// Creates the directory `rel` (0755) if missing, to stay.
    fn kept_dir(&mut self, rel: &str) -> Result<(), RuntimeError> {
        let p = self.path(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Ok(());
        }
        std::fs::create_dir(&p).map_err(prep(format!("creating {}", p.display())))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(prep(format!("setting the mode of {}", p.display())))
    }

    /// Creates the directory `rel` with `mode` if missing; it goes
    /// afterwards if it is still empty.
    fn dir(&mut self, rel: &str, mode: u32) -> Result<(), RuntimeError> {
        let p = self.path(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Ok(());
        }
        self.remember_parent(rel);
        std::fs::create_dir(&p).map_err(prep(format!("creating {}", p.display())))?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .map_err(prep(format!("setting the mode of {}", p.display())))?;
        self.undo.push(Undo::Created(rel.to_string()));
        Ok(())
    }

    /// Marks the directory `rel` so that what the step adds to it goes.
    fn keep_only_what_is_there(&mut self, rel: &str) {
        if let Ok(entries) = std::fs::read_dir(self.path(rel)) {
            let before = entries.flatten().map(|e| e.file_name()).collect();
            self.remember_parent(&format!("{rel}/x"));
            self.undo.push(Undo::Prune {
                rel: rel.to_string(),
                before,
            });
        }
    }

    fn device(&mut self, rel: &str, major: u32, minor: u32) -> Result<(), RuntimeError> {
        let p = self.path(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Ok(());
        }
        self.remember_parent(rel);
        let c = cpath(&p)?;
        // SAFETY: a valid path; a character device 0666 (the umask is
        // cleared by the chmod below).
        let made = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | 0o666,
                libc::makedev(major, minor),
            )
        };
        if made != 0 {
            return Err(prep(format!("creating the device {}", p.display()))(
                std::io::Error::last_os_error(),
            ));
        }
        self.undo.push(Undo::Created(rel.to_string()));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666))
            .map_err(prep(format!("setting the mode of {}", p.display())))
    }

    fn symlink(&mut self, rel: &str, to: &str) -> Result<(), RuntimeError> {
        let p = self.path(rel);
        if std::fs::symlink_metadata(&p).is_ok() {
            return Ok(());
        }
        self.remember_parent(rel);
        std::os::unix::fs::symlink(to, &p).map_err(prep(format!("creating {}", p.display())))?;
        self.undo.push(Undo::Created(rel.to_string()));
        Ok(())
    }

    /// Writes `content` at `target`, keeping what was there to put back,
    /// or creating it and its missing parents as mount stubs.
    fn file(
        &mut self,
        target: &resolve::Target,
        content: &[u8],
        mode: Option<u32>,
    ) -> Result<(), RuntimeError> {
        let rel = &target.comps.join("/");
        let p = self.path(rel);
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.is_file() => {
                let bytes = std::fs::read(&p).map_err(prep(format!("reading {}", p.display())))?;
                self.undo.push(Undo::Restore {
                    rel: rel.to_string(),
                    bytes,
                    mode: md.mode() & 0o7777,
                    times: ((md.atime(), md.atime_nsec()), (md.mtime(), md.mtime_nsec())),
                });
            }
            Ok(_) => return Ok(()),
            Err(_) => {
                // The parents this call makes: an earlier file of the same
                // step (`/etc/hosts` before `/etc/resolv.conf`) may have
                // made some since `target` was resolved.
                let comps = &target.comps;
                let mut made = Vec::new();
                for i in target.existing..comps.len().saturating_sub(1) {
                    let dir_rel = comps[..=i].join("/");
                    let dir = self.path(&dir_rel);
                    if std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                        continue;
                    }
                    std::fs::create_dir(&dir)
                        .map_err(prep(format!("creating {}", dir.display())))?;
                    made.push(dir_rel);
                }
                made.push(rel.to_string());
                // Undone in reverse: deepest first, each before its parent.
                for stub in made {
                    self.undo.push(Undo::Stub(stub));
                }
            }
        }
        std::fs::write(&p, content).map_err(prep(format!("writing {}", p.display())))?;
        if let Some(mode) = mode {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
                .map_err(prep(format!("setting the mode of {}", p.display())))?;
        }
        Ok(())
    }

    /// Undoes the staging (step 4 of the module docs): every path is
    /// reached without following a symlink, so nothing outside the rootfs
    /// is touched whatever the step did. All is tried; the first failure
    /// is returned.
    fn undo(self) -> Result<(), RuntimeError> {
        let mut first: Option<RuntimeError> = None;
        let mut note = |r: Result<(), RuntimeError>| {
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        };
        for undo in self.undo.iter().rev() {
            match undo {
                Undo::Stub(rel) => {
                    if let Some(p) = beneath(&self.root, rel) {
                        // Ours had content; an empty stub is what goes.
                        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                            let emptied = std::fs::OpenOptions::new()
                                .write(true)
                                .open(&p)
                                .and_then(|f| f.set_len(0));
                            note(emptied.map_err(prep(format!("emptying {}", p.display()))));
                        }
                    }
                    note(remove_stubs(&self.root, std::slice::from_ref(rel)));
                }
                Undo::Created(rel) => {
                    if let Some(p) = beneath(&self.root, rel) {
                        note(remove_created(&p));
                    }
                }
                Undo::Restore {
                    rel,
                    bytes,
                    mode,
                    times,
                } => {
                    if let Some(p) = beneath(&self.root, rel) {
                        note(restore_file(&p, bytes, *mode, *times));
                    }
                }
                Undo::Prune { rel, before } => {
                    if let Some(dir) = beneath(&self.root, rel) {
                        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                            if !before.contains(&e.file_name()) {
                                note(remove_entry(&e.path()));
                            }
                        }
                    }
                }
            }
        }
        for (rel, (atime, mtime)) in &self.times {
            if let Some(p) = beneath(&self.root, rel) {
                note(
                    crate::file_meta::set_times(&p, *atime, *mtime)
                        .map_err(prep(format!("restoring the times of {}", p.display()))),
                );
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Removes a file, link, device or directory tree (the path itself is
/// not followed; `remove_dir_all` does not follow links inside).
fn remove_entry(p: &Path) -> Result<(), RuntimeError> {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    let removed = if md.is_dir() {
        std::fs::remove_dir_all(p)
    } else {
        std::fs::remove_file(p)
    };
    removed.map_err(prep(format!("removing {}", p.display())))
}

/// Removes what staging created: a directory only while it is empty
/// (the step may have written into it, as into a mount stub).
fn remove_created(p: &Path) -> Result<(), RuntimeError> {
    match std::fs::symlink_metadata(p) {
        Ok(md) if md.is_dir() => {
            if std::fs::read_dir(p).is_ok_and(|mut d| d.next().is_none()) {
                std::fs::remove_dir(p).map_err(prep(format!("removing {}", p.display())))?;
            }
            Ok(())
        }
        Ok(_) => remove_entry(p),
        Err(_) => Ok(()),
    }
}

/// Puts a file's bytes, mode and times back.
fn restore_file(
    p: &Path,
    bytes: &[u8],
    mode: u32,
    (atime, mtime): Times,
) -> Result<(), RuntimeError> {
    let md = std::fs::symlink_metadata(p).map_err(prep(format!("reading {}", p.display())))?;
    if !md.is_file() {
        // The step replaced it: the sandbox would have kept its file.
        return Ok(());
    }
    std::fs::write(p, bytes).map_err(prep(format!("restoring {}", p.display())))?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(prep(format!("restoring the mode of {}", p.display())))?;
    crate::file_meta::set_times(p, atime, mtime)
        .map_err(prep(format!("restoring the times of {}", p.display())))
}
