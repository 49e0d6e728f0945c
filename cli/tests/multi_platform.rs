//! Multi-platform builds (`--platform linux/amd64,linux/arm64`): one graph
//! per platform, an image index pushed to a real registry (read back by
//! skopeo per architecture), a directory per platform for `type=local`, an
//! index in the store that later builds resolve per platform, and a
//! docker archive refused. The Dockerfile cross-builds the way Go projects
//! do: its builder runs on the build platform and only copies into
//! `scratch`, so no emulator is needed.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use support::{skopeo_ok, Auth, Registry};

const DOCKERFILE: &str = "FROM --platform=$BUILDPLATFORM busybox AS build\n\
    ARG TARGETPLATFORM TARGETARCH TARGETVARIANT\n\
    RUN echo \"$TARGETPLATFORM $TARGETARCH [$TARGETVARIANT]\" > /target\n\
    FROM scratch\n\
    COPY --from=build /target /target\n";

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn an_index_is_pushed_and_each_platform_gets_its_own_files() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let name = format!("{}/team/multi:1", registry.host());
    let local = env.path("local");
    let meta = env.path("meta.json");
    let (_, log) = env.ok(
        &[
            "build",
            "--progress",
            "plain",
            "--platform",
            "linux/amd64,linux/arm64",
            "--push",
            "-t",
            &name,
            "-o",
            &format!("type=local,dest={}", s(&local)),
            "--metadata-file",
            s(&meta),
            "--annotation",
            "index:org.opencontainers.image.description=two platforms",
            "--annotation",
            "manifest:org.example.per-image=yes",
            s(&ctx),
        ],
        None,
    );
    // buildx's step names: the platform first.
    assert!(log.contains("[linux/arm64 build 2] RUN echo"), "{log}");
    assert!(log.contains("[linux/amd64 build 2] RUN echo"), "{log}");
    assert_eq!(
        read(&local.join("linux_amd64/target")),
        "linux/amd64 amd64 []\n"
    );
    assert_eq!(
        read(&local.join("linux_arm64/target")),
        "linux/arm64 arm64 []\n"
    );

    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    let index: serde_json::Value = serde_json::from_str(&raw).expect("index");
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or_default(),
                m["platform"]["architecture"].as_str().unwrap_or_default()
            )
        })
        .collect();
    // As buildx pushes it: each platform's image, then (min provenance by
    // default when pushing) each one's attestation manifest.
    assert_eq!(
        platforms,
        [
            "linux/amd64",
            "linux/arm64",
            "unknown/unknown",
            "unknown/unknown"
        ]
    );
    for arch in ["amd64", "arm64"] {
        let config = skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            "--raw",
            "--config",
            &format!("docker://{name}"),
        ]);
        let config: serde_json::Value = serde_json::from_str(&config).expect("config");
        assert_eq!(config["architecture"], arch, "{config}");
    }
    // Manifest annotations go on each platform's manifest.
    let repo = name.trim_end_matches(":1");
    for m in index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|m| m["platform"]["os"] != "unknown")
    {
        let child = skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!(
                "docker://{repo}@{}",
                m["digest"].as_str().unwrap_or_default()
            ),
        ]);
        let child: serde_json::Value = serde_json::from_str(&child).expect("manifest");
        assert_eq!(
            child["annotations"]["org.example.per-image"], "yes",
            "{child}"
        );
    }
    let meta: serde_json::Value = serde_json::from_str(&read(&meta)).expect("metadata");
    let digest = {
        use sha2::Digest as _;
        format!("sha256:{:x}", sha2::Sha256::digest(raw.as_bytes()))
    };
    assert_eq!(meta["containerimage.digest"], digest.as_str());
    assert_eq!(
        meta["containerimage.descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert!(meta.get("containerimage.config.digest").is_none(), "{meta}");
}

#[test]
fn a_stored_index_serves_each_platform_and_docker_archives_are_refused() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    env.ok(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-t",
            "multi:1",
            s(&ctx),
        ],
        None,
    );
    let images = env.images();
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("multi ") && l.contains("linux/amd64,linux/arm64")),
        "{images}"
    );
    // `kiln push` sends the stored index with both images.
    let registry = Registry::start(Auth::None);
    let pushed = format!("{}/team/again:1", registry.host());
    env.ok(&["push", "multi:1", &pushed], None);
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{pushed}"),
    ]);
    let index: serde_json::Value = serde_json::from_str(&raw).expect("index");
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(2),
        "{raw}"
    );
    // A later build picks the arm64 image out of the stored index.
    let user = env.context("user", &[("Dockerfile", "FROM multi:1\n")]);
    let out = env.path("arm");
    env.ok(
        &[
            "build",
            "--platform",
            "linux/arm64",
            "-o",
            &format!("type=local,dest={}", s(&out)),
            s(&user),
        ],
        None,
    );
    assert_eq!(read(&out.join("target")), "linux/arm64 arm64 []\n");

    let archive = env.path("multi.tar");
    let stderr = env.fails(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "-o",
            &format!("type=docker,dest={}", s(&archive)),
            s(&ctx),
        ],
        None,
    );
    assert!(
        stderr.contains("a docker archive holds one platform"),
        "{stderr}"
    );
    assert!(!archive.exists());
}

#[test]
fn a_foreign_binary_fails_with_a_hint() {
    let env = Env::new();
    // An ELF header for VAX (e_machine 75): the kernel refuses it here,
    // and no QEMU handler takes it (an aarch64 one might be registered).
    let mut elf = vec![0u8; 128];
    elf[..7].copy_from_slice(b"\x7fELF\x02\x01\x01");
    elf[16] = 2;
    elf[18] = 75;
    elf[20] = 1;
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nCOPY --chmod=755 armbin /armbin\nRUN [\"/armbin\"]\n",
        )],
    );
    std::fs::write(ctx.join("armbin"), &elf).expect("write binary");
    // The built-in runtime fails the exec; runc reports it in the output.
    for runtime in ["builtin", "runc"] {
        let stderr = env.fails(&["build", "--runtime", runtime, s(&ctx)], None);
        assert!(stderr.contains("Dockerfile:3:"), "{runtime}: {stderr}");
        assert!(
            stderr.contains("not built for this machine") && stderr.contains("qemu-user-static"),
            "{runtime}: {stderr}"
        );
    }
}
