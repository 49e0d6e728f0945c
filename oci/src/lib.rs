//! kiln-oci: everything kiln reads or writes as an image goes through here
//! (being written; see issue 3).
//!
//! - [`Digest`]: a validated `algorithm:hex` content address.
//! - [`Reference`]: an image reference normalised the way Docker does
//!   (`busybox` is `docker.io/library/busybox:latest`).
//! - [`LocalStore`]: a content-addressed blob store on disk in which a blob
//!   becomes visible only after its digest was verified.
#![deny(missing_docs)]

pub mod archive;
pub mod compress;
mod config;
mod convert;
mod credentials;
mod digest;
mod gc;
mod image;
pub mod media;
mod platform;
mod reference;
mod refs;
mod registry;
pub mod resolve;
mod sources;
mod store;

pub use compress::{CompressError, CompressOptions, CompressedLayer, Compression, LayerCompressor};
pub use config::{ContainerConfig, HealthConfig, History, ImageConfig, RootFs};
pub use convert::convert_media_types;
pub use credentials::{registry_key, Credential, CredentialError, DockerConfig, Secret};
pub use digest::{Digest, DigestError};
pub use gc::{GcReport, Lease, NamedContent, StoreLock};
pub use image::{
    check_size, descriptor_digest, is_attestation, reachable, read_manifest, resolve,
    select_platform, validate_image, Image, ImageError, Manifest, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
pub use media::{LayerCompression, MediaFamily};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
pub use registry::{
    BlobOutcome, CredentialProvider, FetchedManifest, NoProgress, PullReport, PushReport,
    RegistryClient, RegistryError, RegistryOptions, StaticCredentials, TransferObserver,
};
pub use resolve::{ResolveError, ResolvedConfig};
pub use store::{default_root, BlobIngester, BlobReader, BlobWriter, LocalStore, StoreError};

/// The OCI spec types, re-exported so callers build against the same version.
pub use oci_spec;
