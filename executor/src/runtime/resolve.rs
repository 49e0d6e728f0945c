//! Resolving paths inside the rootfs before it is mounted: symlinks are
//! followed inside the root (absolute targets restart at the root, `..`
//! stops there), as runc's securejoin does for mount targets.

use super::RuntimeError;
use crate::stack::{LayerStack, SourceTree};
use std::path::{Path, PathBuf};

/// A path inside the rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// The components, with every symlink resolved.
    pub comps: Vec<String>,
    /// How many leading components exist in the lower layers.
    pub existing: usize,
}

/// How many symlinks one resolution follows.
const MAX_LINKS: usize = 40;

/// Resolves `path` (absolute, inside the rootfs) in `stack`, following
/// symlinks, including a final one.
pub(super) fn resolve(stack: &LayerStack, path: &str) -> Result<Target, RuntimeError> {
    let err = |e: &dyn std::fmt::Display| RuntimeError::Prepare {
        step: format!("resolving {path} in the rootfs"),
        error: std::io::Error::other(e.to_string()),
    };
    let mut pending: std::collections::VecDeque<String> =
        path.split('/').map(str::to_string).collect();
    let mut comps: Vec<String> = Vec::new();
    let mut missing = false;
    let mut existing = 0;
    let mut links = 0;
    while let Some(c) = pending.pop_front() {
        match c.as_str() {
            "" | "." => continue,
            ".." if !missing => {
                comps.pop();
                continue;
            }
            _ => {}
        }
        if missing {
            if c == ".." {
                return Err(err(&"'..' below a path that does not exist"));
            }
            comps.push(c);
            continue;
        }
        let rel = if comps.is_empty() {
            c.clone()
        } else {
            format!("{}/{c}", comps.join("/"))
        };
        let Some(entry) = stack.entry(&rel).map_err(|e| err(&e))? else {
            missing = true;
            existing = comps.len();
            comps.push(c);
            continue;
        };
        let ft = entry.metadata.file_type();
        if ft.is_symlink() {
            links += 1;
            if links > MAX_LINKS {
                return Err(err(&"too many levels of symbolic links"));
            }
            let to = std::fs::read_link(&entry.real).map_err(|e| err(&e))?;
            let to = to.to_string_lossy();
            if to.starts_with('/') {
                comps.clear();
            }
            for (i, part) in to.split('/').enumerate() {
                pending.insert(i, part.to_string());
            }
            continue;
        }
        if !ft.is_dir() && !pending.iter().all(|p| p.is_empty() || p == ".") {
            return Err(err(&format!("{rel} is not a directory")));
        }
        comps.push(c);
    }
    if !missing {
        existing = comps.len();
    }
    Ok(Target { comps, existing })
}

/// `dir/rel` if every component of `rel` exists below `dir` and none is a
/// symlink, `None` otherwise: what the host does there after a run (e.g.
/// removing mount stubs from the upper directory, which the run could
/// change) stays inside `dir`.
pub(super) fn beneath(dir: &Path, rel: &str) -> Option<PathBuf> {
    let mut p = dir.to_path_buf();
    for c in rel.split('/').filter(|c| !c.is_empty() && *c != ".") {
        if c == ".." {
            return None;
        }
        p.push(c);
        if std::fs::symlink_metadata(&p).ok()?.file_type().is_symlink() {
            return None;
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beneath_refuses_symlinks_and_dotdot() {
        let tmp = tempfile::TempDir::new().unwrap();
        std::fs::create_dir_all(tmp.path().join("a/b")).unwrap();
        std::os::unix::fs::symlink("/", tmp.path().join("l")).unwrap();
        assert_eq!(beneath(tmp.path(), "a/b"), Some(tmp.path().join("a/b")));
        assert_eq!(beneath(tmp.path(), "l/tmp"), None);
        assert_eq!(beneath(tmp.path(), "l"), None);
        assert_eq!(beneath(tmp.path(), "a/../a"), None);
        assert_eq!(beneath(tmp.path(), "a/missing"), None);
    }
}
