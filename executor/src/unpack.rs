//! Layer tar → layer directory in overlay format.
//!
//! OCI whiteouts become overlayfs markers: `D/.wh.NAME` is a character
//! device 0/0 `D/NAME`, `D/.wh..wh..opq` sets `trusted.overlay.opaque=y`
//! on `D` (`user.overlay.opaque=y` when not running as root).
//!
//! **Crash safety.** A layer is extracted into `<dir>.tmp-<pid>-<n>` next
//! to `dir` and renamed to `dir` only once complete, so a crash or an
//! error never leaves a half-extracted layer under the final name (a
//! failed extraction removes its temporary directory; one left by a crash
//! is stale and can be deleted; a later unpack by the same pid and number
//! replaces it).
//!
//! **Verified content.** A layer directory is named by its diff id, and
//! other builds reuse it by that name, so [`unpack_blob`] hashes the
//! uncompressed stream while it extracts (trailing bytes after the tar's
//! end included) and publishes the directory only when the hash is the
//! diff id the image config claims. When two processes unpack the same
//! layer at once, the one that loses the rename keeps the winner's
//! directory: both verified the same content.

use kiln_oci::Digest;
use sha2::Digest as _;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tar::EntryType;

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// An I/O error on a path of the layer directory (or the blob).
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// The tar stream is unreadable (corrupt, truncated, bad gzip).
    #[error("reading the layer tar: {0}")]
    Tar(#[source] io::Error),
    /// An entry (or a hardlink target) would land outside the layer
    /// directory.
    #[error("layer entry {path:?} escapes the layer directory")]
    Escape {
        /// The path as in the tar.
        path: String,
    },
    /// An entry that cannot be extracted.
    #[error("layer entry {path:?}: {reason}")]
    BadEntry {
        /// The path as in the tar.
        path: String,
        /// Why.
        reason: String,
    },
    /// The uncompressed layer does not hash to the diff id its image
    /// config claims.
    #[error(
        "the layer's content hashes to {actual}, but the image config claims diff_id {expected}"
    )]
    DiffIdMismatch {
        /// The diff id the config claims.
        expected: Digest,
        /// The digest of the uncompressed stream.
        actual: Digest,
    },
    /// A diff id with an algorithm kiln cannot compute.
    #[error("diff_id {0} uses an unsupported digest algorithm")]
    Algorithm(Digest),
    /// The destination exists and is not an empty directory.
    #[error("{0}: layer directory already exists and is not empty")]
    NotEmpty(PathBuf),
}

