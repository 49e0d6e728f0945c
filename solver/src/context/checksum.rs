//! Content checksums of context selections: file hashing (1 MiB reads, in
//! parallel) and the digest over a sorted list of entries.

use super::cache::{to_hex, ChecksumCache};
use super::error::ContextError;
use super::walk::{AbsPath, EntryKind, Meta, WalkSink};
use sha2::{Digest as _, Sha256};
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Mutex};

/// Read size for hashing files.
const BUF_SIZE: usize = 1 << 20;

/// Files are handed to the hashing threads in batches of this many files
/// or this many bytes, so small files do not cost a wake-up each.
const BATCH_FILES: usize = 128;
const BATCH_BYTES: u64 = 8 << 20;

/// The sha256 checksum of a selection of the context (`sha256:<hex>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContextDigest([u8; 32]);

impl ContextDigest {
    /// The 32 raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lower-case hex digits.
    pub fn hex(&self) -> String {
        to_hex(&self.0)
    }

    /// As a `kiln_oci::Digest`.
    pub fn to_digest(&self) -> kiln_oci::Digest {
        kiln_oci::Digest::from_sha256(&self.0)
    }
}

impl fmt::Display for ContextDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex())
    }
}

/// Counters of the hashing work a context has done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashStats {
    /// Regular files whose content was read and hashed.
    pub files_hashed: u64,
    /// Bytes read for those files.
    pub bytes_hashed: u64,
    /// Regular files whose hash came from the metadata index.
    pub cache_hits: u64,
}

/// The sha256 of the file at `path`, and the number of bytes read.
fn hash_file(path: &Path, buf: &mut [u8]) -> Result<([u8; 32], u64), ContextError> {
    let mut file = std::fs::File::open(path).map_err(ContextError::io(path))?;
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ContextError::io(path)(e)),
        }
    }
    Ok((hasher.finalize().into(), total))
}

/// One hashed file: its index (as given by the producer) and sha256.
pub(crate) type Hashed = (usize, [u8; 32]);

/// Runs `produce` (typically a walk) on this thread while other threads
/// hash the files it sends as `(index, path, size)`; then this thread helps
/// hash what is left. Returns the hashes (in no particular order) and the
/// bytes read. An error from `produce` stops the hashing.
pub(crate) fn hash_pipelined<F>(produce: F) -> Result<(Vec<Hashed>, u64), ContextError>
where
    F: FnOnce(&mut dyn FnMut(usize, PathBuf, u64)) -> Result<(), ContextError>,
{
    let threads = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let (tx, rx) = mpsc::channel::<Vec<(usize, PathBuf)>>();
    let rx = Mutex::new(rx);
    let abort = AtomicBool::new(false);
    let worker = || -> Result<(Vec<Hashed>, u64), ContextError> {
        let mut buf = vec![0u8; BUF_SIZE];
        let mut done = Vec::new();
        let mut bytes = 0;
        loop {
            let batch = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
            let Ok(batch) = batch else { break };
            for (index, path) in batch {
                if abort.load(Ordering::Relaxed) {
                    break;
                }
                match hash_file(&path, &mut buf) {
                    Ok((hash, n)) => {
                        bytes += n;
                        done.push((index, hash));
                    }
                    Err(e) => {
                        abort.store(true, Ordering::Relaxed);
                        return Err(e);
                    }
                }
            }
        }
        Ok((done, bytes))
    };
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        // The receiver lives until the end of this scope, so sends succeed.
        let mut send = |index: usize, path: PathBuf, size: u64| {
            batch.push((index, path));
            batch_bytes += size;
            if batch.len() >= BATCH_FILES || batch_bytes >= BATCH_BYTES {
                let _ = tx.send(std::mem::take(&mut batch));
                batch_bytes = 0;
            }
        };
        let produced = produce(&mut send);
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
        if produced.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        drop(tx);
        let mut outcomes = vec![worker()];
        for handle in handles {
            outcomes.push(
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        produced?;
        let mut all = Vec::new();
        let mut total = 0;
        for outcome in outcomes {
            let (done, bytes) = outcome?;
            all.extend(done);
            total += bytes;
        }
        Ok((all, total))
    })
}

/// One entry of a checksummed selection.
#[derive(Debug)]
pub(crate) struct Node {
    /// Its path is `paths[start..end]` of the [`Selection`].
    start: usize,
    end: usize,
    meta: Meta,
    link_target: Option<OsString>,
    /// The content hash of a regular file, once known.
    hash: Option<[u8; 32]>,
}

/// The entries a checksum covers, in walk order, their paths in one string
/// (one allocation for the whole walk, not one per entry).
#[derive(Debug, Default)]
pub(crate) struct Selection {
    paths: String,
    nodes: Vec<Node>,
}

impl Selection {
    /// The context-relative path of entry `index`.
    fn path(&self, index: usize) -> &str {
        let node = &self.nodes[index];
        &self.paths[node.start..node.end]
    }

