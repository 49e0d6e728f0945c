//! Docker's default seccomp profile (moby `profiles/seccomp/default.json`)
//! for a container with Docker's 14 default capabilities (no
//! `CAP_SYS_ADMIN`), as one table ([`PROFILE`]) that gives both the BPF
//! program the built-in runtime installs ([`filter`]) and the OCI
//! `linux.seccomp` section of a bundle ([`oci_profile`]).
//!
//! - Anything not allowed fails with `EPERM` (Docker's `defaultErrnoRet`).
//!   That includes `io_uring_setup`, `io_uring_enter` and
//!   `io_uring_register`, which Docker removed from its allow-list (moby
//!   v25): io_uring bypasses the filter for the operations it submits.
//! - Allowed unconditionally: Docker's unconditional list, `ptrace` and
//!   `process_vm_{readv,writev}` (Docker: kernel ≥ 4.8), `arch_prctl` and
//!   `modify_ldt` (x86), and `chroot` (gated on `CAP_SYS_CHROOT`, which we
//!   keep). The other capability-gated rules (`CAP_SYS_ADMIN`'s mount,
//!   unshare, setns, bpf…, `CAP_SYS_BOOT`'s reboot, `CAP_SYS_MODULE`…)
//!   do not apply: we keep none of those capabilities.
//! - Argument filters: `socket` unless the family is `AF_VSOCK` (40);
//!   `personality` only for 0, `PER_LINUX32`, `UNAME26`, both, and the
//!   query `0xffffffff`; `clone` only without namespace flags; `clone3`
//!   fails with `ENOSYS` so libc falls back to `clone`.
//! - `mknod` and `mknodat` of a character or block device: in the built-in
//!   runtime's filter, handed to kiln's device supervisor
//!   (`SECCOMP_RET_USER_NOTIF`, see `devices.rs`); elsewhere allowed, and
//!   refused by the kernel in the step's user namespace.
//! - As runc does, a syscall numbered above every syscall of the profile
//!   (one newer than the profile, e.g. `fchmodat2`) fails with `ENOSYS`
//!   rather than `EPERM`, so that libc can fall back to an older one.
//! - x86_64 and aarch64 only: another architecture's calls (i386, arm32)
//!   kill the process, x32 calls (bit 30 set) fail with `EPERM`.
//!
//! The arguments compared are the low 32 bits, which are all the kernel
//! reads of `socket`'s family, `personality`'s persona and `clone`'s flags.
//! Syscall names of other architectures (`chown32`, `mmap2`, …) are left
//! out of the table.

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// What the profile does with a group of syscalls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Allowed.
    Allow,
    /// Allowed unless argument 0 is this value.
    AllowArg0Ne(u32),
    /// Allowed when argument 0 is one of these values.
    AllowArg0In(&'static [u32]),
    /// Allowed when argument 0 has none of these bits.
    AllowArg0NoBits(u32),
    /// Fails with this errno.
    Errno(u32),
    /// Allowed, unless the mode in this argument makes a character or
    /// block device: then, in a filter with notifications, the call is
    /// handed to kiln's supervisor (`devices.rs`), which records the
    /// device in the layer without making one.
    AllowUnlessDevice(u8),
}

/// `AF_VSOCK`.
const AF_VSOCK: u32 = 40;

/// `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC |
/// CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET` (Docker's 2114060288).
const NAMESPACE_FLAGS: u32 = 0x7e02_0000;

/// `PER_LINUX`, `PER_LINUX32`, `UNAME26`, `PER_LINUX32 | UNAME26`, and the
/// query.
const PERSONALITIES: &[u32] = &[0, 0x8, 0x2_0000, 0x2_0008, 0xffff_ffff];

/// Docker's default profile, reduced to a container with Docker's default
/// capabilities on x86_64 or aarch64.
const PROFILE: &[(Rule, &[&str])] = &[
    (Rule::Allow, ALLOW),
    // mknod(path, mode, dev), mknodat(dirfd, path, mode, dev).
    (Rule::AllowUnlessDevice(1), &["mknod"]),
    (Rule::AllowUnlessDevice(2), &["mknodat"]),
    // Docker: "minKernel": "4.8".
    (
        Rule::Allow,
        &["process_vm_readv", "process_vm_writev", "ptrace"],
    ),
    // Docker: amd64 (and x32/x86) only; absent on aarch64.
    (Rule::Allow, &["arch_prctl", "modify_ldt"]),
    // Docker: with CAP_SYS_CHROOT.
    (Rule::Allow, &["chroot"]),
    (Rule::AllowArg0Ne(AF_VSOCK), &["socket"]),
    (Rule::AllowArg0In(PERSONALITIES), &["personality"]),
    // Docker: without CAP_SYS_ADMIN.
    (Rule::AllowArg0NoBits(NAMESPACE_FLAGS), &["clone"]),
    (Rule::Errno(libc::ENOSYS as u32), &["clone3"]),
];

