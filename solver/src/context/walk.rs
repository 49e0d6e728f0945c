//! Walking the context: `lstat`-based (symlinks are never followed), sorted,
//! with `.dockerignore` exclusions applied and excluded directories pruned.

use super::error::ContextError;
use kiln_executor::dirfd::Dir;
use kiln_executor::names;
use kiln_patterns::DockerIgnore;
use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The type of a context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A FIFO, socket or device node.
    Other,
}

impl EntryKind {
    /// The kind of a file type from `lstat`.
    pub fn from_file_type(ft: std::fs::FileType) -> EntryKind {
        if ft.is_symlink() {
            EntryKind::Symlink
        } else if ft.is_dir() {
            EntryKind::Dir
        } else if ft.is_file() {
            EntryKind::File
        } else {
            debug_assert!(
                ft.is_fifo() || ft.is_socket() || ft.is_block_device() || ft.is_char_device()
            );
            EntryKind::Other
        }
    }

    /// A one-letter code (`f`, `d`, `l`, `o`), as used in checksums.
    pub fn code(self) -> u8 {
        match self {
            EntryKind::File => b'f',
            EntryKind::Dir => b'd',
            EntryKind::Symlink => b'l',
            EntryKind::Other => b'o',
        }
    }
}

/// One file, directory or symlink of the context, with its `lstat` data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkEntry {
    /// Slash-separated path relative to the context root (`""` is the root).
    pub path: String,
    /// The path on disk.
    pub abs_path: PathBuf,
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Size in bytes (`st_size`).
    pub size: u64,
    /// The target of a symlink, as stored in the link.
    pub link_target: Option<PathBuf>,
    /// Device id (`st_dev`).
    pub dev: u64,
    /// Inode number (`st_ino`), with `dev` identifies hard links.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time in nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl WalkEntry {
    /// Builds an entry from `lstat` metadata, reading a symlink's target.
    pub(crate) fn from_metadata(
        path: String,
        abs_path: PathBuf,
        md: &Metadata,
    ) -> Result<WalkEntry, ContextError> {
        let link_target = if md.file_type().is_symlink() {
            Some(std::fs::read_link(&abs_path).map_err(ContextError::io(&abs_path))?)
        } else {
            None
        };
        Ok(WalkEntry::with_target(path, abs_path, md, link_target))
    }

    /// Builds an entry from `lstat` metadata and a symlink's target as
    /// read by the caller.
    fn with_target(
        path: String,
        abs_path: PathBuf,
        md: &Metadata,
        link_target: Option<PathBuf>,
    ) -> WalkEntry {
        WalkEntry {
            path,
            kind: EntryKind::from_file_type(md.file_type()),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            size: md.size(),
            link_target,
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
            mtime_ns: nanos(md.mtime(), md.mtime_nsec()),
            ctime_ns: nanos(md.ctime(), md.ctime_nsec()),
            abs_path,
        }
    }

    /// `lstat`s `abs_path` and builds its entry.
    pub(crate) fn stat(path: String, abs_path: PathBuf) -> Result<WalkEntry, ContextError> {
        let md = std::fs::symlink_metadata(&abs_path).map_err(ContextError::io(&abs_path))?;
        WalkEntry::from_metadata(path, abs_path, &md)
    }
}

/// Seconds and nanoseconds as nanoseconds, saturating for absurd times.
fn nanos(secs: i64, nsecs: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsecs)
}

/// Joins a context-relative directory and a name.
pub(crate) fn join_rel(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// The names in directory `abs`, sorted bytewise.
pub(crate) fn sorted_names(abs: &Path) -> Result<Vec<(String, std::fs::DirEntry)>, ContextError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(abs).map_err(ContextError::io(abs))? {
        let entry = entry.map_err(ContextError::io(abs))?;
        let name = names::encode(&entry.file_name()).into_owned();
        names.push((name, entry));
    }
    names.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(names)
}

/// Appends the non-excluded entries below directory `dir` (relative path,
/// on-disk path) to `out` in walk order (each directory's names sorted,
/// a directory before its contents). An excluded directory is entered only
/// if an exception could re-include something below it, and is listed only
/// if something below it is. Returns whether anything was appended.
pub(crate) fn walk_into(
    ignore: &DockerIgnore,
    dir: &str,
    abs: &Path,
    out: &mut Vec<WalkEntry>,
) -> Result<bool, ContextError> {
    walk_with(ignore, dir, abs, out, &mut |_, _| {})
}

/// Like [`walk_into`], calling `on_file(index, entry)` for every regular
/// file as soon as it is appended (its index in `out` stays valid).
pub(crate) fn walk_with(
    ignore: &DockerIgnore,
    dir: &str,
    abs: &Path,
    out: &mut Vec<WalkEntry>,
    on_file: &mut dyn FnMut(usize, &WalkEntry),
) -> Result<bool, ContextError> {
    let state = ignore.state_for_dir(dir);
    walk_rec(ignore, dir, abs, &state, out, on_file)
}

