//! A persistent metadata index of file content hashes: a file whose device,
//! inode, size, mtime and ctime are unchanged is not read again.

use super::error::ContextError;
use super::walk::WalkEntry;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicU64;

/// Numbers the temporaries [`ChecksumCache::save`] writes in this process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The on-disk format version; other versions are ignored (rebuilt).
const VERSION: u32 = 1;

/// What is remembered about one regular file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
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
    /// The sha256 of the content, lower-case hex.
    pub sha256: String,
}

impl CacheRecord {
    fn same_file(&self, entry: &WalkEntry) -> bool {
        self.dev == entry.dev
            && self.ino == entry.ino
            && self.size == entry.size
            && self.mtime_ns == entry.mtime_ns
            && self.ctime_ns == entry.ctime_ns
    }
}

#[derive(Serialize, Deserialize)]
struct CacheFile {
    version: u32,
    roots: BTreeMap<String, BTreeMap<String, CacheRecord>>,
}

/// Content hashes keyed by (canonical context root, relative path), valid
/// while the file's (dev, inode, size, mtime, ctime) are unchanged.
#[derive(Clone, Debug, Default)]
pub struct ChecksumCache {
    roots: HashMap<String, HashMap<String, CacheRecord>>,
    /// Changed since it was loaded; an unchanged cache is not rewritten.
    dirty: bool,
}

impl ChecksumCache {
    /// An empty cache.
    pub fn new() -> ChecksumCache {
        ChecksumCache::default()
    }

    /// Loads the cache saved at `path`. A missing, unreadable or corrupt
    /// file gives an empty cache: the index is only an optimisation.
    pub fn load(path: &Path) -> ChecksumCache {
        let Ok(bytes) = std::fs::read(path) else {
            return ChecksumCache::new();
        };
        match serde_json::from_slice::<CacheFile>(&bytes) {
            Ok(file) if file.version == VERSION => ChecksumCache {
                roots: file
                    .roots
                    .into_iter()
                    .map(|(root, files)| (root, files.into_iter().collect()))
                    .collect(),
                dirty: false,
            },
            _ => ChecksumCache::new(),
        }
    }

    /// Saves the cache to `path` atomically (a temporary file in the same
    /// directory, then a rename), creating the directory if needed.
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
        let file = CacheFile {
            version: VERSION,
            roots: self
                .roots
                .iter()
                .map(|(root, files)| {
                    let files = files.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    (root.clone(), files)
                })
                .collect(),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "checksums".into());
        // Per process and call: threads saving one cache at once never
        // share a temporary (each renames a complete file; the last wins).
        let n = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp-{}-{n}", kiln_oci::process_tag()));
        let write = || -> std::io::Result<()> {
            let mut out = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            serde_json::to_writer(&mut out, &file)?;
            out.flush()?;
            out.get_ref().sync_all()?;
            Ok(())
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

    /// The cached content hash of `entry` under `root`, if still valid.
    pub fn lookup(&self, root: &str, entry: &WalkEntry) -> Option<[u8; 32]> {
        let record = self.roots.get(root)?.get(&entry.path)?;
        if !record.same_file(entry) {
            return None;
        }
        parse_hex(&record.sha256)
    }

    /// Remembers the content hash of `entry` under `root`.
    pub fn insert(&mut self, root: &str, entry: &WalkEntry, sha256: &[u8; 32]) {
        let record = CacheRecord {
            dev: entry.dev,
            ino: entry.ino,
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            ctime_ns: entry.ctime_ns,
            sha256: to_hex(sha256),
        };
        self.dirty = true;
        self.roots
            .entry(root.to_string())
            .or_default()
            .insert(entry.path.clone(), record);
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

/// Parses 64 hex digits.
pub(crate) fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn entry(path: &str, mtime_ns: i64) -> WalkEntry {
        WalkEntry {
            path: path.into(),
            abs_path: path.into(),
            kind: super::super::walk::EntryKind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: 3,
            link_target: None,
            dev: 1,
            ino: 2,
            nlink: 1,
            mtime_ns,
            ctime_ns: 5,
        }
    }

    #[test]
    fn lookup_table() {
        let mut cache = ChecksumCache::new();
        cache.insert("/ctx", &entry("a", 10), &[7; 32]);
        let cases: &[(&str, &str, i64, bool)] = &[
            ("/ctx", "a", 10, true),
            ("/ctx", "a", 11, false),
            ("/other", "a", 10, false),
            ("/ctx", "b", 10, false),
        ];
        for (root, path, mtime, hit) in cases {
            assert_eq!(
                cache.lookup(root, &entry(path, *mtime)).is_some(),
                *hit,
                "{root} {path} {mtime}"
            );
        }
    }

    #[test]
    fn save_load_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/cache.json");
        let mut cache = ChecksumCache::new();
        cache.insert("/ctx", &entry("a", 10), &[7; 32]);
        cache.save(&path).expect("save");
        let loaded = ChecksumCache::load(&path);
        assert_eq!(loaded.lookup("/ctx", &entry("a", 10)), Some([7; 32]));
        let corrupt: &[&[u8]] = &[b"", b"{", b"{\"version\":99,\"roots\":{}}", b"\xff\xfe"];
        for bytes in corrupt {
            std::fs::write(&path, bytes).expect("write");
            assert!(ChecksumCache::load(&path).is_empty());
        }
        assert!(ChecksumCache::load(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn hex_round_trip() {
        let bytes: [u8; 32] = std::array::from_fn(|i| (i * 9) as u8);
        assert_eq!(parse_hex(&to_hex(&bytes)), Some(bytes));
        assert_eq!(parse_hex("zz"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }
}
