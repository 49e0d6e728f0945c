//! `--cache-to` / `--cache-from`: a build exports its cache to a real
//! registry (Debian's docker-registry) or an OCI layout directory, skopeo
//! reads what was written, and a build on an empty store reuses it, step
//! by step, making the same layers.

use kiln_test_support as support;

mod common;

use common::{s, Env};
use std::collections::BTreeSet;
use support::{skopeo_ok, Auth, Registry};

/// A builder stage whose RUN only a `mode=max` cache keeps, and a final
/// stage that copies from it and runs a step of its own.
const DOCKERFILE: &str = "FROM busybox AS builder\n\
    RUN echo built > /out.txt\n\
    FROM busybox\n\
    COPY --from=builder /out.txt /app/\n\
    RUN cat /app/out.txt > /app/copy.txt\n";

/// The names of the steps `--progress plain` marked CACHED, and of those
/// it ran.
fn cached_and_run(log: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut names = std::collections::BTreeMap::new();
    let mut cached = BTreeSet::new();
    let mut run = BTreeSet::new();
    for line in log.lines() {
        let Some(rest) = line.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if text.starts_with('[') && !text.starts_with("[internal]") {
            names
                .entry(n.to_string())
                .or_insert_with(|| text.to_string());
        } else if text == "CACHED" {
            if let Some(name) = names.get(n) {
                cached.insert(name.clone());
            }
        } else if text.starts_with("DONE") {
            if let Some(name) = names.get(n) {
                run.insert(name.clone());
            }
        }
    }
    (cached, run)
}

/// Runs `kiln build --progress plain ARGS... CTX` and returns its log.
fn plain_build(env: &Env, args: &[&str], ctx: &std::path::Path) -> String {
    let mut all = vec!["build", "--progress", "plain"];
    all.extend_from_slice(args);
    all.push(s(ctx));
    env.ok(&all, None).1
}

/// The layer diff ids of image `name` in `env`'s store.
fn diff_ids(env: &Env, name: &str) -> Vec<String> {
    let (out, _) = env.ok(&["inspect", name], None);
    let v: serde_json::Value = serde_json::from_str(&out).expect("inspect json");
    v["Config"]["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn registry_cache_max_lets_an_empty_store_skip_every_step() {
    let registry = Registry::start(Auth::None);
    let cache = format!("{}/team/app:buildcache", registry.host());
    let first = Env::new();
    let ctx = first.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    first.ok(
        &[
            "build",
            "--progress",
            "plain",
            "--cache-to",
            &format!("type=registry,ref={cache},mode=max"),
            "-t",
            "app:1",
            s(&ctx),
        ],
        None,
    );
    // skopeo reads the cache manifest: kiln's cache config, three layers.
    let raw = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{cache}"),
    ]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).expect("manifest");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.kiln.cache.config.v1+json"
    );
    assert_eq!(
        manifest["layers"].as_array().map(Vec::len),
        Some(3),
        "{raw}"
    );

    let second = Env::new();
    let ctx2 = second.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let log = plain_build(
        &second,
        &[
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "-t",
            "app:1",
        ],
        &ctx2,
    );
    let (cached, run) = cached_and_run(&log);
    assert_eq!(cached.len(), 3, "cached {cached:?}, ran {run:?}:\n{log}");
    assert!(run.is_empty(), "ran {run:?}:\n{log}");
    assert_eq!(diff_ids(&first, "app:1"), diff_ids(&second, "app:1"));
    // Only the image's two layers were downloaded: the builder's RUN layer
    // stayed in the registry, since the COPY from it hit too.
    let fetched: Vec<bool> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| {
            let digest = l["digest"].as_str().unwrap_or_default();
            let hex = digest.trim_start_matches("sha256:");
            second.path("store").join("blobs/sha256").join(hex).exists()
        })
        .collect();
    assert_eq!(fetched.iter().filter(|f| **f).count(), 2, "{fetched:?}");

    // The image's records are now local: without --cache-from only the
    // builder's RUN, whose layer was never fetched, runs again.
    let log = plain_build(&second, &[], &ctx2);
    let (cached, run) = cached_and_run(&log);
    assert_eq!(cached.len(), 2, "{log}");
    assert_eq!(
        run.into_iter().collect::<Vec<_>>(),
        ["[builder 1] RUN echo built > /out.txt"]
    );

    // A fresh store that imports and exports again (mode=max) fetches
    // that layer so the new cache is whole: the same three blobs.
    let third = Env::new();
    let ctx3 = third.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let again = format!("{}/team/app:buildcache2", registry.host());
    third.ok(
        &[
            "build",
            "--cache-from",
            &format!("type=registry,ref={cache}"),
            "--cache-to",
            &format!("type=registry,ref={again},mode=max"),
            s(&ctx3),
        ],
        None,
    );
    let raw2 = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{again}"),
    ]);
    let manifest2: serde_json::Value = serde_json::from_str(&raw2).expect("manifest");
    assert_eq!(manifest2["layers"], manifest["layers"], "{raw2}");
}

