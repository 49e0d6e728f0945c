//! The child side: a precomputed list of operations run with raw
//! syscalls only (no allocation, no locks, no unwinding), since the child
//! is cloned from a possibly multi-threaded process.
//!
//! A failing operation writes a report to the error pipe: the operation's
//! index (`u32`), the errno (`i32`), the length of a detail message
//! (`u32`) and the message (at most [`DETAIL`] bytes); then the child
//! exits with 125. Index `ops.len()` means the final `execve`.

// `Fail` carries the kernel's message inline: the child cannot allocate.
#![allow(clippy::result_large_err)]

mod op;

pub(super) use op::{parse_report, ChildPlan, Op};
use std::ffi::{c_char, CString};

/// The longest detail message reported.
pub(super) const DETAIL: usize = 240;

/// A failure: errno and a detail message.
struct Fail {
    errno: i32,
    detail: [u8; DETAIL],
    len: usize,
}

impl Fail {
    fn errno() -> Fail {
        Fail {
            errno: errno(),
            detail: [0; DETAIL],
            len: 0,
        }
    }
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno.
    unsafe { *libc::__errno_location() }
}

/// The body of [`Op::WriteFile`] on its open, empty file `fd`.
///
/// # Safety
/// `fd` is an open file descriptor.
unsafe fn write_file(fd: i32, data: &[u8], mode: u32, uid: u32, gid: u32) -> Result<(), Fail> {
    check(libc::fchown(fd, uid, gid) as libc::c_long)?;
    check(libc::fchmod(fd, (mode & 0o7777) as libc::mode_t) as libc::c_long)?;
    let mut rest = data;
    while !rest.is_empty() {
        let n = libc::write(fd, rest.as_ptr().cast(), rest.len());
        if n < 0 {
            if errno() == libc::EINTR {
                continue;
            }
            return Err(Fail::errno());
        }
        rest = &rest[n as usize..];
    }
    Ok(())
}

fn check(rc: libc::c_long) -> Result<libc::c_long, Fail> {
    if rc < 0 {
        Err(Fail::errno())
    } else {
        Ok(rc)
    }
}

fn opt(c: &Option<CString>) -> *const c_char {
    c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}

/// `mount(2)`.
unsafe fn mount(
    src: *const c_char,
    target: *const c_char,
    fstype: *const c_char,
    flags: libc::c_ulong,
    data: *const c_char,
) -> Result<(), Fail> {
    check(libc::mount(src, target, fstype, flags, data.cast()) as libc::c_long).map(|_| ())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

const MOUNT_ATTR_RDONLY: u64 = 0x1;
const MOUNT_ATTR_NOSUID: u64 = 0x2;
const MOUNT_ATTR_NODEV: u64 = 0x4;
const MOUNT_ATTR_NOEXEC: u64 = 0x8;

/// Sets mount flags recursively (only sets, so flags locked by an outer
/// namespace are kept); falls back to a bind remount.
unsafe fn set_readonly(target: *const c_char, extra: u64, recursive: bool) -> Result<(), Fail> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY | extra,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let flags = if recursive { libc::AT_RECURSIVE } else { 0 };
    let rc = libc::syscall(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        target,
        flags as libc::c_uint,
        &attr as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    );
    if rc == 0 {
        return Ok(());
    }
    if errno() != libc::ENOSYS {
        return Err(Fail::errno());
    }
    mount(
        std::ptr::null(),
        target,
        std::ptr::null(),
        libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
        std::ptr::null(),
    )
}

const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// The failure of an fsconfig call, with the kernel's message.
unsafe fn fs_fail(fd: i32) -> Fail {
    let mut f = Fail::errno();
    let n = libc::read(fd, f.detail.as_mut_ptr().cast(), DETAIL);
    if n > 0 {
        f.len = n as usize;
    }
    f
}

