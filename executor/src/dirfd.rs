//! Directories held open as file descriptors, and the `*at` calls on their
//! children.
//!
//! A tree is walked by opening each directory relative to its parent
//! (`openat(parent, name)`), so every call resolves one name: the cost of a
//! walk is linear in the size of the tree whatever its depth, and a path
//! longer than `PATH_MAX` (which the kernel lets a tree have) never has to
//! be spelled out. The walks keep one open directory per level of the
//! current path, so [`raise_fd_limit`] lifts the soft limit on open files to
//! the hard one first (as the Go runtime does for Docker and BuildKit).
//!
//! Nothing here follows a symlink in the last component; a directory opened
//! with [`Dir::open_dir`] is never reached through a symlink either.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// An open directory, with the path it was reached by (for messages only:
/// it may be longer than the kernel would resolve).
#[derive(Debug)]
pub struct Dir {
    file: File,
    path: PathBuf,
}

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains a NUL byte"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft limit on open files to the hard limit, once per process.
/// Deep walks hold one directory open per level.
pub fn raise_fd_limit() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: lim is a valid rlimit to fill in.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0
            && lim.rlim_cur < lim.rlim_max
        {
            lim.rlim_cur = lim.rlim_max;
            // SAFETY: lim is a valid rlimit. Failure leaves the old limit.
            unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
        }
    });
}

impl Dir {
    /// Opens the directory at `path` (a symlink to a directory is followed:
    /// `path` is the caller's, not the tree's).
    ///
    /// # Errors
    /// The `open` error.
    pub fn open(path: &Path) -> io::Result<Dir> {
        raise_fd_limit();
        let c = cstr(path.as_os_str())?;
        // SAFETY: c is a valid NUL-terminated string.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        Self::from_fd(fd, path.to_path_buf())
    }

    fn from_fd(fd: RawFd, path: PathBuf) -> io::Result<Dir> {
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned by nobody else.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        Ok(Dir { file, path })
    }

