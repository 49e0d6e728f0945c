//! Filesystem listings in the line format of `rootfs.txt` and `layers.txt`
//! (FORMAT.md, "Entry lines"), and the reading of layer tars into them.
//!
//! A [`Listing`] maps paths to inode ids; paths that share an id are
//! hardlinks of one another. Rendering writes the lexically smallest path
//! of each group as `f` and the others as `h` pointing at it, so the result
//! does not depend on which path a tar writer stored first.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};

/// The type of a filesystem object, with its one-letter code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    /// Only for a tar hardlink whose target is not in the listing: it is
    /// rendered as written (`h`, link = the raw target).
    DanglingHardlink,
    Char,
    Block,
    Fifo,
}

/// Metadata and content digest of one inode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inode {
    pub kind: Kind,
    /// `mode & 0o7777`.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Content length (regular files only).
    pub size: u64,
    /// Hex sha256 of the content (regular files only).
    pub sha256: Option<String>,
    /// Symlink target, verbatim (or the raw target of a dangling hardlink).
    pub link: Option<String>,
    /// Device major/minor (character and block devices only).
    pub dev: (u32, u32),
}

impl Inode {
    /// A directory with the given mode and owner.
    #[cfg(test)]
    pub fn dir(mode: u32, uid: u64, gid: u64) -> Inode {
        Inode {
            kind: Kind::Dir,
            mode,
            uid,
            gid,
            size: 0,
            sha256: None,
            link: None,
            dev: (0, 0),
        }
    }
}

/// What one tar member is: an object of its own, or a hardlink to the
/// (normalised) path of another member.
#[derive(Clone, Debug)]
pub enum Body {
    Node(Inode),
    Hardlink(String),
}

/// One member of a layer tar, with its path normalised to `/a/b`.
#[derive(Clone, Debug)]
pub struct Member {
    pub path: String,
    pub body: Body,
}

/// Paths mapped to inodes; paths with the same inode id are hardlinked.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub paths: BTreeMap<String, usize>,
    pub inodes: Vec<Inode>,
}

impl Listing {
    /// Adds (or replaces) `path` as a new inode.
    pub fn insert(&mut self, path: &str, inode: Inode) {
        self.inodes.push(inode);
        self.paths.insert(path.to_string(), self.inodes.len() - 1);
    }

    /// The raw listing of one layer, as `layers.txt` shows it: every member
    /// as it is in the tar (whiteouts included); a later member with the
    /// same path replaces an earlier one.
    pub fn of_layer(members: &[Member]) -> Listing {
        let mut listing = Listing::default();
        for member in members {
            match &member.body {
                Body::Node(inode) => listing.insert(&member.path, inode.clone()),
                Body::Hardlink(target) => match listing.paths.get(target) {
                    Some(&id) if listing.inodes[id].kind != Kind::Dir => {
                        listing.paths.insert(member.path.clone(), id);
                    }
                    _ => listing.insert(&member.path, dangling(target)),
                },
            }
        }
        listing
    }

    /// The listing's lines, sorted by path, hardlinks normalised.
    pub fn render(&self) -> Vec<String> {
        let mut leader: HashMap<usize, &str> = HashMap::new();
        for (path, id) in &self.paths {
            // BTreeMap iterates in byte order: the first path seen is the smallest.
            leader.entry(*id).or_insert(path);
        }
        self.paths
            .iter()
            .map(|(path, id)| {
                let inode = &self.inodes[*id];
                let lead = leader[id];
                if inode.kind != Kind::Dir && lead != path {
                    line(path, inode, Some(lead))
                } else {
                    line(path, inode, None)
                }
            })
            .collect()
    }
}

/// A placeholder inode for a hardlink whose target is not in the layer.
fn dangling(target: &str) -> Inode {
    Inode {
        kind: Kind::DanglingHardlink,
        mode: 0,
        uid: 0,
        gid: 0,
        size: 0,
        sha256: None,
        link: Some(target.to_string()),
        dev: (0, 0),
    }
}

/// One entry line; `hardlink_to` makes it an `h` line naming its leader.
fn line(path: &str, inode: &Inode, hardlink_to: Option<&str>) -> String {
    let code = match (hardlink_to, inode.kind) {
        (Some(_), _) | (None, Kind::DanglingHardlink) => 'h',
        (None, Kind::File) => 'f',
        (None, Kind::Dir) => 'd',
        (None, Kind::Symlink) => 'l',
        (None, Kind::Char) => 'c',
        (None, Kind::Block) => 'b',
        (None, Kind::Fifo) => 'p',
    };
    let size = match inode.kind {
        Kind::File => inode.size.to_string(),
        Kind::Char | Kind::Block => format!("{},{}", inode.dev.0, inode.dev.1),
        _ => "0".to_string(),
    };
    let sha = inode.sha256.as_deref().unwrap_or("-");
    let link = match (hardlink_to, inode.kind) {
        (Some(lead), _) => lead,
        (None, Kind::Symlink | Kind::DanglingHardlink) => inode.link.as_deref().unwrap_or("-"),
        _ => "-",
    };
    format!(
        "{path}\t{code}\t{:04o}\t{}:{}\t{size}\t{sha}\t{link}",
        inode.mode, inode.uid, inode.gid
    )
}

