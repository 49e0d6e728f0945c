//! Device nodes a RUN step makes, recorded without making any.
//!
//! BuildKit runs RUN as root with `CAP_MKNOD`, so `mknod /dev/null c 1 3`
//! works there (debootstrap-style builds rely on it). In the built-in
//! sandbox the step runs in a user namespace, where the kernel refuses
//! device nodes, and a real device made on its behalf would be a device
//! on the host. So the seccomp filter hands `mknod`/`mknodat` of a
//! character or block device to a supervisor thread in kiln
//! (`SECCOMP_RET_USER_NOTIF`), which makes a **placeholder** instead: an
//! empty regular file with the call's mode (less the caller's umask) and
//! owner, carrying the xattr [`DEVICE_XATTR`] (`c MAJOR MINOR` or
//! `b MAJOR MINOR`). The step sees a plain empty file; the layer diff
//! writes a device entry for it (`diff.rs`). Nothing that can be opened
//! as a device ever exists, in the sandbox or on the host.
//!
//! The supervisor answers for the caller only what the kernel would have
//! allowed a root with `CAP_MKNOD`: a caller without `CAP_MKNOD` in its
//! effective set, and the 0/0 character device (an overlay whiteout, which
//! the kernel makes itself), continue to the kernel unchanged. Paths are
//! resolved from the caller's root (absolute) or its working directory
//! or `dirfd` (relative, which must stay beneath it), through the
//! caller's mounts (`/proc/PID/root`, `/proc/PID/cwd`, `/proc/PID/fd/N`),
//! with `openat2` refusing magic links and escapes, and the file is
//! created with `O_EXCL | O_NOFOLLOW`, so a path cannot lead the
//! supervisor outside the step's root. The notification is checked to be
//! live after the caller's path and directories are read, so a recycled
//! pid cannot be mistaken for the caller.

use super::{prep, RuntimeError};
use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// The xattr that makes an empty regular file in a layer directory a
/// device node of the layer: `c MAJOR MINOR` or `b MAJOR MINOR`.
pub(crate) const DEVICE_XATTR: &str = "user.kiln.device";

/// `CAP_MKNOD`.
const CAP_MKNOD: u32 = 27;

/// The socket pair the sandboxed child sends its seccomp listener over.
pub(in crate::runtime) struct Channel {
    /// The supervisor's end.
    pub(in crate::runtime) parent: OwnedFd,
    /// The child's end (close-on-exec; the parent closes its copy once the
    /// child is cloned).
    pub(in crate::runtime) child: OwnedFd,
}

impl Channel {
    /// A new pair.
    ///
    /// # Errors
    /// `socketpair` failing.
    pub(in crate::runtime) fn new() -> Result<Channel, RuntimeError> {
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors.
        let rc = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                fds.as_mut_ptr(),
            )
        };
        if rc < 0 {
            return Err(prep("creating the seccomp listener socket")(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: socketpair returned two fresh descriptors we own.
        Ok(unsafe {
            Channel {
                parent: OwnedFd::from_raw_fd(fds[0]),
                child: OwnedFd::from_raw_fd(fds[1]),
            }
        })
    }
}

/// The thread serving one step's device notifications.
pub(in crate::runtime) struct Supervisor {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// Serves the listener the child sends over `socket` until the step's
    /// processes are gone or [`Supervisor::stop`] is called.
    pub(in crate::runtime) fn start(socket: OwnedFd) -> Supervisor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("kiln-devices".into())
            .spawn(move || {
                if let Some(listener) = receive_listener(&socket, &flag) {
                    serve(&listener, &flag);
                }
            })
            .ok();
        Supervisor { stop, thread }
    }

    /// Stops serving (the step has ended) and waits for the thread.
    pub(in crate::runtime) fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits (polling `stop`) for the listener the child sends; `None` when
/// the child closed its end without sending one (it failed earlier, or
/// runs without a filter).
fn receive_listener(socket: &OwnedFd, stop: &AtomicBool) -> Option<OwnedFd> {
    while !stop.load(Ordering::SeqCst) {
        if !readable(socket.as_raw_fd(), 100)? {
            continue;
        }
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec {
            iov_base: byte.as_mut_ptr().cast(),
            iov_len: 1,
        };
        let mut space = [0u64; 4];
        // SAFETY: a zeroed msghdr is valid; every pointer set below
        // points at live buffers of the given lengths.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = space.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&space) as _;
        // SAFETY: msg describes valid buffers.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n <= 0 {
            return None;
        }
        // SAFETY: the kernel filled the control buffer msg points at.
        let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        if cmsg.is_null() {
            return None;
        }
        // SAFETY: cmsg points into `space`; the header was checked non-null.
        let (level, kind) = unsafe { ((*cmsg).cmsg_level, (*cmsg).cmsg_type) };
        if level != libc::SOL_SOCKET || kind != libc::SCM_RIGHTS {
            return None;
        }
        // SAFETY: an SCM_RIGHTS message carries at least one descriptor,
        // now ours.
        let fd = unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>()) };
        // SAFETY: fd was just received and is owned by nobody else.
        return Some(unsafe { OwnedFd::from_raw_fd(fd) });
    }
    None
}

