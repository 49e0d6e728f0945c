//! The blob half of garbage collection: what the names reach, sweeping the
//! blobs they do not, and the leases that keep a collection from deleting
//! blobs a running pull, load or build has written but not yet named.
//!
//! The words, shared with the store-wide collector built on these
//! (`kiln_solver::gc`, which also knows the build cache's records,
//! unpacked layers and cache mounts; oci sits below the solver and cannot):
//!
//! - *reachable*: a blob a name (`refs.json`) reaches through indexes and
//!   manifests ([`Reachable`]); never collected.
//! - *lease*: a shared lock on `gc.lock` ([`Lease`]), held by every
//!   process that writes blobs until it has set the name that makes them
//!   reachable.
//! - *the store's lock*: `gc.lock` held exclusively ([`StoreLock`]); a
//!   collection runs only under it, so only when no lease is held, and
//!   writers wait while it runs.
//! - *sweep*: removing every blob that is not reachable
//!   ([`LocalStore::gc`]), and *stale ingests*: ingest files of processes
//!   that are gone.

use crate::digest::Digest;
use crate::image::{descriptor_digest, Manifest};
use crate::media;
use crate::store::{io_err, BlobReader, LocalStore, Result};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Keeps the blobs this process writes safe from a concurrent
/// [`LocalStore::gc`] until it is dropped.
#[derive(Debug)]
pub struct Lease {
    lock: File,
    path: PathBuf,
    acquired: SystemTime,
}

/// The store's lock held exclusively: no build, pull or load holds a
/// [`Lease`] while it lives, so what they use can be removed safely.
#[derive(Debug)]
pub struct StoreLock {
    _lock: File,
}

/// What the names reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reachable {
    /// Every blob (indexes, manifests, configs, layers) a name reaches.
    pub blobs: BTreeSet<Digest>,
    /// The diff ids (uncompressed layer digests) of the images a name
    /// reaches, from their configs.
    pub diff_ids: BTreeSet<String>,
}

impl Lease {
    /// When the lease was taken: what a build holding it used was used at
    /// or after this time.
    pub fn acquired(&self) -> SystemTime {
        self.acquired
    }

    /// Turns the lease into the exclusive lock, without waiting: when
    /// another process holds a lease, gives the lease back (shared again).
    /// The conversion is not atomic (flock(2)): for a moment the lock is
    /// not held at all.
    ///
    /// # Errors
    /// An I/O error naming the lock file.
    pub fn try_exclusive(self) -> Result<std::result::Result<StoreLock, Lease>> {
        match self.lock.try_lock() {
            Ok(()) => Ok(Ok(StoreLock { _lock: self.lock })),
            Err(fs::TryLockError::WouldBlock) => {
                self.lock
                    .lock_shared()
                    .map_err(io_err("locking", &self.path))?;
                Ok(Err(self))
            }
            Err(fs::TryLockError::Error(e)) => Err(io_err("locking", &self.path)(e)),
        }
    }
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed (file sizes), including stale ingest files.
    pub freed: u64,
    /// Blobs kept because they are reachable.
    pub kept: usize,
    /// Abandoned ingest files removed (from processes that died).
    pub stale_ingests: usize,
}

fn open_lock(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err("opening", path))
}

