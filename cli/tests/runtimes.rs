//! The same build through every runtime and snapshotter gives the same
//! layers: the built-in sandbox with overlayfs, runc and crun (external
//! OCI runtimes), and copy snapshots, chosen by kiln itself when overlayfs
//! is refused (a store on overlayfs) and reported in the progress output.

mod common;

use common::{listing, s, Env};
use std::process::Command;

const DOCKERFILE: &str = "FROM busybox AS tools\n\
    RUN mkdir /out && echo tool > /out/tool\n\
    FROM busybox\n\
    RUN mkdir -p /d/sub && echo hi > /d/f && chown 5:7 /d/f && chmod 4755 /d/f && \\\n\
        ln /d/f /d/hard && ln -s /d/f /d/link && mknod /d/fifo p && rm /bin/ls && \\\n\
        rm -rf /etc/network && echo more >> /etc/passwd && touch -d @0 /d/old\n\
    RUN --mount=type=bind,from=tools,source=/out,target=/t cp /t/tool /d/tool && \\\n\
        rm /d/hard && chmod 700 /d/sub && id > /d/id\n";

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Builds `ctx` with extra arguments into a docker archive; returns the
/// listing of its layers and the log.
fn build(env: &Env, name: &str, extra: &[&str], ctx: &std::path::Path) -> (Vec<String>, String) {
    let out = env.path(&format!("{name}.tar"));
    let dest = format!("type=docker,dest={}", s(&out));
    let mut args = vec!["build", "--progress=plain", "-o", &dest];
    args.extend_from_slice(extra);
    args.push(s(ctx));
    let (_, log) = env.ok(&args, None);
    (listing(&out), log)
}

#[test]
fn runc_and_crun_build_the_same_layers_as_the_builtin_runtime() {
    if !is_root() {
        eprintln!("skipped: external OCI runtimes need root");
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (builtin, _) = build(&env, "builtin", &["--no-cache"], &ctx);
    assert!(
        builtin.iter().any(|l| l.contains("5 7 3 d/f")),
        "{builtin:#?}"
    );
    for runtime in ["runc", "crun"] {
        if !have(runtime) {
            // .ci/run installs both.
            assert!(std::env::var_os("CI").is_none(), "CI must have {runtime}");
            eprintln!("{runtime} is not installed: not compared");
            continue;
        }
        let (layers, _) = build(&env, runtime, &["--no-cache", "--runtime", runtime], &ctx);
        assert_eq!(layers, builtin, "{runtime}");
    }
    let err = env.fails(&["build", "--runtime", "no-such-runtime", s(&ctx)], None);
    assert!(err.contains("no-such-runtime"), "{err}");
}

#[test]
fn copy_snapshots_when_overlayfs_is_refused() {
    if !is_root() {
        eprintln!("skipped: mounting an overlay for the store needs root");
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (overlay, log) = build(&env, "overlay", &[], &ctx);
    assert!(!log.contains("copy snapshots"), "{log}");

    // Forced.
    let out = env.path("forced.tar");
    let output = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["build", "--no-cache", "-o"])
        .arg(format!("type=docker,dest={}", s(&out)))
        .arg(&ctx)
        .env("KILN_ROOT", env.path("store"))
        .env("KILN_RUNTIME_FALLBACKS", "copy")
        .output()
        .expect("kiln runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(listing(&out), overlay, "forced copy snapshots");

    // Chosen: a store on overlayfs cannot hold overlay upper directories.
    let base = env.path("ovl");
    let out = env.path("chosen.tar");
    let script = format!(
        "set -e; mount -t tmpfs tmpfs {b}; mkdir {b}/l {b}/u {b}/w {b}/m; \
         mount -t overlay overlay -o lowerdir={b}/l,upperdir={b}/u,workdir={b}/w {b}/m; \
         {kiln} --root {b}/m/store load -i {bb} -t busybox:latest >/dev/null; \
         {kiln} --root {b}/m/store build --progress=plain -o type=docker,dest={out} {ctx}",
        b = s(&base),
        kiln = env!("CARGO_BIN_EXE_kiln"),
        bb = common::BUSYBOX,
        out = s(&out),
        ctx = s(&ctx),
    );
    std::fs::create_dir(&base).expect("mkdir");
    let output = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .expect("unshare runs");
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(log.contains("NOTE: overlayfs cannot be used here"), "{log}");
    assert_eq!(
        log.matches("NOTE: overlayfs cannot be used here").count(),
        1,
        "said once: {log}"
    );
    assert_eq!(listing(&out), overlay, "copy snapshots chosen by kiln");
}
