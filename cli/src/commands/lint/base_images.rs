//! The base images `kiln lint` knows about: the FROM images of the files
//! being linted, looked up in the image store (without creating one) and,
//! with `--pull`, fetched from their registries (configs only, no layers).
//! They make BuildKit's UndefinedVar exact and feed
//! InvalidBaseImagePlatform.

use crate::global::GlobalArgs;
use anyhow::Result;
use kiln_lint::{base_refs, BaseImage, BaseImages, BaseRef};
use kiln_oci::resolve::stored_config;
use kiln_oci::{ImageConfig, LocalStore, Platform, Reference, RegistryClient};
use std::collections::BTreeSet;

/// Where base images may be looked up.
pub struct Lookup<'a> {
    /// The global options (store root, registry settings).
    pub global: &'a GlobalArgs,
    /// The platform the build targets.
    pub target: Platform,
    /// Also ask registries for images the store does not have.
    pub pull: bool,
    /// Say on stderr where each image came from.
    pub verbose: bool,
}

/// Resolves the base images of every source in `sources`. What cannot be
/// resolved is left out (the checks then know nothing of that image);
/// with `--pull`, why is said on stderr.
pub fn resolve(lookup: &Lookup<'_>, sources: &[&str]) -> Result<BaseImages> {
    let mut images = BaseImages::new(lookup.target.to_string(), Platform::host().to_string());
    let store = existing_store(lookup.global)?;
    if store.is_none() && !lookup.pull {
        // Nowhere to look (hadolint's situation in CI): skip reading the
        // FROM lines at all.
        if lookup.verbose {
            eprintln!("kiln: lint: no image store; base images are not known (--pull asks their registries)");
        }
        return Ok(images);
    }
    let wanted: BTreeSet<(String, String)> = sources
        .iter()
        .flat_map(|s| base_refs(s, &images))
        .map(|r| (r.image, r.platform))
        .collect();
    if wanted.is_empty() {
        return Ok(images);
    }
    let mut registry: Option<(RegistryClient, tokio::runtime::Runtime)> = None;
    for (image, platform) in wanted {
        let base = BaseRef {
            image,
            platform,
            line: 0,
        };
        let (Ok(reference), Ok(platform)) = (
            Reference::parse(&base.image),
            base.platform.parse::<Platform>(),
        ) else {
            // InvalidDefaultArgInFrom and the parser report bad names.
            continue;
        };
        let from_store = store
            .as_ref()
            .and_then(|s| stored_config(s, &reference, &platform).ok().flatten())
            .map(|found| found.config);
        let found = match from_store {
            Some(config) => Some((config, "the store")),
            None if lookup.pull => {
                if registry.is_none() {
                    registry = Some((lookup.global.registry()?, crate::global::runtime()?));
                }
                let Some((client, runtime)) = &registry else {
                    continue;
                };
                match runtime.block_on(client.fetch_config(&reference, &platform)) {
                    Ok(fetched) => Some((fetched.config, "its registry")),
                    Err(err) => {
                        eprintln!(
                            "kiln: lint: base image {} ({}): {:#}; UndefinedVar and \
                             InvalidBaseImagePlatform know nothing of it",
                            base.image,
                            base.platform,
                            anyhow::Error::from(err)
                        );
                        None
                    }
                }
            }
            None => None,
        };
        match found {
            Some((config, source)) => {
                if lookup.verbose {
                    eprintln!(
                        "kiln: lint: base image {} ({}) read from {source}",
                        base.image, base.platform
                    );
                }
                images.insert(&base, base_image(&config));
            }
            None if lookup.verbose => eprintln!(
                "kiln: lint: base image {} ({}) not found{}",
                base.image,
                base.platform,
                if lookup.pull {
                    ""
                } else {
                    " in the store (--pull asks its registry)"
                }
            ),
            None => {}
        }
    }
    Ok(images)
}

/// The store, if it exists: linting never creates one.
fn existing_store(global: &GlobalArgs) -> Result<Option<LocalStore>> {
    let layout = global
        .root
        .clone()
        .or_else(kiln_oci::default_root)
        .map(kiln_oci::StoreLayout::new);
    match layout {
        Some(layout) if layout.blobs().is_dir() => global.store().map(Some),
        _ => Ok(None),
    }
}

/// What the checks need of a config: its ENV names and its platform.
pub(super) fn base_image(config: &ImageConfig) -> BaseImage {
    let env = config
        .config
        .env
        .iter()
        .flatten()
        .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string())
        .collect();
    let platform = match config.variant.as_deref() {
        Some(v) if !v.is_empty() => format!("{}/{}/{v}", config.os, config.architecture),
        _ => format!("{}/{}", config.os, config.architecture),
    };
    BaseImage { env, platform }
}
