//! Grafts: copies that are not written to the upper directory.
//!
//! When the last thing a file op does is copy a whole directory into a
//! destination directory that is empty, nothing can be in the way: the
//! copy is the source's subtree entry for entry, with the metadata
//! [`MetaRule`] gives each entry. [`crate::apply_file_actions_grafting`]
//! then leaves that destination empty in the upper directory and records a
//! [`Graft`]; [`crate::diff_grafted`] writes the subtree's entries into the
//! layer tar straight from the source, in the order and with the headers
//! the copied files would have had. A 50,000-file `COPY .` so costs one
//! read of each file instead of creating 50,000 inodes and reading them
//! back.

use super::copy::MetaRule;
use super::tree::base_name;
use super::FileOpError;
use crate::{SourceEntry, SourceTree};
use std::collections::HashMap;

/// A source directory whose children belong below `dest` in the layer.
pub struct Graft<'s> {
    /// The destination directory (relative to the root; `""` is the root).
    pub(crate) dest: String,
    pub(crate) tree: &'s dyn SourceTree,
    /// The source directory in `tree`.
    pub(crate) src: String,
    pub(crate) rule: MetaRule,
}

impl std::fmt::Debug for Graft<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graft")
            .field("dest", &self.dest)
            .field("src", &self.src)
            .finish_non_exhaustive()
    }
}

/// The grafts of one layer, by destination directory.
#[derive(Debug, Default)]
pub struct Grafts<'s> {
    by_dest: HashMap<String, Graft<'s>>,
}

impl<'s> Grafts<'s> {
    pub(crate) fn from_list(list: Vec<Graft<'s>>) -> Grafts<'s> {
        Grafts {
            by_dest: list.into_iter().map(|g| (g.dest.clone(), g)).collect(),
        }
    }

    /// No grafts: the upper directory holds the whole layer.
    pub fn is_empty(&self) -> bool {
        self.by_dest.is_empty()
    }

    /// The graft whose destination is `dest`.
    pub(crate) fn get(&self, dest: &str) -> Option<&Graft<'s>> {
        self.by_dest.get(dest)
    }
}

/// One entry of a grafted subtree: where it is in the source and the
/// owner, mode and mtime its copy gets.
pub(crate) struct GraftEntry {
    pub entry: SourceEntry,
    pub uid: u32,
    pub gid: u32,
    /// Permission bits (setuid/setgid/sticky included).
    pub mode: u32,
    /// Seconds since the epoch.
    pub mtime: i64,
}

impl Graft<'_> {
    /// The entries in source directory `src` (below this graft's source),
    /// as the copy would see them: names the tree lists, entries it
    /// finds.
    pub(crate) fn children(&self, src: &str) -> Result<Vec<(String, GraftEntry)>, FileOpError> {
        let mut out = Vec::new();
        for entry in self.tree.children(src)? {
            let name = base_name(&entry.rel).to_string();
            let meta = self.rule.meta_for(&entry)?;
            let mtime = meta.mtime.map_or(0, |(secs, _)| secs);
            out.push((
                name,
                GraftEntry {
                    entry,
                    uid: meta.uid,
                    gid: meta.gid,
                    mode: meta.mode,
                    mtime,
                },
            ));
        }
        Ok(out)
    }
}
