//! The image commands run as a user runs them: the built `kiln` against a
//! store in a temp dir, a real registry, and skopeo checking the results.

use kiln_test_support as support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::{skopeo_ok, Auth, Registry};
use support::{BUSYBOX_CONFIG, BUSYBOX_DIGEST as BUSYBOX_MANIFEST, BUSYBOX_LAYOUT as BUSYBOX};

/// A kiln environment: its own store, Docker config and kiln config.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        Env {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn kiln(&self, args: &[&str]) -> Output {
        self.kiln_stdin(args, None)
    }

    fn kiln_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
        cmd.args(args)
            .env("KILN_ROOT", self.path("store"))
            .env("DOCKER_CONFIG", self.path("docker"))
            .env_remove("KILN_CONFIG")
            .env("XDG_CONFIG_HOME", self.path("xdg"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The config file is optional; point at one only when a test wrote it.
        if self.path("kiln-config.toml").exists() {
            cmd.env("KILN_CONFIG", self.path("kiln-config.toml"));
        }
        let mut child = cmd.spawn().expect("kiln runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("stdin");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kiln finishes")
    }

    /// Runs kiln and returns stdout, failing the test with stderr otherwise.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(
            out.status.success(),
            "kiln {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kiln expecting failure; returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "kiln {} should fail",
            args.join(" ")
        );
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }

    fn load_busybox(&self) {
        let out = self.ok(&["load", "-i", BUSYBOX, "-t", "busybox:latest"]);
        assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    }
}

fn sha256_of(text: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(text.as_bytes()))
}

#[test]
fn load_tag_push_pull_inspect_rmi_prune() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    env.load_busybox();
    let images = env.ok(&["images"]);
    assert!(
        images.contains("busybox") && images.contains("a59446df9cb1"),
        "{images}"
    );

    let target = format!("{}/cli/busybox:1", registry.host());
    env.ok(&["tag", "busybox", &target]);
    let pushed = env.ok(&["push", &target]);
    assert!(pushed.contains(BUSYBOX_MANIFEST), "{pushed}");
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{target}"),
    ]);
    assert_eq!(sha256_of(&raw), BUSYBOX_MANIFEST);

    // A second store pulls it back and shows the same manifest and config.
    let other = Env::new();
    let pulled = other.ok(&["pull", &target]);
    assert!(pulled.contains(BUSYBOX_MANIFEST), "{pulled}");
    let inspect: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", &target])).expect("inspect prints JSON");
    assert_eq!(inspect["ManifestDigest"], BUSYBOX_MANIFEST);
    assert_eq!(inspect["ConfigDigest"], BUSYBOX_CONFIG);
    assert_eq!(inspect["Config"]["os"], "linux");
    assert_eq!(
        inspect["Manifest"]["layers"].as_array().map(Vec::len),
        Some(1)
    );

    // rmi removes the name and the blobs; prune then finds nothing.
    let removed = other.ok(&["rmi", &target]);
    assert!(
        removed.contains("Untagged") && removed.contains(BUSYBOX_CONFIG),
        "{removed}"
    );
    assert!(!other.ok(&["images"]).contains("cli/busybox"));
    let pruned = other.ok(&["prune"]);
    assert!(pruned.contains("Deleted 0 blobs"), "{pruned}");
    let err = other.fails(&["inspect", &target]);
    assert!(err.contains("no image named"), "{err}");
}

#[test]
fn prune_reports_what_it_freed() {
    let env = Env::new();
    env.load_busybox();
    env.ok(&["tag", "busybox", "second:1"]);
    env.ok(&["rmi", "busybox"]);
    // Still named as second:1, so nothing goes.
    assert!(env.ok(&["prune"]).contains("Deleted 0 blobs"));
    let removed = env.ok(&["rmi", "second:1"]);
    assert!(removed.contains("Deleted: sha256:"), "{removed}");
}

