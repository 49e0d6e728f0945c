//! A built image's layers ([`Layer`]s), and their blobs as an output
//! wants them: recompressed (`compression=`,
//! `force-compression=true`) or rewritten with clamped file times
//! (`rewrite-timestamp=true`). Conversions are remembered in the store
//! ([`kiln_oci::conversions`]), so exporting the same image again costs
//! nothing.
//!
//! Build steps store their layers uncompressed; this is the one place
//! that compresses them, for every output that leaves the store (image
//! outputs, pushes, archives, `--cache-to`, `kiln push` and `kiln save`
//! through [`compress_image`]), and in the background during a build
//! ([`prepare_layer`]). gzip at a level of the same tar gives the same
//! bytes whenever it runs.

use crate::error::ExportError;
use crate::options::ImageOptions;
use kiln_oci::conversions;
use kiln_oci::media::MediaFamily;
use kiln_oci::{
    BlobReader, BlobStore, Compression, Digest, Layer, LayerCompression, LayerCompressor,
    LocalStore,
};
use serde_json::Value;
use std::io::{BufReader, Write};

/// A layer's blob for one output.
#[derive(Debug, Clone)]
pub(crate) struct LayerBlob {
    /// The blob digest.
    pub blob: Digest,
    /// The blob size.
    pub size: u64,
    /// The digest of the uncompressed tar (changes with rewritten times).
    pub diff_id: Digest,
    /// How the blob is compressed.
    pub compression: LayerCompression,
}

/// The blob of `layer` as `options` want it (`epoch` is
/// `SOURCE_DATE_EPOCH`).
pub(crate) fn layer_blob(
    store: &LocalStore,
    layer: &Layer,
    epoch: Option<u64>,
    options: &ImageOptions,
) -> Result<LayerBlob, ExportError> {
    layer_blob_until(store, layer, epoch, options, &|| false)
}

/// Converts `layer` (a new layer a build step made, `epoch` its
/// `SOURCE_DATE_EPOCH`) for an output with `options` now, so that writing
/// the output later finds the conversion remembered: a build calls it in
/// the background as soon as each step is done. `cancelled` is asked as
/// the blob is written; once it says yes the conversion stops and leaves
/// no blob and no memo.
///
/// # Errors
/// The conversion's store or codec error, or [`ExportError::Cancelled`].
pub fn prepare_layer(
    store: &LocalStore,
    layer: &Layer,
    epoch: Option<u64>,
    options: &ImageOptions,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), ExportError> {
    layer_blob_until(store, layer, epoch, options, cancelled).map(|_| ())
}

/// The blob of `layer` (a layer made by a build, not a base image's) as
/// `options` want it, converted and remembered if need be: its digest and
/// size. What `--cache-to` exports.
///
/// # Errors
/// The conversion's store or codec error.
pub fn compress_layer(
    store: &LocalStore,
    layer: &Layer,
    options: &ImageOptions,
) -> Result<(Digest, u64), ExportError> {
    let out = layer_blob(store, layer, None, options)?;
    Ok((out.blob, out.size))
}

/// [`layer_blob`], stopping when `cancelled` says so.
fn layer_blob_until(
    store: &LocalStore,
    layer: &Layer,
    epoch: Option<u64>,
    options: &ImageOptions,
    cancelled: &dyn Fn() -> bool,
) -> Result<LayerBlob, ExportError> {
    let current =
        LayerCompression::of_media_type(&layer.media_type).unwrap_or(LayerCompression::Gzip);
    let clamp = epoch.filter(|_| options.rewrite_timestamp && !layer.from_image);
    // The local image store keeps layers as built (compressed only if
    // they came so), unless the output asks for a compression.
    let want = if options.keep_layers {
        match current {
            LayerCompression::None => Compression::Uncompressed,
            LayerCompression::Gzip => Compression::gzip(),
            LayerCompression::Zstd => Compression::zstd(),
        }
    } else {
        options.compression
    };
    let recompress =
        current != want.layer_compression() && (!layer.from_image || options.force_compression);
    if clamp.is_none() && !recompress {
        return Ok(LayerBlob {
            blob: layer.blob.clone(),
            size: layer.size,
            diff_id: layer.diff_id.clone(),
            compression: current,
        });
    }
    let key = conversions::conversion_key(&[
        layer.diff_id.as_str(),
        &format!("{want:?}"),
        &format!("{clamp:?}"),
    ]);
    if let Some(found) = conversions::remembered(store.layout(), store, &key) {
        return Ok(LayerBlob {
            blob: found.blob,
            size: found.size,
            diff_id: found.diff_id,
            compression: want.layer_compression(),
        });
    }
    let out = convert(store, layer, clamp, want, cancelled)?;
    conversions::remember(
        store.layout(),
        &key,
        &conversions::Conversion {
            blob: out.blob.clone(),
            size: out.size,
            diff_id: out.diff_id.clone(),
        },
    );
    Ok(out)
}

