//! Lowering checked against BuildKit's goldens: for every conformance case
//! that builds, the image config kiln's lowering computes (config keys,
//! author, history) must equal `expected/config.json`. This needs no
//! filesystem work, so it covers the RUN cases too.

use kiln_oci::{Digest, ImageConfig, Platform};
use kiln_solver::{lower, BuildOptions, ImageResolver, ResolveError, ResolvedImage};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared");

/// Resolves the two conformance bases from their layouts; anything else
/// fails, as it did for BuildKit without network.
struct Bases;

impl ImageResolver for Bases {
    fn resolve(
        &self,
        reference: &str,
        _platform: &Platform,
    ) -> Result<ResolvedImage, ResolveError> {
        let r = kiln_oci::Reference::parse(reference).map_err(|e| e.to_string())?;
        let layout = match r.to_string().as_str() {
            "docker.io/library/busybox:latest" => "busybox",
            "docker.io/library/busybox-onbuild:latest" => "busybox-onbuild",
            other => return Err(format!("pull access denied for {other}").into()),
        };
        let dir = Path::new(SHARED).join("bases").join(layout);
        let index: Value = serde_json::from_slice(
            &std::fs::read(dir.join("index.json")).map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let manifest_digest = index["manifests"][0]["digest"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let blob = |d: &str| {
            std::fs::read(
                dir.join("blobs/sha256")
                    .join(d.trim_start_matches("sha256:")),
            )
        };
        let manifest: Value =
            serde_json::from_slice(&blob(&manifest_digest).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        let config_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
        let config = ImageConfig::from_slice(&blob(config_digest).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        Ok(ResolvedImage {
            reference: r.to_string(),
            manifest: manifest_digest
                .parse::<Digest>()
                .map_err(|e| e.to_string())?,
            config,
        })
    }
}

/// The config normalised as FORMAT.md describes (without `layers`, which
/// needs the solver).
fn normalise(config: &Value) -> Value {
    let c = &config["config"];
    let mut out = serde_json::Map::new();
    for key in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "Healthcheck",
        "StopSignal",
        "Shell",
        "OnBuild",
    ] {
        let v = c.get(key).cloned().unwrap_or(Value::Null);
        // Go's omitempty: empty strings, lists and maps are absent.
        let v = match &v {
            Value::String(s) if s.is_empty() => Value::Null,
            Value::Array(a) if a.is_empty() => Value::Null,
            Value::Object(o) if o.is_empty() => Value::Null,
            _ => v,
        };
        out.insert(key.to_string(), v);
    }
    out.insert(
        "Author".into(),
        config.get("author").cloned().unwrap_or(Value::Null),
    );
    out.insert("os".into(), config["os"].clone());
    out.insert("architecture".into(), config["architecture"].clone());
    let history: Vec<Value> = config["history"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| {
            json!({
                "created_by": h.get("created_by").cloned().unwrap_or(Value::Null),
                "empty_layer": h.get("empty_layer").and_then(Value::as_bool).unwrap_or(false),
                "comment": h.get("comment").cloned().unwrap_or(Value::Null),
            })
        })
        .collect();
    out.insert("history".into(), Value::Array(history));
    Value::Object(out)
}

#[test]
fn lowered_configs_match_buildkit() {
    let cases = Path::new(SHARED).join("conformance/cases");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .expect("cases")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let (mut pass, mut fail, mut text_only, mut skipped) = (0, 0, 0, 0);
    let mut report = String::new();
    for case in names {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let spec: Value =
            serde_json::from_slice(&std::fs::read(case.join("case.json")).expect("case.json"))
                .expect("json");
        let expected_path = case.join("expected/config.json");
        if spec["expect"] != "success" || !expected_path.exists() {
            skipped += 1;
            continue;
        }
        let dockerfile = spec["dockerfile"].as_str().unwrap_or("Dockerfile");
        let text =
            std::fs::read_to_string(case.join("context").join(dockerfile)).expect("Dockerfile");
        let parsed = kiln_parser::parse(&text).expect("parses");
        let mut options = BuildOptions {
            platform: "linux/amd64".parse().expect("p"),
            build_platform: "linux/amd64".parse().expect("p"),
            ..BuildOptions::default()
        };
        options.target = spec["target"].as_str().map(str::to_string);
        if let Some(args) = spec["build_args"].as_object() {
            options.build_args = args
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect::<BTreeMap<_, _>>();
        }
        let lowered = match lower(&parsed, &options, &Bases, &case.join("context")) {
            Ok(l) => l,
            Err(e) => {
                fail += 1;
                report.push_str(&format!("{name}: lowering failed: {e}\n"));
                continue;
            }
        };
        let got = normalise(&serde_json::from_slice(&lowered.config.to_vec()).expect("json"));
        let want_full: Value =
            serde_json::from_slice(&std::fs::read(&expected_path).expect("config")).expect("json");
        let want = normalise_expected(&want_full);
        let strip_text = |v: &Value| {
            let mut v = v.clone();
            for h in v["history"].as_array_mut().into_iter().flatten() {
                h["created_by"] = Value::Null;
                h["comment"] = Value::Null;
            }
            v
        };
        if strip_text(&got) != strip_text(&want) {
            fail += 1;
            report.push_str(&format!(
                "{name}:\n  got:  {}\n  want: {}\n",
                serde_json::to_string(&strip_text(&got)).unwrap_or_default(),
                serde_json::to_string(&strip_text(&want)).unwrap_or_default()
            ));
        } else {
            pass += 1;
            if got != want {
                text_only += 1;
                let g = got["history"].as_array().cloned().unwrap_or_default();
                let w = want["history"].as_array().cloned().unwrap_or_default();
                for (a, b) in g.iter().zip(&w) {
                    if a != b {
                        report.push_str(&format!(
                            "{name} (history text only): got {} want {}\n",
                            a, b
                        ));
                    }
                }
            }
        }
    }
    println!("{report}");
    println!("lowered configs: {pass} match, {fail} differ ({text_only} of the matching differ only in history text), {skipped} error cases skipped");
    assert_eq!(fail, 0, "lowered configs differ from BuildKit's");
}

/// The expected file is already normalised; bring it to the same shape.
fn normalise_expected(v: &Value) -> Value {
    let mut out = v.clone();
    if let Some(o) = out.as_object_mut() {
        o.remove("layers");
    }
    out
}

#[test]
fn lowering_errors_match_buildkit() {
    let cases = Path::new(SHARED).join("conformance/cases");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&cases)
        .expect("cases")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    let (mut matched, mut later) = (0, 0);
    let mut wrong = Vec::new();
    for case in names {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let spec: Value =
            serde_json::from_slice(&std::fs::read(case.join("case.json")).expect("case.json"))
                .expect("json");
        if spec["expect"] != "error" {
            continue;
        }
        let want = spec["error"].as_str().unwrap_or_default().to_string();
        let dockerfile = spec["dockerfile"].as_str().unwrap_or("Dockerfile");
        let text =
            std::fs::read_to_string(case.join("context").join(dockerfile)).unwrap_or_default();
        let options = BuildOptions {
            platform: "linux/amd64".parse().expect("p"),
            build_platform: "linux/amd64".parse().expect("p"),
            ..BuildOptions::default()
        };
        // `kiln build` refuses an empty file before parsing, as BuildKit's
        // frontend does.
        let message = if text.is_empty() {
            "the Dockerfile cannot be empty".to_string()
        } else {
            match kiln_parser::parse(&text) {
                Err(e) => e.to_string(),
                Ok(df) => match lower(&df, &options, &Bases, &case.join("context")) {
                    Err(e) => e.to_string(),
                    Ok(_) => {
                        // Fails when the build runs (missing file, RUN exit code).
                        later += 1;
                        continue;
                    }
                },
            }
        };
        if message.contains(&want) {
            matched += 1;
        } else {
            wrong.push(format!("{name}: got {message:?}, BuildKit says {want:?}"));
        }
    }
    println!("error cases: {matched} fail while parsing or lowering with BuildKit's message, {later} fail later");
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
