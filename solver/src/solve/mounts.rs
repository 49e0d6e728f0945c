//! `RUN --mount` sources: persistent cache directories in the store,
//! secrets written to a scratch file for the step only, tmpfs.

use super::{SecretSource, Shared};
use crate::op::{ExecMount, ExecOp};
use kiln_executor::Mount;
use kiln_oci::Digest;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Adds the mounts of `exec` to `mounts`; returns the locks of
/// `sharing=locked` caches, held until the step ends.
pub(super) fn prepare(
    shared: &Shared,
    exec: &ExecOp,
    scratch: &Path,
    mounts: &mut Vec<Mount>,
) -> Result<Vec<File>, String> {
    let mut locks = Vec::new();
    for (i, m) in exec.mounts.iter().enumerate() {
        match m {
            ExecMount::Tmpfs { target, size } => mounts.push(Mount::Tmpfs {
                target: target.clone(),
                size: *size,
            }),
            ExecMount::Cache {
                target,
                id,
                mode,
                uid,
                gid,
                locked,
                readonly,
            } => {
                let root = shared.store.root().join("cache-mounts");
                let key = Digest::sha256(id.as_bytes());
                let dir = root.join(key.hex());
                if !dir.exists() {
                    let tmp = root.join(format!("{}.tmp-{}", key.hex(), std::process::id()));
                    std::fs::create_dir_all(&tmp)
                        .map_err(|e| format!("creating cache {id:?}: {e}"))?;
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode))
                        .and_then(|()| std::os::unix::fs::chown(&tmp, Some(*uid), Some(*gid)))
                        .map_err(|e| format!("preparing cache {id:?}: {e}"))?;
                    if std::fs::rename(&tmp, &dir).is_err() {
                        // Another step created it first.
                        let _ = std::fs::remove_dir(&tmp);
                    }
                }
                if *locked {
                    let lock_path = root.join(format!("{}.lock", key.hex()));
                    let lock = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&lock_path)
                        .map_err(|e| format!("locking cache {id:?}: {e}"))?;
                    lock.lock()
                        .map_err(|e| format!("locking cache {id:?}: {e}"))?;
                    locks.push(lock);
                }
                mounts.push(Mount::Bind {
                    source: dir,
                    target: target.clone(),
                    readonly: *readonly,
                });
            }
            ExecMount::Secret {
                id,
                target,
                mode,
                uid,
                gid,
                required,
            } => {
                let value = match shared.secrets.get(id) {
                    Some(SecretSource::File(path)) => Some(
                        std::fs::read(path)
                            .map_err(|e| format!("secret {id}: reading {}: {e}", path.display()))?,
                    ),
                    Some(SecretSource::Env(var)) => Some(
                        std::env::var(var)
                            .map_err(|_| {
                                format!("secret {id}: environment variable {var} is not set")
                            })?
                            .into_bytes(),
                    ),
                    None => None,
                };
                let Some(value) = value else {
                    if *required {
                        return Err(format!("secret {id}: not found"));
                    }
                    continue;
                };
                let file = scratch.join(format!("secret-{i}"));
                std::fs::write(&file, &value)
                    .and_then(|()| {
                        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*mode))
                    })
                    .and_then(|()| std::os::unix::fs::chown(&file, Some(*uid), Some(*gid)))
                    .map_err(|e| format!("secret {id}: {e}"))?;
                mounts.push(Mount::Bind {
                    source: file,
                    target: target.clone(),
                    readonly: true,
                });
            }
        }
    }
    Ok(locks)
}
