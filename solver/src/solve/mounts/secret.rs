//! Secret files staged for one step where no other host user can reach
//! them: `<store>/secrets/<unique>/` (mode 0700, inside the 0700 store),
//! each file created with no permissions at all and given its final mode
//! and owner before its first byte is written.
//!
//! A sealed memfd bound through `/proc/<pid>/fd/<n>` would be better (no
//! file, freed with kiln), but the kernel refuses to bind-mount a memfd
//! (`EINVAL`: its mount belongs to no mount namespace). So the staging
//! directory holds a `lock` file locked for as long as the step runs: the
//! directory is removed when the step ends, and should kiln be killed,
//! the next kiln to open the store finds the lock free and removes it
//! ([`kiln_oci::LocalStore::open`]).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One step's staged secrets; dropping it removes them.
#[derive(Debug)]
pub(super) struct Staging {
    dir: PathBuf,
    _lock: File,
    count: usize,
}

impl Staging {
    /// A new, empty, locked staging directory under `store_root`.
    ///
    /// # Errors
    /// The error creating or locking it.
    pub(super) fn new(store_root: &Path) -> io::Result<Staging> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let parent = store_root.join(kiln_oci::SECRETS_DIR);
        match std::fs::DirBuilder::new().mode(0o700).create(&parent) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{}-{n}", std::process::id());
            // Made under a hidden name, which other kilns leave alone, and
            // shown only once its lock is held.
            let new = parent.join(format!(".new-{name}"));
            let dir = parent.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&new) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
            let lock = File::create_new(new.join(kiln_oci::SECRETS_LOCK))
                .and_then(|f| f.try_lock().map(|()| f).map_err(io::Error::from))
                .and_then(|f| std::fs::rename(&new, &dir).map(|()| f));
            return match lock {
                Ok(lock) => Ok(Staging {
                    dir,
                    _lock: lock,
                    count: 0,
                }),
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&new);
                    Err(e)
                }
            };
        }
    }

    /// Writes `value` to a new file with `mode`, `uid` and `gid`; returns
    /// its path.
    ///
    /// # Errors
    /// The failing system call's error.
    pub(super) fn stage(
        &mut self,
        value: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> io::Result<PathBuf> {
        let path = self.dir.join(format!("secret-{}", self.count));
        self.count += 1;
        // Nobody but the store's owner may open it while it has no
        // permissions; the final ones (not reduced by the umask) and the
        // owner are set before any content exists.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o000)
            .open(&path)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
        std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
        file.write_all(value)?;
        Ok(path)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn staged_secrets_have_their_mode_and_go_with_the_staging() {
        let store = tempfile::tempdir().expect("tempdir");
        let md = std::fs::metadata(store.path()).expect("stat");
        let mut staging = Staging::new(store.path()).expect("staging");
        let path = staging
            .stage(b"s3cret", 0o666, md.uid(), md.gid())
            .expect("staged");
        let file = std::fs::metadata(&path).expect("stat");
        assert_eq!(file.mode() & 0o7777, 0o666, "the umask took no bits");
        assert_eq!(std::fs::read(&path).expect("read"), b"s3cret");
        let dir = path.parent().expect("parent").to_path_buf();
        let dir_md = std::fs::metadata(&dir).expect("stat");
        assert_eq!(dir_md.mode() & 0o7777, 0o700);
        drop(staging);
        assert!(!dir.exists());
    }
}
