//! Measuring the store: every path under the root as one [`Entry`].

use super::entry::{Entry, Kind, Reclaim, Target, Usage};
use super::walk::{allocated, is_hex64, modified, names, temporary};
use super::{io_err, GcError};
use crate::cache::CacheIndex;
use kiln_oci::{Digest, LocalStore};
use std::collections::{BTreeMap, HashSet};
use std::fs;

/// How many records hold each blob and each unpacked layer.
#[derive(Debug, Default)]
pub(super) struct Holders {
    blobs: BTreeMap<Digest, usize>,
    layers: BTreeMap<Digest, usize>,
}

impl Holders {
    /// Counts one more record holding `blob` and `diff_id`.
    pub(super) fn add(&mut self, blob: Option<&Digest>, diff_id: Option<&Digest>) {
        if let Some(b) = blob {
            *self.blobs.entry(b.clone()).or_default() += 1;
        }
        if let Some(d) = diff_id {
            *self.layers.entry(d.clone()).or_default() += 1;
        }
    }

    /// Counts one record fewer holding `blob`; true when none is left.
    pub(super) fn release_blob(&mut self, blob: &Digest) -> bool {
        release(&mut self.blobs, blob)
    }

    /// Counts one record fewer holding the layer `diff_id`; true when none
    /// is left.
    pub(super) fn release_layer(&mut self, diff_id: &Digest) -> bool {
        release(&mut self.layers, diff_id)
    }

    fn blob(&self, blob: &Digest) -> usize {
        self.blobs.get(blob).copied().unwrap_or(0)
    }

    fn layer(&self, diff_id: &Digest) -> usize {
        self.layers.get(diff_id).copied().unwrap_or(0)
    }
}

fn release(counts: &mut BTreeMap<Digest, usize>, key: &Digest) -> bool {
    let n = counts.entry(key.clone()).or_default();
    *n = n.saturating_sub(1);
    *n == 0
}

/// Measures everything in the store (see the module documentation for
/// what belongs to which kind). Takes no lock: run it while builds run and
/// the numbers are a snapshot.
///
/// # Errors
/// I/O errors listing or reading the store.
pub fn usage(store: &LocalStore) -> Result<Usage, GcError> {
    let layout = store.layout();
    let root = layout.root();
    let reachable = store.reachable()?;
    let index = CacheIndex::new(layout);
    let mut seen = HashSet::new();
    let mut entries = Vec::new();

    // Images: reachable blobs.
    for digest in &reachable.blobs {
        let path = layout.blob(digest);
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

    // Records, with the blob and unpacked layer they alone hold.
    let records = index
        .records()
        .map_err(io_err("listing", &index.dir().join("keys")))?;
    let mut holders = Holders::default();
    let mut parsed = Vec::new();
    for record in &records {
        let blob: Option<Digest> = record.layer.as_ref().and_then(|l| l.blob.parse().ok());
        let diff_id: Option<Digest> = record.layer.as_ref().and_then(|l| l.diff_id.parse().ok());
        holders.add(blob.as_ref(), diff_id.as_ref());
        parsed.push((record, blob, diff_id));
    }
    let reachable_layer = |d: &Digest| reachable.diff_ids.contains(d.as_str());
    for (record, blob, diff_id) in parsed {
        let mut size = allocated(&record.path, &mut seen)?;
        let mut shared = false;
        if let Some(b) = &blob {
            if reachable.blobs.contains(b) || holders.blob(b) > 1 {
                shared = true;
            }
            if !reachable.blobs.contains(b) {
                size += allocated(&layout.blob(b), &mut seen)?;
            }
        }
        if let Some(d) = &diff_id {
            if reachable_layer(d) || holders.layer(d) > 1 {
                shared = true;
            }
            if !reachable_layer(d) {
                size += allocated(&layout.layer_dir(d), &mut seen)?;
                size += allocated(&index.layer_marker(d.hex()), &mut seen)?;
            }
        }
        let description = match &record.layer {
            Some(_) if blob.as_ref().is_some_and(|b| !layout.blob(b).exists()) => {
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
            reclaim: if blob.as_ref().is_some_and(|b| reachable.blobs.contains(b)) {
                // Removing it frees only the record and loses a cache hit.
                Reclaim::All
            } else {
                Reclaim::Default
            },
            target: Target::Record {
                file: record.path.clone(),
                blob,
                diff_id,
            },
        });
    }

    // Blobs neither reachable nor held by a record.
    for digest in store.blobs()? {
        if reachable.blobs.contains(&digest) || holders.blob(&digest) > 0 {
            continue;
        }
        let path = layout.blob(&digest);
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
    let layers = layout.layers();
    for name in names(&layers)? {
        let path = layers.join(&name);
        if !is_hex64(&name) {
            entries.push(temporary(layout, path, &mut seen)?);
            continue;
        }
        let id = format!("sha256:{name}");
        let diff_id = id.parse::<Digest>().ok();
        let image = diff_id.as_ref().is_some_and(reachable_layer);
        let held = diff_id.as_ref().is_some_and(|d| holders.layer(d) > 0);
        if held && !image {
            continue;
        }
        let marker = index.layer_marker(&name);
        let size = allocated(&path, &mut seen)? + allocated(&marker, &mut seen)?;
        entries.push(Entry {
            id,
            kind: Kind::Layer,
            description: if image {
                "unpacked layer of an image".into()
            } else {
                "unpacked layer nothing uses".into()
            },
            size,
            last_used: modified(&marker).or_else(|| modified(&path)),
            shared: image && held,
            reclaim: if image {
                Reclaim::All
            } else {
                Reclaim::Default
            },
            target: Target::Paths(vec![path, marker]),
        });
    }

    // Cache mounts: `<sha256(id)>[-N]` directories and their lock files.
    let mounts = layout.cache_mounts();
    for name in names(&mounts)? {
        let path = mounts.join(&name);
        if name.ends_with(".lock") {
            continue;
        }
        if name.contains(".tmp-") {
            entries.push(temporary(layout, path, &mut seen)?);
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

    // Context checksum caches, downloads, the records of blobs made by
    // converting other content (`exports/`: layers an export
    // recompressed, cache-mount chunks; removing one only costs
    // converting again), and build records (`builds/`, by their time).
    for (dir, kind, what) in [
        (layout.contexts(), Kind::Context, "context checksum cache"),
        (layout.downloads(), Kind::Download, "ADD URL download"),
        (layout.exports(), Kind::BuildCache, "conversion record"),
        (layout.builds(), Kind::BuildCache, "build record"),
    ] {
        for name in names(&dir)? {
            let path = dir.join(&name);
            if name.contains(".tmp-") {
                entries.push(temporary(layout, path, &mut seen)?);
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

    // Staging directories of builds (`.tmpXXXXXX`, made under a lease),
    // and a names file being replaced (`.tmp-<pid>-refs.json`).
    let staging = layout.staging();
    for name in names(staging)? {
        let path = staging.join(&name);
        if name.starts_with(".tmp") {
            entries.push(temporary(layout, path, &mut seen)?);
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
