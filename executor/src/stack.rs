//! Layer stacks and the [`SourceTree`] view COPY reads sources through.
//!
//! The merged view follows overlayfs: a name is looked up from the top
//! layer down; the first layer holding it decides. A whiteout (character
//! device 0/0) there means deleted. A directory merges with the
//! directories at the same path in lower layers, down to (and including)
//! the first opaque one or the first layer where the path is a
//! non-directory or a whiteout.

use crate::dirfd::Dir;
use crate::names;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What went wrong reading a source tree.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A COPY source without wildcards names nothing.
    #[error("{path:?}: not found")]
    NotFound {
        /// The source as written.
        path: String,
    },
    /// An I/O error on a path of the tree.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The real path.
        path: PathBuf,
        /// The error.
        #[source]
        error: std::io::Error,
    },
}

/// One entry of a source tree.
#[derive(Debug, Clone)]
pub struct SourceEntry {
    /// The path relative to the tree's root (`dir/a.txt`; `""` is the root).
    pub rel: String,
    /// Where the entry really is on disk (in whichever layer holds it).
    pub real: PathBuf,
    /// Its metadata, not following a final symlink.
    pub metadata: std::fs::Metadata,
}

/// A tree COPY can read from: a [`LayerStack`] (a stage or an image) or
/// the build context (implemented in the solver, which applies
/// `.dockerignore`).
pub trait SourceTree: Send + Sync {
    /// Expands a COPY source as written: leading `/` and `./` dropped,
    /// `..` clamped at the root, wildcards (`*`, `?`, `[...]`, Go
    /// `filepath.Match` syntax) matched per path component. A literal path
    /// that does not exist is [`SourceError::NotFound`]; a wildcard that
    /// matches nothing gives an empty list. Paths are returned sorted.
    ///
    /// # Errors
    /// `NotFound` or I/O errors.
    fn resolve(&self, source: &str) -> Result<Vec<String>, SourceError>;

    /// The entry at `rel`, not following a final symlink; `None` when
    /// absent (or deleted by an upper layer, or excluded).
    ///
    /// # Errors
    /// I/O errors.
    fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, SourceError>;

    /// The names in directory `rel`, sorted, without deleted or excluded
    /// names.
    ///
    /// # Errors
    /// I/O errors.
    fn list(&self, rel: &str) -> Result<Vec<String>, SourceError>;
}

/// A filesystem as layer directories, bottom first.
///
/// A stack made with [`LayerStack::new`] remembers the directories its
/// lookups walk through (shared by clones), so a deep stack is not walked
/// layer by layer again for every path: its layers must not change while
/// it is read. [`LayerStack::with`] makes a stack over a layer being
/// written, which remembers nothing.
#[derive(Debug, Clone, Default)]
pub struct LayerStack {
    layers: Vec<PathBuf>,
    dirs: Option<std::sync::Arc<std::sync::Mutex<HashMap<String, Found>>>>,
}

impl PartialEq for LayerStack {
    fn eq(&self, other: &LayerStack) -> bool {
        self.layers == other.layers
    }
}

impl Eq for LayerStack {}

impl LayerStack {
    /// A stack of these layer directories, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> LayerStack {
        LayerStack {
            layers,
            dirs: Some(Default::default()),
        }
    }

    /// The merged directory at the resolved path `key`, remembered or
    /// looked up with `find`.
    fn cached_dir(
        &self,
        key: &str,
        find: impl FnOnce() -> Result<Option<Found>, SourceError>,
    ) -> Result<Option<Found>, SourceError> {
        let Some(dirs) = &self.dirs else {
            return find();
        };
        if let Some(f) = dirs.lock().unwrap_or_else(|e| e.into_inner()).get(key) {
            return Ok(Some(f.clone()));
        }
        let found = find()?;
        if let Some(f) = &found {
            if f.metadata.is_dir() {
                dirs.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.to_string(), f.clone());
            }
        }
        Ok(found)
    }

    /// The layer directories, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// This stack with `upper` (possibly being written) on top; the new
    /// stack remembers no lookups.
    pub fn with(&self, upper: PathBuf) -> LayerStack {
        let mut layers = self.layers.clone();
        layers.push(upper);
        LayerStack { layers, dirs: None }
    }
}

