//! The upper directory being written and the merged view (base + upper)
//! the actions see: path resolution inside the root, copy-up of parents,
//! `mkdir -p`, files, removal with whiteouts.

use super::FileOpError;
pub(crate) use crate::relpath::{base_name, clean, join, parent};
use crate::{LayerStack, SourceEntry, SourceTree};
use std::collections::{HashSet, VecDeque};
use std::fs::Metadata;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How many symlinks one resolution follows before giving up.
const MAX_SYMLINKS: usize = 255;

/// The absolute image path of `rel`, for messages.
pub(crate) fn abs(rel: &str) -> PathBuf {
    PathBuf::from(format!("/{rel}"))
}

/// `lstat`, `None` when absent.
pub(crate) fn lstat(path: &Path) -> io::Result<Option<Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENOTDIR) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Resolves symlinks in `path` inside the root of `tree`, as continuity's
/// `fs.RootPath` does: relative targets from the link's directory,
/// absolute ones from the root, `..` clamped at the root, missing
/// components kept as written. The final component is followed only with
/// `follow_final`. Returns the cleaned relative path.
pub(crate) fn resolve_in(
    tree: &dyn SourceTree,
    path: &str,
    follow_final: bool,
) -> Result<String, FileOpError> {
    let mut pending: VecDeque<String> = clean(path).into_iter().map(str::to_string).collect();
    let mut resolved: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(name) = pending.pop_front() {
        if pending.is_empty() && !follow_final {
            resolved.push(name);
            break;
        }
        let candidate = join(&resolved.join("/"), &name);
        let entry = tree.entry(&candidate)?;
        match entry {
            Some(e) if e.metadata.file_type().is_symlink() => {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(FileOpError::io(
                        "resolving",
                        abs(&candidate),
                        io::Error::from_raw_os_error(libc::ELOOP),
                    ));
                }
                let target = std::fs::read_link(&e.real)
                    .map_err(|err| FileOpError::io("reading link", &e.real, err))?;
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    resolved.clear();
                }
                let mut front: Vec<String> = Vec::new();
                for c in target.split('/') {
                    match c {
                        "" | "." => {}
                        ".." => {
                            if front.pop().is_none() {
                                resolved.pop();
                            }
                        }
                        c => front.push(c.to_string()),
                    }
                }
                for c in front.into_iter().rev() {
                    pending.push_front(c);
                }
            }
            _ => resolved.push(name),
        }
    }
    Ok(resolved.join("/"))
}

/// The uid/gid/mode/mtime to give an entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub uid: u32,
    pub gid: u32,
    /// Permission bits incl. setuid/setgid/sticky.
    pub mode: u32,
    /// Seconds and nanoseconds; `None` leaves the current time.
    pub mtime: Option<(i64, i64)>,
}

impl Meta {
    pub(crate) fn of(md: &Metadata) -> Meta {
        Meta {
            uid: md.uid(),
            gid: md.gid(),
            mode: md.mode() & 0o7777,
            mtime: Some((md.mtime(), md.mtime_nsec())),
        }
    }
}

/// The writer: `upper` over `base`.
pub(crate) struct Upper<'a> {
    upper: &'a Path,
    merged: LayerStack,
    /// Directory mtimes to set at the end (writing inside a directory
    /// changes its mtime).
    dir_times: Vec<(PathBuf, (i64, i64))>,
}

impl<'a> Upper<'a> {
    pub(crate) fn new(base: &LayerStack, upper: &'a Path) -> Upper<'a> {
        Upper {
            upper,
            merged: base.with(upper.to_path_buf()),
            dir_times: Vec::new(),
        }
    }

    /// The real path of `rel` in the upper directory.
    pub(crate) fn real(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.upper.to_path_buf()
        } else {
            crate::names::rel_path(self.upper, rel)
        }
    }

    /// The merged entry at `rel` (a final symlink not followed).
    pub(crate) fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, FileOpError> {
        Ok(self.merged.entry(rel)?)
    }

    /// Whether `rel` is a directory in the merged view (not following a
    /// final symlink).
    pub(crate) fn is_dir(&self, rel: &str) -> Result<bool, FileOpError> {
        Ok(self.entry(rel)?.is_some_and(|e| e.metadata.is_dir()))
    }

