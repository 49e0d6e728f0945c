//! `kiln build --print dag` writes DOT that Graphviz itself accepts, for
//! every example and for a fixture with odd names; `--print dag=svg` and
//! `dag=png` draw it through `dot`, and say so in one line when `dot` is
//! missing. Needs Graphviz (skips with a reason, unless `CI=true`).

mod common;

use common::{s, Env, BUSYBOX};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");

/// Whether Graphviz's `dot` runs, after saying why not.
fn graphviz() -> bool {
    if Command::new("dot").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have Graphviz's dot (graphviz; .ci/run installs it)"
    );
    eprintln!("skipped: Graphviz's dot is not installed");
    false
}

/// `dot -Tsvg` of `dot_text`, asserting that Graphviz accepts it.
fn to_svg(dot_text: &str, what: &str) -> String {
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dot runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(dot_text.as_bytes())
        .expect("write to dot");
    let out = child.wait_with_output().expect("dot finishes");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{what}: dot rejected the DOT ({stderr}):\n{dot_text}"
    );
    String::from_utf8(out.stdout).expect("utf-8 svg")
}

/// `text` as Graphviz writes it into SVG text.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
        .replace('-', "&#45;")
}

/// Asserts that the SVG shows the start of every vertex's name (as
/// `--print json` lists them) and a cluster per stage.
fn assert_drawn(env: &Env, args: &[&str], what: &str) -> String {
    let mut dag = vec!["build", "--print", "dag"];
    dag.extend_from_slice(args);
    let (dot_text, _) = env.ok(&dag, None);
    let svg = to_svg(&dot_text, what);
    let mut json = vec!["build", "--print", "json"];
    json.extend_from_slice(args);
    let (json, _) = env.ok(&json, None);
    let graph: serde_json::Value = serde_json::from_str(&json).expect("json");
    let vertices = graph["vertices"].as_array().expect("vertices");
    assert!(vertices.len() >= 3, "{what}: {json}");
    let mut stages = std::collections::BTreeSet::new();
    for v in vertices {
        let name = v["name"].as_str().expect("name");
        // The first two words are always on the node's first line.
        let start: Vec<&str> = name.split_whitespace().take(2).collect();
        let start = xml(&start.join(" "));
        assert!(
            svg.contains(&start),
            "{what}: {start:?} is not drawn:\n{svg}"
        );
        if let Some(stage) = name
            .strip_prefix('[')
            .and_then(|n| n.split_once(' '))
            .map(|(stage, _)| stage)
            .filter(|stage| !["internal]", "context]"].contains(stage))
        {
            stages.insert(stage.to_string());
        }
    }
    for n in 0..stages.len() {
        assert!(
            svg.contains(&format!("<title>cluster_{n}</title>")),
            "{what}: {} stages ({stages:?}) but no cluster_{n}:\n{dot_text}",
            stages.len()
        );
    }
    svg
}

#[test]
fn every_example_draws() {
    if !graphviz() {
        return;
    }
    let env = Env::new();
    let busybox = format!("oci-layout://{BUSYBOX}");
    let mut drawn = 0;
    for (example, extra) in [
        ("hello", vec![]),
        ("static-site", vec![]),
        (
            "go-service",
            vec![
                "--build-arg".to_string(),
                "GO_VERSION=1.22".to_string(),
                "--build-context".to_string(),
                format!("golang:1.22-bookworm={busybox}"),
                "--build-context".to_string(),
                format!("gcr.io/distroless/static-debian12:nonroot={busybox}"),
            ],
        ),
    ] {
        let dir = Path::new(EXAMPLES).join(example);
        let mut args: Vec<&str> = extra.iter().map(String::as_str).collect();
        args.push(s(&dir));
        let svg = assert_drawn(&env, &args, example);
        assert!(svg.contains("<svg"), "{example}");
        drawn += 1;
    }
    // Every example with a Dockerfile is covered above.
    let with_dockerfile = std::fs::read_dir(EXAMPLES)
        .expect("examples")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().join("Dockerfile").is_file())
        })
        .count();
    assert_eq!(drawn, with_dockerfile);
}

