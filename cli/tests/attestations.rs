//! Attestations as buildx attaches them (`--provenance`, `--sbom`,
//! `--attest`): pushed to a real registry (Debian's docker-registry 2.8)
//! and read back with skopeo: the index with its attestation manifest and
//! buildx's annotations, the provenance's materials and what it must never
//! hold (a secret's value), the SBOM of a Debian image against what
//! `dpkg-query` lists inside it, apk's database in a scratch image, OCI
//! 1.1 referrers with the fallback tag, and a plain image when they are
//! turned off.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::collections::BTreeSet;
use std::path::Path;
use support::{skopeo_ok, Auth, Registry, BUSYBOX_DIGEST};

const SECRET: &str = "s3cr3t-VALUE-never-in-attestations";

const DOCKERFILE: &str = "FROM busybox\n\
    ARG VERSION=0\n\
    COPY app /app\n\
    RUN --mount=type=secret,id=token cat /run/secrets/token | wc -c > /token-length\n";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The raw manifest (or index) at `reference` (`host/repo:tag` or
/// `host/repo@digest`), as skopeo reads it.
fn raw(reference: &str) -> (serde_json::Value, String) {
    let text = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]);
    (
        json(&text),
        format!("sha256:{}", sha256_hex(text.as_bytes())),
    )
}

/// The blobs of the manifest at `reference`, copied by skopeo (which
/// checks every digest) into an OCI layout under `dir`.
fn blob(dir: &Path, reference: &str, digest: &str) -> Vec<u8> {
    let layout = dir.join(format!("copy-{}", &sha256_hex(reference.as_bytes())[..12]));
    if !layout.exists() {
        skopeo_ok(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{reference}"),
            &format!("oci:{}:x", s(&layout)),
        ]);
    }
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    std::fs::read(layout.join("blobs/sha256").join(hex)).expect("blob in the copy")
}

fn context(env: &Env) -> std::path::PathBuf {
    let ctx = env.context(
        "ctx",
        &[
            ("Dockerfile", DOCKERFILE),
            ("app/requirements.txt", "requests==2.31.0\nflask>=2\n"),
        ],
    );
    std::fs::write(env.path("token"), SECRET).expect("secret");
    ctx
}

/// The platform image and the attestation manifest of a one-platform
/// index, checked for buildx's shape.
fn attested_index(index: &serde_json::Value) -> (String, String) {
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 2, "{index}");
    let image = &manifests[0];
    assert_eq!(image["platform"]["os"], "linux");
    let att = &manifests[1];
    assert_eq!(att["platform"]["os"], "unknown");
    assert_eq!(att["platform"]["architecture"], "unknown");
    assert_eq!(
        att["annotations"]["vnd.docker.reference.type"],
        "attestation-manifest"
    );
    assert_eq!(
        att["annotations"]["vnd.docker.reference.digest"],
        image["digest"]
    );
    (
        image["digest"].as_str().expect("d").to_string(),
        att["digest"].as_str().expect("d").to_string(),
    )
}