/// Whether `fd` is readable within `ms`; `None` when it hung up or failed.
fn readable(fd: RawFd, ms: i32) -> Option<bool> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, ms) };
    if n < 0 {
        return (io::Error::last_os_error().kind() == io::ErrorKind::Interrupted).then_some(false);
    }
    if p.revents & libc::POLLIN != 0 {
        return Some(true);
    }
    if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
        return None;
    }
    Some(false)
}

/// Answers notifications until every process of the filter is gone.
fn serve(listener: &OwnedFd, stop: &AtomicBool) {
    let fd = listener.as_raw_fd();
    while !stop.load(Ordering::SeqCst) {
        match readable(fd, 100) {
            None => return,
            Some(false) => continue,
            Some(true) => {}
        }
        // SAFETY: RECV wants a zeroed seccomp_notif to fill.
        let mut notif: libc::seccomp_notif = unsafe { std::mem::zeroed() };
        // SAFETY: fd is a seccomp listener; notif is the size the ioctl
        // number says.
        if unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut notif) } < 0 {
            match io::Error::last_os_error().raw_os_error() {
                // The caller died before we read it, or a signal.
                Some(libc::ENOENT | libc::EINTR) => continue,
                _ => return,
            }
        }
        let mut resp = libc::seccomp_notif_resp {
            id: notif.id,
            val: 0,
            error: 0,
            flags: 0,
        };
        match answer(fd, &notif) {
            Ok(Answer::Made) => {}
            Ok(Answer::Kernel) => resp.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
            Err(errno) => resp.error = -errno,
        }
        // SAFETY: resp is a valid response for this listener. A caller
        // that died meanwhile makes this fail with ENOENT: nothing to do.
        unsafe { libc::ioctl(fd, libc::SECCOMP_IOCTL_NOTIF_SEND, &resp) };
    }
}

/// What the supervisor did with a call.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// A placeholder was made: the call returns 0.
    Made,
    /// The kernel decides, as without the supervisor.
    Kernel,
}

/// The call a notification carries.
#[derive(Debug, PartialEq, Eq)]
struct Call {
    /// The `dirfd` (`AT_FDCWD` for `mknod`).
    dirfd: i32,
    /// Where the path is in the caller's memory.
    path: u64,
    /// The mode argument.
    mode: u32,
    /// `c` or `b`.
    kind: char,
    major: u32,
    minor: u32,
}

impl Call {
    /// The device call `nr` with `args`, or `None` for anything else.
    fn of(nr: i32, args: &[u64; 6]) -> Option<Call> {
        #[cfg(target_arch = "x86_64")]
        let mknod = nr == libc::SYS_mknod as i32;
        #[cfg(not(target_arch = "x86_64"))]
        let mknod = false;
        let (dirfd, path, mode, dev) = if mknod {
            (libc::AT_FDCWD, args[0], args[1] as u32, args[2] as u32)
        } else if nr == libc::SYS_mknodat as i32 {
            (args[0] as i32, args[1], args[2] as u32, args[3] as u32)
        } else {
            return None;
        };
        let kind = match mode & libc::S_IFMT {
            libc::S_IFCHR => 'c',
            libc::S_IFBLK => 'b',
            _ => return None,
        };
        // The syscall's `unsigned int dev`, as the kernel decodes it.
        let major = (dev & 0xfff00) >> 8;
        let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        Some(Call {
            dirfd,
            path,
            mode,
            kind,
            major,
            minor,
        })
    }
}

/// What `/proc/PID/status` says of the caller.
#[derive(Debug, PartialEq, Eq)]
struct Caller {
    fsuid: u32,
    fsgid: u32,
    umask: u32,
    can_mknod: bool,
}

