//! The one way commands that look at an image (`kiln history`, `dive`,
//! `diff`) open the image a user names, wherever it is:
//!
//! - `NAME` or a digest (or a unique digest prefix): the store;
//! - `docker://REF`, or any reference with `--remote`: a registry, read
//!   without pulling the image (its manifest and config go into the
//!   store's blob cache; layers only when one is read);
//! - `oci-layout://DIR[:TAG|@DIGEST]`: an OCI layout, as in
//!   `--build-context`;
//! - `docker-archive://FILE` or `oci-archive://FILE`: a `docker save`
//!   tarball or an OCI layout tar (dive's spellings).
//!
//! Layouts and archives are loaded into the store's blobs, unnamed (a
//! later `kiln prune` removes them); their images are never tagged.

use super::image::{lookup, pick_image};
use crate::global::{runtime, GlobalArgs};
use anyhow::{bail, Context, Result};
use kiln_oci::oci_spec::image::{Descriptor, ImageIndex};
use kiln_oci::{
    BlobReader, Digest, LocalStore, Manifest, Platform, Reference, RegistryClient, VerifiedReader,
};
use std::io::{BufReader, Read};
use std::path::PathBuf;

/// Where an image argument points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageArg {
    /// A name or digest in the store.
    Store(String),
    /// A reference in a registry.
    Remote(Reference),
    /// An OCI layout directory: `DIR[:TAG|@DIGEST]`.
    Layout(String),
    /// A docker-archive or OCI layout tar.
    Archive(PathBuf),
}

impl ImageArg {
    /// Reads an image argument; `remote` (the `--remote` flag) makes a
    /// plain name a registry reference.
    ///
    /// # Errors
    /// An empty path, or an invalid reference for a registry.
    pub fn parse(text: &str, remote: bool) -> Result<ImageArg> {
        let registry = |r: &str| {
            Reference::parse(r)
                .map(ImageArg::Remote)
                .with_context(|| format!("invalid image reference {r:?}"))
        };
        if let Some(r) = text.strip_prefix("docker://") {
            return registry(r);
        }
        if let Some(dir) = text.strip_prefix("oci-layout://") {
            if dir.is_empty() {
                bail!("{text}: no directory after oci-layout://");
            }
            return Ok(ImageArg::Layout(dir.to_string()));
        }
        for scheme in ["docker-archive://", "oci-archive://"] {
            if let Some(file) = text.strip_prefix(scheme) {
                if file.is_empty() {
                    bail!("{text}: no file after {scheme}");
                }
                return Ok(ImageArg::Archive(PathBuf::from(file)));
            }
        }
        if remote {
            return registry(text);
        }
        Ok(ImageArg::Store(text.to_string()))
    }
}

/// One layer of an opened image, from its manifest.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// The uncompressed tar's digest, from the config (`None` when the
    /// config lists fewer layers than the manifest).
    pub diff_id: Option<Digest>,
    /// The blob's size as the manifest gives it (compressed).
    pub size: u64,
}

/// An image opened for reading: its manifest and config, no layer yet.
pub struct OpenedImage {
    /// The argument as the user gave it.
    pub name: String,
    /// The manifest and config (with their digests) as the OCI types.
    pub image: kiln_oci::Image,
    /// The layers, bottom first.
    pub layers: Vec<LayerInfo>,
    /// The store the image's blobs are read from.
    store: LocalStore,
    /// Where layers come from when the store lacks them.
    remote: Option<Registry>,
}

/// A registry an image is read from, with the client and runtime its
/// layer downloads share.
struct Registry {
    reference: Reference,
    client: RegistryClient,
    rt: tokio::runtime::Runtime,
}