    /// Whether `rel` is a directory with nothing in it in the merged view.
    pub(crate) fn is_empty_dir(&self, rel: &str) -> Result<bool, FileOpError> {
        Ok(self.is_dir(rel)? && self.merged.list(rel)?.is_empty())
    }

    /// Resolves `path` (absolute or relative to the root) in the merged view.
    pub(crate) fn resolve(&self, path: &str, follow_final: bool) -> Result<String, FileOpError> {
        resolve_in(&self.merged, path, follow_final)
    }

    fn upper_meta(&self, rel: &str) -> Result<Option<Metadata>, FileOpError> {
        let real = self.real(rel);
        lstat(&real).map_err(|e| FileOpError::io("reading", abs(rel), e))
    }

    /// Records a directory mtime to set at the end.
    pub(crate) fn dir_time(&mut self, rel: &str, mtime: Option<(i64, i64)>) {
        if let Some(t) = mtime {
            self.dir_times.push((self.real(rel), t));
        }
    }

    /// Gives `rel` (in upper) owner, mode (not for symlinks) and mtime.
    pub(crate) fn set_meta(
        &mut self,
        rel: &str,
        meta: Meta,
        is_dir: bool,
    ) -> Result<(), FileOpError> {
        let real = self.real(rel);
        crate::file_meta::lchown(&real, meta.uid, meta.gid)
            .map_err(|e| FileOpError::io("chowning", abs(rel), e))?;
        let symlink = lstat(&real)
            .map_err(|e| FileOpError::io("reading", abs(rel), e))?
            .is_some_and(|m| m.file_type().is_symlink());
        if !symlink {
            std::fs::set_permissions(&real, std::fs::Permissions::from_mode(meta.mode & 0o7777))
                .map_err(|e| FileOpError::io("chmodding", abs(rel), e))?;
        }
        if is_dir {
            self.dir_time(rel, meta.mtime);
        } else if let Some(t) = meta.mtime {
            crate::file_meta::set_times(&real, t, t)
                .map_err(|e| FileOpError::io("setting times of", abs(rel), e))?;
        }
        Ok(())
    }

    /// Makes sure every ancestor of `rel` is a directory in upper, copying
    /// it up from the merged view (they must be directories there).
    pub(crate) fn copy_up_parents(&mut self, rel: &str) -> Result<(), FileOpError> {
        let comps = clean(rel);
        let mut cur = String::new();
        for c in comps.iter().take(comps.len().saturating_sub(1)) {
            cur = join(&cur, c);
            self.copy_up(&cur)?;
        }
        Ok(())
    }

    /// Copies directory `rel` up (it and its parents), keeping the merged
    /// metadata; nothing when upper already has it.
    fn copy_up(&mut self, rel: &str) -> Result<(), FileOpError> {
        if let Some(m) = self.upper_meta(rel)? {
            if m.is_dir() {
                return Ok(());
            }
        }
        let Some(e) = self.entry(rel)? else {
            return Err(FileOpError::invalid(format!(
                "{}: no such directory",
                abs(rel).display()
            )));
        };
        if !e.metadata.is_dir() {
            return Err(FileOpError::invalid(format!(
                "{}: not a directory",
                abs(rel).display()
            )));
        }
        self.copy_up_parents(rel)?;
        let real = self.real(rel);
        std::fs::create_dir(&real).map_err(|err| FileOpError::io("creating", abs(rel), err))?;
        self.set_meta(rel, Meta::of(&e.metadata), true)
    }

    /// Makes `rel` a directory in the merged view: copies it up when it is
    /// one below, creates it otherwise (replacing a whiteout: the new
    /// directory is opaque). A non-directory in the way is an error unless
    /// `replace`. Returns whether it was created.
    pub(crate) fn make_dir(
        &mut self,
        rel: &str,
        created: Meta,
        replace: bool,
    ) -> Result<bool, FileOpError> {
        if rel.is_empty() {
            return Ok(false);
        }
        if let Some(e) = self.entry(rel)? {
            if e.metadata.is_dir() {
                self.copy_up(rel)?;
                return Ok(false);
            }
            if !replace {
                return Err(FileOpError::invalid(format!(
                    "cannot copy to non-directory: {}",
                    abs(rel).display()
                )));
            }
        }
        self.copy_up_parents(rel)?;
        let real = self.real(rel);
        let mut opaque = false;
        if let Some(m) = self.upper_meta(rel)? {
            opaque = crate::overlay_marks::is_whiteout(&real, &m);
            remove(&real).map_err(|e| FileOpError::io("removing", abs(rel), e))?;
        }
        std::fs::create_dir(&real).map_err(|e| FileOpError::io("creating", abs(rel), e))?;
        if opaque {
            crate::overlay_marks::set_opaque(&real)
                .map_err(|e| FileOpError::io("marking opaque", abs(rel), e))?;
        }
        self.set_meta(rel, created, true)?;
        Ok(true)
    }