    /// The number of regular files.
    pub fn files(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.meta.kind == EntryKind::File)
            .count()
    }

    /// Appends the entries of `other`.
    pub fn append(&mut self, other: Selection) {
        let offset = self.paths.len();
        self.paths.push_str(&other.paths);
        self.nodes.extend(other.nodes.into_iter().map(|node| Node {
            start: node.start + offset,
            end: node.end + offset,
            ..node
        }));
    }

    /// Takes the content hash of every regular file whose stamp is
    /// unchanged from `cache` (under `root`), and gives the others: (index,
    /// size, path).
    pub fn look_up(&mut self, cache: &ChecksumCache, root: &str) -> Vec<(usize, u64, &str)> {
        let mut misses = Vec::new();
        for (index, node) in self.nodes.iter_mut().enumerate() {
            if node.meta.kind != EntryKind::File {
                continue;
            }
            let path = &self.paths[node.start..node.end];
            node.hash = cache.lookup(root, path, &node.meta.stamp);
            if node.hash.is_none() {
                misses.push((index, node.meta.stamp.size, path));
            }
        }
        misses
    }

    /// Sets the content hash of file `index` (as the hashing threads found
    /// it) and remembers it in `cache`.
    pub fn set_hashed(
        &mut self,
        cache: &mut ChecksumCache,
        root: &str,
        index: usize,
        hash: [u8; 32],
    ) {
        let Some(node) = self.nodes.get_mut(index) else {
            return;
        };
        node.hash = Some(hash);
        let stamp = node.meta.stamp;
        cache.insert(root, self.path(index), stamp, hash);
    }

    /// The digest over the entries sorted by path (each path once): path,
    /// type, mode, uid, gid, symlink target and content hash,
    /// length-prefixed. No timestamps.
    pub fn digest(&self) -> ContextDigest {
        let mut order: Vec<usize> = (0..self.nodes.len()).collect();
        order.sort_by(|&a, &b| self.path(a).cmp(self.path(b)));
        order.dedup_by(|a, b| self.path(*a) == self.path(*b));
        digest_entries(order.into_iter().map(|i| {
            let node = &self.nodes[i];
            (
                self.path(i),
                &node.meta,
                node.link_target.as_deref(),
                node.hash.as_ref(),
            )
        }))
    }
}

impl WalkSink for Selection {
    fn len(&self) -> usize {
        self.nodes.len()
    }

    fn truncate(&mut self, len: usize) {
        if let Some(node) = self.nodes.get(len) {
            self.paths.truncate(node.start);
            self.nodes.truncate(len);
        }
    }

    fn push(
        &mut self,
        rel: &str,
        _abs: AbsPath<'_>,
        meta: &Meta,
        link_target: Option<OsString>,
    ) -> Result<(), ContextError> {
        let start = self.paths.len();
        self.paths.push_str(rel);
        self.nodes.push(Node {
            start,
            end: self.paths.len(),
            meta: *meta,
            link_target,
            hash: None,
        });
        Ok(())
    }
}

/// The digest over `items` (sorted by path; each is a path, its metadata,
/// a symlink's target and the content hash of a regular file): path, type,
/// mode, uid, gid, symlink target and content hash, length-prefixed. No
/// timestamps.
pub(crate) fn digest_entries<'a>(
    items: impl IntoIterator<Item = (&'a str, &'a Meta, Option<&'a OsStr>, Option<&'a [u8; 32]>)>,
) -> ContextDigest {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    let mut h = Sha256::new();
    h.update(b"kiln-context-v1\0");
    for (path, meta, target, hash) in items {
        field(&mut h, path.as_bytes());
        h.update([meta.kind.code()]);
        h.update(meta.mode.to_le_bytes());
        h.update(meta.uid.to_le_bytes());
        h.update(meta.gid.to_le_bytes());
        let target = target
            .map(std::os::unix::ffi::OsStrExt::as_bytes)
            .unwrap_or_default();
        field(&mut h, target);
        match (meta.kind, hash) {
            (EntryKind::File, Some(hash)) => field(&mut h, hash),
            _ => field(&mut h, &[]),
        }
    }
    ContextDigest(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_files_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases: &[(&str, usize, &str)] = &[
            (
                "empty",
                0,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                "abc",
                3,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            ("big", 3 * BUF_SIZE + 17, ""),
        ];
        let mut paths = Vec::new();
        for (name, len, _) in cases {
            let p = dir.path().join(name);
            let data: Vec<u8> = if *name == "abc" {
                b"abc".to_vec()
            } else {
                vec![b'x'; *len]
            };
            std::fs::write(&p, &data).expect("write");
            paths.push(p);
        }
        let (mut done, bytes) = hash_pipelined(|send| {
            for (i, p) in paths.iter().enumerate() {
                send(i, p.clone(), 1);
            }
            Ok(())
        })
        .expect("hash");
        done.sort();
        let hashes: Vec<[u8; 32]> = done.into_iter().map(|(_, h)| h).collect();
        assert_eq!(bytes, (3 + 3 * BUF_SIZE + 17) as u64);
        for ((name, len, want), hash) in cases.iter().zip(&hashes) {
            let expected = if want.is_empty() {
                to_hex(&Sha256::digest(vec![b'x'; *len]))
            } else {
                want.to_string()
            };
            assert_eq!(to_hex(hash), expected, "{name}");
        }
        let missing = dir.path().join("missing");
        let err = hash_pipelined(|send| {
            send(0, missing.clone(), 1);
            Ok(())
        })
        .expect_err("missing file");
        assert!(err.to_string().contains("missing"), "{err}");
        let err = hash_pipelined(|send| {
            send(0, paths[0].clone(), 1);
            Err(ContextError::NotADirectory { path: "x".into() })
        })
        .expect_err("producer error");
        assert!(matches!(err, ContextError::NotADirectory { .. }));
    }

    #[test]
    fn digest_display() {
        let d = ContextDigest([0xab; 32]);
        assert_eq!(d.to_string(), format!("sha256:{}", "ab".repeat(32)));
        assert_eq!(d.to_digest().as_str(), d.to_string());
    }
}
