//! A non-root user with /etc/subuid and /etc/subgid entries builds the same
//! image as root, file owners included (kiln enters a user namespace
//! through newuidmap/newgidmap), with the built-in runtime, runc and crun. CI creates the user `kilnrootless`
//! (.ci/run); elsewhere the test says why it is skipped.

mod common;

use common::{listing, BUSYBOX};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

const USER: &str = "kilnrootless";

const DOCKERFILE: &str = "FROM busybox\n\
    RUN mkdir /d && echo hi > /d/f && chown 5:7 /d/f && chown 1000:1000 /d && \\\n\
        mknod /d/fifo p && chmod 4755 /d/f && rm /bin/ls && rm -rf /etc/network && \\\n\
        echo builder:x:2000:2000::/tmp:/bin/sh >> /etc/passwd && echo builder:x:2000: >> /etc/group\n\
    USER builder\n\
    RUN touch /tmp/mine && mkdir /tmp/app-dir && ln /tmp/mine /tmp/hard\n";

/// (uid, gid) of `USER`, when it exists with subordinate ids.
fn rootless_user() -> Option<(u32, u32)> {
    // SAFETY: no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let out = Command::new("id").args(["-u", USER]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", USER]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let subuid = std::fs::read_to_string("/etc/subuid").ok()?;
    subuid
        .lines()
        .any(|l| l.starts_with(&format!("{USER}:")))
        .then_some((uid, gid))
}

