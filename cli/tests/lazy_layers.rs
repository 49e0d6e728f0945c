//! Lazy layer compression: build steps store their layers as uncompressed
//! tars (blob digest == diff id), the local image keeps them so, and
//! every output that leaves the store gets the same gzip blobs as before
//! (pinned below: the digests kiln 0.x wrote when steps compressed their
//! layers themselves), converted once and remembered.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};
use support::{skopeo_ok, Auth, Registry};

const OCI_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const OCI_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Two COPY layers of files with fixed times: the same bytes every run.
const DOCKERFILE: &str = "FROM scratch\n\
    COPY --chmod=644 app.txt /app.txt\n\
    COPY --chmod=600 big.txt /big.txt\n";

/// What main's kiln (gzip in every step) wrote for [`DOCKERFILE`] with
/// `SOURCE_DATE_EPOCH=1700000000`: the manifest and its two gzip layers.
const MANIFEST: &str = "sha256:699f21dbbf60cccc18beeac130b9f37b85a16a2f34ef5f07644f6bf48f2e2931";
const GZIP_LAYERS: [&str; 2] = [
    "sha256:86caa3bb40f912c107a92bd0c6d403426d37d5cc441a89fff9449c4c882c68e0",
    "sha256:ab3667d3b22c756798f7e10e59eedb2c1feb52bf68eccab1f70fcf6f2d62bbac",
];
/// Their diff ids (the uncompressed tars).
const DIFF_IDS: [&str; 2] = [
    "sha256:90026c0dfe3867ab296b479dc5fac5f9654872194fd7568b0effb271d548391d",
    "sha256:0aee4c2a6654e26851ed3fc25b387735d43c52e586b3c6e5e3c9d6bca231e434",
];
const EPOCH: (&str, &str) = ("SOURCE_DATE_EPOCH", "1700000000");

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn big_text() -> String {
    (1..=200_000).map(|n| format!("{n}\n")).collect()
}

/// The context of [`DOCKERFILE`], its files dated 1700000000.
fn context(env: &Env) -> PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", DOCKERFILE),
            ("app.txt", "hello\n"),
            ("big.txt", &big_text()),
        ],
    );
    for f in ["app.txt", "big.txt"] {
        let file = std::fs::File::options()
            .write(true)
            .open(ctx.join(f))
            .expect("open");
        file.set_modified(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .expect("set mtime");
    }
    ctx
}