#[test]
fn a_push_gets_min_provenance_by_default_and_max_on_request() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let secret = format!("id=token,src={}", s(&env.path("token")));
    let name = format!("{}/team/app:min", registry.host());
    env.ok(
        &[
            "build",
            "--push",
            "-t",
            &name,
            "--secret",
            &secret,
            "--build-arg",
            "VERSION=1.2.3",
            s(&ctx),
        ],
        None,
    );
    let (index, _) = raw(&name);
    let (image, att) = attested_index(&index);
    let repo = format!("{}/team/app", registry.host());
    let (manifest, _) = raw(&format!("{repo}@{att}"));
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "min provenance only: {manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.in-toto+json");
    assert_eq!(
        layers[0]["annotations"]["in-toto.io/predicate-type"],
        "https://slsa.dev/provenance/v0.2"
    );
    let bytes = blob(
        env.dir.path(),
        &format!("{repo}@{att}"),
        layers[0]["digest"].as_str().expect("d"),
    );
    let text = String::from_utf8(bytes).expect("utf-8");
    assert!(!text.contains(SECRET), "the secret's value leaked: {text}");
    let statement = json(&text);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v0.1");
    assert_eq!(
        statement["predicateType"],
        "https://slsa.dev/provenance/v0.2"
    );
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"],
        image.strip_prefix("sha256:").expect("sha256")
    );
    let p = &statement["predicate"];
    assert_eq!(p["buildType"], "https://mobyproject.org/buildkit@v1");
    assert_eq!(p["invocation"]["parameters"]["frontend"], "dockerfile.v0");
    assert_eq!(p["invocation"]["configSource"]["entryPoint"], "Dockerfile");
    assert_eq!(
        p["invocation"]["configSource"]["digest"]["sha256"],
        sha256_hex(DOCKERFILE.as_bytes())
    );
    let materials = p["materials"].as_array().expect("materials");
    assert!(
        materials.iter().any(|m| m["uri"]
            .as_str()
            .is_some_and(|u| u.starts_with("pkg:docker/busybox@latest"))
            && m["digest"]["sha256"] == BUSYBOX_DIGEST.trim_start_matches("sha256:")),
        "the base image by digest: {materials:?}"
    );
    // min mode: no build args, no Dockerfile text, no steps.
    assert!(
        p["invocation"]["parameters"]["args"]["build-arg:VERSION"].is_null(),
        "{p}"
    );
    assert!(p["buildConfig"].is_null());
    assert!(p["metadata"]["buildStartedOn"].as_str().is_some());

    let name = format!("{}/team/app:max", registry.host());
    env.ok(
        &[
            "build",
            "--provenance=mode=max,builder-id=https://ci.example/run/7",
            "--push",
            "-t",
            &name,
            "--secret",
            &secret,
            "--build-arg",
            "VERSION=1.2.3",
            s(&ctx),
        ],
        None,
    );
    let (index, _) = raw(&name);
    let (_, att) = attested_index(&index);
    let (manifest, _) = raw(&format!("{repo}@{att}"));
    let digest = manifest["layers"][0]["digest"].as_str().expect("d");
    let text =
        String::from_utf8(blob(env.dir.path(), &format!("{repo}@{att}"), digest)).expect("utf-8");
    assert!(!text.contains(SECRET), "the secret's value leaked: {text}");
    let p = &json(&text)["predicate"];
    assert_eq!(p["builder"]["id"], "https://ci.example/run/7");
    assert_eq!(
        p["invocation"]["parameters"]["args"]["build-arg:VERSION"],
        "1.2.3"
    );
    assert_eq!(p["invocation"]["environment"]["platform"], "linux/amd64");
    assert_eq!(p["metadata"]["completeness"]["parameters"], true);
    assert!(p["buildConfig"]["kilnDefinition"]["vertices"]
        .as_array()
        .is_some_and(|v| v.len() >= 3));
    let source =
        &p["metadata"]["https://mobyproject.org/buildkit@v1#metadata"]["source"]["infos"][0];
    assert_eq!(source["filename"], "Dockerfile");
    // The secret's id is a mount's name in the steps; its value is nowhere.
    assert!(text.contains("\"token\""));
}

