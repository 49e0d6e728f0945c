//! Build-context tests over real temporary directories.

use kiln_solver::context::{BuildContext, ContextError, DockerIgnore, EntryKind};
use std::collections::BTreeSet;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

const CASES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/conformance/cases"
);

/// Copies a tree (files get fresh 0644/0755 modes so temp dirs can be removed).
fn copy_tree(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for entry in std::fs::read_dir(src).expect("read_dir") {
        let entry = entry.expect("entry");
        let ft = entry.file_type().expect("file type");
        let to = dst.join(entry.file_name());
        if ft.is_dir() {
            copy_tree(&entry.path(), &to);
        } else if ft.is_symlink() {
            symlink(std::fs::read_link(entry.path()).expect("readlink"), &to).expect("symlink");
        } else {
            std::fs::write(&to, std::fs::read(entry.path()).expect("read")).expect("write");
        }
    }
}

/// Creates files (`name`), directories (`name/`) and symlinks (`name -> target`).
fn tree(spec: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for item in spec {
        if let Some((name, target)) = item.split_once(" -> ") {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            symlink(target, p).expect("symlink");
        } else if let Some(name) = item.strip_suffix('/') {
            std::fs::create_dir_all(dir.path().join(name)).expect("mkdir");
        } else {
            let p = dir.path().join(item);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, format!("content of {item}\n")).expect("write");
        }
    }
    dir
}

fn walk_paths(ctx: &BuildContext, dir: &str) -> Vec<String> {
    ctx.walk(dir)
        .expect("walk")
        .into_iter()
        .map(|e| e.path)
        .collect()
}

fn resolved(ctx: &BuildContext, source: &str) -> Vec<String> {
    ctx.resolve(source)
        .unwrap_or_else(|e| panic!("resolve {source:?}: {e}"))
        .into_iter()
        .map(|e| e.rel_path)
        .collect()
}

