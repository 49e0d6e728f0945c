//! Layer analysis: each layer's tar read as a stream of entries (never
//! unpacked), whiteouts applied, the merged tree after each layer, what
//! each layer added, changed and removed, and dive's efficiency figures.
//!
//! Bounds against hostile tars: a path is at most [`MAX_PATH_BYTES`]
//! bytes and [`MAX_DEPTH`] components, an image at most [`MAX_ENTRIES`]
//! entries; nothing here recurses on depth (subtrees are ranges of a
//! sorted map).

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;

/// The longest path accepted in a layer (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// The most components a path may have.
pub const MAX_DEPTH: usize = 256;
/// The most entries read from all the layers of one image.
pub const MAX_ENTRIES: usize = 1_000_000;
/// The most bytes of paths read from all the layers of one image.
pub const MAX_PATH_TOTAL: usize = 256 << 20;

/// What an analysis may still read: entries and bytes of paths, so a
/// hostile image cannot make kiln hold more than a few hundred MB.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    entries: usize,
    path_bytes: usize,
}

impl Budget {
    /// The bounds of one image: [`MAX_ENTRIES`], [`MAX_PATH_TOTAL`].
    pub fn image() -> Budget {
        Budget {
            entries: MAX_ENTRIES,
            path_bytes: MAX_PATH_TOTAL,
        }
    }

    /// Takes one entry with a path of `len` bytes.
    fn take(&mut self, len: usize) -> Result<()> {
        if self.entries == 0 {
            bail!("the image has more than {MAX_ENTRIES} files: too many to analyse");
        }
        if self.path_bytes < len {
            bail!(
                "the image's paths take more than {} MiB: too many to analyse",
                MAX_PATH_TOTAL >> 20
            );
        }
        self.entries -= 1;
        self.path_bytes -= len;
        Ok(())
    }
}

/// What an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier entry.
    Hardlink,
    /// A character device.
    Char,
    /// A block device.
    Block,
    /// A named pipe.
    Fifo,
}

impl Kind {
    /// The first letter of `ls -l`.
    pub fn letter(self) -> char {
        match self {
            Kind::File | Kind::Hardlink => '-',
            Kind::Dir => 'd',
            Kind::Symlink => 'l',
            Kind::Char => 'c',
            Kind::Block => 'b',
            Kind::Fifo => 'p',
        }
    }
}

/// One file of a layer, as its tar header describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The path without a leading `/` (`etc/passwd`).
    pub path: String,
    /// What it is.
    pub kind: Kind,
    /// The size of its content (0 but for regular files).
    pub size: u64,
    /// Permission and special bits (`0o755`).
    pub mode: u32,
    /// The owner.
    pub uid: u64,
    /// The group.
    pub gid: u64,
    /// The target of a symbolic or hard link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// The sha256 of the content, when the layer was read with hashing.
    #[serde(skip)]
    pub hash: Option<[u8; 32]>,
}

/// One change a layer makes, in its tar's order.
#[derive(Clone, Debug)]
pub enum Change {
    /// The entry is written (added, or replacing a lower one).
    Put(Entry),
    /// A whiteout (`.wh.NAME`): the path and all under it are removed.
    Remove(String),
    /// An opaque whiteout (`.wh..wh..opq`): what lower layers hold under
    /// the directory is hidden.
    Opaque(String),
}

/// The merged file tree: path to entry, sorted by path.
pub type Tree = BTreeMap<String, Entry>;

