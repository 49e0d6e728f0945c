//! The export phase of `kiln build`: each platform's solved graph made an
//! image (labels, inline cache), written to the outputs, and the build's
//! cache written to every `--cache-to`.

use super::remote_cache;
use super::request::BuildRequest;
use crate::commands::outputs::{write_outputs, Outputs};
use crate::progress::Reporter;
use anyhow::Result;
use kiln_exporter::attest::Attestation;
use kiln_exporter::BuiltImage;
use kiln_oci::{LocalStore, Platform, RegistryClient};
use kiln_solver::Solved;
use std::sync::Arc;

/// What the export phase writes through.
pub(super) struct Exporter<'a> {
    /// The store images are tagged in and blobs read from.
    pub(super) store: &'a LocalStore,
    /// For registry outputs and caches.
    pub(super) client: &'a RegistryClient,
    /// The async runtime.
    pub(super) rt: &'a tokio::runtime::Runtime,
    /// Progress output.
    pub(super) reporter: &'a Arc<Reporter>,
}

impl Exporter<'_> {
    /// Writes the images of `solved` (one per platform of `request`) to
    /// the outputs, then the build cache to the `--cache-to` targets.
    ///
    /// # Errors
    /// The first output or cache export that fails.
    pub(super) fn export(
        &self,
        request: &BuildRequest,
        solved: &[Solved],
        attestations: &[Vec<Attestation>],
    ) -> Result<()> {
        for note in &request.attest.notes {
            if self.reporter.prints_summary() {
                crate::progress::eprint_line(note);
            }
        }
        let images: Vec<(Platform, BuiltImage)> = request
            .platforms
            .iter()
            .zip(solved)
            .map(|(p, one)| (p.clone(), image(request, one)))
            .collect();
        let digest = write_outputs(
            self.store,
            self.client,
            self.rt,
            &images,
            Outputs {
                targets: request.outputs.clone(),
                tags: &request.tags,
                push: request.push,
                annotations: &request.annotations,
                epoch: request.epoch,
                iidfile: request.iidfile.as_deref(),
                metadata_file: request.metadata_file.as_deref(),
                reporter: self.reporter,
                attestations,
                referrers: request.attest.referrers,
            },
        )?;
        remote_cache::export(
            &request.cache_to,
            solved,
            self.store,
            self.client,
            self.rt,
            self.reporter,
        )?;
        if let Some(digest) = digest.filter(|_| request.quiet) {
            // buildx's --quiet: the digest alone on stdout.
            println!("{digest}");
        }
        Ok(())
    }
}

/// The image of one solved graph: its config with the `--label`s and an
/// inline cache, and its layers.
fn image(request: &BuildRequest, solved: &Solved) -> BuiltImage {
    let mut config = solved.config.clone();
    remote_cache::inline_config(&request.cache_to, solved, &mut config);
    if !request.labels.is_empty() {
        config
            .config
            .labels
            .get_or_insert_with(Default::default)
            .extend(request.labels.clone());
    }
    BuiltImage {
        config,
        layers: solved.layers.clone(),
        stack: solved.stack(),
        epoch: request.epoch,
    }
}
