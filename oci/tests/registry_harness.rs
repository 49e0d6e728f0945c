//! Proves the integration-test harness (kiln-test-support) works, using the real peer skopeo
//! against real `docker-registry` processes, and raw HTTP against the fake registry.

use kiln_test_support as support;

use support::{raw_request, skopeo, skopeo_ok, Auth, FakeRegistry, Registry, BUSYBOX_DIGEST};

/// `skopeo inspect` of `HOST/REPO_TAG` with the given credential flags; the manifest
/// digest on success, skopeo's stderr on failure.
fn inspect(registry: &Registry, repo_tag: &str, cred_args: &[&str]) -> Result<String, String> {
    let image = format!("docker://{}/{repo_tag}", registry.host());
    let mut args = vec!["inspect", "--tls-verify=false"];
    args.extend_from_slice(cred_args);
    args.push(&image);
    let out = skopeo(&args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect JSON");
    Ok(json["Digest"].as_str().expect("Digest field").to_string())
}

/// Seeds busybox, then checks the right credentials see it and no or wrong ones do not.
fn seed_and_check_access(registry: &Registry, repo_tag: &str) {
    registry.seed_busybox(repo_tag);
    // skopeo copies the OCI manifest byte for byte (the registry accepts OCI media
    // types), so the pushed digest is the one in the layout.
    match registry.creds() {
        None => {
            let digest = inspect(registry, repo_tag, &["--no-creds"]).expect("anonymous inspect");
            assert_eq!(digest, BUSYBOX_DIGEST);
        }
        Some(creds) => {
            let digest = inspect(registry, repo_tag, &["--creds", &creds]).expect("inspect");
            assert_eq!(digest, BUSYBOX_DIGEST);
            let err = inspect(registry, repo_tag, &["--no-creds"])
                .expect_err("inspect without credentials must fail");
            assert!(
                err.contains("401") || err.to_lowercase().contains("unauthorized"),
                "unexpected error without credentials: {err}"
            );
            let wrong = format!("{}:wrong-password", creds.split(':').next().unwrap());
            inspect(registry, repo_tag, &["--creds", &wrong])
                .expect_err("inspect with a wrong password must fail");
        }
    }
}

#[test]
fn no_auth_registry_serves_seeded_busybox() {
    let registry = Registry::start(Auth::None);
    seed_and_check_access(&registry, "library/busybox:1");
    assert!(registry.token_requests().is_empty());
}

#[test]
fn basic_auth_registry_requires_credentials() {
    let registry = Registry::start(Auth::basic("alice", "s3cret"));
    seed_and_check_access(&registry, "basic/busybox:v1");
    let (status, headers, _) = raw_request(&registry.host(), "GET", "/v2/", &[], b"");
    assert_eq!(status, 401);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v.starts_with("Basic")));
}

#[test]
fn token_auth_registry_requires_a_token_from_the_issuer() {
    let registry = Registry::start(Auth::token("bob", "hunter2"));
    seed_and_check_access(&registry, "tok/busybox:v1");
    let (status, headers, _) = raw_request(&registry.host(), "GET", "/v2/", &[], b"");
    assert_eq!(status, 401);
    let challenge = headers
        .iter()
        .find(|(k, _)| k == "www-authenticate")
        .map(|(_, v)| v.clone())
        .expect("challenge");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(challenge.contains("service=\"kiln-test\""), "{challenge}");

    let requests = registry.token_requests();
    assert!(
        requests.iter().any(|r| r.contains("user=bob")
            && r.contains("scope=repository:tok/busybox:")
            && r.contains("push")
            && r.ends_with("granted")),
        "no granted push-scope request for the seeded repository: {requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("user=anonymous") && r.ends_with("granted")),
        "the anonymous inspect should have got an (empty) token: {requests:#?}"
    );
    assert!(
        requests.iter().any(|r| r.ends_with("-> 401")),
        "the wrong password should have been refused: {requests:#?}"
    );
}

