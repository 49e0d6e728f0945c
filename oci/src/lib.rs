//! kiln-oci: everything kiln reads or writes as an image goes through here
//! (being written; see issue 3).
//!
//! - [`Digest`]: a validated `algorithm:hex` content address.
//! - [`Reference`]: an image reference normalised the way Docker does
//!   (`busybox` is `docker.io/library/busybox:latest`).
//! - [`LocalStore`]: a content-addressed blob store on disk in which a blob
//!   becomes visible only after its digest was verified.
#![deny(missing_docs)]

mod credentials;
mod digest;
mod reference;
mod registry;
mod refs;
mod store;

pub use digest::{Digest, DigestError};
pub use reference::{Reference, ReferenceError};
pub use store::{BlobIngester, BlobReader, BlobWriter, LocalStore, StoreError};

/// The OCI spec types, re-exported so callers build against the same version.
pub use oci_spec;