/// Reads the changes of one layer's uncompressed tar. `hash` computes
/// each regular file's sha256 while it streams by; `budget` is the number
/// of entries still allowed, lowered by each one read.
pub fn read_layer(reader: &mut dyn Read, hash: bool, budget: &mut Budget) -> Result<Vec<Change>> {
    let mut archive = tar::Archive::new(reader);
    let mut changes = Vec::new();
    for (n, entry) in archive
        .entries()
        .context("reading the layer tar")?
        .enumerate()
    {
        let mut entry = entry.with_context(|| format!("reading entry {n} of the layer tar"))?;
        let header_type = entry.header().entry_type();
        let kind = match header_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::Hardlink,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Fifo => Kind::Fifo,
            // PAX and GNU metadata entries (the tar crate applies the
            // per-file ones to the entry that follows).
            _ => continue,
        };
        let raw = entry.path_bytes();
        budget.take(raw.len())?;
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let Some(path) = clean_path(&raw)? else {
            continue;
        };
        let (parent, name) = match path.rsplit_once('/') {
            Some((parent, name)) => (parent, name),
            None => ("", path.as_str()),
        };
        if let Some(hidden) = name.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                changes.push(Change::Opaque(parent.to_string()));
            } else if !hidden.starts_with(".wh.") && !hidden.is_empty() {
                changes.push(Change::Remove(join(parent, hidden)));
            }
            // Other `.wh..wh.` names are aufs's own bookkeeping.
            continue;
        }
        let header = entry.header();
        let mode = header.mode().unwrap_or(0) & 0o7777;
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let link = match kind {
            Kind::Symlink | Kind::Hardlink => entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned()),
            _ => None,
        };
        let size = if kind == Kind::File { entry.size() } else { 0 };
        let digest = if hash && kind == Kind::File {
            let mut hasher = Sha256::new();
            let mut buf = [0u8; 64 * 1024];
            loop {
                let n = entry
                    .read(&mut buf)
                    .with_context(|| format!("reading {raw} in the layer tar"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Some(hasher.finalize().into())
        } else {
            None
        };
        changes.push(Change::Put(Entry {
            path,
            kind,
            size,
            mode,
            uid,
            gid,
            link,
            hash: digest,
        }));
    }
    Ok(changes)
}

/// `text` safe to print on a terminal: control characters (a hostile
/// tar's escape sequences) shown as `?`.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

/// `parent/name`, or `name` at the root.
fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// A tar path made relative and clean (`./a//b/` is `a/b`); `None` for
/// the root itself. `..` and over-long or over-deep paths are errors.
pub fn clean_path(raw: &str) -> Result<Option<String>> {
    if raw.len() > MAX_PATH_BYTES {
        bail!(
            "layer entry {}...: path longer than {MAX_PATH_BYTES} bytes",
            raw.chars().take(40).collect::<String>()
        );
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("layer entry {raw:?}: a path may not hold `..`"),
            part => parts.push(part),
        }
    }
    if parts.len() > MAX_DEPTH {
        bail!(
            "layer entry {}...: deeper than {MAX_DEPTH} directories",
            raw.chars().take(40).collect::<String>()
        );
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// The keys of `tree` at and under `path`, in a range (no recursion).
fn subtree_keys(tree: &Tree, path: &str) -> Vec<String> {
    let mut keys: Vec<String> = tree
        .range(format!("{path}/")..format!("{path}0"))
        .map(|(k, _)| k.clone())
        .collect();
    if tree.contains_key(path) {
        keys.push(path.to_string());
    }
    keys
}

/// The total size of the entries at and under `path`.
pub fn subtree_size(tree: &Tree, path: &str) -> u64 {
    let under: u64 = tree
        .range(format!("{path}/")..format!("{path}0"))
        .map(|(_, e)| e.size)
        .sum();
    under + tree.get(path).map_or(0, |e| e.size)
}

/// Applies one layer's changes to the merged tree: first its whiteouts
/// (they hide only what lower layers hold), then its entries.
pub fn apply(tree: &mut Tree, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Remove(path) => {
                for key in subtree_keys(tree, path) {
                    tree.remove(&key);
                }
            }
            Change::Opaque(dir) => {
                let keys: Vec<String> = tree
                    .range(format!("{dir}/")..format!("{dir}0"))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    tree.remove(&key);
                }
            }
            Change::Put(_) => {}
        }
    }
    for change in changes {
        if let Change::Put(entry) = change {
            if entry.kind != Kind::Dir {
                // A file over a directory replaces the whole directory.
                let keys: Vec<String> = tree
                    .range(format!("{}/", entry.path)..format!("{}0", entry.path))
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in keys {
                    tree.remove(&key);
                }
            }
            tree.insert(entry.path.clone(), entry.clone());
        }
    }
}

