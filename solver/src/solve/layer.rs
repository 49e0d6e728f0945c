//! Layers on disk: base image layers unpacked once per diff id, and new
//! layers built from file actions, each kept as a directory (for the next
//! steps) and as a compressed blob (for export).
//!
//! Layer directories live under `<store>/layers/<diff_id hex>`. A new
//! layer is written to a temporary directory and renamed to its diff id
//! only when complete, so a crash never leaves a partial layer under a
//! final name.

use crate::op::{FileAction, ImageSource};
use kiln_executor::{LayerStack, Source};
use kiln_oci::{BlobIngester, Compression, Digest, LayerCompressor, LocalStore, Platform};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One layer of a built filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRecord {
    /// The unpacked layer directory.
    pub dir: PathBuf,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Compressed blob in the store.
    pub blob: Digest,
    /// Blob size.
    pub size: u64,
    /// Blob media type.
    pub media_type: String,
    /// It comes from a base image (exports keep its blob unless told to
    /// recompress everything), not from a build step.
    pub from_image: bool,
}

/// The filesystem these layers make, bottom first.
pub(crate) fn stack_of(layers: &[LayerRecord]) -> LayerStack {
    LayerStack::new(layers.iter().map(|l| l.dir.clone()).collect())
}

fn layers_dir(store: &LocalStore) -> PathBuf {
    store.root().join("layers")
}

fn layer_dir(store: &LocalStore, diff_id: &Digest) -> PathBuf {
    layers_dir(store).join(diff_id.hex())
}

/// Records that a build uses the unpacked layer (for `kiln prune`'s
/// least-recently-used order).
fn mark_used(store: &LocalStore, diff_id: &Digest) {
    super::CacheIndex::new(store.root()).touch_layer(diff_id);
}

/// The layers of an image in the store, unpacked (once) into directories.
pub(crate) fn image_layers(
    store: &LocalStore,
    image: &ImageSource,
) -> Result<Vec<LayerRecord>, String> {
    let manifest: Digest = image
        .manifest
        .parse()
        .map_err(|e| format!("{}: {e}", image.manifest))?;
    let platform: Platform = image.platform.parse().map_err(|e| format!("{e}"))?;
    let resolved = kiln_oci::resolve(store, &manifest, &platform)
        .map_err(|e| format!("{}: {e}", image.reference))?;
    let diff_ids = resolved.config.rootfs().diff_ids().clone();
    if diff_ids.len() != resolved.manifest.layers().len() {
        return Err(format!(
            "{}: the manifest has {} layers but the config lists {} diff_ids",
            image.reference,
            resolved.manifest.layers().len(),
            diff_ids.len()
        ));
    }
    let mut out = Vec::new();
    for (i, layer) in resolved.manifest.layers().iter().enumerate() {
        let blob =
            kiln_oci::descriptor_digest(layer, manifest.as_str()).map_err(|e| e.to_string())?;
        let diff_id: Digest = diff_ids
            .get(i)
            .ok_or_else(|| {
                format!(
                    "{}: config lists fewer diff_ids than layers",
                    image.reference
                )
            })?
            .parse()
            .map_err(|e| format!("{}: {e}", image.reference))?;
        let media_type = layer.media_type().to_string();
        let dir = layer_dir(store, &diff_id);
        if !dir.exists() {
            unpack_blob(store, &blob, &media_type, &diff_id, &dir)?;
        }
        mark_used(store, &diff_id);
        out.push(LayerRecord {
            dir,
            diff_id,
            blob,
            size: layer.size(),
            media_type,
            from_image: true,
        });
    }
    Ok(out)
}

