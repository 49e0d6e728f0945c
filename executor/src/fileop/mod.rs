//! File actions (COPY, ADD, WORKDIR's mkdir, heredoc files, removal)
//! applied into an upper directory (being written).
//!
//! The model is overlayfs's: `base` is the merged filesystem below, `upper`
//! an empty directory that receives every change. Writing `/a/b/c` first
//! copies `a` and `a/b` up from `base` with their metadata (or creates
//! them); a removal of a lower path leaves a whiteout. The semantics are
//! BuildKit v0.13's (fsutil copy, Docker's untar), see `copy.rs` and
//! `archive.rs`.

mod archive;
mod copy;
mod exclude;
pub(crate) mod graft;
mod mode;
mod tree;

pub use graft::{Graft, Grafts};
use serde::Serialize;
use std::path::PathBuf;

/// Why a file action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileOpError {
    /// Reading a source failed.
    #[error(transparent)]
    Source(#[from] crate::SourceError),
    /// A COPY/ADD source (or a path to remove) does not exist. `path` is
    /// absolute, as BuildKit prints it: `"/nope.txt": not found`.
    #[error("{path:?}: not found")]
    NotFound {
        /// The path, absolute.
        path: String,
    },
    /// A filesystem operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`creating`, `copying to`, ...).
        action: &'static str,
        /// The path in the image (absolute), or the real path read.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The action cannot be carried out as asked (a directory in the way of
    /// a file, a bad `--chmod`, an archive entry escaping its destination,
    /// ...).
    #[error("{message}")]
    Invalid {
        /// What is wrong, naming the path.
        message: String,
    },
}

impl FileOpError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        FileOpError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        FileOpError::Invalid {
            message: message.into(),
        }
    }
}

/// A tree COPY reads from, as the solver hands it over. Which kind it is
/// decides ownership: files from the build context become 0:0 (as
/// BuildKit's context transfer makes them), files from a stage or an image
/// keep their uid/gid. Both keep their modes and mtimes.
#[derive(Clone, Copy)]
pub enum Source<'a> {
    /// The build context.
    Context(&'a dyn crate::SourceTree),
    /// Another stage, an image, or any layer stack.
    Tree(&'a dyn crate::SourceTree),
}

impl<'a> Source<'a> {
    /// The tree.
    pub fn tree(&self) -> &'a dyn crate::SourceTree {
        match self {
            Source::Context(t) | Source::Tree(t) => *t,
        }
    }

    /// Whether this is the build context.
    pub fn is_context(&self) -> bool {
        matches!(self, Source::Context(_))
    }
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.is_context() {
            "Source::Context(..)"
        } else {
            "Source::Tree(..)"
        })
    }
}

/// Owner for created files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Owner {
    /// Numeric ids.
    Ids {
        /// User id.
        uid: u32,
        /// Group id.
        gid: u32,
    },
    /// Names (or numbers as text) looked up in the destination's
    /// /etc/passwd and /etc/group when the action runs; unknown names give
    /// 0, as BuildKit does. A user without a group takes the user's primary
    /// group from /etc/passwd (or the uid when the user is numeric).
    Names {
        /// User name or number.
        user: String,
        /// Group name or number, if given.
        group: Option<String>,
    },
}

/// A `--chmod` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Chmod {
    /// Octal permission bits.
    Octal(u32),
    /// A symbolic mode (`u+x,g-w`), applied to each file's current mode.
    Symbolic(String),
}

/// One file action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum FileAction {
    /// Copy paths from a source tree into the destination.
    Copy(CopyAction),
    /// Create a directory.
    Mkdir {
        /// Absolute path.
        path: String,
        /// Permission bits.
        mode: u32,
        /// Owner of the directory and of parents it creates.
        owner: Option<Owner>,
        /// Create missing parents.
        parents: bool,
    },
    /// Create a file with given content (heredoc COPY sources).
    Mkfile {
        /// Absolute path.
        path: String,
        /// Content.
        data: Vec<u8>,
        /// Permission bits.
        mode: u32,
        /// Owner.
        owner: Option<Owner>,
    },
    /// Remove a path.
    Rm {
        /// Absolute path.
        path: String,
        /// No error when absent.
        allow_not_found: bool,
    },
}

