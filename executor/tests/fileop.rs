//! COPY/ADD/WORKDIR/heredoc/removal semantics of `apply_file_actions`,
//! checked on the upper directory it writes (paths, types, modes, owners).

use kiln_executor::{
    apply_file_actions, Chmod, CopyAction, FileAction, FileOpError, LayerStack, Owner, Source,
    SourceEntry, SourceError, SourceTree,
};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A plain directory as a source tree (the build context in these tests):
/// `*` and `?` wildcards per component.
struct PlainTree(PathBuf);

fn wild(p: &[u8], s: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'*') => (0..=s.len()).any(|i| wild(&p[1..], &s[i..])),
        Some(b'?') => !s.is_empty() && wild(&p[1..], &s[1..]),
        Some(c) => s.first() == Some(c) && wild(&p[1..], &s[1..]),
    }
}

fn clean(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

impl PlainTree {
    fn path(&self, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.0.clone()
        } else {
            self.0.join(rel)
        }
    }
}

impl SourceTree for PlainTree {
    fn resolve(&self, source: &str) -> Result<Vec<String>, SourceError> {
        let comps = clean(source);
        if !comps.iter().any(|c| c.contains(['*', '?'])) {
            let rel = comps.join("/");
            return match self.entry(&rel)? {
                Some(_) => Ok(vec![rel]),
                None => Err(SourceError::NotFound {
                    path: source.to_string(),
                }),
            };
        }
        let mut current = vec![String::new()];
        for c in &comps {
            let mut next = Vec::new();
            for p in &current {
                if c.contains(['*', '?']) {
                    let Ok(names) = self.list(p) else { continue };
                    for n in names {
                        if wild(c.as_bytes(), n.as_bytes()) {
                            next.push(if p.is_empty() { n } else { format!("{p}/{n}") });
                        }
                    }
                } else {
                    next.push(if p.is_empty() {
                        c.clone()
                    } else {
                        format!("{p}/{c}")
                    });
                }
            }
            current = next;
        }
        current.retain(|p| self.path(p).symlink_metadata().is_ok());
        current.sort();
        Ok(current)
    }

    fn entry(&self, rel: &str) -> Result<Option<SourceEntry>, SourceError> {
        let real = self.path(rel);
        match fs::symlink_metadata(&real) {
            Ok(metadata) => Ok(Some(SourceEntry {
                rel: rel.to_string(),
                real,
                metadata,
            })),
            Err(_) => Ok(None),
        }
    }

    fn list(&self, rel: &str) -> Result<Vec<String>, SourceError> {
        let dir = self.path(rel);
        let mut names: Vec<String> = fs::read_dir(&dir)
            .map_err(|error| SourceError::Io {
                action: "listing",
                path: dir.clone(),
                error,
            })?
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }
}

fn write(path: &Path, data: &str, mode: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(path: &Path, mode: u32, uid: u32, gid: u32) {
    fs::create_dir_all(path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).unwrap();
}

/// A base layer, a context and an upper directory.
struct Fixture {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    ctx: PathBuf,
    upper: PathBuf,
    stage: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        let ctx = tmp.path().join("ctx");
        let upper = tmp.path().join("upper");
        let stage = tmp.path().join("stage");
        for d in [&base, &ctx, &upper, &stage] {
            mkdir(d, 0o755, 0, 0);
        }
        // The base: busybox-like.
        mkdir(&base.join("etc"), 0o755, 0, 0);
        write(
            &base.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
            0o644,
        );
        write(
            &base.join("etc/group"),
            "root:x:0:\napp:x:1001:\nnogroup:x:65534:\n",
            0o644,
        );
        mkdir(&base.join("home/app"), 0o750, 1000, 1001);
        mkdir(&base.join("tmp"), 0o1777, 0, 0);
        mkdir(&base.join("opt/real"), 0o711, 0, 0);
        write(&base.join("opt/real/old.txt"), "old\n", 0o600);
        symlink("real", base.join("opt/link")).unwrap();
        symlink("/opt/real", base.join("opt/abslink")).unwrap();
        symlink("real.txt", base.join("opt/dangling")).unwrap();
        write(&base.join("gone.txt"), "gone\n", 0o644);
        mkdir(&base.join("srv"), 0o700, 7, 8);
        // The context.
        write(&ctx.join("a.txt"), "a\n", 0o644);
        write(&ctx.join("b.txt"), "b\n", 0o644);
        write(&ctx.join("exec.sh"), "#!/bin/sh\n", 0o755);
        write(&ctx.join("dir/f.txt"), "f\n", 0o644);
        write(&ctx.join("dir/notes.md"), "md\n", 0o644);
        write(&ctx.join("dir/sub/g.txt"), "g\n", 0o644);
        write(&ctx.join("dir/sub/h.md"), "h\n", 0o644);
        symlink("f.txt", ctx.join("dir/f-link")).unwrap();
        symlink("/etc/passwd", ctx.join("dir/abs-link")).unwrap();
        symlink("a.txt", ctx.join("link.txt")).unwrap();
        symlink("dir", ctx.join("linkdir")).unwrap();
        write(&ctx.join("p/q/r.txt"), "r\n", 0o644);
        // A stage with owners and hardlinks.
        mkdir(&stage.join("out"), 0o755, 0, 0);
        write(&stage.join("out/result"), "built\n", 0o640);
        std::os::unix::fs::lchown(stage.join("out/result"), Some(1000), Some(1000)).unwrap();
        mkdir(&stage.join("out/sub"), 0o700, 5, 6);
        write(&stage.join("out/sub/s"), "s\n", 0o644);
        write(&stage.join("h/a"), "data\n", 0o644);
        fs::hard_link(stage.join("h/a"), stage.join("h/b")).unwrap();
        fs::hard_link(stage.join("h/a"), stage.join("h/c")).unwrap();
        Fixture {
            _tmp: tmp,
            base,
            ctx,
            upper,
            stage,
        }
    }

    /// Runs `actions` into a fresh upper directory; input 0 is the
    /// context, input 1 the stage (as a one-layer stack).
    fn run(&self, actions: &[FileAction]) -> Result<Vec<String>, FileOpError> {
        let _ = fs::remove_dir_all(&self.upper);
        fs::create_dir(&self.upper).unwrap();
        let base = LayerStack::new(vec![self.base.clone()]);
        let ctx = PlainTree(self.ctx.clone());
        let stage = LayerStack::new(vec![self.stage.clone()]);
        apply_file_actions(
            &base,
            &self.upper,
            actions,
            &[Source::Context(&ctx), Source::Tree(&stage)],
        )?;
        Ok(listing(&self.upper))
    }

    fn ok(&self, actions: &[FileAction]) -> Vec<String> {
        self.run(actions).unwrap()
    }
}

