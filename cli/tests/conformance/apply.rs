//! Applying layers with OCI/overlay semantics (FORMAT.md, "rootfs.txt"):
//!
//! 1. Whiteouts of a layer act on the lower layers first: `D/.wh..wh..opq`
//!    empties D, `D/.wh.NAME` removes `D/NAME` and everything below it.
//! 2. Every other member is then added. A non-directory replacing a
//!    directory, or a directory replacing a non-directory, removes the old
//!    subtree first; a directory over a directory keeps its children and
//!    takes the new metadata.
//! 3. Tar hardlinks join the inode of their target.
//!
//! Whiteout files never appear in the result.

use crate::listing::{base_name, is_whiteout, Body, Inode, Kind, Listing, Member};

/// A root filesystem being assembled from layers.
#[derive(Debug, Default)]
pub struct Rootfs {
    listing: Listing,
}

impl Rootfs {
    /// Applies one layer on top of what is there.
    pub fn apply(&mut self, members: &[Member]) -> Result<(), String> {
        for member in members.iter().filter(|m| is_whiteout(&m.path)) {
            let (dir, name) = split(&member.path);
            if name == ".wh..wh..opq" {
                self.remove_children(dir);
            } else if let Some(hidden) = name.strip_prefix(".wh.") {
                self.remove_subtree(&format!("{dir}/{hidden}"));
            }
        }
        for member in members.iter().filter(|m| !is_whiteout(&m.path)) {
            self.ensure_parents(&member.path);
            match &member.body {
                Body::Node(inode) => self.add(&member.path, inode),
                Body::Hardlink(target) => {
                    if *target == member.path {
                        continue;
                    }
                    let id = match self.listing.paths.get(target) {
                        Some(&id) if self.listing.inodes[id].kind != Kind::Dir => id,
                        Some(_) => {
                            return Err(format!(
                                "hardlink {} points at directory {target}",
                                member.path
                            ))
                        }
                        None => {
                            return Err(format!(
                                "hardlink {} points at missing {target}",
                                member.path
                            ))
                        }
                    };
                    self.remove_subtree(&member.path);
                    self.listing.paths.insert(member.path.clone(), id);
                }
            }
        }
        Ok(())
    }

    /// The `rootfs.txt` lines of the current state.
    pub fn render(&self) -> Vec<String> {
        self.listing.render()
    }

    /// Adds an object, with the dir/non-dir replacement rules.
    fn add(&mut self, path: &str, inode: &Inode) {
        if inode.kind == Kind::Dir {
            if let Some(&id) = self.listing.paths.get(path) {
                if self.listing.inodes[id].kind == Kind::Dir {
                    self.listing.inodes[id] = inode.clone();
                    return;
                }
            }
        }
        self.remove_subtree(path);
        self.listing.insert(path, inode.clone());
    }

    /// Makes sure every ancestor of `path` is a directory. A tar normally
    /// names them; if one is missing it is created 0755 0:0, and a
    /// non-directory in the way is replaced.
    fn ensure_parents(&mut self, path: &str) {
        let mut end = 0;
        while let Some(pos) = path[end + 1..].find('/') {
            end += 1 + pos;
            let parent = &path[..end];
            let is_dir = self
                .listing
                .paths
                .get(parent)
                .is_some_and(|&id| self.listing.inodes[id].kind == Kind::Dir);
            if !is_dir {
                self.remove_subtree(parent);
                self.listing.insert(parent, implicit_dir());
            }
        }
    }

    /// Removes `path` and everything below it.
    fn remove_subtree(&mut self, path: &str) {
        self.listing.paths.remove(path);
        self.remove_children(path);
    }

    /// Removes everything below the directory `dir` (`""` for the root).
    fn remove_children(&mut self, dir: &str) {
        // In byte order, `dir/...` sorts between `dir/` and `dir0`.
        let (low, high) = (format!("{dir}/"), format!("{dir}0"));
        let doomed: Vec<String> = self
            .listing
            .paths
            .range(low..high)
            .map(|(p, _)| p.clone())
            .collect();
        for path in doomed {
            self.listing.paths.remove(&path);
        }
    }
}

/// Splits `/a/b/c` into (`/a/b`, `c`); the root directory is `""`.
fn split(path: &str) -> (&str, &str) {
    let name = base_name(path);
    (&path[..path.len() - name.len() - 1], name)
}