/// Overlay through the new mount API. `Err(None)` asks for the legacy
/// fallback.
unsafe fn overlay_fsconfig(
    lowers: &[CString],
    upper: &CString,
    work: &CString,
    target: &CString,
    volatile: bool,
) -> Result<(), Option<Fail>> {
    let fs = libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) as i32;
    if fs < 0 {
        return Err((errno() != libc::ENOSYS).then(Fail::errno));
    }
    let result = (|| {
        let set = |key: &std::ffi::CStr, value: Option<&std::ffi::CStr>| -> Result<(), Fail> {
            let rc = libc::syscall(
                libc::SYS_fsconfig,
                fs,
                if value.is_some() {
                    FSCONFIG_SET_STRING
                } else {
                    FSCONFIG_SET_FLAG
                },
                key.as_ptr(),
                value.map_or(std::ptr::null(), |v| v.as_ptr()),
                0,
            );
            if rc < 0 {
                Err(fs_fail(fs))
            } else {
                Ok(())
            }
        };
        for (i, l) in lowers.iter().enumerate() {
            if let Err(f) = set(c"lowerdir+", Some(l.as_c_str())) {
                // Kernels before 6.8 do not know `lowerdir+`.
                return Err((!(i == 0 && f.errno == libc::EINVAL)).then_some(f));
            }
        }
        set(c"source", Some(c"overlay")).map_err(Some)?;
        set(c"upperdir", Some(upper.as_c_str())).map_err(Some)?;
        set(c"workdir", Some(work.as_c_str())).map_err(Some)?;
        set(c"userxattr", None).map_err(Some)?;
        if volatile {
            if let Err(f) = set(c"volatile", None) {
                // Kernels before 5.10 do not know it: mount without.
                if f.errno != libc::EINVAL {
                    return Err(Some(f));
                }
            }
        }
        let rc = libc::syscall(
            libc::SYS_fsconfig,
            fs,
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<c_char>(),
            std::ptr::null::<c_char>(),
            0,
        );
        if rc < 0 {
            return Err(Some(fs_fail(fs)));
        }
        let mfd = libc::syscall(libc::SYS_fsmount, fs, FSMOUNT_CLOEXEC, 0) as i32;
        if mfd < 0 {
            return Err(Some(Fail::errno()));
        }
        let rc = libc::syscall(
            libc::SYS_move_mount,
            mfd,
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        );
        let f = (rc < 0).then(Fail::errno);
        libc::close(mfd);
        match f {
            Some(f) => Err(Some(f)),
            None => Ok(()),
        }
    })();
    libc::close(fs);
    result
}

