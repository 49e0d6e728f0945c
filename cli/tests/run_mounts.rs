//! `RUN --mount` of every type through `kiln build`, `--network`,
//! `--security` with `--allow`, and the checks made before anything runs.
//! Secrets are scanned for afterwards in every file of the store, the
//! outputs and the logs.

mod common;

use common::{s, Env};
use std::io::Read;
use std::path::Path;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn bind_mounts_show_stages_images_and_the_context() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox AS tools\n\
                 RUN mkdir -p /out && echo tool > /out/tool\n\
                 FROM busybox\n\
                 RUN --mount=type=bind,from=tools,source=/out,target=/mnt/tools \\\n\
                     --mount=type=bind,target=/ctx \\\n\
                     --mount=type=bind,source=data/a.txt,target=/a.txt \\\n\
                     --mount=type=bind,from=busybox,source=/bin/busybox,target=/bb \\\n\
                     --mount=type=bind,from=tools,source=/out,target=/rw,rw \\\n\
                     cat /mnt/tools/tool /a.txt > /result && ls -a /ctx | tr '\\n' ' ' >> /result && \\\n\
                     echo scribble > /rw/new && rm /rw/tool && test -x /bb && echo ok >> /result && \\\n\
                     (touch /ctx/x 2>/dev/null || echo ro >> /result)\n\
                 RUN --mount=type=bind,from=tools,source=/out,target=/again \\\n\
                     cat /again/tool > /clean && test ! -e /again/new && echo clean >> /clean\n",
            ),
            ("data/a.txt", "A\n"),
            ("ignored.txt", "never seen\n"),
            (".dockerignore", "ignored.txt\n"),
        ],
    );
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        read(&out.join("result")),
        "tool\nA\n. .. .dockerignore Dockerfile data ok\nro\n"
    );
    assert_eq!(read(&out.join("clean")), "tool\nclean\n");
    for gone in ["mnt", "ctx", "a.txt", "bb", "rw", "again"] {
        assert!(!out.join(gone).exists(), "{gone} left in the image");
    }

    // The bound context files are part of the step's cache key; ignored
    // files are not.
    std::fs::write(ctx.join("ignored.txt"), "changed\n").expect("write");
    let (_, log) = env.ok(&["build", "--progress=plain", "-o", s(&out), s(&ctx)], None);
    assert!(!log.contains("did not match"), "{log}");
    assert_eq!(log.matches("CACHED").count(), 3, "{log}");
    std::fs::write(ctx.join("data/a.txt"), "B\n").expect("write");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert!(read(&out.join("result")).starts_with("tool\nB\n"));

    // A missing source is an error naming the line.
    let bad = env.context(
        "bad",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --mount=type=bind,source=nope,target=/x true\n",
        )],
    );
    let err = env.fails(&["build", s(&bad)], None);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn cache_mounts_are_seeded_and_persist() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox AS seed\n\
             RUN mkdir /s && echo seeded > /s/x\n\
             FROM busybox\n\
             RUN --mount=type=cache,id=c1,target=/c,from=seed,source=/s,uid=7,mode=0750 \\\n\
                 cat /c/x > /got && stat -c '%u %a' /c >> /got && echo more > /c/y\n\
             RUN --mount=type=cache,id=c1,target=/c,sharing=private,uid=7,mode=0750 ls /c > /ls\n\
             RUN --mount=type=cache,id=c1,target=/c,sharing=locked,mode=0750,uid=7 ls /c > /ls2\n\
             RUN --mount=type=cache,id=c1,target=/c ls /c > /plain\n",
        )],
    );
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert_eq!(read(&out.join("got")), "seeded\n7 750\n");
    assert_eq!(read(&out.join("ls")), "x\ny\n");
    assert_eq!(read(&out.join("ls2")), "x\ny\n");
    // Without uid/gid/mode the id names another cache (as in BuildKit).
    assert_eq!(read(&out.join("plain")), "");
    assert!(!out.join("c").exists());
}

#[test]
fn secrets_as_files_and_env_leave_no_trace() {
    for runtime in ["builtin", "runc", "crun"] {
        let installed = runtime == "builtin"
            || std::env::var_os("PATH")
                .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(runtime).is_file()));
        if installed {
            secrets_leave_no_trace(runtime);
        } else {
            eprintln!("{runtime}: not installed, skipped");
        }
    }
}