#[test]
fn conformance_dockerignore_cases() {
    let mut checked = 0;
    let mut names: Vec<_> = std::fs::read_dir(CASES)
        .expect("conformance cases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("7") && ("74".."79").contains(&&n[..2]))
        .collect();
    names.sort();
    for name in names {
        let case = Path::new(CASES).join(&name);
        let dockerfile =
            std::fs::read_to_string(case.join("context/Dockerfile")).expect("Dockerfile");
        assert!(
            dockerfile.contains("COPY . /ctx/"),
            "{name}: unexpected Dockerfile"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        copy_tree(&case.join("context"), tmp.path());
        let ctx =
            BuildContext::open(tmp.path(), Some(&tmp.path().join("Dockerfile"))).expect("open");
        // COPY . /ctx/ copies the context root's contents.
        let sources = ctx.resolve(".").expect("resolve .");
        assert_eq!(sources.len(), 1);
        assert_eq!(sources[0].kind, EntryKind::Dir);
        let got: BTreeSet<String> = walk_paths(&ctx, &sources[0].rel_path).into_iter().collect();
        let layers = std::fs::read_to_string(case.join("expected/layers.txt")).expect("layers.txt");
        let want: BTreeSet<String> = layers
            .lines()
            .filter_map(|l| l.split('\t').next()?.strip_prefix("/ctx/"))
            .map(str::to_string)
            .collect();
        assert_eq!(got, want, "{name}");
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} dockerignore cases found");
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let dir = tree(&["a.txt", "b.txt", "build/app.Dockerfile", "build/Dockerfile"]);
    std::fs::write(dir.path().join(".dockerignore"), "a.txt\n").expect("write");
    std::fs::write(
        dir.path().join("build/app.Dockerfile.dockerignore"),
        "b.txt\n",
    )
    .expect("write");
    let cases: &[(Option<&str>, &str, bool)] = &[
        (Some("build/app.Dockerfile"), "a.txt", false),
        (Some("build/app.Dockerfile"), "b.txt", true),
        (Some("build/Dockerfile"), "a.txt", true),
        (Some("build/Dockerfile"), "b.txt", false),
        (None, "a.txt", true),
    ];
    for (dockerfile, path, excluded) in cases {
        let df = dockerfile.map(|d| dir.path().join(d));
        let ctx = BuildContext::open(dir.path(), df.as_deref()).expect("open");
        assert_eq!(ctx.is_excluded(path), *excluded, "{dockerfile:?} {path}");
    }
}

#[test]
fn exceptions_reinclude_below_excluded_dirs() {
    let dir = tree(&[
        "docs/README.md",
        "docs/guide.md",
        "docs/img/logo.png",
        "src/main.rs",
        "empty/",
    ]);
    std::fs::write(dir.path().join(".dockerignore"), "docs\n!docs/README.md\n").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert_eq!(
        walk_paths(&ctx, ""),
        [
            ".dockerignore",
            "docs",
            "docs/README.md",
            "empty",
            "src",
            "src/main.rs"
        ]
    );
    assert_eq!(resolved(&ctx, "docs"), ["docs"]);
    assert_eq!(walk_paths(&ctx, "docs"), ["docs/README.md"]);
    assert_eq!(resolved(&ctx, "docs/*.md"), ["docs/README.md"]);
    assert!(matches!(
        ctx.resolve("docs/guide.md"),
        Err(ContextError::NotFound { .. })
    ));
    assert!(matches!(
        ctx.resolve("docs/img"),
        Err(ContextError::NotFound { .. })
    ));
    // (path, part of the context, excluded by the patterns)
    let includes: &[(&str, bool, bool)] = &[
        ("docs", true, true),
        ("docs/README.md", true, false),
        ("docs/guide.md", false, true),
        ("docs/img", false, true),
        ("src", true, false),
        ("missing", false, false),
    ];
    for (path, included, excluded) in includes {
        assert_eq!(ctx.includes(path).expect("includes"), *included, "{path}");
        assert_eq!(ctx.is_excluded(path), *excluded, "{path}");
    }
}

#[test]
fn wildcard_resolution() {
    let dir = tree(&[
        "a.txt",
        "b.txt",
        "c.log",
        "ignored.txt",
        "dir/x.txt",
        "dir/y.log",
        "dir2/x.txt",
        "dir3/sub/x.txt",
        "linkdir -> dir3",
        "[x].txt",
    ]);
    std::fs::write(dir.path().join(".dockerignore"), "ignored.txt\ndir2\n").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let cases: &[(&str, &[&str])] = &[
        ("*.txt", &["[x].txt", "a.txt", "b.txt"]),
        ("[ab].txt", &["a.txt", "b.txt"]),
        ("[^a].txt", &["b.txt"]),
        ("?.log", &["c.log"]),
        ("dir*/x.txt", &["dir/x.txt"]),
        ("*/*.log", &["dir/y.log"]),
        ("*/sub/x.txt", &["dir3/sub/x.txt"]),
        ("linkdir/s*", &["dir3/sub"]),
        ("*.none", &[]),
        ("nodir/*", &[]),
        ("\\[x\\].txt*", &["[x].txt"]),
        ("./dir/*.txt", &["dir/x.txt"]),
    ];
    for (source, want) in cases {
        assert_eq!(resolved(&ctx, source), *want, "{source:?}");
    }
    let kinds: Vec<EntryKind> = ctx
        .resolve("*")
        .expect("resolve")
        .iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&EntryKind::Symlink) && kinds.contains(&EntryKind::Dir));
    let err = ctx.resolve("a[").expect_err("bad pattern");
    assert!(err.to_string().contains("\"a[\""), "{err}");
    // Go's filepath.Match (and so BuildKit) lets a reversed range match
    // nothing rather than reject it, as COPY --from always did.
    assert_eq!(resolved(&ctx, "dir[z-a]/*"), Vec::<String>::new());
}

#[test]
fn exact_resolution_and_clamping() {
    let dir = tree(&[
        "a.txt",
        "dir/b.txt",
        "link -> dir",
        "escape -> /etc",
        "abs -> /dir",
    ]);
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let cases: &[(&str, &[&str])] = &[
        ("a.txt", &["a.txt"]),
        ("../a.txt", &["a.txt"]),
        ("../../dir/../a.txt", &["a.txt"]),
        ("/a.txt", &["a.txt"]),
        ("./dir/", &["dir"]),
        (".", &[""]),
        ("..", &[""]),
        ("link/b.txt", &["dir/b.txt"]),
        ("abs/b.txt", &["dir/b.txt"]),
        ("link", &["link"]),
    ];
    for (source, want) in cases {
        assert_eq!(resolved(&ctx, source), *want, "{source:?}");
    }
    // A symlink to /etc is resolved inside the context, where there is no passwd.
    let err = ctx.resolve("escape/passwd").expect_err("must not escape");
    assert_eq!(err.to_string(), "\"/escape/passwd\": not found");
}

