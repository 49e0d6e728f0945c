//! Layers on disk: base image layers unpacked once per diff id, and new
//! layers built from file actions, each kept as a directory (for the next
//! steps) and as an uncompressed tar blob (its digest is its diff id).
//! Outputs that leave the store compress that blob when they need to
//! (`kiln_exporter`'s layer conversion, remembered per layer), as
//! Docker's image store keeps diffs uncompressed until a push.
//!
//! Layer directories live in the store's directory for their diff id
//! ([`kiln_oci::StoreLayout::layer_dir`]). A new
//! layer is written to a temporary directory and renamed to its diff id
//! only when complete, so a crash never leaves a partial layer under a
//! final name.

use crate::cache::{CacheIndex, CachedLayer};
use crate::op::{FileAction, ImageSource};
use kiln_executor::{durable, LayerStack, Source};
use kiln_oci::{BlobIngester, Digest, Layer, LocalStore, Platform};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a layer could not be read, unpacked or made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// The image's manifest or config is not usable (`reference` names
    /// it, `message` says what is wrong).
    #[error("{reference}: {message}")]
    Image {
        /// The image (or the manifest digest).
        reference: String,
        /// What is wrong.
        message: String,
    },
    /// The platform of an image source does not parse.
    #[error("{0}")]
    Platform(kiln_oci::PlatformError),
    /// A layer descriptor is not usable.
    #[error("{0}")]
    Descriptor(kiln_oci::ImageError),
    /// A directory could not be created.
    #[error("creating {}: {error}", path.display())]
    Create {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
    /// A blob did not unpack into the layer it claims to be.
    #[error("unpacking layer {blob}: {error}")]
    Unpack {
        /// The blob.
        blob: Digest,
        /// What went wrong.
        error: kiln_executor::UnpackError,
    },
    /// File actions (COPY, ADD, WORKDIR) failed.
    #[error("{0}")]
    Files(kiln_executor::FileOpError),
    /// The store refused the blob.
    #[error("{0}")]
    Store(kiln_oci::StoreError),
    /// Writing the layer's tar failed.
    #[error("writing the layer: {0}")]
    Write(kiln_executor::DiffError),
    /// The finished layer directory could not be put in place.
    #[error("storing layer {}: {error}", path.display())]
    Commit {
        /// Its final directory.
        path: PathBuf,
        /// What went wrong.
        error: std::io::Error,
    },
}

/// The filesystem these layers make, bottom first.
pub(crate) fn stack_of(layers: &[Layer]) -> LayerStack {
    LayerStack::new(layers.iter().map(|l| l.dir.clone()).collect())
}

/// Records that a build uses the unpacked layer (for `kiln prune`'s
/// least-recently-used order).
fn mark_used(store: &LocalStore, diff_id: &Digest) {
    CacheIndex::new(store.layout()).touch_layer(diff_id);
}