    /// Creates directory `rel` in upper where nothing can be in the way:
    /// its parent was created by the same operation (so it hides whatever
    /// lower layers hold there).
    pub(crate) fn make_fresh_dir(&mut self, rel: &str, created: Meta) -> Result<(), FileOpError> {
        let real = self.real(rel);
        std::fs::create_dir(&real).map_err(|e| FileOpError::io("creating", abs(rel), e))?;
        self.set_meta(rel, created, true)
    }

    /// `mkdir -p` of the resolved path `rel` in the merged view: directories
    /// that exist are left alone (not even copied up), missing ones are
    /// created with `created`.
    pub(crate) fn mkdir_all(&mut self, rel: &str, created: Meta) -> Result<(), FileOpError> {
        if rel.is_empty() || self.is_dir(rel)? {
            return Ok(());
        }
        let comps = clean(rel);
        let mut cur = String::new();
        for c in comps {
            cur = join(&cur, c);
            match self.entry(&cur)? {
                Some(e) if e.metadata.is_dir() => {}
                Some(_) => {
                    return Err(FileOpError::invalid(format!(
                        "mkdir {}: not a directory",
                        abs(&cur).display()
                    )))
                }
                None => {
                    self.make_dir(&cur, created, false)?;
                }
            }
        }
        Ok(())
    }

    /// Prepares upper for writing a non-directory at `rel`: parents copied
    /// up, whatever upper had there removed (a lower entry is hidden by the
    /// new one). Returns the real path.
    pub(crate) fn prepare_nondir(&mut self, rel: &str) -> Result<PathBuf, FileOpError> {
        if rel.is_empty() {
            return Err(FileOpError::invalid("cannot replace the root directory"));
        }
        self.copy_up_parents(rel)?;
        let real = self.real(rel);
        if self.upper_meta(rel)?.is_some() {
            remove(&real).map_err(|e| FileOpError::io("removing", abs(rel), e))?;
        }
        Ok(real)
    }

    /// Resolves `owner` through the merged /etc/passwd and /etc/group.
    pub(crate) fn owner_ids(
        &self,
        owner: Option<&super::Owner>,
    ) -> Result<(u32, u32), FileOpError> {
        match owner {
            None => Ok((0, 0)),
            Some(super::Owner::Ids { uid, gid }) => Ok((*uid, *gid)),
            Some(super::Owner::Names { user, group }) => {
                let (uid, mut gid) = match user.parse::<u32>() {
                    Ok(n) => (n, n),
                    Err(_) => self
                        .etc_lookup("etc/passwd", user)?
                        .map_or((0, 0), |f| (field(&f, 2), field(&f, 3))),
                };
                if let Some(group) = group {
                    gid = match group.parse::<u32>() {
                        Ok(n) => n,
                        Err(_) => self
                            .etc_lookup("etc/group", group)?
                            .map_or(0, |f| field(&f, 2)),
                    };
                }
                Ok((uid, gid))
            }
        }
    }

    /// The fields of the first line of `/etc/passwd`-like file `file` whose
    /// first field is `name`.
    fn etc_lookup(&self, file: &str, name: &str) -> Result<Option<Vec<String>>, FileOpError> {
        let rel = self.resolve(file, true)?;
        let Some(e) = self.entry(&rel)? else {
            return Ok(None);
        };
        if !e.metadata.is_file() {
            return Ok(None);
        }
        let data =
            std::fs::read(&e.real).map_err(|err| FileOpError::io("reading", &e.real, err))?;
        let text = String::from_utf8_lossy(&data);
        Ok(text
            .lines()
            .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
            .find(|f| f.len() >= 3 && f[0] == name))
    }

