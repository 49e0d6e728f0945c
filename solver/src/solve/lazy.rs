//! Layers a `--cache-from` cache provided but nothing has needed yet.
//!
//! A step that hits an imported record yields its layer at once, without
//! fetching it: when a later step hits too (a `COPY --from` of a builder
//! stage, say), the builder's layers are never downloaded. A layer is
//! fetched and unpacked the first time something reads it: a step that
//! runs on top of it or copies from it, the image the build exports, or a
//! `--cache-to` that exports its blob.

use super::layer::{self, LayerRecord};
use super::CachedLayer;
use crate::remote_cache::CacheSource;
use kiln_oci::{BlobReader, LocalStore};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
        layers: &[LayerRecord],
    ) -> Result<(), String> {
        for l in layers {
            let Some(p) = self.get(l.diff_id.as_str()) else {
                continue;
            };
            fetch(store, &p)?;
            if !l.dir.exists() {
                let name = p.source.name();
                match layer::try_restore(store, &p.layer) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(format!(
                            "layer {} from cache {name} could not be unpacked",
                            l.diff_id
                        ))
                    }
                    Err(e) => return Err(format!("layer {} from cache {name}: {e}", l.diff_id)),
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
    pub(crate) fn fetch_blob(&self, store: &LocalStore, blob: &str) -> Result<(), String> {
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
fn fetch(store: &LocalStore, p: &Pending) -> Result<(), String> {
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
        p.source
            .fetch(&p.layer, store)
            .map_err(|e| format!("fetching a cached layer: {e}"))?;
    }
    *fetched = true;
    Ok(())
}
