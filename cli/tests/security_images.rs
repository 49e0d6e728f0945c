//! Crafted images and archives (issue 13, findings 1, 8 and the `load`
//! message of 10): forged diff ids, bad descriptors and configs, and files
//! that are no image at all. Each image here is built from the real
//! busybox layout with `tar` and sha256, as an attacker would.

mod common;

use common::{s, Env, BUSYBOX};
use kiln_oci::Digest;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).expect("read")).expect("json")
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The busybox layout's manifest and config, parsed.
fn busybox() -> (serde_json::Value, serde_json::Value) {
    let base = Path::new(BUSYBOX);
    let index = json(&base.join("index.json"));
    let manifest = json(&blob_path(
        base,
        index["manifests"][0]["digest"].as_str().expect("digest"),
    ));
    let config = json(&blob_path(
        base,
        manifest["config"]["digest"].as_str().expect("digest"),
    ));
    (manifest, config)
}

/// Puts `bytes` into the layout as a blob; returns its descriptor.
fn put(layout: &Path, media_type: &str, bytes: &[u8]) -> serde_json::Value {
    let digest = Digest::sha256(bytes);
    fs::create_dir_all(layout.join("blobs/sha256")).expect("mkdir");
    fs::write(blob_path(layout, digest.as_str()), bytes).expect("write blob");
    serde_json::json!({"mediaType": media_type, "digest": digest.as_str(), "size": bytes.len()})
}

/// Writes an OCI layout at `dir` with one image, tagged `latest`: `config`
/// and `layers` are put as they are; `tweak` edits the manifest last.
fn layout(
    dir: &Path,
    config: &[u8],
    layers: &[(&str, Vec<u8>)],
    tweak: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let config = put(dir, "application/vnd.oci.image.config.v1+json", config);
    let layers: Vec<_> = layers.iter().map(|(t, b)| put(dir, t, b)).collect();
    let mut manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": layers,
    });
    tweak(&mut manifest);
    let manifest = put(
        dir,
        "application/vnd.oci.image.manifest.v1+json",
        &serde_json::to_vec(&manifest).expect("json"),
    );
    let mut entry = manifest;
    entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "latest"});
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry],
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&index).expect("json"),
    )
    .expect("index");
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).expect("oci-layout");
    dir.to_path_buf()
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The busybox layer with `/marker` added, made by `tar`: the plain tar
/// and its gzip.
fn busybox_plus_marker(env: &Env) -> (Vec<u8>, Vec<u8>) {
    let (manifest, _) = busybox();
    let layer = blob_path(
        Path::new(BUSYBOX),
        manifest["layers"][0]["digest"].as_str().expect("digest"),
    );
    let rootfs = env.path("forged-rootfs");
    fs::create_dir_all(&rootfs).expect("mkdir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(&layer)
        .arg("-C")
        .arg(&rootfs));
    fs::write(rootfs.join("marker"), "forged\n").expect("marker");
    let tar = env.path("forged.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&rootfs)
        .arg("."));
    run(Command::new("gzip").arg("-k").arg(&tar));
    (
        fs::read(&tar).expect("forged tar"),
        fs::read(tar.with_extension("tar.gz")).expect("forged gzip"),
    )
}

#[test]
fn forged_diff_id_fails_and_does_not_poison_the_genuine_image() {
    let env = Env::new();
    let (_, config) = busybox();
    let genuine = config["rootfs"]["diff_ids"][0]
        .as_str()
        .expect("diff id")
        .to_string();
    // busybox's own config, claiming busybox's diff id, over a layer that
    // holds busybox plus a marker.
    let (forged_tar, forged_gz) = busybox_plus_marker(&env);
    let forged_blob = Digest::sha256(&forged_gz);
    let forged = layout(
        &env.path("forged"),
        &serde_json::to_vec(&config).expect("json"),
        &[("application/vnd.oci.image.layer.v1.tar+gzip", forged_gz)],
        |_| {},
    );
    let ctx = env.context("ctx", &[("Dockerfile", "FROM base\nRUN cat /marker\n")]);
    let err = env.fails(
        &[
            "build",
            "--build-context",
            &format!("base=oci-layout://{}", s(&forged)),
            s(&ctx),
        ],
        None,
    );
    assert!(
        err.contains(forged_blob.as_str())
            && err.contains(&genuine)
            && err.contains(Digest::sha256(&forged_tar).as_str()),
        "the error names the layer, the claimed and the real digest:\n{err}"
    );
    let layers = env.path("store/layers");
    let left: Vec<_> = fs::read_dir(&layers)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is left under layers/: {left:?}");

    // The genuine image, in the same store, runs on its own content.
    let ctx = env.context(
        "ctx2",
        &[("Dockerfile", "FROM busybox\nRUN test ! -e /marker\n")],
    );
    env.ok(&["build", s(&ctx)], None);
}