/// `path type mode uid:gid [content|link]`, sorted.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let path = e.path();
        let md = fs::symlink_metadata(&path).unwrap();
        let rel = format!("/{}", path.strip_prefix(root).unwrap().display());
        let ft = md.file_type();
        let (t, extra) = if ft.is_dir() {
            ("d", String::new())
        } else if ft.is_symlink() {
            (
                "l",
                format!(" -> {}", fs::read_link(&path).unwrap().display()),
            )
        } else if ft.is_char_device() {
            ("c", format!(" {}", md.rdev()))
        } else {
            let data = fs::read(&path).unwrap();
            let text = match String::from_utf8(data.clone()) {
                Ok(s) if !s.contains('\0') => s.trim_end().to_string(),
                _ => format!("<{} bytes>", data.len()),
            };
            let links = if md.nlink() > 1 {
                format!(" nlink={}", md.nlink())
            } else {
                String::new()
            };
            ("f", format!(" {text:?}{links}"))
        };
        let mode = if ft.is_symlink() {
            0o777
        } else {
            md.mode() & 0o7777
        };
        out.push(format!(
            "{rel} {t} {mode:04o} {}:{}{extra}",
            md.uid(),
            md.gid()
        ));
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

fn copy(sources: &[&str], dest: &str) -> CopyAction {
    let dest_is_dir = dest.ends_with('/');
    let dest = if dest == "/" {
        "/".to_string()
    } else {
        dest.trim_end_matches('/').to_string()
    };
    CopyAction {
        input: 0,
        sources: sources.iter().map(|s| s.to_string()).collect(),
        dest,
        dest_is_dir,
        owner: None,
        chmod: None,
        unpack: false,
        excludes: Vec::new(),
        parents: false,
    }
}

fn names(user: &str, group: Option<&str>) -> Option<Owner> {
    Some(Owner::Names {
        user: user.to_string(),
        group: group.map(str::to_string),
    })
}

fn lines(expected: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn file_destination_rules() {
    let f = Fixture::new();
    let c = |s: &[&str], d: &str| FileAction::Copy(copy(s, d));
    assert_eq!(
        f.ok(&[c(&["a.txt"], "/a.txt")]),
        lines(&["/a.txt f 0644 0:0 \"a\""])
    );
    assert_eq!(
        f.ok(&[c(&["a.txt"], "/dir2/sub/")]),
        lines(&[
            "/dir2 d 0755 0:0",
            "/dir2/sub d 0755 0:0",
            "/dir2/sub/a.txt f 0644 0:0 \"a\"",
        ])
    );
    // An existing directory without a trailing slash: the file goes inside,
    // the directory is copied up with its metadata.
    assert_eq!(
        f.ok(&[c(&["exec.sh"], "/srv")]),
        lines(&["/srv d 0700 7:8", "/srv/exec.sh f 0755 0:0 \"#!/bin/sh\""])
    );
    // Two sources without a trailing slash: the last one wins.
    assert_eq!(
        f.ok(&[c(&["a.txt", "b.txt"], "/dest")]),
        lines(&["/dest f 0644 0:0 \"b\""])
    );
    // Wildcards into a directory; a wildcard matching nothing is fine.
    assert_eq!(
        f.ok(&[c(&["*.txt", "nomatch*"], "/txt/")]),
        lines(&[
            "/txt d 0755 0:0",
            "/txt/a.txt f 0644 0:0 \"a\"",
            "/txt/b.txt f 0644 0:0 \"b\"",
            "/txt/link.txt f 0644 0:0 \"a\"",
        ])
    );
    assert_eq!(f.ok(&[c(&["nomatch*"], "/none/")]), Vec::<String>::new());
    // Replacing a base file.
    assert_eq!(
        f.ok(&[c(&["a.txt"], "/etc/passwd")]),
        lines(&["/etc d 0755 0:0", "/etc/passwd f 0644 0:0 \"a\""])
    );
}

#[test]
fn missing_source_is_an_error_naming_it() {
    let f = Fixture::new();
    let err = f
        .run(&[FileAction::Copy(copy(&["nope.txt"], "/x"))])
        .unwrap_err();
    assert_eq!(err.to_string(), "\"/nope.txt\": not found");
    let err = f
        .run(&[FileAction::Copy(copy(&["./sub/../nope.txt"], "/x"))])
        .unwrap_err();
    assert!(matches!(err, FileOpError::NotFound { .. }));
    assert_eq!(err.to_string(), "\"/nope.txt\": not found");
}

#[test]
fn directory_copies_its_contents_and_keeps_inner_symlinks() {
    let f = Fixture::new();
    let dir_lines = |d: &str| {
        lines(&[
            &format!("{d} d 0755 0:0"),
            &format!("{d}/abs-link l 0777 0:0 -> /etc/passwd"),
            &format!("{d}/f-link l 0777 0:0 -> f.txt"),
            &format!("{d}/f.txt f 0644 0:0 \"f\""),
            &format!("{d}/notes.md f 0644 0:0 \"md\""),
            &format!("{d}/sub d 0755 0:0"),
            &format!("{d}/sub/g.txt f 0644 0:0 \"g\""),
            &format!("{d}/sub/h.md f 0644 0:0 \"h\""),
        ])
    };
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["dir"], "/dst"))]),
        dir_lines("/dst")
    );
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["dir/"], "/dst/"))]),
        dir_lines("/dst")
    );
    // A symlink to a directory named as the source is followed.
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["linkdir"], "/dst"))]),
        dir_lines("/dst")
    );
    // A symlinked file named as the source: its content, under its name.
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["link.txt"], "/s/"))]),
        lines(&["/s d 0755 0:0", "/s/link.txt f 0644 0:0 \"a\""])
    );
    // Merging into an existing directory: copied up with its metadata.
    let mut got = f.ok(&[FileAction::Copy(copy(&["dir/sub"], "/opt/real"))]);
    got.sort();
    assert_eq!(
        got,
        lines(&[
            "/opt d 0755 0:0",
            "/opt/real d 0711 0:0",
            "/opt/real/g.txt f 0644 0:0 \"g\"",
            "/opt/real/h.md f 0644 0:0 \"h\"",
        ])
    );
    // A source directory over an existing one takes its metadata.
    let mut a = copy(&["dir"], "/x");
    a.sources = vec!["dir".into()];
    let got = f.ok(&[
        FileAction::Mkdir {
            path: "/x/sub".into(),
            mode: 0o700,
            owner: Some(Owner::Ids { uid: 3, gid: 3 }),
            parents: true,
        },
        FileAction::Copy(a),
    ]);
    assert!(got.contains(&"/x d 0700 3:3".to_string()), "{got:#?}");
    assert!(got.contains(&"/x/sub d 0755 0:0".to_string()), "{got:#?}");
}

