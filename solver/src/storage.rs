//! What the store holds, by kind, and pruning the build cache least
//! recently used first (`kiln du`, `kiln prune`, the `gc.max-storage`
//! cap).
//!
//! Sizes are allocated bytes (`st_blocks * 512`), each inode counted once
//! across hard links, so the entries of a [`Usage`] add up to what `du -s`
//! reports for the store root. Every path under the root belongs to
//! exactly one entry:
//!
//! - [`Kind::Image`]: blobs a name reaches (never pruned).
//! - [`Kind::BuildCache`]: a cache record (`cache/keys/<key>`) with the
//!   blob and unpacked layer directory it alone holds (a blob or layer a
//!   named image uses belongs to the image; the record is then *shared*);
//!   also blobs nothing reaches, stale temporaries of dead builds, and the
//!   exporter's records of converted layers (`exports/`).
//! - [`Kind::Layer`]: unpacked layer directories (`layers/<diff id>`) not
//!   held by a cache record: those of named images (re-created from their
//!   blobs on demand, pruned only with `--all`) and orphans.
//! - [`Kind::CacheMount`]: `RUN --mount=type=cache` directories (only
//!   `--all`).
//! - [`Kind::Context`]: build-context checksum caches.
//! - [`Kind::Download`]: `ADD URL` downloads.
//! - [`Kind::Other`]: names, locks, step history, ingest files and the
//!   directories themselves (never pruned here; stale ingest files go
//!   with the blob garbage collection).
//!
//! Pruning holds the store's lock exclusively ([`kiln_oci::StoreLock`]),
//! so no build, pull or load is running while anything is removed.

use crate::cache::CacheIndex;
use kiln_executor::dirfd::Dir;
use kiln_oci::{Digest, LocalStore, StoreLock};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// What can go wrong measuring or pruning the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
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

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StorageError {
    let path = path.to_path_buf();
    move |source| StorageError::Io {
        action,
        path,
        source,
    }
}

/// The kinds of things in the store, in the order `kiln du` lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Blobs (indexes, manifests, configs, layers) a name reaches.
    Image,
    /// Cache records with what they alone hold; unreferenced blobs; stale
    /// temporaries.
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
enum Target {
    /// Nothing (images, metadata).
    None,
    /// A cache record; its blob and layer directory go when no remaining
    /// record or image holds them.
    Record {
        file: PathBuf,
        blob: Option<Digest>,
        diff: Option<String>,
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
    target: Target,
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

/// Allocated bytes of `path` and everything under it whose inode is not in
/// `seen` yet (added to it). Symlinks are not followed; vanished paths
/// count 0. The walk keeps one open directory per level and opens each
/// relative to its parent: no recursion, and no path is longer than a name.
fn allocated(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64, StorageError> {
    let md = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err("reading", path)(e)),
    };
    let mut total = 0;
    if seen.insert((md.dev(), md.ino())) {
        total += md.blocks() * 512;
    }
    if !md.is_dir() {
        return Ok(total);
    }
    let gone = |e: &io::Error| e.kind() == io::ErrorKind::NotFound;
    let top = match Dir::open(path) {
        Ok(d) => d,
        Err(e) if gone(&e) => return Ok(total),
        Err(e) => return Err(io_err("opening", path)(e)),
    };
    let names = match top.names() {
        Ok(n) => n,
        Err(e) if gone(&e) => return Ok(total),
        Err(e) => return Err(io_err("listing", path)(e)),
    };
    let mut stack = vec![(top, names)];
    while let Some((dir, names)) = stack.last_mut() {
        let Some(name) = names.pop() else {
            stack.pop();
            continue;
        };
        let md = match dir.child_metadata(&name) {
            Ok(m) => m,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(io_err("reading", &dir.child_path(&name))(e)),
        };
        if seen.insert((md.dev(), md.ino())) {
            total += md.blocks() * 512;
        }
        if !md.is_dir() {
            continue;
        }
        let sub = match dir.open_dir(&name) {
            Ok(d) => d,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(io_err("opening", &dir.child_path(&name))(e)),
        };
        match sub.names() {
            Ok(names) => stack.push((sub, names)),
            Err(e) if gone(&e) => {}
            Err(e) => return Err(io_err("listing", sub.path())(e)),
        }
    }
    Ok(total)
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::symlink_metadata(path).and_then(|m| m.modified()).ok()
}

/// The names in a directory, sorted (none when it does not exist).
fn names(dir: &Path) -> Result<Vec<String>, StorageError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("listing", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io_err("listing", dir))?;
        out.push(entry.file_name().to_string_lossy().into_owned());
    }
    out.sort();
    Ok(out)
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// True when `name` carries the id of a process still running
/// (`tmp-<pid>-…`, `….tmp-<pid>…`).
fn owner_alive(name: &str) -> bool {
    let Some(rest) = name.split("tmp-").nth(1) else {
        return false;
    };
    let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
    !pid.is_empty() && Path::new("/proc").join(&pid).exists()
}

