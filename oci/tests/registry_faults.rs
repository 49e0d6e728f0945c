//! The registry client against a real `docker-registry` behind a fault
//! proxy (kiln_test_support::FaultProxy): oversending, stalling,
//! trickling, 429/503 with `Retry-After`, always-500, connections cut
//! mid-blob and redirects; and a listener that never accepts (connect
//! timeout). Each test prints what it counted.

use kiln_test_support as support;

use kiln_oci::{
    archive, BlobReader, Digest, LocalStore, NoProgress, Platform, Reference, RegistryClient,
    RegistryError, RegistryOptions, StaticCredentials, TransferObserver,
};
use sha2::{Digest as _, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use support::{Auth, Fault, FaultProxy, Registry, RetryAfter};
use support::{BUSYBOX_CONFIG, BUSYBOX_DIGEST, BUSYBOX_LAYER, BUSYBOX_LAYOUT};

/// A generous guard against a hang; never an expected duration.
const HANG_GUARD: Duration = Duration::from_secs(120);

fn amd64() -> Platform {
    "linux/amd64".parse().expect("platform")
}

fn digest(s: &str) -> Digest {
    s.parse().expect("digest")
}

fn empty_store() -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LocalStore::open(dir.path().join("store")).expect("store");
    (dir, store)
}

fn busybox_store() -> (tempfile::TempDir, LocalStore) {
    let (dir, store) = empty_store();
    let loaded = archive::load(&store, Path::new(BUSYBOX_LAYOUT)).expect("load busybox");
    assert_eq!(loaded[0].digest, digest(BUSYBOX_DIGEST));
    (dir, store)
}

/// Test options: quick backoff, small timeouts.
fn options() -> RegistryOptions {
    RegistryOptions {
        initial_backoff: Duration::from_millis(10),
        progress_timeout: Duration::from_secs(5),
        ..RegistryOptions::default()
    }
}

fn client(options: RegistryOptions) -> RegistryClient {
    RegistryClient::new(options, Box::new(StaticCredentials::none())).expect("client")
}

fn no_progress() -> Arc<dyn TransferObserver> {
    Arc::new(NoProgress)
}

/// A registry seeded with busybox as `library/busybox:1`, and a proxy in
/// front of it.
fn setup() -> (Registry, FaultProxy) {
    let registry = Registry::start(Auth::None);
    registry.seed_busybox("library/busybox:1");
    let proxy = FaultProxy::start(&registry.host());
    (registry, proxy)
}

fn busybox_at(proxy: &FaultProxy) -> Reference {
    Reference::parse(&format!("{}/library/busybox:1", proxy.host())).expect("reference")
}

/// Pushes busybox from a fresh store to `kiln/busybox:1` through `proxy`.
async fn push_busybox(
    client: &RegistryClient,
    proxy: &FaultProxy,
) -> Result<kiln_oci::PushReport, RegistryError> {
    let (_d, store) = busybox_store();
    let target = Reference::parse(&format!("{}/kiln/busybox:1", proxy.host())).expect("ref");
    tokio::time::timeout(
        HANG_GUARD,
        client.push(&store, &digest(BUSYBOX_DIGEST), &target, no_progress()),
    )
    .await
    .expect("the push hung")
}

/// Files left in the store's `ingest/` directory.
fn temporaries(store: &LocalStore) -> usize {
    std::fs::read_dir(store.root().join("ingest"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Blobs in the store whose content does not hash to their name.
fn corrupt_blobs(store: &LocalStore) -> usize {
    let dir = store.root().join("blobs/sha256");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return 0;
    };
    entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let bytes = std::fs::read(e.path()).expect("read blob");
            let hex = format!("{:x}", Sha256::digest(&bytes));
            hex != e.file_name().to_string_lossy()
        })
        .count()
}