/// A directory being walked by [`walk_with`].
struct Level {
    dir: Dir,
    /// Its context-relative path.
    rel: String,
    /// Its `.dockerignore` state, for its children.
    state: Vec<bool>,
    /// Its names not visited yet, in reverse order.
    names: Vec<OsString>,
    /// Where its own entry is in the output, when it is excluded and is
    /// kept only if something below it is.
    excluded_mark: Option<usize>,
}

/// The walk of [`walk_with`]: one open directory per level, each opened
/// relative to its parent, and no recursion (a context may be deeper than
/// the stack, and every lookup is of one name, so the time is linear in
/// the depth).
fn walk_rec(
    ignore: &DockerIgnore,
    dir: &str,
    abs: &Path,
    state: &[bool],
    out: &mut Vec<WalkEntry>,
    on_file: &mut dyn FnMut(usize, &WalkEntry),
) -> Result<bool, ContextError> {
    let start = out.len();
    let root = Dir::open(abs).map_err(ContextError::io(abs))?;
    let names = level_names(&root)?;
    let mut stack = vec![Level {
        dir: root,
        rel: dir.to_string(),
        state: state.to_vec(),
        names,
        excluded_mark: None,
    }];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.pop() else {
            if let Some(done) = stack.pop() {
                // An excluded directory with nothing kept below it goes.
                if let Some(mark) = done.excluded_mark {
                    if out.len() == mark + 1 {
                        out.truncate(mark);
                    }
                }
            }
            continue;
        };
        let abs_path = level.dir.child_path(&name);
        let name = names::encode(&name).into_owned();
        let rel = join_rel(&level.rel, &name);
        let (excluded, state) = ignore.evaluate(&rel, &level.state);
        let md = level
            .dir
            .child_metadata(&names::decode(&name))
            .map_err(ContextError::io(&abs_path))?;
        let is_dir = md.is_dir();
        if excluded && !(is_dir && ignore.exception_could_match_below(&rel)) {
            continue;
        }
        let link_target = if md.file_type().is_symlink() {
            let target = level
                .dir
                .read_link(&names::decode(&name))
                .map_err(ContextError::io(&abs_path))?;
            Some(PathBuf::from(target))
        } else {
            None
        };
        let entry = WalkEntry::with_target(rel, abs_path, &md, link_target);
        let mark = out.len();
        out.push(entry);
        if is_dir {
            let sub = level
                .dir
                .open_dir(&names::decode(&name))
                .map_err(ContextError::io(&out[mark].abs_path))?;
            let names = level_names(&sub)?;
            stack.push(Level {
                dir: sub,
                rel: out[mark].path.clone(),
                state,
                names,
                excluded_mark: excluded.then_some(mark),
            });
        } else if out[mark].kind == EntryKind::File {
            on_file(mark, &out[mark]);
        }
    }
    Ok(out.len() > start)
}

/// The names in `dir`, in reverse byte order (the next one pops off).
fn level_names(dir: &Dir) -> Result<Vec<OsString>, ContextError> {
    let mut names = dir.names().map_err(ContextError::io(dir.path()))?;
    names.reverse();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in files {
            let p = dir.path().join(f);
            if let Some(stripped) = f.strip_suffix('/') {
                std::fs::create_dir_all(dir.path().join(stripped)).expect("mkdir");
            } else {
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                std::fs::write(&p, f).expect("write");
            }
        }
        dir
    }

    #[test]
    fn walk_table() {
        let files = [
            "a.txt",
            "a/b.txt",
            "a/c.log",
            "docs/README.md",
            "docs/img/x.png",
            "empty/",
            "node_modules/m.js",
        ];
        let cases: &[(&[&str], &str, &[&str])] = &[
            (
                &[],
                "",
                &[
                    "a",
                    "a/b.txt",
                    "a/c.log",
                    "a.txt",
                    "docs",
                    "docs/README.md",
                    "docs/img",
                    "docs/img/x.png",
                    "empty",
                    "node_modules",
                    "node_modules/m.js",
                ],
            ),
            (
                &["*.log", "**/*.log", "node_modules"],
                "",
                &[
                    "a",
                    "a/b.txt",
                    "a.txt",
                    "docs",
                    "docs/README.md",
                    "docs/img",
                    "docs/img/x.png",
                    "empty",
                ],
            ),
            (
                &["docs", "!docs/README.md"],
                "",
                &[
                    "a",
                    "a/b.txt",
                    "a/c.log",
                    "a.txt",
                    "docs",
                    "docs/README.md",
                    "empty",
                    "node_modules",
                    "node_modules/m.js",
                ],
            ),
            (&["docs", "!docs/nothing"], "docs", &[]),
            (&["*", "!a/b.txt"], "", &["a", "a/b.txt"]),
            (&["a/*"], "a", &[]),
            (&[], "a", &["a/b.txt", "a/c.log"]),
        ];
        let dir = tree(&files);
        for (patterns, start, want) in cases {
            let ignore = DockerIgnore::from_patterns(patterns).expect("valid");
            let mut out = Vec::new();
            walk_into(&ignore, start, &dir.path().join(start), &mut out).expect("walk");
            let got: Vec<&str> = out.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(got, *want, "{patterns:?} from {start:?}");
        }
    }
}
