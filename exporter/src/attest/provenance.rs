//! SLSA provenance v0.2, as BuildKit writes it for a Dockerfile build.

use super::statement::{Attestation, PREDICATE_PROVENANCE};
use kiln_oci::Digest;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::time::SystemTime;

/// How much the provenance tells (buildx's `mode=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProvenanceMode {
    /// Builder, frontend, materials, timestamps.
    #[default]
    Min,
    /// Also the build args, platform, the Dockerfile's text and the build
    /// steps.
    Max,
}

/// Something the build read: a base image or a git repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Material {
    /// A package URL (`pkg:docker/debian@bookworm?platform=linux%2Famd64`)
    /// or a git URL.
    pub uri: String,
    /// Its digest: algorithm (`sha256`, `sha1` for a git commit) and hex.
    pub digest: Option<(String, String)>,
}

/// What the provenance of one platform's image records. It holds no
/// secret: secrets never reach it.
#[derive(Debug, Clone)]
pub struct ProvenanceInput {
    /// `mode=min` or `mode=max`.
    pub mode: ProvenanceMode,
    /// `builder-id=`, else none (as BuildKit without one).
    pub builder_id: Option<String>,
    /// The Dockerfile's name (`Dockerfile`, or `-f`'s value).
    pub dockerfile_name: String,
    /// The Dockerfile's bytes (their digest is always recorded; the text
    /// only in max mode).
    pub dockerfile: Vec<u8>,
    /// The context's git URL and commit, when the context is a repository.
    pub git_context: Option<(String, Option<String>)>,
    /// `--build-arg` values (max mode).
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// The platform built (`linux/amd64`).
    pub platform: String,
    /// Base images and other sources, by digest.
    pub materials: Vec<Material>,
    /// The build's steps (max mode): kiln's op graph as `--print json`
    /// writes it.
    pub steps: Option<Value>,
    /// When the build started and finished.
    pub started: SystemTime,
    /// When the build finished.
    pub finished: SystemTime,
    /// An id for this build.
    pub invocation_id: String,
}

