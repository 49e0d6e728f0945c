//! The image model: manifests and indexes of both media-type families,
//! platform selection, and walking an image's blobs in a store.
//!
//! Manifest and config bytes are never re-serialised: their digests are
//! their identity, so kiln keeps the bytes it was given and parses them
//! only to read.

use crate::digest::Digest;
use crate::media;
use crate::platform::Platform;
use crate::store::{BlobReader, StoreError};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use std::collections::BTreeSet;

/// What can go wrong reading an image.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// A manifest, index or config is not valid JSON of its kind.
    #[error("{what} {digest} is not valid: {source}")]
    Json {
        /// What was being read ("manifest", "config", ...).
        what: &'static str,
        /// Its digest.
        digest: String,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A Docker schema 1 manifest, which kiln does not read.
    #[error("{digest} is a Docker schema 1 manifest, which is deprecated and not supported; re-push the image with a current tool")]
    Schema1 {
        /// Its digest or reference.
        digest: String,
    },
    /// A media type that is neither a manifest nor an index.
    #[error("{digest} has media type {media_type:?}, which is not an image manifest or index")]
    NotAnImage {
        /// Its digest.
        digest: String,
        /// Its media type.
        media_type: String,
    },
    /// No manifest in an index runs on the requested platform.
    #[error("no image for platform {wanted} in {digest} (it has: {available})")]
    NoMatchingPlatform {
        /// The requested platform.
        wanted: Platform,
        /// The index.
        digest: String,
        /// The platforms it has, comma-separated.
        available: String,
    },
    /// A descriptor's digest is not one kiln accepts.
    #[error("invalid digest in a descriptor of {digest}: {value:?}")]
    BadDigest {
        /// The manifest holding it.
        digest: String,
        /// The digest text.
        value: String,
    },
    /// A manifest, index or config larger than kiln reads.
    #[error("{what} {digest} is {size} bytes; kiln reads at most {limit}")]
    TooLarge {
        /// What it is ("manifest", "config", ...).
        what: &'static str,
        /// Its digest.
        digest: String,
        /// Its size, as claimed by a descriptor or found.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A blob's size is not the one its descriptor gives.
    #[error("{field} of {holder}: the descriptor of {digest} says {claimed} bytes, the blob has {actual}")]
    SizeMismatch {
        /// The descriptor's field (`layers[0].size`).
        field: String,
        /// The manifest or index holding the descriptor.
        holder: String,
        /// The blob.
        digest: String,
        /// The size the descriptor gives.
        claimed: u64,
        /// The blob's real size.
        actual: u64,
    },
    /// A manifest and its config do not make a valid image.
    #[error("image {digest}: {field}: {message}")]
    Inconsistent {
        /// The manifest.
        digest: String,
        /// The field at fault (`rootfs.diff_ids`, `layers[1].mediaType`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Indexes nested deeper than kiln follows.
    #[error("index {0} nests indexes too deeply")]
    TooDeep(String),
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Shorthand for image results.
pub type Result<T> = std::result::Result<T, ImageError>;

/// A parsed manifest or index (either media-type family).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // parsed once per manifest; boxing buys nothing
pub enum Manifest {
    /// An image manifest (OCI or Docker schema 2).
    Image(ImageManifest),
    /// An image index or Docker manifest list.
    Index(ImageIndex),
}

impl Manifest {
    /// Parses manifest bytes. The kind comes from the `mediaType` field, or
    /// from `content_type` (a registry's `Content-Type` or a descriptor's
    /// media type), or from the shape of the JSON.
    ///
    /// # Errors
    /// Invalid JSON, schema 1, or a media type of another kind.
    pub fn from_slice(bytes: &[u8], content_type: Option<&str>, digest: &str) -> Result<Manifest> {
        let json_err = |what, source| ImageError::Json {
            what,
            digest: digest.to_string(),
            source,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| json_err("manifest", e))?;
        let declared = value
            .get("mediaType")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string()))
            .filter(|m| !m.is_empty() && m != "application/json" && m != "text/plain");
        if value.get("schemaVersion").and_then(|v| v.as_u64()) == Some(1)
            || declared
                .as_deref()
                .is_some_and(|m| m == media::DOCKER_SCHEMA1 || m == media::DOCKER_SCHEMA1_SIGNED)
        {
            return Err(ImageError::Schema1 {
                digest: digest.to_string(),
            });
        }
        let is_index = match declared.as_deref() {
            Some(m) if media::is_index(m) => true,
            Some(m) if media::is_manifest(m) => false,
            Some(m) => {
                return Err(ImageError::NotAnImage {
                    digest: digest.to_string(),
                    media_type: m.to_string(),
                })
            }
            None => value.get("manifests").is_some(),
        };
        if is_index {
            serde_json::from_value(value)
                .map(Manifest::Index)
                .map_err(|e| json_err("index", e))
        } else {
            serde_json::from_value(value)
                .map(Manifest::Image)
                .map_err(|e| json_err("manifest", e))
        }
    }

    /// The media type of this manifest: the declared one, or the OCI type of
    /// its kind when the JSON declares none.
    pub fn media_type(&self) -> String {
        let declared = match self {
            Manifest::Image(m) => m.media_type().as_ref().map(|t| t.to_string()),
            Manifest::Index(i) => i.media_type().as_ref().map(|t| t.to_string()),
        };
        declared.unwrap_or_else(|| match self {
            Manifest::Image(_) => media::OCI_MANIFEST.to_string(),
            Manifest::Index(_) => media::OCI_INDEX.to_string(),
        })
    }

    /// The descriptors this manifest points at: config then layers, or the
    /// index's manifests.
    pub fn children(&self) -> Vec<&Descriptor> {
        match self {
            Manifest::Image(m) => std::iter::once(m.config()).chain(m.layers()).collect(),
            Manifest::Index(i) => i.manifests().iter().collect(),
        }
    }
}

/// True for the attestation manifests BuildKit puts in indexes
/// (`unknown/unknown`), which are not runnable images.
pub fn is_attestation(desc: &Descriptor) -> bool {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// Picks the manifest of an index that best fits `platform`.
///
/// # Errors
/// [`ImageError::NoMatchingPlatform`] listing what the index has.
pub fn select_platform<'a>(
    index: &'a ImageIndex,
    platform: &Platform,
    index_digest: &str,
) -> Result<&'a Descriptor> {
    let mut best: Option<(u32, &Descriptor)> = None;
    for desc in index.manifests() {
        if is_attestation(desc)
            || !media::is_manifest(desc.media_type().as_ref())
                && !media::is_index(desc.media_type().as_ref())
        {
            continue;
        }
        let Some(p) = desc.platform() else { continue };
        if let Some(score) = platform.score(&Platform::from_oci(p)) {
            if best.is_none_or(|(s, _)| score > s) {
                best = Some((score, desc));
            }
        }
    }
    best.map(|(_, d)| d)
        .ok_or_else(|| ImageError::NoMatchingPlatform {
            wanted: platform.clone(),
            digest: index_digest.to_string(),
            available: index
                .manifests()
                .iter()
                .filter(|d| !is_attestation(d))
                .filter_map(|d| {
                    d.platform()
                        .as_ref()
                        .map(|p| Platform::from_oci(p).to_string())
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Reads a descriptor's digest as a kiln [`Digest`].
///
/// # Errors
/// [`ImageError::BadDigest`] naming the manifest that holds it.
pub fn descriptor_digest(desc: &Descriptor, holder: &str) -> Result<Digest> {
    let text = desc.digest().to_string();
    text.parse().map_err(|_| ImageError::BadDigest {
        digest: holder.to_string(),
        value: text,
    })
}

/// A single-platform image resolved in a store.
#[derive(Debug, Clone)]
pub struct Image {
    /// The digest of the manifest (not of an index above it).
    pub manifest_digest: Digest,
    /// The manifest's media type.
    pub manifest_media_type: String,
    /// The manifest's size in bytes.
    pub manifest_size: u64,
    /// The parsed manifest.
    pub manifest: ImageManifest,
    /// The parsed config.
    pub config: ImageConfiguration,
    /// The digest of the config blob.
    pub config_digest: Digest,
}

impl Image {
    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform::new(
            &self.config.os().to_string(),
            &self.config.architecture().to_string(),
            self.config.variant().as_deref().unwrap_or(""),
        )
    }

    /// The layer digests, base first.
    ///
    /// # Errors
    /// A layer descriptor with a digest kiln does not accept.
    pub fn layer_digests(&self) -> Result<Vec<Digest>> {
        self.manifest
            .layers()
            .iter()
            .map(|l| descriptor_digest(l, self.manifest_digest.as_str()))
            .collect()
    }
}

/// The largest manifest or index kiln reads (containerd's limit).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;
/// The largest image config kiln reads.
pub const MAX_CONFIG_SIZE: u64 = 8 << 20;

/// Refuses a descriptor or blob size above `limit`.
///
/// # Errors
/// [`ImageError::TooLarge`].
pub fn check_size(what: &'static str, digest: &str, size: u64, limit: u64) -> Result<()> {
    if size > limit {
        return Err(ImageError::TooLarge {
            what,
            digest: digest.to_string(),
            size,
            limit,
        });
    }
    Ok(())
}

/// Reads a small blob (a manifest, index or config) whole, refusing one
/// above `limit` before reading it.
fn read_small(
    store: &dyn BlobReader,
    what: &'static str,
    digest: &Digest,
    limit: u64,
) -> Result<Vec<u8>> {
    let size = store
        .size(digest)
        .ok_or_else(|| StoreError::NotFound(digest.clone()))?;
    check_size(what, digest.as_str(), size, limit)?;
    Ok(store.read(digest)?)
}

/// True for the config media types of runnable images.
pub fn is_image_config(media_type: &str) -> bool {
    media_type == media::OCI_CONFIG || media_type == media::DOCKER_CONFIG
}

/// Checks that the image manifest `manifest` (stored as `digest`) and its
/// config, both in `store`, make a valid image: every descriptor's size is
/// its blob's (for blobs present in the store), the config is an image
/// config of at most [`MAX_CONFIG_SIZE`] that parses, the layers have
/// layer media types, and there is one `rootfs.diff_ids` entry (a valid
/// digest) per layer. Each error names the field at fault.
///
/// # Errors
/// [`ImageError::SizeMismatch`], [`ImageError::TooLarge`],
/// [`ImageError::Json`], [`ImageError::Inconsistent`].
pub fn validate_image(
    store: &dyn BlobReader,
    digest: &Digest,
    manifest: &ImageManifest,
) -> Result<()> {
    let holder = digest.as_str();
    let bad = |field: String, message: String| ImageError::Inconsistent {
        digest: holder.to_string(),
        field,
        message,
    };
    let config_desc = manifest.config();
    let config_type = config_desc.media_type().to_string();
    if !is_image_config(&config_type) {
        return Err(bad(
            "config.mediaType".into(),
            format!("{config_type:?} is not an image config"),
        ));
    }
    let config_digest = descriptor_digest(config_desc, holder)?;
    check_size(
        "config",
        config_digest.as_str(),
        config_desc.size(),
        MAX_CONFIG_SIZE,
    )?;
    check_blob_size(
        store,
        "config.size",
        holder,
        &config_digest,
        config_desc.size(),
    )?;
    let bytes = read_small(store, "config", &config_digest, MAX_CONFIG_SIZE)?;
    let json_err = |source| ImageError::Json {
        what: "config",
        digest: config_digest.to_string(),
        source,
    };
    let config: ImageConfiguration = serde_json::from_slice(&bytes).map_err(json_err)?;
    crate::ImageConfig::from_slice(&bytes).map_err(json_err)?;
    for (i, layer) in manifest.layers().iter().enumerate() {
        let layer_type = layer.media_type().to_string();
        if media::LayerCompression::of_media_type(&layer_type).is_none() {
            return Err(bad(
                format!("layers[{i}].mediaType"),
                format!("{layer_type:?} is not a layer media type"),
            ));
        }
        let d = descriptor_digest(layer, holder)?;
        check_blob_size(
            store,
            &format!("layers[{i}].size"),
            holder,
            &d,
            layer.size(),
        )?;
    }
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(bad(
            "rootfs.diff_ids".into(),
            format!(
                "the config lists {} diff_ids for the manifest's {} layers",
                diff_ids.len(),
                manifest.layers().len()
            ),
        ));
    }
    for (i, d) in diff_ids.iter().enumerate() {
        if d.parse::<Digest>().is_err() {
            return Err(bad(
                format!("rootfs.diff_ids[{i}]"),
                format!("{d:?} is not a digest"),
            ));
        }
    }
    Ok(())
}

/// Checks a descriptor's size against its blob, when the store has it.
///
/// # Errors
/// [`ImageError::SizeMismatch`] naming `field`.
pub fn check_blob_size(
    store: &dyn BlobReader,
    field: &str,
    holder: &str,
    digest: &Digest,
    claimed: u64,
) -> Result<()> {
    match store.size(digest) {
        Some(actual) if actual != claimed => Err(ImageError::SizeMismatch {
            field: field.to_string(),
            holder: holder.to_string(),
            digest: digest.to_string(),
            claimed,
            actual,
        }),
        _ => Ok(()),
    }
}

/// Reads and parses the manifest or index stored under `digest` (at most
/// [`MAX_MANIFEST_SIZE`] bytes).
///
/// # Errors
/// A missing blob, one too large, or invalid content.
pub fn read_manifest(store: &dyn BlobReader, digest: &Digest) -> Result<(Manifest, u64)> {
    let bytes = read_small(store, "manifest", digest, MAX_MANIFEST_SIZE)?;
    let m = Manifest::from_slice(&bytes, None, digest.as_str())?;
    Ok((m, bytes.len() as u64))
}

/// Resolves `digest` (a manifest, or an index to select from) to the image
/// for `platform`.
///
/// # Errors
/// Missing blobs, invalid JSON, or no manifest for the platform.
pub fn resolve(store: &dyn BlobReader, digest: &Digest, platform: &Platform) -> Result<Image> {
    let mut current = digest.clone();
    for _ in 0..8 {
        let (manifest, size) = read_manifest(store, &current)?;
        match manifest {
            Manifest::Index(index) => {
                let desc = select_platform(&index, platform, current.as_str())?;
                current = descriptor_digest(desc, current.as_str())?;
            }
            Manifest::Image(m) => {
                let media_type = Manifest::Image(m.clone()).media_type();
                let config_digest = descriptor_digest(m.config(), current.as_str())?;
                let config_bytes = read_small(store, "config", &config_digest, MAX_CONFIG_SIZE)?;
                let config: ImageConfiguration =
                    serde_json::from_slice(&config_bytes).map_err(|source| ImageError::Json {
                        what: "config",
                        digest: config_digest.to_string(),
                        source,
                    })?;
                return Ok(Image {
                    manifest_digest: current,
                    manifest_media_type: media_type,
                    manifest_size: size,
                    manifest: m,
                    config,
                    config_digest,
                });
            }
        }
    }
    Err(ImageError::TooDeep(digest.to_string()))
}

/// Every blob reachable from `root` that is in the store: the root, and
/// recursively the children of manifests and indexes. Children of an index
/// that are absent (platforms that were not pulled) are skipped; an absent
/// config or layer of a present manifest is an error.
///
/// # Errors
/// Missing required blobs or invalid manifests.
pub fn reachable(store: &dyn BlobReader, root: &Digest) -> Result<BTreeSet<Digest>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![(root.clone(), true, 0usize)];
    while let Some((digest, required, depth)) = stack.pop() {
        if seen.contains(&digest) {
            continue;
        }
        if !store.exists(&digest) {
            if required {
                return Err(StoreError::NotFound(digest).into());
            }
            continue;
        }
        seen.insert(digest.clone());
        if depth > 8 {
            return Err(ImageError::TooDeep(root.to_string()));
        }
        let (manifest, _) = read_manifest(store, &digest)?;
        let is_index = matches!(manifest, Manifest::Index(_));
        for child in manifest.children() {
            let d = descriptor_digest(child, digest.as_str())?;
            let child_type = child.media_type().to_string();
            if media::is_manifest(&child_type) || media::is_index(&child_type) {
                stack.push((d, !is_index, depth + 1));
            } else {
                if !store.exists(&d) {
                    return Err(StoreError::NotFound(d).into());
                }
                seen.insert(d);
            }
        }
    }
    Ok(seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_LIST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
      "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
         "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
         "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
         "platform": {"architecture": "arm", "os": "linux", "variant": "v6"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
         "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
         "platform": {"architecture": "arm", "os": "linux", "variant": "v7"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
         "digest": "sha256:4444444444444444444444444444444444444444444444444444444444444444",
         "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
      ]}"#;

    const DOCKER_MANIFEST: &str = r#"{
      "schemaVersion": 2,
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469,
        "digest": "sha256:5555555555555555555555555555555555555555555555555555555555555555"},
      "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2,
        "digest": "sha256:6666666666666666666666666666666666666666666666666666666666666666"}]}"#;

    fn digest_of(d: &Descriptor) -> String {
        d.digest().to_string()
    }

    #[test]
    fn reads_docker_list_and_selects_platforms() {
        let m = Manifest::from_slice(DOCKER_LIST.as_bytes(), None, "x").expect("parses");
        assert_eq!(m.media_type(), media::DOCKER_MANIFEST_LIST);
        let Manifest::Index(index) = m else {
            panic!("an index")
        };
        let pick = |p: &str| {
            select_platform(&index, &p.parse().expect("platform"), "x")
                .map(|d| digest_of(d)[7..8].to_string())
        };
        assert_eq!(pick("linux/amd64").ok().as_deref(), Some("1"));
        assert_eq!(pick("linux/arm/v7").ok().as_deref(), Some("3"));
        assert_eq!(pick("linux/arm/v6").ok().as_deref(), Some("2"));
        assert_eq!(pick("linux/arm64").ok().as_deref(), Some("4"));
        let err = pick("linux/s390x").expect_err("no s390x");
        assert!(
            err.to_string().contains("linux/amd64, linux/arm/v6"),
            "{err}"
        );
    }

    #[test]
    fn reads_docker_manifest() {
        let m = Manifest::from_slice(DOCKER_MANIFEST.as_bytes(), None, "x").expect("parses");
        assert_eq!(m.media_type(), media::DOCKER_MANIFEST);
        assert_eq!(m.children().len(), 2);
    }

    #[test]
    fn kind_from_content_type_or_shape() {
        let bare = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            Manifest::from_slice(bare.as_bytes(), None, "x"),
            Ok(Manifest::Index(_))
        ));
        let bare = r#"{"schemaVersion":2,"config":{"mediaType":"a/b","size":1,"digest":"sha256:5555555555555555555555555555555555555555555555555555555555555555"},"layers":[]}"#;
        let m = Manifest::from_slice(bare.as_bytes(), Some(media::DOCKER_MANIFEST), "x")
            .expect("parses");
        assert!(matches!(m, Manifest::Image(_)));
    }

    #[test]
    fn refuses_schema1_and_other_types() {
        let s1 = r#"{"schemaVersion":1,"name":"a","tag":"b","fsLayers":[]}"#;
        assert!(matches!(
            Manifest::from_slice(s1.as_bytes(), None, "x"),
            Err(ImageError::Schema1 { .. })
        ));
        let other = r#"{"mediaType":"application/vnd.cncf.helm.config.v1+json"}"#;
        let err = Manifest::from_slice(other.as_bytes(), None, "x").expect_err("refused");
        assert!(err.to_string().contains("helm"), "{err}");
        assert!(Manifest::from_slice(b"{", None, "x").is_err());
    }
}
