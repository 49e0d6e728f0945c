//! `RUN --mount=type=cache` contents carried by an exported cache
//! (`--cache-to ...,cache-mounts=true`) and restored by `--cache-from`.
//!
//! A mount is packed as a tar of its directory (the root entry `./`
//! first, then every entry in file-name order, depth first; numeric
//! owners, modes without setuid/setgid, mtimes in seconds, no user or
//! group names), cut into **chunks** at entry boundaries, each chunk a
//! gzip blob (kiln's layer gzip: default level, no name or time) that is a layer of the cache
//! artifact ([`MOUNT_CHUNK_MEDIA_TYPE`]). The same tree gives the same
//! bytes, so an unchanged chunk has the same digest and the registry
//! already has it: the push skips it. Nor is it compressed again: the
//! store's conversion records ([`kiln_oci::conversions`]) map the digest
//! of a chunk's tar to the blob made from it last time.
//!
//! **Chunking.** A chunk ends after an entry whose path hashes (sha256)
//! to a first byte divisible by [`CUT_EVERY`], or once it holds
//! [`CHUNK_TARGET`] bytes. Boundaries depend on names, not on offsets, so
//! a changed, added or removed file changes its own chunk (and at most
//! the next when it was a boundary), not every chunk after it. Chunks
//! carry no tar end marker: restoring reads them one after the other as
//! one tar stream.
//!
//! **Restoring** happens only into a cache mount that is missing or
//! empty: a local one with content is never overwritten. Every chunk
//! comes through the store, whose writer verifies its digest and size;
//! then each chunk is read once to refuse hostile entries (`..`, absolute
//! paths, overlay whiteouts, devices, fifos, hardlinks, setuid/setgid
//! modes, xattrs, more than [`RESTORE_MAX_SIZE`] bytes or
//! [`RESTORE_MAX_ENTRIES`] entries), and only then unpacked with the
//! store's layer unpacker ([`kiln_executor::unpack`]: nothing escapes the
//! directory, which appears under its final name only once complete).

use super::index::CachedLayer;
use super::remote::FetchError;
use crate::graph::{Graph, VertexId};
use crate::op::{ExecMount, Op};
use kiln_oci::compress::{Compression, LayerCompressor};
use kiln_oci::{BlobIngester, Digest, LocalStore, StoreError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The media type of a cache mount chunk in a cache artifact.
pub const MOUNT_CHUNK_MEDIA_TYPE: &str = "application/vnd.kiln.cache.mount.v1.tar+gzip";

/// The default `cache-mounts-max-size=`: 1 GiB of file data per mount.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// A chunk ends once it holds this many bytes of tar.
pub const CHUNK_TARGET: u64 = 8 << 20;

/// A chunk ends after an entry whose path's hash has a first byte
/// divisible by this (about one entry in this many).
pub const CUT_EVERY: u8 = 8;

/// The most file data a restored mount may hold (the chunks are not
/// trusted: the exporter's limit is not checked here).
pub const RESTORE_MAX_SIZE: u64 = 16 << 30;

/// The most entries a restored mount may hold.
pub const RESTORE_MAX_ENTRIES: u64 = 2_000_000;

/// One cache mount in an exported cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportedMount {
    /// The mount's `id=`.
    pub id: String,
    /// The bytes of file data it held.
    pub size: u64,
    /// Its chunks, in order.
    pub chunks: Vec<MountChunk>,
}

/// One chunk of an [`ExportedMount`]: a layer blob of the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountChunk {
    /// The blob's digest.
    pub blob: String,
    /// The blob's size.
    pub size: u64,
    /// Its media type ([`MOUNT_CHUNK_MEDIA_TYPE`]).
    pub media_type: String,
}

impl MountChunk {
    /// The chunk as a layer record, for [`CacheSource::fetch`](super::remote::CacheSource::fetch).
    pub fn layer(&self) -> CachedLayer {
        CachedLayer {
            diff_id: String::new(),
            blob: self.blob.clone(),
            size: self.size,
            media_type: self.media_type.clone(),
            last_used: None,
        }
    }
}

