//! One store shared by many kiln processes at once: concurrent builds
//! sharing a base, a cache mount and a tag, with `kiln prune --all` and
//! `kiln rmi` racing them. Every round counts the builds, the failures
//! (with their messages) and the corrupt blobs; at the end the tag must
//! name a complete image.
//!
//! The CI version runs a few rounds; `cargo test -p kiln-cli --test
//! reliability -- --ignored --nocapture` runs the long one (20 rounds).

mod common;

use common::{s, Env, BUSYBOX};
use sha2::{Digest, Sha256, Sha512};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Builds started at once in every round.
const BUILDS: usize = 8;

/// The blobs under `store/blobs` whose bytes do not hash to their name,
/// and how many blobs there are.
fn corrupt_blobs(store: &Path) -> (Vec<String>, usize) {
    let mut bad = Vec::new();
    let mut count = 0;
    for algorithm in ["sha256", "sha512"] {
        let dir = store.join("blobs").join(algorithm);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("blob entry");
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = match std::fs::read(entry.path()) {
                Ok(bytes) => bytes,
                // Removed by a racing prune between listing and reading.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => panic!("{}: {e}", entry.path().display()),
            };
            count += 1;
            let hex = if algorithm == "sha256" {
                format!("{:x}", Sha256::digest(&bytes))
            } else {
                format!("{:x}", Sha512::digest(&bytes))
            };
            if hex != name {
                bad.push(format!("{algorithm}:{name}"));
            }
        }
    }
    (bad, count)
}

/// The problems with the image `name` in the store: a missing or corrupt
/// blob anywhere under it, or an unreadable manifest. `None` when the name
/// is not there at all.
fn image_problems(store: &Path, name: &str) -> Option<Vec<String>> {
    let refs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(store.join("refs.json")).expect("refs.json"))
            .expect("refs.json parses");
    let digest = refs.get(name)?.as_str().expect("a digest").to_owned();
    let mut problems = Vec::new();
    let mut todo = vec![digest];
    while let Some(digest) = todo.pop() {
        let Some((algorithm, hex)) = digest.split_once(':') else {
            problems.push(format!("bad digest {digest}"));
            continue;
        };
        let bytes = match std::fs::read(store.join("blobs").join(algorithm).join(hex)) {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(format!("{digest}: {e}"));
                continue;
            }
        };
        if format!("{:x}", Sha256::digest(&bytes)) != hex && algorithm == "sha256" {
            problems.push(format!("{digest}: corrupt"));
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
            continue; // a layer
        };
        let children = doc
            .get("manifests")
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
            .chain(doc.get("config"))
            .chain(
                doc.get("layers")
                    .and_then(|l| l.as_array())
                    .into_iter()
                    .flatten(),
            );
        for child in children {
            if let Some(d) = child.get("digest").and_then(|d| d.as_str()) {
                todo.push(d.to_owned());
            }
        }
    }
    Some(problems)
}

/// The context of build `i` in `round`: every build shares its base (an
/// `oci-layout://` context named `base`, so removing names cannot take it
/// away), a first step (so they race to commit the same cache record and
/// layer), a cache mount id and, for half of them, the tag
/// `shared:latest`.
fn context(env: &Env, round: usize, i: usize) -> std::path::PathBuf {
    let files: Vec<(String, String)> = (0..20)
        .map(|f| (format!("files/f{f}"), format!("build {i} file {f}\n")))
        .collect();
    let dockerfile = format!(
        "FROM base\n\
         RUN echo common > /common\n\
         RUN --mount=type=cache,id=shared-cache,target=/cache \
             echo {round}-{i} > /cache/b{i} && ls /cache > /seen\n\
         COPY files/ /files/\n\
         RUN echo round {round} build {i} > /mine\n"
    );
    let mut all: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    all.push(("Dockerfile", &dockerfile));
    env.context(&format!("ctx-{round}-{i}"), &all)
}

fn spawn(env: &Env, args: &[String]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_ROOT", env.path("store"))
        .env("DOCKER_CONFIG", env.path("docker"))
        .env("XDG_CONFIG_HOME", env.path("xdg"))
        .env_remove("KILN_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln runs")
}

/// Runs `rounds` rounds of concurrent builds with prune and rmi racing
/// them, prints the counts, and asserts none failed and nothing is
/// corrupt.
fn shared_store_rounds(rounds: usize) {
    let env = Env::new();
    let store = env.path("store");
    let base = format!("base=oci-layout://{BUSYBOX}");
    let (mut builds, mut failures, mut corrupt) = (0, Vec::new(), 0);
    for round in 0..rounds {
        let mut children = Vec::new();
        for i in 0..BUILDS {
            let ctx = context(&env, round, i);
            let mut args = vec![
                "build".to_owned(),
                "--build-context".to_owned(),
                base.clone(),
                "-t".to_owned(),
                format!("own{i}:latest"),
            ];
            if i % 2 == 0 {
                args.extend(["-t".to_owned(), "shared:latest".to_owned()]);
            }
            args.push(s(&ctx).to_owned());
            children.push((format!("build {i}"), spawn(&env, &args)));
            if i == BUILDS / 2 {
                // Racing the builds: a full prune, and removing the shared
                // tag and an image the builds do not use.
                children.push((
                    "prune --all".to_owned(),
                    spawn(&env, &["prune".into(), "--all".into()]),
                ));
                children.push((
                    "rmi".to_owned(),
                    spawn(&env, &["rmi".into(), "busybox:latest".into()]),
                ));
            }
        }
        for (what, child) in children {
            let out = child.wait_with_output().expect("kiln finishes");
            if what.starts_with("build") {
                builds += 1;
            }
            // rmi of a name a previous round removed fails, as it should.
            if !out.status.success() && what != "rmi" {
                let err = String::from_utf8_lossy(&out.stderr);
                let last = err
                    .lines()
                    .rev()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("");
                failures.push(format!("round {round} {what}: {last}"));
            }
        }
        let (bad, count) = corrupt_blobs(&store);
        eprintln!(
            "round {round}: {count} blobs, {} corrupt, {} failures so far",
            bad.len(),
            failures.len()
        );
        corrupt += bad.len();
        // Later rounds have an image to remove again.
        env.ok(&["load", "-i", BUSYBOX, "-t", "busybox:latest"], None);
    }
    let problems = image_problems(&store, "docker.io/library/shared:latest");
    eprintln!(
        "shared store: {rounds} rounds, {builds} builds, {} failures, {corrupt} corrupt blobs, \
         final tag: {}",
        failures.len(),
        match &problems {
            None => "absent".to_owned(),
            Some(p) if p.is_empty() => "complete".to_owned(),
            Some(p) => format!("{} problems", p.len()),
        }
    );
    for failure in &failures {
        eprintln!("  {failure}");
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(corrupt, 0);
    // The last round's even builds all tag it; rmi never touches it.
    assert_eq!(problems, Some(Vec::new()));
    // And a later build still works.
    let ctx = context(&env, rounds, 0);
    env.ok(
        &[
            "build",
            "--build-context",
            &base,
            "-t",
            "after:latest",
            s(&ctx),
        ],
        None,
    );
}

#[test]
fn concurrent_builds_share_a_store() {
    shared_store_rounds(3);
}

#[test]
#[ignore = "long: 20 rounds; run with --ignored"]
fn concurrent_builds_share_a_store_long() {
    shared_store_rounds(20);
}
