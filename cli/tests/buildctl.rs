//! `kiln buildctl build`: BuildKit's buildctl syntax, as CI scripts write
//! it, builds and pushes to a real registry (read back with skopeo) and
//! exports and imports a cache; and the BuildKit/buildx environment
//! variables that `kiln build` honours.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use support::{skopeo_ok, Auth, Registry};

const DOCKERFILE: &str = "FROM busybox AS base\n\
    ARG GREETING=hello\n\
    RUN echo \"$GREETING\" > /greeting\n\
    FROM base AS final\n\
    LABEL stage=final\n\
    FROM base AS other\n\
    RUN echo other > /other\n";

#[test]
fn buildctl_syntax_builds_pushes_and_shares_a_cache() {
    let env = Env::new();
    let registry = Registry::start(Auth::None);
    let ctx = env.context("ctx", &[("note.txt", "n\n")]);
    // The Dockerfile lives apart from the context, as `--local dockerfile=`.
    let df = env.context("df", &[("Dockerfile.ci", DOCKERFILE)]);
    let image = format!("{}/team/app:1", registry.host());
    let cache = env.path("cache");
    let context_flag = format!("context={}", s(&ctx));
    let dockerfile_flag = format!("dockerfile={}", s(&df));
    let output = format!("type=image,name={image},push=true");
    let export = format!("type=local,dest={}", s(&cache));
    let (_, log) = env.ok(
        &[
            "buildctl",
            "--addr",
            "tcp://buildkitd:1234",
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            &context_flag,
            "--local",
            &dockerfile_flag,
            "--opt",
            "filename=Dockerfile.ci",
            "--opt",
            "target=final",
            "--opt",
            "build-arg:GREETING=from-buildctl",
            "--opt",
            "label:org.example.ci=yes",
            "--output",
            &output,
            "--export-cache",
            &export,
            "--progress",
            "plain",
        ],
        None,
    );
    assert!(
        log.contains("NOTE: kiln has no daemon; --addr tcp://buildkitd:1234 is ignored"),
        "{log}"
    );
    // The target's RUN ran, the other stage's did not.
    assert!(log.contains("RUN echo \"$GREETING\" > /greeting"), "{log}");
    assert!(!log.contains("echo other"), "{log}");
    let config = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{image}"),
    ]);
    let config: serde_json::Value = serde_json::from_str(&config).expect("config json");
    let labels = &config["config"]["Labels"];
    assert_eq!(labels["stage"], "final", "{config}");
    assert_eq!(labels["org.example.ci"], "yes", "{config}");

    // A fresh store imports the exported cache: every step is cached.
    let fresh = Env::new();
    let import = format!("type=local,src={}", s(&cache));
    let out = fresh.path("out");
    let local = format!("type=local,dest={}", s(&out));
    let (_, log) = fresh.ok(
        &[
            "buildctl",
            "build",
            "--local",
            &context_flag,
            "--local",
            &dockerfile_flag,
            "--opt",
            "filename=Dockerfile.ci",
            "--opt",
            "target=final",
            "--opt",
            "build-arg:GREETING=from-buildctl",
            "--import-cache",
            &import,
            "--output",
            &local,
            "--progress",
            "plain",
        ],
        None,
    );
    assert_eq!(
        std::fs::read_to_string(out.join("greeting")).expect("greeting"),
        "from-buildctl\n"
    );
    assert!(log.contains("CACHED"), "{log}");
}

#[test]
fn buildctl_errors_name_the_flag_and_exit_2() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\n")]);
    let context_flag = format!("context={}", s(&ctx));
    for (args, want) in [
        (
            vec![
                "buildctl",
                "build",
                "--frontend",
                "gateway.v0",
                "--local",
                &context_flag,
            ],
            "kiln: --frontend gateway.v0: kiln has only the Dockerfile frontend (dockerfile.v0)\n",
        ),
        (
            vec![
                "buildctl",
                "build",
                "--local",
                &context_flag,
                "--opt",
                "nope=1",
            ],
            "kiln: --opt nope=1: not a Dockerfile frontend option kiln knows\n",
        ),
        (
            vec!["buildctl", "build"],
            "kiln: --local context=DIR is required (the build context)\n",
        ),
    ] {
        let out = env.run(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), want);
    }
}

#[test]
fn buildkit_environment_variables_set_the_defaults() {
    let env = Env::new();
    // `FROM ... as` (lower-case) is a BuildKit check finding.
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", "FROM busybox as base\nRUN echo hi > /hi\n")],
    );
    let out = env.run_env(
        &["build", "--builder", "ignored", s(&ctx)],
        None,
        &[("BUILDKIT_PROGRESS", "plain")],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("#1 "), "BUILDKIT_PROGRESS=plain: {log}");
    assert!(log.contains("--builder ignored is ignored"), "{log}");
    let out = env.run_env(&["build", s(&ctx)], None, &[("BUILDX_BUILDER", "ci")]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("--builder ci is ignored"),
        "BUILDX_BUILDER: {log}"
    );

    // BUILDKIT_DOCKERFILE_CHECK from the environment, as the build arg.
    let check = |vars: &[(&str, &str)]| {
        let out = env.run_env(&["build", "--check", s(&ctx)], None, vars);
        out.status.code()
    };
    assert_eq!(check(&[]), Some(1), "the finding fails --check");
    assert_eq!(
        check(&[("BUILDKIT_DOCKERFILE_CHECK", "skip=all")]),
        Some(0),
        "skip=all from the environment"
    );
}