fn temporary(path: PathBuf, seen: &mut HashSet<(u64, u64)>) -> Result<Entry, StorageError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let alive = owner_alive(&name);
    Ok(Entry {
        id: path.display().to_string(),
        kind: Kind::BuildCache,
        description: if alive {
            "temporary of a running build".into()
        } else {
            "temporary left by a build".into()
        },
        size: allocated(&path, seen)?,
        last_used: modified(&path),
        shared: false,
        reclaim: if alive {
            Reclaim::Never
        } else {
            Reclaim::Default
        },
        target: Target::Paths(vec![path]),
    })
}

/// Measures everything in the store (see the module documentation for
/// what belongs to which kind). Takes no lock: run it while builds run and
/// the numbers are a snapshot.
///
/// # Errors
/// I/O errors listing or reading the store.
pub fn usage(store: &LocalStore) -> Result<Usage, StorageError> {
    let root = store.root();
    let named = store.named_content()?;
    let index = CacheIndex::new(root);
    let mut seen = HashSet::new();
    let mut entries = Vec::new();

    // Images: blobs a name reaches.
    for digest in &named.blobs {
        let path = store.blob_path(digest);
        let size = allocated(&path, &mut seen)?;
        if size == 0 && !path.exists() {
            continue;
        }
        entries.push(Entry {
            id: digest.to_string(),
            kind: Kind::Image,
            description: "image blob".into(),
            size,
            last_used: None,
            shared: false,
            reclaim: Reclaim::Never,
            target: Target::None,
        });
    }

    // Cache records, with the blob and layer they alone hold.
    let records = index
        .records()
        .map_err(io_err("listing", &index.dir().join("keys")))?;
    let mut blob_users: BTreeMap<Digest, usize> = BTreeMap::new();
    let mut diff_users: BTreeMap<String, usize> = BTreeMap::new();
    let mut parsed = Vec::new();
    for record in &records {
        let blob: Option<Digest> = record.layer.as_ref().and_then(|l| l.blob.parse().ok());
        let diff: Option<String> = record
            .layer
            .as_ref()
            .and_then(|l| l.diff_id.parse::<Digest>().ok())
            .map(|d| d.hex().to_string());
        if let Some(b) = &blob {
            *blob_users.entry(b.clone()).or_default() += 1;
        }
        if let Some(d) = &diff {
            *diff_users.entry(d.clone()).or_default() += 1;
        }
        parsed.push((record, blob, diff));
    }
    let image_diff = |hex: &str| named.diff_ids.contains(&format!("sha256:{hex}"));
    let layers = root.join("layers");
    for (record, blob, diff) in parsed {
        let mut size = allocated(&record.path, &mut seen)?;
        let mut shared = false;
        if let Some(b) = &blob {
            if named.blobs.contains(b) || blob_users.get(b).is_some_and(|n| *n > 1) {
                shared = true;
            }
            if !named.blobs.contains(b) {
                size += allocated(&store.blob_path(b), &mut seen)?;
            }
        }
        if let Some(d) = &diff {
            if image_diff(d) || diff_users.get(d).is_some_and(|n| *n > 1) {
                shared = true;
            }
            if !image_diff(d) {
                size += allocated(&layers.join(d), &mut seen)?;
                size += allocated(&index.layer_marker(d), &mut seen)?;
            }
        }
        let description = match &record.layer {
            Some(_) if blob.as_ref().is_some_and(|b| !store.blob_path(b).exists()) => {
                "cache record (blob gone)".to_string()
            }
            Some(_) => "cache record".to_string(),
            None => "unreadable cache record".to_string(),
        };
        entries.push(Entry {
            id: record.key.clone(),
            kind: Kind::BuildCache,
            description,
            size,
            last_used: record.last_used,
            shared,
            reclaim: if blob.as_ref().is_some_and(|b| named.blobs.contains(b)) {
                // Removing it frees only the record and loses a cache hit.
                Reclaim::All
            } else {
                Reclaim::Default
            },
            target: Target::Record {
                file: record.path.clone(),
                blob,
                diff,
            },
        });
    }

    // Blobs nothing reaches and no record holds.
    for digest in store.blobs()? {
        if named.blobs.contains(&digest) || blob_users.contains_key(&digest) {
            continue;
        }
        let path = store.blob_path(&digest);
        entries.push(Entry {
            id: digest.to_string(),
            kind: Kind::BuildCache,
            description: "unreferenced blob".into(),
            size: allocated(&path, &mut seen)?,
            last_used: modified(&path),
            shared: false,
            reclaim: Reclaim::Default,
            target: Target::Blob(digest),
        });
    }

    // Unpacked layers no record holds.
    for name in names(&layers)? {
        let path = layers.join(&name);
        if !is_hex64(&name) {
            entries.push(temporary(path, &mut seen)?);
            continue;
        }
        if diff_users.contains_key(&name) && !image_diff(&name) {
            continue;
        }
        let marker = index.layer_marker(&name);
        let image = image_diff(&name);
        let size = allocated(&path, &mut seen)? + allocated(&marker, &mut seen)?;
        entries.push(Entry {
            id: format!("sha256:{name}"),
            kind: Kind::Layer,
            description: if image {
                "unpacked layer of an image".into()
            } else {
                "unpacked layer nothing uses".into()
            },
            size,
            last_used: modified(&marker).or_else(|| modified(&path)),
            shared: image && diff_users.contains_key(&name),
            reclaim: if image {
                Reclaim::All
            } else {
                Reclaim::Default
            },
            target: Target::Paths(vec![path, marker]),
        });
    }

    // Cache mounts: `<sha256(id)>[-N]` directories and their lock files.
    let mounts = root.join("cache-mounts");
    for name in names(&mounts)? {
        let path = mounts.join(&name);
        if name.ends_with(".lock") {
            continue;
        }
        if name.contains(".tmp-") {
            entries.push(temporary(path, &mut seen)?);
            continue;
        }
        let lock = mounts.join(format!("{name}.lock"));
        let id = fs::read_to_string(&lock)
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| name.clone());
        let instance = name
            .rsplit_once('-')
            .filter(|(k, n)| is_hex64(k) && n.bytes().all(|b| b.is_ascii_digit()))
            .map(|(_, n)| format!(" (private instance {n})"))
            .unwrap_or_default();
        let size = allocated(&path, &mut seen)? + allocated(&lock, &mut seen)?;
        entries.push(Entry {
            id: format!("{id}{instance}"),
            kind: Kind::CacheMount,
            description: "cache mount".into(),
            size,
            last_used: modified(&lock).or_else(|| modified(&path)),
            shared: false,
            reclaim: Reclaim::All,
            target: Target::Paths(vec![path, lock]),
        });
    }

    // Context checksum caches, downloads, and the exporter's records of
    // layers it converted (`exports/`: removing one only costs converting
    // again).
    for (dir, kind, what) in [
        ("contexts", Kind::Context, "context checksum cache"),
        ("http", Kind::Download, "ADD URL download"),
        ("exports", Kind::BuildCache, "layer conversion record"),
    ] {
        let dir = root.join(dir);
        for name in names(&dir)? {
            let path = dir.join(&name);
            if name.contains(".tmp-") {
                entries.push(temporary(path, &mut seen)?);
                continue;
            }
            entries.push(Entry {
                id: name,
                kind,
                description: what.into(),
                size: allocated(&path, &mut seen)?,
                last_used: modified(&path),
                shared: false,
                reclaim: Reclaim::Default,
                target: Target::Paths(vec![path]),
            });
        }
    }

    // Staging directories of builds (`.tmpXXXXXX`, made under a lease).
    for name in names(root)? {
        let path = root.join(&name);
        if name.starts_with(".tmp") && path.is_dir() {
            entries.push(temporary(path, &mut seen)?);
        }
    }

    // Everything else: names, locks, history, ingest, directories.
    let rest = allocated(root, &mut seen)?;
    entries.push(Entry {
        id: root.display().to_string(),
        kind: Kind::Other,
        description: "names, locks, step history, ingest files, directories".into(),
        size: rest,
        last_used: None,
        shared: false,
        reclaim: Reclaim::Never,
        target: Target::None,
    });
    entries.sort_by_key(|e| e.kind);
    let total = entries.iter().map(|e| e.size).sum();
    Ok(Usage { entries, total })
}

