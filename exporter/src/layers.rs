//! A built image's layers ([`Layer`]s), and their blobs as an output
//! wants them: recompressed (`compression=`,
//! `force-compression=true`) or rewritten with clamped file times
//! (`rewrite-timestamp=true`). Conversions are remembered in the store
//! ([`kiln_oci::StoreLayout::exports`], `<key>.json`), so exporting the
//! same image again costs nothing.

use crate::error::ExportError;
use crate::options::ImageOptions;
use kiln_oci::{
    BlobReader, BlobStore, Compression, Digest, Layer, LayerCompression, LayerCompressor,
    LocalStore,
};
use serde_json::json;
use std::io::BufReader;
use std::path::Path;

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
    let current =
        LayerCompression::of_media_type(&layer.media_type).unwrap_or(LayerCompression::Gzip);
    let clamp = epoch.filter(|_| options.rewrite_timestamp && !layer.from_image);
    let want = options.compression;
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
    let key = Digest::sha256(format!("{}|{want:?}|{clamp:?}", layer.diff_id).as_bytes());
    let memo = store.layout().exports().join(format!("{}.json", key.hex()));
    if let Some(found) = remembered(store, &memo, want) {
        return Ok(found);
    }
    let out = convert(store, layer, clamp, want)?;
    remember(&memo, &out);
    Ok(out)
}

/// Writes the converted blob: the layer directory diffed again with
/// clamped times, or the blob decompressed and compressed again.
fn convert(
    store: &dyn BlobStore,
    layer: &Layer,
    clamp: Option<u64>,
    want: Compression,
) -> Result<LayerBlob, ExportError> {
    let fail = |e: &dyn std::fmt::Display| {
        ExportError::Layer(format!("converting layer {}: {e}", layer.diff_id))
    };
    let writer = store.writer()?;
    let mut compressor = LayerCompressor::new(writer, want).map_err(|e| fail(&e))?;
    match clamp {
        Some(epoch) => {
            let options = kiln_executor::DiffOptions {
                mtime_clamp: Some(epoch),
            };
            kiln_executor::diff_with(&layer.dir, &mut compressor, &options)
                .map_err(|e| fail(&e))?;
        }
        None => {
            let file = store.open(&layer.blob)?;
            let mut tar = kiln_oci::compress::decompressor(BufReader::with_capacity(1 << 16, file))
                .map_err(|e| fail(&e))?;
            std::io::copy(&mut tar, &mut compressor).map_err(|e| fail(&e))?;
        }
    }
    let (writer, done) = compressor.finish().map_err(|e| fail(&e))?;
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

/// A conversion made earlier, if its blob is still in the store.
fn remembered(store: &dyn BlobReader, memo: &Path, want: Compression) -> Option<LayerBlob> {
    let text = std::fs::read(memo).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let blob: Digest = v["blob"].as_str()?.parse().ok()?;
    let diff_id: Digest = v["diff_id"].as_str()?.parse().ok()?;
    let size = v["size"].as_u64()?;
    store.exists(&blob).then_some(LayerBlob {
        blob,
        size,
        diff_id,
        compression: want.layer_compression(),
    })
}

/// Records a conversion; failing to is only a lost shortcut.
fn remember(memo: &Path, out: &LayerBlob) {
    let Some(dir) = memo.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let text = json!({
        "blob": out.blob.as_str(),
        "size": out.size,
        "diff_id": out.diff_id.as_str(),
    })
    .to_string();
    if let Ok(mut tmp) = tempfile::NamedTempFile::new_in(dir) {
        if std::io::Write::write_all(&mut tmp, text.as_bytes()).is_ok() {
            let _ = tmp.persist(memo);
        }
    }
}
