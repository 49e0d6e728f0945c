//! `kiln bake`: `--print` of HCL, JSON and compose files against the JSON
//! buildx documents, and real builds of the targets in
//! `tests/bake/project` (a stage two targets share built once, a
//! `target:` context, a matrix, `--set`, variables from the environment,
//! a push read back by skopeo).

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::path::{Path, PathBuf};
use std::process::Output;
use support::{Auth, Registry};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/bake")
        .join(dir)
}

/// `kiln bake ARGS` run in `cwd` with `vars` set.
fn bake(env: &Env, cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    env.command(env!("CARGO_BIN_EXE_kiln"))
        .arg("bake")
        .args(args)
        .envs(vars.iter().copied())
        .current_dir(cwd)
        .output()
        .expect("kiln runs")
}

fn bake_ok(env: &Env, cwd: &Path, args: &[&str], vars: &[(&str, &str)]) -> (String, String) {
    let out = bake(env, cwd, args, vars);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kiln bake {} failed:\n{stderr}",
        args.join(" ")
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

fn bake_fails(env: &Env, cwd: &Path, args: &[&str]) -> String {
    let out = bake(env, cwd, args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "should fail:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn expected(name: &str, dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures("print").join(name)).expect("expected file");
    json(&text.replace("$DIR", s(dir)))
}

/// An environment without a store: `--print` reads no images.
fn print_env() -> Env {
    Env {
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

#[test]
fn print_hcl_variables_from_env_functions_inherits() {
    let env = print_env();
    let dir = fixtures("print");
    let (out, _) = bake_ok(
        &env,
        &dir,
        &["-f", "docker-bake.hcl", "--print"],
        &[("RELEASE", "v1.2"), ("DEBUG", "true")],
    );
    assert_eq!(json(&out), expected("expected-hcl.json", &dir));
}

#[test]
fn print_target_reads_another_targets_fields() {
    let env = print_env();
    let dir = fixtures("print");
    let (out, _) = bake_ok(
        &env,
        &dir,
        &["-f", "docker-bake.hcl", "--print", "storefront-debug"],
        &[("RELEASE", "v3")],
    );
    assert_eq!(
        json(&out),
        serde_json::json!({"target": {"storefront-debug": {
            "context": "storefront",
            "dockerfile": "web.Dockerfile",
            "tags": ["registry.example.com/shop/storefront:v3-debug"]
        }}})
    );
}

#[test]
fn print_matrix_with_set_on_one_generated_target() {
    let env = print_env();
    let dir = fixtures("print");
    let (out, _) = bake_ok(
        &env,
        &dir,
        &[
            "-f",
            "docker-bake.hcl",
            "--print",
            "lint",
            "--set",
            "lint-shell*.tags=lint:shellcheck",
        ],
        &[],
    );
    assert_eq!(json(&out), expected("expected-matrix.json", &dir));
}

#[test]
fn print_json_file_with_variables_merged_with_a_later_hcl_file() {
    let env = print_env();
    let dir = fixtures("print");
    let (out, _) = bake_ok(
        &env,
        &dir,
        &[
            "-f",
            "docker-bake.json",
            "--file",
            "override.hcl",
            "--print",
            "all",
        ],
        &[("API_TAG", "2.0")],
    );
    assert_eq!(json(&out), expected("expected-json.json", &dir));
}

#[test]
fn print_compose_build_sections_interpolated_from_env() {
    let env = print_env();
    let dir = fixtures("print");
    let (out, _) = bake_ok(
        &env,
        &dir,
        &["-f", "compose.yaml", "--print"],
        &[("APP_VERSION", "1.0")],
    );
    let dir = dir.canonicalize().expect("canonical");
    assert_eq!(json(&out), expected("expected-compose.json", &dir));
}

#[test]
fn default_file_lookup_reads_every_default_name_in_order() {
    let env = print_env();
    let dir = env.path("proj");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  web:\n    image: example/web\n    build: .\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("docker-bake.override.hcl"),
        "target \"web\" {\n  args = { FROM_OVERRIDE = \"1\" }\n}\n",
    )
    .expect("write");
    let (out, _) = bake_ok(&env, &dir, &["--print"], &[]);
    let v = json(&out);
    assert_eq!(v["target"]["web"]["tags"][0], "example/web");
    assert_eq!(v["target"]["web"]["args"]["FROM_OVERRIDE"], "1");
    assert_eq!(v["group"]["default"]["targets"][0], "web");
    let (out, _) = bake_ok(&env, &dir, &["--print", "--push"], &[]);
    assert_eq!(
        json(&out)["target"]["web"]["output"],
        serde_json::json!(["type=registry"])
    );
}

#[test]
fn builtin_variables_and_untyped_env_overrides() {
    let env = print_env();
    let dir = env.path("builtin");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("docker-bake.hcl"),
        "variable \"N\" {\n  default = 1\n}\ntarget \"default\" {\n  platforms = [BAKE_LOCAL_PLATFORM]\n  args = { N = add(N, 1) }\n}\n",
    )
    .expect("write");
    let (out, _) = bake_ok(&env, &dir, &["--print"], &[("N", "41")]);
    let v = json(&out);
    let platform = v["target"]["default"]["platforms"][0]
        .as_str()
        .unwrap_or("");
    assert!(platform.starts_with("linux/"), "{v}");
    // N from the environment is a number, as its default is.
    assert_eq!(v["target"]["default"]["args"]["N"], "42", "{v}");
    let out = bake(&env, &dir, &["--print"], &[("N", "many")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("variable \"N\"") && err.contains("number"),
        "{err}"
    );
}

#[test]
fn bad_files_are_named_with_line_and_column() {
    let env = print_env();
    let dir = env.path("bad");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
    write("syntax.hcl", "target \"a\" {\n  args = {\n");
    let err = bake_fails(&env, &dir, &["-f", "syntax.hcl", "--print"]);
    assert!(err.contains("syntax.hcl:2:"), "{err}");
    write(
        "eval.hcl",
        "target \"x\" {\n  tags = [\"a\"]\n  args = { A = nope(1) }\n  bogus = 1\n}\n",
    );
    let err = bake_fails(&env, &dir, &["-f", "eval.hcl", "--print", "x"]);
    assert!(
        err.contains("eval.hcl:4:3: target \"x\": unknown attribute \"bogus\""),
        "{err}"
    );
    write(
        "eval.hcl",
        "target \"x\" {\n  tags = [\"a\"]\n  args = { A = nope(1) }\n}\n",
    );
    let err = bake_fails(&env, &dir, &["-f", "eval.hcl", "--print", "x"]);
    assert!(err.contains("eval.hcl:3:3: target \"x\": args: "), "{err}");
    assert!(err.contains("nope"), "{err}");
    // User functions are bounded in depth and in calls.
    write(
        "recursive.hcl",
        "function \"f\" {\n  params = [n]\n  result = f(n)\n}\ntarget \"x\" {\n  tags = [f(1)]\n}\n",
    );
    let err = bake_fails(&env, &dir, &["-f", "recursive.hcl", "--print", "x"]);
    assert!(
        err.contains(
            "recursive.hcl:6:3: target \"x\": tags: function f: calls nested deeper than 32"
        ),
        "{err}"
    );
    write(
        "doubling.hcl",
        "function \"f\" {\n  params = [n]\n  result = n > 0 ? [f(n - 1), f(n - 1)] : 0\n}\ntarget \"x\" {\n  args = { A = length(f(30)) }\n}\n",
    );
    let err = bake_fails(&env, &dir, &["-f", "doubling.hcl", "--print", "x"]);
    assert!(err.contains("more than 10000 function calls"), "{err}");
    // Targets reading targets defined after them resolve in rounds, at most 64.
    let mut refs = String::new();
    for i in 0..100 {
        refs += &format!(
            "target \"r{i}\" {{\n  tags = [target.r{}.tags[0]]\n}}\n",
            i + 1
        );
    }
    refs += "target \"r100\" {\n  tags = [\"end\"]\n}\n";
    write("refs.hcl", &refs);
    let err = bake_fails(&env, &dir, &["-f", "refs.hcl", "--print", "r0"]);
    assert!(err.contains("more than 64 deep"), "{err}");
    write("bad.json", "{\"target\": {\"a\": {\"tags\": [}}}");
    let err = bake_fails(&env, &dir, &["-f", "bad.json", "--print"]);
    assert!(err.contains("bad.json:1:"), "{err}");
    write(
        "compose.yml",
        "services:\n  a:\n    build:\n      args: 3\n      - x\n",
    );
    let err = bake_fails(&env, &dir, &["-f", "compose.yml", "--print"]);
    assert!(err.contains("compose.yml:"), "{err}");
    write(
        "cycle.hcl",
        "target \"a\" {\n  inherits = [\"b\"]\n}\ntarget \"b\" {\n  inherits = [\"a\"]\n}\n",
    );
    let err = bake_fails(&env, &dir, &["-f", "cycle.hcl", "--print", "a"]);
    assert!(err.contains("inherits cycle"), "{err}");
    // A long chain resolves without recursion, up to the cap.
    let mut chain = String::from("target \"t0\" {\n  tags = [\"x\"]\n}\n");
    for i in 1..200 {
        chain += &format!("target \"t{i}\" {{\n  inherits = [\"t{}\"]\n}}\n", i - 1);
    }
    write("chain.hcl", &chain);
    let err = bake_fails(&env, &dir, &["-f", "chain.hcl", "--print", "t199"]);
    assert!(err.contains("inherits deeper than 64"), "{err}");
    let (out, _) = bake_ok(&env, &dir, &["-f", "chain.hcl", "--print", "t50"], &[]);
    assert_eq!(json(&out)["target"]["t50"]["tags"][0], "x");
    let big: Vec<String> = (0..20).map(|i| format!("\"{i}\"")).collect();
    write(
        "matrix.hcl",
        &format!(
            "target \"m\" {{\n  matrix = {{\n    a = [{0}]\n    b = [{0}]\n  }}\n  name = \"m-${{a}}-${{b}}\"\n}}\n",
            big.join(", ")
        ),
    );
    let err = bake_fails(&env, &dir, &["-f", "matrix.hcl", "--print", "m"]);
    assert!(err.contains("more than 256 combinations"), "{err}");
    let err = bake_fails(&env, &dir, &["-f", "cycle.hcl", "--print", "nope"]);
    assert!(err.contains("\"nope\""), "{err}");
    let err = bake_fails(
        &env,
        &dir,
        &["-f", "chain.hcl", "--print", "t3", "--set", "t3.bogus=1"],
    );
    assert!(err.contains("--set") && err.contains("bogus"), "{err}");
}

/// How many times the shared stage's RUN printed its marker.
fn shared_runs(stderr: &str) -> usize {
    stderr.matches("SHARED-STAGE-42-DONE").count()
}

#[test]
fn targets_sharing_a_stage_build_it_once_and_target_contexts_link() {
    let env = Env::new();
    let dir = fixtures("project");
    let app = env.path("app-out");
    let two = env.path("two-out");
    let (_, stderr) = bake_ok(
        &env,
        &dir,
        &[
            "--progress",
            "plain",
            "--no-cache",
            "--set",
            &format!("app.output=type=local,dest={}", s(&app)),
            "--set",
            &format!("two.output=type=local,dest={}", s(&two)),
        ],
        &[("GREETING", "bonjour")],
    );
    // one, two and app (through its target: context) all need the shared
    // stage; with --no-cache it still runs once.
    assert_eq!(shared_runs(&stderr), 1, "{stderr}");
    // app is built on target one's result, with the variable from the
    // environment.
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    assert_eq!(read(app.join("app.txt")), "bonjour from app\n");
    assert_eq!(read(app.join("one.txt")), "one\n");
    assert_eq!(read(app.join("shared.txt")), "shared-42\n");
    assert_eq!(read(two.join("two.txt")), "two\n");
    assert_eq!(read(two.join("shared.txt")), "shared-42\n");
    assert!(!two.join("one.txt").exists());
    // one had no output set: its tag is in the store.
    let images = env.images();
    assert!(images.contains("bake-test/one"), "{images}");
}

#[test]
fn equal_steps_on_different_contexts_stay_apart_and_a_linked_one_runs_once() {
    let env = Env::new();
    let dir = fixtures("contexts");
    let out = env.path("out");
    let mut args: Vec<String> = vec!["--progress".into(), "plain".into(), "--no-cache".into()];
    for t in ["a", "b", "c"] {
        args.push("--set".into());
        args.push(format!("{t}.output=type=local,dest={}", s(&out.join(t))));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, stderr) = bake_ok(&env, &dir, &args, &[]);
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    assert_eq!(read(out.join("a/f.txt")), "from a\n");
    assert_eq!(read(out.join("b/f.txt")), "from b\n");
    assert_eq!(read(out.join("c/lib.txt")), "from a\n");
    assert_eq!(read(out.join("c/own.txt")), "from b\n");
    // a's COPY and b's (same text, other context) each ran once; c got
    // a's through the link without running it again.
    let headers = stderr
        .lines()
        .filter(|l| l.ends_with("] COPY f.txt /f.txt"))
        .count();
    assert_eq!(headers, 2, "{stderr}");
}

#[test]
fn a_linked_target_alone_is_not_exported() {
    let env = Env::new();
    let dir = fixtures("project");
    let app = env.path("app-out");
    bake_ok(
        &env,
        &dir,
        &[
            "app",
            "--progress",
            "quiet",
            "--set",
            &format!("app.output=type=local,dest={}", s(&app)),
            "--set",
            "app.args.GREETING=salut",
        ],
        &[],
    );
    assert_eq!(
        std::fs::read_to_string(app.join("app.txt")).expect("app.txt"),
        "salut from app\n"
    );
    let images = env.images();
    assert!(!images.contains("bake-test/one"), "{images}");
}

#[test]
fn matrix_targets_build_with_their_own_values() {
    let env = Env::new();
    let dir = fixtures("project");
    let out = env.path("variants");
    bake_ok(
        &env,
        &dir,
        &[
            "variant",
            "--progress",
            "quiet",
            "--set",
            &format!(
                "variant-plain.output=type=local,dest={}",
                s(&out.join("plain"))
            ),
            "--set",
            &format!(
                "variant-fancy.output=type=local,dest={}",
                s(&out.join("fancy"))
            ),
        ],
        &[],
    );
    for flavor in ["plain", "fancy"] {
        let got = std::fs::read_to_string(out.join(flavor).join("flavor.txt")).expect("flavor");
        assert_eq!(got, format!("{flavor}\n"));
    }
}

#[test]
fn allow_grants_every_target_and_inline_dockerfiles_build() {
    let env = Env::new();
    let dir = env.path("allow");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("docker-bake.hcl"),
        "target \"default\" {\n  dockerfile-inline = \"FROM busybox\\nRUN --network=host grep -c : /proc/net/dev > /ifaces\\n\"\n}\n",
    )
    .expect("write");
    let out = env.path("out");
    let set = format!("default.output=type=local,dest={}", s(&out));
    let err = bake_fails(&env, &dir, &["--progress", "quiet", "--set", &set]);
    assert!(err.contains("--allow network.host"), "{err}");
    bake_ok(
        &env,
        &dir,
        &[
            "--progress",
            "quiet",
            "--allow",
            "network.host",
            "--set",
            &set,
        ],
        &[],
    );
    let ifaces = std::fs::read_to_string(out.join("ifaces")).expect("ifaces");
    assert!(
        ifaces.trim().parse::<u32>().is_ok_and(|n| n >= 1),
        "{ifaces}"
    );
}

#[test]
fn pull_resolves_base_images_in_their_registry_again() {
    let env = Env::new();
    let registry = Registry::start(Auth::None);
    let base = format!("{}/lib/base:1", registry.host());
    env.ok(&["push", "busybox:latest", &base], None);
    let dir = env.path("pull");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("docker-bake.hcl"),
        "variable \"BASE\" {}\ntarget \"default\" {\n  dockerfile-inline = \"FROM ${BASE}\\nRUN cat /marker > /seen 2>/dev/null || echo none > /seen\\n\"\n}\n",
    )
    .expect("write");
    let out = env.path("out");
    let set = format!("default.output=type=local,dest={}", s(&out));
    let seen = || std::fs::read_to_string(out.join("seen")).expect("seen");
    let vars = [("BASE", base.as_str())];
    bake_ok(&env, &dir, &["--progress", "quiet", "--set", &set], &vars);
    assert_eq!(seen(), "none\n");
    // The tag moves to an image with a marker.
    let marked = env.context(
        "marked",
        &[("Dockerfile", "FROM busybox\nRUN echo v2 > /marker\n")],
    );
    env.ok(&["build", "-t", "marked:1", s(&marked)], None);
    env.ok(&["push", "marked:1", &base], None);
    bake_ok(&env, &dir, &["--progress", "quiet", "--set", &set], &vars);
    assert_eq!(seen(), "none\n");
    bake_ok(
        &env,
        &dir,
        &["--progress", "quiet", "--pull", "--set", &set],
        &vars,
    );
    assert_eq!(seen(), "v2\n");
}

#[test]
fn multi_platform_targets_link_platform_by_platform() {
    let env = Env::new();
    let dir = env.context(
        "multi",
        &[
            ("f.txt", "file\n"),
            (
                "docker-bake.hcl",
                "target \"base\" {\n  dockerfile-inline = \"FROM scratch\\nARG TARGETARCH\\nCOPY f.txt /base-$TARGETARCH.txt\\n\"\n  platforms = [\"linux/amd64\", \"linux/arm64\"]\n}\ntarget \"top\" {\n  dockerfile-inline = \"FROM base\\nCOPY f.txt /top.txt\\n\"\n  contexts = { base = \"target:base\" }\n  platforms = [\"linux/amd64\", \"linux/arm64\"]\n}\n",
            ),
        ],
    );
    let out = env.path("out");
    bake_ok(
        &env,
        &dir,
        &[
            "top",
            "--progress",
            "quiet",
            "--set",
            &format!("top.output=type=local,dest={}", s(&out)),
        ],
        &[],
    );
    for arch in ["amd64", "arm64"] {
        let platform = out.join(format!("linux_{arch}"));
        assert!(platform.join("top.txt").is_file(), "{platform:?}");
        assert!(
            platform.join(format!("base-{arch}.txt")).is_file(),
            "{platform:?}"
        );
    }
    // A target with three platforms cannot take a two-platform link.
    let err = bake_fails(
        &env,
        &dir,
        &[
            "top",
            "--set",
            "top.platform=linux/amd64,linux/arm64,linux/s390x",
        ],
    );
    assert!(err.contains("contexts.base"), "{err}");
}

#[test]
fn compose_services_build_and_take_image_as_tag() {
    let env = Env::new();
    let dir = fixtures("project").join("compose");
    bake_ok(&env, &dir, &["--progress", "quiet"], &[]);
    let images = env.images();
    assert!(images.contains("bake-test/compose-one"), "{images}");
    assert!(images.contains("bake-test/compose-two"), "{images}");
    assert!(!images.contains("cache"), "{images}");
}

#[test]
fn push_sends_every_target_to_the_registry() {
    if std::env::var_os("CI").is_none() && which("skopeo").is_none() {
        eprintln!("skipped: skopeo is not installed (apt-get install skopeo)");
        return;
    }
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let dir = fixtures("project");
    let host = registry.host();
    bake_ok(
        &env,
        &dir,
        &[
            "one",
            "two",
            "--push",
            "--progress",
            "quiet",
            "--set",
            &format!("one.tags={host}/bake/one:1"),
            "--set",
            &format!("two.tags={host}/bake/two:1"),
        ],
        &[],
    );
    for name in ["one", "two"] {
        let info = json(&support::skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            &format!("docker://{host}/bake/{name}:1"),
        ]));
        assert_eq!(info["Architecture"], "amd64", "{info}");
        // busybox's layer, the shared stage's and the target's own.
        assert_eq!(info["Layers"].as_array().map(Vec::len), Some(3), "{info}");
    }
    let one = json(&support::skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/bake/one:1"),
    ]));
    let two = json(&support::skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{host}/bake/two:1"),
    ]));
    // The shared stage's layer is the same blob in both.
    assert_eq!(one["Layers"][1], two["Layers"][1]);
    assert_ne!(one["Layers"][2], two["Layers"][2]);
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