/// Opens the lock file for a shared lock. On a read-only mount of a store
/// it is opened for reading: flock(2) needs no write access, and the lease
/// still holds off a collection run through a writable mount of the same
/// store.
fn open_shared_lock(path: &Path) -> Result<File> {
    match open_lock(path) {
        Err(crate::store::StoreError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::ReadOnlyFilesystem =>
        {
            File::open(path).map_err(io_err("opening", path))
        }
        other => other,
    }
}

impl LocalStore {
    /// Takes a lease: blobs written while it is held survive a concurrent
    /// garbage collection. Blocks while a collection runs.
    ///
    /// # Errors
    /// An I/O error naming the lock file.
    pub fn lease(&self) -> Result<Lease> {
        let path = self.layout().gc_lock();
        let file = open_shared_lock(&path)?;
        file.lock_shared().map_err(io_err("locking", &path))?;
        Ok(Lease {
            lock: file,
            path,
            acquired: SystemTime::now(),
        })
    }

    /// Takes the store's lock exclusively, waiting for running builds,
    /// pulls and loads to release their leases.
    ///
    /// # Errors
    /// An I/O error naming the lock file.
    pub fn lock_exclusive(&self) -> Result<StoreLock> {
        let path = self.layout().gc_lock();
        let lock = open_lock(&path)?;
        lock.lock().map_err(io_err("locking", &path))?;
        Ok(StoreLock { _lock: lock })
    }

    /// Takes the store's lock exclusively when no build, pull, load or
    /// collection holds the lock or a lease now; `None` when one does.
    ///
    /// # Errors
    /// An I/O error naming the lock file (on a read-only store, opening
    /// it fails).
    pub fn try_lock_exclusive(&self) -> Result<Option<StoreLock>> {
        let path = self.layout().gc_lock();
        let lock = open_lock(&path)?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _lock: lock })),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(io_err("locking", &path)(e)),
        }
    }

    /// Sweeps: removes every blob that is not reachable, and stale ingest
    /// files. Waits for running writers' leases.
    ///
    /// # Errors
    /// An I/O error naming the path concerned. A reference whose image is
    /// damaged is not an error: what it still reaches is kept.
    pub fn gc(&self) -> Result<GcReport> {
        let lock = self.lock_exclusive()?;
        self.gc_locked(&lock)
    }

    /// What the names reach: blobs, and the diff ids of the images among
    /// them. Damaged or missing blobs are skipped.
    ///
    /// # Errors
    /// An I/O error reading the names.
    pub fn reachable(&self) -> Result<Reachable> {
        let mut out = Reachable::default();
        let mut configs = BTreeSet::new();
        for digest in self.refs()?.into_values() {
            mark(self, &digest, &mut out.blobs, &mut configs);
        }
        for config in configs {
            let Ok(bytes) = self.read(&config) else {
                continue;
            };
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            if let Some(ids) = value
                .get("rootfs")
                .and_then(|r| r.get("diff_ids"))
                .and_then(|d| d.as_array())
            {
                out.diff_ids
                    .extend(ids.iter().filter_map(|d| d.as_str()).map(str::to_string));
            }
        }
        Ok(out)
    }

    /// [`LocalStore::gc`] with the lock already held.
    ///
    /// # Errors
    /// As [`LocalStore::gc`].
    pub fn gc_locked(&self, lock: &StoreLock) -> Result<GcReport> {
        let reachable = self.reachable()?.blobs;
        let mut report = GcReport::default();
        for digest in self.blobs()? {
            if reachable.contains(&digest) {
                report.kept += 1;
                continue;
            }
            report.freed += self.size(&digest).unwrap_or(0);
            self.delete(&digest)?;
            report.removed.push(digest);
        }
        let (count, bytes) = self.remove_stale_ingests(lock)?;
        report.stale_ingests = count;
        report.freed += bytes;
        Ok(report)
    }

    /// Removes stale ingest files (left by processes that are gone);
    /// returns how many and their bytes.
    ///
    /// # Errors
    /// An I/O error naming the path concerned.
    pub fn remove_stale_ingests(&self, _lock: &StoreLock) -> Result<(usize, u64)> {
        let mut count = 0;
        let mut bytes = 0;
        let ingest = self.layout().ingest();
        for entry in fs::read_dir(&ingest).map_err(io_err("listing", &ingest))? {
            let entry = entry.map_err(io_err("listing", &ingest))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let owners = self.layout().owners();
            let alive = crate::owner::owner_of(&name, true).is_some_and(|o| o.alive(Some(&owners)));
            if !alive {
                bytes += entry.metadata().map(|m| m.len()).unwrap_or(0);
                let p = entry.path();
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
                count += 1;
            }
        }
        Ok((count, bytes))
    }
}

/// Marks everything reachable from `root`, tolerating missing or damaged
/// blobs (they cannot be collected anyway); image configs also go into
/// `configs`.
fn mark(
    store: &LocalStore,
    root: &Digest,
    reachable: &mut BTreeSet<Digest>,
    configs: &mut BTreeSet<Digest>,
) {
    let mut stack = vec![root.clone()];
    while let Some(digest) = stack.pop() {
        if !reachable.insert(digest.clone()) {
            continue;
        }
        let Ok(bytes) = store.read(&digest) else {
            continue;
        };
        let Ok(manifest) = Manifest::from_slice(&bytes, None, digest.as_str()) else {
            continue;
        };
        if let Manifest::Image(m) = &manifest {
            if let Ok(d) = descriptor_digest(m.config(), digest.as_str()) {
                configs.insert(d);
            }
        }
        for child in manifest.children() {
            let Ok(d) = descriptor_digest(child, digest.as_str()) else {
                continue;
            };
            let t = child.media_type().to_string();
            if media::is_manifest(&t) || media::is_index(&t) {
                stack.push(d);
            } else {
                reachable.insert(d);
            }
        }
    }
}
