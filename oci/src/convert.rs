//! Re-labelling an image with the other family's media types (OCI ↔ Docker
//! schema 2), for registries and tools that accept only one. Configs and
//! layers are unchanged; only manifests and indexes are rewritten.

use crate::digest::Digest;
use crate::image::{ImageError, Result};
use crate::media::{self, MediaFamily};
use crate::store::{BlobReader, LocalStore};
use serde_json::Value;

/// Returns the digest of `digest`'s image (manifest or index) written with
/// `family`'s media types, storing the rewritten manifests. An image that
/// already uses them is returned unchanged, byte for byte.
///
/// # Errors
/// Missing or invalid manifests.
pub fn convert_media_types(
    store: &LocalStore,
    digest: &Digest,
    family: MediaFamily,
) -> Result<Digest> {
    convert(store, digest, family, 0)
}

fn convert(
    store: &LocalStore,
    digest: &Digest,
    family: MediaFamily,
    depth: usize,
) -> Result<Digest> {
    if depth > 8 {
        return Err(ImageError::TooDeep(digest.to_string()));
    }
    let bytes = store.read(digest)?;
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        what: "manifest",
        digest: digest.to_string(),
        source,
    })?;
    let mut changed = false;
    let is_index = value.get("manifests").is_some();
    if is_index {
        changed |= relabel(&mut value, family);
        if value.get("mediaType").is_none() {
            value["mediaType"] = Value::String(family.index().to_string());
            changed = true;
        }
        let children = value
            .get_mut("manifests")
            .and_then(Value::as_array_mut)
            .map(std::mem::take)
            .unwrap_or_default();
        let mut converted = Vec::with_capacity(children.len());
        for mut child in children {
            let child_digest: Option<Digest> = child
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| d.parse().ok());
            if let Some(d) = child_digest.filter(|d| store.exists(d)) {
                let new = convert(store, &d, family, depth + 1)?;
                if new != d {
                    child["digest"] = Value::String(new.to_string());
                    child["size"] = Value::from(store.size(&new).unwrap_or(0));
                    changed = true;
                }
                changed |= relabel(&mut child, family);
            }
            converted.push(child);
        }
        value["manifests"] = Value::Array(converted);
    } else {
        changed |= relabel(&mut value, family);
        if value.get("mediaType").is_none() {
            value["mediaType"] = Value::String(family.manifest().to_string());
            changed = true;
        }
        if let Some(config) = value.get_mut("config") {
            changed |= relabel(config, family);
        }
        if let Some(layers) = value.get_mut("layers").and_then(Value::as_array_mut) {
            for layer in layers {
                changed |= relabel(layer, family);
            }
        }
    }
    if !changed {
        return Ok(digest.clone());
    }
    let out = serde_json::to_vec(&value).map_err(|source| ImageError::Json {
        what: "manifest",
        digest: digest.to_string(),
        source,
    })?;
    Ok(store.write_blob(&out, None)?)
}

/// Sets a descriptor's (or manifest's) `mediaType` to `family`'s; true when
/// it changed.
fn relabel(v: &mut Value, family: MediaFamily) -> bool {
    if let Some(Value::String(t)) = v.get_mut("mediaType") {
        let new = media::convert(t, family);
        if new != t {
            *t = new.to_string();
            return true;
        }
    }
    false
}