/// The directory made for a parent that no tar member named.
fn implicit_dir() -> Inode {
    Inode {
        kind: Kind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        sha256: None,
        link: None,
        dev: (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::read_tar;

    /// Builds a tar in memory from simple specs.
    struct TarSpec {
        builder: tar::Builder<Vec<u8>>,
    }

    impl TarSpec {
        fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(size);
            h
        }

        fn dir(mut self, path: &str, mode: u32) -> Self {
            let mut h = Self::header(tar::EntryType::Directory, mode, 0);
            self.builder
                .append_data(&mut h, path, &[][..])
                .expect("dir");
            self
        }

        fn file(mut self, path: &str, mode: u32, data: &str) -> Self {
            let mut h = Self::header(tar::EntryType::Regular, mode, data.len() as u64);
            self.builder
                .append_data(&mut h, path, data.as_bytes())
                .expect("file");
            self
        }

        fn link(mut self, kind: tar::EntryType, path: &str, target: &str) -> Self {
            let mut h = Self::header(kind, 0o777, 0);
            self.builder
                .append_link(&mut h, path, target)
                .expect("link");
            self
        }

        fn members(self) -> Vec<Member> {
            let bytes = self.builder.into_inner().expect("tar");
            read_tar(&bytes[..]).expect("read tar")
        }
    }

    fn tar() -> TarSpec {
        TarSpec {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    /// The rendered listing as (path, type, link) triples.
    fn summary(fs: &Rootfs) -> Vec<String> {
        fs.render()
            .iter()
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                format!("{} {} {} {}", f[0], f[1], f[2], f[6])
            })
            .collect()
    }

    fn base() -> Rootfs {
        let mut fs = Rootfs::default();
        let layer = tar()
            .dir("etc/", 0o755)
            .file("etc/group", 0o644, "g")
            .file("etc/passwd", 0o644, "p")
            .dir("home/", 0o755)
            .dir("home/app/", 0o755)
            .file("home/app/x", 0o644, "x")
            .dir("home/app/sub/", 0o700)
            .file("home/app/sub/y", 0o644, "y")
            .members();
        fs.apply(&layer).expect("base");
        fs
    }

    #[test]
    fn whiteout_removes_file_and_subtree() {
        let mut fs = base();
        let layer = tar()
            .dir("etc/", 0o755)
            .file("etc/.wh.group", 0o600, "")
            .dir("home/", 0o755)
            .file("home/.wh.app", 0o600, "")
            .members();
        fs.apply(&layer).expect("apply");
        assert_eq!(
            summary(&fs),
            ["/etc d 0755 -", "/etc/passwd f 0644 -", "/home d 0755 -"]
        );
    }

    #[test]
    fn opaque_dir_hides_only_lower_children() {
        let mut fs = base();
        // The marker comes after the new child in the tar: it still acts
        // only on the lower layers.
        let layer = tar()
            .dir("home/app/", 0o750)
            .file("home/app/new", 0o644, "n")
            .file("home/app/.wh..wh..opq", 0o750, "")
            .members();
        fs.apply(&layer).expect("apply");
        assert_eq!(
            summary(&fs),
            [
                "/etc d 0755 -",
                "/etc/group f 0644 -",
                "/etc/passwd f 0644 -",
                "/home d 0755 -",
                "/home/app d 0750 -",
                "/home/app/new f 0644 -",
            ]
        );
    }

    #[test]
    fn type_changes_replace_subtrees() {
        let mut fs = base();
        let layer = tar()
            .dir("home/", 0o700)
            .file("home/app", 0o600, "now a file")
            .dir("etc/passwd/", 0o711)
            .file("etc/passwd/inside", 0o644, "i")
            .members();
        fs.apply(&layer).expect("apply");
        assert_eq!(
            summary(&fs),
            [
                "/etc d 0755 -",
                "/etc/group f 0644 -",
                "/etc/passwd d 0711 -",
                "/etc/passwd/inside f 0644 -",
                "/home d 0700 -",
                "/home/app f 0600 -",
            ]
        );
    }

    #[test]
    fn hardlinks_are_normalised_to_the_smallest_path() {
        let mut fs = Rootfs::default();
        // The tar stores /h/c first; /h/a and /h/b link to it.
        let layer = tar()
            .dir("h/", 0o755)
            .file("h/c", 0o640, "shared")
            .link(tar::EntryType::Link, "h/a", "h/c")
            .link(tar::EntryType::Link, "h/b", "./h/c")
            .link(tar::EntryType::Symlink, "h/s", "c")
            .members();
        // The layer listing and the rootfs agree on the normal form.
        let raw = Listing::of_layer(&layer).render();
        fs.apply(&layer).expect("apply");
        assert_eq!(raw, fs.render());
        assert_eq!(
            summary(&fs),
            [
                "/h d 0755 -",
                "/h/a f 0640 -",
                "/h/b h 0640 /h/a",
                "/h/c h 0640 /h/a",
                "/h/s l 0777 c",
            ]
        );
        // h lines repeat the size and sha256 of the shared inode.
        let lines = fs.render();
        let field = |i: usize, n: usize| lines[i].split('\t').nth(n).unwrap().to_string();
        assert_eq!(field(2, 4), "6");
        assert_eq!(field(2, 5), field(1, 5));

        // Replacing one member of the group breaks only that link; a later
        // hardlink can join an inode from a lower layer.
        let upper = tar()
            .dir("h/", 0o755)
            .file("h/a", 0o600, "new")
            .link(tar::EntryType::Link, "h/d", "h/b")
            .members();
        fs.apply(&upper).expect("apply");
        assert_eq!(
            summary(&fs),
            [
                "/h d 0755 -",
                "/h/a f 0600 -",
                "/h/b f 0640 -",
                "/h/c h 0640 /h/b",
                "/h/d h 0640 /h/b",
                "/h/s l 0777 c",
            ]
        );
    }

    #[test]
    fn dir_over_dir_keeps_children_and_takes_metadata() {
        let mut fs = base();
        let dir = Inode::dir(0o1777, 5, 6);
        let layer = vec![Member {
            path: "/home".into(),
            body: Body::Node(dir),
        }];
        fs.apply(&layer).expect("apply");
        let home = fs
            .render()
            .into_iter()
            .find(|l| l.starts_with("/home\t"))
            .unwrap();
        assert_eq!(home, "/home\td\t1777\t5:6\t0\t-\t-");
        assert!(fs
            .render()
            .iter()
            .any(|l| l.starts_with("/home/app/sub/y\t")));
    }
}
