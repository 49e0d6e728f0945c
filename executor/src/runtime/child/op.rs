//! What the host side hands the child: the operations it runs before its
//! `execve`, in order (listed by `plan.rs`, `builtin.rs` and `oci.rs`,
//! executed by `mod.rs` with raw syscalls), the exec arguments and the
//! file descriptors ([`ChildPlan`]); and the child's failure report read
//! back ([`parse_report`]).

use std::ffi::{c_char, CString};

/// One setup operation.
#[derive(Debug)]
pub(in crate::runtime) enum Op {
    /// `umask(mask)`.
    Umask(u32),
    /// `mount(2)`.
    Mount {
        src: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// An overlay with `userxattr`: `fsopen` + one `lowerdir+` per layer
    /// (top first), falling back to `mount(2)` with `legacy` when the
    /// new API or `lowerdir+` is not supported. With `volatile`, the
    /// option is added (`legacy_volatile` for `mount(2)`); a kernel that
    /// does not know it (before 5.10: `EINVAL`) mounts without it.
    Overlay {
        lowers: Vec<CString>,
        upper: CString,
        work: CString,
        target: CString,
        legacy: Option<CString>,
        legacy_volatile: Option<CString>,
        /// Skip the new mount API (testing the fallback).
        force_legacy: bool,
        volatile: bool,
    },
    /// A fresh proc, or a recursive bind of the host's when refused.
    Proc { target: CString, force_bind: bool },
    /// A fresh read-only sysfs, or a read-only recursive bind of the
    /// host's `/sys` when refused (no owned netns).
    Sys { target: CString, force_bind: bool },
    /// A bind mount, made read-only with `mount_setattr` if asked.
    Bind {
        src: CString,
        target: CString,
        recursive: bool,
        readonly: bool,
    },
    /// `mkdir`; an existing path is fine.
    Mkdir { path: CString, mode: u32 },
    /// Creates an empty file (0644) unless the path exists.
    Touch { path: CString },
    /// Creates a new file with no permissions, gives it `mode` (not
    /// reduced by the umask) and its owner, then writes `data` (a secret:
    /// nobody else can open it before its content is there).
    WriteFile {
        path: CString,
        data: Vec<u8>,
        mode: u32,
        uid: u32,
        gid: u32,
    },
    /// `symlink(target, link)`.
    Symlink { target: CString, link: CString },
    /// Runs the operation, ignoring failure.
    Optional(Box<Op>),
    /// `pivot_root(root, root)` + detach the old root, or `MS_MOVE` +
    /// `chroot`; then `chdir("/")`.
    Pivot { root: CString, force_move: bool },
    /// `chdir(root)` + `chroot(".")` + `chdir("/")`: the rootfs of the
    /// chroot isolation, which makes no mounts.
    Chroot(CString),
    /// `setsid`: the process and what it starts form a process group the
    /// parent kills as a whole (the chroot isolation has no pid namespace).
    NewSession,
    /// `sethostname`.
    Hostname(Vec<u8>),
    /// Brings `lo` up.
    LoUp,
    /// `chdir`.
    Chdir(CString),
    /// Drops every capability not in `keep` from the bounding set.
    DropBounding { keep: u64, last_cap: u32 },
    /// `setgroups`, `setresgid`, `setresuid`.
    SetUser {
        uid: u32,
        gid: u32,
        groups: Vec<libc::gid_t>,
    },
    /// `PR_SET_NO_NEW_PRIVS`.
    NoNewPrivs,
    /// Installs a seccomp filter (after `NoNewPrivs`). With a `listener`
    /// socket (≥ 0), the filter is made with a notification listener,
    /// which is sent through that socket to the parent's supervisor.
    Seccomp {
        filter: Vec<libc::sock_filter>,
        listener: i32,
    },
    /// Masks a path as runc does: `/dev/null` bound over a file, an empty
    /// read-only tmpfs over a directory; nothing when it does not exist.
    MaskPath(CString),
    /// Makes a path a recursive read-only bind of itself; nothing when it
    /// does not exist.
    ReadonlyPath(CString),
    /// `prlimit64` on the child, both limits clamped to its current hard
    /// limit (raising it needs `CAP_SYS_RESOURCE` in the initial
    /// namespace).
    Rlimit { resource: u32, soft: u64, hard: u64 },
}

/// Everything the child needs, prepared by the parent.
pub(in crate::runtime) struct ChildPlan {
    pub(super) ops: Vec<Op>,
    pub(super) candidates: Vec<CString>,
    pub(super) argv: Vec<CString>,
    pub(super) envp: Vec<CString>,
    pub(super) argv_ptrs: Vec<*const c_char>,
    pub(super) envp_ptrs: Vec<*const c_char>,
    pub(super) stdin: i32,
    pub(super) out: i32,
    pub(super) err: i32,
    pub(super) sync: i32,
}

impl ChildPlan {
    #[allow(clippy::too_many_arguments)]
    pub(in crate::runtime) fn new(
        ops: Vec<Op>,
        candidates: Vec<CString>,
        argv: Vec<CString>,
        envp: Vec<CString>,
        stdin: i32,
        out: i32,
        err: i32,
        sync: i32,
    ) -> ChildPlan {
        let mut argv_ptrs: Vec<*const c_char> = argv.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(std::ptr::null());
        let mut envp_ptrs: Vec<*const c_char> = envp.iter().map(|c| c.as_ptr()).collect();
        envp_ptrs.push(std::ptr::null());
        ChildPlan {
            ops,
            candidates,
            argv,
            envp,
            argv_ptrs,
            envp_ptrs,
            stdin,
            out,
            err,
            sync,
        }
    }
}

/// Parses a child report: (operation index, errno, detail).
pub(in crate::runtime) fn parse_report(report: &[u8]) -> Option<(usize, i32, String)> {
    if report.len() < 12 {
        return None;
    }
    let step = u32::from_ne_bytes(report[0..4].try_into().ok()?) as usize;
    let errno = i32::from_ne_bytes(report[4..8].try_into().ok()?);
    let len = u32::from_ne_bytes(report[8..12].try_into().ok()?) as usize;
    let detail = report.get(12..12 + len.min(super::DETAIL)).unwrap_or(&[]);
    let detail = String::from_utf8_lossy(detail).trim().to_string();
    Some((step, errno, detail))
}
