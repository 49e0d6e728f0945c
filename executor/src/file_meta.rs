//! One path's metadata without following a final symlink: ownership,
//! mode, times, device nodes and xattrs; and I/O errors that name the
//! path.

use crate::privileges::can_chown;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn cname(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "xattr name contains a NUL byte",
        )
    })
}

/// `mknod(path, mode, dev)`; `mode` includes the file type bits.
pub(crate) fn mknod(path: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cpath(path)?;
    // SAFETY: c is a valid NUL-terminated string.
    let rc = unsafe { libc::mknod(c.as_ptr(), mode as libc::mode_t, dev as libc::dev_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The device number of `major`/`minor`.
pub(crate) fn makedev(major: u32, minor: u32) -> u64 {
    libc::makedev(major, minor)
}

/// Major number of a device number.
pub(crate) fn major(dev: u64) -> u32 {
    libc::major(dev as libc::dev_t)
}

/// Minor number of a device number.
pub(crate) fn minor(dev: u64) -> u32 {
    libc::minor(dev as libc::dev_t)
}

/// `lchown`; the file stays ours where the owner cannot be given: without
/// `CAP_CHOWN` (`EPERM`: not root, or root with its capabilities
/// dropped), and in a user namespace that does not map the id (`EINVAL`:
/// a rootless build that could map only its own uid).
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !can_chown() => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

/// `chmod` (follows symlinks: never call it on one).
pub(crate) fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

/// The `utimensat` argument for `atime` and `mtime` (seconds,
/// nanoseconds).
pub(crate) fn timespecs(atime: (i64, i64), mtime: (i64, i64)) -> [libc::timespec; 2] {
    [
        libc::timespec {
            tv_sec: atime.0 as libc::time_t,
            tv_nsec: atime.1 as _,
        },
        libc::timespec {
            tv_sec: mtime.0 as libc::time_t,
            tv_nsec: mtime.1 as _,
        },
    ]
}

/// Sets atime and mtime of `path` without following a final symlink.
pub(crate) fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = timespecs(atime, mtime);
    // SAFETY: c is valid, ts points to two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The value of xattr `name` on `path` (not following a symlink), `None`
/// when absent or unsupported.
pub(crate) fn get_xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    match get_xattr_where_supported(path, name) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        other => other,
    }
}

/// [`get_xattr`], except that a filesystem without such attributes is
/// the error `EOPNOTSUPP`, not `None`.
pub(crate) fn get_xattr_where_supported(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    let c = cpath(path)?;
    let n = cname(name)?;
    // SAFETY: pointers valid for the given lengths.
    read_xattr(|buf| unsafe {
        libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })
}

/// Runs a `getxattr`-style call `get` (returning the length, or -1 with
/// errno) with a buffer grown until the value fits (up to 1 MiB): the
/// value, or `None` when the attribute is absent or unsupported.
pub(crate) fn xattr_value(
    get: impl FnMut(&mut [u8]) -> libc::ssize_t,
) -> io::Result<Option<Vec<u8>>> {
    match read_xattr(get) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(None),
        other => other,
    }
}

/// [`xattr_value`] with an unsupported attribute as the error
/// `EOPNOTSUPP`.
fn read_xattr(mut get: impl FnMut(&mut [u8]) -> libc::ssize_t) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let rc = get(&mut buf);
        if rc >= 0 {
            buf.truncate(rc as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) => return Ok(None),
            Some(libc::ERANGE) if buf.len() < 1 << 20 => {
                let len = buf.len() * 4;
                buf.resize(len, 0);
            }
            _ => return Err(e),
        }
    }
}

/// Sets xattr `name` on `path` (not following a symlink).
pub(crate) fn set_xattr(path: &Path, name: &str, value: &[u8]) -> io::Result<()> {
    let c = cpath(path)?;
    let n = cname(name)?;
    // SAFETY: pointers valid for the given lengths.
    let rc = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An I/O error with the action and path in its message (same kind).
pub(crate) fn annotate(action: &str, path: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("{action} {}: {error}", path.display()),
    )
}