/// Unpacks the store's blob into `dir` (the directory of `diff_id`),
/// verifying that its uncompressed content is `diff_id`: a forged diff id
/// fails and leaves no directory behind.
fn unpack_blob(
    store: &LocalStore,
    blob: &Digest,
    media_type: &str,
    diff_id: &Digest,
    dir: &Path,
) -> Result<(), String> {
    std::fs::create_dir_all(layers_dir(store))
        .map_err(|e| format!("creating {}: {e}", layers_dir(store).display()))?;
    kiln_executor::unpack_blob(&store.blob_path(blob), media_type, diff_id, dir)
        .map_err(|e| format!("unpacking layer {blob}: {e}"))
}

/// A cached layer made usable again: its directory if present, else
/// unpacked from its blob (verified against the record's diff id). `None`
/// when neither is there, or the blob is not the layer the record claims
/// (a cache miss).
pub(crate) fn restore(store: &LocalStore, cached: &super::CachedLayer) -> Option<LayerRecord> {
    try_restore(store, cached).ok().flatten()
}

/// [`restore`], saying why a blob that is there did not unpack (a forged
/// diff id, a damaged blob). `Ok(None)` when the record does not parse or
/// its blob is not in the store.
pub(crate) fn try_restore(
    store: &LocalStore,
    cached: &super::CachedLayer,
) -> Result<Option<LayerRecord>, String> {
    use kiln_oci::BlobReader;
    let (Ok(diff_id), Ok(blob)) = (
        cached.diff_id.parse::<Digest>(),
        cached.blob.parse::<Digest>(),
    ) else {
        return Ok(None);
    };
    if !store.exists(&blob) {
        return Ok(None);
    }
    let dir = layer_dir(store, &diff_id);
    if !dir.exists() {
        unpack_blob(store, &blob, &cached.media_type, &diff_id, &dir)?;
    }
    mark_used(store, &diff_id);
    Ok(Some(LayerRecord {
        dir,
        diff_id,
        blob,
        size: cached.size,
        media_type: cached.media_type.clone(),
        from_image: false,
    }))
}

