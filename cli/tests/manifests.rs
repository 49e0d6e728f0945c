//! The Kubernetes, Tekton and CI manifests in `examples/` work as written.
//!
//! - **Schemas, offline.** `examples/kubernetes/*.yaml` go through
//!   `kubernetes-validate --strict` against the schemas it ships for
//!   Kubernetes [`KUBERNETES`] (strict: an unknown field fails). No schema
//!   for Tekton's CRDs can be had offline, so each Tekton Task's steps are
//!   validated as Kubernetes `Container` objects (in a Pod that carries the
//!   Task's volumes) with the same validator, and the Task's own shape is
//!   checked here: `tekton.dev/v1` `Task`, known `spec` fields, typed
//!   params, and every `$(params.*)`, `$(workspaces.*)` and `$(results.*)`
//!   reference declared. `examples/ci/github-actions.yml` and
//!   `examples/ci/gitlab-ci.yml` go through `check-jsonschema
//!   --builtin-schema vendor.github-workflows` / `vendor.gitlab-ci` (the
//!   schemas are vendored in the package). A broken copy of a manifest is
//!   validated too and must fail, so a validator that accepts anything
//!   fails the test.
//! - **The image.** Every manifest names `ghcr.io/kiln-build/kiln:`, and
//!   only through `image:` (Kubernetes containers, Tekton steps, GitLab
//!   `image.name` with `entrypoint: [""]`, the GitHub job's `container`).
//! - **Every kiln command line.** A container's `args` (after `command`,
//!   which may only be `kiln`: the image's entrypoint) and every `kiln ...`
//!   in a GitLab `script:` or a GitHub `run:` (expanded by `sh -u` with
//!   sample values for the CI's variables, so an unknown variable fails)
//!   run through the built kiln: `kiln build` with `--print json` added
//!   (flags, the git context and the Dockerfile are all read, nothing is
//!   built or pushed), `kiln lint` as written, any other command with
//!   `--help` added (clap still rejects unknown flags before it). The git
//!   URLs the manifests name are served by a real git server on 127.0.0.1
//!   (git's `url.<base>.insteadOf` in the test's `$HOME/.gitconfig`), from
//!   a repository with the branches, commits and subdirectories they name.
//!
//! The validators come from PyPI into the venv `target/ci-tools` (`.ci/run`
//! installs them; pinned there); a Python with PyYAML (that venv's) turns
//! YAML into JSON. Under `CI=true` a missing tool fails the test; elsewhere
//! the test says it skipped.

use kiln_test_support::{git, GitServer};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
const TOOLS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/ci-tools/bin");
const IMAGE: &str = "ghcr.io/kiln-build/kiln:";
/// The Kubernetes version the manifests are validated against: the first
/// with user namespaces for pods on by default (`hostUsers: false`).
const KUBERNETES: &str = "1.33.0";
const TOKEN: &str = "manifest-test-token";

/// YAML (every document of every file) to JSON: `[[doc, ...], ...]`.
const YAML_TO_JSON: &str = r#"
import json, sys, yaml
out = []
for path in sys.argv[1:]:
    with open(path) as f:
        out.append([d for d in yaml.safe_load_all(f) if d is not None])
json.dump(out, sys.stdout)
"#;

/// What kind of manifest a file is, by its place in `examples/`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Kubernetes,
    Tekton,
    GitHubActions,
    GitLabCi,
}

struct Manifest {
    path: PathBuf,
    kind: Kind,
    docs: Vec<Value>,
}

impl Manifest {
    fn name(&self) -> String {
        let examples = Path::new(EXAMPLES);
        self.path
            .strip_prefix(examples)
            .unwrap_or(&self.path)
            .display()
            .to_string()
    }
}

