//! The build context: `.dockerignore` (Docker's exact semantics), COPY/ADD
//! source resolution, filtered walks, content checksums with a persistent
//! metadata index, and contexts sent as tar streams.
//!
//! Paths inside the context are slash-separated and relative to its root;
//! the root itself is `""`.

mod cache;
mod checksum;
mod error;
pub mod git;
mod source;
mod tarball;
pub mod url;
mod walk;

pub use cache::{CacheRecord, ChecksumCache, FileStamp};
pub use checksum::{ContextDigest, HashStats};
pub use error::ContextError;
pub use kiln_patterns::{DockerIgnore, IgnorePattern};
pub use source::clean_source;
pub use walk::{EntryKind, WalkEntry};

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// One path a COPY/ADD source resolved to. A directory stands for its whole
/// non-excluded subtree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextEntry {
    /// The real (symlink-free) path relative to the context root; `""` is
    /// the root.
    pub rel_path: String,
    /// What it is (a final symlink is not followed).
    pub kind: EntryKind,
    /// The path on disk.
    pub abs_path: PathBuf,
}

/// A build context directory with its `.dockerignore` rules.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    root_key: String,
    ignore: DockerIgnore,
    cache: Mutex<ChecksumCache>,
    /// The index being read in the background (see
    /// [`BuildContext::with_checksum_cache`]), until the first use.
    loading: Mutex<Option<std::thread::JoinHandle<ChecksumCache>>>,
    cache_path: Option<PathBuf>,
    files_hashed: AtomicU64,
    bytes_hashed: AtomicU64,
    cache_hits: AtomicU64,
}