impl Caller {
    /// Reads the `Uid`, `Gid` (their file-system ids, as this process's
    /// user namespace sees them), `Umask` and `CapEff` lines.
    fn parse(status: &str) -> Option<Caller> {
        let field = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .map(str::trim)
        };
        let fs_id = |key: &str| field(key)?.split_whitespace().nth(3)?.parse::<u32>().ok();
        let caps = u64::from_str_radix(field("CapEff:")?, 16).ok()?;
        Some(Caller {
            fsuid: fs_id("Uid:")?,
            fsgid: fs_id("Gid:")?,
            umask: u32::from_str_radix(field("Umask:")?, 8).ok()?,
            can_mknod: caps & (1 << CAP_MKNOD) != 0,
        })
    }
}

/// Makes the placeholder a notification asks for, or says why not (an
/// errno for the caller).
fn answer(listener: RawFd, notif: &libc::seccomp_notif) -> Result<Answer, i32> {
    let Some(call) = Call::of(notif.data.nr, &notif.data.args) else {
        return Ok(Answer::Kernel);
    };
    if call.kind == 'c' && call.major == 0 && call.minor == 0 {
        return Ok(Answer::Kernel);
    }
    let pid = notif.pid;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(errno)?;
    let caller = Caller::parse(&status).ok_or(libc::EPERM)?;
    if !caller.can_mknod {
        return Ok(Answer::Kernel);
    }
    let path = read_path(pid, call.path)?;
    let absolute = path.first() == Some(&b'/');
    let base = if absolute {
        format!("/proc/{pid}/root")
    } else if call.dirfd == libc::AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{}", call.dirfd)
    };
    let base = open_dir(&base)?;
    // The pid, its root, cwd and fds were the caller's only if the call is
    // still waiting.
    // SAFETY: listener is a seccomp listener; id is a u64.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &notif.id) } < 0 {
        return Err(libc::ENOENT);
    }
    let (parent, name) = split(&path)?;
    let resolve = libc::RESOLVE_NO_MAGICLINKS
        | if absolute {
            libc::RESOLVE_IN_ROOT
        } else {
            libc::RESOLVE_BENEATH
        };
    let dir = openat2(&base, parent, libc::O_PATH | libc::O_DIRECTORY, resolve)?;
    let perm = call.mode & 0o7777 & !caller.umask;
    let name_c = CString::new(name).map_err(|_| libc::EINVAL)?;
    // SAFETY: dir is open, name_c is NUL-terminated.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name_c.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let file = unsafe { File::from(OwnedFd::from_raw_fd(fd)) };
    let value = format!("{} {} {}", call.kind, call.major, call.minor);
    let attr = CString::new(DEVICE_XATTR).map_err(|_| libc::EINVAL)?;
    // SAFETY: fd is open; attr and value are valid for their lengths.
    let marked = unsafe {
        libc::fchown(fd, caller.fsuid, caller.fsgid) == 0
            && libc::fchmod(fd, perm) == 0
            && libc::fsetxattr(fd, attr.as_ptr(), value.as_ptr().cast(), value.len(), 0) == 0
    };
    if !marked {
        let e = last_errno();
        drop(file);
        // SAFETY: dir is open, name_c is NUL-terminated; the file we made.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name_c.as_ptr(), 0) };
        return Err(e);
    }
    Ok(Answer::Made)
}

/// The NUL-terminated path at `addr` in process `pid` (at most
/// `PATH_MAX` bytes, as the kernel reads it).
fn read_path(pid: u32, addr: u64) -> Result<Vec<u8>, i32> {
    let mem = File::open(format!("/proc/{pid}/mem")).map_err(errno)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    let mut got = 0;
    // Read up to each page end: the bytes after the string may be unmapped.
    while got < buf.len() {
        let at = addr.checked_add(got as u64).ok_or(libc::EFAULT)?;
        let to_page_end = 4096 - (at % 4096) as usize;
        let end = (got + to_page_end).min(buf.len());
        let n = mem
            .read_at(&mut buf[got..end], at)
            .map_err(|_| libc::EFAULT)?;
        if n == 0 {
            return Err(libc::EFAULT);
        }
        if let Some(nul) = buf[got..got + n].iter().position(|&b| b == 0) {
            buf.truncate(got + nul);
            return if buf.is_empty() {
                Err(libc::ENOENT)
            } else {
                Ok(buf)
            };
        }
        got += n;
    }
    Err(libc::ENAMETOOLONG)
}

