//! Walking the context: `lstat`-based (symlinks are never followed), sorted,
//! with `.dockerignore` exclusions applied and excluded directories pruned.
//!
//! Each directory is opened once, relative to its parent, and each entry
//! costs one `statx` relative to that descriptor: the walk of a large
//! context is bound by these system calls.

use super::cache::FileStamp;
use super::error::ContextError;
use kiln_executor::names;
use kiln_patterns::DockerIgnore;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, StatxFlags};
use std::ffi::{OsStr, OsString};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

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

/// The `lstat` data of a context entry that kiln keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    /// What it is.
    pub kind: EntryKind,
    /// Permission bits including setuid, setgid and sticky.
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// Device, inode, size and times.
    pub stamp: FileStamp,
}

impl Meta {
    fn from_statx(st: &rustix::fs::Statx) -> Meta {
        let raw = u32::from(st.stx_mode);
        let kind = match FileType::from_raw_mode(raw) {
            FileType::Symlink => EntryKind::Symlink,
            FileType::Directory => EntryKind::Dir,
            FileType::RegularFile => EntryKind::File,
            _ => EntryKind::Other,
        };
        Meta {
            kind,
            mode: raw & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            nlink: u64::from(st.stx_nlink),
            stamp: FileStamp {
                dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
                ino: st.stx_ino,
                size: st.stx_size,
                mtime_ns: nanos(st.stx_mtime.tv_sec, i64::from(st.stx_mtime.tv_nsec)),
                ctime_ns: nanos(st.stx_ctime.tv_sec, i64::from(st.stx_ctime.tv_nsec)),
            },
        }
    }

    fn from_metadata(md: &std::fs::Metadata) -> Meta {
        use std::os::unix::fs::MetadataExt;
        Meta {
            kind: EntryKind::from_file_type(md.file_type()),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            nlink: md.nlink(),
            stamp: FileStamp {
                dev: md.dev(),
                ino: md.ino(),
                size: md.size(),
                mtime_ns: nanos(md.mtime(), md.mtime_nsec()),
                ctime_ns: nanos(md.ctime(), md.ctime_nsec()),
            },
        }
    }
}

/// `lstat` of `name` in directory `dir` (`name` may be a path when `dir`
/// is [`rustix::fs::CWD`]): one `statx`, or std's `lstat` where the kernel
/// has no `statx`.
fn stat_at(dir: BorrowedFd<'_>, name: &OsStr, abs: impl Fn() -> PathBuf) -> std::io::Result<Meta> {
    let result = rustix::fs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS,
    );
    match result {
        Ok(st) => Ok(Meta::from_statx(&st)),
        Err(e) if e == rustix::io::Errno::NOSYS || e == rustix::io::Errno::PERM => {
            std::fs::symlink_metadata(abs()).map(|md| Meta::from_metadata(&md))
        }
        Err(e) => Err(e.into()),
    }
}

/// The target of symlink `name` in `dir`.
fn read_link_at(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OsString> {
    let target = rustix::fs::readlinkat(dir, name, Vec::new())?;
    Ok(OsString::from_vec(target.into_bytes()))
}

/// `lstat`s the entry at `abs` and reads its target if it is a symlink.
pub(crate) fn stat_path(abs: &Path) -> Result<(Meta, Option<OsString>), ContextError> {
    let meta = stat_at(rustix::fs::CWD, abs.as_os_str(), || abs.to_path_buf())
        .map_err(ContextError::io(abs))?;
    let link = match meta.kind {
        EntryKind::Symlink => {
            Some(read_link_at(rustix::fs::CWD, abs.as_os_str()).map_err(ContextError::io(abs))?)
        }
        _ => None,
    };
    Ok((meta, link))
}

/// Where an entry is on disk, built only when it is needed.
#[derive(Clone, Copy)]
pub(crate) enum AbsPath<'a> {
    /// Child `name` of directory `dir`.
    Child(&'a Path, &'a OsStr),
    /// This path.
    Full(&'a Path),
}

impl AbsPath<'_> {
    /// The path.
    pub fn to_path_buf(self) -> PathBuf {
        match self {
            AbsPath::Child(dir, name) => dir.join(name),
            AbsPath::Full(path) => path.to_path_buf(),
        }
    }
}

