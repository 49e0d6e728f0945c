//! Small system helpers shared by the layer code: overlay-format markers
//! (whiteouts, opaque directories), ownership, times, device nodes and
//! xattrs, all without following a final symlink.

use std::ffi::CString;
use std::fs::Metadata;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The xattr overlayfs reads when mounted by real root.
pub(crate) const OPAQUE_TRUSTED: &str = "trusted.overlay.opaque";
/// The xattr overlayfs reads with `userxattr` (rootless).
pub(crate) const OPAQUE_USER: &str = "user.overlay.opaque";

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

/// Whether the process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// True inside a user namespace that does not map every uid (a rootless
/// kiln, root only of its subordinate ids): cgroups cannot be created.
pub(crate) fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
        let fields: Vec<&str> = map.split_whitespace().collect();
        fields != ["0", "0", "4294967295"]
    })
}

/// The xattr marking an empty regular file as a whiteout where character
/// devices cannot be made (a store on overlayfs refuses them); the
/// kernel's name for it (overlayfs "xwhiteouts", with `userxattr`).
pub(crate) const WHITEOUT_XATTR: &str = "user.overlay.whiteout";

/// A whiteout: a character device 0/0, or an empty regular file carrying
/// the whiteout xattr (see [`make_whiteout`]). `path` is only read for
/// empty regular files.
pub(crate) fn is_whiteout(path: &Path, metadata: &Metadata) -> bool {
    let ft = metadata.file_type();
    if ft.is_char_device() {
        return metadata.rdev() == 0;
    }
    ft.is_file() && metadata.len() == 0 && matches!(get_xattr(path, WHITEOUT_XATTR), Ok(Some(_)))
}

/// Whether directory `path` is marked opaque (trusted or user namespace).
pub(crate) fn is_opaque(path: &Path) -> io::Result<bool> {
    for name in [OPAQUE_TRUSTED, OPAQUE_USER] {
        if get_xattr(path, name)?.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Marks directory `path` opaque: `trusted.overlay.opaque=y` as root,
/// `user.overlay.opaque=y` otherwise.
pub(crate) fn set_opaque(path: &Path) -> io::Result<()> {
    // The runtime always mounts overlayfs inside a user namespace with
    // `userxattr`, which reads only the `user.` attribute; the `trusted.`
    // one (root only) serves an overlay mounted outside a namespace.
    set_xattr(path, OPAQUE_USER, b"y")?;
    if is_root() {
        // Refused to root of a user namespace (rootless builds): the
        // `user.` attribute is the one kiln's overlays read anyway.
        match set_xattr(path, OPAQUE_TRUSTED, b"y") {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            other => other?,
        }
    }
    Ok(())
}

/// Creates a whiteout at `path`: a character device 0/0 (mode 0), or,
/// where the filesystem refuses it (overlayfs does), an empty file with
/// the whiteout xattr.
pub(crate) fn make_whiteout(path: &Path) -> io::Result<()> {
    match mknod(path, libc::S_IFCHR, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o000)
                .open(path)?;
            set_xattr(path, WHITEOUT_XATTR, b"y")
        }
        other => other,
    }
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

/// `lchown`; as non-root, `EPERM` is ignored (the files stay ours).
pub(crate) fn lchown(path: &Path, uid: u32, gid: u32) -> io::Result<()> {
    match std::os::unix::fs::lchown(path, Some(uid), Some(gid)) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && !is_root() => Ok(()),
        other => other,
    }
}

/// `chmod` (follows symlinks: never call it on one).
pub(crate) fn chmod(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Sets atime and mtime of `path` without following a final symlink.
pub(crate) fn set_times(path: &Path, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let c = cpath(path)?;
    let ts = [
        libc::timespec {
            tv_sec: atime.0 as libc::time_t,
            tv_nsec: atime.1 as _,
        },
        libc::timespec {
            tv_sec: mtime.0 as libc::time_t,
            tv_nsec: mtime.1 as _,
        },
    ];
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
    let c = cpath(path)?;
    let n = cname(name)?;
    // SAFETY: pointers valid for the given lengths.
    xattr_value(|buf| unsafe {
        libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len())
    })
}

/// Runs a `getxattr`-style call `get` (returning the length, or -1 with
/// errno) with a buffer grown until the value fits (up to 1 MiB): the
/// value, or `None` when the attribute is absent or unsupported.
pub(crate) fn xattr_value(
    mut get: impl FnMut(&mut [u8]) -> libc::ssize_t,
) -> io::Result<Option<Vec<u8>>> {
    let mut buf = vec![0u8; 256];
    loop {
        let rc = get(&mut buf);
        if rc >= 0 {
            buf.truncate(rc as usize);
            return Ok(Some(buf));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::EOPNOTSUPP) => return Ok(None),
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