/// How a path differs between two trees.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// In the newer tree only.
    Added,
    /// In both, written again or with other metadata.
    Changed,
    /// In the older tree only.
    Removed,
    /// In both, untouched.
    Unchanged,
}

impl Status {
    /// The letter the explorer and `kiln diff` print.
    pub fn letter(self) -> char {
        match self {
            Status::Added => 'A',
            Status::Changed => 'C',
            Status::Removed => 'R',
            Status::Unchanged => ' ',
        }
    }
}

/// What differs between two entries of one path, by name: `type`,
/// `content` (size or sha256), `mode`, `owner`, `link`. Empty when equal.
pub fn differences(old: &Entry, new: &Entry) -> Vec<&'static str> {
    let mut what = Vec::new();
    if old.kind != new.kind {
        what.push("type");
    }
    if old.size != new.size || old.hash != new.hash {
        what.push("content");
    }
    if old.mode != new.mode {
        what.push("mode");
    }
    if (old.uid, old.gid) != (new.uid, new.gid) {
        what.push("owner");
    }
    if old.link != new.link {
        what.push("link");
    }
    what
}

/// One layer of an image, read and summarised.
#[derive(Debug, Clone, Serialize)]
pub struct LayerSummary {
    /// The layer's position, 0 for the base layer.
    pub index: usize,
    /// The digest of the layer blob.
    pub digest: String,
    /// The digest of the uncompressed tar (the config's diff_id).
    pub diff_id: Option<String>,
    /// The layer's size as dive counts it: the sizes of its entries.
    pub size: u64,
    /// The size of the blob as stored (compressed).
    pub blob_size: u64,
    /// The step that made it (from the config's history).
    pub command: String,
    /// Paths it added.
    pub added: usize,
    /// Paths it wrote over.
    pub changed: usize,
    /// Paths its whiteouts removed (counting what was under a removed
    /// directory).
    pub removed: usize,
}

/// A path written in more than one layer, or removed later (dive's
/// "inefficient file").
#[derive(Debug, Clone, Serialize)]
pub struct Inefficiency {
    /// The path, with a leading `/`.
    pub path: String,
    /// How many layers wrote or removed it.
    pub count: usize,
    /// The bytes those layers wrote (dive's cumulative size).
    pub size: u64,
}

/// A whole image's analysis.
#[derive(Debug)]
pub struct Analysis {
    /// The image as the user named it.
    pub name: String,
    /// The layers, base first.
    pub layers: Vec<LayerSummary>,
    /// Each layer's changes, base first.
    pub changes: Vec<Vec<Change>>,
    /// The sum of the layers' sizes.
    pub size: u64,
    /// The sum of the layers' sizes without the base layer.
    pub user_size: u64,
    /// dive's efficiency score: the smallest size each path was seen
    /// with, summed, over all the bytes seen for each path.
    pub efficiency: f64,
    /// The bytes of the inefficient files, all their copies counted.
    pub wasted_bytes: u64,
    /// Wasted bytes over the user size (dive's `userWastedPercent`, a
    /// ratio despite its name).
    pub user_wasted_percent: f64,
    /// The inefficient files, largest first.
    pub inefficiencies: Vec<Inefficiency>,
}

/// A layer to analyse: its identity and the step that made it.
#[derive(Debug, Clone)]
pub struct LayerMeta {
    /// The blob digest.
    pub digest: String,
    /// The uncompressed digest.
    pub diff_id: Option<String>,
    /// The blob's size.
    pub blob_size: u64,
    /// The step that made it.
    pub command: String,
}

/// Per-path figures of dive's efficiency.
struct Seen {
    cumulative: u64,
    min: u64,
    count: usize,
}

