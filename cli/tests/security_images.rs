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

/// A 1 MiB file with a hole (data at both ends) at `dir/sparse`, and
/// `tar --sparse --format=FORMAT` of it at `out`.
fn sparse_tar(dir: &Path, format: &str, out: &Path) -> Vec<u8> {
    use std::io::{Seek, SeekFrom, Write};
    fs::create_dir_all(dir).expect("mkdir");
    let mut f = fs::File::create(dir.join("sparse")).expect("create");
    f.write_all(b"head").expect("write");
    f.seek(SeekFrom::Start((1 << 20) - 4)).expect("seek");
    f.write_all(b"tail").expect("write");
    drop(f);
    run(Command::new("tar")
        .args(["--sparse", &format!("--format={format}"), "-cf"])
        .arg(out)
        .arg("-C")
        .arg(dir)
        .arg("sparse"));
    fs::read(dir.join("sparse")).expect("content")
}

#[test]
fn add_extracts_gnu_sparse_members_and_refuses_pax_sparse_ones() {
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", "FROM busybox\nADD gnu.tar /g/\n")]);
    let content = sparse_tar(&env.path("src"), "gnu", &ctx.join("gnu.tar"));
    assert_eq!(
        fs::read(ctx.join("gnu.tar")).expect("tar")[156],
        b'S',
        "GNU tar wrote a sparse member"
    );
    let out = env.path("out");
    env.ok(&["build", "-o", s(&out), s(&ctx)], None);
    assert!(
        fs::read(out.join("g/sparse")).ok() == Some(content),
        "the sparse file is extracted in full"
    );

    let ctx = env.context("ctx2", &[("Dockerfile", "FROM busybox\nADD pax.tar /p/\n")]);
    sparse_tar(&env.path("src"), "posix", &ctx.join("pax.tar"));
    let err = env.fails(&["build", "-o", s(&env.path("out2")), s(&ctx)], None);
    assert!(
        err.contains("pax.tar") && err.contains("GNUSparseFile") && err.contains("sparse file"),
        "refused, naming the archive and the entry:\n{err}"
    );
}

/// busybox's config and layer blob, as bytes.
fn busybox_blobs() -> (Vec<u8>, Vec<u8>) {
    let (manifest, _) = busybox();
    let base = Path::new(BUSYBOX);
    let read = |d: &serde_json::Value| {
        fs::read(blob_path(base, d["digest"].as_str().expect("digest"))).expect("blob")
    };
    (read(&manifest["config"]), read(&manifest["layers"][0]))
}

const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `kiln load` of the layout fails with all of `wanted` in its message,
/// `FROM oci-layout://` of it fails the same way, and no image is named.
fn refused(env: &Env, dir: &Path, wanted: &[&str]) {
    let before = env.images();
    let err = env.fails(&["load", "-i", s(dir)], None);
    for w in wanted {
        assert!(err.contains(w), "{w:?} missing from:\n{err}");
    }
    assert_eq!(err.trim().lines().count(), 1, "one line:\n{err}");
    let ctx = env.context("from-layout", &[("Dockerfile", "FROM base\n")]);
    let err = env.fails(
        &[
            "build",
            "--build-context",
            &format!("base=oci-layout://{}", s(dir)),
            s(&ctx),
        ],
        None,
    );
    for w in wanted {
        assert!(
            err.contains(w),
            "{w:?} missing from the build's error:\n{err}"
        );
    }
    assert_eq!(env.images(), before, "nothing was named");
}

#[test]
fn oversized_and_mismatched_descriptor_sizes_are_refused() {
    let env = Env::new();
    let (config, layer) = busybox_blobs();
    for (name, size) in [("1gib", 1u64 << 30), ("max", i64::MAX as u64)] {
        let dir = layout(
            &env.path(name),
            &config,
            &[(GZIP_LAYER, layer.clone())],
            |m| m["config"]["size"] = size.into(),
        );
        refused(&env, &dir, &["config", &size.to_string(), "at most"]);
    }
    // A layer claimed at 1 TiB, and one claimed a byte short.
    for (name, size) in [("1tib", 1u64 << 40), ("short", layer.len() as u64 - 1)] {
        let dir = layout(
            &env.path(name),
            &config,
            &[(GZIP_LAYER, layer.clone())],
            |m| m["layers"][0]["size"] = size.into(),
        );
        refused(
            &env,
            &dir,
            &[
                "layers[0].size",
                &size.to_string(),
                &layer.len().to_string(),
            ],
        );
    }
    // A manifest claimed at 1 GiB in index.json.
    let dir = layout(
        &env.path("index"),
        &config,
        &[(GZIP_LAYER, layer.clone())],
        |_| {},
    );
    let mut index = json(&dir.join("index.json"));
    index["manifests"][0]["size"] = (1u64 << 30).into();
    fs::write(dir.join("index.json"), index.to_string()).expect("index");
    refused(&env, &dir, &["manifest", "1073741824", "at most"]);
}