#[test]
fn not_found_names_the_source() {
    let dir = tree(&["a.txt", "secret.txt"]);
    std::fs::write(dir.path().join(".dockerignore"), "secret.txt\n").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    let cases: &[(&str, &str)] = &[
        ("nope.txt", "/nope.txt"),
        ("../nope.txt", "/nope.txt"),
        ("secret.txt", "/secret.txt"),
        ("a.txt/x", "/a.txt/x"),
    ];
    for (source, cleaned) in cases {
        match ctx.resolve(source) {
            Err(ContextError::NotFound { source: s }) => assert_eq!(s, *cleaned),
            other => panic!("{source}: {other:?}"),
        }
    }
    // BuildKit's wording, as in conformance case 15.
    let err = ctx.resolve("nope.txt").expect_err("missing");
    assert_eq!(err.to_string(), "\"/nope.txt\": not found");
}

#[test]
fn resolution_reads_only_what_it_needs() {
    let dir = tree(&["a.txt", "dir/b.txt", "other/"]);
    // A name that is not UTF-8, in a directory nobody asks for.
    let bad = std::ffi::OsStr::new(non_utf8_name());
    std::fs::write(dir.path().join("other").join(bad), "x").expect("write");
    let ctx = BuildContext::open(dir.path(), None).expect("open");
    assert_eq!(resolved(&ctx, "a.txt"), ["a.txt"]);
    assert_eq!(resolved(&ctx, "dir"), ["dir"]);
    assert_eq!(resolved(&ctx, "d*/b.txt"), ["dir/b.txt"]);
    assert_eq!(walk_paths(&ctx, "dir"), ["dir/b.txt"]);
    let dir_entry = ctx.resolve("dir").expect("resolve");
    ctx.checksum(&dir_entry).expect("checksum of dir only");
    // The whole walk lists the name, its bytes kept (Docker builds it).
    let all = ctx.walk("").expect("walk with a non-UTF-8 name");
    let bad = all
        .iter()
        .find(|e| e.path.starts_with("other/bad"))
        .expect("listed");
    use std::os::unix::ffi::OsStrExt;
    assert_eq!(
        kiln_executor::names::decode(&bad.path).as_bytes(),
        b"other/bad\xffname"
    );
    assert_eq!(bad.abs_path, dir.path().join("other").join(non_utf8_name()));
}

fn non_utf8_name() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"bad\xffname")
}

fn digest_of(ctx: &BuildContext, source: &str) -> String {
    let entries = ctx.resolve(source).expect("resolve");
    ctx.checksum(&entries).expect("checksum").to_string()
}