fn io_err(action: &'static str, path: &Path, error: io::Error) -> UnpackError {
    UnpackError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// Extracts the layer blob at `blob` (plain tar, gzip or zstd, detected
/// by its magic bytes) into `dir` like [`unpack`], and verifies that the
/// uncompressed stream hashes to `diff_id`: on a mismatch nothing is left
/// at `dir`. `media_type` only names the layer in errors.
///
/// # Errors
/// [`UnpackError::DiffIdMismatch`], or as [`unpack`].
pub fn unpack_blob(
    blob: &Path,
    media_type: &str,
    diff_id: &Digest,
    dir: &Path,
) -> Result<(), UnpackError> {
    let _ = media_type;
    let file = fs::File::open(blob).map_err(|e| io_err("opening", blob, e))?;
    let hasher = Hasher::for_algorithm(diff_id.algorithm())
        .ok_or_else(|| UnpackError::Algorithm(diff_id.clone()))?;
    let path = blob.to_path_buf();
    // Decompressing and hashing on their own thread, beside the
    // extraction: each takes about as long as the other.
    let mut stream = Prefetched::start(move || {
        let reader = BufReader::with_capacity(1 << 16, file);
        let inner =
            kiln_oci::compress::decompressor(reader).map_err(|e| io_err("reading", &path, e))?;
        Ok(Hashing { inner, hasher })
    });
    extract(&mut stream, dir, |stream| {
        let actual = stream.finish()?;
        if actual == *diff_id {
            Ok(())
        } else {
            Err(UnpackError::DiffIdMismatch {
                expected: diff_id.clone(),
                actual,
            })
        }
    })
}

/// Extracts an uncompressed layer tar into `dir` in overlay format and
/// returns the sha256 digest of the stream (its diff id). Nothing checks
/// that digest against a claim: layers named by a diff id go through
/// [`unpack_blob`].
///
/// `dir` must not exist or be an empty directory; its parent must exist.
/// Regular files, directories, symlinks, hardlinks (to a path extracted
/// earlier from the same tar), character/block devices and fifos are
/// created with the header's mode (setuid/setgid/sticky included), owner
/// (numeric; `lchown`) and mtime (directories' after their contents);
/// PAX `uid`/`gid`/`mtime` override the header and `SCHILY.xattr.*` are
/// set (except overlay ones; unsupported or forbidden xattrs are skipped).
/// GNU sparse members are written out in full; PAX sparse members are
/// refused. An entry for the root (`./`) sets the layer directory's
/// metadata. Entries or hardlink targets with `..`, or below a symlink or
/// a file, are refused; symlink targets may be anything. Extraction happens
/// in a temporary directory beside `dir`, renamed to `dir` at the end (see
/// the module docs).
///
/// # Errors
/// [`UnpackError`] naming the path.
pub fn unpack(layer: &mut dyn Read, dir: &Path) -> Result<Digest, UnpackError> {
    let mut hashing = Hashing {
        inner: layer,
        hasher: Hasher::Sha256(sha2::Sha256::new()),
    };
    let mut digest = None;
    extract(&mut hashing, dir, |stream| {
        digest = Some(stream.finish()?);
        Ok(())
    })?;
    digest.ok_or_else(|| UnpackError::Tar(io::Error::other("the layer was not hashed")))
}

/// Extracts `layer` into a temporary directory beside `dir`, lets `check`
/// read the rest of the stream and accept it, then renames it into place.
fn extract<S: Stream>(
    layer: &mut S,
    dir: &Path,
    check: impl FnOnce(&mut S) -> Result<(), UnpackError>,
) -> Result<(), UnpackError> {
    match fs::read_dir(dir) {
        Ok(mut read) => {
            if read.next().is_some() {
                return Err(UnpackError::NotEmpty(dir.to_path_buf()));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("reading", dir, e)),
    }
    let mut tmp_name = dir
        .file_name()
        .ok_or_else(|| {
            io_err(
                "unpacking into",
                dir,
                io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
            )
        })?
        .to_os_string();
    static UNPACKS: AtomicU64 = AtomicU64::new(0);
    let n = UNPACKS.fetch_add(1, Ordering::Relaxed);
    tmp_name.push(format!(".tmp-{}-{n}", kiln_oci::process_tag()));
    let tmp = dir.with_file_name(tmp_name);
    if fs::symlink_metadata(&tmp).is_ok() {
        fs::remove_dir_all(&tmp).map_err(|e| io_err("removing stale", &tmp, e))?;
    }
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&tmp)
        .map_err(|e| io_err("creating", &tmp, e))?;
    let result = Extractor {
        root: tmp.clone(),
        dirs: BTreeMap::new(),
    }
    .run(layer)
    .and_then(|()| check(layer));
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    commit_dir(&tmp, dir).map_err(|e| io_err("renaming into place", dir, e))
}

/// Renames the finished directory `tmp` to `dir`. When another process
/// already put a directory at `dir` (a non-empty directory cannot be
/// replaced), that one is kept and `tmp` removed: both hold the same
/// content-addressed layer. `tmp` is removed on every error too.
///
/// # Errors
/// The rename's error, when `dir` is not an existing directory.
pub fn commit_dir(tmp: &Path, dir: &Path) -> io::Result<()> {
    commit_with(|from, to| fs::rename(from, to), tmp, dir)
}

/// [`commit_dir`] for a directory its first creator may already be using
/// (a cache mount): whatever directory is at `dir`, even an empty one, is
/// kept and `tmp` removed, where a plain rename would replace an empty
/// directory under the process writing into it.
///
/// # Errors
/// The rename's error, when `dir` is not an existing directory.
pub fn commit_new_dir(tmp: &Path, dir: &Path) -> io::Result<()> {
    commit_with(rename_noreplace, tmp, dir)
}

fn commit_with(
    rename: impl Fn(&Path, &Path) -> io::Result<()>,
    tmp: &Path,
    dir: &Path,
) -> io::Result<()> {
    match rename(tmp, dir) {
        Ok(()) => Ok(()),
        Err(e)
            if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY) | Some(libc::EEXIST))
                && fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) =>
        {
            let _ = fs::remove_dir_all(tmp);
            Ok(())
        }
        Err(e) => {
            // Not a directory in the way: the plain rename's own error
            // (ENOTDIR for a file) says what is wrong.
            let e = match e.raw_os_error() {
                Some(libc::EEXIST) => fs::rename(tmp, dir).err().unwrap_or(e),
                _ => e,
            };
            let _ = fs::remove_dir_all(tmp);
            Err(e)
        }
    }
}