/// The body of [`secrets_as_files_and_env_leave_no_trace`] for `runtime`.
fn secrets_leave_no_trace(runtime: &str) {
    let env = Env::new();
    // Unique bytes to scan for.
    let token = format!("kiln-secret-token-{}", std::process::id());
    let file_secret = format!("kiln-secret-file-{}", std::process::id());
    let secret_file = env.path("secret.txt");
    std::fs::write(&secret_file, &file_secret).expect("write");
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=secret,id=token,env=TOKEN \\\n\
                 --mount=type=secret,id=file,target=/s/f,mode=0440,uid=5 \\\n\
                 --mount=type=secret,id=token,target=/run/t,env=ALSO \\\n\
                 --mount=type=secret,id=absent \\\n\
                 printf %s \"$TOKEN\" | wc -c > /len && wc -c < /s/f >> /len && \\\n\
                 stat -c '%a %u' /s/f >> /len && test \"$ALSO\" = \"$(cat /run/t)\" && \\\n\
                 echo same >> /len && test ! -e /run/secrets/absent && echo absent >> /len\n",
        )],
    );
    let out = env.path("out");
    let token_env = format!("KILN_TEST_TOKEN_{}", std::process::id());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args([
            "build",
            "--progress=plain",
            "--runtime",
            runtime,
            "--secret",
            &format!("id=token,env={token_env}"),
            "--secret",
            &format!("id=file,src={}", s(&secret_file)),
            "-t",
            "secret:1",
            "-o",
            "type=image",
            "-o",
            &format!("type=local,dest={}", s(&out)),
            s(&ctx),
        ])
        .env(&token_env, &token)
        .env("KILN_ROOT", env.path("store"))
        .env("DOCKER_CONFIG", env.path("docker"))
        .output()
        .expect("kiln runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{runtime}: {log}");
    assert_eq!(
        read(&out.join("len")),
        format!(
            "{}\n{}\n440 5\nsame\nabsent\n",
            token.len(),
            file_secret.len()
        )
    );
    assert!(!out.join("s").exists() && !out.join("run/t").exists());
    // Save the image too, so the scan covers an export.
    let saved = env.path("saved.tar");
    env.ok(&["save", "-o", s(&saved), "secret:1"], None);
    // The scan does see layer contents (compressed blobs included).
    let control = scan(env.dir.path(), b"same\nabsent\n", &secret_file);
    assert!(control.iter().any(|h| h.contains("blobs")), "{control:?}");
    for needle in [&token, &file_secret] {
        assert!(
            !log.contains(needle.as_str()),
            "{runtime}: secret in the log"
        );
        let hits = scan(env.dir.path(), needle.as_bytes(), &secret_file);
        assert!(hits.is_empty(), "{runtime}: secret bytes found in {hits:?}");
    }
}

/// Files under `root` (gzip files decompressed) holding `needle`, except
/// `skip` (the secret's own source file).
fn scan(root: &Path, needle: &[u8], skip: &Path) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(ft) = entry.file_type() else { continue };
            if ft.is_dir() {
                stack.push(path);
                continue;
            }
            if !ft.is_file() || path == skip {
                continue;
            }
            let Ok(data) = std::fs::read(&path) else {
                continue;
            };
            let mut plain = data.clone();
            if data.starts_with(&[0x1f, 0x8b]) {
                let mut d = flate2::read::GzDecoder::new(&data[..]);
                let mut buf = Vec::new();
                if d.read_to_end(&mut buf).is_ok() {
                    plain = buf;
                }
            }
            if plain.windows(needle.len()).any(|w| w == needle) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn required_secrets_and_agents_are_checked_before_anything_runs() {
    let env = Env::new();
    for (mount, expect) in [
        ("type=secret,id=nope,required=true", "secret nope"),
        ("type=ssh,id=agent,required=true", "SSH agent \"agent\""),
    ] {
        let ctx = env.context(
            &format!("ctx-{}", expect.len()),
            &[(
                "Dockerfile",
                &format!("FROM busybox\nRUN echo first-step > /first\nRUN --mount={mount} true\n"),
            )],
        );
        let err = env.fails(&["build", "--progress=plain", s(&ctx)], None);
        assert!(err.contains(expect), "{err}");
        assert!(err.contains("Dockerfile:3"), "{err}");
        // No progress line names it (the Dockerfile excerpt under the
        // error shows its line).
        assert!(
            !err.lines()
                .any(|l| l.starts_with('#') && l.contains("echo first-step")),
            "a step ran: {err}"
        );
    }
}