#[test]
fn chown_by_name_number_and_unknown() {
    let f = Fixture::new();
    let run = |owner: Option<Owner>, dest: &str| {
        let mut a = copy(&["a.txt"], dest);
        a.owner = owner;
        f.ok(&[FileAction::Copy(a)])
    };
    assert_eq!(
        run(names("app", Some("app")), "/o/x"),
        lines(&["/o d 0755 1000:1001", "/o/x f 0644 1000:1001 \"a\""])
    );
    assert_eq!(
        run(names("app", None), "/x"),
        lines(&["/x f 0644 1000:1001 \"a\""])
    );
    assert_eq!(
        run(names("nobody", Some("nogroup")), "/x"),
        lines(&["/x f 0644 65534:65534 \"a\""])
    );
    assert_eq!(
        run(names("app", Some("root")), "/x"),
        lines(&["/x f 0644 1000:0 \"a\""])
    );
    assert_eq!(
        run(names("1234", None), "/x"),
        lines(&["/x f 0644 1234:1234 \"a\""])
    );
    assert_eq!(
        run(names("1000", Some("nogroup")), "/x"),
        lines(&["/x f 0644 1000:65534 \"a\""])
    );
    assert_eq!(
        run(names("nosuchuser", None), "/x"),
        lines(&["/x f 0644 0:0 \"a\""])
    );
    assert_eq!(
        run(names("nosuch", Some("nosuch")), "/x"),
        lines(&["/x f 0644 0:0 \"a\""])
    );
    assert_eq!(
        run(
            Some(Owner::Ids {
                uid: 4242,
                gid: 4343
            }),
            "/x"
        ),
        lines(&["/x f 0644 4242:4343 \"a\""])
    );
    // Existing parents keep their owner, created ones get the chown owner.
    assert_eq!(
        run(names("app", Some("app")), "/home/app/new/a.txt"),
        lines(&[
            "/home d 0755 0:0",
            "/home/app d 0750 1000:1001",
            "/home/app/new d 0755 1000:1001",
            "/home/app/new/a.txt f 0644 1000:1001 \"a\"",
        ])
    );
    // A directory source with --chown: everything, the created dest too.
    let mut a = copy(&["dir/sub"], "/o/dir");
    a.owner = names("app", None);
    assert_eq!(
        f.ok(&[FileAction::Copy(a)]),
        lines(&[
            "/o d 0755 1000:1001",
            "/o/dir d 0755 1000:1001",
            "/o/dir/g.txt f 0644 1000:1001 \"g\"",
            "/o/dir/h.md f 0644 1000:1001 \"h\"",
        ])
    );
}

#[test]
fn chown_reads_passwd_written_earlier_in_the_same_layer() {
    let f = Fixture::new();
    let mut a = copy(&["a.txt"], "/x");
    a.owner = names("new", None);
    let got = f.ok(&[
        FileAction::Mkfile {
            path: "/etc/passwd".into(),
            data: b"new:x:77:88::/:/bin/sh\n".to_vec(),
            mode: 0o644,
            owner: None,
        },
        FileAction::Copy(a),
    ]);
    assert!(
        got.contains(&"/x f 0644 77:88 \"a\"".to_string()),
        "{got:#?}"
    );
}

#[test]
fn chmod_applies_to_files_and_subdirectories_not_the_created_dest() {
    let f = Fixture::new();
    let mut a = copy(&["dir/sub"], "/m/dir");
    a.chmod = Some(Chmod::Octal(0o700));
    let mut b = copy(&["a.txt"], "/m/suid");
    b.chmod = Some(Chmod::Octal(0o4755));
    let mut c = copy(&["dir"], "/sym");
    c.chmod = Some(Chmod::Symbolic("go-r,a+X".into()));
    c.excludes = vec!["*.md".into(), "**/*.md".into(), "*link".into()];
    let got = f.ok(&[
        FileAction::Copy(a),
        FileAction::Copy(b),
        FileAction::Copy(c),
    ]);
    assert_eq!(
        got,
        lines(&[
            "/m d 0755 0:0",
            "/m/dir d 0755 0:0",
            "/m/dir/g.txt f 0700 0:0 \"g\"",
            "/m/dir/h.md f 0700 0:0 \"h\"",
            "/m/suid f 4755 0:0 \"a\"",
            "/sym d 0755 0:0",
            "/sym/f.txt f 0600 0:0 \"f\"",
            "/sym/sub d 0711 0:0",
            "/sym/sub/g.txt f 0600 0:0 \"g\"",
        ])
    );
    let mut d = copy(&["a.txt"], "/x");
    d.chmod = Some(Chmod::Symbolic("u+q".into()));
    assert!(matches!(
        f.run(&[FileAction::Copy(d)]),
        Err(FileOpError::Invalid { .. })
    ));
}

#[test]
fn stage_sources_keep_owners_and_hardlinks() {
    let f = Fixture::new();
    let mut a = copy(&["/out"], "/app");
    a.input = 1;
    let mut b = copy(&["/out/result"], "/single");
    b.input = 1;
    let mut h = copy(&["/h"], "/h");
    h.input = 1;
    let mut hb = copy(&["/h/b"], "/single-b");
    hb.input = 1;
    assert_eq!(
        f.ok(&[
            FileAction::Copy(a),
            FileAction::Copy(b),
            FileAction::Copy(h),
            FileAction::Copy(hb)
        ]),
        lines(&[
            "/app d 0755 0:0",
            "/app/result f 0640 1000:1000 \"built\"",
            "/app/sub d 0700 5:6",
            "/app/sub/s f 0644 0:0 \"s\"",
            "/h d 0755 0:0",
            "/h/a f 0644 0:0 \"data\" nlink=3",
            "/h/b f 0644 0:0 \"data\" nlink=3",
            "/h/c f 0644 0:0 \"data\" nlink=3",
            "/single f 0640 1000:1000 \"built\"",
            "/single-b f 0644 0:0 \"data\"",
        ])
    );
    let a = fs::metadata(f.upper.join("h/a")).unwrap();
    let c = fs::metadata(f.upper.join("h/c")).unwrap();
    assert_eq!(a.ino(), c.ino());
    // --chown on a stage source replaces every owner.
    let mut o = copy(&["/out"], "/chowned");
    o.input = 1;
    o.owner = Some(Owner::Ids {
        uid: 1234,
        gid: 1234,
    });
    assert_eq!(
        f.ok(&[FileAction::Copy(o)]),
        lines(&[
            "/chowned d 0755 1234:1234",
            "/chowned/result f 0640 1234:1234 \"built\"",
            "/chowned/sub d 0700 1234:1234",
            "/chowned/sub/s f 0644 1234:1234 \"s\"",
        ])
    );
}