#[test]
fn save_docker_and_oci_are_read_by_skopeo_and_load_back() {
    let env = Env::new();
    env.load_busybox();
    let docker_tar = env.path("busybox.tar");
    env.ok(&["save", "busybox", "-o", docker_tar.to_str().expect("utf8")]);
    let config = skopeo_ok(&[
        "inspect",
        "--config",
        "--raw",
        &format!("docker-archive:{}", docker_tar.display()),
    ]);
    assert_eq!(sha256_of(&config), BUSYBOX_CONFIG);

    let oci_tar = env.path("busybox-oci.tar");
    env.ok(&[
        "save",
        "busybox",
        "--format",
        "oci",
        "-o",
        oci_tar.to_str().expect("utf8"),
    ]);
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}:latest", oci_tar.display()),
    ]);
    assert_eq!(sha256_of(&raw), BUSYBOX_MANIFEST);

    let layout = env.path("layout");
    env.ok(&[
        "save",
        "busybox",
        "--format",
        "oci-dir",
        "-o",
        layout.to_str().expect("utf8"),
    ]);
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        &format!("oci:{}:latest", layout.display()),
    ]);
    assert_eq!(sha256_of(&raw), BUSYBOX_MANIFEST);

    let fresh = Env::new();
    let out = fresh.ok(&["load", "-i", docker_tar.to_str().expect("utf8")]);
    assert!(out.contains("Loaded image: busybox:latest"), "{out}");
    let out = fresh.ok(&["load", "-i", oci_tar.to_str().expect("utf8")]);
    assert!(
        out.contains("Loaded image: busybox:latest") && out.contains(BUSYBOX_MANIFEST),
        "{out}"
    );
    let listed = fresh.ok(&["images"]);
    assert!(listed.contains("busybox"), "{listed}");

    // A truncated archive is refused, nothing is named, no partial file.
    let bytes = std::fs::read(&docker_tar).expect("read");
    let cut = env.path("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let third = Env::new();
    let err = third.fails(&["load", "-i", cut.to_str().expect("utf8")]);
    assert!(err.contains("cut.tar"), "{err}");
    assert_eq!(third.ok(&["images", "-q"]), "");
}

#[test]
fn save_to_an_unwritable_place_leaves_no_file() {
    let env = Env::new();
    env.load_busybox();
    let err = env.fails(&["save", "busybox", "-o", "/proc/kiln-cannot-write-here.tar"]);
    assert!(err.contains("/proc"), "{err}");
}