/// A tool on PATH, else in `target/ci-tools/bin`.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from(TOOLS)])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// A Python that imports yaml: the venv's first.
fn python() -> Option<PathBuf> {
    let venv = Path::new(TOOLS).join("python3");
    [Some(venv), tool("python3")]
        .into_iter()
        .flatten()
        .find(|py| {
            Command::new(py)
                .args(["-c", "import yaml"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// The tools a test needs, or `None` after saying it skipped (outside CI).
fn require(names: &[&str]) -> Option<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    let mut missing = Vec::new();
    for name in names {
        let path = if *name == "python3" {
            python()
        } else {
            tool(name)
        };
        match path {
            Some(p) => {
                found.insert(name.to_string(), p);
            }
            None => missing.push(*name),
        }
    }
    if missing.is_empty() {
        return Some(found);
    }
    let msg = format!(
        "missing {} (install them with .ci/run: pip packages in target/ci-tools, python3 with PyYAML, git)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("manifests: skipped: {msg}");
    None
}

fn manifests(python: &Path) -> Vec<Manifest> {
    let mut files = Vec::new();
    for (dir, kind) in [
        ("kubernetes", Some(Kind::Kubernetes)),
        ("tekton", Some(Kind::Tekton)),
        ("ci", None),
    ] {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(Path::new(EXAMPLES).join(dir))
            .unwrap_or_else(|e| panic!("examples/{dir}: {e}"))
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        entries.sort();
        for path in entries {
            let kind = kind.unwrap_or_else(|| match path.file_name().and_then(|n| n.to_str()) {
                Some("github-actions.yml") => Kind::GitHubActions,
                Some("gitlab-ci.yml") => Kind::GitLabCi,
                other => panic!("examples/ci/{other:?}: no validator is wired for it here"),
            });
            files.push((path, kind));
        }
    }
    let out = Command::new(python)
        .args(["-c", YAML_TO_JSON])
        .args(files.iter().map(|(p, _)| p))
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "YAML does not load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Vec<Value>> = serde_json::from_slice(&out.stdout).expect("JSON from python");
    let found: Vec<Manifest> = files
        .into_iter()
        .zip(docs)
        .map(|((path, kind), docs)| Manifest { path, kind, docs })
        .collect();
    for kind in [
        Kind::Kubernetes,
        Kind::Tekton,
        Kind::GitHubActions,
        Kind::GitLabCi,
    ] {
        assert!(
            found.iter().any(|m| m.kind == kind && !m.docs.is_empty()),
            "no {kind:?} manifest in examples/"
        );
    }
    found
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("tool runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubernetes-validate --strict` on these files; `Ok` or its report.
fn kubernetes_validate(tool: &Path, files: &[&Path]) -> Result<(), String> {
    let out = run(Command::new(tool)
        .args(["--strict", "--quiet", "--kubernetes-version", KUBERNETES])
        .args(files));
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out))
    }
}

/// `check-jsonschema --builtin-schema SCHEMA FILE`; `Ok` or its report.
fn check_jsonschema(tool: &Path, schema: &str, file: &Path) -> Result<(), String> {
    let out = run(Command::new(tool)
        .args(["--builtin-schema", schema])
        .arg(file));
    if out.status.success() {
        Ok(())
    } else {
        Err(text(&out))
    }
}

/// Every `$(...)` reference in the strings of `v`.
fn tekton_refs(v: &Value, refs: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            let mut rest = s.as_str();
            while let Some(start) = rest.find("$(") {
                let tail = &rest[start + 2..];
                let end = tail
                    .find(')')
                    .unwrap_or_else(|| panic!("unclosed $( in {s:?}"));
                refs.push(tail[..end].to_string());
                rest = &tail[end + 1..];
            }
        }
        Value::Array(a) => a.iter().for_each(|x| tekton_refs(x, refs)),
        Value::Object(o) => o.values().for_each(|x| tekton_refs(x, refs)),
        _ => {}
    }
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["name"].as_str().expect("a name").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a Tekton Task's own shape; returns a Pod holding its steps as
/// containers, for the Kubernetes validator.
fn tekton_task(file: &str, task: &Value) -> Value {
    assert_eq!(task["apiVersion"], "tekton.dev/v1", "{file}");
    assert_eq!(task["kind"], "Task", "{file}");
    let name = task["metadata"]["name"].as_str().expect("metadata.name");
    let spec = task["spec"].as_object().expect("spec");
    for key in spec.keys() {
        assert!(
            [
                "description",
                "params",
                "workspaces",
                "results",
                "volumes",
                "steps",
                "stepTemplate",
                "sidecars",
                "displayName",
            ]
            .contains(&key.as_str()),
            "{file}: spec.{key} is not a Task field"
        );
    }
    for p in spec["params"].as_array().expect("params") {
        let keys: Vec<&String> = p.as_object().expect("param").keys().collect();
        for k in keys {
            assert!(
                [
                    "name",
                    "type",
                    "description",
                    "default",
                    "properties",
                    "enum"
                ]
                .contains(&k.as_str()),
                "{file}: param field {k}"
            );
        }
        assert!(
            ["string", "array", "object"].contains(&p["type"].as_str().unwrap_or("string")),
            "{file}: param type {}",
            p["type"]
        );
    }
    for w in spec["workspaces"].as_array().expect("workspaces") {
        for k in w.as_object().expect("workspace").keys() {
            assert!(
                ["name", "description", "mountPath", "readOnly", "optional"].contains(&k.as_str()),
                "{file}: workspace field {k}"
            );
        }
    }
    let params = names(&spec["params"]);
    let workspaces = names(&spec["workspaces"]);
    let results = names(spec.get("results").unwrap_or(&Value::Null));
    let mut refs = Vec::new();
    tekton_refs(&task["spec"]["steps"], &mut refs);
    assert!(!refs.is_empty(), "{file}: the steps use no params");
    for r in &refs {
        let parts: Vec<&str> = r.split('.').collect();
        let ok = match parts.as_slice() {
            ["params", p] => params.iter().any(|x| x == p),
            ["workspaces", w, "path" | "bound" | "claim" | "volume"] => {
                workspaces.iter().any(|x| x == w)
            }
            ["results", res, "path"] => results.iter().any(|x| x == res),
            _ => false,
        };
        assert!(ok, "{file}: $({r}) names nothing the Task declares");
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": format!("tekton-task-{name}") },
        "spec": {
            "containers": task["spec"]["steps"],
            "volumes": task["spec"].get("volumes").cloned().unwrap_or(json!([])),
        },
    })
}

#[test]
fn manifests_pass_their_schemas() {
    let Some(tools) = require(&["python3", "kubernetes-validate", "check-jsonschema"]) else {
        return;
    };
    let scratch = tempfile::tempdir().expect("temp dir");
    let k8s = &tools["kubernetes-validate"];
    let jsonschema = &tools["check-jsonschema"];
    let all = manifests(&tools["python3"]);
    let mut documents = 0;
    for m in &all {
        let name = m.name();
        match m.kind {
            Kind::Kubernetes => {
                kubernetes_validate(k8s, &[&m.path]).unwrap_or_else(|e| panic!("{name}:\n{e}"));
                documents += m.docs.len();
            }
            Kind::Tekton => {
                for (i, doc) in m.docs.iter().enumerate() {
                    let pod = tekton_task(&name, doc);
                    let file = scratch.path().join(format!("tekton-{i}.json"));
                    std::fs::write(&file, pod.to_string()).expect("write pod");
                    kubernetes_validate(k8s, &[&file])
                        .unwrap_or_else(|e| panic!("{name}: the steps as containers:\n{e}"));
                    documents += 1;
                }
            }
            Kind::GitHubActions | Kind::GitLabCi => {
                let schema = if m.kind == Kind::GitHubActions {
                    "vendor.github-workflows"
                } else {
                    "vendor.gitlab-ci"
                };
                check_jsonschema(jsonschema, schema, &m.path)
                    .unwrap_or_else(|e| panic!("{name}:\n{e}"));
                documents += m.docs.len();
            }
        }
    }

    // The validators are strict here: a field that does not exist fails
    // each of them.
    let broken = |m: &Manifest, from: &str, to: &str| -> PathBuf {
        let text = std::fs::read_to_string(&m.path).expect("read");
        assert!(text.contains(from), "{}: {from:?}", m.name());
        let ext = m
            .path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("yaml");
        let file = scratch.path().join(format!("broken-{:?}.{ext}", m.kind));
        std::fs::write(&file, text.replacen(from, to, 1)).expect("write");
        file
    };
    let of = |kind: Kind| all.iter().find(|m| m.kind == kind).expect("manifest");
    let k = broken(of(Kind::Kubernetes), "restartPolicy:", "restartPolicyy:");
    assert!(
        kubernetes_validate(k8s, &[&k]).is_err(),
        "an unknown Pod field passed"
    );
    let g = broken(of(Kind::GitHubActions), "runs-on:", "run-on:");
    assert!(
        check_jsonschema(jsonschema, "vendor.github-workflows", &g).is_err(),
        "a job without runs-on passed"
    );
    let l = broken(of(Kind::GitLabCi), "  script:", "  scripts:");
    assert!(
        check_jsonschema(jsonschema, "vendor.gitlab-ci", &l).is_err(),
        "a job with `scripts:` passed"
    );
    let t = tekton_task("broken", &{
        let mut task = of(Kind::Tekton).docs[0].clone();
        task["spec"]["steps"][0]["workDir"] = json!("/x");
        task
    });
    let tf = scratch.path().join("broken-tekton.json");
    std::fs::write(&tf, t.to_string()).expect("write");
    assert!(
        kubernetes_validate(k8s, &[&tf]).is_err(),
        "an unknown step field passed"
    );

    eprintln!(
        "manifests: {} files, {documents} documents valid (Kubernetes {KUBERNETES} strict; Tekton steps as containers; GitHub Actions and GitLab CI schemas); 4 broken copies refused",
        all.len()
    );
}

#[test]
fn manifests_run_kiln_image() {
    let Some(tools) = require(&["python3"]) else {
        return;
    };
    for m in manifests(&tools["python3"]) {
        let name = m.name();
        let raw = std::fs::read_to_string(&m.path).expect("read");
        assert!(raw.contains(IMAGE), "{name} does not name {IMAGE}");
        assert!(
            !image_uses(&m).is_empty(),
            "{name}: no container runs kiln's image"
        );
        let mut fields = 0;
        for doc in &m.docs {
            image_fields(doc, false, &mut fields);
        }
        assert_eq!(
            fields,
            raw.matches(IMAGE).count(),
            "{name}: kiln's image named outside an `image:` field"
        );
    }
}

/// Counts the strings naming kiln's image that are an `image` field (or
/// the `name` of one, GitLab's long form).
fn image_fields(v: &Value, in_image: bool, n: &mut usize) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if (k == "image" || (in_image && k == "name")) && is_kiln_image(x) {
                    *n += 1;
                }
                image_fields(x, k == "image", n);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| image_fields(x, false, n)),
        _ => {}
    }
}