#[test]
fn checksum_ignores_mtime_but_not_metadata_or_content() {
    let dir = tree(&["app/a.txt", "app/b.txt", "app/link -> a.txt", "other.txt"]);
    let root = dir.path();
    let ctx = BuildContext::open(root, None).expect("open");
    let base = digest_of(&ctx, "app");
    assert!(base.starts_with("sha256:") && base.len() == 71, "{base}");
    let a = root.join("app/a.txt");

    // mtime only: same digest (the file is re-read since its stat changed).
    let f = std::fs::File::options().write(true).open(&a).expect("open");
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1))
        .expect("set mtime");
    drop(f);
    assert_eq!(digest_of(&ctx, "app"), base, "mtime must not count");
    // Outside the selection: same digest.
    std::fs::write(root.join("other.txt"), "changed").expect("write");
    assert_eq!(digest_of(&ctx, "app"), base);

    type Mutation = fn(&Path);
    let mutations: &[(&str, Mutation)] = &[
        ("mode", |r| set_mode(&r.join("app/a.txt"), 0o600)),
        ("setuid", |r| set_mode(&r.join("app/a.txt"), 0o4644)),
        ("content", |r| {
            std::fs::write(r.join("app/b.txt"), "other").expect("write")
        }),
        ("symlink target", |r| {
            std::fs::remove_file(r.join("app/link")).expect("rm");
            symlink("b.txt", r.join("app/link")).expect("symlink");
        }),
        ("new file", |r| {
            std::fs::write(r.join("app/c.txt"), "").expect("write")
        }),
        ("dir mode", |r| set_mode(&r.join("app"), 0o700)),
    ];
    let mut seen = BTreeSet::from([base]);
    for (what, mutate) in mutations {
        mutate(root);
        let digest = digest_of(&ctx, "app");
        assert!(seen.insert(digest), "{what} must change the digest");
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn checksum_cache_avoids_rereading() {
    let dir = tree(&["a.txt", "b.txt", "sub/c.txt", "sub/d.txt"]);
    let state = tempfile::tempdir().expect("tempdir");
    let cache_path = state.path().join("cache/checksums.json");

    let ctx = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_checksum_cache(&cache_path);
    let first = digest_of(&ctx, ".");
    assert_eq!(ctx.hash_stats().files_hashed, 4);
    // Same context object: in-memory hits.
    assert_eq!(digest_of(&ctx, "."), first);
    assert_eq!(ctx.hash_stats().files_hashed, 4);
    assert_eq!(ctx.hash_stats().cache_hits, 4);
    ctx.save_checksum_cache().expect("save");

    // Next build: loaded from disk, nothing re-read.
    let ctx2 = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_checksum_cache(&cache_path);
    assert_eq!(digest_of(&ctx2, "."), first);
    assert_eq!(ctx2.hash_stats().files_hashed, 0);
    assert_eq!(ctx2.hash_stats().cache_hits, 4);

    // One file changes: only it is re-read.
    std::fs::write(dir.path().join("sub/c.txt"), "new content").expect("write");
    let changed = digest_of(&ctx2, ".");
    assert_ne!(changed, first);
    assert_eq!(ctx2.hash_stats().files_hashed, 1);

    // A corrupt cache file is ignored and rebuilt.
    std::fs::write(&cache_path, b"{not json").expect("corrupt");
    let ctx3 = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_checksum_cache(&cache_path);
    assert_eq!(digest_of(&ctx3, "."), changed);
    assert_eq!(ctx3.hash_stats().files_hashed, 4);
    ctx3.save_checksum_cache().expect("save");
    let ctx4 = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_checksum_cache(&cache_path);
    assert_eq!(digest_of(&ctx4, "."), changed);
    assert_eq!(ctx4.hash_stats().files_hashed, 0);
}

#[test]
fn explicit_ignore_rules() {
    let dir = tree(&["a.txt", "b.log"]);
    let ctx = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_ignore(DockerIgnore::from_patterns(&["*.log"]).expect("patterns"));
    assert_eq!(walk_paths(&ctx, ""), ["a.txt"]);
    assert!(matches!(
        ctx.walk("a.txt"),
        Err(ContextError::NotADirectory { .. })
    ));
}

fn build_tar(gzip: bool) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let files: &[(&str, &str, u32)] = &[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n", 0o644),
        ("ci.Dockerfile", "FROM busybox\n", 0o644),
        ("ci.Dockerfile.dockerignore", "**/*.log\n", 0o644),
        (".dockerignore", "keep.txt\n", 0o644),
        ("keep.txt", "keep\n", 0o644),
        ("ro/run.sh", "#!/bin/sh\n", 0o755),
        ("ro/debug.log", "log\n", 0o644),
    ];
    let mut dir = tar::Header::new_gnu();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o555);
    dir.set_size(0);
    builder
        .append_data(&mut dir, "ro/", std::io::empty())
        .expect("dir");
    for (name, body, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(body.len() as u64);
        h.set_mode(*mode);
        builder
            .append_data(&mut h, name, body.as_bytes())
            .expect("file");
    }
    let bytes = builder.into_inner().expect("tar");
    if !gzip {
        return bytes;
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn tar_contexts() {
    let cases: &[(bool, Option<&str>, &[&str])] = &[
        (
            false,
            None,
            &[
                ".dockerignore",
                "Dockerfile",
                "ci.Dockerfile",
                "ci.Dockerfile.dockerignore",
                "ro",
                "ro/debug.log",
                "ro/run.sh",
            ],
        ),
        (
            true,
            None,
            &[
                ".dockerignore",
                "Dockerfile",
                "ci.Dockerfile",
                "ci.Dockerfile.dockerignore",
                "ro",
                "ro/debug.log",
                "ro/run.sh",
            ],
        ),
        (
            true,
            Some("ci.Dockerfile"),
            &[
                ".dockerignore",
                "Dockerfile",
                "ci.Dockerfile",
                "ci.Dockerfile.dockerignore",
                "keep.txt",
                "ro",
                "ro/run.sh",
            ],
        ),
    ];
    for (gzip, dockerfile, want) in cases {
        let dest = tempfile::tempdir().expect("tempdir");
        let target = dest.path().join("ctx");
        let ctx =
            BuildContext::from_tar(&build_tar(*gzip)[..], &target, *dockerfile).expect("from_tar");
        assert_eq!(walk_paths(&ctx, ""), *want, "gzip={gzip} {dockerfile:?}");
        let ro = ctx
            .walk("")
            .expect("walk")
            .into_iter()
            .find(|e| e.path == "ro")
            .expect("ro");
        assert_eq!(ro.mode, 0o555);
        let run = ctx.resolve("ro/run.sh").expect("resolve");
        assert_eq!(
            ctx.walk("ro")
                .expect("walk")
                .iter()
                .find(|e| e.path == "ro/run.sh")
                .map(|e| e.mode),
            Some(0o755)
        );
        assert_eq!(run[0].kind, EntryKind::File);
        set_mode(&target.join("ro"), 0o755); // let the tempdir be removed
    }
}

#[test]
fn tar_entries_escaping_are_refused() {
    let names: &[&str] = &["../evil.txt", "a/../../evil.txt", "/abs.txt"];
    for name in names {
        let mut header = tar::Header::new_old();
        let raw = name.as_bytes();
        header.as_old_mut().name[..raw.len()].copy_from_slice(raw);
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        let mut bytes = header.as_bytes().to_vec();
        bytes.push(b'x');
        bytes.resize(1024, 0);
        bytes.extend_from_slice(&[0u8; 1024]);
        let dest = tempfile::tempdir().expect("tempdir");
        let target = dest.path().join("ctx");
        let err = BuildContext::from_tar(&bytes[..], &target, None).expect_err("must refuse");
        assert!(
            matches!(err, ContextError::TarEscape { .. }),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains(name.trim_start_matches('/')),
            "{err}"
        );
        assert!(!dest.path().join("evil.txt").exists());
    }
}

/// Generates ~200 MB in 20,000 files and times a cold and a cached checksum.
/// Run with `cargo test -p kiln-solver --test context -- --ignored --nocapture`.
#[test]
#[ignore]
fn hash_throughput() {
    let files: usize = env_or("KILN_BENCH_FILES", 20_000);
    let total_mb: usize = env_or("KILN_BENCH_MB", 200);
    let tmp = tempfile::tempdir().expect("tempdir");
    // KILN_BENCH_DIR keeps the generated tree for repeated runs.
    let dir_path =
        std::env::var_os("KILN_BENCH_DIR").map_or_else(|| tmp.path().to_path_buf(), PathBuf::from);
    let dir = dir_path.as_path();
    let size = total_mb * 1_000_000 / files;
    let mut data = vec![0u8; size];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i * 31 % 251) as u8;
    }
    let reuse = std::env::var_os("KILN_BENCH_DIR").is_some() && dir.join("d000").exists();
    for i in (0..files).filter(|_| !reuse) {
        let sub: PathBuf = dir.join(format!("d{:03}", i % 200));
        std::fs::create_dir_all(&sub).expect("mkdir");
        data[0] = i as u8;
        data[1] = (i >> 8) as u8;
        std::fs::write(sub.join(format!("f{i}")), &data).expect("write");
    }
    let state = tempfile::tempdir().expect("tempdir");
    let cache = state.path().join("cache.json");
    let ctx = BuildContext::open(dir, None)
        .expect("open")
        .with_checksum_cache(&cache);
    let started = std::time::Instant::now();
    let walked = ctx.walk("").expect("walk").len();
    let walk_time = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let cold = digest_of(&ctx, ".");
    let cold_time = started.elapsed().as_secs_f64();
    ctx.save_checksum_cache().expect("save");
    let stats = ctx.hash_stats();
    // The cached run includes loading the index.
    let started = std::time::Instant::now();
    let ctx2 = BuildContext::open(dir, None)
        .expect("open")
        .with_checksum_cache(&cache);
    let warm = digest_of(&ctx2, ".");
    let warm_time = started.elapsed().as_secs_f64();
    assert_eq!(cold, warm);
    let mb = stats.bytes_hashed as f64 / 1e6;
    println!(
        "walk only: {walked} entries in {walk_time:.3}s; cold: {} files, {mb:.0} MB in {cold_time:.2}s = {:.0} MB/s; \
         cached (incl. loading the index): {warm_time:.2}s = {:.0} MB/s ({} hits)",
        stats.files_hashed,
        mb / cold_time,
        mb / warm_time,
        ctx2.hash_stats().cache_hits,
    );
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `.dockerignore` patterns are matched without recursion: a path as long
/// as a very deep context gives (80,000 characters) is matched on a small
/// thread stack (the recursive matcher went one frame per character).
#[test]
fn ignore_patterns_match_very_long_paths_on_a_small_stack() {
    let ignore =
        DockerIgnore::from_patterns(&["**/leaf*", "a/**/*.log", "a/**", "*x"]).expect("valid");
    let deep = "d/".repeat(40_000);
    let results = std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(move || {
            let [leaf, log, below_a, star] = ignore.patterns() else {
                panic!("four patterns")
            };
            (
                leaf.matches(&format!("{deep}leaf.txt")),
                leaf.matches(&format!("{deep}other")),
                log.matches(&format!("a/{deep}x.log")),
                below_a.matches(&format!("a/{deep}z")),
                star.matches(&"y".repeat(80_000)),
            )
        })
        .expect("thread")
        .join()
        .expect("no overflow");
    assert_eq!(results, (true, false, true, true, false));
}

