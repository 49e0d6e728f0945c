//! `kiln lint` with base images known: from the image store, and with
//! `--pull` from a real registry (Debian's docker-registry) holding an
//! image umoci rewrote for arm64 with an extra ENV. BuildKit's UndefinedVar
//! then sees the image's ENV, and InvalidBaseImagePlatform compares its
//! platform with the one the build targets.

use kiln_test_support as support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::{require_tool, skopeo_ok, Auth, Registry, BUSYBOX_LAYOUT};

/// Runs `kiln --root ROOT ARGS... -` with `stdin` as the Dockerfile.
fn kiln(root: &Path, args: &[&str], stdin: &str) -> Output {
    let home = root.with_extension("home");
    std::fs::create_dir_all(&home).expect("home");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(root)
        .args(args)
        .arg("-")
        .env("HOME", &home)
        .env_remove("KILN_CONFIG")
        .env_remove("XDG_CONFIG_HOME")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait kiln")
}

/// `(code, line, message)` of a json report.
fn findings(out: &Output) -> Vec<(String, u64, String)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "json report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    v.as_array()
        .expect("array")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_string(),
                d["line"].as_u64().unwrap_or_default(),
                d["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn codes_at(found: &[(String, u64, String)], code: &str) -> Vec<u64> {
    found.iter().filter(|f| f.0 == code).map(|f| f.1).collect()
}

#[test]
fn pull_reads_the_base_image_config_from_the_registry() {
    require_tool("umoci");
    let registry = Registry::start(Auth::None);
    let dir = tempfile::tempdir().expect("tempdir");
    // busybox, rewritten by umoci as an arm64 image with JAVA_HOME set.
    let layout = dir.path().join("layout");
    let cp = Command::new("cp")
        .arg("-r")
        .arg(BUSYBOX_LAYOUT)
        .arg(&layout)
        .status()
        .expect("cp");
    assert!(cp.success());
    let umoci = Command::new("umoci")
        .args(["config", "--architecture", "arm64", "--config.env"])
        .arg("JAVA_HOME=/opt/java")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .args(["--tag", "arm"])
        .output()
        .expect("umoci");
    assert!(
        umoci.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&umoci.stderr)
    );
    let image = format!("{}/lint/busybox:arm", registry.host());
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}:arm", layout.display()),
        &format!("docker://{image}"),
    ]);

    let dockerfile = format!("FROM {image}\nENV A=$JAVA_HOME B=$NOT_SET\nFROM {image} AS two\n");
    let root = dir.path().join("store");
    let lint = [
        "lint",
        "--no-shellcheck",
        "-f",
        "json",
        "--platform",
        "linux/amd64",
    ];

    // Without --pull nothing is known of the image: no platform check, and
    // an unknown name may come from its ENV.
    let out = kiln(&root, &lint, &dockerfile);
    let found = findings(&out);
    assert!(
        codes_at(&found, "InvalidBaseImagePlatform").is_empty(),
        "{found:?}"
    );
    assert!(codes_at(&found, "UndefinedVar").is_empty(), "{found:?}");
    assert!(
        !root.exists(),
        "linting created a store at {}",
        root.display()
    );

    // With --pull: the config says arm64 and sets JAVA_HOME.
    let out = kiln(&root, &[&lint[..], &["--pull"]].concat(), &dockerfile);
    let found = findings(&out);
    assert_eq!(codes_at(&found, "UndefinedVar"), [2], "{found:?}");
    assert!(found
        .iter()
        .any(|f| f.2 == "Usage of undefined variable '$NOT_SET'"));
    assert_eq!(
        codes_at(&found, "InvalidBaseImagePlatform"),
        [1, 3],
        "{found:?}"
    );
    let message = format!(
        "Base image {image} was pulled with platform \"linux/arm64\", expected \"linux/amd64\" for current build"
    );
    assert!(found.iter().any(|f| f.2 == message), "{found:?}");
    assert_eq!(out.status.code(), Some(1));

    // Targeting arm64 the platform matches.
    let arm = [
        "lint",
        "--no-shellcheck",
        "-f",
        "json",
        "--pull",
        "--platform",
        "linux/arm64",
    ];
    let found = findings(&kiln(&root, &arm, &dockerfile));
    assert!(
        codes_at(&found, "InvalidBaseImagePlatform").is_empty(),
        "{found:?}"
    );
    assert_eq!(codes_at(&found, "UndefinedVar"), [2]);

    // An image the registry does not have is said on stderr; linting goes on.
    let missing = format!("FROM {}/lint/absent:1\nENV A=$NOT_SET\n", registry.host());
    let out = kiln(&root, &[&lint[..], &["--pull"]].concat(), &missing);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("lint/absent:1"), "{stderr}");
    assert!(codes_at(&findings(&out), "UndefinedVar").is_empty());
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn images_in_the_store_are_known_without_pull() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("store");
    let load = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .arg("--root")
        .arg(&root)
        .args(["load", "-i", BUSYBOX_LAYOUT, "-t", "local/busybox:1"])
        .output()
        .expect("kiln load");
    assert!(
        load.status.success(),
        "{}",
        String::from_utf8_lossy(&load.stderr)
    );
    let dockerfile = "FROM local/busybox:1\nENV A=$PATH B=$NOT_SET\n";
    let out = kiln(
        &root,
        &["lint", "--no-shellcheck", "-f", "json", "--verbose"],
        dockerfile,
    );
    let found = findings(&out);
    assert_eq!(codes_at(&found, "UndefinedVar"), [2], "{found:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("base image local/busybox:1 (linux/amd64) read from the store"),
        "{stderr}"
    );
    // busybox is linux/amd64, so only another target platform trips the check.
    let found = findings(&kiln(
        &root,
        &[
            "lint",
            "--no-shellcheck",
            "-f",
            "json",
            "--platform",
            "linux/arm64/v8",
        ],
        dockerfile,
    ));
    assert_eq!(
        codes_at(&found, "InvalidBaseImagePlatform"),
        [1],
        "{found:?}"
    );
}
