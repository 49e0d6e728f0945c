//! Mount stubs: the mount points a run creates in the rootfs, and their
//! removal afterwards (BuildKit's `MountStubsCleaner`), so that `RUN
//! --mount` targets leave no trace in the layer.

use super::child::Op;
use super::resolve::{self, Target};
use super::{cpath, prep, RuntimeError};
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// What the stub cleaner removes after the run: paths relative to the
/// root, deepest first per mount target.
pub(super) fn stub_paths(target: &Target) -> Vec<String> {
    (target.existing + 1..=target.comps.len())
        .rev()
        .map(|i| target.comps[..i].join("/"))
        .collect()
}

/// What kind of mount point a target needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
}

/// Plans the ops creating the missing part of `target` below `root`.
pub(super) fn create_stub(
    ops: &mut Vec<(String, Op)>,
    root: &Path,
    target: &Target,
    kind: Kind,
) -> Result<CString, RuntimeError> {
    for i in target.existing..target.comps.len() {
        let p = root.join(target.comps[..=i].join("/"));
        let last = i + 1 == target.comps.len();
        let what = format!("creating mount point {}", p.display());
        if last && kind == Kind::File {
            ops.push((what, Op::Touch { path: cpath(&p)? }));
        } else {
            ops.push((
                what,
                Op::Mkdir {
                    path: cpath(&p)?,
                    mode: 0o755,
                },
            ));
        }
    }
    cpath(&root.join(target.comps.join("/")))
}

/// BuildKit's `MountStubsCleaner`: removes each stub (deepest first) from
/// the upper directory if it is still an empty directory or an empty
/// regular file, keeping its parent's times.
pub(super) fn remove_stubs(upper: &Path, stubs: &[String]) -> Result<(), RuntimeError> {
    for rel in stubs {
        // The run may have replaced a parent with a symlink to the host.
        let Some(p) = resolve::beneath(upper, rel) else {
            continue;
        };
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            let empty = std::fs::read_dir(&p).is_ok_and(|mut d| d.next().is_none());
            if !empty {
                continue;
            }
        } else if !md.is_file() || md.len() != 0 {
            continue;
        }
        let parent = p.parent().unwrap_or(upper).to_path_buf();
        let pmd = std::fs::symlink_metadata(&parent)
            .map_err(prep(format!("reading {}", parent.display())))?;
        let removed = if md.is_dir() {
            std::fs::remove_dir(&p)
        } else {
            std::fs::remove_file(&p)
        };
        removed.map_err(prep(format!("removing mount stub {}", p.display())))?;
        crate::file_meta::set_times(
            &parent,
            (pmd.atime(), pmd.atime_nsec()),
            (pmd.mtime(), pmd.mtime_nsec()),
        )
        .map_err(prep(format!("restoring the times of {}", parent.display())))?;
    }
    Ok(())
}