/// How many symlinks one lookup follows before giving up (`ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// A path found in the merged view.
#[derive(Debug, Clone)]
struct Found {
    /// The path in the top-most layer holding it.
    real: PathBuf,
    /// Its metadata (not following a symlink).
    metadata: Metadata,
    /// For a directory: the directories merged into it, top first (`real`
    /// first). Empty for other types.
    dirs: Vec<PathBuf>,
}

fn io_err(action: &'static str, path: &Path, error: io::Error) -> SourceError {
    SourceError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

/// Splits a path into components: empty and `.` dropped, `..` clamped at
/// the root.
fn clean(path: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn lstat(path: &Path) -> Result<Option<Metadata>, SourceError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(io_err("reading", path, e)),
    }
}

fn opaque(path: &Path) -> Result<bool, SourceError> {
    crate::overlay_marks::is_opaque(path).map_err(|e| io_err("reading xattrs of", path, e))
}

impl LayerStack {
    /// The root of the merged view, `None` for an empty stack.
    fn root(&self) -> Result<Option<Found>, SourceError> {
        self.cached_dir("", || self.find_root())
    }

    fn find_root(&self) -> Result<Option<Found>, SourceError> {
        let mut dirs = Vec::new();
        for layer in self.layers.iter().rev() {
            dirs.push(layer.clone());
            if opaque(layer)? {
                break;
            }
        }
        let Some(top) = self.layers.last() else {
            return Ok(None);
        };
        let metadata = std::fs::symlink_metadata(top).map_err(|e| io_err("reading", top, e))?;
        Ok(Some(Found {
            real: top.clone(),
            metadata,
            dirs,
        }))
    }

    /// Looks up `name` in the merged directory made of `dirs` (top first).
    fn step(dirs: &[PathBuf], name: &OsStr) -> Result<Option<Found>, SourceError> {
        let mut found: Option<Found> = None;
        for dir in dirs {
            let path = dir.join(name);
            let Some(metadata) = lstat(&path)? else {
                continue;
            };
            if crate::overlay_marks::is_whiteout(&path, &metadata) {
                break;
            }
            let is_dir = metadata.is_dir();
            match &mut found {
                None => {
                    found = Some(Found {
                        real: path.clone(),
                        metadata,
                        dirs: if is_dir {
                            vec![path.clone()]
                        } else {
                            Vec::new()
                        },
                    });
                }
                Some(f) => {
                    if !is_dir {
                        break;
                    }
                    f.dirs.push(path.clone());
                }
            }
            if !is_dir || opaque(&path)? {
                break;
            }
        }
        Ok(found)
    }

