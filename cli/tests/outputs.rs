//! Build outputs as CI uses them: pushes to a real registry (Debian's
//! docker-registry) read back by skopeo and unpacked by umoci, gzip and
//! zstd layers, Docker media types, metadata files, labels and
//! annotations, reproducible digests with SOURCE_DATE_EPOCH, and a push
//! that survives a dropped connection.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use support::{skopeo_ok, Auth, Registry};

const DOCKERFILE: &str = "FROM busybox\n\
    COPY app.txt /app/\n\
    RUN mkdir -p /data/sub && echo built > /data/sub/file && chown 7:8 /data/sub/file && \\\n\
        ln -s /data/sub/file /data/link && rm /bin/ls\n\
    LABEL from.dockerfile=yes\n";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn read_json(p: &Path) -> serde_json::Value {
    json(&std::fs::read_to_string(p).expect("read"))
}

/// path -> "type mode uid gid content" for every entry under `root`.
fn tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).sort_by_file_name() {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("prefix")
            .display()
            .to_string();
        if rel.is_empty() {
            continue;
        }
        let md = e.path().symlink_metadata().expect("md");
        let body = if md.is_file() {
            format!("{:?}", sha(&std::fs::read(e.path()).expect("read")))
        } else if md.file_type().is_symlink() {
            std::fs::read_link(e.path())
                .expect("link")
                .display()
                .to_string()
        } else {
            String::new()
        };
        out.insert(
            rel,
            format!("{:o} {} {} {body}", md.mode(), md.uid(), md.gid()),
        );
    }
    out
}

fn sha(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex(&sha2::Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn push_then_skopeo_and_umoci_see_what_local_output_wrote() {
    support::require_tool("umoci");
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE), ("app.txt", "hello\n")]);
    let local = env.path("local");
    let name = format!("{}/team/app:1", registry.host());
    let meta = env.path("meta.json");
    env.ok(
        &[
            "build",
            // buildx too pushes an index with provenance unless told not to.
            "--provenance=false",
            "--push",
            "-t",
            &name,
            "-t",
            &format!("{}/team/app:latest", registry.host()),
            "--label",
            "org.example.team=kiln",
            "--annotation",
            "org.opencontainers.image.source=https://example.com/app",
            "--metadata-file",
            s(&meta),
            "-o",
            &format!("type=local,dest={}", s(&local)),
            s(&ctx),
        ],
        None,
    );
    let meta = read_json(&meta);
    let digest = meta["containerimage.digest"]
        .as_str()
        .expect("digest")
        .to_string();
    assert!(meta["containerimage.config.digest"].as_str().is_some());
    assert_eq!(meta["containerimage.descriptor"]["digest"], digest.as_str());
    assert!(meta["image.name"].as_str().expect("names").contains(&name));

    // skopeo reads what was pushed, under both tags, with the same digest.
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{name}"),
    ]);
    let manifest = json(&raw);
    assert_eq!(format!("sha256:{}", sha(raw.as_bytes())), digest);
    assert_eq!(
        manifest["annotations"]["org.opencontainers.image.source"],
        "https://example.com/app"
    );
    let config = json(&skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--config",
        &format!("docker://{}/team/app:latest", registry.host()),
    ]));
    assert_eq!(config["config"]["Labels"]["org.example.team"], "kiln");
    assert_eq!(config["config"]["Labels"]["from.dockerfile"], "yes");
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }

    // skopeo copies it into an OCI layout and umoci unpacks it: the rootfs
    // is what the local output wrote.
    let bundle = common::unpack_from_registry(&env, &name);
    let (want, got) = (tree(&local), tree(&bundle.join("rootfs")));
    assert!(got.contains_key("data/sub/file") && !got.contains_key("bin/ls"));
    assert_eq!(want, got);
}

#[test]
fn zstd_and_uncompressed_and_docker_media_types() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE), ("app.txt", "hello\n")]);
    let cases = [
        (
            "zstd",
            "compression=zstd,force-compression=true",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "gzip9",
            "compression=gzip,compression-level=9",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "plain",
            "compression=uncompressed,force-compression=true",
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.manifest.v1+json",
        ),
        (
            "docker",
            "oci-mediatypes=false",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.docker.distribution.manifest.v2+json",
        ),
    ];
    for (tag, options, layer_type, manifest_type) in cases {
        let name = format!("{}/app:{tag}", registry.host());
        env.ok(
            &[
                "build",
                "--provenance=false",
                "-o",
                &format!("type=registry,name={name},{options}"),
                s(&ctx),
            ],
            None,
        );
        let manifest = json(&skopeo_ok(&[
            "inspect",
            "--tls-verify=false",
            "--raw",
            &format!("docker://{name}"),
        ]));
        assert_eq!(manifest["mediaType"], manifest_type, "{tag}");
        for layer in manifest["layers"].as_array().expect("layers") {
            assert_eq!(layer["mediaType"], layer_type, "{tag}");
        }
        // skopeo verifies every blob's digest while copying.
        skopeo_ok(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{name}"),
            &format!("oci:{}:x", s(&env.path(&format!("copy-{tag}")))),
        ]);
        // kiln reads it back and builds on it.
        env.ok(&["pull", &name], None);
        let next = env.context(
            &format!("next-{tag}"),
            &[(
                "Dockerfile",
                &format!("FROM {name}\nRUN cat /data/sub/file /app/app.txt > /both\n"),
            )],
        );
        let out = env.path(&format!("out-{tag}"));
        env.ok(&["build", "-o", s(&out), s(&next)], None);
        assert_eq!(
            std::fs::read_to_string(out.join("both")).expect("read"),
            "built\nhello\n"
        );
    }
    // A docker tarball holds plain layer tars, whatever the layers' blobs.
    let tarball = env.path("zstd-docker.tar");
    let dest = format!("type=docker,dest={},compression=zstd", s(&tarball));
    env.ok(&["build", "-o", &dest, s(&ctx)], None);
    let info = json(&skopeo_ok(&[
        "inspect",
        &format!("docker-archive:{}", s(&tarball)),
    ]));
    assert!(
        info["Layers"].as_array().is_some_and(|l| !l.is_empty()),
        "{info}"
    );
    env.ok(&["load", "-i", s(&tarball), "-t", "from-zstd:1"], None);
    let err = env.fails(
        &[
            "build",
            "-o",
            "type=image,compression=zstd,oci-mediatypes=false",
            s(&ctx),
        ],
        None,
    );
    assert!(err.contains("oci-mediatypes"), "{err}");
    let err = env.fails(&["build", "--push", s(&ctx)], None);
    assert!(err.contains("needs a name"), "{err}");
}

