//! `--cgroup-parent` for the runtimes that place the step's process
//! themselves (the built-in sandbox, crun without a cgroup manager, the
//! chroot isolation): a leaf cgroup `<parent>/<name>` in every mounted
//! hierarchy, which the step's first process joins before it goes on
//! (its descendants inherit it), removed after the step.
//!
//! Hierarchies come from `/proc/self/mountinfo`: the unified one
//! (cgroup v2, `cgroup2`: `/sys/fs/cgroup`, or `/sys/fs/cgroup/unified`
//! on a hybrid host) and each v1 hierarchy (`cgroup`: `cpu,cpuacct`,
//! `memory`, `pids`, `name=systemd`...), as runc's cgroupfs manager joins
//! them all. The parent is relative to each hierarchy's root, as Docker's
//! `--cgroup-parent` is; missing directories are created (and left, as
//! Docker leaves them). In a v1 `cpuset` hierarchy a new cgroup gets its
//! parent's `cpuset.cpus` and `cpuset.mems`, without which no process may
//! join it. Empty leaves that a kiln killed with `SIGKILL` left under the
//! same parent are removed when the next step makes its own.

use super::{prep, RuntimeError};
use std::path::{Path, PathBuf};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hierarchy {
    /// Where it is mounted.
    pub(super) mount: PathBuf,
    /// Cgroup v2 (`cgroup2`), else v1.
    pub(super) unified: bool,
    /// A v1 hierarchy with the `cpuset` controller.
    pub(super) cpuset: bool,
}

/// The hierarchies mounted in this mount namespace, one per hierarchy
/// (bind mounts of the same one are skipped).
pub(super) fn hierarchies() -> Result<Vec<Hierarchy>, RuntimeError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(prep("reading /proc/self/mountinfo"))?;
    Ok(parse_mountinfo(&text))
}

/// The cgroup hierarchies of a `mountinfo` text (see [`hierarchies`]).
pub(super) fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let mut rest = right.split(' ');
        let (Some(fstype), Some(_source), Some(options)) = (rest.next(), rest.next(), rest.next())
        else {
            continue;
        };
        let unified = match fstype {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let (Some(device), Some(root), Some(mount)) = (fields.get(2), fields.get(3), fields.get(4))
        else {
            continue;
        };
        // Only a hierarchy's root, once: a bind of a sub-cgroup (as in
        // some containers) would put the parent somewhere else.
        if *root != "/" || seen.contains(device) {
            continue;
        }
        seen.push(*device);
        out.push(Hierarchy {
            mount: PathBuf::from(unescape(mount)),
            unified,
            cpuset: !unified && options.split(',').any(|o| o == "cpuset"),
        });
    }
    out
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 4 <= bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A leaf cgroup made for one step, in every hierarchy; removed on drop.
#[derive(Debug)]
pub(super) struct Leaf {
    /// The leaf's directory in each hierarchy.
    dirs: Vec<PathBuf>,
}

/// The error of a cgroup operation, naming `--cgroup-parent`.
fn failed(what: String) -> impl FnOnce(std::io::Error) -> RuntimeError {
    move |error| RuntimeError::Prepare {
        step: format!("--cgroup-parent: {what}"),
        error,
    }
}

