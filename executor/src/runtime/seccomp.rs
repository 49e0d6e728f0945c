//! A small seccomp filter: the architecture is checked (x32 calls are
//! refused on x86_64), and the syscalls Docker's default profile denies to
//! a container without `CAP_SYS_ADMIN` that matter most fail with `EPERM`
//! (namespaces and mounts, keys, modules, kexec, bpf, perf, userfaultfd,
//! `open_by_handle_at`, swap, reboot); `clone3` fails with `ENOSYS` so that
//! libc falls back to `clone`, as with Docker.
//!
//! TODO: Docker's full profile (an allow-list, with argument filters on
//! `clone` namespace flags and `personality`).

const DENY: &[libc::c_long] = &[
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_userfaultfd,
    libc::SYS_perf_event_open,
    libc::SYS_open_by_handle_at,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_mount_setattr,
];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// `offsetof(struct seccomp_data, arch)` and `nr`.
const ARCH_OFFSET: u32 = 4;
const NR_OFFSET: u32 = 0;

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The BPF program, `None` on architectures without a filter yet.
pub(super) fn filter() -> Option<Vec<libc::sock_filter>> {
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        return None;
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        let enosys = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
        let mut f = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
            stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
            stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
        ];
        if cfg!(target_arch = "x86_64") {
            // x32 syscalls have bit 30 set.
            f.push(jump(BPF_JMP | BPF_JGE | BPF_K, 0x4000_0000, 0, 1));
            f.push(stmt(BPF_RET | BPF_K, eperm));
        }
        f.push(jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            libc::SYS_clone3 as u32,
            0,
            1,
        ));
        f.push(stmt(BPF_RET | BPF_K, enosys));
        let n = DENY.len();
        for (i, nr) in DENY.iter().enumerate() {
            // Jump to the EPERM return after the ALLOW one.
            f.push(jump(
                BPF_JMP | BPF_JEQ | BPF_K,
                *nr as u32,
                (n - i) as u8,
                0,
            ));
        }
        f.push(stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW));
        f.push(stmt(BPF_RET | BPF_K, eperm));
        Some(f)
    }
}

/// The same filter as an OCI `linux.seccomp` section, for external
/// runtimes: everything is allowed except the [`DENY`] syscalls (`EPERM`)
/// and `clone3` (`ENOSYS`), on the native architecture.
pub(super) fn oci_profile() -> oci_spec::runtime::LinuxSeccomp {
    use oci_spec::runtime::{Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSyscall};
    fn name(nr: libc::c_long) -> Option<&'static str> {
        Some(match nr {
            libc::SYS_keyctl => "keyctl",
            libc::SYS_add_key => "add_key",
            libc::SYS_request_key => "request_key",
            libc::SYS_kexec_load => "kexec_load",
            libc::SYS_kexec_file_load => "kexec_file_load",
            libc::SYS_init_module => "init_module",
            libc::SYS_finit_module => "finit_module",
            libc::SYS_delete_module => "delete_module",
            libc::SYS_bpf => "bpf",
            libc::SYS_userfaultfd => "userfaultfd",
            libc::SYS_perf_event_open => "perf_event_open",
            libc::SYS_open_by_handle_at => "open_by_handle_at",
            libc::SYS_swapon => "swapon",
            libc::SYS_swapoff => "swapoff",
            libc::SYS_reboot => "reboot",
            libc::SYS_mount => "mount",
            libc::SYS_umount2 => "umount2",
            libc::SYS_pivot_root => "pivot_root",
            libc::SYS_unshare => "unshare",
            libc::SYS_setns => "setns",
            libc::SYS_fsopen => "fsopen",
            libc::SYS_fsmount => "fsmount",
            libc::SYS_fspick => "fspick",
            libc::SYS_open_tree => "open_tree",
            libc::SYS_move_mount => "move_mount",
            libc::SYS_mount_setattr => "mount_setattr",
            _ => return None,
        })
    }
    let rule = |names: Vec<String>, errno: i32| {
        let mut s = LinuxSyscall::default();
        s.set_names(names);
        s.set_action(LinuxSeccompAction::ScmpActErrno);
        s.set_errno_ret(Some(errno as u32));
        s
    };
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActAllow);
    let arch = if cfg!(target_arch = "aarch64") {
        Arch::ScmpArchAarch64
    } else if cfg!(target_arch = "x86_64") {
        Arch::ScmpArchX86_64
    } else {
        Arch::ScmpArchNative
    };
    profile.set_architectures(Some(vec![arch]));
    let deny = DENY
        .iter()
        .filter_map(|nr| name(*nr))
        .map(str::to_string)
        .collect();
    profile.set_syscalls(Some(vec![
        rule(deny, libc::EPERM),
        rule(vec!["clone3".to_string()], libc::ENOSYS),
    ]));
    profile
}
