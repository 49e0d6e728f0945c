//! kiln-oci: everything kiln reads or writes as an image goes through
//! here: names, content, the local store, registries and image files.
//!
//! - [`Reference`] is an image reference normalised the way Docker does
//!   (`busybox` is `docker.io/library/busybox:latest`), [`Digest`] a
//!   validated `algorithm:hex` content address and [`Platform`] an
//!   `os/arch[/variant]`.
//! - [`LocalStore`] is the content-addressed store on disk: a blob becomes
//!   visible only after its digest was verified. Consumers take its role
//!   traits, [`BlobReader`] and [`BlobIngester`]; a big blob from a local
//!   producer goes through [`BlobIngester::writer_pipelined`], which
//!   writes and hashes on a worker thread ([`PipelineOptions`]). It also
//!   holds the image names (`set_ref`, `get_ref`), leases that keep a
//!   build's blobs from `kiln prune`, and blob garbage collection.
//! - [`Manifest`], [`Image`] and [`fn@resolve`] read manifests and indexes;
//!   [`ImageConfig`] is an image config with every field kiln keeps.
//!   [`mod@resolve`] gives a base image's manifest digest and config from
//!   the store or an OCI layout ([`ResolvedConfig`]).
//! - [`RegistryClient`] speaks the distribution API: pull, push, config
//!   and manifest fetches, with Docker's credentials ([`DockerConfig`]) and
//!   token or basic auth.
//! - [`archive`] reads and writes OCI layouts and docker-archives;
//!   [`compress`] compresses layers (parallel gzip, zstd) and computes
//!   their digests in one pass; [`VerifiedReader`] checks a stream
//!   (a decompressed layer) against its digest while it is read.
//!
//! ```
//! use kiln_oci::{BlobIngester, BlobReader, Digest, LocalStore, Reference};
//!
//! let reference = Reference::parse("busybox").unwrap();
//! assert_eq!(reference.to_string(), "docker.io/library/busybox:latest");
//! assert_eq!(reference.repository(), "library/busybox");
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = LocalStore::open(dir.path().join("store")).unwrap();
//! let digest = store.write_blob(b"hello", None).unwrap();
//! assert_eq!(digest, Digest::sha256(b"hello"));
//! assert_eq!(store.read(&digest).unwrap(), b"hello");
//! ```
//!
//! Errors are typed per module ([`StoreError`], [`ImageError`],
//! [`RegistryError`], [`ReferenceError`], ...) and name what they concern.
#![deny(missing_docs)]

pub mod archive;
pub mod compress;
mod config;
pub mod conversions;
mod convert;
mod credentials;
mod digest;
mod gc;
mod image;
mod layer;
mod layout;
pub mod media;
pub mod owner;
mod platform;
mod reference;
mod refs;
mod registry;
pub mod resolve;
mod sources;
mod store;
mod verify;

pub use compress::{CompressError, CompressOptions, CompressedLayer, Compression, LayerCompressor};
pub use config::{ContainerConfig, HealthConfig, History, ImageConfig, RootFs};
pub use convert::convert_media_types;
pub use credentials::{registry_key, Credential, CredentialError, DockerConfig, Secret};
pub use digest::{Digest, DigestError};
pub use gc::{GcReport, Lease, Reachable, StoreLock};
pub use image::{
    check_size, descriptor_digest, is_attestation, reachable, read_manifest, resolve,
    select_platform, validate_image, Image, ImageError, Manifest, MAX_CONFIG_SIZE,
    MAX_MANIFEST_SIZE,
};
pub use layer::Layer;
pub use layout::StoreLayout;
pub use media::{LayerCompression, MediaFamily};
pub use owner::{owner_of as temporary_owner, process_tag, Owner};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
pub use registry::{
    transport_cause, BlobOutcome, CredentialProvider, FetchedManifest, NoProgress, PullReport,
    PushReport, RegistryClient, RegistryError, RegistryOptions, StaticCredentials, TimeoutStage,
    TransferObserver,
};
pub use resolve::{ResolveError, ResolvedConfig};
pub use store::{
    default_root, is_on_read_only_fs, BlobIngester, BlobReader, BlobStore, BlobWriter, LocalStore,
    PipelineOptions, StoreError,
};

pub use verify::VerifiedReader;

/// The OCI spec types, re-exported so callers build against the same version.
pub use oci_spec;
