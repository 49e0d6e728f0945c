//! Name lookup in a [`LayerStack`]'s merged view: a path is followed
//! from the top layer down (symlinks resolved inside the stack, `..`
//! clamped at the root), and a directory's names are merged over the
//! layers that contribute to it.

use super::{LayerStack, SourceError};
use crate::names;
use crate::relpath::clean;
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

/// How many symlinks one lookup follows before giving up (`ELOOP`).
const MAX_SYMLINKS: usize = 40;

/// A path found in the merged view.
#[derive(Debug, Clone)]
pub(super) struct Found {
    /// The path in the top-most layer holding it.
    pub(super) real: PathBuf,
    /// Its metadata (not following a symlink).
    pub(super) metadata: Metadata,
    /// For a directory: the directories merged into it, top first (`real`
    /// first). Empty for other types.
    pub(super) dirs: Vec<PathBuf>,
}

pub(super) fn io_err(action: &'static str, path: &Path, error: io::Error) -> SourceError {
    SourceError::Io {
        action,
        path: path.to_path_buf(),
        error,
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
    pub(super) fn root(&self) -> Result<Option<Found>, SourceError> {
        self.cached_dir("", || self.find_root())
    }

    pub(super) fn find_root(&self) -> Result<Option<Found>, SourceError> {
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
    pub(super) fn step(dirs: &[PathBuf], name: &OsStr) -> Result<Option<Found>, SourceError> {
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
    pub(super) fn lookup(
        &self,
        rel: &str,
        follow_final: bool,
    ) -> Result<Option<Found>, SourceError> {
        let Some(root) = self.root()? else {
            return Ok(None);
        };
        let mut pending: std::collections::VecDeque<String> =
            clean(rel).into_iter().map(str::to_string).collect();
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
                pending = clean(&full).into_iter().map(str::to_string).collect();
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
    pub(super) fn names(found: &Found) -> Result<BTreeMap<OsString, bool>, SourceError> {
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
    pub(super) fn present(found: &Found) -> Result<Vec<OsString>, SourceError> {
        Ok(Self::names(found)?
            .into_iter()
            .filter_map(|(name, present)| present.then_some(name))
            .collect())
    }
}
