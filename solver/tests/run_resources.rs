//! `--shm-size`, `--ulimit` and `--cgroup-parent` in RUN steps' identity:
//! hashed as BuildKit's exec op holds them (its cache map keeps `ShmSize`,
//! `Ulimit` and `CgroupParent`), each left out when not given, so a build
//! without them keeps its digests (pinned in `digests.rs`).

use kiln_executor::Resources;
use kiln_oci::{Digest, ImageConfig, Platform};
use kiln_solver::{lower, BuildOptions, ImageResolver, ResolveError, ResolvedImage};
use std::path::Path;

/// Every image resolves to a digest made from its name.
struct Fixed;

impl ImageResolver for Fixed {
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, ResolveError> {
        Ok(ResolvedImage {
            reference: reference.to_string(),
            manifest: Digest::sha256(format!("{reference} {platform}").as_bytes()),
            config: ImageConfig::default(),
        })
    }
}

const DOCKERFILE: &str = "FROM busybox\nRUN echo hi > /f\n";

/// `(kind, digest, serialised op)` of every vertex.
fn vertices(resources: Resources) -> Vec<(String, String, String)> {
    let amd64: Platform = "linux/amd64".parse().expect("platform");
    let options = BuildOptions {
        platform: amd64.clone(),
        build_platform: amd64,
        run_resources: resources,
        ..BuildOptions::default()
    };
    let dockerfile = kiln_parser::parse(DOCKERFILE).expect("parses");
    let lowered = lower(&dockerfile, &options, &Fixed, Path::new("/nonexistent")).expect("lowers");
    lowered
        .graph
        .vertices()
        .iter()
        .map(|v| {
            (
                v.op.kind().to_string(),
                v.digest.to_string(),
                serde_json::to_string(&v.op).expect("serialises"),
            )
        })
        .collect()
}

fn exec(vertices: &[(String, String, String)]) -> &(String, String, String) {
    vertices
        .iter()
        .find(|(_, _, op)| op.contains("echo hi"))
        .expect("the RUN vertex")
}

#[test]
fn resources_are_hashed_into_run_steps_only_and_only_when_given() {
    let plain = vertices(Resources::default());
    let (_, _, op) = exec(&plain);
    for key in ["shm_size", "ulimits", "cgroup_parent"] {
        assert!(!op.contains(key), "{key} in {op}");
    }
    assert!(plain.iter().all(|(_, _, op)| !op.contains("ulimits")));
    let given = [
        Resources {
            shm_size: Some(128 << 20),
            ..Resources::default()
        },
        Resources {
            ulimits: vec!["nofile=1024:2048".parse().expect("ulimit")],
            ..Resources::default()
        },
        Resources {
            cgroup_parent: Some("ci/jobs".into()),
            ..Resources::default()
        },
    ];
    let expected = [
        r#""shm_size":134217728"#,
        r#""ulimits":[{"name":"nofile","soft":1024,"hard":2048}]"#,
        r#""cgroup_parent":"ci/jobs""#,
    ];
    let mut run_digests = vec![exec(&plain).1.clone()];
    for (resources, json) in given.into_iter().zip(expected) {
        let v = vertices(resources);
        let (_, digest, op) = exec(&v);
        assert!(op.contains(json), "{op}");
        assert!(
            !run_digests.contains(digest),
            "{json}: the RUN digest did not move"
        );
        run_digests.push(digest.clone());
        // The base image keeps its vertex.
        assert_eq!(v.len(), plain.len());
        assert_eq!(v[0], plain[0], "{json}: the FROM vertex moved");
    }
}