impl Op {
    /// Runs the operation.
    ///
    /// # Safety
    /// Only in the cloned child.
    unsafe fn run(&self) -> Result<(), Fail> {
        match self {
            Op::Umask(m) => {
                libc::umask(*m as libc::mode_t);
                Ok(())
            }
            Op::Mount {
                src,
                target,
                fstype,
                flags,
                data,
            } => mount(opt(src), target.as_ptr(), opt(fstype), *flags, opt(data)),
            Op::Overlay {
                lowers,
                upper,
                work,
                target,
                legacy,
                legacy_volatile,
                force_legacy,
                volatile,
            } => match if *force_legacy {
                Err(None)
            } else {
                overlay_fsconfig(lowers, upper, work, target, *volatile)
            } {
                Ok(()) => Ok(()),
                Err(Some(f)) => Err(f),
                Err(None) => match legacy {
                    Some(data) => {
                        let overlay = |data: &CString| {
                            mount(
                                c"overlay".as_ptr(),
                                target.as_ptr(),
                                c"overlay".as_ptr(),
                                0,
                                data.as_ptr(),
                            )
                        };
                        match legacy_volatile.as_ref().map(overlay) {
                            Some(Ok(())) => Ok(()),
                            // Before 5.10 the kernel does not know
                            // `volatile`: mount without it.
                            Some(Err(f)) if f.errno != libc::EINVAL => Err(f),
                            _ => overlay(data),
                        }
                    }
                    None => Err(Fail {
                        errno: libc::E2BIG,
                        detail: [0; DETAIL],
                        len: 0,
                    }),
                },
            },
            Op::Proc { target, force_bind } => {
                let nse = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                if !*force_bind
                    && mount(
                        c"proc".as_ptr(),
                        target.as_ptr(),
                        c"proc".as_ptr(),
                        nse,
                        std::ptr::null(),
                    )
                    .is_ok()
                {
                    return Ok(());
                }
                // e.g. in a container whose /proc has masked paths.
                mount(
                    c"/proc".as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )
            }
            Op::Sys { target, force_bind } => {
                let nse = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
                if !*force_bind
                    && mount(
                        c"sysfs".as_ptr(),
                        target.as_ptr(),
                        c"sysfs".as_ptr(),
                        nse | libc::MS_RDONLY,
                        std::ptr::null(),
                    )
                    .is_ok()
                {
                    return Ok(());
                }
                mount(
                    c"/sys".as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                )?;
                set_readonly(
                    target.as_ptr(),
                    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
                    true,
                )
            }
            Op::Bind {
                src,
                target,
                recursive,
                readonly,
            } => {
                let mut flags = libc::MS_BIND;
                if *recursive {
                    flags |= libc::MS_REC;
                }
                mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    std::ptr::null(),
                    flags,
                    std::ptr::null(),
                )?;
                if *readonly {
                    set_readonly(target.as_ptr(), 0, *recursive)?;
                }
                Ok(())
            }
            Op::Mkdir { path, mode } => {
                if libc::mkdir(path.as_ptr(), *mode as libc::mode_t) < 0 {
                    if errno() != libc::EEXIST {
                        return Err(Fail::errno());
                    }
                } else if *mode & 0o7000 != 0 {
                    // The umask does not apply to chmod.
                    check(libc::chmod(path.as_ptr(), *mode as libc::mode_t) as libc::c_long)?;
                }
                Ok(())
            }
            Op::WriteFile {
                path,
                data,
                mode,
                uid,
                gid,
            } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT
                        | libc::O_EXCL
                        | libc::O_WRONLY
                        | libc::O_CLOEXEC
                        | libc::O_NOFOLLOW,
                    0 as libc::c_uint,
                );
                if fd < 0 {
                    return Err(Fail::errno());
                }
                let written = write_file(fd, data, *mode, *uid, *gid);
                libc::close(fd);
                written
            }
            Op::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_CLOEXEC,
                    0o644 as libc::c_uint,
                );
                if fd < 0 {
                    if errno() == libc::EEXIST {
                        return Ok(());
                    }
                    return Err(Fail::errno());
                }
                libc::close(fd);
                Ok(())
            }
            Op::Symlink { target, link } => {
                check(libc::symlink(target.as_ptr(), link.as_ptr()) as libc::c_long).map(|_| ())
            }
            Op::Optional(op) => {
                let _ = op.run();
                Ok(())
            }
            Op::Pivot { root, force_move } => {
                check(libc::chdir(root.as_ptr()) as libc::c_long)?;
                let dot = c".".as_ptr();
                if !*force_move && libc::syscall(libc::SYS_pivot_root, dot, dot) == 0 {
                    check(libc::umount2(dot, libc::MNT_DETACH) as libc::c_long)?;
                } else {
                    // Docker's seccomp profile denies pivot_root.
                    mount(
                        dot,
                        c"/".as_ptr(),
                        std::ptr::null(),
                        libc::MS_MOVE,
                        std::ptr::null(),
                    )?;
                    check(libc::chroot(dot) as libc::c_long)?;
                }
                check(libc::chdir(c"/".as_ptr()) as libc::c_long).map(|_| ())
            }
            Op::Chroot(root) => {
                check(libc::chdir(root.as_ptr()) as libc::c_long)?;
                check(libc::chroot(c".".as_ptr()) as libc::c_long)?;
                check(libc::chdir(c"/".as_ptr()) as libc::c_long).map(|_| ())
            }
            Op::NewSession => check(libc::setsid() as libc::c_long).map(|_| ()),
            Op::Hostname(name) => {
                check(libc::sethostname(name.as_ptr().cast(), name.len()) as libc::c_long)
                    .map(|_| ())
            }
            Op::LoUp => {
                let s = check(
                    libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
                        as libc::c_long,
                )? as i32;
                let mut ifr: libc::ifreq = std::mem::zeroed();
                ifr.ifr_name[0] = b'l' as c_char;
                ifr.ifr_name[1] = b'o' as c_char;
                let mut rc = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr);
                if rc == 0 {
                    ifr.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                    rc = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
                }
                let f = (rc < 0).then(Fail::errno);
                libc::close(s);
                match f {
                    Some(f) => Err(f),
                    None => Ok(()),
                }
            }
            Op::Chdir(path) => check(libc::chdir(path.as_ptr()) as libc::c_long).map(|_| ()),
            Op::DropBounding { keep, last_cap } => {
                for cap in 0..=*last_cap {
                    if cap < 64 && keep & (1u64 << cap) != 0 {
                        continue;
                    }
                    if libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) < 0
                        && errno() != libc::EINVAL
                    {
                        return Err(Fail::errno());
                    }
                }
                Ok(())
            }
            Op::SetUser { uid, gid, groups } => {
                // Raw syscalls, not glibc's wrappers: in a process cloned
                // from a multi-threaded one, glibc's set*id broadcast to
                // the parent's threads (which do not exist here) and wait
                // for them forever on a futex.
                // With a single-id map (non-root without subordinate ids)
                // `setgroups` is denied; the groups are then the one
                // mapped id.
                match check(libc::syscall(
                    libc::SYS_setgroups,
                    groups.len(),
                    groups.as_ptr(),
                )) {
                    Err(f) if f.errno != libc::EPERM => return Err(f),
                    _ => {}
                }
                check(libc::syscall(libc::SYS_setresgid, *gid, *gid, *gid))?;
                check(libc::syscall(libc::SYS_setresuid, *uid, *uid, *uid)).map(|_| ())
            }
            Op::Seccomp { filter, listener } => {
                let prog = libc::sock_fprog {
                    len: filter.len() as libc::c_ushort,
                    filter: filter.as_ptr().cast_mut(),
                };
                if *listener < 0 {
                    return check(libc::prctl(
                        libc::PR_SET_SECCOMP,
                        libc::SECCOMP_MODE_FILTER,
                        &prog as *const libc::sock_fprog,
                        0,
                        0,
                    ) as libc::c_long)
                    .map(|_| ());
                }
                let fd = check(libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
                    &prog as *const libc::sock_fprog,
                ))? as i32;
                let sent = send_fd(*listener, fd);
                libc::close(fd);
                libc::close(*listener);
                sent
            }
            Op::NoNewPrivs => {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) as libc::c_long)
                    .map(|_| ())
            }
            Op::MaskPath(path) => {
                let bind = mount(
                    c"/dev/null".as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                );
                match bind {
                    Ok(()) => Ok(()),
                    Err(f) if f.errno == libc::ENOENT => Ok(()),
                    // A directory.
                    Err(f) if f.errno == libc::ENOTDIR => mount(
                        c"tmpfs".as_ptr(),
                        path.as_ptr(),
                        c"tmpfs".as_ptr(),
                        libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                        std::ptr::null(),
                    ),
                    Err(f) => Err(f),
                }
            }
            Op::ReadonlyPath(path) => {
                let bind = mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    std::ptr::null(),
                );
                match bind {
                    Ok(()) => set_readonly(path.as_ptr(), 0, true),
                    Err(f) if f.errno == libc::ENOENT => Ok(()),
                    Err(f) => Err(f),
                }
            }
            Op::Rlimit {
                resource,
                soft,
                hard,
            } => {
                let mut cur = libc::rlimit64 {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                check(libc::syscall(
                    libc::SYS_prlimit64,
                    0,
                    *resource,
                    std::ptr::null::<libc::rlimit64>(),
                    &mut cur as *mut libc::rlimit64,
                ))?;
                let max = (*hard).min(cur.rlim_max);
                let new = libc::rlimit64 {
                    rlim_cur: (*soft).min(max),
                    rlim_max: max,
                };
                check(libc::syscall(
                    libc::SYS_prlimit64,
                    0,
                    *resource,
                    &new as *const libc::rlimit64,
                    std::ptr::null_mut::<libc::rlimit64>(),
                ))
                .map(|_| ())
            }
        }
    }
}

