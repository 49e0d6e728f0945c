//! Assembling the image: layer blobs in the compression an output asks
//! for, the config and the manifest, in the content store.

use crate::error::ExportError;
use crate::layers::{layer_blob, LayerBlob};
use crate::options::ImageOptions;
use kiln_executor::LayerStack;
use kiln_oci::media::MediaFamily;
use kiln_oci::{BlobIngester, Digest, ImageConfig, Layer, LayerCompression, LocalStore, Platform};
use std::collections::BTreeMap;

/// A built image: its filesystem, layers and config.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The config (rootfs.diff_ids filled in).
    pub config: ImageConfig,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// The filesystem, for local and tar outputs.
    pub stack: LayerStack,
    /// `SOURCE_DATE_EPOCH`, for [`ImageOptions::rewrite_timestamp`].
    pub epoch: Option<u64>,
}

/// An image written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenImage {
    /// The manifest digest (the image's identity).
    pub manifest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// The config digest.
    pub config: Digest,
}

/// Writes the layers (converted as `options` say), the config and a
/// manifest for `image` to the store. `created` (RFC 3339) is stamped on
/// the config and on history entries that have no time yet;
/// `annotations` go on the manifest.
///
/// # Errors
/// Store or compression errors; zstd with Docker media types.
pub fn write_image(
    store: &LocalStore,
    image: &BuiltImage,
    created: &str,
    options: &ImageOptions,
    annotations: &BTreeMap<String, String>,
) -> Result<WrittenImage, ExportError> {
    let family = if options.oci_mediatypes {
        MediaFamily::Oci
    } else {
        MediaFamily::Docker
    };
    if !options.oci_mediatypes && options.compression.layer_compression() == LayerCompression::Zstd
    {
        return Err(ExportError::Options(
            "compression=zstd needs oci-mediatypes=true".into(),
        ));
    }
    let mut config = image.config.clone();
    config.created = Some(created.to_string());
    for h in &mut config.history {
        if h.created.is_none() {
            h.created = Some(created.to_string());
        }
    }
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in &image.layers {
        let LayerBlob {
            blob,
            size,
            diff_id,
            compression,
        } = layer_blob(store, layer, image.epoch, options)?;
        diff_ids.push(diff_id.to_string());
        layers.push(serde_json::json!({
            "mediaType": family.layer(compression),
            "digest": blob.as_str(),
            "size": size,
        }));
    }
    config.rootfs.diff_ids = diff_ids;
    let config_bytes = config.to_vec();
    let config_digest = store.write_blob(&config_bytes, None)?;
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": family.manifest(),
        "config": {
            "mediaType": family.config(),
            "digest": config_digest.as_str(),
            "size": config_bytes.len(),
        },
        "layers": layers,
    });
    if !annotations.is_empty() {
        manifest["annotations"] = serde_json::json!(annotations);
    }
    // Plain JSON values always serialise.
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    let digest = store.write_blob(&bytes, None)?;
    Ok(WrittenImage {
        manifest: digest,
        media_type: family.manifest().to_string(),
        size: bytes.len() as u64,
        config: config_digest,
    })
}

/// Writes an index over per-platform images already in the store (an OCI
/// image index, or a Docker manifest list when `oci_mediatypes` is off)
/// and returns it as the written image: its digest is what names, pushes
/// and layouts refer to. `config` is the first platform's; `annotations`
/// go on the index.
///
/// # Errors
/// Store errors; no image.
pub fn write_index(
    store: &impl BlobIngester,
    images: &[(Platform, WrittenImage)],
    oci_mediatypes: bool,
    annotations: &BTreeMap<String, String>,
) -> Result<WrittenImage, ExportError> {
    let Some((_, first)) = images.first() else {
        return Err(ExportError::Options(
            "an index needs at least one image".into(),
        ));
    };
    let media_type = if oci_mediatypes {
        kiln_oci::media::OCI_INDEX
    } else {
        kiln_oci::media::DOCKER_MANIFEST_LIST
    };
    let manifests: Vec<serde_json::Value> = images
        .iter()
        .map(|(platform, w)| {
            let mut p = serde_json::json!({
                "architecture": platform.architecture,
                "os": platform.os,
            });
            if !platform.short_variant().is_empty() {
                p["variant"] = serde_json::json!(platform.short_variant());
            }
            serde_json::json!({
                "mediaType": w.media_type,
                "digest": w.manifest.as_str(),
                "size": w.size,
                "platform": p,
            })
        })
        .collect();
    let mut index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        index["annotations"] = serde_json::json!(annotations);
    }
    // Plain JSON values always serialise.
    let bytes = serde_json::to_vec(&index).unwrap_or_default();
    let digest = store.write_blob(&bytes, None)?;
    Ok(WrittenImage {
        manifest: digest,
        media_type: media_type.to_string(),
        size: bytes.len() as u64,
        config: first.config.clone(),
    })
}