/// Docker's unconditional allow-list (names known on x86_64 or aarch64).
#[rustfmt::skip]
const ALLOW: &[&str] = &[
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset",
    "chdir", "chmod", "chown", "clock_adjtime", "clock_getres", "clock_gettime",
    "clock_nanosleep", "close", "close_range", "connect", "copy_file_range", "creat", "dup",
    "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old",
    "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchownat", "fcntl",
    "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr",
    "fstat", "fstatfs", "fsync", "ftruncate", "futex", "futex_waitv", "futimesat", "getcpu",
    "getcwd", "getdents", "getdents64", "getegid", "geteuid", "getgid", "getgroups",
    "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority",
    "getrandom", "getresgid", "getresuid", "getrlimit", "get_robust_list", "getrusage",
    "getsid", "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday",
    "getuid", "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1",
    "inotify_rm_watch", "io_cancel", "ioctl", "io_destroy", "io_getevents", "io_pgetevents",
    "ioprio_get", "ioprio_set", "io_setup", "io_submit", "kill", "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lgetxattr", "link", "linkat", "listen", "listxattr",
    "llistxattr", "lremovexattr", "lseek", "lsetxattr", "lstat", "madvise", "membarrier",
    "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mlock",
    "mlock2", "mlockall", "mmap", "mprotect", "mq_getsetattr", "mq_notify", "mq_open",
    "mq_timedreceive", "mq_timedsend", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv",
    "msgsnd", "msync", "munlock", "munlockall", "munmap", "name_to_handle_at", "nanosleep",
    "newfstatat", "open", "openat", "openat2", "pause", "pidfd_open", "pidfd_send_signal",
    "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll", "ppoll", "prctl",
    "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease", "pselect6", "pwrite64",
    "pwritev", "pwritev2", "read", "readahead", "readlink", "readlinkat", "readv", "recvfrom",
    "recvmmsg", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_tgsigqueueinfo",
    "sched_getaffinity", "sched_getattr", "sched_getparam", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getscheduler", "sched_rr_get_interval",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "select", "semctl", "semget", "semop", "semtimedop", "sendfile", "sendmmsg",
    "sendmsg", "sendto", "setfsgid", "setfsuid", "setgid", "setgroups", "setitimer", "setpgid",
    "setpriority", "setregid", "setresgid", "setresuid", "setreuid", "setrlimit",
    "set_robust_list", "setsid", "setsockopt", "set_thread_area", "set_tid_address", "setuid",
    "setxattr", "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd",
    "signalfd4", "socketpair", "splice", "stat", "statfs", "statx", "symlink", "symlinkat",
    "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_settime", "timerfd_create",
    "timerfd_gettime", "timerfd_settime", "times", "tkill", "truncate", "umask", "uname",
    "unlink", "unlinkat", "utime", "utimensat", "utimes", "vfork", "vmsplice", "wait4",
    "waitid", "write", "writev",
];

