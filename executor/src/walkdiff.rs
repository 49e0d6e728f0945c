//! The diff of the copy snapshotter: where overlayfs cannot be used, a RUN
//! works on a full copy of its base, and the changes are found afterwards
//! by walking the copy against the base. The result is an upper directory
//! in overlay format (new and changed entries, whiteouts for removed ones)
//! like the one overlayfs leaves, so everything after it is the same.
//!
//! Entries are compared by type, mode, owner, size, modification time (to
//! the nanosecond: the copy keeps the base's times, and every write changes
//! them), symlink target, device number and file capabilities; a file with
//! more links than in the base changed too (as overlayfs copies up a file
//! it links). A directory whose contents were
//! replaced is not marked opaque: each removed child gets its own whiteout.
//! Files hard-linked together that are written are linked in the upper
//! directory too.

use crate::stack::{copy_leaf, join, set_meta, LayerStack, SourceTree};
use std::collections::HashMap;
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Writes into `upper` (an existing, empty directory) the changes that
/// turn the merged view of `lower` into the plain directory `merged`.
///
/// # Errors
/// I/O errors naming the path.
pub fn walk_diff(lower: &LayerStack, merged: &Path, upper: &Path) -> io::Result<()> {
    let mut diff = Walk {
        lower,
        merged,
        upper,
        links: HashMap::new(),
        made_dirs: Vec::new(),
    };
    diff.dir("")?;
    // Directory times last: writing their children changed them.
    for (path, md) in diff.made_dirs.iter().rev() {
        set_meta(path, md, true)?;
    }
    Ok(())
}

struct Walk<'a> {
    lower: &'a LayerStack,
    merged: &'a Path,
    upper: &'a Path,
    /// (dev, ino) in `merged` of files written to `upper`, and where.
    links: HashMap<(u64, u64), PathBuf>,
    /// Directories made in `upper`, with the metadata they get.
    made_dirs: Vec<(PathBuf, Metadata)>,
}

/// A directory of `merged` being compared, or copied, by [`Walk`]: its
/// path and its names not visited yet, in reverse order.
struct Level {
    rel: String,
    names: Vec<String>,
}

