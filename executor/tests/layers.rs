//! Layer directories on real temp dirs: unpack (OCI tar → overlay format),
//! the merged `SourceTree` view of a `LayerStack`, diff (upper → tar) and
//! materialize. Runs as root (mknod, lchown, trusted xattrs).

use kiln_executor::{
    diff, diff_with, materialize, unpack, unpack_blob, DiffOptions, LayerStack, SourceError,
    SourceTree, UnpackError,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::CString;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

const BUSYBOX: &str = "/work/shared/bases/busybox/blobs/sha256/d83a308413b8acb7cc8807ec15a786c10f5ecc5da57af786b9a351120a3ad03a";
/// The diff id busybox's config gives that layer.
const BUSYBOX_DIFF_ID: &str =
    "sha256:beed84fc74dde1dc0ce0032588340a67fd356283344bc7ad96cdef142f1fddb6";

fn digest(s: &str) -> kiln_oci::Digest {
    s.parse().unwrap()
}
const MTIME: u64 = 1_600_000_000;

/// Builds a layer tar entry by entry.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, mode: u32, uid: u64, gid: u64) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(MTIME);
        h.set_size(0);
        h
    }

    fn dir(mut self, path: &str, mode: u32) -> Tar {
        let mut h = Tar::header(EntryType::Directory, mode, 0, 0);
        self.0.append_data(&mut h, path, std::io::empty()).unwrap();
        self
    }

    fn file_owned(mut self, path: &str, mode: u32, uid: u64, data: &[u8]) -> Tar {
        let mut h = Tar::header(EntryType::Regular, mode, uid, uid);
        h.set_size(data.len() as u64);
        self.0.append_data(&mut h, path, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Tar {
        self.file_owned(path, 0o644, 0, data)
    }

    fn hard(mut self, path: &str, target: &str) -> Tar {
        let mut h = Tar::header(EntryType::Link, 0o644, 0, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    fn sym(mut self, path: &str, target: &str) -> Tar {
        let mut h = Tar::header(EntryType::Symlink, 0o777, 0, 0);
        self.0.append_link(&mut h, path, target).unwrap();
        self
    }

    /// An entry whose name is written raw (no validation).
    fn raw(mut self, name: &str) -> Tar {
        let mut h = Tar::header(EntryType::Regular, 0o644, 0, 0);
        let slot = &mut h.as_old_mut().name;
        slot[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        self.0.append(&h, std::io::empty()).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn unpack_tar(tar: Tar, dir: &Path) {
    unpack(&mut tar.bytes().as_slice(), dir).unwrap();
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    // SAFETY: valid C strings and buffer.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "lsetxattr {path:?}");
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| buf[..rc as usize].to_vec())
}

fn mknod(path: &Path, mode: u32, dev: u64) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid C string.
    let rc = unsafe { libc::mknod(p.as_ptr(), mode, dev) };
    assert_eq!(rc, 0, "mknod {path:?}");
    // mknod is subject to the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777)).unwrap();
}

fn set_mtime(path: &Path, secs: i64) {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let ts = [
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    ];
    // SAFETY: valid C string and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0);
}

fn is_whiteout(md: &fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn opaque(path: &Path) -> bool {
    get_xattr(path, "trusted.overlay.opaque").as_deref() == Some(b"y")
        || get_xattr(path, "user.overlay.opaque").as_deref() == Some(b"y")
}

/// A listing of a directory tree: path → type, mode, owner, size/rdev,
/// content or link target, mtime, opaque flag; hardlinks as `=first`.
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, String>,
        inodes: &mut HashMap<(u64, u64), String>,
    ) {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names {
            let path = dir.join(&name);
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let md = fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let (kind, what) = if is_whiteout(&md) {
                ("whiteout", String::new())
            } else if ft.is_dir() {
                ("d", format!("opaque={}", opaque(&path)))
            } else if ft.is_file() {
                (
                    "f",
                    String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned(),
                )
            } else if ft.is_symlink() {
                (
                    "l",
                    fs::read_link(&path).unwrap().to_string_lossy().into_owned(),
                )
            } else if ft.is_char_device() || ft.is_block_device() {
                (
                    if ft.is_char_device() { "c" } else { "b" },
                    format!("{:x}", md.rdev()),
                )
            } else {
                ("p", String::new())
            };
            let mut line = if is_whiteout(&md) {
                "whiteout".to_string()
            } else {
                let mode = if ft.is_symlink() {
                    0o777
                } else {
                    md.mode() & 0o7777
                };
                format!(
                    "{kind} {mode:04o} {}:{} {what} mtime={}",
                    md.uid(),
                    md.gid(),
                    md.mtime()
                )
            };
            if !ft.is_dir() && md.nlink() > 1 {
                let first = inodes
                    .entry((md.dev(), md.ino()))
                    .or_insert_with(|| rel.clone());
                if *first != rel {
                    line.push_str(&format!(" ={first}"));
                }
            }
            out.insert(rel, line);
            if ft.is_dir() {
                walk(root, &path, out, inodes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out, &mut HashMap::new());
    out
}

/// Tar members as (path, type byte, mode, uid, gid, mtime, link name).
fn tar_members(tar: &[u8]) -> Vec<(String, char, u32, u64, u64, u64, String)> {
    let mut archive = tar::Archive::new(tar);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                String::from_utf8_lossy(&e.path_bytes()).into_owned(),
                h.entry_type().as_byte() as char,
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                h.mtime().unwrap(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn busybox_base_layer_unpacks() {
    let tmp = tempfile::tempdir().unwrap();
    let layer = tmp.path().join("layer");
    unpack_blob(
        Path::new(BUSYBOX),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &digest(BUSYBOX_DIFF_ID),
        &layer,
    )
    .unwrap();
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        1,
        "no temporary directory left"
    );
    let sh = fs::symlink_metadata(layer.join("bin/sh")).unwrap();
    assert!(sh.file_type().is_symlink());
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let tmpdir = fs::symlink_metadata(layer.join("tmp")).unwrap();
    assert!(tmpdir.is_dir());
    assert_eq!(tmpdir.mode() & 0o7777, 0o1777);
    assert_eq!(tmpdir.mtime(), 0);
    let app = fs::symlink_metadata(layer.join("home/app")).unwrap();
    assert_eq!((app.uid(), app.gid()), (1000, 1000));
    assert_eq!(
        fs::symlink_metadata(layer.join("root")).unwrap().mode() & 0o7777,
        0o700
    );
    assert!(fs::read_dir(layer.join("bin")).unwrap().count() >= 268);
    let busybox = fs::symlink_metadata(layer.join("bin/busybox")).unwrap();
    assert!(busybox.is_file() && busybox.mode() & 0o111 != 0);

    // The same blob seen through a stack.
    let stack = LayerStack::new(vec![layer.clone()]);
    let e = stack.entry("/bin/sh").unwrap().unwrap();
    assert_eq!(e.rel, "bin/sh");
    assert_eq!(e.real, layer.join("bin/sh"));
    assert_eq!(stack.resolve("/etc/pass*").unwrap(), vec!["etc/passwd"]);

    // Unpacking again into the now non-empty directory is refused.
    let err = unpack_blob(
        Path::new(BUSYBOX),
        "application/vnd.oci.image.layer.v1.tar+gzip",
        &digest(BUSYBOX_DIFF_ID),
        &layer,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::NotEmpty(_)), "{err}");
}

#[test]
fn plain_and_zstd_blobs() {
    let tmp = tempfile::tempdir().unwrap();
    let blob = tmp.path().join("blob");
    let tar = Tar::new().file("hello", b"hi").bytes();
    fs::write(&blob, &tar).unwrap();
    unpack_blob(
        &blob,
        "application/vnd.oci.image.layer.v1.tar",
        &kiln_oci::Digest::sha256(&tar),
        &tmp.path().join("plain"),
    )
    .unwrap();
    assert_eq!(fs::read(tmp.path().join("plain/hello")).unwrap(), b"hi");

    // zstd, whatever the media type says (the magic decides).
    let tar = Tar::new().file("hello", b"zstd").bytes();
    let mut z = Vec::new();
    kiln_oci::compress::compress(
        &tar[..],
        &mut z,
        kiln_oci::Compression::zstd(),
        Default::default(),
    )
    .unwrap();
    fs::write(&blob, &z).unwrap();
    unpack_blob(
        &blob,
        "application/vnd.oci.image.layer.v1.tar+zstd",
        &kiln_oci::Digest::sha256(&tar),
        &tmp.path().join("z"),
    )
    .unwrap();
    assert_eq!(fs::read(tmp.path().join("z/hello")).unwrap(), b"zstd");
    // A truncated zstd frame is an error and leaves nothing behind.
    fs::write(&blob, &z[..z.len() / 2]).unwrap();
    assert!(unpack_blob(
        &blob,
        "application/octet-stream",
        &kiln_oci::Digest::sha256(&tar),
        &tmp.path().join("z2")
    )
    .is_err());
    assert!(!tmp.path().join("z2").exists());
}

#[test]
fn unpack_refuses_escapes_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layer");
    let err = unpack(
        &mut Tar::new()
            .file("ok", b"")
            .raw("a/../../evil")
            .bytes()
            .as_slice(),
        &dir,
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");
    assert!(!tmp.path().join("evil").exists());
    assert_eq!(
        fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "nothing left behind"
    );

    // A path below a symlink would write outside the layer.
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let tar = Tar::new()
        .sym("esc", outside.to_str().unwrap())
        .file("esc/pwned", b"x");
    let err = unpack(&mut tar.bytes().as_slice(), &dir).unwrap_err();
    assert!(matches!(err, UnpackError::BadEntry { .. }), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // A hardlink target with `..` is refused too; absolute symlink targets are fine.
    let tar = Tar::new().sym("abs", "/etc/passwd").raw("x");
    unpack(&mut tar.bytes().as_slice(), &dir).unwrap();
    assert_eq!(
        fs::read_link(dir.join("abs")).unwrap(),
        Path::new("/etc/passwd")
    );
    let mut h = Tar::header(EntryType::Link, 0o644, 0, 0);
    h.set_path("hl").unwrap();
    h.as_old_mut().linkname[..9].copy_from_slice(b"../secret");
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, std::io::empty()).unwrap();
    let err = unpack(
        &mut b.into_inner().unwrap().as_slice(),
        &tmp.path().join("l2"),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Escape { .. }), "{err}");

    // An existing empty directory is fine (replaced by the rename).
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    unpack_tar(Tar::new().file("f", b"1"), &empty);
    assert_eq!(fs::read(empty.join("f")).unwrap(), b"1");
}

/// Three layers: a base, one with a whiteout, an opaque dir and a file
/// replacing a dir, and a top one deleting a file and adding more.
fn three_layers(root: &Path) -> LayerStack {
    let l0 = root.join("l0");
    let l1 = root.join("l1");
    let l2 = root.join("l2");
    unpack_tar(
        Tar::new()
            .dir("a/", 0o755)
            .file("a/keep.txt", b"keep")
            .file("a/gone.txt", b"gone")
            .dir("a/sub/", 0o750)
            .file("a/sub/x", b"x")
            .dir("o/", 0o755)
            .file("o/old1", b"")
            .file("o/old2", b"")
            .dir("d/", 0o755)
            .file("d/inner", b"")
            .dir("hl/", 0o755)
            .file_owned("hl/f1", 0o4755, 1000, b"linked")
            .hard("hl/f2", "hl/f1")
            .sym("ln", "a")
            .sym("abs", "/a/sub")
            .file("f.txt", b"f")
            .dir("t/", 0o1777),
        &l0,
    );
    unpack_tar(
        Tar::new()
            .dir("a/", 0o755)
            .file("a/.wh.gone.txt", b"")
            .dir("a/sub/", 0o750)
            .file("a/sub/y", b"y")
            .dir("o/", 0o700)
            .file("o/.wh..wh..opq", b"")
            .file("o/new1", b"new")
            .file("d", b"now a file")
            .file("top.txt", b"top"),
        &l1,
    );
    unpack_tar(
        Tar::new()
            .file(".wh.f.txt", b"")
            .dir("a/", 0o755)
            .file("a/new.txt", b"new")
            .file("x[1].txt", b"brackets"),
        &l2,
    );
    LayerStack::new(vec![l0, l1, l2])
}

#[test]
fn unpack_writes_overlay_format() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = three_layers(tmp.path());
    let l1 = &stack.layers()[1];
    let wh = fs::symlink_metadata(l1.join("a/gone.txt")).unwrap();
    assert!(is_whiteout(&wh));
    assert!(!l1.join("a/.wh.gone.txt").exists());
    assert_eq!(
        get_xattr(&l1.join("o"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(!l1.join("o/.wh..wh..opq").exists());
    let l0 = &stack.layers()[0];
    let f1 = fs::symlink_metadata(l0.join("hl/f1")).unwrap();
    let f2 = fs::symlink_metadata(l0.join("hl/f2")).unwrap();
    assert_eq!(f1.ino(), f2.ino());
    assert_eq!(f1.mode() & 0o7777, 0o4755);
    assert_eq!((f1.uid(), f1.gid()), (1000, 1000));
    assert_eq!(f1.mtime() as u64, MTIME);
    let a = fs::symlink_metadata(l0.join("a")).unwrap();
    assert_eq!(
        a.mtime() as u64,
        MTIME,
        "directory mtime set after its contents"
    );
    assert_eq!(
        fs::symlink_metadata(l0.join("t")).unwrap().mode() & 0o7777,
        0o1777
    );
    let l2 = &stack.layers()[2];
    assert!(is_whiteout(
        &fs::symlink_metadata(l2.join("f.txt")).unwrap()
    ));
}

#[test]
fn stack_entry_and_list() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = three_layers(tmp.path());
    let [l0, l1, l2] = [0, 1, 2].map(|i| stack.layers()[i].clone());

    assert_eq!(
        stack.list("").unwrap(),
        ["a", "abs", "d", "hl", "ln", "o", "t", "top.txt", "x[1].txt"]
    );
    assert_eq!(stack.list("/a/").unwrap(), ["keep.txt", "new.txt", "sub"]);
    assert_eq!(stack.list("a/sub").unwrap(), ["x", "y"]);
    assert_eq!(
        stack.list("o").unwrap(),
        ["new1"],
        "opaque hides lower entries"
    );
    assert_eq!(
        stack.list("ln").unwrap(),
        ["keep.txt", "new.txt", "sub"],
        "final symlink followed"
    );
    assert!(matches!(
        stack.list("nope"),
        Err(SourceError::NotFound { .. })
    ));
    assert!(matches!(stack.list("top.txt"), Err(SourceError::Io { .. })));

    let root = stack.entry("").unwrap().unwrap();
    assert_eq!(root.real, l2);
    assert!(root.metadata.is_dir());
    let a = stack.entry("a").unwrap().unwrap();
    assert_eq!(a.real, l2.join("a"), "top-most directory");
    let keep = stack.entry("a/keep.txt").unwrap().unwrap();
    assert_eq!(
        (keep.rel.as_str(), keep.real.clone()),
        ("a/keep.txt", l0.join("a/keep.txt"))
    );
    assert!(stack.entry("a/gone.txt").unwrap().is_none(), "whiteout");
    assert!(
        stack.entry("f.txt").unwrap().is_none(),
        "whiteout at the root"
    );
    assert!(
        stack.entry("o/old1").unwrap().is_none(),
        "under an opaque dir"
    );
    assert_eq!(
        stack.entry("o").unwrap().unwrap().metadata.mode() & 0o7777,
        0o700
    );
    let d = stack.entry("d").unwrap().unwrap();
    assert!(d.metadata.is_file());
    assert_eq!(d.real, l1.join("d"));
    assert!(stack.entry("d/inner").unwrap().is_none(), "below a file");
    assert!(stack.entry("top.txt/x").unwrap().is_none());
    let ln = stack.entry("ln").unwrap().unwrap();
    assert!(
        ln.metadata.file_type().is_symlink(),
        "final symlink not followed"
    );
    let through = stack.entry("ln/sub/y").unwrap().unwrap();
    assert_eq!(
        through.real,
        l1.join("a/sub/y"),
        "intermediate symlink followed"
    );
    let abs = stack.entry("abs/x").unwrap().unwrap();
    assert_eq!(
        abs.real,
        l0.join("a/sub/x"),
        "absolute target resolved in the root"
    );

    // Lower layers are empty or whiteouts-only where the stack says so.
    let lower = LayerStack::new(vec![l0.clone()]);
    assert!(lower.entry("a/gone.txt").unwrap().is_some());
    assert!(LayerStack::new(vec![]).entry("").unwrap().is_none());
}

#[test]
fn stack_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = three_layers(tmp.path());
    let r = |s: &str| stack.resolve(s).unwrap();
    assert_eq!(r("a/*.txt"), ["a/keep.txt", "a/new.txt"]);
    assert_eq!(
        r("/a/../../a/keep.txt"),
        ["a/keep.txt"],
        "`..` clamped at the root"
    );
    assert_eq!(r("../../../../top.txt"), ["top.txt"]);
    assert_eq!(r("./a/sub/[xy]"), ["a/sub/x", "a/sub/y"]);
    assert_eq!(r("a/sub/[^x]"), ["a/sub/y"]);
    assert_eq!(r("a/sub/?"), ["a/sub/x", "a/sub/y"]);
    assert_eq!(r("*/keep.txt"), ["a/keep.txt", "ln/keep.txt"]);
    assert_eq!(r("*/sub/*"), ["a/sub/x", "a/sub/y", "ln/sub/x", "ln/sub/y"]);
    assert_eq!(r("o/*"), ["o/new1"]);
    assert_eq!(r("a/gone*"), Vec::<String>::new(), "whiteouts never match");
    assert_eq!(r("nope*"), Vec::<String>::new());
    assert_eq!(r("nope/*"), Vec::<String>::new());
    assert_eq!(r("x\\[1\\].txt"), ["x[1].txt"], "escaped brackets");
    assert_eq!(r("x[1].txt"), Vec::<String>::new(), "[1] is a class");
    assert_eq!(r("ln/sub/x"), ["ln/sub/x"]);
    assert_eq!(r("/"), [""]);
    assert_eq!(r("."), [""]);
    assert_eq!(r("ln"), ["ln"]);

    for missing in ["a/nope", "/f.txt", "a/gone.txt", "o/old1", "d/inner"] {
        match stack.resolve(missing) {
            Err(SourceError::NotFound { path }) => assert_eq!(path, missing),
            other => panic!("{missing}: {other:?}"),
        }
    }
    assert!(matches!(stack.resolve("a/[x"), Err(SourceError::Io { .. })));
}

/// An upper directory made by hand with every kind of entry.
fn upper_dir(root: &Path) -> PathBuf {
    let up = root.join("upper");
    fs::create_dir(&up).unwrap();
    fs::create_dir_all(up.join("dir/deep")).unwrap();
    fs::write(up.join("dir/deep/file"), b"deep").unwrap();
    fs::write(up.join("suid"), b"#!/bin/sh\n").unwrap();
    std::os::unix::fs::lchown(up.join("suid"), Some(1000), Some(1001)).unwrap();
    fs::set_permissions(up.join("suid"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::create_dir(up.join("sticky")).unwrap();
    fs::set_permissions(up.join("sticky"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::write(up.join("h1"), b"shared").unwrap();
    fs::hard_link(up.join("h1"), up.join("dir/h2")).unwrap();
    fs::hard_link(up.join("h1"), up.join("h0")).unwrap();
    std::os::unix::fs::symlink("../some/where", up.join("dir/link")).unwrap();
    let long = "l".repeat(150);
    std::os::unix::fs::symlink(&long, up.join("longlink")).unwrap();
    fs::write(up.join(format!("dir/{}", "n".repeat(120))), b"long name").unwrap();
    mknod(&up.join("gone"), libc::S_IFCHR, 0);
    mknod(&up.join("dir/gone2"), libc::S_IFCHR, 0);
    mknod(&up.join("null"), libc::S_IFCHR | 0o666, libc::makedev(1, 3));
    mknod(&up.join("blk"), libc::S_IFBLK | 0o660, libc::makedev(7, 0));
    mknod(&up.join("fifo"), libc::S_IFIFO | 0o644, 0);
    fs::create_dir(up.join("opq")).unwrap();
    fs::write(up.join("opq/kept"), b"k").unwrap();
    set_xattr(&up.join("opq"), "trusted.overlay.opaque", b"y");
    fs::create_dir(up.join("uopq")).unwrap();
    set_xattr(&up.join("uopq"), "user.overlay.opaque", b"y");
    // Deterministic mtimes, directories last.
    for (i, (path, _)) in listing(&up).iter().rev().enumerate() {
        set_mtime(&up.join(path), 1_000_000 + i as i64 * 1000);
    }
    up
}

#[test]
fn diff_writes_oci_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let mut tar = Vec::new();
    diff(&up, &mut tar).unwrap();
    let members = tar_members(&tar);
    let paths: Vec<&str> = members.iter().map(|m| m.0.as_str()).collect();
    let long_name = format!("dir/{}", "n".repeat(120));
    let long_link = "l".repeat(150);
    assert_eq!(
        paths,
        [
            ".wh.gone",
            "blk",
            "dir/",
            "dir/.wh.gone2",
            "dir/deep/",
            "dir/deep/file",
            "dir/h2",
            "dir/link",
            long_name.as_str(),
            "fifo",
            "h0",
            "h1",
            "longlink",
            "null",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/kept",
            "sticky/",
            "suid",
            "uopq/",
            "uopq/.wh..wh..opq",
        ]
    );
    let by_path: HashMap<&str, _> = members.iter().map(|m| (m.0.as_str(), m)).collect();
    assert_eq!(by_path[".wh.gone"].1, '0');
    assert_eq!(by_path[".wh.gone"].2, 0);
    assert_eq!(by_path[".wh.gone"].5, 0);
    assert_eq!(by_path["opq/.wh..wh..opq"].1, '0');
    // Hardlinks point at the first path written (h0 sorts after dir/h2).
    assert_eq!(by_path["dir/h2"].1, '0');
    assert_eq!((by_path["h0"].1, by_path["h0"].6.as_str()), ('1', "dir/h2"));
    assert_eq!((by_path["h1"].1, by_path["h1"].6.as_str()), ('1', "dir/h2"));
    assert_eq!(
        (by_path["dir/link"].1, by_path["dir/link"].6.as_str()),
        ('2', "../some/where")
    );
    assert_eq!(by_path["longlink"].6, long_link);
    assert_eq!(
        (by_path["suid"].2, by_path["suid"].3, by_path["suid"].4),
        (0o4755, 1000, 1001)
    );
    assert_eq!(by_path["sticky/"].2, 0o1777);
    assert_eq!(by_path["null"].1, '3');
    assert_eq!(by_path["blk"].1, '4');
    assert_eq!(by_path["fifo"].1, '6');
    // No user/group names.
    let mut archive = tar::Archive::new(tar.as_slice());
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        assert_eq!(e.header().username_bytes().unwrap_or_default(), b"");
        assert_eq!(e.header().groupname_bytes().unwrap_or_default(), b"");
    }

    // Byte-identical when run again; an empty directory gives an empty tar.
    let mut again = Vec::new();
    diff(&up, &mut again).unwrap();
    assert!(tar == again, "diff is deterministic");
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    let mut out = Vec::new();
    diff(&empty, &mut out).unwrap();
    assert!(tar_members(&out).is_empty());
    assert!(out.iter().all(|&b| b == 0));
}

#[test]
fn diff_clamps_mtimes() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let mut tar = Vec::new();
    diff_with(
        &up,
        &mut tar,
        &DiffOptions {
            mtime_clamp: Some(1_005_000),
        },
    )
    .unwrap();
    let members = tar_members(&tar);
    assert!(members.iter().all(|m| m.5 <= 1_005_000));
    assert!(members.iter().any(|m| m.5 == 1_005_000));
    assert!(
        members.iter().any(|m| m.5 > 0 && m.5 < 1_005_000),
        "earlier mtimes kept"
    );
}

#[test]
fn diff_unpack_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let up = upper_dir(tmp.path());
    let mut tar = Vec::new();
    diff(&up, &mut tar).unwrap();
    let back = tmp.path().join("back");
    unpack(&mut tar.as_slice(), &back).unwrap();
    let (want, got) = (listing(&up), listing(&back));
    // `uopq` was marked with the user xattr; unpacking as root writes the trusted one.
    assert_eq!(want, got);
    assert_eq!(
        get_xattr(&back.join("uopq"), "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
    assert!(
        want["null"].starts_with("c 0666 0:0 103"),
        "{}",
        want["null"]
    );
    assert!(got["h1"].ends_with("=dir/h2") && got["h0"].ends_with("=dir/h2"));

    // Diffing the unpacked layer gives the same bytes.
    let mut again = Vec::new();
    diff(&back, &mut again).unwrap();
    assert!(tar == again, "diff(unpack(diff(x))) == diff(x)");

    // The stack layers round-trip too.
    let stack = three_layers(tmp.path());
    for (i, layer) in stack.layers().iter().enumerate() {
        let mut tar = Vec::new();
        diff(layer, &mut tar).unwrap();
        let copy = tmp.path().join(format!("copy{i}"));
        unpack(&mut tar.as_slice(), &copy).unwrap();
        assert_eq!(listing(layer), listing(&copy), "layer {i}");
    }
}

#[test]
fn materialize_merged_view() {
    let tmp = tempfile::tempdir().unwrap();
    let stack = three_layers(tmp.path());
    let dest = tmp.path().join("out");
    materialize(&stack, &dest).unwrap();
    let got = listing(&dest);
    let keys: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "a",
            "a/keep.txt",
            "a/new.txt",
            "a/sub",
            "a/sub/x",
            "a/sub/y",
            "abs",
            "d",
            "hl",
            "hl/f1",
            "hl/f2",
            "ln",
            "o",
            "o/new1",
            "t",
            "top.txt",
            "x[1].txt"
        ]
    );
    assert_eq!(
        got["hl/f1"],
        format!("f 4755 1000:1000 linked mtime={MTIME}")
    );
    assert_eq!(
        got["hl/f2"],
        format!("f 4755 1000:1000 linked mtime={MTIME} =hl/f1")
    );
    assert_eq!(got["o"], format!("d 0700 0:0 opaque=false mtime={MTIME}"));
    assert_eq!(
        got["a/sub"],
        format!("d 0750 0:0 opaque=false mtime={MTIME}")
    );
    assert_eq!(got["t"], format!("d 1777 0:0 opaque=false mtime={MTIME}"));
    assert_eq!(got["ln"], format!("l 0777 0:0 a mtime={MTIME}"));
    assert_eq!(got["d"], format!("f 0644 0:0 now a file mtime={MTIME}"));
    assert!(!got.values().any(|v| v == "whiteout"));

    // The materialized tree, as a one-layer stack, lists like the stack.
    let flat = LayerStack::new(vec![dest.clone()]);
    for dir in ["", "a", "a/sub", "o", "hl"] {
        assert_eq!(flat.list(dir).unwrap(), stack.list(dir).unwrap(), "{dir}");
    }
    let mut content = String::new();
    fs::File::open(dest.join("a/keep.txt"))
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "keep");
}

/// A finished layer directory goes into place, or, when another build put
/// the same layer there first, the one in place stays and ours goes; a
/// destination that is not a directory is an error (and ours goes too).
#[test]
fn commit_dir_keeps_the_layer_already_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let make = |name: &str, content: &str| {
        let dir = tmp.path().join(name);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("f"), content).unwrap();
        dir
    };
    let dest = tmp.path().join("layer");
    kiln_executor::commit_dir(&make("first", "first"), &dest).unwrap();
    kiln_executor::commit_dir(&make("second", "second"), &dest).unwrap();
    assert_eq!(fs::read_to_string(dest.join("f")).unwrap(), "first");
    assert!(!tmp.path().join("second").exists());

    let file = tmp.path().join("file");
    fs::write(&file, "").unwrap();
    let err = kiln_executor::commit_dir(&make("third", "third"), &file).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err}");
    assert!(!tmp.path().join("third").exists());
}
