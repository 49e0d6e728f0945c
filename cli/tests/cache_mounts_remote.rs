//! `--cache-to ...,cache-mounts=true` carries `RUN --mount=type=cache`
//! contents to another machine: a build on one store fills cache mounts
//! and exports them to a real registry (Debian's docker-registry) or an
//! OCI layout directory; a build on an empty store with `--cache-from`
//! finds them in its cache mounts. A re-export pushes only the chunk that
//! changed; the size limit and the exclusions hold; a crafted chunk with
//! `../` is refused.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::collections::BTreeSet;
use std::path::Path;
use support::{skopeo_ok, Auth, Registry};

const CHUNK_MEDIA_TYPE: &str = "application/vnd.kiln.cache.mount.v1.tar+gzip";

/// Fills three cache mounts: `data` (60 small files and `/cache/f`),
/// `skipme` (excluded) and `big` (2 MiB, over the 1 MiB limit); a secret
/// is mounted too (when given), which is no cache mount.
const FILL: &str = "FROM busybox\n\
    RUN --mount=type=cache,id=data,target=/cache \
        --mount=type=secret,id=tok,target=/run/secrets/tok \
        --mount=type=cache,id=skipme,target=/skip \
        --mount=type=cache,id=big,target=/big \
        sh -c 'mkdir -p /cache/d && for i in $(seq 1 60); do echo \"v1 $i\" > /cache/d/f$i; done; \
        echo data > /cache/f; echo secret-ish > /skip/x; \
        dd if=/dev/zero of=/big/zeros bs=1024 count=2048 2>/dev/null'\n";

/// Changes one file of the `data` mount.
const CHANGE: &str = "FROM busybox\n\
    RUN --mount=type=cache,id=data,target=/cache echo v2 > /cache/d/f30\n";

/// A different step that reads the mounts: what it sees can only come from
/// the mounts, since no cache record of it exists anywhere.
const READ: &str = "FROM busybox\n\
    RUN --mount=type=cache,id=data,target=/cache \
        --mount=type=cache,id=skipme,target=/skip \
        --mount=type=cache,id=big,target=/big \
        sh -c 'cat /cache/f /cache/d/f7 /cache/d/f30 > /seen.txt 2>&1; ls /skip /big > /others.txt; true'\n";

/// Builds `dockerfile` in `env` with `args`, writing the result to
/// `env/out`; returns the build's stderr.
fn build(env: &Env, dockerfile: &str, args: &[&str]) -> String {
    let ctx = env.context("ctx", &[("Dockerfile", dockerfile)]);
    let out = env.path("out");
    let _ = std::fs::remove_dir_all(&out);
    let dest = format!("type=local,dest={}", s(&out));
    let mut all = vec!["build", "--progress", "plain", "-o", &dest];
    all.extend_from_slice(args);
    all.push(s(&ctx));
    env.ok(&all, None).1
}

fn read(env: &Env, file: &str) -> String {
    std::fs::read_to_string(env.path("out").join(file)).unwrap_or_default()
}

/// The chunk digests of a cache manifest, in order.
fn chunks(manifest: &serde_json::Value) -> Vec<String> {
    manifest["layers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|l| l["mediaType"] == CHUNK_MEDIA_TYPE)
                .filter_map(|l| l["digest"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn registry_manifest(cache: &str) -> serde_json::Value {
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{cache}"),
    ]);
    serde_json::from_str(&raw).expect("manifest")
}

/// A blob the registry stores.
fn registry_blob(registry: &Registry, digest: &str) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    std::fs::read(
        registry
            .dir()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data"),
    )
    .expect("blob in the registry storage")
}

/// The export's note `uploaded N blobs (B bytes), M already in the
/// registry`: (N, M).
fn uploads(log: &str) -> (usize, usize) {
    let line = log
        .lines()
        .find_map(|l| l.split_once("uploaded ").map(|(_, rest)| rest))
        .unwrap_or_else(|| panic!("no upload note:\n{log}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or(usize::MAX)
    };
    (n(0), n(4))
}

#[test]
fn registry_cache_carries_mounts_and_reexport_pushes_only_the_changed_chunk() {
    let registry = Registry::start(Auth::None);
    let cache = format!("{}/team/app:buildcache", registry.host());
    let to = format!(
        "type=registry,ref={cache},cache-mounts=true,cache-mounts-exclude=skipme,cache-mounts-max-size=1MiB"
    );
    let first = Env::new();
    let secret = first.path("tok");
    std::fs::write(&secret, "s3cr3t-value").expect("secret file");
    let secret_arg = format!("id=tok,src={}", s(&secret));
    let log = build(&first, FILL, &["--secret", &secret_arg, "--cache-to", &to]);
    assert!(
        log.contains("cache mount \"big\" not exported") && log.contains("cache-mounts-max-size"),
        "{log}"
    );
    assert!(
        log.contains("cache mount \"skipme\" not exported: cache-mounts-exclude"),
        "{log}"
    );
    let manifest = registry_manifest(&cache);
    let before = chunks(&manifest);
    assert!(before.len() >= 3, "several chunks: {manifest}");
    let config: serde_json::Value = serde_json::from_slice(&registry_blob(
        &registry,
        manifest["config"]["digest"]
            .as_str()
            .expect("config digest"),
    ))
    .expect("config json");
    let ids: Vec<&str> = config["mounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    // Neither the secret (no cache mount) nor the excluded or big ones.
    assert_eq!(ids, ["data"], "{config}");
    for chunk in &before {
        let gz = registry_blob(&registry, chunk);
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar)
            .expect("gunzip");
        assert!(!String::from_utf8_lossy(&tar).contains("s3cr3t"), "{chunk}");
    }
    let (uploaded, _) = uploads(&log);
    assert!(uploaded > before.len(), "{log}");

    // An empty store: a step that never ran anywhere sees the mount.
    let second = Env::new();
    let log = build(
        &second,
        READ,
        &["--cache-from", &format!("type=registry,ref={cache}")],
    );
    assert!(log.contains("restoring cache mount \"data\""), "{log}");
    assert_eq!(read(&second, "seen.txt"), "data\nv1 7\nv1 30\n", "{log}");
    assert_eq!(read(&second, "others.txt"), "/big:\n\n/skip:\n", "{log}");

    // Without the import the mount is empty.
    let third = Env::new();
    build(&third, READ, &[]);
    assert!(!read(&third, "seen.txt").contains("v1 7"));

    // One file changed on the first machine: one new chunk goes up, the
    // others are already in the registry.
    let log = build(&first, CHANGE, &["--cache-to", &to]);
    let after = chunks(&registry_manifest(&cache));
    let old: BTreeSet<&String> = before.iter().collect();
    let new: Vec<&String> = after.iter().filter(|c| !old.contains(c)).collect();
    assert_eq!(new.len(), 1, "before {before:?}, after {after:?}");
    assert_eq!(after.len(), before.len());
    // The changed chunk, at most the step's layer, and the config.
    let (uploaded, existing) = uploads(&log);
    assert!(uploaded <= 3, "{log}");
    assert!(existing >= before.len() - 1, "{log}");

    // A local mount with content is never overwritten by an import.
    let log = build(
        &second,
        CHANGE,
        &["--cache-from", &format!("type=registry,ref={cache}")],
    );
    assert!(
        log.contains("not restored: the local cache mount is not empty"),
        "{log}"
    );
}

/// Writes `bytes` as a blob of the OCI layout `dir`; returns its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    use sha2::Digest as _;
    let hex: String = sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).expect("write blob");
    format!("sha256:{hex}")
}