/// The paths of a layer that are leaves of the layer's own tree (no entry
/// of the same layer below them): the nodes dive's efficiency visits.
fn leaves(changes: &[Change]) -> Vec<(&str, Option<&Entry>)> {
    let mut parents: HashSet<&str> = HashSet::new();
    for change in changes {
        let path = match change {
            Change::Put(e) => e.path.as_str(),
            Change::Remove(p) => p.as_str(),
            // The marker is a child of its directory.
            Change::Opaque(d) => {
                parents.insert(d.as_str());
                continue;
            }
        };
        let mut rest = path;
        while let Some((parent, _)) = rest.rsplit_once('/') {
            if !parents.insert(parent) {
                break;
            }
            rest = parent;
        }
    }
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Put(e) if !parents.contains(e.path.as_str()) => {
                Some((e.path.as_str(), Some(e)))
            }
            Change::Remove(p) if !parents.contains(p.as_str()) => Some((p.as_str(), None)),
            _ => None,
        })
        .collect()
}

/// Analyses an image from its layers' changes, base first.
pub fn analyse(name: String, metas: Vec<LayerMeta>, changes: Vec<Vec<Change>>) -> Analysis {
    let mut tree = Tree::new();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    let mut layers = Vec::new();
    for (index, (meta, layer)) in metas.into_iter().zip(&changes).enumerate() {
        let mut summary = LayerSummary {
            index,
            digest: meta.digest,
            diff_id: meta.diff_id,
            size: 0,
            blob_size: meta.blob_size,
            command: meta.command,
            added: 0,
            changed: 0,
            removed: 0,
        };
        // Efficiency: each leaf of this layer's tree, as dive counts it. A
        // whiteout costs what the directory it removes held (a removed
        // file costs 0 here: its bytes count where it was written).
        let mut visits: Vec<(String, u64)> = leaves(layer)
            .into_iter()
            .map(|(path, entry)| {
                let size = match entry {
                    Some(e) => e.size,
                    None => match tree.get(path) {
                        Some(e) if e.kind == Kind::Dir => subtree_size(&tree, path),
                        _ => 0,
                    },
                };
                (path.to_string(), size)
            })
            .collect();
        for change in layer {
            match change {
                Change::Put(e) => {
                    summary.size += e.size;
                    if tree.contains_key(&e.path) {
                        summary.changed += 1;
                    } else {
                        summary.added += 1;
                    }
                }
                Change::Remove(p) => summary.removed += subtree_keys(&tree, p).len(),
                Change::Opaque(d) => {
                    let under: Vec<&Entry> = tree
                        .range(format!("{d}/")..format!("{d}0"))
                        .map(|(_, e)| e)
                        .collect();
                    summary.removed += under.len();
                    // An opaque directory costs what it hid.
                    visits.push((d.clone(), under.iter().map(|e| e.size).sum()));
                }
            }
        }
        for (path, size) in visits {
            let s = seen.entry(path).or_insert(Seen {
                cumulative: 0,
                min: size,
                count: 0,
            });
            s.cumulative += size;
            s.min = s.min.min(size);
            s.count += 1;
        }
        apply(&mut tree, layer);
        layers.push(summary);
    }
    let (mut minimum, mut discovered) = (0u64, 0u64);
    let mut inefficiencies = Vec::new();
    for (path, s) in seen {
        minimum += s.min;
        discovered += s.cumulative;
        if s.count > 1 && s.cumulative > 0 {
            inefficiencies.push(Inefficiency {
                path: format!("/{path}"),
                count: s.count,
                size: s.cumulative,
            });
        }
    }
    inefficiencies.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let efficiency = if discovered == 0 {
        1.0
    } else {
        minimum as f64 / discovered as f64
    };
    let wasted_bytes: u64 = inefficiencies.iter().map(|i| i.size).sum();
    let size: u64 = layers.iter().map(|l| l.size).sum();
    let user_size: u64 = layers.iter().skip(1).map(|l| l.size).sum();
    let user_wasted_percent = if user_size == 0 {
        if wasted_bytes == 0 {
            0.0
        } else {
            1.0
        }
    } else {
        wasted_bytes as f64 / user_size as f64
    };
    Analysis {
        name,
        layers,
        changes,
        size,
        user_size,
        efficiency,
        wasted_bytes,
        user_wasted_percent,
        inefficiencies,
    }
}