/// The OAuth2 POST flow (password grant, then refresh-token grant) yields tokens that
/// the real registry accepts, and anonymous tokens grant nothing.
#[test]
fn token_issuer_post_flow_tokens_are_accepted_by_the_registry() {
    let registry = Registry::start(Auth::token("carol", "pw"));
    registry.seed_busybox("post/busybox:v1");
    let realm = registry.token_realm().expect("token realm");
    let issuer = realm
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix("/token"))
        .expect("realm shape");
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let post = |body: &str| -> serde_json::Value {
        let (status, _, body) = raw_request(issuer, "POST", "/token", &form, body.as_bytes());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).expect("token JSON")
    };
    let scope = "repository%3Apost%2Fbusybox%3Apull";
    let first = post(&format!(
        "grant_type=password&username=carol&password=pw&service=kiln-test&scope={scope}"
    ));
    let refresh = first["refresh_token"].as_str().expect("refresh token");
    let second = post(&format!(
        "grant_type=refresh_token&refresh_token={refresh}&service=kiln-test&scope={scope}"
    ));
    let manifest_path = "/v2/post/busybox/manifests/v1";
    let accept = "application/vnd.oci.image.manifest.v1+json";
    for token in [&first["access_token"], &second["token"]] {
        let bearer = format!("Bearer {}", token.as_str().expect("token string"));
        let (status, headers, _) = raw_request(
            &registry.host(),
            "GET",
            manifest_path,
            &[("Authorization", &bearer), ("Accept", accept)],
            b"",
        );
        assert_eq!(status, 200, "registry log:\n{}", registry.log());
        assert!(headers
            .iter()
            .any(|(k, v)| k == "docker-content-digest" && v == BUSYBOX_DIGEST));
    }

    let (status, _, _) = raw_request(
        issuer,
        "POST",
        "/token",
        &form,
        b"grant_type=password&username=carol&password=nope&service=kiln-test",
    );
    assert_eq!(status, 401);

    // An anonymous GET token is issued but grants nothing.
    let (status, _, body) = raw_request(
        issuer,
        "GET",
        &format!("/token?service=kiln-test&scope={scope}"),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let anonymous: serde_json::Value = serde_json::from_slice(&body).expect("token JSON");
    let bearer = format!("Bearer {}", anonymous["token"].as_str().unwrap());
    let (status, _, _) = raw_request(
        &registry.host(),
        "GET",
        manifest_path,
        &[("Authorization", &bearer), ("Accept", accept)],
        b"",
    );
    assert_eq!(status, 401);
}

#[test]
fn killed_and_restarted_registry_keeps_its_storage() {
    let mut registry = Registry::start(Auth::None);
    registry.seed_busybox("keep/busybox:v1");
    let host = registry.host();
    registry.kill();
    let out = skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--no-creds",
        "--retry-times=0",
        &format!("docker://{host}/keep/busybox:v1"),
    ]);
    assert!(!out.status.success(), "a killed registry must not answer");
    registry.restart();
    assert_eq!(registry.host(), host, "restart keeps the port");
    let digest = inspect(&registry, "keep/busybox:v1", &["--no-creds"]).expect("inspect");
    assert_eq!(digest, BUSYBOX_DIGEST);
    // And it still accepts pushes after the restart.
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--src-tls-verify=false",
        &format!("docker://{host}/keep/busybox:v1"),
        &format!("docker://{host}/keep/busybox:v2"),
    ]);
}