    /// Looks up `rel` (cleaned as COPY sources are). Symlinks in
    /// intermediate components are followed inside the root (absolute
    /// targets restart at the root, `..` is clamped there); a final symlink
    /// only when `follow_final`.
    fn lookup(&self, rel: &str, follow_final: bool) -> Result<Option<Found>, SourceError> {
        let Some(root) = self.root()? else {
            return Ok(None);
        };
        let mut pending: std::collections::VecDeque<String> = clean(rel).into();
        let mut resolved: Vec<String> = Vec::new();
        let mut cur = root;
        let mut links = 0;
        while let Some(name) = pending.pop_front() {
            if !cur.metadata.is_dir() {
                return Ok(None);
            }
            let key = if resolved.is_empty() {
                name.clone()
            } else {
                format!("{}/{name}", resolved.join("/"))
            };
            let Some(next) =
                self.cached_dir(&key, || Self::step(&cur.dirs, &names::decode(&name)))?
            else {
                return Ok(None);
            };
            if next.metadata.file_type().is_symlink() && (!pending.is_empty() || follow_final) {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(io_err(
                        "resolving",
                        &next.real,
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = std::fs::read_link(&next.real)
                    .map_err(|e| io_err("reading link", &next.real, e))?;
                let target = target.as_os_str().to_string_lossy();
                let mut full = if target.starts_with('/') {
                    String::new()
                } else {
                    resolved.join("/")
                };
                full.push('/');
                full.push_str(&target);
                for rest in &pending {
                    full.push('/');
                    full.push_str(rest);
                }
                pending = clean(&full).into();
                resolved.clear();
                cur = self.root()?.expect("the stack is not empty");
                continue;
            }
            resolved.push(name);
            cur = next;
        }
        Ok(Some(cur))
    }

    /// The names in a merged directory with their state (`true`: present,
    /// `false`: whited out), top layer deciding, sorted by bytes.
    fn names(found: &Found) -> Result<BTreeMap<OsString, bool>, SourceError> {
        let mut names: BTreeMap<OsString, bool> = BTreeMap::new();
        for dir in &found.dirs {
            let read = std::fs::read_dir(dir).map_err(|e| io_err("listing", dir, e))?;
            for entry in read {
                let entry = entry.map_err(|e| io_err("listing", dir, e))?;
                let name = entry.file_name();
                if names.contains_key(&name) {
                    continue;
                }
                let metadata = entry
                    .metadata()
                    .map_err(|e| io_err("reading", &entry.path(), e))?;
                names.insert(
                    name,
                    !crate::overlay_marks::is_whiteout(&entry.path(), &metadata),
                );
            }
        }
        Ok(names)
    }

    /// The present names of a merged directory, sorted.
    fn present(found: &Found) -> Result<Vec<OsString>, SourceError> {
        Ok(Self::names(found)?
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect())
    }
}

impl SourceTree for LayerStack {
    fn resolve(&self, source: &str) -> Result<Vec<String>, SourceError> {
        let comps = clean(source);
        if !comps.iter().any(|c| has_meta(c)) {
            let rel = comps.join("/");
            return match self.entry(&rel)? {
                Some(_) => Ok(vec![rel]),
                None => Err(SourceError::NotFound {
                    path: source.to_string(),
                }),
            };
        }
        for c in comps.iter().filter(|c| has_meta(c)) {
            if let Err(BadPattern) = go_match(c, "") {
                return Err(SourceError::Io {
                    action: "matching",
                    path: PathBuf::from(source),
                    error: io::Error::new(io::ErrorKind::InvalidInput, "syntax error in pattern"),
                });
            }
        }
        let mut current = vec![String::new()];
        for c in &comps {
            let mut next = Vec::new();
            if has_meta(c) {
                for parent in &current {
                    let Some(found) = self.lookup(parent, true)? else {
                        continue;
                    };
                    if !found.metadata.is_dir() {
                        continue;
                    }
                    for name in Self::present(&found)? {
                        let name = names::encode(&name);
                        if go_match(c, &name).unwrap_or(false) {
                            next.push(join(parent, &name));
                        }
                    }
                }
            } else {
                next = current.iter().map(|p| join(p, c)).collect();
            }
            current = next;
        }
        let mut out = Vec::new();
        for path in current {
            if self.entry(&path)?.is_some() {
                out.push(path);
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, SourceError> {
        Ok(self.lookup(rel, false)?.map(|found| SourceEntry {
            rel: clean(rel).join("/"),
            real: found.real,
            metadata: found.metadata,
        }))
    }

    /// Lists directory `rel` (a final symlink is followed, as `opendir`
    /// does). An absent path is [`SourceError::NotFound`], a non-directory
    /// an `ENOTDIR` I/O error. Names that are not UTF-8 come in
    /// [`names::encode`] form.
    fn list(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let Some(found) = self.lookup(rel, true)? else {
            if self.layers.is_empty() && clean(rel).is_empty() {
                return Ok(Vec::new());
            }
            return Err(SourceError::NotFound {
                path: rel.to_string(),
            });
        };
        if !found.metadata.is_dir() {
            return Err(io_err(
                "listing",
                &found.real,
                io::Error::from_raw_os_error(libc::ENOTDIR),
            ));
        }
        Ok(Self::present(&found)?
            .into_iter()
            .map(|n| names::encode(&n).into_owned())
            .collect())
    }
}

/// Whether a path component is a pattern (Go's `hasMeta` on Unix).
fn has_meta(component: &str) -> bool {
    component.contains(['*', '?', '[', '\\'])
}

/// A malformed pattern (Go's `filepath.ErrBadPattern`).
#[derive(Debug, PartialEq, Eq)]
struct BadPattern;

/// Go's `filepath.Match` on Unix: `*` (no `/`), `?`, `[...]` / `[^...]`
/// with ranges, `\` escapes.
fn go_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern: &[char] = &pattern.chars().collect::<Vec<_>>();
    let name_chars: Vec<char> = name.chars().collect();
    let mut name: &[char] = &name_chars;
    'outer: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains(&'/'));
        }
        let (t, ok, err) = match_chunk(chunk, name);
        if ok && (t.is_empty() || !pattern.is_empty()) {
            name = t;
            continue;
        }
        if err {
            return Err(BadPattern);
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != '/' {
                let (t, ok, err) = match_chunk(chunk, &name[i + 1..]);
                if ok {
                    if pattern.is_empty() && !t.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
                if err {
                    return Err(BadPattern);
                }
                i += 1;
            }
        }
        while !pattern.is_empty() {
            let (_, chunk, rest) = scan_chunk(pattern);
            pattern = rest;
            if match_chunk(chunk, &[]).2 {
                return Err(BadPattern);
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Go's `scanChunk`: leading stars, then the chunk up to the next star
/// outside a class.
fn scan_chunk(mut pattern: &[char]) -> (bool, &[char], &[char]) {
    let mut star = false;
    while pattern.first() == Some(&'*') {
        pattern = &pattern[1..];
        star = true;
    }
    let mut inrange = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            '\\' if i + 1 < pattern.len() => i += 1,
            '[' => inrange = true,
            ']' => inrange = false,
            '*' if !inrange => break,
            _ => {}
        }
        i += 1;
    }
    (star, &pattern[..i], &pattern[i..])
}

/// Go's `matchChunk`: (rest of name, matched, bad pattern).
fn match_chunk<'a>(mut chunk: &[char], mut s: &'a [char]) -> (&'a [char], bool, bool) {
    let mut failed = false;
    while !chunk.is_empty() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match chunk[0] {
            '[' => {
                let mut r = '\0';
                if !failed {
                    r = s[0];
                    s = &s[1..];
                }
                chunk = &chunk[1..];
                let mut negated = false;
                if chunk.first() == Some(&'^') {
                    negated = true;
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some((lo, rest)) = get_esc(chunk) else {
                        return (&[], false, true);
                    };
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == '-' {
                        let Some((h, rest)) = get_esc(&chunk[1..]) else {
                            return (&[], false, true);
                        };
                        hi = h;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed {
                    if s[0] == '/' {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
            c => {
                let c = if c == '\\' {
                    chunk = &chunk[1..];
                    match chunk.first() {
                        None => return (&[], false, true),
                        Some(&c) => c,
                    }
                } else {
                    c
                };
                if !failed {
                    if c != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    if failed {
        (&[], false, false)
    } else {
        (s, true, false)
    }
}

/// Go's `getEsc`: one possibly escaped class character; the class must go
/// on after it.
fn get_esc(chunk: &[char]) -> Option<(char, &[char])> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some('-') | Some(']') => return None,
        Some('\\') => {
            chunk = &chunk[1..];
            chunk.first()?;
        }
        _ => {}
    }
    let r = chunk[0];
    let rest = &chunk[1..];
    if rest.is_empty() {
        return None;
    }
    Some((r, rest))
}

/// Copies the merged view of `stack` into the plain directory `dest`,
/// creating it if needed (its own metadata is left alone). Over an earlier
/// export, directories are merged into and other entries in the way are
/// replaced. Types, modes (with setuid/setgid/sticky), owners, symlink
/// targets, access and modification times are kept; entries sharing an
/// inode in the stack are hard links in `dest`. Whiteouts and sockets are
/// skipped.
///
/// # Errors
/// I/O errors naming the path.
pub fn materialize(stack: &LayerStack, dest: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dest).map_err(|e| crate::file_meta::annotate("creating", dest, e))?;
    let Some(root) = stack.root()? else {
        return Ok(());
    };
    let open = |p: &Path| Dir::open(p).map_err(|e| crate::file_meta::annotate("opening", p, e));
    let dirs: Vec<Dir> = root
        .dirs
        .iter()
        .map(|d| open(d))
        .collect::<io::Result<_>>()?;
    let dest = Rc::new(open(dest)?);
    let mut links = HashMap::new();
    let names = merged_names(&dirs)?;
    let mut stack = vec![Level {
        dirs,
        dest,
        names,
        made: None,
    }];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.pop() else {
            if let Some(done) = stack.pop() {
                // Directory times last: writing its children changed them.
                if let (Some((name, md)), Some(parent)) = (done.made, stack.last()) {
                    drop(done.dest);
                    parent.dest.set_meta(&name, &md)?;
                }
            }
            continue;
        };
        let Some(child) = merged_step(&level.dirs, &name)? else {
            continue;
        };
        let dest = &level.dest;
        let md = &child.metadata;
        let ft = md.file_type();
        // Writing over an earlier export: what is in the way is replaced,
        // directories are merged into (as buildx's local exporter does).
        let old = dest.child_metadata(&name).ok();
        if let Some(old) = &old {
            if !(old.is_dir() && ft.is_dir()) {
                dest.remove_tree(&name).map_err(|e| {
                    crate::file_meta::annotate("replacing", &dest.child_path(&name), e)
                })?;
            }
        }
        if ft.is_dir() {
            if !old.is_some_and(|o| o.is_dir()) {
                dest.create_dir(&name, 0o700).map_err(|e| {
                    crate::file_meta::annotate("creating", &dest.child_path(&name), e)
                })?;
            }
            let sub = dest
                .open_dir(&name)
                .map_err(|e| crate::file_meta::annotate("opening", &dest.child_path(&name), e))?;
            let names = merged_names(&child.dirs)?;
            stack.push(Level {
                dirs: child.dirs,
                dest: Rc::new(sub),
                names,
                made: Some((name, child.metadata)),
            });
            continue;
        }
        if ft.is_socket() {
            continue;
        }
        copy_leaf_at(&level.dirs[child.layer], &name, dest, md, &mut links)?;
    }
    Ok(())
}

/// A merged directory being copied by [`materialize`].
struct Level {
    /// The layer directories merged into it, top first.
    dirs: Vec<Dir>,
    /// Where it is copied to.
    dest: Rc<Dir>,
    /// Its present names not copied yet, in reverse order.
    names: Vec<OsString>,
    /// Its name in the level above and the metadata it gets once filled.
    made: Option<(OsString, Metadata)>,
}

/// An entry of a merged directory, as [`merged_step`] finds it.
struct MergedChild {
    /// Index (in the directories looked in) of the layer holding it.
    layer: usize,
    /// Its metadata there (not following a symlink).
    metadata: Metadata,
    /// For a directory: the directories merged into it, top first.
    dirs: Vec<Dir>,
}

/// The present names of the merged directory made of `dirs` (top first),
/// in reverse byte order.
fn merged_names(dirs: &[Dir]) -> io::Result<Vec<OsString>> {
    let mut names: BTreeMap<OsString, bool> = BTreeMap::new();
    for dir in dirs {
        let listed = dir
            .names()
            .map_err(|e| crate::file_meta::annotate("listing", dir.path(), e))?;
        for name in listed {
            if names.contains_key(&name) {
                continue;
            }
            let path = || dir.child_path(&name);
            let md = dir
                .child_metadata(&name)
                .map_err(|e| crate::file_meta::annotate("reading", &path(), e))?;
            let whiteout = dir
                .is_whiteout(&name, &md)
                .map_err(|e| crate::file_meta::annotate("reading", &path(), e))?;
            names.insert(name, !whiteout);
        }
    }
    Ok(names
        .into_iter()
        .rev()
        .filter_map(|(name, present)| present.then_some(name))
        .collect())
}

/// Looks up `name` in the merged directory made of `dirs` (top first), as
/// [`LayerStack::step`] does with paths.
fn merged_step(dirs: &[Dir], name: &OsStr) -> io::Result<Option<MergedChild>> {
    let mut found: Option<MergedChild> = None;
    for (layer, dir) in dirs.iter().enumerate() {
        let path = || dir.child_path(name);
        let metadata = match dir.child_metadata(name) {
            Ok(m) => m,
            Err(e)
                if e.kind() == io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ENOTDIR) =>
            {
                continue
            }
            Err(e) => return Err(crate::file_meta::annotate("reading", &path(), e)),
        };
        if dir
            .is_whiteout(name, &metadata)
            .map_err(|e| crate::file_meta::annotate("reading", &path(), e))?
        {
            break;
        }
        let is_dir = metadata.is_dir();
        let found = match &mut found {
            None => found.insert(MergedChild {
                layer,
                metadata,
                dirs: Vec::new(),
            }),
            Some(_) if !is_dir => break,
            Some(f) => f,
        };
        if !is_dir {
            break;
        }
        let sub = dir
            .open_dir(name)
            .map_err(|e| crate::file_meta::annotate("opening", &path(), e))?;
        let opaque = sub
            .is_opaque()
            .map_err(|e| crate::file_meta::annotate("reading xattrs of", &path(), e))?;
        found.dirs.push(sub);
        if opaque {
            break;
        }
    }
    Ok(found)
}

/// Copies the non-directory `name` of `src` (metadata `md`) into `dst`
/// with its metadata; a file met before under the same inode (`links`,
/// keyed by the source's device and inode) is hard-linked to its first
/// copy.
fn copy_leaf_at(
    src: &Dir,
    name: &OsStr,
    dst: &Rc<Dir>,
    md: &Metadata,
    links: &mut HashMap<(u64, u64), (Rc<Dir>, OsString)>,
) -> io::Result<()> {
    let ft = md.file_type();
    let key = (md.dev(), md.ino());
    let target = || dst.child_path(name);
    if md.nlink() > 1 {
        if let Some((dir, first)) = links.get(&key) {
            return dst
                .hard_link(name, dir, first)
                .map_err(|e| crate::file_meta::annotate("linking", &target(), e));
        }
    }
    if ft.is_file() {
        let from = || src.child_path(name);
        let mut r = src
            .open_file(name)
            .map_err(|e| crate::file_meta::annotate("opening", &from(), e))?;
        let mut w = dst
            .create_file(name, 0o600)
            .map_err(|e| crate::file_meta::annotate("creating", &target(), e))?;
        io::copy(&mut r, &mut w).map_err(|e| crate::file_meta::annotate("copying", &from(), e))?;
    } else if ft.is_symlink() {
        let link = src
            .read_link(name)
            .map_err(|e| crate::file_meta::annotate("reading link", &src.child_path(name), e))?;
        dst.symlink(&link, name)
            .map_err(|e| crate::file_meta::annotate("creating", &target(), e))?;
    } else {
        dst.mknod(name, md.mode(), md.rdev())
            .map_err(|e| crate::file_meta::annotate("creating", &target(), e))?;
    }
    dst.set_meta(name, md)?;
    if md.nlink() > 1 {
        links.insert(key, (Rc::clone(dst), name.to_os_string()));
    }
    Ok(())
}

impl From<SourceError> for io::Error {
    /// An I/O error naming the path (other errors as their message).
    fn from(e: SourceError) -> io::Error {
        match e {
            SourceError::Io {
                action,
                path,
                error,
            } => crate::file_meta::annotate(action, &path, error),
            other => io::Error::other(other.to_string()),
        }
    }
}

/// Copies the non-directory `src` (metadata `md`) to `dst` with its
/// metadata; a file met before under the same inode (`links`, keyed by
/// the source's device and inode) is hard-linked to its first copy.
pub(crate) fn copy_leaf(
    src: &Path,
    dst: &Path,
    md: &Metadata,
    links: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let ft = md.file_type();
    let key = (md.dev(), md.ino());
    if md.nlink() > 1 {
        if let Some(first) = links.get(&key) {
            return std::fs::hard_link(first, dst)
                .map_err(|e| crate::file_meta::annotate("linking", dst, e));
        }
    }
    if ft.is_file() {
        std::fs::copy(src, dst).map_err(|e| crate::file_meta::annotate("copying", src, e))?;
    } else if ft.is_symlink() {
        let link = std::fs::read_link(src)
            .map_err(|e| crate::file_meta::annotate("reading link", src, e))?;
        std::os::unix::fs::symlink(&link, dst)
            .map_err(|e| crate::file_meta::annotate("creating", dst, e))?;
    } else {
        crate::file_meta::mknod(dst, md.mode(), md.rdev())
            .map_err(|e| crate::file_meta::annotate("creating", dst, e))?;
    }
    set_meta(dst, md, !ft.is_symlink())?;
    if md.nlink() > 1 {
        links.insert(key, dst.to_path_buf());
    }
    Ok(())
}

/// Owner, then mode (chown clears setuid bits), then times.
pub(crate) fn set_meta(path: &Path, md: &Metadata, chmod: bool) -> io::Result<()> {
    crate::file_meta::lchown(path, md.uid(), md.gid())
        .map_err(|e| crate::file_meta::annotate("chown", path, e))?;
    if chmod {
        crate::file_meta::chmod(path, md.mode())
            .map_err(|e| crate::file_meta::annotate("chmod", path, e))?;
    }
    crate::file_meta::set_times(
        path,
        (md.atime(), md.atime_nsec()),
        (md.mtime(), md.mtime_nsec()),
    )
    .map_err(|e| crate::file_meta::annotate("setting times of", path, e))
}

#[cfg(test)]
mod tests {
    use super::{clean, go_match, BadPattern};

    #[test]
    fn go_match_cases() {
        // From Go's filepath match_test.go.
        let cases: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(&go_match(pattern, name), want, "{pattern:?} {name:?}");
        }
    }

    #[test]
    fn clean_clamps() {
        assert_eq!(clean("/a/./b/../../../c/"), vec!["c".to_string()]);
        assert!(clean("./").is_empty());
    }
}