/// Sends `fd` over the unix socket `socket` (`SCM_RIGHTS`), without
/// allocating.
unsafe fn send_fd(socket: i32, fd: i32) -> Result<(), Fail> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    // Room for one cmsghdr carrying one int, aligned for cmsghdr.
    let mut space = [0u64; 4];
    let mut msg: libc::msghdr = std::mem::zeroed();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = space.as_mut_ptr().cast();
    msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<i32>() as u32) as _;
    let cmsg = libc::CMSG_FIRSTHDR(&msg);
    (*cmsg).cmsg_level = libc::SOL_SOCKET;
    (*cmsg).cmsg_type = libc::SCM_RIGHTS;
    (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<i32>() as u32) as _;
    std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<i32>(), fd);
    check(libc::sendmsg(socket, &msg, 0) as libc::c_long).map(|_| ())
}

/// Writes a failure report and exits.
unsafe fn fail(err: i32, step: usize, f: &Fail, code: i32) -> ! {
    let mut buf = [0u8; 12 + DETAIL];
    buf[0..4].copy_from_slice(&(step as u32).to_ne_bytes());
    buf[4..8].copy_from_slice(&f.errno.to_ne_bytes());
    let len = f.len.min(DETAIL);
    buf[8..12].copy_from_slice(&(len as u32).to_ne_bytes());
    buf[12..12 + len].copy_from_slice(&f.detail[..len]);
    libc::write(err, buf.as_ptr().cast(), 12 + len);
    libc::_exit(code)
}

