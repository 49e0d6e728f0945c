//! Issue 13, finding 6 and 9c: no input depth or size crashes kiln. Real
//! builds with the real binary: an expansion bomb, a RUN that makes a
//! 1,200-deep directory chain, a 1,500-deep context, and a path longer
//! than `PATH_MAX` in the store and in every output.

mod common;

use common::{s, Env};
use std::ffi::OsStr;
use std::io::Read;
use std::path::Path;
use std::process::{Output, Stdio};

/// Runs kiln with its address space limited to 2 GiB: an expansion that
/// grows without bound fails to allocate (and aborts) instead of eating
/// the machine, so the test fails rather than hangs on a regression.
fn run_limited(env: &Env, args: &[&str]) -> Output {
    env.command("prlimit")
        .arg("--as=2147483648")
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("prlimit runs kiln")
}

/// `ENV A=${A}${A}` 40 times would be 2^40 bytes: the build stops at the
/// step that passes 1 MiB, naming the file and line.
#[test]
fn env_bomb_is_refused_by_build_print_json() {
    let env = Env::new();
    let mut dockerfile = String::from("FROM scratch\nENV A=x\n");
    for _ in 0..40 {
        dockerfile.push_str("ENV A=${A}${A}\n");
    }
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    let df = ctx.join("Dockerfile");
    let out = run_limited(&env, &["build", "--print", "json", "-f", s(&df), s(&ctx)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Dockerfile:23") && stderr.contains("longer than 1048576 bytes"),
        "{stderr}"
    );
}

/// The same bomb in global ARGs (which lint expands for FROM checks) is
/// linted without running out of memory.
#[test]
fn arg_bomb_is_linted_in_bounded_memory() {
    let env = Env::new();
    let mut dockerfile = String::from("ARG A=x\n");
    for _ in 0..40 {
        dockerfile.push_str("ARG A=${A}${A}\n");
    }
    dockerfile.push_str("FROM busybox:$A\n");
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    let out = run_limited(&env, &["lint", s(&ctx.join("Dockerfile"))]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Exit 1: lint reports the unusable base image name.
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("InvalidDefaultArgInFrom"), "{stdout}");
}

/// Reads `name` below `dir` through a chain of `depth` directories named
/// `comp`, opening each relative to the last (the full path may be longer
/// than `PATH_MAX`).
fn read_deep(dir: &Path, comp: &str, depth: usize, name: &str) -> String {
    let mut cur = kiln_executor::dirfd::Dir::open(dir).expect("open output");
    for i in 0..depth {
        cur = cur
            .open_dir(OsStr::new(comp))
            .unwrap_or_else(|e| panic!("level {i}: {e}"));
    }
    let mut text = String::new();
    cur.open_file(OsStr::new(name))
        .expect("leaf")
        .read_to_string(&mut text)
        .expect("read leaf");
    text
}

/// The path of the one tar entry whose name ends in `/leaf`, and its data.
fn tar_leaf(tar: &Path) -> (Vec<u8>, String) {
    let mut archive = tar::Archive::new(std::fs::File::open(tar).expect("tar"));
    let mut found = None;
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path_bytes().into_owned();
        if path.ends_with(b"/leaf") {
            let mut data = String::new();
            entry.read_to_string(&mut data).expect("data");
            assert!(found.is_none(), "two leaves");
            found = Some((path, data));
        }
    }
    found.expect("a leaf entry")
}