    /// `Mkdir`.
    pub(crate) fn mkdir(
        &mut self,
        path: &str,
        mode: u32,
        owner: (u32, u32),
        parents: bool,
    ) -> Result<(), FileOpError> {
        let rel = self.resolve(path, true)?;
        let created = Meta {
            uid: owner.0,
            gid: owner.1,
            mode: mode & 0o7777,
            mtime: None,
        };
        if parents {
            return self.mkdir_all(&rel, created);
        }
        if self.entry(&rel)?.is_some() {
            return Err(FileOpError::io(
                "creating",
                abs(&rel),
                io::Error::from_raw_os_error(libc::EEXIST),
            ));
        }
        if !self.is_dir(parent(&rel))? {
            return Err(FileOpError::io(
                "creating",
                abs(&rel),
                io::Error::from_raw_os_error(libc::ENOENT),
            ));
        }
        self.make_dir(&rel, created, false).map(|_| ())
    }

    /// `Mkfile`: parents created 0755 with the owner.
    pub(crate) fn mkfile(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        owner: (u32, u32),
    ) -> Result<(), FileOpError> {
        let rel = self.resolve(path, true)?;
        if self.is_dir(&rel)? {
            return Err(FileOpError::io(
                "writing",
                abs(&rel),
                io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        let dirs = Meta {
            uid: owner.0,
            gid: owner.1,
            mode: 0o755,
            mtime: None,
        };
        self.mkdir_all(parent(&rel), dirs)?;
        let real = self.prepare_nondir(&rel)?;
        std::fs::write(&real, data).map_err(|e| FileOpError::io("writing", abs(&rel), e))?;
        let meta = Meta {
            mode: mode & 0o7777,
            ..dirs
        };
        self.set_meta(&rel, meta, false)
    }

    /// `Rm`: the path's parent is resolved, the path itself not.
    pub(crate) fn rm(&mut self, path: &str, allow_not_found: bool) -> Result<(), FileOpError> {
        let comps = clean(path);
        let Some(name) = comps.last() else {
            return Err(FileOpError::invalid("cannot remove the root directory"));
        };
        let dir = self.resolve(&comps[..comps.len() - 1].join("/"), true)?;
        let rel = join(&dir, name);
        if self.entry(&rel)?.is_none() {
            if allow_not_found {
                return Ok(());
            }
            return Err(FileOpError::NotFound {
                path: abs(&rel).display().to_string(),
            });
        }
        let real = self.prepare_nondir(&rel)?;
        if self.entry(&rel)?.is_some() {
            crate::overlay_marks::make_whiteout(&real)
                .map_err(|e| FileOpError::io("creating a whiteout for", abs(&rel), e))?;
        }
        Ok(())
    }

    /// Sets the recorded directory mtimes (skipping a directory whose
    /// parent a later action replaced with a symlink: the symlink may lead
    /// out of the upper directory).
    pub(crate) fn finish(self) -> Result<(), FileOpError> {
        let mut checked = HashSet::new();
        for (real, t) in self.dir_times.iter().rev() {
            if !no_symlink_between(self.upper, real, &mut checked) {
                continue;
            }
            match crate::file_meta::set_times(real, *t, *t) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                other => other.map_err(|e| FileOpError::io("setting times of", real, e))?,
            }
        }
        Ok(())
    }
}

/// Field `i` of a passwd/group line as a number (0 when not one).
fn field(fields: &[String], i: usize) -> u32 {
    fields
        .get(i)
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Whether `path` is below `base` with no symlink (or missing component)
/// among its parents from `base` on (the final component is not checked).
/// `checked` holds directories found to be real directories by earlier
/// calls: the search stops at them, so checking every directory of a deep
/// tree costs one `lstat` per directory, not one per ancestor of each.
fn no_symlink_between(base: &Path, path: &Path, checked: &mut HashSet<PathBuf>) -> bool {
    if !path.starts_with(base) || path == base {
        return false;
    }
    let mut unchecked = Vec::new();
    let mut cur = path.parent();
    while let Some(dir) = cur {
        if dir.as_os_str().len() <= base.as_os_str().len() || checked.contains(dir) {
            break;
        }
        unchecked.push(dir);
        cur = dir.parent();
    }
    for dir in unchecked.into_iter().rev() {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {
                checked.insert(dir.to_path_buf());
            }
            _ => return false,
        }
    }
    true
}

/// Removes a file, symlink or whole directory.
fn remove(path: &Path) -> io::Result<()> {
    match lstat(path)? {
        Some(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Some(_) => std::fs::remove_file(path),
        None => Ok(()),
    }
}
