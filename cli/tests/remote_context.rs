//! Remote build contexts end to end, through the `kiln` binary, against a
//! real git server on 127.0.0.1 (`git daemon` and git-http-backend behind
//! test-support's CGI bridge): git URLs as the context (`#tag`, `#branch`,
//! `#<commit>`, `:subdir`, `-f` inside it), `--build-context NAME=URL`,
//! `ADD <git url>` with every query option, HTTP tarball contexts, pinned
//! commits that differ, `GIT_AUTH_TOKEN` (reaches the server, appears
//! nowhere else) and stalled servers (the deadline names the URL).
//!
//! The files of each exported rootfs (`-o type=local`) are compared, by
//! sha256, mode and link target, with a `git clone` of the same commit
//! and subdirectory.

use base64::Engine as _;
use kiln_test_support::{git, GitServer};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "kiln-test-token-7f3a9c";

/// What the test checked, printed at its end.
#[derive(Default)]
struct Counts {
    builds: usize,
    files: usize,
    failures: usize,
    secret_scans: usize,
}

struct Env {
    dir: tempfile::TempDir,
    counts: Counts,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("home");
        Env {
            dir,
            counts: Counts::default(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(args)
            .env("KILN_ROOT", self.path("store"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("HOME", self.path("home"))
            .env_remove("KILN_CONFIG")
            .env_remove("KILN_GIT_TIMEOUT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.output().expect("kiln runs")
    }

    /// Builds; returns stdout + stderr.
    fn build(&mut self, args: &[&str], vars: &[(&str, &str)]) -> String {
        let mut all = vec!["build"];
        if !args.contains(&"--progress") {
            all.extend(["--progress", "plain"]);
        }
        all.extend_from_slice(args);
        let out = self.run(&all, vars);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "kiln {} failed:\n{text}",
            all.join(" ")
        );
        self.counts.builds += 1;
        text
    }

    /// A build that must fail with status 1; returns stderr.
    fn build_fails(&mut self, args: &[&str], vars: &[(&str, &str)]) -> String {
        let mut all = vec!["build", "--progress", "plain"];
        all.extend_from_slice(args);
        let out = self.run(&all, vars);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "kiln {} should fail:\n{stderr}",
            all.join(" ")
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        self.counts.failures += 1;
        stderr
    }

    /// Builds `args` to a fresh local directory; returns it.
    fn build_to(&mut self, out: &str, args: &[&str], vars: &[(&str, &str)]) -> PathBuf {
        self.build_logged(out, args, vars).0
    }

    /// [`Env::build_to`], with the build's output.
    fn build_logged(
        &mut self,
        out: &str,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> (PathBuf, String) {
        let dest = self.path(out);
        let output = format!("type=local,dest={}", dest.display());
        let mut all = vec!["-o", output.as_str()];
        all.extend_from_slice(args);
        let text = self.build(&all, vars);
        (dest, text)
    }

    /// Asserts `got` holds exactly the files of `want`.
    fn same_tree(&mut self, got: &Path, want: &Path) {
        let (g, w) = (tree(got), tree(want));
        assert!(!w.is_empty(), "{} is empty", want.display());
        assert_eq!(g, w, "{} differs from {}", got.display(), want.display());
        self.counts.files += w.len();
    }
}

/// Every entry under `root` (no `.git`): sha256 and exec bit of files,
/// link targets, directories.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("under root")
            .display()
            .to_string();
        if rel == ".git" || rel.starts_with(".git/") {
            continue;
        }
        let md = std::fs::symlink_metadata(e.path()).expect("stat");
        let v = if md.file_type().is_symlink() {
            format!(
                "link {}",
                std::fs::read_link(e.path()).expect("readlink").display()
            )
        } else if md.is_dir() {
            "dir".to_string()
        } else {
            let bytes = std::fs::read(e.path()).expect("read");
            let exec = md.permissions().mode() & 0o111 != 0;
            format!("{:x} exec={exec}", Sha256::digest(&bytes))
        };
        out.insert(rel, v);
    }
    out
}

/// A clone of `repo` at `commit`, `.git` removed; the subdirectory `sub`.
fn clone_at(env: &Env, repo: &Path, commit: &str, sub: Option<&str>, name: &str) -> PathBuf {
    let dir = env.path(name);
    git(
        env.dir.path(),
        &["clone", "-q", &repo.display().to_string(), name],
    );
    git(&dir, &["checkout", "-q", commit]);
    std::fs::remove_dir_all(dir.join(".git")).expect("rm .git");
    match sub {
        Some(s) => dir.join(s),
        None => dir,
    }
}

struct Repo {
    work: PathBuf,
    v1: String,
    main: String,
    feature: String,
}

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

/// `repo`: tag v1 (annotated), main one commit later, branch feature
/// from v1; a root Dockerfile copying everything to /ctx and one in sub/
/// copying sub/ to /sub.
fn make_repo(env: &Env, server: &GitServer) -> Repo {
    let work = env.path("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    write(&work, "Dockerfile", "FROM scratch\nCOPY . /ctx/\n");
    write(&work, "README.md", "version 1\n");
    write(&work, "bin/run.sh", "#!/bin/sh\necho run\n");
    std::fs::set_permissions(
        work.join("bin/run.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("README.md", work.join("readme-link")).expect("symlink");
    write(&work, "sub/Dockerfile", "FROM scratch\nCOPY . /sub/\n");
    write(&work, "sub/data/one.txt", "one\n");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "v1"]);
    git(&work, &["tag", "-a", "v1", "-m", "release 1"]);
    let v1 = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    git(&work, &["checkout", "-q", "-b", "feature"]);
    write(&work, "feature.txt", "feature\n");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "feature"]);
    let feature = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    git(&work, &["checkout", "-q", "main"]);
    write(&work, "README.md", "version 2\n");
    write(&work, "sub/data/two.txt", "two\n");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "v2"]);
    let main = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    server.publish("repo", &work);

    // `lib`, and `withsub` holding it as a submodule (over git://).
    let lib = env.path("lib");
    std::fs::create_dir_all(&lib).expect("mkdir");
    git(&lib, &["init", "-q"]);
    write(&lib, "lib.txt", "lib\n");
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "lib"]);
    server.publish("lib", &lib);
    let ws = env.path("withsub");
    std::fs::create_dir_all(&ws).expect("mkdir");
    git(&ws, &["init", "-q"]);
    write(&ws, "top.txt", "top\n");
    git(
        &ws,
        &["submodule", "add", "-q", &server.git_url("lib"), "lib"],
    );
    git(&ws, &["add", "-A"]);
    git(&ws, &["commit", "-q", "-m", "with a submodule"]);
    server.publish("withsub", &ws);
    Repo {
        work,
        v1,
        main,
        feature,
    }
}

