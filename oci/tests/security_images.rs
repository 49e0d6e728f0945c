//! Crafted images from a registry (issue 13, finding 8, and the pull side
//! of finding 1): descriptor sizes bound every read, manifests and configs
//! past their limits are refused unread, and a manifest and config that do
//! not make an image are never named. The fake registry serves exactly
//! what each test puts in it, on loopback.

use kiln_test_support as support;

use kiln_oci::archive;
use kiln_oci::media;
use kiln_oci::{
    BlobReader, Digest, LocalStore, NoProgress, Platform, Reference, RegistryClient,
    RegistryOptions, StaticCredentials,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::{FakeRegistry, BUSYBOX_DIGEST as BUSYBOX_MANIFEST, BUSYBOX_LAYOUT as BUSYBOX};

/// busybox's manifest (parsed), config and layer bytes.
fn busybox() -> (serde_json::Value, Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    archive::load(&store, Path::new(BUSYBOX)).expect("load busybox");
    let read = |d: &str| store.read(&d.parse().expect("digest")).expect("blob");
    let manifest: serde_json::Value =
        serde_json::from_slice(&read(BUSYBOX_MANIFEST)).expect("manifest");
    let config = read(manifest["config"]["digest"].as_str().expect("digest"));
    let layer = read(manifest["layers"][0]["digest"].as_str().expect("digest"));
    (manifest, config, layer)
}

/// Serves an image made of `config` and `layer` under `repo:1`, with the
/// manifest edited by `tweak`; pulls it into an empty store and returns
/// the error and the store.
async fn pull_crafted(
    repo: &str,
    config: &[u8],
    layer: &[u8],
    tweak: impl FnOnce(&mut serde_json::Value),
) -> (String, tempfile::TempDir, LocalStore, Reference) {
    let fake = FakeRegistry::start();
    let (mut manifest, _, _) = busybox();
    let config_digest = Digest::sha256(config);
    let layer_digest = Digest::sha256(layer);
    manifest["config"]["digest"] = config_digest.as_str().into();
    manifest["config"]["size"] = config.len().into();
    manifest["layers"][0]["digest"] = layer_digest.as_str().into();
    manifest["layers"][0]["size"] = layer.len().into();
    tweak(&mut manifest);
    fake.add_blob(repo, config_digest.as_str(), config);
    fake.add_blob(repo, layer_digest.as_str(), layer);
    let bytes = serde_json::to_vec(&manifest).expect("json");
    fake.add_manifest(repo, "1", media::OCI_MANIFEST, &bytes);
    let dir = tempfile::tempdir().expect("tmp");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    let client = RegistryClient::new(
        RegistryOptions {
            initial_backoff: Duration::from_millis(10),
            ..RegistryOptions::default()
        },
        Box::new(StaticCredentials::none()),
    )
    .expect("client");
    let target = Reference::parse(&format!("{}/{repo}:1", fake.host())).expect("reference");
    let platform: Platform = "linux/amd64".parse().expect("platform");
    let err = client
        .pull(&target, &platform, &store, Arc::new(NoProgress))
        .await
        .expect_err("the crafted image is refused")
        .to_string();
    assert_eq!(
        store.get_ref(&target.to_string()).expect("refs"),
        None,
        "nothing is named"
    );
    (err, dir, store, target)
}

fn has_all(err: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(err.contains(w), "{w:?} missing from: {err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn configs_claimed_past_the_limit_are_refused_unread() {
    let (_, config, layer) = busybox();
    for size in [1u64 << 30, i64::MAX as u64] {
        let (err, _d, store, _) = pull_crafted("big/config", &config, &layer, |m| {
            m["config"]["size"] = size.into()
        })
        .await;
        has_all(&err, &["config", &size.to_string(), "at most"]);
        assert!(
            store.blobs().expect("blobs").is_empty(),
            "nothing was downloaded"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn layer_sizes_bound_the_download() {
    let (_, config, layer) = busybox();
    // Claimed at 1 TiB: the blob ends short of it.
    let (err, _d, store, _) = pull_crafted("big/layer", &config, &layer, |m| {
        m["layers"][0]["size"] = (1u64 << 40).into()
    })
    .await;
    has_all(&err, &["1099511627776", &layer.len().to_string()]);
    assert!(!store.exists(&Digest::sha256(&layer)));
    // Claimed smaller than it is: the download stops past the claim.
    let claimed = layer.len() / 2;
    let (err, _d, store, _) = pull_crafted("small/layer", &config, &layer, |m| {
        m["layers"][0]["size"] = claimed.into()
    })
    .await;
    has_all(&err, &["larger than", &claimed.to_string()]);
    assert!(!store.exists(&Digest::sha256(&layer)));
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_and_configs_that_make_no_image_are_not_named() {
    let (_, config, layer) = busybox();
    let (err, ..) = pull_crafted("not/json", b"not json at all", &layer, |_| {}).await;
    has_all(&err, &["config", "is not valid"]);

    let mut value: serde_json::Value = serde_json::from_slice(&config).expect("config");
    value["rootfs"]["diff_ids"] = serde_json::json!([]);
    let empty = serde_json::to_vec(&value).expect("json");
    let (err, ..) = pull_crafted("no/diffids", &empty, &layer, |_| {}).await;
    has_all(&err, &["rootfs.diff_ids", "0 diff_ids", "1 layers"]);

    let (err, ..) = pull_crafted("odd/layer", &config, &layer, |m| {
        m["layers"][0]["mediaType"] = "text/plain".into()
    })
    .await;
    has_all(&err, &["layers[0].mediaType", "text/plain"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn manifests_past_the_limit_are_refused() {
    let (_, config, layer) = busybox();
    let padding = "x".repeat(5 << 20);
    let (err, ..) = pull_crafted("big/manifest", &config, &layer, |m| {
        m["annotations"] = serde_json::json!({ "padding": padding })
    })
    .await;
    has_all(&err, &["manifest", "at most 4194304"]);
}
