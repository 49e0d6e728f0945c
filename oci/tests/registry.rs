//! The registry client against a real Distribution registry (Debian's
//! `docker-registry`), with skopeo as the independent validator, plus fault
//! injection through a fake registry.

use kiln_test_support as support;

use kiln_oci::archive::{self, NamedImage};
use kiln_oci::media;
use kiln_oci::{
    BlobReader, Digest, DockerConfig, LocalStore, NoProgress, Platform, Reference, RegistryClient,
    RegistryError, RegistryOptions, StaticCredentials, TransferObserver,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{skopeo_ok, Auth, FakeRegistry, Registry};
use support::{
    BUSYBOX_CONFIG, BUSYBOX_DIGEST as BUSYBOX_MANIFEST, BUSYBOX_LAYER, BUSYBOX_LAYOUT as BUSYBOX,
};

fn amd64() -> Platform {
    "linux/amd64".parse().expect("platform")
}

fn digest(s: &str) -> Digest {
    s.parse().expect("digest")
}

/// A store in a temp dir with the busybox base loaded and named `busybox`.
fn store_with_busybox() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    let loaded = archive::load(&store, Path::new(BUSYBOX)).expect("load busybox layout");
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].digest, digest(BUSYBOX_MANIFEST));
    store
        .set_ref("docker.io/library/busybox:latest", &loaded[0].digest)
        .expect("ref");
    (dir, store)
}

fn empty_store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    (dir, store)
}

fn client(creds: StaticCredentials) -> RegistryClient {
    let options = RegistryOptions {
        initial_backoff: Duration::from_millis(50),
        ..RegistryOptions::default()
    };
    RegistryClient::new(options, Box::new(creds)).expect("client")
}

fn reference(s: &str) -> Reference {
    Reference::parse(s).expect("reference")
}

fn raw_digest(registry: &Registry, repo_tag: &str, creds: Option<&str>) -> Digest {
    let url = format!("docker://{}/{repo_tag}", registry.host());
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    args.push(&url);
    Digest::sha256(skopeo_ok(&args).as_bytes())
}

fn no_progress() -> Arc<dyn TransferObserver> {
    Arc::new(NoProgress)
}

