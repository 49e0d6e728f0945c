//! Pruning least recently used first, and the sweep after it.

use super::entry::{Entry, Kind, Reclaim, Target};
use super::usage::{usage, Holders};
use super::walk::{allocated, remove_path};
use super::GcError;
use crate::cache::CacheIndex;
use kiln_oci::{GcReport, LocalStore, StoreLock};
use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also what only `--all` removes: cache mounts, unpacked layers of
    /// reachable images, records whose blob is reachable.
    pub all: bool,
    /// Stop once the store is at or under this many bytes.
    pub keep_storage: Option<u64>,
    /// Only what was last used before this time (`--filter until=`).
    pub used_before: Option<SystemTime>,
    /// Never what was used at or after this time (what the build that
    /// just finished used).
    pub protect_since: Option<SystemTime>,
}

/// One removed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Its id (as in [`Entry::id`]).
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// Allocated bytes freed.
    pub freed: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The entries removed, least recently used first.
    pub removed: Vec<Removed>,
    /// Blobs deleted (with records or unreferenced).
    pub blobs_removed: usize,
    /// Allocated bytes freed.
    pub freed: u64,
    /// The store's allocated bytes before.
    pub before: u64,
}

/// Removes build cache, least recently used first, as `opts` says; returns
/// what went. The caller holds the store's lock (`_lock`), so nothing a
/// running build uses can go. Reachable blobs, and the names, are never
/// touched.
///
/// # Errors
/// I/O errors measuring or removing; what was removed before stays removed.
pub fn prune(
    store: &LocalStore,
    _lock: &StoreLock,
    opts: &PruneOptions,
) -> Result<PruneReport, GcError> {
    let usage = usage(store)?;
    let mut report = PruneReport {
        before: usage.total,
        ..PruneReport::default()
    };
    let layout = store.layout();
    let reachable = store.reachable()?;
    let index = CacheIndex::new(layout);
    let mut holders = Holders::default();
    for e in &usage.entries {
        if let Target::Record { blob, diff_id, .. } = &e.target {
            holders.add(blob.as_ref(), diff_id.as_ref());
        }
    }
    let mut candidates: Vec<&Entry> = usage
        .entries
        .iter()
        .filter(|e| match e.reclaim {
            Reclaim::Default => true,
            Reclaim::All => opts.all,
            Reclaim::Never => false,
        })
        .filter(|e| {
            let used = e.last_used.unwrap_or(UNIX_EPOCH);
            opts.used_before.is_none_or(|t| used < t) && opts.protect_since.is_none_or(|t| used < t)
        })
        .collect();
    // Least recently used first; unknown times first of all.
    candidates.sort_by_key(|e| (e.last_used.unwrap_or(UNIX_EPOCH), e.kind, e.id.clone()));
    let mut current = usage.total;
    for entry in candidates {
        if opts.keep_storage.is_some_and(|k| current <= k) {
            break;
        }
        let mut seen = HashSet::new();
        let mut freed = 0;
        match &entry.target {
            Target::None => continue,
            Target::Blob(d) => {
                freed += allocated(&layout.blob(d), &mut seen)?;
                store.delete(d)?;
                report.blobs_removed += 1;
            }
            Target::Paths(paths) => {
                for p in paths {
                    freed += allocated(p, &mut seen)?;
                    remove_path(p)?;
                }
            }
            Target::Record {
                file,
                blob,
                diff_id,
            } => {
                freed += allocated(file, &mut seen)?;
                remove_path(file)?;
                if let Some(b) = blob {
                    if holders.release_blob(b) && !reachable.blobs.contains(b) {
                        let path = layout.blob(b);
                        if path.exists() {
                            freed += allocated(&path, &mut seen)?;
                            store.delete(b)?;
                            report.blobs_removed += 1;
                        }
                    }
                }
                if let Some(d) = diff_id {
                    if holders.release_layer(d) && !reachable.diff_ids.contains(d.as_str()) {
                        for p in [layout.layer_dir(d), index.layer_marker(d.hex())] {
                            freed += allocated(&p, &mut seen)?;
                            remove_path(&p)?;
                        }
                    }
                }
            }
        }
        current = current.saturating_sub(freed);
        report.freed += freed;
        report.removed.push(Removed {
            id: entry.id.clone(),
            kind: entry.kind,
            freed,
        });
    }
    Ok(report)
}