/// What `--cache-to` does with cache mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountExport {
    /// `cache-mounts=true`.
    pub enabled: bool,
    /// `cache-mounts-max-size=`: a larger mount is skipped with a note.
    pub max_size: u64,
    /// `cache-mounts-exclude=ID[;ID...]`: ids never exported.
    pub exclude: Vec<String>,
}

impl Default for MountExport {
    fn default() -> MountExport {
        MountExport {
            enabled: false,
            max_size: DEFAULT_MAX_SIZE,
            exclude: Vec::new(),
        }
    }
}

/// What packing one mount gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packed {
    /// Its chunks are in the store.
    Mount(ExportedMount),
    /// It was left out; the text says why.
    Skipped(String),
}

/// What restoring one mount did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Restored {
    /// Unpacked: the number of chunks.
    Done(usize),
    /// Left alone; the text says why.
    Skipped(String),
}

/// Why a cache mount could not be packed or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountCacheError {
    /// A file of the mount or the store.
    #[error("cache mount {id:?}: {}: {source}", path.display())]
    Io {
        /// The mount id.
        id: String,
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// The store refused a chunk.
    #[error("cache mount {id:?}: {source}")]
    Store {
        /// The mount id.
        id: String,
        /// What went wrong.
        source: StoreError,
    },
    /// A chunk could not be had from the cache.
    #[error("cache mount {id:?}: {source}")]
    Fetch {
        /// The mount id.
        id: String,
        /// What went wrong.
        source: FetchError,
    },
    /// A chunk holds an entry kiln refuses to restore.
    #[error("cache mount {id:?}: entry {path:?}: {reason}")]
    Hostile {
        /// The mount id.
        id: String,
        /// The entry's path as in the tar.
        path: String,
        /// Why.
        reason: String,
    },
    /// A chunk is not the kind kiln writes, or its tar is unreadable.
    #[error("cache mount {id:?}: {message}")]
    Format {
        /// The mount id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// The unpacker refused the stream.
    #[error("cache mount {id:?}: {source}")]
    Unpack {
        /// The mount id.
        id: String,
        /// What went wrong.
        source: kiln_executor::UnpackError,
    },
}

/// The names of the cache mounts the vertices `order` of `graph` use
/// ([`mount_name`]).
pub fn ids_in(graph: &Graph, order: &[VertexId]) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for id in order {
        if let Op::Exec(exec) = &graph.vertex(*id).op {
            for m in &exec.mounts {
                if let Some(name) = mount_name(m) {
                    ids.insert(name);
                }
            }
        }
    }
    ids
}

/// The name a cache mount is kept, exported and restored under, as
/// BuildKit keys cache mounts: its `id`, or, when the mount gives `uid`,
/// `gid` or `mode`, the id and those (`go (uid=1000,gid=1000,mode=755)`),
/// so `id=go` and `id=go,uid=1000` are two caches. `None` for other mounts.
pub fn mount_name(mount: &ExecMount) -> Option<String> {
    let ExecMount::Cache {
        id,
        mode,
        uid,
        gid,
        owner_given,
        ..
    } = mount
    else {
        return None;
    };
    Some(if *owner_given {
        format!("{id} (uid={uid},gid={gid},mode={mode:o})")
    } else {
        id.clone()
    })
}

/// The `id=` a [`mount_name`] was made from (what
/// `cache-mounts-exclude=` names).
pub fn mount_id(name: &str) -> &str {
    match name.rfind(" (uid=") {
        Some(at) if name.ends_with(')') => &name[..at],
        _ => name,
    }
}

/// The store directory of the cache mount `name` ([`mount_name`]; its
/// shared instance: `sharing=private` copies are never exported).
pub fn mount_dir(store: &LocalStore, name: &str) -> PathBuf {
    store.layout().cache_mounts().join(mount_dir_name(name))
}

/// The file name of the cache mount `name`'s directory (`-N` is appended
/// for `sharing=private` copies, `.lock` for its lock file).
pub fn mount_dir_name(name: &str) -> String {
    Digest::sha256(name.as_bytes()).hex().to_string()
}

/// Reads a size: digits with an optional `k`, `m`, `g` or `t` (any case,
/// optionally followed by `b` or `ib`), powers of 1024.
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: u64 = number.parse().ok()?;
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    value.checked_mul(1u64 << shift)
}

