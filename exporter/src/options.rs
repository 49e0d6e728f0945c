//! How an image output writes the image.

use kiln_oci::Compression;

/// How an image output writes the image: buildx's image output options
/// (`compression`, `compression-level`, `force-compression`,
/// `oci-mediatypes`, `rewrite-timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageOptions {
    /// The compression of layers made by the build (and of every layer
    /// with `force_compression`).
    pub compression: Compression,
    /// Keep the layers as the build made them (new layers are stored
    /// uncompressed): the local image store's image when no compression
    /// was asked for, as Docker's store keeps layers until a push.
    /// `compression` is then not used.
    pub keep_layers: bool,
    /// Recompress base image layers too.
    pub force_compression: bool,
    /// OCI media types (the default) or Docker's.
    pub oci_mediatypes: bool,
    /// Clamp the file times of layers made by the build to
    /// [`BuiltImage::epoch`](crate::BuiltImage::epoch)
    /// (`SOURCE_DATE_EPOCH`), for reproducible digests.
    pub rewrite_timestamp: bool,
}

impl Default for ImageOptions {
    fn default() -> ImageOptions {
        ImageOptions {
            compression: Compression::default(),
            keep_layers: false,
            force_compression: false,
            oci_mediatypes: true,
            rewrite_timestamp: false,
        }
    }
}

impl ImageOptions {
    /// The options of the local image store's image (`-t` alone,
    /// `type=image` without `compression=` or `push=true`): layers kept
    /// as built.
    pub fn local() -> ImageOptions {
        ImageOptions {
            keep_layers: true,
            ..ImageOptions::default()
        }
    }
}