/// Syscall numbers (the kernel's `unistd` tables, as in the `libc` crate),
/// for the names of [`PROFILE`].
#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
const NUMBERS: &[(&str, u32)] = &[
    ("accept", 43), ("accept4", 288), ("access", 21), ("adjtimex", 159), ("alarm", 37),
    ("arch_prctl", 158), ("bind", 49), ("brk", 12), ("capget", 125), ("capset", 126), ("chdir",
    80), ("chmod", 90), ("chown", 92), ("chroot", 161), ("clock_adjtime", 305), ("clock_getres",
    229), ("clock_gettime", 228), ("clock_nanosleep", 230), ("clone", 56), ("clone3", 435),
    ("close", 3), ("close_range", 436), ("connect", 42), ("copy_file_range", 326), ("creat",
    85), ("dup", 32), ("dup2", 33), ("dup3", 292), ("epoll_create", 213), ("epoll_create1",
    291), ("epoll_ctl", 233), ("epoll_ctl_old", 214), ("epoll_pwait", 281), ("epoll_pwait2",
    441), ("epoll_wait", 232), ("epoll_wait_old", 215), ("eventfd", 284), ("eventfd2", 290),
    ("execve", 59), ("execveat", 322), ("exit", 60), ("exit_group", 231), ("faccessat", 269),
    ("faccessat2", 439), ("fadvise64", 221), ("fallocate", 285), ("fanotify_mark", 301),
    ("fchdir", 81), ("fchmod", 91), ("fchmodat", 268), ("fchown", 93), ("fchownat", 260),
    ("fcntl", 72), ("fdatasync", 75), ("fgetxattr", 193), ("flistxattr", 196), ("flock", 73),
    ("fork", 57), ("fremovexattr", 199), ("fsetxattr", 190), ("fstat", 5), ("fstatfs", 138),
    ("fsync", 74), ("ftruncate", 77), ("futex", 202), ("futex_waitv", 449), ("futimesat", 261),
    ("get_robust_list", 274), ("get_thread_area", 211), ("getcpu", 309), ("getcwd", 79),
    ("getdents", 78), ("getdents64", 217), ("getegid", 108), ("geteuid", 107), ("getgid", 104),
    ("getgroups", 115), ("getitimer", 36), ("getpeername", 52), ("getpgid", 121), ("getpgrp",
    111), ("getpid", 39), ("getppid", 110), ("getpriority", 140), ("getrandom", 318),
    ("getresgid", 120), ("getresuid", 118), ("getrlimit", 97), ("getrusage", 98), ("getsid",
    124), ("getsockname", 51), ("getsockopt", 55), ("gettid", 186), ("gettimeofday", 96),
    ("getuid", 102), ("getxattr", 191), ("inotify_add_watch", 254), ("inotify_init", 253),
    ("inotify_init1", 294), ("inotify_rm_watch", 255), ("io_cancel", 210), ("io_destroy", 207),
    ("io_getevents", 208), ("io_pgetevents", 333), ("io_setup", 206), ("io_submit", 209),
    ("ioctl", 16),
    ("ioprio_get", 252), ("ioprio_set", 251), ("kill", 62), ("landlock_add_rule", 445),
    ("landlock_create_ruleset", 444), ("landlock_restrict_self", 446), ("lchown", 94),
    ("lgetxattr", 192), ("link", 86), ("linkat", 265), ("listen", 50), ("listxattr", 194),
    ("llistxattr", 195), ("lremovexattr", 198), ("lseek", 8), ("lsetxattr", 189), ("lstat", 6),
    ("madvise", 28), ("membarrier", 324), ("memfd_create", 319), ("memfd_secret", 447),
    ("mincore", 27), ("mkdir", 83), ("mkdirat", 258), ("mknod", 133), ("mknodat", 259),
    ("mlock", 149), ("mlock2", 325), ("mlockall", 151), ("mmap", 9), ("modify_ldt", 154),
    ("mprotect", 10), ("mq_getsetattr", 245), ("mq_notify", 244), ("mq_open", 240),
    ("mq_timedreceive", 243), ("mq_timedsend", 242), ("mq_unlink", 241), ("mremap", 25),
    ("msgctl", 71), ("msgget", 68), ("msgrcv", 70), ("msgsnd", 69), ("msync", 26), ("munlock",
    150), ("munlockall", 152), ("munmap", 11), ("name_to_handle_at", 303), ("nanosleep", 35),
    ("newfstatat", 262), ("open", 2), ("openat", 257), ("openat2", 437), ("pause", 34),
    ("personality", 135), ("pidfd_open", 434), ("pidfd_send_signal", 424), ("pipe", 22),
    ("pipe2", 293), ("pkey_alloc", 330), ("pkey_free", 331), ("pkey_mprotect", 329), ("poll",
    7), ("ppoll", 271), ("prctl", 157), ("pread64", 17), ("preadv", 295), ("preadv2", 327),
    ("prlimit64", 302), ("process_mrelease", 448), ("process_vm_readv", 310),
    ("process_vm_writev", 311), ("pselect6", 270), ("ptrace", 101), ("pwrite64", 18),
    ("pwritev", 296), ("pwritev2", 328), ("read", 0), ("readahead", 187), ("readlink", 89),
    ("readlinkat", 267), ("readv", 19), ("recvfrom", 45), ("recvmmsg", 299), ("recvmsg", 47),
    ("remap_file_pages", 216), ("removexattr", 197), ("rename", 82), ("renameat", 264),
    ("renameat2", 316), ("restart_syscall", 219), ("rmdir", 84), ("rseq", 334), ("rt_sigaction",
    13), ("rt_sigpending", 127), ("rt_sigprocmask", 14), ("rt_sigqueueinfo", 129),
    ("rt_sigreturn", 15), ("rt_sigsuspend", 130), ("rt_sigtimedwait", 128),
    ("rt_tgsigqueueinfo", 297), ("sched_get_priority_max", 146), ("sched_get_priority_min",
    147), ("sched_getaffinity", 204), ("sched_getattr", 315), ("sched_getparam", 143),
    ("sched_getscheduler", 145), ("sched_rr_get_interval", 148), ("sched_setaffinity", 203),
    ("sched_setattr", 314), ("sched_setparam", 142), ("sched_setscheduler", 144),
    ("sched_yield", 24), ("seccomp", 317), ("select", 23), ("semctl", 66), ("semget", 64),
    ("semop", 65), ("semtimedop", 220), ("sendfile", 40), ("sendmmsg", 307), ("sendmsg", 46),
    ("sendto", 44), ("set_robust_list", 273), ("set_thread_area", 205), ("set_tid_address",
    218), ("setfsgid", 123), ("setfsuid", 122), ("setgid", 106), ("setgroups", 116),
    ("setitimer", 38), ("setpgid", 109), ("setpriority", 141), ("setregid", 114), ("setresgid",
    119), ("setresuid", 117), ("setreuid", 113), ("setrlimit", 160), ("setsid", 112),
    ("setsockopt", 54), ("setuid", 105), ("setxattr", 188), ("shmat", 30), ("shmctl", 31),
    ("shmdt", 67), ("shmget", 29), ("shutdown", 48), ("sigaltstack", 131), ("signalfd", 282),
    ("signalfd4", 289), ("socket", 41), ("socketpair", 53), ("splice", 275), ("stat", 4),
    ("statfs", 137), ("statx", 332), ("symlink", 88), ("symlinkat", 266), ("sync", 162),
    ("sync_file_range", 277), ("syncfs", 306), ("sysinfo", 99), ("tee", 276), ("tgkill", 234),
    ("time", 201), ("timer_create", 222), ("timer_delete", 226), ("timer_getoverrun", 225),
    ("timer_gettime", 224), ("timer_settime", 223), ("timerfd_create", 283), ("timerfd_gettime",
    287), ("timerfd_settime", 286), ("times", 100), ("tkill", 200), ("truncate", 76), ("umask",
    95), ("uname", 63), ("unlink", 87), ("unlinkat", 263), ("utime", 132), ("utimensat", 280),
    ("utimes", 235), ("vfork", 58), ("vmsplice", 278), ("wait4", 61), ("waitid", 247), ("write",
    1), ("writev", 20),
];

