//! The content-addressed blob store.
//!
//! Committed blobs live under `blobs/<algorithm>/<hex>` and are never
//! modified in place; blobs being written live in `ingest/` (every path is
//! named by [`StoreLayout`]).
//!
//! The root is private to its owner (mode 0700), and so are the
//! directories that hold what images and build steps made (`layers/`,
//! `cache-mounts/`, ...). Layers hold setuid-root files and device nodes
//! that another host user must never reach, so [`LocalStore::open`] also
//! repairs a store that an older kiln made 0755.
//!
//! A [`BlobWriter`] writes to a file in `ingest/`, hashing as it goes.
//! [`BlobWriter::commit`] flushes and syncs it, checks the digest against
//! the expected one, and only then renames it into `blobs/` and syncs the
//! directory. A crash, a failed download or a digest mismatch therefore
//! never leaves a partial or wrong blob under a digest. Dropping a writer
//! without committing removes its ingest file. Two processes committing the
//! same content race harmlessly: the rename is atomic and the content is
//! identical.
//!
//! A pipelined writer ([`BlobIngester::writer_pipelined`],
//! [`LocalStore::writer_with`]) has the same guarantees but hands the
//! writing and hashing to a worker thread, so a producer that builds a
//! big blob (a layer's tar) runs beside them on another core.

use crate::digest::Digest;
use crate::layout::{StoreLayout, CREATED_DIRS, REPAIRED_DIRS};
use sha2::{Digest as _, Sha256};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

mod pipeline;

use pipeline::Pipeline;
pub use pipeline::PipelineOptions;

/// What can go wrong in the store. Every variant names the path or digest.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O operation on a store path failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Written content does not match the digest it was expected to have.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller asked for.
        expected: Digest,
        /// The digest of what was written.
        actual: Digest,
    },
    /// Written content does not have the expected size.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The digest of what was written.
        digest: Digest,
        /// The size the caller asked for.
        expected: u64,
        /// The size written.
        actual: u64,
    },
    /// No blob with this digest is in the store.
    #[error("blob {0} not found in the store")]
    NotFound(Digest),
}

/// Shorthand for store results.
pub type Result<T> = std::result::Result<T, StoreError>;

/// Wraps an I/O error with the action and path it concerns.
pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        action,
        path,
        source,
    }
}

/// Reads committed blobs.
pub trait BlobReader {
    /// Opens a committed blob for reading.
    ///
    /// # Errors
    /// [`StoreError::NotFound`] when the blob is absent.
    fn open(&self, digest: &Digest) -> Result<File>;

    /// The size of a committed blob, or `None` when it is absent.
    fn size(&self, digest: &Digest) -> Option<u64>;

    /// True when the blob is committed.
    fn exists(&self, digest: &Digest) -> bool {
        self.size(digest).is_some()
    }

    /// Reads a whole blob into memory (for manifests and configs).
    ///
    /// # Errors
    /// [`StoreError::NotFound`] or an I/O error naming the blob's path.
    fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut file = self.open(digest)?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|source| StoreError::Io {
                action: "reading blob",
                path: PathBuf::from(digest.as_str()),
                source,
            })?;
        Ok(buf)
    }
}

/// Starts new blobs.
pub trait BlobIngester {
    /// A writer for a new blob; nothing is visible until it is committed.
    ///
    /// # Errors
    /// An I/O error when the ingest file cannot be created.
    fn writer(&self) -> Result<BlobWriter>;

    /// A writer for a big blob from a local producer: like
    /// [`BlobIngester::writer`] (same guarantees, same [`BlobWriter`]),
    /// but writing and hashing run on a worker thread, pipelined with the
    /// caller's writes. It buffers by itself, so small writes cost a copy,
    /// not a system call. Stores without a pipelined writer give a plain
    /// one.
    ///
    /// # Errors
    /// An I/O error when the ingest file cannot be created or the worker
    /// cannot be started.
    fn writer_pipelined(&self) -> Result<BlobWriter> {
        self.writer()
    }

