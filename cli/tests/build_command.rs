//! `kiln build` as users run it: outputs, caching, contexts from stdin,
//! named contexts, and errors that name the Dockerfile line and leave
//! nothing tagged. The Dockerfile semantics themselves are covered by the
//! conformance suite (tests/conformance.rs).

use kiln_test_support as support;

use std::process::Command;

mod common;

use common::{s, Env, BUSYBOX};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/static-site");

#[test]
fn example_builds_to_every_output() {
    let env = Env::new();
    let rootfs = env.path("rootfs");
    let oci = env.path("image-oci");
    let docker = env.path("image.tar");
    let tar = env.path("rootfs.tar");
    let iid = env.path("iid");
    env.ok(
        &[
            "build",
            "-t",
            "static-site:1",
            "-o",
            "type=image",
            "-o",
            &format!("type=local,dest={}", s(&rootfs)),
            "-o",
            &format!("type=oci,dest={},tar=false", s(&oci)),
            "-o",
            &format!("type=docker,dest={}", s(&docker)),
            "-o",
            &format!("type=tar,dest={}", s(&tar)),
            "--iidfile",
            s(&iid),
            EXAMPLE,
        ],
        None,
    );
    // The local output is the final filesystem, with the --chown owner.
    let index = rootfs.join("srv/www/index.html");
    assert!(index.is_file());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&index).expect("stat").uid(), 1000);
    assert!(
        !rootfs.join("srv/www/notes.draft").exists(),
        ".dockerignore applies"
    );
    assert_eq!(
        std::fs::read_to_string(rootfs.join("srv/www/version.txt")).expect("read"),
        "built by kiln\n"
    );
    // The store has it under its name; the digest is in --iidfile.
    let digest = std::fs::read_to_string(&iid).expect("iidfile");
    assert!(env.images().contains(&digest[7..19]), "{}", env.images());
    // skopeo reads the OCI layout and the docker archive.
    let raw = support::skopeo_ok(&["inspect", "--raw", &format!("oci:{}", s(&oci))]);
    assert!(
        raw.contains("application/vnd.oci.image.manifest.v1+json"),
        "{raw}"
    );
    let info = support::skopeo_ok(&[
        "inspect",
        "--config",
        &format!("docker-archive:{}", s(&docker)),
    ]);
    assert!(
        info.contains("\"User\": \"app\"") && info.contains("8080/tcp"),
        "{info}"
    );
    // The tar output lists the filesystem.
    let listing = Command::new("tar")
        .args(["tf", s(&tar)])
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_end_matches('/') == "srv/www/css/site.css"),
        "{listing}"
    );
}

#[test]
fn rebuild_uses_the_cache_and_says_why_it_misses() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n",
            ),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    let (_, first) = env.ok(
        &["build", "-t", "c:1", "--progress", "plain", s(&ctx)],
        None,
    );
    assert!(first.contains("cache miss: no earlier build"), "{first}");
    let (_, second) = env.ok(
        &["build", "-t", "c:1", "--progress", "plain", s(&ctx)],
        None,
    );
    assert_eq!(second.matches("CACHED").count(), 2, "{second}");
    assert!(!second.contains("cache miss"), "{second}");
    // Only the step reading b.txt runs again, and says why.
    std::fs::write(ctx.join("b.txt"), "changed").expect("write");
    let (_, third) = env.ok(
        &["build", "-t", "c:1", "--progress", "plain", s(&ctx)],
        None,
    );
    assert_eq!(third.matches("CACHED").count(), 1, "{third}");
    assert!(
        third.contains("cache miss: context files it copies changed"),
        "{third}"
    );
    // --no-cache runs everything.
    let (_, fourth) = env.ok(
        &[
            "build",
            "-t",
            "c:1",
            "--no-cache",
            "--progress",
            "plain",
            s(&ctx),
        ],
        None,
    );
    assert_eq!(fourth.matches("CACHED").count(), 0, "{fourth}");
}

#[test]
fn context_and_dockerfile_from_stdin() {
    let env = Env::new();
    // A tar context on stdin.
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY hello.txt /\n"),
            ("hello.txt", "hi"),
        ],
    );
    let tar = Command::new("tar")
        .args(["cf", "-", "-C", s(&ctx), "."])
        .output()
        .expect("tar");
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), "-"], Some(&tar.stdout));
    assert_eq!(
        std::fs::read_to_string(out.join("hello.txt")).expect("read"),
        "hi"
    );
    // A Dockerfile on stdin with a directory context.
    let out2 = env.path("out2");
    env.ok(
        &["build", "-f", "-", "-o", s(&out2), s(&ctx)],
        Some(b"FROM scratch\nCOPY hello.txt /copied.txt\n"),
    );
    assert_eq!(
        std::fs::read_to_string(out2.join("copied.txt")).expect("read"),
        "hi"
    );
}

