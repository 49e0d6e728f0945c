//! Outputs that are not files (issue 17): `--load` and `-o type=docker`
//! without `dest` load the image into a real dockerd through its API
//! socket; `-o type=cacheonly` exports nothing but `--cache-to`.
//!
//! The engine tests use the dockerd `.ci/run` starts for the engine test
//! (`KILN_ENGINE_DOCKER_HOST`); without it they say why they skipped
//! (and fail under `CI=true`). The error tests need no engine: they point
//! `DOCKER_HOST` at a missing socket, a dead one, one that is not Docker
//! and one that never answers.

mod common;

use common::{s, Env};
use kiln_test_support::{skopeo_ok, Auth, Registry};
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const DOCKERFILE: &str = "FROM busybox\n\
     LABEL org.example.kind=loaded\n\
     ENV KIND=kiln\n\
     RUN echo \"written by RUN $$\" > /file && echo second > /other\n\
     CMD [\"cat\", \"/file\"]\n";

fn ok_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> (String, String) {
    let out = env.run_env(args, None, vars);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "kiln {args:?} failed:\n{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn fails_env(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = env.run_env(args, None, vars);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "kiln {args:?} should fail:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

/// The dockerd socket CI gives (`unix://PATH`), or `None` after saying why.
fn engine() -> Option<String> {
    match std::env::var("KILN_ENGINE_DOCKER_HOST") {
        Ok(host) if !host.is_empty() => Some(host),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set KILN_ENGINE_DOCKER_HOST (.ci/run starts dockerd)"
            );
            eprintln!("skipped: set KILN_ENGINE_DOCKER_HOST to a dockerd socket (.ci/run does)");
            None
        }
    }
}

fn docker(host: &str, args: &[&str]) -> Output {
    let docker = if Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    };
    Command::new("timeout")
        .arg("300")
        .arg(docker)
        .args(args)
        .env("DOCKER_HOST", host)
        .output()
        .expect("docker runs")
}

fn docker_ok(host: &str, args: &[&str]) -> String {
    let out = docker(host, args);
    assert!(
        out.status.success(),
        "docker {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A tag no other run of this test uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("kiln-load-test/{name}:{}-{nanos}", std::process::id())
}

#[test]
fn load_puts_the_image_into_dockerd() {
    let Some(host) = engine() else { return };
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let tag = unique("app");
    let started = Instant::now();
    let (_, log) = ok_env(
        &env,
        &["build", "--progress=plain", "--load", "-t", &tag, s(&ctx)],
        &[("DOCKER_HOST", &host)],
    );
    eprintln!("build with --load: {:.1}s", started.elapsed().as_secs_f64());
    assert!(log.contains("loading into the Docker engine"), "{log}");
    assert!(log.contains(&format!("Loaded image: {tag}")), "{log}");
    let inspect: serde_json::Value =
        serde_json::from_str(&docker_ok(&host, &["image", "inspect", &tag])).expect("json");
    let config = &inspect[0]["Config"];
    assert_eq!(config["Labels"]["org.example.kind"], "loaded", "{inspect}");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["cat", "/file"]),
        "{inspect}"
    );
    assert!(
        config["Env"]
            .as_array()
            .expect("env")
            .contains(&"KIND=kiln".into()),
        "{inspect}"
    );
    // busybox's layer and the RUN's.
    assert_eq!(
        inspect[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(2),
        "{inspect}"
    );
    let out = docker_ok(&host, &["run", "--rm", "--network", "none", &tag]);
    assert!(out.starts_with("written by RUN "), "{out}");
    let out = docker_ok(
        &host,
        &["run", "--rm", "--network", "none", &tag, "cat", "/other"],
    );
    assert_eq!(out, "second\n");
    docker_ok(&host, &["image", "rm", &tag]);
}

#[test]
fn output_type_docker_without_dest_loads_and_push_still_pushes() {
    let Some(host) = engine() else { return };
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let name = format!("{}/{}", registry.host(), unique("pushed"));
    let meta = env.path("meta.json");
    ok_env(
        &env,
        &[
            "build",
            "-o",
            "type=docker",
            "--push",
            "-t",
            &name,
            "--metadata-file",
            s(&meta),
            s(&ctx),
        ],
        &[("DOCKER_HOST", &host)],
    );
    // Both happened: the engine has the tag, the registry the image.
    let id = docker_ok(&host, &["image", "inspect", "-f", "{{.Id}}", &name]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta).expect("metadata")).expect("json");
    assert_eq!(
        id.trim(),
        meta["containerimage.config.digest"]
            .as_str()
            .expect("config"),
        "the engine's image id is the built config"
    );
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    // Pushed as buildx pushes: an index with the image and its default
    // provenance.
    assert!(raw.contains("attestation-manifest"), "{raw}");
    docker_ok(&host, &["image", "rm", &name]);

    // No tag: the engine gets the image by id only (as docker load of an
    // untagged archive).
    let meta2 = env.path("meta2.json");
    let (_, log) = ok_env(
        &env,
        &[
            "build",
            "--load",
            "--build-arg",
            "X=untagged",
            "--metadata-file",
            s(&meta2),
            s(&ctx),
        ],
        &[("DOCKER_HOST", &host)],
    );
    let meta2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&meta2).expect("metadata")).expect("json");
    let config = meta2["containerimage.config.digest"]
        .as_str()
        .expect("config");
    assert!(log.contains("Loaded image ID"), "{log}");
    let out = docker_ok(
        &host,
        &["run", "--rm", "--network", "none", config, "cat", "/other"],
    );
    assert_eq!(out, "second\n");
}