/// `rename(2)` that never replaces what is at `to` (`renameat2` with
/// `RENAME_NOREPLACE`: EEXIST instead); a plain rename on filesystems
/// without it.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    let c = |p: &Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (cfrom, cto) = (c(from)?, c(to)?);
    // SAFETY: both are NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cfrom.as_ptr(),
            libc::AT_FDCWD,
            cto.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) => fs::rename(from, to),
        _ => Err(e),
    }
}

/// A reader that hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Hasher,
}

enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// `None` for an algorithm kiln cannot compute.
    fn for_algorithm(algorithm: &str) -> Option<Hasher> {
        match algorithm {
            "sha256" => Some(Hasher::Sha256(sha2::Sha256::new())),
            "sha512" => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }
}

impl<R: Read> Hashing<R> {
    /// Reads the stream to its end (what follows the tar's end marker is
    /// part of the diff id too) and returns its digest.
    fn finish(&mut self) -> Result<Digest, UnpackError> {
        io::copy(self, &mut io::sink()).map_err(UnpackError::Tar)?;
        let (algorithm, bytes) = match &self.hasher {
            Hasher::Sha256(h) => ("sha256", h.clone().finalize().to_vec()),
            Hasher::Sha512(h) => ("sha512", h.clone().finalize().to_vec()),
        };
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{algorithm}:{hex}")
            .parse()
            .map_err(|e| UnpackError::Tar(io::Error::other(format!("{e}"))))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match &mut self.hasher {
            Hasher::Sha256(h) => h.update(&buf[..n]),
            Hasher::Sha512(h) => h.update(&buf[..n]),
        }
        Ok(n)
    }
}

/// An uncompressed layer stream whose digest is known at its end.
trait Stream: Read {
    /// Reads the stream to its end (what follows the tar's end marker is
    /// part of the diff id too) and returns its digest.
    fn finish(&mut self) -> Result<Digest, UnpackError>;
}

impl<R: Read> Stream for Hashing<R> {
    fn finish(&mut self) -> Result<Digest, UnpackError> {
        Hashing::finish(self)
    }
}

/// What the reading thread of [`Prefetched`] sends.
enum Chunk {
    Data(Vec<u8>),
    Failed(io::Error),
    End(Result<Digest, UnpackError>),
}

/// Chunks in flight between the reading thread and the extraction.
const PREFETCH_CHUNKS: usize = 4;
/// The size of one chunk.
const PREFETCH_CHUNK: usize = 1 << 20;

/// A [`Hashing`] stream read (decompressed and hashed) on its own thread,
/// a few chunks ahead of its reader. Dropping it ends the thread.
struct Prefetched {
    rx: Option<std::sync::mpsc::Receiver<Chunk>>,
    chunk: Vec<u8>,
    pos: usize,
    /// The digest, once the thread sent it.
    end: Option<Result<Digest, UnpackError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prefetched {
    /// Starts the thread, which opens the stream with `open`.
    fn start<R: Read + 'static>(
        open: impl FnOnce() -> Result<Hashing<R>, UnpackError> + Send + 'static,
    ) -> Prefetched {
        let (tx, rx) = std::sync::mpsc::sync_channel(PREFETCH_CHUNKS);
        let thread = std::thread::Builder::new()
            .name("kiln-unpack-read".into())
            .spawn(move || {
                let mut source = match open() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = tx.send(Chunk::End(Err(e)));
                        return;
                    }
                };
                loop {
                    let mut buf = vec![0u8; PREFETCH_CHUNK];
                    let mut filled = 0;
                    while filled < buf.len() {
                        match source.read(&mut buf[filled..]) {
                            Ok(0) => break,
                            Ok(n) => filled += n,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => {
                                let _ = tx.send(Chunk::Failed(e));
                                return;
                            }
                        }
                    }
                    if filled == 0 {
                        let _ = tx.send(Chunk::End(source.finish()));
                        return;
                    }
                    buf.truncate(filled);
                    if tx.send(Chunk::Data(buf)).is_err() {
                        return;
                    }
                }
            });
        match thread {
            Ok(thread) => Prefetched {
                rx: Some(rx),
                chunk: Vec::new(),
                pos: 0,
                end: None,
                thread: Some(thread),
            },
            Err(e) => Prefetched {
                rx: None,
                chunk: Vec::new(),
                pos: 0,
                end: Some(Err(UnpackError::Tar(e))),
                thread: None,
            },
        }
    }
}