#[test]
fn destination_through_symlinks() {
    let f = Fixture::new();
    let expected = lines(&[
        "/opt d 0755 0:0",
        "/opt/real d 0711 0:0",
        "/opt/real/a.txt f 0644 0:0 \"a\"",
    ]);
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["a.txt"], "/opt/link/"))]),
        expected
    );
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["a.txt"], "/opt/abslink"))]),
        expected
    );
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["a.txt"], "/opt/link/sub/../"))]),
        expected
    );
    // A dangling symlink: its target is created.
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["a.txt"], "/opt/dangling"))]),
        lines(&["/opt d 0755 0:0", "/opt/real.txt f 0644 0:0 \"a\""])
    );
}

#[test]
fn exclude_and_parents() {
    let f = Fixture::new();
    let mut a = copy(&["dir"], "/d");
    a.excludes = vec!["*.md".into(), "sub/g.txt".into(), "*-link".into()];
    assert_eq!(
        f.ok(&[FileAction::Copy(a)]),
        lines(&[
            "/d d 0755 0:0",
            "/d/f.txt f 0644 0:0 \"f\"",
            "/d/sub d 0755 0:0",
            "/d/sub/h.md f 0644 0:0 \"h\"",
        ])
    );
    let mut e = copy(&["*.txt"], "/e/");
    e.excludes = vec!["b.txt".into(), "link*".into()];
    assert_eq!(
        f.ok(&[FileAction::Copy(e)]),
        lines(&["/e d 0755 0:0", "/e/a.txt f 0644 0:0 \"a\""])
    );
    let mut p = copy(&["p/q/r.txt", "dir/sub"], "/d/");
    p.parents = true;
    assert_eq!(
        f.ok(&[FileAction::Copy(p)]),
        lines(&[
            "/d d 0755 0:0",
            "/d/dir d 0755 0:0",
            "/d/dir/sub d 0755 0:0",
            "/d/dir/sub/g.txt f 0644 0:0 \"g\"",
            "/d/dir/sub/h.md f 0644 0:0 \"h\"",
            "/d/p d 0755 0:0",
            "/d/p/q d 0755 0:0",
            "/d/p/q/r.txt f 0644 0:0 \"r\"",
        ])
    );
    let mut pivot = copy(&["p/./q/*.txt"], "/v/");
    pivot.parents = true;
    assert_eq!(
        f.ok(&[FileAction::Copy(pivot)]),
        lines(&[
            "/v d 0755 0:0",
            "/v/q d 0755 0:0",
            "/v/q/r.txt f 0644 0:0 \"r\""
        ])
    );
}

/// `--exclude` follows BuildKit (fsutil's copy with moby/patternmatcher's
/// `MatchesUsingParentResults`), where kiln's own matcher differed.
#[test]
fn exclude_follows_buildkit_patternmatcher() {
    let f = Fixture::new();
    let run = |patterns: &[&str]| {
        let mut a = copy(&["dir"], "/d");
        a.excludes = patterns.iter().map(|p| p.to_string()).collect();
        f.ok(&[FileAction::Copy(a)])
    };
    let has = |got: &[String], path: &str| got.iter().any(|l| l.starts_with(&format!("{path} ")));
    // `**` inside a component: patternmatcher's "ends with" fast path, at
    // any depth (it was a one-component `*.md`).
    let got = run(&["**.md"]);
    assert!(
        !has(&got, "/d/notes.md") && !has(&got, "/d/sub/h.md"),
        "{got:#?}"
    );
    assert!(
        has(&got, "/d/f.txt") && has(&got, "/d/sub/g.txt"),
        "{got:#?}"
    );
    // An excluded directory is walked when there are exceptions, but
    // created only for something below it that is copied.
    let got = run(&["sub", "!sub/g.txt"]);
    assert!(got.contains(&"/d/sub d 0755 0:0".to_string()), "{got:#?}");
    assert!(
        has(&got, "/d/sub/g.txt") && !has(&got, "/d/sub/h.md"),
        "{got:#?}"
    );
    let got = run(&["sub", "!nothing"]);
    assert!(!has(&got, "/d/sub") && has(&got, "/d/f.txt"), "{got:#?}");
    // A pattern not tried on a directory (it was excluded already) is not
    // passed on to its children: `a`, `!a/b`, `a` re-includes `a/b`.
    let got = run(&["sub", "!sub/h.md", "sub"]);
    assert!(
        has(&got, "/d/sub/h.md") && !has(&got, "/d/sub/g.txt"),
        "{got:#?}"
    );
    // patternmatcher keeps a leading `/`, so it matches nothing below the
    // source.
    assert!(has(&run(&["/f.txt"]), "/d/f.txt"));
    // A malformed pattern fails the copy ("invalid excludepatterns").
    for bad in ["[", "[]a]"] {
        let mut a = copy(&["dir"], "/d");
        a.excludes = vec![bad.to_string()];
        assert!(
            matches!(
                f.run(&[FileAction::Copy(a)]),
                Err(FileOpError::Invalid { .. })
            ),
            "{bad}"
        );
    }
}

