//! Grafted copies: a COPY of a whole directory into an empty destination,
//! written into the layer tar straight from the source
//! (`apply_file_actions_grafting` + `diff_grafted`), gives the very tar
//! bytes that copying the files into the upper directory and packing it
//! (`apply_file_actions` + `diff`) gives.

use kiln_executor::{
    apply_file_actions, apply_file_actions_grafting, diff, diff_grafted, Chmod, CopyAction,
    DiffOptions, FileAction, LayerStack, Owner, Source,
};
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

fn set_mtime(path: &Path, secs: u64) {
    let f = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.set_modified(UNIX_EPOCH + Duration::from_secs(secs))
        .expect("set mtime");
}

fn file(path: &Path, data: &[u8], mode: u32, mtime: u64) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(path, data).expect("write");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    set_mtime(path, mtime);
}

fn dir(path: &Path, mode: u32, owner: (u32, u32), mtime: u64) {
    fs::create_dir_all(path).expect("mkdir");
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    std::os::unix::fs::lchown(path, Some(owner.0), Some(owner.1)).expect("chown");
    set_mtime(path, mtime);
}

/// A source tree with what a tar can get wrong: modes with setuid and
/// setgid bits, owners, names that sort differently as tar names (`a/`
/// after `a.txt`), a path over 100 bytes, symlinks (relative, absolute,
/// dangling, with a long target), a hardlinked pair, an empty directory,
/// a fifo, a name that is not UTF-8, and an empty file.
fn tricky_source(root: &Path) {
    dir(root, 0o755, (0, 0), 1_600_000_000);
    file(&root.join("a.txt"), b"a text\n", 0o644, 1_600_000_001);
    file(&root.join("a-b"), b"", 0o600, 1_600_000_002);
    file(
        &root.join("a/inner.sh"),
        b"#!/bin/sh\necho hi\n",
        0o4755,
        1_600_000_003,
    );
    std::os::unix::fs::lchown(root.join("a/inner.sh"), Some(1000), Some(1001)).expect("chown");
    // (chown cleared the setuid bit.)
    fs::set_permissions(root.join("a/inner.sh"), fs::Permissions::from_mode(0o4755))
        .expect("chmod");
    dir(&root.join("a"), 0o2775, (1000, 1001), 1_600_000_004);
    let long = "x".repeat(60);
    let deep = root.join(&long).join(&long);
    file(
        &deep.join("file-with-a-long-path.bin"),
        &[7u8; 70_000],
        0o640,
        1_600_000_005,
    );
    dir(&deep, 0o750, (0, 0), 1_600_000_006);
    dir(&root.join(&long), 0o755, (0, 0), 1_600_000_007);
    dir(&root.join("empty"), 0o700, (0, 0), 1_600_000_008);
    symlink("a.txt", root.join("link-rel")).expect("symlink");
    symlink("/etc/passwd", root.join("link-abs")).expect("symlink");
    symlink("nowhere/at/all", root.join("link-dangling")).expect("symlink");
    symlink("t".repeat(150), root.join("link-long")).expect("symlink");
    file(&root.join("h/one"), b"linked data", 0o644, 1_600_000_009);
    fs::hard_link(root.join("h/one"), root.join("h/two")).expect("hardlink");
    fs::hard_link(root.join("h/one"), root.join("hz")).expect("hardlink");
    dir(&root.join("h"), 0o755, (0, 0), 1_600_000_010);
    let fifo = root.join("fifo");
    let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).expect("path");
    // SAFETY: c is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    let latin1 = root.join(OsStr::from_bytes(b"caf\xe9.txt"));
    file(&latin1, b"not utf-8", 0o644, 1_600_000_011);
    set_mtime(root, 1_600_000_012);
}

/// A base layer, a source and two upper directories.
struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    src: PathBuf,
    root: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().join("base");
        let src = tmp.path().join("src");
        dir(&base, 0o755, (0, 0), 1_500_000_000);
        // An empty directory and a full one in the base image.
        dir(&base.join("app"), 0o711, (7, 8), 1_500_000_001);
        file(&base.join("full/old.txt"), b"old", 0o644, 1_500_000_002);
        tricky_source(&src);
        let root = tmp.path().to_path_buf();
        Fixture {
            _tmp: tmp,
            base,
            src,
            root,
        }
    }

    /// The layer tar both ways, and how many grafts the grafting way made.
    fn tars(&self, name: &str, actions: &[FileAction], context: bool) -> (Vec<u8>, Vec<u8>, bool) {
        // `COPY . /` grafts onto an empty root only.
        let base = if name == "root" {
            LayerStack::new(Vec::new())
        } else {
            LayerStack::new(vec![self.base.clone()])
        };
        let tree = LayerStack::new(vec![self.src.clone()]);
        let source = if context {
            Source::Context(&tree)
        } else {
            Source::Tree(&tree)
        };
        let sources = [source];
        let plain_upper = self.root.join(format!("{name}-plain"));
        let graft_upper = self.root.join(format!("{name}-graft"));
        fs::create_dir(&plain_upper).expect("mkdir");
        fs::create_dir(&graft_upper).expect("mkdir");
        apply_file_actions(&base, &plain_upper, actions, &sources).expect("copy");
        let grafts =
            apply_file_actions_grafting(&base, &graft_upper, actions, &sources).expect("graft");
        // Directories the copy creates get the time of the copy: the same
        // for both.
        for upper in [&plain_upper, &graft_upper] {
            for created in ["dst", "deep", "deep/er"] {
                if upper.join(created).is_dir() {
                    set_mtime(&upper.join(created), 1_700_000_000);
                }
            }
        }
        let mut plain = Vec::new();
        diff(&plain_upper, &mut plain).expect("diff");
        let mut grafted = Vec::new();
        diff_grafted(&graft_upper, &grafts, &mut grafted, &DiffOptions::default())
            .expect("diff_grafted");
        (plain, grafted, !grafts.is_empty())
    }
}