impl Read for Prefetched {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            if self.end.is_some() {
                return Ok(0);
            }
            let next = self.rx.as_ref().and_then(|rx| rx.recv().ok());
            match next {
                Some(Chunk::Data(data)) => {
                    self.chunk = data;
                    self.pos = 0;
                }
                Some(Chunk::Failed(e)) => {
                    self.rx = None;
                    return Err(e);
                }
                Some(Chunk::End(digest)) => self.end = Some(digest),
                None => {
                    return Err(io::Error::other("the layer's reading thread ended"));
                }
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Stream for Prefetched {
    fn finish(&mut self) -> Result<Digest, UnpackError> {
        io::copy(self, &mut io::sink()).map_err(UnpackError::Tar)?;
        self.end.take().unwrap_or_else(|| {
            Err(UnpackError::Tar(io::Error::other(
                "the layer was not hashed",
            )))
        })
    }
}

impl Drop for Prefetched {
    fn drop(&mut self) {
        // The thread sees its channel closed at its next send and ends.
        self.rx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Metadata applied to a directory once the whole tar is extracted.
struct DirMeta {
    mode: u32,
    mtime: (i64, i64),
}

struct Extractor {
    root: PathBuf,
    dirs: BTreeMap<PathBuf, DirMeta>,
}

/// Header fields with PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: (i64, i64),
    xattrs: Vec<(String, Vec<u8>)>,
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The components of a tar path: leading `/`, `.` and empty ones dropped,
/// `..` refused.
fn components(raw: &[u8]) -> Result<Vec<OsString>, UnpackError> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(UnpackError::Escape { path: lossy(raw) }),
            c => out.push(OsStr::from_bytes(c).to_os_string()),
        }
    }
    Ok(out)
}

fn parse_pax_time(value: &str) -> Option<(i64, i64)> {
    let (secs, frac) = match value.split_once('.') {
        Some((s, f)) => (s, f),
        None => (value, ""),
    };
    let secs: i64 = secs.parse().ok()?;
    let mut nanos = 0i64;
    for (i, d) in frac.chars().take(9).enumerate() {
        nanos += i64::from(d.to_digit(10)?) * 10i64.pow(8 - i as u32);
    }
    if value.starts_with('-') && nanos > 0 {
        return Some((secs - 1, 1_000_000_000 - nanos));
    }
    Some((secs, nanos))
}

impl Extractor {
    fn run(mut self, layer: &mut dyn Read) -> Result<(), UnpackError> {
        let mut archive = tar::Archive::new(layer);
        for entry in archive.entries().map_err(UnpackError::Tar)? {
            let mut entry = entry.map_err(UnpackError::Tar)?;
            self.entry(&mut entry)?;
        }
        for (path, meta) in std::mem::take(&mut self.dirs).into_iter().rev() {
            crate::file_meta::chmod(&path, meta.mode).map_err(|e| io_err("chmod", &path, e))?;
            crate::file_meta::set_times(&path, meta.mtime, meta.mtime)
                .map_err(|e| io_err("setting times of", &path, e))?;
        }
        Ok(())
    }

