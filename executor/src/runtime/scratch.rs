//! The per-run scratch directory of a runtime.

use super::{cleanup, prep, RuntimeError};
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where this process's runs make their scratch directories, when set.
static BASE: OnceLock<PathBuf> = OnceLock::new();

/// Makes this process's runs put their scratch directories in `dir` (the
/// store's `runs/`, made 0700 when missing) instead of the temporary
/// directory, so that nothing of a build lives outside its store. Call it
/// before the first run; later calls change nothing.
pub fn set_scratch_base(dir: PathBuf) {
    let _ = BASE.set(dir);
}

/// A per-run scratch directory outside the rootfs (mount point, empty
/// lower, hosts, resolv.conf; an OCI runtime's bundle and state), 0700
/// (only its owner can reach anything in it); locked and registered for
/// [`cleanup`] while it lives, removed on drop.
pub(super) struct Scratch {
    /// The directory (absolute, 0700).
    pub(super) dir: PathBuf,
    guard: Option<cleanup::DirGuard>,
}

impl Scratch {
    /// Creates one in the base ([`set_scratch_base`], else the temporary
    /// directory), sweeping stale ones of killed runs there first, once
    /// per process.
    pub(super) fn new() -> Result<Scratch, RuntimeError> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        static SWEPT: std::sync::Once = std::sync::Once::new();
        let base = match BASE.get() {
            Some(dir) => {
                use std::os::unix::fs::DirBuilderExt;
                match std::fs::DirBuilder::new().mode(0o700).create(dir) {
                    Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                        return Err(prep(format!("creating {}", dir.display()))(e));
                    }
                    _ => dir.clone(),
                }
            }
            None => std::env::temp_dir(),
        };
        SWEPT.call_once(|| {
            cleanup::sweep_stale(&base);
        });
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let dir = base.join(format!(
                "{}{}-{n}-{nanos:x}",
                cleanup::PREFIX,
                kiln_oci::process_tag()
            ));
            // Private from the start: an OCI bundle's config.json holds the
            // step's environment, secrets with `env=` included.
            use std::os::unix::fs::DirBuilderExt;
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    let mut scratch = Scratch { dir, guard: None };
                    let what = || format!("creating {}", scratch.dir.display());
                    scratch.guard = Some(cleanup::DirGuard::new(&scratch.dir).map_err(|e| {
                        if e.raw_os_error() == Some(libc::ECANCELED) {
                            RuntimeError::Cancelled
                        } else {
                            prep(what())(e)
                        }
                    })?);
                    // The umask may have taken more than the group's and
                    // others' bits.
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&scratch.dir, std::fs::Permissions::from_mode(0o700))
                        .map_err(prep(what()))?;
                    return Ok(scratch);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(prep(format!("creating {}", dir.display()))(e)),
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.guard = None;
    }
}