/// A tar with a directory, a setuid file owned by 1:2, a symlink, a
/// hardlink, a sticky directory and a `./` root entry.
fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add =
        |path: &str, kind: tar::EntryType, mode: u32, uid: u64, link: Option<&str>, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(mode);
            h.set_uid(uid);
            h.set_gid(uid + 1);
            h.set_mtime(1_000_000);
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            b.append_data(&mut h, path, data).unwrap();
        };
    add("./", tar::EntryType::Directory, 0o700, 0, None, b"");
    add("d/", tar::EntryType::Directory, 0o750, 3, None, b"");
    add("d/run", tar::EntryType::Regular, 0o4755, 1, None, b"run\n");
    add(
        "d/link",
        tar::EntryType::Symlink,
        0o777,
        0,
        Some("run"),
        b"",
    );
    add("d/hard", tar::EntryType::Link, 0o644, 0, Some("d/run"), b"");
    add("t/", tar::EntryType::Directory, 0o1777, 0, None, b"");
    add(
        "deep/er/x.txt",
        tar::EntryType::Regular,
        0o600,
        0,
        None,
        b"x\n",
    );
    b.into_inner().unwrap()
}

fn tar_lines(d: &str) -> Vec<String> {
    lines(&[
        &format!("{d}/d d 0750 3:4"),
        &format!("{d}/d/hard f 4755 1:2 \"run\" nlink=2"),
        &format!("{d}/d/link l 0777 0:1 -> run"),
        &format!("{d}/d/run f 4755 1:2 \"run\" nlink=2"),
        &format!("{d}/deep d 0755 0:0"),
        &format!("{d}/deep/er d 0755 0:0"),
        &format!("{d}/deep/er/x.txt f 0600 0:1 \"x\""),
        &format!("{d}/t d 1777 0:1"),
    ])
}

fn add(src: &str, dest: &str) -> FileAction {
    let mut a = copy(&[src], dest);
    a.unpack = true;
    FileAction::Copy(a)
}

#[test]
fn add_extracts_archives_by_content() {
    let f = Fixture::new();
    let raw = tar_bytes();
    fs::write(f.ctx.join("plain.tar"), &raw).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    fs::write(f.ctx.join("realtar.bin"), gz.finish().unwrap()).unwrap();
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    bz.write_all(&raw).unwrap();
    fs::write(f.ctx.join("a.tar.bz2"), bz.finish().unwrap()).unwrap();
    let mut xz = xz2::write::XzEncoder::new(Vec::new(), 6);
    xz.write_all(&raw).unwrap();
    fs::write(f.ctx.join("a.tar.xz"), xz.finish().unwrap()).unwrap();

    for (src, dest) in [
        ("plain.tar", "/x/"),
        ("realtar.bin", "/x/"),
        ("a.tar.bz2", "/x"),
        ("a.tar.xz", "/x/"),
    ] {
        let mut want = tar_lines("/x");
        want.push("/x d 0755 0:0".into());
        want.sort();
        assert_eq!(f.ok(&[add(src, dest)]), want, "{src}");
    }
    // --chown changes only the directory ADD creates.
    let mut a = copy(&["realtar.bin"], "/y");
    a.unpack = true;
    a.owner = names("app", None);
    let mut want = tar_lines("/y");
    want.push("/y d 0755 1000:1001".into());
    want.sort();
    assert_eq!(f.ok(&[FileAction::Copy(a)]), want);
    // Into an existing directory: it is copied up, its metadata kept, the
    // archive's root entry (`./`) ignored.
    let mut want = tar_lines("/srv");
    want.push("/srv d 0700 7:8".into());
    want.sort();
    assert_eq!(f.ok(&[add("plain.tar", "/srv/")]), want);
    // The same without unpack is a plain copy.
    assert_eq!(
        f.ok(&[FileAction::Copy(copy(&["plain.tar"], "/z/"))]),
        lines(&[
            "/z d 0755 0:0",
            &format!("/z/plain.tar f 0644 0:0 \"<{} bytes>\"", raw.len())
        ])
    );
}

#[test]
fn add_copies_non_archives_as_they_are() {
    let f = Fixture::new();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"just some text, not a tar\n").unwrap();
    let gz = gz.finish().unwrap();
    fs::write(f.ctx.join("text.gz"), &gz).unwrap();
    write(&f.ctx.join("fake.tar.gz"), "not really a tarball\n", 0o644);
    let got = f.ok(&[
        add("text.gz", "/n/"),
        add("fake.tar.gz", "/n/"),
        add("a.txt", "/n/"),
        add("dir/sub", "/n/sub/"),
    ]);
    assert_eq!(
        got,
        lines(&[
            "/n d 0755 0:0",
            "/n/a.txt f 0644 0:0 \"a\"",
            "/n/fake.tar.gz f 0644 0:0 \"not really a tarball\"",
            "/n/sub d 0755 0:0",
            "/n/sub/g.txt f 0644 0:0 \"g\"",
            "/n/sub/h.md f 0644 0:0 \"h\"",
            &format!("/n/text.gz f 0644 0:0 \"<{} bytes>\"", gz.len()),
        ])
    );
    assert_eq!(fs::read(f.upper.join("n/text.gz")).unwrap(), gz);
}