/// Where a manifest runs kiln's image: (where, how kiln is called).
enum Runs {
    /// A container whose process is `kiln ARGS`.
    Args(Vec<String>),
    /// Shell scripts that call `kiln ...`, with their environment.
    Shell {
        scripts: Vec<String>,
        env: Vec<(String, String)>,
    },
}

fn is_kiln_image(v: &Value) -> bool {
    v.as_str().is_some_and(|s| s.starts_with(IMAGE))
}

/// Every container (an object with `image`) in `v` that runs kiln's image.
fn kiln_containers<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(o) => {
            if o.get("image").is_some_and(is_kiln_image) {
                out.push(v);
            }
            o.values().for_each(|x| kiln_containers(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| kiln_containers(x, out)),
        _ => {}
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => panic!("not a string: {other}"),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn env_map(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("a string value").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn image_uses(m: &Manifest) -> Vec<Runs> {
    let name = m.name();
    let mut runs = Vec::new();
    for doc in &m.docs {
        match m.kind {
            Kind::Kubernetes | Kind::Tekton => {
                let mut found = Vec::new();
                kiln_containers(doc, &mut found);
                for c in found {
                    let command = strings(&c["command"]);
                    assert!(
                        command.is_empty() || command == ["kiln"],
                        "{name}: command {command:?}: kiln's entrypoint is `kiln`"
                    );
                    runs.push(Runs::Args(strings(&c["args"])));
                }
            }
            Kind::GitLabCi => {
                let global = env_map(&doc["variables"]);
                for (job, body) in doc.as_object().expect("jobs") {
                    let image = &body["image"];
                    if !image.is_object() || !is_kiln_image(&image["name"]) {
                        assert!(
                            !is_kiln_image(image),
                            "{name}: {job}: kiln's image needs `entrypoint: [\"\"]` (its entrypoint is not a shell)"
                        );
                        continue;
                    }
                    assert_eq!(
                        image["entrypoint"],
                        json!([""]),
                        "{name}: {job}: kiln's image needs `entrypoint: [\"\"]`"
                    );
                    let mut scripts = strings(&body["before_script"]);
                    scripts.extend(strings(&body["script"]));
                    let mut env = global.clone();
                    env.extend(env_map(&body["variables"]));
                    runs.push(Runs::Shell { scripts, env });
                }
            }
            Kind::GitHubActions => {
                let global = env_map(&doc["env"]);
                for body in doc["jobs"].as_object().expect("jobs").values() {
                    let container = &body["container"];
                    let image = if container.is_string() {
                        container
                    } else {
                        &container["image"]
                    };
                    if !is_kiln_image(image) {
                        continue;
                    }
                    let mut env = global.clone();
                    env.extend(env_map(&body["env"]));
                    for step in body["steps"].as_array().expect("steps") {
                        let Some(script) = step["run"].as_str() else {
                            continue;
                        };
                        let mut env = env.clone();
                        env.extend(env_map(&step["env"]));
                        runs.push(Runs::Shell {
                            scripts: vec![script.to_string()],
                            env,
                        });
                    }
                }
            }
        }
    }
    runs
}

/// The sample world the manifests' command lines run in: a git server
/// serving the repository they name, under the URLs they name.
struct World {
    dir: tempfile::TempDir,
    _server: GitServer,
    commit: String,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = GitServer::start();
        let work = dir.path().join("checkout");
        std::fs::create_dir_all(work.join("services/api")).expect("mkdir");
        git(&work, &["init", "-q"]);
        std::fs::write(work.join("Dockerfile"), "FROM scratch\nCOPY . /app/\n").expect("write");
        std::fs::write(
            work.join("services/api/Dockerfile"),
            "FROM scratch\nCOPY . /api/\n",
        )
        .expect("write");
        std::fs::write(work.join("services/api/main.txt"), "api\n").expect("write");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "app"]);
        let commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
        server.publish("app", &work);
        let home = dir.path().join("home");
        std::fs::create_dir_all(&home).expect("mkdir");
        // The hosts the manifests name, served from 127.0.0.1.
        std::fs::write(
            home.join(".gitconfig"),
            format!(
                "[url \"{}\"]\n\tinsteadOf = https://git.example.com/team/app.git\n\tinsteadOf = https://github.com/kiln-build/app.git\n",
                server.http_url("app")
            ),
        )
        .expect("gitconfig");
        World {
            dir,
            _server: server,
            commit,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Sample values of the variables a CI gives its jobs.
    fn ci_vars(&self) -> Vec<(String, String)> {
        let checkout = self.path("checkout").display().to_string();
        [
            ("CI_REGISTRY", "registry.example.com".to_string()),
            ("CI_REGISTRY_IMAGE", "registry.example.com/team/app".into()),
            ("CI_REGISTRY_USER", "gitlab-ci-token".into()),
            ("CI_REGISTRY_PASSWORD", TOKEN.into()),
            ("CI_COMMIT_SHA", self.commit.clone()),
            ("CI_PROJECT_DIR", checkout),
            ("GIT_AUTH_TOKEN", TOKEN.into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// `${{ EXPR }}` of GitHub Actions, for the expressions the workflow
    /// uses (another one fails the test).
    fn github_expr(&self, expr: &str) -> String {
        match expr {
            "github.repository" => "kiln-build/app".into(),
            "github.server_url" => "https://github.com".into(),
            "github.sha" => self.commit.clone(),
            "github.actor" => "octocat".into(),
            "secrets.GITHUB_TOKEN" => TOKEN.into(),
            other => panic!("no sample value for ${{{{ {other} }}}}"),
        }
    }

    /// Tekton's `$(...)`: sample params, a workspace path, a result path.
    fn tekton_ref(&self, r: &str) -> String {
        let parts: Vec<&str> = r.split('.').collect();
        match parts.as_slice() {
            ["params", "CONTEXT"] => {
                "https://git.example.com/team/app.git#main:services/api".into()
            }
            ["params", "IMAGE"] => "registry.example.com/team/app:1.4.0".into(),
            ["params", "CACHE"] => "registry.example.com/team/app:buildcache".into(),
            ["params", "DOCKERFILE"] => "Dockerfile".into(),
            ["workspaces", w, "path"] => self.path(&format!("workspace-{w}")).display().to_string(),
            ["results", res, "path"] => self.path(&format!("result-{res}")).display().to_string(),
            _ => panic!("no sample value for $({r})"),
        }
    }

    /// Runs kiln with these arguments in the sample world: `build` with
    /// `--print json`, `lint` as is, anything else with `--help`.
    fn kiln(&self, what: &str, mut args: Vec<String>) {
        let sub = args.first().cloned().unwrap_or_default();
        match sub.as_str() {
            "build" => args.extend(["--print".into(), "json".into()]),
            "lint" => {}
            _ => args.push("--help".into()),
        }
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(&args)
            .current_dir(self.path("checkout"))
            .env("HOME", self.path("home"))
            .env("KILN_ROOT", self.path("store"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .env("GIT_AUTH_TOKEN", TOKEN)
            .env("KILN_GIT_TIMEOUT", "60")
            .env_remove("KILN_CONFIG")
            .env_remove("KILN_ISOLATION")
            .env_remove("KILN_RUNTIME")
            .stdin(Stdio::null())
            .output()
            .expect("kiln runs");
        assert!(
            out.status.success(),
            "{what}: kiln {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            text(&out)
        );
        if sub == "build" {
            let graph: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{what}: --print json: {e}"));
            assert!(
                graph["vertices"].as_array().is_some_and(|v| !v.is_empty()),
                "{what}: an empty build graph"
            );
        }
    }
}

/// `$VAR` / `${VAR}` in a GitLab variable's value, from `env`.
fn expand_vars(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 1..];
        let (name, after) = if let Some(t) = tail.strip_prefix('{') {
            let end = t.find('}').expect("closing }");
            (&t[..end], &t[end + 1..])
        } else {
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            (&tail[..end], &tail[end..])
        };
        let v = env
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .unwrap_or_else(|| panic!("${name} is not set"));
        out.push_str(&v.1);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// `${{ EXPR }}` replaced through `f`.
fn github_exprs(s: &str, f: &dyn Fn(&str) -> String) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 3..];
        let end = tail.find("}}").expect("closing }}");
        out.push_str(&f(tail[..end].trim()));
        rest = &tail[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The `kiln ...` commands of a shell script: its lines (continuations
/// joined), split at pipes; each is the text after `kiln`.
fn kiln_commands(script: &str) -> Vec<String> {
    let joined = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let before = found.len();
        for segment in line.split(" | ") {
            let segment = segment.trim();
            if let Some(rest) = segment.strip_prefix("kiln ") {
                found.push(rest.to_string());
            }
        }
        assert!(
            found.len() > before
                || !line
                    .split(|c: char| c.is_whitespace() || c == '|' || c == ';' || c == '&')
                    .any(|w| w == "kiln"),
            "a kiln call this test cannot take apart: {line}"
        );
    }
    found
}

/// The words `sh -u` makes of `text` (quotes removed, variables from
/// `env` expanded; an unset one fails).
fn shell_words(text: &str, env: &[(String, String)]) -> Vec<String> {
    let script = format!("set -- {text}\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done");
    let out = Command::new("sh")
        .args(["-u", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    assert!(out.status.success(), "sh: {text}:\n{}", self::text(&out));
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .split_terminator('\0')
        .map(str::to_string)
        .collect()
}

#[test]
fn kiln_command_lines_in_manifests_parse() {
    let Some(tools) = require(&["python3", "git"]) else {
        return;
    };
    let world = World::new();
    let mut commands = 0;
    let mut builds = 0;
    let all = manifests(&tools["python3"]);
    for m in &all {
        let name = m.name();
        let mut here = 0;
        for runs in image_uses(m) {
            match runs {
                Runs::Args(args) => {
                    let args: Vec<String> = if m.kind == Kind::Tekton {
                        args.iter()
                            .map(|a| {
                                let mut out = String::new();
                                let mut rest = a.as_str();
                                while let Some(i) = rest.find("$(") {
                                    out.push_str(&rest[..i]);
                                    let tail = &rest[i + 2..];
                                    let end = tail.find(')').expect("closing )");
                                    out.push_str(&world.tekton_ref(&tail[..end]));
                                    rest = &tail[end + 1..];
                                }
                                out.push_str(rest);
                                out
                            })
                            .collect()
                    } else {
                        assert!(
                            args.iter().all(|a| !a.contains("$(")),
                            "{name}: Kubernetes expands $(VAR) in args: {args:?}"
                        );
                        args
                    };
                    assert!(!args.is_empty(), "{name}: a kiln container without args");
                    builds += usize::from(args[0] == "build");
                    world.kiln(&name, args);
                    here += 1;
                }
                Runs::Shell { scripts, env } => {
                    let mut vars = world.ci_vars();
                    for (k, v) in env {
                        let v = if m.kind == Kind::GitHubActions {
                            github_exprs(&v, &|e| world.github_expr(e))
                        } else {
                            expand_vars(&v, &vars)
                        };
                        vars.push((k, v));
                    }
                    for script in scripts {
                        let script = github_exprs(&script, &|e| world.github_expr(e));
                        for cmd in kiln_commands(&script) {
                            let args = shell_words(&cmd, &vars);
                            builds += usize::from(args.first().is_some_and(|a| a == "build"));
                            world.kiln(&name, args);
                            here += 1;
                        }
                    }
                }
            }
        }
        assert!(here > 0, "{name}: no kiln command line found");
        commands += here;
    }
    assert!(
        builds >= all.len(),
        "{builds} kiln builds in {} files",
        all.len()
    );
    eprintln!(
        "manifests: {commands} kiln command lines in {} files parse ({builds} builds lowered from their git or local contexts)",
        all.len()
    );
}