/// The checksum a context without any index gives.
fn fresh_digest(root: &Path, source: &str) -> String {
    digest_of(&BuildContext::open(root, None).expect("open"), source)
}

#[test]
fn indexed_checksum_follows_every_change_like_a_fresh_one() {
    // Many top-level directories (the walk is split by them), a symlink,
    // and an excluded directory with an exception.
    let mut spec: Vec<String> = (0..12)
        .flat_map(|d| (0..5).map(move |f| format!("d{d:02}/s/f{f}.txt")))
        .collect();
    spec.extend(
        [
            "top.txt",
            "logs/a.log",
            "logs/keep.log",
            "d03/link -> s/f1.txt",
        ]
        .map(String::from),
    );
    let spec: Vec<&str> = spec.iter().map(String::as_str).collect();
    let dir = tree(&spec);
    let root = dir.path();
    std::fs::write(root.join(".dockerignore"), "logs\n!logs/keep.log\n").expect("write");
    let state = tempfile::tempdir().expect("tempdir");
    let index = state.path().join("contexts/index");
    // One build: a new context with the saved index, saved again after.
    let build = || {
        let ctx = BuildContext::open(root, None)
            .expect("open")
            .with_checksum_cache(&index);
        let digest = digest_of(&ctx, ".");
        ctx.save_checksum_cache().expect("save");
        (digest, ctx.hash_stats().files_hashed)
    };
    let (base, hashed) = build();
    assert_eq!(hashed, 63, "a cold index hashes every file");
    assert_eq!(base, fresh_digest(root, "."));
    assert_eq!(build(), (base.clone(), 0), "nothing changed, nothing read");

    type Change = fn(&Path);
    // (what, change, undo, files the indexed build re-reads after the change)
    let changes: &[(&str, Change, Change, u64)] = &[
        (
            "content",
            |r| {
                std::fs::write(r.join("d07/s/f3.txt"), "longer content\n\n\n\n\n\n\n\n\n\n")
                    .expect("write")
            },
            |r| std::fs::write(r.join("d07/s/f3.txt"), "content of d07/s/f3.txt\n").expect("write"),
            1,
        ),
        (
            "mode",
            |r| set_mode(&r.join("d11/s/f0.txt"), 0o600),
            |r| set_mode(&r.join("d11/s/f0.txt"), 0o644),
            1,
        ),
        (
            "a file removed",
            |r| std::fs::remove_file(r.join("d00/s/f4.txt")).expect("rm"),
            |r| std::fs::write(r.join("d00/s/f4.txt"), "content of d00/s/f4.txt\n").expect("write"),
            0,
        ),
        (
            "a file added",
            |r| std::fs::write(r.join("d05/s/new.txt"), "new\n").expect("write"),
            |r| std::fs::remove_file(r.join("d05/s/new.txt")).expect("rm"),
            1,
        ),
        (
            "a file renamed",
            |r| std::fs::rename(r.join("d09/s/f2.txt"), r.join("d09/s/f2.bak")).expect("mv"),
            |r| std::fs::rename(r.join("d09/s/f2.bak"), r.join("d09/s/f2.txt")).expect("mv"),
            1,
        ),
        (
            "a directory added",
            |r| std::fs::create_dir(r.join("d02/empty")).expect("mkdir"),
            |r| std::fs::remove_dir(r.join("d02/empty")).expect("rmdir"),
            0,
        ),
    ];
    set_mode(&root.join("d11/s/f0.txt"), 0o644);
    let (base, _) = build();
    for (what, change, undo, rereads) in changes {
        change(root);
        let (changed, hashed) = build();
        assert_ne!(changed, base, "{what} must change the checksum");
        assert_eq!(
            changed,
            fresh_digest(root, "."),
            "{what}: as without an index"
        );
        assert_eq!(hashed, *rereads, "{what}: files re-read");
        undo(root);
        let (undone, _) = build();
        assert_eq!(undone, base, "{what} undone");
    }
    // Excluded files do not count.
    std::fs::write(root.join("logs/a.log"), "more log\n").expect("write");
    assert_eq!(build(), (base.clone(), 0), "an excluded file changed");
    std::fs::write(root.join("logs/keep.log"), "kept, changed\n").expect("write");
    assert_ne!(build().0, base, "a re-included file changed");
}