#[test]
fn configs_that_do_not_make_an_image_are_refused() {
    let env = Env::new();
    let (config, layer) = busybox_blobs();
    let dir = layout(
        &env.path("notjson"),
        b"this is not JSON",
        &[(GZIP_LAYER, layer.clone())],
        |_| {},
    );
    refused(&env, &dir, &["config", "is not valid"]);

    let mut two = serde_json::from_slice::<serde_json::Value>(&config).expect("config");
    let id = two["rootfs"]["diff_ids"][0].clone();
    two["rootfs"]["diff_ids"] = serde_json::json!([id, id]);
    let dir = layout(
        &env.path("count"),
        &serde_json::to_vec(&two).expect("json"),
        &[(GZIP_LAYER, layer.clone())],
        |_| {},
    );
    refused(&env, &dir, &["rootfs.diff_ids", "2 diff_ids", "1 layers"]);

    let dir = layout(
        &env.path("mediatype"),
        &config,
        &[("application/vnd.example.not-a-layer", layer.clone())],
        |_| {},
    );
    refused(&env, &dir, &["layers[0].mediaType", "not-a-layer"]);

    let dir = layout(
        &env.path("configtype"),
        &config,
        &[(GZIP_LAYER, layer)],
        |m| m["config"]["mediaType"] = "application/vnd.example.thing+json".into(),
    );
    refused(&env, &dir, &["config.mediaType", "not an image config"]);
}

/// A docker-archive of busybox (`docker save` layout) with `config` as its
/// config and these RepoTags.
fn docker_archive(env: &Env, name: &str, config: &[u8], tags: &[&str]) -> PathBuf {
    let (_, layer) = busybox_blobs();
    let dir = env.path(name);
    fs::create_dir_all(&dir).expect("mkdir");
    let config_name = format!("{}.json", Digest::sha256(config).hex());
    fs::write(dir.join(&config_name), config).expect("config");
    fs::write(dir.join("layer.tar.gz"), layer).expect("layer");
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": tags, "Layers": ["layer.tar.gz"],
    }]);
    fs::write(dir.join("manifest.json"), manifest.to_string()).expect("manifest");
    let tar = env.path(&format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .args([&config_name, "layer.tar.gz", "manifest.json"]));
    tar
}

#[test]
fn docker_archives_with_a_bad_config_or_tag_are_refused() {
    let env = Env::new();
    let (config, _) = busybox_blobs();
    let before = env.images();
    let good = docker_archive(&env, "good", &config, &["kiln.test/ok:1"]);
    let (out, _) = env.ok(&["load", "-i", s(&good)], None);
    assert!(out.contains("kiln.test/ok:1"), "{out}");

    let bad = docker_archive(&env, "notjson", b"not json", &["kiln.test/bad:1"]);
    let err = env.fails(&["load", "-i", s(&bad)], None);
    assert!(
        err.contains("config") && err.contains("is not valid"),
        "{err}"
    );
    for tag in ["UPPER/x:1", "kiln.test/Upper:1", "bad tag"] {
        let name = format!("tag{}", tag.len());
        let bad = docker_archive(&env, &name, &config, &[tag]);
        let err = env.fails(&["load", "-i", s(&bad)], None);
        assert!(
            err.contains("RepoTags[0]") && err.contains(tag),
            "the error names the field and the tag:\n{err}"
        );
    }
    let images = env.images();
    assert!(images.contains("kiln.test/ok"), "{images}");
    assert_eq!(
        images.lines().count(),
        before.lines().count() + 1,
        "only the good image was named:\n{images}"
    );
}