/// The layers of an image in the store, unpacked (once) into directories,
/// and whether any had to be unpacked now.
pub(crate) fn image_layers(
    store: &LocalStore,
    image: &ImageSource,
) -> Result<(Vec<Layer>, bool), LayerError> {
    let bad = |reference: &str, message: String| LayerError::Image {
        reference: reference.to_string(),
        message,
    };
    let manifest: Digest = image
        .manifest
        .parse()
        .map_err(|e| bad(&image.manifest, format!("{e}")))?;
    let platform: Platform = image.platform.parse().map_err(LayerError::Platform)?;
    let resolved = kiln_oci::resolve(store, &manifest, &platform)
        .map_err(|e| bad(&image.reference, e.to_string()))?;
    let diff_ids = resolved.config.rootfs().diff_ids().clone();
    if diff_ids.len() != resolved.manifest.layers().len() {
        return Err(bad(
            &image.reference,
            format!(
                "the manifest has {} layers but the config lists {} diff_ids",
                resolved.manifest.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut out = Vec::new();
    let mut unpacked = false;
    for (i, layer) in resolved.manifest.layers().iter().enumerate() {
        let blob = kiln_oci::descriptor_digest(layer, manifest.as_str())
            .map_err(LayerError::Descriptor)?;
        let diff_id: Digest = diff_ids
            .get(i)
            .ok_or_else(|| {
                bad(
                    &image.reference,
                    "config lists fewer diff_ids than layers".into(),
                )
            })?
            .parse()
            .map_err(|e| bad(&image.reference, format!("{e}")))?;
        let layer = Layer::in_store(
            store.layout(),
            diff_id,
            blob,
            layer.size(),
            layer.media_type().to_string(),
        )
        .of_base_image();
        unpacked |= !layer.dir.exists();
        unpack_missing(store, &layer)?;
        mark_used(store, &layer.diff_id);
        out.push(layer);
    }
    Ok((out, unpacked))
}

/// Unpacks the store's blob of `layer` into its directory unless that is
/// there, verifying that its uncompressed content is its diff id: a forged
/// diff id fails and leaves no directory behind.
pub(crate) fn unpack_missing(store: &LocalStore, layer: &Layer) -> Result<(), LayerError> {
    if layer.dir.exists() {
        // A read-only store cannot be repaired: its writer settled it.
        if durable::is_intact(&layer.dir) || store.is_read_only() {
            return Ok(());
        }
        // Written before a crash, maybe cut short: its blob says what it
        // holds.
        discard(store, &layer.dir);
    }
    let root = store.layout().layers();
    std::fs::create_dir_all(&root).map_err(|error| LayerError::Create {
        path: root.clone(),
        error,
    })?;
    let tmp = temporary(&root, "tmp");
    kiln_executor::unpack_blob(
        &store.blob_path(&layer.blob),
        &layer.media_type,
        &layer.diff_id,
        &tmp,
    )
    .map_err(|error| LayerError::Unpack {
        blob: layer.blob.clone(),
        error,
    })?;
    let _ = durable::mark_written(&tmp);
    kiln_executor::commit_dir(&tmp, &layer.dir).map_err(|error| {
        let _ = std::fs::remove_dir_all(&tmp);
        LayerError::Commit {
            path: layer.dir.clone(),
            error,
        }
    })
}

/// Moves layer directory `dir` out of the way (to a temporary name) and
/// removes it. Another process may have done so first.
fn discard(store: &LocalStore, dir: &Path) {
    let aside = temporary(&store.layout().layers(), "tmp");
    if std::fs::rename(dir, &aside).is_ok() {
        let _ = std::fs::remove_dir_all(&aside);
    }
}

/// How long after it was written a layer directory is left to the
/// kernel's own writeback before [`settle_in_background`] syncs it.
const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// Starts a thread that makes the layer directories this boot wrote more
/// than [`SETTLE_AFTER`] ago durable (one `syncfs`, then marked synced,
/// see [`kiln_executor::durable`]), so that a crash later does not cost
/// unpacking them again. The process may end before it is done: a
/// directory is only marked once the sync returned.
pub(crate) fn settle_in_background(store: &LocalStore) {
    let root = store.layout().layers();
    let _ = std::thread::Builder::new()
        .name("kiln-settle".into())
        .spawn(move || {
            let Ok(entries) = std::fs::read_dir(&root) else {
                return;
            };
            let now = std::time::SystemTime::now();
            let mut due = Vec::new();
            for entry in entries.flatten() {
                let is_layer = entry.file_name().to_str().is_some_and(crate::gc::is_hex64);
                let old = entry.metadata().is_ok_and(|m| {
                    let changed = std::time::UNIX_EPOCH
                        + std::time::Duration::from_secs(u64::try_from(m.ctime()).unwrap_or(0));
                    now.duration_since(changed)
                        .is_ok_and(|age| age > SETTLE_AFTER)
                });
                let path = entry.path();
                if is_layer && old && durable::written_this_boot(&path) {
                    due.push(path);
                }
            }
            let dirs: Vec<&Path> = due.iter().map(PathBuf::as_path).collect();
            let _ = durable::settle(&dirs);
        });
}

/// A cached layer made usable again: its blob in the store, and, for a
/// compressed blob, its directory (unpacked now, verified against the
/// record's diff id); a plain tar blob's directory waits until something
/// reads it. `None` when the blob is not there, or is not the layer the
/// record claims (a cache miss).
pub(crate) fn restore(store: &LocalStore, cached: &CachedLayer) -> Option<Layer> {
    try_restore(store, cached).ok().flatten()
}

/// [`restore`], saying why a blob that is there did not unpack (a forged
/// diff id, a damaged blob). `Ok(None)` when the record does not parse or
/// its blob is not in the store.
pub(crate) fn try_restore(
    store: &LocalStore,
    cached: &CachedLayer,
) -> Result<Option<Layer>, LayerError> {
    use kiln_oci::BlobReader;
    let Some(layer) = cached.layer(store.layout()) else {
        return Ok(None);
    };
    if !store.exists(&layer.blob) {
        return Ok(None);
    }
    // A plain tar blob is its diff id (the store checked it when it was
    // written): its directory waits until something reads it
    // (`StepEnv::materialize_inputs`). Any other is unpacked now, which
    // verifies its diff id.
    if !is_plain(&layer) {
        unpack_missing(store, &layer)?;
    }
    mark_used(store, &layer.diff_id);
    Ok(Some(layer))
}

/// Whether `layer`'s blob is its uncompressed tar (blob digest = diff id).
fn is_plain(layer: &Layer) -> bool {
    layer.blob == layer.diff_id && layer.media_type == kiln_oci::media::OCI_LAYER_TAR
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new name in `layers` for this process's temporary directory of
/// kind `kind` (`tmp`, `work`): the store's garbage collection knows
/// such names by their process tag.
fn temporary(layers: &Path, kind: &str) -> PathBuf {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    layers.join(format!("{kind}-{}-{n}", kiln_oci::process_tag()))
}

/// Whether a new layer must be kept as a directory too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerDir {
    /// Something reads it as files: it is written as a directory, then
    /// packed into its tar.
    Kept,
    /// Nothing in this build reads it: what can go straight from its
    /// sources into the tar does (see
    /// [`kiln_executor::apply_file_actions_grafting`]), and the directory
    /// is then left out; it is unpacked from the blob when a later build
    /// reads it.
    Optional,
}

/// Applies `actions` on top of `base` into a new layer: uncompressed tar
/// blob in the store, and directory as `dir` says.
pub(crate) fn build_layer(
    store: &LocalStore,
    base: &LayerStack,
    actions: &[FileAction],
    sources: &[Source<'_>],
    dir: LayerDir,
) -> Result<Layer, LayerError> {
    let actions = crate::op::executor_actions(actions);
    if dir == LayerDir::Kept {
        return new_layer(store, |upper, _work| {
            kiln_executor::apply_file_actions(base, upper, &actions, sources)
                .map_err(LayerError::Files)
        });
    }
    write_layer(
        store,
        |upper, _work| {
            kiln_executor::apply_file_actions_grafting(base, upper, &actions, sources)
                .map_err(LayerError::Files)
        },
        |upper, grafts, out| {
            let options = kiln_executor::DiffOptions::default();
            kiln_executor::diff_grafted(upper, grafts, out, &options)?;
            Ok(grafts.is_empty())
        },
    )
}

/// Makes a new layer: `fill` writes the changes into an empty upper
/// directory (it also gets an empty overlay work directory on the same
/// filesystem); the upper directory is then written as a tar straight
/// into an uncompressed blob (`application/vnd.oci.image.layer.v1.tar`)
/// through the store's pipelined writer, hashed once as it is written:
/// the blob's digest is the diff id. The
/// store commits it as any blob (synced, renamed into place), and the
/// directory is kept under the diff id.
/// `fill`'s errors pass through unchanged. What `fill` returns is held
/// until the blob is written: a RUN step returns its CPU slot
/// ([`crate::CpuSlot`]), taken once its process is done, so the packing
/// counts against the CPU pool and the process does not.
pub(crate) fn new_layer<E: From<LayerError>, G>(
    store: &LocalStore,
    fill: impl FnOnce(&Path, &Path) -> Result<G, E>,
) -> Result<Layer, E> {
    write_layer(store, fill, |upper, _, out| {
        kiln_executor::diff(upper, out).map(|()| true)
    })
}

/// [`new_layer`] with the tar written by `tar`, which gets the upper
/// directory and what `fill` returned, and says whether the upper
/// directory is the whole layer (it is then kept as the layer's
/// directory, else removed).
fn write_layer<E: From<LayerError>, G>(
    store: &LocalStore,
    fill: impl FnOnce(&Path, &Path) -> Result<G, E>,
    tar: impl FnOnce(&Path, &G, &mut dyn std::io::Write) -> Result<bool, kiln_executor::DiffError>,
) -> Result<Layer, E> {
    let root = store.layout().layers();
    let create = |path: &Path| {
        let path = path.to_path_buf();
        move |error| LayerError::Create { path, error }
    };
    std::fs::create_dir_all(&root).map_err(create(&root))?;
    let upper = temporary(&root, "tmp");
    let work = temporary(&root, "work");
    for d in [&upper, &work] {
        std::fs::create_dir(d).map_err(create(d))?;
    }
    let result = (|| {
        let held = fill(&upper, &work)?;
        // It buffers (the tar's 512-byte headers are not a system call
        // each), and writes, hashes and starts writeback on its own
        // thread while the tar is made.
        let mut writer = store.writer_pipelined().map_err(LayerError::Store)?;
        let whole = tar(&upper, &held, &mut writer).map_err(LayerError::Write)?;
        let size = writer.written();
        let blob = writer.commit(None, None).map_err(LayerError::Store)?;
        drop(held);
        Ok::<_, E>((
            blob.clone(),
            blob,
            size,
            kiln_oci::media::OCI_LAYER_TAR.to_string(),
            whole,
        ))
    })();
    let _ = std::fs::remove_dir_all(&work);
    let (diff_id, blob, size, media_type, whole) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&upper);
            return Err(e);
        }
    };
    let layer = Layer::in_store(store.layout(), diff_id, blob, size, media_type);
    mark_used(store, &layer.diff_id);
    if !whole {
        let _ = std::fs::remove_dir_all(&upper);
        return Ok(layer);
    }
    let _ = durable::mark_written(&upper);
    kiln_executor::commit_dir(&upper, &layer.dir).map_err(|error| LayerError::Commit {
        path: layer.dir.clone(),
        error,
    })?;
    Ok(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_layer_writes_the_tar_as_an_uncompressed_blob_named_by_its_diff_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("store");
        let layer = new_layer(&store, |upper, _work| {
            std::fs::write(upper.join("hello.txt"), "hello\n".repeat(100_000)).map_err(|error| {
                LayerError::Create {
                    path: upper.to_path_buf(),
                    error,
                }
            })
        })
        .expect("new_layer");
        assert_eq!(layer.media_type, kiln_oci::media::OCI_LAYER_TAR);
        assert_eq!(layer.blob, layer.diff_id);
        let blob = std::fs::read(store.blob_path(&layer.blob)).expect("blob");
        assert_eq!(blob.len() as u64, layer.size);
        assert_eq!(Digest::sha256(&blob), layer.blob);
        let mut expected = Vec::new();
        kiln_executor::diff(&layer.dir, &mut expected).expect("diff");
        assert!(blob == expected, "the blob is the layer's tar");
        assert!(layer.dir.join("hello.txt").exists());
        let ingest = std::fs::read_dir(store.layout().ingest()).expect("ingest");
        assert_eq!(ingest.count(), 0, "no ingest file is left behind");
    }

    #[test]
    fn a_failed_fill_leaves_no_blob_and_no_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("store");
        let before = store.blobs().expect("blobs").len();
        let result: Result<Layer, LayerError> = new_layer(&store, |upper, _work| {
            std::fs::write(upper.join("half"), "x").expect("write");
            Err::<(), _>(LayerError::Create {
                path: upper.to_path_buf(),
                error: std::io::Error::other("the step failed"),
            })
        });
        assert!(result.is_err());
        assert_eq!(store.blobs().expect("blobs").len(), before);
        let left: Vec<_> = std::fs::read_dir(store.layout().layers())
            .expect("layers")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