impl Analysis {
    /// The merged tree after layer `index` (after no layer when `None`).
    pub fn tree_at(&self, index: Option<usize>) -> Tree {
        let mut tree = Tree::new();
        if let Some(last) = index {
            for layer in self.changes.iter().take(last + 1) {
                apply(&mut tree, layer);
            }
        }
        tree
    }

    /// The paths layers `from..=to` wrote.
    pub fn written(&self, from: usize, to: usize) -> HashSet<String> {
        self.changes
            .iter()
            .enumerate()
            .filter(|(i, _)| (from..=to).contains(i))
            .flat_map(|(_, c)| c.iter())
            .filter_map(|c| match c {
                Change::Put(e) => Some(e.path.clone()),
                _ => None,
            })
            .collect()
    }
}

/// One path of a comparison of two trees.
#[derive(Debug, Clone)]
pub struct Compared {
    /// The path.
    pub path: String,
    /// How it differs.
    pub status: Status,
    /// The older entry.
    pub old: Option<Entry>,
    /// The newer entry.
    pub new: Option<Entry>,
}

/// Compares two trees: what `new` added, removed and changed from `old`,
/// plus (with `all`) the unchanged paths, sorted by path. A path in
/// `written` that is in both counts as changed even with equal metadata
/// (a layer wrote it again).
pub fn compare(old: &Tree, new: &Tree, written: &HashSet<String>, all: bool) -> Vec<Compared> {
    let mut out = Vec::new();
    for (path, n) in new {
        match old.get(path) {
            None => out.push(Compared {
                path: path.clone(),
                status: Status::Added,
                old: None,
                new: Some(n.clone()),
            }),
            Some(o) => {
                let changed = !differences(o, n).is_empty() || written.contains(path);
                if changed || all {
                    out.push(Compared {
                        path: path.clone(),
                        status: if changed {
                            Status::Changed
                        } else {
                            Status::Unchanged
                        },
                        old: Some(o.clone()),
                        new: Some(n.clone()),
                    });
                }
            }
        }
    }
    for (path, o) in old {
        if !new.contains_key(path) {
            out.push(Compared {
                path: path.clone(),
                status: Status::Removed,
                old: Some(o.clone()),
                new: None,
            });
        }
    }
    out.sort_by(|a, b| tree_order(&a.path, &b.path));
    out
}