/// Builds a RUN that makes a chain of `depth` directories named `comp`
/// with a file `leaf` at the bottom, exports it to local, tar and OCI, and
/// checks the leaf in each; then `du` and `prune --all` still work.
fn deep_run(comp: &str, depth: usize) {
    let env = Env::new();
    let dockerfile = format!(
        "FROM busybox\nRUN i=0; while [ $i -lt {depth} ]; do mkdir {comp} && cd {comp} || exit 1; \
         i=$((i+1)); done; echo deep > leaf\n"
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    env.ok(&["build", "-t", "deep", s(&ctx)], None);

    let local = env.path("local");
    env.ok(
        &[
            "build",
            "-o",
            &format!("type=local,dest={}", s(&local)),
            s(&ctx),
        ],
        None,
    );
    assert_eq!(read_deep(&local, comp, depth, "leaf"), "deep\n");

    let tar = env.path("out.tar");
    env.ok(
        &[
            "build",
            "-o",
            &format!("type=tar,dest={}", s(&tar)),
            s(&ctx),
        ],
        None,
    );
    let (path, data) = tar_leaf(&tar);
    assert_eq!(path.len(), (comp.len() + 1) * depth + "leaf".len());
    assert!(path.starts_with(format!("{comp}/{comp}/").as_bytes()));
    assert_eq!(data, "deep\n");

    let oci = env.path("oci");
    env.ok(
        &[
            "build",
            "-o",
            &format!("type=oci,dest={},tar=false", s(&oci)),
            s(&ctx),
        ],
        None,
    );
    assert!(oci.join("index.json").is_file());

    let (du, _) = env.ok(&["du"], None);
    assert!(du.contains("Total"), "{du}");
    env.ok(&["prune", "--all"], None);
    let (du, _) = env.ok(&["du"], None);
    assert!(du.contains("Total"), "{du}");
}

/// A 1,200-deep chain overflowed the stack in the layer walk (exit 134).
#[test]
fn run_with_1200_deep_chain_builds_and_exports() {
    deep_run("d", 1200);
}

/// A path near 4 KB inside the image is longer than `PATH_MAX` once the
/// store's or the output's directory is in front of it: the layer walk,
/// local and tar outputs, du and prune must not spell it out.
#[test]
fn path_near_4k_exports_to_local_and_tar() {
    deep_run("ddd", 1020);
}

/// A 1,500-deep context overflowed the stack in `COPY .` (after minutes:
/// the time grew with the cube of the depth).
#[test]
fn copy_of_1500_deep_context_builds() {
    let env = Env::new();
    let ctx = env.path("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    let mut dir = kiln_executor::dirfd::Dir::open(&ctx).expect("open ctx");
    for _ in 0..1500 {
        dir.create_dir(OsStr::new("d"), 0o755).expect("mkdir");
        dir = dir.open_dir(OsStr::new("d")).expect("open");
    }
    let mut leaf = dir.create_file(OsStr::new("leaf"), 0o644).expect("leaf");
    std::io::Write::write_all(&mut leaf, b"x").expect("write leaf");
    let df = env.path("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY . /\n").expect("Dockerfile");
    let tar = env.path("out.tar");
    env.ok(
        &[
            "build",
            "-f",
            s(&df),
            "-o",
            &format!("type=tar,dest={}", s(&tar)),
            s(&ctx),
        ],
        None,
    );
    let (path, data) = tar_leaf(&tar);
    assert_eq!(path.len(), 2 * 1500 + "leaf".len());
    assert_eq!(data, "x");
}

/// The path bytes and data of every file in the layers of a docker-archive.
fn layer_files(archive: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut outer = tar::Archive::new(std::fs::File::open(archive).expect("archive"));
    let mut out = Vec::new();
    for entry in outer.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut data = Vec::new();
        entry.read_to_end(&mut data).expect("read");
        if data.get(257..262) != Some(&b"ustar"[..]) {
            continue;
        }
        let mut inner = tar::Archive::new(&data[..]);
        for e in inner.entries().expect("layer") {
            let mut e = e.expect("layer entry");
            if e.header().entry_type().is_file() {
                let path = e.path_bytes().into_owned();
                let mut body = Vec::new();
                e.read_to_end(&mut body).expect("body");
                out.push((path, body));
            }
        }
    }
    out
}

/// A context name that is not UTF-8 (Latin-1 `café`, a stray `\xff`) is
/// copied with its bytes into the image layer and the local output, and
/// `.dockerignore` patterns still match around it.
#[test]
fn non_utf8_names_round_trip_to_the_layer() {
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let ctx = env.path("ctx");
    let dir = ctx.join(OsStr::from_bytes(b"dir\xff"));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join(OsStr::from_bytes(b"caf\xe9.txt")), "latin1").expect("file");
    std::fs::write(dir.join(OsStr::from_bytes(b"skip\xe9.log")), "no").expect("file");
    std::fs::write(ctx.join(".dockerignore"), "**/*.log\n").expect("ignore");
    let df = env.path("Dockerfile");
    std::fs::write(&df, "FROM scratch\nCOPY . /\n").expect("Dockerfile");
    let archive = env.path("image.tar");
    let dest = format!("type=docker,dest={}", s(&archive));
    env.ok(&["build", "-f", s(&df), "-o", &dest, s(&ctx)], None);
    let mut files = layer_files(&archive);
    files.sort();
    assert_eq!(
        files,
        [
            (b".dockerignore".to_vec(), b"**/*.log\n".to_vec()),
            (b"dir\xff/caf\xe9.txt".to_vec(), b"latin1".to_vec()),
        ]
    );
    let local = env.path("local");
    let dest = format!("type=local,dest={}", s(&local));
    env.ok(&["build", "-f", s(&df), "-o", &dest, s(&ctx)], None);
    let copied = local.join(OsStr::from_bytes(b"dir\xff/caf\xe9.txt"));
    assert_eq!(
        std::fs::read_to_string(copied).expect("local copy"),
        "latin1"
    );
}
