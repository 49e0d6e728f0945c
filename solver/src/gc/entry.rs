//! The entries of a store's usage: their kinds, what prunes them, and
//! what removing one deletes.

use kiln_oci::Digest;
use std::path::PathBuf;
use std::time::SystemTime;

/// The kinds of things in the store, in the order `kiln du` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Blobs (indexes, manifests, configs, layers) a name reaches.
    Image,
    /// Cache records with what they alone hold; unreferenced blobs; stale
    /// temporaries; build records.
    BuildCache,
    /// Unpacked layer directories not held by a cache record.
    Layer,
    /// `RUN --mount=type=cache` directories.
    CacheMount,
    /// Build-context checksum caches.
    Context,
    /// `ADD URL` downloads.
    Download,
    /// Names, locks, history, ingest files, directories.
    Other,
}

impl Kind {
    /// Every kind, in display order.
    pub const ALL: [Kind; 7] = [
        Kind::Image,
        Kind::BuildCache,
        Kind::Layer,
        Kind::CacheMount,
        Kind::Context,
        Kind::Download,
        Kind::Other,
    ];

    /// The singular name `kiln du --verbose` shows.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Image => "image",
            Kind::BuildCache => "build cache",
            Kind::Layer => "unpacked layer",
            Kind::CacheMount => "cache mount",
            Kind::Context => "context cache",
            Kind::Download => "download",
            Kind::Other => "other",
        }
    }

    /// The name `kiln du` shows.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Image => "Images",
            Kind::BuildCache => "Build cache",
            Kind::Layer => "Unpacked layers",
            Kind::CacheMount => "Cache mounts",
            Kind::Context => "Context caches",
            Kind::Download => "Downloads",
            Kind::Other => "Other",
        }
    }
}

/// Which prune removes an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reclaim {
    /// `kiln prune` (and `--all`).
    Default,
    /// Only `kiln prune --all` (and the `gc.max-storage` cap).
    All,
    /// Never: images and metadata.
    Never,
}

/// What removing an entry deletes.
#[derive(Debug, Clone)]
pub(super) enum Target {
    /// Nothing (images, metadata).
    None,
    /// A record; its blob and unpacked layer go when no remaining record
    /// holds them and they are not reachable.
    Record {
        file: PathBuf,
        blob: Option<Digest>,
        diff_id: Option<Digest>,
    },
    /// A blob.
    Blob(Digest),
    /// Files or directories.
    Paths(Vec<PathBuf>),
}

/// One thing in the store.
#[derive(Debug, Clone)]
pub struct Entry {
    /// An identifier: a digest, a cache key, a cache mount id, a path.
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// What it is, in a few words.
    pub description: String,
    /// Allocated bytes it alone holds.
    pub size: u64,
    /// When a build last used it (`None` when unknown).
    pub last_used: Option<SystemTime>,
    /// True when part of its content is counted elsewhere (a blob or layer
    /// a named image or another record also uses).
    pub shared: bool,
    /// Which prune removes it.
    pub reclaim: Reclaim,
    pub(super) target: Target,
}

/// Everything in the store.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    /// The entries, by kind.
    pub entries: Vec<Entry>,
    /// Allocated bytes under the store root (the sum of the entries).
    pub total: u64,
}

impl Usage {
    /// The entries of `kind`, their count and bytes.
    pub fn by_kind(&self, kind: Kind) -> (usize, u64) {
        self.entries
            .iter()
            .filter(|e| e.kind == kind)
            .fold((0, 0), |(n, b), e| (n + 1, b + e.size))
    }

    /// Bytes a prune would free (with `all`, `kiln prune --all`).
    pub fn reclaimable(&self, kind: Option<Kind>, all: bool) -> u64 {
        self.entries
            .iter()
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .filter(|e| e.reclaim == Reclaim::Default || (all && e.reclaim == Reclaim::All))
            .map(|e| e.size)
            .sum()
    }
}