/// A gzip tar chunk (no end marker, as kiln writes them) holding one
/// file named `name`, written raw so `../` survives.
fn crafted_chunk(name: &str) -> Vec<u8> {
    let mut header = tar::Header::new_ustar();
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(5);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    let mut tar = header.as_bytes().to_vec();
    let mut data = b"evil\n".to_vec();
    data.resize(512, 0);
    tar.extend_from_slice(&data);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn local_cache_carries_mounts_and_refuses_a_crafted_chunk() {
    let first = Env::new();
    let dir = first.path("cache-dir");
    let log = build(
        &first,
        FILL,
        &[
            "--cache-to",
            &format!("type=local,dest={},cache-mounts=true", s(&dir)),
        ],
    );
    // The default limit (1 GiB) keeps all three.
    assert!(!log.contains("not exported"), "{log}");
    let second = Env::new();
    let from = format!("type=local,src={}", s(&dir));
    build(&second, READ, &["--cache-from", &from]);
    assert_eq!(read(&second, "seen.txt"), "data\nv1 7\nv1 30\n");
    assert_eq!(read(&second, "others.txt"), "/big:\nzeros\n\n/skip:\nx\n");

    // The same cache with the data mount's chunks replaced by one that
    // holds `../evil`.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("index json");
    let manifest_digest = index["manifests"][0]["digest"].as_str().expect("digest");
    let blob = |d: &str| {
        std::fs::read(
            dir.join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .expect("blob")
    };
    let mut manifest: serde_json::Value =
        serde_json::from_slice(&blob(manifest_digest)).expect("manifest");
    let mut config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().expect("c")))
            .expect("config");
    let evil = crafted_chunk("../evil");
    let evil_digest = put_blob(&dir, &evil);
    for m in config["mounts"].as_array_mut().expect("mounts") {
        if m["id"] == "data" {
            m["chunks"] = serde_json::json!([{
                "blob": evil_digest, "size": evil.len(), "mediaType": CHUNK_MEDIA_TYPE,
            }]);
        }
    }
    let config_bytes = serde_json::to_vec(&config).expect("json");
    manifest["config"]["digest"] = put_blob(&dir, &config_bytes).into();
    manifest["config"]["size"] = config_bytes.len().into();
    let manifest_bytes = serde_json::to_vec(&manifest).expect("json");
    let mut index = index.clone();
    index["manifests"][0]["digest"] = put_blob(&dir, &manifest_bytes).into();
    index["manifests"][0]["size"] = manifest_bytes.len().into();
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");

    let third = Env::new();
    let log = build(&third, READ, &["--cache-from", &from]);
    assert!(
        log.contains("cache mount \"data\"") && log.contains("escapes the mount"),
        "{log}"
    );
    assert!(!read(&third, "seen.txt").contains("v1 7"));
    // The others came back; nothing landed beside the mounts.
    assert_eq!(read(&third, "others.txt"), "/big:\nzeros\n\n/skip:\nx\n");
    assert!(!third.path("store/evil").exists());
    let beside: Vec<String> = std::fs::read_dir(third.path("store/cache-mounts"))
        .expect("cache-mounts")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("evil"))
        .collect();
    assert!(beside.is_empty(), "{beside:?}");
}
