//! The cache as one build uses it: the local index, the `--cache-from`
//! caches behind it, whether a step may use them, and the record of every
//! step the build made or reused (for `--cache-to`).

use super::index::{unix_millis, CacheIndex, CachedLayer};
use super::keys::CacheKeyParts;
use super::lazy::{LazyError, LazyLayers};
use super::remote::CacheSource;
use crate::graph::VertexMeta;
use crate::layer;
use kiln_oci::{Digest, Layer, LocalStore};
use std::sync::{Arc, Mutex};

/// The caches one build reads and writes.
pub(crate) struct BuildCache {
    index: CacheIndex,
    /// `--no-cache`.
    no_cache: bool,
    /// `--no-cache-filter` stages, lower-case.
    no_cache_stages: Vec<String>,
    /// `--cache-from` caches, in order.
    imports: Vec<Arc<dyn CacheSource>>,
    /// Imported layers nothing has read yet.
    lazy: Arc<LazyLayers>,
    /// Every step's key and layer, in the order they finished.
    used: Mutex<Vec<(Digest, CachedLayer)>>,
}

impl BuildCache {
    /// The cache of the store at `store`, with the `--no-cache` flags and
    /// the `--cache-from` caches of a build.
    pub(crate) fn new(
        store: &LocalStore,
        no_cache: bool,
        no_cache_stages: &[String],
        imports: Vec<Arc<dyn CacheSource>>,
    ) -> BuildCache {
        BuildCache {
            index: CacheIndex::new(store.layout()),
            no_cache,
            no_cache_stages: no_cache_stages
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            imports,
            lazy: Arc::default(),
            used: Mutex::new(Vec::new()),
        }
    }

    /// True when the step must not use the cache (`--no-cache`, or its
    /// stage is in `--no-cache-filter`).
    pub(crate) fn disabled(&self, meta: &VertexMeta) -> bool {
        self.no_cache
            || meta
                .stage
                .as_ref()
                .is_some_and(|s| self.no_cache_stages.contains(&s.to_ascii_lowercase()))
    }

    /// The layer recorded for `key`, locally or in the first `--cache-from`
    /// cache that has it, marked as used by this build. An imported blob is
    /// fetched only when something reads the layer (see [`LazyLayers`]);
    /// one already in the store is used at once.
    pub(crate) fn hit(&self, store: &LocalStore, key: &Digest) -> Option<Layer> {
        let local = self
            .index
            .get(key)
            .and_then(|hit| layer::restore(store, &hit).map(|record| (hit, record)));
        let (hit, record) = local.or_else(|| self.imported(store, key))?;
        // Orders what pruning removes first, and keeps an imported record
        // for the next build; never fails this one.
        let _ = self.index.touch(key, &hit);
        self.remember(key, &hit);
        Some(record)
    }

    fn imported(&self, store: &LocalStore, key: &Digest) -> Option<(CachedLayer, Layer)> {
        for source in &self.imports {
            let Some(layer) = source.lookup(key) else {
                continue;
            };
            if let Some(record) = layer::restore(store, &layer) {
                return Some((layer, record));
            }
            if let Some(record) = layer.layer(store.layout()) {
                self.lazy.add(source.clone(), layer.clone());
                return Some((layer, record));
            }
        }
        None
    }

    /// Why the step `meta` with key `parts` runs.
    pub(crate) fn miss_reason(&self, meta: &VertexMeta, parts: &CacheKeyParts) -> String {
        if self.disabled(meta) {
            "--no-cache".to_string()
        } else {
            parts.miss_reason(self.index.last(&meta.name).as_ref())
        }
    }

    /// Records the new layer `record` of step `name` under `key`.
    ///
    /// # Errors
    /// I/O errors writing the cache files.
    pub(crate) fn record(
        &self,
        name: &str,
        key: &Digest,
        parts: &CacheKeyParts,
        record: &Layer,
    ) -> std::io::Result<()> {
        let cached = CachedLayer::of(record, unix_millis(std::time::SystemTime::now()));
        self.remember(key, &cached);
        self.index.put(key, &cached, name, parts)
    }

    /// Adds a step's key and layer to what the build used.
    fn remember(&self, key: &Digest, layer: &CachedLayer) {
        self.used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key.clone(), layer.clone()));
    }

    /// Fetches and unpacks the layers of `layers` that are still in a
    /// `--cache-from` cache: something is about to read them.
    ///
    /// # Errors
    /// The cache failing to deliver, or the blob failing to unpack.
    pub(crate) fn materialize(
        &self,
        store: &LocalStore,
        layers: &[Layer],
    ) -> Result<(), LazyError> {
        self.lazy.materialize(store, layers)
    }

    /// The imported layers of this build, for fetching after the solve.
    pub(crate) fn lazy(&self) -> Arc<LazyLayers> {
        self.lazy.clone()
    }

    /// Every step's key and layer so far, in the order they finished.
    pub(crate) fn take_used(&self) -> Vec<(Digest, CachedLayer)> {
        std::mem::take(&mut *self.used.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