    /// The path this directory was reached by (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of child `name` (for messages).
    pub fn child_path(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    fn openat(&self, name: &OsStr, flags: libc::c_int, mode: libc::mode_t) -> io::Result<RawFd> {
        let c = cstr(name)?;
        // SAFETY: the fd is open and c is a valid NUL-terminated string.
        let fd = unsafe {
            libc::openat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                flags | libc::O_CLOEXEC | libc::O_NOFOLLOW,
                libc::c_uint::from(mode),
            )
        };
        if fd < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(fd)
        }
    }

    /// Opens child directory `name` (`ELOOP`/`ENOTDIR` if it is a symlink
    /// or not a directory).
    ///
    /// # Errors
    /// The `openat` error.
    pub fn open_dir(&self, name: &OsStr) -> io::Result<Dir> {
        let fd = self.openat(name, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Self::from_fd(fd, self.child_path(name))
    }

    /// Opens child `name` for reading (never a symlink).
    ///
    /// # Errors
    /// The `openat` error.
    pub fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let fd = self.openat(name, libc::O_RDONLY | libc::O_NOCTTY, 0)?;
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Creates child `name` as a new regular file with `mode`, for writing.
    ///
    /// # Errors
    /// The `openat` error (`EEXIST` if something is there).
    pub fn create_file(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let fd = self.openat(
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
            (mode & 0o7777) as libc::mode_t,
        )?;
        // SAFETY: fd was just opened and is owned by nobody else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// The metadata of this directory.
    ///
    /// # Errors
    /// The `fstat` error.
    pub fn metadata(&self) -> io::Result<Metadata> {
        self.file.metadata()
    }

    /// The metadata of child `name`, not following a symlink.
    ///
    /// # Errors
    /// The `openat`/`fstat` error (`NotFound` when absent).
    pub fn child_metadata(&self, name: &OsStr) -> io::Result<Metadata> {
        // An O_PATH descriptor opens anything (a symlink itself, a device
        // without opening it) and std reads its metadata with statx.
        let fd = self.openat(name, libc::O_PATH, 0)?;
        // SAFETY: fd was just opened and is owned by nobody else.
        File::from(unsafe { OwnedFd::from_raw_fd(fd) }).metadata()
    }

    /// The names in this directory (without `.` and `..`), sorted by bytes.
    ///
    /// # Errors
    /// The `openat`/`readdir` error.
    pub fn names(&self) -> io::Result<Vec<OsString>> {
        // fdopendir takes over its descriptor: give it a fresh one.
        let fd = self.openat(OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        // SAFETY: fd is an open directory; on success the stream owns it.
        let stream = unsafe { libc::fdopendir(fd) };
        if stream.is_null() {
            let e = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so fd is still ours.
            unsafe { libc::close(fd) };
            return Err(e);
        }
        let mut names = Vec::new();
        let result = loop {
            // SAFETY: errno is thread-local; readdir sets it only on error.
            unsafe { *libc::__errno_location() = 0 };
            // SAFETY: stream is a valid open directory stream.
            let ent = unsafe { libc::readdir64(stream) };
            if ent.is_null() {
                let e = io::Error::last_os_error();
                break if e.raw_os_error() == Some(0) {
                    Ok(())
                } else {
                    Err(e)
                };
            }
            // SAFETY: d_name of a returned entry is NUL-terminated.
            let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
            if name != b"." && name != b".." {
                names.push(OsString::from_vec(name.to_vec()));
            }
        };
        // SAFETY: stream is valid and closed once (closing its fd).
        unsafe { libc::closedir(stream) };
        result?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    /// The target of symlink `name`, verbatim.
    ///
    /// # Errors
    /// The `readlinkat` error.
    pub fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        let c = cstr(name)?;
        let mut buf = vec![0u8; 256];
        loop {
            // SAFETY: buf is valid for buf.len() bytes.
            let n = unsafe {
                libc::readlinkat(
                    self.file.as_raw_fd(),
                    c.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = n as usize;
            if n < buf.len() {
                buf.truncate(n);
                return Ok(OsString::from_vec(buf));
            }
            buf.resize(buf.len() * 2, 0);
        }
    }

    /// Creates child directory `name` with `mode` (before the umask).
    ///
    /// # Errors
    /// The `mkdirat` error.
    pub fn create_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: valid fd and string.
        check(unsafe {
            libc::mkdirat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                (mode & 0o7777) as libc::mode_t,
            )
        })
    }

    /// Creates child `name` as a symlink to `target`.
    ///
    /// # Errors
    /// The `symlinkat` error.
    pub fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        let (t, c) = (cstr(target)?, cstr(name)?);
        // SAFETY: valid fd and strings.
        check(unsafe { libc::symlinkat(t.as_ptr(), self.file.as_raw_fd(), c.as_ptr()) })
    }

    /// Creates child `name` as a node of `mode` (type bits included) and
    /// device number `dev`.
    ///
    /// # Errors
    /// The `mknodat` error.
    pub fn mknod(&self, name: &OsStr, mode: u32, dev: u64) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: valid fd and string.
        check(unsafe {
            libc::mknodat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                mode as libc::mode_t,
                dev as libc::dev_t,
            )
        })
    }

    /// Hard-links child `name` to `from_name` in directory `from`.
    ///
    /// # Errors
    /// The `linkat` error.
    pub fn hard_link(&self, name: &OsStr, from: &Dir, from_name: &OsStr) -> io::Result<()> {
        let (f, c) = (cstr(from_name)?, cstr(name)?);
        // SAFETY: valid fds and strings.
        check(unsafe {
            libc::linkat(
                from.file.as_raw_fd(),
                f.as_ptr(),
                self.file.as_raw_fd(),
                c.as_ptr(),
                0,
            )
        })
    }

    /// Removes child `name`: a file, a symlink or an empty directory.
    ///
    /// # Errors
    /// The `unlinkat` error.
    pub fn remove(&self, name: &OsStr, is_dir: bool) -> io::Result<()> {
        let c = cstr(name)?;
        let flags = if is_dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid fd and string.
        check(unsafe { libc::unlinkat(self.file.as_raw_fd(), c.as_ptr(), flags) })
    }

    /// Removes the tree at child `name` (anything: a file, or a directory
    /// with its contents), without recursion and without following
    /// symlinks. Directories are made writable and searchable first, so
    /// `0000` ones left by RUN steps go too.
    ///
    /// # Errors
    /// I/O errors naming the path.
    pub fn remove_tree(&self, name: &OsStr) -> io::Result<()> {
        let md = self.child_metadata(name)?;
        if !md.is_dir() {
            return self.remove(name, false);
        }
        // Each level: the open directory, the names left in it, and its
        // own name in the level above.
        let top = self.open_searchable(name)?;
        let names = top
            .names()
            .map_err(|e| annotate("listing", top.path(), e))?;
        let mut stack = vec![(top, names, name.to_os_string())];
        while let Some((dir, names, _)) = stack.last_mut() {
            if let Some(child) = names.pop() {
                let path = || dir.child_path(&child);
                let md = dir
                    .child_metadata(&child)
                    .map_err(|e| annotate("reading", &path(), e))?;
                if md.is_dir() {
                    let sub = dir.open_searchable(&child)?;
                    let sub_names = sub
                        .names()
                        .map_err(|e| annotate("listing", sub.path(), e))?;
                    stack.push((sub, sub_names, child));
                } else {
                    dir.remove(&child, false)
                        .map_err(|e| annotate("removing", &path(), e))?;
                }
                continue;
            }
            let Some((done, _, done_name)) = stack.pop() else {
                break;
            };
            drop(done);
            let parent = stack.last().map_or(self, |(dir, _, _)| dir);
            parent
                .remove(&done_name, true)
                .map_err(|e| annotate("removing", &parent.child_path(&done_name), e))?;
        }
        Ok(())
    }

    /// Opens child directory `name`, first giving it owner `rwx` if it
    /// lacks them (root needs no permission, rootless kiln does).
    fn open_searchable(&self, name: &OsStr) -> io::Result<Dir> {
        let path = self.child_path(name);
        match self.open_dir(name) {
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
            Ok(dir) => {
                let md = dir.metadata().map_err(|e| annotate("reading", &path, e))?;
                use std::os::unix::fs::MetadataExt;
                if md.mode() & 0o700 != 0o700 {
                    dir.chmod(None, md.mode() | 0o700)
                        .map_err(|e| annotate("chmod", &path, e))?;
                }
                return Ok(dir);
            }
            Err(e) => return Err(annotate("opening", &path, e)),
        }
        let c = cstr(name)?;
        // SAFETY: valid fd and string; the child is a directory (not a
        // symlink: open_dir failed with EACCES, not ELOOP).
        check(unsafe { libc::fchmodat(self.file.as_raw_fd(), c.as_ptr(), 0o700, 0) })
            .map_err(|e| annotate("chmod", &path, e))?;
        self.open_dir(name)
            .map_err(|e| annotate("opening", &path, e))
    }

    /// Sets the mode of child `name`, or of this directory for `None`
    /// (never call it for a symlink).
    ///
    /// # Errors
    /// The `fchmodat`/`fchmod` error.
    pub fn chmod(&self, name: Option<&OsStr>, mode: u32) -> io::Result<()> {
        let mode = (mode & 0o7777) as libc::mode_t;
        match name {
            // SAFETY: valid fd.
            None => check(unsafe { libc::fchmod(self.file.as_raw_fd(), mode) }),
            Some(name) => {
                let c = cstr(name)?;
                // SAFETY: valid fd and string.
                check(unsafe { libc::fchmodat(self.file.as_raw_fd(), c.as_ptr(), mode, 0) })
            }
        }
    }

    /// Sets the owner of child `name` without following a symlink; as
    /// non-root, `EPERM` is ignored (the files stay ours).
    ///
    /// # Errors
    /// The `fchownat` error.
    pub fn lchown(&self, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: valid fd and string.
        let rc = check(unsafe {
            libc::fchownat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                uid,
                gid,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        });
        match rc {
            Err(e) if e.raw_os_error() == Some(libc::EPERM) && !crate::privileges::is_root() => {
                Ok(())
            }
            other => other,
        }
    }

    /// Sets atime and mtime of child `name` without following a symlink.
    ///
    /// # Errors
    /// The `utimensat` error.
    pub fn set_times(&self, name: &OsStr, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
        let c = cstr(name)?;
        let ts = crate::file_meta::timespecs(atime, mtime);
        // SAFETY: valid fd and string, ts points to two timespecs.
        check(unsafe {
            libc::utimensat(
                self.file.as_raw_fd(),
                c.as_ptr(),
                ts.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    /// Owner, then mode (chown clears setuid bits; not for symlinks), then
    /// times of child `name`, from `md`.
    ///
    /// # Errors
    /// I/O errors naming the path.
    pub fn set_meta(&self, name: &OsStr, md: &Metadata) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let path = || self.child_path(name);
        self.lchown(name, md.uid(), md.gid())
            .map_err(|e| annotate("chown", &path(), e))?;
        if !md.file_type().is_symlink() {
            self.chmod(Some(name), md.mode())
                .map_err(|e| annotate("chmod", &path(), e))?;
        }
        self.set_times(
            name,
            (md.atime(), md.atime_nsec()),
            (md.mtime(), md.mtime_nsec()),
        )
        .map_err(|e| annotate("setting times of", &path(), e))
    }

    /// The value of xattr `attr` on this directory, `None` when absent or
    /// unsupported.
    ///
    /// # Errors
    /// The `fgetxattr` error.
    pub fn xattr(&self, attr: &str) -> io::Result<Option<Vec<u8>>> {
        fgetxattr(&self.file, attr)
    }

    /// Whether child `name` (metadata `md`) is a whiteout: a character
    /// device 0/0, or an empty regular file with the whiteout xattr.
    ///
    /// # Errors
    /// I/O errors opening an empty file to read its xattr.
    pub fn is_whiteout(&self, name: &OsStr, md: &Metadata) -> io::Result<bool> {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let ft = md.file_type();
        if ft.is_char_device() {
            return Ok(md.rdev() == 0);
        }
        if !ft.is_file() || md.len() != 0 {
            return Ok(false);
        }
        // O_PATH descriptors do not serve xattrs; an empty file opens.
        let file = match self.open_file(name) {
            Ok(f) => f,
            // A mode-0 marker as non-root: fall back on the path.
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                let path = self.proc_path(name);
                return Ok(crate::overlay_marks::is_whiteout(&path, md));
            }
            Err(e) => return Err(e),
        };
        Ok(fgetxattr(&file, crate::overlay_marks::WHITEOUT_XATTR)?.is_some())
    }

    /// The device-placeholder mark of child `name` (whose metadata is
    /// `md`): the value of [`DEVICE_XATTR`] on an empty regular file, see
    /// `runtime/devices.rs`; `None` for anything else.
    ///
    /// [`DEVICE_XATTR`]: crate::runtime::devices::DEVICE_XATTR
    ///
    /// # Errors
    /// I/O errors opening the empty file to read its xattr.
    pub fn device_mark(&self, name: &OsStr, md: &Metadata) -> io::Result<Option<Vec<u8>>> {
        use std::os::unix::fs::MetadataExt;
        if !md.file_type().is_file() || md.len() != 0 || md.nlink() != 1 {
            return Ok(None);
        }
        let attr = crate::runtime::devices::DEVICE_XATTR;
        match self.open_file(name) {
            Ok(file) => fgetxattr(&file, attr),
            // A mode-0 placeholder as non-root: read it by path.
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                crate::file_meta::get_xattr_where_supported(&self.proc_path(name), attr)
            }
            Err(e) => Err(e),
        }
    }

    /// Whether this directory is marked opaque (trusted or user namespace).
    ///
    /// # Errors
    /// The `fgetxattr` error.
    pub fn is_opaque(&self) -> io::Result<bool> {
        for attr in [
            crate::overlay_marks::OPAQUE_TRUSTED,
            crate::overlay_marks::OPAQUE_USER,
        ] {
            if self.xattr(attr)?.as_deref() == Some(b"y") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A short path to child `name` through this process's descriptor
    /// table, for the few calls that have no `*at` form.
    fn proc_path(&self, name: &OsStr) -> PathBuf {
        Path::new(&format!("/proc/self/fd/{}", self.file.as_raw_fd())).join(name)
    }
}

/// The value of xattr `attr` of the open file `file`, `None` when absent
/// or unsupported.
pub(crate) fn fgetxattr(file: &File, attr: &str) -> io::Result<Option<Vec<u8>>> {
    let n = CString::new(attr)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "xattr name contains NUL"))?;
    // SAFETY: valid fd, name, and buffer of buf.len() bytes.
    crate::file_meta::xattr_value(|buf| unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            n.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })
}

/// An I/O error with the action and path in its message (same kind).
pub fn annotate(action: &str, path: &Path, error: io::Error) -> io::Error {
    crate::file_meta::annotate(action, path, error)
}
