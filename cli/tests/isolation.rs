//! The isolation ladder (issue 16): `--isolation chroot` builds the
//! same layers as the sandbox, gives RUN steps working `/dev` nodes,
//! hosts and resolv.conf, kills what a step leaves running, keeps the
//! step from leaving its root, and refuses what it cannot do; `auto`
//! takes the strongest isolation that works and says so once; where none
//! works, a RUN step fails with the causes and the ways out, and a
//! Dockerfile without RUN still builds. The probes are forced with
//! `KILN_ISOLATION_PROBE` here, on a host where both isolations work.

mod common;

use common::{listing, s, Env};

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const DOCKERFILE: &str = "FROM busybox\n\
    RUN mkdir -p /d/sub && echo hi > /d/f && chown 5:7 /d/f && chmod 4755 /d/f && \\\n\
        ln /d/f /d/hard && ln -s /d/f /d/link && mknod /d/fifo p && rm /bin/ls && \\\n\
        ln /etc/group /etc/group.hl && \\\n\
        rm -rf /etc/network && echo more >> /etc/passwd && touch -d @0 /d/old && \\\n\
        cat /etc/hosts > /d/hosts && echo gone > /dev/null && head -c 8 /dev/urandom | wc -c > /d/random && \\\n\
        echo x > /dev/shm/scratch && mkdir -p /tmp/t && echo t > /tmp/t/f\n\
    RUN <<EOF\n#!/bin/sh\necho from a heredoc script > /d/script\nEOF\n\
    USER 1234:1234\n\
    RUN id > /tmp/id && (sleep 600 &) && echo left-a-sleeper\n";

fn build(env: &Env, name: &str, extra: &[&str], ctx: &std::path::Path) -> (Vec<String>, String) {
    let out = env.path(&format!("{name}.tar"));
    let dest = format!("type=docker,dest={}", s(&out));
    let mut args = vec!["build", "--progress=plain", "--no-cache", "-o", &dest];
    args.extend_from_slice(extra);
    args.push(s(ctx));
    let (_, log) = env.ok(&args, None);
    (listing(&out), log)
}

#[test]
fn chroot_builds_the_sandboxs_layers_and_runs_what_steps_need() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (sandbox, _) = build(&env, "sandbox", &["--isolation", "sandbox"], &ctx);
    let started = std::time::Instant::now();
    let (chroot, log) = build(&env, "chroot", &["--isolation", "chroot"], &ctx);
    assert!(log.contains("left-a-sleeper"), "{log}");
    // The step's background sleep was killed with its session.
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 600$"])
        .output()
        .expect("pgrep");
    assert!(sleepers.stdout.is_empty(), "a sleeper survived its step");
    assert!(
        sandbox.iter().any(|l| l.contains(" 5 7 3 d/f")),
        "{sandbox:#?}"
    );
    assert!(
        sandbox.iter().any(|l| l.contains("d/hosts")),
        "{sandbox:#?}"
    );
    assert_eq!(chroot, sandbox, "chroot and sandbox layers differ");
    println!(
        "isolation: chroot = sandbox over {} layer entries; chroot build {:.1} s",
        chroot.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn chroot_keeps_steps_in_their_root_and_refuses_what_it_cannot_do() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    let env = Env::new();
    let escape = env.context(
        "escape",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN mkdir /x && chroot /x /bin/true\n",
        )],
    );
    let err = env.fails(&["build", "--isolation", "chroot", s(&escape)], None);
    assert!(err.contains("Operation not permitted"), "{err}");
    let host = env.context(
        "host",
        &[(
            "Dockerfile",
            &format!("FROM busybox\nRUN test ! -e {}\n", s(&env.path("store"))),
        )],
    );
    env.ok(&["build", "--isolation", "chroot", s(&host)], None);
    for (name, line, expected) in [
        (
            "cache",
            "RUN --mount=type=cache,target=/c true",
            "RUN --mount (on /c) needs a mount, which the chroot isolation cannot make",
        ),
        (
            "none",
            "RUN --network=none true",
            "RUN --network=none needs a network namespace, which the chroot isolation cannot create",
        ),
    ] {
        let ctx = env.context(name, &[("Dockerfile", &format!("FROM busybox\n{line}\n"))]);
        let err = env.fails(&["build", "--isolation", "chroot", s(&ctx)], None);
        // The error line; the Dockerfile excerpt follows it.
        let last = err
            .lines()
            .rfind(|l| l.starts_with("kiln: "))
            .unwrap_or_default();
        assert_eq!(
            last,
            format!("kiln: Dockerfile:2:1: [stage-0 1] {line}: {expected}"),
            "{err}"
        );
    }
}

