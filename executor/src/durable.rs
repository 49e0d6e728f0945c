//! Whether a layer directory outlived a crash intact.
//!
//! A layer's blob is synced before it is published; its directory is not
//! (syncing every file of every layer would cost what overlayfs's
//! `volatile` saves). So a directory is trusted only in the boot that
//! wrote it, or once a `syncfs` after it has put it on disk: each
//! directory carries the extended attribute [`MARK`] with the boot id of
//! the boot that wrote it ([`mark_written`]), or `synced`
//! ([`settle`]). A directory with another boot's id, or without the mark,
//! may have lost writes in a crash: the caller unpacks it again from its
//! blob. On a filesystem without user extended attributes the mark
//! cannot be kept and directories are trusted as they are.

use std::io;
use std::path::Path;
use std::sync::OnceLock;

/// The extended attribute that says when a layer directory was written.
pub const MARK: &str = "user.kiln.layer";

/// The mark of a directory some `syncfs` has written out.
const SYNCED: &[u8] = b"synced";

/// This boot's id (`/proc/sys/kernel/random/boot_id`), if the kernel
/// tells it.
fn boot_id() -> Option<&'static [u8]> {
    static ID: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    ID.get_or_init(|| {
        std::fs::read("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|id| id.trim_ascii().to_vec())
            .filter(|id| !id.is_empty())
    })
    .as_deref()
}

/// What the mark of `dir` says.
enum Mark {
    /// Written in this boot, or synced since.
    Intact,
    /// Absent, or written in another boot.
    Doubtful,
    /// The filesystem keeps no user extended attributes.
    Unsupported,
}

fn read_mark(dir: &Path) -> io::Result<Mark> {
    match crate::file_meta::get_xattr_where_supported(dir, MARK) {
        Ok(Some(value)) if value == SYNCED || Some(value.as_slice()) == boot_id() => {
            Ok(Mark::Intact)
        }
        Ok(_) => Ok(Mark::Doubtful),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(Mark::Unsupported),
        Err(e) => Err(e),
    }
}

/// Marks `dir` (a layer directory about to be committed) as written in
/// this boot. Nothing happens where the filesystem keeps no user
/// extended attributes, or the kernel tells no boot id.
///
/// # Errors
/// Setting the attribute failed for another reason.
pub fn mark_written(dir: &Path) -> io::Result<()> {
    let Some(id) = boot_id() else {
        return Ok(());
    };
    match crate::file_meta::set_xattr(dir, MARK, id) {
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => Ok(()),
        other => other,
    }
}

/// Whether the existing layer directory `dir` can be used as it is: it
/// was written in this boot or synced since, or its filesystem cannot
/// tell. `false` for a directory a crash may have left incomplete, and
/// when the mark cannot be read.
pub fn is_intact(dir: &Path) -> bool {
    if boot_id().is_none() {
        return true;
    }
    matches!(read_mark(dir), Ok(Mark::Intact | Mark::Unsupported))
}

/// Whether `dir` carries this boot's mark (written in this boot, not
/// synced yet).
pub fn written_this_boot(dir: &Path) -> bool {
    boot_id().is_some_and(|id| {
        crate::file_meta::get_xattr(dir, MARK)
            .ok()
            .flatten()
            .is_some_and(|v| v == id)
    })
}

/// Puts on disk what the layer directories `dirs` (all on one
/// filesystem) hold, with one `syncfs`, and then marks those written in
/// this boot as synced: they stay trusted after a crash. Returns how many
/// it marked.
///
/// # Errors
/// Opening the first directory or `syncfs` failed.
pub fn settle(dirs: &[&Path]) -> io::Result<usize> {
    let Some(id) = boot_id() else {
        return Ok(0);
    };
    let Some(first) = dirs.first() else {
        return Ok(0);
    };
    let fs = std::fs::File::open(first)?;
    // SAFETY: a valid open descriptor.
    if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&fs)) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut marked = 0;
    for dir in dirs {
        let current = crate::file_meta::get_xattr(dir, MARK).ok().flatten();
        if current.as_deref() == Some(id) && crate::file_meta::set_xattr(dir, MARK, SYNCED).is_ok()
        {
            marked += 1;
        }
    }
    Ok(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_intact_in_the_boot_that_wrote_it_or_once_synced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("layer");
        std::fs::create_dir(&dir).expect("mkdir");
        if matches!(read_mark(&dir), Ok(Mark::Unsupported)) {
            eprintln!("skipped: no user xattrs on {}", tmp.path().display());
            return;
        }
        assert!(!is_intact(&dir), "an unmarked directory is doubtful");
        mark_written(&dir).expect("mark");
        assert!(is_intact(&dir));
        crate::file_meta::set_xattr(&dir, MARK, b"a-boot-before-the-crash").expect("set");
        assert!(!is_intact(&dir), "another boot's directory is doubtful");
        mark_written(&dir).expect("mark");
        assert_eq!(settle(&[dir.as_path()]).expect("settle"), 1);
        assert_eq!(
            crate::file_meta::get_xattr(&dir, MARK).expect("get"),
            Some(SYNCED.to_vec())
        );
        assert!(is_intact(&dir));
    }
}