/// Opens the image `arg` names for `platform` (default: the host's, or
/// else the first an index lists).
///
/// # Errors
/// No such image, an unreachable registry, an unreadable layout or
/// archive, an invalid manifest or config.
pub fn open(global: &GlobalArgs, arg: &ImageArg, platform: Option<&str>) -> Result<OpenedImage> {
    let store = global.store()?;
    let wanted: Option<Platform> = platform
        .map(|p| p.parse().context("--platform"))
        .transpose()?;
    let platform_text = platform.map(str::to_string);
    let (name, image, remote) = match arg {
        ImageArg::Store(text) => {
            let (_, digest) = lookup(&store, text)?;
            (
                text.clone(),
                pick_image(&store, &digest, &platform_text)?,
                None,
            )
        }
        ImageArg::Layout(layout) => {
            let name = format!("oci-layout://{layout}");
            let digest = kiln_oci::resolve::layout_image(&store, layout)?;
            let image =
                pick_image(&store, &digest, &platform_text).with_context(|| name.clone())?;
            (name, image, None)
        }
        ImageArg::Archive(file) => {
            let name = file.display().to_string();
            let loaded =
                kiln_oci::archive::load(&store, file).with_context(|| format!("reading {name}"))?;
            let digest = match loaded.as_slice() {
                [one] => one.digest.clone(),
                [] => bail!("{name}: the archive holds no image"),
                many => bail!(
                    "{name}: the archive holds {} images ({}); kiln load it and name one",
                    many.len(),
                    many.iter()
                        .map(|l| l.name.clone().unwrap_or_else(|| l.digest.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            let image =
                pick_image(&store, &digest, &platform_text).with_context(|| name.clone())?;
            (name, image, None)
        }
        ImageArg::Remote(reference) => {
            let registry = Registry {
                reference: reference.clone(),
                client: global.registry()?,
                rt: runtime()?,
            };
            let image = fetch_remote(&registry, &store, wanted.as_ref())
                .with_context(|| format!("reading {reference} from its registry"))?;
            (reference.to_string(), image, Some(registry))
        }
    };
    let diff_ids = image.config.rootfs().diff_ids();
    let mut layers = Vec::new();
    for (i, desc) in image.manifest.layers().iter().enumerate() {
        layers.push(LayerInfo {
            digest: kiln_oci::descriptor_digest(desc, image.manifest_digest.as_str())?,
            diff_id: diff_ids.get(i).and_then(|d| d.parse().ok()),
            size: desc.size(),
        });
    }
    Ok(OpenedImage {
        name,
        image,
        layers,
        store,
        remote,
    })
}

impl OpenedImage {
    /// The uncompressed tar of layer `index` (bottom first), checked
    /// against its diff id as it is read: read it to the end before
    /// trusting what came out. A remote image's layer is downloaded into
    /// the store first (verified against its digest).
    ///
    /// # Errors
    /// No such layer, a failed download, an unreadable blob.
    pub fn layer_tar(&self, index: usize) -> Result<Box<dyn Read + Send>> {
        let layer = self
            .layers
            .get(index)
            .with_context(|| format!("{}: no layer {index}", self.name))?;
        let store = &self.store;
        if let Some(r) = &self.remote {
            if !store.exists(&layer.digest) {
                r.rt.block_on(
                    r.client
                        .fetch_blob(&r.reference, &layer.digest, layer.size, store),
                )
                .with_context(|| format!("downloading layer {}", layer.digest))?;
            }
        }
        let file = store
            .open(&layer.digest)
            .with_context(|| format!("{}: layer {}", self.name, layer.digest))?;
        let tar = kiln_oci::compress::decompressor(BufReader::with_capacity(1 << 20, file))
            .with_context(|| format!("{}: layer {}", self.name, layer.digest))?;
        Ok(match &layer.diff_id {
            Some(diff_id) => Box::new(VerifiedReader::new(tar, diff_id.clone())),
            None => tar,
        })
    }
}

/// Reads `reference`'s manifest for `platform` and its config into the
/// store's blobs (not its layers, not its names) and resolves it there.
fn fetch_remote(
    registry: &Registry,
    store: &LocalStore,
    platform: Option<&Platform>,
) -> Result<kiln_oci::Image> {
    let Registry {
        reference,
        client,
        rt,
    } = registry;
    let host = Platform::host();
    let mut fetched = rt.block_on(client.fetch_manifest(reference))?;
    let top = store.write_blob(&fetched.bytes, Some(&fetched.digest))?;
    let mut chosen = platform.cloned().unwrap_or_else(|| host.clone());
    // Indexes may nest; a hostile registry may nest them forever.
    for _ in 0..8 {
        let Manifest::Index(index) = &fetched.manifest else {
            break;
        };
        let desc = pick_descriptor(index, platform, &host, fetched.digest.as_str())?;
        if let Some(p) = desc.platform() {
            chosen = Platform::from_oci(p);
        }
        let child = kiln_oci::descriptor_digest(desc, fetched.digest.as_str())?;
        let by_digest = Reference::parse(&format!("{}@{child}", reference.name()))?;
        fetched = rt.block_on(client.fetch_manifest(&by_digest))?;
        store.write_blob(&fetched.bytes, Some(&fetched.digest))?;
    }
    let Manifest::Image(manifest) = &fetched.manifest else {
        bail!("indexes nest more than 8 deep");
    };
    let config = kiln_oci::descriptor_digest(manifest.config(), fetched.digest.as_str())?;
    kiln_oci::check_size(
        "config",
        config.as_str(),
        manifest.config().size(),
        kiln_oci::MAX_CONFIG_SIZE,
    )?;
    rt.block_on(client.fetch_blob(reference, &config, manifest.config().size(), store))?;
    Ok(kiln_oci::resolve(store, &top, &chosen)?)
}

/// The index entry for `platform`; without one asked for, the host's or
/// else the first image (as `pick_image` does in the store).
fn pick_descriptor<'a>(
    index: &'a ImageIndex,
    platform: Option<&Platform>,
    host: &Platform,
    holder: &str,
) -> Result<&'a Descriptor> {
    if let Some(p) = platform {
        return Ok(kiln_oci::select_platform(index, p, holder)?);
    }
    if let Ok(d) = kiln_oci::select_platform(index, host, holder) {
        return Ok(d);
    }
    index
        .manifests()
        .iter()
        .find(|d| !kiln_oci::is_attestation(d))
        .with_context(|| format!("{holder}: the index lists no image"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_name_their_source() {
        assert_eq!(
            ImageArg::parse("app:1", false).unwrap(),
            ImageArg::Store("app:1".into())
        );
        assert!(matches!(
            ImageArg::parse("app:1", true).unwrap(),
            ImageArg::Remote(r) if r.to_string() == "docker.io/library/app:1"
        ));
        assert!(matches!(
            ImageArg::parse("docker://127.0.0.1:5000/a:b", false).unwrap(),
            ImageArg::Remote(r) if r.to_string() == "127.0.0.1:5000/a:b"
        ));
        assert_eq!(
            ImageArg::parse("oci-layout://dir/base:1", false).unwrap(),
            ImageArg::Layout("dir/base:1".into())
        );
        assert_eq!(
            ImageArg::parse("docker-archive:///tmp/a.tar", false).unwrap(),
            ImageArg::Archive("/tmp/a.tar".into())
        );
        assert!(ImageArg::parse("oci-layout://", false).is_err());
        assert!(ImageArg::parse("docker://UPPER/Case", false).is_err());
    }
}
