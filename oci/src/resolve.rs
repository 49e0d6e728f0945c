//! From an image reference to what a build or a linter needs of a base
//! image before any layer: the digest of the image manifest for a
//! platform and the image's config. Looked up by name in the local store
//! ([`stored_config`]), under a digest the store holds ([`config_of`]), or
//! in an OCI layout loaded into the store ([`layout_config`]); a
//! registry gives the same through [`RegistryClient::fetch_config`]
//! (config only) or [`RegistryClient::pull`] then [`config_of`].
//!
//! [`RegistryClient::fetch_config`]: crate::RegistryClient::fetch_config
//! [`RegistryClient::pull`]: crate::RegistryClient::pull

use crate::archive::ArchiveError;
use crate::StoreError;
use crate::{BlobReader, Digest, ImageConfig, ImageError, LocalStore, Platform, Reference};
use std::path::Path;

/// An image for one platform: its manifest digest and its config.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    /// The digest of the image manifest for the platform asked for (not
    /// of an index above it).
    pub manifest: Digest,
    /// The config, verified against its digest.
    pub config: ImageConfig,
}

/// Why an image's config cannot be had. `name` is the reference or the
/// `oci-layout://` text it was asked for by.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResolveError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The manifest (or the index above it) is missing, invalid or has
    /// nothing for the platform.
    #[error("{name}: {error}")]
    Image {
        /// What was asked for.
        name: String,
        /// Why.
        error: Box<ImageError>,
    },
    /// The config blob is not an image config.
    #[error("{name}: config: {error}")]
    Config {
        /// What was asked for.
        name: String,
        /// Why.
        error: serde_json::Error,
    },
    /// The OCI layout cannot be loaded.
    #[error(transparent)]
    Layout(#[from] ArchiveError),
    /// The OCI layout holds no image the tag or digest names.
    #[error("oci-layout://{0}: no matching image in the layout")]
    NoMatch(String),
}

/// The image `digest` names in `store` (a manifest, or an index to pick
/// `platform` from), with its config; `name` is for messages.
///
/// # Errors
/// [`ResolveError::Image`] for a missing or invalid manifest, or no
/// manifest for the platform; [`ResolveError::Store`] for a config that
/// cannot be read; [`ResolveError::Config`] for one that does not parse.
pub fn config_of(
    store: &dyn BlobReader,
    name: &str,
    digest: &Digest,
    platform: &Platform,
) -> Result<ResolvedConfig, ResolveError> {
    let image = crate::resolve(store, digest, platform).map_err(|error| ResolveError::Image {
        name: name.to_string(),
        error: Box::new(error),
    })?;
    let bytes = store.read(&image.config_digest)?;
    let config = ImageConfig::from_slice(&bytes).map_err(|error| ResolveError::Config {
        name: name.to_string(),
        error,
    })?;
    Ok(ResolvedConfig {
        manifest: image.manifest_digest,
        config,
    })
}

/// The image the store names `reference`, for `platform`, or `None` when
/// the store has no such name.
///
/// # Errors
/// As [`config_of`], for a name the store has.
pub fn stored_config(
    store: &LocalStore,
    reference: &Reference,
    platform: &Platform,
) -> Result<Option<ResolvedConfig>, ResolveError> {
    let name = reference.to_string();
    match store.get_ref(&name)? {
        Some(digest) => config_of(store, &name, &digest, platform).map(Some),
        None => Ok(None),
    }
}

/// The image of an OCI layout (`PATH[:TAG|@DIGEST]`, as in
/// `--build-context NAME=oci-layout://...`) for `platform`, loaded into
/// `store`. Without a tag or digest the layout's only image, or the one
/// tagged `latest`.
///
/// # Errors
/// A layout that cannot be loaded, [`ResolveError::NoMatch`], or as
/// [`config_of`].
pub fn layout_config(
    store: &LocalStore,
    layout: &str,
    platform: &Platform,
) -> Result<ResolvedConfig, ResolveError> {
    let digest = layout_image(store, layout)?;
    config_of(store, &format!("oci-layout://{layout}"), &digest, platform)
}

/// The manifest or index digest of an OCI layout's image
/// (`PATH[:TAG|@DIGEST]`), its images loaded into `store`. Without a tag
/// or digest the layout's only image, or the one tagged `latest`.
///
/// # Errors
/// A layout that cannot be loaded, or [`ResolveError::NoMatch`].
pub fn layout_image(store: &LocalStore, layout: &str) -> Result<Digest, ResolveError> {
    let (path, tag, digest) = split_layout(layout);
    let loaded = crate::archive::load(store, Path::new(path))?;
    let pick = loaded.iter().find(|l| match (tag, digest) {
        (_, Some(d)) => l.digest.as_str() == d,
        (Some(t), None) => l
            .name
            .as_deref()
            .is_some_and(|n| n == t || n.ends_with(&format!(":{t}"))),
        (None, None) => loaded.len() == 1 || l.name.as_deref() == Some("latest"),
    });
    pick.map(|l| l.digest.clone())
        .ok_or_else(|| ResolveError::NoMatch(layout.to_string()))
}

/// Splits `PATH[:TAG|@DIGEST]`.
fn split_layout(layout: &str) -> (&str, Option<&str>, Option<&str>) {
    if let Some((path, digest)) = layout.rsplit_once('@') {
        return (path, None, Some(digest));
    }
    match layout.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') && !path.is_empty() => (path, Some(tag), None),
        _ => (layout, None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_text_splits_into_path_tag_and_digest() {
        assert_eq!(split_layout("dir/base"), ("dir/base", None, None));
        assert_eq!(split_layout("dir/base:1"), ("dir/base", Some("1"), None));
        assert_eq!(
            split_layout("dir/base@sha256:ab"),
            ("dir/base", None, Some("sha256:ab"))
        );
        assert_eq!(split_layout("a:b/c"), ("a:b/c", None, None));
        assert_eq!(split_layout(":1"), (":1", None, None));
    }
}
