//! Where everything lives in a store: the one place that names the
//! store's paths.
//!
//! ```text
//! blobs/<algorithm>/<hex>   committed blobs (oci)
//! ingest/<tag>-<n>-<nanos>  blobs being written (oci)
//! refs.json, refs.lock      the names of images (oci)
//! sources/<algorithm>/<hex> where each blob is known to live remotely (oci)
//! gc.lock                   leases and the collector's lock (oci)
//! layers/<diff id hex>      unpacked layers (the solver)
//! cache/                    the build cache's records (the solver's cache index)
//! cache-mounts/             RUN --mount=type=cache directories (the solver)
//! contexts/                 build-context checksum caches (the cli)
//! http/                     ADD URL downloads (the solver)
//! exports/<key>.json        layers the exporter converted (the exporter)
//! builds/<id>.json          build records: one summary per build (the
//!                           solver's `builds` module)
//! runs/kiln-run-<tag>-…     RUN steps' scratch directories (the executor)
//! owners/<tag>              one lock file per kiln process using the store
//!                           (oci's `owner` module)
//! .tmp-<tag>-XXXXXX         staging directories of running builds
//!                           (`.tmpXXXXXX` from older kilns)
//!
//! `<tag>` is the maker's process tag, [`crate::process_tag`]; older kilns
//! wrote a bare pid there.
//! ```
//!
//! Each crate asks [`StoreLayout`] for the top-level path it uses; what is
//! inside `cache/` or `cache-mounts/` is the format of the code that owns
//! that directory. The names never change: an existing store keeps
//! working.

use crate::digest::Digest;
use std::path::{Path, PathBuf};

/// The paths of a store rooted at one directory. Get it from
/// [`crate::LocalStore::layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLayout {
    root: PathBuf,
}

/// The directories (relative to the root) that opening a store creates,
/// parents first.
pub(crate) const CREATED_DIRS: [&str; 4] = [BLOBS, "blobs/sha256", INGEST, LAYERS];

/// The other directories of what images and steps made, made private
/// again when present (their users create them inside the private root).
pub(crate) const REPAIRED_DIRS: [&str; 7] = [
    CACHE,
    CACHE_MOUNTS,
    CONTEXTS,
    DOWNLOADS,
    EXPORTS,
    RUNS,
    BUILDS,
];

const BLOBS: &str = "blobs";
const INGEST: &str = "ingest";
const LAYERS: &str = "layers";
const CACHE: &str = "cache";
const CACHE_MOUNTS: &str = "cache-mounts";
const CONTEXTS: &str = "contexts";
const DOWNLOADS: &str = "http";
const EXPORTS: &str = "exports";
const RUNS: &str = "runs";
const BUILDS: &str = "builds";

impl StoreLayout {
    /// The layout of a store rooted at `root` (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> StoreLayout {
        StoreLayout { root: root.into() }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of committed blobs (`blobs/`).
    pub fn blobs(&self) -> PathBuf {
        self.root.join(BLOBS)
    }

    /// The directory of committed blobs of one digest algorithm
    /// (`blobs/<algorithm>/`).
    pub fn blob_dir(&self, algorithm: &str) -> PathBuf {
        self.blobs().join(algorithm)
    }

    /// Where a committed blob lives (`blobs/<algorithm>/<hex>`).
    pub fn blob(&self, digest: &Digest) -> PathBuf {
        self.blob_dir(digest.algorithm()).join(digest.hex())
    }

    /// The directory of blobs being written (`ingest/`).
    pub fn ingest(&self) -> PathBuf {
        self.root.join(INGEST)
    }

    /// The file of image names (`refs.json`).
    pub fn refs(&self) -> PathBuf {
        self.root.join("refs.json")
    }

    /// The lock that serialises changes to the names (`refs.lock`).
    pub fn refs_lock(&self) -> PathBuf {
        self.root.join("refs.lock")
    }

    /// Where the registry repositories that hold `digest` are recorded
    /// (`sources/<algorithm>/<hex>`), for cross-repository mounts.
    pub fn blob_sources(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("sources")
            .join(digest.algorithm())
            .join(digest.hex())
    }