#[test]
fn auto_takes_the_strongest_isolation_that_works_and_says_so_once() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n",
        )],
    );
    let plain = ["build", "--progress=plain", "--no-cache", s(&ctx)];
    let out = env.run_env(&plain, None, &[]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("NOTE: isolation sandbox: new namespaces can be created here")
            .count(),
        1,
        "{log}"
    );
    let refused = [("KILN_ISOLATION_PROBE", "namespaces-refused")];
    let out = env.run_env(&plain, None, &refused);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("NOTE: isolation chroot: new namespaces are refused here")
            .count(),
        1,
        "{log}"
    );
    let json = ["build", "--progress=rawjson", "--no-cache", s(&ctx)];
    let out = env.run_env(&json, None, &refused);
    let notes: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "note")
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("isolation chroot:")));

    // Nothing works: RUN fails with the causes and the ways out; a
    // Dockerfile without RUN builds.
    let neither = [("KILN_ISOLATION_PROBE", "namespaces-refused,chroot-refused")];
    let out = env.run_env(&["build", "--no-cache", s(&ctx)], None, &neither);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err
        .lines()
        .rfind(|l| l.starts_with("kiln: "))
        .unwrap_or_default();
    assert!(
        last.starts_with("kiln: Dockerfile:2:1: [stage-0 1] RUN echo one > /one: no isolation can run RUN steps here: new namespaces are refused"),
        "{last}"
    );
    for way in [
        "seccompProfile.type: Unconfined",
        "hostUsers: false",
        "--security-opt seccomp=unconfined",
        "CAP_SYS_CHROOT",
    ] {
        assert!(last.contains(way), "{way}: {last}");
    }
    let no_run = env.context(
        "norun",
        &[("Dockerfile", "FROM busybox\nCOPY Dockerfile /d\nENV A=1\n")],
    );
    let out = env.run_env(&["build", "-t", "norun:1", s(&no_run)], None, &neither);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn isolation_comes_from_the_flag_the_environment_or_the_config() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\n")]);
    let out = env.run_env(&["build", s(&ctx)], None, &[("KILN_ISOLATION", "jail")]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        err.lines().last().unwrap_or_default(),
        "kiln: KILN_ISOLATION=jail: unknown isolation \"jail\" (auto, sandbox or chroot)"
    );
    let out = env.run(&["build", "--isolation", "jail", s(&ctx)], None);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("unknown isolation \"jail\""), "{err}");
    let err = env.fails(
        &[
            "build",
            "--isolation",
            "chroot",
            "--runtime",
            "runc",
            s(&ctx),
        ],
        None,
    );
    assert!(
        err.contains("--isolation chroot: the OCI runtime runc needs the sandbox isolation"),
        "{err}"
    );
    let config = env.path("xdg/kiln/config.toml");
    std::fs::create_dir_all(config.parent().expect("parent")).expect("mkdir");
    std::fs::write(&config, "isolation = \"cell\"\n").expect("config");
    let err = env.fails(&["build", s(&ctx)], None);
    assert!(
        err.contains("isolation = \"cell\": unknown isolation \"cell\""),
        "{err}"
    );
}

/// A crafted image or step aims kiln's own staging at the host: `/dev` a
/// symlink, `/etc/hosts` a symlink to a host path. kiln resolves where it
/// stages inside the rootfs and undoes without following links, so
/// nothing outside the rootfs is written and no device node reaches a
/// layer.
#[test]
fn chroot_staging_follows_no_link_out_of_the_rootfs() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    let env = Env::new();
    let outside = env.path("outside-target");
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            &format!(
                "FROM busybox\n\
                 RUN rm -rf /dev && ln -s /tmp/devs /dev && mkdir /tmp/devs\n\
                 RUN rm -f /etc/hosts && ln -s {} /etc/hosts\n\
                 RUN echo after > /after\n",
                s(&outside)
            ),
        )],
    );
    let out = env.path("out.tar");
    let dest = format!("type=docker,dest={}", s(&out));
    env.ok(
        &["build", "--isolation", "chroot", "-o", &dest, s(&ctx)],
        None,
    );
    assert!(!outside.exists(), "kiln wrote through the step's link");
    let layers = listing(&out);
    // Staging made the nodes where /dev leads (tmp/devs); none stays.
    let devices: Vec<&String> = layers
        .iter()
        .filter(|l| {
            ["null", "zero", "full", "random", "urandom", "tty"]
                .iter()
                .any(|d| l.contains(&format!(" tmp/devs/{d} ")))
        })
        .collect();
    assert!(devices.is_empty(), "device nodes in a layer: {devices:?}");
    assert!(
        layers.iter().any(|l| l.contains(" tmp/devs/ ")),
        "{layers:#?}"
    );
    assert!(
        layers.iter().any(|l| l.contains(" etc/hosts Some")),
        "{layers:#?}"
    );
}

/// Ctrl-C during a chroot step: the build stops with 130, the step's
/// process group is killed, and the staging is undone (the next build of
/// the same step succeeds from a clean store).
#[test]
fn an_interrupted_chroot_step_leaves_nothing_running() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    use std::io::{BufRead, BufReader};
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo started && (sleep 611 &) && sleep 612\n",
        )],
    );
    let mut child = env
        .command(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--progress=plain",
            "--isolation",
            "chroot",
            s(&ctx),
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kiln runs");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    for line in lines.by_ref() {
        if line.expect("line").contains("started") {
            break;
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("kiln ends");
    assert_eq!(status.code(), Some(130), "{rest:?}");
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "^sleep 61[12]$"])
        .output()
        .expect("pgrep");
    assert!(sleepers.stdout.is_empty(), "the step's processes survived");
    let runs = std::fs::read_dir(env.path("store/runs"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(runs, 0, "scratch directories left");
}

/// A root without `/etc` (busybox alone on `scratch`): the step gets its
/// hosts, resolv.conf and hostname files all in the `/etc` it needs, and
/// the layer keeps none of them, as the sandbox's.
#[test]
fn chroot_steps_on_a_root_without_etc_leave_no_trace_of_it() {
    if !is_root() {
        eprintln!("skipped: the chroot isolation needs root");
        return;
    }
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS b\nFROM scratch\nCOPY --from=b /bin/busybox /bin/busybox\n\
             RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox cat /etc/hosts > /hosts-seen\"]\n",
        )],
    );
    let (sandbox, _) = build(&env, "sandbox", &["--isolation", "sandbox"], &ctx);
    let (chroot, _) = build(&env, "chroot", &["--isolation", "chroot"], &ctx);
    assert!(
        chroot.iter().any(|l| l.contains(" hosts-seen ")),
        "{chroot:#?}"
    );
    assert!(!chroot.iter().any(|l| l.contains(" etc/")), "{chroot:#?}");
    assert_eq!(chroot, sandbox, "chroot and sandbox layers differ");
}