#[test]
fn source_date_epoch_makes_clean_builds_reproducible() {
    let ctx_env = Env::new();
    let ctx = ctx_env.context("ctx", &[("Dockerfile", DOCKERFILE), ("app.txt", "hello\n")]);
    let mut digests = Vec::new();
    for run in 0..2 {
        // A fresh store each time, and a second apart so clocks differ.
        let env = Env::new();
        if run == 1 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let meta = env.path("meta.json");
        let oci = env.path("image.tar");
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["build", "--metadata-file", s(&meta), "-o"])
            .arg(format!("type=oci,dest={},rewrite-timestamp=true", s(&oci)))
            .arg(&ctx)
            .env("KILN_ROOT", env.path("store"))
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .expect("kiln runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = read_json(&meta);
        digests.push(
            meta["containerimage.digest"]
                .as_str()
                .expect("digest")
                .to_string(),
        );
        let config = json(&skopeo_ok(&[
            "inspect",
            "--config",
            &format!("oci-archive:{}", s(&oci)),
        ]));
        assert_eq!(config["created"], "2023-11-14T22:13:20Z");
        let history = config["history"].as_array().expect("history");
        assert_eq!(
            history.last().expect("entry")["created"],
            "2023-11-14T22:13:20Z"
        );
    }
    assert_eq!(digests[0], digests[1], "two clean builds, one digest");
    // --build-arg wins over the environment, and bad values are refused.
    let env = Env::new();
    let err = env.fails(
        &[
            "build",
            "--build-arg",
            "SOURCE_DATE_EPOCH=yesterday",
            s(&ctx),
        ],
        None,
    );
    assert!(err.contains("SOURCE_DATE_EPOCH"), "{err}");
}

/// A TCP proxy to `upstream` that cuts the first connection carrying more
/// than `cut_after` bytes from the client (a blob upload), once.
fn cutting_proxy(
    upstream: String,
    cut_after: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let cut_done = Arc::new(AtomicBool::new(false));
    let cuts = Arc::new(AtomicUsize::new(0));
    let cuts2 = cuts.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let (cut_done, cuts) = (cut_done.clone(), cuts2.clone());
            let (mut c_r, mut s_w) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut s_r, mut c_w) = (server, client);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_r, &mut c_w);
                let _ = c_w.shutdown(std::net::Shutdown::Both);
            });
            std::thread::spawn(move || {
                let mut sent = 0usize;
                let mut buf = [0u8; 16384];
                loop {
                    let n = match c_r.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    sent += n;
                    if sent > cut_after && !cut_done.swap(true, Ordering::SeqCst) {
                        cuts.fetch_add(1, Ordering::SeqCst);
                        let _ = s_w.shutdown(std::net::Shutdown::Both);
                        let _ = c_r.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    if s_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = s_w.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, cuts)
}

#[test]
fn a_push_survives_a_dropped_connection() {
    let registry = Registry::start(Auth::None);
    let (proxy, cuts) = cutting_proxy(registry.host(), 2 << 20);
    let env = Env::new();
    let ctx = env.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count=8 2>/dev/null\n",
        )],
    );
    let name = format!("{proxy}/big:1");
    let meta = env.path("meta.json");
    env.ok(
        &[
            "build",
            "--push",
            "-t",
            &name,
            "--metadata-file",
            s(&meta),
            s(&ctx),
        ],
        None,
    );
    assert_eq!(
        cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the connection was cut"
    );
    let digest = read_json(&meta)["containerimage.digest"]
        .as_str()
        .expect("d")
        .to_string();
    // The tag is complete: skopeo copies every blob (checking digests).
    let direct = format!("{}/big:1", registry.host());
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{direct}"),
    ]);
    assert_eq!(format!("sha256:{}", sha(raw.as_bytes())), digest);
    skopeo_ok(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{direct}"),
        &format!("oci:{}:x", s(&env.path("copy"))),
    ]);
}