/// What to prune.
#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    /// Also what only `--all` removes: cache mounts, unpacked layers of
    /// named images, cache records whose layer a named image holds.
    pub all: bool,
    /// Stop once the store is at or under this many bytes.
    pub keep_storage: Option<u64>,
    /// Only what was last used before this time (`--filter until=`).
    pub used_before: Option<SystemTime>,
    /// Never what was used at or after this time (what the build that
    /// just finished used).
    pub protect_since: Option<SystemTime>,
}

/// One removed entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Its id (as in [`Entry::id`]).
    pub id: String,
    /// Its kind.
    pub kind: Kind,
    /// Allocated bytes freed.
    pub freed: u64,
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The entries removed, least recently used first.
    pub removed: Vec<Removed>,
    /// Blobs deleted (with records or unreferenced).
    pub blobs_removed: usize,
    /// Allocated bytes freed.
    pub freed: u64,
    /// The store's allocated bytes before.
    pub before: u64,
}

/// Removes `path` and, for a directory, everything under it, at any depth
/// (directories left `0000` by RUN steps and overlay work directories are
/// made writable first).
fn remove_path(path: &Path) -> Result<(), StorageError> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(io_err("removing", path)(io::Error::from(
            io::ErrorKind::InvalidInput,
        )));
    };
    let parent = match Dir::open(parent) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("opening", parent)(e)),
    };
    match parent.remove_tree(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        // remove_tree's messages name the path already.
        Err(e) => Err(io_err("removing", path)(e)),
    }
}

