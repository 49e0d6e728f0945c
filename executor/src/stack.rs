//! Layer stacks and the [`SourceTree`] view COPY reads sources through.
//!
//! (Lookup, listing and materialisation are being written.)

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
}

/// A filesystem as layer directories, bottom first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerStack {
    layers: Vec<PathBuf>,
}

impl LayerStack {
    /// A stack of these layer directories, bottom first.
    pub fn new(layers: Vec<PathBuf>) -> LayerStack {
        LayerStack { layers }
    }

    /// The layer directories, bottom first.
    pub fn layers(&self) -> &[PathBuf] {
        &self.layers
    }

    /// This stack with `upper` on top.
    pub fn with(&self, upper: PathBuf) -> LayerStack {
        let mut layers = self.layers.clone();
        layers.push(upper);
        LayerStack { layers }
    }
}

/// Copies the merged view of `stack` into the plain directory `dest`
/// (being written).
///
/// # Errors
/// I/O errors naming the path.
pub fn materialize(stack: &LayerStack, dest: &std::path::Path) -> std::io::Result<()> {
    let _ = (stack, dest);
    Err(std::io::Error::other("materialize is not written yet"))
}