#[test]
fn archive_entries_cannot_escape() {
    let f = Fixture::new();
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    // `append_data` refuses `..`; write the name into the header directly.
    h.as_old_mut().name[..12].copy_from_slice(b"../../escape");
    h.set_cksum();
    b.append(&h, &b"x\n"[..]).unwrap();
    fs::write(f.ctx.join("evil.tar"), b.into_inner().unwrap()).unwrap();
    let err = f.run(&[add("evil.tar", "/x/")]).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn mkdir_p_with_owner_and_existing_dirs() {
    let f = Fixture::new();
    let mk = |path: &str, owner: Option<Owner>| FileAction::Mkdir {
        path: path.into(),
        mode: 0o755,
        owner,
        parents: true,
    };
    assert_eq!(f.ok(&[mk("/a", None)]), lines(&["/a d 0755 0:0"]));
    // An existing directory: nothing changes.
    assert_eq!(f.ok(&[mk("/tmp", None)]), Vec::<String>::new());
    assert_eq!(f.ok(&[mk("/opt/link", None)]), Vec::<String>::new());
    // Below existing ones: they are copied up with their metadata.
    assert_eq!(
        f.ok(&[mk("/home/app/w/x", names("app", None))]),
        lines(&[
            "/home d 0755 0:0",
            "/home/app d 0750 1000:1001",
            "/home/app/w d 0755 1000:1001",
            "/home/app/w/x d 0755 1000:1001",
        ])
    );
    assert_eq!(
        f.ok(&[mk("/x/y", names("1234", None)), mk("/x/y/z", None)]),
        lines(&[
            "/x d 0755 1234:1234",
            "/x/y d 0755 1234:1234",
            "/x/y/z d 0755 0:0"
        ])
    );
    // Without parents, a missing parent is an error.
    let err = f
        .run(&[FileAction::Mkdir {
            path: "/no/such".into(),
            mode: 0o755,
            owner: None,
            parents: false,
        }])
        .unwrap_err();
    assert!(err.to_string().contains("/no/such"), "{err}");
    // Through a file: an error naming it.
    let err = f.run(&[mk("/gone.txt/sub", None)]).unwrap_err();
    assert!(err.to_string().contains("/gone.txt"), "{err}");
}

#[test]
fn mkfile_creates_parents() {
    let f = Fixture::new();
    assert_eq!(
        f.ok(&[FileAction::Mkfile {
            path: "/usr/local/bin/tool".into(),
            data: b"#!/bin/sh\necho tool-ran\n".to_vec(),
            mode: 0o755,
            owner: None,
        }]),
        lines(&[
            "/usr d 0755 0:0",
            "/usr/local d 0755 0:0",
            "/usr/local/bin d 0755 0:0",
            "/usr/local/bin/tool f 0755 0:0 \"#!/bin/sh\\necho tool-ran\"",
        ])
    );
}

#[test]
fn rm_whiteouts() {
    let f = Fixture::new();
    let rm = |p: &str, ok: bool| FileAction::Rm {
        path: p.into(),
        allow_not_found: ok,
    };
    assert_eq!(
        f.ok(&[rm("/gone.txt", false)]),
        lines(&["/gone.txt c 0000 0:0 0"])
    );
    assert_eq!(
        f.ok(&[rm("/opt/real", false)]),
        lines(&["/opt d 0755 0:0", "/opt/real c 0000 0:0 0"])
    );
    // Through a symlinked parent; the final symlink itself is removed.
    assert_eq!(
        f.ok(&[rm("/opt/link/old.txt", false), rm("/opt/dangling", false)]),
        lines(&[
            "/opt d 0755 0:0",
            "/opt/dangling c 0000 0:0 0",
            "/opt/real d 0711 0:0",
            "/opt/real/old.txt c 0000 0:0 0",
        ])
    );
    // Written in this layer only: simply gone.
    let mkfile = FileAction::Mkfile {
        path: "/new.txt".into(),
        data: b"n".to_vec(),
        mode: 0o644,
        owner: None,
    };
    assert_eq!(f.ok(&[mkfile, rm("/new.txt", false)]), Vec::<String>::new());
    // Absent.
    assert_eq!(f.ok(&[rm("/nothing", true)]), Vec::<String>::new());
    let err = f.run(&[rm("/nothing", false)]).unwrap_err();
    assert_eq!(err.to_string(), "\"/nothing\": not found");
    // Removed, then created again as a directory: opaque, so the old
    // contents stay hidden.
    let got = f.ok(&[
        rm("/opt/real", false),
        FileAction::Mkdir {
            path: "/opt/real".into(),
            mode: 0o755,
            owner: None,
            parents: true,
        },
    ]);
    assert_eq!(got, lines(&["/opt d 0755 0:0", "/opt/real d 0755 0:0"]));
    let stack = LayerStack::new(vec![f.base.clone(), f.upper.clone()]);
    assert_eq!(stack.list("opt/real").unwrap(), Vec::<String>::new());
}

#[test]
fn type_changes_hide_the_lower_entry() {
    let f = Fixture::new();
    // COPY of a directory onto a file fails, as in BuildKit (mkdir).
    let err = f
        .run(&[FileAction::Copy(copy(&["dir/sub"], "/gone.txt"))])
        .unwrap_err();
    assert!(err.to_string().contains("/gone.txt"), "{err}");
    // An archive replaces: a directory over a base file, a file over a
    // base directory.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, "gone.txt/", &b""[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(2);
    b.append_data(&mut h, "opt/real", &b"r\n"[..]).unwrap();
    fs::write(f.ctx.join("swap.tar"), b.into_inner().unwrap()).unwrap();
    assert_eq!(
        f.ok(&[add("swap.tar", "/")]),
        lines(&[
            "/gone.txt d 0755 0:0",
            "/opt d 0755 0:0",
            "/opt/real f 0644 0:0 \"r\""
        ])
    );
    let stack = LayerStack::new(vec![f.base.clone(), f.upper.clone()]);
    assert_eq!(stack.list("gone.txt").unwrap(), Vec::<String>::new());
    assert!(stack.entry("opt/real/old.txt").unwrap().is_none());
    // A file onto an existing directory goes inside it; the directory
    // merges with the lower one.
    let got = f.ok(&[FileAction::Copy(copy(&["a.txt"], "/opt/real"))]);
    assert!(
        got.contains(&"/opt/real/a.txt f 0644 0:0 \"a\"".to_string()),
        "{got:#?}"
    );
    let stack = LayerStack::new(vec![f.base.clone(), f.upper.clone()]);
    assert_eq!(
        stack.list("opt/real").unwrap(),
        vec!["a.txt".to_string(), "old.txt".to_string()]
    );
}

// ---------------------------------------------------------------------
// The conformance goldens: each COPY/ADD/WORKDIR layer of some cases,
// translated by hand into file actions, must list exactly as BuildKit's
// layer in expected/layers.txt.

fn conformance_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/cases");
    dir.is_dir().then_some(dir)
}

