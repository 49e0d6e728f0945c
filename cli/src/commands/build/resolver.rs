//! How `kiln build` resolves FROM images: the local store first, pulling
//! what is missing, and OCI layouts given as named contexts; it remembers
//! what it resolved for BuildKit's checks.

use super::checks;
use kiln_oci::{BlobReader, LocalStore, Platform, Reference, RegistryClient};
use kiln_solver::{ImageResolver, ResolveError, ResolvedImage};
use std::path::Path;
use std::sync::Arc;

/// Resolves FROM images from the local store, pulling what is missing.
pub(super) struct StoreResolver<'a> {
    pub(super) store: &'a LocalStore,
    pub(super) client: &'a RegistryClient,
    pub(super) runtime: &'a tokio::runtime::Runtime,
    pub(super) progress: &'a Arc<crate::progress::Reporter>,
    /// What FROM names resolved to, for BuildKit's checks.
    pub(super) resolved: std::cell::RefCell<Vec<checks::Resolved>>,
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(
        &self,
        text: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        let reference = Reference::parse(text).map_err(|e| e.to_string())?;
        let name = reference.to_string();
        let digest = match self.store.get_ref(&name).map_err(|e| e.to_string())? {
            Some(d) => d,
            None => {
                let transfer = self.progress.transfer(&format!("[internal] pull {name}"));
                let report = self
                    .runtime
                    .block_on(
                        self.client
                            .pull(&reference, platform, self.store, transfer.clone()),
                    )
                    .map_err(|e| {
                        transfer.failed(&e);
                        format!("failed to resolve source metadata for {name}: {e}")
                    })?;
                transfer.done();
                report.digest
            }
        };
        let image = self.resolved(name, &digest, platform)?;
        self.resolved
            .borrow_mut()
            .push((text.to_string(), platform.clone(), image.config.clone()));
        Ok(image)
    }

    fn resolve_layout(
        &self,
        layout: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        let (path, tag, digest) = split_layout(layout);
        let loaded =
            kiln_oci::archive::load(self.store, Path::new(path)).map_err(|e| e.to_string())?;
        let pick = loaded.iter().find(|l| match (tag, digest) {
            (_, Some(d)) => l.digest.as_str() == d,
            (Some(t), None) => l
                .name
                .as_deref()
                .is_some_and(|n| n == t || n.ends_with(&format!(":{t}"))),
            (None, None) => loaded.len() == 1 || l.name.as_deref() == Some("latest"),
        });
        let chosen =
            pick.ok_or_else(|| format!("oci-layout://{layout}: no matching image in the layout"))?;
        let image = self.resolved(format!("oci-layout://{layout}"), &chosen.digest, platform)?;
        self.resolved.borrow_mut().push((
            format!("oci-layout://{layout}"),
            platform.clone(),
            image.config.clone(),
        ));
        Ok(image)
    }
}

impl StoreResolver<'_> {
    fn resolved(
        &self,
        name: String,
        digest: &kiln_oci::Digest,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, String> {
        let image =
            kiln_oci::resolve(self.store, digest, platform).map_err(|e| format!("{name}: {e}"))?;
        let bytes = self
            .store
            .read(&image.config_digest)
            .map_err(|e| e.to_string())?;
        let config = kiln_oci::ImageConfig::from_slice(&bytes)
            .map_err(|e| format!("{name}: config: {e}"))?;
        Ok(ResolvedImage {
            reference: name,
            manifest: image.manifest_digest,
            config,
        })
    }
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