#[test]
fn provenance_and_sbom_false_push_a_plain_image() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let secret = format!("id=token,src={}", s(&env.path("token")));
    let name = format!("{}/plain:1", registry.host());
    env.ok(
        &[
            "build",
            "--provenance=false",
            "--sbom=false",
            "--push",
            "-t",
            &name,
            "--secret",
            &secret,
            s(&ctx),
        ],
        None,
    );
    let (manifest, _) = raw(&name);
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    // BUILDX_NO_DEFAULT_ATTESTATIONS turns the push default off too.
    let out = env.run_env(
        &["build", "--push", "-t", &name, "--secret", &secret, s(&ctx)],
        None,
        &[("BUILDX_NO_DEFAULT_ATTESTATIONS", "1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        raw(&name).0["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
}

#[test]
fn sbom_and_provenance_in_the_store_and_an_oci_layout() {
    let env = Env::new();
    let ctx = context(&env);
    let secret = format!("id=token,src={}", s(&env.path("token")));
    let layout = env.path("layout");
    env.ok(
        &[
            "build",
            "--sbom=true",
            "--attest",
            "type=provenance,mode=max",
            "-t",
            "app:1",
            "-o",
            "type=image",
            "-o",
            &format!("type=oci,dest={},tar=false", s(&layout)),
            "--secret",
            &secret,
            s(&ctx),
        ],
        None,
    );
    let (table, _) = env.ok(&["inspect", "--attestations", "app:1"], None);
    assert!(
        table.contains("provenance") && table.contains("https://slsa.dev/provenance/v0.2"),
        "{table}"
    );
    assert!(
        table.contains("sbom") && table.contains("https://spdx.dev/Document"),
        "{table}"
    );
    let (text, _) = env.ok(
        &["inspect", "--attestations", "--format", "json", "app:1"],
        None,
    );
    assert!(!text.contains(SECRET));
    let list = json(&text);
    let sbom = list
        .as_array()
        .expect("list")
        .iter()
        .find(|a| a["type"] == "sbom")
        .expect("an sbom");
    let doc = &sbom["statement"]["predicate"];
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    let purls: Vec<&str> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["externalRefs"][0]["referenceLocator"].as_str())
        .collect();
    assert_eq!(
        purls,
        ["pkg:pypi/requests@2.31.0"],
        "only the pinned requirement"
    );
    // The image itself still resolves and lists one platform.
    assert!(env.images().contains("linux/amd64"));
    // The OCI layout holds the same index shape.
    let index = json(&std::fs::read_to_string(layout.join("index.json")).expect("index.json"));
    let top = index["manifests"][0]["digest"]
        .as_str()
        .expect("top")
        .trim_start_matches("sha256:")
        .to_string();
    let top = json(&std::fs::read_to_string(layout.join("blobs/sha256").join(top)).expect("top"));
    attested_index(&top);
}

#[test]
fn apk_database_in_a_scratch_image() {
    let env = Env::new();
    let installed = "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\nL:MIT\no:musl\n\n\
        P:busybox\nV:1.36.1-r15\nA:x86_64\nL:GPL-2.0-only\nT:Size optimized toolbox\n\n\
        P:ca-certificates-bundle\nV:20240226-r0\nA:x86_64\nL:MPL-2.0 AND MIT\no:ca-certificates\n\n";
    let ctx = env.context(
        "apk",
        &[
            ("Dockerfile", "FROM scratch\nCOPY installed /lib/apk/db/installed\nCOPY os-release /etc/os-release\n"),
            ("installed", installed),
            ("os-release", "NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n"),
        ],
    );
    env.ok(&["build", "--sbom=true", "-t", "apk:1", s(&ctx)], None);
    let (text, _) = env.ok(
        &["inspect", "--attestations", "--format", "json", "apk:1"],
        None,
    );
    let list = json(&text);
    assert_eq!(
        list.as_array().expect("list").len(),
        1,
        "no provenance unless pushing: {list}"
    );
    let doc = &list[0]["statement"]["predicate"];
    let got: BTreeSet<(String, String, String)> = doc["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            (
                p["externalRefs"][0]["referenceLocator"]
                    .as_str()
                    .expect("purl")
                    .to_string(),
                p["versionInfo"].as_str().expect("v").to_string(),
                p["licenseDeclared"].as_str().expect("l").to_string(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        ("pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1", "1.36.1-r15", "GPL-2.0-only"),
        ("pkg:apk/alpine/ca-certificates-bundle@20240226-r0?arch=x86_64&upstream=ca-certificates&distro=alpine-3.19.1", "20240226-r0", "MPL-2.0 AND MIT"),
        ("pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1", "1.2.4_git20230717-r4", "MIT"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(got, want);
    // A docker archive gets none, as with buildx's docker exporter.
    let (_, err) = env.ok(
        &[
            "build",
            "--sbom=true",
            "-o",
            &format!("type=docker,dest={}", s(&env.path("d.tar"))),
            s(&ctx),
        ],
        None,
    );
    assert!(err.contains("gets no attestations"), "{err}");
}

#[test]
fn oci_artifact_attaches_referrers_under_the_fallback_tag() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = context(&env);
    let secret = format!("id=token,src={}", s(&env.path("token")));
    let name = format!("{}/ref:1", registry.host());
    env.ok(
        &[
            "build",
            "--attest",
            "type=sbom,oci-artifact=true",
            "--attest",
            "type=provenance,mode=min",
            "--push",
            "-t",
            &name,
            "--secret",
            &secret,
            s(&ctx),
        ],
        None,
    );
    // The image stays a plain manifest.
    let (manifest, digest) = raw(&name);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // OCI 1.1's tag schema: `sha256-<hex>` lists the referrers.
    let fallback = format!(
        "{}/ref:sha256-{}",
        registry.host(),
        digest.trim_start_matches("sha256:")
    );
    let (index, _) = raw(&fallback);
    let referrers = index["manifests"].as_array().expect("referrers");
    let mut types = BTreeSet::new();
    for r in referrers {
        assert_eq!(r["artifactType"], "application/vnd.in-toto+json");
        let (m, _) = raw(&format!(
            "{}/ref@{}",
            registry.host(),
            r["digest"].as_str().expect("d")
        ));
        assert_eq!(m["subject"]["digest"], digest.as_str(), "{m}");
        assert_eq!(m["artifactType"], "application/vnd.in-toto+json");
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.oci.empty.v1+json"
        );
        types.insert(
            m["layers"][0]["annotations"]["in-toto.io/predicate-type"]
                .as_str()
                .expect("t")
                .to_string(),
        );
    }
    assert_eq!(
        types,
        [
            "https://slsa.dev/provenance/v0.2",
            "https://spdx.dev/Document"
        ]
        .iter()
        .map(|t| t.to_string())
        .collect::<BTreeSet<_>>()
    );
}

#[test]
fn bad_attestation_values_name_their_flag() {
    let env = Env::new();
    let ctx = context(&env);
    for (args, want) in [
        (vec!["--provenance=mode=most"], "--provenance"),
        (vec!["--attest", "type=signature"], "--attest"),
        (vec!["--sbom=maybe"], "--sbom"),
    ] {
        let mut all = vec!["build"];
        all.extend(args.iter().copied());
        all.push(s(&ctx));
        let err = env.fails(&all, None);
        assert!(err.contains(want) && err.lines().count() <= 2, "{err}");
    }
}

/// The Debian base `.ci/run` makes (`KILN_ENGINE_DEBIAN`: `LAYOUT:TAG`).
fn debian() -> Option<String> {
    match std::env::var("KILN_ENGINE_DEBIAN") {
        Ok(v) => Some(v),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set KILN_ENGINE_DEBIAN (.ci/run does)"
            );
            eprintln!("skipped: set KILN_ENGINE_DEBIAN (an OCI layout:tag of a Debian base); .ci/run does");
            None
        }
    }
}

