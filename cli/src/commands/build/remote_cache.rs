//! `kiln build --cache-from` / `--cache-to`: opening the caches to read
//! and writing the build's cache (a registry, an OCI layout directory or
//! the image config). The flags' syntax is
//! [`kiln_solver::cache_options`]'s.

use crate::progress::Reporter;
use anyhow::{bail, Context, Result};
use kiln_oci::{LocalStore, RegistryClient};
use kiln_solver::cache_mounts::{self, ExportedMount, Packed, Restored};
use kiln_solver::cache_options::{CacheLocation, CacheTo};
use kiln_solver::remote_cache::{
    export_to_layout, export_to_registry, CacheMode, CacheSource, LayoutCache, RegistryCache,
};
use kiln_solver::{ProgressSink, Solved};
use std::sync::Arc;

/// Opens the `--cache-from` caches. One that cannot be read is reported
/// and skipped, as buildx does: the build goes on without it.
pub fn open_imports(
    locations: &[CacheLocation],
    client: &RegistryClient,
    runtime: &tokio::runtime::Runtime,
    reporter: &Arc<Reporter>,
) -> Vec<Arc<dyn CacheSource>> {
    let mut out: Vec<Arc<dyn CacheSource>> = Vec::new();
    for location in locations {
        let name = format!("[internal] importing cache from {location}");
        let transfer = reporter.transfer(&name);
        let opened: Result<Arc<dyn CacheSource>, String> = match location {
            CacheLocation::Registry(r) => runtime
                .block_on(RegistryCache::open(client.clone(), r.clone()))
                .map(|c| Arc::new(c) as Arc<dyn CacheSource>)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
            CacheLocation::Local(dir, tag) => LayoutCache::open(dir, tag)
                .map(|c| Arc::new(c) as Arc<dyn CacheSource>)
                .map_err(|e| format!("{:#}", anyhow::Error::from(e))),
            CacheLocation::Inline => continue,
        };
        match opened {
            Ok(cache) => {
                transfer.done();
                out.push(cache);
            }
            Err(e) => {
                reporter.event(kiln_solver::Event::Note {
                    name: name.clone(),
                    message: format!("not used: {e}"),
                });
                transfer.done();
            }
        }
    }
    out
}

/// Writes the build's cache to every `--cache-to`.
///
/// # Errors
/// The first export that fails, naming where it was going.
pub fn export(
    targets: &[CacheTo],
    solved: &[Solved],
    store: &LocalStore,
    client: &RegistryClient,
    runtime: &tokio::runtime::Runtime,
    reporter: &Arc<Reporter>,
) -> Result<()> {
    for target in targets {
        if target.location == CacheLocation::Inline {
            // Already in the image config (see `inline_config`).
            continue;
        }
        let name = format!("[internal] exporting cache to {}", target.location);
        let transfer = reporter.transfer(&name);
        // Every platform's steps; layers a --cache-from cache gave that
        // nothing fetched are fetched now.
        let mut records = Vec::new();
        for one in solved {
            let these = one.cache_records(target.mode);
            if let Err(e) = one.fetch_blobs(store, &these) {
                transfer.failed(&e);
                bail!("exporting the build cache to {}: {e}", target.location);
            }
            records.extend(these);
        }
        if let Err(e) = compress_records(store, &mut records) {
            transfer.failed(&e);
            bail!("exporting the build cache to {}: {e}", target.location);
        }
        let mounts = pack_mounts(target, solved, store, reporter, &name);
        let result = match &target.location {
            CacheLocation::Registry(r) => runtime
                .block_on(export_to_registry(
                    store,
                    client,
                    &records,
                    &mounts,
                    r,
                    transfer.clone(),
                ))
                .map(|report| {
                    if target.mounts.enabled {
                        reporter.event(kiln_solver::Event::Note {
                            name: name.clone(),
                            message: format!(
                                "uploaded {} blobs ({} bytes), {} already in the registry",
                                report.uploaded,
                                report.bytes,
                                report.existing + report.mounted
                            ),
                        });
                    }
                }),
            CacheLocation::Local(dir, tag) => {
                export_to_layout(store, &records, &mounts, dir, tag).map(|_| ())
            }
            CacheLocation::Inline => Ok(()),
        };
        match result {
            Ok(()) => transfer.done(),
            Err(e) => {
                transfer.failed(&e);
                return Err(e)
                    .with_context(|| format!("exporting the build cache to {}", target.location));
            }
        }
    }
    Ok(())
}

