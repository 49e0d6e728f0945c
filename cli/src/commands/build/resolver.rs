//! How `kiln build` resolves FROM images: the local store first, pulling
//! what is missing (with `--pull`, the registry always), and OCI layouts
//! given as named contexts; it remembers
//! what it resolved for BuildKit's checks.

use super::checks;
use kiln_oci::resolve::{config_of, layout_config, stored_config};
use kiln_oci::{LocalStore, Platform, Reference, RegistryClient, ResolvedConfig};
use kiln_solver::{ImageResolver, ResolveError, ResolvedImage};
use std::sync::Arc;

/// Resolves FROM images from the local store, pulling what is missing.
pub(super) struct StoreResolver<'a> {
    pub(super) store: &'a LocalStore,
    pub(super) client: &'a RegistryClient,
    pub(super) runtime: &'a tokio::runtime::Runtime,
    pub(super) progress: &'a Arc<crate::progress::Reporter>,
    /// What FROM names resolved to, for BuildKit's checks.
    pub(super) resolved: std::cell::RefCell<Vec<checks::Resolved>>,
    /// `--pull`: ask the registry again even for images the store holds
    /// (blobs the store has are not downloaded again).
    pub(super) pull: bool,
    /// Where pulls are noted for the build record.
    pub(super) log: &'a kiln_solver::builds::StepLog,
}

impl ImageResolver for StoreResolver<'_> {
    fn resolve(
        &self,
        text: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        let reference = Reference::parse(text).map_err(|e| e.to_string())?;
        let name = reference.to_string();
        let stored = if self.pull {
            None
        } else {
            stored_config(self.store, &reference, platform).map_err(|e| e.to_string())?
        };
        let found = match stored {
            Some(found) => found,
            None => {
                let step = format!("[internal] pull {name}");
                let transfer = self.progress.transfer(&step);
                let started = std::time::Instant::now();
                let report = self
                    .runtime
                    .block_on(
                        self.client
                            .pull(&reference, platform, self.store, transfer.clone()),
                    )
                    .map_err(|e| {
                        transfer.failed(&e);
                        let error = format!("failed to resolve source metadata for {name}: {e}");
                        self.log.add_other(&step, started, None, Some(&error));
                        error
                    })?;
                transfer.done();
                self.log.add_other(&step, started, Some(report.bytes), None);
                config_of(self.store, &name, &report.digest, platform).map_err(|e| e.to_string())?
            }
        };
        Ok(self.remember(text.to_string(), name, platform, found))
    }

    fn resolve_layout(
        &self,
        layout: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        let found = layout_config(self.store, layout, platform).map_err(|e| e.to_string())?;
        let name = format!("oci-layout://{layout}");
        Ok(self.remember(name.clone(), name, platform, found))
    }
}

impl StoreResolver<'_> {
    /// Records what `text` resolved to, for BuildKit's checks.
    fn remember(
        &self,
        text: String,
        name: String,
        platform: &Platform,
        found: ResolvedConfig,
    ) -> ResolvedImage {
        self.resolved
            .borrow_mut()
            .push((text, platform.clone(), found.config.clone()));
        ResolvedImage {
            reference: name,
            manifest: found.manifest,
            config: found.config,
        }
    }
}