#[test]
fn sbom_of_a_debian_image_lists_what_dpkg_shows() {
    let Some(debian) = debian() else { return };
    let env = Env::new();
    let ctx = env.context(
        "deb",
        &[(
            "Dockerfile",
            "FROM debian:bookworm-slim\n\
             RUN dpkg-query -W -f '${db:Status-Abbrev} ${Package} ${Version}\\n' > /dpkg.txt\n",
        )],
    );
    let layout = std::path::absolute(&debian).expect("absolute");
    let out = env.path("out");
    env.ok(
        &[
            "build",
            "--progress=plain",
            "--sbom=true",
            "--build-context",
            &format!("debian:bookworm-slim=oci-layout://{}", s(&layout)),
            "-t",
            "deb:1",
            "-o",
            "type=image",
            "-o",
            &format!("type=local,dest={}", s(&out)),
            s(&ctx),
        ],
        None,
    );
    let dpkg: BTreeSet<(String, String)> = std::fs::read_to_string(out.join("dpkg.txt"))
        .expect("dpkg.txt")
        .lines()
        .filter_map(|l| l.strip_prefix("ii "))
        .filter_map(|l| l.trim().split_once(' '))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert!(dpkg.len() > 50, "dpkg lists a Debian base: {}", dpkg.len());
    let (text, _) = env.ok(
        &["inspect", "--attestations", "--format", "json", "deb:1"],
        None,
    );
    let list = json(&text);
    let doc = &list[0]["statement"]["predicate"];
    let packages = doc["packages"].as_array().expect("packages");
    let sbom: BTreeSet<(String, String)> = packages
        .iter()
        .filter(|p| {
            p["externalRefs"][0]["referenceLocator"]
                .as_str()
                .is_some_and(|u| u.starts_with("pkg:deb/"))
        })
        .map(|p| {
            (
                p["name"].as_str().expect("n").to_string(),
                p["versionInfo"].as_str().expect("v").to_string(),
            )
        })
        .collect();
    assert_eq!(sbom, dpkg, "the SBOM lists exactly what dpkg shows");
    let bash = packages.iter().find(|p| p["name"] == "bash").expect("bash");
    let purl = bash["externalRefs"][0]["referenceLocator"]
        .as_str()
        .expect("purl");
    assert!(
        purl.starts_with("pkg:deb/debian/bash@")
            && purl.contains("arch=amd64")
            && purl.contains("distro=debian-12"),
        "{purl}"
    );
    assert!(
        packages
            .iter()
            .filter(|p| p["licenseDeclared"] != "NOASSERTION")
            .count()
            > 10,
        "licenses from the copyright files"
    );
}

