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
    let mut writer = Writer {
        builder: tar::Builder::new(out),
        options: options.clone(),
        links: HashMap::new(),
    };
    writer.tree(upper)?;
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
    /// (dev, ino) → first tar path of a multiply linked inode.
    links: HashMap<(u64, u64), Vec<u8>>,
}

/// What one child of a directory becomes.
struct Child {
    /// The name in the tar (`.wh.NAME` for a whiteout).
    tar_name: Vec<u8>,
    /// The name on disk.
    name: OsString,
    metadata: Metadata,
    whiteout: bool,
}

/// A directory being written: its children not yet written (in reverse
/// order, so the next one pops off the end) and its tar path (empty or
/// ending in `/`).
struct Level {
    dir: Dir,
    children: Vec<Child>,
    prefix: Vec<u8>,
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
        let tar_name = if whiteout {
            [b".wh.".as_slice(), name.as_bytes()].concat()
        } else {
            name.as_bytes().to_vec()
        };
        children.push(Child {
            tar_name,
            name,
            metadata,
            whiteout,
        });
    }
    children.sort_by(|a, b| b.tar_name.cmp(&a.tar_name));
    Ok(children)
}

impl Writer<'_> {
    /// Writes everything below directory `upper`, depth first, one open
    /// directory per level (no recursion: a tree may be deeper than the
    /// stack, and its paths longer than `PATH_MAX`).
    fn tree(&mut self, upper: &Path) -> Result<(), DiffError> {
        let root = Dir::open(upper).map_err(|e| io_err("opening", upper, e))?;
        let children = list_children(&root)?;
        let mut stack = vec![Level {
            dir: root,
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
            let md = &child.metadata;
            let ft = md.file_type();
            if ft.is_socket() {
                continue;
            }
            let mut header = self.header(md);
            let path = || level.dir.child_path(&child.name);
            if ft.is_dir() {
                tar_path.push(b'/');
                header.set_entry_type(EntryType::Directory);
                header.set_size(0);
                self.append(&mut header, &tar_path, io::empty())?;
                let dir = level
                    .dir
                    .open_dir(&child.name)
                    .map_err(|e| io_err("opening", &path(), e))?;
                let opaque = dir
                    .is_opaque()
                    .map_err(|e| io_err("reading xattrs of", &path(), e))?;
                if opaque {
                    self.marker(&[tar_path.as_slice(), b".wh..wh..opq"].concat())?;
                }
                let children = list_children(&dir)?;
                stack.push(Level {
                    dir,
                    children,
                    prefix: tar_path,
                });
                continue;
            }
            if md.nlink() > 1 {
                let key = (md.dev(), md.ino());
                if let Some(first) = self.links.get(&key).cloned() {
                    header.set_entry_type(EntryType::Link);
                    header.set_size(0);
                    self.link_entry(&mut header, &tar_path, &first)?;
                    continue;
                }
                self.links.insert(key, tar_path.clone());
            }
            if ft.is_file() {
                header.set_entry_type(EntryType::Regular);
                header.set_size(md.len());
                let file = level
                    .dir
                    .open_file(&child.name)
                    .map_err(|e| io_err("opening", &path(), e))?;
                let caps = crate::file_caps::of_file(&file)
                    .map_err(|e| io_err("reading the capabilities of", &path(), e))?;
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
            } else if ft.is_symlink() {
                let target = level
                    .dir
                    .read_link(&child.name)
                    .map_err(|e| io_err("reading link", &path(), e))?;
                header.set_entry_type(EntryType::Symlink);
                header.set_size(0);
                self.link_entry(&mut header, &tar_path, target.as_bytes())?;
            } else {
                let kind = if ft.is_char_device() {
                    EntryType::Char
                } else if ft.is_block_device() {
                    EntryType::Block
                } else {
                    EntryType::Fifo
                };
                header.set_entry_type(kind);
                header.set_size(0);
                if kind != EntryType::Fifo {
                    let rdev = md.rdev();
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
        Ok(())
    }

    /// A GNU header with mode, owner and (clamped) mtime of `md`.
    fn header(&self, md: &Metadata) -> Header {
        let mut header = Header::new_gnu();
        header.set_mode(md.mode() & 0o7777);
        header.set_uid(u64::from(md.uid()));
        header.set_gid(u64::from(md.gid()));
        let mut mtime = u64::try_from(md.mtime()).unwrap_or(0);
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
