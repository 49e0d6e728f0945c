//! Where attestations go: attestation manifests in the image index (as
//! buildx), or OCI 1.1 referrers with the fallback tag index.

use super::statement::{Attestation, IN_TOTO_MEDIA_TYPE};
use crate::error::ExportError;
use crate::image::WrittenImage;
use kiln_oci::media::{OCI_CONFIG, OCI_INDEX, OCI_MANIFEST};
use kiln_oci::{BlobIngester, Digest, Platform};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The annotation naming a layer's predicate type.
const PREDICATE_TYPE: &str = "in-toto.io/predicate-type";
/// OCI 1.1's empty config (`{}`).
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";

fn platform_json(platform: &Platform) -> Value {
    let mut p = json!({ "architecture": platform.architecture, "os": platform.os });
    if !platform.short_variant().is_empty() {
        p["variant"] = json!(platform.short_variant());
    }
    p
}

fn write_json(store: &impl BlobIngester, value: &Value) -> Result<(Digest, u64), ExportError> {
    // Plain JSON values always serialise.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    let digest = store.write_blob(&bytes, None)?;
    Ok((digest, bytes.len() as u64))
}

/// The statement layers of `attestations` about `image`, written to the
/// store.
fn statement_layers(
    store: &impl BlobIngester,
    attestations: &[Attestation],
    names: &[String],
    platform: &Platform,
    image: &Digest,
) -> Result<Vec<Value>, ExportError> {
    let mut layers = Vec::new();
    for a in attestations {
        let bytes = a.statement(names, image, platform);
        let digest = store.write_blob(&bytes, None)?;
        layers.push(json!({
            "mediaType": IN_TOTO_MEDIA_TYPE,
            "digest": digest.as_str(),
            "size": bytes.len(),
            "annotations": { PREDICATE_TYPE: a.predicate_type },
        }));
    }
    Ok(layers)
}

/// Writes an OCI index over `images` (one per platform) and, for each
/// platform with attestations (`attestations[i]` for `images[i]`), an
/// attestation manifest as BuildKit makes it: platform `unknown/unknown`,
/// annotated `vnd.docker.reference.type=attestation-manifest` and
/// `vnd.docker.reference.digest=<image manifest>`, one
/// `application/vnd.in-toto+json` layer per statement. `names` name the
/// statements' subjects; `annotations` go on the index.
///
/// # Errors
/// Store errors; no image.
pub fn write_attested_index(
    store: &impl BlobIngester,
    images: &[(Platform, WrittenImage)],
    attestations: &[Vec<Attestation>],
    names: &[String],
    annotations: &BTreeMap<String, String>,
) -> Result<WrittenImage, ExportError> {
    let Some((_, first)) = images.first() else {
        return Err(ExportError::Options(
            "an index needs at least one image".into(),
        ));
    };
    let mut manifests = Vec::new();
    for (platform, w) in images {
        manifests.push(json!({
            "mediaType": w.media_type,
            "digest": w.manifest.as_str(),
            "size": w.size,
            "platform": platform_json(platform),
        }));
    }
    for ((platform, w), list) in images.iter().zip(attestations) {
        if list.is_empty() {
            continue;
        }
        let layers = statement_layers(store, list, names, platform, &w.manifest)?;
        let diff_ids: Vec<&Value> = layers.iter().map(|l| &l["digest"]).collect();
        let (config, config_size) = write_json(
            store,
            &json!({
                "architecture": "unknown",
                "os": "unknown",
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": diff_ids },
            }),
        )?;
        let (manifest, size) = write_json(
            store,
            &json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": { "mediaType": OCI_CONFIG, "digest": config.as_str(), "size": config_size },
                "layers": layers,
            }),
        )?;
        manifests.push(json!({
            "mediaType": OCI_MANIFEST,
            "digest": manifest.as_str(),
            "size": size,
            "annotations": {
                "vnd.docker.reference.digest": w.manifest.as_str(),
                "vnd.docker.reference.type": "attestation-manifest",
            },
            "platform": { "architecture": "unknown", "os": "unknown" },
        }));
    }
    let mut index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        index["annotations"] = json!(annotations);
    }
    let (digest, size) = write_json(store, &index)?;
    Ok(WrittenImage {
        manifest: digest,
        media_type: OCI_INDEX.to_string(),
        size,
        config: first.config.clone(),
    })
}

/// The referrers of one image manifest, written to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrers {
    /// The image manifest they refer to (their `subject`).
    pub subject: Digest,
    /// The fallback tag of OCI 1.1's referrers tag schema: `sha256-<hex>`.
    pub tag: String,
    /// The index of the referrers, to push to [`Referrers::tag`].
    pub index: Digest,
}

/// Writes, for each platform image (`images[i]` with `attestations[i]`),
/// one OCI 1.1 artifact manifest per statement (`artifactType`
/// `application/vnd.in-toto+json`, `subject` the image manifest, the
/// empty config), and the index of them that the referrers tag schema
/// pushes to `sha256-<hex>` of the subject.
///
/// # Errors
/// Store errors.
pub fn write_referrers(
    store: &impl BlobIngester,
    images: &[(Platform, WrittenImage)],
    attestations: &[Vec<Attestation>],
    names: &[String],
) -> Result<Vec<Referrers>, ExportError> {
    let (empty, empty_size) = write_json(store, &json!({}))?;
    let mut out = Vec::new();
    for ((platform, w), list) in images.iter().zip(attestations) {
        if list.is_empty() {
            continue;
        }
        let layers = statement_layers(store, list, names, platform, &w.manifest)?;
        let mut descriptors = Vec::new();
        for (layer, a) in layers.into_iter().zip(list) {
            let annotations = json!({ PREDICATE_TYPE: a.predicate_type });
            let (manifest, size) = write_json(
                store,
                &json!({
                    "schemaVersion": 2,
                    "mediaType": OCI_MANIFEST,
                    "artifactType": IN_TOTO_MEDIA_TYPE,
                    "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": empty.as_str(), "size": empty_size },
                    "layers": [layer],
                    "subject": { "mediaType": w.media_type, "digest": w.manifest.as_str(), "size": w.size },
                    "annotations": annotations,
                }),
            )?;
            descriptors.push(json!({
                "mediaType": OCI_MANIFEST,
                "digest": manifest.as_str(),
                "size": size,
                "artifactType": IN_TOTO_MEDIA_TYPE,
                "annotations": annotations,
            }));
        }
        let (index, _) = write_json(
            store,
            &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors }),
        )?;
        out.push(Referrers {
            subject: w.manifest.clone(),
            tag: format!("sha256-{}", w.manifest.hex()),
            index,
        });
    }
    Ok(out)
}