/// `dup2` that also works when `from == to` (clears close-on-exec).
unsafe fn dup_to(from: i32, to: i32) -> Result<(), Fail> {
    if from == to {
        check(libc::fcntl(from, libc::F_SETFD, 0) as libc::c_long)?;
    } else {
        check(libc::dup2(from, to) as libc::c_long)?;
    }
    Ok(())
}

/// The child: never returns.
///
/// # Safety
/// Call only in the child of a fork-like clone; `plan` must be the
/// parent's (copied) plan.
pub(super) unsafe fn run(plan: &ChildPlan) -> ! {
    let setup = usize::MAX;
    // Signals: nothing blocked, default dispositions (the Rust runtime
    // ignores SIGPIPE, which would be inherited through execve).
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    for sig in 1..libc::SIGRTMIN() {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    for (from, to) in [(plan.stdin, 0), (plan.out, 1), (plan.out, 2)] {
        if let Err(f) = dup_to(from, to) {
            fail(plan.err, setup, &f, 125);
        }
    }
    // Wait until the parent has written the id maps.
    let mut b = 0u8;
    if libc::read(plan.sync, (&mut b as *mut u8).cast(), 1) != 1 {
        libc::_exit(125);
    }
    for (i, op) in plan.ops.iter().enumerate() {
        if let Err(f) = op.run() {
            fail(plan.err, i, &f, 125);
        }
    }
    // Everything but stdio (the error pipe is close-on-exec already).
    libc::syscall(
        libc::SYS_close_range,
        3u32,
        u32::MAX,
        libc::CLOSE_RANGE_CLOEXEC,
    );
    let _ = (&plan.argv, &plan.envp);
    let mut last = libc::ENOENT;
    let mut eacces = false;
    for c in &plan.candidates {
        libc::execve(c.as_ptr(), plan.argv_ptrs.as_ptr(), plan.envp_ptrs.as_ptr());
        last = errno();
        match last {
            libc::EACCES => eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => break,
        }
    }
    if eacces && matches!(last, libc::ENOENT | libc::ENOTDIR) {
        last = libc::EACCES;
    }
    let f = Fail {
        errno: last,
        detail: [0; DETAIL],
        len: 0,
    };
    fail(plan.err, plan.ops.len(), &f, 127)
}