/// The record of a cached layer whose blob is not fetched yet: where its
/// directory will be once it is unpacked. `None` when the record's
/// digests do not parse.
pub(crate) fn record_of(store: &LocalStore, cached: &super::CachedLayer) -> Option<LayerRecord> {
    let diff_id: Digest = cached.diff_id.parse().ok()?;
    let blob: Digest = cached.blob.parse().ok()?;
    Some(LayerRecord {
        dir: layer_dir(store, &diff_id),
        diff_id,
        blob,
        size: cached.size,
        media_type: cached.media_type.clone(),
        from_image: false,
    })
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Applies `actions` on top of `base` into a new layer: directory, tar,
/// compressed blob in the store.
pub(crate) fn build_layer(
    store: &LocalStore,
    compression: Compression,
    base: &LayerStack,
    actions: &[FileAction],
    sources: &[Source<'_>],
) -> Result<LayerRecord, String> {
    new_layer(store, compression, |upper, _work| {
        let actions = crate::op::executor_actions(actions);
        kiln_executor::apply_file_actions(base, upper, &actions, sources).map_err(|e| e.to_string())
    })
}

/// Makes a new layer: `fill` writes the changes into an empty upper
/// directory (it also gets an empty overlay work directory on the same
/// filesystem); the upper directory is then written as a tar (hashed for
/// the diff id) compressed into a blob, and kept under its diff id.
pub(crate) fn new_layer(
    store: &LocalStore,
    compression: Compression,
    fill: impl FnOnce(&Path, &Path) -> Result<(), String>,
) -> Result<LayerRecord, String> {
    let root = layers_dir(store);
    std::fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let upper = root.join(format!("tmp-{}-{n}", std::process::id()));
    let work = root.join(format!("work-{}-{n}", std::process::id()));
    for d in [&upper, &work] {
        std::fs::create_dir(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let result = (|| {
        fill(&upper, &work)?;
        let writer = store.writer().map_err(|e| e.to_string())?;
        // gzip level 6 on every core; the bytes do not depend on the
        // number of cores (see kiln_oci::compress).
        let mut layer = LayerCompressor::new(writer, compression)
            .map_err(|e| format!("compressing the layer: {e}"))?;
        kiln_executor::diff(&upper, &mut layer).map_err(|e| format!("writing the layer: {e}"))?;
        let (writer, out) = layer
            .finish()
            .map_err(|e| format!("compressing the layer: {e}"))?;
        let blob = writer
            .commit(Some(&out.digest), Some(out.size))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((out.diff_id, blob, out.size, out.media_type.to_string()))
    })();
    let _ = std::fs::remove_dir_all(&work);
    let (diff_id, blob, size, media_type) = match result {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&upper);
            return Err(e);
        }
    };
    let dir = layer_dir(store, &diff_id);
    mark_used(store, &diff_id);
    kiln_executor::commit_dir(&upper, &dir)
        .map_err(|e| format!("storing layer {}: {e}", dir.display()))?;
    Ok(LayerRecord {
        dir,
        diff_id,
        blob,
        size,
        media_type,
        from_image: false,
    })
}

/// Downloads an ADD URL into `<store>/http/<url digest>/<filename>` (mode
/// 0600, as BuildKit leaves it), verifying `--checksum`, with the
/// deadlines of [`super::http`]. Returns the directory and the content
/// digest.
pub(crate) fn download(
    store: &LocalStore,
    http: &crate::op::HttpSource,
) -> Result<(PathBuf, Digest), String> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| "no async runtime to download with".to_string())?;
    let deadlines = super::http::Deadlines::from_env()?;
    let downloads = store.root().join("http");
    std::fs::create_dir_all(&downloads)
        .map_err(|e| format!("creating {}: {e}", downloads.display()))?;
    // `.tmp-<pid>-`: `kiln prune` knows a running build's temporaries.
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".tmp-{}-", std::process::id()))
        .tempdir_in(&downloads)
        .map_err(|e| format!("creating a directory in {}: {e}", downloads.display()))?;
    let file_path = tmp.path().join(&http.filename);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&file_path)
        .map_err(|e| format!("creating {}: {e}", file_path.display()))?;
    let content = handle.block_on(super::http::fetch(
        &http.url,
        http.checksum.as_deref(),
        &mut file,
        &deadlines,
    ))?;
    drop(file);
    std::fs::set_permissions(&file_path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("chmod {}: {e}", file_path.display()))?;
    let dir = downloads.join(format!(
        "{}-{}",
        Digest::sha256(http.url.as_bytes()).hex(),
        &content.hex()[..16]
    ));
    if !dir.exists() {
        let kept = tmp.keep();
        if std::fs::rename(&kept, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&kept);
        }
    } else if let Ok(d) = std::fs::File::open(&dir) {
        // The last use, for `kiln prune`'s order.
        let _ = d.set_modified(std::time::SystemTime::now());
    }
    Ok((dir, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn new_layer_writes_a_gzip_blob_of_the_tar_with_its_diff_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("store");
        let layer = new_layer(&store, Compression::default(), |upper, _work| {
            std::fs::write(upper.join("hello.txt"), "hello\n".repeat(100_000))
                .map_err(|e| e.to_string())
        })
        .expect("new_layer");
        assert_eq!(layer.media_type, kiln_oci::media::OCI_LAYER_GZIP);
        let blob = std::fs::read(store.blob_path(&layer.blob)).expect("blob");
        assert_eq!(blob.len() as u64, layer.size);
        assert_eq!(Digest::sha256(&blob), layer.blob);
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&blob[..])
            .read_to_end(&mut tar)
            .expect("gzip");
        assert_eq!(Digest::sha256(&tar), layer.diff_id);
        let mut expected = Vec::new();
        kiln_executor::diff(&layer.dir, &mut expected).expect("diff");
        assert!(tar == expected, "the blob holds the layer's tar");
        assert!(layer.dir.join("hello.txt").exists());
    }
}