/// Packs the cache mount `id` into chunk blobs in `store`. A missing or
/// empty mount, or one with more than `max_size` bytes of file data, is
/// [`Packed::Skipped`].
///
/// # Errors
/// A file of the mount that cannot be read, or the store's errors.
pub fn pack(store: &LocalStore, id: &str, max_size: u64) -> Result<Packed, MountCacheError> {
    let dir = mount_dir(store, id);
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| MountCacheError::Io {
            id: id.to_string(),
            path,
            source,
        }
    };
    let root_meta = match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() => m,
        _ => return Ok(Packed::Skipped("not in the store".into())),
    };
    let walk = || {
        walkdir::WalkDir::new(&dir)
            .follow_links(false)
            .sort_by_file_name()
    };
    // First the size, so an oversized mount costs no compression.
    let mut total = 0u64;
    let mut entries = 0u64;
    for entry in walk() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(&dir).to_path_buf();
            io_err(&path)(io::Error::other(e.to_string()))
        })?;
        entries += 1;
        if entry.file_type().is_file() {
            let len = entry
                .metadata()
                .map_err(|e| io_err(entry.path())(io::Error::other(e.to_string())))?
                .len();
            total = total.saturating_add(len);
        }
    }
    if entries <= 1 {
        return Ok(Packed::Skipped("empty".into()));
    }
    if total > max_size {
        return Ok(Packed::Skipped(format!(
            "{total} bytes, over cache-mounts-max-size={max_size}"
        )));
    }
    let mut chunks = Vec::new();
    let mut current: Option<ChunkWriter> = None;
    for entry in walk() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(&dir).to_path_buf();
            io_err(&path)(io::Error::other(e.to_string()))
        })?;
        let path = entry.path();
        let meta = if entry.depth() == 0 {
            root_meta.clone()
        } else {
            std::fs::symlink_metadata(path).map_err(io_err(path))?
        };
        let rel = path.strip_prefix(&dir).unwrap_or(path);
        let ft = meta.file_type();
        if !(ft.is_dir() || ft.is_file() || ft.is_symlink()) {
            // Sockets, fifos and devices are not cache content.
            continue;
        }
        let writer = match &mut current {
            Some(w) => w,
            None => current.insert(ChunkWriter::new(store, id)?),
        };
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o1777);
        header.set_uid(u64::from(meta.uid()));
        header.set_gid(u64::from(meta.gid()));
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        let builder = &mut writer.tar;
        if entry.depth() == 0 {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            header.as_old_mut().name[..2].copy_from_slice(b"./");
            header.set_cksum();
            builder.append(&header, io::empty()).map_err(io_err(path))?;
        } else if ft.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, rel, io::empty())
                .map_err(io_err(path))?;
        } else if ft.is_symlink() {
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            let target = std::fs::read_link(path).map_err(io_err(path))?;
            builder
                .append_link(&mut header, rel, &target)
                .map_err(io_err(path))?;
        } else {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            let file = std::fs::File::open(path).map_err(io_err(path))?;
            // A file that shrank since its stat fails the append.
            builder
                .append_data(&mut header, rel, file.take(meta.len()))
                .map_err(io_err(path))?;
        }
        writer.bytes += 512 + meta.len().div_ceil(512) * 512;
        let cut = Digest::sha256(rel.as_os_str().as_encoded_bytes())
            .hex()
            .get(..2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .is_some_and(|b| b % CUT_EVERY == 0);
        if cut || writer.bytes >= CHUNK_TARGET {
            if let Some(w) = current.take() {
                chunks.push(w.finish(store, id, &dir)?);
            }
        }
    }
    if let Some(w) = current.take() {
        chunks.push(w.finish(store, id, &dir)?);
    }
    Ok(Packed::Mount(ExportedMount {
        id: id.to_string(),
        size: total,
        chunks,
    }))
}

/// One chunk being written: tar, without its end marker, spooled to an
/// unnamed temporary file in the store while it is hashed. Finishing it
/// looks the tar's digest up in the store's conversion records: an
/// unchanged chunk is the blob made last time, and only a new one is
/// compressed (kiln's layer gzip, whose output does not depend on the
/// thread count) into a store blob.
struct ChunkWriter {
    tar: tar::Builder<NoTrailer<Spool>>,
    bytes: u64,
}