#[test]
fn each_platform_of_an_index_gets_its_own_attestation_manifest() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context(
        "multi",
        &[
            (
                "Dockerfile",
                "FROM --platform=$BUILDPLATFORM busybox AS build\n\
                 ARG TARGETARCH\n\
                 RUN echo \"$TARGETARCH\" > /arch\n\
                 FROM scratch\n\
                 COPY --from=build /arch /arch\n\
                 COPY go.sum /src/go.sum\n",
            ),
            ("go.sum", "golang.org/x/text v0.14.0 h1:abc=\n"),
        ],
    );
    let name = format!("{}/multi:1", registry.host());
    env.ok(
        &[
            "build",
            "--platform",
            "linux/amd64,linux/arm64",
            "--sbom=true",
            "--push",
            "-t",
            &name,
            s(&ctx),
        ],
        None,
    );
    let (index, _) = raw(&name);
    let manifests = index["manifests"].as_array().expect("manifests");
    assert_eq!(manifests.len(), 4, "{index}");
    let repo = format!("{}/multi", registry.host());
    for arch in ["amd64", "arm64"] {
        let image = manifests
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .expect("the platform's image");
        let att = manifests
            .iter()
            .find(|m| m["annotations"]["vnd.docker.reference.digest"] == image["digest"])
            .expect("its attestation manifest");
        assert_eq!(att["platform"]["os"], "unknown");
        let at = format!("{repo}@{}", att["digest"].as_str().expect("d"));
        let (manifest, _) = raw(&at);
        let layers = manifest["layers"].as_array().expect("layers");
        let types: Vec<&str> = layers
            .iter()
            .filter_map(|l| l["annotations"]["in-toto.io/predicate-type"].as_str())
            .collect();
        assert_eq!(
            types,
            [
                "https://slsa.dev/provenance/v0.2",
                "https://spdx.dev/Document"
            ],
            "push default plus --sbom"
        );
        let sbom = json(
            &String::from_utf8(blob(
                env.dir.path(),
                &at,
                layers[1]["digest"].as_str().expect("d"),
            ))
            .expect("utf-8"),
        );
        assert!(sbom["subject"][0]["name"]
            .as_str()
            .is_some_and(|n| n.ends_with(&format!("platform=linux%2F{arch}"))));
        assert_eq!(
            sbom["predicate"]["packages"][0]["externalRefs"][0]["referenceLocator"],
            "pkg:golang/golang.org/x/text@v0.14.0"
        );
    }
}

#[test]
fn a_git_context_is_a_material_with_its_commit() {
    use support::{git, GitServer};
    let server = GitServer::start();
    let env = Env::new();
    let work = env.path("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    std::fs::write(work.join("Dockerfile"), "FROM busybox\nCOPY a.txt /a.txt\n").expect("write");
    std::fs::write(work.join("a.txt"), "a\n").expect("write");
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "one"]);
    let commit = git(&work, &["rev-parse", "HEAD"]).trim().to_string();
    server.publish("repo", &work);
    let url = server.git_url("repo");
    env.ok(&["build", "--provenance=true", "-t", "git:1", &url], None);
    let (text, _) = env.ok(
        &["inspect", "--attestations", "--format", "json", "git:1"],
        None,
    );
    let p = &json(&text)[0]["statement"]["predicate"];
    let materials = p["materials"].as_array().expect("materials");
    assert!(
        materials
            .iter()
            .any(|m| m["uri"] == url.as_str() && m["digest"]["sha1"] == commit.as_str()),
        "{materials:?}"
    );
    assert_eq!(p["invocation"]["configSource"]["uri"], url.as_str());
}