#[test]
fn loading_a_file_that_is_no_archive_says_so_once() {
    let env = Env::new();
    let text = env.path("hostname");
    fs::write(&text, "myhost\n").expect("write");
    let random = env.path("random");
    fs::write(&random, "x".repeat(4096)).expect("write");
    for file in [&text, &random] {
        let err = env.fails(&["load", "-i", s(file)], None);
        assert_eq!(
            err.trim(),
            format!(
                "kiln: {}: not an image archive: neither a tar of an OCI image layout nor a docker-archive (nor an OCI layout directory)",
                file.display()
            )
        );
    }
    let err = env.fails(&["load"], Some(b"myhost\n"));
    assert!(err.contains("<stdin>: not an image archive"), "{err}");
}

/// Writes `value` as a blob of the layout at `dir`; returns its digest
/// and size.
fn put_json(dir: &Path, value: &serde_json::Value) -> (String, usize) {
    let bytes = serde_json::to_vec(value).expect("json");
    let d = put(dir, "application/json", &bytes);
    (
        d["digest"].as_str().expect("digest").to_string(),
        bytes.len(),
    )
}

#[test]
fn a_cache_record_with_a_forged_layer_does_not_poison_the_store() {
    let first = Env::new();
    let cache = first.path("cache");
    let dockerfile = "FROM busybox\nRUN echo hi > /f\n";
    let ctx = first.context("ctx", &[("Dockerfile", dockerfile)]);
    first.ok(
        &[
            "build",
            "--cache-to",
            &format!("type=local,dest={}", s(&cache)),
            s(&ctx),
        ],
        None,
    );
    // The RUN step's record keeps its diff id but points at a blob that
    // also holds a marker.
    let rootfs = first.path("forged");
    fs::create_dir_all(&rootfs).expect("mkdir");
    fs::write(rootfs.join("f"), "hi\n").expect("f");
    fs::write(rootfs.join("marker"), "forged\n").expect("marker");
    let forged = first.path("forged.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&forged)
        .arg("-C")
        .arg(&rootfs)
        .args(["f", "marker"]));
    let forged = put(&cache, GZIP_LAYER, &fs::read(forged).expect("forged"));
    let mut index = json(&cache.join("index.json"));
    let manifest_digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let mut manifest = json(&blob_path(&cache, manifest_digest));
    let mut config = json(&blob_path(
        &cache,
        manifest["config"]["digest"].as_str().expect("digest"),
    ));
    let records = config["records"].as_array_mut().expect("records");
    assert_eq!(records.len(), 1, "{records:?}");
    let real_blob = records[0]["blob"].clone();
    records[0]["blob"] = forged["digest"].clone();
    records[0]["size"] = forged["size"].clone();
    let (config_digest, config_size) = put_json(&cache, &config);
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config_size.into();
    for layer in manifest["layers"].as_array_mut().expect("layers") {
        if layer["digest"] == real_blob {
            *layer = forged.clone();
        }
    }
    let (manifest_digest, manifest_size) = put_json(&cache, &manifest);
    index["manifests"][0]["digest"] = manifest_digest.into();
    index["manifests"][0]["size"] = manifest_size.into();
    fs::write(cache.join("index.json"), index.to_string()).expect("index");

    let second = Env::new();
    let ctx = second.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = second.path("out");
    let result = second.run(
        &[
            "build",
            "--cache-from",
            &format!("type=local,src={}", s(&cache)),
            "-o",
            s(&out),
            s(&ctx),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(forged["digest"].as_str().expect("digest"))
            && stderr.contains("claims diff_id"),
        "the error names the forged blob and the mismatch:\n{stderr}"
    );
    assert!(
        !out.join("marker").exists(),
        "the forged layer was not used"
    );
    let poisoned: Vec<_> = walkdir::WalkDir::new(second.path("store/layers"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() == "marker")
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(
        poisoned.is_empty(),
        "no layer directory holds the forged content: {poisoned:?}"
    );
}

#[test]
fn layout_names_with_upper_case_are_refused() {
    let env = Env::new();
    let (config, layer) = busybox_blobs();
    for key in [
        "io.containerd.image.name",
        "org.opencontainers.image.ref.name",
    ] {
        let dir = layout(
            &env.path(&format!("upper-{}", key.len())),
            &config,
            &[(GZIP_LAYER, layer.clone())],
            |_| {},
        );
        let mut index = json(&dir.join("index.json"));
        index["manifests"][0]["annotations"] = serde_json::json!({ key: "UPPER/x:1" });
        fs::write(dir.join("index.json"), index.to_string()).expect("index");
        refused(&env, &dir, &["index.json", key, "UPPER/x:1", "lowercase"]);
    }
}