#[test]
fn an_index_in_the_json_format_of_earlier_kilns_is_ignored() {
    let dir = tree(&["a.txt", "sub/b.txt"]);
    let state = tempfile::tempdir().expect("tempdir");
    let index = state.path().join("index");
    let root = dir.path().canonicalize().expect("canonical");
    // What kiln wrote before: a JSON index claiming a wrong hash for a.txt
    // with a.txt's real stamp. It must not be believed.
    let md = std::fs::symlink_metadata(root.join("a.txt")).expect("stat");
    use std::os::unix::fs::MetadataExt;
    let json = serde_json::json!({
        "version": 1,
        "roots": { root.to_string_lossy(): { "a.txt": {
            "dev": md.dev(), "ino": md.ino(), "size": md.size(),
            "mtime_ns": md.mtime() * 1_000_000_000 + md.mtime_nsec(),
            "ctime_ns": md.ctime() * 1_000_000_000 + md.ctime_nsec(),
            "sha256": "00".repeat(32),
        }}},
    });
    std::fs::write(&index, json.to_string()).expect("write");
    let ctx = BuildContext::open(&root, None)
        .expect("open")
        .with_checksum_cache(&index);
    assert_eq!(digest_of(&ctx, "."), fresh_digest(&root, "."));
    assert_eq!(ctx.hash_stats().files_hashed, 2);
    ctx.save_checksum_cache().expect("save over it");
    assert!(!std::fs::read(&index).expect("read").starts_with(b"{"));
    let ctx = BuildContext::open(&root, None)
        .expect("open")
        .with_checksum_cache(&index);
    assert_eq!(digest_of(&ctx, "."), fresh_digest(&root, "."));
    assert_eq!(ctx.hash_stats().files_hashed, 0);
}

#[test]
fn a_failed_save_of_the_index_is_reported_and_the_build_goes_on() {
    let dir = tree(&["a.txt", "sub/b.txt"]);
    let state = tempfile::tempdir().expect("tempdir");
    // The index's directory cannot be made: its parent is a file.
    let blocker = state.path().join("file");
    std::fs::write(&blocker, "").expect("write");
    let index = blocker.join("contexts/index");
    let ctx = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_checksum_cache(&index);
    // The checksum starts a save of the new hashes in the background.
    let digest = digest_of(&ctx, ".");
    assert_eq!(digest, fresh_digest(dir.path(), "."));
    let err = ctx.save_checksum_cache().expect_err("cannot save");
    assert!(err.to_string().contains("file"), "{err}");
    // Once the directory can be made, the next save writes every hash.
    std::fs::remove_file(&blocker).expect("rm");
    ctx.save_checksum_cache().expect("save");
    let again = BuildContext::open(dir.path(), None)
        .expect("open")
        .with_checksum_cache(&index);
    assert_eq!(digest_of(&again, "."), digest);
    assert_eq!(again.hash_stats().files_hashed, 0);
}
