//! Assembling the image: config and manifest blobs in the store.

use kiln_executor::LayerStack;
use kiln_oci::{media, Digest, ImageConfig, LocalStore, StoreError};

/// One layer of a built image.
#[derive(Debug, Clone)]
pub struct BuiltLayer {
    /// Blob digest.
    pub blob: Digest,
    /// Blob size.
    pub size: u64,
    /// Blob media type.
    pub media_type: String,
}

/// A built image: its filesystem, layers and config.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// The config (rootfs.diff_ids filled in).
    pub config: ImageConfig,
    /// The layer blobs, base first.
    pub layers: Vec<BuiltLayer>,
    /// The filesystem, for local and tar outputs.
    pub stack: LayerStack,
}

/// Writes the config and an OCI manifest for `image` to the store and
/// returns the manifest digest. `created` (RFC 3339) is stamped on the
/// config and on history entries that have no time yet.
///
/// # Errors
/// Store errors.
pub fn write_image(
    store: &LocalStore,
    image: &BuiltImage,
    created: &str,
) -> Result<Digest, StoreError> {
    let mut config = image.config.clone();
    config.created = Some(created.to_string());
    for h in &mut config.history {
        if h.created.is_none() {
            h.created = Some(created.to_string());
        }
    }
    let config_bytes = config.to_vec();
    let config_digest = store.write_blob(&config_bytes, None)?;
    let layers: Vec<serde_json::Value> = image
        .layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": l.media_type,
                "digest": l.blob.as_str(),
                "size": l.size,
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_MANIFEST,
        "config": {
            "mediaType": media::OCI_CONFIG,
            "digest": config_digest.as_str(),
            "size": config_bytes.len(),
        },
        "layers": layers,
    });
    // Plain JSON values always serialise.
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    store.write_blob(&bytes, None)
}