/// A multi-stage Dockerfile with a RUN bind mount from another stage,
/// COPY --from, and names full of quotes, backslashes, newlines and
/// DOT's record characters.
const ODD: &str = r#"FROM busybox AS tools
RUN mkdir -p /out && echo 'tab	and \N \G' > "/out/q\"uote"

FROM busybox AS build
RUN --mount=type=bind,from=tools,source=/bin,target=/mnt/t<o>ols \
    echo "a \"quoted\" \\ back {x|y} <b>" > /out
COPY ["back\\\\slash\nnew{|}<a>", "/dst/"]

FROM busybox
COPY --from=build /out /from-build
COPY --from=tools ["/out/q\\\"uote", "/back\\\\slash"]
RUN <<EOF
echo one
echo "two"
EOF
"#;

#[test]
fn odd_names_make_valid_dot_with_clusters_and_edge_kinds() {
    if !graphviz() {
        return;
    }
    let env = Env::new();
    let ctx = env.context("odd", &[("Dockerfile", ODD), ("x", "x")]);
    std::fs::write(ctx.join("back\\slash\nnew{|}<a>"), "odd").expect("odd file");
    let (dot_text, _) = env.ok(&["build", "--print", "dag", s(&ctx)], None);
    // Edges: the bind mount dashed, COPY --from dotted.
    assert!(
        dot_text.contains("[style=dashed, label=\"mount /mnt/t<o>ols\"]"),
        "{dot_text}"
    );
    assert!(
        dot_text.contains("[style=dotted, label=\"copy /out\"]"),
        "{dot_text}"
    );
    assert!(dot_text.contains("shape=folder"), "{dot_text}");
    let svg = assert_drawn(&env, &[s(&ctx)], "odd names");
    // Three stages, three clusters (and no fourth).
    assert!(svg.contains("<title>cluster_2</title>"), "{svg}");
    assert!(!svg.contains("<title>cluster_3</title>"), "{svg}");
    // Text DOT would read as escapes is drawn literally.
    for shown in [
        r#"\"quoted\" \\ back {x|y} <b>"#,
        r"and \N",
        r"\G' >",
        r#"back\\\\slash\nnew{|}<a>"#,
        r"copy back\slash new{|}<a>",
    ] {
        assert!(svg.contains(&xml(shown)), "{shown:?} is not drawn:\n{svg}");
    }
}

#[test]
fn print_dag_svg_and_png_draw_through_dot() {
    if !graphviz() {
        return;
    }
    let env = Env::new();
    let hello = Path::new(EXAMPLES).join("hello");
    let (svg, _) = env.ok(&["build", "--print", "dag=svg", s(&hello)], None);
    assert!(
        svg.contains("<svg") && svg.contains("WORKDIR /src"),
        "{svg}"
    );
    let out = env.run(&["build", "--print", "dag=png", s(&hello)], None);
    assert!(out.status.success());
    assert!(out.stdout.starts_with(b"\x89PNG\r\n"), "a PNG");
    let out = env.run(&["build", "--print", "dag=pdf", s(&hello)], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("dag=svg"), "clap lists the values: {err}");
}

#[test]
fn print_dag_svg_without_dot_says_so_in_one_line() {
    let env = Env::new();
    let hello = Path::new(EXAMPLES).join("hello");
    let empty = env.path("no-tools");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let out = env.run_env(
        &["build", "--print", "dag=svg", s(&hello)],
        None,
        &[("PATH", s(&empty))],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--print dag=svg") && stderr.contains("`dot` is not installed"),
        "{stderr}"
    );
    // The DOT itself needs no Graphviz.
    let out = env.run_env(
        &["build", "--print", "dag", s(&hello)],
        None,
        &[("PATH", s(&empty))],
    );
    assert!(out.status.success() && out.stdout.starts_with(b"digraph"));
}
