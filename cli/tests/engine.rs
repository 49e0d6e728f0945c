//! kiln's own image on a real container engine (issue 16). `.ci/run`
//! starts Debian's dockerd on a private socket and makes a Debian base
//! with debootstrap, and passes both here (`KILN_ENGINE_DOCKER_HOST`,
//! `KILN_ENGINE_DEBIAN`: an OCI layout and its tag); without them the
//! test says why it skipped (and fails under `CI=true`).
//!
//! The test builds kiln's image from `image/Dockerfile` with the kiln
//! under test (twice, to check that it is reproducible), loads it into
//! the engine, and runs it under each container setting of the matrix
//! below. In each, kiln builds RUN cases of the shared conformance suite
//! and a case without RUN; the test checks the isolation `auto` took,
//! that the layers equal the sandbox's on the host, and where RUN cannot
//! run, the guidance in the error. One setting also pushes to a registry
//! on 127.0.0.1. It prints the matrix (the README's copy comes from it).

mod common;

use common::{listing, s};
use kiln_test_support::{skopeo_ok, Auth, Registry};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Conformance cases with RUN steps (49 gives files to uid 1000, which a
/// rootless build needs its whole subordinate range for).
const RUN_CASES: [&str; 5] = [
    "36-run-exec-form",
    "38-heredoc-run",
    "47-whiteout",
    "49-metadata-only-change",
    "51-hardlink-run",
];
/// A case without RUN: it must build under every setting.
const NO_RUN_CASE: &str = "01-copy-basic";
/// A guard against a hung container; never an expected duration.
const GUARD_SECS: &str = "600";

/// One container setting: its name, `docker run` flags, the uid that
/// owns the store, and the isolation `auto` should take (`None`: RUN
/// cannot run there).
struct Setting {
    name: &'static str,
    flags: &'static [&'static str],
    store_uid: u32,
    isolation: Option<&'static str>,
}

const SETTINGS: [Setting; 6] = [
    Setting {
        name: "default seccomp and capabilities, root",
        flags: &[],
        store_uid: 0,
        isolation: Some("chroot"),
    },
    Setting {
        name: "--security-opt seccomp=unconfined",
        flags: &["--security-opt", "seccomp=unconfined"],
        store_uid: 0,
        isolation: Some("sandbox"),
    },
    Setting {
        name: "--user 1000",
        flags: &["--user", "1000"],
        store_uid: 1000,
        isolation: None,
    },
    Setting {
        name: "--user 1000 --security-opt seccomp=unconfined",
        flags: &["--user", "1000", "--security-opt", "seccomp=unconfined"],
        store_uid: 1000,
        isolation: Some("sandbox"),
    },
    Setting {
        name: "--cap-drop ALL",
        flags: &["--cap-drop", "ALL"],
        store_uid: 0,
        isolation: None,
    },
    Setting {
        name: "--read-only, store on a volume",
        flags: &["--read-only"],
        store_uid: 0,
        isolation: Some("chroot"),
    },
];

struct Engine {
    docker_host: String,
    debian: String,
}

fn engine() -> Option<Engine> {
    let docker_host = std::env::var("KILN_ENGINE_DOCKER_HOST").ok();
    let debian = std::env::var("KILN_ENGINE_DEBIAN").ok();
    match (docker_host, debian) {
        (Some(docker_host), Some(debian)) => Some(Engine {
            docker_host,
            debian,
        }),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must set KILN_ENGINE_DOCKER_HOST and KILN_ENGINE_DEBIAN (.ci/run does)"
            );
            eprintln!(
                "skipped: set KILN_ENGINE_DOCKER_HOST (a dockerd socket) and KILN_ENGINE_DEBIAN \
                 (an OCI layout:tag of a Debian base); .ci/run does"
            );
            None
        }
    }
}

impl Engine {
    fn docker(&self, args: &[&str]) -> Output {
        let docker = if Path::new("/usr/bin/docker").exists() {
            "/usr/bin/docker"
        } else {
            "docker"
        };
        Command::new("timeout")
            .arg(GUARD_SECS)
            .arg(docker)
            .args(args)
            .env("DOCKER_HOST", &self.docker_host)
            .output()
            .expect("docker runs")
    }