    fn meta(entry: &mut tar::Entry<'_, &mut dyn Read>) -> Result<Meta, UnpackError> {
        let raw = lossy(&entry.path_bytes());
        let bad = |what: &str, e: io::Error| UnpackError::BadEntry {
            path: raw.clone(),
            reason: format!("bad {what}: {e}"),
        };
        let h = entry.header();
        let mut meta = Meta {
            mode: h.mode().map_err(|e| bad("mode", e))? & 0o7777,
            uid: h.uid().map_err(|e| bad("uid", e))? as u32,
            gid: h.gid().map_err(|e| bad("gid", e))? as u32,
            mtime: (h.mtime().map_err(|e| bad("mtime", e))? as i64, 0),
            xattrs: Vec::new(),
        };
        if let Some(pax) = entry.pax_extensions().map_err(UnpackError::Tar)? {
            for ext in pax {
                let ext = ext.map_err(UnpackError::Tar)?;
                let Ok(key) = ext.key() else { continue };
                if key.starts_with("GNU.sparse.") {
                    return Err(UnpackError::BadEntry {
                        path: raw,
                        reason: "a PAX sparse file (GNU.sparse.* records), which kiln does not \
                                 unpack; write the tar without --sparse or in GNU format"
                            .into(),
                    });
                }
                let value = ext.value_bytes();
                let text = std::str::from_utf8(value).unwrap_or("");
                match key {
                    "uid" => meta.uid = text.parse().unwrap_or(meta.uid),
                    "gid" => meta.gid = text.parse().unwrap_or(meta.gid),
                    "mtime" => meta.mtime = parse_pax_time(text).unwrap_or(meta.mtime),
                    _ => {
                        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                            meta.xattrs.push((name.to_string(), value.to_vec()));
                        }
                    }
                }
            }
        }
        Ok(meta)
    }

    /// Makes sure the directories `comps` (relative to the root) exist,
    /// creating missing ones (0755) when `create`; refuses any that is a
    /// symlink or not a directory.
    fn parents(&self, comps: &[OsString], raw: &str, create: bool) -> Result<PathBuf, UnpackError> {
        let mut cur = self.root.clone();
        for c in comps {
            cur.push(c);
            match fs::symlink_metadata(&cur) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(UnpackError::BadEntry {
                        path: raw.to_string(),
                        reason: format!("{} is not a directory", Path::new(c).display()),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                    fs::DirBuilder::new()
                        .mode(0o755)
                        .create(&cur)
                        .map_err(|e| io_err("creating", &cur, e))?;
                }
                Err(e) => return Err(io_err("reading", &cur, e)),
            }
        }
        Ok(cur)
    }

