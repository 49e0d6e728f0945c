//! The local cache index: a record per cache key of the layer a step
//! produced, and per step name the parts of its last key (see
//! [`super::keys`]), so a miss can say which input changed.
//!
//! Layout under `<store>/cache`: `keys/<key hex>` holds a [`CachedLayer`]
//! as JSON, `steps/<sha256 of the step name hex>` the [`CacheKeyParts`] of
//! a step's last build, and `used/<diff id hex>` is an empty file whose
//! modification time says when a build last used that unpacked layer.

use super::keys::CacheKeyParts;
use kiln_oci::{Digest, Layer, StoreLayout};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The layer a cached step produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedLayer {
    /// Uncompressed digest.
    pub diff_id: String,
    /// Blob digest.
    pub blob: String,
    /// Blob size.
    pub size: u64,
    /// Blob media type.
    pub media_type: String,
    /// When a build last recorded or hit this entry, in milliseconds since
    /// the Unix epoch. Absent in records written before kiln kept it: the
    /// file's modification time stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<u64>,
}

impl CachedLayer {
    /// The record of `layer`, last used at `last_used` (milliseconds since
    /// the Unix epoch, see [`unix_millis`]).
    pub fn of(layer: &Layer, last_used: u64) -> CachedLayer {
        CachedLayer {
            diff_id: layer.diff_id.to_string(),
            blob: layer.blob.to_string(),
            size: layer.size,
            media_type: layer.media_type.clone(),
            last_used: Some(last_used),
        }
    }

    /// The layer it records, unpacked (or to be unpacked) in `layout`'s
    /// directory for its diff id. `None` when a digest does not parse.
    pub fn layer(&self, layout: &StoreLayout) -> Option<Layer> {
        let diff_id: Digest = self.diff_id.parse().ok()?;
        let blob: Digest = self.blob.parse().ok()?;
        Some(Layer::in_store(
            layout,
            diff_id,
            blob,
            self.size,
            self.media_type.clone(),
        ))
    }
}

/// Milliseconds since the Unix epoch of `time` (0 before the epoch).
pub fn unix_millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// One entry of the cache index (a file under `keys/`), as
/// [`CacheIndex::records`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheIndexEntry {
    /// The cache key's hex (the file name).
    pub key: String,
    /// The record's file.
    pub path: PathBuf,
    /// What it records; `None` when the file does not parse.
    pub layer: Option<CachedLayer>,
    /// When a build last used it: its `last_used`, else the file's
    /// modification time.
    pub last_used: Option<SystemTime>,
}

/// The cache files under the store root.
#[derive(Debug, Clone)]
pub struct CacheIndex {
    dir: PathBuf,
}

impl CacheIndex {
    /// The cache kept in the store's cache directory
    /// ([`StoreLayout::cache`]).
    pub fn new(layout: &StoreLayout) -> CacheIndex {
        CacheIndex {
            dir: layout.cache(),
        }
    }

    fn key_path(&self, key: &Digest) -> PathBuf {
        self.dir.join("keys").join(key.hex())
    }

    fn step_path(&self, step: &str) -> PathBuf {
        self.dir
            .join("steps")
            .join(Digest::sha256(step.as_bytes()).hex())
    }