#[test]
fn named_contexts() {
    let env = Env::new();
    let other = env.context("other", &[("from-other.txt", "other context")]);
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM base\nCOPY --from=extra /from-other.txt /x.txt\n",
        )],
    );
    let out = env.path("out");
    env.ok(
        &[
            "build",
            "--build-context",
            &format!("extra={}", s(&other)),
            "--build-context",
            &format!("base=oci-layout://{BUSYBOX}"),
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
    );
    assert_eq!(
        std::fs::read_to_string(out.join("x.txt")).expect("read"),
        "other context"
    );
    assert!(
        out.join("bin/busybox").is_file(),
        "the base came from the layout"
    );
}

#[test]
fn print_graph_without_running() {
    let env = Env::new();
    let (dot, _) = env.ok(&["build", "--print", "dag", EXAMPLE], None);
    assert!(dot.starts_with("digraph") && dot.contains("COPY"), "{dot}");
    let (json, _) = env.ok(&["build", "--print", "json", EXAMPLE], None);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert!(
        v["vertices"].as_array().is_some_and(|a| a.len() >= 4),
        "{json}"
    );
    assert!(
        !env.images().contains("static-site"),
        "printing builds nothing"
    );
}

#[test]
fn bad_input_names_the_line_and_tags_nothing() {
    let env = Env::new();
    let cases: &[(&str, &str)] = &[
        ("FROM busybox\nCOPY missing.txt /\n", "Dockerfile:2"),
        (
            "FROM busybox\nCOPY --from=nosuchimage /x /x\n",
            "Dockerfile:2",
        ),
        ("FROM busybox\nCOPY --chmod=99z a.txt /\n", "Dockerfile:2"),
        ("FROM busybox\nFOO bar\n", "Dockerfile:2"),
        ("FROM busybox\nENV A=${B:?is required}\n", "Dockerfile:2"),
    ];
    for (dockerfile, want) in cases {
        let ctx = env.context("bad", &[("Dockerfile", dockerfile), ("a.txt", "a")]);
        let err = env.fails(&["build", "-t", "bad:1", s(&ctx)], None);
        assert!(err.contains(want), "{dockerfile:?}: {err}");
        assert!(
            !env.images().contains("bad"),
            "nothing is tagged after {dockerfile:?}"
        );
    }
    let err = env.fails(&["build", "-o", "type=zip,dest=x", EXAMPLE], None);
    assert!(err.contains("--output") && err.contains("zip"), "{err}");
    let err = env.fails(&["build", "/nonexistent-context"], None);
    assert!(err.contains("/nonexistent-context"), "{err}");
}

#[test]
fn no_cache_filter_skips_the_cache_for_one_stage() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox AS a\nCOPY a.txt /a.txt\n\nFROM busybox\nCOPY --from=a /a.txt /from-a.txt\nCOPY b.txt /b.txt\n"),
            ("a.txt", "a"),
            ("b.txt", "b"),
        ],
    );
    env.ok(&["build", "-t", "f:1", s(&ctx)], None);
    let (_, again) = env.ok(
        &[
            "build",
            "-t",
            "f:1",
            "--progress",
            "plain",
            "--no-cache-filter",
            "a",
            s(&ctx),
        ],
        None,
    );
    // Stage a's COPY runs again; stage 1's steps are cached because stage a
    // produced the same layer.
    assert!(
        again.contains("[a 1] COPY a.txt /a.txt\n") || again.contains("cache miss: --no-cache"),
        "{again}"
    );
    assert_eq!(
        again.matches("cache miss: --no-cache").count(),
        1,
        "{again}"
    );
    assert_eq!(again.matches("CACHED").count(), 2, "{again}");
}

#[test]
fn identical_run_layers_stack() {
    // Four `RUN true` steps make four layers with the same content, which
    // share one layer directory; the sandbox must still mount the stack.
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN true\nRUN true\nRUN true\nRUN true\nRUN echo done > /done\n",
        )],
    );
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        std::fs::read_to_string(out.join("done")).expect("read"),
        "done\n"
    );
}

#[test]
fn history_lists_the_steps_newest_first_with_docker_columns() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY a /a\nENV X=1\nRUN echo a-long-command-that-docker-would-cut-short > /hi\n"),
            ("a", "a"),
        ],
    );
    env.ok(&["build", "-t", "hist:1", s(&ctx)], None);
    let (table, _) = env.ok(&["history", "hist:1"], None);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("IMAGE") && lines[0].contains("CREATED BY"),
        "{table}"
    );
    // RUN, ENV, COPY, then busybox's own layer.
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[1].contains("RUN /bin/sh -c echo a-long-command-that-dock…"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("<missing>")
            && lines[2].contains("ENV X=1")
            && lines[2].contains(" 0B "),
        "{table}"
    );
    assert!(lines[3].contains("COPY a /a"), "{table}");

    let (json, _) = env.ok(
        &["history", "--no-trunc", "--format", "json", "hist:1"],
        None,
    );
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 4, "{json}");
    let (id, _) = env.ok(&["history", "-q", "--no-trunc", "hist:1"], None);
    assert_eq!(rows[0]["ID"], id.trim(), "{json}");
    assert!(rows[0]["CreatedBy"]
        .as_str()
        .is_some_and(|c| c.contains("cut-short > /hi")));
    let out = env.run(&["history", "--format", "yaml", "hist:1"], None);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "kiln: --format \"yaml\": kiln prints table or json\n"
    );
}

