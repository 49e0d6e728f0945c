//! `kiln build --call outline` and `--call targets`, text and
//! `format=json`, compared whole with what buildx prints for the same
//! Dockerfile (BuildKit's `frontend.outline` / `frontend.targets`
//! subrequests). Nothing is built and no base image is resolved: the
//! bases here exist nowhere.

mod common;

use common::{s, Env};
use serde_json::json;

/// A Dockerfile in the shape of Docker's documentation examples, with
/// descriptions as comments that lead with the name.
const DOCKERFILE: &str = "# syntax=docker/dockerfile:1

# GO_VERSION sets the Go version for the build
ARG GO_VERSION=1.22
ARG NOT_USED=1

# base is the stage with the build dependencies
FROM kiln.invalid/golang:${GO_VERSION} AS base
# HUGO_ENV sets the hugo.Environment (production, development, preview)
ARG HUGO_ENV
ARG PAGEFIND_VERSION=1.1.0
RUN --mount=type=secret,id=GITHUB_TOKEN,required=true \\
    --mount=type=ssh \\
    true

# lint lints markdown files
FROM --platform=linux/amd64 kiln.invalid/lint:1 AS lint
RUN --mount=type=secret,id=lint_token true

# release is an empty scratch image with only compiled assets
FROM scratch AS release
COPY --from=base /out /
";

/// The Dockerfile as BuildKit lists it under `sources` (base64).
fn source_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(DOCKERFILE)
}

fn at(line: usize, end: usize) -> serde_json::Value {
    json!({ "ranges": [{ "start": { "line": line }, "end": { "line": end } }] })
}

fn call(env: &Env, args: &[&str]) -> String {
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let mut argv = vec!["build"];
    argv.extend(args);
    argv.push(s(&ctx));
    let before = env.images();
    let (out, _) = env.ok(&argv, None);
    assert_eq!(env.images(), before, "nothing is built");
    out
}

#[test]
fn outline_prints_the_default_target_and_what_it_takes() {
    let env = Env::new();
    assert_eq!(
        call(&env, &["--call", "outline"]),
        "TARGET:      release\n\
         DESCRIPTION: is an empty scratch image with only compiled assets\n\
         \n\
         BUILD ARG          VALUE   DESCRIPTION\n\
         GO_VERSION         1.22    sets the Go version for the build\n\
         HUGO_ENV                   sets the hugo.Environment (production, development, preview)\n\
         PAGEFIND_VERSION   1.1.0   \n\
         \n\
         SECRET         REQUIRED\n\
         GITHUB_TOKEN   true\n\
         \n\
         SSH       REQUIRED\n\
         default   \n\
         \n"
    );
}

#[test]
fn outline_follows_target_and_build_args_and_speaks_json() {
    let env = Env::new();
    let out = call(
        &env,
        &[
            "--call=outline,format=json",
            "--target",
            "lint",
            "--build-arg",
            "GO_VERSION=1.23",
        ],
    );
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        got,
        json!({
            "name": "lint",
            "description": "lints markdown files",
            "secrets": [{ "name": "lint_token", "location": at(18, 18) }],
            "sources": [source_b64()],
        })
    );
    let out = call(
        &env,
        &[
            "--call",
            "outline,format=json",
            "--build-arg",
            "GO_VERSION=1.23",
        ],
    );
    let got: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(
        got,
        json!({
            "name": "release",
            "description": "is an empty scratch image with only compiled assets",
            "args": [
                { "name": "GO_VERSION", "description": "sets the Go version for the build",
                  "value": "1.23", "location": at(4, 4) },
                { "name": "HUGO_ENV",
                  "description": "sets the hugo.Environment (production, development, preview)",
                  "location": at(10, 10) },
                { "name": "PAGEFIND_VERSION", "value": "1.1.0", "location": at(11, 11) },
            ],
            "secrets": [{ "name": "GITHUB_TOKEN", "required": true, "location": at(12, 14) }],
            "ssh": [{ "name": "default", "location": at(12, 14) }],
            "sources": [source_b64()],
        })
    );
}

#[test]
fn targets_lists_the_stages_with_the_default_marked() {
    let env = Env::new();
    assert_eq!(
        call(&env, &["--call", "targets"]),
        "TARGET            DESCRIPTION\n\
         base              is the stage with the build dependencies\n\
         lint              lints markdown files\n\
         release (default) is an empty scratch image with only compiled assets\n"
    );
    let got: serde_json::Value =
        serde_json::from_str(&call(&env, &["--call=targets,format=json"])).expect("JSON");
    assert_eq!(
        got,
        json!({
            "targets": [
                { "name": "base", "description": "is the stage with the build dependencies",
                  "base": "kiln.invalid/golang:${GO_VERSION}", "location": at(8, 8) },
                { "name": "lint", "description": "lints markdown files",
                  "base": "kiln.invalid/lint:1", "platform": "linux/amd64", "location": at(17, 17) },
                { "name": "release", "default": true,
                  "description": "is an empty scratch image with only compiled assets",
                  "base": "scratch", "location": at(21, 21) },
            ],
            "sources": [source_b64()],
        })
    );
}

#[test]
fn bad_calls_are_refused_in_one_line() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    for (args, want) in [
        (
            vec!["--call", "outline", "--target", "nope"],
            "kiln: --target: target stage \"nope\" could not be found\n",
        ),
        (
            vec!["--call", "targets,format=yaml"],
            "kiln: --call \"targets,format=yaml\": unknown option \"format=yaml\" (format=json or format=text)\n",
        ),
        (
            vec!["--call", "outline", "--check"],
            "kiln: --call outline: --check is --call check; give one of them\n",
        ),
    ] {
        let mut argv = vec!["build"];
        argv.extend(&args);
        argv.push(s(&ctx));
        assert_eq!(env.fails(&argv, None), want, "{args:?}");
    }
}