/// An rpm package spec with an empty payload.
fn spec(name: &str, version: &str, epoch: Option<u32>, license: &str) -> String {
    let epoch = epoch.map(|e| format!("Epoch: {e}\n")).unwrap_or_default();
    format!(
        "Name: {name}\nVersion: {version}\nRelease: 1\n{epoch}Summary: test\nLicense: {license}\n\
         BuildArch: noarch\n%description\ntest\n%files\n"
    )
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn sbom_reads_rpms_sqlite_database() {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join("rpmbuild").is_file()));
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have rpm (.ci/run installs it)"
        );
        eprintln!("skipped: rpm's rpmbuild is not installed (apt-get install rpm)");
        return;
    }
    let env = Env::new();
    let top = env.path("rpmbuild");
    let db = env.path("rpmdb");
    run("rpm", &["--initdb", "--dbpath", s(&db)]);
    for (name, version, epoch, license) in [
        ("kiln-demo", "1.2", Some(2), "MIT"),
        ("kiln-other", "0.9", None, "Apache-2.0 OR MIT"),
    ] {
        let file = env.path(&format!("{name}.spec"));
        std::fs::write(&file, spec(name, version, epoch, license)).expect("spec");
        run(
            "rpmbuild",
            &[
                "-bb",
                "--quiet",
                "--define",
                &format!("_topdir {}", s(&top)),
                s(&file),
            ],
        );
        let rpm = top.join(format!("RPMS/noarch/{name}-{version}-1.noarch.rpm"));
        run(
            "rpm",
            &["-i", "--justdb", "--nodeps", "--dbpath", s(&db), s(&rpm)],
        );
    }
    let listed: BTreeSet<String> = run(
        "rpm",
        &[
            "-qa",
            "--dbpath",
            s(&db),
            "--qf",
            "%{NAME} %|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\n",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let ctx = env.context(
        "rpm",
        &[
            (
                "Dockerfile",
                "FROM scratch\nCOPY rpmdb/ /var/lib/rpm/\nCOPY os-release /etc/os-release\n",
            ),
            ("os-release", "ID=fedora\nVERSION_ID=40\n"),
        ],
    );
    let copy = ctx.join("rpmdb");
    std::fs::create_dir_all(&copy).expect("mkdir");
    for f in ["rpmdb.sqlite", "rpmdb.sqlite-wal"] {
        if db.join(f).exists() {
            std::fs::copy(db.join(f), copy.join(f)).expect("copy");
        }
    }
    env.ok(&["build", "--sbom=true", "-t", "rpm:1", s(&ctx)], None);
    let (text, _) = env.ok(
        &["inspect", "--attestations", "--format", "json", "rpm:1"],
        None,
    );
    let packages = json(&text)[0]["statement"]["predicate"]["packages"].clone();
    let packages = packages.as_array().expect("packages");
    let got: BTreeSet<String> = packages
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().expect("n"),
                p["versionInfo"].as_str().expect("v")
            )
        })
        .collect();
    assert_eq!(got, listed, "the SBOM lists what rpm -qa lists");
    let demo = packages
        .iter()
        .find(|p| p["name"] == "kiln-demo")
        .expect("demo");
    assert_eq!(
        demo["externalRefs"][0]["referenceLocator"],
        "pkg:rpm/fedora/kiln-demo@1.2-1?arch=noarch&epoch=2&upstream=kiln-demo-1.2-1.src.rpm&distro=fedora-40"
    );
    let other = packages
        .iter()
        .find(|p| p["name"] == "kiln-other")
        .expect("other");
    assert_eq!(other["licenseDeclared"], "Apache-2.0 OR MIT");
}

#[test]
fn referrers_in_the_store_and_oci_media_types_forced() {
    let env = Env::new();
    let ctx = context(&env);
    let secret = format!("id=token,src={}", s(&env.path("token")));
    env.ok(
        &[
            "build",
            "--attest",
            "type=provenance,oci-artifact=true",
            "-t",
            "ref:1",
            "--secret",
            &secret,
            s(&ctx),
        ],
        None,
    );
    let (table, _) = env.ok(&["inspect", "--attestations", "ref:1"], None);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("provenance") && l.contains("referrer")),
        "{table}"
    );
    let (image, _) = env.ok(&["inspect", "ref:1"], None);
    assert!(
        json(&image)["Index"].is_null(),
        "the image stays a manifest"
    );
    // As BuildKit: attestations turn OCI media types on.
    env.ok(
        &[
            "build",
            "--sbom=true",
            "-o",
            "type=image,oci-mediatypes=false",
            "-t",
            "docker-types:1",
            "--secret",
            &secret,
            s(&ctx),
        ],
        None,
    );
    let (image, _) = env.ok(&["inspect", "docker-types:1"], None);
    let image = json(&image);
    assert_eq!(
        image["MediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        image["Index"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
}