/// A unix socket at `path` served by `serve` on a thread, for each
/// connection.
fn fake_engine(path: &Path, serve: fn(std::os::unix::net::UnixStream)) {
    let listener = UnixListener::bind(path).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || serve(conn));
        }
    });
}

#[test]
fn a_missing_or_wrong_engine_is_one_line_before_the_build() {
    let env = Env::new();
    // The RUN would take 30 s: every error below comes before it.
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN sleep 30 && touch /x\n")],
    );
    let missing = env.path("nothing-here.sock");
    let not_a_socket = env.path("plain-file");
    std::fs::write(&not_a_socket, "x").expect("write");
    let dead = env.path("dead.sock");
    drop(UnixListener::bind(&dead).expect("bind"));
    let cases: Vec<(String, Vec<&str>, Vec<String>)> = vec![
        (
            format!("unix://{}", s(&missing)),
            vec!["--load"],
            vec![
                format!("no Docker engine socket at {}", s(&missing)),
                format!("DOCKER_HOST=unix://{}", s(&missing)),
                "start dockerd".into(),
            ],
        ),
        (
            format!("unix://{}", s(&not_a_socket)),
            vec!["-o", "type=docker"],
            vec!["is not a socket".into()],
        ),
        (
            "ssh://builder@example".into(),
            vec!["--load"],
            vec!["not ssh://".into()],
        ),
        (
            format!("unix://{}", s(&missing)),
            vec!["--load", "--platform", "linux/amd64,linux/arm64"],
            vec!["one platform".into()],
        ),
    ];
    for (host, flags, says) in cases {
        let mut args = vec!["build"];
        args.extend(flags.iter().copied());
        args.push(s(&ctx));
        let started = Instant::now();
        let err = fails_env(&env, &args, &[("DOCKER_HOST", &host)]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{host}: the build ran first"
        );
        assert_eq!(err.trim().lines().count(), 1, "{host}: one line:\n{err}");
        assert!(err.contains("--load"), "{host}: {err}");
        for needle in says {
            assert!(err.contains(&needle), "{host}: {needle:?} in {err}");
        }
    }

    // Found, but refusing, not Docker, or silent: said after the build,
    // each in one line naming DOCKER_HOST.
    let quick = env.context("quick", &[("Dockerfile", "FROM busybox\nENV A=1\n")]);
    let garbage = env.path("garbage.sock");
    fake_engine(&garbage, |mut c| {
        let mut buf = [0u8; 1024];
        let _ = c.read(&mut buf);
        let _ = c.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
    });
    let silent = env.path("silent.sock");
    fake_engine(&silent, |mut c| {
        // Reads the request and never answers.
        let mut buf = [0u8; 1024];
        while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
    });
    for (sock, says, within) in [
        (&dead, "connection refused", 20),
        (&garbage, "did not answer as a Docker engine", 20),
        (&silent, "did not answer within 10s", 40),
    ] {
        let host = format!("unix://{}", s(sock));
        let started = Instant::now();
        let err = fails_env(
            &env,
            &["build", "--progress=quiet", "--load", s(&quick)],
            &[("DOCKER_HOST", &host)],
        );
        let took = started.elapsed();
        assert!(took < Duration::from_secs(within), "{host}: took {took:?}");
        assert_eq!(err.trim().lines().count(), 1, "{host}: one line:\n{err}");
        assert!(err.contains(says), "{host}: {says:?} in {err}");
        assert!(err.contains(&format!("DOCKER_HOST={host}")), "{err}");
    }
    // tcp:// is spoken (plain HTTP); nothing listens on port 1.
    let err = fails_env(
        &env,
        &["build", "--load", s(&quick)],
        &[("DOCKER_HOST", "tcp://127.0.0.1:1")],
    );
    assert!(err.contains("connection refused"), "{err}");
}

/// What the fake engine does with `POST /images/load`.
#[derive(Clone, Copy)]
enum LoadAnswer {
    /// Reads the archive, then answers with Docker's error message.
    ErrorDetail,
    /// Reads the archive, then answers 500 as Docker does.
    ServerError,
    /// Reads the request's head, then nothing more, and never answers.
    Stall,
}