/// Copies a case's context, normalised as the harness does (files 0755
/// when owner-executable else 0644, directories 0755, symlinks kept).
fn normalised_copy(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::set_permissions(to, fs::Permissions::from_mode(0o755)).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let src = e.path();
        let dst = to.join(e.file_name());
        let md = fs::symlink_metadata(&src).unwrap();
        if md.file_type().is_symlink() {
            symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if md.is_dir() {
            normalised_copy(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
            let mode = if md.mode() & 0o100 != 0 { 0o755 } else { 0o644 };
            fs::set_permissions(&dst, fs::Permissions::from_mode(mode)).unwrap();
        }
    }
}

/// The busybox base's metadata skeleton (no /bin: nothing copies there).
fn busybox_like(dir: &Path) {
    mkdir(&dir.join("etc"), 0o755, 0, 0);
    write(
        &dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        0o644,
    );
    write(
        &dir.join("etc/group"),
        "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
        0o644,
    );
    mkdir(&dir.join("home/app"), 0o755, 1000, 1000);
    mkdir(&dir.join("root"), 0o700, 0, 0);
    mkdir(&dir.join("tmp"), 0o1777, 0, 0);
}

/// An upper directory in the layers.txt format (hardlinks normalised).
fn golden_listing(root: &Path) -> Vec<String> {
    use sha2::{Digest, Sha256};
    let mut entries: Vec<(String, fs::Metadata)> = Vec::new();
    fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, fs::Metadata)>) {
        for e in fs::read_dir(dir).unwrap() {
            let path = e.unwrap().path();
            let md = fs::symlink_metadata(&path).unwrap();
            out.push((
                format!("/{}", path.strip_prefix(root).unwrap().display()),
                md.clone(),
            ));
            if md.is_dir() {
                collect(root, &path, out);
            }
        }
    }
    collect(root, root, &mut entries);
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut leaders: std::collections::HashMap<u64, String> = std::collections::HashMap::new();
    let mut out = Vec::new();
    for (path, md) in &entries {
        let real = root.join(path.trim_start_matches('/'));
        let ft = md.file_type();
        let owner = format!("{}:{}", md.uid(), md.gid());
        let line = if ft.is_dir() {
            format!("{path}\td\t{:04o}\t{owner}\t0\t-\t-", md.mode() & 0o7777)
        } else if ft.is_symlink() {
            format!(
                "{path}\tl\t0777\t{owner}\t0\t-\t{}",
                fs::read_link(&real).unwrap().display()
            )
        } else {
            let data = fs::read(&real).unwrap();
            let sum: String = Sha256::digest(&data)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let (t, link) = match leaders.get(&md.ino()) {
                Some(l) if md.nlink() > 1 => ("h", l.clone()),
                _ => {
                    leaders.insert(md.ino(), path.clone());
                    ("f", "-".to_string())
                }
            };
            format!(
                "{path}\t{t}\t{:04o}\t{owner}\t{}\t{sum}\t{link}",
                md.mode() & 0o7777,
                data.len()
            )
        };
        out.push(line);
    }
    out
}

/// The built layers of a case's expected/layers.txt.
fn golden_layers(case: &Path) -> Vec<Vec<String>> {
    let text = fs::read_to_string(case.join("expected/layers.txt")).unwrap();
    let mut layers: Vec<Vec<String>> = Vec::new();
    let mut skipping = false;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("# layer ") {
            skipping = h.ends_with(" base");
            if !skipping {
                layers.push(Vec::new());
            }
        } else if !line.is_empty() && !skipping {
            layers.last_mut().unwrap().push(line.to_string());
        }
    }
    layers
}

/// Makes the symlinks a case's `case.json` lists under `symlinks` (path in
/// `context/` -> target) in the copied context: the shared suite cannot
/// hold symlinks, BuildKit saw them as real ones.
fn make_case_symlinks(case: &Path, ctx: &Path) {
    let text = fs::read_to_string(case.join("case.json")).unwrap();
    let spec: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(links) = spec.get("symlinks").and_then(|v| v.as_object()) {
        for (path, target) in links {
            let target = target.as_str().expect("symlink target is a string");
            symlink(target, ctx.join(path)).unwrap();
        }
    }
}

/// Runs one action list per layer (`None`: a layer this test does not
/// build, e.g. a RUN) and compares with the golden.
fn check_case(name: &str, stage: Option<&dyn Fn(&Path)>, layers: Vec<Option<Vec<FileAction>>>) {
    let Some(cases) = conformance_dir() else {
        eprintln!("conformance cases not found: skipped");
        return;
    };
    let case = cases.join(name);
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx");
    normalised_copy(&case.join("context"), &ctx);
    make_case_symlinks(&case, &ctx);
    let stage_dir = tmp.path().join("stage");
    mkdir(&stage_dir, 0o755, 0, 0);
    if let Some(make) = stage {
        make(&stage_dir);
    }
    let base_dir = tmp.path().join("base");
    mkdir(&base_dir, 0o755, 0, 0);
    busybox_like(&base_dir);
    let mut stack = LayerStack::new(vec![base_dir]);
    let golden = golden_layers(&case);
    assert_eq!(golden.len(), layers.len(), "{name}: layer count");
    for (i, (actions, want)) in layers.into_iter().zip(golden).enumerate() {
        let Some(actions) = actions else { continue };
        let upper = tmp.path().join(format!("layer{i}"));
        mkdir(&upper, 0o755, 0, 0);
        let ctx_tree = PlainTree(ctx.clone());
        let stage_tree = LayerStack::new(vec![stage_dir.clone()]);
        apply_file_actions(
            &stack,
            &upper,
            &actions,
            &[Source::Context(&ctx_tree), Source::Tree(&stage_tree)],
        )
        .unwrap_or_else(|e| panic!("{name} layer {}: {e}", i + 1));
        assert_eq!(golden_listing(&upper), want, "{name} layer {}", i + 1);
        stack = stack.with(upper);
    }
}

fn cp(sources: &[&str], dest: &str) -> Option<Vec<FileAction>> {
    Some(vec![FileAction::Copy(copy(sources, dest))])
}

fn cp_with(
    sources: &[&str],
    dest: &str,
    f: impl FnOnce(&mut CopyAction),
) -> Option<Vec<FileAction>> {
    let mut a = copy(sources, dest);
    f(&mut a);
    Some(vec![FileAction::Copy(a)])
}

fn workdir(path: &str) -> Option<Vec<FileAction>> {
    Some(vec![FileAction::Mkdir {
        path: path.into(),
        mode: 0o755,
        owner: None,
        parents: true,
    }])
}