#[cfg(target_arch = "aarch64")]
#[rustfmt::skip]
const NUMBERS: &[(&str, u32)] = &[
    ("accept", 202), ("accept4", 242), ("adjtimex", 171), ("bind", 200), ("brk", 214),
    ("capget", 90), ("capset", 91), ("chdir", 49), ("chroot", 51), ("clock_adjtime", 266),
    ("clock_getres", 114), ("clock_gettime", 113), ("clock_nanosleep", 115), ("clone", 220),
    ("clone3", 435), ("close", 57), ("close_range", 436), ("connect", 203), ("copy_file_range",
    285), ("dup", 23), ("dup3", 24), ("epoll_create1", 20), ("epoll_ctl", 21), ("epoll_pwait",
    22), ("epoll_pwait2", 441), ("eventfd2", 19), ("execve", 221), ("execveat", 281), ("exit",
    93), ("exit_group", 94), ("faccessat", 48), ("faccessat2", 439), ("fadvise64", 223),
    ("fallocate", 47), ("fanotify_mark", 263), ("fchdir", 50), ("fchmod", 52), ("fchmodat", 53),
    ("fchown", 55), ("fchownat", 54), ("fcntl", 25), ("fdatasync", 83), ("fgetxattr", 10),
    ("flistxattr", 13), ("flock", 32), ("fremovexattr", 16), ("fsetxattr", 7), ("fstat", 80),
    ("fstatfs", 44), ("fsync", 82), ("ftruncate", 46), ("futex", 98), ("futex_waitv", 449),
    ("get_robust_list", 100), ("getcpu", 168), ("getcwd", 17), ("getdents64", 61), ("getegid",
    177), ("geteuid", 175), ("getgid", 176), ("getgroups", 158), ("getitimer", 102),
    ("getpeername", 205), ("getpgid", 155), ("getpid", 172), ("getppid", 173), ("getpriority",
    141), ("getrandom", 278), ("getresgid", 150), ("getresuid", 148), ("getrlimit", 163),
    ("getrusage", 165), ("getsid", 156), ("getsockname", 204), ("getsockopt", 209), ("gettid",
    178), ("gettimeofday", 169), ("getuid", 174), ("getxattr", 8), ("inotify_add_watch", 27),
    ("inotify_init1", 26), ("inotify_rm_watch", 28), ("io_cancel", 3), ("io_destroy", 1),
    ("io_getevents", 4), ("io_pgetevents", 292), ("io_setup", 0), ("io_submit", 2),
    ("ioctl", 29),
    ("ioprio_get", 31), ("ioprio_set", 30), ("kill", 129), ("landlock_add_rule", 445),
    ("landlock_create_ruleset", 444), ("landlock_restrict_self", 446), ("lgetxattr", 9),
    ("linkat", 37), ("listen", 201), ("listxattr", 11), ("llistxattr", 12), ("lremovexattr",
    15), ("lseek", 62), ("lsetxattr", 6), ("madvise", 233), ("membarrier", 283),
    ("memfd_create", 279), ("memfd_secret", 447), ("mincore", 232), ("mkdirat", 34), ("mknodat",
    33), ("mlock", 228), ("mlock2", 284), ("mlockall", 230), ("mmap", 222), ("mprotect", 226),
    ("mq_getsetattr", 185), ("mq_notify", 184), ("mq_open", 180), ("mq_timedreceive", 183),
    ("mq_timedsend", 182), ("mq_unlink", 181), ("mremap", 216), ("msgctl", 187), ("msgget",
    186), ("msgrcv", 188), ("msgsnd", 189), ("msync", 227), ("munlock", 229), ("munlockall",
    231), ("munmap", 215), ("name_to_handle_at", 264), ("nanosleep", 101), ("newfstatat", 79),
    ("openat", 56), ("openat2", 437), ("personality", 92), ("pidfd_open", 434),
    ("pidfd_send_signal", 424), ("pipe2", 59), ("pkey_alloc", 289), ("pkey_free", 290),
    ("pkey_mprotect", 288), ("ppoll", 73), ("prctl", 167), ("pread64", 67), ("preadv", 69),
    ("preadv2", 286), ("prlimit64", 261), ("process_mrelease", 448), ("process_vm_readv", 270),
    ("process_vm_writev", 271), ("pselect6", 72), ("ptrace", 117), ("pwrite64", 68), ("pwritev",
    70), ("pwritev2", 287), ("read", 63), ("readahead", 213), ("readlinkat", 78), ("readv", 65),
    ("recvfrom", 207), ("recvmmsg", 243), ("recvmsg", 212), ("remap_file_pages", 234),
    ("removexattr", 14), ("renameat", 38), ("renameat2", 276), ("restart_syscall", 128),
    ("rseq", 293), ("rt_sigaction", 134), ("rt_sigpending", 136), ("rt_sigprocmask", 135),
    ("rt_sigqueueinfo", 138), ("rt_sigreturn", 139), ("rt_sigsuspend", 133), ("rt_sigtimedwait",
    137), ("rt_tgsigqueueinfo", 240), ("sched_get_priority_max", 125),
    ("sched_get_priority_min", 126), ("sched_getaffinity", 123), ("sched_getattr", 275),
    ("sched_getparam", 121), ("sched_getscheduler", 120), ("sched_rr_get_interval", 127),
    ("sched_setaffinity", 122), ("sched_setattr", 274), ("sched_setparam", 118),
    ("sched_setscheduler", 119), ("sched_yield", 124), ("seccomp", 277), ("semctl", 191),
    ("semget", 190), ("semop", 193), ("semtimedop", 192), ("sendfile", 71), ("sendmmsg", 269),
    ("sendmsg", 211), ("sendto", 206), ("set_robust_list", 99), ("set_tid_address", 96),
    ("setfsgid", 152), ("setfsuid", 151), ("setgid", 144), ("setgroups", 159), ("setitimer",
    103), ("setpgid", 154), ("setpriority", 140), ("setregid", 143), ("setresgid", 149),
    ("setresuid", 147), ("setreuid", 145), ("setrlimit", 164), ("setsid", 157), ("setsockopt",
    208), ("setuid", 146), ("setxattr", 5), ("shmat", 196), ("shmctl", 195), ("shmdt", 197),
    ("shmget", 194), ("shutdown", 210), ("sigaltstack", 132), ("signalfd4", 74), ("socket",
    198), ("socketpair", 199), ("splice", 76), ("statfs", 43), ("statx", 291), ("symlinkat",
    36), ("sync", 81), ("sync_file_range", 84), ("syncfs", 267), ("sysinfo", 179), ("tee", 77),
    ("tgkill", 131), ("timer_create", 107), ("timer_delete", 111), ("timer_getoverrun", 109),
    ("timer_gettime", 108), ("timer_settime", 110), ("timerfd_create", 85), ("timerfd_gettime",
    87), ("timerfd_settime", 86), ("times", 153), ("tkill", 130), ("truncate", 45), ("umask",
    166), ("uname", 160), ("unlinkat", 35), ("utimensat", 88), ("vmsplice", 75), ("wait4", 260),
    ("waitid", 95), ("write", 64), ("writev", 66),
];

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

