//! The hardening Docker, containerd and BuildKit apply to a build
//! container besides capabilities and seccomp: masked and read-only
//! `/proc` and `/sys` paths, and resource limits. The constants are shared
//! with the OCI bundle generator; [`hardening_ops`] plans them for the
//! built-in runtime.
//!
//! - **Masked paths** (moby's default spec, Docker 28 / API 1.48, which
//!   added `/proc/interrupts`): a file gets `/dev/null` bound over it, a
//!   directory an empty read-only tmpfs, as runc does. Docker also masks
//!   each `/sys/devices/system/cpu/cpuN/thermal_throttle`; that per-CPU
//!   list is left out.
//! - **Read-only paths**: a recursive read-only bind of the path on itself.
//! - Both are skipped for paths the kernel does not have, and both are
//!   dropped under [`SecurityMode::Insecure`](super::SecurityMode), as
//!   Docker's privileged mode unmasks them.
//! - **Rlimits**: containerd's default spec sets `RLIMIT_NOFILE` 1024/1024,
//!   but BuildKit's executors reset `process.rlimits` to none (unless
//!   `--ulimit` is given), so a RUN inherits buildkitd's limits. Since
//!   Docker 25 (moby#45534) and containerd 2.0 dropped
//!   `LimitNOFILE=infinity` from their systemd units, that is systemd's
//!   default: soft 1024, hard 524288 (a soft limit of 2^20 or 2^30 made
//!   software that walks every fd crawl). kiln sets those explicitly,
//!   clamped to its own hard limit (raising a hard limit needs
//!   `CAP_SYS_RESOURCE` in the initial user namespace). A `--ulimit` of
//!   the same resource replaces it (see `resources.rs`).

use super::child::Op;
use super::{cpath, resolve, Resources, RuntimeError, SecurityMode};
use crate::stack::LayerStack;
use std::path::Path;

/// Paths hidden from a RUN (Docker's `MaskedPaths`).
pub(super) const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths made read-only (Docker's `ReadonlyPaths`).
pub(super) const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// One resource limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Rlimit {
    /// The OCI name, e.g. `RLIMIT_NOFILE`.
    pub name: &'static str,
    /// The `RLIMIT_*` number.
    pub resource: u32,
    /// The soft limit.
    pub soft: u64,
    /// The hard limit.
    pub hard: u64,
}

/// The limits of a RUN process (see the module docs).
pub(super) const RLIMITS: &[Rlimit] = &[Rlimit {
    name: "RLIMIT_NOFILE",
    // A `u32` with glibc, a `c_int` with musl.
    #[allow(clippy::unnecessary_cast)]
    resource: libc::RLIMIT_NOFILE as u32,
    soft: 1024,
    hard: 524_288,
}];

