//! The buildx drop-in promise, as a table: `docker buildx build`
//! invocations in the shapes CI scripts write them (the command line
//! docker/build-push-action assembles, GitLab's and Makefiles' usual
//! lines), each run as `kiln build` with only the program name changed,
//! and each checked for its effect, not only that it parses.
//!
//! `{ctx}`, `{reg}` (a real registry on 127.0.0.1), `{dir}` (a scratch
//! directory) and `{secret}` (a secret file) are filled in per row.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::process::Output;
use support::{skopeo_ok, Auth, Registry};

/// The project every row builds (`{base}` is busybox in the test
/// registry, so `--pull` has a registry to ask): a base stage, an exported artefact, a
/// secret read by RUN, an /etc/hosts entry and a build arg.
const DOCKERFILE: &str = "# syntax=docker/dockerfile:1\n\
    FROM {base} AS base\n\
    ARG VERSION=dev\n\
    RUN echo \"$VERSION\" > /version\n\
    RUN --mount=type=secret,id=npmrc cat /run/secrets/npmrc > /npmrc-seen || echo none > /npmrc-seen\n\
    RUN (grep -qw db /etc/hosts && echo yes || echo no) > /db-host\n\
    RUN (ulimit -n; df -k /dev/shm | awk 'NR==2 {print $2}') > /limits\n\
    FROM scratch AS export\n\
    COPY --from=base /version /bin/version\n\
    FROM base\n\
    LABEL org.opencontainers.image.title=app\n";

/// What a row's run gives its check.
struct Ran<'a> {
    env: &'a Env,
    docker_host: String,
    dir: std::path::PathBuf,
    reg: String,
    out: Output,
}

impl Ran<'_> {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
    /// The config of an image in the registry, through skopeo.
    fn pushed_config(&self, name: &str) -> serde_json::Value {
        let text = skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--config",
            &format!("docker://{}/{name}", self.reg),
        ]);
        serde_json::from_str(&text).expect("config json")
    }
}

/// One invocation: where its shape comes from, its arguments after
/// `build`, and what must hold after it ran.
struct Row {
    shape: &'static str,
    args: &'static [&'static str],
    check: fn(&Ran),
    /// Needs a Docker engine (`KILN_ENGINE_DOCKER_HOST`, which `.ci/run`
    /// sets); the row is skipped without one outside CI.
    engine: bool,
}

