//! The Distribution API v2 registry client: pull, push and authentication.
//!
//! [`RegistryClient`] resolves tags and indexes, downloads and uploads blobs
//! in parallel (bounded by [`RegistryOptions::max_concurrent_transfers`]),
//! retries transient failures with backoff or as `Retry-After` asks, from
//! one retry budget per pull or push, bounds every request by a connect
//! and a progress timeout and a whole operation by an optional deadline,
//! and answers `WWW-Authenticate` challenges with credentials from a
//! [`CredentialProvider`].

mod auth;
pub(crate) mod challenge;
mod client;
mod error;
mod operation;
mod pull;
mod push;

pub use auth::{CredentialProvider, StaticCredentials};
pub use client::{RegistryClient, RegistryOptions};
pub use error::{transport_cause, RegistryError, TimeoutStage};
pub use pull::{FetchedManifest, PullReport};
pub use push::PushReport;

use crate::Digest;

/// What happened to one blob during a pull or push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Downloaded and verified.
    Fetched,
    /// Already in the local store.
    Present,
    /// Uploaded.
    Uploaded,
    /// Mounted from another repository of the registry.
    Mounted,
    /// The registry already had it.
    Exists,
}

/// Receives transfer progress; every method has a no-op default. Called
/// from the transfer tasks, so implementations must be cheap and
/// thread-safe.
pub trait TransferObserver: Send + Sync {
    /// A blob transfer is starting.
    fn blob_started(&self, _digest: &Digest, _size: u64) {}
    /// `done` of `size` bytes have been transferred.
    fn blob_progress(&self, _digest: &Digest, _done: u64, _size: u64) {}
    /// A blob is finished.
    fn blob_finished(&self, _digest: &Digest, _size: u64, _outcome: BlobOutcome) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl TransferObserver for NoProgress {}