fn copy(source: &str, dest: &str) -> CopyAction {
    CopyAction {
        input: 0,
        sources: vec![source.to_string()],
        dest: dest.trim_end_matches('/').to_string(),
        dest_is_dir: dest.ends_with('/'),
        owner: None,
        chmod: None,
        unpack: false,
        excludes: Vec::new(),
        parents: false,
    }
}

fn entries(tar_bytes: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .expect("entries")
        .map(|e| {
            let e = e.expect("entry");
            let h = e.header();
            format!(
                "{} {:?} {:o} {}:{} {}",
                String::from_utf8_lossy(&e.path_bytes()),
                h.entry_type(),
                h.mode().expect("mode"),
                h.uid().expect("uid"),
                h.gid().expect("gid"),
                h.mtime().expect("mtime"),
            )
        })
        .collect()
}

#[test]
fn a_grafted_copy_is_byte_for_byte_the_copied_directorys_tar() {
    let f = Fixture::new();
    let chowned = CopyAction {
        owner: Some(Owner::Ids {
            uid: 1234,
            gid: 4321,
        }),
        ..copy("/", "/dst/")
    };
    let chmodded = CopyAction {
        chmod: Some(Chmod::Octal(0o640)),
        ..copy("/", "/dst/")
    };
    let symbolic = CopyAction {
        chmod: Some(Chmod::Symbolic("u+x,g-w".into())),
        ..copy("/", "/dst/")
    };
    let cases: Vec<(&str, Vec<FileAction>, bool)> = vec![
        ("root", vec![FileAction::Copy(copy(".", "/"))], true),
        ("fresh", vec![FileAction::Copy(copy(".", "/dst/"))], true),
        ("deep", vec![FileAction::Copy(copy("a", "/deep/er/"))], true),
        ("stage", vec![FileAction::Copy(copy(".", "/dst/"))], false),
        (
            "existing-empty",
            vec![FileAction::Copy(copy(".", "/app"))],
            true,
        ),
        ("chown", vec![FileAction::Copy(chowned)], true),
        ("chmod", vec![FileAction::Copy(chmodded)], true),
        ("chmod-symbolic", vec![FileAction::Copy(symbolic)], false),
        (
            "after-a-file",
            vec![
                FileAction::Mkfile {
                    path: "/etc/motd".into(),
                    data: b"hello".to_vec(),
                    mode: 0o644,
                    owner: None,
                },
                FileAction::Copy(copy(".", "/dst/")),
            ],
            true,
        ),
    ];
    for (name, actions, context) in cases {
        let (plain, grafted, did_graft) = f.tars(name, &actions, context);
        assert!(did_graft, "{name}: nothing was grafted");
        assert!(
            plain == grafted,
            "{name}: the tars differ\nplain:   {:?}\ngrafted: {:?}",
            entries(&plain),
            entries(&grafted)
        );
        let listed = entries(&grafted);
        assert!(
            name == "deep"
                || listed.iter().any(|l| l.contains("two Link")
                    || l.contains("hz Link")
                    || l.contains("one Link")),
            "{name}: no hardlink entry in {listed:?}"
        );
    }
}

#[test]
fn copies_that_cannot_be_grafted_are_written_out() {
    let f = Fixture::new();
    let excluded = CopyAction {
        excludes: vec!["*.txt".into()],
        ..copy(".", "/dst/")
    };
    let cases: Vec<(&str, Vec<FileAction>)> = vec![
        // The destination holds files already.
        ("non-empty", vec![FileAction::Copy(copy(".", "/full"))]),
        // A file is not a directory's subtree.
        ("file", vec![FileAction::Copy(copy("a.txt", "/dst/"))]),
        ("exclude", vec![FileAction::Copy(excluded)]),
        // Something is written after the copy.
        (
            "not-last",
            vec![
                FileAction::Copy(copy(".", "/dst/")),
                FileAction::Mkdir {
                    path: "/dst/a/later".into(),
                    mode: 0o755,
                    owner: None,
                    parents: true,
                },
            ],
        ),
    ];
    for (name, actions) in cases {
        let (plain, grafted, did_graft) = f.tars(name, &actions, true);
        assert!(!did_graft, "{name}: grafted");
        assert!(plain == grafted, "{name}: the tars differ");
    }
}
