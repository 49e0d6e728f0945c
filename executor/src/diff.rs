//! Upper directory → layer tar.
//!
//! The tar is deterministic for a given directory: GNU headers (GNU
//! long-name/long-link entries for paths over 100 bytes), entries written
//! depth first with each directory's entries sorted by their tar name's
//! bytes (so a parent always comes before its children), relative paths
//! without `./` (directories end in `/`), numeric owners only (no
//! user/group names), mtime only (no atime/ctime), and of the extended
//! attributes only file capabilities (a PAX `SCHILY.xattr.` record before
//! the file, see [`crate::file_caps`]).

use crate::dirfd::Dir;
use crate::fileop::graft::GraftEntry;
use crate::fileop::{Graft, Grafts};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// Why a layer tar could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// An I/O error reading the upper directory.
    #[error("{action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// Writing the tar failed (for `path`, the entry being written).
    #[error("writing the layer tar ({path}): {error}")]
    Write {
        /// The entry's path in the tar.
        path: String,
        /// The error.
        #[source]
        error: io::Error,
    },
}

/// Options of [`diff_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffOptions {
    /// `SOURCE_DATE_EPOCH`: mtimes later than this are written as this.
    pub mtime_clamp: Option<u64>,
}

/// Writes the layer tar of `upper` to `out` with default options (see
/// [`diff_with`]).
///
/// # Errors
/// [`DiffError`] naming the path.
pub fn diff(upper: &Path, out: &mut dyn Write) -> Result<(), DiffError> {
    diff_with(upper, out, &DiffOptions::default())
}

/// Writes the layer tar of the upper directory `upper` (overlay format)
/// to `out`, deterministically (see the module docs).
///
/// Every entry below `upper` (not `upper` itself) is written with its mode
/// (setuid/setgid/sticky included), uid, gid and mtime (clamped to
/// `options.mtime_clamp`). Symlinks keep their target verbatim; devices
/// and fifos are kept; sockets are skipped. A whiteout (character device
/// 0/0) `D/NAME` becomes an empty file `D/.wh.NAME` (mode 0, 0:0, mtime
/// 0); an opaque directory `D` becomes its entry followed by an empty
/// file `D/.wh..wh..opq` (same fields). A non-directory sharing its inode
/// with one written earlier becomes a hardlink entry to that first path.
///
/// # Errors
/// [`DiffError`] naming the path.
pub fn diff_with(
    upper: &Path,
    out: &mut dyn Write,
    options: &DiffOptions,
) -> Result<(), DiffError> {
    diff_grafted(upper, &Grafts::default(), out, options)
}

/// [`diff_with`] for an upper directory written by
/// [`crate::apply_file_actions_grafting`]: below each graft's destination
/// the entries come from the graft's source, as the copy would have
/// written them (owner, mode and mtime by the copy's rules, a hardlink
/// entry for a file linked to one written earlier). A source file whose
/// size changed since it was listed fails the tar.
///
/// # Errors
/// [`DiffError`] naming the path.
pub fn diff_grafted(
    upper: &Path,
    grafts: &Grafts<'_>,
    out: &mut dyn Write,
    options: &DiffOptions,
) -> Result<(), DiffError> {
    let mut writer = Writer {
        builder: tar::Builder::new(out),
        options: options.clone(),
        links: HashMap::new(),
    };
    writer.tree(upper, grafts)?;
    writer.builder.finish().map_err(|error| DiffError::Write {
        path: String::new(),
        error,
    })
}

fn io_err(action: &'static str, path: &Path, error: io::Error) -> DiffError {
    DiffError::Io {
        action,
        path: path.to_path_buf(),
        error,
    }
}

struct Writer<'a> {
    builder: tar::Builder<&'a mut dyn Write>,
    options: DiffOptions,
    /// The first tar path of each multiply linked file.
    links: HashMap<LinkKey, Vec<u8>>,
}