/// Where a walk puts the entries it keeps, in walk order.
pub(crate) trait WalkSink {
    /// How many entries there are.
    fn len(&self) -> usize;
    /// Drops the entries from `len` on.
    fn truncate(&mut self, len: usize);
    /// Appends an entry.
    fn push(
        &mut self,
        rel: &str,
        abs: AbsPath<'_>,
        meta: &Meta,
        link_target: Option<OsString>,
    ) -> Result<(), ContextError>;
}

impl WalkSink for Vec<WalkEntry> {
    fn len(&self) -> usize {
        Vec::len(self)
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len);
    }

    fn push(
        &mut self,
        rel: &str,
        abs: AbsPath<'_>,
        meta: &Meta,
        link_target: Option<OsString>,
    ) -> Result<(), ContextError> {
        Vec::push(
            self,
            WalkEntry::new(
                rel.to_string(),
                abs.to_path_buf(),
                meta,
                link_target.map(PathBuf::from),
            ),
        );
        Ok(())
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
    /// Builds an entry from what the walk found.
    pub(crate) fn new(
        path: String,
        abs_path: PathBuf,
        meta: &Meta,
        link_target: Option<PathBuf>,
    ) -> WalkEntry {
        WalkEntry {
            path,
            abs_path,
            kind: meta.kind,
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            size: meta.stamp.size,
            link_target,
            dev: meta.stamp.dev,
            ino: meta.stamp.ino,
            nlink: meta.nlink,
            mtime_ns: meta.stamp.mtime_ns,
            ctime_ns: meta.stamp.ctime_ns,
        }
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
    out: &mut dyn WalkSink,
) -> Result<bool, ContextError> {
    let state = ignore.state_for_dir(dir);
    walk_rec(ignore, dir, abs, &state, out)
}

/// A directory being walked by [`walk_into`].
struct Level {
    /// The open directory (read to its end).
    dir: rustix::fs::Dir,
    /// Its path on disk.
    abs: PathBuf,
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

/// Opens directory `name` in `dir`, never through a symlink.
fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> std::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

/// Reads directory `fd` (which the result keeps, for the `statx` of its
/// entries): its names (without `.` and `..`) in reverse byte order (the
/// next one pops off).
fn level_names(fd: OwnedFd) -> std::io::Result<(rustix::fs::Dir, Vec<OsString>)> {
    let mut dir = rustix::fs::Dir::new(fd)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsString::from_vec(name.to_vec()));
        }
    }
    names.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
    Ok((dir, names))
}

/// The walk of [`walk_into`]: one open directory per level, each opened
/// relative to its parent, and no recursion (a context may be deeper than
/// the stack, and every lookup is of one name, so the time is linear in
/// the depth).
fn walk_rec(
    ignore: &DockerIgnore,
    dir: &str,
    abs: &Path,
    state: &[bool],
    out: &mut dyn WalkSink,
) -> Result<bool, ContextError> {
    let root = open_dir(rustix::fs::CWD, abs.as_os_str()).map_err(ContextError::io(abs))?;
    let (root, names) = level_names(root).map_err(ContextError::io(abs))?;
    walk_level(
        ignore,
        Level {
            dir: root,
            abs: abs.to_path_buf(),
            rel: dir.to_string(),
            state: state.to_vec(),
            names,
            excluded_mark: None,
        },
        out,
    )
}

