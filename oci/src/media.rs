//! Media types of both families kiln reads: OCI and Docker schema 2.
//!
//! kiln writes OCI media types by default and Docker's on request
//! ([`MediaFamily`]); it reads either everywhere.

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Docker uncompressed layer (as some tools write it).
pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Docker foreign (non-distributable) gzip layer.
pub const DOCKER_LAYER_FOREIGN: &str = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
/// Docker schema 1 signed manifest, which kiln refuses.
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
/// Docker schema 1 manifest, which kiln refuses.
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// The `Accept` header value for manifest requests: every manifest and
/// index type kiln reads.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Which family of media types to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MediaFamily {
    /// OCI image-spec types (the default).
    #[default]
    Oci,
    /// Docker image-manifest v2 schema 2 types.
    Docker,
}

impl MediaFamily {
    /// The manifest media type of this family.
    pub fn manifest(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_MANIFEST,
            MediaFamily::Docker => DOCKER_MANIFEST,
        }
    }

    /// The index (manifest list) media type of this family.
    pub fn index(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_INDEX,
            MediaFamily::Docker => DOCKER_MANIFEST_LIST,
        }
    }

    /// The config media type of this family.
    pub fn config(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_CONFIG,
            MediaFamily::Docker => DOCKER_CONFIG,
        }
    }

    /// The layer media type of this family for a compression.
    pub fn layer(self, compression: LayerCompression) -> &'static str {
        match (self, compression) {
            (MediaFamily::Oci, LayerCompression::None) => OCI_LAYER_TAR,
            (MediaFamily::Oci, LayerCompression::Gzip) => OCI_LAYER_GZIP,
            (MediaFamily::Oci, LayerCompression::Zstd) => OCI_LAYER_ZSTD,
            (MediaFamily::Docker, LayerCompression::None) => DOCKER_LAYER_TAR,
            (MediaFamily::Docker, LayerCompression::Gzip) => DOCKER_LAYER_GZIP,
            // Docker has no zstd type of its own; the OCI one is what
            // Docker's tools write.
            (MediaFamily::Docker, LayerCompression::Zstd) => OCI_LAYER_ZSTD,
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerCompression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

impl LayerCompression {
    /// The compression a layer media type declares, if it is a layer type
    /// kiln knows.
    pub fn of_media_type(media_type: &str) -> Option<LayerCompression> {
        match media_type {
            OCI_LAYER_TAR
            | DOCKER_LAYER_TAR
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => {
                Some(LayerCompression::None)
            }
            OCI_LAYER_GZIP
            | DOCKER_LAYER_GZIP
            | DOCKER_LAYER_FOREIGN
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
                Some(LayerCompression::Gzip)
            }
            OCI_LAYER_ZSTD | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Some(LayerCompression::Zstd)
            }
            _ => None,
        }
    }

    /// The compression of a blob, from its first bytes.
    pub fn detect(head: &[u8]) -> LayerCompression {
        if head.starts_with(&[0x1f, 0x8b]) {
            LayerCompression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            LayerCompression::Zstd
        } else {
            LayerCompression::None
        }
    }
}

/// True for the manifest media types of both families.
pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// True for the index media types of both families.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Maps a media type to the same kind in another family; types without a
/// counterpart are returned unchanged.
pub fn convert(media_type: &str, to: MediaFamily) -> &str {
    if is_manifest(media_type) {
        return to.manifest();
    }
    if is_index(media_type) {
        return to.index();
    }
    if media_type == OCI_CONFIG || media_type == DOCKER_CONFIG {
        return to.config();
    }
    match LayerCompression::of_media_type(media_type) {
        Some(c)
            if media_type != DOCKER_LAYER_FOREIGN && !media_type.contains("nondistributable") =>
        {
            to.layer(c)
        }
        _ => media_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(convert(DOCKER_MANIFEST, MediaFamily::Oci), OCI_MANIFEST);
        assert_eq!(
            convert(OCI_INDEX, MediaFamily::Docker),
            DOCKER_MANIFEST_LIST
        );
        assert_eq!(
            convert(OCI_LAYER_GZIP, MediaFamily::Docker),
            DOCKER_LAYER_GZIP
        );
        assert_eq!(convert(DOCKER_CONFIG, MediaFamily::Oci), OCI_CONFIG);
        assert_eq!(
            convert(DOCKER_LAYER_FOREIGN, MediaFamily::Oci),
            DOCKER_LAYER_FOREIGN
        );
        assert_eq!(convert("text/plain", MediaFamily::Oci), "text/plain");
    }

    #[test]
    fn detect_compression() {
        assert_eq!(
            LayerCompression::detect(&[0x1f, 0x8b, 8]),
            LayerCompression::Gzip
        );
        assert_eq!(
            LayerCompression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            LayerCompression::Zstd
        );
        assert_eq!(LayerCompression::detect(b"etc/"), LayerCompression::None);
    }
}
