//! Layer stacks and the [`SourceTree`] view COPY reads sources through.
//!
//! The merged view follows overlayfs: a name is looked up from the top
//! layer down; the first layer holding it decides. A whiteout (character
//! device 0/0) there means deleted. A directory merges with the
//! directories at the same path in lower layers, down to (and including)
//! the first opaque one or the first layer where the path is a
//! non-directory or a whiteout.

mod lookup;
mod materialize;

use crate::names;
use crate::relpath::clean;
pub(crate) use crate::relpath::join;
use kiln_patterns::go_match;
use lookup::{io_err, Found};
pub use materialize::materialize;
pub(crate) use materialize::{copy_leaf, set_meta};
use std::collections::HashMap;
use std::io;
use std::path::PathBuf;

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

    /// The entries of directory `rel`: what [`SourceTree::entry`] gives
    /// for each name [`SourceTree::list`] gives, in that order. A tree
    /// may answer it with one read of the directory.
    ///
    /// # Errors
    /// I/O errors.
    fn children(&self, rel: &str) -> Result<Vec<SourceEntry>, SourceError> {
        let mut out = Vec::new();
        for name in self.list(rel)? {
            let child = crate::relpath::join(rel.trim_matches('/'), &name);
            if let Some(e) = self.entry(&child)? {
                out.push(e);
            }
        }
        Ok(out)
    }
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
            if go_match(c, "").is_err() {
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