#[test]
fn quiet_prints_only_the_image_digest_and_builder_is_accepted() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nRUN echo q > /q\n")]);
    let iid = env.path("iid");
    let (stdout, stderr) = env.ok(
        &["build", "-q", "-t", "q:1", "--iidfile", s(&iid), s(&ctx)],
        None,
    );
    let digest = std::fs::read_to_string(&iid).expect("iidfile");
    assert_eq!(stdout, format!("{digest}\n"));
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    assert_eq!(stderr, "", "--quiet prints nothing else");
    let (_, stderr) = env.ok(
        &[
            "build",
            "--builder",
            "ci-builder",
            "--progress=quiet",
            s(&ctx),
        ],
        None,
    );
    assert_eq!(
        stderr,
        "NOTE: kiln has no builder instances; --builder ci-builder is ignored\n"
    );
}

#[test]
fn pull_resolves_a_stored_base_image_in_its_registry_again() {
    use kiln_test_support::{Auth, Registry};
    let env = Env::new();
    let registry = Registry::start(Auth::None);
    let base = format!("{}/lib/base:1", registry.host());
    env.ok(&["push", "busybox:latest", &base], None);
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            &format!("FROM {base}\nRUN cat /marker > /seen 2>/dev/null || echo none > /seen\n"),
        )],
    );
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).expect("seen"),
        "none\n"
    );
    // The tag moves to an image with a marker.
    let marked = env.context(
        "marked",
        &[("Dockerfile", "FROM busybox\nRUN echo v2 > /marker\n")],
    );
    env.ok(&["build", "-t", "marked:1", s(&marked)], None);
    env.ok(&["push", "marked:1", &base], None);
    // Without --pull the stored image serves; with it, the registry's.
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).expect("seen"),
        "none\n"
    );
    env.ok(&["build", "--pull", "-o", s(&out), s(&ctx)], None);
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).expect("seen"),
        "v2\n"
    );
}

#[test]
fn attestation_flags_off_give_a_plain_image_and_bad_values_are_refused() {
    // What they make is tested in tests/attestations.rs.
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\n")]);
    env.ok(
        &[
            "build",
            "--provenance=false",
            "--sbom=false",
            "-t",
            "a:1",
            s(&ctx),
        ],
        None,
    );
    let (image, _) = env.ok(&["inspect", "a:1"], None);
    assert!(!image.contains("\"Index\""), "{image}");
    let err = env.fails(&["build", "--provenance=mode=most", s(&ctx)], None);
    assert_eq!(
        err,
        "kiln: --provenance=mode=most: mode must be min or max\n"
    );
}

#[test]
fn add_host_entries_reach_run_steps_and_their_cache_keys() {
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN cat /etc/hosts > /h\n")],
    );
    let out = env.path("out");
    let hosts = |args: &[&str]| {
        let mut all = vec!["build", "-o", s(&out)];
        all.extend_from_slice(args);
        all.push(s(&ctx));
        env.ok(&all, None);
        std::fs::read_to_string(out.join("h")).expect("h")
    };
    let plain = hosts(&[]);
    assert!(!plain.contains("db.internal"), "{plain}");
    for isolation in ["sandbox", "chroot"] {
        let h = hosts(&[
            "--isolation",
            isolation,
            "--add-host",
            "db.internal:10.1.2.3",
        ]);
        assert!(h.ends_with("10.1.2.3\tdb.internal\n"), "{isolation}: {h}");
    }
    // Another address is another step (the entries are in its key).
    let h = hosts(&[
        "--add-host",
        "db.internal=fd00::7",
        "--add-host",
        "cache:10.0.0.9",
    ]);
    assert!(
        h.ends_with("fd00::7\tdb.internal\n10.0.0.9\tcache\n"),
        "{h}"
    );
    for (value, expected) in [
        ("db.internal", "expected NAME:IP"),
        ("db:not-an-ip", "\"not-an-ip\" is not an IP address"),
        ("db:host-gateway", "no host-gateway address"),
    ] {
        let err = env.fails(&["build", "--add-host", value, s(&ctx)], None);
        assert!(err.contains(expected), "{value}: {err}");
    }
}
