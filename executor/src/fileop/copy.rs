//! COPY/ADD of paths from a source tree, as BuildKit's file backend and
//! fsutil's copier do it:
//!
//! - each matched source is copied on its own to the destination (so
//!   `COPY a b /dest` leaves the last one at `/dest`);
//! - a source symlink named directly is followed; symlinks inside a copied
//!   directory are kept;
//! - a directory source copies its contents into the destination, which is
//!   created 0755 with the `--chown` owner (or 0:0) when missing and left
//!   as it is when present;
//! - a file goes inside the destination when it ends in `/` or is an
//!   existing directory (symlinks followed), else it becomes the
//!   destination (a dangling symlink there is written through);
//! - copied entries keep mode and mtime; their owner is `--chown`, else
//!   0:0 for the build context and the source's for a stage or image;
//!   `--chmod` sets the mode of every copied file and subdirectory;
//! - hardlinks inside one copied source stay hardlinked.

use super::archive;
use super::exclude::Excludes;
use super::graft::Graft;
use super::mode::apply_chmod;
use super::tree::{abs, base_name, clean, join, parent, resolve_in, Meta, Upper};
use super::{CopyAction, FileOpError, Source};
use crate::{SourceEntry, SourceError, SourceTree};
use kiln_patterns::ParentState;
use std::collections::HashMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

/// One COPY/ADD action.
struct Copier<'s> {
    tree: &'s dyn SourceTree,
    action: &'s CopyAction,
    rule: MetaRule,
    excludes: Excludes,
    /// (dev, ino) of a source file → the first destination written for it.
    links: HashMap<(u64, u64), String>,
}

/// What a copied entry's owner and mode become: `--chown`, else 0:0 for
/// the build context and the source's own for a stage or image; `--chmod`
/// applied to the source's mode; the source's mtime kept.
#[derive(Debug, Clone)]
pub(crate) struct MetaRule {
    owner: Option<(u32, u32)>,
    context: bool,
    chmod: Option<super::Chmod>,
}

impl MetaRule {
    /// The metadata a copied entry `e` gets.
    pub(crate) fn meta_for(&self, e: &SourceEntry) -> Result<Meta, FileOpError> {
        let md = &e.metadata;
        let (uid, gid) = match self.owner {
            Some(o) => o,
            None if self.context => (0, 0),
            None => (md.uid(), md.gid()),
        };
        Ok(Meta {
            uid,
            gid,
            mode: apply_chmod(self.chmod.as_ref(), md.mode() & 0o7777, md.is_dir())?,
            mtime: Some((md.mtime(), md.mtime_nsec())),
        })
    }
}

/// Copies `action`'s sources from `source` into `fs`. With `grafts`, the
/// last directory it copies into an empty destination is not written but
/// recorded there ([`Graft`]), for the layer tar to read from the source.
pub(crate) fn copy<'s>(
    fs: &mut Upper<'_>,
    action: &'s CopyAction,
    source: Source<'s>,
    mut grafts: Option<&mut Vec<Graft<'s>>>,
) -> Result<(), FileOpError> {
    let owner = match &action.owner {
        Some(o) => Some(fs.owner_ids(Some(o))?),
        None => None,
    };
    let mut c = Copier {
        tree: source.tree(),
        action,
        rule: MetaRule {
            owner,
            context: source.is_context(),
            chmod: action.chmod.clone(),
        },
        excludes: Excludes::new(&action.excludes)?,
        links: HashMap::new(),
    };
    let mut matches = Vec::new();
    for src in &action.sources {
        let found = match c.tree.resolve(src) {
            Ok(m) => m,
            Err(SourceError::NotFound { .. }) => {
                return Err(FileOpError::NotFound {
                    path: format!("/{}", clean(src).join("/")),
                })
            }
            Err(e) => return Err(e.into()),
        };
        for m in found {
            if !c.excludes.excludes_source(&m) {
                matches.push((src, m));
            }
        }
    }
    let last = matches.len().saturating_sub(1);
    for (i, (src, m)) in matches.iter().enumerate() {
        c.links.clear();
        // Only the last match may be deferred: nothing writes after it.
        let graft = if i == last { grafts.take() } else { None };
        c.copy_match(fs, src, m, graft)?;
    }
    Ok(())
}

impl<'s> Copier<'s> {
    /// The metadata of created destination directories.
    fn created_dir(&self) -> Meta {
        let (uid, gid) = self.rule.owner.unwrap_or((0, 0));
        Meta {
            uid,
            gid,
            mode: 0o755,
            mtime: None,
        }
    }

    /// The metadata a copied entry gets.
    fn meta_for(&self, e: &SourceEntry) -> Result<Meta, FileOpError> {
        self.rule.meta_for(e)
    }