/// Like [`walk_into`], with the top directory's names walked by up to
/// `threads` threads, each into its own sink from `make_sink`. Returns the
/// sinks in walk order: appended one after the other they hold what
/// [`walk_into`] would have appended. The first error in walk order wins.
pub(crate) fn walk_parallel<S: WalkSink + Send>(
    ignore: &DockerIgnore,
    dir: &str,
    abs: &Path,
    threads: usize,
    make_sink: &(dyn Fn() -> S + Sync),
) -> Result<Vec<S>, ContextError> {
    let state = ignore.state_for_dir(dir);
    let root = open_dir(rustix::fs::CWD, abs.as_os_str()).map_err(ContextError::io(abs))?;
    let mut names = typed_names(root).map_err(ContextError::io(abs))?;
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let tasks = split_names(&names);
    // Tasks are taken in order by whichever thread is free: a large
    // subtree does not hold up the others.
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let task = |index: usize| -> Result<S, ContextError> {
        let mut sink = make_sink();
        let fd = open_dir(rustix::fs::CWD, abs.as_os_str()).map_err(ContextError::io(abs))?;
        let level = Level {
            dir: rustix::fs::Dir::new(fd).map_err(|e| ContextError::io(abs)(e.into()))?,
            abs: abs.to_path_buf(),
            rel: dir.to_string(),
            state: state.clone(),
            names: names[tasks[index].clone()]
                .iter()
                .rev()
                .map(|(name, _)| name.clone())
                .collect(),
            excluded_mark: None,
        };
        walk_level(ignore, level, &mut sink)?;
        Ok(sink)
    };
    let worker = || {
        let mut done = Vec::new();
        while !failed.load(Ordering::Relaxed) {
            let index = next.fetch_add(1, Ordering::Relaxed);
            if index >= tasks.len() {
                break;
            }
            let result = task(index);
            failed.fetch_or(result.is_err(), Ordering::Relaxed);
            done.push((index, result));
        }
        done
    };
    let threads = threads.clamp(1, tasks.len().max(1));
    let mut results: Vec<(usize, Result<S, ContextError>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..threads).map(|_| scope.spawn(worker)).collect();
        let mut all = worker();
        for handle in handles {
            all.extend(
                handle
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
        }
        all
    });
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

/// At most this many names that are not directories go in one task of
/// [`walk_parallel`] (a task costs opening the directory again).
const NAMES_PER_TASK: usize = 256;

/// The names in directory `fd` (without `.` and `..`), each with whether
/// it may be a directory (by the type `getdents` gives, when it gives one).
fn typed_names(fd: OwnedFd) -> std::io::Result<Vec<(OsString, bool)>> {
    let mut dir = rustix::fs::Dir::new(fd)?;
    let mut names = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            let maybe_dir = matches!(entry.file_type(), FileType::Directory | FileType::Unknown);
            names.push((OsString::from_vec(name.to_vec()), maybe_dir));
        }
    }
    Ok(names)
}

/// Splits sorted `names` into tasks of consecutive names: each directory
/// alone, other names in runs of up to [`NAMES_PER_TASK`].
fn split_names(names: &[(OsString, bool)]) -> Vec<std::ops::Range<usize>> {
    let mut tasks = Vec::new();
    let mut start = 0;
    for (i, (_, maybe_dir)) in names.iter().enumerate() {
        if *maybe_dir || i - start >= NAMES_PER_TASK {
            if start < i {
                tasks.push(start..i);
            }
            start = i;
        }
        if *maybe_dir {
            tasks.push(i..i + 1);
            start = i + 1;
        }
    }
    if start < names.len() {
        tasks.push(start..names.len());
    }
    tasks
}