/// A writer that fails once `cancelled` says so: the conversion stops at
/// its next write and its blob writer, dropped, removes the partial blob.
struct Stoppable<'a, W> {
    inner: W,
    cancelled: &'a dyn Fn() -> bool,
}

impl<W: Write> Write for Stoppable<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if (self.cancelled)() {
            return Err(std::io::Error::other("cancelled"));
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the converted blob: the layer directory diffed again with
/// clamped times, or the blob decompressed and compressed again.
fn convert(
    store: &dyn BlobStore,
    layer: &Layer,
    clamp: Option<u64>,
    want: Compression,
    cancelled: &dyn Fn() -> bool,
) -> Result<LayerBlob, ExportError> {
    let fail = |e: &dyn std::fmt::Display| {
        if cancelled() {
            return ExportError::Cancelled;
        }
        ExportError::Layer(format!("converting layer {}: {e}", layer.diff_id))
    };
    // A big blob: the store writes and hashes it on a worker thread.
    let writer = store.writer_pipelined()?;
    let compressor = LayerCompressor::new(writer, want).map_err(|e| fail(&e))?;
    let mut out = Stoppable {
        inner: compressor,
        cancelled,
    };
    match clamp {
        Some(epoch) => {
            let options = kiln_executor::DiffOptions {
                mtime_clamp: Some(epoch),
            };
            kiln_executor::diff_with(&layer.dir, &mut out, &options).map_err(|e| fail(&e))?;
        }
        None => {
            let file = store.open(&layer.blob)?;
            let mut tar = kiln_oci::compress::decompressor(BufReader::with_capacity(1 << 16, file))
                .map_err(|e| fail(&e))?;
            std::io::copy(&mut tar, &mut out).map_err(|e| fail(&e))?;
        }
    }
    if cancelled() {
        return Err(ExportError::Cancelled);
    }
    let (writer, done) = out.inner.finish().map_err(|e| fail(&e))?;
    if clamp.is_none() && done.diff_id != layer.diff_id {
        return Err(fail(&format!(
            "the blob's content is {}, not the layer's diff id",
            done.diff_id
        )));
    }
    let blob = writer.commit(Some(&done.digest), Some(done.size))?;
    Ok(LayerBlob {
        blob,
        size: done.size,
        diff_id: done.diff_id,
        compression: want.layer_compression(),
    })
}

/// How deep indexes may nest in [`compress_image`].
const MAX_DEPTH: usize = 8;

/// The image `digest` (a manifest or an index) with its uncompressed
/// layers compressed as `options` say (`options.compression`; layers
/// already compressed are kept), through the same remembered conversion
/// as the build's outputs: what `kiln push` and `kiln save` send of an
/// image built here, whose layers the store keeps uncompressed. Returns
/// `digest` itself, untouched, when no layer needed it; otherwise the
/// digest of the rewritten manifest (or index), written to the store.
/// Configs (and so diff ids) do not change.
///
/// # Errors
/// A manifest missing or not JSON, a layer failing to convert, indexes
/// nested too deep.
pub fn compress_image(
    store: &LocalStore,
    digest: &Digest,
    options: &ImageOptions,
) -> Result<Digest, ExportError> {
    compress_manifest(store, digest, options, 0)
}

fn compress_manifest(
    store: &LocalStore,
    digest: &Digest,
    options: &ImageOptions,
    depth: usize,
) -> Result<Digest, ExportError> {
    if depth > MAX_DEPTH {
        return Err(ExportError::Layer(format!(
            "{digest}: indexes nested more than {MAX_DEPTH} deep"
        )));
    }
    let bad = |message: String| ExportError::Layer(format!("{digest}: {message}"));
    let mut value: Value =
        serde_json::from_slice(&store.read(digest)?).map_err(|e| bad(e.to_string()))?;
    let mut changed = false;
    if let Some(children) = value.get_mut("manifests").and_then(Value::as_array_mut) {
        for child in children {
            let Some(d) = child
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| d.parse::<Digest>().ok())
                .filter(|d| store.exists(d))
            else {
                continue;
            };
            let new = compress_manifest(store, &d, options, depth + 1)?;
            if new != d {
                child["size"] = Value::from(store.size(&new).unwrap_or(0));
                child["digest"] = Value::String(new.to_string());
                changed = true;
            }
        }
    } else {
        let family = match value.get("mediaType").and_then(Value::as_str) {
            Some(t) if t.contains("docker") => MediaFamily::Docker,
            _ => MediaFamily::Oci,
        };
        let layers = value
            .get_mut("layers")
            .and_then(Value::as_array_mut)
            .map(|l| l.iter_mut())
            .into_iter()
            .flatten();
        for desc in layers {
            let media_type = desc.get("mediaType").and_then(Value::as_str).unwrap_or("");
            if LayerCompression::of_media_type(media_type) != Some(LayerCompression::None) {
                continue;
            }
            let blob: Digest = desc
                .get("digest")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a layer has no digest".into()))?
                .parse()
                .map_err(|e| bad(format!("{e}")))?;
            let size = desc.get("size").and_then(Value::as_u64).unwrap_or(0);
            // An uncompressed blob is its own diff id.
            let layer = Layer::in_store(
                store.layout(),
                blob.clone(),
                blob,
                size,
                media_type.to_string(),
            );
            let converted = layer_blob(store, &layer, None, options)?;
            if converted.blob == layer.blob {
                continue;
            }
            desc["mediaType"] = Value::String(family.layer(converted.compression).to_string());
            desc["digest"] = Value::String(converted.blob.to_string());
            desc["size"] = Value::from(converted.size);
            changed = true;
        }
    }
    if !changed {
        return Ok(digest.clone());
    }
    let bytes = serde_json::to_vec(&value).map_err(|e| bad(e.to_string()))?;
    Ok(store.write_blob(&bytes, None)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// A store holding one layer as a build step stores it: a plain tar
    /// named by its diff id, and its directory.
    fn plain_layer(dir: &std::path::Path) -> (LocalStore, Layer) {
        let store = LocalStore::open(dir.join("store")).expect("store");
        let upper = dir.join("upper");
        std::fs::create_dir(&upper).expect("mkdir");
        let text: String = (0..100_000).map(|n| format!("{n}\n")).collect();
        std::fs::write(upper.join("numbers"), text).expect("write");
        let mut tar = Vec::new();
        kiln_executor::diff(&upper, &mut tar).expect("diff");
        let digest = store.write_blob(&tar, None).expect("blob");
        let layer = Layer::in_store(
            store.layout(),
            digest.clone(),
            digest,
            tar.len() as u64,
            kiln_oci::media::OCI_LAYER_TAR,
        );
        (store, layer)
    }

    fn memos(store: &LocalStore) -> usize {
        std::fs::read_dir(store.layout().exports())
            .map(|d| d.count())
            .unwrap_or(0)
    }

    #[test]
    fn a_prepared_layer_is_the_gzip_of_its_tar_and_is_remembered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, layer) = plain_layer(dir.path());
        let options = ImageOptions::default();
        prepare_layer(&store, &layer, None, &options, &|| false).expect("prepare");
        assert_eq!(memos(&store), 1);
        let got = layer_blob(&store, &layer, None, &options).expect("blob");
        assert_eq!(got.compression, LayerCompression::Gzip);
        assert_eq!(got.diff_id, layer.diff_id);
        let gz = store.read(&got.blob).expect("gzip blob");
        let mut tar = Vec::new();
        assert_eq!(gz.get(..2), Some(&[0x1f, 0x8b][..]), "a gzip stream");
        kiln_oci::compress::decompressor(&gz[..])
            .expect("decompressor")
            .read_to_end(&mut tar)
            .expect("gunzip");
        assert_eq!(Digest::sha256(&tar), layer.diff_id);
        // The local store's options keep it as it is.
        let kept = layer_blob(&store, &layer, None, &ImageOptions::local()).expect("kept");
        assert_eq!(
            (kept.blob, kept.compression),
            (layer.blob.clone(), LayerCompression::None)
        );
    }

    #[test]
    fn a_cancelled_preparation_leaves_no_blob_memo_or_ingest_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (store, layer) = plain_layer(dir.path());
        let before = store.blobs().expect("blobs");
        let err = prepare_layer(&store, &layer, None, &ImageOptions::default(), &|| true)
            .expect_err("cancelled");
        assert!(matches!(err, ExportError::Cancelled), "{err:?}");
        assert_eq!(store.blobs().expect("blobs"), before);
        assert_eq!(memos(&store), 0);
        let ingest = std::fs::read_dir(store.layout().ingest()).expect("ingest");
        assert_eq!(ingest.count(), 0);
    }
}
