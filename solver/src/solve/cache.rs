//! The build cache: a record per cache key of the layer a step produced,
//! and per step name the parts of its last key, so a miss can say which
//! input changed.
//!
//! A cache key is sha256 of [`CACHE_KEY_VERSION`], the vertex digest (the
//! op and its inputs' ops), the inputs' cache keys, and the content
//! checksum of the context files the step reads. Names, lines and progress
//! groups are not part of it.

use kiln_oci::Digest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bumped whenever what a key covers changes.
pub const CACHE_KEY_VERSION: &str = "kiln.cache.v1";

/// The parts a cache key is made of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheKeyParts {
    /// The vertex digest.
    pub vertex: String,
    /// The inputs' cache keys.
    pub inputs: Vec<String>,
    /// The checksum of the context files read, if any.
    pub context: Option<String>,
}

impl CacheKeyParts {
    /// The key.
    pub fn key(&self) -> Digest {
        let text = serde_json::json!([CACHE_KEY_VERSION, self]).to_string();
        Digest::sha256(text.as_bytes())
    }

    /// Why `self` differs from the `previous` key of the same step.
    pub fn miss_reason(&self, previous: Option<&CacheKeyParts>) -> String {
        let Some(p) = previous else {
            return "no earlier build of this step".into();
        };
        if p.vertex != self.vertex {
            return "the instruction or its inputs changed".into();
        }
        if p.context != self.context {
            return "context files it copies changed".into();
        }
        if p.inputs != self.inputs {
            return "an earlier step or the base image changed".into();
        }
        "the cached result was removed".into()
    }
}

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
}

/// The cache files under the store root.
#[derive(Debug, Clone)]
pub struct CacheIndex {
    dir: PathBuf,
}

impl CacheIndex {
    /// The cache kept under `store_root/cache`.
    pub fn new(store_root: &Path) -> CacheIndex {
        CacheIndex {
            dir: store_root.join("cache"),
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

    /// The layer recorded for `key`.
    pub fn get(&self, key: &Digest) -> Option<CachedLayer> {
        let bytes = std::fs::read(self.key_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
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

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_reasons() {
        let a = CacheKeyParts {
            vertex: "v".into(),
            inputs: vec!["i".into()],
            context: Some("c1".into()),
        };
        let mut b = a.clone();
        assert_eq!(a.key(), b.key());
        b.context = Some("c2".into());
        assert_ne!(a.key(), b.key());
        assert!(b.miss_reason(Some(&a)).contains("context"));
        assert!(a.miss_reason(None).contains("no earlier"));
        let dir = tempfile::tempdir().expect("dir");
        let index = CacheIndex::new(dir.path());
        let layer = CachedLayer {
            diff_id: "sha256:00".into(),
            blob: "sha256:11".into(),
            size: 3,
            media_type: "x".into(),
        };
        index.put(&a.key(), &layer, "step", &a).expect("put");
        assert_eq!(index.get(&a.key()), Some(layer));
        assert_eq!(index.last("step"), Some(a));
    }
}
