//! Garbage collection of blobs no named reference reaches, and the leases
//! that keep a collection from deleting blobs a running pull, load or build
//! has written but not yet named.
//!
//! Every process that writes blobs holds a shared lock on `gc.lock` (a
//! [`Lease`]) until it has set the reference that makes them reachable.
//! [`LocalStore::gc`] takes the exclusive lock, so it runs only when no
//! such writer is in flight, and writers wait while it runs.

use crate::digest::Digest;
use crate::image::{descriptor_digest, Manifest};
use crate::media;
use crate::store::{io_err, BlobReader, LocalStore, Result};
use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::path::Path;

/// Keeps the blobs this process writes safe from a concurrent
/// [`LocalStore::gc`] until it is dropped.
#[derive(Debug)]
pub struct Lease {
    _lock: File,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// The blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed, including abandoned ingest files.
    pub bytes_freed: u64,
    /// Blobs kept because a reference reaches them.
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

impl LocalStore {
    /// Takes a lease: blobs written while it is held survive a concurrent
    /// garbage collection. Blocks while a collection runs.
    ///
    /// # Errors
    /// An I/O error naming the lock file.
    pub fn lease(&self) -> Result<Lease> {
        let path = self.root().join("gc.lock");
        let file = open_lock(&path)?;
        file.lock_shared().map_err(io_err("locking", &path))?;
        Ok(Lease { _lock: file })
    }

    /// Removes every blob that no reference reaches, and ingest files left
    /// by processes that are gone. Waits for running writers' leases.
    ///
    /// # Errors
    /// An I/O error naming the path concerned. A reference whose image is
    /// damaged is not an error: what it still reaches is kept.
    pub fn gc(&self) -> Result<GcReport> {
        let path = self.root().join("gc.lock");
        let lock = open_lock(&path)?;
        lock.lock().map_err(io_err("locking", &path))?;

        let mut live = BTreeSet::new();
        for digest in self.refs()?.into_values() {
            mark(self, &digest, &mut live);
        }
        let mut report = GcReport::default();
        for digest in self.blobs()? {
            if live.contains(&digest) {
                report.kept += 1;
                continue;
            }
            report.bytes_freed += self.size(&digest).unwrap_or(0);
            self.delete(&digest)?;
            report.removed.push(digest);
        }
        let ingest = self.root().join("ingest");
        for entry in fs::read_dir(&ingest).map_err(io_err("listing", &ingest))? {
            let entry = entry.map_err(io_err("listing", &ingest))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.split('-').next().and_then(|p| p.parse::<u32>().ok());
            let alive = pid.is_some_and(|p| {
                p == std::process::id() || Path::new(&format!("/proc/{p}")).exists()
            });
            if !alive {
                report.bytes_freed += entry.metadata().map(|m| m.len()).unwrap_or(0);
                let p = entry.path();
                fs::remove_file(&p).map_err(io_err("removing", &p))?;
                report.stale_ingests += 1;
            }
        }
        Ok(report)
    }
}

/// Marks everything reachable from `root`, tolerating missing or damaged
/// blobs (they cannot be collected anyway).
fn mark(store: &LocalStore, root: &Digest, live: &mut BTreeSet<Digest>) {
    let mut stack = vec![root.clone()];
    while let Some(digest) = stack.pop() {
        if !live.insert(digest.clone()) {
            continue;
        }
        let Ok(bytes) = store.read(&digest) else {
            continue;
        };
        let Ok(manifest) = Manifest::from_slice(&bytes, None, digest.as_str()) else {
            continue;
        };
        for child in manifest.children() {
            let Ok(d) = descriptor_digest(child, digest.as_str()) else {
                continue;
            };
            let t = child.media_type().to_string();
            if media::is_manifest(&t) || media::is_index(&t) {
                stack.push(d);
            } else {
                live.insert(d);
            }
        }
    }
}