#[test]
fn load_puts_every_target_into_the_docker_engine() {
    let host = match std::env::var("KILN_ENGINE_DOCKER_HOST") {
        Ok(h) if !h.is_empty() => h,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set KILN_ENGINE_DOCKER_HOST (.ci/run starts dockerd)"
            );
            eprintln!("skipped: set KILN_ENGINE_DOCKER_HOST to a dockerd socket (.ci/run does)");
            return;
        }
    };
    let env = Env::new();
    let dir = fixtures("project");
    let tag = |name: &str| format!("bake-load-test/{name}:{}", std::process::id());
    bake_ok(
        &env,
        &dir,
        &[
            "one",
            "two",
            "--load",
            "--progress",
            "quiet",
            "--set",
            &format!("one.tags={}", tag("one")),
            "--set",
            &format!("two.tags={}", tag("two")),
        ],
        &[("DOCKER_HOST", host.as_str())],
    );
    for name in ["one", "two"] {
        let out = std::process::Command::new("docker")
            .args([
                "-H",
                &host,
                "image",
                "inspect",
                "-f",
                "{{len .RootFS.Layers}}",
                &tag(name),
            ])
            .output()
            .expect("docker runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
        let _ = std::process::Command::new("docker")
            .args(["-H", &host, "image", "rm", &tag(name)])
            .output();
    }
}