    /// The directory the cache files are in (`<store>/cache`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The layer recorded for `key`.
    pub fn get(&self, key: &Digest) -> Option<CachedLayer> {
        let bytes = std::fs::read(self.key_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Records that a build used `key`'s entry now (a cache hit).
    ///
    /// # Errors
    /// I/O errors writing the cache file.
    pub fn touch(&self, key: &Digest, layer: &CachedLayer) -> std::io::Result<()> {
        let mut layer = layer.clone();
        layer.last_used = Some(unix_millis(SystemTime::now()));
        write_atomic(
            &self.key_path(key),
            &serde_json::to_vec(&layer).unwrap_or_default(),
        )
    }

    /// Every record: its file, and its content when it parses. Unreadable
    /// files are listed with `None` so they can be removed.
    ///
    /// # Errors
    /// I/O errors listing the directory (none when it does not exist).
    pub fn records(&self) -> std::io::Result<Vec<CacheIndexEntry>> {
        let dir = self.dir.join("keys");
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                continue;
            }
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            let layer: Option<CachedLayer> = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let last_used = layer
                .as_ref()
                .and_then(|l| l.last_used)
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms))
                .or(modified);
            out.push(CacheIndexEntry {
                key: name,
                path,
                layer,
                last_used,
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Where the last use of the unpacked layer `diff_id` is recorded.
    pub fn layer_marker(&self, diff_id_hex: &str) -> PathBuf {
        self.dir.join("used").join(diff_id_hex)
    }

    /// Records that a build uses the unpacked layer `diff_id` now.
    /// Failures are ignored: the mark only orders what pruning removes.
    pub fn touch_layer(&self, diff_id: &Digest) {
        let path = self.layer_marker(diff_id.hex());
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(file) = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
        {
            let _ = file.set_modified(SystemTime::now());
        }
    }

    /// Records `layer` for `key`, and `parts` as the latest key of `step`.
    ///
    /// # Errors
    /// I/O errors writing the cache files.
    pub fn put(
        &self,
        key: &Digest,
        layer: &CachedLayer,
        step: &str,
        parts: &CacheKeyParts,
    ) -> std::io::Result<()> {
        write_atomic(
            &self.key_path(key),
            &serde_json::to_vec(layer).unwrap_or_default(),
        )?;
        self.remember(step, parts)
    }

    /// Records `parts` as the latest key of `step`.
    ///
    /// # Errors
    /// I/O errors writing the cache files.
    pub fn remember(&self, step: &str, parts: &CacheKeyParts) -> std::io::Result<()> {
        write_atomic(
            &self.step_path(step),
            &serde_json::to_vec(parts).unwrap_or_default(),
        )
    }

    /// The key parts of the last build of `step`.
    pub fn last(&self, step: &str) -> Option<CacheKeyParts> {
        let bytes = std::fs::read(self.step_path(step)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Numbers the temporaries of one process, so threads writing the same
/// record at once never share one.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `path` whole or not at all: a temporary of this process and
/// call beside it, renamed over it. Writers racing on one record (other
/// processes, other threads) each rename a complete file; the last wins,
/// and every record they write is equally valid.
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp-{}-{n}", kiln_oci::process_tag()));
    let result = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_writing_one_record_at_once_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let index = CacheIndex {
            dir: dir.path().join("cache"),
        };
        let key = Digest::sha256(b"one key");
        let parts = CacheKeyParts {
            vertex: "v".into(),
            inputs: vec![],
            context: None,
        };
        let (threads, writes) = (8, 200);
        let failures: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (index, key, parts) = (&index, &key, &parts);
                    scope.spawn(move || {
                        let layer = CachedLayer {
                            diff_id: format!("sha256:{t}"),
                            blob: "sha256:b".into(),
                            size: 1,
                            media_type: "m".into(),
                            last_used: Some(0),
                        };
                        (0..writes)
                            .filter(|_| index.put(key, &layer, "step", parts).is_err())
                            .count()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        eprintln!(
            "{} writes of one record, {failures} failures",
            threads * writes
        );
        assert_eq!(failures, 0);
        assert!(index.get(&key).is_some());
        let left: Vec<_> = std::fs::read_dir(dir.path().join("cache/keys"))
            .expect("keys")
            .map(|e| e.expect("entry").file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "temporaries left: {left:?}");
    }

    #[test]
    fn records_are_kept_touched_and_listed() {
        let a = CacheKeyParts {
            vertex: "v".into(),
            inputs: vec!["i".into()],
            context: Some("c1".into()),
        };
        let dir = tempfile::tempdir().expect("dir");
        let index = CacheIndex::new(&StoreLayout::new(dir.path()));
        let layer = CachedLayer {
            diff_id: "sha256:00".into(),
            blob: "sha256:11".into(),
            size: 3,
            media_type: "x".into(),
            last_used: None,
        };
        index.put(&a.key(), &layer, "step", &a).expect("put");
        assert_eq!(index.get(&a.key()), Some(layer.clone()));
        assert_eq!(index.last("step"), Some(a.clone()));
        // Old records (no last_used) still parse; their time is the mtime.
        let records = index.records().expect("records");
        assert_eq!(records.len(), 1);
        assert!(records[0].last_used.is_some());
        let before = unix_millis(SystemTime::now());
        index.touch(&a.key(), &layer).expect("touch");
        let used = index.get(&a.key()).and_then(|l| l.last_used);
        assert!(used.is_some_and(|t| t >= before), "{used:?}");
        let text = std::fs::read_to_string(&records[0].path).expect("read");
        assert!(text.contains("last_used"), "{text}");
    }

    #[test]
    fn a_record_gives_back_the_layer_it_was_made_of() {
        let layout = StoreLayout::new("/s");
        let digest =
            |c: &str| -> Digest { format!("sha256:{}", c.repeat(64)).parse().expect("digest") };
        let layer = Layer::in_store(&layout, digest("1"), digest("2"), 9, "m");
        let cached = CachedLayer::of(&layer, 42);
        assert_eq!(
            cached,
            CachedLayer {
                diff_id: digest("1").to_string(),
                blob: digest("2").to_string(),
                size: 9,
                media_type: "m".into(),
                last_used: Some(42),
            }
        );
        assert_eq!(cached.layer(&layout), Some(layer));
    }

    /// A record with a broken digest stays listable (and prunable) but
    /// names no layer.
    #[test]
    fn a_record_with_a_broken_digest_names_no_layer() {
        let layout = StoreLayout::new("/s");
        let good = format!("sha256:{}", "1".repeat(64));
        for (diff_id, blob) in [("sha256:00", good.as_str()), (good.as_str(), "x")] {
            let cached = CachedLayer {
                diff_id: diff_id.into(),
                blob: blob.into(),
                size: 1,
                media_type: "m".into(),
                last_used: None,
            };
            assert_eq!(cached.layer(&layout), None, "{cached:?}");
        }
    }
}