/// Points the records of layers the store keeps uncompressed (every
/// layer a step made here) at their gzip blobs, made by the exporter's
/// remembered conversion (usually already done in the background while
/// the build ran), so a cache holds the same blobs as a pushed image.
fn compress_records(
    store: &LocalStore,
    records: &mut [kiln_solver::remote_cache::ExportedRecord],
) -> Result<()> {
    let options = kiln_exporter::ImageOptions::default();
    for r in records.iter_mut() {
        if kiln_oci::LayerCompression::of_media_type(&r.media_type)
            != Some(kiln_oci::LayerCompression::None)
        {
            continue;
        }
        let blob: kiln_oci::Digest = r.blob.parse()?;
        let layer = kiln_oci::Layer::in_store(
            store.layout(),
            r.diff_id.parse()?,
            blob,
            r.size,
            r.media_type.clone(),
        );
        let gzip = kiln_exporter::compress_layer(store, &layer, &options)?;
        r.blob = gzip.0.to_string();
        r.size = gzip.1;
        r.media_type = kiln_oci::media::OCI_LAYER_GZIP.to_string();
    }
    Ok(())
}

/// With `--cache-to type=inline`, the records of the image's own steps
/// go into its config, under `kiln.cache.v1`.
pub fn inline_config(targets: &[CacheTo], solved: &Solved, config: &mut kiln_oci::ImageConfig) {
    if !targets.iter().any(|t| t.location == CacheLocation::Inline) {
        return;
    }
    config.extra.insert(
        kiln_solver::remote_cache::FORMAT.to_string(),
        kiln_solver::remote_cache::inline_value(&solved.cache_records(CacheMode::Min)),
    );
}

/// With `cache-mounts=true`, packs the cache mounts the build used (all
/// platforms), less `cache-mounts-exclude=` ids; a mount that is missing,
/// empty, over `cache-mounts-max-size=` or unreadable is left out with a
/// note.
fn pack_mounts(
    target: &CacheTo,
    solved: &[Solved],
    store: &LocalStore,
    reporter: &Arc<Reporter>,
    name: &str,
) -> Vec<ExportedMount> {
    if !target.mounts.enabled {
        return Vec::new();
    }
    let ids: std::collections::BTreeSet<&String> =
        solved.iter().flat_map(|s| &s.cache_mounts).collect();
    let mut out = Vec::new();
    for id in ids {
        if target
            .mounts
            .exclude
            .iter()
            .any(|x| x == cache_mounts::mount_id(id))
        {
            reporter.event(kiln_solver::Event::Note {
                name: name.to_string(),
                message: format!("cache mount {id:?} not exported: cache-mounts-exclude"),
            });
            continue;
        }
        // A mount is a best effort: one that cannot be read (another
        // build writing into it, say) is noted, not fatal.
        let why = match cache_mounts::pack(store, id, target.mounts.max_size) {
            Ok(Packed::Mount(m)) => {
                out.push(m);
                continue;
            }
            Ok(Packed::Skipped(why)) => why,
            Err(e) => e.to_string(),
        };
        reporter.event(kiln_solver::Event::Note {
            name: name.to_string(),
            message: format!("cache mount {id:?} not exported: {why}"),
        });
    }
    out
}

/// [`restore_mounts`] for the cache mounts the vertices `roots` of
/// `graph` need (none when no cache carries mounts).
pub fn restore_for(
    caches: &[Arc<dyn CacheSource>],
    graph: &kiln_solver::Graph,
    roots: &[kiln_solver::VertexId],
    store: &LocalStore,
    reporter: &Arc<Reporter>,
) {
    if caches.iter().all(|c| c.mounts().is_empty()) {
        return;
    }
    let ids = cache_mounts::ids_in(graph, &graph.closure(roots));
    restore_mounts(caches, &ids, store, reporter);
}

/// Restores, before the solve, the cache mounts `ids` that the
/// `--cache-from` caches carry and that are missing or empty here (the
/// first cache that has an id wins). A mount that cannot be restored is
/// noted and the build goes on without it.
pub fn restore_mounts(
    caches: &[Arc<dyn CacheSource>],
    ids: &std::collections::BTreeSet<String>,
    store: &LocalStore,
    reporter: &Arc<Reporter>,
) {
    let mut done = std::collections::BTreeSet::new();
    if ids.is_empty() {
        return;
    }
    for cache in caches {
        for mount in cache.mounts() {
            if !ids.contains(&mount.id) || done.contains(&mount.id) {
                continue;
            }
            let name = format!(
                "[internal] restoring cache mount {:?} from {}",
                mount.id,
                cache.name()
            );
            let transfer = reporter.transfer(&name);
            let fetch = |layer: &kiln_solver::CachedLayer| cache.fetch(layer, store);
            match cache_mounts::restore(store, &mount, &fetch) {
                Ok(Restored::Done(_)) => {
                    done.insert(mount.id.clone());
                }
                Ok(Restored::Skipped(why)) => {
                    done.insert(mount.id.clone());
                    reporter.event(kiln_solver::Event::Note {
                        name: name.clone(),
                        message: format!("not restored: {why}"),
                    });
                }
                Err(e) => reporter.event(kiln_solver::Event::Note {
                    name: name.clone(),
                    message: format!("not restored: {e}"),
                }),
            }
            transfer.done();
        }
    }
}