    /// Removes whatever is at `path` (a later entry replaces it).
    fn remove(&mut self, path: &Path) -> Result<(), UnpackError> {
        match fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                fs::remove_dir_all(path).map_err(|e| io_err("removing", path, e))?;
                self.dirs.retain(|p, _| !p.starts_with(path));
            }
            Ok(_) => fs::remove_file(path).map_err(|e| io_err("removing", path, e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("reading", path, e)),
        }
        Ok(())
    }

    /// Owner, then mode (not for symlinks), xattrs, then times (deferred
    /// for directories).
    fn apply(&mut self, path: &Path, meta: &Meta, kind: EntryType) -> Result<(), UnpackError> {
        crate::file_meta::lchown(path, meta.uid, meta.gid).map_err(|e| io_err("chown", path, e))?;
        for (name, value) in &meta.xattrs {
            if name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") {
                continue;
            }
            match crate::file_meta::set_xattr(path, name, value) {
                Ok(()) => {}
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EOPNOTSUPP) | Some(libc::EPERM) | Some(libc::EINVAL)
                    ) => {}
                Err(e) => return Err(io_err("setting xattr on", path, e)),
            }
        }
        if kind.is_dir() {
            self.dirs.insert(
                path.to_path_buf(),
                DirMeta {
                    mode: meta.mode,
                    mtime: meta.mtime,
                },
            );
            return Ok(());
        }
        if !kind.is_symlink() {
            crate::file_meta::chmod(path, meta.mode).map_err(|e| io_err("chmod", path, e))?;
        }
        crate::file_meta::set_times(path, meta.mtime, meta.mtime)
            .map_err(|e| io_err("setting times of", path, e))
    }

    fn entry(&mut self, entry: &mut tar::Entry<'_, &mut dyn Read>) -> Result<(), UnpackError> {
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let raw_bytes = entry.path_bytes().into_owned();
        let raw = lossy(&raw_bytes);
        let comps = components(&raw_bytes)?;
        let meta = Self::meta(entry)?;
        let Some((name, parent_comps)) = comps.split_last() else {
            if !kind.is_dir() {
                return Err(UnpackError::BadEntry {
                    path: raw,
                    reason: "the layer root must be a directory".into(),
                });
            }
            let root = self.root.clone();
            return self.apply(&root, &meta, kind);
        };
        let parent = self.parents(parent_comps, &raw, true)?;
        let name_bytes = name.as_bytes();
        if name_bytes == b".wh..wh..opq" {
            return crate::overlay_marks::set_opaque(&parent)
                .map_err(|e| io_err("marking opaque", &parent, e));
        }
        if let Some(hidden) = name_bytes.strip_prefix(b".wh.") {
            if hidden.is_empty() {
                return Err(UnpackError::BadEntry {
                    path: raw,
                    reason: "whiteout without a name".into(),
                });
            }
            let path = parent.join(OsStr::from_bytes(hidden));
            self.remove(&path)?;
            return crate::overlay_marks::make_whiteout(&path)
                .map_err(|e| io_err("creating whiteout", &path, e));
        }
        let path = parent.join(name);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        self.remove(&path)?;
                        fs::DirBuilder::new()
                            .mode(0o700)
                            .create(&path)
                            .map_err(|e| io_err("creating", &path, e))?;
                    }
                }
                self.apply(&path, &meta, kind)
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.remove(&path)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| io_err("creating", &path, e))?;
                io::copy(entry, &mut file).map_err(UnpackError::Tar)?;
                drop(file);
                self.apply(&path, &meta, EntryType::Regular)
            }
            EntryType::Link => {
                let target_raw = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::BadEntry {
                        path: raw.clone(),
                        reason: "hardlink without a target".into(),
                    })?
                    .into_owned();
                let target_comps = components(&target_raw)?;
                let Some((target_name, target_parents)) = target_comps.split_last() else {
                    return Err(UnpackError::BadEntry {
                        path: raw,
                        reason: "hardlink to the layer root".into(),
                    });
                };
                let target = self.parents(target_parents, &raw, false)?.join(target_name);
                if target == path {
                    return Ok(());
                }
                self.remove(&path)?;
                fs::hard_link(&target, &path).map_err(|e| io_err("linking", &path, e))
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| UnpackError::BadEntry {
                        path: raw.clone(),
                        reason: "symlink without a target".into(),
                    })?
                    .into_owned();
                self.remove(&path)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path)
                    .map_err(|e| io_err("creating", &path, e))?;
                self.apply(&path, &meta, kind)
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let (ty, dev) = match kind {
                    EntryType::Fifo => (libc::S_IFIFO, 0),
                    _ => {
                        let h = entry.header();
                        let bad = |e: io::Error| UnpackError::BadEntry {
                            path: raw.clone(),
                            reason: format!("bad device number: {e}"),
                        };
                        let major = h.device_major().map_err(bad)?.unwrap_or(0);
                        let minor = h.device_minor().map_err(bad)?.unwrap_or(0);
                        let ty = if kind == EntryType::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (ty, crate::file_meta::makedev(major, minor))
                    }
                };
                self.remove(&path)?;
                crate::file_meta::mknod(&path, ty | 0o600, dev)
                    .map_err(|e| io_err("creating", &path, e))?;
                self.apply(&path, &meta, kind)
            }
            other => Err(UnpackError::BadEntry {
                path: raw,
                reason: format!("unsupported entry type {:?}", other.as_byte() as char),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// Two processes create the same cache directory: the second must not
    /// replace the first one's, even while it is still empty, because the
    /// first may already be using it (a cache mount being written).
    #[test]
    fn commit_new_dir_keeps_an_empty_directory_already_in_place() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let (first, second, dest) = (
            tmp.path().join("first"),
            tmp.path().join("second"),
            tmp.path().join("dir"),
        );
        fs::create_dir(&first).expect("mkdir");
        fs::create_dir(&second).expect("mkdir");
        commit_new_dir(&first, &dest).expect("first");
        let inode = fs::metadata(&dest).expect("dest").ino();
        commit_new_dir(&second, &dest).expect("second");
        assert_eq!(fs::metadata(&dest).expect("dest").ino(), inode, "replaced");
        assert!(!second.exists());
    }
}