/// Every file under `root` whose bytes contain one of `needles`.
fn files_containing(root: &Path, needles: &[&[u8]]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in walkdir::WalkDir::new(root).into_iter().flatten() {
        if !e.file_type().is_file() {
            continue;
        }
        if let Ok(bytes) = std::fs::read(e.path()) {
            if needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == *n))
            {
                found.push(e.path().to_path_buf());
            }
        }
    }
    found
}

fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, text) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(text.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, name, text.as_bytes())
            .expect("tar entry");
    }
    let plain = builder.into_inner().expect("tar");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &plain).expect("gzip");
    gz.finish().expect("gzip")
}

fn plain_tar(files: &[(&str, &str)]) -> Vec<u8> {
    let gz = tar_gz(files);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut out)
        .expect("gunzip");
    out
}

#[test]
fn remote_contexts() {
    let server = GitServer::start();
    let mut env = Env::new();
    let repo = make_repo(&env, &server);
    let git_url = server.git_url("repo");
    let http_url = server.http_url("repo");

    // The main context: default branch, tag, branch, commit, subdir, over
    // git:// and http://.
    let cases: Vec<(String, &str, Option<&str>, &str)> = vec![
        (git_url.clone(), repo.main.as_str(), None, "ctx"),
        (format!("{git_url}#v1"), repo.v1.as_str(), None, "ctx"),
        (
            format!("{http_url}#feature"),
            repo.feature.as_str(),
            None,
            "ctx",
        ),
        (
            format!("{git_url}#{}", repo.v1),
            repo.v1.as_str(),
            None,
            "ctx",
        ),
        (
            format!("{http_url}#{}", repo.main),
            repo.main.as_str(),
            None,
            "ctx",
        ),
        (
            format!("{git_url}#main:sub"),
            repo.main.as_str(),
            Some("sub"),
            "sub",
        ),
        (
            format!("{http_url}#v1:sub"),
            repo.v1.as_str(),
            Some("sub"),
            "sub",
        ),
        (
            format!("{http_url}?ref=v1&subdir=sub"),
            repo.v1.as_str(),
            Some("sub"),
            "sub",
        ),
    ];
    for (i, (url, commit, sub, inside)) in cases.iter().enumerate() {
        let out = env.build_to(&format!("out-{i}"), &[url], &[]);
        let want = clone_at(&env, &repo.work, commit, *sub, &format!("clone-{i}"));
        env.same_tree(&out.join(inside), &want);
    }

    // -f is relative to a remote context.
    let out = env.build_to(
        "out-f",
        &["-f", "sub/Dockerfile", &format!("{http_url}#main")],
        &[],
    );
    let want = clone_at(&env, &repo.work, &repo.main, None, "clone-f");
    env.same_tree(&out.join("sub"), &want);
    let err = env.build_fails(&["-f", "../../etc/passwd", &git_url], &[]);
    assert!(err.contains("leaves the remote context"), "{err}");

    // A ref the server does not have; a pinned commit that differs.
    let err = env.build_fails(&[&format!("{git_url}#nope")], &[]);
    assert!(
        err.contains(&format!(
            "{git_url}#nope: git fetch failed: fatal: couldn't find remote ref nope"
        )),
        "{err}"
    );
    let pinned = format!("{http_url}?ref=main&checksum={}", repo.v1);
    let err = env.build_fails(&[&pinned], &[]);
    assert_eq!(
        err.trim_end(),
        format!(
            "kiln: {pinned}: commit {} does not match the pinned checksum {}",
            repo.main, repo.v1
        )
    );
    let err = env.build_fails(&[&format!("{git_url}?nope=1")], &[]);
    assert!(err.contains("unknown query option \"nope\""), "{err}");

    // --build-context NAME=<git url> and NAME=<tarball url>.
    server.add_file(
        "ctx.tar.gz",
        tar_gz(&[
            ("Dockerfile", "FROM scratch\nCOPY . /tb/\n"),
            ("t/one.txt", "tarball one\n"),
        ]),
    );
    let local = env.path("named-ctx");
    write(
        &local,
        "Dockerfile",
        "FROM scratch\nCOPY --from=repo / /named/\nCOPY --from=tb / /tb/\n",
    );
    let out = env.build_to(
        "out-named",
        &[
            "--build-context",
            &format!("repo={git_url}#v1:sub"),
            "--build-context",
            &format!("tb={}", server.file_url("ctx.tar.gz")),
            local.to_str().expect("utf-8"),
        ],
        &[],
    );
    let want = clone_at(&env, &repo.work, &repo.v1, Some("sub"), "clone-named");
    env.same_tree(&out.join("named"), &want);
    assert_eq!(
        std::fs::read_to_string(out.join("tb/t/one.txt")).expect("tarball file"),
        "tarball one\n"
    );
    env.counts.files += 1;

    // HTTP tarball contexts: gzip, plain, zstd; a Dockerfile alone.
    let files = [
        ("Dockerfile", "FROM scratch\nCOPY . /tb/\n"),
        ("a/b.txt", "bee\n"),
    ];
    server.add_file("plain.tar", plain_tar(&files));
    let mut kinds = vec!["ctx.tar.gz", "plain.tar"];
    if Command::new("zstd").arg("--version").output().is_ok() {
        let tar_path = env.path("z.tar");
        std::fs::write(&tar_path, plain_tar(&files)).expect("write tar");
        let st = Command::new("zstd")
            .args(["-q", "-f"])
            .arg(&tar_path)
            .status()
            .expect("zstd");
        assert!(st.success());
        server.add_file(
            "z.tar.zst",
            std::fs::read(env.path("z.tar.zst")).expect("zst"),
        );
        kinds.push("z.tar.zst");
    }
    server.add_file("ctx.tar.gz", tar_gz(&files));
    for k in &kinds {
        let out = env.build_to(&format!("out-{k}"), &[&server.file_url(k)], &[]);
        assert_eq!(
            std::fs::read_to_string(out.join("tb/a/b.txt")).expect("file"),
            "bee\n"
        );
        env.counts.files += 1;
    }
    server.add_file("Dockerfile.txt", b"FROM scratch\n".to_vec());
    env.build_to("out-df", &[&server.file_url("Dockerfile.txt")], &[]);
    let err = env.build_fails(&[&server.file_url("missing.tar")], &[]);
    assert!(err.contains("HTTP status 404"), "{err}");

    // ADD <git url> with each query option, and ADD --checksum.
    let subs = server.git_url("withsub");
    let dockerfile = format!(
        "FROM scratch\n\
         ADD {git_url}?ref=v1 /ref/\n\
         ADD {http_url}?tag=v1&subdir=sub /tag/\n\
         ADD {git_url}?branch=feature /branch/\n\
         ADD {git_url}?commit={v1} /commit/\n\
         ADD {http_url}?ref=main&checksum={main} /checksum/\n\
         ADD {git_url}?ref=main&keep-git-dir=true /keep/\n\
         ADD --checksum={main} {git_url}#main /flag/\n\
         ADD {subs} /withsub/\n\
         ADD {subs}?submodules=false /nosub/\n",
        v1 = repo.v1,
        main = repo.main
    );
    let add_ctx = env.path("add-ctx");
    write(&add_ctx, "Dockerfile", &dockerfile);
    let out = env.build_to("out-add", &[add_ctx.to_str().expect("utf-8")], &[]);
    for (dir, commit, sub) in [
        ("ref", &repo.v1, None),
        ("tag", &repo.v1, Some("sub")),
        ("branch", &repo.feature, None),
        ("commit", &repo.v1, None),
        ("checksum", &repo.main, None),
        ("keep", &repo.main, None),
        ("flag", &repo.main, None),
    ] {
        let want = clone_at(&env, &repo.work, commit, sub, &format!("clone-add-{dir}"));
        env.same_tree(&out.join(dir), &want);
    }
    assert!(
        out.join("keep/.git/HEAD").is_file(),
        "keep-git-dir keeps .git"
    );
    assert!(!out.join("ref/.git").exists(), ".git is dropped by default");
    assert_eq!(
        std::fs::read_to_string(out.join("withsub/lib/lib.txt")).expect("submodule file"),
        "lib\n"
    );
    assert!(
        std::fs::read_dir(out.join("nosub/lib"))
            .expect("submodule dir")
            .next()
            .is_none(),
        "submodules=false leaves the submodule empty"
    );
    env.counts.files += 2;
    let bad_pin = env.path("add-pin");
    write(
        &bad_pin,
        "Dockerfile",
        &format!(
            "FROM scratch\nADD --checksum={} {git_url}#main /x/\n",
            repo.v1
        ),
    );
    let err = env.build_fails(&[bad_pin.to_str().expect("utf-8")], &[]);
    assert!(
        err.lines().any(|l| l.starts_with("kiln: Dockerfile:2:1: ")
            && l.ends_with(&format!(
                "{git_url}#main: commit {} does not match the pinned checksum {}",
                repo.main, repo.v1
            ))),
        "{err}"
    );

    // Stalled servers fail within the deadline, naming the URL.
    let stall_tar = server.stalled_http_url().replace("stall.git", "ctx.tar.gz");
    for url in [
        server.stalled_git_url(),
        server.stalled_http_url(),
        stall_tar,
    ] {
        let started = Instant::now();
        let err = env.build_fails(&[&url], &[("KILN_GIT_TIMEOUT", "2")]);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{url}: took {:?}",
            started.elapsed()
        );
        assert!(err.contains(&url), "{err}");
        assert!(err.contains("within 2s"), "{err}");
    }
    let stall_add = env.path("add-stall");
    write(
        &stall_add,
        "Dockerfile",
        &format!("FROM scratch\nADD {} /x/\n", server.stalled_git_url()),
    );
    let started = Instant::now();
    let err = env.build_fails(
        &[stall_add.to_str().expect("utf-8")],
        &[("KILN_GIT_TIMEOUT", "2")],
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    assert!(err.contains("within 2s"), "{err}");
    let err = env.build_fails(&[&git_url], &[("KILN_GIT_TIMEOUT", "soon")]);
    assert!(err.contains("KILN_GIT_TIMEOUT=\"soon\""), "{err}");

    // A token: refused without it; with GIT_AUTH_TOKEN (and the
    // host-scoped name) it reaches the server and nothing else.
    server.require_token(TOKEN);
    let err = env.build_fails(&[&format!("{http_url}#v1")], &[]);
    assert!(err.contains(&http_url), "{err}");
    assert!(server.refused_requests() > 0);
    let host = http_url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("host")
        .to_string();
    let secret_file = env.path("token-file");
    std::fs::write(&secret_file, TOKEN).expect("write token");
    let token_add = env.path("add-token");
    write(
        &token_add,
        "Dockerfile",
        &format!("FROM scratch\nADD {http_url}?ref=main /added/\n"),
    );
    let mut logs = String::new();
    let before = server.authorized_requests();
    for (args, vars) in [
        (
            vec![
                "--secret".to_string(),
                "id=GIT_AUTH_TOKEN,env=KILN_TEST_TOKEN".to_string(),
                "--progress".to_string(),
                "rawjson".to_string(),
                format!("{http_url}#v1"),
            ],
            vec![("KILN_TEST_TOKEN", TOKEN)],
        ),
        (
            vec![
                "--secret".to_string(),
                format!("id=GIT_AUTH_TOKEN.{host},src={}", secret_file.display()),
                "--build-context".to_string(),
                format!("named={http_url}#main"),
                format!("{http_url}#main:sub"),
            ],
            vec![],
        ),
        (
            vec![
                "--secret".to_string(),
                "id=GIT_AUTH_TOKEN,env=KILN_TEST_TOKEN".to_string(),
                "--progress".to_string(),
                "rawjson".to_string(),
                token_add.display().to_string(),
            ],
            vec![("KILN_TEST_TOKEN", TOKEN)],
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = format!("out-token-{}", env.counts.builds);
        let (dest, text) = env.build_logged(&out, &args, &vars);
        logs.push_str(&text);
        assert!(dest.is_dir());
    }
    assert!(
        server.authorized_requests() > before,
        "the token reached the server"
    );
    let header =
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{TOKEN}"));
    assert!(!logs.contains(TOKEN) && !logs.contains(&header), "{logs}");
    assert!(logs.contains("\"event\""), "rawjson output was read");
    let leaks = files_containing(env.dir.path(), &[TOKEN.as_bytes(), header.as_bytes()]);
    assert_eq!(
        leaks,
        vec![secret_file.clone()],
        "the token is in no other file"
    );
    env.counts.secret_scans += 2;

    let c = &env.counts;
    println!(
        "remote contexts: {} builds, {} files compared with git clones or tarballs, {} failures \
         checked (missing ref, pinned commit, stalled servers, bad options, no token), {} secret \
         scans (output + rawjson, every file of the store and outputs)",
        c.builds, c.files, c.failures, c.secret_scans
    );
}
