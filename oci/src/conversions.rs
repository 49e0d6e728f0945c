//! Records of blobs made from other content: "the tar with this digest,
//! compressed this way, is that blob". Exports convert layers
//! (recompressed, times rewritten) and cache-mount chunks are compressed
//! from their tar; a record lets the next run find the blob instead of
//! compressing again.
//!
//! A record is `exports/<key hex>.json` ([`StoreLayout::exports`]), where
//! the key is a digest of everything that decides the bytes (the source's
//! digest and the conversion's settings). A record is only a shortcut: one
//! that is missing, damaged, larger than [`MAX_RECORD_BYTES`], or whose
//! blob is no longer in the store is ignored, and one that cannot be
//! written is skipped.

use crate::digest::Digest;
use crate::layout::StoreLayout;
use crate::store::BlobReader;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::PathBuf;

/// The largest record read.
pub const MAX_RECORD_BYTES: u64 = 4096;

/// What a conversion made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversion {
    /// The blob.
    pub blob: Digest,
    /// Its size.
    pub size: u64,
    /// The digest of its uncompressed content.
    pub diff_id: Digest,
}

/// The key of a conversion: the digest of `parts` (the source's digest,
/// then each setting that changes the result).
pub fn conversion_key(parts: &[&str]) -> Digest {
    Digest::sha256(parts.join("|").as_bytes())
}

fn record_path(layout: &StoreLayout, key: &Digest) -> PathBuf {
    layout.exports().join(format!("{}.json", key.hex()))
}

/// The conversion recorded under `key`, if its blob is in `store`.
pub fn remembered(
    layout: &StoreLayout,
    store: &dyn BlobReader,
    key: &Digest,
) -> Option<Conversion> {
    let file = std::fs::File::open(record_path(layout, key)).ok()?;
    let mut text = Vec::new();
    file.take(MAX_RECORD_BYTES + 1)
        .read_to_end(&mut text)
        .ok()?;
    if text.len() as u64 > MAX_RECORD_BYTES {
        return None;
    }
    let found: Conversion = serde_json::from_slice(&text).ok()?;
    store.exists(&found.blob).then_some(found)
}

/// Records `conversion` under `key` (a temporary file renamed into place).
pub fn remember(layout: &StoreLayout, key: &Digest, conversion: &Conversion) {
    let path = record_path(layout, key);
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let Ok(text) = serde_json::to_vec(conversion) else {
        return;
    };
    if let Ok(mut tmp) = tempfile::Builder::new()
        .prefix(&StoreLayout::staging_prefix())
        .tempfile_in(dir)
    {
        if tmp.write_all(&text).is_ok() {
            let _ = tmp.persist(&path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BlobIngester, LocalStore};

    #[test]
    fn a_record_is_found_while_its_blob_is_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = LocalStore::open(dir.path().join("s")).expect("store");
        let mut w = store.writer().expect("writer");
        w.write_all(b"compressed").expect("write");
        let blob = w.commit(None, None).expect("commit");
        let key = conversion_key(&["sha256:abc", "gzip"]);
        let made = Conversion {
            blob: blob.clone(),
            size: 10,
            diff_id: Digest::sha256(b"plain"),
        };
        assert_eq!(remembered(store.layout(), &store, &key), None);
        remember(store.layout(), &key, &made);
        assert_eq!(remembered(store.layout(), &store, &key), Some(made));
        let other = conversion_key(&["sha256:abc", "zstd"]);
        assert_eq!(remembered(store.layout(), &store, &other), None);
        // Damaged, oversized, or pointing at a missing blob: ignored.
        let path = record_path(store.layout(), &key);
        std::fs::write(&path, "{").expect("damage");
        assert_eq!(remembered(store.layout(), &store, &key), None);
        std::fs::write(&path, " ".repeat(MAX_RECORD_BYTES as usize + 1)).expect("grow");
        assert_eq!(remembered(store.layout(), &store, &key), None);
        let gone = Conversion {
            blob: Digest::sha256(b"not stored"),
            size: 1,
            diff_id: Digest::sha256(b"x"),
        };
        remember(store.layout(), &key, &gone);
        assert_eq!(remembered(store.layout(), &store, &key), None);
    }
}