/// Runs kiln (`bin`) as `user` (or as root when `None`).
fn kiln(bin: &Path, user: Option<&str>, store: &Path, args: &[&str]) {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("runuser");
            c.args(["-u", u, "--"]).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    let out = cmd
        .arg("--root")
        .arg(store)
        .args(args)
        .env("HOME", store.parent().expect("parent"))
        .env_remove("KILN_ROOT")
        .env_remove("XDG_DATA_HOME")
        .output()
        .expect("kiln runs");
    assert!(
        out.status.success(),
        "kiln {args:?} as {user:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rootless_build_equals_root_build() {
    let Some((uid, gid)) = rootless_user() else {
        eprintln!(
            "skipped: needs root and the user {USER} with /etc/subuid entries (.ci/run makes it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // The user needs to reach the binary, the context and its store.
    let bin = dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &bin).expect("copy kiln");
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).expect("write");
    for p in [dir, &bin, &ctx, &ctx.join("Dockerfile")] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    }
    let user_home = dir.join("user");
    let root_home = dir.join("root");
    for d in [&user_home, &root_home] {
        std::fs::create_dir(d).expect("mkdir");
    }
    std::os::unix::fs::chown(&user_home, Some(uid), Some(gid)).expect("chown");
    let user_store = user_home.join("store");
    let root_store = root_home.join("store");
    for (user, store, home) in [
        (Some(USER), &user_store, &user_home),
        (None, &root_store, &root_home),
    ] {
        let out = home.join("image.tar");
        kiln(
            &bin,
            user,
            store,
            &["load", "-i", BUSYBOX, "-t", "busybox:latest"],
        );
        kiln(
            &bin,
            user,
            store,
            &[
                "build",
                "-o",
                &format!("type=docker,dest={}", out.display()),
                ctx.to_str().expect("utf-8"),
            ],
        );
    }
    let rootless = listing(&user_home.join("image.tar"));
    let root = listing(&root_home.join("image.tar"));
    assert!(
        rootless.iter().any(|l| l.starts_with("4755 5 7 3 d/f")),
        "{rootless:#?}"
    );
    assert!(
        rootless
            .iter()
            .any(|l| l.contains(" 2000 2000 0 tmp/hard None")),
        "{rootless:#?}"
    );
    assert!(
        rootless
            .iter()
            .any(|l| l.contains("2000 2000 0 tmp/mine Some(\"tmp/hard\")")),
        "{rootless:#?}"
    );
    assert_eq!(rootless, root);

    // The OCI runtimes run rootless too (runc in its rootless mode, /sys
    // bound instead of mounted, no cgroups) and make the same layers.
    for runtime in ["runc", "crun"] {
        let out = user_home.join(format!("{runtime}.tar"));
        kiln(
            &bin,
            Some(USER),
            &user_store,
            &[
                "build",
                "--no-cache",
                "--runtime",
                runtime,
                "-o",
                &format!("type=docker,dest={}", out.display()),
                ctx.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(listing(&out), root, "{runtime}");
    }

    // On the host, the user's layer files belong to its subordinate ids.
    let subuid: u32 = std::fs::read_to_string("/etc/subuid")
        .expect("subuid")
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{USER}:")))
        .and_then(|r| r.split(':').next())
        .and_then(|s| s.parse().ok())
        .expect("range");
    let layers = user_store.join("layers");
    let mut owners = Vec::new();
    for layer in std::fs::read_dir(&layers).expect("layers").flatten() {
        let f = layer.path().join("d/f");
        if let Ok(md) = std::fs::symlink_metadata(&f) {
            owners.push(md.uid());
        }
    }
    assert!(
        owners.contains(&(subuid + 4)),
        "{owners:?} (subuid {subuid})"
    );
}

/// Issue 16's non-root store bug: in a container kiln is pid 1 in every
/// run, so a bare pid named the temporaries of an earlier run too and a
/// new build collided with what that run left (`creating
/// …/layers/work-1-0: File exists`). Here kiln runs as the user and as pid
/// 1 of a new pid namespace, three times in a row, on a store holding what
/// earlier runs left: temporaries under a dead process's tag and its free
/// owner lock, older bare-pid names that this run's pids reuse, a
/// directory without permissions, and one the user cannot remove. Every
/// build succeeds; what the user can remove is gone.
#[test]
fn a_non_root_store_stays_usable_build_after_build_as_pid_1() {
    let Some((uid, gid)) = rootless_user() else {
        eprintln!(
            "skipped: needs root and the user {USER} with /etc/subuid entries (.ci/run makes it)"
        );
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let bin = dir.join("kiln");
    std::fs::copy(env!("CARGO_BIN_EXE_kiln"), &bin).expect("copy kiln");
    let ctx = dir.join("ctx");
    std::fs::create_dir(&ctx).expect("mkdir");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir -p /x/y && chmod 000 /x/y && date > /when\n",
    )
    .expect("write");
    let home = dir.join("user");
    std::fs::create_dir(&home).expect("mkdir");
    for p in [dir, &bin, &ctx, &ctx.join("Dockerfile"), &home] {
        std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
    }
    let store = home.join("store");
    kiln(
        &bin,
        Some(USER),
        &store,
        &["load", "-i", BUSYBOX, "-t", "busybox:latest"],
    );

    // What earlier runs left. Their kiln was pid 1 (and its rootless child
    // pid 2) as this run's will be.
    let dead = "1x00000000000000aa";
    let layers = store.join("layers");
    let removable = [
        layers.join(format!("work-{dead}-0")),
        layers.join(format!("tmp-{dead}-0")),
        store.join(format!(".tmp-{dead}-stdin")),
        store.join("owners").join(dead),
        layers.join("work-2-0"),
        layers.join("tmp-2-0"),
    ];
    for p in &removable[..3] {
        std::fs::create_dir_all(p.join("work/work")).expect("mkdir");
        std::fs::set_permissions(p.join("work/work"), std::fs::Permissions::from_mode(0o000))
            .expect("chmod");
    }
    std::fs::create_dir_all(store.join("owners")).expect("owners");
    std::fs::write(&removable[3], b"").expect("owner file");
    for p in &removable[4..] {
        std::fs::create_dir_all(p.join("work")).expect("mkdir");
    }
    // Made by root: the user cannot remove what is inside.
    let foreign = layers.join(format!("work-{dead}-1"));
    std::fs::create_dir_all(foreign.join("work")).expect("mkdir");
    let chown_r = |p: &Path, u: u32, g: u32| {
        let ok = Command::new("chown")
            .arg("-R")
            .arg(format!("{u}:{g}"))
            .arg(p)
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown {}", p.display());
    };
    chown_r(&store, uid, gid);
    chown_r(&foreign, 0, 0);

    for round in 1..=3 {
        let out = Command::new("unshare")
            .args(["--pid", "--fork", "--mount-proc", "setpriv"])
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={gid}"))
            .args(["--init-groups", "--"])
            .arg(&bin)
            .arg("--root")
            .arg(&store)
            .args(["build", "--no-cache", "-t", &format!("again:{round}")])
            .arg(&ctx)
            .env("HOME", &home)
            .env_remove("KILN_ROOT")
            .env_remove("XDG_DATA_HOME")
            .output()
            .expect("kiln runs");
        assert!(
            out.status.success(),
            "build {round} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let left: Vec<&PathBuf> = removable.iter().filter(|p| p.exists()).collect();
    println!(
        "non-root store as pid 1: builds 3, failures 0, removable leftovers {} of {}, foreign kept {}",
        left.len(),
        removable.len(),
        foreign.exists()
    );
    assert!(left.is_empty(), "left: {left:?}");
}