/// Removes build cache, least recently used first, as `opts` says; returns
/// what went. The caller holds the store's lock exclusively (`_lock`), so
/// nothing a running build uses can go. Blobs named images reach, and the
/// names, are never touched.
///
/// # Errors
/// I/O errors measuring or removing; what was removed before stays removed.
pub fn prune(
    store: &LocalStore,
    _lock: &StoreLock,
    opts: &PruneOptions,
) -> Result<PruneReport, StorageError> {
    let usage = usage(store)?;
    let mut report = PruneReport {
        before: usage.total,
        ..PruneReport::default()
    };
    let named = store.named_content()?;
    let index = CacheIndex::new(store.root());
    // How many records still hold each blob and layer.
    let mut blob_users: BTreeMap<Digest, usize> = BTreeMap::new();
    let mut diff_users: BTreeMap<String, usize> = BTreeMap::new();
    for e in &usage.entries {
        if let Target::Record { blob, diff, .. } = &e.target {
            if let Some(b) = blob {
                *blob_users.entry(b.clone()).or_default() += 1;
            }
            if let Some(d) = diff {
                *diff_users.entry(d.clone()).or_default() += 1;
            }
        }
    }
    let mut candidates: Vec<&Entry> = usage
        .entries
        .iter()
        .filter(|e| match e.reclaim {
            Reclaim::Default => true,
            Reclaim::All => opts.all,
            Reclaim::Never => false,
        })
        .filter(|e| {
            let used = e.last_used.unwrap_or(UNIX_EPOCH);
            opts.used_before.is_none_or(|t| used < t) && opts.protect_since.is_none_or(|t| used < t)
        })
        .collect();
    // Least recently used first; unknown times first of all.
    candidates.sort_by_key(|e| (e.last_used.unwrap_or(UNIX_EPOCH), e.kind, e.id.clone()));
    let mut current = usage.total;
    for entry in candidates {
        if opts.keep_storage.is_some_and(|k| current <= k) {
            break;
        }
        let mut seen = HashSet::new();
        let mut freed = 0;
        match &entry.target {
            Target::None => continue,
            Target::Blob(d) => {
                freed += allocated(&store.blob_path(d), &mut seen)?;
                store.delete(d)?;
                report.blobs_removed += 1;
            }
            Target::Paths(paths) => {
                for p in paths {
                    freed += allocated(p, &mut seen)?;
                    remove_path(p)?;
                }
            }
            Target::Record { file, blob, diff } => {
                freed += allocated(file, &mut seen)?;
                remove_path(file)?;
                if let Some(b) = blob {
                    let users = blob_users.entry(b.clone()).or_default();
                    *users = users.saturating_sub(1);
                    if *users == 0 && !named.blobs.contains(b) {
                        let path = store.blob_path(b);
                        if path.exists() {
                            freed += allocated(&path, &mut seen)?;
                            store.delete(b)?;
                            report.blobs_removed += 1;
                        }
                    }
                }
                if let Some(d) = diff {
                    let users = diff_users.entry(d.clone()).or_default();
                    *users = users.saturating_sub(1);
                    if *users == 0 && !named.diff_ids.contains(&format!("sha256:{d}")) {
                        for p in [store.root().join("layers").join(d), index.layer_marker(d)] {
                            freed += allocated(&p, &mut seen)?;
                            remove_path(&p)?;
                        }
                    }
                }
            }
        }
        current = current.saturating_sub(freed);
        report.freed += freed;
        report.removed.push(Removed {
            id: entry.id.clone(),
            kind: entry.kind,
            freed,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporaries_of_live_processes_are_kept() {
        let me = std::process::id();
        assert!(owner_alive(&format!("tmp-{me}-3")));
        assert!(owner_alive(&format!("abc.tmp-{me}-ThreadId(2)")));
        assert!(!owner_alive("tmp-4294967295-1"));
        assert!(!owner_alive(".tmpAbC"));
    }

    #[test]
    fn usage_adds_up_and_prune_goes_oldest_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("store")).expect("store");
        let root = store.root().to_path_buf();
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        for (name, size) in [("a", 40_000), ("b", 80_000)] {
            let d = root.join("contexts");
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join(name), vec![1u8; size]).expect("write");
        }
        let f = fs::File::options()
            .append(true)
            .open(root.join("contexts/a"))
            .expect("open");
        f.set_modified(old).expect("mtime");
        let blob = store.write_blob(&[7u8; 10_000], None).expect("blob");
        let u = usage(&store).expect("usage");
        assert_eq!(u.total, u.entries.iter().map(|e| e.size).sum::<u64>());
        let mut seen = HashSet::new();
        assert_eq!(u.total, allocated(&root, &mut seen).expect("walk"));
        assert_eq!(u.by_kind(Kind::Context).0, 2);

        // Only what is older than 10 minutes: context a.
        let lock = store.lock_exclusive().expect("lock");
        let opts = PruneOptions {
            used_before: Some(SystemTime::now() - std::time::Duration::from_secs(600)),
            ..PruneOptions::default()
        };
        let r = prune(&store, &lock, &opts).expect("prune");
        assert_eq!(r.removed.len(), 1, "{r:?}");
        assert_eq!(r.removed[0].id, "a");
        assert!(root.join("contexts/b").exists());
        // Everything the default removes: b and the unreferenced blob.
        let r = prune(&store, &lock, &PruneOptions::default()).expect("prune");
        assert_eq!(r.removed.len(), 2, "{r:?}");
        assert_eq!(r.blobs_removed, 1);
        assert!(!store.blob_path(&blob).exists());
    }
}