#[test]
fn login_logout_with_basic_auth() {
    let registry = Registry::start(Auth::basic("carol", "pa55"));
    let env = Env::new();
    env.load_busybox();
    let target = format!("{}/team/busybox:1", registry.host());
    env.ok(&["tag", "busybox", &target]);

    // Without credentials: a clear message naming the registry.
    let err = env.fails(&["push", &target]);
    assert!(
        err.contains(&registry.host()) && err.contains("kiln login"),
        "{err}"
    );

    // A wrong password is refused and nothing is saved.
    let out = env.kiln_stdin(
        &["login", &registry.host(), "-u", "carol", "--password-stdin"],
        Some("wrong\n"),
    );
    assert!(!out.status.success());
    assert!(!env.path("docker/config.json").exists());

    let out = env.kiln_stdin(
        &["login", &registry.host(), "-u", "carol", "--password-stdin"],
        Some("pa55\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = std::fs::read_to_string(env.path("docker/config.json")).expect("config saved");
    assert!(saved.contains(&registry.host()), "{saved}");
    assert!(
        !saved.contains("pa55"),
        "the password is stored encoded, as docker does"
    );

    env.ok(&["push", &target]);
    let raw = skopeo_ok(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "carol:pa55",
        &format!("docker://{target}"),
    ]);
    assert_eq!(sha256_of(&raw), BUSYBOX_MANIFEST);

    assert!(env.ok(&["logout", &registry.host()]).contains("Removing"));
    let err = env.fails(&["pull", &target]);
    assert!(err.contains("kiln login"), "{err}");
}

#[test]
fn config_file_mirror_and_bad_keys() {
    // The config sends docker.io pulls to a mirror: the local registry.
    let mirror = Registry::start(Auth::None);
    mirror.seed_busybox("library/busybox:latest");
    let env = Env::new();
    std::fs::write(
        env.path("kiln-config.toml"),
        format!(
            "[registry.\"docker.io\"]\nmirrors = [\"{}\"]\n",
            mirror.host()
        ),
    )
    .expect("config");
    let out = env.ok(&["pull", "busybox"]);
    assert!(
        out.contains("Pulled docker.io/library/busybox:latest") && out.contains(BUSYBOX_MANIFEST),
        "{out}"
    );
    let listed = env.ok(&["images"]);
    assert!(
        listed.contains("busybox") && listed.contains("latest"),
        "{listed}"
    );

    std::fs::write(
        env.path("kiln-config.toml"),
        "[registry.\"x\"]\nbogus = 1\n",
    )
    .expect("config");
    let err = env.fails(&["pull", "busybox"]);
    assert!(
        err.contains("kiln-config.toml") && err.contains("bogus"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let env = Env::new();
    let err = env.fails(&["pull", "library/BusyBox"]);
    assert!(
        err.contains("invalid image reference") && err.contains("library/BusyBox"),
        "{err}"
    );
    let err = env.fails(&["pull", "--platform", "linux/", "busybox"]);
    assert!(err.contains("--platform"), "{err}");
    let err = env.fails(&["load", "-i", "/nonexistent/archive.tar"]);
    assert!(err.contains("/nonexistent/archive.tar"), "{err}");
    let err = env.fails(&["tag", "nothing-here", "x:1"]);
    assert!(err.contains("no image named nothing-here"), "{err}");
    let not_archive = env.path("notes.txt");
    std::fs::write(&not_archive, "hello").expect("write");
    let err = env.fails(&["load", "-i", not_archive.to_str().expect("utf8")]);
    assert!(err.contains("notes.txt"), "{err}");
    assert!(Path::new(BUSYBOX).exists());
}

#[test]
fn history_reads_registries_layouts_and_archives_without_naming_anything() {
    let registry = Registry::start(Auth::None);
    let env = Env::new();
    env.load_busybox();
    let target = format!("{}/hist/busybox:1", registry.host());
    env.ok(&["tag", "busybox", &target]);
    env.ok(&["push", &target]);
    let inspect: serde_json::Value =
        serde_json::from_str(&env.ok(&["inspect", "busybox"])).expect("inspect prints JSON");
    let layer = inspect["Manifest"]["layers"][0].clone();
    let layer_digest = layer["digest"].as_str().expect("layer digest").to_string();
    let layer_size = layer["size"].as_u64().expect("layer size");
    let stored = env.ok(&["history", "--no-trunc", "-H=false", "busybox"]);

    // From the registry: the same rows, sizes from the manifest, and no
    // layer downloaded.
    let other = Env::new();
    for arg in [
        vec!["--remote", target.as_str()],
        vec![&*format!("docker://{target}")],
    ] {
        let mut args = vec!["history", "--no-trunc", "-H=false"];
        args.extend(arg.iter().copied());
        let remote = other.ok(&args);
        assert_eq!(remote, stored, "{args:?}");
        assert!(remote.contains(&format!(" {layer_size}")), "{remote}");
    }
    let layer_file = other
        .path("store/blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"));
    assert!(!layer_file.exists(), "history --remote downloaded a layer");
    assert!(other.ok(&["images", "-q"]).trim().is_empty());

    // From an OCI layout and from a docker archive.
    let layout = other.ok(&[
        "history",
        "--no-trunc",
        "-H=false",
        &format!("oci-layout://{BUSYBOX}"),
    ]);
    assert_eq!(layout, stored);
    let tar = env.path("busybox.tar");
    env.ok(&["save", "busybox", "-o", tar.to_str().expect("utf8")]);
    let archive = other.ok(&[
        "history",
        "-q",
        "--no-trunc",
        &format!("docker-archive://{}", tar.display()),
    ]);
    assert_eq!(archive.trim(), BUSYBOX_CONFIG);
    assert!(other.ok(&["images", "-q"]).trim().is_empty());

    // Clear errors.
    let err = other.fails(&[
        "history",
        "--remote",
        &format!("{}/hist/none:1", registry.host()),
    ]);
    assert!(err.contains("hist/none:1"), "{err}");
    let err = other.fails(&["history", "oci-layout:///nonexistent-layout"]);
    assert!(err.contains("nonexistent-layout"), "{err}");
}
