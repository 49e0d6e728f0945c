//! File capabilities (`security.capability`), the one extended attribute
//! kiln's layers carry besides overlay's markers: what `setcap` gives a
//! program (newuidmap's `cap_setuid`, a server's `cap_net_bind_service`)
//! is part of the image, as in BuildKit's layers. They travel as PAX
//! `SCHILY.xattr.security.capability` records ([`crate::diff`] writes
//! them, unpacking sets them), are kept when a copy snapshot is made and
//! compared when it is diffed.
//!
//! A capability set by a process in a user namespace is stored in the
//! namespaced format (revision 3, with the host uid of the namespace's
//! root); where that root is host uid 0 the layer gets the plain format
//! (revision 2), as a host that reads it expects.

use std::fs::File;
use std::io;
use std::path::Path;

/// The attribute's name.
pub(crate) const NAME: &str = "security.capability";

const REVISION_MASK: u32 = 0xFF00_0000;
const REVISION_2: u32 = 0x0200_0000;
const REVISION_3: u32 = 0x0300_0000;
/// The size of a revision 2 value (magic and two permitted/inheritable
/// pairs); revision 3 adds the root id.
const SIZE_2: usize = 20;
const SIZE_3: usize = 24;

/// The capabilities of the open regular file `file`, in the layer's form
/// ([`normalize`]), `None` when it has none.
///
/// # Errors
/// The `fgetxattr` error (an absent attribute or a filesystem without
/// xattrs is `None`).
pub(crate) fn of_file(file: &File) -> io::Result<Option<Vec<u8>>> {
    Ok(crate::dirfd::fgetxattr(file, NAME)?.map(normalize))
}

/// The capabilities of `path` (not following a symlink), in the layer's
/// form.
///
/// # Errors
/// The `getxattr` error.
pub(crate) fn of_path(path: &Path) -> io::Result<Option<Vec<u8>>> {
    Ok(crate::file_meta::get_xattr(path, NAME)?.map(normalize))
}

/// Gives `path` the capabilities `value`: after its owner is set (a
/// chown clears them). Where they cannot be set (no `CAP_SETFCAP`, a
/// filesystem without them) the file goes without, as other attributes
/// unpacking cannot set do.
///
/// # Errors
/// Any other `setxattr` error.
pub(crate) fn set(path: &Path, value: &[u8]) -> io::Result<()> {
    match crate::file_meta::set_xattr(path, NAME, value) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EPERM | libc::EOPNOTSUPP | libc::EINVAL)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// A revision 3 value whose root id is 0 as revision 2; anything else
/// as it is.
pub(crate) fn normalize(value: Vec<u8>) -> Vec<u8> {
    if value.len() != SIZE_3 {
        return value;
    }
    let word =
        |at: usize| u32::from_le_bytes([value[at], value[at + 1], value[at + 2], value[at + 3]]);
    let magic = word(0);
    if magic & REVISION_MASK != REVISION_3 || word(SIZE_2) != 0 {
        return value;
    }
    let mut out = ((magic & !REVISION_MASK) | REVISION_2)
        .to_le_bytes()
        .to_vec();
    out.extend_from_slice(&value[4..SIZE_2]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cap_net_bind_service=ep` (bit 10), effective flag set.
    fn v2() -> Vec<u8> {
        let mut v = (REVISION_2 | 1).to_le_bytes().to_vec();
        v.extend_from_slice(&(1u32 << 10).to_le_bytes());
        v.extend_from_slice(&[0; 12]);
        v
    }

    #[test]
    fn namespaced_capabilities_of_host_root_become_plain_ones() {
        let mut v3 = (REVISION_3 | 1).to_le_bytes().to_vec();
        v3.extend_from_slice(&v2()[4..]);
        v3.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(normalize(v3.clone()), v2());
        // Another root stays namespaced; plain ones stay as they are.
        let len = v3.len();
        v3[len - 4..].copy_from_slice(&100_000u32.to_le_bytes());
        assert_eq!(normalize(v3.clone()), v3);
        assert_eq!(normalize(v2()), v2());
    }

    #[test]
    fn capabilities_survive_a_set_and_a_read() {
        // SAFETY: no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: setting file capabilities needs root");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("prog");
        std::fs::write(&f, b"x").expect("write");
        assert_eq!(of_path(&f).expect("read"), None);
        set(&f, &v2()).expect("set");
        assert_eq!(of_path(&f).expect("read"), Some(v2()));
        let file = File::open(&f).expect("open");
        assert_eq!(of_file(&file).expect("read"), Some(v2()));
    }
}