/// COPY/ADD of paths from a source tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyAction {
    /// Index of the source tree (in the vertex's inputs).
    pub input: usize,
    /// Source paths as written (after expansion); may hold wildcards.
    pub sources: Vec<String>,
    /// Destination path, absolute (already joined with WORKDIR), cleaned.
    pub dest: String,
    /// The destination was written with a trailing slash (or is `.`):
    /// sources go inside it.
    pub dest_is_dir: bool,
    /// `--chown`.
    pub owner: Option<Owner>,
    /// `--chmod`.
    pub chmod: Option<Chmod>,
    /// ADD: extract local tar archives (plain, gzip, bzip2, xz; detected by
    /// content).
    pub unpack: bool,
    /// `--exclude` patterns (moby/patternmatcher syntax, `!` for
    /// exceptions), matched against the paths below each copied source.
    pub excludes: Vec<String>,
    /// `--parents`: keep the source's parent directories.
    pub parents: bool,
}

/// Applies `actions` on top of `base`, writing every change into `upper`
/// (being written, empty at the start). Later actions see the changes of
/// earlier ones. `sources` are the trees [`CopyAction::input`] indexes.
///
/// # Errors
/// A [`FileOpError`] naming the path. `upper` is then left half-written.
pub fn apply_file_actions(
    base: &crate::LayerStack,
    upper: &std::path::Path,
    actions: &[FileAction],
    sources: &[Source<'_>],
) -> Result<(), FileOpError> {
    apply(base, upper, actions, sources, None)
}

/// [`apply_file_actions`], except that when the last action copies a whole
/// directory into an empty destination, that copy is not written: it is
/// returned as a graft, and `upper` holds the rest of the layer. Write the
/// layer with [`crate::diff_grafted`] (`upper` is then not the layer's
/// directory: it lacks the grafted files).
///
/// # Errors
/// A [`FileOpError`] naming the path. `upper` is then left half-written.
pub fn apply_file_actions_grafting<'s>(
    base: &crate::LayerStack,
    upper: &std::path::Path,
    actions: &'s [FileAction],
    sources: &[Source<'s>],
) -> Result<Grafts<'s>, FileOpError> {
    let mut grafts = Vec::new();
    apply(base, upper, actions, sources, Some(&mut grafts))?;
    Ok(Grafts::from_list(grafts))
}

fn apply<'s>(
    base: &crate::LayerStack,
    upper: &std::path::Path,
    actions: &'s [FileAction],
    sources: &[Source<'s>],
    mut grafts: Option<&mut Vec<Graft<'s>>>,
) -> Result<(), FileOpError> {
    let mut fs = tree::Upper::new(base, upper);
    let last = actions.len().saturating_sub(1);
    for (i, action) in actions.iter().enumerate() {
        match action {
            FileAction::Copy(copy) => {
                let source = sources.get(copy.input).ok_or_else(|| {
                    FileOpError::invalid(format!(
                        "copy source #{} does not exist ({} given)",
                        copy.input,
                        sources.len()
                    ))
                })?;
                let grafts = if i == last { grafts.take() } else { None };
                copy::copy(&mut fs, copy, *source, grafts)?;
            }
            FileAction::Mkdir {
                path,
                mode,
                owner,
                parents,
            } => {
                let owner = fs.owner_ids(owner.as_ref())?;
                fs.mkdir(path, *mode, owner, *parents)?;
            }
            FileAction::Mkfile {
                path,
                data,
                mode,
                owner,
            } => {
                let owner = fs.owner_ids(owner.as_ref())?;
                fs.mkfile(path, data, *mode, owner)?;
            }
            FileAction::Rm {
                path,
                allow_not_found,
            } => fs.rm(path, *allow_not_found)?,
        }
    }
    fs.finish()
}