/// A temporary file and the sha256 of what was written to it.
struct Spool {
    file: io::BufWriter<std::fs::File>,
    hasher: sha2::Sha256,
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use sha2::Digest as _;
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// What decides a chunk blob's bytes besides its tar.
const CHUNK_CONVERSION: &str = "cache-mount-chunk|gzip-default";

impl ChunkWriter {
    fn new(store: &LocalStore, id: &str) -> Result<ChunkWriter, MountCacheError> {
        let file = tempfile::tempfile_in(store.layout().staging()).map_err(|source| {
            MountCacheError::Io {
                id: id.to_string(),
                path: store.layout().staging().to_path_buf(),
                source,
            }
        })?;
        Ok(ChunkWriter {
            tar: tar::Builder::new(NoTrailer {
                inner: Spool {
                    file: io::BufWriter::with_capacity(1 << 20, file),
                    hasher: sha2::Digest::new(),
                },
                held: Vec::new(),
            }),
            bytes: 0,
        })
    }

    fn finish(
        self,
        store: &LocalStore,
        id: &str,
        dir: &Path,
    ) -> Result<MountChunk, MountCacheError> {
        use io::Seek;
        let io_err = |source| MountCacheError::Io {
            id: id.to_string(),
            path: dir.to_path_buf(),
            source,
        };
        let store_err = |source| MountCacheError::Store {
            id: id.to_string(),
            source,
        };
        let spool = self
            .tar
            .into_inner()
            .and_then(NoTrailer::finish)
            .map_err(io_err)?;
        let tar_digest = Digest::from_sha256(&sha2::Digest::finalize(spool.hasher));
        let key = kiln_oci::conversions::conversion_key(&[tar_digest.as_str(), CHUNK_CONVERSION]);
        let layout = store.layout();
        let chunk = |blob: &Digest, size| MountChunk {
            blob: blob.to_string(),
            size,
            media_type: MOUNT_CHUNK_MEDIA_TYPE.to_string(),
        };
        if let Some(made) = kiln_oci::conversions::remembered(layout, store, &key) {
            return Ok(chunk(&made.blob, made.size));
        }
        let mut file = spool
            .file
            .into_inner()
            .map_err(|e| io_err(e.into_error()))?;
        file.rewind().map_err(io_err)?;
        let blob = store.writer().map_err(store_err)?;
        let mut gz = LayerCompressor::new(blob, Compression::gzip()).map_err(|e| {
            MountCacheError::Format {
                id: id.to_string(),
                message: e.to_string(),
            }
        })?;
        io::copy(&mut file, &mut gz).map_err(io_err)?;
        let (blob, out) = gz.finish().map_err(|e| io_err(io::Error::from(e)))?;
        if out.diff_id != tar_digest {
            return Err(io_err(io::Error::other(
                "the spooled chunk changed while it was compressed",
            )));
        }
        let digest = blob
            .commit(Some(&out.digest), Some(out.size))
            .map_err(store_err)?;
        kiln_oci::conversions::remember(
            layout,
            &key,
            &kiln_oci::conversions::Conversion {
                blob: digest.clone(),
                size: out.size,
                diff_id: tar_digest,
            },
        );
        Ok(chunk(&digest, out.size))
    }
}

/// The tar end marker: two zero blocks.
const TRAILER: usize = 1024;

/// A writer that passes everything on but the last [`TRAILER`] bytes,
/// which [`NoTrailer::finish`] checks are the end marker and drops.
struct NoTrailer<W: Write> {
    inner: W,
    held: Vec<u8>,
}

impl<W: Write> NoTrailer<W> {
    fn finish(self) -> io::Result<W> {
        if self.held.len() != TRAILER || self.held.iter().any(|b| *b != 0) {
            return Err(io::Error::other("the tar did not end with its end marker"));
        }
        Ok(self.inner)
    }
}

impl<W: Write> Write for NoTrailer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held.extend_from_slice(buf);
        if self.held.len() > TRAILER {
            let pass = self.held.len() - TRAILER;
            self.inner.write_all(&self.held[..pass])?;
            self.held.drain(..pass);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Restores `mount` into its store directory when that is missing or
/// empty, its chunks brought into `store` by `fetch` (which verifies
/// them).
///
/// # Errors
/// A chunk that cannot be fetched, is not a kiln mount chunk, or holds a
/// refused entry; the unpacker's errors. Nothing is left at the mount's
/// directory on an error.
pub fn restore(
    store: &LocalStore,
    mount: &ExportedMount,
    fetch: &dyn Fn(&CachedLayer) -> Result<(), FetchError>,
) -> Result<Restored, MountCacheError> {
    let id = mount.id.as_str();
    let dir = mount_dir(store, id);
    match std::fs::read_dir(&dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Ok(Restored::Skipped(
                    "the local cache mount is not empty".into(),
                ));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(MountCacheError::Io {
                id: id.to_string(),
                path: dir,
                source,
            })
        }
    }
    let format = |message: String| MountCacheError::Format {
        id: id.to_string(),
        message,
    };
    let mut paths = Vec::new();
    for chunk in &mount.chunks {
        if chunk.media_type != MOUNT_CHUNK_MEDIA_TYPE {
            return Err(format(format!(
                "chunk {} has media type {:?}",
                chunk.blob, chunk.media_type
            )));
        }
        let digest: Digest = chunk
            .blob
            .parse()
            .map_err(|e| format(format!("chunk {}: {e}", chunk.blob)))?;
        fetch(&chunk.layer()).map_err(|source| MountCacheError::Fetch {
            id: id.to_string(),
            source,
        })?;
        paths.push(store.blob_path(&digest));
    }
    let mut budget = Budget {
        bytes: 0,
        entries: 0,
    };
    for path in &paths {
        check_chunk(id, path, &mut budget)?;
    }
    let root = store.layout().cache_mounts();
    std::fs::create_dir_all(&root).map_err(|source| MountCacheError::Io {
        id: id.to_string(),
        path: root.clone(),
        source,
    })?;
    let mut stream = ChunkStream {
        paths: paths.into_iter(),
        current: None,
        trailer: Some(io::Cursor::new(vec![0u8; TRAILER])),
    };
    kiln_executor::unpack(&mut stream, &dir).map_err(|source| MountCacheError::Unpack {
        id: id.to_string(),
        source,
    })?;
    // The lock file names the id for `kiln du`, as a mount made here.
    let lock = root.join(format!("{}.lock", mount_dir_name(id)));
    if std::fs::metadata(&lock).map_or(true, |m| m.len() == 0) {
        let _ = std::fs::write(&lock, id.as_bytes());
    }
    Ok(Restored::Done(mount.chunks.len()))
}

/// What the chunks of one mount have used of the restore limits.
struct Budget {
    bytes: u64,
    entries: u64,
}

/// Reads the chunk at `path` and refuses what a cache mount must not
/// hold.
fn check_chunk(id: &str, path: &Path, budget: &mut Budget) -> Result<(), MountCacheError> {
    let io_err = |source| MountCacheError::Io {
        id: id.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let hostile = |entry: &[u8], reason: &str| MountCacheError::Hostile {
        id: id.to_string(),
        path: String::from_utf8_lossy(entry).into_owned(),
        reason: reason.to_string(),
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let reader = kiln_oci::compress::decompressor(io::BufReader::new(file)).map_err(io_err)?;
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(io_err)? {
        let mut entry = entry.map_err(io_err)?;
        let name = entry.path_bytes().into_owned();
        budget.entries += 1;
        budget.bytes = budget
            .bytes
            .saturating_add(entry.header().size().unwrap_or(0));
        if budget.entries > RESTORE_MAX_ENTRIES {
            return Err(hostile(&name, "more entries than kiln restores"));
        }
        if budget.bytes > RESTORE_MAX_SIZE {
            return Err(hostile(&name, "more data than kiln restores"));
        }
        if name.starts_with(b"/") {
            return Err(hostile(&name, "absolute path"));
        }
        for c in name.split(|b| *b == b'/') {
            if c == b".." {
                return Err(hostile(&name, "escapes the mount"));
            }
            if c.starts_with(b".wh.") {
                return Err(hostile(&name, "overlay whiteout"));
            }
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Directory | tar::EntryType::Symlink => {}
            other => {
                return Err(hostile(
                    &name,
                    &format!("entry type {other:?} is not restored"),
                ))
            }
        }
        if entry.header().mode().map_err(io_err)? & 0o6000 != 0 {
            return Err(hostile(&name, "setuid or setgid mode"));
        }
        if let Some(pax) = entry.pax_extensions().map_err(io_err)? {
            for ext in pax {
                let ext = ext.map_err(io_err)?;
                let key = ext.key_bytes();
                if key.starts_with(b"SCHILY.xattr.") || key.starts_with(b"LIBARCHIVE.xattr.") {
                    return Err(hostile(&name, "extended attributes are not restored"));
                }
            }
        }
    }
    Ok(())
}

/// The chunks of a mount, decompressed one after the other, then the tar
/// end marker: one tar stream.
struct ChunkStream {
    paths: std::vec::IntoIter<PathBuf>,
    current: Option<Box<dyn Read>>,
    trailer: Option<io::Cursor<Vec<u8>>>,
}

impl Read for ChunkStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                self.current = None;
            }
            match self.paths.next() {
                Some(path) => {
                    let file = std::fs::File::open(&path)?;
                    self.current =
                        Some(kiln_oci::compress::decompressor(io::BufReader::new(file))?);
                }
                None => {
                    return match &mut self.trailer {
                        Some(t) => t.read(buf),
                        None => Ok(0),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_mode_make_another_cache() {
        let mount = |owner_given, uid| ExecMount::Cache {
            target: "/c".into(),
            id: "go".into(),
            mode: 0o755,
            uid,
            gid: uid,
            sharing: crate::op::CacheSharing::Shared,
            readonly: false,
            seed: None,
            owner_given,
        };
        let plain = mount_name(&mount(false, 0)).unwrap();
        let root = mount_name(&mount(true, 0)).unwrap();
        let app = mount_name(&mount(true, 1000)).unwrap();
        assert_eq!(plain, "go");
        assert_eq!(app, "go (uid=1000,gid=1000,mode=755)");
        assert!(plain != root && root != app);
        assert_eq!(
            [mount_id(&plain), mount_id(&root), mount_id(&app)],
            ["go"; 3]
        );
        assert_eq!(mount_id("odd (name"), "odd (name");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("512m"), Some(512 << 20));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("1x"), None);
        assert_eq!(parse_size(""), None);
    }

    fn store() -> (tempfile::TempDir, LocalStore) {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::open(tmp.path().join("store")).unwrap();
        (tmp, store)
    }

    fn fill(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        for i in 0..n {
            std::fs::write(dir.join(format!("sub/f{i:03}")), format!("data {i}\n")).unwrap();
        }
        std::os::unix::fs::symlink("sub/f000", dir.join("link")).unwrap();
    }

    #[test]
    fn pack_restore_round_trip_and_stable_chunks() {
        let (_t1, one) = store();
        fill(&mount_dir(&one, "m"), 100);
        let Packed::Mount(first) = pack(&one, "m", DEFAULT_MAX_SIZE).unwrap() else {
            panic!("skipped")
        };
        assert!(first.chunks.len() > 3, "{}", first.chunks.len());
        let Packed::Mount(again) = pack(&one, "m", DEFAULT_MAX_SIZE).unwrap() else {
            panic!("skipped")
        };
        assert_eq!(first, again, "packing is deterministic");
        std::fs::write(mount_dir(&one, "m").join("sub/f050"), "changed\n").unwrap();
        let Packed::Mount(changed) = pack(&one, "m", DEFAULT_MAX_SIZE).unwrap() else {
            panic!("skipped")
        };
        let old: BTreeSet<_> = first.chunks.iter().map(|c| &c.blob).collect();
        let new: Vec<_> = changed
            .chunks
            .iter()
            .filter(|c| !old.contains(&c.blob))
            .collect();
        assert_eq!(new.len(), 1, "one chunk changed");

        let (_t2, two) = store();
        let fetch = |layer: &CachedLayer| -> Result<(), FetchError> {
            let digest: Digest = layer.blob.parse()?;
            let bytes = std::fs::read(one.blob_path(&digest)).unwrap();
            two.write_blob(&bytes, Some(&digest)).unwrap();
            Ok(())
        };
        assert_eq!(
            restore(&two, &changed, &fetch).unwrap(),
            Restored::Done(changed.chunks.len())
        );
        let dir = mount_dir(&two, "m");
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/f050")).unwrap(),
            "changed\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("sub/f099")).unwrap(),
            "data 99\n"
        );
        assert_eq!(
            std::fs::read_link(dir.join("link")).unwrap(),
            Path::new("sub/f000")
        );
        // Never over a mount with content.
        assert!(matches!(
            restore(&two, &changed, &fetch).unwrap(),
            Restored::Skipped(_)
        ));
    }

    #[test]
    fn an_unchanged_chunk_is_not_compressed_again() {
        let (_t, one) = store();
        fill(&mount_dir(&one, "m"), 100);
        let Packed::Mount(first) = pack(&one, "m", DEFAULT_MAX_SIZE).unwrap() else {
            panic!("skipped")
        };
        let records = || std::fs::read_dir(one.layout().exports()).unwrap().count();
        assert_eq!(records(), first.chunks.len(), "one record per chunk");
        // Point every record at another blob: packing again gives that
        // blob, so it came from the record, not from compressing.
        let planted = one.write_blob(b"planted", None).unwrap();
        for entry in std::fs::read_dir(one.layout().exports()).unwrap() {
            let path = entry.unwrap().path();
            let mut record: kiln_oci::conversions::Conversion =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            record.blob = planted.clone();
            std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
        }
        let Packed::Mount(again) = pack(&one, "m", DEFAULT_MAX_SIZE).unwrap() else {
            panic!("skipped")
        };
        assert!(again.chunks.iter().all(|c| c.blob == planted.as_str()));
        // A record whose blob is gone is ignored: the chunk is made again.
        let path = one.blob_path(&planted);
        std::fs::remove_file(path).unwrap();
        let Packed::Mount(remade) = pack(&one, "m", DEFAULT_MAX_SIZE).unwrap() else {
            panic!("skipped")
        };
        assert_eq!(remade, first);
    }

    /// A one-entry chunk as kiln writes them (gzip, no end marker), the
    /// name written raw so `..` survives.
    fn crafted(name: &str, kind: tar::EntryType, mode: u32) -> Vec<u8> {
        let mut header = tar::Header::new_ustar();
        header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        header.set_size(0);
        header.set_mode(mode);
        header.set_entry_type(kind);
        header.set_cksum();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(header.as_bytes()).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn hostile_chunks_are_refused_and_leave_nothing() {
        use tar::EntryType as T;
        for (name, kind, mode, reason) in [
            ("../evil", T::Regular, 0o644, "escapes"),
            ("a/../../evil", T::Regular, 0o644, "escapes"),
            ("/etc/evil", T::Regular, 0o644, "absolute"),
            ("suid", T::Regular, 0o4755, "setuid"),
            ("dev", T::Char, 0o644, "is not restored"),
            ("fifo", T::Fifo, 0o644, "is not restored"),
            ("hard", T::Link, 0o644, "is not restored"),
            ("d/.wh.x", T::Regular, 0o644, "whiteout"),
        ] {
            let (_t, st) = store();
            let bytes = crafted(name, kind, mode);
            let digest = st.write_blob(&bytes, None).unwrap();
            let mount = ExportedMount {
                id: "m".into(),
                size: 0,
                chunks: vec![MountChunk {
                    blob: digest.to_string(),
                    size: bytes.len() as u64,
                    media_type: MOUNT_CHUNK_MEDIA_TYPE.into(),
                }],
            };
            let e = restore(&st, &mount, &|_| Ok(())).expect_err(name);
            assert!(e.to_string().contains(reason), "{name}: {e}");
            assert!(!mount_dir(&st, "m").exists(), "{name}");
        }
    }

    #[test]
    fn limits() {
        let (_t, one) = store();
        assert!(matches!(
            pack(&one, "none", DEFAULT_MAX_SIZE).unwrap(),
            Packed::Skipped(_)
        ));
        fill(&mount_dir(&one, "m"), 10);
        assert!(
            matches!(pack(&one, "m", 10).unwrap(), Packed::Skipped(r) if r.contains("cache-mounts-max-size"))
        );
    }
}