async fn pull(
    client: &RegistryClient,
    reference: &Reference,
    store: &LocalStore,
) -> Result<kiln_oci::PullReport, RegistryError> {
    tokio::time::timeout(
        HANG_GUARD,
        client.pull(reference, &amd64(), store, no_progress()),
    )
    .await
    .expect("the pull hung")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversent_blob_is_cut_at_its_descriptor_size_and_discarded() {
    let (_registry, proxy) = setup();
    let client = client(options());
    for declare in [false, true] {
        let (_d, store) = empty_store();
        proxy.add(
            Some("GET"),
            BUSYBOX_LAYER,
            Fault::Oversend {
                extra: 1 << 20,
                declare,
            },
            Some(1),
        );
        let err = pull(&client, &busybox_at(&proxy), &store)
            .await
            .expect_err("an oversent layer must fail the pull");
        let message = err.to_string();
        eprintln!(
            "oversend (Content-Length {}): {message}; corrupt blobs {}, temporaries left {}",
            if declare {
                "counts the extra"
            } else {
                "absent"
            },
            corrupt_blobs(&store),
            temporaries(&store)
        );
        assert!(message.contains("larger than"), "{message}");
        assert!(!store.exists(&digest(BUSYBOX_LAYER)));
        assert_eq!(corrupt_blobs(&store), 0);
        assert_eq!(temporaries(&store), 0);
        assert_eq!(
            store
                .get_ref(&busybox_at(&proxy).to_string())
                .ok()
                .flatten(),
            None
        );
    }
    // A config read (no store) is bounded by its descriptor too.
    proxy.add(
        Some("GET"),
        BUSYBOX_CONFIG,
        Fault::Oversend {
            extra: 1 << 20,
            declare: false,
        },
        Some(1),
    );
    let err = client
        .fetch_config(&busybox_at(&proxy), &amd64())
        .await
        .expect_err("an oversent config must fail");
    eprintln!("oversent config: {err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_registry_gives_up_after_the_progress_timeout_and_the_budget() {
    let (_registry, proxy) = setup();
    proxy.add(None, "/v2/", Fault::Stall, None);
    let client = client(RegistryOptions {
        progress_timeout: Duration::from_secs(1),
        retries: 2,
        ..options()
    });
    let (_d, store) = empty_store();
    let err = pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect_err("a stalled registry must fail the pull");
    let message = err.to_string();
    let requests = proxy.count(None, "/v2/");
    eprintln!("stall: {requests} requests; {message}");
    assert!(matches!(err, RegistryError::Timeout { .. }), "{err:?}");
    assert_eq!(
        message,
        format!(
            "no data from {} for 1 s while fetching manifest 1; 3 attempts",
            proxy.host()
        )
    );
    assert_eq!(requests, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickle_slower_than_the_progress_timeout_fails_the_download() {
    let (_registry, proxy) = setup();
    proxy.add(
        Some("GET"),
        BUSYBOX_LAYER,
        Fault::Trickle {
            every: Duration::from_secs(3),
        },
        None,
    );
    let client = client(RegistryOptions {
        progress_timeout: Duration::from_secs(1),
        retries: 1,
        ..options()
    });
    let (_d, store) = empty_store();
    let err = pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect_err("a trickle must fail the pull");
    let message = err.to_string();
    let requests = proxy.count(Some("GET"), BUSYBOX_LAYER);
    eprintln!(
        "slow trickle: {requests} layer requests, temporaries left {}; {message}",
        temporaries(&store)
    );
    assert_eq!(
        message,
        format!(
            "no data from {} for 1 s while downloading {BUSYBOX_LAYER}; 2 attempts",
            proxy.host()
        )
    );
    assert_eq!(requests, 2);
    assert_eq!(temporaries(&store), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickle_within_the_progress_timeout_is_stopped_by_the_deadline() {
    let (_registry, proxy) = setup();
    proxy.add(
        Some("GET"),
        BUSYBOX_LAYER,
        Fault::Trickle {
            every: Duration::from_millis(100),
        },
        None,
    );
    let client = client(RegistryOptions {
        progress_timeout: Duration::from_secs(2),
        deadline: Some(Duration::from_secs(3)),
        ..options()
    });
    let (_d, store) = empty_store();
    let err = pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect_err("the deadline must stop the pull");
    let message = err.to_string();
    eprintln!(
        "fast trickle: {} layer requests, temporaries left {}; {message}",
        proxy.count(Some("GET"), BUSYBOX_LAYER),
        temporaries(&store)
    );
    assert!(matches!(err, RegistryError::Deadline { .. }), "{err:?}");
    assert!(
        message.starts_with(&format!(
            "the 3 s deadline passed while downloading {BUSYBOX_LAYER}; "
        )),
        "{message}"
    );
    let RegistryError::Deadline { operation, .. } = &err else {
        unreachable!()
    };
    assert_eq!(operation, &format!("pulling {}", busybox_at(&proxy)));
    assert_eq!(proxy.count(Some("GET"), BUSYBOX_LAYER), 1);
    assert_eq!(temporaries(&store), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn retry_after_is_honoured_in_seconds_and_as_a_date_and_capped() {
    let (_registry, proxy) = setup();
    proxy.add(
        Some("GET"),
        "/manifests/",
        Fault::Status {
            code: 429,
            retry_after: Some(RetryAfter::Seconds(1)),
        },
        Some(1),
    );
    proxy.add(
        Some("GET"),
        BUSYBOX_CONFIG,
        Fault::Status {
            code: 503,
            retry_after: Some(RetryAfter::DateIn(Duration::from_secs(2))),
        },
        Some(1),
    );
    // Without the cap this would wait an hour (and trip the hang guard).
    proxy.add(
        Some("GET"),
        BUSYBOX_LAYER,
        Fault::Status {
            code: 429,
            retry_after: Some(RetryAfter::Seconds(3600)),
        },
        Some(1),
    );
    let client = client(RegistryOptions {
        max_retry_after: Duration::from_secs(1),
        ..options()
    });
    let (_d, store) = empty_store();
    pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect("the pull succeeds after waiting");
    let gap = |path: &str| {
        let at: Vec<_> = proxy
            .seen()
            .into_iter()
            .filter(|s| s.method == "GET" && s.path.contains(path))
            .map(|s| s.at)
            .collect();
        assert_eq!(at.len(), 2, "{path}: {at:?}");
        at[1] - at[0]
    };
    let (manifest, config, layer) = (gap("/manifests/"), gap(BUSYBOX_CONFIG), gap(BUSYBOX_LAYER));
    eprintln!("retry-after: 2 requests each; waits {manifest:?} (1 s), {config:?} (date), {layer:?} (3600 s capped at 1 s)");
    // Lower bounds only: the backoff alone would be 10 ms.
    assert!(manifest >= Duration::from_millis(1000));
    assert!(config >= Duration::from_millis(1000));
    assert!(layer >= Duration::from_millis(1000));
    assert_eq!(corrupt_blobs(&store), 0);

    // A wait past the deadline is not taken.
    proxy.add(
        None,
        "/manifests/",
        Fault::Status {
            code: 429,
            retry_after: Some(RetryAfter::Seconds(30)),
        },
        None,
    );
    let before = proxy.count(None, "/manifests/");
    let client = crate::client(RegistryOptions {
        deadline: Some(Duration::from_secs(5)),
        max_retry_after: Duration::from_secs(60),
        ..options()
    });
    let (_d2, store) = empty_store();
    let err = pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect_err("a 30 s Retry-After does not fit a 5 s deadline");
    let requests = proxy.count(None, "/manifests/") - before;
    eprintln!("retry-after past the deadline: {requests} requests; {err}");
    assert_eq!(requests, 1);
    assert!(matches!(err, RegistryError::Deadline { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("answered 429 and asked to retry in 30 s"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_always_failing_registry_gets_one_retry_budget_per_operation() {
    let (_registry, proxy) = setup();
    proxy.add(
        None,
        "/v2/",
        Fault::Status {
            code: 500,
            retry_after: None,
        },
        None,
    );
    let retries = 3;
    let client = client(RegistryOptions {
        retries,
        ..options()
    });
    let err = push_busybox(&client, &proxy)
        .await
        .expect_err("an always-500 registry fails the push");
    let push_requests = proxy.count(None, "/v2/");
    eprintln!(
        "always-500 push: {push_requests} requests (budget {retries} retries, 2 blobs); {err}"
    );
    // Each blob's first HEAD and POST, plus two requests per retry.
    assert!(
        push_requests <= 2 * 2 + 2 * retries as usize,
        "{push_requests}"
    );

    let (_d2, empty) = empty_store();
    let err = pull(&client, &busybox_at(&proxy), &empty)
        .await
        .expect_err("an always-500 registry fails the pull");
    let pull_requests = proxy.count(None, "/v2/") - push_requests;
    eprintln!("always-500 pull: {pull_requests} requests; {err}");
    assert_eq!(pull_requests, retries as usize + 1);
    assert!(
        err.to_string()
            .ends_with(&format!(": 500; {} attempts", retries + 1)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_cut_again_and_again_resumes_while_it_makes_progress() {
    let (_registry, proxy) = setup();
    let cuts = 5;
    proxy.add(
        Some("GET"),
        BUSYBOX_LAYER,
        Fault::CutAfter(64 * 1024),
        Some(cuts),
    );
    // Fewer retries than cuts: only a budget that refills on progress
    // gets through.
    let client = client(RegistryOptions {
        retries: 2,
        ..options()
    });
    let (_d, store) = empty_store();
    let report = pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect("the pull resumes to the end");
    let requests = proxy.count(Some("GET"), BUSYBOX_LAYER);
    let ranged = proxy.seen().len();
    eprintln!(
        "cuts: {cuts}, layer requests {requests}, all requests {ranged}, corrupt blobs {}, temporaries left {}",
        corrupt_blobs(&store),
        temporaries(&store)
    );
    assert_eq!(requests, cuts + 1);
    assert!(store.exists(&digest(BUSYBOX_LAYER)));
    assert_eq!(report.fetched, 2);
    assert_eq!(corrupt_blobs(&store), 0);
    assert_eq!(temporaries(&store), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirected_blobs_are_followed_to_the_registry() {
    let (_registry, proxy) = setup();
    proxy.add(Some("GET"), "/blobs/", Fault::Redirect, None);
    let client = client(options());
    let (_d, store) = empty_store();
    let report = pull(&client, &busybox_at(&proxy), &store)
        .await
        .expect("a redirected pull succeeds");
    let redirected = proxy.count(Some("GET"), "/blobs/");
    eprintln!(
        "redirects: {redirected} blob requests redirected, {} fetched",
        report.fetched
    );
    assert_eq!(redirected, 2);
    assert_eq!(report.fetched, 2);
    assert_eq!(corrupt_blobs(&store), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_cut_at_its_upload_names_the_upload_url_once_and_short() {
    let (_registry, proxy) = setup();
    proxy.add(Some("PUT"), "/blobs/uploads/", Fault::Close, None);
    let client = client(RegistryOptions {
        retries: 1,
        ..options()
    });
    let err = push_busybox(&client, &proxy)
        .await
        .expect_err("a push whose uploads are cut fails");
    // The whole chain, as the cli prints it.
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    let puts = proxy.count(Some("PUT"), "/blobs/uploads/");
    eprintln!(
        "cut upload: {puts} PUTs, message of {} characters: {chain}",
        chain.len()
    );
    assert!(matches!(err, RegistryError::Http { .. }), "{err:?}");
    assert_eq!(chain.matches("/blobs/uploads/").count(), 1, "{chain}");
    assert!(chain.len() < 300, "{chain}");
    assert!(chain.contains("_state="), "{chain}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversent_child_manifest_is_refused_by_its_descriptor_size() {
    let (_registry, proxy) = setup();
    let (_d, store) = busybox_store();
    let child = digest(BUSYBOX_DIGEST);
    let bytes = store.read(&child).expect("busybox manifest");
    let media_type = serde_json::from_slice::<serde_json::Value>(&bytes).expect("json")
        ["mediaType"]
        .as_str()
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": media_type,
            "digest": BUSYBOX_DIGEST,
            "size": bytes.len(),
            "platform": {"architecture": "amd64", "os": "linux"}
        }]
    });
    let index_digest = store
        .write_blob(index.to_string().as_bytes(), None)
        .expect("index");
    let client = client(options());
    let target = Reference::parse(&format!("{}/kiln/index:1", proxy.host())).expect("ref");
    client
        .push(&store, &index_digest, &target, no_progress())
        .await
        .expect("push the index");
    proxy.add(
        Some("GET"),
        &format!("/manifests/{BUSYBOX_DIGEST}"),
        Fault::Oversend {
            extra: 64 * 1024,
            declare: true,
        },
        Some(1),
    );
    let (_d2, empty) = empty_store();
    let err = pull(&client, &target, &empty)
        .await
        .expect_err("an oversent child manifest fails the pull");
    eprintln!("oversent child manifest: {err}");
    assert!(
        err.to_string()
            .contains(&format!("kiln reads at most {}", bytes.len())),
        "{err}"
    );
}

/// A listener on 127.0.0.1 whose accept queue is full and never drained:
/// a new connection's SYN is dropped, so connecting hangs as it does to a
/// host that does not answer. Returns the listener's address and what
/// must stay open.
fn full_backlog_listener() -> (String, Vec<std::net::TcpStream>, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    // SAFETY: plain socket calls on a new descriptor, checked below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    assert!(fd >= 0, "socket");
    // SAFETY: `fd` is a new descriptor this function owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as libc::sa_family_t;
    addr.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a valid address of the stated length.
    let bound = unsafe { libc::bind(fd, (&raw const addr).cast(), len) };
    assert_eq!(bound, 0, "bind");
    // SAFETY: a bound socket; a backlog of 0 queues one connection.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0, "listen");
    let mut out_len = len;
    // SAFETY: out-parameters of the stated size.
    let named = unsafe { libc::getsockname(fd, (&raw mut addr).cast(), &mut out_len) };
    assert_eq!(named, 0, "getsockname");
    let port = u16::from_be(addr.sin_port);
    let target: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    // Fill the queue; a connection that does not complete shows it is full.
    let mut held = Vec::new();
    loop {
        match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(300)) {
            Ok(s) => held.push(s),
            Err(_) => break,
        }
        assert!(held.len() < 64, "the accept queue never filled");
    }
    (format!("127.0.0.1:{port}"), held, owned)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_never_accepts_fails_after_the_connect_timeout_and_the_budget() {
    let (host, _held, _listener) = full_backlog_listener();
    let client = client(RegistryOptions {
        connect_timeout: Duration::from_secs(1),
        retries: 2,
        ..options()
    });
    let (_d, store) = empty_store();
    let reference = Reference::parse(&format!("{host}/library/busybox:1")).expect("reference");
    let started = std::time::Instant::now();
    let err = pull(&client, &reference, &store)
        .await
        .expect_err("a registry that never accepts must fail the pull");
    let message = err.to_string();
    eprintln!(
        "connect timeout: gave up after {:.1} s; {message}",
        started.elapsed().as_secs_f64()
    );
    assert!(matches!(err, RegistryError::Timeout { .. }), "{err:?}");
    assert_eq!(
        message,
        format!("could not connect to {host} within 1 s while fetching manifest 1; 3 attempts")
    );
    assert_eq!(temporaries(&store), 0);
}