/// The native architecture, for the OCI profile.
#[cfg(target_arch = "x86_64")]
const OCI_ARCH: Arch = Arch::ScmpArchX86_64;
#[cfg(target_arch = "aarch64")]
const OCI_ARCH: Arch = Arch::ScmpArchAarch64;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const OCI_ARCH: Arch = Arch::ScmpArchNative;

/// `offsetof(struct seccomp_data, …)`: `nr`, `arch`, the low half of
/// `args[0]` (little-endian).
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARG0_LOW_OFFSET: u32 = 16;

/// The errno of refused syscalls (Docker's `defaultErrnoRet`).
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// The number of `name` on this architecture.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn number(name: &str) -> Option<u32> {
    NUMBERS
        .binary_search_by(|(n, _)| n.cmp(&name))
        .ok()
        .map(|i| NUMBERS[i].1)
}

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

fn ret(k: u32) -> libc::sock_filter {
    stmt(libc::BPF_RET | libc::BPF_K, k)
}

fn errno(e: u32) -> u32 {
    libc::SECCOMP_RET_ERRNO | (e & libc::SECCOMP_RET_DATA)
}

/// The instructions for one rule, the syscall number having matched; they
/// always end in a return.
fn block(rule: Rule, notify: bool) -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_ALU, BPF_AND, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_W};
    let allow = ret(libc::SECCOMP_RET_ALLOW);
    let deny = ret(errno(DEFAULT_ERRNO));
    let arg0 = stmt(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW_OFFSET);
    match rule {
        Rule::Allow => vec![allow],
        Rule::AllowUnlessDevice(_) if !notify => vec![allow],
        Rule::AllowUnlessDevice(arg) => vec![
            // The low half of the mode argument, its file type bits.
            stmt(
                BPF_LD | BPF_W | BPF_ABS,
                ARG0_LOW_OFFSET + 8 * u32::from(arg),
            ),
            stmt(BPF_ALU | BPF_AND | BPF_K, libc::S_IFMT),
            jump(BPF_JMP | BPF_JEQ | BPF_K, libc::S_IFCHR, 2, 0),
            jump(BPF_JMP | BPF_JEQ | BPF_K, libc::S_IFBLK, 1, 0),
            allow,
            ret(libc::SECCOMP_RET_USER_NOTIF),
        ],
        Rule::Errno(e) => vec![ret(errno(e))],
        Rule::AllowArg0Ne(v) => vec![arg0, jump(BPF_JMP | BPF_JEQ | BPF_K, v, 1, 0), allow, deny],
        Rule::AllowArg0NoBits(mask) => vec![
            arg0,
            jump(BPF_JMP | BPF_JSET | BPF_K, mask, 1, 0),
            allow,
            deny,
        ],
        Rule::AllowArg0In(values) => {
            let n = values.len();
            let mut f = vec![arg0];
            for (i, v) in values.iter().enumerate() {
                // To the final ALLOW, past the remaining tests and the DENY.
                f.push(jump(BPF_JMP | BPF_JEQ | BPF_K, *v, (n - i) as u8, 0));
            }
            f.push(deny);
            f.push(allow);
            f
        }
    }
}