    /// The lock that leases share and a collection holds alone
    /// (`gc.lock`).
    pub fn gc_lock(&self) -> PathBuf {
        self.root.join("gc.lock")
    }

    /// The directory of unpacked layers (`layers/`).
    pub fn layers(&self) -> PathBuf {
        self.root.join(LAYERS)
    }

    /// The unpacked layer whose uncompressed digest is `diff_id`
    /// (`layers/<hex>`).
    pub fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.layers().join(diff_id.hex())
    }

    /// The build cache's directory (`cache/`), laid out by the solver's
    /// cache index.
    pub fn cache(&self) -> PathBuf {
        self.root.join(CACHE)
    }

    /// The directory of `RUN --mount=type=cache` directories
    /// (`cache-mounts/`).
    pub fn cache_mounts(&self) -> PathBuf {
        self.root.join(CACHE_MOUNTS)
    }

    /// The directory of build-context checksum caches (`contexts/`).
    pub fn contexts(&self) -> PathBuf {
        self.root.join(CONTEXTS)
    }

    /// The directory of `ADD URL` downloads (`http/`).
    pub fn downloads(&self) -> PathBuf {
        self.root.join(DOWNLOADS)
    }

    /// The directory of the exporter's records of converted layers
    /// (`exports/`).
    pub fn exports(&self) -> PathBuf {
        self.root.join(EXPORTS)
    }

    /// The directory of build records (`builds/`: one `<id>.json` per
    /// build, written by the solver's `builds` module, private like the
    /// rest: step names are Dockerfile lines).
    pub fn builds(&self) -> PathBuf {
        self.root.join(BUILDS)
    }

    /// Where RUN steps make their per-run scratch directories (`runs/`:
    /// mount points, OCI bundles, a runtime's state), made 0700 by the
    /// executor.
    pub fn runs(&self) -> PathBuf {
        self.root.join(RUNS)
    }

    /// Where the processes using the store hold their owner locks
    /// (`owners/`, [`crate::owner`]).
    pub fn owners(&self) -> PathBuf {
        self.root.join("owners")
    }

    /// The name prefix of this process's staging directories
    /// (`.tmp-<tag>-`): the tag tells a collection or a sweep whether
    /// their maker still runs.
    pub fn staging_prefix() -> String {
        format!(".tmp-{}-", crate::process_tag())
    }

    /// Where builds make their staging directories (`.tmp-<tag>-XXXXXX`,
    /// [`StoreLayout::staging_prefix`]): the
    /// root itself, so they are on the store's filesystem and private.
    pub fn staging(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names are the store's on-disk format: a store an older kiln made
    /// must keep working, so they are pinned here.
    #[test]
    fn paths_are_the_ones_existing_stores_use() {
        let l = StoreLayout::new("/s");
        let d: Digest = format!("sha256:{}", "ab".repeat(32))
            .parse()
            .expect("digest");
        let hex = "ab".repeat(32);
        let cases = [
            (l.blobs(), "/s/blobs".to_string()),
            (l.blob(&d), format!("/s/blobs/sha256/{hex}")),
            (l.ingest(), "/s/ingest".into()),
            (l.refs(), "/s/refs.json".into()),
            (l.refs_lock(), "/s/refs.lock".into()),
            (l.blob_sources(&d), format!("/s/sources/sha256/{hex}")),
            (l.gc_lock(), "/s/gc.lock".into()),
            (l.layers(), "/s/layers".into()),
            (l.layer_dir(&d), format!("/s/layers/{hex}")),
            (l.cache(), "/s/cache".into()),
            (l.cache_mounts(), "/s/cache-mounts".into()),
            (l.contexts(), "/s/contexts".into()),
            (l.downloads(), "/s/http".into()),
            (l.exports(), "/s/exports".into()),
            (l.runs(), "/s/runs".into()),
            (l.builds(), "/s/builds".into()),
            (l.staging().to_path_buf(), "/s".into()),
        ];
        for (got, want) in cases {
            assert_eq!(got, PathBuf::from(want));
        }
        assert_eq!(l.root(), Path::new("/s"));
    }
}