/// `PATH` as the parent directory (`.` when there is none) and the last
/// name; trailing slashes are refused as the kernel refuses them for a
/// new non-directory.
fn split(path: &[u8]) -> Result<(&[u8], &[u8]), i32> {
    let trimmed = path.strip_suffix(b"/").map_or(path, |_| &path[..0]);
    if trimmed.is_empty() {
        return Err(if path.iter().all(|&b| b == b'/') {
            libc::EEXIST
        } else {
            libc::ENOENT
        });
    }
    let (parent, name) = match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (&b"/"[..], &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (&b"."[..], trimmed),
    };
    if name == b"." || name == b".." {
        return Err(libc::EEXIST);
    }
    Ok((parent, name))
}

/// Opens a directory of the caller's (`/proc/PID/...`) to resolve from.
fn open_dir(path: &str) -> Result<OwnedFd, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: c is NUL-terminated.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dir, path, flags, resolve)`.
fn openat2(dir: &OwnedFd, path: &[u8], flags: i32, resolve: u64) -> Result<OwnedFd, i32> {
    let c = CString::new(path).map_err(|_| libc::EINVAL)?;
    // SAFETY: open_how is plain data; zero is every field's default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: dir is open, c is NUL-terminated, how is an open_how of the
    // size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn errno(e: io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// Reads a placeholder's [`DEVICE_XATTR`] value: the device's kind
/// (`c`/`b`) and number, or `None` for anything else.
pub(crate) fn parse_mark(value: &[u8]) -> Option<(char, u32, u32)> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.split(' ');
    let kind = match parts.next()? {
        "c" => 'c',
        "b" => 'b',
        _ => return None,
    };
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    // 0/0 is an overlay whiteout, never a device the supervisor made.
    let whiteout = kind == 'c' && major == 0 && minor == 0;
    (parts.next().is_none() && !whiteout).then_some((kind, major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_calls_are_told_apart() {
        let dev = |major: u32, minor: u32| u64::from((major << 8) | minor);
        let at = Call::of(
            libc::SYS_mknodat as i32,
            &[
                libc::AT_FDCWD as u64,
                7,
                u64::from(libc::S_IFBLK | 0o600),
                dev(7, 0),
                0,
                0,
            ],
        )
        .unwrap();
        assert_eq!((at.kind, at.major, at.minor, at.path), ('b', 7, 0, 7));
        let fifo = [0, 0, u64::from(libc::S_IFIFO), 0, 0, 0];
        assert_eq!(Call::of(libc::SYS_mknodat as i32, &fifo), None);
        assert_eq!(Call::of(libc::SYS_openat as i32, &[0; 6]), None);
        // Minor numbers above 255 (the kernel's new encoding).
        let big = Call::of(
            libc::SYS_mknodat as i32,
            &[0, 0, u64::from(libc::S_IFCHR), 0x0010_0301, 0, 0],
        )
        .unwrap();
        assert_eq!((big.major, big.minor), (3, 0x101));
    }

    #[test]
    fn the_callers_ids_umask_and_mknod_capability() {
        let status = "Name:\tsh\nUmask:\t0022\nUid:\t0\t0\t0\t1000\nGid:\t0\t0\t0\t1001\nCapEff:\t00000000a80425fb\n";
        assert_eq!(
            Caller::parse(status),
            Some(Caller {
                fsuid: 1000,
                fsgid: 1001,
                umask: 0o22,
                can_mknod: true
            })
        );
        let without = status.replace("a80425fb", "a00425fb");
        assert!(!Caller::parse(&without).unwrap().can_mknod);
        assert_eq!(Caller::parse("Uid:\t0\n"), None);
    }

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(split(b"/dev/null").unwrap(), (&b"/dev"[..], &b"null"[..]));
        assert_eq!(split(b"/null").unwrap(), (&b"/"[..], &b"null"[..]));
        assert_eq!(split(b"x").unwrap(), (&b"."[..], &b"x"[..]));
        assert_eq!(split(b"a/b").unwrap(), (&b"a"[..], &b"b"[..]));
        assert_eq!(split(b"/dev/x/"), Err(libc::ENOENT));
        assert_eq!(split(b"/"), Err(libc::EEXIST));
        assert_eq!(split(b"/dev/.."), Err(libc::EEXIST));
    }

    #[test]
    fn marks_parse_strictly() {
        assert_eq!(parse_mark(b"c 1 3"), Some(('c', 1, 3)));
        assert_eq!(parse_mark(b"b 7 0"), Some(('b', 7, 0)));
        for bad in [&b"p 1 3"[..], b"c 1", b"c 1 3 4", b"c x 3", b"", b"c 0 0"] {
            assert_eq!(parse_mark(bad), None);
        }
    }
}