    /// Copies one matched source path `m` (written as `src`); a directory
    /// into an empty destination becomes a graft when `grafts` is given.
    fn copy_match(
        &mut self,
        fs: &mut Upper<'_>,
        src: &str,
        m: &str,
        grafts: Option<&mut Vec<Graft<'s>>>,
    ) -> Result<(), FileOpError> {
        let resolved = resolve_in(self.tree, m, true)?;
        let Some(entry) = self.tree.entry(&resolved)? else {
            return Err(FileOpError::NotFound {
                path: format!("/{m}"),
            });
        };
        let (dest, dest_is_dir) = if self.action.parents {
            (
                join(&clean(&self.action.dest).join("/"), &parents_kept(src, m)),
                false,
            )
        } else {
            (clean(&self.action.dest).join("/"), self.action.dest_is_dir)
        };
        if self.action.unpack && entry.metadata.is_file() && archive::is_archive(&entry.real)? {
            let d = fs.resolve(&dest, true)?;
            fs.mkdir_all(&d, self.created_dir())?;
            return archive::extract(fs, &entry.real, &d);
        }
        if entry.metadata.is_dir() {
            let d = fs.resolve(&dest, true)?;
            let existed = fs.entry(&d)?.is_some();
            fs.mkdir_all(&d, self.created_dir())?;
            if let Some(grafts) = grafts.filter(|_| self.excludes.is_empty()) {
                // Into an empty directory nothing can be in the way: the
                // copy is the source's subtree, entry for entry.
                if !existed || fs.is_empty_dir(&d)? {
                    if !self.tree.list(&resolved)?.is_empty() {
                        // What writing a child would do to `d` first.
                        fs.copy_up_parents(&join(&d, "-"))?;
                        grafts.push(Graft {
                            dest: d,
                            tree: self.tree,
                            src: resolved,
                            rule: self.rule.clone(),
                        });
                    }
                    return Ok(());
                }
            }
            return self.copy_children(fs, &resolved, &d);
        }
        let mut d = fs.resolve(&dest, true)?;
        if dest_is_dir {
            fs.mkdir_all(&d, self.created_dir())?;
        }
        if dest_is_dir || fs.is_dir(&d)? {
            d = fs.resolve(&join(&d, base_name(m)), true)?;
        } else {
            fs.mkdir_all(parent(&d), self.created_dir())?;
        }
        if fs.is_dir(&d)? {
            return Err(FileOpError::invalid(format!(
                "cannot copy {} onto directory {}",
                abs(m).display(),
                abs(&d).display()
            )));
        }
        self.copy_entry(fs, &entry, &d, false)
    }

