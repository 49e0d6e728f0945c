//! The overlay format of layer directories: whiteouts (0/0 character
//! devices, or empty files with the whiteout xattr) and opaque
//! directories (the `overlay.opaque` xattrs).

use crate::file_meta::{get_xattr, mknod, set_xattr};
use crate::privileges::is_root;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// The xattr overlayfs reads when mounted by real root.
pub(crate) const OPAQUE_TRUSTED: &str = "trusted.overlay.opaque";
/// The xattr overlayfs reads with `userxattr` (rootless).
pub(crate) const OPAQUE_USER: &str = "user.overlay.opaque";

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