#[test]
fn ssh_agents_are_forwarded_as_sockets() {
    let env = Env::new();
    let agent = env.path("agent.sock");
    let _listener = std::os::unix::net::UnixListener::bind(&agent).expect("bind");
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\n\
             RUN --mount=type=ssh --mount=type=ssh,id=other,target=/o.sock,mode=0660,uid=3 \\\n\
                 echo \"$SSH_AUTH_SOCK\" > /ssh && stat -c '%F %a %u' \"$SSH_AUTH_SOCK\" /o.sock >> /ssh\n",
        )],
    );
    let out = env.path("out");
    env.ok(
        &[
            "build",
            "--ssh",
            &format!("default={}", s(&agent)),
            "--ssh",
            &format!("other={}", s(&agent)),
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
    );
    assert_eq!(
        read(&out.join("ssh")),
        "/run/buildkit/ssh_agent.0\nsocket 600 0\nsocket 660 3\n"
    );
    assert!(!out.join("run/buildkit").exists());
    assert!(!out.join("o.sock").exists());
    // A file that is not a key is refused with a hint (key files are
    // served by kiln's agent: cli/tests/ssh_keys.rs).
    let key = env.path("id_ed25519");
    std::fs::write(&key, "not a socket").expect("write");
    let err = env.fails(
        &["build", "--ssh", &format!("default={}", s(&key)), s(&ctx)],
        None,
    );
    assert!(err.contains("not an OpenSSH private key"), "{err}");
}

#[test]
fn network_and_security_modes_need_their_entitlements() {
    let env = Env::new();
    let count = "RUN grep -c : /proc/net/dev > /ifaces\n";
    let ctx = env.context("ctx", &[("Dockerfile", &format!("FROM busybox\n{count}"))]);
    let out = env.path("out");
    env.ok(&["build", "--network=none", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        read(&out.join("ifaces")),
        "1\n",
        "only lo with --network=none"
    );
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    let host: u32 = read(&out.join("ifaces")).trim().parse().expect("number");
    assert!(host >= 1);
    // --network=host typed for the build is its own consent (buildx).
    env.ok(
        &[
            "build",
            "--no-cache",
            "--network=host",
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
    );
    assert_eq!(read(&out.join("ifaces")).trim(), host.to_string());

    let ctx = env.context(
        "host",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --network=host grep -c : /proc/net/dev > /ifaces\n",
        )],
    );
    let err = env.fails(&["build", s(&ctx)], None);
    assert!(err.contains("--allow network.host"), "{err}");
    env.ok(
        &["build", "--allow", "network.host", "-o", s(&out), s(&ctx)],
        None,
    );
    assert_eq!(read(&out.join("ifaces")).trim(), host.to_string());

    let ctx = env.context(
        "insecure",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN --security=insecure grep -E '^(CapBnd|Seccomp):' /proc/self/status > /status\n",
        )],
    );
    let err = env.fails(&["build", s(&ctx)], None);
    assert!(err.contains("--allow security.insecure"), "{err}");
    env.ok(
        &[
            "build",
            "--allow",
            "security.insecure",
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
    );
    let status = read(&out.join("status"));
    assert!(status.contains("Seccomp:\t0"), "{status}");
    assert!(!status.contains("CapBnd:\t00000000a80425fb"), "{status}");
    let err = env.fails(&["build", "--allow", "everything", s(&ctx)], None);
    assert!(err.contains("unknown entitlement"), "{err}");
}

#[test]
fn locked_cache_mounts_serialise_concurrent_steps() {
    let env = Env::new();
    // Two independent stages run at once (--jobs 2) and write into the
    // same locked cache with a pause in between; a third reads the log.
    // (With sharing=shared the lines interleave.)
    let step = |name: &str| {
        format!(
            "FROM busybox AS {name}\n\
             RUN --mount=type=cache,id=shared-log,target=/c,sharing=locked \\\n\
                 echo start-{name} >> /c/log && sleep 0.5 && echo end-{name} >> /c/log\n"
        )
    };
    let dockerfile = format!(
        "{}{}FROM busybox\n\
         COPY --from=a /etc/passwd /a\n\
         COPY --from=b /etc/passwd /b\n\
         RUN --mount=type=cache,id=shared-log,target=/c cp /c/log /log\n",
        step("a"),
        step("b")
    );
    let ctx = env.context("ctx", &[("Dockerfile", &dockerfile)]);
    let out = env.path("out");
    env.ok(&["build", "--jobs", "2", "-o", s(&out), s(&ctx)], None);
    let log = read(&out.join("log"));
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 4, "{log}");
    for pair in lines.chunks(2) {
        let first = pair[0].strip_prefix("start-").expect("a start");
        assert_eq!(pair[1], format!("end-{first}"), "interleaved: {log}");
    }
}