    /// Copies the children of source directory `src_dir` into `dest_dir`,
    /// and so on down, with a stack of directories instead of recursion (a
    /// source may be deeper than the thread's stack).
    ///
    /// `--exclude` as fsutil's copy applies it: an excluded entry is
    /// skipped; when some pattern is an exception, an excluded directory is
    /// still walked, and created (with its own metadata) only once
    /// something below it is copied.
    fn copy_children(
        &mut self,
        fs: &mut Upper<'_>,
        src_dir: &str,
        dest_dir: &str,
    ) -> Result<(), FileOpError> {
        let mut stack = vec![Level {
            names: self.names(src_dir)?,
            src: src_dir.to_string(),
            rel: String::new(),
            dest: dest_dir.to_string(),
            fresh: false,
            state: Vec::new(),
            pending: None,
        }];
        // The lowest stack level whose directory is not created yet (all
        // levels above it are pending too).
        let mut first_pending: Option<usize> = None;
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                if first_pending.is_some_and(|i| i >= stack.len()) {
                    first_pending = None;
                }
                continue;
            };
            let child_rel = join(&level.rel, &name);
            let (excluded, state) = self.excludes.below_source(&child_rel, &level.state);
            if excluded && !self.excludes.has_exceptions() {
                continue;
            }
            let src = join(&level.src, &name);
            let dest = join(&level.dest, &name);
            let Some(entry) = self.tree.entry(&src)? else {
                continue;
            };
            if entry.metadata.is_dir() {
                let meta = self.meta_for(&entry)?;
                stack.push(Level {
                    names: self.names(&src)?,
                    src,
                    rel: child_rel,
                    dest,
                    fresh: false,
                    state,
                    pending: Some(meta),
                });
                let top = stack.len() - 1;
                if excluded {
                    first_pending.get_or_insert(top);
                } else {
                    create_pending(fs, &mut stack, first_pending.take().unwrap_or(top))?;
                }
            } else if !excluded {
                if let Some(i) = first_pending.take() {
                    create_pending(fs, &mut stack, i)?;
                }
                let fresh = stack.last().is_some_and(|l| l.fresh);
                self.copy_entry(fs, &entry, &dest, fresh)?;
            }
        }
        Ok(())
    }

    /// The names in source directory `dir`, in reverse order.
    fn names(&self, dir: &str) -> Result<Vec<String>, FileOpError> {
        let mut names = self.tree.list(dir)?;
        names.reverse();
        Ok(names)
    }

    /// Copies non-directory `e` to `dest` (its parent exists; `fresh`: it
    /// was created by this copy, so nothing is at `dest` yet).
    fn copy_entry(
        &mut self,
        fs: &mut Upper<'_>,
        e: &SourceEntry,
        dest: &str,
        fresh: bool,
    ) -> Result<(), FileOpError> {
        let md = &e.metadata;
        let ft = md.file_type();
        let meta = self.meta_for(e)?;
        if !fresh && fs.is_dir(dest)? {
            return Err(FileOpError::invalid(format!(
                "cannot copy {} onto directory {}",
                abs(&e.rel).display(),
                abs(dest).display()
            )));
        }
        let real = if fresh {
            fs.real(dest)
        } else {
            fs.prepare_nondir(dest)?
        };
        if ft.is_file() {
            let key = (md.dev(), md.ino());
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&key) {
                    let first_real = fs.real(first);
                    return std::fs::hard_link(&first_real, &real)
                        .map_err(|err| FileOpError::io("linking", abs(dest), err));
                }
            }
            std::fs::copy(&e.real, &real)
                .map_err(|err| FileOpError::io("copying to", abs(dest), err))?;
            if md.nlink() > 1 {
                self.links.insert(key, dest.to_string());
            }
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&e.real)
                .map_err(|err| FileOpError::io("reading link", &e.real, err))?;
            std::os::unix::fs::symlink(&target, &real)
                .map_err(|err| FileOpError::io("creating symlink", abs(dest), err))?;
        } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() || ft.is_socket() {
            crate::file_meta::mknod(&real, md.mode(), md.rdev())
                .map_err(|err| FileOpError::io("creating node", abs(dest), err))?;
        } else {
            return Err(FileOpError::invalid(format!(
                "{}: unsupported file type",
                abs(&e.rel).display()
            )));
        }
        fs.set_meta(dest, meta, false)
    }
}

/// A source directory being copied by [`Copier::copy_children`].
struct Level {
    /// Its names not copied yet, in reverse order.
    names: Vec<String>,
    /// Its path in the source tree.
    src: String,
    /// Its path below the copied source (what `--exclude` matches).
    rel: String,
    /// Its path in the destination.
    dest: String,
    /// Whether this copy created the destination directory.
    fresh: bool,
    /// The `--exclude` state for its children.
    state: ParentState,
    /// The metadata to create it with while it is not created yet (an
    /// excluded directory waiting for something below it to be copied).
    pending: Option<Meta>,
}

/// Creates the destination directories of `stack[from..]` that are still
/// pending, parents first.
fn create_pending(fs: &mut Upper<'_>, stack: &mut [Level], from: usize) -> Result<(), FileOpError> {
    for i in from.max(1)..stack.len() {
        let parent_fresh = stack[i - 1].fresh;
        let level = &mut stack[i];
        let Some(meta) = level.pending.take() else {
            continue;
        };
        // Below a directory this copy created, nothing is in the way: no
        // lookups in the merged view, which would cost time in proportion
        // to the depth for every entry.
        level.fresh = if parent_fresh {
            fs.make_fresh_dir(&level.dest, meta)?;
            true
        } else {
            fs.make_dir(&level.dest, meta, false)?
        };
        fs.set_meta(&level.dest, meta, true)?;
    }
    Ok(())
}

/// `--parents`: the part of matched path `m` kept below the destination:
/// all of it, or what follows a `/./` pivot in the source as written.
fn parents_kept(src: &str, m: &str) -> String {
    let comps = clean(m);
    if let Some(i) = src.find("/./") {
        let pivot = clean(&src[..i]);
        if comps.starts_with(&pivot) {
            return comps[pivot.len()..].join("/");
        }
    }
    comps.join("/")
}

#[cfg(test)]
mod tests {
    #[test]
    fn parents_kept() {
        assert_eq!(super::parents_kept("a/b/c.txt", "a/b/c.txt"), "a/b/c.txt");
        assert_eq!(super::parents_kept("./a/./b/*.txt", "a/b/c.txt"), "b/c.txt");
        assert_eq!(super::parents_kept("/x/./y", "x/y"), "y");
    }
}