/// A multiply linked file: an inode of the upper directory, or of a
/// graft's source.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum LinkKey {
    Upper(u64, u64),
    Source(u64, u64),
}

/// The kinds of entries a layer holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

/// What a tar header says of an entry.
struct Stat {
    kind: Kind,
    /// Permission bits, setuid/setgid/sticky included.
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    size: u64,
    rdev: u64,
    /// Set for a non-directory with more than one link.
    link: Option<LinkKey>,
}

impl Stat {
    fn kind_of(md: &Metadata) -> Kind {
        let ft = md.file_type();
        if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_char_device() {
            Kind::Char
        } else if ft.is_block_device() {
            Kind::Block
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            Kind::Socket
        }
    }

    /// An entry of the upper directory, as it is.
    fn of_upper(md: &Metadata) -> Stat {
        let kind = Stat::kind_of(md);
        Stat {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: md.mtime(),
            size: md.len(),
            rdev: md.rdev(),
            link: (kind != Kind::Dir && md.nlink() > 1).then(|| LinkKey::Upper(md.dev(), md.ino())),
        }
    }

    /// A graft's entry, as its copy would be: a symlink's mode is 0777 (a
    /// new symlink's), what the copy makes of files and directories is
    /// the copy's rule, only regular files have a size.
    fn of_graft(e: &GraftEntry) -> Stat {
        let md = &e.entry.metadata;
        let kind = Stat::kind_of(md);
        Stat {
            kind,
            mode: if kind == Kind::Symlink { 0o777 } else { e.mode },
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            size: if kind == Kind::File { md.len() } else { 0 },
            rdev: md.rdev(),
            link: (kind == Kind::File && md.nlink() > 1)
                .then(|| LinkKey::Source(md.dev(), md.ino())),
        }
    }

    /// An overlay whiteout (a 0/0 character device).
    fn is_device_whiteout(&self) -> bool {
        self.kind == Kind::Char && self.rdev == 0
    }
}

/// Where a child's data is.
enum Origin {
    /// In the upper directory, under its name.
    Upper,
    /// In a graft's source: its real path and its path in the source.
    Source { real: PathBuf, src: String },
}

/// What one child of a directory becomes.
struct Child {
    /// The name in the tar (`.wh.NAME` for a whiteout).
    tar_name: Vec<u8>,
    /// The name on disk.
    name: OsString,
    stat: Stat,
    whiteout: bool,
    origin: Origin,
}

/// Where a directory's children come from.
enum Listing<'g, 's> {
    Upper(Dir),
    Graft(&'g Graft<'s>),
}

/// A directory being written: its children not yet written (in reverse
/// order, so the next one pops off the end) and its tar path (empty or
/// ending in `/`).
struct Level<'g, 's> {
    dir: Listing<'g, 's>,
    children: Vec<Child>,
    prefix: Vec<u8>,
}

impl Level<'_, '_> {
    /// The real path of `child`, for messages.
    fn path_of(&self, child: &Child) -> PathBuf {
        match (&self.dir, &child.origin) {
            (_, Origin::Source { real, .. }) => real.clone(),
            (Listing::Upper(dir), Origin::Upper) => dir.child_path(&child.name),
            (Listing::Graft(_), Origin::Upper) => PathBuf::from(&child.name),
        }
    }
}

