//! Garbage collection of the whole store: what it holds, by kind
//! (`kiln du`), and pruning least recently used first (`kiln prune`, the
//! `gc.max-storage` cap after a build), then sweeping the blobs no name
//! reaches.
//!
//! # Where it lives
//!
//! The store's blobs, names and locks are kiln-oci's; the build cache's
//! records, unpacked layers and cache mounts are the solver's, and oci sits
//! below the solver in the crate graph, so it cannot know them. The
//! collector therefore lives here, above both, and oci keeps the blob-level
//! primitives it builds on ([`kiln_oci::LocalStore::reachable`], the sweep
//! [`kiln_oci::LocalStore::gc_locked`], leases and the store's lock). Every
//! path comes from [`kiln_oci::StoreLayout`]. `kiln rmi` needs only the
//! sweep, so it calls oci directly.
//!
//! # Words
//!
//! - *reachable*: a blob a name reaches (through indexes and manifests),
//!   and the diff ids of those images' layers. Never pruned.
//! - *record*: a build-cache record (`cache/keys/<key>`), naming one layer's
//!   blob and diff id; it *holds* that blob and that unpacked layer.
//! - *unpacked layer*: a layer's directory (`layers/<diff id hex>`), made
//!   again from its blob on demand.
//! - *temporary*: a half-made file or directory of a build; kept while the
//!   process that made it runs.
//! - *lease* and *the store's lock*: see [`kiln_oci::Lease`] and
//!   [`kiln_oci::StoreLock`]. Measuring takes no lock; pruning and sweeping
//!   hold the store's lock, so no build, pull or load runs meanwhile.
//! - *sweep*: removing every blob that is not reachable (and stale ingest
//!   files), after a prune.
//!
//! # Kinds
//!
//! Sizes are allocated bytes (`st_blocks * 512`), each inode counted once
//! across hard links, so the entries of a [`Usage`] add up to what `du -s`
//! reports for the store root. Every path under the root belongs to
//! exactly one entry:
//!
//! - [`Kind::Image`]: reachable blobs (never pruned).
//! - [`Kind::BuildCache`]: a record with the blob and unpacked layer it
//!   alone holds (a reachable blob or layer belongs to the image; the
//!   record is then *shared*); also blobs that are neither reachable nor
//!   held, temporaries of dead builds, the exporter's records of
//!   converted layers (`exports/`), and build records (`builds/`, pruned
//!   by their time like the rest: all of them by a plain prune, the older
//!   ones by `--filter until=`).
//! - [`Kind::Layer`]: unpacked layers no record holds: those of reachable
//!   images (pruned only with `--all`) and orphans.
//! - [`Kind::CacheMount`]: `RUN --mount=type=cache` directories (only
//!   `--all`).
//! - [`Kind::Context`]: build-context checksum caches.
//! - [`Kind::Download`]: `ADD URL` downloads.
//! - [`Kind::Other`]: names, locks, step history, ingest files and the
//!   directories themselves (never pruned; stale ingest files go with the
//!   sweep).

mod entry;
mod prune;
mod usage;
mod walk;

pub use entry::{Entry, Kind, Reclaim, Usage};
pub use prune::{prune, sweep, PruneOptions, PruneReport, Removed};
pub use usage::usage;
pub(crate) use walk::is_hex64;
pub use walk::sweep_temporaries;

use std::io;
use std::path::{Path, PathBuf};

/// What can go wrong measuring, pruning or sweeping the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GcError {
    /// A file-system operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] kiln_oci::StoreError),
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> GcError {
    let path = path.to_path_buf();
    move |source| GcError::Io {
        action,
        path,
        source,
    }
}