/// `limit` clamped to this process's hard limit (a RUN cannot get more
/// than kiln has): `(soft, hard)`.
pub(super) fn clamp(limit: &Rlimit) -> (u64, u64) {
    let mut cur = libc::rlimit64 {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: cur is a valid rlimit64 to write to.
    #[allow(clippy::unnecessary_cast)]
    let ok = unsafe { libc::getrlimit64(limit.resource as _, &mut cur) } == 0;
    let hard = if ok {
        limit.hard.min(cur.rlim_max)
    } else {
        limit.hard
    };
    (limit.soft.min(hard), hard)
}

/// Plans the masked paths and the read-only paths (not under
/// [`SecurityMode::Insecure`]) for the rootfs mounted at
/// `root` (before `pivot_root`; `/proc` and `/sys` are mounted there at
/// their resolved places).
///
/// # Errors
/// [`RuntimeError`] when `/proc` or `/sys` cannot be resolved in `stack`
/// or a path contains a NUL byte.
pub(super) fn hardening_ops(
    ops: &mut Vec<(String, Op)>,
    stack: &LayerStack,
    root: &Path,
    security: SecurityMode,
) -> Result<(), RuntimeError> {
    if security != SecurityMode::Insecure {
        // /proc and /sys are kernel filesystems (fresh or bound from the
        // host): nothing below them comes from the image, so the rest of
        // the path needs no resolution inside the rootfs.
        let real = |path: &str| -> Result<std::path::PathBuf, RuntimeError> {
            let (top, rest) = path
                .trim_start_matches('/')
                .split_once('/')
                .unwrap_or((path, ""));
            let t = resolve::resolve(stack, &format!("/{top}"))?;
            Ok(root.join(t.comps.join("/")).join(rest))
        };
        for path in MASKED_PATHS {
            ops.push((
                format!("masking {path}"),
                Op::MaskPath(cpath(&real(path)?)?),
            ));
        }
        for path in READONLY_PATHS {
            ops.push((
                format!("making {path} read-only"),
                Op::ReadonlyPath(cpath(&real(path)?)?),
            ));
        }
    }
    Ok(())
}

/// The default rlimits that `resources` does not replace.
pub(super) fn defaults(resources: &Resources) -> impl Iterator<Item = &'static Rlimit> + '_ {
    RLIMITS.iter().filter(|l| {
        !resources
            .ulimits
            .iter()
            .any(|u| u.name.resource() == l.resource)
    })
}

/// The ops setting the step's rlimits: Docker's (`RLIMIT_NOFILE`
/// 1024/524288) but for those that `resources` replaces, then the
/// `--ulimit`s. They run last in the child, after its mounts and its
/// seccomp filter (a small `nofile` must starve neither the mounts nor the
/// filter's listener); a hard limit above kiln's own has been
/// raised by the host side first (see `spawn.rs`), since the child may only
/// lower one.
pub(super) fn rlimit_ops(ops: &mut Vec<(String, Op)>, resources: &Resources) {
    let given = resources.ulimits.iter().map(|u| {
        (
            format!("setting --ulimit {u}"),
            u.name.resource(),
            u.soft,
            u.hard,
        )
    });
    let defaults =
        defaults(resources).map(|l| (format!("setting {}", l.name), l.resource, l.soft, l.hard));
    for (desc, resource, soft, hard) in defaults.collect::<Vec<_>>().into_iter().chain(given) {
        ops.push((
            desc,
            Op::Rlimit {
                resource,
                soft,
                hard,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_every_path_unless_insecure() {
        let stack = LayerStack::default();
        let root = Path::new("/tmp/x/root");
        let mut ops = Vec::new();
        hardening_ops(&mut ops, &stack, root, SecurityMode::Sandbox).unwrap();
        let names: Vec<&str> = ops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.len(), MASKED_PATHS.len() + READONLY_PATHS.len());
        assert!(names.contains(&"masking /proc/kcore"));
        assert!(names.contains(&"making /proc/sys read-only"));
        let kcore = ops.iter().find_map(|(_, op)| match op {
            Op::MaskPath(p) => Some(p.clone()),
            _ => None,
        });
        assert_eq!(kcore.unwrap().to_str().unwrap(), "/tmp/x/root/proc/asound");
        let mut ops = Vec::new();
        hardening_ops(&mut ops, &stack, root, SecurityMode::Insecure).unwrap();
        assert!(ops.is_empty());
        // The default rlimits, and a --ulimit nofile replaces the default one.
        let mut ops = Vec::new();
        rlimit_ops(&mut ops, &Resources::default());
        assert_eq!(ops.len(), RLIMITS.len());
        let resources = Resources {
            ulimits: vec!["nofile=10:20".parse().unwrap()],
            ..Resources::default()
        };
        let mut ops = Vec::new();
        rlimit_ops(&mut ops, &resources);
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].0, "setting --ulimit nofile=10:20");
        assert!(matches!(
            ops[0].1,
            Op::Rlimit {
                soft: 10,
                hard: 20,
                ..
            }
        ));
    }

    #[test]
    fn proc_behind_a_symlink_is_resolved_in_the_rootfs() {
        let tmp = tempfile::TempDir::new().unwrap();
        let layer = tmp.path().join("l");
        std::fs::create_dir_all(layer.join("real")).unwrap();
        std::os::unix::fs::symlink("/real", layer.join("proc")).unwrap();
        let stack = LayerStack::new(vec![layer]);
        let mut ops = Vec::new();
        hardening_ops(&mut ops, &stack, Path::new("/r"), SecurityMode::Sandbox).unwrap();
        let first = ops.iter().find_map(|(_, op)| match op {
            Op::MaskPath(p) => Some(p.clone()),
            _ => None,
        });
        assert_eq!(first.unwrap().to_str().unwrap(), "/r/real/asound");
    }
}