/// Normalises a tar member name: drops leading `./` and `/` and trailing
/// `/`, and returns `/name`, or `None` for the root itself.
pub fn normalise_path(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let mut s: &str = &text;
    loop {
        if let Some(rest) = s.strip_prefix("./") {
            s = rest;
        } else if let Some(rest) = s.strip_prefix('/') {
            s = rest;
        } else {
            break;
        }
    }
    let s = s.trim_end_matches('/');
    if s.is_empty() || s == "." {
        None
    } else {
        Some(format!("/{s}"))
    }
}

/// True for a whiteout (`.wh.NAME`) or opaque marker (`.wh..wh..opq`).
pub fn is_whiteout(path: &str) -> bool {
    base_name(path).starts_with(".wh.")
}

/// The last component of a normalised path.
pub fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reads an uncompressed tar stream into its members, in tar order. The
/// content of regular files is hashed, not kept.
pub fn read_tar(reader: impl Read) -> io::Result<Vec<Member>> {
    let mut archive = tar::Archive::new(reader);
    let mut members = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let Some(path) = normalise_path(&entry.path_bytes()) else {
            continue;
        };
        let header = entry.header();
        let kind = match header.entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                Kind::File
            }
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Char => Kind::Char,
            tar::EntryType::Block => Kind::Block,
            tar::EntryType::Fifo => Kind::Fifo,
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .and_then(|name| normalise_path(&name))
                    .unwrap_or_else(|| "/".to_string());
                members.push(Member {
                    path,
                    body: Body::Hardlink(target),
                });
                continue;
            }
            // Global PAX headers and the like describe no file.
            _ => continue,
        };
        let mode = header.mode()? & 0o7777;
        let (mut uid, mut gid) = (header.uid()?, header.gid()?);
        let dev = match kind {
            Kind::Char | Kind::Block => (
                header.device_major()?.unwrap_or(0),
                header.device_minor()?.unwrap_or(0),
            ),
            _ => (0, 0),
        };
        let link = match kind {
            Kind::Symlink => entry
                .link_name_bytes()
                .map(|name| String::from_utf8_lossy(&name).into_owned()),
            _ => None,
        };
        if let Some(extensions) = entry.pax_extensions()? {
            for ext in extensions {
                let ext = ext?;
                let value = ext.value().ok().and_then(|v| v.parse::<u64>().ok());
                match (ext.key(), value) {
                    (Ok("uid"), Some(v)) => uid = v,
                    (Ok("gid"), Some(v)) => gid = v,
                    _ => {}
                }
            }
        }
        let (size, sha256) = if kind == Kind::File {
            let mut hasher = Sha256::new();
            let size = io::copy(&mut entry, &mut HashWriter(&mut hasher))?;
            (size, Some(hex(&hasher.finalize())))
        } else {
            (0, None)
        };
        members.push(Member {
            path,
            body: Body::Node(Inode {
                kind,
                mode,
                uid,
                gid,
                size,
                sha256,
                link,
                dev,
            }),
        });
    }
    Ok(members)
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An `io::Write` that feeds a sha256 hasher.
pub struct HashWriter<'a>(pub &'a mut Sha256);

impl io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Masks the fields of whiteout and opaque-marker lines that FORMAT.md
/// says not to compare (everything but path and type).
pub fn mask_whiteout(line: &str) -> String {
    let mut fields = line.splitn(3, '\t');
    let (Some(path), Some(kind)) = (fields.next(), fields.next()) else {
        return line.to_string();
    };
    if path.starts_with('/') && is_whiteout(path) {
        format!("{path}\t{kind}\t(whiteout: other fields not compared)")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalise_path(b"./a/b/"), Some("/a/b".into()));
        assert_eq!(normalise_path(b"/a b"), Some("/a b".into()));
        assert_eq!(normalise_path(b"./"), None);
        assert_eq!(normalise_path(b"."), None);
        assert_eq!(normalise_path(b"/"), None);
    }

    #[test]
    fn whiteout_lines_are_masked() {
        let a = mask_whiteout("/etc/.wh.group\tf\t0600\t0:0\t0\te3b0\t-");
        let b = mask_whiteout("/etc/.wh.group\tf\t0644\t0:0\t0\te3b0\t-");
        assert_eq!(a, b);
        let plain = "/etc/group\tf\t0644\t0:0\t0\te3b0\t-";
        assert_eq!(mask_whiteout(plain), plain);
    }
}