impl Leaf {
    /// Creates `<parent>/<name>` (`parent` as [`super::cgroup_parent`]
    /// returns it) in each of `hierarchies`, with any missing parents.
    ///
    /// # Errors
    /// [`RuntimeError::Unsupported`] when no hierarchy is mounted;
    /// [`RuntimeError::Prepare`] when a directory cannot be made (a
    /// rootless kiln, or a read-only cgroupfs).
    pub(super) fn create(
        hierarchies: &[Hierarchy],
        parent: &str,
        name: &str,
    ) -> Result<Leaf, RuntimeError> {
        if hierarchies.is_empty() {
            return Err(RuntimeError::Unsupported(
                "--cgroup-parent: no cgroup hierarchy is mounted here".into(),
            ));
        }
        let mut leaf = Leaf { dirs: Vec::new() };
        for h in hierarchies {
            let mut dir = h.mount.clone();
            for comp in parent.split('/').chain([name]) {
                let up = dir.clone();
                dir.push(comp);
                match std::fs::create_dir(&dir) {
                    Ok(()) => {
                        if h.cpuset {
                            inherit_cpuset(&up, &dir)?;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && comp != name => {}
                    Err(e) => return Err(failed(format!("creating {}", dir.display()))(e)),
                }
            }
            if let Some(up) = dir.parent() {
                sweep_stale(up);
            }
            leaf.dirs.push(dir);
        }
        Ok(leaf)
    }

    /// Moves `pid` (and so what it starts) into the leaf, in every
    /// hierarchy.
    ///
    /// # Errors
    /// [`RuntimeError::Prepare`] when a `cgroup.procs` write fails.
    pub(super) fn join(&self, pid: libc::pid_t) -> Result<(), RuntimeError> {
        for dir in &self.dirs {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, pid.to_string())
                .map_err(failed(format!("moving the step into {}", dir.display())))?;
        }
        Ok(())
    }

    /// The leaf's directories (for tests).
    #[cfg(test)]
    pub(super) fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

impl Drop for Leaf {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // A process that has just exited may hold the cgroup for a
            // moment (EBUSY); a leftover one (a daemon that escaped the
            // chroot isolation's process group) keeps it.
            for _ in 0..50 {
                match std::fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    _ => break,
                }
            }
        }
    }
}

/// Copies `cpuset.cpus` and `cpuset.mems` from `up` to the new v1 cgroup
/// `dir` where they are empty.
fn inherit_cpuset(up: &Path, dir: &Path) -> Result<(), RuntimeError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if !current.trim().is_empty() {
            continue;
        }
        let value = std::fs::read_to_string(up.join(file))
            .map_err(failed(format!("reading {}", up.join(file).display())))?;
        std::fs::write(dir.join(file), value.trim())
            .map_err(failed(format!("writing {}", dir.join(file).display())))?;
    }
    Ok(())
}

/// Removes the leaf cgroups in `dir` that a kiln killed with `SIGKILL`
/// left: empty `kiln-<pid>-<n>` directories whose process is gone.
fn sweep_stale(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kiln-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, n)| n.parse::<u64>().ok().and(pid.parse::<libc::pid_t>().ok()))
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let gone = pid > 0
            && unsafe { libc::kill(pid, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            // Only an empty cgroup goes.
            let _ = std::fs::remove_dir(e.path());
        }
    }
}

