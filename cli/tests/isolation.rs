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
        let last = err.lines().last().unwrap_or_default();
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
    let last = err.lines().last().unwrap_or_default();
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