fn kiln_ok(env: &Env, args: &[&str]) -> String {
    let out = env.run_env(args, None, &[EPOCH]);
    assert!(
        out.status.success(),
        "kiln {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn blob_path(store: &Path, digest: &str) -> PathBuf {
    store
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

/// The blobs of the store that are gzip streams.
fn gzip_blobs(store: &Path) -> Vec<String> {
    std::fs::read_dir(store.join("blobs/sha256"))
        .expect("blobs")
        .flatten()
        .filter(|e| {
            let mut head = [0u8; 2];
            std::fs::File::open(e.path())
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
                .is_ok()
                && head == [0x1f, 0x8b]
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// The (media type, digest) of each layer of OCI layout `dir`'s image.
fn layout_layers(dir: &Path) -> (String, Vec<(String, String)>) {
    let index = json(&std::fs::read_to_string(dir.join("index.json")).expect("index"));
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    let body = std::fs::read_to_string(blob_path(dir, &manifest)).expect("manifest");
    let layers = json(&body)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap_or_default().to_string(),
                l["digest"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (manifest, layers)
}

#[test]
fn step_layers_are_stored_uncompressed_and_outputs_get_the_same_gzip_as_before() {
    let env = Env::new();
    let ctx = context(&env);
    let store = env.path("store");
    let before = gzip_blobs(&store);
    kiln_ok(
        &env,
        &["build", "--progress", "plain", "-t", "app:1", s(&ctx)],
    );

    // The local image keeps the layers as built: plain tars named by
    // their diff ids, and not one gzip written.
    let inspect = json(&kiln_ok(&env, &["inspect", "app:1"]));
    let layers = inspect["Manifest"]["layers"].as_array().expect("layers");
    let diff_ids = inspect["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff ids");
    assert_eq!(diff_ids, &DIFF_IDS.map(serde_json::Value::from));
    for (layer, diff_id) in layers.iter().zip(diff_ids) {
        assert_eq!(layer["mediaType"], OCI_TAR);
        assert_eq!(layer["digest"], *diff_id);
        let digest = layer["digest"].as_str().expect("digest");
        let blob = std::fs::read(blob_path(&store, digest)).expect("blob");
        assert_eq!(sha(&blob), digest, "the blob is verified by its name");
        assert_eq!(Some(blob.len() as u64), layer["size"].as_u64());
    }
    assert_eq!(gzip_blobs(&store), before, "kiln build -t wrote gzip");
    assert!(!store.join("exports").exists() || dir_len(&store.join("exports")) == 0);

    // An OCI layout of the same build (all cached) gets main's gzip.
    let out = env.path("oci");
    kiln_ok(
        &env,
        &[
            "build",
            "-o",
            &format!("type=oci,dest={},tar=false", s(&out)),
            s(&ctx),
        ],
    );
    let (manifest, layers) = layout_layers(&out);
    assert_eq!(manifest, MANIFEST);
    assert_eq!(
        layers,
        GZIP_LAYERS.map(|d| (OCI_GZIP.to_string(), d.to_string()))
    );

    // kiln save: an OCI layout gets the same gzip image; a docker-archive
    // holds the plain tars, as it always did.
    let saved = env.path("saved.tar");
    kiln_ok(&env, &["save", "--format", "oci", "-o", s(&saved), "app:1"]);
    let unpacked = env.path("saved");
    std::fs::create_dir(&unpacked).expect("mkdir");
    let untar = Command::new("tar")
        .args(["-xf", s(&saved), "-C", s(&unpacked)])
        .status()
        .expect("tar runs");
    assert!(untar.success());
    let (manifest, _) = layout_layers(&unpacked);
    assert_eq!(manifest, MANIFEST);
    let docker = env.path("docker.tar");
    kiln_ok(&env, &["save", "-o", s(&docker), "app:1"]);
    let list = Command::new("tar")
        .args(["-tf", s(&docker)])
        .output()
        .expect("tar runs");
    let names = String::from_utf8_lossy(&list.stdout);
    for d in DIFF_IDS {
        assert!(names.contains(d.trim_start_matches("sha256:")), "{names}");
    }
}

/// How many RUN steps `--progress plain` marked CACHED.
fn cached_runs(log: &str) -> usize {
    let mut names = std::collections::BTreeMap::new();
    let mut cached = 0;
    for line in log.lines() {
        let Some((n, text)) = line.strip_prefix('#').and_then(|r| r.split_once(' ')) else {
            continue;
        };
        if text.starts_with('[') {
            names
                .entry(n.to_string())
                .or_insert_with(|| text.to_string());
        } else if text == "CACHED" && names.get(n).is_some_and(|t| t.contains("RUN")) {
            cached += 1;
        }
    }
    cached
}

fn dir_len(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn kiln_push_compresses_once_and_the_pushed_image_unpacks() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let store = env.path("store");
    kiln_ok(&env, &["build", "-t", "app:1", s(&ctx)]);
    let local = json(&kiln_ok(&env, &["inspect", "app:1"]))["Digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert_ne!(local, MANIFEST, "the local image keeps plain layers");

    let name = format!("{}/team/lazy:1", registry.host());
    let out = kiln_ok(&env, &["push", "app:1", &name]);
    assert!(out.contains(&format!("Digest: {MANIFEST}")), "{out}");
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    assert_eq!(sha(raw.as_bytes()), MANIFEST);
    let manifest = json(&raw);
    let pushed: Vec<(&str, &str)> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            (
                l["mediaType"].as_str().unwrap_or_default(),
                l["digest"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(pushed, GZIP_LAYERS.map(|d| (OCI_GZIP, d)));

    // What was pushed unpacks to the context's files.
    let bundle = common::unpack_from_registry(&env, &name);
    let big = std::fs::read_to_string(bundle.join("rootfs/big.txt")).expect("big.txt");
    assert!(big == big_text(), "big.txt differs after the round trip");

    // --compression uncompressed pushes the image as stored.
    let plain = format!("{}/team/lazy:plain", registry.host());
    let out = kiln_ok(
        &env,
        &["push", "--compression", "uncompressed", "app:1", &plain],
    );
    assert!(out.contains(&format!("Digest: {local}")), "{out}");

    // A second push converts nothing: with the plain tars gone from the
    // store, it still pushes the remembered gzip blobs.
    for d in DIFF_IDS {
        std::fs::remove_file(blob_path(&store, d)).expect("remove the plain tar");
    }
    let again = format!("{}/team/lazy:2", registry.host());
    let out = kiln_ok(&env, &["push", "app:1", &again]);
    assert!(out.contains(&format!("Digest: {MANIFEST}")), "{out}");
    assert!(out.contains("0 blobs uploaded"), "{out}");
}

#[test]
fn push_and_cache_to_get_gzip_blobs_and_cache_from_restores() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo one > /one\nRUN seq 1 50000 > /two\n",
        )],
    );
    let image = format!("{}/team/built:1", registry.host());
    let cache = format!("{}/team/built:cache", registry.host());
    let local_cache = env.path("cache");
    kiln_ok(
        &env,
        &[
            "build",
            "--push",
            "-t",
            &image,
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "--cache-to",
            &format!("type=local,dest={}", s(&local_cache)),
            s(&ctx),
        ],
    );
    // The pushed image (its platform's manifest, under an index when
    // there are attestations) and the cache artifact.
    let mut raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{image}"),
    ]);
    if let Some(children) = json(&raw)["manifests"].as_array() {
        let child = children
            .iter()
            .find(|m| m["platform"]["architecture"] != "unknown")
            .expect("the image's manifest");
        let repo = image.trim_end_matches(":1");
        let digest = child["digest"].as_str().expect("digest");
        raw = skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{repo}@{digest}"),
        ]);
    }
    let layers = json(&raw)["layers"].as_array().expect("layers").clone();
    assert_eq!(layers.len(), 3, "{raw}");
    for l in &layers {
        assert_eq!(l["mediaType"], OCI_GZIP, "{raw}");
    }
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{cache}"),
    ]);
    let layers = json(&raw)["layers"].as_array().expect("layers").clone();
    assert_eq!(layers.len(), 2, "{raw}");
    for l in &layers {
        assert_eq!(l["mediaType"], OCI_GZIP, "{raw}");
    }
    // The local cache's layer blobs are gzip streams too.
    let (_, layers) = layout_layers(&local_cache);
    assert_eq!(layers.len(), 2);
    for (media_type, digest) in &layers {
        assert_eq!(media_type, OCI_GZIP);
        let blob = std::fs::read(blob_path(&local_cache, digest)).expect("blob");
        assert_eq!(blob.get(..2), Some(&[0x1f, 0x8b][..]));
    }

    // An empty store restores every step from either cache.
    for from in [
        format!("type=registry,ref={cache}"),
        format!("type=local,src={}", s(&local_cache)),
    ] {
        let fresh = Env::new();
        let ctx = fresh.context(
            "ctx",
            &[(
                "Dockerfile",
                "FROM busybox\nRUN echo one > /one\nRUN seq 1 50000 > /two\n",
            )],
        );
        let out = fresh.run_env(
            &[
                "build",
                "--progress",
                "plain",
                "--cache-from",
                &from,
                "-o",
                &format!("type=local,dest={}", s(&fresh.path("root"))),
                s(&ctx),
            ],
            None,
            &[],
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        assert_eq!(cached_runs(&log), 2, "{from}: {log}");
        let two = std::fs::read_to_string(fresh.path("root/two")).expect("two");
        assert_eq!(two.lines().count(), 50_000);
    }
}