#[test]
fn fake_registry_serves_what_it_is_given_and_fails_on_demand() {
    let fake = FakeRegistry::start();
    let (status, headers, _) = raw_request(&fake.host(), "GET", "/v2/", &[], b"");
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "docker-distribution-api-version" && v == "registry/2.0"));

    // A blob served under a digest it does not have.
    let digest = support::sha256_digest(b"the real content");
    fake.add_blob("lib/app", &digest, b"corrupt!");
    let blob_path = format!("/v2/lib/app/blobs/{digest}");
    let (status, headers, body) = raw_request(&fake.host(), "GET", &blob_path, &[], b"");
    assert_eq!((status, body.as_slice()), (200, &b"corrupt!"[..]));
    assert!(headers
        .iter()
        .any(|(k, v)| k == "docker-content-digest" && *v == digest));
    let (status, headers, body) = raw_request(&fake.host(), "HEAD", &blob_path, &[], b"");
    assert_eq!(status, 200);
    assert!(body.is_empty());
    assert!(headers
        .iter()
        .any(|(k, v)| k == "content-length" && v == "8"));

    let manifest = br#"{"schemaVersion":2}"#;
    let media_type = "application/vnd.oci.image.manifest.v1+json";
    fake.add_manifest("lib/app", "v1", media_type, manifest);
    for reference in ["v1".to_string(), support::sha256_digest(manifest)] {
        let path = format!("/v2/lib/app/manifests/{reference}");
        let (status, headers, body) = raw_request(&fake.host(), "GET", &path, &[], b"");
        assert_eq!((status, body.as_slice()), (200, &manifest[..]));
        assert!(headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == media_type));
        assert!(headers
            .iter()
            .any(|(k, v)| k == "docker-content-digest" && *v == support::sha256_digest(manifest)));
    }
    let (status, _, _) = raw_request(&fake.host(), "GET", "/v2/lib/app/manifests/v9", &[], b"");
    assert_eq!(status, 404);

    fake.fail_next(1, 503);
    let (status, _, _) = raw_request(&fake.host(), "GET", &blob_path, &[], b"");
    assert_eq!(status, 503);
    let (status, _, body) = raw_request(&fake.host(), "GET", &blob_path, &[], b"");
    assert_eq!((status, body.as_slice()), (200, &b"corrupt!"[..]));

    let requests = fake.requests();
    assert_eq!(requests.first().map(String::as_str), Some("GET /v2/"));
    assert_eq!(
        requests
            .iter()
            .filter(|r| **r == format!("GET {blob_path}"))
            .count(),
        3
    );
}

#[test]
fn fake_registry_can_demand_basic_auth() {
    let fake = FakeRegistry::start();
    fake.add_blob("a", "sha256:00", b"x");
    fake.require_basic_auth("fake-realm");
    let (status, headers, _) = raw_request(&fake.host(), "GET", "/v2/a/blobs/sha256:00", &[], b"");
    assert_eq!(status, 401);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "www-authenticate" && v == "Basic realm=\"fake-realm\""));
    let auth = [("Authorization", "Basic dTpw")];
    let (status, _, body) = raw_request(&fake.host(), "GET", "/v2/a/blobs/sha256:00", &auth, b"");
    assert_eq!((status, body.as_slice()), (200, &b"x"[..]));
    assert_eq!(
        fake.authorizations(),
        vec![None, Some("Basic dTpw".to_string())]
    );
}

#[test]
fn skopeo_can_pull_from_the_fake_registry() {
    // The fake speaks enough of the protocol for a real client: serve busybox from the
    // layout and let skopeo copy it into a fresh OCI layout.
    let layout = std::path::Path::new(support::BUSYBOX_LAYOUT);
    let fake = FakeRegistry::start();
    let manifest =
        std::fs::read(layout.join("blobs/sha256").join(&BUSYBOX_DIGEST[7..])).expect("manifest");
    let parsed: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    fake.add_manifest(
        "bb",
        "latest",
        parsed["mediaType"].as_str().expect("mediaType"),
        &manifest,
    );
    let config = parsed["config"]["digest"]
        .as_str()
        .expect("config")
        .to_string();
    let layers = parsed["layers"].as_array().expect("layers").iter();
    for digest in layers
        .map(|l| l["digest"].as_str().expect("layer digest").to_string())
        .chain([config])
    {
        let bytes = std::fs::read(layout.join("blobs/sha256").join(&digest[7..])).expect("blob");
        fake.add_blob("bb", &digest, &bytes);
    }
    let out = tempfile::tempdir().expect("temp dir");
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        "--src-no-creds",
        &format!("docker://{}/bb:latest", fake.host()),
        &format!("oci:{}:latest", out.path().join("copy").display()),
    ]);
    assert!(fake
        .requests()
        .contains(&"GET /v2/bb/manifests/latest".to_string()));
}

#[test]
#[should_panic(expected = "not installed")]
fn missing_tools_panic_instead_of_skipping() {
    support::require_tool("kiln-no-such-tool");
}
