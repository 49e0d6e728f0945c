//! A last COPY of a whole directory, which nothing else in the build reads
//! as files, is written from the context straight into the layer's tar:
//! no layer directory is made, the tar is the one the copied directory
//! gives, and a later build that runs on top of the layer unpacks it from
//! its blob.

mod common;

use common::{s, Env};
use std::path::Path;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The diff ids of image `name`.
fn diff_ids(env: &Env, name: &str) -> Vec<String> {
    let (out, _) = env.ok(&["inspect", name], None);
    json(&out)["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().expect("digest").to_string())
        .collect()
}

fn layer_dir(env: &Env, diff_id: &str) -> std::path::PathBuf {
    let hex = diff_id.strip_prefix("sha256:").expect("sha256");
    env.path("store").join("layers").join(hex)
}

/// A context with nested directories, a symlink and a hardlinked pair.
fn context(env: &Env, name: &str, dockerfile: &str) -> std::path::PathBuf {
    let ctx = env.context(
        name,
        &[
            ("Dockerfile", dockerfile),
            ("a.txt", "a\n"),
            ("sub/b.txt", "b\n"),
            ("sub/deeper/c.txt", "c\n"),
            ("ignored.log", "not copied\n"),
            (".dockerignore", "*.log\n"),
        ],
    );
    std::os::unix::fs::symlink("sub/b.txt", ctx.join("link")).expect("symlink");
    std::fs::hard_link(ctx.join("a.txt"), ctx.join("sub/a-again.txt")).expect("hardlink");
    ctx
}

fn build(env: &Env, args: &[&str], ctx: &Path) -> String {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push(s(ctx));
    let (_, err) = env.ok(&all, None);
    err
}

#[test]
fn a_last_copy_is_streamed_and_its_tar_is_the_copied_directorys() {
    let env = Env::new();
    let ctx = context(&env, "ctx", "FROM scratch\nCOPY . /\n");
    build(&env, &["-t", "streamed:1"], &ctx);
    let streamed = diff_ids(&env, "streamed:1");
    assert_eq!(streamed.len(), 1);
    assert!(
        !layer_dir(&env, &streamed[0]).exists(),
        "a layer nothing reads got a directory"
    );
    // The same build when an output reads files: the layer is made as a
    // directory and packed, and gives the same tar.
    let out = env.path("out");
    build(
        &env,
        &[
            "--no-cache",
            "-o",
            "type=image,name=packed:1",
            "-o",
            &format!("type=local,dest={}", s(&out)),
        ],
        &ctx,
    );
    let packed = diff_ids(&env, "packed:1");
    assert_eq!(
        streamed, packed,
        "the streamed tar differs from the packed one"
    );
    assert!(layer_dir(&env, &packed[0]).is_dir());
    assert_eq!(
        std::fs::read_to_string(out.join("sub/deeper/c.txt")).expect("c"),
        "c\n"
    );
    assert!(
        !out.join("ignored.log").exists(),
        ".dockerignore is applied"
    );
    // The store's tar holds what the context holds (the excluded file left
    // out, the hardlink kept as one).
    let tar = std::fs::read(
        env.path("store")
            .join("blobs/sha256")
            .join(streamed[0].strip_prefix("sha256:").expect("hex")),
    )
    .expect("blob");
    let mut names = Vec::new();
    let mut links = 0;
    for entry in tar::Archive::new(tar.as_slice()).entries().expect("tar") {
        let entry = entry.expect("entry");
        if entry.header().entry_type() == tar::EntryType::Link {
            links += 1;
        }
        names.push(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
    }
    assert!(!names.iter().any(|n| n.contains("ignored")), "{names:?}");
    assert!(names.contains(&"sub/deeper/c.txt".to_string()), "{names:?}");
    assert_eq!(links, 1, "{names:?}");
}

#[test]
fn a_streamed_layer_is_unpacked_when_a_later_build_runs_on_it() {
    let env = Env::new();
    let first = "FROM busybox\nCOPY . /ctx/\n";
    let ctx = context(&env, "ctx", first);
    build(&env, &["-t", "first:1"], &ctx);
    let ids = diff_ids(&env, "first:1");
    let copied = ids.last().expect("layer").clone();
    assert!(!layer_dir(&env, &copied).exists());
    // The same steps and a RUN on top: the COPY is a cache hit, and the
    // RUN reads its files.
    let second = format!(
        "{first}RUN cat /ctx/sub/deeper/c.txt /ctx/link /ctx/sub/a-again.txt > /out && test ! -e /ctx/ignored.log\n"
    );
    // (Outside the context: a new file in it would change the COPY's key.)
    let dockerfile = env.path("run.Dockerfile");
    std::fs::write(&dockerfile, second).expect("write");
    let out = env.path("out");
    let log = build(
        &env,
        &[
            "-f",
            s(&dockerfile),
            "-t",
            "second:1",
            "-o",
            &format!("type=local,dest={}", s(&out)),
        ],
        &ctx,
    );
    let lines: Vec<&str> = log.lines().collect();
    let copy_step = lines
        .iter()
        .find(|l| l.contains("COPY . /ctx/"))
        .and_then(|l| l.split_whitespace().next())
        .expect("the COPY step");
    assert!(
        lines.contains(&format!("{copy_step} CACHED").as_str()),
        "the COPY is not a cache hit: {log}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("out")).expect("out"),
        "c\nb\na\n"
    );
    assert!(layer_dir(&env, &copied).is_dir(), "unpacked for the RUN");
}

/// Sets extended attribute `name` of `path` to `value`.
fn set_xattr(path: &Path, name: &str, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
    let n = std::ffi::CString::new(name).expect("name");
    // SAFETY: valid C strings and a buffer of the given length.
    unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        ) == 0
    }
}

#[test]
fn a_layer_directory_from_before_a_crash_is_unpacked_again_from_its_blob() {
    let env = Env::new();
    let first = "FROM busybox\nCOPY data.txt /data.txt\nRUN cp /data.txt /copy.txt\n";
    let ctx = env.context("ctx", &[("Dockerfile", first), ("data.txt", "data\n")]);
    build(&env, &["-t", "first:1"], &ctx);
    let ids = diff_ids(&env, "first:1");
    let copied = layer_dir(&env, &ids[ids.len() - 2]);
    assert!(
        copied.join("data.txt").is_file(),
        "the RUN read the COPY layer"
    );
    // What a crash can leave: a file of the directory never written out,
    // in a directory an earlier boot made.
    std::fs::write(copied.join("data.txt"), "").expect("truncate");
    if !set_xattr(&copied, "user.kiln.layer", b"a-boot-before-the-crash") {
        eprintln!("skipped: no user xattrs where the store is");
        return;
    }
    let dockerfile = env.path("second.Dockerfile");
    std::fs::write(
        &dockerfile,
        format!("{first}RUN cat /data.txt /copy.txt > /out\n"),
    )
    .expect("write");
    let out = env.path("out");
    build(
        &env,
        &[
            "-f",
            s(&dockerfile),
            "-o",
            &format!("type=local,dest={}", s(&out)),
        ],
        &ctx,
    );
    assert_eq!(
        std::fs::read_to_string(out.join("out")).expect("out"),
        "data\ndata\n",
        "the doubtful directory was used"
    );
    assert_eq!(
        std::fs::read_to_string(copied.join("data.txt")).expect("data"),
        "data\n",
        "unpacked again"
    );
}
