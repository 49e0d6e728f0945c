//! A [`LayerStack`]'s merged view copied into a plain directory
//! ([`materialize`]), and the single-entry copy the diff and the copy
//! snapshots share ([`copy_leaf`], [`set_meta`]).

use super::{LayerStack, SourceError};
use crate::dirfd::Dir;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

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
    let mut caps = None;
    let mut device = None;
    if ft.is_file() {
        let from = || src.child_path(name);
        let mut r = src
            .open_file(name)
            .map_err(|e| crate::file_meta::annotate("opening", &from(), e))?;
        caps = crate::file_caps::of_file(&r)
            .map_err(|e| crate::file_meta::annotate("reading the capabilities of", &from(), e))?;
        // A device a RUN made stays a marked placeholder (`runtime/devices.rs`).
        device = src
            .device_mark(name, md)
            .map_err(|e| crate::file_meta::annotate("reading", &from(), e))?;
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
    if let Some(caps) = caps {
        // After the owner: a chown clears them.
        crate::file_caps::set(&target(), &caps)
            .map_err(|e| crate::file_meta::annotate("setting the capabilities of", &target(), e))?;
    }
    if let Some(mark) = device {
        crate::file_meta::set_xattr(&target(), crate::runtime::devices::DEVICE_XATTR, &mark)
            .map_err(|e| crate::file_meta::annotate("marking", &target(), e))?;
    }
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
    if ft.is_file() {
        // After the owner: a chown clears them.
        if let Some(caps) = crate::file_caps::of_path(src)
            .map_err(|e| crate::file_meta::annotate("reading the capabilities of", src, e))?
        {
            crate::file_caps::set(dst, &caps)
                .map_err(|e| crate::file_meta::annotate("setting the capabilities of", dst, e))?;
        }
    }
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
