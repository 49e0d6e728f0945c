//! Layers a `--cache-from` cache provided but nothing has needed yet.
//!
//! A step that hits an imported record yields its layer at once, without
//! fetching it: when a later step hits too (a `COPY --from` of a builder
//! stage, say), the builder's layers are never downloaded. A layer is
//! fetched and unpacked the first time something reads it: a step that
//! runs on top of it or copies from it, the image the build exports, or a
//! `--cache-to` that exports its blob.

use super::index::CachedLayer;
use super::remote::{CacheSource, FetchError};
use crate::layer::{self, LayerError};
use kiln_oci::{BlobReader, LocalStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Why a layer from a `--cache-from` cache could not be had.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LazyError {
    /// The cache did not deliver the blob.
    #[error("fetching a cached layer: {0}")]
    Fetch(FetchError),
    /// The blob arrived but is not there to unpack.
    #[error("layer {diff_id} from cache {cache} could not be unpacked")]
    Missing {
        /// The layer.
        diff_id: String,
        /// The cache's name.
        cache: String,
    },
    /// The blob did not unpack (damaged, or not the layer it claims).
    #[error("layer {diff_id} from cache {cache}: {error}")]
    Unpack {
        /// The layer.
        diff_id: String,
        /// The cache's name.
        cache: String,
        /// What went wrong.
        error: Box<LayerError>,
    },
}

/// One layer waiting in a cache.
struct Pending {
    source: Arc<dyn CacheSource>,
    layer: CachedLayer,
    /// Held while fetching, so each blob is fetched once.
    fetched: Mutex<bool>,
}

/// The layers of a build that are still in their caches, by diff id.
#[derive(Default)]
pub struct LazyLayers {
    pending: Mutex<HashMap<String, Arc<Pending>>>,
}

impl std::fmt::Debug for LazyLayers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.pending.lock().map(|p| p.len()).unwrap_or(0);
        write!(f, "LazyLayers({n})")
    }
}

impl LazyLayers {
    /// Remembers that `layer` is to be had from `source`.
    pub(crate) fn add(&self, source: Arc<dyn CacheSource>, layer: CachedLayer) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.entry(layer.diff_id.clone()).or_insert_with(|| {
            Arc::new(Pending {
                source,
                layer,
                fetched: Mutex::new(false),
            })
        });
    }

    fn get(&self, diff_id: &str) -> Option<Arc<Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(diff_id)
            .cloned()
    }

    /// Fetches the blob of every layer of `layers` that is still in a
    /// cache, and unpacks it.
    ///
    /// # Errors
    /// The cache failing to deliver, or the blob failing to unpack.
    pub(crate) fn materialize(
        &self,
        store: &LocalStore,
        layers: &[kiln_oci::Layer],
    ) -> Result<(), LazyError> {
        for l in layers {
            let Some(p) = self.get(l.diff_id.as_str()) else {
                continue;
            };
            fetch(store, &p)?;
            if !l.dir.exists() {
                let (diff_id, cache) = (l.diff_id.to_string(), p.source.name());
                match layer::try_restore(store, &p.layer) {
                    Ok(Some(_)) => {}
                    Ok(None) => return Err(LazyError::Missing { diff_id, cache }),
                    Err(error) => {
                        return Err(LazyError::Unpack {
                            diff_id,
                            cache,
                            error: Box::new(error),
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Fetches the blob `blob` into the store if it is one of these layers
    /// and is not there yet.
    ///
    /// # Errors
    /// The cache failing to deliver.
    pub(crate) fn fetch_blob(&self, store: &LocalStore, blob: &str) -> Result<(), LazyError> {
        let found = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .find(|p| p.layer.blob == blob)
            .cloned();
        match found {
            Some(p) => fetch(store, &p),
            None => Ok(()),
        }
    }
}

/// Brings one pending layer's blob into the store, once.
fn fetch(store: &LocalStore, p: &Pending) -> Result<(), LazyError> {
    let mut fetched = p.fetched.lock().unwrap_or_else(|e| e.into_inner());
    if *fetched {
        return Ok(());
    }
    let have = p
        .layer
        .blob
        .parse()
        .is_ok_and(|d: kiln_oci::Digest| store.exists(&d));
    if !have {
        p.source.fetch(&p.layer, store).map_err(LazyError::Fetch)?;
    }
    *fetched = true;
    Ok(())
}