    /// Runs `script` with `sh` in kiln's image with the `docker run`
    /// `flags`, on the host network, with the shared test data at
    /// `/shared` (read-only), `store` at `/store` (`KILN_ROOT`) and `out`
    /// at `/out`.
    fn run_kiln_image(
        &self,
        flags: &[&str],
        store: &Path,
        out: Option<&Path>,
        script: &str,
    ) -> Output {
        let shared_mount = format!(
            "{}:/shared:ro",
            s(&shared().canonicalize().expect("shared"))
        );
        let store_mount = format!("{}:/store", s(store));
        let out_mount = out.map(|o| format!("{}:/out", s(o)));
        let mut args = vec!["run", "--rm", "--network", "host", "-v", &shared_mount];
        args.extend(["-v", &store_mount, "-e", "KILN_ROOT=/store"]);
        if let Some(m) = &out_mount {
            args.extend(["-v", m.as_str()]);
        }
        args.extend_from_slice(flags);
        args.extend(["--entrypoint", "sh", "kiln:engine-test", "-c", script]);
        self.docker(&args)
    }

    fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// The kiln under test, on the host, with its own store.
fn kiln(store: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(args)
        .env("KILN_ROOT", store)
        .env("XDG_CONFIG_HOME", store.join("xdg"))
        .env_remove("KILN_CONFIG")
        .env_remove("KILN_ISOLATION")
        .envs(vars.iter().copied())
        .output()
        .expect("kiln runs")
}

fn kiln_ok(store: &Path, args: &[&str], vars: &[(&str, &str)]) -> String {
    let out = kiln(store, args, vars);
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

fn case_dir(case: &str) -> PathBuf {
    shared()
        .join("conformance/cases")
        .join(case)
        .join("context")
}

/// The manifest digest of an OCI layout tar's only image.
fn oci_tar_digest(tar: &Path) -> String {
    let file = std::fs::File::open(tar).expect("oci tar");
    let mut archive = tar::Archive::new(file);
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        if entry.path().expect("path").as_os_str() == "index.json" {
            let index: serde_json::Value = serde_json::from_reader(&mut entry).expect("index");
            return index["manifests"][0]["digest"]
                .as_str()
                .expect("digest")
                .to_string();
        }
    }
    panic!("no index.json in {}", tar.display());
}

/// Builds kiln's image with the kiln under test: twice as OCI layouts
/// with SOURCE_DATE_EPOCH (same digest), then as a docker archive that is
/// loaded into the engine as `kiln:engine-test`.
fn build_image(engine: &Engine, dir: &Path) -> String {
    let bin = dir.join("kiln-bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(bin.join("kiln"))
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(env!("CARGO_BIN_EXE_kiln"), bin.join("kiln")).expect("copy kiln");
    }
    let store = dir.join("image-store");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let debian = format!(
        "debian:bookworm-slim=oci-layout://{}",
        std::path::absolute(&engine.debian)
            .expect("absolute")
            .display()
    );
    let kiln_bin = format!("kiln-bin={}", s(&bin));
    let image_dir = repo.join("image");
    let common = [
        "build",
        "--progress=plain",
        "--build-context",
        &debian,
        "--build-context",
        &kiln_bin,
        "--build-arg",
        "VERSION=engine-test",
        "--build-arg",
        "REVISION=0123abc",
    ];
    let epoch = [("SOURCE_DATE_EPOCH", "1700000000")];
    let mut digests = Vec::new();
    for (i, no_cache) in [false, true].into_iter().enumerate() {
        let out = dir.join(format!("kiln-oci-{i}.tar"));
        let dest = format!("type=oci,dest={},rewrite-timestamp=true", s(&out));
        let mut args = common.to_vec();
        if no_cache {
            args.push("--no-cache");
        }
        args.extend(["-o", &dest, s(&image_dir)]);
        kiln_ok(&store, &args, &epoch);
        digests.push(oci_tar_digest(&out));
    }
    assert_eq!(digests[0], digests[1], "kiln's image is not reproducible");
    let archive = dir.join("kiln-image.tar");
    let dest = format!("type=docker,dest={}", s(&archive));
    let mut args = common.to_vec();
    args.extend(["-t", "kiln:engine-test", "-o", &dest, s(&image_dir)]);
    kiln_ok(&store, &args, &[]);
    engine.docker_ok(&["load", "-i", s(&archive)]);
    let inspected = engine.docker_ok(&["image", "inspect", "kiln:engine-test"]);
    let inspected: serde_json::Value = serde_json::from_str(&inspected).expect("inspect");
    let config = &inspected[0]["Config"];
    assert_eq!(config["Entrypoint"], serde_json::json!(["kiln"]));
    let labels = &config["Labels"];
    assert_eq!(labels["org.opencontainers.image.version"], "engine-test");
    assert_eq!(labels["org.opencontainers.image.revision"], "0123abc");
    assert!(labels["org.opencontainers.image.source"]
        .as_str()
        .is_some_and(|v| v.starts_with("https://")));
    digests.remove(0)
}

/// What one setting gave.
struct Outcome {
    isolation: String,
    equal: usize,
    run_refused: usize,
    no_run_built: bool,
}

/// Runs kiln's image under `setting`: loads busybox into a fresh store on
/// a volume, builds each RUN case and the case without RUN into `out/`,
/// and checks what came out against `reference` (the host's sandbox
/// layers by case).
fn run_setting(
    engine: &Engine,
    dir: &Path,
    index: usize,
    setting: &Setting,
    reference: &[(String, Vec<String>)],
) -> Outcome {
    let store = dir.join(format!("store-{index}"));
    let out = dir.join(format!("out-{index}"));
    for d in [&store, &out] {
        std::fs::create_dir_all(d).expect("mkdir");
        std::os::unix::fs::chown(d, Some(setting.store_uid), Some(setting.store_uid))
            .expect("chown");
    }
    let mut script = String::from(
        "kiln load -i /shared/bases/busybox -t busybox:latest > /out/load.log 2>&1 || exit 9\n",
    );
    for case in RUN_CASES.iter().chain([&NO_RUN_CASE]) {
        script.push_str(&format!(
            "kiln build --progress=plain -o type=docker,dest=/out/{case}.tar \
             /shared/conformance/cases/{case}/context > /out/{case}.log 2>&1; echo $? > /out/{case}.rc\n"
        ));
    }
    let ran = engine.run_kiln_image(setting.flags, &store, Some(&out), &script);
    let load_log = std::fs::read_to_string(out.join("load.log")).unwrap_or_default();
    assert!(
        ran.status.success(),
        "{}: the container failed ({:?}):\n{}\n{load_log}",
        setting.name,
        ran.status.code(),
        String::from_utf8_lossy(&ran.stderr)
    );
    let read = |case: &str, ext: &str| {
        std::fs::read_to_string(out.join(format!("{case}.{ext}"))).unwrap_or_default()
    };
    let mut outcome = Outcome {
        isolation: "none".into(),
        equal: 0,
        run_refused: 0,
        no_run_built: read(NO_RUN_CASE, "rc").trim() == "0",
    };
    assert!(
        outcome.no_run_built,
        "{}: a Dockerfile without RUN failed:\n{}",
        setting.name,
        read(NO_RUN_CASE, "log")
    );
    for (case, expected) in reference {
        let log = read(case, "log");
        let rc = read(case, "rc");
        match setting.isolation {
            Some(isolation) => {
                assert_eq!(rc.trim(), "0", "{}: {case} failed:\n{log}", setting.name);
                let note = format!("NOTE: isolation {isolation}:");
                assert!(
                    log.contains(&note),
                    "{}: {case}: no `{note}`:\n{log}",
                    setting.name
                );
                // A rootless kiln maps its whole subordinate range: the
                // image's newuidmap keeps its file capabilities.
                assert!(
                    !log.contains("could not be mapped"),
                    "{}: {case}: only one uid mapped:\n{log}",
                    setting.name
                );
                outcome.isolation = isolation.to_string();
                let got = listing(&out.join(format!("{case}.tar")));
                assert_eq!(
                    &got, expected,
                    "{}: {case}: the layers differ from the sandbox's",
                    setting.name
                );
                outcome.equal += 1;
            }
            None => {
                assert_eq!(
                    rc.trim(),
                    "1",
                    "{}: {case} should fail:\n{log}",
                    setting.name
                );
                let last = log
                    .lines()
                    .rfind(|l| l.starts_with("kiln: "))
                    .unwrap_or_default();
                for expected in [
                    "no isolation can run RUN steps here: new namespaces are refused",
                    "securityContext.seccompProfile.type: Unconfined",
                    "hostUsers: false",
                    "docker run --security-opt seccomp=unconfined",
                ] {
                    assert!(
                        last.contains(expected),
                        "{}: {case}: `{expected}` missing from: {last}",
                        setting.name
                    );
                }
                outcome.run_refused += 1;
            }
        }
    }
    outcome
}

#[test]
fn kilns_image_builds_in_containers_under_every_setting() {
    let Some(engine) = engine() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let digest = build_image(&engine, dir);

    // The sandbox's layers on the host, by case.
    let host_store = dir.join("host-store");
    let busybox = shared().join("bases/busybox");
    kiln_ok(
        &host_store,
        &["load", "-i", s(&busybox), "-t", "busybox:latest"],
        &[],
    );
    let reference: Vec<(String, Vec<String>)> = RUN_CASES
        .iter()
        .map(|case| {
            let tar = dir.join(format!("host-{case}.tar"));
            let dest = format!("type=docker,dest={}", s(&tar));
            kiln_ok(
                &host_store,
                &[
                    "build",
                    "--isolation",
                    "sandbox",
                    "-o",
                    &dest,
                    s(&case_dir(case)),
                ],
                &[],
            );
            (case.to_string(), listing(&tar))
        })
        .collect();

    let mut rows = Vec::new();
    for (i, setting) in SETTINGS.iter().enumerate() {
        let o = run_setting(&engine, dir, i, setting, &reference);
        rows.push(format!(
            "| {} | {} | {} | {} | {} |",
            setting.name,
            o.isolation,
            if setting.isolation.is_some() {
                format!("{}/{} equal to the sandbox's", o.equal, RUN_CASES.len())
            } else {
                format!(
                    "{}/{} refused with the ways out",
                    o.run_refused,
                    RUN_CASES.len()
                )
            },
            if o.no_run_built { "builds" } else { "fails" },
            setting.store_uid,
        ));
    }

    // A push from the default setting to a registry on 127.0.0.1.
    let registry = Registry::start(Auth::None);
    let target = format!("{}/engine/whiteout:1", registry.host());
    let store = dir.join("store-push");
    std::fs::create_dir_all(&store).expect("mkdir");
    let script = format!(
        "kiln load -i /shared/bases/busybox -t busybox:latest && \
         kiln build --progress=plain --push -t {target} /shared/conformance/cases/47-whiteout/context"
    );
    let pushed = engine.run_kiln_image(&[], &store, None, &script);
    assert!(
        pushed.status.success(),
        "the push failed:\n{}",
        String::from_utf8_lossy(&pushed.stderr)
    );
    let inspected = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    let inspected: serde_json::Value = serde_json::from_str(&inspected).expect("skopeo json");
    // busybox's layer, two RUN steps and a COPY.
    assert_eq!(
        inspected["Layers"].as_array().map(Vec::len),
        Some(4),
        "{inspected}"
    );

    println!("engine: kiln's image {digest} (the same digest built twice)");
    println!("| setting | isolation auto took | RUN cases | case without RUN | store owner |");
    println!("|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    println!("engine: pushed {target} from the default setting; skopeo reads its 4 layers");
}