/// Orders paths as a tree lists them: by component, so `a/b` comes
/// before `a-b` and a directory right before its contents.
pub fn tree_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.split('/').cmp(b.split('/'))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A layer tar of these entries.
    pub(crate) fn layer(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(data.len() as u64);
            header.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            builder
                .append_data(&mut header, path, *data)
                .expect("append");
        }
        builder.into_inner().expect("tar")
    }

    fn read(bytes: &[u8]) -> Vec<Change> {
        let mut budget = Budget::image();
        read_layer(&mut &bytes[..], true, &mut budget).expect("layer reads")
    }

    const DIR: tar::EntryType = tar::EntryType::Directory;
    const FILE: tar::EntryType = tar::EntryType::Regular;

    #[test]
    fn whiteouts_remove_lower_files_and_opaque_dirs_hide_them() {
        let base = read(&layer(&[
            ("etc/", DIR, b""),
            ("etc/a", FILE, b"aaaa"),
            ("etc/b", FILE, b"bb"),
            ("opt/", DIR, b""),
            ("opt/x/y", FILE, b"yyy"),
        ]));
        let top = read(&layer(&[
            ("etc/.wh.a", FILE, b""),
            ("opt/.wh..wh..opq", FILE, b""),
            ("opt/new", FILE, b"n"),
        ]));
        let mut tree = Tree::new();
        apply(&mut tree, &base);
        apply(&mut tree, &top);
        let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
        assert_eq!(paths, ["etc", "etc/b", "opt", "opt/new"]);
    }

    #[test]
    fn overwritten_and_removed_files_are_wasted_as_dive_counts() {
        let one = vec![7u8; 1000];
        let two = vec![8u8; 1000];
        let base = read(&layer(&[("bin/", DIR, b""), ("bin/sh", FILE, b"shell")]));
        let l1 = read(&layer(&[("data", FILE, &one), ("gone", FILE, b"12345")]));
        let l2 = read(&layer(&[("data", FILE, &two), (".wh.gone", FILE, b"")]));
        let metas = (0..3)
            .map(|i| LayerMeta {
                digest: format!("l{i}"),
                diff_id: None,
                blob_size: 0,
                command: String::new(),
            })
            .collect();
        let a = analyse("t".into(), metas, vec![base, l1, l2]);
        // /data: 1000 + 1000 written; /gone: 5 written then removed.
        assert_eq!(a.wasted_bytes, 2005);
        assert_eq!(a.inefficiencies[0].path, "/data");
        assert_eq!(a.inefficiencies[0].count, 2);
        assert_eq!(a.layers[2].changed, 1);
        assert_eq!(a.layers[2].removed, 1);
        assert_eq!(a.user_size, 2005);
        // minimum: sh 5 + data 1000 + gone 0; seen: 5 + 2000 + 5.
        assert!((a.efficiency - 1005.0 / 2010.0).abs() < 1e-9);
    }

    #[test]
    fn hostile_paths_are_refused_not_followed() {
        assert!(clean_path("../etc/passwd").is_err());
        assert!(clean_path(&"a/".repeat(MAX_DEPTH + 1)).is_err());
        assert!(clean_path(&"x".repeat(MAX_PATH_BYTES + 1)).is_err());
        assert_eq!(clean_path("./a//b/").expect("clean"), Some("a/b".into()));
        assert_eq!(clean_path("./").expect("clean"), None);
        let mut budget = Budget {
            entries: 1,
            path_bytes: 100,
        };
        let two = layer(&[("a", FILE, b""), ("b", FILE, b"")]);
        assert!(read_layer(&mut &two[..], false, &mut budget).is_err());
        let mut budget = Budget {
            entries: 10,
            path_bytes: 1,
        };
        assert!(read_layer(&mut &two[..], false, &mut budget).is_err());
    }

    #[test]
    fn compare_sees_content_mode_and_removal() {
        let old = read(&layer(&[
            ("a", FILE, b"one"),
            ("b", FILE, b"x"),
            ("c", FILE, b"c"),
        ]));
        let new = read(&layer(&[
            ("a", FILE, b"two"),
            ("b", FILE, b"x"),
            ("d", FILE, b"d"),
        ]));
        let (mut o, mut n) = (Tree::new(), Tree::new());
        apply(&mut o, &old);
        apply(&mut n, &new);
        let got: Vec<(String, Status)> = compare(&o, &n, &HashSet::new(), false)
            .into_iter()
            .map(|c| (c.path, c.status))
            .collect();
        assert_eq!(
            got,
            [
                ("a".to_string(), Status::Changed),
                ("c".to_string(), Status::Removed),
                ("d".to_string(), Status::Added)
            ]
        );
    }

    #[test]
    fn escape_sequences_in_names_are_not_printed() {
        assert_eq!(printable("etc/\u{1b}[2Jevil"), "etc/?[2Jevil");
        assert_eq!(printable("plain/ünïcode"), "plain/ünïcode");
    }

    #[test]
    fn tree_order_puts_a_directory_before_its_neighbours() {
        let mut paths = vec!["a-b", "a/z", "a", "a.txt"];
        paths.sort_by(|x, y| tree_order(x, y));
        assert_eq!(paths, ["a", "a/z", "a-b", "a.txt"]);
    }
}
