//! A persistent metadata index of file content hashes: a file whose device,
//! inode, size, mtime and ctime are unchanged is not read again.
//!
//! On disk: a magic string, the format version (u32, little-endian), the
//! records in postcard (serde's compact binary encoding), then the sha256 of
//! everything before it. A missing, foreign, older (JSON), torn or corrupt
//! file fails one of these checks and loads as an empty index.

use super::error::ContextError;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU64;

/// Numbers the temporaries [`ChecksumCache::save`] writes in this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The first bytes of an index file.
const MAGIC: &[u8; 8] = b"kiln-ctx";

/// The on-disk format version; other versions are ignored (rebuilt).
/// Version 1 was JSON without [`MAGIC`].
const VERSION: u32 = 2;

/// The bytes of [`MAGIC`] and the version.
const HEADER_LEN: usize = MAGIC.len() + 4;

/// The bytes of the trailing sha256.
const TRAILER_LEN: usize = 32;

/// A larger index file is not read (it is rebuilt): a bound on what a
/// foreign file can make `load` allocate. 50,000 files take about 4 MB.
const MAX_FILE_BYTES: u64 = 1 << 30;

/// The identity and state of a regular file as `lstat` gives it: while all
/// of it is unchanged the content is taken to be unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileStamp {
    /// Device id.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

/// What is remembered about one regular file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The file's stamp when it was hashed.
    pub stamp: FileStamp,
    /// The sha256 of the content.
    pub sha256: [u8; 32],
}

/// The records of each context root, as encoded in the file.
type Roots = HashMap<String, HashMap<Box<str>, CacheRecord>>;

/// Content hashes keyed by (canonical context root, relative path), valid
/// while the file's [`FileStamp`] is unchanged.
#[derive(Clone, Debug, Default)]
pub struct ChecksumCache {
    roots: Roots,
    /// Changed since it was loaded; an unchanged cache is not rewritten.
    dirty: bool,
}

impl ChecksumCache {
    /// An empty cache.
    pub fn new() -> ChecksumCache {
        ChecksumCache::default()
    }

    /// Loads the cache saved at `path`. A missing, unreadable, foreign,
    /// torn or corrupt file gives an empty cache: the index is only an
    /// optimisation.
    pub fn load(path: &Path) -> ChecksumCache {
        let readable = std::fs::metadata(path).is_ok_and(|md| md.len() <= MAX_FILE_BYTES);
        let bytes = match readable.then(|| std::fs::read(path)) {
            Some(Ok(bytes)) => bytes,
            _ => return ChecksumCache::new(),
        };
        ChecksumCache::decode(&bytes).unwrap_or_default()
    }

    /// The cache encoded in `bytes`, or `None` when they are not a whole
    /// index of this version.
    fn decode(bytes: &[u8]) -> Option<ChecksumCache> {
        let body_len = bytes.len().checked_sub(TRAILER_LEN)?;
        let (body, trailer) = bytes.split_at(body_len);
        let payload = body.strip_prefix(MAGIC.as_slice())?;
        let (version, payload) = payload.split_first_chunk::<4>()?;
        if u32::from_le_bytes(*version) != VERSION || Sha256::digest(body)[..] != trailer[..] {
            return None;
        }
        match postcard::take_from_bytes::<Roots>(payload) {
            Ok((roots, [])) => Some(ChecksumCache {
                roots,
                dirty: false,
            }),
            _ => None,
        }
    }