impl Walk<'_> {
    /// Compares directory `top`, which exists in both, and everything below
    /// it, with a stack of directories instead of recursion (a tree may be
    /// deeper than the thread's stack).
    fn dir(&mut self, top: &str) -> io::Result<()> {
        let names = self.open(top)?;
        let mut stack = vec![Level {
            rel: top.to_string(),
            names,
        }];
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let child = join(&level.rel, &name);
            let now = self.merged.join(&child);
            let md = std::fs::symlink_metadata(&now)
                .map_err(|e| crate::file_meta::annotate("reading", &now, e))?;
            let old = self.lower.entry(&child)?;
            match old {
                Some(old) if same_type(&old.metadata, &md) && md.is_dir() => {
                    if !same_meta(&old.metadata, &md) {
                        self.parent(&child)?;
                    }
                    let names = self.open(&child)?;
                    stack.push(Level { rel: child, names });
                }
                Some(old) if same_type(&old.metadata, &md) && same_entry(&old, &md, &now)? => {}
                _ => self.copy(&child, &md)?,
            }
        }
        Ok(())
    }

    /// Starts comparing directory `rel`: writes whiteouts for the names
    /// gone from it and returns its present names in reverse order.
    fn open(&mut self, rel: &str) -> io::Result<Vec<String>> {
        let here = self.merged.join(rel);
        let mut names: Vec<String> = std::fs::read_dir(&here)
            .map_err(|e| crate::file_meta::annotate("listing", &here, e))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()
            .map_err(|e| crate::file_meta::annotate("listing", &here, e))?;
        names.sort();
        let before = self.lower.list(rel)?;
        for gone in before.iter().filter(|n| names.binary_search(n).is_err()) {
            self.parent(rel)?;
            let path = self.upper.join(join(rel, gone));
            crate::overlay_marks::make_whiteout(&path)
                .map_err(|e| crate::file_meta::annotate("creating whiteout", &path, e))?;
        }
        names.reverse();
        Ok(names)
    }

    /// Makes sure directory `rel` (and its parents) exist in `upper`. The
    /// search starts at `rel` and goes up only as far as needed (usually no
    /// step: the walk makes parents first).
    fn parent(&mut self, rel: &str) -> io::Result<()> {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        let mut have = comps.len();
        while have > 0
            && self
                .upper
                .join(comps[..have].join("/"))
                .symlink_metadata()
                .is_err()
        {
            have -= 1;
        }
        for n in have + 1..=comps.len() {
            let prefix = comps[..n].join("/");
            let path = self.upper.join(&prefix);
            let src = self.merged.join(&prefix);
            let md = std::fs::symlink_metadata(&src)
                .map_err(|e| crate::file_meta::annotate("reading", &src, e))?;
            std::fs::create_dir(&path)
                .map_err(|e| crate::file_meta::annotate("creating", &path, e))?;
            self.made_dirs.push((path, md));
        }
        Ok(())
    }

    /// Copies the new or changed entry `rel` (a whole tree for a
    /// directory, without recursion).
    fn copy(&mut self, rel: &str, md: &Metadata) -> io::Result<()> {
        let parent = rel.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        self.parent(parent)?;
        let mut stack = Vec::new();
        self.copy_one(rel, md, &mut stack)?;
        while let Some(level) = stack.last_mut() {
            let Some(name) = level.names.pop() else {
                stack.pop();
                continue;
            };
            let child = join(&level.rel, &name);
            let path = self.merged.join(&child);
            let md = std::fs::symlink_metadata(&path)
                .map_err(|e| crate::file_meta::annotate("reading", &path, e))?;
            self.copy_one(&child, &md, &mut stack)?;
        }
        Ok(())
    }

    /// Copies entry `rel` alone; a directory is created, and pushed on
    /// `stack` for its contents.
    fn copy_one(&mut self, rel: &str, md: &Metadata, stack: &mut Vec<Level>) -> io::Result<()> {
        let src = self.merged.join(rel);
        let dst = self.upper.join(rel);
        let ft = md.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&dst)
                .map_err(|e| crate::file_meta::annotate("creating", &dst, e))?;
            self.made_dirs.push((dst, md.clone()));
            let mut names: Vec<_> = std::fs::read_dir(&src)
                .map_err(|e| crate::file_meta::annotate("listing", &src, e))?
                .map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
                .map_err(|e| crate::file_meta::annotate("listing", &src, e))?;
            names.sort();
            let names = names
                .iter()
                .rev()
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            stack.push(Level {
                rel: rel.to_string(),
                names,
            });
            return Ok(());
        }
        if ft.is_socket() {
            return Ok(());
        }
        copy_leaf(&src, &dst, md, &mut self.links)
    }
}

fn same_type(a: &Metadata, b: &Metadata) -> bool {
    a.file_type() == b.file_type()
}

fn same_meta(a: &Metadata, b: &Metadata) -> bool {
    a.mode() == b.mode()
        && a.uid() == b.uid()
        && a.gid() == b.gid()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
}

fn same_entry(old: &crate::stack::SourceEntry, md: &Metadata, now: &Path) -> io::Result<bool> {
    let o = &old.metadata;
    if !same_meta(o, md) || o.size() != md.size() || o.rdev() != md.rdev() {
        return Ok(false);
    }
    // A new hard link to a file of the base: overlayfs copies the file up
    // to link it, so the layer holds both names (BuildKit's too).
    if !md.is_dir() && md.nlink() > o.nlink() {
        return Ok(false);
    }
    if md.is_file() {
        // `setcap` changes no time a copy keeps.
        let before = crate::file_caps::of_path(&old.real)
            .map_err(|e| crate::file_meta::annotate("reading the capabilities of", &old.real, e))?;
        let after = crate::file_caps::of_path(now)
            .map_err(|e| crate::file_meta::annotate("reading the capabilities of", now, e))?;
        return Ok(before == after);
    }
    if md.file_type().is_symlink() {
        let a = std::fs::read_link(&old.real)
            .map_err(|e| crate::file_meta::annotate("reading link", &old.real, e))?;
        let b = std::fs::read_link(now)
            .map_err(|e| crate::file_meta::annotate("reading link", now, e))?;
        return Ok(a == b);
    }
    Ok(true)
}