/// A binary search over `rules` (sorted by number, the number in the
/// accumulator); every path ends in a return.
fn tree(rules: &[(u32, Rule)], notify: bool) -> Vec<libc::sock_filter> {
    use libc::{BPF_JA, BPF_JEQ, BPF_JGE, BPF_JMP, BPF_K};
    if rules.len() <= 4 {
        let mut f = Vec::new();
        for (nr, rule) in rules {
            let b = block(*rule, notify);
            f.push(jump(BPF_JMP | BPF_JEQ | BPF_K, *nr, 0, b.len() as u8));
            f.extend(b);
        }
        f.push(ret(errno(DEFAULT_ERRNO)));
        return f;
    }
    let mid = rules.len() / 2;
    let left = tree(&rules[..mid], notify);
    let right = tree(&rules[mid..], notify);
    let mut f = vec![
        // nr >= mid: to the long jump over the left half; else the left half.
        jump(BPF_JMP | BPF_JGE | BPF_K, rules[mid].0, 0, 1),
        stmt(BPF_JMP | BPF_JA, left.len() as u32),
    ];
    f.extend(left);
    f.extend(right);
    f
}

/// The rules with this architecture's numbers, sorted by number.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn numbered() -> Vec<(u32, Rule)> {
    let mut rules: Vec<(u32, Rule)> = PROFILE
        .iter()
        .flat_map(|(rule, names)| names.iter().filter_map(|n| Some((number(n)?, *rule))))
        .collect();
    rules.sort_by_key(|(nr, _)| *nr);
    rules.dedup_by_key(|(nr, _)| *nr);
    rules
}

/// The BPF program, `None` on architectures without a syscall table.
/// With `notify`, `mknod` of a character or block device returns
/// `SECCOMP_RET_USER_NOTIF` (the filter must then be installed with a
/// listener that someone serves); without, it is allowed (and the kernel
/// refuses it in a user namespace).
pub(super) fn filter(notify: bool) -> Option<Vec<libc::sock_filter>> {
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        return None;
    }
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        use libc::{BPF_ABS, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_W};
        let rules = numbered();
        let max = rules.last().map_or(0, |(nr, _)| *nr);
        let mut f = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
            ret(libc::SECCOMP_RET_KILL_PROCESS),
            stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
        ];
        if cfg!(target_arch = "x86_64") {
            // x32 syscalls have bit 30 set.
            f.push(jump(BPF_JMP | BPF_JGE | BPF_K, 0x4000_0000, 0, 1));
            f.push(ret(errno(DEFAULT_ERRNO)));
        }
        // Newer than the profile: ENOSYS, as runc's stub does.
        f.push(jump(BPF_JMP | BPF_JGT | BPF_K, max, 0, 1));
        f.push(ret(errno(libc::ENOSYS as u32)));
        f.extend(tree(&rules, notify));
        Some(f)
    }
}