    /// The file's bytes: header, records, trailing sha256.
    fn encode(&self) -> Result<Vec<u8>, postcard::Error> {
        let mut out = Vec::with_capacity(HEADER_LEN + 96 * self.len() + TRAILER_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        let mut out = postcard::to_extend(&self.roots, out)?;
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        Ok(out)
    }

    /// Saves the cache to `path` atomically (a temporary file in the same
    /// directory, then a rename), creating the directory if needed.
    ///
    /// The file is not fsynced: it is a cache, and a file lost or torn by a
    /// crash fails the trailing checksum on load and costs only re-hashing
    /// the context once, while an fsync of a few megabytes would cost every
    /// build that changed a file.
    ///
    /// # Errors
    /// Creating the directory, writing the temporary or renaming it.
    pub fn save(&self, path: &Path) -> Result<(), ContextError> {
        if !self.dirty && path.exists() {
            // Unchanged: only note the use (for `kiln prune`'s order).
            if let Ok(f) = std::fs::File::options().append(true).open(path) {
                let _ = f.set_modified(std::time::SystemTime::now());
            }
            return Ok(());
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(ContextError::io(dir))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checksums".into());
        // Per process and call: threads saving one cache at once never
        // share a temporary (each renames a complete file; the last wins).
        let n = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", kiln_oci::process_tag()));
        let write = || -> std::io::Result<()> {
            let bytes = self.encode().map_err(std::io::Error::other)?;
            std::fs::File::create(&tmp)?.write_all(&bytes)
        };
        if let Err(source) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(ContextError::Io { path: tmp, source });
        }
        std::fs::rename(&tmp, path).map_err(|source| {
            let _ = std::fs::remove_file(&tmp);
            ContextError::Io {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    /// The cached content hash of the file at `path` under `root`, if its
    /// stamp is still `stamp`.
    pub fn lookup(&self, root: &str, path: &str, stamp: &FileStamp) -> Option<[u8; 32]> {
        let record = self.roots.get(root)?.get(path)?;
        (record.stamp == *stamp).then_some(record.sha256)
    }

    /// Remembers the content hash of the file at `path` under `root`.
    pub fn insert(&mut self, root: &str, path: &str, stamp: FileStamp, sha256: [u8; 32]) {
        self.dirty = true;
        let files = match self.roots.get_mut(root) {
            Some(files) => files,
            None => self.roots.entry(root.to_string()).or_default(),
        };
        files.insert(path.into(), CacheRecord { stamp, sha256 });
    }

    /// The number of files remembered, over all roots.
    pub fn len(&self) -> usize {
        self.roots.values().map(HashMap::len).sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lower-case hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(mtime_ns: i64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 2,
            size: 3,
            mtime_ns,
            ctime_ns: 5,
        }
    }

    /// A cache of `n` files under two roots, each hash distinct.
    fn sample(n: usize) -> ChecksumCache {
        let mut cache = ChecksumCache::new();
        for i in 0..n {
            let root = if i % 3 == 0 { "/ctx/one" } else { "/ctx/two" };
            let path = format!("d{}/f{i:05}.bin", i % 7);
            let st = FileStamp {
                dev: 2049,
                ino: 1_000_000 + i as u64,
                size: i as u64 * 37,
                mtime_ns: 1_700_000_000_000_000_000 + i as i64,
                ctime_ns: -(i as i64),
            };
            cache.insert(root, &path, st, std::array::from_fn(|b| (b + i) as u8));
        }
        cache
    }

    #[test]
    fn threads_saving_one_cache_at_once_all_succeed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("checksums");
        let mut cache = ChecksumCache::new();
        cache.dirty = true;
        let (threads, saves) = (8, 100);
        let failures: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    let (cache, path) = (&cache, &path);
                    scope.spawn(move || (0..saves).filter(|_| cache.save(path).is_err()).count())
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).sum()
        });
        eprintln!(
            "{} saves of one cache, {failures} failures",
            threads * saves
        );
        assert_eq!(failures, 0);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("checksums")]);
    }

    #[test]
    fn lookup_table() {
        let mut cache = ChecksumCache::new();
        cache.insert("/ctx", "a", stamp(10), [7; 32]);
        let cases: &[(&str, &str, FileStamp, bool)] = &[
            ("/ctx", "a", stamp(10), true),
            ("/ctx", "a", stamp(11), false),
            (
                "/ctx",
                "a",
                FileStamp {
                    ino: 9,
                    ..stamp(10)
                },
                false,
            ),
            (
                "/ctx",
                "a",
                FileStamp {
                    dev: 9,
                    ..stamp(10)
                },
                false,
            ),
            (
                "/ctx",
                "a",
                FileStamp {
                    size: 9,
                    ..stamp(10)
                },
                false,
            ),
            (
                "/ctx",
                "a",
                FileStamp {
                    ctime_ns: 9,
                    ..stamp(10)
                },
                false,
            ),
            ("/other", "a", stamp(10), false),
            ("/ctx", "b", stamp(10), false),
        ];
        for (root, path, st, hit) in cases {
            assert_eq!(
                cache.lookup(root, path, st).is_some(),
                *hit,
                "{root} {path} {st:?}"
            );
        }
        assert_eq!(cache.lookup("/ctx", "a", &stamp(10)), Some([7; 32]));
    }

    #[test]
    fn binary_index_round_trips() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/index");
        let cache = sample(1000);
        cache.save(&path).expect("save");
        let size = std::fs::metadata(&path).expect("saved").len();
        let loaded = ChecksumCache::load(&path);
        assert_eq!(loaded.roots, cache.roots);
        assert_eq!(loaded.len(), 1000);
        assert!(!loaded.dirty);
        // Compact: far below the ~200 bytes a record took as JSON.
        assert!(size < 100 * 1000, "{size} bytes for 1000 records");
        // Saving an unchanged cache leaves the file as it is.
        std::fs::write(&path, b"sentinel").expect("write");
        loaded.save(&path).expect("save unchanged");
        assert_eq!(std::fs::read(&path).expect("read"), b"sentinel");
    }

    /// Bytes from a fixed-seed xorshift generator.
    fn noise(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// `payload` framed as a well-formed file of this version.
    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(payload);
        let sum = Sha256::digest(&out);
        out.extend_from_slice(&sum);
        out
    }

    #[test]
    fn foreign_torn_and_corrupt_files_load_as_empty() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index");
        let valid = sample(50).encode().expect("encode");
        assert_eq!(ChecksumCache::decode(&valid).map(|c| c.len()), Some(50));
        // The JSON index kiln wrote before the binary one.
        let json_v1 = br#"{"version":1,"roots":{"/ctx":{"a":{"dev":1,"ino":2,"size":3,"mtime_ns":4,"ctime_ns":5,"sha256":"0707070707070707070707070707070707070707070707070707070707070707"}}}}"#;
        let mut other_version = valid.clone();
        other_version[MAGIC.len()] ^= 1;
        let mut trailing = valid[..valid.len() - TRAILER_LEN].to_vec();
        trailing.push(0);
        let mut cases: Vec<(String, Vec<u8>)> = vec![
            ("empty".into(), Vec::new()),
            ("json v1".into(), json_v1.to_vec()),
            ("other version".into(), other_version),
            ("magic only".into(), MAGIC.to_vec()),
            ("non-utf8".into(), b"\xff\xfe".to_vec()),
            (
                "byte after the records".into(),
                framed(&trailing[HEADER_LEN..]),
            ),
            // Checksummed but not records: a root count of 2^63.
            (
                "huge length".into(),
                framed(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]),
            ),
        ];
        for seed in 1..=200 {
            let len = (seed as usize * 37) % 3000;
            cases.push((format!("noise {seed}"), noise(seed, len)));
            cases.push((format!("framed noise {seed}"), framed(&noise(seed, len))));
        }
        // Torn: every prefix a crash could leave.
        for cut in (0..valid.len()).step_by(7) {
            cases.push((format!("first {cut} bytes"), valid[..cut].to_vec()));
        }
        // One flipped byte anywhere.
        for at in (0..valid.len()).step_by(5) {
            let mut bytes = valid.clone();
            bytes[at] ^= 0x5a;
            cases.push((format!("byte {at} flipped"), bytes));
        }
        for (name, bytes) in &cases {
            std::fs::write(&path, bytes).expect("write");
            let loaded = ChecksumCache::load(&path);
            // A framed random payload may happen to decode; it must never
            // be a partial read of the valid file.
            if name.starts_with("framed noise") {
                continue;
            }
            assert!(loaded.is_empty(), "{name}: {} records", loaded.len());
        }
        assert!(ChecksumCache::load(&dir.path().join("missing")).is_empty());
        assert!(ChecksumCache::load(dir.path()).is_empty(), "a directory");
        // A loaded-empty cache saves over the foreign file.
        let mut cache = ChecksumCache::load(&path);
        cache.insert("/ctx", "a", stamp(1), [1; 32]);
        cache.save(&path).expect("save");
        assert_eq!(
            ChecksumCache::load(&path).lookup("/ctx", "a", &stamp(1)),
            Some([1; 32])
        );
    }
}