impl BuildContext {
    /// Opens the context directory `root`. The ignore file is
    /// `<dockerfile>.dockerignore` next to `dockerfile` when that exists
    /// (e.g. `app.Dockerfile.dockerignore`), else `<root>/.dockerignore`,
    /// else nothing is excluded. `dockerfile` is used as given (absolute,
    /// or relative to the current directory).
    pub fn open(root: &Path, dockerfile: Option<&Path>) -> Result<BuildContext, ContextError> {
        let root = std::fs::canonicalize(root).map_err(ContextError::io(root))?;
        if !root.is_dir() {
            return Err(ContextError::NotADirectory {
                path: root.display().to_string(),
            });
        }
        let specific = dockerfile.and_then(|df| {
            let name = df.file_name()?;
            let mut ignore_name = name.to_os_string();
            ignore_name.push(".dockerignore");
            Some(df.with_file_name(ignore_name))
        });
        let ignore_file = specific
            .filter(|p| p.is_file())
            .or_else(|| Some(root.join(".dockerignore")).filter(|p| p.is_file()));
        let ignore = match ignore_file {
            Some(path) => DockerIgnore::read(&path)?,
            None => DockerIgnore::empty(),
        };
        Ok(BuildContext {
            root_key: root.to_string_lossy().into_owned(),
            root,
            ignore,
            cache: Mutex::new(ChecksumCache::new()),
            loading: Mutex::new(None),
            cache_path: None,
            files_hashed: AtomicU64::new(0),
            bytes_hashed: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }

    /// Extracts a tar stream (plain or gzip) into `dest_dir` (created if
    /// missing; entries escaping it are refused) and opens it as a context.
    /// `dockerfile_name` is the Dockerfile's path inside the archive
    /// (default `Dockerfile`); it picks `<name>.dockerignore` if present.
    pub fn from_tar<R: Read>(
        reader: R,
        dest_dir: &Path,
        dockerfile_name: Option<&str>,
    ) -> Result<BuildContext, ContextError> {
        tarball::extract(reader, dest_dir)?;
        let name = clean_source(dockerfile_name.unwrap_or("Dockerfile"));
        let dockerfile = (!name.is_empty()).then(|| dest_dir.join(name));
        BuildContext::open(dest_dir, dockerfile.as_deref())
    }

    /// Replaces the exclusion rules (e.g. patterns given on the command line).
    pub fn with_ignore(mut self, ignore: DockerIgnore) -> BuildContext {
        self.ignore = ignore;
        self
    }

    /// Uses the metadata index saved at `path` (a missing or corrupt file
    /// starts an empty one). It is read on a thread of its own from now
    /// until the first checksum needs it, so reading it overlaps with the
    /// rest of the build's start and with the first walk. Save it with
    /// [`BuildContext::save_checksum_cache`].
    pub fn with_checksum_cache(mut self, path: &Path) -> BuildContext {
        let owned = path.to_path_buf();
        let spawned = std::thread::Builder::new()
            .name("kiln-ctx-index".into())
            .spawn(move || ChecksumCache::load(&owned));
        match spawned {
            Ok(handle) => self.loading = Mutex::new(Some(handle)),
            Err(_) => self.cache = Mutex::new(ChecksumCache::load(path)),
        }
        self.cache_path = Some(path.to_path_buf());
        self
    }

    /// Writes the metadata index to the file given to
    /// [`BuildContext::with_checksum_cache`] (atomically); does nothing
    /// without one.
    pub fn save_checksum_cache(&self) -> Result<(), ContextError> {
        match &self.cache_path {
            Some(path) => self.lock_cache().save(path),
            None => Ok(()),
        }
    }

    /// The canonical context root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The exclusion rules in force.
    pub fn ignore(&self) -> &DockerIgnore {
        &self.ignore
    }

    /// Whether the context-relative `rel` path is excluded by `.dockerignore`
    /// (it or a parent matches, the last matching pattern wins).
    pub fn is_excluded(&self, rel: &str) -> bool {
        self.ignore.is_excluded(&clean_source(rel))
    }

    /// Whether the context-relative `rel` is part of the context as COPY
    /// sees it: not excluded, or an excluded directory below which an
    /// exception re-includes something (`docs` + `!docs/README.md` keeps
    /// `docs`). Unlike [`BuildContext::is_excluded`] this looks at the disk;
    /// a missing path gives `false`.
    pub fn includes(&self, rel: &str) -> Result<bool, ContextError> {
        let rel = clean_source(rel);
        let abs = kiln_executor::names::rel_path(&self.root, &rel);
        match std::fs::symlink_metadata(&abs) {
            Ok(md) => self.is_present(&rel, EntryKind::from_file_type(md.file_type())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ContextError::io(abs)(e)),
        }
    }

    /// Resolves a COPY/ADD source as written (after variable expansion).
    /// The path is cleaned (`..` clamped at the root, leading `/` and `./`
    /// dropped) and symlinks in its directories are followed inside the
    /// context. With wildcards (`*`, `?`, `[`), each component is matched
    /// like Go's `filepath.Match` against non-excluded entries, and no match
    /// gives an empty list; otherwise the path must exist and not be
    /// excluded, else [`ContextError::NotFound`]. Only the directories the
    /// source names are read.
    pub fn resolve(&self, source: &str) -> Result<Vec<ContextEntry>, ContextError> {
        self.resolve_source(source)
    }

    /// The non-excluded entries below directory `rel_dir` (not the directory
    /// itself), in walk order: each directory's names sorted bytewise, a
    /// directory before its contents. Symlinks in `rel_dir` are followed
    /// inside the context; paths in the result are real paths relative to
    /// the context root.
    pub fn walk(&self, rel_dir: &str) -> Result<Vec<WalkEntry>, ContextError> {
        let (rel, abs) = self.walk_dir(rel_dir)?;
        let mut out: Vec<WalkEntry> = Vec::new();
        walk::walk_into(&self.ignore, &rel, &abs, &mut out)?;
        Ok(out)
    }

    /// The checksum of `entries` and their non-excluded subtrees: a sha256
    /// over every file, directory and symlink in path order, of its path,
    /// type, permission bits (with setuid/setgid/sticky), uid, gid, symlink
    /// target and, for regular files, content sha256. Timestamps do not
    /// count. Unchanged files are not re-read (see
    /// [`BuildContext::with_checksum_cache`]); the others are hashed in
    /// parallel.
    pub fn checksum(&self, entries: &[ContextEntry]) -> Result<ContextDigest, ContextError> {
        // The walk first (the index may still be loading meanwhile), then
        // one pass over the index, then the files it has no hash for.
        let selection = self.walk_selection(entries)?;
        let mut selection = selection;
        let cache = self.lock_cache();
        let misses: Vec<(usize, u64, PathBuf)> = selection
            .look_up(&cache, &self.root_key)
            .into_iter()
            .map(|(index, size, rel)| {
                (index, size, kiln_executor::names::rel_path(&self.root, rel))
            })
            .collect();
        drop(cache);
        let hits = selection.files() - misses.len();
        // Nothing to read (a no-op rebuild): no hashing threads either.
        let (hashed, bytes) = if misses.is_empty() {
            (Vec::new(), 0)
        } else {
            checksum::hash_pipelined(|send| {
                for (index, size, path) in misses {
                    send(index, path, size);
                }
                Ok(())
            })?
        };
        self.cache_hits.fetch_add(hits as u64, Ordering::Relaxed);
        self.files_hashed
            .fetch_add(hashed.len() as u64, Ordering::Relaxed);
        self.bytes_hashed.fetch_add(bytes, Ordering::Relaxed);
        if !hashed.is_empty() {
            let mut cache = self.lock_cache();
            for (index, hash) in hashed {
                selection.set_hashed(&mut cache, &self.root_key, index, hash);
            }
        }
        Ok(selection.digest())
    }

    /// `entries` and their non-excluded subtrees, in walk order; each
    /// directory's top-level names are walked in parallel.
    fn walk_selection(
        &self,
        entries: &[ContextEntry],
    ) -> Result<checksum::Selection, ContextError> {
        let threads = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1);
        let mut selection = checksum::Selection::default();
        for entry in entries {
            let (meta, link_target) = walk::stat_path(&entry.abs_path)?;
            walk::WalkSink::push(
                &mut selection,
                &entry.rel_path,
                walk::AbsPath::Full(&entry.abs_path),
                &meta,
                link_target,
            )?;
            if meta.kind == EntryKind::Dir {
                let parts = walk::walk_parallel(
                    &self.ignore,
                    &entry.rel_path,
                    &entry.abs_path,
                    threads,
                    &checksum::Selection::default,
                )?;
                for part in parts {
                    selection.append(part);
                }
            }
        }
        Ok(selection)
    }

    /// The hashing work done so far by [`BuildContext::checksum`].
    pub fn hash_stats(&self) -> HashStats {
        HashStats {
            files_hashed: self.files_hashed.load(Ordering::Relaxed),
            bytes_hashed: self.bytes_hashed.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    /// The metadata index, once it is loaded.
    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ChecksumCache> {
        // Held while the load is joined: no caller sees the empty index
        // that stands in until then.
        let mut loading = self.loading.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(handle) = loading.take() {
            // A load that panicked leaves the index empty: only a cost.
            let loaded = handle.join().unwrap_or_default();
            *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = loaded;
        }
        drop(loading);
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_is_excluded_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(".dockerignore"), "*.log\n/out\n").expect("write");
        std::fs::write(dir.path().join("f"), "").expect("write");
        let ctx = BuildContext::open(dir.path(), None).expect("open");
        let cases: &[(&str, bool)] = &[
            ("a.log", true),
            ("./a.log", true),
            ("/a.log", true),
            ("../a.log", true),
            ("d/a.log", false),
            ("out/x", true),
            ("", false),
            (".", false),
        ];
        for (path, want) in cases {
            assert_eq!(ctx.is_excluded(path), *want, "{path:?}");
        }
        let errors: &[&Path] = &[&dir.path().join("missing"), &dir.path().join("f")];
        for root in errors {
            let err = BuildContext::open(root, None).expect_err("not a context");
            assert!(err.to_string().contains(&*root.to_string_lossy()), "{err}");
        }
    }
}