#[tokio::test(flavor = "multi_thread")]
async fn kiln_push_then_skopeo_and_kiln_read_the_same_digests() {
    let registry = Registry::start(Auth::None);
    let (_d, store) = store_with_busybox();
    let client = client(StaticCredentials::none());
    let target = reference(&format!("{}/kiln/busybox:1", registry.host()));
    let report = client
        .push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect("push");
    assert_eq!(report.uploaded, 2);
    assert_eq!(report.digest, digest(BUSYBOX_MANIFEST));

    // skopeo sees exactly the manifest kiln pushed, and its config.
    assert_eq!(
        raw_digest(&registry, "kiln/busybox:1", None),
        digest(BUSYBOX_MANIFEST)
    );
    let config = skopeo_ok(&[
        "inspect",
        "--config",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/kiln/busybox:1", registry.host()),
    ]);
    assert_eq!(Digest::sha256(config.as_bytes()), digest(BUSYBOX_CONFIG));

    // A second push of the same image finds every blob present.
    let again = client
        .push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect("second push");
    assert_eq!((again.uploaded, again.existing), (0, 2));

    // And kiln pulls it back into an empty store, byte for byte.
    let (_d2, fresh) = empty_store();
    let pulled = client
        .pull(&target, &amd64(), &fresh, no_progress())
        .await
        .expect("pull");
    assert_eq!(pulled.digest, digest(BUSYBOX_MANIFEST));
    assert_eq!(pulled.fetched, 2);
    for d in [BUSYBOX_MANIFEST, BUSYBOX_CONFIG, BUSYBOX_LAYER] {
        assert_eq!(
            fresh.read(&digest(d)).expect(d),
            store.read(&digest(d)).expect(d)
        );
    }
    assert_eq!(
        fresh.get_ref(&target.to_string()).expect("ref"),
        Some(digest(BUSYBOX_MANIFEST))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn skopeo_push_then_kiln_pull_keeps_digests() {
    let registry = Registry::start(Auth::None);
    registry.seed_busybox("seeded/busybox:latest");
    let (_d, store) = empty_store();
    let client = client(StaticCredentials::none());
    let report = client
        .pull(
            &reference(&format!("{}/seeded/busybox", registry.host())),
            &amd64(),
            &store,
            no_progress(),
        )
        .await
        .expect("pull");
    assert_eq!(
        report.digest,
        raw_digest(&registry, "seeded/busybox:latest", None)
    );
    let image = kiln_oci::resolve(&store, &report.digest, &amd64()).expect("resolve");
    assert_eq!(image.config_digest, digest(BUSYBOX_CONFIG));
    // Pulling by digest works too and finds everything present.
    let by_digest = reference(&format!(
        "{}/seeded/busybox@{}",
        registry.host(),
        report.digest
    ));
    let again = client
        .pull(&by_digest, &amd64(), &store, no_progress())
        .await
        .expect("pull by digest");
    assert_eq!((again.fetched, again.present), (0, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_repository_mount_and_chunked_upload() {
    let registry = Registry::start(Auth::None);
    let (_d, store) = store_with_busybox();
    // Tiny chunks: the 1 MB layer goes up in 16 PATCH requests.
    let options = RegistryOptions {
        chunk_size: 64 * 1024,
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(options, Box::new(StaticCredentials::none())).expect("client");
    let first = reference(&format!("{}/team-a/base:1", registry.host()));
    let report = client
        .push(&store, &digest(BUSYBOX_MANIFEST), &first, no_progress())
        .await
        .expect("push");
    assert_eq!(report.uploaded, 2);
    assert_eq!(
        raw_digest(&registry, "team-a/base:1", None),
        digest(BUSYBOX_MANIFEST)
    );

    let second = reference(&format!("{}/team-b/app:2", registry.host()));
    let report = client
        .push(&store, &digest(BUSYBOX_MANIFEST), &second, no_progress())
        .await
        .expect("push");
    assert_eq!((report.mounted, report.uploaded), (2, 0), "{report:?}");
    assert_eq!(
        raw_digest(&registry, "team-b/app:2", None),
        digest(BUSYBOX_MANIFEST)
    );
    // skopeo can copy the mounted image out completely.
    let out = tempfile::tempdir().expect("dir");
    let dest = format!("oci:{}:x", out.path().join("copy").display());
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}/team-b/app:2", registry.host()),
        &dest,
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_auth() {
    let registry = Registry::start(Auth::basic("alice", "s3cret"));
    let (_d, store) = store_with_busybox();
    let target = reference(&format!("{}/private/busybox:1", registry.host()));

    let anonymous = client(StaticCredentials::none());
    let err = anonymous
        .push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect_err("anonymous push is refused");
    let msg = err.to_string();
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{msg}");
    assert!(
        msg.contains(&registry.host()) && msg.contains("kiln login"),
        "{msg}"
    );

    let wrong = client(StaticCredentials::none().with(&registry.host(), "alice", "nope"));
    let err = wrong
        .push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("alice"), "{err}");
    assert!(wrong.ping(&registry.host()).await.is_err());

    // Credentials from a Docker config file.
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.json");
    let auth = "YWxpY2U6czNjcmV0"; // alice:s3cret
    std::fs::write(
        &path,
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.host()
        ),
    )
    .expect("write");
    let config = DockerConfig::load(&path).expect("config");
    let good = RegistryClient::new(RegistryOptions::default(), Box::new(config)).expect("client");
    good.ping(&registry.host()).await.expect("login check");
    good.push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect("push");
    assert_eq!(
        raw_digest(&registry, "private/busybox:1", Some("alice:s3cret")),
        digest(BUSYBOX_MANIFEST)
    );
    let (_d2, fresh) = empty_store();
    good.pull(&target, &amd64(), &fresh, no_progress())
        .await
        .expect("pull");
}

#[tokio::test(flavor = "multi_thread")]
async fn token_auth() {
    let registry = Registry::start(Auth::token("bob", "hunter2"));
    let (_d, store) = store_with_busybox();
    let target = reference(&format!("{}/tok/busybox:1", registry.host()));

    let anonymous = client(StaticCredentials::none());
    let err = anonymous
        .push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect_err("anonymous token has no push access");
    assert!(matches!(err, RegistryError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains(&registry.host()), "{err}");

    let wrong = client(StaticCredentials::none().with(&registry.host(), "bob", "wrong"));
    let err = wrong
        .push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("bob"), "{err}");

    let bob = client(StaticCredentials::none().with(&registry.host(), "bob", "hunter2"));
    bob.ping(&registry.host()).await.expect("login check");
    bob.push(&store, &digest(BUSYBOX_MANIFEST), &target, no_progress())
        .await
        .expect("push");
    assert!(
        registry
            .token_requests()
            .iter()
            .any(|r| r.contains("repository:tok/busybox:pull,push")),
        "{:?}",
        registry.token_requests()
    );
    assert_eq!(
        raw_digest(&registry, "tok/busybox:1", Some("bob:hunter2")),
        digest(BUSYBOX_MANIFEST)
    );
    let (_d2, fresh) = empty_store();
    let report = bob
        .pull(&target, &amd64(), &fresh, no_progress())
        .await
        .expect("pull");
    assert_eq!(report.digest, digest(BUSYBOX_MANIFEST));
}

/// Builds a two-platform index over busybox in `store`: the real amd64
/// manifest and an "arm64" copy (same blobs, different annotation).
fn add_index(store: &LocalStore) -> (Digest, Digest) {
    let amd = store.read(&digest(BUSYBOX_MANIFEST)).expect("manifest");
    let mut arm: serde_json::Value = serde_json::from_slice(&amd).expect("json");
    arm["annotations"] = serde_json::json!({"kiln.test": "arm64 copy"});
    let arm_bytes = serde_json::to_vec(&arm).expect("json");
    let arm_digest = store.write_blob(&arm_bytes, None).expect("write");
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": [
            {"mediaType": media::OCI_MANIFEST, "digest": BUSYBOX_MANIFEST, "size": amd.len(),
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": media::OCI_MANIFEST, "digest": arm_digest.as_str(), "size": arm_bytes.len(),
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ]
    });
    let index_digest = store
        .write_blob(&serde_json::to_vec(&index).expect("json"), None)
        .expect("write");
    (index_digest, arm_digest)
}

#[tokio::test(flavor = "multi_thread")]
async fn index_push_and_platform_selection() {
    let registry = Registry::start(Auth::None);
    let (_d, store) = store_with_busybox();
    let (index, arm) = add_index(&store);
    let client = client(StaticCredentials::none());
    let target = reference(&format!("{}/multi/busybox:1", registry.host()));
    client
        .push(&store, &index, &target, no_progress())
        .await
        .expect("push index");
    assert_eq!(raw_digest(&registry, "multi/busybox:1", None), index);
    // Both child manifests went up before the index, by digest.
    let at_digest = format!("multi/busybox@{arm}");
    assert_eq!(raw_digest(&registry, &at_digest, None), arm);

    let (_d2, fresh) = empty_store();
    let arm64: Platform = "linux/arm64".parse().expect("platform");
    let report = client
        .pull(&target, &arm64, &fresh, no_progress())
        .await
        .expect("pull arm64");
    assert_eq!(
        (report.digest.clone(), report.manifest.clone()),
        (index.clone(), arm.clone())
    );
    // A linter's view: the config for a platform, with no layer fetched
    // and no store (the copy kept busybox's amd64 config).
    let fetched = client
        .fetch_config(&target, &arm64)
        .await
        .expect("fetch config");
    assert_eq!(fetched.manifest, arm);
    assert_eq!(fetched.config.architecture, "amd64");
    let env = fetched.config.config.env.unwrap_or_default();
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    let err = client
        .pull(
            &target,
            &"linux/s390x".parse().expect("p"),
            &fresh,
            no_progress(),
        )
        .await
        .expect_err("no s390x");
    assert!(
        err.to_string().contains("linux/amd64, linux/arm64/v8"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mirror_is_tried_first() {
    let mirror = Registry::start(Auth::None);
    mirror.seed_busybox("library/busybox:latest");
    let options = RegistryOptions {
        mirrors: [("docker.io".to_string(), vec![mirror.host()])]
            .into_iter()
            .collect(),
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(options, Box::new(StaticCredentials::none())).expect("client");
    let (_d, store) = empty_store();
    let report = client
        .pull(&reference("busybox"), &amd64(), &store, no_progress())
        .await
        .expect("pull");
    assert_eq!(report.source, mirror.host());
    assert_eq!(
        store
            .get_ref("docker.io/library/busybox:latest")
            .expect("ref"),
        Some(report.digest)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_blob_content_is_rejected_naming_the_digest() {
    let fake = FakeRegistry::start();
    let (_d, source) = store_with_busybox();
    let manifest = source.read(&digest(BUSYBOX_MANIFEST)).expect("manifest");
    fake.add_manifest("bad/busybox", "1", media::OCI_MANIFEST, &manifest);
    fake.add_blob(
        "bad/busybox",
        BUSYBOX_CONFIG,
        &source.read(&digest(BUSYBOX_CONFIG)).expect("config"),
    );
    let mut layer = source.read(&digest(BUSYBOX_LAYER)).expect("layer");
    let last = layer.len() - 1;
    layer[last] ^= 0xff; // same size, different content
    fake.add_blob("bad/busybox", BUSYBOX_LAYER, &layer);

    let (_d2, store) = empty_store();
    let client = client(StaticCredentials::none());
    let target = reference(&format!("{}/bad/busybox:1", fake.host()));
    let err = client
        .pull(&target, &amd64(), &store, no_progress())
        .await
        .expect_err("corrupt layer");
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(BUSYBOX_LAYER), "{err}");
    // Nothing corrupt and no name were left behind.
    assert!(!store.exists(&digest(BUSYBOX_LAYER)));
    assert_eq!(store.get_ref(&target.to_string()).expect("refs"), None);
    for d in store.blobs().expect("blobs") {
        assert_eq!(Digest::sha256(&store.read(&d).expect("read")), d);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_errors_are_retried() {
    let fake = FakeRegistry::start();
    let (_d, source) = store_with_busybox();
    for d in [BUSYBOX_CONFIG, BUSYBOX_LAYER] {
        fake.add_blob("flaky/busybox", d, &source.read(&digest(d)).expect("blob"));
    }
    fake.add_manifest(
        "flaky/busybox",
        "1",
        media::OCI_MANIFEST,
        &source.read(&digest(BUSYBOX_MANIFEST)).expect("manifest"),
    );
    fake.fail_next(3, 503);
    let (_d2, store) = empty_store();
    let report = client(StaticCredentials::none())
        .pull(
            &reference(&format!("{}/flaky/busybox:1", fake.host())),
            &amd64(),
            &store,
            no_progress(),
        )
        .await
        .expect("pull succeeds after 503s");
    assert_eq!(report.fetched, 2);
    assert!(fake.requests().len() >= 6, "{:?}", fake.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthorized_without_credentials_names_the_registry() {
    let fake = FakeRegistry::start();
    fake.require_basic_auth("kiln-test");
    let (_d, store) = empty_store();
    let err = client(StaticCredentials::none())
        .pull(
            &reference(&format!("{}/any/thing:1", fake.host())),
            &amd64(),
            &store,
            no_progress(),
        )
        .await
        .expect_err("401");
    let msg = err.to_string();
    assert!(msg.contains(&fake.host()), "{msg}");
    assert!(
        msg.contains("no credentials") && msg.contains("kiln login"),
        "{msg}"
    );
}

/// Signals once the first upload progress arrives.
struct FirstProgress(AtomicBool);

impl TransferObserver for FirstProgress {
    fn blob_progress(&self, _d: &Digest, _done: u64, _size: u64) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Adds an image with one incompressible layer of `size` bytes.
fn add_big_image(store: &LocalStore, size: usize) -> Digest {
    // A cheap deterministic pseudo-random stream (xorshift).
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut layer = Vec::with_capacity(size);
    while layer.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        layer.extend_from_slice(&x.to_le_bytes());
    }
    layer.truncate(size);
    let layer_digest = store.write_blob(&layer, None).expect("layer");
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [layer_digest.as_str()]},
        "config": {}
    });
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = store.write_blob(&config, None).expect("config");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
        "config": {"mediaType": media::OCI_CONFIG, "digest": config_digest.as_str(), "size": config.len()},
        "layers": [{"mediaType": media::OCI_LAYER_TAR, "digest": layer_digest.as_str(), "size": size}]
    });
    store
        .write_blob(&serde_json::to_vec(&manifest).expect("json"), None)
        .expect("manifest")
}

/// Records every (digest, done, size) progress report.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<(Digest, u64, u64)>>);

impl TransferObserver for Recorded {
    fn blob_progress(&self, d: &Digest, done: u64, size: u64) {
        self.0.lock().expect("lock").push((d.clone(), done, size));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_reports_progress_within_one_upload_request() {
    let registry = Registry::start(Auth::None);
    let (_d, store) = empty_store();
    let size = 3 << 20;
    let image = add_big_image(&store, size);
    // The whole layer fits in one chunk: a single PUT.
    let client = client(StaticCredentials::none());
    let target = reference(&format!("{}/progress/big:1", registry.host()));
    let observer = Arc::new(Recorded::default());
    client
        .push(&store, &image, &target, observer.clone())
        .await
        .expect("push");
    let reports = observer.0.lock().expect("lock").clone();
    let layer: Vec<u64> = reports
        .iter()
        .filter(|(_, _, s)| *s == size as u64)
        .map(|(_, done, _)| *done)
        .collect();
    assert!(
        layer.iter().filter(|d| **d < size as u64).count() >= 3,
        "progress inside the request: {layer:?}"
    );
    assert!(layer.windows(2).all(|w| w[0] <= w[1]), "{layer:?}");
    assert_eq!(layer.last(), Some(&(size as u64)));
}

#[test]
fn registry_killed_mid_push_then_restarted() {
    let mut registry = Registry::start(Auth::None);
    let (_d, store) = empty_store();
    let image = add_big_image(&store, 48 << 20);
    let options = RegistryOptions {
        chunk_size: 1 << 20,
        initial_backoff: Duration::from_millis(200),
        retries: 8,
        ..RegistryOptions::default()
    };
    let client = RegistryClient::new(options, Box::new(StaticCredentials::none())).expect("client");
    let target = reference(&format!("{}/crash/big:1", registry.host()));
    let observer = Arc::new(FirstProgress(AtomicBool::new(false)));
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let pushed = image.clone();
    let push = {
        let (client, store, target, observer) = (
            client.clone(),
            store.clone(),
            target.clone(),
            observer.clone(),
        );
        runtime.spawn(async move { client.push(&store, &pushed, &target, observer).await })
    };
    while !observer.0.load(Ordering::SeqCst) {
        assert!(
            !push.is_finished(),
            "push finished before it could be interrupted"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    registry.kill();
    std::thread::sleep(Duration::from_millis(500));
    registry.restart();
    let report = runtime
        .block_on(push)
        .expect("join")
        .expect("push completes after the restart");
    assert_eq!(report.digest, image);
    assert_eq!(raw_digest(&registry, "crash/big:1", None), image);
    let (_d2, fresh) = empty_store();
    runtime
        .block_on(client.pull(&target, &amd64(), &fresh, no_progress()))
        .expect("pull back");
}

#[test]
fn docker_archive_and_layouts_are_read_by_skopeo() {
    let (_d, store) = store_with_busybox();
    let out = tempfile::tempdir().expect("dir");
    let images = [NamedImage {
        names: vec!["docker.io/library/busybox:latest".into()],
        digest: digest(BUSYBOX_MANIFEST),
    }];
    // docker-archive: skopeo reads the config kiln wrote.
    let tar_path = out.path().join("busybox-docker.tar");
    let file = std::fs::File::create(&tar_path).expect("create");
    archive::write_docker_archive(&store, &images, &amd64(), file).expect("write");
    let config = skopeo_ok(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", tar_path.display()),
    ]);
    assert_eq!(Digest::sha256(config.as_bytes()), digest(BUSYBOX_CONFIG));
    let info = skopeo_ok(&["inspect", &format!("docker-archive:{}", tar_path.display())]);
    assert!(info.contains("\"Architecture\": \"amd64\""), "{info}");
    // The archive loads back, with its name and the same config.
    let (_d2, again) = empty_store();
    let loaded = archive::load(&again, &tar_path).expect("load docker-archive");
    assert_eq!(loaded[0].name.as_deref(), Some("busybox:latest"));
    let image = kiln_oci::resolve(&again, &loaded[0].digest, &amd64()).expect("resolve");
    assert_eq!(image.config_digest, digest(BUSYBOX_CONFIG));

    // With a layer's plain tar in the store (the blob named by its diff
    // id, as builds leave them), that blob is copied: the gzip blob is
    // not needed, and the archive is the same bytes.
    let first = std::fs::read(&tar_path).expect("read archive");
    let (_d4, plain_store) = store_with_busybox();
    let resolved =
        kiln_oci::resolve(&plain_store, &digest(BUSYBOX_MANIFEST), &amd64()).expect("resolve");
    for layer in resolved.manifest.layers() {
        let gz = digest(layer.digest().as_ref());
        let mut tar = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(plain_store.open(&gz).expect("open")),
            &mut tar,
        )
        .expect("gunzip");
        plain_store.write_blob(&tar, None).expect("plain tar");
        std::fs::remove_file(plain_store.blob_path(&gz)).expect("remove gzip blob");
    }
    let again_path = out.path().join("plain.tar");
    let file = std::fs::File::create(&again_path).expect("create");
    archive::write_docker_archive(&plain_store, &images, &amd64(), file).expect("write plain");
    assert!(std::fs::read(&again_path).expect("read") == first);

    // OCI layout directory and tar: skopeo sees the same manifest digest.
    let layout = out.path().join("layout");
    archive::write_layout_dir(&store, &images, &layout).expect("layout");
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci:{}:latest", layout.display()),
    ]);
    assert_eq!(Digest::sha256(raw.as_bytes()), digest(BUSYBOX_MANIFEST));
    let oci_tar = out.path().join("busybox-oci.tar");
    archive::write_layout_tar(
        &store,
        &images,
        std::fs::File::create(&oci_tar).expect("create"),
    )
    .expect("tar");
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:latest", oci_tar.display()),
    ]);
    assert_eq!(Digest::sha256(raw.as_bytes()), digest(BUSYBOX_MANIFEST));

    // What skopeo writes, kiln reads: docker-archive, OCI layout, OCI tar.
    let src = format!("oci:{BUSYBOX}:latest");
    let sk_da = out.path().join("sk.tar");
    skopeo_ok(&[
        "copy",
        &src,
        &format!("docker-archive:{}:sk/box:7", sk_da.display()),
    ]);
    let sk_oci = out.path().join("sk-oci");
    skopeo_ok(&["copy", &src, &format!("oci:{}:v1", sk_oci.display())]);
    let sk_oci_tar = out.path().join("sk-oci.tar");
    skopeo_ok(&[
        "copy",
        &src,
        &format!("oci-archive:{}:v2", sk_oci_tar.display()),
    ]);
    let (_d3, third) = empty_store();
    let da = archive::load(&third, &sk_da).expect("load skopeo docker-archive");
    // skopeo writes the normalised name into RepoTags.
    let name = da[0].name.as_deref().map(reference);
    assert_eq!(name, Some(reference("sk/box:7")));
    let image = kiln_oci::resolve(&third, &da[0].digest, &amd64()).expect("resolve");
    assert_eq!(image.config_digest, digest(BUSYBOX_CONFIG));
    for path in [&sk_oci, &sk_oci_tar] {
        let loaded = archive::load(&third, path).expect("load skopeo layout");
        assert_eq!(
            loaded[0].digest,
            digest(BUSYBOX_MANIFEST),
            "{}",
            path.display()
        );
    }
}

#[test]
fn damaged_layout_is_refused_and_leaves_nothing() {
    let out = tempfile::tempdir().expect("dir");
    let (_d, store) = store_with_busybox();
    let images = [NamedImage {
        names: vec![],
        digest: digest(BUSYBOX_MANIFEST),
    }];
    let layout = out.path().join("layout");
    archive::write_layout_dir(&store, &images, &layout).expect("layout");
    let layer_path = layout.join("blobs/sha256").join(&BUSYBOX_LAYER[7..]);
    let mut bytes = std::fs::read(&layer_path).expect("read");
    std::fs::remove_file(&layer_path).expect("unlink the hard link");
    bytes[100] ^= 1;
    std::fs::write(&layer_path, bytes).expect("write");
    let (_d2, fresh) = empty_store();
    let err = archive::load(&fresh, &layout).expect_err("damaged");
    assert!(err.to_string().contains(BUSYBOX_LAYER), "{err}");
    assert!(!fresh.exists(&digest(BUSYBOX_LAYER)));
}

#[tokio::test(flavor = "multi_thread")]
async fn docker_media_types_on_request() {
    let registry = Registry::start(Auth::None);
    let (_d, store) = store_with_busybox();
    let docker = kiln_oci::convert_media_types(
        &store,
        &digest(BUSYBOX_MANIFEST),
        kiln_oci::MediaFamily::Docker,
    )
    .expect("convert");
    assert_ne!(docker, digest(BUSYBOX_MANIFEST));
    let target = reference(&format!("{}/docker/busybox:1", registry.host()));
    client(StaticCredentials::none())
        .push(&store, &docker, &target, no_progress())
        .await
        .expect("push");
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert!(
        raw.contains(media::DOCKER_MANIFEST) && raw.contains(media::DOCKER_CONFIG),
        "{raw}"
    );
    assert!(raw.contains(media::DOCKER_LAYER_GZIP), "{raw}");
    // Converting back gives the original bytes.
    let back = kiln_oci::convert_media_types(&store, &docker, kiln_oci::MediaFamily::Oci)
        .expect("convert back");
    assert_eq!(back, digest(BUSYBOX_MANIFEST));
    // An image already in the family is returned as is.
    let same = kiln_oci::convert_media_types(&store, &docker, kiln_oci::MediaFamily::Docker)
        .expect("no-op");
    assert_eq!(same, docker);
}

#[test]
fn gc_removes_only_unreferenced_blobs() {
    let (_d, store) = store_with_busybox();
    let stray = store.write_blob(&vec![7u8; 4096], None).expect("stray");
    let report = store.gc().expect("gc");
    assert_eq!(report.removed, vec![stray]);
    assert_eq!(report.freed, 4096);
    assert_eq!(report.kept, 3);
    store
        .remove_ref("docker.io/library/busybox:latest")
        .expect("rmi");
    let report = store.gc().expect("gc");
    assert_eq!(report.removed.len(), 3);
    assert!(store.blobs().expect("blobs").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn dropped_download_resumes_with_range() {
    const CUT: usize = 300_000;
    let fake = FakeRegistry::start();
    let (_d, source) = store_with_busybox();
    let layer = source.read(&digest(BUSYBOX_LAYER)).expect("layer");
    assert!(layer.len() > CUT, "the layer is only {} bytes", layer.len());
    for d in [BUSYBOX_CONFIG, BUSYBOX_LAYER] {
        fake.add_blob("cut/busybox", d, &source.read(&digest(d)).expect("blob"));
    }
    fake.add_manifest(
        "cut/busybox",
        "1",
        media::OCI_MANIFEST,
        &source.read(&digest(BUSYBOX_MANIFEST)).expect("manifest"),
    );
    fake.cut_blob_after(BUSYBOX_LAYER, CUT);
    let (_d2, store) = empty_store();
    let report = client(StaticCredentials::none())
        .pull(
            &reference(&format!("{}/cut/busybox:1", fake.host())),
            &amd64(),
            &store,
            no_progress(),
        )
        .await
        .expect("pull resumes after the dropped connection");
    assert_eq!(report.fetched, 2);
    // The store only commits blobs that match their digest.
    assert!(store.exists(&digest(BUSYBOX_LAYER)));
    assert_eq!(store.read(&digest(BUSYBOX_LAYER)).expect("read"), layer);

    let blob_path = format!("GET /v2/cut/busybox/blobs/{BUSYBOX_LAYER}");
    let layer_gets: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.starts_with(&blob_path))
        .collect();
    assert_eq!(
        layer_gets,
        vec![blob_path.clone(), format!("{blob_path} range=bytes={CUT}-")],
        "all requests: {:?}",
        fake.requests()
    );
}