/// The sweep after a prune with `opts`, under the same lock: every blob
/// that is not reachable and stale ingest files go, unless a filter or a
/// size limit says to keep some of it (the prune removed those it chose);
/// then only stale ingest files go, and every blob counts as kept.
///
/// # Errors
/// I/O errors listing or removing.
pub fn sweep(
    store: &LocalStore,
    lock: &StoreLock,
    opts: &PruneOptions,
) -> Result<GcReport, GcError> {
    if opts.used_before.is_none() && opts.keep_storage.is_none() {
        return Ok(store.gc_locked(lock)?);
    }
    let (stale_ingests, freed) = store.remove_stale_ingests(lock)?;
    Ok(GcReport {
        removed: Vec::new(),
        freed,
        kept: store.blobs()?.len(),
        stale_ingests,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{unix_millis, CacheKeyParts, CachedLayer};
    use kiln_oci::{BlobReader as _, Digest};
    use std::fs;
    use std::time::Duration;

    #[test]
    fn usage_adds_up_and_prune_goes_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("store");
        let root = store.root().to_path_buf();
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        for (name, size) in [("a", 40_000), ("b", 80_000)] {
            let d = store.layout().contexts();
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join(name), vec![1u8; size]).expect("write");
        }
        let f = fs::File::options()
            .append(true)
            .open(store.layout().contexts().join("a"))
            .expect("open");
        f.set_modified(old).expect("mtime");
        let blob = store.write_blob(&[7u8; 10_000], None).expect("blob");
        let u = usage(&store).expect("usage");
        assert_eq!(u.total, u.entries.iter().map(|e| e.size).sum::<u64>());
        let mut seen = HashSet::new();
        assert_eq!(u.total, allocated(&root, &mut seen).expect("walk"));
        assert_eq!(u.by_kind(Kind::Context).0, 2);

        // Only what is older than 10 minutes: context a.
        let lock = store.lock_exclusive().expect("lock");
        let opts = PruneOptions {
            used_before: Some(SystemTime::now() - std::time::Duration::from_secs(600)),
            ..PruneOptions::default()
        };
        let r = prune(&store, &lock, &opts).expect("prune");
        assert_eq!(r.removed.len(), 1, "{r:?}");
        assert_eq!(r.removed[0].id, "a");
        assert!(store.layout().contexts().join("b").exists());
        // Everything the default removes: b and the unreferenced blob.
        let r = prune(&store, &lock, &PruneOptions::default()).expect("prune");
        assert_eq!(r.removed.len(), 2, "{r:?}");
        assert_eq!(r.blobs_removed, 1);
        assert!(!store.blob_path(&blob).exists());
    }

    /// A record for `key` holding `blob` and the layer `diff_id`, last used
    /// `age` ago.
    fn record(store: &LocalStore, key: &str, blob: &Digest, diff_id: &Digest, age: Duration) {
        let layer = CachedLayer {
            diff_id: diff_id.to_string(),
            blob: blob.to_string(),
            size: 1,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            last_used: Some(unix_millis(SystemTime::now() - age)),
        };
        let parts = CacheKeyParts {
            vertex: key.into(),
            inputs: Vec::new(),
            context: None,
        };
        CacheIndex::new(store.layout())
            .put(&parts.key(), &layer, key, &parts)
            .expect("record");
    }

    fn unpacked(store: &LocalStore, diff_id: &Digest) -> std::path::PathBuf {
        let dir = store.layout().layer_dir(diff_id);
        fs::create_dir_all(&dir).expect("mkdir");
        fs::write(dir.join("f"), vec![3u8; 9000]).expect("write");
        CacheIndex::new(store.layout()).touch_layer(diff_id);
        dir
    }

    #[test]
    fn a_blob_and_layer_go_with_the_last_record_that_holds_them() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(tmp.path().join("store")).expect("store");
        let blob = store.write_blob(&[5u8; 5000], None).expect("blob");
        let diff_id = Digest::sha256(b"layer");
        let dir = unpacked(&store, &diff_id);
        record(&store, "old", &blob, &diff_id, Duration::from_secs(3600));
        record(&store, "new", &blob, &diff_id, Duration::ZERO);

        let u = usage(&store).expect("usage");
        let records: Vec<&Entry> = u
            .entries
            .iter()
            .filter(|e| e.description == "cache record")
            .collect();
        assert_eq!(records.len(), 2, "{u:?}");
        assert!(records.iter().all(|e| e.shared), "{records:?}");
        assert_eq!(u.by_kind(Kind::Layer).0, 0, "the records hold the layer");

        let lock = store.lock_exclusive().expect("lock");
        let older = PruneOptions {
            used_before: Some(SystemTime::now() - Duration::from_secs(600)),
            ..PruneOptions::default()
        };
        let r = prune(&store, &lock, &older).expect("prune");
        assert_eq!(r.removed.len(), 1, "{r:?}");
        assert_eq!(r.blobs_removed, 0);
        assert!(
            store.exists(&blob) && dir.exists(),
            "another record holds them"
        );
        let marker = CacheIndex::new(store.layout()).layer_marker(diff_id.hex());
        assert!(marker.exists());

        let r = prune(&store, &lock, &PruneOptions::default()).expect("prune");
        assert_eq!(r.removed.len(), 1, "{r:?}");
        assert_eq!(r.blobs_removed, 1);
        assert!(!store.exists(&blob) && !dir.exists() && !marker.exists());
    }

    #[test]
    fn reachable_blobs_stay_even_with_all() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(tmp.path().join("store")).expect("store");
        let blob = store.write_blob(&[6u8; 5000], None).expect("blob");
        store.set_ref("example.com/app:1", &blob).expect("name");
        let diff_id = Digest::sha256(b"image layer");
        record(&store, "step", &blob, &diff_id, Duration::from_secs(3600));
        let stray = store.write_blob(&[7u8; 5000], None).expect("blob");

        let u = usage(&store).expect("usage");
        let rec = u
            .entries
            .iter()
            .find(|e| e.description == "cache record")
            .expect("record entry");
        assert_eq!(rec.reclaim, Reclaim::All, "its blob is reachable");
        assert!(rec.shared);

        let lock = store.lock_exclusive().expect("lock");
        let r = prune(&store, &lock, &PruneOptions::default()).expect("prune");
        assert_eq!(r.removed.len(), 1, "only the stray blob: {r:?}");
        assert_eq!(r.removed[0].id, stray.to_string());
        let all = PruneOptions {
            all: true,
            ..PruneOptions::default()
        };
        let r = prune(&store, &lock, &all).expect("prune");
        assert_eq!(r.removed.len(), 1, "the record: {r:?}");
        assert_eq!(r.blobs_removed, 0);
        assert!(store.exists(&blob));
        let swept = sweep(&store, &lock, &all).expect("sweep");
        assert_eq!((swept.removed.len(), swept.kept), (0, 1));
    }

    #[test]
    fn a_filtered_prune_sweeps_only_stale_ingests() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(tmp.path().join("store")).expect("store");
        let stray = store.write_blob(&[8u8; 100], None).expect("blob");
        // An ingest file of a process that cannot exist (pids are < 2^22).
        fs::write(store.layout().ingest().join("4294967295-0-0"), [1u8; 10]).expect("ingest");
        let lock = store.lock_exclusive().expect("lock");
        let filtered = PruneOptions {
            keep_storage: Some(u64::MAX),
            ..PruneOptions::default()
        };
        let swept = sweep(&store, &lock, &filtered).expect("sweep");
        assert_eq!((swept.removed.len(), swept.kept), (0, 1));
        assert_eq!((swept.stale_ingests, swept.freed), (1, 10));
        assert!(store.exists(&stray));
        let swept = sweep(&store, &lock, &PruneOptions::default()).expect("sweep");
        assert_eq!(swept.removed, vec![stray.clone()]);
        assert!(!store.exists(&stray));
    }
}