/// Walks what is left of `root`'s names and below (see [`walk_rec`]).
fn walk_level(
    ignore: &DockerIgnore,
    root: Level,
    out: &mut dyn WalkSink,
) -> Result<bool, ContextError> {
    let start = out.len();
    let mut stack = vec![root];
    let mut rel = String::new();
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
        let child = || level.abs.join(&name);
        // The stream's position is at its end; `statx`, `openat` and
        // `readlinkat` relative to it do not use it.
        let fd = level
            .dir
            .fd()
            .map_err(|e| ContextError::io(&level.abs)(e.into()))?;
        rel.clear();
        rel.push_str(&level.rel);
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(&names::encode(&name));
        let (excluded, state) = ignore.evaluate(&rel, &level.state);
        let meta = stat_at(fd, &name, child).map_err(|e| ContextError::io(child())(e))?;
        let is_dir = meta.kind == EntryKind::Dir;
        if excluded && !(is_dir && ignore.exception_could_match_below(&rel)) {
            continue;
        }
        let link_target = match meta.kind {
            EntryKind::Symlink => {
                Some(read_link_at(fd, &name).map_err(|e| ContextError::io(child())(e))?)
            }
            _ => None,
        };
        let mark = out.len();
        out.push(&rel, AbsPath::Child(&level.abs, &name), &meta, link_target)?;
        if is_dir {
            let abs = child();
            let sub = open_dir(fd, &name).map_err(ContextError::io(&abs))?;
            let (dir, names) = level_names(sub).map_err(ContextError::io(&abs))?;
            stack.push(Level {
                dir,
                abs,
                rel: rel.clone(),
                state,
                names,
                excluded_mark: excluded.then_some(mark),
            });
        }
    }
    Ok(out.len() > start)
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
            // Split over threads, the same entries in the same order.
            for threads in 1..=4 {
                let parts = walk_parallel(
                    &ignore,
                    start,
                    &dir.path().join(start),
                    threads,
                    &Vec::<WalkEntry>::new,
                )
                .expect("parallel walk");
                let joined: Vec<WalkEntry> = parts.into_iter().flatten().collect();
                assert_eq!(
                    joined, out,
                    "{patterns:?} from {start:?}, {threads} threads"
                );
            }
        }
    }

    #[test]
    fn split_names_table() {
        let names = |spec: &str| -> Vec<(OsString, bool)> {
            spec.chars()
                .enumerate()
                .map(|(i, c)| (OsString::from(format!("{i:04}")), c == 'd'))
                .collect()
        };
        let many = "f".repeat(NAMES_PER_TASK + 3);
        let n = NAMES_PER_TASK;
        let cases: &[(&str, &[(usize, usize)])] = &[
            ("", &[]),
            ("f", &[(0, 1)]),
            ("d", &[(0, 1)]),
            ("ffdff", &[(0, 2), (2, 3), (3, 5)]),
            ("dd", &[(0, 1), (1, 2)]),
            ("fd", &[(0, 1), (1, 2)]),
            (&many, &[(0, n), (n, n + 3)]),
        ];
        for (spec, want) in cases {
            let want: Vec<_> = want.iter().map(|&(a, b)| a..b).collect();
            assert_eq!(split_names(&names(spec)), want, "{spec}");
        }
    }

    #[test]
    fn parallel_walk_of_a_flat_directory_matches() {
        let mut files: Vec<String> = (0..600).map(|i| format!("f{i:04}")).collect();
        files.extend(["f0100.d/x", "f0300.d/y/z", "zz/", "0/a"].map(String::from));
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        let dir = tree(&files);
        let ignore = DockerIgnore::from_patterns(&["f02*", "!f0250"]).expect("valid");
        let mut sequential: Vec<WalkEntry> = Vec::new();
        walk_into(&ignore, "", dir.path(), &mut sequential).expect("walk");
        assert_eq!(sequential.len(), 600 - 100 + 1 + 2 + 3 + 1 + 2);
        for threads in [1, 2, 3] {
            let parts = walk_parallel(&ignore, "", dir.path(), threads, &Vec::<WalkEntry>::new)
                .expect("parallel walk");
            let joined: Vec<WalkEntry> = parts.into_iter().flatten().collect();
            assert_eq!(joined, sequential, "{threads} threads");
        }
    }

    #[test]
    fn parallel_walk_reports_the_first_error_in_walk_order() {
        let dir = tree(&["a/x", "b/x", "c/x", "d/x"]);
        let ignore = DockerIgnore::empty();
        let missing = dir.path().join("missing");
        let err = walk_parallel(&ignore, "", &missing, 2, &Vec::<WalkEntry>::new)
            .expect_err("no such directory");
        assert!(err.to_string().contains("missing"), "{err}");
        // Unreadable subdirectories (as root they are readable; then the
        // walk succeeds, which is what this checks apart from the error).
        for name in ["b", "c"] {
            std::fs::set_permissions(
                dir.path().join(name),
                std::os::unix::fs::PermissionsExt::from_mode(0o000),
            )
            .expect("chmod");
        }
        let result = walk_parallel(&ignore, "", dir.path(), 4, &Vec::<WalkEntry>::new);
        let mut sequential: Vec<WalkEntry> = Vec::new();
        let expected = walk_into(&ignore, "", dir.path(), &mut sequential);
        match (result, expected) {
            (Ok(parts), Ok(_)) => {
                assert_eq!(parts.into_iter().flatten().collect::<Vec<_>>(), sequential)
            }
            (Err(got), Err(want)) => {
                assert_eq!(got.to_string(), want.to_string());
                assert!(got.to_string().contains("/b"), "{got}");
            }
            (got, want) => panic!("parallel {got:?} against sequential {want:?}"),
        }
    }
}
