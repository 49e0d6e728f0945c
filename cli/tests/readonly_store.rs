//! A store on a read-only mount (issue 15, item 4): `kiln images`,
//! `inspect`, `history`, `save` (docker-archive and OCI) and a build that only reuses
//! its cache (to `type=tar` and `type=local` outputs) work from it and
//! write nothing; a command that must write (`tag`, `import`, a build to the store,
//! a build step the cache lacks) says in one line that the store is
//! read-only and how to use a writable one, and exits 1.
//! Needs root (a read-only bind mount); elsewhere the test says why it is
//! skipped.

mod common;

use common::{s, Env};
use std::path::{Path, PathBuf};
use std::process::Command;

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A read-only bind mount of a directory, undone on drop.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn mount(from: &Path, at: &Path) -> ReadOnly {
        std::fs::create_dir_all(at).expect("mount point");
        let run = |args: &[&str]| {
            let status = Command::new("mount").args(args).status().expect("mount");
            assert!(status.success(), "mount {args:?}");
        };
        run(&["--bind", s(from), s(at)]);
        let mounted = ReadOnly(at.to_path_buf());
        run(&["-o", "remount,bind,ro", s(at)]);
        mounted
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every path under `dir` with its length and modification time.
fn snapshot(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("list").flatten() {
            let md = e.metadata().expect("metadata");
            if md.is_dir() {
                stack.push(e.path());
            }
            out.push((e.path(), md.len(), md.modified().expect("mtime")));
        }
    }
    out.sort();
    out
}

#[test]
fn read_only_store_serves_reads_and_refuses_writes_in_one_line() {
    if !is_root() {
        eprintln!("skipped: a read-only bind mount needs root");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo hi > /hi\n")],
    );
    env.ok(&["build", "-t", "built:latest", s(&ctx)], None);
    let writable_images = env.images();
    let store = env.path("store");
    let before = snapshot(&store);
    let ro = env.path("ro-store");
    let _mount = ReadOnly::mount(&store, &ro);

    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(args)
            .env("KILN_ROOT", &ro)
            .env("DOCKER_CONFIG", env.path("docker"))
            .env("XDG_CONFIG_HOME", env.path("xdg"))
            .env_remove("KILN_CONFIG")
            .output()
            .expect("kiln runs")
    };
    let ok = |args: &[&str]| {
        let out = run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "kiln {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut worked = 0;
    assert_eq!(ok(&["images"]), writable_images);
    worked += 1;
    let inspected = ok(&["inspect", "built:latest"]);
    assert!(inspected.contains("\"Config\""), "{inspected}");
    worked += 1;
    let history = ok(&["history", "built:latest"]);
    assert!(
        history.contains("RUN /bin/sh -c echo hi > /hi"),
        "{history}"
    );
    worked += 1;
    for (format, name) in [("docker", "img.tar"), ("oci", "img-oci.tar")] {
        let tar = env.path(name);
        ok(&[
            "save",
            "--format",
            format,
            "-o",
            s(&tar),
            "built:latest",
            "busybox:latest",
        ]);
        // The archive loads into a fresh store and holds the built file.
        let fresh = Env::new();
        fresh.ok(&["load", "-i", s(&tar)], None);
        let images = fresh.images();
        assert!(images.contains("built"), "{images}");
        worked += 1;
    }

    // A build that only reuses the cache, to filesystem outputs.
    let rootfs_tar = env.path("rootfs.tar");
    ok(&[
        "build",
        "-o",
        &format!("type=tar,dest={}", s(&rootfs_tar)),
        s(&ctx),
    ]);
    let listed = Command::new("tar")
        .arg("tf")
        .arg(&rootfs_tar)
        .output()
        .expect("tar");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.lines().any(|l| l == "hi"), "{listed}");
    worked += 1;
    let local = env.path("rootfs-dir");
    ok(&[
        "build",
        "-o",
        &format!("type=local,dest={}", s(&local)),
        s(&ctx),
    ]);
    assert_eq!(
        std::fs::read_to_string(local.join("hi")).expect("hi"),
        "hi\n"
    );
    worked += 1;

    let refusal = |out: std::process::Output, args: &[&str], expected: String| {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr, expected, "{args:?}");
    };
    let mut refused = 0;
    let tag = ["tag", "busybox:latest", "other:latest"];
    refusal(
        run(&tag),
        &tag,
        format!(
            "kiln: store {} is read-only: use --root DIR for a writable store\n",
            ro.display()
        ),
    );
    refused += 1;
    let rootfs = env.path("rootfs.tar");
    std::fs::write(&rootfs, kiln_test_support::TarBuilder::new().into_bytes()).expect("tar");
    let import = ["import", s(&rootfs), "-t", "imported:latest"];
    refusal(
        run(&import),
        &import,
        format!(
            "kiln: store {} is read-only: use --root DIR for a writable store\n",
            ro.display()
        ),
    );
    refused += 1;
    let build = ["build", "-t", "again:latest", s(&ctx)];
    refusal(
        run(&build),
        &build,
        format!(
            "kiln: store {} is read-only and the image output (the store) writes to it: \
             use --root DIR for a writable store, or build to -o type=local or type=tar from this one\n",
            ro.display()
        ),
    );
    refused += 1;
    // A step the cache does not hold would have to run: the error names it.
    let changed = env.context(
        "changed",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo hi > /hi\nRUN echo new > /new\n",
        )],
    );
    let miss = ["build", "-o", "type=tar,dest=-", s(&changed)];
    let out = run(&miss);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let expected = format!(
        "kiln: Dockerfile:3:1: [stage-0 2] RUN echo new > /new: not cached in the read-only store {}: \
         use --root DIR for a writable store",
        ro.display()
    );
    assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    refused += 1;
    assert_eq!(snapshot(&store), before, "the store did not change");
    println!("read-only store: commands that worked {worked}, writes refused {refused}");
}