#[test]
fn a_failed_step_is_reported_as_kiln_build_reports_it_under_its_target() {
    let env = Env::new();
    let dir = env.path("failing");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN echo step-output && exit 3\n",
    )
    .expect("write");
    std::fs::write(dir.join("docker-bake.hcl"), "target \"broken\" {}\n").expect("write");
    let err = bake_fails(&env, &dir, &["broken", "--progress", "plain"]);
    let first = err
        .lines()
        .find(|l| l.starts_with("kiln: "))
        .unwrap_or_default();
    assert_eq!(
        first,
        "kiln: target \"broken\": ./Dockerfile:2:1: process \"/bin/sh -c echo step-output && exit 3\" did not complete successfully: exit code: 3",
        "{err}"
    );
    // The command is named once on that line, and the excerpt follows.
    assert_eq!(first.matches("exit 3").count(), 1, "{err}");
    assert!(err.contains(">>> RUN echo step-output && exit 3"), "{err}");
}

#[test]
fn every_targets_cache_from_serves_the_one_graph() {
    let dir_of = |env: &Env| {
        let dir = env.path("caches");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(
            dir.join("Dockerfile"),
            "FROM busybox AS one\nRUN echo one > /one\nFROM busybox AS two\nRUN echo two > /two\n",
        )
        .expect("write");
        dir
    };
    let first = Env::new();
    let cache = first.path("cache-two");
    let dir = dir_of(&first);
    std::fs::write(
        dir.join("docker-bake.hcl"),
        format!(
            "target \"two\" {{\n  target = \"two\"\n  cache-to = [\"type=local,dest={}\"]\n}}\n",
            s(&cache)
        ),
    )
    .expect("write");
    bake_ok(&first, &dir, &["two", "--progress", "quiet"], &[]);

    // On an empty store, the second target's --cache-from serves its step.
    let second = Env::new();
    let dir = dir_of(&second);
    std::fs::write(
        dir.join("docker-bake.hcl"),
        format!(
            "target \"one\" {{\n  target = \"one\"\n}}\n\
             target \"two\" {{\n  target = \"two\"\n  cache-from = [\"type=local,src={}\"]\n}}\n",
            s(&cache)
        ),
    )
    .expect("write");
    let (_, log) = bake_ok(&second, &dir, &["one", "two", "--progress", "plain"], &[]);
    let ran: Vec<&str> = log.lines().filter(|l| l.contains("] RUN echo")).collect();
    assert!(log.contains("RUN echo two > /two"), "{log}");
    let two_header = log
        .lines()
        .find(|l| l.contains("RUN echo two > /two"))
        .and_then(|l| l.split(' ').next())
        .unwrap_or_default()
        .to_string();
    assert!(
        log.lines().any(|l| l == format!("{two_header} CACHED")),
        "the second target's step comes from its cache: {ran:?}\n{log}"
    );
}