/// The same profile as the OCI `linux.seccomp` section (runc and crun
/// skip names their libseccomp does not know for the architecture).
pub(super) fn oci_profile() -> LinuxSeccomp {
    let syscall =
        |names: &[&str], action, errno_ret: Option<u32>, args: Option<Vec<LinuxSeccompArg>>| {
            let mut s = LinuxSyscall::default();
            s.set_names(names.iter().map(|n| n.to_string()).collect());
            s.set_action(action);
            s.set_errno_ret(errno_ret);
            s.set_args(args);
            s
        };
    let arg0 = |value: u64, op| -> LinuxSeccompArg {
        LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(value)
            .op(op)
            .build()
            // Every field has a default: building cannot fail.
            .expect("a complete seccomp argument")
    };
    let allow = LinuxSeccompAction::ScmpActAllow;
    let mut syscalls = Vec::new();
    for (rule, names) in PROFILE {
        match rule {
            // runc and crun run without kiln's supervisor: their kernels
            // refuse device nodes in a user namespace.
            Rule::Allow | Rule::AllowUnlessDevice(_) => {
                syscalls.push(syscall(names, allow, None, None))
            }
            Rule::AllowArg0Ne(v) => syscalls.push(syscall(
                names,
                allow,
                None,
                Some(vec![arg0(u64::from(*v), LinuxSeccompOperator::ScmpCmpNe)]),
            )),
            Rule::AllowArg0In(values) => {
                // One rule per value, as Docker writes it.
                for v in *values {
                    syscalls.push(syscall(
                        names,
                        allow,
                        None,
                        Some(vec![arg0(u64::from(*v), LinuxSeccompOperator::ScmpCmpEq)]),
                    ));
                }
            }
            Rule::AllowArg0NoBits(mask) => syscalls.push(syscall(
                names,
                allow,
                None,
                Some(vec![arg0(
                    u64::from(*mask),
                    LinuxSeccompOperator::ScmpCmpMaskedEq,
                )]),
            )),
            Rule::Errno(e) => syscalls.push(syscall(
                names,
                LinuxSeccompAction::ScmpActErrno,
                Some(*e),
                None,
            )),
        }
    }
    let mut profile = LinuxSeccomp::default();
    profile.set_default_action(LinuxSeccompAction::ScmpActErrno);
    profile.set_default_errno_ret(Some(DEFAULT_ERRNO));
    profile.set_architectures(Some(vec![OCI_ARCH]));
    profile.set_syscalls(Some(syscalls));
    profile
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    use super::*;

    /// Runs a classic BPF program on a `seccomp_data`: (nr, arch, args).
    fn run(f: &[libc::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = Vec::new();
        data.extend(nr.to_ne_bytes());
        data.extend(arch.to_ne_bytes());
        data.extend(0u64.to_ne_bytes());
        for a in args {
            data.extend(a.to_ne_bytes());
        }
        let mut acc = 0u32;
        let mut pc = 0usize;
        loop {
            let i = f[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_ne_bytes(data[k..k + 4].try_into().unwrap());
                }
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= i.k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += i.k as usize,
                _ => {
                    let taken = match code & 0xf0 {
                        0x10 => acc == i.k,     // JEQ
                        0x20 => acc > i.k,      // JGT
                        0x30 => acc >= i.k,     // JGE
                        0x40 => acc & i.k != 0, // JSET
                        other => panic!("unexpected op {other:#x}"),
                    };
                    pc += usize::from(if taken { i.jt } else { i.jf });
                }
            }
            assert!(pc < f.len(), "fell off the program");
        }
    }

    const ALLOW_RET: u32 = libc::SECCOMP_RET_ALLOW;

    fn call(nr: libc::c_long, arg0: u64) -> u32 {
        let f = filter(false).unwrap();
        run(&f, nr as u32, AUDIT_ARCH, [arg0, 0, 0, 0, 0, 0])
    }

    #[test]
    fn device_nodes_go_to_the_supervisor_only_with_notifications() {
        let notify = filter(true).unwrap();
        let plain = filter(false).unwrap();
        let mknodat = number("mknodat").unwrap();
        let at = |f: &[libc::sock_filter], mode: u32| {
            run(f, mknodat, AUDIT_ARCH, [0, 0, u64::from(mode), 0, 0, 0])
        };
        for mode in [libc::S_IFCHR | 0o644, libc::S_IFBLK | 0o600] {
            assert_eq!(at(&notify, mode), libc::SECCOMP_RET_USER_NOTIF, "{mode:o}");
            assert_eq!(at(&plain, mode), ALLOW_RET, "{mode:o}");
        }
        for mode in [
            libc::S_IFIFO | 0o644,
            libc::S_IFREG | 0o644,
            libc::S_IFSOCK,
            0,
        ] {
            assert_eq!(at(&notify, mode), ALLOW_RET, "{mode:o}");
        }
        // Only the low half of the mode is the mode.
        let high = (1u64 << 40) | u64::from(libc::S_IFREG);
        assert_eq!(
            run(&notify, mknodat, AUDIT_ARCH, [0, 0, high, 0, 0, 0]),
            ALLOW_RET
        );
        #[cfg(target_arch = "x86_64")]
        {
            let mknod = number("mknod").unwrap();
            let args = [0, u64::from(libc::S_IFCHR), 0, 0, 0, 0];
            assert_eq!(
                run(&notify, mknod, AUDIT_ARCH, args),
                libc::SECCOMP_RET_USER_NOTIF
            );
        }
    }

    #[test]
    fn names_appear_once_and_map() {
        let mut seen = std::collections::HashSet::new();
        for (_, names) in PROFILE {
            for n in *names {
                assert!(seen.insert(*n), "{n} twice");
            }
        }
        for n in [
            "read",
            "write",
            "openat",
            "execve",
            "clone",
            "socket",
            "futex_waitv",
        ] {
            assert!(number(n).is_some(), "{n}");
        }
        assert!(
            NUMBERS.windows(2).all(|w| w[0].0 < w[1].0),
            "NUMBERS sorted"
        );
        assert_eq!(number("read"), Some(libc::SYS_read as u32));
        assert_eq!(number("clone3"), Some(libc::SYS_clone3 as u32));
        assert_eq!(number("mount"), None, "mount is not in the profile");
    }

    #[test]
    fn filter_decisions() {
        let f = filter(false).unwrap();
        assert!(f.len() < 4096, "{}", f.len());
        let eperm = errno(libc::EPERM as u32);
        let enosys = errno(libc::ENOSYS as u32);
        // Every allowed syscall is allowed, with a harmless argument.
        for (nr, rule) in numbered() {
            let expect = match rule {
                Rule::Errno(e) => errno(e),
                _ => ALLOW_RET,
            };
            assert_eq!(run(&f, nr, AUDIT_ARCH, [0; 6]), expect, "nr {nr}");
        }
        for nr in [
            libc::SYS_mount,
            libc::SYS_umount2,
            libc::SYS_unshare,
            libc::SYS_setns,
            libc::SYS_keyctl,
            libc::SYS_add_key,
            libc::SYS_reboot,
            libc::SYS_init_module,
            libc::SYS_bpf,
            libc::SYS_pivot_root,
            libc::SYS_open_by_handle_at,
            libc::SYS_perf_event_open,
            libc::SYS_sethostname,
            libc::SYS_fsopen,
            libc::SYS_move_mount,
            libc::SYS_kexec_load,
            libc::SYS_userfaultfd,
            libc::SYS_swapon,
            libc::SYS_settimeofday,
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
        ] {
            assert_eq!(call(nr, 0), eperm, "nr {nr}");
        }
        assert_eq!(call(libc::SYS_clone3, 0), enosys);
        assert_eq!(call(libc::SYS_clone, libc::SIGCHLD as u64), ALLOW_RET);
        for ns in [
            libc::CLONE_NEWUSER,
            libc::CLONE_NEWNS,
            libc::CLONE_NEWNET,
            libc::CLONE_NEWPID,
            libc::CLONE_NEWCGROUP,
        ] {
            assert_eq!(call(libc::SYS_clone, (ns | libc::SIGCHLD) as u64), eperm);
        }
        assert_eq!(call(libc::SYS_socket, libc::AF_INET as u64), ALLOW_RET);
        assert_eq!(call(libc::SYS_socket, libc::AF_UNIX as u64), ALLOW_RET);
        assert_eq!(call(libc::SYS_socket, 40), eperm);
        for p in [0u64, 8, 0x20000, 0x20008, 0xffff_ffff] {
            assert_eq!(call(libc::SYS_personality, p), ALLOW_RET, "{p:#x}");
        }
        assert_eq!(call(libc::SYS_personality, 0x0040_0000), eperm);
        // Newer than the profile: ENOSYS (fchmodat2 is 452 everywhere).
        assert_eq!(call(452, 0), enosys);
        // Another architecture: killed.
        assert_eq!(
            run(&f, 3, 0x4000_0003, [0; 6]),
            libc::SECCOMP_RET_KILL_PROCESS
        );
        if cfg!(target_arch = "x86_64") {
            // x32 read.
            assert_eq!(run(&f, 0x4000_0000, AUDIT_ARCH, [0; 6]), eperm);
        }
    }

    #[test]
    fn oci_profile_matches_the_table() {
        let p = oci_profile();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        let json = serde_json::to_value(&p).unwrap();
        let syscalls = json["syscalls"].as_array().unwrap();
        let names: Vec<&str> = syscalls
            .iter()
            .flat_map(|s| s["names"].as_array().unwrap())
            .map(|n| n.as_str().unwrap())
            .collect();
        assert!(names.contains(&"read") && names.contains(&"chroot"));
        assert!(!names.contains(&"mount") && !names.contains(&"unshare"));
        assert!(
            !names.iter().any(|n| n.starts_with("io_uring")),
            "{names:?}"
        );
        let clone = syscalls.iter().find(|s| s["names"][0] == "clone").unwrap();
        assert_eq!(clone["args"][0]["value"], 2114060288u64);
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        let clone3 = syscalls.iter().find(|s| s["names"][0] == "clone3").unwrap();
        assert_eq!(clone3["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3["errnoRet"], 38);
        let socket = syscalls.iter().find(|s| s["names"][0] == "socket").unwrap();
        assert_eq!(socket["args"][0]["value"], 40);
        assert_eq!(socket["args"][0]["op"], "SCMP_CMP_NE");
        let personalities = syscalls
            .iter()
            .filter(|s| s["names"][0] == "personality")
            .count();
        assert_eq!(personalities, 5);
    }
}
