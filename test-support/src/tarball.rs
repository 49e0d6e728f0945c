//! Real tar files for tests: a builder for layer tars with exact headers,
//! and a listing of the layers inside an archive.

use std::io::Read as _;
use std::path::Path;

/// Builds an uncompressed tar in memory, entry by entry, with the headers
/// given and nothing taken from the machine (owner `0:0` unless set, fixed
/// times), so the same calls always give the same bytes.
pub struct TarBuilder {
    builder: tar::Builder<Vec<u8>>,
    mtime: u64,
    owner: (u64, u64),
}

impl Default for TarBuilder {
    fn default() -> TarBuilder {
        TarBuilder::new()
    }
}

impl TarBuilder {
    /// An empty tar; entries get mtime 0 until [`TarBuilder::mtime`].
    pub fn new() -> TarBuilder {
        TarBuilder {
            builder: tar::Builder::new(Vec::new()),
            mtime: 0,
            owner: (0, 0),
        }
    }

    /// The mtime (seconds since the epoch) of the entries added from now on.
    pub fn mtime(mut self, mtime: u64) -> TarBuilder {
        self.mtime = mtime;
        self
    }

    /// The uid and gid of the entries added from now on.
    pub fn owner(mut self, uid: u64, gid: u64) -> TarBuilder {
        self.owner = (uid, gid);
        self
    }

    /// A directory `path` with permission bits `mode`.
    pub fn dir(self, path: &str, mode: u32) -> TarBuilder {
        self.entry(path, tar::EntryType::Directory, mode, b"", None)
    }

    /// A regular file `path` with permission bits `mode` and `content`.
    pub fn file(self, path: &str, mode: u32, content: &[u8]) -> TarBuilder {
        self.entry(path, tar::EntryType::Regular, mode, content, None)
    }

    /// A symbolic link `path` to `target`.
    pub fn symlink(self, path: &str, target: &str) -> TarBuilder {
        self.entry(path, tar::EntryType::Symlink, 0o777, b"", Some(target))
    }

    /// A hard link `path` to the earlier entry `target`.
    pub fn hardlink(self, path: &str, target: &str) -> TarBuilder {
        self.entry(path, tar::EntryType::Link, 0o644, b"", Some(target))
    }

    /// An OCI whiteout deleting `path` from the layers below: an empty file
    /// named `.wh.NAME` beside it.
    pub fn whiteout(self, path: &str) -> TarBuilder {
        let (dir, name) = match path.rsplit_once('/') {
            Some((dir, name)) => (format!("{dir}/"), name),
            None => (String::new(), path),
        };
        self.entry(
            &format!("{dir}.wh.{name}"),
            tar::EntryType::Regular,
            0,
            b"",
            None,
        )
    }

    /// The finished tar's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.builder.into_inner().expect("finish tar in memory")
    }

    fn entry(
        mut self,
        path: &str,
        kind: tar::EntryType,
        mode: u32,
        content: &[u8],
        link: Option<&str>,
    ) -> TarBuilder {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(self.owner.0);
        header.set_gid(self.owner.1);
        header.set_mtime(self.mtime);
        header.set_size(content.len() as u64);
        match link {
            Some(target) => self
                .builder
                .append_link(&mut header, path, target)
                .expect("append link to tar"),
            None => self
                .builder
                .append_data(&mut header, path, content)
                .expect("append entry to tar"),
        }
        self
    }
}

/// The members of the tar file `archive` that are tars themselves: the
/// layers of a docker-archive (or of an OCI layout tar with uncompressed
/// layers), in archive order.
pub fn layer_tars(archive: &Path) -> Vec<Vec<u8>> {
    let mut outer = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
    let mut out = Vec::new();
    for entry in outer.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        if data.get(257..262) == Some(&b"ustar"[..]) {
            out.push(data);
        }
    }
    out
}

/// `mode uid gid size name [link]` of every entry of every layer in
/// `archive` (see [`layer_tars`]), in order.
pub fn layer_listing(archive: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for data in layer_tars(archive) {
        let mut inner = tar::Archive::new(&data[..]);
        let Ok(entries) = inner.entries() else {
            continue;
        };
        for e in entries {
            let e = e.expect("layer entry");
            let h = e.header();
            out.push(format!(
                "{:o} {} {} {} {} {:?}",
                h.mode().unwrap_or(0),
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0),
                h.size().unwrap_or(0),
                e.path().expect("path").display(),
                e.link_name().ok().flatten()
            ));
        }
    }
    out
}