    /// Writes `data` as a blob and commits it.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] when `expected` is given and differs.
    fn write_blob(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let mut writer = self.writer()?;
        writer
            .write_all(data)
            .map_err(io_err("writing", &writer.path))?;
        writer.commit(expected, Some(data.len() as u64))
    }
}

/// Reads and starts blobs: the role of code that fetches or converts a
/// blob into a store (`&dyn BlobStore` where [`BlobReader`] and
/// [`BlobIngester`] are both needed).
pub trait BlobStore: BlobReader + BlobIngester {}

impl<T: BlobReader + BlobIngester + ?Sized> BlobStore for T {}

/// A content store in a directory on the local disk.
#[derive(Debug, Clone)]
pub struct LocalStore {
    layout: StoreLayout,
}

static INGEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The mode of the store root and of the directories above.
const PRIVATE_MODE: u32 = 0o700;

impl LocalStore {
    /// Opens (creating if needed) a store rooted at `root`, private to its
    /// owner: the root, `blobs/`, `ingest/` and `layers/` are created mode
    /// 0700, and an existing root or top-level store directory that other
    /// users could enter is made 0700. Missing parents of the root get the
    /// usual mode.
    ///
    /// # Errors
    /// An I/O error when a directory cannot be created or made private.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalStore> {
        let root = root.into();
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err("creating directory", parent))?;
        }
        private_dir(&root).or_else(unless_read_only)?;
        for dir in CREATED_DIRS {
            private_dir(&root.join(dir)).or_else(unless_read_only)?;
        }
        for dir in REPAIRED_DIRS {
            let path = root.join(dir);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                make_private(&path).or_else(unless_read_only)?;
            }
        }
        let layout = StoreLayout::new(root);
        // What this process leaves here is known to be its while it runs.
        let owners = layout.owners();
        crate::owner::register(&owners)
            .map_err(io_err("registering in", &owners))
            .or_else(unless_read_only)?;
        Ok(LocalStore { layout })
    }

    /// Whether the store is on a filesystem mounted read-only: commands
    /// that only read work from it, and a build works when everything it
    /// needs is already there.
    pub fn is_read_only(&self) -> bool {
        is_on_read_only_fs(self.root())
    }

    /// A private staging directory, removed when dropped: in the store
    /// ([`StoreLayout::staging`], named for this process so a sweep knows
    /// whose it is), or under `$TMPDIR` when the store is read-only.
    ///
    /// # Errors
    /// The I/O error of creating it.
    pub fn staging_dir(&self) -> io::Result<tempfile::TempDir> {
        let prefix = StoreLayout::staging_prefix();
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        if self.is_read_only() {
            builder.tempdir()
        } else {
            builder.tempdir_in(self.layout.staging())
        }
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        self.layout.root()
    }

    /// Where everything lives in this store.
    pub fn layout(&self) -> &StoreLayout {
        &self.layout
    }

    /// Where a committed blob lives.
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.layout.blob(digest)
    }

    /// Writes `data` as a blob and commits it ([`BlobIngester::write_blob`],
    /// callable without the trait in scope).
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`] when `expected` is given and differs.
    pub fn write_blob(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        BlobIngester::write_blob(self, data, expected)
    }

    /// A pipelined writer with `options` ([`BlobIngester::writer_pipelined`]
    /// uses the defaults).
    ///
    /// # Errors
    /// An I/O error when the ingest file cannot be created or the worker
    /// cannot be started.
    pub fn writer_with(&self, options: PipelineOptions) -> Result<BlobWriter> {
        let (path, file) = self.ingest_file()?;
        let pipeline = Pipeline::start(file, options);
        // On failure the ingest file is removed by the writer's drop.
        let mut writer = BlobWriter {
            store: self.clone(),
            path,
            sink: None,
            written: 0,
        };
        let pipeline = pipeline.map_err(io_err("starting a writer thread for", &writer.path))?;
        writer.sink = Some(Sink::Pipelined(pipeline));
        Ok(writer)
    }

    /// Creates a new, empty file in `ingest/`.
    fn ingest_file(&self) -> Result<(PathBuf, File)> {
        let n = INGEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = self
            .layout
            .ingest()
            .join(format!("{}-{n}-{nanos}", crate::process_tag()));
        let file = File::create_new(&path).map_err(io_err("creating ingest file", &path))?;
        Ok((path, file))
    }

    /// Every committed blob's digest.
    ///
    /// # Errors
    /// An I/O error naming the directory that could not be listed.
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        let dir = self.layout.blob_dir("sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            let name = entry.file_name();
            if let Ok(d) = format!("sha256:{}", name.to_string_lossy()).parse() {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a committed blob; absent blobs are not an error.
    ///
    /// # Errors
    /// An I/O error naming the blob's path.
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        self.forget_sources(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &path)(e)),
        }
    }
}

/// Whether `path` exists on a filesystem mounted read-only.
pub fn is_on_read_only_fs(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: a valid C string and out-parameter.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0) && st.f_flag & libc::ST_RDONLY != 0
}

/// Passes an error on unless it says the filesystem is read-only: a store
/// on a read-only mount is opened as it is, for commands that only read it
/// (and writes to it fail with that error later). Its modes are repaired
/// when it is next opened writable.
fn unless_read_only(err: StoreError) -> Result<()> {
    match &err {
        StoreError::Io { source, .. } if source.kind() == io::ErrorKind::ReadOnlyFilesystem => {
            Ok(())
        }
        _ => Err(err),
    }
}

/// Creates `dir` mode 0700 (its parent must exist), or makes an existing
/// one private.
fn private_dir(dir: &Path) -> Result<()> {
    match fs::DirBuilder::new().mode(PRIVATE_MODE).create(dir) {
        // The umask may only have taken bits away; the owner keeps rwx.
        Ok(()) => make_private(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => make_private(dir),
        Err(e) => Err(io_err("creating directory", dir)(e)),
    }
}

/// Takes every group and other bit off the directory `dir` (following a
/// symlink the owner put there) and gives its owner rwx; a no-op when
/// already so.
fn make_private(dir: &Path) -> Result<()> {
    let mode = fs::metadata(dir)
        .map_err(io_err("reading the mode of", dir))?
        .permissions()
        .mode()
        & 0o7777;
    if mode == PRIVATE_MODE {
        return Ok(());
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_MODE))
        .map_err(io_err("making private (mode 0700)", dir))
}

/// The store location when none is given: `$KILN_ROOT`; else, for root,
/// `/var/lib/kiln`; else `$XDG_DATA_HOME/kiln`, falling back to
/// `~/.local/share/kiln`. `None` when none of these can be determined
/// (no `HOME` for a non-root user).
pub fn default_root() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(root) = env("KILN_ROOT") {
        return Some(PathBuf::from(root));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return Some(PathBuf::from("/var/lib/kiln"));
    }
    if let Some(data) = env("XDG_DATA_HOME") {
        return Some(PathBuf::from(data).join("kiln"));
    }
    env("HOME").map(|h| PathBuf::from(h).join(".local/share/kiln"))
}

impl BlobReader for LocalStore {
    fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::NotFound(digest.clone())
            } else {
                io_err("opening", &path)(e)
            }
        })
    }

    fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }
}

impl BlobIngester for LocalStore {
    fn writer(&self) -> Result<BlobWriter> {
        let (path, file) = self.ingest_file()?;
        Ok(BlobWriter {
            store: self.clone(),
            path,
            sink: Some(Sink::Inline {
                file,
                hasher: Sha256::new(),
            }),
            written: 0,
        })
    }

    fn writer_pipelined(&self) -> Result<BlobWriter> {
        self.writer_with(PipelineOptions::default())
    }
}

/// A blob being written. Implements [`Write`]; call [`BlobWriter::commit`]
/// to make it visible. Dropping it uncommitted discards what was written
/// (and stops a pipelined writer's worker thread).
#[derive(Debug)]
pub struct BlobWriter {
    store: LocalStore,
    path: PathBuf,
    /// `None` once committed.
    sink: Option<Sink>,
    written: u64,
}

/// Where a writer's bytes go.
#[derive(Debug)]
enum Sink {
    /// Written and hashed on the caller's thread.
    Inline { file: File, hasher: Sha256 },
    /// Handed to a worker thread that writes and hashes.
    Pipelined(Pipeline),
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.sink.as_mut() {
            None => return Err(io::Error::other("blob writer already committed")),
            Some(Sink::Inline { file, hasher }) => {
                let n = file.write(buf)?;
                hasher.update(&buf[..n]);
                n
            }
            Some(Sink::Pipelined(pipeline)) => {
                pipeline.write_all(buf)?;
                buf.len()
            }
        };
        self.written += n as u64;
        Ok(n)
    }

    /// Nothing to flush: what was written becomes durable in `commit`. A
    /// pipelined writer keeps its partly filled buffer (handing it over
    /// early would only cost) but reports an earlier failure.
    fn flush(&mut self) -> io::Result<()> {
        match self.sink.as_mut() {
            Some(Sink::Inline { file, .. }) => file.flush(),
            Some(Sink::Pipelined(pipeline)) => pipeline.check(),
            None => Ok(()),
        }
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Verifies and publishes the blob: syncs it, checks `expected` digest
    /// and size when given, renames it into `blobs/` and syncs the directory.
    /// On any error the ingest file is removed and nothing is published.
    ///
    /// # Errors
    /// [`StoreError::DigestMismatch`], [`StoreError::SizeMismatch`] or an
    /// I/O error naming the path.
    pub fn commit(mut self, expected: Option<&Digest>, size: Option<u64>) -> Result<Digest> {
        let (file, hasher) = match self.sink.take() {
            None => {
                return Err(io_err("committing", &self.path)(io::Error::other(
                    "already committed",
                )))
            }
            Some(Sink::Inline { file, hasher }) => (file, hasher),
            Some(Sink::Pipelined(pipeline)) => {
                pipeline.finish().map_err(io_err("writing", &self.path))?
            }
        };
        file.sync_all().map_err(io_err("syncing", &self.path))?;
        drop(file);
        let actual = Digest::from_sha256(hasher.finalize().as_slice());
        if let Some(expected) = expected {
            if *expected != actual {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        if let Some(expected) = size {
            if expected != self.written {
                return Err(StoreError::SizeMismatch {
                    digest: actual,
                    expected,
                    actual: self.written,
                });
            }
        }
        let target = self.store.blob_path(&actual);
        fs::rename(&self.path, &target).map_err(io_err("publishing blob", &target))?;
        if let Some(dir) = target.parent() {
            if let Ok(d) = File::open(dir) {
                d.sync_all().map_err(io_err("syncing", dir))?;
            }
        }
        Ok(actual)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // A worker still writing is stopped first, so neither it nor the
        // file outlives the writer.
        if let Some(Sink::Pipelined(pipeline)) = self.sink.as_mut() {
            pipeline.abort();
        }
        // Committed writers renamed their file away; everything else is
        // discarded here, so no partial blob outlives its writer.
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    /// A pipelined writer whose file was opened read-only: every write(2)
    /// of it fails (EBADF), on whichever thread writes.
    fn failing_writer(store: &LocalStore, worker_writes: bool) -> BlobWriter {
        let (path, file) = store.ingest_file().expect("ingest file");
        drop(file);
        let read_only = File::open(&path).expect("reopen read-only");
        let options = PipelineOptions {
            chunk_size: 64 << 10,
            buffers: 2,
            worker_writes,
            writeback_every: None,
        };
        BlobWriter {
            store: store.clone(),
            path,
            sink: Some(Sink::Pipelined(
                Pipeline::start(read_only, options).expect("worker"),
            )),
            written: 0,
        }
    }

    fn is_empty(dir: &Path) -> bool {
        fs::read_dir(dir).expect("list").next().is_none()
    }

    /// Whether this process has a descriptor open on `path` (deleted).
    fn has_open_fd(path: &Path) -> bool {
        fs::read_dir("/proc/self/fd")
            .expect("fds")
            .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
            .any(|target| {
                let target = target.to_string_lossy();
                target.strip_suffix(" (deleted)").unwrap_or(&target) == path.to_string_lossy()
            })
    }

    #[test]
    fn a_failing_write_on_the_worker_surfaces_and_leaves_nothing() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(tmp.path().join("store")).expect("open");
        for worker_writes in [true, false] {
            let mut w = failing_writer(&store, worker_writes);
            // 2 buffers of 64 KiB: within 4 MiB the writer must wait for
            // the worker, and so learn that it failed.
            let err = w
                .write_all(&vec![7u8; 4 << 20])
                .expect_err("the write fails");
            assert_eq!(err.raw_os_error(), Some(libc::EBADF), "{err}");
            let again = w.write(b"more").expect_err("a failed writer stays failed");
            assert!(again.to_string().contains("failed earlier"), "{again}");
            let err = w.commit(None, None).expect_err("commit fails");
            assert!(matches!(err, StoreError::Io { .. }), "{err}");
            assert!(
                is_empty(&store.layout.ingest()),
                "worker_writes {worker_writes}"
            );
            assert!(store.blobs().expect("blobs").is_empty());
        }
    }

    #[test]
    fn a_failure_seen_only_at_commit_is_an_error_naming_the_ingest_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(tmp.path().join("store")).expect("open");
        for worker_writes in [true, false] {
            let mut w = failing_writer(&store, worker_writes);
            // Less than a buffer: nothing reaches the file before commit.
            w.write_all(b"a small blob").expect("buffered");
            let path = w.path.clone();
            match w.commit(None, None) {
                Err(StoreError::Io {
                    action,
                    path: p,
                    source,
                }) => {
                    assert_eq!(action, "writing");
                    assert_eq!(p, path);
                    assert_eq!(source.raw_os_error(), Some(libc::EBADF));
                }
                other => panic!("{other:?}"),
            }
            assert!(is_empty(&store.layout.ingest()));
            assert!(store.blobs().expect("blobs").is_empty());
        }
    }

    #[test]
    fn dropping_a_pipelined_writer_stops_its_worker_and_removes_the_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(tmp.path().join("store")).expect("open");
        let mut w = store.writer_pipelined().expect("writer");
        w.write_all(&vec![1u8; (8 << 20) + 5]).expect("write");
        let path = w.path.clone();
        assert!(path.exists());
        assert!(has_open_fd(&path), "the worker holds the ingest file");
        drop(w);
        assert!(!path.exists());
        // The worker owned the only descriptor: it is closed, so the
        // worker has returned.
        assert!(!has_open_fd(&path), "the worker is gone");
        assert!(is_empty(&store.layout.ingest()));
        assert!(store.blobs().expect("blobs").is_empty());
    }

    #[test]
    fn open_makes_a_new_or_old_store_private() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("a/b/store");
        LocalStore::open(&root).expect("open");
        for dir in ["", "blobs", "blobs/sha256", "ingest", "layers"] {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
        // An older kiln's store: everything 0755, a cache mount too.
        for dir in ["", "layers", "blobs", "cache-mounts"] {
            fs::create_dir_all(root.join(dir)).expect("mkdir");
            fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        LocalStore::open(&root).expect("open");
        for dir in ["", "layers", "blobs", "cache-mounts"] {
            assert_eq!(mode(&root.join(dir)), 0o700, "{dir}");
        }
    }
}