/// The provenance predicate of one platform's image.
pub fn provenance(input: &ProvenanceInput) -> Attestation {
    let max = input.mode == ProvenanceMode::Max;
    let git = input.git_context.as_ref().map(|(url, commit)| Material {
        uri: url.clone(),
        digest: commit.clone().map(|c| ("sha1".to_string(), c)),
    });
    let materials: Vec<Value> = git
        .iter()
        .chain(&input.materials)
        .map(|m| {
            let mut v = json!({ "uri": m.uri });
            if let Some((alg, hex)) = &m.digest {
                v["digest"] = json!({ alg.as_str(): hex });
            }
            v
        })
        .collect();
    let mut config_source = json!({
        "entryPoint": input.dockerfile_name,
        "digest": { "sha256": Digest::sha256(&input.dockerfile).hex() },
    });
    if let Some((url, _)) = &input.git_context {
        config_source["uri"] = json!(url);
    }
    let mut args = Map::new();
    if let Some(target) = &input.target {
        args.insert("target".into(), json!(target));
    }
    if max {
        for (k, v) in &input.build_args {
            args.insert(format!("build-arg:{k}"), json!(v));
        }
    }
    let mut parameters = json!({
        "frontend": "dockerfile.v0",
        "args": args,
        "locals": [{"name": "context"}, {"name": "dockerfile"}],
    });
    if input.git_context.is_some() {
        parameters["locals"] = json!([]);
    }
    let mut environment = json!({});
    if max {
        environment["platform"] = json!(input.platform);
    }
    let mut buildkit_metadata = json!({});
    if let Some((url, commit)) = &input.git_context {
        buildkit_metadata["vcs"] = json!({ "source": url, "revision": commit });
    }
    let mut predicate = json!({
        "builder": { "id": input.builder_id.clone().unwrap_or_default() },
        "buildType": "https://mobyproject.org/buildkit@v1",
        "materials": materials,
        "invocation": {
            "configSource": config_source,
            "parameters": parameters,
            "environment": environment,
        },
        "metadata": {
            "buildInvocationID": input.invocation_id,
            "buildStartedOn": rfc3339(input.started),
            "buildFinishedOn": rfc3339(input.finished),
            "completeness": {
                "parameters": max,
                "environment": true,
                "materials": false,
            },
            "reproducible": false,
        },
    });
    if max {
        buildkit_metadata["source"] = json!({
            "infos": [{
                "filename": input.dockerfile_name,
                "language": "Dockerfile",
                "data": base64_std(&input.dockerfile),
            }],
        });
        if let Some(steps) = &input.steps {
            predicate["buildConfig"] = json!({ "kilnDefinition": steps });
        }
    }
    if buildkit_metadata.as_object().is_some_and(|m| !m.is_empty()) {
        predicate["metadata"]["https://mobyproject.org/buildkit@v1#metadata"] = buildkit_metadata;
    }
    Attestation {
        predicate_type: PREDICATE_PROVENANCE.to_string(),
        predicate,
    }
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Standard base64 with padding (BuildKit's encoding of the Dockerfile).
fn base64_std(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(mode: ProvenanceMode) -> ProvenanceInput {
        ProvenanceInput {
            mode,
            builder_id: Some("https://ci.example/run/1".into()),
            dockerfile_name: "Dockerfile".into(),
            dockerfile: b"FROM debian\nRUN true\n".to_vec(),
            git_context: None,
            build_args: [("VERSION".to_string(), "1.2".to_string())].into(),
            target: Some("app".into()),
            platform: "linux/amd64".into(),
            materials: vec![Material {
                uri: "pkg:docker/debian@bookworm?platform=linux%2Famd64".into(),
                digest: Some(("sha256".into(), "ab".repeat(32))),
            }],
            steps: Some(json!({"vertices": []})),
            started: SystemTime::UNIX_EPOCH,
            finished: SystemTime::UNIX_EPOCH,
            invocation_id: "x".into(),
        }
    }

    #[test]
    fn min_mode_leaves_out_args_source_and_steps() {
        let p = provenance(&input(ProvenanceMode::Min)).predicate;
        assert_eq!(p["builder"]["id"], "https://ci.example/run/1");
        assert_eq!(p["invocation"]["parameters"]["frontend"], "dockerfile.v0");
        assert_eq!(p["invocation"]["parameters"]["args"]["target"], "app");
        assert!(p["invocation"]["parameters"]["args"]["build-arg:VERSION"].is_null());
        assert_eq!(p["materials"][0]["digest"]["sha256"], "ab".repeat(32));
        assert_eq!(
            p["invocation"]["configSource"]["digest"]["sha256"],
            Digest::sha256(b"FROM debian\nRUN true\n").hex()
        );
        assert!(p["buildConfig"].is_null());
        assert_eq!(p["metadata"]["completeness"]["parameters"], false);
        assert_eq!(p["metadata"]["buildStartedOn"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn a_git_context_is_a_material_with_its_commit() {
        let mut i = input(ProvenanceMode::Min);
        i.git_context = Some((
            "https://git.example/app.git#main".into(),
            Some("c0ffee".into()),
        ));
        let p = provenance(&i).predicate;
        assert_eq!(p["materials"][0]["uri"], "https://git.example/app.git#main");
        assert_eq!(p["materials"][0]["digest"]["sha1"], "c0ffee");
        assert_eq!(p["materials"][1]["digest"]["sha256"], "ab".repeat(32));
        assert_eq!(
            p["invocation"]["configSource"]["uri"],
            "https://git.example/app.git#main"
        );
    }

    #[test]
    fn max_mode_adds_args_platform_source_and_steps() {
        let p = provenance(&input(ProvenanceMode::Max)).predicate;
        assert_eq!(
            p["invocation"]["parameters"]["args"]["build-arg:VERSION"],
            "1.2"
        );
        assert_eq!(p["invocation"]["environment"]["platform"], "linux/amd64");
        assert!(p["buildConfig"]["kilnDefinition"]["vertices"].is_array());
        let info =
            &p["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["source"]["infos"][0];
        assert_eq!(info["filename"], "Dockerfile");
        assert_eq!(info["data"], base64_std(b"FROM debian\nRUN true\n"));
    }
}