/// Reads one request head from `c` (up to the blank line).
fn read_head(c: &mut std::os::unix::net::UnixStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match c.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return None,
        }
        if head.len() > 64 * 1024 {
            return None;
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

fn respond(c: &mut std::os::unix::net::UnixStream, status: &str, body: &str) {
    let _ = write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// A stand-in for dockerd that speaks just enough of the Engine API
/// (canned answers; test code only): `/version` as Docker 20.10, and
/// `/images/load` as `answer` says.
fn fake_docker(path: &Path, answer: LoadAnswer) {
    let listener = UnixListener::bind(path).expect("bind");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = conn;
                while let Some(head) = read_head(&mut c) {
                    if head.contains("/version ") {
                        respond(
                            &mut c,
                            "200 OK",
                            r#"{"Version":"20.10.24","ApiVersion":"1.41","MinAPIVersion":"1.12","Os":"linux","Arch":"amd64"}"#,
                        );
                        continue;
                    }
                    if !head.contains("/images/load") {
                        respond(&mut c, "404 Not Found", r#"{"message":"page not found"}"#);
                        continue;
                    }
                    if let LoadAnswer::Stall = answer {
                        std::thread::sleep(Duration::from_secs(60));
                        return;
                    }
                    // The chunked body ends with an empty chunk.
                    let mut tail: Vec<u8> = Vec::new();
                    let mut buf = [0u8; 64 * 1024];
                    while !tail.ends_with(b"\r\n0\r\n\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                tail.extend_from_slice(&buf[..n]);
                                let keep = tail.len().saturating_sub(16);
                                tail.drain(..keep);
                            }
                        }
                    }
                    match answer {
                        LoadAnswer::ErrorDetail => respond(
                            &mut c,
                            "200 OK",
                            "{\"stream\":\"Loading layer\"}\r\n{\"errorDetail\":{\"message\":\"kiln-test: unexpected EOF in layer\"},\"error\":\"kiln-test: unexpected EOF in layer\"}\r\n",
                        ),
                        _ => respond(
                            &mut c,
                            "500 Internal Server Error",
                            r#"{"message":"kiln-test: no space left on device"}"#,
                        ),
                    }
                    return;
                }
            });
        }
    });
}

#[test]
fn the_engines_errors_and_silence_fail_the_load() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    for (name, answer, says) in [
        (
            "error-detail",
            LoadAnswer::ErrorDetail,
            "refused the image: kiln-test: unexpected EOF in layer",
        ),
        (
            "server-error",
            LoadAnswer::ServerError,
            "kiln-test: no space left on device",
        ),
        (
            "stall",
            LoadAnswer::Stall,
            "took no data and sent nothing for 2s",
        ),
    ] {
        let sock = env.path(&format!("{name}.sock"));
        fake_docker(&sock, answer);
        let host = format!("unix://{}", s(&sock));
        let started = Instant::now();
        let err = fails_env(
            &env,
            &[
                "build",
                "--progress=quiet",
                "--load",
                "-t",
                "fake:1",
                s(&ctx),
            ],
            &[("DOCKER_HOST", &host), ("KILN_LOAD_IDLE_TIMEOUT", "2")],
        );
        let took = started.elapsed();
        eprintln!(
            "{name}: failed after {:.1}s: {}",
            took.as_secs_f64(),
            err.trim()
        );
        assert!(took < Duration::from_secs(30), "{name}: took {took:?}");
        assert_eq!(err.trim().lines().count(), 1, "{name}: one line:\n{err}");
        assert!(err.contains(says), "{name}: {says:?} in {err}");
        assert!(err.contains(&format!("DOCKER_HOST={host}")), "{err}");
    }
}

#[test]
fn cacheonly_exports_only_the_cache() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo cached-step > /step\n")],
    );
    let cache = env.path("cache");
    let iid = env.path("iid");
    let (out, log) = env.ok(
        &[
            "build",
            "--progress=plain",
            "-t",
            "not-written:1",
            "-o",
            "type=cacheonly",
            "--cache-to",
            &format!("type=local,dest={}", s(&cache)),
            "--iidfile",
            s(&iid),
            s(&ctx),
        ],
        None,
    );
    assert!(out.is_empty(), "{out}");
    assert!(!log.contains("WARNING"), "no warning about outputs:\n{log}");
    assert!(!log.contains("writing image"), "{log}");
    assert!(!env.images().contains("not-written"), "{}", env.images());
    assert!(!iid.exists(), "no image, so no image id");
    assert!(cache.join("index.json").is_file(), "--cache-to written");

    // The cache it wrote serves another store.
    let other = Env::new();
    let ctx2 = other.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN echo cached-step > /step\n")],
    );
    let out_dir = other.path("out");
    let (_, log) = other.ok(
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &format!("type=local,src={}", s(&cache)),
            "-o",
            s(&out_dir),
            s(&ctx2),
        ],
        None,
    );
    assert!(log.contains("CACHED"), "{log}");
    assert_eq!(
        std::fs::read_to_string(out_dir.join("step")).expect("step"),
        "cached-step\n"
    );
}