/// The children of `dir` in reverse tar order.
fn list_children(dir: &Dir) -> Result<Vec<Child>, DiffError> {
    let mut children = Vec::new();
    let names = dir.names().map_err(|e| io_err("listing", dir.path(), e))?;
    for name in names {
        let path = || dir.child_path(&name);
        let metadata = dir
            .child_metadata(&name)
            .map_err(|e| io_err("reading", &path(), e))?;
        let whiteout = dir
            .is_whiteout(&name, &metadata)
            .map_err(|e| io_err("reading", &path(), e))?;
        let mut stat = Stat::of_upper(&metadata);
        if !whiteout {
            let mark = dir
                .device_mark(&name, &metadata)
                .map_err(|e| io_err("reading", &path(), e))?;
            if let Some((kind, major, minor)) = mark
                .as_deref()
                .and_then(crate::runtime::devices::parse_mark)
            {
                // A device a RUN made, kept as a placeholder (see
                // `runtime/devices.rs`).
                stat.kind = if kind == 'c' { Kind::Char } else { Kind::Block };
                stat.rdev = crate::file_meta::makedev(major, minor);
            }
        }
        children.push(Child {
            tar_name: tar_name(name.as_bytes(), whiteout),
            name,
            stat,
            whiteout,
            origin: Origin::Upper,
        });
    }
    children.sort_by(|a, b| b.tar_name.cmp(&a.tar_name));
    Ok(children)
}

/// The children of source directory `src` of `graft` in reverse tar order.
fn graft_children(graft: &Graft<'_>, src: &str) -> Result<Vec<Child>, DiffError> {
    let listed = graft.children(src).map_err(|e| DiffError::Io {
        action: "reading",
        path: PathBuf::from(format!("/{src}")),
        error: io::Error::other(e.to_string()),
    })?;
    let mut children = Vec::with_capacity(listed.len());
    for (name, entry) in listed {
        let stat = Stat::of_graft(&entry);
        let whiteout = stat.is_device_whiteout();
        // Tree paths carry names that are not UTF-8 encoded: the tar gets
        // the bytes on disk, as the copy's file would have.
        let name = crate::names::decode(&name).into_owned();
        children.push(Child {
            tar_name: tar_name(name.as_bytes(), whiteout),
            name,
            stat,
            whiteout,
            origin: Origin::Source {
                real: entry.entry.real,
                src: entry.entry.rel,
            },
        });
    }
    children.sort_by(|a, b| b.tar_name.cmp(&a.tar_name));
    Ok(children)
}

fn tar_name(name: &[u8], whiteout: bool) -> Vec<u8> {
    if whiteout {
        [b".wh.".as_slice(), name].concat()
    } else {
        name.to_vec()
    }
}

/// Reads exactly `size` bytes of `file`: a file that shrank or grew since
/// it was listed is an error, never a short or overlong tar entry.
struct Exact {
    file: std::io::Take<std::fs::File>,
    left: u64,
}

impl io::Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.left -= n as u64;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file changed while the layer was written",
            ));
        }
        if self.left == 0 && n > 0 {
            let mut probe = [0u8; 1];
            if self.file.get_mut().read(&mut probe)? != 0 {
                return Err(io::Error::other(
                    "the file changed while the layer was written",
                ));
            }
        }
        Ok(n)
    }
}