#[test]
fn golden_copy_cases() {
    check_case(
        "01-copy-basic",
        None,
        vec![
            cp(&["a.txt"], "/a.txt"),
            cp(&["a.txt"], "/renamed.txt"),
            cp(&["a.txt"], "/dir1/"),
            cp(&["a.txt"], "/dir2/sub/"),
            cp(&["a.txt"], "/relative.txt"),
            workdir("/w"),
            cp(&["a.txt"], "/w/"),
            cp(&["a.txt"], "/w/rel/"),
            cp(&["a.txt"], "/w/rel/named"),
        ],
    );
    check_case(
        "02-copy-dir",
        None,
        vec![
            cp(&["src"], "/dst"),
            cp(&["src/"], "/dst2/"),
            cp(&["src/sub"], "/dst3/sub"),
            cp(&["src"], "/dst4/"),
            cp(&["etc/"], "/etc/"),
            cp(&["group-override"], "/etc/group"),
        ],
    );
    check_case(
        "03-copy-wildcards",
        None,
        vec![
            cp(&["nomatch*"], "/none/"),
            cp(&["*.txt"], "/txt/"),
            cp(&["?.md"], "/md/"),
            cp(&["dir-*"], "/dirs/"),
            cp(&["a.txt", "b.txt"], "/class/"),
            cp(&["nested/*.txt"], "/nested/"),
        ],
    );
    let chown = |user: &str, group: Option<&str>| {
        let owner = names(user, group);
        move |a: &mut CopyAction| a.owner = owner
    };
    check_case(
        "05-copy-chown-names",
        None,
        vec![
            cp_with(&["a.txt"], "/o/app-app.txt", chown("app", Some("app"))),
            cp_with(&["a.txt"], "/o/app.txt", chown("app", None)),
            cp_with(
                &["a.txt"],
                "/o/nobody.txt",
                chown("nobody", Some("nogroup")),
            ),
            cp_with(&["a.txt"], "/o/app-root.txt", chown("app", Some("root"))),
            cp_with(&["dir"], "/o/dir", chown("app", Some("app"))),
            cp_with(
                &["a.txt"],
                "/new/deep/path/a.txt",
                chown("app", Some("app")),
            ),
            cp_with(&["a.txt"], "/o/unknown-user.txt", chown("nosuchuser", None)),
            cp_with(
                &["a.txt"],
                "/o/unknown-both.txt",
                chown("nosuchuser", Some("nosuchgroup")),
            ),
        ],
    );
    check_case(
        "06-copy-chown-numeric",
        None,
        vec![
            cp_with(&["a.txt"], "/o/n1.txt", chown("1234", Some("5678"))),
            cp_with(&["a.txt"], "/o/n2.txt", chown("1234", None)),
            cp_with(&["a.txt"], "/o/n3.txt", chown("0", Some("1000"))),
            cp_with(&["a.txt"], "/o/n4.txt", chown("1000", Some("nogroup"))),
            cp_with(&["a.txt"], "/o/n5.txt", chown("4242", Some("4343"))),
        ],
    );
    let chmod = |m: u32| move |a: &mut CopyAction| a.chmod = Some(Chmod::Octal(m));
    check_case(
        "07-copy-chmod",
        None,
        vec![
            cp_with(&["a.txt"], "/m/a600", chmod(0o600)),
            cp_with(&["a.txt"], "/m/a755", chmod(0o755)),
            cp_with(&["a.txt"], "/m/suid", chmod(0o4755)),
            cp_with(&["dir"], "/m/dir", chmod(0o700)),
            cp_with(&["a.txt"], "/m/both", |a| {
                a.owner = names("app", Some("app"));
                a.chmod = Some(Chmod::Octal(0o640));
            }),
            cp(&["exec.sh", "plain.txt"], "/m/kept/"),
        ],
    );
    check_case(
        "11-copy-symlinks-context",
        None,
        vec![
            cp(&["link.txt"], "/s/followed.txt"),
            cp(&["dir"], "/s/dir"),
            cp(&["linkdir"], "/s/linkdir"),
            cp(&["linkdir/"], "/s/linkdir-slash/"),
        ],
    );
}

#[test]
fn golden_stage_cases() {
    let from = |a: &mut CopyAction| a.input = 1;
    let builder = |d: &Path| {
        mkdir(&d.join("out/sub"), 0o700, 0, 0);
        fs::set_permissions(d.join("out"), fs::Permissions::from_mode(0o755)).unwrap();
        write(&d.join("out/result"), "built\n", 0o644);
        std::os::unix::fs::lchown(d.join("out/result"), Some(1000), Some(1000)).unwrap();
        write(&d.join("out/sub/s"), "s\n", 0o644);
    };
    check_case(
        "08-copy-from-stage",
        Some(&builder),
        vec![
            cp_with(&["/out"], "/app", from),
            cp_with(&["/out/result"], "/single", from),
            cp_with(&["/out/sub"], "/byindex", from),
            cp_with(&["/out"], "/chowned", |a| {
                a.input = 1;
                a.owner = Some(Owner::Ids {
                    uid: 1234,
                    gid: 1234,
                });
            }),
        ],
    );
    let links = |d: &Path| {
        write(&d.join("h/a"), "data\n", 0o644);
        fs::hard_link(d.join("h/a"), d.join("h/b")).unwrap();
        fs::hard_link(d.join("h/a"), d.join("h/c")).unwrap();
    };
    check_case(
        "13-copy-hardlinks-from-stage",
        Some(&links),
        vec![
            cp_with(&["/h"], "/h", from),
            cp_with(&["/h/b"], "/single-b", from),
        ],
    );
}

#[test]
fn golden_add_workdir_heredoc_cases() {
    let unpack = |a: &mut CopyAction| a.unpack = true;
    check_case(
        "17-add-tar-formats",
        None,
        vec![
            cp_with(&["plain.tar"], "/x/plain/", unpack),
            cp_with(&["gz.tar.gz"], "/x/gz/", unpack),
            cp_with(&["bz.tar.bz2"], "/x/bz/", unpack),
            cp_with(&["xz.tar.xz"], "/x/xz/", unpack),
            cp_with(&["gz.tar.gz"], "/x/nodir", unpack),
        ],
    );
    check_case(
        "19-add-nontar",
        None,
        vec![
            cp_with(&["plain.txt"], "/n/", unpack),
            cp_with(&["text.gz"], "/n/", unpack),
            cp_with(&["fake.tar.gz"], "/n/", unpack),
            cp_with(&["realtar.bin"], "/n/bin/", unpack),
            cp_with(&["dir"], "/n/dir/", unpack),
        ],
    );
    check_case(
        "31-workdir",
        None,
        vec![
            workdir("/a"),
            workdir("/a/b"),
            workdir("/a/c"),
            workdir("/x/y/z"),
            workdir("/x/y/z/sub"),
            None,
            workdir("/tmp"),
            workdir("/empty-created"),
        ],
    );
    let file = |path: &str, data: &str, mode: u32| FileAction::Mkfile {
        path: path.into(),
        data: data.as_bytes().to_vec(),
        mode,
        owner: None,
    };
    check_case(
        "39-heredoc-copy",
        None,
        vec![
            Some(vec![file("/greeting.txt", "hello world\n", 0o644)]),
            Some(vec![
                file("/multi/EOF1", "first\n", 0o644),
                file("/multi/EOF2", "second\n", 0o644),
            ]),
            Some(vec![file(
                "/usr/local/bin/tool",
                "#!/bin/sh\necho tool-ran\n",
                0o755,
            )]),
            None,
        ],
    );
}
