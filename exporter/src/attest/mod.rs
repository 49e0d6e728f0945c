//! Attestations as buildx attaches them: SLSA provenance and an SPDX SBOM,
//! each an in-toto statement, written as attestation manifests of the
//! image index or as OCI 1.1 referrers.
//!
//! - [`Attestation`]: a predicate and its type, before the image it is
//!   about is known; [`Attestation::statement`] makes the in-toto
//!   statement once it is.
//! - [`provenance`] from a [`ProvenanceInput`]; [`sbom`] from the image's
//!   filesystem (a [`kiln_executor::LayerStack`]): dpkg, apk and language
//!   lock files, every file read bounded in size.
//! - [`write_attested_index`]: the index holding the platform images and,
//!   per platform, an attestation manifest (`unknown/unknown`, annotated
//!   `vnd.docker.reference.type=attestation-manifest`).
//! - [`write_referrers`]: OCI 1.1 referrer manifests (`subject`,
//!   `artifactType`) and the fallback tag index (`sha256-<hex>`) for
//!   registries without the referrers API.

mod layout;
mod provenance;
mod sbom;
mod statement;

pub use layout::{write_attested_index, write_referrers, Referrers};
pub use provenance::{provenance, Material, ProvenanceInput, ProvenanceMode};
pub use sbom::{sbom, Sbom};
pub use statement::{
    kind_of, subject_name, Attestation, IN_TOTO_MEDIA_TYPE, IN_TOTO_STATEMENT,
    PREDICATE_PROVENANCE, PREDICATE_SPDX,
};

/// Why an attestation could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttestError {
    /// A file of the image could not be read.
    #[error("sbom: reading /{path} of the image: {message}")]
    Read {
        /// The path in the image.
        path: String,
        /// What went wrong.
        message: String,
    },
}