impl Writer<'_> {
    /// Writes everything below directory `upper` (and the grafts below
    /// it), depth first, one open directory per level (no recursion: a
    /// tree may be deeper than the stack, and its paths longer than
    /// `PATH_MAX`).
    fn tree<'g, 's>(&mut self, upper: &Path, grafts: &'g Grafts<'s>) -> Result<(), DiffError> {
        let root = Dir::open(upper).map_err(|e| io_err("opening", upper, e))?;
        let (dir, children) = match grafts.get("") {
            Some(g) => (Listing::Graft(g), graft_children(g, &g.src)?),
            None => {
                let children = list_children(&root)?;
                (Listing::Upper(root), children)
            }
        };
        let mut stack = vec![Level {
            dir,
            children,
            prefix: Vec::new(),
        }];
        while let Some(level) = stack.last_mut() {
            let Some(child) = level.children.pop() else {
                stack.pop();
                continue;
            };
            let mut tar_path = [level.prefix.as_slice(), &child.tar_name].concat();
            if child.whiteout {
                self.marker(&tar_path)?;
                continue;
            }
            let st = &child.stat;
            if st.kind == Kind::Socket {
                continue;
            }
            let mut header = self.header(st);
            let path = level.path_of(&child);
            if st.kind == Kind::Dir {
                tar_path.push(b'/');
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                self.append(&mut header, &tar_path, io::empty())?;
                let (dir, children) = match (&level.dir, &child.origin) {
                    (Listing::Upper(parent), _) => {
                        let dir = parent
                            .open_dir(&child.name)
                            .map_err(|e| io_err("opening", &path, e))?;
                        let opaque = dir
                            .is_opaque()
                            .map_err(|e| io_err("reading xattrs of", &path, e))?;
                        if opaque {
                            self.marker(&[tar_path.as_slice(), b".wh..wh..opq"].concat())?;
                        }
                        let rel = std::str::from_utf8(&tar_path[..tar_path.len() - 1]).ok();
                        match rel.and_then(|r| grafts.get(r)) {
                            Some(g) => (Listing::Graft(g), graft_children(g, &g.src)?),
                            None => {
                                let children = list_children(&dir)?;
                                (Listing::Upper(dir), children)
                            }
                        }
                    }
                    (Listing::Graft(g), Origin::Source { src, .. }) => {
                        (Listing::Graft(g), graft_children(g, src)?)
                    }
                    (Listing::Graft(_), Origin::Upper) => {
                        return Err(io_err(
                            "reading",
                            &path,
                            io::Error::other("an upper entry below a graft"),
                        ))
                    }
                };
                stack.push(Level {
                    dir,
                    children,
                    prefix: tar_path,
                });
                continue;
            }
            if let Some(key) = st.link {
                if let Some(first) = self.links.get(&key).cloned() {
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    self.link_entry(&mut header, &tar_path, &first)?;
                    continue;
                }
                self.links.insert(key, tar_path.clone());
            }
            match st.kind {
                Kind::File => {
                    header.set_entry_type(EntryType::Regular);
                    header.set_size(st.size);
                    match (&level.dir, &child.origin) {
                        (Listing::Upper(dir), Origin::Upper) => {
                            let file = dir
                                .open_file(&child.name)
                                .map_err(|e| io_err("opening", &path, e))?;
                            let caps = crate::file_caps::of_file(&file)
                                .map_err(|e| io_err("reading the capabilities of", &path, e))?;
                            if let Some(caps) = caps {
                                let key = format!("SCHILY.xattr.{}", crate::file_caps::NAME);
                                self.builder
                                    .append_pax_extensions([(key.as_str(), caps.as_slice())])
                                    .map_err(|error| DiffError::Write {
                                        path: String::from_utf8_lossy(&tar_path).into_owned(),
                                        error,
                                    })?;
                            }
                            self.append(&mut header, &tar_path, file)?;
                        }
                        _ => {
                            // A copy's file has no capabilities: copying
                            // does not carry extended attributes.
                            let file = std::fs::File::open(&path)
                                .map_err(|e| io_err("opening", &path, e))?;
                            let data = Exact {
                                file: io::Read::take(file, st.size),
                                left: st.size,
                            };
                            self.append(&mut header, &tar_path, data)?;
                        }
                    }
                }
                Kind::Symlink => {
                    let target = match (&level.dir, &child.origin) {
                        (Listing::Upper(dir), Origin::Upper) => dir.read_link(&child.name),
                        _ => std::fs::read_link(&path).map(|t| t.into_os_string()),
                    }
                    .map_err(|e| io_err("reading link", &path, e))?;
                    header.set_entry_type(EntryType::Symlink);
                    header.set_size(0);
                    self.link_entry(&mut header, &tar_path, target.as_bytes())?;
                }
                _ => {
                    let kind = match st.kind {
                        Kind::Char => EntryType::Char,
                        Kind::Block => EntryType::Block,
                        _ => EntryType::Fifo,
                    };
                    header.set_entry_type(kind);
                    header.set_size(0);
                    if kind != EntryType::Fifo {
                        let rdev = st.rdev;
                        let set = header
                            .set_device_major(crate::file_meta::major(rdev))
                            .and_then(|()| header.set_device_minor(crate::file_meta::minor(rdev)));
                        set.map_err(|error| DiffError::Write {
                            path: String::from_utf8_lossy(&tar_path).into_owned(),
                            error,
                        })?;
                    }
                    self.append(&mut header, &tar_path, io::empty())?;
                }
            }
        }
        Ok(())
    }

    /// A GNU header with mode, owner and (clamped) mtime of `st`.
    fn header(&self, st: &Stat) -> Header {
        let mut header = Header::new_gnu();
        header.set_mode(st.mode);
        header.set_uid(u64::from(st.uid));
        header.set_gid(u64::from(st.gid));
        let mut mtime = u64::try_from(st.mtime).unwrap_or(0);
        if let Some(clamp) = self.options.mtime_clamp {
            mtime = mtime.min(clamp);
        }
        header.set_mtime(mtime);
        header
    }

    /// An empty whiteout/opaque marker file: mode 0, 0:0, mtime 0.
    fn marker(&mut self, tar_path: &[u8]) -> Result<(), DiffError> {
        let mut header = Header::new_gnu();
        header.set_entry_type(EntryType::Regular);
        header.set_mode(0);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(0);
        self.append(&mut header, tar_path, io::empty())
    }

    fn append(
        &mut self,
        header: &mut Header,
        tar_path: &[u8],
        data: impl io::Read,
    ) -> Result<(), DiffError> {
        self.builder
            .append_data(header, OsStr::from_bytes(tar_path), data)
            .map_err(|error| DiffError::Write {
                path: String::from_utf8_lossy(tar_path).into_owned(),
                error,
            })
    }

    /// A symlink or hardlink entry whose link name is `target`, verbatim
    /// (a GNU long-link entry first when it does not fit the header).
    fn link_entry(
        &mut self,
        header: &mut Header,
        tar_path: &[u8],
        target: &[u8],
    ) -> Result<(), DiffError> {
        let werr = |error: io::Error| DiffError::Write {
            path: String::from_utf8_lossy(tar_path).into_owned(),
            error,
        };
        let slot = &mut header.as_old_mut().linkname;
        if target.len() <= slot.len() {
            slot.fill(0);
            slot[..target.len()].copy_from_slice(target);
        } else {
            let mut long = Header::new_gnu();
            let name = b"././@LongLink";
            long.as_gnu_mut().expect("gnu header").name[..name.len()].copy_from_slice(name);
            long.set_mode(0o644);
            long.set_uid(0);
            long.set_gid(0);
            long.set_mtime(0);
            long.set_size(target.len() as u64 + 1);
            long.set_entry_type(EntryType::GNULongLink);
            long.set_cksum();
            let mut data = target.to_vec();
            data.push(0);
            self.builder.append(&long, data.as_slice()).map_err(werr)?;
            let slot = &mut header.as_old_mut().linkname;
            slot.fill(0);
            let n = slot.len();
            slot.copy_from_slice(&target[..n]);
        }
        self.append(header, tar_path, io::empty())
    }
}

#[cfg(test)]
mod tests {
    use super::Exact;
    use std::io::Read;

    fn read_exact(data: &[u8], size: u64) -> std::io::Result<Vec<u8>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, data).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let mut reader = Exact {
            file: file.take(size),
            left: size,
        };
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn a_file_read_for_the_tar_must_still_have_its_listed_size() {
        assert_eq!(read_exact(b"hello", 5).expect("same size"), b"hello");
        assert_eq!(read_exact(b"", 0).expect("empty"), b"");
        for (data, size) in [(&b"hello world"[..], 5), (&b"hi"[..], 5)] {
            let err = read_exact(data, size).expect_err("changed size");
            assert!(err.to_string().contains("changed"), "{err}");
        }
    }
}