const ROWS: &[Row] = &[
    Row {
        shape: "docker/build-push-action: push with a registry cache, labels, iidfile, metadata",
        args: &[
            "--cache-from",
            "type=registry,ref={reg}/app:buildcache",
            "--cache-to",
            "type=registry,ref={reg}/app:buildcache,mode=max",
            "--iidfile",
            "{dir}/iid",
            "--label",
            "org.opencontainers.image.revision=abc123",
            "--metadata-file",
            "{dir}/metadata.json",
            "--platform",
            "linux/amd64",
            "--provenance",
            "false",
            "--tag",
            "{reg}/app:1",
            "--push",
            "{ctx}",
        ],
        check: |r| {
            let config = r.pushed_config("app:1");
            assert_eq!(
                config["config"]["Labels"]["org.opencontainers.image.revision"],
                "abc123"
            );
            let meta: serde_json::Value =
                serde_json::from_str(&r.file("metadata.json")).expect("metadata json");
            assert_eq!(
                meta["containerimage.digest"].as_str(),
                Some(r.file("iid").trim())
            );
            skopeo_ok(&[
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{}/app:buildcache", r.reg),
            ]);
        },
        engine: false,
    },
    Row {
        shape: "GitLab CI: docker build --pull -t $CI_REGISTRY_IMAGE, then push",
        args: &[
            "--pull",
            "-t",
            "{reg}/group/project:latest",
            "--push",
            "{ctx}",
        ],
        check: |r| {
            let config = r.pushed_config("group/project:latest");
            assert_eq!(
                config["config"]["Labels"]["org.opencontainers.image.title"],
                "app"
            );
        },
        engine: false,
    },
    Row {
        shape: "Makefile release: build args, a docker archive, a tag",
        args: &[
            "--platform",
            "linux/amd64",
            "--build-arg",
            "VERSION=v1.2.3",
            "-o",
            "type=docker,dest={dir}/image.tar",
            "-t",
            "example/app:v1.2.3",
            "{ctx}",
        ],
        check: |r| {
            let info = skopeo_ok(&[
                "inspect",
                &format!("docker-archive:{}/image.tar", r.dir.display()),
            ]);
            assert!(info.contains("\"amd64\""), "{info}");
        },
        engine: false,
    },
    Row {
        shape: "binaries from an export stage: --target export -o type=local,dest=bin",
        args: &[
            "--target",
            "export",
            "--build-arg",
            "VERSION=v9",
            "-o",
            "type=local,dest={dir}/bin",
            "{ctx}",
        ],
        check: |r| assert_eq!(r.file("bin/bin/version"), "v9\n"),
        engine: false,
    },
    Row {
        shape: "private registry token as a secret file: --secret id=npmrc,src=...",
        args: &[
            "--secret",
            "id=npmrc,src={secret}",
            "-o",
            "{dir}/root",
            "{ctx}",
        ],
        check: |r| {
            assert_eq!(
                r.file("root/npmrc-seen"),
                "//registry.npmjs.org/:_authToken=t0ken\n"
            )
        },
        engine: false,
    },
    Row {
        shape: "a secret from the environment: --secret id=npmrc,env=NPM_TOKEN_FILE_CONTENT",
        args: &[
            "--secret",
            "id=npmrc,env=NPMRC",
            "-o",
            "{dir}/root-env",
            "{ctx}",
        ],
        check: |r| assert_eq!(r.file("root-env/npmrc-seen"), "from-env"),
        engine: false,
    },
    Row {
        shape: "service containers in CI: --network host --add-host db:127.0.0.1",
        args: &[
            "--network",
            "host",
            "--add-host",
            "db:127.0.0.1",
            "-o",
            "{dir}/hosts",
            "{ctx}",
        ],
        check: |r| assert_eq!(r.file("hosts/db-host"), "yes\n"),
        engine: false,
    },
    Row {
        shape: "quiet build for scripting: IMAGE=$(docker buildx build -q .)",
        args: &["-q", "-t", "quiet:1", "{ctx}"],
        check: |r| {
            let digest = r.stdout();
            assert!(
                digest.trim().starts_with("sha256:") && digest.lines().count() == 1,
                "{digest:?}"
            );
            assert!(r.env.images().contains("quiet"), "tagged");
        },
        engine: false,
    },
    Row {
        shape: "debugging a flaky CI build: --builder ci --progress=plain --no-cache",
        args: &[
            "--builder",
            "ci",
            "--progress=plain",
            "--no-cache",
            "-t",
            "plain:1",
            "{ctx}",
        ],
        check: |r| {
            let log = r.stderr();
            assert!(log.contains("--builder ci is ignored"), "{log}");
            assert!(
                log.contains("RUN echo \"$VERSION\" > /version") && !log.contains("CACHED"),
                "{log}"
            );
        },
        engine: false,
    },
    Row {
        shape: "lint gate: docker build --call check",
        args: &["--call", "check", "{ctx}"],
        check: |r| assert_eq!(r.stdout(), "Check complete, no warnings found.\n"),
        engine: false,
    },
    Row {
        shape: "docker/build-push-action with load: true, for a test job on the runner",
        args: &["--load", "-t", "compat/app:ci", "{ctx}"],
        check: |r| {
            let out = std::process::Command::new("docker")
                .args([
                    "-H",
                    &r.docker_host,
                    "run",
                    "--rm",
                    "--network",
                    "none",
                    "compat/app:ci",
                    "cat",
                    "/version",
                ])
                .output()
                .expect("docker runs");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                "dev\n",
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        },
        engine: true,
    },
    Row {
        shape: "supply-chain release: --attest type=provenance,mode=max --sbom=true --push",
        args: &[
            "--attest",
            "type=provenance,mode=max",
            "--sbom=true",
            "-t",
            "{reg}/app:attested",
            "--push",
            "{ctx}",
        ],
        check: |r| {
            let raw = skopeo_ok(&[
                "inspect",
                "--tls-verify=false",
                "--raw",
                &format!("docker://{}/app:attested", r.reg),
            ]);
            assert!(
                raw.contains("\"vnd.docker.reference.type\":\"attestation-manifest\""),
                "{raw}"
            );
        },
        engine: false,
    },
    Row {
        shape: "browser tests in a RUN: --shm-size 2g --ulimit nofile=4096:4096",
        args: &[
            "--shm-size",
            "2g",
            "--ulimit",
            "nofile=4096:4096",
            "-o",
            "{dir}/limits",
            "{ctx}",
        ],
        check: |r| assert_eq!(r.file("limits/limits"), "4096\n2097152\n"),
        engine: false,
    },
    Row {
        shape: "what does this Dockerfile take: --call outline",
        args: &["--call", "outline", "{ctx}"],
        check: |r| {
            assert!(
                r.stdout().contains("VERSION") && r.stdout().contains("npmrc"),
                "{}",
                r.stdout()
            )
        },
        engine: false,
    },
];

#[test]
fn buildx_invocations_run_with_only_the_program_name_changed() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let base = format!("{}/library/busybox:1", registry.host());
    env.ok(&["push", "busybox:latest", &base], None);
    let ctx = env.context(
        "ctx",
        &[("Dockerfile", &DOCKERFILE.replace("{base}", &base))],
    );
    let secret = env.path("npmrc");
    std::fs::write(&secret, "//registry.npmjs.org/:_authToken=t0ken\n").expect("secret");
    let engine = std::env::var("KILN_ENGINE_DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty());
    let mut passed = 0;
    for (n, row) in ROWS.iter().enumerate() {
        if row.engine && engine.is_none() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set KILN_ENGINE_DOCKER_HOST (.ci/run starts dockerd)"
            );
            eprintln!(
                "skipped row {n} ({}): no KILN_ENGINE_DOCKER_HOST",
                row.shape
            );
            continue;
        }
        // A store per row, as on a fresh CI runner: no row sees another's
        // cache (a secret is not part of a step's cache key).
        let env = Env::new();
        let dir = env.path(&format!("row{n}"));
        std::fs::create_dir_all(&dir).expect("row dir");
        let args: Vec<String> = std::iter::once("build".to_string())
            .chain(row.args.iter().map(|a| {
                a.replace("{ctx}", s(&ctx))
                    .replace("{reg}", &registry.host())
                    .replace("{dir}", s(&dir))
                    .replace("{secret}", s(&secret))
            }))
            .collect();
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let docker_host = engine.clone().unwrap_or_default();
        let out = env.run_env(
            &argv,
            None,
            &[("NPMRC", "from-env"), ("DOCKER_HOST", docker_host.as_str())],
        );
        assert!(
            out.status.success(),
            "row {n} ({}): kiln {} failed:\n{}",
            row.shape,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        (row.check)(&Ran {
            env: &env,
            docker_host,
            dir,
            reg: registry.host(),
            out,
        });
        passed += 1;
    }
    println!(
        "buildx invocations: {passed} of {} ran and did what buildx does",
        ROWS.len()
    );
}