/// A name for a step's leaf cgroup, unique on this host: `kiln-<pid>-<n>`.
pub(super) fn leaf_name() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("kiln-{}-{n}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:24 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:25 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
28 26 0:26 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
31 26 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
32 26 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpuset
90 30 0:30 / /mnt/again\\040x rw - cgroup cgroup rw,cpuset
91 30 0:29 /docker/abc /mnt/sub rw - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn hybrid_hosts_list_every_hierarchy_once() {
        let h = parse_mountinfo(HYBRID);
        let mounts: Vec<&str> = h.iter().map(|h| h.mount.to_str().unwrap()).collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup/unified",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/cpuset"
            ]
        );
        assert!(h[0].unified && !h[1].unified);
        assert!(h[3].cpuset && !h[2].cpuset);
    }

    #[test]
    fn unified_hosts_have_one_hierarchy() {
        let v2 = "30 1 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(
            parse_mountinfo(v2),
            [Hierarchy {
                mount: "/sys/fs/cgroup".into(),
                unified: true,
                cpuset: false
            }]
        );
        assert_eq!(unescape("/a\\040b"), "/a b");
    }

    #[test]
    fn leaves_are_made_under_the_parent_and_removed() {
        // Plain directories stand in for cgroupfs: the paths are what is
        // tested here (cgroupfs itself in executor/tests/cgroups.rs).
        let tmp = tempfile::TempDir::new().unwrap();
        let h: Vec<Hierarchy> = ["unified", "memory"]
            .iter()
            .map(|n| {
                std::fs::create_dir(tmp.path().join(n)).unwrap();
                Hierarchy {
                    mount: tmp.path().join(n),
                    unified: *n == "unified",
                    cpuset: false,
                }
            })
            .collect();
        let leaf = Leaf::create(&h, "ci/jobs", "kiln-1-0").unwrap();
        assert_eq!(
            leaf.dirs(),
            [
                tmp.path().join("unified/ci/jobs/kiln-1-0"),
                tmp.path().join("memory/ci/jobs/kiln-1-0")
            ]
        );
        // A second step of the same name is refused, not shared.
        assert!(Leaf::create(&h, "ci/jobs", "kiln-1-0").is_err());
        drop(leaf);
        assert!(!tmp.path().join("memory/ci/jobs/kiln-1-0").exists());
        assert!(tmp.path().join("memory/ci/jobs").is_dir());
        assert!(matches!(
            Leaf::create(&[], "ci", "x"),
            Err(RuntimeError::Unsupported(_))
        ));
        assert_ne!(leaf_name(), leaf_name());
        // What a killed kiln left goes with the next step under the parent;
        // a running kiln's and other names stay.
        let jobs = tmp.path().join("memory/ci/jobs");
        for name in ["kiln-999999999-0", "kiln-run-x", "other"] {
            std::fs::create_dir(jobs.join(name)).unwrap();
        }
        let mine = format!("kiln-{}-77", std::process::id());
        std::fs::create_dir(jobs.join(&mine)).unwrap();
        let leaf = Leaf::create(&h, "ci/jobs", "kiln-1-1").unwrap();
        assert!(!jobs.join("kiln-999999999-0").exists());
        for name in ["kiln-run-x", "other", mine.as_str()] {
            assert!(jobs.join(name).exists(), "{name}");
        }
        drop(leaf);
    }

    /// A real cgroup v2 hierarchy, mounted on a temporary directory and
    /// used alone (as on a unified host, whatever this host is): a process
    /// joins the leaf, and the leaf goes when it has exited.
    #[test]
    fn a_process_joins_a_unified_hierarchy() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting cgroup2 needs root");
            return;
        }
        let tmp = tempfile::TempDir::new().unwrap();
        let at = tmp.path().join("cg2");
        std::fs::create_dir(&at).unwrap();
        let c = |p: &Path| std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        let (src, fstype) = (c(Path::new("cgroup2")), c(Path::new("cgroup2")));
        let target = c(&at);
        // SAFETY: valid C strings; no data.
        let mounted = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                std::ptr::null(),
            )
        } == 0;
        if !mounted {
            eprintln!(
                "skipped: cgroup2 cannot be mounted here: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        struct Unmount(std::ffi::CString);
        impl Drop for Unmount {
            fn drop(&mut self) {
                // SAFETY: a valid C string.
                unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _unmount = Unmount(target.clone());
        assert!(at.join("cgroup.controllers").exists(), "not cgroup v2");
        let found = parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap());
        let h: Vec<Hierarchy> = found.into_iter().filter(|h| h.mount == at).collect();
        // Mounted again, the host's own v2 hierarchy is the same one (and
        // is then listed once, at its first mount point).
        let h = if h.is_empty() {
            vec![Hierarchy {
                mount: at.clone(),
                unified: true,
                cpuset: false,
            }]
        } else {
            h
        };
        assert!(h[0].unified);
        let parent = format!("kiln-unit-{}", std::process::id());
        let leaf = Leaf::create(&h, &format!("{parent}/ci"), "kiln-step").unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let joined = leaf.join(pid);
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        joined.unwrap();
        assert!(
            cgroup
                .lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&format!("/{parent}/ci/kiln-step"))),
            "{cgroup}"
        );
        drop(leaf);
        assert!(!at.join(&parent).join("ci/kiln-step").exists());
        let _ = std::fs::remove_dir(at.join(&parent).join("ci"));
        let _ = std::fs::remove_dir(at.join(&parent));
    }
}