#[test]
fn local_cache_min_keeps_only_the_image_steps() {
    let first = Env::new();
    let dir = first.path("cache-dir");
    let ctx = first.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    first.ok(
        &[
            "build",
            "--cache-to",
            &format!("type=local,dest={}", s(&dir)),
            s(&ctx),
        ],
        None,
    );
    let raw = skopeo_ok(&["inspect", "--raw", &format!("oci:{}:latest", s(&dir))]);
    let manifest: serde_json::Value = serde_json::from_str(&raw).expect("manifest");
    // mode=min: the COPY and the final RUN, not the builder's RUN.
    assert_eq!(
        manifest["layers"].as_array().map(Vec::len),
        Some(2),
        "{raw}"
    );

    let second = Env::new();
    let ctx2 = second.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let log = plain_build(
        &second,
        &["--cache-from", &format!("type=local,src={}", s(&dir))],
        &ctx2,
    );
    let (cached, run) = cached_and_run(&log);
    assert_eq!(
        run.iter().cloned().collect::<Vec<_>>(),
        ["[builder 1] RUN echo built > /out.txt"],
        "{log}"
    );
    assert_eq!(cached.len(), 2, "{cached:?}\n{log}");
}

#[test]
fn a_missing_cache_is_noted_and_the_build_goes_on() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    let ctx = env.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let log = plain_build(
        &env,
        &[
            "--cache-from",
            &format!("{}/team/none:cache", registry.host()),
            "--cache-from",
            &format!("type=local,src={}", s(&env.path("nowhere"))),
        ],
        &ctx,
    );
    assert!(log.contains("NOTE: not used:"), "{log}");
    assert!(log.contains("team/none:cache"), "{log}");
    let stderr = env.fails(&["build", "--cache-to", "type=gha", s(&ctx)], None);
    assert!(
        stderr.contains("cache type \"gha\" is not supported"),
        "{stderr}"
    );
}

#[test]
fn an_image_pushed_with_an_inline_cache_is_its_own_cache() {
    let registry = Registry::start(Auth::None);
    let image = format!("{}/team/app:1", registry.host());
    let first = Env::new();
    let ctx = first.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    // Pushed as zstd: the records' gzip blobs are not in the registry, so
    // the importer must take the layers from the image's manifest.
    first.ok(
        &[
            "build",
            "--cache-to",
            "type=inline",
            "-o",
            &format!("type=registry,name={image},compression=zstd"),
            s(&ctx),
        ],
        None,
    );
    let config = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        "--config",
        &format!("docker://{image}"),
    ]);
    let config: serde_json::Value = serde_json::from_str(&config).expect("config");
    assert_eq!(
        config["kiln.cache.v1"]["records"].as_array().map(Vec::len),
        Some(2),
        "{config}"
    );

    let second = Env::new();
    let ctx2 = second.context("ctx", &[("Dockerfile", DOCKERFILE)]);
    let log = plain_build(&second, &["--cache-from", &image, "-t", "app:1"], &ctx2);
    let (cached, run) = cached_and_run(&log);
    // Inline is mode=min: the builder's RUN runs, the image's steps hit.
    assert_eq!(cached.len(), 2, "{log}");
    assert_eq!(
        run.into_iter().collect::<Vec<_>>(),
        ["[builder 1] RUN echo built > /out.txt"]
    );
    // The same layers as the pushed image, taken from its zstd blobs.
    let pushed: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .expect("diff_ids")
        .iter()
        .map(|d| d.as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(diff_ids(&second, "app:1"), pushed);
}
