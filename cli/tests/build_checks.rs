//! BuildKit's build checks during `kiln build`: `--check` reports them
//! (with the base image's ENV known) instead of building, a build lists
//! them at its end, `# check=error=true` stops the build before any step
//! runs, and the `BUILDKIT_DOCKERFILE_CHECK` build argument replaces the
//! directive.

mod common;

use common::{s, Env};

/// StageNameCasing (line 1), UndefinedVar (line 3; busybox sets only
/// PATH, which line 2 uses), JSONArgsRecommended (line 4).
const DOCKERFILE: &str = "FROM busybox AS Build\n\
    ENV P=$PATH\n\
    ENV A=$NOT_SET\n\
    CMD echo hi\n";

#[test]
fn check_reports_without_building() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let out = env.run(&["build", "--check", "-t", "checked:1", s(&ctx)], None);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.starts_with("Check complete, 3 warnings have been found!\n"),
        "{stdout}"
    );
    for expected in [
        "WARNING: StageNameCasing - https://docs.docker.com/go/dockerfile/rule/stage-name-casing/\nStage name 'Build' should be lowercase\nDockerfile:1\n",
        "WARNING: UndefinedVar - https://docs.docker.com/go/dockerfile/rule/undefined-var/\nUsage of undefined variable '$NOT_SET'\nDockerfile:3\n",
        "   4 | >>> CMD echo hi\n",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    assert!(!stdout.contains("'$PATH'"), "{stdout}");
    assert!(!env.images().contains("checked"), "--check tagged an image");

    let clean = env.context("clean", &[("Dockerfile", "FROM busybox\nCMD [\"true\"]\n")]);
    let (stdout, _) = env.ok(&["build", "--check", s(&clean)], None);
    assert_eq!(stdout, "Check complete, no warnings found.\n");
}

#[test]
fn a_build_lists_warnings_and_error_true_stops_it() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let (_, stderr) = env.ok(
        &["build", "--progress", "plain", "-t", "warned:1", s(&ctx)],
        None,
    );
    assert!(
        stderr.contains(
            "3 warnings found:\n - StageNameCasing: Stage name 'Build' should be lowercase (line 1)\n"
        ),
        "{stderr}"
    );
    assert!(env.images().contains("warned"));

    // The build argument replaces the directive: skip everything.
    let (_, stderr) = env.ok(
        &[
            "build",
            "--progress",
            "plain",
            "--build-arg",
            "BUILDKIT_DOCKERFILE_CHECK=skip=all",
            s(&ctx),
        ],
        None,
    );
    assert!(!stderr.contains("warnings found"), "{stderr}");

    // error=true: the build stops before any step, and nothing is tagged.
    let strict = env.context(
        "strict",
        &[(
            "Dockerfile",
            &format!("# check=error=true\n{DOCKERFILE}RUN echo ran-a-step\n"),
        )],
    );
    let stderr = env.fails(
        &["build", "--progress", "plain", "-t", "strict:1", s(&strict)],
        None,
    );
    assert!(
        stderr.contains(
            "Dockerfile: lint violation found for rules: StageNameCasing, UndefinedVar, JSONArgsRecommended"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("ran-a-step"), "a step ran:\n{stderr}");
    assert!(!env.images().contains("strict"));
}

#[test]
fn call_check_format_json_is_buildkits_lint_result() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let out = env.run(&["build", "--call", "check,format=json", s(&ctx)], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let warnings = v["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 3, "{v}");
    let undefined = &warnings[1];
    assert_eq!(undefined["ruleName"], "UndefinedVar");
    assert_eq!(
        undefined["description"],
        "Variables should be defined before their use"
    );
    assert_eq!(
        undefined["url"],
        "https://docs.docker.com/go/dockerfile/rule/undefined-var/"
    );
    assert_eq!(
        undefined["detail"],
        "Usage of undefined variable '$NOT_SET'"
    );
    assert_eq!(undefined["location"]["ranges"][0]["start"]["line"], 3);
    assert_eq!(v["sources"][0]["filename"], "Dockerfile");
    // The source travels base64-encoded, as Go marshals bytes.
    let data = v["sources"][0]["data"].as_str().expect("data");
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64");
    assert_eq!(decoded, DOCKERFILE.as_bytes());

    let (out, _) = env.ok(
        &[
            "build",
            "--call",
            "check",
            s(&env.context("clean", &[("Dockerfile", "FROM busybox\n")])),
        ],
        None,
    );
    assert_eq!(out, "Check complete, no warnings found.\n");
    let stderr = env.fails(&["build", "--call", "lint", s(&ctx)], None);
    assert!(
        stderr.contains("--call \"lint\": unknown method"),
        "{stderr}"
    );
}
